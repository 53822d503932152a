//! rustls configurations for the mesh, built from a [`NodeCert`] and a [`ClusterTrust`].
//!
//! The policy lives here so it is written once: the *ring* provider, passed explicitly (never
//! the process default: if anything in the tree enabled aws-lc-rs too, rustls could not pick
//! one and would panic), TLS 1.3 only, the cluster CA as the only root, and client
//! certificates required and verified against it (`WebPkiClientVerifier`). Checking *which*
//! node a verified peer is happens after the handshake ([`super::check_peer_name`]).
//!
//! Kept crate-private so that no rustls type is in the public API; the mesh sets ALPN and wraps
//! these for quinn.

use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};

use super::{CertError, ClusterTrust, NodeCert};

/// The one crypto provider understudy uses: *ring*, with AES-128-GCM-SHA256 the preferred
/// TLS 1.3 suite. It is the suite of QUIC's own Initial packets, and its SHA-256 runs on the
/// CPU's SHA extensions where ring's SHA-384 (of the AES-256 suite, rustls' first choice)
/// does not: forming a cluster is mostly handshakes, and this takes the hashing out of its
/// profile (docs/BENCHMARKS.md, "50-node burst"). The other two suites stay accepted.
pub(crate) fn provider() -> Arc<CryptoProvider> {
    use rustls::crypto::ring::cipher_suite::{
        TLS13_AES_128_GCM_SHA256, TLS13_AES_256_GCM_SHA384, TLS13_CHACHA20_POLY1305_SHA256,
    };
    Arc::new(CryptoProvider {
        cipher_suites: vec![
            TLS13_AES_128_GCM_SHA256,
            TLS13_AES_256_GCM_SHA384,
            TLS13_CHACHA20_POLY1305_SHA256,
        ],
        ..rustls::crypto::ring::default_provider()
    })
}

/// A root store holding only the cluster CA.
fn roots(trust: &ClusterTrust) -> Result<Arc<RootCertStore>, CertError> {
    let mut roots = RootCertStore::empty();
    roots.add(trust.ca_cert()).map_err(tls_error)?;
    Ok(Arc::new(roots))
}

/// The accepting side: presents `node`'s certificate and requires a client certificate signed
/// by the cluster CA.
pub(crate) fn server_config(
    node: &NodeCert,
    trust: &ClusterTrust,
) -> Result<ServerConfig, CertError> {
    let verifier = WebPkiClientVerifier::builder_with_provider(roots(trust)?, provider())
        .build()
        .map_err(|e| CertError::generate("the TLS client verifier", e))?;
    ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(tls_error)?
        .with_client_cert_verifier(verifier)
        .with_single_cert(node.chain(), node.private_key())
        .map_err(tls_error)
}

/// The dialing side: trusts only the cluster CA and presents `node`'s certificate.
pub(crate) fn client_config(
    node: &NodeCert,
    trust: &ClusterTrust,
) -> Result<ClientConfig, CertError> {
    ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(tls_error)?
        .with_root_certificates(roots(trust)?)
        .with_client_auth_cert(node.chain(), node.private_key())
        .map_err(tls_error)
}

fn tls_error(e: rustls::Error) -> CertError {
    CertError::generate("the TLS configuration", e)
}

#[cfg(test)]
mod tests {
    //! Real handshakes between rustls endpoints, bytes pumped in memory (no sockets).

    use rustls::pki_types::ServerName;
    use rustls::{ClientConnection, ServerConnection};

    use super::*;
    use crate::certs::{
        ClusterCa, IdentityMismatch, check_peer_name, cluster_san, node_name_of, node_san,
    };
    use crate::identity::NodeName;

    fn name(s: &str) -> NodeName {
        NodeName::new(s).expect("valid name")
    }

    /// The outcome of one handshake: each side's error, if any, and the client certificate the
    /// server saw.
    struct Outcome {
        client: Result<(), String>,
        server: Result<(), String>,
        peer_cert_at_server: Option<Vec<u8>>,
    }

    /// `dialer` connects to `acceptor` asking for the server name `server_name`.
    fn handshake(
        dialer: &NodeCert,
        dialer_trust: &ClusterTrust,
        acceptor: &NodeCert,
        acceptor_trust: &ClusterTrust,
        server_name: &str,
    ) -> Outcome {
        let client_cfg = client_config(dialer, dialer_trust).expect("client config");
        let server_cfg = server_config(acceptor, acceptor_trust).expect("server config");
        let sni = ServerName::try_from(server_name.to_owned()).expect("server name");
        let mut client = ClientConnection::new(Arc::new(client_cfg), sni).expect("client");
        let mut server = ServerConnection::new(Arc::new(server_cfg)).expect("server");
        let (mut client_result, mut server_result) = (Ok(()), Ok(()));
        for _ in 0..16 {
            let mut progressed = false;
            let mut buf = Vec::new();
            while client.wants_write() {
                client.write_tls(&mut buf).expect("write to a Vec");
            }
            if !buf.is_empty() && server_result.is_ok() {
                progressed = true;
                server
                    .read_tls(&mut buf.as_slice())
                    .expect("read from a slice");
                if let Err(e) = server.process_new_packets() {
                    server_result = Err(e.to_string());
                }
            }
            buf.clear();
            while server.wants_write() {
                server.write_tls(&mut buf).expect("write to a Vec");
            }
            if !buf.is_empty() && client_result.is_ok() {
                progressed = true;
                client
                    .read_tls(&mut buf.as_slice())
                    .expect("read from a slice");
                if let Err(e) = client.process_new_packets() {
                    client_result = Err(e.to_string());
                }
            }
            if !progressed {
                break;
            }
        }
        if client_result.is_ok() && client.is_handshaking() {
            client_result = Err("handshake did not finish".into());
        }
        if server_result.is_ok() && server.is_handshaking() {
            server_result = Err("handshake did not finish".into());
        }
        if client_result.is_ok() {
            assert_eq!(
                client.protocol_version(),
                Some(rustls::ProtocolVersion::TLSv1_3)
            );
            assert_eq!(
                client.negotiated_cipher_suite().map(|s| s.suite()),
                Some(rustls::CipherSuite::TLS13_AES_128_GCM_SHA256),
                "the suite with hardware SHA-256"
            );
        }
        Outcome {
            client: client_result,
            server: server_result,
            peer_cert_at_server: server
                .peer_certificates()
                .and_then(|chain| chain.first())
                .map(|leaf| leaf.as_ref().to_vec()),
        }
    }

    #[test]
    fn members_handshake_by_node_name_and_by_cluster_name() {
        let ca = ClusterCa::ephemeral("test");
        let trust = ca.trust();
        let a = ca.issue(&name("a")).expect("issue a");
        let b = ca.issue(&name("b")).expect("issue b");
        for server_name in [node_san(ca.cluster(), b.name()), cluster_san(ca.cluster())] {
            let out = handshake(&a, &trust, &b, &trust, &server_name);
            assert_eq!(out.client, Ok(()), "{server_name}");
            assert_eq!(out.server, Ok(()), "{server_name}");
            // After the handshake, the acceptor binds the connection to the claimed name.
            let leaf = out.peer_cert_at_server.expect("client certificate");
            assert_eq!(check_peer_name(ca.cluster(), &leaf, a.name()), Ok(()));
            assert_eq!(node_name_of(ca.cluster(), &leaf), Ok(name("a")));
        }
    }

    /// A certificate from another CA fails the chain check (`UnknownIssuer`, or a signature
    /// error when that CA has the same subject, i.e. the same cluster name).
    fn assert_foreign(err: &str) {
        assert!(err.contains("invalid peer certificate"), "{err}");
        assert!(!err.contains("not valid for name"), "{err}");
    }

    #[test]
    fn a_client_from_a_foreign_ca_is_refused_by_the_server() {
        let ca = ClusterCa::ephemeral("test");
        let foreign = ClusterCa::ephemeral("test");
        let b = ca.issue(&name("b")).expect("issue b");
        let intruder = foreign.issue(&name("a")).expect("issue foreign a");
        // The intruder trusts our CA, so its side completes: in TLS 1.3 the client finishes
        // before the server has checked the client certificate (hence the Hello/Ack rule).
        let out = handshake(
            &intruder,
            &ca.trust(),
            &b,
            &ca.trust(),
            &node_san(ca.cluster(), b.name()),
        );
        let err = out.server.expect_err("server must refuse");
        assert_foreign(&err);
    }

    #[test]
    fn a_server_from_a_foreign_ca_is_refused_by_the_client() {
        let ca = ClusterCa::ephemeral("test");
        let foreign = ClusterCa::ephemeral("test");
        let a = ca.issue(&name("a")).expect("issue a");
        let impostor = foreign.issue(&name("b")).expect("issue foreign b");
        let out = handshake(
            &a,
            &ca.trust(),
            &impostor,
            &foreign.trust(),
            &node_san(ca.cluster(), impostor.name()),
        );
        let err = out.client.expect_err("client must refuse");
        assert_foreign(&err);
    }

    #[test]
    fn a_valid_certificate_for_another_name_is_caught_after_the_handshake() {
        let ca = ClusterCa::ephemeral("test");
        let trust = ca.trust();
        let b = ca.issue(&name("b")).expect("issue b");
        let c = ca.issue(&name("c")).expect("issue c");
        // c is a member, so TLS accepts it; it then claims to be "a".
        let out = handshake(&c, &trust, &b, &trust, &cluster_san(ca.cluster()));
        assert_eq!(out.server, Ok(()));
        let leaf = out.peer_cert_at_server.expect("client certificate");
        assert_eq!(
            check_peer_name(ca.cluster(), &leaf, &name("a")),
            Err(IdentityMismatch::WrongNode {
                claimed: name("a"),
                presented: name("c"),
            })
        );
    }

    #[test]
    fn dialing_a_node_by_name_refuses_another_member() {
        let ca = ClusterCa::ephemeral("test");
        let trust = ca.trust();
        let a = ca.issue(&name("a")).expect("issue a");
        let c = ca.issue(&name("c")).expect("issue c");
        // a wants b, but c answers at that address.
        let out = handshake(&a, &trust, &c, &trust, &node_san(ca.cluster(), &name("b")));
        let err = out.client.expect_err("client must refuse");
        assert!(err.contains("not valid for name"), "{err}");
    }

    #[test]
    fn a_member_of_another_cluster_is_refused() {
        let prod = ClusterCa::ephemeral("prod");
        let test = ClusterCa::ephemeral("test");
        let a = prod.issue(&name("a")).expect("issue a");
        let b = test.issue(&name("b")).expect("issue b");
        let out = handshake(
            &a,
            &prod.trust(),
            &b,
            &test.trust(),
            &cluster_san(prod.cluster()),
        );
        assert_foreign(&out.client.expect_err("client must refuse"));
    }
}
