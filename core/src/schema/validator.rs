//! Compiled schemas: validation of payloads, and Protobuf / Avro conversion
//! between JSON-like values and their binary encodings.
//!
//! Crates, chosen because each is the maintained reference for its format in
//! Rust and needs no external tool:
//! - `jsonschema`: drafts 7 and 2020-12 (picked from `$schema`), compiled
//!   once into a reusable validator; default features off (no HTTP client,
//!   no C crypto build).
//! - `protox` + `prost-reflect`: compiles `.proto` source at run time in
//!   pure Rust (no `protoc`), then decodes/encodes dynamic messages.
//! - `apache-avro`: the Apache project's Rust implementation (parsing,
//!   datum encoding, schema resolution and compatibility).

use std::{io::Cursor, sync::Arc};

use prost::Message as _;
use prost_reflect::{DescriptorPool, DynamicMessage, MessageDescriptor};
use protox::file::{ChainFileResolver, File, FileResolver, GoogleFileResolver};
use serde_json::Value;

use super::{SchemaDefinition, SchemaFormat};
use crate::error::{Error, ErrorKind, Result};

/// A schema compiled for validation.
pub(crate) enum Compiled {
    Json {
        schema: Value,
        validator: jsonschema::Validator,
    },
    Protobuf {
        message: MessageDescriptor,
    },
    Avro {
        schema: apache_avro::Schema,
    },
}

impl std::fmt::Debug for Compiled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Json { .. } => f.write_str("Compiled::Json"),
            Self::Protobuf { message } => write!(f, "Compiled::Protobuf({})", message.full_name()),
            Self::Avro { .. } => f.write_str("Compiled::Avro"),
        }
    }
}

/// The file name a registered `.proto` source is compiled under.
const PROTO_FILE: &str = "schema.proto";

struct InMemory(String);

impl FileResolver for InMemory {
    fn open_file(&self, name: &str) -> std::result::Result<File, protox::Error> {
        if name == PROTO_FILE {
            File::from_source(name, &self.0)
        } else {
            Err(protox::Error::file_not_found(name))
        }
    }
}

fn bad_schema(format: SchemaFormat, detail: impl std::fmt::Display) -> Error {
    Error::new(
        ErrorKind::InvalidArgument,
        format!(
            "the {format} schema is malformed: {detail}; fix the schema text and register it again"
        ),
    )
}

impl Compiled {
    pub(crate) fn compile(def: &SchemaDefinition) -> Result<Arc<Compiled>> {
        let compiled = match def.format {
            SchemaFormat::JsonSchema => {
                let schema: Value = serde_json::from_str(&def.source)
                    .map_err(|e| bad_schema(def.format, format!("not JSON ({e})")))?;
                if !schema.is_object() && !schema.is_boolean() {
                    return Err(bad_schema(
                        def.format,
                        "a JSON Schema is an object (or a boolean)",
                    ));
                }
                jsonschema::meta::validate(&schema).map_err(|e| {
                    bad_schema(
                        def.format,
                        format!("at {}: {e}", pointer(e.instance_path().as_str())),
                    )
                })?;
                let validator =
                    jsonschema::validator_for(&schema).map_err(|e| bad_schema(def.format, e))?;
                Compiled::Json { schema, validator }
            }
            SchemaFormat::Protobuf => {
                let Some(message_type) = def.message_type.as_deref().filter(|m| !m.is_empty())
                else {
                    return Err(Error::invalid(
                        "a Protobuf schema needs message_type: the fully qualified message to \
                         validate (e.g. \"hr.EmployeeChange\")",
                    ));
                };
                let mut resolver = ChainFileResolver::new();
                resolver.add(InMemory(def.source.clone()));
                resolver.add(GoogleFileResolver::new());
                let mut compiler = protox::Compiler::with_file_resolver(resolver);
                compiler
                    .open_file(PROTO_FILE)
                    .map_err(|e| bad_schema(def.format, e))?;
                let pool: DescriptorPool = compiler.descriptor_pool();
                let message = pool.get_message_by_name(message_type).ok_or_else(|| {
                    let known: Vec<String> = pool
                        .all_messages()
                        .map(|m| m.full_name().to_string())
                        .collect();
                    Error::invalid(format!(
                        "message type {message_type:?} is not defined in the .proto source \
                         (it defines: {}); use the fully qualified name, package included",
                        known.join(", ")
                    ))
                })?;
                Compiled::Protobuf { message }
            }
            SchemaFormat::Avro => {
                let schema = apache_avro::Schema::parse_str(&def.source)
                    .map_err(|e| bad_schema(def.format, e))?;
                Compiled::Avro { schema }
            }
        };
        Ok(Arc::new(compiled))
    }

    /// Checks a payload; the error names the path and the rule broken.
    pub(crate) fn validate(&self, payload: &[u8]) -> std::result::Result<(), String> {
        match self {
            Compiled::Json { validator, .. } => {
                let value: Value = serde_json::from_slice(payload)
                    .map_err(|e| format!("the payload is not JSON: {e}"))?;
                match validator.iter_errors(&value).next() {
                    None => Ok(()),
                    Some(err) => {
                        let rule = err
                            .schema_path()
                            .as_str()
                            .rsplit('/')
                            .next()
                            .unwrap_or_default()
                            .to_string();
                        Err(format!(
                            "at {}: {err} (rule: {rule})",
                            pointer(err.instance_path().as_str())
                        ))
                    }
                }
            }
            // Checked without building the message; anything the check does
            // not accept in full is decided (and explained) by the decoder.
            Compiled::Protobuf { message } => {
                match super::protobuf_check::check(message, payload) {
                    Ok(()) => Ok(()),
                    Err(super::protobuf_check::Refer) => {
                        DynamicMessage::decode(message.clone(), payload)
                            .map(|_| ())
                            .map_err(|e| {
                                format!("not a valid {} message: {e}", message.full_name())
                            })
                    }
                }
            }
            Compiled::Avro { schema } => {
                let mut cursor = Cursor::new(payload);
                let reader = apache_avro::reader::datum::GenericDatumReader::builder(schema)
                    .build()
                    .map_err(|e| format!("cannot read Avro: {e}"))?;
                reader
                    .read_value(&mut cursor)
                    .map_err(|e| format!("not a valid Avro datum for this schema: {e}"))?;
                if (cursor.position() as usize) < payload.len() {
                    return Err(format!(
                        "not a valid Avro datum for this schema: {} trailing bytes",
                        payload.len() - cursor.position() as usize
                    ));
                }
                Ok(())
            }
        }
    }

    /// Encodes a JSON-like value with this schema (Protobuf, Avro), or
    /// serialises it (JSON Schema), validating it on the way.
    pub(crate) fn encode(&self, value: &Value) -> std::result::Result<Vec<u8>, String> {
        match self {
            Compiled::Json { .. } => {
                let bytes = serde_json::to_vec(value).map_err(|e| e.to_string())?;
                self.validate(&bytes)?;
                Ok(bytes)
            }
            Compiled::Protobuf { message } => {
                let dynamic = DynamicMessage::deserialize(message.clone(), value)
                    .map_err(|e| format!("cannot encode as {}: {e}", message.full_name()))?;
                Ok(dynamic.encode_to_vec())
            }
            Compiled::Avro { schema } => {
                let avro = super::avro_json::to_avro(value, schema)
                    .map_err(|e| format!("cannot encode as Avro: {e}"))?;
                apache_avro::writer::datum::GenericDatumWriter::builder(schema)
                    .build()
                    .and_then(|w| w.write_value_to_vec(avro))
                    .map_err(|e| format!("cannot encode as Avro: {e}"))
            }
        }
    }

    /// Decodes a payload into a JSON-like value.
    pub(crate) fn decode(&self, payload: &[u8]) -> std::result::Result<Value, String> {
        match self {
            Compiled::Json { .. } => {
                self.validate(payload)?;
                serde_json::from_slice(payload).map_err(|e| e.to_string())
            }
            Compiled::Protobuf { message } => {
                let dynamic = DynamicMessage::decode(message.clone(), payload)
                    .map_err(|e| format!("not a valid {} message: {e}", message.full_name()))?;
                serde_json::to_value(&dynamic).map_err(|e| e.to_string())
            }
            Compiled::Avro { schema } => {
                let reader = apache_avro::reader::datum::GenericDatumReader::builder(schema)
                    .build()
                    .map_err(|e| e.to_string())?;
                let value = reader
                    .read_value(&mut Cursor::new(payload))
                    .map_err(|e| format!("not a valid Avro datum for this schema: {e}"))?;
                Value::try_from(value).map_err(|e| e.to_string())
            }
        }
    }
}

/// A JSON pointer, `/` for the document itself.
fn pointer(path: &str) -> String {
    if path.is_empty() {
        "/".to_string()
    } else {
        path.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draft_7_and_2020_12_are_both_understood() {
        // Draft 7: `definitions` and a numeric `exclusiveMinimum`.
        let draft7 = SchemaDefinition::json_schema(
            r##"{"$schema": "http://json-schema.org/draft-07/schema#",
                "definitions": {"pay": {"type": "number", "exclusiveMinimum": 0}},
                "type": "object", "properties": {"salary": {"$ref": "#/definitions/pay"}}}"##,
        );
        let c = Compiled::compile(&draft7).unwrap();
        c.validate(br#"{"salary": 10}"#).unwrap();
        let err = c.validate(br#"{"salary": 0}"#).unwrap_err();
        assert!(
            err.contains("/salary") && err.contains("exclusiveMinimum"),
            "{err}"
        );
        // 2020-12: `$defs` and `prefixItems`.
        let modern = SchemaDefinition::json_schema(
            r##"{"$schema": "https://json-schema.org/draft/2020-12/schema",
                "$defs": {"id": {"type": "string"}},
                "type": "array", "prefixItems": [{"$ref": "#/$defs/id"}, {"type": "integer"}]}"##,
        );
        let c = Compiled::compile(&modern).unwrap();
        c.validate(br#"["emp-1", 3]"#).unwrap();
        let err = c.validate(br#"["emp-1", "three"]"#).unwrap_err();
        assert!(err.contains("/1"), "{err}");
    }

    #[test]
    fn avro_rejects_trailing_bytes_and_protobuf_garbage() {
        let avro = Compiled::compile(&SchemaDefinition::avro(r#""long""#)).unwrap();
        avro.validate(&[0x02]).unwrap();
        assert!(
            avro.validate(&[0x02, 0x00])
                .unwrap_err()
                .contains("trailing")
        );
        let proto = Compiled::compile(&SchemaDefinition::protobuf(
            "syntax = \"proto3\"; message M { string s = 1; }",
            "M",
        ))
        .unwrap();
        proto.validate(&[0x0a, 0x01, b'x']).unwrap();
        assert!(proto.validate(&[0x0a, 0x05, b'x']).is_err());
    }
}
