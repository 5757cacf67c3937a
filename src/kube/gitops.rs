//! Changes made through Git: where a GitOps controller (Argo CD, Flux)
//! applies merged pull requests and nothing else may change the cluster,
//! the console shows the change to make and waits until the cluster shows
//! it, instead of patching. This module is the Kubernetes side of that: the
//! change as a manifest diff (values as fingerprints, never the value), the
//! wait on a watch of the config object, and who applied it, as far as the
//! object says.

use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::ByteString;
use kube::api::{Api, ApiResource, DynamicObject};
use kube::runtime::{watcher, WatchStreamExt};
use kube::Client;

use super::{fingerprint, ConfigObject};

/// The change to make in the manifest of `object`: a unified diff of the
/// key's line, each value shown as `<sha256:…>` (None: the key absent),
/// with where the new value comes from when known.
pub fn manifest_change(
    object: &ConfigObject,
    namespace: &str,
    key: &str,
    was: Option<&str>,
    want: Option<&str>,
    value_from: Option<&str>,
) -> Vec<String> {
    let (kind, name, path): (&str, &str, &[&str]) = match object {
        ConfigObject::ConfigMap(n) => ("ConfigMap", n, &["data:"]),
        // stringData: the manifest holds the value as text (or a sealed
        // or external secret does); the controller stores it encoded.
        ConfigObject::Secret(n) => ("Secret", n, &["stringData:"]),
        ConfigObject::Service(n) => ("Service", n, &["spec:", "  selector:"]),
    };
    let indent = "  ".repeat(path.len());
    let shown = |fp: &str| format!("{indent}{key}: <sha256:{fp}>");
    let mut out = vec![
        format!("--- {kind} {namespace}/{name} (in the cluster now)"),
        format!("+++ {kind} {namespace}/{name} (after the pull request is applied)"),
    ];
    out.extend(path.iter().map(|p| format!("  {p}")));
    if let Some(w) = was {
        out.push(format!("-{}", shown(w)));
    }
    match (want, value_from) {
        (Some(w), Some(from)) => out.push(format!("+{}   # the value of {from}", shown(w))),
        (Some(w), None) => out.push(format!("+{}", shown(w))),
        (None, _) => {}
    }
    out
}

/// How [`await_key`] ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Awaited {
    /// The key holds the value waited for.
    Seen {
        waited_ms: u64,
        /// Who applied it and when, as far as the object says.
        by: Option<String>,
        /// It held the value already when the wait began (the first list).
        already: bool,
    },
    /// `timeout` passed; what the key held last (its fingerprint; None: absent).
    TimedOut { now: Option<String>, waited_ms: u64 },
}

fn resource(object: &ConfigObject) -> (ApiResource, &str) {
    match object {
        ConfigObject::ConfigMap(n) => (ApiResource::erase::<ConfigMap>(&()), n),
        ConfigObject::Secret(n) => (ApiResource::erase::<Secret>(&()), n),
        ConfigObject::Service(n) => (ApiResource::erase::<Service>(&()), n),
    }
}

/// The value of `key` in a watched object (None: absent).
pub fn key_value(
    object: &ConfigObject,
    data: &serde_json::Value,
    key: &str,
) -> Result<Option<String>> {
    let v = match object {
        ConfigObject::ConfigMap(_) => data["data"].get(key),
        ConfigObject::Secret(_) => data["data"].get(key),
        ConfigObject::Service(_) => data["spec"]["selector"].get(key),
    };
    let Some(v) = v.filter(|v| !v.is_null()) else {
        return Ok(None);
    };
    match object {
        ConfigObject::Secret(_) => {
            let bytes: ByteString = serde_json::from_value(v.clone())
                .map_err(|_| anyhow!("{key} of {object} is not base64"))?;
            String::from_utf8(bytes.0)
                .map(Some)
                .map_err(|_| anyhow!("{key} of {object} is not UTF-8"))
        }
        _ => v
            .as_str()
            .map(|s| Some(s.to_string()))
            .ok_or_else(|| anyhow!("{key} of {object} is not a string")),
    }
}

/// Who last changed the object and when, from its managedFields (the API
/// server's record of each writer), and the GitOps controller that owns
/// it, from the annotations and labels Argo CD and Flux set.
pub fn applied_by(meta: &ObjectMeta) -> Option<String> {
    let mut parts = Vec::new();
    let newest = meta
        .managed_fields
        .iter()
        .flatten()
        .filter(|m| m.time.is_some())
        .max_by_key(|m| m.time.as_ref().map(|t| t.0));
    if let Some(m) = newest {
        let who = m.manager.as_deref().unwrap_or("an unnamed manager");
        let op = m.operation.as_deref().unwrap_or("a write");
        let at = m
            .time
            .as_ref()
            .map(|t| {
                chrono::DateTime::from_timestamp(t.0.as_second(), 0)
                    .map(|d| d.format("%H:%M:%S UTC").to_string())
                    .unwrap_or_default()
            })
            .unwrap_or_default();
        parts.push(format!("{who} ({op}) at {at}"));
    }
    let ann = |k: &str| meta.annotations.as_ref().and_then(|a| a.get(k));
    let label = |k: &str| meta.labels.as_ref().and_then(|l| l.get(k));
    if let Some(id) = ann("argocd.argoproj.io/tracking-id") {
        parts.push(format!("Argo CD, tracking-id {id}"));
    } else if let Some(app) = label("app.kubernetes.io/instance").filter(|_| {
        label("app.kubernetes.io/managed-by").is_some_and(|m| m.eq_ignore_ascii_case("argocd"))
    }) {
        parts.push(format!("Argo CD application {app}"));
    }
    for (what, prefix) in [
        ("Kustomization", "kustomize.toolkit.fluxcd.io"),
        ("HelmRelease", "helm.toolkit.fluxcd.io"),
    ] {
        let name = label(&format!("{prefix}/name")).or(ann(&format!("{prefix}/name")));
        let ns = label(&format!("{prefix}/namespace")).or(ann(&format!("{prefix}/namespace")));
        if let Some(name) = name {
            let ns = ns.map(|n| format!("{n}/")).unwrap_or_default();
            parts.push(format!("Flux {what} {ns}{name}"));
        }
    }
    (!parts.is_empty()).then(|| parts.join("; "))
}

/// Watches `object` until its `key` holds the value whose fingerprint is
/// `want` (None: until the key is absent), or `timeout` passes. Reads only.
/// A watch that fails is retried with backoff within the timeout.
pub async fn await_key(
    client: &Client,
    ns: &str,
    object: &ConfigObject,
    key: &str,
    want: Option<&str>,
    timeout: Duration,
) -> Result<Awaited> {
    let (ar, name) = resource(object);
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &ar);
    let cfg = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let mut stream = watcher::watcher(api, cfg).default_backoff().boxed();
    let start = Instant::now();
    let ms = |start: Instant| start.elapsed().as_millis() as u64;
    // What the key holds, by fingerprint, and the object it was read from.
    let mut now: Option<String> = None;
    let mut listed = false;
    // Still in the first list: what the object held when the wait began.
    let mut first = true;
    loop {
        let left = timeout.saturating_sub(start.elapsed());
        let next = match tokio::time::timeout(left, stream.try_next()).await {
            Err(_) => {
                return Ok(Awaited::TimedOut {
                    now,
                    waited_ms: ms(start),
                })
            }
            Ok(r) => r.with_context(|| format!("watching {object} in {ns}"))?,
        };
        let Some(event) = next else {
            bail!("the watch on {object} in {ns} ended");
        };
        let (obj, gone) = match event {
            watcher::Event::InitApply(o) => (Some(o), false),
            watcher::Event::Apply(o) => {
                first = false;
                (Some(o), false)
            }
            watcher::Event::Delete(o) => {
                first = false;
                (Some(o), true)
            }
            watcher::Event::Init => {
                listed = false;
                continue;
            }
            watcher::Event::InitDone => {
                // Listed and nothing there: the object is absent.
                if !listed {
                    now = None;
                    if want.is_none() {
                        return Ok(Awaited::Seen {
                            waited_ms: ms(start),
                            by: None,
                            already: first,
                        });
                    }
                }
                first = false;
                continue;
            }
        };
        let Some(obj) = obj else { continue };
        listed = true;
        let value = if gone {
            None
        } else {
            key_value(object, &obj.data, key)?
        };
        now = value.as_deref().map(fingerprint);
        if now.as_deref() == want {
            return Ok(Awaited::Seen {
                waited_ms: ms(start),
                by: applied_by(&obj.metadata),
                already: first,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_change_shows_fingerprints_and_where_the_value_comes_from() {
        let cm = ConfigObject::ConfigMap("app-db".into());
        let got = manifest_change(
            &cm,
            "shop",
            "DATABASE_URL",
            Some("d5b18561"),
            Some("08ed26d8"),
            Some("$NEW_URL"),
        );
        assert_eq!(
            got,
            [
                "--- ConfigMap shop/app-db (in the cluster now)",
                "+++ ConfigMap shop/app-db (after the pull request is applied)",
                "  data:",
                "-  DATABASE_URL: <sha256:d5b18561>",
                "+  DATABASE_URL: <sha256:08ed26d8>   # the value of $NEW_URL",
            ]
        );
        let svc = ConfigObject::Service("db".into());
        let got = manifest_change(&svc, "shop", "role", Some("aa"), None, None);
        assert_eq!(
            &got[2..],
            ["  spec:", "    selector:", "-    role: <sha256:aa>"]
        );
    }

    #[test]
    fn key_values_of_each_kind() {
        let cm = ConfigObject::ConfigMap("a".into());
        let sec = ConfigObject::Secret("a".into());
        let svc = ConfigObject::Service("a".into());
        let d = json!({"data": {"K": "v"}});
        assert_eq!(key_value(&cm, &d, "K").unwrap().as_deref(), Some("v"));
        assert_eq!(key_value(&cm, &d, "other").unwrap(), None);
        let d = json!({"data": {"K": "aG9zdD1kYg=="}});
        assert_eq!(
            key_value(&sec, &d, "K").unwrap().as_deref(),
            Some("host=db")
        );
        let d = json!({"data": {"K": "***"}});
        assert!(key_value(&sec, &d, "K").is_err());
        let d = json!({"spec": {"selector": {"role": "blue"}}});
        assert_eq!(
            key_value(&svc, &d, "role").unwrap().as_deref(),
            Some("blue")
        );
    }

    #[test]
    fn applied_by_names_the_newest_writer_and_the_controller() {
        let meta: ObjectMeta = serde_json::from_value(json!({
            "name": "app-db",
            "managedFields": [
                {"manager": "cutover", "operation": "Update", "time": "2026-12-01T02:00:00Z"},
                {"manager": "argocd-controller", "operation": "Apply", "time": "2026-12-01T02:31:05Z"},
            ],
            "annotations": {"argocd.argoproj.io/tracking-id": "shop:/ConfigMap:shop/app-db"},
        }))
        .unwrap();
        assert_eq!(
            applied_by(&meta).unwrap(),
            "argocd-controller (Apply) at 02:31:05 UTC; Argo CD, tracking-id shop:/ConfigMap:shop/app-db"
        );
        let meta: ObjectMeta = serde_json::from_value(json!({
            "labels": {"kustomize.toolkit.fluxcd.io/name": "apps",
                       "kustomize.toolkit.fluxcd.io/namespace": "flux-system"},
        }))
        .unwrap();
        assert_eq!(
            applied_by(&meta).unwrap(),
            "Flux Kustomization flux-system/apps"
        );
        assert_eq!(applied_by(&ObjectMeta::default()), None);
    }
}
