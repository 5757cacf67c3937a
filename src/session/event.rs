//! The one vocabulary of change. Every variant is written to the session log
//! before it is applied, so the log alone rebuilds the screen.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::sample::{Side, SourceSample, TableRef, TargetSample};
pub use crate::config::BudgetAction;
use crate::kube::WorkloadSnapshot;
use crate::verify::{ContinuousProgress, TableVerify, VerifyProgress};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub seq: u64,
    pub at: DateTime<Utc>,
    #[serde(flatten)]
    pub kind: EventKind,
}

/// The log format this version writes (see FORMAT.md beside this file).
/// Logs without the field are format 1; a reader refuses a newer format
/// rather than misread it.
pub const FORMAT_VERSION: u32 = 2;

fn format_1() -> u32 {
    1
}

/// Who drove the session, from where.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Operator {
    /// The OS user the console ran as.
    pub user: String,
    pub host: String,
    /// The SSH client's address when the console ran over SSH.
    #[serde(default)]
    pub ssh_client: Option<String>,
}

/// What the session is about; recorded first so replay and report need no config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionInfo {
    /// The log format ([`FORMAT_VERSION`] when written by this version).
    #[serde(default = "format_1")]
    pub format_version: u32,
    pub tool_version: String,
    /// Who ran the console, where (absent in format 1).
    #[serde(default)]
    pub operator: Option<Operator>,
    /// sha256 of the config file as read (never its contents).
    #[serde(default)]
    pub config_fingerprint: Option<String>,
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
    /// No key that changes anything outside cutover is bound (`--read-only`, replay).
    #[serde(default)]
    pub read_only: bool,
    /// `[replication] sequence_stride`: the margin added when the target's
    /// sequences are advanced past the source's.
    #[serde(default)]
    pub sequence_stride: u64,
    /// `[freeze] app_roles`: the roles the write freeze acts on.
    #[serde(default)]
    pub app_roles: Vec<String>,
    /// `[freeze] budget_secs`: the write-freeze window's budget.
    #[serde(default = "default_budget")]
    pub freeze_budget_secs: u64,
    /// `[freeze] on_budget_exceeded`: warn, or roll back by itself.
    #[serde(default)]
    pub on_budget_exceeded: BudgetAction,
    /// `[report] path`: where the last checkpoint writes the migration
    /// report (None: beside the session log).
    #[serde(default)]
    pub report_path: Option<String>,
    /// `[runbook] variant` (logs from before it: logical).
    #[serde(default)]
    pub runbook: crate::runbook::Variant,
    /// `[runbook] dump_jobs`.
    #[serde(default = "default_dump_jobs")]
    pub dump_jobs: u64,
    /// The console searches for every workload using the config object,
    /// and guards the app's move on it (logs from before it: it did not).
    #[serde(default)]
    pub config_users: bool,
    /// `[runbook] copy = "job"`: the copy's Job (nothing secret in it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub copy_job: Option<crate::runbook::copy_job::CopyJob>,
    /// In a session of several databases (`[[databases]]`): this log's
    /// database; its siblings are the logs named like it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<String>,
    /// `[pooler]`: the application connects through PgBouncer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pooler: Option<PoolerInfo>,
}

/// `[pooler]` as a session records it (the admin password never).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolerInfo {
    /// `service/<name>` or the listed `host:port`s.
    pub instances: String,
    /// The `[databases]` entry the application connects through.
    pub database: String,
    /// The file holding that entry.
    pub databases_file: String,
    pub pause_timeout_secs: u64,
}

fn default_budget() -> u64 {
    60
}

fn default_dump_jobs() -> u64 {
    4
}

/// The dump-and-restore copy's progress: which half, tables and bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CopyProgress {
    /// `dump` (source → directory) or `restore` (directory → target).
    pub phase: String,
    pub tables_done: u64,
    pub tables_total: u64,
    pub bytes_done: u64,
    /// The dump: the source's table sizes (an estimate); the restore: the
    /// dump's data files.
    pub bytes_total: u64,
    /// Since the copy began.
    pub elapsed_ms: u64,
    /// The phase's time left at its rate so far (bytes; tables when the
    /// bytes are not known).
    #[serde(default)]
    pub eta_ms: Option<u64>,
}

/// One privilege the write freeze took, to be given back by the rollback.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Grant {
    pub role: String,
    /// `schema.table`, quoted where needed.
    pub table: String,
    /// INSERT, UPDATE, DELETE or TRUNCATE.
    pub privilege: String,
}

/// One sequence as the sequence checkpoint found and left it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SequenceValue {
    /// `schema.name`, quoted where needed.
    pub name: String,
    /// The source's `last_value` (None: never used there).
    pub source: Option<i64>,
    /// The target's before the step (None: never used there).
    pub target_before: Option<i64>,
    /// What the step set (None: left as it was, already at or past).
    pub set_to: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KubeInfo {
    pub context: String,
    pub namespace: String,
    pub deployments: Vec<String>,
    /// `configmap/NAME`, `secret/NAME` or `service/NAME`: what the switch patches.
    #[serde(default)]
    pub config_object: Option<String>,
    #[serde(default)]
    pub config_key: Option<String>,
    /// Where the new value is read from (`$VAR` or a path), never the value.
    #[serde(default)]
    pub switch_to: Option<String>,
    /// Patched by the console, or changed through GitOps (logs from before
    /// it: patched).
    #[serde(default)]
    pub changes: crate::config::Changes,
    /// How long a GitOps checkpoint waits for its change to appear.
    #[serde(default = "gitops_wait_secs")]
    pub gitops_wait_secs: u64,
    /// `[freeze] method = "read-only-role"`: writes are frozen by switching
    /// the clients to this role's connection (None: by privileges).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_only_freeze: Option<ReadOnlyFreeze>,
}

/// The freeze by read-only role, as the session was configured.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadOnlyFreeze {
    /// The role the clients connect as while frozen.
    pub role: String,
    /// Where the value is read from (`$VAR` or a path), never the value.
    pub value_from: String,
}

fn gitops_wait_secs() -> u64 {
    crate::config::KubeCfg::DEFAULT_GITOPS_WAIT_SECS
}

/// One SelfSubjectAccessReview answer, as it may be shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessResult {
    /// e.g. `patch deployments.apps/app in shop`.
    pub describe: String,
    pub verb: String,
    pub allowed: bool,
    pub reason: Option<String>,
}

/// What the switch would write, by fingerprint only.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SwitchValue {
    /// sha256 fingerprint of the value the switch writes.
    pub new_fingerprint: Option<String>,
    /// Fingerprint of what the key holds now (None: absent or unreadable).
    pub current_fingerprint: Option<String>,
    /// Why the new value or the current one could not be read.
    pub error: Option<String>,
    /// `[freeze] method = "read-only-role"`: the fingerprint of the value
    /// the freeze writes (the source, as the read-only role), or why it
    /// could not be read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_only_fingerprint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_only_error: Option<String>,
}

/// What a switch changed: enough to show it and to know a rollback exists.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SwitchRecord {
    pub object: String,
    pub key: String,
    pub previous_fingerprint: Option<String>,
    pub new_fingerprint: String,
    /// False when the key already held the value (nothing patched).
    pub changed: bool,
}

/// What the lab's app pods measured, as the console shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AppWitness {
    /// Acknowledged and failed writes per second, lately.
    pub ok_per_sec: f64,
    pub failed_per_sec: f64,
    /// Failed writes in all.
    pub failed: u64,
    /// The write-failure window: its length once writes succeed again, and
    /// since when writes fail while they still do.
    pub failure_window_ms: Option<i64>,
    pub failing_since: Option<DateTime<Utc>>,
    /// The last write acknowledged on the source → the first on the target.
    pub source_to_target_ms: Option<i64>,
}

/// What the servers said about a step left in flight.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InFlight {
    /// Its change is there.
    Done,
    /// Its change is not there: it did not run (or was rolled back).
    NotDone,
    /// Part of it, or something else: look before going on.
    Partly,
    /// The servers cannot tell (or could not be asked).
    Unknown,
    /// It only reads and waits: nothing to find out.
    ReadOnly,
}

impl InFlight {
    pub fn word(self) -> &'static str {
        match self {
            InFlight::Done => "done",
            InFlight::NotDone => "not done",
            InFlight::Partly => "partly done",
            InFlight::Unknown => "unknown",
            InFlight::ReadOnly => "read-only",
        }
    }
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
    SessionStarted(Box<SessionInfo>),
    SourceSampled(SourceSample),
    TargetSampled(TargetSample),
    /// The collector (re)connected to this host of the side's DSN.
    CollectorConnected {
        side: Side,
        /// `host:port`.
        endpoint: String,
        /// Its position in the DSN's host list (0-based), of `hosts`.
        host_index: usize,
        hosts: usize,
    },
    /// A poll failed: the side turns stale from its last good sample.
    CollectorFailed {
        side: Side,
        error: String,
    },
    /// A workload as the Kubernetes watchers see it now.
    WorkloadSampled(WorkloadSnapshot),
    /// The pooler's instances as their admin consoles say now.
    PoolerSampled(crate::pooler::PoolerSample),
    /// The Kubernetes side can't be reached or watched: its pane turns stale.
    KubeFailed {
        error: String,
    },
    /// The API server answered a liveness probe while the watches run: what
    /// the watches show is current even if nothing changed.
    KubeAlive,
    /// A raw key press, as logs written before commands were logged hold
    /// them (`q`, `?`, `Esc`, `Up`, `Ctrl-c`, …); read through the keymap.
    Key {
        key: String,
    },
    /// A decision the operator made through the keymap.
    Command(crate::model::keymap::SessionCommand),
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
    /// Continuous verification: one table's state (fraction verified, ranges
    /// pending, confirmed differences) after its latest range checks.
    VerifyLive {
        run: u64,
        progress: ContinuousProgress,
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
    /// Access review and switch value, checked before any Kubernetes action.
    KubePreflightDone {
        checks: Vec<AccessResult>,
        switch_value: Option<SwitchValue>,
        /// The API could not be asked at all.
        error: Option<String>,
    },
    /// The executor starts step `index` of run `id`: the step itself, so the
    /// log says exactly what ran and it can be compared with the plan shown.
    StepStarted {
        id: u64,
        index: usize,
        step: crate::runbook::Step,
    },
    StepDone {
        id: u64,
        index: usize,
        message: String,
        elapsed_ms: f64,
    },
    StepFailed {
        id: u64,
        index: usize,
        error: String,
        elapsed_ms: f64,
    },
    /// The preflight step's checks, each with what was seen and its fix,
    /// sent before the step's end.
    PreflightChecked {
        id: u64,
        checks: Vec<crate::runbook::preflight::Check>,
    },
    /// The sequence step's findings, each sequence with its values, sent
    /// before the step's end.
    SequencesAdvanced {
        id: u64,
        sequences: Vec<SequenceValue>,
    },
    /// How far the dump-and-restore copy is (sent as it moves, at most
    /// once a second).
    CopyProgress {
        id: u64,
        progress: CopyProgress,
    },
    /// The workloads whose pods reference the config object, across the
    /// namespaces the config names (sent when it changes, and at least
    /// every [`crate::kube::discover::RESEND_S`] s while the search works).
    /// `home` is the config object's namespace.
    ConfigUsers {
        home: String,
        users: Vec<crate::kube::discover::ConfigUser>,
    },
    /// The search for them failed.
    ConfigUsersFailed {
        error: String,
    },
    /// Lines of the copy Job's pod log (and the console's notes on the
    /// Job, prefixed `[cutover]`), as they come, at most once a second.
    JobLog {
        id: u64,
        lines: Vec<String>,
    },
    /// The freeze is about to take these privileges (logged before the
    /// REVOKE, so a crash right after it still knows what to give back).
    FreezeGrants {
        id: u64,
        /// The side frozen: the source in the cutover, the target when a
        /// rollback after the switch freezes it to send the app back.
        #[serde(default)]
        side: Side,
        roles: Vec<String>,
        grants: Vec<Grant>,
        /// A freeze by read-only role: nothing is taken (grants empty); the
        /// clients move to this role's connection. The rollback puts their
        /// config back instead of giving privileges back.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        read_only_role: Option<String>,
    },
    /// The freeze is proven: no application role can write, nothing was
    /// written for a while, and the source's WAL stood at `lsn`.
    WritesFrozen {
        id: u64,
        #[serde(default)]
        side: Side,
        lsn: String,
    },
    /// The rollback gave the privileges back: the side takes writes again.
    WritesUnfrozen {
        id: u64,
        #[serde(default)]
        side: Side,
    },
    /// The lab's app pods, as they measured themselves (`<lab>/witness.json`,
    /// read every second on a lab): the rehearsal's witness.
    AppWitness(AppWitness),
    /// The write freeze outlasted its budget (`[freeze] budget_secs`); with
    /// `on_budget_exceeded = "rollback"` the rollback starts by itself.
    BudgetExceeded {
        budget_secs: u64,
        action: BudgetAction,
    },
    /// A line from logs written before steps were recorded one by one.
    KubeActionStep {
        id: u64,
        message: String,
    },
    /// A run ended (`kube_action_finished` in logs written before checkpoints).
    #[serde(alias = "kube_action_finished")]
    RunFinished {
        id: u64,
        ok: bool,
        message: String,
        /// Set by a switch (or a rollback) that reached the API server.
        #[serde(default)]
        switched: Option<SwitchRecord>,
    },
    /// The console was started again on this log (`--resume`) and appends
    /// to it from here; runs the log left unfinished are closed as failed,
    /// their outcome unknown.
    SessionResumed {
        /// The log's last sequence number before this event.
        previous_last_seq: u64,
        /// When the log's last event before this one happened.
        previous_last_at: DateTime<Utc>,
        /// Bytes of a torn last line (a crash mid-write) cut off the log.
        #[serde(default)]
        cut_bytes: u64,
        /// The version of the console that resumed.
        tool_version: String,
        /// Whether the resumed console binds no key that changes anything.
        #[serde(default)]
        read_only: bool,
    },
    /// The resumed console asked the servers what became of the step the
    /// session left in flight (step `index` of run `run`).
    InFlightOutcome {
        run: u64,
        index: usize,
        outcome: InFlight,
        /// What was read, in words.
        evidence: String,
    },
    /// The migration report was written (the runbook's last checkpoint
    /// passed), or could not be.
    ReportWritten {
        path: String,
        #[serde(default)]
        error: Option<String>,
    },
    /// Emitted when nothing else happens, so staleness is judged on an advancing clock.
    Tick,
    /// What the live console's panes showed (default view, no overlay) at
    /// `width`×`height` after the event before this one: a SHA-256 of the
    /// screen's text, so a replay can prove it draws the same screen.
    ScreenDigest {
        width: u16,
        height: u16,
        digest: String,
    },
    /// The console is ending (a hang-up, a signal, an error) while a
    /// checkpoint runs: which run and step were in flight, so the resumed
    /// console knows what to find out from the servers.
    InFlightAtEnd {
        run: u64,
        checkpoint: crate::runbook::CheckpointId,
        /// The step that had started and not ended (None: between steps).
        step: Option<(usize, crate::runbook::Step)>,
    },
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
                | EventKind::SessionResumed { .. }
                | EventKind::Key { .. }
                | EventKind::Command(_)
                | EventKind::CountFinished { .. }
                | EventKind::CountFailed { .. }
                | EventKind::VerifyTableDone { .. }
                | EventKind::VerifyFinished { .. }
                | EventKind::KubeActionStep { .. }
                | EventKind::StepStarted { .. }
                | EventKind::StepDone { .. }
                | EventKind::StepFailed { .. }
                | EventKind::PreflightChecked { .. }
                | EventKind::SequencesAdvanced { .. }
                | EventKind::FreezeGrants { .. }
                | EventKind::WritesFrozen { .. }
                | EventKind::WritesUnfrozen { .. }
                | EventKind::BudgetExceeded { .. }
                | EventKind::RunFinished { .. }
                | EventKind::InFlightAtEnd { .. }
                | EventKind::InFlightOutcome { .. }
                | EventKind::SessionEnded { .. }
        )
    }
}
