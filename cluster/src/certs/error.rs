//! [`CertError`]: what went wrong making, reading or writing certificates, said so that the
//! reader knows which file and which command fixes it.

use std::io;
use std::path::PathBuf;

/// Making, parsing, reading or writing a certificate failed.
///
/// File errors name the file and, where one exists, the `understudy certs` command that makes it:
///
/// ```
/// use understudy_cluster::certs::ClusterCa;
/// let dir = std::env::temp_dir().join("understudy-doc-no-ca-here");
/// let err = ClusterCa::load_from(&dir).unwrap_err();
/// assert_eq!(
///     err.to_string(),
///     format!(
///         "no CA in {0}: run `understudy certs init --cluster NAME --dir {0}` first",
///         dir.display()
///     ),
/// );
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CertError {
    /// Generating a key, signing a certificate or building the TLS configuration from them
    /// failed.
    #[error("cannot generate {what}: {source}")]
    Generate {
        /// What was being made, e.g. "the node's key".
        what: &'static str,
        /// Why: the certificate or TLS library's error (or the clock's).
        source: Cause,
    },
    /// Text that should hold a PEM certificate or key does not.
    #[error("the {what} is not valid PEM: {problem}")]
    Pem {
        /// What was being read, e.g. "CA certificate".
        what: String,
        /// What is wrong with it.
        problem: String,
        /// The parser's error, when it was the parser that refused it.
        #[source]
        source: Option<Cause>,
    },
    /// A certificate that is not the kind `understudy certs` makes (wrong SANs, not a CA, ...).
    #[error("the {what} was not made by `understudy certs`: {problem}")]
    NotUnderstudy {
        /// What was being read, e.g. "node certificate".
        what: String,
        /// What does not fit.
        problem: String,
        /// The underlying error, when a check of the certificate library refused it.
        #[source]
        source: Option<Cause>,
    },
    /// The private key does not belong to the certificate next to it.
    #[error("the {what} key does not belong to its certificate (were the files mixed up?)")]
    KeyMismatch {
        /// Whose key, e.g. "CA".
        what: String,
    },
    /// A directory has no CA at all: neither `ca.pem` nor `ca.key`.
    #[error("no CA in {}: run `understudy certs init --cluster NAME --dir {}` first", dir.display(), dir.display())]
    NoCa {
        /// The directory that was searched.
        dir: PathBuf,
    },
    /// A file that is needed does not exist.
    #[error("{} does not exist: {remedy}", path.display())]
    Missing {
        /// The missing file.
        path: PathBuf,
        /// How to make it.
        remedy: String,
    },
    /// A file exists but cannot be read.
    #[error("cannot read {}: {source}", path.display())]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// A file was read but does not hold what it should.
    #[error("{}: {source}; {remedy}", path.display())]
    InvalidFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with its contents.
        source: Box<CertError>,
        /// How to make a good one.
        remedy: String,
    },
    /// Writing would overwrite an existing file; keys are never silently replaced.
    #[error("{} already exists; not overwriting it (delete it first, or write to another directory)", path.display())]
    Exists {
        /// The file that is in the way.
        path: PathBuf,
    },
    /// A file or directory could not be written.
    #[error("cannot write {}: {source}", path.display())]
    Unwritable {
        /// The file or directory.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
}

/// The underlying error of a certificate, TLS or clock call: kept as the error's source
/// without putting the library's type in understudy's API.
pub type Cause = Box<dyn std::error::Error + Send + Sync + 'static>;

impl CertError {
    pub(crate) fn generate(
        what: &'static str,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        CertError::Generate {
            what,
            source: Box::new(source),
        }
    }

    /// A PEM problem found by understudy's own checks (no underlying error).
    pub(crate) fn pem(what: &str, problem: impl Into<String>) -> Self {
        CertError::Pem {
            what: what.to_owned(),
            problem: problem.into(),
            source: None,
        }
    }

    /// A PEM text the parser refused: its error is the problem and the source.
    pub(crate) fn pem_parse(
        what: &str,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        CertError::Pem {
            what: what.to_owned(),
            problem: source.to_string(),
            source: Some(Box::new(source)),
        }
    }

    /// A certificate that does not fit understudy's conventions (no underlying error).
    pub(crate) fn not_understudy(what: &str, problem: impl Into<String>) -> Self {
        CertError::NotUnderstudy {
            what: what.to_owned(),
            problem: problem.into(),
            source: None,
        }
    }

    /// A certificate a library check refused: `problem` says which check, the error is kept.
    pub(crate) fn not_understudy_because(
        what: &str,
        problem: &str,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        CertError::NotUnderstudy {
            what: what.to_owned(),
            problem: format!("{problem} ({source})"),
            source: Some(Box::new(source)),
        }
    }
}
