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

use common::tmux::{audit, dsn, kubectl, psql, AwaitedConfig, LabRun, Tmux};
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

/// Each database's clients connect as a role of its own.
fn app_url(conninfo: &str, db: &str, role: &str) -> String {
    on(conninfo, db).replace("user=postgres", &format!("user={role}"))
}

/// The lab with three databases on its source, their targets made, each
/// used by its workloads, the writers writing; the config names the three
/// (`kube_extra` added to its `[kubernetes]`).
struct Three {
    lab_run: LabRun,
    labdir: PathBuf,
    source: String,
    target: String,
}

impl Three {
    fn up(prefix: &str, kube_extra: &str) -> Three {
        let lab_run = LabRun::up(prefix, "3000");
        let labdir = lab_run.dir();
        let source = dsn(&lab_run.config, "source");
        let target = dsn(&lab_run.config, "target");
        seed(&source, "billing", "invoices");
        seed(&source, "inventory", "items");
        prepare_target(&target, None, "app");
        prepare_target(&target, Some("billing"), "billing_app");
        prepare_target(&target, Some("stock"), "inventory_app");
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
        let to = |db: &str, role: &str| app_url(&target, db, role);
        std::fs::write(labdir.join("billing-to.txt"), to("billing", "billing_app")).unwrap();
        std::fs::write(
            labdir.join("inventory-to.txt"),
            to("stock", "inventory_app"),
        )
        .unwrap();
        let config = std::fs::read_to_string(&lab_run.config)
            .unwrap()
            .replace("[kubernetes]\n", &format!("[kubernetes]\n{kube_extra}"));
        std::fs::write(
            &lab_run.config,
            format!(
                "{config}\n[runbook]\nvariant = \"dump-restore\"\ncopy = \"job\"\n\n\
                 [runbook.job]\nsecret = \"{secret}\"\nuser = \"{user}\"\nimage = \"postgres:18\"\n\n\
                 [[databases]]\nname = \"app\"\n\n\
                 [[databases]]\nname = \"billing\"\napp_roles = [\"billing_app\"]\n\
                 deployments = [\"billing-api\"]\n\
                 config_object = \"configmap/billing-db\"\nconfig_key = \"DATABASE_URL\"\n\
                 switch_to_file = \"billing-to.txt\"\n\n\
                 [[databases]]\nname = \"inventory\"\ntarget_dbname = \"stock\"\n\
                 app_roles = [\"inventory_app\"]\ndeployments = [\"inventory-api\"]\n\
                 config_object = \"configmap/inventory-db\"\nconfig_key = \"DATABASE_URL\"\n\
                 switch_to_file = \"inventory-to.txt\"\n",
                secret = cutover::lab::COPY_SECRET,
                user = cutover::lab::COPY_ROLE,
            ),
        )
        .unwrap();
        // The writers have written before the freeze: it must hold something back.
        let start = Instant::now();
        while psql(&source, "SELECT count(*) FROM public.app_writes") == "0"
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
        Three {
            lab_run,
            labdir,
            source,
            target,
        }
    }

    /// The session's logs, one per database, once they exist.
    fn logs(&self) -> Vec<PathBuf> {
        let start = Instant::now();
        loop {
            let found: Vec<PathBuf> = ["app", "billing", "inventory"]
                .iter()
                .filter_map(|db| {
                    std::fs::read_dir(&self.lab_run.sessions)
                        .ok()?
                        .filter_map(|e| e.ok().map(|e| e.path()))
                        .find(|p| {
                            p.file_name().is_some_and(|n| {
                                n.to_string_lossy().ends_with(&format!("-{db}.jsonl"))
                            })
                        })
                })
                .collect();
            if found.len() == 3 {
                return found;
            }
            assert!(start.elapsed() < Duration::from_secs(30), "{found:?}");
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The batch writers started again, as their owners would after the
    /// switch: the new ones read the switched config.
    fn restart_writers(&self) {
        for (name, table) in [("billing", "invoices"), ("inventory", "items")] {
            kubectl(
                &self.labdir,
                &["delete", "job", &format!("{name}-writer-1")],
            );
            writer(&self.labdir, name, 2, table);
        }
    }

    /// Every table of every database as on its source, the sequences with
    /// it, every write the app acknowledged on the target, the writers
    /// writing there; one report over the three.
    fn copied_and_nothing_lost(&self) {
        let (source, target) = (&self.source, &self.target);
        for (from, to) in [
            ("app", "app"),
            ("billing", "billing"),
            ("inventory", "stock"),
        ] {
            let (s, t) = (on(source, from), on(target, to));
            let names = tables(&s);
            assert_eq!(names, tables(&t), "{from} → {to}");
            for table in &names {
                let on_target = if ["app_writes", "invoices", "items"].contains(&table.as_str()) {
                    // Written on the target since the switch: every source
                    // row is there, as it was.
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
                let table = &names[0];
                let count = |c: &str| -> i64 {
                    psql(c, &format!("SELECT count(*) FROM public.{table}"))
                        .parse()
                        .unwrap()
                };
                assert!(count(&t) > count(&s), "{to}: its writer writes there");
            }
        }
        audit(&self.labdir);
        // Written as the console ends, after the logs' last lines.
        let start = Instant::now();
        let report = loop {
            match std::fs::read_to_string(self.labdir.join("migration-report.txt")) {
                Ok(r) => break r,
                Err(e) => {
                    assert!(start.elapsed() < Duration::from_secs(60), "{e}");
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
    }
}

/// Waits until every log ends (the console quit).
fn ended(logs: &[PathBuf]) {
    let start = Instant::now();
    while !logs
        .iter()
        .all(|l| std::fs::read_to_string(l).is_ok_and(|t| t.contains(r#""type":"session_ended""#)))
    {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the console did not end"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn three_databases_consolidated_in_one_window_lose_nothing() {
    let three = Three::up("cutover-fleet", "");
    let console = three.lab_run.console("fleet", 200, 50);
    console.wait_for("a line per database", Duration::from_secs(60), |s| {
        s.contains("3 databases") && s.contains("▶ app") && s.contains("  inventory")
    });
    let logs = three.logs();
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
    three.restart_writers();
    run_for_all(&console, &logs, "R", 6, Duration::from_secs(180));
    run_for_all(&console, &logs, "T", 7, Duration::from_secs(120));
    console.wait_for("every window closed", Duration::from_secs(20), |s| {
        s.matches("✔ final check equal").count() >= 3 && s.matches("window ").count() >= 3
    });
    console.keys("q");
    ended(&logs);
    three.copied_and_nothing_lost();
    // Each log says which database it is, and that one confirmation ran it.
    let billing = std::fs::read_to_string(&logs[1]).unwrap();
    assert!(billing.contains(r#""database":"billing""#));
    assert!(
        billing.contains(r#""fleet":["app","billing","inventory"]"#),
        "{billing}"
    );
}

/// The same migration where changes reach the cluster only through merged
/// pull requests: every database's switch waits; a few seconds later the
/// test plays the GitOps controller with one `kubectl apply` of the three
/// config maps and the Deployments their checksum annotations roll; each
/// database's console notices its change within 2 s and follows the
/// rollout to the end.
#[test]
fn under_gitops_three_databases_wait_for_their_applied_changes() {
    let three = Three::up("cutover-fleet-gitops", "changes = \"gitops\"\n");
    let labdir = &three.labdir;
    let mut child = three
        .lab_run
        .script_command("F Z Y C S R T")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let logs = three.logs();
    let deadline = Instant::now() + Duration::from_secs(300);
    while !logs
        .iter()
        .all(|l| std::fs::read_to_string(l).is_ok_and(|t| t.contains(r#""step":"await_config""#)))
    {
        assert!(Instant::now() < deadline, "the switches never waited");
        assert!(
            child.try_wait().unwrap().is_none(),
            "the script ended early"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_secs(3));
    // The controller applies the merged change: each config map's new
    // value, and a checksum of it on the pod template that uses it.
    let app_value = std::fs::read_to_string(labdir.join("target-database-url")).unwrap();
    let changes = [
        ("app-db", "app", app_value.trim_end().to_string()),
        (
            "billing-db",
            "billing-api",
            app_url(&three.target, "billing", "billing_app"),
        ),
        (
            "inventory-db",
            "inventory-api",
            app_url(&three.target, "stock", "inventory_app"),
        ),
    ];
    let mut items = Vec::new();
    for (cm, deployment, value) in &changes {
        let mut deploy: serde_json::Value = serde_json::from_str(&kubectl(
            labdir,
            &["get", "deployment", deployment, "-o", "json"],
        ))
        .unwrap();
        let ns = deploy["metadata"]["namespace"].clone();
        deploy["metadata"] = json!({"name": deployment, "namespace": ns});
        deploy.as_object_mut().unwrap().remove("status");
        deploy["spec"]["template"]["metadata"]["annotations"]["checksum/config"] =
            json!(cutover::kube::fingerprint(value));
        items.push(json!({"apiVersion": "v1", "kind": "ConfigMap",
                          "metadata": {"name": cm, "namespace": ns},
                          "data": {"DATABASE_URL": value}}));
        items.push(deploy);
    }
    apply(
        labdir,
        "gitops-change",
        json!({"apiVersion": "v1", "kind": "List", "items": items}),
    );
    let applied = chrono::Utc::now();
    three.restart_writers();
    let out = loop {
        if child.try_wait().unwrap().is_some() {
            break child.wait_with_output().unwrap();
        }
        if Instant::now() > deadline + Duration::from_secs(300) {
            child.kill().unwrap();
            panic!("the script did not finish");
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for (log, (_, deployment, _)) in logs.iter().zip(&changes) {
        let waited = AwaitedConfig::read(log);
        let text = &waited.text;
        let late = waited.late_ms(applied);
        assert!(
            late <= 2_000,
            "{}: seen {late} ms after the apply",
            log.display()
        );
        assert!(
            text.contains(&format!("rollout of {deployment} complete")),
            "{text}"
        );
        assert!(!text.contains(r#""step":"patch_config""#), "{text}");
    }
    three.copied_and_nothing_lost();
}
