//! The load, written once for both systems: writers that register fresh names, concurrently
//! for a while or one after another, and the latencies they saw.

use std::future::Future;
use std::time::{Duration, Instant};

use crate::bench::{Metrics, Stopwatch};

/// Something that registers names: the registry from one actor, or an etcd connection.
pub(crate) trait Writer: Send + 'static {
    /// Registers `name` (fresh: never registered before); an error if it did not take.
    fn register(&mut self, name: &str) -> impl Future<Output = Result<(), String>> + Send;
}

/// What a concurrent run did.
pub(crate) struct Concurrent<W> {
    pub(crate) writers: Vec<W>,
    pub(crate) done: u64,
    pub(crate) latencies: Vec<Duration>,
}

/// Every writer registers `{prefix}-{writer}-{i}` for i = 0, 1, ... until `run` has passed;
/// returns once the last write in flight has completed. A failed registration fails the run.
pub(crate) async fn concurrent<W: Writer>(
    writers: Vec<W>,
    prefix: &str,
    run: Duration,
) -> Concurrent<W> {
    let deadline = Instant::now() + run;
    let tasks: Vec<_> = writers
        .into_iter()
        .enumerate()
        .map(|(w, mut writer)| {
            let prefix = prefix.to_owned();
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut i = 0u64;
                while Instant::now() < deadline {
                    let name = format!("{prefix}-{w}-{i}");
                    let t0 = Instant::now();
                    if let Err(e) = writer.register(&name).await {
                        panic!("registering {name}: {e}");
                    }
                    latencies.push(t0.elapsed());
                    i += 1;
                }
                (writer, latencies)
            })
        })
        .collect();
    let mut out = Concurrent {
        writers: Vec::new(),
        done: 0,
        latencies: Vec::new(),
    };
    for task in tasks {
        let (writer, latencies) = task.await.expect("writer task");
        out.done += latencies.len() as u64;
        out.latencies.extend(latencies);
        out.writers.push(writer);
    }
    out
}

/// Throughput of `writers` registering concurrently: a warm-up of a fifth of `run` (new
/// connections, first allocations), then the measured `run`. Registrations per second,
/// CPU per registration (this process plus the processes that serve the writes, whose CPU
/// time so far `server_cpu_ns` reads: etcd's members), and the latency each write saw
/// under that load.
pub(crate) async fn throughput<W: Writer>(
    writers: Vec<W>,
    run: Duration,
    server_cpu_ns: impl Fn() -> u64,
) -> Metrics {
    let warm = concurrent(writers, "warm", run / 5).await;
    let server0 = server_cpu_ns();
    let clock = Stopwatch::start();
    let measured = concurrent(warm.writers, "w", run).await;
    let span = clock.stop();
    let server = server_cpu_ns().saturating_sub(server0);
    let n = measured.done;
    let mut m = vec![
        ("regs_per_s", n as f64 / span.wall.as_secs_f64()),
        (
            "cpu_us_per_reg",
            (span.cpu_ns + server) as f64 / 1e3 / n as f64,
        ),
        ("registrations", n as f64),
        (
            "runq_wait_pct",
            100.0 * span.wait_ns as f64 / span.wall.as_nanos() as f64,
        ),
    ];
    let (p50, p99) = percentiles(measured.latencies);
    m.push(("load_p50_ms", p50 * 1e3));
    m.push(("load_p99_ms", p99 * 1e3));
    m
}

/// `samples` registrations one after another (after a tenth as many for warm-up): their
/// latencies.
pub(crate) async fn sequential<W: Writer>(
    writer: &mut W,
    prefix: &str,
    samples: usize,
) -> Vec<Duration> {
    let mut latencies = Vec::with_capacity(samples);
    for i in 0..samples / 10 + samples {
        let name = format!("{prefix}-{i}");
        let t0 = Instant::now();
        if let Err(e) = writer.register(&name).await {
            panic!("registering {name}: {e}");
        }
        if i >= samples / 10 {
            latencies.push(t0.elapsed());
        }
    }
    latencies
}

/// The median and the 99th percentile, in seconds.
pub(crate) fn percentiles(mut v: Vec<Duration>) -> (f64, f64) {
    assert!(!v.is_empty(), "no samples");
    v.sort_unstable();
    let at = |p: f64| v[((v.len() as f64 * p) as usize).min(v.len() - 1)].as_secs_f64();
    (at(0.50), at(0.99))
}

/// The failover figures: `resumed`, from the crash to the write that succeeded after it;
/// and what `elected` returns, from the crash until a survivor named a new leader.
pub(crate) async fn failover_metrics(
    resumed: Duration,
    elected: tokio::task::JoinHandle<Duration>,
    attempts: u32,
) -> Metrics {
    let elected = tokio::time::timeout(Duration::from_secs(30), elected)
        .await
        .expect("a new leader")
        .expect("watch task");
    vec![
        ("failover_ms", resumed.as_secs_f64() * 1e3),
        ("elected_ms", elected.as_secs_f64() * 1e3),
        ("attempts", f64::from(attempts)),
    ]
}
