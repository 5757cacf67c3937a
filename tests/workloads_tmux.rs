//! Every workload that uses the database, found from the config object its
//! pods reference, through the real binary on the lab: a StatefulSet the
//! config does not list is restarted with the Deployment by R, and a Job
//! still running with the old value holds up "app on the target" (T), by
//! name, on the screen, until it is gone.

mod common;

use std::time::Duration;

use common::tmux::{kubectl, LabRun};
use serde_json::json;

fn apply(labdir: &std::path::Path, name: &str, manifest: serde_json::Value) {
    let file = labdir.join(format!("{name}.json"));
    std::fs::write(&file, manifest.to_string()).unwrap();
    kubectl(
        labdir,
        &["apply", "--validate=false", "-f", file.to_str().unwrap()],
    );
}

/// A pod template whose `DATABASE_URL` comes from the lab's ConfigMap.
fn template(label: &str, command: &[&str]) -> serde_json::Value {
    json!({
        "metadata": {"labels": {"app": label}},
        "spec": {
            "restartPolicy": if command.is_empty() { "Always" } else { "Never" },
            "containers": [{
                "name": label, "image": "example/worker:1",
                "command": command,
                "env": [{"name": "DATABASE_URL",
                         "valueFrom": {"configMapKeyRef": {"name": "app-db", "key": "DATABASE_URL"}}}],
            }],
        },
    })
}

#[test]
fn workloads_found_by_their_config_are_restarted_and_guarded() {
    let lab_run = LabRun::up("cutover-users", "2000");
    let labdir = lab_run.config.parent().unwrap().to_path_buf();
    let target = common::tmux::dsn(&lab_run.config, "target");
    common::tmux::psql(
        &target,
        "ALTER DEFAULT PRIVILEGES FOR ROLE postgres IN SCHEMA public \
           GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO app; \
         ALTER DEFAULT PRIVILEGES FOR ROLE postgres IN SCHEMA public \
           GRANT USAGE, SELECT, UPDATE ON SEQUENCES TO app",
    );
    let config = std::fs::read_to_string(&lab_run.config).unwrap();
    std::fs::write(
        &lab_run.config,
        format!("{config}\n[runbook]\nvariant = \"dump-restore\"\n"),
    )
    .unwrap();
    apply(
        &labdir,
        "ledger",
        json!({
            "apiVersion": "apps/v1", "kind": "StatefulSet",
            "metadata": {"name": "ledger"},
            "spec": {"replicas": 2, "serviceName": "ledger",
                     "selector": {"matchLabels": {"app": "ledger"}},
                     "template": template("ledger", &[])},
        }),
    );
    apply(
        &labdir,
        "report",
        json!({
            "apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": "report"},
            "spec": {"backoffLimit": 0, "template": template("report", &["sleep", "600"])},
        }),
    );
    apply(
        &labdir,
        "nightly",
        json!({
            "apiVersion": "batch/v1", "kind": "CronJob",
            "metadata": {"name": "nightly"},
            "spec": {"schedule": "0 3 * * *",
                     "jobTemplate": {"spec": {"template": template("nightly", &["true"])}}},
        }),
    );
    let out = lab_run.script("F Z Y C S R");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let log = std::fs::read_dir(&lab_run.sessions)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .unwrap();
    let text = std::fs::read_to_string(&log).unwrap();
    // R restarted the StatefulSet nobody listed, and followed its rollout.
    assert!(
        text.contains("restarted statefulset/ledger")
            && text.contains("rollout of statefulset/ledger complete"),
        "{text}"
    );
    // Its pods now carry the new database config, like the app's.
    let annotations = kubectl(
        &labdir,
        &[
            "get", "pods", "-l", "app in (app,ledger)", "-o",
            "jsonpath={range .items[*]}{.metadata.annotations.cutover\\.dev/db-config}{\"\\n\"}{end}",
        ],
    );
    let fps: std::collections::BTreeSet<&str> = annotations.lines().collect();
    assert_eq!(fps.len(), 1, "{annotations}");

    // T, on the screen: the Job that started before the switch still has
    // the old value, and is named.
    let console = lab_run.console_with("users", 200, 50, &format!("--resume {}", log.display()));
    console.wait_for("the users line", Duration::from_secs(30), |s| {
        s.contains("uses configmap/app-db") && s.contains("statefulset/ledger")
    });
    console.keys("T");
    let screen = console.wait_for("T's dialog", Duration::from_secs(20), |s| {
        s.contains("Will run:") && s.contains("No workload on the old config —")
    });
    assert!(
        screen.contains("job/report: 1 pod from before the switch"),
        "{screen}"
    );
    assert!(screen.contains("cronjob/nightly (next run)"), "{screen}");
    drop(console);
    kubectl(&labdir, &["delete", "job", "report", "--wait=true"]);
    // (The hung-up console lets go of its log as it ends.)
    let start = std::time::Instant::now();
    let out = loop {
        let out = lab_run
            .script_command("T")
            .arg("--resume")
            .arg(&log)
            .output()
            .unwrap();
        let busy =
            String::from_utf8_lossy(&out.stderr).contains("being written by another console");
        if !busy || start.elapsed() > Duration::from_secs(15) {
            break out;
        }
        std::thread::sleep(Duration::from_millis(300));
    };
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
