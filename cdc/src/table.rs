//! What the capture knows about each captured table: its station, the
//! columns it forwards, its key, and the JSON Schema of its messages.

use std::collections::BTreeMap;

use jetstation::{Error, ErrorKind, Result};
use serde_json::{Map, Value, json};

use crate::pgoutput;

/// `--table schema.name[=station][:col,col…]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableMapping {
    /// `schema.name`.
    pub table: String,
    pub station: String,
    /// Only these columns (the key columns are always sent).
    pub columns: Option<Vec<String>>,
}

impl std::str::FromStr for TableMapping {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let (rest, columns) = match s.split_once(':') {
            Some((r, c)) => (
                r,
                Some(
                    c.split(',')
                        .map(|c| c.trim().to_string())
                        .filter(|c| !c.is_empty())
                        .collect::<Vec<_>>(),
                ),
            ),
            None => (s, None),
        };
        let (table, station) = match rest.split_once('=') {
            Some((t, st)) => (t.trim().to_string(), Some(st.trim().to_string())),
            None => (rest.trim().to_string(), None),
        };
        let table = if table.contains('.') {
            table
        } else {
            format!("public.{table}")
        };
        let (schema, name) = table.split_once('.').expect("qualified above");
        if schema.is_empty() || name.is_empty() {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                format!("--table {s:?}: expected schema.table[=station][:col,col]"),
            ));
        }
        // One station per table by default: the table's name, with its
        // schema when that is not `public`.
        let station = station.unwrap_or_else(|| {
            let base = if schema == "public" {
                name.to_string()
            } else {
                format!("{schema}-{name}")
            };
            base.replace(
                |c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_'),
                "-",
            )
        });
        jetstation::names::validate_name("station", &station)?;
        Ok(Self {
            table,
            station,
            columns,
        })
    }
}

/// A column as the capture forwards it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnInfo {
    pub name: String,
    pub type_oid: u32,
    pub not_null: bool,
}

/// A captured table.
#[derive(Debug, Clone)]
pub struct Table {
    pub mapping: TableMapping,
    /// Primary key columns, in key order.
    pub key: Vec<String>,
    /// Forwarded columns, in table order.
    pub columns: Vec<ColumnInfo>,
    /// The column layout of the stream's tuples (every column of the
    /// table, in the order of the last Relation message).
    pub layout: Vec<pgoutput::Column>,
}

impl Table {
    fn forwards(&self, column: &str) -> bool {
        self.key.iter().any(|k| k == column)
            || self
                .mapping
                .columns
                .as_ref()
                .is_none_or(|cols| cols.iter().any(|c| c == column))
    }

    /// Sets the forwarded columns from the table's current columns.
    pub fn set_columns(&mut self, all: Vec<ColumnInfo>) {
        self.columns = all.into_iter().filter(|c| self.forwards(&c.name)).collect();
    }

    /// The JSON Schema of this table's messages.
    pub fn json_schema(&self) -> String {
        let mut row = Map::new();
        for c in &self.columns {
            let mut types = vec![json_type(c.type_oid)];
            if !c.not_null {
                types.push("null");
            }
            let schema = match types[0] {
                "any" => json!({}),
                _ => json!({ "type": types }),
            };
            row.insert(c.name.clone(), schema);
        }
        let row = json!({ "type": ["object", "null"], "properties": row });
        let schema = json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "title": format!("changes of {}", self.mapping.table),
            "type": "object",
            "properties": {
                "op": { "enum": ["read", "insert", "update", "delete", "truncate"] },
                "table": { "type": "string" },
                "lsn": { "type": "string" },
                "index": { "type": "integer" },
                "xid": { "type": ["integer", "null"] },
                "commit_time": { "type": ["string", "null"] },
                "before": row,
                "after": row,
                "unchanged": { "type": "array", "items": { "type": "string" } },
            },
            "required": ["op", "table", "lsn", "index"],
        });
        serde_json::to_string_pretty(&schema).expect("a JSON value")
    }

    /// The forwarded columns of a tuple as a JSON object; a TOASTed value
    /// that did not change is taken from `old` when the old row has it, and
    /// named in `unchanged` otherwise.
    pub fn row(
        &self,
        tuple: &[pgoutput::Value],
        old: Option<&[pgoutput::Value]>,
        key_only: bool,
        unchanged: &mut Vec<String>,
    ) -> Value {
        let mut out = Map::new();
        for (i, column) in self.layout.iter().enumerate() {
            let Some(info) = self.columns.iter().find(|c| c.name == column.name) else {
                continue;
            };
            if key_only && !self.key.contains(&column.name) {
                continue;
            }
            let value = match tuple.get(i) {
                Some(pgoutput::Value::Text(t)) => to_json(info.type_oid, t),
                Some(pgoutput::Value::UnchangedToast) => match old.and_then(|o| o.get(i)) {
                    Some(pgoutput::Value::Text(t)) => to_json(info.type_oid, t),
                    _ => {
                        unchanged.push(column.name.clone());
                        continue;
                    }
                },
                _ => Value::Null,
            };
            out.insert(column.name.clone(), value);
        }
        Value::Object(out)
    }

    /// The message key: the primary key's value (a JSON array of the values
    /// when the key has several columns).
    pub fn key_of(&self, row: &Value) -> Option<String> {
        let values: Vec<&Value> = self.key.iter().map(|k| row.get(k)).collect::<Option<_>>()?;
        Some(match values.as_slice() {
            [one] => match one {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            },
            many => serde_json::to_string(many).expect("JSON values"),
        })
    }
}

/// The JSON type of a PostgreSQL type (by OID): booleans, integers and
/// floating point numbers as JSON; `numeric` as a string, so that no digit
/// is lost; `json`/`jsonb` as JSON; everything else as its text form.
fn json_type(oid: u32) -> &'static str {
    match oid {
        16 => "boolean",
        20 | 21 | 23 | 26 => "integer",
        700 | 701 => "number",
        114 | 3802 => "any",
        _ => "string",
    }
}

/// A column's text value as JSON.
pub fn to_json(oid: u32, text: &str) -> Value {
    match json_type(oid) {
        // pgoutput sends `t`/`f`; a `::text` cast gives `true`/`false`.
        "boolean" => Value::Bool(text == "t" || text == "true"),
        "integer" => text
            .parse::<i64>()
            .map(Value::from)
            .unwrap_or_else(|_| Value::String(text.into())),
        // NaN and infinities have no JSON number: sent as null.
        "number" => text
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map_or(Value::Null, Value::Number),
        "any" => serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.into())),
        _ => Value::String(text.into()),
    }
}

/// A JSON value as the text PostgreSQL parses for a column (the sink's side).
pub fn to_text(value: &Value) -> Option<String> {
    match value {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        other => Some(other.to_string()),
    }
}

/// Reads a table's columns and primary key from the catalog.
pub async fn describe(
    pg: &tokio_postgres::Client,
    table: &str,
) -> Result<(Vec<ColumnInfo>, Vec<String>)> {
    let rows = pg
        .query(
            "SELECT a.attname::text, a.atttypid::oid, a.attnotnull \
             FROM pg_attribute a WHERE a.attrelid = $1::text::regclass \
             AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
            &[&quoted(table)],
        )
        .await
        .map_err(|e| pg_error(&format!("cannot read the columns of {table}"), &e))?;
    let columns: Vec<ColumnInfo> = rows
        .iter()
        .map(|r| ColumnInfo {
            name: r.get(0),
            type_oid: r.get(1),
            not_null: r.get(2),
        })
        .collect();
    let keys = pg
        .query(
            "SELECT a.attname::text FROM pg_index i \
             JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, n) ON true \
             JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum \
             WHERE i.indrelid = $1::text::regclass AND i.indisprimary ORDER BY k.n",
            &[&quoted(table)],
        )
        .await
        .map_err(|e| pg_error(&format!("cannot read the primary key of {table}"), &e))?;
    let key: Vec<String> = keys.iter().map(|r| r.get(0)).collect();
    if key.is_empty() {
        return Err(Error::new(
            ErrorKind::InvalidArgument,
            format!("table {table} has no primary key: every change needs one as its message key"),
        ));
    }
    Ok((columns, key))
}

/// `schema.name` as a quoted identifier pair.
pub fn quoted(table: &str) -> String {
    let (schema, name) = table.split_once('.').unwrap_or(("public", table));
    format!("{}.{}", ident(schema), ident(name))
}

/// A quoted SQL identifier.
pub fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A PostgreSQL error as a typed error that says what failed.
pub fn pg_error(what: &str, e: &tokio_postgres::Error) -> Error {
    // Connection exceptions (08) and operator intervention (57: shutting
    // down, starting up) pass with a restart of the server: retryable.
    let kind = match e.as_db_error().map(|d| d.code().code()) {
        Some(code) if code.starts_with("08") || code.starts_with("57") => ErrorKind::Connection,
        Some(_) => ErrorKind::Broker,
        None => ErrorKind::Connection,
    };
    let detail = e.as_db_error().map_or_else(
        || e.to_string(),
        |d| format!("{} ({})", d.message(), d.code().code()),
    );
    Error::new(kind, format!("PostgreSQL: {what}: {detail}"))
}

/// The set of column names of a relation, with types, for comparison.
pub fn shape(columns: &[ColumnInfo]) -> BTreeMap<String, (u32, bool)> {
    columns
        .iter()
        .map(|c| (c.name.clone(), (c.type_oid, c.not_null)))
        .collect()
}
