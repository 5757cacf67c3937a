//! Advance the target's sequences (identity columns included) to at least
//! the source's values plus the configured stride, so the application's
//! first insert on the target does not collide with a key the source handed
//! out. The values are read when the step runs — after the freeze, where
//! the runbook has one — and each sequence's source value, target value
//! before and value set are logged. Never lowers a sequence: running it
//! again changes only what fell behind.

use crate::model::Model;
use crate::runbook::guard::{self, Guard};
use crate::runbook::plan::{Confirm, Plan, Step};
use crate::runbook::CheckpointId;
use crate::session::Side;

use super::prepare::{source_tables, subscription_guard};

pub fn guards(model: &Model) -> Vec<Guard> {
    vec![
        guard::side_live(model, Side::Source),
        guard::side_live(model, Side::Target),
        guard::no_other_run(model),
        subscription_guard(
            model,
            "the target has the source's schema and data",
            "create it first (U): the target's sequences come with its schema",
        ),
    ]
}

/// The schemas of the selected tables, in order, once each.
pub(crate) fn schemas(model: &Model) -> Vec<String> {
    let mut out: Vec<String> = source_tables(model).into_iter().map(|t| t.schema).collect();
    out.sort();
    out.dedup();
    out
}

pub fn plan(model: &Model) -> Option<Plan> {
    let info = model.info.as_ref()?;
    let schemas = schemas(model);
    let (steps, notes) = if schemas.is_empty() {
        (vec![], vec!["no tables seen on the source yet".to_string()])
    } else {
        (
            vec![Step::AdvanceSequences {
                schemas,
                stride: info.sequence_stride,
                to: Side::Target,
            }],
            vec![
                "values are read when it runs; run it after the freeze, when the source \
                 hands out no more"
                    .to_string(),
                "never lowers a sequence: again, it changes only what fell behind".to_string(),
            ],
        )
    };
    Some(Plan {
        checkpoint: CheckpointId::AdvanceSequences,
        steps,
        confirm: Confirm::Yes,
        notes,
    })
}
