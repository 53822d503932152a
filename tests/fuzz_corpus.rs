//! Replays the committed fuzz corpus (`fuzz/corpus/<target>/`) through the fuzz targets' own
//! checks, so that every `cargo test` re-checks every input the fuzzers found interesting:
//! no decoder panics, and every decoded frame, message or certificate name survives its
//! canonical round trip. The checks are compiled from `fuzz/src/checks/` (shared with the
//! cargo-fuzz targets, which need a separate workspace and libFuzzer); see the README's
//! Testing section for running the fuzzers themselves.

use std::fs;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;

#[path = "../fuzz/src/checks/mod.rs"]
#[allow(unreachable_pub, dead_code)]
mod checks;

/// Runs every corpus file and every built-in seed of `target`; returns how many were
/// accepted (decoded to something), naming the file of any failure.
fn replay(target: &str) -> (usize, usize) {
    let (_, check) = checks::TARGETS
        .iter()
        .find(|(name, _)| *name == target)
        .expect("a known target");
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("a directory entry").path())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "{} is empty", dir.display());

    let mut inputs: Vec<(String, Vec<u8>)> = files
        .iter()
        .map(|path| {
            let bytes = fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            (path.display().to_string(), bytes)
        })
        .collect();
    // Fresh encodings too, so the round trips stay covered when a wire format changes
    // before the corpus is regenerated.
    inputs.extend(
        checks::seeds(target)
            .into_iter()
            .map(|(name, bytes)| (format!("built-in seed {name}"), bytes)),
    );

    let mut accepted = 0;
    for (name, bytes) in &inputs {
        match catch_unwind(AssertUnwindSafe(|| check(bytes))) {
            Ok(true) => accepted += 1,
            Ok(false) => {}
            Err(_) => panic!(
                "{target} fails on {name}; reproduce with \
                 `cargo fuzz run -s none {target} '{name}'` in fuzz/ (the panic is above)"
            ),
        }
    }
    println!("{target}: {accepted} of {} inputs accepted", inputs.len());
    (accepted, inputs.len())
}

#[test]
fn signal_frames_corpus() {
    let (accepted, total) = replay("signal_frames");
    assert!(
        accepted > total / 4,
        "only {accepted} of {total} inputs decoded"
    );
}

#[test]
fn control_frames_corpus() {
    let (accepted, total) = replay("control_frames");
    assert!(
        accepted > total / 4,
        "only {accepted} of {total} inputs decoded"
    );
}

#[test]
fn remote_message_corpus() {
    let (accepted, total) = replay("remote_message");
    assert!(
        accepted > total / 4,
        "only {accepted} of {total} inputs decoded"
    );
}

#[test]
fn peer_certificate_corpus() {
    let (accepted, total) = replay("peer_certificate");
    assert!(
        accepted >= 2,
        "only {accepted} of {total} certificates verified"
    );
    // The committed seed leaves verify against the committed CA (mode 0x80: seed unmutated).
    for pick in 0..checks::certs::SEED_LEAVES.len() as u8 {
        assert!(
            checks::peer_certificate(&[0x80, pick]),
            "fuzz/seeds/ leaf {pick} does not verify against fuzz/seeds/ca.pem; \
             regenerate with `cargo run --example seed_corpus -- --new-ca` in fuzz/"
        );
    }
}

#[test]
fn swim_packets_corpus() {
    let (accepted, total) = replay("swim_packets");
    assert!(
        accepted > total / 4,
        "only {accepted} of {total} inputs decoded"
    );
    // "Warm" inputs meet a node that has joined the other two.
    assert_eq!(checks::swim::warm_members(), 2);
}

#[test]
fn pg_notices_corpus() {
    let (accepted, total) = replay("pg_notices");
    assert!(
        accepted > total / 4,
        "only {accepted} of {total} inputs decoded"
    );
}

#[test]
fn registry_messages_corpus() {
    let (accepted, total) = replay("registry_messages");
    assert!(
        accepted > total / 4,
        "only {accepted} of {total} inputs decoded"
    );
}
