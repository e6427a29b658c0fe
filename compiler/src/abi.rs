//! The fact ABI: how facts are laid out in the guest's memory and how results come
//! back. Fixed by the compiler from the typed schema; documented in docs/abi.md.
//!
//! Everything is little-endian 64-bit words. The input starts with a header of
//! `HEADER_WORDS` words; entity records are `fields × 8` bytes with field `i` at byte
//! `8 i`; a list is a packed word `offset << 32 | count` (offsets from the start of the
//! input); strings are interned ids; an absent optional is `ABSENT`.

use crate::ir::HeaderSlot;
use crate::numeric::ABSENT;
use foldhash::fast::RandomState;
use hashbrown::HashTable;
use std::hash::BuildHasher;
use std::sync::Arc;
use weir_dsl::checked::{Ruleset, Value};
use weir_dsl::schema;
use weir_dsl::types::Type;

/// Magic word at the start of every input: `WEIR` and the ABI version.
pub const MAGIC: i64 = 0x5745_4952_0000_0001;
pub const HEADER_WORDS: usize = 10;
/// Inputs larger than this are refused before they reach a guest.
pub const MAX_INPUT_BYTES: usize = 16 * 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    #[error("the facts are too large to encode ({0} bytes; the limit is 16 MiB)")]
    TooLarge(usize),
    #[error("`{0}` overflows when derived (price × qty or the sum of line subtotals)")]
    Overflow(&'static str),
    #[error("a value has the wrong shape for `{0}`")]
    Shape(String),
}

/// The ids of a module's string table, built once per compiled ruleset and shared by
/// every evaluation's [`Interner`] (building it per evaluation cost more than encoding
/// the facts of a small order). Its hasher is shared too: one hash of a string serves
/// the lookup here and, for a string not in the table, the one among the fresh strings.
#[derive(Debug, Clone, Default)]
pub struct InternTable {
    /// Table strings by hash, as indices into `strings` (which are their ids).
    ids: HashTable<usize>,
    strings: Vec<String>,
    hasher: RandomState,
}

impl InternTable {
    pub fn new(table: &[String]) -> InternTable {
        let mut out = InternTable::default();
        for s in table {
            let hash = out.hasher.hash_one(s.as_str());
            if out.find(s, hash).is_none() {
                let InternTable {
                    ids,
                    strings,
                    hasher,
                } = &mut out;
                ids.insert_unique(hash, strings.len(), |i| {
                    hasher.hash_one(strings.get(*i).map_or("", String::as_str))
                });
                strings.push(s.clone());
            }
        }
        out
    }

    /// The id of `s` (whose hash is `hash`), if the table has it.
    fn find(&self, s: &str, hash: u64) -> Option<i64> {
        self.ids
            .find(hash, |i| self.strings.get(*i).is_some_and(|t| t == s))
            .map(|i| *i as i64)
    }

    pub fn len(&self) -> usize {
        self.strings.len()
    }

    pub fn is_empty(&self) -> bool {
        self.strings.is_empty()
    }
}

/// Strings to ids: the module's literals get the ids of its string table; other
/// strings met while encoding get fresh ids after them. Equality of ids is equality
/// of strings, which is all the language can ask of a string.
///
/// Fresh strings are appended to one text arena and found through a hash table of
/// their indices, so interning a new string costs no allocation of its own. The hasher
/// (the table's) is randomly seeded (foldhash), so crafted SKUs cannot force collisions.
#[derive(Debug, Clone, Default)]
pub struct Interner {
    base: Arc<InternTable>,
    /// The fresh strings, end to end.
    text: String,
    /// Where each fresh string ends in `text` (fresh string `i` has id
    /// `base.len() + i`).
    ends: Vec<usize>,
    /// Fresh strings by hash (the table's hasher), as indices into `ends`.
    fresh: HashTable<usize>,
}

/// Fresh string `index` of an interner's arena.
fn fresh_str<'a>(text: &'a str, ends: &[usize], index: usize) -> &'a str {
    let start = match index.checked_sub(1) {
        Some(before) => ends.get(before).copied().unwrap_or(0),
        None => 0,
    };
    let end = ends.get(index).copied().unwrap_or(start);
    text.get(start..end).unwrap_or("")
}

impl Interner {
    /// An interner over a string table built for this call alone.
    pub fn new(table: &[String]) -> Interner {
        Interner::with_table(Arc::new(InternTable::new(table)))
    }

    /// An interner over a shared, prebuilt string table (see [`crate::Compiled`]).
    pub fn with_table(base: Arc<InternTable>) -> Interner {
        // Room for the strings of a typical order up front (SKUs, categories, tags,
        // locations): growing the table and the arena step by step cost more than
        // hashing.
        Interner {
            base,
            text: String::with_capacity(1024),
            ends: Vec::with_capacity(64),
            fresh: HashTable::with_capacity(64),
        }
    }

    pub fn intern(&mut self, s: &str) -> i64 {
        // One hash serves both lookups and the insertion.
        let hash = self.base.hasher.hash_one(s);
        if let Some(id) = self.base.find(s, hash) {
            return id;
        }
        if let Some(index) = self.fresh_index(s, hash) {
            return self.fresh_id(index);
        }
        let index = self.ends.len();
        self.text.push_str(s);
        self.ends.push(self.text.len());
        let Interner {
            base,
            text,
            ends,
            fresh,
        } = self;
        fresh.insert_unique(hash, index, |i| {
            base.hasher.hash_one(fresh_str(text, ends, *i))
        });
        self.fresh_id(index)
    }

    /// The id of a string already interned.
    pub fn id(&self, s: &str) -> Option<i64> {
        let hash = self.base.hasher.hash_one(s);
        if let Some(id) = self.base.find(s, hash) {
            return Some(id);
        }
        self.fresh_index(s, hash).map(|index| self.fresh_id(index))
    }

    /// Where `s` (with hash `hash`) sits among the fresh strings.
    fn fresh_index(&self, s: &str, hash: u64) -> Option<usize> {
        self.fresh
            .find(hash, |i| fresh_str(&self.text, &self.ends, *i) == s)
            .copied()
    }

    fn fresh_id(&self, index: usize) -> i64 {
        (self.base.len() + index) as i64
    }

    pub fn resolve(&self, id: i64) -> Option<&str> {
        let index = usize::try_from(id).ok()?;
        match index.checked_sub(self.base.len()) {
            None => self.base.strings.get(index).map(String::as_str),
            Some(extra) if extra < self.ends.len() => {
                Some(fresh_str(&self.text, &self.ends, extra))
            }
            Some(_) => None,
        }
    }
}

/// The facts of one evaluation, as checked values (`Value::Record`s of the schema).
#[derive(Debug, Clone, Default)]
pub struct Facts {
    pub order: Option<Value>,
    pub customer: Option<Value>,
    pub now: i64,
    /// The one location a constraint or SOP sees.
    pub location: Option<Value>,
    /// Route candidates.
    pub locations: Vec<Value>,
    pub shipment: Option<Value>,
    pub carrier: Option<Value>,
    /// SOP event index into `weir_dsl::schema::EVENTS`.
    pub event: i64,
    /// Counter values, in the order of the manifest's velocities.
    pub counters: Vec<i64>,
}

struct Encoder<'a> {
    ruleset: &'a Ruleset,
    interner: &'a mut Interner,
    words: Vec<i64>,
    fields: DerivedFields,
    /// Emptied buffers for the words of records being encoded, reused so that a record
    /// costs no allocation of its own (one buffer per level of nesting in use).
    spare: Vec<Vec<i64>>,
}

/// Where the fields that `item.subtotal` and `order.subtotal` are derived from sit,
/// looked up once per encoding rather than by name for every line.
#[derive(Default)]
struct DerivedFields {
    item_price: Option<usize>,
    item_qty: Option<usize>,
    item_subtotal: Option<usize>,
    order_items: Option<usize>,
    order_subtotal: Option<usize>,
}

impl DerivedFields {
    fn of(ruleset: &Ruleset) -> DerivedFields {
        let index = |entity: usize, name: &str| {
            ruleset
                .schema
                .entity(entity)
                .and_then(|d| d.field(name))
                .map(|(i, _)| i)
        };
        DerivedFields {
            item_price: index(schema::ITEM, "price"),
            item_qty: index(schema::ITEM, "qty"),
            item_subtotal: index(schema::ITEM, "subtotal"),
            order_items: index(schema::ORDER, "items"),
            order_subtotal: index(schema::ORDER, "subtotal"),
        }
    }
}

/// Encodes facts into the input layout. Fields not given take the ruleset's defaults;
/// `item.subtotal` defaults to price × qty and `order.subtotal` to the sum of the lines.
pub fn encode(
    ruleset: &Ruleset,
    facts: &Facts,
    interner: &mut Interner,
) -> Result<Vec<u8>, EncodeError> {
    let mut encoder = Encoder {
        ruleset,
        interner,
        words: Vec::with_capacity(256),
        fields: DerivedFields::of(ruleset),
        // Two buffers (a record and the list it sits in), each with room for the
        // records of a typical order, so that neither grows word by word.
        spare: vec![Vec::with_capacity(256), Vec::with_capacity(256)],
    };
    encoder.words.resize(HEADER_WORDS, 0);
    let mut header = [0i64; HEADER_WORDS];
    header[0] = MAGIC;
    let roots = [
        (HeaderSlot::Order, schema::ORDER, &facts.order),
        (HeaderSlot::Customer, schema::CUSTOMER, &facts.customer),
        (HeaderSlot::Location, schema::LOCATION, &facts.location),
        (HeaderSlot::Shipment, schema::SHIPMENT, &facts.shipment),
        (HeaderSlot::Carrier, schema::CARRIER, &facts.carrier),
    ];
    for (slot, entity, value) in roots {
        let empty = Value::Record(entity, Vec::new());
        let record = value.as_ref().unwrap_or(&empty);
        let word = encoder.record_word(entity, record)?;
        if let Some(h) = header.get_mut(slot.word() as usize) {
            *h = word;
        }
    }
    let locations = encoder.list_word(&Type::Entity(schema::LOCATION), &facts.locations)?;
    let counters = encoder.scalars(&facts.counters);
    let assignments = [
        (HeaderSlot::Now, facts.now),
        (HeaderSlot::Locations, locations),
        (HeaderSlot::Event, facts.event),
        (HeaderSlot::Counters, counters),
    ];
    for (slot, value) in assignments {
        if let Some(h) = header.get_mut(slot.word() as usize) {
            *h = value;
        }
    }
    for (i, word) in header.iter().enumerate() {
        if let Some(w) = encoder.words.get_mut(i) {
            *w = *word;
        }
    }
    let bytes = encoder.words.len() * 8;
    if bytes > MAX_INPUT_BYTES {
        return Err(EncodeError::TooLarge(bytes));
    }
    // Sized first and filled in place: no capacity check per word, as pushing had.
    let mut out = vec![0u8; bytes];
    for (chunk, word) in out.chunks_exact_mut(8).zip(&encoder.words) {
        chunk.copy_from_slice(&word.to_le_bytes());
    }
    Ok(out)
}

fn pack(offset_words: usize, count: usize) -> i64 {
    (((offset_words * 8) as i64) << 32) | (count as i64 & 0xFFFF_FFFF)
}

/// Splits a packed list word into (byte offset, count).
pub fn unpack(word: i64) -> (u32, u32) {
    ((word >> 32) as u32, (word & 0xFFFF_FFFF) as u32)
}

impl Encoder<'_> {
    fn scalars(&mut self, values: &[i64]) -> i64 {
        let offset = self.words.len();
        self.words.extend_from_slice(values);
        pack(offset, values.len())
    }

    /// Appends the words of one record to `out`; its lists and nested records go to the
    /// input first (so that `out`, appended after, stays contiguous).
    fn record_into(
        &mut self,
        entity: usize,
        value: &Value,
        out: &mut Vec<i64>,
    ) -> Result<(), EncodeError> {
        let Value::Record(_, slots) = value else {
            return Err(EncodeError::Shape(self.entity_name(entity)));
        };
        let ruleset = self.ruleset;
        let def = ruleset
            .schema
            .entity(entity)
            .ok_or_else(|| EncodeError::Shape(format!("entity {entity}")))?;
        let defaults = ruleset.defaults.get(entity);
        let start = out.len();
        for (index, field) in def.fields.iter().enumerate() {
            let given = slots.get(index).and_then(Option::as_ref);
            let word = match given {
                // Scalars and strings, most fields, without a call into `word`.
                Some(Value::String(s)) => self.interner.intern(s),
                Some(v @ (Value::List(_) | Value::Record(..) | Value::None)) => {
                    self.word(&field.ty, v)?
                }
                Some(v) => scalar_input_word(v)?,
                None => {
                    match self.derived(entity, index, out.get(start..).unwrap_or(&[]), slots)? {
                        Some(derived) => derived,
                        None => {
                            let default =
                                defaults.and_then(|d| d.get(index)).unwrap_or(&Value::None);
                            self.word(&field.ty, default)?
                        }
                    }
                }
            };
            out.push(word);
        }
        Ok(())
    }

    /// `item.subtotal` and `order.subtotal` when the facts leave them out.
    fn derived(
        &self,
        entity: usize,
        field: usize,
        words_so_far: &[i64],
        slots: &[Option<Value>],
    ) -> Result<Option<i64>, EncodeError> {
        let fields = &self.fields;
        if entity == schema::ITEM && fields.item_subtotal == Some(field) {
            let word = |index: Option<usize>| {
                index
                    .and_then(|i| words_so_far.get(i))
                    .copied()
                    .unwrap_or(0)
            };
            return word(fields.item_price)
                .checked_mul(word(fields.item_qty))
                .map(Some)
                .ok_or(EncodeError::Overflow("item.subtotal"));
        }
        if entity != schema::ORDER || fields.order_subtotal != Some(field) {
            return Ok(None);
        }
        let Some(Some(Value::List(items))) = fields.order_items.and_then(|i| slots.get(i)) else {
            return Ok(Some(0));
        };
        let mut total: i64 = 0;
        for item in items {
            let Value::Record(_, item_slots) = item else {
                continue;
            };
            let given = |index: Option<usize>| {
                index
                    .and_then(|i| item_slots.get(i))
                    .and_then(Option::as_ref)
            };
            let number = |index: Option<usize>| -> i64 {
                match given(index) {
                    Some(Value::Money(v)) | Some(Value::Int(v)) => *v,
                    _ => 0,
                }
            };
            let line = match given(fields.item_subtotal) {
                Some(Value::Money(v)) => *v,
                _ => number(fields.item_price)
                    .checked_mul(number(fields.item_qty))
                    .ok_or(EncodeError::Overflow("item.subtotal"))?,
            };
            total = total
                .checked_add(line)
                .ok_or(EncodeError::Overflow("order.subtotal"))?;
        }
        Ok(Some(total))
    }

    fn entity_name(&self, entity: usize) -> String {
        self.ruleset
            .schema
            .entity(entity)
            .map_or("fact", |e| e.name)
            .to_string()
    }

    fn record_word(&mut self, entity: usize, value: &Value) -> Result<i64, EncodeError> {
        // On an error the buffer is simply dropped: the whole encoding fails.
        let mut words = self.spare.pop().unwrap_or_default();
        self.record_into(entity, value, &mut words)?;
        // A record is referred to by its plain byte offset.
        let offset = self.words.len();
        self.words.extend_from_slice(&words);
        words.clear();
        self.spare.push(words);
        Ok((offset * 8) as i64)
    }

    fn list_word(&mut self, element: &Type, values: &[Value]) -> Result<i64, EncodeError> {
        match element {
            Type::Entity(entity) => {
                // Nested lists first, so the records themselves are contiguous.
                let mut records = self.spare.pop().unwrap_or_default();
                for value in values {
                    self.record_into(*entity, value, &mut records)?;
                }
                let offset = self.words.len();
                self.words.extend_from_slice(&records);
                records.clear();
                self.spare.push(records);
                Ok(pack(offset, values.len()))
            }
            scalar => {
                let mut words = self.spare.pop().unwrap_or_default();
                for value in values {
                    words.push(self.word(scalar, value)?);
                }
                let word = self.scalars(&words);
                words.clear();
                self.spare.push(words);
                Ok(word)
            }
        }
    }

    fn word(&mut self, ty: &Type, value: &Value) -> Result<i64, EncodeError> {
        Ok(match value {
            Value::Bool(_)
            | Value::Int(_)
            | Value::Decimal(_)
            | Value::Money(_)
            | Value::Percent(_)
            | Value::Quantity(..)
            | Value::Time(_)
            | Value::Enum(..) => scalar_input_word(value)?,
            Value::String(s) => self.interner.intern(s),
            Value::None => ABSENT,
            Value::List(items) => match ty.strip_optional() {
                Type::List(element) => self.list_word(element, items)?,
                _ => return Err(EncodeError::Shape("a list".to_string())),
            },
            Value::Record(entity, _) => self.record_word(*entity, value)?,
        })
    }
}

/// The input word of a scalar fact, which must not be the absent marker.
#[inline]
fn scalar_input_word(value: &Value) -> Result<i64, EncodeError> {
    match scalar_word(value) {
        Some(ABSENT) | None => Err(EncodeError::Shape(
            "a value equal to the absent marker".to_string(),
        )),
        Some(word) => Ok(word),
    }
}

/// The machine word of a scalar other than a string (which needs an interner): what the
/// input, a compiled constant and a runtime list's member set all hold for it.
pub fn scalar_word(value: &Value) -> Option<i64> {
    match value {
        Value::Int(v)
        | Value::Decimal(v)
        | Value::Money(v)
        | Value::Percent(v)
        | Value::Time(v)
        | Value::Quantity(v, _) => Some(*v),
        Value::Bool(b) => Some(i64::from(*b)),
        Value::Enum(_, variant) => Some(i64::from(*variant)),
        Value::String(_) | Value::None | Value::List(_) | Value::Record(..) => None,
    }
}

/// A copy of an encoded input with its event word (the SOP event index) replaced.
pub fn with_event(input: &[u8], event: i64) -> Vec<u8> {
    let mut out = input.to_vec();
    let at = HeaderSlot::Event.word() as usize * 8;
    if let Some(word) = out.get_mut(at..at + 8) {
        word.copy_from_slice(&event.to_le_bytes());
    }
    out
}

/// The record offset of a root in an encoded input (for tests and tools).
pub fn header_word(input: &[u8], slot: HeaderSlot) -> Option<i64> {
    word_at(input, slot.word() as usize * 8)
}

/// The word at a byte offset, if it is inside the buffer.
pub fn word_at(bytes: &[u8], offset: usize) -> Option<i64> {
    let slice = bytes.get(offset..offset.checked_add(8)?)?;
    let array: [u8; 8] = slice.try_into().ok()?;
    Some(i64::from_le_bytes(array))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::Interner;

    #[test]
    fn the_interner_keeps_table_ids_and_numbers_fresh_strings_after_them() {
        let table = ["GIFT".to_string(), "vip".to_string(), "GIFT".to_string()];
        let mut interner = Interner::new(&table);
        assert_eq!(interner.intern("vip"), 1);
        let (a, b) = (interner.intern("SKU-1"), interner.intern(""));
        let c = interner.intern("SKU-12");
        assert_eq!((a, b, c), (2, 3, 4));
        assert_eq!(interner.intern("SKU-1"), 2, "the same string, the same id");
        assert_eq!(interner.intern(""), 3);
        assert_eq!(interner.id("SKU-12"), Some(4));
        assert_eq!(interner.id("SKU-2"), None);
        for (id, text) in [(0, "GIFT"), (2, "SKU-1"), (3, ""), (4, "SKU-12")] {
            assert_eq!(interner.resolve(id), Some(text));
        }
        assert_eq!(interner.resolve(5), None);
        assert_eq!(interner.resolve(-1), None);
        // Past the up-front capacity: the arena and the table grow and stay consistent.
        let ids: Vec<i64> = (0..500)
            .map(|i| interner.intern(&format!("tag-{i}")))
            .collect();
        for (i, id) in ids.iter().enumerate() {
            assert_eq!(interner.resolve(*id), Some(format!("tag-{i}").as_str()));
            assert_eq!(interner.id(&format!("tag-{i}")), Some(*id));
        }
    }
}
