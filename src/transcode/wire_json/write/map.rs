//! Writing map fields: one JSON object per field, an entry per occurrence.

use bytes::Bytes;

use super::Writer;
use crate::transcode::wire_json::Bail;
use crate::transcode::wire_json::plan::{FieldPlan, Scalar};
use crate::transcode::wire_json::{value, wire};

impl<'a> Writer<'a> {
    pub(super) fn map(
        &mut self,
        field: &FieldPlan,
        key: Scalar,
        from: usize,
        to: usize,
        depth: usize,
        first: &mut bool,
    ) -> Result<(), Bail> {
        // Every occurrence is an entry, so a map present on the wire is
        // never empty.
        self.key(field, first);
        self.out.push(b'{');
        let base = self.keys.len();
        for at in from..to {
            if at > from {
                self.out.push(b',');
            }
            let found = *self.found.get(at).ok_or(Bail)?;
            self.entry(key, field.kind, found.start, found.end, depth)?;
        }
        self.unique_keys(base)?;
        self.keys.truncate(base);
        self.out.push(b'}');
        Ok(())
    }

    /// Writes one map entry, `"key":value`, from its wire bytes.
    fn entry(
        &mut self,
        key: Scalar,
        kind: Scalar,
        start: usize,
        end: usize,
        depth: usize,
    ) -> Result<(), Bail> {
        let data: &'a Bytes = self.data;
        let bytes = data.get(..end).ok_or(Bail)?;
        let mut pos = start;
        let mut key_at = None;
        let mut value_at = None;
        while pos < end {
            let (number, wire) = wire::key(bytes, &mut pos)?;
            let extent = wire::extent(bytes, &mut pos, wire)?;
            // Given twice, a key or value is replaced or merged: refused.
            let slot = match number {
                1 if wire == key.wire() => &mut key_at,
                2 if wire == kind.wire() => &mut value_at,
                1 | 2 => return Err(Bail),
                _ => continue,
            };
            if slot.replace(extent).is_some() {
                return Err(Bail);
            }
        }
        let key_value = match key_at {
            Some((s, e)) => value::single(key, data, s, e)?,
            None => value::zero(self.table, key)?,
        };
        let key_start = self.out.len();
        value::write_key(&mut self.out, key, key_value)?;
        self.keys.push((key_start, self.out.len()));
        self.out.push(b':');
        match (kind, value_at) {
            (Scalar::Message(index), Some((s, e))) => self.message(index, s, e, depth + 1),
            // An entry without its value holds an empty message.
            (Scalar::Message(index), None) => self.message(index, end, end, depth + 1),
            (kind, found) => {
                let value = match found {
                    Some((s, e)) => value::single(kind, data, s, e)?,
                    None => value::zero(self.table, kind)?,
                };
                value::write(&mut self.out, self.table, self.style, kind, value)
            }
        }
    }

    /// Refuses a map whose entries repeat a key: the last one wins there,
    /// and the written keys are compared as written (one text per key).
    fn unique_keys(&mut self, base: usize) -> Result<(), Bail> {
        let out = &self.out;
        let keys = self.keys.get_mut(base..).ok_or(Bail)?;
        let text = |&(s, e): &(usize, usize)| out.get(s..e).unwrap_or_default();
        if keys.len() <= 8 {
            for (i, a) in keys.iter().enumerate() {
                if keys.iter().skip(i + 1).any(|b| text(a) == text(b)) {
                    return Err(Bail);
                }
            }
            return Ok(());
        }
        keys.sort_unstable_by(|a, b| text(a).cmp(text(b)));
        if keys.windows(2).any(|pair| text(&pair[0]) == text(&pair[1])) {
            return Err(Bail);
        }
        Ok(())
    }
}
