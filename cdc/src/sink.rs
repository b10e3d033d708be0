//! The sink: a consumer group that applies a station's changes to a table in
//! another PostgreSQL database, idempotently.
//!
//! Each change carries its position (commit LSN, index in the transaction).
//! The sink keeps, per row key, the position it applied last, in the target
//! database (`jetstation_sink_positions`), written in the same transaction as
//! the row. A redelivered or resent change whose position is not newer is
//! skipped, so the table converges to the source whatever is repeated.
//! Changes are applied in batches, one transaction each, and acknowledged
//! after the commit.

use std::{future::Future, str::FromStr, time::Duration};

use jetstation::{Client, ConsumerOptions, Delivery, Error, ErrorKind, Result};
use pgwire_replication::Lsn;
use serde_json::Value;

use crate::table::{self, ident, quoted};

#[derive(Debug, Clone)]
pub struct SinkOptions {
    /// libpq URL of the target database.
    pub postgres: String,
    pub station: String,
    pub group: String,
    /// Target table, `schema.name`; its primary key is the row key.
    pub table: String,
    /// Only these columns are written (default: every column of the target
    /// table that the changes carry).
    pub columns: Option<Vec<String>>,
    /// Changes applied per transaction at most.
    pub batch: usize,
}

impl SinkOptions {
    pub fn new(
        postgres: impl Into<String>,
        station: impl Into<String>,
        group: impl Into<String>,
        table: impl Into<String>,
    ) -> Self {
        Self {
            postgres: postgres.into(),
            station: station.into(),
            group: group.into(),
            table: table.into(),
            columns: None,
            batch: 512,
        }
    }
}

const POSITIONS: &str = "CREATE TABLE IF NOT EXISTS jetstation_sink_positions (\
    target text NOT NULL, key text NOT NULL, lsn bigint NOT NULL, idx bigint NOT NULL, \
    PRIMARY KEY (target, key))";

struct Target {
    table: String,
    key: Vec<String>,
    /// Written columns with their SQL types.
    columns: Vec<(String, String)>,
}

async fn describe_target(pg: &tokio_postgres::Client, options: &SinkOptions) -> Result<Target> {
    let table = if options.table.contains('.') {
        options.table.clone()
    } else {
        format!("public.{}", options.table)
    };
    let (_, key) = table::describe(pg, &table).await?;
    let rows = pg
        .query(
            "SELECT attname::text, format_type(atttypid, atttypmod) FROM pg_attribute \
             WHERE attrelid = $1::text::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
            &[&quoted(&table)],
        )
        .await
        .map_err(|e| table::pg_error(&format!("cannot read the columns of {table}"), &e))?;
    let columns = rows
        .iter()
        .map(|r| (r.get::<_, String>(0), r.get::<_, String>(1)))
        .filter(|(name, _)| {
            key.contains(name)
                || options
                    .columns
                    .as_ref()
                    .is_none_or(|c| c.iter().any(|c| c == name))
        })
        .collect();
    Ok(Target {
        table,
        key,
        columns,
    })
}

/// Runs the sink until `stop` completes. A lost connection to PostgreSQL
/// is retried every second; unacknowledged changes come back.
pub async fn run(
    client: &Client,
    options: &SinkOptions,
    stop: impl Future<Output = ()>,
) -> Result<()> {
    tokio::pin!(stop);
    let consumer = client
        .consumer(
            &options.station,
            &options.group,
            ConsumerOptions::default().concurrency(options.batch.max(1)),
        )
        .await?;
    let result = loop {
        let result = tokio::select! {
            r = session(&consumer, options) => r,
            () = &mut stop => break Ok(()),
        };
        match result {
            Err(e) if matches!(e.kind(), ErrorKind::Connection | ErrorKind::Timeout) => {
                tracing::warn!(error = %e.message(), "sink interrupted; starting again in 1 s");
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_secs(1)) => {} // retry delay after a lost connection; `stop` ends it early
                    () = &mut stop => break Ok(()),
                }
            }
            other => break other,
        }
    };
    let _ = consumer.close().await;
    result
}

async fn session(consumer: &jetstation::Consumer, options: &SinkOptions) -> Result<()> {
    let config = tokio_postgres::Config::from_str(&options.postgres)
        .map_err(|e| Error::new(ErrorKind::InvalidArgument, format!("--postgres: {e}")))?;
    let (mut pg, connection) = config
        .connect(tokio_postgres::NoTls)
        .await
        .map_err(|e| table::pg_error("cannot connect to the target", &e))?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    pg.batch_execute(POSITIONS)
        .await
        .map_err(|e| table::pg_error("cannot create jetstation_sink_positions", &e))?;
    let target = describe_target(&pg, options).await?;
    loop {
        let Some(first) = consumer.next().await else {
            return Ok(());
        };
        let mut batch = vec![first?];
        while batch.len() < options.batch {
            // Gathers what is ready without waiting long for more.
            match tokio::time::timeout(Duration::from_millis(2), consumer.next()).await {
                Ok(Some(d)) => batch.push(d?),
                _ => break,
            }
        }
        apply(&mut pg, &target, &batch).await?;
        for d in &batch {
            d.ack()?;
        }
    }
}

/// A change's position: (commit LSN, index in the transaction).
fn position(change: &Value) -> Option<(i64, i64)> {
    let lsn = Lsn::parse(change.get("lsn")?.as_str()?).ok()?;
    Some((lsn.as_u64() as i64, change.get("index")?.as_i64()?))
}

/// A parsed change of a batch.
struct Parsed {
    key: Option<String>,
    change: Value,
    op: String,
    position: (i64, i64),
}

fn parse(d: &Delivery) -> Result<Parsed> {
    let change: Value = serde_json::from_slice(&d.payload).map_err(|e| {
        Error::new(
            ErrorKind::InvalidArgument,
            format!(
                "change {} of partition {} is not JSON: {e}",
                d.sequence, d.partition
            ),
        )
    })?;
    let op = change
        .get("op")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let position = position(&change)
        .ok_or_else(|| Error::new(ErrorKind::InvalidArgument, "a change without lsn and index"))?;
    Ok(Parsed {
        key: d.key.clone(),
        change,
        op,
        position,
    })
}

type Param<'a> = &'a (dyn tokio_postgres::types::ToSql + Sync);

/// Applies a batch in one transaction: one statement records the positions
/// and returns the keys whose change is newer, one statement per column set
/// upserts those rows, one deletes. A batch holds one change per key (a
/// group delivers a key's next change after the previous one is settled);
/// a batch with a truncate or a repeated key is applied change by change.
async fn apply(pg: &mut tokio_postgres::Client, target: &Target, batch: &[Delivery]) -> Result<()> {
    let parsed = batch.iter().map(parse).collect::<Result<Vec<_>>>()?;
    let txn = pg
        .transaction()
        .await
        .map_err(|e| table::pg_error("cannot begin", &e))?;
    let keys: std::collections::HashSet<&str> =
        parsed.iter().filter_map(|p| p.key.as_deref()).collect();
    let set_based = keys.len() == parsed.len() && parsed.iter().all(|p| p.op != "truncate");
    if set_based {
        apply_set(&txn, target, &parsed).await?;
    } else {
        for p in &parsed {
            if p.op == "truncate" {
                truncate(&txn, target, p.position).await?;
            } else {
                apply_set(&txn, target, std::slice::from_ref(p)).await?;
            }
        }
    }
    txn.commit()
        .await
        .map_err(|e| table::pg_error("cannot commit", &e))
}

async fn apply_set(
    txn: &tokio_postgres::Transaction<'_>,
    target: &Target,
    parsed: &[Parsed],
) -> Result<()> {
    let keys: Vec<String> = parsed
        .iter()
        .map(|p| p.key.clone().unwrap_or_default())
        .collect();
    let lsns: Vec<i64> = parsed.iter().map(|p| p.position.0).collect();
    let idxs: Vec<i64> = parsed.iter().map(|p| p.position.1).collect();
    let newer: std::collections::HashSet<String> = txn
        .query(
            "INSERT INTO jetstation_sink_positions AS p (target, key, lsn, idx) \
             SELECT $1, k, l, i FROM unnest($2::text[], $3::bigint[], $4::bigint[]) AS u(k, l, i) \
             ON CONFLICT (target, key) DO UPDATE SET lsn = EXCLUDED.lsn, idx = EXCLUDED.idx \
             WHERE (p.lsn, p.idx) < (EXCLUDED.lsn, EXCLUDED.idx) RETURNING key",
            &[&target.table, &keys, &lsns, &idxs],
        )
        .await
        .map_err(|e| table::pg_error("cannot record the positions", &e))?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let fresh = parsed
        .iter()
        .filter(|p| p.key.as_ref().is_some_and(|k| newer.contains(k)));
    // Upserts, grouped by the columns they carry (an unchanged TOAST value
    // is absent and keeps what the row has).
    let mut upserts: std::collections::BTreeMap<Vec<usize>, Vec<&serde_json::Map<String, Value>>> =
        Default::default();
    let mut deletes: Vec<&serde_json::Map<String, Value>> = Vec::new();
    for p in fresh {
        match p.op.as_str() {
            "read" | "insert" | "update" => {
                if let Some(after) = p.change.get("after").and_then(Value::as_object) {
                    let cols = (0..target.columns.len())
                        .filter(|i| after.contains_key(&target.columns[*i].0))
                        .collect();
                    upserts.entry(cols).or_default().push(after);
                }
            }
            "delete" => {
                if let Some(before) = p.change.get("before").and_then(Value::as_object) {
                    deletes.push(before);
                }
            }
            other => {
                return Err(Error::new(
                    ErrorKind::InvalidArgument,
                    format!("unknown change op {other:?}"),
                ));
            }
        }
    }
    for (cols, rows) in upserts {
        let arrays: Vec<Vec<Option<String>>> = cols
            .iter()
            .map(|i| {
                rows.iter()
                    .map(|r| table::to_text(&r[&target.columns[*i].0]))
                    .collect()
            })
            .collect();
        let names: Vec<String> = cols.iter().map(|i| ident(&target.columns[*i].0)).collect();
        let unnest = (1..=cols.len())
            .map(|n| format!("${n}::text[]"))
            .collect::<Vec<_>>();
        let aliases = (1..=cols.len())
            .map(|n| format!("c{n}"))
            .collect::<Vec<_>>();
        let select = cols
            .iter()
            .enumerate()
            .map(|(n, i)| format!("c{}::{}", n + 1, target.columns[*i].1))
            .collect::<Vec<_>>();
        let updates = cols
            .iter()
            .map(|i| &target.columns[*i].0)
            .filter(|n| !target.key.contains(n))
            .map(|n| format!("{0} = EXCLUDED.{0}", ident(n)))
            .collect::<Vec<_>>();
        let conflict = if updates.is_empty() {
            "DO NOTHING".to_string()
        } else {
            format!("DO UPDATE SET {}", updates.join(", "))
        };
        let sql = format!(
            "INSERT INTO {} ({}) SELECT {} FROM unnest({}) AS u({}) ON CONFLICT ({}) {conflict}",
            quoted(&target.table),
            names.join(", "),
            select.join(", "),
            unnest.join(", "),
            aliases.join(", "),
            target
                .key
                .iter()
                .map(|k| ident(k))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let params: Vec<Param<'_>> = arrays.iter().map(|a| a as Param<'_>).collect();
        txn.execute(&sql, &params)
            .await
            .map_err(|e| table::pg_error(&format!("cannot write to {}", target.table), &e))?;
    }
    if !deletes.is_empty() {
        let arrays: Vec<Vec<Option<String>>> = target
            .key
            .iter()
            .map(|k| {
                deletes
                    .iter()
                    .map(|r| r.get(k).and_then(table::to_text))
                    .collect()
            })
            .collect();
        let ty = |k: &String| {
            target
                .columns
                .iter()
                .find(|(n, _)| n == k)
                .map_or("text".to_string(), |(_, t)| t.clone())
        };
        let conditions = target
            .key
            .iter()
            .enumerate()
            .map(|(n, k)| format!("t.{} = d.c{}::{}", ident(k), n + 1, ty(k)))
            .collect::<Vec<_>>();
        let sql = format!(
            "DELETE FROM {} AS t USING unnest({}) AS d({}) WHERE {}",
            quoted(&target.table),
            (1..=target.key.len())
                .map(|n| format!("${n}::text[]"))
                .collect::<Vec<_>>()
                .join(", "),
            (1..=target.key.len())
                .map(|n| format!("c{n}"))
                .collect::<Vec<_>>()
                .join(", "),
            conditions.join(" AND ")
        );
        let params: Vec<Param<'_>> = arrays.iter().map(|a| a as Param<'_>).collect();
        txn.execute(&sql, &params)
            .await
            .map_err(|e| table::pg_error(&format!("cannot delete from {}", target.table), &e))?;
    }
    Ok(())
}

/// A truncate, applied only when nothing newer was applied to the table.
async fn truncate(
    txn: &tokio_postgres::Transaction<'_>,
    target: &Target,
    position: (i64, i64),
) -> Result<()> {
    let newest: Option<(i64, i64)> = txn
        .query_opt(
            "SELECT lsn, idx FROM jetstation_sink_positions WHERE target = $1 \
             ORDER BY lsn DESC, idx DESC LIMIT 1",
            &[&target.table],
        )
        .await
        .map_err(|e| table::pg_error("cannot read positions", &e))?
        .map(|r| (r.get(0), r.get(1)));
    if newest.is_none_or(|n| n < position) {
        txn.batch_execute(&format!("TRUNCATE {}", quoted(&target.table)))
            .await
            .map_err(|e| table::pg_error("cannot truncate", &e))?;
    }
    Ok(())
}
