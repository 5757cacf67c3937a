//! A steady write load on the lab's source, so replication lag, slot growth and
//! the cutover's write freeze have something to show.
//!
//! One connection, one statement per write (each its own transaction). The
//! schedule is credit based: after an outage or a slow spell the writer does
//! not burst to catch up beyond one second's worth, so the load stays steady.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_postgres::{Client, NoTls, Statement};

/// Rate the lab uses unless told otherwise.
pub const DEFAULT_WRITES_PER_SEC: u32 = 50;

const BACKOFF_START: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// Snapshot of the writer's counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadStats {
    /// Statements that committed.
    pub committed: u64,
    /// Statements that failed (error or lost connection).
    pub failed: u64,
    /// Successful connects after the first one.
    pub reconnects: u64,
    /// Whether a connection is currently open.
    pub connected: bool,
    /// Target rate in writes per second (0 = paused).
    pub writes_per_sec: u32,
    pub last_error: Option<String>,
    /// Time since the writer was spawned.
    pub elapsed: Duration,
}

#[derive(Default)]
struct Shared {
    committed: AtomicU64,
    failed: AtomicU64,
    reconnects: AtomicU64,
    connected: AtomicBool,
    rate: AtomicU32,
    last_error: Mutex<Option<String>>,
}

impl Shared {
    fn fail(&self, e: impl std::fmt::Display) {
        self.failed.fetch_add(1, Ordering::Relaxed);
        *self.last_error.lock().unwrap_or_else(|e| e.into_inner()) = Some(e.to_string());
    }
}

/// Handle to a running load writer. Dropping it stops the writer.
pub struct LoadHandle {
    shared: Arc<Shared>,
    stop_tx: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
    started: Instant,
}

impl LoadHandle {
    pub fn stats(&self) -> LoadStats {
        let s = &self.shared;
        LoadStats {
            committed: s.committed.load(Ordering::Relaxed),
            failed: s.failed.load(Ordering::Relaxed),
            reconnects: s.reconnects.load(Ordering::Relaxed),
            connected: s.connected.load(Ordering::Relaxed),
            writes_per_sec: s.rate.load(Ordering::Relaxed),
            last_error: s
                .last_error
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
            elapsed: self.started.elapsed(),
        }
    }

    /// Signals the writer to stop; an in-flight statement is abandoned. Returns
    /// at once; use [`LoadHandle::join`] to wait for the task to end.
    pub fn stop(&self) {
        let _ = self.stop_tx.send(true);
    }

    /// Changes the rate on the fly; 0 pauses without disconnecting.
    pub fn set_rate(&self, writes_per_sec: u32) {
        self.shared.rate.store(writes_per_sec, Ordering::Relaxed);
    }

    pub fn is_finished(&self) -> bool {
        self.task.as_ref().is_none_or(|t| t.is_finished())
    }

    /// Stops the writer, waits for it to finish and returns the final counts.
    pub async fn join(mut self) -> LoadStats {
        self.stop();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
        self.stats()
    }
}

impl Drop for LoadHandle {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Starts the writer on the current tokio runtime (must be called inside one).
/// It connects to `conninfo` (the lab source's `app` database), and keeps
/// reconnecting with backoff if the connection fails or drops.
pub fn spawn_load_writer(conninfo: String, writes_per_sec: u32) -> LoadHandle {
    let shared = Arc::new(Shared::default());
    shared.rate.store(writes_per_sec, Ordering::Relaxed);
    let (stop_tx, stop_rx) = watch::channel(false);
    let task = tokio::spawn(run(conninfo, shared.clone(), stop_rx));
    LoadHandle {
        shared,
        stop_tx,
        task: Some(task),
        started: Instant::now(),
    }
}

async fn run(conninfo: String, shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let mut rng = StdRng::from_entropy();
    let mut backoff = BACKOFF_START;
    let mut first = true;
    loop {
        if *stop.borrow() {
            break;
        }
        let session = tokio::select! {
            s = Session::connect(&conninfo) => s,
            _ = stop.changed() => break,
        };
        let mut session = match session {
            Ok(s) => s,
            Err(e) => {
                tracing::debug!("load writer: connect failed: {e:#}");
                *shared.last_error.lock().unwrap_or_else(|e| e.into_inner()) =
                    Some(format!("connect: {e:#}"));
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = stop.changed() => break,
                }
                backoff = (backoff * 2).min(BACKOFF_MAX);
                continue;
            }
        };
        if !first {
            shared.reconnects.fetch_add(1, Ordering::Relaxed);
        }
        first = false;
        backoff = BACKOFF_START;
        shared.connected.store(true, Ordering::Relaxed);
        let stopped = session.drive(&shared, &mut stop, &mut rng).await;
        shared.connected.store(false, Ordering::Relaxed);
        if stopped {
            break;
        }
    }
}

/// An open connection with its prepared statements and what it knows about
/// the id ranges it may touch.
struct Session {
    client: Client,
    new_order: Statement,
    add_item: Statement,
    audit: Statement,
    event: Statement,
    touch_user: Statement,
    advance_order: Statement,
    max_user: i64,
    max_order: Arc<AtomicI64>,
}

const NEW_ORDER: &str = "\
WITH o AS (
    INSERT INTO orders (user_id, total, status, created_at, note)
    SELECT u.id, round((random() * 500 + 1)::numeric, 2), 'pending', now(), $2::text
    FROM users u WHERE u.id = $1::int
    RETURNING id
)
INSERT INTO order_items (order_id, line_no, sku, qty, price)
SELECT o.id, n, 'SKU-' || lpad((1 + (o.id * 7 + n) % 1000)::text, 6, '0'),
       1 + n % 3, round((random() * 100 + 0.5)::numeric, 2)
FROM o, generate_series(1, $3::int) AS n
RETURNING order_id";

// Zero rows (not an error) when the order is gone.
const ADD_ITEM: &str = "\
INSERT INTO order_items (order_id, line_no, sku, qty, price)
SELECT o.id,
       1 + coalesce((SELECT max(line_no) FROM order_items i WHERE i.order_id = o.id), 0),
       'SKU-000001', 1, 9.99
FROM orders o WHERE o.id = $1::bigint";

const AUDIT: &str = "INSERT INTO audit_log (at, actor, detail) VALUES (now(), $1::text, $2::text)";

const EVENT: &str = "\
INSERT INTO events (ts, kind, payload)
VALUES (now(), $1::text, jsonb_build_object('seq', $2::bigint, 'msg', $3::text))";

const TOUCH_USER: &str = "\
UPDATE users
SET balance = least(greatest(balance + round((random() * 20 - 10)::numeric, 2), -9999999999.99), 9999999999.99),
    profile = jsonb_set(coalesce(profile, '{}'::jsonb), '{last_seen}', to_jsonb(now()))
WHERE id = $1::int";

const ADVANCE_ORDER: &str = "\
UPDATE orders
SET status = CASE status WHEN 'pending' THEN 'paid' WHEN 'paid' THEN 'shipped'
                         WHEN 'shipped' THEN 'delivered' ELSE status END
WHERE id = $1::bigint";

const WORDS: [&str; 8] = [
    "lab write",
    "café ☕",
    "注文",
    "طلب",
    "הזמנה",
    "🦀 load",
    "Zoë",
    "e\u{301}te\u{301}",
];

impl Session {
    async fn connect(conninfo: &str) -> anyhow::Result<Session> {
        let (client, conn) = tokio_postgres::connect(conninfo, NoTls).await?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!("load writer connection ended: {e}");
            }
        });
        // Bounded so a blocked source (locks during cutover) surfaces as
        // failures rather than a silently stalled writer.
        client
            .batch_execute(
                "SET application_name = 'cutover-lab-load'; SET statement_timeout = '10s'",
            )
            .await?;
        let max_user: i32 = client
            .query_one("SELECT coalesce(max(id), 0) FROM users", &[])
            .await?
            .get(0);
        let max_order: i64 = client
            .query_one("SELECT coalesce(max(id), 0) FROM orders", &[])
            .await?
            .get(0);
        Ok(Session {
            new_order: client.prepare(NEW_ORDER).await?,
            add_item: client.prepare(ADD_ITEM).await?,
            audit: client.prepare(AUDIT).await?,
            event: client.prepare(EVENT).await?,
            touch_user: client.prepare(TOUCH_USER).await?,
            advance_order: client.prepare(ADVANCE_ORDER).await?,
            client,
            max_user: i64::from(max_user),
            max_order: Arc::new(AtomicI64::new(max_order)),
        })
    }

    /// Writes until stopped (returns true) or the connection is lost (false).
    async fn drive(
        &mut self,
        shared: &Shared,
        stop: &mut watch::Receiver<bool>,
        rng: &mut StdRng,
    ) -> bool {
        let mut rate = shared.rate.load(Ordering::Relaxed);
        let mut epoch = Instant::now();
        let mut issued: u64 = 0;
        loop {
            if *stop.borrow() {
                return true;
            }
            let now_rate = shared.rate.load(Ordering::Relaxed);
            if now_rate != rate {
                rate = now_rate;
                epoch = Instant::now();
                issued = 0;
            }
            if rate == 0 {
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(100)) => continue,
                    _ = stop.changed() => return true,
                }
            }
            let due = (epoch.elapsed().as_secs_f64() * f64::from(rate)) as u64;
            if due <= issued {
                let next = epoch + Duration::from_secs_f64((issued + 1) as f64 / f64::from(rate));
                tokio::select! {
                    _ = tokio::time::sleep_until(next.into()) => continue,
                    _ = stop.changed() => return true,
                }
            }
            // Forget backlog older than a second rather than bursting.
            if due - issued > u64::from(rate) {
                issued = due - u64::from(rate);
            }
            issued += 1;
            let result = tokio::select! {
                r = self.one_write(rng) => r,
                _ = stop.changed() => return true,
            };
            match result {
                Ok(()) => {
                    shared.committed.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => {
                    tracing::debug!("load writer: write failed: {e}");
                    shared.fail(&e);
                    if self.client.is_closed() {
                        return false;
                    }
                }
            }
        }
    }

    async fn one_write(&self, rng: &mut StdRng) -> Result<(), tokio_postgres::Error> {
        let word = WORDS[rng.gen_range(0..WORDS.len())];
        let user_id = rng.gen_range(1..=self.max_user.max(1)) as i32;
        let max_order = self.max_order.load(Ordering::Relaxed).max(1);
        // Recent orders are the ones that still change in a real shop.
        let recent_order = rng.gen_range((max_order - 1000).max(1)..=max_order);
        let roll: u32 = rng.gen_range(0..100);
        match roll {
            0..=24 => {
                let lines: i32 = rng.gen_range(1..=3);
                let note: Option<&str> = rng.gen_bool(0.3).then_some(word);
                let rows = self
                    .client
                    .query(&self.new_order, &[&user_id, &note, &lines])
                    .await?;
                if let Some(id) = rows.first().map(|r| r.get::<_, i64>(0)) {
                    self.max_order.fetch_max(id, Ordering::Relaxed);
                }
            }
            25..=34 => {
                self.client
                    .execute(&self.add_item, &[&recent_order])
                    .await?;
            }
            35..=54 => {
                let actor = if rng.gen_bool(0.5) {
                    "load"
                } else {
                    "管理员"
                };
                let detail = format!("{word} #{}", rng.gen::<u32>());
                self.client.execute(&self.audit, &[&actor, &detail]).await?;
            }
            55..=74 => {
                let kind = ["page_view", "login", "purchase"][rng.gen_range(0..3)];
                let seq: i64 = rng.gen_range(0..i64::MAX);
                self.client
                    .execute(&self.event, &[&kind, &seq, &word])
                    .await?;
            }
            75..=89 => {
                self.client.execute(&self.touch_user, &[&user_id]).await?;
            }
            _ => {
                self.client
                    .execute(&self.advance_order, &[&recent_order])
                    .await?;
            }
        }
        Ok(())
    }
}
