//! Field paths such as `book.author.name`: resolved once against the
//! descriptors, then used to set values in request messages.

use std::fmt;

use prost_reflect::{DynamicMessage, FieldDescriptor, Kind, MessageDescriptor, Value};

/// A chain of fields from a message down to a leaf field. Every field but
/// the last is a singular message field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldPath {
    fields: Vec<FieldDescriptor>,
}

/// Why a name does not resolve to a field path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FieldPathError {
    /// No field of that name (proto or JSON name).
    #[error("`{message}` has no field `{name}`")]
    NoSuchField {
        /// The message searched.
        message: String,
        /// The missing name.
        name: String,
    },
    /// A non-final name is not a singular message field.
    #[error("`{0}` is not a singular message field, so it has no subfields")]
    NotAMessage(String),
}

impl FieldPath {
    /// Resolves `names` (proto or JSON names) starting at `message`.
    pub fn resolve<S: AsRef<str>>(
        message: &MessageDescriptor,
        names: &[S],
    ) -> Result<FieldPath, FieldPathError> {
        let mut fields: Vec<FieldDescriptor> = Vec::with_capacity(names.len());
        let mut current = message.clone();
        for (i, name) in names.iter().enumerate() {
            let name = name.as_ref();
            let field = find_field(&current, name).ok_or_else(|| FieldPathError::NoSuchField {
                message: current.full_name().to_owned(),
                name: name.to_owned(),
            })?;
            if i + 1 < names.len() {
                match field.kind() {
                    Kind::Message(next) if !field.is_list() && !field.is_map() => current = next,
                    _ => return Err(FieldPathError::NotAMessage(field.name().to_owned())),
                }
            }
            fields.push(field);
        }
        Ok(FieldPath { fields })
    }

    /// A path of one field.
    pub fn single(field: FieldDescriptor) -> FieldPath {
        FieldPath {
            fields: vec![field],
        }
    }

    /// The last field.
    pub fn leaf(&self) -> &FieldDescriptor {
        &self.fields[self.fields.len() - 1]
    }

    /// The fields, outermost first.
    pub fn fields(&self) -> &[FieldDescriptor] {
        &self.fields
    }

    /// Whether one path is a prefix of the other: setting one would touch
    /// what the other binds.
    pub fn overlaps(&self, other: &FieldPath) -> bool {
        self.overlaps_fields(&other.fields)
    }

    /// [`FieldPath::overlaps`] with a plain list of fields.
    pub fn overlaps_fields(&self, fields: &[FieldDescriptor]) -> bool {
        self.fields
            .iter()
            .zip(fields)
            .all(|(a, b)| a.number() == b.number())
    }

    /// Whether the path is exactly `fields`.
    pub fn is(&self, fields: &[FieldDescriptor]) -> bool {
        self.fields.len() == fields.len()
            && self
                .fields
                .iter()
                .zip(fields)
                .all(|(a, b)| a.number() == b.number())
    }

    /// The message that holds the leaf, creating intermediate messages.
    /// Fails when an intermediate message would replace a set member of the
    /// same oneof.
    pub fn parent_mut<'m>(
        &self,
        message: &'m mut DynamicMessage,
    ) -> Result<&'m mut DynamicMessage, OneofConflict> {
        let mut current = message;
        for field in &self.fields[..self.fields.len() - 1] {
            check_oneof(current, field)?;
            let Value::Message(next) = current.get_field_mut(field) else {
                unreachable!("a resolved field path holds singular message fields")
            };
            current = next;
        }
        check_oneof(current, self.leaf())?;
        Ok(current)
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, field) in self.fields.iter().enumerate() {
            if i > 0 {
                f.write_str(".")?;
            }
            f.write_str(field.name())?;
        }
        Ok(())
    }
}

/// Looks a field up by proto name, then by JSON name.
pub fn find_field(message: &MessageDescriptor, name: &str) -> Option<FieldDescriptor> {
    message
        .get_field_by_name(name)
        .or_else(|| message.get_field_by_json_name(name))
}

/// Like [`find_field`]; with `case_insensitive`, an exact match first, then
/// one ignoring ASCII case.
pub fn find_field_with(
    message: &MessageDescriptor,
    name: &str,
    case_insensitive: bool,
) -> Option<FieldDescriptor> {
    find_field(message, name).or_else(|| {
        if !case_insensitive {
            return None;
        }
        message.fields().find(|f| {
            f.name().eq_ignore_ascii_case(name) || f.json_name().eq_ignore_ascii_case(name)
        })
    })
}

/// Two members of one oneof were set.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{field}` and `{other}` are members of oneof `{oneof}`; set at most one")]
pub struct OneofConflict {
    /// The field being set.
    pub field: String,
    /// The member already set.
    pub other: String,
    /// The oneof.
    pub oneof: String,
}

/// Fails when another member of `field`'s oneof is already set.
pub fn check_oneof(message: &DynamicMessage, field: &FieldDescriptor) -> Result<(), OneofConflict> {
    let Some(oneof) = field.containing_oneof() else {
        return Ok(());
    };
    for other in oneof.fields() {
        if other.number() != field.number() && message.has_field(&other) {
            return Err(OneofConflict {
                field: field.name().to_owned(),
                other: other.name().to_owned(),
                oneof: oneof.name().to_owned(),
            });
        }
    }
    Ok(())
}
