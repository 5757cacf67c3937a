//! Database time one monitoring poll costs the source and the target, read from
//! pg_stat_statements, beside two baselines run on the same clusters in the same
//! run: a bare `SELECT 1` round trip (the floor of any poll) and what a naive
//! monitor does, `count(*)` of every table each second.
//!
//! `cargo bench --bench monitor_cost` (env MONITOR_BENCH_ROWS, default 1 000 000;
//! MONITOR_BENCH_POLLS, default 200).

mod common;

use std::time::{Duration, Instant};

use cutover::lab::{self, LabOptions};
use cutover::pg::collector::open_monitor_connection;
use cutover::pg::monitor::{poll_source, poll_target, qualified};
use tokio_postgres::Client;

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Total execution time (ms) of every statement since the last reset, minus the reset itself.
async fn db_time_ms(admin: &Client) -> f64 {
    admin
        .query_one(
            "SELECT coalesce(sum(total_exec_time), 0)::float8 FROM pg_stat_statements \
              WHERE query NOT ILIKE '%pg_stat_statements%' AND dbid = (SELECT oid FROM pg_database WHERE datname = current_database())",
            &[],
        )
        .await
        .unwrap()
        .get(0)
}

async fn reset(admin: &Client) {
    admin
        .batch_execute("SELECT pg_stat_statements_reset()")
        .await
        .unwrap();
}

struct Figures {
    db_ms_per_poll: f64,
    wall_ms_per_poll: f64,
}

async fn measure<F, Fut>(admin: &Client, polls: u64, mut poll: F) -> Figures
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    poll().await; // warm the plan cache and the connection
    reset(admin).await;
    let start = Instant::now();
    for _ in 0..polls {
        poll().await;
    }
    let wall = start.elapsed();
    Figures {
        db_ms_per_poll: db_time_ms(admin).await / polls as f64,
        wall_ms_per_poll: wall.as_secs_f64() * 1000.0 / polls as f64,
    }
}

fn main() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let rows = env_num("MONITOR_BENCH_ROWS", 1_000_000);
        let polls = env_num("MONITOR_BENCH_POLLS", 200);
        let dir =
            std::env::temp_dir().join(format!("cutover-bench-monitor-{}", std::process::id()));
        let info = lab::up(&LabOptions {
            dir: dir.clone(),
            rows,
            load_rate: 0,
            ..LabOptions::default()
        })
        .await
        .unwrap();
        let result = std::panic::AssertUnwindSafe(run(&info, polls, rows));
        let outcome = futures::FutureExt::catch_unwind(result).await;
        lab::down(&dir).unwrap();
        if let Err(p) = outcome {
            std::panic::resume_unwind(p);
        }
    });
}

async fn run(info: &lab::LabInfo, polls: u64, rows: u64) {
    let config = cutover::config::load(&info.config_path).unwrap();
    let admin_src = lab::seed::connect(&info.source_conninfo).await.unwrap();
    let admin_tgt = lab::seed::connect(&info.target_conninfo).await.unwrap();
    // A replicating pair, so the slot, sender and subscription queries have rows to read.
    common::replicate(info, &config).await.unwrap();

    let timeout = Duration::from_secs(5);
    let src = open_monitor_connection(&config.source, timeout, 2000)
        .await
        .unwrap();
    let tgt = open_monitor_connection(&config.target, timeout, 2000)
        .await
        .unwrap();
    let all = |_: &str, _: &str| true;
    let tables: Vec<String> = poll_source(&src, &all)
        .await
        .unwrap()
        .tables
        .iter()
        .map(|t| qualified(&t.table))
        .collect();

    let ours_src = measure(&admin_src, polls, || async {
        poll_source(&src, &all).await.unwrap();
    })
    .await;
    let ours_tgt = measure(&admin_tgt, polls, || async {
        poll_target(&tgt, &all).await.unwrap();
    })
    .await;
    let floor = measure(&admin_src, polls, || async {
        src.query_one("SELECT 1", &[]).await.unwrap();
    })
    .await;
    let naive_polls = (polls / 10).max(5);
    let naive = measure(&admin_src, naive_polls, || async {
        for t in &tables {
            src.query_one(&format!("SELECT count(*) FROM {t}"), &[])
                .await
                .unwrap();
        }
    })
    .await;

    println!(
        "monitoring cost per poll ({polls} polls, source seeded with {rows} rows, replicating)"
    );
    println!(
        "{:<34} {:>12} {:>12} {:>14}",
        "", "db ms/poll", "wall ms/poll", "db vs naive"
    );
    let line = |name: &str, f: &Figures| {
        println!(
            "{:<34} {:>12.3} {:>12.3} {:>13.4}x",
            name,
            f.db_ms_per_poll,
            f.wall_ms_per_poll,
            f.db_ms_per_poll / naive.db_ms_per_poll
        )
    };
    line("cutover poll, source", &ours_src);
    line("cutover poll, target", &ours_tgt);
    line("floor: SELECT 1", &floor);
    line("naive: count(*) every table", &naive);
    println!(
        "source poll vs floor: {:.1}x db time; target: {:.1}x",
        ours_src.db_ms_per_poll / floor.db_ms_per_poll,
        ours_tgt.db_ms_per_poll / floor.db_ms_per_poll
    );
}
