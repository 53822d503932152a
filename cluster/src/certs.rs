//! The cluster's certificates: one CA per cluster, one certificate per node, and the check that
//! binds a TLS peer to the node name it claims.
//!
//! # Why
//!
//! Mesh traffic is mutual TLS (secure by default, docs/ARCHITECTURE.md section 4). A private CA
//! per cluster is the trust root: a peer is a member exactly when it shows a certificate that
//! the cluster CA signed. That alone is not enough, because every member has such a
//! certificate: a node with a valid certificate for `web-2` must not be able to say "I am
//! `web-1`". So each node certificate also names its node, and after the handshake the name a
//! peer claims is checked against the name its certificate carries
//! ([`check_peer_name`], [`ClusterTrust::verify_peer`]).
//!
//! # What the certificates look like
//!
//! - **Cluster CA** ([`ClusterCa`]): ECDSA P-256, self-signed, may sign only end-entity
//!   certificates (path length 0). It names its cluster in a URI SAN
//!   `urn:understudy:cluster:<cluster>`, so a `ca.pem` read back from disk knows its cluster.
//! - **Node certificate** ([`NodeCert`]): ECDSA P-256, signed by the CA, with both the
//!   ServerAuth and ClientAuth extended key usages (every node both accepts and dials), and
//!   exactly two DNS SANs:
//!   - the **cluster-wide** SAN [`cluster_san`] = `<cluster>.understudy`. Every member carries
//!     it, so a node dialing a seed known only by address uses it as the TLS server name and
//!     accepts "any member of my cluster";
//!   - the **per-node** SAN [`node_san`] = `<name>.node.<cluster>`. A node dialing a peer whose
//!     name it knows (from gossip) uses it as the server name, and a node that accepted a
//!     connection checks the client's claimed name against it.
//!
//!   The two never collide: the cluster-wide SAN has two labels, the per-node SAN three. The
//!   names are only ever matched against certificates, never resolved in DNS.
//!
//! # Where they come from
//!
//! `understudy certs init --cluster NAME` makes `ca.pem` + `ca.key`, and
//! `understudy certs issue NODE` makes `NODE.pem` + `NODE.key` ([`ClusterCa::write_to`],
//! [`NodeCert::write_to`]). A node needs its own pair and `ca.pem` ([`ClusterTrust`]), never
//! `ca.key`. Tests and demos use [`ClusterCa::ephemeral`], which never touches the disk.
//!
//! Private keys never appear in `Debug` output, and key files are created with mode 0600 on
//! Unix. The crypto is *ring* everywhere (rcgen, rustls, webpki): no second provider.
//!
//! ```
//! use understudy_cluster::certs::{ClusterCa, IdentityMismatch, check_peer_name};
//! use understudy_cluster::identity::NodeName;
//!
//! let ca = ClusterCa::ephemeral("prod");
//! let web1 = ca.issue(&NodeName::new("web-1")?)?;
//! let web2 = ca.issue(&NodeName::new("web-2")?)?;
//!
//! // After a handshake: is the peer who it says it is?
//! let trust = ca.trust();
//! assert!(trust.verify_peer(web1.cert_der(), web1.name()).is_ok());
//! let lie = trust.verify_peer(web2.cert_der(), web1.name());
//! assert!(matches!(lie, Err(IdentityMismatch::WrongNode { .. })));
//!
//! // Another cluster's CA is not trusted, whatever the names say.
//! let stranger = ClusterCa::ephemeral("prod").issue(&NodeName::new("web-1")?)?;
//! assert!(matches!(
//!     trust.verify_peer(stranger.cert_der(), web1.name()),
//!     Err(IdentityMismatch::Untrusted { .. })
//! ));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod ca;
mod error;
mod files;
mod node;
pub(crate) mod tls;
mod trust;

use rustls_pki_types::CertificateDer;

use crate::identity::{ClusterName, NodeName};

pub use ca::ClusterCa;
pub use error::{Cause, CertError};
pub use node::NodeCert;
pub use trust::{ClusterTrust, IdentityMismatch, check_peer_name, node_name_of};

/// The file names `understudy certs` uses; see [`ClusterCa::write_to`] and
/// [`NodeCert::write_to`].
pub mod file_names {
    use crate::identity::NodeName;

    /// The CA certificate: every node needs it.
    pub const CA_CERT: &str = "ca.pem";
    /// The CA's private key: only where certificates are issued.
    pub const CA_KEY: &str = "ca.key";

    /// A node's certificate: `<name>.pem`.
    pub fn node_cert(name: &NodeName) -> String {
        format!("{name}.pem")
    }

    /// A node's private key: `<name>.key`.
    pub fn node_key(name: &NodeName) -> String {
        format!("{name}.key")
    }
}

/// How long a new CA is valid by default: about ten years.
pub const DEFAULT_CA_VALIDITY_DAYS: u32 = 3650;
/// How long a new node certificate is valid by default: about two years.
pub const DEFAULT_NODE_VALIDITY_DAYS: u32 = 730;

/// The cluster-wide SAN that every member's certificate carries: `<cluster>.understudy`.
///
/// Used as the TLS server name when dialing a seed known only by its address.
///
/// ```
/// use understudy_cluster::{certs::cluster_san, identity::ClusterName};
/// assert_eq!(cluster_san(&ClusterName::new("prod")?), "prod.understudy");
/// # Ok::<(), understudy_cluster::identity::InvalidName>(())
/// ```
pub fn cluster_san(cluster: &ClusterName) -> String {
    format!("{cluster}.{CLUSTER_SAN_DOMAIN}")
}

/// The per-node SAN of node `name` in `cluster`: `<name>.node.<cluster>`.
///
/// Used as the TLS server name when dialing a known node, and checked against the name a peer
/// claims after the handshake.
///
/// ```
/// use understudy_cluster::certs::node_san;
/// use understudy_cluster::identity::{ClusterName, NodeName};
/// let san = node_san(&ClusterName::new("prod")?, &NodeName::new("web-1")?);
/// assert_eq!(san, "web-1.node.prod");
/// # Ok::<(), understudy_cluster::identity::InvalidName>(())
/// ```
pub fn node_san(cluster: &ClusterName, name: &NodeName) -> String {
    format!("{name}.node.{cluster}")
}

/// The second label of every cluster-wide SAN.
const CLUSTER_SAN_DOMAIN: &str = "understudy";

/// The URI SAN prefix by which a CA certificate names its cluster.
const CA_URI_PREFIX: &str = "urn:understudy:cluster:";

/// A PEM certificate and its PEM private key, as written to `<x>.pem` and `<x>.key`.
///
/// `Debug` shows the certificate but never the key.
#[derive(Clone, PartialEq, Eq)]
pub struct PemPair {
    /// The certificate, `-----BEGIN CERTIFICATE-----`.
    pub cert: String,
    /// The private key (PKCS#8), `-----BEGIN PRIVATE KEY-----`. Secret.
    pub key: String,
}

impl std::fmt::Debug for PemPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PemPair")
            .field("cert", &self.cert)
            .field("key", &"[secret key elided]")
            .finish()
    }
}

/// The one certificate in `pem_text`, as DER. `what` names it in errors.
fn cert_from_pem(pem_text: &str, what: &str) -> Result<CertificateDer<'static>, CertError> {
    let blocks = pem::parse_many(pem_text).map_err(|e| CertError::pem_parse(what, e))?;
    let mut certs = blocks.into_iter().filter(|b| b.tag() == "CERTIFICATE");
    match (certs.next(), certs.next()) {
        (Some(cert), None) => Ok(CertificateDer::from(cert.into_contents())),
        (None, _) => Err(CertError::pem(
            what,
            "no `-----BEGIN CERTIFICATE-----` block",
        )),
        (Some(_), Some(_)) => Err(CertError::pem(
            what,
            "more than one certificate; expected exactly one",
        )),
    }
}

/// The PEM text of a DER certificate.
fn cert_to_pem(der: &CertificateDer<'_>) -> String {
    to_pem("CERTIFICATE", der.as_ref())
}

/// PEM text with Unix line endings (as rcgen writes it, and as files on Unix expect).
fn to_pem(tag: &str, der: &[u8]) -> String {
    let config = pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF);
    pem::encode_config(&pem::Pem::new(tag, der.to_vec()), config)
}

/// A private key from PEM (PKCS#8 or SEC1). `what` names it in errors.
fn key_from_pem(pem_text: &str, what: &str) -> Result<rcgen::KeyPair, CertError> {
    rcgen::KeyPair::from_pem(pem_text).map_err(|e| CertError::pem_parse(what, e))
}

/// Fails unless `key` is the private key of the certificate `cert`.
fn check_key_matches(
    cert: &CertificateDer<'_>,
    key: &rcgen::KeyPair,
    what: &str,
) -> Result<(), CertError> {
    use rcgen::PublicKeyData;
    let parsed = webpki::EndEntityCert::try_from(cert)
        .map_err(|e| CertError::not_understudy_because(what, "not a valid X.509 certificate", e))?;
    if parsed.subject_public_key_info().as_ref() == key.subject_public_key_info().as_slice() {
        Ok(())
    } else {
        Err(CertError::KeyMismatch {
            what: what.to_owned(),
        })
    }
}

/// `not_before` and `not_after` for a certificate valid from an hour ago (clock skew between
/// machines) for `days` days.
fn validity(days: u32) -> Result<(time::OffsetDateTime, time::OffsetDateTime), CertError> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|e| CertError::generate("a validity period (the clock is before 1970)", e))?
        .as_secs();
    let now = i64::try_from(now)
        .map_err(|e| CertError::generate("a validity period (the clock is out of range)", e))?;
    let at = |secs: i64| {
        time::OffsetDateTime::from_unix_timestamp(secs)
            .map_err(|e| CertError::generate("a validity period", e))
    };
    Ok((at(now - 3600)?, at(now + i64::from(days) * 86_400)?))
}

/// Wraps an rcgen failure (key generation or signing) without exposing rcgen's error type.
fn generate_error(e: rcgen::Error) -> CertError {
    CertError::generate("the certificate", e)
}

#[cfg(test)]
mod tests;
