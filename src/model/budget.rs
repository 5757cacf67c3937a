//! The freeze budget: how long writes have been refused against
//! `[freeze] budget_secs`, and what happens when it runs out — announced
//! once per freeze (the runtime logs `BudgetExceeded`, whose fold acts on
//! it), then, with `on_budget_exceeded = "rollback"`, the rollback started
//! by the console itself, its run saying why.

use chrono::{DateTime, Utc};

use super::{Effect, Model};
use crate::config::BudgetAction;
use crate::runbook::{self, CheckpointId, Guard};
use crate::session::EventKind;

/// The budget ran out: when, what the config said to do, and what was done.
#[derive(Debug, Clone, PartialEq)]
pub struct Exceeded {
    pub at: DateTime<Utc>,
    /// The freeze it belongs to (its start).
    pub freeze: DateTime<Utc>,
    pub action: BudgetAction,
    /// In words: warned, rollback started, or why it could not start.
    pub outcome: String,
    /// A rollback waits for the running checkpoint to end.
    pub pending: bool,
}

/// Seconds writes have been frozen (since the privileges were taken), the
/// budget, and whether the window has closed: the app was seen writing to
/// the target (T passed, counted to when it started watching). None while
/// the source takes writes.
pub fn freeze_window(model: &Model) -> Option<(u64, u64, bool)> {
    let f = model.actions.frozen.as_ref()?;
    let budget = model.info.as_ref()?.freeze_budget_secs;
    let closed = model.actions.history.iter().find(|r| {
        r.checkpoint == CheckpointId::AppOnTarget
            && r.started_at >= f.at
            && matches!(r.finished, Some((_, true, _)))
    });
    let end = match closed {
        Some(r) => r.started_at,
        None => model.now?,
    };
    Some((
        (end - f.at).num_seconds().max(0) as u64,
        budget,
        closed.is_some(),
    ))
}

/// On each tick: the first time this freeze is past its budget (and the
/// window still open), ask the runtime to record it.
pub fn on_tick(model: &mut Model) -> Vec<Effect> {
    let (Some((secs, budget, false)), Some(info), Some(f)) = (
        freeze_window(model),
        model.info.as_ref(),
        model.actions.frozen.as_ref(),
    ) else {
        return vec![];
    };
    if secs <= budget || model.actions.budget_announced == Some(f.at) {
        return vec![];
    }
    model.actions.budget_announced = Some(f.at);
    vec![Effect::Record(EventKind::BudgetExceeded {
        budget_secs: budget,
        action: info.on_budget_exceeded,
    })]
}

/// The recorded budget overrun: warn, or start the rollback (now, or when
/// the running checkpoint ends).
pub fn on_exceeded(
    model: &mut Model,
    at: DateTime<Utc>,
    budget_secs: u64,
    action: BudgetAction,
) -> Vec<Effect> {
    let Some(freeze) = model.actions.frozen.as_ref().map(|f| f.at) else {
        return vec![];
    };
    let mut exceeded = Exceeded {
        at,
        freeze,
        action,
        outcome: format!("the write freeze passed its {budget_secs} s budget: B rolls back"),
        pending: action == BudgetAction::Rollback,
    };
    let mut effects = Vec::new();
    if let Some(r) = model.actions.running().filter(|_| exceeded.pending) {
        exceeded.outcome = format!(
            "the write freeze passed its {budget_secs} s budget: the rollback starts when {} ends",
            r.checkpoint.title()
        );
        // A wait for a change through Git has changed nothing: it is cut
        // short, rather than holding the rollback until a merge or its
        // timeout.
        if awaiting_git(r) {
            exceeded.outcome = format!(
                "the write freeze passed its {budget_secs} s budget: the wait for the change \
                 through Git is cancelled, and the rollback starts"
            );
            effects.push(Effect::CancelRun { id: r.id });
        }
    }
    model.actions.budget = Some(exceeded);
    effects.extend(try_rollback(model));
    effects
}

/// The run is waiting for its config change to come through Git (nothing
/// written by it yet).
fn awaiting_git(r: &super::actions::CheckpointRun) -> bool {
    r.checkpoint == CheckpointId::SwitchConfig
        && r.steps.last().is_some_and(|s| {
            s.finished.is_none() && matches!(s.step, crate::runbook::Step::AwaitConfig { .. })
        })
}

/// Starts the pending rollback when nothing else runs; called again as runs end.
pub fn try_rollback(model: &mut Model) -> Vec<Effect> {
    let Some(b) = model.actions.budget.as_ref().filter(|b| b.pending) else {
        return vec![];
    };
    if model.actions.running().is_some() || !super::actions::bound(model, CheckpointId::Rollback) {
        return vec![];
    }
    let why = format!(
        "started by the console: the write freeze passed its budget at {} \
         ([freeze] on_budget_exceeded = \"rollback\")",
        b.at.format("%H:%M:%S")
    );
    let failing: Vec<String> = runbook::failing(model, CheckpointId::Rollback)
        .iter()
        .map(Guard::said)
        .collect();
    let plan = runbook::plan(model, CheckpointId::Rollback).filter(|p| !p.steps.is_empty());
    let (outcome, effects) = match plan {
        Some(plan) if failing.is_empty() => (
            "the write freeze passed its budget: rollback started by itself".to_string(),
            super::actions::start_run(model, plan, None, Some(why)),
        ),
        Some(_) => (
            format!(
                "the write freeze passed its budget; the rollback could not start by itself: {} \
                 — B with a reason overrides",
                failing.join("; ")
            ),
            vec![],
        ),
        None => (
            "the write freeze passed its budget; nothing to roll back".into(),
            vec![],
        ),
    };
    if let Some(b) = model.actions.budget.as_mut() {
        b.pending = false;
        b.outcome = outcome;
    }
    effects
}

#[cfg(test)]
#[path = "window_tests.rs"]
pub(super) mod tests;

#[cfg(test)]
#[path = "gitops_tests.rs"]
mod gitops_tests;
