use proptest::prelude::*;

use super::*;

const MAX: usize = 64 * 1024;

fn bytes() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..64)
}

fn reason() -> impl Strategy<Value = ExitReason> {
    prop::option::of(".{0,12}")
}

fn barrier() -> impl Strategy<Value = Barrier> {
    prop::collection::vec(any::<u64>(), 0..5)
}

fn delivery() -> impl Strategy<Value = Delivery> {
    prop_oneof![
        (any::<u64>(), ".{0,8}", bytes()).prop_map(|(to, variant, args)| Delivery::Tell {
            to,
            variant,
            args
        }),
        (any::<u64>(), any::<u64>(), any::<u32>(), bytes()).prop_map(
            |(to, call, timeout_ms, args)| Delivery::Ask {
                to,
                call,
                timeout_ms,
                variant: String::new(),
                args
            }
        ),
    ]
}

fn signal() -> impl Strategy<Value = Signal> {
    prop_oneof![
        (any::<u64>(), bytes()).prop_map(|(call, b)| Signal::Reply {
            call,
            outcome: ReplyOutcome::Ok(b)
        }),
        any::<u64>().prop_map(|call| Signal::Reply {
            call,
            outcome: ReplyOutcome::UnknownActor
        }),
        (any::<u64>(), ".{0,8}").prop_map(|(call, r)| Signal::Reply {
            call,
            outcome: ReplyOutcome::Rejected(r)
        }),
        (any::<u64>(), any::<u64>())
            .prop_map(|(watcher, target)| Signal::Monitor { watcher, target }),
        (any::<u64>(), any::<u64>())
            .prop_map(|(watcher, target)| Signal::Demonitor { watcher, target }),
        (any::<u64>(), any::<u64>(), reason(), barrier()).prop_map(
            |(watcher, target, reason, after)| Signal::Down {
                watcher,
                target,
                reason,
                after
            }
        ),
        (any::<u64>(), any::<u64>()).prop_map(|(from, to)| Signal::Link { from, to }),
        (any::<u64>(), any::<u64>(), reason(), barrier()).prop_map(|(from, to, reason, after)| {
            Signal::Exit {
                from,
                to,
                reason,
                after,
            }
        }),
    ]
}

fn hello() -> impl Strategy<Value = Hello> {
    (
        any::<u16>(),
        "[a-z]{1,8}",
        "[a-z]{1,8}",
        any::<u64>(),
        any::<u64>(),
        any::<u16>(),
    )
        .prop_map(
            |(version, cluster, name, node_id, incarnation, port)| Hello {
                version,
                cluster,
                name,
                node_id,
                incarnation,
                mesh_addr: std::net::SocketAddr::from(([127, 0, 0, 1], port)),
                lanes: port % 8 + 1,
                lane_buffer: u64::from(port) << 10,
                max_frame: 1 << 16,
            },
        )
}

fn control() -> impl Strategy<Value = Control> {
    prop_oneof![
        hello().prop_map(Control::Hello),
        hello().prop_map(Control::HelloAck),
        Just(Control::Refuse(Refusal::Duplicate)),
        (any::<u64>(), any::<u64>())
            .prop_map(|(theirs, current)| Control::Refuse(Refusal::Stale { theirs, current })),
        any::<u16>().prop_map(|l| Control::Refuse(Refusal::Lanes(l))),
        ("[a-z]{1,6}", bytes()).prop_map(|(service, b)| Control::Extension {
            service,
            body: ExtensionBody::Notice(b)
        }),
        ("[a-z]{1,6}", any::<u64>(), bytes()).prop_map(|(service, id, body)| Control::Extension {
            service,
            body: ExtensionBody::Request { id, body }
        }),
    ]
}

fn decode_all<T: serde::de::DeserializeOwned>(chunks: &[&[u8]]) -> Result<Vec<T>, WireError> {
    let mut dec = FrameDecoder::<T>::new(MAX);
    let mut out = Vec::new();
    for c in chunks {
        dec.push(c);
        while let Some(f) = dec.next_frame()? {
            out.push(f);
        }
    }
    dec.finish()?;
    Ok(out)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn signals_round_trip_across_any_chunking(frames in prop::collection::vec(signal(), 0..12), cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..6)) {
        let mut stream = Vec::new();
        for f in &frames {
            encode_frame_into(f, &mut stream, MAX).unwrap();
        }
        let mut points: Vec<usize> = cuts.iter().map(|i| i.index(stream.len() + 1)).collect();
        points.sort_unstable();
        let mut chunks = Vec::new();
        let mut last = 0;
        for p in points {
            chunks.push(&stream[last..p]);
            last = p;
        }
        chunks.push(&stream[last..]);
        prop_assert_eq!(decode_all::<Signal>(&chunks).unwrap(), frames);
    }

    #[test]
    fn deliveries_round_trip(frames in prop::collection::vec(delivery(), 0..8)) {
        let mut stream = Vec::new();
        for f in &frames {
            encode_frame_into(f, &mut stream, MAX).unwrap();
        }
        prop_assert_eq!(decode_all::<Delivery>(&[&stream]).unwrap(), frames);
    }

    #[test]
    fn control_frames_round_trip(frames in prop::collection::vec(control(), 0..8)) {
        let mut stream = Vec::new();
        for f in &frames {
            encode_frame_into(f, &mut stream, MAX).unwrap();
        }
        prop_assert_eq!(decode_all::<Control>(&[&stream]).unwrap(), frames);
    }

    #[test]
    fn garbage_never_panics(junk in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = decode_all::<Signal>(&[&junk]);
        let _ = decode_all::<Delivery>(&[&junk]);
        let _ = decode_all::<Control>(&[&junk]);
    }

    #[test]
    fn bit_flips_in_valid_streams_never_panic(frames in prop::collection::vec(signal(), 1..6), pos in any::<prop::sample::Index>(), bit in 0u8..8) {
        let mut stream = Vec::new();
        for f in &frames {
            encode_frame_into(f, &mut stream, MAX).unwrap();
        }
        let i = pos.index(stream.len());
        stream[i] ^= 1 << bit;
        let _ = decode_all::<Signal>(&[&stream]);
    }

    #[test]
    fn a_stream_cut_inside_a_frame_is_truncated(f in signal()) {
        let stream = encode_frame(&f, MAX).unwrap();
        for cut in 1..stream.len() {
            prop_assert!(decode_all::<Signal>(&[&stream[..cut]]).is_err());
        }
    }
}

#[test]
fn a_hostile_length_is_refused_before_buffering() {
    let mut dec = FrameDecoder::<Signal>::new(1024);
    dec.push(&u32::MAX.to_le_bytes());
    assert_eq!(
        dec.next_frame(),
        Err(WireError::TooLarge {
            len: u32::MAX as usize,
            max: 1024
        })
    );
}

#[test]
fn encoding_over_the_cap_fails_and_leaves_the_buffer_as_it_was() {
    let big = Delivery::Tell {
        to: 1,
        variant: String::new(),
        args: vec![7; 2000],
    };
    let mut out = vec![1, 2, 3];
    assert!(matches!(
        encode_frame_into(&big, &mut out, 1000),
        Err(WireError::TooLarge { .. })
    ));
    assert_eq!(out, vec![1, 2, 3]);
}

#[test]
fn trailing_bytes_inside_a_frame_are_malformed() {
    let mut frame = encode_frame(
        &Signal::Monitor {
            watcher: 1,
            target: 2,
        },
        MAX,
    )
    .unwrap();
    frame.push(0);
    let len = (frame.len() - 4) as u32;
    frame[..4].copy_from_slice(&len.to_le_bytes());
    assert!(matches!(
        decode_all::<Signal>(&[&frame]),
        Err(WireError::Malformed(_))
    ));
}

#[test]
fn the_decoder_buffer_does_not_grow_without_bound() {
    // A long stream of small frames fed in small chunks keeps the buffer small.
    let one = encode_frame(
        &Signal::Monitor {
            watcher: 1,
            target: 2,
        },
        MAX,
    )
    .unwrap();
    let mut dec = FrameDecoder::<Signal>::new(MAX);
    for _ in 0..10_000 {
        dec.push(&one);
        assert!(dec.next_frame().unwrap().is_some());
    }
    assert_eq!(dec.buffered(), 0);
}
