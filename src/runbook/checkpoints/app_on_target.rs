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
    }
    g
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
