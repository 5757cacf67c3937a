//! One table's state in a continuous run: its key ranges, which to check
//! next, what each check found, and the table's resulting status.

use std::time::{Duration, Instant};

use tokio_postgres::Row;

use super::report::{
    ContinuousOptions, ContinuousProgress, ContinuousStatus, ContinuousTable, RangeRecord,
    RangeState,
};
use super::End;
use crate::session::sample::TableRef;
use crate::verify::compare::{sub_range, Item};
use crate::verify::exec::{Conn, Ctx, Fail};
use crate::verify::prepare::prepare;
use crate::verify::sql::{KeyRange, Plan};
use crate::verify::{Method, RowDifference, TableVerify};

/// The source's clock, read once, advanced locally: cutoffs must be one
/// literal on both sides, and `updated_at` values come from the source.
pub(super) struct Clock {
    pub(super) epoch: f64,
    pub(super) at: Instant,
}

impl Clock {
    pub(super) fn now(&self) -> f64 {
        self.epoch + self.at.elapsed().as_secs_f64()
    }
}

/// One side's answer to a range check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Tally {
    pub(super) rows: u64,
    /// Rows matching the check's filter, whose hashes are summed.
    pub(super) hashed: u64,
    pub(super) hash: i128,
}

impl Tally {
    pub(super) fn from_rows(rows: &[Row]) -> Result<Tally, Fail> {
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

    pub(super) fn unhashed(&self) -> u64 {
        self.rows - self.hashed
    }
}

/// What a check compares.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Check {
    /// Every row.
    Full,
    /// Rows modified before the cutoff (continuous, updated_at).
    Settled(f64),
    /// Row count, and the rows modified since the cutoff (final, updated_at).
    Since(f64),
}

pub(super) struct Slot {
    pub(super) range: KeyRange,
    pub(super) rec: RangeRecord,
    /// The latest differing (source, target) tallies, how many checks in a
    /// row saw them, and the source's WAL position after the first of those.
    pub(super) sig: Option<Sig>,
    pub(super) last: Option<Instant>,
}

#[derive(Clone, Copy)]
pub(super) struct Sig {
    pub(super) tallies: (Tally, Tally),
    pub(super) seen: u32,
    pub(super) first_lsn: Option<u64>,
}

/// Replication positions on the source around one check (with a slot).
#[derive(Clone, Copy)]
pub(super) struct Positions {
    /// The slot's confirmed_flush_lsn read before the check: the target had
    /// applied at least this much when its side was read.
    pub(super) applied: u64,
    /// pg_current_wal_lsn() read after the check: everything the source's
    /// side saw is at or before it.
    pub(super) current: u64,
}

pub(super) struct TableRun {
    pub(super) out: ContinuousTable,
    /// None once the table failed.
    pub(super) plan: Option<Plan>,
    pub(super) updated_at: Option<String>,
    pub(super) est_per_range: f64,
    pub(super) slots: Vec<Slot>,
    pub(super) todo: Vec<usize>,
    pub(super) pass_started: Instant,
    pub(super) pass_rows: u64,
    /// Passes of this run that went through all of the table's ranges.
    pub(super) passes_done: u32,
    /// Per side (source, target): rows hashed and query time.
    pub(super) side_rows: [u64; 2],
    pub(super) side_busy: [Duration; 2],
}

pub(super) enum Pick {
    Done,
    Wait(Instant),
    Check(usize, KeyRange, Check),
}

impl TableRun {
    /// A table not (yet) prepared: nothing known but its name.
    pub(super) fn new(table: &TableRef, opts: &ContinuousOptions) -> TableRun {
        TableRun {
            out: ContinuousTable {
                table: table.clone(),
                method: Method::Multiset,
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
                progress: empty_progress(table, Method::Multiset),
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
            passes_done: 0,
            side_rows: [0; 2],
            side_busy: [Duration::ZERO; 2],
        }
    }

    /// Prepares the table (plan, ranges); a failure is the table's error, a
    /// stop leaves it unprepared.
    pub(super) async fn open(
        ctx: &Ctx<'_>,
        src: &[Conn],
        tgt: &[Conn],
        table: &TableRef,
        opts: &ContinuousOptions,
        prev: Option<&ContinuousTable>,
        final_mode: bool,
    ) -> TableRun {
        let prev = prev.filter(|p| !p.ranges.is_empty());
        let mut tv = TableVerify::new(table.clone());
        let prepared = prepare(ctx, src, tgt, &opts.base, &mut tv, prev.is_none()).await;
        let mut run = TableRun::new(table, opts);
        let p = match prepared {
            Ok(p) => p,
            Err(Fail::Cancelled) => return run,
            Err(Fail::Sql(e) | Fail::Lost(e)) => {
                run.fail(e);
                return run;
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
                    return run;
                }
                None => {
                    run.fail(format!("updated_at column {col} is not on both sides"));
                    return run;
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
        run
    }

    pub(super) fn fail(&mut self, e: String) {
        self.out.error = Some(e);
        self.plan = None;
    }

    pub(super) fn begin_pass(&mut self) {
        self.todo = (0..self.slots.len()).collect();
        self.pass_started = Instant::now();
        self.pass_rows = 0;
    }

    /// The next range to check: due ones (never sooner than `settle` after
    /// their previous check), the least recently checked first.
    pub(super) fn pick(&mut self, settle: Duration, final_mode: bool, clock: &Clock) -> Pick {
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
    pub(super) fn absorb(
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
    pub(super) fn located(
        &mut self,
        i: usize,
        check: Check,
        diffs: Vec<RowDifference>,
        final_mode: bool,
    ) {
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

    pub(super) fn snapshot(&self, max_differences: usize) -> ContinuousProgress {
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

    pub(super) fn finish(
        self,
        end: &End,
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
        } else if p.ranges_verified == p.ranges_total
            && p.ranges_total > 0
            // The final check proves nothing about a table it did not finish.
            && (!final_mode || self.passes_done > 0)
        {
            ContinuousStatus::Verified
        } else if let Some(e) = &end.lost {
            out.error = Some(format!("not verified: {e}"));
            ContinuousStatus::Error
        } else if end.cancelled {
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

pub(super) fn empty_progress(table: &TableRef, method: Method) -> ContinuousProgress {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A table with all its ranges verified (by an earlier run, or a pass).
    fn verified_run(opts: &ContinuousOptions) -> TableRun {
        let mut run = TableRun::new(&TableRef::new("public", "t"), opts);
        let mut rec = RangeRecord::new(&KeyRange::default());
        rec.state = RangeState::Verified;
        run.slots = vec![Slot {
            range: KeyRange::default(),
            rec,
            sig: None,
            last: None,
        }];
        run
    }

    fn status(run: TableRun, end: &End, final_mode: bool) -> (ContinuousStatus, Option<String>) {
        let out = run.finish(end, final_mode, &ContinuousOptions::default());
        (out.status, out.error)
    }

    #[test]
    fn tables_a_stopped_run_did_not_finish_say_why() {
        let opts = ContinuousOptions::default();
        let lost = End {
            cancelled: false,
            lost: Some("target (h:1): no answer".into()),
        };
        let cancelled = End {
            cancelled: true,
            lost: None,
        };
        let blank = || TableRun::new(&TableRef::new("public", "t"), &opts);
        assert_eq!(
            status(blank(), &lost, false),
            (
                ContinuousStatus::Error,
                Some("not verified: target (h:1): no answer".into())
            )
        );
        assert_eq!(
            status(blank(), &cancelled, false),
            (ContinuousStatus::Cancelled, None)
        );
        // Verified before the stop: still verified while replication runs…
        assert_eq!(
            status(verified_run(&opts), &cancelled, false),
            (ContinuousStatus::Verified, None)
        );
        // …but a final check proves nothing about a table it did not finish.
        assert_eq!(
            status(verified_run(&opts), &cancelled, true).0,
            ContinuousStatus::Cancelled
        );
        let mut done = verified_run(&opts);
        done.passes_done = 1;
        assert_eq!(status(done, &cancelled, true).0, ContinuousStatus::Verified);
    }
}
