//! The end of the walk: what stayed open closes with the log, the fold's
//! final state (runs, counts, checksums, notes) joins what the walk
//! gathered, and the outcome is judged.

use chrono::{DateTime, Utc};

use super::build::{side_index, Walk};
use super::model::*;
use super::series;
use super::tables::tables;
use crate::model::keymap::{Command, BINDINGS};
use crate::model::{CheckpointRun, Model};
use crate::runbook::CheckpointId;
use crate::session::{Event, Side};

impl Walk {
    pub(super) fn finish(mut self, model: Model, events: &[Event]) -> Report {
        let last = events.iter().map(|e| e.at).max();
        if let Some(end) = self.segments.last().map(|s| s.last) {
            for side in [Side::Source, Side::Target] {
                if let Some(o) = self.stale[side_index(side)].take() {
                    self.anomalies.push(Anomaly {
                        at: Some(o.since),
                        until: None,
                        kind: AnomalyKind::Stale,
                        text: format!(
                            "{} stale when the log ends ({} failed poll{}, first: {})",
                            side.as_str(),
                            o.failures,
                            if o.failures == 1 { "" } else { "s" },
                            o.error
                        ),
                    });
                }
            }
            self.close_kube(end, true);
        }
        if let Some(end) = last {
            for f in self.freezes.iter_mut().filter(|f| f.open) {
                f.until = end;
            }
        }
        // Writes stay frozen while the console is down: the window says
        // why it is as long as it is.
        for f in &mut self.freezes {
            for (i, s) in self.segments.iter().enumerate() {
                let next = self.segments.get(i + 1).map(|n| n.started);
                if s.last >= f.from && s.last < f.until {
                    f.console_down.push((s.last, next));
                }
            }
        }
        for ((object, reason, message), (count, seen)) in &self.warnings {
            let at = DateTime::parse_from_rfc3339(seen)
                .ok()
                .map(|t| t.with_timezone(&Utc));
            self.anomalies.push(Anomaly {
                at,
                until: None,
                kind: AnomalyKind::Kubernetes,
                text: format!("warning {reason} on {object} (×{count}): {message}"),
            });
        }
        let mut runs: Vec<RunReport> = model.actions.history.iter().map(run_report).collect();
        for (_, id, f) in std::mem::take(&mut self.left_in_flight) {
            if let Some(r) = runs.iter_mut().find(|r| r.id == id) {
                // It ran as long as the console did: the fold closes it when
                // the console is resumed, which may be hours later.
                if r.finished.is_some_and(|end| end > f.ended_at) {
                    r.finished = Some(f.ended_at.max(r.started));
                }
                r.in_flight = Some(f);
            }
        }
        for r in &runs {
            if let Some((labels, reason)) = &r.overridden {
                self.anomalies.push(Anomaly {
                    at: Some(r.started),
                    until: None,
                    kind: AnomalyKind::Override,
                    text: format!(
                        "{}: failing guards overridden ({}), reason: \"{reason}\"",
                        r.title(),
                        labels.join(", ")
                    ),
                });
            }
            if let Some(f) = &r.in_flight {
                // What the run's failure would say, said whole.
                self.anomalies.push(Anomaly {
                    at: Some(f.ended_at),
                    until: None,
                    kind: AnomalyKind::InFlight,
                    text: super::words::in_flight_anomaly(r, f),
                });
                continue;
            }
            match r.result {
                RunResult::Failed => self.anomalies.push(Anomaly {
                    at: r.finished,
                    until: None,
                    kind: AnomalyKind::Failed,
                    text: format!(
                        "{} failed: {}",
                        r.title(),
                        r.message.as_deref().unwrap_or("")
                    ),
                }),
                RunResult::Unfinished => self.anomalies.push(Anomaly {
                    at: Some(r.started),
                    until: None,
                    kind: AnomalyKind::Failed,
                    text: format!("{} has no end in the log: it was in flight", r.title()),
                }),
                RunResult::Ok => {}
            }
        }
        if let Some((at, w)) = &model.witness {
            if w.failed > 0 {
                self.anomalies.push(Anomaly {
                    at: Some(*at),
                    until: None,
                    kind: AnomalyKind::Witness,
                    text: format!(
                        "the app pods counted {} failed writes{}",
                        super::fmt::int(w.failed as i64),
                        w.failure_window_ms
                            .map(|ms| format!(
                                " (write-failure window {})",
                                super::fmt::duration_ms(ms)
                            ))
                            .unwrap_or_default()
                    ),
                });
            }
        }
        self.anomalies.sort_by_key(|a| a.at);

        let info = model.info.clone();
        let operator = info.as_ref().and_then(|i| operator(i.operator.as_ref()?));
        let endpoint = |e: Option<&crate::session::Endpoint>, v: Option<String>, hosts| {
            e.map(|e| EndpointReport {
                label: e.label.clone(),
                describe: e.describe.clone(),
                server_version: v,
                hosts,
            })
        };
        let rollouts = self
            .workloads
            .into_iter()
            .map(|((namespace, deployment), points)| Rollout {
                namespace,
                deployment,
                points: rollout_changes(points),
            })
            .collect();
        let (tables, final_checksums) = tables(&model);
        Report {
            outcome: outcome(&runs),
            tool_version: info.as_ref().map(|i| i.tool_version.clone()),
            mode: info.as_ref().map(|i| i.mode.clone()),
            config_path: info.as_ref().map(|i| i.config_path.clone()),
            config_fingerprint: info
                .as_ref()
                .and_then(|i| i.config_fingerprint.as_deref())
                .map(short_fingerprint),
            format_version: info.as_ref().map(|i| i.format_version),
            operator,
            report_written: self.report_written,
            first: events.iter().map(|e| e.at).min(),
            last,
            events: events.len(),
            segments: self.segments,
            source: endpoint(
                info.as_ref().map(|i| &i.source),
                self.source_version,
                self.source_hosts,
            ),
            target: endpoint(
                info.as_ref().map(|i| &i.target),
                self.target_version,
                self.target_hosts,
            ),
            publication: info.as_ref().map(|i| i.publication.clone()),
            subscription: info.as_ref().map(|i| i.subscription.clone()),
            slot: info.as_ref().map(|i| i.slot.clone()),
            kubernetes: info.as_ref().and_then(|i| i.kubernetes.clone()),
            budget_secs: info.as_ref().map(|i| i.freeze_budget_secs),
            runs,
            freezes: self.freezes,
            tables,
            final_checksums,
            sequences: self.sequences,
            rollouts,
            lag: self.lag,
            writes_source: series::rates(&self.writes[0]),
            writes_target: series::rates(&self.writes[1]),
            notes: model.notes.clone(),
            anomalies: self.anomalies,
            witness: model.witness.clone(),
        }
    }
}

/// Who ran the console, as the header has it (format 2 on); None when it
/// names no one.
fn operator(op: &crate::session::Operator) -> Option<Operator> {
    let text = |s: &str| Some(s.trim().to_string()).filter(|s| !s.is_empty());
    let op = Operator {
        user: text(&op.user),
        host: text(&op.host),
        ssh_client: op.ssh_client.as_deref().and_then(text),
    };
    (op.user.is_some() || op.host.is_some() || op.ssh_client.is_some()).then_some(op)
}

/// `sha256:0341c1579321`: the first 12 hex digits say which file it was.
pub(super) fn short_fingerprint(f: &str) -> String {
    match f.strip_prefix("sha256:") {
        Some(hex) => format!("sha256:{}", hex.chars().take(12).collect::<String>()),
        None => f.chars().take(19).collect(),
    }
}

fn key_of(checkpoint: CheckpointId) -> Option<&'static str> {
    BINDINGS
        .iter()
        .find(|b| b.command == Command::Open(checkpoint))
        .and_then(|b| b.keys.first().copied())
}

fn run_report(r: &CheckpointRun) -> RunReport {
    let (finished, result, message) = match &r.finished {
        Some((at, ok, m)) => (
            Some(*at),
            if *ok {
                RunResult::Ok
            } else {
                RunResult::Failed
            },
            Some(m.clone()),
        ),
        None => (None, RunResult::Unfinished, None),
    };
    let steps: Vec<StepReport> = r
        .steps
        .iter()
        .map(|s| StepReport {
            index: s.index,
            title: s.step.title(),
            lines: s.step.lines(),
            started: s.started_at,
            finished: s.finished.as_ref().map(|(at, _)| *at),
            outcome: s.finished.as_ref().map(|(_, o)| o.clone()),
            elapsed_ms: s.elapsed_ms,
        })
        .collect();
    let steps_not_run = r
        .plan
        .steps
        .iter()
        .enumerate()
        .filter(|(i, _)| !r.steps.iter().any(|s| s.index == *i))
        .map(|(i, s)| format!("step {} ({})", i + 1, s.title()))
        .collect();
    RunReport {
        id: r.id,
        checkpoint: r.checkpoint,
        key: key_of(r.checkpoint),
        phase: r.checkpoint.info().phase,
        started: r.started_at,
        finished,
        result,
        message,
        overridden: r.overridden.clone(),
        auto: r.auto.clone(),
        steps,
        steps_not_run,
        legacy: r.legacy_steps.clone(),
        checks_failed: r
            .checks
            .iter()
            .filter(|c| !c.ok)
            .map(|c| (c.name.clone(), c.observed.clone(), c.fix.clone()))
            .collect(),
        checks_total: r.checks.len(),
        in_flight: None,
    }
}

/// How it ended: the latest of the app seen on the target and a rollback
/// through decides; else the last run's failure, else unfinished.
fn outcome(runs: &[RunReport]) -> Outcome {
    let last_ok = |c: CheckpointId| {
        runs.iter()
            .rev()
            .find(|r| r.checkpoint == c && r.result == RunResult::Ok)
    };
    let app = last_ok(CheckpointId::AppOnTarget);
    let back = last_ok(CheckpointId::Rollback);
    match (app, back) {
        (Some(a), b) if b.is_none_or(|b| b.started < a.started) => {
            let finished = runs.iter().any(|r| {
                r.checkpoint == CheckpointId::DropSubscription
                    && r.result == RunResult::Ok
                    && r.started > a.started
            });
            return Outcome::Completed {
                at: a.finished.unwrap_or(a.started),
                finished,
            };
        }
        (_, Some(b)) => {
            return Outcome::RolledBack {
                at: b.finished.unwrap_or(b.started),
            }
        }
        _ => {}
    }
    match runs.last() {
        Some(r) if r.result == RunResult::Failed => Outcome::Failed {
            checkpoint: r.checkpoint,
            at: r.finished.unwrap_or(r.started),
            message: r.message.clone().unwrap_or_default(),
        },
        last => Outcome::Unfinished {
            last_passed: runs
                .iter()
                .rev()
                .find(|r| r.result == RunResult::Ok)
                .map(|r| r.checkpoint),
            in_flight: last
                .filter(|r| r.result == RunResult::Unfinished)
                .map(|r| r.checkpoint),
        },
    }
}

/// Changes only: repeats left out, and what a watch shows for a moment —
/// a Deployment "not found" while the watch (re)starts, pods not listed
/// yet, pods whose config is not known yet (`?`).
fn rollout_changes(points: Vec<RolloutPoint>) -> Vec<RolloutPoint> {
    let word = |s: &str| s.split(':').next().unwrap_or("").to_string();
    let counts = |p: &RolloutPoint| (p.found, p.desired, p.updated, p.ready, word(&p.state));
    let known = |p: &RolloutPoint| {
        let mut m = p.by_config.clone();
        m.remove("?");
        m
    };
    let mut out: Vec<RolloutPoint> = Vec::new();
    for (i, p) in points.iter().enumerate() {
        let mut next = points[i + 1..].iter();
        let within_5s = |q: &&RolloutPoint| (q.at - p.at).num_seconds() < 5;
        if !p.found && next.clone().take_while(within_5s).any(|q| q.found) {
            continue;
        }
        if p.found
            && p.by_config.is_empty()
            && p.ready > 0
            && next.any(|q| within_5s(&q) && !q.by_config.is_empty())
        {
            continue;
        }
        let same = out
            .last()
            .is_some_and(|q| counts(q) == counts(p) && known(q) == known(p));
        if !same {
            out.push(p.clone());
        }
    }
    out
}
