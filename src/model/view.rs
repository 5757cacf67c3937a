//! What only this viewer sees: scroll position, help, the run's output, the
//! quit question, and what is being typed into a confirmation or a note.
//! Never logged, never folded from the log: a replay or a follower has its
//! own. (What is typed reaches the log only inside the command it makes.)

use super::field::Field;

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct View {
    /// First visible row of the row-count table.
    pub scroll: usize,
    pub help: bool,
    /// The latest run's output fills the screen.
    pub output: bool,
    /// First row of the output shown (a run that ended; a running one
    /// shows its tail).
    pub output_scroll: u16,
    /// "Quit and cancel what runs?" is open.
    pub confirm_quit: bool,
    /// The name typed into the open confirmation.
    pub typed: Field,
    /// The reason typed to override failing guards.
    pub reason: Field,
    /// Keys go into the reason, not the name.
    pub editing_reason: bool,
    /// An operator note being written.
    pub note: Option<Field>,
    /// Replaying a recorded session or following a running one: nothing
    /// bound changes anything, and the timeline shows where this viewer is.
    pub watch: Option<Watch>,
    /// The war-room screen (`w`): the few numbers a room reads over a video
    /// call, in big type, instead of the panes.
    pub war_room: bool,
    /// One pane alone on the screen (`z` moves on, Esc goes back to the
    /// panes or the war room, whichever was shown).
    pub zoom: Option<Pane>,
    /// Several databases in one session: which one the panes show, and
    /// whether checkpoints go to all of them.
    pub fleet: Option<Fleet>,
}

/// The databases of a session of several (`[[databases]]`), as this
/// console shows them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fleet {
    pub names: Vec<String>,
    /// The database the panes show and a checkpoint runs for.
    pub selected: usize,
    /// A checkpoint opens, and runs, for every database at once
    /// (one confirmation listing each).
    pub all: bool,
    /// A checkpoint runs for some database (quitting asks first).
    pub busy: bool,
}

impl Fleet {
    pub fn new(names: Vec<String>) -> Self {
        Fleet {
            names,
            ..Fleet::default()
        }
    }

    /// The databases a session command goes to.
    pub fn targets(&self) -> Vec<usize> {
        if self.all {
            (0..self.names.len()).collect()
        } else {
            vec![self.selected]
        }
    }
}

/// A pane `z` can show alone, in the order it steps through them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pane {
    Lag,
    Slots,
    Counts,
    Rollout,
    Run,
    Runbook,
}

impl Pane {
    pub const ALL: [Pane; 6] = [
        Pane::Lag,
        Pane::Slots,
        Pane::Counts,
        Pane::Rollout,
        Pane::Run,
        Pane::Runbook,
    ];

    /// Whether the session has anything for it: the rollout only with a
    /// Kubernetes side.
    pub fn available(self, model: &super::Model) -> bool {
        match self {
            Pane::Rollout => model.info.as_ref().is_some_and(|i| i.kubernetes.is_some()),
            _ => true,
        }
    }

    /// The zoom after `from` (None: the first), or None after the last.
    pub fn next(from: Option<Pane>, model: &super::Model) -> Option<Pane> {
        let start = from.map_or(0, |p| {
            Pane::ALL.iter().position(|q| *q == p).unwrap_or(0) + 1
        });
        Pane::ALL[start.min(Pane::ALL.len())..]
            .iter()
            .copied()
            .find(|p| p.available(model))
    }
}

/// Speeds a replay steps through.
pub const SPEEDS: [f64; 8] = [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WatchKind {
    /// `cutover replay`: a recorded session with its own clock.
    Replay,
    /// `cutover follow`: a session another console is writing.
    Follow,
}

/// A move through the recording a key asked for; the runtime makes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seek {
    /// Seconds of recorded time, forward or back.
    By(i64),
    NextMark,
    PreviousMark,
    Start,
    End,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Watch {
    pub kind: WatchKind,
    pub paused: bool,
    /// Index into [`SPEEDS`].
    pub speed: usize,
    pub seek: Option<Seek>,
    /// What the timeline shows, kept current by the runtime.
    pub bar: Timeline,
}

impl Watch {
    pub fn new(kind: WatchKind) -> Self {
        Self {
            kind,
            paused: false,
            speed: 1,
            seek: None,
            bar: Timeline::default(),
        }
    }

    pub fn speed(&self) -> f64 {
        SPEEDS[self.speed.min(SPEEDS.len() - 1)]
    }
}

/// The recording's span, this viewer's position and the checkpoints on it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Timeline {
    pub start: Option<chrono::DateTime<chrono::Utc>>,
    pub end: Option<chrono::DateTime<chrono::Utc>>,
    pub at: Option<chrono::DateTime<chrono::Utc>>,
    /// Each checkpoint run: when it started, which, how it ended (None: not yet).
    pub marks: Vec<(
        chrono::DateTime<chrono::Utc>,
        crate::runbook::CheckpointId,
        Option<bool>,
    )>,
    /// Following: the driver's last event (`seq`) and how long ago it was
    /// written (ms, by this viewer's clock).
    pub driver: Option<(u64, u64)>,
    /// A replay still reading its log: how much of it (percent).
    pub loading: Option<u8>,
}

impl View {
    /// The database the panes show (0 with one).
    pub fn selected_db(&self) -> usize {
        self.fleet.as_ref().map_or(0, |f| f.selected)
    }

    /// The field unbound keys go into, in a confirmation.
    pub fn field_mut(&mut self) -> &mut Field {
        if self.editing_reason {
            &mut self.reason
        } else {
            &mut self.typed
        }
    }

    pub fn clear_dialog(&mut self) {
        self.typed.clear();
        self.reason.clear();
        self.editing_reason = false;
    }
}
