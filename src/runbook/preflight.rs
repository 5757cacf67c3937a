//! The preflight: each check a line with ✔/✖, the observed value and, when
//! it fails, the fix in words and as the exact statement. Pure: it judges
//! facts read by `pg::preflight` (and the Kubernetes access review).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::checkpoints::prepare::{
    first_few, identity_fix, partitioned, partitions_text, without_identity,
};
use crate::pg::monitor::quote_ident;
use crate::pg::preflight::Facts;
use crate::session::sample::TableRef;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Check {
    pub name: String,
    pub ok: bool,
    /// What was seen.
    pub observed: String,
    /// When it fails: what to do, in words and as the statement.
    pub fix: Option<String>,
}

fn check(name: &str, ok: bool, observed: impl Into<String>, fix: Option<String>) -> Check {
    Check {
        name: name.into(),
        ok,
        observed: observed.into(),
        fix: if ok { None } else { fix },
    }
}

/// "15.18 (Debian 15.18-0+deb12u1)" → "15.18".
fn short(version: &str) -> &str {
    version.split_whitespace().next().unwrap_or(version)
}

/// The check that every role granted privileges on a selected table exists
/// on the target; the schema copy's guard repeats its verdict.
pub const ROLES_CHECK: &str = "Roles granted on the selected tables exist on the target";

/// Names the runbook will use, to look for strays.
pub struct Names<'a> {
    pub subscription: &'a str,
    pub slot: &'a str,
}

/// The checks with the names `config` gives the runbook.
pub fn evaluate_for(f: &Facts, config: &crate::config::Config) -> Vec<Check> {
    let checks = evaluate(
        f,
        &Names {
            subscription: &config.replication.subscription,
            slot: &config.replication.slot,
        },
    );
    match config.runbook.variant {
        crate::runbook::Variant::Logical => checks,
        crate::runbook::Variant::DumpRestore => for_dump_restore(checks, f),
    }
}

/// Checks only logical replication needs.
const LOGICAL_ONLY: &[&str] = &[
    "wal_level = logical on the source",
    "A free replication slot on the source",
    "A free WAL sender on the source",
    "Every table has a primary key or a replica identity",
    "No stray slot or subscription with the runbook's names",
    ROLES_CHECK,
];

/// The dump-and-restore runbook's preflight: no replication to prepare for;
/// the target must have none of the tables (the restore makes them) and the
/// application's roles (it brings no privileges: the target's default
/// privileges give them theirs).
pub fn for_dump_restore(checks: Vec<Check>, f: &Facts) -> Vec<Check> {
    let present: Vec<&TableRef> = f
        .source
        .columns
        .keys()
        .filter(|t| f.target.columns.contains_key(*t))
        .collect();
    let missing_roles: Vec<&String> = f
        .app_roles
        .iter()
        .filter(|r| !f.target.roles.contains(*r))
        .collect();
    checks
        .into_iter()
        .filter(|c| !LOGICAL_ONLY.contains(&c.name.as_str()))
        .flat_map(|c| match c.name.as_str() {
            "Target schema matches the source" => vec![
                check(
                    "Target has none of the tables",
                    present.is_empty(),
                    if present.is_empty() {
                        format!("{} tables to restore", f.source.columns.len())
                    } else {
                        format!(
                            "the target has {}: {}",
                            present.len(),
                            first_few(present.iter().copied())
                        )
                    },
                    Some("drop them on the target, or restore into another database".into()),
                ),
                check(
                    "Application roles exist on the target",
                    missing_roles.is_empty(),
                    if missing_roles.is_empty() {
                        "all of [freeze] app_roles".to_string()
                    } else {
                        let names: Vec<&str> = missing_roles.iter().map(|r| r.as_str()).collect();
                        format!("missing: {}", names.join(", "))
                    },
                    Some(
                        "CREATE ROLE on the target, and ALTER DEFAULT PRIVILEGES there so the \
                         restored tables are theirs to use (the dump carries no privileges)"
                            .into(),
                    ),
                ),
            ],
            "Sequences on the source" => vec![check(
                "Sequences on the source",
                true,
                c.observed
                    .replace("advanced on the target at cutover", "carried by the dump"),
                None,
            )],
            _ => vec![c],
        })
        .collect()
}

pub fn evaluate(f: &Facts, names: &Names) -> Vec<Check> {
    let (s, t) = (&f.source, &f.target);
    let mut out = vec![
        check(
            "Both sides reachable",
            true,
            "source and target answered",
            None,
        ),
        check(
            "Target major version not older",
            t.version_num / 10000 >= s.version_num / 10000,
            format!(
                "source PostgreSQL {}, target PostgreSQL {}",
                short(&s.version),
                short(&t.version)
            ),
            Some("migrate to the same or a newer major version".into()),
        ),
        check(
            "wal_level = logical on the source",
            f.source_sample.wal_level == "logical",
            format!("wal_level = {}", f.source_sample.wal_level),
            Some("ALTER SYSTEM SET wal_level = logical; then restart the source".into()),
        ),
        check(
            "A free replication slot on the source",
            s.slots_used < s.max_slots,
            format!(
                "{} of max_replication_slots {} in use",
                s.slots_used, s.max_slots
            ),
            Some("raise max_replication_slots (restart), or drop an unused slot".into()),
        ),
        check(
            "A free WAL sender on the source",
            s.senders_used < s.max_senders,
            format!(
                "{} of max_wal_senders {} in use",
                s.senders_used, s.max_senders
            ),
            Some("raise max_wal_senders (restart)".into()),
        ),
    ];
    let without = without_identity(&f.source_sample.tables);
    out.push(check(
        "Every table has a primary key or a replica identity",
        without.is_empty(),
        if without.is_empty() {
            format!("{} tables", f.source_sample.tables.len())
        } else {
            format!("without: {}", without.join(", "))
        },
        Some(identity_fix(&without)),
    ));
    out.push(partitions_check(f));
    out.push(schema_check(f));
    out.push(roles_check(&f.source.grantees, &f.target.roles));
    out.push(app_roles_check(
        &f.app_roles,
        &f.source.connected,
        &f.source.roles,
    ));
    // A slot or subscription under the runbook's names that the runbook did
    // not make is another migration's, or a leftover: never reuse it blindly.
    let slot = f.source_sample.slots.iter().any(|x| x.name == names.slot);
    let sub = f
        .target_sample
        .subscriptions
        .iter()
        .any(|x| x.name == names.subscription);
    let stray = match (slot, sub) {
        (true, false) => Some(format!(
            "slot {} exists on the source with no subscription on the target",
            names.slot
        )),
        (false, true) => Some(format!(
            "subscription {} exists on the target with no slot on the source",
            names.subscription
        )),
        _ => None,
    };
    out.push(check(
        "No stray slot or subscription with the runbook's names",
        stray.is_none(),
        stray.clone().unwrap_or_else(|| match (slot, sub) {
            (true, true) => format!("{} replicating already", names.subscription),
            _ => "none".into(),
        }),
        Some(match (slot, sub) {
            (true, false) => format!(
                "SELECT pg_drop_replication_slot('{}'); (on the source, if it is a leftover)",
                names.slot
            ),
            _ => format!(
                "DROP SUBSCRIPTION {}; (on the target, if it is a leftover)",
                names.subscription
            ),
        }),
    ));
    out.push(check(
        "No long-running transaction on the source",
        s.long_transactions == 0,
        format!(
            "{} open over 5 min; longest {:.0} s",
            s.long_transactions, s.longest_transaction_s
        ),
        Some("find them in pg_stat_activity (xact_start) and end them before the freeze".into()),
    ));
    out.push(check(
        "Sequences on the source",
        true,
        format!("{} (advanced on the target at cutover)", s.sequences),
        None,
    ));
    out.push(check(
        "Free disk",
        true,
        "not reported by PostgreSQL: check the target's volume by other means",
        None,
    ));
    out
}

/// Says which tables are partitioned and how they are published: through
/// their roots (the publication's plan adds publish_via_partition_root).
fn partitions_check(f: &Facts) -> Check {
    let parts = partitioned(&f.source_sample.tables);
    check(
        "Partitioned tables",
        true,
        if parts.is_empty() {
            "none".to_string()
        } else {
            parts
                .iter()
                .map(|t| {
                    format!(
                        "{}: {}, published through the root",
                        t.table,
                        partitions_text(t)
                    )
                })
                .collect::<Vec<_>>()
                .join("; ")
        },
        None,
    )
}

/// The schema copy carries the source's GRANTs (not its owners): each role
/// they name must exist on the target, or psql stops half-way through.
/// `grantees`: the source's roles with privileges on selected tables (role →
/// tables); `target_roles`: every role on the target.
fn roles_check(
    grantees: &BTreeMap<String, Vec<TableRef>>,
    target_roles: &BTreeSet<String>,
) -> Check {
    let missing: Vec<(&String, &Vec<TableRef>)> = grantees
        .iter()
        .filter(|(role, _)| !target_roles.contains(*role))
        .collect();
    let observed = if !missing.is_empty() {
        format!(
            "missing on the target: {}",
            missing
                .iter()
                .map(|(role, tables)| format!("{role} ({})", first_few(tables.iter())))
                .collect::<Vec<_>>()
                .join("; ")
        )
    } else if grantees.is_empty() {
        "no grants beyond the owners'".to_string()
    } else {
        let roles: Vec<&str> = grantees.keys().map(String::as_str).collect();
        format!("all on the target: {}", roles.join(", "))
    };
    let create: Vec<String> = missing
        .iter()
        .map(|(role, _)| format!("CREATE ROLE {};", quote_ident(role)))
        .collect();
    check(
        ROLES_CHECK,
        missing.is_empty(),
        observed,
        Some(format!(
            "{} on the target (pg_dumpall --roles-only shows them)",
            create.join(" ")
        )),
    )
}

/// Every selected source table exists on the target with the same columns
/// and types, in the same order.
fn schema_check(f: &Facts) -> Check {
    let mut problems = Vec::new();
    let mut missing: Vec<&TableRef> = Vec::new();
    for (table, cols) in &f.source.columns {
        match f.target.columns.get(table) {
            None => missing.push(table),
            Some(tcols) if tcols != cols => {
                for (name, ty) in cols {
                    match tcols.iter().find(|(n, _)| n == name) {
                        None => problems.push(format!("{table}.{name} missing on the target")),
                        Some((_, tty)) if tty != ty => problems.push(format!(
                            "{table}.{name} is {ty} on the source, {tty} on the target"
                        )),
                        _ => {}
                    }
                }
                for (name, _) in tcols {
                    if !cols.iter().any(|(n, _)| n == name) {
                        problems.push(format!("{table}.{name} only on the target"));
                    }
                }
            }
            _ => {}
        }
    }
    if !missing.is_empty() {
        problems.insert(
            0,
            format!(
                "{} tables missing on the target ({})",
                missing.len(),
                first_few(missing.iter().copied())
            ),
        );
    }
    check(
        "Target schema matches the source",
        problems.is_empty(),
        if problems.is_empty() {
            format!("{} tables, columns and types equal", f.source.columns.len())
        } else {
            problems.join("; ")
        },
        Some(
            if missing.len() == f.source.columns.len() && problems.len() == 1 {
                "copy it: D in the console, or pg_dump --schema-only --no-owner <source> | psql <target>".into()
            } else {
                "align the target's tables with the source's (ALTER TABLE … ADD COLUMN / ALTER COLUMN … TYPE); the runbook never overwrites a target schema".into()
            },
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grants(pairs: &[(&str, &[&str])]) -> BTreeMap<String, Vec<TableRef>> {
        pairs
            .iter()
            .map(|(role, tables)| {
                let tables = tables.iter().map(|t| TableRef::new("public", *t)).collect();
                (role.to_string(), tables)
            })
            .collect()
    }

    fn roles(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|n| n.to_string()).collect()
    }

    #[test]
    fn roles_missing_on_the_target_are_named_with_the_statement() {
        let g = grants(&[
            ("app", &["orders", "users"]),
            ("Reporting", &["orders"]),
            ("zz", &["a", "b", "c", "d"]),
        ]);
        let c = roles_check(&g, &roles(&["postgres", "app"]));
        assert!(!c.ok);
        assert_eq!(c.name, ROLES_CHECK);
        assert_eq!(
            c.observed,
            "missing on the target: Reporting (public.orders); zz (public.a, public.b, public.c)"
        );
        assert_eq!(
            c.fix.as_deref(),
            Some(
                "CREATE ROLE \"Reporting\"; CREATE ROLE \"zz\"; on the target \
                 (pg_dumpall --roles-only shows them)"
            )
        );
    }

    #[test]
    fn roles_all_present_or_no_grants_pass() {
        let c = roles_check(&grants(&[("app", &["orders"])]), &roles(&["app"]));
        assert!(c.ok, "{c:?}");
        assert_eq!(c.observed, "all on the target: app");
        assert_eq!(c.fix, None);
        let c = roles_check(&BTreeMap::new(), &roles(&[]));
        assert!(c.ok);
        assert_eq!(c.observed, "no grants beyond the owners'");
    }
}

/// The roles the freeze will act on: named, existing, and beside the roles
/// connected now, so none the application uses is forgotten.
fn app_roles_check(
    named: &[String],
    connected: &std::collections::BTreeMap<String, i64>,
    roles: &std::collections::BTreeSet<String>,
) -> Check {
    const NAME: &str = "Application roles for the freeze";
    let now = if connected.is_empty() {
        "no client session now".to_string()
    } else {
        let list: Vec<String> = connected
            .iter()
            .map(|(r, n)| {
                let mark = if named.contains(r) { "" } else { ", not named" };
                format!("{r} ({n}{mark})")
            })
            .collect();
        format!("connected now: {}", list.join(", "))
    };
    let missing: Vec<&String> = named.iter().filter(|r| !roles.contains(*r)).collect();
    if named.is_empty() {
        check(
            NAME,
            false,
            format!("[freeze] app_roles is not set; {now}"),
            Some("name the roles the application connects as in [freeze] app_roles".into()),
        )
    } else if !missing.is_empty() {
        check(
            NAME,
            false,
            format!(
                "{} named but not on the source; {now}",
                missing
                    .iter()
                    .map(|r| r.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Some("correct [freeze] app_roles".into()),
        )
    } else {
        check(
            NAME,
            true,
            format!(
                "{}; {now}{}",
                named.join(", "),
                if connected.keys().any(|r| !named.contains(r)) {
                    " — a role not named keeps writing through the freeze, if it writes"
                } else {
                    ""
                }
            ),
            None,
        )
    }
}

#[cfg(test)]
mod app_roles_tests {
    use super::app_roles_check;

    #[test]
    fn names_the_connected_roles_and_which_are_not_frozen() {
        let connected = [("app".to_string(), 3), ("reporting".to_string(), 1)].into();
        let roles = ["app", "reporting", "postgres"].map(String::from).into();
        let c = app_roles_check(&["app".into()], &connected, &roles);
        assert!(c.ok);
        assert_eq!(
            c.observed,
            "app; connected now: app (3), reporting (1, not named) — a role not named keeps \
             writing through the freeze, if it writes"
        );
        let c = app_roles_check(&[], &connected, &roles);
        assert!(!c.ok);
        assert_eq!(
            c.observed,
            "[freeze] app_roles is not set; connected now: app (3, not named), reporting (1, not named)"
        );
        let c = app_roles_check(&["ap".into()], &Default::default(), &roles);
        assert_eq!(
            c.observed,
            "ap named but not on the source; no client session now"
        );
        assert_eq!(c.fix.as_deref(), Some("correct [freeze] app_roles"));
    }
}
