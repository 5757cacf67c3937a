//! The switch through the pooler when it cannot go through, on the lab
//! with two PgBouncer instances and the app writing 500/s, through the
//! real binary in tmux:
//!
//! - a transaction left open through the pooler when `S` sends `PAUSE`:
//!   the step fails after its deadline (2 s here) naming the transaction,
//!   every pause is lifted, the entry is unchanged, nothing failed;
//! - one of the two instances unreachable: the switch is refused before
//!   anything is paused, the instance named.

use std::time::Duration;

mod common;

use common::tmux::{dsn, pgbouncer_here, psql, LabRun, Tmux};

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

fn pooler_ports(labdir: &std::path::Path) -> Vec<u16> {
    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(labdir.join("lab.json")).unwrap()).unwrap();
    state["pooler"]["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_u64().unwrap() as u16)
        .collect()
}

#[test]
fn a_held_transaction_or_an_unreachable_instance_leaves_the_app_on_the_source() {
    if !pgbouncer_here() {
        return;
    }
    let lab_run = LabRun::up_with("cutover-pooler-faults", "2000", &["--pooler"]);
    let labdir = lab_run.dir();
    let source = dsn(&lab_run.config, "source");
    psql(&source, "ALTER TABLE public.events REPLICA IDENTITY FULL");
    let text = std::fs::read_to_string(&lab_run.config).unwrap();
    let timed = text.replacen("[pooler]\n", "[pooler]\npause_timeout_secs = 2\n", 1);
    assert_ne!(text, timed);
    std::fs::write(&lab_run.config, timed).unwrap();
    let entry_before = std::fs::read_to_string(labdir.join("pooler/databases.ini")).unwrap();

    let t = lab_run.console("pooler-faults", 200, 50);
    t.wait_for("both sides and the pooler", Duration::from_secs(60), |s| {
        s.matches("● up").count() >= 2 && s.contains("pgbouncer-1   ● serving")
    });
    let run = |key: &str, title: &str, done: &str, secs: u64| {
        t.keys(key);
        t.wait_for(
            &format!("the {title} dialog"),
            Duration::from_secs(30),
            |s| s.contains(title) && s.contains("Will run:") && !s.contains("✖ a guard fails"),
        );
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
    run("D", "Copy schema to target", "schema copied", 120);
    run("P", "Create publication", "CREATE PUBLICATION", 60);
    run("U", "Create subscription", "created subscription", 60);
    run("W", "Wait for initial sync", "all 7 tables", 300);
    run("V", "Verify while live", "every table verified once", 300);

    // A transaction open through instance 0: PAUSE waits for it.
    let port = pooler_ports(&labdir)[0];
    let rt = tokio::runtime::Runtime::new().unwrap();
    let held = rt.block_on(async {
        let (c, conn) = tokio_postgres::connect(
            &format!("host=127.0.0.1 port={port} dbname=app user=app application_name=held-open"),
            tokio_postgres::NoTls,
        )
        .await
        .unwrap();
        tokio::spawn(conn);
        c.simple_query(
            "BEGIN; INSERT INTO app_writes (id, pod, db_config) VALUES ('held-1', 'test', 'x')",
        )
        .await
        .unwrap();
        c
    });
    t.keys("S");
    t.wait_for("the switch's dialog", Duration::from_secs(30), |s| {
        s.contains("Switch database config")
            && s.contains("Will run:")
            && !s.contains("✖ a guard fails")
    });
    t.keys("app");
    submit(&t);
    let failed = t.wait_for(
        "the switch refused by the held transaction",
        Duration::from_secs(30),
        |s| s.contains("Switch database config · ✖ failed") && s.contains("every pause lifted"),
    );
    // The run pane says why, wrapped: the PAUSE's deadline, the
    // transaction holding it (by its application_name), every pause lifted.
    for words in ["app not done within 2s", "held-open", "every pause lifted"] {
        assert!(failed.contains(words), "{words}\n{failed}");
    }
    t.wait_for(
        "both instances serving again",
        Duration::from_secs(10),
        |s| s.contains("pgbouncer-0   ● serving") && s.contains("pgbouncer-1   ● serving"),
    );
    assert_eq!(
        std::fs::read_to_string(labdir.join("pooler/databases.ini")).unwrap(),
        entry_before,
        "the entry changed"
    );
    rt.block_on(held.simple_query("COMMIT")).unwrap();
    let status = common::tmux::lab(&["status", "--dir", labdir.to_str().unwrap()]);
    assert!(
        status.contains("write-failure window  none (no write failed)"),
        "{status}"
    );

    // Instance 1 stops answering: S is refused before anything is paused.
    let pid: i32 = std::fs::read_to_string(labdir.join("pooler/pgbouncer-1.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    t.wait_for("instance 1 unreachable", Duration::from_secs(15), |s| {
        s.contains("pgbouncer-1   ✖")
    });
    t.keys("S");
    let dialog = t.wait_for("the switch refused", Duration::from_secs(30), |s| {
        s.contains("Switch database config") && s.contains("✖ a guard fails")
    });
    assert!(
        dialog.contains("✖ Pooler serves from the source — pgbouncer-1:"),
        "{dialog}"
    );
    t.keys("Escape");
    assert!(!t.capture().contains("PAUSED"));
    t.keys("q");
}
