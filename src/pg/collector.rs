//! One collector task per side: connect, poll on the refresh interval, send a
//! sample or the failure as an event. A lost server turns into "stale since T"
//! on screen, and the collector reconnects with backoff until it comes back.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc::Sender;
use tokio::time::{sleep, timeout, Instant, MissedTickBehavior};
use tokio_postgres::Client;

use super::conn::connect;
use super::monitor::{poll_source, poll_target, session_setup_sql};
use crate::config::{Config, ConnConfig};
use crate::session::sample::Side;
use crate::session::EventKind;

pub const MONITOR_APP_NAME: &str = "cutover-monitor";

/// Backoff after consecutive failures: 0.5 s doubling to 8 s. Shared by
/// every collector that reconnects (PostgreSQL and Kubernetes alike).
pub fn backoff(failures: u32) -> Duration {
    Duration::from_millis(500u64.saturating_mul(1 << failures.min(4)))
}

pub async fn open_monitor_connection(
    conn: &ConnConfig,
    connect_timeout: Duration,
    statement_timeout_ms: u64,
) -> anyhow::Result<Client> {
    let client = connect(conn, MONITOR_APP_NAME, connect_timeout).await?;
    client
        .batch_execute(&session_setup_sql(statement_timeout_ms))
        .await
        .map_err(|e| anyhow::anyhow!("{}: {}", conn.describe(), super::error_text(&e)))?;
    Ok(client)
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
    // The whole poll may not outlive its statements by much: a hung socket must
    // not freeze the pane on an old sample.
    let poll_deadline = Duration::from_millis(stmt_ms + 1000);
    let tables = config.tables.clone();
    let filter = move |s: &str, t: &str| tables.matches(s, t);

    let mut client: Option<Client> = None;
    let mut failures: u32 = 0;
    let mut ticker = tokio::time::interval(refresh);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        if client.as_ref().is_some_and(Client::is_closed) {
            client = None;
        }
        if client.is_none() {
            match open_monitor_connection(&conn, connect_timeout, stmt_ms).await {
                Ok(c) => client = Some(c),
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
        let c = client.as_ref().expect("connected above");
        let result = match side {
            Side::Source => timeout(poll_deadline, poll_source(c, &filter))
                .await
                .map(|r| r.map(EventKind::SourceSampled)),
            Side::Target => timeout(poll_deadline, poll_target(c, &filter))
                .await
                .map(|r| r.map(EventKind::TargetSampled)),
        };
        let event = match result {
            Ok(Ok(ev)) => {
                failures = 0;
                ev
            }
            Ok(Err(e)) => {
                failures += 1;
                client = None;
                EventKind::CollectorFailed {
                    side,
                    error: format!("{}: {}", conn.describe(), super::error_text(&e)),
                }
            }
            Err(_) => {
                failures += 1;
                client = None;
                EventKind::CollectorFailed {
                    side,
                    error: format!(
                        "{}: no answer within {} ms",
                        conn.describe(),
                        poll_deadline.as_millis()
                    ),
                }
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
