//! Append-only JSONL session log. One event per line; a line is written whole
//! before the event is applied, and the file is fsynced at action events so an
//! SSH drop or a crash loses nothing the operator did.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::event::Event;

pub struct LogWriter {
    path: PathBuf,
    file: File,
    line: Vec<u8>,
    /// Bytes of whole lines written: where the file is cut back to when a
    /// write fails halfway (a full disk), so it never ends in a torn line.
    whole: u64,
}

impl LogWriter {
    /// Creates the log, refusing to overwrite an existing session.
    pub fn create(path: &Path) -> Result<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("creating session directory {}", dir.display()))?;
        }
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path)
            .with_context(|| format!("creating session log {}", path.display()))?;
        Ok(Self {
            path: path.to_owned(),
            file,
            line: Vec::with_capacity(4096),
            whole: 0,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn append(&mut self, event: &Event) -> Result<()> {
        self.line.clear();
        serde_json::to_writer(&mut self.line, event).context("encoding event")?;
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

/// Reads every complete event. A torn last line (crash mid-write) is ignored;
/// a bad line elsewhere is an error naming the file and line.
pub fn read_all(path: &Path) -> Result<Vec<Event>> {
    let file = File::open(path).with_context(|| format!("opening session {}", path.display()))?;
    let reader = BufReader::new(file);
    let mut events = Vec::new();
    let mut lines = reader.lines().enumerate().peekable();
    while let Some((idx, line)) = lines.next() {
        let line = line.with_context(|| format!("{}:{}: reading", path.display(), idx + 1))?;
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<Event>(&line) {
            Ok(ev) => events.push(ev),
            Err(_) if lines.peek().is_none() => break,
            Err(e) => anyhow::bail!("{}:{}: not a session event: {e}", path.display(), idx + 1),
        }
    }
    Ok(events)
}

/// A fresh session file name that sorts by start time.
pub fn new_session_path(dir: &Path, started: chrono::DateTime<chrono::Utc>) -> PathBuf {
    dir.join(format!(
        "session-{}.jsonl",
        started.format("%Y%m%dT%H%M%S%.3fZ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::event::EventKind;

    fn ev(seq: u64, kind: EventKind) -> Event {
        Event {
            seq,
            at: chrono::DateTime::from_timestamp(1_700_000_000 + seq as i64, 0).unwrap(),
            kind,
        }
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

    #[test]
    fn refuses_to_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.jsonl");
        LogWriter::create(&path).unwrap();
        assert!(LogWriter::create(&path).is_err());
    }
}
