//! Checksum verification vs the cost floor, on a generated table in both lab
//! clusters (`VERIFY_BENCH_ROWS`, default 10 000 000; `VERIFY_BENCH_DIR` to
//! keep the lab somewhere other than a temp dir).
//!
//! Side by side in one run:
//! - the floor: one `SELECT sum(hashtext(t::text)) FROM t` per side, both at
//!   once (with the server's default parallel query, and without);
//! - this engine on identical tables, then with one row changed on the target;
//! - the hands-on lab's `md5(string_agg(t::text, '' ORDER BY id))` per side.
//!
//! Prints wall times, ratios to the floor and rows/s per side. A plain main
//! (harness = false): each measurement takes seconds, criterion's repetition
//! would take an hour.

use std::time::{Duration, Instant};

use cutover::config;
use cutover::lab::{self, seed, LabOptions};
use cutover::session::sample::TableRef;
use cutover::verify::{verify_tables, HashKind, VerifyOptions, VerifyReport};

const TABLE: &str = "verify_bench";

fn rows() -> u64 {
    std::env::var("VERIFY_BENCH_ROWS")
        .ok()
        .and_then(|v| v.trim().replace('_', "").parse().ok())
        .unwrap_or(10_000_000)
}

async fn on_both(src: &str, tgt: &str, sql: &str) -> anyhow::Result<(Duration, Duration)> {
    let run = |conninfo: String, sql: String| async move {
        let c = seed::connect(&conninfo).await?;
        let t = Instant::now();
        c.batch_execute(&sql).await?;
        anyhow::Ok(t.elapsed())
    };
    let (a, b) = tokio::join!(run(src.into(), sql.into()), run(tgt.into(), sql.into()));
    Ok((a?, b?))
}

fn line(name: &str, wall: Duration, floor: Duration, n: u64, note: &str) {
    println!(
        "{name:<44} {:>8.2}s  {:>5.2}× floor  {:>6.2}M rows/s per side  {note}",
        wall.as_secs_f64(),
        wall.as_secs_f64() / floor.as_secs_f64(),
        n as f64 / wall.as_secs_f64() / 1e6
    );
}

async fn engine(
    cfg: &config::Config,
    opts: &VerifyOptions,
) -> anyhow::Result<(Duration, VerifyReport)> {
    let t = Instant::now();
    let report = verify_tables(cfg, &[TableRef::new("public", TABLE)], opts, |_| {}).await?;
    Ok((t.elapsed(), report))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let n = rows();
    let keep = std::env::var_os("VERIFY_BENCH_DIR");
    let tmp = tempfile::Builder::new()
        .prefix("cutover-verify-bench")
        .tempdir()?;
    let dir = keep
        .map(Into::into)
        .unwrap_or_else(|| tmp.path().join("lab"));
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755))?;
    }
    let info = lab::up(&LabOptions {
        dir: dir.clone(),
        rows: 1000,
        load_rate: 0,
        ..LabOptions::default()
    })
    .await?;
    let result = run(&info, n).await;
    if std::env::var_os("VERIFY_BENCH_DIR").is_none() {
        lab::down(&dir)?;
    }
    result
}

async fn run(info: &lab::LabInfo, n: u64) -> anyhow::Result<()> {
    let (src, tgt) = (info.source_conninfo.as_str(), info.target_conninfo.as_str());
    let t = Instant::now();
    on_both(
        src,
        tgt,
        &format!(
            "DROP TABLE IF EXISTS {TABLE};
             CREATE TABLE {TABLE} (id bigint, a int, b text, c numeric, d timestamptz, e double precision);
             INSERT INTO {TABLE} SELECT g, g % 1000, md5(g::text), g * 0.01,
                    timestamptz '2024-01-01 00:00:00+00' + g * interval '1 second', g / 7.0
               FROM generate_series(1, {n}) g;
             ALTER TABLE {TABLE} ADD PRIMARY KEY (id);"
        ),
    )
    .await?;
    // Not in the batch above: VACUUM refuses to run inside its implicit transaction.
    on_both(src, tgt, &format!("VACUUM ANALYZE {TABLE}")).await?;
    println!(
        "generated {n} rows per side in {:.1}s (PostgreSQL {})",
        t.elapsed().as_secs_f64(),
        info.bin.version
    );
    let cfg = config::load(&info.config_path)?;

    // Warm the page cache so the first measurement is not the only cold one.
    on_both(src, tgt, &format!("SELECT count(*) FROM {TABLE}")).await?;

    let floor_sql = format!("SELECT sum(hashtext(t::text)) FROM {TABLE} t");
    let (a, b) = on_both(src, tgt, &floor_sql).await?;
    let floor = a.max(b);
    let (a0, b0) = on_both(
        src,
        tgt,
        &format!("SET max_parallel_workers_per_gather = 0; {floor_sql}"),
    )
    .await?;
    let floor_serial = a0.max(b0);
    println!();
    line(
        "floor: sum(hashtext(t::text)), default",
        floor,
        floor,
        n,
        "",
    );
    line(
        "floor: same, no parallel workers",
        floor_serial,
        floor,
        n,
        "",
    );

    for (name, opts) in [
        (
            "engine, identical, 1 conn/side",
            VerifyOptions {
                parallelism: 1,
                ..Default::default()
            },
        ),
        (
            "engine, identical, 2 conns/side",
            VerifyOptions {
                parallelism: 2,
                ..Default::default()
            },
        ),
        (
            "engine, identical, md5 hash, 1 conn/side",
            VerifyOptions {
                parallelism: 1,
                hash: HashKind::Md5,
                ..Default::default()
            },
        ),
    ] {
        let (wall, report) = engine(&cfg, &opts).await?;
        let t = &report.tables[0];
        line(
            name,
            wall,
            floor,
            n,
            &format!(
                "{:?}, {} ranges; src {:.2}M/s tgt {:.2}M/s",
                t.status,
                t.ranges_checked,
                t.source_rows_per_sec / 1e6,
                t.target_rows_per_sec / 1e6
            ),
        );
    }

    let victim = n / 2 + 17;
    seed::connect(tgt)
        .await?
        .batch_execute(&format!(
            "UPDATE {TABLE} SET b = 'changed' WHERE id = {victim}"
        ))
        .await?;
    for (name, parallelism) in [
        ("engine, one row changed, 1 conn/side", 1),
        ("engine, one row changed, 2 conns/side", 2),
    ] {
        let opts = VerifyOptions {
            parallelism,
            ..Default::default()
        };
        let (wall, report) = engine(&cfg, &opts).await?;
        let t = &report.tables[0];
        let found: Vec<String> = t
            .differences
            .iter()
            .map(|d| format!("{:?} {} {:?}", d.kind, d.key, d.columns))
            .collect();
        // The first pass's time follows from its rate; the rest is setup and bisection.
        let pass = t.rows_source as f64 / t.source_rows_per_sec.max(1e-9);
        line(
            name,
            wall,
            floor,
            n,
            &format!(
                "first pass {pass:.2}s; {} ranges; found {}",
                t.ranges_checked,
                found.join("; ")
            ),
        );
    }

    let lab_sql = format!("SELECT md5(string_agg(t::text, '' ORDER BY id)) FROM {TABLE} t");
    match on_both(src, tgt, &lab_sql).await {
        Ok((a, b)) => line(
            "hands-on lab: md5(string_agg ORDER BY id)",
            a.max(b),
            floor,
            n,
            "no location of differences",
        ),
        Err(e) => println!("hands-on lab: md5(string_agg ORDER BY id) failed: {e:#}"),
    }
    Ok(())
}
