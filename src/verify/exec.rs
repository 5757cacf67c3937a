//! A verification run's connections and how each query runs on them.
//!
//! Every query goes through [`query`], which
//! - holds back while paused and starts nothing once the run is stopped;
//! - has a client-side deadline (`statement_timeout` plus a margin): a
//!   query that misses it fails the run with a message naming the side, the
//!   host and what was running, is cancelled on the server in the
//!   background, and its connection is never used again;
//! - on cancel (or when another query of the run missed its deadline) stops
//!   the query on the server and waits until it has ended, re-sending the
//!   cancel until then, so when the run returns none of its queries is still
//!   running (on a server that answers).

use std::time::{Duration, Instant};

use anyhow::Result;
use tokio::sync::watch;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Row};

use super::{sql, VerifyOptions, VERIFY_APP_NAME};
use crate::config::{Config, ConnConfig};
use crate::pg::conn::connect;
use crate::pg::{deadline_for, error_text, within, Backend, Ended};
use crate::session::sample::Side;

pub(super) enum Fail {
    Cancelled,
    /// This table could not be compared (SQL error, unexpected answer).
    Sql(String),
    /// A server stopped answering: the whole run ends with this message.
    Lost(String),
}

/// Why the run stops.
#[derive(Debug, Clone)]
enum Stop {
    Cancelled,
    /// A query on `side` missed its deadline.
    Lost {
        side: Side,
        message: String,
    },
}

pub(super) struct Ctx<'a> {
    pub source: &'a ConnConfig,
    pub target: &'a ConnConfig,
    pub connect_timeout: Duration,
    /// Client-side deadline of every query.
    pub deadline: Duration,
    cancel: Option<watch::Receiver<bool>>,
    pause: Option<watch::Receiver<bool>>,
    /// Set by the first query that misses its deadline.
    lost: watch::Sender<Option<(Side, String)>>,
}

impl<'a> Ctx<'a> {
    pub fn new(config: &'a Config, opts: &VerifyOptions) -> Self {
        Ctx {
            source: &config.source,
            target: &config.target,
            connect_timeout: Duration::from_millis(config.monitor.connect_timeout_ms),
            deadline: deadline_for(opts.statement_timeout),
            cancel: opts.cancel.clone(),
            pause: opts.pause.clone(),
            lost: watch::Sender::new(None),
        }
    }

    pub fn conn_config(&self, side: Side) -> &'a ConnConfig {
        match side {
            Side::Source => self.source,
            Side::Target => self.target,
        }
    }

    pub fn is_cancelled(&self) -> bool {
        self.cancel.as_ref().is_some_and(|c| *c.borrow())
    }

    /// The message of the deadline that ended the run, if one did.
    pub fn lost(&self) -> Option<String> {
        self.lost.borrow().as_ref().map(|(_, m)| m.clone())
    }

    /// Whether a new query may start.
    pub fn check(&self) -> Result<(), Fail> {
        if self.is_cancelled() {
            return Err(Fail::Cancelled);
        }
        match self.lost() {
            Some(m) => Err(Fail::Lost(m)),
            None => Ok(()),
        }
    }

    /// Records the first missed deadline; every other query of the run stops.
    fn lose(&self, side: Side, message: &str) {
        self.lost.send_if_modified(|l| {
            if l.is_some() {
                return false;
            }
            *l = Some((side, message.to_string()));
            true
        });
    }

    /// Resolves when the run is cancelled or lost.
    async fn stopped(&self) -> Stop {
        let mut lost = self.lost.subscribe();
        let cancel = self.cancel.clone();
        let cancelled = async move {
            let Some(mut cancel) = cancel else {
                return std::future::pending().await;
            };
            // The guard `wait_for` returns must not live across an await
            // (it is not Send, and the console runs this on a spawned task).
            if cancel.wait_for(|c| *c).await.map(|_| ()).is_err() {
                // Nobody can cancel any more.
                std::future::pending::<()>().await;
            }
        };
        let lost = async move {
            let l = lost.wait_for(Option::is_some).await.map(|l| l.clone());
            match l {
                Ok(Some(l)) => l,
                _ => std::future::pending().await,
            }
        };
        tokio::select! {
            biased;
            _ = cancelled => Stop::Cancelled,
            (side, message) = lost => Stop::Lost { side, message },
        }
    }

    /// Sleeps until `until`; a stop ends the sleep early.
    pub async fn sleep_until(&self, until: Instant) -> Result<(), Fail> {
        tokio::select! {
            _ = tokio::time::sleep_until(until.into()) => Ok(()),
            stop = self.stopped() => Err(stop.into()),
        }
    }

    /// Waits while the caller holds verification back; a stop ends the wait.
    async fn throttle(&self) -> Result<(), Fail> {
        let Some(mut pause) = self.pause.clone() else {
            return Ok(());
        };
        loop {
            self.check()?;
            if !*pause.borrow_and_update() {
                return Ok(());
            }
            tokio::select! {
                changed = pause.changed() => {
                    if changed.is_err() {
                        // Nobody can hold us back any more.
                        return Ok(());
                    }
                }
                stop = self.stopped() => return Err(stop.into()),
            }
        }
    }
}

impl From<Stop> for Fail {
    fn from(s: Stop) -> Fail {
        match s {
            Stop::Cancelled => Fail::Cancelled,
            Stop::Lost { message, .. } => Fail::Lost(message),
        }
    }
}

pub(super) struct Conn {
    pub client: Client,
    pub side: Side,
    backend: Backend,
}

/// Runs one query under the run's deadline, pause and cancel (see the module doc).
pub(super) async fn query(
    ctx: &Ctx<'_>,
    conn: &Conn,
    what: &str,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<Vec<Row>, Fail> {
    ctx.throttle().await?;
    ctx.check()?;
    let run = conn.client.query(sql, params);
    // A server known not to answer is not waited for.
    let wait = |stop: &Stop| !matches!(stop, Stop::Lost { side, .. } if *side == conn.side);
    match conn
        .backend
        .run(ctx.deadline, what, run, ctx.stopped(), wait)
        .await
    {
        Ended::Done(Ok(rows)) => Ok(rows),
        Ended::Done(Err(e)) => Err(Fail::Sql(error_text(&e))),
        Ended::TimedOut(timeout) => {
            let message = timeout.to_string();
            ctx.lose(conn.side, &message);
            Err(Fail::Lost(message))
        }
        Ended::Stopped(stop) => Err(stop.into()),
    }
}

impl Fail {
    /// Which of two failures a combined result reports: a cancel, else a
    /// lost server, else the table's own error.
    fn rank(&self) -> u8 {
        match self {
            Fail::Cancelled => 2,
            Fail::Lost(_) => 1,
            Fail::Sql(_) => 0,
        }
    }
}

/// Parallel workers' results as one: Ok when all are, else the failure of
/// the highest rank (the last of equals).
pub(super) fn workers_outcome(results: Vec<Result<(), Fail>>) -> Result<(), Fail> {
    let mut failure: Option<Fail> = None;
    for e in results.into_iter().filter_map(Result::err) {
        if failure.as_ref().is_none_or(|f| e.rank() >= f.rank()) {
            failure = Some(e);
        }
    }
    failure.map_or(Ok(()), Err)
}

/// Both sides' results of one step as one (see [`workers_outcome`]).
pub(super) fn both<A, B>(a: Result<A, Fail>, b: Result<B, Fail>) -> Result<(A, B), Fail> {
    match (a, b) {
        (Ok(a), Ok(b)) => Ok((a, b)),
        (Err(e), Ok(_)) | (Ok(_), Err(e)) => Err(e),
        (Err(x), Err(y)) => Err(if y.rank() >= x.rank() { y } else { x }),
    }
}

/// One connection with the pinned session settings; its set-up round trips
/// are bounded like connecting is.
async fn open_conn(ctx: &Ctx<'_>, side: Side, opts: &VerifyOptions) -> Result<Conn> {
    let cfg = ctx.conn_config(side);
    let setup = format!(
        // Reads only wait for locks behind DDL; better to fail than queue behind it.
        "{}; SET statement_timeout = {}; SET lock_timeout = 10000",
        sql::SESSION_SETTINGS,
        opts.statement_timeout.as_millis().max(1)
    );
    let client = connect(cfg, VERIFY_APP_NAME, ctx.connect_timeout).await?;
    let bound = deadline_for(ctx.connect_timeout);
    let who = side.as_str();
    within(
        who,
        cfg,
        bound,
        "setting up the session",
        client.batch_execute(&setup),
    )
    .await?
    .map_err(|e| anyhow::anyhow!(error_text(&e)))?;
    let pid = client.query_one("SELECT pg_catalog.pg_backend_pid()", &[]);
    let pid: i32 = within(who, cfg, bound, "setting up the session", pid)
        .await?
        .map_err(|e| anyhow::anyhow!(error_text(&e)))?
        .get(0);
    let backend = Backend {
        side,
        conn: cfg.clone(),
        app: VERIFY_APP_NAME,
        pid,
        connect_timeout: ctx.connect_timeout,
    };
    Ok(Conn {
        client,
        side,
        backend,
    })
}

/// Fails, before they are opened, when `wanted` connections do not fit in
/// what the server has free: `max_connections` minus the reserved slots
/// minus the client connections in use, of which `probe` is ours.
async fn check_headroom(ctx: &Ctx<'_>, probe: &Conn, wanted: usize) -> Result<()> {
    let cfg = ctx.conn_config(probe.side);
    let bound = deadline_for(ctx.connect_timeout);
    let what = "reading max_connections";
    let row = within(
        probe.side.as_str(),
        cfg,
        bound,
        what,
        probe.client.query_one(sql::HEADROOM_SQL, &[]),
    )
    .await?
    .map_err(|e| anyhow::anyhow!("{what}: {}", error_text(&e)))?;
    headroom(
        probe.side,
        wanted,
        row.get::<_, i64>(0),
        row.get::<_, i64>(1),
        row.get::<_, i64>(2),
    )
}

fn headroom(side: Side, wanted: usize, max: i64, reserved: i64, in_use: i64) -> Result<()> {
    // `in_use` counts the probe, which is one of the `wanted`.
    let free = (max - reserved - in_use + 1).max(0);
    if wanted as i64 > free {
        anyhow::bail!(
            "parallelism {wanted} needs {wanted} connections on the {}, which has {free} free \
             of max_connections {max}",
            side.as_str()
        );
    }
    Ok(())
}

async fn open_side(ctx: &Ctx<'_>, side: Side, n: usize, opts: &VerifyOptions) -> Result<Vec<Conn>> {
    let first = open_conn(ctx, side, opts).await?;
    if n > 1 {
        check_headroom(ctx, &first, n).await?;
    }
    let mut conns = vec![first];
    conns.extend(futures::future::try_join_all((1..n).map(|_| open_conn(ctx, side, opts))).await?);
    Ok(conns)
}

/// `parallelism` connections to each side, both sides at once, after
/// checking each server has room for them.
pub(super) async fn open_both(
    ctx: &Ctx<'_>,
    opts: &VerifyOptions,
) -> Result<(Vec<Conn>, Vec<Conn>)> {
    let w = opts.parallelism.max(1);
    let (src, tgt) = tokio::join!(
        open_side(ctx, Side::Source, w, opts),
        open_side(ctx, Side::Target, w, opts)
    );
    let describe = |side: Side, e: anyhow::Error| {
        anyhow::anyhow!(
            "{} {}: {e:#}",
            side.as_str(),
            ctx.conn_config(side).describe()
        )
    };
    let src = src.map_err(|e| describe(Side::Source, e))?;
    let tgt = tgt.map_err(|e| describe(Side::Target, e))?;
    Ok((src, tgt))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parallelism_must_fit_in_the_free_connections() {
        // (side, wanted, max_connections, reserved, in use including our probe)
        let cases = [
            // 100 max, 3 reserved, 86 in use of which one is ours: 12 free.
            (
                Side::Source,
                40,
                100,
                3,
                86,
                Some("40 connections on the source, which has 12"),
            ),
            (Side::Target, 12, 100, 3, 86, None),
            (
                Side::Target,
                2,
                10,
                3,
                20,
                Some("2 connections on the target, which has 0"),
            ),
        ];
        for (side, wanted, max, reserved, in_use, expected) in cases {
            let got = headroom(side, wanted, max, reserved, in_use).err();
            let expected = expected
                .map(|e| format!("parallelism {wanted} needs {e} free of max_connections {max}"));
            assert_eq!(got.map(|e| e.to_string()), expected);
        }
    }

    #[test]
    fn a_lost_server_outranks_sql_errors_and_cancel_outranks_both() {
        let sql = || Err(Fail::Sql("boom".into()));
        let lost = || Err(Fail::Lost("gone".into()));
        assert!(matches!(
            workers_outcome(vec![sql(), lost(), sql()]),
            Err(Fail::Lost(m)) if m == "gone"
        ));
        assert!(matches!(
            workers_outcome(vec![lost(), Err(Fail::Cancelled)]),
            Err(Fail::Cancelled)
        ));
        assert!(matches!(
            workers_outcome(vec![Ok(()), sql()]),
            Err(Fail::Sql(_))
        ));
        assert!(workers_outcome(vec![Ok(()), Ok(())]).is_ok());
    }
}
