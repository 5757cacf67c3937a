//! The lab against real PostgreSQL clusters: lifecycle and seeding, with
//! the target on PostgreSQL 18 when the test support could get it.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use cutover::lab::{self, LabOptions, PgBin, SeedPlan};
use tokio_postgres::{Client, NoTls};

async fn connect(conninfo: &str) -> Client {
    let (client, conn) = tokio_postgres::connect(conninfo, NoTls)
        .await
        .unwrap_or_else(|e| panic!("connecting to {conninfo}: {e}"));
    tokio::spawn(conn);
    client
}

async fn count(c: &Client, table: &str) -> i64 {
    c.query_one(&format!("SELECT count(*) FROM {table}"), &[])
        .await
        .unwrap()
        .get(0)
}

/// A temp dir the `postgres` OS user can enter (tempfile makes 0700 dirs,
/// which is exactly what `up` refuses when running as root).
fn open_tempdir() -> tempfile::TempDir {
    let t = tempfile::tempdir().unwrap();
    fs::set_permissions(t.path(), fs::Permissions::from_mode(0o755)).unwrap();
    t
}

/// Tears the lab down even when an assertion fails, so a failing test does
/// not leave servers running in a deleted temp dir.
struct DownOnDrop<'a>(&'a Path);

impl Drop for DownOnDrop<'_> {
    fn drop(&mut self) {
        if let Err(e) = lab::down(self.0) {
            eprintln!("cleanup: {e:#}");
        }
    }
}

/// Relations the app's role owns on the database `c` is connected to.
async fn app_owns(c: &Client) -> i64 {
    c.query_one(
        "SELECT count(*) FROM pg_class WHERE relowner = 'app'::regrole",
        &[],
    )
    .await
    .unwrap()
    .get(0)
}

async fn refuses_connections(conninfo: &str) -> bool {
    tokio_postgres::connect(conninfo, NoTls).await.is_err()
}

async fn version_num(c: &Client) -> u32 {
    let v: String = c
        .query_one("SHOW server_version_num", &[])
        .await
        .unwrap()
        .get(0);
    v.parse().unwrap()
}

/// A directory that passes for a PostgreSQL `version` toolchain: enough for
/// the checks that run before any cluster is made.
fn fake_bin(dir: &Path, version: &str) {
    fs::create_dir_all(dir).unwrap();
    for tool in ["initdb", "pg_ctl", "postgres"] {
        let p = dir.join(tool);
        fs::write(
            &p,
            format!("#!/bin/sh\necho 'postgres (PostgreSQL) {version}'\n"),
        )
        .unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
    }
}

/// A version one major older than the source's (the system's).
fn older_than_source() -> String {
    let source = PgBin::find().expect("the source's PostgreSQL");
    format!("{}.3", source.major - 1)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lab_up_status_down() {
    let tmp = open_tempdir();
    let dir = tmp.path().join("lab");
    let rows = 5_000;
    let opts = LabOptions {
        dir: dir.clone(),
        rows,
        load_rate: 50,
        target_bin: common::target_pg_bin(),
        pooler: false,
    };
    let _cleanup = DownOnDrop(&dir);
    let started = Instant::now();
    let info = lab::up(&opts)
        .await
        .unwrap_or_else(|e| panic!("lab up: {e:#}"));
    eprintln!("lab up ({}) took {:?}", info.versions(), started.elapsed());
    assert!(!info.reused);
    assert_ne!(info.source_port, info.target_port);
    let plan = SeedPlan::for_rows(rows);
    assert_eq!(info.plan, plan);

    // Both reachable; the source is ready for logical decoding.
    let src = connect(&info.source_conninfo).await;
    let tgt = connect(&info.target_conninfo).await;

    // Each side runs the binaries it was given.
    assert_eq!(version_num(&src).await / 10_000, info.bin.major);
    assert_eq!(version_num(&tgt).await / 10_000, info.target_bin.major);
    match common::target_pg_bin() {
        Some(dir) => {
            assert_eq!(info.target_bin.dir, dir);
            assert!(version_num(&tgt).await >= 180_000, "{}", info.versions());
        }
        None => eprintln!(
            "no PostgreSQL 18 here: this run checked {}",
            info.versions()
        ),
    }
    let state = lab::read_state(&dir).unwrap().unwrap();
    assert_eq!(state.source_bin(), info.bin);
    assert_eq!(state.target_bin(), info.target_bin);
    let wal_level: String = src.query_one("SHOW wal_level", &[]).await.unwrap().get(0);
    assert_eq!(wal_level, "logical");
    let workers: String = tgt
        .query_one("SHOW max_logical_replication_workers", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(workers, "8");
    for c in [&src, &tgt] {
        let listen: String = c
            .query_one("SHOW listen_addresses", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(listen, "127.0.0.1");
        let ext: i64 = c
            .query_one(
                "SELECT count(*) FROM pg_extension WHERE extname = 'pg_stat_statements'",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(ext, 1);
    }

    // Exactly the promised rows per table.
    for (table, n) in plan.tables() {
        assert_eq!(count(&src, table).await, n as i64, "rows in {table}");
    }
    let target_tables: i64 = tgt
        .query_one(
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(target_tables, 0, "target gets an empty database");

    // events exists, has no primary key and the default replica identity
    // (which, without a key, identifies nothing).
    let row = src
        .query_one(
            "SELECT c.relreplident::text,
                    EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary)
             FROM pg_class c WHERE c.oid = 'public.events'::regclass",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "d");
    assert!(!row.get::<_, bool>(1), "events must have no primary key");
    let pk_tables: i64 = src
        .query_one(
            "SELECT count(*) FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid
             JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE i.indisprimary AND n.nspname = 'public'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(pk_tables, 6, "every table but events has a primary key");

    // The app's role, on both clusters: may log in, nothing more.
    for c in [&src, &tgt] {
        let row = c
            .query_one(
                "SELECT rolcanlogin, rolsuper, rolcreatedb, rolcreaterole, rolreplication \
                 FROM pg_roles WHERE rolname = 'app'",
                &[],
            )
            .await
            .expect("role app exists on both clusters");
        let flags: Vec<bool> = (0..5).map(|i| row.get(i)).collect();
        assert_eq!(flags, [true, false, false, false, false]);
    }
    // It owns no table, and may write every one (the app's own included).
    assert_eq!(app_owns(&src).await, 0);
    let writable: Vec<String> = src
        .query(
            // A list of privileges asks for any of them: each on its own.
            "SELECT c.relname FROM pg_class c \
             WHERE c.relnamespace = 'public'::regnamespace AND c.relkind = 'r' \
               AND has_table_privilege('app', c.oid, 'SELECT') \
               AND has_table_privilege('app', c.oid, 'INSERT') \
               AND has_table_privilege('app', c.oid, 'UPDATE') \
               AND has_table_privilege('app', c.oid, 'DELETE') \
             ORDER BY 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        writable,
        [
            "app_writes",
            "audit_log",
            "events",
            "order_items",
            "orders",
            "products",
            "users"
        ]
    );

    // Seeded awkward data reads back as written.
    let name = |id: i32| {
        let src = &src;
        async move {
            src.query_one("SELECT name FROM users WHERE id = $1", &[&id])
                .await
                .unwrap()
                .get::<_, String>(0)
        }
    };
    assert_eq!(name(8).await, "E\u{301}milie 8");
    assert_eq!(name(13).await, "Zürich 👩\u{200d}💻 13");
    assert_eq!(name(2).await, "山田太郎 2");
    assert_eq!(name(6).await, "محمد 6");
    let row = src
        .query_one(
            "SELECT (created_at AT TIME ZONE 'UTC')::text, avatar IS NULL, profile IS NULL
             FROM users WHERE id = 1",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "2022-01-01 05:01:37.000001");
    let avatar: Vec<u8> = src
        .query_one("SELECT avatar FROM users WHERE id = 5", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(&avatar[..3], &[0x00, 0xff, 0x00]);
    assert_eq!(avatar.len(), 19);
    let price: String = src
        .query_one("SELECT price::text FROM products WHERE id = 1", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        price,
        "123456789012345678901234567890.123456789012345678901234567890"
    );
    let nulls: i64 = src
        .query_one(
            "SELECT count(*) FROM users WHERE profile IS NULL AND avatar IS NULL",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(nulls > 0);

    // Unicode written by a client round-trips unchanged.
    let text = "Zoë 🦀 山田 שָׁלוֹם مرحبا e\u{301} 👩\u{200d}💻";
    let back: String = src
        .query_one("SELECT $1::text || ''", &[&text])
        .await
        .unwrap()
        .get(0);
    assert_eq!(back, text);

    // Files.
    let toml_text = fs::read_to_string(&info.config_path).unwrap();
    assert!(toml_text.contains(&format!("port={}", info.source_port)));
    assert!(toml_text.contains(&format!("port={}", info.target_port)));
    let cfg: toml::Value = toml::from_str(&toml_text).unwrap();
    assert_eq!(cfg["lab"]["dir"].as_str(), Some(dir.to_str().unwrap()));
    assert!(dir.join("lab.json").exists());
    // The sessions live beside the lab, not in it.
    let sessions = cutover::lab::sessions_dir_for(&dir);
    assert!(sessions.is_dir() && !dir.join("sessions").exists());
    assert_eq!(
        cfg["session"]["dir"].as_str(),
        Some(sessions.to_str().unwrap())
    );
    let readme = fs::read_to_string(&info.readme_path).unwrap();
    assert_eq!(readme, info.replication_help());
    assert!(readme.contains(&format!("port={}", info.target_port)));
    // cutover connects as postgres; the app as app, on the target after the switch.
    assert!(toml_text.contains("user=postgres"), "{toml_text}");
    assert_eq!(cfg["freeze"]["app_roles"][0].as_str(), Some("app"));
    assert_eq!(
        fs::read_to_string(dir.join("target-database-url")).unwrap(),
        format!(
            "host=127.0.0.1 port={} dbname=app user=app\n",
            info.target_port
        )
    );

    // The README's recipe actually works: schema copy, publication,
    // subscription, initial sync.
    info.copy_schema().expect("schema copy");
    // The copy carries the GRANTs: the app may write on the target, whose
    // tables it does not own either.
    let insert: bool = tgt
        .query_one(
            "SELECT has_table_privilege('app', 'public.orders', 'INSERT')",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(insert, "app may insert into orders on the target");
    assert_eq!(app_owns(&tgt).await, 0);

    // The preflight's roles check passes on the lab, and fails (naming the
    // role and the statement) for a role granted on the source only.
    let config = cutover::config::load(&info.config_path).expect("the lab's config loads");
    let roles_check = || async {
        let facts = cutover::pg::preflight::gather(&config)
            .await
            .expect("preflight facts");
        let names = cutover::runbook::preflight::Names {
            subscription: &config.replication.subscription,
            slot: &config.replication.slot,
        };
        cutover::runbook::preflight::evaluate(&facts, &names)
            .into_iter()
            .find(|c| c.name == cutover::runbook::preflight::ROLES_CHECK)
            .expect("the roles check")
    };
    let ok = roles_check().await;
    assert!(ok.ok, "{ok:?}");
    assert_eq!(ok.observed, "all on the target: app");
    // A table grant and a column grant (a dump carries both).
    src.batch_execute(
        "CREATE ROLE cutover_ghost; GRANT SELECT ON public.orders TO cutover_ghost; \
         GRANT UPDATE (name) ON public.users TO cutover_ghost",
    )
    .await
    .unwrap();
    let ghost = roles_check().await;
    src.batch_execute(
        "REVOKE ALL ON public.orders, public.users FROM cutover_ghost; DROP ROLE cutover_ghost",
    )
    .await
    .unwrap();
    assert!(!ghost.ok, "{ghost:?}");
    assert_eq!(
        ghost.observed,
        "missing on the target: cutover_ghost (public.orders, public.users)"
    );
    assert_eq!(
        ghost.fix.as_deref(),
        Some("CREATE ROLE \"cutover_ghost\"; on the target (pg_dumpall --roles-only shows them)")
    );
    assert!(roles_check().await.ok);
    src.batch_execute("CREATE PUBLICATION cutover_pub FOR ALL TABLES")
        .await
        .unwrap();
    tgt.batch_execute(&format!(
        "CREATE SUBSCRIPTION cutover_sub CONNECTION '{}' PUBLICATION cutover_pub",
        info.source_conninfo
    ))
    .await
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let ready: i64 = tgt
            .query_one(
                "SELECT count(*) FROM pg_subscription_rel WHERE srsubstate = 'r'",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        if ready == 7 {
            break;
        }
        assert!(Instant::now() < deadline, "initial sync did not finish");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(count(&tgt, "users").await, plan.users as i64);
    assert_eq!(
        tgt.query_one("SELECT name FROM users WHERE id = 13", &[])
            .await
            .unwrap()
            .get::<_, String>(0),
        "Zürich 👩\u{200d}💻 13"
    );
    drop((src, tgt));

    // status
    let st = lab::status(&dir).unwrap();
    assert!(st.all_running(), "{st}");
    let shown = st.to_string();
    assert!(shown.contains(&info.source_port.to_string()), "{shown}");
    assert!(shown.contains(&info.target_port.to_string()), "{shown}");
    assert!(shown.contains("running"), "{shown}");
    let line = |name: &str| {
        shown
            .lines()
            .find(|l| l.trim_start().starts_with(name))
            .unwrap_or_else(|| panic!("no {name} line in {shown}"))
            .to_string()
    };
    assert!(
        line("source").contains(&format!("PostgreSQL {}", info.bin.version)),
        "{shown}"
    );
    assert!(
        line("target").contains(&format!("PostgreSQL {}", info.target_bin.version)),
        "{shown}"
    );
    assert!(shown.contains("cutover.toml"), "{shown}");

    // A second up reuses the running lab instead of clobbering it.
    let again = lab::up(&opts).await.unwrap();
    assert!(again.reused);
    assert_eq!(again.source_port, info.source_port);
    assert_eq!(again.target_port, info.target_port);
    assert!(!again.notes.is_empty());
    assert_eq!(again.target_bin, info.target_bin);

    // down stops and removes; a second down is a no-op.
    lab::down(&dir).unwrap();
    assert!(!dir.exists());
    assert!(refuses_connections(&info.source_conninfo).await);
    assert!(refuses_connections(&info.target_conninfo).await);
    let st = lab::status(&dir).unwrap();
    assert!(!st.present);
    assert!(st.to_string().contains("no lab"));
    lab::down(&dir).unwrap();
}

#[test]
fn down_keeps_the_session_logs_of_consoles_run_on_the_lab() {
    let tmp = open_tempdir();
    let dir = tmp.path().join("lab");
    fs::create_dir_all(dir.join("sessions")).unwrap();
    fs::write(dir.join("README.txt"), "lab").unwrap();
    let log = dir.join("sessions/session-1.jsonl");
    fs::write(&log, "{}\n").unwrap();
    lab::down(&dir).unwrap();
    assert!(!dir.join("README.txt").exists(), "the lab's own files go");
    assert!(log.exists(), "the session log stays");
    assert_eq!(lab::kept_sessions(&dir), Some(dir.join("sessions")));
    // Without a log, the folder goes with the rest.
    fs::remove_file(&log).unwrap();
    lab::down(&dir).unwrap();
    assert!(!dir.exists());
}

#[test]
fn down_leaves_foreign_directories_alone() {
    let tmp = open_tempdir();
    let file = tmp.path().join("precious.txt");
    fs::write(&file, "keep me").unwrap();
    let err = lab::down(tmp.path()).unwrap_err().to_string();
    assert!(err.contains("does not look like a cutover lab"), "{err}");
    assert!(file.exists());
    lab::down(&tmp.path().join("never-existed")).unwrap();
}

#[tokio::test]
async fn up_refuses_leftover_clusters_without_state() {
    let tmp = open_tempdir();
    let dir = tmp.path().join("lab");
    fs::create_dir_all(dir.join("source")).unwrap();
    fs::write(dir.join("source/PG_VERSION"), "15\n").unwrap();
    let err = lab::up(&LabOptions {
        dir: dir.clone(),
        rows: 100,
        load_rate: 1,
        target_bin: None,
        pooler: false,
    })
    .await
    .unwrap_err()
    .to_string();
    assert!(err.contains("not touching them"), "{err}");
    assert!(dir.join("source/PG_VERSION").exists());
}

#[test]
fn harness_pair_is_seeded_and_target_empty() {
    let pair = common::pair();
    let users = pair.psql(&pair.source_conninfo, "SELECT count(*) FROM users");
    assert!(users.trim().parse::<u64>().unwrap() >= pair.plan.users);
    let tables = pair.psql(
        &pair.target_conninfo,
        "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'",
    );
    assert_eq!(tables.trim(), "0");
    assert!(Path::new(&pair.bin_dir).join("pg_ctl").exists());
    assert!(pair.config_path.exists());
    let target_version = pair.psql(&pair.target_conninfo, "SHOW server_version_num");
    assert_eq!(
        target_version.trim().parse::<u32>().unwrap() / 10_000,
        pair.target_bin.major
    );
}

#[tokio::test]
async fn up_refuses_a_target_older_than_the_source() {
    let tmp = open_tempdir();
    let dir = tmp.path().join("lab");
    let old = tmp.path().join("old-bin");
    let version = older_than_source();
    fake_bin(&old, &version);
    let source = PgBin::find().unwrap();
    let err = lab::up(&LabOptions {
        dir: dir.clone(),
        rows: 100,
        load_rate: 1,
        target_bin: Some(old.clone()),
        pooler: false,
    })
    .await
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "the target's PostgreSQL {version} ({}) is older than the source's PostgreSQL {}: \
             a cutover moves to the same or a newer major version; give the target PostgreSQL \
             {} or newer (--target-pg-bin DIR)",
            old.display(),
            source.version,
            source.major
        )
    );
    assert!(!dir.exists(), "nothing is left of the refused lab");
}

#[tokio::test]
async fn up_names_what_a_target_bin_dir_lacks() {
    let tmp = open_tempdir();
    let err = lab::up(&LabOptions {
        dir: tmp.path().join("lab"),
        rows: 100,
        load_rate: 1,
        target_bin: Some(tmp.path().to_path_buf()),
        pooler: false,
    })
    .await
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "--target-pg-bin {} does not contain initdb, pg_ctl, postgres; point it at the \
             directory holding initdb, pg_ctl and postgres",
            tmp.path().display()
        )
    );
}

#[test]
fn cli_lab_up_refuses_an_older_target_with_exit_2() {
    let tmp = open_tempdir();
    let old = tmp.path().join("old-bin");
    let version = older_than_source();
    fake_bin(&old, &version);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_cutover"))
        .args(["lab", "up", "--rows", "100", "--dir"])
        .arg(tmp.path().join("lab"))
        .arg("--target-pg-bin")
        .arg(&old)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "the target's PostgreSQL {version} ({}) is older than the source's",
            old.display()
        )),
        "{stderr}"
    );
    assert!(!tmp.path().join("lab").exists());
}

fn cli(args: &[&str], dir: &Path) -> (Option<i32>, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_cutover"))
        .args(args)
        .arg("--dir")
        .arg(dir)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Waits up to 15 s for a witness file that satisfies `pred`.
fn witness_where(
    dir: &Path,
    what: &str,
    pred: impl Fn(&lab::witness::Witness) -> bool,
) -> lab::witness::Witness {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let w = lab::witness::read(dir).unwrap_or_else(|e| panic!("{e:#}"));
        match w {
            Some(w) if pred(&w) => return w,
            w => assert!(Instant::now() < deadline, "{what}: {w:#?}"),
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The lab's app pods export what they measured (witness.json and the
/// journals of acknowledged ids); `lab status` shows it; `lab audit` finds
/// every acknowledged write in the app's database, and names the rows a
/// psql DELETE took away and the row whose update counter went back.
#[test]
fn the_lab_app_is_a_witness_status_and_audit() {
    let tmp = open_tempdir();
    let dir = tmp.path().join("lab");
    let _cleanup = DownOnDrop(&dir);
    let (code, _, err) = cli(&["lab", "up", "--rows", "2000", "--writes", "300"], &dir);
    assert_eq!(code, Some(0), "{err}");

    // The witness file appears, and its counts grow while the app writes.
    let first = witness_where(&dir, "acknowledged inserts", |w| {
        w.total.acknowledged_inserts > 0
    });
    let later = witness_where(&dir, "counts growing", |w| {
        w.total.acknowledged_inserts >= first.total.acknowledged_inserts + 300
            && w.updated_at > first.updated_at
    });
    // Six seconds of steady writes fill the rate's five complete seconds.
    let w = witness_where(&dir, "six seconds of writes", |w| {
        w.total
            .acks
            .get("source")
            .is_some_and(|s| (s.last - s.first).num_seconds() >= 6)
    });
    assert!(later.total.acknowledged_updates > first.total.acknowledged_updates);
    assert!(!w.is_final);
    assert_eq!(w.total.failed, 0, "{:?}", w.last_error);
    assert_eq!(w.total.failure_window, None);
    assert_eq!(w.total.source_to_target, None);
    assert_eq!(w.total.acks.keys().collect::<Vec<_>>(), ["source"]);
    // 300/s asked; a loaded machine may lag, but it writes.
    assert!(w.total.ok_per_sec > 100.0, "{}", w.total.ok_per_sec);
    assert_eq!(w.total.failed_per_sec, 0.0);
    assert_eq!(w.pods.len(), 3, "{:?}", w.pods);
    assert_eq!(
        w.pods
            .iter()
            .map(|p| p.figures.acknowledged_inserts)
            .sum::<u64>(),
        w.total.acknowledged_inserts
    );
    for p in &w.pods {
        assert!(dir.join(&p.journal).exists(), "{}", p.journal);
        assert!(p.figures.acknowledged_inserts > 0, "{}", p.pod);
    }
    // The journals hold at least what the summary counted, each id once.
    let acked = lab::witness::read_journals(&dir).unwrap();
    assert!(acked.inserts.len() as u64 >= w.total.acknowledged_inserts);
    assert!(acked.update_count() >= w.total.acknowledged_updates);
    let unique: std::collections::HashSet<&String> = acked.inserts.iter().collect();
    assert_eq!(unique.len(), acked.inserts.len());

    // lab status, as text and JSON.
    let (code, shown, err) = cli(&["lab", "status"], &dir);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        shown.contains("/s acknowledged, 0.0/s failed (last 5 s)"),
        "{shown}"
    );
    assert!(
        shown.contains("  write-failure window  none (no write failed)\n"),
        "{shown}"
    );
    let (code, json, err) = cli(&["lab", "status", "--json"], &dir);
    assert_eq!(code, Some(0), "{err}");
    let st: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(st["all_running"], true);
    let total = &st["app"]["total"];
    assert!(
        total["acknowledged_inserts"].as_u64().unwrap() >= w.total.acknowledged_inserts,
        "{json}"
    );
    assert!(total["ok_per_sec"].as_f64().unwrap() > 100.0, "{json}");
    assert_eq!(total["failed"], 0);
    assert_eq!(total["failed_per_sec"], 0.0);
    assert!(total["failure_window"].is_null(), "{json}");
    assert_eq!(st["app"]["pods"].as_array().unwrap().len(), 3);

    // Untouched: nothing missing.
    let (code, out, err) = cli(&["lab", "audit"], &dir);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains(", 0 missing\n"), "{out}");
    assert!(out.contains("; rows with fewer: 0\n"), "{out}");
    assert!(out.ends_with("nothing missing\n"), "{out}");
    assert!(out.contains("against the source (app@127.0.0.1:"), "{out}");

    // The pods connect as the app's role, which owns nothing and is no
    // superuser: a write freeze can hold against it.
    let state = lab::read_state(&dir).unwrap().unwrap();
    let admin = format!(
        "host=127.0.0.1 port={} dbname=app user=postgres",
        state.source.port
    );
    let sql = |q: &str| common::psql(&state.source_bin(), &admin, q);
    assert_eq!(
        sql(
            "SELECT string_agg(DISTINCT usename, ',') FROM pg_stat_activity \
             WHERE datname = 'app' AND backend_type = 'client backend' \
               AND pid <> pg_backend_pid()"
        ),
        "app\n"
    );
    assert_eq!(
        sql(
            "SELECT rolsuper, (SELECT count(*) FROM pg_class WHERE relowner = r.oid) \
             FROM pg_roles r WHERE rolname = 'app'"
        ),
        "f|0\n"
    );

    // Take away three acknowledged rows and one row's updates (as the app:
    // it may). The oldest rows: the app updates only its latest hundred, so
    // none of these moves.
    let src = state.source_conninfo();
    let gone = &acked.inserts[..3];
    let deleted = common::psql(
        &state.source_bin(),
        &src,
        &format!(
            "DELETE FROM app_writes WHERE id IN ('{}') RETURNING id",
            gone.join("','")
        ),
    );
    assert_eq!(deleted.lines().count(), 3, "{deleted}");
    let (row, n) = acked
        .updates
        .iter()
        .find(|(id, _)| !gone.contains(id))
        .expect("an updated row");
    common::psql(
        &state.source_bin(),
        &src,
        &format!("UPDATE app_writes SET updates = 0 WHERE id = '{row}'"),
    );
    let (code, out, err) = cli(&["lab", "audit"], &dir);
    assert_eq!(code, Some(1), "{out}{err}");
    assert!(
        out.contains(&format!("\nmissing (3 of 3): {}\n", gone.join(", "))),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "\nfewer updates than acknowledged (1 of 1): {row} ({n} acknowledged, 0 found)"
        )),
        "{out}"
    );
    assert!(out.contains(", 3 missing\n"), "{out}");
}

/// No lab: `lab audit` could not run (2) and says so; `lab status --json`
/// finds nothing running (1) and still prints one JSON document.
#[test]
fn cli_lab_audit_and_status_json_without_a_lab() {
    let tmp = open_tempdir();
    let dir = tmp.path().join("lab");
    let (code, out, err) = cli(&["lab", "audit"], &dir);
    assert_eq!(code, Some(2), "{out}");
    assert_eq!(
        err,
        format!(
            "cutover: no lab in {} (start one with `cutover lab up`)\n",
            dir.display()
        )
    );
    let (code, out, err) = cli(&["lab", "status", "--json"], &dir);
    assert_eq!(code, Some(1), "{err}");
    let st: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(st["present"], false);
    assert!(st["app"].is_null(), "{out}");
}
