//! The app-on-target step on real clusters: while rows are written on the
//! target only, it passes and gives the rate; while the source still takes
//! writes, it fails and says so. Read from the servers' own statistics.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use cutover::runtime::app_check::observe;

/// Writes a few rows to `conninfo` every 200 ms (each by its own psql, so its
/// statistics are flushed when it exits) until dropped.
struct Writer {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Writer {
    fn start(conninfo: String) -> Self {
        let pair = common::pair();
        pair.psql(&conninfo, "CREATE TABLE IF NOT EXISTS app_probe (i int)");
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                common::pair().psql(
                    &conninfo,
                    "INSERT INTO app_probe SELECT generate_series(1, 10)",
                );
                std::thread::sleep(Duration::from_millis(200));
            }
        });
        Writer {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[tokio::test]
async fn passes_with_writes_on_the_target_only_and_fails_while_the_source_writes() {
    let pair = common::pair();
    let config = cutover::config::load(&pair.config_path).expect("config");
    // Let the seed's statistics settle first.
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let target_writes = Writer::start(pair.target_conninfo.clone());
    let said = observe(&config, 3, false)
        .await
        .expect("the target alone takes writes");
    drop(target_writes);
    assert!(
        said.starts_with("the app writes to the target only: over 3 s: target "),
        "{said}"
    );
    assert!(said.contains("source 0 rows/s"), "{said}");

    let source_writes = Writer::start(pair.source_conninfo.clone());
    let err = observe(&config, 3, false).await.unwrap_err();
    drop(source_writes);
    let msg = format!("{err:#}");
    assert!(
        msg.starts_with("the source still takes writes: over 3 s:"),
        "{msg}"
    );
}
