//! When to draw: light on an SSH link and on the CPU.
//!
//! A frame is drawn only when something changed, and how soon depends on
//! what changed. A key, a resize, a step of a checkpoint: at once (within
//! [`Pace::MIN`]). A periodic sample, a tick, a progress report: at most
//! once per refresh interval, so the four samples a second brings cost
//! one frame, and a slow link gets `--refresh 5` worth of frames.
//! Pure: the caller passes the time.

use std::time::Duration;

use tokio::time::Instant;

use crate::session::EventKind;

/// How soon a change must reach the screen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Urgency {
    /// A sample or a tick: with the next refresh.
    Data,
    /// The operator's key, a resize, a checkpoint's progress: now.
    Now,
}

impl Urgency {
    /// What an event asks of the screen: periodic facts wait for the
    /// refresh, anything the operator did or a checkpoint did does not.
    pub fn of(kind: &EventKind) -> Urgency {
        use EventKind as E;
        match kind {
            E::SourceSampled(_)
            | E::TargetSampled(_)
            | E::WorkloadSampled(_)
            | E::PoolerSampled(_)
            | E::KubeAlive
            | E::AppWitness(_)
            | E::Tick
            | E::ScreenDigest { .. }
            | E::CountProgress { .. }
            | E::VerifyProgress { .. }
            | E::VerifyLive { .. } => Urgency::Data,
            _ => Urgency::Now,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Pace {
    refresh: Duration,
    last: Option<Instant>,
    pending: Option<Urgency>,
}

impl Pace {
    /// The shortest time between two frames, whatever asks.
    pub const MIN: Duration = Duration::from_millis(50);
    /// A refresh interval when none is given.
    pub const DEFAULT_REFRESH: Duration = Duration::from_secs(1);

    /// `refresh` is the longest a changed sample waits to be drawn; it is
    /// never shorter than [`Pace::MIN`].
    pub fn new(refresh: Duration) -> Self {
        Self {
            refresh: refresh.max(Self::MIN),
            last: None,
            pending: None,
        }
    }

    pub fn refresh(&self) -> Duration {
        self.refresh
    }

    /// Something changed that the screen should show.
    pub fn mark(&mut self, urgency: Urgency) {
        self.pending = self.pending.max(Some(urgency));
    }

    /// When the pending change is to be drawn; None when nothing changed.
    /// Before the first frame: at once.
    pub fn due(&self) -> Option<Instant> {
        let wait = self.wait()?;
        Some(self.last.map_or_else(Instant::now, |last| last + wait))
    }

    /// Whether a frame is to be drawn at `now`.
    pub fn draw_now(&self, now: Instant) -> bool {
        match (self.wait(), self.last) {
            (None, _) => false,
            (Some(_), None) => true,
            (Some(wait), Some(last)) => last + wait <= now,
        }
    }

    /// How long after the last frame the pending change is due.
    fn wait(&self) -> Option<Duration> {
        self.pending.map(|urgency| match urgency {
            Urgency::Now => Self::MIN,
            Urgency::Data => self.refresh,
        })
    }

    /// A frame was drawn at `now`: what was pending is on the screen.
    pub fn drawn(&mut self, now: Instant) {
        self.last = Some(now);
        self.pending = None;
    }

    pub fn pending(&self) -> bool {
        self.pending.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    #[test]
    fn the_first_frame_is_drawn_at_once() {
        let mut p = Pace::new(secs(1.0));
        p.mark(Urgency::Data);
        let now = Instant::now();
        assert!(p.draw_now(now));
        assert!(p.due().is_some_and(|d| d <= Instant::now()));
    }

    #[test]
    fn nothing_changed_draws_nothing() {
        let mut p = Pace::new(secs(1.0));
        let t0 = Instant::now();
        p.drawn(t0);
        assert_eq!(p.due(), None);
        assert!(!p.draw_now(t0 + secs(10.0)));
    }

    #[test]
    fn samples_wait_for_the_refresh_and_coalesce() {
        let mut p = Pace::new(secs(1.0));
        let t0 = Instant::now();
        p.drawn(t0);
        p.mark(Urgency::Data);
        p.mark(Urgency::Data);
        assert_eq!(p.due(), Some(t0 + secs(1.0)));
        assert!(!p.draw_now(t0 + secs(0.5)));
        assert!(p.draw_now(t0 + secs(1.0)));
        p.drawn(t0 + secs(1.0));
        assert!(!p.pending());
    }

    #[test]
    fn a_key_draws_at_once_even_with_samples_pending() {
        let mut p = Pace::new(secs(5.0));
        let t0 = Instant::now();
        p.drawn(t0);
        p.mark(Urgency::Data);
        p.mark(Urgency::Now);
        assert_eq!(p.due(), Some(t0 + Pace::MIN));
        // A sample after the key does not slow the key's frame down.
        p.mark(Urgency::Data);
        assert_eq!(p.due(), Some(t0 + Pace::MIN));
    }

    #[test]
    fn refresh_is_never_below_the_minimum() {
        assert_eq!(Pace::new(Duration::ZERO).refresh(), Pace::MIN);
        assert_eq!(Pace::new(secs(5.0)).refresh(), secs(5.0));
    }

    #[test]
    fn samples_are_data_and_steps_are_now() {
        assert_eq!(Urgency::of(&EventKind::Tick), Urgency::Data);
        let done = EventKind::RunFinished {
            id: 1,
            ok: true,
            message: String::new(),
            switched: None,
        };
        assert_eq!(Urgency::of(&done), Urgency::Now);
    }
}
