//! The supervisor's child list: specs in start order, each with its running incarnation.
//!
//! Bookkeeping only — no awaiting here. A child is in one of three states:
//! - running: `cell` is `Some` (the only incarnation whose exit the supervisor acts on:
//!   events from older incarnations, e.g. one the supervisor stopped itself during a group
//!   restart, no longer match and are ignored — new incarnations have new `ActorId`s);
//! - restarting: `retry` is `Some` (waiting for a backoff delay, or to try a failed start
//!   again); only the retry carrying the same token may restart it;
//! - stopped: neither (terminated, or a Transient child that exited normally).

use std::time::Instant;

use ractor::{ActorCell, ActorId};
use tokio::task::AbortHandle;

use super::child_spec::{ChildKind, ChildSpec};
use super::protocol::{ChildCounts, ChildInfo};
use super::restart_window::RestartWindow;
use super::strategy::Strategy;

/// A pending restart of one child.
pub(crate) struct PendingRetry {
    pub(crate) token: u64,
    /// When it is due (tokio's clock, as the restart window's `now`).
    pub(crate) due: Instant,
    /// The backoff timer, if the retry is delayed (aborted when the retry is cancelled).
    pub(crate) timer: Option<AbortHandle>,
}

pub(crate) struct Child {
    pub(crate) spec: ChildSpec,
    pub(crate) cell: Option<ActorCell>,
    pub(crate) retry: Option<PendingRetry>,
    /// This child's own recent restarts, which set its backoff delay.
    pub(crate) history: RestartWindow,
    /// Incarnations the restart strategy started (see `ChildInfo::restarts`).
    pub(crate) restarts: u64,
}

impl Child {
    pub(crate) fn new(spec: ChildSpec, cell: ActorCell, history: RestartWindow) -> Self {
        Child {
            spec,
            cell: Some(cell),
            retry: None,
            history,
            restarts: 0,
        }
    }

    pub(crate) fn id(&self) -> &str {
        self.spec.id()
    }

    pub(crate) fn is(&self, actor: ActorId) -> bool {
        self.cell.as_ref().is_some_and(|c| c.get_id() == actor)
    }

    /// Forgets a pending restart, stopping its timer.
    pub(crate) fn cancel_retry(&mut self) {
        if let Some(PendingRetry {
            timer: Some(timer), ..
        }) = self.retry.take()
        {
            timer.abort();
        }
    }

    pub(crate) fn info(&self) -> ChildInfo {
        ChildInfo {
            id: self.spec.id().to_owned(),
            cell: self.cell.clone(),
            restarting: self.retry.is_some(),
            restarts: self.restarts,
            next_restart: self.retry.as_ref().map(|r| r.due),
            restart: self.spec.restart_type(),
            kind: self.spec.kind(),
            name: self.spec.registered_name().map(str::to_owned),
            message_type: self.spec.message_type(),
            message_type_id: self.spec.message_type_id(),
        }
    }
}

/// The children in start order.
#[derive(Default)]
pub(crate) struct Children {
    list: Vec<Child>,
}

impl Children {
    pub(crate) fn push(&mut self, child: Child) {
        self.list.push(child);
    }

    pub(crate) fn position(&self, id: &str) -> Option<usize> {
        self.list.iter().position(|c| c.id() == id)
    }

    pub(crate) fn get(&self, id: &str) -> Option<&Child> {
        self.list.iter().find(|c| c.id() == id)
    }

    pub(crate) fn get_mut(&mut self, id: &str) -> Option<&mut Child> {
        self.list.iter_mut().find(|c| c.id() == id)
    }

    /// The running child whose incarnation is `actor`.
    pub(crate) fn running(&self, actor: ActorId) -> Option<&Child> {
        self.list.iter().find(|c| c.is(actor))
    }

    pub(crate) fn remove(&mut self, id: &str) -> Option<Child> {
        let index = self.position(id)?;
        Some(self.list.remove(index))
    }

    /// Removes every child for which `drop` is true.
    pub(crate) fn remove_where(&mut self, mut drop: impl FnMut(&Child) -> bool) {
        self.list.retain(|c| !drop(c));
    }

    /// The ids restarted together with `id` under `strategy`, in start order.
    pub(crate) fn group(&self, strategy: Strategy, id: &str) -> Vec<String> {
        let Some(index) = self.position(id) else {
            return Vec::new();
        };
        self.list[strategy.affected(index, self.list.len())]
            .iter()
            .map(|c| c.id().to_owned())
            .collect()
    }

    /// All ids, in start order.
    pub(crate) fn ids(&self) -> Vec<String> {
        self.list.iter().map(|c| c.id().to_owned()).collect()
    }

    pub(crate) fn infos(&self) -> Vec<ChildInfo> {
        self.list.iter().map(Child::info).collect()
    }

    pub(crate) fn counts(&self) -> ChildCounts {
        let mut counts = ChildCounts {
            specs: self.list.len(),
            ..ChildCounts::default()
        };
        for c in &self.list {
            if c.cell.is_some() {
                counts.active += 1;
            }
            match c.spec.kind() {
                ChildKind::Worker => counts.workers += 1,
                ChildKind::Supervisor => counts.supervisors += 1,
            }
        }
        counts
    }
}

/// The first id that appears twice, if any (OTP refuses such a child list).
pub(crate) fn duplicate_id(specs: &[ChildSpec]) -> Option<&str> {
    let mut seen = std::collections::HashSet::new();
    specs.iter().map(ChildSpec::id).find(|id| !seen.insert(*id))
}
