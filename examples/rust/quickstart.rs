//! jetstation quickstart: employee changes flow from an HR service to a
//! payroll consumer group, a malformed change is dead-lettered and replayed
//! after a fix, and an audit group replays the whole history.
//!
//! Run it with `make demo` (starts its own nats-server), or against your own
//! server with `NATS_URL=nats://host:4222 cargo run -p jetstation-examples --bin quickstart`.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use jetstation::{Client, ConnectOptions, ConsumerOptions, Message, StationConfig};
use jetstation_harness::NatsServer;

const STATION: &str = "employee-changes";

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let started = Instant::now();
    // A local nats-server of our own, unless NATS_URL points to one.
    let (_server, url) = match std::env::var("NATS_URL") {
        Ok(url) => (None, url),
        Err(_) => {
            let server = NatsServer::start();
            let url = server.url();
            println!("started nats-server on {url}");
            (Some(server), url)
        }
    };
    let client = Client::connect(ConnectOptions::new(&url).name("quickstart")).await?;
    println!("connected to nats-server {}", client.server_version());

    // 1. A station: 2 partitions, a malformed message is dead-lettered after 3 tries.
    if client.station(STATION).await.is_ok() {
        client.delete_station(STATION).await?;
    }
    client
        .create_station(
            STATION,
            StationConfig::default().partitions(2).max_deliveries(3),
        )
        .await?;
    println!("created station {STATION:?} (2 partitions, max 3 deliveries)");

    // 2. The HR service sends changes, keyed by employee: per-key order is kept.
    let producer = client.producer(STATION, Default::default()).await?;
    let changes = [
        ("emp-1", r#"{"field":"name","value":"Ada Lovelace"}"#),
        ("emp-2", r#"{"field":"salary","value":5200}"#),
        ("emp-1", r#"{"field":"title","value":"Engineer"}"#),
        ("emp-3", r#"{"field":"salary","value":"five thousand"}"#), // malformed
        ("emp-2", r#"{"field":"title","value":"Manager"}"#),
        ("emp-1", r#"{"field":"salary","value":6100}"#),
        ("emp-3", r#"{"field":"title","value":"Analyst"}"#),
    ];
    let t = Instant::now();
    for (employee, change) in changes {
        let receipt = producer.send(Message::new(change).key(employee)).await?;
        println!(
            "  sent {employee} {change} -> partition {} sequence {}",
            receipt.partition, receipt.sequence
        );
    }
    producer.close().await?;
    println!("sent {} changes in {:?}", changes.len(), t.elapsed());

    // 3. The payroll group applies changes; a salary that is not a number fails.
    let strict = Arc::new(AtomicBool::new(true));
    let applied: Arc<Mutex<Vec<String>>> = Default::default();
    let payroll = client
        .consumer(
            STATION,
            "payroll",
            ConsumerOptions::default()
                .concurrency(4)
                .redelivery_delay(Duration::from_millis(200), Duration::from_secs(2)),
        )
        .await?;
    let worker = {
        let (payroll, strict, applied) = (payroll.clone(), strict.clone(), applied.clone());
        tokio::spawn(async move {
            payroll
                .consume(move |m| {
                    let (strict, applied) = (strict.clone(), applied.clone());
                    async move {
                        let change: serde_json::Value = serde_json::from_slice(&m.payload)
                            .map_err(|e| format!("not JSON: {e}"))?;
                        if change["field"] == "salary"
                            && !change["value"].is_number()
                            && strict.load(Ordering::SeqCst)
                        {
                            return Err(format!("salary is not a number: {}", change["value"]));
                        }
                        let key = m.key.clone().unwrap_or_default();
                        println!(
                            "  payroll applied {key} {change} (delivery {})",
                            m.deliveries
                        );
                        applied.lock().unwrap().push(key);
                        Ok(())
                    }
                })
                .await
        })
    };

    // 4. The malformed change lands in the dead-letter station.
    let deadline = Instant::now() + Duration::from_secs(30);
    let letters = loop {
        let letters = client.dead_letters(STATION).await?;
        if !letters.is_empty() || Instant::now() > deadline {
            break letters;
        }
        // Poll interval; bounded by the deadline above.
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let letter = letters
        .first()
        .ok_or("the malformed change was not dead-lettered")?;
    println!(
        "dead letter: {} from partition {} sequence {} after {} deliveries: {}",
        String::from_utf8_lossy(&letter.payload),
        letter.origin_partition,
        letter.origin_sequence,
        letter.deliveries,
        letter.last_error
    );

    // 5. Payroll learns to parse written amounts; the dead letter is replayed.
    strict.store(false, Ordering::SeqCst);
    let receipt = client.replay_dead_letter(STATION, letter.sequence).await?;
    println!(
        "replayed the dead letter -> partition {} sequence {}",
        receipt.partition, receipt.sequence
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while applied.lock().unwrap().len() < changes.len() && Instant::now() < deadline {
        // Poll interval; bounded by the deadline above.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    payroll.close().await?;
    worker.await??;
    let payroll_count = applied.lock().unwrap().len();
    println!(
        "payroll applied {payroll_count} of {} changes",
        changes.len()
    );

    // 6. A new audit group replays the whole history from the start.
    let audit = client
        .consumer(STATION, "audit", ConsumerOptions::default())
        .await?;
    let mut per_employee: HashMap<String, usize> = HashMap::new();
    let mut audited = 0;
    while audited < changes.len() + 1 {
        let Ok(Some(delivery)) = tokio::time::timeout(Duration::from_secs(10), audit.next()).await
        else {
            break;
        };
        let delivery = delivery?;
        *per_employee
            .entry(delivery.key.clone().unwrap_or_default())
            .or_default() += 1;
        audited += 1;
        delivery.ack()?;
    }
    audit.close().await?;
    let mut summary: Vec<_> = per_employee.into_iter().collect();
    summary.sort();
    println!("audit replayed {audited} messages (the replayed one included): {summary:?}");

    let station = client.station(STATION).await?;
    println!(
        "station {STATION:?}: {} messages stored, {} dead letters; done in {:?}",
        station.messages,
        station.dead_letters,
        started.elapsed()
    );
    if payroll_count != changes.len() || audited != changes.len() + 1 || station.dead_letters != 0 {
        return Err("the quickstart did not end as expected".into());
    }
    println!("quickstart OK");
    Ok(())
}
