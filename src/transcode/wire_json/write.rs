//! Walking a message's wire bytes and writing its JSON object in the order
//! and form prost-reflect's serializer gives.

mod map;

use bytes::Bytes;
use prost_reflect::{DynamicMessage, MessageDescriptor, SerializeOptions};

use super::Bail;
use super::plan::{FieldPlan, Layout, Scalar, Shape, Table};
use super::value::{self, Style};
use super::wire;
use crate::transcode::empty_any;
use crate::transcode::json_number;
use crate::transcode::request::MAX_MESSAGE_DEPTH;
use crate::transcode::writable::{self, Unwritable};

/// One value of a known field, as found on the wire.
#[derive(Debug, Clone, Copy)]
struct Occurrence {
    /// Index in the layout's fields.
    field: u32,
    wire: u8,
    /// Where the value lies in the response (without a length prefix).
    start: usize,
    end: usize,
}

/// The state of writing one response.
pub(super) struct Writer<'a> {
    pub(super) table: &'a Table,
    pub(super) data: &'a Bytes,
    pub(super) out: Vec<u8>,
    /// Occurrences of the messages being written, innermost last.
    found: Vec<Occurrence>,
    /// Where each key of the maps being written lies in `out`.
    keys: Vec<(usize, usize)>,
    /// 0: JSON names, 1: proto names.
    names: usize,
    emit_unpopulated: bool,
    style: Style,
    /// For the values prost-reflect writes.
    options: &'a SerializeOptions,
    float_safe: bool,
    /// The top-level field whose value is the response, and where it went.
    select: Option<u32>,
    pub(super) selected: Option<(usize, usize)>,
    /// Inside a top-level field other than `select`.
    checking: bool,
}

/// How a response is written.
pub(super) struct Settings<'a> {
    pub(super) proto_names: bool,
    pub(super) emit_unpopulated: bool,
    pub(super) enums_as_ints: bool,
    pub(super) options: &'a SerializeOptions,
    pub(super) float_safe: bool,
    pub(super) select: Option<u32>,
}

impl<'a> Writer<'a> {
    pub(super) fn new(table: &'a Table, data: &'a Bytes, settings: Settings<'a>) -> Writer<'a> {
        Writer {
            table,
            data,
            out: Vec::with_capacity(data.len().saturating_mul(2).saturating_add(16)),
            found: Vec::new(),
            keys: Vec::new(),
            names: usize::from(settings.proto_names),
            emit_unpopulated: settings.emit_unpopulated,
            style: Style {
                enums_as_ints: settings.enums_as_ints,
            },
            options: settings.options,
            float_safe: settings.float_safe,
            select: settings.select,
            selected: None,
            checking: false,
        }
    }

    /// Writes the message of type `index` in `data[start..end]`, nested
    /// `depth` levels below the response.
    pub(super) fn message(
        &mut self,
        index: u32,
        start: usize,
        end: usize,
        depth: usize,
    ) -> Result<(), Bail> {
        // Deeper than the decoder goes: prost-reflect reports it.
        if depth > MAX_MESSAGE_DEPTH {
            return Err(Bail);
        }
        let table = self.table;
        let plan = table.messages.get(index as usize).ok_or(Bail)?;
        let Some(layout) = &plan.layout else {
            return self.reflect(&plan.descriptor, start, end, depth);
        };
        let base = self.found.len();
        self.scan(layout, start, end)?;
        let top = self.found.len();
        self.out.push(b'{');
        let mut first = true;
        let mut at = base;
        if self.emit_unpopulated {
            for (index, field) in layout.fields.iter().enumerate() {
                let next = self.group_end(at, top, index);
                if next > at {
                    self.checked_field(field, at, next, depth, &mut first)?;
                } else if !field.presence {
                    self.key(field, &mut first);
                    self.unset(field)?;
                }
                at = next;
            }
        } else {
            while at < top {
                let index = self.found.get(at).ok_or(Bail)?.field as usize;
                let next = self.group_end(at, top, index);
                let field = layout.fields.get(index).ok_or(Bail)?;
                self.checked_field(field, at, next, depth, &mut first)?;
                at = next;
            }
        }
        self.out.push(b'}');
        self.found.truncate(base);
        Ok(())
    }

    /// Records the known fields of `data[start..end]` in field-number
    /// order, refusing what prost-reflect would not read as simply: a
    /// singular field or a oneof given twice (merged or replaced), an
    /// extension, a group, a malformed or mistyped value.
    fn scan(&mut self, layout: &Layout, start: usize, end: usize) -> Result<(), Bail> {
        let data = self.data.get(..end).ok_or(Bail)?;
        let base = self.found.len();
        let mut pos = start;
        let mut sorted = true;
        let mut last = 0;
        let mut oneofs = 0u64;
        while pos < end {
            let (number, wire) = wire::key(data, &mut pos)?;
            let (value_start, value_end) = wire::extent(data, &mut pos, wire)?;
            let Some(index) = layout.find(number) else {
                if layout.is_extension(number) {
                    return Err(Bail);
                }
                // Unknown fields are not written.
                continue;
            };
            let field = layout.fields.get(index).ok_or(Bail)?;
            if !field.accepts(wire) {
                return Err(Bail);
            }
            if let Some(oneof) = field.oneof {
                let bit = 1u64.checked_shl(u32::from(oneof)).ok_or(Bail)?;
                if oneofs & bit != 0 {
                    return Err(Bail);
                }
                oneofs |= bit;
            }
            let index = u32::try_from(index).map_err(|_| Bail)?;
            sorted &= index >= last;
            last = index;
            self.found.push(Occurrence {
                field: index,
                wire,
                start: value_start,
                end: value_end,
            });
        }
        let found = self.found.get_mut(base..).ok_or(Bail)?;
        if !sorted {
            // Stable: the values of a list keep their wire order.
            found.sort_by_key(|o| o.field);
        }
        for pair in found.windows(2) {
            let field = layout.fields.get(pair[0].field as usize).ok_or(Bail)?;
            if pair[0].field == pair[1].field && field.shape == Shape::Single {
                return Err(Bail);
            }
        }
        Ok(())
    }

    /// The end of the run of occurrences of field `index` from `at`.
    fn group_end(&self, mut at: usize, top: usize, index: usize) -> usize {
        while at < top
            && self
                .found
                .get(at)
                .is_some_and(|o| o.field as usize == index)
        {
            at += 1;
        }
        at
    }

    fn key(&mut self, field: &FieldPlan, first: &mut bool) {
        if !*first {
            self.out.push(b',');
        }
        *first = false;
        self.out.extend_from_slice(&field.keys[self.names]);
    }

    /// [`field`](Self::field), except that with `response_body` the other
    /// top-level fields are only checked: the reflective path decodes them
    /// (so their errors count) but never writes them (so neither do the
    /// errors of writing them, nor their text).
    fn checked_field(
        &mut self,
        field: &FieldPlan,
        from: usize,
        to: usize,
        depth: usize,
        first: &mut bool,
    ) -> Result<(), Bail> {
        let skipped = depth == 0 && self.select.is_some_and(|n| n != field.number);
        if !skipped {
            return self.field(field, from, to, depth, first);
        }
        let mark = self.out.len();
        self.checking = true;
        self.field(field, from, to, depth, first)?;
        self.checking = false;
        self.out.truncate(mark);
        Ok(())
    }

    /// Writes a field from its occurrences `found[from..to]`.
    fn field(
        &mut self,
        field: &FieldPlan,
        from: usize,
        to: usize,
        depth: usize,
        first: &mut bool,
    ) -> Result<(), Bail> {
        match field.shape {
            Shape::Single => {
                let found = *self.found.get(from).ok_or(Bail)?;
                self.single(field, found, depth, first)
            }
            Shape::List => self.list(field, from, to, depth, first),
            Shape::Map(key) => self.map(field, key, from, to, depth, first),
        }
    }

    fn single(
        &mut self,
        field: &FieldPlan,
        found: Occurrence,
        depth: usize,
        first: &mut bool,
    ) -> Result<(), Bail> {
        if let Scalar::Message(index) = field.kind {
            self.key(field, first);
            let start = self.out.len();
            self.message(index, found.start, found.end, depth + 1)?;
            if depth == 0 && self.select == Some(field.number) {
                self.selected = Some((start, self.out.len()));
            }
            return Ok(());
        }
        let data: &'a Bytes = self.data;
        let value = value::single(field.kind, data, found.start, found.end)?;
        if !field.presence
            && !self.emit_unpopulated
            && value::is_zero(self.table, field.kind, value)?
        {
            return Ok(());
        }
        self.key(field, first);
        value::write(&mut self.out, self.table, self.style, field.kind, value)
    }

    fn list(
        &mut self,
        field: &FieldPlan,
        from: usize,
        to: usize,
        depth: usize,
        first: &mut bool,
    ) -> Result<(), Bail> {
        let data: &'a Bytes = self.data;
        // Without defaults an empty list is left out, so the key waits for
        // the first value (a packed run may hold none).
        let mut items = 0usize;
        if self.emit_unpopulated {
            self.key(field, first);
            self.out.push(b'[');
        }
        for at in from..to {
            let found = *self.found.get(at).ok_or(Bail)?;
            if found.wire == wire::LEN && field.kind.wire() != wire::LEN {
                let packed = data.get(..found.end).ok_or(Bail)?;
                let mut pos = found.start;
                while pos < found.end {
                    let value = value::read(field.kind, packed, &mut pos)?;
                    self.item(field, &mut items, first);
                    value::write(&mut self.out, self.table, self.style, field.kind, value)?;
                }
                continue;
            }
            self.item(field, &mut items, first);
            match field.kind {
                Scalar::Message(index) => self.message(index, found.start, found.end, depth + 1)?,
                kind => {
                    let value = value::single(kind, data, found.start, found.end)?;
                    value::write(&mut self.out, self.table, self.style, kind, value)?;
                }
            }
        }
        if items > 0 || self.emit_unpopulated {
            self.out.push(b']');
        }
        Ok(())
    }

    /// Opens the list at its first value, or separates the next one.
    fn item(&mut self, field: &FieldPlan, items: &mut usize, first: &mut bool) {
        if *items > 0 {
            self.out.push(b',');
        } else if !self.emit_unpopulated {
            self.key(field, first);
            self.out.push(b'[');
        }
        *items += 1;
    }

    /// Writes the default of an unset field without presence.
    fn unset(&mut self, field: &FieldPlan) -> Result<(), Bail> {
        match field.shape {
            Shape::List => self.out.extend_from_slice(b"[]"),
            Shape::Map(_) => self.out.extend_from_slice(b"{}"),
            Shape::Single => {
                let zero = value::zero(self.table, field.kind)?;
                value::write(&mut self.out, self.table, self.style, field.kind, zero)?;
            }
        }
        Ok(())
    }

    /// Writes a message the writer does not follow itself (a well-known
    /// type, or one with groups) through prost-reflect, as the old path
    /// would have: decoded alone, then held to the nesting limit it would
    /// have met inside the whole response.
    fn reflect(
        &mut self,
        desc: &MessageDescriptor,
        start: usize,
        end: usize,
        depth: usize,
    ) -> Result<(), Bail> {
        if start > end || end > self.data.len() {
            return Err(Bail);
        }
        let message =
            DynamicMessage::decode(desc.clone(), self.data.slice(start..end)).map_err(|_| Bail)?;
        let budget = MAX_MESSAGE_DEPTH.checked_sub(depth).ok_or(Bail)?;
        let checked = match writable::check(&message, budget) {
            Err(Unwritable::TooDeep(_)) => return Err(Bail),
            // A value with no JSON form matters only where it is written.
            Err(Unwritable::Invalid(_)) if !self.checking => return Err(Bail),
            Err(Unwritable::Invalid(_)) => return Ok(()),
            Ok(checked) => checked,
        };
        if self.checking {
            return Ok(());
        }
        let mut json = json_number::serializer(&mut self.out);
        empty_any::serialize(
            &message,
            &mut json,
            self.options,
            self.float_safe,
            checked.empty_any,
        )
        .map_err(|_| Bail)
    }
}
