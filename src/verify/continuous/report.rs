//! What continuous verification reports: options, per-table progress and
//! the run's report, serialisable and printable.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::session::sample::TableRef;
use crate::verify::sql::KeyRange;
use crate::verify::{Method, RowDifference, VerifyOptions};

#[derive(Debug, Clone)]
pub struct ContinuousOptions {
    /// Parallelism (connection pairs), statement_timeout per range check,
    /// bucket_rows (rows per range), keys, cancel, pause, max_differences.
    pub base: VerifyOptions,
    /// The lag window: a range that differs is re-checked no sooner than this later.
    pub settle: Duration,
    /// Optional per-table column (timestamptz/timestamp) of last modification:
    /// rows newer than now()-settle are left out of the comparison of that
    /// pass and counted as pending.
    pub updated_at: BTreeMap<TableRef, String>,
    /// Consecutive identical differing checks (same source and target
    /// count+hash) that confirm a mismatch.
    pub stable_checks: u32,
    /// None: loop over the tables until cancelled; Some(n): stop after n full passes.
    pub max_passes: Option<u32>,
    /// The source's replication slot that feeds the target. When it exists,
    /// a stable difference is confirmed only once the slot's
    /// `confirmed_flush_lsn` has passed the source's WAL position at the first
    /// of the identical checks: the target has applied everything the source
    /// had then, so lag longer than `settle` does not pass for a mismatch.
    pub slot: Option<String>,
}

impl Default for ContinuousOptions {
    fn default() -> Self {
        ContinuousOptions {
            base: VerifyOptions::default(),
            settle: Duration::from_secs(30),
            updated_at: BTreeMap::new(),
            stable_checks: 2,
            max_passes: None,
            slot: None,
        }
    }
}

/// One table's state, emitted after range checks (at most every 250 ms) and
/// at the end of each pass. `ranges_verified + ranges_pending +
/// ranges_mismatched == ranges_total`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContinuousProgress {
    pub table: TableRef,
    pub pass: u32,
    pub method: Method,
    pub ranges_total: u64,
    /// Matched at their latest check.
    pub ranges_verified: u64,
    /// Never checked yet, or differing but not yet stable (hot).
    pub ranges_pending: u64,
    /// Confirmed: a stable difference.
    pub ranges_mismatched: u64,
    /// Source rows (the planner's estimate for ranges not counted yet).
    pub rows_total: u64,
    /// Source rows compared equal at their range's latest check.
    pub rows_verified: u64,
    pub rows_per_sec: f64,
    /// For the rest of this pass.
    pub eta_secs: Option<f64>,
    /// Confirmed mismatches pinpointed to rows (capped by max_differences).
    pub differences: Vec<RowDifference>,
    /// Of the pending ranges, those checked and found differing (hot).
    #[serde(default)]
    pub ranges_hot: u64,
    /// Source rows not verified yet: in pending ranges, or too recent (updated_at).
    #[serde(default)]
    pub rows_pending: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RangeState {
    Unchecked,
    Verified,
    /// Differing, not (yet) stable.
    Hot,
    Mismatch,
}

/// One key range `[lo, hi)` and what is known about it; a continuous run's
/// report carries these into [`verify_final`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RangeRecord {
    pub lo: Option<Vec<String>>,
    pub hi: Option<Vec<String>>,
    pub state: RangeState,
    /// Checks made (all passes).
    pub checks: u32,
    /// Source clock, seconds since the epoch, of the latest check.
    pub checked_at: Option<f64>,
    /// For a verified range (source clock, seconds since the epoch): every row
    /// last modified before it was compared equal. With `updated_at` it is
    /// the check's `now() - settle`, else the check's time.
    pub verified_cutoff: Option<f64>,
    pub rows_source: Option<u64>,
    pub rows_target: Option<u64>,
    /// Source rows left out of the latest check as modified too recently.
    pub rows_recent: u64,
    pub differences: Vec<RowDifference>,
}

impl RangeRecord {
    pub(super) fn new(range: &KeyRange) -> Self {
        RangeRecord {
            lo: range.lo.clone(),
            hi: range.hi.clone(),
            state: RangeState::Unchecked,
            checks: 0,
            checked_at: None,
            verified_cutoff: None,
            rows_source: None,
            rows_target: None,
            rows_recent: 0,
            differences: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ContinuousStatus {
    /// Every range matched at its latest check.
    Verified,
    /// Some ranges not checked yet or still hot.
    Pending,
    Mismatch,
    Error,
    Cancelled,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContinuousTable {
    pub table: TableRef,
    pub method: Method,
    pub key_columns: Vec<String>,
    pub updated_at: Option<String>,
    pub status: ContinuousStatus,
    pub error: Option<String>,
    /// Passes this table took part in.
    pub passes: u32,
    pub ranges: Vec<RangeRecord>,
    /// Range checks (count and hash of one range on both sides) made.
    pub range_checks: u64,
    /// Final mode: ranges whose rows were all compared again.
    pub ranges_rechecked: u64,
    /// Final mode: ranges proved unchanged since verified (count, and the
    /// rows modified since), not hashed again.
    pub ranges_skipped: u64,
    pub differences_total: u64,
    /// The latest progress (the figures of the row-count pane).
    pub progress: ContinuousProgress,
    pub columns_only_source: Vec<String>,
    pub columns_only_target: Vec<String>,
    /// Rows hashed per second of query time on one connection of that side.
    pub source_rows_per_sec: f64,
    pub target_rows_per_sec: f64,
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContinuousReport {
    pub tables: Vec<ContinuousTable>,
    /// Full passes started.
    pub passes: u32,
    pub cancelled: bool,
    /// Made by [`verify_final`].
    pub final_check: bool,
    pub parallelism: usize,
    pub elapsed_ms: f64,
}

impl ContinuousReport {
    pub fn is_verified(&self) -> bool {
        !self.cancelled
            && self
                .tables
                .iter()
                .all(|t| t.status == ContinuousStatus::Verified)
    }
}

impl fmt::Display for ContinuousReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for t in &self.tables {
            let word = match t.status {
                ContinuousStatus::Verified => "✔ VERIFIED",
                ContinuousStatus::Pending => "… PENDING",
                ContinuousStatus::Mismatch => "✖ MISMATCH",
                ContinuousStatus::Error => "✖ ERROR",
                ContinuousStatus::Cancelled => "… CANCELLED",
            };
            let p = &t.progress;
            writeln!(f, "{word}  {}  ({})", t.table, t.method.as_str())?;
            writeln!(
                f,
                "    ranges: {} verified, {} pending ({} hot), {} mismatched of {}; \
                 rows {} of {} verified; {} checks in {} passes",
                p.ranges_verified,
                p.ranges_pending,
                p.ranges_hot,
                p.ranges_mismatched,
                p.ranges_total,
                p.rows_verified,
                p.rows_total,
                t.range_checks,
                t.passes
            )?;
            if self.final_check {
                writeln!(
                    f,
                    "    final: {} ranges re-checked, {} proved unchanged",
                    t.ranges_rechecked, t.ranges_skipped
                )?;
            }
            if let Some(e) = &t.error {
                writeln!(f, "    error: {e}")?;
            }
            for (what, cols) in [
                ("source", &t.columns_only_source),
                ("target", &t.columns_only_target),
            ] {
                if !cols.is_empty() {
                    writeln!(f, "    columns only on {what}: {}", cols.join(", "))?;
                }
            }
            for d in &p.differences {
                writeln!(f, "    {:?}: {}  [{}]", d.kind, d.key, d.columns.join(", "))?;
            }
            for n in &t.notes {
                writeln!(f, "    note: {n}")?;
            }
        }
        write!(
            f,
            "{} passes{} in {:.1}s",
            self.passes,
            if self.cancelled { " (cancelled)" } else { "" },
            self.elapsed_ms / 1000.0
        )
    }
}
