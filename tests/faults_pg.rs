//! PostgreSQL work against a server that stops answering (SIGSTOPped: the
//! kernel still ACKs, so neither keepalives nor its own statement_timeout
//! help): every caller ends at its client-side deadline with a message naming
//! the side, the host and what was running, and never reports a difference.
//! Also: a cancel that reaches the backend before its query does still stops
//! that query.
//!
//! The target is frozen once the query of interest is seen running on it, so
//! the case does not depend on timing. Elapsed-time bounds are hang
//! detectors, not performance targets.

// Each test holds the fault lock for its whole body (its own runtime), so
// holding it across awaits is the point.
#![allow(clippy::await_holding_lock)]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::faults::{exclusive, Frozen};
use common::{both, config as cfg, on_target};

use cutover::pg::Backend;
use cutover::session::sample::{Side, TableRef};
use cutover::session::EventKind;
use cutover::verify::{
    verify_continuous, verify_tables, ContinuousOptions, ContinuousStatus, TableStatus,
    VerifyOptions,
};

/// The verification's statement_timeout: its deadline is 2 s more.
const STATEMENT_TIMEOUT: Duration = Duration::from_secs(3);
const HANG_BOUND: Duration = Duration::from_secs(60);

fn table(name: &str) -> TableRef {
    TableRef::new("public", name)
}

fn target_endpoint() -> String {
    format!("127.0.0.1:{}", common::pair().target_port)
}

fn no_answer(seconds: u64, what: &str) -> String {
    format!(
        "target ({}): no answer within {seconds} s while {what}; the server may be stopped or \
         overloaded",
        target_endpoint()
    )
}

/// A table slow to checksum (md5 row hashes), on both sides, created once.
fn slow_table(name: &str) {
    both(&format!(
        "CREATE TABLE IF NOT EXISTS {name} (id int PRIMARY KEY, v text);
         INSERT INTO {name} SELECT g, repeat(md5(g::text), 20) FROM generate_series(1, 200000) g
           ON CONFLICT DO NOTHING;
         ANALYZE {name};"
    ));
}

/// Waits (on a blocking thread) until a query of `app` whose text contains
/// every one of `like` runs on the target, then freezes the target.
async fn freeze_target_when_running(app: &'static str, like: &'static [&'static str]) -> Frozen {
    tokio::task::spawn_blocking(move || {
        let pair = common::pair();
        let filter: String = like
            .iter()
            .map(|l| format!(" AND query LIKE '%{l}%'"))
            .collect();
        let sql = format!(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = '{app}' \
             AND state = 'active' AND pid <> pg_backend_pid(){filter}"
        );
        let started = Instant::now();
        while pair.psql(&pair.target_conninfo, &sql).trim() == "0" {
            assert!(
                started.elapsed() < HANG_BOUND,
                "no {app} query {like:?} ran on the target"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        Frozen::cluster(&pair.dir.join("target"))
    })
    .await
    .expect("freezing the target")
}

/// Runs a verification while the target is frozen as soon as a verification
/// query containing all of `like` runs on it; returns its result and how
/// long it took.
async fn with_target_frozen_when_running<T>(
    run: impl std::future::Future<Output = T>,
    like: &'static [&'static str],
) -> (T, Duration) {
    let started = Instant::now();
    let (out, frozen) = tokio::join!(
        bounded(run),
        freeze_target_when_running("cutover-verify", like)
    );
    let elapsed = started.elapsed();
    drop(frozen);
    (out, elapsed)
}

/// The errors of `n` tables when the first one's query got no answer
/// while `what`: that, then `not verified: ` and the same for the others.
fn lost(n: usize, what: &str) -> Vec<Option<String>> {
    let message = no_answer(5, what);
    (0..n)
        .map(|i| {
            Some(if i == 0 {
                message.clone()
            } else {
                format!("not verified: {message}")
            })
        })
        .collect()
}

/// Fails the test instead of hanging it.
async fn bounded<T>(run: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(HANG_BOUND, run)
        .await
        .expect("ended within the hang bound")
}

fn opts() -> VerifyOptions {
    VerifyOptions {
        statement_timeout: STATEMENT_TIMEOUT,
        hash: cutover::verify::HashKind::Md5,
        parallelism: 2,
        ..VerifyOptions::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checksum_on_a_stopped_target_fails_with_side_host_and_query() {
    let _x = exclusive();
    slow_table("fp_big");
    slow_table("fp_next");
    let config = cfg();
    let tables = [table("fp_big"), table("fp_next")];
    let opts = opts();
    let (report, elapsed) = with_target_frozen_when_running(
        verify_tables(&config, &tables, &opts, |_| {}),
        // The first pass's slice scans: `... FROM fp_big WHERE ... ctid ...`.
        &["fp_big", "ctid"],
    )
    .await;
    println!("checksum on a stopped target ended after {elapsed:?}");
    let report = report.expect("the run reports");
    let errors: Vec<_> = report.tables.iter().map(|t| t.error.clone()).collect();
    assert_eq!(errors, lost(2, "checksumming public.fp_big"), "{report}");
    assert!(report.tables.iter().all(|t| t.status == TableStatus::Error));
    assert!(!report.cancelled);
    assert!(elapsed < HANG_BOUND, "{elapsed:?}");
}

/// As the brief has it: `cutover verify` against a target stopped 0.4 s after
/// the start. Depending on what the target was doing then, the run ends with
/// an error (it was still connecting) or with every table in error; either
/// names the target and its host, and nothing is called a difference.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_against_a_target_stopped_shortly_after_the_start_ends_with_an_error() {
    let _x = exclusive();
    slow_table("fp_big");
    let config = cfg();
    let tables = [table("fp_big")];
    let opts = opts();
    let started = Instant::now();
    let verify = bounded(verify_tables(&config, &tables, &opts, |_| {}));
    let (report, frozen) = tokio::join!(verify, async {
        tokio::time::sleep(Duration::from_millis(400)).await;
        let dir = common::pair().dir.join("target");
        tokio::task::spawn_blocking(move || Frozen::cluster(&dir))
            .await
            .unwrap()
    });
    let elapsed = started.elapsed();
    drop(frozen);
    println!("verify with the target stopped at 0.4 s ended after {elapsed:?}");
    let endpoint = target_endpoint();
    match report {
        Err(e) => {
            let text = format!("{e:#}");
            assert!(
                text.starts_with("target ") && text.contains(&endpoint),
                "{text}"
            );
        }
        Ok(report) => {
            let t = &report.tables[0];
            assert_eq!(t.status, TableStatus::Error, "{report}");
            let error = t.error.as_deref().unwrap_or_default();
            let prefix = format!("target ({endpoint}): no answer within 5 s while ");
            assert!(error.starts_with(&prefix), "{error}");
        }
    }
    assert!(elapsed < HANG_BOUND, "{elapsed:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn continuous_verification_of_a_stopped_target_ends_with_the_tables_in_error() {
    let _x = exclusive();
    slow_table("fp_live");
    slow_table("fp_next");
    let config = cfg();
    let tables = [table("fp_live"), table("fp_next")];
    let o = ContinuousOptions {
        base: VerifyOptions {
            bucket_rows: 20_000,
            ..opts()
        },
        max_passes: None,
        ..ContinuousOptions::default()
    };
    let (report, elapsed) = with_target_frozen_when_running(
        verify_continuous(&config, &tables, &o, |_| {}),
        // A range check: `SELECT count(*), ... FROM fp_live WHERE id >= ...`.
        &["fp_live", "count(*)"],
    )
    .await;
    println!("continuous verification of a stopped target ended after {elapsed:?}");
    let report = report.expect("the run reports");
    let errors: Vec<_> = report.tables.iter().map(|t| t.error.clone()).collect();
    assert_eq!(errors, lost(2, "checksumming public.fp_live"), "{report}");
    assert!(report
        .tables
        .iter()
        .all(|t| t.status == ContinuousStatus::Error));
    assert!(!report.cancelled);
    assert!(elapsed < HANG_BOUND, "{elapsed:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_count_on_a_stopped_target_fails_that_table_then_the_side() {
    let _x = exclusive();
    // Counting this takes 100 s; the server would end it at its statement_timeout.
    on_target(
        "CREATE OR REPLACE VIEW fp_sleepy AS SELECT pg_sleep(0.1)::text AS s FROM generate_series(1, 1000)",
    );
    let config = Arc::new(cfg());
    let (tx, mut rx) = tokio::sync::mpsc::channel(64);
    let (_cancel_tx, cancel) = tokio::sync::watch::channel(false);
    let tables = vec![table("fp_sleepy"), table("app_writes")];
    let started = Instant::now();
    let counting = tokio::spawn(cutover::pg::count::run_with_timeout(
        1,
        tables,
        config,
        tx,
        cancel,
        STATEMENT_TIMEOUT,
    ));
    let frozen = freeze_target_when_running("cutover-count", &["fp_sleepy"]).await;
    let mut target_failures = Vec::new();
    let finished = loop {
        let event = tokio::time::timeout(HANG_BOUND, rx.recv())
            .await
            .expect("counting ends")
            .expect("the counter reports its end");
        match event {
            EventKind::CountFailed {
                side: Side::Target,
                table,
                error,
                ..
            } => target_failures.push((table.map(|t| t.name), error)),
            EventKind::CountFinished { cancelled, .. } => break cancelled,
            _ => {}
        }
    };
    let elapsed = started.elapsed();
    drop(frozen);
    counting.await.unwrap();
    println!("counting on a stopped target ended after {elapsed:?}: {target_failures:?}");
    assert!(!finished, "not cancelled");
    assert_eq!(target_failures.len(), 2, "{target_failures:?}");
    assert_eq!(
        target_failures[0],
        (
            Some("fp_sleepy".to_string()),
            no_answer(5, "counting the rows of public.fp_sleepy")
        )
    );
    // A new connection for the next table cannot be had: the side ends.
    let (table, error) = &target_failures[1];
    assert_eq!(*table, None);
    assert!(
        error.starts_with(&format!("{}: ", target_endpoint())) && error.contains("timeout"),
        "{error}"
    );
    assert!(elapsed < HANG_BOUND, "{elapsed:?}");
}

async fn next(rx: &mut tokio::sync::mpsc::Receiver<EventKind>) -> EventKind {
    tokio::time::timeout(HANG_BOUND, rx.recv())
        .await
        .expect("the collector reports")
        .expect("the collector runs")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_monitor_poll_on_a_stopped_target_goes_stale_then_reconnects() {
    let _x = exclusive();
    let mut config = cfg();
    config.monitor.refresh_ms = 200;
    config.monitor.statement_timeout_ms = 1000;
    let (tx, mut rx) = tokio::sync::mpsc::channel(16);
    let collector = tokio::spawn(cutover::pg::collector::run(
        Side::Target,
        Arc::new(config),
        tx,
    ));
    while !matches!(next(&mut rx).await, EventKind::TargetSampled(_)) {}
    let dir = common::pair().dir.join("target");
    let frozen = Frozen::cluster(&dir);
    let stopped = Instant::now();
    // Samples sent before the freeze may still be queued.
    let error = loop {
        if let EventKind::CollectorFailed { side, error } = next(&mut rx).await {
            assert_eq!(side, Side::Target);
            break error;
        }
    };
    let elapsed = stopped.elapsed();
    println!("a poll of a stopped target failed after {elapsed:?}");
    assert_eq!(error, no_answer(3, "polling the monitoring views"));
    assert!(elapsed < HANG_BOUND, "{elapsed:?}");
    frozen.thaw();
    while !matches!(next(&mut rx).await, EventKind::TargetSampled(_)) {}
    collector.abort();
}

/// The race a single cancel loses: the query reaches the backend only after
/// the first `pg_cancel_backend` (the server ignores a cancel that arrives
/// while the backend is idle). Cancelling until the query has ended stops it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_sent_after_the_first_cancel_is_still_cancelled() {
    let _x = exclusive();
    let config = cfg();
    let connect_timeout = Duration::from_secs(3);
    let client = cutover::pg::conn::connect(&config.source, "fp-cancel-race", connect_timeout)
        .await
        .unwrap();
    let pid: i32 = client
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .unwrap()
        .get(0);
    let backend = Backend {
        side: Side::Source,
        conn: config.source.clone(),
        app: "fp-cancel-race",
        pid,
        connect_timeout,
    };
    let query = async {
        // Held back on the client while the first cancel reaches an idle backend.
        tokio::time::sleep(Duration::from_secs(1)).await;
        client.query_one("SELECT pg_sleep(30)", &[]).await
    };
    tokio::pin!(query);
    // Polled once, as a sent query has been.
    assert!(futures::poll!(query.as_mut()).is_pending());
    let started = Instant::now();
    let ended = backend
        .cancel_until_done(query, Duration::from_secs(20))
        .await;
    let elapsed = started.elapsed();
    let error = ended
        .expect("the query ended before the grace")
        .expect_err("cancelled");
    assert_eq!(
        error.code(),
        Some(&tokio_postgres::error::SqlState::QUERY_CANCELED),
        "{error}"
    );
    assert!(elapsed < HANG_BOUND, "{elapsed:?}");
}

/// The source stops answering while the final check waits for lag 0 (a slot
/// that never confirms the position, so the wait polls): the step ends at
/// its deadline naming the source, its host and what it was reading. It is
/// read-only, so nothing was changed, and the run's record says which step.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_source_stopping_during_the_wait_for_lag_0_ends_it_naming_the_source() {
    let _x = exclusive();
    let pair = common::pair();
    let config = cfg();
    pair.psql(
        &pair.source_conninfo,
        "SELECT pg_create_logical_replication_slot('fp_never_confirms', 'pgoutput') \
         WHERE NOT EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = 'fp_never_confirms')",
    );
    // WAL past the slot's position, written out (the lab commits
    // asynchronously): the wait has something to wait for.
    pair.psql(
        &pair.source_conninfo,
        "SET synchronous_commit = on; CREATE TABLE IF NOT EXISTS fp_wal (v int); \
         INSERT INTO fp_wal VALUES (1)",
    );
    let wait = cutover::runtime::window::wait_replicated(
        &config,
        Side::Source,
        "fp_never_confirms",
        Duration::from_secs(600),
    );
    let stop = async {
        // Let it read the position and poll the slot a few times first.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        Frozen::cluster(&pair.dir.join("source"))
    };
    let started = Instant::now();
    let (out, frozen) = tokio::join!(bounded(wait), stop);
    let elapsed = started.elapsed();
    drop(frozen);
    pair.psql(
        &pair.source_conninfo,
        "SELECT pg_drop_replication_slot('fp_never_confirms')",
    );
    let err = format!("{:#}", out.expect_err("a stopped source ends the wait"));
    assert!(err.starts_with("source (127.0.0.1:"), "{err}");
    assert!(err.contains("reading the slot"), "{err}");
    assert!(elapsed < HANG_BOUND, "{elapsed:?}");
}
