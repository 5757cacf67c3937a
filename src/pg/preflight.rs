//! What the preflight needs to know from each server, read in a few bounded
//! round trips on the read-only monitoring connection. The judging is pure
//! and lives in `runbook::preflight`.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use anyhow::{anyhow, Result};
use serde::Serialize;
use tokio_postgres::Client;

use super::monitor::{poll_source, poll_target};
use crate::config::{Config, ConnConfig};
use crate::session::sample::{SourceSample, TableRef, TargetSample};

/// Facts from one side.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SideFacts {
    pub version_num: i32,
    pub version: String,
    /// Selected tables: column → type, in column order. Roots only: a
    /// partitioned table is published through its root, so the target may
    /// partition it differently.
    pub columns: BTreeMap<TableRef, Vec<(String, String)>>,
    /// `max_replication_slots`, slots in use; `max_wal_senders`, senders in use.
    pub max_slots: i64,
    pub slots_used: i64,
    pub max_senders: i64,
    pub senders_used: i64,
    /// Transactions open longer than five minutes, and the longest (s).
    pub long_transactions: i64,
    pub longest_transaction_s: f64,
    /// Sequences in the selected schemas.
    pub sequences: i64,
    /// Roles other than PUBLIC and the owner holding privileges on selected
    /// tables (or their columns): role → those tables.
    pub grantees: BTreeMap<String, Vec<TableRef>>,
    /// Every role of the cluster (roles are per cluster, not per database).
    pub roles: BTreeSet<String>,
    /// Client sessions per role in this database now (cutover's left out).
    pub connected: BTreeMap<String, i64>,
    /// Database time the gathering took on this side (ms).
    pub elapsed_ms: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Facts {
    pub source: SideFacts,
    pub target: SideFacts,
    pub source_sample: SourceSample,
    pub target_sample: TargetSample,
    /// `[freeze] app_roles`: the roles the freeze will act on.
    pub app_roles: Vec<String>,
}

const FACTS_SQL: &str = "SELECT current_setting('server_version_num')::int, \
     current_setting('server_version'), \
     current_setting('max_replication_slots')::bigint, \
     (SELECT count(*) FROM pg_catalog.pg_replication_slots), \
     current_setting('max_wal_senders')::bigint, \
     (SELECT count(*) FROM pg_catalog.pg_stat_replication), \
     (SELECT count(*) FROM pg_catalog.pg_stat_activity \
        WHERE xact_start < now() - interval '5 minutes' AND pid <> pg_backend_pid()), \
     (SELECT coalesce(extract(epoch FROM max(now() - xact_start)), 0)::float8 \
        FROM pg_catalog.pg_stat_activity WHERE xact_start IS NOT NULL AND pid <> pg_backend_pid())";

const COLUMNS_SQL: &str = "SELECT n.nspname, c.relname, a.attname, \
     pg_catalog.format_type(a.atttypid, a.atttypmod) \
     FROM pg_catalog.pg_attribute a \
     JOIN pg_catalog.pg_class c ON c.oid = a.attrelid \
     JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
     WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition \
       AND a.attnum > 0 AND NOT a.attisdropped \
       AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
       AND n.nspname NOT LIKE 'pg_toast%' \
     ORDER BY n.nspname, c.relname, a.attnum";

const SEQUENCES_SQL: &str = "SELECT schemaname, sequencename FROM pg_catalog.pg_sequences";

/// Who holds privileges on which table or its columns (as a dump's GRANTs
/// would name them): PUBLIC (grantee 0) has no pg_roles row; owners are left
/// out (the schema copy runs with --no-owner).
const GRANTEES_SQL: &str = "SELECT DISTINCT n.nspname, c.relname, r.rolname \
     FROM (SELECT oid, relacl AS acl FROM pg_catalog.pg_class WHERE relacl IS NOT NULL \
           UNION ALL \
           SELECT attrelid, attacl FROM pg_catalog.pg_attribute \
           WHERE attnum > 0 AND attacl IS NOT NULL) g \
     JOIN pg_catalog.pg_class c ON c.oid = g.oid \
     JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
     CROSS JOIN LATERAL pg_catalog.aclexplode(g.acl) a \
     JOIN pg_catalog.pg_roles r ON r.oid = a.grantee \
     WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition \
       AND a.grantee <> c.relowner \
     ORDER BY 3, 1, 2";

const ROLES_SQL: &str = "SELECT rolname FROM pg_catalog.pg_roles";

/// Client sessions per role in this database now, cutover's own left out:
/// the roles the application may connect as.
const CONNECTED_SQL: &str = concat!(
    "SELECT usename::text, count(*)::int8 FROM pg_catalog.pg_stat_activity WHERE ",
    super::client_sessions_where!(),
    " AND usename IS NOT NULL GROUP BY 1 ORDER BY 1"
);

async fn side(
    who: &str,
    conn: &ConnConfig,
    client: &Client,
    config: &Config,
    deadline: Duration,
) -> Result<SideFacts> {
    let started = Instant::now();
    let wrap = |e: tokio_postgres::Error| anyhow!("{}: {}", conn.describe(), super::error_text(&e));
    let row = super::within(
        who,
        conn,
        deadline,
        "reading settings",
        client.query_one(FACTS_SQL, &[]),
    )
    .await?
    .map_err(wrap)?;
    let query = |what: &'static str, sql: &'static str| async move {
        super::within(who, conn, deadline, what, client.query(sql, &[]))
            .await?
            .map_err(wrap)
    };
    let cols = query("reading columns", COLUMNS_SQL).await?;
    let seqs = query("reading sequences", SEQUENCES_SQL).await?;
    let grants = query("reading privileges", GRANTEES_SQL).await?;
    let role_rows = query("reading roles", ROLES_SQL).await?;
    let connected = query("reading sessions", CONNECTED_SQL)
        .await?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let mut grantees: BTreeMap<String, Vec<TableRef>> = BTreeMap::new();
    for r in grants {
        let (schema, table): (&str, &str) = (r.get(0), r.get(1));
        if config.tables.matches(schema, table) {
            grantees
                .entry(r.get(2))
                .or_default()
                .push(TableRef::new(schema, table));
        }
    }
    let roles = role_rows.iter().map(|r| r.get(0)).collect();
    let mut columns: BTreeMap<TableRef, Vec<(String, String)>> = BTreeMap::new();
    for r in cols {
        let (schema, table): (String, String) = (r.get(0), r.get(1));
        if config.tables.matches(&schema, &table) {
            columns
                .entry(TableRef::new(&schema, &table))
                .or_default()
                .push((r.get(2), r.get(3)));
        }
    }
    let sequences = seqs
        .iter()
        .filter(|r| {
            config
                .tables
                .matches(r.get::<_, &str>(0), r.get::<_, &str>(1))
        })
        .count() as i64;
    Ok(SideFacts {
        version_num: row.get(0),
        version: row.get(1),
        max_slots: row.get(2),
        slots_used: row.get(3),
        max_senders: row.get(4),
        senders_used: row.get(5),
        long_transactions: row.get(6),
        longest_transaction_s: row.get(7),
        sequences,
        grantees,
        roles,
        connected,
        columns,
        elapsed_ms: started.elapsed().as_secs_f64() * 1000.0,
    })
}

/// Reads both sides. An error says which side and what failed: the check
/// could not run.
pub async fn gather(config: &Config) -> Result<Facts> {
    let stmt = Duration::from_millis(config.monitor.statement_timeout_ms);
    let deadline = super::deadline_for(stmt);
    let filter = |s: &str, t: &str| config.tables.matches(s, t);
    let open = |c| {
        super::collector::open_monitor_connection(
            c,
            config.monitor.connect_timeout(),
            config.monitor.statement_timeout_ms,
        )
    };
    let src = open(&config.source)
        .await
        .map_err(|e| anyhow!("source: {e:#}"))?;
    let tgt = open(&config.target)
        .await
        .map_err(|e| anyhow!("target: {e:#}"))?;
    let source = side("source", &config.source, &src, config, deadline).await?;
    let target = side("target", &config.target, &tgt, config, deadline).await?;
    let source_sample = super::within(
        "source",
        &config.source,
        deadline,
        "polling",
        poll_source(&src, &filter),
    )
    .await?
    .map_err(|e| anyhow!("{}: {}", config.source.describe(), super::error_text(&e)))?;
    let target_sample = super::within(
        "target",
        &config.target,
        deadline,
        "polling",
        poll_target(&tgt, &filter),
    )
    .await?
    .map_err(|e| anyhow!("{}: {}", config.target.describe(), super::error_text(&e)))?;
    Ok(Facts {
        source,
        target,
        source_sample,
        target_sample,
        app_roles: config.freeze.app_roles.clone(),
    })
}
