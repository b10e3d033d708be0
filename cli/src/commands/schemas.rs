//! `jetstation schemas …`

use clap::Subcommand;
use jetstation::{Client, Result};
use serde_json::json;

use crate::output::Output;

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
}

impl Schemas {
    pub(crate) async fn run(self, client: &Client, out: Output) -> Result<()> {
        match self {
            Schemas::Ls => {
                let schemas = client.schemas().await?;
                let value = json!(
                    schemas
                        .iter()
                        .map(|s| json!({
                            "name": s.name,
                            "format": s.format.as_str(),
                            "compatibility": s.compatibility.as_str(),
                            "versions": s.versions,
                            "latest": s.latest,
                        }))
                        .collect::<Vec<_>>()
                );
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
        }
        Ok(())
    }
}
