//! `jetstation dead-letters …`

use clap::Subcommand;
use indicatif::{ProgressBar, ProgressStyle};
use jetstation::{Client, Result};
use serde_json::json;

use crate::{
    output::{Output, opt, payload_text},
    views,
};

#[derive(Debug, Subcommand)]
pub(crate) enum DeadLetters {
    /// The station's dead letters, oldest first.
    Ls { station: String },
    /// One dead letter, with its payload (decoded through the station's
    /// schema when it has one) and headers.
    Show { station: String, sequence: u64 },
    /// Send one dead letter back to its station.
    Replay { station: String, sequence: u64 },
    /// Send every dead letter back to its station.
    ReplayAll { station: String },
    /// Remove every dead letter for good.
    Purge { station: String },
}

impl DeadLetters {
    pub(crate) async fn run(self, client: &Client, out: Output) -> Result<()> {
        match self {
            DeadLetters::Ls { station } => {
                let letters = client.dead_letters(&station).await?;
                let value = json!(letters.iter().map(views::dead_letter).collect::<Vec<_>>());
                let rows = letters
                    .iter()
                    .map(|d| {
                        vec![
                            d.sequence.to_string(),
                            opt(d.key.clone()),
                            d.group.clone(),
                            d.deliveries.to_string(),
                            d.last_error.clone(),
                            d.dead_lettered_at.clone(),
                        ]
                    })
                    .collect();
                out.table(
                    &value,
                    &["sequence", "key", "group", "deliveries", "last error", "at"],
                    rows,
                );
            }
            DeadLetters::Show { station, sequence } => {
                let letters = client.dead_letters(&station).await?;
                let Some(d) = letters.iter().find(|d| d.sequence == sequence) else {
                    return Err(jetstation::Error::new(
                        jetstation::ErrorKind::NotFound,
                        format!("station {station:?} has no dead letter {sequence}"),
                    ));
                };
                let mut value = views::dead_letter(d);
                let schema = client.station(&station).await?.config.schema;
                if let Some(binding) = schema {
                    value["decoded"] = match client
                        .decode_with_schema(&binding.name, binding.version, &d.payload)
                        .await
                    {
                        Ok(v) => v,
                        Err(e) => json!(format!("not decodable: {}", e.message())),
                    };
                }
                let mut fields = vec![
                    ("sequence", d.sequence.to_string()),
                    (
                        "origin",
                        format!(
                            "{} partition {} sequence {}",
                            d.origin_station, d.origin_partition, d.origin_sequence
                        ),
                    ),
                    ("key", opt(d.key.clone())),
                    ("group", d.group.clone()),
                    ("deliveries", d.deliveries.to_string()),
                    ("last error", d.last_error.clone()),
                    ("at", d.dead_lettered_at.clone()),
                    ("payload", payload_text(&d.payload)),
                ];
                if let Some(decoded) = value.get("decoded") {
                    fields.push(("decoded", decoded.to_string()));
                }
                for (name, v) in &d.headers {
                    fields.push(("header", format!("{name}: {v}")));
                }
                out.record(&value, fields);
            }
            DeadLetters::Replay { station, sequence } => {
                let receipt = client.replay_dead_letter(&station, sequence).await?;
                out.done(
                    &json!({"partition": receipt.partition, "sequence": receipt.sequence}),
                    &format!(
                        "replayed dead letter {sequence} to {station:?} (partition {}, sequence {})",
                        receipt.partition, receipt.sequence
                    ),
                );
            }
            DeadLetters::ReplayAll { station } => {
                let letters = client.dead_letters(&station).await?;
                let bar = if out.json {
                    ProgressBar::hidden()
                } else {
                    ProgressBar::new(letters.len() as u64).with_style(
                        ProgressStyle::with_template("{bar:40} {pos}/{len} replayed ({eta} left)")
                            .expect("a valid template"),
                    )
                };
                let mut replayed = 0u64;
                for d in &letters {
                    client.replay_dead_letter(&station, d.sequence).await?;
                    replayed += 1;
                    bar.inc(1);
                }
                bar.finish_and_clear();
                out.done(
                    &json!({"replayed": replayed}),
                    &format!("replayed {replayed} dead letters to {station:?}"),
                );
            }
            DeadLetters::Purge { station } => {
                let spinner = if out.json {
                    ProgressBar::hidden()
                } else {
                    ProgressBar::new_spinner().with_message(format!("purging {station:?}"))
                };
                spinner.enable_steady_tick(std::time::Duration::from_millis(100));
                let purged = client.purge_dead_letters(&station).await?;
                spinner.finish_and_clear();
                out.done(
                    &json!({"purged": purged}),
                    &format!("removed {purged} dead letters of {station:?}"),
                );
            }
        }
        Ok(())
    }
}
