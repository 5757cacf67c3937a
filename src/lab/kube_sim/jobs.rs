//! Jobs (batch/v1): what the API server defaults and validates on a Job,
//! the job controller (one pod at a time per `parallelism`, counting
//! succeeded and failed pods into the status, `backoffLimit`,
//! `activeDeadlineSeconds`, `ttlSecondsAfterFinished`), and kubectl's table
//! columns for `kubectl get jobs`. The pods it creates are run as real
//! processes by the [`super::kubelet`].

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use serde_json::{json, Map, Value};

use super::controller::{active, int, mark_deleted, owned_by, pod_for, pod_ready, record_event};
use super::store::{meta_str, now_rfc3339, ApiError, Kind, Scope, Store};

/// The labels the API server puts on a Job's template (and so on its pods)
/// and the key of the selector it defaults.
const UID_LABEL: &str = "batch.kubernetes.io/controller-uid";
const NAME_LABEL: &str = "batch.kubernetes.io/job-name";

/// First delay before a failed pod is replaced; doubles up to
/// [`BACKOFF_MAX`] (the real controller starts at 10 s; shortened for the lab).
const BACKOFF_START: Duration = Duration::from_millis(250);
const BACKOFF_MAX: Duration = Duration::from_secs(4);

fn job_labels(name: &str, uid: &str) -> [(&'static str, String); 4] {
    [
        (UID_LABEL, uid.to_string()),
        (NAME_LABEL, name.to_string()),
        ("controller-uid", uid.to_string()),
        ("job-name", name.to_string()),
    ]
}

/// What the API server fills in on create (after the uid is assigned):
/// backoffLimit 6, completions 1, parallelism 1, the selector on
/// `batch.kubernetes.io/controller-uid` and the template's labels (also the
/// Job's, when it has none); a status sent with the Job is dropped.
pub fn default_job(obj: &mut Value) {
    let name = meta_str(obj, "name").to_string();
    let uid = meta_str(obj, "uid").to_string();
    if let Some(m) = obj.as_object_mut() {
        m.remove("status");
    }
    let spec = &mut obj["spec"];
    for (field, v) in [
        ("backoffLimit", json!(6)),
        ("completions", json!(1)),
        ("parallelism", json!(1)),
        ("completionMode", json!("NonIndexed")),
        ("suspend", json!(false)),
        ("podReplacementPolicy", json!("TerminatingOrFailed")),
    ] {
        if spec[field].is_null() {
            spec[field] = v;
        }
    }
    if spec["manualSelector"] == true {
        return;
    }
    spec["selector"] = json!({"matchLabels": {UID_LABEL: uid}});
    let labels = &mut spec["template"]["metadata"]["labels"];
    if !labels.is_object() {
        *labels = Value::Object(Map::new());
    }
    for (k, v) in job_labels(&name, &uid) {
        labels[k] = json!(v);
    }
    // A Job without labels of its own gets its template's.
    let copy = labels.clone();
    let own = &mut obj["metadata"]["labels"];
    if own.as_object().is_none_or(|m| m.is_empty()) {
        *own = copy;
    }
}

fn invalid(name: &str, field: &str, why: impl AsRef<str>) -> ApiError {
    ApiError::invalid(Kind::Job, name, field, why.as_ref())
}

/// The API server's checks on a Job that the simulator relies on.
pub fn validate(name: &str, obj: &Value) -> Result<(), ApiError> {
    let spec = &obj["spec"];
    let t = &spec["template"];
    if !t.is_object() {
        return Err(invalid(name, "spec.template", "Required value"));
    }
    for (field, min) in [
        ("backoffLimit", 0),
        ("completions", 0),
        ("parallelism", 0),
        ("activeDeadlineSeconds", 1),
        ("ttlSecondsAfterFinished", 0),
    ] {
        let v = &spec[field];
        if !v.is_null() && v.as_i64().is_none_or(|n| n < min) {
            let bound = if min == 0 {
                "greater than or equal to 0"
            } else {
                "greater than 0"
            };
            return Err(invalid(
                name,
                &format!("spec.{field}"),
                format!("Invalid value: {v}: must be {bound}"),
            ));
        }
    }
    let pod = &t["spec"];
    match pod["restartPolicy"].as_str() {
        Some("Never" | "OnFailure") => {}
        None => {
            return Err(invalid(
                name,
                "spec.template.spec.restartPolicy",
                "Required value: valid values: \"OnFailure\", \"Never\"",
            ))
        }
        Some(other) => {
            return Err(invalid(
                name,
                "spec.template.spec.restartPolicy",
                format!(
                    "Unsupported value: \"{other}\": supported values: \"OnFailure\", \"Never\""
                ),
            ))
        }
    }
    let containers = pod["containers"].as_array().filter(|c| !c.is_empty());
    let Some(containers) = containers else {
        return Err(invalid(
            name,
            "spec.template.spec.containers",
            "Required value",
        ));
    };
    let volumes: HashSet<&str> = pod["volumes"]
        .as_array()
        .map(|vs| vs.iter().filter_map(|v| v["name"].as_str()).collect())
        .unwrap_or_default();
    for (i, c) in containers.iter().enumerate() {
        if c["name"].as_str().is_none_or(str::is_empty) {
            return Err(invalid(
                name,
                &format!("spec.template.spec.containers[{i}].name"),
                "Required value",
            ));
        }
        for (j, m) in c["volumeMounts"]
            .as_array()
            .into_iter()
            .flatten()
            .enumerate()
        {
            let vol = m["name"].as_str().unwrap_or("");
            if !volumes.contains(vol) {
                return Err(invalid(
                    name,
                    &format!("spec.template.spec.containers[{i}].volumeMounts[{j}].name"),
                    format!("Not found: \"{vol}\""),
                ));
            }
            if !m["mountPath"].as_str().is_some_and(|p| p.starts_with('/')) {
                return Err(invalid(
                    name,
                    &format!("spec.template.spec.containers[{i}].volumeMounts[{j}].mountPath"),
                    "Required value: an absolute path",
                ));
            }
        }
    }
    Ok(())
}

/// A Job's selector and pod template cannot change once created.
pub fn check_immutable(name: &str, old: &Value, new: &Value) -> Result<(), ApiError> {
    for field in ["selector", "template"] {
        if old["spec"][field] != new["spec"][field] {
            return Err(invalid(
                name,
                &format!("spec.{field}"),
                "Invalid value: field is immutable",
            ));
        }
    }
    Ok(())
}

fn condition_true(status: &Value, t: &str) -> bool {
    status["conditions"]
        .as_array()
        .is_some_and(|cs| cs.iter().any(|c| c["type"] == t && c["status"] == "True"))
}

/// kubectl's columns for jobs (the ones it shows without `-o wide`).
pub const TABLE_COLUMNS: [(&str, &str); 5] = [
    ("Name", "string"),
    ("Status", "string"),
    ("Completions", "string"),
    ("Duration", "string"),
    ("Age", "string"),
];

/// One row of `kubectl get jobs`: NAME, STATUS, COMPLETIONS, DURATION, AGE.
pub fn table_row(o: &Value) -> Vec<Value> {
    let st = &o["status"];
    let status = if !o["metadata"]["deletionTimestamp"].is_null() {
        "Terminating"
    } else {
        [
            "Failed",
            "Complete",
            "Suspended",
            "FailureTarget",
            "SuccessCriteriaMet",
        ]
        .into_iter()
        .find(|t| condition_true(st, t))
        .unwrap_or("Running")
    };
    let time = |f: &str| {
        st[f]
            .as_str()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
    };
    let duration = match (time("startTime"), time("completionTime")) {
        (Some(a), Some(b)) => super::http::human_duration((b - a).num_seconds()),
        (Some(a), None) => super::http::human_duration(
            (chrono::Utc::now() - a.with_timezone(&chrono::Utc)).num_seconds(),
        ),
        _ => String::new(),
    };
    vec![
        json!(meta_str(o, "name")),
        json!(status),
        json!(format!(
            "{}/{}",
            int(&st["succeeded"]),
            o["spec"]["completions"].as_i64().unwrap_or(1)
        )),
        json!(duration),
        json!(super::http::human_age(meta_str(o, "creationTimestamp"))),
    ]
}

/// What the job controller remembers about a Job between passes (the real
/// one keeps it in pod finalizers and `uncountedTerminatedPods`).
struct JobRt {
    /// activeDeadlineSeconds counts from here.
    started: Instant,
    /// Pods already counted in `succeeded` or `failed`.
    counted: HashSet<String>,
    /// No new pod before this: the backoff after a failure.
    not_before: Instant,
    delay: Duration,
    finished: Option<Instant>,
}

#[derive(Default)]
pub struct Jobs {
    /// Job uid → its bookkeeping.
    rt: HashMap<String, JobRt>,
}

/// How a Job ends.
enum Outcome {
    Complete,
    Failed(&'static str, &'static str),
}

/// One pass of the job controller over every Job.
pub fn sync(s: &mut Store, st: &mut Jobs) {
    let now = Instant::now();
    let jobs: Vec<Value> = s.list(Kind::Job, None).into_iter().cloned().collect();
    st.rt
        .retain(|uid, _| jobs.iter().any(|j| meta_str(j, "uid") == uid));
    for job in &jobs {
        sync_job(s, st, job, now);
    }
}

fn terminal(pod: &Value) -> bool {
    matches!(
        pod["status"]["phase"].as_str(),
        Some("Succeeded" | "Failed")
    )
}

fn sync_job(s: &mut Store, st: &mut Jobs, job: &Value, now: Instant) {
    let ns = meta_str(job, "namespace").to_string();
    let name = meta_str(job, "name").to_string();
    let uid = meta_str(job, "uid").to_string();
    let spec = &job["spec"];
    let old = &job["status"];
    let rt = st.rt.entry(uid.clone()).or_insert_with(|| JobRt {
        started: now,
        counted: HashSet::new(),
        not_before: now,
        delay: Duration::ZERO,
        finished: None,
    });
    let pods: Vec<Value> = owned_by(s.list(Kind::Pod, Some(&ns)), &uid)
        .into_iter()
        .cloned()
        .collect();
    let (mut succeeded, mut failed) = (int(&old["succeeded"]), int(&old["failed"]));
    let mut newly_failed = false;
    for p in &pods {
        let puid = meta_str(p, "uid");
        if rt.counted.contains(puid) {
            continue;
        }
        // With podReplacementPolicy TerminatingOrFailed a pod being deleted
        // before it succeeded counts as failed at once.
        match p["status"]["phase"].as_str() {
            Some("Succeeded") => succeeded += 1,
            Some("Failed") => failed += 1,
            _ if !active(p) => failed += 1,
            _ => continue,
        }
        newly_failed |= p["status"]["phase"] != "Succeeded";
        rt.counted.insert(puid.to_string());
    }
    let mut running: Vec<&Value> = pods.iter().filter(|p| active(p) && !terminal(p)).collect();
    let completions = spec["completions"].as_i64().unwrap_or(1);
    let parallelism = spec["parallelism"].as_i64().unwrap_or(1);
    let backoff_limit = spec["backoffLimit"].as_i64().unwrap_or(6);
    let now_s = now_rfc3339();
    let mut conds: Vec<Value> = old["conditions"].as_array().cloned().unwrap_or_default();
    let mut completion_time = old["completionTime"].clone();
    let finished = condition_true(old, "Complete") || condition_true(old, "Failed");
    let deadline = spec["activeDeadlineSeconds"]
        .as_i64()
        .map(|d| Duration::from_secs(d.max(0) as u64));
    let outcome = if finished {
        None
    } else if succeeded >= completions {
        Some(Outcome::Complete)
    } else if failed > backoff_limit {
        Some(Outcome::Failed(
            "BackoffLimitExceeded",
            "Job has reached the specified backoff limit",
        ))
    } else if deadline.is_some_and(|d| now.duration_since(rt.started) >= d) {
        Some(Outcome::Failed(
            "DeadlineExceeded",
            "Job was active longer than specified deadline",
        ))
    } else {
        None
    };
    if finished || outcome.is_some() {
        // What still runs of a finished Job is deleted (and, when the Job
        // failed, counted as failed).
        let failing = matches!(outcome, Some(Outcome::Failed(..)));
        for p in running.drain(..) {
            let pname = meta_str(p, "name");
            mark_deleted(s, &ns, pname);
            record_event(
                s,
                job,
                "Normal",
                "SuccessfulDelete",
                &format!("Deleted pod: {pname}"),
            );
            if failing && rt.counted.insert(meta_str(p, "uid").to_string()) {
                failed += 1;
            }
        }
    }
    let cond = |t: &str, reason: &str, message: &str| {
        json!({
            "type": t, "status": "True", "reason": reason, "message": message,
            "lastProbeTime": now_s, "lastTransitionTime": now_s,
        })
    };
    match outcome {
        Some(Outcome::Complete) => {
            let (r, m) = (
                "CompletionsReached",
                "Reached expected number of succeeded pods",
            );
            conds.push(cond("SuccessCriteriaMet", r, m));
            conds.push(cond("Complete", r, m));
            completion_time = json!(now_s);
            record_event(s, job, "Normal", "Completed", "Job completed");
            rt.finished = Some(now);
        }
        Some(Outcome::Failed(reason, message)) => {
            conds.push(cond("FailureTarget", reason, message));
            conds.push(cond("Failed", reason, message));
            record_event(s, job, "Warning", reason, message);
            rt.finished = Some(now);
        }
        None if finished => {
            rt.finished.get_or_insert(now);
        }
        None => {
            if newly_failed {
                rt.delay = if rt.delay.is_zero() {
                    BACKOFF_START
                } else {
                    (rt.delay * 2).min(BACKOFF_MAX)
                };
                rt.not_before = now + rt.delay;
            }
            let want = parallelism.min(completions - succeeded).max(0) - running.len() as i64;
            if want > 0 && now >= rt.not_before {
                for _ in 0..want {
                    create_pod(s, job);
                }
            }
        }
    }
    // Pods created just now are counted on the next pass, as the real
    // controller sees them through its informer.
    let active_n = running.len() as i64;
    let ready = running.iter().filter(|p| pod_ready(p)).count();
    let terminating = pods.iter().filter(|p| !active(p) && !terminal(p)).count();
    let start = old["startTime"]
        .as_str()
        .map_or_else(|| now_s.clone(), str::to_string);
    let mut status = json!({
        "startTime": start,
        "ready": ready,
        "terminating": terminating,
        "uncountedTerminatedPods": {},
    });
    for (field, n) in [
        ("active", active_n),
        ("succeeded", succeeded),
        ("failed", failed),
    ] {
        if n > 0 {
            status[field] = json!(n);
        }
    }
    if !conds.is_empty() {
        status["conditions"] = Value::Array(conds);
    }
    if !completion_time.is_null() {
        status["completionTime"] = completion_time;
    }
    let _ = s.update(Kind::Job, &ns, &name, Scope::Controller, |v| {
        v["status"] = status;
        Ok(())
    });
    let ttl = spec["ttlSecondsAfterFinished"].as_i64();
    if let (Some(at), Some(ttl)) = (rt.finished, ttl) {
        if now.duration_since(at) >= Duration::from_secs(ttl.max(0) as u64) {
            // The TTL controller deletes in the background: gc takes the pods.
            let _ = s.delete(Kind::Job, &ns, &name);
        }
    }
}

/// A pod from the Job's template, named `<job>-<5 random characters>`,
/// labelled and owned like the real controller's.
fn create_pod(s: &mut Store, job: &Value) {
    let ns = meta_str(job, "namespace").to_string();
    let mut labels = job["spec"]["template"]["metadata"]["labels"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    for (k, v) in job_labels(meta_str(job, "name"), meta_str(job, "uid")) {
        labels.insert(k.into(), json!(v));
    }
    let pod = pod_for(job, &Value::Object(labels));
    let (reason, etype, message) = match s.create(Kind::Pod, &ns, pod) {
        Ok(p) => (
            "SuccessfulCreate",
            "Normal",
            format!("Created pod: {}", meta_str(&p, "name")),
        ),
        Err(e) => (
            "FailedCreate",
            "Warning",
            format!("Error creating: {}", e.message),
        ),
    };
    record_event(s, job, etype, reason, &message);
}

/// Whether a pod is run by the process kubelet: a Job's pod.
pub fn owned_by_job(pod: &Value) -> bool {
    pod["metadata"]["ownerReferences"]
        .as_array()
        .is_some_and(|refs| refs.iter().any(|r| r["kind"] == "Job"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(spec: Value) -> Value {
        json!({"metadata": {"name": "j", "uid": "u1"}, "spec": spec})
    }

    #[test]
    fn defaults_and_labels_like_the_api_server() {
        let mut j = job(json!({"template": {"spec": {"restartPolicy": "Never",
            "containers": [{"name": "c", "command": ["true"]}]}}}));
        j["status"] = json!({"active": 3});
        default_job(&mut j);
        assert_eq!(j["spec"]["backoffLimit"], 6);
        assert_eq!(j["spec"]["completions"], 1);
        assert_eq!(j["spec"]["parallelism"], 1);
        assert_eq!(j["spec"]["selector"]["matchLabels"][UID_LABEL], "u1");
        let l = &j["spec"]["template"]["metadata"]["labels"];
        assert_eq!(l["job-name"], "j");
        assert_eq!(l["controller-uid"], "u1");
        assert_eq!(j["metadata"]["labels"], *l);
        assert!(j.get("status").is_none());
        validate("j", &j).unwrap();
    }

    #[test]
    fn rejects_what_the_api_server_rejects() {
        let ok = json!({"restartPolicy": "Never", "containers": [{"name": "c"}]});
        let cases = [
            (json!({}), "spec.template"),
            (
                json!({"template": {"spec": {"containers": [{"name": "c"}]}}}),
                "spec.template.spec.restartPolicy",
            ),
            (
                json!({"template": {"spec": {"restartPolicy": "Always", "containers": [{"name": "c"}]}}}),
                "spec.template.spec.restartPolicy",
            ),
            (
                json!({"template": {"spec": {"restartPolicy": "Never"}}}),
                "spec.template.spec.containers",
            ),
            (
                json!({"backoffLimit": -1, "template": {"spec": ok}}),
                "spec.backoffLimit",
            ),
            (
                json!({"activeDeadlineSeconds": 0, "template": {"spec": ok}}),
                "spec.activeDeadlineSeconds",
            ),
            (
                json!({"template": {"spec": {"restartPolicy": "Never", "containers": [
                    {"name": "c", "volumeMounts": [{"name": "nope", "mountPath": "/x"}]}]}}}),
                "spec.template.spec.containers[0].volumeMounts[0].name",
            ),
        ];
        for (spec, field) in cases {
            let e = validate("j", &job(spec.clone())).unwrap_err();
            assert_eq!(e.code, 422, "{spec}");
            assert!(
                e.message.contains(&format!("{field}:")),
                "{spec}: {}",
                e.message
            );
        }
    }

    #[test]
    fn table_row_reads_like_kubectl() {
        let j = json!({
            "metadata": {"name": "j", "creationTimestamp": now_rfc3339()},
            "spec": {"completions": 1},
            "status": {
                "succeeded": 1,
                "startTime": "2026-01-01T00:00:00Z",
                "completionTime": "2026-01-01T00:00:07Z",
                "conditions": [{"type": "Complete", "status": "True"}],
            },
        });
        let row = table_row(&j);
        assert_eq!(row[1], "Complete");
        assert_eq!(row[2], "1/1");
        assert_eq!(row[3], "7s");
    }
}
