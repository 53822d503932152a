//! What the fuzz target `registry_messages` runs (`fuzz/src/checks/registry.rs`): the decoder
//! of every registry message a peer can send, and the pure code that consumes what it
//! decodes. Hidden: not part of the API.

use understudy_actor::{ActorAddr, NodeId, Tag};

use crate::core::command::{Command, Owner, Request, RequestId};
use crate::core::table::{Change, NameTable, TableImage};
use crate::eventual::wire::{EventualMessage, Version, WireClaim};
use crate::wire::{Claim, Feed, Hello, PeerMessage};

/// Decodes `bytes` as a registry message. If it decodes, checks that its canonical encoding
/// is a fixed point, and feeds the parts a pure core consumes (commands, feed batches,
/// images) to a name table. Panics only on a bug. Returns whether `bytes` decoded.
pub fn check(bytes: &[u8]) -> bool {
    let Ok(message) = PeerMessage::decode(bytes) else {
        return false;
    };
    let once = message.encode();
    let again = PeerMessage::decode(&once).expect("a re-encoded message decodes");
    assert_eq!(
        again.encode(),
        once,
        "the canonical encoding is a fixed point"
    );
    let mut table: NameTable = NameTable::new(64);
    let mut changes = Vec::new();
    match message {
        PeerMessage::Forward(request) => {
            let first = table.apply_request(&request, 1, &mut changes);
            let again = table.apply_request(&request, 2, &mut changes);
            assert_eq!(first, again, "a repeated request answers as the first");
        }
        PeerMessage::Feed(Feed::Changes {
            from,
            to,
            changes: batch,
            placed,
        }) => {
            // As a client takes it: checked whole against the limits, then applied.
            let copy = crate::kernel::Kernel::new(64);
            copy.follow(from, to, batch, placed);
        }
        PeerMessage::Feed(Feed::Image {
            revision,
            names,
            placed,
            ..
        }) => {
            let image = TableImage {
                revision,
                names,
                requests: Vec::new(),
                placed,
            };
            table.restore(&image, &mut changes);
            assert_eq!(table.revision(), revision);
        }
        PeerMessage::Eventual(message) => {
            // As a node takes it from an up peer: checked whole, then merged.
            let mut core = crate::eventual::core::EventualCore::new(node(1), 1, 64);
            core.peer_up(node(2));
            core.receive(node(2), message);
            let _ = core.take_outputs();
        }
        _ => {}
    }
    true
}

fn node(raw: u64) -> NodeId {
    NodeId::new(raw).expect("non-zero")
}

fn request(command: Command) -> Request {
    Request {
        id: RequestId { session: 5, seq: 1 },
        command,
    }
}

fn owner(pid: u64) -> Owner {
    Owner {
        addr: ActorAddr { node: node(7), pid },
        tag: Tag::of("fuzz.Worker"),
        incarnation: 3,
    }
}

/// Valid encodings of each message kind (the corpus seeds), and near misses.
fn wire_claim() -> WireClaim {
    WireClaim {
        pid: 9,
        tag: understudy_actor::Tag(7),
        at_ms: 1_000,
        seq: 2,
    }
}

fn spec() -> crate::core::placement::Spec {
    crate::core::placement::Spec {
        kind: "worker".into(),
        args: vec![1, 2, 3],
        placement: crate::core::placement::Placement::PreferNodes(vec!["n1".into()]),
        restart: understudy_actor::supervisor::Restart::Transient,
        intensity: crate::core::placement::Intensity::default(),
    }
}

pub fn seeds() -> Vec<(String, Vec<u8>)> {
    let messages: Vec<(&str, PeerMessage)> = vec![
        (
            "hello",
            PeerMessage::Hello(Hello {
                raft_id: 11,
                formed: true,
                forming: true,
                leader: Some("n0".into()),
                kinds: vec![("billing".into(), understudy_actor::Tag(7))],
            }),
        ),
        (
            "claim",
            PeerMessage::Claim(Claim {
                claimant: 11,
                voters: vec![(11, "n0".into()), (12, "n1".into())],
            }),
        ),
        (
            "forward-register",
            PeerMessage::Forward(request(Command::Register {
                name: "billing".into(),
                owner: owner(9),
            })),
        ),
        (
            "forward-unregister",
            PeerMessage::Forward(request(Command::Unregister {
                name: "billing".into(),
                owner: owner(9),
            })),
        ),
        (
            "forward-release-node",
            PeerMessage::Forward(request(Command::ReleaseNode {
                node: node(7),
                incarnation: 3,
            })),
        ),
        (
            "forward-place",
            PeerMessage::Forward(request(Command::Place {
                name: "billing".into(),
                spec: spec(),
                target: crate::core::placement::Target {
                    node: node(7),
                    incarnation: 3,
                },
                replaces: Some(4),
                at_ms: 1_000,
            })),
        ),
        (
            "forward-bind",
            PeerMessage::Forward(request(Command::Bind {
                name: "billing".into(),
                owner: owner(9),
                epoch: 4,
            })),
        ),
        (
            "start",
            PeerMessage::Start {
                name: "billing".into(),
                epoch: 4,
                spec: spec(),
            },
        ),
        (
            "eventual-sync",
            PeerMessage::Eventual(EventualMessage::Sync {
                version: Version {
                    incarnation: 1,
                    counter: 2,
                },
                entries: vec![("cache".into(), wire_claim())],
                reply: true,
            }),
        ),
        (
            "eventual-put",
            PeerMessage::Eventual(EventualMessage::Put {
                version: Version {
                    incarnation: 1,
                    counter: 3,
                },
                name: "cache".into(),
                claim: wire_claim(),
            }),
        ),
        (
            "eventual-digest",
            PeerMessage::Eventual(EventualMessage::Digest {
                version: Version {
                    incarnation: 1,
                    counter: 3,
                },
                hash: 77,
            }),
        ),
        ("read-index", PeerMessage::ReadIndex),
        ("subscribe", PeerMessage::Subscribe { from: 4 }),
        ("unsubscribe", PeerMessage::Unsubscribe),
        (
            "feed-changes",
            PeerMessage::Feed(Feed::Changes {
                from: 4,
                to: 6,
                changes: vec![
                    Change {
                        revision: 5,
                        name: "a".into(),
                        old: None,
                        new: Some(owner(1)),
                    },
                    Change {
                        revision: 6,
                        name: "a".into(),
                        old: Some(owner(1)),
                        new: None,
                    },
                ],
                placed: vec![("p".into(), None)],
            }),
        ),
        (
            "feed-image",
            PeerMessage::Feed(Feed::Image {
                revision: 9,
                names: vec![("a".into(), owner(1)), ("b".into(), owner(2))],
                placed: Vec::new(),
                last: true,
            }),
        ),
    ];
    let raft = crate::raft::network::samples(request(Command::Register {
        name: "billing".into(),
        owner: owner(9),
    }))
    .into_iter()
    .map(|(name, request)| (name, PeerMessage::Raft { to: 12, request }));
    let mut out: Vec<(String, Vec<u8>)> = raft
        .chain(messages)
        .map(|(name, m)| (name.to_owned(), m.encode()))
        .collect();
    let valid = out[0].1.clone();
    out.push(("truncated".into(), valid[..valid.len() / 2].to_vec()));
    let mut trailing = valid;
    trailing.push(0);
    out.push(("trailing-byte".into(), trailing));
    out.push(("bad-variant".into(), vec![200]));
    out.push(("huge-length".into(), vec![10, 0xff, 0xff, 0xff, 0xff, 0x0f]));
    out.push(("empty".into(), Vec::new()));
    out
}
