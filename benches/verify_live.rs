//! What continuous verification costs a live migration: replication lag in
//! the lab while the source takes a steady write load, side by side in one
//! run with the same load and no verification (the baseline).
//!
//! Phases, each `VERIFY_LIVE_SECS` (default 30) long, on a lab seeded with
//! `VERIFY_LIVE_ROWS` rows (default 1 000 000) and replicating to the target:
//! 1. writes only (baseline);
//! 2. continuous verification as the console runs it (parallelism 1), paused
//!    by the console's max-lag rule;
//! 3. the same at parallelism 2;
//! 4. parallelism 2 with the pause rule off, to show what it holds back.
//!
//! The write load: `VERIFY_LIVE_RATE` writes/s (default 500, as in the
//! hands-on lab), half updates of random existing orders, half new orders.
//! Lag is sampled on the source every 100 ms as the console reads it: bytes
//! from the slot's confirmed_flush_lsn, seconds from pg_stat_replication's
//! flush_lag. Prints p50/p99/max per phase, their ratio to the baseline, and
//! whether the maximum stayed within the configured bound.
//!
//! `cargo bench --bench verify_live` (harness = false: one run takes minutes).

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cutover::config::Config;
use cutover::lab::{self, seed, LabOptions};
use cutover::model::lag_throttle;
use cutover::runtime::verify_task::continuous_options;
use cutover::session::sample::TableRef;
use cutover::verify::{verify_continuous, ContinuousReport};
use tokio::sync::watch;

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().replace('_', "").parse().ok())
        .unwrap_or(default)
}

const TABLES: [&str; 6] = [
    "users",
    "products",
    "orders",
    "order_items",
    "events",
    "audit_log",
];

/// One lag sample, tagged with the phase it was taken in.
#[derive(Clone, Copy)]
struct Sample {
    phase: usize,
    bytes: Option<i64>,
    flush_ms: Option<f64>,
    paused: bool,
}

struct Phase {
    name: &'static str,
    /// Connection pairs; None: no verification.
    parallelism: Option<usize>,
    throttle: bool,
}

struct Outcome {
    report: Option<ContinuousReport>,
    writes: u64,
    failed: u64,
    secs: f64,
}

fn main() -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async {
        let rows = env_num("VERIFY_LIVE_ROWS", 1_000_000);
        let dir =
            std::env::temp_dir().join(format!("cutover-bench-verify-live-{}", std::process::id()));
        let info = lab::up(&LabOptions {
            dir: dir.clone(),
            rows,
            load_rate: 0,
            ..LabOptions::default()
        })
        .await?;
        let result = std::panic::AssertUnwindSafe(run(&info, rows));
        let outcome = futures::FutureExt::catch_unwind(result).await;
        lab::down(&dir)?;
        match outcome {
            Ok(r) => r,
            Err(p) => std::panic::resume_unwind(p),
        }
    })
}

async fn run(info: &lab::LabInfo, rows: u64) -> anyhow::Result<()> {
    let config = cutover::config::load(&info.config_path)?;
    let secs = env_num("VERIFY_LIVE_SECS", 30);
    let rate = env_num("VERIFY_LIVE_RATE", 500);
    common::replicate(info, &config).await?;

    let phase = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let throttle_on = Arc::new(AtomicBool::new(false));
    let (pause_tx, pause_rx) = watch::channel(false);
    let samples = Arc::new(Mutex::new(Vec::<Sample>::new()));
    let sampler = tokio::spawn(sample_lag(
        info.source_conninfo.clone(),
        config.clone(),
        phase.clone(),
        stop.clone(),
        throttle_on.clone(),
        pause_tx,
        samples.clone(),
    ));
    let (writes, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let writer = tokio::spawn(write_load(
        info.source_conninfo.clone(),
        rate,
        stop.clone(),
        writes.clone(),
        failed.clone(),
    ));
    // Let the load reach a steady lag before measuring.
    tokio::time::sleep(Duration::from_secs(5)).await;

    let phases = [
        Phase {
            name: "writes only (baseline)",
            parallelism: None,
            throttle: false,
        },
        Phase {
            name: "continuous verify, parallelism 1, max-lag pause",
            parallelism: Some(1),
            throttle: true,
        },
        Phase {
            name: "continuous verify, parallelism 2, max-lag pause",
            parallelism: Some(2),
            throttle: true,
        },
        Phase {
            name: "continuous verify, parallelism 2, no pause",
            parallelism: Some(2),
            throttle: false,
        },
    ];
    let tables: Vec<TableRef> = TABLES.iter().map(|t| TableRef::new("public", *t)).collect();
    let mut outcomes = Vec::new();
    for (i, p) in phases.iter().enumerate() {
        throttle_on.store(p.throttle, Ordering::Relaxed);
        phase.store(i + 1, Ordering::Relaxed);
        let (w0, f0, t0) = (
            writes.load(Ordering::Relaxed),
            failed.load(Ordering::Relaxed),
            Instant::now(),
        );
        let report = match p.parallelism {
            None => {
                tokio::time::sleep(Duration::from_secs(secs)).await;
                None
            }
            Some(n) => {
                let (cancel_tx, cancel_rx) = watch::channel(false);
                let mut opts = continuous_options(&config, cancel_rx, pause_rx.clone());
                opts.base.parallelism = n;
                let stopper = tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_secs(secs)).await;
                    let _ = cancel_tx.send(true);
                    // Hold the sender until the run has seen it.
                    tokio::time::sleep(Duration::from_secs(60)).await;
                });
                let report = verify_continuous(&config, &tables, &opts, |_| {}).await?;
                stopper.abort();
                Some(report)
            }
        };
        phase.store(0, Ordering::Relaxed);
        outcomes.push(Outcome {
            report,
            writes: writes.load(Ordering::Relaxed) - w0,
            failed: failed.load(Ordering::Relaxed) - f0,
            secs: t0.elapsed().as_secs_f64(),
        });
    }
    stop.store(true, Ordering::Relaxed);
    writer.await??;
    sampler.await??;

    let samples = samples.lock().expect("samples").clone();
    print_results(&config, rows, rate, &phases, &outcomes, &samples);
    Ok(())
}

/// `rate` writes/s on the source until stopped: updates of random existing
/// orders and new orders, paced in 20 ms ticks.
async fn write_load(
    conninfo: String,
    rate: u64,
    stop: Arc<AtomicBool>,
    writes: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
) -> anyhow::Result<()> {
    let c = seed::connect(&conninfo).await?;
    let max_id: i64 = c
        .query_one("SELECT coalesce(max(id), 1) FROM orders", &[])
        .await?
        .get(0);
    let update = c
        .prepare("UPDATE orders SET note = $2, status = 'paid' WHERE id = $1")
        .await?;
    let insert = c
        .prepare(
            "INSERT INTO orders (user_id, total, status) VALUES ($1, $2::float8::numeric, 'new')",
        )
        .await?;
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let per_tick = (rate as f64 / 50.0).max(1.0);
    let (mut owed, mut x, mut n) = (0.0f64, 0x9e37_79b9_7f4a_7c15u64, 0u64);
    while !stop.load(Ordering::Relaxed) {
        tick.tick().await;
        owed += per_tick;
        while owed >= 1.0 {
            owed -= 1.0;
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            n += 1;
            let r = if n % 2 == 0 {
                let id = (x >> 33) as i64 % max_id + 1;
                c.execute(&update, &[&id, &format!("w{n}")]).await
            } else {
                let user = ((x >> 40) % 1000) as i32 + 1;
                c.execute(&insert, &[&user, &((x >> 50) as f64 / 100.0)])
                    .await
            };
            match r {
                Ok(_) => writes.fetch_add(1, Ordering::Relaxed),
                Err(_) => failed.fetch_add(1, Ordering::Relaxed),
            };
        }
    }
    Ok(())
}

/// Every 100 ms: the lag the console would show, and the pause it would set.
async fn sample_lag(
    conninfo: String,
    config: Config,
    phase: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    throttle_on: Arc<AtomicBool>,
    pause: watch::Sender<bool>,
    samples: Arc<Mutex<Vec<Sample>>>,
) -> anyhow::Result<()> {
    let c = seed::connect(&conninfo).await?;
    let q = c
        .prepare(
            "SELECT (SELECT (pg_catalog.pg_current_wal_lsn() - confirmed_flush_lsn)::int8
                       FROM pg_catalog.pg_replication_slots WHERE slot_name = $1),
                    (SELECT extract(epoch FROM flush_lag)::float8 * 1000
                       FROM pg_catalog.pg_stat_replication WHERE application_name = $2
                      LIMIT 1)",
        )
        .await?;
    let t = &config.thresholds;
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    while !stop.load(Ordering::Relaxed) {
        tick.tick().await;
        let row = c
            .query_one(
                &q,
                &[&config.replication.slot, &config.replication.subscription],
            )
            .await?;
        let (bytes, flush_ms): (Option<i64>, Option<f64>) = (row.get(0), row.get(1));
        let paused = throttle_on.load(Ordering::Relaxed)
            && lag_throttle(bytes, flush_ms, t.max_lag_bytes as i64, t.max_lag_seconds).is_some();
        pause.send_replace(paused);
        let p = phase.load(Ordering::Relaxed);
        if p > 0 {
            samples.lock().expect("samples").push(Sample {
                phase: p - 1,
                bytes,
                flush_ms,
                paused,
            });
        }
    }
    Ok(())
}

fn percentiles(mut v: Vec<f64>) -> (f64, f64, f64) {
    if v.is_empty() {
        return (f64::NAN, f64::NAN, f64::NAN);
    }
    v.sort_by(f64::total_cmp);
    let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
    (at(0.5), at(0.99), v[v.len() - 1])
}

fn print_results(
    config: &Config,
    rows: u64,
    rate: u64,
    phases: &[Phase],
    outcomes: &[Outcome],
    samples: &[Sample],
) {
    let t = &config.thresholds;
    println!(
        "replication lag under {rate} writes/s with continuous verification ({rows} seeded rows, \
         bound {} / {:.0} s, pause past half)",
        cutover::ui::fmt::bytes(t.max_lag_bytes as i64),
        t.max_lag_seconds
    );
    println!(
        "{:<50} {:>27} {:>22} {:>7} {:>9} {:>7} {:>17}",
        "phase",
        "lag KiB p50/p99/max",
        "flush lag ms p50/p99",
        "paused",
        "writes/s",
        "checks",
        "rows/s src / tgt"
    );
    let mut base = (f64::NAN, f64::NAN);
    let mut max_bytes = 0.0f64;
    let mut max_ms = 0.0f64;
    for (i, (p, o)) in phases.iter().zip(outcomes).enumerate() {
        let mine: Vec<&Sample> = samples.iter().filter(|s| s.phase == i).collect();
        let kib = percentiles(
            mine.iter()
                .filter_map(|s| s.bytes)
                .map(|b| b as f64 / 1024.0)
                .collect(),
        );
        let ms = percentiles(mine.iter().filter_map(|s| s.flush_ms).collect());
        if i == 0 {
            base = (kib.1, ms.1);
        } else {
            max_bytes = max_bytes.max(kib.2 * 1024.0);
            max_ms = max_ms.max(ms.2);
        }
        let paused = mine.iter().filter(|s| s.paused).count() as f64 / mine.len().max(1) as f64;
        let (checks, src, tgt) = o.report.as_ref().map_or((0, 0.0, 0.0), |r| {
            let n = r.tables.len().max(1) as f64;
            (
                r.tables.iter().map(|t| t.range_checks).sum::<u64>(),
                r.tables.iter().map(|t| t.source_rows_per_sec).sum::<f64>() / n,
                r.tables.iter().map(|t| t.target_rows_per_sec).sum::<f64>() / n,
            )
        });
        println!(
            "{:<50} {:>9.0}/{:>8.0}/{:>8.0} {:>11.0}/{:>10.0} {:>6.0}% {:>9.0} {:>7} {:>8.0} / {:>6.0}",
            p.name,
            kib.0,
            kib.1,
            kib.2,
            ms.0,
            ms.1,
            paused * 100.0,
            o.writes as f64 / o.secs,
            checks,
            src,
            tgt
        );
        if o.failed > 0 {
            println!("    {} writes failed", o.failed);
        }
        if let Some(r) = &o.report {
            let verified = r
                .tables
                .iter()
                .filter(|t| t.progress.ranges_verified == t.progress.ranges_total)
                .count();
            let confirmed: u64 = r.tables.iter().map(|t| t.progress.ranges_mismatched).sum();
            println!(
                "    {} passes, {verified}/{} tables fully verified, {confirmed} ranges confirmed \
                 differing, p99 lag {:.2}× baseline (bytes), {:.2}× (flush time)",
                r.passes,
                r.tables.len(),
                kib.1 / base.0,
                ms.1 / base.1
            );
        }
    }
    println!(
        "max lag while verifying: {} (bound {}), flush {:.0} ms (bound {:.0} ms): {}",
        cutover::ui::fmt::bytes(max_bytes as i64),
        cutover::ui::fmt::bytes(t.max_lag_bytes as i64),
        max_ms,
        t.max_lag_seconds * 1000.0,
        if max_bytes <= t.max_lag_bytes as f64 && max_ms <= t.max_lag_seconds * 1000.0 {
            "within the bound"
        } else {
            "OVER the bound"
        }
    );
}
