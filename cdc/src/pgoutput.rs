//! Decoding of PostgreSQL's `pgoutput` logical replication messages
//! (protocol version 1). The replication client hands over Begin and Commit
//! itself; this reads what comes between them: relations, row changes and
//! truncations.
//!
//! Reference: PostgreSQL, "Logical Replication Message Formats".

use std::fmt;

/// A column of a relation, as announced by a Relation message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    pub name: String,
    pub type_oid: u32,
    pub type_modifier: i32,
    /// Part of the replica identity (the key the server sends old values for).
    pub identity: bool,
}

/// The shape of a table, sent before its first change and after each DDL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relation {
    pub oid: u32,
    pub namespace: String,
    pub name: String,
    /// `d` default (primary key), `n` nothing, `f` full row, `i` an index.
    pub replica_identity: u8,
    pub columns: Vec<Column>,
}

/// One column's value in a row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Null,
    /// A TOASTed value that did not change: the server does not resend it.
    UnchangedToast,
    Text(String),
}

pub type Tuple = Vec<Value>;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Relation(Relation),
    Insert {
        relation: u32,
        new: Tuple,
    },
    Update {
        relation: u32,
        /// The old key (`K`) or the whole old row (`O`, replica identity full).
        old: Option<Tuple>,
        new: Tuple,
    },
    Delete {
        relation: u32,
        old: Tuple,
    },
    Truncate {
        relations: Vec<u32>,
    },
    /// Messages that carry nothing to forward (type, origin).
    Ignored,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError(pub String);

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "malformed pgoutput message: {}", self.0)
    }
}

impl std::error::Error for DecodeError {}

struct Reader<'a> {
    data: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let end = self.at.checked_add(n).filter(|e| *e <= self.data.len());
        let end = end.ok_or_else(|| {
            DecodeError(format!(
                "{n} bytes wanted at {} of {}",
                self.at,
                self.data.len()
            ))
        })?;
        let s = &self.data[self.at..end];
        self.at = end;
        Ok(s)
    }

    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }

    fn i16(&mut self) -> Result<i16, DecodeError> {
        let b = self.take(2)?;
        Ok(i16::from_be_bytes([b[0], b[1]]))
    }

    fn i32(&mut self) -> Result<i32, DecodeError> {
        let b = self.take(4)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(self.i32()? as u32)
    }

    fn string(&mut self) -> Result<String, DecodeError> {
        let rest = &self.data[self.at..];
        let len = rest
            .iter()
            .position(|b| *b == 0)
            .ok_or_else(|| DecodeError("unterminated string".into()))?;
        let s = String::from_utf8(rest[..len].to_vec())
            .map_err(|_| DecodeError("a name is not UTF-8".into()))?;
        self.at += len + 1;
        Ok(s)
    }

    fn tuple(&mut self) -> Result<Tuple, DecodeError> {
        let n = self.i16()?;
        let mut values = Vec::with_capacity(n.max(0) as usize);
        for _ in 0..n {
            values.push(match self.u8()? {
                b'n' => Value::Null,
                b'u' => Value::UnchangedToast,
                b't' => {
                    let len = self.i32()?;
                    let bytes = self.take(len.max(0) as usize)?;
                    Value::Text(
                        String::from_utf8(bytes.to_vec())
                            .map_err(|_| DecodeError("a text value is not UTF-8".into()))?,
                    )
                }
                b'b' => {
                    return Err(DecodeError(
                        "binary values are not used (the stream is read in text format)".into(),
                    ));
                }
                other => return Err(DecodeError(format!("column kind {:?}", other as char))),
            });
        }
        Ok(values)
    }
}

/// Decodes one `pgoutput` message.
pub fn decode(data: &[u8]) -> Result<Change, DecodeError> {
    let mut r = Reader { data, at: 0 };
    Ok(match r.u8()? {
        b'R' => {
            let oid = r.u32()?;
            let namespace = r.string()?;
            let name = r.string()?;
            let replica_identity = r.u8()?;
            let n = r.i16()?;
            let mut columns = Vec::with_capacity(n.max(0) as usize);
            for _ in 0..n {
                let flags = r.u8()?;
                columns.push(Column {
                    name: r.string()?,
                    type_oid: r.u32()?,
                    type_modifier: r.i32()?,
                    identity: flags & 1 == 1,
                });
            }
            Change::Relation(Relation {
                oid,
                namespace,
                name,
                replica_identity,
                columns,
            })
        }
        b'I' => {
            let relation = r.u32()?;
            match r.u8()? {
                b'N' => Change::Insert {
                    relation,
                    new: r.tuple()?,
                },
                other => return Err(DecodeError(format!("insert tuple {:?}", other as char))),
            }
        }
        b'U' => {
            let relation = r.u32()?;
            let mut old = None;
            let mut kind = r.u8()?;
            if kind == b'K' || kind == b'O' {
                old = Some(r.tuple()?);
                kind = r.u8()?;
            }
            if kind != b'N' {
                return Err(DecodeError(format!("update tuple {:?}", kind as char)));
            }
            Change::Update {
                relation,
                old,
                new: r.tuple()?,
            }
        }
        b'D' => {
            let relation = r.u32()?;
            match r.u8()? {
                b'K' | b'O' => Change::Delete {
                    relation,
                    old: r.tuple()?,
                },
                other => return Err(DecodeError(format!("delete tuple {:?}", other as char))),
            }
        }
        b'T' => {
            let n = r.i32()?;
            let _options = r.u8()?;
            let mut relations = Vec::with_capacity(n.max(0) as usize);
            for _ in 0..n {
                relations.push(r.u32()?);
            }
            Change::Truncate { relations }
        }
        b'Y' | b'O' | b'B' | b'C' | b'M' => Change::Ignored,
        other => return Err(DecodeError(format!("message type {:?}", other as char))),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(s: &str) -> Vec<u8> {
        let mut v = vec![b't'];
        v.extend((s.len() as i32).to_be_bytes());
        v.extend(s.as_bytes());
        v
    }

    #[test]
    fn relation_and_update_with_old_row_and_unchanged_toast() {
        let mut m = vec![b'R'];
        m.extend(16384u32.to_be_bytes());
        m.extend(b"public\0employees\0");
        m.push(b'f');
        m.extend(2i16.to_be_bytes());
        m.push(1);
        m.extend(b"id\0");
        m.extend(23u32.to_be_bytes());
        m.extend((-1i32).to_be_bytes());
        m.push(0);
        m.extend(b"bio\0");
        m.extend(25u32.to_be_bytes());
        m.extend((-1i32).to_be_bytes());
        let Change::Relation(rel) = decode(&m).unwrap() else {
            panic!("not a relation")
        };
        assert_eq!(
            (rel.namespace.as_str(), rel.name.as_str()),
            ("public", "employees")
        );
        assert!(rel.columns[0].identity && !rel.columns[1].identity);

        let mut u = vec![b'U'];
        u.extend(16384u32.to_be_bytes());
        u.push(b'O');
        u.extend(2i16.to_be_bytes());
        u.extend(text("7"));
        u.push(b'n');
        u.push(b'N');
        u.extend(2i16.to_be_bytes());
        u.extend(text("7"));
        u.push(b'u');
        assert_eq!(
            decode(&u).unwrap(),
            Change::Update {
                relation: 16384,
                old: Some(vec![Value::Text("7".into()), Value::Null]),
                new: vec![Value::Text("7".into()), Value::UnchangedToast],
            }
        );
    }

    #[test]
    fn truncated_messages_are_errors_not_panics() {
        for bad in [&b"U"[..], b"I\0\0\0\x01N\0\x01t\0\0\0\x09ab", b"Rxx", b"Z"] {
            assert!(decode(bad).is_err(), "{bad:?}");
        }
    }
}
