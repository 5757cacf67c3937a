//! What a rollback needs, kept where a restarted console finds it: the value
//! a switch replaced, in an owner-only file beside the session log
//! (`<log>.rollback`). The log holds only fingerprints; this file holds the
//! value, written and fsynced before the switch's PATCH, and checked against
//! the log's fingerprints before it is used.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context, Result};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::kube::fingerprint;

/// Owner read and write, nobody else.
const MODE: u32 = 0o600;

/// The file beside `log` that keeps the value its session's switch replaced.
pub fn path_for(log: &Path) -> PathBuf {
    let mut name = log.as_os_str().to_owned();
    name.push(".rollback");
    PathBuf::from(name)
}

/// The value a switch replaced, with the fingerprints the log records.
/// Debug shows fingerprints only.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeptValue {
    /// `configmap/NAME`, `secret/NAME` or `service/NAME`.
    pub object: String,
    pub key: String,
    /// What the key held before the switch; None: the key was absent.
    previous: Option<String>,
    pub previous_fingerprint: Option<String>,
    /// Fingerprint of the value the switch writes.
    pub new_fingerprint: String,
    pub written_at: DateTime<Utc>,
}

impl KeptValue {
    pub fn new(
        object: impl Into<String>,
        key: impl Into<String>,
        previous: Option<String>,
        new_fingerprint: impl Into<String>,
        written_at: DateTime<Utc>,
    ) -> Self {
        Self {
            object: object.into(),
            key: key.into(),
            previous_fingerprint: previous.as_deref().map(fingerprint),
            previous,
            new_fingerprint: new_fingerprint.into(),
            written_at,
        }
    }

    /// The value to put back (None: remove the key). Never to be shown or logged.
    pub fn previous(&self) -> Option<&str> {
        self.previous.as_deref()
    }
}

impl fmt::Debug for KeptValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeptValue")
            .field("object", &self.object)
            .field("key", &self.key)
            .field("previous", &fp(self.previous.as_deref().map(fingerprint)))
            .field("new_fingerprint", &self.new_fingerprint)
            .field("written_at", &self.written_at)
            .finish()
    }
}

fn fp(f: Option<String>) -> String {
    f.map_or("absent".into(), |f| format!("sha256:{f}"))
}

/// Writes `kept` to `path` owner-only and fsyncs it (through a temporary
/// file renamed over the old one, so a crash leaves the old or the new
/// record, never half of one). Fails, naming the file, when it cannot be
/// made owner-only.
pub fn write(path: &Path, kept: &KeptValue) -> Result<()> {
    let tmp = {
        let mut name = path.as_os_str().to_owned();
        name.push(".tmp");
        PathBuf::from(name)
    };
    let what = |doing: &str| format!("{doing} the rollback file {}", tmp.display());
    match std::fs::remove_file(&tmp) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| what("removing a stale")),
    }
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(MODE)
        .open(&tmp)
        .with_context(|| what("creating"))?;
    let written = (|| {
        // The umask can only take bits away; set the mode itself and look.
        file.set_permissions(std::fs::Permissions::from_mode(MODE))
            .with_context(|| what("making owner-only"))?;
        let mode = file
            .metadata()
            .with_context(|| what("checking"))?
            .permissions()
            .mode()
            & 0o777;
        if mode != MODE {
            return Err(anyhow!(
                "{}: mode is {mode:o}, not {MODE:o}: the file system does not keep \
                 owner-only permissions, and the value it would hold is a secret",
                tmp.display()
            ));
        }
        let json = serde_json::to_vec_pretty(kept).context("encoding the rollback record")?;
        file.write_all(&json).with_context(|| what("writing"))?;
        file.sync_all().with_context(|| what("syncing"))?;
        std::fs::rename(&tmp, path).with_context(|| {
            format!(
                "renaming the rollback file {} to {}",
                tmp.display(),
                path.display()
            )
        })?;
        sync_dir(path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

/// The rename (or removal) itself survives a crash once the folder is synced.
fn sync_dir(path: &Path) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("syncing the folder {}", dir.display()))
}

/// The record in `path`, or None when there is no such file.
pub fn read(path: &Path) -> Result<Option<KeptValue>> {
    let text = match std::fs::read(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(e).with_context(|| format!("reading the rollback file {}", path.display()))
        }
    };
    // serde_json's messages may quote what they read: only say where.
    let kept: KeptValue = serde_json::from_slice(&text).map_err(|e| {
        anyhow!(
            "{}:{}:{}: not a rollback record ({:?} error)",
            path.display(),
            e.line(),
            e.column(),
            e.classify()
        )
    })?;
    Ok(Some(kept))
}

/// The record in `path` for restoring `object`'s `key` from the switch the
/// log records (it wrote `new_fingerprint` over `previous_fingerprint`).
/// Refuses, naming the file and what differs, unless the record is that
/// switch's and its value's sha256 is the log's `previous_fingerprint`.
pub fn read_checked(
    path: &Path,
    object: &str,
    key: &str,
    previous_fingerprint: Option<&str>,
    new_fingerprint: &str,
) -> Result<KeptValue> {
    let kept = read(path)?.ok_or_else(|| {
        anyhow!(
            "the value {object} {key} held before the switch is not known here: \
             no rollback file {}",
            path.display()
        )
    })?;
    let mut differs = Vec::new();
    if kept.object != object || kept.key != key {
        differs.push(format!(
            "it is for {} {}, not {object} {key}",
            kept.object, kept.key
        ));
    }
    if kept.new_fingerprint != new_fingerprint {
        differs.push(format!(
            "it is for a switch to sha256:{}, the log's switch wrote sha256:{new_fingerprint}",
            kept.new_fingerprint
        ));
    }
    let stored = kept.previous.as_deref().map(fingerprint);
    if stored.as_deref() != previous_fingerprint {
        differs.push(format!(
            "the value it holds is {}, the log says the switch replaced {}",
            fp(stored),
            fp(previous_fingerprint.map(str::to_string))
        ));
    }
    if differs.is_empty() {
        Ok(kept)
    } else {
        Err(anyhow!(
            "the rollback file {} does not match the session log: {}; nothing restored",
            path.display(),
            differs.join("; ")
        ))
    }
}

/// Removes the record once its rollback is done (absent is fine).
pub fn remove(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => sync_dir(path),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("removing the rollback file {}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALUE: &str = "postgres://app:s3cret-old@db1:5432/app";

    fn kept(previous: Option<&str>) -> KeptValue {
        KeptValue::new(
            "configmap/app-db",
            "DATABASE_URL",
            previous.map(str::to_string),
            fingerprint("postgres://app@db2/app"),
            DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
        )
    }

    #[test]
    fn round_trips_owner_only_beside_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("session-1.jsonl");
        let path = path_for(&log);
        assert_eq!(path, dir.path().join("session-1.jsonl.rollback"));
        assert_eq!(read(&path).unwrap(), None);
        let k = kept(Some(VALUE));
        write(&path, &k).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(read(&path).unwrap(), Some(k.clone()));
        let back = read_checked(
            &path,
            "configmap/app-db",
            "DATABASE_URL",
            Some(&fingerprint(VALUE)),
            &k.new_fingerprint,
        )
        .unwrap();
        assert_eq!(back.previous(), Some(VALUE));
        // Written again (a later switch): replaced whole, still owner-only.
        let absent = kept(None);
        write(&path, &absent).unwrap();
        assert_eq!(read(&path).unwrap(), Some(absent));
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert!(!dir.path().join("session-1.jsonl.rollback.tmp").exists());
        remove(&path).unwrap();
        assert!(!path.exists());
        remove(&path).unwrap();
    }

    #[test]
    fn debug_shows_fingerprints_never_the_value() {
        let text = format!("{:?}", kept(Some(VALUE)));
        assert!(!text.contains("s3cret"), "{text}");
        assert!(
            text.contains(&format!("sha256:{}", fingerprint(VALUE))),
            "{text}"
        );
    }

    #[test]
    fn a_value_that_is_not_the_logs_is_refused_with_what_differs() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.jsonl.rollback");
        let k = kept(Some("postgres://app@elsewhere/app"));
        write(&path, &k).unwrap();
        let err = read_checked(
            &path,
            "configmap/app-db",
            "DATABASE_URL",
            Some(&fingerprint(VALUE)),
            &k.new_fingerprint,
        )
        .unwrap_err()
        .to_string();
        assert_eq!(
            err,
            format!(
                "the rollback file {} does not match the session log: the value it holds is \
                 sha256:{}, the log says the switch replaced sha256:{}; nothing restored",
                path.display(),
                fingerprint("postgres://app@elsewhere/app"),
                fingerprint(VALUE)
            )
        );
        let err = read_checked(&path, "secret/db", "url", None, "0000")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("it is for configmap/app-db DATABASE_URL, not secret/db url"),
            "{err}"
        );
        assert!(err.contains("the log's switch wrote sha256:0000"), "{err}");
        assert!(
            err.contains("the log says the switch replaced absent"),
            "{err}"
        );
    }

    #[test]
    fn a_damaged_file_is_refused_without_quoting_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.jsonl.rollback");
        // A bare string where the record should be: serde_json would quote it.
        std::fs::write(&path, format!("\"{VALUE}\"")).unwrap();
        let err = read(&path).unwrap_err().to_string();
        assert!(!err.contains("s3cret"), "{err}");
        assert!(err.starts_with(&format!("{}:1:", path.display())), "{err}");
        assert!(err.contains("not a rollback record"), "{err}");
    }

    #[test]
    fn no_file_says_where_it_looked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.jsonl.rollback");
        let err = read_checked(&path, "configmap/app-db", "DATABASE_URL", None, "ab")
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            format!(
                "the value configmap/app-db DATABASE_URL held before the switch is not \
                 known here: no rollback file {}",
                path.display()
            )
        );
    }

    #[test]
    fn a_file_that_cannot_be_created_is_named() {
        let path = Path::new("/nonexistent-dir-for-cutover/s.jsonl.rollback");
        let err = format!("{:#}", write(path, &kept(Some(VALUE))).unwrap_err());
        assert!(
            err.contains(
                "creating the rollback file /nonexistent-dir-for-cutover/s.jsonl.rollback.tmp"
            ),
            "{err}"
        );
    }
}
