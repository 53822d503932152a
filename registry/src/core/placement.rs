//! Named actors the registry places and keeps running: the replicated records, as a pure
//! state machine (the name table applies them in the same log order as its names).
//!
//! Semantics (Erlang's `global` names with a placement and a restart policy, as Akka's
//! cluster singleton keeps one instance):
//! - **One record per placed name**, and so one assignment at a time: a record is
//!   *Starting* on one node (under an epoch, the revision that assigned it), *Running* (the
//!   name is bound to the actor that node started), or *Orphaned* (its actor or its node is
//!   gone, and the restart policy asks for it to run again).
//! - **Place** assigns a free name to a node. A name held by an actor answers with the
//!   holder; a name being started answers where. A re-place (after an orphaning) names the
//!   epoch it replaces and is refused if the record has moved on, so when several nodes
//!   notice a failure at once exactly one re-place wins.
//! - **Bind**: only the actor started for the current epoch, on the node assigned, takes the
//!   name. Any other start is stale and its node stops it.
//! - **Move** (a graceful leave): the holder keeps the name while the node it moves to starts
//!   a successor, whose bind takes the name over in one step; if the successor's node fails
//!   first the holder stays, and if the holder stops first the move goes on as a start.
//! - **Abandon**: the node assigned could not start the actor (no such kind, bad arguments,
//!   its factory failed). A first placement is dropped, so the caller gets the error and the
//!   name is free; a restart is orphaned again.
//! - **Restart** follows the supervisor's vocabulary: `Permanent` always, `Transient` after an
//!   abnormal exit (a node's death is one), `Temporary` never (the record is dropped with the
//!   name). **Intensity is cluster-wide**: more than `max_restarts` re-places within
//!   `within_ms` (by the proposer's clock, carried in the command) and the record is dropped:
//!   a kind that keeps crashing is not restarted around the cluster forever.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use understudy_actor::NodeId;
use understudy_actor::supervisor::Restart;

use super::command::Owner;

/// The largest encoded spawn argument a record carries.
pub const MAX_ARGS_BYTES: usize = 64 * 1024;

/// The most restarts one record remembers (an intensity above it counts as this).
pub const MAX_RESTARTS: u32 = 1024;

/// The longest kind name.
pub const MAX_KIND_LEN: usize = 255;

/// Where a named actor is started.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Placement {
    /// On the calling node (after a failover: any node that has the kind).
    Local,
    /// On this node only.
    Node(String),
    /// On the first of these nodes that is up and has the kind, else on any that has it.
    PreferNodes(Vec<String>),
    /// On the node with the lowest gossiped load, then the fewest named actors.
    LeastLoaded,
    /// On a node picked at random.
    Random,
    /// On the node the name hashes to (rendezvous hashing: stable while that node stays,
    /// and a node joining moves only the names it now wins).
    Hash,
}

/// How many restarts a placed name may have in a window before the registry gives up.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Intensity {
    /// Restarts allowed within the window (OTP's `intensity`; at most [`MAX_RESTARTS`]).
    pub max_restarts: u32,
    /// The window, in milliseconds (OTP's `period`).
    pub within_ms: u64,
}

impl Default for Intensity {
    /// OTP's default: 1 restart in 5 seconds, here 3 in 5: a failover often restarts twice
    /// in a row when two nodes go down together.
    fn default() -> Self {
        Intensity {
            max_restarts: 3,
            within_ms: 5_000,
        }
    }
}

/// What to start for a placed name, and how to keep it running.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Spec {
    /// The kind registered on the nodes that can start it.
    pub kind: String,
    /// The factory's argument, encoded (postcard).
    pub args: Vec<u8>,
    /// Where to start it.
    pub placement: Placement,
    /// When to start it again.
    pub restart: Restart,
    /// How often it may be started again.
    pub intensity: Intensity,
}

/// The node a name is assigned to: its id and the run that was asked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Target {
    /// The node.
    pub node: NodeId,
    /// Its run (incarnation) when assigned.
    pub incarnation: u64,
}

/// Where a placed name stands.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Stage {
    /// Assigned to `target`, which is starting it.
    Starting {
        /// The node starting it.
        target: Target,
    },
    /// Bound to this actor.
    Running {
        /// The actor.
        owner: Owner,
    },
    /// Being handed over: `owner` holds the name until the actor `target` starts binds
    /// it, so the name never goes without a holder.
    Moving {
        /// The holder until the bind.
        owner: Owner,
        /// The node starting its successor.
        target: Target,
    },
    /// Its actor or node is gone; waiting to be placed again.
    Orphaned {
        /// Where it ran last (a re-place avoids it while it is down).
        last: NodeId,
    },
}

impl Spec {
    /// Whether it is within the limits every node holds records to (a peer's records
    /// beyond them are refused).
    pub fn fits(&self) -> bool {
        self.args.len() <= MAX_ARGS_BYTES
            && self.kind.len() <= MAX_KIND_LEN
            && match &self.placement {
                Placement::Node(n) => n.len() <= MAX_KIND_LEN,
                Placement::PreferNodes(ns) => {
                    ns.len() <= 64 && ns.iter().all(|n| n.len() <= MAX_KIND_LEN)
                }
                _ => true,
            }
    }
}

/// A placed name's record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Placed {
    /// What to start.
    pub spec: Spec,
    /// The revision of the assignment in force.
    pub epoch: u64,
    /// Where it stands.
    pub stage: Stage,
    /// When it was placed again, by the proposers' clocks (ms), the latest last; only those
    /// inside the intensity window are kept.
    pub restarts: Vec<u64>,
}

/// The answer to a `Place`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Placing {
    /// Assigned under this epoch: the target is to start it.
    Assigned { epoch: u64 },
    /// Already being started on `target` under `epoch`.
    Starting { target: Target, epoch: u64 },
    /// A re-place that names an epoch no longer in force, or an orphan that is not orphaned.
    Stale,
    /// The record ran out of restarts and was dropped.
    GaveUp,
}

/// Every placed name's record.
#[derive(Clone, Debug, Default)]
pub struct Placements {
    records: BTreeMap<String, Placed>,
    /// Names whose record changed since [`take_touched`](Self::take_touched).
    touched: Vec<String>,
}

impl PartialEq for Placements {
    fn eq(&self, other: &Self) -> bool {
        self.records == other.records
    }
}

impl Eq for Placements {}

impl Placements {
    /// The record of `name`.
    pub fn get(&self, name: &str) -> Option<&Placed> {
        self.records.get(name)
    }

    /// Every record, in name order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Placed)> {
        self.records.iter().map(|(n, p)| (n.as_str(), p))
    }

    /// How many records there are.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// The names whose record changed (or went) since the last call, each once.
    pub fn take_touched(&mut self) -> Vec<String> {
        let mut touched = std::mem::take(&mut self.touched);
        touched.sort();
        touched.dedup();
        touched
    }

    /// Sets `name`'s record as a member's copy has it (a replica following a feed).
    pub(crate) fn set(&mut self, name: &str, record: Option<Placed>) {
        match record {
            Some(record) => self.records.insert(name.to_owned(), record),
            None => self.records.remove(name),
        };
    }

    /// Assigns `name` (free of holders: the table checked) to `target`. `replaces` names the
    /// epoch of the orphaned record a failover re-places.
    pub(crate) fn place(
        &mut self,
        name: &str,
        spec: &Spec,
        target: Target,
        replaces: Option<u64>,
        at_ms: u64,
        revision: u64,
    ) -> Placing {
        self.touched.push(name.to_owned());
        match (self.records.get_mut(name), replaces) {
            (Some(record), None) => match record.stage {
                Stage::Starting { target } => Placing::Starting {
                    target,
                    epoch: record.epoch,
                },
                // Running with no holder cannot be (the bind made the holder); an orphan is
                // re-placed by a failover naming its epoch, not by a fresh spawn.
                _ => Placing::Stale,
            },
            (Some(record), Some(epoch)) => {
                if record.epoch != epoch || !matches!(record.stage, Stage::Orphaned { .. }) {
                    return Placing::Stale;
                }
                let window = record.spec.intensity.within_ms;
                record
                    .restarts
                    .retain(|t| at_ms.saturating_sub(*t) < window);
                let allowed = record.spec.intensity.max_restarts.min(MAX_RESTARTS);
                if record.restarts.len() as u64 >= u64::from(allowed) {
                    self.records.remove(name);
                    return Placing::GaveUp;
                }
                record.restarts.push(at_ms);
                record.epoch = revision;
                record.stage = Stage::Starting { target };
                Placing::Assigned { epoch: revision }
            }
            (None, Some(_)) => Placing::Stale,
            (None, None) => {
                self.records.insert(
                    name.to_owned(),
                    Placed {
                        spec: spec.clone(),
                        epoch: revision,
                        stage: Stage::Starting { target },
                        restarts: Vec::new(),
                    },
                );
                Placing::Assigned { epoch: revision }
            }
        }
    }

    /// Whether `owner` may take `name` as the start of `epoch`: the record is starting (or
    /// moving) under that epoch, to the owner's node.
    pub(crate) fn may_bind(&self, name: &str, owner: &Owner, epoch: u64) -> bool {
        self.records.get(name).is_some_and(|r| {
            r.epoch == epoch
                && matches!(r.stage,
                    Stage::Starting { target } | Stage::Moving { target, .. }
                        if target.node == owner.node())
        })
    }

    /// Starts handing `name` over from its holder `owner` to `target`. The new epoch, or
    /// `None` if `owner` does not hold it as a running placed name.
    pub(crate) fn begin_move(
        &mut self,
        name: &str,
        owner: &Owner,
        target: Target,
        revision: u64,
    ) -> Option<u64> {
        self.touched.push(name.to_owned());
        let record = self.records.get_mut(name)?;
        if !matches!(&record.stage, Stage::Running { owner: o } if o == owner) {
            return None;
        }
        record.stage = Stage::Moving {
            owner: *owner,
            target,
        };
        record.epoch = revision;
        Some(revision)
    }

    /// `owner` took `name` (after [`may_bind`](Self::may_bind)).
    pub(crate) fn bound(&mut self, name: &str, owner: Owner) {
        self.touched.push(name.to_owned());
        if let Some(record) = self.records.get_mut(name) {
            record.stage = Stage::Running { owner };
        }
    }

    /// The start of `epoch` failed on its node. True if the record was in that epoch.
    pub(crate) fn abandon(&mut self, name: &str, epoch: u64) -> bool {
        self.touched.push(name.to_owned());
        let Some(record) = self.records.get_mut(name) else {
            return false;
        };
        if record.epoch != epoch {
            return false;
        }
        let target = match record.stage {
            Stage::Starting { target } => target,
            // A move whose successor failed: the holder keeps the name.
            Stage::Moving { owner, .. } => {
                record.stage = Stage::Running { owner };
                return true;
            }
            _ => return false,
        };
        if record.restarts.is_empty() {
            self.records.remove(name);
        } else {
            record.stage = Stage::Orphaned { last: target.node };
        }
        true
    }

    /// `name` was unregistered on purpose: it is no longer kept running.
    pub(crate) fn forget(&mut self, name: &str) {
        self.touched.push(name.to_owned());
        self.records.remove(name);
    }

    /// `name`'s holder `owner` stopped (`abnormal`: it failed or its node is gone): the
    /// record is orphaned if its policy restarts it, dropped otherwise.
    pub(crate) fn holder_stopped(&mut self, name: &str, owner: &Owner, abnormal: bool) {
        self.touched.push(name.to_owned());
        let Some(record) = self.records.get_mut(name) else {
            return;
        };
        if let Stage::Moving { owner: o, target } = record.stage
            && o == *owner
        {
            // The successor is on its way: it binds the name when it starts.
            record.stage = Stage::Starting { target };
            return;
        }
        if !matches!(&record.stage, Stage::Running { owner: o } if o == owner) {
            return;
        }
        if restarts(record.spec.restart, abnormal) {
            record.stage = Stage::Orphaned { last: owner.node() };
        } else {
            self.records.remove(name);
        }
    }

    /// Runs of `node` up to `incarnation` are gone: what they were starting is orphaned (or
    /// dropped, for `Temporary`). Names they held are handled by [`holder_stopped`].
    ///
    /// [`holder_stopped`]: Self::holder_stopped
    pub(crate) fn node_gone(&mut self, node: NodeId, incarnation: u64) {
        let mut dropped = Vec::new();
        for (name, record) in &mut self.records {
            if let Stage::Moving { owner, target } = record.stage
                && target.node == node
                && target.incarnation <= incarnation
            {
                // The successor's node is gone: the holder keeps the name.
                record.stage = Stage::Running { owner };
                self.touched.push(name.clone());
                continue;
            }
            let Stage::Starting { target } = record.stage else {
                continue;
            };
            if target.node != node || target.incarnation > incarnation {
                continue;
            }
            self.touched.push(name.clone());
            if restarts(record.spec.restart, true) {
                record.stage = Stage::Orphaned { last: node };
            } else {
                dropped.push(name.clone());
            }
        }
        for name in dropped {
            self.records.remove(&name);
        }
    }

    /// The records as they travel in a snapshot.
    pub fn image(&self) -> Vec<(String, Placed)> {
        self.records
            .iter()
            .map(|(n, p)| (n.clone(), p.clone()))
            .collect()
    }

    /// Replaces the records with `image`.
    pub fn restore(&mut self, image: &[(String, Placed)]) {
        self.records = image.iter().cloned().collect();
    }
}

/// Whether `policy` restarts an actor that stopped (`abnormal`: failed, or its node died).
fn restarts(policy: Restart, abnormal: bool) -> bool {
    match policy {
        Restart::Permanent => true,
        Restart::Transient => abnormal,
        Restart::Temporary => false,
    }
}

#[cfg(test)]
mod tests;
