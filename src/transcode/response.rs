//! The response plan of a route and writing response messages as JSON (or
//! as raw `google.api.HttpBody` bytes).

use bytes::{BufMut, Bytes, BytesMut};
use http::HeaderValue;
use prost::Message as _;
use prost_reflect::{DynamicMessage, FieldDescriptor, Kind, MessageDescriptor, Value};

use super::Codec;
use super::float_safe::FloatSafe;
use super::request::PlanError;

const HTTP_BODY: &str = "google.api.HttpBody";

/// How a route writes its response. Resolved once at load.
#[derive(Debug, Clone)]
pub struct ResponsePlan {
    output: MessageDescriptor,
    /// `response_body`: the field written instead of the whole message.
    field: Option<FieldDescriptor>,
    /// The written value is a `google.api.HttpBody`: raw bytes out.
    raw: bool,
    /// The written value can hold a `FloatValue`/`DoubleValue`, whose
    /// special values need [`FloatSafe`].
    float_wrappers: bool,
}

/// A response ready to send.
#[derive(Debug)]
pub struct Encoded {
    /// The `Content-Type` to send.
    pub content_type: HeaderValue,
    /// The body.
    pub body: Bytes,
}

/// The backend's message could not be decoded or written.
#[derive(Debug, thiserror::Error)]
#[error("cannot transcode the upstream response: {0}")]
pub struct ResponseError(String);

/// `application/json`.
pub const JSON: HeaderValue = HeaderValue::from_static("application/json");
const OCTET_STREAM: HeaderValue = HeaderValue::from_static("application/octet-stream");

impl ResponsePlan {
    /// Resolves `response_body` against the response message `output`.
    pub fn new(output: &MessageDescriptor, response_body: &str) -> Result<ResponsePlan, PlanError> {
        let field = match response_body {
            "" => None,
            name => Some(
                output
                    .get_field_by_name(name)
                    .ok_or_else(|| PlanError::ResponseBody(name.to_owned()))?,
            ),
        };
        let raw = match &field {
            None => output.full_name() == HTTP_BODY,
            Some(f) => {
                !f.is_list() && matches!(f.kind(), Kind::Message(m) if m.full_name() == HTTP_BODY)
            }
        };
        let float_wrappers = match &field {
            None => reaches_float_wrapper(output),
            Some(f) => match f.kind() {
                Kind::Message(m) => reaches_float_wrapper(&m),
                _ => false,
            },
        };
        Ok(ResponsePlan {
            output: output.clone(),
            field,
            raw,
            float_wrappers,
        })
    }

    /// The plan that writes the whole message, whatever it is.
    pub fn whole(output: &MessageDescriptor) -> ResponsePlan {
        ResponsePlan {
            output: output.clone(),
            field: None,
            raw: false,
            float_wrappers: reaches_float_wrapper(output),
        }
    }

    /// Whether the response is raw `google.api.HttpBody` bytes.
    pub fn is_raw(&self) -> bool {
        self.raw
    }

    /// The response message type.
    pub fn output(&self) -> &MessageDescriptor {
        &self.output
    }

    /// Decodes the backend's message and writes the HTTP body.
    pub fn encode(&self, message: Bytes, codec: &Codec) -> Result<Encoded, ResponseError> {
        let size = message.len();
        let message = DynamicMessage::decode(self.output.clone(), message)
            .map_err(|e| ResponseError(e.to_string()))?;
        self.encode_message(&message, size, codec)
    }

    /// Writes a decoded response message.
    pub fn encode_message(
        &self,
        message: &DynamicMessage,
        size_hint: usize,
        codec: &Codec,
    ) -> Result<Encoded, ResponseError> {
        let options = &codec.serialize;
        let value = self.field.as_ref().map(|f| message.get_field(f));
        if self.raw {
            let body = match value.as_deref() {
                None => message,
                Some(Value::Message(body)) => body,
                Some(_) => {
                    return Err(ResponseError("response_body is not an HttpBody".to_owned()));
                }
            };
            return Ok(raw_body(body));
        }
        let mut out = BytesMut::with_capacity(size_hint * 2 + 16).writer();
        let mut ser = serde_json::Serializer::new(&mut out);
        let target = match (&self.field, value.as_deref()) {
            (None, _) => message,
            (Some(_), Some(Value::Message(inner))) => inner,
            (Some(field), _) => return self.encode_field(message, field, codec),
        };
        let written = if self.float_wrappers {
            target.serialize_with_options(FloatSafe(&mut ser), options)
        } else {
            target.serialize_with_options(&mut ser, options)
        };
        written.map_err(|e| ResponseError(e.to_string()))?;
        Ok(Encoded {
            content_type: JSON,
            body: out.into_inner().freeze(),
        })
    }

    /// `response_body` naming a scalar, repeated or map field: written
    /// through a message holding only that field, with defaults emitted so
    /// an empty list is `[]` and a zero is `0`, never nothing.
    fn encode_field(
        &self,
        message: &DynamicMessage,
        field: &FieldDescriptor,
        codec: &Codec,
    ) -> Result<Encoded, ResponseError> {
        let mut only = DynamicMessage::new(self.output.clone());
        only.set_field(field, message.get_field(field).into_owned());
        let key = if codec.use_proto_names {
            field.name()
        } else {
            field.json_name()
        };
        let write = |options: &prost_reflect::SerializeOptions| {
            only.serialize_with_options(FloatSafe(serde_json::value::Serializer), options)
                .map_err(|e| ResponseError(e.to_string()))
        };
        // With the configured options first; a field left out for holding
        // its default is then written with defaults on, which only affects
        // that (empty or zero) value itself.
        let mut value = match write(&codec.serialize)? {
            serde_json::Value::Object(mut map) => map.remove(key),
            _ => None,
        };
        if value.is_none() {
            let full = codec.serialize.clone().skip_default_fields(false);
            value = match write(&full)? {
                serde_json::Value::Object(mut map) => map.remove(key),
                _ => None,
            };
        }
        let value = value.unwrap_or(serde_json::Value::Null);
        let body = serde_json::to_vec(&value).map_err(|e| ResponseError(e.to_string()))?;
        Ok(Encoded {
            content_type: JSON,
            body: body.into(),
        })
    }
}

/// Whether values of type `desc` can hold a `FloatValue` or `DoubleValue`
/// (an `Any` can hold anything).
fn reaches_float_wrapper(desc: &MessageDescriptor) -> bool {
    let mut seen = Vec::new();
    let mut stack = vec![desc.clone()];
    while let Some(message) = stack.pop() {
        match message.full_name() {
            "google.protobuf.FloatValue"
            | "google.protobuf.DoubleValue"
            | "google.protobuf.Any" => return true,
            _ => {}
        }
        if seen.contains(&message) {
            continue;
        }
        for field in message.fields() {
            if let Kind::Message(child) = field.kind() {
                stack.push(child);
            }
        }
        seen.push(message);
    }
    false
}

fn raw_body(body: &DynamicMessage) -> Encoded {
    let content_type = match body.get_field_by_number(1).as_deref() {
        Some(Value::String(ct)) if !ct.is_empty() => {
            HeaderValue::from_str(ct).unwrap_or(OCTET_STREAM)
        }
        _ => OCTET_STREAM,
    };
    let data = match body.get_field_by_number(2).as_deref() {
        Some(Value::Bytes(data)) => data.clone(),
        _ => Bytes::new(),
    };
    Encoded {
        content_type,
        body: data,
    }
}

/// Encodes a message to protobuf bytes.
pub fn to_bytes(message: &DynamicMessage) -> Bytes {
    message.encode_to_vec().into()
}
