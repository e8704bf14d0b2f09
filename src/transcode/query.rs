//! Query parameters into request fields.
//!
//! The query string is form-encoded: `+` is a space and `%2B` a plus. A key
//! is a dotted field path of proto or JSON names (`a.b.c`); repeated fields
//! take one value per occurrence (`x=1&x=2`, never a comma list).
//!
//! Two extensions of the spec reach the fields it leaves out: a map entry
//! is `m[key]=v` (`m[key].f=v` for message values), and an element of a
//! repeated message field is `items[0].f=v`. Indices start at 0 and each
//! new index is the next one (`items[1]` before `items[0]` is a 400), so a
//! list never has holes.

use std::borrow::Cow;

use prost_reflect::{
    DynamicMessage, FieldDescriptor, Kind, MapKey, MessageDescriptor, ReflectMessage as _, Value,
};

use super::field_path::{check_oneof, find_field_with};
use super::options::UnknownParams;
use super::request::RequestPlan;
use super::{Codec, RequestError, suggest, text};

mod oneof;

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

/// Sets the fields named in `query` on `message`. Returns how many
/// segments the longest key had (how deep it reached).
pub fn apply(
    plan: &RequestPlan,
    message: &mut DynamicMessage,
    query: &str,
    codec: &Codec,
) -> Result<usize, RequestError> {
    let mut deepest = 0;
    // Canonical names of singular fields and map entries already set.
    let mut set: Vec<String> = Vec::new();
    // Parameters the operator ignores do not count: they are not the
    // client's to budget (the request line's length still bounds them).
    let mut count = 0;
    let mut start = 0;
    for pair in query.split('&') {
        let earlier = &query[..start];
        start += pair.len() + 1;
        if pair.is_empty() {
            continue;
        }
        let (raw_key, raw_value) = pair.split_once('=').unwrap_or((pair, ""));
        let key = form_decode(raw_key)?;
        if plan.ignores_param(&key) {
            continue;
        }
        count += 1;
        if count > codec.max_query_params {
            return Err(RequestError::TooManyQueryParams(codec.max_query_params));
        }
        if plan.binds_whole_body() {
            // The body binds every field: a key naming one is refused,
            // one naming none is unknown like anywhere else.
            let first = key.split(['.', '[']).next().unwrap_or_default();
            let names_field =
                find_field_with(&message.descriptor(), first, codec.case_insensitive_fields)
                    .is_some();
            if !names_field && codec.unknown_params == UnknownParams::Ignore {
                continue;
            }
            if key.is_empty() {
                return Err(RequestError::QueryEmptyName);
            }
            return Err(RequestError::QueryWithWholeBody(key.into_owned()));
        }
        if key.is_empty() {
            return Err(RequestError::QueryEmptyName);
        }
        let value = form_decode(raw_value)?;
        let segments =
            parse_key(&key, codec.max_depth).ok_or_else(|| RequestError::QueryValue {
                name: key.to_string(),
                reason: format!(
                    "not a field path (`a.b`, `m[key]`, `items[0].f`) of at most {} parts",
                    codec.max_depth
                ),
            })?;
        deepest = deepest.max(segments.len());
        let param = Param {
            key: &key,
            earlier,
            value: &value,
            plan,
            codec,
        };
        match param.apply(message, &segments, &mut set) {
            Err(RequestError::UnknownQuery { .. })
                if codec.unknown_params == UnknownParams::Ignore => {}
            result => result?,
        }
    }
    Ok(deepest)
}

/// One `name` or `name[sub]` part of a key.
#[derive(Debug, PartialEq, Eq)]
struct Segment<'k> {
    name: &'k str,
    sub: Option<&'k str>,
}

/// Splits `a.b[k].c` into segments; `None` when malformed or longer than
/// `max` segments.
fn parse_key(key: &str, max: usize) -> Option<Vec<Segment<'_>>> {
    let mut segments = Vec::new();
    let mut rest = key;
    loop {
        if segments.len() == max {
            return None;
        }
        let end = rest.find(['.', '[']).unwrap_or(rest.len());
        let name = &rest[..end];
        if name.is_empty() || name.contains(']') {
            return None;
        }
        rest = &rest[end..];
        let sub = match rest.strip_prefix('[') {
            Some(inner) => {
                let close = inner.find(']')?;
                rest = &inner[close + 1..];
                Some(&inner[..close])
            }
            None => None,
        };
        segments.push(Segment { name, sub });
        if rest.is_empty() {
            return Some(segments);
        }
        rest = rest.strip_prefix('.')?;
    }
}

struct Param<'a> {
    key: &'a str,
    /// The query before this parameter.
    earlier: &'a str,
    value: &'a str,
    plan: &'a RequestPlan,
    codec: &'a Codec,
}

impl Param<'_> {
    fn error(&self, reason: impl Into<String>) -> RequestError {
        RequestError::QueryValue {
            name: self.key.to_owned(),
            reason: reason.into(),
        }
    }

    /// The refusal of a key whose part `i` names no field of `desc`, with
    /// the key it likely meant: part `i` respelt, the rest as given.
    fn unknown(
        &self,
        desc: &MessageDescriptor,
        segments: &[Segment<'_>],
        i: usize,
    ) -> RequestError {
        let meant = suggest::field(desc, segments[i].name).map(|name| {
            let respelt = Segment {
                name: &name,
                sub: None,
            };
            let parts = segments[..i]
                .iter()
                .chain(std::iter::once(&respelt))
                .chain(&segments[i + 1..]);
            spelt(parts)
        });
        RequestError::UnknownQuery {
            name: self.key.to_owned(),
            meant,
        }
    }

    /// Whether every part of the key names a field, as far as the parts
    /// go through messages; the walk that sets the value says what else
    /// is wrong.
    fn check_names(
        &self,
        mut desc: MessageDescriptor,
        segments: &[Segment<'_>],
    ) -> Result<(), RequestError> {
        for (i, segment) in segments.iter().enumerate() {
            let field = find_field_with(&desc, segment.name, self.codec.case_insensitive_fields)
                .ok_or_else(|| self.unknown(&desc, segments, i))?;
            let next = match field.kind() {
                Kind::Message(entry) if field.is_map() => entry.map_entry_value_field().kind(),
                kind => kind,
            };
            let Kind::Message(next) = next else {
                return Ok(());
            };
            desc = next;
        }
        Ok(())
    }

    fn parse(&self, kind: &Kind) -> Result<Value, RequestError> {
        text::parse_with(kind, self.value, self.codec.case_insensitive_enums)
            .map_err(|r| self.error(r))
    }

    /// Walks `segments` from `message`, creating what is missing, and sets
    /// the value at the end.
    fn apply(
        &self,
        message: &mut DynamicMessage,
        segments: &[Segment<'_>],
        set: &mut Vec<String>,
    ) -> Result<(), RequestError> {
        if segments.len() > 1 && self.codec.unknown_params == UnknownParams::Ignore {
            // The walk below makes parents, list elements and map entries
            // on its way: an unknown name further on, ignored, would leave
            // them behind (a message field set, a oneof chosen).
            self.check_names(message.descriptor(), segments)?;
        }
        let mut current = message;
        // The plain fields from the top, for the bound check.
        let mut path: Vec<FieldDescriptor> = Vec::with_capacity(segments.len());
        let mut bound_checked = false;
        let mut canonical = String::new();
        for (i, segment) in segments.iter().enumerate() {
            let last = i + 1 == segments.len();
            let desc = current.descriptor();
            let field = find_field_with(&desc, segment.name, self.codec.case_insensitive_fields)
                .ok_or_else(|| self.unknown(&desc, segments, i))?;
            if !bound_checked {
                path.push(field.clone());
                if segment.sub.is_some() || last {
                    if self.plan.is_bound_fields(&path) {
                        return Err(RequestError::QueryBound(self.key.to_owned()));
                    }
                    bound_checked = true;
                }
            }
            check_oneof(current, &field).map_err(|conflict| {
                let root = self.plan.input();
                oneof::respell(conflict, root, &segments[..=i], self.earlier, self.codec)
            })?;
            canonical.push_str(&field.number().to_string());
            canonical.push('.');
            let kind = field.kind();
            match segment.sub {
                None if last => return self.set_leaf(current, &field, canonical, set),
                None => {
                    if field.is_list() && kind.as_message().is_some() {
                        return Err(self.error(format!(
                            "`{0}` is a list; name an element, as `{0}[0].{1}`",
                            segment.name,
                            segments.get(i + 1).map_or("field", |s| s.name)
                        )));
                    }
                    if field.is_list() || field.is_map() || kind.as_message().is_none() {
                        return Err(self.error(format!(
                            "`{}` is not a singular message field, so it has no subfields",
                            field.name()
                        )));
                    }
                    self.check_descent(&kind)?;
                    let Value::Message(next) = current.get_field_mut(&field) else {
                        unreachable!("a singular message field holds a message")
                    };
                    current = next;
                }
                Some(sub) if field.is_map() => {
                    let Some(entry) = kind.as_message().cloned() else {
                        unreachable!("a map field's kind is its entry message")
                    };
                    let map_key = self.map_key(&entry.map_entry_key_field().kind(), sub)?;
                    let value_field = entry.map_entry_value_field();
                    // By value: `m[1]` and `m[01]` are one entry.
                    push_key(&mut canonical, &map_key);
                    canonical.push(']');
                    let Value::Map(map) = current.get_field_mut(&field) else {
                        unreachable!("a map field holds a map")
                    };
                    if last {
                        if set.contains(&canonical) || map.contains_key(&map_key) {
                            return Err(RequestError::QueryRepeated(self.key.to_owned()));
                        }
                        let value_kind = value_field.kind();
                        if !text::is_text_kind(&value_kind) {
                            return Err(self.error(
                                "the map's values are messages; set their fields as `m[key].field`",
                            ));
                        }
                        map.insert(map_key, self.parse(&value_kind)?);
                        set.push(canonical);
                        return Ok(());
                    }
                    let Kind::Message(value_desc) = value_field.kind() else {
                        return Err(self.error(
                            "the map's values are not messages, so they have no subfields",
                        ));
                    };
                    self.check_descent(&value_field.kind())?;
                    let Value::Message(next) = map
                        .entry(map_key)
                        .or_insert_with(|| Value::Message(DynamicMessage::new(value_desc)))
                    else {
                        unreachable!("map values of message type are messages")
                    };
                    current = next;
                }
                Some(sub) if field.is_list() && kind.as_message().is_some() => {
                    let index: usize = sub
                        .parse()
                        .map_err(|_| self.error(format!("`{sub}` is not a list index")))?;
                    // By number: `items[0]` and `items[00]` are one element.
                    canonical.push_str(&index.to_string());
                    canonical.push(']');
                    let Value::List(list) = current.get_field_mut(&field) else {
                        unreachable!("a repeated field holds a list")
                    };
                    if index > list.len() {
                        return Err(self.error(format!(
                            "index {index} skips ahead; give `{}[{}]` first",
                            segment.name,
                            list.len()
                        )));
                    }
                    if last {
                        return Err(self.error(
                            "a list element is a message; set its fields as `items[0].field`",
                        ));
                    }
                    self.check_descent(&kind)?;
                    if index == list.len() {
                        let Some(element) = kind.as_message().cloned() else {
                            unreachable!("checked above")
                        };
                        list.push(Value::Message(DynamicMessage::new(element)));
                    }
                    let Value::Message(next) = &mut list[index] else {
                        unreachable!("elements of a repeated message field are messages")
                    };
                    current = next;
                }
                Some(_) => {
                    return Err(self.error(format!(
                        "`{}` is not a map or a repeated message, so `[...]` does not apply",
                        field.name()
                    )));
                }
            }
        }
        Ok(())
    }

    /// Well-known types are set whole, from their JSON string form, never
    /// field by field (`Any.type_url`, `Timestamp.seconds`, a `Struct`'s
    /// internals): that would build values their JSON form cannot express.
    fn check_descent(&self, kind: &Kind) -> Result<(), RequestError> {
        match kind.as_message() {
            Some(m) if m.full_name().starts_with("google.protobuf.") => Err(self.error(format!(
                "{} is a well-known type; it cannot be set field by field",
                m.full_name()
            ))),
            _ => Ok(()),
        }
    }

    fn set_leaf(
        &self,
        message: &mut DynamicMessage,
        field: &FieldDescriptor,
        canonical: String,
        set: &mut Vec<String>,
    ) -> Result<(), RequestError> {
        let kind = field.kind();
        if field.is_map() {
            return Err(self.error("a map is set one entry at a time, as `m[key]=value`"));
        }
        if !text::is_text_kind(&kind) {
            return Err(self.error(if field.is_list() {
                "a list of messages is set one field at a time, as `items[0].field=value`"
            } else {
                "a message is set one field at a time, as `field.subfield=value`"
            }));
        }
        let value = self.parse(&kind)?;
        if field.is_list() {
            if let Value::List(list) = message.get_field_mut(field) {
                list.push(value);
            }
            return Ok(());
        }
        if set.contains(&canonical) {
            return Err(RequestError::QueryRepeated(self.key.to_owned()));
        }
        message.set_field(field, value);
        set.push(canonical);
        Ok(())
    }

    fn map_key(&self, kind: &Kind, text: &str) -> Result<MapKey, RequestError> {
        let value = match kind {
            Kind::String => return Ok(MapKey::String(text.to_owned())),
            _ => text::parse(kind, text).map_err(|r| self.error(format!("map key: {r}")))?,
        };
        Ok(match value {
            Value::Bool(b) => MapKey::Bool(b),
            Value::I32(n) => MapKey::I32(n),
            Value::I64(n) => MapKey::I64(n),
            Value::U32(n) => MapKey::U32(n),
            Value::U64(n) => MapKey::U64(n),
            _ => return Err(self.error("unsupported map key type")),
        })
    }
}

/// Segments as a key writes them: `a.m[k].b`.
fn spelt<'s>(segments: impl Iterator<Item = &'s Segment<'s>>) -> String {
    let parts: Vec<String> = segments
        .map(|s| match s.sub {
            Some(sub) => format!("{}[{sub}]", s.name),
            None => s.name.to_owned(),
        })
        .collect();
    parts.join(".")
}

/// The key's value as text, one spelling per value.
fn push_key(out: &mut String, key: &MapKey) {
    let text = match key {
        MapKey::String(s) => return out.push_str(s),
        MapKey::Bool(b) => b.to_string(),
        MapKey::I32(n) => n.to_string(),
        MapKey::I64(n) => n.to_string(),
        MapKey::U32(n) => n.to_string(),
        MapKey::U64(n) => n.to_string(),
    };
    out.push_str(&text);
}

#[cfg(test)]
mod tests;
