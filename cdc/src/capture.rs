//! The capture: PostgreSQL logical replication (`pgoutput`) into stations.
//!
//! One session: read the tables' shapes, make sure the stations, schemas,
//! publication and slot exist, send the snapshot when the slot is new, then
//! follow the stream. Every change becomes one message, keyed by the row's
//! primary key, with a message id made of the commit LSN and the change's
//! position in its transaction. A commit's LSN is reported to PostgreSQL
//! only once the broker has confirmed every message up to it, so a crash
//! loses nothing and a restart resends only what the dedup window absorbs.

use std::{collections::HashMap, future::Future, str::FromStr, time::Duration};

use futures::StreamExt;
use jetstation::{
    Client, Compatibility, Error, ErrorKind, Message, Producer, ProducerOptions, Result,
    SchemaBinding, SchemaDefinition, SchemaFormat, SendHandle, StationConfig,
};
use pgwire_replication::{Lsn, ReplicationClient, ReplicationConfig, ReplicationEvent};
use serde_json::{Value, json};
use tokio::sync::{mpsc, watch};

use crate::{
    checkpoint::{self, Checkpoint},
    pgoutput::{self, Change},
    table::{self, ColumnInfo, Table, TableMapping},
};

/// What to capture and where to send it.
#[derive(Debug, Clone)]
pub struct CaptureOptions {
    /// libpq URL of the source database, e.g. `postgres://user:pw@host:5432/db`.
    pub postgres: String,
    pub slot: String,
    pub publication: String,
    pub tables: Vec<TableMapping>,
    /// For stations the capture creates.
    pub partitions: u32,
    pub replicas: usize,
    /// Dedup window of created stations: a restart resends at most what
    /// was sent but not yet reported to PostgreSQL, deduplicated within it.
    pub dedup_window: Duration,
    /// Compatibility mode of the schemas the capture registers.
    pub compatibility: Compatibility,
    /// The compacted station holding the capture's checkpoints.
    pub state_station: String,
    /// Producer buffer per station: bounds memory on large transactions.
    pub buffer_bytes: usize,
    /// How often the confirmed position is reported to PostgreSQL at most.
    /// What a crash resends is what was confirmed by the broker but not yet
    /// reported: about this long of changes.
    pub status_interval: Duration,
}

impl CaptureOptions {
    pub fn new(postgres: impl Into<String>, tables: Vec<TableMapping>) -> Self {
        Self {
            postgres: postgres.into(),
            slot: "jetstation".into(),
            publication: "jetstation".into(),
            tables,
            partitions: 4,
            replicas: 1,
            dedup_window: Duration::from_secs(600),
            compatibility: Compatibility::Backward,
            state_station: "jetstation-cdc".into(),
            buffer_bytes: 16 << 20,
            status_interval: Duration::from_millis(200),
        }
    }
}

/// Runs the capture until `stop` completes or an error that a retry cannot
/// fix (a breaking schema change, a table without a key). A lost
/// connection to PostgreSQL or the broker is retried every second.
pub async fn run(
    client: &Client,
    options: &CaptureOptions,
    stop: impl Future<Output = ()>,
) -> Result<()> {
    tokio::pin!(stop);
    loop {
        let result = tokio::select! {
            r = session(client, options) => r,
            () = &mut stop => return Ok(()),
        };
        match result {
            Ok(()) => return Ok(()),
            Err(e) if matches!(e.kind(), ErrorKind::Connection | ErrorKind::Timeout) => {
                tracing::warn!(error = %e.message(), "capture interrupted; starting again in 1 s");
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_secs(1)) => {} // retry delay after a lost connection; `stop` ends it early
                    () = &mut stop => return Ok(()),
                }
            }
            Err(e) => return Err(e),
        }
    }
}

fn pg_config(url: &str) -> Result<tokio_postgres::Config> {
    tokio_postgres::Config::from_str(url).map_err(|e| {
        Error::new(
            ErrorKind::InvalidArgument,
            format!("--postgres {url:?} is not a PostgreSQL URL: {e}"),
        )
    })
}

fn replication_config(options: &CaptureOptions) -> Result<ReplicationConfig> {
    let c = pg_config(&options.postgres)?;
    let host = match c.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
        Some(tokio_postgres::config::Host::Unix(p)) => p.display().to_string(),
        None => "127.0.0.1".into(),
    };
    let password = c
        .get_password()
        .map(|p| String::from_utf8_lossy(p).into_owned())
        .unwrap_or_default();
    Ok(ReplicationConfig::new(
        host,
        c.get_user().unwrap_or("postgres"),
        password,
        c.get_dbname().unwrap_or("postgres"),
        options.slot.clone(),
        options.publication.clone(),
    )
    .with_port(c.get_ports().first().copied().unwrap_or(5432))
    .with_application_name(format!("jetstation-cdc-{}", options.slot))
    .with_status_interval(options.status_interval))
}

fn repl_error(what: &str, e: pgwire_replication::PgWireError) -> Error {
    use pgwire_replication::PgWireError as P;
    let kind = match &e {
        P::Io(_) | P::Task(_) => ErrorKind::Connection,
        P::Auth(_) => ErrorKind::Auth,
        _ => ErrorKind::Broker,
    };
    let text = e.to_string();
    // A slot held by another session (a previous process the server has not
    // noticed is gone yet) frees itself: worth retrying.
    let kind = if text.contains("is active for PID") || text.contains("terminating connection") {
        ErrorKind::Connection
    } else {
        kind
    };
    Error::new(kind, format!("PostgreSQL replication: {what}: {text}"))
}

async fn connect(options: &CaptureOptions) -> Result<tokio_postgres::Client> {
    let config = pg_config(&options.postgres)?;
    let (pg, connection) = config
        .connect(tokio_postgres::NoTls)
        .await
        .map_err(|e| table::pg_error("cannot connect", &e))?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %e, "PostgreSQL connection ended");
        }
    });
    Ok(pg)
}

/// The schema a table's station binds; a breaking change is refused here,
/// before any message with the new shape is sent.
async fn register(client: &Client, options: &CaptureOptions, t: &Table) -> Result<u32> {
    let definition = SchemaDefinition {
        format: SchemaFormat::JsonSchema,
        source: t.json_schema(),
        message_type: None,
    };
    match client
        .register_schema_with(&t.mapping.station, definition, options.compatibility)
        .await
    {
        Ok(v) => Ok(v.version),
        Err(e) if e.kind() == ErrorKind::IncompatibleSchema => Err(Error::new(
            ErrorKind::IncompatibleSchema,
            format!(
                "table {} changed in a way that breaks schema {:?} ({} mode), so the capture \
                 stopped before sending any change of the new shape: {}. Make the change \
                 compatible (e.g. add a column instead of changing a type), or change the \
                 schema's compatibility mode, then start the capture again",
                t.mapping.table,
                t.mapping.station,
                options.compatibility.as_str(),
                e.message()
            ),
        )),
        Err(e) => Err(e),
    }
}

async fn prepare_tables(
    client: &Client,
    pg: &tokio_postgres::Client,
    options: &CaptureOptions,
) -> Result<Vec<Table>> {
    let mut tables = Vec::new();
    for mapping in &options.tables {
        let (columns, key) = table::describe(pg, &mapping.table).await?;
        let mut t = Table {
            mapping: mapping.clone(),
            key,
            columns: Vec::new(),
            layout: Vec::new(),
        };
        if let Some(wanted) = &mapping.columns
            && let Some(missing) = wanted
                .iter()
                .find(|w| !columns.iter().any(|c| &c.name == *w))
        {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                format!("table {} has no column {missing:?}", mapping.table),
            ));
        }
        t.set_columns(columns);
        register(client, options, &t).await?;
        let config = StationConfig {
            partitions: options.partitions,
            replicas: options.replicas,
            dedup_window: options.dedup_window,
            schema: Some(SchemaBinding {
                name: mapping.station.clone(),
                version: None,
            }),
            ..StationConfig::default()
        };
        match client.create_station(&mapping.station, config).await {
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                // It exists with other settings: keep them.
                client.station(&mapping.station).await?;
            }
            Err(e) => return Err(e),
        }
        tables.push(t);
    }
    Ok(tables)
}

async fn ensure_publication(pg: &tokio_postgres::Client, options: &CaptureOptions) -> Result<()> {
    let exists = pg
        .query_opt(
            "SELECT 1 FROM pg_publication WHERE pubname = $1",
            &[&options.publication],
        )
        .await
        .map_err(|e| table::pg_error("cannot read publications", &e))?
        .is_some();
    let list = options
        .tables
        .iter()
        .map(|t| table::quoted(&t.table))
        .collect::<Vec<_>>()
        .join(", ");
    if !exists {
        let sql = format!(
            "CREATE PUBLICATION {} FOR TABLE {list}",
            table::ident(&options.publication)
        );
        pg.batch_execute(&sql)
            .await
            .map_err(|e| table::pg_error("cannot create the publication", &e))?;
        return Ok(());
    }
    for t in &options.tables {
        let (schema, name) = t.table.split_once('.').unwrap_or(("public", &t.table));
        let published = pg
            .query_opt(
                "SELECT 1 FROM pg_publication_tables WHERE pubname = $1 AND schemaname = $2 AND tablename = $3",
                &[&options.publication, &schema, &name],
            )
            .await
            .map_err(|e| table::pg_error("cannot read the publication", &e))?
            .is_some();
        if !published {
            let sql = format!(
                "ALTER PUBLICATION {} ADD TABLE {}",
                table::ident(&options.publication),
                table::quoted(&t.table)
            );
            pg.batch_execute(&sql)
                .await
                .map_err(|e| table::pg_error("cannot add a table to the publication", &e))?;
        }
    }
    Ok(())
}

async fn slot_exists(pg: &tokio_postgres::Client, slot: &str) -> Result<bool> {
    Ok(pg
        .query_opt(
            "SELECT 1 FROM pg_replication_slots WHERE slot_name = $1",
            &[&slot],
        )
        .await
        .map_err(|e| table::pg_error("cannot read replication slots", &e))?
        .is_some())
}

/// The producers, one per station, and what waits for their confirmations.
struct Sender {
    producers: HashMap<String, Producer>,
    confirms: mpsc::Sender<Pending>,
}

enum Pending {
    Sent(SendHandle),
    /// Everything before this is in a commit at or below this LSN.
    Upto(Lsn),
}

impl Sender {
    async fn send(&self, station: &str, message: Message) -> Result<()> {
        let producer = &self.producers[station];
        let handle = producer.enqueue(message).await?;
        self.confirms
            .send(Pending::Sent(handle))
            .await
            .map_err(|_| Error::new(ErrorKind::Closed, "the confirmation task stopped"))
    }

    async fn upto(&self, lsn: Lsn) -> Result<()> {
        self.confirms
            .send(Pending::Upto(lsn))
            .await
            .map_err(|_| Error::new(ErrorKind::Closed, "the confirmation task stopped"))
    }

    async fn flush(&self) -> Result<()> {
        for p in self.producers.values() {
            p.flush().await?;
        }
        Ok(())
    }
}

/// Awaits every message's confirmation in order; publishes the highest LSN
/// whose messages are all confirmed. A message the broker refused ends the
/// capture: nothing after it is reported, so a restart sends it again.
async fn confirm(
    mut pending: mpsc::Receiver<Pending>,
    confirmed: watch::Sender<Lsn>,
) -> Result<()> {
    let mut repeated = 0u64;
    while let Some(p) = pending.recv().await {
        match p {
            Pending::Sent(handle) => {
                if handle.await?.duplicate {
                    repeated += 1;
                }
            }
            Pending::Upto(lsn) => {
                if repeated > 0 {
                    tracing::info!(
                        repeated,
                        "changes sent again after a restart were already in their station: deduplicated"
                    );
                    repeated = 0;
                }
                confirmed.send_replace(lsn);
            }
        }
    }
    Ok(())
}

/// One change as a message.
struct Envelope<'a> {
    op: &'static str,
    table: &'a Table,
    lsn: Lsn,
    index: u64,
    xid: Option<u32>,
    commit_time: Option<String>,
    before: Value,
    after: Value,
    unchanged: Vec<String>,
}

impl Envelope<'_> {
    fn message(self, slot: &str, id_prefix: &str) -> Message {
        let row = if self.after.is_null() {
            &self.before
        } else {
            &self.after
        };
        let key = self.table.key_of(row);
        let payload = json!({
            "op": self.op,
            "table": self.table.mapping.table,
            "lsn": self.lsn.to_string(),
            "index": self.index,
            "xid": self.xid,
            "commit_time": self.commit_time,
            "before": self.before,
            "after": self.after,
            "unchanged": self.unchanged,
        });
        let mut m = Message::new(serde_json::to_vec(&payload).expect("JSON")).msg_id(format!(
            "{slot}:{id_prefix}:{}:{}",
            self.lsn.as_u64(),
            self.index
        ));
        if let Some(key) = key {
            m = m.key(key);
        }
        m
    }
}

/// PostgreSQL time (microseconds since 2000-01-01) as RFC 3339.
fn pg_time(micros: i64) -> Option<String> {
    const UNIX_2000: i64 = 946_684_800;
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(
        (i128::from(UNIX_2000) * 1_000_000 + i128::from(micros)) * 1000,
    )
    .ok()?;
    t.format(&time::format_description::well_known::Rfc3339)
        .ok()
}

async fn session(client: &Client, options: &CaptureOptions) -> Result<()> {
    let pg = connect(options).await?;
    let mut tables = prepare_tables(client, &pg, options).await?;
    ensure_publication(&pg, options).await?;
    checkpoint::ensure_station(client, &options.state_station, options.replicas).await?;

    let mut producers = HashMap::new();
    for t in &tables {
        let p = client
            .producer(
                &t.mapping.station,
                ProducerOptions::default().buffer_bytes(options.buffer_bytes),
            )
            .await?;
        producers.insert(t.mapping.station.clone(), p);
    }
    let (confirms_tx, confirms_rx) = mpsc::channel(64 * 1024);
    let (confirmed_tx, mut confirmed) = watch::channel(Lsn::ZERO);
    let confirmer = tokio::spawn(confirm(confirms_rx, confirmed_tx));
    let sender = Sender {
        producers,
        confirms: confirms_tx,
    };

    let saved = checkpoint::load(client, &options.state_station, &options.slot).await?;
    let resumable =
        slot_exists(&pg, &options.slot).await? && saved.as_ref().is_some_and(|c| c.snapshot_done);
    let config = replication_config(options)?;
    let mut repl = if resumable {
        let repl = ReplicationClient::connect(config)
            .await
            .map_err(|e| repl_error("cannot start streaming", e))?;
        tracing::info!(slot = %options.slot, "resuming from the slot's confirmed position");
        repl
    } else {
        if slot_exists(&pg, &options.slot).await? {
            // A slot whose snapshot was never completely sent: start over,
            // with a new snapshot.
            pg.execute("SELECT pg_drop_replication_slot($1)", &[&options.slot])
                .await
                .map_err(|e| table::pg_error("cannot drop the unfinished slot", &e))?;
        }
        let mut repl = ReplicationClient::connect_gated(config)
            .await
            .map_err(|e| repl_error("cannot connect", e))?;
        let rows = repl
            .simple_query(&format!(
                "CREATE_REPLICATION_SLOT {} LOGICAL pgoutput (SNAPSHOT 'export')",
                table::ident(&options.slot)
            ))
            .await
            .map_err(|e| repl_error("cannot create the replication slot", e))?;
        let field = |i: usize| {
            rows.first()
                .and_then(|r| r.get(i).cloned().flatten())
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_default()
        };
        let consistent = Lsn::parse(&field(1))
            .map_err(|e| Error::new(ErrorKind::Broker, format!("slot creation answered {e}")))?;
        let snapshot_name = field(2);
        let mut cp = Checkpoint {
            slot: options.slot.clone(),
            consistent_lsn: consistent.as_u64(),
            snapshot_done: false,
        };
        checkpoint::save(client, &options.state_station, &cp).await?;
        snapshot(options, &tables, &sender, &snapshot_name, consistent).await?;
        sender.flush().await?;
        cp.snapshot_done = true;
        checkpoint::save(client, &options.state_station, &cp).await?;
        tracing::info!(slot = %options.slot, lsn = %consistent, "snapshot sent");
        repl.start()
            .await
            .map_err(|e| repl_error("cannot start streaming", e))?;
        repl
    };
    repl.wait_started()
        .await
        .map_err(|e| repl_error("streaming did not start", e))?;

    let by_oid: &mut HashMap<u32, usize> = &mut HashMap::new();
    let mut tx: Option<(Lsn, u32, Option<String>, u64)> = None;
    let result: Result<()> = loop {
        let event = tokio::select! {
            biased;
            changed = confirmed.changed() => {
                if changed.is_ok() {
                    repl.update_applied_lsn(*confirmed.borrow_and_update());
                }
                continue;
            }
            event = repl.recv() => event,
        };
        let event = match event {
            Ok(Some(e)) => e,
            Ok(None) => break Ok(()),
            Err(e) => break Err(repl_error("the stream broke", e)),
        };
        match event {
            ReplicationEvent::Begin {
                final_lsn,
                xid,
                commit_time_micros,
            } => tx = Some((final_lsn, xid, pg_time(commit_time_micros), 0)),
            ReplicationEvent::Commit { end_lsn, .. } => {
                tx = None;
                if let Err(e) = sender.upto(end_lsn).await {
                    break Err(e);
                }
            }
            ReplicationEvent::KeepAlive { wal_end, .. } if tx.is_none() => {
                // Nothing open: once everything sent so far is confirmed,
                // the slot may move up to the server's position.
                if let Err(e) = sender.upto(wal_end).await {
                    break Err(e);
                }
            }
            ReplicationEvent::XLogData { data, .. } => {
                let change = match pgoutput::decode(&data) {
                    Ok(c) => c,
                    Err(e) => break Err(Error::new(ErrorKind::Broker, e.to_string())),
                };
                if let Err(e) = apply(
                    client,
                    &pg,
                    options,
                    &mut tables,
                    by_oid,
                    &sender,
                    &mut tx,
                    change,
                )
                .await
                {
                    break Err(e);
                }
            }
            _ => {}
        }
    };
    drop(sender);
    let confirmed_all = confirmer.await;
    let _ = repl.shutdown().await;
    result?;
    match confirmed_all {
        Ok(r) => r,
        Err(e) => Err(Error::new(
            ErrorKind::Closed,
            format!("confirmation task failed: {e}"),
        )),
    }
}

#[allow(clippy::too_many_arguments)]
async fn apply(
    client: &Client,
    pg: &tokio_postgres::Client,
    options: &CaptureOptions,
    tables: &mut [Table],
    by_oid: &mut HashMap<u32, usize>,
    sender: &Sender,
    tx: &mut Option<(Lsn, u32, Option<String>, u64)>,
    change: Change,
) -> Result<()> {
    let relation = match &change {
        Change::Relation(rel) => {
            let name = format!("{}.{}", rel.namespace, rel.name);
            let Some(i) = tables.iter().position(|t| t.mapping.table == name) else {
                return Ok(());
            };
            by_oid.insert(rel.oid, i);
            let t = &mut tables[i];
            let before = table::shape(&t.columns);
            // Nullability is not in the Relation message: the catalog has it.
            let (catalog, _) = table::describe(pg, &t.mapping.table).await?;
            let columns = rel
                .columns
                .iter()
                .map(|c| ColumnInfo {
                    name: c.name.clone(),
                    type_oid: c.type_oid,
                    not_null: catalog.iter().any(|k| k.name == c.name && k.not_null),
                })
                .collect();
            t.layout = rel.columns.clone();
            t.set_columns(columns);
            if table::shape(&t.columns) != before {
                let version = register(client, options, t).await?;
                tracing::info!(table = %name, version, "table changed: new schema version");
            }
            return Ok(());
        }
        Change::Insert { relation, .. }
        | Change::Update { relation, .. }
        | Change::Delete { relation, .. } => *relation,
        Change::Truncate { relations } => {
            let Some((lsn, xid, time, index)) = tx.as_mut() else {
                return Ok(());
            };
            for oid in relations {
                let Some(&i) = by_oid.get(oid) else { continue };
                *index += 1;
                let t = &tables[i];
                let envelope = Envelope {
                    op: "truncate",
                    table: t,
                    lsn: *lsn,
                    index: *index,
                    xid: Some(*xid),
                    commit_time: time.clone(),
                    before: Value::Null,
                    after: Value::Null,
                    unchanged: Vec::new(),
                };
                sender
                    .send(&t.mapping.station, envelope.message(&options.slot, "c"))
                    .await?;
            }
            return Ok(());
        }
        Change::Ignored => return Ok(()),
    };
    let Some(&i) = by_oid.get(&relation) else {
        return Ok(());
    };
    let Some((lsn, xid, time, index)) = tx.as_mut() else {
        return Ok(());
    };
    *index += 1;
    let t = &tables[i];
    let mut unchanged = Vec::new();
    let (op, before, after) = match &change {
        Change::Insert { new, .. } => (
            "insert",
            Value::Null,
            t.row(new, None, false, &mut unchanged),
        ),
        Change::Update { old, new, .. } => {
            let full = tables_identity_full(t, old.as_deref());
            let before = old
                .as_ref()
                .map_or(Value::Null, |o| t.row(o, None, !full, &mut Vec::new()));
            (
                "update",
                before,
                t.row(new, old.as_deref(), false, &mut unchanged),
            )
        }
        Change::Delete { old, .. } => {
            let full = tables_identity_full(t, Some(old));
            (
                "delete",
                t.row(old, None, !full, &mut Vec::new()),
                Value::Null,
            )
        }
        _ => return Ok(()),
    };
    let envelope = Envelope {
        op,
        table: t,
        lsn: *lsn,
        index: *index,
        xid: Some(*xid),
        commit_time: time.clone(),
        before,
        after,
        unchanged,
    };
    sender
        .send(&t.mapping.station, envelope.message(&options.slot, "c"))
        .await
}

/// Whether an old tuple is a whole row (replica identity full) rather than
/// the key alone (the server sends nulls for the other columns then).
fn tables_identity_full(t: &Table, old: Option<&[pgoutput::Value]>) -> bool {
    let Some(old) = old else { return false };
    t.layout
        .iter()
        .zip(old)
        .any(|(c, v)| !t.key.contains(&c.name) && !matches!(v, pgoutput::Value::Null))
}

/// Sends every row of every table as seen by the slot's snapshot.
async fn snapshot(
    options: &CaptureOptions,
    tables: &[Table],
    sender: &Sender,
    snapshot_name: &str,
    consistent: Lsn,
) -> Result<()> {
    let mut pg = connect(options).await?;
    let txn = pg
        .build_transaction()
        .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await
        .map_err(|e| table::pg_error("cannot start the snapshot", &e))?;
    txn.batch_execute(&format!(
        "SET TRANSACTION SNAPSHOT '{}'",
        snapshot_name.replace('\'', "''")
    ))
    .await
    .map_err(|e| table::pg_error("cannot use the slot's snapshot", &e))?;
    for t in tables {
        let list = t
            .columns
            .iter()
            .map(|c| format!("{}::text", table::ident(&c.name)))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!("SELECT {list} FROM {}", table::quoted(&t.mapping.table));
        let rows = txn
            .query_raw(&sql, std::iter::empty::<&str>())
            .await
            .map_err(|e| table::pg_error(&format!("cannot read {}", t.mapping.table), &e))?;
        tokio::pin!(rows);
        let mut n = 0u64;
        while let Some(row) = rows.next().await {
            let row =
                row.map_err(|e| table::pg_error(&format!("cannot read {}", t.mapping.table), &e))?;
            let mut after = serde_json::Map::new();
            for (i, c) in t.columns.iter().enumerate() {
                let text: Option<String> = row.get(i);
                after.insert(
                    c.name.clone(),
                    text.map_or(Value::Null, |v| table::to_json(c.type_oid, &v)),
                );
            }
            n += 1;
            let envelope = Envelope {
                op: "read",
                table: t,
                lsn: consistent,
                index: 0,
                xid: None,
                commit_time: None,
                before: Value::Null,
                after: Value::Object(after),
                unchanged: Vec::new(),
            };
            // Snapshot rows share the consistent point and index 0: the id
            // tells them apart by table and row number.
            let message = envelope.message(&options.slot, &format!("s:{}:{n}", t.mapping.station));
            sender.send(&t.mapping.station, message).await?;
        }
    }
    txn.commit()
        .await
        .map_err(|e| table::pg_error("cannot end the snapshot", &e))
}
