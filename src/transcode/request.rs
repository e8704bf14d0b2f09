//! The request plan of a route — which field each path variable, the body
//! and the query fill — and building the request message from it.

use bytes::Bytes;
use prost_reflect::{DynamicMessage, FieldDescriptor, Kind, MessageDescriptor};

use crate::http_rule::{Found, Template, path};

use super::field_path::{FieldPath, OneofConflict, find_field};
use super::json_wire::DirectPlan;
use super::{Codec, RequestError, body, query, suggest, text};

mod depth;
mod direct;

pub use depth::MAX_MESSAGE_DEPTH;
pub(super) use depth::check_depth;
#[cfg(test)]
pub(super) use depth::exceeds_message_depth;
pub use direct::{BuildError, RequestPlans};

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
    /// The direct JSON-to-protobuf encoder, when the request type and the
    /// path variables are ones it follows.
    direct: Option<DirectPlan>,
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
#[derive(Debug, Clone)]
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
    ///
    /// Its direct encoder's tables are its own; [`RequestPlans`] shares
    /// them among the plans of one pool.
    pub fn new(
        input: &MessageDescriptor,
        template: &Template,
        body: &str,
    ) -> Result<RequestPlan, PlanError> {
        RequestPlans::new().plan(input, template, body)
    }

    /// The plan without its direct encoder.
    pub(super) fn resolve(
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
            direct: None,
        })
    }

    /// The request message type.
    pub fn input(&self) -> &MessageDescriptor {
        &self.input
    }

    /// The `body` setting as written: `""`, `"*"` or a field name.
    pub fn body_setting(&self) -> &str {
        match &self.body {
            BodyPlan::None => "",
            BodyPlan::Whole | BodyPlan::RawWhole => "*",
            BodyPlan::Field(field) | BodyPlan::RawField(field) => field.name(),
        }
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
        // How deep the message may nest, from the JSON and query depths;
        // only a deep request pays for measuring the message itself.
        let mut depth = 0;
        let mut message = match &self.body {
            BodyPlan::None => DynamicMessage::new(self.input.clone()),
            BodyPlan::Whole => {
                let parsed = body::decode_message(&self.input, &request.body, codec)
                    .map_err(|e| self.hint(e, &request))?;
                depth = parsed.depth;
                parsed.message
            }
            BodyPlan::Field(field) => {
                let parsed = body::decode_field(&self.input, field, &request.body, codec)
                    .map_err(|e| self.hint(e, &request))?;
                depth = parsed.depth + 1;
                parsed.message
            }
            BodyPlan::RawWhole => {
                body::http_body(&self.input, request.content_type, request.body.clone())
            }
            BodyPlan::RawField(field) => {
                let mut message = DynamicMessage::new(self.input.clone());
                if let Kind::Message(desc) = field.kind() {
                    let raw = body::http_body(&desc, request.content_type, request.body.clone());
                    message.set_field(field, prost_reflect::Value::Message(raw));
                }
                message
            }
        };
        self.bind(&mut message, &request, &request.body, depth, codec)?;
        Ok(message)
    }

    /// A body error with a hint at the likely mistake, where one is
    /// plain: a form sent where JSON was meant (`curl -d` without a
    /// content type), or the body field's value wrapped in an object named
    /// after the field. Only failed requests pay for the look.
    fn hint(&self, err: RequestError, request: &RawRequest<'_>) -> RequestError {
        let RequestError::Json { at, reason } = err else {
            return err;
        };
        let media = request.content_type.split(';').next().unwrap_or_default();
        let json = body::strip_bom(&request.body);
        // A form is read as JSON: the type is the likely mistake only when
        // the body reads as a form (`name=x&n=5`), not when it is JSON that
        // fails for another reason (a syntax error, an unknown field).
        let looks_like_form = json
            .iter()
            .find(|b| !b.is_ascii_whitespace())
            .is_some_and(|b| !b"{[\"".contains(b))
            && json.contains(&b'=')
            && serde_json::from_slice::<serde::de::IgnoredAny>(json).is_err();
        let body_kind = match &self.body {
            BodyPlan::Field(field) => field.kind(),
            _ => Kind::Message(self.input.clone()),
        };
        let hint = if media
            .trim()
            .eq_ignore_ascii_case("application/x-www-form-urlencoded")
            && looks_like_form
        {
            Some(
                "the body was sent as a form (as `curl -d` does); this route takes JSON: \
                 send it with `Content-Type: application/json`"
                    .to_owned(),
            )
        } else if let BodyPlan::Field(field) = &self.body
            && let Ok(serde_json::Value::Object(object)) =
                serde_json::from_slice::<serde_json::Value>(json)
            && object.len() == 1
            && object
                .keys()
                .all(|k| k == field.name() || k == field.json_name())
        {
            Some(format!(
                "this route's body is the value of `{0}` itself; send it without the {{\"{0}\": ...}} around it",
                field.name()
            ))
        } else {
            suggest::json_body(&body_kind, at.as_deref(), &reason)
        };
        RequestError::Json {
            reason: suggest::with_hint(reason, hint),
            at,
        }
    }

    /// Builds one message of a streamed request body (client-streaming or
    /// bidirectional routes): `json` is one message; path variables apply
    /// to every message.
    pub fn decode_streamed(
        &self,
        request: &RawRequest<'_>,
        json: &[u8],
        codec: &Codec,
    ) -> Result<DynamicMessage, RequestError> {
        let parsed = body::decode_message(&self.input, json, codec)
            .map_err(|err| suggest::hinted(&Kind::Message(self.input.clone()), err))?;
        let mut message = parsed.message;
        self.bind(&mut message, request, json, parsed.depth, codec)?;
        Ok(message)
    }

    /// Applies path variables, then the query, then checks the nesting
    /// depth (`depth`: how deep the body's JSON, `json`, went).
    fn bind(
        &self,
        message: &mut DynamicMessage,
        request: &RawRequest<'_>,
        json: &[u8],
        mut depth: usize,
        codec: &Codec,
    ) -> Result<(), RequestError> {
        for var in &self.variables {
            let decoded = var.text(request)?;
            let leaf = var.field.leaf();
            let value = text::parse_with(&leaf.kind(), &decoded, codec.case_insensitive_enums)
                .map_err(|reason| RequestError::PathValue {
                    name: var.field.to_string(),
                    reason,
                })?;
            var.field
                .parent_mut(message)
                .map_err(|conflict| self.spelt_in_body(conflict, &var.field, json, codec))?
                .set_field(leaf, value);
        }
        if let Some(q) = request.query.filter(|q| !q.is_empty()) {
            depth = depth.max(query::apply(self, message, q, codec)?);
        }
        check_depth(message, depth)
    }
}

impl RequestPlan {
    /// `conflict`, met setting the path variable `path`, with both members
    /// named by their paths: the variable's as the template writes it, the
    /// member the JSON body set as the body spells it (a member the body
    /// field is keeps the route's spelling).
    fn spelt_in_body(
        &self,
        mut conflict: OneofConflict,
        path: &FieldPath,
        json: &[u8],
        codec: &Codec,
    ) -> OneofConflict {
        let Some(level) = path
            .fields()
            .iter()
            .position(|f| f.name() == conflict.field)
        else {
            return conflict;
        };
        let parents = &path.fields()[..level];
        let names: Vec<&str> = path.fields()[..=level].iter().map(|f| f.name()).collect();
        conflict.field = names.join(".");
        let (target, parents) = match &self.body {
            BodyPlan::Whole => (None, parents),
            BodyPlan::Field(field) => match parents.split_first() {
                Some((first, rest)) if first.number() == field.number() => (Some(field), rest),
                _ => return conflict,
            },
            _ => return conflict,
        };
        let spelt = body::spelling(&self.input, target, json, parents, &conflict.other, codec);
        if let Some(spelt) = spelt {
            conflict.other = spelt;
        }
        conflict
    }
}

impl PathVariable {
    /// The variable's text in `request`, decoded.
    pub(super) fn text<'r>(
        &self,
        request: &RawRequest<'r>,
    ) -> Result<std::borrow::Cow<'r, str>, crate::http_rule::path::PathError> {
        let raw = request.found.capture(request.path, self.start, self.end);
        if self.single_segment {
            path::decode_segment(raw)
        } else {
            path::decode_multi_segment(raw)
        }
    }
}
