//! Running checkpoints: the dialog that shows a plan and its guards, the
//! typed confirmation (and the typed reason of an override), the run the
//! executor reports back into, and what a rollback needs. Pure, like the
//! rest of the model: the runtime runs the effect and reports with events.

use chrono::{DateTime, Utc};

use super::{Effect, Model};
use crate::runbook::{self, guard, CheckpointId, Guard, Plan, Step};
use crate::session::{AccessResult, SwitchRecord, SwitchValue};

/// An override's reason shorter than this is not a reason.
pub const MIN_REASON: usize = 10;
/// How many of a copy Job's log lines a run keeps for its pane.
pub const JOB_LOG_LINES: usize = 200;

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Actions {
    pub preflight: Option<Preflight>,
    pub preflight_running: bool,
    /// Every run this session, oldest first.
    pub history: Vec<CheckpointRun>,
    /// The latest switch that reached the API server: what a rollback undoes.
    pub switched: Option<(DateTime<Utc>, SwitchRecord)>,
    /// The freeze by read-only role's switch (the clients to the read-only
    /// value): what the key held before it is what a rollback puts back.
    pub read_only_switch: Option<(DateTime<Utc>, SwitchRecord)>,
    /// Writes on the source are frozen (or privileges were taken on the way
    /// to it): what the rollback gives back.
    pub frozen: Option<Frozen>,
    /// The target's rows-written counter when the switch landed: what the
    /// app has written there since is what a rollback would strand.
    pub target_rows_at_switch: Option<i64>,
    /// Writes on the target frozen, by a rollback after the switch.
    pub target_frozen: Option<Frozen>,
    /// The freeze budget ran out (once per freeze), and what was done.
    pub budget: Option<super::budget::Exceeded>,
    /// The freeze (by its start) whose budget overrun was announced.
    pub budget_announced: Option<DateTime<Utc>>,
}

/// The write freeze as the log recorded it.
#[derive(Debug, Clone, PartialEq)]
pub struct Frozen {
    /// When the privileges were taken.
    pub at: DateTime<Utc>,
    pub roles: Vec<String>,
    /// Exactly what was taken, to give back.
    pub grants: Vec<crate::session::Grant>,
    /// A freeze by read-only role: the clients' config was switched to this
    /// role; nothing was taken on the server.
    pub read_only_role: Option<String>,
    /// Proven frozen, and the source's WAL position then: the target has
    /// everything once its slot confirms this.
    pub proven: Option<(DateTime<Utc>, String)>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Preflight {
    pub at: DateTime<Utc>,
    pub checks: Vec<AccessResult>,
    pub switch_value: Option<SwitchValue>,
    pub error: Option<String>,
}

/// One step of a run as the executor reported it.
#[derive(Debug, Clone, PartialEq)]
pub struct StepRecord {
    pub index: usize,
    /// The step the executor says it ran (compared with the plan's).
    pub step: Step,
    pub started_at: DateTime<Utc>,
    /// When it ended, and how: Ok(what it did) or Err(why not).
    pub finished: Option<(DateTime<Utc>, Result<String, String>)>,
    /// How long it took as the executor measured it.
    pub elapsed_ms: Option<f64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CheckpointRun {
    pub id: u64,
    pub checkpoint: CheckpointId,
    /// The plan that was shown and confirmed: what the executor was given.
    pub plan: Plan,
    /// Failing guards the operator overrode, and the reason typed.
    pub overridden: Option<(Vec<String>, String)>,
    pub started_at: DateTime<Utc>,
    pub steps: Vec<StepRecord>,
    /// The preflight's checks, when the run was a preflight.
    pub checks: Vec<crate::runbook::preflight::Check>,
    /// The sequence step's values, when the run advanced sequences.
    pub sequences: Vec<crate::session::SequenceValue>,
    /// The copy's latest progress, when the run dumped and restored.
    pub copy: Option<crate::session::event::CopyProgress>,
    /// The copy Job's pod log, its newest lines (at most [`JOB_LOG_LINES`]).
    pub job_log: std::collections::VecDeque<String>,
    /// Free-form lines from logs written before steps were recorded.
    pub legacy_steps: Vec<(DateTime<Utc>, String)>,
    /// Started by the console itself, and why (the freeze budget ran out).
    pub auto: Option<String>,
    /// When it ended, whether it succeeded, and how it ended.
    pub finished: Option<(DateTime<Utc>, bool, String)>,
}

impl CheckpointRun {
    /// The latest thing it reported, for the one-line action pane.
    pub fn latest(&self) -> Option<String> {
        let step = self.steps.last().map(|s| match &s.finished {
            None => format!("{} …", s.step.title()),
            Some((_, Ok(m))) => m.clone(),
            Some((_, Err(e))) => format!("{}: {e}", s.step.title()),
        });
        step.or_else(|| self.legacy_steps.last().map(|(_, m)| m.clone()))
    }
}

impl Actions {
    pub fn running(&self) -> Option<&CheckpointRun> {
        self.history.last().filter(|r| r.finished.is_none())
    }

    /// The config values as the latest access review read them
    /// (fingerprints only).
    pub fn switch_value(&self) -> Option<&crate::session::SwitchValue> {
        self.preflight
            .as_ref()
            .and_then(|p| p.switch_value.as_ref())
    }

    /// The freeze of one side.
    pub fn frozen_mut(&mut self, side: crate::session::Side) -> &mut Option<Frozen> {
        match side {
            crate::session::Side::Source => &mut self.frozen,
            crate::session::Side::Target => &mut self.target_frozen,
        }
    }
}

/// Whether this session may run actions against Kubernetes at all.
pub fn kube_actions_bound(model: &Model) -> bool {
    model
        .info
        .as_ref()
        .is_some_and(|i| !i.read_only && i.kubernetes.is_some())
}

/// The guards of `checkpoint` that do not hold now, for the executor's
/// re-check at the moment it runs. Left out: its own run (not "another
/// action"), the access review (the executor asks again itself), and the
/// guards the operator overrode.
pub fn recheck(model: &Model, checkpoint: CheckpointId, overridden: &[String]) -> Vec<Guard> {
    runbook::failing(model, checkpoint)
        .into_iter()
        .filter(|g| {
            g.label != guard::BUSY && g.label != guard::ACCESS && !overridden.contains(&g.label)
        })
        .collect()
}

/// Whether `checkpoint` acts on Kubernetes now: always for the switch and
/// the restart, and for the rollback when a switch is to be undone — then
/// its access review is asked for and kept fresh like theirs.
pub fn acts_on_kubernetes(model: &Model, checkpoint: CheckpointId) -> bool {
    // Through the pooler, the switch talks to PgBouncer, not the API server.
    if checkpoint == CheckpointId::SwitchConfig
        && crate::runbook::checkpoints::pooler_switch::configured(model)
    {
        return false;
    }
    checkpoint.is_kubernetes()
        || (checkpoint == CheckpointId::Rollback
            && runbook::plan(model, checkpoint)
                .is_some_and(|p| p.steps.iter().any(Step::is_kubernetes)))
}

/// Whether this session may run `checkpoint`: never read-only, and a
/// Kubernetes checkpoint only with a Kubernetes side.
pub fn bound(model: &Model, checkpoint: CheckpointId) -> bool {
    if !crate::runbook::checkpoints(model).contains(&checkpoint) {
        return false;
    }
    if acts_on_kubernetes(model, checkpoint) {
        kube_actions_bound(model)
    } else {
        model.info.as_ref().is_some_and(|i| !i.read_only)
    }
}

/// Opens the confirmation of `checkpoint` (and, for a Kubernetes one,
/// refreshes the access review, so the guards shown hold now).
pub fn open(model: &mut Model, checkpoint: CheckpointId) -> Vec<Effect> {
    if !bound(model, checkpoint) {
        return vec![];
    }
    model.dialog = Some(checkpoint);
    if acts_on_kubernetes(model, checkpoint) {
        preflight(model)
    } else {
        vec![]
    }
}

pub fn preflight(model: &mut Model) -> Vec<Effect> {
    if model.actions.preflight_running {
        return vec![];
    }
    model.actions.preflight_running = true;
    vec![Effect::KubePreflight]
}

/// While a confirmation is open its access review is kept fresh: asked again
/// once half the stale limit has passed, so the guard never shows an old ✔.
pub fn on_tick(model: &mut Model) -> Vec<Effect> {
    if !model.dialog.is_some_and(|c| acts_on_kubernetes(model, c)) {
        return vec![];
    }
    let (Some(info), Some(now)) = (&model.info, model.now) else {
        return vec![];
    };
    let half = info.stale_after_seconds / 2.0;
    let old = match &model.actions.preflight {
        Some(p) => (now - p.at).num_milliseconds() as f64 / 1000.0 >= half,
        None => true,
    };
    if old {
        preflight(model)
    } else {
        vec![]
    }
}

/// The operator confirmed `checkpoint`, having typed `typed` (and, to
/// override failing guards, a reason). Runs only when it is the open
/// dialog's checkpoint and the confirmation matches, and then only if every
/// guard passes on the data of this moment or every failing one is
/// overridden with a reason of at least [`MIN_REASON`] characters. The
/// plan computed here is the plan the dialog showed and the effect carries.
pub fn on_confirm(
    model: &mut Model,
    checkpoint: CheckpointId,
    typed: &str,
    reason: Option<&str>,
    fleet: &[String],
) -> Vec<Effect> {
    if model.dialog != Some(checkpoint) || !bound(model, checkpoint) {
        return vec![];
    }
    let Some(plan) = runbook::plan(model, checkpoint) else {
        return vec![];
    };
    // For every database at once: one word confirms them all.
    let accepted = if fleet.is_empty() {
        plan.confirm.accepts(typed)
    } else {
        typed == super::keymap::FLEET_WORD
    };
    if !accepted {
        return vec![];
    }
    let failing: Vec<String> = runbook::failing(model, checkpoint)
        .into_iter()
        .map(|g| g.label)
        .collect();
    let overridden = if failing.is_empty() {
        None
    } else {
        // Another run in progress is never overridden: one at a time.
        let reason = reason.map(str::trim).unwrap_or_default();
        if reason.chars().count() < MIN_REASON || failing.iter().any(|l| l == guard::BUSY) {
            return vec![];
        }
        Some((failing, reason.to_string()))
    };
    start(model, plan, overridden)
}

fn start(model: &mut Model, plan: Plan, overridden: Option<(Vec<String>, String)>) -> Vec<Effect> {
    start_run(model, plan, overridden, None)
}

/// Starts `plan` as a run: recorded in the history, handed to the executor
/// (or, for verify-live, started as the verification).
pub(super) fn start_run(
    model: &mut Model,
    plan: Plan,
    overridden: Option<(Vec<String>, String)>,
    auto: Option<String>,
) -> Vec<Effect> {
    let Some(now) = model.now else {
        return vec![];
    };
    model.dialog = None;
    model.next_run += 1;
    let id = model.next_run;
    let labels = overridden
        .as_ref()
        .map(|(l, _)| l.clone())
        .unwrap_or_default();
    model.actions.history.push(CheckpointRun {
        id,
        checkpoint: plan.checkpoint,
        plan: plan.clone(),
        overridden,
        started_at: now,
        steps: Vec::new(),
        checks: Vec::new(),
        sequences: Vec::new(),
        copy: None,
        job_log: Default::default(),
        legacy_steps: Vec::new(),
        auto,
        finished: None,
    });
    // Verifying while live is the verification itself, not the executor's.
    if let [step @ Step::VerifyLive { .. }] = plan.steps.as_slice() {
        return super::verify_live::start(model, id, now, step);
    }
    let mut effects = Vec::new();
    // The final checksums build on the live verification's report: it
    // stops, and hands it over, as the final check starts.
    if plan
        .steps
        .iter()
        .any(|s| matches!(s, Step::VerifyFinal { .. }))
    {
        if let Some(run) = model.verify_run.as_ref().filter(|r| r.running()) {
            effects.push(Effect::CancelVerify { run: run.id });
        }
    }
    effects.push(Effect::RunPlan {
        id,
        plan,
        overridden: labels,
    });
    effects
}

fn run_mut(model: &mut Model, id: u64) -> Option<&mut CheckpointRun> {
    model.actions.history.iter_mut().find(|r| r.id == id)
}

pub fn on_step_started(model: &mut Model, id: u64, at: DateTime<Utc>, index: usize, step: &Step) {
    if let Some(r) = run_mut(model, id) {
        r.steps.push(StepRecord {
            index,
            step: step.clone(),
            started_at: at,
            finished: None,
            elapsed_ms: None,
        });
    }
}

pub fn on_step_ended(
    model: &mut Model,
    id: u64,
    at: DateTime<Utc>,
    index: usize,
    outcome: Result<String, String>,
    elapsed_ms: f64,
) {
    let done = outcome.is_ok();
    let Some(s) = run_mut(model, id).and_then(|r| r.steps.iter_mut().find(|s| s.index == index))
    else {
        return;
    };
    s.finished = Some((at, outcome));
    s.elapsed_ms = Some(elapsed_ms);
    let step = s.step.clone();
    // The freeze by read-only role's switch is on record from its step's
    // end, not only from the run's (a console that dies in the restart
    // after it still knows what to put back when resumed).
    if done && step.starts_read_only_freeze() {
        let record = switch_record(&step);
        if record.as_ref().is_some_and(|r| r.changed) || model.actions.read_only_switch.is_none() {
            model.actions.read_only_switch = record.map(|r| (at, r));
        }
    }
    // Put back: nothing of that freeze's switch is left to undo.
    if done && step.ends_read_only_freeze() {
        model.actions.read_only_switch = None;
    }
}

/// What a config step wrote, as its plan said it: the key's value before
/// (None: absent) and after.
fn switch_record(step: &crate::runbook::Step) -> Option<SwitchRecord> {
    use crate::runbook::Step;
    let (object, key, previous, new) = match step {
        Step::PatchConfig {
            object,
            key,
            new_fingerprint,
            expect_current,
            ..
        } => (object, key, expect_current, new_fingerprint.as_ref()?),
        Step::AwaitConfig {
            object,
            key,
            want,
            was,
            ..
        } => (object, key, was, want.as_ref()?),
        _ => return None,
    };
    Some(SwitchRecord {
        object: object.clone(),
        key: key.clone(),
        previous_fingerprint: previous.clone(),
        new_fingerprint: new.clone(),
        changed: previous.as_ref() != Some(new),
    })
}

/// A free-form step line from a log written before steps were recorded.
pub fn on_legacy_step(model: &mut Model, id: u64, at: DateTime<Utc>, message: &str) {
    if let Some(r) = run_mut(model, id) {
        r.legacy_steps.push((at, message.to_string()));
    }
}

pub fn on_finished(
    model: &mut Model,
    id: u64,
    at: DateTime<Utc>,
    ok: bool,
    message: &str,
    switched: Option<&SwitchRecord>,
) {
    let checkpoint = run_mut(model, id).map(|r| {
        r.finished = Some((at, ok, message.to_string()));
        r.checkpoint
    });
    if let Some(record) = switched {
        match checkpoint {
            // A rollback that reached the server leaves nothing to undo.
            Some(CheckpointId::Rollback) => model.actions.switched = None,
            // The freeze by read-only role's switch: not the app's move,
            // and on record from its step's end (see `on_step_ended`).
            Some(CheckpointId::FreezeWrites) => {}
            // Running the switch twice patches nothing the second time; the
            // first run's record still says what to go back to.
            _ if !record.changed && model.actions.switched.is_some() => {}
            _ => {
                model.actions.switched = Some((at, record.clone()));
                model.actions.target_rows_at_switch =
                    model.target.last.as_ref().and_then(|t| t.rows_written);
            }
        }
    }
}

/// The console was started again on this session's log: a run the log
/// left without its end is closed as failed, its outcome unknown, and so is
/// the step it was in; what only the ended process had (an open dialog, an
/// access review under way) is gone.
pub fn on_resumed(model: &mut Model, at: DateTime<Utc>) {
    model.dialog = None;
    model.actions.preflight_running = false;
    for run in model
        .actions
        .history
        .iter_mut()
        .filter(|r| r.finished.is_none())
    {
        let message = unfinished(run);
        for s in run.steps.iter_mut().filter(|s| s.finished.is_none()) {
            s.finished = Some((
                at,
                Err("the session ended while it was in flight: outcome unknown".into()),
            ));
        }
        run.finished = Some((at, false, message));
    }
}

/// The servers told what became of the step a session left in flight:
/// the step and its run say so instead of "outcome unknown".
pub fn on_in_flight_found(
    model: &mut Model,
    run: u64,
    index: usize,
    outcome: crate::session::InFlight,
    evidence: &str,
) {
    let Some(r) = model.actions.history.iter_mut().find(|r| r.id == run) else {
        return;
    };
    let said = format!(
        "in flight when the session ended; the servers say {}: {evidence}",
        outcome.word()
    );
    if let Some(s) = r.steps.iter_mut().find(|s| s.index == index) {
        if let Some((_, result)) = s.finished.as_mut() {
            *result = Err(said.clone());
        }
    }
    if let Some((_, _, message)) = r.finished.as_mut() {
        *message = format!(
            "{}: {said}",
            r.plan.steps.get(index).map_or("?".into(), |s| s.title())
        );
    }
}

/// Why an unfinished run is closed, naming where it stood.
fn unfinished(run: &CheckpointRun) -> String {
    const CHECK: &str = "check before going on";
    let title = |index: usize| {
        run.plan
            .steps
            .get(index)
            .map_or_else(|| "?".to_string(), |s| s.title())
    };
    // The step the log saw start and never end.
    let in_flight = run.steps.iter().find(|s| s.finished.is_none());
    if let Some(s) = in_flight {
        return format!(
            "the session ended while step {} ({}) was in flight; whether it completed is \
             unknown — {CHECK}",
            s.index + 1,
            s.step.title()
        );
    }
    let next = run.steps.iter().map(|s| s.index + 1).max().unwrap_or(0);
    if next < run.plan.steps.len() {
        // The executor may start a step before the log records that it did.
        format!(
            "the session ended before step {} ({}) was recorded as started; whether it ran \
             is unknown — {CHECK}",
            next + 1,
            title(next)
        )
    } else {
        format!("the session ended before the run was recorded as finished — {CHECK}")
    }
}

#[cfg(test)]
#[path = "actions_tests.rs"]
pub(super) mod tests;
