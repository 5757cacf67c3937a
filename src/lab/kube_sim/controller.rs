//! The simulator's controllers in one loop: Deployment rolling updates (the
//! upstream algorithm, simplified), ReplicaSet pod management, the
//! StatefulSet controller ([`super::statefulsets`]), the job controller
//! ([`super::jobs`]), the CronJobs' bookkeeping ([`super::cronjobs`]), the
//! kubelet's pod lifecycle (the app pods and StatefulSets' pods in process
//! here: Pending → Running → Ready, graceful termination; Jobs' pods as
//! real processes in [`super::kubelet`]) and garbage collection of orphans.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::Rng;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::app::PodWriter;
use super::store::{meta_str, now_rfc3339, Kind, Scope, Store};
use super::{Sim, DB_CONFIG_ANNOTATION, DB_ENV};

const TICK: Duration = Duration::from_millis(50);
const HASH_LABEL: &str = "pod-template-hash";
const REVISION: &str = "deployment.kubernetes.io/revision";

struct PodRt {
    /// A StatefulSet's pod comes back under the same name: this one's uid.
    uid: String,
    created: Instant,
    running_at: Option<Instant>,
    never_ready: bool,
    writer: Option<PodWriter>,
    terminating: bool,
}

struct Progress {
    seen: (i64, i64, i64, i64, String),
    last: Instant,
    last_time: String,
}

/// A ReplicaSet whose pod creation fails: when it may try (and record) again.
struct CreateBackoff {
    next: Instant,
    delay: Duration,
    message: String,
}

/// First retry after a failed pod creation; doubles up to [`BACKOFF_MAX`],
/// like the controller's rate-limited requeue (shortened for the lab).
const BACKOFF_START: Duration = Duration::from_millis(250);
const BACKOFF_MAX: Duration = Duration::from_secs(4);

#[derive(Default)]
struct State {
    pods: HashMap<(String, String), PodRt>,
    progress: HashMap<String, Progress>,
    /// (namespace, ReplicaSet) → its failing pod creation.
    failing: HashMap<(String, String), CreateBackoff>,
    jobs: super::jobs::Jobs,
    sets: super::statefulsets::Sets,
    kubelet: super::kubelet::Kubelet,
}

pub async fn run(sim: Arc<Sim>) {
    let mut st = State::default();
    let changed = sim.lock().changed.clone();
    loop {
        tokio::select! {
            _ = changed.notified() => {}
            _ = tokio::time::sleep(TICK) => {}
        }
        if sim.stopping.load(Ordering::Relaxed) {
            break;
        }
        let failures = sim.create_failures();
        let mut s = sim.lock();
        deployments(&mut s, &mut st);
        replicasets(&mut s, &mut st, &failures);
        super::statefulsets::sync(&mut s, &mut st.sets);
        super::jobs::sync(&mut s, &mut st.jobs);
        super::cronjobs::sync(&mut s);
        let processes = super::kubelet::sync(&sim, &mut s, &mut st.kubelet);
        pods(&sim, &mut s, &mut st, &processes);
        status(&mut s, &mut st);
        gc(&mut s);
    }
    // Shutting down: stop every writer gracefully, kill every process.
    let writers: Vec<PodWriter> = st.pods.drain().filter_map(|(_, rt)| rt.writer).collect();
    for w in writers {
        w.stop().await;
    }
    super::kubelet::shutdown(&mut st.kubelet).await;
}

/// The `pod-template-hash`: stable for equal templates (serde_json's maps are
/// sorted, so the serialisation is canonical).
pub(super) fn template_hash(template: &Value) -> String {
    let mut t = template.clone();
    if let Some(l) = t["metadata"]["labels"].as_object_mut() {
        l.remove(HASH_LABEL);
    }
    let d = Sha256::digest(t.to_string().as_bytes());
    // Kubernetes' hash alphabet has no vowels; hex digits are a subset of it
    // except for a and e, which are mapped away to keep names realistic.
    d.iter()
        .take(5)
        .map(|b| format!("{b:02x}"))
        .collect::<String>()
        .replace('a', "b")
        .replace('e', "f")
}

pub(super) fn int(v: &Value) -> i64 {
    v.as_i64().unwrap_or(0)
}

/// maxSurge / maxUnavailable: an int or a percentage of `desired`.
fn resolve(v: &Value, desired: i64, round_up: bool) -> i64 {
    match v {
        Value::Number(n) => n.as_i64().unwrap_or(0),
        Value::String(s) => {
            let p: f64 = s.trim_end_matches('%').parse().unwrap_or(25.0);
            let x = p * desired as f64 / 100.0;
            (if round_up { x.ceil() } else { x.floor() }) as i64
        }
        _ => {
            let x = 0.25 * desired as f64;
            (if round_up { x.ceil() } else { x.floor() }) as i64
        }
    }
}

/// A snapshot of every Deployment: the passes below change the store while they iterate.
fn all_deployments(s: &Store) -> Vec<Value> {
    s.list(Kind::Deployment, None)
        .into_iter()
        .cloned()
        .collect()
}

pub(super) fn owned_by<'a>(objs: Vec<&'a Value>, uid: &str) -> Vec<&'a Value> {
    objs.into_iter()
        .filter(|o| {
            o["metadata"]["ownerReferences"]
                .as_array()
                .is_some_and(|refs| refs.iter().any(|r| r["uid"] == uid))
        })
        .collect()
}

pub(super) fn active(pod: &Value) -> bool {
    pod["metadata"]["deletionTimestamp"].is_null()
}

pub(super) fn pod_ready(pod: &Value) -> bool {
    pod["status"]["conditions"].as_array().is_some_and(|c| {
        c.iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
    })
}

/// (active pods, available pods) of a ReplicaSet.
fn rs_pod_counts(s: &Store, rs: &Value) -> (i64, i64, i64) {
    let ns = meta_str(rs, "namespace");
    let uid = meta_str(rs, "uid");
    let pods = owned_by(s.list(Kind::Pod, Some(ns)), uid);
    let act: Vec<_> = pods.into_iter().filter(|p| active(p)).collect();
    let ready = act.iter().filter(|p| pod_ready(p)).count() as i64;
    (act.len() as i64, ready, ready)
}

fn deployments(s: &mut Store, st: &mut State) {
    let deps = all_deployments(s);
    for d in deps {
        let ns = meta_str(&d, "namespace").to_string();
        let name = meta_str(&d, "name").to_string();
        let uid = meta_str(&d, "uid").to_string();
        let desired = d["spec"]["replicas"].as_i64().unwrap_or(1);
        let template = &d["spec"]["template"];
        let hash = template_hash(template);
        let rss: Vec<Value> = owned_by(s.list(Kind::ReplicaSet, Some(&ns)), &uid)
            .into_iter()
            .cloned()
            .collect();
        let max_rev = rss
            .iter()
            .filter_map(|r| {
                r["metadata"]["annotations"][REVISION]
                    .as_str()?
                    .parse::<i64>()
                    .ok()
            })
            .max()
            .unwrap_or(0);
        let new_rs = rss
            .iter()
            .find(|r| r["metadata"]["labels"][HASH_LABEL] == hash.as_str())
            .cloned();
        let new_rs = match new_rs {
            Some(r) => {
                let rev = r["metadata"]["annotations"][REVISION]
                    .as_str()
                    .and_then(|v| v.parse::<i64>().ok())
                    .unwrap_or(0);
                // A template rolled back to an older one makes that RS newest again.
                if rev < max_rev {
                    let _ = s.update(
                        Kind::ReplicaSet,
                        &ns,
                        meta_str(&r, "name"),
                        Scope::Controller,
                        |v| {
                            v["metadata"]["annotations"][REVISION] =
                                json!((max_rev + 1).to_string());
                            Ok(())
                        },
                    );
                }
                r
            }
            None => {
                let mut t = template.clone();
                t["metadata"]["labels"][HASH_LABEL] = json!(hash);
                let mut sel = d["spec"]["selector"].clone();
                sel["matchLabels"][HASH_LABEL] = json!(hash);
                let first = rss.is_empty();
                let rs = json!({
                    "metadata": {
                        "name": format!("{name}-{hash}"),
                        "labels": t["metadata"]["labels"],
                        "annotations": {
                            REVISION: (max_rev + 1).to_string(),
                            "deployment.kubernetes.io/desired-replicas": desired.to_string(),
                        },
                        "ownerReferences": [{
                            "apiVersion": "apps/v1", "kind": "Deployment", "name": name,
                            "uid": uid, "controller": true, "blockOwnerDeletion": true,
                        }],
                    },
                    "spec": {
                        "replicas": if first { desired } else { 0 },
                        "selector": sel,
                        "template": t,
                    },
                });
                match s.create(Kind::ReplicaSet, &ns, rs) {
                    Ok(v) => {
                        // A new ReplicaSet is progress.
                        st.progress.remove(&uid);
                        v
                    }
                    Err(_) => continue,
                }
            }
        };
        let rev = new_rs["metadata"]["annotations"][REVISION].clone();
        let _ = s.update(Kind::Deployment, &ns, &name, Scope::Controller, |v| {
            v["metadata"]["annotations"][REVISION] = rev;
            Ok(())
        });
        if d["spec"]["paused"].as_bool() == Some(true) {
            continue;
        }
        let new_name = meta_str(&new_rs, "name").to_string();
        let olds: Vec<Value> = rss
            .iter()
            .filter(|r| meta_str(r, "name") != new_name)
            .cloned()
            .collect();
        let ru = &d["spec"]["strategy"]["rollingUpdate"];
        let recreate = d["spec"]["strategy"]["type"] == "Recreate";
        let mut surge = resolve(&ru["maxSurge"], desired, true);
        let mut unavail = resolve(&ru["maxUnavailable"], desired, false);
        if recreate {
            surge = 0;
            unavail = desired;
        }
        if surge == 0 && unavail == 0 {
            unavail = 1;
        }
        let spec = |r: &Value| int(&r["spec"]["replicas"]);
        let old_total: i64 = olds.iter().map(spec).sum();
        let new_count = spec(&new_rs);
        let total = old_total + new_count;
        let mut target_new = new_count;
        if old_total == 0 || new_count > desired {
            target_new = desired;
        } else if new_count < desired && !(recreate && old_total > 0) {
            let room = desired + surge - total;
            if room > 0 {
                target_new = (new_count + room).min(desired);
            }
        }
        if target_new != new_count {
            set_replicas(s, &ns, &new_name, target_new);
        }
        if old_total > 0 {
            let min_avail = desired - unavail;
            let (_, _, new_avail) = rs_pod_counts(s, &new_rs);
            let new_unavail = (new_count - new_avail).max(0);
            let mut budget = total - min_avail - new_unavail;
            let mut olds_sorted = olds.clone();
            olds_sorted.sort_by_key(|r| meta_str(r, "creationTimestamp").to_string());
            // Unhealthy old pods go first: removing them costs no availability.
            let mut left: HashMap<String, i64> = HashMap::new();
            for r in &olds_sorted {
                let (_, _, avail) = rs_pod_counts(s, r);
                let mut n = spec(r);
                let unhealthy = (n - avail).max(0);
                let cut = unhealthy.min(budget.max(0));
                n -= cut;
                budget -= cut;
                left.insert(meta_str(r, "name").to_string(), n);
            }
            let all_avail: i64 = rss.iter().map(|r| rs_pod_counts(s, r).2).sum();
            let mut budget2 = all_avail - min_avail;
            for r in &olds_sorted {
                let rn = meta_str(r, "name").to_string();
                let mut n = left[&rn];
                let cut = n.min(budget2.max(0));
                n -= cut;
                budget2 -= cut;
                if n != spec(r) {
                    set_replicas(s, &ns, &rn, n);
                }
            }
        }
    }
}

/// Replaces an object's status (a controller's write: stored only when it
/// changed).
pub(super) fn write_status(s: &mut Store, kind: Kind, ns: &str, name: &str, status: Value) {
    let _ = s.update(kind, ns, name, Scope::Controller, |v| {
        v["status"] = status;
        Ok(())
    });
}

fn set_replicas(s: &mut Store, ns: &str, rs: &str, n: i64) {
    let _ = s.update(Kind::ReplicaSet, ns, rs, Scope::Controller, |v| {
        v["spec"]["replicas"] = json!(n);
        Ok(())
    });
}

pub(super) fn random_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut r = rand::thread_rng();
    (0..5)
        .map(|_| ALPHABET[r.gen_range(0..ALPHABET.len())] as char)
        .collect()
}

/// The Deployment that controls a ReplicaSet, by its owner reference.
fn owning_deployment(rs: &Value) -> Option<&str> {
    rs["metadata"]["ownerReferences"]
        .as_array()?
        .iter()
        .find(|r| r["kind"] == "Deployment" && r["controller"] == true)?
        .get("name")?
        .as_str()
}

fn replicasets(s: &mut Store, st: &mut State, failures: &HashMap<String, String>) {
    let now = Instant::now();
    let rss: Vec<Value> = s
        .list(Kind::ReplicaSet, None)
        .into_iter()
        .cloned()
        .collect();
    st.failing
        .retain(|(ns, n), _| s.get(Kind::ReplicaSet, ns, n).is_some());
    for rs in rss {
        let ns = meta_str(&rs, "namespace").to_string();
        let name = meta_str(&rs, "name").to_string();
        let uid = meta_str(&rs, "uid").to_string();
        let want = int(&rs["spec"]["replicas"]);
        let mut pods: Vec<Value> = owned_by(s.list(Kind::Pod, Some(&ns)), &uid)
            .into_iter()
            .filter(|p| active(p))
            .cloned()
            .collect();
        let have = pods.len() as i64;
        let key = (ns.clone(), name.clone());
        let why = owning_deployment(&rs).and_then(|d| failures.get(d));
        match why {
            Some(why) if have < want => {
                // Admission refuses the pod; the controller records a Warning
                // event on the ReplicaSet and retries with backoff.
                let message = format!("Error creating: pods \"{name}-\" is forbidden: {why}");
                let due = st.failing.get(&key).is_none_or(|b| now >= b.next);
                if due {
                    record_event(s, &rs, "Warning", "FailedCreate", &message);
                    let delay = st
                        .failing
                        .get(&key)
                        .map_or(BACKOFF_START, |b| (b.delay * 2).min(BACKOFF_MAX));
                    st.failing.insert(
                        key,
                        CreateBackoff {
                            next: now + delay,
                            delay,
                            message,
                        },
                    );
                }
                continue;
            }
            _ => {
                st.failing.remove(&key);
            }
        }
        for _ in have..want {
            let pod = pod_for(&rs, &rs["spec"]["template"]["metadata"]["labels"]);
            let _ = s.create(Kind::Pod, &ns, pod);
        }
        if have > want {
            // Not-ready pods first, then the youngest, like the ReplicaSet controller.
            pods.sort_by_key(|p| {
                (
                    pod_ready(p),
                    std::cmp::Reverse(meta_str(p, "creationTimestamp").to_string()),
                )
            });
            for p in pods.iter().take((have - want) as usize) {
                mark_deleted(s, &ns, meta_str(p, "name"));
            }
        }
    }
}

/// A Pending pod from `owner`'s `spec.template` with `labels`, named
/// `<owner>-<5 random characters>` and controlled by `owner` (a
/// ReplicaSet's or a Job's pod).
pub(super) fn pod_for(owner: &Value, labels: &Value) -> Value {
    let name = meta_str(owner, "name");
    let t = &owner["spec"]["template"];
    strip_nulls(json!({
        "metadata": {
            "name": format!("{name}-{}", random_suffix()),
            "labels": labels,
            "annotations": t["metadata"]["annotations"],
            "ownerReferences": [{
                "apiVersion": owner["apiVersion"], "kind": owner["kind"], "name": name,
                "uid": meta_str(owner, "uid"), "controller": true, "blockOwnerDeletion": true,
            }],
        },
        "spec": t["spec"],
        "status": {"phase": "Pending"},
    }))
}

/// Records an event on `obj` the way client-go's recorder does: an identical
/// one (same object, type, reason and message) gets its count incremented and
/// lastTimestamp moved instead of a new object.
pub fn record_event(s: &mut Store, obj: &Value, etype: &str, reason: &str, message: &str) {
    let ns = meta_str(obj, "namespace").to_string();
    let uid = meta_str(obj, "uid");
    let now = now_rfc3339();
    let same = s
        .list(Kind::Event, Some(&ns))
        .into_iter()
        .find(|e| {
            e["involvedObject"]["uid"] == uid
                && e["type"] == etype
                && e["reason"] == reason
                && e["message"] == message
        })
        .map(|e| meta_str(e, "name").to_string());
    if let Some(name) = same {
        let _ = s.update(Kind::Event, &ns, &name, Scope::Controller, |e| {
            e["count"] = json!(int(&e["count"]).max(1) + 1);
            e["lastTimestamp"] = json!(now);
            Ok(())
        });
        return;
    }
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let component = match obj["kind"].as_str() {
        Some("ReplicaSet") => "replicaset-controller",
        Some("Deployment") => "deployment-controller",
        Some("Job") => "job-controller",
        Some("StatefulSet") => "statefulset-controller",
        _ => "kubelet",
    };
    let ev = json!({
        "metadata": {"name": format!("{}.{nanos:x}", meta_str(obj, "name"))},
        "involvedObject": {
            "kind": obj["kind"], "namespace": ns, "name": meta_str(obj, "name"),
            "uid": uid, "apiVersion": obj["apiVersion"],
            "resourceVersion": meta_str(obj, "resourceVersion"),
        },
        "reason": reason,
        "message": message,
        "source": {"component": component},
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
        "type": etype,
        "reportingComponent": component,
        "reportingInstance": "",
    });
    let _ = s.create(Kind::Event, &ns, ev);
}

/// Starts graceful deletion, as `DELETE` on a pod does.
pub fn mark_deleted(s: &mut Store, ns: &str, name: &str) {
    let _ = s.update(Kind::Pod, ns, name, Scope::Controller, |v| {
        if v["metadata"]["deletionTimestamp"].is_null() {
            v["metadata"]["deletionTimestamp"] = json!(now_rfc3339());
            v["metadata"]["deletionGracePeriodSeconds"] = json!(30);
        }
        Ok(())
    });
}

fn strip_nulls(mut v: Value) -> Value {
    if let Some(m) = v["metadata"].as_object_mut() {
        m.retain(|_, v| !v.is_null());
    }
    v
}

/// Resolves a container's env var the way the kubelet does at container
/// start: a literal value, or a ConfigMap / Secret key read right now.
fn resolve_env(s: &Store, ns: &str, pod: &Value, var: &str) -> Option<Result<String, String>> {
    let containers = pod["spec"]["containers"].as_array()?;
    let env = containers
        .iter()
        .filter_map(|c| c["env"].as_array())
        .flatten()
        .find(|e| e["name"] == var)?;
    super::volumes::env_value(s, ns, pod, env).transpose()
}

/// Whether a pod runs the app's writer: only a Deployment's pods (their
/// controller is a ReplicaSet) do; a StatefulSet's pod only records the
/// config it started with.
fn runs_writer(pod: &Value) -> bool {
    pod["metadata"]["ownerReferences"]
        .as_array()
        .is_some_and(|refs| {
            refs.iter()
                .any(|r| r["controller"] == true && r["kind"] == "ReplicaSet")
        })
}

/// The app pods' kubelet: every pod but the `processes` the process
/// kubelet runs.
fn pods(sim: &Sim, s: &mut Store, st: &mut State, processes: &HashSet<(String, String)>) {
    let now = Instant::now();
    let all: Vec<Value> = s.list(Kind::Pod, None).into_iter().cloned().collect();
    let mut alive = HashSet::new();
    for p in all {
        let ns = meta_str(&p, "namespace").to_string();
        let name = meta_str(&p, "name").to_string();
        let key = (ns.clone(), name.clone());
        if processes.contains(&key) {
            continue;
        }
        alive.insert(key.clone());
        let uid = meta_str(&p, "uid").to_string();
        if st.pods.get(&key).is_some_and(|rt| rt.uid != uid) {
            if let Some(w) = st.pods.remove(&key).and_then(|rt| rt.writer) {
                tokio::spawn(w.stop());
            }
        }
        let rt = st.pods.entry(key.clone()).or_insert_with(|| PodRt {
            uid: uid.clone(),
            created: now,
            running_at: None,
            never_ready: sim.pods_never_ready.load(Ordering::Relaxed),
            writer: None,
            terminating: false,
        });
        if !active(&p) {
            if !rt.terminating {
                rt.terminating = true;
                let writer = rt.writer.take();
                let sim2 = sim.me.clone();
                tokio::spawn(async move {
                    if let Some(w) = writer {
                        w.stop().await;
                    }
                    if let Some(sim) = sim2.upgrade() {
                        // Only this pod, not a successor under its name.
                        let mut s = sim.lock();
                        if s.get(Kind::Pod, &ns, &name)
                            .is_some_and(|p| meta_str(p, "uid") == uid)
                        {
                            let _ = s.delete(Kind::Pod, &ns, &name);
                        }
                    }
                });
            }
            continue;
        }
        if rt.running_at.is_none() && now - rt.created >= sim.opts.pod_start_delay {
            let config = resolve_env(s, &ns, &p, DB_ENV);
            let (url, fp) = match config {
                Some(Ok(url)) => {
                    let fp = crate::kube::fingerprint(&url);
                    (Some(url), Some(fp))
                }
                Some(Err(why)) => {
                    let _ = s.update(Kind::Pod, &ns, &name, Scope::Controller, |v| {
                        v["status"]["containerStatuses"] = container_statuses(v, false, Some(&why));
                        Ok(())
                    });
                    continue;
                }
                None => (None, None),
            };
            rt.running_at = Some(now);
            let start = now_rfc3339();
            let pod_ip = p["metadata"]["annotations"][super::POD_IP_ANNOTATION]
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| format!("10.1.0.{}", rand::thread_rng().gen_range(2..250)));
            let _ = s.update(Kind::Pod, &ns, &name, Scope::Controller, |v| {
                if let Some(fp) = &fp {
                    v["metadata"]["annotations"][DB_CONFIG_ANNOTATION] = json!(fp);
                }
                v["spec"]["nodeName"] = json!("lab-node-1");
                v["status"] = json!({
                    "phase": "Running",
                    "startTime": start,
                    "hostIP": "10.0.0.1",
                    "podIP": pod_ip,
                    "qosClass": "BestEffort",
                    "conditions": conditions(false),
                });
                v["status"]["containerStatuses"] = container_statuses(v, false, None);
                Ok(())
            });
            if let (Some(url), Some(fp)) = (url, fp) {
                let rate = sim.opts.writes_per_sec as f64 / sim.opts.replicas.max(1) as f64;
                if rate > 0.0 && sim.opts.database_url.is_some() && runs_writer(&p) {
                    rt.writer = Some(PodWriter::spawn(
                        sim.app.clone(),
                        name.clone(),
                        fp,
                        url,
                        rate,
                    ));
                }
            }
        }
        if let Some(t) = rt.running_at {
            if !rt.never_ready && now - t >= sim.opts.pod_ready_delay && !pod_ready(&p) {
                let _ = s.update(Kind::Pod, &ns, &name, Scope::Controller, |v| {
                    v["status"]["conditions"] = conditions(true);
                    v["status"]["containerStatuses"] = container_statuses(v, true, None);
                    Ok(())
                });
            }
        }
    }
    // Pods that vanished without graceful deletion (e.g. namespace removal).
    for (_, rt) in st.pods.extract_if(|k, _| !alive.contains(k)) {
        if let Some(w) = rt.writer {
            tokio::spawn(w.stop());
        }
    }
}

pub(super) fn conditions(ready: bool) -> Value {
    let now = now_rfc3339();
    let r = if ready { "True" } else { "False" };
    json!([
        {"type": "PodReadyToStartContainers", "status": "True", "lastTransitionTime": now},
        {"type": "Initialized", "status": "True", "lastTransitionTime": now},
        {"type": "Ready", "status": r, "lastTransitionTime": now},
        {"type": "ContainersReady", "status": r, "lastTransitionTime": now},
        {"type": "PodScheduled", "status": "True", "lastTransitionTime": now},
    ])
}

fn container_statuses(pod: &Value, ready: bool, waiting: Option<&str>) -> Value {
    let started = pod["status"]["startTime"].clone();
    let cs: Vec<Value> = pod["spec"]["containers"]
        .as_array()
        .map(|cs| {
            cs.iter()
                .map(|c| {
                    let state = match waiting {
                        Some(why) => json!({"waiting": {"reason": "CreateContainerConfigError", "message": why}}),
                        None => json!({"running": {"startedAt": started}}),
                    };
                    json!({
                        "name": c["name"],
                        "image": c["image"],
                        "imageID": format!("docker.io/{}@sha256:0", c["image"].as_str().unwrap_or("")),
                        "containerID": format!("containerd://{}", random_suffix()),
                        "ready": ready,
                        "started": waiting.is_none(),
                        "restartCount": 0,
                        "state": state,
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    Value::Array(cs)
}

fn cond(t: &str, status: &str, reason: &str, msg: String, update: &str, transition: &str) -> Value {
    json!({
        "type": t, "status": status, "reason": reason, "message": msg,
        "lastUpdateTime": update, "lastTransitionTime": transition,
    })
}

/// Keeps lastTransitionTime when the status of a condition did not change.
fn transition_time(old: &Value, t: &str, status: &str, now: &str) -> String {
    old.as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == t && c["status"] == status))
        .and_then(|c| c["lastTransitionTime"].as_str())
        .unwrap_or(now)
        .to_string()
}

fn status(s: &mut Store, st: &mut State) {
    let rss: Vec<Value> = s
        .list(Kind::ReplicaSet, None)
        .into_iter()
        .cloned()
        .collect();
    let mut counts: HashMap<String, (i64, i64, i64)> = HashMap::new();
    // Deployment uid → the ReplicaFailure its ReplicaSets report.
    let mut failures: HashMap<String, Value> = HashMap::new();
    for rs in &rss {
        let c = rs_pod_counts(s, rs);
        counts.insert(meta_str(rs, "uid").to_string(), c);
        let gen = rs["metadata"]["generation"].clone();
        let key = (
            meta_str(rs, "namespace").to_string(),
            meta_str(rs, "name").to_string(),
        );
        let failure = st.failing.get(&key).map(|b| {
            let t = transition_time(
                &rs["status"]["conditions"],
                "ReplicaFailure",
                "True",
                &now_rfc3339(),
            );
            json!({
                "type": "ReplicaFailure", "status": "True", "reason": "FailedCreate",
                "message": b.message, "lastTransitionTime": t,
            })
        });
        if let (Some(f), Some(d)) = (
            &failure,
            rs["metadata"]["ownerReferences"]
                .as_array()
                .and_then(|r| r.first()),
        ) {
            failures.insert(d["uid"].as_str().unwrap_or("").to_string(), f.clone());
        }
        let _ = s.update(
            Kind::ReplicaSet,
            meta_str(rs, "namespace"),
            meta_str(rs, "name"),
            Scope::Controller,
            |v| {
                v["status"] = json!({
                    "replicas": c.0,
                    "fullyLabeledReplicas": c.0,
                    "readyReplicas": c.1,
                    "availableReplicas": c.2,
                    "observedGeneration": gen,
                });
                if let Some(f) = failure {
                    v["status"]["conditions"] = json!([f]);
                }
                Ok(())
            },
        );
    }
    let deps = all_deployments(s);
    for d in deps {
        let ns = meta_str(&d, "namespace").to_string();
        let name = meta_str(&d, "name").to_string();
        let uid = meta_str(&d, "uid").to_string();
        let desired = d["spec"]["replicas"].as_i64().unwrap_or(1);
        let hash = template_hash(&d["spec"]["template"]);
        let owned = owned_by(rss.iter().collect(), &uid);
        let Some(new_rs) = owned
            .iter()
            .find(|r| r["metadata"]["labels"][HASH_LABEL] == hash.as_str())
        else {
            continue;
        };
        let new_name = meta_str(new_rs, "name").to_string();
        let c = |r: &Value| counts.get(meta_str(r, "uid")).copied().unwrap_or_default();
        let replicas: i64 = owned.iter().map(|r| c(r).0).sum();
        let updated = c(new_rs).0;
        let ready: i64 = owned.iter().map(|r| c(r).1).sum();
        let available: i64 = owned.iter().map(|r| c(r).2).sum();
        let spec_total: i64 = owned.iter().map(|r| int(&r["spec"]["replicas"])).sum();
        let unavailable = (spec_total - available).max(0);
        let ru = &d["spec"]["strategy"]["rollingUpdate"];
        let max_unavail = resolve(&ru["maxUnavailable"], desired, false);
        let deadline = d["spec"]["progressDeadlineSeconds"].as_i64().unwrap_or(600);
        let now_i = Instant::now();
        let now = now_rfc3339();
        let seen = (replicas, updated, ready, available, new_name.clone());
        let p = st.progress.entry(uid.clone()).or_insert_with(|| Progress {
            seen: seen.clone(),
            last: now_i,
            last_time: now.clone(),
        });
        if p.seen != seen {
            p.seen = seen;
            p.last = now_i;
            p.last_time = now.clone();
        }
        let complete = updated == desired && replicas == desired && available == desired;
        let old_conds = &d["status"]["conditions"];
        let avail_ok = available >= desired - max_unavail;
        let (a_status, a_reason, a_msg) = if avail_ok {
            (
                "True",
                "MinimumReplicasAvailable",
                "Deployment has minimum availability.",
            )
        } else {
            (
                "False",
                "MinimumReplicasUnavailable",
                "Deployment does not have minimum availability.",
            )
        };
        let (p_status, p_reason, p_msg) = if complete {
            (
                "True",
                "NewReplicaSetAvailable",
                format!("ReplicaSet \"{new_name}\" has successfully progressed."),
            )
        } else if now_i - p.last > Duration::from_secs(deadline.max(0) as u64) {
            (
                "False",
                "ProgressDeadlineExceeded",
                format!("ReplicaSet \"{new_name}\" has timed out progressing."),
            )
        } else {
            (
                "True",
                "ReplicaSetUpdated",
                format!("ReplicaSet \"{new_name}\" is progressing."),
            )
        };
        // lastUpdateTime moves only with progress, so watchers see no churn.
        let a_update = old_conds
            .as_array()
            .and_then(|cs| {
                cs.iter()
                    .find(|c| c["type"] == "Available" && c["status"] == a_status)
            })
            .and_then(|c| c["lastUpdateTime"].as_str())
            .unwrap_or(&now)
            .to_string();
        let p_update = old_conds
            .as_array()
            .and_then(|cs| {
                cs.iter().find(|c| {
                    c["type"] == "Progressing"
                        && c["reason"] == p_reason
                        && c["message"] == p_msg.as_str()
                })
            })
            .and_then(|c| c["lastUpdateTime"].as_str())
            .map(str::to_string)
            .unwrap_or_else(|| p.last_time.clone());
        let mut conds = json!([
            cond(
                "Available",
                a_status,
                a_reason,
                a_msg.into(),
                &a_update,
                &transition_time(old_conds, "Available", a_status, &now)
            ),
            cond(
                "Progressing",
                p_status,
                p_reason,
                p_msg,
                &p_update,
                &transition_time(old_conds, "Progressing", p_status, &now)
            ),
        ]);
        // The deployment controller surfaces its ReplicaSets' failure.
        if let (Some(f), Some(cs)) = (failures.get(&uid), conds.as_array_mut()) {
            let mut f = f.clone();
            f["lastUpdateTime"] = f["lastTransitionTime"].clone();
            f["lastTransitionTime"] =
                json!(transition_time(old_conds, "ReplicaFailure", "True", &now));
            cs.push(f);
        }
        let gen = d["metadata"]["generation"].clone();
        let mut status = json!({
            "observedGeneration": gen,
            "replicas": replicas,
            "updatedReplicas": updated,
            "readyReplicas": ready,
            "availableReplicas": available,
            "conditions": conds,
        });
        if unavailable > 0 {
            status["unavailableReplicas"] = json!(unavailable);
        }
        let _ = s.update(Kind::Deployment, &ns, &name, Scope::Controller, |v| {
            v["status"] = status;
            Ok(())
        });
    }
    st.progress.retain(|uid, _| {
        s.list(Kind::Deployment, None)
            .iter()
            .any(|d| meta_str(d, "uid") == uid)
    });
}

/// Cascading deletion: ReplicaSets whose Deployment is gone, Jobs whose
/// CronJob is gone, pods whose ReplicaSet, StatefulSet or Job is gone (a
/// Job's pod's process is killed by the process kubelet when the pod is
/// deleted).
fn gc(s: &mut Store) {
    for (kind, owner) in [
        (Kind::ReplicaSet, Kind::Deployment),
        (Kind::Job, Kind::CronJob),
        (Kind::Pod, Kind::ReplicaSet),
        (Kind::Pod, Kind::StatefulSet),
        (Kind::Pod, Kind::Job),
    ] {
        let owners: HashSet<String> = s
            .list(owner, None)
            .iter()
            .map(|o| meta_str(o, "uid").to_string())
            .collect();
        let orphans: Vec<(String, String)> = s
            .list(kind, None)
            .into_iter()
            .filter(|o| {
                o["metadata"]["ownerReferences"]
                    .as_array()
                    .is_some_and(|refs| {
                        refs.iter().any(|r| {
                            r["kind"] == owner.kind()
                                && !owners.contains(r["uid"].as_str().unwrap_or(""))
                        })
                    })
            })
            .filter(|o| kind != Kind::Pod || active(o))
            .map(|o| {
                (
                    meta_str(o, "namespace").to_string(),
                    meta_str(o, "name").to_string(),
                )
            })
            .collect();
        for (ns, name) in orphans {
            if kind == Kind::Pod {
                mark_deleted(s, &ns, &name);
            } else {
                let _ = s.delete(kind, &ns, &name);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn surge_and_unavailable_round_like_kubernetes() {
        assert_eq!(resolve(&Value::Null, 3, true), 1);
        assert_eq!(resolve(&Value::Null, 3, false), 0);
        assert_eq!(resolve(&json!("50%"), 3, true), 2);
        assert_eq!(resolve(&json!(2), 3, false), 2);
    }

    #[test]
    fn template_hash_ignores_its_own_label() {
        let a = json!({"metadata": {"labels": {"app": "x"}}});
        let b = json!({"metadata": {"labels": {"app": "x", HASH_LABEL: "zz"}}});
        assert_eq!(template_hash(&a), template_hash(&b));
        assert_ne!(template_hash(&a), template_hash(&json!({})));
    }
}
