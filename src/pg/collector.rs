//! One collector task per side: connect, poll on the refresh interval, send a
//! sample or the failure as an event. A lost server turns into "stale since T"
//! on screen, and the collector reconnects with backoff until it comes back.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc::Sender;
use tokio::time::{sleep, Instant, MissedTickBehavior};
use tokio_postgres::{Client, SimpleQueryMessage, Statement};

use super::conn::{connect_reporting, Connected};
use super::monitor::{
    poll_source_with, poll_target_with, session_setup_sql, Queries, SOURCE_QUERIES, TARGET_QUERIES,
};
use super::{deadline_for, within, Backend, Ended};
use crate::config::{Config, ConnConfig};
use crate::session::sample::Side;
use crate::session::EventKind;

pub const MONITOR_APP_NAME: &str = "cutover-monitor";

/// Backoff after consecutive failures: 0.5 s doubling to 8 s. Shared by
/// every collector that reconnects (PostgreSQL and Kubernetes alike).
pub fn backoff(failures: u32) -> Duration {
    Duration::from_millis(500u64.saturating_mul(1 << failures.min(4)))
}

/// A monitoring connection with its session settings; every round trip of
/// the set-up is bounded (named by the connection's label in a timeout).
pub async fn open_monitor_connection(
    conn: &ConnConfig,
    connect_timeout: Duration,
    statement_timeout_ms: u64,
) -> anyhow::Result<Client> {
    Ok(
        open_session(&conn.label, conn, connect_timeout, statement_timeout_ms)
            .await?
            .0,
    )
}

/// What the model is told about a connection: which of the DSN's hosts it is.
fn connected_event(side: Side, c: Connected) -> EventKind {
    EventKind::CollectorConnected {
        side,
        endpoint: c.endpoint,
        host_index: c.index,
        hosts: c.of,
    }
}

/// Connects, applies the monitoring session settings and reads the backend
/// pid, in one bounded round trip after connecting.
async fn open_session(
    who: &str,
    conn: &ConnConfig,
    connect_timeout: Duration,
    statement_timeout_ms: u64,
) -> anyhow::Result<(Client, i32, Connected)> {
    let (client, connected) = connect_reporting(conn, MONITOR_APP_NAME, connect_timeout).await?;
    let setup = format!(
        "{}; SELECT pg_catalog.pg_backend_pid()",
        session_setup_sql(statement_timeout_ms)
    );
    let bound = deadline_for(connect_timeout);
    let what = "setting up the monitoring session";
    let messages = within(who, conn, bound, what, client.simple_query(&setup))
        .await?
        .map_err(|e| anyhow::anyhow!("{}: {}", conn.describe(), super::error_text(&e)))?;
    let pid = messages.iter().find_map(|m| match m {
        SimpleQueryMessage::Row(r) => r.get(0).and_then(|p| p.parse::<i32>().ok()),
        _ => None,
    });
    match pid {
        Some(pid) => Ok((client, pid, connected)),
        None => anyhow::bail!("{}: {what}: no backend pid", conn.describe()),
    }
}

/// The side's monitoring queries prepared on its new connection, once:
/// a poll then parses nothing, here or on the server.
async fn prepare(
    who: &str,
    conn: &ConnConfig,
    client: &Client,
    queries: &Queries<&'static str>,
    bound: Duration,
) -> anyhow::Result<Queries<Statement>> {
    let what = "preparing the monitoring queries";
    within(who, conn, bound, what, queries.prepare(client))
        .await?
        .map_err(|e| anyhow::anyhow!("{}: {what}: {}", conn.describe(), super::error_text(&e)))
}

/// A poll's result, or the failure to show ("stale since T" on screen).
fn failure<T>(
    conn: &ConnConfig,
    ended: Ended<Result<T, tokio_postgres::Error>, Infallible>,
) -> Result<T, String> {
    match ended {
        Ended::Done(Ok(sample)) => Ok(sample),
        Ended::Done(Err(e)) => Err(format!("{}: {}", conn.describe(), super::error_text(&e))),
        Ended::TimedOut(timeout) => Err(timeout.to_string()),
        Ended::Stopped(never) => match never {},
    }
}

/// Runs until the receiver is gone.
pub async fn run(side: Side, config: Arc<Config>, tx: Sender<EventKind>) {
    let conn = match side {
        Side::Source => config.source.clone(),
        Side::Target => config.target.clone(),
    };
    let refresh = Duration::from_millis(config.monitor.refresh_ms);
    let connect_timeout = Duration::from_millis(config.monitor.connect_timeout_ms);
    let stmt_ms = config.monitor.statement_timeout_ms;
    // A hung server must not freeze the pane on an old sample.
    let poll_deadline = deadline_for(Duration::from_millis(stmt_ms));
    let tables = config.tables.clone();
    let filter = move |s: &str, t: &str| tables.matches(s, t);

    let mut session: Option<(Client, Backend, Queries<Statement>)> = None;
    let mut failures: u32 = 0;
    let mut ticker = tokio::time::interval(refresh);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        if session.as_ref().is_some_and(|(c, ..)| c.is_closed()) {
            session = None;
        }
        if session.is_none() {
            let queries = match side {
                Side::Source => SOURCE_QUERIES,
                Side::Target => TARGET_QUERIES,
            };
            let who = side.as_str();
            let opened = match open_session(who, &conn, connect_timeout, stmt_ms).await {
                Ok((client, pid, connected)) => {
                    let prepared = prepare(who, &conn, &client, &queries, poll_deadline).await;
                    prepared.map(|q| (client, pid, connected, q))
                }
                Err(e) => Err(e),
            };
            match opened {
                Ok((client, pid, connected, prepared)) => {
                    // Which host answered: with several (an HA pair), the
                    // header says which one is being watched.
                    if tx.send(connected_event(side, connected)).await.is_err() {
                        return;
                    }
                    let backend = Backend {
                        side,
                        conn: conn.clone(),
                        app: MONITOR_APP_NAME,
                        pid,
                        connect_timeout,
                    };
                    session = Some((client, backend, prepared));
                }
                Err(e) => {
                    failures += 1;
                    if tx
                        .send(EventKind::CollectorFailed {
                            side,
                            error: format!("{e:#}"),
                        })
                        .await
                        .is_err()
                    {
                        return;
                    }
                    let until = Instant::now() + backoff(failures);
                    sleep(until.saturating_duration_since(Instant::now())).await;
                    ticker.reset();
                    continue;
                }
            }
        }
        let Some((c, backend, q)) = session.as_ref() else {
            continue;
        };
        let what = "polling the monitoring views";
        let never = std::future::pending::<Infallible>();
        let result = match side {
            Side::Source => {
                let poll = backend.run(
                    poll_deadline,
                    what,
                    poll_source_with(c, q, &filter),
                    never,
                    |_| false,
                );
                failure(&conn, poll.await).map(EventKind::SourceSampled)
            }
            Side::Target => {
                let poll = backend.run(
                    poll_deadline,
                    what,
                    poll_target_with(c, q, &filter),
                    never,
                    |_| false,
                );
                failure(&conn, poll.await).map(EventKind::TargetSampled)
            }
        };
        let event = match result {
            Ok(ev) => {
                failures = 0;
                ev
            }
            Err(error) => {
                // Never used again: the next tick reconnects.
                failures += 1;
                session = None;
                EventKind::CollectorFailed { side, error }
            }
        };
        if tx.send(event).await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_caps() {
        assert_eq!(backoff(0), Duration::from_millis(500));
        assert_eq!(backoff(1), Duration::from_millis(1000));
        assert_eq!(backoff(4), Duration::from_millis(8000));
        assert_eq!(backoff(40), Duration::from_millis(8000));
    }
}
