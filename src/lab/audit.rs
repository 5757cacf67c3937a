//! `cutover lab audit`: is every write the lab's app was told was stored
//! still there, in the database the app's config names now?
//!
//! Reads the acknowledged ids from the witness journals
//! ([`super::witness::read_journals`]), the app's `DATABASE_URL` from
//! ConfigMap `app-db` through the lab's Kubernetes API (as the pods read it
//! when they start), and compares in bulk: the ids go to the server as arrays
//! ([`CHUNK`] at a time) and one `unnest … WITH ORDINALITY` query per chunk
//! returns the missing ones in the order they were acknowledged.
//!
//! While the app runs, an audit can only under-report: an id is journalled
//! after the server acknowledged it, and an update acknowledged after the
//! journal was read only raises the row's counter. Right after a switch, writes
//! acknowledged by the old database may not have replicated yet: that is what
//! the audit is for, and it says so.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{anyhow, Context, Result};

use super::kube_sim::{APP_CONFIGMAP, DB_ENV, LAB_NAMESPACE};
use super::witness::{read_journals, Labels};
use super::{absolute, read_state, KUBECONFIG_FILE};
use crate::config::{ConnConfig, ProcessEnv};
use crate::kube::{bounded, connect_kubeconfig, read_key, ConfigObject};
use crate::ui::fmt::int;

/// Ids sent per query.
const CHUNK: usize = 50_000;
/// How many missing ids the report names.
pub const SHOWN: usize = 20;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A row whose `updates` counter is below the updates the app was told succeeded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShortRow {
    pub id: String,
    pub acknowledged: u32,
    pub found: i32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditReport {
    pub dir: PathBuf,
    /// `source`, `target`, or the config fingerprint of another database.
    pub database: String,
    /// The connection, redacted (no password).
    pub endpoint: String,
    pub inserts_checked: u64,
    pub updated_rows_checked: u64,
    pub updates_checked: u64,
    pub journals: usize,
    /// Acknowledged inserts not in `app_writes`: the first [`SHOWN`], in the
    /// order acknowledged, and how many in all.
    pub missing: Vec<String>,
    pub missing_count: u64,
    /// Rows present with fewer updates than acknowledged.
    pub short: Vec<ShortRow>,
    pub short_count: u64,
}

impl AuditReport {
    pub fn clean(&self) -> bool {
        self.missing_count == 0 && self.short_count == 0
    }
}

impl fmt::Display for AuditReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = |v: u64| int(i64::try_from(v).unwrap_or(i64::MAX));
        writeln!(
            f,
            "lab {}: the app's acknowledged writes against the {} ({}), where \
             {} {DB_ENV} points now",
            self.dir.display(),
            self.database,
            self.endpoint,
            ConfigObject::ConfigMap(APP_CONFIGMAP.into())
        )?;
        writeln!(
            f,
            "  inserts: {} acknowledged, {} missing",
            n(self.inserts_checked),
            n(self.missing_count)
        )?;
        write!(
            f,
            "  updates: {} acknowledged on {} rows; rows with fewer: {}",
            n(self.updates_checked),
            n(self.updated_rows_checked),
            n(self.short_count)
        )?;
        if self.missing_count > 0 {
            write!(
                f,
                "\nmissing ({} of {}): {}",
                self.missing.len(),
                n(self.missing_count),
                self.missing.join(", ")
            )?;
        }
        if self.short_count > 0 {
            let rows: Vec<String> = self
                .short
                .iter()
                .map(|r| {
                    format!(
                        "{} ({} acknowledged, {} found)",
                        r.id, r.acknowledged, r.found
                    )
                })
                .collect();
            write!(
                f,
                "\nfewer updates than acknowledged ({} of {}): {}",
                self.short.len(),
                n(self.short_count),
                rows.join(", ")
            )?;
        }
        if self.clean() {
            write!(f, "\nnothing missing")?;
        }
        Ok(())
    }
}

/// The app's DATABASE_URL as ConfigMap `app-db` holds it now.
async fn app_database_url(dir: &Path) -> Result<String> {
    let kubeconfig = dir.join(KUBECONFIG_FILE);
    if !kubeconfig.exists() {
        return Err(anyhow!(
            "no {} in {}: the lab's Kubernetes API is not running (start it with \
             `cutover lab up`)",
            KUBECONFIG_FILE,
            dir.display()
        ));
    }
    let conn = connect_kubeconfig(&kubeconfig, None, Some(LAB_NAMESPACE)).await?;
    let object = ConfigObject::ConfigMap(APP_CONFIGMAP.into());
    let what = format!(
        "reading {object} in {LAB_NAMESPACE} via {}",
        kubeconfig.display()
    );
    let (value, _) = bounded(
        &what,
        read_key(&conn.client, LAB_NAMESPACE, &object, DB_ENV),
    )
    .await
    .with_context(|| what.clone())?;
    value.ok_or_else(|| anyhow!("{object} in {LAB_NAMESPACE} has no key {DB_ENV}"))
}

/// Checks every acknowledged insert and update in the lab in `dir`.
pub async fn audit(dir: &Path) -> Result<AuditReport> {
    let dir = absolute(dir)?;
    let state = read_state(&dir)?.ok_or_else(|| {
        anyhow!(
            "no lab in {} (start one with `cutover lab up`)",
            dir.display()
        )
    })?;
    let acked = read_journals(&dir)?;
    let mut url = app_database_url(&dir).await?;
    let labels = Labels::for_lab(&dir, &state);
    let mut database = labels.name(&crate::kube::fingerprint(&url));
    // Through the pooler: the database its entry sends the app to now
    // (the audit's array queries are not for a transaction pooler).
    if let (Some(_), "pooler") = (&state.pooler, database.as_str()) {
        let file = dir
            .join(super::pooler::POOLER_DIR)
            .join(super::pooler::DATABASES_FILE);
        let text = std::fs::read_to_string(&file)
            .with_context(|| format!("reading {}", file.display()))?;
        let e = crate::pooler::entry::find(&text, &file.display().to_string(), super::SEED_DB)?;
        let (host, port, db) = (
            e.get("host").unwrap_or("127.0.0.1"),
            e.get("port").unwrap_or("5432"),
            e.get("dbname").unwrap_or(super::SEED_DB),
        );
        url = format!(
            "host={host} port={port} dbname={db} user={}",
            super::APP_ROLE
        );
        database = format!(
            "{} (through the pooler)",
            labels.name(&crate::kube::fingerprint(&url))
        );
    }
    let cfg = ConnConfig::from_dsn(
        format!("the app's database ({database})"),
        &url,
        None,
        &ProcessEnv,
    )
    .map_err(|e| anyhow!("{APP_CONFIGMAP} {DB_ENV}: {e}"))?;
    let endpoint = cfg.describe();
    let client = crate::pg::conn::connect(&cfg, "cutover lab audit", CONNECT_TIMEOUT)
        .await
        .map_err(|e| anyhow!("connecting to the app's database ({database}): {e}"))?;
    let query_error = |e: tokio_postgres::Error| {
        let why = e
            .as_db_error()
            .map_or_else(|| e.to_string(), |d| d.message().to_string());
        anyhow!("checking app_writes on {endpoint}: {why}")
    };

    let mut report = AuditReport {
        dir: dir.clone(),
        database,
        endpoint: endpoint.clone(),
        inserts_checked: acked.inserts.len() as u64,
        updated_rows_checked: acked.updates.len() as u64,
        updates_checked: acked.update_count(),
        journals: acked.journals,
        missing: Vec::new(),
        missing_count: 0,
        short: Vec::new(),
        short_count: 0,
    };
    for chunk in acked.inserts.chunks(CHUNK) {
        let rows = client
            .query(
                "SELECT u.id FROM unnest($1::text[]) WITH ORDINALITY AS u(id, ord) \
                 WHERE NOT EXISTS (SELECT 1 FROM app_writes w WHERE w.id = u.id) \
                 ORDER BY u.ord",
                &[&chunk],
            )
            .await
            .map_err(query_error)?;
        report.missing_count += rows.len() as u64;
        for r in rows {
            if report.missing.len() < SHOWN {
                report.missing.push(r.get(0));
            }
        }
    }
    for chunk in acked.updates.chunks(CHUNK) {
        let ids: Vec<&str> = chunk.iter().map(|(id, _)| id.as_str()).collect();
        let counts: Vec<i32> = chunk
            .iter()
            .map(|(_, n)| i32::try_from(*n).unwrap_or(i32::MAX))
            .collect();
        let rows = client
            .query(
                "SELECT u.id, u.n, w.updates \
                 FROM unnest($1::text[], $2::int4[]) WITH ORDINALITY AS u(id, n, ord) \
                 JOIN app_writes w ON w.id = u.id \
                 WHERE w.updates < u.n ORDER BY u.ord",
                &[&ids, &counts],
            )
            .await
            .map_err(query_error)?;
        report.short_count += rows.len() as u64;
        for r in rows {
            if report.short.len() < SHOWN {
                report.short.push(ShortRow {
                    id: r.get(0),
                    acknowledged: u32::try_from(r.get::<_, i32>(1)).unwrap_or(0),
                    found: r.get(2),
                });
            }
        }
    }
    Ok(report)
}
