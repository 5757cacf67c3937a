//! Continuous verification against real clusters, with logical replication
//! running where it matters: live writes stay pending and settle to verified,
//! a real difference is confirmed after `stable_checks` and named, recent rows
//! (updated_at) are left out, the final check skips what provably did not
//! change, and cancel leaves nothing running on the servers.

mod common;

use common::cancel::{CancelAt, Canceller};
use common::{both, config as cfg, on_source, on_target};

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use cutover::session::sample::TableRef;
use cutover::verify::{
    verify_continuous, verify_final, ContinuousOptions, ContinuousProgress, ContinuousReport,
    ContinuousStatus, DiffKind, RangeState, RowDifference, VerifyOptions,
};

fn table(name: &str) -> Vec<TableRef> {
    vec![TableRef::new("public", name)]
}

/// Small ranges and a short lag window, so test-sized tables have many ranges.
fn opts() -> ContinuousOptions {
    ContinuousOptions {
        base: VerifyOptions {
            bucket_rows: 500,
            leaf_rows: 40,
            fanout: 4,
            ..VerifyOptions::default()
        },
        settle: Duration::from_millis(300),
        stable_checks: 2,
        max_passes: Some(1),
        ..ContinuousOptions::default()
    }
}

async fn continuous(
    name: &str,
    opts: &ContinuousOptions,
) -> (ContinuousReport, Vec<ContinuousProgress>) {
    let mut events = Vec::new();
    let report = verify_continuous(&cfg(), &table(name), opts, |p| events.push(p))
        .await
        .expect("verification runs");
    println!("{report}");
    (report, events)
}

/// Source table filled, target table empty, a subscription copying it and
/// then streaming changes; returns once the table is synchronised.
fn replicate(name: &str, create: &str, fill: &str) {
    both(create);
    on_source(fill);
    let pair = common::pair();
    on_source(&format!("CREATE PUBLICATION pub_{name} FOR TABLE {name}"));
    on_target(&format!(
        "CREATE SUBSCRIPTION sub_{name} CONNECTION '{}' PUBLICATION pub_{name}",
        pair.source_conninfo
    ));
    let started = Instant::now();
    loop {
        let state = pair.psql(
            &pair.target_conninfo,
            &format!(
                "SELECT string_agg(srsubstate::text, '') FROM pg_subscription_rel \
                  WHERE srrelid = 'public.{name}'::regclass"
            ),
        );
        if state.trim() == "r" {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "initial sync of {name}: {state}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn diff(kind: DiffKind, key: &str, columns: &[&str]) -> RowDifference {
    RowDifference {
        kind,
        key: key.into(),
        columns: columns.iter().map(|c| c.to_string()).collect(),
    }
}

#[tokio::test]
async fn identical_tables_are_fully_verified() {
    both(
        "CREATE TABLE vc_same (id int PRIMARY KEY, v text, n numeric, ts timestamptz);
         INSERT INTO vc_same SELECT g, 'v' || g, g * 0.5, timestamptz '2024-01-01' + g * interval '1 s'
           FROM generate_series(1, 5000) g;
         ANALYZE vc_same;",
    );
    let o = ContinuousOptions {
        max_passes: Some(2),
        ..opts()
    };
    let (report, events) = continuous("vc_same", &o).await;
    let t = &report.tables[0];
    assert_eq!(t.status, ContinuousStatus::Verified, "{report}");
    assert!(report.is_verified());
    assert_eq!(report.passes, 2);
    let p = &t.progress;
    assert!(p.ranges_total >= 8, "{p:?}");
    assert_eq!(p.ranges_verified, p.ranges_total);
    assert_eq!((p.ranges_pending, p.ranges_mismatched), (0, 0));
    assert_eq!(
        (p.rows_total, p.rows_verified, p.rows_pending),
        (5000, 5000, 0)
    );
    assert_eq!(p.eta_secs, Some(0.0));
    assert!(t
        .ranges
        .iter()
        .all(|r| r.checks == 2 && r.state == RangeState::Verified));
    assert_eq!(t.range_checks, 2 * p.ranges_total);
    // Progress during the first pass: pending falls as ranges are verified.
    assert!(events.iter().any(|e| e.pass == 1 && e.ranges_pending == 0));
    assert!(events.iter().all(|e| e.ranges_mismatched == 0));
    assert!(t.source_rows_per_sec > 0.0 && t.target_rows_per_sec > 0.0);
    let json = serde_json::to_string(&report).unwrap();
    // Bit-exact f64s too (serde_json's float_roundtrip): the report a
    // replayed session rebuilds is the one recorded.
    let back: ContinuousReport = serde_json::from_str(&json).unwrap();
    assert_eq!(back, report);
}

#[tokio::test]
async fn a_planted_difference_in_a_cold_range_is_confirmed_and_named() {
    replicate(
        "vc_planted",
        "CREATE TABLE vc_planted (id int PRIMARY KEY, v text, qty int)",
        "INSERT INTO vc_planted SELECT g, 'v' || g, g % 10 FROM generate_series(1, 4000) g;
         ANALYZE vc_planted",
    );
    // The target alone; replication never touches this row again.
    on_target("UPDATE vc_planted SET qty = -1 WHERE id = 1234");
    // With the slot: confirmed once the target has applied all the source had.
    let o = ContinuousOptions {
        slot: Some("sub_vc_planted".into()),
        // Differing at the first pass, confirmed by the second.
        max_passes: Some(2),
        ..opts()
    };
    let (report, events) = continuous("vc_planted", &o).await;
    let t = &report.tables[0];
    assert_eq!(t.status, ContinuousStatus::Mismatch, "{report}");
    assert_eq!(
        t.progress.differences,
        vec![diff(DiffKind::Changed, "id=1234", &["qty"])]
    );
    assert_eq!(t.progress.ranges_mismatched, 1);
    assert_eq!(t.progress.ranges_verified, t.progress.ranges_total - 1);
    let bad: Vec<_> = t
        .ranges
        .iter()
        .filter(|r| r.state == RangeState::Mismatch)
        .collect();
    assert_eq!(bad.len(), 1);
    assert_eq!(bad[0].checks, 2, "confirmed by the second identical check");
    // Before being confirmed, it was pending (hot), never a mismatch at once.
    let first_mismatch = events.iter().position(|e| e.ranges_mismatched > 0);
    if let Some(i) = first_mismatch {
        assert!(events[..i].iter().all(|e| e.differences.is_empty()));
    }
}

/// A writer on the source while replication runs: the ranges it touches
/// differ now and then (lag) but are never confirmed; once it stops they all
/// verify.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_writes_stay_pending_and_verify_once_they_stop() {
    replicate(
        "vc_live",
        "CREATE TABLE vc_live (id int PRIMARY KEY, v text, n int)",
        "INSERT INTO vc_live SELECT g, 'v' || g, 0 FROM generate_series(1, 6000) g;
         ANALYZE vc_live",
    );
    let pair = common::pair();
    let (cancel_tx, cancel_rx) = tokio::sync::watch::channel(false);
    let o = ContinuousOptions {
        max_passes: None,
        base: VerifyOptions {
            cancel: Some(cancel_rx),
            parallelism: 2,
            ..opts().base
        },
        // The subscription's slot: a difference that is only lag is never
        // confirmed, however long the lag (two cores, tests in parallel).
        slot: Some("sub_vc_live".into()),
        ..opts()
    };
    let (ev_tx, mut ev_rx) = tokio::sync::mpsc::unbounded_channel::<ContinuousProgress>();
    let config = cfg();
    let tables = table("vc_live");
    let verify = verify_continuous(&config, &tables, &o, move |p| {
        let _ = ev_tx.send(p);
    });
    let control = async {
        let client = cutover::lab::seed::connect(&pair.source_conninfo)
            .await
            .unwrap();
        let mut seen = Vec::new();
        let writing = Instant::now();
        let (mut x, mut next_id, mut writes) = (12345u64, 6001, 0);
        while writing.elapsed() < Duration::from_secs(4) {
            // Updates all over the key space, inserts at its end, ~250 writes/s.
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let id = (x >> 33) as i32 % 6000 + 1;
            client
                .execute("UPDATE vc_live SET n = n + 1 WHERE id = $1", &[&id])
                .await
                .unwrap();
            client
                .execute("INSERT INTO vc_live VALUES ($1, 'new', 0)", &[&next_id])
                .await
                .unwrap();
            next_id += 1;
            writes += 2;
            while let Ok(e) = ev_rx.try_recv() {
                seen.push(e);
            }
            tokio::time::sleep(Duration::from_millis(8)).await;
        }
        let stopped_in_pass = seen.last().map_or(0, |e| e.pass);
        println!(
            "{writes} writes; stopped during pass {stopped_in_pass}; hot seen {} times",
            seen.iter().filter(|e| e.ranges_hot > 0).count()
        );
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let e = tokio::time::timeout_at(deadline.into(), ev_rx.recv())
                .await
                .expect("all ranges verified after the writes stopped")
                .expect("verification still running");
            let done = e.pass > stopped_in_pass + 1 && e.ranges_verified == e.ranges_total;
            seen.push(e);
            if done {
                break;
            }
        }
        cancel_tx.send(true).unwrap();
        (seen, next_id - 1)
    };
    let (report, (seen, rows)) = tokio::join!(verify, control);
    let report = report.expect("verification runs");
    println!("{report}");
    assert!(report.cancelled);
    assert!(
        seen.iter()
            .all(|e| e.ranges_mismatched == 0 && e.differences.is_empty()),
        "a hot range was reported as a mismatch"
    );
    let last = seen.last().unwrap();
    assert_eq!(last.rows_verified, rows as u64, "{last:?}");
    let t = &report.tables[0];
    assert_eq!(t.status, ContinuousStatus::Verified, "{report}");
}

#[tokio::test]
async fn recent_rows_are_left_out_and_counted_pending() {
    // Rows stamped ahead of now stay inside the lag window for the whole test.
    // Literal stamps, not now(): each side runs this at its own moment.
    both(
        "CREATE TABLE vc_upd (id int PRIMARY KEY, v text, upd timestamptz);
         INSERT INTO vc_upd SELECT g, 'v' || g,
                CASE WHEN g BETWEEN 3001 AND 3100 THEN timestamptz '2100-01-01 00:00:00+00'
                     WHEN g = 3200 THEN NULL
                     ELSE timestamptz '2024-01-01 00:00:00+00' END
           FROM generate_series(1, 4000) g;
         ANALYZE vc_upd;",
    );
    // A difference in an old row (found), one in a recent row (not compared yet).
    on_target("UPDATE vc_upd SET v = 'old row changed' WHERE id = 10");
    on_target("UPDATE vc_upd SET v = 'in flight' WHERE id = 3050");
    let mut o = opts();
    o.max_passes = Some(2);
    o.updated_at = BTreeMap::from([(TableRef::new("public", "vc_upd"), "upd".to_string())]);
    let (report, _) = continuous("vc_upd", &o).await;
    let t = &report.tables[0];
    let p = &t.progress;
    assert_eq!(t.updated_at.as_deref(), Some("upd"));
    assert_eq!(
        p.differences,
        vec![diff(DiffKind::Changed, "id=10", &["v"])],
        "{report}"
    );
    assert_eq!(p.ranges_mismatched, 1);
    assert_eq!(p.ranges_verified, p.ranges_total - 1, "{report}");
    assert_eq!(p.rows_pending, 100, "the recent rows");
    assert_eq!(p.rows_verified, 4000 - 100 - 500 + 1, "{p:?}");
    let recent: u64 = t.ranges.iter().map(|r| r.rows_recent).sum();
    assert_eq!(recent, 100);
    // A column that is not a timestamp is refused, by name.
    o.updated_at = BTreeMap::from([(TableRef::new("public", "vc_upd"), "v".to_string())]);
    let (report, _) = continuous("vc_upd", &o).await;
    assert_eq!(report.tables[0].status, ContinuousStatus::Error);
    assert!(report.tables[0]
        .error
        .as_deref()
        .unwrap()
        .contains("not a timestamp"));
}

#[tokio::test]
async fn the_final_check_rechecks_only_what_changed() {
    both(
        "CREATE TABLE vc_final (id int PRIMARY KEY, v text, upd timestamptz);
         INSERT INTO vc_final SELECT g, 'v' || g, timestamptz '2024-01-01 00:00:00+00'
           FROM generate_series(1, 4000) g;
         ANALYZE vc_final;",
    );
    let mut o = opts();
    o.updated_at = BTreeMap::from([(TableRef::new("public", "vc_final"), "upd".to_string())]);
    let (live, _) = continuous("vc_final", &o).await;
    assert!(live.is_verified(), "{live}");
    let total = live.tables[0].ranges.len() as u64;

    // Replicated writes (the same on both sides) after the ranges were verified...
    both(
        "UPDATE vc_final SET v = 'w', upd = timestamptz '2100-01-01 00:00:00+00' WHERE id IN (100, 2100);",
    );
    // ...and, just before the freeze, one write the target did not get, and a
    // delete of an old row on the target.
    on_source("UPDATE vc_final SET v = 'late', upd = timestamptz '2100-01-01 00:00:01+00' WHERE id = 3100");
    on_target("DELETE FROM vc_final WHERE id = 700");

    let (report, _) = {
        let mut events = Vec::new();
        let r = verify_final(&cfg(), &table("vc_final"), &o, Some(&live), |p| {
            events.push(p)
        })
        .await
        .unwrap();
        println!("{r}");
        (r, events)
    };
    assert!(report.final_check);
    let t = &report.tables[0];
    assert_eq!(t.status, ContinuousStatus::Mismatch);
    let mut d = t.progress.differences.clone();
    d.sort_by(|a, b| a.key.cmp(&b.key));
    assert_eq!(
        d,
        vec![
            diff(DiffKind::Changed, "id=3100", &["upd", "v"]),
            diff(DiffKind::MissingOnTarget, "id=700", &[]),
        ]
    );
    assert_eq!(t.ranges_rechecked, 2, "{report}");
    assert_eq!(t.ranges_skipped, total - 2);
    assert!(t.notes.iter().any(|n| n.contains("proved unchanged")));

    // Without updated_at nothing proves a range unchanged: all re-checked.
    let plain = ContinuousOptions {
        updated_at: BTreeMap::new(),
        ..o.clone()
    };
    let report = verify_final(&cfg(), &table("vc_final"), &plain, Some(&live), |_| {})
        .await
        .unwrap();
    let t = &report.tables[0];
    assert_eq!((t.ranges_rechecked, t.ranges_skipped), (total, 0));
    assert!(
        t.notes.iter().any(|n| n.contains("every range re-checked")),
        "{report}"
    );
    assert_eq!(t.differences_total, 2);
}

/// Two slow tables (md5 row hashes), ten ranges each.
fn cancel_tables() -> Vec<TableRef> {
    static CREATED: std::sync::Once = std::sync::Once::new();
    CREATED.call_once(|| {
        for t in ["vc_cancel", "vc_cancel_b"] {
            both(&format!(
                "CREATE TABLE {t} (id int PRIMARY KEY, v text);
                 INSERT INTO {t} SELECT g, repeat(md5(g::text), 20) FROM generate_series(1, 200000) g;
                 ANALYZE {t};"
            ));
        }
    });
    ["vc_cancel", "vc_cancel_b"]
        .iter()
        .map(|t| TableRef::new("public", *t))
        .collect()
}

async fn cancelled_run(at: CancelAt) -> ContinuousReport {
    let tables = cancel_tables();
    let (canceller, rx) = Canceller::start(at);
    let o = ContinuousOptions {
        base: VerifyOptions {
            cancel: Some(rx),
            hash: cutover::verify::HashKind::Md5,
            parallelism: 2,
            bucket_rows: 20_000,
            ..VerifyOptions::default()
        },
        max_passes: None,
        ..ContinuousOptions::default()
    };
    let config = cfg();
    let report = verify_continuous(&config, &tables, &o, |_| canceller.on_progress())
        .await
        .expect("a cancelled run still reports");
    canceller.finish().await;
    report
}

/// Cancelled at any point (also before the first table is registered), the
/// run lists every table as cancelled and leaves no query running.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_leaves_no_query_running() {
    let points = CancelAt::points();
    cancel_tables();
    for at in points {
        let started = Instant::now();
        let report = cancelled_run(at).await;
        let statuses: Vec<_> = report
            .tables
            .iter()
            .map(|t| (t.table.name.as_str(), t.status, t.error.as_deref()))
            .collect();
        assert_eq!(
            statuses,
            vec![
                ("vc_cancel", ContinuousStatus::Cancelled, None),
                ("vc_cancel_b", ContinuousStatus::Cancelled, None),
            ],
            "cancelled at {at:?}: {report}"
        );
        assert!(report.cancelled, "cancelled at {at:?}");
        assert!(!report.is_verified());
        // A hang detector, not a performance target.
        assert!(started.elapsed() < Duration::from_secs(10), "{at:?}");
        // The backend reports itself idle just after its error reached us.
        tokio::time::sleep(Duration::from_millis(200)).await;
        common::assert_no_verify_query_on("vc_cancel");
    }
}

/// A real difference in a range that also holds recent rows cannot be
/// confirmed while they are recent (the source may have moved a row out of the
/// settled set): it stays pending, checked once a pass, not re-read in a loop.
#[tokio::test]
async fn a_difference_beside_recent_rows_stays_pending() {
    both(
        "CREATE TABLE vc_beside (id int PRIMARY KEY, v text, upd timestamptz);
         INSERT INTO vc_beside SELECT g, 'v' || g,
                CASE WHEN g BETWEEN 3001 AND 3100 THEN timestamptz '2100-01-01 00:00:00+00'
                     ELSE timestamptz '2024-01-01 00:00:00+00' END
           FROM generate_series(1, 4000) g;
         ANALYZE vc_beside;",
    );
    on_target("UPDATE vc_beside SET v = 'old row changed' WHERE id = 3300");
    let mut o = opts();
    o.max_passes = Some(2);
    o.updated_at = BTreeMap::from([(TableRef::new("public", "vc_beside"), "upd".to_string())]);
    let (report, _) = tokio::time::timeout(Duration::from_secs(60), continuous("vc_beside", &o))
        .await
        .expect("a pending range does not keep the pass going");
    let t = &report.tables[0];
    assert_eq!(t.status, ContinuousStatus::Pending, "{report}");
    assert_eq!(t.progress.ranges_hot, 1);
    assert_eq!(t.progress.ranges_verified, t.progress.ranges_total - 1);
    assert!(t.progress.differences.is_empty());
    let hot: Vec<_> = t
        .ranges
        .iter()
        .filter(|r| r.state == RangeState::Hot)
        .collect();
    assert_eq!(hot.len(), 1);
    assert_eq!(hot[0].checks, 2, "once a pass");
    assert_eq!(hot[0].rows_recent, 100);
}
