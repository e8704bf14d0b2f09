//! The scopes a token holds: its `scope` claim (space-separated, RFC
//! 9068), or `scp` (an array, or space-separated) as some identity
//! providers write it.

use serde_json::{Map, Value};

use super::AuthError;

/// A token's scopes, borrowed from its claims.
#[derive(Debug)]
pub(crate) struct Held<'a> {
    claim: Option<&'a Value>,
}

impl<'a> Held<'a> {
    /// The scopes of `claims`; a `scope` or `scp` of another type is a
    /// malformed token.
    pub(crate) fn of(claims: &'a Map<String, Value>) -> Result<Held<'a>, AuthError> {
        let claim = claims.get("scope").or_else(|| claims.get("scp"));
        match claim {
            None | Some(Value::String(_)) => Ok(Held { claim }),
            Some(Value::Array(items)) if items.iter().all(Value::is_string) => Ok(Held { claim }),
            Some(_) => Err(AuthError::Claims),
        }
    }

    /// Whether `scope` is among them.
    pub(crate) fn contains(&self, scope: &str) -> bool {
        match self.claim {
            Some(Value::String(text)) => text.split(' ').any(|s| s == scope),
            Some(Value::Array(items)) => items.iter().any(|s| s.as_str() == Some(scope)),
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::Held;

    #[test]
    fn scope_and_scp_are_read() {
        let claims = |v: serde_json::Value| v.as_object().unwrap().clone();
        let spaced = claims(json!({"scope": "books.read books.write"}));
        let held = Held::of(&spaced).unwrap();
        assert!(held.contains("books.write") && !held.contains("books"));
        let listed = claims(json!({"scp": ["books.read"]}));
        assert!(Held::of(&listed).unwrap().contains("books.read"));
        let none = claims(json!({}));
        assert!(!Held::of(&none).unwrap().contains("books.read"));
        assert!(Held::of(&claims(json!({"scope": 3}))).is_err());
    }
}
