//! The checkpoint runs folded from events: guards, plans, overrides, the
//! executor's record and the PREPARE checkpoints on crafted session states.
use super::super::update::tests::{at, info, source, target, Feed};
use super::*;
use crate::kube::WorkloadSnapshot;
use crate::runbook::{Confirm, Verdict};
use crate::session::{EventKind, KubeInfo, SessionInfo, Side};

const FREEZE: &str = "Writes frozen on the source";
const AFTER: &str = "Target caught up after the freeze";
const FINAL: &str = "Final check in the window";
const VERIFIED: &str = "Verified while live";
const SEQUENCES: &str = "Sequences advanced";

pub(in crate::model) fn kube_info(read_only: bool) -> SessionInfo {
    SessionInfo {
        kubernetes: Some(KubeInfo {
            context: "lab".into(),
            namespace: "shop".into(),
            deployments: vec!["app".into()],
            config_object: Some("configmap/app-db".into()),
            config_key: Some("DATABASE_URL".into()),
            switch_to: Some("/run/new-url".into()),
            changes: crate::config::Changes::Patch,
            gitops_wait_secs: 600,
            read_only_freeze: None,
        }),
        read_only,
        ..info()
    }
}

fn workload() -> WorkloadSnapshot {
    // Through serde, so fields added later with defaults need no edit here.
    serde_json::from_value(serde_json::json!({
        "namespace": "shop", "deployment": "app", "found": true,
        "generation": 1, "observed_generation": 1,
        "desired": 3, "updated": 3, "ready": 3, "available": 3, "unavailable": 0,
        "state": "Complete", "conditions": [], "replicasets": [], "pods": [],
        "pods_by_db_config": {}
    }))
    .unwrap()
}

fn allowed(verb: &str, what: &str, ok: bool) -> AccessResult {
    AccessResult {
        describe: format!("{verb} {what} in shop"),
        verb: verb.into(),
        allowed: ok,
        reason: (!ok).then(|| "RBAC: denied".into()),
    }
}

fn values() -> SwitchValue {
    SwitchValue {
        new_fingerprint: Some("new1".into()),
        current_fingerprint: Some("old1".into()),
        error: None,
        ..Default::default()
    }
}

/// An access review answered at `t` with one check.
fn reviewed(f: &mut Feed, t: i64, check: AccessResult, value: Option<SwitchValue>) {
    f.send(
        t,
        EventKind::KubePreflightDone {
            checks: vec![check],
            switch_value: value,
            error: None,
        },
    );
}

/// A session where every guard but the (not yet built) freeze passes.
fn ready() -> Feed {
    let mut f = Feed::with(kube_info(false));
    f.send(1, EventKind::WorkloadSampled(workload()));
    f.live(1, 10);
    f.send(
        1,
        EventKind::KubePreflightDone {
            checks: vec![
                allowed("get", "configmaps/app-db", true),
                allowed("patch", "configmaps/app-db", true),
                allowed("patch", "deployments.apps/app", true),
            ],
            switch_value: Some(values()),
            error: None,
        },
    );
    f
}

fn type_text(f: &mut Feed, t: i64, text: &str) {
    for c in text.chars() {
        assert_eq!(f.key(t, &c.to_string()), vec![]);
    }
}

fn failing(f: &Feed, id: CheckpointId) -> Vec<(String, String)> {
    runbook::guards(&f.m, id)
        .into_iter()
        .filter(|g| !g.passes())
        .map(|g| (g.label.clone(), g.detail()))
        .collect()
}

pub(in crate::model) fn switched(f: &mut Feed, t: i64) {
    f.m.actions.switched = Some((
        at(t),
        SwitchRecord {
            object: "configmap/app-db".into(),
            key: "DATABASE_URL".into(),
            previous_fingerprint: Some("old1".into()),
            new_fingerprint: "new1".into(),
            changed: true,
        },
    ));
}

#[test]
fn session_start_asks_for_access_unless_read_only() {
    let mut f = Feed::with(kube_info(false));
    assert!(f.m.actions.preflight_running);
    let mut ro = Feed::with(kube_info(true));
    assert!(!ro.m.actions.preflight_running);
    assert_eq!(ro.key(1, "S"), vec![]);
    assert_eq!(ro.m.dialog, None, "read-only binds no action key");
    // No [kubernetes]: the keys do nothing either.
    let mut plain = Feed::new();
    assert_eq!(plain.key(1, "R"), vec![]);
    assert_eq!(plain.m.dialog, None);
    assert_eq!(f.key(1, "S"), vec![], "one review at a time");
}

#[test]
fn the_switch_is_blocked_until_the_freeze_exists_and_an_override_needs_a_reason() {
    let mut f = ready();
    assert_eq!(f.key(2, "S"), vec![Effect::KubePreflight]);
    let plan = runbook::plan(&f.m, CheckpointId::SwitchConfig).unwrap();
    assert_eq!(plan.confirm, Confirm::TypeName("app-db".into()));
    assert_eq!(
        plan.steps,
        vec![Step::PatchConfig {
            namespace: "shop".into(),
            object: "configmap/app-db".into(),
            key: "DATABASE_URL".into(),
            new_fingerprint: Some("new1".into()),
            expect_current: Some("old1".into()),
            to: crate::runbook::plan::SwitchTo::Target,
        }]
    );
    assert!(plan.steps[0].lines()[1].contains("<sha256:new1>"));
    // Every guard passes but the verification (never run here) and the
    // one the runbook cannot prove yet.
    assert_eq!(
        failing(&f, CheckpointId::SwitchConfig)
            .into_iter()
            .map(|(l, _)| l)
            .collect::<Vec<_>>(),
        vec![
            VERIFIED.to_string(),
            SEQUENCES.to_string(),
            FREEZE.to_string(),
            AFTER.to_string(),
            FINAL.to_string()
        ]
    );
    type_text(&mut f, 2, "app-db");
    assert_eq!(f.key(2, "Enter"), vec![], "a failing guard: nothing runs");
    f.key(2, "Tab");
    type_text(&mut f, 2, "too short");
    assert_eq!(f.key(2, "Enter"), vec![], "a reason under 10 characters");
    type_text(&mut f, 2, " -- rehearsal on the lab");
    let effects = f.key(3, "Enter");
    let id = f.m.next_run;
    assert_eq!(
        effects,
        vec![Effect::RunPlan {
            id,
            plan: plan.clone(),
            overridden: vec![
                VERIFIED.to_string(),
                SEQUENCES.to_string(),
                FREEZE.to_string(),
                AFTER.to_string(),
                FINAL.to_string()
            ],
        }],
        "the plan run is the plan shown"
    );
    let run = f.m.actions.running().unwrap();
    assert_eq!(run.plan, plan);
    let (labels, reason) = run.overridden.clone().unwrap();
    assert_eq!(
        labels,
        vec![
            VERIFIED.to_string(),
            SEQUENCES.to_string(),
            FREEZE.to_string(),
            AFTER.to_string(),
            FINAL.to_string()
        ]
    );
    assert_eq!(reason, "too short -- rehearsal on the lab");
    assert_eq!(f.m.dialog, None);
    // The executor's re-check leaves the overridden guard out.
    assert_eq!(recheck(&f.m, CheckpointId::SwitchConfig, &labels), vec![]);
    assert!(f.m.action_running(), "quitting now asks first");
    assert!(
        !failing(&f, CheckpointId::RolloutRestart).is_empty(),
        "one at a time"
    );
}

#[test]
fn the_steps_recorded_are_the_steps_of_the_plan() {
    let mut f = ready();
    f.key(2, "R");
    type_text(&mut f, 2, "app");
    let effects = f.key(2, "Enter");
    let Some(Effect::RunPlan { id, plan, .. }) = effects.first().cloned() else {
        panic!("{effects:?}")
    };
    assert_eq!(plan.steps.len(), 2, "restart, then wait for the rollout");
    for (index, step) in plan.steps.iter().enumerate() {
        f.send(
            3,
            EventKind::StepStarted {
                id,
                index,
                step: step.clone(),
            },
        );
        f.send(
            4,
            EventKind::StepDone {
                id,
                index,
                message: "ok".into(),
                elapsed_ms: 1.0,
            },
        );
    }
    f.send(
        5,
        EventKind::RunFinished {
            id,
            ok: true,
            message: "done".into(),
            switched: None,
        },
    );
    let run = &f.m.actions.history[0];
    let ran: Vec<Step> = run.steps.iter().map(|s| s.step.clone()).collect();
    assert_eq!(ran, run.plan.steps);
    assert!(run
        .steps
        .iter()
        .all(|s| matches!(s.finished, Some((_, Ok(_))))));
}

#[test]
fn failing_guards_name_their_reason() {
    let mut f = ready();
    // Lag over the bound (100 B in the test session).
    f.send(3, EventKind::SourceSampled(source(Some(5000))));
    let lag = failing(&f, CheckpointId::SwitchConfig);
    assert!(
        lag.contains(&(
            "Replication caught up".to_string(),
            "lag 4.9 KiB (bound 100 B)".to_string()
        )),
        "{lag:?}"
    );
    let mut d = ready();
    reviewed(
        &mut d,
        2,
        allowed("patch", "configmaps/app-db", false),
        None,
    );
    let access = failing(&d, CheckpointId::SwitchConfig);
    assert!(
        access.contains(&(
            "Access review".to_string(),
            "not allowed: patch configmaps/app-db in shop (RBAC: denied)".to_string()
        )),
        "{access:?}"
    );
    let back = failing(&d, CheckpointId::Rollback);
    assert!(back.contains(&(
        "Something to undo".to_string(),
        "not frozen, and no switch that changed the config".to_string()
    )));
}

#[test]
fn a_stale_target_fails_the_switch_even_with_the_source_caught_up() {
    let mut f = ready();
    // The source keeps answering (lag 10 B, under the bound); the target
    // went quiet at t=1 and the stale limit is 3 s.
    f.send(5, EventKind::SourceSampled(source(Some(10))));
    f.send(5, EventKind::KubeAlive);
    reviewed(
        &mut f,
        5,
        allowed("patch", "configmaps/app-db", true),
        Some(values()),
    );
    let g = runbook::guards(&f.m, CheckpointId::SwitchConfig);
    let caught = g
        .iter()
        .find(|g| g.label == "Replication caught up")
        .unwrap();
    assert_eq!(
        caught.verdict,
        Verdict::Stale {
            since: at(1),
            reason: "target data: no answer for over 3 s".into()
        }
    );
    // A failure the collector reported is named too.
    f.send(
        6,
        EventKind::CollectorFailed {
            side: crate::session::Side::Target,
            error: "127.0.0.1:5433: no answer within 12 s".into(),
        },
    );
    let g = runbook::guards(&f.m, CheckpointId::SwitchConfig);
    let caught = g
        .iter()
        .find(|g| g.label == "Replication caught up")
        .unwrap();
    assert_eq!(
        caught.detail(),
        format!(
            "stale since {}: target data: 127.0.0.1:5433: no answer within 12 s",
            at(1).format("%H:%M:%S")
        )
    );
}

#[test]
fn a_quiet_kubernetes_api_and_an_old_access_review_do_not_pass() {
    let mut f = ready();
    // Databases fresh at t=5; the API server last answered at t=1.
    f.send(5, EventKind::SourceSampled(source(Some(10))));
    f.send(5, EventKind::TargetSampled(target()));
    let old = at(1).format("%H:%M:%S").to_string();
    assert_eq!(
        failing(&f, CheckpointId::RolloutRestart),
        vec![
            (
                "Kubernetes watch live".to_string(),
                format!("stale since {old}: no answer from the Kubernetes API for over 3 s")
            ),
            (
                "Access review".to_string(),
                format!("stale since {old}: answer 4 s old (limit 3 s)")
            ),
        ]
    );
    // The probe answering again makes the watch live; the review stays old.
    f.send(6, EventKind::KubeAlive);
    let labels: Vec<String> = failing(&f, CheckpointId::RolloutRestart)
        .into_iter()
        .map(|(l, _)| l)
        .collect();
    assert_eq!(labels, vec!["Access review".to_string()]);
}

#[test]
fn an_open_dialog_keeps_its_access_review_fresh() {
    let mut f = ready();
    assert_eq!(f.key(1, "R"), vec![Effect::KubePreflight]);
    reviewed(
        &mut f,
        1,
        allowed("patch", "deployments.apps/app", true),
        None,
    );
    assert_eq!(f.send(2, EventKind::Tick), vec![], "1 s old: fresh enough");
    assert_eq!(f.send(3, EventKind::Tick), vec![Effect::KubePreflight]);
    assert_eq!(f.send(4, EventKind::Tick), vec![], "one review at a time");
    f.key(4, "Esc");
    f.send(
        4,
        EventKind::KubePreflightDone {
            checks: vec![],
            switch_value: None,
            error: None,
        },
    );
    assert_eq!(f.send(9, EventKind::Tick), vec![], "no dialog, no review");
}

#[test]
fn restart_and_rollback_need_the_database_the_pods_will_use() {
    let mut f = ready();
    f.send(5, EventKind::TargetSampled(target()));
    f.send(5, EventKind::KubeAlive);
    reviewed(
        &mut f,
        5,
        allowed("patch", "deployments.apps/app", true),
        None,
    );
    // Not switched: restarted pods go to the source, stale since t=1.
    let src = format!(
        "stale since {}: source data: no answer for over 3 s",
        at(1).format("%H:%M:%S")
    );
    assert_eq!(
        failing(&f, CheckpointId::RolloutRestart),
        vec![("Source live".to_string(), src.clone())]
    );
    // Switched: they go to the target, which answers.
    switched(&mut f, 4);
    assert_eq!(failing(&f, CheckpointId::RolloutRestart), vec![]);
    // Going back needs the source (and, switched here without a target
    // sample at the time, cannot count what it would strand).
    assert_eq!(
        failing(&f, CheckpointId::Rollback),
        vec![
            ("Source live".to_string(), src),
            (
                "No writes left only on the target".to_string(),
                "the target's writes since the switch are unknown".to_string()
            )
        ]
    );
    // Its plan restores the old value by fingerprint, then restarts.
    let plan = runbook::plan(&f.m, CheckpointId::Rollback).unwrap();
    assert_eq!(
        plan.steps[0],
        Step::RestoreConfig {
            namespace: "shop".into(),
            object: "configmap/app-db".into(),
            key: "DATABASE_URL".into(),
            restore: Some("old1".into()),
            expect_current: "new1".into(),
            unfreezes: false,
        }
    );
    assert_eq!(plan.steps.len(), 3);
}

#[test]
fn the_executor_recheck_ignores_its_own_run_and_x_cancels_it() {
    let mut f = ready();
    f.key(2, "R");
    type_text(&mut f, 2, "app");
    let effects = f.key(2, "Enter");
    let id = f.m.next_run;
    assert!(matches!(effects[..], [Effect::RunPlan { id: i, .. }] if i == id));
    assert_eq!(recheck(&f.m, CheckpointId::RolloutRestart, &[]), vec![]);
    // Data goes stale while it runs: the re-check says so.
    f.send(6, EventKind::Tick);
    let labels: Vec<String> = recheck(&f.m, CheckpointId::RolloutRestart, &[])
        .into_iter()
        .map(|g| g.label)
        .collect();
    assert!(labels.contains(&"Source live".to_string()), "{labels:?}");
    assert_eq!(f.key(6, "x"), vec![Effect::CancelRun { id }]);
}

#[test]
fn a_no_op_rerun_keeps_what_to_go_back_to() {
    let mut f = ready();
    let rec = |prev: &str, changed| SwitchRecord {
        object: "configmap/app-db".into(),
        key: "DATABASE_URL".into(),
        previous_fingerprint: Some(prev.into()),
        new_fingerprint: "new1".into(),
        changed,
    };
    let plan = runbook::plan(&f.m, CheckpointId::SwitchConfig).unwrap();
    f.m.actions.history.push(CheckpointRun {
        id: 7,
        checkpoint: CheckpointId::SwitchConfig,
        plan,
        overridden: None,
        auto: None,
        started_at: f.m.now.unwrap(),
        steps: vec![],
        checks: vec![],
        sequences: vec![],
        copy: None,
        job_log: Default::default(),
        legacy_steps: vec![],
        finished: None,
    });
    let now = f.m.now.unwrap();
    on_finished(&mut f.m, 7, now, true, "", Some(&rec("old1", true)));
    on_finished(&mut f.m, 7, now, true, "", Some(&rec("new1", false)));
    let (_, kept) = f.m.actions.switched.as_ref().unwrap();
    assert_eq!(kept.previous_fingerprint.as_deref(), Some("old1"));
}

/// The PREPARE checkpoints need no Kubernetes side, and nothing in read-only.
#[test]
fn prepare_checkpoints_read_the_samples_and_say_when_already_done() {
    use crate::session::sample::{PublicationRow, SubTableRow, TableEstimate};
    let mut f = Feed::new();
    let mut src = source(Some(10));
    src.tables.push(TableEstimate {
        table: crate::session::sample::TableRef::new("public", "no_key"),
        estimated_rows: 1,
        size_bytes: 8192,
        has_primary_key: false,
        replica_identity: "d".into(),
        partitions: 0,
        partitions_without_identity: vec![],
    });
    f.send(1, EventKind::SourceSampled(src.clone()));
    f.send(1, EventKind::TargetSampled(target()));
    assert_eq!(f.key(1, "P"), vec![], "opens without an access review");
    assert_eq!(f.m.dialog, Some(CheckpointId::CreatePublication));
    let g = failing(&f, CheckpointId::CreatePublication);
    assert_eq!(
        g,
        vec![(
            "Every table has a key or a replica identity".to_string(),
            "public.no_key without: add a primary key, or leave the table out of \
             [tables], or ALTER TABLE public.no_key REPLICA IDENTITY FULL;"
                .to_string()
        )]
    );
    let plan = runbook::plan(&f.m, CheckpointId::CreatePublication).unwrap();
    assert_eq!(plan.confirm, Confirm::Yes);
    assert_eq!(
        plan.steps,
        vec![Step::Sql {
            side: crate::session::Side::Source,
            sql: r#"CREATE PUBLICATION "p" FOR TABLE "public"."t", "public"."no_key""#.into(),
            lock_timeout_ms: 5_000,
            statement_timeout_ms: 30_000,
        }]
    );
    // The subscription needs the publication and the tables on the target.
    let sub = failing(&f, CheckpointId::CreateSubscription);
    assert_eq!(sub[0].0, "Publication exists");
    assert!(sub[1].1.starts_with("2 missing on the target"), "{sub:?}");
    // The copy of the schema: both tables are missing on the target.
    let copy = runbook::plan(&f.m, CheckpointId::CopySchema).unwrap();
    assert_eq!(copy.steps, vec![Step::CopySchema { tables_missing: 2 }]);

    // Published and copied: P and D have nothing left to do, and say so.
    src.publications.push(PublicationRow {
        name: "p".into(),
        all_tables: false,
        tables: 2,
        via_root: false,
    });
    let mut tgt = target();
    tgt.tables = src.tables.clone();
    f.send(2, EventKind::SourceSampled(src));
    f.send(2, EventKind::TargetSampled(tgt.clone()));
    let again = runbook::plan(&f.m, CheckpointId::CreatePublication).unwrap();
    assert!(again.steps.is_empty());
    assert_eq!(
        again.notes,
        vec!["already done: publication p exists".to_string()]
    );
    assert!(runbook::plan(&f.m, CheckpointId::CopySchema)
        .unwrap()
        .steps
        .is_empty());
    let sub = runbook::plan(&f.m, CheckpointId::CreateSubscription).unwrap();
    assert_eq!(
        sub.steps,
        vec![Step::CreateSubscription {
            name: "s".into(),
            publication: "p".into(),
            source: "old@h:5432/db".into(),
            on: Side::Target,
            copy_data: true,
            enabled: true,
        }]
    );
    assert!(sub.steps[0].lines()[1].contains("password not shown"));
    // The initial sync: one table still copying.
    tgt.sub_tables = vec![
        SubTableRow {
            subscription: "s".into(),
            table: crate::session::sample::TableRef::new("public", "t"),
            state: "r".into(),
            lsn: None,
        },
        SubTableRow {
            subscription: "s".into(),
            table: crate::session::sample::TableRef::new("public", "no_key"),
            state: "d".into(),
            lsn: None,
        },
    ];
    f.send(3, EventKind::TargetSampled(tgt));
    let wait = runbook::plan(&f.m, CheckpointId::WaitInitialSync).unwrap();
    assert_eq!(wait.notes, vec!["1 of 2 tables not ready yet".to_string()]);
    assert_eq!(wait.steps.len(), 1);

    let mut ro = Feed::with(SessionInfo {
        read_only: true,
        ..info()
    });
    assert_eq!(ro.key(1, "P"), vec![]);
    assert_eq!(ro.m.dialog, None, "read-only binds no PREPARE key");
}

/// Source and target with table t, the subscription's one table in `state`.
fn synced(f: &mut Feed, t: i64, state: &str) {
    use crate::session::sample::{SubTableRow, TableRef};
    let mut tgt = target();
    tgt.tables = source(None).tables;
    tgt.sub_tables = vec![SubTableRow {
        subscription: "s".into(),
        table: TableRef::new("public", "t"),
        state: state.into(),
        lsn: None,
    }];
    f.send(t, EventKind::SourceSampled(source(Some(0))));
    f.send(t, EventKind::TargetSampled(tgt));
}

fn live(run: u64, pending: u64, mismatched: u64) -> EventKind {
    // Through serde, as the log delivers it.
    let progress = serde_json::from_value(serde_json::json!({
        "table": {"schema": "public", "name": "t"},
        "pass": 1, "method": "primary_key",
        "ranges_total": 4, "ranges_verified": 4 - pending - mismatched,
        "ranges_pending": pending, "ranges_mismatched": mismatched,
        "rows_total": 10, "rows_verified": 10,
        "rows_per_sec": 100.0, "eta_secs": null, "differences": []
    }))
    .unwrap();
    EventKind::VerifyLive { run, progress }
}

#[test]
fn verify_live_waits_for_the_sync_runs_the_plans_tables_and_ends_when_all_verified() {
    use crate::session::sample::TableRef;
    let mut f = Feed::new();
    synced(&mut f, 1, "d");
    let g = failing(&f, CheckpointId::VerifyLive);
    assert_eq!(
        g,
        vec![(
            "Initial sync complete".to_string(),
            "1 of 1 tables not ready: a table still copying cannot be compared (W waits for it)"
                .to_string()
        )]
    );
    synced(&mut f, 2, "r");
    assert!(failing(&f, CheckpointId::VerifyLive).is_empty());
    let plan = runbook::plan(&f.m, CheckpointId::VerifyLive).unwrap();
    let tables = vec![TableRef::new("public", "t")];
    assert_eq!(
        plan.steps,
        vec![Step::VerifyLive {
            tables: tables.clone()
        }]
    );
    assert_eq!(f.key(3, "V"), vec![]);
    let effects = f.key(3, "Enter");
    let run = f.m.verify_run.as_ref().unwrap().id;
    assert_eq!(
        effects,
        vec![Effect::StartContinuousVerify { run, tables }],
        "the verification started is the plan's step"
    );
    let cp = f.m.actions.running().expect("the checkpoint runs");
    assert_eq!(cp.steps.len(), 1, "its one step started");
    assert_eq!(
        guard::verified_live(&f.m).detail(),
        "first pass running: 0 of 1 tables verified"
    );
    // A range still pending: not yet.
    f.send(4, live(run, 1, 0));
    assert!(f.m.actions.running().is_some());
    f.send(5, live(run, 0, 0));
    let cp = f.m.actions.history.last().unwrap();
    let (_, ok, message) = cp.finished.clone().expect("done once all are verified");
    assert!(ok, "{message}");
    assert_eq!(
        message,
        "every table verified once: 1 tables, 10 rows equal; verification goes on"
    );
    assert!(f.m.verify_running(), "it goes on verifying");
    let g = guard::verified_live(&f.m);
    assert!(g.passes(), "{}", g.detail());
    // A confirmed difference later fails the guard the switch reads.
    f.send(9, live(run, 0, 1));
    let g = guard::verified_live(&f.m);
    assert_eq!(g.detail(), "rows differ: public.t: 1 range differs");
    assert!(runbook::guards(&f.m, CheckpointId::SwitchConfig)
        .iter()
        .any(|g| g.label == "Verified while live" && !g.passes()));
}

/// How the latest run ended: ok, and its message.
fn last_end(f: &Feed) -> (bool, String) {
    let (_, ok, message) =
        f.m.actions
            .history
            .last()
            .unwrap()
            .finished
            .clone()
            .unwrap();
    (ok, message)
}

#[test]
fn verify_live_fails_on_a_difference_or_when_stopped_short() {
    let mut f = Feed::new();
    synced(&mut f, 1, "r");
    f.key(2, "V");
    f.key(2, "Enter");
    let run = f.m.verify_run.as_ref().unwrap().id;
    f.send(3, live(run, 0, 2));
    let (ok, message) = last_end(&f);
    assert!(!ok);
    assert_eq!(
        message,
        "step 1 (verify while live): rows differ: public.t: 2 ranges differ"
    );

    let mut f = Feed::new();
    synced(&mut f, 1, "r");
    f.key(2, "V");
    f.key(2, "Enter");
    let run = f.m.verify_run.as_ref().unwrap().id;
    let effects = f.key(3, "x");
    assert!(
        effects.contains(&Effect::CancelVerify { run }),
        "{effects:?}"
    );
    f.send(
        4,
        EventKind::VerifyFinished {
            run,
            cancelled: true,
            error: None,
        },
    );
    let (ok, message) = last_end(&f);
    assert!(!ok);
    assert_eq!(
        message,
        "step 1 (verify while live): the verification ended (cancelled) with 0 of 1 tables verified"
    );
    assert!(!guard::verified_live(&f.m).passes());
}

// Resuming a session: what the log left unfinished is closed.
fn resumed(read_only: bool) -> EventKind {
    EventKind::SessionResumed {
        previous_last_seq: 9,
        previous_last_at: at(5),
        cut_bytes: 0,
        tool_version: "t".into(),
        read_only,
    }
}

/// A restart confirmed with an override (its guards cannot all pass on
/// this bare session): the run's id.
fn restart(f: &mut Feed) -> u64 {
    f.send(
        1,
        EventKind::KubePreflightDone {
            checks: vec![],
            switch_value: None,
            error: None,
        },
    );
    f.key(1, "R");
    type_text(f, 1, "app");
    f.key(1, "Tab");
    type_text(f, 1, "lab rehearsal");
    match f.key(1, "Enter").as_slice() {
        [Effect::RunPlan { id, .. }] => *id,
        other => panic!("the restart did not start: {other:?}"),
    }
}

fn started(f: &mut Feed, id: u64, index: usize) {
    let step = f.m.actions.history[0].plan.steps[index].clone();
    f.send(2, EventKind::StepStarted { id, index, step });
}

#[test]
fn a_run_the_log_left_open_is_closed_naming_the_step_in_flight() {
    let mut f = Feed::with(kube_info(false));
    let id = restart(&mut f);
    started(&mut f, id, 0);
    f.send(
        3,
        EventKind::StepDone {
            id,
            index: 0,
            message: "restarted".into(),
            elapsed_ms: 1.0,
        },
    );
    started(&mut f, id, 1);
    f.key(4, "S");
    assert!(f.m.dialog.is_some());
    assert!(f.m.actions.preflight_running);

    let effects = f.send(10, resumed(false));
    let run = &f.m.actions.history[0];
    assert_eq!(
        run.finished,
        Some((
            at(10),
            false,
            "the session ended while step 2 (rollout of app) was in flight; whether it \
             completed is unknown — check before going on"
                .to_string()
        ))
    );
    assert_eq!(
        run.steps[1].finished,
        Some((
            at(10),
            Err("the session ended while it was in flight: outcome unknown".to_string())
        ))
    );
    assert!(matches!(run.steps[0].finished, Some((_, Ok(_)))));
    assert_eq!(f.m.actions.running(), None);
    assert_eq!(f.m.dialog, None, "no confirmation survives the process");
    assert_eq!(
        effects,
        vec![Effect::KubePreflight],
        "the access review is asked again"
    );
}

#[test]
fn a_run_with_no_step_logged_may_still_have_started_one() {
    let mut f = Feed::with(kube_info(false));
    restart(&mut f);
    f.send(10, resumed(false));
    let (_, ok, message) = f.m.actions.history[0].finished.clone().unwrap();
    assert!(!ok);
    assert_eq!(
        message,
        "the session ended before step 1 (restart deployment/app) was recorded as \
         started; whether it ran is unknown — check before going on"
    );
}

#[test]
fn counts_end_with_the_process_and_the_session_goes_on() {
    let mut f = Feed::new();
    f.live(1, 10);
    f.key(1, "c");
    assert!(f.m.count_running());
    let switched = f.m.actions.switched.clone();
    f.send(
        2,
        EventKind::SessionEnded {
            reason: "SIGHUP".into(),
        },
    );
    assert_eq!(f.send(10, resumed(true)), vec![]);
    assert!(!f.m.count_running());
    assert!(f.m.count_run.as_ref().unwrap().cancelled);
    assert_eq!(f.m.ended, None);
    assert!(f.m.read_only(), "the resumed console's own --read-only");
    assert_eq!(f.m.actions.switched, switched);
}

#[test]
fn sequences_plan_is_run_as_shown_and_its_values_are_kept() {
    use crate::session::SequenceValue;
    let mut f = Feed::new();
    synced(&mut f, 1, "r");
    // No subscription seen: guarded.
    assert_eq!(
        failing(&f, CheckpointId::AdvanceSequences),
        vec![(
            "Subscription exists".to_string(),
            "create it first (U): the target's sequences come with its schema".to_string()
        )]
    );
    let mut tgt = f.m.target.last.clone().unwrap();
    tgt.subscriptions = vec![serde_json::from_value(serde_json::json!({
        "name": "s", "enabled": true, "slot_name": "s", "publications": ["p"],
        "worker_pid": 1, "received_lsn": null, "latest_end_lsn": null, "last_msg_age_s": 0.1
    }))
    .unwrap()];
    f.send(2, EventKind::TargetSampled(tgt));
    let plan = runbook::plan(&f.m, CheckpointId::AdvanceSequences).unwrap();
    assert_eq!(
        plan.steps,
        vec![Step::AdvanceSequences {
            schemas: vec!["public".into()],
            stride: 0,
            to: Side::Target,
        }]
    );
    assert!(plan.steps[0].lines()[1].contains("<source last_value> + 0"));
    f.key(3, "A");
    let effects = f.key(3, "Enter");
    let id = f.m.next_run;
    assert_eq!(
        effects,
        vec![Effect::RunPlan {
            id,
            plan,
            overridden: vec![]
        }]
    );
    let v = SequenceValue {
        name: "public.t_id_seq".into(),
        source: Some(10),
        target_before: None,
        set_to: Some(10),
    };
    f.send(
        4,
        EventKind::SequencesAdvanced {
            id,
            sequences: vec![v.clone()],
        },
    );
    assert_eq!(f.m.actions.running().unwrap().sequences, vec![v]);
}

#[test]
fn app_on_target_waits_for_the_switch_then_a_restart_after_it() {
    let mut f = ready();
    let labels = |f: &Feed| {
        failing(f, CheckpointId::AppOnTarget)
            .into_iter()
            .map(|(l, d)| format!("{l}: {d}"))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        labels(&f),
        vec![
            "Config switched: not yet (S)",
            "Workloads restarted after the switch: not yet (R)"
        ]
    );
    // A restart before the switch does not count.
    let plan = runbook::plan(&f.m, CheckpointId::RolloutRestart).unwrap();
    f.m.actions.history.push(CheckpointRun {
        id: 90,
        checkpoint: CheckpointId::RolloutRestart,
        plan,
        overridden: None,
        auto: None,
        started_at: at(1),
        steps: vec![],
        checks: vec![],
        sequences: vec![],
        copy: None,
        job_log: Default::default(),
        legacy_steps: vec![],
        finished: Some((at(2), true, "rollout of app complete".into())),
    });
    switched(&mut f, 3);
    assert_eq!(
        labels(&f),
        vec!["Workloads restarted after the switch: the last restart was before the switch (R)"]
    );
    let mut again = f.m.actions.history.last().unwrap().clone();
    again.id = 91;
    again.finished = Some((at(5), true, "rollout of app complete".into()));
    f.m.actions.history.push(again);
    assert!(labels(&f).is_empty(), "{:?}", labels(&f));
    let plan = runbook::plan(&f.m, CheckpointId::AppOnTarget).unwrap();
    assert_eq!(
        plan.steps,
        vec![Step::ObserveApp {
            seconds: 10,
            reverse: false
        }]
    );
    // Without a Kubernetes side the switch happened elsewhere: only the
    // sides must answer.
    let mut plain = Feed::new();
    plain.live(1, 10);
    assert!(failing(&plain, CheckpointId::AppOnTarget).is_empty());
}

#[test]
fn the_freeze_is_planned_folded_and_undone_by_the_rollback() {
    use crate::session::Grant;
    let mut f = Feed::with(SessionInfo {
        app_roles: vec!["app".into()],
        ..info()
    });
    f.live(1, 0);
    // Named roles, but not verified live yet: guarded.
    let fail: Vec<String> = failing(&f, CheckpointId::FreezeWrites)
        .into_iter()
        .map(|(l, _)| l)
        .collect();
    assert_eq!(fail, vec!["Verified while live"]);
    let plan = runbook::plan(&f.m, CheckpointId::FreezeWrites).unwrap();
    assert_eq!(
        plan.steps,
        vec![Step::FreezeWrites {
            roles: vec!["app".into()],
            tables: vec!["\"public\".\"t\"".into()],
            side: Side::Source,
        }]
    );
    let lines = plan.steps[0].lines();
    assert_eq!(
        lines[1..3],
        [
            "  ALTER ROLE \"app\" SET default_transaction_read_only = on;".to_string(),
            "  REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON TABLE \"public\".\"t\" FROM \"app\";"
                .to_string()
        ]
    );
    assert_eq!(plan.confirm, Confirm::TypeName("freeze".into()));

    // What the executor reports, folded: taken, then proven at an LSN.
    let grants = vec![Grant {
        role: "app".into(),
        table: "public.t".into(),
        privilege: "INSERT".into(),
    }];
    f.send(
        2,
        EventKind::FreezeGrants {
            id: 9,
            side: Side::Source,
            roles: vec!["app".into()],
            grants: grants.clone(),
            read_only_role: None,
        },
    );
    assert!(!guard::writes_frozen(&f.m).passes(), "taken, not proven");
    f.send(
        3,
        EventKind::WritesFrozen {
            id: 9,
            side: Side::Source,
            lsn: "0/20".into(),
        },
    );
    assert!(guard::writes_frozen(&f.m).passes());
    // The slot confirmed 0/1 (the test sample): not yet past the freeze's 0/20.
    f.live(4, 0);
    assert_eq!(
        guard::caught_up_after_freeze(&f.m).detail(),
        "slot s at 0/1, the freeze at 0/20: the target is still applying"
    );
    let mut caught = source(Some(0));
    caught.slots[0].confirmed_flush_lsn = Some("0/20".into());
    f.send(5, EventKind::SourceSampled(caught));
    assert!(guard::caught_up_after_freeze(&f.m).passes());
    // A stale source proves nothing.
    f.send(30, EventKind::Tick);
    assert!(matches!(
        guard::caught_up_after_freeze(&f.m).verdict,
        Verdict::Stale { .. }
    ));

    // The rollback gives back exactly what was taken (no switch here).
    let back = runbook::plan(&f.m, CheckpointId::Rollback).unwrap();
    assert_eq!(
        back.steps,
        vec![Step::UnfreezeWrites {
            roles: vec!["app".into()],
            grants,
            side: Side::Source,
        }]
    );
    assert_eq!(
        back.steps[0].lines()[1..],
        [
            "  ALTER ROLE \"app\" RESET default_transaction_read_only;".to_string(),
            "  GRANT INSERT ON TABLE public.t TO \"app\";".to_string(),
            "then end the sessions of app opened during the freeze (they keep its read-only \
             default; the app reconnects)"
                .to_string()
        ]
    );
    f.send(
        31,
        EventKind::WritesUnfrozen {
            id: 10,
            side: Side::Source,
        },
    );
    assert_eq!(f.m.actions.frozen, None);
}

#[test]
fn catch_up_is_predicted_from_the_rate_the_target_applies() {
    let sample = |lag: i64, confirmed: u64| {
        let mut s = source(Some(lag));
        s.slots[0].confirmed_flush_lsn = Some(format!("0/{confirmed:X}"));
        EventKind::SourceSampled(s)
    };
    let mut f = Feed::new();
    for t in 1..=5 {
        f.send(t, sample(30_000, 1_000 * t as u64));
    }
    let g = guard::catch_up_within_budget(&f.m);
    assert_eq!(
        g.detail(),
        "lag 29.3 KiB at 1000 B/s applied: ~30 s of the 60 s budget"
    );
    assert!(g.passes());
    f.send(6, sample(120_000, 6_000));
    let g = guard::catch_up_within_budget(&f.m);
    assert!(!g.passes());
    assert!(
        g.detail().contains("~2 m 00 s of the 60 s budget"),
        "{}",
        g.detail()
    );
    // Nothing confirmed for 10 s while behind: not applying at all.
    let mut f = Feed::new();
    for t in 1..=12 {
        f.send(t, sample(5_000, 4_000));
    }
    assert_eq!(
        guard::catch_up_within_budget(&f.m).detail(),
        "lag 4.9 KiB and the target confirmed nothing over the last 10 s: it is not applying"
    );
}

#[test]
fn a_rollback_after_the_switch_counts_the_writes_it_would_strand() {
    let mut f = ready();
    let mut tgt = target();
    tgt.rows_written = Some(1_000);
    f.send(2, EventKind::TargetSampled(tgt.clone()));
    assert!(guard::nothing_stranded(&f.m).passes(), "not switched");
    // The switch lands with the target at 1,000 rows written.
    let rec = SwitchRecord {
        object: "configmap/app-db".into(),
        key: "DATABASE_URL".into(),
        previous_fingerprint: Some("old1".into()),
        new_fingerprint: "new1".into(),
        changed: true,
    };
    let plan = runbook::plan(&f.m, CheckpointId::SwitchConfig).unwrap();
    f.m.actions.history.push(CheckpointRun {
        id: 7,
        checkpoint: CheckpointId::SwitchConfig,
        plan,
        overridden: None,
        auto: None,
        started_at: at(2),
        steps: vec![],
        checks: vec![],
        sequences: vec![],
        copy: None,
        job_log: Default::default(),
        legacy_steps: vec![],
        finished: None,
    });
    on_finished(&mut f.m, 7, at(3), true, "", Some(&rec));
    assert!(guard::nothing_stranded(&f.m).passes());
    tgt.rows_written = Some(13_024);
    f.send(4, EventKind::TargetSampled(tgt));
    let g = guard::nothing_stranded(&f.m);
    assert_eq!(
        g.detail(),
        "12,024 rows written on the target since the switch at 22:13:23 would stay only there: \
         without reverse replication the rollback strands them (override only with a reason)"
    );
    assert!(runbook::guards(&f.m, CheckpointId::Rollback)
        .iter()
        .any(|x| x.label == "No writes left only on the target" && !x.passes()));
}
