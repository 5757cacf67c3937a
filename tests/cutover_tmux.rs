//! The whole default runbook through the real binary in tmux, on the lab
//! (source 15 → target 18 where the lab has both) with the app pods writing:
//! every checkpoint by its key, confirmed as a user would, no override. Then,
//! from outside: every write the app acknowledged is in the database it now
//! points at, the target's sequences are past the source's, the source took
//! no write after the freeze, and the lab measured the window.

use std::process::Command;
use std::time::Duration;

mod common;

use common::tmux::{dsn, lab, psql, LabRun};

#[test]
fn the_default_runbook_from_its_keys_loses_no_acknowledged_write() {
    let lab_run = LabRun::up("cutover-e2e", "2000");
    let labdir = lab_run.config.parent().unwrap().to_path_buf();
    let source = dsn(&lab_run.config, "source");
    let target = dsn(&lab_run.config, "target");
    // The lab's one defect the preflight names: a table without a key.
    psql(&source, "ALTER TABLE public.events REPLICA IDENTITY FULL");

    let t = lab_run.console("e2e", 200, 50);
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
        t.keys("Enter");
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
    t.keys("Enter");
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
    run("A", "Advance sequences on target", None, "sequences", 60);
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

    // From outside: nothing the app was told was written is missing.
    let audit = Command::new(common::tmux::BIN)
        .args(["lab", "audit", "--dir"])
        .arg(&labdir)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&audit.stdout);
    assert_eq!(
        audit.status.code(),
        Some(0),
        "{said}{}",
        String::from_utf8_lossy(&audit.stderr)
    );
    assert!(said.contains("nothing missing"), "{said}");
    // The target's sequences are at or past the source's.
    let seqs = |c: &str| {
        psql(c, "SELECT string_agg(sequencename || '=' || coalesce(last_value, 0), ' ' ORDER BY sequencename) FROM pg_sequences WHERE schemaname = 'public'")
    };
    let (src_seqs, tgt_seqs) = (seqs(&source), seqs(&target));
    for (s, t) in src_seqs.split(' ').zip(tgt_seqs.split(' ')) {
        let v = |x: &str| x.split('=').nth(1).unwrap().parse::<i64>().unwrap();
        assert!(v(t) >= v(s), "{s} on the source, {t} on the target");
    }
    // The source took no write since the freeze: the app is on the target.
    let written = |c: &str| -> i64 {
        psql(c, "SELECT pg_stat_force_next_flush(); SELECT coalesce(sum(n_tup_ins + n_tup_upd + n_tup_del), 0) FROM pg_stat_user_tables")
            .lines()
            .last()
            .unwrap()
            .parse()
            .unwrap()
    };
    let before = written(&source);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(written(&source), before, "the source is still written");
    // The lab measured the window and the failed writes.
    let status = lab(&["status", "--dir", labdir.to_str().unwrap()]);
    assert!(
        status.contains("last ack on source → first ack on target"),
        "{status}"
    );
    // The live verification still runs: quitting asks first.
    t.keys("q");
    t.wait_for("the quit question", Duration::from_secs(10), |s| {
        s.contains("Quit anyway?")
    });
    t.keys("y");
    let screen = t.wait_for("exit", Duration::from_secs(20), |s| s.contains("EXITED:"));
    assert!(screen.contains("EXITED:0"), "{screen}");
}
