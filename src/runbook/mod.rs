//! The runbook: checkpoints as data. Each checkpoint has a stable id (it is
//! written into session logs that must replay for years), a phase, a title,
//! the key that opens it, and — in its own file under `checkpoints/` — its
//! guards and its plan, both pure functions of the session state.
//!
//! A runbook is a value: the list of checkpoints for one database pair
//! ([`logical`]), not a sequence wired into the update. What a dialog shows
//! is [`plan`]'s `Plan`; the effect carries that same value; the executor
//! runs exactly its steps and reports each one back.

pub mod checkpoints;
pub mod copy_job;
pub mod guard;
pub mod plan;
pub mod preflight;
mod step_text;

use serde::{Deserialize, Serialize};

pub use guard::{Guard, Verdict};
pub use plan::{Confirm, Plan, Step};

use crate::model::Model;

/// A checkpoint's stable name. Never rename a variant's serde name: logs
/// hold it. New checkpoints are added, old names kept as aliases.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckpointId {
    /// The preflight checks, read-only (as `cutover check`).
    Preflight,
    /// `pg_dump --schema-only` of the source into the target.
    CopySchema,
    /// The publication on the source.
    CreatePublication,
    /// The subscription on the target (copies, then streams).
    CreateSubscription,
    /// Every table of the subscription ready.
    WaitInitialSync,
    /// Continuous checksum verification while replication runs.
    VerifyLive,
    /// Take the application roles' write privileges on the source, prove it.
    FreezeWrites,
    /// Set the target's sequences to at least the source's values.
    AdvanceSequences,
    /// Write the new database config into the config object.
    SwitchConfig,
    /// Restart the workloads (kubectl's restartedAt annotation) and wait for the rollout.
    RolloutRestart,
    /// Put back the value the switch replaced, then restart.
    #[serde(alias = "switch_back")]
    Rollback,
    /// The application writes to the target and nothing to the source.
    AppOnTarget,
    /// In the window: the target has everything the frozen source had
    /// (its slot confirmed the source's position), exact counts and the
    /// final checksums equal.
    FinalCheck,
    /// Target → source replication, its slot made before the app's first
    /// write on the target, the forward subscription stopped first.
    ReverseReplication,
    /// FINISH: drop the forward subscription (and its slot on the source).
    DropSubscription,
    /// The dump-and-restore runbook's copy, writes frozen: `pg_dump` of
    /// the source into `pg_restore` on the target (schema, data and
    /// sequences), no owner, no privileges.
    DumpRestore,
}

/// Which runbook drives the cutover (`[runbook] variant`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Variant {
    /// Logical replication: the copy while the application writes, a short
    /// freeze for the last changes.
    #[default]
    Logical,
    /// For smaller databases: freeze, dump and restore, verify, switch —
    /// the write freeze lasts the whole copy.
    DumpRestore,
}

impl Variant {
    pub fn as_str(self) -> &'static str {
        match self {
            Variant::Logical => "logical",
            Variant::DumpRestore => "dump-restore",
        }
    }

    /// Its checkpoints, in order.
    pub fn checkpoints(self) -> &'static [CheckpointId] {
        match self {
            Variant::Logical => LOGICAL,
            Variant::DumpRestore => DUMP_RESTORE,
        }
    }
}

/// Through the pooler, the switch checkpoint pauses, waits for lag 0,
/// checks, advances the sequences, sets up reverse replication, repoints
/// and resumes — one plan — and no workload restarts.
pub const LOGICAL_POOLER: &[CheckpointId] = &[
    CheckpointId::Preflight,
    CheckpointId::CopySchema,
    CheckpointId::CreatePublication,
    CheckpointId::CreateSubscription,
    CheckpointId::WaitInitialSync,
    CheckpointId::VerifyLive,
    CheckpointId::SwitchConfig,
    CheckpointId::AppOnTarget,
    CheckpointId::DropSubscription,
    CheckpointId::Rollback,
];

/// The session's checkpoints, in order: its variant's, or the logical
/// runbook through the pooler.
pub fn checkpoints(model: &Model) -> &'static [CheckpointId] {
    if checkpoints::pooler_switch::configured(model) {
        LOGICAL_POOLER
    } else {
        variant(model).checkpoints()
    }
}

/// The session's runbook.
pub fn variant(model: &Model) -> Variant {
    model.info.as_ref().map(|i| i.runbook).unwrap_or_default()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Prepare,
    Cutover,
    Finish,
    Rollback,
}

impl Phase {
    pub fn title(self) -> &'static str {
        match self {
            Phase::Prepare => "PREPARE",
            Phase::Cutover => "CUTOVER",
            Phase::Finish => "FINISH",
            Phase::Rollback => "ROLLBACK",
        }
    }
}

/// What the catalog knows of a checkpoint besides its guards and plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checkpoint {
    pub id: CheckpointId,
    pub phase: Phase,
    pub title: &'static str,
}

pub const CATALOG: &[Checkpoint] = &[
    Checkpoint {
        id: CheckpointId::Preflight,
        phase: Phase::Prepare,
        title: "Preflight checks",
    },
    Checkpoint {
        id: CheckpointId::CopySchema,
        phase: Phase::Prepare,
        title: "Copy schema to target",
    },
    Checkpoint {
        id: CheckpointId::CreatePublication,
        phase: Phase::Prepare,
        title: "Create publication",
    },
    Checkpoint {
        id: CheckpointId::CreateSubscription,
        phase: Phase::Prepare,
        title: "Create subscription",
    },
    Checkpoint {
        id: CheckpointId::WaitInitialSync,
        phase: Phase::Prepare,
        title: "Wait for initial sync",
    },
    Checkpoint {
        id: CheckpointId::VerifyLive,
        phase: Phase::Prepare,
        title: "Verify while live",
    },
    Checkpoint {
        id: CheckpointId::FreezeWrites,
        phase: Phase::Cutover,
        title: "Freeze writes on source",
    },
    Checkpoint {
        id: CheckpointId::DumpRestore,
        phase: Phase::Cutover,
        title: "Dump and restore into the target",
    },
    Checkpoint {
        id: CheckpointId::FinalCheck,
        phase: Phase::Cutover,
        title: "Lag 0, exact counts, final checksums",
    },
    Checkpoint {
        id: CheckpointId::AdvanceSequences,
        phase: Phase::Cutover,
        title: "Advance sequences on target",
    },
    Checkpoint {
        id: CheckpointId::ReverseReplication,
        phase: Phase::Cutover,
        title: "Reverse replication target → source",
    },
    Checkpoint {
        id: CheckpointId::SwitchConfig,
        phase: Phase::Cutover,
        title: "Switch database config",
    },
    Checkpoint {
        id: CheckpointId::RolloutRestart,
        phase: Phase::Cutover,
        title: "Rollout-restart workloads",
    },
    Checkpoint {
        id: CheckpointId::AppOnTarget,
        phase: Phase::Cutover,
        title: "App writes to the target",
    },
    Checkpoint {
        id: CheckpointId::DropSubscription,
        phase: Phase::Finish,
        title: "Drop the subscription",
    },
    Checkpoint {
        id: CheckpointId::Rollback,
        phase: Phase::Rollback,
        title: "Switch back and restart",
    },
];

impl CheckpointId {
    pub fn info(self) -> &'static Checkpoint {
        CATALOG
            .iter()
            .find(|c| c.id == self)
            .expect("every checkpoint is in the catalog")
    }

    pub fn title(self) -> &'static str {
        self.info().title
    }

    /// Whether its plan acts on Kubernetes (and so needs a [kubernetes] section).
    pub fn is_kubernetes(self) -> bool {
        // The rollback acts on Kubernetes only when a switch is to be
        // undone; it gives the source its writes back either way.
        matches!(
            self,
            CheckpointId::SwitchConfig | CheckpointId::RolloutRestart
        )
    }
}

/// The default runbook for one database pair over logical replication, in
/// order. (The dump-and-restore variant is another list.)
pub const LOGICAL: &[CheckpointId] = &[
    CheckpointId::Preflight,
    CheckpointId::CopySchema,
    CheckpointId::CreatePublication,
    CheckpointId::CreateSubscription,
    CheckpointId::WaitInitialSync,
    CheckpointId::VerifyLive,
    CheckpointId::FreezeWrites,
    CheckpointId::FinalCheck,
    CheckpointId::AdvanceSequences,
    CheckpointId::ReverseReplication,
    CheckpointId::SwitchConfig,
    CheckpointId::RolloutRestart,
    CheckpointId::AppOnTarget,
    CheckpointId::DropSubscription,
    CheckpointId::Rollback,
];

/// [`LOGICAL`], as a list of its own.
pub fn logical() -> Vec<CheckpointId> {
    LOGICAL.to_vec()
}

/// The dump-and-restore runbook for one database pair: the copy runs with
/// writes frozen, so verification compares two still databases; the
/// sequences come with the dump; the way back is to unfreeze and switch
/// back, as long as the source is kept.
pub const DUMP_RESTORE: &[CheckpointId] = &[
    CheckpointId::Preflight,
    CheckpointId::FreezeWrites,
    CheckpointId::DumpRestore,
    CheckpointId::FinalCheck,
    CheckpointId::SwitchConfig,
    CheckpointId::RolloutRestart,
    CheckpointId::AppOnTarget,
    CheckpointId::Rollback,
];

/// `id`'s guards on the session state of this moment.
pub fn guards(model: &Model, id: CheckpointId) -> Vec<Guard> {
    match id {
        CheckpointId::Preflight => checkpoints::preflight::guards(model),
        CheckpointId::CopySchema => checkpoints::copy_schema::guards(model),
        CheckpointId::CreatePublication => checkpoints::create_publication::guards(model),
        CheckpointId::CreateSubscription => checkpoints::create_subscription::guards(model),
        CheckpointId::WaitInitialSync => checkpoints::wait_initial_sync::guards(model),
        CheckpointId::VerifyLive => checkpoints::verify_live::guards(model),
        CheckpointId::AdvanceSequences => checkpoints::advance_sequences::guards(model),
        CheckpointId::FreezeWrites => checkpoints::freeze_writes::guards(model),
        CheckpointId::SwitchConfig => checkpoints::switch_config::guards(model),
        CheckpointId::RolloutRestart => checkpoints::rollout_restart::guards(model),
        CheckpointId::Rollback => checkpoints::rollback::guards(model),
        CheckpointId::AppOnTarget => checkpoints::app_on_target::guards(model),
        CheckpointId::FinalCheck => checkpoints::final_check::guards(model),
        CheckpointId::ReverseReplication => checkpoints::reverse_replication::guards(model),
        CheckpointId::DropSubscription => checkpoints::drop_subscription::guards(model),
        CheckpointId::DumpRestore => checkpoints::dump_restore::guards(model),
    }
}

/// The guards of `id` that do not hold now.
pub fn failing(model: &Model, id: CheckpointId) -> Vec<Guard> {
    guards(model, id)
        .into_iter()
        .filter(|g| !g.passes())
        .collect()
}

/// What `id` would run now: the steps, how it is confirmed, notes. None when
/// the session has nothing to run it against (no Kubernetes side).
pub fn plan(model: &Model, id: CheckpointId) -> Option<Plan> {
    match id {
        CheckpointId::Preflight => checkpoints::preflight::plan(model),
        CheckpointId::CopySchema => checkpoints::copy_schema::plan(model),
        CheckpointId::CreatePublication => checkpoints::create_publication::plan(model),
        CheckpointId::CreateSubscription => checkpoints::create_subscription::plan(model),
        CheckpointId::WaitInitialSync => checkpoints::wait_initial_sync::plan(model),
        CheckpointId::VerifyLive => checkpoints::verify_live::plan(model),
        CheckpointId::AdvanceSequences => checkpoints::advance_sequences::plan(model),
        CheckpointId::FreezeWrites => checkpoints::freeze_writes::plan(model),
        CheckpointId::SwitchConfig => checkpoints::switch_config::plan(model),
        CheckpointId::RolloutRestart => checkpoints::rollout_restart::plan(model),
        CheckpointId::Rollback => checkpoints::rollback::plan(model),
        CheckpointId::AppOnTarget => checkpoints::app_on_target::plan(model),
        CheckpointId::FinalCheck => checkpoints::final_check::plan(model),
        CheckpointId::ReverseReplication => checkpoints::reverse_replication::plan(model),
        CheckpointId::DropSubscription => checkpoints::drop_subscription::plan(model),
        CheckpointId::DumpRestore => checkpoints::dump_restore::plan(model),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_stable_in_the_log() {
        let names: Vec<String> = CATALOG
            .iter()
            .map(|c| serde_json::to_string(&c.id).unwrap())
            .collect();
        assert_eq!(
            names,
            [
                "\"preflight\"",
                "\"copy_schema\"",
                "\"create_publication\"",
                "\"create_subscription\"",
                "\"wait_initial_sync\"",
                "\"verify_live\"",
                "\"freeze_writes\"",
                "\"dump_restore\"",
                "\"final_check\"",
                "\"advance_sequences\"",
                "\"reverse_replication\"",
                "\"switch_config\"",
                "\"rollout_restart\"",
                "\"app_on_target\"",
                "\"drop_subscription\"",
                "\"rollback\""
            ]
        );
        // The name logs written before the runbook used.
        let old: CheckpointId = serde_json::from_str("\"switch_back\"").unwrap();
        assert_eq!(old, CheckpointId::Rollback);
        for &id in LOGICAL.iter().chain(DUMP_RESTORE) {
            assert_eq!(id.info().id, id);
        }
    }
}
