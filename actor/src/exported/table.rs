//! The exported-actor table proper (feature `remote`): a [`LiveTable`] of ractor cells, each
//! with the decode function of its actor's message type.

use ractor::message::SerializedMessage;
use ractor::{ActorCell, ActorRef};

use super::LiveTable;
use crate::names::Owner;
use crate::remote::{DecodeError, RemoteMessage, Tag, reject};

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

/// The tag in a message's first eight bytes.
fn tag_of(message: &SerializedMessage) -> Option<Tag> {
    let args = match message {
        SerializedMessage::Cast { args, .. } | SerializedMessage::Call { args, .. } => args,
        SerializedMessage::CallReply(..) => return None,
    };
    let (tag, _) = args.split_first_chunk::<8>()?;
    Some(Tag(u64::from_le_bytes(*tag)))
}

fn encoded_len(message: &SerializedMessage) -> usize {
    match message {
        SerializedMessage::Cast { args, .. } | SerializedMessage::Call { args, .. } => args.len(),
        SerializedMessage::CallReply(_, bytes) => bytes.len(),
    }
}

fn deliver_as<M: RemoteMessage>(
    cell: &ActorCell,
    message: SerializedMessage,
) -> Result<(), DeliverError> {
    let message = M::from_wire(message).map_err(reject)?;
    cell.send_message(message)
        .map_err(|_| DeliverError::ActorStopped)
}

impl Owner for Export {
    fn is_alive(&self) -> bool {
        self.cell.is_alive()
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
            Some(found) => Err(DeliverError::Decode(reject(DecodeError::WrongTag {
                expected: export.tag,
                found,
                type_name: "the exported actor's message type",
            }))),
            None => Err(DeliverError::Decode(reject(DecodeError::Truncated {
                len: encoded_len(&message),
            }))),
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
