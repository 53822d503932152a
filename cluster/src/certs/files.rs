//! Reading and writing certificate files with errors that name the file.
//!
//! Writes never overwrite (a replaced `ca.key` would orphan every certificate it signed), and
//! private keys are created with mode 0600 on Unix, before any secret byte is written, so there
//! is no moment at which the key is readable by others.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use super::CertError;

/// Reads a text file; `remedy` says how to make it if it is missing.
pub(super) fn read(path: &Path, remedy: impl FnOnce() -> String) -> Result<String, CertError> {
    match fs::read_to_string(path) {
        Ok(text) => Ok(text),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Err(CertError::Missing {
            path: path.to_owned(),
            remedy: remedy(),
        }),
        Err(source) => Err(CertError::Unreadable {
            path: path.to_owned(),
            source,
        }),
    }
}

/// Whether a file is there (a dangling symlink or unreadable entry counts as there: the read
/// will then say what is wrong).
pub(super) fn exists(path: &Path) -> bool {
    fs::symlink_metadata(path).is_ok()
}

/// Fails with [`CertError::Exists`] for the first of `paths` that exists.
pub(super) fn refuse_existing(paths: &[&Path]) -> Result<(), CertError> {
    match paths.iter().find(|p| exists(p)) {
        Some(p) => Err(CertError::Exists {
            path: p.to_path_buf(),
        }),
        None => Ok(()),
    }
}

/// Creates `dir` (and its parents) if needed.
pub(super) fn create_dir(dir: &Path) -> Result<(), CertError> {
    fs::create_dir_all(dir).map_err(|source| CertError::Unwritable {
        path: dir.to_owned(),
        source,
    })
}

/// Writes a new file (never overwriting); a `secret` one is private to its owner on Unix.
pub(super) fn write_new(path: &Path, contents: &str, secret: bool) -> Result<(), CertError> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(if secret { 0o600 } else { 0o644 });
    }
    #[cfg(not(unix))]
    let _ = secret;
    let mut file = options.open(path).map_err(|source| {
        if source.kind() == io::ErrorKind::AlreadyExists {
            CertError::Exists {
                path: path.to_owned(),
            }
        } else {
            CertError::Unwritable {
                path: path.to_owned(),
                source,
            }
        }
    })?;
    file.write_all(contents.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|source| CertError::Unwritable {
            path: path.to_owned(),
            source,
        })
}

/// Writes a certificate and its key as a pair: the key first (so a cert never sits on disk
/// without its key), and if the certificate cannot be written, the key is removed again.
pub(super) fn write_pair(
    cert_path: &Path,
    cert_pem: &str,
    key_path: &Path,
    key_pem: &str,
) -> Result<(), CertError> {
    refuse_existing(&[cert_path, key_path])?;
    write_new(key_path, key_pem, true)?;
    if let Err(e) = write_new(cert_path, cert_pem, false) {
        let _ = fs::remove_file(key_path);
        return Err(e);
    }
    Ok(())
}

/// Wraps a parse error of the file at `path` with how to make a good one.
pub(super) fn invalid(path: PathBuf, source: CertError, remedy: String) -> CertError {
    CertError::InvalidFile {
        path,
        source: Box::new(source),
        remedy,
    }
}

/// How to (re)make the CA in `dir`.
pub(super) fn ca_remedy(dir: &Path) -> String {
    format!(
        "make a CA with `understudy certs init --cluster NAME --dir {}`",
        dir.display()
    )
}

/// How to (re)make node `name`'s certificate in `dir`.
pub(super) fn node_remedy(dir: &Path, name: &str) -> String {
    format!(
        "issue one with `understudy certs issue {name} --dir {} --ca-dir CA_DIR`",
        dir.display()
    )
}
