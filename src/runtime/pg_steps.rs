//! Runs the PostgreSQL steps of a plan: a statement on one side, the schema
//! copy, the subscription, the wait for the initial sync. Each on its own
//! connection (`cutover-runbook` in pg_stat_activity) with lock_timeout and
//! statement_timeout set, every round trip under a client-side deadline.
//! Passwords never reach a command line, a message or the log.

use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use tokio::sync::mpsc::Sender;
use tokio_postgres::{Client, SimpleQueryMessage};

use crate::config::{Config, ConnConfig};
use crate::pg::{self, conn::connect};
use crate::runbook::Step;
use crate::session::{EventKind, Side};

use super::exec::send;

const APP_NAME: &str = "cutover-runbook";
/// The subscription connects to the source and creates its slot.
const CREATE_SUBSCRIPTION_TIMEOUT_MS: u64 = 60_000;
const SYNC_POLL: Duration = Duration::from_secs(1);
/// pg_dump | psql of the schema; a schema is small.
const COPY_SCHEMA_TIMEOUT: Duration = Duration::from_secs(300);

pub(super) fn side_conn(config: &Config, side: Side) -> &ConnConfig {
    match side {
        Side::Source => &config.source,
        Side::Target => &config.target,
    }
}

/// A connection for one step, with its timeouts set.
pub(super) async fn open(
    config: &Config,
    side: Side,
    lock_timeout_ms: u64,
    statement_timeout_ms: u64,
) -> Result<Client> {
    let conn = side_conn(config, side);
    let client = connect(conn, APP_NAME, config.monitor.connect_timeout()).await?;
    let setup = format!(
        "SET lock_timeout = {lock_timeout_ms}; SET statement_timeout = {statement_timeout_ms}"
    );
    let bound = pg::deadline_for(config.monitor.connect_timeout());
    pg::within(
        side.as_str(),
        conn,
        bound,
        "setting timeouts",
        client.batch_execute(&setup),
    )
    .await?
    .map_err(|e| anyhow!("{}: {}", conn.describe(), pg::error_text(&e)))?;
    Ok(client)
}

/// One round trip on `side` under a client-side deadline of
/// `statement_timeout_ms` plus the margin; a server error names the host
/// and what was being done.
pub(super) async fn bounded<T>(
    config: &Config,
    side: Side,
    what: &str,
    statement_timeout_ms: u64,
    fut: impl std::future::Future<Output = Result<T, tokio_postgres::Error>>,
) -> Result<T> {
    let conn = side_conn(config, side);
    let deadline = pg::deadline_for(Duration::from_millis(statement_timeout_ms));
    pg::within(side.as_str(), conn, deadline, what, fut)
        .await?
        .map_err(|e| anyhow!("{}: {what}: {}", conn.describe(), pg::error_text(&e)))
}

/// Runs one statement under the step's deadline; returns the rows it
/// affected, where the server says.
async fn execute(
    config: &Config,
    side: Side,
    sql: &str,
    lock_timeout_ms: u64,
    statement_timeout_ms: u64,
    scrub: &(dyn Fn(String) -> String + Sync),
) -> Result<Option<u64>> {
    let conn = side_conn(config, side);
    let client = open(config, side, lock_timeout_ms, statement_timeout_ms).await?;
    let deadline = pg::deadline_for(Duration::from_millis(statement_timeout_ms));
    let what = sql.split_whitespace().take(3).collect::<Vec<_>>().join(" ");
    let messages = pg::within(
        side.as_str(),
        conn,
        deadline,
        &what,
        client.simple_query(sql),
    )
    .await?
    .map_err(|e| anyhow!("{}: {}", conn.describe(), scrub(pg::error_text(&e))))?;
    Ok(messages.iter().find_map(|m| match m {
        SimpleQueryMessage::CommandComplete(n) => Some(*n),
        _ => None,
    }))
}

/// Runs a PostgreSQL step of run `id`; Ok(what it did, in words). The
/// preflight, the sequences and the freeze also report what they found
/// (each check, each sequence's values, the privileges taken) on `tx`
/// before the step ends.
pub async fn run(
    id: u64,
    step: &Step,
    config: &Config,
    tx: &Sender<EventKind>,
    live: &tokio::sync::watch::Receiver<super::verify_task::LiveVerify>,
) -> Result<String> {
    let started = Instant::now();
    let ms = || started.elapsed().as_millis();
    match step {
        Step::Sql {
            side,
            sql,
            lock_timeout_ms,
            statement_timeout_ms,
        } => {
            let rows = execute(
                config,
                *side,
                sql,
                *lock_timeout_ms,
                *statement_timeout_ms,
                &|e| e,
            )
            .await?;
            // The step's title says what ran; the pane adds the time.
            Ok(match rows.filter(|n| *n > 0) {
                Some(n) => format!("done on the {}: {n} rows", side.as_str()),
                None => format!("done on the {}", side.as_str()),
            })
        }
        Step::CreateSubscription {
            name,
            publication,
            on,
            copy_data,
            enabled,
            ..
        } => {
            // `on` connects to the other side with this string: it must
            // carry the password, so it is built here and never shown.
            let src = side_conn(config, on.other());
            let mut conninfo = src.params.libpq_conninfo();
            let password = src.password_for(0).map(|p| p.expose().to_string());
            if let Some(pw) = &password {
                conninfo.push_str(&format!(
                    " password='{}'",
                    pw.replace('\\', "\\\\").replace('\'', "\\'")
                ));
            }
            let sql = format!(
                "CREATE SUBSCRIPTION {} CONNECTION '{}' PUBLICATION {}{}",
                pg::monitor::quote_ident(name),
                conninfo.replace('\'', "''"),
                pg::monitor::quote_ident(publication),
                crate::runbook::plan::subscription_options(*copy_data, *enabled)
            );
            let scrub = |e: String| match &password {
                Some(pw) if !pw.is_empty() => e.replace(pw.as_str(), "<password>"),
                _ => e,
            };
            execute(
                config,
                *on,
                &sql,
                5_000,
                CREATE_SUBSCRIPTION_TIMEOUT_MS,
                &scrub,
            )
            .await?;
            Ok(format!(
                "created subscription {name} on the {} ({} ms); {}",
                on.as_str(),
                ms(),
                match (*enabled, *copy_data) {
                    (false, _) =>
                        "its slot keeps what is written from now on; it applies once enabled",
                    (true, true) => "the initial copy runs",
                    (true, false) => "it streams what is written from now on",
                }
            ))
        }
        Step::StopSubscription { name } => super::window::stop_subscription(config, name).await,
        Step::WaitReplicated {
            on,
            slot,
            timeout_s,
        } => {
            super::window::wait_replicated(config, *on, slot, Duration::from_secs(*timeout_s)).await
        }
        Step::ExactCounts { .. } => Err(anyhow!(
            "exact counts as a step of their own are only read from older logs: the final \
             check takes its counts in its checksum pass"
        )),
        Step::VerifyFinal { tables } => {
            super::window::verify_final(id, config, tables, live, tx).await
        }
        Step::WaitSync {
            subscription,
            timeout_s,
        } => wait_sync(config, subscription, Duration::from_secs(*timeout_s)).await,
        Step::CopySchema { .. } => copy_schema(config).await,
        Step::DumpRestore { jobs, .. } => super::dump::dump_restore(id, config, *jobs, tx).await,
        Step::Preflight => {
            let checks = preflight_checks(config).await?;
            let said = judge(&checks);
            send(tx, EventKind::PreflightChecked { id, checks }).await?;
            said
        }
        Step::PatchConfig { .. }
        | Step::RestoreConfig { .. }
        | Step::AwaitConfig { .. }
        | Step::CopyJob { .. }
        | Step::Restart { .. }
        | Step::WaitRollout { .. }
        | Step::RestartStatefulSet { .. }
        | Step::WaitStatefulSet { .. }
        | Step::PoolerPause { .. }
        | Step::PoolerRepoint { .. }
        | Step::PoolerReload { .. }
        | Step::PoolerResume { .. }
        | Step::PoolerProve { .. } => Err(anyhow!("{} is not a PostgreSQL step", step.title())),
        Step::AdvanceSequences {
            schemas,
            stride,
            to,
        } => {
            let sequences = super::sequences::advance(config, schemas, *stride, *to).await?;
            let said = super::sequences::said(&sequences, *to);
            send(tx, EventKind::SequencesAdvanced { id, sequences }).await?;
            Ok(said)
        }
        Step::ObserveApp { seconds, reverse } => {
            super::app_check::observe(config, *seconds, *reverse).await
        }
        Step::FreezeWrites {
            roles,
            tables,
            side,
        } => super::freeze::freeze(id, config, *side, roles, tables, tx).await,
        Step::UnfreezeWrites {
            roles,
            grants,
            side,
        } => super::freeze::unfreeze(id, config, *side, roles, grants, tx).await,
        Step::ProveReadOnly {
            role,
            write_roles,
            tables,
            side,
        } => super::freeze::prove_read_only(id, config, *side, role, write_roles, tables, tx).await,
        // The model starts it as a verification: never handed to the executor.
        Step::VerifyLive { .. } => Err(anyhow!("{} runs as a verification", step.title())),
    }
}

/// The checks of `cutover check`, read from both sides.
pub async fn preflight_checks(config: &Config) -> Result<Vec<crate::runbook::preflight::Check>> {
    let facts = pg::preflight::gather(config).await?;
    Ok(crate::runbook::preflight::evaluate_for(&facts, config))
}

/// The preflight step's outcome: Err naming every failing check with its fix.
pub fn judge(checks: &[crate::runbook::preflight::Check]) -> Result<String> {
    let failing: Vec<String> = checks
        .iter()
        .filter(|c| !c.ok)
        .map(|c| match &c.fix {
            Some(fix) => format!("{} ({}; fix: {fix})", c.name, c.observed),
            None => format!("{} ({})", c.name, c.observed),
        })
        .collect();
    if failing.is_empty() {
        Ok(format!("all {} checks pass", checks.len()))
    } else {
        Err(anyhow!(
            "{} of {} checks fail: {}",
            failing.len(),
            checks.len(),
            failing.join("; ")
        ))
    }
}

async fn wait_sync(config: &Config, subscription: &str, timeout: Duration) -> Result<String> {
    let started = Instant::now();
    let stmt_ms = config.monitor.statement_timeout_ms;
    let client = open(config, Side::Target, stmt_ms, stmt_ms).await?;
    let sql = "SELECT count(*) FILTER (WHERE r.srsubstate <> 'r'), count(*) \
               FROM pg_catalog.pg_subscription_rel r \
               JOIN pg_catalog.pg_subscription s ON s.oid = r.srsubid \
               WHERE s.subname = $1";
    loop {
        let row = bounded(
            config,
            Side::Target,
            "reading the sync state",
            stmt_ms,
            client.query_one(sql, &[&subscription]),
        )
        .await?;
        let (left, total): (i64, i64) = (row.get(0), row.get(1));
        if total > 0 && left == 0 {
            return Ok(format!(
                "all {total} tables of {subscription} ready after {:.1} s",
                started.elapsed().as_secs_f64()
            ));
        }
        if started.elapsed() > timeout {
            return Err(anyhow!(
                "{left} of {total} tables of {subscription} still not ready after {} s",
                timeout.as_secs()
            ));
        }
        tokio::time::sleep(SYNC_POLL).await;
    }
}

/// `pg_dump --schema-only` of the source piped into psql on the target.
/// Privileges come along (ownership does not): the GRANTs to the app's roles
/// must reach the target, which needs those roles (the preflight checks).
/// The DSNs go on the command line without their passwords; those go in
/// each program's own PGPASSWORD.
async fn copy_schema(config: &Config) -> Result<String> {
    let started = Instant::now();
    let tool = |name: &str| {
        std::env::var_os("CUTOVER_PG_BIN")
            .map(|d| std::path::PathBuf::from(d).join(name))
            .unwrap_or_else(|| name.into())
    };
    let with_password = |cmd: &mut tokio::process::Command, conn: &ConnConfig| {
        cmd.env_remove("PGPASSWORD");
        if let Some(pw) = conn.password_for(0) {
            cmd.env("PGPASSWORD", pw.expose());
        }
    };
    let mut dump = tokio::process::Command::new(tool("pg_dump"));
    dump.args(["--schema-only", "--no-owner", "--dbname"])
        .arg(config.source.params.libpq_conninfo())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    with_password(&mut dump, &config.source);
    let mut dump = dump
        .spawn()
        .context("starting pg_dump (put it on PATH, or set CUTOVER_PG_BIN)")?;
    let schema: Stdio = dump
        .stdout
        .take()
        .ok_or_else(|| anyhow!("pg_dump gave no output pipe"))?
        .try_into()
        .context("passing pg_dump's output to psql")?;
    let mut restore = tokio::process::Command::new(tool("psql"));
    restore
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "--dbname"])
        .arg(config.target.params.libpq_conninfo())
        .stdin(schema)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    with_password(&mut restore, &config.target);
    let restore = restore
        .spawn()
        .context("starting psql (put it on PATH, or set CUTOVER_PG_BIN)")?;
    let both = async { tokio::join!(dump.wait_with_output(), restore.wait_with_output()) };
    let (dumped, restored) = tokio::time::timeout(COPY_SCHEMA_TIMEOUT, both)
        .await
        .map_err(|_| {
            anyhow!(
                "the schema copy did not finish within {} s",
                COPY_SCHEMA_TIMEOUT.as_secs()
            )
        })?;
    let (dumped, restored) = (dumped?, restored?);
    let tail = |b: &[u8]| {
        String::from_utf8_lossy(b)
            .lines()
            .last()
            .unwrap_or_default()
            .to_string()
    };
    if !dumped.status.success() {
        return Err(anyhow!(
            "pg_dump of the source failed: {}",
            tail(&dumped.stderr)
        ));
    }
    if !restored.status.success() {
        return Err(anyhow!(
            "psql into the target stopped at the first error: {}",
            tail(&restored.stderr)
        ));
    }
    Ok(format!(
        "schema copied to the target in {:.1} s",
        started.elapsed().as_secs_f64()
    ))
}
