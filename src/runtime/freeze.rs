//! The write freeze on the source, and its undoing.
//!
//! A freeze by privileges: `default_transaction_read_only` alone is only a
//! default a client can turn off (`SET …`, `BEGIN READ WRITE`) and reaches
//! only new sessions, so the freeze also takes the application roles' write
//! privileges on the selected tables — which a role that neither owns them
//! nor is a superuser cannot take back — and ends their sessions. Then it
//! proves it: no role can write a table (`has_table_privilege`, which sees
//! grants through PUBLIC and role membership too), no session of theirs
//! holds a write, and nothing was written for a while. What it takes is
//! logged before it takes it, so the rollback gives back exactly that.
//! Replication is untouched: its apply worker and walsenders run as other
//! roles.
//!
//! A freeze by read-only role takes nothing: the clients were switched to
//! a role that can write nothing; [`prove_read_only`] proves that role is
//! so, that no session of a writing role is left, and that nothing moves.

use std::time::Duration;

use anyhow::{anyhow, Result};
use tokio::sync::mpsc::Sender;
use tokio_postgres::Client;

use crate::config::Config;
use crate::runbook::plan::{freeze_sql, unfreeze_sql};
use crate::session::{EventKind, Grant, Side};

const LOCK_TIMEOUT_MS: u64 = 5_000;
const STATEMENT_TIMEOUT_MS: u64 = 30_000;
/// Writes must stand still this long (after the statistics' own delay).
const STILL_FOR: Duration = Duration::from_secs(1);
/// Statistics reach the counters up to a second late.
const STATS_DELAY: Duration = Duration::from_millis(1100);

const CHECK_ROLES_SQL: &str = "\
SELECT r.rolname::text, r.rolsuper, r.rolbypassrls,
       coalesce((SELECT string_agg(format('%I.%I', n.nspname, c.relname), ', '
                                   ORDER BY n.nspname, c.relname)
                   FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                  WHERE c.relowner = r.oid AND c.oid = ANY($2::text[]::regclass[])), '')
  FROM unnest($1::text[]) AS want(name)
  LEFT JOIN pg_roles r ON r.rolname = want.name";

/// The tables with every partition of a partitioned one (a client may
/// write a partition directly, whose own privileges then apply).
const WITH_PARTITIONS_SQL: &str = "\
SELECT DISTINCT format('%I.%I', n.nspname, c.relname)
  FROM unnest($1::text[]) AS t(name)
 CROSS JOIN LATERAL (SELECT t.name::regclass AS relid
                     UNION SELECT p.relid FROM pg_partition_tree(t.name::regclass) p) r
  JOIN pg_class c ON c.oid = r.relid
  JOIN pg_namespace n ON n.oid = c.relnamespace
 ORDER BY 1";

const GRANTS_SQL: &str = "\
SELECT r.rolname::text, format('%I.%I', n.nspname, c.relname), a.privilege_type
  FROM pg_class c
  JOIN pg_namespace n ON n.oid = c.relnamespace
  CROSS JOIN LATERAL aclexplode(c.relacl) a
  JOIN pg_roles r ON r.oid = a.grantee
 WHERE r.rolname = ANY($1)
   AND a.privilege_type IN ('INSERT', 'UPDATE', 'DELETE', 'TRUNCATE')
   AND c.oid = ANY($2::text[]::regclass[])
 ORDER BY 1, 2, 3";

const STILL_WRITABLE_SQL: &str = "\
SELECT r, t FROM unnest($1::text[]) r, unnest($2::text[]) t
 WHERE has_table_privilege(r, t, 'INSERT, UPDATE, DELETE, TRUNCATE')
 ORDER BY 1, 2";

/// Client sessions of any role holding a write (an xid): one that commits
/// after the freeze writes past the position the target is checked against.
const WRITING_SESSIONS_SQL: &str = concat!(
    "SELECT format('pid %s (%s%s) since %s', pid, usename,
            CASE WHEN application_name <> '' THEN ', ' || application_name ELSE '' END,
            to_char(xact_start AT TIME ZONE 'UTC', 'HH24:MI:SS'))
       FROM pg_stat_activity WHERE ",
    crate::pg::client_sessions_where!(),
    " AND backend_xid IS NOT NULL ORDER BY xact_start"
);

/// Ends every session of the roles: at the freeze, the write-capable ones;
/// at the unfreeze, those opened during it, which keep its read-only default.
const END_SESSIONS_SQL: &str = "\
SELECT count(pg_terminate_backend(pid))::int8 FROM pg_stat_activity
 WHERE usename = ANY($1) AND pid <> pg_backend_pid()";

const WRITTEN_SQL: &str = "\
SELECT coalesce(sum(n_tup_ins + n_tup_upd + n_tup_del), 0)::int8
  FROM pg_stat_user_tables WHERE relid = ANY($1::text[]::regclass[])";

/// The side frozen, for one step: its connection settings and its name.
#[derive(Clone, Copy)]
struct On<'a> {
    config: &'a Config,
    side: Side,
}

/// One round trip on the frozen side under the freeze's statement timeout.
async fn q<T>(
    on: On<'_>,
    what: &str,
    fut: impl std::future::Future<Output = Result<T, tokio_postgres::Error>>,
) -> Result<T> {
    super::pg_steps::bounded(on.config, on.side, what, STATEMENT_TIMEOUT_MS, fut).await
}

/// `statements` in one transaction: all of them, or none.
async fn in_one_transaction(
    on: On<'_>,
    c: &mut Client,
    what: &str,
    statements: &[String],
) -> Result<()> {
    q(on, what, async {
        let t = c.transaction().await?;
        for s in statements {
            t.batch_execute(s).await?;
        }
        t.commit().await
    })
    .await
}

/// `tables` with every partition of a partitioned one.
async fn with_partitions(on: On<'_>, c: &Client, tables: &[String]) -> Result<Vec<String>> {
    Ok(q(
        on,
        "listing the partitions",
        c.query(WITH_PARTITIONS_SQL, &[&tables]),
    )
    .await?
    .iter()
    .map(|r| r.get(0))
    .collect())
}

/// Refuses, changing nothing, a role the freeze cannot hold against.
async fn check_roles(
    on: On<'_>,
    c: &Client,
    roles: &[String],
    tables: &[String],
    what: &str,
) -> Result<()> {
    let rows = q(
        on,
        "reading the roles",
        c.query(CHECK_ROLES_SQL, &[&roles, &tables]),
    )
    .await?;
    let mut why = Vec::new();
    for (row, want) in rows.iter().zip(roles) {
        let name: Option<String> = row.get(0);
        if name.is_none() {
            why.push(format!(
                "role {want} does not exist on the {}",
                on.side.as_str()
            ));
            continue;
        }
        if row.get::<_, Option<bool>>(1) == Some(true) {
            why.push(format!(
                "{want} is a superuser: no privilege can be taken from it"
            ));
        }
        let owns: String = row.get(3);
        if !owns.is_empty() {
            why.push(format!(
                "{want} owns {owns}: an owner can grant itself back"
            ));
        }
    }
    if why.is_empty() {
        Ok(())
    } else {
        Err(anyhow!("{what} cannot hold: {}", why.join("; ")))
    }
}

pub async fn freeze(
    id: u64,
    config: &Config,
    side: Side,
    roles: &[String],
    tables: &[String],
    tx: &Sender<EventKind>,
) -> Result<String> {
    if roles.is_empty() {
        return Err(anyhow!(
            "no application roles: set [freeze] app_roles; nothing was changed"
        ));
    }
    let on = On { config, side };
    let mut c = super::pg_steps::open(config, side, LOCK_TIMEOUT_MS, STATEMENT_TIMEOUT_MS).await?;
    let selected = tables.len();
    let all = with_partitions(on, &c, tables)
        .await
        .map_err(|e| anyhow!("{e:#}; nothing was changed"))?;
    let tables = all.as_slice();
    check_roles(on, &c, roles, tables, "a freeze by privileges")
        .await
        .map_err(|e| anyhow!("{e:#}; nothing was changed"))?;
    let grants: Vec<Grant> = q(
        on,
        "reading the privileges",
        c.query(GRANTS_SQL, &[&roles, &tables]),
    )
    .await
    .map_err(|e| anyhow!("{e:#}; nothing was changed"))?
    .iter()
    .map(|r| Grant {
        role: r.get(0),
        table: r.get(1),
        privilege: r.get(2),
    })
    .collect();
    // On record before anything is taken: a crash after the REVOKE still
    // leaves the rollback what to give back.
    tx.send(EventKind::FreezeGrants {
        id,
        side,
        roles: roles.to_vec(),
        grants: grants.clone(),
        read_only_role: None,
    })
    .await
    .map_err(|_| anyhow!("console stopped; nothing was changed"))?;
    let statements = freeze_sql(roles, tables);
    in_one_transaction(on, &mut c, "freezing writes", &statements)
        .await
        .map_err(|e| anyhow!("{e:#}; nothing was changed (one transaction)"))?;
    let partly = "privileges were taken: B gives them back";
    let ended: i64 = q(
        on,
        "ending the roles' sessions",
        c.query_one(END_SESSIONS_SQL, &[&roles]),
    )
    .await
    .map_err(|e| anyhow!("{e:#}; {partly}"))?
    .get(0);
    // The proof.
    let writable = q(
        on,
        "checking privileges",
        c.query(STILL_WRITABLE_SQL, &[&roles, &tables]),
    )
    .await
    .map_err(|e| anyhow!("{e:#}; {partly}"))?;
    if !writable.is_empty() {
        let list: Vec<String> = writable
            .iter()
            .take(5)
            .map(|r| format!("{} → {}", r.get::<_, String>(0), r.get::<_, String>(1)))
            .collect();
        return Err(anyhow!(
            "NOT frozen: {} role/table pairs can still be written, through a grant to PUBLIC or to \
             a role they belong to ({}); {partly}",
            writable.len(),
            list.join(", ")
        ));
    }
    let lsn = still(on, &c, tables, partly).await?;
    proven(id, side, &lsn, tx).await?;
    Ok(format!(
        "writes frozen for {}: {} privileges taken on {}, {ended} sessions ended, nothing \
         written for {} s; {} WAL at {lsn}",
        roles.join(", "),
        grants.len(),
        match tables.len() - selected.min(tables.len()) {
            0 => format!("{} tables", tables.len()),
            p => format!("{} tables ({p} of them partitions)", tables.len()),
        },
        STILL_FOR.as_secs(),
        side.as_str()
    ))
}

pub async fn unfreeze(
    id: u64,
    config: &Config,
    side: Side,
    roles: &[String],
    grants: &[Grant],
    tx: &Sender<EventKind>,
) -> Result<String> {
    let on = On { config, side };
    let mut c = super::pg_steps::open(config, side, LOCK_TIMEOUT_MS, STATEMENT_TIMEOUT_MS).await?;
    let statements = unfreeze_sql(roles, grants);
    in_one_transaction(on, &mut c, "giving the writes back", &statements)
        .await
        .map_err(|e| {
            anyhow!(
                "{e:#}; nothing was changed (one transaction): the {} is still frozen",
                side.as_str()
            )
        })?;
    tx.send(EventKind::WritesUnfrozen { id, side })
        .await
        .map_err(|_| anyhow!("console stopped"))?;
    // Sessions opened during the freeze keep its read-only default: the
    // app reconnects with the default back.
    let ended: i64 = q(on, "ending the roles' read-only sessions", c.query_one(END_SESSIONS_SQL, &[&roles]))
        .await
        .map_err(|e| anyhow!("{e:#}; the privileges are back, but sessions opened during the freeze stay read-only until they reconnect"))?
        .get(0);
    Ok(format!(
        "the {} takes writes again: {} privileges given back to {}, {ended} read-only \
         session(s) ended to reconnect",
        side.as_str(),
        grants.len(),
        roles.join(", ")
    ))
}

/// The proof's last part, on `tables` of the frozen side: no client session
/// holds a write, nothing was written for [`STILL_FOR`] (after the
/// statistics' delay); then the WAL position, which the target must reach.
/// `partly` says what stays changed when it fails.
async fn still(on: On<'_>, c: &Client, tables: &[String], partly: &str) -> Result<String> {
    let side = on.side;
    let written = || async {
        let row = q(
            on,
            "reading rows written",
            c.query_one(WRITTEN_SQL, &[&tables]),
        )
        .await?;
        anyhow::Ok(row.get::<_, i64>(0))
    };
    tokio::time::sleep(STATS_DELAY).await;
    let before = written().await?;
    tokio::time::sleep(STILL_FOR).await;
    let after = written().await?;
    let writing: Vec<String> = q(on, "reading sessions", c.query(WRITING_SESSIONS_SQL, &[]))
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    if !writing.is_empty() {
        return Err(anyhow!(
            "NOT proven frozen: {} session(s) hold a write transaction open and may still \
             commit on the {}: {} — let them finish or end them (pg_terminate_backend), then \
             Z again; {partly}",
            writing.len(),
            side.as_str(),
            writing.join(", ")
        ));
    }
    if after != before {
        return Err(anyhow!(
            "NOT proven frozen: {} rows written in {} s by a client the freeze does not \
             cover; {partly}",
            after - before,
            STILL_FOR.as_secs()
        ));
    }
    let lsn: String = q(
        on,
        "reading the WAL position",
        c.query_one("SELECT pg_current_wal_lsn()::text", &[]),
    )
    .await?
    .get(0);
    Ok(lsn)
}

/// The freeze is proven, the WAL at `lsn`: on record.
async fn proven(id: u64, side: Side, lsn: &str, tx: &Sender<EventKind>) -> Result<()> {
    tx.send(EventKind::WritesFrozen {
        id,
        side,
        lsn: lsn.to_string(),
    })
    .await
    .map_err(|_| anyhow!("console stopped"))
}

/// How long the proof waits for the writing roles' sessions to end: the
/// default termination grace period of a Kubernetes pod.
const SESSIONS_GRACE: Duration = Duration::from_secs(30);

/// Client sessions of the writing roles left on the frozen side.
const WRITING_ROLE_SESSIONS_SQL: &str = concat!(
    "SELECT format('pid %s (%s%s) since %s', pid, usename,
            CASE WHEN application_name <> '' THEN ', ' || application_name ELSE '' END,
            to_char(backend_start AT TIME ZONE 'UTC', 'HH24:MI:SS'))
       FROM pg_stat_activity WHERE ",
    crate::pg::client_sessions_where!(),
    " AND usename = ANY($1) ORDER BY backend_start"
);

/// The freeze by read-only role, once the clients were switched and
/// restarted: `role` can write no table (and can take nothing back), no
/// session of `write_roles` is left on the side, nothing is written. Reads
/// only: what it finds wrong is said, nothing is ended or taken.
pub async fn prove_read_only(
    id: u64,
    config: &Config,
    side: Side,
    role: &str,
    write_roles: &[String],
    tables: &[String],
    tx: &Sender<EventKind>,
) -> Result<String> {
    let on = On { config, side };
    let c = super::pg_steps::open(config, side, LOCK_TIMEOUT_MS, STATEMENT_TIMEOUT_MS).await?;
    let partly = "the clients' config holds the read-only value: B puts it back";
    let all = with_partitions(on, &c, tables).await?;
    let tables = all.as_slice();
    let roles = vec![role.to_string()];
    check_roles(on, &c, &roles, tables, "a freeze by read-only role")
        .await
        .map_err(|e| anyhow!("NOT frozen: {e:#}; {partly}"))?;
    let writable = q(
        on,
        "checking privileges",
        c.query(STILL_WRITABLE_SQL, &[&roles, &tables]),
    )
    .await?;
    if !writable.is_empty() {
        let list: Vec<String> = writable
            .iter()
            .take(5)
            .map(|r| r.get::<_, String>(1))
            .collect();
        return Err(anyhow!(
            "NOT frozen: {role} can write {} table(s) ({}): it is not a read-only role; \
             {partly}",
            writable.len(),
            list.join(", ")
        ));
    }
    // Pods of the old template end their sessions as they terminate
    // (within their grace period): wait that long for them, no longer.
    let deadline = tokio::time::Instant::now() + SESSIONS_GRACE;
    let left: Vec<String> = loop {
        let left: Vec<String> = q(
            on,
            "reading the writing roles' sessions",
            c.query(WRITING_ROLE_SESSIONS_SQL, &[&write_roles]),
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
        if left.is_empty() || tokio::time::Instant::now() >= deadline {
            break left;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    if !left.is_empty() {
        return Err(anyhow!(
            "NOT frozen: {} session(s) of {} still connected to the {} after {} s: {} — a \
             client not moved to {role} (a pod of the old template, a job, a person); move or \
             end it, then Z again; {partly}",
            left.len(),
            write_roles.join(", "),
            side.as_str(),
            SESSIONS_GRACE.as_secs(),
            left.join(", ")
        ));
    }
    let lsn = still(on, &c, tables, partly).await?;
    proven(id, side, &lsn, tx).await?;
    Ok(format!(
        "writes frozen by read-only role: {role} can write none of {} tables, no session of \
         {} left, nothing written for {} s; {} WAL at {lsn}",
        tables.len(),
        write_roles.join(", "),
        STILL_FOR.as_secs(),
        side.as_str()
    ))
}
