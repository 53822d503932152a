//! [`NodeCert`]: one node's certificate and private key.

use std::fmt;
use std::path::{Path, PathBuf};

use rcgen::{
    CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use super::files::{self, node_remedy};
use super::trust::names_in_node_cert;
use super::{
    CertError, PemPair, cert_from_pem, cert_to_pem, check_key_matches, cluster_san, file_names,
    generate_error, key_from_pem, node_san, to_pem, validity,
};
use crate::identity::{ClusterName, Incarnation, NodeIdentity, NodeName};

/// One node's certificate, signed by its cluster's CA, and the node's private key.
///
/// The certificate carries the cluster-wide SAN [`cluster_san`] and the per-node SAN
/// [`node_san`], and both the ServerAuth and ClientAuth extended key usages, so one certificate
/// serves the node's accepting and its dialing.
///
/// ```
/// use understudy_cluster::certs::{ClusterCa, NodeCert};
/// use understudy_cluster::identity::NodeName;
///
/// let ca = ClusterCa::ephemeral("prod");
/// let cert = ca.issue(&NodeName::new("web-1")?)?;
/// assert_eq!(cert.name().as_str(), "web-1");
/// assert_eq!(cert.cluster().as_str(), "prod");
///
/// // PEM round trip: cluster and name are read back from the certificate.
/// let pem = cert.to_pem();
/// let again = NodeCert::from_pem(&pem.cert, &pem.key)?;
/// assert_eq!(again.name(), cert.name());
/// assert_eq!(again.cert_der(), cert.cert_der());
///
/// // The key never shows in Debug output.
/// assert!(!format!("{cert:?} {pem:?}").contains("PRIVATE KEY"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct NodeCert {
    cluster: ClusterName,
    name: NodeName,
    cert: CertificateDer<'static>,
    key: PrivatePkcs8KeyDer<'static>,
}

impl NodeCert {
    /// Makes a key and a certificate for `name`, signed by `issuer` (the CA of `cluster`).
    pub(super) fn issue(
        cluster: &ClusterName,
        name: &NodeName,
        issuer: &Issuer<'_, KeyPair>,
        days: u32,
    ) -> Result<NodeCert, CertError> {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(generate_error)?;
        let mut params =
            CertificateParams::new(vec![cluster_san(cluster), node_san(cluster, name)])
                .map_err(generate_error)?;
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(
            DnType::OrganizationName,
            format!("understudy cluster {cluster}"),
        );
        params
            .distinguished_name
            .push(DnType::CommonName, node_san(cluster, name));
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.use_authority_key_identifier_extension = true;
        (params.not_before, params.not_after) = validity(days)?;
        let cert = params.signed_by(&key, issuer).map_err(generate_error)?;
        Ok(NodeCert {
            cluster: cluster.clone(),
            name: name.clone(),
            cert: cert.der().clone(),
            key: PrivatePkcs8KeyDer::from(key.serialize_der()),
        })
    }

    /// The node this certificate is for.
    pub fn name(&self) -> &NodeName {
        &self.name
    }

    /// The cluster whose CA signed it (as its SANs say; [`ClusterTrust::verify_node_cert`]
    /// checks the signature).
    ///
    /// [`ClusterTrust::verify_node_cert`]: super::ClusterTrust::verify_node_cert
    pub fn cluster(&self) -> &ClusterName {
        &self.cluster
    }

    /// The node's identity in its run `incarnation`.
    pub fn identity(&self, incarnation: Incarnation) -> NodeIdentity {
        NodeIdentity::new(self.cluster.clone(), self.name.clone(), incarnation)
    }

    /// The certificate (DER), as a peer sees it in the handshake.
    pub fn cert_der(&self) -> &[u8] {
        &self.cert
    }

    /// The certificate chain to present in TLS: just the leaf (peers hold the CA).
    pub(crate) fn chain(&self) -> Vec<CertificateDer<'static>> {
        vec![self.cert.clone()]
    }

    /// The private key, for rustls.
    pub(crate) fn private_key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(self.key.clone_key())
    }

    /// The certificate and key as PEM text (`<name>.pem`, `<name>.key`).
    pub fn to_pem(&self) -> PemPair {
        PemPair {
            cert: cert_to_pem(&self.cert),
            key: to_pem("PRIVATE KEY", self.key.secret_pkcs8_der()),
        }
    }

    /// A node certificate from the PEM text of its certificate and key, as written by
    /// [`to_pem`](Self::to_pem) or `understudy certs issue`.
    ///
    /// The cluster and node name are read from the certificate's SANs; the key must belong to
    /// the certificate. Whether a CA you trust signed it is [`ClusterTrust::verify_node_cert`]'s
    /// question.
    ///
    /// [`ClusterTrust::verify_node_cert`]: super::ClusterTrust::verify_node_cert
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<NodeCert, CertError> {
        let cert = cert_from_pem(cert_pem, "node certificate")?;
        let (cluster, name) = names_in_node_cert(&cert)?;
        let key = key_from_pem(key_pem, "node key")?;
        check_key_matches(&cert, &key, "node")?;
        Ok(NodeCert {
            cluster,
            name,
            cert,
            key: PrivatePkcs8KeyDer::from(key.serialize_der()),
        })
    }

    /// Writes `<name>.pem` and `<name>.key` (mode 0600) into `dir`, creating it if needed.
    /// Never overwrites: fails with [`CertError::Exists`] if either file is there.
    pub fn write_to(&self, dir: impl AsRef<Path>) -> Result<(), CertError> {
        let dir = dir.as_ref();
        let (cert_path, key_path) = paths(dir, &self.name);
        files::refuse_existing(&[&cert_path, &key_path])?;
        files::create_dir(dir)?;
        let pem = self.to_pem();
        files::write_pair(&cert_path, &pem.cert, &key_path, &pem.key)
    }

    /// Reads `<name>.pem` and `<name>.key` from `dir`; the certificate must be for `name`.
    ///
    /// The errors say which file is missing, unreadable or invalid, and which command makes it.
    pub fn load_from(dir: impl AsRef<Path>, name: &NodeName) -> Result<NodeCert, CertError> {
        let dir = dir.as_ref();
        let (cert_path, key_path) = paths(dir, name);
        let remedy = || node_remedy(dir, name.as_str());
        let cert_pem = files::read(&cert_path, remedy)?;
        let key_pem = files::read(&key_path, remedy)?;
        // Blame the right file: parse each alone first, then check they belong together.
        let cert = cert_from_pem(&cert_pem, "node certificate")
            .and_then(|cert| names_in_node_cert(&cert))
            .map_err(|e| files::invalid(cert_path.clone(), e, remedy()))?;
        if &cert.1 != name {
            let problem = CertError::not_understudy(
                "node certificate",
                format!("it is for node {}, not {name}", cert.1),
            );
            return Err(files::invalid(cert_path, problem, remedy()));
        }
        key_from_pem(&key_pem, "node key")
            .map_err(|e| files::invalid(key_path.clone(), e, remedy()))?;
        NodeCert::from_pem(&cert_pem, &key_pem).map_err(|e| files::invalid(key_path, e, remedy()))
    }
}

impl Clone for NodeCert {
    fn clone(&self) -> NodeCert {
        NodeCert {
            cluster: self.cluster.clone(),
            name: self.name.clone(),
            cert: self.cert.clone(),
            key: self.key.clone_key(),
        }
    }
}

impl fmt::Debug for NodeCert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NodeCert")
            .field("cluster", &self.cluster)
            .field("name", &self.name)
            .field("key", &"[secret key elided]")
            .finish_non_exhaustive()
    }
}

/// `<dir>/<name>.pem` and `<dir>/<name>.key`.
fn paths(dir: &Path, name: &NodeName) -> (PathBuf, PathBuf) {
    (
        dir.join(file_names::node_cert(name)),
        dir.join(file_names::node_key(name)),
    )
}
