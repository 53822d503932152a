//! Names: plain UTF-8 strings, checked before they reach the log.

use crate::error::RegistryError;

/// The longest name, in bytes (UTF-8).
pub const MAX_NAME_LEN: usize = 255;

/// Checks that `name` can be registered: 1 to [`MAX_NAME_LEN`] bytes of UTF-8 with no
/// control characters (names show up in logs and tools, where those would mislead).
///
/// ```
/// use understudy_registry::check_name;
/// assert!(check_name("billing/eu-1").is_ok());
/// assert!(check_name("").is_err());
/// assert!(check_name("tab\there").is_err());
/// assert!(check_name(&"x".repeat(256)).is_err());
/// ```
pub fn check_name(name: &str) -> Result<(), RegistryError> {
    let reason = if name.is_empty() {
        "a name cannot be empty"
    } else if name.len() > MAX_NAME_LEN {
        "a name is at most 255 bytes of UTF-8"
    } else if name.chars().any(char::is_control) {
        "a name cannot hold control characters"
    } else {
        return Ok(());
    };
    Err(RegistryError::InvalidName {
        name: name.chars().take(64).collect(),
        reason,
    })
}
