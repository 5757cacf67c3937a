//! Guards: live preconditions of a checkpoint, each a pure function of the
//! session state answering pass, fail (the reason in words) or stale (since
//! when). Stale data never passes a guard.

use chrono::{DateTime, Utc};

use crate::model::{kube_stale, lag_summary, stale_since, LagSummary, Model, SideState};
use crate::session::Side;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Holds; what was seen.
    Pass(String),
    /// Does not hold; why, in words ("lag 1.2 MiB > 1 MiB").
    Fail(String),
    /// The data it reads is too old to judge.
    Stale {
        since: DateTime<Utc>,
        reason: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Guard {
    pub label: String,
    pub verdict: Verdict,
}

impl Guard {
    pub fn pass(label: &str, detail: impl Into<String>) -> Self {
        Guard {
            label: label.into(),
            verdict: Verdict::Pass(detail.into()),
        }
    }

    pub fn fail(label: &str, reason: impl Into<String>) -> Self {
        Guard {
            label: label.into(),
            verdict: Verdict::Fail(reason.into()),
        }
    }

    pub fn stale(label: &str, since: DateTime<Utc>, reason: impl Into<String>) -> Self {
        Guard {
            label: label.into(),
            verdict: Verdict::Stale {
                since,
                reason: reason.into(),
            },
        }
    }

    /// Pass when `ok`, else fail, with the same words.
    pub fn check(label: &str, ok: bool, detail: impl Into<String>) -> Self {
        if ok {
            Guard::pass(label, detail)
        } else {
            Guard::fail(label, detail)
        }
    }

    pub fn passes(&self) -> bool {
        matches!(self.verdict, Verdict::Pass(_))
    }

    /// "Label: detail", as a refusal names it.
    pub fn said(&self) -> String {
        format!("{}: {}", self.label, self.detail())
    }

    /// What the screen and the log say after the label.
    pub fn detail(&self) -> String {
        match &self.verdict {
            Verdict::Pass(d) | Verdict::Fail(d) => d.clone(),
            Verdict::Stale { since, reason } => {
                format!("stale since {}: {reason}", since.format("%H:%M:%S"))
            }
        }
    }
}

/// The guard that says no other run is going on: the only one a running
/// checkpoint fails by itself, so the executor's re-check leaves it out.
pub const BUSY: &str = "No other action running";
/// The access review: asked again by the executor before it changes anything.
pub const ACCESS: &str = "Access review";

pub fn no_other_run(model: &Model) -> Guard {
    match model.actions.running() {
        Some(r) => Guard::fail(BUSY, format!("{} is running", r.checkpoint.title())),
        None => Guard::pass(BUSY, "idle"),
    }
}

/// The watches are current: the API server answered within the stale limit.
pub fn kube_live(model: &Model) -> Guard {
    const L: &str = "Kubernetes watch live";
    match (kube_stale(model), model.kube.last.is_some()) {
        (Some((since, e)), _) => Guard::stale(L, since, e),
        (None, false) => Guard::fail(L, "no workload seen yet"),
        (None, true) => Guard::pass(L, "workloads are being watched"),
    }
}

/// The verbs a Kubernetes checkpoint needs: patching, or under GitOps only
/// reading and watching (the controller writes).
pub fn kube_verbs(model: &Model) -> &'static [&'static str] {
    let gitops = model
        .info
        .as_ref()
        .and_then(|i| i.kubernetes.as_ref())
        .is_some_and(|k| k.changes == crate::config::Changes::Gitops);
    if gitops {
        &["get", "list", "watch"]
    } else {
        &["get", "patch"]
    }
}

/// The access review allows `verbs`, and is no older than the stale limit.
pub fn access_review(model: &Model, verbs: &[&str]) -> Guard {
    let Some(info) = &model.info else {
        return Guard::fail(ACCESS, "no session");
    };
    let Some(p) = model.actions.preflight.as_ref() else {
        return Guard::fail(ACCESS, "not checked yet");
    };
    let limit = info.stale_after_seconds;
    let age = model
        .now
        .map(|now| (now - p.at).num_milliseconds() as f64 / 1000.0);
    if let Some(age) = age.filter(|a| *a > limit) {
        return Guard::stale(
            ACCESS,
            p.at,
            format!(
                "answer {age:.0} s old (limit {limit} s){}",
                if model.actions.preflight_running {
                    "; asking again"
                } else {
                    ""
                }
            ),
        );
    }
    if let Some(e) = &p.error {
        return Guard::fail(ACCESS, format!("could not ask: {e}"));
    }
    match p
        .checks
        .iter()
        .find(|c| !c.allowed && verbs.contains(&c.verb.as_str()))
    {
        Some(denied) => Guard::fail(
            ACCESS,
            format!(
                "not allowed: {}{}",
                denied.describe,
                denied
                    .reason
                    .as_deref()
                    .map(|r| format!(" ({r})"))
                    .unwrap_or_default()
            ),
        ),
        None => Guard::check(
            ACCESS,
            !p.checks.is_empty(),
            format!(
                "{} checks allowed at {}",
                p.checks.len(),
                p.at.format("%H:%M:%S")
            ),
        ),
    }
}

fn side_word(side: Side) -> &'static str {
    match side {
        Side::Source => "source",
        Side::Target => "target",
    }
}

/// Why a side's data cannot be trusted now (stale since when, and the
/// collector's last error), or None when it can.
pub fn side_stale<S>(
    model: &Model,
    side: Side,
    state: &SideState<S>,
) -> Option<(DateTime<Utc>, String)> {
    let limit = model.info.as_ref()?.stale_after_seconds;
    if state.last_ok.is_none() && state.failing.is_none() {
        return model
            .now
            .map(|now| (now, format!("{} not sampled yet", side_word(side))));
    }
    stale_since(state, model.now, limit).map(|since| {
        let why = state
            .failing
            .as_ref()
            .map(|(_, e)| e.clone())
            .unwrap_or_else(|| format!("no answer for over {limit} s"));
        (since, format!("{} data: {why}", side_word(side)))
    })
}

/// `<Side> live`: the side answered within the stale limit.
pub fn side_live(model: &Model, side: Side) -> Guard {
    let label = match side {
        Side::Source => "Source live",
        Side::Target => "Target live",
    };
    let stale = match side {
        Side::Source => side_stale(model, side, &model.source),
        Side::Target => side_stale(model, side, &model.target),
    };
    match stale {
        Some((since, reason)) => Guard::stale(label, since, reason),
        None => Guard::pass(label, "answering"),
    }
}

/// Switching while the target is behind sends the app to data it has not
/// got yet. The lag is read on the source, but a target that does not
/// answer has not got it either: both sides must be fresh.
pub fn caught_up(model: &Model) -> Guard {
    const L: &str = "Replication caught up";
    let Some(info) = &model.info else {
        return Guard::fail(L, "no session");
    };
    let stale = side_stale(model, Side::Source, &model.source)
        .or_else(|| side_stale(model, Side::Target, &model.target));
    if let Some((since, reason)) = stale {
        return Guard::stale(L, since, reason);
    }
    // Forward replication was stopped on purpose once the target had it
    // all (E's guards): the source's WAL since is not the target's lag.
    if let Some(at) = super::checkpoints::reverse_replication::running_since(model) {
        return Guard::pass(
            L,
            format!(
                "stopped at {} after it caught up after the freeze; reverse replication runs",
                at.format("%H:%M:%S")
            ),
        );
    }
    match lag_summary(model) {
        Some(s) if s.slot.is_none() => {
            Guard::fail(L, format!("no slot \"{}\" on the source", info.slot))
        }
        Some(LagSummary {
            lag_bytes: Some(b), ..
        }) => Guard::check(
            L,
            b <= info.max_lag_bytes,
            format!(
                "lag {} (bound {})",
                crate::ui::fmt::bytes(b),
                crate::ui::fmt::bytes(info.max_lag_bytes)
            ),
        ),
        _ => Guard::fail(L, "lag unknown"),
    }
}

/// Every configured workload has been seen by the watches.
pub fn workloads_found(model: &Model) -> Guard {
    const L: &str = "Workloads found";
    let Some(k) = model.info.as_ref().and_then(|i| i.kubernetes.as_ref()) else {
        return Guard::fail(L, "no [kubernetes] section");
    };
    let missing: Vec<&str> = k
        .deployments
        .iter()
        .filter(|d| !model.workloads.get(*d).is_some_and(|w| w.found))
        .map(String::as_str)
        .collect();
    if missing.is_empty() {
        Guard::pass(L, k.deployments.join(", "))
    } else {
        Guard::fail(L, format!("not found: {}", missing.join(", ")))
    }
}

/// The latest run of `checkpoint` started at or after `since`.
pub fn latest_run(
    model: &Model,
    checkpoint: super::CheckpointId,
    since: Option<DateTime<Utc>>,
) -> Option<&crate::model::CheckpointRun> {
    model
        .actions
        .history
        .iter()
        .rev()
        .find(|r| r.checkpoint == checkpoint && since.is_none_or(|s| r.started_at >= s))
}

/// The live verification's latest word: the verify-live checkpoint done
/// (every table verified once) and no confirmed difference since, in any
/// table, by whichever verification ran last.
pub fn verified_live(model: &Model) -> Guard {
    const L: &str = "Verified while live";
    let run = latest_run(model, super::CheckpointId::VerifyLive, None);
    let differing = crate::model::verify_differences(model);
    if !differing.is_empty() {
        return Guard::fail(L, format!("rows differ: {}", differing.join("; ")));
    }
    let Some(run) = run else {
        return Guard::fail(
            L,
            "not verified yet: V verifies every table while replication runs",
        );
    };
    match &run.finished {
        None => {
            let (done, total) = crate::model::verified_once(model);
            Guard::fail(
                L,
                format!("first pass running: {done} of {total} tables verified"),
            )
        }
        Some((_, false, message)) => Guard::fail(L, format!("failed: {message}")),
        Some((at, true, _)) => {
            let still = if model.verify_running() {
                "verification goes on"
            } else {
                "verification stopped since"
            };
            Guard::pass(
                L,
                format!(
                    "every table verified by {}; no difference since ({still})",
                    at.format("%H:%M:%S")
                ),
            )
        }
    }
}

/// The target's sequences were advanced past the source's by the sequence
/// checkpoint, and nothing it found was left behind.
pub fn sequences_advanced(model: &Model) -> Guard {
    const L: &str = "Sequences advanced";
    let run = latest_run(model, super::CheckpointId::AdvanceSequences, None);
    match run.map(|r| (&r.finished, r.sequences.len())) {
        None => Guard::fail(
            L,
            "not yet: A sets the target's sequences past the source's (after the freeze)",
        ),
        Some((None, _)) => Guard::fail(L, "running"),
        Some((Some((_, false, m)), _)) => Guard::fail(L, format!("failed: {m}")),
        Some((Some((at, true, _)), n)) => {
            // Read before the freeze, the source may have handed out more since.
            let frozen = model
                .actions
                .frozen
                .as_ref()
                .and_then(|f| f.proven.as_ref().map(|(t, _)| *t));
            match frozen {
                Some(f) if *at < f => Guard::fail(
                    L,
                    format!(
                        "advanced at {}, before the freeze at {}: run A again",
                        at.format("%H:%M:%S"),
                        f.format("%H:%M:%S")
                    ),
                ),
                _ => Guard::pass(
                    L,
                    format!(
                        "{n} sequences at or past the source's at {}",
                        at.format("%H:%M:%S")
                    ),
                ),
            }
        }
    }
}

/// "0/3000060" → 0x3000060: an LSN as a number, to compare.
pub fn lsn(text: &str) -> Option<u64> {
    let (hi, lo) = text.split_once('/')?;
    Some((u64::from_str_radix(hi, 16).ok()? << 32) | u64::from_str_radix(lo, 16).ok()?)
}

/// The source's writes are frozen and the freeze proven.
pub fn writes_frozen(model: &Model) -> Guard {
    const L: &str = "Writes frozen on the source";
    match model.actions.frozen.as_ref() {
        None => Guard::fail(L, "not frozen: Z takes the application roles' writes"),
        Some(f) => match &f.proven {
            None => Guard::fail(
                L,
                format!(
                    "{} at {} but the freeze was not proven: see its run",
                    match &f.read_only_role {
                        Some(role) => format!("clients switched to {role}"),
                        None => "privileges taken".to_string(),
                    },
                    f.at.format("%H:%M:%S")
                ),
            ),
            Some((at, _)) => Guard::pass(
                L,
                format!(
                    "{} frozen, proven at {}",
                    f.roles.join(", "),
                    at.format("%H:%M:%S")
                ),
            ),
        },
    }
}

/// The target has everything the source had when the freeze was proven:
/// the subscription's slot confirmed that WAL position (on a fresh sample),
/// not merely "lag under a threshold".
pub fn caught_up_after_freeze(model: &Model) -> Guard {
    const L: &str = "Target caught up after the freeze";
    let Some(Some((_, at_lsn))) = model.actions.frozen.as_ref().map(|f| f.proven.as_ref()) else {
        return Guard::fail(L, "no proven freeze yet");
    };
    if let Some((since, reason)) = side_stale(model, Side::Source, &model.source) {
        return Guard::stale(L, since, reason);
    }
    let Some(info) = &model.info else {
        return Guard::fail(L, "no session");
    };
    let confirmed = model
        .source
        .last
        .as_ref()
        .and_then(|s| s.slots.iter().find(|sl| sl.name == info.slot))
        .and_then(|sl| sl.confirmed_flush_lsn.clone());
    match (confirmed.as_deref().and_then(lsn), lsn(at_lsn)) {
        (Some(c), Some(f)) if c >= f => Guard::pass(
            L,
            format!(
                "slot {} confirmed {} ≥ the freeze's {at_lsn}",
                info.slot,
                confirmed.unwrap_or_default()
            ),
        ),
        (Some(_), Some(_)) => Guard::fail(
            L,
            format!(
                "slot {} at {}, the freeze at {at_lsn}: the target is still applying",
                info.slot,
                confirmed.unwrap_or_default()
            ),
        ),
        _ => Guard::fail(
            L,
            format!("slot {} has not confirmed a position", info.slot),
        ),
    }
}

/// Bytes per second the target has confirmed over the last `window_s`
/// seconds of the lag history; None with under two points in it.
pub fn apply_rate(model: &Model, window_s: i64) -> Option<f64> {
    let last = model
        .lag_history
        .iter()
        .rev()
        .find(|p| p.confirmed.is_some())?;
    let first = model
        .lag_history
        .iter()
        .find(|p| p.confirmed.is_some() && (last.at - p.at).num_seconds() <= window_s)?;
    let ms = (last.at - first.at).num_milliseconds();
    if ms < 1000 {
        return None;
    }
    let bytes = last.confirmed?.saturating_sub(first.confirmed?);
    Some(bytes as f64 * 1000.0 / ms as f64)
}

/// Once writes stop, the target still has the lag to apply: predicted from
/// the rate it has been applying at, it must fit the freeze budget, or the
/// window would overrun before the switch could start.
pub fn catch_up_within_budget(model: &Model) -> Guard {
    const L: &str = "Catch-up fits the freeze budget";
    let Some(info) = &model.info else {
        return Guard::fail(L, "no session");
    };
    if let Some((since, reason)) = side_stale(model, Side::Source, &model.source) {
        return Guard::stale(L, since, reason);
    }
    let budget = info.freeze_budget_secs as f64;
    let Some(lag) = lag_summary(model).and_then(|s| s.lag_bytes) else {
        return Guard::fail(L, "lag unknown");
    };
    if lag <= 0 {
        return Guard::pass(
            L,
            format!("caught up: nothing to apply in the {budget:.0} s budget"),
        );
    }
    match apply_rate(model, 10) {
        Some(rate) if rate > 0.0 => {
            let secs = lag as f64 / rate;
            Guard::check(
                L,
                secs <= budget,
                format!(
                    "lag {} at {}/s applied: ~{} of the {budget:.0} s budget",
                    crate::ui::fmt::bytes(lag),
                    crate::ui::fmt::bytes(rate as i64),
                    crate::ui::fmt::secs(secs)
                ),
            )
        }
        _ => Guard::fail(
            L,
            format!(
                "lag {} and the target confirmed nothing over the last 10 s: it is not applying",
                crate::ui::fmt::bytes(lag)
            ),
        ),
    }
}

/// After the switch the application writes to the target; going back to the
/// source leaves those rows only on the target (until reverse replication
/// exists). Counted from the target's own statistics since the switch.
pub fn nothing_stranded(model: &Model) -> Guard {
    const L: &str = "No writes left only on the target";
    let Some((at, _)) = model.actions.switched.as_ref() else {
        return Guard::pass(L, "not switched: the app never wrote to the target");
    };
    if let Some(since) = super::checkpoints::reverse_replication::running_since(model) {
        return Guard::pass(
            L,
            format!(
                "reverse replication since {} carries them: the rollback freezes the target and                  waits until it has delivered everything",
                since.format("%H:%M:%S")
            ),
        );
    }
    if let Some((since, reason)) = side_stale(model, Side::Target, &model.target) {
        return Guard::stale(L, since, reason);
    }
    let now = model.target.last.as_ref().and_then(|t| t.rows_written);
    match (model.actions.target_rows_at_switch, now) {
        (Some(then), Some(now)) if now > then => Guard::fail(
            L,
            format!(
                "{} rows written on the target since the switch at {} would stay only there: \
                 without reverse replication the rollback strands them (override only with a \
                 reason)",
                crate::ui::fmt::int(now - then),
                at.format("%H:%M:%S")
            ),
        ),
        (Some(_), Some(_)) => Guard::pass(L, "nothing written on the target since the switch"),
        _ => Guard::fail(L, "the target's writes since the switch are unknown"),
    }
}

/// The final check (C) in the window: lag 0 after the freeze, exact counts
/// and final checksums equal — run after the freeze was proven, and the
/// latest word. A failed one names the tables and rows that differ.
pub fn final_checked(model: &Model) -> Guard {
    const L: &str = "Final check in the window";
    let proven = model
        .actions
        .frozen
        .as_ref()
        .and_then(|f| f.proven.as_ref().map(|(at, _)| *at));
    let Some(proven) = proven else {
        return Guard::fail(L, "no proven freeze yet");
    };
    let run = latest_run(model, super::CheckpointId::FinalCheck, Some(proven));
    match run.map(|r| &r.finished) {
        None => Guard::fail(
            L,
            "not run since the freeze: C waits for lag 0, counts and checksums every table",
        ),
        Some(None) => Guard::fail(L, "running"),
        Some(Some((_, false, m))) => Guard::fail(L, format!("failed: {m}")),
        Some(Some((at, true, m))) => Guard::pass(L, format!("{} ({m})", at.format("%H:%M:%S"))),
    }
}
