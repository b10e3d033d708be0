//! A real PostgreSQL server (Debian's `postgresql-15`) for the CDC tests:
//! `initdb` in a temporary directory, logical replication on, a free
//! loopback port, trust authentication. Killed when dropped.
//!
//! PostgreSQL refuses to run as root, so under root the server runs as the
//! `postgres` system user (`setpriv`, which execs, so the process we hold is
//! the postmaster itself and signals reach it).

use std::{
    net::TcpStream,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use tempfile::TempDir;

use crate::free_port;

/// Where Debian installs the server binaries.
pub fn postgres_bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("POSTGRES_BIN_DIR") {
        return PathBuf::from(dir);
    }
    let dir = PathBuf::from("/usr/lib/postgresql/15/bin");
    assert!(
        dir.join("postgres").exists(),
        "no PostgreSQL at {}: run `make setup` (it installs postgresql-15), or set POSTGRES_BIN_DIR",
        dir.display()
    );
    dir
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// A command run as the `postgres` user when we are root.
fn as_owner(program: &Path) -> Command {
    if is_root() {
        let mut c = Command::new("setpriv");
        c.args(["--reuid=postgres", "--regid=postgres", "--init-groups"])
            .arg(program);
        c
    } else {
        Command::new(program)
    }
}

#[derive(Debug)]
pub struct Postgres {
    dir: TempDir,
    port: u16,
    child: Option<Child>,
}

impl Postgres {
    /// `initdb`, then starts the server with `wal_level=logical`.
    pub fn start() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("jetstation-pg-")
            .tempdir()
            .expect("temporary directory");
        if is_root() {
            let status = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path())
                .status()
                .expect("chown");
            assert!(status.success(), "chown of the data directory failed");
        }
        let out = as_owner(&postgres_bin_dir().join("initdb"))
            .arg("-D")
            .arg(dir.path().join("data"))
            .args(["-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8"])
            .output()
            .expect("run initdb");
        assert!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut pg = Self {
            dir,
            port: free_port(),
            child: None,
        };
        pg.spawn();
        pg
    }

    fn spawn(&mut self) {
        let data = self.dir.path().join("data");
        let log = std::fs::File::create(self.dir.path().join("server.log")).expect("log file");
        if is_root() {
            let _ = Command::new("chown")
                .arg("postgres:postgres")
                .arg(self.dir.path().join("server.log"))
                .status();
        }
        let child = as_owner(&postgres_bin_dir().join("postgres"))
            .arg("-D")
            .arg(&data)
            .args([
                "-c",
                "wal_level=logical",
                "-c",
                &format!("port={}", self.port),
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                &format!("unix_socket_directories={}", self.dir.path().display()),
                "-c",
                "max_wal_senders=10",
                "-c",
                "max_replication_slots=10",
                "-c",
                "fsync=off",
                "-c",
                "full_page_writes=off",
                // Shared memory segments as files of the data directory:
                // a server killed when its test ends leaves none behind in
                // /dev/shm (POSIX segments outlive a SIGKILL).
                "-c",
                "dynamic_shared_memory_type=mmap",
            ])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start postgres");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() && self.accepts() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "PostgreSQL did not start: {}",
                self.log()
            );
            thread::sleep(Duration::from_millis(50)); // poll interval while the server starts; the deadline bounds it
        }
    }

    /// Whether the server accepts queries (not only connections: it refuses
    /// them while it starts or recovers).
    fn accepts(&self) -> bool {
        Command::new(postgres_bin_dir().join("pg_isready"))
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-q"])
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// A libpq connection string for a database (`postgres` exists).
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// Fast shutdown (SIGINT): open sessions are ended, nothing committed is lost.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            crate::stop_child(&mut child, "INT", Duration::from_secs(30));
        }
    }

    /// Stops the server and starts it again on the same port and data.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
