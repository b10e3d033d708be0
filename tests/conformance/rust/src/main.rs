//! Conformance runner for Rust: carries out operations read from stdin (one
//! JSON object per line) with the jetstation crate and answers each on
//! stdout. It reports what happened; tests/conformance/run.py judges it.

use std::{
    collections::{HashMap, HashSet},
    io::Write,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use base64::{Engine, engine::general_purpose::STANDARD as B64};
use jetstation::{
    Client, ConnectOptions, Consumer, ConsumerOptions, Delivery, Message, Producer,
    ProducerOptions, SchemaDefinition, StartPosition, StationConfig, WhenFull,
};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};

type Outcome = Result<Value, (String, String)>;

fn fail(e: jetstation::Error) -> (String, String) {
    (e.kind().as_str().to_string(), e.to_string())
}

fn unexpected(text: impl Into<String>) -> (String, String) {
    ("unexpected".into(), text.into())
}

fn answer(value: &Value) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{value}");
    let _ = out.flush();
}

fn seconds(v: &Value) -> Option<Duration> {
    v.as_f64().map(Duration::from_secs_f64)
}

/// Contract options (snake_case, seconds, RFC 3339) into the core's
/// settings, through the core's own parsers and converters.
fn contract_options<T>(
    options: &Value,
    target: &mut T,
    apply: impl Fn(&mut T, &str, &Value) -> jetstation::Result<bool>,
) -> Result<(), (String, String)> {
    for (name, value) in options.as_object().into_iter().flatten() {
        if !apply(target, name, value).map_err(fail)? {
            return Err(unexpected(format!("no option {name} in Rust")));
        }
    }
    Ok(())
}

fn secs(name: &str, v: &Value) -> jetstation::Result<Duration> {
    jetstation::convert::seconds(name, v.as_f64().unwrap_or(f64::NAN))
}

fn word<T: std::str::FromStr<Err = jetstation::Error>>(v: &Value) -> jetstation::Result<T> {
    v.as_str().unwrap_or_default().parse()
}

fn station_setting(c: &mut StationConfig, name: &str, v: &Value) -> jetstation::Result<bool> {
    match name {
        "partitions" => c.partitions = v.as_u64().unwrap_or(0) as u32,
        "replicas" => c.replicas = v.as_u64().unwrap_or(0) as usize,
        "storage" => c.storage = word(v)?,
        "max_age" => c.max_age = Some(secs(name, v)?),
        "delete_grace" => c.delete_grace = Some(secs(name, v)?),
        "max_bytes" => c.max_bytes = v.as_u64(),
        "max_messages" => c.max_messages = v.as_u64(),
        "dedup_window" => c.dedup_window = secs(name, v)?,
        "max_deliveries" => c.max_deliveries = v.as_u64().unwrap_or(0) as u32,
        "compaction" => c.compaction = v.as_bool().unwrap_or(false),
        "schema" => *c = c.clone().schema(v.as_str().unwrap_or_default()),
        _ => return Ok(false),
    }
    Ok(true)
}

fn producer_option(o: &mut ProducerOptions, name: &str, v: &Value) -> jetstation::Result<bool> {
    match name {
        "max_batch_messages" => o.max_batch_messages = v.as_u64().unwrap_or(0) as usize,
        "max_batch_bytes" => o.max_batch_bytes = v.as_u64().unwrap_or(0) as usize,
        "linger" => o.linger = secs(name, v)?,
        "max_in_flight" => o.max_in_flight = v.as_u64().unwrap_or(0) as usize,
        "buffer_bytes" => o.buffer_bytes = v.as_u64().unwrap_or(0) as usize,
        "when_full" => o.when_full = word(v)?,
        "delivery_timeout" => o.delivery_timeout = secs(name, v)?,
        "producer_id" => o.producer_id = v.as_str().map(String::from),
        _ => return Ok(false),
    }
    Ok(true)
}

fn consumer_option(o: &mut ConsumerOptions, name: &str, v: &Value) -> jetstation::Result<bool> {
    match name {
        "concurrency" => o.concurrency = v.as_u64().unwrap_or(0) as usize,
        "start" => o.start = word(v)?,
        "start_sequence" => o.start = StartPosition::sequence(v.as_u64().unwrap_or(0))?,
        "start_time" => o.start = word(v)?,
        "ack_wait" => o.ack_wait = secs(name, v)?,
        "max_ack_pending" => o.max_ack_pending = v.as_u64().unwrap_or(0) as usize,
        "redelivery_delay" => o.redelivery_delay = secs(name, v)?,
        "max_redelivery_delay" => o.max_redelivery_delay = secs(name, v)?,
        "fetch_batch" => o.fetch_batch = v.as_u64().unwrap_or(0) as usize,
        "handover_timeout" => o.handover_timeout = secs(name, v)?,
        "exactly_once" => o.exactly_once = v.as_bool().unwrap_or(false),
        "exactly_once_retention" => o.exactly_once_retention = secs(name, v)?,
        _ => return Ok(false),
    }
    Ok(true)
}

fn text(v: &Value, name: &str) -> String {
    v[name].as_str().unwrap_or_default().to_string()
}

/// The messages a `generate` spec stands for (same in every runner).
fn generated(spec: &Value) -> Vec<Value> {
    let count = spec["count"].as_u64().unwrap_or(0);
    let keys = spec["keys"].as_u64().unwrap_or(0);
    let size = spec["size"].as_u64().unwrap_or(0) as usize;
    let prefix = spec["prefix"].as_str().unwrap_or("m-");
    (0..count)
        .map(|i| {
            let mut payload = format!("{prefix}{i}");
            while payload.len() < size {
                payload.push('.');
            }
            if keys > 0 {
                json!({"payload": payload, "key": format!("k-{}", i % keys)})
            } else {
                json!({"payload": payload})
            }
        })
        .collect()
}

#[derive(Default)]
struct Runner {
    clients: HashMap<String, Client>,
    producers: HashMap<String, Producer>,
    joined: HashMap<String, Consumer>,
}

impl Runner {
    fn client(&self, op: &Value) -> Result<Client, (String, String)> {
        let name = op["client"].as_str().unwrap_or("main");
        self.clients
            .get(name)
            .cloned()
            .ok_or_else(|| unexpected(format!("no client {name}")))
    }

    async fn perform(&mut self, op: &Value) -> Outcome {
        let kind = op["op"].as_str().unwrap_or_default();
        if kind == "connect" {
            let mut options = ConnectOptions::new(text(op, "url"));
            if let Some(ns) = op["namespace"].as_str() {
                options = options.namespace(ns);
            }
            if let Some(token) = op["token"].as_str() {
                options = options.token(token);
            }
            if let (Some(u), Some(p)) = (op["user"].as_str(), op["password"].as_str()) {
                options = options.user_password(u, p);
            }
            if let Some(t) = seconds(&op["request_timeout"]) {
                options = options.request_timeout(t);
            }
            let extra = &op["options"];
            if let Some(path) = extra["creds_file"].as_str() {
                options.auth =
                    jetstation::Auth::from_parts(None, None, None, None, Some(path.into()))
                        .map_err(fail)?;
            }
            if let Some(required) = extra["tls_required"].as_bool() {
                options.tls.required = required;
            }
            let client = Client::connect(options).await.map_err(fail)?;
            self.clients
                .insert(op["as"].as_str().unwrap_or("main").to_string(), client);
            return Ok(json!({}));
        }
        let client = self.client(op)?;
        match kind {
            "create_station" | "update_station" => {
                let mut config = StationConfig::default();
                if let Some(n) = op["partitions"].as_u64() {
                    config = config.partitions(n as u32);
                }
                if let Some(n) = op["max_deliveries"].as_u64() {
                    config = config.max_deliveries(n as u32);
                }
                if let Some(s) = op["schema"].as_str() {
                    config = config.schema(s);
                }
                if let Some(n) = op["replicas"].as_u64() {
                    config = config.replicas(n as usize);
                }
                contract_options(&op["settings"], &mut config, station_setting)?;
                let name = text(op, "name");
                let s = if kind == "create_station" {
                    client.create_station(&name, config).await
                } else {
                    client.update_station(&name, config).await
                }
                .map_err(fail)?;
                Ok(
                    json!({"name": s.name, "partitions": s.config.partitions, "max_deliveries": s.config.max_deliveries}),
                )
            }
            "delete_key" => {
                self.station_producer(&client, op)
                    .await?
                    .delete(text(op, "key"))
                    .await
                    .map_err(fail)?;
                Ok(json!({}))
            }
            "station_stats" => {
                let s = client
                    .station_stats(&text(op, "station"))
                    .await
                    .map_err(fail)?;
                Ok(json!({
                    "partitions": s.partitions.len(),
                    "messages": s.partitions.iter().map(|p| p.messages).sum::<u64>(),
                    "dead_letters": s.dead_letters,
                    "state_keys": s.state_keys,
                }))
            }
            "purge_dead_letters" => {
                let purged = client
                    .purge_dead_letters(&text(op, "station"))
                    .await
                    .map_err(fail)?;
                Ok(json!({ "purged": purged }))
            }
            "groups" => {
                let groups = client.groups(&text(op, "station")).await.map_err(fail)?;
                Ok(json!({
                    "names": groups.iter().map(|g| g.group.clone()).collect::<Vec<_>>(),
                    "members": groups.iter().map(|g| g.members.len()).sum::<usize>(),
                    "lag": groups.iter().flat_map(|g| &g.partitions).map(|p| p.lag).sum::<u64>(),
                }))
            }
            "latest" => {
                let entry = client
                    .latest(&text(op, "station"), &text(op, "key"))
                    .await
                    .map_err(fail)?;
                Ok(
                    json!({"payload": entry.map(|e| String::from_utf8_lossy(&e.payload).into_owned())}),
                )
            }
            "snapshot" => {
                let mut snapshot = client.snapshot(&text(op, "station")).await.map_err(fail)?;
                let mut entries = serde_json::Map::new();
                while let Some(e) = snapshot.next().await {
                    let e = e.map_err(fail)?;
                    entries.insert(e.key, json!(String::from_utf8_lossy(&e.payload)));
                }
                Ok(json!({"entries": entries}))
            }
            "delete_station" => {
                client
                    .delete_station(&text(op, "name"))
                    .await
                    .map_err(fail)?;
                Ok(json!({}))
            }
            "close_client" => {
                client.close().await.map_err(fail)?;
                Ok(json!({}))
            }
            "station" => {
                let s = client.station(&text(op, "name")).await.map_err(fail)?;
                Ok(json!({"messages": s.messages, "dead_letters": s.dead_letters}))
            }
            "producer" => {
                let mut options = ProducerOptions::default();
                if let Some(n) = op["buffer_bytes"].as_u64() {
                    options = options.buffer_bytes(n as usize);
                }
                if let Some(t) = seconds(&op["delivery_timeout"]) {
                    options = options.delivery_timeout(t);
                }
                if op["fail_when_full"].as_bool() == Some(true) {
                    options = options.when_full(WhenFull::FailFast);
                }
                contract_options(&op["options"], &mut options, producer_option)?;
                let p = client
                    .producer(&text(op, "station"), options)
                    .await
                    .map_err(fail)?;
                self.producers.insert(text(op, "as"), p);
                Ok(json!({}))
            }
            "close_producer" => {
                let p = self.producers.get(&text(op, "producer")).cloned();
                p.ok_or_else(|| unexpected("no such producer"))?
                    .close()
                    .await
                    .map_err(fail)?;
                Ok(json!({}))
            }
            "send" => self.send(&client, op, false).await,
            "send_batch" => self.send(&client, op, true).await,
            "join" => {
                let c = client
                    .consumer(
                        &text(op, "station"),
                        &text(op, "group"),
                        consumer_options(op)?,
                    )
                    .await
                    .map_err(fail)?;
                self.joined.insert(text(op, "as"), c);
                Ok(json!({}))
            }
            "consume" => self.consume(&client, op).await,
            "dead_letters" => {
                let deadline = Instant::now() + seconds(&op["timeout"]).unwrap_or_default();
                let at_least = op["at_least"].as_u64().unwrap_or(0) as usize;
                let letters = loop {
                    let letters = client
                        .dead_letters(&text(op, "station"))
                        .await
                        .map_err(fail)?;
                    if letters.len() >= at_least || Instant::now() > deadline {
                        break letters;
                    }
                    // Dead letters are written as the last nack is processed.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                };
                let list: Vec<Value> = letters
                    .iter()
                    .map(|d| {
                        json!({
                            "sequence": d.sequence, "origin_station": d.origin_station,
                            "origin_partition": d.origin_partition, "origin_sequence": d.origin_sequence,
                            "group": d.group, "deliveries": d.deliveries, "last_error": d.last_error,
                            "key": d.key, "payload_b64": B64.encode(&d.payload),
                        })
                    })
                    .collect();
                Ok(json!({ "dead_letters": list }))
            }
            "replay_dead_letter" => {
                let r = client
                    .replay_dead_letter(&text(op, "station"), op["sequence"].as_u64().unwrap_or(0))
                    .await
                    .map_err(fail)?;
                Ok(json!({"partition": r.partition, "sequence": r.sequence}))
            }
            "register_schema" => {
                let source = text(op, "source");
                let definition = match op["format"].as_str() {
                    Some("json_schema") => SchemaDefinition::json_schema(source),
                    Some("protobuf") => {
                        SchemaDefinition::protobuf(source, text(op, "message_type"))
                    }
                    Some("avro") => SchemaDefinition::avro(source),
                    other => return Err(unexpected(format!("format {other:?}"))),
                };
                let v = client
                    .register_schema(&text(op, "name"), definition)
                    .await
                    .map_err(fail)?;
                Ok(json!({"version": v.version}))
            }
            "encode" => {
                let bytes = client
                    .encode_with_schema(&text(op, "schema"), None, &op["value"])
                    .await
                    .map_err(fail)?;
                Ok(json!({"payload_b64": B64.encode(bytes)}))
            }
            other => Err(unexpected(format!("unknown operation {other}"))),
        }
    }

    /// The producer a step's client keeps for its station (created once).
    async fn station_producer(
        &mut self,
        client: &Client,
        op: &Value,
    ) -> Result<Producer, (String, String)> {
        let name = format!(
            "{}/{}",
            op["client"].as_str().unwrap_or("main"),
            text(op, "station")
        );
        if !self.producers.contains_key(&name) {
            let p = client
                .producer(&text(op, "station"), ProducerOptions::default())
                .await
                .map_err(fail)?;
            self.producers.insert(name.clone(), p);
        }
        Ok(self.producers[&name].clone())
    }

    /// `batch`: the messages go in one `send_batch` call, else each is enqueued.
    async fn send(&mut self, client: &Client, op: &Value, batch: bool) -> Outcome {
        let producer = match op["producer"].as_str() {
            Some(name) => self
                .producers
                .get(name)
                .cloned()
                .ok_or_else(|| unexpected("no such producer"))?,
            None => self.station_producer(client, op).await?,
        };
        let mut messages: Vec<Value> = op["messages"].as_array().cloned().unwrap_or_default();
        if !op["generate"].is_null() {
            messages.extend(generated(&op["generate"]));
        }
        let mut outgoing = Vec::with_capacity(messages.len());
        for m in &messages {
            let payload: Vec<u8> = if !m["value"].is_null() {
                client
                    .encode_with_schema(&text(m, "schema"), None, &m["value"])
                    .await
                    .map_err(fail)?
            } else if let Some(b) = m["payload_b64"].as_str() {
                B64.decode(b).map_err(|e| unexpected(e.to_string()))?
            } else {
                text(m, "payload").into_bytes()
            };
            let mut message = Message::new(payload);
            if let Some(k) = m["key"].as_str() {
                message = message.key(k);
            }
            if let Some(id) = m["msg_id"].as_str() {
                message = message.msg_id(id);
            }
            if let Some(h) = m["headers"].as_object() {
                for (name, value) in h {
                    message = message.header(name, value.as_str().unwrap_or_default());
                }
            }
            outgoing.push(message);
        }
        let results = if batch {
            producer.send_batch(outgoing).await
        } else {
            let mut handles = Vec::with_capacity(outgoing.len());
            for message in outgoing {
                handles.push(producer.enqueue(message).await.map_err(fail)?);
            }
            let mut results = Vec::with_capacity(handles.len());
            for h in handles {
                results.push(h.await);
            }
            results
        };
        let mut receipts = Vec::with_capacity(results.len());
        for r in results {
            let r = r.map_err(fail)?;
            receipts.push(json!({"partition": r.partition, "sequence": r.sequence, "duplicate": r.duplicate, "msg_id": r.msg_id}));
        }
        Ok(json!({ "receipts": receipts }))
    }

    async fn consume(&mut self, client: &Client, op: &Value) -> Outcome {
        let consumer = match op["consumer"].as_str() {
            Some(name) => self
                .joined
                .remove(name)
                .ok_or_else(|| unexpected("no such consumer"))?,
            None => client
                .consumer(
                    &text(op, "station"),
                    &text(op, "group"),
                    consumer_options(op)?,
                )
                .await
                .map_err(fail)?,
        };
        let spec = Arc::new(Spec::from(op));
        let state = Arc::new(Mutex::new(State {
            until: spec.until.clone(),
            ..State::default()
        }));
        let (done_tx, mut done_rx) = tokio::sync::watch::channel(false);
        let started = Instant::now();
        let decoder = op["decode"]
            .as_str()
            .map(|s| (client.clone(), s.to_string()));
        let pump = {
            let (consumer, state, spec) = (consumer.clone(), state.clone(), spec.clone());
            tokio::spawn(async move {
                let mut running = tokio::task::JoinSet::new();
                while let Some(next) = consumer.next().await {
                    let Ok(delivery) = next else { break };
                    let (state, spec, done, decoder) = (
                        state.clone(),
                        spec.clone(),
                        done_tx.clone(),
                        decoder.clone(),
                    );
                    running.spawn(handle(delivery, state, spec, done, decoder, started));
                }
                while running.join_next().await.is_some() {}
            })
        };
        let finished = state.lock().unwrap().finished(&spec);
        let mut timed_out = false;
        if !finished {
            let wait = done_rx.wait_for(|d| *d);
            timed_out = tokio::time::timeout(spec.timeout, wait).await.is_err();
        }
        consumer.close().await.map_err(fail)?;
        let _ = pump.await;
        let mut s = state.lock().unwrap();
        let mut result =
            json!({"messages": std::mem::take(&mut s.records), "timed_out": timed_out});
        if spec.settle_twice {
            result["second_settle"] = json!(s.second_settle);
        }
        Ok(result)
    }
}

fn consumer_options(op: &Value) -> Result<ConsumerOptions, (String, String)> {
    let mut o = ConsumerOptions::default();
    match &op["start"] {
        Value::String(s) if s == "latest" => o = o.start(StartPosition::Latest),
        Value::String(_) => o = o.start(StartPosition::Earliest),
        Value::Object(m) => {
            o = o.start(StartPosition::Sequence(m["sequence"].as_u64().unwrap_or(1)));
        }
        _ => {}
    }
    if let Some(n) = op["concurrency"].as_u64() {
        o = o.concurrency(n as usize);
    }
    if let Some(d) = seconds(&op["ack_wait"]) {
        o = o.ack_wait(d);
    }
    if let Some(d) = seconds(&op["handover_timeout"]) {
        o = o.handover_timeout(d);
    }
    if let Some(d) = seconds(&op["redelivery_delay"]) {
        let max = o.max_redelivery_delay;
        o = o.redelivery_delay(d, max);
    }
    contract_options(&op["options"], &mut o, consumer_option)?;
    Ok(o)
}

/// How a consume step settles messages and when it stops.
struct Spec {
    nack: HashMap<String, (u64, Duration)>,
    fail: HashSet<String>,
    until: HashSet<String>,
    count: usize,
    min_deliveries: usize,
    crash_after: Option<usize>,
    /// Between the last ack and the crash.
    crash_wait: Duration,
    settle_twice: bool,
    jitter: bool,
    timeout: Duration,
}

impl From<&Value> for Spec {
    fn from(op: &Value) -> Self {
        let strings = |v: &Value| -> HashSet<String> {
            v.as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|x| x.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default()
        };
        Spec {
            nack: op["nack"]
                .as_array()
                .map(|rules| {
                    rules
                        .iter()
                        .map(|r| {
                            let delay = seconds(&r["delay"]).unwrap_or_default();
                            (
                                text(r, "payload"),
                                (r["times"].as_u64().unwrap_or(0), delay),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default(),
            fail: strings(&op["fail"]),
            until: strings(&op["until_payloads"]),
            count: op["count"].as_u64().unwrap_or(0) as usize,
            min_deliveries: op["min_deliveries"].as_u64().unwrap_or(0) as usize,
            crash_after: op["crash_after"].as_u64().map(|n| n as usize),
            crash_wait: seconds(&op["crash_wait"]).unwrap_or_default(),
            settle_twice: op["settle_twice"].as_bool().unwrap_or(false),
            jitter: op["concurrency"].as_u64().unwrap_or(1) > 1,
            timeout: seconds(&op["timeout"]).unwrap_or(Duration::from_secs(30)),
        }
    }
}

#[derive(Default)]
struct State {
    records: Vec<Value>,
    /// The error kind of acking a message twice, when a step tries it.
    second_settle: Option<String>,
    acked: usize,
    until: HashSet<String>,
    /// Between the last ack and a crash: deliveries taken then are never settled.
    crashing: bool,
    held: Vec<Delivery>,
}

impl State {
    fn finished(&self, spec: &Spec) -> bool {
        self.acked >= spec.count
            && self.until.is_empty()
            && self.records.len() >= spec.min_deliveries
    }
}

async fn handle(
    delivery: Delivery,
    state: Arc<Mutex<State>>,
    spec: Arc<Spec>,
    done: tokio::sync::watch::Sender<bool>,
    decoder: Option<(Client, String)>,
    started: Instant,
) {
    {
        let mut s = state.lock().unwrap();
        if s.crashing {
            s.held.push(delivery);
            return;
        }
    }
    let payload_text = String::from_utf8_lossy(&delivery.payload).to_string();
    let mut record = json!({
        "payload_b64": B64.encode(&delivery.payload),
        "key": delivery.key,
        "headers": delivery.headers.iter().map(|(n, v)| json!([n, v])).collect::<Vec<_>>(),
        "msg_id": delivery.msg_id,
        "partition": delivery.partition,
        "sequence": delivery.sequence,
        "deliveries": delivery.deliveries,
        "t_ms": started.elapsed().as_millis() as u64,
    });
    if let Some((client, schema)) = decoder {
        let decoded = client
            .decode_with_schema(&schema, None, &delivery.payload)
            .await;
        // Only some messages are of the schema: others record null.
        record["decoded"] = match decoded {
            Ok(v) => Value::String(v.to_string()),
            Err(_) => Value::Null,
        };
    }
    if spec.jitter {
        // Handlers of different keys overlap and finish out of order.
        let micros = rand::random_range(0..1000);
        tokio::time::sleep(Duration::from_micros(micros)).await;
    }
    let deliveries = delivery.deliveries;
    let mut crash = false;
    {
        let mut s = state.lock().unwrap();
        if spec.fail.contains(&payload_text) {
            record["action"] = json!("nack");
            s.records.push(record);
            let _ = delivery.nack_with_reason(format!("rejected by handler: {payload_text}"), None);
        } else if let Some((times, delay)) = spec
            .nack
            .get(&payload_text)
            .filter(|(t, _)| deliveries <= *t)
        {
            let _ = times;
            record["action"] = json!("nack");
            s.records.push(record);
            let _ = delivery.nack(Some(*delay));
        } else {
            record["action"] = json!("ack");
            s.records.push(record);
            let _ = delivery.ack();
            if spec.settle_twice {
                s.second_settle = Some(match delivery.ack() {
                    Ok(()) => "none".into(),
                    Err(e) => e.kind().as_str().into(),
                });
            }
            s.acked += 1;
            s.until.remove(&payload_text);
            crash = spec.crash_after.is_some_and(|n| s.acked >= n) && !s.crashing;
        }
        if crash {
            s.crashing = true;
        }
        if !crash && s.finished(&spec) {
            let _ = done.send(true);
        }
    }
    if crash {
        tokio::time::sleep(spec.crash_wait).await;
        let s = state.lock().unwrap();
        answer(&json!({"ok": {"messages": s.records, "timed_out": false}}));
        // A crash: nothing is closed, nothing more is committed.
        std::process::exit(0);
    }
}

#[tokio::main]
async fn main() {
    let mut runner = Runner::default();
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        if line.trim().is_empty() {
            continue;
        }
        let op: Value = match serde_json::from_str(&line) {
            Ok(v) => v,
            Err(e) => {
                answer(&json!({"error": {"kind": "unexpected", "message": e.to_string()}}));
                continue;
            }
        };
        match runner.perform(&op).await {
            Ok(v) => answer(&json!({ "ok": v })),
            Err((kind, message)) => answer(&json!({"error": {"kind": kind, "message": message}})),
        }
    }
    for p in runner.producers.values() {
        let _ = p.close().await;
    }
    for (_, c) in runner.clients.drain() {
        let _ = c.close().await;
    }
}
