//! Transcoding between HTTP/JSON and protobuf messages: request plans
//! (path variables, query, body), response plans and the JSON policy.

mod body;
pub(crate) mod empty_any;
mod encode;
mod error;
pub mod field_path;
pub(crate) mod float_safe;
pub(crate) mod json_number;
mod json_wire;
mod kind;
mod lenient;
mod mismatched;
mod options;
pub mod query;
pub mod request;
pub mod response;
pub mod splitter;
mod strict;
pub(crate) mod suggest;
#[cfg(test)]
mod test_protos;
pub mod text;
mod type_index;
mod wire_json;
pub(crate) mod writable;

pub use encode::EncodeError;
pub use error::RequestError;

/// Parses one JSON message of type `desc` (the body of an RPC-style call),
/// with the same rules as REST bodies, the nesting limit included.
pub fn decode_json(
    desc: &prost_reflect::MessageDescriptor,
    json: &[u8],
    codec: &Codec,
) -> Result<prost_reflect::DynamicMessage, RequestError> {
    let parsed = body::decode_message(desc, json, codec)
        .map_err(|err| suggest::hinted(&prost_reflect::Kind::Message(desc.clone()), err))?;
    request::check_depth(&parsed.message, parsed.depth)?;
    Ok(parsed.message)
}
pub use options::{Codec, JsonOptions, UnknownParams};
pub use request::{BodyPlan, BuildError, PlanError, RawRequest, RequestPlan, RequestPlans};
pub use response::{Encoded, ResponseError, ResponsePlan, ResponsePlans};

#[cfg(test)]
mod tests;
