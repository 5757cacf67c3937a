//! `--metrics ADDR`: the screen's facts as Prometheus metrics, so a war room
//! that watches Grafana sees the console's numbers and its alert rules
//! (replication lag over 5 s for 5 minutes) keep working through the cutover.
//!
//! Opt-in, loopback unless an address says otherwise, read-only: the
//! endpoint serves `GET /metrics` in the OpenMetrics text format and
//! nothing else. No secret is among the facts (no DSN, no config value).

mod facts;

use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

pub use facts::{facts, Facts};

type Labels = Vec<(&'static str, String)>;
type Series = Family<Labels, Gauge<f64, AtomicU64>>;

/// Where `--metrics` listens: `PORT` alone is loopback, `HOST:PORT` as given.
pub fn parse_addr(s: &str) -> Result<SocketAddr, String> {
    if let Ok(port) = s.parse::<u16>() {
        return Ok(SocketAddr::from(([127, 0, 0, 1], port)));
    }
    s.parse::<SocketAddr>().map_err(|_| {
        format!("{s:?} is not a port or an address such as 127.0.0.1:9187 or [::1]:9187")
    })
}

/// The registry and the series the facts are written into.
pub struct Metrics {
    registry: Registry,
    lag_bytes: Series,
    lag_seconds: Series,
    slot_retained: Series,
    stale: Series,
    phase: Series,
    checkpoint: Series,
    passed: Series,
    freeze_seconds: Series,
    freeze_budget: Series,
    frozen: Series,
    writes: Series,
    verify_done: Series,
    verify_total: Series,
    rollout: Series,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("cutover");
        let mut series = |name: &str, help: &str| {
            let s = Series::default();
            registry.register(name, help, s.clone());
            s
        };
        let lag_bytes = series(
            "replication_lag_bytes",
            "Subscription slot lag: current WAL LSN minus confirmed flush LSN (absent while the source is stale)",
        );
        let lag_seconds = series(
            "replication_lag_seconds",
            "Walsender flush lag of the subscription (absent while the source is stale)",
        );
        let slot_retained = series(
            "slot_retained_bytes",
            "WAL the subscription slot holds back on the source's disk",
        );
        let stale = series(
            "sample_stale",
            "1 when a side's last sample is older than the stale limit or failed",
        );
        let phase = series("phase", "The runbook's phase (label), 1");
        let checkpoint = series(
            "checkpoint",
            "The checkpoint that runs or comes next (labels key, title, state), 1",
        );
        let passed = series("checkpoints_passed", "Checkpoints passed so far");
        let freeze_seconds = series(
            "freeze_window_seconds",
            "Seconds since the write freeze began (until the app is on the target)",
        );
        let freeze_budget = series("freeze_budget_seconds", "The write freeze's budget");
        let frozen = series(
            "writes_frozen",
            "1 while the write-freeze window is open, 0 otherwise",
        );
        let writes = series("writes_per_second", "Rows written per second on each side");
        let verify_done = series(
            "verify_tables_done",
            "Tables the latest verification has finished",
        );
        let verify_total = series(
            "verify_tables_total",
            "Tables the latest verification checks",
        );
        let rollout = series(
            "rollout_pods",
            "Pods of each workload: updated, ready and desired (label state)",
        );
        Metrics {
            registry,
            lag_bytes,
            lag_seconds,
            slot_retained,
            stale,
            phase,
            checkpoint,
            passed,
            freeze_seconds,
            freeze_budget,
            frozen,
            writes,
            verify_done,
            verify_total,
            rollout,
        }
    }
}

fn set(s: &Series, labels: Labels, v: f64) {
    s.get_or_create(&labels).set(v);
}

fn set_opt<T: Into<f64>>(s: &Series, v: Option<T>) {
    s.clear();
    if let Some(v) = v {
        set(s, vec![], v.into());
    }
}

impl Metrics {
    /// Every series set to what the facts say; a fact that is absent
    /// removes its series.
    pub fn update(&self, f: &Facts) {
        set_opt(&self.lag_bytes, f.lag_bytes.map(|b| b as f64));
        set_opt(&self.lag_seconds, f.lag_seconds);
        set_opt(&self.slot_retained, f.slot_retained_bytes.map(|b| b as f64));
        for (side, stale) in [
            ("source", f.source_stale),
            ("target", f.target_stale),
            ("kubernetes", f.kube_stale),
        ] {
            set(
                &self.stale,
                vec![("side", side.into())],
                f64::from(u8::from(stale)),
            );
        }
        self.phase.clear();
        set(&self.phase, vec![("phase", f.phase.clone())], 1.0);
        self.checkpoint.clear();
        if let Some((key, title, state)) = &f.checkpoint {
            let labels = vec![
                ("key", key.clone()),
                ("title", title.clone()),
                ("state", (*state).to_string()),
            ];
            set(&self.checkpoint, labels, 1.0);
        }
        set(&self.passed, vec![], f.checkpoints_done as f64);
        set_opt(&self.freeze_seconds, f.freeze.map(|(s, _, _)| s as f64));
        set_opt(&self.freeze_budget, f.freeze.map(|(_, b, _)| b as f64));
        let open = f.freeze.is_some_and(|(_, _, closed)| !closed);
        set(&self.frozen, vec![], f64::from(u8::from(open)));
        self.writes.clear();
        for (side, rate) in [
            ("source", f.source_writes_per_second),
            ("target", f.target_writes_per_second),
        ] {
            if let Some(r) = rate {
                set(&self.writes, vec![("side", side.into())], r);
            }
        }
        set_opt(&self.verify_done, f.verify.map(|(d, _)| d as f64));
        set_opt(&self.verify_total, f.verify.map(|(_, t)| t as f64));
        self.rollout.clear();
        for (name, updated, ready, desired) in &f.rollout {
            for (state, n) in [("updated", updated), ("ready", ready), ("desired", desired)] {
                let labels = vec![("workload", name.clone()), ("state", state.into())];
                set(&self.rollout, labels, f64::from(*n));
            }
        }
    }

    /// The OpenMetrics text a scrape gets.
    pub fn text(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

/// The endpoint: a listener bound now (so a taken port is an error at
/// start, naming the address) and the facts it serves.
pub struct Exporter {
    metrics: Arc<Mutex<Metrics>>,
    pub addr: SocketAddr,
    server: tokio::task::JoinHandle<()>,
}

impl Exporter {
    pub async fn bind(addr: SocketAddr) -> Result<Exporter> {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("--metrics: cannot listen on {addr}"))?;
        let addr = listener.local_addr()?;
        let metrics = Arc::new(Mutex::new(Metrics::default()));
        let served = metrics.clone();
        let server = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let m = served.clone();
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req| {
                        let m = m.clone();
                        async move { Ok::<_, std::convert::Infallible>(respond(&m, &req)) }
                    });
                    let io = hyper_util::rt::TokioIo::new(stream);
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(io, svc)
                        .await;
                });
            }
        });
        Ok(Exporter {
            metrics,
            addr,
            server,
        })
    }

    /// The facts of `model`, for the next scrape.
    pub fn update(&self, model: &crate::model::Model) {
        let f = facts(model);
        if let Ok(m) = self.metrics.lock() {
            m.update(&f);
        }
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        self.server.abort();
    }
}

fn respond<B>(
    m: &Mutex<Metrics>,
    req: &hyper::Request<B>,
) -> hyper::Response<http_body_util::Full<bytes::Bytes>> {
    let (status, kind, body) = match (req.method(), req.uri().path()) {
        (&hyper::Method::GET, "/metrics") => match m.lock() {
            Ok(m) => (
                200,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
                m.text(),
            ),
            Err(_) => (500, "text/plain", "metrics unavailable\n".to_string()),
        },
        _ => (
            404,
            "text/plain",
            "cutover serves /metrics only\n".to_string(),
        ),
    };
    let mut resp = hyper::Response::new(http_body_util::Full::new(bytes::Bytes::from(body)));
    *resp.status_mut() = hyper::StatusCode::from_u16(status).unwrap_or_default();
    if let Ok(v) = hyper::header::HeaderValue::from_str(kind) {
        resp.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_default_to_loopback() {
        assert_eq!(parse_addr("9187").unwrap().to_string(), "127.0.0.1:9187");
        assert_eq!(parse_addr("0.0.0.0:9").unwrap().to_string(), "0.0.0.0:9");
        assert!(parse_addr("nine").unwrap_err().contains("not a port"));
    }

    #[test]
    fn absent_facts_have_no_series_and_present_ones_their_value() {
        let m = Metrics::default();
        let mut f = Facts {
            lag_bytes: Some(4096),
            lag_seconds: Some(0.25),
            phase: "CUTOVER".into(),
            checkpoint: Some(("Z".into(), "Freeze writes".into(), "running")),
            freeze: Some((42, 300, false)),
            source_writes_per_second: Some(500.0),
            rollout: vec![("app".into(), 1, 2, 3)],
            ..Facts::default()
        };
        m.update(&f);
        let text = m.text();
        for line in [
            "cutover_replication_lag_bytes 4096.0",
            "cutover_replication_lag_seconds 0.25",
            "cutover_phase{phase=\"CUTOVER\"} 1.0",
            "cutover_checkpoint{key=\"Z\",title=\"Freeze writes\",state=\"running\"} 1.0",
            "cutover_freeze_window_seconds 42.0",
            "cutover_freeze_budget_seconds 300.0",
            "cutover_writes_frozen 1.0",
            "cutover_writes_per_second{side=\"source\"} 500.0",
            "cutover_rollout_pods{workload=\"app\",state=\"desired\"} 3.0",
            "cutover_sample_stale{side=\"source\"} 0.0",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} not in\n{text}");
        }
        // Stale: the lag's series goes, it is not repeated old.
        f.lag_bytes = None;
        f.source_stale = true;
        f.freeze = None;
        m.update(&f);
        let text = m.text();
        assert!(!text.contains("cutover_replication_lag_bytes "), "{text}");
        assert!(text.contains("cutover_sample_stale{side=\"source\"} 1.0"));
        assert!(text.contains("cutover_writes_frozen 0.0"));
        assert!(text.ends_with("# EOF\n"));
    }
}
