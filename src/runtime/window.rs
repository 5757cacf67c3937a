//! The steps of the write-freeze window that read more than they write: the
//! wait until a slot has confirmed everything its side had, the final pass
//! (exact counts and checksums in one scan), and stopping a subscription's
//! apply worker.
//! Every round trip is under a deadline; a difference fails the step with
//! the tables (and rows) named.

use std::time::{Duration, Instant};

use anyhow::{anyhow, Result};
use tokio::sync::{mpsc::Sender, watch};

use super::pg_steps::{bounded, open};
use super::verify_task::{continuous_options, LiveVerify};
use crate::config::Config;
use crate::pg::monitor::quote_ident;
use crate::runbook::guard::lsn;
use crate::session::{EventKind, Side, TableRef};
use crate::verify::{verify_final as final_pass, ContinuousStatus};

const POLL: Duration = Duration::from_millis(200);
/// A disabled subscription's worker exits within a moment; not waited for longer.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);
/// The live verification is cancelled when the final check starts; its
/// report is waited for this long, then the final pass re-checks in full.
const LIVE_REPORT_WAIT: Duration = Duration::from_secs(30);

/// `ALTER SUBSCRIPTION … DISABLE`, then wait until the apply worker is gone:
/// only then does it apply nothing more.
pub async fn stop_subscription(config: &Config, name: &str) -> Result<String> {
    let started = Instant::now();
    let ms = config.monitor.statement_timeout_ms;
    let c = open(config, Side::Target, 5_000, ms).await?;
    let sql = format!("ALTER SUBSCRIPTION {} DISABLE", quote_ident(name));
    bounded(
        config,
        Side::Target,
        "disabling the subscription",
        ms,
        c.batch_execute(&sql),
    )
    .await?;
    loop {
        let row = bounded(
            config,
            Side::Target,
            "reading the apply worker",
            ms,
            c.query_one(
                "SELECT count(*) FILTER (WHERE st.pid IS NOT NULL)::int8, count(s.oid)::int8 \
                   FROM pg_catalog.pg_subscription s \
                   LEFT JOIN pg_catalog.pg_stat_subscription st ON st.subid = s.oid \
                  WHERE s.subname = $1",
                &[&name],
            ),
        )
        .await?;
        let (workers, found): (i64, i64) = (row.get(0), row.get(1));
        if found == 0 {
            return Err(anyhow!("subscription {name} does not exist on the target"));
        }
        if workers == 0 {
            return Ok(format!(
                "subscription {name} disabled, its worker gone after {:.1} s: it applies nothing more",
                started.elapsed().as_secs_f64()
            ));
        }
        if started.elapsed() > STOP_TIMEOUT {
            return Err(anyhow!(
                "subscription {name} is disabled but {workers} worker(s) still run after {} s",
                STOP_TIMEOUT.as_secs()
            ));
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Reads `on`'s WAL position now, then waits until `slot` (on `on`) has
/// confirmed it: with `on`'s writes frozen, everything written there has
/// reached the other side.
pub async fn wait_replicated(
    config: &Config,
    on: Side,
    slot: &str,
    timeout: Duration,
) -> Result<String> {
    let started = Instant::now();
    let ms = config.monitor.statement_timeout_ms;
    let c = open(config, on, ms, ms).await?;
    let goal: String = bounded(
        config,
        on,
        "reading the WAL position",
        ms,
        c.query_one("SELECT pg_current_wal_lsn()::text", &[]),
    )
    .await?
    .get(0);
    let want = lsn(&goal).ok_or_else(|| anyhow!("unreadable WAL position {goal}"))?;
    loop {
        let row = bounded(
            config,
            on,
            "reading the slot",
            ms,
            c.query_opt(
                "SELECT confirmed_flush_lsn::text, active FROM pg_catalog.pg_replication_slots \
                  WHERE slot_name = $1",
                &[&slot],
            ),
        )
        .await?;
        let Some(row) = row else {
            return Err(anyhow!("no slot {slot} on the {}", on.as_str()));
        };
        let (confirmed, active): (Option<String>, bool) = (row.get(0), row.get(1));
        let at = confirmed.as_deref().and_then(lsn);
        if at.is_some_and(|a| a >= want) {
            return Ok(format!(
                "slot {slot} confirmed {} ≥ the {}'s {goal} after {:.1} s: everything written \
                 there has arrived",
                confirmed.unwrap_or_default(),
                on.as_str(),
                started.elapsed().as_secs_f64()
            ));
        }
        if started.elapsed() > timeout {
            return Err(anyhow!(
                "slot {slot} at {} after {} s, the {} at {goal}{}",
                confirmed.as_deref().unwrap_or("nothing confirmed"),
                timeout.as_secs(),
                on.as_str(),
                if active {
                    ""
                } else {
                    ": the slot is not in use (is its subscription running?)"
                }
            ));
        }
        tokio::time::sleep(POLL).await;
    }
}

/// The final pass, exact counts included: every key range's `count(*)` and
/// hash on both sides (the ranges cover the whole key space, so their counts
/// add up to each table's exact count, taken in one scan with the
/// checksums). The live verification (cancelled when this checkpoint
/// started) hands over its report, so ranges it verified are re-checked only
/// where rows changed since. Each table's counts are reported (the count
/// pane shows them); any count or range that differs fails the step, the
/// tables and rows named.
pub async fn verify_final(
    id: u64,
    config: &Config,
    tables: &[TableRef],
    live: &watch::Receiver<LiveVerify>,
    tx: &Sender<EventKind>,
) -> Result<String> {
    let mut live = live.clone();
    let previous = match tokio::time::timeout(LIVE_REPORT_WAIT, live.wait_for(|l| !l.running)).await
    {
        Ok(Ok(l)) => l.last.clone(),
        _ => None,
    };
    let (_cancel_tx, cancel) = watch::channel(false);
    let (_pause_tx, pause) = watch::channel(false);
    let opts = continuous_options(config, cancel, pause);
    let report = final_pass(config, tables, &opts, previous.as_deref(), |_| {}).await?;
    let rechecked: u64 = report.tables.iter().map(|t| t.ranges_rechecked).sum();
    let skipped: u64 = report.tables.iter().map(|t| t.ranges_skipped).sum();
    let mut bad = Vec::new();
    let mut rows_total = 0u64;
    let per_table_ms = report.elapsed_ms / report.tables.len().max(1) as f64;
    for t in &report.tables {
        let counted = |side: fn(&crate::verify::RangeRecord) -> Option<u64>| {
            t.ranges.iter().map(side).sum::<Option<u64>>()
        };
        let (source, target) = (counted(|r| r.rows_source), counted(|r| r.rows_target));
        for (side, rows) in [(Side::Source, source), (Side::Target, target)] {
            if let Some(rows) = rows {
                super::exec::send(
                    tx,
                    EventKind::CountProgress {
                        run: id,
                        side,
                        table: t.table.clone(),
                        rows: rows as i64,
                        elapsed_ms: per_table_ms,
                    },
                )
                .await?;
            }
        }
        rows_total += source.unwrap_or(0);
        if let (Some(s), Some(d)) = (source, target) {
            if s != d {
                bad.push(format!("{}: count source {s}, target {d}", t.table));
            }
        }
        if t.status == ContinuousStatus::Verified {
            continue;
        }
        let rows: Vec<String> = t
            .progress
            .differences
            .iter()
            .take(5)
            .map(|d| format!("{:?} {}", d.kind, d.key))
            .collect();
        bad.push(match (&t.error, rows.is_empty()) {
            (Some(e), _) => format!("{}: {e}", t.table),
            (None, true) => format!("{}: {:?}", t.table, t.status),
            (None, false) => format!(
                "{}: {} rows differ ({}{})",
                t.table,
                t.differences_total,
                rows.join(", "),
                if t.differences_total > 5 { ", …" } else { "" }
            ),
        });
    }
    if bad.is_empty() {
        Ok(format!(
            "{} tables equal: {rows_total} rows counted on both sides, {rechecked} ranges \
             re-checked, {skipped} proved unchanged since verified live{} ({:.1} s)",
            report.tables.len(),
            if previous.is_none() {
                " (no live report: all re-checked)"
            } else {
                ""
            },
            report.elapsed_ms / 1000.0
        ))
    } else {
        Err(anyhow!("{}", bad.join("; ")))
    }
}
