//! The model and its pure fold. No IO and no clock here: time arrives with events.

mod actions;
pub mod budget;
mod db_config;
mod derive;
pub mod field;
pub mod keymap;
pub mod playback;
pub mod sync;
mod update;
mod verify_live;
mod view;
pub mod writes;

pub use db_config::{db_configs, DbConfigs, DbSide};
pub use verify_live::{verified_once, verify_differences, verify_tables};
pub use view::{Fleet, Pane, Seek, Timeline, View, Watch, WatchKind};

pub use actions::{
    kube_actions_bound, recheck, Actions, CheckpointRun, Frozen, Preflight, StepRecord, MIN_REASON,
};

pub use derive::{
    kube_stale, lag_summary, lag_throttle, stale_since, table_rows, verify_throttle, LagSummary,
    RowState, TableRow,
};
pub use update::{update, Effect};

use std::collections::{BTreeMap, VecDeque};

use chrono::{DateTime, Utc};

use crate::kube::WorkloadSnapshot;
use crate::session::sample::{SourceSample, TableRef, TargetSample};
use crate::session::SessionInfo;
use crate::verify::{ContinuousProgress, TableVerify, VerifyProgress};

/// How many lag points the sparkline keeps (10 minutes at 1 Hz).
pub const LAG_HISTORY: usize = 600;

#[derive(Debug, Clone, PartialEq)]
pub struct SideState<S> {
    pub last: Option<S>,
    pub last_ok: Option<DateTime<Utc>>,
    /// Since when polls fail, and the latest failure.
    pub failing: Option<(DateTime<Utc>, String)>,
    /// The host being watched, when the DSN names several: `host:port`,
    /// its position (1-based) and how many there are.
    pub via: Option<(String, usize, usize)>,
}

impl<S> Default for SideState<S> {
    fn default() -> Self {
        Self {
            last: None,
            last_ok: None,
            failing: None,
            via: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LagPoint {
    pub at: DateTime<Utc>,
    pub bytes: Option<i64>,
    /// The slot's confirmed position then: how fast the target applies.
    pub confirmed: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub enum ExactCount {
    #[default]
    NotCounted,
    Counting,
    Counted {
        rows: i64,
        at: DateTime<Utc>,
        elapsed_ms: f64,
        /// The subscription slot's lag (bytes) when the count came in, while
        /// replication ran (slot active, monitoring fresh); None: unknown or
        /// not replicating.
        lag_bytes: Option<i64>,
    },
    Failed(String),
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct TableCounts {
    pub source: ExactCount,
    pub target: ExactCount,
}

impl TableCounts {
    pub fn side_mut(&mut self, side: crate::session::Side) -> &mut ExactCount {
        match side {
            crate::session::Side::Source => &mut self.source,
            crate::session::Side::Target => &mut self.target,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct CountRun {
    pub id: u64,
    pub started_at: DateTime<Utc>,
    pub total: usize,
    pub done_source: usize,
    pub done_target: usize,
    pub finished_at: Option<DateTime<Utc>>,
    pub cancelled: bool,
}

impl CountRun {
    pub fn running(&self) -> bool {
        self.finished_at.is_none()
    }
}

/// Checksum verification of one table, as far as the session knows.
#[derive(Debug, Clone, PartialEq)]
pub enum VerifyCell {
    Pending,
    Running(VerifyProgress),
    Done(TableVerify),
    /// Continuous mode: the table's latest state while replication runs.
    Live(ContinuousProgress),
}

#[derive(Debug, Clone, PartialEq)]
pub struct VerifyRun {
    pub id: u64,
    pub started_at: DateTime<Utc>,
    pub total: usize,
    pub done: usize,
    pub finished_at: Option<DateTime<Utc>>,
    pub cancelled: bool,
    pub error: Option<String>,
    /// Re-checking pass after pass while replication runs, until cancelled.
    pub continuous: bool,
    /// Continuous mode: tables whose every range has matched at some point.
    pub verified_once: std::collections::BTreeSet<TableRef>,
}

impl VerifyRun {
    pub fn running(&self) -> bool {
        self.finished_at.is_none()
    }
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Model {
    pub info: Option<SessionInfo>,
    /// The timestamp of the latest event: the model's only notion of "now".
    pub now: Option<DateTime<Utc>>,
    pub source: SideState<SourceSample>,
    pub target: SideState<TargetSample>,
    pub lag_history: VecDeque<LagPoint>,
    pub counts: BTreeMap<TableRef, TableCounts>,
    pub count_run: Option<CountRun>,
    pub next_run: u64,
    /// Deployments by name, as last watched.
    pub workloads: BTreeMap<String, WorkloadSnapshot>,
    /// When each workload was last seen: pod ages in a snapshot are as of then.
    pub workload_at: BTreeMap<String, DateTime<Utc>>,
    pub kube: SideState<()>,
    /// The workloads that use the config object, as last found: when, the
    /// object's namespace, and them.
    pub config_users: SideState<(String, Vec<crate::kube::discover::ConfigUser>)>,
    /// On a lab: what the app pods measured, and when it was read.
    pub witness: Option<(DateTime<Utc>, crate::session::AppWitness)>,
    /// `[pooler]`: its instances as last read, and when.
    pub pooler: Option<(DateTime<Utc>, crate::pooler::PoolerSample)>,
    /// The last target sample that had the session's subscription: once it
    /// is gone, replication ended (the runbook dropped it), not "not yet".
    pub subscription_seen: Option<DateTime<Utc>>,
    pub verify: BTreeMap<TableRef, VerifyCell>,
    /// When each table's verification cell last changed: its word's time,
    /// weighed against the exact count's.
    pub verify_at: BTreeMap<TableRef, DateTime<Utc>>,
    pub verify_run: Option<VerifyRun>,
    /// Each side's rows-written counter over the last seconds.
    pub writes: writes::Writes,
    /// Where the initial sync stood when first seen: its rate and ETA.
    pub sync_seen: sync::SyncSeen,
    pub actions: Actions,
    /// The checkpoint whose confirmation is open: its plan and guards are shown.
    pub dialog: Option<crate::runbook::CheckpointId>,
    /// The operator's notes, as logged.
    pub notes: Vec<(DateTime<Utc>, String)>,
    pub quit: bool,
    pub ended: Option<String>,
    /// The migration report the last checkpoint wrote: where, or why not.
    pub report: Option<(String, Option<String>)>,
    /// The last checkpoint passed and its report is being written.
    pub report_pending: bool,
}

impl Model {
    /// Whether this session binds nothing that changes anything outside cutover.
    pub fn read_only(&self) -> bool {
        self.info.as_ref().is_none_or(|i| i.read_only)
    }

    pub fn count_running(&self) -> bool {
        self.count_run.as_ref().is_some_and(CountRun::running)
    }

    pub fn verify_running(&self) -> bool {
        self.verify_run.as_ref().is_some_and(VerifyRun::running)
    }

    /// Work on the servers that quitting would cut short.
    pub fn action_running(&self) -> bool {
        self.count_running()
            || self.verify_running()
            || self.actions.running().is_some()
            || self.report_pending
    }
}

#[cfg(test)]
#[path = "dump_restore_tests.rs"]
mod dump_restore_tests;
#[cfg(test)]
mod fleet_tests;
#[cfg(test)]
mod pooler_tests;
#[cfg(test)]
#[path = "read_only_freeze_tests.rs"]
mod read_only_freeze_tests;

#[cfg(test)]
#[path = "config_users_tests.rs"]
mod config_users_tests;
