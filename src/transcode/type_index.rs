//! Numbering the message and enum types of one descriptor pool as plans
//! reach them, for the plan tables of the direct response writer
//! (`wire_json`) and the direct request encoder (`json_wire`): each type
//! gets its index once, and each new message type waits in a queue until
//! its layout is built.

use std::collections::HashMap;

use prost_reflect::{DescriptorPool, EnumDescriptor, MessageDescriptor};

use super::kind::WELL_KNOWN;

/// A type's index, and whether this is the first time it was asked for
/// (its plan is then to be pushed at that index).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Indexed {
    /// Numbered before.
    Known(u32),
    /// Numbered now: the next index of its table.
    New(u32),
}

impl Indexed {
    pub(super) fn index(self) -> u32 {
        match self {
            Indexed::Known(index) | Indexed::New(index) => index,
        }
    }
}

/// The numbering of one pool's types.
#[derive(Debug, Default)]
pub(super) struct TypeIndex {
    /// The pool of the types numbered: names mean types only within one.
    pool: Option<DescriptorPool>,
    messages: HashMap<String, u32>,
    enums: HashMap<String, u32>,
    /// Message types numbered whose layout is not built yet.
    pending: Vec<(usize, MessageDescriptor)>,
}

impl TypeIndex {
    /// Whether `root` comes from the pool of the types numbered so far
    /// (the first root sets it).
    pub(super) fn admits(&mut self, root: &MessageDescriptor) -> bool {
        match &self.pool {
            Some(pool) => pool == root.parent_pool(),
            None => {
                self.pool = Some(root.parent_pool().clone());
                true
            }
        }
    }

    /// The index of message type `desc`; a new one other than the
    /// well-known types (whose JSON forms are their own) is queued for its
    /// layout.
    pub(super) fn message(&mut self, desc: &MessageDescriptor) -> Indexed {
        let indexed = number(&mut self.messages, desc.full_name());
        if let Indexed::New(index) = indexed
            && !WELL_KNOWN.contains(&desc.full_name())
        {
            self.pending.push((index as usize, desc.clone()));
        }
        indexed
    }

    /// The index of enum type `desc`.
    pub(super) fn enumeration(&mut self, desc: &EnumDescriptor) -> Indexed {
        number(&mut self.enums, desc.full_name())
    }

    /// A message type numbered whose layout is still to be built, and its
    /// index.
    pub(super) fn next_pending(&mut self) -> Option<(usize, MessageDescriptor)> {
        self.pending.pop()
    }
}

fn number(numbers: &mut HashMap<String, u32>, name: &str) -> Indexed {
    if let Some(&index) = numbers.get(name) {
        return Indexed::Known(index);
    }
    // More types than u32 holds cannot come from one descriptor pool.
    let index = u32::try_from(numbers.len()).unwrap_or(u32::MAX);
    numbers.insert(name.to_owned(), index);
    Indexed::New(index)
}
