//! Read-only views of the model, shared by the screen and (later) the report.

use chrono::{DateTime, Utc};

use super::{ExactCount, Model, SideState, VerifyCell};
use crate::session::sample::{Side, SlotRow, SubTableRow, TableRef};
use crate::verify::{ContinuousProgress, DiffKind, RowDifference, TableStatus};

/// Whether a side's data is trustworthy at the model's "now".
/// `Some(t)`: stale since `t` (last good sample, or first failure if never good).
pub fn stale_since<S>(
    side: &SideState<S>,
    now: Option<DateTime<Utc>>,
    stale_after_s: f64,
) -> Option<DateTime<Utc>> {
    if let Some((since, _)) = &side.failing {
        return Some(side.last_ok.unwrap_or(*since));
    }
    let (Some(now), Some(ok)) = (now, side.last_ok) else {
        return None;
    };
    let age = (now - ok).num_milliseconds() as f64 / 1000.0;
    (age > stale_after_s).then_some(ok)
}

/// Whether the Kubernetes side's data is stale, since when and why. The
/// watches are quiet while nothing changes, so liveness comes from the
/// runtime's probe (`KubeAlive`) as well as from watch events.
pub fn kube_stale(model: &Model) -> Option<(DateTime<Utc>, String)> {
    if let Some((since, e)) = &model.kube.failing {
        return Some((model.kube.last_ok.unwrap_or(*since), e.clone()));
    }
    let limit = model.info.as_ref()?.stale_after_seconds;
    let since = stale_since(&model.kube, model.now, limit)?;
    Some((
        since,
        format!("no answer from the Kubernetes API for over {limit} s"),
    ))
}

#[derive(Debug, Clone, PartialEq)]
pub struct LagSummary<'a> {
    /// The subscription's slot on the source, if it exists.
    pub slot: Option<&'a SlotRow>,
    pub lag_bytes: Option<i64>,
    /// From `pg_stat_replication` (the walsender serving the subscription).
    pub write_lag_ms: Option<f64>,
    pub flush_lag_ms: Option<f64>,
    pub replay_lag_ms: Option<f64>,
    pub over_bytes: bool,
    pub over_time: bool,
}

pub fn lag_summary(model: &Model) -> Option<LagSummary<'_>> {
    let info = model.info.as_ref()?;
    let src = model.source.last.as_ref()?;
    let slot = src.slots.iter().find(|s| s.name == info.slot);
    let sender = src
        .senders
        .iter()
        .find(|s| s.application_name == info.subscription);
    let lag_bytes = slot.and_then(|s| s.lag_bytes);
    let flush = sender.and_then(|s| s.flush_lag_ms);
    Some(LagSummary {
        slot,
        lag_bytes,
        write_lag_ms: sender.and_then(|s| s.write_lag_ms),
        flush_lag_ms: flush,
        replay_lag_ms: sender.and_then(|s| s.replay_lag_ms),
        over_bytes: lag_bytes.is_some_and(|b| b > info.max_lag_bytes),
        over_time: flush.is_some_and(|ms| ms / 1000.0 > info.max_lag_seconds),
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowState {
    /// Only statistics so far.
    Estimated,
    Counting,
    /// Exact counts equal on both sides.
    ExactMatch,
    /// Exact counts differ while replication had not caught up (slot lag
    /// > 0 when both were taken): the difference may be rows in flight.
    InFlight,
    /// Exact counts differ at lag 0 (or lag unknown).
    ExactMismatch,
    /// The table is selected on the source but absent on the target.
    MissingOnTarget,
    Failed,
    /// Checksum verification queued or running.
    Verifying,
    /// Every row's hash equal on both sides, at the time of the check.
    ChecksumVerified,
    ChecksumMismatch,
    /// Ranges differed while rows were changing, but no row differed on re-check:
    /// nothing is proven either way.
    ChecksumUnstable,
}

impl RowState {
    /// The two sides differ: in count, by a missing table, or in rows.
    pub fn differs(self) -> bool {
        matches!(
            self,
            RowState::ExactMismatch | RowState::MissingOnTarget | RowState::ChecksumMismatch
        )
    }

    /// The two sides agree, by exact count or by checksum.
    pub fn agrees(self) -> bool {
        matches!(self, RowState::ExactMatch | RowState::ChecksumVerified)
    }

    pub fn label(self) -> &'static str {
        match self {
            RowState::Estimated => "estimated",
            RowState::Counting => "counting",
            RowState::ExactMatch => "exact match",
            RowState::InFlight => "in flight",
            RowState::ExactMismatch => "MISMATCH",
            RowState::MissingOnTarget => "missing on target",
            RowState::Failed => "failed",
            RowState::Verifying => "verifying",
            RowState::ChecksumVerified => "checksum verified",
            RowState::ChecksumMismatch => "rows differ",
            RowState::ChecksumUnstable => "changed mid-check",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct TableRow {
    pub table: TableRef,
    pub source_estimate: Option<i64>,
    pub target_estimate: Option<i64>,
    pub source_exact: Option<i64>,
    pub target_exact: Option<i64>,
    /// target − source, from exact counts when both exist, else from estimates.
    pub diff: Option<i64>,
    pub diff_is_exact: bool,
    /// A newer checksum result speaks for the table: the exact count (and
    /// its difference) is the older word.
    pub count_superseded: bool,
    pub state: RowState,
    /// Initial-sync state on the subscriber (`r`eady, `d`ata copy, …), if subscribed.
    pub sync_state: Option<String>,
    /// Rows copied so far by a running initial-sync COPY.
    pub copy_tuples: Option<i64>,
    pub has_primary_key: Option<bool>,
    pub error: Option<String>,
    /// Verification in a few words: progress, or which rows differ.
    pub verify_detail: Option<String>,
    /// Replaces the state's label when there is a figure to show instead
    /// (continuous mode: "87% verified").
    pub state_note: Option<String>,
}

/// What a verification cell says about a table: its state and a detail line.
fn verify_view(cell: Option<&VerifyCell>) -> (Option<RowState>, Option<String>, Option<String>) {
    match cell {
        None => (None, None, None),
        Some(VerifyCell::Pending) => (
            Some(RowState::Verifying),
            Some("checksum queued".into()),
            None,
        ),
        Some(VerifyCell::Running(p)) => {
            let mut text = format!("checksum {}/{} ranges", p.ranges_done, p.ranges_total);
            if p.mismatches > 0 {
                text.push_str(&format!(", {} differing rows so far", p.mismatches));
            }
            (Some(RowState::Verifying), Some(text), None)
        }
        Some(VerifyCell::Done(v)) => match v.status {
            TableStatus::Clean => (
                Some(RowState::ChecksumVerified),
                Some(format!(
                    "checksum verified, {} rows ({})",
                    v.rows_source,
                    v.method.as_str()
                )),
                None,
            ),
            TableStatus::Mismatch if v.differences_total == 0 => (
                Some(RowState::ChecksumUnstable),
                Some("rows changed while being checked; verify again once lag is 0".into()),
                None,
            ),
            TableStatus::Mismatch => {
                let mut text = differences_text(&v.differences, v.differences_total);
                if v.differences.is_empty() && !v.notes.is_empty() {
                    text.push_str(&format!(" ({})", v.notes.join("; ")));
                }
                (Some(RowState::ChecksumMismatch), Some(text), None)
            }
            TableStatus::Error => (
                Some(RowState::Failed),
                None,
                Some(format!("verify: {}", v.error.clone().unwrap_or_default())),
            ),
            TableStatus::Cancelled => (None, Some("checksum cancelled".into()), None),
        },
        Some(VerifyCell::Live(p)) => {
            let (state, text) = live_view(p);
            (Some(state), Some(text), None)
        }
    }
}

/// "2 rows differ: 17 missing on target; 42 changed (email); …".
fn differences_text(differences: &[RowDifference], total: u64) -> String {
    let listed: Vec<String> = differences
        .iter()
        .take(3)
        .map(|d| match d.kind {
            DiffKind::MissingOnTarget => format!("{} missing on target", d.key),
            DiffKind::ExtraOnTarget => format!("{} extra on target", d.key),
            DiffKind::Changed => format!("{} changed ({})", d.key, d.columns.join(", ")),
        })
        .collect();
    let mut text = if total == 1 {
        "1 row differs".to_string()
    } else {
        format!("{total} rows differ")
    };
    if !listed.is_empty() {
        text.push_str(": ");
        text.push_str(&listed.join("; "));
    }
    if total > listed.len() as u64 && !listed.is_empty() {
        text.push_str("; …");
    }
    text
}

/// Continuous mode in the pane's words: the fraction verified, what is still
/// pending, and the confirmed differences.
fn live_view(p: &ContinuousProgress) -> (RowState, String) {
    let state = live_state(p);
    if state == RowState::ChecksumMismatch {
        let rows = p.differences.len() as u64;
        let mut text = format!(
            "live: {} of {} ranges differ",
            p.ranges_mismatched, p.ranges_total
        );
        if rows > 0 {
            text.push_str(" · ");
            text.push_str(&differences_text(&p.differences, rows));
        }
        return (RowState::ChecksumMismatch, text);
    }
    if state == RowState::ChecksumVerified {
        // Rows modified within the lag window (updated_at) are left out of
        // every check: say so rather than claim 100%.
        let recent = if p.rows_pending > 0 {
            format!(
                "; {} rows modified within the lag window not compared yet",
                crate::ui::fmt::int(p.rows_pending as i64)
            )
        } else {
            String::new()
        };
        return (
            RowState::ChecksumVerified,
            format!(
                "live: every range verified{recent} ({} ranges, pass {}, {})",
                p.ranges_total,
                p.pass,
                p.method.as_str()
            ),
        );
    }
    let mut text = format!(
        "live pass {}: {:.0}% verified · {} of {} ranges pending",
        p.pass,
        live_pct(p),
        p.ranges_pending,
        p.ranges_total
    );
    if p.ranges_hot > 0 {
        text.push_str(&format!(" ({} changing)", p.ranges_hot));
    }
    if let Some(eta) = p.eta_secs {
        text.push_str(&format!(" · ETA {eta:.0} s"));
    }
    (RowState::Verifying, text)
}

/// A confirmed difference first; verified once every range matched.
fn live_state(p: &ContinuousProgress) -> RowState {
    if p.ranges_mismatched > 0 {
        RowState::ChecksumMismatch
    } else if p.ranges_pending == 0 && p.ranges_verified == p.ranges_total {
        RowState::ChecksumVerified
    } else {
        RowState::Verifying
    }
}

/// The state column while a continuous run is under way: how much is verified.
fn live_note(p: &ContinuousProgress) -> Option<String> {
    match live_state(p) {
        RowState::Verifying => Some(format!("{:.0}% verified", live_pct(p))),
        // Rows changed within the settle window are left out of the check:
        // "recent", not "in flight" (that is what the slot's lag measures).
        RowState::ChecksumVerified if p.rows_pending > 0 => Some(format!(
            "verified, {} recent unchecked",
            crate::ui::fmt::int(p.rows_pending as i64)
        )),
        _ => None,
    }
}

fn live_pct(p: &ContinuousProgress) -> f64 {
    if p.rows_total == 0 {
        if p.ranges_total > 0 && p.ranges_verified == p.ranges_total {
            100.0
        } else {
            0.0
        }
    } else {
        (p.rows_verified as f64 * 100.0 / p.rows_total as f64).min(100.0)
    }
}

fn exact(c: &ExactCount) -> Option<i64> {
    match c {
        ExactCount::Counted { rows, .. } => Some(*rows),
        _ => None,
    }
}

/// The subscription slot's lag now, while replication runs: the slot is
/// active and the source's sample is fresh. None when either is not so.
pub(super) fn replicating_lag(model: &Model) -> Option<i64> {
    let info = model.info.as_ref()?;
    if stale_since(&model.source, model.now, info.stale_after_seconds).is_some() {
        return None;
    }
    let src = model.source.last.as_ref()?;
    let slot = src.slots.iter().find(|s| s.name == info.slot && s.active)?;
    slot.lag_bytes
}

/// Both sides' exact counts as one word: (source, target, when the later
/// came in, whether the slot lagged when each was taken).
fn count_word(c: &super::TableCounts) -> Option<(i64, i64, DateTime<Utc>, bool)> {
    match (&c.source, &c.target) {
        (
            ExactCount::Counted {
                rows: s,
                at: s_at,
                lag_bytes: s_lag,
                ..
            },
            ExactCount::Counted {
                rows: t,
                at: t_at,
                lag_bytes: t_lag,
                ..
            },
        ) => {
            let lagging = |l: &Option<i64>| l.is_some_and(|b| b > 0);
            Some((*s, *t, (*s_at).max(*t_at), lagging(s_lag) && lagging(t_lag)))
        }
        _ => None,
    }
}

/// One row per selected table: the source's tables, plus any the target has
/// that the source lacks, plus any with count results.
pub fn table_rows(model: &Model) -> Vec<TableRow> {
    use std::collections::BTreeSet;
    let src = model.source.last.as_ref();
    let tgt = model.target.last.as_ref();
    let mut names: BTreeSet<&TableRef> = BTreeSet::new();
    if let Some(s) = src {
        names.extend(s.tables.iter().map(|t| &t.table));
    }
    if let Some(t) = tgt {
        names.extend(t.tables.iter().map(|t| &t.table));
    }
    names.extend(model.counts.keys());
    let sub = model.info.as_ref().map(|i| i.subscription.as_str());
    names
        .into_iter()
        .map(|table| {
            let s_est = src.and_then(|s| s.tables.iter().find(|t| &t.table == table));
            let t_est = tgt.and_then(|s| s.tables.iter().find(|t| &t.table == table));
            let counts = model.counts.get(table);
            let source_exact = counts.and_then(|c| exact(&c.source));
            let target_exact = counts.and_then(|c| exact(&c.target));
            let counting = counts.is_some_and(|c| {
                c.source == ExactCount::Counting || c.target == ExactCount::Counting
            });
            let error = counts.and_then(|c| match (&c.source, &c.target) {
                (ExactCount::Failed(e), _) => Some(format!("{}: {e}", Side::Source.as_str())),
                (_, ExactCount::Failed(e)) => Some(format!("{}: {e}", Side::Target.as_str())),
                _ => None,
            });
            let missing_on_target = tgt.is_some() && t_est.is_none() && s_est.is_some();
            let word = counts.and_then(count_word);
            let (diff, diff_is_exact) = match word {
                Some((s, t, _, _)) => (Some(t - s), true),
                None => (
                    s_est
                        .zip(t_est)
                        .map(|(s, t)| t.estimated_rows - s.estimated_rows),
                    false,
                ),
            };
            let (verify_state, verify_detail, verify_error) = verify_view(model.verify.get(table));
            let error = error.or(verify_error);
            // A checksum says more than a count: it wins while it is the
            // latest word. A newer count speaks for the table until then.
            let verify_latest = match (model.verify_at.get(table), word) {
                (Some(v_at), Some((_, _, c_at, _))) => *v_at >= c_at,
                _ => true,
            };
            let verify_state = verify_state.filter(|_| !missing_on_target && verify_latest);
            let verify_shown = !counting && verify_state.is_some();
            let state = if counting {
                RowState::Counting
            } else if let Some(v) = verify_state {
                v
            } else if missing_on_target {
                RowState::MissingOnTarget
            } else if error.is_some() {
                RowState::Failed
            } else if let Some((s, t, _, lagging)) = word {
                if s == t {
                    RowState::ExactMatch
                } else if lagging {
                    RowState::InFlight
                } else {
                    RowState::ExactMismatch
                }
            } else {
                RowState::Estimated
            };
            let sync: Option<&SubTableRow> = tgt.and_then(|t| {
                t.sub_tables
                    .iter()
                    .find(|r| &r.table == table && Some(r.subscription.as_str()) == sub)
            });
            TableRow {
                table: table.clone(),
                source_estimate: s_est.map(|t| t.estimated_rows),
                target_estimate: t_est.map(|t| t.estimated_rows),
                source_exact,
                target_exact,
                diff,
                diff_is_exact,
                count_superseded: word.is_some() && verify_shown,
                state,
                sync_state: sync.map(|r| r.state.clone()),
                copy_tuples: tgt.and_then(|t| {
                    t.copies
                        .iter()
                        .find(|c| &c.table == table)
                        .map(|c| c.tuples_processed)
                }),
                has_primary_key: s_est.map(|t| t.has_primary_key),
                error,
                verify_detail,
                state_note: match model.verify.get(table) {
                    Some(VerifyCell::Live(p)) if verify_shown => live_note(p),
                    _ => None,
                },
            }
        })
        .collect()
}

/// Why background verification should hold back right now, if it should: it
/// yields to replication (gh-ost's max-lag idea) at half the lag thresholds,
/// and never runs blind on stale monitoring data.
pub fn verify_throttle(model: &Model) -> Option<String> {
    let info = model.info.as_ref()?;
    if stale_since(&model.source, model.now, info.stale_after_seconds).is_some()
        || model.source.last.is_none()
    {
        return Some("source monitoring stale".into());
    }
    let lag = lag_summary(model)?;
    lag_throttle(
        lag.lag_bytes,
        lag.flush_lag_ms,
        info.max_lag_bytes,
        info.max_lag_seconds,
    )
}

/// gh-ost's max-lag rule: verification work pauses while replication lag is
/// past half of either threshold, so it never pushes lag to the bound itself.
pub fn lag_throttle(
    lag_bytes: Option<i64>,
    flush_lag_ms: Option<f64>,
    max_lag_bytes: i64,
    max_lag_seconds: f64,
) -> Option<String> {
    if let Some(b) = lag_bytes.filter(|b| *b > max_lag_bytes / 2) {
        return Some(format!(
            "replication lag {} over half the threshold",
            crate::ui::fmt::bytes(b)
        ));
    }
    flush_lag_ms
        .filter(|ms| ms / 1000.0 > max_lag_seconds / 2.0)
        .map(|ms| {
            format!(
                "replication lag {:.1} s over half the threshold",
                ms / 1000.0
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::update::tests::{source, Feed};
    use crate::session::sample::TargetSample;
    use crate::session::EventKind;
    use crate::verify::TableVerify;

    fn t() -> TableRef {
        TableRef::new("public", "t")
    }

    /// Both sides sampled at `at`, the source's slot `lag` bytes behind.
    fn sampled(f: &mut Feed, at: i64, lag: i64) {
        f.send(at, EventKind::SourceSampled(source(Some(lag))));
        f.send(
            at,
            EventKind::TargetSampled(TargetSample {
                server_version: "18".into(),
                rows_written: None,
                subscriptions: vec![],
                sub_tables: vec![],
                copies: vec![],
                tables: source(None).tables,
                poll_ms: 1.0,
            }),
        );
    }

    fn count_side(f: &mut Feed, at: i64, side: Side, rows: i64) {
        f.send(
            at,
            EventKind::CountProgress {
                run: 1,
                side,
                table: t(),
                rows,
                elapsed_ms: 1.0,
            },
        );
    }

    fn counted(f: &mut Feed, at: i64, source_rows: i64, target_rows: i64) {
        count_side(f, at, Side::Source, source_rows);
        count_side(f, at, Side::Target, target_rows);
    }

    fn verified(f: &mut Feed, at: i64) {
        f.send(
            at,
            EventKind::VerifyTableDone {
                run: 0,
                result: TableVerify::new(t()),
            },
        );
    }

    fn row(f: &Feed) -> TableRow {
        table_rows(&f.m).remove(0)
    }

    #[test]
    fn a_newer_count_that_differs_is_not_hidden_by_an_older_checksum() {
        let mut f = Feed::new();
        sampled(&mut f, 1, 0);
        verified(&mut f, 2);
        assert_eq!(row(&f).state, RowState::ChecksumVerified);
        // After a rollback: the checksum is from before, the count from now.
        counted(&mut f, 5, 73_637, 85_581);
        let r = row(&f);
        assert_eq!(r.state, RowState::ExactMismatch);
        assert_eq!((r.diff, r.count_superseded), (Some(11_944), false));
        // A checksum taken after the count is the latest word again.
        verified(&mut f, 7);
        let r = row(&f);
        assert_eq!(r.state, RowState::ChecksumVerified);
        assert!(
            r.count_superseded,
            "the older count's difference is history"
        );
        // A count at the same second as the checksum: the checksum says more.
        counted(&mut f, 7, 10, 10);
        assert_eq!(row(&f).state, RowState::ChecksumVerified);
        counted(&mut f, 8, 10, 10);
        assert_eq!(row(&f).state, RowState::ExactMatch);
    }

    #[test]
    fn a_difference_is_in_flight_only_while_the_slot_lags() {
        let mut f = Feed::new();
        sampled(&mut f, 1, 4096);
        counted(&mut f, 2, 100, 97);
        let r = row(&f);
        assert_eq!((r.state, r.diff), (RowState::InFlight, Some(-3)));
        assert_eq!(r.state.label(), "in flight");
        // At lag 0 the same difference is a mismatch.
        sampled(&mut f, 3, 0);
        counted(&mut f, 4, 100, 97);
        assert_eq!(row(&f).state, RowState::ExactMismatch);
        // Lagging at one side's count, caught up at the other's: not in flight.
        sampled(&mut f, 5, 4096);
        count_side(&mut f, 5, Side::Source, 100);
        sampled(&mut f, 6, 0);
        count_side(&mut f, 6, Side::Target, 97);
        assert_eq!(row(&f).state, RowState::ExactMismatch);
    }

    #[test]
    fn lag_unknown_or_replication_stopped_is_no_excuse_for_a_difference() {
        // The slot behind but inactive: nothing is delivering those rows.
        let mut f = Feed::new();
        sampled(&mut f, 1, 4096);
        if let Some(src) = f.m.source.last.as_mut() {
            src.slots[0].active = false;
        }
        counted(&mut f, 2, 100, 97);
        assert_eq!(row(&f).state, RowState::ExactMismatch);
        // The lag as of a stale sample (older than stale_after_seconds).
        let mut f = Feed::new();
        sampled(&mut f, 1, 4096);
        counted(&mut f, 9, 100, 97);
        assert_eq!(row(&f).state, RowState::ExactMismatch);
        // No slot at all.
        let mut f = Feed::new();
        f.send(1, EventKind::SourceSampled(source(None)));
        counted(&mut f, 2, 100, 97);
        assert_eq!(row(&f).state, RowState::ExactMismatch);
    }
}
