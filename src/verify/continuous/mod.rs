//! Continuous verification while replication runs, and the final check in the
//! freeze window that only re-checks what may have changed.
//!
//! Built from the one-shot engine's pieces ([`super::prepare`] for the plan
//! and range boundaries, [`super::bisect`] down to rows, [`super::query`] for
//! pause, cancel and `pg_cancel_backend`), but checked **range by range**:
//! each check is one key range (an index range scan), `count(*)` and the hash
//! sum, read on both sides at once by one of [`VerifyOptions::parallelism`]
//! connection pairs. Pause and cancel therefore act per range, a range
//! at a time, instead of per heap slice.
//!
//! A live source is always a little ahead of the target, so a range that
//! differs is not a mismatch yet:
//! - **Without `updated_at`** ("re-checked until stable"): a range that
//!   matches is verified (as of that check). One that differs is *hot*
//!   (pending) and re-checked in the next pass, no sooner than
//!   [`ContinuousOptions::settle`] later; when both sides' (count, hash) are
//!   unchanged over [`ContinuousOptions::stable_checks`] checks and still
//!   differ, and (with [`ContinuousOptions::slot`]) the target has applied all
//!   the source had at the first of them, the difference is real: confirmed,
//!   and bisected to rows. If either side changed in between, it stays hot. Rows a live application inserts at the end of the key
//!   space keep the last range hot, never mismatched.
//! - **With an `updated_at` column** for the table: rows modified at or after
//!   `now() - settle` (source clock) are left out of the hash on both sides and
//!   counted as pending rows; the settled rows are compared. A range whose
//!   settled rows differ while either side holds recent rows stays pending (the
//!   source may have moved a row out of the settled set that the target still
//!   has in it); otherwise the stable-checks rule above applies.
//!
//! Settle must exceed the replication lag: a difference that stays put longer
//! than `settle` on a stalled subscription looks real. Throttle with
//! [`VerifyOptions::pause`] (the caller's max-lag rule) to keep lag down.
//!
//! Passes: every range is checked once per pass, oldest check first, and
//! never sooner than `settle` after its previous check, so a small table is
//! not re-read in a busy loop.
//! Tables are passed one after another. Range boundaries are read once per
//! run; rows inserted past the last boundary all fall in the last range.
//!
//! **Final mode** ([`verify_final`]), with writes frozen and lag 0: every
//! differing range is a mismatch at once and is bisected to rows. Given the
//! report of the continuous run, a range verified then with an `updated_at`
//! column is proved unchanged, without hashing all its rows, when both sides
//! have the same row count (deletes) and the same count and hash of the rows
//! modified since that range's verification cutoff. This relies on every write
//! setting the column (an application convention or a trigger); a change that
//! leaves it alone is not seen. Without `updated_at` every range is re-checked
//! in full, and the report says so.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::Result;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio_postgres::Row;

use super::sql::{self, KeyRange, Plan};
use super::{
    bisect, ms, open_both, prepare, query, sub_range, workers_outcome, Conn, Ctx, Fail, Item,
    Method, RowDifference, TableVerify, VerifyOptions,
};
use crate::config::Config;
use crate::session::sample::TableRef;

/// Progress is reported at most this often per table (and at each pass's end).
const PROGRESS_EVERY: Duration = Duration::from_millis(250);

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
    fn new(range: &KeyRange) -> Self {
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

/// Verifies `tables` while replication runs, pass after pass, until
/// `max_passes` or cancel. Per-table failures end up in the table's entry;
/// connection failures are errors.
pub async fn verify_continuous(
    config: &Config,
    tables: &[TableRef],
    opts: &ContinuousOptions,
    mut progress: impl FnMut(ContinuousProgress),
) -> Result<ContinuousReport> {
    run(config, tables, opts, None, false, &mut progress).await
}

/// The freeze-window check (writes frozen, lag 0): one pass; a differing range
/// is bisected to rows at once. With `previous` (a continuous run's report)
/// and an `updated_at` column, ranges verified then are proved unchanged
/// cheaply instead of re-hashed (see the module doc).
pub async fn verify_final(
    config: &Config,
    tables: &[TableRef],
    opts: &ContinuousOptions,
    previous: Option<&ContinuousReport>,
    mut progress: impl FnMut(ContinuousProgress),
) -> Result<ContinuousReport> {
    run(config, tables, opts, previous, true, &mut progress).await
}

/// The source's clock, read once, advanced locally: cutoffs must be one
/// literal on both sides, and `updated_at` values come from the source.
struct Clock {
    epoch: f64,
    at: Instant,
}

impl Clock {
    fn now(&self) -> f64 {
        self.epoch + self.at.elapsed().as_secs_f64()
    }
}

/// One side's answer to a range check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Tally {
    rows: u64,
    /// Rows matching the check's filter, whose hashes are summed.
    hashed: u64,
    hash: i128,
}

impl Tally {
    fn from_rows(rows: &[Row]) -> Result<Tally, Fail> {
        let r = rows
            .first()
            .ok_or_else(|| Fail::Sql("range check returned no row".into()))?;
        let s: String = r.get(2);
        Ok(Tally {
            rows: r.get::<_, i64>(0).max(0) as u64,
            hashed: r.get::<_, i64>(1).max(0) as u64,
            hash: s
                .parse()
                .map_err(|_| Fail::Sql(format!("unexpected hash sum {s:?}")))?,
        })
    }

    fn unhashed(&self) -> u64 {
        self.rows - self.hashed
    }
}

/// What a check compares.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Check {
    /// Every row.
    Full,
    /// Rows modified before the cutoff (continuous, updated_at).
    Settled(f64),
    /// Row count, and the rows modified since the cutoff (final, updated_at).
    Since(f64),
}

struct Slot {
    range: KeyRange,
    rec: RangeRecord,
    /// The latest differing (source, target) tallies, how many checks in a
    /// row saw them, and the source's WAL position after the first of those.
    sig: Option<Sig>,
    last: Option<Instant>,
}

#[derive(Clone, Copy)]
struct Sig {
    tallies: (Tally, Tally),
    seen: u32,
    first_lsn: Option<u64>,
}

/// Replication positions on the source around one check (with a slot).
#[derive(Clone, Copy)]
struct Positions {
    /// The slot's confirmed_flush_lsn read before the check: the target had
    /// applied at least this much when its side was read.
    applied: u64,
    /// pg_current_wal_lsn() read after the check: everything the source's
    /// side saw is at or before it.
    current: u64,
}

struct TableRun {
    out: ContinuousTable,
    /// None once the table failed.
    plan: Option<Plan>,
    updated_at: Option<String>,
    est_per_range: f64,
    slots: Vec<Slot>,
    todo: Vec<usize>,
    pass_started: Instant,
    pass_rows: u64,
    /// Per side (source, target): rows hashed and query time.
    side_rows: [u64; 2],
    side_busy: [Duration; 2],
}

enum Pick {
    Done,
    Wait(Instant),
    Check(usize, KeyRange, Check),
}

async fn run(
    config: &Config,
    tables: &[TableRef],
    opts: &ContinuousOptions,
    previous: Option<&ContinuousReport>,
    final_mode: bool,
    progress: &mut impl FnMut(ContinuousProgress),
) -> Result<ContinuousReport> {
    let started = Instant::now();
    let ctx = Ctx::new(config, &opts.base);
    let (src, tgt) = open_both(&ctx, &opts.base).await?;
    let clock = match query(&ctx, &src[0], sql::CLOCK_SQL, &[]).await {
        Ok(rows) => Clock {
            epoch: rows[0].get(0),
            at: Instant::now(),
        },
        Err(Fail::Sql(e)) => anyhow::bail!("reading the source's clock: {e}"),
        Err(Fail::Cancelled) => Clock {
            epoch: 0.0,
            at: Instant::now(),
        },
    };
    let mut report = ContinuousReport {
        tables: Vec::new(),
        passes: 0,
        cancelled: ctx.is_cancelled(),
        final_check: final_mode,
        parallelism: src.len(),
        elapsed_ms: 0.0,
    };
    let mut runs = Vec::new();
    for t in tables {
        if report.cancelled {
            break;
        }
        let prev = previous.and_then(|r| r.tables.iter().find(|x| &x.table == t));
        match TableRun::open(&ctx, &src, &tgt, t, opts, prev, final_mode).await {
            Ok(r) => runs.push(r),
            Err(_) => report.cancelled = true,
        }
    }
    let max_passes = if final_mode { Some(1) } else { opts.max_passes };
    'passes: while !report.cancelled
        && max_passes.is_none_or(|m| report.passes < m)
        && runs.iter().any(|r| r.plan.is_some())
    {
        report.passes += 1;
        for r in runs.iter_mut().filter(|r| r.plan.is_some()) {
            r.out.passes += 1;
            match table_pass(&ctx, &src, &tgt, r, opts, final_mode, &clock, progress).await {
                Ok(()) => {}
                Err(Fail::Cancelled) => {
                    report.cancelled = true;
                    break 'passes;
                }
                Err(Fail::Sql(e)) => r.fail(e),
            }
        }
    }
    report.tables = runs
        .into_iter()
        .map(|r| r.finish(report.cancelled, final_mode, opts))
        .collect();
    report.elapsed_ms = ms(started);
    Ok(report)
}

impl TableRun {
    async fn open(
        ctx: &Ctx<'_>,
        src: &[Conn],
        tgt: &[Conn],
        table: &TableRef,
        opts: &ContinuousOptions,
        prev: Option<&ContinuousTable>,
        final_mode: bool,
    ) -> Result<TableRun, Fail> {
        let prev = prev.filter(|p| !p.ranges.is_empty());
        let mut tv = TableVerify::new(table.clone());
        let prepared = prepare(ctx, src, tgt, &opts.base, &mut tv, prev.is_none()).await;
        let mut run = TableRun {
            out: ContinuousTable {
                table: table.clone(),
                method: tv.method.clone(),
                key_columns: Vec::new(),
                updated_at: opts.updated_at.get(table).cloned(),
                status: ContinuousStatus::Pending,
                error: None,
                passes: 0,
                ranges: Vec::new(),
                range_checks: 0,
                ranges_rechecked: 0,
                ranges_skipped: 0,
                differences_total: 0,
                progress: empty_progress(table, tv.method.clone()),
                columns_only_source: Vec::new(),
                columns_only_target: Vec::new(),
                source_rows_per_sec: 0.0,
                target_rows_per_sec: 0.0,
                notes: Vec::new(),
            },
            plan: None,
            updated_at: None,
            est_per_range: 0.0,
            slots: Vec::new(),
            todo: Vec::new(),
            pass_started: Instant::now(),
            pass_rows: 0,
            side_rows: [0; 2],
            side_busy: [Duration::ZERO; 2],
        };
        let p = match prepared {
            Ok(p) => p,
            Err(Fail::Cancelled) => return Err(Fail::Cancelled),
            Err(Fail::Sql(e)) => {
                run.fail(e);
                return Ok(run);
            }
        };
        run.out.method = tv.method.clone();
        run.out.progress.method = tv.method.clone();
        run.out.key_columns = tv.key_columns.clone();
        run.out.columns_only_source = tv.columns_only_source;
        run.out.columns_only_target = tv.columns_only_target;
        run.out.notes = tv.notes;
        if let Some(col) = &run.out.updated_at {
            match p.plan.columns.iter().find(|c| &c.name == col) {
                Some(c) if matches!(c.base.as_str(), "timestamptz" | "timestamp") => {
                    run.updated_at = Some(col.clone());
                }
                Some(c) => {
                    run.fail(format!(
                        "updated_at column {col} is {}, not a timestamp",
                        c.type_sql
                    ));
                    return Ok(run);
                }
                None => {
                    run.fail(format!("updated_at column {col} is not on both sides"));
                    return Ok(run);
                }
            }
        }
        let reuse = prev.filter(|p| p.key_columns == run.out.key_columns);
        run.slots = match reuse {
            Some(prev) => prev
                .ranges
                .iter()
                .map(|rec| Slot {
                    range: KeyRange {
                        lo: rec.lo.clone(),
                        hi: rec.hi.clone(),
                    },
                    rec: rec.clone(),
                    sig: None,
                    last: None,
                })
                .collect(),
            None => {
                let whole = KeyRange::default();
                (0..=p.bounds.len())
                    .map(|i| {
                        let range = sub_range(&whole, &p.bounds, i);
                        Slot {
                            rec: RangeRecord::new(&range),
                            range,
                            sig: None,
                            last: None,
                        }
                    })
                    .collect()
            }
        };
        if final_mode && prev.is_some() && reuse.is_none() {
            run.out.notes.push(
                "the key changed since the continuous run: its ranges were not reused".into(),
            );
        }
        run.est_per_range = p.est_source.max(0.0) / run.slots.len() as f64;
        run.plan = Some(p.plan);
        Ok(run)
    }

    fn fail(&mut self, e: String) {
        self.out.error = Some(e);
        self.plan = None;
    }

    fn begin_pass(&mut self) {
        self.todo = (0..self.slots.len()).collect();
        self.pass_started = Instant::now();
        self.pass_rows = 0;
    }

    /// The next range to check: due ones (never sooner than `settle` after
    /// their previous check), the least recently checked first.
    fn pick(&mut self, settle: Duration, final_mode: bool, clock: &Clock) -> Pick {
        let now = Instant::now();
        let due = |s: &Slot| match s.last {
            Some(t) if !final_mode => t + settle,
            _ => now,
        };
        let ready = self
            .todo
            .iter()
            .enumerate()
            .filter(|(_, &i)| due(&self.slots[i]) <= now)
            .min_by_key(|(_, &i)| self.slots[i].last);
        let Some((pos, &i)) = ready else {
            return match self.todo.iter().map(|&i| due(&self.slots[i])).min() {
                Some(t) => Pick::Wait(t),
                None => Pick::Done,
            };
        };
        self.todo.swap_remove(pos);
        let slot = &self.slots[i];
        let check = match (&self.updated_at, final_mode) {
            (None, _) => Check::Full,
            (Some(_), false) => Check::Settled(clock.now() - settle.as_secs_f64()),
            (Some(_), true) => match (slot.rec.state, slot.rec.verified_cutoff) {
                (RangeState::Verified, Some(c)) => Check::Since(c),
                _ => Check::Full,
            },
        };
        Pick::Check(i, slot.range.clone(), check)
    }

    /// Records one check; returns the range to bisect when it is a mismatch.
    #[allow(clippy::too_many_arguments)]
    fn absorb(
        &mut self,
        i: usize,
        check: Check,
        at: f64,
        (a, b): (Tally, Tally),
        positions: Option<Positions>,
        opts: &ContinuousOptions,
        final_mode: bool,
    ) -> Option<Item> {
        self.out.range_checks += 1;
        self.pass_rows += a.hashed;
        self.side_rows[0] += a.hashed;
        self.side_rows[1] += b.hashed;
        let s = &mut self.slots[i];
        s.rec.checks += 1;
        s.last = Some(Instant::now());
        s.rec.checked_at = Some(at);
        s.rec.rows_source = Some(a.rows);
        s.rec.rows_target = Some(b.rows);
        s.rec.rows_recent = match check {
            Check::Settled(_) => a.unhashed(),
            _ => 0,
        };
        let item = Item {
            range: s.range.clone(),
            rows_source: a.rows,
            rows_target: b.rows,
            depth: 0,
        };
        let same = a.hashed == b.hashed && a.hash == b.hash;
        if final_mode {
            match check {
                Check::Since(_) if same && a.rows == b.rows => {
                    self.out.ranges_skipped += 1;
                    s.rec.state = RangeState::Verified;
                    s.rec.verified_cutoff = Some(at);
                    return None;
                }
                _ => self.out.ranges_rechecked += 1,
            }
            if same && a.rows == b.rows {
                s.rec.state = RangeState::Verified;
                s.rec.verified_cutoff = Some(at);
                s.rec.differences.clear();
                return None;
            }
            return Some(item);
        }
        if same {
            s.rec.state = RangeState::Verified;
            s.rec.verified_cutoff = Some(match check {
                Check::Settled(c) => c,
                _ => at,
            });
            s.rec.differences.clear();
            s.sig = None;
            return None;
        }
        let tallies = (a, b);
        let current = positions.map(|p| p.current);
        let (changed, sig) = match s.sig {
            Some(p) if p.tallies == tallies => (
                false,
                Sig {
                    seen: p.seen + 1,
                    ..p
                },
            ),
            prev => (
                prev.is_some(),
                Sig {
                    tallies,
                    seen: 1,
                    first_lsn: current,
                },
            ),
        };
        s.sig = Some(sig);
        // Without a slot (no replication, or not found) settle time alone decides.
        let caught_up = match (positions, sig.first_lsn) {
            (Some(p), Some(first)) => p.applied >= first,
            _ => true,
        };
        if sig.seen >= opts.stable_checks.max(1)
            && caught_up
            && a.unhashed() == 0
            && b.unhashed() == 0
        {
            if s.rec.state == RangeState::Mismatch && !changed {
                // The same difference as confirmed before: nothing new to locate.
                return None;
            }
            return Some(item);
        }
        // Pending; re-checked in the next pass, no sooner than `settle` after
        // this check (see `pick`). Not within this pass: waiting here would
        // hold up every range and table behind it.
        s.rec.state = RangeState::Hot;
        None
    }

    /// Records what bisecting a differing range found.
    fn located(&mut self, i: usize, check: Check, diffs: Vec<RowDifference>, final_mode: bool) {
        let keyed = self.plan.as_ref().is_some_and(|p| !p.keys.is_empty());
        let s = &mut self.slots[i];
        if !diffs.is_empty() || !keyed {
            s.rec.state = RangeState::Mismatch;
            s.rec.differences = diffs;
        } else if final_mode && matches!(check, Check::Since(_)) {
            // Only the recent rows were hashed, and all rows are equal.
            s.rec.state = RangeState::Verified;
            s.rec.verified_cutoff = s.rec.checked_at;
        } else {
            // Differed when checked, equal when bisected: rows changed meanwhile.
            s.rec.state = RangeState::Hot;
            s.sig = None;
            if final_mode {
                let note = "a range changed during the final check: are writes frozen?";
                if !self.out.notes.iter().any(|n| n == note) {
                    self.out.notes.push(note.into());
                }
            }
        }
    }

    fn snapshot(&self, max_differences: usize) -> ContinuousProgress {
        let mut p = empty_progress(&self.out.table, self.out.method.clone());
        p.pass = self.out.passes;
        p.ranges_total = self.slots.len() as u64;
        let est = self.est_per_range.round() as u64;
        for s in &self.slots {
            let rows = s.rec.rows_source.unwrap_or(est);
            p.rows_total += rows;
            match s.rec.state {
                RangeState::Verified => {
                    p.ranges_verified += 1;
                    p.rows_verified += rows - s.rec.rows_recent;
                    p.rows_pending += s.rec.rows_recent;
                }
                RangeState::Mismatch => {
                    p.ranges_mismatched += 1;
                    for d in &s.rec.differences {
                        if p.differences.len() < max_differences {
                            p.differences.push(d.clone());
                        }
                    }
                }
                RangeState::Hot => {
                    p.ranges_pending += 1;
                    p.ranges_hot += 1;
                    p.rows_pending += rows;
                }
                RangeState::Unchecked => {
                    p.ranges_pending += 1;
                    p.rows_pending += rows;
                }
            }
        }
        let secs = self.pass_started.elapsed().as_secs_f64();
        p.rows_per_sec = if secs > 0.0 {
            self.pass_rows as f64 / secs
        } else {
            0.0
        };
        let left: u64 = self
            .todo
            .iter()
            .map(|&i| self.slots[i].rec.rows_source.unwrap_or(est))
            .sum();
        p.eta_secs = if left == 0 {
            Some(0.0)
        } else if p.rows_per_sec > 0.0 {
            Some(left as f64 / p.rows_per_sec)
        } else {
            None
        };
        p
    }

    fn finish(
        self,
        cancelled: bool,
        final_mode: bool,
        opts: &ContinuousOptions,
    ) -> ContinuousTable {
        let p = self.snapshot(opts.base.max_differences);
        let mut out = self.out;
        out.differences_total = self
            .slots
            .iter()
            .map(|s| s.rec.differences.len() as u64)
            .sum();
        let rate = |rows: u64, busy: Duration| {
            if busy.is_zero() {
                0.0
            } else {
                rows as f64 / busy.as_secs_f64()
            }
        };
        out.source_rows_per_sec = rate(self.side_rows[0], self.side_busy[0]);
        out.target_rows_per_sec = rate(self.side_rows[1], self.side_busy[1]);
        out.status = if out.error.is_some() {
            ContinuousStatus::Error
        } else if p.ranges_mismatched > 0
            || !out.columns_only_source.is_empty()
            || !out.columns_only_target.is_empty()
        {
            ContinuousStatus::Mismatch
        } else if p.ranges_verified == p.ranges_total && p.ranges_total > 0 {
            ContinuousStatus::Verified
        } else if cancelled {
            ContinuousStatus::Cancelled
        } else {
            ContinuousStatus::Pending
        };
        if out.method == Method::Multiset && p.ranges_mismatched > 0 {
            out.notes.push(
                "row count or content hash differs; without a key the rows cannot be located \
                 (declare a key to pinpoint them)"
                    .into(),
            );
        }
        if final_mode && out.error.is_none() {
            out.notes.push(match &self.updated_at {
                Some(col) => format!(
                    "{} of {} ranges proved unchanged since verified (row count, and rows with \
                     {col} since then); this trusts every write to set {col}",
                    out.ranges_skipped,
                    self.slots.len()
                ),
                None => "every range re-checked: without an updated_at column nothing proves \
                         a range unchanged since it was verified"
                    .into(),
            });
        }
        out.ranges = self.slots.into_iter().map(|s| s.rec).collect();
        out.progress = p;
        out
    }
}

fn empty_progress(table: &TableRef, method: Method) -> ContinuousProgress {
    ContinuousProgress {
        table: table.clone(),
        pass: 0,
        method,
        ranges_total: 0,
        ranges_verified: 0,
        ranges_pending: 0,
        ranges_mismatched: 0,
        rows_total: 0,
        rows_verified: 0,
        rows_per_sec: 0.0,
        eta_secs: None,
        differences: Vec::new(),
        ranges_hot: 0,
        rows_pending: 0,
    }
}

#[allow(clippy::too_many_arguments)]
async fn table_pass(
    ctx: &Ctx<'_>,
    src: &[Conn],
    tgt: &[Conn],
    run: &mut TableRun,
    opts: &ContinuousOptions,
    final_mode: bool,
    clock: &Clock,
    progress: &mut impl FnMut(ContinuousProgress),
) -> Result<(), Fail> {
    let Some(plan) = run.plan.clone() else {
        return Ok(());
    };
    run.begin_pass();
    let max_diff = opts.base.max_differences;
    // The slot gates confirmations only while replication runs (not in final mode).
    let slot_sql = opts
        .slot
        .as_deref()
        .filter(|_| !final_mode)
        .map(sql::slot_flushed_sql);
    let slot_sql = slot_sql.as_deref();
    let state = Mutex::new(run);
    let (tx, mut rx) = mpsc::unbounded_channel::<()>();
    let results = {
        let workers = futures::future::join_all(src.iter().zip(tgt).map(|(s, t)| {
            let (state, plan, tx) = (&state, &plan, tx.clone());
            async move {
                loop {
                    let pick =
                        state
                            .lock()
                            .expect("state lock")
                            .pick(opts.settle, final_mode, clock);
                    let (i, range, check) = match pick {
                        Pick::Done => return Ok(()),
                        Pick::Wait(until) => {
                            ctx.sleep_until(until).await?;
                            continue;
                        }
                        Pick::Check(i, range, check) => (i, range, check),
                    };
                    let filter = state
                        .lock()
                        .expect("state lock")
                        .updated_at
                        .clone()
                        .and_then(|col| match check {
                            Check::Full => None,
                            Check::Settled(c) => Some(sql::modified_before(&col, c)),
                            Check::Since(c) => Some(sql::modified_since(&col, c)),
                        });
                    let sql = plan.range_sql(&range, filter.as_deref());
                    let applied = match slot_sql {
                        Some(q) => lsn(query(ctx, s, q, &[]).await?)?,
                        None => None,
                    };
                    let at = clock.now();
                    let timed = |c| {
                        let sql = &sql;
                        async move {
                            let t0 = Instant::now();
                            let rows = query(ctx, c, sql, &[]).await?;
                            Ok::<_, Fail>((Tally::from_rows(&rows)?, t0.elapsed()))
                        }
                    };
                    let (a, b) = tokio::join!(timed(s), timed(t));
                    let ((a, ta), (b, tb)) = (a?, b?);
                    let positions = match applied {
                        Some(applied) => lsn(query(ctx, s, sql::WAL_LSN_SQL, &[]).await?)?
                            .map(|current| Positions { applied, current }),
                        None => None,
                    };
                    let item = {
                        let mut st = state.lock().expect("state lock");
                        st.side_busy[0] += ta;
                        st.side_busy[1] += tb;
                        st.absorb(i, check, at, (a, b), positions, opts, final_mode)
                    };
                    if let Some(item) = item {
                        let mut diffs = Vec::new();
                        if !plan.keys.is_empty() {
                            let (s1, t1) = (std::slice::from_ref(s), std::slice::from_ref(t));
                            bisect(ctx, s1, t1, plan, vec![item], &opts.base, |out| {
                                diffs.append(&mut out.diffs)
                            })
                            .await?;
                        }
                        state
                            .lock()
                            .expect("state lock")
                            .located(i, check, diffs, final_mode);
                    }
                    let _ = tx.send(());
                }
            }
        }));
        drop(tx);
        tokio::pin!(workers);
        let mut emitted: Option<Instant> = None;
        loop {
            tokio::select! {
                r = &mut workers => break r,
                Some(()) = rx.recv() => {
                    if emitted.is_none_or(|t| t.elapsed() >= PROGRESS_EVERY) {
                        progress(state.lock().expect("state lock").snapshot(max_diff));
                        emitted = Some(Instant::now());
                    }
                }
            }
        }
    };
    let run = state.into_inner().expect("state lock");
    run.out.progress = run.snapshot(max_diff);
    progress(run.out.progress.clone());
    workers_outcome(results)
}

/// An LSN (as bytes since 0/0) from a one-row answer; None for no row or NULL
/// (the slot does not exist, or never confirmed anything).
fn lsn(rows: Vec<Row>) -> Result<Option<u64>, Fail> {
    let Some(text) = rows.first().and_then(|r| r.get::<_, Option<String>>(0)) else {
        return Ok(None);
    };
    text.parse()
        .map(Some)
        .map_err(|_| Fail::Sql(format!("unexpected WAL position {text:?}")))
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
