//! The lab's app as a witness: what its pods measured, exported for other
//! processes (`cutover lab status`, `cutover lab audit`, tests).
//!
//! Two kinds of files in the lab directory, written by the process that runs
//! the app (`cutover lab serve`, or `cutover demo`) every second and once more
//! when it stops:
//!
//! - `<dir>/witness.json`: a small summary, rewritten whole (temp file +
//!   rename, so a reader never sees half of it): per pod and in total the
//!   acknowledged inserts and updates, failed writes, writes per second over
//!   the last complete seconds, the first and last acknowledged write on each
//!   database (`source`/`target`, by which config value the pod started with),
//!   the measured write-failure window and "last ack on source → first ack on
//!   target".
//! - `<dir>/witness/<pod>.jsonl`: append-only, one line per second with the
//!   ids that pod had acknowledged since the line before:
//!   `{"at":"…","inserts":["app-…-17",…],"updates":["app-…-9",…]}` (an update
//!   names the row; a row updated twice appears twice).
//!
//! Why split: at the default 500 writes/s an hour is 1.8 M acknowledged
//! writes, ~50 MB of ids. Rewriting them every second would cost ~50 MB/s of
//! I/O by the end of the hour and a reader could catch a large file half
//! renamed-over; appending costs only the new ids (~15 KB/s) and the summary
//! stays a few KB. Ids go in verbatim, not as pod + sequence number, so the
//! audit checks exactly what the app was told was stored. The summary is
//! written after the journal lines, so the journal holds at least what the
//! summary counts (unless an append failed, e.g. a full disk: the line is
//! taken back, retried the next second, and the serve log says why). A reader skips a last line without its newline (an
//! append in progress, or cut short by a crash): those ids were acknowledged
//! but not yet recorded, which can only make the audit check less, never
//! report a write missing that was not.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::kube_sim::ledger::{AckSpan, DrainCursor, PodDrain};
use super::kube_sim::{AppShared, Latency, SecondStats};
use super::{LabState, SWITCH_TO_FILE};

pub const WITNESS_FILE: &str = "witness.json";
pub(super) const WITNESS_TMP: &str = ".witness.json.tmp";
/// Directory of the per-pod journals of acknowledged ids.
pub const JOURNAL_DIR: &str = "witness";
/// Bumped when the files change incompatibly.
pub const WITNESS_FORMAT: u32 = 1;
/// "Writes per second lately": the mean over this many complete seconds.
pub const RATE_SECONDS: i64 = 5;
/// Per-second counts kept in the summary.
const RECENT_SECONDS: i64 = 30;
const EVERY: Duration = Duration::from_secs(1);

/// Contents of `<dir>/witness.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Witness {
    pub format: u32,
    /// The process that writes it.
    pub pid: u32,
    pub updated_at: DateTime<Utc>,
    /// Written when the app stopped: nothing more will come.
    #[serde(rename = "final")]
    pub is_final: bool,
    pub total: Figures,
    pub pods: Vec<PodFigures>,
    pub last_error: Option<String>,
}

/// What the app measured, for one pod or all of them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Figures {
    pub acknowledged_inserts: u64,
    pub acknowledged_updates: u64,
    pub failed: u64,
    /// Acknowledged and failed writes per second, over the last
    /// [`RATE_SECONDS`] complete seconds.
    pub ok_per_sec: f64,
    pub failed_per_sec: f64,
    /// The last seconds' counts, oldest first (seconds without writes left out).
    pub recent: Vec<SecondStats>,
    /// `source`, `target` (or the config fingerprint of another database) →
    /// its first and last acknowledged write.
    pub acks: BTreeMap<String, AckSpan>,
    /// None when no write failed.
    pub failure_window: Option<FailureWindow>,
    /// The last acknowledged write on the source → the first on the target
    /// (total only; None until both happened).
    pub source_to_target: Option<Gap>,
    /// How long acknowledged writes waited for their answer (absent in
    /// witness files from before it was measured).
    #[serde(default)]
    pub latency: Latency,
}

/// From the last acknowledged write before the first failure to the first
/// acknowledged write after the last failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailureWindow {
    pub from: DateTime<Utc>,
    /// None while writes still fail.
    pub to: Option<DateTime<Utc>>,
    pub ms: Option<i64>,
    pub first_failure: DateTime<Utc>,
    pub last_failure: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Gap {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    /// Negative when the target acknowledged writes before the source's last
    /// one: the app wrote to both at once.
    pub ms: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PodFigures {
    pub pod: String,
    /// The pod's journal, relative to the lab directory.
    pub journal: String,
    #[serde(flatten)]
    pub figures: Figures,
}

/// Which config value is which database, by fingerprint.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Labels(BTreeMap<String, &'static str>);

impl Labels {
    /// The lab's source and target, as the lab's own files name them (the
    /// app's initial DATABASE_URL and the switch's target value).
    pub fn for_lab(dir: &Path, state: &LabState) -> Labels {
        let mut m = BTreeMap::new();
        // The app's URLs, and the admin's (what labs before the app's role
        // wrote, and what `cutover demo` may still hand the pods).
        let admin = |port: u16| {
            format!(
                "host=127.0.0.1 port={port} dbname={} user=postgres",
                super::SEED_DB
            )
        };
        for (port, name) in [(state.target.port, "target"), (state.source.port, "source")] {
            m.insert(crate::kube::fingerprint(&admin(port)), name);
            m.insert(crate::kube::fingerprint(&super::app_conninfo(port)), name);
        }
        if let Ok(v) = fs::read_to_string(dir.join(SWITCH_TO_FILE)) {
            m.insert(crate::kube::fingerprint(&v), "target");
        }
        // Through the pooler the app's URL names no database: the pooler
        // decides where its writes go.
        if state.pooler.is_some() {
            m.insert(
                crate::kube::fingerprint(&state.app_database_url()),
                "pooler",
            );
        }
        Labels(m)
    }

    /// `source`, `target`, or the fingerprint itself.
    pub fn name(&self, fingerprint: &str) -> String {
        self.0
            .get(fingerprint)
            .map_or_else(|| fingerprint.to_string(), |l| l.to_string())
    }
}

fn ms(from: DateTime<Utc>, to: DateTime<Utc>) -> i64 {
    (to - from).num_milliseconds()
}

/// The figures of what `m` measured (one pod's, or all pods' together).
fn figures(m: &PodDrain, labels: &Labels, now: DateTime<Utc>) -> Figures {
    let (recent, timeline) = (&m.recent, &m.timeline);
    let current = now.timestamp();
    let rate = |f: fn(&SecondStats) -> u64| {
        let n: u64 = recent
            .iter()
            .filter(|s| s.second >= current - RATE_SECONDS && s.second < current)
            .map(f)
            .sum();
        n as f64 / RATE_SECONDS as f64
    };
    let acks: BTreeMap<String, AckSpan> = m
        .by_db
        .iter()
        .map(|(fp, span)| (labels.name(fp), *span))
        .collect();
    let failure_window = match (
        timeline.window(),
        timeline.first_failure,
        timeline.last_failure,
    ) {
        (Some((from, to)), Some(first_failure), Some(last_failure)) => Some(FailureWindow {
            from,
            to,
            ms: to.map(|t| ms(from, t)),
            first_failure,
            last_failure,
        }),
        _ => None,
    };
    let source_to_target = match (acks.get("source"), acks.get("target")) {
        (Some(s), Some(t)) => Some(Gap {
            from: s.last,
            to: t.first,
            ms: ms(s.last, t.first),
        }),
        _ => None,
    };
    Figures {
        acknowledged_inserts: m.inserts,
        acknowledged_updates: m.updates,
        failed: m.failed,
        ok_per_sec: rate(|s| s.ok),
        failed_per_sec: rate(|s| s.failed),
        recent: recent.clone(),
        acks,
        failure_window,
        source_to_target,
        latency: m.latency,
    }
}

fn journal_name(pod: &str) -> String {
    // Pod names are DNS labels; anything else must not escape the directory.
    let safe: String = pod
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{JOURNAL_DIR}/{safe}.jsonl")
}

#[derive(Serialize, Deserialize)]
struct JournalLine {
    at: DateTime<Utc>,
    #[serde(default)]
    inserts: Vec<String>,
    #[serde(default)]
    updates: Vec<String>,
}

fn append_journal(dir: &Path, pod: &str, d: &PodDrain, now: DateTime<Utc>) -> Result<()> {
    if d.new_inserts.is_empty() && d.new_updates.is_empty() {
        return Ok(());
    }
    let path = dir.join(journal_name(pod));
    let mut line = serde_json::to_vec(&JournalLine {
        at: now,
        inserts: d.new_inserts.clone(),
        updates: d.new_updates.clone(),
    })?;
    line.push(b'\n');
    let mut f = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    let before = f
        .metadata()
        .with_context(|| format!("reading {}", path.display()))?
        .len();
    // One write of the whole line (only this thread appends); a line cut
    // short (disk full) is taken back so that the next one starts clean.
    f.write_all(&line).map_err(|e| {
        let _ = f.set_len(before);
        anyhow!("appending to {}: {e}", path.display())
    })
}

/// Keeps the witness files current for one app.
struct Flusher {
    dir: PathBuf,
    app: Arc<AppShared>,
    labels: Labels,
    cursor: DrainCursor,
}

impl Flusher {
    fn flush(&mut self, is_final: bool) -> Result<()> {
        let now = Utc::now();
        let since = now.timestamp() - RECENT_SECONDS;
        // A cursor advanced past ids that could not be appended would lose
        // them, one advanced too little would journal them twice: each pod's
        // moves only once its journal took the line.
        let mut next = self.cursor.clone();
        let d = self.app.drain(&mut next, since);
        let mut journal_error = None;
        for (pod, p) in &d.pods {
            match append_journal(&self.dir, pod, p, now) {
                Ok(()) => {
                    if let Some(c) = next.get(pod) {
                        self.cursor.insert(pod.clone(), *c);
                    }
                }
                Err(e) => journal_error = journal_error.or(Some(e)),
            }
        }
        let sum = |f: fn(&PodDrain) -> u64| d.pods.values().map(f).sum::<u64>();
        let all = PodDrain {
            inserts: sum(|p| p.inserts),
            updates: sum(|p| p.updates),
            failed: sum(|p| p.failed),
            recent: d.recent,
            timeline: d.timeline,
            by_db: d.by_db,
            latency: d.latency,
            new_inserts: Vec::new(),
            new_updates: Vec::new(),
        };
        let total = figures(&all, &self.labels, now);
        let pods = d
            .pods
            .iter()
            .map(|(pod, p)| {
                let mut f = figures(p, &self.labels, now);
                f.source_to_target = None;
                PodFigures {
                    pod: pod.clone(),
                    journal: journal_name(pod),
                    figures: f,
                }
            })
            .collect();
        let w = Witness {
            format: WITNESS_FORMAT,
            pid: std::process::id(),
            updated_at: now,
            is_final,
            total,
            pods,
            last_error: d.last_error,
        };
        let tmp = self.dir.join(WITNESS_TMP);
        let text = serde_json::to_string_pretty(&w)?;
        fs::write(&tmp, text).with_context(|| format!("writing {}", tmp.display()))?;
        fs::rename(&tmp, self.dir.join(WITNESS_FILE))
            .with_context(|| format!("renaming {} to {WITNESS_FILE}", tmp.display()))?;
        journal_error.map_or(Ok(()), Err)
    }
}

/// The thread that writes the witness files every second;
/// [`WitnessWriter::finish`] writes them a last time.
pub struct WitnessWriter {
    stop: mpsc::Sender<()>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl WitnessWriter {
    /// Starts writing `dir`'s witness files from what `app` measures.
    pub fn spawn(dir: &Path, app: Arc<AppShared>, labels: Labels) -> Result<WitnessWriter> {
        let journals = dir.join(JOURNAL_DIR);
        fs::create_dir_all(&journals)
            .with_context(|| format!("creating {}", journals.display()))?;
        let mut f = Flusher {
            dir: dir.to_path_buf(),
            app,
            labels,
            cursor: DrainCursor::new(),
        };
        f.flush(false)?;
        let (stop, rx) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("lab-witness".into())
            .spawn(move || {
                let mut last_error = None;
                loop {
                    let stopping =
                        !matches!(rx.recv_timeout(EVERY), Err(mpsc::RecvTimeoutError::Timeout));
                    // Said once per distinct problem, on the serve log.
                    match f.flush(stopping) {
                        Ok(()) => last_error = None,
                        Err(e) => {
                            let msg = format!("{e:#}");
                            if last_error.as_ref() != Some(&msg) {
                                eprintln!("cutover: the lab's witness files: {msg}");
                                last_error = Some(msg);
                            }
                        }
                    }
                    if stopping {
                        return;
                    }
                }
            })
            .context("starting the witness writer")?;
        Ok(WitnessWriter {
            stop,
            thread: Some(thread),
        })
    }

    /// Writes the files a last time (marked final) and stops.
    pub async fn finish(mut self) {
        let _ = self.stop.send(());
        if let Some(t) = self.thread.take() {
            let _ = tokio::task::spawn_blocking(move || t.join()).await;
        }
    }
}

impl Drop for WitnessWriter {
    fn drop(&mut self) {
        let _ = self.stop.send(());
    }
}

/// Reads `<dir>/witness.json`; None when there is none.
pub fn read(dir: &Path) -> Result<Option<Witness>> {
    let path = dir.join(WITNESS_FILE);
    let text = match fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(anyhow!("reading {}: {e}", path.display())),
    };
    let w: Witness = serde_json::from_str(&text)
        .map_err(|e| anyhow!("{}:{}:{}: {e}", path.display(), e.line(), e.column()))?;
    if w.format != WITNESS_FORMAT {
        return Err(anyhow!(
            "{}: format {} (this cutover reads format {WITNESS_FORMAT})",
            path.display(),
            w.format
        ));
    }
    Ok(Some(w))
}

/// Every acknowledged write the journals hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Acknowledged {
    /// Insert ids, journal by journal (sorted by pod), each in the order
    /// acknowledged.
    pub inserts: Vec<String>,
    /// Row id → acknowledged updates, in the order first updated.
    pub updates: Vec<(String, u32)>,
    pub journals: usize,
}

impl Acknowledged {
    pub fn update_count(&self) -> u64 {
        self.updates.iter().map(|(_, n)| u64::from(*n)).sum()
    }
}

/// Reads every `<dir>/witness/*.jsonl`. Errors when there is no journal
/// directory (the app never ran with this lab) or a complete line is not a
/// journal line (`file:line:column: why`).
pub fn read_journals(dir: &Path) -> Result<Acknowledged> {
    let jdir = dir.join(JOURNAL_DIR);
    let entries = match fs::read_dir(&jdir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(anyhow!(
                "no record of the app's writes in {}: the lab's app writes it while it runs \
                 (start it with `cutover lab up`)",
                jdir.display()
            ))
        }
        Err(e) => return Err(anyhow!("reading {}: {e}", jdir.display())),
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .collect();
    files.sort();
    let mut out = Acknowledged {
        journals: files.len(),
        ..Acknowledged::default()
    };
    let mut update_index: std::collections::HashMap<String, usize> = Default::default();
    for path in files {
        let text =
            fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        // The part after the last newline is an append still under way.
        let complete = text.rfind('\n').map_or("", |i| &text[..i]);
        for (n, line) in complete.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let l: JournalLine = serde_json::from_str(line)
                .map_err(|e| anyhow!("{}:{}:{}: {e}", path.display(), n + 1, e.column()))?;
            out.inserts.extend(l.inserts);
            for id in l.updates {
                match update_index.get(&id) {
                    Some(&i) => out.updates[i].1 += 1,
                    None => {
                        update_index.insert(id.clone(), out.updates.len());
                        out.updates.push((id, 1));
                    }
                }
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmpdir() -> tempfile::TempDir {
        tempfile::tempdir().unwrap()
    }

    #[test]
    fn journals_skip_a_partial_last_line_and_count_updates_per_row() {
        let t = tmpdir();
        let j = t.path().join(JOURNAL_DIR);
        fs::create_dir_all(&j).unwrap();
        fs::write(
            j.join("app-b.jsonl"),
            "{\"at\":\"2024-01-01T00:00:00Z\",\"inserts\":[\"b-1\"],\"updates\":[\"b-1\"]}\n\
             {\"at\":\"2024-01-01T00:00:01Z\",\"inserts\":[\"b-2\"],\"updates\":[\"b-1\"]}\n\
             {\"at\":\"2024-01-01T00:00:02Z\",\"inser",
        )
        .unwrap();
        fs::write(
            j.join("app-a.jsonl"),
            "{\"at\":\"2024-01-01T00:00:00Z\",\"inserts\":[\"a-1\",\"a-2\"],\"updates\":[]}\n",
        )
        .unwrap();
        let a = read_journals(t.path()).unwrap();
        assert_eq!(a.inserts, ["a-1", "a-2", "b-1", "b-2"]);
        assert_eq!(a.updates, [("b-1".to_string(), 2)]);
        assert_eq!(a.journals, 2);
        assert_eq!(a.update_count(), 2);
    }

    #[test]
    fn a_broken_journal_line_is_named_by_file_and_line() {
        let t = tmpdir();
        let j = t.path().join(JOURNAL_DIR);
        fs::create_dir_all(&j).unwrap();
        fs::write(
            j.join("app-a.jsonl"),
            "{\"at\":\"2024-01-01T00:00:00Z\",\"inserts\":[]}\n{\"at\":1}\n",
        )
        .unwrap();
        let err = read_journals(t.path()).unwrap_err().to_string();
        let file = j.join("app-a.jsonl");
        assert!(err.starts_with(&format!("{}:2:", file.display())), "{err}");
    }

    #[test]
    fn no_journal_directory_says_the_app_never_wrote_here() {
        let t = tmpdir();
        let err = read_journals(t.path()).unwrap_err().to_string();
        assert_eq!(
            err,
            format!(
                "no record of the app's writes in {}: the lab's app writes it while it runs \
                 (start it with `cutover lab up`)",
                t.path().join(JOURNAL_DIR).display()
            )
        );
    }

    #[tokio::test]
    async fn the_writer_journals_every_acknowledged_id_once_and_summarises() {
        let t = tmpdir();
        let app = Arc::new(AppShared::default());
        let ids = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let mut labels = BTreeMap::new();
        labels.insert("fp-src".to_string(), "source");
        labels.insert("fp-tgt".to_string(), "target");
        app.record("app-a", "fp-src", ids(&["a-1", "a-2"]), vec![], 0, &[1, 2]);
        let w = WitnessWriter::spawn(t.path(), app.clone(), Labels(labels)).unwrap();
        let first = read(t.path()).unwrap().expect("written at once");
        assert_eq!(first.total.acknowledged_inserts, 2);
        assert!(!first.is_final);
        app.record("app-a", "fp-src", vec![], vec![], 3, &[]);
        app.record(
            "app-b",
            "fp-tgt",
            ids(&["b-1"]),
            ids(&["b-1"]),
            0,
            &[2500, 3],
        );
        w.finish().await;
        let last = read(t.path()).unwrap().unwrap();
        assert!(last.is_final);
        assert_eq!(last.total.acknowledged_inserts, 3);
        assert_eq!(last.total.acknowledged_updates, 1);
        assert_eq!(last.total.failed, 3);
        assert_eq!(last.total.latency.max_ms, 2500);
        assert_eq!(last.total.latency.count, 4);
        assert_eq!(last.pods.len(), 2);
        assert_eq!(last.pods[0].pod, "app-a");
        assert_eq!(last.pods[0].journal, "witness/app-a.jsonl");
        assert_eq!(last.pods[0].figures.failed, 3);
        assert_eq!(
            last.total.acks.keys().collect::<Vec<_>>(),
            ["source", "target"]
        );
        let gap = last.total.source_to_target.expect("both databases acked");
        assert_eq!(gap.from, last.total.acks["source"].last);
        assert_eq!(gap.to, last.total.acks["target"].first);
        let fw = last.total.failure_window.expect("writes failed");
        assert_eq!(fw.from, last.total.acks["source"].last);
        assert_eq!(fw.to, Some(last.total.acks["target"].first));
        assert_eq!(fw.ms, Some(gap.ms));
        let a = read_journals(t.path()).unwrap();
        assert_eq!(a.inserts, ["a-1", "a-2", "b-1"]);
        assert_eq!(a.updates, [("b-1".to_string(), 1)]);
        assert!(!t.path().join(WITNESS_TMP).exists());
    }
}
