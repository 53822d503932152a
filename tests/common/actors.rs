//! Actors and waits shared by the cluster tests.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::{Notify, mpsc};
use understudy::SupervisionEvent;
use understudy::prelude::*;

/// How long a test waits for something that must happen.
pub(crate) const WAIT: Duration = Duration::from_secs(30);

/// Waits until `cond` holds (checked every 10 ms), failing the test after [`WAIT`].
pub(crate) async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Takes `put`s and counts them; `hold` blocks it (a receiver that does not read) until its
/// gate opens.
#[derive(Actor)]
pub(crate) struct Sink {
    pub(crate) gate: Arc<Notify>,
    pub(crate) got: Arc<AtomicU64>,
}

#[messages(remote)]
impl Sink {
    #[message]
    async fn hold(&mut self) {
        self.gate.notified().await;
    }

    #[message]
    fn put(&mut self, data: Vec<u8>) {
        let _ = data;
        self.got.fetch_add(1, Ordering::Relaxed);
    }

    #[message]
    fn count(&self) -> u64 {
        self.got.load(Ordering::Relaxed)
    }
}

impl Sink {
    /// A new sink, its gate and its count.
    pub(crate) fn new() -> (Sink, Arc<Notify>, Arc<AtomicU64>) {
        let (gate, got) = (Arc::new(Notify::new()), Arc::new(AtomicU64::new(0)));
        (
            Sink {
                gate: gate.clone(),
                got: got.clone(),
            },
            gate,
            got,
        )
    }
}

/// Records the supervision events it gets (from monitors and links) into a channel, as
/// `terminated:<reason>` or `failed:<error>`.
pub(crate) struct Watcher(pub(crate) mpsc::UnboundedSender<String>);

impl understudy::Actor for Watcher {
    async fn on_supervision(
        &mut self,
        _ctx: &Ctx<Self>,
        event: SupervisionEvent,
    ) -> Result<(), ActorError> {
        let text = match event {
            SupervisionEvent::ActorTerminated(_, _, reason) => {
                format!("terminated:{}", reason.unwrap_or_default())
            }
            SupervisionEvent::ActorFailed(_, e) => format!("failed:{e}"),
            _ => return Ok(()),
        };
        let _ = self.0.send(text);
        Ok(())
    }
}

#[messages]
impl Watcher {
    #[message]
    fn ping(&self) {}
}

/// The next event a [`Watcher`] recorded, failing the test after [`WAIT`].
pub(crate) async fn next(rx: &mut mpsc::UnboundedReceiver<String>) -> String {
    tokio::time::timeout(WAIT, rx.recv())
        .await
        .expect("an event in time")
        .expect("open")
}
