//! The facts on the screen, as numbers a dashboard can chart and alert on.
//! Pure: read from the model by the same derivations the panes draw with,
//! so a war room's Grafana and the console never disagree. A fact the
//! screen would mark stale is left out (no series), never repeated old.

use crate::model::{self, Model};
use crate::session::sample::Side;

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Facts {
    /// The subscription slot's lag: current WAL LSN − confirmed flush.
    pub lag_bytes: Option<i64>,
    /// The walsender's flush lag.
    pub lag_seconds: Option<f64>,
    /// WAL the slot holds back on the source's disk.
    pub slot_retained_bytes: Option<i64>,
    /// Whether each side's sample is stale (or never came).
    pub source_stale: bool,
    pub target_stale: bool,
    pub kube_stale: bool,
    /// The runbook's phase, as the war-room view names it.
    pub phase: String,
    /// The checkpoint that runs or comes next: its key, title and state
    /// (`running`, `next`, `failed`).
    pub checkpoint: Option<(String, String, &'static str)>,
    /// Checkpoints passed so far.
    pub checkpoints_done: usize,
    /// The write freeze: seconds since it began, the budget, and whether
    /// the window is closed (the app on the target).
    pub freeze: Option<(u64, u64, bool)>,
    pub source_writes_per_second: Option<f64>,
    pub target_writes_per_second: Option<f64>,
    /// Tables verified and tables to verify, of the latest verification.
    pub verify: Option<(usize, usize)>,
    /// Per workload: pods updated, ready, desired.
    pub rollout: Vec<(String, i32, i32, i32)>,
}

pub fn facts(m: &Model) -> Facts {
    let stale_after = m.info.as_ref().map_or(f64::MAX, |i| i.stale_after_seconds);
    let source_stale =
        m.source.last.is_none() || model::stale_since(&m.source, m.now, stale_after).is_some();
    let target_stale =
        m.target.last.is_none() || model::stale_since(&m.target, m.now, stale_after).is_some();
    let lag = (!source_stale).then(|| model::lag_summary(m)).flatten();
    let next = crate::ui::next_checkpoint(m);
    let running = m.actions.running().map(|r| r.checkpoint);
    let checkpoint = running.or(next).map(|id| {
        let failed = m
            .actions
            .history
            .iter()
            .rev()
            .find(|r| r.checkpoint == id)
            .is_some_and(|r| matches!(r.finished, Some((_, false, _))));
        let state = match (running == Some(id), failed) {
            (true, _) => "running",
            (false, true) => "failed",
            (false, false) => "next",
        };
        (
            crate::ui::key_of(id).to_string(),
            id.title().to_string(),
            state,
        )
    });
    let done = m
        .actions
        .history
        .iter()
        .filter(|r| matches!(r.finished, Some((_, true, _))))
        .map(|r| r.checkpoint)
        .collect::<std::collections::BTreeSet<_>>()
        .len();
    let kube_stale = model::kube_stale(m).is_some();
    Facts {
        lag_bytes: lag.as_ref().and_then(|l| l.lag_bytes),
        lag_seconds: lag
            .as_ref()
            .and_then(|l| l.flush_lag_ms)
            .map(|ms| ms / 1000.0),
        slot_retained_bytes: lag
            .as_ref()
            .and_then(|l| l.slot)
            .and_then(|s| s.retained_bytes),
        source_stale,
        target_stale,
        kube_stale,
        phase: crate::ui::phase_name(m),
        checkpoint,
        checkpoints_done: done,
        freeze: model::budget::freeze_window(m),
        source_writes_per_second: model::writes::rate(m, Side::Source),
        target_writes_per_second: model::writes::rate(m, Side::Target),
        verify: m.verify_run.as_ref().map(|v| (v.done, v.total)),
        rollout: if kube_stale {
            vec![]
        } else {
            m.workloads
                .iter()
                .map(|(name, w)| (name.clone(), w.updated, w.ready, w.desired))
                .collect()
        },
    }
}
