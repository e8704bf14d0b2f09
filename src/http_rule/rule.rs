//! Reading the `google.api.http` option of a method into typed bindings.

use http::Method;
use prost_reflect::{DynamicMessage, ExtensionDescriptor, MethodDescriptor, Value};

/// One HTTP binding of an RPC method: the primary rule or one of its
/// `additional_bindings`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    /// The HTTP method (`custom.kind` for custom patterns).
    pub method: Method,
    /// The path template as written.
    pub template: String,
    /// The `body` setting: empty, `*` or a top-level field name.
    pub body: String,
    /// The `response_body` setting: empty or a top-level field name.
    pub response_body: String,
}

/// A rule that cannot be turned into a binding.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    /// The rule sets none of get/put/post/delete/patch/custom.
    #[error("google.api.http rule sets no HTTP method and path")]
    NoPattern,
    /// `custom.kind` is not an HTTP method token.
    #[error("custom HTTP method `{0}` is not a valid method name")]
    BadCustomKind(String),
    /// `custom.kind` is `CONNECT`, whose requests name a host and port,
    /// never a path: the route could not be reached.
    #[error(
        "custom HTTP method CONNECT cannot be routed: its requests carry a host:port, not a path"
    )]
    ConnectKind,
    /// An `additional_bindings` entry has bindings of its own.
    #[error(
        "additional_bindings nest: http.proto allows one level, so the inner ones would never be served; list them all on the rule itself"
    )]
    NestedBindings,
}

/// The bindings declared on `method`, primary first. Empty when the method
/// has no `google.api.http` option.
pub fn bindings(
    method: &MethodDescriptor,
    http: &ExtensionDescriptor,
) -> Result<Vec<Binding>, RuleError> {
    let options = method.options();
    if !options.has_extension(http) {
        return Ok(Vec::new());
    }
    let Value::Message(rule) = &*options.get_extension(http) else {
        return Ok(Vec::new());
    };
    let mut out = vec![binding(rule)?];
    if let Some(Value::List(extra)) = field(rule, "additional_bindings").as_deref() {
        for value in extra {
            if let Value::Message(rule) = value {
                if matches!(field(rule, "additional_bindings").as_deref(), Some(Value::List(inner)) if !inner.is_empty())
                {
                    return Err(RuleError::NestedBindings);
                }
                out.push(binding(rule)?);
            }
        }
    }
    Ok(out)
}

fn field<'a>(rule: &'a DynamicMessage, name: &str) -> Option<std::borrow::Cow<'a, Value>> {
    rule.get_field_by_name(name)
}

fn string(rule: &DynamicMessage, name: &str) -> String {
    match field(rule, name).as_deref() {
        Some(Value::String(s)) => s.clone(),
        _ => String::new(),
    }
}

fn binding(rule: &DynamicMessage) -> Result<Binding, RuleError> {
    let verbs = [
        ("get", Method::GET),
        ("put", Method::PUT),
        ("post", Method::POST),
        ("delete", Method::DELETE),
        ("patch", Method::PATCH),
    ];
    let mut pattern = None;
    for (name, method) in verbs {
        if rule.has_field_by_name(name) {
            pattern = Some((method, string(rule, name)));
            break;
        }
    }
    if pattern.is_none()
        && rule.has_field_by_name("custom")
        && let Some(Value::Message(custom)) = field(rule, "custom").as_deref()
    {
        let kind = string(custom, "kind");
        let method =
            Method::from_bytes(kind.as_bytes()).map_err(|_| RuleError::BadCustomKind(kind))?;
        if method == Method::CONNECT {
            return Err(RuleError::ConnectKind);
        }
        pattern = Some((method, string(custom, "path")));
    }
    let (method, template) = pattern.ok_or(RuleError::NoPattern)?;
    Ok(Binding {
        method,
        template,
        body: string(rule, "body"),
        response_body: string(rule, "response_body"),
    })
}
