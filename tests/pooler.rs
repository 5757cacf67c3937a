//! The lab's pooler (`cutover lab up --pooler`: two PgBouncer instances in
//! transaction mode between the app pods and the source) and the console's
//! PgBouncer client (`cutover::pooler`), against real PgBouncer and
//! PostgreSQL with the app writing 500/s:
//!
//! - the instances are found as the pods behind the pooler's Service;
//! - a `PAUSE` a transaction holds up fails at its deadline, and the pause
//!   is lifted, nothing else changed;
//! - `PAUSE` on both, the entry repointed in the shared file, `RELOAD`,
//!   `RESUME`: the app's writes go to the other server, none failed, every
//!   acknowledged insert is in one of the two, and the longest write waited
//!   about as long as the pause.

use std::collections::HashSet;
use std::path::Path;
use std::time::{Duration, Instant};

use cutover::lab::witness;
use cutover::pooler::admin::AdminTarget;
use cutover::pooler::{entry, Instance};

mod common;

use common::tmux::{dsn, kubectl, pgbouncer_here, psql, LabRun};

fn witness(dir: &Path) -> witness::Witness {
    witness::read(dir)
        .unwrap()
        .expect("the app writes its witness file")
}

/// The witness as written after `since` plus a moment: the app's figures
/// of what happened until `since`.
fn witness_after(dir: &Path, since: chrono::DateTime<chrono::Utc>) -> witness::Witness {
    let start = Instant::now();
    loop {
        let w = witness(dir);
        if w.updated_at > since + chrono::Duration::milliseconds(1_500) {
            return w;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the witness file is not updated"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn wait_acks(dir: &Path, more_than: u64) {
    let start = Instant::now();
    while witness(dir).total.acknowledged_inserts <= more_than {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the app did not write through the pooler: {:?}",
            witness(dir).last_error
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn admin(i: &Instance) -> AdminTarget {
    AdminTarget {
        instance: i.clone(),
        user: cutover::lab::pooler::ADMIN_USER.into(),
        password: None,
        timeout: Duration::from_secs(5),
    }
}

#[test]
fn the_pooler_holds_the_apps_writes_while_it_is_repointed() {
    if !pgbouncer_here() {
        return;
    }
    let lab_run = LabRun::up_with("cutover-pooler", "2000", &["--pooler"]);
    let dir = lab_run.dir();
    let target = dsn(&lab_run.config, "target");
    let target_port: u16 = target
        .split_whitespace()
        .find_map(|kv| kv.strip_prefix("port="))
        .unwrap()
        .parse()
        .unwrap();

    // Found as a pooler Deployment's pods are: behind its Service, each
    // at its address and the port the Service's named targetPort names.
    let selector = kubectl(
        &dir,
        &[
            "get",
            "service",
            "pgbouncer",
            "-o",
            "jsonpath={.spec.selector.app}",
        ],
    );
    assert_eq!(selector, "pgbouncer");
    // Running (an IP) a moment after the API server comes up.
    let start = Instant::now();
    let pods = loop {
        let pods = kubectl(
            &dir,
            &[
                "get",
                "pods",
                "-l",
                "app=pgbouncer",
                "-o",
                "jsonpath={range .items[*]}{.metadata.name} {.status.podIP} \
                 {.spec.containers[0].ports[0].containerPort}{\"\\n\"}{end}",
            ],
        );
        if pods.lines().count() == 2 && pods.lines().all(|l| l.split_whitespace().count() == 3) {
            break pods;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "{pods}");
        std::thread::sleep(Duration::from_millis(200));
    };
    let instances: Vec<Instance> = pods
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            Instance {
                name: f[0].into(),
                host: f[1].into(),
                port: f[2].parse().unwrap(),
            }
        })
        .collect();
    assert_eq!(
        instances
            .iter()
            .map(|i| i.name.as_str())
            .collect::<Vec<_>>(),
        ["pgbouncer-0", "pgbouncer-1"],
        "{pods}"
    );
    wait_acks(&dir, 500);

    // The target gets the app's table (no replication here: the
    // pooler's part alone).
    psql(&target, cutover::lab::kube_sim::APP_WRITES_DDL);
    psql(&target, "GRANT SELECT, INSERT, UPDATE ON app_writes TO app");

    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let mut a0 = admin(&instances[0]).connect().await.unwrap();

        // A transaction open through instance 0 holds its PAUSE up.
        let held_port = instances[0].port;
        let (held, conn) = tokio_postgres::connect(
            &format!("host=127.0.0.1 port={held_port} dbname=app user=app"),
            tokio_postgres::NoTls,
        )
        .await
        .unwrap();
        tokio::spawn(conn);
        held.simple_query(
            "BEGIN; INSERT INTO app_writes (id, pod, db_config) VALUES ('held-1', 'test', 'x')",
        )
        .await
        .unwrap();
        let started = Instant::now();
        let err = a0.pause("app", Duration::from_secs(2)).await.unwrap_err();
        let said = format!("{err:#}");
        assert!(started.elapsed() >= Duration::from_secs(2), "{said}");
        assert!(said.contains("PAUSE app not done within 2s"), "{said}");
        assert!(said.contains("the pause was lifted (RESUME)"), "{said}");
        assert!(!a0.database("app").await.unwrap().paused, "still paused");
        held.simple_query("COMMIT").await.unwrap();
    });
    // A PAUSE holds new queries while it waits: the app's writes waited
    // the deadline out, none failed.
    let held = witness_after(&dir, chrono::Utc::now()).total.latency.max_ms;
    assert!((1_900..=3_000).contains(&held), "{held} ms");
    assert_eq!(
        witness(&dir).total.failed,
        0,
        "{:?}",
        witness(&dir).last_error
    );

    // The switch's moves: pause both, repoint, reload, resume.
    // The console on this lab: its pooler pane, live.
    let t = lab_run.console("pooler", 200, 50);
    t.wait_for("both instances serving", Duration::from_secs(30), |s| {
        s.contains("pgbouncer-0   ● serving") && s.contains("pgbouncer-1   ● serving")
    });
    let before = witness(&dir).total.acknowledged_inserts;
    let source = dsn(&lab_run.config, "source");
    let file = dir.join("pooler").join("databases.ini");
    let (paused_for, switch_second) = rt.block_on(async {
        let targets: Vec<AdminTarget> = instances.iter().map(admin).collect();
        let mut admins = futures::future::try_join_all(targets.iter().map(AdminTarget::connect))
            .await
            .unwrap();
        let paused_at = Instant::now();
        let switch_second = chrono::Utc::now().timestamp();
        futures::future::try_join_all(
            admins
                .iter_mut()
                .map(|a| a.pause("app", Duration::from_secs(10))),
        )
        .await
        .unwrap();
        for a in &admins {
            assert!(a.database("app").await.unwrap().paused);
        }
        // The console's pooler pane shows the pause and the clients it holds.
        tokio::task::block_in_place(|| {
            t.wait_for(
                "the pause in the pooler pane",
                Duration::from_secs(10),
                |s| s.contains("⏸ 2/2 paused") && s.contains("clients waiting"),
            )
        });
        // Paused, the source stands still: the target is brought level
        // (by replication's lag 0 in the runbook; by a copy here).
        let copied = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!(
                "psql -X '{source}' -c '\\copy app_writes TO STDOUT' \
                 | psql -X '{target}' -c '\\copy app_writes FROM STDIN'"
            ))
            .output()
            .unwrap();
        assert!(copied.status.success(), "{copied:?}");
        tokio::time::sleep(Duration::from_millis(1_500)).await;
        let text = std::fs::read_to_string(&file).unwrap();
        let e = entry::find(&text, "databases.ini", "app").unwrap();
        let line = entry::repointed_line(&e, "127.0.0.1", target_port, "app");
        std::fs::write(
            &file,
            entry::replace(&text, "databases.ini", "app", &e.line, &line).unwrap(),
        )
        .unwrap();
        for a in &admins {
            a.reload().await.unwrap();
            assert_eq!(a.database("app").await.unwrap().port, target_port);
        }
        for a in &admins {
            a.resume("app").await.unwrap();
        }
        let paused_for = paused_at.elapsed();
        // The writes go to the target: every server connection of the
        // app's pool, on both instances (the pods pick an instance at
        // random: one may have none).
        tokio::time::sleep(Duration::from_secs(2)).await;
        let mut servers = Vec::new();
        for a in &admins {
            servers.extend(
                a.servers()
                    .await
                    .unwrap()
                    .into_iter()
                    .filter(|s| s.database == "app"),
            );
            assert!(a.pools().await.unwrap().iter().all(|p| p.cl_waiting == 0));
        }
        assert!(!servers.is_empty(), "no server connection");
        assert!(servers.iter().all(|s| s.port == target_port), "{servers:?}");
        (paused_for, switch_second)
    });
    t.wait_for("the servers on the target", Duration::from_secs(10), |s| {
        s.contains("servers → target 127.0.0.1")
            && !s.contains("servers → source")
            && s.contains("● watching")
    });
    wait_acks(&dir, before + 500);
    let w = witness_after(&dir, chrono::Utc::now());
    eprintln!(
        "paused {:.3} s; write latency p50 {} ms, p99 {} ms, longest {} ms; {} failed",
        paused_for.as_secs_f64(),
        w.total.latency.p50_ms,
        w.total.latency.p99_ms,
        w.total.latency.max_ms,
        w.total.failed
    );
    assert_eq!(w.total.failed, 0, "{:?}", w.last_error);
    // The longest wait since the switch began is the pause, give or take
    // a tick and a round trip.
    let longest = w
        .total
        .recent
        .iter()
        .filter(|s| s.second >= switch_second)
        .map(|s| s.max_latency_ms)
        .max()
        .unwrap();
    let paused_ms = paused_for.as_millis() as u64;
    assert!(
        longest + 300 >= paused_ms && longest <= paused_ms + 1_000,
        "longest {longest} ms for a pause of {paused_ms} ms"
    );
    let on_target: u64 = psql(
        &target,
        "SELECT count(*) FROM app_writes WHERE pod <> 'test'",
    )
    .parse()
    .unwrap();
    assert!(on_target > 0);

    // No acknowledged insert lost: every one is on the target.
    let acked = witness::read_journals(&dir).unwrap();
    let mut stored: HashSet<String> = HashSet::new();
    stored.extend(
        psql(&target, "SELECT id FROM app_writes")
            .lines()
            .map(str::to_string),
    );
    let missing: Vec<&String> = acked
        .inserts
        .iter()
        .filter(|id| !stored.contains(*id))
        .collect();
    assert!(acked.inserts.len() > 1_000);
    assert!(
        missing.is_empty(),
        "{} missing: {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
}
