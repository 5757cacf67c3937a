//! The GitOps switch on the model side: plans that write nothing to the
//! cluster, guards that need no patch permission, the revert as the way
//! back, and a budget overrun that cuts the wait short.

use super::super::actions::tests::{kube_info, switched};
use super::super::update::tests::{ran, Feed};
use super::super::Effect;
use crate::config::{BudgetAction, Changes};
use crate::runbook::{self, guard, CheckpointId, Step};
use crate::session::{AccessResult, EventKind, SessionInfo, Side, SwitchValue};

fn gitops() -> SessionInfo {
    let mut i = SessionInfo {
        app_roles: vec!["app".into()],
        ..kube_info(false)
    };
    let k = i.kubernetes.as_mut().unwrap();
    k.changes = Changes::Gitops;
    k.gitops_wait_secs = 900;
    i
}

fn check(verb: &str, what: &str, allowed: bool) -> AccessResult {
    AccessResult {
        describe: format!("{verb} {what} in shop"),
        verb: verb.into(),
        allowed,
        reason: (!allowed).then(|| "RBAC: denied".into()),
    }
}

/// Read access only, as a GitOps operator has it, and the switch value read.
fn reviewed(f: &mut Feed, t: i64) {
    f.send(
        t,
        EventKind::KubePreflightDone {
            checks: vec![
                check("get", "configmaps/app-db", true),
                check("watch", "configmaps", true),
                check("patch", "deployments.apps/app", false),
            ],
            switch_value: Some(SwitchValue {
                new_fingerprint: Some("new1".into()),
                current_fingerprint: Some("old1".into()),
                error: None,
                ..Default::default()
            }),
            error: None,
        },
    );
}

fn wait_rollout() -> Step {
    Step::WaitRollout {
        namespace: "shop".into(),
        deployment: "app".into(),
        timeout_s: crate::runbook::plan::ROLLOUT_TIMEOUT_S,
    }
}

#[test]
fn the_switch_shows_the_change_and_waits_for_it_and_its_rollout() {
    let mut f = Feed::with(gitops());
    f.live(1, 0);
    reviewed(&mut f, 1);
    let plan = runbook::plan(&f.m, CheckpointId::SwitchConfig).unwrap();
    assert_eq!(
        plan.steps,
        vec![
            Step::AwaitConfig {
                namespace: "shop".into(),
                object: "configmap/app-db".into(),
                key: "DATABASE_URL".into(),
                want: Some("new1".into()),
                was: Some("old1".into()),
                value_from: Some("/run/new-url".into()),
                timeout_s: 900,
                undo: false,
                to: crate::runbook::plan::SwitchTo::Target,
            },
            wait_rollout(),
        ]
    );
    assert!(plan.steps.iter().all(Step::is_kubernetes));
    let lines = plan.steps[0].lines();
    assert!(lines[0].contains("through Git"), "{lines:?}");
    assert!(
        lines
            .iter()
            .any(|l| l.contains("-  DATABASE_URL: <sha256:old1>")),
        "{lines:?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("+  DATABASE_URL: <sha256:new1>   # the value of /run/new-url")),
        "{lines:?}"
    );
    // No patch permission is needed (nor asked for): reading suffices.
    let access = runbook::guards(&f.m, CheckpointId::SwitchConfig)
        .into_iter()
        .find(|g| g.label == "Access review")
        .unwrap();
    assert!(access.passes(), "{}", access.detail());
    // R only watches the rollouts the merged change causes.
    let r = runbook::plan(&f.m, CheckpointId::RolloutRestart).unwrap();
    assert_eq!(r.steps, vec![wait_rollout()]);
    // Patching, the same denial fails the guard.
    let mut p = Feed::with(kube_info(false));
    p.live(1, 0);
    reviewed(&mut p, 1);
    let access = guard::access_review(&p.m, guard::kube_verbs(&p.m));
    assert!(!access.passes());
    assert!(access.detail().contains("patch deployments.apps/app"));
}

#[test]
fn the_rollback_is_the_revert_through_git() {
    let mut f = Feed::with(gitops());
    f.live(1, 0);
    reviewed(&mut f, 1);
    switched(&mut f, 2);
    let plan = runbook::plan(&f.m, CheckpointId::Rollback).unwrap();
    let git: Vec<&Step> = plan.steps.iter().filter(|s| s.is_kubernetes()).collect();
    assert_eq!(
        git,
        vec![
            &Step::AwaitConfig {
                namespace: "shop".into(),
                object: "configmap/app-db".into(),
                key: "DATABASE_URL".into(),
                want: Some("old1".into()),
                was: Some("new1".into()),
                value_from: None,
                timeout_s: 900,
                undo: true,
                to: crate::runbook::plan::SwitchTo::Target,
            },
            &wait_rollout(),
        ]
    );
    assert!(plan.steps[0].lines()[0].starts_with("revert the switch through Git"));
}

#[test]
fn a_budget_rollback_cancels_the_wait_for_git() {
    let mut f = Feed::with(SessionInfo {
        freeze_budget_secs: 1,
        on_budget_exceeded: BudgetAction::Rollback,
        ..gitops()
    });
    f.live(1, 0);
    reviewed(&mut f, 1);
    f.send(
        2,
        EventKind::FreezeGrants {
            id: 90,
            side: Side::Source,
            roles: vec!["app".into()],
            grants: vec![],
            read_only_role: None,
        },
    );
    // S is waiting for the merge when the budget runs out.
    let plan = runbook::plan(&f.m, CheckpointId::SwitchConfig).unwrap();
    ran(
        &mut f,
        3,
        CheckpointId::SwitchConfig,
        vec![],
        true,
        "",
        None,
    );
    let run = f.m.actions.history.last_mut().unwrap();
    run.finished = None;
    let id = run.id;
    f.send(
        3,
        EventKind::StepStarted {
            id,
            index: 0,
            step: plan.steps[0].clone(),
        },
    );
    f.live(5, 0);
    let effects = f.send(
        5,
        EventKind::BudgetExceeded {
            budget_secs: 1,
            action: BudgetAction::Rollback,
        },
    );
    assert_eq!(effects, vec![Effect::CancelRun { id }]);
    let b = f.m.actions.budget.as_ref().unwrap();
    assert!(
        b.pending && b.outcome.contains("is cancelled"),
        "{}",
        b.outcome
    );
    // A patch in flight is never cut: the rollback waits for it.
    let mut p = Feed::with(SessionInfo {
        freeze_budget_secs: 1,
        on_budget_exceeded: BudgetAction::Rollback,
        app_roles: vec!["app".into()],
        ..kube_info(false)
    });
    p.live(1, 0);
    ran(
        &mut p,
        3,
        CheckpointId::SwitchConfig,
        vec![],
        true,
        "",
        None,
    );
    p.m.actions.history.last_mut().unwrap().finished = None;
    p.send(
        4,
        EventKind::FreezeGrants {
            id: 90,
            side: Side::Source,
            roles: vec!["app".into()],
            grants: vec![],
            read_only_role: None,
        },
    );
    p.live(6, 0);
    let effects = p.send(
        6,
        EventKind::BudgetExceeded {
            budget_secs: 1,
            action: BudgetAction::Rollback,
        },
    );
    assert_eq!(effects, vec![]);
}
