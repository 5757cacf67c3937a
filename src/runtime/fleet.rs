//! A session of several databases on disk: one log per database, named
//! `session-<time>-<database>.jsonl` with one time for all, found again
//! from any one of them; and the report over all of them.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Result};
use chrono::{DateTime, Utc};

use crate::config::Config;
use crate::session::log::new_session_path;

/// Where a new session's log goes: `session-<time>.jsonl`, or with the
/// database's name before the extension in a session of several.
pub fn session_path(dir: &Path, started: DateTime<Utc>, database: Option<&str>) -> PathBuf {
    let one = new_session_path(dir, started);
    match database {
        None => one,
        Some(name) => {
            let stem = one.file_stem().unwrap_or_default().to_string_lossy();
            one.with_file_name(format!("{stem}-{name}.jsonl"))
        }
    }
}

/// The logs to resume, one per config in order, from the one named: in a
/// session of several databases, its siblings beside it.
pub fn sibling_logs(path: &Path, configs: &[Arc<Config>]) -> Result<Vec<PathBuf>> {
    if configs.len() == 1 {
        return Ok(vec![path.to_path_buf()]);
    }
    let logged = crate::session::read::head_and_end(path).and_then(|(info, _)| info.database);
    let file = path
        .file_name()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned();
    let stem = logged
        .as_deref()
        .and_then(|name| file.strip_suffix(&format!("-{name}.jsonl")));
    let Some(stem) = stem else {
        bail!(
            "--resume {}: not a log of a session of several databases (the config names {}); \
             give one of the logs named session-<time>-<database>.jsonl",
            path.display(),
            configs.len()
        );
    };
    configs
        .iter()
        .map(|c| {
            let name = c.database.as_deref().unwrap_or_default();
            let sibling = path.with_file_name(format!("{stem}-{name}.jsonl"));
            if !sibling.is_file() {
                bail!(
                    "--resume {}: database {name}'s log {} is missing: resume with the config \
                     the session was recorded with",
                    path.display(),
                    sibling.display()
                );
            }
            Ok(sibling)
        })
        .collect()
}

/// Writes the report over every database: `[report] path`, or beside the
/// logs as `session-<time>.report.txt`. Where it went, or why not.
pub fn write_report(config: &Config, logs: &[PathBuf]) -> Result<PathBuf, String> {
    let out = match &config.report.path {
        Some(p) => p.clone(),
        None => {
            let first = logs.first().ok_or("no session log")?;
            let file = first.file_name().unwrap_or_default().to_string_lossy();
            // session-<time>-<db>.jsonl → session-<time>.report.txt
            let stem = file
                .rsplit_once('-')
                .map_or(file.as_ref(), |(stem, _)| stem)
                .to_string();
            first.with_file_name(format!("{stem}.report.txt"))
        }
    };
    let format = crate::report::Format::for_path(&out);
    crate::report::write_many(logs, format, &out)
        .map(|()| out)
        .map_err(|e| format!("{e:#}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_of_several_is_found_again_from_any_log() {
        let dir = tempfile::tempdir().unwrap();
        let text = format!(
            "[source]\ndsn = \"host=db1 dbname=postgres user=app\"\n\
             [target]\ndsn = \"host=db2 dbname=postgres user=app\"\n\
             [session]\ndir = \"{}\"\n\
             [[databases]]\nname = \"orders\"\n\
             [[databases]]\nname = \"billing\"\ntarget_dbname = \"ledger\"\n",
            dir.path().display()
        );
        let config = crate::config::parse(&text, &dir.path().join("c.toml")).unwrap();
        let configs: Vec<Arc<Config>> = config.fleet().into_iter().map(Arc::new).collect();
        let at = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let paths: Vec<PathBuf> = configs
            .iter()
            .map(|c| session_path(dir.path(), at, c.database.as_deref()))
            .collect();
        assert_eq!(
            paths[1].file_name().unwrap(),
            "session-20231114T221320.000Z-billing.jsonl"
        );
        for (c, p) in configs.iter().zip(&paths) {
            let mut log = crate::session::log::LogWriter::create(p).unwrap();
            let info = super::super::session_info(c, "live", false);
            log.append(&crate::session::Event {
                seq: 1,
                at,
                kind: crate::session::EventKind::SessionStarted(Box::new(info)),
            })
            .unwrap();
        }
        assert_eq!(sibling_logs(&paths[1], &configs).unwrap(), paths);
        std::fs::remove_file(&paths[0]).unwrap();
        let err = sibling_logs(&paths[1], &configs).unwrap_err().to_string();
        assert!(err.contains("database orders's log"), "{err}");
    }
}
