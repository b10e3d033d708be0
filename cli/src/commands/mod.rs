//! One module per subcommand group.

pub(crate) mod bench;
pub(crate) mod dead_letters;
pub(crate) mod groups;
pub(crate) mod messages;
pub(crate) mod schemas;
pub(crate) mod stations;

/// Seconds as text (`-` for none).
pub(crate) fn secs(d: Option<std::time::Duration>) -> String {
    d.map_or_else(|| "-".to_string(), |d| format!("{}s", d.as_secs_f64()))
}

/// A time as RFC 3339 text.
pub(crate) fn rfc3339(t: Option<std::time::SystemTime>) -> Option<String> {
    let t = time::OffsetDateTime::from(t?);
    t.format(&time::format_description::well_known::Rfc3339)
        .ok()
}
