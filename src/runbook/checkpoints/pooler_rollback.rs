//! The way back through the pooler, after its switch: the switch in mirror,
//! one plan while PgBouncer holds the application's queries — `PAUSE` on
//! every instance, reverse replication's lag 0 against the target's
//! position taken after the pause, the source's sequences past the
//! target's, the entry repointed to the source, `RELOAD`, `RESUME`, the
//! proof. Nothing written on the target is lost: reverse replication
//! delivered it before the app came back. A failure before `RESUME` resumes
//! on the target, where the app was.

use crate::model::Model;
use crate::runbook::guard::{self, Guard};
use crate::runbook::plan::{Confirm, Plan, Step, WAIT_REPLICATED_S};
use crate::runbook::CheckpointId;
use crate::session::Side;

use super::pooler_switch::{entry_now, instances_now, instances_serving};
use super::reverse_replication;

/// Whether the switch to undo went through the pooler.
pub fn applies(model: &Model) -> bool {
    super::pooler_switch::configured(model)
        && model
            .actions
            .switched
            .as_ref()
            .is_some_and(|(_, r)| r.changed && r.object.starts_with("pooler "))
}

pub fn guards(model: &Model) -> Vec<Guard> {
    let reverse = reverse_replication::running_since(model);
    vec![
        guard::no_other_run(model),
        guard::side_live(model, Side::Source),
        guard::side_live(model, Side::Target),
        instances_serving(model, Side::Target, "Pooler serves from the target"),
        match entry_now(model) {
            Ok(f) => Guard::pass(
                "Pooler entry readable",
                format!("line {}: {}", f.line_no, f.shown),
            ),
            Err(e) => Guard::fail("Pooler entry readable", e),
        },
        Guard::check(
            "Reverse replication runs",
            reverse.is_some(),
            match reverse {
                Some(at) => format!(
                    "since {}: every write the app made on the target reaches the source",
                    at.format("%H:%M:%S")
                ),
                None => "without it the app's writes on the target would stay there".into(),
            },
        ),
    ]
}

pub fn plan(model: &Model) -> Option<Plan> {
    let info = model.info.as_ref()?;
    let pooler = info.pooler.as_ref()?;
    let instances = instances_now(model)?;
    let reverse = reverse_replication::name(model)?;
    Some(Plan {
        checkpoint: CheckpointId::Rollback,
        steps: [
            Step::PoolerPause {
                instances,
                database: pooler.database.clone(),
                timeout_s: pooler.pause_timeout_secs,
                on: Side::Target,
            },
            Step::WaitReplicated {
                on: Side::Target,
                slot: reverse.clone(),
                timeout_s: WAIT_REPLICATED_S.min(info.freeze_budget_secs.max(1)),
            },
            Step::AdvanceSequences {
                schemas: super::advance_sequences::schemas(model),
                stride: info.sequence_stride,
                to: Side::Source,
            },
        ]
        .into_iter()
        .chain(super::pooler_switch::move_steps(model, Side::Source)?)
        .collect(),
        confirm: Confirm::TypeName(pooler.database.clone()),
        notes: vec![
            "the application's queries wait from PAUSE to RESUME: latency, not errors".into(),
            format!(
                "{reverse} stays in place and the forward subscription stopped: the target \
                 keeps everything it had"
            ),
            "if any step fails before RESUME: the entry is put back, RELOAD, RESUME on the \
             target, where the app was"
                .into(),
        ],
    })
}
