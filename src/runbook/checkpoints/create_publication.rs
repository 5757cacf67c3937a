//! Create the publication on the source for the selected tables.

use crate::model::Model;
use crate::runbook::guard::{self, Guard};
use crate::runbook::plan::{Confirm, Plan, Step};
use crate::runbook::CheckpointId;
use crate::session::sample::TableEstimate;
use crate::session::Side;

use super::prepare::{
    identity_fix, partitioned, partitions_text, publication_exists, source_tables, without_identity,
};
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
            if let Some(v) = via_root_guard(&info.publication, p.via_root, &s.tables) {
                g.push(v);
            }
        }
    }
    g
}

/// An existing publication that publishes partitioned tables per partition
/// puts the partitions, not the selected roots, into the target's
/// `pg_subscription_rel`: the initial sync and the counts would then watch
/// tables the selection does not name. None when nothing selected is
/// partitioned.
fn via_root_guard(publication: &str, via_root: bool, tables: &[TableEstimate]) -> Option<Guard> {
    const L: &str = "Existing publication publishes partitioned tables through their roots";
    let parts = partitioned(tables);
    if parts.is_empty() {
        return None;
    }
    Some(if via_root {
        Guard::pass(
            L,
            format!("{publication}: publish_via_partition_root = true"),
        )
    } else {
        Guard::fail(
            L,
            format!(
                "{publication} has publish_via_partition_root = false: {} would be published \
                 per partition; before a subscription uses it: \
                 ALTER PUBLICATION {} SET (publish_via_partition_root = true)",
                parts
                    .iter()
                    .map(|t| t.table.to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
                quote_ident(publication)
            ),
        )
    })
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
        // Partitioned tables go through their roots: the target's
        // subscription then lists the tables the selection names.
        let parts = model
            .source
            .last
            .as_ref()
            .map(|s| partitioned(&s.tables))
            .unwrap_or_default();
        (
            vec![Step::Sql {
                side: crate::session::Side::Source,
                sql: format!(
                    "CREATE PUBLICATION {} FOR TABLE {}{}",
                    quote_ident(&info.publication),
                    list.join(", "),
                    if parts.is_empty() {
                        ""
                    } else {
                        " WITH (publish_via_partition_root = true)"
                    }
                ),
                lock_timeout_ms: 5_000,
                statement_timeout_ms: 30_000,
            }],
            parts
                .iter()
                .map(|t| {
                    format!(
                        "{} ({}) is published through its root: the target may partition it \
                         differently",
                        t.table,
                        partitions_text(t)
                    )
                })
                .collect(),
        )
    };
    Some(Plan {
        checkpoint: CheckpointId::CreatePublication,
        steps,
        confirm: Confirm::Yes,
        notes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::sample::{PublicationRow, SourceSample, TableRef};

    fn table(name: &str, partitions: u32) -> TableEstimate {
        TableEstimate {
            table: TableRef::new("public", name),
            estimated_rows: 300,
            size_bytes: 8192,
            has_primary_key: true,
            replica_identity: "d".into(),
            partitions,
            partitions_without_identity: vec![],
        }
    }

    /// A session whose source has `tables` and `publications`.
    fn model(tables: Vec<TableEstimate>, publications: Vec<PublicationRow>) -> Model {
        // Through serde, so session fields added later with defaults need no edit here.
        let mut m = Model {
            info: Some(
                serde_json::from_value(serde_json::json!({
                    "tool_version": "t", "mode": "test", "config_path": "c.toml",
                    "source": {"label": "old", "describe": "old@h:5432/db"},
                    "target": {"label": "new", "describe": "new@h:5432/db"},
                    "publication": "p", "subscription": "s", "slot": "s",
                    "max_lag_bytes": 100, "max_lag_seconds": 5.0,
                    "max_retained_wal_bytes": 1000, "stale_after_seconds": 3.0,
                    "refresh_ms": 1000
                }))
                .unwrap(),
            ),
            ..Model::default()
        };
        m.source.last = Some(SourceSample {
            server_version: "15".into(),
            rows_written: None,
            wal_level: "logical".into(),
            current_wal_lsn: "0/10".into(),
            slots: vec![],
            senders: vec![],
            publications,
            tables,
            poll_ms: 1.0,
        });
        m
    }

    fn publication(tables: i64, via_root: bool) -> PublicationRow {
        PublicationRow {
            name: "p".into(),
            all_tables: false,
            tables,
            via_root,
        }
    }

    fn sql(plan: &Plan) -> &str {
        match plan.steps.as_slice() {
            [Step::Sql { sql, .. }] => sql,
            other => panic!("one SQL step expected, got {other:?}"),
        }
    }

    fn guard<'a>(g: &'a [Guard], label: &str) -> Option<&'a Guard> {
        g.iter().find(|g| g.label.starts_with(label))
    }

    #[test]
    fn a_partitioned_table_is_published_through_its_root_and_the_plan_says_so() {
        let m = model(vec![table("measurements", 3), table("users", 0)], vec![]);
        let plan = plan(&m).unwrap();
        assert_eq!(
            sql(&plan),
            r#"CREATE PUBLICATION "p" FOR TABLE "public"."measurements", "public"."users" WITH (publish_via_partition_root = true)"#
        );
        assert_eq!(
            plan.notes,
            vec![
                "public.measurements (3 partitions) is published through its root: the target \
                 may partition it differently"
                    .to_string()
            ]
        );
    }

    #[test]
    fn without_partitioned_tables_the_publication_is_plain() {
        let m = model(vec![table("users", 0)], vec![]);
        let plan = plan(&m).unwrap();
        assert_eq!(
            sql(&plan),
            r#"CREATE PUBLICATION "p" FOR TABLE "public"."users""#
        );
        assert!(plan.notes.is_empty());
    }

    #[test]
    fn an_existing_publication_per_partition_fails_with_the_difference_and_the_fix() {
        const L: &str = "Existing publication publishes partitioned tables through their roots";
        let tables = vec![table("measurements", 3), table("users", 0)];
        let g = guards(&model(tables.clone(), vec![publication(4, false)]));
        let v = guard(&g, L).expect("the guard is there");
        assert!(!v.passes());
        assert_eq!(
            v.detail(),
            "p has publish_via_partition_root = false: public.measurements would be published \
             per partition; before a subscription uses it: \
             ALTER PUBLICATION \"p\" SET (publish_via_partition_root = true)"
        );
        // Per partition, pg_publication_tables lists the 3 leaves and users.
        assert!(!guard(&g, "Existing publication has the selected tables")
            .unwrap()
            .passes());

        let g = guards(&model(tables, vec![publication(2, true)]));
        let v = guard(&g, L).unwrap();
        assert!(v.passes(), "{v:?}");
        assert_eq!(v.detail(), "p: publish_via_partition_root = true");
        assert!(guard(&g, "Existing publication has the selected tables")
            .unwrap()
            .passes());

        // Nothing partitioned selected: no such guard, whatever pubviaroot says.
        let g = guards(&model(vec![table("users", 0)], vec![publication(1, false)]));
        assert!(guard(&g, L).is_none());
    }
}
