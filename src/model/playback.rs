//! A recorded session, ready to be shown at any point of it: its events,
//! the model folded up to every [`SNAPSHOT_EVERY`]th of them, and the
//! checkpoints' marks for the timeline. Seeking folds from the nearest
//! snapshot at or before the point, never from the start, so any point of
//! an eight-hour log is a few thousand folds away at most. Pure.

use chrono::{DateTime, Utc};

use super::{update, Model};
use crate::runbook::CheckpointId;
use crate::session::Event;

/// A snapshot of the model every this many events.
pub const SNAPSHOT_EVERY: usize = 2000;

/// A checkpoint run on the timeline: where it started, how it ended.
#[derive(Debug, Clone, PartialEq)]
pub struct Mark {
    /// Index of its first event (the confirmation that started it).
    pub index: usize,
    pub at: DateTime<Utc>,
    pub checkpoint: CheckpointId,
    /// None: it did not end in the recording.
    pub ok: Option<bool>,
}

pub struct Recording {
    events: Vec<Event>,
    /// `(n, model)`: the model after folding the first `n` events.
    snapshots: Vec<(usize, Model)>,
    marks: Vec<Mark>,
    /// The model after every event so far: where [`Recording::extend`] goes on.
    folded: Model,
}

impl Recording {
    /// Folds the whole log once, keeping snapshots along it and the marks.
    pub fn new(events: Vec<Event>) -> Self {
        let mut rec = Self {
            events: Vec::new(),
            snapshots: vec![(0, Model::default())],
            marks: Vec::new(),
            folded: Model::default(),
        };
        rec.extend(events);
        rec
    }

    /// More of the log, read after the rest (a replay opens before the
    /// whole log is read): folded on from where the recording stood.
    pub fn extend(&mut self, events: Vec<Event>) {
        for event in events {
            update(&mut self.folded, &event);
            let i = self.events.len();
            let history = &self.folded.actions.history;
            while self.marks.len() < history.len() {
                self.marks.push(Mark {
                    index: i,
                    at: event.at,
                    checkpoint: history[self.marks.len()].checkpoint,
                    ok: None,
                });
            }
            self.events.push(event);
            if (i + 1).is_multiple_of(SNAPSHOT_EVERY) {
                self.snapshots.push((i + 1, self.folded.clone()));
            }
        }
        // How each ended, as the recording so far tells.
        for (m, run) in self.marks.iter_mut().zip(&self.folded.actions.history) {
            m.ok = run.finished.as_ref().map(|f| f.1);
        }
    }

    pub fn len(&self) -> usize {
        self.events.len()
    }

    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    pub fn events(&self) -> &[Event] {
        &self.events
    }

    pub fn marks(&self) -> &[Mark] {
        &self.marks
    }

    /// When the recording starts and ends.
    pub fn span(&self) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
        Some((self.events.first()?.at, self.events.last()?.at))
    }

    /// How many events happened at or before `t`: the position that shows `t`.
    pub fn position_at(&self, t: DateTime<Utc>) -> usize {
        self.events.partition_point(|e| e.at <= t)
    }

    /// The model after the first `n` events.
    pub fn model_after(&self, n: usize) -> Model {
        let n = n.min(self.events.len());
        let at = self.snapshots.partition_point(|(k, _)| *k <= n) - 1;
        let (from, base) = &self.snapshots[at];
        let mut model = base.clone();
        for event in &self.events[*from..n] {
            update(&mut model, event);
        }
        model
    }

    /// The start of the next (or previous) checkpoint run after (before)
    /// position `n`.
    pub fn next_mark(&self, n: usize) -> Option<&Mark> {
        self.marks.iter().find(|m| m.index + 1 > n)
    }

    pub fn previous_mark(&self, n: usize) -> Option<&Mark> {
        // A position just past a mark's event is "at" it: the one before.
        self.marks.iter().rev().find(|m| m.index + 1 < n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::log::tests::fixture;

    /// The same model wherever the fold starts from: snapshots are exact.
    #[test]
    fn a_seek_shows_what_folding_from_the_start_shows() {
        let events = fixture();
        let mut rec = Recording::new(events.clone());
        // Snapshots every 7 events, so seeks cross several.
        rec.snapshots = {
            let mut model = Model::default();
            let mut s = vec![(0, model.clone())];
            for (i, e) in events.iter().enumerate() {
                update(&mut model, e);
                if (i + 1) % 7 == 0 {
                    s.push((i + 1, model.clone()));
                }
            }
            s
        };
        for n in [0, 1, 6, 7, 8, 100, 266, 267, 401, 402, 1000] {
            let mut slow = Model::default();
            for e in &events[..n.min(events.len())] {
                update(&mut slow, e);
            }
            assert_eq!(rec.model_after(n), slow, "after {n} events");
        }
    }

    #[test]
    fn marks_are_the_checkpoint_runs_in_order_with_their_outcome() {
        let rec = Recording::new(fixture());
        let marks: Vec<(CheckpointId, Option<bool>)> =
            rec.marks().iter().map(|m| (m.checkpoint, m.ok)).collect();
        assert_eq!(marks.len(), 14);
        assert_eq!(marks[0], (CheckpointId::Preflight, Some(false)));
        assert_eq!(marks[5].0, CheckpointId::VerifyLive);
        assert_eq!(marks[7], (CheckpointId::FreezeWrites, Some(true)));
        assert_eq!(marks[13], (CheckpointId::AppOnTarget, Some(true)));
        let z = &rec.marks()[7];
        let at_z = rec.model_after(z.index + 1);
        assert_eq!(
            at_z.actions.history.last().map(|r| r.checkpoint),
            Some(CheckpointId::FreezeWrites),
            "the mark's position shows its run started"
        );
        assert_eq!(
            rec.next_mark(z.index + 1).unwrap().index,
            rec.marks()[8].index
        );
        assert_eq!(
            rec.previous_mark(z.index + 1).unwrap().index,
            rec.marks()[6].index
        );
        assert_eq!(rec.previous_mark(0), None);
    }

    #[test]
    fn a_time_maps_to_the_events_up_to_it() {
        let rec = Recording::new(fixture());
        let (start, end) = rec.span().unwrap();
        assert_eq!(rec.position_at(start), 1);
        assert_eq!(rec.position_at(end), rec.len());
        assert_eq!(rec.position_at(start - chrono::Duration::seconds(1)), 0);
    }
}
