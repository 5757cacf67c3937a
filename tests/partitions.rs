//! Partitioned tables in PREPARE, on real clusters: a partitioned root is
//! estimated as the sum of its partitions, the preflight says how it is
//! published, and the publication the plan creates publishes it through its
//! root, so the target's subscription lists the table the selection names.
//! Everything happens in a database of its own (`parts`), dropped at the end.

mod common;

use std::time::{Duration, Instant};

use cutover::model::Model;
use cutover::runbook::preflight::{evaluate, Names};
use cutover::runbook::{CheckpointId, Step};
use cutover::session::TableRef;

const DB: &str = "parts";

/// Rows per partition: unequal, so a sum is not a multiple of one of them.
const ROWS: [i64; 3] = [100, 200, 300];

fn source_sql(sql: &str) -> String {
    let pair = common::pair();
    pair.psql(&pair.source_db(DB), sql)
}

fn target_sql(sql: &str) -> String {
    let pair = common::pair();
    pair.psql(&pair.target_db(DB), sql)
}

/// The lab's config, pointed at `parts` on both sides.
fn config() -> cutover::config::Config {
    let pair = common::pair();
    let text = std::fs::read_to_string(&pair.config_path).unwrap();
    assert!(text.contains("dbname=app"), "{text}");
    let path = pair.config_path.with_file_name("parts.toml");
    std::fs::write(&path, text.replace("dbname=app", &format!("dbname={DB}"))).unwrap();
    cutover::config::load(&path).expect("the parts config loads")
}

/// Waits (bounded) until every table of `sub` is ready; returns its tables.
fn wait_ready(sub: &str) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(120);
    let sql = format!(
        "SELECT sr.srrelid::regclass::text, sr.srsubstate FROM pg_subscription_rel sr \
         JOIN pg_subscription s ON s.oid = sr.srsubid \
         WHERE s.subname = '{sub}' ORDER BY 1"
    );
    loop {
        let rows = target_sql(&sql);
        let rows: Vec<(&str, &str)> = rows.lines().filter_map(|l| l.split_once('|')).collect();
        if !rows.is_empty() && rows.iter().all(|(_, state)| *state == "r") {
            return rows.iter().map(|(t, _)| t.to_string()).collect();
        }
        assert!(
            Instant::now() < deadline,
            "initial sync of {sub} not done after 120 s: {rows:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[tokio::test]
async fn a_partitioned_table_is_estimated_checked_and_published_through_its_root() {
    let pair = common::pair();
    for conninfo in [pair.source_db("postgres"), pair.target_db("postgres")] {
        pair.psql(&conninfo, &format!("CREATE DATABASE {DB}"));
    }
    source_sql(
        "CREATE TABLE public.measurements (id int8, at date, v int, PRIMARY KEY (id, at)) \
         PARTITION BY RANGE (at); \
         CREATE TABLE public.measurements_q1 PARTITION OF public.measurements \
           FOR VALUES FROM ('2024-01-01') TO ('2024-04-01'); \
         CREATE TABLE public.measurements_q2 PARTITION OF public.measurements \
           FOR VALUES FROM ('2024-04-01') TO ('2024-07-01'); \
         CREATE TABLE public.measurements_q3 PARTITION OF public.measurements \
           FOR VALUES FROM ('2024-07-01') TO ('2024-10-01')",
    );
    for (i, (rows, month)) in ROWS.iter().zip(["01", "04", "07"]).enumerate() {
        source_sql(&format!(
            "INSERT INTO public.measurements \
             SELECT {i} * 1000 + g, '2024-{month}-15', g FROM generate_series(1, {rows}) g"
        ));
    }
    source_sql("ANALYZE public.measurements");
    // The target's schema as the runbook's copy makes it.
    cutover::lab::copy_schema(&pair.bin, &pair.source_db(DB), &pair.target_db(DB))
        .expect("schema copy");

    let config = config();
    let facts = cutover::pg::preflight::gather(&config)
        .await
        .expect("preflight facts");

    // Only the root is selected, estimated as the sum of its partitions.
    let tables = &facts.source_sample.tables;
    assert_eq!(
        tables.iter().map(|t| &t.table).collect::<Vec<_>>(),
        vec![&TableRef::new("public", "measurements")],
        "partitions are never listed"
    );
    let leaves: i64 = source_sql(
        "SELECT sum(n_live_tup) FROM pg_stat_user_tables \
         WHERE relname IN ('measurements_q1', 'measurements_q2', 'measurements_q3')",
    )
    .trim()
    .parse()
    .unwrap();
    assert_eq!(leaves, ROWS.iter().sum::<i64>());
    assert_eq!(tables[0].estimated_rows, leaves);
    assert_eq!(tables[0].partitions, 3);
    assert!(tables[0].size_bytes > 0);

    // The preflight says how it is published; the roots' schemas match.
    let names = Names {
        subscription: &config.replication.subscription,
        slot: &config.replication.slot,
    };
    let checks = evaluate(&facts, &names);
    let line = |name: &str| {
        checks
            .iter()
            .find(|c| c.name == name)
            .unwrap_or_else(|| panic!("no check {name}: {checks:?}"))
    };
    let parts = line("Partitioned tables");
    assert!(parts.ok);
    assert_eq!(
        parts.observed,
        "public.measurements: 3 partitions, published through the root"
    );
    assert!(line("Target schema matches the source").ok, "{checks:?}");
    assert!(
        line("Every table has a primary key or a replica identity").ok,
        "measurements has a key on every partition: {checks:?}"
    );

    // A partitioned table without a key: its root and each leaf without a
    // replica identity need one (UPDATE and DELETE happen on the leaves; the
    // subscriber is told the root's), and the fix names them all.
    source_sql(
        "CREATE TABLE public.readings (at date, v int) PARTITION BY RANGE (at); \
         CREATE TABLE public.readings_a PARTITION OF public.readings \
           FOR VALUES FROM ('2024-01-01') TO ('2024-07-01'); \
         CREATE TABLE public.readings_b PARTITION OF public.readings \
           FOR VALUES FROM ('2024-07-01') TO ('2025-01-01'); \
         ALTER TABLE public.readings_b REPLICA IDENTITY FULL",
    );
    let bare = cutover::pg::preflight::gather(&config)
        .await
        .expect("facts");
    let readings = bare
        .source_sample
        .tables
        .iter()
        .find(|t| t.table.name == "readings")
        .expect("readings listed");
    assert_eq!(
        readings.partitions_without_identity,
        vec!["public.readings_a"]
    );
    let checks = evaluate(&bare, &names);
    let identity = checks
        .iter()
        .find(|c| c.name == "Every table has a primary key or a replica identity")
        .unwrap();
    assert!(!identity.ok);
    let fix = identity.fix.as_deref().unwrap();
    assert!(
        fix.contains("ALTER TABLE public.readings REPLICA IDENTITY FULL; ALTER TABLE public.readings_a REPLICA IDENTITY FULL;"),
        "{fix}"
    );
    assert!(!fix.contains("readings_b"), "{fix}");
    source_sql("DROP TABLE public.readings");

    // The plan's own SQL publishes through the root.
    let mut model = Model {
        info: Some(cutover::runtime::session_info(&config, "test", false)),
        ..Model::default()
    };
    model.source.last = Some(facts.source_sample.clone());
    let plan = cutover::runbook::plan(&model, CheckpointId::CreatePublication).unwrap();
    let [Step::Sql { sql, .. }] = plan.steps.as_slice() else {
        panic!("one SQL step expected: {plan:?}");
    };
    assert!(
        sql.contains("WITH (publish_via_partition_root = true)"),
        "{sql}"
    );
    source_sql(sql);
    let (publication, subscription, slot) = (
        &config.replication.publication,
        &config.replication.subscription,
        &config.replication.slot,
    );
    target_sql(&format!(
        "CREATE SUBSCRIPTION {subscription} CONNECTION '{}' PUBLICATION {publication} \
         WITH (slot_name = {slot})",
        pair.source_db(DB)
    ));

    // The target subscribes to the root, and copies every partition's rows.
    assert_eq!(wait_ready(subscription), vec!["measurements".to_string()]);
    let count = "SELECT count(*) FROM public.measurements";
    assert_eq!(source_sql(count).trim(), leaves.to_string());
    assert_eq!(target_sql(count), source_sql(count));
    // The console's view of it: the subscription's table is the selected one.
    let after = cutover::pg::preflight::gather(&config).await.unwrap();
    assert_eq!(
        after
            .target_sample
            .sub_tables
            .iter()
            .map(|t| (&t.table, t.state.as_str()))
            .collect::<Vec<_>>(),
        vec![(&TableRef::new("public", "measurements"), "r")]
    );

    // The freeze takes the write privileges on the partitions too: a client
    // may write one directly, where its own privileges apply.
    source_sql(
        "CREATE ROLE parts_app LOGIN; GRANT USAGE ON SCHEMA public TO parts_app; \
         GRANT SELECT, INSERT ON public.measurements, public.measurements_q1 TO parts_app",
    );
    let can_write_q1 =
        "SELECT has_table_privilege('parts_app', 'public.measurements_q1', 'INSERT')";
    assert_eq!(source_sql(can_write_q1).trim(), "t");
    let (tx, mut rx) = tokio::sync::mpsc::channel(16);
    let roles = vec!["parts_app".to_string()];
    let said = cutover::runtime::freeze::freeze(
        1,
        &config,
        cutover::session::Side::Source,
        &roles,
        &["\"public\".\"measurements\"".to_string()],
        &tx,
    )
    .await
    .expect("frozen");
    assert!(
        said.contains("2 privileges taken on 4 tables (3 of them partitions)"),
        "{said}"
    );
    assert_eq!(source_sql(can_write_q1).trim(), "f");
    let mut grants = vec![];
    while let Ok(ev) = rx.try_recv() {
        if let cutover::session::EventKind::FreezeGrants { grants: g, .. } = ev {
            grants = g;
        }
    }
    let tables: Vec<&str> = grants.iter().map(|g| g.table.as_str()).collect();
    assert_eq!(tables, ["public.measurements", "public.measurements_q1"]);
    cutover::runtime::freeze::unfreeze(
        2,
        &config,
        cutover::session::Side::Source,
        &roles,
        &grants,
        &tx,
    )
    .await
    .expect("unfrozen");
    assert_eq!(source_sql(can_write_q1).trim(), "t");
    source_sql(
        "ALTER ROLE parts_app RESET ALL; REVOKE ALL ON public.measurements, \
         public.measurements_q1 FROM parts_app; REVOKE USAGE ON SCHEMA public FROM parts_app; \
         DROP ROLE parts_app",
    );

    // Clean up: the subscription drops its slot on the source; the databases
    // take the publication and the tables with them.
    target_sql(&format!("DROP SUBSCRIPTION {subscription}"));
    assert_eq!(
        pair.psql(
            &pair.source_db("postgres"),
            &format!("SELECT count(*) FROM pg_replication_slots WHERE slot_name = '{slot}'")
        )
        .trim(),
        "0"
    );
    for conninfo in [pair.source_db("postgres"), pair.target_db("postgres")] {
        pair.psql(&conninfo, &format!("DROP DATABASE {DB} WITH (FORCE)"));
    }
}
