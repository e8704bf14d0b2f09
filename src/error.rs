//! Every way a REST call can fail, and the one place that turns a failure
//! into an HTTP status and a `google.rpc.Status` JSON body:
//! `{"code": <int>, "message": "...", "details": [...]}`.
//!
//! `details` writes an upstream status's details as JSON, in
//! `google.rpc.Status`'s shape and in Connect's.

use std::time::Duration;

use axum::body::Body;
use http::{HeaderMap, HeaderValue, Method, Response, StatusCode, header};
use prost_reflect::DescriptorPool;
use serde::Serialize;
use tonic::metadata::MetadataMap;
use tonic::{Code, Status};

use crate::transcode::{BuildError, Codec, EncodeError, RequestError, ResponseError};
use crate::upstream::metadata;

mod details;
use details::{connect_details, details_json};

/// A failed REST call, classified by side: the client's mistake (4xx), the
/// upstream's answer (its gRPC status), or the gateway's own trouble.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// No template matches the path.
    #[error("no route matches {method} {path}")]
    NotFound {
        /// The request method.
        method: Method,
        /// The request path.
        path: String,
    },
    /// No template matches `/package.Service/Method`, a method served at
    /// its HTTP rule's route instead (the fallback route is only for
    /// methods without one).
    #[error(
        "no route matches {method} {path}: {rpc} is served at {served} (the /package.Service/Method route is only for methods without an HTTP rule; a Connect client sends Connect-Protocol-Version: 1)"
    )]
    ServedElsewhere {
        /// The request method.
        method: Method,
        /// The request path.
        path: String,
        /// The method named by the path.
        rpc: String,
        /// Its primary route: `GET /v1/...`.
        served: String,
    },
    /// No template matches the path while reflecting upstreams have not
    /// answered yet: their routes may come.
    #[error(
        "no route matches {method} {path} yet: {waiting} not answered server reflection, so its routes are not loaded"
    )]
    NotFoundYet {
        /// The request method.
        method: Method,
        /// The request path.
        path: String,
        /// The upstreams waited for, as text (``upstream `a` has``).
        waiting: String,
    },
    /// Templates match the path, but not for this method.
    #[error("method {method} is not allowed for {path}")]
    MethodNotAllowed {
        /// The request method.
        method: Method,
        /// The request path.
        path: String,
        /// Methods the path supports.
        allow: Vec<Method>,
    },
    /// No route and no HTTP standard knows the method.
    #[error("method {} is not implemented by this gateway", shortened(.0.as_str()))]
    UnknownMethod(Method),
    /// The request's body has a transfer coding the gateway does not
    /// decode (only `chunked` is; RFC 9112 §6.1 answers others with 501).
    #[error(
        "Transfer-Encoding `{}` is not implemented: this gateway decodes only chunked (send a Content-Encoding for compression)",
        shortened(.0)
    )]
    UnsupportedTransferCoding(String),
    /// A WebSocket upgrade from a web page of another origin than the
    /// gateway's own and `cors.allowed_origins`.
    #[error(
        "a WebSocket from origin `{0}` is not allowed: only the gateway's own origin and cors.allowed_origins may open one"
    )]
    OriginNotAllowed(String),
    /// A call that needs a bearer token came without a valid one (401),
    /// or with one that lacks a scope (403).
    #[error("{0}")]
    Auth(#[from] crate::auth::AuthError),
    /// The request's header block is larger than the limit.
    #[error("request headers are larger than {0} bytes")]
    HeadersTooLarge(usize),
    /// The request has more header fields than the limit.
    #[error("request has more than {0} header fields")]
    TooManyHeaders(usize),
    /// The request cannot be transcoded.
    #[error(transparent)]
    BadRequest(#[from] RequestError),
    /// The path is longer than the limit.
    #[error("request path is longer than {0} bytes")]
    UriTooLong(usize),
    /// The body is larger than the limit.
    #[error("request body is larger than {0} bytes")]
    PayloadTooLarge(usize),
    /// The body's declared type is not JSON.
    #[error("unsupported content type `{0}`: this route takes JSON (application/json)")]
    UnsupportedMediaType(String),
    /// The body's coding, named in `header` (`Content-Encoding`, Connect's
    /// `Connect-Content-Encoding` or `compression`), is not one the gateway
    /// decodes.
    #[error("unsupported {header} `{coding}`: send gzip, br, zstd or identity")]
    UnsupportedEncoding {
        /// Where the coding was named.
        header: &'static str,
        /// The coding.
        coding: String,
    },
    /// A request stream with a `Content-Encoding` (streams are read as
    /// they arrive, uncompressed).
    #[error(
        "Content-Encoding `{0}` on a request stream: streamed request bodies are read as they arrive and must be sent uncompressed"
    )]
    CompressedStream(String),
    /// The body is not valid data in its `Content-Encoding`.
    #[error("the request body is not valid {coding}: {reason}")]
    BadEncoding {
        /// The coding named in `Content-Encoding`.
        coding: &'static str,
        /// What is wrong with the data.
        reason: String,
    },
    /// The gateway's memory for request bodies is in use.
    #[error("the gateway is busy with other large requests; retry later")]
    Busy,
    /// A `rate_limits` rule refused the call: 429 with `Retry-After`.
    #[error("rate limit `{rule}` exceeded; retry in {retry_after}s")]
    RateLimited {
        /// The rule's name.
        rule: String,
        /// Whole seconds until the rule lets a call through again.
        retry_after: u64,
    },
    /// The body did not arrive in time.
    #[error("the request body did not arrive within {0:?}")]
    RequestTimeout(Duration),
    /// The body could not be read from the connection.
    #[error("cannot read request body: {0}")]
    BodyRead(String),
    /// No upstream is configured for the method's service.
    #[error("no upstream is configured for {0}")]
    NoUpstream(String),
    /// The upstream answered with an error status.
    #[error("upstream error: {}", .0.message())]
    Upstream(Status, Option<MetadataMap>),
    /// The deadline passed; after a failed try, why that try failed.
    #[error("deadline of {timeout:?} exceeded{}", .1.as_deref().map(|why| format!("; the last try failed: {why}")).unwrap_or_default(), timeout = .0)]
    DeadlineExceeded(Duration, Option<String>),
    /// The same, for the client's own deadline (its `grpc-timeout` or
    /// `Connect-Timeout-Ms`, shorter than the gateway's): the client's
    /// choice, so not logged as trouble.
    #[error("deadline of {timeout:?} exceeded{}", .1.as_deref().map(|why| format!("; the last try failed: {why}")).unwrap_or_default(), timeout = .0)]
    ClientDeadlineExceeded(Duration, Option<String>),
    /// The upstream's message is larger than `limits.max_response_bytes`.
    #[error("the upstream's response is larger than {0} bytes (limits.max_response_bytes)")]
    UpstreamTooLarge(usize),
    /// The call failed below gRPC: the upstream does not speak it as
    /// configured, or reset the call.
    #[error("{0}")]
    UpstreamProtocol(String),
    /// The upstream's response could not be transcoded.
    #[error(transparent)]
    BadUpstreamResponse(#[from] ResponseError),
    /// The request message could not be encoded: the gateway built it
    /// wrong.
    #[error(transparent)]
    Encode(#[from] EncodeError),
    /// A request stream failed after some of its messages had gone to the
    /// backend, which may have acted on them: the call was cancelled, and
    /// the client is told how far it got.
    #[error(
        "{error} ({} before it, and the backend may have acted on what it got; the call was cancelled)",
        sent_messages(*.sent)
    )]
    InStream {
        /// Messages of the stream the backend was sent.
        sent: usize,
        /// What failed.
        error: Box<GatewayError>,
    },
}

fn sent_messages(sent: usize) -> String {
    match sent {
        1 => "1 request message was passed on".to_owned(),
        n => format!("{n} request messages were passed on"),
    }
}

/// `text` cut to 32 characters: client-chosen tokens echoed in messages.
fn shortened(text: &str) -> std::borrow::Cow<'_, str> {
    const MAX: usize = 32;
    match text.char_indices().nth(MAX) {
        Some((end, _)) => format!("{}...", &text[..end]).into(),
        None => text.into(),
    }
}

impl GatewayError {
    /// Whether the error is the client's doing even though its status is
    /// a 5xx (a method no HTTP standard knows, a transfer coding other
    /// than chunked: 501; its own deadline passing: 504).
    pub fn is_client_caused(&self) -> bool {
        matches!(
            self,
            GatewayError::UnknownMethod(_)
                | GatewayError::UnsupportedTransferCoding(_)
                | GatewayError::ClientDeadlineExceeded(..)
        )
    }

    /// A failed call's error; `client_deadline`: whether the call's
    /// deadline was the client's own.
    pub(crate) fn from_call(err: crate::upstream::CallError, client_deadline: bool) -> Self {
        match err {
            crate::upstream::CallError::DeadlineExceeded(timeout, last) => {
                GatewayError::deadline_exceeded(timeout, last, client_deadline)
            }
            err => err.into(),
        }
    }

    /// The deadline `timeout` passed (after `last` failed, if it did);
    /// `client`: whether it was the client's own.
    pub(crate) fn deadline_exceeded(timeout: Duration, last: Option<String>, client: bool) -> Self {
        if client {
            GatewayError::ClientDeadlineExceeded(timeout, last)
        } else {
            GatewayError::DeadlineExceeded(timeout, last)
        }
    }
}

/// The HTTP status for a gRPC code (google/rpc/code.proto).
pub fn http_status(code: Code) -> StatusCode {
    match code {
        Code::Ok => StatusCode::OK,
        Code::Cancelled => StatusCode::from_u16(499).unwrap_or(StatusCode::BAD_REQUEST),
        Code::Unknown | Code::Internal | Code::DataLoss => StatusCode::INTERNAL_SERVER_ERROR,
        Code::InvalidArgument | Code::FailedPrecondition | Code::OutOfRange => {
            StatusCode::BAD_REQUEST
        }
        Code::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
        Code::NotFound => StatusCode::NOT_FOUND,
        Code::AlreadyExists | Code::Aborted => StatusCode::CONFLICT,
        Code::PermissionDenied => StatusCode::FORBIDDEN,
        Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
        Code::Unimplemented => StatusCode::NOT_IMPLEMENTED,
        Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        Code::Unauthenticated => StatusCode::UNAUTHORIZED,
    }
}

impl GatewayError {
    /// The HTTP status and gRPC code of the error.
    pub fn status(&self) -> (StatusCode, Code) {
        match self {
            GatewayError::NotFound { .. } | GatewayError::ServedElsewhere { .. } => {
                (StatusCode::NOT_FOUND, Code::NotFound)
            }
            // The route may come with the upstream's answer: try again.
            GatewayError::NotFoundYet { .. } => {
                (StatusCode::SERVICE_UNAVAILABLE, Code::Unavailable)
            }
            GatewayError::MethodNotAllowed { .. } => {
                (StatusCode::METHOD_NOT_ALLOWED, Code::Unimplemented)
            }
            GatewayError::UnknownMethod(_) | GatewayError::UnsupportedTransferCoding(_) => {
                (StatusCode::NOT_IMPLEMENTED, Code::Unimplemented)
            }
            GatewayError::OriginNotAllowed(_) => (StatusCode::FORBIDDEN, Code::PermissionDenied),
            GatewayError::Auth(err) if err.is_unavailable() => {
                (StatusCode::SERVICE_UNAVAILABLE, Code::Unavailable)
            }
            GatewayError::Auth(err) if err.is_forbidden() => {
                (StatusCode::FORBIDDEN, Code::PermissionDenied)
            }
            GatewayError::Auth(err) if err.is_bad_request() => {
                (StatusCode::BAD_REQUEST, Code::InvalidArgument)
            }
            GatewayError::Auth(_) => (StatusCode::UNAUTHORIZED, Code::Unauthenticated),
            GatewayError::HeadersTooLarge(_) | GatewayError::TooManyHeaders(_) => (
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                Code::ResourceExhausted,
            ),
            GatewayError::BadRequest(RequestError::MetadataTooLarge(_)) => (
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                Code::ResourceExhausted,
            ),
            GatewayError::BadRequest(_) => (StatusCode::BAD_REQUEST, Code::InvalidArgument),
            GatewayError::UriTooLong(_) => (StatusCode::URI_TOO_LONG, Code::InvalidArgument),
            GatewayError::PayloadTooLarge(_) => {
                (StatusCode::PAYLOAD_TOO_LARGE, Code::ResourceExhausted)
            }
            GatewayError::UnsupportedMediaType(_) => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, Code::InvalidArgument)
            }
            GatewayError::UnsupportedEncoding { .. } | GatewayError::CompressedStream(_) => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, Code::InvalidArgument)
            }
            GatewayError::RequestTimeout(_) => {
                (StatusCode::REQUEST_TIMEOUT, Code::DeadlineExceeded)
            }
            GatewayError::Busy => (StatusCode::SERVICE_UNAVAILABLE, Code::Unavailable),
            GatewayError::RateLimited { .. } => {
                (StatusCode::TOO_MANY_REQUESTS, Code::ResourceExhausted)
            }
            GatewayError::BodyRead(_) | GatewayError::BadEncoding { .. } => {
                (StatusCode::BAD_REQUEST, Code::InvalidArgument)
            }
            GatewayError::NoUpstream(_) => (StatusCode::SERVICE_UNAVAILABLE, Code::Unavailable),
            GatewayError::Upstream(status, _) => (http_status(status.code()), status.code()),
            GatewayError::DeadlineExceeded(..) | GatewayError::ClientDeadlineExceeded(..) => {
                (StatusCode::GATEWAY_TIMEOUT, Code::DeadlineExceeded)
            }
            GatewayError::UpstreamTooLarge(_) => (StatusCode::BAD_GATEWAY, Code::ResourceExhausted),
            GatewayError::BadUpstreamResponse(_) | GatewayError::UpstreamProtocol(_) => {
                (StatusCode::BAD_GATEWAY, Code::Internal)
            }
            GatewayError::Encode(_) => (StatusCode::INTERNAL_SERVER_ERROR, Code::Internal),
            GatewayError::InStream { error, .. } => error.status(),
        }
    }

    /// The HTTP response: status, JSON body and headers.
    pub fn into_response(self, pool: &DescriptorPool, codec: &Codec) -> Response<Body> {
        let (status, code) = self.status();
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_TYPE, crate::transcode::response::JSON);
        let (message, details) = match &self {
            GatewayError::Upstream(grpc, response_headers) => {
                if let Some(md) = response_headers {
                    metadata::to_headers(md, "grpc-metadata-", &mut headers);
                }
                metadata::to_headers(grpc.metadata(), "grpc-trailer-", &mut headers);
                self.message_and_details(pool, codec)
            }
            GatewayError::MethodNotAllowed { allow, .. } => {
                // OPTIONS is answered on every routed path.
                let mut list: Vec<&str> = allow.iter().map(Method::as_str).collect();
                if !list.contains(&"OPTIONS") {
                    list.push("OPTIONS");
                }
                if let Ok(value) = HeaderValue::from_str(&list.join(", ")) {
                    headers.insert(header::ALLOW, value);
                }
                (self.to_string(), Vec::new())
            }
            // RFC 7694: a 415 for a content coding says which are accepted.
            GatewayError::UnsupportedEncoding { .. } => {
                headers.insert(
                    header::ACCEPT_ENCODING,
                    HeaderValue::from_static("gzip, br, zstd, identity"),
                );
                (self.to_string(), Vec::new())
            }
            GatewayError::CompressedStream(_) => {
                headers.insert(
                    header::ACCEPT_ENCODING,
                    HeaderValue::from_static("identity"),
                );
                (self.to_string(), Vec::new())
            }
            // RFC 6750 §3: a 401 (or 403) says how to authenticate.
            GatewayError::Auth(err) => {
                match err.challenge() {
                    Some(challenge) => headers.insert(header::WWW_AUTHENTICATE, challenge),
                    // The keys are being fetched, as reflection is.
                    None => headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1")),
                };
                (self.to_string(), Vec::new())
            }
            GatewayError::NotFoundYet { .. } => {
                // Reflection is asked again within about a second at first.
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
                (self.to_string(), Vec::new())
            }
            GatewayError::RateLimited { retry_after, .. } => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(*retry_after));
                (self.to_string(), Vec::new())
            }
            GatewayError::RequestTimeout(_) | GatewayError::UnsupportedTransferCoding(_) => {
                // The rest of the body may never come, or cannot be read:
                // do not wait for it.
                headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
                (self.to_string(), Vec::new())
            }
            _ => (self.to_string(), Vec::new()),
        };
        let body = ErrorBody {
            code: code as i32,
            message: &message,
            details,
        };
        let bytes = crate::transcode::json_number::to_vec(&body).unwrap_or_else(|_| b"{}".to_vec());
        let mut response = Response::new(Body::from(bytes));
        *response.status_mut() = status;
        *response.headers_mut() = headers;
        response
    }
}

impl From<BuildError> for GatewayError {
    fn from(err: BuildError) -> Self {
        match err {
            BuildError::Request(err) => GatewayError::BadRequest(err),
            BuildError::Encode(err) => GatewayError::Encode(err),
        }
    }
}

impl From<crate::upstream::CallError> for GatewayError {
    fn from(err: crate::upstream::CallError) -> Self {
        use crate::upstream::CallError;
        match err {
            CallError::Status(status) => GatewayError::Upstream(status, None),
            CallError::Answered(status, headers) => GatewayError::Upstream(status, Some(headers)),
            CallError::DeadlineExceeded(d, last) => GatewayError::DeadlineExceeded(d, last),
            CallError::TooLarge(limit) => GatewayError::UpstreamTooLarge(limit),
            CallError::Protocol(message) => GatewayError::UpstreamProtocol(message),
        }
    }
}

impl GatewayError {
    /// The message and the `details` as JSON.
    fn message_and_details(
        &self,
        pool: &DescriptorPool,
        codec: &Codec,
    ) -> (String, Vec<serde_json::Value>) {
        match self {
            GatewayError::Upstream(grpc, _) => (
                grpc.message().to_owned(),
                details_json(grpc.details(), pool, codec),
            ),
            _ => (self.to_string(), Vec::new()),
        }
    }

    /// The error object that ends a stream whose status line is already
    /// sent, in grpc-gateway's shape (its v2 fields and the v1 ones etcd's
    /// clients read): `{"code", "message", "details", "grpc_code",
    /// "http_code", "http_status"}`.
    pub fn stream_error(&self, pool: &DescriptorPool, codec: &Codec) -> serde_json::Value {
        let (status, code) = self.status();
        let (message, details) = self.message_and_details(pool, codec);
        serde_json::json!({
            "code": code as i32,
            "message": message,
            "details": details,
            "grpc_code": code as i32,
            "http_code": status.as_u16(),
            "http_status": status.canonical_reason().unwrap_or(""),
        })
    }

    /// The error in the Connect protocol's shape: `{"code": "not_found",
    /// "message": ..., "details": [{"type": ..., "value": <base64>}]}`.
    pub fn connect_json(&self) -> serde_json::Value {
        let (_, mut code) = self.status();
        // Connect: a compression the server does not support, and a
        // procedure it does not serve, are `unimplemented` (as a gRPC
        // client is told of an unknown method).
        if let GatewayError::UnsupportedEncoding { .. } | GatewayError::NotFound { .. } = self {
            code = Code::Unimplemented;
        }
        let (message, details) = match self {
            GatewayError::Upstream(grpc, _) => {
                (grpc.message().to_owned(), connect_details(grpc.details()))
            }
            other => (other.to_string(), Vec::new()),
        };
        let mut out = serde_json::json!({"code": connect_code(code)});
        if !message.is_empty() {
            out["message"] = message.into();
        }
        if !details.is_empty() {
            out["details"] = details.into();
        }
        out
    }

    /// The error as a plain google.rpc.Status JSON object.
    pub fn status_json(&self, pool: &DescriptorPool, codec: &Codec) -> serde_json::Value {
        let (_, code) = self.status();
        let (message, details) = self.message_and_details(pool, codec);
        serde_json::json!({"code": code as i32, "message": message, "details": details})
    }
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    code: i32,
    message: &'a str,
    details: Vec<serde_json::Value>,
}

/// A gRPC code's name in the Connect protocol.
pub fn connect_code(code: Code) -> &'static str {
    match code {
        Code::Ok => "ok",
        Code::Cancelled => "canceled",
        Code::Unknown => "unknown",
        Code::InvalidArgument => "invalid_argument",
        Code::DeadlineExceeded => "deadline_exceeded",
        Code::NotFound => "not_found",
        Code::AlreadyExists => "already_exists",
        Code::PermissionDenied => "permission_denied",
        Code::ResourceExhausted => "resource_exhausted",
        Code::FailedPrecondition => "failed_precondition",
        Code::Aborted => "aborted",
        Code::OutOfRange => "out_of_range",
        Code::Unimplemented => "unimplemented",
        Code::Internal => "internal",
        Code::Unavailable => "unavailable",
        Code::DataLoss => "data_loss",
        Code::Unauthenticated => "unauthenticated",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_codes_map_to_http_statuses() {
        let table = [
            (Code::Ok, 200),
            (Code::Cancelled, 499),
            (Code::Unknown, 500),
            (Code::InvalidArgument, 400),
            (Code::DeadlineExceeded, 504),
            (Code::NotFound, 404),
            (Code::AlreadyExists, 409),
            (Code::PermissionDenied, 403),
            (Code::ResourceExhausted, 429),
            (Code::FailedPrecondition, 400),
            (Code::Aborted, 409),
            (Code::OutOfRange, 400),
            (Code::Unimplemented, 501),
            (Code::Internal, 500),
            (Code::Unavailable, 503),
            (Code::DataLoss, 500),
            (Code::Unauthenticated, 401),
        ];
        for (code, http) in table {
            assert_eq!(http_status(code).as_u16(), http, "{code:?}");
        }
    }

    #[test]
    fn gateway_errors_use_the_agreed_codes() {
        let cases = [
            (
                GatewayError::PayloadTooLarge(1),
                413,
                Code::ResourceExhausted,
            ),
            (
                GatewayError::UnsupportedMediaType("text/csv".into()),
                415,
                Code::InvalidArgument,
            ),
            (GatewayError::NoUpstream("x".into()), 503, Code::Unavailable),
            (
                GatewayError::UnsupportedTransferCoding("gzip".into()),
                501,
                Code::Unimplemented,
            ),
            (
                GatewayError::DeadlineExceeded(Duration::from_secs(1), None),
                504,
                Code::DeadlineExceeded,
            ),
        ];
        for (err, http, code) in cases {
            assert_eq!(err.status(), (StatusCode::from_u16(http).unwrap(), code));
        }
    }
}
