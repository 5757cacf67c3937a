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
use crate::pg::monitor::quote_ident;
use crate::session::sample::TableRef;
use crate::session::Side;

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
        /// Which value: the switch's (to the target), or the freeze's (the
        /// clients to the read-only role; logs from before it: the switch).
        #[serde(default, skip_serializing_if = "SwitchTo::is_target")]
        to: SwitchTo,
    },
    /// Put back the value a switch replaced (`restore`, None: remove the
    /// key), if the key still holds what the switch wrote.
    RestoreConfig {
        namespace: String,
        object: String,
        key: String,
        restore: Option<String>,
        expect_current: String,
        /// The value put back ends a freeze by read-only role: the clients
        /// get their writing role again.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        unfreezes: bool,
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
        /// The switch's change, or the freeze's (to the read-only role;
        /// with `undo`, the revert that ends that freeze).
        #[serde(default, skip_serializing_if = "SwitchTo::is_target")]
        to: SwitchTo,
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
    /// The freeze by read-only role, after the clients were switched and
    /// restarted: `role` can write no table; no session of `write_roles`
    /// is left, none holds a write, nothing written for 1 s; the WAL
    /// position is taken. Changes nothing.
    ProveReadOnly {
        role: String,
        write_roles: Vec<String>,
        tables: Vec<String>,
        #[serde(default)]
        side: Side,
    },
    /// PgBouncer: connect to every instance's admin console (one that does
    /// not answer: nothing is paused), then `PAUSE database` on all of
    /// them, each within `timeout_s` (running transactions finish, new
    /// queries wait). One that fails or does not finish in time lifts
    /// every pause, the transaction holding it named.
    PoolerPause {
        instances: Vec<crate::pooler::Instance>,
        database: String,
        timeout_s: u64,
        /// The side the application is on (whose writes the pause holds):
        /// the source for the switch, the target for the way back.
        #[serde(default)]
        on: Side,
    },
    /// Rewrite the `[databases]` entry's line in `file` to send its server
    /// connections to `host`:`port`/`dbname` (its other settings kept), only
    /// if the line is still the one read (`expect`: its fingerprint).
    /// `before`/`after`: the lines as shown, passwords as fingerprints.
    PoolerRepoint {
        file: String,
        database: String,
        expect: String,
        host: String,
        port: u16,
        dbname: String,
        before: String,
        after: String,
        /// Where it sends the app: the target (the switch) or back.
        to: Side,
    },
    /// `RELOAD` on every instance; each must then show the entry at
    /// `host`:`port`.
    PoolerReload {
        instances: Vec<crate::pooler::Instance>,
        database: String,
        host: String,
        port: u16,
    },
    /// `RESUME database` on every instance: the held queries go on, to
    /// wherever the entry points now.
    PoolerResume {
        instances: Vec<crate::pooler::Instance>,
        database: String,
        to: Side,
        /// The side the pause held (its window closes here).
        #[serde(default)]
        paused_on: Side,
    },
    /// Within 10 s: every instance serves the entry from `host`:`port`,
    /// none paused, no server connection elsewhere.
    PoolerProve {
        instances: Vec<crate::pooler::Instance>,
        database: String,
        host: String,
        port: u16,
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

/// Which value a config switch writes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SwitchTo {
    /// The target (`switch_to_*`): the switch.
    #[default]
    Target,
    /// The source as the read-only role (`read_only_to_*`): the freeze.
    ReadOnly,
}

impl SwitchTo {
    pub fn is_target(&self) -> bool {
        *self == SwitchTo::Target
    }
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
    /// Whether its success starts a freeze by read-only role (the clients'
    /// config switched to the read-only value).
    pub fn starts_read_only_freeze(&self) -> bool {
        matches!(
            self,
            Step::PatchConfig {
                to: SwitchTo::ReadOnly,
                ..
            } | Step::AwaitConfig {
                to: SwitchTo::ReadOnly,
                undo: false,
                ..
            }
        )
    }

    /// Whether its success ends a freeze by read-only role (the clients'
    /// config put back).
    pub fn ends_read_only_freeze(&self) -> bool {
        matches!(
            self,
            Step::RestoreConfig {
                unfreezes: true,
                ..
            } | Step::AwaitConfig {
                to: SwitchTo::ReadOnly,
                undo: true,
                ..
            }
        )
    }

    /// Whether it moves the app to the target (the switch itself, patched
    /// or seen through Git): not a freeze's switch, not a revert.
    pub fn switches_to_target(&self) -> bool {
        matches!(
            self,
            Step::PatchConfig {
                to: SwitchTo::Target,
                ..
            } | Step::AwaitConfig {
                to: SwitchTo::Target,
                undo: false,
                ..
            }
        )
    }

    /// Whether it acts on the pooler's instances or their config file.
    pub fn is_pooler(&self) -> bool {
        matches!(
            self,
            Step::PoolerPause { .. }
                | Step::PoolerRepoint { .. }
                | Step::PoolerReload { .. }
                | Step::PoolerResume { .. }
                | Step::PoolerProve { .. }
        )
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
