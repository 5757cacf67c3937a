//! What a step says: the lines a dialog and the report show for it (the
//! statements, the patch, the wait, values as fingerprints) and its one-line
//! title for the action pane. The steps themselves are in [`super::plan`].

use super::checkpoints::prepare::first_few;
use super::plan::{freeze_sql, subscription_options, unfreeze_sql, Step, SwitchTo};
use crate::kube;

impl Step {
    /// What the dialog and the report show for this step, line by line.
    pub fn lines(&self) -> Vec<String> {
        let patch = |object: &str, key: &str, shown: &str| -> Option<String> {
            let obj = kube::ConfigObject::parse(object)?;
            Some(kube::switch_patch_preview(&obj, key, shown))
        };
        match self {
            Step::PatchConfig {
                namespace,
                object,
                key,
                new_fingerprint,
                // Checked by the executor; shown in the plan's notes.
                expect_current: _,
                to: _,
            } => {
                let mut out = vec![format!(
                    "PATCH {object} in {namespace} (merge, only if unchanged since read):"
                )];
                let shown = new_fingerprint
                    .as_deref()
                    .map_or("<new value, not read yet>".to_string(), |f| {
                        format!("<sha256:{f}>")
                    });
                out.extend(patch(object, key, &shown).map(|p| format!("  {p}")));
                out
            }
            Step::RestoreConfig {
                namespace,
                object,
                key,
                restore,
                expect_current,
                unfreezes: _,
            } => {
                let mut out = vec![format!(
                    "PATCH {object} in {namespace} (merge, only if {key} still holds <sha256:{expect_current}>):"
                )];
                let shown = restore
                    .as_deref()
                    .map_or("null".to_string(), |f| format!("<sha256:{f}>"));
                out.extend(patch(object, key, &shown).map(|p| format!("  {p}")));
                out
            }
            Step::AwaitConfig {
                namespace,
                object,
                key,
                want,
                was,
                value_from,
                timeout_s,
                undo,
                to: _,
            } => {
                let mut out = vec![if *undo {
                    "revert the switch through Git (the console writes nothing to the cluster):"
                        .to_string()
                } else {
                    "make this change through Git (the console writes nothing to the cluster):"
                        .to_string()
                }];
                if let Some(obj) = kube::ConfigObject::parse(object) {
                    out.extend(
                        kube::gitops::manifest_change(
                            &obj,
                            namespace,
                            key,
                            was.as_deref(),
                            want.as_deref(),
                            value_from.as_deref().filter(|_| !*undo),
                        )
                        .into_iter()
                        .map(|l| format!("  {l}")),
                    );
                }
                out.push(format!(
                    "then watch {object} in {namespace} until {key} holds {} (at most {} min)",
                    want.as_deref()
                        .map_or("nothing (absent)".to_string(), |w| format!("<sha256:{w}>")),
                    timeout_s / 60
                ));
                out
            }
            Step::DumpRestore { jobs, tables } => vec![
                format!(
                    "pg_dump --format=directory --jobs={jobs} --no-owner --no-privileges of the \
                     source ({tables} tables, their sequences) into a directory beside the \
                     session log (owner-only)"
                ),
                format!(
                    "pg_restore --jobs={jobs} --no-owner --no-privileges --exit-on-error of it \
                     into the target; the directory is removed once it succeeded"
                ),
            ],
            Step::CopyJob { job, tables } => job.lines(*tables),
            Step::Restart {
                namespace,
                deployment,
            } => vec![
                format!("PATCH deployment/{deployment} in {namespace} (strategic merge):"),
                format!("  {}", kube::restart_patch_preview("<time of the restart>")),
            ],
            Step::RestartStatefulSet {
                namespace,
                statefulset,
            } => vec![
                format!("PATCH statefulset/{statefulset} in {namespace} (strategic merge):"),
                format!("  {}", kube::restart_patch_preview("<time of the restart>")),
            ],
            Step::WaitStatefulSet {
                namespace,
                statefulset,
                timeout_s,
            } => vec![format!(
                "watch statefulset/{statefulset} in {namespace} until every pod is at the new \
                 revision and ready (at most {} min)",
                timeout_s / 60
            )],
            Step::WaitRollout {
                namespace,
                deployment,
                timeout_s,
            } => vec![format!(
                "watch deployment/{deployment} in {namespace} until its rollout completes \
                 (progress deadline, at most {} min)",
                timeout_s / 60
            )],
            Step::Sql {
                side,
                sql,
                lock_timeout_ms,
                statement_timeout_ms,
            } => vec![
                format!(
                    "on the {} (lock_timeout {} ms, statement_timeout {} ms):",
                    side.as_str(),
                    lock_timeout_ms,
                    statement_timeout_ms
                ),
                format!("  {sql};"),
            ],
            Step::CopySchema { tables_missing } => vec![
                format!("pg_dump --schema-only --no-owner <source> | psql <target> ({tables_missing} tables missing)"),
            ],
            Step::CreateSubscription {
                name,
                publication,
                source,
                on,
                copy_data,
                enabled,
            } => vec![
                format!("on the {}:", on.as_str()),
                format!(
                    "  CREATE SUBSCRIPTION {name} CONNECTION '<{source}, password not shown>' \
                     PUBLICATION {publication}{};",
                    subscription_options(*copy_data, *enabled)
                ),
            ],
            Step::StopSubscription { name } => vec![
                "on the target:".to_string(),
                format!("  ALTER SUBSCRIPTION {name} DISABLE;"),
                format!(
                    "then watch pg_stat_subscription until {name}'s apply worker has exited"
                ),
            ],
            Step::WaitReplicated {
                on,
                slot,
                timeout_s,
            } => vec![format!(
                "read the {}'s WAL position (pg_current_wal_lsn), then watch slot {slot} \
                 until it has confirmed it (at most {timeout_s} s)",
                on.as_str()
            )],
            Step::ExactCounts { tables } => vec![format!(
                "read-only on both sides at once: SELECT count(*) of {} tables ({}{})",
                tables.len(),
                first_few(tables),
                if tables.len() > 3 { ", …" } else { "" }
            )],
            Step::VerifyFinal { tables } => vec![format!(
                "read-only on both sides: exact counts and final checksums of {} tables in \
                 one pass, by key range (each range's count(*) and hash; the counts add up \
                 to each table's); ranges verified while live are re-checked only where rows \
                 changed since (updated_at), the rest in full; a difference is named down to \
                 rows",
                tables.len()
            )],
            Step::Preflight => vec![
                "read-only on both sides: versions, wal_level, free slots and senders, replica \
                 identities, the target's schema, stray slots or subscriptions, long \
                 transactions, sequences"
                    .to_string(),
            ],
            Step::AdvanceSequences {
                schemas,
                stride,
                to,
            } => vec![
                format!(
                    "read every sequence of schema {} on both sides (pg_sequences), then on \
                     the {}, in one transaction:",
                    schemas.join(", "),
                    to.as_str()
                ),
                format!(
                    "  SELECT setval(<sequence>, <{} last_value> + {stride}) for each one \
                     the {} has behind that value;",
                    to.other().as_str(),
                    to.as_str()
                ),
            ],
            Step::FreezeWrites {
                roles,
                tables,
                side,
            } => {
                let mut out = vec![format!(
                    "on the {}, one transaction (lock_timeout 5000 ms), after logging the \
                     privileges it takes (the REVOKE also names every partition of a \
                     partitioned table, listed when it runs):",
                    side.as_str()
                )];
                out.extend(freeze_sql(roles, tables).into_iter().map(|s| format!("  {s};")));
                out.push(format!(
                    "then end every session of {} (pg_terminate_backend), and prove: none can \
                     write a table (has_table_privilege), none holds a write, nothing written \
                     for 1 s; the {}'s WAL position is taken",
                    roles.join(", "),
                    side.as_str()
                ));
                out
            }
            Step::ProveReadOnly {
                role,
                write_roles,
                tables,
                side,
            } => vec![format!(
                "on the {}, read-only: prove {role} can write none of {} tables \
                 (has_table_privilege), no session of {} is left, none holds a write, \
                 nothing written for 1 s; its WAL position is taken",
                side.as_str(),
                tables.len(),
                write_roles.join(", ")
            )],
            Step::PoolerPause {
                instances,
                database,
                timeout_s,
                ..
            } => vec![
                format!(
                    "on {}: PAUSE {database} (each within {timeout_s} s: running transactions \
                     finish, new queries wait; any instance unreachable or late: every pause \
                     lifted)",
                    pooler_names(instances)
                ),
            ],
            Step::PoolerRepoint {
                file,
                before,
                after,
                ..
            } => vec![
                format!("{file} (only if the line is still as read):"),
                format!("  - {before}"),
                format!("  + {after}"),
            ],
            Step::PoolerReload {
                instances,
                database,
                host,
                port,
            } => vec![format!(
                "on {}: RELOAD; each then shows {database} at {host}:{port}",
                pooler_names(instances)
            )],
            Step::PoolerResume {
                instances,
                database,
                ..
            } => vec![format!(
                "on {}: RESUME {database} (the held queries go on)",
                pooler_names(instances)
            )],
            Step::PoolerProve {
                instances,
                database,
                host,
                port,
            } => vec![format!(
                "within 10 s, read-only: {} serve {database} from {host}:{port}, none paused, \
                 no server connection elsewhere",
                pooler_names(instances)
            )],
            Step::UnfreezeWrites {
                roles,
                grants,
                side,
            } => {
                let mut out = vec![format!("on the {}, one transaction:", side.as_str())];
                out.extend(unfreeze_sql(roles, grants).into_iter().map(|s| format!("  {s};")));
                out.push(format!(
                    "then end the sessions of {} opened during the freeze (they keep its \
                     read-only default; the app reconnects)",
                    roles.join(", ")
                ));
                out
            }
            Step::ObserveApp { seconds, .. } => vec![format!(
                "read-only on both sides: rows written (pg_stat_user_tables) and client \
                 sessions (pg_stat_activity), now and {seconds} s later"
            )],
            Step::VerifyLive { tables } => vec![format!(
                "read-only on both sides: checksums by key range of {} tables ({}{}), pass \
                 after pass while replication runs",
                tables.len(),
                first_few(tables),
                if tables.len() > 3 { ", …" } else { "" }
            )],
            Step::WaitSync {
                subscription,
                timeout_s,
            } => vec![format!(
                "watch pg_subscription_rel until every table of {subscription} is r(eady) \
                 (at most {} h)",
                timeout_s / 3600
            )],
        }
    }

    /// One line for the action pane and the report.
    pub fn title(&self) -> String {
        match self {
            Step::PatchConfig {
                object,
                key,
                to: SwitchTo::ReadOnly,
                ..
            } => format!("switch {object} {key} to the read-only role"),
            Step::PatchConfig { object, key, .. } => format!("switch {object} {key}"),
            Step::RestoreConfig { object, key, .. } => format!("restore {object} {key}"),
            Step::AwaitConfig {
                object,
                key,
                undo: false,
                to: SwitchTo::ReadOnly,
                ..
            } => format!("wait for the switch of {object} {key} to the read-only role through Git"),
            Step::AwaitConfig {
                object,
                key,
                undo: false,
                ..
            } => format!("wait for the switch of {object} {key} through Git"),
            Step::AwaitConfig {
                object,
                key,
                undo: true,
                ..
            } => format!("wait for the revert of {object} {key} through Git"),
            Step::Restart { deployment, .. } => format!("restart deployment/{deployment}"),
            Step::WaitRollout { deployment, .. } => format!("rollout of {deployment}"),
            Step::RestartStatefulSet { statefulset, .. } => {
                format!("restart statefulset/{statefulset}")
            }
            Step::WaitStatefulSet { statefulset, .. } => {
                format!("rollout of statefulset/{statefulset}")
            }
            Step::Sql { side, sql, .. } => format!(
                "{} on the {}",
                sql.split_whitespace().take(3).collect::<Vec<_>>().join(" "),
                side.as_str()
            ),
            Step::CopySchema { .. } => "copy the schema".into(),
            Step::DumpRestore { tables, .. } => format!("dump and restore {tables} tables"),
            Step::CopyJob { tables, .. } => format!("copy {tables} tables in a Job"),
            Step::CreateSubscription { name, on, .. } => {
                format!("CREATE SUBSCRIPTION {name} on the {}", on.as_str())
            }
            Step::StopSubscription { name } => format!("stop subscription {name}"),
            Step::WaitReplicated { on, slot, .. } => {
                format!("{slot} delivers all the {} had", on.as_str())
            }
            Step::ExactCounts { tables } => format!("exact counts of {} tables", tables.len()),
            Step::VerifyFinal { tables } => {
                format!(
                    "exact counts and final checksums of {} tables",
                    tables.len()
                )
            }
            Step::WaitSync { subscription, .. } => format!("initial sync of {subscription}"),
            Step::Preflight => "preflight checks".into(),
            Step::VerifyLive { tables } => format!("verify {} tables while live", tables.len()),
            Step::AdvanceSequences { to, .. } => format!("advance the {}'s sequences", to.as_str()),
            Step::ObserveApp { seconds, .. } => {
                format!("watch writes on both sides for {seconds} s")
            }
            Step::FreezeWrites { roles, side, .. } => format!(
                "freeze writes of {} on the {}",
                roles.join(", "),
                side.as_str()
            ),
            Step::ProveReadOnly {
                role, write_roles, ..
            } => format!(
                "prove the clients read-only ({role}; no session of {})",
                write_roles.join(", ")
            ),
            Step::UnfreezeWrites { roles, side, .. } => format!(
                "give {} their writes back on the {}",
                roles.join(", "),
                side.as_str()
            ),
            Step::PoolerPause {
                instances,
                database,
                ..
            } => format!("PAUSE {database} on {} pooler instances", instances.len()),
            Step::PoolerRepoint { database, to, .. } => {
                format!("repoint the pooler's {database} to the {}", to.as_str())
            }
            Step::PoolerReload { instances, .. } => {
                format!("RELOAD {} pooler instances", instances.len())
            }
            Step::PoolerResume {
                instances,
                database,
                to,
                ..
            } => format!(
                "RESUME {database} on {} pooler instances, on the {}",
                instances.len(),
                to.as_str()
            ),
            Step::PoolerProve { host, port, .. } => {
                format!("prove the pooler serves from {host}:{port}")
            }
        }
    }
}

/// The instances by name, as a dialog lists them.
fn pooler_names(instances: &[crate::pooler::Instance]) -> String {
    instances
        .iter()
        .map(|i| format!("{} ({}:{})", i.name, i.host, i.port))
        .collect::<Vec<_>>()
        .join(", ")
}
