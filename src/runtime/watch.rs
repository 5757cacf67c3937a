//! Where a replay's and a follower's events come from: a recorded log with
//! its own clock, or a log another console is writing. Both only fold what
//! they read; neither runs an effect, connects anywhere, or writes a byte.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Result;
use chrono::{DateTime, Utc};

use crate::model::playback::Recording;
use crate::model::{self, Model, Seek, Timeline, Watch, WatchKind};
use crate::session::read::Tail;
use crate::session::Event;

/// Recorded time with no event for longer than this is skipped while
/// playing (the console was down, or nothing happened): the replay moves on.
const IDLE_SKIP: chrono::TimeDelta = chrono::TimeDelta::seconds(5);

/// How often a follower looks for new lines.
pub const FOLLOW_POLL: Duration = Duration::from_millis(250);

pub struct Replay {
    rec: Recording,
    /// Events folded into `model`.
    pos: usize,
    /// The recorded time shown, as of `wall`.
    at: DateTime<Utc>,
    wall: Instant,
    pub model: Model,
    /// The rest of the log, read in the background after the first screen.
    loading: Option<tokio::sync::mpsc::Receiver<Loaded>>,
    /// Bytes read of the log, of its length.
    progress: (u64, u64),
    /// Something was read since the screen was last brought up to date.
    fresh: bool,
    /// What to say once the replay ends: a torn last line, a read that failed.
    pub note: Option<String>,
    /// End was asked for while the log was still being read: go there
    /// once it is all read.
    to_end: bool,
}

/// What the background reader sends.
enum Loaded {
    Events(Vec<Event>, (u64, u64)),
    Done(Option<String>),
    Failed(String),
}

/// Lines parsed before the first screen, and per batch after it.
const FIRST_LINES: usize = 4000;
const BATCH_LINES: usize = 20_000;

impl Replay {
    /// Opens `path` for replay: its first events at once, the rest read
    /// on a thread of its own while the replay already shows the start.
    pub fn open(path: &Path) -> Result<Self> {
        let mut tail = Tail::open(path)?;
        let first = tail.poll_at_most(FIRST_LINES)?;
        let rec = Recording::new(first);
        let Some((start, _)) = rec.span() else {
            anyhow::bail!("{}: the session log holds no event", path.display());
        };
        let progress = tail.progress();
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        let shown: PathBuf = path.to_owned();
        std::thread::spawn(move || loop {
            let sent = match tail.poll_at_most(BATCH_LINES) {
                Ok(batch) if batch.is_empty() => {
                    let note = tail.finish().ok().and_then(|r| r.torn_note(&shown));
                    let _ = tx.blocking_send(Loaded::Done(note));
                    return;
                }
                Ok(batch) => tx.blocking_send(Loaded::Events(batch, tail.progress())),
                Err(e) => {
                    let _ = tx.blocking_send(Loaded::Failed(format!("{e:#}")));
                    return;
                }
            };
            if sent.is_err() {
                return;
            }
        });
        let mut r = Self {
            rec,
            pos: 0,
            at: start,
            wall: Instant::now(),
            model: Model::default(),
            loading: Some(rx),
            progress,
            fresh: false,
            note: None,
            to_end: false,
        };
        r.jump(1, start);
        Ok(r)
    }

    /// Waits for the next batch of the log or the clock's next event, whichever first.
    pub async fn wait(&mut self, watch: &Watch) {
        let due = self.due_in(watch);
        let clock = async {
            match due {
                // Wake at least every 200 ms while playing: the clock moves.
                Some(d) => tokio::time::sleep(d.min(Duration::from_millis(200))).await,
                None => std::future::pending::<()>().await,
            }
        };
        let loaded = async {
            match self.loading.as_mut() {
                Some(rx) => rx.recv().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            got = loaded => match got {
                Some(Loaded::Events(batch, progress)) => {
                    self.rec.extend(batch);
                    self.progress = progress;
                    self.fresh = true;
                }
                Some(Loaded::Done(note)) => {
                    self.note = note;
                    self.loading = None;
                    self.fresh = true;
                    if std::mem::take(&mut self.to_end) {
                        self.seek(Seek::End);
                    }
                }
                Some(Loaded::Failed(e)) => {
                    self.note = Some(format!("the rest of the log could not be read: {e}"));
                    self.loading = None;
                    self.fresh = true;
                }
                None => self.loading = None,
            },
            () = clock => {}
        }
    }

    pub fn recording(&self) -> &Recording {
        &self.rec
    }

    fn jump(&mut self, pos: usize, at: DateTime<Utc>) {
        self.pos = pos.min(self.rec.len());
        self.model = self.rec.model_after(self.pos);
        self.at = at;
        self.wall = Instant::now();
    }

    /// Makes the move a key asked for.
    pub fn seek(&mut self, seek: Seek) {
        let (start, end) = self.rec.span().expect("opened with events");
        self.to_end = false;
        match seek {
            Seek::By(secs) => {
                let at = (self.at + chrono::TimeDelta::seconds(secs)).clamp(start, end);
                self.jump(self.rec.position_at(at), at);
            }
            Seek::Start => self.jump(1, start),
            Seek::End => {
                // Still reading: the end is where the reader will get to.
                self.to_end = self.loading.is_some();
                self.jump(self.rec.len(), end)
            }
            Seek::NextMark | Seek::PreviousMark => {
                let mark = match seek {
                    Seek::NextMark => self.rec.next_mark(self.pos),
                    _ => self.rec.previous_mark(self.pos),
                };
                if let Some(m) = mark.cloned() {
                    self.jump(m.index + 1, m.at);
                }
            }
        }
    }

    /// Moves the clock on by the wall time since the last call (× speed)
    /// and folds what happened by then; whether anything changed.
    pub fn advance(&mut self, watch: &Watch) -> bool {
        let now = Instant::now();
        let elapsed = now.duration_since(self.wall);
        self.wall = now;
        let fresh = std::mem::take(&mut self.fresh);
        if watch.paused || self.pos >= self.rec.len() {
            return fresh;
        }
        let step = chrono::TimeDelta::from_std(elapsed.mul_f64(watch.speed()))
            .unwrap_or(chrono::TimeDelta::zero());
        self.at += step;
        let events = self.rec.events();
        if let Some(next) = events.get(self.pos) {
            if next.at - self.at > IDLE_SKIP {
                self.at = next.at;
            }
        }
        let before = self.pos;
        while let Some(e) = events.get(self.pos).filter(|e| e.at <= self.at) {
            model::update(&mut self.model, e);
            self.pos += 1;
        }
        if self.pos >= self.rec.len() && self.loading.is_none() {
            self.at = events.last().map_or(self.at, |e| e.at);
        }
        fresh || self.pos != before
    }

    /// Wall time until the next event is due at this speed (None: paused or done).
    pub fn due_in(&self, watch: &Watch) -> Option<Duration> {
        if watch.paused {
            return None;
        }
        let next = self.rec.events().get(self.pos)?;
        let gap = (next.at - self.at)
            .min(IDLE_SKIP)
            .to_std()
            .unwrap_or_default();
        Some(gap.div_f64(watch.speed()))
    }

    pub fn timeline(&self) -> Timeline {
        let span = self.rec.span();
        Timeline {
            start: span.map(|s| s.0),
            end: span.map(|s| s.1),
            at: Some(self.at),
            marks: self
                .rec
                .marks()
                .iter()
                .map(|m| (m.at, m.checkpoint, m.ok))
                .collect(),
            driver: None,
            loading: self.loading.as_ref().map(|_| {
                let (done, of) = self.progress;
                (done * 100 / of.max(1)) as u8
            }),
        }
    }
}

pub struct Follow {
    tail: Tail,
    pub model: Model,
    last: Option<(u64, DateTime<Utc>)>,
}

impl Follow {
    pub fn open(path: &Path) -> Result<Self> {
        let mut f = Self {
            tail: Tail::open(path)?,
            model: Model::default(),
            last: None,
        };
        f.poll()?;
        Ok(f)
    }

    /// Folds what the driver wrote since; whether anything was new.
    pub fn poll(&mut self) -> Result<bool> {
        let fresh = self.tail.poll()?;
        for e in &fresh {
            model::update(&mut self.model, e);
        }
        if let Some(e) = fresh.last() {
            self.last = Some((e.seq, e.at));
        }
        Ok(!fresh.is_empty())
    }

    pub fn timeline(&self, now: DateTime<Utc>) -> Timeline {
        Timeline {
            driver: self
                .last
                .map(|(seq, at)| (seq, (now - at).num_milliseconds().max(0) as u64)),
            marks: self
                .model
                .actions
                .history
                .iter()
                .map(|r| (r.started_at, r.checkpoint, r.finished.as_ref().map(|f| f.1)))
                .collect(),
            ..Timeline::default()
        }
    }
}

pub fn watch_view(kind: WatchKind) -> model::View {
    model::View {
        watch: Some(Watch::new(kind)),
        ..model::View::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::log::LogWriter;
    use crate::session::EventKind;

    /// A log longer than the first screen's lines: End pressed while the
    /// rest is still being read lands on the true end once it is read.
    #[tokio::test]
    async fn end_asked_while_reading_goes_to_the_true_end() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.jsonl");
        let mut w = LogWriter::create(&path).unwrap();
        let start = chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let n = FIRST_LINES as u64 * 3;
        for seq in 1..=n {
            let kind = if seq == 1 {
                EventKind::SessionEnded { reason: "x".into() }
            } else {
                EventKind::Tick
            };
            let at = start + chrono::TimeDelta::seconds(seq as i64);
            w.append(&Event { seq, at, kind }).unwrap();
        }
        drop(w);
        let mut r = Replay::open(&path).unwrap();
        assert_eq!(r.recording().len(), FIRST_LINES, "the first screen's lines");
        r.seek(Seek::End);
        let mut watch = Watch::new(WatchKind::Replay);
        watch.paused = true;
        let deadline = Instant::now() + Duration::from_secs(10);
        while r.loading.is_some() {
            assert!(Instant::now() < deadline, "the reader never finished");
            r.wait(&watch).await;
        }
        assert_eq!(r.recording().len(), n as usize);
        assert_eq!(r.pos, n as usize, "at the true end");
        assert_eq!(r.timeline().at, r.recording().span().map(|s| s.1));
        // A seek elsewhere while reading cancels the wish for the end.
        let mut r = Replay::open(&path).unwrap();
        r.seek(Seek::End);
        r.seek(Seek::Start);
        while r.loading.is_some() {
            r.wait(&watch).await;
        }
        assert_eq!(r.pos, 1);
    }
}
