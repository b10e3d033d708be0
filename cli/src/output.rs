//! How results are printed: readable tables by default (coloured only on a
//! terminal), JSON with `--json` for scripts.

use std::io::IsTerminal;

use comfy_table::{Cell, Color, ContentArrangement, Table, presets::UTF8_FULL_CONDENSED};
use serde_json::Value;

#[derive(Debug, Clone, Copy)]
pub(crate) struct Output {
    pub(crate) json: bool,
}

impl Output {
    /// Prints `value` as JSON, or `rows` under `header` as a table.
    pub(crate) fn table(&self, value: &Value, header: &[&str], rows: Vec<Vec<String>>) {
        if self.json {
            println!("{value}");
            return;
        }
        let mut table = Table::new();
        table
            .load_preset(UTF8_FULL_CONDENSED)
            .set_content_arrangement(ContentArrangement::Dynamic);
        let colour = std::io::stdout().is_terminal();
        table.set_header(header.iter().map(|h| {
            let cell = Cell::new(h);
            if colour { cell.fg(Color::Cyan) } else { cell }
        }));
        for row in rows {
            table.add_row(row);
        }
        println!("{table}");
    }

    /// Prints `value` as JSON, or `fields` as a two-column table.
    pub(crate) fn record(&self, value: &Value, fields: Vec<(&str, String)>) {
        let rows = fields
            .into_iter()
            .map(|(k, v)| vec![k.to_string(), v])
            .collect();
        self.table(value, &["field", "value"], rows);
    }

    /// Prints a one-line result, or `value` as JSON.
    pub(crate) fn done(&self, value: &Value, text: &str) {
        if self.json {
            println!("{value}");
        } else {
            println!("{text}");
        }
    }
}

/// A count, an option or nothing as table text.
pub(crate) fn opt<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map_or_else(|| "-".to_string(), |v| v.to_string())
}

/// Payload bytes as text when they are UTF-8, else as hex.
pub(crate) fn payload_text(p: &[u8]) -> String {
    match std::str::from_utf8(p) {
        Ok(s) => s.to_string(),
        Err(_) => p.iter().map(|b| format!("{b:02x}")).collect(),
    }
}
