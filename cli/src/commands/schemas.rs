//! `jetstation schemas …`

use std::path::PathBuf;

use clap::Subcommand;
use jetstation::{Client, Compatibility, Result, SchemaDefinition, SchemaFormat, Validator};
use serde_json::json;

use crate::{output::Output, views};

#[derive(Debug, Subcommand)]
pub(crate) enum Schemas {
    /// Every schema: format, compatibility mode and versions.
    Ls,
    /// One version of a schema (the latest by default), with its source.
    Show {
        name: String,
        #[arg(long)]
        version: Option<u32>,
    },
    /// Register a new version from a file (refused, with each breaking
    /// change, when it breaks the schema's compatibility mode).
    Register {
        name: String,
        file: PathBuf,
        /// json_schema, protobuf or avro.
        #[arg(long, default_value = "json_schema")]
        format: String,
        /// Protobuf: the fully qualified message type.
        #[arg(long)]
        message_type: Option<String>,
        /// For a new schema: none, backward, forward or full.
        #[arg(long, default_value = "backward")]
        compatibility: String,
    },
    /// Check a message (a file) against a version (the latest by default).
    Check {
        name: String,
        file: PathBuf,
        #[arg(long)]
        version: Option<u32>,
    },
    /// The changes between two versions' sources.
    Diff { name: String, from: u32, to: u32 },
}

fn read(file: &PathBuf) -> Result<Vec<u8>> {
    std::fs::read(file).map_err(|e| {
        jetstation::Error::new(
            jetstation::ErrorKind::InvalidArgument,
            format!("cannot read {}: {e}", file.display()),
        )
    })
}

impl Schemas {
    pub(crate) async fn run(self, client: &Client, out: Output) -> Result<()> {
        match self {
            Schemas::Ls => {
                let schemas = client.schemas().await?;
                let value = json!(schemas.iter().map(views::schema_info).collect::<Vec<_>>());
                let rows = schemas
                    .iter()
                    .map(|s| {
                        vec![
                            s.name.clone(),
                            s.format.as_str().to_string(),
                            s.compatibility.as_str().to_string(),
                            s.latest.to_string(),
                        ]
                    })
                    .collect();
                out.table(
                    &value,
                    &["schema", "format", "compatibility", "latest version"],
                    rows,
                );
            }
            Schemas::Show { name, version } => {
                let v = client.schema(&name, version).await?;
                let value = json!({
                    "name": v.name,
                    "version": v.version,
                    "format": v.format.as_str(),
                    "message_type": v.message_type,
                    "created": v.created,
                    "source": v.source,
                });
                if out.json {
                    println!("{value}");
                } else {
                    println!(
                        "{} version {} ({}, {})",
                        v.name,
                        v.version,
                        v.format.as_str(),
                        v.created
                    );
                    println!("{}", v.source);
                }
            }
            Schemas::Register {
                name,
                file,
                format,
                message_type,
                compatibility,
            } => {
                let source = String::from_utf8_lossy(&read(&file)?).into_owned();
                let definition = SchemaDefinition {
                    format: format.parse::<SchemaFormat>()?,
                    source,
                    message_type,
                };
                let mode: Compatibility = compatibility.parse()?;
                let v = client.register_schema_with(&name, definition, mode).await?;
                out.done(
                    &json!({"name": v.name, "version": v.version}),
                    &format!("registered {} version {}", v.name, v.version),
                );
            }
            Schemas::Check {
                name,
                file,
                version,
            } => {
                let v = client.schema(&name, version).await?;
                let payload = read(&file)?;
                Validator::compile(&v.definition())?.validate(&payload)?;
                out.done(
                    &json!({"name": v.name, "version": v.version, "valid": true}),
                    &format!(
                        "{} matches {} version {}",
                        file.display(),
                        v.name,
                        v.version
                    ),
                );
            }
            Schemas::Diff { name, from, to } => {
                let (old, new) = (
                    client.schema(&name, Some(from)).await?,
                    client.schema(&name, Some(to)).await?,
                );
                let text = views::diff(&name, from, &old.source, to, &new.source);
                out.done(
                    &json!({"name": name, "from": from, "to": to, "diff": text}),
                    &text,
                );
            }
        }
        Ok(())
    }
}
