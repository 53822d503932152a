//! The timer heap's entries: foca's timers and our own, ordered by due time, then foca's
//! order for simultaneous foca timers (an indirect probe before the next probe), then
//! insertion.

use std::cmp::Ordering;
use std::time::Instant;

use crate::membership::wire::SwimId;

/// What a timer entry does.
#[derive(Debug)]
pub(super) enum Tick {
    Foca(foca::Timer<SwimId>),
    Announce(u64),
    Sync(u64),
    LoadRefresh,
    LoadFanout,
    Rejoin(u64),
}

impl Tick {
    fn rank(&self) -> u8 {
        match self {
            Tick::Foca(_) => 0,
            Tick::Announce(_) => 1,
            Tick::Sync(_) => 2,
            Tick::LoadRefresh => 3,
            Tick::LoadFanout => 4,
            Tick::Rejoin(_) => 5,
        }
    }
}

#[derive(Debug)]
pub(super) struct Scheduled {
    pub(super) at: Instant,
    pub(super) seq: u64,
    pub(super) tick: Tick,
}

impl Ord for Scheduled {
    fn cmp(&self, other: &Self) -> Ordering {
        self.at
            .cmp(&other.at)
            .then_with(|| match (&self.tick, &other.tick) {
                // foca orders simultaneous timers (indirect probe before the next probe).
                (Tick::Foca(a), Tick::Foca(b)) => a.cmp(b),
                (a, b) => a.rank().cmp(&b.rank()),
            })
            .then(self.seq.cmp(&other.seq))
    }
}

impl PartialOrd for Scheduled {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Scheduled {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Scheduled {}
