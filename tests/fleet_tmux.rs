//! Several databases in one window, through the real binary in tmux: three
//! databases on the lab's source (the app's, `billing`, `inventory`)
//! consolidated into the target (`inventory` renamed `stock`), the
//! dump-restore runbook with the copy as a Job in the simulator, each
//! database used by its own workloads (a Deployment, and a batch writer
//! Job started again after the switch). With `a` every checkpoint opens for
//! all three in one confirmation (type `all`): freeze, copy, verify,
//! switch, rollout, the app on the target. Checked from outside: every
//! table's count and checksum equal, the sequences carried, every write
//! the app pods acknowledged on the target; one report over the three.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::tmux::{audit, dsn, kubectl, psql, LabRun, Tmux};
use serde_json::json;

/// The same server, another database.
fn on(conninfo: &str, db: &str) -> String {
    conninfo.replace("dbname=app", &format!("dbname={db}"))
}

fn apply(labdir: &Path, name: &str, manifest: serde_json::Value) {
    let file = labdir.join(format!("{name}.json"));
    std::fs::write(&file, manifest.to_string()).unwrap();
    kubectl(
        labdir,
        &["apply", "--validate=false", "-f", file.to_str().unwrap()],
    );
}

/// A database of the source with one table its writer inserts into, and
/// a sequence of its own; the app's role may write it.
fn seed(source: &str, db: &str, table: &str) {
    psql(source, &format!("CREATE ROLE {db}_app LOGIN"));
    psql(source, &format!("CREATE DATABASE {db}"));
    psql(
        &on(source, db),
        &format!(
            "CREATE TABLE public.{table} (id bigserial PRIMARY KEY, note text NOT NULL, \
               at timestamptz NOT NULL DEFAULT now()); \
             INSERT INTO public.{table} (note) SELECT 'seed ' || g FROM generate_series(1, 700) g; \
             CREATE SEQUENCE public.{table}_no; SELECT setval('public.{table}_no', 4242); \
             GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {db}_app; \
             GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA public TO {db}_app"
        ),
    );
}

/// The new instance's database, made beforehand; the app's role gets its
/// privileges on what the copy's role restores into it.
fn prepare_target(target: &str, db: Option<&str>, role: &str) {
    let conninfo = match db {
        Some(db) => {
            psql(target, &format!("CREATE ROLE {role} LOGIN"));
            psql(target, &format!("CREATE DATABASE {db}"));
            on(target, db)
        }
        None => target.to_string(),
    };
    let restorer = cutover::lab::COPY_ROLE;
    psql(
        &conninfo,
        &format!(
            "ALTER DEFAULT PRIVILEGES FOR ROLE {restorer} IN SCHEMA public \
               GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {role}; \
             ALTER DEFAULT PRIVILEGES FOR ROLE {restorer} IN SCHEMA public \
               GRANT USAGE, SELECT, UPDATE ON SEQUENCES TO {role}"
        ),
    );
}

/// A config map holding a database URL, a Deployment that reads it (its
/// pods simulated, as the lab's), and a batch writer: a Job whose pod
/// inserts a row through the URL every 300 ms (failing while frozen).
fn workload(labdir: &Path, name: &str, url: &str) {
    apply(
        labdir,
        &format!("{name}-db"),
        json!({"apiVersion": "v1", "kind": "ConfigMap",
               "metadata": {"name": format!("{name}-db")},
               "data": {"DATABASE_URL": url}}),
    );
    apply(
        labdir,
        &format!("{name}-api"),
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": format!("{name}-api")},
            "spec": {"replicas": 1,
                     "selector": {"matchLabels": {"app": format!("{name}-api")}},
                     "template": template(name, &format!("{name}-api"), &[])},
        }),
    );
}

/// A pod template reading `DATABASE_URL` from `<name>-db`.
fn template(name: &str, label: &str, command: &[&str]) -> serde_json::Value {
    json!({
        "metadata": {"labels": {"app": label}},
        "spec": {
            "restartPolicy": if command.is_empty() { "Always" } else { "Never" },
            "containers": [{
                "name": "main", "image": "example/app:1", "command": command,
                "env": [{"name": "DATABASE_URL", "valueFrom": {"configMapKeyRef":
                    {"name": format!("{name}-db"), "key": "DATABASE_URL"}}}],
            }],
        },
    })
}

/// The batch writer `<name>-writer-<n>`, inserting into `table` through
/// the URL its config map holds when it starts.
fn writer(labdir: &Path, name: &str, n: u32, table: &str) {
    let job = format!("{name}-writer-{n}");
    let script = format!(
        "while :; do psql \"$DATABASE_URL\" -Xqc \"INSERT INTO public.{table} (note) VALUES ('w')\" \
         >/dev/null 2>&1; sleep 0.3; done"
    );
    apply(
        labdir,
        &job,
        json!({
            "apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": job},
            "spec": {"backoffLimit": 0,
                     "template": template(name, &job, &["sh", "-c", &script])},
        }),
    );
}

/// `count(*)` and an order-independent checksum of a table's rows.
fn fingerprint(conninfo: &str, table: &str) -> String {
    psql(
        conninfo,
        &format!(
            "SELECT count(*) || ':' || coalesce(sum(hashtext(t::text)::bigint), 0) \
             FROM public.{table} t"
        ),
    )
}

fn tables(conninfo: &str) -> Vec<String> {
    psql(
        conninfo,
        "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1",
    )
    .lines()
    .map(str::to_string)
    .collect()
}

fn sequences(conninfo: &str) -> Vec<(String, i64)> {
    psql(
        conninfo,
        "SELECT sequencename || '=' || coalesce(last_value, 0) FROM pg_sequences ORDER BY 1",
    )
    .lines()
    .map(|l| {
        let (n, v) = l.split_once('=').unwrap();
        (n.to_string(), v.parse().unwrap())
    })
    .collect()
}

/// Lines of `log` that record a run's end, successful or not.
fn runs_ended(log: &Path) -> (usize, Vec<String>) {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let ended: Vec<&str> = text
        .lines()
        .filter(|l| l.contains(r#""type":"run_finished""#))
        .collect();
    let failed = ended
        .iter()
        .filter(|l| l.contains(r#""ok":false"#))
        .map(|l| l.to_string())
        .collect();
    (ended.len(), failed)
}

/// Opens checkpoint `key` for all databases, types `all`, and presses
/// Enter until every database has run it (a guard still settling holds
/// one back: Enter again), then waits for its end in every log.
fn run_for_all(console: &Tmux, logs: &[PathBuf], key: &str, nth: usize, timeout: Duration) {
    console.keys(key);
    console.wait_for(
        &format!("{key}'s confirmation for all"),
        Duration::from_secs(20),
        |s| s.contains("— all databases"),
    );
    console.keys("all");
    let start = Instant::now();
    let mut pressed = Instant::now() - Duration::from_secs(10);
    loop {
        let ended: Vec<(usize, Vec<String>)> = logs.iter().map(|l| runs_ended(l)).collect();
        for (log, (_, failed)) in logs.iter().zip(&ended) {
            assert!(
                failed.is_empty(),
                "{key} failed for {}: {failed:?}\n{}",
                log.display(),
                console.capture()
            );
        }
        if ended.iter().all(|(n, _)| *n >= nth) {
            return;
        }
        let screen = console.capture();
        if screen.contains("— all databases") && pressed.elapsed() > Duration::from_secs(3) {
            console.keys("Enter");
            pressed = Instant::now();
        }
        if start.elapsed() > timeout {
            let said: Vec<String> = logs
                .iter()
                .map(|l| {
                    let text = std::fs::read_to_string(l).unwrap_or_default();
                    let runs: Vec<&str> = text
                        .lines()
                        .filter(|l| l.contains(r#""type":"command""#) || l.contains("run_"))
                        .collect();
                    format!(
                        "{}:\n{}",
                        l.display(),
                        runs[runs.len().saturating_sub(12)..].join("\n")
                    )
                })
                .collect();
            panic!(
                "{key} did not end for every database in {timeout:?}\n{screen}\n{}",
                said.join("\n")
            );
        }
        std::thread::sleep(Duration::from_millis(300));
    }
}

#[test]
fn three_databases_consolidated_in_one_window_lose_nothing() {
    let lab_run = LabRun::up("cutover-fleet", "3000");
    let labdir = lab_run.dir();
    let source = dsn(&lab_run.config, "source");
    let target = dsn(&lab_run.config, "target");
    seed(&source, "billing", "invoices");
    seed(&source, "inventory", "items");
    prepare_target(&target, None, "app");
    prepare_target(&target, Some("billing"), "billing_app");
    prepare_target(&target, Some("stock"), "inventory_app");
    // Each database's clients connect as a role of its own.
    let app_url = |conninfo: &str, db: &str, role: &str| {
        on(conninfo, db).replace("user=postgres", &format!("user={role}"))
    };
    workload(
        &labdir,
        "billing",
        &app_url(&source, "billing", "billing_app"),
    );
    workload(
        &labdir,
        "inventory",
        &app_url(&source, "inventory", "inventory_app"),
    );
    writer(&labdir, "billing", 1, "invoices");
    writer(&labdir, "inventory", 1, "items");
    std::fs::write(
        labdir.join("billing-to.txt"),
        app_url(&target, "billing", "billing_app"),
    )
    .unwrap();
    std::fs::write(
        labdir.join("inventory-to.txt"),
        app_url(&target, "stock", "inventory_app"),
    )
    .unwrap();
    let config = std::fs::read_to_string(&lab_run.config).unwrap();
    std::fs::write(
        &lab_run.config,
        format!(
            "{config}\n[runbook]\nvariant = \"dump-restore\"\ncopy = \"job\"\n\n\
             [runbook.job]\nsecret = \"{secret}\"\nuser = \"{user}\"\nimage = \"postgres:18\"\n\n\
             [[databases]]\nname = \"app\"\n\n\
             [[databases]]\nname = \"billing\"\napp_roles = [\"billing_app\"]\ndeployments = [\"billing-api\"]\n\
             config_object = \"configmap/billing-db\"\nconfig_key = \"DATABASE_URL\"\n\
             switch_to_file = \"billing-to.txt\"\n\n\
             [[databases]]\nname = \"inventory\"\ntarget_dbname = \"stock\"\napp_roles = [\"inventory_app\"]\n\
             deployments = [\"inventory-api\"]\n\
             config_object = \"configmap/inventory-db\"\nconfig_key = \"DATABASE_URL\"\n\
             switch_to_file = \"inventory-to.txt\"\n",
            secret = cutover::lab::COPY_SECRET,
            user = cutover::lab::COPY_ROLE,
        ),
    )
    .unwrap();
    // The writers have written before the freeze: it must hold something back.
    let start = Instant::now();
    while ["app_writes"]
        .iter()
        .any(|t| psql(&source, &format!("SELECT count(*) FROM public.{t}")) == "0")
        || psql(
            &on(&source, "billing"),
            "SELECT count(*) > 700 FROM public.invoices",
        ) != "t"
    {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no writes in 60 s"
        );
        std::thread::sleep(Duration::from_millis(250));
    }

    let console = lab_run.console("fleet", 200, 50);
    console.wait_for("a line per database", Duration::from_secs(60), |s| {
        s.contains("3 databases") && s.contains("▶ app") && s.contains("  inventory")
    });
    let logs: Vec<PathBuf> = ["app", "billing", "inventory"]
        .iter()
        .map(|db| {
            std::fs::read_dir(&lab_run.sessions)
                .unwrap()
                .filter_map(|e| e.ok().map(|e| e.path()))
                .find(|p| {
                    p.file_name()
                        .is_some_and(|n| n.to_string_lossy().ends_with(&format!("-{db}.jsonl")))
                })
                .unwrap_or_else(|| panic!("no log for {db}"))
        })
        .collect();
    // `]` shows the next database's panes.
    console.keys("]");
    console.wait_for("billing selected", Duration::from_secs(10), |s| {
        s.contains("▶ billing")
    });
    console.keys("a");
    console.wait_for("all at once", Duration::from_secs(10), |s| {
        s.contains("checkpoints go to ALL of them")
    });
    let minute = Duration::from_secs(60);
    run_for_all(&console, &logs, "F", 1, minute);
    run_for_all(&console, &logs, "Z", 2, minute);
    let frozen = console.wait_for("every database frozen", Duration::from_secs(10), |s| {
        s.matches("FROZEN").count() >= 3
    });
    assert!(frozen.contains("▶ billing"), "{frozen}");
    run_for_all(&console, &logs, "Y", 3, Duration::from_secs(180));
    run_for_all(&console, &logs, "C", 4, Duration::from_secs(120));
    run_for_all(&console, &logs, "S", 5, minute);
    // The batch writers are started again by hand, as their owners would:
    // the new ones read the switched config.
    for (name, table) in [("billing", "invoices"), ("inventory", "items")] {
        kubectl(&labdir, &["delete", "job", &format!("{name}-writer-1")]);
        writer(&labdir, name, 2, table);
    }
    run_for_all(&console, &logs, "R", 6, Duration::from_secs(180));
    run_for_all(&console, &logs, "T", 7, Duration::from_secs(120));
    console.wait_for("every window closed", Duration::from_secs(20), |s| {
        s.matches("window ").count() >= 3
    });
    console.keys("q");
    let start = Instant::now();
    while !logs
        .iter()
        .all(|l| std::fs::read_to_string(l).is_ok_and(|t| t.contains(r#""type":"session_ended""#)))
    {
        assert!(start.elapsed() < minute, "the console did not end");
        std::thread::sleep(Duration::from_millis(200));
    }

    // Every table of every database as on its source, sequences with it.
    for (from, to) in [
        ("app", "app"),
        ("billing", "billing"),
        ("inventory", "stock"),
    ] {
        let (s, t) = (on(&source, from), on(&target, to));
        let names = tables(&s);
        assert_eq!(names, tables(&t), "{from} → {to}");
        for table in &names {
            let on_target = if ["app_writes", "invoices", "items"].contains(&table.as_str()) {
                // Written on the target since the switch: every source row
                // is there, as it was.
                let ids = psql(
                    &s,
                    &format!(
                        "SELECT coalesce(string_agg(quote_literal(id::text), ','), 'NULL') \
                         FROM public.{table}"
                    ),
                );
                psql(
                    &t,
                    &format!(
                        "SELECT count(*) || ':' || coalesce(sum(hashtext(t::text)::bigint), 0) \
                         FROM public.{table} t WHERE id::text IN ({ids})"
                    ),
                )
            } else {
                fingerprint(&t, table)
            };
            assert_eq!(fingerprint(&s, table), on_target, "{from}.{table}");
        }
        let (ss, ts) = (sequences(&s), sequences(&t));
        assert_eq!(ss.len(), ts.len(), "{from}: {ss:?} {ts:?}");
        for ((name, sv), (tname, tv)) in ss.iter().zip(&ts) {
            assert_eq!(name, tname);
            // The writers moved on on the target since.
            assert!(tv >= sv, "{from}.{name}: {sv} → {tv}");
        }
        if from != "app" {
            let no = psql(
                &t,
                &format!("SELECT last_value FROM public.{}_no", names[0]),
            );
            assert_eq!(no, "4242", "{from}");
        }
    }
    // The writers now write to the target, and the app's every
    // acknowledged write is there.
    audit(&labdir);
    for db in ["billing", "stock"] {
        let table = if db == "billing" { "invoices" } else { "items" };
        let rows = psql(
            &on(&target, db),
            &format!("SELECT count(*) FROM public.{table}"),
        );
        let copied = psql(
            &on(&source, if db == "stock" { "inventory" } else { db }),
            &format!("SELECT count(*) FROM public.{table}"),
        );
        assert!(
            rows.parse::<i64>().unwrap() > copied.parse::<i64>().unwrap(),
            "{db}"
        );
    }
    // One report over the three, written as the console ends.
    // (Written as the console ends, after the logs' last lines.)
    let start = Instant::now();
    let report = loop {
        match std::fs::read_to_string(labdir.join("migration-report.txt")) {
            Ok(r) => break r,
            Err(e) => {
                let files: Vec<_> = std::fs::read_dir(&labdir)
                    .unwrap()
                    .flatten()
                    .map(|e| e.file_name())
                    .collect();
                assert!(start.elapsed() < minute, "{e}: {files:?}");
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    };
    assert!(
        report.starts_with("Cutover report — 3 databases — COMPLETED"),
        "{report}"
    );
    for db in ["app", "billing", "inventory"] {
        assert!(report.contains(&format!("Database {db}")), "{report}");
    }
    // Each log says which database it is, and that one confirmation ran it.
    let billing = std::fs::read_to_string(&logs[1]).unwrap();
    assert!(billing.contains(r#""database":"billing""#));
    assert!(
        billing.contains(r#""fleet":["app","billing","inventory"]"#),
        "{billing}"
    );
}
