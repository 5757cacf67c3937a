//! Reading a session log: all of it at once (replay, report, resume) or as
//! it grows (follow). One reader serves both: it takes whole lines, keeps a
//! line still being written for later, and at the end of a finished log
//! says how many bytes of a torn last line it left out.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::compact::Expander;
use super::event::{Event, EventKind, FORMAT_VERSION};

/// A session log read to its end.
#[derive(Debug)]
pub struct LogRead {
    pub events: Vec<Event>,
    /// Bytes after the last whole event that are not one: a line torn as
    /// the console died mid-write (0: the log ends whole).
    pub torn_bytes: u64,
    /// Where the whole lines end.
    pub whole: u64,
}

impl LogRead {
    /// What to say about a torn end, if there is one.
    pub fn torn_note(&self, path: &Path) -> Option<String> {
        (self.torn_bytes > 0).then(|| {
            format!(
                "{}: its last line is torn ({} bytes, written as the console died): \
                 read up to the event before it",
                path.display(),
                self.torn_bytes
            )
        })
    }
}

/// Reads a session log as it grows.
pub struct Tail {
    path: PathBuf,
    file: File,
    /// Bytes read from the file.
    read: u64,
    /// Where the whole, parsed lines end.
    whole: u64,
    /// Bytes after `whole` not yet a whole line.
    pending: Vec<u8>,
    /// Lines parsed (the next line's number is this + 1).
    lines: usize,
    /// A whole line that did not parse: an error once anything follows it,
    /// a torn end if nothing does.
    bad: Option<(usize, String)>,
    expander: Expander,
    version_checked: bool,
}

impl Tail {
    pub fn open(path: &Path) -> Result<Self> {
        let file = File::open(path).map_err(|e| open_error(path, e))?;
        Ok(Self::from_file(path, file))
    }

    pub fn from_file(path: &Path, file: File) -> Self {
        Self {
            path: path.to_owned(),
            file,
            read: 0,
            whole: 0,
            pending: Vec::new(),
            lines: 0,
            bad: None,
            expander: Expander::default(),
            version_checked: false,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The events of the whole lines written since the last call.
    pub fn poll(&mut self) -> Result<Vec<Event>> {
        self.poll_at_most(usize::MAX)
    }

    /// Bytes read from the file so far, and its length then.
    pub fn progress(&self) -> (u64, u64) {
        (self.whole, self.read)
    }

    /// As [`Tail::poll`], parsing at most `limit` lines this call: a long
    /// log is read in batches, the first shown before the rest is read.
    pub fn poll_at_most(&mut self, limit: usize) -> Result<Vec<Event>> {
        let mut fresh = Vec::new();
        let len = self
            .file
            .metadata()
            .with_context(|| format!("reading {}", self.path.display()))?
            .len();
        if len < self.read {
            anyhow::bail!(
                "{}: the log got shorter ({} bytes, {} read): it was replaced or cut",
                self.path.display(),
                len,
                self.read
            );
        }
        self.file
            .seek(SeekFrom::Start(self.read))
            .with_context(|| format!("reading {}", self.path.display()))?;
        let mut chunk = Vec::new();
        (&mut self.file)
            .take(len - self.read)
            .read_to_end(&mut chunk)
            .with_context(|| format!("reading {}", self.path.display()))?;
        self.read += chunk.len() as u64;
        self.pending.extend_from_slice(&chunk);
        // Lines are parsed from the buffer in place; it is put back after.
        let pending = std::mem::take(&mut self.pending);
        let mut start = 0;
        let mut failed = None;
        let mut parsed = 0;
        while let Some(nl) = pending[start..].iter().position(|&b| b == b'\n') {
            if parsed == limit {
                break;
            }
            parsed += 1;
            let end = start + nl + 1;
            if let Some((at, e)) = self.bad.take() {
                failed = Some(anyhow::anyhow!(
                    "{}:{at}: not a session event: {e}",
                    self.path.display()
                ));
                break;
            }
            self.lines += 1;
            let bytes = &pending[start..end];
            let lossy;
            let text = match std::str::from_utf8(bytes) {
                Ok(t) => t,
                Err(_) => {
                    lossy = String::from_utf8_lossy(bytes);
                    &lossy
                }
            };
            if !text.trim().is_empty() {
                match self.parse(text) {
                    Ok(ev) => fresh.push(ev),
                    Err(e) if e.is::<NewerFormat>() => {
                        failed = Some(anyhow::anyhow!(
                            "{}:{}: not a session event: {e}",
                            self.path.display(),
                            self.lines
                        ));
                        break;
                    }
                    Err(e) => {
                        self.bad = Some((self.lines, format!("{e:#}")));
                        start = end;
                        continue;
                    }
                }
            }
            self.whole += (end - start) as u64;
            start = end;
        }
        self.pending = pending;
        if let Some(e) = failed {
            return Err(e);
        }
        // A bad line's bytes stay counted between `whole` and `read`: if
        // nothing follows it, they are the torn end.
        self.pending.drain(..start);
        Ok(fresh)
    }

    fn parse(&mut self, text: &str) -> Result<Event> {
        let event = self.expander.expand_line(text)?;
        if !self.version_checked {
            self.version_checked = true;
            if let EventKind::SessionStarted(info) = &event.kind {
                if info.format_version > FORMAT_VERSION {
                    return Err(NewerFormat(format!(
                        "written by cutover {} in log format {}; this cutover ({}) reads \
                         formats up to {FORMAT_VERSION}: use that version or a newer one",
                        info.tool_version,
                        info.format_version,
                        env!("CARGO_PKG_VERSION")
                    ))
                    .into());
                }
            }
        }
        Ok(event)
    }

    /// The log is finished (or read as it stands): the last line, if it
    /// lacks only its newline, is an event; anything else after the last
    /// whole event is a torn end.
    pub fn finish(mut self) -> Result<LogRead> {
        let mut events = self.poll()?;
        let mut torn = self.read - self.whole;
        if self.bad.is_none() && !self.pending.is_empty() {
            let text = String::from_utf8_lossy(&self.pending).into_owned();
            if text.trim().is_empty() {
                torn = 0;
            } else if let Ok(ev) = self.parse(&text) {
                events.push(ev);
                self.whole = self.read;
                torn = 0;
            }
        }
        Ok(LogRead {
            events,
            torn_bytes: torn,
            whole: self.whole,
        })
    }
}

/// A log this version must not read: refused at once, never taken for a torn end.
#[derive(Debug)]
struct NewerFormat(String);

impl std::fmt::Display for NewerFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for NewerFormat {}

fn open_error(path: &Path, e: std::io::Error) -> anyhow::Error {
    if e.kind() == std::io::ErrorKind::PermissionDenied {
        use std::os::unix::fs::MetadataExt;
        let owner = std::fs::metadata(path)
            .map(|m| {
                format!(
                    "; it is owned by uid {} (group {}), mode {:04o}",
                    m.uid(),
                    m.gid(),
                    m.mode() & 0o7777
                )
            })
            .unwrap_or_default();
        return anyhow::anyhow!(
            "cannot read session {}: permission denied{owner}. A session log is its \
             owner's alone unless the driver's config names a group for it ([session] \
             group): ask them to add one you are in, or read it as its owner",
            path.display()
        );
    }
    anyhow::Error::new(e).context(format!("opening session {}", path.display()))
}

/// Reads every complete event of `path`.
pub fn read_log(path: &Path) -> Result<LogRead> {
    Tail::open(path)?.finish()
}

/// How a log begins and ends, without reading the rest: its session's
/// header (None: not a session log) and, when its last whole line is the
/// session's end, the reason given (None: it ends otherwise — a kill, a
/// torn line, or it still runs).
pub fn head_and_end(path: &Path) -> Option<(super::SessionInfo, Option<String>)> {
    use std::io::BufRead;
    let mut file = File::open(path).ok()?;
    let mut first = String::new();
    std::io::BufReader::new(&mut file)
        .read_line(&mut first)
        .ok()?;
    let info = match serde_json::from_str::<Event>(&first).ok()?.kind {
        EventKind::SessionStarted(info) => *info,
        _ => return None,
    };
    // The end is a whole line (never a diff) and short: the last 64 KiB hold it.
    let len = file.metadata().ok()?.len();
    file.seek(SeekFrom::Start(len.saturating_sub(64 * 1024)))
        .ok()?;
    let mut tail = Vec::new();
    file.read_to_end(&mut tail).ok()?;
    let tail = String::from_utf8_lossy(&tail);
    let reason = tail
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .and_then(|l| serde_json::from_str::<Event>(l).ok())
        .and_then(|e| match e.kind {
            EventKind::SessionEnded { reason } => Some(reason),
            _ => None,
        });
    Some((info, reason))
}
