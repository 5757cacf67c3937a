//! Freeze writes on the source for every application role, and prove it
//! (see `runtime::freeze`): the start of the write-freeze window. The
//! rollback (B) gives back exactly what it took. With `[freeze] method =
//! "read-only-role"` the freeze is a switch instead: `freeze_by_role`.

use crate::model::Model;
use crate::pg::monitor::qualified;
use crate::runbook::guard::{self, Guard};
use crate::runbook::plan::{Confirm, Plan, Step};
use crate::runbook::{CheckpointId, Variant};
use crate::session::Side;

use super::prepare::source_tables;

pub fn guards(model: &Model) -> Vec<Guard> {
    if let Some(ro) = super::freeze_by_role::configured(model) {
        return super::freeze_by_role::guards(model, ro);
    }
    let roles = model
        .info
        .as_ref()
        .map(|i| i.app_roles.clone())
        .unwrap_or_default();
    vec![
        guard::side_live(model, Side::Source),
        guard::side_live(model, Side::Target),
        guard::no_other_run(model),
        Guard::check(
            "Application roles named",
            !roles.is_empty(),
            if roles.is_empty() {
                "set [freeze] app_roles in cutover.toml: the roles the application connects as"
                    .to_string()
            } else {
                roles.join(", ")
            },
        ),
    ]
    .into_iter()
    .chain(runbook_guards(model))
    .collect()
}

/// What the runbook asks before writes stop, however they are frozen.
pub(super) fn runbook_guards(model: &Model) -> Vec<Guard> {
    match crate::runbook::variant(model) {
        Variant::Logical => vec![
            guard::verified_live(model),
            guard::caught_up(model),
            guard::catch_up_within_budget(model),
        ],
        // The outage starts here: not for a copy that would be refused.
        Variant::DumpRestore => vec![super::dump_restore::target_empty(model)],
    }
}

pub fn plan(model: &Model) -> Option<Plan> {
    if let Some(ro) = super::freeze_by_role::configured(model) {
        return super::freeze_by_role::plan(model, ro);
    }
    let info = model.info.as_ref()?;
    let tables: Vec<String> = source_tables(model).iter().map(qualified).collect();
    let (steps, notes) = match model.actions.frozen.as_ref() {
        Some(f) if f.proven.is_some() => (
            vec![],
            vec![format!(
                "already done: writes of {} frozen since {}",
                f.roles.join(", "),
                f.at.format("%H:%M:%S")
            )],
        ),
        _ => (
            vec![Step::FreezeWrites {
                roles: info.app_roles.clone(),
                tables,
                side: Side::Source,
            }],
            vec![
                "reads keep working; writes by these roles fail with \"permission denied\" until \
                 the rollback (B) gives the privileges back"
                    .into(),
                "refused, changing nothing, for a role that is a superuser or owns a table".into(),
            ],
        ),
    };
    Some(Plan {
        checkpoint: CheckpointId::FreezeWrites,
        steps,
        // The application stops writing: its owner types the word.
        confirm: Confirm::TypeName("freeze".into()),
        notes,
    })
}
