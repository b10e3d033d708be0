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

use futures::future::try_join_all;
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
pub async fn run(client: &Client, options: &SinkOptions, stop: impl Future<Output = ()>) -> Result<()> {
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
                    // Retry delay after a lost connection.
                    () = tokio::time::sleep(Duration::from_secs(1)) => {}
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
    let config = tokio_postgres::Config::from_str(&options.postgres).map_err(|e| {
        Error::new(ErrorKind::InvalidArgument, format!("--postgres: {e}"))
    })?;
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

async fn apply(pg: &mut tokio_postgres::Client, target: &Target, batch: &[Delivery]) -> Result<()> {
    let txn = pg
        .transaction()
        .await
        .map_err(|e| table::pg_error("cannot begin", &e))?;
    let mut work = Vec::new();
    for d in batch {
        let change: Value = serde_json::from_slice(&d.payload).map_err(|e| {
            Error::new(
                ErrorKind::InvalidArgument,
                format!("change {} of {} is not JSON: {e}", d.sequence, d.partition),
            )
        })?;
        work.push(apply_one(&txn, target, d.key.clone(), change));
    }
    try_join_all(work).await?;
    txn.commit()
        .await
        .map_err(|e| table::pg_error("cannot commit", &e))
}

async fn apply_one(
    txn: &tokio_postgres::Transaction<'_>,
    target: &Target,
    key: Option<String>,
    change: Value,
) -> Result<()> {
    let op = change.get("op").and_then(Value::as_str).unwrap_or("");
    let Some((lsn, idx)) = position(&change) else {
        return Err(Error::new(
            ErrorKind::InvalidArgument,
            "a change without lsn and index",
        ));
    };
    if op == "truncate" {
        let newest: Option<(i64, i64)> = txn
            .query_opt(
                "SELECT lsn, idx FROM jetstation_sink_positions WHERE target = $1 \
                 ORDER BY lsn DESC, idx DESC LIMIT 1",
                &[&target.table],
            )
            .await
            .map_err(|e| table::pg_error("cannot read positions", &e))?
            .map(|r| (r.get(0), r.get(1)));
        if newest.is_none_or(|n| n < (lsn, idx)) {
            txn.batch_execute(&format!("TRUNCATE {}", quoted(&target.table)))
                .await
                .map_err(|e| table::pg_error("cannot truncate", &e))?;
        }
        return Ok(());
    }
    let Some(key) = key else {
        return Err(Error::new(
            ErrorKind::InvalidArgument,
            "a row change without a key",
        ));
    };
    // Applied only when newer than what this key last received.
    let newer = txn
        .query_opt(
            "INSERT INTO jetstation_sink_positions AS p (target, key, lsn, idx) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (target, key) DO UPDATE SET lsn = EXCLUDED.lsn, idx = EXCLUDED.idx \
             WHERE (p.lsn, p.idx) < (EXCLUDED.lsn, EXCLUDED.idx) RETURNING 1",
            &[&target.table, &key, &lsn, &idx],
        )
        .await
        .map_err(|e| table::pg_error("cannot record the position", &e))?
        .is_some();
    if !newer {
        return Ok(());
    }
    match op {
        "read" | "insert" | "update" => {
            let Some(after) = change.get("after").and_then(Value::as_object) else {
                return Ok(());
            };
            let cols: Vec<&(String, String)> = target
                .columns
                .iter()
                .filter(|(name, _)| after.contains_key(name))
                .collect();
            let values: Vec<Option<String>> =
                cols.iter().map(|(n, _)| table::to_text(&after[n])).collect();
            let names = cols.iter().map(|(n, _)| ident(n)).collect::<Vec<_>>();
            let params = cols
                .iter()
                .enumerate()
                .map(|(i, (_, ty))| format!("${}::text::{ty}", i + 1))
                .collect::<Vec<_>>();
            let updates = cols
                .iter()
                .filter(|(n, _)| !target.key.contains(n))
                .map(|(n, _)| format!("{0} = EXCLUDED.{0}", ident(n)))
                .collect::<Vec<_>>();
            let on_conflict = if updates.is_empty() {
                "DO NOTHING".to_string()
            } else {
                format!("DO UPDATE SET {}", updates.join(", "))
            };
            let sql = format!(
                "INSERT INTO {} ({}) VALUES ({}) ON CONFLICT ({}) {on_conflict}",
                quoted(&target.table),
                names.join(", "),
                params.join(", "),
                target.key.iter().map(|k| ident(k)).collect::<Vec<_>>().join(", ")
            );
            let refs: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = values
                .iter()
                .map(|v| v as &(dyn tokio_postgres::types::ToSql + Sync))
                .collect();
            txn.execute(&sql, &refs)
                .await
                .map_err(|e| table::pg_error(&format!("cannot write to {}", target.table), &e))?;
        }
        "delete" => {
            let Some(before) = change.get("before").and_then(Value::as_object) else {
                return Ok(());
            };
            let mut conditions = Vec::new();
            let mut values: Vec<Option<String>> = Vec::new();
            for (i, k) in target.key.iter().enumerate() {
                let ty = &target
                    .columns
                    .iter()
                    .find(|(n, _)| n == k)
                    .map_or("text", |(_, t)| t.as_str())
                    .to_string();
                conditions.push(format!("{} = ${}::text::{ty}", ident(k), i + 1));
                values.push(before.get(k).and_then(table::to_text));
            }
            let sql = format!(
                "DELETE FROM {} WHERE {}",
                quoted(&target.table),
                conditions.join(" AND ")
            );
            let refs: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = values
                .iter()
                .map(|v| v as &(dyn tokio_postgres::types::ToSql + Sync))
                .collect();
            txn.execute(&sql, &refs)
                .await
                .map_err(|e| table::pg_error(&format!("cannot delete from {}", target.table), &e))?;
        }
        other => {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                format!("unknown change op {other:?}"),
            ));
        }
    }
    Ok(())
}
