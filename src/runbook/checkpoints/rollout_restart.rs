//! Rollout-restart the application's workloads and watch them become ready:
//! the pods then read the config the switch wrote. Under GitOps it only
//! watches the rollouts the merged change causes (the console restarts
//! nothing there).

use crate::config::Changes;
use crate::model::Model;
use crate::runbook::guard::{self, Guard};
use crate::runbook::plan::{await_rollout_steps, restart_steps, Confirm, Plan, Workloads};
use crate::runbook::CheckpointId;
use crate::session::Side;

pub fn guards(model: &Model) -> Vec<Guard> {
    vec![
        guard::kube_live(model),
        guard::access_review(model, guard::kube_verbs(model)),
        guard::no_other_run(model),
        guard::workloads_found(model),
        // Restarted pods connect to what the config says now: the target
        // after a switch, else the source.
        guard::side_live(
            model,
            if model.actions.switched.is_some() {
                Side::Target
            } else {
                Side::Source
            },
        ),
    ]
}

/// What a restart moves: the Deployments the config lists, and those and
/// the StatefulSets found using the config object in its namespace (in
/// another namespace they use a same-named object the switch does not
/// change: restarting them would not help, and the guard on the app's
/// move names them).
pub fn workloads(model: &Model, k: &crate::session::KubeInfo) -> Workloads {
    let mut w = Workloads {
        deployments: k.deployments.clone(),
        statefulsets: vec![],
    };
    let searched = model.info.as_ref().is_some_and(|i| i.config_users);
    if let (true, Some((home, users))) = (searched, &model.config_users.last) {
        for u in users.iter().filter(|u| u.namespace == *home) {
            let list = match u.kind.as_str() {
                "deployment" => &mut w.deployments,
                "statefulset" => &mut w.statefulsets,
                _ => continue,
            };
            if !list.contains(&u.name) {
                list.push(u.name.clone());
            }
        }
    }
    w
}

pub fn plan(model: &Model) -> Option<Plan> {
    let k = model.info.as_ref()?.kubernetes.as_ref()?;
    let w = workloads(model, k);
    let name = if k.deployments.len() == 1 {
        k.deployments[0].clone()
    } else {
        k.namespace.clone()
    };
    let steps = match k.changes {
        Changes::Patch => restart_steps(&k.namespace, &w),
        Changes::Gitops => await_rollout_steps(&k.namespace, &w),
    };
    Some(Plan {
        checkpoint: CheckpointId::RolloutRestart,
        steps,
        confirm: Confirm::TypeName(name),
        notes: vec![],
    })
}
