//! The preflight, from the console: the checks of `cutover check` (versions,
//! wal_level, slots and senders, replica identities, the target's schema,
//! strays, long transactions, sequences), read-only on both sides. It
//! passes when every check does; the failing ones are named with their fix.

use crate::model::Model;
use crate::runbook::guard::{self, Guard};
use crate::runbook::plan::{Confirm, Plan, Step};
use crate::runbook::CheckpointId;
use crate::session::Side;

pub fn guards(model: &Model) -> Vec<Guard> {
    vec![
        guard::side_live(model, Side::Source),
        guard::side_live(model, Side::Target),
        guard::no_other_run(model),
    ]
}

pub fn plan(_model: &Model) -> Option<Plan> {
    Some(Plan {
        checkpoint: CheckpointId::Preflight,
        steps: vec![Step::Preflight],
        confirm: Confirm::Yes,
        notes: vec!["Read-only; `cutover check` prints the same checks.".into()],
    })
}
