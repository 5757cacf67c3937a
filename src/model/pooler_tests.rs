//! The switch through the pooler on the model side: its runbook, its
//! guards on the pooler's last sample (fresh, every instance serving from
//! the source), its one plan — pause, lag 0, checks, sequences, reverse
//! replication, repoint, reload, resume, proof — and the way back, the
//! same in mirror.

use super::update::tests::{at, info, Feed};
use crate::pooler::{Database, FileEntry, Instance, InstanceSample, PoolerSample};
use crate::runbook::{self, CheckpointId, Confirm, Step};
use crate::session::{Endpoint, EventKind, PoolerInfo, Side, SwitchRecord};

fn pooled() -> Feed {
    let mut i = info();
    i.target = Endpoint {
        label: "new".into(),
        describe: "new@h2:5433/db".into(),
    };
    i.pooler = Some(PoolerInfo {
        instances: "service/pgbouncer".into(),
        database: "app".into(),
        databases_file: "/etc/pgbouncer/databases.ini".into(),
        pause_timeout_secs: 10,
    });
    Feed::with(i)
}

fn instance(i: usize, host: &str, port: u16, paused: bool) -> InstanceSample {
    InstanceSample {
        instance: Instance {
            name: format!("pgbouncer-{i}"),
            host: format!("10.1.0.{i}"),
            port: 6432,
        },
        error: None,
        entry: Some(Database {
            name: "app".into(),
            host: host.into(),
            port,
            database: "db".into(),
            paused,
            disabled: false,
            current_connections: 1,
        }),
        pools: vec![],
        servers: vec![],
    }
}

fn sampled(f: &mut Feed, t: i64, host: &str, port: u16, paused: bool) {
    f.send(
        t,
        EventKind::PoolerSampled(PoolerSample {
            database: "app".into(),
            instances: vec![
                instance(0, host, port, paused),
                instance(1, host, port, false),
            ],
            error: None,
            file: Some(Ok(FileEntry {
                line_no: 3,
                shown: format!("app = host={host} port={port} dbname=db"),
                fingerprint: "fp-line".into(),
                host: host.into(),
                port,
                dbname: "db".into(),
            })),
        }),
    );
}

fn guard<'a>(guards: &'a [crate::runbook::Guard], label: &str) -> &'a crate::runbook::Guard {
    guards
        .iter()
        .find(|g| g.label == label)
        .unwrap_or_else(|| panic!("no guard {label} in {guards:?}"))
}

#[test]
fn through_the_pooler_the_runbook_switches_in_one_checkpoint_without_a_restart() {
    let f = pooled();
    assert_eq!(runbook::checkpoints(&f.m), runbook::LOGICAL_POOLER);
    for gone in [
        CheckpointId::FreezeWrites,
        CheckpointId::FinalCheck,
        CheckpointId::AdvanceSequences,
        CheckpointId::ReverseReplication,
        CheckpointId::RolloutRestart,
    ] {
        assert!(!runbook::checkpoints(&f.m).contains(&gone), "{gone:?}");
    }
    // No Kubernetes side is needed to switch through the pooler.
    assert!(crate::model::actions::bound(
        &f.m,
        CheckpointId::SwitchConfig
    ));
}

#[test]
fn the_switch_is_guarded_on_a_fresh_sample_of_every_instance_serving_from_the_source() {
    let mut f = pooled();
    f.live(1, 0);
    let g = runbook::guards(&f.m, CheckpointId::SwitchConfig);
    assert!(
        !guard(&g, "Pooler serves from the source").passes(),
        "not read yet"
    );
    sampled(&mut f, 1, "h", 5432, false);
    let g = runbook::guards(&f.m, CheckpointId::SwitchConfig);
    let serving = guard(&g, "Pooler serves from the source");
    assert!(serving.passes(), "{serving:?}");
    assert!(guard(&g, "Pooler entry readable").passes());
    // One instance paused: refused, named.
    sampled(&mut f, 2, "h", 5432, true);
    let g = runbook::guards(&f.m, CheckpointId::SwitchConfig);
    let said = guard(&g, "Pooler serves from the source").said();
    assert!(said.contains("pgbouncer-0 is paused"), "{said}");
    // Already on the target: refused.
    sampled(&mut f, 3, "h2", 5433, false);
    let g = runbook::guards(&f.m, CheckpointId::SwitchConfig);
    assert!(!guard(&g, "Pooler serves from the source").passes());
    // Past the stale limit (3 s) without a sample: refused, never passed
    // on old data.
    sampled(&mut f, 4, "h", 5432, false);
    f.live(9, 0);
    let g = runbook::guards(&f.m, CheckpointId::SwitchConfig);
    let said = guard(&g, "Pooler serves from the source").said();
    assert!(said.contains("stale"), "{said}");
}

#[test]
fn the_plan_pauses_waits_checks_repoints_and_resumes_what_the_dialog_shows() {
    let mut f = pooled();
    f.live(1, 0);
    sampled(&mut f, 1, "h", 5432, false);
    let plan = runbook::plan(&f.m, CheckpointId::SwitchConfig).expect("a plan");
    let kinds: Vec<&str> = plan
        .steps
        .iter()
        .map(|s| match s {
            Step::PoolerPause {
                on: Side::Source, ..
            } => "pause",
            Step::WaitReplicated {
                on: Side::Source, ..
            } => "lag 0",
            Step::VerifyFinal { .. } => "checksums",
            Step::AdvanceSequences {
                to: Side::Target, ..
            } => "sequences",
            Step::Sql { .. } | Step::CreateSubscription { .. } | Step::StopSubscription { .. } => {
                "reverse"
            }
            Step::PoolerRepoint {
                to: Side::Target, ..
            } => "repoint",
            Step::PoolerReload { .. } => "reload",
            Step::PoolerResume {
                to: Side::Target,
                paused_on: Side::Source,
                ..
            } => "resume",
            Step::PoolerProve { .. } => "prove",
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "pause",
            "lag 0",
            "checksums",
            "sequences",
            "reverse",
            "reverse",
            "reverse",
            "reverse",
            "repoint",
            "reload",
            "resume",
            "prove"
        ]
    );
    let Some(Step::PoolerRepoint {
        host,
        port,
        dbname,
        expect,
        before,
        after,
        ..
    }) = plan
        .steps
        .iter()
        .find(|s| matches!(s, Step::PoolerRepoint { .. }))
    else {
        unreachable!()
    };
    assert_eq!((host.as_str(), *port, dbname.as_str()), ("h2", 5433, "db"));
    assert_eq!(expect, "fp-line");
    assert_eq!(before, "app = host=h port=5432 dbname=db");
    assert_eq!(after, "app = host=h2 port=5433 dbname=db");
    let Some(Step::PoolerPause {
        instances,
        timeout_s,
        ..
    }) = plan.steps.first()
    else {
        unreachable!()
    };
    assert_eq!(instances.len(), 2);
    assert_eq!(*timeout_s, 10);
    assert_eq!(plan.confirm, Confirm::TypeName("app".into()));
    // The dialog's lines are the plan's: the diff, passwords never.
    let lines: Vec<String> = plan.steps.iter().flat_map(Step::lines).collect();
    assert!(
        lines.contains(&"  + app = host=h2 port=5433 dbname=db".to_string()),
        "{lines:?}"
    );
}

#[test]
fn the_way_back_after_the_pooler_switch_is_the_switch_in_mirror() {
    let mut f = pooled();
    f.live(1, 0);
    sampled(&mut f, 1, "h2", 5433, false);
    f.m.actions.switched = Some((
        at(1),
        SwitchRecord {
            object: "pooler /etc/pgbouncer/databases.ini".into(),
            key: "app".into(),
            previous_fingerprint: Some("fp-old".into()),
            new_fingerprint: "fp-new".into(),
            changed: true,
        },
    ));
    let plan = runbook::plan(&f.m, CheckpointId::Rollback).expect("a plan");
    assert!(matches!(
        plan.steps.first(),
        Some(Step::PoolerPause {
            on: Side::Target,
            ..
        })
    ));
    assert!(plan.steps.iter().any(|s| matches!(
        s,
        Step::WaitReplicated { on: Side::Target, slot, .. } if slot == "s_reverse"
    )));
    assert!(plan.steps.iter().any(|s| matches!(
        s,
        Step::AdvanceSequences {
            to: Side::Source,
            ..
        }
    )));
    assert!(plan.steps.iter().any(|s| matches!(
        s,
        Step::PoolerRepoint { to: Side::Source, host, port: 5432, .. } if host == "h"
    )));
    assert!(matches!(
        plan.steps.iter().rev().nth(1),
        Some(Step::PoolerResume {
            to: Side::Source,
            paused_on: Side::Target,
            ..
        })
    ));
    // Nothing is put back through Kubernetes, nothing restarts.
    assert!(!plan.steps.iter().any(Step::is_kubernetes));
    // Without reverse replication running, B refuses: the target's writes
    // would stay there.
    let g = runbook::guards(&f.m, CheckpointId::Rollback);
    assert!(!guard(&g, "Reverse replication runs").passes());
}
