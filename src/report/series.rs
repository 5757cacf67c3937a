//! Writes per second from the rows-written counters the samples carry: the
//! rate over the last two seconds or so, and a gap where the side was not
//! watched or its counter went back.

use chrono::{DateTime, Utc};

use super::model::Point;

/// The span a rate is measured over: two samples at 1 Hz, short enough
/// that the freeze shows as writes stopping, long enough to even out the
/// statistics arriving a little late.
const WINDOW_MS: i64 = 1_900;
/// A rate needs at least this much time between its two samples.
const MIN_MS: i64 = 900;

/// One side's counter samples; None marks a break.
#[derive(Debug, Default, Clone)]
pub struct Series {
    points: Vec<Option<(DateTime<Utc>, i64)>>,
}

impl Series {
    pub fn push(&mut self, at: DateTime<Utc>, rows: Option<i64>) {
        match rows {
            Some(r) => {
                // A counter that went back (statistics reset) starts over.
                if matches!(self.points.last(), Some(Some((_, prev))) if r < *prev) {
                    self.points.push(None);
                }
                self.points.push(Some((at, r)));
            }
            None => self.gap(at),
        }
    }

    pub fn gap(&mut self, _at: DateTime<Utc>) {
        if matches!(self.points.last(), Some(Some(_))) {
            self.points.push(None);
        }
    }
}

/// Rows written per second at each sample that has a second of samples
/// behind it in its stretch; a `None` point between stretches.
pub fn rates(series: &Series) -> Vec<Point<f64>> {
    let mut out: Vec<Point<f64>> = Vec::new();
    for stretch in series.points.split(Option::is_none) {
        let stretch: Vec<(DateTime<Utc>, i64)> = stretch.iter().flatten().copied().collect();
        let mut added = false;
        for (i, &(t, r)) in stretch.iter().enumerate() {
            // The latest sample at least WINDOW_MS before, else the latest
            // at least MIN_MS before.
            let before = |min: i64| {
                stretch[..i]
                    .iter()
                    .rposition(|(u, _)| (t - *u).num_milliseconds() >= min)
            };
            let Some(j) = before(WINDOW_MS).or_else(|| before(MIN_MS)) else {
                continue;
            };
            let (t0, r0) = stretch[j];
            let ms = (t - t0).num_milliseconds();
            if ms >= MIN_MS {
                if !added {
                    if let Some(last) = out.last().filter(|p| p.value.is_some()) {
                        let at = last.at;
                        out.push(Point { at, value: None });
                    }
                }
                out.push(Point {
                    at: t,
                    value: Some((r - r0) as f64 * 1000.0 / ms as f64),
                });
                added = true;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + s, 0).unwrap()
    }

    #[test]
    fn rates_over_the_window_with_gaps_and_resets() {
        let mut s = Series::default();
        for i in 0..8 {
            s.push(t(i), Some(100 * i));
        }
        s.gap(t(8));
        s.push(t(10), Some(5));
        s.push(t(12), Some(25));
        // Counter reset.
        s.push(t(13), Some(1));
        s.push(t(15), Some(41));
        let r = rates(&s);
        let values: Vec<Option<f64>> = r.iter().map(|p| p.value).collect();
        assert_eq!(
            values,
            [
                Some(100.0),
                Some(100.0),
                Some(100.0),
                Some(100.0),
                Some(100.0),
                Some(100.0),
                Some(100.0),
                None,
                Some(10.0),
                None,
                Some(20.0)
            ]
        );
    }
}
