//! Writes per second on each side, from the servers' own statistics (rows
//! inserted, updated and deleted in user tables): the war room sees writes
//! stop on the source at the freeze and start on the target after the
//! switch. Statistics reach the counters up to a second late, so the rate
//! is taken over the last few seconds, not between two samples.

use std::collections::VecDeque;

use chrono::{DateTime, Utc};

use super::Model;
use crate::session::Side;

/// The span the rate is measured over.
const WINDOW_MS: i64 = 5_000;

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Writes {
    pub source: VecDeque<(DateTime<Utc>, i64)>,
    pub target: VecDeque<(DateTime<Utc>, i64)>,
}

impl Writes {
    fn side_mut(&mut self, side: Side) -> &mut VecDeque<(DateTime<Utc>, i64)> {
        match side {
            Side::Source => &mut self.source,
            Side::Target => &mut self.target,
        }
    }
}

/// After a sample: its counter joins the window (a counter that went back,
/// the statistics reset, starts it over).
pub fn observe(model: &mut Model, side: Side, at: DateTime<Utc>, rows: Option<i64>) {
    let window = model.writes.side_mut(side);
    let Some(rows) = rows else {
        window.clear();
        return;
    };
    if window.back().is_some_and(|(_, r)| rows < *r) {
        window.clear();
    }
    window.push_back((at, rows));
    // Keep one point at or before the window's start, so the span is full.
    while window.len() > 2 && (at - window[1].0).num_milliseconds() >= WINDOW_MS {
        window.pop_front();
    }
}

/// Rows written per second on `side` lately; None until a second of
/// samples, or when the side is stale (no rate is better than an old one).
pub fn rate(model: &Model, side: Side) -> Option<f64> {
    if stale(model, side) {
        return None;
    }
    let window = match side {
        Side::Source => &model.writes.source,
        Side::Target => &model.writes.target,
    };
    let (t0, r0) = window.front()?;
    let (t1, r1) = window.back()?;
    let ms = (*t1 - *t0).num_milliseconds();
    (ms >= 1_000).then(|| (r1 - r0) as f64 * 1000.0 / ms as f64)
}

fn stale(model: &Model, side: Side) -> bool {
    let Some(info) = &model.info else {
        return true;
    };
    let since = match side {
        Side::Source => super::stale_since(&model.source, model.now, info.stale_after_seconds),
        Side::Target => super::stale_since(&model.target, model.now, info.stale_after_seconds),
    };
    since.is_some()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::update::tests::{at, info};

    fn model() -> Model {
        Model {
            info: Some(info()),
            ..Model::default()
        }
    }

    fn sample(m: &mut Model, t: i64, rows: i64) {
        m.now = Some(at(t));
        m.source.last_ok = Some(at(t));
        observe(m, Side::Source, at(t), Some(rows));
    }

    #[test]
    fn rate_over_the_last_seconds_and_starting_over_after_a_reset() {
        let mut m = model();
        sample(&mut m, 0, 1000);
        assert_eq!(rate(&m, Side::Source), None, "one point is no rate");
        sample(&mut m, 1, 1500);
        assert_eq!(rate(&m, Side::Source), Some(500.0));
        for t in 2..=10 {
            sample(&mut m, t, 1500 + (t - 1) * 100);
        }
        // The window holds the last 5 s (and one point before): 100/s now.
        assert_eq!(rate(&m, Side::Source), Some(100.0));
        // Frozen: the counter stands still.
        for t in 11..=16 {
            sample(&mut m, t, 2400);
        }
        assert_eq!(rate(&m, Side::Source), Some(0.0));
        // Statistics reset: the counter went back; a rate again after 1 s.
        sample(&mut m, 17, 3);
        assert_eq!(rate(&m, Side::Source), None);
        sample(&mut m, 18, 53);
        assert_eq!(rate(&m, Side::Source), Some(50.0));
    }

    #[test]
    fn no_rate_from_a_stale_side() {
        let mut m = model();
        sample(&mut m, 0, 0);
        sample(&mut m, 2, 100);
        assert_eq!(rate(&m, Side::Source), Some(50.0));
        m.now = Some(at(60));
        assert_eq!(rate(&m, Side::Source), None);
    }
}
