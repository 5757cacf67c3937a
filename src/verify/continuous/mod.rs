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

mod report;
mod state;

use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::Result;
use tokio::sync::mpsc;
use tokio_postgres::Row;

pub use report::{
    ContinuousOptions, ContinuousProgress, ContinuousReport, ContinuousStatus, ContinuousTable,
    RangeRecord, RangeState,
};
use state::{Check, Clock, Pick, Positions, TableRun, Tally};

use super::compare::bisect;
use super::exec::{both, query, workers_outcome};
use super::sql;
use super::{ms, open_both, Conn, Ctx, Fail};
use crate::config::Config;
use crate::session::sample::TableRef;

/// Progress is reported at most this often per table (and at each pass's end).
const PROGRESS_EVERY: Duration = Duration::from_millis(250);
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

/// How a run ended, for the tables' statuses.
struct End {
    cancelled: bool,
    /// A server stopped answering: the missed deadline's message.
    lost: Option<String>,
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
    let conns = if ctx.is_cancelled() {
        None
    } else {
        Some(open_both(&ctx, &opts.base).await?)
    };
    let mut clock = Clock {
        epoch: 0.0,
        at: Instant::now(),
    };
    if let Some((src, _)) = &conns {
        let what = "reading the source's clock";
        match query(&ctx, &src[0], what, sql::CLOCK_SQL, &[]).await {
            Ok(rows) => {
                let Some(row) = rows.first() else {
                    anyhow::bail!("{what}: no row");
                };
                clock = Clock {
                    epoch: row.get(0),
                    at: Instant::now(),
                };
            }
            Err(Fail::Sql(e)) => anyhow::bail!("{what}: {e}"),
            // Stopped: every table is reported below, as such.
            Err(Fail::Cancelled | Fail::Lost(_)) => {}
        }
    }
    let mut report = ContinuousReport {
        tables: Vec::new(),
        passes: 0,
        cancelled: false,
        final_check: final_mode,
        parallelism: opts.base.parallelism.max(1),
        elapsed_ms: 0.0,
    };
    let mut runs = Vec::with_capacity(tables.len());
    for t in tables {
        let prev = previous.and_then(|r| r.tables.iter().find(|x| &x.table == t));
        runs.push(match (&conns, ctx.check()) {
            (Some((src, tgt)), Ok(())) => {
                TableRun::open(&ctx, src, tgt, t, opts, prev, final_mode).await
            }
            _ => TableRun::new(t, opts),
        });
    }
    let max_passes = if final_mode { Some(1) } else { opts.max_passes };
    // Whether the run did all it was asked (not stopped by cancel or a lost server).
    let mut finished = false;
    if let Some((src, tgt)) = &conns {
        'passes: while ctx.check().is_ok() {
            if max_passes.is_some_and(|m| report.passes >= m)
                || !runs.iter().any(|r| r.plan.is_some())
            {
                finished = true;
                break;
            }
            report.passes += 1;
            for r in runs.iter_mut().filter(|r| r.plan.is_some()) {
                r.out.passes += 1;
                match table_pass(&ctx, src, tgt, r, opts, final_mode, &clock, progress).await {
                    Ok(()) => r.passes_done += 1,
                    Err(Fail::Cancelled) => break 'passes,
                    Err(Fail::Sql(e)) => r.fail(e),
                    Err(Fail::Lost(e)) => {
                        r.fail(e);
                        break 'passes;
                    }
                }
            }
        }
    }
    let end = End {
        cancelled: !finished && ctx.is_cancelled(),
        lost: ctx.lost().filter(|_| !finished),
    };
    report.cancelled = end.cancelled;
    report.tables = runs
        .into_iter()
        .map(|r| r.finish(&end, final_mode, opts))
        .collect();
    report.elapsed_ms = ms(started);
    Ok(report)
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
                        Some(q) => {
                            lsn(query(ctx, s, "reading the slot's position", q, &[]).await?)?
                        }
                        None => None,
                    };
                    let at = clock.now();
                    let what = &format!("checksumming {}", plan.table);
                    let timed = |c| {
                        let sql = &sql;
                        async move {
                            let t0 = Instant::now();
                            let rows = query(ctx, c, what, sql, &[]).await?;
                            Ok::<_, Fail>((Tally::from_rows(&rows)?, t0.elapsed()))
                        }
                    };
                    let (a, b) = tokio::join!(timed(s), timed(t));
                    let ((a, ta), (b, tb)) = both(a, b)?;
                    let positions = match applied {
                        Some(applied) => {
                            let what = "reading the WAL position";
                            lsn(query(ctx, s, what, sql::WAL_LSN_SQL, &[]).await?)?
                                .map(|current| Positions { applied, current })
                        }
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
