//! Checks that a payload decodes as a Protobuf message without building it.
//!
//! Validation only needs the answer of `DynamicMessage::decode`, not the
//! message: decoding one allocated a map entry and a value per field, and
//! a string per text field, for a message that was dropped at once. This
//! walks the wire format with the descriptor instead, reading each field with
//! the same `prost::encoding` function `prost-reflect` reads it with (so a
//! field is accepted exactly when it would be) into a throwaway number, and
//! checking text and bytes where they lie (UTF-8 for text) instead of copying
//! them out.
//!
//! It only ever says "valid" for what it reads in full. Whatever it does not
//! handle (groups, extensions, deep nesting) and every payload it finds
//! wrong are referred to `DynamicMessage::decode`, which gives the verdict
//! and the error text: so a refusal is always the library's, and the check
//! can only be wrong by accepting, which `tests` compares with the library
//! on generated and corrupted messages.

use prost::{
    bytes::Buf,
    encoding::{self, DecodeContext, WireType},
};
use prost_reflect::{FieldDescriptor, Kind, MessageDescriptor};

/// Ask `DynamicMessage::decode`.
#[derive(Debug)]
pub(crate) struct Refer;

impl From<prost::DecodeError> for Refer {
    fn from(_: prost::DecodeError) -> Self {
        Refer
    }
}

/// Nesting beyond this is referred (prost stops at 100 levels).
const MAX_DEPTH: u32 = 32;

/// `Ok` when `payload` decodes as `message`; `Refer` when the decoder must
/// decide.
pub(crate) fn check(message: &MessageDescriptor, payload: &[u8]) -> Result<(), Refer> {
    let mut buf = payload;
    fields(message, &mut buf, 0)
}

/// The fields of one message, to the end of `buf`.
fn fields(message: &MessageDescriptor, buf: &mut &[u8], depth: u32) -> Result<(), Refer> {
    while buf.has_remaining() {
        let (number, wire) = encoding::decode_key(buf)?;
        match message.get_field(number) {
            Some(field) => field_value(&field, wire, buf, depth)?,
            None => {
                if message.get_extension(number).is_some()
                    || matches!(wire, WireType::StartGroup | WireType::EndGroup)
                {
                    return Err(Refer);
                }
                encoding::skip_field(wire, number, buf, DecodeContext::default())?;
            }
        }
    }
    Ok(())
}

/// One occurrence of a known field, as `prost-reflect` merges it.
fn field_value(
    field: &FieldDescriptor,
    wire: WireType,
    buf: &mut &[u8],
    depth: u32,
) -> Result<(), Refer> {
    let kind = field.kind();
    if field.is_map() {
        // An entry is a small message: key = 1, value = 2.
        let Kind::Message(entry) = kind else {
            return Err(Refer);
        };
        encoding::check_wire_type(WireType::LengthDelimited, wire)?;
        return delimited(buf, |inner| fields(&entry, inner, depth + 1));
    }
    if field.is_list() && wire == WireType::LengthDelimited && packable(&kind) {
        let element = kind.wire_type();
        return delimited(buf, |inner| {
            while inner.has_remaining() {
                one(field, &kind, element, inner, depth)?;
            }
            Ok(())
        });
    }
    one(field, &kind, wire, buf, depth)
}

/// Kinds a repeated field may send packed (as `prost-reflect` decides).
fn packable(kind: &Kind) -> bool {
    !matches!(kind, Kind::String | Kind::Bytes | Kind::Message(_))
}

/// One value of `kind` sent with `wire`.
fn one(
    field: &FieldDescriptor,
    kind: &Kind,
    wire: WireType,
    buf: &mut &[u8],
    depth: u32,
) -> Result<(), Refer> {
    let ctx = DecodeContext::default();
    match kind {
        Kind::Double => encoding::double::merge(wire, &mut 0.0, buf, ctx)?,
        Kind::Float => encoding::float::merge(wire, &mut 0.0, buf, ctx)?,
        Kind::Int32 | Kind::Enum(_) => encoding::int32::merge(wire, &mut 0, buf, ctx)?,
        Kind::Int64 => encoding::int64::merge(wire, &mut 0, buf, ctx)?,
        Kind::Uint32 => encoding::uint32::merge(wire, &mut 0, buf, ctx)?,
        Kind::Uint64 => encoding::uint64::merge(wire, &mut 0, buf, ctx)?,
        Kind::Sint32 => encoding::sint32::merge(wire, &mut 0, buf, ctx)?,
        Kind::Sint64 => encoding::sint64::merge(wire, &mut 0, buf, ctx)?,
        Kind::Fixed32 => encoding::fixed32::merge(wire, &mut 0, buf, ctx)?,
        Kind::Fixed64 => encoding::fixed64::merge(wire, &mut 0, buf, ctx)?,
        Kind::Sfixed32 => encoding::sfixed32::merge(wire, &mut 0, buf, ctx)?,
        Kind::Sfixed64 => encoding::sfixed64::merge(wire, &mut 0, buf, ctx)?,
        Kind::Bool => encoding::bool::merge(wire, &mut false, buf, ctx)?,
        // As `string::merge` and `bytes::merge` read them, without the copy.
        Kind::String => delimited_bytes(wire, buf, |b| std::str::from_utf8(b).is_ok())?,
        Kind::Bytes => delimited_bytes(wire, buf, |_| true)?,
        Kind::Message(nested) => {
            if field.is_group() || depth + 1 >= MAX_DEPTH {
                return Err(Refer);
            }
            encoding::check_wire_type(WireType::LengthDelimited, wire)?;
            delimited(buf, |inner| fields(nested, inner, depth + 1))?;
        }
    }
    Ok(())
}

/// A length-delimited value whose bytes `valid` accepts.
fn delimited_bytes(
    wire: WireType,
    buf: &mut &[u8],
    valid: impl FnOnce(&[u8]) -> bool,
) -> Result<(), Refer> {
    encoding::check_wire_type(WireType::LengthDelimited, wire)?;
    delimited(buf, |inner| {
        if !valid(inner) {
            return Err(Refer);
        }
        *inner = &inner[inner.len()..];
        Ok(())
    })
}

/// A length-delimited region: `read` gets exactly its bytes and must use
/// them all.
fn delimited(
    buf: &mut &[u8],
    read: impl FnOnce(&mut &[u8]) -> Result<(), Refer>,
) -> Result<(), Refer> {
    let len = encoding::decode_varint(buf)?;
    let len = usize::try_from(len).map_err(|_| Refer)?;
    if len > buf.len() {
        return Err(Refer);
    }
    let (mut inner, rest) = buf.split_at(len);
    read(&mut inner)?;
    if inner.has_remaining() {
        return Err(Refer);
    }
    *buf = rest;
    Ok(())
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use prost::Message as _;
    use prost_reflect::DynamicMessage;

    use super::*;
    use crate::schema::{SchemaDefinition, validator::Compiled};

    /// Every kind of field, packed and unpacked lists, maps, a oneof, nesting.
    const PROTO: &str = r#"
        syntax = "proto3";
        package t;
        enum Level { LOW = 0; HIGH = 1; }
        message Inner { string name = 1; repeated int32 ids = 2; Inner child = 3; bytes raw = 4; }
        message All {
          double d = 1; float f = 2; int32 i32 = 3; int64 i64 = 4; uint32 u32 = 5;
          uint64 u64 = 6; sint32 s32 = 7; sint64 s64 = 8; fixed32 fx32 = 9;
          fixed64 fx64 = 10; sfixed32 sf32 = 11; sfixed64 sf64 = 12; bool b = 13;
          string s = 14; bytes by = 15; Level level = 16; Inner inner = 17;
          repeated int64 packed = 18; repeated int32 unpacked = 19 [packed = false];
          repeated string names = 20; repeated Inner inners = 21;
          map<string, Inner> by_name = 22; map<int32, string> labels = 23;
          oneof choice { string text = 24; int32 number = 25; }
          repeated Level levels = 26; repeated bool flags = 27; repeated double ds = 28;
        }
    "#;

    fn all() -> MessageDescriptor {
        match &*Compiled::compile(&SchemaDefinition::protobuf(PROTO, "t.All")).unwrap() {
            Compiled::Protobuf { message } => message.clone(),
            _ => unreachable!("a Protobuf schema compiles to a message"),
        }
    }

    /// A message with every field set, encoded by the library.
    fn full_message(desc: &MessageDescriptor) -> Vec<u8> {
        let json = serde_json::json!({
            "d": 1.5, "f": -2.25, "i32": -7, "i64": "-9000000000", "u32": 7,
            "u64": "18000000000000000000", "s32": -3, "s64": "-4", "fx32": 5,
            "fx64": "6", "sf32": -8, "sf64": "-9", "b": true, "s": "Grüße",
            "by": "AAEC", "level": "HIGH",
            "inner": {"name": "a", "ids": [1, 2, 3], "child": {"name": "b", "raw": "/w=="}},
            "packed": ["1", "-2", "300000"], "unpacked": [4, -5], "names": ["x", ""],
            "inners": [{"name": "c"}, {}], "byName": {"k": {"ids": [9]}},
            "labels": {"1": "one", "-2": "minus two"}, "number": 42,
            "levels": ["LOW", "HIGH"], "flags": [true, false], "ds": [0.5, -1.0]
        });
        DynamicMessage::deserialize(desc.clone(), json)
            .unwrap()
            .encode_to_vec()
    }

    fn varint(mut v: u64) -> Vec<u8> {
        let mut out = Vec::new();
        while v >= 0x80 {
            out.push((v as u8) | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
        out
    }

    fn key(number: u32, wire: u64) -> Vec<u8> {
        varint((u64::from(number) << 3) | wire)
    }

    /// One field record with any number (known or not) and any wire type,
    /// its content random or itself a record soup.
    fn record(nested: BoxedStrategy<Vec<u8>>) -> impl Strategy<Value = Vec<u8>> {
        let number = prop_oneof![1u32..=30, Just(1000u32)];
        prop_oneof![
            (number.clone(), any::<u64>()).prop_map(|(n, v)| [key(n, 0), varint(v)].concat()),
            (number.clone(), any::<[u8; 8]>()).prop_map(|(n, b)| [key(n, 1), b.to_vec()].concat()),
            (number.clone(), any::<[u8; 4]>()).prop_map(|(n, b)| [key(n, 5), b.to_vec()].concat()),
            (number.clone(), prop::collection::vec(any::<u8>(), 0..12)).prop_map(|(n, b)| [
                key(n, 2),
                varint(b.len() as u64),
                b
            ]
            .concat()),
            (number.clone(), "[a-z]{0,6}").prop_map(|(n, t)| {
                [key(n, 2), varint(t.len() as u64), t.into_bytes()].concat()
            }),
            (number, nested).prop_map(|(n, b)| [key(n, 2), varint(b.len() as u64), b].concat()),
        ]
    }

    fn soup() -> impl Strategy<Value = Vec<u8>> {
        let leaf =
            prop::collection::vec(record(Just(Vec::new()).boxed()), 0..6).prop_map(|r| r.concat());
        leaf.prop_recursive(3, 64, 6, |inner| {
            prop::collection::vec(record(inner.boxed()), 0..6).prop_map(|r| r.concat())
        })
    }

    /// The check's "valid" must be the decoder's.
    fn agrees(desc: &MessageDescriptor, bytes: &[u8]) -> Result<(), TestCaseError> {
        if check(desc, bytes).is_ok() {
            prop_assert!(
                DynamicMessage::decode(desc.clone(), bytes).is_ok(),
                "accepted what the decoder refuses: {bytes:02x?}"
            );
        }
        Ok(())
    }

    #[test]
    fn a_message_of_every_field_kind_is_read_in_full() {
        let desc = all();
        let bytes = full_message(&desc);
        check(&desc, &bytes).unwrap();
        // Each field of Inner on its own, and the empty message.
        check(&desc, &[]).unwrap();
    }

    #[test]
    fn what_it_does_not_read_goes_to_the_decoder() {
        let desc = all();
        // A group (wire type 3) of an unknown field: the decoder skips it.
        let group = [key(1000, 3), key(1, 0), vec![1], key(1000, 4)].concat();
        assert!(check(&desc, &group).is_err());
        assert!(DynamicMessage::decode(desc.clone(), &group[..]).is_ok());
        // Nesting deeper than the check goes.
        let mut deep = Vec::new();
        for _ in 0..40 {
            deep = [key(3, 2), varint(deep.len() as u64), deep].concat();
        }
        let deep = [key(17, 2), varint(deep.len() as u64), deep].concat();
        assert!(check(&desc, &deep).is_err());
        assert!(DynamicMessage::decode(desc, &deep[..]).is_ok());
    }

    /// The generated records reach the check's accepting path often enough
    /// for the comparison below to mean something.
    #[test]
    fn generated_records_are_often_accepted() {
        use proptest::strategy::ValueTree;
        let desc = all();
        let strategy = soup();
        let mut runner = proptest::test_runner::TestRunner::deterministic();
        let accepted = (0..2000)
            .filter(|_| {
                let bytes = strategy.new_tree(&mut runner).unwrap().current();
                check(&desc, &bytes).is_ok()
            })
            .count();
        assert!(accepted >= 200, "{accepted} of 2000 accepted");
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

        #[test]
        fn accepts_only_what_the_decoder_accepts(bytes in soup()) {
            agrees(&all(), &bytes)?;
        }

        #[test]
        fn a_corrupted_message_is_accepted_only_if_the_decoder_accepts_it(
            edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
            cut in any::<prop::sample::Index>(),
        ) {
            let desc = all();
            let mut bytes = full_message(&desc);
            for (at, byte) in edits {
                let i = at.index(bytes.len());
                bytes[i] = byte;
            }
            agrees(&desc, &bytes)?;
            let end = cut.index(bytes.len() + 1);
            agrees(&desc, &bytes[..end])?;
        }
    }
}
