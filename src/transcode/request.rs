//! The request plan of a route — which field each path variable, the body
//! and the query fill — and building the request message from it.

use bytes::Bytes;
use prost_reflect::{DynamicMessage, FieldDescriptor, Kind, MessageDescriptor};

use crate::http_rule::{Found, Template, path};

use super::field_path::{FieldPath, find_field};
use super::{Codec, RequestError, body, query, text};

const HTTP_BODY: &str = "google.api.HttpBody";

/// A path variable bound to a field.
#[derive(Debug, Clone)]
pub struct PathVariable {
    field: FieldPath,
    start: usize,
    end: usize,
    single_segment: bool,
}

/// Where the HTTP body goes.
#[derive(Debug, Clone)]
pub enum BodyPlan {
    /// The route takes no body.
    None,
    /// JSON for the whole message (`body: "*"`).
    Whole,
    /// JSON for one top-level field (`body: "field"`).
    Field(FieldDescriptor),
    /// The request message is a `google.api.HttpBody`: raw bytes.
    RawWhole,
    /// One top-level `google.api.HttpBody` field takes the raw bytes.
    RawField(FieldDescriptor),
}

/// How a route builds its request message. Resolved once at load.
#[derive(Debug, Clone)]
pub struct RequestPlan {
    input: MessageDescriptor,
    variables: Vec<PathVariable>,
    body: BodyPlan,
    /// Fields bound by the path or the body; the query may not set them.
    bound: Vec<FieldPath>,
    /// Query parameters dropped without a look (`api_key`, `callback`).
    ignored_params: Vec<Box<str>>,
}

/// A route whose annotations do not fit its request message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// A path variable names no field, or a field that cannot hold text.
    #[error("path variable `{name}`: {reason}")]
    Variable {
        /// The variable's field path.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// `body` names no top-level field.
    #[error("body field `{0}` is not a top-level field of the request message")]
    Body(String),
    /// `response_body` names no top-level field.
    #[error("response_body field `{0}` is not a top-level field of the response message")]
    ResponseBody(String),
}

/// The parts of an HTTP request the plan reads.
#[derive(Debug)]
pub struct RawRequest<'a> {
    /// The normalised raw path the route matched.
    pub path: &'a str,
    /// The match, for the variables' text.
    pub found: &'a Found,
    /// The raw query string.
    pub query: Option<&'a str>,
    /// The `Content-Type` header (for `HttpBody`).
    pub content_type: &'a str,
    /// The whole body.
    pub body: Bytes,
}

impl RequestPlan {
    /// Resolves `template`'s variables and the `body` setting against the
    /// request message `input`.
    pub fn new(
        input: &MessageDescriptor,
        template: &Template,
        body: &str,
    ) -> Result<RequestPlan, PlanError> {
        let mut variables = Vec::with_capacity(template.variables.len());
        let mut bound = Vec::new();
        for var in &template.variables {
            let name = var.field_path_string();
            let field =
                FieldPath::resolve(input, &var.field_path).map_err(|e| PlanError::Variable {
                    name: name.clone(),
                    reason: e.to_string(),
                })?;
            let leaf = field.leaf();
            if leaf.is_list() || leaf.is_map() || !text::is_text_kind(&leaf.kind()) {
                return Err(PlanError::Variable {
                    name,
                    reason: format!(
                        "field `{}` is not a singular scalar, enum or wrapper",
                        leaf.name()
                    ),
                });
            }
            bound.push(field.clone());
            variables.push(PathVariable {
                field,
                start: var.start,
                end: var.end,
                single_segment: var.is_single_segment(&template.segments),
            });
        }
        let body = match body {
            "" => BodyPlan::None,
            "*" if input.full_name() == HTTP_BODY => BodyPlan::RawWhole,
            "*" => BodyPlan::Whole,
            name => {
                let field = find_field(input, name)
                    .filter(|f| f.name() == name)
                    .ok_or_else(|| PlanError::Body(name.to_owned()))?;
                bound.push(FieldPath::single(field.clone()));
                match field.kind() {
                    Kind::Message(m) if m.full_name() == HTTP_BODY && !field.is_list() => {
                        BodyPlan::RawField(field)
                    }
                    _ => BodyPlan::Field(field),
                }
            }
        };
        Ok(RequestPlan {
            input: input.clone(),
            variables,
            body,
            bound,
            ignored_params: Vec::new(),
        })
    }

    /// The request message type.
    pub fn input(&self) -> &MessageDescriptor {
        &self.input
    }

    /// Whether the route reads a body at all.
    pub fn takes_body(&self) -> bool {
        !matches!(self.body, BodyPlan::None)
    }

    /// Whether the body is raw bytes (`google.api.HttpBody`), not JSON.
    pub fn takes_raw_body(&self) -> bool {
        matches!(self.body, BodyPlan::RawWhole | BodyPlan::RawField(_))
    }

    /// Whether the body binds every field (`body: "*"`), leaving nothing
    /// for the query.
    pub fn binds_whole_body(&self) -> bool {
        matches!(self.body, BodyPlan::Whole | BodyPlan::RawWhole)
    }

    /// Sets the query parameters the route drops without a look.
    pub fn with_ignored_params(mut self, names: Vec<Box<str>>) -> RequestPlan {
        self.ignored_params = names;
        self
    }

    /// Whether the query parameter `name` is dropped without a look.
    pub fn ignores_param(&self, name: &str) -> bool {
        self.ignored_params.iter().any(|n| **n == *name)
    }

    /// Whether the field path `fields` overlaps a field bound by the path
    /// or body (one is a prefix of the other).
    pub fn is_bound_fields(&self, fields: &[FieldDescriptor]) -> bool {
        self.bound.iter().any(|b| b.overlaps_fields(fields))
    }

    /// Builds the request message: body first, then path variables, then
    /// the query.
    pub fn decode(
        &self,
        request: RawRequest<'_>,
        codec: &Codec,
    ) -> Result<DynamicMessage, RequestError> {
        let mut message = match &self.body {
            BodyPlan::None => DynamicMessage::new(self.input.clone()),
            BodyPlan::Whole => body::decode_message(&self.input, &request.body, codec)?,
            BodyPlan::Field(field) => body::decode_field(&self.input, field, &request.body, codec)?,
            BodyPlan::RawWhole => body::http_body(&self.input, request.content_type, request.body),
            BodyPlan::RawField(field) => {
                let mut message = DynamicMessage::new(self.input.clone());
                if let Kind::Message(desc) = field.kind() {
                    let raw = body::http_body(&desc, request.content_type, request.body);
                    message.set_field(field, prost_reflect::Value::Message(raw));
                }
                message
            }
        };
        for var in &self.variables {
            let raw = request.found.capture(request.path, var.start, var.end);
            let decoded = if var.single_segment {
                path::decode_segment(raw)?
            } else {
                path::decode_multi_segment(raw)?
            };
            let leaf = var.field.leaf();
            let value = text::parse_with(&leaf.kind(), &decoded, codec.case_insensitive_enums)
                .map_err(|reason| RequestError::PathValue {
                    name: var.field.to_string(),
                    reason,
                })?;
            var.field.parent_mut(&mut message)?.set_field(leaf, value);
        }
        if let Some(q) = request.query.filter(|q| !q.is_empty()) {
            query::apply(self, &mut message, q, codec)?;
        }
        Ok(message)
    }
}
