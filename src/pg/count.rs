//! Exact row counts, off the UI's path: one connection per side, tables one
//! after another, both sides at once. Each finished table is an event, so the
//! pane fills in as it goes. Cancelling cancels the query on the server too
//! (dropping a connection leaves a running `count(*)` scanning until it next
//! writes), and waits until it has stopped. Every count has a client-side
//! deadline (see [`super::within`]).

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc::Sender, watch};
use tokio_postgres::{Client, SimpleQueryMessage};

use super::conn::connect;
use super::monitor::qualified;
use super::{deadline_for, within, Backend, Ended};
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
    let timeout = Duration::from_millis(COUNT_STATEMENT_TIMEOUT_MS);
    run_with_timeout(run, tables, config, tx, cancel, timeout).await
}

/// [`run`] with another `statement_timeout` per count; each count's
/// client-side deadline is [`deadline_for`] it. A count that misses it fails
/// that table with `source (host:port): no answer within …`, is cancelled on
/// the server in the background, and the side goes on with a new connection
/// (or fails as a whole when it cannot get one).
pub async fn run_with_timeout(
    run: u64,
    tables: Vec<TableRef>,
    config: Arc<Config>,
    tx: Sender<EventKind>,
    cancel: watch::Receiver<bool>,
    statement_timeout: Duration,
) {
    let side = |side| Counter {
        run,
        side,
        conn: match side {
            Side::Source => &config.source,
            Side::Target => &config.target,
        },
        connect_timeout: config.monitor.connect_timeout(),
        lock_timeout_ms: config.monitor.statement_timeout_ms,
        statement_timeout,
        tx: &tx,
    };
    let (src, tgt) = (side(Side::Source), side(Side::Target));
    let (a, b) = tokio::join!(
        src.count(&tables, cancel.clone()),
        tgt.count(&tables, cancel.clone())
    );
    let cancelled = a || b || *cancel.borrow();
    let _ = tx.send(EventKind::CountFinished { run, cancelled }).await;
}

/// One side's counting.
struct Counter<'a> {
    run: u64,
    side: Side,
    conn: &'a ConnConfig,
    connect_timeout: Duration,
    lock_timeout_ms: u64,
    statement_timeout: Duration,
    tx: &'a Sender<EventKind>,
}

/// Resolves once `cancel` is set (never, when nobody can set it any more).
async fn cancelled(mut cancel: watch::Receiver<bool>) {
    if cancel.wait_for(|c| *c).await.map(|_| ()).is_err() {
        std::future::pending::<()>().await;
    }
}

impl Counter<'_> {
    async fn fail(&self, table: Option<&TableRef>, error: String) -> bool {
        let event = EventKind::CountFailed {
            run: self.run,
            side: self.side,
            table: table.cloned(),
            error,
        };
        self.tx.send(event).await.is_ok()
    }

    /// Counts the tables one after another; returns whether it was cancelled.
    async fn count(&self, tables: &[TableRef], cancel: watch::Receiver<bool>) -> bool {
        let mut session: Option<(Client, Backend)> = None;
        let mut failures = 0;
        for table in tables {
            if *cancel.borrow() {
                return true;
            }
            if session.is_none() {
                if failures > 0 {
                    // After a missed deadline: reconnect, with backoff.
                    tokio::select! {
                        _ = tokio::time::sleep(super::collector::backoff(failures - 1)) => {}
                        _ = cancelled(cancel.clone()) => return true,
                    }
                }
                match self.open().await {
                    Ok(s) => session = Some(s),
                    Err(e) => {
                        self.fail(None, e).await;
                        return false;
                    }
                }
            }
            let Some((client, backend)) = session.as_ref() else {
                continue;
            };
            let started = Instant::now();
            let sql = format!("SELECT count(*) FROM {}", qualified(table));
            let what = format!("counting the rows of {table}");
            let deadline = deadline_for(self.statement_timeout);
            let query = client.query_one(&sql, &[]);
            let stop = cancelled(cancel.clone());
            let ended = backend.run(deadline, &what, query, stop, |_| true).await;
            let timed_out = matches!(ended, Ended::TimedOut(_));
            let error = match ended {
                Ended::Done(Ok(row)) => {
                    let event = EventKind::CountProgress {
                        run: self.run,
                        side: self.side,
                        table: table.clone(),
                        rows: row.get(0),
                        elapsed_ms: started.elapsed().as_secs_f64() * 1000.0,
                    };
                    if self.tx.send(event).await.is_err() {
                        return true;
                    }
                    continue;
                }
                Ended::Done(Err(e)) => super::error_text(&e),
                Ended::TimedOut(timeout) => timeout.to_string(),
                Ended::Stopped(()) => return true,
            };
            if timed_out {
                // Never reused: a new connection counts the next table.
                session = None;
                failures += 1;
            }
            if !self.fail(Some(table), error).await {
                return true;
            }
        }
        false
    }

    /// Connects, bounds the session and learns its backend pid (which
    /// cancelling needs), the set-up bounded like connecting.
    async fn open(&self) -> Result<(Client, Backend), String> {
        let client = connect(self.conn, COUNT_APP_NAME, self.connect_timeout)
            .await
            .map_err(|e| e.to_string())?;
        let setup = format!(
            "SET statement_timeout = {}; SET lock_timeout = {}; \
             SET default_transaction_read_only = on; SELECT pg_catalog.pg_backend_pid()",
            self.statement_timeout.as_millis().max(1),
            self.lock_timeout_ms
        );
        let bound = deadline_for(self.connect_timeout);
        let what = "setting up the counting session";
        let messages = within(
            self.side.as_str(),
            self.conn,
            bound,
            what,
            client.simple_query(&setup),
        )
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("{}: {}", self.conn.describe(), super::error_text(&e)))?;
        let pid = messages.iter().find_map(|m| match m {
            SimpleQueryMessage::Row(r) => r.get(0).and_then(|p| p.parse::<i32>().ok()),
            _ => None,
        });
        let Some(pid) = pid else {
            return Err(format!("{}: {what}: no backend pid", self.conn.describe()));
        };
        let backend = Backend {
            side: self.side,
            conn: self.conn.clone(),
            app: COUNT_APP_NAME,
            pid,
            connect_timeout: self.connect_timeout,
        };
        Ok((client, backend))
    }
}
