//! JSON-like values to Avro values, directed by the schema (records with
//! field defaults, unions, enums, bytes from strings), so that Python, Node
//! and Swift callers can send Avro from plain objects.

use std::collections::HashMap;

use apache_avro::{
    Schema,
    schema::{Name, ResolvedSchema},
    types::Value as Avro,
};
use serde_json::Value;

pub(crate) fn to_avro(value: &Value, schema: &Schema) -> Result<Avro, String> {
    let resolved = ResolvedSchema::try_from(schema).map_err(|e| e.to_string())?;
    convert(value, schema, resolved.get_names(), "")
}

fn at(path: &str) -> &str {
    if path.is_empty() { "/" } else { path }
}

fn convert(
    value: &Value,
    schema: &Schema,
    names: &HashMap<Name, &Schema>,
    path: &str,
) -> Result<Avro, String> {
    let mismatch = |expected: &str| format!("at {}: expected {expected}, got {value}", at(path));
    Ok(match schema {
        Schema::Ref { name } => {
            let target = names
                .get(name)
                .ok_or_else(|| format!("at {}: unknown type {name}", at(path)))?;
            return convert(value, target, names, path);
        }
        Schema::Null => match value {
            Value::Null => Avro::Null,
            _ => return Err(mismatch("null")),
        },
        Schema::Boolean => Avro::Boolean(value.as_bool().ok_or_else(|| mismatch("a boolean"))?),
        Schema::Int | Schema::Date | Schema::TimeMillis => {
            let n = value.as_i64().ok_or_else(|| mismatch("an integer"))?;
            Avro::Int(i32::try_from(n).map_err(|_| mismatch("a 32-bit integer"))?)
        }
        Schema::Long
        | Schema::TimeMicros
        | Schema::TimestampMillis
        | Schema::TimestampMicros
        | Schema::LocalTimestampMillis
        | Schema::LocalTimestampMicros => {
            let n = match value {
                Value::String(s) => s.parse().ok(),
                v => v.as_i64(),
            };
            Avro::Long(n.ok_or_else(|| mismatch("an integer"))?)
        }
        Schema::Float => Avro::Float(value.as_f64().ok_or_else(|| mismatch("a number"))? as f32),
        Schema::Double => Avro::Double(value.as_f64().ok_or_else(|| mismatch("a number"))?),
        Schema::String => Avro::String(
            value
                .as_str()
                .ok_or_else(|| mismatch("a string"))?
                .to_string(),
        ),
        Schema::Bytes => match value {
            Value::String(s) => Avro::Bytes(s.as_bytes().to_vec()),
            Value::Array(items) => Avro::Bytes(
                items
                    .iter()
                    .map(|b| b.as_u64().and_then(|b| u8::try_from(b).ok()))
                    .collect::<Option<Vec<u8>>>()
                    .ok_or_else(|| mismatch("bytes"))?,
            ),
            _ => return Err(mismatch("bytes (a string or an array of bytes)")),
        },
        Schema::Array(array) => Avro::Array(
            value
                .as_array()
                .ok_or_else(|| mismatch("an array"))?
                .iter()
                .enumerate()
                .map(|(i, v)| convert(v, &array.items, names, &format!("{path}/{i}")))
                .collect::<Result<_, _>>()?,
        ),
        Schema::Map(map) => Avro::Map(
            value
                .as_object()
                .ok_or_else(|| mismatch("an object"))?
                .iter()
                .map(|(k, v)| {
                    Ok((
                        k.clone(),
                        convert(v, &map.types, names, &format!("{path}/{k}"))?,
                    ))
                })
                .collect::<Result<_, String>>()?,
        ),
        Schema::Union(union) => {
            let mut last = None;
            for (i, variant) in union.variants().iter().enumerate() {
                match convert(value, variant, names, path) {
                    Ok(v) => return Ok(Avro::Union(i as u32, Box::new(v))),
                    Err(e) => last = Some(e),
                }
            }
            return Err(last.unwrap_or_else(|| mismatch("a union member")));
        }
        Schema::Record(record) => {
            let object = value.as_object().ok_or_else(|| mismatch("an object"))?;
            let mut fields = Vec::with_capacity(record.fields.len());
            for field in &record.fields {
                let child = format!("{path}/{}", field.name);
                let v = match (object.get(&field.name), &field.default) {
                    (Some(v), _) => convert(v, &field.schema, names, &child)?,
                    (None, Some(default)) => convert(default, &field.schema, names, &child)
                        .or_else(|_| {
                            // A union's default belongs to its first branch.
                            match &field.schema {
                                Schema::Union(u) => u
                                    .variants()
                                    .first()
                                    .ok_or_else(|| "empty union".to_string())
                                    .and_then(|s| convert(default, s, names, &child))
                                    .map(|v| Avro::Union(0, Box::new(v))),
                                _ => Err(format!("at {child}: bad default")),
                            }
                        })?,
                    (None, None) => {
                        return Err(format!("at {}: missing field {:?}", at(path), field.name));
                    }
                };
                fields.push((field.name.clone(), v));
            }
            Avro::Record(fields)
        }
        Schema::Enum(e) => {
            let symbol = value.as_str().ok_or_else(|| mismatch("an enum symbol"))?;
            let index = e
                .symbols
                .iter()
                .position(|s| s == symbol)
                .ok_or_else(|| mismatch(&format!("one of {:?}", e.symbols)))?;
            Avro::Enum(index as u32, symbol.to_string())
        }
        Schema::Fixed(f) => {
            let bytes = value
                .as_str()
                .ok_or_else(|| mismatch("a string"))?
                .as_bytes()
                .to_vec();
            if bytes.len() != f.size {
                return Err(mismatch(&format!("{} bytes", f.size)));
            }
            Avro::Fixed(f.size, bytes)
        }
        other => {
            return Err(format!(
                "at {}: Avro type {other:?} is not supported from JSON",
                at(path)
            ));
        }
    })
}
