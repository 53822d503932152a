//! The event view: which members this node has reported, and the events that bring that
//! view in line with foca's state after every call into foca.

use understudy_actor::NodeId;

use super::Swim;
use crate::membership::member::{LeaveReason, MembershipEvent, NodeLoad};
use crate::membership::wire::{NodeRecord, SwimId};
use foca::State;

/// A member we reported as joined, with the load we last reported.
#[derive(Debug)]
pub(super) struct Known {
    pub(super) record: NodeRecord,
    pub(super) load: Option<NodeLoad>,
}

impl Swim {
    /// Brings our event view of `node` in line with foca's state, emitting the events that
    /// explain the difference (see [`MembershipEvent`] for the grammar).
    pub(super) fn reconcile(&mut self, node: NodeId) {
        if node == self.own_id {
            return;
        }
        let entry = self
            .foca
            .iter_membership_state()
            .find(|m| m.id().node_id() == Some(node))
            .and_then(|m| m.id().node().map(|r| (r.clone(), m.state())));
        let (alive, down) = match entry {
            Some((record, State::Down)) => (None, Some(record)),
            Some((record, _)) => (Some(record), None),
            None => (None, None),
        };
        if alive.is_none() {
            // The book follows the live members: a node that comes back sends its load again.
            self.book.lock().latest.remove(&node);
        }
        match (self.known.remove(&node), alive) {
            (None, None) => {}
            // A node we first hear of as it leaves never joined, as far as we are concerned.
            (None, Some(record)) if record.leaving => {}
            (None, Some(record)) => self.join(record),
            (Some(known), None) => {
                let was = &known.record;
                let reason = match down {
                    Some(d) if d.incarnation > was.incarnation => LeaveReason::Restarted,
                    Some(d) if d.leaving && d.incarnation == was.incarnation => LeaveReason::Left,
                    _ => LeaveReason::Failed,
                };
                self.events.push_back(MembershipEvent::NodeLeft {
                    member: was.to_member(known.load),
                    reason,
                });
            }
            (Some(known), Some(record)) => {
                if record.incarnation > known.record.incarnation {
                    self.events.push_back(MembershipEvent::NodeLeft {
                        member: known.record.to_member(known.load),
                        reason: LeaveReason::Restarted,
                    });
                    self.join(record);
                } else {
                    // Same run under a renewed (rejoin) or leaving identity: not news.
                    self.known.insert(
                        node,
                        Known {
                            record,
                            load: known.load,
                        },
                    );
                }
            }
        }
    }

    fn join(&mut self, record: NodeRecord) {
        let load = self
            .book
            .lock()
            .latest
            .get(&record.node_id)
            .filter(|u| u.incarnation == record.incarnation)
            .map(|u| u.load);
        self.events
            .push_back(MembershipEvent::NodeJoined(record.to_member(load)));
        // A new member hears our load from us (no one else may tell it).
        self.send_load(&SwimId::Node(record.clone()));
        self.known.insert(record.node_id, Known { record, load });
    }

    pub(super) fn surface_loads(&mut self) {
        let fresh = std::mem::take(&mut self.book.lock().fresh);
        for update in fresh {
            if let Some(known) = self.known.get_mut(&update.node_id)
                && known.record.incarnation == update.incarnation
                && known.load != Some(update.load)
            {
                known.load = Some(update.load);
                self.events.push_back(MembershipEvent::NodeUpdated(
                    known.record.to_member(known.load),
                ));
            }
        }
    }
}
