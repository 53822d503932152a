//! Certificates: PEM round trips, the identity checks, and file handling.

use std::fs;
use std::path::Path;
use std::time::{Duration, SystemTime};

use proptest::prelude::*;

use super::*;
use crate::identity::NodeName;

fn name(s: &str) -> NodeName {
    NodeName::new(s).expect("valid name")
}

fn dns_names(der: &[u8]) -> Vec<String> {
    let der = CertificateDer::from(der);
    let ee = webpki::EndEntityCert::try_from(&der).expect("parse");
    ee.valid_dns_names().map(str::to_owned).collect()
}

#[test]
fn node_certificates_carry_both_sans() {
    let ca = ClusterCa::ephemeral("prod");
    let cert = ca.issue(&name("web-1")).expect("issue");
    assert_eq!(
        dns_names(cert.cert_der()),
        ["prod.understudy", "web-1.node.prod"]
    );
}

#[test]
fn ca_pem_round_trip_issues_certificates_the_original_trusts() {
    let ca = ClusterCa::ephemeral("prod");
    let pem = ca.to_pem();
    assert!(pem.cert.starts_with("-----BEGIN CERTIFICATE-----"));
    assert!(pem.key.starts_with("-----BEGIN PRIVATE KEY-----"));
    let again = ClusterCa::from_pem(&pem.cert, &pem.key).expect("reload");
    assert_eq!(again.cluster(), ca.cluster());
    assert_eq!(again.cert_der(), ca.cert_der());
    assert_eq!(again.to_pem(), pem);
    let cert = again.issue(&name("web-2")).expect("issue");
    assert_eq!(
        ca.trust().verify_peer(cert.cert_der(), &name("web-2")),
        Ok(())
    );
}

#[test]
fn node_pem_round_trip() {
    let ca = ClusterCa::ephemeral("prod");
    let cert = ca.issue(&name("web-1")).expect("issue");
    let pem = cert.to_pem();
    let again = NodeCert::from_pem(&pem.cert, &pem.key).expect("reload");
    assert_eq!(again.name(), cert.name());
    assert_eq!(again.cluster(), cert.cluster());
    assert_eq!(again.cert_der(), cert.cert_der());
    assert_eq!(again.to_pem(), pem);
    assert_eq!(ca.trust().verify_node_cert(&again), Ok(()));
}

#[test]
fn trust_pem_round_trip() {
    let ca = ClusterCa::ephemeral("prod");
    let trust = ClusterTrust::from_pem(&ca.trust().to_pem()).expect("reload");
    assert_eq!(trust.cluster(), ca.cluster());
    assert_eq!(trust.ca_cert_der(), ca.cert_der());
}

#[test]
fn verify_peer_accepts_the_right_name_only() {
    let ca = ClusterCa::ephemeral("prod");
    let trust = ca.trust();
    let a = ca.issue(&name("a")).expect("issue");
    assert_eq!(trust.verify_peer(a.cert_der(), &name("a")), Ok(()));
    assert_eq!(
        trust.verify_peer(a.cert_der(), &name("b")),
        Err(IdentityMismatch::WrongNode {
            claimed: name("b"),
            presented: name("a"),
        })
    );
}

#[test]
fn verify_peer_refuses_foreign_cas() {
    let ca = ClusterCa::ephemeral("prod");
    let trust = ca.trust();
    // Same cluster name (so the same issuer name), different key; and a different cluster.
    for foreign in [ClusterCa::ephemeral("prod"), ClusterCa::ephemeral("other")] {
        let cert = foreign.issue(&name("a")).expect("issue");
        match trust.verify_peer(cert.cert_der(), &name("a")) {
            // webpki's reason varies with how far path building gets (UnknownIssuer,
            // BadSignature, InvalidSignatureForPublicKey); what matters is the refusal.
            Err(IdentityMismatch::Untrusted { cluster, .. }) => assert_eq!(&cluster, ca.cluster()),
            other => panic!("expected Untrusted, got {other:?}"),
        }
    }
}

#[test]
fn verify_peer_refuses_garbage_the_ca_itself_and_expired_certificates() {
    let ca = ClusterCa::ephemeral("prod");
    let trust = ca.trust();
    assert!(matches!(
        trust.verify_peer(b"not a certificate", &name("a")),
        Err(IdentityMismatch::Malformed(_))
    ));
    assert!(matches!(
        trust.verify_peer(ca.cert_der(), &name("a")),
        Err(IdentityMismatch::Untrusted { .. })
    ));
    let short = ca.issue_valid_for(&name("a"), 1).expect("issue");
    let in_two_days = SystemTime::now() + Duration::from_secs(2 * 86_400);
    assert_eq!(
        trust.verify_peer_at(short.cert_der(), &name("a"), SystemTime::now()),
        Ok(())
    );
    match trust.verify_peer_at(short.cert_der(), &name("a"), in_two_days) {
        Err(IdentityMismatch::Untrusted { reason, .. }) => {
            assert!(reason.contains("Expired"), "{reason}");
        }
        other => panic!("expected Untrusted, got {other:?}"),
    }
}

/// A self-signed certificate with the given DNS SANs: `check_peer_name` only looks at SANs.
fn cert_with_sans(sans: &[&str]) -> Vec<u8> {
    let key = rcgen::KeyPair::generate().expect("key");
    let params =
        rcgen::CertificateParams::new(sans.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>())
            .expect("params");
    params.self_signed(&key).expect("sign").der().to_vec()
}

#[test]
fn check_peer_name_needs_exactly_one_valid_per_node_san() {
    let prod = ClusterName::new("prod").expect("valid");
    let a = name("a");
    let two = cert_with_sans(&["prod.understudy", "a.node.prod", "b.node.prod"]);
    assert!(matches!(
        check_peer_name(&prod, &two, &a),
        Err(IdentityMismatch::Ambiguous { sans }) if sans.len() == 2
    ));
    let wildcard = cert_with_sans(&["*.node.prod"]);
    assert!(matches!(
        check_peer_name(&prod, &wildcard, &a),
        Err(IdentityMismatch::Ambiguous { .. })
    ));
    let nested = cert_with_sans(&["x.a.node.prod"]);
    assert!(matches!(
        check_peer_name(&prod, &nested, &a),
        Err(IdentityMismatch::Ambiguous { .. })
    ));
    let none = cert_with_sans(&["prod.understudy", "a.node.test"]);
    assert_eq!(
        check_peer_name(&prod, &none, &a),
        Err(IdentityMismatch::NoNodeName {
            cluster: prod.clone(),
            dns_names: vec!["prod.understudy".into(), "a.node.test".into()],
        })
    );
    // DNS is case-insensitive.
    let upper = cert_with_sans(&["A.NODE.PROD"]);
    assert_eq!(check_peer_name(&prod, &upper, &a), Ok(()));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]

    #[test]
    fn any_valid_name_survives_issue_and_read_back(n in "[a-z]([a-z0-9-]{0,61}[a-z0-9])?") {
        let ca = ClusterCa::ephemeral("prop");
        let node = NodeName::new(n).expect("valid by construction");
        let cert = ca.issue(&node).expect("issue");
        prop_assert_eq!(node_name_of(ca.cluster(), cert.cert_der()), Ok(node.clone()));
        prop_assert_eq!(ca.trust().verify_peer(cert.cert_der(), &node), Ok(()));
    }
}

#[test]
fn mismatched_keys_and_bad_pem_are_refused() {
    let ca1 = ClusterCa::ephemeral("prod");
    let ca2 = ClusterCa::ephemeral("prod");
    let (p1, p2) = (ca1.to_pem(), ca2.to_pem());
    assert!(matches!(
        ClusterCa::from_pem(&p1.cert, &p2.key),
        Err(CertError::KeyMismatch { .. })
    ));
    let a = ca1.issue(&name("a")).expect("issue").to_pem();
    let b = ca1.issue(&name("b")).expect("issue").to_pem();
    assert!(matches!(
        NodeCert::from_pem(&a.cert, &b.key),
        Err(CertError::KeyMismatch { .. })
    ));
    assert!(matches!(
        ClusterCa::from_pem("garbage", &p1.key),
        Err(CertError::Pem { .. })
    ));
    // The parser's own error is kept as the source, not only as text.
    let err = ClusterCa::from_pem(&p1.cert, "garbage").expect_err("a garbage key");
    assert!(
        matches!(
            err,
            CertError::Pem {
                source: Some(_),
                ..
            }
        ),
        "{err:?}"
    );
    assert!(std::error::Error::source(&err).is_some());
    let two = format!("{}{}", p1.cert, p2.cert);
    let err = ClusterTrust::from_pem(&two).expect_err("two certificates");
    assert!(
        err.to_string().contains("more than one certificate"),
        "{err}"
    );
    // A node certificate where the CA's should be.
    let err = ClusterTrust::from_pem(&a.cert).expect_err("node cert as CA");
    assert!(
        err.to_string().contains("is this a node certificate?"),
        "{err}"
    );
    // The CA certificate where a node's should be.
    let err = NodeCert::from_pem(&p1.cert, &p1.key).expect_err("CA as node cert");
    assert!(err.to_string().contains("no cluster-wide SAN"), "{err}");
}

#[test]
fn private_keys_never_show_in_debug() {
    let ca = ClusterCa::ephemeral("prod");
    let node = ca.issue(&name("a")).expect("issue");
    for (debug, key_pem) in [
        (format!("{ca:?}"), ca.to_pem().key),
        (format!("{node:?}"), node.to_pem().key),
        (format!("{:?}", node.to_pem()), node.to_pem().key),
    ] {
        assert!(debug.contains("[secret key elided]"), "{debug}");
        assert!(!debug.contains("PRIVATE KEY"), "{debug}");
        // The secret scalar sits in the first two base64 lines of the PKCS#8 body (the rest
        // is the public key, which the certificate shows anyway).
        for line in key_pem.lines().filter(|l| !l.starts_with("-----")).take(2) {
            assert!(!debug.contains(line), "{line:?} in {debug}");
        }
    }
}

// ---- files ----------------------------------------------------------------------------------

fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().expect("tempdir")
}

#[test]
fn ca_files_round_trip() {
    let dir = tempdir();
    let ca = ClusterCa::ephemeral("prod");
    ca.write_to(dir.path()).expect("write");
    let again = ClusterCa::load_from(dir.path()).expect("load");
    assert_eq!(again.cert_der(), ca.cert_der());
    let trust = ClusterTrust::load_from(dir.path()).expect("load trust");
    assert_eq!(trust.cluster(), ca.cluster());
    // Never overwritten.
    let err = ca.write_to(dir.path()).expect_err("exists");
    assert!(matches!(err, CertError::Exists { .. }), "{err}");
}

#[test]
fn node_files_round_trip_into_a_new_directory() {
    let dir = tempdir();
    let sub = dir.path().join("nodes/web");
    let ca = ClusterCa::ephemeral("prod");
    let cert = ca.issue(&name("web-1")).expect("issue");
    cert.write_to(&sub).expect("write");
    let again = NodeCert::load_from(&sub, &name("web-1")).expect("load");
    assert_eq!(again.cert_der(), cert.cert_der());
    assert!(matches!(cert.write_to(&sub), Err(CertError::Exists { .. })));
}

#[cfg(unix)]
#[test]
fn keys_are_private_to_their_owner() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempdir();
    let ca = ClusterCa::ephemeral("prod");
    ca.write_to(dir.path()).expect("write");
    ca.issue(&name("a"))
        .expect("issue")
        .write_to(dir.path())
        .expect("write");
    let mode = |f: &str| {
        fs::metadata(dir.path().join(f))
            .expect("metadata")
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(mode("ca.key"), 0o600);
    assert_eq!(mode("a.key"), 0o600);
    assert_eq!(mode("ca.pem") & 0o600, 0o600);
    assert_eq!(mode("a.pem") & 0o600, 0o600);
}

#[test]
fn file_errors_name_the_file_and_the_command() {
    let dir = tempdir();
    let d = dir.path();
    let shown = d.display().to_string();

    let err = ClusterCa::load_from(d).expect_err("empty dir");
    assert_eq!(
        err.to_string(),
        format!("no CA in {shown}: run `understudy certs init --cluster NAME --dir {shown}` first")
    );

    let ca = ClusterCa::ephemeral("prod");
    ca.write_to(d).expect("write");
    fs::remove_file(d.join("ca.key")).expect("rm");
    let err = ClusterCa::load_from(d).expect_err("no key").to_string();
    assert!(err.contains("ca.key does not exist"), "{err}");
    assert!(err.contains("understudy certs init"), "{err}");
    // The trust needs no key.
    assert!(ClusterTrust::load_from(d).is_ok());

    fs::write(d.join("ca.key"), "garbage").expect("write");
    let err = ClusterCa::load_from(d).expect_err("bad key");
    assert!(
        matches!(&err, CertError::InvalidFile { path, .. } if path.ends_with("ca.key")),
        "{err}"
    );

    fs::write(d.join("ca.pem"), "garbage").expect("write");
    let err = ClusterCa::load_from(d).expect_err("bad cert");
    assert!(
        matches!(&err, CertError::InvalidFile { path, .. } if path.ends_with("ca.pem")),
        "{err}"
    );
    let err = ClusterTrust::load_from(d)
        .expect_err("bad cert")
        .to_string();
    assert!(
        err.contains("ca.pem: the CA certificate is not valid PEM"),
        "{err}"
    );

    let empty = tempdir();
    let err = ClusterTrust::load_from(empty.path())
        .expect_err("none")
        .to_string();
    assert!(err.contains("ca.pem does not exist"), "{err}");
}

#[test]
fn node_file_errors_name_the_file_and_the_command() {
    let dir = tempdir();
    let d = dir.path();
    let err = NodeCert::load_from(d, &name("web-1"))
        .expect_err("none")
        .to_string();
    assert!(err.contains("web-1.pem does not exist"), "{err}");
    assert!(err.contains("understudy certs issue web-1"), "{err}");

    // Files renamed to another node's name: the certificate says whose it is.
    let ca = ClusterCa::ephemeral("prod");
    ca.issue(&name("web-1"))
        .expect("issue")
        .write_to(d)
        .expect("write");
    rename(d, "web-1", "web-2");
    let err = NodeCert::load_from(d, &name("web-2")).expect_err("renamed");
    assert!(
        matches!(&err, CertError::InvalidFile { path, .. } if path.ends_with("web-2.pem")),
        "{err}"
    );
    assert!(
        err.to_string().contains("it is for node web-1, not web-2"),
        "{err}"
    );

    // A key from another node next to the certificate.
    let (mixed, other) = (tempdir(), tempdir());
    ca.issue(&name("web-1"))
        .expect("issue")
        .write_to(mixed.path())
        .expect("write");
    ca.issue(&name("web-3"))
        .expect("issue")
        .write_to(other.path())
        .expect("write");
    fs::copy(
        other.path().join("web-3.key"),
        mixed.path().join("web-1.key"),
    )
    .expect("copy");
    let err = NodeCert::load_from(mixed.path(), &name("web-1")).expect_err("mixed up");
    assert!(
        matches!(&err, CertError::InvalidFile { path, source, .. }
            if path.ends_with("web-1.key") && matches!(**source, CertError::KeyMismatch { .. })),
        "{err}"
    );
}

fn rename(dir: &Path, from: &str, to: &str) {
    for ext in ["pem", "key"] {
        fs::rename(
            dir.join(format!("{from}.{ext}")),
            dir.join(format!("{to}.{ext}")),
        )
        .expect("rename");
    }
}
