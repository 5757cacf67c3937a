//! The one vocabulary of change. Every variant is written to the session log
//! before it is applied, so the log alone rebuilds the screen.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::sample::{Side, SourceSample, TableRef, TargetSample};
use crate::kube::WorkloadSnapshot;
use crate::verify::{TableVerify, VerifyProgress};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub seq: u64,
    pub at: DateTime<Utc>,
    #[serde(flatten)]
    pub kind: EventKind,
}

/// What the session is about; recorded first so replay and report need no config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionInfo {
    pub tool_version: String,
    pub mode: String,
    pub config_path: String,
    pub source: Endpoint,
    pub target: Endpoint,
    pub publication: String,
    pub subscription: String,
    pub slot: String,
    pub max_lag_bytes: i64,
    pub max_lag_seconds: f64,
    pub max_retained_wal_bytes: i64,
    pub stale_after_seconds: f64,
    pub refresh_ms: u64,
    /// The application side, when the config names one.
    #[serde(default)]
    pub kubernetes: Option<KubeInfo>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KubeInfo {
    pub context: String,
    pub namespace: String,
    pub deployments: Vec<String>,
}

/// A connection as it may be shown: never a password.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Endpoint {
    pub label: String,
    pub describe: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EventKind {
    SessionStarted(SessionInfo),
    SourceSampled(SourceSample),
    TargetSampled(TargetSample),
    /// A poll failed: the side turns stale from its last good sample.
    CollectorFailed {
        side: Side,
        error: String,
    },
    /// A workload as the Kubernetes watchers see it now.
    WorkloadSampled(WorkloadSnapshot),
    /// The Kubernetes side can't be reached or watched: its pane turns stale.
    KubeFailed {
        error: String,
    },
    /// A key press, already named (`q`, `?`, `Esc`, `Up`, `Ctrl-c`, …).
    Key {
        key: String,
    },
    /// One exact count finished on one side.
    CountProgress {
        run: u64,
        side: Side,
        table: TableRef,
        rows: i64,
        elapsed_ms: f64,
    },
    CountFailed {
        run: u64,
        side: Side,
        table: Option<TableRef>,
        error: String,
    },
    CountFinished {
        run: u64,
        cancelled: bool,
    },
    /// Checksum verification of one table moved on.
    VerifyProgress {
        run: u64,
        progress: VerifyProgress,
    },
    /// One table's verification result, differences included.
    VerifyTableDone {
        run: u64,
        result: TableVerify,
    },
    VerifyFinished {
        run: u64,
        cancelled: bool,
        error: Option<String>,
    },
    /// Emitted when nothing else happens, so staleness is judged on an advancing clock.
    Tick,
    SessionEnded {
        reason: String,
    },
}

impl EventKind {
    /// Actions and their outcomes must survive an SSH drop: the log is fsynced after these.
    pub fn is_durable_point(&self) -> bool {
        matches!(
            self,
            EventKind::SessionStarted(_)
                | EventKind::Key { .. }
                | EventKind::CountFinished { .. }
                | EventKind::CountFailed { .. }
                | EventKind::VerifyTableDone { .. }
                | EventKind::VerifyFinished { .. }
                | EventKind::SessionEnded { .. }
        )
    }
}
