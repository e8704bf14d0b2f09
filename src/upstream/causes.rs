//! Reading a failed call's status: the causes tonic keeps only in the
//! error chain, and what they say (could not connect, connection broken
//! mid-call, TLS spoken to a cleartext server).

use tonic::Status;

/// A status's message with the causes tonic keeps only in its error chain
/// (`tcp connect error: ... Connection refused`), and a hint when a TLS
/// handshake met a cleartext server.
pub(crate) fn causes(status: &Status) -> String {
    let mut message = status.message().to_owned();
    append_causes(&mut message, std::error::Error::source(status));
    if message.contains("InvalidContentType") {
        message
            .push_str(" (the upstream does not speak TLS? A cleartext one needs an http:// URL)");
    }
    message
}

/// Appends `cause` and its sources to `message`, skipping what it says
/// already.
pub(super) fn append_causes(
    message: &mut String,
    mut cause: Option<&(dyn std::error::Error + 'static)>,
) {
    while let Some(err) = cause {
        let text = err.to_string();
        if !message.contains(&text) {
            if !message.is_empty() {
                message.push_str(": ");
            }
            message.push_str(&text);
        }
        cause = err.source();
    }
}

/// Whether the connection under a call broke while it was in flight (the
/// backend died or reset it): the call may or may not have been acted on.
pub(super) fn broken(status: &Status) -> bool {
    use std::io::ErrorKind;
    let mut cause = std::error::Error::source(status);
    while let Some(err) = cause {
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
        if text.contains("broken pipe") || text.contains("connection reset") {
            return true;
        }
        cause = err.source();
    }
    false
}

/// Whether an `E` is in `status`'s chain of causes.
pub(crate) fn caused_by<E: std::error::Error + 'static>(status: &Status) -> bool {
    let mut cause = std::error::Error::source(status);
    while let Some(err) = cause {
        if err.is::<E>() {
            return true;
        }
        cause = err.source();
    }
    false
}

/// A status the channel made up (it could not reach the backend): its
/// message gains the upstream and the underlying causes, which tonic keeps
/// only in the error chain.
pub(super) fn explain(status: Status, name: &str, url: &str) -> Status {
    let Some(source) = std::error::Error::source(&status) else {
        return status;
    };
    let mut message = format!("upstream `{name}` ({url}): {}", status.message());
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(source);
    while let Some(err) = cause {
        let text = err.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        cause = err.source();
    }
    Status::new(status.code(), message)
}
