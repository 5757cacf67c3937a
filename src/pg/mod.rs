//! PostgreSQL: connections, monitoring queries, the collectors, exact counts.
//!
//! Every query has a client-side deadline ([`within`]): a server that stops
//! answering (a stopped process still has its TCP connections ACKed by the
//! kernel, so keepalives do not notice and its own `statement_timeout` never
//! fires) must not hang the caller. The deadline is the connection's
//! `statement_timeout` plus [`DEADLINE_MARGIN`] ([`deadline_for`]), so a
//! legitimately long query is ended by the server first, with its own error.
//! A query that misses it is cancelled on the server in the background
//! ([`Backend::cancel_in_background`]) and its connection is never used again.

/// Rows inserted, updated and deleted in user tables since the statistics
/// were reset, as a scalar subquery for `concat!`: writes per second are
/// its rate, on either side.
macro_rules! rows_written_sql {
    () => {
        "(SELECT coalesce(sum(n_tup_ins + n_tup_upd + n_tup_del), 0)::int8 FROM pg_stat_user_tables)"
    };
}
pub(crate) use rows_written_sql;

/// `pg_stat_activity` rows of the application's client sessions in this
/// database: cutover's own and the asking backend left out.
macro_rules! client_sessions_where {
    () => {
        "datname = current_database() AND backend_type = 'client backend' \
         AND pid <> pg_backend_pid() AND application_name NOT LIKE 'cutover%'"
    };
}
pub(crate) use client_sessions_where;

pub mod collector;
pub mod conn;
pub mod count;
pub mod monitor;
pub mod preflight;

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::time::Instant;

use crate::config::ConnConfig;
use crate::session::sample::Side;

/// The server's message (with its SQLSTATE) rather than tokio-postgres's generic
/// "db error", so the screen says what actually failed.
pub fn error_text(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        return format!("{} ({})", db.message(), db.code().code());
    }
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// How much longer than its `statement_timeout` a query may go unanswered:
/// room for the server's own timeout error to arrive first.
pub const DEADLINE_MARGIN: Duration = Duration::from_secs(2);

/// The client-side deadline of a query on a connection whose
/// `statement_timeout` is `statement_timeout`.
pub fn deadline_for(statement_timeout: Duration) -> Duration {
    statement_timeout.saturating_add(DEADLINE_MARGIN)
}

/// A query (or session set-up) that got no answer within its deadline.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{who} ({endpoint}): no answer within {} while {what}; the server may be stopped or overloaded",
    seconds(*waited)
)]
pub struct PgTimeout {
    /// Which server: `source`/`target`, or the connection's label.
    pub who: String,
    /// `host:port` (or the socket path).
    pub endpoint: String,
    pub waited: Duration,
    /// What was running, e.g. `checksumming public.orders`.
    pub what: String,
}

/// `12 s`, `2.5 s`, `0.3 s`.
fn seconds(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{} s", d.as_secs())
    } else {
        let text = format!("{:.1}", d.as_secs_f64());
        format!("{} s", text.trim_end_matches(".0"))
    }
}

/// Runs `fut` (a query, or a round trip of session set-up) with a
/// client-side deadline. On expiry `fut` is dropped; the caller must not use
/// that connection again, and should cancel the query on the server
/// ([`Backend::cancel_in_background`]) when it knows the backend.
pub async fn within<F: Future>(
    who: &str,
    conn: &ConnConfig,
    deadline: Duration,
    what: &str,
    fut: F,
) -> Result<F::Output, PgTimeout> {
    tokio::time::timeout(deadline, fut)
        .await
        .map_err(|_| PgTimeout {
            who: who.to_string(),
            endpoint: conn.params.endpoint(),
            waited: deadline,
            what: what.to_string(),
        })
}

/// How [`Backend::run`] ended.
#[derive(Debug)]
pub enum Ended<T, S> {
    /// The query's own result.
    Done(T),
    TimedOut(PgTimeout),
    /// Stopped from outside, with the reason `stop` gave.
    Stopped(S),
}

/// Cancels are re-sent this often while the query has not ended: one that
/// reaches the backend before the query does is ignored by the server.
const CANCEL_RETRY: Duration = Duration::from_millis(200);

const CANCEL_SQL: &str = "SELECT pg_catalog.pg_cancel_backend($1)";

/// A server process running our queries, which can be told to stop them.
///
/// Cancelling goes through a fresh connection with `pg_cancel_backend`, so it
/// works whatever TLS mode the session used. No `Debug`: it holds the
/// connection settings, password included.
#[derive(Clone)]
pub struct Backend {
    pub side: Side,
    pub conn: ConnConfig,
    /// `application_name` of the cancelling connection.
    pub app: &'static str,
    pub pid: i32,
    pub connect_timeout: Duration,
}

impl Backend {
    /// How long a cancel may take before the caller gives up on it: one
    /// connection attempt, plus the margin.
    pub fn cancel_grace(&self) -> Duration {
        deadline_for(self.connect_timeout)
    }

    /// A round trip of cancelling, bounded by the cancel grace.
    async fn bounded<F: Future>(&self, what: &str, fut: F) -> Result<F::Output, PgTimeout> {
        within(
            self.side.as_str(),
            &self.conn,
            self.cancel_grace(),
            what,
            fut,
        )
        .await
    }

    /// Connects for cancelling; bounded by the connect timeout (and the
    /// grace, for the authentication round trips).
    async fn cancel_connection(&self) -> Option<tokio_postgres::Client> {
        let what = "connecting to cancel a query";
        let attempt = conn::connect(&self.conn, self.app, self.connect_timeout);
        match self.bounded(what, attempt).await {
            Ok(Ok(c)) => Some(c),
            Ok(Err(e)) => {
                tracing::warn!(
                    "{}: cannot cancel backend {}: {e}",
                    self.side.as_str(),
                    self.pid
                );
                None
            }
            Err(e) => {
                tracing::warn!("{e}");
                None
            }
        }
    }

    /// Sends one cancel on `client`; false when it could not be sent.
    async fn send_cancel(&self, client: &tokio_postgres::Client) -> bool {
        let what = "cancelling a query";
        let pid: &(dyn tokio_postgres::types::ToSql + Sync) = &self.pid;
        let params = [pid];
        let sent = client.execute(CANCEL_SQL, &params);
        match self.bounded(what, sent).await {
            Ok(Ok(_)) => true,
            Ok(Err(e)) => {
                tracing::warn!(
                    "{} ({}): cancelling backend {}: {}",
                    self.side.as_str(),
                    self.conn.params.endpoint(),
                    self.pid,
                    error_text(&e)
                );
                false
            }
            Err(e) => {
                tracing::warn!("{e}");
                false
            }
        }
    }

    /// One best-effort cancel, bounded; true when the server got it.
    pub async fn cancel(&self) -> bool {
        match self.cancel_connection().await {
            Some(c) => self.send_cancel(&c).await,
            None => false,
        }
    }

    /// [`Backend::cancel`] on a spawned task, so it never delays the caller
    /// (after a missed deadline the error is reported at once).
    pub fn cancel_in_background(&self) {
        let me = self.clone();
        tokio::spawn(async move {
            me.cancel().await;
        });
    }

    /// Runs `query` (an unpolled query future on this backend's connection)
    /// under `deadline`, unless `stop` resolves first.
    /// - Missed deadline: [`Ended::TimedOut`]; the query is cancelled on the
    ///   server in the background and the connection must not be used again.
    /// - Stopped: a query already sent is cancelled on the server; when
    ///   `wait(&why)` says so, that is awaited until the query has ended
    ///   ([`Backend::cancel_until_done`], up to the cancel grace), else it is
    ///   left to the background (for a server known not to answer).
    pub async fn run<Q: Future, S: Future>(
        &self,
        deadline: Duration,
        what: &str,
        query: Q,
        stop: S,
        wait: impl FnOnce(&S::Output) -> bool,
    ) -> Ended<Q::Output, S::Output> {
        // Whether the query was handed to the connection (its future polled).
        let sent = AtomicBool::new(false);
        let run = async {
            sent.store(true, Ordering::Relaxed);
            within(self.side.as_str(), &self.conn, deadline, what, query).await
        };
        tokio::pin!(run);
        // Biased: a stop signalled before the first poll wins, and then the
        // query is never sent.
        let why = tokio::select! {
            biased;
            why = stop => why,
            r = &mut run => return match r {
                Ok(out) => Ended::Done(out),
                Err(timeout) => {
                    self.cancel_in_background();
                    Ended::TimedOut(timeout)
                }
            },
        };
        if sent.load(Ordering::Relaxed) {
            if wait(&why) {
                let grace = self.cancel_grace().min(deadline);
                self.cancel_until_done(run, grace).await;
            } else {
                self.cancel_in_background();
            }
        }
        Ended::Stopped(why)
    }

    /// Drives `query` (already sent: polled at least once) to its end while
    /// cancelling it on the server, again every [`CANCEL_RETRY`] until it
    /// ends: a cancel that reaches the backend before the query does is
    /// ignored there, the next one stops it. `None` when it has not ended
    /// within `grace` (the server does not answer); the caller then drops
    /// the connection.
    pub async fn cancel_until_done<F: Future>(
        &self,
        mut query: Pin<&mut F>,
        grace: Duration,
    ) -> Option<F::Output> {
        let give_up = Instant::now() + grace;
        let cancelling = async {
            if let Some(client) = self.cancel_connection().await {
                while self.send_cancel(&client).await {
                    tokio::time::sleep(CANCEL_RETRY).await;
                }
            }
            std::future::pending::<()>().await;
        };
        tokio::select! {
            biased;
            out = &mut query => Some(out),
            _ = cancelling => None,
            _ = tokio::time::sleep_until(give_up) => {
                tracing::warn!(
                    "{} ({}): a cancelled query of backend {} did not end within {}",
                    self.side.as_str(),
                    self.conn.params.endpoint(),
                    self.pid,
                    seconds(grace)
                );
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn() -> ConnConfig {
        struct NoEnv;
        impl crate::config::Env for NoEnv {
            fn var(&self, _: &str) -> Option<String> {
                None
            }
        }
        ConnConfig::from_dsn(
            "new",
            "host=127.0.0.1 port=5433 dbname=app user=u password=hunter2",
            None,
            &NoEnv,
        )
        .unwrap()
    }

    #[test]
    fn deadline_is_the_statement_timeout_plus_the_margin() {
        assert_eq!(
            deadline_for(Duration::from_secs(10)),
            Duration::from_secs(12)
        );
        assert_eq!(deadline_for(Duration::MAX), Duration::MAX);
    }

    #[test]
    fn a_timeout_names_side_host_and_what() {
        let e = PgTimeout {
            who: "target".into(),
            endpoint: conn().params.endpoint(),
            waited: Duration::from_secs(12),
            what: "checksumming public.orders".into(),
        };
        assert_eq!(
            e.to_string(),
            "target (127.0.0.1:5433): no answer within 12 s while checksumming public.orders; \
             the server may be stopped or overloaded"
        );
    }

    #[tokio::test]
    async fn a_query_without_an_answer_ends_at_its_deadline() {
        let hung = std::future::pending::<()>();
        let what = "counting rows of public.t";
        let e = within("source", &conn(), Duration::from_millis(100), what, hung)
            .await
            .unwrap_err();
        assert_eq!(
            e,
            PgTimeout {
                who: "source".into(),
                endpoint: "127.0.0.1:5433".into(),
                waited: Duration::from_millis(100),
                what: what.into(),
            }
        );
        assert!(!format!("{e:?} {e}").contains("hunter2"));
    }

    #[tokio::test]
    async fn an_answer_in_time_passes_through() {
        let r = within("source", &conn(), Duration::from_secs(60), "x", async { 7 }).await;
        assert_eq!(r, Ok(7));
    }

    #[test]
    fn seconds_are_short() {
        assert_eq!(seconds(Duration::from_secs(12)), "12 s");
        assert_eq!(seconds(Duration::from_millis(2500)), "2.5 s");
        assert_eq!(seconds(Duration::from_millis(3000)), "3 s");
        assert_eq!(seconds(Duration::from_millis(300)), "0.3 s");
    }
}
