//! StatefulSets that use the database (found by [`super::discover`]):
//! restarted as `kubectl rollout restart` does, and their rolling update
//! followed by kubectl's `rollout status` rules for StatefulSets.

use std::time::Duration;

use anyhow::Result;
use k8s_openapi::api::apps::v1::StatefulSet;
use kube::api::Api;
use kube::Client;

use super::{Restart, RolloutOutcome, RolloutState};

/// `kubectl rollout restart statefulset/<name>`.
pub async fn restart(client: &Client, ns: &str, name: &str) -> Result<Restart> {
    let api: Api<StatefulSet> = Api::namespaced(client.clone(), ns);
    super::patch_restart(api, &format!("statefulset {ns}/{name}"), name).await
}

/// kubectl's `rollout status` logic for StatefulSets (RollingUpdate; an
/// `OnDelete` one never rolls by itself, which is said as progress that
/// does not end).
pub fn rollout_state(s: &StatefulSet) -> RolloutState {
    let spec = &s.spec;
    let strategy = spec
        .update_strategy
        .as_ref()
        .and_then(|u| u.type_.as_deref())
        .unwrap_or("RollingUpdate");
    if strategy != "RollingUpdate" {
        return RolloutState::Progressing {
            message: format!("updateStrategy {strategy}: its pods are replaced only when deleted"),
        };
    }
    let Some(st) = &s.status else {
        return RolloutState::Pending;
    };
    if st.observed_generation.unwrap_or(0) == 0 || s.metadata.generation > st.observed_generation {
        return RolloutState::Pending;
    }
    let want = spec.replicas.unwrap_or(1);
    let ready = st.ready_replicas.unwrap_or(0);
    if ready < want {
        return RolloutState::Progressing {
            message: format!("waiting for {} pods to be ready", want - ready),
        };
    }
    let partition = spec
        .update_strategy
        .as_ref()
        .and_then(|u| u.rolling_update.as_ref())
        .and_then(|r| r.partition)
        .unwrap_or(0);
    let updated = st.updated_replicas.unwrap_or(0);
    if partition > 0 {
        return if updated < want - partition {
            RolloutState::Progressing {
                message: format!(
                    "partitioned roll out: {updated} out of {} new pods have been updated",
                    want - partition
                ),
            }
        } else {
            RolloutState::Complete
        };
    }
    if st.update_revision != st.current_revision {
        return RolloutState::Progressing {
            message: format!(
                "{updated} pods at revision {}",
                st.update_revision.as_deref().unwrap_or("?")
            ),
        };
    }
    RolloutState::Complete
}

/// Watches the StatefulSet until its rolling update completes or `timeout`
/// passes (StatefulSets have no progress deadline).
pub async fn wait_rollout(
    client: &Client,
    ns: &str,
    name: &str,
    min_generation: Option<i64>,
    timeout: Duration,
) -> Result<RolloutOutcome> {
    let api: Api<StatefulSet> = Api::namespaced(client.clone(), ns);
    super::watch_rollout(
        api,
        &format!("statefulset {ns}/{name}"),
        name,
        min_generation,
        timeout,
        rollout_state,
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sts(status: serde_json::Value) -> StatefulSet {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "ledger", "generation": 2},
            "spec": {
                "replicas": 3,
                "selector": {"matchLabels": {"app": "ledger"}},
                "serviceName": "ledger",
                "template": {"metadata": {"labels": {"app": "ledger"}}},
            },
            "status": status,
        }))
        .unwrap()
    }

    #[test]
    fn a_rolling_update_completes_when_every_pod_is_at_the_new_revision_and_ready() {
        let base = |observed: i64, ready: i64, cur: &str, upd: &str| {
            serde_json::json!({
                "replicas": 3, "observedGeneration": observed, "readyReplicas": ready,
                "updatedReplicas": 1, "currentRevision": cur, "updateRevision": upd,
            })
        };
        assert_eq!(
            rollout_state(&sts(base(1, 3, "a", "a"))),
            RolloutState::Pending
        );
        assert_eq!(
            rollout_state(&sts(base(2, 2, "a", "b"))),
            RolloutState::Progressing {
                message: "waiting for 1 pods to be ready".into()
            }
        );
        assert_eq!(
            rollout_state(&sts(base(2, 3, "a", "b"))),
            RolloutState::Progressing {
                message: "1 pods at revision b".into()
            }
        );
        assert_eq!(
            rollout_state(&sts(base(2, 3, "b", "b"))),
            RolloutState::Complete
        );
    }
}
