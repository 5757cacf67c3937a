//! Roll back: put back the config value the switch replaced (known by its
//! fingerprint; the value itself is kept apart from the log), then restart
//! the workloads onto the source.

use crate::model::Model;
use crate::runbook::guard::{self, Guard};
use crate::runbook::plan::{object_name, restart_steps, Confirm, Plan, Step};
use crate::runbook::CheckpointId;
use crate::session::Side;

pub fn guards(model: &Model) -> Vec<Guard> {
    const L: &str = "Previous value captured";
    let captured = match model.actions.switched.as_ref() {
        Some((at, r)) if r.changed => Guard::pass(
            L,
            format!(
                "switched at {}: {} goes back to {}",
                at.format("%H:%M:%S"),
                r.key,
                r.previous_fingerprint
                    .as_deref()
                    .map_or("absent".into(), |f| format!("sha256:{f}"))
            ),
        ),
        Some(_) => Guard::fail(
            L,
            "the last switch patched nothing: there is nothing to undo",
        ),
        None => Guard::fail(L, "no switch in this session"),
    };
    vec![
        guard::kube_live(model),
        guard::access_review(model, &["get", "patch"]),
        guard::no_other_run(model),
        captured,
        guard::workloads_found(model),
        // Going back sends the app to the source: it must be there.
        guard::side_live(model, Side::Source),
    ]
}

pub fn plan(model: &Model) -> Option<Plan> {
    let k = model.info.as_ref()?.kubernetes.as_ref()?;
    let object = k.config_object.clone()?;
    let mut steps = Vec::new();
    if let Some((_, r)) = model.actions.switched.as_ref().filter(|(_, r)| r.changed) {
        steps.push(Step::RestoreConfig {
            namespace: k.namespace.clone(),
            object: r.object.clone(),
            key: r.key.clone(),
            restore: r.previous_fingerprint.clone(),
            expect_current: r.new_fingerprint.clone(),
        });
    }
    steps.extend(restart_steps(&k.namespace, &k.deployments));
    Some(Plan {
        checkpoint: CheckpointId::Rollback,
        confirm: Confirm::TypeName(object_name(&object).to_string()),
        steps,
        notes: vec![],
    })
}
