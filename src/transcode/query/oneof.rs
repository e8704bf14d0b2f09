//! Oneof conflicts in the client's spelling: a query names fields by proto
//! or JSON name, and its refusal names them as the client did. Only
//! refused requests come here.

use prost_reflect::{FieldDescriptor, Kind, MessageDescriptor};

use super::{Segment, form_decode, parse_key, spelt};
use crate::transcode::Codec;
use crate::transcode::field_path::{OneofConflict, find_field_with};

/// `conflict`, met setting the field that `member` (a key up to it) leads
/// to from `root`, with both members spelt as the client spelt them: this
/// one as in the key, the other as the parameter of the `earlier` query
/// that set it. A member the path or the body field set keeps the route's
/// spelling, after the key's own parents.
pub(super) fn respell(
    conflict: OneofConflict,
    root: &MessageDescriptor,
    member: &[Segment<'_>],
    earlier: &str,
    codec: &Codec,
) -> OneofConflict {
    let case_insensitive = codec.case_insensitive_fields;
    let Some((_, parents)) = member.split_last() else {
        return conflict;
    };
    let wanted = resolve(root, parents, case_insensitive);
    let other = earlier
        .split('&')
        .filter_map(|pair| form_decode(pair.split_once('=').map_or(pair, |(k, _)| k)).ok())
        .find_map(|key| {
            let segments = parse_key(&key, usize::MAX)?;
            let set = segments.get(..member.len())?;
            let fields = resolve(root, set, case_insensitive)?;
            let (last, before) = fields.split_last()?;
            let same_place = set.iter().zip(parents).all(|(a, b)| a.sub == b.sub)
                && wanted.as_deref().is_some_and(|w| same_fields(w, before));
            (same_place && last.name() == conflict.other).then(|| spelt(set.iter()))
        })
        .unwrap_or_else(|| match parents {
            [] => conflict.other,
            _ => format!("{}.{}", spelt(parents.iter()), conflict.other),
        });
    OneofConflict {
        field: spelt(member.iter()),
        other,
        oneof: conflict.oneof,
    }
}

/// The fields `segments` name from `root`, through messages, map values
/// and list elements; `None` when a name is not a field.
fn resolve(
    root: &MessageDescriptor,
    segments: &[Segment<'_>],
    case_insensitive: bool,
) -> Option<Vec<FieldDescriptor>> {
    let mut desc = root.clone();
    let mut fields = Vec::with_capacity(segments.len());
    for (i, segment) in segments.iter().enumerate() {
        let field = find_field_with(&desc, segment.name, case_insensitive)?;
        if i + 1 < segments.len() {
            desc = match field.kind() {
                Kind::Message(entry) if field.is_map() => {
                    entry.map_entry_value_field().kind().as_message()?.clone()
                }
                Kind::Message(next) => next,
                _ => return None,
            };
        }
        fields.push(field);
    }
    Some(fields)
}

/// Whether two lists of fields are the same fields.
fn same_fields(a: &[FieldDescriptor], b: &[FieldDescriptor]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(a, b)| a.number() == b.number())
}
