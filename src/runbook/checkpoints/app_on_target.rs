//! The application on the target, shown, not assumed: over a few seconds,
//! the target's rows written rise and the source's stay still, read from
//! each server's own statistics (so it works on real systems, not only the
//! lab), with the client sessions on each side. Read-only.

use crate::model::Model;
use crate::runbook::guard::{self, Guard};
use crate::runbook::plan::{Confirm, Plan, Step};
use crate::runbook::CheckpointId;
use crate::session::Side;

/// How long writes are watched on both sides.
pub const OBSERVE_S: u64 = 10;

pub fn guards(model: &Model) -> Vec<Guard> {
    let mut g = vec![
        guard::side_live(model, Side::Source),
        guard::side_live(model, Side::Target),
        guard::no_other_run(model),
    ];
    // With a Kubernetes side, cutover switched and restarted the app itself:
    // both must have happened, in that order. Without one, the switch was
    // made elsewhere and this check is how the console learns of it.
    // Through the pooler nothing restarts: the switch repointed it, and
    // every instance must serve from the target now.
    if super::pooler_switch::configured(model) {
        let switched = model.actions.switched.as_ref().map(|(at, _)| *at);
        g.push(Guard::check(
            "Pooler switched",
            switched.is_some(),
            match switched {
                Some(at) => format!("at {}", at.format("%H:%M:%S")),
                None => "not yet (S)".into(),
            },
        ));
        g.push(super::pooler_switch::instances_serving(
            model,
            Side::Target,
            "Pooler serves from the target",
        ));
        return g;
    }
    if model.info.as_ref().is_some_and(|i| i.kubernetes.is_some()) {
        let switched = model.actions.switched.as_ref().map(|(at, _)| *at);
        g.push(Guard::check(
            "Config switched",
            switched.is_some(),
            match switched {
                Some(at) => format!("at {}", at.format("%H:%M:%S")),
                None => "not yet (S)".into(),
            },
        ));
        let restarted = model
            .actions
            .history
            .iter()
            .rev()
            .find(|r| r.checkpoint == CheckpointId::RolloutRestart)
            .and_then(|r| match &r.finished {
                Some((at, true, _)) => Some(*at),
                _ => None,
            });
        let after = matches!((switched, restarted), (Some(s), Some(r)) if r >= s);
        g.push(Guard::check(
            "Workloads restarted after the switch",
            after,
            match restarted {
                Some(at) if after => format!("rollout complete at {}", at.format("%H:%M:%S")),
                Some(_) => "the last restart was before the switch (R)".into(),
                None => "not yet (R)".into(),
            },
        ));
        g.extend(on_new_config(model));
    }
    g
}

/// How long a GitOps wait may take to notice the change it waits for
/// (its watch): pods the change's own rollout started in that time are
/// not from before it.
const NOTICE_S: i64 = 2;

/// When the config object took the new value: the switch step's end (the
/// patch accepted, or the GitOps change seen, less the watch's notice)
/// in the run that switched — not the run's end, which under GitOps comes
/// after the rollout the change caused.
pub fn switch_time(model: &Model) -> Option<chrono::DateTime<chrono::Utc>> {
    use crate::runbook::Step;
    let (at, _) = model.actions.switched.as_ref()?;
    let run = model.actions.history.iter().rev().find(|r| {
        r.checkpoint == CheckpointId::SwitchConfig
            && matches!(&r.finished, Some((end, true, _)) if end == at)
    });
    let step = run.and_then(|r| {
        r.steps.iter().find_map(|s| match (&s.step, &s.finished) {
            (Step::PatchConfig { .. }, Some((t, Ok(_)))) => Some(*t),
            (Step::AwaitConfig { undo: false, .. }, Some((t, Ok(_)))) => {
                Some(*t - chrono::Duration::seconds(NOTICE_S))
            }
            _ => None,
        })
    });
    Some(step.unwrap_or(*at))
}

/// Every workload found using the config object (not only those the
/// config lists) is on the new value: none of its pods started before the
/// switch, and none uses a same-named object in another namespace, which
/// the switch did not change. None when the config object is not one pods
/// reference (a Service selector).
pub fn on_new_config(model: &Model) -> Option<Guard> {
    const L: &str = "No workload on the old config";
    let info = model.info.as_ref()?;
    if !info.config_users {
        return None;
    }
    let k = info.kubernetes.as_ref()?;
    let obj = crate::kube::ConfigObject::parse(k.config_object.as_deref()?)?;
    if matches!(obj, crate::kube::ConfigObject::Service(_)) {
        return None;
    }
    let Some(switched) = switch_time(model) else {
        return Some(Guard::fail(L, "nothing switched yet (S)"));
    };
    let state = &model.config_users;
    if let Some((since, e)) = &state.failing {
        return Some(Guard::fail(
            L,
            format!(
                "the search for them fails since {}: {e}",
                since.format("%H:%M:%S")
            ),
        ));
    }
    let (Some((home, users)), Some(at), Some(now)) = (&state.last, state.last_ok, model.now) else {
        return Some(Guard::fail(L, "not searched yet"));
    };
    let age = (now - at).num_seconds();
    let limit = (crate::kube::discover::RESEND_S + 2 * crate::kube::discover::EVERY_S) as i64;
    if age > limit {
        return Some(Guard::fail(L, format!("last searched {age} s ago")));
    }
    let mut old = Vec::new();
    for u in users {
        if u.namespace != *home {
            old.push(format!(
                "{} uses {obj} in {}, which the switch does not change",
                u.describe(home),
                u.namespace
            ));
            continue;
        }
        let before = u.pods_before(switched);
        if let Some(first) = before.first() {
            old.push(format!(
                "{}: {} pod{} from before the switch ({}{}) — restart it",
                u.describe(home),
                before.len(),
                if before.len() == 1 { "" } else { "s" },
                first.name,
                if before.len() > 1 { ", …" } else { "" }
            ));
        }
    }
    Some(if old.is_empty() {
        Guard::pass(
            L,
            format!(
                "{} using {obj}, every pod started after the switch",
                match users.len() {
                    1 => users[0].describe(home),
                    n => format!("{n} workloads"),
                }
            ),
        )
    } else {
        Guard::fail(L, old.join("; "))
    })
}

pub fn plan(model: &Model) -> Option<Plan> {
    model.info.as_ref()?;
    Some(Plan {
        checkpoint: CheckpointId::AppOnTarget,
        steps: vec![Step::ObserveApp {
            seconds: OBSERVE_S,
            reverse: super::reverse_replication::running_since(model).is_some(),
        }],
        confirm: Confirm::Yes,
        notes: vec![
            "read-only; passes when the target gains writes and the source has none".into(),
        ],
    })
}
