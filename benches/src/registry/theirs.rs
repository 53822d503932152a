//! etcd's side of each measurement, the same load as [`super::ours`] against three etcd
//! members (see [`super::etcd`]): writes go to the leader's client address, as the
//! registry's writers run on the leader's node; reads and the follower rows go to a
//! follower's.

use std::hint::black_box;
use std::time::{Duration, Instant};

use super::etcd::{Etcd, Kv, Storage, Timing};
use super::load::{self, Writer};
use crate::bench::Metrics;

/// Gives up on one request after this long and tries again (the registry's writes give a
/// forwarded attempt the same time).
const ATTEMPT: Duration = Duration::from_secs(1);
/// Pause after a failed attempt (the registry's writes pause the same).
const RETRY: Duration = Duration::from_millis(20);
/// No successful write this long after the kill fails the run.
const LIMIT: Duration = Duration::from_secs(30);

/// One connection's put-if-absent registrations.
struct Conn(Kv);

impl Writer for Conn {
    async fn register(&mut self, name: &str) -> Result<(), String> {
        match tokio::time::timeout(ATTEMPT, self.0.put_if_absent(&format!("/names/{name}"))).await {
            Ok(Ok(true)) => Ok(()),
            Ok(Ok(false)) => Err(format!("{name} was taken already")),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => {
                self.0.reset();
                Err(format!("no answer within {ATTEMPT:?}"))
            }
        }
    }
}

/// The index of a member that does not lead.
fn follower(leader: usize) -> usize {
    (leader + 1) % 3
}

/// Registrations/s of `writers` connections to the leader, each its own writer.
pub(crate) async fn write(
    storage: Storage,
    timing: Timing,
    writers: usize,
    run: Duration,
) -> Metrics {
    let etcd = Etcd::start(storage, timing).await;
    let leader = etcd.client(etcd.leader().await);
    let writers: Vec<Conn> = (0..writers).map(|_| Conn(Kv::new(leader))).collect();
    load::throughput(writers, run, || etcd.cpu_ns()).await
}

/// Latency of one connection's sequential registrations, to the leader and to a follower.
pub(crate) async fn latency(storage: Storage, timing: Timing, samples: usize) -> Metrics {
    let etcd = Etcd::start(storage, timing).await;
    let leader = etcd.leader().await;
    let mut m = Metrics::new();
    for (at, member) in [("leader", leader), ("follower", follower(leader))] {
        let mut writer = Conn(Kv::new(etcd.client(member)));
        let (p50, p99) = load::percentiles(load::sequential(&mut writer, at, samples).await);
        let (k50, k99) = match at {
            "leader" => ("leader_p50_ms", "leader_p99_ms"),
            _ => ("follower_p50_ms", "follower_p99_ms"),
        };
        m.push((k50, p50 * 1e3));
        m.push((k99, p99 * 1e3));
    }
    m
}

/// Reads of one key from a follower on one connection: `samples` serializable gets (the
/// member's own copy, as `whereis`), then `samples` linearizable ones.
pub(crate) async fn lookup(storage: Storage, timing: Timing, samples: usize) -> Metrics {
    let etcd = Etcd::start(storage, timing).await;
    let leader = etcd.leader().await;
    let key = "/names/remote-holder";
    assert!(
        Kv::new(etcd.client(leader))
            .put_if_absent(key)
            .await
            .expect("put")
    );
    let mut kv = Kv::new(etcd.client(follower(leader)));
    let mut m = Metrics::new();
    for serializable in [true, false] {
        let mut lat = Vec::with_capacity(samples);
        let t_all = Instant::now();
        for i in 0..samples / 10 + samples {
            let t0 = Instant::now();
            let found = kv.get(key, serializable).await.expect("get");
            if !found {
                // A serializable read may lag the put by the replication delay.
                assert!(
                    t_all.elapsed() < LIMIT,
                    "{key} never showed on the follower"
                );
                continue;
            }
            black_box(found);
            if i >= samples / 10 {
                lat.push(t0.elapsed());
            }
        }
        let n = lat.len() as f64;
        let total: f64 = lat.iter().map(Duration::as_secs_f64).sum();
        let (p50, p99) = load::percentiles(lat);
        if serializable {
            m.push(("remote_ns", p50 * 1e9));
            m.push(("remote_per_s", n / total));
            m.push(("serializable_p99_us", p99 * 1e6));
        } else {
            m.push(("lin_p50_us", p50 * 1e6));
            m.push(("lin_p99_us", p99 * 1e6));
        }
    }
    m
}

/// Kills the leader (SIGKILL) and times, from the kill, until a registration through a
/// follower's connection succeeds (each attempt given [`ATTEMPT`], [`RETRY`] between
/// failed ones, as the registry's own writes do).
pub(crate) async fn failover(storage: Storage, timing: Timing) -> Metrics {
    let mut etcd = Etcd::start(storage, timing).await;
    let leader = etcd.leader().await;
    let mut writer = Conn(Kv::new(etcd.client(follower(leader))));
    writer
        .register("before")
        .await
        .expect("a write before the kill");

    let survivors = [
        etcd.client(follower(leader)),
        etcd.client(follower(follower(leader))),
    ];
    let old = etcd.member_id(leader).to_owned();

    let t0 = Instant::now();
    etcd.kill(leader);
    let elected = tokio::spawn(async move {
        loop {
            for &s in &survivors {
                if let Ok((_, now)) = super::etcd::status(s).await
                    && now != "0"
                    && now != old
                {
                    return t0.elapsed();
                }
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    });
    let mut attempts = 0u32;
    loop {
        attempts += 1;
        match writer.register(&format!("after-{attempts}")).await {
            Ok(()) => break,
            Err(e) => {
                assert!(t0.elapsed() < LIMIT, "no write within {LIMIT:?}: {e}");
                tokio::time::sleep(RETRY).await;
            }
        }
    }
    load::failover_metrics(t0.elapsed(), elected, attempts).await
}

/// The leader's CPU time per second over `window`, once `settle` has passed after the
/// members agreed on it (three members: etcd has no non-voting members to add).
pub(crate) async fn idle(
    storage: Storage,
    timing: Timing,
    settle: Duration,
    window: Duration,
) -> Metrics {
    let etcd = Etcd::start(storage, timing).await;
    tokio::time::sleep(settle).await;
    let leader = etcd.leader().await;
    let pid = etcd.pid(leader).expect("the leader runs");
    let (cpu0, t0) = (crate::bench::process_cpu_ns(pid), Instant::now());
    tokio::time::sleep(window).await;
    let secs = t0.elapsed().as_secs_f64();
    let cpu = crate::bench::process_cpu_ns(pid).saturating_sub(cpu0);
    let kept = etcd.leader().await == leader;
    vec![
        ("leader_cpu_ms_per_s", cpu as f64 / 1e6 / secs),
        ("leader_kept", f64::from(u8::from(kept))),
    ]
}
