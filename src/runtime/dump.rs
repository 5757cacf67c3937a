//! The dump-and-restore copy: `pg_dump --format=directory` of the source
//! into a directory beside the session log (owner-only, as the log), then
//! `pg_restore` of it into the target, each with parallel jobs; progress
//! (tables and bytes, from their `--verbose` lines and the directory's
//! files) sent at most once a second. The directory holds the database's
//! data: it is removed when the step ends, however it ends (a cancel drops
//! the step, which kills both tools and removes it). Passwords go to the
//! tools in their environment, never on a command line.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::mpsc::Sender;

use crate::config::{Config, ConnConfig};
use crate::session::event::CopyProgress;
use crate::session::{EventKind, Side};

use super::exec::send;

/// The whole copy, dump and restore, at most.
const COPY_TIMEOUT: Duration = Duration::from_secs(24 * 3600);
const PROGRESS_EVERY: Duration = Duration::from_secs(1);

fn tool(name: &str) -> PathBuf {
    std::env::var_os("CUTOVER_PG_BIN")
        .map(|d| PathBuf::from(d).join(name))
        .unwrap_or_else(|| name.into())
}

fn with_password(cmd: &mut tokio::process::Command, conn: &ConnConfig) {
    cmd.env_remove("PGPASSWORD");
    if let Some(pw) = conn.password_for(0) {
        cmd.env("PGPASSWORD", pw.expose());
    }
}

/// Removes the dump directory when dropped: at the step's end, its
/// failure, or its cancel.
struct DumpDir(PathBuf);

impl Drop for DumpDir {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.0) {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!("removing the dump directory {}: {e}", self.0.display());
            }
        }
    }
}

/// How this config's dump directories begin: `dump-`, with the
/// database's name in a session of several (they copy at once).
fn dump_prefix(config: &Config) -> String {
    match &config.database {
        Some(db) => format!("dump-{db}-"),
        None => "dump-".into(),
    }
}

/// Removes the dump directories a killed console left in the session
/// directory (only the copy makes `dump-*` there) for this config's
/// database; what it did, in words.
pub fn remove_left_over(config: &Config) -> String {
    let prefix = dump_prefix(config);
    let dirs: Vec<PathBuf> = std::fs::read_dir(&config.session.dir)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.is_dir()
                && p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(&prefix))
        })
        .collect();
    let mut said = Vec::new();
    for d in dirs {
        match std::fs::remove_dir_all(&d) {
            Ok(()) => said.push(format!("removed {}", d.display())),
            Err(e) => said.push(format!("could not remove {}: {e}", d.display())),
        }
    }
    if said.is_empty() {
        String::new()
    } else {
        format!("; its dump directory: {}", said.join(", "))
    }
}

/// Bytes of the regular files directly in `dir` (the dump's data files).
fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok()?.metadata().ok())
        .filter(|m| m.is_file())
        .map(|m| m.len())
        .sum()
}

/// A table's data item of a directory dump is `<dump id>.dat`.
fn item_bytes(dir: &Path, item: &str) -> u64 {
    std::fs::metadata(dir.join(format!("{item}.dat")))
        .map(|m| m.len())
        .unwrap_or(0)
}

/// What a `--verbose` line of pg_dump or pg_restore says about table data:
/// a table whose data is done (its dump id when the line names it).
pub(super) fn table_done(line: &str) -> Option<Option<String>> {
    // Parallel mode: "finished item 3410 TABLE DATA orders".
    if let Some(rest) = line.split("finished item ").nth(1) {
        let mut words = rest.split_whitespace();
        let item = words.next()?.to_string();
        return (words.next() == Some("TABLE") && words.next() == Some("DATA"))
            .then_some(Some(item));
    }
    // One job: a table started is the one before it done.
    (line.contains("dumping contents of table") || line.contains("processing data for table"))
        .then_some(None)
}

/// The source's tables: how many and their size (heap and TOAST), for the
/// dump's progress.
async fn source_size(client: &tokio_postgres::Client) -> Result<(u64, u64)> {
    let row = client
        .query_one(
            "SELECT count(*)::bigint, coalesce(sum(pg_table_size(c.oid)), 0)::bigint \
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.relkind IN ('r', 'm') AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
             AND n.nspname NOT LIKE 'pg_toast%' AND n.nspname NOT LIKE 'pg_temp%'",
            &[],
        )
        .await
        .context("reading the source's table sizes")?;
    Ok((row.get::<_, i64>(0) as u64, row.get::<_, i64>(1) as u64))
}

/// One half of the copy, as its progress is told.
#[derive(Clone, Copy)]
struct Phase<'a> {
    /// The tool, for messages.
    name: &'static str,
    /// `dump` or `restore`.
    phase: &'static str,
    dir: &'a Path,
    /// Tables and bytes in all.
    totals: (u64, u64),
    /// When the copy began.
    started: Instant,
    /// The run.
    id: u64,
}

/// The relations a restore makes (tables, sequences, views, materialized
/// and foreign tables) by `schema.name`, with their kind, on one side; an
/// extension's own (pg_stat_statements' views) come with the extension,
/// which the dump creates only if it does not exist.
async fn relations(client: &tokio_postgres::Client, side: Side) -> Result<Vec<(String, String)>> {
    let rows = client
        .query(
            "SELECT n.nspname || '.' || c.relname, \
               CASE c.relkind WHEN 'S' THEN 'sequence' WHEN 'v' THEN 'view' \
                 WHEN 'm' THEN 'materialized view' WHEN 'f' THEN 'foreign table' \
                 ELSE 'table' END \
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.relkind IN ('r', 'p', 'S', 'v', 'm', 'f') \
               AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
               AND n.nspname NOT LIKE 'pg\\_%' \
               AND NOT EXISTS (SELECT 1 FROM pg_depend d \
                 WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid \
                   AND d.deptype = 'e') \
             ORDER BY 1",
            &[],
        )
        .await
        .with_context(|| format!("listing the {}'s relations", side.as_str()))?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

/// What the target already has of what the restore would make: the restore
/// would stop at the first of them, after a whole dump.
fn conflicts(source: &[(String, String)], target: &[(String, String)]) -> Vec<String> {
    target
        .iter()
        .filter(|(name, _)| source.iter().any(|(s, _)| s == name))
        .map(|(name, kind)| format!("{name} ({kind})"))
        .collect()
}

/// Runs one tool to its end, sending progress from its `--verbose` lines
/// and the dump directory; its last error lines on failure.
async fn run_tool(
    mut cmd: tokio::process::Command,
    p: &Phase<'_>,
    tx: &Sender<EventKind>,
) -> Result<()> {
    let Phase {
        name,
        phase,
        dir,
        totals,
        started,
        id,
    } = *p;
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd
        .spawn()
        .with_context(|| format!("starting {name} (put it on PATH, or set CUTOVER_PG_BIN)"))?;
    let stderr = child
        .stderr
        .take()
        .ok_or_else(|| anyhow!("{name} gave no error pipe"))?;
    let mut lines = BufReader::new(stderr).lines();
    let mut tail: Vec<String> = Vec::new();
    let (mut tables, mut restored) = (0u64, 0u64);
    let mut sent: Option<Instant> = None;
    let mut tick = tokio::time::interval(PROGRESS_EVERY);
    let restore = phase == "restore";
    let phase_started = Instant::now();
    let progress = |tables: u64, restored: u64| {
        let bytes_done = if restore { restored } else { dir_bytes(dir) };
        let (done, total) = if totals.1 > 0 && bytes_done > 0 {
            (bytes_done, totals.1)
        } else {
            (tables.min(totals.0), totals.0)
        };
        let spent = phase_started.elapsed().as_millis() as u64;
        CopyProgress {
            phase: phase.to_string(),
            tables_done: tables.min(totals.0),
            tables_total: totals.0,
            bytes_done,
            bytes_total: totals.1,
            elapsed_ms: started.elapsed().as_millis() as u64,
            eta_ms: (done > 0 && total >= done).then(|| spent.saturating_mul(total - done) / done),
        }
    };
    loop {
        tokio::select! {
            line = lines.next_line() => {
                let Some(line) = line.context("reading its output")? else { break };
                match table_done(&line) {
                    Some(Some(item)) => {
                        tables += 1;
                        if restore {
                            restored += item_bytes(dir, &item);
                        }
                    }
                    Some(None) => tables += 1,
                    None => {}
                }
                if line.contains("error") || line.contains("FATAL") || line.contains("ERROR") {
                    tail.push(line);
                    if tail.len() > 5 {
                        tail.remove(0);
                    }
                }
            }
            _ = tick.tick() => {}
        }
        if sent.is_none_or(|t| t.elapsed() >= PROGRESS_EVERY) {
            sent = Some(Instant::now());
            send(
                tx,
                EventKind::CopyProgress {
                    id,
                    progress: progress(tables, restored),
                },
            )
            .await?;
        }
    }
    let status = child.wait().await.context("waiting for it")?;
    if !status.success() {
        return Err(anyhow!(
            "{name} failed ({status}){}",
            if tail.is_empty() {
                String::new()
            } else {
                format!(": {}", tail.join(" | "))
            }
        ));
    }
    // The end, as it stands: every table.
    let mut done = progress(totals.0, if restore { totals.1 } else { 0 });
    done.tables_done = totals.0;
    done.eta_ms = Some(0);
    send(tx, EventKind::CopyProgress { id, progress: done }).await?;
    Ok(())
}

/// Before any copy: the source's tables and their size, and a refusal,
/// naming them, when the target already has some of what the restore
/// makes (it would stop at the first, after a whole dump).
pub(super) async fn precheck(config: &Config) -> Result<(u64, u64)> {
    let open = |side| super::pg_steps::open(config, side, 5_000, 60_000);
    let (source, target) = (open(Side::Source).await?, open(Side::Target).await?);
    let (tables, source_bytes) = source_size(&source).await?;
    let clash = conflicts(
        &relations(&source, Side::Source).await?,
        &relations(&target, Side::Target).await?,
    );
    if !clash.is_empty() {
        let n = clash.len();
        let first: Vec<&str> = clash.iter().take(5).map(String::as_str).collect();
        return Err(anyhow!(
            "nothing copied: the target already has {n} of the relations the restore makes \
             ({}{}); drop them there (a part left by an earlier copy) and run it again",
            first.join(", "),
            if n > 5 { ", …" } else { "" }
        ));
    }
    Ok((tables, source_bytes))
}

/// The copy, start to end.
pub async fn dump_restore(
    id: u64,
    config: &Config,
    jobs: u64,
    tx: &Sender<EventKind>,
) -> Result<String> {
    let started = Instant::now();
    let (tables, source_bytes) = precheck(config).await?;
    let dir = config.session.dir.join(format!(
        "{}{}-{id}",
        dump_prefix(config),
        chrono::Utc::now().format("%Y%m%dT%H%M%S")
    ));
    let guard = DumpDir(dir.clone());
    let jobs = jobs.max(1).to_string();

    let mut dump = tokio::process::Command::new(tool("pg_dump"));
    dump.args([
        "--format=directory",
        "--compress=0",
        "--no-owner",
        "--no-privileges",
        "--no-publications",
        "--no-subscriptions",
        "--verbose",
        "--jobs",
        &jobs,
        "--file",
    ])
    .arg(&dir)
    .arg("--dbname")
    .arg(config.source.params.libpq_conninfo());
    with_password(&mut dump, &config.source);
    let copy = async {
        let phase = Phase {
            name: "pg_dump",
            phase: "dump",
            dir: &dir,
            totals: (tables, source_bytes),
            started,
            id,
        };
        run_tool(dump, &phase, tx).await?;
        let dumped_at = started.elapsed();
        let dump_bytes = dir_bytes(&dir);
        let mut restore = tokio::process::Command::new(tool("pg_restore"));
        restore
            .args([
                "--no-owner",
                "--no-privileges",
                "--exit-on-error",
                "--verbose",
                "--jobs",
                &jobs,
                "--dbname",
            ])
            .arg(config.target.params.libpq_conninfo())
            .arg(&dir);
        with_password(&mut restore, &config.target);
        let phase = Phase {
            name: "pg_restore",
            phase: "restore",
            dir: &dir,
            totals: (tables, dump_bytes),
            started,
            id,
        };
        run_tool(restore, &phase, tx).await?;
        anyhow::Ok((dumped_at, dump_bytes))
    };
    let (dumped_at, dump_bytes) =
        tokio::time::timeout(COPY_TIMEOUT, copy)
            .await
            .map_err(|_| {
                anyhow!(
                    "the copy did not finish within {} h",
                    COPY_TIMEOUT.as_secs() / 3600
                )
            })??;
    drop(guard);
    let total = started.elapsed();
    Ok(format!(
        "{tables} tables, {} dumped in {:.1} s and restored in {:.1} s with {jobs} jobs each \
         ({:.1} s in all); the dump directory is removed",
        crate::ui::fmt::bytes(dump_bytes as i64),
        dumped_at.as_secs_f64(),
        (total - dumped_at).as_secs_f64(),
        total.as_secs_f64()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conflicts_are_what_both_sides_have_by_name() {
        let rel = |n: &str, k: &str| (n.to_string(), k.to_string());
        let source = [
            rel("public.users", "table"),
            rel("public.users_id_seq", "sequence"),
        ];
        let target = [
            rel("public.other", "table"),
            rel("public.users_id_seq", "sequence"),
        ];
        assert_eq!(
            conflicts(&source, &target),
            ["public.users_id_seq (sequence)"]
        );
        assert!(conflicts(&source, &[]).is_empty());
    }

    #[test]
    fn verbose_lines_say_which_table_is_done() {
        assert_eq!(
            table_done("pg_dump: finished item 3410 TABLE DATA orders"),
            Some(Some("3410".into()))
        );
        assert_eq!(
            table_done("pg_restore: finished item 3410 TABLE DATA orders"),
            Some(Some("3410".into()))
        );
        assert_eq!(
            table_done("pg_restore: finished item 12 INDEX orders_pkey"),
            None
        );
        assert_eq!(
            table_done("pg_dump: dumping contents of table \"public.orders\""),
            Some(None)
        );
        assert_eq!(
            table_done("pg_restore: processing data for table \"public.orders\""),
            Some(None)
        );
        assert_eq!(table_done("pg_dump: reading schemas"), None);
    }
}
