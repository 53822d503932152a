//! [`ClusterCa`]: the cluster's certificate authority, which issues node certificates.

use std::fmt;
use std::path::Path;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use rustls_pki_types::CertificateDer;

use super::files::{self, ca_remedy};
use super::node::NodeCert;
use super::trust::{ClusterTrust, cluster_of_ca};
use super::{
    CA_URI_PREFIX, CertError, DEFAULT_CA_VALIDITY_DAYS, DEFAULT_NODE_VALIDITY_DAYS, PemPair,
    cert_from_pem, cert_to_pem, check_key_matches, file_names, generate_error, key_from_pem,
    validity,
};
use crate::identity::{ClusterName, NodeName};

/// A cluster's certificate authority: its certificate and its private key.
///
/// Only the machine (or CI job) that issues node certificates needs this; nodes need only the
/// public part, [`ClusterTrust`] (`ca.pem`).
///
/// ```
/// use understudy_cluster::certs::ClusterCa;
/// use understudy_cluster::identity::{ClusterName, NodeName};
///
/// let ca = ClusterCa::generate(&ClusterName::new("prod")?)?;
/// let cert = ca.issue(&NodeName::new("web-1")?)?;
/// assert_eq!(cert.name().as_str(), "web-1");
///
/// // PEM round trip: the reloaded CA issues certificates the original's trust accepts.
/// let pem = ca.to_pem();
/// let again = ClusterCa::from_pem(&pem.cert, &pem.key)?;
/// let cert2 = again.issue(&NodeName::new("web-2")?)?;
/// assert!(ca.trust().verify_peer(cert2.cert_der(), cert2.name()).is_ok());
///
/// // The key never shows in Debug output.
/// assert!(!format!("{ca:?}").contains("PRIVATE KEY"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct ClusterCa {
    cluster: ClusterName,
    cert: CertificateDer<'static>,
    /// The CA's subject name, key-id method and key usages, with its private key.
    issuer: Issuer<'static, KeyPair>,
}

impl ClusterCa {
    /// A new CA for `cluster`, valid for [`DEFAULT_CA_VALIDITY_DAYS`].
    pub fn generate(cluster: &ClusterName) -> Result<ClusterCa, CertError> {
        ClusterCa::generate_valid_for(cluster, DEFAULT_CA_VALIDITY_DAYS)
    }

    /// A new CA for `cluster`, valid from now (less an hour for clock skew) for `days` days.
    pub fn generate_valid_for(cluster: &ClusterName, days: u32) -> Result<ClusterCa, CertError> {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(generate_error)?;
        let mut params = ca_params(cluster)?;
        (params.not_before, params.not_after) = validity(days)?;
        let cert = params.self_signed(&key).map_err(generate_error)?;
        Ok(ClusterCa {
            cluster: cluster.clone(),
            cert: cert.der().clone(),
            issuer: Issuer::new(params, key),
        })
    }

    /// An in-memory CA for tests and demos: one call, nothing on disk.
    ///
    /// ```
    /// use understudy_cluster::certs::ClusterCa;
    /// let ca = ClusterCa::ephemeral("test");
    /// assert_eq!(ca.cluster().as_str(), "test");
    /// ```
    ///
    /// # Panics
    ///
    /// If `cluster` is not a valid [`ClusterName`], or key generation fails (it does not with
    /// *ring*). Use [`generate`](Self::generate) where the name comes from input.
    pub fn ephemeral(cluster: &str) -> ClusterCa {
        let cluster = match ClusterName::new(cluster) {
            Ok(name) => name,
            Err(e) => panic!("ClusterCa::ephemeral: {e}"),
        };
        match ClusterCa::generate(&cluster) {
            Ok(ca) => ca,
            Err(e) => panic!("ClusterCa::ephemeral: {e}"),
        }
    }

    /// The cluster this CA is for.
    pub fn cluster(&self) -> &ClusterName {
        &self.cluster
    }

    /// The CA certificate (DER).
    pub fn cert_der(&self) -> &[u8] {
        &self.cert
    }

    /// The public part that every node needs to check its peers.
    pub fn trust(&self) -> ClusterTrust {
        ClusterTrust::new(self.cluster.clone(), self.cert.clone())
    }

    /// A certificate for node `name`, valid for [`DEFAULT_NODE_VALIDITY_DAYS`], with a new key.
    pub fn issue(&self, name: &NodeName) -> Result<NodeCert, CertError> {
        self.issue_valid_for(name, DEFAULT_NODE_VALIDITY_DAYS)
    }

    /// A certificate for node `name`, valid from now (less an hour) for `days` days, with a new
    /// key.
    pub fn issue_valid_for(&self, name: &NodeName, days: u32) -> Result<NodeCert, CertError> {
        NodeCert::issue(&self.cluster, name, &self.issuer, days)
    }

    /// The certificate and key as PEM text (`ca.pem`, `ca.key`).
    pub fn to_pem(&self) -> PemPair {
        PemPair {
            cert: cert_to_pem(&self.cert),
            key: self.issuer.key().serialize_pem(),
        }
    }

    /// A CA from the PEM text of its certificate and key, as written by
    /// [`to_pem`](Self::to_pem) or `understudy certs init`.
    ///
    /// Checks that the key belongs to the certificate, that the certificate is a CA for an
    /// understudy cluster, and that certificates issued with it verify against it.
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<ClusterCa, CertError> {
        let cert = cert_from_pem(cert_pem, "CA certificate")?;
        let key = key_from_pem(key_pem, "CA key")?;
        let cluster = cluster_of_ca(&cert)?;
        check_key_matches(&cert, &key, "CA")?;
        let ca = ClusterCa {
            issuer: Issuer::new(ca_params(&cluster)?, key),
            cluster,
            cert,
        };
        ca.check_issues_verifiable()?;
        Ok(ca)
    }

    /// Writes `ca.pem` and `ca.key` (mode 0600) into `dir`, creating it if needed. Never
    /// overwrites: fails with [`CertError::Exists`] if either file is there.
    pub fn write_to(&self, dir: impl AsRef<Path>) -> Result<(), CertError> {
        let dir = dir.as_ref();
        let (cert_path, key_path) = paths(dir);
        files::refuse_existing(&[&cert_path, &key_path])?;
        files::create_dir(dir)?;
        let pem = self.to_pem();
        files::write_pair(&cert_path, &pem.cert, &key_path, &pem.key)
    }

    /// Reads `ca.pem` and `ca.key` from `dir`.
    ///
    /// The errors say which file is missing, unreadable or invalid, and which command makes
    /// it; a directory with neither file gives [`CertError::NoCa`].
    pub fn load_from(dir: impl AsRef<Path>) -> Result<ClusterCa, CertError> {
        let dir = dir.as_ref();
        let (cert_path, key_path) = paths(dir);
        if !files::exists(&cert_path) && !files::exists(&key_path) {
            return Err(CertError::NoCa {
                dir: dir.to_owned(),
            });
        }
        let pair_remedy = |missing: &'static str| {
            move || {
                format!(
                    "{} and {} are made together by `understudy certs init`; copy {missing} \
                     from where that ran, or make a new CA (and re-issue every node \
                     certificate) with `understudy certs init --cluster NAME --dir {}`",
                    file_names::CA_CERT,
                    file_names::CA_KEY,
                    dir.display()
                )
            }
        };
        let cert_pem = files::read(&cert_path, pair_remedy(file_names::CA_CERT))?;
        let key_pem = files::read(&key_path, pair_remedy(file_names::CA_KEY))?;
        // Blame the right file: parse each alone first, then check they belong together.
        cert_from_pem(&cert_pem, "CA certificate")
            .and_then(|cert| cluster_of_ca(&cert))
            .map_err(|e| files::invalid(cert_path.clone(), e, ca_remedy(dir)))?;
        key_from_pem(&key_pem, "CA key")
            .map_err(|e| files::invalid(key_path.clone(), e, ca_remedy(dir)))?;
        ClusterCa::from_pem(&cert_pem, &key_pem).map_err(|e| {
            let path = match e {
                CertError::KeyMismatch { .. } => key_path,
                _ => cert_path,
            };
            files::invalid(path, e, ca_remedy(dir))
        })
    }

    /// Issues a throwaway certificate and verifies it against this CA's certificate: catches a
    /// certificate whose subject is not the one understudy derives for its cluster (the
    /// issuer name written into new certificates would not match it).
    fn check_issues_verifiable(&self) -> Result<(), CertError> {
        let probe =
            NodeName::new("probe").map_err(|e| CertError::generate("a probe certificate", e))?;
        let cert = self.issue_valid_for(&probe, 1)?;
        self.trust()
            .verify_peer(cert.cert_der(), &probe)
            .map_err(|e| {
                CertError::not_understudy_because(
                    "CA certificate",
                    "certificates issued with it do not verify against it",
                    e,
                )
            })
    }
}

impl fmt::Debug for ClusterCa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClusterCa")
            .field("cluster", &self.cluster)
            .field("key", &"[secret key elided]")
            .finish_non_exhaustive()
    }
}

/// `<dir>/ca.pem` and `<dir>/ca.key`.
fn paths(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    (dir.join(file_names::CA_CERT), dir.join(file_names::CA_KEY))
}

/// The CA certificate's parameters for `cluster`, apart from validity. Deterministic: loading a
/// CA from PEM rebuilds its issuer name from the cluster name alone, so this must not change
/// for existing clusters.
fn ca_params(cluster: &ClusterName) -> Result<CertificateParams, CertError> {
    let mut params = CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::OrganizationName, "understudy");
    params.distinguished_name.push(
        DnType::CommonName,
        format!("understudy cluster CA {cluster}"),
    );
    let uri = format!("{CA_URI_PREFIX}{cluster}")
        .try_into()
        .map_err(|e: rcgen::Error| CertError::generate("the CA's cluster URI", e))?;
    params.subject_alt_names = vec![SanType::URI(uri)];
    // Signs node certificates only, never another CA.
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    Ok(params)
}
