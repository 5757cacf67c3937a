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
use tokio_postgres::types::Type;
use tokio_postgres::NoTls;

pub use super::ledger::{AppShared, AppStats, Latency, SecondStats};

/// Table the app writes to. Created on the source by [`ensure_table`] so that
/// it is part of the schema a cutover copies and replicates.
pub const APP_WRITES_DDL: &str = "CREATE TABLE IF NOT EXISTS app_writes (\
     id text PRIMARY KEY, \
     pod text NOT NULL, \
     db_config text NOT NULL, \
     updates integer NOT NULL DEFAULT 0, \
     at timestamptz NOT NULL DEFAULT now())";

// Unnamed statements, parsed with each write: a pooler in transaction mode
// may hand each transaction another server, where a prepared statement of
// an earlier one does not exist.
const INSERT: &str = "INSERT INTO app_writes (id, pod, db_config) VALUES ($1, $2, $3)";
const UPDATE: &str =
    "UPDATE app_writes SET updates = updates + 1, at = now() WHERE id = $1 RETURNING id";
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
    // Simple queries: through a pooler in transaction mode as well.
    let there = client
        .simple_query("SELECT to_regclass('app_writes') IS NOT NULL")
        .await?
        .into_iter()
        .any(|m| matches!(m, tokio_postgres::SimpleQueryMessage::Row(r) if r.get(0) == Some("t")));
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

/// One batch of writes that came due on one tick, sent together.
struct Batch {
    ops: Vec<(bool, String)>,
    results: Vec<Result<usize, tokio_postgres::Error>>,
    /// When the writes came due: a write's latency is from then to its answer.
    due: Instant,
    answered: Vec<Instant>,
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
    let mut client: Option<Arc<Conn>> = None;
    let mut next_connect = Instant::now();
    let mut backoff = Duration::from_millis(100);
    let mut recent: std::collections::VecDeque<String> = Default::default();
    // Writes sent and not answered yet: a pooler holding the queries
    // (PgBouncer's PAUSE) delays them; the pod goes on taking requests,
    // as an app's callers go on calling, up to what it can keep waiting.
    let mut pending = futures::stream::FuturesUnordered::new();
    let mut waiting = 0usize;
    let capacity = max_waiting(rate);
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            Some(b) = futures::StreamExt::next(&mut pending), if !pending.is_empty() => {
                let b: Batch = b;
                waiting -= b.ops.len();
                answered(&shared, &pod, &fingerprint, &mut recent, b);
                continue;
            }
            _ = tokio::time::sleep(TICK) => {}
        }
        if *stop.borrow() {
            break;
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
                    client = Some(Arc::new(c));
                    backoff = Duration::from_millis(100);
                }
                Err(e) => {
                    shared.error(format!("{pod}: connect: {e:#}"));
                    next_connect = Instant::now() + backoff;
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                }
            }
        }
        let Some(c) = client.clone() else {
            shared.record(&pod, &fingerprint, Vec::new(), Vec::new(), due as u64, &[]);
            continue;
        };
        let room = capacity.saturating_sub(waiting);
        let ops: Vec<(bool, String)> = (0..due.min(room))
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
        let dropped = due.saturating_sub(room) as u64;
        if dropped > 0 {
            shared.error(format!("{pod}: over capacity, {dropped} writes not sent"));
            shared.record(&pod, &fingerprint, Vec::new(), Vec::new(), dropped, &[]);
        }
        if ops.is_empty() {
            continue;
        }
        waiting += ops.len();
        let (pod2, fp2) = (pod.clone(), fingerprint.clone());
        pending.push(async move {
            // tokio-postgres pipelines these on the one connection.
            let results = futures::future::join_all(ops.iter().map(|(update, id)| {
                let (c, pod, fp) = (&c, &pod2, &fp2);
                async move {
                    let r = if *update {
                        c.client.query_typed(UPDATE, &[(id, Type::TEXT)]).await
                    } else {
                        c.client
                            .query_typed(
                                INSERT,
                                &[(id, Type::TEXT), (pod, Type::TEXT), (fp, Type::TEXT)],
                            )
                            .await
                    };
                    (r.map(|rows| rows.len()), Instant::now())
                }
            }))
            .await;
            let (results, answered) = results.into_iter().unzip();
            Batch {
                ops,
                results,
                due: now,
                answered,
            }
        });
    }
    // Graceful termination: what was sent is answered first.
    while let Some(b) = futures::StreamExt::next(&mut pending).await {
        answered(&shared, &pod, &fingerprint, &mut recent, b);
    }
}

/// Writes a pod keeps waiting at most: ten seconds of its rate (a caller's
/// timeout), at least [`MAX_IN_FLIGHT`].
fn max_waiting(rate: f64) -> usize {
    ((rate * 10.0) as usize).max(MAX_IN_FLIGHT)
}

/// Records a batch's answers: acknowledged ids, failures, latencies.
fn answered(
    shared: &AppShared,
    pod: &str,
    fingerprint: &str,
    recent: &mut std::collections::VecDeque<String>,
    b: Batch,
) {
    let mut inserted = Vec::new();
    let mut updated = Vec::new();
    let mut failed = 0;
    let mut latencies = Vec::with_capacity(b.ops.len());
    for (((update, id), r), at) in b.ops.into_iter().zip(b.results).zip(b.answered) {
        match r {
            Ok(1) if update => updated.push(id),
            Ok(_) if update => {
                failed += 1;
                shared.error(format!("{pod}: update of {id} matched no row"));
                continue;
            }
            Ok(_) => inserted.push(id),
            Err(e) => {
                failed += 1;
                shared.error(format!("{pod}: {}", describe(&e)));
                continue;
            }
        }
        latencies.push((at - b.due).as_millis() as u64);
    }
    for id in &inserted {
        recent.push_back(id.clone());
        if recent.len() > RECENT {
            recent.pop_front();
        }
    }
    shared.record(pod, fingerprint, inserted, updated, failed, &latencies);
}

struct Conn {
    client: tokio_postgres::Client,
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
    Ok(Conn { client })
}
