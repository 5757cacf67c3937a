//! Checksum verification against real clusters: clean tables stay clean
//! (also when the same values were written under other session settings),
//! and every difference is found and named by key and column.

mod common;

use common::cancel::{CancelAt, Canceller};
use common::{both, config as cfg, on_source, on_target};

use std::collections::BTreeMap;
use std::time::Duration;

use cutover::session::sample::TableRef;
use cutover::verify::{
    verify_tables, DiffKind, Method, RowDifference, TableStatus, TableVerify, VerifyOptions,
    VerifyProgress, VerifyReport,
};

/// Small ranges, so even test-sized tables are split and bisected.
fn small() -> VerifyOptions {
    VerifyOptions {
        bucket_rows: 500,
        leaf_rows: 40,
        fanout: 4,
        ..VerifyOptions::default()
    }
}

async fn verify(tables: &[&str], opts: &VerifyOptions) -> (VerifyReport, Vec<VerifyProgress>) {
    let tables: Vec<TableRef> = tables.iter().map(|t| TableRef::new("public", *t)).collect();
    let mut events = Vec::new();
    let report = verify_tables(&cfg(), &tables, opts, |p| events.push(p))
        .await
        .expect("verification runs");
    println!("{report}");
    (report, events)
}

/// Each table's status and error.
fn errors(report: &VerifyReport) -> Vec<(TableStatus, Option<&str>)> {
    report
        .tables
        .iter()
        .map(|t| (t.status, t.error.as_deref()))
        .collect()
}

fn diff(kind: DiffKind, key: &str, columns: &[&str]) -> RowDifference {
    RowDifference {
        kind,
        key: key.into(),
        columns: columns.iter().map(|c| c.to_string()).collect(),
    }
}

fn sorted(t: &TableVerify) -> Vec<RowDifference> {
    let mut d = t.differences.clone();
    d.sort_by(|a, b| (&a.key, a.kind as u8).cmp(&(&b.key, b.kind as u8)));
    d
}

/// Every type the canonical row text normalises, with NULLs sprinkled in.
const TYPES_TABLE: &str = "
CREATE TABLE {t} (
  id int PRIMARY KEY,
  n numeric, f4 real, f8 double precision, ts timestamptz, iv interval,
  j jsonb, b bytea, arr int[], farr float8[], e text, u text, c text COLLATE \"C\",
  m money, d date);
INSERT INTO {t}
SELECT g, g * 1.125, g / 7.0, g / 3.0,
       timestamptz '2024-01-01 00:00:00+00' + g * interval '1 minute',
       g * interval '1 hour 3 seconds',
       jsonb_build_object('k', g, 'a', jsonb_build_array(g, 'x')),
       decode(md5(g::text), 'hex'), ARRAY[g, g + 1], ARRAY[g / 3.0, 0.1],
       CASE WHEN g % 10 = 0 THEN NULL WHEN g % 10 = 1 THEN '' ELSE 'v' || g END,
       'żółw 🐢 ' || g, 'Ångström ' || g, g * 0.25, date '2020-01-01' + g
  FROM generate_series(1, {n}) g;";

fn types_table(name: &str, rows: u32) {
    both(
        &TYPES_TABLE
            .replace("{t}", name)
            .replace("{n}", &rows.to_string()),
    );
}

#[tokio::test]
async fn identical_tables_verify_clean() {
    types_table("vt_clean", 5000);
    let (report, progress) = verify(&["vt_clean"], &small()).await;
    let t = &report.tables[0];
    assert_eq!(t.status, TableStatus::Clean, "{report}");
    assert_eq!(t.method, Method::PrimaryKey);
    assert_eq!(t.key_columns, vec!["id"]);
    assert_eq!((t.rows_source, t.rows_target), (5000, 5000));
    assert!(t.ranges_checked >= 10, "{}", t.ranges_checked);
    assert!(report.is_clean());
    let last = progress.last().expect("progress reported");
    assert_eq!(last.ranges_done, last.ranges_total);
    assert_eq!(last.rows_done, 5000);
    let json = serde_json::to_string(&report).unwrap();
    assert!(json.contains("\"method\":\"primary_key\""), "{json}");
}

#[tokio::test]
async fn each_difference_is_found_and_named() {
    types_table("vt_diff", 10_000);
    on_target(
        "UPDATE vt_diff SET n = n + 1 WHERE id = 1234;
         DELETE FROM vt_diff WHERE id = 2500;
         INSERT INTO vt_diff (id, e) VALUES (100001, 'new');
         UPDATE vt_diff SET f8 = f8 + 1e-12 WHERE id = 77;
         UPDATE vt_diff SET e = '' WHERE id = 20;     -- NULL on the source
         UPDATE vt_diff SET n = 5.62500 WHERE id = 5;  -- 5.625: same value, other scale
         UPDATE vt_diff SET j = '{\"k\":6,   \"a\": [6, \"x\"]}' WHERE id = 6; -- same jsonb
         UPDATE vt_diff SET b = '\\x00' WHERE id = 9000;
         UPDATE vt_diff SET c = 'Ångström 9001 ' WHERE id = 9001;
         UPDATE vt_diff SET farr = ARRAY[3001 / 3.0, 0.2] WHERE id = 3001;
         UPDATE vt_diff SET u = 'z' || U&'\\0065\\0301' WHERE id = 30; -- NFD vs the source's NFC
         UPDATE vt_diff SET ts = ts + interval '1 microsecond' WHERE id = 501;
         UPDATE vt_diff SET iv = interval '1 day' WHERE id = 702;
         UPDATE vt_diff SET j = j || '{\"k\": 0}' WHERE id = 8;
         UPDATE vt_diff SET arr = ARRAY[12, 11] WHERE id = 11;",
    );
    // Same instants and same floats, written under other session settings: not differences.
    on_target(
        "SET TimeZone = 'Asia/Tokyo'; SET extra_float_digits = 0; SET DateStyle = 'SQL, DMY';
         SET IntervalStyle = 'postgres_verbose';
         UPDATE vt_diff SET ts = '2024-01-01 17:20:00' WHERE id = 500;
         UPDATE vt_diff SET f8 = 200.0, f4 = '85.71429' WHERE id = 600;
         UPDATE vt_diff SET iv = '@ 700 hours 2100 secs' WHERE id = 700;",
    );
    on_source(
        "UPDATE vt_diff SET f8 = 2e2, f4 = 600 / 7.0 WHERE id = 600;
         UPDATE vt_diff SET iv = interval 'PT700H35M' WHERE id = 700;
         UPDATE vt_diff SET u = 'z' || U&'\\00E9' WHERE id = 30;
         -- Equal as intervals, not as values replication carries: reported.
         UPDATE vt_diff SET iv = interval '24 hours' WHERE id = 702;",
    );
    let (report, progress) = verify(&["vt_diff"], &small()).await;
    let t = &report.tables[0];
    assert_eq!(t.status, TableStatus::Mismatch);
    assert_eq!((t.rows_source, t.rows_target), (10_000, 10_000));
    assert_eq!(
        sorted(t),
        vec![
            diff(DiffKind::ExtraOnTarget, "id=100001", &[]),
            diff(DiffKind::Changed, "id=11", &["arr"]),
            diff(DiffKind::Changed, "id=1234", &["n"]),
            diff(DiffKind::Changed, "id=20", &["e"]),
            diff(DiffKind::MissingOnTarget, "id=2500", &[]),
            diff(DiffKind::Changed, "id=30", &["u"]),
            diff(DiffKind::Changed, "id=3001", &["farr"]),
            diff(DiffKind::Changed, "id=5", &["n"]),
            diff(DiffKind::Changed, "id=501", &["ts"]),
            diff(DiffKind::Changed, "id=702", &["iv"]),
            diff(DiffKind::Changed, "id=77", &["f8"]),
            diff(DiffKind::Changed, "id=8", &["j"]),
            diff(DiffKind::Changed, "id=9000", &["b"]),
            diff(DiffKind::Changed, "id=9001", &["c"]),
        ],
        "{report}"
    );
    assert_eq!(t.differences_total, 14);
    assert_eq!(progress.last().unwrap().mismatches, 14);
    let text = report.to_string();
    assert!(text.contains("missing on target: id=2500"), "{text}");
    assert!(text.contains("changed:           id=1234  [n]"), "{text}");
}

#[tokio::test]
async fn composite_keys_are_ranged_and_named() {
    both(
        "CREATE TABLE vt_comp (region text, seq bigint, qty int, note text, PRIMARY KEY (region, seq));
         INSERT INTO vt_comp SELECT 'r' || (g % 7), g, g % 100, 'n' || g FROM generate_series(1, 6000) g;",
    );
    on_target(
        "UPDATE vt_comp SET qty = -1, note = 'x' WHERE region = 'r3' AND seq = 1802;
         DELETE FROM vt_comp WHERE region = 'r0' AND seq = 4200;
         INSERT INTO vt_comp VALUES ('r9', 1, 1, 'extra');",
    );
    let (report, _) = verify(&["vt_comp"], &small()).await;
    let t = &report.tables[0];
    assert_eq!(t.key_columns, vec!["region", "seq"]);
    assert_eq!(
        sorted(t),
        vec![
            diff(DiffKind::MissingOnTarget, "region=r0, seq=4200", &[]),
            diff(DiffKind::Changed, "region=r3, seq=1802", &["note", "qty"]),
            diff(DiffKind::ExtraOnTarget, "region=r9, seq=1", &[]),
        ],
        "{report}"
    );
}

#[tokio::test]
async fn tables_without_a_key_are_compared_as_multisets() {
    both(
        "CREATE TABLE vt_nopk_same (a int, b text);
         INSERT INTO vt_nopk_same SELECT g % 50, 'b' || g FROM generate_series(1, 3000) g;
         CREATE TABLE vt_nopk_diff (a int NOT NULL, b text);
         INSERT INTO vt_nopk_diff SELECT g % 50, 'b' || g FROM generate_series(1, 3000) g;",
    );
    on_target("UPDATE vt_nopk_diff SET b = 'changed' WHERE b = 'b77';");
    let (report, _) = verify(&["vt_nopk_same", "vt_nopk_diff"], &small()).await;
    let same = &report.tables[0];
    assert_eq!(same.method, Method::Multiset);
    assert_eq!(same.status, TableStatus::Clean, "{report}");
    let d = &report.tables[1];
    assert_eq!(d.method, Method::Multiset);
    assert_eq!(d.status, TableStatus::Mismatch);
    assert!(d.differences.is_empty());
    assert!(report.to_string().contains("multiset"));

    // With a declared (non-unique) key the changed row is located.
    let mut opts = small();
    opts.keys = BTreeMap::from([(
        TableRef::new("public", "vt_nopk_diff"),
        vec!["a".to_string()],
    )]);
    let (report, _) = verify(&["vt_nopk_diff"], &opts).await;
    let d = &report.tables[0];
    assert_eq!(d.method, Method::DeclaredKey);
    assert_eq!(
        sorted(d),
        vec![
            diff(DiffKind::MissingOnTarget, "a=27", &[]),
            diff(DiffKind::ExtraOnTarget, "a=27", &[]),
        ],
        "{report}"
    );
}

#[tokio::test]
async fn missing_tables_and_columns_are_reported_not_fatal() {
    both("CREATE TABLE vt_cols (id int PRIMARY KEY, a int);");
    on_target("ALTER TABLE vt_cols ADD COLUMN extra int;");
    on_source("CREATE TABLE vt_only_source (id int PRIMARY KEY);");
    on_target("CREATE TABLE vt_only_target (id int PRIMARY KEY);");
    let (report, _) = verify(
        &["vt_only_source", "vt_cols", "vt_only_target", "vt_nowhere"],
        &small(),
    )
    .await;
    assert_eq!(
        errors(&report),
        vec![
            (
                TableStatus::Error,
                Some("public.vt_only_source: missing on the target")
            ),
            (TableStatus::Mismatch, None),
            (
                TableStatus::Error,
                Some("public.vt_only_target: missing on the source")
            ),
            (
                TableStatus::Error,
                Some("public.vt_nowhere: missing on the source and the target")
            ),
        ]
    );
    assert_eq!(report.tables[1].columns_only_target, vec!["extra"]);
}

/// Two slow tables (md5 row hashes, ~27k heap pages: 8 slices per side).
fn cancel_tables() -> Vec<TableRef> {
    static CREATED: std::sync::Once = std::sync::Once::new();
    CREATED.call_once(|| {
        for t in ["vt_cancel", "vt_cancel_b"] {
            both(&format!(
                "CREATE TABLE {t} (id int PRIMARY KEY, v text);
                 INSERT INTO {t} SELECT g, repeat(md5(g::text), 20) FROM generate_series(1, 300000) g;
                 ANALYZE {t};"
            ));
        }
    });
    ["vt_cancel", "vt_cancel_b"]
        .iter()
        .map(|t| TableRef::new("public", *t))
        .collect()
}

async fn cancelled_run(at: CancelAt) -> VerifyReport {
    let tables = cancel_tables();
    let (canceller, rx) = Canceller::start(at);
    let opts = VerifyOptions {
        cancel: Some(rx),
        hash: cutover::verify::HashKind::Md5,
        parallelism: 2,
        ..VerifyOptions::default()
    };
    let config = cfg();
    let report = verify_tables(&config, &tables, &opts, |_| canceller.on_progress())
        .await
        .expect("a cancelled run still reports");
    canceller.finish().await;
    report
}

/// Cancelled at any point, the run lists every table it was asked for as
/// cancelled, and leaves no query of it running on either server: a query
/// sent at the moment of the cancel is stopped too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_stops_the_server_side_queries() {
    let points = CancelAt::points();
    cancel_tables();
    for at in points {
        let started = std::time::Instant::now();
        let report = cancelled_run(at).await;
        let statuses: Vec<_> = report
            .tables
            .iter()
            .map(|t| (t.table.name.as_str(), t.status, t.error.as_deref()))
            .collect();
        assert_eq!(
            statuses,
            vec![
                ("vt_cancel", TableStatus::Cancelled, None),
                ("vt_cancel_b", TableStatus::Cancelled, None),
            ],
            "cancelled at {at:?}"
        );
        assert!(report.cancelled, "cancelled at {at:?}");
        assert!(!report.is_clean());
        // A hang detector, not a performance target: a scan runs for seconds.
        assert!(started.elapsed() < Duration::from_secs(10), "{at:?}");
        // The backend reports itself idle just after its error reached us.
        tokio::time::sleep(Duration::from_millis(200)).await;
        common::assert_no_verify_query_on("vt_cancel");
    }
}

#[tokio::test]
async fn declared_key_columns_must_exist_on_both_sides() {
    both(
        "CREATE TABLE vt_keys_pk (id int PRIMARY KEY, a int);
         CREATE TABLE vt_keys_nopk (id int NOT NULL, a int);",
    );
    on_target("ALTER TABLE vt_keys_nopk DROP COLUMN a;");
    let mut opts = small();
    opts.keys = BTreeMap::from([
        (
            TableRef::new("public", "vt_keys_pk"),
            vec!["id".to_string(), "nope".to_string()],
        ),
        (
            TableRef::new("public", "vt_keys_nopk"),
            vec!["a".to_string()],
        ),
    ]);
    let (report, _) = verify(&["vt_keys_pk", "vt_keys_nopk"], &opts).await;
    assert_eq!(
        errors(&report),
        vec![
            (
                TableStatus::Error,
                Some(
                    "public.vt_keys_pk: verify.keys names column \"nope\", which \
                     public.vt_keys_pk does not have (source and target)"
                )
            ),
            (
                TableStatus::Error,
                Some(
                    "public.vt_keys_nopk: verify.keys names column \"a\", which \
                     public.vt_keys_nopk does not have (target)"
                )
            ),
        ]
    );
}

/// More connections than the server has free: a clear error before any is
/// opened, not hundreds of connections and a failure with no hint.
#[tokio::test]
async fn parallelism_beyond_the_free_connections_is_refused_up_front() {
    let pair = common::pair();
    let max: u32 = pair
        .psql(&pair.source_conninfo, "SHOW max_connections")
        .trim()
        .parse()
        .unwrap();
    let opts = VerifyOptions {
        parallelism: 10_000,
        ..small()
    };
    let tables = [TableRef::new("public", "vt_keys_pk")];
    let e = verify_tables(&cfg(), &tables, &opts, |_| {})
        .await
        .expect_err("refused");
    let text = format!("{e:#}");
    let tail = text
        .split_once(": parallelism 10000 needs 10000 connections on the source, which has ")
        .map(|(_, tail)| tail)
        .unwrap_or_else(|| panic!("{text}"));
    let (free, rest) = tail.split_once(' ').unwrap();
    let free: u32 = free.parse().unwrap_or_else(|_| panic!("{text}"));
    assert!(free < max, "{text}");
    assert_eq!(rest, format!("free of max_connections {max}"), "{text}");
    assert!(text.starts_with("source postgres@127.0.0.1:"), "{text}");
}

#[tokio::test]
async fn a_paused_verification_starts_no_query_until_released() {
    both("CREATE TABLE v_pause (id int PRIMARY KEY, v text); INSERT INTO v_pause SELECT g, 'x' || g FROM generate_series(1, 2000) g");
    let (pause_tx, pause_rx) = tokio::sync::watch::channel(true);
    let opts = VerifyOptions {
        pause: Some(pause_rx),
        ..small()
    };
    let task = tokio::spawn(async move {
        let config = cfg();
        let table = [TableRef::new("public", "v_pause")];
        cutover::verify::verify_tables(&config, &table, &opts, |_| {}).await
    });
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    assert!(!task.is_finished(), "held back while paused");
    let pair = common::pair();
    let active = pair.psql(
        &pair.source_conninfo,
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'cutover-verify' AND state = 'active'",
    );
    assert_eq!(
        active.trim(),
        "0",
        "no verification query runs while paused"
    );
    pause_tx.send(false).unwrap();
    let report = task.await.unwrap().unwrap();
    assert!(report.is_clean(), "{report}");
    assert_eq!(report.tables[0].rows_source, 2000);
}
