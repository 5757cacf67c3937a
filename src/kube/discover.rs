//! Every workload that uses the database, found from the config object
//! its pods reference (env `valueFrom`, `envFrom`, volumes, projected
//! volumes), not from a hand-written list: Deployments, StatefulSets,
//! CronJobs and Jobs, in the config's namespace and the others it names.
//! A pod reads an env reference when it starts, so a pod that started
//! before the switch still has the old value; a mounted file is updated by
//! the kubelet, but the application must read it again — both count as
//! the old config until the pod is replaced.

use std::collections::BTreeMap;

use anyhow::Result;
use chrono::{DateTime, Utc};
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{Pod, PodSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::api::{Api, ListParams};
use kube::Client;
use serde::{Deserialize, Serialize};

use super::{bounded, ConfigObject};

/// How often the search runs, and how often an unchanged result is sent
/// again (so a guard knows it is current).
pub const EVERY_S: u64 = 2;
pub const RESEND_S: u64 = 10;

/// A workload that references the config object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigUser {
    /// `deployment`, `statefulset`, `cronjob` or `job`.
    pub kind: String,
    pub namespace: String,
    pub name: String,
    /// How its pod template refers to the object: `env DATABASE_URL`,
    /// `envFrom`, `volume db`.
    pub via: Vec<String>,
    /// Its live pods and when each started (None: not started yet).
    pub pods: Vec<UserPod>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserPod {
    pub name: String,
    pub started: Option<DateTime<Utc>>,
}

impl ConfigUser {
    /// `deployment/app` (with its namespace when it is not `ns`).
    pub fn describe(&self, ns: &str) -> String {
        if self.namespace == ns {
            format!("{}/{}", self.kind, self.name)
        } else {
            format!("{}/{} in {}", self.kind, self.name, self.namespace)
        }
    }

    /// Its pods that started before `at` — in whole seconds, as the API
    /// gives a pod's start — or have not started yet (a pod not started
    /// reads the object when it does, but whether that is after `at` is
    /// not known until then).
    pub fn pods_before(&self, at: DateTime<Utc>) -> Vec<&UserPod> {
        use chrono::SubsecRound;
        let at = at.trunc_subsecs(0);
        self.pods
            .iter()
            .filter(|p| p.started.is_none_or(|s| s < at))
            .collect()
    }
}

/// How `spec` refers to `obj` (a ConfigMap or a Secret; a Service is not
/// referenced by pods).
pub fn references(spec: &PodSpec, obj: &ConfigObject) -> Vec<String> {
    let (want, secret) = match obj {
        ConfigObject::ConfigMap(n) => (n.as_str(), false),
        ConfigObject::Secret(n) => (n.as_str(), true),
        ConfigObject::Service(_) => return vec![],
    };
    let mut via = Vec::new();
    let containers = spec
        .init_containers
        .iter()
        .flatten()
        .chain(spec.containers.iter());
    for c in containers {
        for e in c.env.iter().flatten() {
            let Some(from) = &e.value_from else { continue };
            let hit = if secret {
                from.secret_key_ref.as_ref().map(|r| r.name.as_str())
            } else {
                from.config_map_key_ref.as_ref().map(|r| r.name.as_str())
            } == Some(want);
            if hit {
                via.push(format!("env {}", e.name));
            }
        }
        for e in c.env_from.iter().flatten() {
            let name = if secret {
                e.secret_ref.as_ref().map(|r| r.name.as_str())
            } else {
                e.config_map_ref.as_ref().map(|r| r.name.as_str())
            };
            if name == Some(want) {
                via.push("envFrom".into());
            }
        }
    }
    for v in spec.volumes.iter().flatten() {
        let direct = if secret {
            v.secret.as_ref().and_then(|s| s.secret_name.as_deref())
        } else {
            v.config_map.as_ref().map(|c| c.name.as_str())
        } == Some(want);
        let projected = v.projected.as_ref().is_some_and(|p| {
            p.sources.iter().flatten().any(|s| {
                let name = if secret {
                    s.secret.as_ref().map(|r| r.name.as_str())
                } else {
                    s.config_map.as_ref().map(|r| r.name.as_str())
                };
                name == Some(want)
            })
        });
        if direct || projected {
            via.push(format!("volume {}", v.name));
        }
    }
    via.dedup();
    via
}

/// `a=b,c=d` of a selector's matchLabels (None: it selects by expressions
/// only, which this does not follow).
fn selector(s: Option<&LabelSelector>) -> Option<String> {
    let labels: &BTreeMap<String, String> = s?.match_labels.as_ref()?;
    (!labels.is_empty()).then(|| {
        labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",")
    })
}

fn started(p: &Pod) -> Option<DateTime<Utc>> {
    let t = p.status.as_ref()?.start_time.as_ref()?.0;
    DateTime::from_timestamp(t.as_second(), t.subsec_nanosecond().max(0) as u32)
}

fn live(p: &Pod) -> bool {
    p.metadata.deletion_timestamp.is_none()
        && p.status
            .as_ref()
            .and_then(|s| s.phase.as_deref())
            .is_none_or(|ph| ph == "Pending" || ph == "Running")
}

/// One list call; a kind the API server does not serve (404: an older
/// cluster without it) lists nothing.
async fn list<K>(api: Api<K>, what: &str, lp: &ListParams) -> Result<Vec<K>>
where
    K: Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    bounded(what, async {
        match api.list(lp).await {
            Ok(l) => Ok(l.items),
            Err(kube::Error::Api(e)) if e.code == 404 => Ok(vec![]),
            Err(e) => Err(anyhow::Error::from(e).context(what.to_string())),
        }
    })
    .await
}

/// Every workload in `namespaces` whose pod template references `obj`,
/// with its live pods.
pub async fn discover(
    client: &Client,
    namespaces: &[String],
    obj: &ConfigObject,
) -> Result<Vec<ConfigUser>> {
    if matches!(obj, ConfigObject::Service(_)) {
        return Ok(vec![]);
    }
    let all = ListParams::default();
    let mut found = Vec::new();
    for ns in namespaces {
        let c = client.clone();
        let mut templates: Vec<(&str, String, Option<PodSpec>, Option<String>)> = Vec::new();
        for d in list(
            Api::<Deployment>::namespaced(c.clone(), ns),
            &format!("listing deployments in {ns}"),
            &all,
        )
        .await?
        {
            templates.push((
                "deployment",
                d.metadata.name.clone().unwrap_or_default(),
                d.spec.template.spec.clone(),
                selector(Some(&d.spec.selector)),
            ));
        }
        for d in list(
            Api::<StatefulSet>::namespaced(c.clone(), ns),
            &format!("listing statefulsets in {ns}"),
            &all,
        )
        .await?
        {
            templates.push((
                "statefulset",
                d.metadata.name.clone().unwrap_or_default(),
                d.spec.template.spec.clone(),
                selector(Some(&d.spec.selector)),
            ));
        }
        for j in list(
            Api::<CronJob>::namespaced(c.clone(), ns),
            &format!("listing cronjobs in {ns}"),
            &all,
        )
        .await?
        {
            // Its runs are Jobs of their own (listed below); the CronJob
            // itself has no pods: its next run reads the config then.
            templates.push((
                "cronjob",
                j.metadata.name.clone().unwrap_or_default(),
                j.spec
                    .job_template
                    .spec
                    .as_ref()
                    .and_then(|s| s.template.spec.clone()),
                None,
            ));
        }
        for j in list(
            Api::<Job>::namespaced(c.clone(), ns),
            &format!("listing jobs in {ns}"),
            &all,
        )
        .await?
        {
            let name = j.metadata.name.clone().unwrap_or_default();
            templates.push((
                "job",
                name.clone(),
                j.spec.as_ref().and_then(|s| s.template.spec.clone()),
                Some(format!("job-name={name}")),
            ));
        }
        for (kind, name, spec, sel) in templates {
            let Some(spec) = spec else { continue };
            let via = references(&spec, obj);
            if via.is_empty() {
                continue;
            }
            let pods = match sel {
                Some(sel) => list(
                    Api::<Pod>::namespaced(c.clone(), ns),
                    &format!("listing {kind}/{name}'s pods in {ns}"),
                    &ListParams::default().labels(&sel),
                )
                .await?
                .iter()
                .filter(|p| live(p))
                .map(|p| UserPod {
                    name: p.metadata.name.clone().unwrap_or_default(),
                    started: started(p),
                })
                .collect(),
                None => vec![],
            };
            found.push(ConfigUser {
                kind: kind.into(),
                namespace: ns.clone(),
                name,
                via,
                pods,
            });
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(v: serde_json::Value) -> PodSpec {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn env_env_from_and_volumes_are_references() {
        let s = spec(serde_json::json!({
            "containers": [{
                "name": "app",
                "env": [
                    {"name": "DATABASE_URL", "valueFrom": {"configMapKeyRef": {"name": "app-db", "key": "url"}}},
                    {"name": "OTHER", "valueFrom": {"configMapKeyRef": {"name": "other", "key": "x"}}},
                    {"name": "PLAIN", "value": "x"},
                ],
                "envFrom": [{"configMapRef": {"name": "app-db"}}, {"secretRef": {"name": "app-db"}}],
            }],
            "volumes": [
                {"name": "db", "configMap": {"name": "app-db"}},
                {"name": "all", "projected": {"sources": [{"configMap": {"name": "app-db"}}]}},
                {"name": "s", "secret": {"secretName": "app-db"}},
            ],
        }));
        assert_eq!(
            references(&s, &ConfigObject::ConfigMap("app-db".into())),
            ["env DATABASE_URL", "envFrom", "volume db", "volume all"]
        );
        assert_eq!(
            references(&s, &ConfigObject::Secret("app-db".into())),
            ["envFrom", "volume s"]
        );
        assert!(references(&s, &ConfigObject::ConfigMap("nope".into())).is_empty());
        assert!(references(&s, &ConfigObject::Service("app-db".into())).is_empty());
    }

    #[test]
    fn pods_before_the_switch_are_the_old_config() {
        let at = |s: i64| DateTime::from_timestamp(s, 0);
        let u = ConfigUser {
            kind: "job".into(),
            namespace: "batch".into(),
            name: "report".into(),
            via: vec!["env DATABASE_URL".into()],
            pods: vec![
                UserPod {
                    name: "a".into(),
                    started: at(100),
                },
                UserPod {
                    name: "b".into(),
                    started: at(300),
                },
                UserPod {
                    name: "c".into(),
                    started: None,
                },
            ],
        };
        let names: Vec<&str> = u
            .pods_before(at(200).unwrap())
            .iter()
            .map(|p| p.name.as_str())
            .collect();
        assert_eq!(names, ["a", "c"]);
        assert_eq!(u.describe("shop"), "job/report in batch");
        assert_eq!(u.describe("batch"), "job/report");
    }
}
