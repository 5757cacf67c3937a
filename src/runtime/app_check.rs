//! The app-on-target step: each side's rows written (pg_stat_user_tables)
//! and client sessions (pg_stat_activity, cutover's own left out), now and
//! some seconds later. It passes when the target gained writes and the
//! source none, and says the figures either way.

use std::time::Duration;

use anyhow::{anyhow, Result};
use tokio_postgres::Client;

use crate::config::Config;
use crate::session::Side;

const STATEMENT_TIMEOUT_MS: u64 = 10_000;

const ACTIVITY_SQL: &str = concat!(
    "SELECT ",
    crate::pg::rows_written_sql!(),
    ", (SELECT count(*)::int8 FROM pg_stat_activity WHERE ",
    crate::pg::client_sessions_where!(),
    ")"
);

/// One side at one moment: rows written so far, client sessions now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Activity {
    pub rows_written: i64,
    pub sessions: i64,
}

async fn read(config: &Config, side: Side, client: &Client) -> Result<Activity> {
    let row = super::pg_steps::bounded(
        config,
        side,
        "reading writes and sessions",
        STATEMENT_TIMEOUT_MS,
        client.query_one(ACTIVITY_SQL, &[]),
    )
    .await?;
    Ok(Activity {
        rows_written: row.get(0),
        sessions: row.get(1),
    })
}

/// The verdict on what was seen over `seconds`: Ok when the target gained
/// writes and the source none — or, with reverse replication applying the
/// target's writes to the source, no client session on the source.
pub fn judge(
    source: (Activity, Activity),
    target: (Activity, Activity),
    seconds: u64,
    reverse: bool,
) -> Result<String> {
    let per_s = |(a, b): (Activity, Activity)| {
        (b.rows_written - a.rows_written).max(0) as f64 / seconds.max(1) as f64
    };
    let (s, t) = (per_s(source), per_s(target));
    let said = format!(
        "over {seconds} s: target {t:.0} rows/s written, {} client sessions; source {s:.0} rows/s, {} client sessions",
        target.1.sessions, source.1.sessions
    );
    if reverse && source.1.sessions > 0 {
        Err(anyhow!(
            "the source still has client sessions (its writes may be reverse replication's, \
             or theirs): {said}"
        ))
    } else if s > 0.0 && !reverse {
        Err(anyhow!("the source still takes writes: {said}"))
    } else if t <= 0.0 {
        Err(anyhow!("no writes reach the target: {said}"))
    } else if reverse {
        Ok(format!(
            "the app writes to the target only: {said} (the source's are reverse replication \
             applying the target's)"
        ))
    } else {
        Ok(format!("the app writes to the target only: {said}"))
    }
}

pub async fn observe(config: &Config, seconds: u64, reverse: bool) -> Result<String> {
    let open = |side| super::pg_steps::open(config, side, 1_000, STATEMENT_TIMEOUT_MS);
    let (src, tgt) = (open(Side::Source).await?, open(Side::Target).await?);
    let first = (
        read(config, Side::Source, &src).await?,
        read(config, Side::Target, &tgt).await?,
    );
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    let last = (
        read(config, Side::Source, &src).await?,
        read(config, Side::Target, &tgt).await?,
    );
    judge((first.0, last.0), (first.1, last.1), seconds, reverse)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(rows_written: i64, sessions: i64) -> Activity {
        Activity {
            rows_written,
            sessions,
        }
    }

    #[test]
    fn passes_only_when_the_target_gains_and_the_source_does_not() {
        let ok = judge((a(100, 0), a(100, 0)), (a(0, 3), a(5000, 3)), 10, false).unwrap();
        assert_eq!(
            ok,
            "the app writes to the target only: over 10 s: target 500 rows/s written, 3 client \
             sessions; source 0 rows/s, 0 client sessions"
        );
        let both = judge((a(100, 2), a(150, 2)), (a(0, 3), a(5000, 3)), 10, false).unwrap_err();
        assert!(
            format!("{both}").starts_with("the source still takes writes: over 10 s: target 500"),
            "{both}"
        );
        let none = judge((a(100, 0), a(100, 0)), (a(7, 0), a(7, 0)), 10, false).unwrap_err();
        assert!(
            format!("{none}").starts_with("no writes reach the target"),
            "{none}"
        );
        // Reverse replication writes to the source: client sessions decide.
        let reverse = judge((a(100, 0), a(600, 0)), (a(0, 3), a(5000, 3)), 10, true).unwrap();
        assert!(reverse.ends_with("applying the target's)"), "{reverse}");
        let still = judge((a(100, 1), a(600, 1)), (a(0, 3), a(5000, 3)), 10, true).unwrap_err();
        assert!(
            format!("{still}").starts_with("the source still has client sessions"),
            "{still}"
        );
    }
}
