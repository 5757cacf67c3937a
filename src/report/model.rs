//! What the report says, as data: built from the events by `build`, drawn
//! by each format. Nothing here is read from anywhere but the session log.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use crate::runbook::{CheckpointId, Phase};
use crate::session::{AppWitness, InFlight, KubeInfo, Side, TableRef};

/// How the migration ended, as far as the log tells.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The application was seen writing to the target (and not sent back).
    Completed {
        at: DateTime<Utc>,
        /// FINISH ran: the forward subscription was dropped.
        finished: bool,
    },
    /// A rollback ran to its end after the freeze or the switch.
    RolledBack { at: DateTime<Utc> },
    /// The latest run failed and nothing after it got further.
    Failed {
        checkpoint: CheckpointId,
        at: DateTime<Utc>,
        message: String,
    },
    /// The log stops before the cutover was done: the last checkpoint that
    /// passed, or the one in flight when the log ends.
    Unfinished {
        last_passed: Option<CheckpointId>,
        in_flight: Option<CheckpointId>,
    },
}

impl Outcome {
    /// One word for the header.
    pub fn word(&self) -> &'static str {
        match self {
            Outcome::Completed { .. } => "COMPLETED",
            Outcome::RolledBack { .. } => "ROLLED BACK",
            Outcome::Failed { .. } => "FAILED",
            Outcome::Unfinished { .. } => "UNFINISHED",
        }
    }

    /// The sentence after the word.
    pub fn sentence(&self) -> String {
        let t = super::fmt::clock;
        match self {
            Outcome::Completed { at, finished } => format!(
                "the application writes to the target (seen at {}){}",
                t(*at),
                if *finished {
                    "; the forward subscription was dropped (FINISH)"
                } else {
                    "; the forward subscription was not dropped in this session"
                }
            ),
            Outcome::RolledBack { at } => {
                format!("at {}: the application is back on the source", t(*at))
            }
            Outcome::Failed {
                checkpoint,
                at,
                message,
            } => format!(
                "at checkpoint \"{}\" ({}): {message}",
                checkpoint.title(),
                t(*at)
            ),
            Outcome::Unfinished {
                last_passed,
                in_flight,
            } => match (in_flight, last_passed) {
                (Some(c), _) => format!("\"{}\" was in flight when the log ends", c.title()),
                (None, Some(c)) => format!(
                    "the log ends after \"{}\", before the application was seen on the target",
                    c.title()
                ),
                (None, None) => "no checkpoint passed".to_string(),
            },
        }
    }
}

/// Who ran the console, when the header recorded it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Operator {
    pub user: Option<String>,
    pub host: Option<String>,
    pub ssh_client: Option<String>,
}

/// One stretch of the console running on the log: the start or a resume,
/// and how it ended.
#[derive(Debug, Clone, PartialEq)]
pub struct Segment {
    pub started: DateTime<Utc>,
    pub resumed: bool,
    pub tool_version: String,
    pub read_only: bool,
    /// The last event of the segment.
    pub last: DateTime<Utc>,
    /// `session_ended`'s reason; None: the log just stops (a crash or a lost connection).
    pub ended: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct EndpointReport {
    pub label: String,
    /// As the header logged it: never a password.
    pub describe: String,
    /// `server_version` of the first sample.
    pub server_version: Option<String>,
    /// `host:port` the collector connected to, when the DSN names several.
    pub hosts: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct StepReport {
    pub index: usize,
    pub title: String,
    /// What it ran (`Step::lines`): statements and patches, secrets only as fingerprints.
    pub lines: Vec<String>,
    pub started: DateTime<Utc>,
    pub finished: Option<DateTime<Utc>>,
    /// Ok(what it did) or Err(why not); None: no end in the log.
    pub outcome: Option<Result<String, String>>,
    pub elapsed_ms: Option<f64>,
}

/// A run a session end left in flight, and what the resumed console
/// found out about it from the servers.
#[derive(Debug, Clone, PartialEq)]
pub struct InFlightReport {
    /// The step that had started and not ended: its index and title
    /// (None: between steps).
    pub step: Option<(usize, String)>,
    /// When the console ended: its `session_ended`, or its last event.
    pub ended_at: DateTime<Utc>,
    /// `session_ended`'s reason; None: the log just stops (killed, a
    /// crash, a lost connection).
    pub ended: Option<String>,
    /// When the console was resumed on the log (None: it was not).
    pub resumed: Option<DateTime<Utc>>,
    /// What the servers said when the resumed console asked, and the
    /// evidence, in words.
    pub found: Option<(DateTime<Utc>, InFlight, String)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunResult {
    Ok,
    Failed,
    /// No end in the log (and no resume closed it).
    Unfinished,
}

impl RunResult {
    pub fn word(self) -> &'static str {
        match self {
            RunResult::Ok => "✔ ok",
            RunResult::Failed => "✖ failed",
            RunResult::Unfinished => "… unfinished",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct RunReport {
    pub id: u64,
    pub checkpoint: CheckpointId,
    /// The key that opens it in the console.
    pub key: Option<&'static str>,
    pub phase: Phase,
    pub started: DateTime<Utc>,
    pub finished: Option<DateTime<Utc>>,
    pub result: RunResult,
    pub message: Option<String>,
    /// Failing guards overridden, and the reason typed.
    pub overridden: Option<(Vec<String>, String)>,
    /// Started by the console itself, and why.
    pub auto: Option<String>,
    pub steps: Vec<StepReport>,
    /// Steps of the plan that never started.
    pub steps_not_run: Vec<String>,
    /// Free-form lines of logs written before steps were recorded.
    pub legacy: Vec<(DateTime<Utc>, String)>,
    /// Preflight checks that failed: name, what was seen, the fix.
    pub checks_failed: Vec<(String, String, Option<String>)>,
    pub checks_total: usize,
    /// A session end left it in flight.
    pub in_flight: Option<InFlightReport>,
}

impl RunReport {
    pub fn title(&self) -> &'static str {
        self.checkpoint.title()
    }

    pub fn duration_ms(&self) -> Option<i64> {
        self.finished
            .map(|f| (f - self.started).num_milliseconds().max(0))
    }
}

/// A write freeze: from the privileges taken to the application seen on the
/// other side, the unfreeze, or the end of the log.
#[derive(Debug, Clone, PartialEq)]
pub struct FreezeWindow {
    pub side: Side,
    pub roles: Vec<String>,
    pub privileges: usize,
    /// The privileges were taken: writes refused from here.
    pub from: DateTime<Utc>,
    /// Proven frozen, and the WAL position then.
    pub proven: Option<(DateTime<Utc>, String)>,
    /// The switch that reached the API server during the freeze.
    pub switched: Option<DateTime<Utc>>,
    /// A freeze by read-only role: the clients' config switched to it,
    /// nothing taken on the server.
    pub read_only_role: Option<String>,
    /// The app was seen writing to the target: the window closed (when the
    /// check started watching, as the console's timer counts it).
    pub app_on_target: Option<DateTime<Utc>>,
    /// Writes given back (a rollback).
    pub unfrozen: Option<DateTime<Utc>>,
    /// Where the window ends: the first of the above, or the log's end.
    pub until: DateTime<Utc>,
    /// Still open when the log ends.
    pub open: bool,
    pub budget_secs: u64,
    pub budget_exceeded: Option<DateTime<Utc>>,
    /// The console stopped while writes were frozen (its last event), and
    /// when it was resumed (None: it was not).
    pub console_down: Vec<(DateTime<Utc>, Option<DateTime<Utc>>)>,
}

impl FreezeWindow {
    pub fn duration_ms(&self) -> i64 {
        (self.until - self.from).num_milliseconds().max(0)
    }

    pub fn within_budget(&self) -> bool {
        self.duration_ms() <= self.budget_secs as i64 * 1000
    }
}

/// One side's exact count of a table.
#[derive(Debug, Clone, PartialEq)]
pub enum Count {
    None,
    Rows(i64, DateTime<Utc>),
    Failed(String),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Checksum {
    NotVerified,
    Equal(String),
    Differ(String),
    Incomplete(String),
    Error(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct TableReport {
    pub table: TableRef,
    pub source: Count,
    pub target: Count,
    pub checksum: Checksum,
    /// Differing rows: "missing on target id=5", "changed id=7 [price]".
    pub differences: Vec<String>,
    pub differences_more: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SequenceReport {
    pub run: u64,
    pub at: DateTime<Utc>,
    /// The side set (the target in the cutover, the source in a rollback).
    pub side: Side,
    pub name: String,
    pub source: Option<i64>,
    pub before: Option<i64>,
    pub set_to: Option<i64>,
}

impl SequenceReport {
    /// The value after the step: what it set, or what it left.
    pub fn after(&self) -> Option<i64> {
        self.set_to.or(self.before)
    }
}

/// A workload at one moment of its rollout.
#[derive(Debug, Clone, PartialEq)]
pub struct RolloutPoint {
    pub at: DateTime<Utc>,
    pub found: bool,
    pub desired: i32,
    pub updated: i32,
    pub ready: i32,
    pub available: i32,
    pub state: String,
    /// Pods per db-config fingerprint.
    pub by_config: BTreeMap<String, usize>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Rollout {
    pub namespace: String,
    pub deployment: String,
    /// Every change, oldest first (repeats left out).
    pub points: Vec<RolloutPoint>,
}

/// A point of a time series; None is a gap (no data then).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point<T> {
    pub at: DateTime<Utc>,
    pub value: Option<T>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct LagPoint {
    pub at: DateTime<Utc>,
    pub bytes: Option<i64>,
    /// The slot had a consumer: lag of a stopped subscription only grows.
    pub active: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum AnomalyKind {
    Unreadable,
    Stale,
    Reconnect,
    Kubernetes,
    Failed,
    Override,
    Budget,
    Resume,
    InFlight,
    Witness,
}

impl AnomalyKind {
    pub fn word(self) -> &'static str {
        match self {
            AnomalyKind::Unreadable => "unreadable",
            AnomalyKind::Stale => "stale",
            AnomalyKind::Reconnect => "reconnect",
            AnomalyKind::Kubernetes => "kubernetes",
            AnomalyKind::Failed => "failed",
            AnomalyKind::Override => "override",
            AnomalyKind::Budget => "budget",
            AnomalyKind::Resume => "resume",
            AnomalyKind::InFlight => "in flight",
            AnomalyKind::Witness => "app writes",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Anomaly {
    pub at: Option<DateTime<Utc>>,
    /// The end of a period (a stale side until its next good sample).
    pub until: Option<DateTime<Utc>>,
    pub kind: AnomalyKind,
    pub text: String,
}

/// When a check ended, and what it said: Ok(what passed) or Err(what failed).
pub type Verdict = (DateTime<Utc>, Result<String, String>);

/// The whole report.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub outcome: Outcome,
    pub tool_version: Option<String>,
    pub mode: Option<String>,
    pub config_path: Option<String>,
    /// The config file's sha256, short (`sha256:0341c1579321`).
    pub config_fingerprint: Option<String>,
    /// The log format the header declares (1 when it declares none).
    pub format_version: Option<u32>,
    pub operator: Option<Operator>,
    /// The report the console's last checkpoint wrote: when, where, and
    /// why it could not (None: written).
    pub report_written: Option<(DateTime<Utc>, String, Option<String>)>,
    pub first: Option<DateTime<Utc>>,
    pub last: Option<DateTime<Utc>>,
    pub events: usize,
    pub segments: Vec<Segment>,
    pub source: Option<EndpointReport>,
    pub target: Option<EndpointReport>,
    pub publication: Option<String>,
    pub subscription: Option<String>,
    pub slot: Option<String>,
    pub kubernetes: Option<KubeInfo>,
    pub budget_secs: Option<u64>,
    pub runs: Vec<RunReport>,
    pub freezes: Vec<FreezeWindow>,
    pub tables: Vec<TableReport>,
    /// The final check's verdict on the checksums, when it ran.
    pub final_checksums: Option<Verdict>,
    pub sequences: Vec<SequenceReport>,
    pub rollouts: Vec<Rollout>,
    pub lag: Vec<LagPoint>,
    pub writes_source: Vec<Point<f64>>,
    pub writes_target: Vec<Point<f64>>,
    pub notes: Vec<(DateTime<Utc>, String)>,
    pub anomalies: Vec<Anomaly>,
    /// What the lab's app pods measured last.
    pub witness: Option<(DateTime<Utc>, AppWitness)>,
}
