//! Verify while live: the continuous checksum verification of every
//! selected table while replication runs, read-only. Done once every table
//! has been verified (every key range equal at its latest check) with no
//! confirmed difference; the verification goes on after that, and the
//! CUTOVER guards read its latest result (`guard::verified_live`).

use crate::model::Model;
use crate::runbook::guard::{self, Guard};
use crate::runbook::plan::{Confirm, Plan, Step};
use crate::runbook::CheckpointId;
use crate::session::Side;

use super::wait_initial_sync::not_ready;

pub fn guards(model: &Model) -> Vec<Guard> {
    let synced = match not_ready(model) {
        Some((0, n)) if n > 0 => Guard::pass("Initial sync complete", format!("all {n} tables ready")),
        Some((left, n)) if n > 0 => Guard::fail(
            "Initial sync complete",
            format!("{left} of {n} tables not ready: a table still copying cannot be compared (W waits for it)"),
        ),
        _ => Guard::fail("Initial sync complete", "no subscription on the target yet (U creates it)"),
    };
    vec![
        guard::side_live(model, Side::Source),
        guard::side_live(model, Side::Target),
        guard::no_other_run(model),
        synced,
        Guard::check(
            "No verification running",
            !model.verify_running(),
            if model.verify_running() {
                "a verification runs: x stops it"
            } else {
                "idle"
            },
        ),
    ]
}

pub fn plan(model: &Model) -> Option<Plan> {
    model.info.as_ref()?;
    let tables = crate::model::verify_tables(model);
    let live = guard::verified_live(model);
    let (steps, notes) = if live.passes() && model.verify_running() {
        (vec![], vec![format!("already done: {}", live.detail())])
    } else if tables.is_empty() {
        (
            vec![],
            vec!["no table exists on both sides yet".to_string()],
        )
    } else {
        (
            vec![Step::VerifyLive { tables }],
            vec![
                "read-only; it yields to replication when lag passes its bound".to_string(),
                "done once every table is verified; it goes on verifying until x, and the \
                 CUTOVER guards read its latest result"
                    .to_string(),
            ],
        )
    };
    Some(Plan {
        checkpoint: CheckpointId::VerifyLive,
        steps,
        confirm: Confirm::Yes,
        notes,
    })
}
