//! What a refusal adds when a client misspelt a name: the field it likely
//! meant, or the values an enum has. Only failed requests look.

use prost_reflect::{EnumDescriptor, Kind, MessageDescriptor};

use super::RequestError;

/// How many enum values a refusal lists before it says how many more.
const MAX_LISTED: usize = 12;

/// The field of `desc` that `given` most likely meant, spelt as the client
/// spells (proto name for `snake_case`, JSON name otherwise), when one is
/// close: the same but for case, or a slip of a few letters (two swapped
/// count as one).
pub(super) fn field(desc: &MessageDescriptor, given: &str) -> Option<String> {
    let snake = given.contains('_');
    let given_lower = given.to_ascii_lowercase();
    let allowed = allowed_slips(given);
    desc.fields()
        .flat_map(|field| {
            let spelt = if snake {
                field.name().to_owned()
            } else {
                field.json_name().to_owned()
            };
            [field.name().to_owned(), field.json_name().to_owned()]
                .into_iter()
                .map(move |name| (name, spelt.clone()))
        })
        .map(|(name, spelt)| {
            let distance = strsim::osa_distance(&given_lower, &name.to_ascii_lowercase());
            (distance, spelt)
        })
        .filter(|(distance, _)| *distance <= allowed)
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, spelt)| spelt)
}

/// How many slips of the keyboard a name may have and still be taken
/// for another: a third of its length, one to three.
fn allowed_slips(given: &str) -> usize {
    (given.chars().count() / 3).clamp(1, 3)
}

/// The one of `names` that `given` most likely meant (the same but for
/// case, or a few slips), for config keys and the names config gives.
pub(crate) fn closest<'a>(
    given: &str,
    names: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let given_lower = given.to_ascii_lowercase();
    let allowed = allowed_slips(given);
    names
        .into_iter()
        .map(|name| {
            (
                strsim::osa_distance(&given_lower, &name.to_ascii_lowercase()),
                name,
            )
        })
        .filter(|(distance, _)| *distance <= allowed)
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, name)| name)
}

/// `desc`'s value names, as a refusal lists them: `one of A, B, C`.
pub(crate) fn enum_values(desc: &EnumDescriptor) -> String {
    let values: Vec<_> = desc.values().collect();
    let listed: Vec<&str> = values.iter().take(MAX_LISTED).map(|v| v.name()).collect();
    let mut out = format!("one of {}", listed.join(", "));
    if values.len() > MAX_LISTED {
        out.push_str(&format!(" and {} more", values.len() - MAX_LISTED));
    }
    out
}

/// The hint for a JSON body refusal `reason` at `at` (the JSON path of the
/// failing value, relative to `root`, the message the body is): the field
/// meant by an unknown name, or the values of the enum an unknown value
/// was given for.
pub(super) fn json_body(root: &Kind, at: Option<&str>, reason: &str) -> Option<String> {
    if let Some(name) = quoted_after(reason, "unknown field `") {
        let Kind::Message(desc) = walk(root, at)? else {
            return None;
        };
        return field(&desc, name).map(|meant| format!("did you mean `{meant}`?"));
    }
    if quoted_after(reason, "unknown enum value `").is_some() {
        let Kind::Enum(desc) = walk(root, at)? else {
            return None;
        };
        return Some(enum_values(&desc));
    }
    None
}

/// `err` with [`json_body`]'s hint added, for a body that is a `root`.
pub(super) fn hinted(root: &Kind, err: RequestError) -> RequestError {
    match err {
        RequestError::Json { at, reason } => {
            let hint = json_body(root, at.as_deref(), &reason);
            RequestError::Json {
                reason: with_hint(reason, hint),
                at,
            }
        }
        other => other,
    }
}

/// `reason`, and `hint` in brackets after it when there is one.
pub(super) fn with_hint(reason: String, hint: Option<String>) -> String {
    match hint {
        Some(hint) => format!("{reason} ({hint})"),
        None => reason,
    }
}

/// The text between `prefix` (ending in a backtick) and the next
/// backtick in `reason`.
fn quoted_after<'r>(reason: &'r str, prefix: &str) -> Option<&'r str> {
    let rest = &reason[reason.find(prefix)? + prefix.len()..];
    Some(&rest[..rest.find('`')?])
}

/// The kind at the JSON path `at` (`a.b[0].c`, a map key as a member)
/// from `root`: a list's elements', a map's values'.
pub(super) fn walk(root: &Kind, at: Option<&str>) -> Option<Kind> {
    let mut kind = root.clone();
    let mut parts = at.into_iter().flat_map(|at| at.split('.'));
    while let Some(part) = parts.next() {
        let Kind::Message(desc) = &kind else {
            return None;
        };
        let name = part.split('[').next().unwrap_or(part);
        if name.is_empty() {
            // `[0]`: an element of the list the body is.
            continue;
        }
        let field = desc
            .get_field_by_json_name(name)
            .or_else(|| desc.get_field_by_name(name))?;
        kind = field.kind();
        if field.is_map() {
            kind = kind.as_message()?.map_entry_value_field().kind();
            // The next part is a key.
            parts.next();
        }
    }
    Some(kind)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transcode::test_protos;

    fn kitchen(name: &str) -> MessageDescriptor {
        test_protos::pool()
            .get_message_by_name(name)
            .unwrap_or_else(|| panic!("{name} in the test protos"))
    }

    #[test]
    fn close_names_are_suggested_as_the_client_spells() {
        let desc = kitchen("kitchen.v1.Sink");
        assert_eq!(field(&desc, "custom_jsn").as_deref(), Some("custom_json"));
        assert_eq!(field(&desc, "customJSN").as_deref(), Some("customJSON"));
        assert_eq!(field(&desc, "CUSTOMJSON").as_deref(), Some("customJSON"));
        assert_eq!(field(&desc, "nameWraper").as_deref(), Some("nameWrapper"));
        assert_eq!(field(&desc, "tag").as_deref(), Some("tags"));
        assert_eq!(field(&desc, "zzzzzzzzzzzz"), None);
        assert_eq!(field(&desc, "qqq"), None);
    }

    #[test]
    fn json_body_hints_follow_the_path() {
        let root = Kind::Message(kitchen("kitchen.v1.Sink"));
        let hint = |at: Option<&str>, reason: &str| json_body(&root, at, reason);
        let colors = "one of COLOR_UNSPECIFIED, RED, GREEN";
        let enum_reason = "unknown enum value `PINK` at line 1 column 9";
        assert_eq!(hint(Some("color"), enum_reason).as_deref(), Some(colors));
        assert_eq!(
            hint(Some("colors[1]"), enum_reason).as_deref(),
            Some(colors)
        );
        assert_eq!(hint(Some("s"), enum_reason), None);
        let field_reason = |name: &str| format!("unknown field `{name}` at line 1");
        assert_eq!(
            hint(None, &field_reason("lables")).as_deref(),
            Some("did you mean `labels`?")
        );
        assert_eq!(
            hint(Some("inners.some.key"), &field_reason("labl")),
            None,
            "a key with a dot is not followed"
        );
        assert_eq!(
            hint(Some("inners.k"), &field_reason("labl")).as_deref(),
            Some("did you mean `label`?")
        );
        assert_eq!(
            hint(Some("items[2].child"), &field_reason("labels")).as_deref(),
            Some("did you mean `label`?")
        );
        assert_eq!(hint(Some("nowhere"), &field_reason("labl")), None);
        // A list body (`body: "items"`): paths start at an element.
        let items = Kind::Message(kitchen("kitchen.v1.Inner"));
        assert_eq!(
            json_body(&items, Some("[1]"), &field_reason("lable")).as_deref(),
            Some("did you mean `label`?")
        );
        assert_eq!(hint(None, "expected value at line 1 column 1"), None);
    }

    #[test]
    fn long_enums_are_cut_short() {
        let desc = test_protos::pool()
            .get_enum_by_name("google.protobuf.FieldDescriptorProto.Type")
            .expect("descriptor.proto in the test pool");
        let listed = enum_values(&desc);
        assert!(
            listed.starts_with("one of TYPE_DOUBLE, TYPE_FLOAT, "),
            "{listed}"
        );
        assert!(listed.ends_with(" and 6 more"), "{listed}");
    }
}
