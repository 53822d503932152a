//! Mesh stream frames: `FrameDecoder<Delivery>` (the data lanes), `FrameDecoder<Signal>` (the
//! signal stream) and `FrameDecoder<Control>` (the control stream), and the way
//! `mesh::FrameStream::recv` drives the same decoder.
//!
//! Input: one config byte, then the stream's bytes.
//! - bit 7 of the config byte picks the frame cap: set, [`SMALL_CAP`] (so that short inputs
//!   reach the "too large" path); clear, [`DEFAULT_MAX_FRAME`];
//! - bits 0–6 seed the chunk sizes the stream is delivered in (0: one chunk).
//!
//! Checks:
//! - decoding never panics;
//! - the outcome (frames, then clean end or error) is the same whether the stream arrives
//!   whole or in chunks, and the same when driven like `FrameStream::recv` (a fresh decoder
//!   per frame over the buffered bytes);
//! - every frame survives a canonical round trip: re-encoding it fits the cap, decodes to the
//!   same frame, and re-encodes to the same bytes.

use std::fmt::Debug;
use std::net::SocketAddr;

use serde::Serialize;
use serde::de::DeserializeOwned;
use understudy::cluster::wire::{
    Control, DEFAULT_MAX_FRAME, Delivery, ExtensionBody, FrameDecoder, Hello, PROTOCOL_VERSION,
    Refusal, ReplyOutcome, Signal, WireError, encode_frame,
};

/// The frame cap when the config byte's top bit is set.
pub const SMALL_CAP: usize = 256;

/// `FrameDecoder<Signal>` and `FrameDecoder<Delivery>` over the same bytes: what the signal
/// stream and a data lane carry.
pub fn signal_frames(data: &[u8]) -> bool {
    let signals = check_stream::<Signal>(data);
    let deliveries = check_stream::<Delivery>(data);
    signals || deliveries
}

/// `FrameDecoder<Control>`: what the control stream carries (Hello first).
pub fn control_frames(data: &[u8]) -> bool {
    check_stream::<Control>(data)
}

/// What a stream decoded to.
#[derive(Debug, PartialEq)]
struct Outcome<T> {
    frames: Vec<T>,
    /// `Ok` if the stream ended on a frame boundary, else why not.
    end: Result<(), WireError>,
}

fn check_stream<T>(data: &[u8]) -> bool
where
    T: Serialize + DeserializeOwned + PartialEq + Debug,
{
    let Some((&config, stream)) = data.split_first() else {
        return false;
    };
    let max = if config & 0x80 != 0 {
        SMALL_CAP
    } else {
        DEFAULT_MAX_FRAME
    };
    let chunks = chunks(stream, config & 0x7f);

    let whole = decode(&[stream], max);
    let split = decode::<T>(&chunks, max);
    assert_eq!(
        whole, split,
        "the chunk boundaries changed what the stream decodes to"
    );

    // FrameStream::recv reports a mid-frame end with its own byte counts; compare the rest.
    let (frames, end) = recv_like::<T>(&chunks, max);
    assert_eq!(frames, whole.frames, "FrameStream-style decoding disagrees");
    assert_eq!(
        end.is_ok(),
        whole.end.is_ok(),
        "FrameStream-style decoding ends differently: {end:?} vs {:?}",
        whole.end
    );

    for frame in &whole.frames {
        round_trip(frame, max);
    }
    !whole.frames.is_empty()
}

/// Pushes each chunk and pulls every whole frame, as a lane reader does.
fn decode<T: DeserializeOwned>(chunks: &[&[u8]], max: usize) -> Outcome<T> {
    let mut dec = FrameDecoder::<T>::new(max);
    let mut frames = Vec::new();
    for chunk in chunks {
        dec.push(chunk);
        loop {
            match dec.next_frame() {
                Ok(Some(frame)) => frames.push(frame),
                Ok(None) => break,
                Err(e) => {
                    return Outcome {
                        frames,
                        end: Err(e),
                    };
                }
            }
        }
    }
    Outcome {
        frames,
        end: dec.finish(),
    }
}

/// The loop of `mesh::FrameStream::recv`: a fresh decoder over the buffered bytes for each
/// frame, the consumed bytes drained after it, more bytes read when none is whole.
fn recv_like<T: DeserializeOwned>(chunks: &[&[u8]], max: usize) -> (Vec<T>, Result<(), WireError>) {
    let mut buf: Vec<u8> = Vec::new();
    let mut next = chunks.iter();
    let mut frames = Vec::new();
    loop {
        let mut dec = FrameDecoder::<T>::new(max);
        dec.push(&buf);
        match dec.next_frame() {
            Ok(Some(frame)) => {
                let used = buf.len() - dec.buffered();
                buf.drain(..used);
                frames.push(frame);
                continue;
            }
            Ok(None) => {}
            Err(e) => return (frames, Err(e)),
        }
        match next.next() {
            Some(chunk) => buf.extend_from_slice(chunk),
            None if buf.is_empty() => return (frames, Ok(())),
            None => {
                return (
                    frames,
                    Err(WireError::Truncated {
                        have: buf.len(),
                        need: buf.len() + 1,
                    }),
                );
            }
        }
    }
}

/// Splits `stream` into chunks whose sizes come from `seed` (0: one chunk). Mostly tiny
/// chunks (1–5 bytes, to split length prefixes), sometimes up to 64.
fn chunks(stream: &[u8], seed: u8) -> Vec<&[u8]> {
    if seed == 0 {
        return vec![stream];
    }
    let mut x = u32::from(seed).wrapping_mul(0x9e37_79b9) | 1;
    let mut out = Vec::new();
    let mut rest = stream;
    while !rest.is_empty() {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        let span = if x & 1 == 0 { 5 } else { 64 };
        let n = (1 + (x >> 8) as usize % span).min(rest.len());
        let (head, tail) = rest.split_at(n);
        out.push(head);
        rest = tail;
    }
    out
}

fn round_trip<T>(frame: &T, max: usize)
where
    T: Serialize + DeserializeOwned + PartialEq + Debug,
{
    // Decoding accepts some non-minimal encodings (postcard varints), so the canonical
    // encoding is never longer than what was decoded: it must fit the same cap.
    let bytes = encode_frame(frame, max)
        .unwrap_or_else(|e| panic!("a decoded frame does not re-encode: {e}: {frame:?}"));
    let mut dec = FrameDecoder::<T>::new(max);
    dec.push(&bytes);
    let again = match dec.next_frame() {
        Ok(Some(again)) => again,
        other => panic!("a re-encoded frame does not decode: {other:?}: {frame:?}"),
    };
    assert_eq!(&again, frame, "a frame changed in a round trip");
    assert_eq!(dec.buffered(), 0, "a re-encoded frame left bytes behind");
    let bytes2 = encode_frame(&again, max).expect("re-encodes");
    assert_eq!(bytes, bytes2, "the canonical encoding is not a fixed point");
}

// ---- seeds ----

fn frame<T: Serialize>(value: &T) -> Vec<u8> {
    encode_frame(value, DEFAULT_MAX_FRAME).expect("seed frames encode")
}

fn cat(frames: &[Vec<u8>]) -> Vec<u8> {
    frames.concat()
}

fn with_config(config: u8, stream: &[u8]) -> Vec<u8> {
    let mut out = vec![config];
    out.extend_from_slice(stream);
    out
}

/// One of each message a data lane carries, with edge values.
pub fn deliveries() -> Vec<(&'static str, Delivery)> {
    vec![
        (
            "tell-empty",
            Delivery::Tell {
                to: 0,
                variant: String::new(),
                args: vec![],
            },
        ),
        (
            "tell",
            Delivery::Tell {
                to: 7,
                variant: String::new(),
                args: crate::checks::messages::sample_args(),
            },
        ),
        (
            "tell-ractor-variant",
            Delivery::Tell {
                to: u64::MAX,
                variant: "Ping".into(),
                args: vec![0xff; 3],
            },
        ),
        (
            "tell-1k",
            Delivery::Tell {
                to: 1 << 40,
                variant: String::new(),
                args: (0..1024u32).map(|i| i as u8).collect(),
            },
        ),
        (
            "ask",
            Delivery::Ask {
                to: 3,
                call: u64::MAX,
                timeout_ms: 5_000,
                variant: String::new(),
                args: vec![1, 2, 3, 4, 5, 6, 7, 8, 0],
            },
        ),
    ]
}

/// One of each signal, with edge values.
pub fn signals() -> Vec<(&'static str, Signal)> {
    vec![
        (
            "reply-ok",
            Signal::Reply {
                call: 1,
                outcome: ReplyOutcome::Ok(vec![42]),
            },
        ),
        (
            "reply-unknown",
            Signal::Reply {
                call: 2,
                outcome: ReplyOutcome::UnknownActor,
            },
        ),
        (
            "reply-rejected",
            Signal::Reply {
                call: 3,
                outcome: ReplyOutcome::Rejected("bad tag \u{1f4a5}".into()),
            },
        ),
        (
            "reply-stopped",
            Signal::Reply {
                call: 4,
                outcome: ReplyOutcome::ActorStopped,
            },
        ),
        (
            "monitor",
            Signal::Monitor {
                watcher: 1,
                target: 2,
            },
        ),
        (
            "demonitor",
            Signal::Demonitor {
                watcher: 1,
                target: 2,
            },
        ),
        (
            "down-normal",
            Signal::Down {
                watcher: 1,
                target: 2,
                reason: None,
                after: vec![0, 0, 0, 0],
            },
        ),
        (
            "down-noconnection",
            Signal::Down {
                watcher: 128,
                target: 16_384,
                reason: Some("noconnection".into()),
                after: vec![u64::MAX; 64],
            },
        ),
        ("link", Signal::Link { from: 5, to: 6 }),
        ("unlink", Signal::Unlink { from: 5, to: 6 }),
        (
            "exit",
            Signal::Exit {
                from: 9,
                to: 10,
                reason: Some("panicked: \u{e9}".into()),
                after: vec![3],
            },
        ),
        (
            "extension-response-ok",
            Signal::ExtensionResponse {
                service: "registry".into(),
                id: 300,
                result: Ok(vec![9, 9].into()),
            },
        ),
        (
            "extension-response-err",
            Signal::ExtensionResponse {
                service: "locks".into(),
                id: 0,
                result: Err("no such lock".into()),
            },
        ),
        ("leaving", Signal::Leaving),
    ]
}

/// One of each control frame.
pub fn controls() -> Vec<(&'static str, Control)> {
    let hello = |addr: &str, version: u16| Hello {
        version,
        cluster: "prod".into(),
        name: "web-1".into(),
        node_id: 0x1234_5678_9abc_def0,
        incarnation: 1_700_000_000_000,
        mesh_addr: addr.parse::<SocketAddr>().expect("seed address"),
        lanes: 4,
        lane_buffer: 16 << 20,
        max_frame: 8 << 20,
    };
    vec![
        (
            "hello-v4",
            Control::Hello(hello("127.0.0.1:7000", PROTOCOL_VERSION)),
        ),
        (
            "hello-ack-v6",
            Control::HelloAck(hello("[::1]:65535", PROTOCOL_VERSION)),
        ),
        (
            "hello-future-version",
            Control::Hello(hello("10.0.0.1:1", u16::MAX)),
        ),
        ("refuse-duplicate", Control::Refuse(Refusal::Duplicate)),
        (
            "refuse-cluster",
            Control::Refuse(Refusal::Cluster {
                theirs: "other".into(),
                ours: "prod".into(),
            }),
        ),
        (
            "extension-notice",
            Control::Extension {
                service: "pg".into(),
                body: ExtensionBody::Notice(vec![0, 1, 2]),
            },
        ),
        (
            "extension-request",
            Control::Extension {
                service: "registry".into(),
                body: ExtensionBody::Request {
                    id: 300,
                    body: vec![0x80; 130],
                },
            },
        ),
    ]
}

/// Seeds for a stream of `T`: each frame alone (one chunk and split), all of them in one
/// stream, and the malformed shapes a stream can take.
fn stream_seeds<T: Serialize>(values: Vec<(&'static str, T)>) -> Vec<(String, Vec<u8>)> {
    let frames: Vec<Vec<u8>> = values.iter().map(|(_, v)| frame(v)).collect();
    let mut out = Vec::new();
    for (i, ((name, _), bytes)) in values.iter().zip(&frames).enumerate() {
        // Alternate whole and split delivery; a few in the small-cap mode.
        let config = match i % 3 {
            0 => 0,
            1 => 1 + i as u8,
            _ => 0x80 | (1 + i as u8),
        };
        out.push((name.to_string(), with_config(config, bytes)));
    }
    let all = cat(&frames);
    out.push(("all-whole".into(), with_config(0, &all)));
    out.push(("all-split".into(), with_config(0x2a, &all)));
    out.push((
        "all-truncated".into(),
        with_config(0, &all[..all.len() - 1]),
    ));
    out.push(("two-then-half-prefix".into(), {
        let mut s = cat(&frames[..2]);
        s.extend_from_slice(&frames[2][..2]);
        with_config(3, &s)
    }));
    out.push(("empty-stream".into(), vec![0]));
    out.push(("zero-length-frame".into(), with_config(0, &[0, 0, 0, 0])));
    out.push((
        "claims-4gib".into(),
        with_config(0, &[0xff, 0xff, 0xff, 0xff, 0]),
    ));
    out.push((
        "claims-cap-plus-one".into(),
        with_config(0, &(DEFAULT_MAX_FRAME as u32 + 1).to_le_bytes()),
    ));
    out.push((
        "small-cap-exceeded".into(),
        with_config(0x80, &(SMALL_CAP as u32 + 1).to_le_bytes()),
    ));
    out.push((
        "unknown-variant".into(),
        with_config(0, &[1, 0, 0, 0, 0x7f]),
    ));
    out.push(("trailing-byte".into(), {
        let mut f = frames[0].clone();
        let len = u32::from_le_bytes(f[..4].try_into().expect("4 bytes")) + 1;
        f[..4].copy_from_slice(&len.to_le_bytes());
        f.push(0);
        with_config(0, &f)
    }));
    out.push(("overlong-varint".into(), {
        // The first frame with its variant index as a two-byte varint (0x80 | v, 0x00).
        let f = &frames[1];
        let body = &f[4..];
        let mut long = vec![body[0] | 0x80, 0];
        long.extend_from_slice(&body[1..]);
        let mut s = (long.len() as u32).to_le_bytes().to_vec();
        s.extend(long);
        with_config(0, &s)
    }));
    out
}

/// Seeds of the `signal_frames` target.
pub fn signal_seeds() -> Vec<(String, Vec<u8>)> {
    let mut seeds = stream_seeds(signals());
    seeds.extend(
        stream_seeds(deliveries())
            .into_iter()
            .map(|(name, bytes)| (format!("delivery-{name}"), bytes)),
    );
    seeds
}

/// Seeds of the `control_frames` target.
pub fn control_seeds() -> Vec<(String, Vec<u8>)> {
    stream_seeds(controls())
}
