//! The dump-and-restore runbook's copy, with writes frozen: `pg_dump` of
//! the source in directory format and `pg_restore` of it into the target,
//! each with parallel jobs — schema, data and sequences, no owner and no
//! privileges (the target's own default privileges give the application
//! roles theirs; the source's, revoked by the freeze, must not travel).
//! Never run over a target that holds some of the tables.

use crate::model::Model;
use crate::runbook::guard::{self, latest_run, Guard};
use crate::runbook::plan::{Confirm, Plan, Step};
use crate::runbook::CheckpointId;
use crate::session::Side;

use super::copy_schema::present_on_target;
use super::prepare::{missing_on_target, source_tables};

pub fn guards(model: &Model) -> Vec<Guard> {
    vec![
        guard::side_live(model, Side::Source),
        guard::side_live(model, Side::Target),
        guard::no_other_run(model),
        guard::writes_frozen(model),
        target_empty(model),
    ]
}

/// pg_restore stops at the first table the target already has: the copy
/// (and the freeze that starts the outage for it) wants none of them there,
/// unless this copy already made them.
pub fn target_empty(model: &Model) -> Guard {
    const L: &str = "Target has none of the tables yet";
    let present = present_on_target(model);
    if present.is_empty() || copied(model).is_some() {
        return Guard::pass(L, "nothing to overwrite");
    }
    Guard::fail(
        L,
        format!(
            "the target already has {} of them ({}): the restore would stop at the first; \
             nothing is overwritten — drop them on the target or pick another database",
            present.len(),
            present.join(", ")
        ),
    )
}

/// When the copy last succeeded after the freeze began (and so holds
/// everything the frozen source has).
pub fn copied(model: &Model) -> Option<chrono::DateTime<chrono::Utc>> {
    let frozen = model.actions.frozen.as_ref()?.at;
    match latest_run(model, CheckpointId::DumpRestore, Some(frozen))?.finished {
        Some((at, true, _)) => Some(at),
        _ => None,
    }
}

/// The guard of what follows the copy: it succeeded in this freeze.
pub fn copied_in_freeze(model: &Model) -> Guard {
    const L: &str = "Copied in the freeze";
    match copied(model) {
        Some(at) => Guard::pass(
            L,
            format!("dump and restore done at {}", at.format("%H:%M:%S")),
        ),
        None => Guard::fail(L, "no dump and restore since the freeze: run it (Y)"),
    }
}

/// The switch's: a final check that began after the copy ended, and passed.
pub fn verified_after_copy(model: &Model) -> Guard {
    const L: &str = "Verified after the copy";
    let Some(copied) = copied(model) else {
        return Guard::fail(L, "nothing copied in this freeze yet");
    };
    match latest_run(model, CheckpointId::FinalCheck, Some(copied)).map(|r| &r.finished) {
        None => Guard::fail(
            L,
            "not run since the copy: C counts and checksums every table",
        ),
        Some(None) => Guard::fail(L, "running"),
        Some(Some((_, false, m))) => Guard::fail(L, format!("failed: {m}")),
        Some(Some((at, true, m))) => Guard::pass(L, format!("{} ({m})", at.format("%H:%M:%S"))),
    }
}

pub fn plan(model: &Model) -> Option<Plan> {
    let info = model.info.as_ref()?;
    let tables = source_tables(model);
    let (steps, notes) = if tables.is_empty() {
        (vec![], vec!["no tables seen on the source yet".to_string()])
    } else if copied(model).is_some() && missing_on_target(model).is_empty() {
        (
            vec![],
            vec!["already done in this freeze: the target has every table".to_string()],
        )
    } else {
        (
            vec![match &info.copy_job {
                Some(job) => Step::CopyJob {
                    job: job.clone(),
                    tables: tables.len(),
                },
                None => Step::DumpRestore {
                    jobs: info.dump_jobs.max(1),
                    tables: tables.len(),
                },
            }],
            vec![
                "the write freeze lasts the whole copy; x cancels it (the target then holds \
                 a part: drop it before copying again)"
                    .to_string(),
                "sequences come with the dump, set to the frozen source's values".to_string(),
            ],
        )
    };
    Some(Plan {
        checkpoint: CheckpointId::DumpRestore,
        steps,
        confirm: Confirm::Yes,
        notes,
    })
}
