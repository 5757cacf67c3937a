//! Append-only JSONL session log. One event per line; a line is written whole
//! before the event is applied, and the file is fsynced at action events so an
//! SSH drop or a crash loses nothing the operator did.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::compact::Compactor;
use super::event::{Event, EventKind};
use super::read::Tail;
pub use super::read::{read_log, LogRead};

pub struct LogWriter {
    path: PathBuf,
    file: File,
    line: Vec<u8>,
    /// Samples are written as what changed since the previous one.
    compactor: Compactor,
    /// Bytes of whole lines written: where the file is cut back to when a
    /// write fails halfway (a full disk), so it never ends in a torn line.
    whole: u64,
}

/// A session log describes production (hosts, roles, tables, the keys of
/// rows that differ): only its owner may read it.
pub const LOG_MODE: u32 = 0o600;
/// The directory of session logs, when cutover creates it.
pub const DIR_MODE: u32 = 0o700;

/// With `[session] group`: the log, and its directory, for that group to read.
pub const GROUP_LOG_MODE: u32 = 0o640;
pub const GROUP_DIR_MODE: u32 = 0o750;

/// Gives `path` to group `gid` with `mode`; what cannot be changed (a
/// directory someone else owns) is an error saying so.
pub fn share_with_group(path: &Path, gid: u32, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::os::unix::fs::chown(path, None, Some(gid))
        .and_then(|()| std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)))
        .with_context(|| {
            format!(
                "giving {} to group {gid} ([session] group) with mode {mode:04o}",
                path.display()
            )
        })
}

/// Creates `dir` (and its missing parents) owner-only; one that exists
/// keeps the mode it has.
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(dir)
}

/// Creates (or opens) a file beside the sessions owner-only, for writers
/// that open it themselves afterwards (the tracing file).
pub fn create_private_file(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let file = OpenOptions::new()
        .append(true)
        .create(true)
        .mode(LOG_MODE)
        .open(path)?;
    file.set_permissions(std::fs::Permissions::from_mode(LOG_MODE))
}

impl LogWriter {
    /// Creates the log (owner-only), refusing to overwrite an existing session.
    pub fn create(path: &Path) -> Result<Self> {
        Self::create_for(path, None)
    }

    /// Creates the log readable by its owner and, when `group` (a gid) is
    /// given, by that group's members too (`[session] group`: followers in
    /// another account): the file 0640 and its directory 0750, both in
    /// that group. Refuses to overwrite an existing session.
    pub fn create_for(path: &Path, group: Option<u32>) -> Result<Self> {
        use std::os::unix::fs::OpenOptionsExt;
        if let Some(dir) = path.parent() {
            create_private_dir(dir)
                .with_context(|| format!("creating session directory {}", dir.display()))?;
            if let Some(gid) = group {
                share_with_group(dir, gid, GROUP_DIR_MODE)?;
            }
        }
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(LOG_MODE)
            .open(path)
            .with_context(|| format!("creating session log {}", path.display()))?;
        lock(&file, path)?;
        if let Some(gid) = group {
            share_with_group(path, gid, GROUP_LOG_MODE)?;
        }
        Ok(Self {
            path: path.to_owned(),
            file,
            line: Vec::with_capacity(4096),
            compactor: Compactor::default(),
            whole: 0,
        })
    }

    /// Opens an existing session to go on writing it (`--resume`): reads
    /// every event, changing nothing yet ([`Reopened::into_writer`] does).
    /// A bad line before the last, or a log that does not begin with its
    /// session, is refused.
    pub fn open_append(path: &Path) -> Result<Reopened> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .with_context(|| format!("opening session log {} to resume it", path.display()))?;
        lock(&file, path)?;
        let read = Tail::from_file(
            path,
            file.try_clone()
                .with_context(|| format!("reading session log {}", path.display()))?,
        )
        .finish()?;
        let (events, whole) = (read.events, read.whole);
        let len = whole + read.torn_bytes;
        match events.first().map(|e| &e.kind) {
            Some(EventKind::SessionStarted(_)) => {}
            _ => anyhow::bail!(
                "{}:1: not a session log: it does not begin with the session's start",
                path.display()
            ),
        }
        Ok(Reopened {
            path: path.to_owned(),
            file,
            whole,
            events,
            cut: len - whole,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn append(&mut self, event: &Event) -> Result<()> {
        self.line.clear();
        let encoded = self.compactor.encode(event)?;
        match &encoded.diff {
            Some(diff) => serde_json::to_writer(&mut self.line, diff),
            None => serde_json::to_writer(&mut self.line, event),
        }
        .context("encoding event")?;
        self.line.push(b'\n');
        // One write per line: a reader tailing the file never sees half an event
        // unless the process dies mid-write, and the reader tolerates that.
        if let Err(e) = self.file.write_all(&self.line) {
            // Part of the line may be on disk: cut it off so the log ends
            // with a whole event, and what was written stays readable.
            let cut = self.cut_back();
            return Err(anyhow::Error::new(e).context(format!(
                "writing session log {}{}",
                self.path.display(),
                match cut {
                    Ok(()) => String::new(),
                    Err(c) => format!(" (and cutting off the partial line failed: {c})"),
                }
            )));
        }
        self.whole += self.line.len() as u64;
        self.compactor.written(encoded);
        if event.kind.is_durable_point() {
            self.file
                .sync_data()
                .with_context(|| format!("syncing session log {}", self.path.display()))?;
        }
        Ok(())
    }

    fn cut_back(&mut self) -> std::io::Result<()> {
        use std::io::{Seek, SeekFrom};
        self.file.set_len(self.whole)?;
        self.file.seek(SeekFrom::Start(self.whole))?;
        Ok(())
    }

    pub fn sync(&mut self) -> Result<()> {
        self.file.sync_data().context("syncing session log")
    }
}

/// One console writes a session: the writer holds an exclusive lock on
/// its log for as long as it lives (the system drops it when the process
/// dies, however it dies).
fn lock(file: &File, path: &Path) -> Result<()> {
    match file.try_lock() {
        Ok(()) => Ok(()),
        Err(std::fs::TryLockError::WouldBlock) => anyhow::bail!(
            "session log {} is being written by another console: stop that one first",
            path.display()
        ),
        Err(std::fs::TryLockError::Error(e)) => {
            Err(e).with_context(|| format!("locking session log {} for writing", path.display()))
        }
    }
}

/// A session log opened to go on writing it.
pub struct Reopened {
    path: PathBuf,
    file: File,
    /// Where its whole lines end.
    whole: u64,
    /// Every whole event it held, in order.
    pub events: Vec<Event>,
    /// Bytes of a torn last line (a crash mid-write) that
    /// [`Reopened::into_writer`] cuts off (0: it ends whole).
    pub cut: u64,
}

impl Reopened {
    /// Cuts off the torn last line, if any, so the next event starts on a
    /// line of its own, and writes from there.
    pub fn into_writer(self) -> Result<LogWriter> {
        use std::io::{Seek, SeekFrom};
        let Reopened {
            path,
            mut file,
            mut whole,
            cut,
            ..
        } = self;
        if cut > 0 {
            file.set_len(whole)
                .and_then(|()| file.sync_data())
                .with_context(|| {
                    format!(
                        "cutting the torn last line ({cut} bytes) off session log {}",
                        path.display()
                    )
                })?;
        }
        let ends_whole = whole == 0 || {
            let mut last = [0u8; 1];
            file.seek(SeekFrom::Start(whole - 1))
                .and_then(|_| file.read_exact(&mut last))
                .with_context(|| format!("reading the end of session log {}", path.display()))?;
            last[0] == b'\n'
        };
        file.seek(SeekFrom::Start(whole))
            .with_context(|| format!("seeking to the end of session log {}", path.display()))?;
        if !ends_whole {
            // Its last event is whole but for the newline.
            file.write_all(b"\n")
                .and_then(|()| file.sync_data())
                .with_context(|| {
                    format!("ending the last line of session log {}", path.display())
                })?;
            whole += 1;
        }
        Ok(LogWriter {
            path,
            file,
            line: Vec::with_capacity(4096),
            // The first sample of each stream after a resume is whole.
            compactor: Compactor::default(),
            whole,
        })
    }
}

/// Reads every complete event. A torn last line (crash mid-write) is ignored;
/// a bad line elsewhere is an error naming the file and line.
pub fn read_all(path: &Path) -> Result<Vec<Event>> {
    Ok(read_log(path)?.events)
}

/// A fresh session file name that sorts by start time.
pub fn new_session_path(dir: &Path, started: chrono::DateTime<chrono::Utc>) -> PathBuf {
    dir.join(format!(
        "session-{}.jsonl",
        started.format("%Y%m%dT%H%M%S%.3fZ")
    ))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A log written by an earlier version (format 1): a full lab cutover.
    pub(crate) fn fixture() -> Vec<Event> {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/sessions/v0-full-runbook.jsonl"
        );
        read_all(Path::new(path)).unwrap()
    }
    use crate::session::event::EventKind;

    fn ev(seq: u64, kind: EventKind) -> Event {
        Event {
            seq,
            at: chrono::DateTime::from_timestamp(1_700_000_000 + seq as i64, 0).unwrap(),
            kind,
        }
    }

    #[test]
    fn logs_and_the_folders_cutover_makes_are_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        let dir = tempfile::tempdir().unwrap();
        let sessions = dir.path().join("a/sessions");
        let path = sessions.join("s.jsonl");
        LogWriter::create(&path).unwrap();
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(&sessions), 0o700);
        assert_eq!(mode(&dir.path().join("a")), 0o700, "parents it made too");
        // A trace file left readable by an older version is narrowed.
        let trace = sessions.join("cutover-trace.log");
        std::fs::write(&trace, "old\n").unwrap();
        std::fs::set_permissions(&trace, std::fs::Permissions::from_mode(0o644)).unwrap();
        create_private_file(&trace).unwrap();
        assert_eq!(mode(&trace), 0o600);
        assert_eq!(std::fs::read_to_string(&trace).unwrap(), "old\n", "kept");
    }

    #[test]
    fn round_trips_and_ignores_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.jsonl");
        let mut w = LogWriter::create(&path).unwrap();
        let a = ev(1, EventKind::Key { key: "c".into() });
        let b = ev(2, EventKind::Tick);
        w.append(&a).unwrap();
        w.append(&b).unwrap();
        drop(w);
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"{\"seq\":3,\"at\":\"20").unwrap();
        assert_eq!(read_all(&path).unwrap(), vec![a, b]);
    }

    #[test]
    fn corrupt_middle_line_names_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.jsonl");
        std::fs::write(
            &path,
            "garbage\n{\"seq\":1,\"at\":\"2024-01-01T00:00:00Z\",\"type\":\"tick\"}\n",
        )
        .unwrap();
        let err = read_all(&path).unwrap_err().to_string();
        assert!(err.contains("s.jsonl:1:"), "{err}");
    }

    fn started(seq: u64) -> Event {
        let config = crate::config::parse(
            "[source]\ndsn = \"host=db1 dbname=app user=app\"\n\
             [target]\ndsn = \"host=db2 dbname=app user=app\"\n",
            Path::new("cutover.toml"),
        )
        .unwrap();
        ev(
            seq,
            EventKind::SessionStarted(Box::new(crate::runtime::session_info(
                &config, "live", false,
            ))),
        )
    }

    #[test]
    fn open_append_cuts_a_torn_tail_and_goes_on_after_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.jsonl");
        let (a, b) = (started(1), ev(2, EventKind::Tick));
        let mut w = LogWriter::create(&path).unwrap();
        w.append(&a).unwrap();
        w.append(&b).unwrap();
        drop(w);
        let whole = std::fs::metadata(&path).unwrap().len();
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"{\"seq\":3,\"at\":\"20").unwrap();
        drop(f);

        let r = LogWriter::open_append(&path).unwrap();
        assert_eq!(r.events, vec![a.clone(), b.clone()]);
        assert_eq!(r.cut, 17);
        assert_eq!(
            std::fs::metadata(&path).unwrap().len(),
            whole + 17,
            "nothing changes before the writer is asked for"
        );
        let mut w = r.into_writer().unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), whole);
        let c = ev(3, EventKind::Key { key: "q".into() });
        w.append(&c).unwrap();
        drop(w);
        assert_eq!(read_all(&path).unwrap(), vec![a, b, c]);
    }

    #[test]
    fn open_append_keeps_a_last_event_that_lacks_only_its_newline() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.jsonl");
        let (a, b) = (started(1), ev(2, EventKind::Tick));
        let text = format!(
            "{}\n{}",
            serde_json::to_string(&a).unwrap(),
            serde_json::to_string(&b).unwrap()
        );
        std::fs::write(&path, text).unwrap();
        let r = LogWriter::open_append(&path).unwrap();
        assert_eq!((r.events.len(), r.cut), (2, 0));
        let mut w = r.into_writer().unwrap();
        let c = ev(3, EventKind::Tick);
        w.append(&c).unwrap();
        drop(w);
        assert_eq!(read_all(&path).unwrap(), vec![a, b, c]);
    }

    #[test]
    fn open_append_refuses_what_is_not_a_session() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.jsonl");
        std::fs::write(&path, "").unwrap();
        let err = LogWriter::open_append(&path).err().unwrap().to_string();
        assert_eq!(
            err,
            format!(
                "{}:1: not a session log: it does not begin with the session's start",
                path.display()
            )
        );
        std::fs::write(
            &path,
            "garbage\n{\"seq\":1,\"at\":\"2024-01-01T00:00:00Z\",\"type\":\"tick\"}\n",
        )
        .unwrap();
        let err = LogWriter::open_append(&path).err().unwrap().to_string();
        assert!(
            err.starts_with(&format!("{}:1: not a session event", path.display())),
            "{err}"
        );
        let missing = dir.path().join("none.jsonl");
        let err = LogWriter::open_append(&missing).err().unwrap().to_string();
        assert_eq!(
            err,
            format!("opening session log {} to resume it", missing.display())
        );
    }

    #[test]
    fn one_console_writes_a_session_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.jsonl");
        let mut w = LogWriter::create(&path).unwrap();
        w.append(&started(1)).unwrap();
        let err = LogWriter::open_append(&path).err().unwrap().to_string();
        assert_eq!(
            err,
            format!(
                "session log {} is being written by another console: stop that one first",
                path.display()
            )
        );
        drop(w);
        let r = LogWriter::open_append(&path).unwrap();
        assert!(
            LogWriter::open_append(&path).is_err(),
            "the resumed one holds it"
        );
        drop(r);
    }

    #[test]
    fn head_and_end_read_only_the_first_and_last_lines() {
        use crate::session::read::head_and_end;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.jsonl");
        let mut w = LogWriter::create(&path).unwrap();
        w.append(&started(1)).unwrap();
        w.append(&ev(2, EventKind::Tick)).unwrap();
        assert_eq!(
            head_and_end(&path).map(|h| h.1),
            Some(None),
            "still running"
        );
        w.append(&ev(
            3,
            EventKind::SessionEnded {
                reason: "operator quit".into(),
            },
        ))
        .unwrap();
        drop(w);
        let (info, reason) = head_and_end(&path).unwrap();
        assert_eq!(info.subscription, "cutover_sub");
        assert_eq!(reason.as_deref(), Some("operator quit"));
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"{\"seq\":4,\"at").unwrap();
        assert_eq!(
            head_and_end(&path).map(|h| h.1),
            Some(None),
            "a torn end is no end"
        );
        std::fs::write(&path, "{}\n").unwrap();
        assert!(head_and_end(&path).is_none(), "not a session log");
    }

    #[test]
    fn refuses_to_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.jsonl");
        LogWriter::create(&path).unwrap();
        assert!(LogWriter::create(&path).is_err());
    }
}
