//! The Kubernetes collector: one watcher per configured Deployment, turned into
//! session events. Watch, not poll: a pod turning ready reaches the pane as
//! soon as the API server says so.

use std::sync::Arc;

use futures::StreamExt;
use tokio::sync::mpsc::Sender;

use crate::config::{Config, KubeCfg};
use crate::kube::{connect, watch_workload, Target};
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

/// Runs until the receiver is gone; reconnects with backoff.
pub async fn run(config: Arc<Config>, tx: Sender<EventKind>) {
    let Some(k) = config.kubernetes.clone() else {
        return;
    };
    let target = target(&k);
    let mut failures: u32 = 0;
    loop {
        let result = async {
            let conn = connect(&target).await?;
            let mut streams = Vec::new();
            for d in &k.deployments {
                streams.push(
                    watch_workload(&conn.client, &conn.namespace, d)
                        .await?
                        .boxed(),
                );
            }
            anyhow::Ok(futures::stream::select_all(streams))
        }
        .await;
        match result {
            Ok(mut events) => {
                while let Some(item) = events.next().await {
                    let ev = match item {
                        Ok(snap) => {
                            failures = 0;
                            EventKind::WorkloadSampled(snap)
                        }
                        Err(error) => EventKind::KubeFailed { error },
                    };
                    if tx.send(ev).await.is_err() {
                        return;
                    }
                }
            }
            Err(e) => {
                if tx
                    .send(EventKind::KubeFailed {
                        error: format!("{e:#}"),
                    })
                    .await
                    .is_err()
                {
                    return;
                }
            }
        }
        failures += 1;
        tokio::time::sleep(backoff(failures)).await;
    }
}
