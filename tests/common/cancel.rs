//! Cancelling a run at chosen moments, so cancellation tests cover every
//! point (before the start, while connecting, mid-query, at the first
//! result) without depending on timing luck.

#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

/// When the cancel arrives, relative to the run.
#[derive(Debug, Clone, Copy)]
pub enum CancelAt {
    /// Already set when the run starts: nothing is even connected.
    Start,
    /// Set right after the run was spawned (while connecting, usually).
    Spawned,
    /// Set after this many milliseconds (around the first queries).
    After(u64),
    /// Set by the progress callback at the first progress report: other
    /// queries are running or queued on both sides.
    FirstRange,
}

impl CancelAt {
    /// Every point a cancellation test runs: the three named ones, then
    /// every 5 ms over the first 100 ms.
    pub fn points() -> Vec<CancelAt> {
        let mut points = vec![CancelAt::Start, CancelAt::Spawned, CancelAt::FirstRange];
        points.extend((0..20).map(|i| CancelAt::After(5 * i)));
        points
    }
}

/// The cancel switch of one run, thrown at `at`.
pub struct Canceller {
    at: CancelAt,
    tx: Arc<watch::Sender<bool>>,
    task: tokio::task::JoinHandle<()>,
}

impl Canceller {
    /// The switch and the receiver to put in the run's options.
    pub fn start(at: CancelAt) -> (Canceller, watch::Receiver<bool>) {
        let (tx, rx) = watch::channel(matches!(at, CancelAt::Start));
        let tx = Arc::new(tx);
        let timed = tx.clone();
        let task = tokio::spawn(async move {
            match at {
                CancelAt::Spawned => {
                    let _ = timed.send(true);
                }
                CancelAt::After(ms) => {
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                    let _ = timed.send(true);
                }
                CancelAt::Start | CancelAt::FirstRange => {}
            }
        });
        (Canceller { at, tx, task }, rx)
    }

    /// Call from the run's progress callback.
    pub fn on_progress(&self) {
        if matches!(self.at, CancelAt::FirstRange) {
            let _ = self.tx.send(true);
        }
    }

    pub async fn finish(self) {
        self.task.await.unwrap();
    }
}
