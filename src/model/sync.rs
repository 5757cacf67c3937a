//! The initial sync as the target reports it: each table's state, the rows
//! its running COPY has done against the source's estimate, and an ETA from
//! the rate seen since the sync was first watched. Pure: folded from the
//! target's samples (`pg_subscription_rel`, `pg_stat_progress_copy`).

use chrono::{DateTime, Utc};

use super::Model;
use crate::session::sample::TableRef;

/// Where the sync stood when it was first seen unfinished: the rate is
/// measured from there.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SyncSeen {
    pub first: Option<(DateTime<Utc>, i64)>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SyncTable {
    pub table: TableRef,
    /// `pg_subscription_rel.srsubstate`: i, d, f, s, r.
    pub state: String,
    /// Rows the running COPY has processed (state d).
    pub copied: Option<i64>,
    /// The source's estimate of its rows.
    pub estimate: i64,
}

impl SyncTable {
    pub fn word(&self) -> &'static str {
        state_word(&self.state)
    }

    /// Rows counted as done: all of a table past its copy, the COPY's
    /// progress of one in it (never more than the estimate).
    fn done_rows(&self) -> i64 {
        match self.state.as_str() {
            "f" | "s" | "r" => self.estimate,
            _ => self.copied.unwrap_or(0).min(self.estimate),
        }
    }
}

pub fn state_word(state: &str) -> &'static str {
    match state {
        "i" => "waiting to copy",
        "d" => "copying",
        "f" => "copied, catching up",
        "s" => "synchronized",
        "r" => "ready",
        _ => "unknown state",
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct SyncProgress {
    pub tables: Vec<SyncTable>,
    pub ready: usize,
    pub done_rows: i64,
    pub total_rows: i64,
    /// Rows per second since the sync was first seen.
    pub rate: Option<f64>,
    /// Seconds left at that rate.
    pub eta_s: Option<f64>,
}

/// The session subscription's tables on the target, with their progress.
pub fn progress(model: &Model) -> Option<SyncProgress> {
    let info = model.info.as_ref()?;
    let target = model.target.last.as_ref()?;
    let estimate = |t: &TableRef| {
        model.source.last.as_ref().map_or(0, |s| {
            s.tables
                .iter()
                .find(|e| &e.table == t)
                .map_or(0, |e| e.estimated_rows.max(0))
        })
    };
    let tables: Vec<SyncTable> = target
        .sub_tables
        .iter()
        .filter(|r| r.subscription == info.subscription)
        .map(|r| SyncTable {
            table: r.table.clone(),
            state: r.state.clone(),
            copied: target
                .copies
                .iter()
                .find(|c| c.table == r.table)
                .map(|c| c.tuples_processed),
            estimate: estimate(&r.table),
        })
        .collect();
    if tables.is_empty() {
        return None;
    }
    let ready = tables.iter().filter(|t| t.state == "r").count();
    let done_rows: i64 = tables.iter().map(SyncTable::done_rows).sum();
    let total_rows: i64 = tables.iter().map(|t| t.estimate).sum();
    let rate = match (model.sync_seen.first, model.now) {
        (Some((at, rows)), Some(now)) => {
            let secs = (now - at).num_milliseconds() as f64 / 1000.0;
            (secs >= 1.0 && done_rows > rows).then(|| (done_rows - rows) as f64 / secs)
        }
        _ => None,
    };
    let eta_s = rate
        .filter(|_| ready < tables.len())
        .map(|r| (total_rows - done_rows).max(0) as f64 / r);
    Some(SyncProgress {
        tables,
        ready,
        done_rows,
        total_rows,
        rate,
        eta_s,
    })
}

/// After each target sample: start measuring when a sync is first seen
/// unfinished, stop when every table is ready.
pub fn observe(model: &mut Model, at: DateTime<Utc>) {
    match progress(model) {
        Some(p) if p.ready < p.tables.len() => {
            if model.sync_seen.first.is_none() {
                model.sync_seen.first = Some((at, p.done_rows));
            }
        }
        _ => model.sync_seen.first = None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::sample::{CopyProgress, SubTableRow};

    use crate::model::update::tests::{at, info, source, target};

    fn model_with(states: &[(&str, &str, Option<i64>)], now_s: i64) -> Model {
        let mut m = Model {
            info: Some(info()),
            ..Model::default()
        };
        let mut src = source(None);
        let estimate = |name: &str, rows: i64| {
            let mut e = src.tables[0].clone();
            e.table = TableRef::new("public", name);
            e.estimated_rows = rows;
            e
        };
        src.tables = vec![estimate("a", 1000), estimate("b", 3000)];
        m.source.last = Some(src);
        m.target.last = Some(target());
        let t = m.target.last.as_mut().unwrap();
        t.sub_tables = states
            .iter()
            .map(|(name, state, _)| SubTableRow {
                subscription: "s".into(),
                table: TableRef::new("public", *name),
                state: (*state).into(),
                lsn: None,
            })
            .collect();
        t.copies = states
            .iter()
            .filter_map(|(name, _, copied)| {
                copied.map(|c| CopyProgress {
                    table: TableRef::new("public", *name),
                    tuples_processed: c,
                    bytes_processed: c * 100,
                })
            })
            .collect();
        m.now = Some(at(now_s));
        m
    }

    #[test]
    fn rows_done_and_eta_from_the_rate_since_first_seen() {
        // a: 1000 rows, b: 3000 rows (estimates from the source sample).
        let mut m = model_with(&[("a", "r", None), ("b", "d", Some(0))], 0);
        let now = m.now.unwrap();
        observe(&mut m, now);
        let p = progress(&m).unwrap();
        assert_eq!((p.ready, p.done_rows, p.total_rows), (1, 1000, 4000));
        assert_eq!(p.eta_s, None, "no rate before a second has passed");

        let seen = m.sync_seen.clone();
        let mut m = model_with(&[("a", "r", None), ("b", "d", Some(1000))], 10);
        m.sync_seen = seen;
        let now = m.now.unwrap();
        observe(&mut m, now);
        let p = progress(&m).unwrap();
        assert_eq!(p.done_rows, 2000);
        assert_eq!(p.rate, Some(100.0));
        assert_eq!(p.eta_s, Some(20.0), "2000 rows left at 100/s");
        assert_eq!(p.tables[1].word(), "copying");
    }

    #[test]
    fn all_ready_stops_measuring_and_has_no_eta() {
        let mut m = model_with(&[("a", "d", Some(10))], 0);
        let now = m.now.unwrap();
        observe(&mut m, now);
        assert!(m.sync_seen.first.is_some());
        let mut m2 = model_with(&[("a", "r", None), ("b", "r", None)], 5);
        m2.sync_seen = m.sync_seen.clone();
        let now = m2.now.unwrap();
        observe(&mut m2, now);
        assert_eq!(m2.sync_seen.first, None);
        let p = progress(&m2).unwrap();
        assert_eq!((p.ready, p.eta_s), (2, None));
    }

    #[test]
    fn a_copy_past_its_estimate_counts_as_the_estimate() {
        let m = model_with(&[("a", "d", Some(5000))], 0);
        assert_eq!(progress(&m).unwrap().done_rows, 1000);
    }
}
