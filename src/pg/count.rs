//! Exact row counts, off the UI's path: one connection per side, tables one
//! after another, both sides at once. Each finished table is an event, so the
//! pane fills in as it goes. Cancelling cancels the query on the server too:
//! dropping a connection leaves a running `count(*)` scanning until it next writes.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc::Sender, watch};

use super::conn::connect;
use super::monitor::qualified;
use crate::config::{Config, ConnConfig};
use crate::session::sample::{Side, TableRef};
use crate::session::EventKind;

pub const COUNT_APP_NAME: &str = "cutover-count";

/// Counts run with a long but finite timeout: a count that cannot finish is a failure to show.
pub const COUNT_STATEMENT_TIMEOUT_MS: u64 = 15 * 60 * 1000;

/// Counts every table on both sides; sends progress, then `CountFinished`.
pub async fn run(
    run: u64,
    tables: Vec<TableRef>,
    config: Arc<Config>,
    tx: Sender<EventKind>,
    cancel: watch::Receiver<bool>,
) {
    let src = count_side(
        run,
        Side::Source,
        &config.source,
        &config,
        &tables,
        &tx,
        cancel.clone(),
    );
    let tgt = count_side(
        run,
        Side::Target,
        &config.target,
        &config,
        &tables,
        &tx,
        cancel.clone(),
    );
    let (a, b) = tokio::join!(src, tgt);
    let cancelled = a || b || *cancel.borrow();
    let _ = tx.send(EventKind::CountFinished { run, cancelled }).await;
}

/// Returns whether it was cancelled.
async fn count_side(
    run: u64,
    side: Side,
    conn: &ConnConfig,
    config: &Config,
    tables: &[TableRef],
    tx: &Sender<EventKind>,
    mut cancel: watch::Receiver<bool>,
) -> bool {
    let connect_timeout = Duration::from_millis(config.monitor.connect_timeout_ms);
    let client = match connect(conn, COUNT_APP_NAME, connect_timeout).await {
        Ok(c) => c,
        Err(e) => {
            let _ = tx
                .send(EventKind::CountFailed {
                    run,
                    side,
                    table: None,
                    error: e.to_string(),
                })
                .await;
            return false;
        }
    };
    let pid = match prepare(&client, config.monitor.statement_timeout_ms).await {
        Ok(pid) => pid,
        Err(e) => {
            let _ = tx
                .send(EventKind::CountFailed {
                    run,
                    side,
                    table: None,
                    error: super::error_text(&e),
                })
                .await;
            return false;
        }
    };
    for table in tables {
        if *cancel.borrow() {
            return true;
        }
        let started = Instant::now();
        let sql = format!("SELECT count(*) FROM {}", qualified(table));
        let query = client.query_one(&sql, &[]);
        tokio::select! {
            res = query => {
                let event = match res {
                    Ok(row) => EventKind::CountProgress {
                        run,
                        side,
                        table: table.clone(),
                        rows: row.get(0),
                        elapsed_ms: started.elapsed().as_secs_f64() * 1000.0,
                    },
                    Err(e) => EventKind::CountFailed {
                        run,
                        side,
                        table: Some(table.clone()),
                        error: super::error_text(&e),
                    },
                };
                if tx.send(event).await.is_err() {
                    return true;
                }
            }
            _ = cancel.changed() => {
                cancel_on_server(conn, pid, connect_timeout).await;
                return true;
            }
        }
    }
    false
}

/// Bounds the session and learns its backend pid, which cancelling needs.
async fn prepare(
    client: &tokio_postgres::Client,
    lock_timeout_ms: u64,
) -> Result<i32, tokio_postgres::Error> {
    client
        .batch_execute(&format!(
            "SET statement_timeout = {COUNT_STATEMENT_TIMEOUT_MS}; SET lock_timeout = {lock_timeout_ms}; \
             SET default_transaction_read_only = on"
        ))
        .await?;
    Ok(client
        .query_one("SELECT pg_backend_pid()", &[])
        .await?
        .get(0))
}

/// Asks the server to stop the backend's running query. Through a fresh
/// connection with `pg_cancel_backend`, so it works over whatever TLS mode the
/// session used.
async fn cancel_on_server(conn: &ConnConfig, pid: i32, connect_timeout: Duration) {
    let Ok(client) = connect(conn, COUNT_APP_NAME, connect_timeout).await else {
        tracing::warn!(
            "could not connect to cancel a running count on {}",
            conn.describe()
        );
        return;
    };
    if let Err(e) = client
        .execute("SELECT pg_cancel_backend($1)", &[&pid])
        .await
    {
        tracing::warn!(
            "cancelling count on {}: {}",
            conn.describe(),
            super::error_text(&e)
        );
    }
}
