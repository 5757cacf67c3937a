//! The Kubernetes side of a cutover: connecting, checking access, switching
//! the application's database config and restarting its workloads, and a
//! watch of the workload turned into plain snapshots for the session log.
//!
//! Config values (connection strings) never reach logs or errors from here:
//! only their [`fingerprint`]s do.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use futures::{Stream, StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
use k8s_openapi::api::core::v1::{ConfigMap, Event, Pod, Secret, Service};
use k8s_openapi::ByteString;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::{reflector, watcher, WatchStreamExt};
use kube::Client;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};

mod access;
pub mod discover;
pub mod gitops;
pub mod pooler;
pub mod statefulset;
pub use access::{
    copy_job_access, discover_access, preflight, required_access, restart_patch_preview,
    switch_patch_preview, AccessCheck,
};

/// The annotation `kubectl rollout restart` sets on the pod template.
pub const RESTARTED_AT: &str = "kubectl.kubernetes.io/restartedAt";
/// The annotation the lab's app pods carry: fingerprint of their DB config.
pub const DB_CONFIG_ANNOTATION: &str = "cutover.dev/db-config";
const FIELD_MANAGER: &str = "cutover";

/// A short, stable fingerprint of a config value (first 8 hex digits of its
/// SHA-256), safe to log and show where the value itself must not appear.
pub fn fingerprint(value: &str) -> String {
    Sha256::digest(value.as_bytes())
        .iter()
        .take(4)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A single request to the API server (a GET, a PATCH, an access review)
/// that has not answered by then has failed: the server is stopped,
/// overloaded or unreachable, and nothing waits on it any longer.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// TCP connect to the API server.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Runs one API call under [`REQUEST_TIMEOUT`]; `what` names it for the error.
pub async fn bounded<T>(
    what: &str,
    fut: impl std::future::Future<Output = Result<T>>,
) -> Result<T> {
    bounded_by(REQUEST_TIMEOUT, what, fut).await
}

/// [`bounded`] with another deadline.
pub async fn bounded_by<T>(
    deadline: Duration,
    what: &str,
    fut: impl std::future::Future<Output = Result<T>>,
) -> Result<T> {
    match tokio::time::timeout(deadline, fut).await {
        Ok(r) => r,
        Err(_) => Err(anyhow!(
            "{what}: the Kubernetes API server did not answer within {} s",
            deadline.as_secs()
        )),
    }
}

/// Whether the API server answers at all: a GET of /version under `deadline`.
pub async fn ping(client: &Client, deadline: Duration) -> Result<()> {
    bounded_by(deadline, "GET /version", async {
        client
            .apiserver_version()
            .await
            .map(|_| ())
            .map_err(anyhow::Error::from)
    })
    .await
}

/// Where the cluster is and which namespace the workload lives in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Target {
    Kubeconfig {
        path: std::path::PathBuf,
        context: Option<String>,
        namespace: Option<String>,
    },
    /// The pod's service account, when cutover runs inside the cluster.
    InCluster { namespace: Option<String> },
    /// What kubectl would use: `$KUBECONFIG` (every file in it, merged) or
    /// `~/.kube/config`, else the in-cluster service account.
    Inferred {
        context: Option<String>,
        namespace: Option<String>,
    },
}

/// A connected client and the namespace to work in.
#[derive(Clone)]
pub struct Connection {
    pub client: Client,
    pub namespace: String,
    /// Context name (kubeconfig) or "in-cluster".
    pub context: String,
}

pub async fn connect(target: &Target) -> Result<Connection> {
    match target {
        Target::Kubeconfig {
            path,
            context,
            namespace,
        } => connect_kubeconfig(path, context.as_deref(), namespace.as_deref()).await,
        Target::InCluster { namespace } => connect_incluster(namespace.as_deref()),
        Target::Inferred { context, namespace } => match Kubeconfig::read() {
            Ok(kc) => {
                connect_with(
                    kc,
                    "the kubeconfig",
                    context.as_deref(),
                    namespace.as_deref(),
                )
                .await
            }
            Err(e) => connect_incluster(namespace.as_deref())
                .with_context(|| format!("no usable kubeconfig ({e})")),
        },
    }
}

fn connect_incluster(namespace: Option<&str>) -> Result<Connection> {
    let mut cfg = kube::Config::incluster().context("in-cluster Kubernetes config")?;
    cfg.connect_timeout = Some(CONNECT_TIMEOUT);
    let ns = namespace
        .map(str::to_string)
        .unwrap_or_else(|| cfg.default_namespace.clone());
    Ok(Connection {
        client: Client::try_from(cfg)?,
        namespace: ns,
        context: "in-cluster".into(),
    })
}

/// Connects with a kubeconfig file; `context` defaults to its current
/// context, `namespace` to the context's namespace (then `default`).
pub async fn connect_kubeconfig(
    path: &Path,
    context: Option<&str>,
    namespace: Option<&str>,
) -> Result<Connection> {
    let kc = Kubeconfig::read_from(path)
        .with_context(|| format!("reading kubeconfig {}", path.display()))?;
    connect_with(kc, &path.display().to_string(), context, namespace).await
}

/// `origin` names where the kubeconfig came from, for messages.
async fn connect_with(
    kc: Kubeconfig,
    origin: &str,
    context: Option<&str>,
    namespace: Option<&str>,
) -> Result<Connection> {
    let ctx_name = context
        .map(str::to_string)
        .or_else(|| kc.current_context.clone())
        .ok_or_else(|| anyhow!("{origin} has no current-context; name one"))?;
    let opts = KubeConfigOptions {
        context: Some(ctx_name.clone()),
        ..Default::default()
    };
    // An auth plugin run by the kubeconfig may hang like any network call.
    let mut cfg = bounded(&format!("context {ctx_name} in {origin}"), async {
        kube::Config::from_custom_kubeconfig(kc, &opts)
            .await
            .map_err(anyhow::Error::from)
    })
    .await
    .with_context(|| format!("context {ctx_name} in {origin}"))?;
    // Only the TCP connect: a watch legitimately reads nothing for minutes,
    // so requests are bounded one by one ([`bounded`]), not by a read timeout.
    cfg.connect_timeout = Some(CONNECT_TIMEOUT);
    let ns = namespace
        .map(str::to_string)
        .unwrap_or_else(|| cfg.default_namespace.clone());
    Ok(Connection {
        client: Client::try_from(cfg)?,
        namespace: ns,
        context: ctx_name,
    })
}

/// Answer of a SelfSubjectAccessReview.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Access {
    pub allowed: bool,
    /// Names verb, resource and scope; says why when denied.
    pub message: String,
}

/// `kubectl auth can-i`. `resource` may carry a group (`deployments.apps`)
/// and a subresource (`deployments/status`).
pub async fn can_i(
    client: &Client,
    verb: &str,
    resource: &str,
    ns: &str,
    name: Option<&str>,
) -> Result<Access> {
    let (res, sub) = match resource.split_once('/') {
        Some((r, s)) => (r, Some(s.to_string())),
        None => (resource, None),
    };
    let (res, group) = match res.split_once('.') {
        Some((r, g)) => (r.to_string(), g.to_string()),
        None => (res.to_string(), default_group(res).to_string()),
    };
    let review = SelfSubjectAccessReview {
        spec: SelfSubjectAccessReviewSpec {
            resource_attributes: Some(ResourceAttributes {
                verb: Some(verb.into()),
                group: Some(group.clone()),
                resource: Some(res.clone()),
                subresource: sub.clone(),
                namespace: Some(ns.into()),
                name: name.map(str::to_string),
                ..Default::default()
            }),
            ..Default::default()
        },
        ..Default::default()
    };
    let api: Api<SelfSubjectAccessReview> = Api::all(client.clone());
    let out = api
        .create(&PostParams::default(), &review)
        .await
        .with_context(|| format!("asking whether we may {verb} {resource} in {ns}"))?;
    let status = out.status.unwrap_or_default();
    let what = format!(
        "{verb} {}{}{} in namespace {ns}",
        res,
        sub.map(|s| format!("/{s}")).unwrap_or_default(),
        name.map(|n| format!(" \"{n}\"")).unwrap_or_default(),
    );
    let message = if status.allowed {
        format!("allowed: {what}")
    } else {
        let why = status
            .reason
            .filter(|r| !r.is_empty())
            .map(|r| format!(" ({r})"))
            .unwrap_or_default();
        format!(
            "not allowed to {what}{}{why}",
            if group.is_empty() {
                String::new()
            } else {
                format!(" [API group {group}]")
            }
        )
    };
    Ok(Access {
        allowed: status.allowed,
        message,
    })
}

fn default_group(resource: &str) -> &'static str {
    match resource {
        "deployments" | "replicasets" | "statefulsets" | "daemonsets" => "apps",
        _ => "",
    }
}

/// What [`rollout_restart`] did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Restart {
    pub deployment: String,
    pub restarted_at: String,
    /// metadata.generation after the patch; the rollout is done when
    /// status.observedGeneration reaches it and the replicas are updated.
    pub generation: Option<i64>,
}

/// The strategic merge patch `kubectl rollout restart` sends.
pub fn restart_patch(restarted_at: &str) -> serde_json::Value {
    json!({"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: restarted_at}}}}})
}

/// `kubectl rollout restart deploy/<name>`.
pub async fn rollout_restart(client: &Client, ns: &str, deployment: &str) -> Result<Restart> {
    let api: Api<Deployment> = Api::namespaced(client.clone(), ns);
    let d = api
        .get(deployment)
        .await
        .with_context(|| format!("reading deployment {ns}/{deployment}"))?;
    if d.spec.paused == Some(true) {
        bail!("deployment {ns}/{deployment} is paused; resume it before restarting");
    }
    patch_restart(api, &format!("deployment {ns}/{deployment}"), deployment).await
}

/// Sends [`restart_patch`] to `name` (`what` in messages), now.
pub(crate) async fn patch_restart<K>(api: Api<K>, what: &str, name: &str) -> Result<Restart>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let pp = PatchParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..Default::default()
    };
    let out = api
        .patch(name, &pp, &Patch::Strategic(&restart_patch(&at)))
        .await
        .with_context(|| format!("restarting {what}"))?;
    Ok(Restart {
        deployment: name.into(),
        restarted_at: at,
        generation: out.meta().generation,
    })
}

/// Where a Deployment's rollout stands, by kubectl's rules.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RolloutState {
    /// The controller has not seen the latest spec yet.
    Pending,
    Progressing {
        message: String,
    },
    Complete,
    /// Progressing=False with reason ProgressDeadlineExceeded.
    DeadlineExceeded {
        message: String,
    },
}

/// kubectl's `rollout status` logic for Deployments.
pub fn rollout_state(d: &Deployment) -> RolloutState {
    let name = d.metadata.name.as_deref().unwrap_or("");
    let Some(st) = &d.status else {
        return RolloutState::Pending;
    };
    if d.metadata.generation > st.observed_generation {
        return RolloutState::Pending;
    }
    let exceeded = st.conditions.iter().flatten().find(|c| {
        c.type_.as_deref() == Some("Progressing")
            && c.reason.as_deref() == Some("ProgressDeadlineExceeded")
    });
    if exceeded.is_some() {
        return RolloutState::DeadlineExceeded {
            message: format!("deployment \"{name}\" exceeded its progress deadline"),
        };
    }
    let want = d.spec.replicas.unwrap_or(1);
    let updated = st.updated_replicas.unwrap_or(0);
    let replicas = st.replicas.unwrap_or(0);
    let available = st.available_replicas.unwrap_or(0);
    let message = if updated < want {
        format!("{updated} out of {want} new replicas have been updated")
    } else if replicas > updated {
        format!(
            "{} old replicas are pending termination",
            replicas - updated
        )
    } else if available < updated {
        format!("{available} of {updated} updated replicas are available")
    } else {
        return RolloutState::Complete;
    };
    RolloutState::Progressing { message }
}

/// A Deployment's metadata.generation now.
pub async fn generation(client: &Client, ns: &str, deployment: &str) -> Result<Option<i64>> {
    let d = Api::<Deployment>::namespaced(client.clone(), ns)
        .get(deployment)
        .await
        .with_context(|| format!("reading deployment {ns}/{deployment}"))?;
    Ok(d.metadata.generation)
}

/// How [`wait_rollout`] ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RolloutOutcome {
    Complete {
        elapsed_ms: u64,
    },
    DeadlineExceeded {
        message: String,
        elapsed_ms: u64,
    },
    /// Our own timeout, with the last progress message.
    TimedOut {
        last: String,
        elapsed_ms: u64,
    },
}

/// Watches the Deployment until its rollout completes, its progress deadline
/// is exceeded, or `timeout` passes. `min_generation` (from [`Restart`])
/// guards against reading the state from before the restart as complete.
pub async fn wait_rollout(
    client: &Client,
    ns: &str,
    deployment: &str,
    min_generation: Option<i64>,
    timeout: Duration,
) -> Result<RolloutOutcome> {
    let api: Api<Deployment> = Api::namespaced(client.clone(), ns);
    watch_rollout(
        api,
        &format!("deployment {ns}/{deployment}"),
        deployment,
        min_generation,
        timeout,
        rollout_state,
    )
    .await
}

/// Watches object `name` (`what` in messages) until `state` says its
/// rollout is complete or past its deadline, or `timeout` passes; objects
/// older than `min_generation` are from before the restart and ignored.
pub(crate) async fn watch_rollout<K>(
    api: Api<K>,
    what: &str,
    name: &str,
    min_generation: Option<i64>,
    timeout: Duration,
    state: fn(&K) -> RolloutState,
) -> Result<RolloutOutcome>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + 'static,
{
    let cfg = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let mut stream = watcher::watcher(api, cfg)
        .default_backoff()
        .applied_objects()
        .boxed();
    let start = Instant::now();
    let mut last = "waiting for the controller".to_string();
    let ms = |start: Instant| start.elapsed().as_millis() as u64;
    loop {
        let left = timeout.saturating_sub(start.elapsed());
        let next = match tokio::time::timeout(left, stream.try_next()).await {
            Err(_) => {
                return Ok(RolloutOutcome::TimedOut {
                    last,
                    elapsed_ms: ms(start),
                })
            }
            Ok(r) => r.with_context(|| format!("watching {what}"))?,
        };
        let Some(obj) = next else {
            bail!("the watch on {what} ended");
        };
        if min_generation.is_some_and(|g| obj.meta().generation < Some(g)) {
            continue;
        }
        match state(&obj) {
            RolloutState::Complete => {
                return Ok(RolloutOutcome::Complete {
                    elapsed_ms: ms(start),
                })
            }
            RolloutState::DeadlineExceeded { message } => {
                return Ok(RolloutOutcome::DeadlineExceeded {
                    message,
                    elapsed_ms: ms(start),
                })
            }
            RolloutState::Progressing { message } => last = message,
            RolloutState::Pending => {}
        }
    }
}

/// The object holding the application's database config.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConfigObject {
    ConfigMap(String),
    Secret(String),
    /// A blue/green switch: the "key" is a label key of the Service's
    /// `spec.selector` and the value that label's value.
    Service(String),
}

impl fmt::Display for ConfigObject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigObject::ConfigMap(n) => write!(f, "configmap/{n}"),
            ConfigObject::Secret(n) => write!(f, "secret/{n}"),
            ConfigObject::Service(n) => write!(f, "service/{n}"),
        }
    }
}

/// A config value kept in memory for rollback; Debug shows the fingerprint.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretValue(String);

impl SecretValue {
    pub fn expose(&self) -> &str {
        &self.0
    }
    pub fn fingerprint(&self) -> String {
        fingerprint(&self.0)
    }
}

impl fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretValue(sha256:{})", self.fingerprint())
    }
}

/// What [`switch_config_key`] changed, with what it takes to undo it.
#[derive(Debug, Clone)]
pub struct ConfigSwitch {
    pub object: ConfigObject,
    pub key: String,
    /// None when the key did not exist before.
    pub previous_fingerprint: Option<String>,
    pub new_fingerprint: String,
    /// False when the key already held the new value (nothing was patched).
    pub changed: bool,
    previous: Option<SecretValue>,
}

impl ConfigSwitch {
    pub fn previous_value(&self) -> Option<&SecretValue> {
        self.previous.as_ref()
    }

    /// This switch, undone to `previous` instead of what it replaced: a
    /// switch after an earlier one of the same key (the freeze by
    /// read-only role) goes back to before the first.
    pub fn going_back_to(self, previous: Option<String>) -> ConfigSwitch {
        ConfigSwitch {
            previous_fingerprint: previous.as_deref().map(fingerprint),
            previous: previous.map(SecretValue),
            ..self
        }
    }

    /// Puts the previous value back (or removes the key if there was none).
    pub async fn rollback(&self, client: &Client, ns: &str) -> Result<()> {
        let value = self.previous.as_ref().map(|v| v.0.as_str());
        patch_key(client, ns, &self.object, &self.key, value, None).await?;
        Ok(())
    }
}

/// Puts `value` back into `key` (None: removes the key) only if the key
/// still holds what a switch wrote (`expect_fingerprint`), guarded by the
/// resourceVersion read with it: a concurrent change fails, never lost.
pub async fn restore_config_key(
    client: &Client,
    ns: &str,
    object: &ConfigObject,
    key: &str,
    value: Option<&str>,
    expect_fingerprint: &str,
) -> Result<()> {
    let (current, rv) = read_key(client, ns, object, key).await?;
    let current_fp = current.as_deref().map(fingerprint);
    if current_fp.as_deref() != Some(expect_fingerprint) {
        return Err(anyhow!(
            "{object} {key} holds {} now, not the sha256:{expect_fingerprint} the switch wrote: \
             nothing restored",
            current_fp.map_or("nothing".to_string(), |f| format!("sha256:{f}"))
        ));
    }
    patch_key(client, ns, object, key, value, rv.as_deref()).await
}

/// Sets `key` of a ConfigMap or Secret to `new_value` with a merge patch,
/// guarded by the resourceVersion it read (a concurrent change gives 409
/// instead of a lost previous value). Safe to run twice.
pub async fn switch_config_key(
    client: &Client,
    ns: &str,
    object: &ConfigObject,
    key: &str,
    new_value: &str,
) -> Result<ConfigSwitch> {
    let (previous, rv) = read_key(client, ns, object, key).await?;
    let new_fingerprint = fingerprint(new_value);
    let changed = previous.as_deref() != Some(new_value);
    if changed {
        patch_key(client, ns, object, key, Some(new_value), rv.as_deref())
            .await
            .with_context(|| {
                format!("setting {key} of {object} in {ns} to sha256:{new_fingerprint}")
            })?;
    }
    Ok(ConfigSwitch {
        object: object.clone(),
        key: key.into(),
        previous_fingerprint: previous.as_deref().map(fingerprint),
        new_fingerprint,
        changed,
        previous: previous.map(SecretValue),
    })
}

/// The current value of `key` (None if absent) and the object's resourceVersion.
pub async fn read_key(
    client: &Client,
    ns: &str,
    object: &ConfigObject,
    key: &str,
) -> Result<(Option<String>, Option<String>)> {
    match object {
        ConfigObject::ConfigMap(name) => {
            let cm = Api::<ConfigMap>::namespaced(client.clone(), ns)
                .get(name)
                .await
                .with_context(|| format!("reading {object} in {ns}"))?;
            let v = cm.data.and_then(|mut d| d.remove(key));
            Ok((v, cm.metadata.resource_version))
        }
        ConfigObject::Secret(name) => {
            let s = Api::<Secret>::namespaced(client.clone(), ns)
                .get(name)
                .await
                .with_context(|| format!("reading {object} in {ns}"))?;
            let v = s
                .data
                .and_then(|mut d| d.remove(key))
                .map(|b| String::from_utf8(b.0))
                .transpose()
                .map_err(|_| anyhow!("{key} of {object} is not UTF-8"))?;
            Ok((v, s.metadata.resource_version))
        }
        ConfigObject::Service(name) => {
            let svc = Api::<Service>::namespaced(client.clone(), ns)
                .get(name)
                .await
                .with_context(|| format!("reading {object} in {ns}"))?;
            let v = svc
                .spec
                .and_then(|s| s.selector)
                .and_then(|mut sel| sel.remove(key));
            Ok((v, svc.metadata.resource_version))
        }
    }
}

async fn patch_key(
    client: &Client,
    ns: &str,
    object: &ConfigObject,
    key: &str,
    value: Option<&str>,
    resource_version: Option<&str>,
) -> Result<()> {
    let pp = PatchParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..Default::default()
    };
    let patch = switch_patch(object, key, value, resource_version);
    // Errors from kube carry no patch body, so the value stays out of them.
    match object {
        ConfigObject::ConfigMap(name) => {
            Api::<ConfigMap>::namespaced(client.clone(), ns)
                .patch(name, &pp, &Patch::Merge(&patch))
                .await?;
        }
        ConfigObject::Secret(name) => {
            Api::<Secret>::namespaced(client.clone(), ns)
                .patch(name, &pp, &Patch::Merge(&patch))
                .await?;
        }
        ConfigObject::Service(name) => {
            Api::<Service>::namespaced(client.clone(), ns)
                .patch(name, &pp, &Patch::Merge(&patch))
                .await?;
        }
    }
    Ok(())
}

/// The JSON merge patch that sets (or, with None, removes) `key` of
/// `object`, guarded by `resource_version` when given.
pub(crate) fn switch_patch(
    object: &ConfigObject,
    key: &str,
    value: Option<&str>,
    resource_version: Option<&str>,
) -> serde_json::Value {
    let mut patch = match (object, value) {
        (ConfigObject::ConfigMap(_), v) => json!({"data": {key: v}}),
        (ConfigObject::Secret(_), Some(v)) => {
            json!({"data": {key: ByteString(v.as_bytes().to_vec())}})
        }
        (ConfigObject::Secret(_), None) => json!({"data": {key: null}}),
        (ConfigObject::Service(_), v) => json!({"spec": {"selector": {key: v}}}),
    };
    if let Some(rv) = resource_version {
        patch["metadata"] = json!({"resourceVersion": rv});
    }
    patch
}

/// One pod, as the rollout pane shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodSnapshot {
    pub name: String,
    pub phase: String,
    pub ready: bool,
    pub terminating: bool,
    pub age_secs: i64,
    pub restarts: i32,
    /// `cutover.dev/db-config`: fingerprint of the DB config it started with.
    pub db_config: Option<String>,
    pub replicaset: Option<String>,
    /// True when its pod-template-hash is the Deployment's current one.
    pub updated: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaSetSnapshot {
    pub name: String,
    pub revision: Option<String>,
    pub desired: i32,
    pub current: i32,
    pub ready: i32,
    pub current_template: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConditionSnapshot {
    pub type_: String,
    pub status: String,
    pub reason: Option<String>,
    pub message: Option<String>,
}

/// A Warning event about the workload (its Deployment, ReplicaSets or pods).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventSnapshot {
    /// `FailedCreate`, `BackOff`, …
    pub reason: String,
    pub message: String,
    /// `replicaset/NAME`, `pod/NAME` or `deployment/NAME`.
    pub object: String,
    /// How many times it happened (the event's count, or its series' count).
    pub count: i32,
    /// When it last happened, RFC 3339 (seconds).
    pub last_seen: String,
}

/// How many warnings a snapshot keeps, newest first.
pub const MAX_WARNINGS: usize = 5;

/// The workload at one moment: what the rollout pane and guards read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkloadSnapshot {
    pub namespace: String,
    pub deployment: String,
    /// False until the Deployment has been seen (e.g. it does not exist).
    pub found: bool,
    pub generation: Option<i64>,
    pub observed_generation: Option<i64>,
    pub desired: i32,
    pub updated: i32,
    pub ready: i32,
    pub available: i32,
    pub unavailable: i32,
    pub state: RolloutState,
    pub conditions: Vec<ConditionSnapshot>,
    pub replicasets: Vec<ReplicaSetSnapshot>,
    pub pods: Vec<PodSnapshot>,
    /// Pods per db-config fingerprint ("?" when a pod has none).
    pub pods_by_db_config: BTreeMap<String, usize>,
    /// Recent Warning events about the workload, newest first (at most
    /// [`MAX_WARNINGS`]); those from before the current ReplicaSet about
    /// older objects are left out.
    #[serde(default)]
    pub warnings: Vec<EventSnapshot>,
}

fn owner_name(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> Option<String> {
    meta.owner_references
        .iter()
        .flatten()
        .find(|o| o.controller == Some(true))
        .map(|o| o.name.clone())
}

/// Builds a snapshot from the current objects (pure; the watcher feeds it).
pub fn snapshot(
    ns: &str,
    name: &str,
    deployment: Option<&Deployment>,
    replicasets: &[Arc<ReplicaSet>],
    pods: &[Arc<Pod>],
    now_unix: i64,
) -> WorkloadSnapshot {
    let mut snap = WorkloadSnapshot {
        namespace: ns.into(),
        deployment: name.into(),
        found: deployment.is_some(),
        generation: None,
        observed_generation: None,
        desired: 0,
        updated: 0,
        ready: 0,
        available: 0,
        unavailable: 0,
        state: RolloutState::Pending,
        conditions: Vec::new(),
        replicasets: Vec::new(),
        pods: Vec::new(),
        pods_by_db_config: BTreeMap::new(),
        warnings: Vec::new(),
    };
    let Some(d) = deployment else {
        return snap;
    };
    let uid = d.metadata.uid.clone();
    let st = d.status.clone().unwrap_or_default();
    snap.generation = d.metadata.generation;
    snap.observed_generation = st.observed_generation;
    snap.desired = d.spec.replicas.unwrap_or(1);
    snap.updated = st.updated_replicas.unwrap_or(0);
    snap.ready = st.ready_replicas.unwrap_or(0);
    snap.available = st.available_replicas.unwrap_or(0);
    snap.unavailable = st.unavailable_replicas.unwrap_or(0);
    snap.state = rollout_state(d);
    snap.conditions = st
        .conditions
        .iter()
        .flatten()
        .map(|c| ConditionSnapshot {
            type_: c.type_.clone().unwrap_or_default(),
            status: c.status.clone().unwrap_or_default(),
            reason: c.reason.clone(),
            message: c.message.clone(),
        })
        .collect();
    let owned = |meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta| {
        meta.owner_references
            .iter()
            .flatten()
            .any(|o| Some(&o.uid) == uid.as_ref())
    };
    let mine: Vec<&Arc<ReplicaSet>> = replicasets.iter().filter(|r| owned(&r.metadata)).collect();
    // The current RS is the one whose template matches the Deployment's; its
    // revision is the highest.
    let current = mine
        .iter()
        .max_by_key(|r| {
            r.metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get("deployment.kubernetes.io/revision"))
                .and_then(|v| v.parse::<i64>().ok())
                .unwrap_or(0)
        })
        .and_then(|r| r.metadata.name.clone());
    let hash_of = |name: &str| {
        mine.iter()
            .find(|r| r.metadata.name.as_deref() == Some(name))
            .and_then(|r| {
                r.metadata
                    .labels
                    .as_ref()?
                    .get("pod-template-hash")
                    .cloned()
            })
    };
    let current_hash = current.as_deref().and_then(hash_of);
    for r in &mine {
        let rst = r.status.clone().unwrap_or_default();
        snap.replicasets.push(ReplicaSetSnapshot {
            name: r.metadata.name.clone().unwrap_or_default(),
            revision: r
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get("deployment.kubernetes.io/revision").cloned()),
            desired: r.spec.replicas.unwrap_or(0),
            current: rst.replicas,
            ready: rst.ready_replicas.unwrap_or(0),
            current_template: r.metadata.name == current,
        });
    }
    snap.replicasets.sort_by(|a, b| a.name.cmp(&b.name));
    let rs_names: Vec<String> = snap.replicasets.iter().map(|r| r.name.clone()).collect();
    for p in pods {
        let rs = owner_name(&p.metadata);
        if !rs.as_ref().is_some_and(|r| rs_names.contains(r)) {
            continue;
        }
        let ps = p.status.clone().unwrap_or_default();
        let ready = ps
            .conditions
            .iter()
            .flatten()
            .any(|c| c.type_ == "Ready" && c.status == "True");
        let created = p
            .metadata
            .creation_timestamp
            .as_ref()
            .map(|t| t.0.as_second())
            .unwrap_or(now_unix);
        let db_config = p
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(DB_CONFIG_ANNOTATION).cloned());
        let hash = p
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get("pod-template-hash").cloned());
        *snap
            .pods_by_db_config
            .entry(db_config.clone().unwrap_or_else(|| "?".into()))
            .or_default() += 1;
        snap.pods.push(PodSnapshot {
            name: p.metadata.name.clone().unwrap_or_default(),
            phase: ps.phase.unwrap_or_else(|| "Unknown".into()),
            ready,
            terminating: p.metadata.deletion_timestamp.is_some(),
            age_secs: (now_unix - created).max(0),
            restarts: ps
                .container_statuses
                .iter()
                .flatten()
                .map(|c| c.restart_count)
                .sum(),
            db_config,
            updated: hash.is_some() && hash == current_hash,
            replicaset: rs,
        });
    }
    snap.pods.sort_by(|a, b| a.name.cmp(&b.name));
    snap
}

fn event_time_secs(e: &Event) -> Option<i64> {
    e.series
        .as_ref()
        .and_then(|s| s.last_observed_time.as_ref())
        .map(|t| t.0.as_second())
        .or_else(|| e.last_timestamp.as_ref().map(|t| t.0.as_second()))
        .or_else(|| e.event_time.as_ref().map(|t| t.0.as_second()))
        .or_else(|| e.first_timestamp.as_ref().map(|t| t.0.as_second()))
        .or_else(|| {
            e.metadata
                .creation_timestamp
                .as_ref()
                .map(|t| t.0.as_second())
        })
}

/// The Warning events about a snapshot's workload (pure; the watcher feeds
/// it): on the Deployment, one of its ReplicaSets or pods in `snap`, newest
/// first, at most [`MAX_WARNINGS`]. Events last seen before the current
/// ReplicaSet was created are dropped unless they are about that ReplicaSet
/// or its pods: they belong to an earlier rollout. A `FailedCreate` on a
/// ReplicaSet that now has all its pods is over and dropped too.
pub fn warnings(
    snap: &WorkloadSnapshot,
    replicasets: &[Arc<ReplicaSet>],
    events: &[Arc<Event>],
) -> Vec<EventSnapshot> {
    if !snap.found {
        return Vec::new();
    }
    let current = snap
        .replicasets
        .iter()
        .find(|r| r.current_template)
        .map(|r| r.name.as_str());
    let current_since = current.and_then(|c| {
        replicasets
            .iter()
            .find(|r| r.metadata.name.as_deref() == Some(c))
            .and_then(|r| r.metadata.creation_timestamp.as_ref())
            .map(|t| t.0.as_second())
    });
    let mut out: Vec<(i64, EventSnapshot)> = Vec::new();
    for e in events {
        if e.type_.as_deref() != Some("Warning") {
            continue;
        }
        let io = &e.involved_object;
        if io.namespace.as_deref().is_some_and(|n| n != snap.namespace) {
            continue;
        }
        let name = io.name.as_deref().unwrap_or("");
        let (kind, of_current) = match io.kind.as_deref() {
            Some("Deployment") if name == snap.deployment => ("deployment", false),
            Some("ReplicaSet") => match snap.replicasets.iter().find(|r| r.name == name) {
                // Its pods exist now: the failure to create them is over.
                Some(r)
                    if e.reason.as_deref() == Some("FailedCreate") && r.current >= r.desired =>
                {
                    continue
                }
                Some(_) => ("replicaset", Some(name) == current),
                None => continue,
            },
            Some("Pod") => match snap.pods.iter().find(|p| p.name == name) {
                Some(p) => (
                    "pod",
                    p.replicaset.is_some() && p.replicaset.as_deref() == current,
                ),
                None => continue,
            },
            _ => continue,
        };
        let at = event_time_secs(e).unwrap_or(0);
        if !of_current && current_since.is_some_and(|since| at < since) {
            continue;
        }
        let last_seen = chrono::DateTime::from_timestamp(at, 0)
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
            .unwrap_or_default();
        out.push((
            at,
            EventSnapshot {
                reason: e.reason.clone().unwrap_or_default(),
                message: e.message.clone().unwrap_or_default(),
                object: format!("{kind}/{name}"),
                count: e
                    .series
                    .as_ref()
                    .and_then(|s| s.count)
                    .or(e.count)
                    .unwrap_or(1)
                    .max(1),
                last_seen,
            },
        ));
    }
    // Newest first; within a second, the more frequent one first, then by
    // name so the order is stable.
    out.sort_by(|a, b| {
        b.0.cmp(&a.0)
            .then(b.1.count.cmp(&a.1.count))
            .then(a.1.object.cmp(&b.1.object))
            .then(a.1.reason.cmp(&b.1.reason))
    });
    out.into_iter().take(MAX_WARNINGS).map(|(_, e)| e).collect()
}

/// Watches the Deployment, its ReplicaSets and pods (label selector from the
/// Deployment's matchLabels) and the namespace's Warning events, and yields a
/// snapshot whenever it changes. Transient watch errors are retried with
/// backoff inside the stream.
fn watch_error<T>(item: Result<T, watcher::Error>) -> Option<String> {
    item.err().map(|e| format!("watching: {e}"))
}

pub async fn watch_workload(
    client: &Client,
    ns: &str,
    deployment: &str,
) -> Result<impl Stream<Item = Result<WorkloadSnapshot, String>> + Send + 'static> {
    let deploys: Api<Deployment> = Api::namespaced(client.clone(), ns);
    let d = deploys
        .get(deployment)
        .await
        .with_context(|| format!("reading deployment {ns}/{deployment}"))?;
    let selector = d
        .spec
        .selector
        .match_labels
        .iter()
        .flatten()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",");
    let (d_store, d_w) = reflector::store::<Deployment>();
    let (rs_store, rs_w) = reflector::store::<ReplicaSet>();
    let (pod_store, pod_w) = reflector::store::<Pod>();
    let d_stream = reflector(
        d_w,
        watcher::watcher(
            deploys,
            watcher::Config::default().fields(&format!("metadata.name={deployment}")),
        ),
    )
    .default_backoff()
    .map(watch_error);
    let rs_stream = reflector(
        rs_w,
        watcher::watcher(
            Api::<ReplicaSet>::namespaced(client.clone(), ns),
            watcher::Config::default().labels(&selector),
        ),
    )
    .default_backoff()
    .map(watch_error);
    let pod_stream = reflector(
        pod_w,
        watcher::watcher(
            Api::<Pod>::namespaced(client.clone(), ns),
            watcher::Config::default().labels(&selector),
        ),
    )
    .default_backoff()
    .map(watch_error);
    let (ev_store, ev_w) = reflector::store::<Event>();
    // Warnings are extra information: a failing event watch (e.g. no RBAC
    // for events, which preflight reports) must not mark the workload stale.
    let ev_stream = reflector(
        ev_w,
        watcher::watcher(
            Api::<Event>::namespaced(client.clone(), ns),
            watcher::Config::default().fields("type=Warning"),
        ),
    )
    .default_backoff()
    .map(|item| {
        if let Err(e) = &item {
            tracing::debug!("watching events: {e}");
        }
        None
    });
    let events = futures::stream::select_all([
        d_stream.boxed(),
        rs_stream.boxed(),
        pod_stream.boxed(),
        ev_stream.boxed(),
    ]);
    let (ns, name) = (ns.to_string(), deployment.to_string());
    let mut last: Option<WorkloadSnapshot> = None;
    Ok(events.filter_map(move |failed| {
        // The watchers retry with backoff by themselves; the failure is still
        // news, so the pane can say its data has stopped moving.
        if let Some(e) = failed {
            return futures::future::ready(Some(Err(e)));
        }
        let d = d_store.state().into_iter().next();
        let rss = rs_store.state();
        let mut snap = snapshot(
            &ns,
            &name,
            d.as_deref(),
            &rss,
            &pod_store.state(),
            chrono::Utc::now().timestamp(),
        );
        snap.warnings = warnings(&snap, &rss, &ev_store.state());
        // Ages tick every second; compare without them to skip no-op events.
        let key = |s: &WorkloadSnapshot| {
            let mut s = s.clone();
            s.pods.iter_mut().for_each(|p| p.age_secs = 0);
            s
        };
        let out = if last.as_ref().map(key) == Some(key(&snap)) {
            None
        } else {
            last = Some(snap.clone());
            Some(Ok(snap))
        };
        futures::future::ready(out)
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_is_short_and_stable() {
        assert_eq!(fingerprint("abc"), "ba7816bf");
        assert_eq!(fingerprint("abc").len(), 8);
    }

    #[test]
    fn secret_value_debug_hides_the_value() {
        let v = SecretValue("host=db password=hunter2".into());
        let d = format!("{v:?}");
        assert!(!d.contains("hunter2"));
        assert!(d.contains(&fingerprint("host=db password=hunter2")));
    }

    #[test]
    fn rollout_state_follows_kubectl() {
        let mut d: Deployment = serde_json::from_value(json!({
            "metadata": {"name": "app", "generation": 2},
            "spec": {"replicas": 3, "selector": {}, "template": {}},
            "status": {"observedGeneration": 1, "replicas": 3, "updatedReplicas": 3, "availableReplicas": 3},
        }))
        .unwrap();
        assert_eq!(rollout_state(&d), RolloutState::Pending);
        let st = d.status.as_mut().unwrap();
        st.observed_generation = Some(2);
        st.updated_replicas = Some(1);
        st.replicas = Some(4);
        assert_eq!(
            rollout_state(&d),
            RolloutState::Progressing {
                message: "1 out of 3 new replicas have been updated".into()
            }
        );
        let st = d.status.as_mut().unwrap();
        st.updated_replicas = Some(3);
        assert_eq!(
            rollout_state(&d),
            RolloutState::Progressing {
                message: "1 old replicas are pending termination".into()
            }
        );
        let st = d.status.as_mut().unwrap();
        st.replicas = Some(3);
        assert_eq!(rollout_state(&d), RolloutState::Complete);
    }

    #[test]
    fn restart_patch_is_kubectls() {
        assert_eq!(
            restart_patch("2026-01-01T00:00:00Z").to_string(),
            r#"{"spec":{"template":{"metadata":{"annotations":{"kubectl.kubernetes.io/restartedAt":"2026-01-01T00:00:00Z"}}}}}"#
        );
    }

    #[test]
    fn warnings_are_the_workloads_newest_of_this_rollout() {
        let at = |secs: i64| {
            chrono::DateTime::from_timestamp(1_800_000_000 + secs, 0)
                .unwrap()
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        };
        let rs = |name: &str, created: i64| -> Arc<ReplicaSet> {
            Arc::new(
                serde_json::from_value(json!({
                    "metadata": {"name": name, "creationTimestamp": at(created)},
                }))
                .unwrap(),
            )
        };
        let snap: WorkloadSnapshot = serde_json::from_value(json!({
            "namespace": "shop", "deployment": "app", "found": true,
            "generation": 2, "observed_generation": 2,
            "desired": 3, "updated": 0, "ready": 3, "available": 3, "unavailable": 0,
            "state": "Pending", "conditions": [],
            "replicasets": [
                {"name": "app-old", "revision": "1", "desired": 3, "current": 3, "ready": 3, "current_template": false},
                {"name": "app-new", "revision": "2", "desired": 1, "current": 0, "ready": 0, "current_template": true},
            ],
            "pods": [{"name": "app-old-x", "phase": "Running", "ready": true, "terminating": false,
                      "age_secs": 1, "restarts": 0, "db_config": null, "replicaset": "app-old", "updated": false}],
            "pods_by_db_config": {},
        }))
        .unwrap();
        let ev =
            |kind: &str, name: &str, reason: &str, secs: i64, count: i32, t: &str, ns: &str| {
                Arc::new(
                    serde_json::from_value::<Event>(json!({
                        "metadata": {"name": format!("{name}.{secs}")},
                        "involvedObject": {"kind": kind, "name": name, "namespace": ns},
                        "reason": reason, "message": format!("{reason} on {name}"),
                        "count": count, "type": t, "lastTimestamp": at(secs),
                    }))
                    .unwrap(),
                )
            };
        let events = vec![
            ev("Deployment", "app", "Old", 150, 1, "Warning", "shop"),
            ev(
                "ReplicaSet",
                "app-old",
                "OldRollout",
                150,
                1,
                "Warning",
                "shop",
            ),
            ev(
                "ReplicaSet",
                "app-old",
                "FailedDelete",
                250,
                1,
                "Warning",
                "shop",
            ),
            ev(
                "ReplicaSet",
                "app-new",
                "FailedCreate",
                260,
                4,
                "Warning",
                "shop",
            ),
            ev("Pod", "app-old-x", "Unhealthy", 255, 2, "Warning", "shop"),
            ev("Pod", "gone-pod", "BackOff", 270, 1, "Warning", "shop"),
            ev(
                "ReplicaSet",
                "app-new",
                "SuccessfulCreate",
                270,
                1,
                "Normal",
                "shop",
            ),
            ev(
                "ReplicaSet",
                "app-new",
                "Elsewhere",
                270,
                1,
                "Warning",
                "other",
            ),
            ev(
                "ReplicaSet",
                "other-rs",
                "NotOurs",
                270,
                1,
                "Warning",
                "shop",
            ),
        ];
        let rss = [rs("app-old", 100), rs("app-new", 200)];
        let got = warnings(&snap, &rss, &events);
        let seen: Vec<(&str, &str, i32)> = got
            .iter()
            .map(|w| (w.reason.as_str(), w.object.as_str(), w.count))
            .collect();
        assert_eq!(
            seen,
            [
                ("FailedCreate", "replicaset/app-new", 4),
                ("Unhealthy", "pod/app-old-x", 2),
                ("FailedDelete", "replicaset/app-old", 1),
            ]
        );
        assert_eq!(got[0].last_seen, at(260));
        assert_eq!(got[0].message, "FailedCreate on app-new");

        // Once the new ReplicaSet has its pods, its FailedCreate is over.
        let mut done = snap.clone();
        done.replicasets[1].current = 1;
        let got = warnings(&done, &rss, &events);
        assert!(got.iter().all(|w| w.reason != "FailedCreate"), "{got:?}");
    }
}
