//! A message's set fields, extensions and unknown fields in one stream by
//! field number: the order prost-reflect writes them in.
//!
//! prost-reflect keeps all three in one map by number but shows them
//! through three iterators, each in number order; merging them gives back
//! the map's order.

use std::iter::Peekable;

use prost_reflect::{
    DynamicMessage, ExtensionDescriptor, FieldDescriptor, ReflectMessage as _, UnknownField, Value,
};

/// One thing to write.
pub(super) enum Entry<'a> {
    Field(FieldDescriptor, &'a Value),
    Extension(ExtensionDescriptor, &'a Value),
    Unknown(&'a UnknownField),
}

impl Entry<'_> {
    fn number(&self) -> u32 {
        match self {
            Entry::Field(desc, _) => desc.number(),
            Entry::Extension(desc, _) => desc.number(),
            Entry::Unknown(field) => field.number(),
        }
    }
}

/// The entries of `message` in field-number order.
pub(super) fn of(message: &DynamicMessage) -> impl Iterator<Item = Entry<'_>> {
    let fields = message
        .fields()
        .map(|(desc, value)| Entry::Field(desc, value));
    let mut unknown = message.unknown_fields().map(Entry::Unknown).peekable();
    // Looking for extensions costs a search per set field; most messages
    // have no extension to look for, and most hold no unknown field.
    let extensions = (message.descriptor().extensions().len() > 0).then(|| {
        message
            .extensions()
            .map(|(desc, value)| Entry::Extension(desc, value))
            .peekable()
    });
    if extensions.is_none() && unknown.peek().is_none() {
        return Entries::Fields(fields);
    }
    Entries::Merged(Merge {
        fields: fields.peekable(),
        extensions,
        unknown,
    })
}

/// Fields alone, or all three streams merged.
enum Entries<F, M> {
    Fields(F),
    Merged(M),
}

impl<'a, F, M> Iterator for Entries<F, M>
where
    F: Iterator<Item = Entry<'a>>,
    M: Iterator<Item = Entry<'a>>,
{
    type Item = Entry<'a>;

    fn next(&mut self) -> Option<Entry<'a>> {
        match self {
            Entries::Fields(fields) => fields.next(),
            Entries::Merged(merged) => merged.next(),
        }
    }
}

/// Three streams, each in number order, as one. A number appears in only
/// one of them (the message holds one entry per number), except unknown
/// fields, which repeat their number and stay in their order.
struct Merge<F: Iterator, E: Iterator, U: Iterator> {
    fields: Peekable<F>,
    extensions: Option<Peekable<E>>,
    unknown: Peekable<U>,
}

impl<'a, F, E, U> Iterator for Merge<F, E, U>
where
    F: Iterator<Item = Entry<'a>>,
    E: Iterator<Item = Entry<'a>>,
    U: Iterator<Item = Entry<'a>>,
{
    type Item = Entry<'a>;

    fn next(&mut self) -> Option<Entry<'a>> {
        // Past every field number: an exhausted stream.
        let number = |entry: Option<&Entry<'_>>| entry.map_or(u64::MAX, |e| u64::from(e.number()));
        let field = number(self.fields.peek());
        let extension = number(self.extensions.as_mut().and_then(Peekable::peek));
        let unknown = number(self.unknown.peek());
        if field <= extension && field <= unknown {
            self.fields.next()
        } else if extension <= unknown {
            self.extensions.as_mut().and_then(Iterator::next)
        } else {
            self.unknown.next()
        }
    }
}
