//! The simulated application inside the lab's pods: each Running pod writes a
//! steady load to the database its DATABASE_URL named when it started.
//!
//! Every write is one `INSERT INTO app_writes` with a unique id (pod name and a
//! sequence number), in its own transaction. A write is *acknowledged* only
//! when the INSERT returned success, so after a cutover a test can check that
//! every acknowledged id exists in the final database. Writes that came due
//! while the pod had no connection count as failures, the way an app answers
//! its callers with errors while the database is unreachable.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_postgres::NoTls;

/// Table the app writes to. Created on the source by [`ensure_table`] so that
/// it is part of the schema a cutover copies and replicates.
pub const APP_WRITES_DDL: &str = "CREATE TABLE IF NOT EXISTS app_writes (\
     id text PRIMARY KEY, \
     pod text NOT NULL, \
     db_config text NOT NULL, \
     at timestamptz NOT NULL DEFAULT now())";

const INSERT: &str = "INSERT INTO app_writes (id, pod, db_config) VALUES ($1, $2, $3)";
const TICK: Duration = Duration::from_millis(10);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const MAX_IN_FLIGHT: usize = 64;

/// Counters for one second of wall-clock time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct SecondStats {
    /// Unix time of the second.
    pub second: i64,
    pub ok: u64,
    pub failed: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct AppStats {
    pub ok: u64,
    pub failed: u64,
    /// Per second, oldest first.
    pub per_second: Vec<SecondStats>,
    pub last_error: Option<String>,
}

impl AppStats {
    /// Seconds that had at least one failed write: the write-failure window.
    pub fn failure_seconds(&self) -> Vec<i64> {
        self.per_second
            .iter()
            .filter(|s| s.failed > 0)
            .map(|s| s.second)
            .collect()
    }
}

#[derive(Default)]
pub struct AppShared {
    ok: AtomicU64,
    failed: AtomicU64,
    acked: Mutex<Vec<String>>,
    per_second: Mutex<BTreeMap<i64, (u64, u64)>>,
    last_error: Mutex<Option<String>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl AppShared {
    fn record(&self, ok: u64, failed: u64) {
        self.ok.fetch_add(ok, Ordering::Relaxed);
        self.failed.fetch_add(failed, Ordering::Relaxed);
        let sec = chrono::Utc::now().timestamp();
        let mut m = lock(&self.per_second);
        let e = m.entry(sec).or_default();
        e.0 += ok;
        e.1 += failed;
    }

    fn error(&self, e: impl std::fmt::Display) {
        *lock(&self.last_error) = Some(e.to_string());
    }

    pub fn stats(&self) -> AppStats {
        AppStats {
            ok: self.ok.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            per_second: lock(&self.per_second)
                .iter()
                .map(|(s, (ok, failed))| SecondStats {
                    second: *s,
                    ok: *ok,
                    failed: *failed,
                })
                .collect(),
            last_error: lock(&self.last_error).clone(),
        }
    }

    pub fn acknowledged(&self) -> Vec<String> {
        lock(&self.acked).clone()
    }
}

/// Creates `app_writes` on the database `conninfo` points at.
pub async fn ensure_table(conninfo: &str) -> anyhow::Result<()> {
    let (client, conn) = tokio_postgres::connect(conninfo, NoTls).await?;
    let conn = tokio::spawn(conn);
    client.batch_execute(APP_WRITES_DDL).await?;
    drop(client);
    let _ = conn.await;
    Ok(())
}

/// One pod's writer. [`PodWriter::stop`] lets in-flight writes finish.
pub struct PodWriter {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl PodWriter {
    pub fn spawn(
        shared: Arc<AppShared>,
        pod: String,
        fingerprint: String,
        conninfo: String,
        writes_per_sec: f64,
    ) -> PodWriter {
        let (stop, stop_rx) = watch::channel(false);
        let task = tokio::spawn(run(
            shared,
            pod,
            fingerprint,
            conninfo,
            writes_per_sec,
            stop_rx,
        ));
        PodWriter { stop, task }
    }

    /// Graceful termination: no new writes, the in-flight ones complete.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

async fn run(
    shared: Arc<AppShared>,
    pod: String,
    fingerprint: String,
    conninfo: String,
    rate: f64,
    mut stop: watch::Receiver<bool>,
) {
    if rate <= 0.0 {
        return;
    }
    let mut seq: u64 = 0;
    let mut credit = 0.0f64;
    let mut last = Instant::now();
    let mut client: Option<(tokio_postgres::Client, tokio_postgres::Statement)> = None;
    let mut next_connect = Instant::now();
    let mut backoff = Duration::from_millis(100);
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            _ = tokio::time::sleep(TICK) => {}
        }
        if *stop.borrow() {
            return;
        }
        let now = Instant::now();
        // At most one second of catch-up, so an outage is not followed by a burst.
        credit = (credit + rate * (now - last).as_secs_f64()).min(rate.max(1.0));
        last = now;
        let due = credit.floor() as usize;
        if due == 0 {
            continue;
        }
        credit -= due as f64;

        if client.as_ref().is_some_and(|(c, _)| c.is_closed()) {
            client = None;
        }
        if client.is_none() && now >= next_connect {
            match connect(&conninfo).await {
                Ok(c) => {
                    client = Some(c);
                    backoff = Duration::from_millis(100);
                }
                Err(e) => {
                    shared.error(format!("{pod}: connect: {e}"));
                    next_connect = Instant::now() + backoff;
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                }
            }
        }
        let Some((c, stmt)) = client.as_ref() else {
            shared.record(0, due as u64);
            continue;
        };
        let ids: Vec<String> = (0..due.min(MAX_IN_FLIGHT))
            .map(|_| {
                seq += 1;
                format!("{pod}-{seq}")
            })
            .collect();
        let dropped = due.saturating_sub(MAX_IN_FLIGHT) as u64;
        // tokio-postgres pipelines these on the one connection.
        let (pod_ref, fp_ref) = (&pod, &fingerprint);
        let results = futures::future::join_all(
            ids.iter()
                .map(|id| async move { c.execute(stmt, &[id, pod_ref, fp_ref]).await }),
        )
        .await;
        let mut ok_ids = Vec::new();
        let mut failed = dropped;
        for (id, r) in ids.into_iter().zip(results) {
            match r {
                Ok(_) => ok_ids.push(id),
                Err(e) => {
                    failed += 1;
                    shared.error(format!("{pod}: {e}"));
                }
            }
        }
        let ok = ok_ids.len() as u64;
        lock(&shared.acked).extend(ok_ids);
        shared.record(ok, failed);
    }
}

async fn connect(
    conninfo: &str,
) -> anyhow::Result<(tokio_postgres::Client, tokio_postgres::Statement)> {
    let (client, conn) =
        tokio::time::timeout(CONNECT_TIMEOUT, tokio_postgres::connect(conninfo, NoTls))
            .await
            .map_err(|_| anyhow::anyhow!("timed out"))??;
    tokio::spawn(conn);
    let stmt = client.prepare(INSERT).await?;
    Ok((client, stmt))
}
