//! The dump-and-restore runbook on the model side: its checkpoints and
//! keys, the guards that make the copy follow the freeze and the switch
//! follow a verification of the copy, and no replication guard in its way.

use super::actions::tests::kube_info;
use super::budget::tests::freeze;
use super::update::tests::{ran, Feed};
use crate::runbook::{self, CheckpointId, Step, Variant};
use crate::session::{EventKind, SessionInfo};

fn dump() -> SessionInfo {
    SessionInfo {
        app_roles: vec!["app".into()],
        runbook: Variant::DumpRestore,
        dump_jobs: 3,
        ..kube_info(false)
    }
}

fn failing(f: &Feed, id: CheckpointId) -> Vec<String> {
    runbook::failing(&f.m, id)
        .into_iter()
        .map(|g| g.label.clone())
        .collect()
}

#[test]
fn its_keys_are_its_checkpoints_only() {
    let mut f = Feed::with(dump());
    f.live(1, 0);
    assert_eq!(
        f.key(2, "D"),
        vec![],
        "the schema copy is not in this runbook"
    );
    assert_eq!(f.m.dialog, None);
    f.key(2, "Y");
    assert_eq!(f.m.dialog, Some(CheckpointId::DumpRestore));
    let mut l = Feed::with(kube_info(false));
    l.live(1, 0);
    l.key(2, "Y");
    assert_eq!(
        l.m.dialog, None,
        "no dump and restore in the logical runbook"
    );
}

#[test]
fn the_copy_follows_the_freeze_and_the_switch_a_check_of_the_copy() {
    let mut f = Feed::with(dump());
    f.live(1, 0);
    // No replication guard holds the freeze up: no subscription here.
    assert!(
        failing(&f, CheckpointId::FreezeWrites).is_empty(),
        "{:?}",
        failing(&f, CheckpointId::FreezeWrites)
    );
    assert_eq!(
        failing(&f, CheckpointId::DumpRestore),
        vec!["Writes frozen on the source"]
    );
    freeze(&mut f, 2);
    assert!(failing(&f, CheckpointId::DumpRestore).is_empty());
    let plan = runbook::plan(&f.m, CheckpointId::DumpRestore).unwrap();
    assert!(
        matches!(plan.steps.as_slice(), [Step::DumpRestore { jobs: 3, tables }] if *tables > 0),
        "{:?}",
        plan.steps
    );
    assert!(failing(&f, CheckpointId::FinalCheck).contains(&"Copied in the freeze".to_string()));
    let switch = failing(&f, CheckpointId::SwitchConfig);
    assert!(
        switch.contains(&"Copied in the freeze".to_string()),
        "{switch:?}"
    );
    assert!(
        !switch
            .iter()
            .any(|g| g.contains("Sequences") || g.contains("caught up")),
        "{switch:?}"
    );
    ran(
        &mut f,
        3,
        CheckpointId::DumpRestore,
        plan.steps.clone(),
        true,
        "copied",
        None,
    );
    // The target has the tables now.
    let mut t = super::update::tests::target();
    t.tables = f.m.source.last.as_ref().unwrap().tables.clone();
    f.send(4, EventKind::TargetSampled(t));
    assert!(failing(&f, CheckpointId::FinalCheck).is_empty());
    // The final check is the checksum pass alone: no slot to wait for.
    let check = runbook::plan(&f.m, CheckpointId::FinalCheck).unwrap();
    assert!(
        matches!(check.steps.as_slice(), [Step::VerifyFinal { .. }]),
        "{:?}",
        check.steps
    );
    // Done in this freeze: nothing to run again, and no refusal over the
    // tables it made.
    assert!(failing(&f, CheckpointId::DumpRestore).is_empty());
    let again = runbook::plan(&f.m, CheckpointId::DumpRestore).unwrap();
    assert!(again.steps.is_empty(), "{:?}", again.steps);
    assert_eq!(
        failing(&f, CheckpointId::SwitchConfig)
            .into_iter()
            // (No workload or access review in this fixture.)
            .filter(|g| {
                ![
                    "Switch value readable",
                    "Access review",
                    "Kubernetes watch live",
                ]
                .contains(&g.as_str())
            })
            .collect::<Vec<_>>(),
        vec!["Verified after the copy"]
    );
    ran(
        &mut f,
        5,
        CheckpointId::FinalCheck,
        check.steps.clone(),
        true,
        "7 tables equal",
        None,
    );
    assert!(
        !failing(&f, CheckpointId::SwitchConfig).contains(&"Verified after the copy".to_string())
    );
}

#[test]
fn in_a_job_the_copy_shows_the_job_and_keeps_its_pods_log() {
    use crate::runbook::copy_job::CopyJob;
    let job = CopyJob {
        namespace: "shop".into(),
        image: "postgres:18".into(),
        secret: "copy-pgpass".into(),
        secret_key: "pgpass".into(),
        source: "host='old' port='5432' dbname='app' user='copy' sslmode=prefer".into(),
        target: "host='new' port='5432' dbname='app' user='copy' sslmode=prefer".into(),
        deadline_s: 600,
    };
    let mut f = Feed::with(SessionInfo {
        copy_job: Some(job.clone()),
        ..dump()
    });
    f.live(1, 0);
    freeze(&mut f, 2);
    let plan = runbook::plan(&f.m, CheckpointId::DumpRestore).unwrap();
    let [Step::CopyJob {
        job: planned,
        tables,
    }] = plan.steps.as_slice()
    else {
        panic!("{:?}", plan.steps)
    };
    assert_eq!((planned, *tables > 0), (&job, true));
    let shown = plan.steps[0].lines().join("\n");
    assert!(shown.contains("Secret copy-pgpass (key pgpass)"), "{shown}");
    assert!(shown.contains("backoffLimit 0"), "{shown}");
    assert!(shown.contains("activeDeadlineSeconds 600"), "{shown}");
    ran(
        &mut f,
        3,
        CheckpointId::DumpRestore,
        plan.steps.clone(),
        false,
        "job/cutover-copy-1 failed",
        None,
    );
    let id = f.m.actions.history.last().unwrap().id;
    let lines: Vec<String> = (0..250).map(|i| format!("line {i}")).collect();
    f.send(4, EventKind::JobLog { id, lines });
    let log = &f.m.actions.history.last().unwrap().job_log;
    assert_eq!(log.len(), super::actions::JOB_LOG_LINES);
    assert_eq!(log.back().map(String::as_str), Some("line 249"));
    assert_eq!(log.front().map(String::as_str), Some("line 50"));
    // A failed copy is no copy: the writes stay frozen, the switch waits,
    // and the rollback is open.
    assert!(f.m.actions.frozen.is_some());
    assert!(failing(&f, CheckpointId::SwitchConfig).contains(&"Copied in the freeze".to_string()));
    assert!(
        !failing(&f, CheckpointId::Rollback).contains(&"Writes frozen on the source".to_string())
    );
}
