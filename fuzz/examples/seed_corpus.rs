//! Writes the seed inputs of every fuzz target into `fuzz/corpus/<target>/seed-*`:
//! valid encodings of each frame and message kind, and the near misses (truncations, edge
//! lengths, bad tags) that [`understudy_fuzz::checks::seeds`] lists.
//!
//! ```text
//! cargo run --manifest-path fuzz/Cargo.toml --example seed_corpus            # frames, messages
//! cargo run --manifest-path fuzz/Cargo.toml --example seed_corpus -- --new-ca # and certificates
//! ```
//!
//! The certificate seeds need a CA key, which is not kept: with `--new-ca` a new test CA for
//! cluster `fuzz` is made, `fuzz/seeds/` (its certificate, two valid leaves, a time they are
//! valid at) is rewritten, and so are the `peer_certificate` seeds. Without it they are left
//! alone, so that the committed certificate corpus stays valid for the committed CA.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType, date_time_ymd,
};
use understudy::cluster::certs::ClusterCa;
use understudy::cluster::identity::{ClusterName, NodeName};
use understudy_fuzz::checks;

const DAYS: u32 = 36_500;

/// Named inputs of one target.
type Seeds = Vec<(String, Vec<u8>)>;

/// One odd leaf: name, DNS names, extended key usages, validity (years).
type Case<'a> = (
    &'a str,
    Vec<&'a str>,
    Vec<ExtendedKeyUsagePurpose>,
    (i32, i32),
);

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let new_ca = std::env::args().any(|a| a == "--new-ca");
    for (target, _) in checks::TARGETS {
        let seeds = if *target == "peer_certificate" {
            if !new_ca {
                continue;
            }
            certificate_seeds(&root)?
        } else {
            checks::seeds(target)
        };
        let dir = root.join("corpus").join(target);
        fs::create_dir_all(&dir)?;
        // Replace the old seeds; keep what the fuzzer found (named by hash).
        for entry in fs::read_dir(&dir)? {
            let path = entry?.path();
            if path
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("seed-"))
            {
                fs::remove_file(path)?;
            }
        }
        for (name, bytes) in &seeds {
            fs::write(dir.join(format!("seed-{name}")), bytes)?;
        }
        println!("{target}: {} seeds", seeds.len());
    }
    Ok(())
}

/// The CA's parameters as `ClusterCa` makes them (`certs/ca.rs`): the subject must match for
/// the leaves made here to chain to it.
fn ca_params(cluster: &str) -> Result<CertificateParams, rcgen::Error> {
    let mut params = CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::OrganizationName, "understudy");
    params.distinguished_name.push(
        DnType::CommonName,
        format!("understudy cluster CA {cluster}"),
    );
    params.subject_alt_names = vec![SanType::URI(
        format!("urn:understudy:cluster:{cluster}").try_into()?,
    )];
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    Ok(params)
}

/// A leaf like `NodeCert::issue` makes, with the given DNS names, EKUs and validity.
fn leaf(
    issuer: &Issuer<'_, KeyPair>,
    dns: &[&str],
    ekus: Vec<ExtendedKeyUsagePurpose>,
    years: (i32, i32),
) -> Result<Vec<u8>, rcgen::Error> {
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let mut params = CertificateParams::new(dns.iter().map(|s| s.to_string()).collect::<Vec<_>>())?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, dns.first().copied().unwrap_or("none"));
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = ekus;
    params.use_authority_key_identifier_extension = true;
    params.not_before = date_time_ymd(years.0, 1, 1);
    params.not_after = date_time_ymd(years.1, 1, 1);
    Ok(params.signed_by(&key, issuer)?.der().to_vec())
}

fn certificate_seeds(root: &Path) -> Result<Seeds, Box<dyn std::error::Error>> {
    let both = || {
        vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ]
    };
    let ca = ClusterCa::generate_valid_for(&ClusterName::new("fuzz")?, DAYS)?;
    let pem = ca.to_pem();
    let issuer = Issuer::new(ca_params("fuzz")?, KeyPair::from_pem(&pem.key)?);
    let foreign = ClusterCa::generate_valid_for(&ClusterName::new("fuzz")?, DAYS)?;
    let foreign_issuer = Issuer::new(
        ca_params("fuzz")?,
        KeyPair::from_pem(&foreign.to_pem().key)?,
    );

    let a = ca.issue_valid_for(&NodeName::new("a")?, DAYS)?;
    let b = ca.issue_valid_for(&NodeName::new("b")?, DAYS)?;
    let seeds_dir = root.join("seeds");
    fs::create_dir_all(&seeds_dir)?;
    fs::write(seeds_dir.join("ca.pem"), &pem.cert)?;
    fs::write(seeds_dir.join("valid-a.der"), a.cert_der())?;
    fs::write(seeds_dir.join("valid-b.der"), b.cert_der())?;
    let day_after = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs() + 86_400;
    fs::write(seeds_dir.join("verify_at"), format!("{day_after}\n"))?;

    let raw = |der: &[u8]| {
        let mut v = vec![0u8];
        v.extend_from_slice(der);
        v
    };
    let mut out = vec![
        ("valid-a".to_string(), raw(a.cert_der())),
        ("valid-b".into(), raw(b.cert_der())),
        ("ca-itself".into(), raw(ca.cert_der())),
        (
            "truncated-half".into(),
            raw(&a.cert_der()[..a.cert_der().len() / 2]),
        ),
        (
            "truncated-one".into(),
            raw(&a.cert_der()[..a.cert_der().len() - 1]),
        ),
        ("pem-not-der".into(), raw(a.to_pem().cert.as_bytes())),
        ("empty".into(), vec![0]),
        (
            "sequence-header-only".into(),
            raw(&[0x30, 0x82, 0xff, 0xff]),
        ),
        ("mutate-a-unchanged".into(), vec![0x80, 0]),
        ("mutate-b-flip".into(), vec![0x80, 1, 0, 40, 0, 0x01]),
        ("mutate-a-truncate".into(), vec![0x80, 0, 3, 200, 0, 0]),
        ("mutate-a-insert".into(), vec![0x80, 0, 2, 4, 0, 0x30]),
    ];
    let cases: [Case<'_>; 9] = [
        (
            "two-node-names",
            vec!["fuzz.understudy", "a.node.fuzz", "b.node.fuzz"],
            both(),
            (2020, 2120),
        ),
        ("wildcard", vec!["*.node.fuzz"], both(), (2020, 2120)),
        ("uppercase", vec!["A.node.fuzz"], both(), (2020, 2120)),
        (
            "no-node-name",
            vec!["fuzz.understudy"],
            both(),
            (2020, 2120),
        ),
        ("other-cluster", vec!["a.node.other"], both(), (2020, 2120)),
        (
            "nested-name",
            vec!["x.node.fuzz.node.fuzz"],
            both(),
            (2020, 2120),
        ),
        (
            "server-only",
            vec!["a.node.fuzz"],
            vec![ExtendedKeyUsagePurpose::ServerAuth],
            (2020, 2120),
        ),
        ("expired", vec!["a.node.fuzz"], both(), (2000, 2001)),
        ("not-yet-valid", vec!["a.node.fuzz"], both(), (2110, 2120)),
    ];
    for (name, dns, ekus, years) in cases {
        out.push((name.into(), raw(&leaf(&issuer, &dns, ekus, years)?)));
    }
    out.push((
        "foreign-ca".into(),
        raw(&leaf(
            &foreign_issuer,
            &["a.node.fuzz"],
            both(),
            (2020, 2120),
        )?),
    ));
    // The rcgen-made leaves chain to the CA (sanity: otherwise the seeds test nothing).
    let trust = ca.trust();
    let probe = leaf(&issuer, &["a.node.fuzz"], both(), (2020, 2120))?;
    trust.verify_peer(&probe, &NodeName::new("a")?)?;
    out.push(("rcgen-valid-a".into(), raw(&probe)));
    Ok(out)
}
