//! The simulated application inside the lab's pods: each Running pod writes a
//! steady load to the database its DATABASE_URL named when it started.
//!
//! Four writes in five are an `INSERT INTO app_writes` with a unique id (pod
//! name and a sequence number); the fifth is an `UPDATE … SET updates =
//! updates + 1` of one of the pod's recent rows. Each is its own transaction.
//! A write is *acknowledged* only when the server returned success, so after a
//! cutover a test can check that every acknowledged insert exists in the final
//! database and every row's `updates` is at least its acknowledged updates.
//! Writes that came due while the pod had no connection, or beyond what it
//! could keep in flight, count as failures, the way an app answers its callers
//! with errors while the database is unreachable or overloaded.

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
     updates integer NOT NULL DEFAULT 0, \
     at timestamptz NOT NULL DEFAULT now())";

const INSERT: &str = "INSERT INTO app_writes (id, pod, db_config) VALUES ($1, $2, $3)";
const UPDATE: &str = "UPDATE app_writes SET updates = updates + 1, at = now() WHERE id = $1";
/// Every n-th write is an update.
const UPDATE_EVERY: u64 = 5;
/// Updates pick among this many of the pod's latest acknowledged inserts.
const RECENT: usize = 100;
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
    /// When the first and the last failed write came due.
    pub first_failure: Option<chrono::DateTime<chrono::Utc>>,
    pub last_failure: Option<chrono::DateTime<chrono::Utc>>,
}

impl AppStats {
    /// From the first to the last failed write: the write downtime as the
    /// app's callers saw it (zero when nothing failed).
    pub fn failure_window(&self) -> Duration {
        match (self.first_failure, self.last_failure) {
            (Some(a), Some(b)) => (b - a).to_std().unwrap_or_default(),
            _ => Duration::ZERO,
        }
    }

    /// Seconds that had at least one failed write.
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
    acked_updates: Mutex<BTreeMap<String, u32>>,
    per_second: Mutex<BTreeMap<i64, (u64, u64)>>,
    failures: Mutex<Option<(chrono::DateTime<chrono::Utc>, chrono::DateTime<chrono::Utc>)>>,
    last_error: Mutex<Option<String>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl AppShared {
    fn record(&self, ok: u64, failed: u64) {
        self.ok.fetch_add(ok, Ordering::Relaxed);
        self.failed.fetch_add(failed, Ordering::Relaxed);
        let now = chrono::Utc::now();
        if failed > 0 {
            let mut f = lock(&self.failures);
            let first = f.map_or(now, |(a, _)| a);
            *f = Some((first, now));
        }
        let sec = now.timestamp();
        let mut m = lock(&self.per_second);
        let e = m.entry(sec).or_default();
        e.0 += ok;
        e.1 += failed;
    }

    fn error(&self, e: impl std::fmt::Display) {
        *lock(&self.last_error) = Some(e.to_string());
    }

    pub fn stats(&self) -> AppStats {
        // One lock at a time: guards in a struct literal live to its end.
        let failures = *lock(&self.failures);
        let per_second = lock(&self.per_second)
            .iter()
            .map(|(s, (ok, failed))| SecondStats {
                second: *s,
                ok: *ok,
                failed: *failed,
            })
            .collect();
        let last_error = lock(&self.last_error).clone();
        AppStats {
            ok: self.ok.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            per_second,
            last_error,
            first_failure: failures.map(|f| f.0),
            last_failure: failures.map(|f| f.1),
        }
    }

    pub fn acknowledged(&self) -> Vec<String> {
        lock(&self.acked).clone()
    }

    pub fn acknowledged_updates(&self) -> BTreeMap<String, u32> {
        lock(&self.acked_updates).clone()
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
    let mut client: Option<Conn> = None;
    let mut next_connect = Instant::now();
    let mut backoff = Duration::from_millis(100);
    let mut recent: std::collections::VecDeque<String> = Default::default();
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

        if client.as_ref().is_some_and(|c| c.client.is_closed()) {
            client = None;
        }
        if client.is_none() && now >= next_connect {
            match connect(&conninfo).await {
                Ok(c) => {
                    client = Some(c);
                    backoff = Duration::from_millis(100);
                }
                Err(e) => {
                    shared.error(format!("{pod}: connect: {e:#}"));
                    next_connect = Instant::now() + backoff;
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                }
            }
        }
        let Some(c) = client.as_ref() else {
            shared.record(0, due as u64);
            continue;
        };
        let ops: Vec<(bool, String)> = (0..due.min(MAX_IN_FLIGHT))
            .map(|_| {
                seq += 1;
                if seq.is_multiple_of(UPDATE_EVERY) && !recent.is_empty() {
                    let i = rand::random::<usize>() % recent.len();
                    (true, recent[i].clone())
                } else {
                    (false, format!("{pod}-{seq}"))
                }
            })
            .collect();
        let dropped = due.saturating_sub(MAX_IN_FLIGHT) as u64;
        if dropped > 0 {
            shared.error(format!("{pod}: over capacity, {dropped} writes not sent"));
        }
        let (pod_ref, fp_ref) = (&pod, &fingerprint);
        // tokio-postgres pipelines these on the one connection.
        let results = futures::future::join_all(ops.iter().map(|(update, id)| async move {
            if *update {
                c.client.execute(&c.update, &[id]).await
            } else {
                c.client.execute(&c.insert, &[id, pod_ref, fp_ref]).await
            }
        }))
        .await;
        let mut inserted = Vec::new();
        let mut updated = Vec::new();
        let mut failed = dropped;
        for ((update, id), r) in ops.into_iter().zip(results) {
            match r {
                Ok(1) if update => updated.push(id),
                Ok(_) if update => {
                    failed += 1;
                    shared.error(format!("{pod}: update of {id} matched no row"));
                }
                Ok(_) => inserted.push(id),
                Err(e) => {
                    failed += 1;
                    shared.error(format!("{pod}: {}", describe(&e)));
                }
            }
        }
        let ok = (inserted.len() + updated.len()) as u64;
        for id in &inserted {
            recent.push_back(id.clone());
            if recent.len() > RECENT {
                recent.pop_front();
            }
        }
        lock(&shared.acked).extend(inserted);
        {
            let mut u = lock(&shared.acked_updates);
            for id in updated {
                *u.entry(id).or_default() += 1;
            }
        }
        shared.record(ok, failed);
    }
}

struct Conn {
    client: tokio_postgres::Client,
    insert: tokio_postgres::Statement,
    update: tokio_postgres::Statement,
}

/// tokio-postgres displays server errors as just "db error".
fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => e.to_string(),
    }
}

async fn connect(conninfo: &str) -> anyhow::Result<Conn> {
    let (client, conn) =
        tokio::time::timeout(CONNECT_TIMEOUT, tokio_postgres::connect(conninfo, NoTls))
            .await
            .map_err(|_| anyhow::anyhow!("timed out"))??;
    tokio::spawn(conn);
    let insert = client.prepare(INSERT).await?;
    let update = client.prepare(UPDATE).await?;
    Ok(Conn {
        client,
        insert,
        update,
    })
}
