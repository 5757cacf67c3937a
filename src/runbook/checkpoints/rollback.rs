//! Roll back, from the freeze on: give the source its writes back (exactly
//! the privileges the freeze took), put back the config value the switch
//! replaced (known by its fingerprint; the value itself is kept apart from
//! the log), then restart the workloads onto the source.

use crate::model::Model;
use crate::runbook::guard::{self, Guard};
use crate::runbook::plan::{object_name, restart_steps, Confirm, Plan, Step};
use crate::runbook::CheckpointId;
use crate::session::Side;

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
    const L: &str = "Something to undo";
    let frozen = model.actions.frozen.as_ref();
    let mut undo = Vec::new();
    if let Some(f) = frozen {
        undo.push(format!(
            "{} frozen since {}",
            f.roles.join(", "),
            f.at.format("%H:%M:%S")
        ));
    }
    if let Some((at, r)) = model.actions.switched.as_ref() {
        if r.changed {
            undo.push(format!(
                "switched at {}: {} goes back to {}",
                at.format("%H:%M:%S"),
                r.key,
                r.previous_fingerprint
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
    if switch(model).is_some() {
        g.extend([
            guard::nothing_stranded(model),
            guard::kube_live(model),
            guard::access_review(model, &["get", "patch"]),
            guard::workloads_found(model),
        ]);
    }
    g
}

pub fn plan(model: &Model) -> Option<Plan> {
    let info = model.info.as_ref()?;
    let mut steps = Vec::new();
    if let Some(f) = model.actions.frozen.as_ref() {
        steps.push(Step::UnfreezeWrites {
            roles: f.roles.clone(),
            grants: f.grants.clone(),
        });
    }
    let mut confirm = Confirm::Yes;
    if let (Some(r), Some(k)) = (switch(model), info.kubernetes.as_ref()) {
        steps.push(Step::RestoreConfig {
            namespace: k.namespace.clone(),
            object: r.object.clone(),
            key: r.key.clone(),
            restore: r.previous_fingerprint.clone(),
            expect_current: r.new_fingerprint.clone(),
        });
        steps.extend(restart_steps(&k.namespace, &k.deployments));
        confirm = Confirm::TypeName(object_name(&r.object).to_string());
    }
    let notes = if steps.is_empty() {
        vec!["nothing to undo: not frozen, and no switch that changed the config".into()]
    } else {
        vec![]
    };
    Some(Plan {
        checkpoint: CheckpointId::Rollback,
        confirm,
        steps,
        notes,
    })
}
