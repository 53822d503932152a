//! [`ClusterTrust`] and the identity checks: is a peer's certificate from our cluster's CA, and
//! does it name the node the peer claims to be?
//!
//! TLS (rustls, with `WebPkiClientVerifier` on the accepting side) already refuses a peer whose
//! chain does not lead to the cluster CA. What TLS cannot know is which *node* the peer says it
//! is: that claim arrives later, in the application's Hello. [`check_peer_name`] binds the two:
//! the certificate's per-node SAN must be exactly `<claimed>.node.<cluster>`. A certificate
//! with no per-node SAN, or with several, identifies no one and is refused.
//!
//! [`ClusterTrust::verify_peer`] does both checks without a TLS stack (chain and name), for
//! tests, tools, and certificates that arrive some other way.

use std::path::Path;
use std::time::SystemTime;

use rustls_pki_types::{CertificateDer, UnixTime};

use super::files;
use super::node::NodeCert;
use super::{CA_URI_PREFIX, CLUSTER_SAN_DOMAIN, CertError, cert_from_pem, cert_to_pem, file_names};
use crate::identity::{ClusterName, NodeName};

/// Why a peer's certificate does not prove the identity it claims.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdentityMismatch {
    /// The bytes are not an X.509 certificate.
    #[error("the peer's certificate cannot be parsed: {0}")]
    Malformed(String),
    /// The certificate's chain does not lead to this cluster's CA (another CA, expired, wrong
    /// key usage, ...).
    #[error("the peer's certificate is not trusted by cluster {cluster}'s CA: {reason}")]
    Untrusted {
        /// The cluster whose CA was asked.
        cluster: ClusterName,
        /// What the chain check said.
        reason: String,
    },
    /// The certificate has no per-node SAN `<name>.node.<cluster>` for this cluster.
    #[error(
        "the peer's certificate names no node of cluster {cluster} (its DNS names: {dns_names:?})"
    )]
    NoNodeName {
        /// The cluster that was expected.
        cluster: ClusterName,
        /// The DNS names the certificate does carry.
        dns_names: Vec<String>,
    },
    /// The certificate has a per-node SAN that is not a valid node name, or several per-node
    /// SANs, so it identifies no single node.
    #[error(
        "the peer's certificate has unusable per-node names {sans:?}: exactly one valid `<name>.node.<cluster>` is required"
    )]
    Ambiguous {
        /// The per-node SANs found.
        sans: Vec<String>,
    },
    /// The certificate is for another node than the one the peer claims to be.
    #[error("the peer claims to be node {claimed}, but its certificate is for node {presented}")]
    WrongNode {
        /// The name the peer claimed.
        claimed: NodeName,
        /// The name in its certificate.
        presented: NodeName,
    },
}

/// The public part of a cluster's CA: what every node needs to check its peers (`ca.pem`).
///
/// ```
/// use understudy_cluster::certs::{ClusterCa, ClusterTrust};
/// use understudy_cluster::identity::NodeName;
///
/// let ca = ClusterCa::ephemeral("prod");
/// let trust = ClusterTrust::from_pem(&ca.trust().to_pem())?;
/// assert_eq!(trust.cluster().as_str(), "prod");
///
/// let web1 = ca.issue(&NodeName::new("web-1")?)?;
/// trust.verify_node_cert(&web1)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
pub struct ClusterTrust {
    cluster: ClusterName,
    ca: CertificateDer<'static>,
}

impl ClusterTrust {
    pub(super) fn new(cluster: ClusterName, ca: CertificateDer<'static>) -> ClusterTrust {
        ClusterTrust { cluster, ca }
    }

    /// The trust of a CA certificate in PEM (`ca.pem`); the cluster is read from it.
    pub fn from_pem(ca_pem: &str) -> Result<ClusterTrust, CertError> {
        let ca = cert_from_pem(ca_pem, "CA certificate")?;
        let cluster = cluster_of_ca(&ca)?;
        Ok(ClusterTrust { cluster, ca })
    }

    /// Reads `ca.pem` from `dir` (the CA key is not needed, and not read).
    pub fn load_from(dir: impl AsRef<Path>) -> Result<ClusterTrust, CertError> {
        let dir = dir.as_ref();
        let path = dir.join(file_names::CA_CERT);
        let remedy = || {
            format!(
                "copy {} from where `understudy certs init` ran (nodes need only {0}, never {}), \
                 or {}",
                file_names::CA_CERT,
                file_names::CA_KEY,
                files::ca_remedy(dir)
            )
        };
        let pem = files::read(&path, remedy)?;
        ClusterTrust::from_pem(&pem).map_err(|e| files::invalid(path, e, remedy()))
    }

    /// The CA certificate as PEM text (`ca.pem`).
    pub fn to_pem(&self) -> String {
        cert_to_pem(&self.ca)
    }

    /// The cluster this CA is for.
    pub fn cluster(&self) -> &ClusterName {
        &self.cluster
    }

    /// The CA certificate (DER).
    pub fn ca_cert_der(&self) -> &[u8] {
        &self.ca
    }

    /// The CA certificate, for rustls' root store.
    pub(crate) fn ca_cert(&self) -> CertificateDer<'static> {
        self.ca.clone()
    }

    /// Checks that `leaf_der` is a certificate this cluster's CA signed, valid now for both
    /// server and client use, and that it is for node `claimed` ([`check_peer_name`]).
    pub fn verify_peer(&self, leaf_der: &[u8], claimed: &NodeName) -> Result<(), IdentityMismatch> {
        self.verify_peer_at(leaf_der, claimed, SystemTime::now())
    }

    /// [`verify_peer`](Self::verify_peer) at the time `at` instead of now.
    pub fn verify_peer_at(
        &self,
        leaf_der: &[u8],
        claimed: &NodeName,
        at: SystemTime,
    ) -> Result<(), IdentityMismatch> {
        self.verify_chain(leaf_der, at)?;
        check_peer_name(&self.cluster, leaf_der, claimed)
    }

    /// Checks that `cert` is signed by this CA and carries its own name: a node's sanity check
    /// of its configuration at start ("is my certificate from my cluster's CA?").
    pub fn verify_node_cert(&self, cert: &NodeCert) -> Result<(), IdentityMismatch> {
        self.verify_peer(cert.cert_der(), cert.name())
    }

    /// The chain check: `leaf_der` was signed by this CA, is valid at `at`, and may be used
    /// both as a TLS server and as a TLS client certificate.
    fn verify_chain(&self, leaf_der: &[u8], at: SystemTime) -> Result<(), IdentityMismatch> {
        let leaf = CertificateDer::from(leaf_der);
        let ee = webpki::EndEntityCert::try_from(&leaf)
            .map_err(|e| IdentityMismatch::Malformed(e.to_string()))?;
        let untrusted = |reason: String| IdentityMismatch::Untrusted {
            cluster: self.cluster.clone(),
            reason,
        };
        let anchor = webpki::anchor_from_trusted_cert(&self.ca)
            .map_err(|e| untrusted(format!("the CA certificate is unusable: {e}")))?;
        let since_epoch = at
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_err(|_| untrusted("the time given is before 1970".into()))?;
        let algs = rustls::crypto::ring::default_provider()
            .signature_verification_algorithms
            .all;
        for usage in [
            webpki::KeyUsage::server_auth(),
            webpki::KeyUsage::client_auth(),
        ] {
            ee.verify_for_usage(
                algs,
                std::slice::from_ref(&anchor),
                &[],
                UnixTime::since_unix_epoch(since_epoch),
                usage,
                None,
                None,
            )
            .map_err(|e| untrusted(e.to_string()))?;
        }
        Ok(())
    }
}

/// Checks that the certificate `leaf_der` carries the per-node SAN `<claimed>.node.<cluster>`,
/// and no other per-node SAN.
///
/// This is the check after a TLS handshake, whose chain verification already established that
/// the CA signed the certificate: the peer's claimed name (from its Hello) must be the name in
/// its certificate. It does not check the chain; [`ClusterTrust::verify_peer`] does both.
///
/// ```
/// use understudy_cluster::certs::{ClusterCa, IdentityMismatch, check_peer_name};
/// use understudy_cluster::identity::NodeName;
///
/// let ca = ClusterCa::ephemeral("prod");
/// let (a, b) = (NodeName::new("a")?, NodeName::new("b")?);
/// let b_cert = ca.issue(&b)?;
/// assert!(check_peer_name(ca.cluster(), b_cert.cert_der(), &b).is_ok());
/// assert_eq!(
///     check_peer_name(ca.cluster(), b_cert.cert_der(), &a),
///     Err(IdentityMismatch::WrongNode { claimed: a, presented: b }),
/// );
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn check_peer_name(
    cluster: &ClusterName,
    leaf_der: &[u8],
    claimed: &NodeName,
) -> Result<(), IdentityMismatch> {
    let presented = node_name_of(cluster, leaf_der)?;
    if &presented == claimed {
        Ok(())
    } else {
        Err(IdentityMismatch::WrongNode {
            claimed: claimed.clone(),
            presented,
        })
    }
}

/// The node name in a certificate's per-node SAN `<name>.node.<cluster>`.
///
/// Fails if the certificate has no such SAN for `cluster`, or one that is not a valid node name
/// (a wildcard, say), or more than one. Like [`check_peer_name`], it does not check the chain.
///
/// ```
/// use understudy_cluster::certs::{ClusterCa, node_name_of};
/// use understudy_cluster::identity::{ClusterName, NodeName};
///
/// let ca = ClusterCa::ephemeral("prod");
/// let cert = ca.issue(&NodeName::new("web-1")?)?;
/// assert_eq!(node_name_of(ca.cluster(), cert.cert_der())?.as_str(), "web-1");
/// assert!(node_name_of(&ClusterName::new("test")?, cert.cert_der()).is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn node_name_of(cluster: &ClusterName, leaf_der: &[u8]) -> Result<NodeName, IdentityMismatch> {
    let leaf = CertificateDer::from(leaf_der);
    let ee = webpki::EndEntityCert::try_from(&leaf)
        .map_err(|e| IdentityMismatch::Malformed(e.to_string()))?;
    let suffix = format!(".node.{cluster}");
    // DNS names compare case-insensitively; our names are lowercase.
    let dns_names: Vec<String> = ee.valid_dns_names().map(str::to_ascii_lowercase).collect();
    let node_sans: Vec<&String> = dns_names.iter().filter(|n| n.ends_with(&suffix)).collect();
    match node_sans.as_slice() {
        [] => Err(IdentityMismatch::NoNodeName {
            cluster: cluster.clone(),
            dns_names,
        }),
        [san] => {
            let name = &san[..san.len() - suffix.len()];
            NodeName::new(name).map_err(|_| IdentityMismatch::Ambiguous {
                sans: vec![(*san).clone()],
            })
        }
        several => Err(IdentityMismatch::Ambiguous {
            sans: several.iter().map(|s| (*s).clone()).collect(),
        }),
    }
}

/// The cluster and node a node certificate names in its SANs (`<cluster>.understudy` and
/// `<name>.node.<cluster>`).
pub(super) fn names_in_node_cert(
    cert: &CertificateDer<'_>,
) -> Result<(ClusterName, NodeName), CertError> {
    const WHAT: &str = "node certificate";
    let not_ours = |problem: String| CertError::not_understudy(WHAT, problem);
    let ee = webpki::EndEntityCert::try_from(cert)
        .map_err(|e| CertError::not_understudy_because(WHAT, "not a valid X.509 certificate", e))?;
    let suffix = format!(".{CLUSTER_SAN_DOMAIN}");
    let clusters: Vec<&str> = ee
        .valid_dns_names()
        .filter_map(|n| n.strip_suffix(suffix.as_str()))
        .collect();
    let cluster = match clusters.as_slice() {
        [one] => ClusterName::new(*one).map_err(|e| {
            CertError::not_understudy_because(WHAT, "its cluster name is invalid", e)
        })?,
        [] => {
            return Err(not_ours(format!(
                "it has no cluster-wide SAN `<cluster>{suffix}`"
            )));
        }
        _ => {
            return Err(not_ours(format!(
                "it has several cluster-wide SANs: {clusters:?}"
            )));
        }
    };
    let name = node_name_of(&cluster, cert)
        .map_err(|e| CertError::not_understudy_because(WHAT, "no usable node name", e))?;
    Ok((cluster, name))
}

/// The cluster a CA certificate is for, from its URI SAN `urn:understudy:cluster:<cluster>`.
pub(super) fn cluster_of_ca(cert: &CertificateDer<'_>) -> Result<ClusterName, CertError> {
    const WHAT: &str = "CA certificate";
    let not_ours = |problem: String| CertError::not_understudy(WHAT, problem);
    webpki::anchor_from_trusted_cert(cert)
        .map_err(|e| CertError::not_understudy_because(WHAT, "not usable as a trust anchor", e))?;
    let ee = webpki::EndEntityCert::try_from(cert)
        .map_err(|e| CertError::not_understudy_because(WHAT, "not a valid X.509 certificate", e))?;
    let clusters: Vec<&str> = ee
        .valid_uri_names()
        .filter_map(|uri| uri.strip_prefix(CA_URI_PREFIX))
        .collect();
    match clusters.as_slice() {
        [one] => ClusterName::new(*one)
            .map_err(|e| CertError::not_understudy_because(WHAT, "its cluster name is invalid", e)),
        [] => Err(not_ours(format!(
            "it has no `{CA_URI_PREFIX}<cluster>` URI SAN (is this a node certificate? \
             {} must be the CA's own certificate)",
            file_names::CA_CERT
        ))),
        _ => Err(not_ours(format!("it names several clusters: {clusters:?}"))),
    }
}
