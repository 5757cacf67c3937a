//! The dump-and-restore runbook through the real binary on the lab (source
//! 15 → target 18 where the lab has both), the app pods writing: freeze,
//! `pg_dump | pg_restore` with parallel jobs, verification, switch, rollout,
//! the app on the target. Checked from outside: every table's count and
//! checksum equal, the sequences carried, every write the app acknowledged
//! in the database it points at.

mod common;

use common::tmux::{audit, dsn, kubectl, psql, LabRun};

const TABLES: &[&str] = &[
    "users",
    "products",
    "orders",
    "order_items",
    "events",
    "audit_log",
];

/// `count(*)` and an order-independent checksum of a table's rows.
fn fingerprint(conninfo: &str, table: &str) -> String {
    psql(
        conninfo,
        &format!("SELECT count(*) || ':' || coalesce(sum(hashtext(t::text)::bigint), 0) FROM public.{table} t"),
    )
}

fn sequences(conninfo: &str) -> Vec<(String, String)> {
    psql(
        conninfo,
        "SELECT schemaname || '.' || sequencename || '=' || coalesce(last_value::text, 'null') \
         FROM pg_sequences ORDER BY 1",
    )
    .lines()
    .map(|l| {
        let (name, value) = l.split_once('=').unwrap();
        (name.to_string(), value.to_string())
    })
    .collect()
}

/// Whether the app's role may write on the source: "f" while frozen.
fn app_may_insert(source: &str) -> String {
    psql(
        source,
        "SELECT has_table_privilege('app', 'public.app_writes', 'INSERT')",
    )
}

/// The target's default privileges give the app's role its privileges on
/// what the restore, run as `restorer`, creates.
fn grant_app_what_the_restore_makes(target: &str, restorer: &str) {
    psql(
        target,
        &format!(
            "ALTER DEFAULT PRIVILEGES FOR ROLE {restorer} IN SCHEMA public \
               GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO app; \
             ALTER DEFAULT PRIVILEGES FOR ROLE {restorer} IN SCHEMA public \
               GRANT USAGE, SELECT, UPDATE ON SEQUENCES TO app"
        ),
    );
}

/// Waits (at most 60 s) until the lab's app pods have written to the
/// source: a freeze before their first write would prove nothing.
fn app_has_written(source: &str) {
    let start = std::time::Instant::now();
    while psql(source, "SELECT count(*) FROM public.app_writes") == "0" {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(60),
            "the lab's app wrote nothing to the source in 60 s"
        );
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
}

/// After the whole runbook (`out`): the source stays frozen (it is the way
/// back), and what it holds is what the target got, table by table; every
/// row of the app's own writes on the source is on the target; the
/// sequences came with the dump (the app's own moved on since).
fn copied_and_nothing_lost(out: &std::process::Output, source: &str, target: &str) {
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    for table in TABLES {
        assert_eq!(
            fingerprint(source, table),
            fingerprint(target, table),
            "{table}"
        );
    }
    let ids = psql(
        source,
        "SELECT coalesce(string_agg(quote_literal(id::text), ','), '') FROM public.app_writes",
    );
    let on_source = psql(source, "SELECT count(*) FROM public.app_writes");
    assert_ne!(on_source, "0");
    assert_eq!(
        psql(
            target,
            &format!("SELECT count(*) FROM public.app_writes WHERE id::text IN ({ids})")
        ),
        on_source
    );
    let (s, t) = (sequences(source), sequences(target));
    assert_eq!(s.len(), t.len(), "{s:?} {t:?}");
    for ((name, sv), (tname, tv)) in s.iter().zip(&t) {
        assert_eq!(name, tname);
        if name.contains("app_writes") {
            assert!(
                tv.parse::<i64>().unwrap() >= sv.parse::<i64>().unwrap(),
                "{name}: {sv} {tv}"
            );
        } else {
            assert_eq!(sv, tv, "{name}");
        }
    }
}

#[test]
fn the_dump_restore_runbook_copies_everything_in_the_freeze_and_loses_no_write() {
    let lab_run = LabRun::up("cutover-dump", "5000");
    let labdir = lab_run.config.parent().unwrap().to_path_buf();
    let source = dsn(&lab_run.config, "source");
    let target = dsn(&lab_run.config, "target");
    // The new instance is set up beforehand, as the story's Terraform did:
    // the app's role there gets its privileges on whatever the restore
    // (run as postgres) creates.
    grant_app_what_the_restore_makes(&target, "postgres");
    let config = std::fs::read_to_string(&lab_run.config).unwrap();
    std::fs::write(
        &lab_run.config,
        format!("{config}\n[runbook]\nvariant = \"dump-restore\"\ndump_jobs = 2\n"),
    )
    .unwrap();
    let script = |keys: &str| lab_run.script(keys);
    // A checkpoint of the other runbook is refused, with nothing run.
    let out = script("D");
    assert!(!out.status.success());
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("Copy schema to target is not a checkpoint of the dump-restore runbook"),
        "{said}"
    );

    app_has_written(&source);
    let out = script("F Z Y C S R T");
    copied_and_nothing_lost(&out, &source, &target);
    audit(&labdir);
    // The log says what was copied, and its progress went to the log; the
    // dump directory is gone.
    let log = std::fs::read_dir(&lab_run.sessions)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .max()
        .unwrap();
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains(r#""step":"dump_restore","jobs":2"#), "{text}");
    assert!(text.contains(r#""type":"copy_progress""#));
    assert!(text.contains("restored in"), "{text}");
    let left: Vec<_> = std::fs::read_dir(&lab_run.sessions)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

/// A copy that cannot succeed. A sequence of the same name left on the
/// target by an earlier attempt: refused before the dump, naming it. An
/// index of the same name (not a relation the check compares): the
/// restore fails, naming pg_restore's error. Either way the freeze stays,
/// no dump is left behind, and the way back gives the writes back.
#[test]
fn a_failed_restore_keeps_the_freeze_and_says_why() {
    let lab_run = LabRun::up("cutover-dump-fail", "2000");
    let source = dsn(&lab_run.config, "source");
    let target = dsn(&lab_run.config, "target");
    psql(&target, "CREATE SEQUENCE public.users_id_seq");
    psql(
        &target,
        "CREATE TABLE public.leftover (x int); CREATE INDEX users_pkey ON public.leftover (x)",
    );
    let config = std::fs::read_to_string(&lab_run.config).unwrap();
    std::fs::write(
        &lab_run.config,
        format!("{config}\n[runbook]\nvariant = \"dump-restore\"\n"),
    )
    .unwrap();
    let out = lab_run.script("F Z Y");
    assert!(!out.status.success());
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("nothing copied: the target already has 1 of the relations")
            && said.contains("public.users_id_seq (sequence)"),
        "{said}"
    );
    psql(&target, "DROP SEQUENCE public.users_id_seq");
    let log = std::fs::read_dir(&lab_run.sessions)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .unwrap();
    let out = resumed(&lab_run, &log, "Y");
    assert!(!out.status.success());
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("Dump and restore into the target failed")
            && said.contains("pg_restore failed")
            && said.contains("users_pkey"),
        "{said}"
    );
    // Still frozen: the app's role cannot write on the source.
    assert_eq!(app_may_insert(&source), "f");
    let dirs: Vec<_> = std::fs::read_dir(&lab_run.sessions)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    assert!(dirs.is_empty(), "{dirs:?}");
    // The way back, on the same session, gives the source its writes back.
    rolls_back(&lab_run, &log, &source);
}

/// `B` on the resumed session `log` gives the source its writes back.
fn rolls_back(lab_run: &LabRun, log: &std::path::Path, source: &str) {
    succeeded(&resumed(lab_run, log, "B"));
    assert_eq!(app_may_insert(source), "t");
}

/// `keys` on the resumed session `log`.
fn resumed(lab_run: &LabRun, log: &std::path::Path, keys: &str) -> std::process::Output {
    lab_run
        .script_command(keys)
        .arg("--resume")
        .arg(log)
        .output()
        .unwrap()
}

/// The script ran through, or the test fails with what it said.
#[track_caller]
fn succeeded(out: &std::process::Output) {
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The newest session log in `dir`.
fn newest_log(dir: &std::path::Path) -> std::path::PathBuf {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .max()
        .unwrap()
}

/// The lab's config for the copy as a Job in the simulator, with the
/// password file in Secret `secret`.
fn copy_in_job(lab_run: &LabRun, secret: &str) {
    let config = std::fs::read_to_string(&lab_run.config).unwrap();
    std::fs::write(
        &lab_run.config,
        format!(
            "{config}\n[runbook]\nvariant = \"dump-restore\"\ncopy = \"job\"\n\n\
             [runbook.job]\nsecret = \"{secret}\"\nuser = \"{}\"\nimage = \"postgres:18\"\n",
            cutover::lab::COPY_ROLE
        ),
    )
    .unwrap();
}

/// The copy run as a Kubernetes Job in the simulator: the pod runs
/// `pg_dump | pg_restore` with the password file from the lab's Secret;
/// the run follows the pod's log and records the Job's end; the Job is
/// deleted once it succeeded. Then verification, switch and rollout as
/// with the local copy, and nothing the app acknowledged is missing.
#[test]
fn in_a_job_the_copy_runs_in_the_cluster_and_copies_everything() {
    let lab_run = LabRun::up("cutover-job", "3000");
    let labdir = lab_run.config.parent().unwrap().to_path_buf();
    let source = dsn(&lab_run.config, "source");
    let target = dsn(&lab_run.config, "target");
    grant_app_what_the_restore_makes(&target, cutover::lab::COPY_ROLE);
    copy_in_job(&lab_run, cutover::lab::COPY_SECRET);
    app_has_written(&source);
    let out = lab_run.script("F Z Y C S R T");
    copied_and_nothing_lost(&out, &source, &target);
    audit(&labdir);
    let text = std::fs::read_to_string(newest_log(&lab_run.sessions)).unwrap();
    assert!(text.contains(r#""step":"copy_job""#), "{text}");
    assert!(text.contains(r#""type":"job_log""#), "{text}");
    // The pod's own lines, and the end as the Job told it.
    assert!(text.contains("cutover-copy: done"), "{text}");
    assert!(text.contains("processing data for table"), "{text}");
    assert!(
        text.contains("tables copied by job/cutover-copy-") && text.contains("(exit 0)"),
        "{text}"
    );
    // Deleted once done; nothing of the password file in the log.
    let jobs = kubectl(&labdir, &["get", "jobs", "-o", "name"]);
    assert_eq!(jobs.trim(), "", "{jobs}");
    let pgpass = std::fs::read_to_string(labdir.join(cutover::lab::COPY_PGPASS_FILE)).unwrap();
    let password = pgpass.lines().next().unwrap().rsplit(':').next().unwrap();
    assert!(!text.contains(password));
}

/// A Job whose Secret holds a wrong password: the checkpoint fails with
/// the pod's last log lines (the server's refusal), the Job is left for
/// `kubectl logs`, the writes stay frozen, and the way back is open.
#[test]
fn a_job_with_bad_credentials_fails_with_its_log_and_keeps_the_freeze() {
    let lab_run = LabRun::up("cutover-job-fail", "2000");
    let labdir = lab_run.config.parent().unwrap().to_path_buf();
    let source = dsn(&lab_run.config, "source");
    let target = dsn(&lab_run.config, "target");
    // (kubectl apply: the simulator speaks JSON, which `create secret` does not send.)
    let pgpass = format!(
        "127.0.0.1:*:*:{}:not-the-password\n",
        cutover::lab::COPY_ROLE
    );
    let manifest = labdir.join("bad-secret.json");
    std::fs::write(
        &manifest,
        serde_json::json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "bad-pgpass"},
            "data": {"pgpass": k8s_openapi::ByteString(pgpass.into_bytes())},
        })
        .to_string(),
    )
    .unwrap();
    kubectl(
        &labdir,
        &[
            "apply",
            "--validate=false",
            "-f",
            manifest.to_str().unwrap(),
        ],
    );
    copy_in_job(&lab_run, "bad-pgpass");
    let out = lab_run.script("F Z Y");
    assert!(!out.status.success());
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("Dump and restore into the target failed")
            && said.contains("job/cutover-copy-")
            && said.contains("BackoffLimitExceeded")
            && said.contains("password authentication failed for user \"cutover_copy\""),
        "{said}"
    );
    // Frozen still, and the target untouched by the failed copy.
    assert_eq!(app_may_insert(&source), "f");
    assert_eq!(
        psql(
            &target,
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"
        ),
        "0"
    );
    // The failed Job stays for kubectl logs, failed.
    let jobs = kubectl(
        &labdir,
        &["get", "jobs", "-o", "jsonpath={.items[*].status.failed}"],
    );
    assert_eq!(jobs.trim(), "1", "{jobs}");
    let log = newest_log(&lab_run.sessions);
    rolls_back(&lab_run, &log, &source);
}

/// What the lab's ConfigMap holds for the app now.
fn app_database_url(labdir: &std::path::Path) -> String {
    kubectl(
        labdir,
        &[
            "get",
            "configmap",
            "app-db",
            "-o",
            "jsonpath={.data.DATABASE_URL}",
        ],
    )
    .trim()
    .to_string()
}

/// The freeze as the migration story does it (`[freeze] method =
/// "read-only-role"`): Z switches the app's config to a read-only role on
/// the source and restarts it, then proves no session of the writing role
/// is left; nothing is taken on the server. The way back before the switch
/// puts the first value back; then the whole runbook, the switch starting
/// from the read-only value; the way back after it puts back the value from
/// before the freeze, not the read-only one.
#[test]
fn a_freeze_by_read_only_role_moves_the_clients_and_back() {
    let lab_run = LabRun::up("cutover-ro", "3000");
    let labdir = lab_run.config.parent().unwrap().to_path_buf();
    let source = dsn(&lab_run.config, "source");
    let target = dsn(&lab_run.config, "target");
    grant_app_what_the_restore_makes(&target, "postgres");
    // The read-only role on the source, as the story made it.
    psql(
        &source,
        "CREATE ROLE app_ro LOGIN; GRANT USAGE ON SCHEMA public TO app_ro; \
         GRANT SELECT ON ALL TABLES IN SCHEMA public TO app_ro",
    );
    let before = app_database_url(&labdir);
    assert!(before.contains("user=app"), "{before}");
    let read_only = before.replace("user=app", "user=app_ro");
    std::fs::write(labdir.join("source-read-only-url"), &read_only).unwrap();
    let config = std::fs::read_to_string(&lab_run.config)
        .unwrap()
        .replace(
            "app_roles = [\"app\"]\n",
            "app_roles = [\"app\"]\nmethod = \"read-only-role\"\nread_only_role = \"app_ro\"\n",
        )
        .replace(
            "switch_to_file = ",
            "read_only_to_file = \"source-read-only-url\"\nswitch_to_file = ",
        );
    assert!(config.contains("read_only_role") && config.contains("read_only_to_file"));
    std::fs::write(
        &lab_run.config,
        format!("{config}\n[runbook]\nvariant = \"dump-restore\"\n"),
    )
    .unwrap();
    app_has_written(&source);

    // Frozen by the clients' config: read-only, proven, nothing revoked.
    succeeded(&lab_run.script("F Z"));
    assert_eq!(app_database_url(&labdir), read_only);
    assert_eq!(app_may_insert(&source), "t", "nothing taken on the server");
    let log = newest_log(&lab_run.sessions);
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains(r#""step":"prove_read_only""#), "{text}");
    assert!(text.contains("writes frozen by read-only role"), "{text}");
    assert!(text.contains(r#""read_only_role":"app_ro""#), "{text}");
    let written = psql(&source, "SELECT count(*) FROM public.app_writes");
    std::thread::sleep(std::time::Duration::from_secs(2));
    assert_eq!(
        psql(&source, "SELECT count(*) FROM public.app_writes"),
        written,
        "the app writes nothing while frozen"
    );

    // The way back before the switch: the first value, the app writing again.
    succeeded(&resumed(&lab_run, &log, "B"));
    assert_eq!(app_database_url(&labdir), before);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while psql(&source, "SELECT count(*) FROM public.app_writes") == written {
        assert!(
            std::time::Instant::now() < deadline,
            "the app did not write again"
        );
        std::thread::sleep(std::time::Duration::from_millis(250));
    }

    // Switched to the target, not yet restarted (the app wrote nothing
    // there): the way back puts back the value from before the freeze, not
    // the read-only one the switch replaced.
    // (The switch waits until the target's statistics show the restore's
    // rows: counted after the switch, they would read as the app's writes
    // there, which a rollback would strand, and B would be refused.)
    succeeded(&lab_run.script("F Z Y C"));
    let log = newest_log(&lab_run.sessions);
    restore_counted(&target);
    succeeded(&resumed(&lab_run, &log, "S"));
    let switched = app_database_url(&labdir);
    assert!(switched.contains(&target_port(&target)), "{switched}");
    succeeded(&resumed(&lab_run, &log, "B"));
    assert_eq!(app_database_url(&labdir), before);

    // The whole runbook into an empty target again: everything copied in
    // the freeze, every acknowledged write there, the app on the target.
    psql(
        &target,
        "DO $$ DECLARE r record; BEGIN \
           FOR r IN SELECT tablename FROM pg_tables WHERE schemaname = 'public' LOOP \
             EXECUTE format('DROP TABLE public.%I CASCADE', r.tablename); END LOOP; \
           FOR r IN SELECT sequencename FROM pg_sequences WHERE schemaname = 'public' LOOP \
             EXECUTE format('DROP SEQUENCE public.%I', r.sequencename); END LOOP; END $$",
    );
    let out = lab_run.script("F Z Y C S R T");
    copied_and_nothing_lost(&out, &source, &target);
    assert!(app_database_url(&labdir).contains(&target_port(&target)));
    audit(&labdir);
}

/// Waits (at most 30 s) until the target's rows-inserted statistic stands
/// still for 1.5 s.
fn restore_counted(target: &str) {
    let inserted = || {
        psql(
            target,
            "SELECT coalesce(sum(n_tup_ins), 0) FROM pg_stat_user_tables",
        )
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let mut last = inserted();
    loop {
        std::thread::sleep(std::time::Duration::from_millis(1500));
        let now = inserted();
        if now == last {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the target's statistics kept moving"
        );
        last = now;
    }
}

/// `port=N` of a conninfo.
fn target_port(conninfo: &str) -> String {
    conninfo
        .split_whitespace()
        .find(|p| p.starts_with("port="))
        .unwrap()
        .to_string()
}
