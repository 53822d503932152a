//! The six measurements, written once over [`Fw`] and monomorphised per framework.
//!
//! Every framework runs the same actor (a counter: `Add(u64)` adds, `Get` replies with the
//! sum), the same message sizes, the same loops. Each measurement stops its clock only after
//! an ask has come back from every actor involved, so every message was processed, and checks
//! the counters it read back.

use std::future::Future;
use std::hint::black_box;
use std::time::{Duration, Instant};

/// Every timed ask in every framework waits at most this long (understudy's default ask
/// timeout; the others are given the same timeout explicitly, so each ask arms a timer).
pub const ASK_TIMEOUT: Duration = Duration::from_secs(5);

/// One actor framework, reduced to what the benchmarks do with it.
///
/// Every method is the framework's own idiomatic call; the trait only lets one generic loop
/// drive all four (it is monomorphised, so it costs nothing at run time).
pub trait Fw: Send + Sync + 'static {
    /// A handle to a counter actor.
    type Ref: Clone + Send + Sync + 'static;

    /// Spawns one counter actor and returns once the framework reports it started.
    fn spawn(&self) -> impl Future<Output = Self::Ref> + Send;

    /// Fire-and-forget `Add(by)`.
    fn tell(r: &Self::Ref, by: u64);

    /// Ask `Get` (with [`ASK_TIMEOUT`]) and return the counter.
    fn get(r: &Self::Ref) -> impl Future<Output = u64> + Send;

    /// Ask `Get` with no timeout at all (no timer armed) and return the counter.
    fn get_untimed(r: &Self::Ref) -> impl Future<Output = u64> + Send;

    /// Asks the actor to stop (gracefully).
    fn stop(r: &Self::Ref) -> impl Future<Output = ()> + Send;

    /// Waits until a stopped actor is gone.
    fn wait_stopped(r: Self::Ref) -> impl Future<Output = ()> + Send;
}

/// Which measurement.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Test {
    Tell1,
    Tell100,
    /// Asks with [`ASK_TIMEOUT`].
    Ask,
    /// Asks with no timeout.
    AskUntimed,
    Spawn,
    Memory,
}

impl Test {
    pub const ALL: [Test; 6] = [
        Test::Tell1,
        Test::Tell100,
        Test::Ask,
        Test::AskUntimed,
        Test::Spawn,
        Test::Memory,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Test::Tell1 => "tell1",
            Test::Tell100 => "tell100",
            Test::Ask => "ask",
            Test::AskUntimed => "ask_untimed",
            Test::Spawn => "spawn",
            Test::Memory => "memory",
        }
    }

    pub fn parse(s: &str) -> Option<Test> {
        Test::ALL.into_iter().find(|t| t.name() == s)
    }
}

/// Sizes of the measurements.
#[derive(Clone, Copy, Debug)]
pub struct Sizes {
    /// Messages per tell run (both tell tests).
    pub msgs: u64,
    /// Sequential asks per ask run.
    pub asks: u64,
    /// Actors spawned per spawn run.
    pub spawns: u64,
    /// Idle actors for the memory run.
    pub idle: u64,
}

/// Number of actors in the round-robin tell test.
pub const FANOUT: usize = 100;

/// `(metric, value)` pairs of one run.
pub type Metrics = Vec<(&'static str, f64)>;

/// CPU time of this process's threads (on a CPU, and runnable but waiting for one), in ns,
/// summed over /proc/self/task/*/schedstat (Linux). Unlike wall time, the first is hardly
/// moved by other processes competing for the cores; the second says how much they did.
fn sched_ns() -> (u64, u64) {
    let mut on_cpu = 0;
    let mut waiting = 0;
    if let Ok(tasks) = std::fs::read_dir("/proc/self/task") {
        for task in tasks.flatten() {
            let Ok(stat) = std::fs::read_to_string(task.path().join("schedstat")) else {
                continue;
            };
            let mut fields = stat
                .split_whitespace()
                .map(|f| f.parse::<u64>().unwrap_or(0));
            on_cpu += fields.next().unwrap_or(0);
            waiting += fields.next().unwrap_or(0);
        }
    }
    (on_cpu, waiting)
}

/// CPU time (ns) of the threads of process `pid` so far, summed over
/// /proc/<pid>/task/*/schedstat (0 if it is gone).
pub(crate) fn process_cpu_ns(pid: u32) -> u64 {
    let mut on_cpu = 0;
    if let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for task in tasks.flatten() {
            if let Ok(stat) = std::fs::read_to_string(task.path().join("schedstat")) {
                on_cpu += stat
                    .split_whitespace()
                    .next()
                    .and_then(|f| f.parse::<u64>().ok())
                    .unwrap_or(0);
            }
        }
    }
    on_cpu
}

/// Wall clock plus the CPU time of all threads of the process, over a measured section.
#[derive(Clone, Copy, Default)]
pub(crate) struct Span {
    pub(crate) wall: Duration,
    pub(crate) cpu_ns: u64,
    pub(crate) wait_ns: u64,
}

impl std::ops::AddAssign for Span {
    fn add_assign(&mut self, o: Span) {
        self.wall += o.wall;
        self.cpu_ns += o.cpu_ns;
        self.wait_ns += o.wait_ns;
    }
}

pub(crate) struct Stopwatch {
    t0: Instant,
    sched0: (u64, u64),
}

impl Stopwatch {
    pub(crate) fn start() -> Self {
        let sched0 = sched_ns();
        Stopwatch {
            t0: Instant::now(),
            sched0,
        }
    }

    pub(crate) fn stop(self) -> Span {
        let wall = self.t0.elapsed();
        let (cpu, wait) = sched_ns();
        Span {
            wall,
            cpu_ns: cpu.saturating_sub(self.sched0.0),
            wait_ns: wait.saturating_sub(self.sched0.1),
        }
    }
}

impl Span {
    /// `rate` (ops/s), CPU ns per op, and the share of the wall time this process's threads
    /// spent runnable but off-CPU (other load), for `n` ops.
    pub(crate) fn metrics(self, rate: &'static str, cpu: &'static str, n: u64) -> Metrics {
        vec![
            (rate, n as f64 / self.wall.as_secs_f64()),
            (cpu, self.cpu_ns as f64 / n as f64),
            (
                "runq_wait_pct",
                100.0 * self.wait_ns as f64 / self.wall.as_nanos() as f64,
            ),
        ]
    }
}

/// Runs `test` once: a warm-up at a tenth of the size (not for `memory`, whose baseline a
/// warm-up would distort), then the measured run.
pub async fn run<F: Fw>(fw: F, test: Test, sizes: Sizes) -> Metrics {
    match test {
        Test::Tell1 => {
            tell_one(&fw, (sizes.msgs / 10).max(1)).await;
            tell_one(&fw, sizes.msgs)
                .await
                .metrics("msgs_per_s", "cpu_ns_per_msg", sizes.msgs)
        }
        Test::Tell100 => {
            tell_fanout(&fw, (sizes.msgs / 10).max(FANOUT as u64)).await;
            tell_fanout(&fw, sizes.msgs)
                .await
                .metrics("msgs_per_s", "cpu_ns_per_msg", sizes.msgs)
        }
        Test::Ask | Test::AskUntimed => {
            let untimed = test == Test::AskUntimed;
            ask_latency(&fw, (sizes.asks / 10).max(1), untimed).await;
            ask_latency(&fw, sizes.asks, untimed).await
        }
        Test::Spawn => {
            spawn_rate(&fw, (sizes.spawns / 10).max(1)).await;
            spawn_rate(&fw, sizes.spawns).await.metrics(
                "actors_per_s",
                "cpu_ns_per_actor",
                sizes.spawns,
            )
        }
        Test::Memory => vec![("bytes_per_actor", idle_memory(&fw, sizes.idle).await)],
    }
}

async fn stop_all<F: Fw>(refs: Vec<F::Ref>) {
    for r in &refs {
        F::stop(r).await;
    }
    for r in refs {
        F::wait_stopped(r).await;
    }
}

/// 1 sender -> 1 actor: `n` tells, then one ask; timed over the whole.
async fn tell_one<F: Fw>(fw: &F, n: u64) -> Span {
    let a = fw.spawn().await;
    let clock = Stopwatch::start();
    for _ in 0..n {
        F::tell(&a, 1);
    }
    let got = F::get(&a).await;
    let span = clock.stop();
    assert_eq!(got, n, "every tell must have been processed");
    stop_all::<F>(vec![a]).await;
    span
}

/// 1 sender -> 100 actors round-robin: `n` tells in all, then one ask to each; timed.
async fn tell_fanout<F: Fw>(fw: &F, n: u64) -> Span {
    let mut actors = Vec::with_capacity(FANOUT);
    for _ in 0..FANOUT {
        actors.push(fw.spawn().await);
    }
    let clock = Stopwatch::start();
    for i in 0..n {
        F::tell(&actors[(i % FANOUT as u64) as usize], 1);
    }
    let mut total = 0;
    for a in &actors {
        total += F::get(a).await;
    }
    let span = clock.stop();
    assert_eq!(total, n, "every tell must have been processed");
    stop_all::<F>(actors).await;
    span
}

/// Segments of the ask test, each against a fresh actor (see [`ask_latency`]).
pub const ASK_SEGMENTS: u64 = 10;

/// `n` sequential asks (timed, or `untimed`); latency mean / p50 / p99 in µs, and asks/s.
///
/// On a multi-thread runtime the actor lands either on the sender's worker (an ask is then
/// a same-thread task switch, ~0.5 µs) or on the other worker (a cross-thread wake-up,
/// ~1 µs, with a fatter tail) — tokio decides, at random. One actor per run would make each
/// run all one or all the other, so the asks are split over [`ASK_SEGMENTS`] fresh actors
/// and every run sees a mix of placements.
async fn ask_latency<F: Fw>(fw: &F, n: u64, untimed: bool) -> Metrics {
    let segments = ASK_SEGMENTS.min(n);
    let mut lat = Vec::with_capacity(n as usize);
    let mut span = Span::default();
    for seg in 0..segments {
        let per = n / segments + u64::from(seg < n % segments);
        let a = fw.spawn().await;
        let clock = Stopwatch::start();
        for _ in 0..per {
            let s = Instant::now();
            if untimed {
                black_box(F::get_untimed(&a).await);
            } else {
                black_box(F::get(&a).await);
            }
            lat.push(s.elapsed());
        }
        span += clock.stop();
        stop_all::<F>(vec![a]).await;
    }
    lat.sort_unstable();
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    let pct = |p: f64| us(lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)]);
    let mean = lat.iter().map(|d| us(*d)).sum::<f64>() / lat.len() as f64;
    let mut m = span.metrics("asks_per_s", "cpu_ns_per_ask", n);
    m.extend([
        ("mean_us", mean),
        ("p50_us", pct(0.50)),
        ("p99_us", pct(0.99)),
    ]);
    m
}

/// `n` actors spawned one after another (each awaited until started); actors/s. The clock
/// stops after one ask to the last actor (for actix, whose `start()` does not wait, this is
/// what proves they all started: its arbiter starts them in order). They are then stopped.
async fn spawn_rate<F: Fw>(fw: &F, n: u64) -> Span {
    let mut refs = Vec::with_capacity(n as usize);
    let clock = Stopwatch::start();
    for _ in 0..n {
        refs.push(fw.spawn().await);
    }
    black_box(F::get(refs.last().expect("n >= 1")).await);
    let span = clock.stop();
    stop_all::<F>(refs).await;
    span
}

/// Prints the line a measurement process reports to the driver (see [`run_measurement`]).
pub fn print_result(fw: &str, test: Test, metrics: &Metrics) {
    let fields: Vec<String> = metrics.iter().map(|(k, v)| format!("{k}={v}")).collect();
    println!("RESULT {fw} {} {}", test.name(), fields.join(" "));
}

/// Runs one measurement process and reads its `RESULT <framework> <test> k=v ...` line
/// (echoing the fields). `None`, with the child's stderr printed, if it failed.
pub fn run_measurement(cmd: &mut std::process::Command) -> Option<Vec<(String, f64)>> {
    let out = cmd.output().expect("spawn a measurement process");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().find(|l| l.starts_with("RESULT "));
    match (out.status.success(), line) {
        (true, Some(line)) => {
            let fields: Vec<&str> = line.split_whitespace().skip(3).collect();
            eprintln!("{}", fields.join(" "));
            let parsed = fields
                .into_iter()
                .map(|f| {
                    let (k, v) = f.split_once('=').expect("k=v");
                    (k.to_owned(), v.parse().expect("number"))
                })
                .collect();
            Some(parsed)
        }
        _ => {
            eprintln!("FAILED ({})", out.status);
            eprintln!("{}", String::from_utf8_lossy(&out.stderr));
            None
        }
    }
}

/// What a driver does with a parse error: prints it and the usage (or only the usage for
/// `--help`, whose error is empty) and gives the exit code.
pub fn usage_exit(error: &str, usage: &str) -> std::process::ExitCode {
    if !error.is_empty() {
        eprintln!("error: {error}\n");
    }
    eprint!("{usage}");
    if error.is_empty() {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::from(2)
    }
}

/// Parses `--framework a,b,..`: each must be one of `known`.
pub fn framework_list(v: &str, known: &[&str]) -> Result<Vec<String>, String> {
    v.split(',')
        .map(|f| {
            known
                .contains(&f)
                .then(|| f.to_owned())
                .ok_or(format!("unknown framework {f:?} (one of {known:?})"))
        })
        .collect()
}

/// Parses a command-line list of positive numbers: `10,30,50` (`1_000` allowed).
pub fn positive_list(v: &str) -> Result<Vec<usize>, String> {
    v.split(',')
        .map(|x| {
            x.replace('_', "")
                .parse::<usize>()
                .ok()
                .filter(|&n| n >= 1)
                .ok_or(format!("not a positive number: {x}"))
        })
        .collect()
}

/// Resident set size of this process, in bytes (VmRSS of /proc/self/status).
pub fn rss_bytes() -> u64 {
    let status =
        std::fs::read_to_string("/proc/self/status").expect("/proc/self/status (Linux only)");
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .expect("VmRSS in /proc/self/status");
    let kb: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .expect("VmRSS value");
    kb * 1024
}

/// RSS growth per actor for `n` idle actors. Each has been spawned, started and has answered
/// one ask (so it is live and parked on its mailbox). The vector holding the refs is touched
/// before the baseline, so only the actors themselves are counted.
async fn idle_memory<F: Fw>(fw: &F, n: u64) -> f64 {
    // Bring the runtime up (worker threads, timer, thread-locals) before the baseline.
    let warm = fw.spawn().await;
    black_box(F::get(&warm).await);
    stop_all::<F>(vec![warm]).await;

    let mut refs: Vec<Option<F::Ref>> = (0..n).map(|_| None).collect();
    let before = rss_bytes();
    for slot in refs.iter_mut() {
        *slot = Some(fw.spawn().await);
    }
    for r in refs.iter().flatten() {
        black_box(F::get(r).await);
    }
    let after = rss_bytes();
    stop_all::<F>(refs.into_iter().flatten().collect()).await;
    after.saturating_sub(before) as f64 / n as f64
}
