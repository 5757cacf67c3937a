//! Switch the application's database config: write the new value (read
//! from `switch_to_env`/`switch_to_file`, shown only as a fingerprint) into
//! the config object's key. Pods read it when they start: the rollout
//! restart checkpoint follows.
//!
//! Through a connection pooler (`[pooler]`) it is another plan, which
//! pauses, repoints and resumes PgBouncer: `pooler_switch`.
//!
//! Under GitOps (`[kubernetes] changes = "gitops"`) it writes nothing: its
//! plan is the change to make through Git, the wait until the cluster shows
//! it, and the rollouts that change causes.

use crate::config::Changes;
use crate::model::Model;
use crate::runbook::guard::{self, Guard};
use crate::runbook::plan::{await_rollout_steps, object_name, Confirm, Plan, Step, SwitchTo};
use crate::runbook::{CheckpointId, Variant};

pub fn guards(model: &Model) -> Vec<Guard> {
    if super::pooler_switch::configured(model) {
        return super::pooler_switch::guards(model);
    }
    vec![
        guard::kube_live(model),
        guard::access_review(model, guard::kube_verbs(model)),
        guard::no_other_run(model),
        value_readable(model),
    ]
    .into_iter()
    .chain(match crate::runbook::variant(model) {
        Variant::Logical => vec![
            guard::caught_up(model),
            guard::verified_live(model),
            guard::sequences_advanced(model),
            guard::writes_frozen(model),
            guard::caught_up_after_freeze(model),
            guard::final_checked(model),
        ],
        // The sequences came with the dump, taken from the frozen source.
        Variant::DumpRestore => vec![
            guard::writes_frozen(model),
            super::dump_restore::copied_in_freeze(model),
            super::dump_restore::verified_after_copy(model),
        ],
    })
    .collect()
}

fn value_readable(model: &Model) -> Guard {
    const L: &str = "Switch value readable";
    let Some(k) = model.info.as_ref().and_then(|i| i.kubernetes.as_ref()) else {
        return Guard::fail(L, "no [kubernetes] section");
    };
    let value = model.actions.switch_value();
    match (&k.config_object, &k.config_key, &k.switch_to, value) {
        (None, _, _, _) | (_, None, _, _) => {
            Guard::fail(L, "config_object and config_key are not configured")
        }
        (_, _, None, _) => Guard::fail(
            L,
            "no switch value: set kubernetes.switch_to_env or switch_to_file",
        ),
        (_, _, Some(src), None) => Guard::fail(L, format!("{src} not read yet")),
        (_, _, Some(src), Some(v)) => match (&v.new_fingerprint, &v.error) {
            (Some(fp), _) => Guard::pass(L, format!("{src}: sha256:{fp}")),
            (None, Some(e)) => Guard::fail(L, e.clone()),
            (None, None) => Guard::fail(L, format!("{src} not read yet")),
        },
    }
}

pub fn plan(model: &Model) -> Option<Plan> {
    if super::pooler_switch::configured(model) {
        return super::pooler_switch::plan(model);
    }
    let k = model.info.as_ref()?.kubernetes.as_ref()?;
    let object = k.config_object.clone()?;
    let key = k.config_key.clone()?;
    let value = model.actions.switch_value();
    let new_fingerprint = value.and_then(|v| v.new_fingerprint.clone());
    // After a freeze by read-only role the key holds what that switch
    // wrote, newer than the access review's read.
    let expect_current = match model.actions.read_only_switch.as_ref() {
        Some((_, r)) => Some(r.new_fingerprint.clone()),
        None => value.and_then(|v| v.current_fingerprint.clone()),
    };
    let mut notes = Vec::new();
    match (&expect_current, &new_fingerprint) {
        (Some(c), Some(n)) if c == n => {
            notes.push(format!("{key} already holds sha256:{n}: nothing to patch"))
        }
        (Some(c), _) => notes.push(format!("{key} now holds sha256:{c}")),
        (None, _) => notes.push(format!("{key} is absent or unreadable now")),
    }
    if k.changes == Changes::Gitops {
        notes.push(
            "GitOps: the console writes nothing. Merge the change; the step ends when the \
             cluster shows it, then each rollout it causes is watched (the change must also \
             change the pod template, e.g. a checksum/config annotation)."
                .into(),
        );
        let mut steps = vec![Step::AwaitConfig {
            namespace: k.namespace.clone(),
            object: object.clone(),
            key,
            want: new_fingerprint,
            was: expect_current,
            value_from: k.switch_to.clone(),
            timeout_s: k.gitops_wait_secs,
            undo: false,
            to: SwitchTo::Target,
        }];
        // A Service's selector moves the traffic by itself: no rollout.
        if !object.starts_with("service/") {
            steps.extend(await_rollout_steps(
                &k.namespace,
                &super::rollout_restart::workloads(model, k),
            ));
        }
        return Some(Plan {
            checkpoint: CheckpointId::SwitchConfig,
            confirm: Confirm::TypeName(object_name(&object).to_string()),
            steps,
            notes,
        });
    }
    notes.push("Pods read the config when they start: restart them (R) to use it.".into());
    Some(Plan {
        checkpoint: CheckpointId::SwitchConfig,
        confirm: Confirm::TypeName(object_name(&object).to_string()),
        steps: vec![Step::PatchConfig {
            namespace: k.namespace.clone(),
            object,
            key,
            new_fingerprint,
            expect_current,
            to: SwitchTo::Target,
        }],
        notes,
    })
}
