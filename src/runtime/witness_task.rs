//! On a lab, the app pods' own figures (`<lab>/witness.json`, rewritten
//! every second by the process that runs them) as events, so the console
//! shows — and the log keeps — acknowledged and failed writes per second and
//! the measured write-failure window beside the cutover that caused it.

use std::path::PathBuf;
use std::time::Duration;

use tokio::sync::mpsc::Sender;

use crate::lab::witness::{self, Witness};
use crate::session::{AppWitness, EventKind};

const EVERY: Duration = Duration::from_secs(1);

/// The figures the console shows, from the witness file.
pub fn figures(w: &Witness) -> AppWitness {
    let t = &w.total;
    AppWitness {
        ok_per_sec: t.ok_per_sec,
        failed_per_sec: t.failed_per_sec,
        failed: t.failed,
        failure_window_ms: t.failure_window.and_then(|f| f.ms),
        failing_since: t.failure_window.filter(|f| f.to.is_none()).map(|f| f.from),
        source_to_target_ms: t.source_to_target.map(|g| g.ms),
    }
}

/// Reads the lab's witness every second; sends its figures when they change.
/// A lab without one (no app running) sends nothing; an unreadable file is
/// traced, not shown: the witness is the lab's, not the cutover's.
pub async fn run(dir: PathBuf, tx: Sender<EventKind>) {
    let mut last = None;
    let mut tick = tokio::time::interval(EVERY);
    loop {
        tick.tick().await;
        let read = tokio::task::spawn_blocking({
            let dir = dir.clone();
            move || witness::read(&dir)
        })
        .await;
        let now = match read {
            Ok(Ok(Some(w))) => figures(&w),
            Ok(Ok(None)) => continue,
            Ok(Err(e)) => {
                tracing::warn!("lab witness: {e:#}");
                continue;
            }
            Err(_) => return,
        };
        if last.as_ref() != Some(&now) {
            last = Some(now.clone());
            if tx.send(EventKind::AppWitness(now)).await.is_err() {
                return;
            }
        }
    }
}
