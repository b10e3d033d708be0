//! `chaos run`: the cluster, the workers, the faults, then the checker.

use std::{
    collections::HashSet,
    fs,
    io::Write,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::Arc,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use jetstation::{Client, ConnectOptions, StationConfig};
use jetstation_harness::{Cluster, Relay};
use serde_json::json;

const STATION: &str = "chaos";
const GROUP: &str = "sync";
const PARTITIONS: u32 = 4;
/// The members' `ack_wait`, unless `CHAOS_ACK_WAIT_MS` says otherwise (a
/// run with the default, 30,000, shows the pauses a short one hides).
fn ack_wait_ms() -> u64 {
    std::env::var("CHAOS_ACK_WAIT_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3000)
}
const HANDOVER_MS: u64 = 2000;

/// One fault, `at` seconds after the flow starts, lasting `hold` seconds.
#[derive(Debug, Clone, Copy)]
enum Fault {
    /// SIGKILL node `i`, start it again after `hold`.
    KillNode(usize),
    /// SIGSTOP node `i` for `hold` (longer than `ack_wait`), then SIGCONT.
    FreezeNode(usize),
    /// Break every client connection (through the relays).
    CutConnections,
    /// SIGKILL member process `i`, start it again after `hold`.
    KillMember(usize),
    /// SIGSTOP member process `i` for `hold` (longer than the handover
    /// timeout, so the group takes its partitions), then SIGCONT: a member
    /// that comes back from a pause (a VM or a garbage collector) still
    /// holding messages.
    FreezeMember(usize),
    /// Cut member `i` off the network for `hold` (longer than the handover
    /// timeout), then let it back: its relays go silent, no socket closes,
    /// and the member goes on running (a network partition around one
    /// service).
    IsolateMember(usize),
}

impl Fault {
    fn name(self) -> String {
        match self {
            Fault::KillNode(i) => format!("sigkill node n{}", i + 1),
            Fault::FreezeNode(i) => format!("sigstop node n{}", i + 1),
            Fault::CutConnections => "cut client connections".into(),
            Fault::KillMember(i) => format!("sigkill member m{}", i + 1),
            Fault::FreezeMember(i) => format!("sigstop member m{}", i + 1),
            Fault::IsolateMember(i) => format!("isolate member m{}", i + 1),
        }
    }
}

struct Plan {
    /// Seconds the producer sends.
    duration: u64,
    rate: u64,
    keys: u64,
    /// How long a member's handler works on each message (a database
    /// write, say): the longer, the more messages a member holds when a
    /// fault hits it.
    handler_ms: u64,
    faults: Vec<(f64, Fault, f64)>,
}

impl Plan {
    /// One round of every fault. Node faults are 10 s apart, so a node
    /// that comes back has caught up before the next one goes (killing the
    /// next node while one still catches up leaves a partition without a
    /// quorum, which is a two-node loss, not what this suite claims). The
    /// freeze outlasts `ack_wait`; the faults after it wait for its end, so
    /// a run with the default `ack_wait` (30 s) meets the same faults one
    /// after the other, only later. The member freeze and the member's cut
    /// off the network come last.
    fn cycle(offset: f64) -> Vec<(f64, Fault, f64)> {
        let freeze = Self::freeze();
        let cut = 34.0 + freeze + 4.0;
        vec![
            (offset + 4.0, Fault::KillNode(0), 3.5),
            (offset + 14.0, Fault::KillNode(1), 3.5),
            (offset + 24.0, Fault::KillNode(2), 3.5),
            (offset + 34.0, Fault::FreezeNode(0), freeze),
            (offset + cut, Fault::CutConnections, 0.0),
            (offset + cut + 3.0, Fault::KillMember(1), 2.0),
            (
                offset + cut + 8.0,
                Fault::FreezeMember(0),
                Self::member_freeze(),
            ),
            (
                offset + cut + 12.0 + Self::member_freeze(),
                Fault::IsolateMember(1),
                Self::member_freeze(),
            ),
        ]
    }

    /// How long the freeze lasts: a second longer than `ack_wait`.
    fn freeze() -> f64 {
        ack_wait_ms() as f64 / 1000.0 + 1.0
    }

    /// How long a member is frozen (or cut off): twice the handover
    /// timeout, so the other member has taken its partitions and handled
    /// messages of them before it comes back.
    fn member_freeze() -> f64 {
        2.0 * HANDOVER_MS as f64 / 1000.0
    }

    /// Seconds of one round: its last fault is over 3 s before the round
    /// ends, and a round lasts at least 50 s (exactly that with the suite's
    /// `ack_wait` of 3 s).
    fn cycle_length() -> f64 {
        let (at, _, hold) = *Self::cycle(0.0).last().expect("a round has faults");
        (at + hold + 3.0).max(50.0)
    }

    fn short() -> Self {
        Self {
            duration: Self::cycle_length() as u64,
            rate: 500,
            keys: 100,
            handler_ms: 20,
            faults: Self::cycle(0.0),
        }
    }

    /// Exactly once: 50,000 messages or more while members are killed and the
    /// server (or every node in turn) is killed and started again.
    fn exactly_once(single: bool) -> Self {
        let faults = if single {
            vec![
                (6.0, Fault::KillMember(1), 2.0),
                (14.0, Fault::KillNode(0), 3.0),
                (24.0, Fault::KillMember(0), 2.0),
                (32.0, Fault::KillNode(0), 3.0),
                (42.0, Fault::KillMember(1), 2.0),
                (52.0, Fault::FreezeMember(0), Self::member_freeze()),
                (62.0, Fault::IsolateMember(1), Self::member_freeze()),
            ]
        } else {
            vec![
                (4.0, Fault::KillNode(0), 3.5),
                (12.0, Fault::KillMember(1), 2.0),
                (18.0, Fault::KillNode(1), 3.5),
                (28.0, Fault::KillNode(2), 3.5),
                (38.0, Fault::KillMember(0), 2.0),
                (44.0, Fault::CutConnections, 0.0),
                (48.0, Fault::FreezeMember(1), Self::member_freeze()),
                (54.0, Fault::IsolateMember(0), Self::member_freeze()),
            ]
        };
        // 50,000 messages or more. The cluster run (Rust workers): 60 s at
        // 1,000 per second. The one-server run (Python workers): 100 s at 600
        // per second, a rate two Python members recording every handled
        // message keep up with on a 2-core machine that also runs the server
        // and the producer (at 1,000 per second they fell behind there, and
        // the Python producer itself reached about 800).
        let (duration, rate) = if single { (100, 600) } else { (60, 1000) };
        Self {
            duration,
            rate,
            keys: 100,
            handler_ms: 5,
            faults,
        }
    }

    fn long() -> Self {
        let mut faults = Vec::new();
        for c in 0..4 {
            faults.extend(Self::cycle(c as f64 * Self::cycle_length()));
        }
        Self {
            duration: 4 * Self::cycle_length() as u64,
            rate: 1000,
            keys: 100,
            handler_ms: 5,
            faults,
        }
    }
}

/// A file of this suite, from the tree the run starts in (the scripts start
/// in its root): a binary built in another clone names that clone's files,
/// and cargo does not rebuild it when only the clone's path changed.
fn own_file(name: &str) -> PathBuf {
    let here = Path::new("tests/chaos").join(name);
    match here.exists() {
        true => here,
        false => Path::new(env!("CARGO_MANIFEST_DIR")).join(name),
    }
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

struct Workers {
    lang: String,
    out: PathBuf,
    /// The producer's way to the nodes.
    relay_urls: String,
    /// Each member's own way to the nodes (cut off alone when isolated).
    member_urls: Vec<String>,
    plan_env: Vec<(String, String)>,
}

impl Workers {
    fn command(&self, role: &str) -> Command {
        let mut cmd = match self.lang.as_str() {
            "python" => {
                let python = std::env::var("CHAOS_PYTHON").unwrap_or_else(|_| "python3".into());
                let mut c = Command::new(python);
                c.arg(own_file("worker.py")).arg(role);
                c
            }
            _ => {
                let mut c = Command::new(std::env::current_exe().expect("own path"));
                c.arg(role);
                c
            }
        };
        cmd.envs(self.plan_env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("CHAOS_URLS", &self.relay_urls)
            .env("CHAOS_STATION", STATION)
            .env("CHAOS_GROUP", GROUP)
            .env("CHAOS_PARTITIONS", PARTITIONS.to_string())
            .env("CHAOS_ACK_WAIT_MS", ack_wait_ms().to_string())
            .env("CHAOS_HANDOVER_MS", HANDOVER_MS.to_string())
            .stdin(Stdio::null());
        cmd
    }

    fn spawn(&self, role: &str, name: &str) -> Child {
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.out.join(format!("{name}.log")))
            .expect("worker log");
        let mut cmd = self.command(role);
        if role == "consume" {
            let index: usize = name[1..].parse().expect("members are named m1, m2, ...");
            cmd.env("CHAOS_MEMBER", name)
                .env("CHAOS_URLS", &self.member_urls[index - 1]);
        }
        cmd.env("CHAOS_HISTORY", self.out.join(format!("{name}.jsonl")))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start the {role} worker: {e}"))
    }
}

pub(crate) async fn run(args: &[String]) -> i32 {
    let mut lang = "rust".to_string();
    let mut long = std::env::var("CHAOS_LONG").is_ok_and(|v| v == "1");
    let (mut exactly_once, mut single) = (false, false);
    let mut out: Option<PathBuf> = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--lang" => lang = it.next().cloned().unwrap_or_default(),
            "--long" => long = true,
            "--exactly-once" => exactly_once = true,
            "--single" => single = true,
            "--out" => out = it.next().map(PathBuf::from),
            other => {
                eprintln!("chaos run: unknown argument {other:?}");
                return 2;
            }
        }
    }
    let plan = match (exactly_once, long) {
        (true, _) => Plan::exactly_once(single),
        (false, true) => Plan::long(),
        (false, false) => Plan::short(),
    };
    let mode = match (exactly_once, single) {
        (true, true) => "exactly once, one server",
        (true, false) => "exactly once, 3-node cluster",
        (false, _) if long => "long",
        (false, _) => "short",
    };
    let label = format!("{lang}, {mode}");
    let out = out.unwrap_or_else(|| std::env::temp_dir().join(format!("jetstation-chaos-{lang}")));
    let _ = fs::remove_dir_all(&out);
    fs::create_dir_all(&out).expect("output directory");
    let replicas = if single { 1 } else { 3 };
    println!(
        "chaos ({label}): {}, R{replicas} station of {PARTITIONS} partitions, {} msg/s for {} s, \
         {} faults; histories in {}",
        if single {
            "one server"
        } else {
            "3-node cluster"
        },
        plan.rate,
        plan.duration,
        plan.faults.len(),
        out.display()
    );
    // What this run was, for the tables made from its histories.
    fs::write(
        out.join("run.json"),
        json!({
            "nodes": if single { 1 } else { 3 },
            "replicas": replicas,
            "partitions": PARTITIONS,
            "rate": plan.rate,
            "duration_s": plan.duration,
            "faults": plan.faults.len(),
            "handler_ms": plan.handler_ms,
        })
        .to_string(),
    )
    .expect("run description");

    let mut cluster = match single {
        true => Cluster {
            nodes: vec![jetstation_harness::NatsServer::start()],
        },
        // Clients reach the nodes only through the relays, also after a
        // reconnect: the faults that cut or silence them must reach them.
        false => Cluster::start_unadvertised(3),
    };
    let relays_to_nodes = || -> Vec<Relay> {
        cluster
            .nodes
            .iter()
            .map(|n| Relay::start(n.port()))
            .collect()
    };
    let relays = relays_to_nodes();
    let member_relays: Vec<Vec<Relay>> = (0..2).map(|_| relays_to_nodes()).collect();
    let urls_of = |relays: &[Relay]| relays.iter().map(Relay::url).collect::<Vec<_>>().join(",");
    let direct_urls = cluster.urls();
    let admin = admin_client(&direct_urls).await;
    admin
        .create_station(
            STATION,
            StationConfig::default()
                .replicas(replicas)
                .partitions(PARTITIONS)
                .max_deliveries(1000)
                .dedup_window(Duration::from_secs(120)),
        )
        .await
        .expect("create the station");

    let workers = Workers {
        lang: lang.clone(),
        out: out.clone(),
        relay_urls: urls_of(&relays),
        member_urls: member_relays.iter().map(|r| urls_of(r)).collect(),
        plan_env: vec![
            (
                "CHAOS_EXACTLY_ONCE".into(),
                if exactly_once { "1" } else { "0" }.into(),
            ),
            ("CHAOS_RATE".into(), plan.rate.to_string()),
            ("CHAOS_KEYS".into(), plan.keys.to_string()),
            ("CHAOS_HANDLER_MS".into(), plan.handler_ms.to_string()),
            ("CHAOS_DURATION".into(), plan.duration.to_string()),
        ],
    };
    let mut members: Vec<Child> = (0..2)
        .map(|i| workers.spawn("consume", &format!("m{}", i + 1)))
        .collect();
    // The flow starts once both members have joined (each writes its first
    // health record after joining).
    let joined_by = Instant::now() + Duration::from_secs(60);
    while !["m1.jsonl", "m2.jsonl"]
        .iter()
        .all(|m| has_event(&out, m, "health"))
    {
        if Instant::now() > joined_by {
            eprintln!(
                "chaos: the members did not join within 60 s; see their logs in {}",
                out.display()
            );
            return 1;
        }
        // Poll interval while the members join; bounded by `joined_by`.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut producer = workers.spawn("produce", "producer");
    let started = Instant::now();

    let max_consumers = Arc::new(std::sync::Mutex::new(Peak::default()));
    let sampler = tokio::spawn(sample_consumers(direct_urls.clone(), max_consumers.clone()));

    let mut faults_log = fs::File::create(out.join("faults.jsonl")).expect("faults log");
    let mut last_fault_end = unix_now();
    for (at, fault, hold) in &plan.faults {
        let wait = Duration::from_secs_f64(*at).saturating_sub(started.elapsed());
        // The fault schedule: each fault starts at its planned time.
        tokio::time::sleep(wait).await;
        let mut start = unix_now();
        println!(
            "  t={:>5.1}s  {}",
            started.elapsed().as_secs_f64(),
            fault.name()
        );
        match *fault {
            Fault::KillNode(i) => cluster.nodes[i].kill(),
            Fault::FreezeNode(i) => cluster.nodes[i].freeze(),
            Fault::CutConnections => relays
                .iter()
                .chain(member_relays.iter().flatten())
                .for_each(Relay::cut),
            Fault::IsolateMember(i) => member_relays[i].iter().for_each(Relay::silence),
            Fault::KillMember(i) => {
                let _ = members[i].kill();
                let _ = members[i].wait();
            }
            Fault::FreezeMember(i) => {
                signal(&members[i], "STOP");
                // From here on the member is stopped: a handler it started
                // before this ran through the freeze (see check.py).
                start = unix_now();
            }
        }
        // How long the fault lasts.
        tokio::time::sleep(Duration::from_secs_f64(*hold)).await;
        match *fault {
            Fault::KillNode(i) => cluster.nodes[i].start_again(),
            Fault::FreezeNode(i) => cluster.nodes[i].thaw(),
            Fault::CutConnections => {}
            Fault::KillMember(i) => members[i] = workers.spawn("consume", &format!("m{}", i + 1)),
            Fault::FreezeMember(i) => signal(&members[i], "CONT"),
            Fault::IsolateMember(i) => member_relays[i].iter().for_each(Relay::speak),
        }
        let end = unix_now();
        last_fault_end = end;
        let line = json!({"fault": fault.name(), "start": start, "end": end}).to_string();
        writeln!(faults_log, "{line}").expect("faults log");
    }

    // The producer sends for its duration, then waits for every result.
    let producer_limit = Duration::from_secs(plan.duration + 90);
    while producer.try_wait().ok().flatten().is_none() {
        if started.elapsed() > producer_limit {
            eprintln!("chaos: the producer did not finish; killing it");
            let _ = producer.kill();
            break;
        }
        // Poll interval while the producer drains.
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Every confirmed message must be handled before the checker's deadline:
    // `deadline_after` past the last fault, or past its own confirmation when
    // that came later (the producer's exit follows its last confirmation).
    // Stop waiting as soon as they all are.
    let producer_done = unix_now();
    let deadline_after = 2.0 * ack_wait_ms() as f64 / 1000.0 + HANDOVER_MS as f64 / 1000.0 + 10.0;
    let deadline = last_fault_end.max(producer_done) + deadline_after;
    while unix_now() < deadline + 2.0 {
        if all_handled(&out) {
            break;
        }
        // Poll interval while the members catch up.
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    for m in &mut members {
        let _ = m.kill();
        let _ = m.wait();
    }
    sampler.abort();
    let bound = PARTITIONS as usize + 4;
    let peak = max_consumers.lock().unwrap().clone();
    fs::write(
        out.join("consumers.json"),
        json!({"max": peak.count, "bound": bound, "at_max": peak.names, "at_s": peak.at})
            .to_string(),
    )
    .expect("consumers summary");
    drop(relays);
    drop(member_relays);
    drop(cluster);

    let checker = own_file("check.py");
    let status = Command::new("python3")
        .arg(checker)
        .arg(&out)
        .arg("--deadline-after")
        .arg(deadline_after.to_string())
        .arg("--label")
        .arg(&label)
        .args(exactly_once.then_some("--exactly-once"))
        .status()
        .expect("run check.py");
    status.code().unwrap_or(1)
}

/// Sends signal `name` (`STOP`, `CONT`) to a worker process.
fn signal(child: &Child, name: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(child.id().to_string())
        .status();
}

async fn admin_client(urls: &[String]) -> Client {
    let started = Instant::now();
    let deadline = started + Duration::from_secs(30);
    let mut reported = false;
    loop {
        let options = ConnectOptions::with_urls(urls.to_vec())
            .request_timeout(Duration::from_secs(5))
            .max_reconnect_delay(Duration::from_millis(250));
        match Client::connect(options).await {
            Ok(c) => return c,
            Err(e) if Instant::now() < deadline => {
                // A new cluster elects its meta leader in a few seconds; only
                // a longer wait is worth a line.
                if !reported && started.elapsed() > Duration::from_secs(10) {
                    eprintln!("chaos: cluster not ready after 10 s, still waiting: {e}");
                    reported = true;
                }
                // Retry interval until the meta leader is elected; bounded by the deadline.
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
            Err(e) => panic!("the cluster never became ready: {e}"),
        }
    }
}

/// Samples how many consumers the cluster holds, over every stream: members
/// that recreate pulls or watches on every reconnect would pile them up.
/// The most consumers the cluster held at once, which ones ("stream >
/// consumer", as far as they could be listed) and when (Unix seconds).
#[derive(Debug, Clone, Default)]
struct Peak {
    count: usize,
    names: Vec<String>,
    at: f64,
}

async fn sample_consumers(urls: Vec<String>, max: Arc<std::sync::Mutex<Peak>>) {
    use futures::TryStreamExt;
    let addrs: Vec<async_nats::ServerAddr> = urls.iter().filter_map(|u| u.parse().ok()).collect();
    let Ok(nats) = async_nats::connect(addrs).await else {
        return;
    };
    let js = async_nats::jetstream::new(nats);
    loop {
        if let Ok(listed) = js.streams().try_collect::<Vec<_>>().await {
            // The listing comes in pages; while a node is down or comes back
            // a stream can appear on two of them: it counts once.
            let infos: std::collections::BTreeMap<_, _> = listed
                .into_iter()
                .map(|i| (i.config.name.clone(), i))
                .collect();
            let infos: Vec<_> = infos.into_values().collect();
            let total: usize = infos.iter().map(|i| i.state.consumer_count).sum();
            if total > max.lock().unwrap().count {
                let mut names = Vec::new();
                for info in &infos {
                    let stream = &info.config.name;
                    if let Ok(s) = js.get_stream_no_info(stream).await
                        && let Ok(list) = s.consumer_names().try_collect::<Vec<_>>().await
                    {
                        names.extend(list.into_iter().map(|c| format!("{stream} > {c}")));
                    }
                }
                *max.lock().unwrap() = Peak {
                    count: total,
                    names,
                    at: unix_now(),
                };
            }
        }
        // Sampling period of the consumer count.
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Whether the history file `name` holds a record of event `ev`.
fn has_event(out: &Path, name: &str, ev: &str) -> bool {
    fs::read_to_string(out.join(name)).is_ok_and(|text| {
        text.lines().any(|line| {
            serde_json::from_str::<serde_json::Value>(line).is_ok_and(|v| v["ev"] == json!(ev))
        })
    })
}

/// Whether every confirmed send appears in some member's history.
fn all_handled(out: &Path) -> bool {
    let read = |name: &str| fs::read_to_string(out.join(name)).unwrap_or_default();
    let mut confirmed = HashSet::new();
    for line in read("producer.jsonl").lines() {
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(line)
            && v["ok"] == json!(true)
        {
            confirmed.insert(v["msg_id"].as_str().unwrap_or_default().to_string());
        }
    }
    if confirmed.is_empty() {
        return false;
    }
    for m in ["m1.jsonl", "m2.jsonl"] {
        for line in read(m).lines() {
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(line)
                && let Some(id) = v["msg_id"].as_str()
            {
                confirmed.remove(id);
            }
        }
    }
    confirmed.is_empty()
}
