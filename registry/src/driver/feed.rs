//! The feed: how a client's copy of the names follows the Raft log without running Raft.
//!
//! A client (a node outside the Raft configuration: not eligible, or beyond the voters and
//! standbys) subscribes to one member, picked by rendezvous hash of the two names among the
//! members that do not lead (so the leader's work does not grow with the cluster). The member
//! sends the changes after the client's revision, in order, each batch saying the revision
//! it starts from and the one it reaches; a batch that does not start where the client is
//! (a gap) makes the client subscribe again. A client too far behind for the member's recent
//! changes gets the whole table, in parts. An idle member still sends an empty batch every
//! [`HEARTBEAT`]: it carries revisions that changed no name (so linearizable reads on the
//! client can complete) and tells the client its copy is current.
//!
//! Bounds: a member serves at most [`MAX_SUBSCRIBERS`] clients; a client that cannot keep up
//! (its connection refuses more) is dropped and subscribes again. A client assembles at most
//! `max_names` names from image parts.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::time::Instant;
use understudy_cluster::identity::NodeName;

use super::{Shared, lock};
use crate::core::command::Owner;
use crate::core::placement::Placed;
use crate::core::table::TableImage;
use crate::wire::{self, Feed, PeerMessage, Subscribed};

/// How often an idle member tells its clients they are current.
pub(crate) const HEARTBEAT: Duration = Duration::from_millis(250);

/// A client that heard nothing from its member for this long subscribes elsewhere.
pub(crate) const SILENCE: Duration = Duration::from_secs(2);

/// The most clients one member feeds.
pub(crate) const MAX_SUBSCRIBERS: usize = 1024;

/// Names per image part (well under a frame).
const IMAGE_PART: usize = 4096;

/// Placement records per image part (each carries its spawn argument, at most 64 KiB).
const PLACED_PART: usize = 8;

/// An image arriving in parts: its revision, names and placement records so far.
#[derive(Debug, Default)]
struct Assembling {
    revision: u64,
    names: Vec<(String, Owner)>,
    placed: Vec<(String, Placed)>,
}

/// A client's side of its feed.
#[derive(Debug, Default)]
pub(crate) struct Following {
    source: Option<NodeName>,
    last_heard: Option<Instant>,
    assembling: Option<Assembling>,
}

/// How long ago this client last heard from its member (None: not following one).
pub(crate) fn last_heard(shared: &Shared) -> Option<Duration> {
    let following = lock(&shared.following);
    following.source.as_ref()?;
    following.last_heard.map(|t| t.elapsed())
}

/// The member this client follows, if any.
pub(crate) fn source(shared: &Shared) -> Option<NodeName> {
    lock(&shared.following).source.clone()
}

/// Member side: a client asks to be fed from `from`.
pub(crate) fn subscribe(shared: &Shared, client: NodeName, from: u64) -> Subscribed {
    if !shared.formed() {
        return Subscribed::Refused;
    }
    let mut subscribers = lock(&shared.subscribers);
    if subscribers.len() >= MAX_SUBSCRIBERS && !subscribers.contains_key(&client) {
        return Subscribed::Refused;
    }
    subscribers.insert(client, from);
    drop(subscribers);
    shared.feed_now.notify_one();
    Subscribed::Accepted
}

/// Member side: sends each subscriber what it lacks, on every change and every heartbeat.
pub(crate) async fn serve(shared: Weak<Shared>) {
    let Some(s) = shared.upgrade() else { return };
    let mut changes = s.kernel.changes();
    let kick = s.feed_now.clone();
    drop(s);
    let mut last_beat = Instant::now();
    loop {
        tokio::select! {
            _ = changes.recv() => {}
            () = kick.notified() => {}
            () = tokio::time::sleep(HEARTBEAT) => {}
        }
        let Some(s) = shared.upgrade() else { return };
        if s.ctx.node().is_none() {
            return;
        }
        if !s.formed() {
            lock(&s.subscribers).clear();
            continue;
        }
        let beat = last_beat.elapsed() >= HEARTBEAT;
        if beat {
            last_beat = Instant::now();
        }
        let subscribers: Vec<(NodeName, u64)> = lock(&s.subscribers)
            .iter()
            .map(|(n, r)| (n.clone(), *r))
            .collect();
        for (client, sent) in subscribers {
            let (messages, reached) = {
                let state = s.kernel.read();
                let now = state.table.revision();
                if now == sent && !beat {
                    continue;
                }
                match state.changes_after(sent) {
                    Some((changes, placed)) => (
                        vec![Feed::Changes {
                            from: sent,
                            to: now,
                            changes,
                            placed,
                        }],
                        now,
                    ),
                    None => (image_parts(&state.table.image()), now),
                }
            };
            let delivered = messages.into_iter().all(|feed| {
                s.ctx
                    .notify(&client, PeerMessage::Feed(feed).encode())
                    .is_ok()
            });
            let mut subscribers = lock(&s.subscribers);
            if delivered {
                if let Some(at) = subscribers.get_mut(&client) {
                    *at = reached;
                }
            } else {
                // Its connection is gone or full: it subscribes again when it notices.
                subscribers.remove(&client);
            }
        }
    }
}

fn image_parts(image: &TableImage) -> Vec<Feed> {
    let part = |names: &[(String, Owner)], placed: &[(String, Placed)]| Feed::Image {
        revision: image.revision,
        names: names.to_vec(),
        placed: placed.to_vec(),
        last: false,
    };
    let mut parts: Vec<Feed> = image
        .names
        .chunks(IMAGE_PART)
        .map(|names| part(names, &[]))
        .chain(
            image
                .placed
                .chunks(PLACED_PART)
                .map(|placed| part(&[], placed)),
        )
        .collect();
    if parts.is_empty() {
        parts.push(part(&[], &[]));
    }
    if let Some(Feed::Image { last, .. }) = parts.last_mut() {
        *last = true;
    }
    parts
}

/// Client side: a feed message from `from`.
pub(crate) fn on_feed(shared: &Shared, from: &NodeName, feed: Feed) {
    if shared.stalled.load(std::sync::atomic::Ordering::Relaxed) {
        return;
    }
    let mut following = lock(&shared.following);
    if following.source.as_ref() != Some(from) {
        drop(following);
        let _ = shared.ctx.notify(from, PeerMessage::Unsubscribe.encode());
        return;
    }
    following.last_heard = Some(Instant::now());
    match feed {
        Feed::Changes {
            from: at,
            to,
            changes,
            placed,
        } => {
            if !shared.kernel.follow(at, to, changes, placed) {
                // A gap: start over from where this copy is.
                following.source = None;
            }
        }
        Feed::Image {
            revision,
            names,
            placed,
            last,
        } => {
            let parts = following.assembling.get_or_insert_with(|| Assembling {
                revision,
                ..Assembling::default()
            });
            let max = shared.config.max_names as usize;
            let too_many = parts.names.len() + names.len() > max
                || parts.placed.len() + placed.len() > max
                || !placed.iter().all(|(_, p)| p.spec.fits());
            if parts.revision != revision || too_many {
                following.assembling = None;
                following.source = None;
                return;
            }
            parts.names.extend(names);
            parts.placed.extend(placed);
            if last && let Some(image) = following.assembling.take() {
                shared.kernel.restore(&TableImage {
                    revision: image.revision,
                    names: image.names,
                    requests: Vec::new(),
                    placed: image.placed,
                });
            }
        }
    }
}

/// Client side: keeps this node subscribed to a member while it is not one itself.
pub(crate) async fn follow(shared: Weak<Shared>) {
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let Some(s) = shared.upgrade() else { return };
        if s.ctx.node().is_none() {
            return;
        }
        if s.formed() {
            let source = lock(&s.following).source.take();
            if let Some(source) = source {
                let _ = s.ctx.notify(&source, PeerMessage::Unsubscribe.encode());
            }
            continue;
        }
        let (current, stale) = {
            let following = lock(&s.following);
            let stale = following.source.as_ref().is_none_or(|source| {
                following.last_heard.is_none_or(|t| t.elapsed() > SILENCE)
                    || !lock(&s.peers).get(source).is_some_and(|h| h.formed)
            });
            (following.source.clone(), stale)
        };
        let Some(member) = pick_member(&s) else {
            continue;
        };
        // A healthy feed is kept while its member is still the pick. It is left when the
        // pick changes: a client that joined while the leader was the only member must move
        // off the leader once followers exist, or the leader feeds it for good.
        if !stale && current.as_ref() == Some(&member) {
            continue;
        }
        if let Some(old) = current.filter(|old| *old != member) {
            let _ = s.ctx.notify(&old, PeerMessage::Unsubscribe.encode());
        }
        let from = s.kernel.revision();
        {
            let mut following = lock(&s.following);
            following.source = Some(member.clone());
            following.last_heard = Some(Instant::now());
            following.assembling = None;
        }
        let body = PeerMessage::Subscribe { from }.encode();
        let accepted = match s.ctx.request(&member, body, SILENCE).await {
            Ok(bytes) => wire::decode::<Subscribed>(&bytes) == Ok(Subscribed::Accepted),
            Err(_) => false,
        };
        if !accepted {
            let mut following = lock(&s.following);
            if following.source.as_ref() == Some(&member) {
                following.source = None;
            }
        }
    }
}

/// The member to follow: the highest rendezvous hash of (this node, member) among members,
/// leaving out the leader unless it is the only one.
fn pick_member(s: &Arc<Shared>) -> Option<NodeName> {
    let leader = s.leader();
    let members: HashMap<NodeName, bool> = lock(&s.peers)
        .iter()
        .filter(|(_, h)| h.formed)
        .map(|(n, _)| (n.clone(), Some(n.as_str()) == leader.as_deref()))
        .collect();
    let score = |n: &NodeName| {
        let mut h = DefaultHasher::new();
        (s.me.as_str(), n.as_str()).hash(&mut h);
        h.finish()
    };
    let best = |followers_only: bool| {
        members
            .iter()
            .filter(|(_, leads)| !followers_only || !**leads)
            .map(|(n, _)| n)
            .max_by_key(|n| score(n))
            .cloned()
    };
    best(true).or_else(|| best(false))
}
