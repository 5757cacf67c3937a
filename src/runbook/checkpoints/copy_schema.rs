//! Copy the schema to the target (`pg_dump --schema-only` into the target):
//! replication copies rows, not DDL. Skipped with its reason when the target
//! already has every table the source has; never run over a target that
//! holds some of them (that difference is shown, not overwritten). The copy
//! carries the GRANTs, so it waits for a preflight that found every granted
//! role on the target.

use crate::model::Model;
use crate::runbook::guard::{self, Guard};
use crate::runbook::plan::{Confirm, Plan, Step};
use crate::runbook::preflight::ROLES_CHECK;
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
        roles_on_target(model),
    ]
}

/// The latest preflight's roles check: psql would stop at the first GRANT to
/// a role the target lacks, with part of the schema copied.
fn roles_on_target(model: &Model) -> Guard {
    const L: &str = ROLES_CHECK;
    let latest = model
        .actions
        .history
        .iter()
        .rev()
        .filter(|r| r.checkpoint == CheckpointId::Preflight)
        .find_map(|r| r.checks.iter().find(|c| c.name == L));
    match latest {
        None => Guard::fail(L, "not checked yet: run the preflight (F)"),
        Some(c) if c.ok => Guard::pass(L, c.observed.clone()),
        Some(c) => Guard::fail(
            L,
            format!(
                "{}; fix: {} (then run the preflight again)",
                c.observed,
                c.fix.as_deref().unwrap_or_default()
            ),
        ),
    }
}

pub(super) fn present_on_target(model: &Model) -> Vec<String> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::CheckpointRun;
    use crate::runbook::preflight::Check;

    fn preflight_run(checks: Vec<Check>) -> CheckpointRun {
        let at = chrono::Utc::now();
        CheckpointRun {
            id: 1,
            checkpoint: CheckpointId::Preflight,
            plan: Plan {
                checkpoint: CheckpointId::Preflight,
                steps: vec![Step::Preflight],
                confirm: Confirm::Yes,
                notes: vec![],
            },
            overridden: None,
            auto: None,
            started_at: at,
            steps: vec![],
            checks,
            sequences: vec![],
            copy: None,
            job_log: Default::default(),
            legacy_steps: vec![],
            finished: Some((at, false, "done".into())),
        }
    }

    fn roles(ok: bool) -> Check {
        Check {
            name: ROLES_CHECK.into(),
            ok,
            observed: if ok {
                "all on the target: app".into()
            } else {
                "missing on the target: ghost (public.orders)".into()
            },
            fix: (!ok).then(|| {
                "CREATE ROLE \"ghost\"; on the target (pg_dumpall --roles-only shows them)".into()
            }),
        }
    }

    fn verdict(model: &Model) -> Guard {
        guards(model)
            .into_iter()
            .find(|g| g.label == ROLES_CHECK)
            .expect("the roles guard")
    }

    #[test]
    fn the_copy_waits_for_a_preflight_that_found_every_role() {
        let mut m = Model::default();
        assert_eq!(
            verdict(&m),
            Guard::fail(ROLES_CHECK, "not checked yet: run the preflight (F)")
        );
        m.actions.history.push(preflight_run(vec![roles(false)]));
        assert_eq!(
            verdict(&m),
            Guard::fail(
                ROLES_CHECK,
                "missing on the target: ghost (public.orders); fix: CREATE ROLE \"ghost\"; on \
                 the target (pg_dumpall --roles-only shows them) (then run the preflight again)"
            )
        );
        // The latest preflight counts; one that could not run says nothing.
        m.actions.history.push(preflight_run(vec![roles(true)]));
        m.actions.history.push(preflight_run(vec![]));
        assert_eq!(
            verdict(&m),
            Guard::pass(ROLES_CHECK, "all on the target: app")
        );
    }
}
