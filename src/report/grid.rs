//! The report's tables, built once: each format (text, Markdown, HTML)
//! renders the same cells its own way, so the three cannot drift apart.

use super::fmt::{self, clock, clock_ms, duration_ms};
use super::model::*;
use super::words;

/// A table: its heads, which columns are right-aligned, its rows.
pub struct Grid {
    pub head: Vec<&'static str>,
    pub right: Vec<bool>,
    pub rows: Vec<Vec<String>>,
}

impl Grid {
    fn new(head: &[(&'static str, bool)], rows: Vec<Vec<String>>) -> Self {
        Self {
            head: head.iter().map(|h| h.0).collect(),
            right: head.iter().map(|h| h.1).collect(),
            rows,
        }
    }

    /// Without column `i` (where 80 columns hold no more).
    pub fn without(mut self, i: usize) -> Self {
        self.head.remove(i);
        self.right.remove(i);
        for row in &mut self.rows {
            row.remove(i);
        }
        self
    }
}

/// Every checkpoint run: key, checkpoint, start, end, duration, result.
pub fn runs(r: &Report) -> Grid {
    let rows = r
        .runs
        .iter()
        .map(|run| {
            vec![
                run.key.unwrap_or("").to_string(),
                run.title().to_string(),
                clock(run.started),
                run.finished.map_or("—".into(), clock),
                run.duration_ms().map_or("—".into(), duration_ms),
                run.result.word().to_string(),
            ]
        })
        .collect();
    Grid::new(
        &[
            ("key", false),
            ("checkpoint", false),
            ("start", false),
            ("end", false),
            ("duration", true),
            ("result", false),
        ],
        rows,
    )
}

/// One freeze's milestones, each with its time since the freeze began.
pub fn milestones(f: &FreezeWindow) -> Grid {
    let rows = words::milestones(f)
        .into_iter()
        .map(|(at, what)| {
            vec![
                clock_ms(at),
                format!("+{}", duration_ms((at - f.from).num_milliseconds())),
                what,
            ]
        })
        .collect();
    Grid::new(&[("time", false), ("since", true), ("what", false)], rows)
}

/// Per table: exact counts on each side, their difference, the checksums.
pub fn tables(r: &Report) -> Grid {
    let rows = r
        .tables
        .iter()
        .map(|t| {
            vec![
                t.table.to_string(),
                fmt::count(&t.source),
                fmt::count(&t.target),
                fmt::count_diff(t),
                fmt::checksum(&t.checksum),
            ]
        })
        .collect();
    Grid::new(
        &[
            ("table", false),
            ("source rows", true),
            ("target rows", true),
            ("diff", true),
            ("checksums", false),
        ],
        rows,
    )
}

/// The final checksum pass's verdict in words: `✔ …` or `✖ …`.
pub fn final_verdict(verdict: &Result<String, String>) -> String {
    step_result(Some(verdict))
}

/// How a step (or a pass) ended, in words: `✔ …`, `✖ …`, or that the log
/// holds no end for it.
pub fn step_result(outcome: Option<&Result<String, String>>) -> String {
    match outcome {
        Some(Ok(m)) => format!("✔ {m}"),
        Some(Err(e)) => format!("✖ {e}"),
        None => "… no end in the log".into(),
    }
}

/// Each sequence: the source's value, the target's before and after, what
/// was done. `when` joins the side and the time ("at " in prose, "" in 80
/// columns).
pub fn sequences(r: &Report, when: &str) -> Grid {
    let rows = r
        .sequences
        .iter()
        .map(|s| {
            vec![
                s.name.clone(),
                fmt::seq(s.source),
                fmt::seq(s.before),
                fmt::seq(s.after()),
                match s.set_to {
                    Some(_) => format!("set on the {} {when}{}", s.side.as_str(), clock(s.at)),
                    None => "left: already there".into(),
                },
            ]
        })
        .collect();
    Grid::new(
        &[
            ("sequence", false),
            ("source", true),
            ("before", true),
            ("after", true),
            ("", false),
        ],
        rows,
    )
}

/// One workload's rollout, change by change.
pub fn rollout(w: &Rollout) -> Grid {
    let rows = w
        .points
        .iter()
        .map(|p| {
            vec![
                clock_ms(p.at),
                p.desired.to_string(),
                p.updated.to_string(),
                p.ready.to_string(),
                if p.found {
                    p.state.clone()
                } else {
                    "not found".into()
                },
                fmt::by_config(&p.by_config),
            ]
        })
        .collect();
    Grid::new(
        &[
            ("time", false),
            ("desired", true),
            ("updated", true),
            ("ready", true),
            ("state", false),
            ("pods by db config", false),
        ],
        rows,
    )
}
