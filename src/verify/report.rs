//! What a verification found, serialisable for `--json` and the session log,
//! and printable for people.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::sql::HashKind;
use crate::session::sample::TableRef;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// Ranges of the primary key, bisected down to rows.
    PrimaryKey,
    /// Ranges of a key the user declared (the table has no primary key).
    DeclaredKey,
    /// No key: count and hash sum of the whole table; differences are not located.
    Multiset,
}

impl Method {
    pub fn as_str(&self) -> &'static str {
        match self {
            Method::PrimaryKey => "primary key ranges",
            Method::DeclaredKey => "declared key ranges",
            Method::Multiset => "multiset (whole table)",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TableStatus {
    Clean,
    Mismatch,
    Error,
    Cancelled,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DiffKind {
    /// On the source, not on the target.
    MissingOnTarget,
    /// On the target, not on the source.
    ExtraOnTarget,
    /// Same key, different values.
    Changed,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RowDifference {
    pub kind: DiffKind,
    /// `id=5` or `a=1, b=x` (key values as text under the pinned settings).
    pub key: String,
    /// Names of the columns that differ (only for `changed`).
    pub columns: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableVerify {
    pub table: TableRef,
    pub method: Method,
    pub key_columns: Vec<String>,
    pub status: TableStatus,
    pub error: Option<String>,
    pub rows_source: u64,
    pub rows_target: u64,
    /// Key ranges whose count and hash were compared (all levels).
    pub ranges_checked: u64,
    /// Differences found, up to the configured maximum.
    pub differences: Vec<RowDifference>,
    /// All differences found, including those beyond the maximum.
    pub differences_total: u64,
    pub columns_only_source: Vec<String>,
    pub columns_only_target: Vec<String>,
    pub elapsed_ms: f64,
    /// Rows over the wall time of that side's full-table pass.
    pub source_rows_per_sec: f64,
    pub target_rows_per_sec: f64,
    pub notes: Vec<String>,
}

impl TableVerify {
    pub fn new(table: TableRef) -> Self {
        TableVerify {
            table,
            method: Method::Multiset,
            key_columns: Vec::new(),
            status: TableStatus::Clean,
            error: None,
            rows_source: 0,
            rows_target: 0,
            ranges_checked: 0,
            differences: Vec::new(),
            differences_total: 0,
            columns_only_source: Vec::new(),
            columns_only_target: Vec::new(),
            elapsed_ms: 0.0,
            source_rows_per_sec: 0.0,
            target_rows_per_sec: 0.0,
            notes: Vec::new(),
        }
    }

    /// A table that could not be compared, and why.
    pub fn failed(table: TableRef, error: String) -> Self {
        TableVerify {
            status: TableStatus::Error,
            error: Some(error),
            ..TableVerify::new(table)
        }
    }

    /// A table a cancelled run did not finish (or start).
    pub fn cancelled(table: TableRef) -> Self {
        TableVerify {
            status: TableStatus::Cancelled,
            ..TableVerify::new(table)
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VerifyReport {
    pub tables: Vec<TableVerify>,
    pub cancelled: bool,
    pub hash: HashKind,
    pub parallelism: usize,
    pub elapsed_ms: f64,
}

impl VerifyReport {
    /// Every table verified and identical.
    pub fn is_clean(&self) -> bool {
        !self.cancelled && self.tables.iter().all(|t| t.status == TableStatus::Clean)
    }
}

fn rate(r: f64) -> String {
    if r >= 1e6 {
        format!("{:.1}M rows/s", r / 1e6)
    } else if r >= 1e3 {
        format!("{:.1}k rows/s", r / 1e3)
    } else {
        format!("{r:.0} rows/s")
    }
}

impl fmt::Display for VerifyReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for t in &self.tables {
            let word = match t.status {
                TableStatus::Clean => "✔ CLEAN",
                TableStatus::Mismatch => "✖ MISMATCH",
                TableStatus::Error => "✖ ERROR",
                TableStatus::Cancelled => "… CANCELLED",
            };
            writeln!(f, "{word}  {}  ({})", t.table, t.method.as_str())?;
            if !t.key_columns.is_empty() {
                writeln!(f, "    key: {}", t.key_columns.join(", "))?;
            }
            writeln!(
                f,
                "    rows: source {} / target {}; {} ranges checked; {:.1}s (source {}, target {})",
                t.rows_source,
                t.rows_target,
                t.ranges_checked,
                t.elapsed_ms / 1000.0,
                rate(t.source_rows_per_sec),
                rate(t.target_rows_per_sec)
            )?;
            if let Some(e) = &t.error {
                writeln!(f, "    error: {e}")?;
            }
            if !t.columns_only_source.is_empty() {
                writeln!(
                    f,
                    "    columns only on source: {}",
                    t.columns_only_source.join(", ")
                )?;
            }
            if !t.columns_only_target.is_empty() {
                writeln!(
                    f,
                    "    columns only on target: {}",
                    t.columns_only_target.join(", ")
                )?;
            }
            for d in &t.differences {
                match d.kind {
                    DiffKind::MissingOnTarget => writeln!(f, "    missing on target: {}", d.key)?,
                    DiffKind::ExtraOnTarget => writeln!(f, "    extra on target:   {}", d.key)?,
                    DiffKind::Changed => writeln!(
                        f,
                        "    changed:           {}  [{}]",
                        d.key,
                        d.columns.join(", ")
                    )?,
                }
            }
            let shown = t.differences.len() as u64;
            if t.differences_total > shown {
                writeln!(
                    f,
                    "    … and {} more differences",
                    t.differences_total - shown
                )?;
            }
            for n in &t.notes {
                writeln!(f, "    note: {n}")?;
            }
        }
        let clean = self
            .tables
            .iter()
            .filter(|t| t.status == TableStatus::Clean)
            .count();
        write!(
            f,
            "{} of {} tables clean{} in {:.1}s",
            clean,
            self.tables.len(),
            if self.cancelled { " (cancelled)" } else { "" },
            self.elapsed_ms / 1000.0
        )
    }
}
