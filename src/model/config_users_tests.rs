//! "No workload on the old config": every workload found using the config
//! object, listed or not, has only pods from after the switch, and none
//! uses a same-named object in a namespace the switch did not touch; and
//! the guard does not pass on an old or failed search.

use chrono::DateTime;

use super::actions::tests::kube_info;
use super::update::tests::{at, Feed};
use crate::kube::discover::{ConfigUser, UserPod};
use crate::runbook::checkpoints::app_on_target::on_new_config;
use crate::session::{EventKind, SwitchRecord};

fn searched() -> crate::session::SessionInfo {
    crate::session::SessionInfo {
        config_users: true,
        ..kube_info(false)
    }
}

fn user(kind: &str, ns: &str, name: &str, started: &[i64]) -> ConfigUser {
    ConfigUser {
        kind: kind.into(),
        namespace: ns.into(),
        name: name.into(),
        via: vec!["env DATABASE_URL".into()],
        pods: started
            .iter()
            .enumerate()
            .map(|(i, s)| UserPod {
                name: format!("{name}-{i}"),
                started: DateTime::from_timestamp(at(*s).timestamp(), 0),
            })
            .collect(),
    }
}

fn switched(f: &mut Feed, t: i64) {
    f.m.actions.switched = Some((
        at(t),
        SwitchRecord {
            object: "configmap/app-db".into(),
            key: "DATABASE_URL".into(),
            previous_fingerprint: Some("aa".into()),
            new_fingerprint: "bb".into(),
            changed: true,
        },
    ));
}

fn users(f: &mut Feed, t: i64, users: Vec<ConfigUser>) {
    f.send(
        t,
        EventKind::ConfigUsers {
            home: "shop".into(),
            users,
        },
    );
}

#[test]
fn a_pod_from_before_the_switch_or_an_unswitched_namespace_fails_it() {
    let mut f = Feed::with(searched());
    let g = on_new_config(&f.m).unwrap();
    assert_eq!(
        (g.passes(), g.detail()),
        (false, "nothing switched yet (S)".to_string())
    );
    switched(&mut f, 100);
    assert_eq!(on_new_config(&f.m).unwrap().detail(), "not searched yet");
    // The listed Deployment restarted; a Job nobody listed still runs
    // with the old value, and a CronJob (no pods) reads it at its next run.
    users(
        &mut f,
        110,
        vec![
            user("deployment", "shop", "app", &[105, 106]),
            user("job", "shop", "report", &[50]),
            user("cronjob", "shop", "nightly", &[]),
        ],
    );
    let g = on_new_config(&f.m).unwrap();
    assert!(!g.passes());
    assert_eq!(
        g.detail(),
        "job/report: 1 pod from before the switch (report-0) — restart it"
    );
    // The Job ended; a same-named ConfigMap's user in another namespace is
    // not switched by this switch.
    users(
        &mut f,
        112,
        vec![
            user("deployment", "shop", "app", &[105, 106]),
            user("statefulset", "batch", "ledger", &[111]),
        ],
    );
    assert_eq!(
        on_new_config(&f.m).unwrap().detail(),
        "statefulset/ledger in batch uses configmap/app-db in batch, which the switch does not change"
    );
    users(
        &mut f,
        113,
        vec![
            user("deployment", "shop", "app", &[105, 106]),
            user("cronjob", "shop", "nightly", &[]),
        ],
    );
    let g = on_new_config(&f.m).unwrap();
    assert!(g.passes(), "{}", g.detail());
    assert_eq!(
        g.detail(),
        "2 workloads using configmap/app-db, every pod started after the switch"
    );
    // An old answer does not pass, nor a failing search.
    f.send(160, EventKind::Tick);
    assert_eq!(
        on_new_config(&f.m).unwrap().detail(),
        "last searched 47 s ago"
    );
    users(&mut f, 161, vec![user("deployment", "shop", "app", &[105])]);
    assert!(on_new_config(&f.m).unwrap().passes());
    f.send(
        162,
        EventKind::ConfigUsersFailed {
            error: "listing jobs in shop: forbidden".into(),
        },
    );
    let g = on_new_config(&f.m).unwrap();
    assert!(!g.passes());
    assert!(g.detail().contains("forbidden"), "{}", g.detail());
}

#[test]
fn a_pod_started_in_the_second_of_the_switch_is_after_it() {
    // The API gives a pod's start in whole seconds.
    let mut f = Feed::with(searched());
    switched(&mut f, 100);
    users(&mut f, 101, vec![user("deployment", "shop", "app", &[100])]);
    assert!(on_new_config(&f.m).unwrap().passes());
}

#[test]
fn the_restart_moves_every_workload_found_in_the_config_namespace() {
    use crate::runbook::{self, CheckpointId, Step};
    let mut f = Feed::with(searched());
    users(
        &mut f,
        10,
        vec![
            user("deployment", "shop", "app", &[1]),
            user("deployment", "shop", "api", &[1]),
            user("statefulset", "shop", "ledger", &[1]),
            user("statefulset", "batch", "elsewhere", &[1]),
            user("cronjob", "shop", "nightly", &[]),
        ],
    );
    let plan = runbook::plan(&f.m, CheckpointId::RolloutRestart).unwrap();
    let titles: Vec<String> = plan.steps.iter().map(Step::title).collect();
    assert_eq!(
        titles,
        [
            "restart deployment/app",
            "restart deployment/api",
            "restart statefulset/ledger",
            "rollout of app",
            "rollout of api",
            "rollout of statefulset/ledger",
        ]
    );
    // A log from before the search: the configured list alone.
    let mut old = Feed::with(kube_info(false));
    users(&mut old, 10, vec![user("deployment", "shop", "api", &[1])]);
    let plan = runbook::plan(&old.m, CheckpointId::RolloutRestart).unwrap();
    assert_eq!(plan.steps.len(), 2);
}

#[test]
fn under_gitops_the_switch_is_when_the_change_was_seen_not_after_its_rollout() {
    use crate::runbook::{CheckpointId, Step};
    let mut f = Feed::with(searched());
    let steps = vec![
        Step::AwaitConfig {
            namespace: "shop".into(),
            object: "configmap/app-db".into(),
            key: "DATABASE_URL".into(),
            want: Some("bb".into()),
            was: Some("aa".into()),
            value_from: None,
            timeout_s: 900,
            undo: false,
            to: crate::runbook::plan::SwitchTo::Target,
        },
        Step::WaitRollout {
            namespace: "shop".into(),
            deployment: "app".into(),
            timeout_s: 900,
        },
    ];
    let record = SwitchRecord {
        object: "configmap/app-db".into(),
        key: "DATABASE_URL".into(),
        previous_fingerprint: Some("aa".into()),
        new_fingerprint: "bb".into(),
        changed: true,
    };
    // The run (wait, then the rollout the change caused) ends at 101; the
    // rollout's pods started at 100.
    super::update::tests::ran(
        &mut f,
        100,
        CheckpointId::SwitchConfig,
        steps,
        true,
        "done",
        Some(record),
    );
    users(
        &mut f,
        102,
        vec![user("deployment", "shop", "app", &[100, 100])],
    );
    let g = on_new_config(&f.m).unwrap();
    assert!(g.passes(), "{}", g.detail());
    // A pod from well before the change is still caught.
    users(
        &mut f,
        103,
        vec![user("deployment", "shop", "app", &[90, 100])],
    );
    assert!(!on_new_config(&f.m).unwrap().passes());
}
