//! Roll back, from the freeze on: give the source its writes back (exactly
//! the privileges the freeze took), put back the config value the switch
//! replaced (known by its fingerprint; the value itself is kept apart from
//! the log), then restart the workloads onto the source.
//!
//! After the switch with reverse replication on, it first freezes the
//! target, waits until reverse replication has delivered everything the
//! target had, and sets the source's sequences past the target's — the
//! cutover in mirror. Before the switch it takes reverse replication down
//! and lets the forward subscription apply again.
//!
//! After a switch through the pooler it is that switch in mirror:
//! `pooler_rollback`.
//!
//! Under GitOps the config is not put back by the console: the revert to
//! merge is shown and waited for, then its rollouts are watched.

use crate::config::Changes;
use crate::model::Model;
use crate::pg::monitor::{qualified, quote_ident};
use crate::runbook::guard::{self, Guard};
use crate::runbook::plan::{
    await_rollout_steps, object_name, restart_steps, Confirm, Plan, Step, SwitchTo,
    WAIT_REPLICATED_S,
};
use crate::runbook::CheckpointId;
use crate::session::Side;

use super::advance_sequences::schemas;
use super::prepare::source_tables;
use super::reverse_replication;

/// What the rollback puts back into the config key.
struct ConfigUndo {
    object: String,
    key: String,
    /// What the key held before the first switch (None: absent).
    restore: Option<String>,
    /// What it holds now, as the latest switch wrote it.
    current: String,
    /// It ends a freeze by read-only role.
    unfreezes: bool,
}

/// The key goes back to what it held before the first switch this session
/// made: before the freeze by read-only role if there was one (the clients
/// get their writing role back), else before the switch to the target.
fn config_undo(model: &Model) -> Option<ConfigUndo> {
    let to_target = switch(model);
    let to_read_only = model
        .actions
        .read_only_switch
        .as_ref()
        .map(|(_, r)| r)
        .filter(|r| r.changed);
    let first = to_read_only.or(to_target)?;
    let latest = to_target.unwrap_or(first);
    Some(ConfigUndo {
        object: first.object.clone(),
        key: first.key.clone(),
        restore: first.previous_fingerprint.clone(),
        current: latest.new_fingerprint.clone(),
        unfreezes: to_read_only.is_some(),
    })
}

/// The switch a rollback undoes, if one changed the config.
fn switch(model: &Model) -> Option<&crate::session::SwitchRecord> {
    model
        .actions
        .switched
        .as_ref()
        .map(|(_, r)| r)
        .filter(|r| r.changed)
}

pub fn guards(model: &Model) -> Vec<Guard> {
    if super::pooler_rollback::applies(model) {
        return super::pooler_rollback::guards(model);
    }
    const L: &str = "Something to undo";
    let frozen = model.actions.frozen.as_ref();
    let mut undo = Vec::new();
    if let Some(f) = frozen {
        undo.push(match &f.read_only_role {
            Some(role) => format!(
                "clients on {role} since {}: their config goes back",
                f.at.format("%H:%M:%S")
            ),
            None => format!(
                "{} frozen since {}",
                f.roles.join(", "),
                f.at.format("%H:%M:%S")
            ),
        });
    }
    if let (Some((at, r)), Some(u)) = (model.actions.switched.as_ref(), config_undo(model)) {
        if r.changed {
            undo.push(format!(
                "switched at {}: {} goes back to {}",
                at.format("%H:%M:%S"),
                r.key,
                u.restore
                    .as_deref()
                    .map_or("absent".into(), |f| format!("sha256:{f}"))
            ));
        }
    }
    let mut g = vec![
        guard::no_other_run(model),
        if undo.is_empty() {
            Guard::fail(L, "not frozen, and no switch that changed the config")
        } else {
            Guard::pass(L, undo.join("; "))
        },
        // Going back sends the app to the source: it must be there.
        guard::side_live(model, Side::Source),
    ];
    // (Any switch that changed the config, to the target or to the
    // read-only role, is one to undo.)
    if config_undo(model).is_some() {
        g.extend([
            guard::nothing_stranded(model),
            guard::kube_live(model),
            guard::access_review(model, guard::kube_verbs(model)),
            guard::workloads_found(model),
        ]);
    }
    g
}

pub fn plan(model: &Model) -> Option<Plan> {
    if super::pooler_rollback::applies(model) {
        return super::pooler_rollback::plan(model);
    }
    let info = model.info.as_ref()?;
    let switch = switch(model);
    // After the switch only a running reverse replication can be waited
    // for; before it, one an unfinished E run created is taken down too.
    let reverse = match switch {
        Some(_) => reverse_replication::running_since(model),
        None => reverse_replication::created_since(model),
    }
    .and(reverse_replication::name(model));
    let tables: Vec<String> = source_tables(model).iter().map(qualified).collect();
    let mut steps = Vec::new();
    let mut notes = Vec::new();
    match (&reverse, switch.is_some()) {
        // The app wrote to the target: stop that, let reverse replication
        // deliver it all, and give the source sequences past the target's.
        (Some(name), true) => {
            steps.push(Step::FreezeWrites {
                roles: info.app_roles.clone(),
                tables,
                side: Side::Target,
            });
            steps.push(Step::WaitReplicated {
                on: Side::Target,
                slot: name.clone(),
                timeout_s: WAIT_REPLICATED_S,
            });
            steps.push(Step::AdvanceSequences {
                schemas: schemas(model),
                stride: info.sequence_stride,
                to: Side::Source,
            });
            notes.push(format!(
                "the target stays frozen afterwards, and {name} in place: nothing is lost on \
                 either side"
            ));
        }
        // Not switched: the app never wrote to the target. Take reverse
        // replication down and let the forward subscription apply again.
        (Some(name), false) => {
            steps.push(Step::Sql {
                side: Side::Source,
                sql: format!("DROP SUBSCRIPTION {}", quote_ident(name)),
                lock_timeout_ms: 5_000,
                statement_timeout_ms: 60_000,
            });
            steps.push(Step::Sql {
                side: Side::Target,
                sql: format!("DROP PUBLICATION IF EXISTS {}", quote_ident(name)),
                lock_timeout_ms: 5_000,
                statement_timeout_ms: 30_000,
            });
            steps.push(enable_forward(&info.subscription));
            notes.push(format!(
                "{} applies again: the source's writes flow to the target as before",
                info.subscription
            ));
        }
        (None, _) => {
            if forward_stopped(model) {
                steps.push(enable_forward(&info.subscription));
            }
        }
    }
    // A freeze by read-only role took nothing on the server: the config
    // put back below ends it.
    if let Some(f) = model
        .actions
        .frozen
        .as_ref()
        .filter(|f| f.read_only_role.is_none())
    {
        steps.push(Step::UnfreezeWrites {
            roles: f.roles.clone(),
            grants: f.grants.clone(),
            side: Side::Source,
        });
    }
    let mut confirm = Confirm::Yes;
    match (config_undo(model), info.kubernetes.as_ref()) {
        (Some(u), Some(k)) if k.changes == Changes::Gitops => {
            // The revert goes through Git too: shown, then waited for.
            steps.push(Step::AwaitConfig {
                namespace: k.namespace.clone(),
                object: u.object.clone(),
                key: u.key.clone(),
                want: u.restore.clone(),
                was: Some(u.current.clone()),
                value_from: None,
                timeout_s: k.gitops_wait_secs,
                undo: true,
                // The revert of the read-only switch ends the freeze.
                to: if u.unfreezes {
                    SwitchTo::ReadOnly
                } else {
                    SwitchTo::Target
                },
            });
            if !u.object.starts_with("service/") {
                steps.extend(await_rollout_steps(
                    &k.namespace,
                    &super::rollout_restart::workloads(model, k),
                ));
            }
            confirm = Confirm::TypeName(object_name(&u.object).to_string());
        }
        (Some(u), Some(k)) => {
            steps.push(Step::RestoreConfig {
                namespace: k.namespace.clone(),
                object: u.object.clone(),
                key: u.key.clone(),
                restore: u.restore.clone(),
                expect_current: u.current.clone(),
                unfreezes: u.unfreezes,
            });
            steps.extend(restart_steps(
                &k.namespace,
                &super::rollout_restart::workloads(model, k),
            ));
            confirm = Confirm::TypeName(object_name(&u.object).to_string());
        }
        _ => {}
    }
    if steps.is_empty() {
        notes.push("nothing to undo: not frozen, and no switch that changed the config".into());
    }
    Some(Plan {
        checkpoint: CheckpointId::Rollback,
        confirm,
        steps,
        notes,
    })
}

fn enable_forward(subscription: &str) -> Step {
    Step::Sql {
        side: Side::Target,
        sql: format!("ALTER SUBSCRIPTION {} ENABLE", quote_ident(subscription)),
        lock_timeout_ms: 5_000,
        statement_timeout_ms: 30_000,
    }
}

/// The forward subscription exists and is disabled (reverse replication
/// stopped it, or a run did and failed after).
fn forward_stopped(model: &Model) -> bool {
    let Some(info) = model.info.as_ref() else {
        return false;
    };
    model.target.last.as_ref().is_some_and(|t| {
        t.subscriptions
            .iter()
            .any(|s| s.name == info.subscription && !s.enabled)
    })
}
