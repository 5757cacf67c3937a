//! Copy the schema to the target (`pg_dump --schema-only` into the target):
//! replication copies rows, not DDL. Skipped with its reason when the target
//! already has every table the source has; never run over a target that
//! holds some of them (that difference is shown, not overwritten).

use crate::model::Model;
use crate::runbook::guard::{self, Guard};
use crate::runbook::plan::{Confirm, Plan, Step};
use crate::runbook::CheckpointId;
use crate::session::Side;

use super::prepare::{missing_on_target, source_tables};

pub fn guards(model: &Model) -> Vec<Guard> {
    const L: &str = "Target has none of the tables yet";
    let present = present_on_target(model);
    let partial = if present.is_empty() || missing_on_target(model).is_empty() {
        Guard::pass(L, "nothing to overwrite")
    } else {
        Guard::fail(
            L,
            format!(
                "the target already has {} of them ({}): compare the schemas by hand, \
                 nothing is overwritten",
                present.len(),
                present.join(", ")
            ),
        )
    };
    vec![
        guard::side_live(model, Side::Source),
        guard::side_live(model, Side::Target),
        guard::no_other_run(model),
        partial,
    ]
}

fn present_on_target(model: &Model) -> Vec<String> {
    let missing = missing_on_target(model);
    source_tables(model)
        .into_iter()
        .filter(|t| !missing.contains(t))
        .map(|t| t.to_string())
        .collect()
}

pub fn plan(model: &Model) -> Option<Plan> {
    let missing = missing_on_target(model);
    let (steps, notes) = if source_tables(model).is_empty() {
        (vec![], vec!["no tables seen on the source yet".to_string()])
    } else if missing.is_empty() {
        (
            vec![],
            vec!["already done: the target has every table the source has".to_string()],
        )
    } else {
        (
            vec![Step::CopySchema {
                tables_missing: missing.len(),
            }],
            vec![format!("{} tables missing on the target", missing.len())],
        )
    };
    Some(Plan {
        checkpoint: CheckpointId::CopySchema,
        steps,
        confirm: Confirm::Yes,
        notes,
    })
}
