//! Connect's GET form of a unary call (methods marked
//! `idempotency_level = NO_SIDE_EFFECTS`): the message and its encoding in
//! the query.

use axum::body::Body;
use bytes::Bytes;
use http::request::Parts;
use http::{HeaderValue, Response, header};

use crate::error::GatewayError;
use crate::snapshot::Snapshot;
use crate::transcode::RequestError;

use super::{Encoding, body, check_version, error_response, prepare, query, shortened, unary};
use crate::server::coding::Coding;
use crate::server::own;

/// A unary call made with GET, its message in the query.
pub(super) async fn get(
    snapshot: &Snapshot,
    parts: &Parts,
) -> Result<Response<Body>, GatewayError> {
    check_version(&parts.headers)?;
    let bad = |name: &str, reason: String| {
        GatewayError::BadRequest(RequestError::QueryValue {
            name: name.to_owned(),
            reason,
        })
    };
    let (mut message, mut encoding, mut base64, mut compression) = (None, None, false, None);
    let mut seen = [false; 5];
    for (key, value) in query(&parts.uri) {
        let text = || shortened(&String::from_utf8_lossy(&value));
        // Connect's own parameters once each: a second one would be
        // taken over the first, or the first over it, with no word.
        let own = ["connect", "encoding", "base64", "compression", "message"];
        if let Some(index) = own.iter().position(|name| *name == key)
            && std::mem::replace(&mut seen[index], true)
        {
            return Err(bad(own[index], "given more than once".to_owned()));
        }
        match key.as_str() {
            "connect" if value == b"v1" => {}
            "connect" => {
                let reason = format!(
                    "unsupported Connect protocol version `{}`: this gateway speaks v1",
                    text()
                );
                return Err(bad("connect", reason));
            }
            "encoding" => {
                encoding = Some(match &value[..] {
                    b"json" => Encoding::Json,
                    b"proto" => Encoding::Proto,
                    _ => return Err(bad("encoding", format!("`{}`: send json or proto", text()))),
                });
            }
            "base64" => {
                base64 = match &value[..] {
                    b"1" => true,
                    b"0" | b"" => false,
                    _ => {
                        let reason =
                            format!("`{}`: send 1 for a base64 message, or leave it out", text());
                        return Err(bad("base64", reason));
                    }
                }
            }
            "compression" => compression = Some(String::from_utf8_lossy(&value).into_owned()),
            "message" => message = Some(value),
            // Parameters Connect does not define are left alone (a cache
            // buster, say), as connect-go does.
            _ => {}
        }
    }
    let Some(encoding) = encoding else {
        return Err(bad(
            "encoding",
            "missing: a Connect GET names json or proto".to_owned(),
        ));
    };
    let message = message.ok_or_else(|| {
        bad(
            "message",
            "missing: a Connect GET carries the request message".to_owned(),
        )
    })?;
    let limit = snapshot.limits.max_body_bytes;
    let mut message = Bytes::from(message);
    if base64 {
        let text =
            std::str::from_utf8(&message).map_err(|_| bad("message", "not base64".into()))?;
        message = crate::transcode::text::decode_base64(text)
            .map_err(|reason| bad("message", reason))?
            .into();
    }
    let coding = match compression
        .as_deref()
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        None | Some("identity") => Coding::Identity,
        Some("gzip") => Coding::Gzip,
        Some("br") => Coding::Brotli,
        Some("zstd") => Coding::Zstd,
        Some(other) => {
            return Err(GatewayError::UnsupportedEncoding {
                header: "compression",
                coding: shortened(other),
            });
        }
    };
    let message = coding.decode(message, limit).await?;
    if message.len() > limit {
        return Err(GatewayError::PayloadTooLarge(limit));
    }
    let rpc = if own::is_own(parts.uri.path()) {
        None
    } else {
        Some(prepare(snapshot, parts)?)
    };
    let side_effect_free = rpc.as_ref().is_some_and(|(rpc, _, _)| {
        rpc.descriptor
            .method_descriptor_proto()
            .options
            .as_ref()
            .is_some_and(|o| {
                o.idempotency_level()
                    == prost_types::method_options::IdempotencyLevel::NoSideEffects
            })
    });
    let known = rpc.is_some();
    let Some((rpc, upstream, metadata)) = rpc.filter(|_| side_effect_free) else {
        // A served method's path is named whole; another is the client's
        // text, cut short.
        let path = if known {
            parts.uri.path().into()
        } else {
            shortened(parts.uri.path())
        };
        let err = GatewayError::Upstream(
            tonic::Status::unimplemented(format!(
                "a Connect GET calls only methods marked `idempotency_level = NO_SIDE_EFFECTS`; call {path} with POST"
            )),
            None,
        );
        let mut response = error_response(&err);
        *response.status_mut() = http::StatusCode::METHOD_NOT_ALLOWED;
        response
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("POST"));
        return Ok(response);
    };
    let read = body::ReadBody {
        bytes: message,
        share: body::Share::default(),
    };
    unary(snapshot, parts, read, rpc, upstream, metadata, encoding).await
}
