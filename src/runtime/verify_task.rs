//! Runs a checksum verification for the console: one table at a time, so each
//! table's result reaches the screen and the log as soon as it is known.

use std::sync::Arc;

use tokio::sync::{mpsc::Sender, watch};

use crate::config::Config;
use crate::session::sample::TableRef;
use crate::session::EventKind;
use crate::verify::{verify_tables, VerifyOptions};

pub async fn run(
    run: u64,
    tables: Vec<TableRef>,
    config: Arc<Config>,
    tx: Sender<EventKind>,
    cancel: watch::Receiver<bool>,
    pause: watch::Receiver<bool>,
) {
    let opts = VerifyOptions {
        cancel: Some(cancel.clone()),
        pause: Some(pause),
        ..VerifyOptions::default()
    };
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
