//! Real `nats-server` processes for tests, benchmarks and the demo.
//!
//! Every server runs with JetStream on free loopback ports, keeps its store in
//! its own temporary directory and is killed when dropped, so a failing test
//! never leaves a server behind. The binary comes from `NATS_SERVER_BIN`, or
//! from the cache that `scripts/setup-nats.sh` fills
//! (`~/.cache/jetstation/bin/nats-server`).
//!
//! Nothing here imitates NATS: the tests talk to the same server binary that
//! users run.

use std::{
    fs,
    net::{TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use tempfile::TempDir;

pub mod postgres;
pub use postgres::Postgres;

/// Path of the nats-server binary used by tests.
///
/// Panics with the command to run when no binary is found, because a test
/// that cannot reach a real server must not pass.
pub fn nats_server_bin() -> PathBuf {
    if let Some(path) = std::env::var_os("NATS_SERVER_BIN") {
        return PathBuf::from(path);
    }
    let cached = cache_dir().join("bin/nats-server");
    if cached.exists() {
        return cached;
    }
    panic!(
        "no nats-server found: run `scripts/setup-nats.sh` (or `make setup`) to fetch v2.15.0 \
         into {}, or set NATS_SERVER_BIN",
        cached.display()
    );
}

/// Path of an older nats-server release (`version`, e.g. "2.12.8"), as
/// `scripts/setup-nats-versions.sh` caches it (`make setup` fetches 2.12.8).
///
/// Panics with the command to run when it is missing: a test that needs it
/// must not pass without it.
pub fn nats_server_release_bin(version: &str) -> PathBuf {
    let cached = cache_dir().join(format!("nats/{version}/nats-server"));
    if cached.exists() {
        return cached;
    }
    panic!(
        "no nats-server {version} found at {}: run `NATS_VERSIONS={version} \
         scripts/setup-nats-versions.sh` (or `make setup`)",
        cached.display()
    );
}

/// `~/.cache/jetstation`, or `$JETSTATION_CACHE` when set.
pub fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("JETSTATION_CACHE") {
        return PathBuf::from(dir);
    }
    let home = std::env::var_os("HOME").unwrap_or_else(|| "/tmp".into());
    PathBuf::from(home).join(".cache/jetstation")
}

/// Sends `signal` to a child process and waits for it to exit; kills it
/// when it is still running after `within`.
pub(crate) fn stop_child(child: &mut Child, signal: &str, within: Duration) {
    let _ = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(child.id().to_string())
        .status();
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        thread::sleep(Duration::from_millis(20)); // poll interval while the process exits; the deadline bounds it
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// A port on 127.0.0.1 that was free a moment ago, below Linux's range of
/// ephemeral ports (32768 and up): a port from that range can be given to an
/// outgoing connection while the server that had it is down, and a restart
/// on it then fails.
pub fn free_port() -> u16 {
    use std::hash::{BuildHasher, Hasher};
    const LOW: u64 = 10_000;
    const HIGH: u64 = 32_000;
    for _ in 0..100 {
        // A random port of the range: RandomState is seeded per instance.
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u64(0);
        let port = (LOW + hasher.finish() % (HIGH - LOW)) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free loopback port")
}

/// How to start a server.
#[derive(Debug, Clone)]
pub struct ServerBuilder {
    binary: PathBuf,
    jetstream: bool,
    extra_config: String,
    name: String,
}

impl Default for ServerBuilder {
    fn default() -> Self {
        Self {
            binary: nats_server_bin(),
            jetstream: true,
            extra_config: String::new(),
            name: "n1".into(),
        }
    }
}

impl ServerBuilder {
    /// Use another binary (e.g. Debian's 2.9 `/usr/sbin/nats-server`).
    pub fn binary(mut self, path: impl Into<PathBuf>) -> Self {
        self.binary = path.into();
        self
    }

    /// Appends raw server configuration (authorization blocks, limits…).
    pub fn config(mut self, text: &str) -> Self {
        self.extra_config.push_str(text);
        self.extra_config.push('\n');
        self
    }

    /// Starts without JetStream (to test the error a client gets).
    pub fn without_jetstream(mut self) -> Self {
        self.jetstream = false;
        self
    }

    /// Starts the server and waits until it accepts connections (on
    /// another port when the one picked was taken before the server bound
    /// it).
    pub fn start(self) -> NatsServer {
        let mut attempt = 1;
        loop {
            let dir = tempfile::Builder::new()
                .prefix("jetstation-nats-")
                .tempdir()
                .expect("temp dir for nats-server");
            let mut server = NatsServer {
                builder: self.clone(),
                port: free_port(),
                cluster: None,
                dir,
                child: None,
            };
            match server.try_spawn() {
                Ok(()) => return server,
                Err(log) if port_taken(&log) && attempt < START_ATTEMPTS => attempt += 1,
                Err(log) => panic!("nats-server exited at start; its log:\n{log}"),
            }
        }
    }
}

/// How many times a server or cluster is started on fresh ports when a
/// port picked for it was taken before the server bound it (another
/// process, or an outgoing connection given it as its local port).
const START_ATTEMPTS: u32 = 5;

/// Whether a server's log says it could not bind one of its ports.
fn port_taken(log: &str) -> bool {
    log.contains("address already in use")
}

#[derive(Debug, Clone)]
struct ClusterPart {
    cluster_name: String,
    port: u16,
    routes: Vec<u16>,
    /// The node tells its clients the other nodes' addresses (`false`:
    /// `no_advertise`, see [`Cluster::start_unadvertised`]).
    advertise: bool,
}

/// One running (or stopped) nats-server process.
#[derive(Debug)]
pub struct NatsServer {
    builder: ServerBuilder,
    port: u16,
    cluster: Option<ClusterPart>,
    dir: TempDir,
    child: Option<Child>,
}

impl NatsServer {
    /// A single node with JetStream, using the cached v2.15 binary.
    pub fn start() -> Self {
        ServerBuilder::default().start()
    }

    pub fn builder() -> ServerBuilder {
        ServerBuilder::default()
    }

    /// `nats://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's log file, useful when a test fails.
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("server.log")
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }

    fn config_text(&self) -> String {
        let store = self.dir.path().join("store");
        let mut text = format!(
            "server_name: {name}\nlisten: 127.0.0.1:{port}\n",
            name = self.builder.name,
            port = self.port
        );
        if self.builder.jetstream {
            text.push_str(&format!(
                "jetstream {{\n  store_dir: \"{}\"\n}}\n",
                store.display()
            ));
        }
        if let Some(c) = &self.cluster {
            let routes: Vec<String> = c
                .routes
                .iter()
                .map(|p| format!("nats://127.0.0.1:{p}"))
                .collect();
            text.push_str(&format!(
                "cluster {{\n  name: {}\n  listen: 127.0.0.1:{}\n  routes: [{}]\n  no_advertise: {}\n}}\n",
                c.cluster_name,
                c.port,
                routes.join(", "),
                !c.advertise
            ));
        }
        text.push_str(&self.builder.extra_config);
        text
    }

    /// Starts the process and waits until it listens: panics when it does
    /// not. On its own port again (a restart), a port some outgoing
    /// connection holds for a moment is tried again a few times.
    fn spawn(&mut self) {
        let mut attempt = 1;
        loop {
            match self.try_spawn() {
                Ok(()) => return,
                Err(log) if port_taken(&log) && attempt < START_ATTEMPTS => {
                    attempt += 1;
                    // The connection holding the port is given time to end.
                    thread::sleep(Duration::from_millis(500));
                }
                Err(log) => panic!("nats-server exited at start; its log:\n{log}"),
            }
        }
    }

    /// Starts the process and waits until it listens; `Err` with its log
    /// when it exited instead.
    fn try_spawn(&mut self) -> Result<(), String> {
        // What this start writes to the log comes after this.
        let logged = fs::metadata(self.log_path()).map_or(0, |m| m.len() as usize);
        let conf = self.dir.path().join("server.conf");
        fs::write(&conf, self.config_text()).expect("write server config");
        let child = Command::new(&self.builder.binary)
            .arg("-c")
            .arg(&conf)
            .arg("-l")
            .arg(self.log_path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", self.builder.binary.display()));
        self.child = Some(child);
        self.wait_listening(Duration::from_secs(15), logged)
    }

    /// Waits until the server listens; `Err` with what it logged from byte
    /// `logged` on when it exited instead.
    fn wait_listening(&mut self, limit: Duration, logged: usize) -> Result<(), String> {
        let deadline = Instant::now() + limit;
        loop {
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return Ok(());
            }
            if !self.is_running() {
                self.child = None;
                let log = fs::read(self.log_path()).unwrap_or_default();
                return Err(String::from_utf8_lossy(log.get(logged..).unwrap_or_default()).into());
            }
            assert!(
                Instant::now() < deadline,
                "nats-server did not listen on port {} within {limit:?}",
                self.port
            );
            // Poll interval while the server starts; bounded by the deadline.
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Graceful stop (SIGTERM), waiting for the process to exit. The store is kept.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            stop_child(&mut child, "TERM", Duration::from_secs(10));
        }
    }

    /// Hard kill (SIGKILL), as a crash would. The store is kept.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The server's process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// Freezes the process (SIGSTOP): its sockets stay open but it answers
    /// nothing, like a node stuck in a long pause.
    pub fn freeze(&self) {
        self.signal("STOP");
    }

    /// Resumes a frozen process (SIGCONT).
    pub fn thaw(&self) {
        self.signal("CONT");
    }

    fn signal(&self, name: &str) {
        if let Some(pid) = self.pid() {
            let _ = Command::new("kill")
                .arg(format!("-{name}"))
                .arg(pid.to_string())
                .status();
        }
    }

    /// Starts the process again on the same port with the same store.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    /// Stops the server (SIGTERM) and starts it again with another binary,
    /// same port, same store: one step of a rolling upgrade (or downgrade).
    pub fn restart_with_binary(&mut self, binary: impl Into<PathBuf>) {
        self.stop();
        self.builder.binary = binary.into();
        self.spawn();
    }

    /// Starts a stopped or killed server again (same port, same store).
    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "server is still running");
        self.spawn();
    }

    pub fn store_dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        // A frozen process ignores nothing but SIGKILL; thaw it anyway so a
        // stopped process group never lingers.
        self.thaw();
        self.kill();
    }
}

/// A 3-node (or n-node) JetStream cluster on loopback.
#[derive(Debug)]
pub struct Cluster {
    pub nodes: Vec<NatsServer>,
}

impl Cluster {
    pub fn start(size: usize) -> Self {
        Self::start_with_binary(size, nats_server_bin())
    }

    /// A cluster whose every node runs `binary` (an older release, to
    /// upgrade node by node with [`NatsServer::restart_with_binary`]).
    pub fn start_with_binary(size: usize, binary: impl Into<PathBuf>) -> Self {
        Self::start_advertising(size, binary.into(), true)
    }

    /// A cluster whose nodes do not tell clients where the other nodes are
    /// (`no_advertise`): a client reaches only the addresses it was given.
    /// For clients behind [`Relay`]s, which would otherwise reconnect
    /// straight to a node's own port, around the relay, after any
    /// reconnect.
    pub fn start_unadvertised(size: usize) -> Self {
        Self::start_advertising(size, nats_server_bin(), false)
    }

    fn start_advertising(size: usize, binary: PathBuf, advertise: bool) -> Self {
        let mut attempt = 1;
        loop {
            match Self::try_start(size, &binary, advertise) {
                Ok(cluster) => return cluster,
                Err(log) if port_taken(&log) && attempt < START_ATTEMPTS => attempt += 1,
                Err(log) => panic!("nats-server exited at start; its log:\n{log}"),
            }
        }
    }

    /// Starts every node on fresh ports; `Err` with the log of a node that
    /// exited instead (the nodes started so far stop when dropped).
    fn try_start(size: usize, binary: &Path, advertise: bool) -> Result<Self, String> {
        let client_ports: Vec<u16> = (0..size).map(|_| free_port()).collect();
        let cluster_ports: Vec<u16> = (0..size).map(|_| free_port()).collect();
        let name = format!("jst{}", free_port());
        let mut nodes = Vec::new();
        for i in 0..size {
            let dir = tempfile::Builder::new()
                .prefix("jetstation-nats-")
                .tempdir()
                .expect("temp dir for nats-server");
            let routes = cluster_ports
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .map(|(_, p)| *p)
                .collect();
            nodes.push(NatsServer {
                builder: ServerBuilder {
                    name: format!("n{}", i + 1),
                    binary: binary.to_path_buf(),
                    ..ServerBuilder::default()
                },
                port: client_ports[i],
                cluster: Some(ClusterPart {
                    cluster_name: name.clone(),
                    port: cluster_ports[i],
                    routes,
                    advertise,
                }),
                dir,
                child: None,
            });
        }
        // All nodes must be up before any waits for listening: a node only
        // serves clients once it has found its routes.
        for node in &mut nodes {
            let conf = node.dir.path().join("server.conf");
            fs::write(&conf, node.config_text()).expect("write server config");
        }
        for node in &mut nodes {
            node.try_spawn()?;
        }
        Ok(Self { nodes })
    }

    /// Comma-separated URLs of every node.
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.url()).collect()
    }
}

/// A TCP relay in front of a server whose connections can be cut at will:
/// a real network failure between a client and a real server (the client
/// sees its socket die and reconnects through the relay).
#[derive(Debug)]
pub struct Relay {
    port: u16,
    live: std::sync::Arc<std::sync::Mutex<Vec<TcpStream>>>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    faults: std::sync::Arc<Faults>,
}

/// The faults a relay was told to make (see [`Relay::silence_after`] and
/// [`Relay::lose_next`]).
#[derive(Debug, Default)]
struct Faults {
    silent: std::sync::atomic::AtomicBool,
    /// Client bytes whose passing turns the silence on.
    silence_trigger: std::sync::Mutex<Option<Vec<u8>>>,
    /// Server bytes whose next read is dropped, and its connection broken.
    loss_trigger: std::sync::Mutex<Option<Vec<u8>>>,
    /// A read was lost.
    lost: std::sync::atomic::AtomicBool,
}

impl Faults {
    fn is_silent(&self) -> bool {
        self.silent.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Called with what just went from a client to the server (`seen`: the
    /// end of the bytes before, so a trigger split over two reads counts).
    fn passed(&self, seen: &[u8]) {
        let trigger = self.silence_trigger.lock().unwrap();
        if let Some(t) = trigger.as_deref()
            && seen.windows(t.len()).any(|w| w == t)
        {
            self.silent.store(true, std::sync::atomic::Ordering::SeqCst);
        }
    }

    /// Whether `read`, from the server, is to be lost (once per arming).
    fn loses(&self, read: &[u8]) -> bool {
        let mut trigger = self.loss_trigger.lock().unwrap();
        let hit = trigger
            .as_deref()
            .is_some_and(|t| read.windows(t.len()).any(|w| w == t));
        if hit {
            *trigger = None;
            self.lost.store(true, std::sync::atomic::Ordering::SeqCst);
        }
        hit
    }
}

impl Relay {
    /// Relays 127.0.0.1:<new port> to 127.0.0.1:`target`.
    pub fn start(target: u16) -> Self {
        use std::sync::{Arc, Mutex, atomic::AtomicBool};
        let listener = TcpListener::bind("127.0.0.1:0").expect("relay port");
        let port = listener.local_addr().unwrap().port();
        let live: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let faults = Arc::new(Faults::default());
        let (live2, stop2, faults2) = (live.clone(), stop.clone(), faults.clone());
        thread::spawn(move || {
            for client in listener.incoming() {
                if stop2.load(std::sync::atomic::Ordering::SeqCst) {
                    return;
                }
                let Ok(client) = client else { continue };
                let Ok(upstream) = TcpStream::connect(("127.0.0.1", target)) else {
                    continue;
                };
                let _ = client.set_nodelay(true);
                let _ = upstream.set_nodelay(true);
                {
                    let mut live = live2.lock().unwrap();
                    live.push(client.try_clone().unwrap());
                    live.push(upstream.try_clone().unwrap());
                }
                pipe(
                    client.try_clone().unwrap(),
                    upstream.try_clone().unwrap(),
                    faults2.clone(),
                    true,
                );
                pipe(upstream, client, faults2.clone(), false);
            }
        });
        Self {
            port,
            live,
            stop,
            faults,
        }
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Breaks every connection open through the relay right now.
    pub fn cut(&self) {
        for s in self.live.lock().unwrap().drain(..) {
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
    }

    /// Goes silent once a client has sent bytes containing `trigger` (they
    /// reach the server): from then on nothing passes either way, on the
    /// connections open and on new ones, and no socket closes. What a
    /// client sees when the network path freezes right after a request.
    pub fn silence_after(&self, trigger: &str) {
        *self.faults.silence_trigger.lock().unwrap() = Some(trigger.as_bytes().to_vec());
    }

    /// Goes silent now (see [`Self::silence_after`]): the network path
    /// between the relay's clients and the server is gone, while both ends
    /// still run and no socket closes.
    pub fn silence(&self) {
        self.faults
            .silent
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// Lets bytes pass again after a silence. What was sent meanwhile is
    /// lost, so a connection may break on what arrives cut in two.
    pub fn speak(&self) {
        *self.faults.silence_trigger.lock().unwrap() = None;
        self.faults
            .silent
            .store(false, std::sync::atomic::Ordering::SeqCst);
    }

    /// Whether the relay went silent (see [`Self::silence_after`]).
    pub fn is_silent(&self) -> bool {
        self.faults.is_silent()
    }

    /// Drops the next read from the server that contains `trigger` and
    /// breaks its connection: what was in it is lost on the way, for sure
    /// (a [`Self::cut`] loses only what happens to be on the way). Once.
    pub fn lose_next(&self, trigger: &str) {
        *self.faults.loss_trigger.lock().unwrap() = Some(trigger.as_bytes().to_vec());
    }

    /// Whether a loss armed by [`Self::lose_next`] happened.
    pub fn lost(&self) -> bool {
        self.faults.lost.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// Copies `from` to `to` until either closes, dropping what arrives while
/// the relay is silent, and breaking the connection at a read to lose.
/// `upstream`: client to server.
fn pipe(mut from: TcpStream, mut to: TcpStream, faults: std::sync::Arc<Faults>, upstream: bool) {
    use std::io::{Read, Write};
    thread::spawn(move || {
        let mut buffer = vec![0u8; 64 * 1024];
        // The last bytes passed, then the new ones: what the trigger is
        // looked for in.
        let mut seen: Vec<u8> = Vec::new();
        loop {
            let n = match from.read(&mut buffer) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if faults.is_silent() {
                continue;
            }
            if !upstream && faults.loses(&buffer[..n]) {
                break;
            }
            if to.write_all(&buffer[..n]).is_err() {
                break;
            }
            if upstream {
                let keep = seen.len().min(256);
                seen.drain(..seen.len() - keep);
                seen.extend_from_slice(&buffer[..n]);
                faults.passed(&seen);
            }
        }
        let _ = to.shutdown(std::net::Shutdown::Both);
        let _ = from.shutdown(std::net::Shutdown::Both);
    });
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        self.cut();
        // Unblocks the accept loop so its thread ends.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use socket2::{Domain, Socket, Type};

    /// A socket bound to `port` that does not listen: what an outgoing
    /// connection given that port as its local one looks like to a server
    /// that wants to bind it.
    fn hold(port: u16) -> Socket {
        let socket = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
        let address: std::net::SocketAddr = ([127, 0, 0, 1], port).into();
        socket.bind(&address.into()).unwrap();
        socket
    }

    /// A server whose port something holds exits at start and says why.
    #[test]
    fn a_taken_port_is_told_apart() {
        let mut server = ServerBuilder::default().start();
        server.stop();
        let _holder = hold(server.port());
        let log = server.try_spawn().expect_err("the port is held");
        assert!(port_taken(&log), "{log}");
    }

    /// A restart on a port that something holds for a moment waits for it.
    #[test]
    fn a_restart_waits_for_its_port_to_be_released() {
        let mut server = ServerBuilder::default().start();
        server.stop();
        let holder = hold(server.port());
        let release = thread::spawn(move || {
            // Held for longer than one start attempt, shorter than all.
            thread::sleep(Duration::from_millis(700));
            drop(holder);
        });
        server.start_again();
        assert!(server.is_running());
        assert!(TcpStream::connect(("127.0.0.1", server.port())).is_ok());
        release.join().unwrap();
    }
}
