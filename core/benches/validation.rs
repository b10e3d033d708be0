//! Validation cost of one 1 KiB message per schema format.
//!
//! `make bench` runs it and writes the results to BENCHMARKS.md.

use criterion::{Criterion, criterion_group, criterion_main};
use jetstation::{SchemaDefinition, Validator};
use serde_json::{Value, json};

const JSON_SCHEMA: &str = r#"{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "type": "object",
  "properties": {
    "id": {"type": "string", "minLength": 1},
    "name": {"type": "string"},
    "email": {"type": "string"},
    "department": {"type": "string"},
    "title": {"type": "string"},
    "salary": {"type": "integer", "minimum": 0},
    "active": {"type": "boolean"},
    "skills": {"type": "array", "items": {"type": "string"}},
    "address": {
      "type": "object",
      "properties": {"street": {"type": "string"}, "city": {"type": "string"}, "zip": {"type": "string"}},
      "required": ["city"]
    },
    "notes": {"type": "string"}
  },
  "required": ["id", "name", "salary"]
}"#;

const PROTO: &str = r#"
syntax = "proto3";
package hr;
message Address { string street = 1; string city = 2; string zip = 3; }
message Employee {
  string id = 1; string name = 2; string email = 3; string department = 4; string title = 5;
  int64 salary = 6; bool active = 7; repeated string skills = 8; Address address = 9; string notes = 10;
}
"#;

const AVRO: &str = r#"{
  "type": "record", "name": "Employee", "namespace": "hr",
  "fields": [
    {"name": "id", "type": "string"}, {"name": "name", "type": "string"},
    {"name": "email", "type": "string"}, {"name": "department", "type": "string"},
    {"name": "title", "type": "string"}, {"name": "salary", "type": "long"},
    {"name": "active", "type": "boolean"},
    {"name": "skills", "type": {"type": "array", "items": "string"}},
    {"name": "address", "type": {"type": "record", "name": "Address", "fields": [
      {"name": "street", "type": "string"}, {"name": "city", "type": "string"}, {"name": "zip", "type": "string"}]}},
    {"name": "notes", "type": "string"}
  ]
}"#;

/// An employee record; `notes` pads each encoding to 1 KiB.
fn employee(notes: usize) -> Value {
    json!({
        "id": "emp-000042", "name": "Ada Lovelace", "email": "ada.lovelace@example.com",
        "department": "Analytical Engines", "title": "Principal Engineer",
        "salary": 123456, "active": true,
        "skills": ["mathematics", "programming", "poetry", "analysis", "engines", "notes",
                   "bernoulli", "algorithms", "looms", "punch cards", "writing", "logic"],
        "address": {"street": "12 St James's Square", "city": "London", "zip": "SW1Y 4JH"},
        "notes": "x".repeat(notes)
    })
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("validate_1KiB");
    for (name, def) in [
        ("json_schema", SchemaDefinition::json_schema(JSON_SCHEMA)),
        ("protobuf", SchemaDefinition::protobuf(PROTO, "hr.Employee")),
        ("avro", SchemaDefinition::avro(AVRO)),
    ] {
        let validator = Validator::compile(&def).unwrap();
        let base = validator.encode(&employee(0)).unwrap().len();
        // Lengths are varints: pad, then trim the byte a longer prefix adds.
        let mut notes = 1024 - base;
        let mut payload = validator.encode(&employee(notes)).unwrap();
        while payload.len() > 1024 {
            notes -= payload.len() - 1024;
            payload = validator.encode(&employee(notes)).unwrap();
        }
        assert_eq!(payload.len(), 1024, "{name}");
        validator.validate(&payload).unwrap();
        group.bench_function(name, |b| {
            b.iter(|| validator.validate(std::hint::black_box(&payload)))
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
