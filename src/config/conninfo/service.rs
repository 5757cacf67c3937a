//! The connection service file (`pg_service.conf`), as libpq reads it.
//!
//! ```text
//! # comment
//! [mydb]
//! host=db1.example,db2.example
//! port=5432
//! dbname=app
//! ```
//!
//! The user file (`PGSERVICEFILE`, else `~/.pg_service.conf`) is searched
//! first; only if it lacks the service is the system file
//! (`PGSYSCONFDIR/pg_service.conf`, else the distribution's default) read.

use std::path::{Path, PathBuf};

use super::lexer::Pair;
use super::resolve::home_dir;
use super::{ConnInfo, ConnInfoError, Env};
use crate::config::file;

/// Where libpq looks when `PGSYSCONFDIR` is not set (Debian and Ubuntu's
/// build of libpq; other builds differ, and can be pointed at with the variable).
const SYSTEM_DIR: &str = "/etc/postgresql-common";

/// The files searched for a service, in order.
pub fn service_files(env: &dyn Env) -> Vec<PathBuf> {
    let var = |name: &str| env.var(name).filter(|v| !v.is_empty());
    let user = match var("PGSERVICEFILE") {
        Some(f) => Some(PathBuf::from(f)),
        None => home_dir(env).map(|h| h.join(".pg_service.conf")),
    };
    let system = PathBuf::from(var("PGSYSCONFDIR").unwrap_or_else(|| SYSTEM_DIR.into()))
        .join("pg_service.conf");
    user.into_iter().chain([system]).collect()
}

/// The keywords of service `name`, from the first file that defines it.
pub(super) fn lookup(name: &str, env: &dyn Env) -> Result<ConnInfo, ConnInfoError> {
    let files = service_files(env);
    for path in &files {
        let bytes = match file::read_limited(path, file::MAX_FILE_BYTES) {
            Ok(b) => b,
            // libpq skips a file that does not exist.
            Err(file::ReadError::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => {
                return Err(ConnInfoError::env(format!(
                    "service file \"{}\": {e}",
                    path.display()
                )))
            }
        };
        let text = String::from_utf8_lossy(&bytes);
        if let Some(info) = parse_group(&text, name, path)? {
            return Ok(info);
        }
    }
    let looked = files
        .iter()
        .map(|f| f.display().to_string())
        .collect::<Vec<_>>()
        .join(", ");
    Err(ConnInfoError::env(format!(
        "definition of service \"{}\" not found (looked in {looked})",
        name.escape_debug()
    )))
}

/// The keywords of group `[name]` in one file, or None if it has no such group.
fn parse_group(text: &str, name: &str, path: &Path) -> Result<Option<ConnInfo>, ConnInfoError> {
    let mut info: Option<ConnInfo> = None;
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let at = |message: String| {
            ConnInfoError::env(format!(
                "service file \"{}\", line {}: {message}",
                path.display(),
                n + 1
            ))
        };
        if let Some(group) = line.strip_prefix('[') {
            if info.is_some() {
                // The wanted group ended.
                break;
            }
            if group.strip_suffix(']') == Some(name) {
                info = Some(ConnInfo::default());
            }
            continue;
        }
        let Some(info) = info.as_mut() else { continue };
        let Some((key, value)) = line.split_once('=') else {
            return Err(at("syntax error (expected keyword=value)".into()));
        };
        let key = key.trim();
        if key == "service" {
            return Err(at(
                "nested service specifications are not supported in service files".into(),
            ));
        }
        let value = value.trim();
        info.apply(Pair {
            key: key.to_owned(),
            key_offset: 0,
            value: value.to_owned(),
            value_offset: 0,
            verbatim_at: None,
            after_bare_password: false,
        })
        .map_err(|e| at(e.message))?;
    }
    if let Some(info) = &info {
        info.check_counts().map_err(|(_, m)| {
            ConnInfoError::env(format!(
                "service file \"{}\", service \"{name}\": {m}",
                path.display()
            ))
        })?;
    }
    Ok(info)
}
