//! About how many bytes a value's JSON takes, found without writing it.
//!
//! The board's log is bounded in bytes, and its events are encoded only when a subscriber
//! needs them (most of the time no supervisor watches, and encoding every change was a third
//! of an agent's reopen: `benches/core.rs`). Weighing walks the same serde structure as the
//! encoder but copies nothing and allocates nothing (it only counts the bytes a string's
//! escapes add), so the log can count what an event will take before anyone encodes it. The
//! weight is never less than the JSON's length, and a little more: a comma is counted after
//! every field, and a float at its longest form.

use serde::ser::{self, Serialize};

/// About the length of `value`'s JSON, in bytes.
pub(super) fn weigh<T: Serialize + ?Sized>(value: &T) -> usize {
    let mut weigher = Weigher(0);
    // Weighing cannot fail: every method below answers `Ok`.
    let _ = value.serialize(&mut weigher);
    weigher.0
}

struct Weigher(usize);

/// Never made: the weigher does not fail.
#[derive(Debug)]
struct Never;

impl std::fmt::Display for Never {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("weighing does not fail")
    }
}

impl std::error::Error for Never {}

impl ser::Error for Never {
    fn custom<T: std::fmt::Display>(_: T) -> Self {
        Never
    }
}

/// Decimal digits of `n`.
fn digits(n: u64) -> usize {
    n.checked_ilog10().map_or(1, |d| d as usize + 1)
}

/// The bytes serde_json adds to `v` by escaping it: one for `"`, `\` and the control
/// characters with a short escape, five for the other control characters (`\u00XX`). A name
/// full of them must not make an event's JSON several times its weight.
fn escapes(v: &str) -> usize {
    v.bytes()
        .map(|b| match b {
            b'"' | b'\\' | b'\x08' | b'\t' | b'\n' | b'\x0c' | b'\r' => 1,
            0..=0x1f => 5,
            _ => 0,
        })
        .sum()
}

impl Weigher {
    fn add(&mut self, n: usize) -> Result<(), Never> {
        self.0 += n;
        Ok(())
    }
}

/// Narrow integers weigh as the wide one they widen to.
macro_rules! widened {
    ($($($method:ident($narrow:ty)),* => $wide:ident;)*) => {$($(
        fn $method(self, v: $narrow) -> Result<(), Never> {
            self.$wide(v.into())
        }
    )*)*};
}

impl ser::Serializer for &mut Weigher {
    type Ok = ();
    type Error = Never;
    type SerializeSeq = Self;
    type SerializeTuple = Self;
    type SerializeTupleStruct = Self;
    type SerializeTupleVariant = Self;
    type SerializeMap = Self;
    type SerializeStruct = Self;
    type SerializeStructVariant = Self;

    fn serialize_bool(self, v: bool) -> Result<(), Never> {
        self.add(if v { 4 } else { 5 })
    }
    widened! {
        serialize_i8(i8), serialize_i16(i16), serialize_i32(i32) => serialize_i64;
        serialize_u8(u8), serialize_u16(u16), serialize_u32(u32) => serialize_u64;
    }
    fn serialize_i64(self, v: i64) -> Result<(), Never> {
        self.add(usize::from(v < 0) + digits(v.unsigned_abs()))
    }
    fn serialize_u64(self, v: u64) -> Result<(), Never> {
        self.add(digits(v))
    }
    // The longest each is written as (`-3.4028235e38`, `-1.7976931348623157e308`).
    fn serialize_f32(self, _: f32) -> Result<(), Never> {
        self.add(13)
    }
    fn serialize_f64(self, _: f64) -> Result<(), Never> {
        self.add(23)
    }
    fn serialize_char(self, v: char) -> Result<(), Never> {
        self.add(v.len_utf8() + 2)
    }
    fn serialize_str(self, v: &str) -> Result<(), Never> {
        self.add(v.len() + 2 + escapes(v))
    }
    fn serialize_bytes(self, v: &[u8]) -> Result<(), Never> {
        // serde_json writes bytes as an array of numbers.
        self.add(2 + v.len() * 4)
    }
    fn serialize_none(self) -> Result<(), Never> {
        self.add(4)
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), Never> {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<(), Never> {
        self.add(4)
    }
    fn serialize_unit_struct(self, _: &'static str) -> Result<(), Never> {
        self.add(4)
    }
    fn serialize_unit_variant(self, _: &'static str, _: u32, variant: &'static str) -> Result<(), Never> {
        self.serialize_str(variant)
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        value: &T,
    ) -> Result<(), Never> {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<(), Never> {
        // {"variant":value}
        self.add(variant.len() + 5)?;
        value.serialize(self)
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Self, Never> {
        open(self, 2)
    }
    fn serialize_tuple(self, len: usize) -> Result<Self, Never> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_struct(self, _: &'static str, len: usize) -> Result<Self, Never> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        v: &'static str,
        _: usize,
    ) -> Result<Self, Never> {
        // {"variant":[...]}
        open(self, v.len() + 7)
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Self, Never> {
        open(self, 2)
    }
    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Self, Never> {
        open(self, 2)
    }
    fn serialize_struct_variant(
        self,
        name: &'static str,
        index: u32,
        v: &'static str,
        len: usize,
    ) -> Result<Self, Never> {
        // {"variant":{...}}, as long as {"variant":[...]}
        self.serialize_tuple_variant(name, index, v, len)
    }
}

/// Counts what opens (and closes) a compound value, and weighs its parts next.
fn open(weigher: &mut Weigher, brackets: usize) -> Result<&mut Weigher, Never> {
    weigher.0 += brackets;
    Ok(weigher)
}

/// An element of a sequence: the value and its comma.
macro_rules! elements {
    ($($trait:ident :: $method:ident),*) => {$(
        impl ser::$trait for &mut Weigher {
            type Ok = ();
            type Error = Never;
            fn $method<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Never> {
                self.0 += 1;
                value.serialize(&mut **self)
            }
            fn end(self) -> Result<(), Never> {
                Ok(())
            }
        }
    )*};
}

elements!(
    SerializeSeq::serialize_element,
    SerializeTuple::serialize_element,
    SerializeTupleStruct::serialize_field,
    SerializeTupleVariant::serialize_field
);

impl ser::SerializeMap for &mut Weigher {
    type Ok = ();
    type Error = Never;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), Never> {
        // The key, its colon and the comma after the value.
        self.0 += 2;
        key.serialize(&mut **self)
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Never> {
        value.serialize(&mut **self)
    }
    fn end(self) -> Result<(), Never> {
        Ok(())
    }
}

/// A named field: `"name":value,`.
macro_rules! fields {
    ($($trait:ident),*) => {$(
        impl ser::$trait for &mut Weigher {
            type Ok = ();
            type Error = Never;
            fn serialize_field<T: Serialize + ?Sized>(
                &mut self,
                key: &'static str,
                value: &T,
            ) -> Result<(), Never> {
                self.0 += key.len() + 4;
                value.serialize(&mut **self)
            }
            fn end(self) -> Result<(), Never> {
                Ok(())
            }
        }
    )*};
}

fields!(SerializeStruct, SerializeStructVariant);

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde::Serialize;

    use super::weigh;

    #[derive(Serialize)]
    #[serde(tag = "kind", rename_all = "snake_case")]
    enum Change {
        Moved {
            who: String,
            to: Option<u32>,
            tags: Vec<String>,
            at: i64,
        },
        Gone {
            who: String,
        },
    }

    #[derive(Serialize)]
    struct Event {
        seq: u64,
        #[serde(flatten)]
        change: Change,
        counts: BTreeMap<String, u64>,
        flags: (bool, bool),
        unit: (),
    }

    fn exact<T: Serialize>(value: &T) -> usize {
        serde_json::to_vec(value).expect("serializes").len()
    }

    /// The weight is the JSON's length, escapes included, give or take the commas after last
    /// fields, which the weigher counts for every field.
    #[test]
    fn r15_an_event_weighs_about_the_length_of_its_json() {
        let events = [
            Event {
                seq: 1_234_567,
                change: Change::Moved {
                    who: "ana@example.com".into(),
                    to: Some(42),
                    tags: vec!["billing".into(), "vip".into()],
                    at: -17,
                },
                counts: [("open".to_owned(), 3), ("closed".to_owned(), 10_000)].into(),
                flags: (true, false),
                unit: (),
            },
            Event {
                seq: u64::MAX,
                change: Change::Gone {
                    who: "a \"quoted\" back\\slash\nnew line\u{1}\u{1f}\u{7f} ünï".repeat(20),
                },
                counts: [("\t".to_owned(), u64::MAX)].into(),
                flags: (false, true),
                unit: (),
            },
            Event {
                seq: 0,
                change: Change::Gone { who: "x".repeat(500) },
                counts: BTreeMap::new(),
                flags: (false, false),
                unit: (),
            },
        ];
        for event in &events {
            let (weight, json) = (weigh(event), exact(event));
            assert!(
                json <= weight && weight <= json + 16,
                "weighed {weight} for {json} bytes of JSON"
            );
        }
    }
}
