//! Client mistakes found while building a request message: all answer 400.

use crate::http_rule::path::PathError;

use super::field_path::OneofConflict;

/// A request that cannot be turned into a message. Always the client's
/// fault; the message names the parameter, header or JSON field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// A malformed escape in the path.
    #[error(transparent)]
    Path(#[from] PathError),
    /// A path variable whose text does not fit its field.
    #[error("path variable `{name}`: {reason}")]
    PathValue {
        /// The variable's field path.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// A query parameter whose value does not fit its field, or that names
    /// something that cannot be set from the query.
    #[error("query parameter `{name}`: {reason}")]
    QueryValue {
        /// The parameter as given.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// A query parameter naming no field.
    #[error("unknown query parameter `{name}`{}", meant.as_deref().map(|m| format!(" (did you mean `{m}`?)")).unwrap_or_default())]
    UnknownQuery {
        /// The parameter as given.
        name: String,
        /// The parameter it likely meant, when one is close.
        meant: Option<String>,
    },
    /// A query parameter for a field the path or body binds.
    #[error("query parameter `{0}` sets a field that this route binds from the path or body")]
    QueryBound(String),
    /// A non-repeated field given twice in the query.
    #[error("query parameter `{0}` is given more than once but its field is not repeated")]
    QueryRepeated(String),
    /// A query string on a route whose body binds the whole message.
    #[error(
        "query parameter `{0}` is not accepted: this route's body binds the whole request message"
    )]
    QueryWithWholeBody(String),
    /// A query parameter with nothing before its `=` (`?=x`).
    #[error("a query parameter has an empty name")]
    QueryEmptyName,
    /// Too many query parameters.
    #[error("more than {0} query parameters")]
    TooManyQueryParams(usize),
    /// Malformed escape or bad UTF-8 in the query string.
    #[error("query string is not valid percent-encoded UTF-8")]
    QueryEncoding,
    /// The JSON body does not parse or does not fit the message.
    #[error("invalid JSON body{}: {reason}", at.as_deref().map(|p| format!(" at `{p}`")).unwrap_or_default())]
    Json {
        /// The JSON path of the offending value, when known.
        at: Option<String>,
        /// What is wrong.
        reason: String,
    },
    /// The request message would nest deeper than protobuf allows.
    #[error("request message nests deeper than {0} levels, which protobuf decoders refuse")]
    TooDeepMessage(usize),
    /// The JSON body nests deeper than allowed.
    #[error("JSON body nests deeper than {0} levels")]
    TooDeep(usize),
    /// Two members of one oneof.
    #[error(transparent)]
    Oneof(#[from] OneofConflict),
    /// The metadata to forward is larger than the limit (431).
    #[error("request headers forwarded as gRPC metadata exceed {0} bytes")]
    MetadataTooLarge(usize),
    /// A Connect stream request whose envelope is not a request's.
    #[error("invalid request envelope: {0}")]
    Envelope(String),
    /// A header that cannot become gRPC metadata.
    #[error("header `{name}`: {reason}")]
    Header {
        /// The header name.
        name: String,
        /// What is wrong.
        reason: String,
    },
}
