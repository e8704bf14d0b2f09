//! Reading a failed call's status: the causes tonic keeps only in the
//! error chain, what they say (could not connect, connection broken
//! mid-call, TLS spoken to a cleartext server), and what the call's
//! client is told ([`Upstream::classify`]).

use std::error::Error;

use tonic::{Code, Status};

use super::{CallError, HTTP_ANSWER, Upstream};

/// `err` and the errors under it, outermost first.
pub(crate) fn chain<'a>(
    err: &'a (dyn Error + 'static),
) -> impl Iterator<Item = &'a (dyn Error + 'static)> {
    std::iter::successors(Some(err), |&err| err.source())
}

/// The causes under `status`, outermost first: tonic keeps them only in
/// its error chain.
pub(crate) fn under(status: &Status) -> impl Iterator<Item = &(dyn Error + 'static)> {
    chain(status).skip(1)
}

/// The channel's finding that the backend broke gRPC in its answer
/// ([`super::channel::Violation`]), when that is why `status` failed.
pub(crate) fn violation(status: &Status) -> Option<&super::channel::Violation> {
    under(status).find_map(|err| err.downcast_ref::<super::channel::Violation>())
}

/// A status's message with the causes tonic keeps only in its error chain
/// (`tcp connect error: ... Connection refused`), and a hint when a TLS
/// handshake met a cleartext server.
pub(crate) fn causes(status: &Status) -> String {
    let mut message = status.message().to_owned();
    append_causes(&mut message, Error::source(status));
    if message.contains("InvalidContentType") {
        message
            .push_str(" (the upstream does not speak TLS? A cleartext one needs an http:// URL)");
    }
    message
}

/// Appends `cause` and its sources to `message`, skipping what it says
/// already.
pub(crate) fn append_causes(message: &mut String, cause: Option<&(dyn Error + 'static)>) {
    for err in cause.into_iter().flat_map(chain) {
        let text = err.to_string();
        if !message.contains(&text) {
            if !message.is_empty() {
                message.push_str(": ");
            }
            message.push_str(&text);
        }
    }
}

/// Whether the connection under a call broke while it was in flight (the
/// backend died or reset it): the call may or may not have been acted on.
pub(super) fn broken(status: &Status) -> bool {
    use std::io::ErrorKind;
    under(status).any(|err| {
        let io = err
            .downcast_ref::<std::io::Error>()
            .or_else(|| err.downcast_ref::<h2::Error>()?.get_io());
        if io.is_some_and(|io| {
            matches!(
                io.kind(),
                ErrorKind::BrokenPipe
                    | ErrorKind::ConnectionReset
                    | ErrorKind::ConnectionAborted
                    | ErrorKind::UnexpectedEof
            )
        }) {
            return true;
        }
        // h2 keeps the I/O error to itself and says what it was.
        let text = err.to_string();
        text.contains("broken pipe") || text.contains("connection reset")
    })
}

/// Whether an `E` is in `status`'s chain of causes.
pub(crate) fn caused_by<E: Error + 'static>(status: &Status) -> bool {
    under(status).any(|err| err.is::<E>())
}

/// A status the channel made up (it could not reach the backend): its
/// message gains the upstream and the underlying causes, which tonic keeps
/// only in the error chain.
fn explain(status: Status, name: &str, url: &str) -> Status {
    let Some(source) = Error::source(&status) else {
        return status;
    };
    let mut message = format!("upstream `{name}` ({url}): {}", status.message());
    append_causes(&mut message, Some(source));
    Status::new(status.code(), message)
}

impl Upstream {
    /// What a failed status means: the gateway's own size limit, a channel
    /// failure (explained), or the backend's answer.
    pub fn classify(&self, status: Status) -> CallError {
        // tonic's own refusal of an oversized message: the gateway's
        // limit, not the client's mistake (tonic says OUT_OF_RANGE).
        if status.code() == Code::OutOfRange
            && status
                .message()
                .starts_with("Error, decoded message length too large")
        {
            return CallError::TooLarge(self.max_message_bytes);
        }
        // tonic's decompression of a backend's message: past the size
        // limit, the gateway's limit; data that does not decompress, the
        // backend's fault (a 502), not the gateway's (tonic says
        // INTERNAL).
        if let Some(why) = status.message().strip_prefix("Error decompressing: ") {
            if status.code() == Code::ResourceExhausted {
                return CallError::TooLarge(self.max_message_bytes);
            }
            let why = why
                .split(", while receiving response")
                .next()
                .unwrap_or(why);
            return CallError::Protocol(format!(
                "upstream `{}` ({}): its response message does not decompress as its grpc-encoding says: {why}",
                self.name, self.url
            ));
        }
        // The backend broke the protocol in a way that is checked for
        // (a message cut short, two answers to one question): said
        // plainly, not "is it a gRPC server?" (it spoke gRPC).
        if let Some(violation) = violation(&status) {
            return CallError::Protocol(format!(
                "upstream `{}` ({}): {violation}",
                self.name, self.url
            ));
        }
        // An HTTP answer that is not gRPC (a web server's 404, a proxy's
        // 503 page): the code gRPC's HTTP mapping gives it, named with
        // the upstream that answered so; a 404 most often means a URL that
        // is not a gRPC server's.
        if status.message().starts_with(HTTP_ANSWER) {
            let hint = if status.code() == Code::Unimplemented {
                " (is it a gRPC server, on the right port?)"
            } else {
                ""
            };
            return CallError::Status(Status::with_metadata(
                status.code(),
                format!(
                    "upstream `{}` ({}): {}{hint}",
                    self.name,
                    self.url,
                    status.message()
                ),
                status.metadata().clone(),
            ));
        }
        let made_by_channel = Error::source(&status).is_some();
        // The channel's own timer (the client's `grpc-timeout` on a
        // passed-through call) ran out: the deadline, not an outage.
        if caused_by::<tonic::TimeoutExpired>(&status) {
            return CallError::Status(Status::deadline_exceeded(format!(
                "upstream `{}` ({}): the deadline passed before it answered",
                self.name, self.url
            )));
        }
        // Our channel only calls on a connection whose HTTP/2 handshake
        // ended (the peer's SETTINGS): a peer that spoke HTTP/2, so a
        // break there is the backend going away, even before any call went
        // through (all were in flight when it died).
        if made_by_channel
            && (self.answered.load(std::sync::atomic::Ordering::Relaxed)
                || !caused_by::<tonic::ConnectError>(&status))
            && broken(&status)
        {
            return CallError::Status(Status::unavailable(format!(
                "upstream `{}` ({}): the connection broke during the call: {}",
                self.name,
                self.url,
                causes(&status)
            )));
        }
        let code = status.code();
        if !made_by_channel && status.message().is_empty() {
            // The backend said nothing: say who answered what.
            return CallError::Status(Status::with_details_and_metadata(
                code,
                format!(
                    "upstream `{}` ({}) answered {code:?} without a message",
                    self.name, self.url
                ),
                status.details().to_vec().into(),
                status.metadata().clone(),
            ));
        }
        let explained = explain(status, &self.name, &self.url);
        // A TLS upstream that ends the connection at the handshake, with an
        // alert (`CertificateRequired`, `UnknownCA`) or none: most often
        // one that asks for a client certificate it did not get or trust.
        if made_by_channel
            && self.url.starts_with("https://")
            && (explained.message().contains("close_notify")
                || explained.message().contains("received fatal alert"))
        {
            return CallError::Status(Status::unavailable(format!(
                "{} (the upstream refused the TLS connection: if it asks for a client certificate, set its tls.cert_file and tls.key_file to one it trusts)",
                explained.message()
            )));
        }
        if made_by_channel && !matches!(code, Code::Unavailable | Code::DeadlineExceeded) {
            // An upstream that has answered gRPC before is one: a reset
            // or a refused header block now is that call's fault alone.
            if self.answered.load(std::sync::atomic::Ordering::Relaxed) {
                return CallError::Protocol(explained.message().to_owned());
            }
            let hint = if self.url.starts_with("http://") {
                "is it a gRPC server? A TLS backend needs an https:// URL"
            } else {
                "is it a gRPC server?"
            };
            return CallError::Protocol(format!("{} ({hint})", explained.message()));
        }
        // A TLS handshake answered by a cleartext server: rustls sees a
        // record that is not TLS.
        if made_by_channel
            && self.url.starts_with("https://")
            && explained.message().contains("InvalidContentType")
        {
            return CallError::Status(Status::new(
                code,
                format!(
                    "{} (the backend does not speak TLS? A cleartext backend needs an http:// URL)",
                    explained.message()
                ),
            ));
        }
        CallError::Status(explained)
    }
}
