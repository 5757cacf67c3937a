//! The whole default runbook through the real binary in tmux, on the lab
//! (source 15 → target 18 where the lab has both) with the app pods writing:
//! every checkpoint by its key, confirmed as a user would, no override —
//! reverse replication on — then the rollback after the switch. Checked from
//! outside: counts and checksums equal in the window, every write the app
//! acknowledged in the database it points at (after the cutover, and again
//! after the rollback), the target's sequences past the source's, no
//! subscription left on the target, and the lab measured the window.

use std::process::Command;
use std::time::Duration;

mod common;

use common::tmux::{
    audit, dsn, free_port, kubectl, lab, metric, psql, scrape, AwaitedConfig, LabRun, Tmux,
};

/// Enter in an open dialog, until it closes: a guard that flickers at the
/// moment of the key (a sample a moment late) leaves it open, and Enter
/// runs a plan only from an open dialog, so pressing it again is safe.
fn submit(t: &Tmux) {
    for _ in 0..5 {
        t.keys("Enter");
        let start = std::time::Instant::now();
        while start.elapsed() < Duration::from_secs(3) {
            if !t.capture().contains("Will run:") {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    panic!("the dialog stayed open:\n{}", t.capture());
}

/// In the write freeze at lag 0: the war-room view and a scrape of
/// `--metrics` say the same phase, next checkpoint, lag and freeze timer.
fn war_room_and_metrics_agree(t: &Tmux, port: u16) {
    t.keys("w");
    let screen = t.wait_for("the war room", Duration::from_secs(10), |s| {
        s.contains("PHASE") && s.contains("WRITE FREEZE")
    });
    let text = scrape(port);
    let value = |series: &str| -> f64 {
        let line = metric(&text, series).unwrap_or_else(|| panic!("no {series} in\n{text}"));
        line.rsplit(' ').next().unwrap().parse().unwrap()
    };
    // The phase in the top line, as the metric's label.
    let phase = metric(&text, "cutover_phase{").unwrap();
    let name = phase.split('"').nth(1).unwrap();
    assert!(
        screen.contains(&format!("PHASE {name}")),
        "{phase}\n{screen}"
    );
    assert_eq!(name, "CUTOVER", "{screen}");
    // The next checkpoint: its key and title on the NEXT line.
    let next = metric(&text, "cutover_checkpoint{").unwrap();
    let labels: Vec<&str> = next.split('"').collect();
    let (key, title, state) = (labels[1], labels[3], labels[5]);
    assert_eq!((key, state), ("A", "next"), "{next}");
    let next_line = screen.lines().find(|l| l.contains("NEXT")).unwrap();
    assert!(
        next_line.contains(&format!("{key} {title}")),
        "{next}\n{next_line}"
    );
    // Lag 0 on the screen and in the metric.
    assert_eq!(value("cutover_replication_lag_bytes "), 0.0, "{text}");
    // The freeze: open, and its timer within the second the screen waits
    // to redraw a tick.
    assert_eq!(value("cutover_writes_frozen "), 1.0);
    let secs = value("cutover_freeze_window_seconds ");
    let caption = screen
        .lines()
        .find(|l| l.contains("budget") && l.contains("left"))
        .unwrap_or_else(|| panic!("no freeze caption in\n{screen}"));
    let budget = value("cutover_freeze_budget_seconds ");
    let mmss = |s: f64| format!("{}:{:02}", s as u64 / 60, s as u64 % 60);
    assert!(
        caption.contains(&format!("of {} budget", mmss(budget))),
        "{caption}"
    );
    let left = caption.split("budget · ").nth(1).unwrap();
    let left = left.split(" left").next().unwrap();
    let (m, s) = left
        .trim()
        .split_once(':')
        .unwrap_or_else(|| panic!("{caption}"));
    let shown =
        budget - (m.trim().parse::<f64>().unwrap() * 60.0 + s.trim().parse::<f64>().unwrap());
    assert!(
        (secs - shown).abs() <= 2.0,
        "metric {secs} s, screen {shown} s: {caption}"
    );
    t.keys("w");
    t.wait_for("the panes again", Duration::from_secs(10), |s| {
        s.contains("Replication lag")
    });
}

#[test]
fn the_default_runbook_from_its_keys_loses_no_acknowledged_write() {
    let lab_run = LabRun::up("cutover-e2e", "2000");
    let labdir = lab_run.config.parent().unwrap().to_path_buf();
    let source = dsn(&lab_run.config, "source");
    let target = dsn(&lab_run.config, "target");
    // The lab's one defect the preflight names: a table without a key.
    psql(&source, "ALTER TABLE public.events REPLICA IDENTITY FULL");

    let port = free_port();
    let t = lab_run.console_with("e2e", 200, 50, &format!("--metrics 127.0.0.1:{port}"));
    t.wait_for("both sides and the pods", Duration::from_secs(60), |s| {
        s.matches("● up").count() >= 2 && s.contains("✔ rollout complete")
    });
    // Opens the checkpoint, types what it asks for, runs it, waits for it.
    let run = |key: &str, title: &str, typed: Option<&str>, done: &str, secs: u64| {
        t.keys(key);
        t.wait_for(
            &format!("the {title} dialog"),
            Duration::from_secs(30),
            |s| s.contains(title) && s.contains("Will run:") && !s.contains("✖ a guard fails"),
        );
        if let Some(name) = typed {
            t.keys(name);
        }
        submit(&t);
        t.wait_for(&format!("{title} done"), Duration::from_secs(secs), |s| {
            s.contains(&format!("{title} · ✔ done")) && s.contains(done)
        })
    };
    // The first preflight fails (no schema on the target yet); it still
    // records that the granted roles exist there, which D needs.
    t.keys("F");
    t.wait_for("the preflight dialog", Duration::from_secs(30), |s| {
        s.contains("Preflight checks") && s.contains("Enter: run it now")
    });
    submit(&t);
    t.wait_for("the preflight's findings", Duration::from_secs(60), |s| {
        s.contains("Preflight checks · ✖ failed") || s.contains("Preflight checks · ✔ done")
    });
    run("D", "Copy schema to target", None, "schema copied", 120);
    run("P", "Create publication", None, "CREATE PUBLICATION", 60);
    run("U", "Create subscription", None, "created subscription", 60);
    run("W", "Wait for initial sync", None, "all 7 tables", 300);
    run(
        "V",
        "Verify while live",
        None,
        "every table verified once",
        300,
    );
    let frozen = run(
        "Z",
        "Freeze writes on source",
        Some("freeze"),
        "writes frozen for app",
        60,
    );
    assert!(frozen.contains("❄ FROZEN"), "{frozen}");
    run(
        "C",
        "Lag 0, exact counts, final checksums",
        None,
        "tables equal",
        120,
    );
    war_room_and_metrics_agree(&t, port);
    // From outside, in the window: every table's count and an
    // order-independent checksum equal on both sides.
    let tables = psql(
        &source,
        "SELECT string_agg(format('%I.%I', schemaname, tablename), ' ' ORDER BY 1) \
         FROM pg_tables WHERE schemaname = 'public'",
    );
    for table in tables.split_whitespace() {
        let sum = format!(
            "SELECT count(*) || ' ' || coalesce(sum(hashtext(t::text)::int8), 0) FROM {table} t"
        );
        assert_eq!(psql(&source, &sum), psql(&target, &sum), "{table}");
    }
    run("A", "Advance sequences on target", None, "sequences", 60);
    run(
        "E",
        "Reverse replication target → source",
        None,
        "✔ E Reverse replication",
        60,
    );
    run("S", "Switch database config", Some("app-db"), "patched", 60);
    run(
        "R",
        "Rollout-restart workloads",
        Some("app"),
        "rollout of app complete",
        120,
    );
    let on_target = run(
        "T",
        "App writes to the target",
        None,
        "the app writes to the target only",
        60,
    );
    assert!(on_target.contains("✔ window ≤"), "{on_target}");
    run(
        "X",
        "Drop the subscription",
        Some("cutover_sub"),
        "✔ X Drop the subscription",
        60,
    );
    assert_eq!(psql(&target, "SELECT count(*) FROM pg_subscription"), "0");

    // From outside: nothing the app was told was written is missing.
    let audit = || audit(&labdir);
    audit();
    // The target's sequences are at or past the source's.
    let seqs = |c: &str| {
        psql(c, "SELECT string_agg(sequencename || '=' || coalesce(last_value, 0), ' ' ORDER BY sequencename) FROM pg_sequences WHERE schemaname = 'public'")
    };
    let (src_seqs, tgt_seqs) = (seqs(&source), seqs(&target));
    for (s, t) in src_seqs.split(' ').zip(tgt_seqs.split(' ')) {
        let v = |x: &str| x.split('=').nth(1).unwrap().parse::<i64>().unwrap();
        assert!(v(t) >= v(s), "{s} on the source, {t} on the target");
    }
    // The app is on the target: no session of it on the source, whose
    // only writes now come from reverse replication.
    let app_sessions = |c: &str| {
        psql(
            c,
            "SELECT count(*) FROM pg_stat_activity WHERE usename = 'app'",
        )
    };
    assert_eq!(app_sessions(&source), "0");
    let rows = |c: &str| -> i64 {
        psql(c, "SELECT count(*) FROM public.app_writes")
            .parse()
            .unwrap()
    };
    let (before, target_rows) = (rows(&source), rows(&target));
    t.wait_for("reverse replication", Duration::from_secs(30), |_| {
        rows(&source) >= target_rows
    });
    assert!(
        rows(&source) > before,
        "reverse replication delivers nothing"
    );
    // The lab measured the window and the failed writes.
    let status = lab(&["status", "--dir", labdir.to_str().unwrap()]);
    assert!(
        status.contains("last ack on source → first ack on target"),
        "{status}"
    );

    // Rollback after the switch, reverse replication on: the target
    // frozen, everything it had delivered, the app back on the source.
    run(
        "B",
        "Switch back and restart",
        Some("app-db"),
        "✔ B Switch back and restart",
        180,
    );
    let back = rows(&source);
    t.wait_for(
        "the app writing to the source",
        Duration::from_secs(30),
        |_| rows(&source) > back,
    );
    assert_ne!(app_sessions(&source), "0");
    // Every write the app acknowledged, on either side, is on the source.
    audit();
    // Nothing runs any more (the final check stopped the live
    // verification): q quits at once.
    t.keys("q");
    let screen = t.wait_for("exit", Duration::from_secs(20), |s| s.contains("EXITED:"));
    assert!(screen.contains("EXITED:0"), "{screen}");
}

/// The bad cases of the window, on the lab: the Kubernetes patch denied
/// after the freeze (the switch changes nothing, says so, and the freeze
/// stays on screen), then the freeze budget running out with
/// `on_budget_exceeded = "rollback"`: the rollback starts by itself, its run
/// and the log say why, and the source takes the app's writes again.
#[test]
fn a_denied_switch_keeps_the_freeze_and_the_budget_rolls_back_by_itself() {
    let lab_run = LabRun::up("cutover-budget", "2000");
    let labdir = lab_run.config.parent().unwrap().to_path_buf();
    let source = dsn(&lab_run.config, "source");
    psql(&source, "ALTER TABLE public.events REPLICA IDENTITY FULL");
    let text = std::fs::read_to_string(&lab_run.config).unwrap();
    let budgeted = text.replacen(
        "[freeze]\n",
        "[freeze]\nbudget_secs = 25\non_budget_exceeded = \"rollback\"\n",
        1,
    );
    assert_ne!(text, budgeted, "the lab's config has a [freeze] section");
    std::fs::write(&lab_run.config, budgeted).unwrap();
    // Relative to the config's directory.
    let kubeconfig = {
        let value: toml::Value = text.parse().unwrap();
        labdir.join(value["kubernetes"]["kubeconfig"].as_str().unwrap())
    };

    let t = lab_run.console("budget", 200, 50);
    t.wait_for("both sides and the pods", Duration::from_secs(60), |s| {
        s.matches("● up").count() >= 2 && s.contains("✔ rollout complete")
    });
    let open = |key: &str, title: &str, guards_pass: bool| {
        t.keys(key);
        t.wait_for(
            &format!("the {title} dialog"),
            Duration::from_secs(30),
            |s| {
                s.contains(title)
                    && s.contains("Will run:")
                    && (!guards_pass || !s.contains("✖ a guard fails"))
            },
        )
    };
    let run = |key: &str, title: &str, typed: Option<&str>, done: &str, secs: u64| {
        open(key, title, true);
        if let Some(name) = typed {
            t.keys(name);
        }
        submit(&t);
        t.wait_for(&format!("{title} done"), Duration::from_secs(secs), |s| {
            s.contains(done)
        })
    };
    t.keys("F");
    t.wait_for("the preflight dialog", Duration::from_secs(30), |s| {
        s.contains("Enter: run it now")
    });
    submit(&t);
    t.wait_for("the preflight's findings", Duration::from_secs(60), |s| {
        s.contains("Preflight checks · ✖ failed") || s.contains("Preflight checks · ✔ done")
    });
    run("D", "Copy schema to target", None, "✔ D Copy schema", 120);
    run(
        "P",
        "Create publication",
        None,
        "✔ P Create publication",
        60,
    );
    run(
        "U",
        "Create subscription",
        None,
        "✔ U Create subscription",
        60,
    );
    run(
        "W",
        "Wait for initial sync",
        None,
        "✔ W Wait for initial sync",
        300,
    );
    run("V", "Verify while live", None, "✔ V Verify while live", 300);
    run(
        "Z",
        "Freeze writes on source",
        Some("freeze"),
        "✔ Z Freeze writes",
        60,
    );
    run(
        "C",
        "Lag 0, exact counts, final checksums",
        None,
        "✔ C Lag 0",
        120,
    );
    run(
        "A",
        "Advance sequences on target",
        None,
        "✔ A Advance sequences",
        60,
    );

    // The API server now refuses the patch: the dialog says so; going on
    // anyway (an override with a reason) changes nothing, and says that.
    let deny = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .args(["replace", "--raw"])
        .args(["/lab/v1/deny/patch/configmaps", "-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(b"{}")?;
            c.wait_with_output()
        })
        .expect("kubectl");
    assert!(deny.status.success(), "{deny:?}");
    open("S", "Switch database config", false);
    t.wait_for(
        "the denied patch in the dialog",
        Duration::from_secs(20),
        |s| s.contains("not allowed: patch configmaps"),
    );
    t.keys("app-db");
    t.keys("Tab");
    t.keys("rehearsal: the API refuses the patch");
    submit(&t);
    let failed = t.wait_for("the switch refused", Duration::from_secs(30), |s| {
        s.contains("Switch database config · ✖ failed")
    });
    assert!(failed.contains("nothing was changed"), "{failed}");
    assert!(failed.contains("❄ FROZEN"), "{failed}");

    // Past the budget the rollback runs by itself and says why.
    let back = t.wait_for("the budget's rollback", Duration::from_secs(60), |s| {
        s.contains("Switch back and restart · ✔ done")
    });
    assert!(back.contains("started by the console"), "{back}");
    assert!(!back.contains("❄ FROZEN"), "{back}");
    let rows = || -> i64 {
        psql(&source, "SELECT count(*) FROM public.app_writes")
            .parse()
            .unwrap()
    };
    let before = rows();
    t.wait_for(
        "the app writing to the source again",
        Duration::from_secs(30),
        |_| rows() > before,
    );
    t.keys("q");
    let screen = t.wait_for("exit", Duration::from_secs(20), |s| s.contains("EXITED:"));
    assert!(screen.contains("EXITED:0"), "{screen}");
    // The log says why the rollback ran.
    let log = std::fs::read_dir(&lab_run.sessions)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .unwrap();
    let log = std::fs::read_to_string(log).unwrap();
    assert!(
        log.contains(r#""type":"budget_exceeded","budget_secs":25,"action":"rollback""#),
        "no budget_exceeded in the log"
    );
}

/// `--script`, for rehearsals and benchmarks: the whole runbook without a
/// terminal, each checkpoint once its guards pass, logged like keyed
/// commands; nothing the app acknowledged is lost. A key that is not a
/// checkpoint's is refused before anything runs.
#[test]
fn the_script_runs_the_runbook_without_a_terminal() {
    let lab_run = LabRun::up("cutover-script", "2000");
    let labdir = lab_run.config.parent().unwrap().to_path_buf();
    psql(
        &dsn(&lab_run.config, "source"),
        "ALTER TABLE public.events REPLICA IDENTITY FULL",
    );
    // Distinctive secrets where a real config keeps them: a password in
    // the source's DSN, a password file for the target, and a password in
    // the value the switch writes into the app's config object. (The lab
    // trusts loopback: the servers ignore them; cutover must too.)
    let pgpass = labdir.join("pgpass");
    std::fs::write(&pgpass, "*:*:*:*:planted-pgpass-8b2d\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&pgpass, std::fs::Permissions::from_mode(0o600)).unwrap();
    let config = std::fs::read_to_string(&lab_run.config).unwrap();
    let mut dsns = 0;
    let config: String = config
        .lines()
        .map(|l| {
            if !l.starts_with("dsn = ") {
                return format!("{l}\n");
            }
            dsns += 1;
            let extra = if dsns == 1 {
                " password=planted-dsn-5e1c".to_string()
            } else {
                format!(" passfile={}", pgpass.display())
            };
            format!("{}{extra}\"\n", l.trim_end_matches('"'))
        })
        .collect();
    std::fs::write(&lab_run.config, config).unwrap();
    let switch_to = labdir.join("target-database-url");
    let value = std::fs::read_to_string(&switch_to).unwrap();
    std::fs::write(
        &switch_to,
        format!("{} password=planted-switch-3f7a", value.trim()),
    )
    .unwrap();
    let script = |keys: &str| lab_run.script(keys);
    let bad = script("F q");
    assert_eq!(bad.status.code(), Some(2));
    let said = String::from_utf8_lossy(&bad.stderr);
    assert!(
        said.contains("--script: \"q\" is not a checkpoint's key"),
        "{said}"
    );

    let out = script("F? D P U W V Z C A E S R T X");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let target = dsn(&lab_run.config, "target");
    assert_eq!(psql(&target, "SELECT count(*) FROM pg_subscription"), "0");
    audit(&labdir);
    // Owner-only: the log, the trace beside it, and the folder made for them.
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&lab_run.sessions), 0o700);
    assert_eq!(mode(&lab_run.sessions.join("cutover-trace.log")), 0o600);
    // The log holds the commands, as keyed ones would be.
    let log = std::fs::read_dir(&lab_run.sessions)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .unwrap();
    assert_eq!(mode(&log), 0o600);
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains(r#""command":"confirm","checkpoint":"drop_subscription""#));
    // The last checkpoint wrote the migration report where the lab's config says.
    let report = std::fs::read_to_string(labdir.join("migration-report.txt")).unwrap();
    assert!(report.contains("COMPLETED"), "{report}");
    assert!(report.contains("Freeze writes on source"), "{report}");
    // No planted secret anywhere cutover writes: the log, the trace, the
    // report in every format, what it printed.
    let mut written = vec![
        ("the session log".to_string(), text),
        ("the report".to_string(), report),
        (
            "the trace".to_string(),
            std::fs::read_to_string(lab_run.sessions.join("cutover-trace.log")).unwrap(),
        ),
        (
            "the script's output".to_string(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        ),
    ];
    for format in ["text", "md", "html"] {
        let r = Command::new(common::tmux::BIN)
            .args(["report", "-f", format])
            .arg(&log)
            .output()
            .unwrap();
        assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
        written.push((
            format!("the {format} report"),
            String::from_utf8_lossy(&r.stdout).into_owned(),
        ));
    }
    for (what, text) in &written {
        assert!(!text.contains("planted-"), "a planted secret in {what}");
    }
    // The value the rollback restores is kept beside the log, owner-only.
    let kept = log.with_extension("jsonl.rollback");
    assert_eq!(mode(&kept), 0o600);
}

/// GitOps (`changes = "gitops"`): the console writes nothing to the
/// cluster. The script drives the whole runbook; a few seconds after the
/// switch starts waiting, the test plays the GitOps controller with
/// `kubectl apply` (the ConfigMap's new value and a checksum annotation on
/// the pod template, as a Helm chart or a kustomize generator makes it).
/// The console sees the change within 2 s, says who applied it, follows
/// the rollout, and every write the app acknowledged is on the target.
#[test]
fn under_gitops_the_switch_waits_for_the_applied_change_and_its_rollout() {
    let lab_run = LabRun::up("cutover-gitops", "2000");
    let labdir = lab_run.config.parent().unwrap().to_path_buf();
    psql(
        &dsn(&lab_run.config, "source"),
        "ALTER TABLE public.events REPLICA IDENTITY FULL",
    );
    let config = std::fs::read_to_string(&lab_run.config).unwrap();
    assert!(config.contains("[kubernetes]\n"));
    let config = config.replace("[kubernetes]\n", "[kubernetes]\nchanges = \"gitops\"\n");
    std::fs::write(&lab_run.config, config).unwrap();
    let url = |labdir: &std::path::Path| {
        kubectl(
            labdir,
            &["get", "cm", "app-db", "-o", "jsonpath={.data.DATABASE_URL}"],
        )
    };
    let before = url(&labdir);

    let mut child = lab_run
        .script_command("F? D P U W V Z C A E S R T X")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(300);
    let log = loop {
        assert!(
            std::time::Instant::now() < deadline,
            "the switch never started waiting"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "the script ended early"
        );
        // (The folder is made when the session starts.)
        let log = std::fs::read_dir(&lab_run.sessions)
            .into_iter()
            .flatten()
            .filter_map(|e| e.ok().map(|e| e.path()))
            .find(|p| p.extension().is_some_and(|x| x == "jsonl"));
        if let Some(log) = log {
            if std::fs::read_to_string(&log)
                .unwrap()
                .contains(r#""step":"await_config""#)
            {
                break log;
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(url(&labdir), before, "the console patched nothing");

    // The controller applies the merged change.
    let value = std::fs::read_to_string(labdir.join("target-database-url")).unwrap();
    let value = value.trim_end_matches(['\n', '\r']);
    let mut deploy: serde_json::Value = serde_json::from_str(&kubectl(
        &labdir,
        &["get", "deployment", "app", "-o", "json"],
    ))
    .unwrap();
    let ns = deploy["metadata"]["namespace"].clone();
    deploy["metadata"] = serde_json::json!({"name": "app", "namespace": ns});
    deploy.as_object_mut().unwrap().remove("status");
    deploy["spec"]["template"]["metadata"]["annotations"]["checksum/config"] =
        serde_json::json!(cutover::kube::fingerprint(value));
    let manifest = serde_json::json!({
        "apiVersion": "v1", "kind": "List",
        "items": [
            {"apiVersion": "v1", "kind": "ConfigMap",
             "metadata": {"name": "app-db", "namespace": ns},
             "data": {"DATABASE_URL": value}},
            deploy,
        ],
    });
    let file = labdir.join("gitops-change.json");
    std::fs::write(&file, manifest.to_string()).unwrap();
    // (The simulator serves no OpenAPI schema to validate against.)
    kubectl(
        &labdir,
        &["apply", "--validate=false", "-f", file.to_str().unwrap()],
    );
    let applied = chrono::Utc::now();

    let out = loop {
        if child.try_wait().unwrap().is_some() {
            break child.wait_with_output().unwrap();
        }
        if std::time::Instant::now() > deadline + Duration::from_secs(300) {
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
    // Seen within 2 s of the apply, and said by whom.
    let waited = AwaitedConfig::read(&log);
    let late = waited.late_ms(applied);
    let AwaitedConfig {
        text,
        events,
        started,
        done,
    } = waited;
    assert!(late <= 2_000, "seen {late} ms after the apply");
    let said = done["message"].as_str().unwrap();
    assert!(said.contains("seen after"), "{said}");
    assert!(said.contains("applied by kubectl"), "{said}");
    // The rollout the change caused was followed to its end.
    let rollout_done = events.iter().any(|e| {
        e["type"] == "step_done"
            && e["id"] == started["id"]
            && e["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("rollout of app complete"))
    });
    assert!(rollout_done, "{text}");
    assert!(!text.contains(r#""step":"patch_config""#));
    assert!(!text.contains(r#""step":"restart""#));
    assert_eq!(url(&labdir), value);
    audit(&labdir);
}
