//! Compatibility between two versions of a schema.
//!
//! - **backward**: the new version reads data written with the previous one
//!   (consumers upgrade first);
//! - **forward**: the previous version reads data written with the new one
//!   (producers upgrade first);
//! - **full**: both; **none**: no check.
//!
//! Each check returns every breaking change it finds, phrased as the change
//! from the old version to the new one.

use std::collections::{BTreeSet, HashSet};

use prost_reflect::{Cardinality, Kind, MessageDescriptor};
use serde_json::Value;

use super::{Compatibility, validator::Compiled};

/// Breaking changes from `old` to `new` under `mode` (empty: compatible).
pub(crate) fn breaking_changes(mode: Compatibility, old: &Compiled, new: &Compiled) -> Vec<String> {
    let (backward, forward) = match mode {
        Compatibility::None => return Vec::new(),
        Compatibility::Backward => (true, false),
        Compatibility::Forward => (false, true),
        Compatibility::Full => (true, true),
    };
    let mut out = Vec::new();
    match (old, new) {
        (Compiled::Json { schema: o, .. }, Compiled::Json { schema: n, .. }) => {
            if backward {
                json_reads(n, o, "", Side::NewReadsOld, &mut out);
            }
            if forward {
                json_reads(o, n, "", Side::OldReadsNew, &mut out);
            }
        }
        (Compiled::Protobuf { message: o }, Compiled::Protobuf { message: n }) => {
            protobuf_changes(o, n, backward, forward, &mut out);
        }
        (Compiled::Avro { schema: o }, Compiled::Avro { schema: n }) => {
            if backward {
                avro_reads(o, n, "new version cannot read old data", &mut out);
            }
            if forward {
                avro_reads(n, o, "old version cannot read new data", &mut out);
            }
        }
        _ => out.push("the schema format changed".to_string()),
    }
    let mut seen = HashSet::new();
    out.retain(|c| seen.insert(c.clone()));
    out
}

// ---------------------------------------------------------------- JSON Schema

/// Which version reads which, to phrase changes as old → new.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Side {
    NewReadsOld,
    OldReadsNew,
}

fn types(schema: &Value) -> Option<BTreeSet<String>> {
    match schema.get("type")? {
        Value::String(t) => Some(BTreeSet::from([t.clone()])),
        Value::Array(ts) => Some(
            ts.iter()
                .filter_map(|t| t.as_str().map(String::from))
                .collect(),
        ),
        _ => None,
    }
}

fn accepts_type(reader: &BTreeSet<String>, t: &str) -> bool {
    reader.contains(t) || (t == "integer" && reader.contains("number"))
}

fn show(ts: &Option<BTreeSet<String>>) -> String {
    match ts {
        None => "any".to_string(),
        Some(ts) => ts.iter().cloned().collect::<Vec<_>>().join("|"),
    }
}

fn at(path: &str) -> String {
    if path.is_empty() {
        "/".to_string()
    } else {
        path.to_string()
    }
}

/// Can `reader` accept every document valid under `writer`? Pushes what it cannot.
fn json_reads(reader: &Value, writer: &Value, path: &str, side: Side, out: &mut Vec<String>) {
    let (old, new) = match side {
        Side::NewReadsOld => (writer, reader),
        Side::OldReadsNew => (reader, writer),
    };
    // Types: the writer's types must all be accepted by the reader.
    let (rt, wt) = (types(reader), types(writer));
    if let Some(r) = &rt {
        let ok = match &wt {
            None => false,
            Some(w) => w.iter().all(|t| accepts_type(r, t)),
        };
        if !ok {
            out.push(format!(
                "at {}: type changed from {} to {}",
                at(path),
                show(&types(old)),
                show(&types(new))
            ));
            return;
        }
    }
    // Enumerations: the reader's allowed values must include the writer's.
    if let Some(Value::Array(r)) = reader.get("enum") {
        let ok = match writer.get("enum") {
            Some(Value::Array(w)) => w.iter().all(|v| r.contains(v)),
            _ => false,
        };
        if !ok {
            out.push(format!(
                "at {}: allowed values (enum) changed incompatibly",
                at(path)
            ));
        }
    }
    // Numeric and length bounds may only widen for the reader.
    for (key, tighter) in [
        ("maximum", cmp_lt as fn(f64, f64) -> bool),
        ("maxLength", cmp_lt),
        ("maxItems", cmp_lt),
        ("minimum", cmp_gt),
        ("minLength", cmp_gt),
        ("minItems", cmp_gt),
    ] {
        if let Some(r) = reader.get(key).and_then(Value::as_f64) {
            let narrowed = match writer.get(key).and_then(Value::as_f64) {
                None => true,
                Some(w) => tighter(r, w),
            };
            if narrowed {
                out.push(format!(
                    "at {}: {key} changed from {} to {}",
                    at(path),
                    old.get(key).map_or("none".to_string(), |v| v.to_string()),
                    new.get(key).map_or("none".to_string(), |v| v.to_string())
                ));
            }
        }
    }
    // Objects.
    let props = |s: &Value| {
        s.get("properties")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default()
    };
    let required = |s: &Value| -> BTreeSet<String> {
        s.get("required")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    };
    let closed = |s: &Value| s.get("additionalProperties") == Some(&Value::Bool(false));
    let (rp, wp) = (props(reader), props(writer));
    for name in required(reader).difference(&required(writer)) {
        out.push(match side {
            Side::NewReadsOld if !wp.contains_key(name) => {
                format!("at {}: required property {name:?} added", at(path))
            }
            Side::NewReadsOld => format!("at {}: property {name:?} became required", at(path)),
            Side::OldReadsNew => format!(
                "at {}: property {name:?} is no longer required (the old version requires it)",
                at(path)
            ),
        });
    }
    for (name, w) in &wp {
        let child = format!("{path}/{name}");
        match rp.get(name) {
            Some(r) => json_reads(r, w, &child, side, out),
            None if closed(reader) => out.push(match side {
                Side::NewReadsOld => format!(
                    "at {}: property {name:?} removed while additionalProperties is false",
                    at(path)
                ),
                Side::OldReadsNew => format!(
                    "at {}: property {name:?} added but the old version forbids additional \
                     properties",
                    at(path)
                ),
            }),
            None => {}
        }
    }
    if closed(reader) && !closed(writer) {
        out.push(format!(
            "at {}: additionalProperties changed from allowed to false",
            at(path)
        ));
    }
    // Arrays.
    if let (Some(r), Some(w)) = (reader.get("items"), writer.get("items"))
        && r.is_object()
        && w.is_object()
    {
        json_reads(r, w, &format!("{path}/items"), side, out);
    }
}

fn cmp_lt(reader: f64, writer: f64) -> bool {
    reader < writer
}

fn cmp_gt(reader: f64, writer: f64) -> bool {
    reader > writer
}

// ------------------------------------------------------------------- Protobuf

fn kind_name(kind: &Kind) -> String {
    match kind {
        Kind::Message(m) => m.full_name().to_string(),
        Kind::Enum(e) => e.full_name().to_string(),
        other => format!("{other:?}").to_lowercase(),
    }
}

fn protobuf_changes(
    old: &MessageDescriptor,
    new: &MessageDescriptor,
    backward: bool,
    forward: bool,
    out: &mut Vec<String>,
) {
    if old.full_name() != new.full_name() {
        out.push(format!(
            "message type changed from {} to {}",
            old.full_name(),
            new.full_name()
        ));
        return;
    }
    let mut visited = HashSet::new();
    protobuf_message(old, new, backward, forward, &mut visited, out);
}

fn protobuf_message(
    old: &MessageDescriptor,
    new: &MessageDescriptor,
    backward: bool,
    forward: bool,
    visited: &mut HashSet<String>,
    out: &mut Vec<String>,
) {
    if !visited.insert(old.full_name().to_string()) {
        return;
    }
    let reserved = |m: &MessageDescriptor, n: u32| m.reserved_ranges().any(|r| r.contains(&n));
    let msg = old.full_name();
    for of in old.fields() {
        match new.get_field(of.number()) {
            Some(nf) => {
                if nf.name() != of.name() {
                    out.push(format!(
                        "{msg}: field number {} reused: was {:?}, now {:?}",
                        of.number(),
                        of.name(),
                        nf.name()
                    ));
                    continue;
                }
                let (ok, nk) = (of.kind(), nf.kind());
                if kind_name(&ok) != kind_name(&nk) {
                    out.push(format!(
                        "{msg}: field {:?} ({}) changed type from {} to {}",
                        of.name(),
                        of.number(),
                        kind_name(&ok),
                        kind_name(&nk)
                    ));
                } else if of.is_list() != nf.is_list() || of.is_map() != nf.is_map() {
                    out.push(format!(
                        "{msg}: field {:?} ({}) changed between repeated and single",
                        of.name(),
                        of.number()
                    ));
                } else if let (Kind::Message(om), Kind::Message(nm)) = (ok, nk) {
                    protobuf_message(&om, &nm, backward, forward, visited, out);
                }
                if forward
                    && of.cardinality() == Cardinality::Required
                    && nf.cardinality() != Cardinality::Required
                {
                    out.push(format!(
                        "{msg}: field {:?} ({}) is no longer required (the old version requires it)",
                        of.name(),
                        of.number()
                    ));
                }
                if backward
                    && nf.cardinality() == Cardinality::Required
                    && of.cardinality() != Cardinality::Required
                {
                    out.push(format!(
                        "{msg}: field {:?} ({}) became required",
                        nf.name(),
                        nf.number()
                    ));
                }
            }
            None if !reserved(new, of.number()) => out.push(format!(
                "{msg}: field {:?} ({}) removed without reserving its number",
                of.name(),
                of.number()
            )),
            None => {
                if forward && of.cardinality() == Cardinality::Required {
                    out.push(format!(
                        "{msg}: required field {:?} ({}) removed",
                        of.name(),
                        of.number()
                    ));
                }
            }
        }
    }
    for nf in new.fields() {
        if old.get_field(nf.number()).is_none() {
            if reserved(old, nf.number()) {
                out.push(format!(
                    "{msg}: field {:?} uses number {}, which the old version reserved",
                    nf.name(),
                    nf.number()
                ));
            }
            if backward && nf.cardinality() == Cardinality::Required {
                out.push(format!(
                    "{msg}: required field {:?} ({}) added",
                    nf.name(),
                    nf.number()
                ));
            }
        }
    }
}

// ----------------------------------------------------------------------- Avro

/// Can `reader` read data written with `writer`? Lists the problems per
/// record field where it can, else the resolution error.
fn avro_reads(
    writer: &apache_avro::Schema,
    reader: &apache_avro::Schema,
    what: &str,
    out: &mut Vec<String>,
) {
    use apache_avro::{Schema, schema_compatibility::SchemaCompatibility};
    let before = out.len();
    if let (Schema::Record(w), Schema::Record(r)) = (writer, reader) {
        for field in &r.fields {
            let written = w
                .fields
                .iter()
                .find(|f| f.name == field.name || field.aliases.contains(&f.name));
            match written {
                None if field.default.is_none() => out.push(format!(
                    "{what}: field {:?} has no default and is missing from the other version",
                    field.name
                )),
                None => {}
                Some(wf) => {
                    if let Err(e) = SchemaCompatibility::can_read(&wf.schema, &field.schema) {
                        out.push(format!("{what}: field {:?}: {e}", field.name));
                    }
                }
            }
        }
    }
    if out.len() == before
        && let Err(e) = SchemaCompatibility::can_read(writer, reader)
    {
        out.push(format!("{what}: {e}"));
    }
}
