//! In the window (writes frozen): wait until the subscription's slot has
//! confirmed the source's WAL position — lag 0 against a position taken
//! after the freeze, not "lag under a bound" — then the final pass
//! (`verify_final`, which builds on the live verification's report): every
//! key range's count and checksum on both sides, whose counts add up to each
//! table's exact count, in one scan. Any difference fails it with
//! the tables and rows named, and the switch's guard with it; going on
//! anyway is an override with a typed reason.

use crate::model::Model;
use crate::runbook::guard::{self, Guard};
use crate::runbook::plan::{Confirm, Plan, Step, WAIT_REPLICATED_S};
use crate::runbook::{CheckpointId, Variant};
use crate::session::Side;

pub fn guards(model: &Model) -> Vec<Guard> {
    vec![
        guard::side_live(model, Side::Source),
        guard::side_live(model, Side::Target),
        guard::no_other_run(model),
        guard::writes_frozen(model),
    ]
    .into_iter()
    .chain(
        (crate::runbook::variant(model) == Variant::DumpRestore)
            .then(|| super::dump_restore::copied_in_freeze(model)),
    )
    .chain(std::iter::once(something_to_verify(model)))
    .collect()
}

/// A final check over no table proves nothing: right after a copy, the
/// target's tables appear with its next sample.
fn something_to_verify(model: &Model) -> Guard {
    let n = crate::model::verify_tables(model).len();
    Guard::check(
        "Tables to verify",
        n > 0,
        if n > 0 {
            format!("{n} on both sides")
        } else {
            "none exists on both sides yet: it would verify nothing".into()
        },
    )
}

pub fn plan(model: &Model) -> Option<Plan> {
    let info = model.info.as_ref()?;
    let tables = crate::model::verify_tables(model);
    let (steps, notes) = if tables.is_empty() {
        (
            vec![],
            vec!["no table exists on both sides yet".to_string()],
        )
    } else {
        (
            match crate::runbook::variant(model) {
                Variant::Logical => vec![
                    Step::WaitReplicated {
                        on: Side::Source,
                        slot: info.slot.clone(),
                        timeout_s: WAIT_REPLICATED_S,
                    },
                    Step::VerifyFinal { tables },
                ],
                // Both sides still: whatever differs is a real difference.
                Variant::DumpRestore => vec![Step::VerifyFinal { tables }],
            },
            vec![
                "read-only; the live verification stops and hands its report to the final pass"
                    .to_string(),
                "a difference blocks the switch, rows named; an override needs a typed reason"
                    .to_string(),
            ],
        )
    };
    Some(Plan {
        checkpoint: CheckpointId::FinalCheck,
        steps,
        confirm: Confirm::Yes,
        notes,
    })
}
