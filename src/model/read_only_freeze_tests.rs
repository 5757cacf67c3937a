//! The freeze by read-only role on the model side: Z is a switch of the
//! clients' config to the read-only value, then a proof; the switch to the
//! target starts from that value; the way back, before or after the switch,
//! puts back what the key held before the freeze, and gives nothing back
//! on the server, since nothing was taken there.

use super::actions::tests::kube_info;
use super::db_config::tests::patch_as;
use super::update::tests::{ran, Feed};
use crate::config::Changes;
use crate::runbook::plan::SwitchTo;
use crate::runbook::{self, CheckpointId, Step, Variant};
use crate::session::{EventKind, ReadOnlyFreeze, SessionInfo, Side, SwitchRecord, SwitchValue};

fn read_only(changes: Changes) -> SessionInfo {
    let mut i = SessionInfo {
        app_roles: vec!["app".into()],
        runbook: Variant::DumpRestore,
        ..kube_info(false)
    };
    let k = i.kubernetes.as_mut().unwrap();
    k.changes = changes;
    k.read_only_freeze = Some(ReadOnlyFreeze {
        role: "app_ro".into(),
        value_from: "/run/ro-url".into(),
    });
    i
}

/// The access review read the three values: before, target, read-only.
fn reviewed(f: &mut Feed, t: i64) {
    f.send(
        t,
        EventKind::KubePreflightDone {
            checks: vec![],
            switch_value: Some(SwitchValue {
                new_fingerprint: Some("new1".into()),
                current_fingerprint: Some("old1".into()),
                error: None,
                read_only_fingerprint: Some("ro1".into()),
                read_only_error: None,
            }),
            error: None,
        },
    );
}

fn record(previous: &str, new: &str) -> SwitchRecord {
    SwitchRecord {
        object: "configmap/app-db".into(),
        key: "DATABASE_URL".into(),
        previous_fingerprint: Some(previous.into()),
        new_fingerprint: new.into(),
        changed: true,
    }
}

fn restart() -> Vec<Step> {
    crate::runbook::plan::restart_steps(
        "shop",
        &crate::runbook::plan::Workloads {
            deployments: vec!["app".into()],
            statefulsets: vec![],
        },
    )
}

/// Z as the executor reports it: its steps done, the freeze recorded when
/// the clients' config changed, proven at the end.
fn frozen(f: &mut Feed, t: i64, steps: Vec<Step>) {
    f.send(
        t,
        EventKind::FreezeGrants {
            id: 50,
            side: Side::Source,
            roles: vec!["app".into()],
            grants: vec![],
            read_only_role: Some("app_ro".into()),
        },
    );
    f.send(
        t,
        EventKind::WritesFrozen {
            id: 50,
            side: Side::Source,
            lsn: "0/5".into(),
        },
    );
    ran(
        f,
        t,
        CheckpointId::FreezeWrites,
        steps,
        true,
        "writes frozen by read-only role",
        Some(record("old1", "ro1")),
    );
}

/// B's plan, checked to begin by putting back "old1" over `current` and
/// ending the freeze.
#[track_caller]
fn puts_back_old1_from(f: &Feed, current: &str) -> crate::runbook::Plan {
    let back = runbook::plan(&f.m, CheckpointId::Rollback).unwrap();
    assert!(
        matches!(
            &back.steps[0],
            Step::RestoreConfig { restore: Some(r), expect_current, unfreezes: true, .. }
                if r == "old1" && expect_current == current
        ),
        "{:?}",
        back.steps
    );
    back
}

#[test]
fn the_freeze_switches_the_clients_then_proves_it() {
    let mut f = Feed::with(read_only(Changes::Patch));
    f.live(1, 0);
    reviewed(&mut f, 1);
    let plan = runbook::plan(&f.m, CheckpointId::FreezeWrites).unwrap();
    let mut want = vec![patch_as("ro1", "old1", SwitchTo::ReadOnly)];
    want.extend(restart());
    assert_eq!(&plan.steps[..want.len()], &want[..]);
    assert!(
        matches!(
            plan.steps.last(),
            Some(Step::ProveReadOnly { role, write_roles, side: Side::Source, tables })
                if role == "app_ro" && write_roles == &["app"] && !tables.is_empty()
        ),
        "{:?}",
        plan.steps
    );
    assert_eq!(plan.steps.len(), want.len() + 1);
    assert!(plan.steps[0].starts_read_only_freeze());
    assert!(!plan.steps[0].switches_to_target());
    let guards: Vec<String> = runbook::guards(&f.m, CheckpointId::FreezeWrites)
        .into_iter()
        .map(|g| g.label.clone())
        .collect();
    assert!(
        guards.contains(&"Read-only value readable".to_string()),
        "{guards:?}"
    );

    frozen(&mut f, 2, plan.steps.clone());
    // The freeze's switch is not the app's move to the target.
    assert_eq!(f.m.actions.switched, None);
    assert_eq!(
        f.m.actions
            .read_only_switch
            .as_ref()
            .map(|(_, r)| r.clone()),
        Some(record("old1", "ro1"))
    );
    let fz = f.m.actions.frozen.as_ref().unwrap();
    assert_eq!(fz.read_only_role.as_deref(), Some("app_ro"));
    assert!(fz.proven.is_some());
    assert!(!runbook::failing(&f.m, CheckpointId::DumpRestore)
        .iter()
        .any(|g| g.label == "Writes frozen on the source"));
    // Run again: nothing to switch, already proven.
    let again = runbook::plan(&f.m, CheckpointId::FreezeWrites).unwrap();
    assert!(again.steps.is_empty(), "{:?}", again.steps);
}

#[test]
fn the_way_back_puts_back_what_the_key_held_before_the_freeze() {
    let mut f = Feed::with(read_only(Changes::Patch));
    f.live(1, 0);
    reviewed(&mut f, 1);
    let z = runbook::plan(&f.m, CheckpointId::FreezeWrites).unwrap();
    frozen(&mut f, 2, z.steps);
    // Before the switch: the read-only value goes, the first one comes back.
    let back = runbook::plan(&f.m, CheckpointId::Rollback).unwrap();
    let mut want = vec![Step::RestoreConfig {
        namespace: "shop".into(),
        object: "configmap/app-db".into(),
        key: "DATABASE_URL".into(),
        restore: Some("old1".into()),
        expect_current: "ro1".into(),
        unfreezes: true,
    }];
    want.extend(restart());
    assert_eq!(back.steps, want, "nothing given back on the server");
    assert!(back.steps[0].ends_read_only_freeze());
    // The switch starts from the read-only value, not the review's read.
    let s = runbook::plan(&f.m, CheckpointId::SwitchConfig).unwrap();
    assert_eq!(s.steps, vec![patch_as("new1", "ro1", SwitchTo::Target)]);
    assert!(s.steps[0].switches_to_target());
    ran(
        &mut f,
        4,
        CheckpointId::SwitchConfig,
        s.steps,
        true,
        "patched",
        Some(record("ro1", "new1")),
    );
    // After it: still back to before the freeze, from the target's value.
    let back = puts_back_old1_from(&f, "new1");
    assert!(!back
        .steps
        .iter()
        .any(|s| matches!(s, Step::UnfreezeWrites { .. })));
    // Once through, nothing is left to undo and the freeze is over.
    f.send(
        6,
        EventKind::WritesUnfrozen {
            id: 51,
            side: Side::Source,
        },
    );
    ran(
        &mut f,
        6,
        CheckpointId::Rollback,
        back.steps,
        true,
        "restored",
        Some(record("new1", "old1")),
    );
    assert_eq!(f.m.actions.frozen, None);
    assert_eq!(f.m.actions.switched, None);
    assert_eq!(f.m.actions.read_only_switch, None);
}

#[test]
fn under_gitops_the_freeze_and_its_revert_are_waited_for() {
    let mut f = Feed::with(read_only(Changes::Gitops));
    f.live(1, 0);
    reviewed(&mut f, 1);
    let z = runbook::plan(&f.m, CheckpointId::FreezeWrites).unwrap();
    assert!(
        matches!(
            &z.steps[0],
            Step::AwaitConfig { want: Some(w), was: Some(was), undo: false, to: SwitchTo::ReadOnly, value_from: Some(from), .. }
                if w == "ro1" && was == "old1" && from == "/run/ro-url"
        ),
        "{:?}",
        z.steps
    );
    assert!(!z
        .steps
        .iter()
        .any(|s| matches!(s, Step::PatchConfig { .. } | Step::Restart { .. })));
    assert!(matches!(z.steps.last(), Some(Step::ProveReadOnly { .. })));
    frozen(&mut f, 2, z.steps);
    let back = runbook::plan(&f.m, CheckpointId::Rollback).unwrap();
    assert!(
        matches!(
            &back.steps[0],
            Step::AwaitConfig { want: Some(w), was: Some(was), undo: true, to: SwitchTo::ReadOnly, .. }
                if w == "old1" && was == "ro1"
        ),
        "{:?}",
        back.steps
    );
    assert!(back.steps[0].ends_read_only_freeze());
}

#[test]
fn a_run_that_ends_without_its_record_still_knows_what_to_put_back() {
    let mut f = Feed::with(read_only(Changes::Patch));
    f.live(1, 0);
    reviewed(&mut f, 1);
    let z = runbook::plan(&f.m, CheckpointId::FreezeWrites).unwrap();
    // The patch's step ended; the run closed with no switch record (the
    // console died in the restart and was resumed).
    ran(
        &mut f,
        2,
        CheckpointId::FreezeWrites,
        z.steps[..1].to_vec(),
        false,
        "the session ended while step 2 was in flight",
        None,
    );
    assert_eq!(
        f.m.actions
            .read_only_switch
            .as_ref()
            .map(|(_, r)| r.clone()),
        Some(record("old1", "ro1"))
    );
    puts_back_old1_from(&f, "ro1");
}
