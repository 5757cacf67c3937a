//! The monitoring queries and exact counts against real clusters in a known
//! replication state: values are checked against what psql computes itself.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use cutover::model::{self, Model, RowState};
use cutover::pg::collector::open_monitor_connection;
use cutover::pg::monitor::{poll_source, poll_target};
use cutover::runtime::session_info;
use cutover::session::sample::{Side, SourceSample};
use cutover::session::{Event, EventKind};

fn all(_: &str, _: &str) -> bool {
    true
}

async fn eventually<T>(what: &str, timeout: Duration, mut f: impl AsyncFnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn slot_lag(s: &SourceSample) -> Option<i64> {
    s.slots
        .iter()
        .find(|s| s.name == "cutover_sub")
        .and_then(|s| s.lag_bytes)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replication_state_is_reported_exactly() {
    let pair = common::pair();
    let config = cutover::config::load(&pair.config_path).expect("lab config loads");
    let src = open_monitor_connection(&config.source, Duration::from_secs(5), 2000)
        .await
        .unwrap();
    let tgt = open_monitor_connection(&config.target, Duration::from_secs(5), 2000)
        .await
        .unwrap();

    // Before replication: the selected tables, no slot, no subscription.
    let s = poll_source(&src, &all).await.unwrap();
    assert_eq!(s.wal_level, "logical");
    assert!(s.slots.iter().all(|sl| sl.name != "cutover_sub"));
    let names: Vec<String> = s.tables.iter().map(|t| t.table.to_string()).collect();
    for t in ["public.users", "public.orders", "public.events"] {
        assert!(names.contains(&t.to_string()), "{names:?}");
    }
    let events = s.tables.iter().find(|t| t.table.name == "events").unwrap();
    assert!(!events.has_primary_key);
    let users = s.tables.iter().find(|t| t.table.name == "users").unwrap();
    let users_exact: i64 = pair
        .psql(&pair.source_conninfo, "SELECT count(*) FROM users")
        .trim()
        .parse()
        .unwrap();
    assert_eq!(
        users.estimated_rows, users_exact,
        "statistics after ANALYZE are exact for a static table"
    );
    let t = poll_target(&tgt, &all).await.unwrap();
    assert!(t.subscriptions.is_empty() && t.tables.is_empty());

    // Rows written so far, from the statistics the server keeps: the same
    // figure psql reads (the seed wrote every row once), growing with writes.
    let written = |conninfo: &str| -> i64 {
        pair.psql(
            conninfo,
            "SELECT sum(n_tup_ins + n_tup_upd + n_tup_del) FROM pg_stat_user_tables",
        )
        .trim()
        .parse()
        .unwrap()
    };
    let before = s.rows_written.expect("the source reports rows written");
    assert_eq!(before, written(&pair.source_conninfo));
    assert!(before >= users_exact, "{before}");
    pair.psql(
        &pair.source_conninfo,
        "CREATE TABLE written_probe (i int); INSERT INTO written_probe SELECT generate_series(1, 100); \
         SELECT pg_stat_force_next_flush()",
    );
    let after = poll_source(&src, &all).await.unwrap().rows_written.unwrap();
    assert!(after >= before + 100, "{before} → {after}");
    pair.psql(&pair.source_conninfo, "DROP TABLE written_probe");

    // The monitor connection cannot write, even by mistake.
    let err = src
        .batch_execute("CREATE TABLE must_not_exist (i int)")
        .await
        .unwrap_err();
    assert!(cutover::pg::error_text(&err).contains("read-only"), "{err}");

    // Replication by hand, as an operator would with psql.
    cutover::lab::copy_schema(&pair.bin, &pair.source_conninfo, &pair.target_conninfo).unwrap();
    pair.psql(
        &pair.source_conninfo,
        "CREATE PUBLICATION cutover_pub FOR ALL TABLES",
    );
    pair.psql(
        &pair.target_conninfo,
        &format!(
            "CREATE SUBSCRIPTION cutover_sub CONNECTION '{}' PUBLICATION cutover_pub",
            pair.source_conninfo
        ),
    );
    // Seven tables: the six of the seed and the app's app_writes.
    let t = eventually("initial sync", Duration::from_secs(60), async || {
        let t = poll_target(&tgt, &all).await.unwrap();
        (t.sub_tables.len() == 7 && t.sub_tables.iter().all(|r| r.state == "r")).then_some(t)
    })
    .await;
    let sub = &t.subscriptions[0];
    assert_eq!(sub.name, "cutover_sub");
    assert!(sub.enabled);
    assert_eq!(sub.publications, vec!["cutover_pub".to_string()]);
    eventually(
        "lag 0 after catching up",
        Duration::from_secs(30),
        async || (slot_lag(&poll_source(&src, &all).await.unwrap()) == Some(0)).then_some(()),
    )
    .await;

    // Disabled subscription + writes on the source: lag grows, and matches psql.
    pair.psql(
        &pair.target_conninfo,
        "ALTER SUBSCRIPTION cutover_sub DISABLE",
    );
    // The apply worker notices DISABLE only at its next check, and the slot can
    // look inactive for a moment while the worker restarts after the initial
    // sync: wait until no worker runs and the slot has stayed inactive.
    let mut quiet_polls = 0;
    eventually(
        "apply worker gone, slot inactive",
        Duration::from_secs(30),
        async || {
            let s = poll_source(&src, &all).await.unwrap();
            let t = poll_target(&tgt, &all).await.unwrap();
            let inactive = s
                .slots
                .iter()
                .any(|sl| sl.name == "cutover_sub" && !sl.active);
            let no_worker = t.subscriptions.iter().all(|sub| sub.worker_pid.is_none());
            quiet_polls = if inactive && no_worker {
                quiet_polls + 1
            } else {
                0
            };
            (quiet_polls >= 5).then_some(())
        },
    )
    .await;
    pair.psql(
        &pair.source_conninfo,
        "INSERT INTO audit_log (at, actor, detail) SELECT now(), 'test', repeat('x', 200) FROM generate_series(1, 5000)",
    );
    let (lag, retained, psql_lag, psql_retained) = eventually(
        "a quiet WAL position",
        Duration::from_secs(30),
        async || {
            // Background processes may write WAL between our query and psql's: retry until both agree.
            let s = poll_source(&src, &all).await.unwrap();
            let slot = s
                .slots
                .iter()
                .find(|sl| sl.name == "cutover_sub")
                .unwrap()
                .clone();
            let row = pair.psql(
            &pair.source_conninfo,
            "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)::bigint || ' ' || \
                    pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::bigint \
               FROM pg_replication_slots WHERE slot_name = 'cutover_sub'",
        );
            let mut it = row.split_whitespace().map(|v| v.parse::<i64>().unwrap());
            let (pl, pr) = (it.next().unwrap(), it.next().unwrap());
            (slot.lag_bytes == Some(pl) && slot.retained_bytes == Some(pr)).then_some((
                slot.lag_bytes.unwrap(),
                slot.retained_bytes.unwrap(),
                pl,
                pr,
            ))
        },
    )
    .await;
    assert_eq!(lag, psql_lag);
    assert_eq!(retained, psql_retained);
    assert!(
        lag > 5000 * 200,
        "5000 rows of 200 bytes are in the WAL behind the slot: {lag}"
    );
    assert!(
        retained >= lag,
        "the slot retains at least what it has not confirmed"
    );

    // Fold what we saw into the model: the lag pane's numbers come from the slot.
    let mut m = Model::default();
    let mut seq = 0;
    let mut feed = |m: &mut Model, kind: EventKind| {
        seq += 1;
        model::update(
            m,
            &Event {
                seq,
                at: chrono::Utc::now(),
                kind,
            },
        )
    };
    feed(
        &mut m,
        EventKind::SessionStarted(Box::new(session_info(&config, "test", false))),
    );
    feed(
        &mut m,
        EventKind::SourceSampled(poll_source(&src, &all).await.unwrap()),
    );
    let summary = model::lag_summary(&m).unwrap();
    assert!(summary.lag_bytes.unwrap() >= lag);
    assert!(!summary.slot.unwrap().active);

    // Enable again: it catches up to 0 and the sides agree row for row.
    pair.psql(
        &pair.target_conninfo,
        "ALTER SUBSCRIPTION cutover_sub ENABLE",
    );
    eventually("caught up again", Duration::from_secs(60), async || {
        (slot_lag(&poll_source(&src, &all).await.unwrap()) == Some(0)).then_some(())
    })
    .await;

    // Exact counts through the product's count runner equal psql's counts.
    let tables: Vec<_> = poll_source(&src, &all)
        .await
        .unwrap()
        .tables
        .into_iter()
        .map(|t| t.table)
        .collect();
    let (tx, mut rx) = tokio::sync::mpsc::channel(64);
    let (_cancel_tx, cancel_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(cutover::pg::count::run(
        7,
        tables.clone(),
        Arc::new(config.clone()),
        tx,
        cancel_rx,
    ));
    let mut got = Vec::new();
    while let Some(ev) = rx.recv().await {
        let done = matches!(ev, EventKind::CountFinished { .. });
        got.push(ev);
        if done {
            break;
        }
    }
    assert!(matches!(
        got.last(),
        Some(EventKind::CountFinished {
            run: 7,
            cancelled: false
        })
    ));
    for table in &tables {
        let sql = format!(
            "SELECT count(*) FROM {}",
            cutover::pg::monitor::qualified(table)
        );
        for (side, conninfo) in [
            (Side::Source, &pair.source_conninfo),
            (Side::Target, &pair.target_conninfo),
        ] {
            let expected: i64 = pair.psql(conninfo, &sql).trim().parse().unwrap();
            let rows = got.iter().find_map(|e| match e {
                EventKind::CountProgress {
                    side: s,
                    table: t,
                    rows,
                    ..
                } if *s == side && t == table => Some(*rows),
                _ => None,
            });
            assert_eq!(rows, Some(expected), "{side:?} {table}");
        }
    }
    // And the model calls every table an exact match.
    feed(&mut m, EventKind::Key { key: "c".into() });
    for ev in got {
        let kind = match ev {
            EventKind::CountProgress {
                side,
                table,
                rows,
                elapsed_ms,
                ..
            } => EventKind::CountProgress {
                run: m.next_run,
                side,
                table,
                rows,
                elapsed_ms,
            },
            EventKind::CountFinished { cancelled, .. } => EventKind::CountFinished {
                run: m.next_run,
                cancelled,
            },
            other => other,
        };
        feed(&mut m, kind);
    }
    feed(
        &mut m,
        EventKind::TargetSampled(poll_target(&tgt, &all).await.unwrap()),
    );
    let rows = model::table_rows(&m);
    assert_eq!(rows.len(), tables.len());
    for r in rows {
        assert_eq!(r.state, RowState::ExactMatch, "{}", r.table);
        assert_eq!(r.sync_state.as_deref(), Some("r"));
    }
    // The non-interactive verifier agrees, then names exactly what a stray write broke.
    let verify = |tables: &[&str]| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_cutover"));
        cmd.args(["verify", "-c"]).arg(&pair.config_path);
        for t in tables {
            cmd.args(["--table", t]);
        }
        cmd.output().unwrap()
    };
    let out = verify(&[]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("7 of 7 tables clean"), "{text}");
    pair.psql(
        &pair.target_conninfo,
        "ALTER SUBSCRIPTION cutover_sub DISABLE",
    );
    pair.psql(
        &pair.target_conninfo,
        "UPDATE orders SET status = 'lost' WHERE id = 7",
    );
    let out = verify(&["orders", "public.users"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("id=7") && text.contains("[status]"), "{text}");
    assert!(text.contains("1 of 2 tables clean"), "{text}");
}

#[tokio::test]
async fn exact_count_of_a_missing_table_fails_with_the_servers_message() {
    let pair = common::pair();
    let config = cutover::config::load(&pair.config_path).unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::channel(16);
    let (_c, cancel_rx) = tokio::sync::watch::channel(false);
    let missing = cutover::session::TableRef::new("public", "no_such_table");
    tokio::spawn(cutover::pg::count::run(
        1,
        vec![missing.clone()],
        Arc::new(config),
        tx,
        cancel_rx,
    ));
    let mut failures = Vec::new();
    while let Some(ev) = rx.recv().await {
        match ev {
            EventKind::CountFailed { table, error, .. } => failures.push((table, error)),
            EventKind::CountFinished { .. } => break,
            _ => {}
        }
    }
    assert_eq!(failures.len(), 2, "{failures:?}");
    for (table, error) in failures {
        assert_eq!(table.as_ref(), Some(&missing));
        assert!(
            error.contains("does not exist") && error.contains("42P01"),
            "{error}"
        );
    }
}
