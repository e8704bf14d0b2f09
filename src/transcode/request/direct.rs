//! Encoding requests with the direct JSON-to-protobuf encoder
//! ([`json_wire`](crate::transcode::json_wire)), and the builder that shares
//! its tables among the plans of one pool.

use bytes::Bytes;
use prost_reflect::MessageDescriptor;

use super::{BodyPlan, PlanError, RawRequest, RequestPlan};
use crate::http_rule::Template;
use crate::transcode::encode::EncodeError;
use crate::transcode::field_path::FieldPath;
use crate::transcode::json_wire::{Bail, DirectPlan, Planner, Target};
use crate::transcode::{Codec, RequestError};

/// Builds the request plans of one descriptor pool so that they share the
/// direct encoder's tables: each message type is planned once, however
/// many routes take it. The plans encode directly once this is dropped;
/// until then they build every request message first (with the same
/// result).
///
/// # Examples
///
/// ```
/// use protogate::http_rule::{Matcher, Template};
/// use protogate::transcode::{Codec, RawRequest, RequestPlans};
///
/// let pool = prost_reflect::DescriptorPool::global();
/// let input = pool.get_message_by_name("google.protobuf.Api").unwrap();
/// let template = Template::parse("/v1/apis/{name}").unwrap();
/// let mut plans = RequestPlans::new();
/// let plan = plans.plan(&input, &template, "*").unwrap();
/// drop(plans);
/// let mut matcher = Matcher::new();
/// matcher.insert(http::Method::POST, &template, 0).unwrap();
/// let found = matcher.find(&http::Method::POST, "/v1/apis/a").unwrap();
/// let request = RawRequest {
///     path: "/v1/apis/a",
///     found: &found,
///     query: None,
///     content_type: "application/json",
///     body: bytes::Bytes::from_static(br#"{"version": "v1"}"#),
/// };
/// let encoded = plan.encode(request, &Codec::default()).unwrap();
/// // `version` (field 4) from the body, then `name` (field 1) from the path.
/// assert_eq!(&encoded[..], b"\x22\x02v1\x0a\x01a");
/// ```
#[derive(Debug, Default)]
pub struct RequestPlans {
    planner: Planner,
}

/// A request message that could not be built or encoded.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The client's request does not fit the message (400).
    #[error(transparent)]
    Request(#[from] RequestError),
    /// The message built cannot be encoded (a gateway bug).
    #[error(transparent)]
    Encode(#[from] EncodeError),
}

impl RequestPlans {
    /// A builder with no plans yet.
    pub fn new() -> RequestPlans {
        RequestPlans::default()
    }

    /// Resolves `template`'s variables and the `body` setting against the
    /// request message `input`.
    pub fn plan(
        &mut self,
        input: &MessageDescriptor,
        template: &Template,
        body: &str,
    ) -> Result<RequestPlan, PlanError> {
        let mut plan = RequestPlan::resolve(input, template, body)?;
        let target = match &plan.body {
            BodyPlan::None => Some(Target::None),
            BodyPlan::Whole => Some(Target::Whole),
            BodyPlan::Field(field) => Some(Target::Field(field)),
            // `google.api.HttpBody` bodies are raw bytes, not JSON.
            BodyPlan::RawWhole | BodyPlan::RawField(_) => None,
        };
        let fields: Vec<FieldPath> = plan.variables.iter().map(|v| v.field.clone()).collect();
        plan.direct = target.and_then(|target| self.planner.plan(input, target, &fields));
        Ok(plan)
    }
}

impl RequestPlan {
    /// Builds the request message and encodes it: the protobuf bytes sent
    /// upstream.
    ///
    /// Straight from the JSON when the plan has a direct encoder and the
    /// request is one it takes (`json_wire`); otherwise, with the same
    /// result or error, by building the message first ([`decode`]).
    ///
    /// [`decode`]: RequestPlan::decode
    pub fn encode(&self, request: RawRequest<'_>, codec: &Codec) -> Result<Bytes, BuildError> {
        if let Some(direct) = &self.direct
            && let Some(encoded) = self.encode_direct(direct, &request, &request.body, false, codec)
        {
            return Ok(encoded);
        }
        let message = self.decode(request, codec)?;
        Ok(crate::transcode::encode::encode(&message)?)
    }

    /// [`encode`](RequestPlan::encode) for one message of a streamed
    /// request body; see [`decode_streamed`](RequestPlan::decode_streamed).
    pub fn encode_streamed(
        &self,
        request: &RawRequest<'_>,
        json: &[u8],
        codec: &Codec,
    ) -> Result<Bytes, BuildError> {
        if let Some(direct) = &self.direct
            && let Some(encoded) = self.encode_direct(direct, request, json, true, codec)
        {
            return Ok(encoded);
        }
        let message = self.decode_streamed(request, json, codec)?;
        Ok(crate::transcode::encode::encode(&message)?)
    }

    /// The direct encoder's bytes for `json` (the body, or with `whole` a
    /// streamed message) and the path variables; `None` when the request
    /// is left to the reflective path: a query string (rare with a body,
    /// and its rules read the message built so far), case-insensitive
    /// names, or whatever the encoder bails on.
    fn encode_direct(
        &self,
        direct: &DirectPlan,
        request: &RawRequest<'_>,
        json: &[u8],
        whole: bool,
        codec: &Codec,
    ) -> Option<Bytes> {
        let lenient = codec.case_insensitive_fields || codec.case_insensitive_enums;
        if lenient || request.query.is_some_and(|q| !q.is_empty()) {
            return None;
        }
        let body = if whole {
            direct.message(json, codec)
        } else {
            direct.body(json, codec)
        };
        let encoded = body.and_then(|mut written| {
            for (index, var) in self.variables.iter().enumerate() {
                let text = var.text(request).map_err(|_| Bail)?;
                direct.var(index, &text, &mut written)?;
            }
            direct.finish(written)
        });
        if encoded.is_err() {
            tracing::trace!("Request encoded the reflective way");
        }
        encoded.ok()
    }

    /// Whether the direct encoder encodes `request` itself (for tests that
    /// must know the fast path ran).
    #[cfg(test)]
    pub(crate) fn is_direct(&self, request: &RawRequest<'_>, codec: &Codec) -> bool {
        self.direct.as_ref().is_some_and(|direct| {
            self.encode_direct(direct, request, &request.body, false, codec)
                .is_some()
        })
    }
}
