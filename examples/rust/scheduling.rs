//! Scheduling service (Rust), part of the cross-language demo (`make demo`):
//! a consumer group that receives every employee change, in order per
//! employee, and keeps each employee's department for the rota.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Instant,
};

use jetstation::{Client, ConnectOptions, ConsumerOptions};

#[derive(Default)]
struct Rota {
    department: HashMap<String, (u64, String)>,
    handled: usize,
    out_of_order: usize,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::var("NATS_URL")?;
    let expected: usize = std::env::var("EXPECTED")?.parse()?;
    let client = Client::connect(ConnectOptions::new(url).name("scheduling")).await?;
    let consumer = client
        .consumer(
            "employee-changes",
            "scheduling",
            ConsumerOptions::default().concurrency(8),
        )
        .await?;
    let started = Instant::now();
    let rota = Arc::new(Mutex::new(Rota::default()));
    let (done, mut finished) = tokio::sync::watch::channel(false);
    let worker = {
        let (consumer, rota) = (consumer.clone(), rota.clone());
        tokio::spawn(async move {
            consumer
                .consume(move |message| {
                    let (rota, done) = (rota.clone(), done.clone());
                    async move {
                        let change: serde_json::Value = serde_json::from_slice(&message.payload)
                            .map_err(|e| format!("not JSON: {e}"))?;
                        let id = change["id"].as_str().unwrap_or_default().to_string();
                        let version = change["version"].as_u64().unwrap_or_default();
                        let department = change["department"].as_str().unwrap_or_default();
                        let mut rota = rota.lock().unwrap();
                        let previous = rota.department.get(&id).map_or(0, |(v, _)| *v);
                        if version <= previous {
                            rota.out_of_order += 1;
                        }
                        rota.department
                            .insert(id, (version, department.to_string()));
                        rota.handled += 1;
                        if rota.handled >= expected {
                            let _ = done.send(true);
                        }
                        Ok::<(), String>(())
                    }
                })
                .await
        })
    };
    finished.wait_for(|d| *d).await?;
    consumer.close().await?;
    worker.await??;
    let seconds = started.elapsed().as_secs_f64();
    {
        let rota = rota.lock().unwrap();
        println!(
            "{} changes handled for {} employees, {} out of order",
            rota.handled,
            rota.department.len(),
            rota.out_of_order
        );
        println!(
            "RESULT {}",
            serde_json::json!({
                "handled": rota.handled, "employees": rota.department.len(),
                "outOfOrder": rota.out_of_order, "seconds": seconds,
            })
        );
    }
    client.close().await?;
    Ok(())
}
