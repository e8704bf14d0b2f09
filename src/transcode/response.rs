//! The response plan of a route and writing response messages as JSON (or
//! as raw `google.api.HttpBody` bytes).

use std::collections::HashMap;

use bytes::{BufMut, Bytes, BytesMut};
use http::HeaderValue;
use prost_reflect::{DynamicMessage, FieldDescriptor, Kind, MessageDescriptor, Value};
use serde_json::value::RawValue;

use super::Codec;
use super::empty_any;
use super::encode::EncodeError;
use super::json_number;
use super::kind::reaches;
use super::mismatched;
use super::request::{MAX_MESSAGE_DEPTH, PlanError};
use super::wire_json::{Nested, Planner, WirePlan};
use super::writable::{self, CHECKED, Checked};

const HTTP_BODY: &str = "google.api.HttpBody";
const ANY: &str = "google.protobuf.Any";
const FLOAT_VALUE: &str = "google.protobuf.FloatValue";
const DOUBLE_VALUE: &str = "google.protobuf.DoubleValue";

/// How a route writes its response. Resolved once at load.
#[derive(Debug, Clone)]
pub struct ResponsePlan {
    output: MessageDescriptor,
    /// `response_body`: the field written instead of the whole message.
    field: Option<FieldDescriptor>,
    /// The written value is a `google.api.HttpBody`: raw bytes out.
    raw: bool,
    /// The written value can hold a `FloatValue`/`DoubleValue`, whose
    /// special values need [`FloatSafe`](super::float_safe::FloatSafe).
    float_wrappers: bool,
    /// The written value can hold a value [`writable::check`] looks
    /// into: an `Any` (its packed messages are decoded while writing, and
    /// so escape the decoder's nesting limit), a `Duration` or a
    /// `Timestamp` (prost-reflect writes invalid ones as other values).
    checked: bool,
    /// The direct wire-to-JSON writer, when the written value is a message
    /// it follows.
    direct: Option<WirePlan>,
}

/// Builds the response plans of one descriptor pool so that they share the
/// direct writer's tables: each message type is planned once, however many
/// routes answer with it. The plans write directly once this is dropped;
/// until then they decode every response first (with the same result).
///
/// # Examples
///
/// ```
/// use protogate::transcode::{Codec, ResponsePlans};
///
/// let pool = prost_reflect::DescriptorPool::global();
/// let output = pool.get_message_by_name("google.protobuf.Timestamp").unwrap();
/// let mut plans = ResponsePlans::new();
/// let plan = plans.whole(&output);
/// drop(plans);
/// let body = plan.encode(bytes::Bytes::new(), &Codec::default()).unwrap().body;
/// assert_eq!(body, "\"1970-01-01T00:00:00Z\"");
/// ```
#[derive(Debug, Default)]
pub struct ResponsePlans {
    planner: Planner,
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

impl ResponsePlans {
    /// A builder with no plans yet.
    pub fn new() -> ResponsePlans {
        ResponsePlans::default()
    }

    /// Resolves `response_body` against the response message `output`.
    pub fn plan(
        &mut self,
        output: &MessageDescriptor,
        response_body: &str,
    ) -> Result<ResponsePlan, PlanError> {
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
        let written = match &field {
            None => Some(output.clone()),
            Some(f) => match f.kind() {
                Kind::Message(m) => Some(m),
                _ => None,
            },
        };
        let reaches = |names: &[&str]| written.as_ref().is_some_and(|m| reaches(m, names));
        // Scalars, lists and maps named by `response_body` keep the
        // reflective path: they are rare and written through a JSON value.
        let direct = match &field {
            _ if raw => None,
            None => self.planner.plan(output, None),
            Some(f) if !f.is_list() && !f.is_map() && f.kind().as_message().is_some() => {
                self.planner.plan(output, Some(f.number()))
            }
            Some(_) => None,
        };
        Ok(ResponsePlan {
            output: output.clone(),
            field,
            raw,
            float_wrappers: reaches(&[FLOAT_VALUE, DOUBLE_VALUE, ANY]),
            checked: reaches(&CHECKED),
            direct,
        })
    }

    /// The plan that writes the whole message, whatever it is.
    pub fn whole(&mut self, output: &MessageDescriptor) -> ResponsePlan {
        ResponsePlan {
            output: output.clone(),
            field: None,
            raw: false,
            float_wrappers: reaches(output, &[FLOAT_VALUE, DOUBLE_VALUE, ANY]),
            checked: reaches(output, &CHECKED),
            direct: self.planner.plan(output, None),
        }
    }
}

impl ResponsePlan {
    /// Resolves `response_body` against the response message `output`.
    ///
    /// Its direct writer's tables are its own; [`ResponsePlans`] shares
    /// them among the plans of one pool.
    pub fn new(output: &MessageDescriptor, response_body: &str) -> Result<ResponsePlan, PlanError> {
        ResponsePlans::new().plan(output, response_body)
    }

    /// The plan that writes the whole message, whatever it is.
    pub fn whole(output: &MessageDescriptor) -> ResponsePlan {
        ResponsePlans::new().whole(output)
    }

    /// Whether the response is raw `google.api.HttpBody` bytes.
    pub fn is_raw(&self) -> bool {
        self.raw
    }

    /// The response message type.
    pub fn output(&self) -> &MessageDescriptor {
        &self.output
    }

    /// The `response_body` field written instead of the whole message, or
    /// `""`.
    pub fn response_body(&self) -> &str {
        self.field.as_ref().map_or("", |f| f.name())
    }

    /// Writes the HTTP body from the backend's message.
    ///
    /// Straight from the wire bytes when the message has the usual shape
    /// (the `wire_json` module); otherwise, with the same result or error,
    /// by decoding it first.
    pub fn encode(&self, message: Bytes, codec: &Codec) -> Result<Encoded, ResponseError> {
        if let Some(direct) = &self.direct {
            let nested = Nested {
                options: &codec.serialize,
                float_safe: self.float_wrappers,
            };
            if let Some(body) = direct.write(&message, codec, nested) {
                return Ok(Encoded {
                    content_type: JSON,
                    // An unset `response_body` message is `null`, as below.
                    body: body.unwrap_or(Bytes::from_static(b"null")),
                });
            }
            tracing::trace!("Response written the reflective way");
        }
        self.encode_reflect(message, codec)
    }

    /// Whether the direct writer writes `message` itself (for tests that
    /// must know the fast path ran).
    #[cfg(test)]
    pub(crate) fn is_direct(&self, message: &Bytes, codec: &Codec) -> bool {
        let nested = Nested {
            options: &codec.serialize,
            float_safe: self.float_wrappers,
        };
        self.direct
            .as_ref()
            .is_some_and(|d| d.write(message, codec, nested).is_some())
    }

    /// Decodes the backend's message into a `DynamicMessage` and writes the
    /// HTTP body from that.
    pub(crate) fn encode_reflect(
        &self,
        message: Bytes,
        codec: &Codec,
    ) -> Result<Encoded, ResponseError> {
        let size = message.len();
        let message = match DynamicMessage::decode(self.output.clone(), message.clone()) {
            Ok(message) => message,
            Err(err) => {
                // A field of another wire type than declared (a backend on
                // an older `.proto`) is an unknown field, as the protobuf
                // runtimes read it, not a reason to lose the response.
                let kept = mismatched::drop_mismatched(&self.output, &message)
                    .ok_or_else(|| ResponseError(err.to_string()))?;
                tracing::debug!(
                    %err,
                    message = %self.output.full_name(),
                    "Response fields of another wire type than declared left out"
                );
                DynamicMessage::decode(self.output.clone(), kept)
                    .map_err(|_| ResponseError(err.to_string()))?
            }
        };
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
        if let Some(field) = &self.field
            && !field.is_list()
            && !field.is_map()
            && field.kind().as_message().is_some()
            && !message.has_field(field)
        {
            // Unset: `null`, as proto3 JSON writes it; an empty message
            // would be a value the backend never sent (an unset Timestamp
            // is not the epoch, an unset wrapper not zero).
            return Ok(Encoded {
                content_type: JSON,
                body: Bytes::from_static(b"null"),
            });
        }
        let mut out = BytesMut::with_capacity(size_hint * 2 + 16).writer();
        let mut ser = json_number::serializer(&mut out);
        let target = match (&self.field, value.as_deref()) {
            (None, _) => message,
            (Some(_), Some(Value::Message(inner))) => inner,
            (Some(field), _) => return self.encode_field(message, field, codec),
        };
        let checked = self.check(target)?;
        empty_any::serialize(
            target,
            &mut ser,
            options,
            self.float_wrappers,
            checked.empty_any,
        )
        .map_err(|e| ResponseError(e.to_string()))?;
        Ok(Encoded {
            content_type: JSON,
            body: out.into_inner().freeze(),
        })
    }

    /// Refuses what is about to be written when prost-reflect would
    /// recurse into it without end or write it as another value; only
    /// the written part counts. Says whether it holds an empty `Any`.
    fn check(&self, written: &DynamicMessage) -> Result<Checked, ResponseError> {
        if !self.checked {
            return Ok(Checked::default());
        }
        writable::check(written, MAX_MESSAGE_DEPTH).map_err(|e| ResponseError(e.to_string()))
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
        let checked = self.check(&only)?;
        let key = if codec.use_proto_names {
            field.name()
        } else {
            field.json_name()
        };
        // Written to bytes and the field's value taken out as written
        // (`RawValue`): through a `serde_json::Value`, a `float` would be
        // widened to a double (0.1 as 0.10000000149011612).
        let write = |options: &prost_reflect::SerializeOptions| {
            let mut out = Vec::new();
            let ser = &mut json_number::serializer(&mut out);
            empty_any::serialize(&only, ser, options, true, checked.empty_any)
                .map_err(|e| ResponseError(e.to_string()))?;
            let mut fields: HashMap<String, Box<RawValue>> =
                serde_json::from_slice(&out).map_err(|e| ResponseError(e.to_string()))?;
            Ok::<_, ResponseError>(fields.remove(key))
        };
        // With the configured options first; a field left out for holding
        // its default is then written with defaults on, which only affects
        // that (empty or zero) value itself.
        let mut value = write(&codec.serialize)?;
        if value.is_none() {
            value = write(&codec.serialize.clone().skip_default_fields(false))?;
        }
        let body = match value {
            Some(raw) => Bytes::copy_from_slice(raw.get().as_bytes()),
            None => Bytes::from_static(b"null"),
        };
        Ok(Encoded {
            content_type: JSON,
            body,
        })
    }
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

/// Encodes a request message to protobuf bytes: those of `encode_to_vec`,
/// with each nested message sized once instead of once per level above it.
///
/// # Errors
///
/// A value of the wrong type for its field, where prost-reflect panics.
pub fn to_bytes(message: &DynamicMessage) -> Result<Bytes, EncodeError> {
    super::encode::encode(message)
}
