//! FINISH: drop the forward subscription on the target, which drops its
//! slot on the source (no more WAL kept there for it). The source keeps its
//! data and its publication: it stays the rollback target, and reverse
//! replication, where it runs, goes on.

use crate::model::Model;
use crate::runbook::guard::{self, Guard};
use crate::runbook::plan::{Confirm, Plan, Step};
use crate::runbook::CheckpointId;
use crate::session::Side;

use super::prepare::subscription_exists;

/// The app runs on the target, as the app check (T) showed after the switch.
fn app_on_target(model: &Model) -> Guard {
    const L: &str = "App shown on the target";
    let Some((switched, _)) = model.actions.switched.as_ref() else {
        return Guard::fail(L, "not switched: the app still uses the source");
    };
    let shown = guard::latest_run(model, CheckpointId::AppOnTarget, Some(*switched));
    match shown.and_then(|r| r.finished.as_ref()) {
        Some((at, true, m)) => Guard::pass(L, format!("{} ({m})", at.format("%H:%M:%S"))),
        Some((_, false, m)) => Guard::fail(L, format!("T failed: {m}")),
        None => Guard::fail(L, "not shown yet since the switch: T checks it"),
    }
}

pub fn guards(model: &Model) -> Vec<Guard> {
    vec![
        guard::side_live(model, Side::Source),
        guard::side_live(model, Side::Target),
        guard::no_other_run(model),
        app_on_target(model),
    ]
}

pub fn plan(model: &Model) -> Option<Plan> {
    let info = model.info.as_ref()?;
    let name = info.subscription.clone();
    // Gone after the switch: dropped (here or by hand). Before the switch
    // there is nothing to finish yet, whatever the target has.
    let gone = !subscription_exists(model) && model.actions.switched.is_some();
    let (steps, notes) = if !gone {
        (
            vec![Step::Sql {
                side: Side::Target,
                sql: format!(
                    "DROP SUBSCRIPTION {}",
                    crate::pg::monitor::quote_ident(&name)
                ),
                lock_timeout_ms: 5_000,
                statement_timeout_ms: 60_000,
            }],
            vec![
                format!("its slot {} on the source is dropped with it", info.slot),
                "the source keeps its data and publication: it stays the rollback target".into(),
            ],
        )
    } else {
        (
            vec![],
            vec![format!(
                "already done: no subscription {name} on the target"
            )],
        )
    };
    let mut notes = notes;
    notes.push(format!(
        "then the migration report is written to {}",
        info.report_path
            .as_deref()
            .unwrap_or("the session log's name with .report.txt")
    ));
    Some(Plan {
        checkpoint: CheckpointId::DropSubscription,
        steps,
        confirm: Confirm::TypeName(name),
        notes,
    })
}
