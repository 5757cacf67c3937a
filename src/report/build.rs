//! Events → [`Report`]: the same fold the console uses gives the final state
//! (runs, counts, checksums, notes); a walk over the events beside it gives
//! what the fold keeps no history of (the freeze window's milestones, lag
//! and writes over time, the rollout, stale periods, resumes). The walk's
//! end is in `assemble`.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use super::model::*;
use super::series::Series;
use crate::kube::{RolloutState, WorkloadSnapshot};
use crate::model::keymap::SessionCommand;
use crate::model::{self, CheckpointRun, Model};
use crate::runbook::{CheckpointId, Step};
use crate::session::{Event, EventKind, Side};

/// The report of a session, from its events alone. Pure: no IO, no clock.
pub fn build(events: &[Event]) -> Report {
    let mut model = Model::default();
    let mut walk = Walk::default();
    for event in events {
        let _ = model::update(&mut model, event);
        walk.event(&model, event);
    }
    walk.finish(model, events)
}

/// A period that opened and may have closed: a stale side, Kubernetes unreachable.
pub(super) struct Open {
    pub(super) since: DateTime<Utc>,
    pub(super) error: String,
    pub(super) failures: usize,
}

impl Open {
    /// `<what> for 2.1 s (until the console stopped): 3 <failure>s, first: …`
    fn said(&self, what: &str, failure: &str, until: DateTime<Utc>, session_end: bool) -> String {
        format!(
            "{what} for {}{}: {} {failure}{}, first: {}",
            super::fmt::duration_ms((until - self.since).num_milliseconds()),
            if session_end {
                " (until the console stopped)"
            } else {
                ""
            },
            self.failures,
            if self.failures == 1 { "" } else { "s" },
            self.error
        )
    }
}

#[derive(Default)]
pub(super) struct Walk {
    pub(super) segments: Vec<Segment>,
    pub(super) source_version: Option<String>,
    pub(super) target_version: Option<String>,
    pub(super) source_hosts: Vec<String>,
    pub(super) target_hosts: Vec<String>,
    /// Collector connections per side in the current segment.
    pub(super) connects: [usize; 2],
    pub(super) stale: [Option<Open>; 2],
    pub(super) kube_down: Option<Open>,
    pub(super) lag: Vec<LagPoint>,
    pub(super) writes: [Series; 2],
    pub(super) workloads: BTreeMap<(String, String), Vec<RolloutPoint>>,
    pub(super) warnings: BTreeMap<(String, String, String), (i32, String)>,
    pub(super) freezes: Vec<FreezeWindow>,
    pub(super) sequences: Vec<SequenceReport>,
    pub(super) anomalies: Vec<Anomaly>,
    /// Runs the fold had before this event: a confirmation that starts none was refused.
    pub(super) runs_seen: usize,
    /// The run in flight before this event, and its step in flight (index, title).
    pub(super) running: Option<(u64, Option<(usize, String)>)>,
    /// Runs a session end left in flight: the segment that ended, the run, and what is known.
    pub(super) left_in_flight: Vec<(usize, u64, InFlightReport)>,
    /// The report the console wrote: when, where, why not.
    pub(super) report_written: Option<(DateTime<Utc>, String, Option<String>)>,
}

pub(super) fn side_index(side: Side) -> usize {
    match side {
        Side::Source => 0,
        Side::Target => 1,
    }
}

fn run(model: &Model, id: u64) -> Option<&CheckpointRun> {
    model.actions.history.iter().find(|r| r.id == id)
}

impl Walk {
    pub(super) fn anomaly(&mut self, at: DateTime<Utc>, kind: AnomalyKind, text: String) {
        self.anomalies.push(Anomaly {
            at: Some(at),
            until: None,
            kind,
            text,
        });
    }

    fn event(&mut self, model: &Model, event: &Event) {
        let at = event.at;
        if !matches!(
            event.kind,
            EventKind::SessionStarted(_) | EventKind::SessionResumed { .. }
        ) && self.segments.is_empty()
        {
            // A log without its header: the report still reads it.
            self.new_segment(at, false, "unknown".into(), false);
        }
        match &event.kind {
            EventKind::SessionStarted(info) => {
                self.new_segment(at, false, info.tool_version.clone(), info.read_only)
            }
            EventKind::SessionResumed {
                previous_last_at,
                cut_bytes,
                tool_version,
                read_only,
                ..
            } => {
                let crashed = self.segments.last().is_some_and(|s| s.ended.is_none());
                // The run the console left in flight (the fold has closed it by now).
                if let Some((run, step)) = self.running.clone() {
                    let (last, ended) = self
                        .segments
                        .last()
                        .map_or((*previous_last_at, None), |s| (s.last, s.ended.clone()));
                    let f = self.left(run, step, last);
                    f.resumed = Some(at);
                    if f.ended.is_none() {
                        f.ended = ended;
                    }
                }
                let mut text = format!(
                    "the console was resumed on the log (cutover {tool_version}{}), {} after its \
                     previous event at {}",
                    if *read_only { ", read-only" } else { "" },
                    super::fmt::duration_ms((at - *previous_last_at).num_milliseconds()),
                    super::fmt::clock(*previous_last_at)
                );
                if crashed {
                    text.push_str("; the session before it ended without a word (a crash or a lost connection)");
                }
                if *cut_bytes > 0 {
                    text.push_str(&format!(
                        "; a torn last line of {cut_bytes} bytes was cut off"
                    ));
                }
                self.anomaly(at, AnomalyKind::Resume, text);
                self.new_segment(at, true, tool_version.clone(), *read_only);
            }
            EventKind::SessionEnded { reason } => {
                if let Some(s) = self.segments.last_mut() {
                    s.ended = Some(reason.clone());
                }
                if let Some((run, step)) = self.running.clone() {
                    let f = self.left(run, step, at);
                    f.ended = Some(reason.clone());
                    f.ended_at = at;
                }
            }
            EventKind::InFlightAtEnd { run, step, .. } => {
                // The fold's record of the step names it by its place in
                // the plan; the event's is the fallback.
                let step = match &self.running {
                    Some((id, s)) if id == run => s.clone(),
                    _ => step.as_ref().map(|(i, s)| (*i, s.title())),
                };
                self.left(*run, step, at);
            }
            EventKind::InFlightOutcome {
                run: id,
                index,
                outcome,
                evidence,
            } => {
                let step = run(model, *id)
                    .and_then(|r| r.steps.iter().find(|s| s.index == *index))
                    .map(|s| (s.index, s.step.title()));
                let known = self.left_in_flight.iter().rposition(|(_, r, _)| r == id);
                let i = match known {
                    Some(i) => i,
                    None => {
                        // No end was seen with it in flight: the segment
                        // before the resume left it.
                        let segment = self.segments.len().saturating_sub(2);
                        let last = self.segments.get(segment).map_or(at, |s| s.last);
                        self.left_in_flight.push((
                            segment,
                            *id,
                            InFlightReport {
                                step: step.clone(),
                                ended_at: last,
                                ended: self.segments.get(segment).and_then(|s| s.ended.clone()),
                                resumed: self
                                    .segments
                                    .last()
                                    .filter(|s| s.resumed)
                                    .map(|s| s.started),
                                found: None,
                            },
                        ));
                        self.left_in_flight.len() - 1
                    }
                };
                let f = &mut self.left_in_flight[i].2;
                f.found = Some((at, *outcome, evidence.clone()));
                if f.step.is_none() {
                    f.step = step;
                }
            }
            EventKind::ReportWritten { path, error } => {
                self.report_written = Some((at, path.clone(), error.clone()));
                if let Some(e) = error {
                    self.anomaly(
                        at,
                        AnomalyKind::Failed,
                        format!("the migration report could not be written to {path}: {e}"),
                    );
                }
            }
            EventKind::SourceSampled(sample) => {
                self.source_version
                    .get_or_insert_with(|| sample.server_version.clone());
                self.good_sample(Side::Source, at);
                self.writes[0].push(at, sample.rows_written);
                let slot_name = model.info.as_ref().map(|i| i.slot.as_str());
                let slot = sample
                    .slots
                    .iter()
                    .find(|s| Some(s.name.as_str()) == slot_name);
                match slot {
                    Some(s) => self.lag.push(LagPoint {
                        at,
                        bytes: s.lag_bytes,
                        active: s.active,
                    }),
                    None => self.lag_gap(at),
                }
            }
            EventKind::TargetSampled(sample) => {
                self.target_version
                    .get_or_insert_with(|| sample.server_version.clone());
                self.good_sample(Side::Target, at);
                self.writes[1].push(at, sample.rows_written);
            }
            EventKind::CollectorConnected {
                side,
                endpoint,
                host_index,
                hosts,
            } => self.connected(at, *side, endpoint, *host_index, *hosts),
            EventKind::CollectorFailed { side, error } => {
                let open = &mut self.stale[side_index(*side)];
                match open {
                    Some(o) => o.failures += 1,
                    None => {
                        *open = Some(Open {
                            since: at,
                            error: error.clone(),
                            failures: 1,
                        })
                    }
                }
                self.writes[side_index(*side)].gap(at);
                if *side == Side::Source {
                    self.lag_gap(at);
                }
            }
            EventKind::KubeFailed { error } => match &mut self.kube_down {
                Some(o) => o.failures += 1,
                None => {
                    self.kube_down = Some(Open {
                        since: at,
                        error: error.clone(),
                        failures: 1,
                    })
                }
            },
            EventKind::KubeAlive => self.kube_back(at),
            EventKind::WorkloadSampled(w) => {
                self.kube_back(at);
                self.workload(at, w);
            }
            EventKind::FreezeGrants {
                side,
                roles,
                grants,
                read_only_role,
                ..
            } => {
                self.freeze_grants(model, at, *side, roles, grants.len());
                if let Some(f) = self.open_freeze(*side) {
                    f.read_only_role.clone_from(read_only_role);
                }
            }
            EventKind::WritesFrozen { side, lsn, .. } => {
                if let Some(f) = self.open_freeze(*side) {
                    f.proven = Some((at, lsn.clone()));
                }
            }
            EventKind::WritesUnfrozen { side, .. } => {
                if let Some(f) = self.open_freeze(*side) {
                    f.unfrozen = Some(at);
                    f.until = at;
                    f.open = false;
                }
            }
            EventKind::BudgetExceeded {
                budget_secs,
                action,
            } => {
                if let Some(f) = self.open_freeze(Side::Source) {
                    f.budget_exceeded.get_or_insert(at);
                }
                self.anomaly(
                    at,
                    AnomalyKind::Budget,
                    format!(
                        "the write freeze passed its {budget_secs} s budget \
                         (on_budget_exceeded = \"{}\")",
                        action.as_str()
                    ),
                );
            }
            EventKind::RunFinished {
                id, ok, switched, ..
            } => self.run_finished(model, at, *id, *ok, switched.as_ref()),
            EventKind::SequencesAdvanced { id, sequences } => {
                let side = run(model, *id)
                    .and_then(|r| {
                        r.steps.iter().find_map(|s| match &s.step {
                            Step::AdvanceSequences { to, .. } => Some(*to),
                            _ => None,
                        })
                    })
                    .unwrap_or(Side::Target);
                self.sequences
                    .extend(sequences.iter().map(|s| SequenceReport {
                        run: *id,
                        at,
                        side,
                        name: s.name.clone(),
                        source: s.source,
                        before: s.target_before,
                        set_to: s.set_to,
                    }));
            }
            EventKind::Command(SessionCommand::Confirm { checkpoint, .. })
                if model.actions.history.len() == self.runs_seen =>
            {
                self.refused(model, at, *checkpoint)
            }
            EventKind::CountFailed {
                side, table, error, ..
            } => self.anomaly(
                at,
                AnomalyKind::Failed,
                format!(
                    "exact count on the {}{} failed: {error}",
                    side.as_str(),
                    table
                        .as_ref()
                        .map(|t| format!(" of {t}"))
                        .unwrap_or_default()
                ),
            ),
            EventKind::VerifyFinished {
                error: Some(error), ..
            } => self.anomaly(
                at,
                AnomalyKind::Failed,
                format!("checksum verification stopped: {error}"),
            ),
            _ => {}
        }
        if let Some(s) = self.segments.last_mut() {
            s.last = s.last.max(at);
        }
        self.runs_seen = model.actions.history.len();
        self.running = model.actions.running().map(|r| {
            let step = r.steps.iter().rev().find(|s| s.finished.is_none());
            (r.id, step.map(|s| (s.index, s.step.title())))
        });
    }

    /// The record of `run` left in flight by the current segment's end,
    /// made when the first sign of that end is seen.
    fn left(
        &mut self,
        run: u64,
        step: Option<(usize, String)>,
        at: DateTime<Utc>,
    ) -> &mut InFlightReport {
        let segment = self.segments.len().saturating_sub(1);
        let known = self
            .left_in_flight
            .iter()
            .position(|(s, r, _)| *s == segment && *r == run);
        let i = known.unwrap_or_else(|| {
            self.left_in_flight.push((
                segment,
                run,
                InFlightReport {
                    step,
                    ended_at: at,
                    ended: None,
                    resumed: None,
                    found: None,
                },
            ));
            self.left_in_flight.len() - 1
        });
        &mut self.left_in_flight[i].2
    }

    /// The operator confirmed a checkpoint and it did not start: its guards
    /// failed (as the fold judged them then) or the confirmation did not match.
    fn refused(&mut self, model: &Model, at: DateTime<Utc>, checkpoint: CheckpointId) {
        let failing: Vec<String> = crate::runbook::failing(model, checkpoint)
            .iter()
            .map(crate::runbook::Guard::said)
            .collect();
        let why = if failing.is_empty() {
            "the confirmation typed did not match, or another run was in progress".to_string()
        } else {
            format!("guards failing: {}", failing.join("; "))
        };
        self.anomaly(
            at,
            AnomalyKind::Failed,
            format!(
                "\"{}\" confirmed but not started: {why}",
                checkpoint.title()
            ),
        );
    }

    fn new_segment(&mut self, at: DateTime<Utc>, resumed: bool, tool_version: String, ro: bool) {
        // What was open when the console stopped closes with it.
        let end = self.segments.last().map(|s| s.last);
        if let Some(end) = end {
            for side in [Side::Source, Side::Target] {
                self.close_stale(side, end, true);
            }
            self.close_kube(end, true);
            self.lag_gap(at);
            self.writes[0].gap(at);
            self.writes[1].gap(at);
        }
        self.connects = [0, 0];
        self.segments.push(Segment {
            started: at,
            resumed,
            tool_version,
            read_only: ro,
            last: at,
            ended: None,
        });
    }

    fn lag_gap(&mut self, at: DateTime<Utc>) {
        if self.lag.last().is_some_and(|p| p.bytes.is_some()) {
            self.lag.push(LagPoint {
                at,
                bytes: None,
                active: false,
            });
        }
    }

    fn good_sample(&mut self, side: Side, at: DateTime<Utc>) {
        self.close_stale(side, at, false);
    }

    fn close_stale(&mut self, side: Side, until: DateTime<Utc>, session_end: bool) {
        let Some(o) = self.stale[side_index(side)].take() else {
            return;
        };
        self.anomalies.push(Anomaly {
            at: Some(o.since),
            until: Some(until),
            kind: AnomalyKind::Stale,
            text: o.said(
                &format!("{} stale", side.as_str()),
                "failed poll",
                until,
                session_end,
            ),
        });
    }

    fn kube_back(&mut self, at: DateTime<Utc>) {
        self.close_kube(at, false);
    }

    pub(super) fn close_kube(&mut self, until: DateTime<Utc>, session_end: bool) {
        let Some(o) = self.kube_down.take() else {
            return;
        };
        self.anomalies.push(Anomaly {
            at: Some(o.since),
            until: Some(until),
            kind: AnomalyKind::Kubernetes,
            text: o.said("Kubernetes unreachable", "failure", until, session_end),
        });
    }

    fn connected(&mut self, at: DateTime<Utc>, side: Side, endpoint: &str, index: usize, n: usize) {
        let hosts = match side {
            Side::Source => &mut self.source_hosts,
            Side::Target => &mut self.target_hosts,
        };
        if n > 1 && !hosts.iter().any(|h| h == endpoint) {
            hosts.push(endpoint.to_string());
        }
        let count = &mut self.connects[side_index(side)];
        *count += 1;
        if *count > 1 {
            let which = if n > 1 {
                format!(" (host {} of {n})", index + 1)
            } else {
                String::new()
            };
            self.anomaly(
                at,
                AnomalyKind::Reconnect,
                format!(
                    "{} collector reconnected to {endpoint}{which}",
                    side.as_str()
                ),
            );
        }
    }

    fn workload(&mut self, at: DateTime<Utc>, w: &WorkloadSnapshot) {
        for e in &w.warnings {
            let key = (e.object.clone(), e.reason.clone(), e.message.clone());
            let entry = self.warnings.entry(key).or_insert((0, e.last_seen.clone()));
            entry.0 = entry.0.max(e.count);
            entry.1 = e.last_seen.clone();
        }
        let state = match &w.state {
            RolloutState::Pending => "pending".to_string(),
            RolloutState::Progressing { message } => format!("progressing: {message}"),
            RolloutState::Complete => "complete".to_string(),
            RolloutState::DeadlineExceeded { message } => format!("deadline exceeded: {message}"),
        };
        self.workloads
            .entry((w.namespace.clone(), w.deployment.clone()))
            .or_default()
            .push(RolloutPoint {
                at,
                found: w.found,
                desired: w.desired,
                updated: w.updated,
                ready: w.ready,
                available: w.available,
                state,
                by_config: w.pods_by_db_config.clone(),
            });
    }

    fn open_freeze(&mut self, side: Side) -> Option<&mut FreezeWindow> {
        self.freezes
            .iter_mut()
            .rev()
            .find(|f| f.side == side && f.open)
    }

    fn freeze_grants(
        &mut self,
        model: &Model,
        at: DateTime<Utc>,
        side: Side,
        roles: &[String],
        privileges: usize,
    ) {
        if let Some(f) = self.open_freeze(side) {
            // Frozen again before the way back: the same window goes on.
            f.privileges = f.privileges.max(privileges);
            f.proven = None;
            return;
        }
        self.freezes.push(FreezeWindow {
            side,
            roles: roles.to_vec(),
            privileges,
            from: at,
            proven: None,
            switched: None,
            read_only_role: None,
            app_on_target: None,
            unfrozen: None,
            until: at,
            open: true,
            budget_secs: model.info.as_ref().map_or(60, |i| i.freeze_budget_secs),
            budget_exceeded: None,
            console_down: vec![],
        });
    }

    fn run_finished(
        &mut self,
        model: &Model,
        at: DateTime<Utc>,
        id: u64,
        ok: bool,
        switched: Option<&crate::session::SwitchRecord>,
    ) {
        let Some(r) = run(model, id) else {
            return;
        };
        let (checkpoint, started) = (r.checkpoint, r.started_at);
        // The freeze by read-only role's own switch is not the app's move.
        let moves_app = !matches!(
            checkpoint,
            CheckpointId::Rollback | CheckpointId::FreezeWrites
        );
        if switched.is_some_and(|s| s.changed) && moves_app {
            if let Some(f) = self.open_freeze(Side::Source) {
                f.switched.get_or_insert(at);
            }
        }
        if ok && checkpoint == CheckpointId::AppOnTarget {
            // The window closes when the check started watching, as the
            // console's timer counts it.
            if let Some(f) = self.open_freeze(Side::Source).filter(|f| started >= f.from) {
                f.app_on_target = Some(started);
                f.until = started;
                f.open = false;
            }
        }
        if checkpoint == CheckpointId::Rollback {
            // A rollback after the switch froze the target: the app is back
            // on the source once the rollback is through.
            if let Some(f) = self.open_freeze(Side::Target) {
                f.until = at;
                f.open = false;
            }
        }
    }
}
