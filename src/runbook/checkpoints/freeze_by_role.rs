//! The write freeze as the migration story does it (`[freeze] method =
//! "read-only-role"`): a switch of its own. The config object's key gets
//! the read-only value (the source, as a role that can write nothing), the
//! workloads restart onto it, and the freeze is proven on the source: the
//! read-only role can write no table, no session of a writing role is left,
//! nothing is written. Nothing changes on the server, so the way back is
//! the config put back (B), before or after the switch to the target.
//!
//! Under GitOps the console writes nothing: the change to merge is shown,
//! waited for, and its rollouts watched, as for the switch.

use crate::config::Changes;
use crate::model::Model;
use crate::pg::monitor::qualified;
use crate::runbook::guard::{self, Guard};
use crate::runbook::plan::{await_rollout_steps, restart_steps, Confirm, Plan, Step, SwitchTo};
use crate::runbook::CheckpointId;
use crate::session::{ReadOnlyFreeze, Side};

use super::prepare::source_tables;

/// The session's freeze by read-only role, if it is configured so.
pub fn configured(model: &Model) -> Option<&ReadOnlyFreeze> {
    model
        .info
        .as_ref()?
        .kubernetes
        .as_ref()?
        .read_only_freeze
        .as_ref()
}

fn value_readable(model: &Model, ro: &ReadOnlyFreeze) -> Guard {
    const L: &str = "Read-only value readable";
    match model.actions.switch_value() {
        None => Guard::fail(L, format!("{} not read yet", ro.value_from)),
        Some(v) => match (&v.read_only_fingerprint, &v.read_only_error) {
            (Some(fp), _) => Guard::pass(
                L,
                format!("{} (role {}): sha256:{fp}", ro.value_from, ro.role),
            ),
            (None, Some(e)) => Guard::fail(L, e.clone()),
            (None, None) => Guard::fail(L, format!("{} not read yet", ro.value_from)),
        },
    }
}

pub fn guards(model: &Model, ro: &ReadOnlyFreeze) -> Vec<Guard> {
    let roles = model
        .info
        .as_ref()
        .map(|i| i.app_roles.clone())
        .unwrap_or_default();
    let mut g = vec![
        guard::side_live(model, Side::Source),
        guard::side_live(model, Side::Target),
        guard::kube_live(model),
        guard::access_review(model, guard::kube_verbs(model)),
        guard::workloads_found(model),
        guard::no_other_run(model),
        value_readable(model, ro),
        Guard::check(
            "Writing roles named",
            !roles.is_empty(),
            if roles.is_empty() {
                "set [freeze] app_roles: the roles whose sessions must be gone".to_string()
            } else {
                roles.join(", ")
            },
        ),
    ];
    g.extend(super::freeze_writes::runbook_guards(model));
    g
}

pub fn plan(model: &Model, ro: &ReadOnlyFreeze) -> Option<Plan> {
    let info = model.info.as_ref()?;
    let k = info.kubernetes.as_ref()?;
    let object = k.config_object.clone()?;
    let key = k.config_key.clone()?;
    let prove = Step::ProveReadOnly {
        role: ro.role.clone(),
        write_roles: info.app_roles.clone(),
        tables: source_tables(model).iter().map(qualified).collect(),
        side: Side::Source,
    };
    let confirm = Confirm::TypeName("freeze".into());
    // Switched already (a proof that failed, run again): prove it again.
    if let Some((at, _)) = model.actions.read_only_switch.as_ref() {
        let proven = model
            .actions
            .frozen
            .as_ref()
            .and_then(|f| f.proven.as_ref());
        let (steps, note) = match proven {
            Some((p, _)) => (
                vec![],
                format!(
                    "already done: clients on {} since {}, proven at {}",
                    ro.role,
                    at.format("%H:%M:%S"),
                    p.format("%H:%M:%S")
                ),
            ),
            None => (
                vec![prove],
                format!(
                    "{} {key} holds the read-only value since {}: the proof runs again",
                    object,
                    at.format("%H:%M:%S")
                ),
            ),
        };
        return Some(Plan {
            checkpoint: CheckpointId::FreezeWrites,
            steps,
            confirm,
            notes: vec![note],
        });
    }
    let value = model.actions.switch_value();
    let new_fingerprint = value.and_then(|v| v.read_only_fingerprint.clone());
    let expect_current = value.and_then(|v| v.current_fingerprint.clone());
    let w = super::rollout_restart::workloads(model, k);
    let mut notes = vec![
        format!(
            "the clients reconnect as {}: reads keep working, every write fails until the \
             switch to the target (S) or the rollback (B) puts their config back",
            ro.role
        ),
        match &expect_current {
            Some(c) => format!("{key} now holds sha256:{c}: the rollback puts it back"),
            None => format!("{key} is absent or unreadable now"),
        },
        "nothing changes on the server: a stray client still on a writing role fails the \
         proof"
            .into(),
    ];
    let mut steps = if k.changes == Changes::Gitops {
        notes.push(
            "GitOps: the console writes nothing. Merge the change; the step ends when the \
             cluster shows it, then each rollout it causes is watched."
                .into(),
        );
        let mut s = vec![Step::AwaitConfig {
            namespace: k.namespace.clone(),
            object: object.clone(),
            key: key.clone(),
            want: new_fingerprint,
            was: expect_current,
            value_from: Some(ro.value_from.clone()),
            timeout_s: k.gitops_wait_secs,
            undo: false,
            to: SwitchTo::ReadOnly,
        }];
        s.extend(await_rollout_steps(&k.namespace, &w));
        s
    } else {
        let mut s = vec![Step::PatchConfig {
            namespace: k.namespace.clone(),
            object: object.clone(),
            key: key.clone(),
            new_fingerprint,
            expect_current,
            to: SwitchTo::ReadOnly,
        }];
        s.extend(restart_steps(&k.namespace, &w));
        s
    };
    steps.push(prove);
    Some(Plan {
        checkpoint: CheckpointId::FreezeWrites,
        steps,
        confirm,
        notes,
    })
}
