//! What the lab's app pods measured, kept in the lab process: per pod, the
//! id of every acknowledged insert and update (in the order acknowledged),
//! failed writes, writes per second, when each database (by fingerprint of
//! the config value the pod started with) first and last acknowledged a
//! write, and the write-failure window ([`FailureTimeline`]).
//!
//! [`AppShared::drain`] hands out what changed since the last call, so the
//! witness file ([`crate::lab::witness`]) appends only new ids.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Counters for one second of wall-clock time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecondStats {
    /// Unix time of the second.
    pub second: i64,
    pub ok: u64,
    pub failed: u64,
    /// The longest an acknowledged write of this second waited, from when
    /// it came due to its answer (ms).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub max_latency_ms: u64,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

/// How long acknowledged writes waited, from when each came due to its
/// answer: what a pooler's pause costs the app's callers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Latency {
    pub count: u64,
    pub p50_ms: u64,
    pub p99_ms: u64,
    pub max_ms: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct AppStats {
    pub ok: u64,
    pub failed: u64,
    /// Per second, oldest first.
    pub per_second: Vec<SecondStats>,
    pub last_error: Option<String>,
    /// When the first and the last failed write came due.
    pub first_failure: Option<DateTime<Utc>>,
    pub last_failure: Option<DateTime<Utc>>,
    pub latency: Latency,
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

/// Acknowledged and failed writes on a time line, enough to give the
/// write-failure window as callers saw it: from the last acknowledged write
/// before the first failure to the first acknowledged write after the last
/// failure. Batches that both succeeded and failed in part count their
/// acknowledgements as *before* the failure, so the window is never shorter
/// than what happened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailureTimeline {
    pub first_ack: Option<DateTime<Utc>>,
    pub last_ack: Option<DateTime<Utc>>,
    pub first_failure: Option<DateTime<Utc>>,
    pub last_failure: Option<DateTime<Utc>>,
    pub last_ack_before_first_failure: Option<DateTime<Utc>>,
    pub first_ack_after_last_failure: Option<DateTime<Utc>>,
}

impl FailureTimeline {
    pub fn record(&mut self, now: DateTime<Utc>, ok: u64, failed: u64) {
        if failed > 0 {
            if self.first_failure.is_none() {
                self.first_failure = Some(now);
                self.last_ack_before_first_failure = self.last_ack;
            }
            self.last_failure = Some(now);
            self.first_ack_after_last_failure = None;
        }
        if ok > 0 {
            self.first_ack.get_or_insert(now);
            self.last_ack = Some(now);
            if failed == 0 && self.first_failure.is_some() {
                self.first_ack_after_last_failure.get_or_insert(now);
            }
        }
    }

    /// Start and end of the window: the last acknowledged write before the
    /// first failure (the first failure itself when nothing was acknowledged
    /// before), and the first acknowledged write after the last failure
    /// (None while writes still fail). None when nothing failed.
    pub fn window(&self) -> Option<(DateTime<Utc>, Option<DateTime<Utc>>)> {
        let first = self.first_failure?;
        Some((
            self.last_ack_before_first_failure.unwrap_or(first),
            self.first_ack_after_last_failure,
        ))
    }
}

/// First and last acknowledged write on one database.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AckSpan {
    pub first: DateTime<Utc>,
    pub last: DateTime<Utc>,
}

/// Acknowledged writes' latencies (ms), up to an hour at 3 significant
/// digits (a bucket rounds a value within 0.1 %); the longest is kept
/// exactly beside them.
#[derive(Debug)]
struct Latencies(hdrhistogram::Histogram<u64>, u64);

impl Default for Latencies {
    fn default() -> Self {
        Latencies(
            hdrhistogram::Histogram::new_with_bounds(1, 3_600_000, 3).expect("fixed, valid bounds"),
            0,
        )
    }
}

impl Latencies {
    fn record(&mut self, ms: &[u64]) {
        for v in ms {
            self.0.saturating_record((*v).max(1));
            self.1 = self.1.max(*v);
        }
    }

    fn summary(&self) -> Latency {
        if self.0.is_empty() {
            return Latency::default();
        }
        Latency {
            count: self.0.len(),
            p50_ms: self.0.value_at_quantile(0.50),
            p99_ms: self.0.value_at_quantile(0.99).min(self.1),
            max_ms: self.1,
        }
    }
}

/// The time-wise figures, kept per pod and for all pods.
#[derive(Debug, Default)]
struct Measure {
    /// Unix second → (acknowledged, failed, longest latency ms).
    per_second: BTreeMap<i64, (u64, u64, u64)>,
    timeline: FailureTimeline,
    /// Config fingerprint → acknowledged writes on that database.
    by_db: BTreeMap<String, AckSpan>,
    latencies: Latencies,
}

impl Measure {
    fn record(&mut self, now: DateTime<Utc>, db: &str, ok: u64, failed: u64, latencies: &[u64]) {
        if ok > 0 {
            self.by_db
                .entry(db.to_string())
                .and_modify(|s| s.last = now)
                .or_insert(AckSpan {
                    first: now,
                    last: now,
                });
        }
        self.timeline.record(now, ok, failed);
        self.latencies.record(latencies);
        let e = self.per_second.entry(now.timestamp()).or_default();
        e.0 += ok;
        e.1 += failed;
        e.2 = e.2.max(latencies.iter().copied().max().unwrap_or(0));
    }
}

#[derive(Debug, Default)]
struct PodLog {
    inserts: Vec<String>,
    updates: Vec<String>,
    failed: u64,
    m: Measure,
}

#[derive(Debug, Default)]
struct Ledger {
    pods: BTreeMap<String, PodLog>,
    m: Measure,
    last_error: Option<String>,
}

/// Shared by every pod's writer.
#[derive(Default)]
pub struct AppShared {
    ok: AtomicU64,
    failed: AtomicU64,
    ledger: Mutex<Ledger>,
}

/// One pod's figures, and the ids acknowledged since the last
/// [`AppShared::drain`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodDrain {
    pub inserts: u64,
    pub updates: u64,
    pub failed: u64,
    /// The last seconds, oldest first (see [`AppShared::drain`]).
    pub recent: Vec<SecondStats>,
    pub timeline: FailureTimeline,
    pub by_db: BTreeMap<String, AckSpan>,
    pub latency: Latency,
    pub new_inserts: Vec<String>,
    pub new_updates: Vec<String>,
}

/// Everything measured so far, the ids only as far as not drained before.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Drain {
    pub pods: BTreeMap<String, PodDrain>,
    pub recent: Vec<SecondStats>,
    pub timeline: FailureTimeline,
    pub by_db: BTreeMap<String, AckSpan>,
    pub latency: Latency,
    pub last_error: Option<String>,
}

/// How far [`AppShared::drain`] got, per pod: inserts and updates handed out.
pub type DrainCursor = BTreeMap<String, (usize, usize)>;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn seconds(m: &BTreeMap<i64, (u64, u64, u64)>, from: i64) -> Vec<SecondStats> {
    m.range(from..)
        .map(|(s, (ok, failed, max))| SecondStats {
            second: *s,
            ok: *ok,
            failed: *failed,
            max_latency_ms: *max,
        })
        .collect()
}

impl AppShared {
    /// One batch of pod `pod` writing to the database whose config has
    /// fingerprint `db`: what was acknowledged, how many writes failed,
    /// and how long each acknowledged one waited (ms).
    pub(crate) fn record(
        &self,
        pod: &str,
        db: &str,
        inserted: Vec<String>,
        updated: Vec<String>,
        failed: u64,
        latencies: &[u64],
    ) {
        self.record_at(Utc::now(), pod, db, inserted, updated, failed, latencies);
    }

    #[allow(clippy::too_many_arguments)]
    fn record_at(
        &self,
        now: DateTime<Utc>,
        pod: &str,
        db: &str,
        inserted: Vec<String>,
        updated: Vec<String>,
        failed: u64,
        latencies: &[u64],
    ) {
        let ok = (inserted.len() + updated.len()) as u64;
        self.ok.fetch_add(ok, Ordering::Relaxed);
        self.failed.fetch_add(failed, Ordering::Relaxed);
        let mut l = lock(&self.ledger);
        l.m.record(now, db, ok, failed, latencies);
        let p = l.pods.entry(pod.to_string()).or_default();
        p.m.record(now, db, ok, failed, latencies);
        p.failed += failed;
        p.inserts.extend(inserted);
        p.updates.extend(updated);
    }

    pub(super) fn error(&self, e: impl std::fmt::Display) {
        lock(&self.ledger).last_error = Some(e.to_string());
    }

    pub fn stats(&self) -> AppStats {
        let l = lock(&self.ledger);
        AppStats {
            ok: self.ok.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            per_second: seconds(&l.m.per_second, i64::MIN),
            last_error: l.last_error.clone(),
            first_failure: l.m.timeline.first_failure,
            last_failure: l.m.timeline.last_failure,
            latency: l.m.latencies.summary(),
        }
    }

    /// Ids of every acknowledged insert, pod by pod, each pod's in the
    /// order acknowledged.
    pub fn acknowledged(&self) -> Vec<String> {
        let l = lock(&self.ledger);
        l.pods.values().flat_map(|p| p.inserts.clone()).collect()
    }

    /// Acknowledged updates per row id.
    pub fn acknowledged_updates(&self) -> BTreeMap<String, u32> {
        let l = lock(&self.ledger);
        let mut out = BTreeMap::new();
        for id in l.pods.values().flat_map(|p| &p.updates) {
            *out.entry(id.clone()).or_default() += 1;
        }
        out
    }

    /// The figures of every pod and in total, with per-second counts from
    /// `since` (unix seconds) on, and the ids acknowledged since `cursor`
    /// (which this advances).
    pub fn drain(&self, cursor: &mut DrainCursor, since: i64) -> Drain {
        let l = lock(&self.ledger);
        let pods = l
            .pods
            .iter()
            .map(|(name, p)| {
                let c = cursor.entry(name.clone()).or_default();
                let d = PodDrain {
                    inserts: p.inserts.len() as u64,
                    updates: p.updates.len() as u64,
                    failed: p.failed,
                    recent: seconds(&p.m.per_second, since),
                    timeline: p.m.timeline,
                    by_db: p.m.by_db.clone(),
                    latency: p.m.latencies.summary(),
                    new_inserts: p.inserts[c.0.min(p.inserts.len())..].to_vec(),
                    new_updates: p.updates[c.1.min(p.updates.len())..].to_vec(),
                };
                *c = (p.inserts.len(), p.updates.len());
                (name.clone(), d)
            })
            .collect();
        Drain {
            pods,
            recent: seconds(&l.m.per_second, since),
            timeline: l.m.timeline,
            by_db: l.m.by_db.clone(),
            latency: l.m.latencies.summary(),
            last_error: l.last_error.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(ms: i64) -> DateTime<Utc> {
        Utc.timestamp_millis_opt(1_700_000_000_000 + ms).unwrap()
    }

    #[test]
    fn window_runs_from_the_last_ack_before_to_the_first_ack_after_the_failures() {
        let mut tl = FailureTimeline::default();
        tl.record(t(0), 5, 0);
        tl.record(t(100), 5, 0);
        assert_eq!(tl.window(), None);
        tl.record(t(200), 0, 3);
        tl.record(t(900), 0, 2);
        assert_eq!(tl.window(), Some((t(100), None)), "still failing");
        // A batch with both: its acks may have come before the failures.
        tl.record(t(1000), 4, 1);
        assert_eq!(tl.window(), Some((t(100), None)));
        tl.record(t(1100), 4, 0);
        tl.record(t(1200), 4, 0);
        assert_eq!(tl.window(), Some((t(100), Some(t(1100)))));
        assert_eq!(tl.first_ack, Some(t(0)));
        assert_eq!(tl.last_ack, Some(t(1200)));
        // Failing again reopens it from the same start.
        tl.record(t(2000), 0, 1);
        assert_eq!(tl.window(), Some((t(100), None)));
        tl.record(t(2500), 1, 0);
        assert_eq!(tl.window(), Some((t(100), Some(t(2500)))));
    }

    #[test]
    fn failing_from_the_start_opens_the_window_at_the_first_failure() {
        let mut tl = FailureTimeline::default();
        tl.record(t(50), 0, 1);
        tl.record(t(300), 2, 0);
        assert_eq!(tl.window(), Some((t(50), Some(t(300)))));
    }

    #[test]
    fn drain_hands_out_each_id_once_and_spans_per_database() {
        let app = AppShared::default();
        let ids = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        app.record_at(
            t(0),
            "app-a",
            "fp-src",
            ids(&["a-1", "a-2"]),
            vec![],
            0,
            &[3, 5],
        );
        app.record_at(
            t(10),
            "app-b",
            "fp-src",
            ids(&["b-1"]),
            ids(&["a-1"]),
            0,
            &[2, 2],
        );
        let mut cursor = DrainCursor::new();
        let d = app.drain(&mut cursor, i64::MIN);
        assert_eq!(d.pods["app-a"].new_inserts, ids(&["a-1", "a-2"]));
        assert_eq!(d.pods["app-b"].new_updates, ids(&["a-1"]));
        app.record_at(
            t(20),
            "app-a",
            "fp-tgt",
            ids(&["a-3"]),
            ids(&["a-2"]),
            2,
            &[4000, 7],
        );
        let d = app.drain(&mut cursor, i64::MIN);
        let a = &d.pods["app-a"];
        assert_eq!(a.new_inserts, ids(&["a-3"]));
        assert_eq!(a.new_updates, ids(&["a-2"]));
        assert_eq!((a.inserts, a.updates, a.failed), (3, 1, 2));
        assert!(d.pods["app-b"].new_inserts.is_empty());
        assert_eq!(
            d.by_db["fp-src"],
            AckSpan {
                first: t(0),
                last: t(10)
            }
        );
        assert_eq!(
            a.by_db["fp-tgt"],
            AckSpan {
                first: t(20),
                last: t(20)
            }
        );
        assert_eq!(d.recent.iter().map(|s| s.ok).sum::<u64>(), 6);
        assert_eq!(d.recent.iter().map(|s| s.failed).sum::<u64>(), 2);
        assert_eq!(app.acknowledged(), ids(&["a-1", "a-2", "a-3", "b-1"]));
        assert_eq!(app.acknowledged_updates()["a-1"], 1);
        assert_eq!(app.stats().ok, 6);
        assert_eq!(app.stats().failed, 2);
        // The pause a pooler held one batch for is its longest wait.
        let l = app.stats().latency;
        assert_eq!((l.count, l.max_ms), (6, 4000), "{l:?}");
        assert_eq!(d.pods["app-a"].latency.max_ms, 4000);
        assert_eq!(d.pods["app-b"].latency.max_ms, 2);
        assert_eq!(d.recent.iter().map(|s| s.max_latency_ms).max(), Some(4000));
    }
}
