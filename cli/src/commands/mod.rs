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
