//! The exported-actor table: which local actors this node lets other nodes reach, and how
//! to decode what arrives for each.
//!
//! Inbound delivery always goes through this per-node table, never through ractor's
//! process-global pid registry: with several nodes in one process, node B must not reach
//! node A's actors just because they share an address space. Each entry remembers the
//! actor's message type as a decode function, so bytes are checked against the type tag
//! before anything is enqueued, and a failure is an error value to the caller.
//!
//! The concurrency lives in [`LiveTable`], a pid → entry map that forgets entries whose
//! actor has stopped. It is generic over the entry (anything that is an [`Owner`]), so the
//! same code is model-checked under loom with plain values (`tests/loom_exports.rs`) and used
//! here with ractor cells.

use std::collections::HashMap;

use ractor::message::SerializedMessage;
use ractor::{ActorCell, ActorRef};

use crate::names::Owner;
use crate::remote::{DecodeError, RemoteMessage, Tag, reject};
use crate::sync::{Mutex, lock};

/// Why an inbound message was not delivered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DeliverError {
    /// No exported actor with that pid on this node (never exported, or stopped).
    #[error("no exported actor with pid {pid} on this node; it has stopped or was never exported")]
    UnknownActor {
        /// The pid asked for.
        pid: u64,
    },
    /// The bytes did not decode as the actor's message type.
    #[error("rejected: {0}")]
    Decode(#[from] DecodeError),
    /// The actor stopped between lookup and delivery.
    #[error("the actor stopped before the message could be enqueued")]
    ActorStopped,
}

type DeliverFn = fn(&ActorCell, SerializedMessage) -> Result<(), DeliverError>;

#[derive(Clone)]
struct Export {
    cell: ActorCell,
    tag: Tag,
    deliver: DeliverFn,
}

/// The bytes of a message's tag: the first eight of its `args`.
fn tag_of(message: &SerializedMessage) -> Option<Tag> {
    let args = match message {
        SerializedMessage::Cast { args, .. } | SerializedMessage::Call { args, .. } => args,
        SerializedMessage::CallReply(..) => return None,
    };
    let (tag, _) = args.split_first_chunk::<8>()?;
    Some(Tag(u64::from_le_bytes(*tag)))
}

fn deliver_as<M: RemoteMessage>(
    cell: &ActorCell,
    message: SerializedMessage,
) -> Result<(), DeliverError> {
    let message = M::from_wire(message).map_err(reject)?;
    cell.send_message(message)
        .map_err(|_| DeliverError::ActorStopped)
}

fn encoded_len(message: &SerializedMessage) -> usize {
    match message {
        SerializedMessage::Cast { args, .. } | SerializedMessage::Call { args, .. } => args.len(),
        SerializedMessage::CallReply(_, bytes) => bytes.len(),
    }
}

impl Owner for Export {
    fn is_alive(&self) -> bool {
        self.cell.is_alive()
    }
}

/// A concurrent pid → entry map that never hands out a dead entry.
///
/// Every operation is one critical section, which is what makes these promises hold under
/// any interleaving:
/// - a [`live`](Self::live) lookup that starts after a [`remove`](Self::remove) returned
///   never sees the removed entry;
/// - pruning a dead entry on lookup happens under the same lock as the liveness check, so it
///   can never remove an entry that was inserted in between;
/// - one pid has at most one entry; inserting again replaces it.
///
/// ```
/// use understudy_actor::exported::LiveTable;
/// use understudy_actor::names::Owner;
/// #[derive(Clone, Debug, PartialEq)]
/// struct Entry { alive: bool }
/// impl Owner for Entry { fn is_alive(&self) -> bool { self.alive } }
///
/// let table = LiveTable::new();
/// table.insert(1, Entry { alive: true });
/// table.insert(2, Entry { alive: false });
/// assert_eq!(table.live(1), Some(Entry { alive: true }));
/// assert_eq!(table.live(2), None); // dead: pruned on the way
/// assert_eq!(table.len(), 1);
/// assert!(table.remove(1));
/// assert!(table.is_empty());
/// ```
pub struct LiveTable<E> {
    entries: Mutex<Entries<E>>,
}

struct Entries<E> {
    map: HashMap<u64, E>,
    /// Size after the last sweep; the next insert past twice this sweeps again, so entries
    /// of owners that died unnoticed never make up more than half the table.
    swept: usize,
}

/// Tables smaller than this are never swept on insert.
const SWEEP_FLOOR: usize = 64;

impl<E: Owner> Default for LiveTable<E> {
    fn default() -> Self {
        Self::new()
    }
}

impl<E: Owner> LiveTable<E> {
    /// An empty table.
    pub fn new() -> Self {
        LiveTable {
            entries: Mutex::new(Entries {
                map: HashMap::new(),
                swept: 0,
            }),
        }
    }

    /// Inserts `entry` under `pid`, replacing any previous one. Returns whether one was there.
    pub fn insert(&self, pid: u64, entry: E) -> bool {
        let mut entries = lock(&self.entries);
        if entries.map.len() >= SWEEP_FLOOR.max(entries.swept * 2) {
            entries.map.retain(|_, e| e.is_alive());
            entries.swept = entries.map.len();
        }
        entries.map.insert(pid, entry).is_some()
    }

    /// Removes `pid`'s entry. Returns whether there was one.
    pub fn remove(&self, pid: u64) -> bool {
        lock(&self.entries).map.remove(&pid).is_some()
    }

    /// The entry for `pid` if its owner is alive; a dead owner's entry is pruned on the way.
    pub fn live(&self, pid: u64) -> Option<E> {
        let mut entries = lock(&self.entries);
        match entries.map.get(&pid) {
            Some(e) if e.is_alive() => Some(e.clone()),
            Some(_) => {
                entries.map.remove(&pid);
                None
            }
            None => None,
        }
    }

    /// How many entries the table holds (live or not yet pruned).
    pub fn len(&self) -> usize {
        lock(&self.entries).map.len()
    }

    /// Whether the table holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The per-node table of exported actors.
#[derive(Default)]
pub struct ExportTable {
    entries: LiveTable<Export>,
}

impl ExportTable {
    /// Exports `actor` under its pid. Exporting twice is harmless.
    pub fn export<M: RemoteMessage>(&self, actor: &ActorRef<M>) -> u64 {
        let cell = actor.get_cell();
        let pid = cell.get_id().pid();
        self.entries.insert(
            pid,
            Export {
                cell,
                tag: M::TAG,
                deliver: deliver_as::<M>,
            },
        );
        pid
    }

    /// Stops exporting `pid`. Returns whether it was exported.
    pub fn unexport(&self, pid: u64) -> bool {
        self.entries.remove(pid)
    }

    /// Forgets `pid` (its actor stopped). Returns whether it was exported.
    pub fn remove(&self, pid: u64) -> bool {
        self.entries.remove(pid)
    }

    /// The message tag an exported actor takes.
    pub fn tag_of(&self, pid: u64) -> Option<Tag> {
        self.entries.live(pid).map(|e| e.tag)
    }

    /// The cell of an exported, live actor.
    pub fn cell_of(&self, pid: u64) -> Option<ActorCell> {
        self.entries.live(pid).map(|e| e.cell)
    }

    /// Decodes `message` as the actor's type and enqueues it.
    pub fn deliver(&self, pid: u64, message: SerializedMessage) -> Result<(), DeliverError> {
        let export = self
            .entries
            .live(pid)
            .ok_or(DeliverError::UnknownActor { pid })?;
        (export.deliver)(&export.cell, message)
    }

    /// Checks `message`'s type tag and enqueues it still encoded: the actor decodes it in
    /// its own task as it takes it out of the mailbox (so the reader that called this never
    /// pays for decoding, and a [`backlog`](crate::backlog) token in its metadata is paid
    /// back at that moment). A payload that then fails to decode is counted in the
    /// `understudy_decode_errors_total` metric and dropped; the tag is checked here, so a
    /// message for another type is refused at once.
    pub fn deliver_encoded(
        &self,
        pid: u64,
        message: SerializedMessage,
    ) -> Result<(), DeliverError> {
        let export = self
            .entries
            .live(pid)
            .ok_or(DeliverError::UnknownActor { pid })?;
        match tag_of(&message) {
            Some(found) if found == export.tag => export
                .cell
                .send_serialized(message)
                .map_err(|_| DeliverError::ActorStopped),
            Some(found) => Err(DeliverError::Decode(crate::remote::reject(
                DecodeError::WrongTag {
                    expected: export.tag,
                    found,
                    type_name: "the exported actor's message type",
                },
            ))),
            None => Err(DeliverError::Decode(crate::remote::reject(
                DecodeError::Truncated {
                    len: encoded_len(&message),
                },
            ))),
        }
    }

    /// How many actors are exported (live or not yet pruned).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing is exported.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}
