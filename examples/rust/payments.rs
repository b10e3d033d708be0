//! Exactly-once processing with a side effect outside NATS: a payments
//! ledger.
//!
//! The consumer group uses `exactly_once`: a handled message is recorded by
//! the group before it is acknowledged, and a redelivery found in the record
//! is acknowledged without running the handler. That covers everything
//! inside NATS. The ledger itself is another system, so the handler is
//! idempotent too: the balance change and the id of the message that caused
//! it are written together, in one atomic write (here a file replaced by a
//! rename; in a database, one transaction), and a message whose id the
//! ledger already holds changes nothing. That closes the gap the record
//! cannot: a member that dies after the ledger write but before the record.
//!
//! The producer-side twin is the outbox: a service that changes its
//! database and must announce it writes the message into an outbox table in
//! the same transaction, and a relay sends the outbox rows with the row id as
//! the message id, so a relay that retries after a crash is deduplicated by
//! the station.
//!
//! Run it with `cargo run -p jetstation-examples --bin payments` (starts its
//! own nats-server), or with `NATS_URL=nats://host:4222`.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::Duration,
};

use jetstation::{Client, ConnectOptions, ConsumerOptions, Message, StationConfig};
use jetstation_harness::NatsServer;

const STATION: &str = "payments";
const PAYMENTS: usize = 300;
const ACCOUNTS: usize = 12;

/// The ledger: balances and the ids of the payments applied, stored together.
#[derive(Default, serde::Serialize, serde::Deserialize)]
struct Ledger {
    balances: BTreeMap<String, i64>,
    applied: BTreeSet<String>,
}

struct Store {
    path: PathBuf,
    ledger: Mutex<Ledger>,
    repeats: Mutex<usize>,
}

impl Store {
    fn open(path: &Path) -> Self {
        let ledger = std::fs::read(path)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default();
        Self {
            path: path.to_path_buf(),
            ledger: Mutex::new(ledger),
            repeats: Mutex::new(0),
        }
    }

    /// Applies a payment once: the balance and the payment's id are written
    /// in one atomic replace of the file.
    fn apply(&self, id: &str, account: &str, amount: i64) -> std::io::Result<()> {
        let mut ledger = self.ledger.lock().unwrap();
        if ledger.applied.contains(id) {
            *self.repeats.lock().unwrap() += 1;
            return Ok(());
        }
        *ledger.balances.entry(account.to_string()).or_default() += amount;
        ledger.applied.insert(id.to_string());
        let tmp = self.path.with_extension("tmp");
        std::fs::write(&tmp, serde_json::to_vec(&*ledger)?)?;
        std::fs::rename(&tmp, &self.path)
    }
}

fn amount(i: usize) -> i64 {
    (i as i64 % 7 + 1) * 100
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (_server, url) = match std::env::var("NATS_URL") {
        Ok(url) => (None, url),
        Err(_) => {
            let server = NatsServer::start();
            let url = server.url();
            (Some(server), url)
        }
    };
    let client = Client::connect(ConnectOptions::new(&url).name("payments")).await?;
    if client.station(STATION).await.is_ok() {
        client.delete_station(STATION).await?;
    }
    client
        .create_station(STATION, StationConfig::default().partitions(2))
        .await?;
    let producer = client.producer(STATION, Default::default()).await?;
    for i in 0..PAYMENTS {
        let account = format!("acc-{}", i % ACCOUNTS);
        let body = serde_json::json!({"account": account, "amount": amount(i)});
        producer
            .enqueue(Message::new(body.to_string()).key(account))
            .await?;
    }
    producer.flush().await?;
    println!("sent {PAYMENTS} payments to {ACCOUNTS} accounts");

    let dir = std::env::temp_dir().join(format!("jetstation-payments-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let store = Arc::new(Store::open(&dir.join("ledger.json")));
    let options = ConsumerOptions::default()
        .concurrency(8)
        .ack_wait(Duration::from_secs(2))
        .handover_timeout(Duration::from_secs(1))
        .exactly_once(true);

    // A first ledger service applies part of the payments, then dies
    // without closing (its last acknowledgements are never committed).
    let crashed = Client::connect(ConnectOptions::new(&url).name("ledger-1")).await?;
    let first = crashed.consumer(STATION, "ledger", options.clone()).await?;
    let mut handled = 0;
    while handled < PAYMENTS / 3 {
        let delivery = first.next().await.expect("a payment")?;
        apply(&store, &delivery)?;
        delivery.ack()?;
        handled += 1;
    }
    crashed.close().await?;
    println!("ledger-1 applied {handled} payments, then crashed");

    // A second one takes over: nothing is applied twice, nothing is missed.
    let second = client.consumer(STATION, "ledger", options).await?;
    while store.ledger.lock().unwrap().applied.len() < PAYMENTS {
        let next = tokio::time::timeout(Duration::from_secs(15), second.next()).await;
        let delivery = next.map_err(|_| "ledger-2 waited 15 s for a payment")?;
        let delivery = delivery.expect("a payment")?;
        apply(&store, &delivery)?;
        delivery.ack()?;
    }
    second.close().await?;

    let ledger = store.ledger.lock().unwrap();
    let total: i64 = ledger.balances.values().sum();
    let expected: i64 = (0..PAYMENTS).map(amount).sum();
    println!(
        "ledger-2 took over; {} payments applied once each, total {total} (expected {expected}), \
         {} repeats stopped by the ledger",
        ledger.applied.len(),
        store.repeats.lock().unwrap()
    );
    std::fs::remove_dir_all(&dir)?;
    if total != expected || ledger.applied.len() != PAYMENTS {
        return Err("the ledger does not add up".into());
    }
    println!("payments OK");
    Ok(())
}

fn apply(store: &Store, delivery: &jetstation::Delivery) -> Result<(), Box<dyn std::error::Error>> {
    let body: serde_json::Value = serde_json::from_slice(&delivery.payload)?;
    let id = delivery.msg_id.clone().ok_or("a payment without an id")?;
    let account = body["account"].as_str().ok_or("no account")?;
    let amount = body["amount"].as_i64().ok_or("no amount")?;
    Ok(store.apply(&id, account, amount)?)
}
