//! The one-shot comparison of a table: one pass per side over the heap,
//! then bisection of the differing key ranges down to rows.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio_postgres::Row;

use super::exec::{both, query, workers_outcome, Conn, Ctx, Fail};
use super::prepare::{keys_of, prepare, Prepared};
use super::sql::{Key, KeyRange, Plan};
use super::{DiffKind, RowDifference, TableStatus, TableVerify, VerifyOptions, VerifyProgress};
use crate::session::sample::Side;

/// Smallest heap slice worth its own query.
const MIN_CHUNK_BLOCKS: u64 = 1024;
/// Guards against endless splitting of ranges of equal (declared, non-unique) keys.
const MAX_DEPTH: u32 = 12;

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
pub(super) struct Item {
    pub range: KeyRange,
    pub rows_source: u64,
    pub rows_target: u64,
    pub depth: u32,
}

pub(super) fn sub_range(range: &KeyRange, bounds: &[Key], i: usize) -> KeyRange {
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

pub(super) async fn run_table(
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
    let passes = async { tokio::join!(pass_s, pass_t) };
    tokio::pin!(passes);
    let chunks_s = chunks(blocks_s, src.len()).len() as u64;
    let chunks_t = chunks(blocks_t, tgt.len()).len() as u64;
    let (mut done_s, mut done_t, mut rows_done) = (0u64, 0u64, 0u64);
    let (rs, rt) = loop {
        tokio::select! {
            r = &mut passes => break r,
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
    let ((bs, time_s), (bt, time_t)) = both(rs, rt)?;
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
pub(super) async fn bisect(
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
    let what = format!("checksumming {}", plan.table);
    let queue = Mutex::new(VecDeque::from(chunks(blocks, conns.len())));
    let results = futures::future::join_all(conns.iter().map(|c| {
        let (queue, tx, what) = (&queue, tx.clone(), &what);
        async move {
            let mut acc = Buckets::new();
            loop {
                let next = queue.lock().expect("queue lock").pop_front();
                let Some(slice) = next else { return Ok(acc) };
                let sql = plan.bucket_sql(range, bounds, Some(slice));
                let rows = query(ctx, c, what, &sql, &[]).await?;
                let n = add_buckets(&mut acc, &rows)?;
                let _ = tx.send((c.side, n as u64));
            }
        }
    }))
    .await;
    let mut total = Buckets::new();
    let mut failures = Vec::new();
    for r in results {
        match r {
            Ok(acc) => {
                for (b, (c, s)) in acc {
                    let e = total.entry(b).or_insert((0, 0));
                    e.0 += c;
                    e.1 += s;
                }
            }
            Err(e) => failures.push(Err(e)),
        }
    }
    workers_outcome(failures)?;
    Ok((total, started.elapsed()))
}

pub(super) struct Outcome {
    sub: Vec<Item>,
    pub diffs: Vec<RowDifference>,
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
    let what = format!("sampling key boundaries of {}", plan.table);
    let sample = query(
        ctx,
        sampler,
        &what,
        &plan.sample_sql(&item.range, step, None),
        &[],
    )
    .await?;
    let bounds = keys_of(&sample, plan.keys.len());
    if bounds.is_empty() {
        return leaf(ctx, s, t, plan, &item.range).await;
    }
    let sql = plan.bucket_sql(&item.range, &bounds, None);
    let what = format!("checksumming key ranges of {}", plan.table);
    let (a, b) = tokio::join!(
        query(ctx, s, &what, &sql, &[]),
        query(ctx, t, &what, &sql, &[])
    );
    let (a, b) = both(a, b)?;
    let (mut bs, mut bt) = (Buckets::new(), Buckets::new());
    add_buckets(&mut bs, &a)?;
    add_buckets(&mut bt, &b)?;
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
    let what = format!("comparing rows of {}", plan.table);
    let (a, b) = tokio::join!(
        query(ctx, s, &what, &sql, &[]),
        query(ctx, t, &what, &sql, &[])
    );
    let (a, b) = both(a, b)?;
    let mut by_key: BTreeMap<Key, (Vec<i64>, Vec<i64>)> = BTreeMap::new();
    for r in a {
        let k: Key = (0..n).map(|i| r.get::<_, String>(i)).collect();
        by_key.entry(k).or_default().0.push(r.get(n));
    }
    for r in b {
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
        let what = format!("reading the differing rows of {}", plan.table);
        let (a, b) = tokio::join!(
            query(ctx, s, &what, &sql, &[]),
            query(ctx, t, &what, &sql, &[])
        );
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
        let (a, b) = both(a, b)?;
        let (vs, vt) = (values(a), values(b));
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
