//! The Kubernetes side of a cutover: connecting, checking access, switching
//! the application's database config and restarting its workloads.

use sha2::{Digest, Sha256};

/// A short, stable fingerprint of a config value (first 8 hex digits of its
/// SHA-256), safe to log and show where the value itself must not appear.
pub fn fingerprint(value: &str) -> String {
    Sha256::digest(value.as_bytes())
        .iter()
        .take(4)
        .map(|b| format!("{b:02x}"))
        .collect()
}
