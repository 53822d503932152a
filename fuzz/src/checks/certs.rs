//! Peer certificates: the DER a peer presents in its TLS handshake, checked by
//! `certs::node_name_of` (which node does it name?), `certs::check_peer_name` and
//! `ClusterTrust::verify_peer` (signed by our CA, valid, and for the node it claims).
//!
//! The trust anchor is a fixed test CA for cluster `fuzz` (`fuzz/seeds/ca.pem`); the seed
//! leaves it signed (`fuzz/seeds/*.der`) are valid until 2126. Both are written by
//! `examples/seed_corpus.rs`, with the corpus.
//!
//! Input: one mode byte, then bytes.
//! - mode < 0x80: the bytes are the certificate's DER;
//! - mode >= 0x80: a seed leaf (chosen by the next byte) mutated by the rest, taken four
//!   bytes at a time: `op, position (u16 LE), value`; op % 4 is 0 xor, 1 overwrite, 2 insert,
//!   3 truncate there. This keeps most inputs near-valid, where parsers break.
//!
//! Checks: nothing panics, and the answers agree: a certificate that verifies for a name
//! names exactly that node, and one that names a node passes `check_peer_name` for it.

use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use understudy::cluster::certs::{ClusterTrust, IdentityMismatch, check_peer_name, node_name_of};
use understudy::cluster::identity::{ClusterName, NodeName};

/// The test CA's certificate.
pub const CA_PEM: &str = include_str!("../../seeds/ca.pem");

/// Leaves the test CA signed, valid for node `a` (`valid-a`) and `b` (`valid-b`).
pub const SEED_LEAVES: &[&[u8]] = &[
    include_bytes!("../../seeds/valid-a.der"),
    include_bytes!("../../seeds/valid-b.der"),
];

/// A time inside every seed's validity (the seeds are made with long validity; this is the
/// time they were made plus a day), for a verification that does not depend on the clock.
pub fn verify_time() -> SystemTime {
    let secs: u64 = include_str!("../../seeds/verify_at")
        .trim()
        .parse()
        .expect("seeds/verify_at holds Unix seconds");
    SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
}

struct Fixture {
    trust: ClusterTrust,
    cluster: ClusterName,
    other_cluster: ClusterName,
    a: NodeName,
    at: SystemTime,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let trust = ClusterTrust::from_pem(CA_PEM).expect("fuzz/seeds/ca.pem is a cluster CA");
        Fixture {
            cluster: trust.cluster().clone(),
            other_cluster: ClusterName::new("other").expect("valid"),
            a: NodeName::new("a").expect("valid"),
            at: verify_time(),
            trust,
        }
    })
}

/// The `peer_certificate` target.
pub fn peer_certificate(data: &[u8]) -> bool {
    let Some((&mode, rest)) = data.split_first() else {
        return false;
    };
    if mode < 0x80 {
        check_der(rest)
    } else {
        let Some((&pick, ops)) = rest.split_first() else {
            return false;
        };
        let der = mutate(SEED_LEAVES[usize::from(pick) % SEED_LEAVES.len()], ops);
        check_der(&der)
    }
}

/// Applies `ops` (4 bytes each: op, position u16 LE, value) to a copy of `seed`.
pub fn mutate(seed: &[u8], ops: &[u8]) -> Vec<u8> {
    let mut der = seed.to_vec();
    for op in ops.chunks_exact(4) {
        if der.is_empty() {
            break;
        }
        let at = usize::from(u16::from_le_bytes([op[1], op[2]])) % der.len();
        match op[0] % 4 {
            0 => der[at] ^= op[3],
            1 => der[at] = op[3],
            2 => der.insert(at, op[3]),
            _ => der.truncate(at),
        }
    }
    der
}

fn check_der(der: &[u8]) -> bool {
    let f = fixture();
    let named = node_name_of(&f.cluster, der);
    if let Ok(name) = &named {
        assert_eq!(
            check_peer_name(&f.cluster, der, name),
            Ok(()),
            "a certificate naming {name} fails check_peer_name for it"
        );
    }
    let _ = node_name_of(&f.other_cluster, der);

    // At a fixed time, so that the answer does not change as the clock moves.
    let claimed = named.as_ref().unwrap_or(&f.a).clone();
    let verified = f.trust.verify_peer_at(der, &claimed, f.at);
    if verified.is_ok() {
        assert_eq!(
            named.as_ref(),
            Ok(&claimed),
            "a certificate verified for a node it does not name"
        );
    }
    // A claim of another name than the certificate's is always refused.
    if let Ok(name) = &named {
        let other = if name == &f.a {
            NodeName::new("b").expect("valid")
        } else {
            f.a.clone()
        };
        match f.trust.verify_peer_at(der, &other, f.at) {
            Ok(()) => panic!("a certificate for {name} verified as {other}"),
            Err(
                IdentityMismatch::WrongNode { .. }
                | IdentityMismatch::Untrusted { .. }
                | IdentityMismatch::Malformed(_),
            ) => {}
            Err(e) => panic!("a certificate for {name} claimed as {other}: unexpected {e:?}"),
        }
    }
    // And now, as the mesh does.
    let _ = f.trust.verify_peer(der, &claimed);
    verified.is_ok()
}
