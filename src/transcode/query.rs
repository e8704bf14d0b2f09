//! Query parameters into request fields.
//!
//! The query string is form-encoded: `+` is a space and `%2B` a plus. A key
//! is a dotted field path of proto or JSON names (`a.b.c`); repeated fields
//! take one value per occurrence (`x=1&x=2`, never a comma list).

use std::borrow::Cow;

use prost_reflect::{DynamicMessage, Value};

use super::field_path::{FieldPath, FieldPathError};
use super::options::UnknownParams;
use super::request::RequestPlan;
use super::{Codec, RequestError, text};

/// Decodes one form-encoded key or value.
pub fn form_decode(raw: &str) -> Result<Cow<'_, str>, RequestError> {
    if !raw.contains(['%', '+']) {
        return Ok(Cow::Borrowed(raw));
    }
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b'%' => {
                let byte = bytes
                    .get(i + 1..i + 3)
                    .filter(|h| h.iter().all(u8::is_ascii_hexdigit))
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or(RequestError::QueryEncoding)?;
                out.push(byte);
                i += 3;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out)
        .map(Cow::Owned)
        .map_err(|_| RequestError::QueryEncoding)
}

/// Sets the fields named in `query` on `message`.
pub fn apply(
    plan: &RequestPlan,
    message: &mut DynamicMessage,
    query: &str,
    codec: &Codec,
) -> Result<(), RequestError> {
    let mut singular: Vec<FieldPath> = Vec::new();
    for (count, pair) in query.split('&').filter(|p| !p.is_empty()).enumerate() {
        if count >= codec.max_query_params {
            return Err(RequestError::TooManyQueryParams(codec.max_query_params));
        }
        let (raw_key, raw_value) = pair.split_once('=').unwrap_or((pair, ""));
        let key = form_decode(raw_key)?;
        let value = form_decode(raw_value)?;
        if plan.binds_whole_body() {
            return Err(RequestError::QueryWithWholeBody(key.into_owned()));
        }
        let names: Vec<&str> = key.split('.').collect();
        let path = match FieldPath::resolve(plan.input(), &names) {
            Ok(path) => path,
            Err(FieldPathError::NoSuchField { .. })
                if codec.unknown_params == UnknownParams::Ignore =>
            {
                continue;
            }
            Err(FieldPathError::NoSuchField { .. }) => {
                return Err(RequestError::UnknownQuery(key.into_owned()));
            }
            Err(err) => {
                return Err(RequestError::QueryValue {
                    name: key.into_owned(),
                    reason: err.to_string(),
                });
            }
        };
        if plan.is_bound(&path) {
            return Err(RequestError::QueryBound(key.into_owned()));
        }
        let leaf = path.leaf();
        let kind = leaf.kind();
        // Limitation: maps (`m[key]=v`) and repeated messages cannot be set
        // from the query yet; they answer 400 like any message field.
        if leaf.is_map() || !text::is_text_kind(&kind) {
            return Err(RequestError::QueryValue {
                name: key.into_owned(),
                reason: "this field cannot be set from the query string".to_owned(),
            });
        }
        let parsed = text::parse(&kind, &value).map_err(|reason| RequestError::QueryValue {
            name: key.to_string(),
            reason,
        })?;
        let parent = path.parent_mut(message)?;
        if leaf.is_list() {
            if let Value::List(list) = parent.get_field_mut(leaf) {
                list.push(parsed);
            }
        } else {
            if singular.contains(&path) {
                return Err(RequestError::QueryRepeated(key.into_owned()));
            }
            parent.set_field(leaf, parsed);
            singular.push(path);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plus_is_space_and_escaped_plus_is_plus() {
        assert_eq!(form_decode("red+apple").unwrap(), "red apple");
        assert_eq!(form_decode("%2B44").unwrap(), "+44");
        assert_eq!(form_decode("big%20green+box").unwrap(), "big green box");
        assert_eq!(form_decode("caf%C3%A9").unwrap(), "café");
    }

    #[test]
    fn bad_escapes_are_errors() {
        assert_eq!(form_decode("%zz"), Err(RequestError::QueryEncoding));
        assert_eq!(form_decode("%4"), Err(RequestError::QueryEncoding));
        assert_eq!(form_decode("%FF"), Err(RequestError::QueryEncoding));
        assert_eq!(form_decode("%+1"), Err(RequestError::QueryEncoding));
    }
}
