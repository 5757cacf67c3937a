//! Runs a checksum verification for the console: one table at a time, so each
//! table's result reaches the screen and the log as soon as it is known.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc::Sender, watch};

use crate::config::Config;
use crate::session::sample::TableRef;
use crate::session::EventKind;
use crate::verify::{
    verify_continuous, verify_tables, ContinuousOptions, ContinuousReport, VerifyOptions,
};

/// The engine's options as cutover.toml's [verify] section sets them.
pub fn options(config: &Config) -> VerifyOptions {
    let defaults = VerifyOptions::default();
    VerifyOptions {
        parallelism: config.verify.parallelism.unwrap_or(defaults.parallelism),
        statement_timeout: std::time::Duration::from_millis(config.verify.statement_timeout_ms),
        keys: config.verify.keys.clone(),
        ..defaults
    }
}

/// The configured options, cancellable and paused by the console.
fn controlled(
    config: &Config,
    cancel: watch::Receiver<bool>,
    pause: watch::Receiver<bool>,
) -> VerifyOptions {
    VerifyOptions {
        cancel: Some(cancel),
        pause: Some(pause),
        ..options(config)
    }
}

pub async fn run(
    run: u64,
    tables: Vec<TableRef>,
    config: Arc<Config>,
    tx: Sender<EventKind>,
    cancel: watch::Receiver<bool>,
    pause: watch::Receiver<bool>,
) {
    let opts = controlled(&config, cancel.clone(), pause);
    let mut error = None;
    let mut cancelled = false;
    for table in tables {
        if *cancel.borrow() {
            cancelled = true;
            break;
        }
        let progress_tx = tx.clone();
        // Progress is advisory: when the loop is busy, a dropped update is
        // replaced by the next one, never waited for.
        let progress = move |p| {
            let _ = progress_tx.try_send(EventKind::VerifyProgress { run, progress: p });
        };
        match verify_tables(&config, std::slice::from_ref(&table), &opts, progress).await {
            Ok(report) => {
                cancelled |= report.cancelled;
                for result in report.tables {
                    if tx
                        .send(EventKind::VerifyTableDone { run, result })
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
                if cancelled {
                    break;
                }
            }
            Err(e) => {
                error = Some(format!("{e:#}"));
                break;
            }
        }
    }
    let _ = tx
        .send(EventKind::VerifyFinished {
            run,
            cancelled,
            error,
        })
        .await;
}

/// The console's live verification as the final check needs it: whether
/// one runs, and the report of the latest one that ended (its ranges'
/// verification times let the final pass skip what did not change).
#[derive(Debug, Clone, Default)]
pub struct LiveVerify {
    pub running: bool,
    pub last: Option<Arc<ContinuousReport>>,
}

/// Continuous verification for the console: pass after pass over `tables`
/// until cancelled, each table's state reported as it changes. Mismatches are
/// only confirmed once a range differs the same way across re-checks spaced
/// by the lag window, so rows in flight stay "pending", not "differ".
pub async fn run_continuous(
    run: u64,
    tables: Vec<TableRef>,
    config: Arc<Config>,
    tx: Sender<EventKind>,
    cancel: watch::Receiver<bool>,
    pause: watch::Receiver<bool>,
    live: watch::Sender<LiveVerify>,
) {
    let opts = continuous_options(&config, cancel, pause);
    let progress_tx = tx.clone();
    let progress = move |p| {
        let _ = progress_tx.try_send(EventKind::VerifyLive { run, progress: p });
    };
    live.send_modify(|l| l.running = true);
    let (cancelled, error) = match verify_continuous(&config, &tables, &opts, progress).await {
        Ok(report) => {
            let said = (report.cancelled, table_errors(&report));
            live.send_replace(LiveVerify {
                running: false,
                last: Some(Arc::new(report)),
            });
            said
        }
        Err(e) => {
            live.send_modify(|l| l.running = false);
            (false, Some(format!("{e:#}")))
        }
    };
    let _ = tx
        .send(EventKind::VerifyFinished {
            run,
            cancelled,
            error,
        })
        .await;
}

/// The tables a continuous run could not verify, and why: progress events
/// carry no errors, so the run's end says it.
fn table_errors(report: &ContinuousReport) -> Option<String> {
    let errors: Vec<String> = report
        .tables
        .iter()
        .filter_map(|t| {
            let e = t.error.as_ref()?;
            let named = e.starts_with(&format!("{}: ", t.table));
            Some(if named {
                e.clone()
            } else {
                format!("{}: {e}", t.table)
            })
        })
        .collect();
    (!errors.is_empty()).then(|| errors.join("; "))
}

/// Continuous verification as the console runs it (benches measure the same).
pub fn continuous_options(
    config: &Config,
    cancel: watch::Receiver<bool>,
    pause: watch::Receiver<bool>,
) -> ContinuousOptions {
    ContinuousOptions {
        base: controlled(config, cancel, pause),
        settle: settle_window(config),
        updated_at: config.verify.updated_at.clone(),
        slot: Some(config.replication.slot.clone()),
        ..ContinuousOptions::default()
    }
}

/// The lag window: a row is in flight for at most the lag bound, so a range
/// still differing that much later, unchanged, really differs.
fn settle_window(config: &Config) -> Duration {
    Duration::from_secs_f64(config.thresholds.max_lag_seconds.clamp(1.0, 300.0))
}
