use super::keymap::SessionCommand;
use super::{CountRun, ExactCount, LagPoint, Model, VerifyCell, VerifyRun, LAG_HISTORY};
use crate::runbook::Plan;
use crate::session::sample::{Side, TableRef};
use crate::session::{Event, EventKind};
use chrono::{DateTime, Utc};

/// Work the runtime does on the model's behalf; results come back as events.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    StartExactCount {
        run: u64,
        tables: Vec<TableRef>,
    },
    CancelExactCount {
        run: u64,
    },
    StartVerify {
        run: u64,
        tables: Vec<TableRef>,
    },
    StartContinuousVerify {
        run: u64,
        tables: Vec<TableRef>,
    },
    CancelVerify {
        run: u64,
    },
    /// Ask the API server what this identity may do, and read the switch value's fingerprint.
    KubePreflight,
    /// Run exactly this plan (the one the dialog showed); the executor
    /// re-checks the guards except those the operator overrode.
    RunPlan {
        id: u64,
        plan: Plan,
        overridden: Vec<String>,
    },
    /// Stop a running checkpoint (the record says what was in flight).
    CancelRun {
        id: u64,
    },
    /// Record this event (the runtime logs it and folds it back in): what
    /// the console decided by itself, so the log says why.
    Record(EventKind),
    /// The runbook's last checkpoint passed: write the migration report
    /// (to this path; None: beside the session log).
    WriteReport {
        path: Option<String>,
    },
    Quit,
}

/// The fold. Pure: the same events give the same model, live or in replay.
pub fn update(model: &mut Model, event: &Event) -> Vec<Effect> {
    let at = event.at;
    model.now = Some(model.now.map_or(at, |n| n.max(at)));
    match &event.kind {
        EventKind::SessionStarted(info) => {
            model.info = Some((**info).clone());
            // Access is known before anyone reaches for an action.
            if super::kube_actions_bound(model) {
                super::actions::preflight(model)
            } else {
                vec![]
            }
        }
        EventKind::SourceSampled(sample) => {
            model.source.last = Some(sample.clone());
            model.source.last_ok = Some(at);
            model.source.failing = None;
            super::writes::observe(model, Side::Source, at, sample.rows_written);
            // History starts when the slot does: before that there is no lag to
            // chart, and a gap would read as a missed poll.
            let slot = model
                .info
                .as_ref()
                .and_then(|i| sample.slots.iter().find(|s| s.name == i.slot));
            if let Some(slot) = slot {
                push_lag(
                    model,
                    LagPoint {
                        at,
                        bytes: slot.lag_bytes,
                        confirmed: slot
                            .confirmed_flush_lsn
                            .as_deref()
                            .and_then(crate::runbook::guard::lsn),
                    },
                );
            }
            vec![]
        }
        EventKind::TargetSampled(sample) => {
            model.target.last = Some(sample.clone());
            model.target.last_ok = Some(at);
            model.target.failing = None;
            let sub = model.info.as_ref().map(|i| i.subscription.as_str());
            if sample
                .subscriptions
                .iter()
                .any(|s| Some(s.name.as_str()) == sub)
            {
                model.subscription_seen = Some(at);
            }
            super::sync::observe(model, at);
            super::writes::observe(model, Side::Target, at, sample.rows_written);
            vec![]
        }
        EventKind::CollectorConnected {
            side,
            endpoint,
            host_index,
            hosts,
        } => {
            let via = (*hosts > 1).then(|| (endpoint.clone(), host_index + 1, *hosts));
            match side {
                Side::Source => model.source.via = via,
                Side::Target => model.target.via = via,
            }
            vec![]
        }
        EventKind::CollectorFailed { side, error } => {
            let failing = match side {
                Side::Source => &mut model.source.failing,
                Side::Target => &mut model.target.failing,
            };
            let since = failing.as_ref().map_or(at, |(since, _)| *since);
            *failing = Some((since, error.clone()));
            if *side == Side::Source && !model.lag_history.is_empty() {
                // A gap in the sparkline, not a fake zero.
                push_lag(
                    model,
                    LagPoint {
                        at,
                        bytes: None,
                        confirmed: None,
                    },
                );
            }
            vec![]
        }
        EventKind::WorkloadSampled(w) => {
            model.workloads.insert(w.deployment.clone(), w.clone());
            model.workload_at.insert(w.deployment.clone(), at);
            model.kube.last = Some(());
            model.kube.last_ok = Some(at);
            model.kube.failing = None;
            vec![]
        }
        EventKind::AppWitness(w) => {
            model.witness = Some((at, w.clone()));
            vec![]
        }
        EventKind::PoolerSampled(p) => {
            model.pooler = Some((at, p.clone()));
            vec![]
        }
        EventKind::KubeAlive => {
            model.kube.last_ok = Some(at);
            model.kube.failing = None;
            vec![]
        }
        EventKind::ConfigUsers { home, users } => {
            model.config_users.last = Some((home.clone(), users.clone()));
            model.config_users.last_ok = Some(at);
            model.config_users.failing = None;
            vec![]
        }
        EventKind::ConfigUsersFailed { error } => {
            let since = model.config_users.failing.as_ref().map_or(at, |(s, _)| *s);
            model.config_users.failing = Some((since, error.clone()));
            vec![]
        }
        EventKind::KubeFailed { error } => {
            let since = model.kube.failing.as_ref().map_or(at, |(s, _)| *s);
            model.kube.failing = Some((since, error.clone()));
            vec![]
        }
        EventKind::Key { key } => on_legacy_key(model, at, key),
        EventKind::Command(command) => on_command(model, at, command),
        EventKind::CountProgress {
            run,
            side,
            table,
            rows,
            elapsed_ms,
        } => {
            let lag_bytes = super::derive::replicating_lag(model);
            count_result(
                model,
                *run,
                *side,
                table,
                ExactCount::Counted {
                    rows: *rows,
                    at,
                    elapsed_ms: *elapsed_ms,
                    lag_bytes,
                },
            );
            vec![]
        }
        EventKind::CountFailed {
            run,
            side,
            table,
            error,
        } => {
            match table {
                Some(table) => {
                    count_result(model, *run, *side, table, ExactCount::Failed(error.clone()))
                }
                None => {
                    // The whole side failed (no connection): every pending cell says why.
                    for cell in model.counts.values_mut() {
                        let slot = cell.side_mut(*side);
                        if *slot == ExactCount::Counting {
                            *slot = ExactCount::Failed(error.clone());
                        }
                    }
                }
            }
            vec![]
        }
        EventKind::CountFinished { run, cancelled } => {
            if let Some(r) = model.count_run.as_mut().filter(|r| r.id == *run) {
                r.finished_at = Some(at);
                r.cancelled = *cancelled;
            }
            for cell in model.counts.values_mut() {
                for slot in [&mut cell.source, &mut cell.target] {
                    if *slot == ExactCount::Counting {
                        *slot = ExactCount::NotCounted;
                    }
                }
            }
            vec![]
        }
        EventKind::VerifyProgress { run, progress } => {
            if model.verify_run.as_ref().is_some_and(|r| r.id == *run) {
                set_verify(
                    model,
                    at,
                    &progress.table,
                    VerifyCell::Running(progress.clone()),
                );
            }
            vec![]
        }
        EventKind::VerifyLive { run, progress } => {
            if model.verify_run.as_ref().is_some_and(|r| r.id == *run) {
                set_verify(
                    model,
                    at,
                    &progress.table,
                    VerifyCell::Live(progress.clone()),
                );
                super::verify_live::on_progress(model, at);
            }
            vec![]
        }
        EventKind::VerifyTableDone { run, result } => {
            if let Some(r) = model.verify_run.as_mut().filter(|r| r.id == *run) {
                r.done += 1;
            }
            set_verify(model, at, &result.table, VerifyCell::Done(result.clone()));
            vec![]
        }
        EventKind::VerifyFinished {
            run,
            cancelled,
            error,
        } => {
            if let Some(r) = model.verify_run.as_mut().filter(|r| r.id == *run) {
                r.finished_at = Some(at);
                r.cancelled = *cancelled;
                r.error = error.clone();
            }
            // Tables the run never reached are not "pending" any more.
            model
                .verify
                .retain(|_, c| !matches!(c, VerifyCell::Pending | VerifyCell::Running(_)));
            super::verify_live::on_verify_finished(model, at);
            vec![]
        }
        EventKind::KubePreflightDone {
            checks,
            switch_value,
            error,
        } => {
            model.actions.preflight_running = false;
            model.actions.preflight = Some(super::Preflight {
                at,
                checks: checks.clone(),
                switch_value: switch_value.clone(),
                error: error.clone(),
            });
            vec![]
        }
        EventKind::KubeActionStep { id, message } => {
            super::actions::on_legacy_step(model, *id, at, message);
            vec![]
        }
        EventKind::StepStarted { id, index, step } => {
            super::actions::on_step_started(model, *id, at, *index, step);
            vec![]
        }
        EventKind::StepDone {
            id,
            index,
            message,
            elapsed_ms,
        } => {
            super::actions::on_step_ended(model, *id, at, *index, Ok(message.clone()), *elapsed_ms);
            vec![]
        }
        EventKind::PreflightChecked { id, checks } => {
            if let Some(r) = model.actions.history.iter_mut().find(|r| r.id == *id) {
                r.checks = checks.clone();
            }
            vec![]
        }
        EventKind::FreezeGrants {
            side,
            roles,
            grants,
            read_only_role,
            ..
        } => {
            let frozen = model.actions.frozen_mut(*side);
            match frozen.as_mut() {
                // Frozen again before the way back (a proof that failed, run
                // again): what the first one took is still to give back.
                Some(f) => {
                    for g in grants {
                        if !f.grants.contains(g) {
                            f.grants.push(g.clone());
                        }
                    }
                    for r in roles {
                        if !f.roles.contains(r) {
                            f.roles.push(r.clone());
                        }
                    }
                    f.proven = None;
                }
                None => {
                    *frozen = Some(super::Frozen {
                        at,
                        roles: roles.clone(),
                        grants: grants.clone(),
                        proven: None,
                        read_only_role: read_only_role.clone(),
                    })
                }
            }
            vec![]
        }
        EventKind::WritesFrozen { side, lsn, .. } => {
            if let Some(f) = model.actions.frozen_mut(*side).as_mut() {
                f.proven = Some((at, lsn.clone()));
            }
            vec![]
        }
        EventKind::WritesUnfrozen { side, .. } => {
            *model.actions.frozen_mut(*side) = None;
            vec![]
        }
        EventKind::BudgetExceeded {
            budget_secs,
            action,
        } => super::budget::on_exceeded(model, at, *budget_secs, *action),
        EventKind::CopyProgress { id, progress } => {
            if let Some(r) = model.actions.history.iter_mut().find(|r| r.id == *id) {
                r.copy = Some(progress.clone());
            }
            vec![]
        }
        EventKind::JobLog { id, lines } => {
            if let Some(r) = model.actions.history.iter_mut().find(|r| r.id == *id) {
                r.job_log.extend(lines.iter().cloned());
                let over = r
                    .job_log
                    .len()
                    .saturating_sub(super::actions::JOB_LOG_LINES);
                r.job_log.drain(..over);
            }
            vec![]
        }
        EventKind::SequencesAdvanced { id, sequences } => {
            if let Some(r) = model.actions.history.iter_mut().find(|r| r.id == *id) {
                r.sequences = sequences.clone();
            }
            vec![]
        }
        EventKind::StepFailed {
            id,
            index,
            error,
            elapsed_ms,
        } => {
            super::actions::on_step_ended(model, *id, at, *index, Err(error.clone()), *elapsed_ms);
            vec![]
        }
        EventKind::RunFinished {
            id,
            ok,
            message,
            switched,
        } => {
            super::actions::on_finished(model, *id, at, *ok, message, switched.as_ref());
            // A rollback the budget asked for while this ran starts now.
            let mut effects = super::budget::try_rollback(model);
            // The runbook's last checkpoint ends by writing the report.
            let finished = model.actions.history.iter().find(|r| r.id == *id);
            if *ok
                && finished
                    .is_some_and(|r| r.checkpoint == crate::runbook::CheckpointId::DropSubscription)
            {
                model.report_pending = true;
                effects.push(Effect::WriteReport {
                    path: model.info.as_ref().and_then(|i| i.report_path.clone()),
                });
            }
            // A failed or cancelled action may have changed part of what it
            // meant to: read the config and the access again at once.
            if !*ok {
                effects.extend(super::actions::preflight(model));
            }
            effects
        }
        EventKind::SessionResumed { read_only, .. } => {
            if let Some(info) = model.info.as_mut() {
                info.read_only = *read_only;
            }
            model.ended = None;
            model.quit = false;
            // Counts and verifications died with the process that ran them.
            let mut ended = Vec::new();
            if let Some(r) = model.count_run.as_ref().filter(|r| r.running()) {
                ended.push(EventKind::CountFinished {
                    run: r.id,
                    cancelled: true,
                });
            }
            if let Some(r) = model.verify_run.as_ref().filter(|r| r.running()) {
                ended.push(EventKind::VerifyFinished {
                    run: r.id,
                    cancelled: true,
                    error: Some("the session ended while it ran".into()),
                });
            }
            for kind in ended {
                update(model, &Event { kind, ..*event });
            }
            super::actions::on_resumed(model, at);
            // The access review is asked again, as at the start.
            if super::kube_actions_bound(model) {
                super::actions::preflight(model)
            } else {
                vec![]
            }
        }
        EventKind::Tick => {
            let mut effects = super::actions::on_tick(model);
            effects.extend(super::budget::on_tick(model));
            effects
        }
        EventKind::SessionEnded { reason } => {
            model.ended = Some(reason.clone());
            vec![]
        }
        // What the screen showed, and what was in flight at the end: for
        // the replay's check and the resumed console, nothing to fold.
        EventKind::ScreenDigest { .. } | EventKind::InFlightAtEnd { .. } => vec![],
        EventKind::ReportWritten { path, error } => {
            model.report_pending = false;
            model.report = Some((path.clone(), error.clone()));
            vec![]
        }
        EventKind::InFlightOutcome {
            run,
            index,
            outcome,
            evidence,
        } => {
            super::actions::on_in_flight_found(model, *run, *index, *outcome, evidence);
            vec![]
        }
    }
}

/// One table's count on one side is known (a number or a failure).
fn count_result(model: &mut Model, run: u64, side: Side, table: &TableRef, result: ExactCount) {
    if let Some(r) = model.count_run.as_mut().filter(|r| r.id == run) {
        match side {
            Side::Source => r.done_source += 1,
            Side::Target => r.done_target += 1,
        }
    }
    *model
        .counts
        .entry(table.clone())
        .or_default()
        .side_mut(side) = result;
}

/// A table's verification says something new at `at`: its word's time.
fn set_verify(model: &mut Model, at: DateTime<Utc>, table: &TableRef, cell: VerifyCell) {
    model.verify.insert(table.clone(), cell);
    model.verify_at.insert(table.clone(), at);
}

fn push_lag(model: &mut Model, point: LagPoint) {
    if model.lag_history.len() == LAG_HISTORY {
        model.lag_history.pop_front();
    }
    model.lag_history.push_back(point);
}

/// A decision the operator made, as the log recorded it.
fn on_command(model: &mut Model, at: DateTime<Utc>, command: &SessionCommand) -> Vec<Effect> {
    match command {
        SessionCommand::Quit => {
            model.quit = true;
            model.dialog = None;
            let mut effects = cancel_running(model);
            effects.push(Effect::Quit);
            effects
        }
        SessionCommand::Open { checkpoint } => super::actions::open(model, *checkpoint),
        SessionCommand::Close => {
            model.dialog = None;
            vec![]
        }
        SessionCommand::Note { text } => {
            model.notes.push((at, text.clone()));
            vec![]
        }
        SessionCommand::Confirm {
            checkpoint,
            typed,
            reason,
            fleet,
        } => super::actions::on_confirm(model, *checkpoint, typed, reason.as_deref(), fleet),
        SessionCommand::ExactCount => start_count(model),
        SessionCommand::Verify => start_verify(model, false),
        SessionCommand::VerifyContinuous => start_verify(model, true),
        SessionCommand::Cancel => cancel_running(model),
    }
}

/// A raw key from a log written before commands were logged: read through
/// today's keymap from the main layer (those logs held no dialogs).
fn on_legacy_key(model: &mut Model, at: DateTime<Utc>, key: &str) -> Vec<Effect> {
    let mut view = super::View::default();
    match super::keymap::dispatch(model, &mut view, key) {
        Some(command) => on_command(model, at, &command),
        None => vec![],
    }
}

fn cancel_running(model: &Model) -> Vec<Effect> {
    let mut effects = Vec::new();
    if let Some(r) = model.count_run.as_ref().filter(|r| r.running()) {
        effects.push(Effect::CancelExactCount { run: r.id });
    }
    if let Some(r) = model.verify_run.as_ref().filter(|r| r.running()) {
        effects.push(Effect::CancelVerify { run: r.id });
    }
    if let Some(r) = model.actions.running() {
        effects.push(Effect::CancelRun { id: r.id });
    }
    effects
}

/// Checksums every selected table that exists on both sides, once or pass
/// after pass (`continuous`).
fn start_verify(model: &mut Model, continuous: bool) -> Vec<Effect> {
    let tables = super::verify_tables(model);
    start_verify_of(model, continuous, tables)
}

/// Checksums `tables`, once or pass after pass (`continuous`); nothing when
/// a verification runs already or there is nothing to compare.
pub(super) fn start_verify_of(
    model: &mut Model,
    continuous: bool,
    tables: Vec<TableRef>,
) -> Vec<Effect> {
    if model.verify_running() {
        return vec![];
    }
    let Some(now) = model.now.filter(|_| !tables.is_empty()) else {
        return vec![];
    };
    model.next_run += 1;
    let run = model.next_run;
    for t in &tables {
        set_verify(model, now, t, VerifyCell::Pending);
    }
    model.verify_run = Some(VerifyRun {
        id: run,
        started_at: now,
        total: tables.len(),
        done: 0,
        finished_at: None,
        cancelled: false,
        error: None,
        continuous,
        verified_once: Default::default(),
    });
    if continuous {
        vec![Effect::StartContinuousVerify { run, tables }]
    } else {
        vec![Effect::StartVerify { run, tables }]
    }
}

fn start_count(model: &mut Model) -> Vec<Effect> {
    if model.count_running() {
        return vec![];
    }
    let tables: Vec<TableRef> = super::table_rows(model)
        .into_iter()
        .map(|r| r.table)
        .collect();
    if tables.is_empty() {
        return vec![];
    }
    let Some(now) = model.now else {
        return vec![];
    };
    model.next_run += 1;
    let run = model.next_run;
    for t in &tables {
        let cell = model.counts.entry(t.clone()).or_default();
        cell.source = ExactCount::Counting;
        cell.target = ExactCount::Counting;
    }
    model.count_run = Some(CountRun {
        id: run,
        started_at: now,
        total: tables.len(),
        done_source: 0,
        done_target: 0,
        finished_at: None,
        cancelled: false,
    });
    vec![Effect::StartExactCount { run, tables }]
}

#[cfg(test)]
#[path = "update_tests.rs"]
pub(super) mod tests;
