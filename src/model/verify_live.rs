//! The verify-live checkpoint in the model: its one step is the continuous
//! verification, started through the same effect as any verification; the
//! step ends when every table has been verified once (every key range
//! equal at its latest check), or fails at the first confirmed difference
//! or when the verification stops short. Folded from the verification's own
//! events, so a replay ends it at the same event.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};

use super::{Effect, Model, VerifyCell};
use crate::runbook::{CheckpointId, Step};
use crate::session::sample::TableRef;

/// The tables a verification compares: selected and present on both sides.
pub fn verify_tables(model: &Model) -> Vec<TableRef> {
    super::table_rows(model)
        .into_iter()
        .filter(|r| r.source_estimate.is_some() && r.target_estimate.is_some())
        .map(|r| r.table)
        .collect()
}

/// "public.orders: 2 ranges differ" for each table with a confirmed difference.
pub fn verify_differences(model: &Model) -> Vec<String> {
    model
        .verify
        .iter()
        .filter_map(|(t, cell)| match cell {
            VerifyCell::Live(p) if p.ranges_mismatched > 0 => Some(format!(
                "{t}: {} range{} differ{}",
                p.ranges_mismatched,
                if p.ranges_mismatched == 1 { "" } else { "s" },
                if p.ranges_mismatched == 1 { "s" } else { "" }
            )),
            VerifyCell::Done(v) if v.status == crate::verify::TableStatus::Mismatch => Some(
                format!("{t}: {} rows differ (one-shot check)", v.differences_total),
            ),
            _ => None,
        })
        .collect()
}

/// Tables verified once by the running (or last) verification, of how many.
pub fn verified_once(model: &Model) -> (usize, usize) {
    model
        .verify_run
        .as_ref()
        .map_or((0, 0), |r| (r.verified_once.len(), r.total))
}

/// A table is verified once every one of its key ranges matched at its
/// latest check, with nothing pending.
fn complete(p: &crate::verify::ContinuousProgress) -> bool {
    p.ranges_total > 0 && p.ranges_pending == 0 && p.ranges_mismatched == 0
}

/// Latches the tables of the running verification verified once.
pub fn latch(model: &mut Model) {
    let done: BTreeSet<TableRef> = model
        .verify
        .iter()
        .filter_map(|(t, c)| match c {
            VerifyCell::Live(p) if complete(p) => Some(t.clone()),
            _ => None,
        })
        .collect();
    if let Some(r) = model.verify_run.as_mut().filter(|r| r.running()) {
        r.verified_once.extend(done);
    }
}

/// The running verify-live run, and whether its step is still open.
fn open_run(model: &Model) -> Option<u64> {
    model
        .actions
        .running()
        .filter(|r| r.checkpoint == CheckpointId::VerifyLive)
        .map(|r| r.id)
}

/// The run `id` of the checkpoint starts: its step starts the verification.
pub fn start(model: &mut Model, id: u64, at: DateTime<Utc>, step: &Step) -> Vec<Effect> {
    let Step::VerifyLive { tables } = step else {
        return vec![];
    };
    let effects = super::update::start_verify_of(model, true, tables.clone());
    super::actions::on_step_started(model, id, at, 0, step);
    if effects.is_empty() {
        end(
            model,
            id,
            at,
            Err("the verification could not start: no table to compare".into()),
        );
    }
    effects
}

fn end(model: &mut Model, id: u64, at: DateTime<Utc>, outcome: Result<String, String>) {
    let elapsed = model
        .actions
        .history
        .iter()
        .find(|r| r.id == id)
        .and_then(|r| r.steps.first())
        .map_or(0.0, |s| (at - s.started_at).num_milliseconds() as f64);
    let (ok, message) = match &outcome {
        Ok(m) => (true, m.clone()),
        Err(e) => (false, format!("step 1 (verify while live): {e}")),
    };
    super::actions::on_step_ended(model, id, at, 0, outcome, elapsed);
    super::actions::on_finished(model, id, at, ok, &message, None);
}

/// After each live progress event: done when every table is verified once,
/// failed at the first confirmed difference.
pub fn on_progress(model: &mut Model, at: DateTime<Utc>) {
    latch(model);
    let Some(id) = open_run(model) else {
        return;
    };
    let differing = verify_differences(model);
    if !differing.is_empty() {
        end(
            model,
            id,
            at,
            Err(format!("rows differ: {}", differing.join("; "))),
        );
        return;
    }
    let (done, total) = verified_once(model);
    if total > 0 && done == total {
        let rows: u64 = model
            .verify
            .values()
            .filter_map(|c| match c {
                VerifyCell::Live(p) => Some(p.rows_verified),
                _ => None,
            })
            .sum();
        end(
            model,
            id,
            at,
            Ok(format!(
                "every table verified once: {total} tables, {} rows equal; verification goes on",
                crate::ui::fmt::int(rows as i64)
            )),
        );
    }
}

/// The verification stopped (cancelled, failed) before every table was
/// verified once: the step fails and says why.
pub fn on_verify_finished(model: &mut Model, at: DateTime<Utc>) {
    let Some(id) = open_run(model) else {
        return;
    };
    let (done, total) = verified_once(model);
    let why = match model.verify_run.as_ref() {
        Some(r) if r.cancelled => "cancelled".to_string(),
        Some(r) => r.error.clone().unwrap_or_else(|| "stopped".into()),
        None => "stopped".into(),
    };
    end(
        model,
        id,
        at,
        Err(format!(
            "the verification ended ({why}) with {done} of {total} tables verified"
        )),
    );
}
