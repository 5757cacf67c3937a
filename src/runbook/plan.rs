//! A plan: the concrete steps a checkpoint will run, built from the session
//! state by the checkpoint's own file. The confirmation dialog draws it, the
//! effect carries it, the executor runs exactly its steps and reports each
//! one back (`StepStarted` holds the step it ran), so what was shown and what
//! ran can be compared line for line.
//!
//! Values that are secrets (a database URL) appear only as fingerprints: the
//! executor reads the value where the config says and refuses when its
//! fingerprint is not the one shown.

use serde::{Deserialize, Serialize};

use super::CheckpointId;
use crate::kube;
use crate::pg::monitor::quote_ident;
use crate::session::sample::TableRef;
use crate::session::Side;

use super::checkpoints::prepare::first_few;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    pub checkpoint: CheckpointId,
    pub steps: Vec<Step>,
    pub confirm: Confirm,
    /// Things to know that are not guards.
    pub notes: Vec<String>,
}

/// How the operator confirms a plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Confirm {
    /// Enter is enough.
    Yes,
    /// Destructive: the object's name must be typed.
    TypeName(String),
}

impl Confirm {
    pub fn accepts(&self, typed: &str) -> bool {
        match self {
            Confirm::Yes => true,
            Confirm::TypeName(name) => typed == name,
        }
    }
}

/// Rollouts are watched this long at most, even if no progress deadline
/// fires (a Deployment without one would otherwise be watched forever).
pub const ROLLOUT_TIMEOUT_S: u64 = 15 * 60;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "step", rename_all = "snake_case")]
pub enum Step {
    /// Merge-patch `key` of `object` to the switch value, guarded by the
    /// resourceVersion read just before. The value read must have
    /// `new_fingerprint` and the key must still hold `expect_current`.
    PatchConfig {
        namespace: String,
        object: String,
        key: String,
        new_fingerprint: Option<String>,
        /// What the key held when the plan was made (None: absent).
        expect_current: Option<String>,
    },
    /// Put back the value a switch replaced (`restore`, None: remove the
    /// key), if the key still holds what the switch wrote.
    RestoreConfig {
        namespace: String,
        object: String,
        key: String,
        restore: Option<String>,
        expect_current: String,
    },
    /// GitOps: the console writes nothing. The change to make through Git
    /// is shown (the manifest's diff, values as fingerprints); then wait
    /// until `key` of `object` holds `want` (None: absent) — applied by the
    /// GitOps controller —, or `timeout_s`.
    AwaitConfig {
        namespace: String,
        object: String,
        key: String,
        want: Option<String>,
        /// What the key held when the plan was made (None: absent).
        was: Option<String>,
        /// Where the new value comes from (`$VAR` or a path), never the value.
        value_from: Option<String>,
        timeout_s: u64,
        /// The rollback's revert (the value before the switch back), not
        /// the switch.
        #[serde(default)]
        undo: bool,
    },
    /// kubectl's `rollout restart`: the restartedAt annotation on the template.
    Restart {
        namespace: String,
        deployment: String,
    },
    /// Watch the rollout until complete, its progress deadline, or `timeout_s`.
    WaitRollout {
        namespace: String,
        deployment: String,
        timeout_s: u64,
    },
    /// A StatefulSet found using the config object: kubectl's `rollout
    /// restart`, then its rolling update watched to the end or `timeout_s`.
    RestartStatefulSet {
        namespace: String,
        statefulset: String,
    },
    WaitStatefulSet {
        namespace: String,
        statefulset: String,
        timeout_s: u64,
    },
    /// One statement on one side, exactly as shown, under these timeouts.
    Sql {
        side: Side,
        sql: String,
        lock_timeout_ms: u64,
        statement_timeout_ms: u64,
    },
    /// `pg_dump --format=directory` of the source (schema, data and
    /// sequences, no owner, no privileges) into a directory beside the
    /// session log, then `pg_restore` of it into the target, `jobs` at a
    /// time each; the directory is removed afterwards.
    DumpRestore { jobs: u64, tables: usize },
    /// The same copy as a Kubernetes Job in the cluster (`pg_dump | pg_restore`
    /// in one pod, credentials from a Secret), followed to its end.
    CopyJob {
        job: super::copy_job::CopyJob,
        tables: usize,
    },
    /// `pg_dump --schema-only --no-owner` of the source into the target
    /// (psql, stop on the first error). Privileges come along, so the app's
    /// roles may use the target after the switch.
    CopySchema { tables_missing: usize },
    /// CREATE SUBSCRIPTION on `on` (the target; the source for reverse
    /// replication) with the other side's DSN as its connection; `source` is
    /// that DSN as it may be shown (no password). Without `copy_data` it
    /// only streams what is written from its creation on.
    CreateSubscription {
        name: String,
        publication: String,
        source: String,
        #[serde(default = "target_side")]
        on: Side,
        #[serde(default = "yes")]
        copy_data: bool,
        /// Without it the slot is made now and nothing is applied until
        /// `ALTER SUBSCRIPTION … ENABLE`.
        #[serde(default = "yes")]
        enabled: bool,
    },
    /// `ALTER SUBSCRIPTION … DISABLE` on the target, then wait until its
    /// apply worker has exited: from then on it applies nothing.
    StopSubscription { name: String },
    /// Until `slot` on `on` has confirmed the WAL position `on` stood at
    /// when the step started (its writes frozen: everything written then has
    /// arrived on the other side), or `timeout_s`.
    WaitReplicated {
        on: Side,
        slot: String,
        timeout_s: u64,
    },
    /// Exact `count(*)` of every table on both sides at once. Only read from
    /// logs written before the final check took its counts in its checksum
    /// pass (format 1): shown and reported, never planned or run.
    ExactCounts { tables: Vec<TableRef> },
    /// The final checksum pass in the window (`verify_final`): ranges the
    /// live verification proved are only re-checked where rows changed
    /// since; any difference fails it, the rows named.
    VerifyFinal { tables: Vec<TableRef> },
    /// Until every table of the subscription is `r`eady, or `timeout_s`.
    WaitSync {
        subscription: String,
        timeout_s: u64,
    },
    /// The preflight checks, read-only on both sides.
    Preflight,
    /// Continuous checksum verification of these tables, read-only, until
    /// every one has been verified once (and on, until cancelled).
    VerifyLive { tables: Vec<TableRef> },
    /// On the target, `setval` every sequence of these schemas to the
    /// source's `last_value` + `stride` where it is behind; values read
    /// when it runs, one transaction.
    AdvanceSequences {
        schemas: Vec<String>,
        stride: u64,
        /// The side set (the other is read): the source when a rollback
        /// after the switch sends the app back.
        #[serde(default = "target_side")]
        to: Side,
    },
    /// Rows written and client sessions on both sides, now and `seconds`
    /// later, read-only.
    ObserveApp {
        seconds: u64,
        /// Reverse replication runs: the source's rows written are its
        /// apply worker's, so "none on the source" is read from its client
        /// sessions (the freeze keeps the app's roles from writing there).
        #[serde(default)]
        reverse: bool,
    },
    /// On the source: take the write privileges of `roles` on `tables` and
    /// make their new sessions read-only (one transaction; what was taken is
    /// logged first), end their sessions, then prove nothing can write.
    FreezeWrites {
        roles: Vec<String>,
        tables: Vec<String>,
        /// The source in the cutover; the target in a rollback after the switch.
        #[serde(default)]
        side: Side,
    },
    /// On the source, one transaction: give back exactly what the freeze
    /// took, and the roles' sessions their default again.
    UnfreezeWrites {
        roles: Vec<String>,
        grants: Vec<crate::session::Grant>,
        #[serde(default)]
        side: Side,
    },
}

/// ` WITH (…)` for the options that are not the defaults.
pub fn subscription_options(copy_data: bool, enabled: bool) -> String {
    let mut with = Vec::new();
    if !copy_data {
        with.push("copy_data = false");
    }
    if !enabled {
        with.push("enabled = false");
    }
    if with.is_empty() {
        String::new()
    } else {
        format!(" WITH ({})", with.join(", "))
    }
}

fn target_side() -> Side {
    Side::Target
}

fn yes() -> bool {
    true
}

/// How long the wait for replication to deliver everything may take in the
/// window (the budget's timer shows it against the budget meanwhile).
pub const WAIT_REPLICATED_S: u64 = 300;

/// The freeze's statements, as shown and as run.
pub fn freeze_sql(roles: &[String], tables: &[String]) -> Vec<String> {
    let who = roles
        .iter()
        .map(|r| quote_ident(r))
        .collect::<Vec<_>>()
        .join(", ");
    let mut out: Vec<String> = roles
        .iter()
        .map(|r| {
            format!(
                "ALTER ROLE {} SET default_transaction_read_only = on",
                quote_ident(r)
            )
        })
        .collect();
    if !tables.is_empty() {
        out.push(format!(
            "REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON TABLE {} FROM {who}",
            tables.join(", ")
        ));
    }
    out
}

/// The unfreeze's statements: each role's default back, then every grant
/// the freeze took, a statement per role and privilege.
pub fn unfreeze_sql(roles: &[String], grants: &[crate::session::Grant]) -> Vec<String> {
    let mut out: Vec<String> = roles
        .iter()
        .map(|r| {
            format!(
                "ALTER ROLE {} RESET default_transaction_read_only",
                quote_ident(r)
            )
        })
        .collect();
    let mut by: std::collections::BTreeMap<(&str, &str), Vec<&str>> = Default::default();
    for g in grants {
        by.entry((g.role.as_str(), g.privilege.as_str()))
            .or_default()
            .push(g.table.as_str());
    }
    for ((role, privilege), tables) in by {
        out.push(format!(
            "GRANT {privilege} ON TABLE {} TO {}",
            tables.join(", "),
            quote_ident(role)
        ));
    }
    out
}

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

    /// Whether it acts on Kubernetes (else on PostgreSQL).
    pub fn is_kubernetes(&self) -> bool {
        matches!(
            self,
            Step::PatchConfig { .. }
                | Step::RestoreConfig { .. }
                | Step::AwaitConfig { .. }
                | Step::Restart { .. }
                | Step::WaitRollout { .. }
                | Step::RestartStatefulSet { .. }
                | Step::WaitStatefulSet { .. }
                | Step::CopyJob { .. }
        )
    }

    /// One line for the action pane and the report.
    pub fn title(&self) -> String {
        match self {
            Step::PatchConfig { object, key, .. } => format!("switch {object} {key}"),
            Step::RestoreConfig { object, key, .. } => format!("restore {object} {key}"),
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
            Step::UnfreezeWrites { roles, side, .. } => format!(
                "give {} their writes back on the {}",
                roles.join(", "),
                side.as_str()
            ),
        }
    }
}

/// The workloads a restart moves to the new config: the Deployments the
/// config lists and those found using the config object in its namespace,
/// and the StatefulSets found so.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Workloads {
    pub deployments: Vec<String>,
    pub statefulsets: Vec<String>,
}

/// Restart every workload, then watch each rollout: the tail of the switch
/// checkpoints and of the rollback.
pub fn restart_steps(namespace: &str, w: &Workloads) -> Vec<Step> {
    let ns = || namespace.to_string();
    let mut steps: Vec<Step> = w
        .deployments
        .iter()
        .map(|d| Step::Restart {
            namespace: ns(),
            deployment: d.clone(),
        })
        .collect();
    steps.extend(w.statefulsets.iter().map(|s| Step::RestartStatefulSet {
        namespace: ns(),
        statefulset: s.clone(),
    }));
    steps.extend(await_rollout_steps(namespace, w));
    steps
}

/// Under GitOps the console restarts nothing: the change that switches
/// must also change the pod template (a checksum/config annotation, a new
/// ConfigMap name), and each rollout it causes is watched.
pub fn await_rollout_steps(namespace: &str, w: &Workloads) -> Vec<Step> {
    let ns = || namespace.to_string();
    let mut steps: Vec<Step> = w
        .deployments
        .iter()
        .map(|d| Step::WaitRollout {
            namespace: ns(),
            deployment: d.clone(),
            timeout_s: ROLLOUT_TIMEOUT_S,
        })
        .collect();
    steps.extend(w.statefulsets.iter().map(|s| Step::WaitStatefulSet {
        namespace: ns(),
        statefulset: s.clone(),
        timeout_s: ROLLOUT_TIMEOUT_S,
    }));
    steps
}

/// The name a destructive confirmation asks for: the object's, without its kind.
pub fn object_name(object: &str) -> &str {
    object.split_once('/').map_or(object, |(_, n)| n)
}
