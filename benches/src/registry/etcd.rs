//! etcd as the peer: three members of Debian's `etcd-server` (3.4) on loopback, started and
//! stopped by the benchmark, spoken to through the JSON gateway of the v3 API.
//!
//! A registration is etcd's put-if-absent, one transaction: `If CreateRevision(key) == 0
//! Then Put(key, value)` (`/v3/kv/txn`); it succeeded if `succeeded` is true. A lookup is a
//! range of one key (`/v3/kv/range`), `serializable` (answered from the member's own copy,
//! like `whereis`) or not (linearizable: through the leader, like `whereis_linearizable`).

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::Value;

use super::http::{Http, HttpError};

/// Starting the members, or electing a first leader, that takes longer fails the run.
const START: Duration = Duration::from_secs(30);

/// The value stored under each name: about what the registry stores for an owner (node,
/// pid, message type, run).
const VALUE: &[u8] = b"n0/0123456789abcdef/Ping/1700000000";

/// Whether an `etcd` binary runs here.
pub(crate) fn installed() -> bool {
    Command::new("etcd")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// etcd's timing: how often the leader heartbeats, and the election timeout (each member
/// waits a random time from one to two election timeouts). etcd wants the election timeout
/// at least five heartbeats.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Timing {
    pub(crate) heartbeat_ms: u64,
    pub(crate) election_ms: u64,
}

/// Where a cluster keeps its data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Storage {
    /// /dev/shm: fsync is free, as for the registry's memory store.
    Tmpfs,
    /// The system's temporary directory (on the disk).
    Disk,
}

struct Member {
    client: SocketAddr,
    child: Option<Child>,
    id: String,
}

/// Three etcd members on loopback, killed when dropped.
pub(crate) struct Etcd {
    members: Vec<Member>,
    dir: tempfile::TempDir,
}

/// A free TCP port on loopback (the OS's choice; released before etcd binds it).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

impl Etcd {
    /// Starts three members (`e0`..`e2`) with their data in a fresh directory and waits
    /// until they agree on a leader.
    pub(crate) async fn start(storage: Storage, timing: Timing) -> Etcd {
        let parent: PathBuf = match storage {
            Storage::Tmpfs => "/dev/shm".into(),
            Storage::Disk => std::env::temp_dir(),
        };
        let dir = tempfile::Builder::new()
            .prefix("understudy-bench-etcd-")
            .tempdir_in(&parent)
            .expect("a data directory for etcd");
        let ports: Vec<(u16, u16)> = (0..3).map(|_| (free_port(), free_port())).collect();
        let url = |port: u16| format!("http://127.0.0.1:{port}");
        let initial: Vec<String> = ports
            .iter()
            .enumerate()
            .map(|(i, (_, peer))| format!("e{i}={}", url(*peer)))
            .collect();
        let token = format!("bench-{}", std::process::id());
        let mut members = Vec::new();
        for (i, (client, peer)) in ports.iter().enumerate() {
            let log = std::fs::File::create(dir.path().join(format!("e{i}.log"))).expect("log");
            let child = Command::new("etcd")
                .arg(format!("--name=e{i}"))
                .arg(format!(
                    "--data-dir={}",
                    dir.path().join(format!("e{i}")).display()
                ))
                .arg(format!("--listen-client-urls={}", url(*client)))
                .arg(format!("--advertise-client-urls={}", url(*client)))
                .arg(format!("--listen-peer-urls={}", url(*peer)))
                .arg(format!("--initial-advertise-peer-urls={}", url(*peer)))
                .arg(format!("--initial-cluster={}", initial.join(",")))
                .arg(format!("--initial-cluster-token={token}"))
                .arg("--initial-cluster-state=new")
                .arg(format!("--heartbeat-interval={}", timing.heartbeat_ms))
                .arg(format!("--election-timeout={}", timing.election_ms))
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("log"))
                .stderr(log)
                .spawn()
                .expect("start etcd");
            members.push(Member {
                client: SocketAddr::from(([127, 0, 0, 1], *client)),
                child: Some(child),
                id: String::new(),
            });
        }
        let mut etcd = Etcd { members, dir };
        let deadline = Instant::now() + START;
        loop {
            if let Some(ids) = etcd.agreed().await {
                for (m, id) in etcd.members.iter_mut().zip(ids) {
                    m.id = id;
                }
                return etcd;
            }
            if Instant::now() > deadline {
                panic!(
                    "etcd did not elect a leader within {START:?}; its log:\n{}",
                    etcd.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Every member's id, once all three answer and name the same leader.
    async fn agreed(&self) -> Option<Vec<String>> {
        let mut ids = Vec::new();
        let mut leader = None;
        for m in &self.members {
            let (id, says) = status(m.client).await.ok()?;
            if says == "0" || leader.as_ref().is_some_and(|l| *l != says) {
                return None;
            }
            leader = Some(says);
            ids.push(id);
        }
        Some(ids)
    }

    /// The index of the member that leads, as the live members agree (waits for one).
    pub(crate) async fn leader(&self) -> usize {
        let deadline = Instant::now() + START;
        loop {
            let mut says = Vec::new();
            for m in self.members.iter().filter(|m| m.child.is_some()) {
                if let Ok((_, leader)) = status(m.client).await {
                    says.push(leader);
                }
            }
            let live = self.members.iter().filter(|m| m.child.is_some()).count();
            if says.len() == live
                && says.windows(2).all(|w| w[0] == w[1])
                && let Some(i) = self
                    .members
                    .iter()
                    .position(|m| Some(&m.id) == says.first())
            {
                return i;
            }
            assert!(
                Instant::now() < deadline,
                "etcd members disagree on a leader"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The client address of member `i`.
    pub(crate) fn client(&self, i: usize) -> SocketAddr {
        self.members[i].client
    }

    /// Member `i`'s id, as etcd's status names it.
    pub(crate) fn member_id(&self, i: usize) -> &str {
        &self.members[i].id
    }

    /// Kills member `i` with SIGKILL, as a crash would.
    pub(crate) fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.members[i].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The process id of member `i` (if it runs).
    pub(crate) fn pid(&self, i: usize) -> Option<u32> {
        self.members[i].child.as_ref().map(Child::id)
    }

    /// CPU time the live members' processes have used so far, in ns.
    pub(crate) fn cpu_ns(&self) -> u64 {
        (0..self.members.len())
            .filter_map(|i| self.pid(i))
            .map(crate::bench::process_cpu_ns)
            .sum()
    }

    fn log_tail(&self) -> String {
        let mut out = String::new();
        for i in 0..self.members.len() {
            let path: &Path = &self.dir.path().join(format!("e{i}.log"));
            let text = std::fs::read_to_string(path).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            out.push_str(&format!("--- e{i}\n"));
            for l in &lines[lines.len().saturating_sub(10)..] {
                out.push_str(l);
                out.push('\n');
            }
        }
        out
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        for i in 0..self.members.len() {
            self.kill(i);
        }
    }
}

/// A member's `(own id, leader's id)` ("0": no leader known).
pub(crate) async fn status(addr: SocketAddr) -> Result<(String, String), HttpError> {
    let mut http = Http::new(addr);
    let body = tokio::time::timeout(
        Duration::from_secs(1),
        http.post("/v3/maintenance/status", b"{}"),
    )
    .await
    .map_err(|_| HttpError::Io(std::io::ErrorKind::TimedOut.into()))??;
    let v: Value = serde_json::from_slice(&body)
        .map_err(|e| HttpError::Io(std::io::Error::new(std::io::ErrorKind::InvalidData, e)))?;
    let text = |v: &Value| match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => "0".to_owned(),
    };
    Ok((text(&v["header"]["member_id"]), text(&v["leader"])))
}

/// A client of one member on one keep-alive connection.
pub(crate) struct Kv {
    http: Http,
    body: String,
}

impl Kv {
    pub(crate) fn new(addr: SocketAddr) -> Kv {
        Kv {
            http: Http::new(addr),
            body: String::with_capacity(512),
        }
    }

    /// Drops the connection (after a request given up half-way).
    pub(crate) fn reset(&mut self) {
        self.http.reset();
    }

    /// Registers `key` if no one has: true if this call created it.
    pub(crate) async fn put_if_absent(&mut self, key: &str) -> Result<bool, HttpError> {
        let key = B64.encode(key);
        self.body.clear();
        self.body.push_str(&format!(
            r#"{{"compare":[{{"key":"{key}","target":"CREATE","result":"EQUAL","create_revision":"0"}}],"success":[{{"request_put":{{"key":"{key}","value":"{}"}}}}]}}"#,
            B64.encode(VALUE)
        ));
        let answer = self.http.post("/v3/kv/txn", self.body.as_bytes()).await?;
        Ok(parse(&answer)?["succeeded"] == Value::Bool(true))
    }

    /// Reads `key`: true if it exists. `serializable`: from this member's copy; otherwise
    /// linearizable (the member confirms with the leader first).
    pub(crate) async fn get(&mut self, key: &str, serializable: bool) -> Result<bool, HttpError> {
        self.body.clear();
        self.body.push_str(&format!(
            r#"{{"key":"{}","serializable":{serializable}}}"#,
            B64.encode(key)
        ));
        let answer = self.http.post("/v3/kv/range", self.body.as_bytes()).await?;
        Ok(parse(&answer)?["kvs"]
            .as_array()
            .is_some_and(|kvs| !kvs.is_empty()))
    }
}

fn parse(answer: &[u8]) -> Result<Value, HttpError> {
    serde_json::from_slice(answer)
        .map_err(|e| HttpError::Io(std::io::Error::new(std::io::ErrorKind::InvalidData, e)))
}
