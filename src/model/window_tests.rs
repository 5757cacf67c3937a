//! The write-freeze window's model side: the final check's guard, reverse
//! replication and the rollback it shapes, the freeze budget's overrun.

use super::super::actions::tests::{kube_info, switched};
use super::super::update::tests::Feed;
use super::super::Effect;
use crate::config::BudgetAction;
use crate::runbook::{self, guard, CheckpointId, Step};
use crate::session::{EventKind, SessionInfo, Side};

fn kube() -> SessionInfo {
    SessionInfo {
        app_roles: vec!["app".into()],
        ..kube_info(false)
    }
}

/// Frozen at `t` (privileges taken and proven at once).
pub(in crate::model) fn freeze(f: &mut Feed, t: i64) {
    f.send(
        t,
        EventKind::FreezeGrants {
            id: 90,
            side: Side::Source,
            roles: vec!["app".into()],
            grants: vec![],
            read_only_role: None,
        },
    );
    f.send(
        t,
        EventKind::WritesFrozen {
            id: 90,
            side: Side::Source,
            lsn: "0/1".into(),
        },
    );
}

/// A run of `checkpoint` that started at `t` and ended at `t` + 1.
fn ran(f: &mut Feed, checkpoint: CheckpointId, steps: Vec<Step>, t: i64, ok: bool) {
    let said = if ok { "equal" } else { "t: 2 rows differ" };
    crate::model::update::tests::ran(f, t, checkpoint, steps, ok, said, None);
}

#[test]
fn the_final_check_must_follow_the_proven_freeze_and_be_clean() {
    let mut f = Feed::with(kube());
    f.live(1, 0);
    ran(&mut f, CheckpointId::FinalCheck, vec![], 1, true);
    freeze(&mut f, 3);
    let g = guard::final_checked(&f.m);
    assert!(!g.passes(), "a check before the freeze proves nothing");
    assert!(
        g.detail().starts_with("not run since the freeze"),
        "{}",
        g.detail()
    );
    ran(&mut f, CheckpointId::FinalCheck, vec![], 4, false);
    assert_eq!(
        guard::final_checked(&f.m).detail(),
        "failed: t: 2 rows differ"
    );
    ran(&mut f, CheckpointId::FinalCheck, vec![], 6, true);
    assert!(guard::final_checked(&f.m).passes());
    let mut t = crate::model::update::tests::target();
    t.tables = crate::model::update::tests::source(Some(0)).tables;
    f.send(8, EventKind::TargetSampled(t));
    // Its plan: lag 0 against the source's position, then counts, then checksums.
    let plan = runbook::plan(&f.m, CheckpointId::FinalCheck).unwrap();
    assert!(matches!(
        plan.steps.as_slice(),
        [
            Step::WaitReplicated { on: Side::Source, slot, .. },
            Step::VerifyFinal { .. }
        ] if slot == "s"
    ));
}

#[test]
fn reverse_replication_stops_forward_first_and_shapes_the_rollback() {
    let mut f = Feed::with(kube());
    f.live(1, 0);
    freeze(&mut f, 2);
    let plan = runbook::plan(&f.m, CheckpointId::ReverseReplication).unwrap();
    match plan.steps.as_slice() {
        [Step::Sql {
            side: Side::Target,
            sql,
            ..
        }, Step::CreateSubscription {
            name: sub,
            on: Side::Source,
            copy_data: false,
            enabled: false,
            ..
        }, Step::StopSubscription { name }, Step::Sql {
            side: Side::Source,
            sql: enable,
            ..
        }] => {
            assert_eq!(name, "s");
            assert_eq!(enable, "ALTER SUBSCRIPTION \"s_reverse\" ENABLE");
            assert!(
                sql.contains("CREATE PUBLICATION \"s_reverse\" FOR TABLE \"public\".\"t\""),
                "{sql}"
            );
            assert_eq!(sub, "s_reverse");
        }
        other => panic!("{other:?}"),
    }
    ran(
        &mut f,
        CheckpointId::ReverseReplication,
        plan.steps.clone(),
        3,
        true,
    );
    assert!(runbook::plan(&f.m, CheckpointId::ReverseReplication)
        .unwrap()
        .steps
        .is_empty());

    // Forward replication stopped on purpose: the source's WAL since is no lag.
    let g = guard::caught_up(&f.m);
    assert!(
        g.passes() && g.detail().contains("reverse replication runs"),
        "{}",
        g.detail()
    );

    // Before the switch, the rollback takes it down and lets forward apply again.
    let back = runbook::plan(&f.m, CheckpointId::Rollback).unwrap();
    let sql: Vec<(Side, &str)> = back
        .steps
        .iter()
        .filter_map(|s| match s {
            Step::Sql { side, sql, .. } => Some((*side, sql.as_str())),
            _ => None,
        })
        .collect();
    assert_eq!(
        sql,
        vec![
            (Side::Source, "DROP SUBSCRIPTION \"s_reverse\""),
            (Side::Target, "DROP PUBLICATION IF EXISTS \"s_reverse\""),
            (Side::Target, "ALTER SUBSCRIPTION \"s\" ENABLE"),
        ]
    );
    assert!(matches!(
        back.steps.last(),
        Some(Step::UnfreezeWrites {
            side: Side::Source,
            ..
        })
    ));

    // After the switch: the cutover in mirror, then the config back.
    switched(&mut f, 6);
    let g = guard::nothing_stranded(&f.m);
    assert!(
        g.passes() && g.detail().starts_with("reverse replication since"),
        "{}",
        g.detail()
    );
    let back = runbook::plan(&f.m, CheckpointId::Rollback).unwrap();
    let kinds: Vec<String> = back.steps.iter().map(|s| s.title()).collect();
    assert_eq!(
        kinds,
        vec![
            "freeze writes of app on the target",
            "s_reverse delivers all the target had",
            "advance the source's sequences",
            "give app their writes back on the source",
            "restore configmap/app-db DATABASE_URL",
            "restart deployment/app",
            "rollout of app",
        ]
    );
    assert!(!guard::final_checked(&f.m).passes());
    // Reverse replication set up after the switch would miss writes: refused.
    let late = runbook::guards(&f.m, CheckpointId::ReverseReplication);
    assert!(late
        .iter()
        .any(|g| g.label == "Before the switch" && !g.passes()));
}

#[test]
fn without_reverse_replication_writes_since_the_switch_block_the_rollback() {
    let mut f = Feed::with(kube());
    let mut t = crate::model::update::tests::target();
    t.rows_written = Some(100);
    f.send(
        1,
        EventKind::SourceSampled(crate::model::update::tests::source(Some(0))),
    );
    f.send(1, EventKind::TargetSampled(t.clone()));
    freeze(&mut f, 2);
    switched(&mut f, 3);
    f.m.actions.target_rows_at_switch = Some(100);
    t.rows_written = Some(140);
    f.send(4, EventKind::TargetSampled(t));
    let g = guard::nothing_stranded(&f.m);
    assert!(!g.passes());
    assert!(
        g.detail()
            .starts_with("40 rows written on the target since the switch"),
        "{}",
        g.detail()
    );
}

#[test]
fn the_budget_warns_once_or_rolls_back_by_itself_saying_why() {
    for action in [BudgetAction::Warn, BudgetAction::Rollback] {
        let mut f = Feed::with(SessionInfo {
            freeze_budget_secs: 5,
            on_budget_exceeded: action,
            ..kube()
        });
        f.live(1, 0);
        freeze(&mut f, 2);
        f.live(6, 0);
        assert_eq!(f.send(6, EventKind::Tick), vec![], "4 s of a 5 s budget");
        f.live(8, 0);
        let effects = f.send(8, EventKind::Tick);
        let record = EventKind::BudgetExceeded {
            budget_secs: 5,
            action,
        };
        assert_eq!(effects, vec![Effect::Record(record.clone())]);
        assert_eq!(
            f.send(9, EventKind::Tick),
            vec![],
            "announced once per freeze"
        );
        let effects = f.send(9, record);
        let b = f.m.actions.budget.clone().unwrap();
        match action {
            BudgetAction::Warn => {
                assert_eq!(effects, vec![]);
                assert!(f.m.actions.running().is_none());
                assert!(b.outcome.contains("B rolls back"), "{}", b.outcome);
            }
            BudgetAction::Rollback => {
                let run = f.m.actions.running().expect("rollback started");
                assert_eq!(run.checkpoint, CheckpointId::Rollback);
                assert!(run.auto.as_deref().unwrap().contains("on_budget_exceeded"));
                assert!(matches!(effects.as_slice(), [Effect::RunPlan { plan, .. }]
                    if plan.checkpoint == CheckpointId::Rollback));
                assert!(
                    b.outcome.contains("rollback started by itself"),
                    "{}",
                    b.outcome
                );
            }
        }
    }
}

#[test]
fn a_budget_rollback_waits_for_the_running_checkpoint() {
    let mut f = Feed::with(SessionInfo {
        freeze_budget_secs: 1,
        on_budget_exceeded: BudgetAction::Rollback,
        ..kube()
    });
    f.live(1, 0);
    freeze(&mut f, 2);
    // The final check is running when the budget runs out.
    ran(&mut f, CheckpointId::FinalCheck, vec![], 3, true);
    f.m.actions.history.last_mut().unwrap().finished = None;
    f.live(5, 0);
    let record = EventKind::BudgetExceeded {
        budget_secs: 1,
        action: BudgetAction::Rollback,
    };
    assert_eq!(f.send(5, record), vec![]);
    assert!(f.m.actions.budget.as_ref().unwrap().pending);
    let effects = f.send(
        6,
        EventKind::RunFinished {
            id: f.m.next_run,
            ok: true,
            message: "equal".into(),
            switched: None,
        },
    );
    assert!(matches!(effects.as_slice(), [Effect::RunPlan { plan, .. }]
        if plan.checkpoint == CheckpointId::Rollback));
}

#[test]
fn a_freeze_run_again_keeps_what_the_first_took() {
    use crate::session::Grant;
    let g = |privilege: &str| Grant {
        role: "app".into(),
        table: "public.t".into(),
        privilege: privilege.into(),
    };
    let mut f = Feed::with(kube());
    let taken = |f: &mut Feed, t: i64, grants: Vec<Grant>| {
        f.send(
            t,
            EventKind::FreezeGrants {
                id: 1,
                side: Side::Source,
                roles: vec!["app".into()],
                grants,
                read_only_role: None,
            },
        );
    };
    taken(&mut f, 1, vec![g("INSERT"), g("UPDATE")]);
    // The proof failed; Z again finds nothing left to take.
    taken(&mut f, 5, vec![]);
    let frozen = f.m.actions.frozen.clone().unwrap();
    assert_eq!(frozen.grants, vec![g("INSERT"), g("UPDATE")]);
    assert_eq!(
        frozen.at,
        crate::model::update::tests::at(1),
        "the window started then"
    );
}

#[test]
fn reverse_replication_that_stopped_short_goes_on_or_is_taken_down() {
    let mut f = Feed::with(kube());
    f.live(1, 0);
    freeze(&mut f, 2);
    let full = runbook::plan(&f.m, CheckpointId::ReverseReplication).unwrap();
    // Created the subscription, then failed (say, stopping the forward one).
    ran(
        &mut f,
        CheckpointId::ReverseReplication,
        full.steps[..2].to_vec(),
        3,
        false,
    );
    use crate::runbook::checkpoints::reverse_replication::{created_since, running_since};
    assert!(created_since(&f.m).is_some());
    assert!(running_since(&f.m).is_none());
    // Again: not created twice, on from where it stopped.
    let again = runbook::plan(&f.m, CheckpointId::ReverseReplication).unwrap();
    assert!(matches!(
        again.steps.as_slice(),
        [
            Step::StopSubscription { .. },
            Step::Sql {
                side: Side::Source,
                ..
            }
        ]
    ));
    assert!(
        again.notes[0].contains("not created again"),
        "{:?}",
        again.notes
    );
    // The way back takes down what it created.
    let back = runbook::plan(&f.m, CheckpointId::Rollback).unwrap();
    assert!(back.steps.iter().any(|s| matches!(s,
        Step::Sql { side: Side::Source, sql, .. } if sql == "DROP SUBSCRIPTION \"s_reverse\"")));
}
