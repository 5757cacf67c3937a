//! Wait for the initial sync: every table of the subscription `r`eady.

use crate::model::Model;
use crate::runbook::guard::{self, Guard};
use crate::runbook::plan::{Confirm, Plan, Step};
use crate::runbook::CheckpointId;
use crate::session::Side;

/// Tables of the subscription not yet ready, and how many it has.
pub fn not_ready(model: &Model) -> Option<(usize, usize)> {
    let info = model.info.as_ref()?;
    let t = model.target.last.as_ref()?;
    let rows: Vec<_> = t
        .sub_tables
        .iter()
        .filter(|r| r.subscription == info.subscription)
        .collect();
    Some((rows.iter().filter(|r| r.state != "r").count(), rows.len()))
}

pub fn guards(model: &Model) -> Vec<Guard> {
    vec![
        guard::side_live(model, Side::Target),
        guard::no_other_run(model),
        super::prepare::subscription_guard(model, "on the target", "create it first (U)"),
    ]
}

pub fn plan(model: &Model) -> Option<Plan> {
    let info = model.info.as_ref()?;
    let (steps, notes) = match not_ready(model) {
        Some((0, n)) if n > 0 => (
            vec![],
            vec![format!("already done: all {n} tables are ready")],
        ),
        Some((left, n)) => (
            vec![Step::WaitSync {
                subscription: info.subscription.clone(),
                timeout_s: 6 * 3600,
            }],
            vec![format!("{left} of {n} tables not ready yet")],
        ),
        None => (
            vec![Step::WaitSync {
                subscription: info.subscription.clone(),
                timeout_s: 6 * 3600,
            }],
            vec![],
        ),
    };
    Some(Plan {
        checkpoint: CheckpointId::WaitInitialSync,
        steps,
        confirm: Confirm::Yes,
        notes,
    })
}
