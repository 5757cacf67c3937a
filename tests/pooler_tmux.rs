//! The switch through the pooler, end to end through the real binary in
//! tmux, on the lab with PgBouncer (two instances) between the app pods
//! and the source, the app writing 500/s (source 15 → target 18 where the
//! lab has both): F D P U W V, then S — PAUSE, lag 0, final checksums,
//! sequences, reverse replication, repoint, RELOAD, RESUME, proof — and T.
//! Checked from outside: no write failed, no pod restarted, every
//! acknowledged write on the target, both instances serving from it; the
//! longest write latency printed.

use std::time::Duration;

mod common;

use common::tmux::{audit, dsn, kubectl, pgbouncer_here, psql, LabRun, Tmux};

/// Enter in an open dialog, until it closes.
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

fn app_pods(labdir: &std::path::Path) -> String {
    kubectl(
        labdir,
        &[
            "get",
            "pods",
            "-l",
            "app=app",
            "-o",
            "jsonpath={range .items[*]}{.metadata.name} {.status.containerStatuses[0].restartCount}{\"\\n\"}{end}",
        ],
    )
}

#[test]
fn the_switch_through_the_pooler_fails_no_write_and_restarts_no_pod() {
    if !pgbouncer_here() {
        return;
    }
    let lab_run = LabRun::up_with("cutover-pooler-e2e", "2000", &["--pooler"]);
    let labdir = lab_run.dir();
    let source = dsn(&lab_run.config, "source");
    let target = dsn(&lab_run.config, "target");
    psql(&source, "ALTER TABLE public.events REPLICA IDENTITY FULL");

    let t = lab_run.console("pooler-e2e", 200, 50);
    t.wait_for(
        "both sides, the pods and the pooler",
        Duration::from_secs(60),
        |s| {
            s.matches("● up").count() >= 2
                && s.contains("✔ rollout complete")
                && s.contains("pgbouncer-1   ● serving")
        },
    );
    let pods_before = app_pods(&labdir);
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
    // The switch's dialog is the plan: the pause, the repoint's diff, the
    // resume, with every instance named.
    t.keys("S");
    let dialog = t.wait_for("the switch's dialog", Duration::from_secs(30), |s| {
        s.contains("Switch database config")
            && s.contains("Will run:")
            && !s.contains("✖ a guard fails")
    });
    let target_port = target
        .split_whitespace()
        .find_map(|kv| kv.strip_prefix("port="))
        .unwrap()
        .to_string();
    for words in [
        "pgbouncer-0 (127.0.0.1:",
        "pgbouncer-1 (127.0.0.1:",
        "databases.ini (only if the line is still as read):",
        &format!("+ app = host=127.0.0.1 port={target_port} dbname=app"),
        "RESUME app",
        "Pooler serves from the source",
    ] {
        assert!(dialog.contains(words), "{words}\n{dialog}");
    }
    t.keys("app");
    submit(&t);
    let done = t.wait_for("the switch done", Duration::from_secs(120), |s| {
        s.contains("Switch database config · ✔ done") || s.contains("Switch database config · ✖")
    });
    assert!(done.contains("Switch database config · ✔ done"), "{done}");
    t.wait_for("the pooler on the target", Duration::from_secs(15), |s| {
        s.contains("servers → target") && !s.contains("servers → source")
    });
    run(
        "T",
        "App writes to the target",
        None,
        "the app writes to the target only",
        60,
    );

    // From outside: every acknowledged write is on the target (the audit
    // reads where the pooler's entry points now), none failed, no pod
    // restarted or replaced, both instances serve from the target.
    audit(&labdir);
    let status = common::tmux::lab(&["status", "--dir", labdir.to_str().unwrap()]);
    eprintln!("{status}");
    assert!(
        status.contains("write-failure window  none (no write failed)"),
        "{status}"
    );
    let latency = status
        .lines()
        .find(|l| l.contains("write latency"))
        .unwrap_or_else(|| panic!("{status}"));
    eprintln!("pooler switch: {}", latency.trim());
    assert_eq!(
        app_pods(&labdir),
        pods_before,
        "a pod restarted or was replaced"
    );
    let entry = std::fs::read_to_string(labdir.join("pooler/databases.ini")).unwrap();
    assert!(entry.contains(&format!("port={target_port}")), "{entry}");
    // The app's writes reach the source again through reverse replication.
    let rows = |c: &str| -> i64 { psql(c, "SELECT count(*) FROM app_writes").parse().unwrap() };
    let on_target = rows(&target);
    t.wait_for("reverse replication", Duration::from_secs(30), |_| {
        rows(&source) >= on_target
    });

    // The way back through the pooler: the switch in mirror. Afterwards
    // every instance serves from the source, every write the app was told
    // succeeded — on the source before, on the target between — is on the
    // source, and still none failed.
    run(
        "B",
        "Switch back and restart",
        Some("app"),
        "✔ B Switch back",
        120,
    );
    t.wait_for("the pooler on the source", Duration::from_secs(15), |s| {
        s.contains("servers → source") && !s.contains("servers → target")
    });
    let back = rows(&source);
    t.wait_for(
        "the app writing to the source",
        Duration::from_secs(30),
        |_| rows(&source) > back,
    );
    audit(&labdir);
    let status = common::tmux::lab(&["status", "--dir", labdir.to_str().unwrap()]);
    assert!(
        status.contains("write-failure window  none (no write failed)"),
        "{status}"
    );
    eprintln!(
        "after the way back: {}",
        status
            .lines()
            .find(|l| l.contains("write latency"))
            .unwrap()
            .trim()
    );
    assert_eq!(
        app_pods(&labdir),
        pods_before,
        "a pod restarted or was replaced"
    );
    t.keys("q");
}
