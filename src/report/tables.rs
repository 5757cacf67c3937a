//! Per table: the exact counts on each side and the checksum verdict —
//! the final check's where it ran, else the latest verification's.

use super::model::*;
use crate::model::{ExactCount, Model, VerifyCell};
use crate::runbook::Step;
use crate::session::TableRef;
use crate::verify::{DiffKind, RowDifference, TableStatus};

pub(super) fn diff_line(d: &RowDifference) -> String {
    match d.kind {
        DiffKind::MissingOnTarget => format!("missing on target: {}", d.key),
        DiffKind::ExtraOnTarget => format!("extra on target: {}", d.key),
        DiffKind::Changed => format!("changed: {} [{}]", d.key, d.columns.join(", ")),
    }
}

/// Every table the session counted, verified or sampled, with its exact
/// counts and checksum verdict; and the final check's verdict.
pub(super) fn tables(model: &Model) -> (Vec<TableReport>, Option<Verdict>) {
    let mut names: std::collections::BTreeSet<TableRef> = model.counts.keys().cloned().collect();
    names.extend(model.verify.keys().cloned());
    if let Some(s) = &model.source.last {
        names.extend(s.tables.iter().map(|t| t.table.clone()));
    }
    // The latest final checksum pass that ended.
    let last_final = model.actions.history.iter().rev().find_map(|r| {
        r.steps
            .iter()
            .rev()
            .find_map(|s| match (&s.step, &s.finished) {
                (Step::VerifyFinal { tables }, Some((at, outcome))) => {
                    Some((tables.clone(), *at, outcome.clone()))
                }
                _ => None,
            })
    });
    if let Some((t, ..)) = &last_final {
        names.extend(t.iter().cloned());
    }
    let count = |c: &ExactCount| match c {
        ExactCount::Counted { rows, at, .. } => Count::Rows(*rows, *at),
        ExactCount::Failed(e) => Count::Failed(e.clone()),
        _ => Count::None,
    };
    let out = names
        .into_iter()
        .map(|table| {
            let counts = model.counts.get(&table);
            let (mut checksum, differences, more) = from_cell(model.verify.get(&table));
            if let Some((tables, at, outcome)) = &last_final {
                if tables.contains(&table) {
                    let when = format!("final check {}", super::fmt::clock(*at));
                    match outcome {
                        Ok(_) => checksum = Checksum::Equal(when),
                        Err(e) => {
                            let prefix = format!("{table}: ");
                            let named: Vec<&str> = e
                                .split("; ")
                                .filter_map(|part| part.strip_prefix(&prefix))
                                .collect();
                            let any_named = tables
                                .iter()
                                .any(|t| e.split("; ").any(|p| p.starts_with(&format!("{t}: "))));
                            if !named.is_empty() {
                                checksum =
                                    Checksum::Differ(format!("{when}: {}", named.join("; ")));
                            } else if any_named {
                                checksum = Checksum::Equal(when);
                            }
                        }
                    }
                }
            }
            TableReport {
                source: counts.map_or(Count::None, |c| count(&c.source)),
                target: counts.map_or(Count::None, |c| count(&c.target)),
                table,
                checksum,
                differences,
                differences_more: more,
            }
        })
        .collect();
    (out, last_final.map(|(_, at, o)| (at, o)))
}

fn from_cell(cell: Option<&VerifyCell>) -> (Checksum, Vec<String>, u64) {
    match cell {
        None | Some(VerifyCell::Pending) => (Checksum::NotVerified, vec![], 0),
        Some(VerifyCell::Running(p)) => (
            Checksum::Incomplete(format!(
                "{}/{} ranges checked when it stopped",
                p.ranges_done, p.ranges_total
            )),
            vec![],
            0,
        ),
        Some(VerifyCell::Done(v)) => {
            let diffs: Vec<String> = v.differences.iter().map(diff_line).collect();
            let more = v.differences_total.saturating_sub(diffs.len() as u64);
            let c = match v.status {
                TableStatus::Clean => Checksum::Equal(format!(
                    "one-shot check, {} ranges",
                    super::fmt::int(v.ranges_checked as i64)
                )),
                TableStatus::Mismatch => Checksum::Differ(format!(
                    "{} rows differ (one-shot check)",
                    super::fmt::int(v.differences_total as i64)
                )),
                TableStatus::Error => {
                    Checksum::Error(v.error.clone().unwrap_or_else(|| "error".into()))
                }
                TableStatus::Cancelled => Checksum::Incomplete("cancelled".into()),
            };
            (c, diffs, more)
        }
        Some(VerifyCell::Live(p)) => {
            let diffs: Vec<String> = p.differences.iter().map(diff_line).collect();
            let c = if p.ranges_mismatched > 0 {
                Checksum::Differ(format!(
                    "{} of {} ranges differ (live, pass {})",
                    p.ranges_mismatched, p.ranges_total, p.pass
                ))
            } else if p.ranges_total > 0 && p.ranges_verified == p.ranges_total {
                Checksum::Equal(format!(
                    "verified live, {} range{} (pass {})",
                    p.ranges_total,
                    if p.ranges_total == 1 { "" } else { "s" },
                    p.pass
                ))
            } else {
                Checksum::Incomplete(format!(
                    "live: {}/{} ranges verified, {} pending",
                    p.ranges_verified, p.ranges_total, p.ranges_pending
                ))
            };
            (c, diffs, 0)
        }
    }
}
