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

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_postgres::NoTls;

pub use super::ledger::{AppShared, AppStats, SecondStats};

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

/// Creates `app_writes` on the database `conninfo` points at, unless it is
/// there (the lab's seed makes it; the app's role may not create tables, and
/// CREATE TABLE IF NOT EXISTS checks that right before it looks).
pub async fn ensure_table(conninfo: &str) -> anyhow::Result<()> {
    let (client, conn) = tokio_postgres::connect(conninfo, NoTls).await?;
    let conn = tokio::spawn(conn);
    let there: bool = client
        .query_one("SELECT to_regclass('app_writes') IS NOT NULL", &[])
        .await?
        .get(0);
    if !there {
        client.batch_execute(APP_WRITES_DDL).await?;
    }
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
            shared.record(&pod, &fingerprint, Vec::new(), Vec::new(), due as u64);
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
        for id in &inserted {
            recent.push_back(id.clone());
            if recent.len() > RECENT {
                recent.pop_front();
            }
        }
        shared.record(&pod, &fingerprint, inserted, updated, failed);
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
