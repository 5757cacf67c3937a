//! A small Kubernetes API server for the lab: real HTTP and Kubernetes JSON,
//! enough for `kubectl` and the `kube` client to drive a config switch and a
//! rollout restart against the lab's PostgreSQL clusters (of a Deployment or
//! a StatefulSet), and to run Jobs.
//!
//! What it models: namespaces, Deployments (rolling updates honouring
//! maxSurge/maxUnavailable, status and conditions like the real controller),
//! ReplicaSets, StatefulSets, Pods (Pending → Running → Ready, graceful
//! termination), ConfigMaps, Secrets, Services (no endpoints), Events
//! (FailedCreate from the ReplicaSet controller, see
//! [`SimHandle::fail_pod_creation`]), CronJobs (stored, not scheduled);
//! get/list/watch/create/update/delete/deletecollection, JSON merge patch and
//! strategic merge patch (for maps and scalars), the status subresources, a
//! delete's `propagationPolicy` (Orphan strips the dependents' owner
//! references; without one a batch/v1 Job's pods are orphaned, with the API
//! server's warning, everything else's deleted in the background),
//! SelfSubjectAccessReview, and an RBAC deny switch.
//!
//! StatefulSets (apps/v1, short name `sts`, [`statefulsets`]): the API
//! server's defaults and checks (a selector that matches the template's
//! labels, the fields an update may not change), and the controller: pods
//! `<set>-0` … `<set>-(N-1)` labelled with their name, index and revision
//! (`controller-revision-hash` = `<set>-<template hash>`), OrderedReady
//! (pod i+1 only once pod i is Running and Ready) or Parallel pod
//! management, scale-down from the highest ordinal, the RollingUpdate
//! strategy (from the highest ordinal down to `partition`, one pod at a
//! time, each after the one above is Ready again) and OnDelete, the real
//! controller's status (`currentRevision`/`updateRevision`, so `kubectl
//! rollout restart` and `rollout status` work), the `scale` and `status`
//! subresources, and kubectl's table (NAME, READY, AGE). Their pods run the
//! app pods' in-process lifecycle and record `cutover.dev/db-config` the
//! same way, but never write: only a Deployment's pods run the app's
//! writer.
//!
//! CronJobs (batch/v1, short name `cj`, [`cronjobs`]): stored, listed,
//! watched, defaulted and validated (a schedule, a valid Job template), with
//! kubectl's table (NAME, SCHEDULE, TIMEZONE, SUSPEND, ACTIVE, LAST
//! SCHEDULE, AGE). Schedules are not run: Jobs come from a CronJob only by
//! hand, `kubectl create job <name> --from=cronjob/<cj>`, and then run as
//! any Job; the CronJob's status lists them as `active` while they run and
//! records `lastSuccessfulTime`. Deleting a CronJob deletes its Jobs.
//!
//! Jobs (batch/v1, [`jobs`]): the API server's defaults and checks, and the
//! job controller: pods `<job>-<5 characters>` from the template, labelled
//! and owned like the real ones, `succeeded`/`failed`/`active`/`ready`
//! counted into the status, `backoffLimit` (a shortened backoff between
//! pods), `activeDeadlineSeconds`, `ttlSecondsAfterFinished`, the
//! conditions SuccessCriteriaMet + Complete or FailureTarget + Failed, and
//! kubectl's table (NAME, STATUS, COMPLETIONS, DURATION, AGE).
//!
//! A Job's pod is run by the process kubelet ([`kubelet`]) as a real process
//! on the lab machine: container 0's `command` + `args` (with `$(VAR)`
//! expansion) in a clean environment (PATH = [`SimOptions::pod_bin`] before
//! the simulator's own PATH, HOME = the pod's directory, the container's
//! `env` with `valueFrom` Secret/ConfigMap keys and pod fields), in the pod's
//! directory `<pod_root>/<namespace>/<pod>` ([`SimOptions::pod_root`]) or
//! its `workingDir`. `secret`, `configMap` and `emptyDir` volumes are
//! directories under `<pod dir>/volumes/<volume>` (the files with their
//! `defaultMode` / item `mode`). There is no mount namespace: instead, each
//! `volumeMounts[].mountPath` found at a path boundary in an env value, a
//! command or args element or the workingDir is replaced by its volume's
//! directory (the longest mountPath first), so `/etc/app/secret/pgpass`
//! names the file the secret volume holds. The pod's status follows the
//! process like a kubelet's (Pending with ContainerCreating, or
//! CreateContainerConfigError / FailedMount when a Secret or ConfigMap is
//! missing → Running → Succeeded / Failed with the exit code; StartError
//! with exit code 128 when it cannot start); deleting the pod SIGTERMs the
//! process group (SIGKILL after the grace period) and removes the pod's
//! directory. What it writes to stdout and stderr is the pod's log
//! ([`logs`]): `GET .../pods/{name}/log` with `follow`, `tailLines`,
//! `timestamps`, `sinceSeconds`, for `kubectl logs [-f]`.
//!
//! The lab workload is Deployment `app` whose container reads `DATABASE_URL`
//! from ConfigMap `app-db` when it starts; each running pod writes to that
//! database (see [`app`]) and records the config it started with in the
//! `cutover.dev/db-config` annotation (a fingerprint, never the value).
//! Its pods run in process, not as processes, and have empty logs.
//! Service `app` selects its pods by `app: app`, a target for a blue/green
//! selector switch.
//!
//! The lab's knobs are also reachable over HTTP, for a console running in
//! another process (`cutover demo`): `PUT`/`DELETE
//! /lab/v1/deny/<verb>/<resource>` and `PUT`/`DELETE
//! /lab/v1/fail-pod-creation/<deployment>` (the PUT body is the reason;
//! empty means an exceeded quota).
//!
//! Not modelled: authentication (any token works), aggregated discovery
//! (kubectl falls back to the legacy endpoints), JSON patch and server-side
//! apply (415), strategic-merge list semantics, `limit`/`continue` paging (one
//! page), protobuf request bodies beyond SelfSubjectAccessReview and a Job
//! made from a CronJob (whose spec is taken from the CronJob: see
//! [`cronjobs::job_from_protobuf`]; others get 415), ControllerRevision
//! objects and `kubectl rollout undo`/`history` for StatefulSets,
//! volumeClaimTemplates (no PVCs), `minReadySeconds`, `ordinals`,
//! `maxUnavailable` for StatefulSets, CronJob schedules, `timeZone`,
//! `concurrencyPolicy` and history limits, pod restarts (also `restartPolicy: OnFailure` makes a new pod per
//! failure, like Never), finalizers (Foreground deletion deletes the
//! dependents first, then the owner at once), Indexed Jobs, suspended Jobs,
//! podFailurePolicy and successPolicy, a Job pod's containers after the
//! first, init containers, probes, `envFrom`, images (a Job pod needs a
//! `command`; without one it stays Pending with CreateContainerError),
//! users and resource limits (the process runs as the simulator's user),
//! other volume types (FailedMount), and `previous` logs.

pub mod app;
pub mod controller;
pub mod cronjobs;
mod delete;
pub mod http;
pub mod jobs;
pub mod kubelet;
pub mod ledger;
pub mod logs;
mod protobuf;
pub mod statefulsets;
pub mod store;
mod volumes;

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use anyhow::{Context, Result};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

pub use app::{AppStats, Latency, SecondStats, APP_WRITES_DDL};
pub use ledger::AppShared;
use store::{Kind, Store};

pub const LAB_NAMESPACE: &str = "cutover-lab";
pub const LAB_CONTEXT: &str = "cutover-lab";
pub const APP_DEPLOYMENT: &str = "app";
pub const APP_CONFIGMAP: &str = "app-db";
/// Service `app`, selecting the app's pods (a blue/green switch target).
pub const APP_SERVICE: &str = "app";
pub const DB_ENV: &str = "DATABASE_URL";
pub const DB_CONFIG_ANNOTATION: &str = crate::kube::DB_CONFIG_ANNOTATION;
/// The user name Forbidden errors name; the kubeconfig's token maps to it.
pub const LAB_USER: &str = "cutover-lab";
const LAB_TOKEN: &str = "cutover-lab-token";
/// Stands in for DATABASE_URL when the lab runs without a database.
/// The reason `PUT /lab/v1/fail-pod-creation/<deployment>` uses without a body.
pub const DEFAULT_CREATE_FAILURE: &str =
    "exceeded quota: compute-resources, requested: pods=1, used: pods=3, limited: pods=3";
const PLACEHOLDER_URL: &str = "host=127.0.0.1 port=1 dbname=app user=postgres";

#[derive(Debug, Clone)]
pub struct SimOptions {
    pub namespace: String,
    /// Create namespace, ConfigMap `app-db` and Deployment `app`.
    pub create_app: bool,
    /// Initial DATABASE_URL. None: a placeholder, and the pods do not write.
    pub database_url: Option<String>,
    pub replicas: i32,
    /// Total app writes per second across the desired replicas (0: none).
    pub writes_per_sec: u32,
    /// Pod creation → Running (container start, config read).
    pub pod_start_delay: Duration,
    /// Running → Ready (readiness probe passing).
    pub pod_ready_delay: Duration,
    pub progress_deadline_seconds: i64,
    /// How often watches that allow bookmarks get one.
    pub bookmark_interval: Duration,
    /// The directory standing in for a Job pod's image binaries (e.g. the
    /// lab's PostgreSQL bin dir): put before the simulator's own PATH in the
    /// process's PATH.
    pub pod_bin: Option<PathBuf>,
    /// Where Job pods' directories go (`<pod_root>/<namespace>/<pod>`).
    /// None: a temp directory of the simulator's, removed when it stops.
    pub pod_root: Option<PathBuf>,
    /// The lab's PgBouncer instances' ports on 127.0.0.1: a Service
    /// `pgbouncer` with a pod per instance (named port `pgbouncer`), as a
    /// pooler Deployment would show them.
    pub pooler_ports: Vec<u16>,
}

impl Default for SimOptions {
    fn default() -> Self {
        SimOptions {
            namespace: LAB_NAMESPACE.into(),
            create_app: true,
            database_url: None,
            replicas: 3,
            writes_per_sec: 500,
            pod_start_delay: Duration::from_millis(300),
            pod_ready_delay: Duration::from_millis(700),
            progress_deadline_seconds: 600,
            bookmark_interval: Duration::from_secs(5),
            pod_bin: None,
            pod_root: None,
            pooler_ports: Vec::new(),
        }
    }
}

/// State shared by the HTTP server and the controllers.
pub struct Sim {
    store: Mutex<Store>,
    opts: SimOptions,
    addr: SocketAddr,
    denied: Mutex<HashSet<(String, String)>>,
    /// Deployment name → why creating its pods fails (see [`SimHandle::fail_pod_creation`]).
    create_failures: Mutex<HashMap<String, String>>,
    app: Arc<app::AppShared>,
    pods_never_ready: AtomicBool,
    stopping: AtomicBool,
    /// What the Jobs' processes wrote.
    logs: logs::Logs,
    pod_root: kubelet::PodRoot,
    me: Weak<Sim>,
}

impl Sim {
    pub(crate) fn lock(&self) -> MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn addr(&self) -> String {
        self.addr.to_string()
    }

    pub(crate) fn set_denied(&self, verb: &str, resource: &str, denied: bool) {
        let key = (verb.to_ascii_lowercase(), plural_of(resource));
        let mut set = self.denied.lock().unwrap_or_else(|e| e.into_inner());
        if denied {
            set.insert(key);
        } else {
            set.remove(&key);
        }
    }

    pub(crate) fn set_create_failure(&self, deployment: &str, why: Option<&str>) {
        {
            let mut f = self
                .create_failures
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            match why {
                Some(w) => f.insert(deployment.into(), w.into()),
                None => f.remove(deployment),
            };
        }
        self.lock().changed.notify_waiters();
    }

    fn create_failures(&self) -> HashMap<String, String> {
        self.create_failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// `resource` is a plural name, optionally with `/subresource`.
    fn allowed(&self, verb: &str, resource: &str) -> bool {
        let denied = self.denied.lock().unwrap_or_else(|e| e.into_inner());
        let base = resource.split('/').next().unwrap_or(resource);
        ![
            (verb, resource),
            ("*", resource),
            (verb, "*"),
            ("*", "*"),
            (verb, base),
            ("*", base),
        ]
        .iter()
        .any(|(v, r)| denied.contains(&(v.to_string(), r.to_string())))
    }
}

/// A running simulator. Dropping it stops the server; [`SimHandle::shutdown`]
/// also waits for the app pods' writers to finish their in-flight writes.
pub struct SimHandle {
    sim: Arc<Sim>,
    server: JoinHandle<()>,
    controller: Mutex<Option<JoinHandle<()>>>,
}

/// Normalises `deploy`, `deployment`, `Deployments`, … to the plural.
fn plural_of(resource: &str) -> String {
    let (base, sub) = match resource.split_once('/') {
        Some((b, s)) => (b, Some(s)),
        None => (resource, None),
    };
    let b = base.to_ascii_lowercase();
    let plural = Kind::ALL
        .into_iter()
        .find(|k| k.plural() == b || k.singular() == b || k.short_names().contains(&b.as_str()))
        .map(|k| k.plural().to_string())
        .unwrap_or(b);
    match sub {
        Some(s) => format!("{plural}/{s}"),
        None => plural,
    }
}

impl SimHandle {
    pub fn addr(&self) -> SocketAddr {
        self.sim.addr
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.sim.addr)
    }

    pub fn namespace(&self) -> &str {
        &self.sim.opts.namespace
    }

    /// Writes a kubeconfig with one context, `cutover-lab`, pointing at this
    /// simulator over plain HTTP with a bearer-token user.
    pub fn write_kubeconfig(&self, path: &Path, namespace: &str) -> Result<()> {
        let text = format!(
            "apiVersion: v1\n\
             kind: Config\n\
             clusters:\n\
             - name: {LAB_CONTEXT}\n  cluster:\n    server: {url}\n\
             contexts:\n\
             - name: {LAB_CONTEXT}\n  context:\n    cluster: {LAB_CONTEXT}\n    user: {LAB_USER}\n    namespace: {namespace}\n\
             current-context: {LAB_CONTEXT}\n\
             users:\n\
             - name: {LAB_USER}\n  user:\n    token: {LAB_TOKEN}\n",
            url = self.url(),
        );
        std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
        // It holds a bearer token, even if only the lab's.
        std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .with_context(|| format!("chmod 0600 {}", path.display()))
    }

    /// From now on `verb` on `resource` (plural, singular or short name;
    /// `*` for any) is forbidden: SelfSubjectAccessReview says not allowed and
    /// the request itself gets 403.
    pub fn deny(&self, verb: &str, resource: &str) {
        self.sim.set_denied(verb, resource, true);
    }

    pub fn allow(&self, verb: &str, resource: &str) {
        self.sim.set_denied(verb, resource, false);
    }

    /// From now on the ReplicaSets of Deployment `deployment` (any namespace)
    /// cannot create pods, as when admission refuses them: the controller
    /// records Warning events `FailedCreate` on the ReplicaSet (`count` going
    /// up with each retry) with the message
    /// `Error creating: pods "<rs>-" is forbidden: <why>`, and the rollout
    /// stalls. E.g. `why` = `exceeded quota: compute-resources, requested:
    /// pods=1, used: pods=3, limited: pods=3`.
    pub fn fail_pod_creation(&self, deployment: &str, why: &str) {
        self.sim.set_create_failure(deployment, Some(why));
    }

    /// Clears [`SimHandle::fail_pod_creation`]: creation resumes at once.
    pub fn resume_pod_creation(&self, deployment: &str) {
        self.sim.set_create_failure(deployment, None);
    }

    /// Pods created from now on start but never pass readiness (to exercise
    /// ProgressDeadlineExceeded).
    pub fn set_pods_never_ready(&self, on: bool) {
        self.sim.pods_never_ready.store(on, Ordering::Relaxed);
    }

    /// What the app pods measured, shared with whoever reports it (the
    /// lab's witness file).
    pub fn app(&self) -> Arc<AppShared> {
        self.sim.app.clone()
    }

    pub fn app_stats(&self) -> AppStats {
        self.sim.app.stats()
    }

    /// Ids (`app_writes.id`) of every write that the database acknowledged.
    pub fn acknowledged_writes(&self) -> Vec<String> {
        self.sim.app.acknowledged()
    }

    /// Acknowledged updates per `app_writes.id`: the final database must show
    /// `updates` at least this high for each.
    pub fn acknowledged_updates(&self) -> std::collections::BTreeMap<String, u32> {
        self.sim.app.acknowledged_updates()
    }

    /// The directory of the Job pods' directories
    /// (`<pod_root>/<namespace>/<pod>`).
    pub fn pod_root(&self) -> &Path {
        self.sim.pod_root.path()
    }

    /// The lines a Job pod's container has written so far (None: no such
    /// pod, or not one whose process has started).
    pub fn pod_log(&self, namespace: &str, pod: &str) -> Option<Vec<String>> {
        self.sim.logs.get(namespace, pod).map(|l| l.lines())
    }

    /// A copy of a stored object, for tests and the lab's own checks.
    /// Creates or replaces Secret `name` in `namespace` holding `key` (the
    /// lab's copy password file), as `kubectl apply` would.
    pub fn put_secret(&self, namespace: &str, name: &str, key: &str, value: &[u8]) -> Result<()> {
        let data = serde_json::to_value(k8s_openapi::ByteString(value.to_vec()))?;
        let obj = json!({"metadata": {"name": name}, "type": "Opaque", "data": {key: data}});
        let mut s = self.sim.lock();
        if s.get(Kind::Secret, namespace, name).is_some() {
            s.delete(Kind::Secret, namespace, name)
                .map_err(|e| anyhow::anyhow!("replacing secret {name}: {}", e.message))?;
        }
        s.create(Kind::Secret, namespace, obj)
            .map_err(|e| anyhow::anyhow!("creating secret {name}: {}", e.message))?;
        Ok(())
    }

    pub fn object(&self, kind: &str, namespace: &str, name: &str) -> Option<serde_json::Value> {
        let plural = plural_of(kind);
        let k = Kind::ALL.into_iter().find(|k| k.plural() == plural)?;
        self.sim.lock().get(k, namespace, name).cloned()
    }

    /// Stops serving and waits until every pod's writer has finished its
    /// in-flight writes and every Job pod's process is killed (a temp pod
    /// root is removed); stats and acknowledged writes stay readable.
    pub async fn shutdown(&self) {
        self.sim.stopping.store(true, Ordering::Relaxed);
        self.server.abort();
        let c = self
            .controller
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(c) = c {
            let _ = c.await;
        }
        self.sim.pod_root.remove();
    }
}

impl Drop for SimHandle {
    fn drop(&mut self) {
        self.sim.stopping.store(true, Ordering::Relaxed);
        self.server.abort();
    }
}

/// Starts the simulator on 127.0.0.1 (a free port) and, with
/// `opts.create_app`, the lab workload. With a `database_url` and a non-zero
/// rate, creates `app_writes` on that database first.
pub async fn start(opts: SimOptions) -> Result<SimHandle> {
    if let (true, Some(url), true) = (opts.create_app, &opts.database_url, opts.writes_per_sec > 0)
    {
        app::ensure_table(url)
            .await
            .context("creating app_writes on the app's database")?;
    }
    let pod_root = kubelet::PodRoot::new(opts.pod_root.as_deref())
        .context("creating the directory for the Job pods")?;
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let sim = Arc::new_cyclic(|me| Sim {
        store: Mutex::new(Store::new()),
        addr,
        denied: Mutex::new(HashSet::new()),
        create_failures: Mutex::new(HashMap::new()),
        app: Arc::new(app::AppShared::default()),
        pods_never_ready: AtomicBool::new(false),
        stopping: AtomicBool::new(false),
        logs: logs::Logs::default(),
        pod_root,
        me: me.clone(),
        opts: opts.clone(),
    });
    seed(&sim, &opts).map_err(|e| anyhow::anyhow!("seeding the simulator: {}", e.message))?;

    let s2 = sim.clone();
    let server = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let sim = s2.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req| http::handle(sim.clone(), req));
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    let controller = tokio::spawn(controller::run(sim.clone()));
    Ok(SimHandle {
        sim,
        server,
        controller: Mutex::new(Some(controller)),
    })
}

/// Pods that run outside the simulator, at this address (the lab's
/// PgBouncer processes on loopback): the kubelet reports it as the pod's IP.
pub const POD_IP_ANNOTATION: &str = "lab.cutover.dev/pod-ip";

/// The lab's pooler as the API shows it: Service `pgbouncer` targeting the
/// named port of pods `pgbouncer-<i>`, each the process on its own port.
fn seed_pooler(s: &mut Store, ns: &str, ports: &[u16]) -> Result<(), store::ApiError> {
    use crate::lab::pooler::{PoolerState, PORT_NAME, SERVICE};
    if ports.is_empty() {
        return Ok(());
    }
    s.create(
        Kind::Service,
        ns,
        json!({
            "metadata": {"name": SERVICE, "labels": {"app": SERVICE}},
            "spec": {
                "selector": {"app": SERVICE},
                "ports": [{"name": PORT_NAME, "port": 6432, "targetPort": PORT_NAME, "protocol": "TCP"}],
            },
        }),
    )?;
    for (i, port) in ports.iter().enumerate() {
        s.create(
            Kind::Pod,
            ns,
            json!({
                "metadata": {
                    "name": PoolerState::name(i),
                    "labels": {"app": SERVICE},
                    "annotations": {POD_IP_ANNOTATION: "127.0.0.1"},
                },
                "spec": {"containers": [{
                    "name": "pgbouncer",
                    "image": "cutover-lab/pgbouncer:1",
                    "ports": [{"name": PORT_NAME, "containerPort": port, "protocol": "TCP"}],
                }]},
            }),
        )?;
    }
    Ok(())
}

fn seed(sim: &Sim, opts: &SimOptions) -> Result<(), store::ApiError> {
    let mut s = sim.lock();
    for ns in ["default", "kube-system", opts.namespace.as_str()] {
        if s.get(Kind::Namespace, "", ns).is_none() {
            s.create(Kind::Namespace, "", json!({"metadata": {"name": ns}}))?;
        }
    }
    if !opts.create_app {
        return Ok(());
    }
    let ns = &opts.namespace;
    seed_pooler(&mut s, ns, &opts.pooler_ports)?;
    let url = opts.database_url.as_deref().unwrap_or(PLACEHOLDER_URL);
    s.create(
        Kind::ConfigMap,
        ns,
        json!({"metadata": {"name": APP_CONFIGMAP, "labels": {"app": APP_DEPLOYMENT}}, "data": {DB_ENV: url}}),
    )?;
    s.create(
        Kind::Service,
        ns,
        json!({
            "metadata": {"name": APP_SERVICE, "labels": {"app": APP_DEPLOYMENT}},
            "spec": {
                "selector": {"app": APP_DEPLOYMENT},
                "ports": [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}],
            },
        }),
    )?;
    s.create(
        Kind::Deployment,
        ns,
        json!({
            "metadata": {"name": APP_DEPLOYMENT, "labels": {"app": APP_DEPLOYMENT}},
            "spec": {
                "replicas": opts.replicas,
                "selector": {"matchLabels": {"app": APP_DEPLOYMENT}},
                "progressDeadlineSeconds": opts.progress_deadline_seconds,
                "revisionHistoryLimit": 10,
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
                "template": {
                    "metadata": {"labels": {"app": APP_DEPLOYMENT}},
                    "spec": {
                        "containers": [{
                            "name": "app",
                            "image": "cutover-lab/app:1",
                            "env": [{"name": DB_ENV, "valueFrom": {"configMapKeyRef": {"name": APP_CONFIGMAP, "key": DB_ENV}}}],
                            "readinessProbe": {"httpGet": {"path": "/ready", "port": 8080}},
                        }],
                        "terminationGracePeriodSeconds": 30,
                    },
                },
            },
        }),
    )?;
    Ok(())
}
