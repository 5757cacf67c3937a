//! Create the publication on the source for the selected tables.

use crate::model::Model;
use crate::runbook::guard::{self, Guard};
use crate::runbook::plan::{Confirm, Plan, Step};
use crate::runbook::CheckpointId;
use crate::session::Side;

use super::prepare::{identity_fix, publication_exists, source_tables, without_identity};
use crate::pg::monitor::{qualified, quote_ident};

pub fn guards(model: &Model) -> Vec<Guard> {
    let mut g = vec![
        guard::side_live(model, Side::Source),
        guard::no_other_run(model),
    ];
    let Some(s) = model.source.last.as_ref() else {
        return g;
    };
    g.push(Guard::check(
        "wal_level is logical",
        s.wal_level == "logical",
        format!(
            "wal_level = {}{}",
            s.wal_level,
            if s.wal_level == "logical" {
                ""
            } else {
                "; set it with ALTER SYSTEM SET wal_level = logical and restart the source"
            }
        ),
    ));
    // UPDATE and DELETE on a published table without a replica identity fail
    // on the source: the application would break the moment it is published.
    let without = without_identity(&s.tables);
    g.push(if without.is_empty() {
        Guard::pass(
            "Every table has a key or a replica identity",
            format!("{} tables", s.tables.len()),
        )
    } else {
        Guard::fail(
            "Every table has a key or a replica identity",
            format!("{} without: {}", without.join(", "), identity_fix(&without)),
        )
    });
    if let Some(info) = &model.info {
        if let Some(p) = s.publications.iter().find(|p| p.name == info.publication) {
            let n = s.tables.len() as i64;
            g.push(Guard::check(
                "Existing publication has the selected tables",
                p.all_tables || p.tables == n,
                format!(
                    "{} exists with {}; the selection has {n}",
                    p.name,
                    if p.all_tables {
                        "all tables".to_string()
                    } else {
                        format!("{} tables", p.tables)
                    }
                ),
            ));
        }
    }
    g
}

pub fn plan(model: &Model) -> Option<Plan> {
    let info = model.info.as_ref()?;
    let exists = publication_exists(model);
    let tables = source_tables(model);
    let (steps, notes) = if exists {
        (
            vec![],
            vec![format!(
                "already done: publication {} exists",
                info.publication
            )],
        )
    } else if tables.is_empty() {
        (vec![], vec!["no tables seen on the source yet".to_string()])
    } else {
        let list: Vec<String> = tables.iter().map(qualified).collect();
        (
            vec![Step::Sql {
                side: crate::session::Side::Source,
                sql: format!(
                    "CREATE PUBLICATION {} FOR TABLE {}",
                    quote_ident(&info.publication),
                    list.join(", ")
                ),
                lock_timeout_ms: 5_000,
                statement_timeout_ms: 30_000,
            }],
            vec![],
        )
    };
    Some(Plan {
        checkpoint: CheckpointId::CreatePublication,
        steps,
        confirm: Confirm::Yes,
        notes,
    })
}
