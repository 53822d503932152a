//! The `understudy certs` commands, run as a user would: the real binary in a temporary
//! directory, and the files it writes loaded back through the library.

use std::path::Path;
use std::process::{Command, Output};

use understudy::cluster::certs::{ClusterCa, ClusterTrust, NodeCert};
use understudy::cluster::identity::NodeName;

fn understudy(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_understudy"))
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("run the understudy binary")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Asserts success and returns stdout.
fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// Asserts the exit code and returns stderr, which must not be a panic.
fn fails(out: Output, code: i32) -> String {
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "stderr: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    stderr
}

fn name(s: &str) -> NodeName {
    NodeName::new(s).expect("valid name")
}

#[test]
fn init_then_issue_writes_files_that_load_back() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();

    let out = ok(understudy(&["certs", "init", "--cluster", "prod"], dir));
    assert!(out.contains("created the CA of cluster `prod`"), "{out}");
    let out = ok(understudy(&["certs", "issue", "web-1"], dir));
    assert!(out.contains("web-1.node.prod"), "{out}");
    ok(understudy(
        &["certs", "issue", "web-2", "--days", "30"],
        dir,
    ));

    let ca = ClusterCa::load_from(dir).expect("load the CA");
    assert_eq!(ca.cluster().as_str(), "prod");
    let trust = ClusterTrust::load_from(dir).expect("load ca.pem");
    for n in ["web-1", "web-2"] {
        let cert = NodeCert::load_from(dir, &name(n)).expect("load the node certificate");
        assert_eq!(cert.cluster().as_str(), "prod");
        assert_eq!(trust.verify_node_cert(&cert), Ok(()));
    }
    // web-1's certificate does not pass for web-2.
    let web1 = NodeCert::load_from(dir, &name("web-1")).expect("load");
    assert!(trust.verify_peer(web1.cert_der(), &name("web-2")).is_err());
}

#[test]
fn separate_directories_for_the_ca_and_the_nodes() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    ok(understudy(
        &["certs", "init", "--cluster", "edge", "--dir", "secret/ca"],
        dir,
    ));
    ok(understudy(
        &[
            "certs",
            "issue",
            "n1",
            "--dir",
            "nodes",
            "--ca-dir",
            "secret/ca",
        ],
        dir,
    ));
    let cert = NodeCert::load_from(dir.join("nodes"), &name("n1")).expect("load");
    let trust = ClusterTrust::load_from(dir.join("secret/ca")).expect("load ca.pem");
    assert_eq!(trust.verify_node_cert(&cert), Ok(()));
    assert!(
        !dir.join("nodes/ca.key").exists(),
        "the CA key stays where it was"
    );
}

#[test]
fn issue_without_a_ca_says_how_to_make_one() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let err = fails(
        understudy(&["certs", "issue", "web-1", "--dir", "certs"], tmp.path()),
        1,
    );
    assert_eq!(
        err.trim(),
        "error: no CA in certs: run `understudy certs init --cluster NAME --dir certs` first"
    );
    assert!(!tmp.path().join("certs/web-1.key").exists());
}

#[test]
fn nothing_is_overwritten() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    ok(understudy(&["certs", "init", "--cluster", "prod"], dir));
    let ca_before = std::fs::read(dir.join("ca.key")).expect("read");
    let err = fails(understudy(&["certs", "init", "--cluster", "prod"], dir), 1);
    assert!(err.contains("already exists; not overwriting it"), "{err}");
    assert_eq!(std::fs::read(dir.join("ca.key")).expect("read"), ca_before);

    ok(understudy(&["certs", "issue", "a"], dir));
    let err = fails(understudy(&["certs", "issue", "a"], dir), 1);
    assert!(err.contains("a.pem already exists"), "{err}");
    let err = fails(understudy(&["certs", "issue", "ca"], dir), 1);
    assert!(err.contains("would write its files over the CA's"), "{err}");
}

#[test]
fn a_broken_ca_file_is_named() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    ok(understudy(&["certs", "init", "--cluster", "prod"], dir));
    std::fs::write(dir.join("ca.pem"), "not pem").expect("write");
    let err = fails(understudy(&["certs", "issue", "a"], dir), 1);
    assert!(
        err.contains("ca.pem: the CA certificate is not valid PEM"),
        "{err}"
    );
    assert!(err.contains("understudy certs init"), "{err}");
}

#[test]
fn invalid_names_are_usage_errors() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let err = fails(
        understudy(&["certs", "init", "--cluster", "Prod"], tmp.path()),
        2,
    );
    assert!(err.contains("invalid cluster name \"Prod\""), "{err}");
    assert!(err.contains("(use lowercase)"), "{err}");
    let err = fails(understudy(&["certs", "issue", "web_1"], tmp.path()), 2);
    assert!(err.contains("invalid node name \"web_1\""), "{err}");
    let err = fails(
        understudy(
            &["certs", "init", "--cluster", "p", "--days", "0"],
            tmp.path(),
        ),
        2,
    );
    assert!(err.contains("--days"), "{err}");
}

#[test]
fn help_describes_the_commands() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let out = ok(understudy(&["certs", "--help"], tmp.path()));
    assert!(out.contains("init") && out.contains("issue"), "{out}");
    let out = ok(understudy(&["certs", "issue", "--help"], tmp.path()));
    assert!(out.contains("--ca-dir"), "{out}");
}
