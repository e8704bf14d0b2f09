//! `google.api.http`: reading rules, the path template grammar, path
//! percent-encoding and the compiled matcher.

pub mod matcher;
pub mod path;
pub mod rule;
pub mod template;

pub use matcher::{Found, Matcher, Miss, RouteId};
pub use rule::{Binding, RuleError};
pub use template::{Segment, Template, TemplateError, Variable};
