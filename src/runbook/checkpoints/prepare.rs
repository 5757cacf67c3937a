//! What the PREPARE checkpoints read from the samples, in one place.

use crate::model::Model;
use crate::session::sample::{TableEstimate, TableRef};

/// The selected tables the source has (its latest sample).
pub fn source_tables(model: &Model) -> Vec<TableRef> {
    model
        .source
        .last
        .as_ref()
        .map(|s| s.tables.iter().map(|t| t.table.clone()).collect())
        .unwrap_or_default()
}

/// Source tables the target lacks (all of them before its first sample).
pub fn missing_on_target(model: &Model) -> Vec<TableRef> {
    let on_target: Vec<&TableRef> = model
        .target
        .last
        .as_ref()
        .map(|s| s.tables.iter().map(|t| &t.table).collect())
        .unwrap_or_default();
    source_tables(model)
        .into_iter()
        .filter(|t| !on_target.contains(&t))
        .collect()
}

/// The session's publication exists on the source (its latest sample).
pub fn publication_exists(model: &Model) -> bool {
    model.info.as_ref().is_some_and(|info| {
        model
            .source
            .last
            .as_ref()
            .is_some_and(|s| s.publications.iter().any(|p| p.name == info.publication))
    })
}

/// The session's subscription exists on the target (its latest sample).
pub fn subscription_exists(model: &Model) -> bool {
    model.info.as_ref().is_some_and(|info| {
        model
            .target
            .last
            .as_ref()
            .is_some_and(|t| t.subscriptions.iter().any(|s| s.name == info.subscription))
    })
}

/// Relations whose UPDATE and DELETE would fail, or whose changes the
/// target could not apply, once published: a table with no primary key and
/// no replica identity (default or nothing). For a partitioned table that
/// is its root (whose identity the subscriber is told) and each leaf
/// partition without one (where UPDATE and DELETE happen).
pub fn without_identity(tables: &[crate::session::sample::TableEstimate]) -> Vec<String> {
    let bare = |t: &crate::session::sample::TableEstimate| {
        !t.has_primary_key && !matches!(t.replica_identity.as_str(), "f" | "i")
    };
    let mut out = Vec::new();
    for t in tables {
        if bare(t) {
            out.push(t.table.to_string());
        }
        out.extend(t.partitions_without_identity.iter().cloned());
    }
    out
}

/// The fix for [`without_identity`]'s tables, in words and statements.
pub fn identity_fix(without: &[String]) -> String {
    format!(
        "add a primary key, or leave the table out of [tables], or {}",
        without
            .iter()
            .map(|t| format!("ALTER TABLE {t} REPLICA IDENTITY FULL;"))
            .collect::<Vec<_>>()
            .join(" ")
    )
}

/// The first three tables, for a message that also says how many there are.
pub fn first_few<'a>(tables: impl IntoIterator<Item = &'a TableRef>) -> String {
    tables
        .into_iter()
        .take(3)
        .map(|t| t.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The partitioned tables among `tables` (roots: partitions are never listed).
/// The runbook publishes them through their roots, so the target's
/// subscription lists the tables the selection names, not their partitions.
pub fn partitioned(tables: &[TableEstimate]) -> Vec<&TableEstimate> {
    tables.iter().filter(|t| t.partitions > 0).collect()
}

/// "3 partitions", "1 partition".
pub fn partitions_text(t: &TableEstimate) -> String {
    match t.partitions {
        1 => "1 partition".to_string(),
        n => format!("{n} partitions"),
    }
}

/// "Subscription exists" as a guard; `missing` says what to do when not.
pub fn subscription_guard(model: &Model, present: &str, missing: &str) -> crate::runbook::Guard {
    let exists = subscription_exists(model);
    crate::runbook::Guard::check(
        "Subscription exists",
        exists,
        if exists { present } else { missing },
    )
}
