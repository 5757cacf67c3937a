//! The Kubernetes collector: one watcher per configured Deployment, turned into
//! session events. Watch, not poll: a pod turning ready reaches the pane as
//! soon as the API server says so.

use std::sync::Arc;

use futures::StreamExt;
use tokio::sync::mpsc::Sender;

use crate::config::{Config, KubeCfg};
use std::time::{Duration, Instant};

use crate::kube::{bounded, connect, ping, watch_workload, Target};
use crate::pg::collector::backoff;
use crate::session::EventKind;

pub fn target(k: &KubeCfg) -> Target {
    match &k.kubeconfig {
        Some(path) => Target::Kubeconfig {
            path: path.clone(),
            context: k.context.clone(),
            namespace: k.namespace.clone(),
        },
        None => Target::Inferred {
            context: k.context.clone(),
            namespace: k.namespace.clone(),
        },
    }
}

/// How often the API server is asked whether it still answers while the
/// watches are quiet, and how long it has to answer.
const PROBE_EVERY: Duration = Duration::from_secs(2);
const PROBE_DEADLINE: Duration = Duration::from_secs(3);

/// Runs until the receiver is gone; reconnects with backoff.
///
/// A watch that receives nothing cannot tell a quiet workload from a frozen
/// API server, so the watches run beside a liveness probe: while the probe
/// answers, `KubeAlive` tells the model the watched state is current (at
/// most every third of the stale limit); when it does not, the watches are dropped,
/// the pane turns stale, and everything reconnects.
pub async fn run(config: Arc<Config>, tx: Sender<EventKind>) {
    let Some(k) = config.kubernetes.clone() else {
        return;
    };
    let target = target(&k);
    let alive_every =
        Duration::from_secs_f64((config.thresholds.stale_after_seconds / 3.0).clamp(0.5, 30.0));
    let mut failures: u32 = 0;
    loop {
        let result = async {
            let conn = connect(&target).await?;
            let mut streams = Vec::new();
            for d in &k.deployments {
                streams.push(
                    bounded(
                        &format!("watching deployment/{d}"),
                        watch_workload(&conn.client, &conn.namespace, d),
                    )
                    .await?
                    .boxed(),
                );
            }
            anyhow::Ok((conn, futures::stream::select_all(streams)))
        }
        .await;
        let error = match result {
            Ok((conn, mut events)) => {
                let mut probe = tokio::time::interval(PROBE_EVERY);
                probe.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                let mut last_alive: Option<Instant> = None;
                loop {
                    let ev = tokio::select! {
                        item = events.next() => match item {
                            Some(Ok(snap)) => {
                                failures = 0;
                                EventKind::WorkloadSampled(snap)
                            }
                            Some(Err(error)) => EventKind::KubeFailed { error },
                            None => break "the watch ended".to_string(),
                        },
                        _ = probe.tick() => match ping(&conn.client, PROBE_DEADLINE).await {
                            Ok(()) if last_alive.is_none_or(|t| t.elapsed() >= alive_every) => {
                                last_alive = Some(Instant::now());
                                EventKind::KubeAlive
                            }
                            Ok(()) => continue,
                            Err(e) => break format!("{e:#}; watches restarted"),
                        },
                    };
                    if tx.send(ev).await.is_err() {
                        return;
                    }
                }
            }
            Err(e) => format!("{e:#}"),
        };
        if tx.send(EventKind::KubeFailed { error }).await.is_err() {
            return;
        }
        failures += 1;
        tokio::time::sleep(backoff(failures)).await;
    }
}
