//! What the collectors observe, exactly as logged. The model never asks a server
//! anything: everything it knows arrives here, so a replay sees what the operator saw.

use serde::{Deserialize, Serialize};

/// A table as `schema.name`; ordering keeps panes and reports stable.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct TableRef {
    pub schema: String,
    pub name: String,
}

impl TableRef {
    pub fn new(schema: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            schema: schema.into(),
            name: name.into(),
        }
    }
}

impl std::fmt::Display for TableRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.schema, self.name)
    }
}

#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    /// What logs written before a step or event named its side meant.
    #[default]
    Source,
    Target,
}

impl Side {
    /// The other side: where a subscription on this side connects.
    pub fn other(self) -> Side {
        match self {
            Side::Source => Side::Target,
            Side::Target => Side::Source,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Side::Source => "source",
            Side::Target => "target",
        }
    }
}

/// Live size estimate of a table (statistics, never `count(*)`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableEstimate {
    pub table: TableRef,
    /// `n_live_tup` where the statistics have it, else `reltuples`; for a
    /// partitioned table, the sum over its leaf partitions.
    pub estimated_rows: i64,
    /// For a partitioned table, the sum over its leaf partitions.
    pub size_bytes: i64,
    pub has_primary_key: bool,
    /// `relreplident`: d(efault), n(othing), f(ull), i(ndex).
    pub replica_identity: String,
    /// Leaf partitions under this table; 0 = not partitioned. (Partitions
    /// themselves are never listed: only their roots are.)
    #[serde(default)]
    pub partitions: u32,
    /// Leaf partitions (of a partitioned root) with neither a primary key
    /// nor a replica identity, quoted: UPDATE and DELETE on them fail once
    /// published, whatever the root's identity.
    #[serde(default)]
    pub partitions_without_identity: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SlotRow {
    pub name: String,
    pub plugin: Option<String>,
    pub slot_type: String,
    pub database: Option<String>,
    pub active: bool,
    pub active_pid: Option<i32>,
    pub wal_status: Option<String>,
    /// Bytes of WAL the slot holds back on the source's disk (current LSN − restart_lsn).
    pub retained_bytes: Option<i64>,
    pub confirmed_flush_lsn: Option<String>,
    /// Current WAL LSN − confirmed_flush_lsn: how far the consumer is behind.
    pub lag_bytes: Option<i64>,
    pub safe_wal_size: Option<i64>,
}

/// One row of `pg_stat_replication` on the source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SenderRow {
    pub application_name: String,
    pub state: Option<String>,
    pub sent_lsn: Option<String>,
    pub write_lag_ms: Option<f64>,
    pub flush_lag_ms: Option<f64>,
    pub replay_lag_ms: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PublicationRow {
    pub name: String,
    pub all_tables: bool,
    pub tables: i64,
    /// `pubviaroot`: changes to a partition are published as its root's.
    #[serde(default)]
    pub via_root: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SourceSample {
    pub server_version: String,
    /// Rows inserted, updated and deleted in user tables since the
    /// statistics were reset (`pg_stat_user_tables`): writes per second
    /// are its rate.
    #[serde(default)]
    pub rows_written: Option<i64>,
    pub wal_level: String,
    pub current_wal_lsn: String,
    pub slots: Vec<SlotRow>,
    pub senders: Vec<SenderRow>,
    pub publications: Vec<PublicationRow>,
    pub tables: Vec<TableEstimate>,
    /// Round trip of the whole poll as the collector measured it.
    pub poll_ms: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SubscriptionRow {
    pub name: String,
    pub enabled: bool,
    pub slot_name: Option<String>,
    pub publications: Vec<String>,
    pub worker_pid: Option<i32>,
    pub received_lsn: Option<String>,
    pub latest_end_lsn: Option<String>,
    /// Seconds since the apply worker last heard from the publisher.
    pub last_msg_age_s: Option<f64>,
}

/// `pg_subscription_rel`: per-table sync state (i, d, f, s, r).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SubTableRow {
    pub subscription: String,
    pub table: TableRef,
    pub state: String,
    pub lsn: Option<String>,
}

/// A running initial-sync COPY on the subscriber (`pg_stat_progress_copy`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CopyProgress {
    pub table: TableRef,
    pub tuples_processed: i64,
    pub bytes_processed: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TargetSample {
    pub server_version: String,
    /// As the source's: the apply worker's writes count too.
    #[serde(default)]
    pub rows_written: Option<i64>,
    pub subscriptions: Vec<SubscriptionRow>,
    pub sub_tables: Vec<SubTableRow>,
    pub copies: Vec<CopyProgress>,
    pub tables: Vec<TableEstimate>,
    pub poll_ms: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_log_written_before_partitions_were_recorded_still_reads() {
        let old: TableEstimate = serde_json::from_value(serde_json::json!({
            "table": {"schema": "public", "name": "t"}, "estimated_rows": 1,
            "size_bytes": 8192, "has_primary_key": true, "replica_identity": "d"
        }))
        .unwrap();
        assert_eq!(old.partitions, 0);
        let p: PublicationRow = serde_json::from_value(
            serde_json::json!({"name": "p", "all_tables": false, "tables": 1}),
        )
        .unwrap();
        assert!(!p.via_root);
    }
}
