//! Checksum verification at scan speed, with differing rows pinpointed.
//!
//! Per table, on both sides at once:
//! 1. **Boundaries**: key values that split the table into ranges of about
//!    [`VerifyOptions::bucket_rows`] rows, read on the source in key order:
//!    every Nth key of the whole index for tables estimated under a million
//!    rows (or never analysed), else every 32nd key of a `TABLESAMPLE SYSTEM`
//!    page sample sized for ~32 sampled rows per range, which reads a fraction
//!    of a percent of the heap. The boundaries only need to be roughly even;
//!    correctness never depends on them, as both sides use the same ones.
//! 2. **One pass per side**: the heap is cut into block ranges (`ctid` ranges,
//!    TID range scans on PG ≥ 14) shared out between the side's connections;
//!    each query returns per key range (`width_bucket` of the key over the
//!    boundaries) `count(*)` and `sum` of a 64-bit row hash. `sum(int8)`
//!    accumulates in numeric/int128 on the server, so it cannot overflow.
//!    Measured on PG 15, 2 M rows: `sum(hashtextextended(row_text, 0))` costs
//!    the same as `sum(hashtext(t::text))` (≈1.9 s), the md5-based hash ≈4.9 s,
//!    and the per-row `width_bucket` ≈+25 %. Only counts and sums cross the
//!    network.
//! 3. **Bisection**: a range whose count or hash differs is split (sampled
//!    again on the side with more rows, [`VerifyOptions::fanout`] ways, index
//!    range scans) until it holds ≤ [`VerifyOptions::leaf_rows`] rows; then the
//!    keys and row hashes of that range are compared, and only for keys whose
//!    hashes differ are the normalised column values fetched, to name the
//!    changed columns.
//!
//! Tables without a primary key are compared as a multiset (one bucket), or by
//! a key the caller declares. Every query runs under `statement_timeout`;
//! cancelling sends `pg_cancel_backend` for every running query, so no scan
//! keeps running on the server.
//!
//! Key ranges are compared with each side's own ordering of the key type. For
//! text keys that is the column's collation: if the two servers sort text
//! differently (another glibc/ICU version), a row can fall into different
//! ranges on the two sides and shows as missing in one range and extra in
//! another under the same key; such pairs name the key, so they are easy to
//! tell apart from real differences.
//!
//! Measured by `benches/verify.rs` (10 M rows, both clusters on one 2-core
//! machine, PG 15): 1 connection per side ≈1.2× the serial floor of one
//! `sum(hashtext(t::text))` scan per side, 2 connections per side ≈1.0×;
//! locating one changed row adds a second or two of index range scans.
//!
//! Each query sees its own snapshot: on a live source, ranges changing while
//! they are compared can show differences that are only replication lag.
//! Verify ranges older than the lag window, or with writes frozen.

pub mod continuous;
pub mod report;
pub mod sql;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, watch};
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Row};

pub use continuous::{
    verify_continuous, verify_final, ContinuousOptions, ContinuousProgress, ContinuousReport,
    ContinuousStatus, ContinuousTable, RangeRecord, RangeState,
};
pub use report::{DiffKind, Method, RowDifference, TableStatus, TableVerify, VerifyReport};
pub use sql::HashKind;
use sql::{Column, Key, KeyRange, Plan};

use crate::config::{Config, ConnConfig};
use crate::pg::conn::connect;
use crate::pg::error_text;
use crate::pg::monitor::qualified;
use crate::session::sample::{Side, TableRef};

pub const VERIFY_APP_NAME: &str = "cutover-verify";

/// Below this estimate, boundaries come from the whole key index, not a sample.
const EXACT_SAMPLE_BELOW: f64 = 1_000_000.0;
/// Sampled keys per range when sampling pages.
const SAMPLE_PER_RANGE: u64 = 32;
/// Smallest heap slice worth its own query.
const MIN_CHUNK_BLOCKS: u64 = 1024;
/// Guards against endless splitting of ranges of equal (declared, non-unique) keys.
const MAX_DEPTH: u32 = 12;

#[derive(Debug, Clone)]
pub struct VerifyOptions {
    /// Connections per side; each runs one query at a time.
    pub parallelism: usize,
    /// `statement_timeout` of every query (the largest is one heap slice).
    pub statement_timeout: Duration,
    /// Target rows per range of the first pass.
    pub bucket_rows: u64,
    /// Ranges at or below this many rows are compared row by row.
    pub leaf_rows: u64,
    /// Sub-ranges per split.
    pub fanout: u64,
    pub hash: HashKind,
    /// Keys for tables without a primary key (ignored where one exists).
    pub keys: BTreeMap<TableRef, Vec<String>>,
    /// Differences listed per table; more are counted, not listed.
    pub max_differences: usize,
    /// Set to `true` to cancel; running queries are cancelled on the servers.
    pub cancel: Option<watch::Receiver<bool>>,
    /// While `true`, no new query starts (gh-ost's throttle: the caller sets it
    /// when replication lag or source load rises); running ones finish.
    pub pause: Option<watch::Receiver<bool>>,
}

impl Default for VerifyOptions {
    fn default() -> Self {
        VerifyOptions {
            parallelism: 2,
            statement_timeout: Duration::from_secs(600),
            bucket_rows: 20_000,
            leaf_rows: 256,
            fanout: 16,
            hash: HashKind::HashText,
            keys: BTreeMap::new(),
            max_differences: 1000,
            cancel: None,
            pause: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifyProgress {
    pub table: TableRef,
    pub ranges_done: u64,
    pub ranges_total: u64,
    /// Source rows covered so far.
    pub rows_done: u64,
    /// Row differences found so far.
    pub mismatches: u64,
}

/// Verifies `tables` one after another; per-table failures are reported in
/// the table's entry, connection failures are errors. A cancelled run returns
/// the tables done so far with `cancelled` set.
pub async fn verify_tables(
    config: &Config,
    tables: &[TableRef],
    opts: &VerifyOptions,
    mut progress: impl FnMut(VerifyProgress),
) -> Result<VerifyReport> {
    let started = Instant::now();
    let w = opts.parallelism.max(1);
    let ctx = Ctx::new(config, opts);
    let (src, tgt) = open_both(&ctx, opts).await?;
    let mut report = VerifyReport {
        tables: Vec::new(),
        cancelled: false,
        hash: opts.hash,
        parallelism: w,
        elapsed_ms: 0.0,
    };
    for t in tables {
        if ctx.is_cancelled() {
            report.cancelled = true;
            break;
        }
        let tv = verify_table(&ctx, &src, &tgt, t, opts, &mut progress).await;
        let stop = tv.status == TableStatus::Cancelled;
        report.tables.push(tv);
        if stop {
            report.cancelled = true;
            break;
        }
    }
    report.elapsed_ms = ms(started);
    Ok(report)
}

fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1000.0
}

struct Ctx<'a> {
    source: &'a ConnConfig,
    target: &'a ConnConfig,
    connect_timeout: Duration,
    cancel: Option<watch::Receiver<bool>>,
    pause: Option<watch::Receiver<bool>>,
}

impl<'a> Ctx<'a> {
    fn new(config: &'a Config, opts: &VerifyOptions) -> Self {
        Ctx {
            source: &config.source,
            target: &config.target,
            connect_timeout: Duration::from_millis(config.monitor.connect_timeout_ms),
            cancel: opts.cancel.clone(),
            pause: opts.pause.clone(),
        }
    }

    /// Sleeps until `until`; a cancel ends the sleep early with `Fail::Cancelled`.
    async fn sleep_until(&self, until: Instant) -> Result<(), Fail> {
        let sleep = tokio::time::sleep_until(until.into());
        let Some(mut cancel) = self.cancel.clone() else {
            sleep.await;
            return Ok(());
        };
        tokio::select! {
            _ = sleep => Ok(()),
            // The guard `wait_for` returns must not live across the await below
            // (it is not Send, and the console runs this on a spawned task).
            r = async { cancel.wait_for(|c| *c).await.map(|_| ()) } => match r {
                Ok(()) => Err(Fail::Cancelled),
                Err(_) => {
                    // Nobody can cancel any more.
                    tokio::time::sleep_until(until.into()).await;
                    Ok(())
                }
            },
        }
    }

    /// Waits while the caller holds verification back; a cancel ends the wait.
    async fn throttle(&self) -> Result<(), Fail> {
        let Some(mut pause) = self.pause.clone() else {
            return Ok(());
        };
        loop {
            if self.is_cancelled() {
                return Err(Fail::Cancelled);
            }
            if !*pause.borrow_and_update() {
                return Ok(());
            }
            // Re-check cancel at least every second while paused.
            if let Ok(Err(_)) = tokio::time::timeout(Duration::from_secs(1), pause.changed()).await
            {
                // Nobody can hold us back any more.
                return Ok(());
            }
        }
    }

    fn is_cancelled(&self) -> bool {
        self.cancel.as_ref().is_some_and(|c| *c.borrow())
    }
}

struct Conn {
    client: Client,
    pid: i32,
    side: Side,
}

enum Fail {
    Cancelled,
    Sql(String),
}

async fn open_side(
    ctx: &Ctx<'_>,
    cfg: &ConnConfig,
    n: usize,
    opts: &VerifyOptions,
) -> Result<Vec<Conn>> {
    let side = if std::ptr::eq(cfg, ctx.source) {
        Side::Source
    } else {
        Side::Target
    };
    let setup = format!(
        // Reads only wait for locks behind DDL; better to fail than queue behind it.
        "{}; SET statement_timeout = {}; SET lock_timeout = 10000",
        sql::SESSION_SETTINGS,
        opts.statement_timeout.as_millis().max(1)
    );
    let conns = futures::future::try_join_all((0..n).map(|_| async {
        let client = connect(cfg, VERIFY_APP_NAME, ctx.connect_timeout).await?;
        client
            .batch_execute(&setup)
            .await
            .map_err(|e| anyhow::anyhow!(error_text(&e)))?;
        let pid: i32 = client
            .query_one("SELECT pg_catalog.pg_backend_pid()", &[])
            .await
            .map_err(|e| anyhow::anyhow!(error_text(&e)))?
            .get(0);
        anyhow::Ok(Conn { client, pid, side })
    }))
    .await?;
    Ok(conns)
}

/// `parallelism` connections to each side, opened at once.
async fn open_both(ctx: &Ctx<'_>, opts: &VerifyOptions) -> Result<(Vec<Conn>, Vec<Conn>)> {
    let w = opts.parallelism.max(1);
    let (src, tgt) = tokio::join!(
        open_side(ctx, ctx.source, w, opts),
        open_side(ctx, ctx.target, w, opts)
    );
    let src = src.with_context(|| format!("source {}", ctx.source.describe()))?;
    let tgt = tgt.with_context(|| format!("target {}", ctx.target.describe()))?;
    Ok((src, tgt))
}

/// Runs one query; on cancel, stops it on the server before returning.
async fn query(
    ctx: &Ctx<'_>,
    conn: &Conn,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<Vec<Row>, Fail> {
    ctx.throttle().await?;
    let run = conn.client.query(sql, params);
    let Some(cancel) = &ctx.cancel else {
        return run.await.map_err(|e| Fail::Sql(error_text(&e)));
    };
    let mut cancel = cancel.clone();
    if *cancel.borrow() {
        return Err(Fail::Cancelled);
    }
    let cancelled = async move {
        if cancel.wait_for(|c| *c).await.is_err() {
            // Nobody can cancel any more.
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        r = run => r.map_err(|e| Fail::Sql(error_text(&e))),
        _ = cancelled => {
            cancel_backend(ctx, conn).await;
            Err(Fail::Cancelled)
        }
    }
}

/// Through a fresh connection with `pg_cancel_backend`, which works whatever
/// TLS mode the worker's session used (as the exact-count runner does).
async fn cancel_backend(ctx: &Ctx<'_>, conn: &Conn) {
    let cfg = match conn.side {
        Side::Source => ctx.source,
        Side::Target => ctx.target,
    };
    match connect(cfg, VERIFY_APP_NAME, ctx.connect_timeout).await {
        Ok(c) => {
            if let Err(e) = c
                .execute("SELECT pg_catalog.pg_cancel_backend($1)", &[&conn.pid])
                .await
            {
                tracing::warn!(
                    "cancelling verification on {}: {}",
                    cfg.describe(),
                    error_text(&e)
                );
            }
        }
        Err(e) => tracing::warn!("could not connect to cancel verification: {e}"),
    }
}

async fn verify_table(
    ctx: &Ctx<'_>,
    src: &[Conn],
    tgt: &[Conn],
    table: &TableRef,
    opts: &VerifyOptions,
    progress: &mut impl FnMut(VerifyProgress),
) -> TableVerify {
    let started = Instant::now();
    let mut tv = TableVerify::new(table.clone());
    match run_table(ctx, src, tgt, opts, &mut tv, progress).await {
        Ok(()) => {}
        Err(Fail::Cancelled) => tv.status = TableStatus::Cancelled,
        Err(Fail::Sql(e)) => {
            tv.status = TableStatus::Error;
            tv.error = Some(e);
        }
    }
    tv.elapsed_ms = ms(started);
    tv
}

fn columns(rows: &[Row]) -> Vec<Column> {
    rows.iter()
        .map(|r| Column {
            name: r.get(0),
            type_sql: r.get(1),
            base: r.get(2),
            nullable: r.get(3),
            pk_pos: r.get(4),
        })
        .collect()
}

/// Per bucket: rows and hash sum.
type Buckets = BTreeMap<i32, (i64, i128)>;

fn add_buckets(acc: &mut Buckets, rows: &[Row]) -> Result<i64, Fail> {
    let mut n = 0;
    for r in rows {
        let b: i32 = r.get(0);
        let c: i64 = r.get(1);
        let s: String = r.get(2);
        let s: i128 = s
            .parse()
            .map_err(|_| Fail::Sql(format!("unexpected hash sum {s:?}")))?;
        let e = acc.entry(b).or_insert((0, 0));
        e.0 += c;
        e.1 += s;
        n += c;
    }
    Ok(n)
}

/// A range still to compare, with its row counts from the level above.
#[derive(Debug, Clone)]
struct Item {
    range: KeyRange,
    rows_source: u64,
    rows_target: u64,
    depth: u32,
}

fn sub_range(range: &KeyRange, bounds: &[Key], i: usize) -> KeyRange {
    KeyRange {
        lo: if i == 0 {
            range.lo.clone()
        } else {
            Some(bounds[i - 1].clone())
        },
        hi: if i == bounds.len() {
            range.hi.clone()
        } else {
            Some(bounds[i].clone())
        },
    }
}

/// The sub-ranges whose count or hash differ.
fn differing(range: &KeyRange, bounds: &[Key], s: &Buckets, t: &Buckets, depth: u32) -> Vec<Item> {
    (0..=bounds.len())
        .filter_map(|i| {
            let a = s.get(&(i as i32)).copied().unwrap_or((0, 0));
            let b = t.get(&(i as i32)).copied().unwrap_or((0, 0));
            (a != b).then(|| Item {
                range: sub_range(range, bounds, i),
                rows_source: a.0 as u64,
                rows_target: b.0 as u64,
                depth,
            })
        })
        .collect()
}

fn keys_of(rows: &[Row], n: usize) -> Vec<Key> {
    let mut out: Vec<Key> = rows
        .iter()
        .map(|r| (0..n).map(|i| r.get::<_, String>(i)).collect())
        .collect();
    out.dedup();
    out
}

/// A table as both modes compare it: the plan, range boundaries and sizes.
struct Prepared {
    plan: Plan,
    bounds: Vec<Key>,
    /// The planner's row estimate on the source (-1: never analysed).
    est_source: f64,
    blocks_source: u64,
    blocks_target: u64,
}

/// Introspects both sides (common columns, key, method: recorded in `tv`)
/// and reads the range boundaries.
async fn prepare(
    ctx: &Ctx<'_>,
    src: &[Conn],
    tgt: &[Conn],
    opts: &VerifyOptions,
    tv: &mut TableVerify,
    sample_bounds: bool,
) -> Result<Prepared, Fail> {
    let name = qualified(&tv.table);
    let by_name: [&(dyn ToSql + Sync); 1] = [&name];
    let (a, b) = tokio::join!(
        query(ctx, &src[0], sql::COLUMNS_SQL, &by_name),
        query(ctx, &tgt[0], sql::COLUMNS_SQL, &by_name)
    );
    let (cs, ct) = (columns(&a?), columns(&b?));
    let tnames: HashMap<&str, &Column> = ct.iter().map(|c| (c.name.as_str(), c)).collect();
    let snames: HashMap<&str, &Column> = cs.iter().map(|c| (c.name.as_str(), c)).collect();
    tv.columns_only_source = cs
        .iter()
        .filter(|c| !tnames.contains_key(c.name.as_str()))
        .map(|c| c.name.clone())
        .collect();
    tv.columns_only_target = ct
        .iter()
        .filter(|c| !snames.contains_key(c.name.as_str()))
        .map(|c| c.name.clone())
        .collect();
    let common: Vec<Column> = cs
        .iter()
        .filter(|c| tnames.contains_key(c.name.as_str()))
        .cloned()
        .collect();

    let mut pk: Vec<&Column> = common.iter().filter(|c| c.pk_pos.is_some()).collect();
    pk.sort_by_key(|c| c.pk_pos);
    let keys: Vec<Column> = if !pk.is_empty() {
        tv.method = Method::PrimaryKey;
        if pk.iter().any(|c| tnames[c.name.as_str()].pk_pos.is_none()) {
            tv.notes
                .push("the target has no matching primary key: its range scans are slower".into());
        }
        pk.into_iter().cloned().collect()
    } else if let Some(declared) = opts.keys.get(&tv.table) {
        let found: Vec<Column> = declared
            .iter()
            .filter_map(|k| common.iter().find(|c| &c.name == k).cloned())
            .collect();
        if found.len() != declared.len() {
            return Err(Fail::Sql(format!(
                "declared key ({}) names a column missing on a side",
                declared.join(", ")
            )));
        }
        if let Some(c) = found.iter().find(|c| c.nullable) {
            // Range predicates never match NULL, so such rows would go unchecked.
            tv.method = Method::Multiset;
            tv.notes.push(format!(
                "declared key column {} is nullable: compared as a multiset instead",
                c.name
            ));
            Vec::new()
        } else {
            tv.method = Method::DeclaredKey;
            found
        }
    } else {
        tv.method = Method::Multiset;
        Vec::new()
    };
    tv.key_columns = keys.iter().map(|c| c.name.clone()).collect();
    let plan = Plan {
        table: tv.table.clone(),
        columns: common,
        keys,
        hash: opts.hash,
    };

    let (a, b) = tokio::join!(
        query(ctx, &src[0], sql::SIZE_SQL, &by_name),
        query(ctx, &tgt[0], sql::SIZE_SQL, &by_name)
    );
    let size = |rows: Vec<Row>| -> (f64, u64) {
        rows.first()
            .map(|r| (r.get::<_, f64>(0), r.get::<_, i64>(1).max(0) as u64))
            .unwrap_or((-1.0, 0))
    };
    let ((est_s, blocks_s), (est_t, blocks_t)) = (size(a?), size(b?));

    let bounds: Vec<Key> = if plan.keys.is_empty() || !sample_bounds {
        Vec::new()
    } else {
        let (est, conn) = if blocks_t > blocks_s {
            (est_t, &tgt[0])
        } else {
            (est_s, &src[0])
        };
        let sql = if est < EXACT_SAMPLE_BELOW {
            plan.sample_sql(&KeyRange::default(), opts.bucket_rows.max(1), None)
        } else {
            let pct = (100.0 * SAMPLE_PER_RANGE as f64 / opts.bucket_rows.max(1) as f64).min(100.0);
            plan.sample_sql(&KeyRange::default(), SAMPLE_PER_RANGE, Some(pct))
        };
        keys_of(&query(ctx, conn, &sql, &[]).await?, plan.keys.len())
    };
    Ok(Prepared {
        plan,
        bounds,
        est_source: est_s,
        blocks_source: blocks_s,
        blocks_target: blocks_t,
    })
}

async fn run_table(
    ctx: &Ctx<'_>,
    src: &[Conn],
    tgt: &[Conn],
    opts: &VerifyOptions,
    tv: &mut TableVerify,
    progress: &mut impl FnMut(VerifyProgress),
) -> Result<(), Fail> {
    let Prepared {
        plan,
        bounds,
        blocks_source: blocks_s,
        blocks_target: blocks_t,
        ..
    } = prepare(ctx, src, tgt, opts, tv, true).await?;

    // First pass: each side scans its heap once, slices shared out.
    let nranges = bounds.len() as u64 + 1;
    let mut ranges_total = nranges;
    let (tx, mut rx) = mpsc::unbounded_channel::<(Side, u64)>();
    let whole = KeyRange::default();
    let pass_s = side_pass(ctx, src, &plan, &whole, &bounds, blocks_s, tx.clone());
    let pass_t = side_pass(ctx, tgt, &plan, &whole, &bounds, blocks_t, tx);
    let both = async { tokio::join!(pass_s, pass_t) };
    tokio::pin!(both);
    let chunks_s = chunks(blocks_s, src.len()).len() as u64;
    let chunks_t = chunks(blocks_t, tgt.len()).len() as u64;
    let (mut done_s, mut done_t, mut rows_done) = (0u64, 0u64, 0u64);
    let (rs, rt) = loop {
        tokio::select! {
            r = &mut both => break r,
            Some((side, rows)) = rx.recv() => {
                match side {
                    Side::Source => { done_s += 1; rows_done += rows; }
                    Side::Target => done_t += 1,
                }
                let frac = (done_s as f64 / chunks_s as f64).min(done_t as f64 / chunks_t as f64);
                progress(VerifyProgress {
                    table: tv.table.clone(),
                    ranges_done: (frac * nranges as f64) as u64,
                    ranges_total,
                    rows_done,
                    mismatches: 0,
                });
            }
        }
    };
    let ((bs, time_s), (bt, time_t)) = (rs?, rt?);
    tv.rows_source = bs.values().map(|v| v.0 as u64).sum();
    tv.rows_target = bt.values().map(|v| v.0 as u64).sum();
    tv.source_rows_per_sec = tv.rows_source as f64 / time_s.as_secs_f64().max(1e-6);
    tv.target_rows_per_sec = tv.rows_target as f64 / time_t.as_secs_f64().max(1e-6);
    tv.ranges_checked = nranges;
    let items = differing(&whole, &bounds, &bs, &bt, 0);
    let mut ranges_done = nranges;
    progress(VerifyProgress {
        table: tv.table.clone(),
        ranges_done,
        ranges_total,
        rows_done: tv.rows_source,
        mismatches: 0,
    });

    if plan.keys.is_empty() {
        if !items.is_empty() {
            tv.status = TableStatus::Mismatch;
            tv.notes.push(
                "row count or content hash differs; without a key the rows cannot be located \
                 (declare a key to pinpoint them)"
                    .into(),
            );
        }
        finish_status(tv);
        return Ok(());
    }

    let first_pass_mismatch = !items.is_empty();
    ranges_total += items.len() as u64;
    bisect(ctx, src, tgt, &plan, items, opts, |out| {
        ranges_done += 1;
        ranges_total += out.sub.len() as u64;
        tv.ranges_checked += out.checked;
        for d in std::mem::take(&mut out.diffs) {
            tv.differences_total += 1;
            if tv.differences.len() < opts.max_differences {
                tv.differences.push(d);
            }
        }
        progress(VerifyProgress {
            table: tv.table.clone(),
            ranges_done,
            ranges_total,
            rows_done: tv.rows_source,
            mismatches: tv.differences_total,
        });
    })
    .await?;
    if first_pass_mismatch && tv.differences_total == 0 {
        tv.notes.push(
            "ranges differed in the first pass but no row differed when re-read \
             (rows changing while verifying?)"
                .into(),
        );
    }
    finish_status(tv);
    Ok(())
}

/// Splits differing ranges down to rows, `src[i]`/`tgt[i]` pairs working
/// through one shared queue; `absorb` sees each outcome (its `diffs` may be
/// taken) before its sub-ranges are queued.
async fn bisect(
    ctx: &Ctx<'_>,
    src: &[Conn],
    tgt: &[Conn],
    plan: &Plan,
    mut items: Vec<Item>,
    opts: &VerifyOptions,
    mut absorb: impl FnMut(&mut Outcome),
) -> Result<(), Fail> {
    while !items.is_empty() {
        let queue = Mutex::new(VecDeque::from(std::mem::take(&mut items)));
        let (tx, mut rx) = mpsc::unbounded_channel::<Outcome>();
        let workers = futures::future::join_all(src.iter().zip(tgt).map(|(s, t)| {
            let (queue, tx) = (&queue, tx.clone());
            async move {
                loop {
                    let next = queue.lock().expect("queue lock").pop_front();
                    let Some(item) = next else { return Ok(()) };
                    let out = process(ctx, s, t, plan, item, opts).await?;
                    let _ = tx.send(out);
                }
            }
        }));
        drop(tx);
        tokio::pin!(workers);
        let mut take = |mut out: Outcome, items: &mut Vec<Item>| {
            absorb(&mut out);
            items.extend(out.sub);
        };
        let results = loop {
            tokio::select! {
                r = &mut workers => break r,
                Some(out) = rx.recv() => take(out, &mut items),
            }
        };
        while let Ok(out) = rx.try_recv() {
            take(out, &mut items);
        }
        workers_outcome(results)?;
    }
    Ok(())
}

/// Parallel workers' results as one: cancelled if any was, else the last
/// failure, else Ok.
fn workers_outcome(results: Vec<Result<(), Fail>>) -> Result<(), Fail> {
    let mut failure = None;
    for r in results {
        match r {
            Ok(()) => {}
            Err(Fail::Cancelled) => return Err(Fail::Cancelled),
            Err(e) => failure = Some(e),
        }
    }
    failure.map_or(Ok(()), Err)
}

fn finish_status(tv: &mut TableVerify) {
    if tv.differences_total > 0
        || !tv.columns_only_source.is_empty()
        || !tv.columns_only_target.is_empty()
        || tv.rows_source != tv.rows_target
    {
        tv.status = TableStatus::Mismatch;
    }
}

/// Heap block slices `[from, to)`, the last one open so rows in blocks added
/// since the size was read are counted too.
fn chunks(blocks: u64, workers: usize) -> Vec<(u64, Option<u64>)> {
    let n = (blocks / MIN_CHUNK_BLOCKS).clamp(1, 4 * workers.max(1) as u64);
    (0..n)
        .map(|i| {
            let from = blocks * i / n;
            let to = (i + 1 < n).then(|| blocks * (i + 1) / n);
            (from, to)
        })
        .collect()
}

async fn side_pass(
    ctx: &Ctx<'_>,
    conns: &[Conn],
    plan: &Plan,
    range: &KeyRange,
    bounds: &[Key],
    blocks: u64,
    tx: mpsc::UnboundedSender<(Side, u64)>,
) -> Result<(Buckets, Duration), Fail> {
    let started = Instant::now();
    let queue = Mutex::new(VecDeque::from(chunks(blocks, conns.len())));
    let results = futures::future::join_all(conns.iter().map(|c| {
        let (queue, tx) = (&queue, tx.clone());
        async move {
            let mut acc = Buckets::new();
            loop {
                let next = queue.lock().expect("queue lock").pop_front();
                let Some(slice) = next else { return Ok(acc) };
                let rows = query(ctx, c, &plan.bucket_sql(range, bounds, Some(slice)), &[]).await?;
                let n = add_buckets(&mut acc, &rows)?;
                let _ = tx.send((c.side, n as u64));
            }
        }
    }))
    .await;
    let mut total = Buckets::new();
    for r in results {
        for (b, (c, s)) in r? {
            let e = total.entry(b).or_insert((0, 0));
            e.0 += c;
            e.1 += s;
        }
    }
    Ok((total, started.elapsed()))
}

struct Outcome {
    sub: Vec<Item>,
    diffs: Vec<RowDifference>,
    checked: u64,
}

async fn process(
    ctx: &Ctx<'_>,
    s: &Conn,
    t: &Conn,
    plan: &Plan,
    item: Item,
    opts: &VerifyOptions,
) -> Result<Outcome, Fail> {
    let rows = item.rows_source.max(item.rows_target);
    if rows <= opts.leaf_rows || item.depth >= MAX_DEPTH {
        return leaf(ctx, s, t, plan, &item.range).await;
    }
    let step = rows.div_ceil(opts.fanout.max(2));
    let sampler = if item.rows_source >= item.rows_target {
        s
    } else {
        t
    };
    let sample = query(ctx, sampler, &plan.sample_sql(&item.range, step, None), &[]).await?;
    let bounds = keys_of(&sample, plan.keys.len());
    if bounds.is_empty() {
        return leaf(ctx, s, t, plan, &item.range).await;
    }
    let sql = plan.bucket_sql(&item.range, &bounds, None);
    let (a, b) = tokio::join!(query(ctx, s, &sql, &[]), query(ctx, t, &sql, &[]));
    let (mut bs, mut bt) = (Buckets::new(), Buckets::new());
    add_buckets(&mut bs, &a?)?;
    add_buckets(&mut bt, &b?)?;
    Ok(Outcome {
        sub: differing(&item.range, &bounds, &bs, &bt, item.depth + 1),
        diffs: Vec::new(),
        checked: bounds.len() as u64 + 1,
    })
}

/// Row by row within a small range: keys and hashes first, full rows only
/// for keys present on both sides with different hashes.
async fn leaf(
    ctx: &Ctx<'_>,
    s: &Conn,
    t: &Conn,
    plan: &Plan,
    range: &KeyRange,
) -> Result<Outcome, Fail> {
    let n = plan.keys.len();
    let sql = plan.leaf_sql(range);
    let (a, b) = tokio::join!(query(ctx, s, &sql, &[]), query(ctx, t, &sql, &[]));
    let mut by_key: BTreeMap<Key, (Vec<i64>, Vec<i64>)> = BTreeMap::new();
    for r in a? {
        let k: Key = (0..n).map(|i| r.get::<_, String>(i)).collect();
        by_key.entry(k).or_default().0.push(r.get(n));
    }
    for r in b? {
        let k: Key = (0..n).map(|i| r.get::<_, String>(i)).collect();
        by_key.entry(k).or_default().1.push(r.get(n));
    }
    let mut diffs = Vec::new();
    let mut changed: Vec<Key> = Vec::new();
    for (k, (mut hs, mut ht)) in by_key {
        if hs.len() == 1 && ht.len() == 1 {
            if hs[0] != ht[0] {
                changed.push(k);
            }
            continue;
        }
        // Several rows per key (declared, non-unique keys): a multiset difference.
        hs.sort_unstable();
        ht.sort_unstable();
        let (only_s, only_t) = multiset_diff(&hs, &ht);
        for (count, kind) in [
            (only_s, DiffKind::MissingOnTarget),
            (only_t, DiffKind::ExtraOnTarget),
        ] {
            for _ in 0..count {
                diffs.push(RowDifference {
                    kind,
                    key: plan.describe_key(&k),
                    columns: Vec::new(),
                });
            }
        }
    }
    if !changed.is_empty() {
        let sql = plan.rows_sql(range, &changed);
        let (a, b) = tokio::join!(query(ctx, s, &sql, &[]), query(ctx, t, &sql, &[]));
        let values = |rows: Vec<Row>| -> HashMap<Key, Vec<Option<String>>> {
            rows.iter()
                .map(|r| {
                    let k: Key = (0..n).map(|i| r.get::<_, String>(i)).collect();
                    let v = (n..r.len())
                        .map(|i| r.get::<_, Option<String>>(i))
                        .collect();
                    (k, v)
                })
                .collect()
        };
        let (vs, vt) = (values(a?), values(b?));
        for k in changed {
            // A row gone between the two reads shows as changed with no columns.
            let columns = match (vs.get(&k), vt.get(&k)) {
                (Some(x), Some(y)) => plan
                    .columns
                    .iter()
                    .zip(x.iter().zip(y))
                    .filter(|(_, (p, q))| p != q)
                    .map(|(c, _)| c.name.clone())
                    .collect(),
                _ => Vec::new(),
            };
            diffs.push(RowDifference {
                kind: DiffKind::Changed,
                key: plan.describe_key(&k),
                columns,
            });
        }
    }
    Ok(Outcome {
        sub: Vec::new(),
        diffs,
        checked: 0,
    })
}

/// Elements of sorted `a` not matched in sorted `b`, and the reverse.
fn multiset_diff(a: &[i64], b: &[i64]) -> (usize, usize) {
    let (mut i, mut j, mut only_a, mut only_b) = (0, 0, 0, 0);
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Equal => {
                i += 1;
                j += 1;
            }
            std::cmp::Ordering::Less => {
                only_a += 1;
                i += 1;
            }
            std::cmp::Ordering::Greater => {
                only_b += 1;
                j += 1;
            }
        }
    }
    (only_a + a.len() - i, only_b + b.len() - j)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multiset_difference_counts_unmatched_rows() {
        assert_eq!(multiset_diff(&[1, 2, 2, 5], &[2, 3, 5]), (2, 1));
        assert_eq!(multiset_diff(&[], &[1]), (0, 1));
    }

    #[test]
    fn slices_cover_the_heap_and_leave_the_end_open() {
        assert_eq!(chunks(10, 2), vec![(0, None)]);
        let c = chunks(8192, 2);
        assert_eq!(c.len(), 8);
        assert_eq!(c[0], (0, Some(1024)));
        assert_eq!(c[7], (7168, None));
    }

    #[test]
    fn sub_ranges_follow_width_bucket_numbering() {
        let r = KeyRange::default();
        let b = vec![vec!["10".to_string()], vec!["20".to_string()]];
        assert_eq!(sub_range(&r, &b, 0).hi, Some(vec!["10".to_string()]));
        assert_eq!(sub_range(&r, &b, 1).lo, Some(vec!["10".to_string()]));
        assert_eq!(sub_range(&r, &b, 2).hi, None);
    }
}
