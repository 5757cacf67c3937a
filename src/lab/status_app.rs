//! The app's part of `cutover lab status`: acknowledged and failed writes
//! per second, the measured write-failure window, as text and JSON.

use std::fmt;

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::status::LabStatus;
use super::witness::{Witness, RATE_SECONDS};
use crate::ui::fmt::int;

/// The witness file is rewritten every second; older than this while the
/// app runs means its writer is stuck.
const STALE_SECS: i64 = 5;

fn at(t: DateTime<Utc>) -> String {
    t.format("%H:%M:%S%.3f").to_string()
}

fn secs(ms: i64) -> String {
    format!("{:.3} s", ms as f64 / 1000.0)
}

fn count(n: u64) -> String {
    int(i64::try_from(n).unwrap_or(i64::MAX))
}

pub(super) fn write_app(
    f: &mut fmt::Formatter<'_>,
    w: &Witness,
    app_pid: Option<u32>,
    now: DateTime<Utc>,
) -> fmt::Result {
    let t = &w.total;
    writeln!(
        f,
        "  app writes  {:.1}/s acknowledged, {:.1}/s failed (last {RATE_SECONDS} s); \
         {} inserts + {} updates acknowledged, {} failed",
        t.ok_per_sec,
        t.failed_per_sec,
        count(t.acknowledged_inserts),
        count(t.acknowledged_updates),
        count(t.failed)
    )?;
    if t.latency.count > 0 {
        writeln!(
            f,
            "  write latency  p50 {}, p99 {}, longest {} (due → acknowledged)",
            secs(t.latency.p50_ms as i64),
            secs(t.latency.p99_ms as i64),
            secs(t.latency.max_ms as i64)
        )?;
    }
    for (db, span) in &t.acks {
        writeln!(
            f,
            "    on {db}: first ack {}, last ack {} UTC",
            at(span.first),
            at(span.last)
        )?;
    }
    match &t.failure_window {
        None => writeln!(f, "  write-failure window  none (no write failed)")?,
        Some(fw) => match (fw.to, fw.ms) {
            (Some(to), Some(ms)) => writeln!(
                f,
                "  write-failure window  {} ({} → {} UTC), {} failed writes",
                secs(ms),
                at(fw.from),
                at(to),
                count(t.failed)
            )?,
            _ => writeln!(
                f,
                "  write-failure window  open since {} UTC: writes still failing ({} failed, \
                 the last at {})",
                at(fw.from),
                count(t.failed),
                at(fw.last_failure)
            )?,
        },
    }
    if let Some(g) = &t.source_to_target {
        if g.ms >= 0 {
            writeln!(
                f,
                "  last ack on source → first ack on target  {}",
                secs(g.ms)
            )?;
        } else {
            writeln!(
                f,
                "  last ack on source → first ack on target  {} (both took writes at once)",
                secs(g.ms)
            )?;
        }
    }
    let age = (now - w.updated_at).num_seconds();
    if w.is_final {
        writeln!(
            f,
            "  (the app stopped at {} UTC: final figures)",
            at(w.updated_at)
        )?;
    } else if app_pid.is_none() {
        writeln!(
            f,
            "  (the app is not running: figures as of {} UTC)",
            at(w.updated_at)
        )?;
    } else if age > STALE_SECS {
        writeln!(f, "  (witness.json not updated for {age} s)")?;
    }
    Ok(())
}

impl LabStatus {
    /// `cutover lab status --json`.
    pub fn to_json(&self) -> Value {
        let clusters: Vec<Value> = self
            .clusters
            .iter()
            .map(|c| {
                json!({
                    "name": c.name,
                    "port": c.port,
                    "running": c.running,
                    "pid": c.pid,
                    "version": c.version,
                    "data_dir": c.data_dir,
                })
            })
            .collect();
        let (app, app_error) = match &self.witness {
            Ok(w) => (json!(w), Value::Null),
            Err(e) => (Value::Null, json!(e)),
        };
        json!({
            "dir": self.dir,
            "present": self.present,
            "seeded": self.seeded,
            "all_running": self.all_running(),
            "config": self.config_path,
            "clusters": clusters,
            "app_pid": self.app_pid,
            "app": app,
            "app_error": app_error,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use chrono::TimeZone;

    use super::*;
    use crate::lab::kube_sim::ledger::AckSpan;
    use crate::lab::kube_sim::Latency;
    use crate::lab::witness::{FailureWindow, Figures, Gap, WITNESS_FORMAT};

    fn t(ms: i64) -> DateTime<Utc> {
        Utc.timestamp_millis_opt(1_700_000_000_000 + ms).unwrap()
    }

    struct Show<'a>(&'a Witness, Option<u32>);

    impl fmt::Display for Show<'_> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write_app(f, self.0, self.1, t(10_000))
        }
    }

    fn witness() -> Witness {
        let mut acks = BTreeMap::new();
        acks.insert(
            "source".to_string(),
            AckSpan {
                first: t(0),
                last: t(1_000),
            },
        );
        acks.insert(
            "target".to_string(),
            AckSpan {
                first: t(3_310),
                last: t(9_000),
            },
        );
        Witness {
            format: WITNESS_FORMAT,
            pid: 1,
            updated_at: t(9_500),
            is_final: false,
            total: Figures {
                acknowledged_inserts: 12_345,
                acknowledged_updates: 3_086,
                failed: 1_153,
                ok_per_sec: 498.4,
                failed_per_sec: 0.0,
                recent: Vec::new(),
                acks,
                failure_window: Some(FailureWindow {
                    from: t(1_000),
                    to: Some(t(3_310)),
                    ms: Some(2_310),
                    first_failure: t(1_020),
                    last_failure: t(3_300),
                }),
                source_to_target: Some(Gap {
                    from: t(1_000),
                    to: t(3_310),
                    ms: 2_310,
                }),
                latency: Latency {
                    count: 15_431,
                    p50_ms: 4,
                    p99_ms: 31,
                    max_ms: 2_415,
                },
            },
            pods: Vec::new(),
            last_error: None,
        }
    }

    #[test]
    fn status_prints_rates_window_and_switch_gap() {
        let shown = Show(&witness(), Some(42)).to_string();
        assert_eq!(
            shown,
            "  app writes  498.4/s acknowledged, 0.0/s failed (last 5 s); 12,345 inserts + \
             3,086 updates acknowledged, 1,153 failed\n\
             \x20 write latency  p50 0.004 s, p99 0.031 s, longest 2.415 s (due → acknowledged)\n\
             \x20   on source: first ack 22:13:20.000, last ack 22:13:21.000 UTC\n\
             \x20   on target: first ack 22:13:23.310, last ack 22:13:29.000 UTC\n\
             \x20 write-failure window  2.310 s (22:13:21.000 → 22:13:23.310 UTC), 1,153 failed \
             writes\n\
             \x20 last ack on source → first ack on target  2.310 s\n"
        );
    }

    #[test]
    fn status_says_when_writes_still_fail_and_the_app_is_gone() {
        let mut w = witness();
        w.total.failure_window = Some(FailureWindow {
            to: None,
            ms: None,
            ..w.total.failure_window.unwrap()
        });
        w.total.source_to_target = None;
        let shown = Show(&w, None).to_string();
        assert!(
            shown.contains(
                "  write-failure window  open since 22:13:21.000 UTC: writes still failing \
                 (1,153 failed, the last at 22:13:23.300)\n"
            ),
            "{shown}"
        );
        assert!(
            shown.ends_with("  (the app is not running: figures as of 22:13:29.500 UTC)\n"),
            "{shown}"
        );
        assert!(!shown.contains("first ack on target  "), "{shown}");
    }
}
