//! StatefulSets (apps/v1): what the API server defaults and validates on
//! one, the StatefulSet controller (simplified), and kubectl's table.
//!
//! The controller names pods `<set>-0` … `<set>-(N-1)`, labelled with
//! `statefulset.kubernetes.io/pod-name`, `apps.kubernetes.io/pod-index` and
//! `controller-revision-hash` = the revision `<set>-<template hash>`. With
//! `podManagementPolicy: OrderedReady` (the default) pod i+1 is created only
//! once pod i is Running and Ready, and a scale-down deletes the highest
//! ordinal first, one at a time; `Parallel` creates and deletes without
//! waiting. The `RollingUpdate` strategy replaces pods whose revision is not
//! the update revision from the highest ordinal down to `partition`, one at
//! a time, each after its successor is Ready again; `OnDelete` replaces a
//! pod only when it is deleted. The status is the real controller's:
//! counts, `currentRevision` / `updateRevision` (the current one catches up
//! when every pod is updated and ready) and `collisionCount`.
//!
//! The pods go through the in-process kubelet like a Deployment's (the
//! controller loop's `pods`), so they record `cutover.dev/db-config`; they
//! never write to a database. ControllerRevision objects are not stored:
//! the controller remembers the templates it has seen in memory (for a pod
//! below the partition that has to be recreated at the current revision).

use std::collections::{BTreeMap, HashMap};

use serde_json::{json, Value};

use super::controller::{
    active, mark_deleted, owned_by, pod_for, pod_ready, record_event, write_status,
};
use super::store::{fill_defaults, meta_str, ApiError, Kind, Store};

pub const POD_NAME_LABEL: &str = "statefulset.kubernetes.io/pod-name";
pub const POD_INDEX_LABEL: &str = "apps.kubernetes.io/pod-index";
pub const REVISION_LABEL: &str = "controller-revision-hash";

fn invalid(name: &str, field: &str, why: impl AsRef<str>) -> ApiError {
    ApiError::invalid(Kind::StatefulSet, name, field, why.as_ref())
}

/// What the API server fills in on every write: replicas 1,
/// podManagementPolicy OrderedReady, updateStrategy RollingUpdate with
/// partition 0, revisionHistoryLimit 10, the PVC retention policy.
pub fn default_set(obj: &mut Value) {
    let spec = &mut obj["spec"];
    if !spec.is_object() {
        return;
    }
    fill_defaults(
        spec,
        vec![
            ("replicas", json!(1)),
            ("podManagementPolicy", json!("OrderedReady")),
            ("revisionHistoryLimit", json!(10)),
            (
                "persistentVolumeClaimRetentionPolicy",
                json!({"whenDeleted": "Retain", "whenScaled": "Retain"}),
            ),
        ],
    );
    let strategy = &mut spec["updateStrategy"];
    if strategy["type"].is_null() {
        strategy["type"] = json!("RollingUpdate");
    }
    if strategy["type"] == "RollingUpdate" && strategy["rollingUpdate"]["partition"].is_null() {
        strategy["rollingUpdate"]["partition"] = json!(0);
    }
}

/// A `metav1.LabelSelector` (matchLabels and matchExpressions) against a
/// label map.
pub fn label_selector_matches(selector: &Value, labels: &Value) -> bool {
    let get = |k: &str| labels.get(k).and_then(Value::as_str);
    let eq = selector["matchLabels"]
        .as_object()
        .into_iter()
        .flatten()
        .all(|(k, v)| get(k).is_some_and(|l| Some(l) == v.as_str()));
    let exprs = selector["matchExpressions"]
        .as_array()
        .into_iter()
        .flatten()
        .all(|e| {
            let key = e["key"].as_str().unwrap_or("");
            let values: Vec<&str> = e["values"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            match e["operator"].as_str() {
                Some("In") => get(key).is_some_and(|v| values.contains(&v)),
                Some("NotIn") => get(key).is_none_or(|v| !values.contains(&v)),
                Some("Exists") => get(key).is_some(),
                Some("DoesNotExist") => get(key).is_none(),
                _ => false,
            }
        });
    eq && exprs
}

fn selector_is_empty(selector: &Value) -> bool {
    selector["matchLabels"]
        .as_object()
        .is_none_or(|m| m.is_empty())
        && selector["matchExpressions"]
            .as_array()
            .is_none_or(|a| a.is_empty())
}

/// The API server's checks on a StatefulSet that the simulator relies on.
pub fn validate(name: &str, obj: &Value) -> Result<(), ApiError> {
    let spec = &obj["spec"];
    if let Some(r) = spec.get("replicas").filter(|v| !v.is_null()) {
        if r.as_i64().is_none_or(|r| r < 0) {
            return Err(invalid(
                name,
                "spec.replicas",
                format!("Invalid value: {r}: must be greater than or equal to 0"),
            ));
        }
    }
    let selector = &spec["selector"];
    if !selector.is_object() {
        return Err(invalid(name, "spec.selector", "Required value"));
    }
    if selector_is_empty(selector) {
        return Err(invalid(
            name,
            "spec.selector",
            "Invalid value: \"null\": empty selector is invalid for statefulset",
        ));
    }
    let t = &spec["template"];
    if !t.is_object() {
        return Err(invalid(name, "spec.template", "Required value"));
    }
    let labels = &t["metadata"]["labels"];
    if !label_selector_matches(selector, labels) {
        return Err(invalid(
            name,
            "spec.template.metadata.labels",
            format!("Invalid value: {labels}: `selector` does not match template `labels`"),
        ));
    }
    if t["spec"]["containers"]
        .as_array()
        .is_none_or(|c| c.is_empty())
    {
        return Err(invalid(
            name,
            "spec.template.spec.containers",
            "Required value",
        ));
    }
    match spec["updateStrategy"]["type"].as_str() {
        None | Some("RollingUpdate" | "OnDelete") => {}
        Some(other) => {
            return Err(invalid(
                name,
                "spec.updateStrategy.type",
                format!(
                "Unsupported value: \"{other}\": supported values: \"OnDelete\", \"RollingUpdate\""
            ),
            ))
        }
    }
    let partition = &spec["updateStrategy"]["rollingUpdate"]["partition"];
    if !partition.is_null() && partition.as_i64().is_none_or(|p| p < 0) {
        return Err(invalid(
            name,
            "spec.updateStrategy.rollingUpdate.partition",
            format!("Invalid value: {partition}: must be greater than or equal to 0"),
        ));
    }
    match spec["podManagementPolicy"].as_str() {
        None | Some("OrderedReady" | "Parallel") => {}
        Some(other) => {
            return Err(invalid(
                name,
                "spec.podManagementPolicy",
                format!(
                "Unsupported value: \"{other}\": supported values: \"OrderedReady\", \"Parallel\""
            ),
            ))
        }
    }
    Ok(())
}

/// The spec fields an update may change; anything else is forbidden.
const MUTABLE: [&str; 6] = [
    "replicas",
    "ordinals",
    "template",
    "updateStrategy",
    "persistentVolumeClaimRetentionPolicy",
    "minReadySeconds",
];

pub fn check_immutable(name: &str, old: &Value, new: &Value) -> Result<(), ApiError> {
    let fixed = |v: &Value| {
        let mut spec = v["spec"].as_object().cloned().unwrap_or_default();
        spec.retain(|k, _| !MUTABLE.contains(&k.as_str()));
        spec
    };
    if fixed(old) != fixed(new) {
        return Err(invalid(
            name,
            "spec",
            "Forbidden: updates to statefulset spec for fields other than 'replicas', 'ordinals', \
             'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and \
             'minReadySeconds' are forbidden",
        ));
    }
    Ok(())
}

/// kubectl's columns for statefulsets (without `-o wide`).
pub const TABLE_COLUMNS: [(&str, &str); 3] =
    [("Name", "string"), ("Ready", "string"), ("Age", "string")];

/// One row of `kubectl get sts`: NAME, READY (`ready/desired`), AGE.
pub fn table_row(o: &Value) -> Vec<Value> {
    vec![
        json!(meta_str(o, "name")),
        super::http::ready_column(o),
        json!(super::http::human_age(meta_str(o, "creationTimestamp"))),
    ]
}

/// What the controller remembers between passes: per StatefulSet uid, the
/// templates of the revisions it has seen (the real one stores them as
/// ControllerRevisions).
#[derive(Default)]
pub struct Sets {
    revisions: HashMap<String, HashMap<String, Value>>,
}

/// Running and Ready, and not being deleted.
fn healthy(pod: &Value) -> bool {
    active(pod) && pod["status"]["phase"] == "Running" && pod_ready(pod)
}

fn revision(pod: &Value) -> &str {
    pod["metadata"]["labels"][REVISION_LABEL]
        .as_str()
        .unwrap_or("")
}

/// One pass of the StatefulSet controller over every StatefulSet.
pub fn sync(s: &mut Store, st: &mut Sets) {
    let sets: Vec<Value> = s
        .list(Kind::StatefulSet, None)
        .into_iter()
        .cloned()
        .collect();
    st.revisions
        .retain(|uid, _| sets.iter().any(|x| meta_str(x, "uid") == uid));
    for set in &sets {
        sync_set(s, st, set);
        set_status(s, set);
    }
}

/// The set's pods by ordinal (pods whose name is not `<set>-<n>` are ignored).
fn pods_by_ordinal(s: &Store, set: &Value) -> BTreeMap<i64, Value> {
    let name = meta_str(set, "name");
    let prefix = format!("{name}-");
    owned_by(
        s.list(Kind::Pod, Some(meta_str(set, "namespace"))),
        meta_str(set, "uid"),
    )
    .into_iter()
    .filter_map(|p| {
        let i = meta_str(p, "name")
            .strip_prefix(&prefix)?
            .parse::<i64>()
            .ok()?;
        Some((i, p.clone()))
    })
    .collect()
}

/// `<set>-<hash of the template>`: the revision name, as the
/// ControllerRevision would be called.
pub fn revision_name(set: &Value) -> String {
    format!(
        "{}-{}",
        meta_str(set, "name"),
        super::controller::template_hash(&set["spec"]["template"])
    )
}

fn partition(set: &Value) -> i64 {
    set["spec"]["updateStrategy"]["rollingUpdate"]["partition"]
        .as_i64()
        .unwrap_or(0)
}

fn rolling(set: &Value) -> bool {
    set["spec"]["updateStrategy"]["type"] != "OnDelete"
}

fn sync_set(s: &mut Store, st: &mut Sets, set: &Value) {
    let uid = meta_str(set, "uid").to_string();
    let replicas = set["spec"]["replicas"].as_i64().unwrap_or(1);
    let ordered = set["spec"]["podManagementPolicy"] != "Parallel";
    let update_rev = revision_name(set);
    let current_rev = set["status"]["currentRevision"]
        .as_str()
        .filter(|r| !r.is_empty())
        .unwrap_or(&update_rev)
        .to_string();
    let seen = st.revisions.entry(uid).or_default();
    seen.insert(update_rev.clone(), set["spec"]["template"].clone());
    let pods = pods_by_ordinal(s, set);

    // Create what is missing, in order; OrderedReady waits for each pod.
    for i in 0..replicas {
        match pods.get(&i) {
            None => {
                // Below the partition a pod comes back at the current revision.
                let below = rolling(set) && i < partition(set);
                let (rev, template) = match seen.get(&current_rev) {
                    Some(t) if below => (current_rev.clone(), t.clone()),
                    _ => (update_rev.clone(), set["spec"]["template"].clone()),
                };
                create_pod(s, set, i, &rev, template);
                if ordered {
                    return;
                }
            }
            Some(p) if ordered && !healthy(p) => return,
            Some(_) => {}
        }
    }
    // Scale down: the highest ordinal first.
    let condemned: Vec<&Value> = pods.range(replicas..).rev().map(|(_, p)| p).collect();
    for p in &condemned {
        if !active(p) {
            if ordered {
                return;
            }
            continue;
        }
        delete_pod(s, set, p);
        if ordered {
            return;
        }
    }
    if !condemned.is_empty() || !rolling(set) {
        return;
    }
    // Rolling update: one pod at a time, from the highest ordinal down.
    for i in (partition(set)..replicas).rev() {
        let Some(p) = pods.get(&i) else {
            return;
        };
        if revision(p) != update_rev && active(p) {
            delete_pod(s, set, p);
            return;
        }
        if !healthy(p) {
            return;
        }
    }
}

fn create_pod(s: &mut Store, set: &Value, i: i64, rev: &str, template: Value) {
    let ns = meta_str(set, "namespace").to_string();
    let set_name = meta_str(set, "name");
    let name = format!("{set_name}-{i}");
    let mut labels = template["metadata"]["labels"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    for (k, v) in [
        (POD_NAME_LABEL, name.clone()),
        (REVISION_LABEL, rev.to_string()),
        (POD_INDEX_LABEL, i.to_string()),
    ] {
        labels.insert(k.into(), json!(v));
    }
    let mut owner = set.clone();
    owner["spec"]["template"] = template;
    let mut pod = pod_for(&owner, &Value::Object(labels));
    pod["metadata"]["name"] = json!(name);
    pod["spec"]["hostname"] = json!(name);
    if let Some(svc) = set["spec"]["serviceName"]
        .as_str()
        .filter(|s| !s.is_empty())
    {
        pod["spec"]["subdomain"] = json!(svc);
    }
    let (etype, reason, message) = match s.create(Kind::Pod, &ns, pod) {
        Ok(_) => (
            "Normal",
            "SuccessfulCreate",
            format!("create Pod {name} in StatefulSet {set_name} successful"),
        ),
        Err(e) => (
            "Warning",
            "FailedCreate",
            format!(
                "create Pod {name} in StatefulSet {set_name} failed error: {}",
                e.message
            ),
        ),
    };
    record_event(s, set, etype, reason, &message);
}

fn delete_pod(s: &mut Store, set: &Value, pod: &Value) {
    let name = meta_str(pod, "name");
    mark_deleted(s, meta_str(pod, "namespace"), name);
    let message = format!(
        "delete Pod {name} in StatefulSet {} successful",
        meta_str(set, "name")
    );
    record_event(s, set, "Normal", "SuccessfulDelete", &message);
}

/// The status the real controller computes (without minReadySeconds: a
/// ready pod is available).
fn set_status(s: &mut Store, set: &Value) {
    let ns = meta_str(set, "namespace").to_string();
    let name = meta_str(set, "name").to_string();
    let pods = pods_by_ordinal(s, set);
    let update_rev = revision_name(set);
    let mut current_rev = set["status"]["currentRevision"]
        .as_str()
        .filter(|r| !r.is_empty())
        .unwrap_or(&update_rev)
        .to_string();
    let live = || pods.values().filter(|p| active(p));
    let count = |rev: &str| live().filter(|p| revision(p) == rev).count() as i64;
    let replicas = pods.len() as i64;
    let ready = pods.values().filter(|p| healthy(p)).count() as i64;
    let updated = count(&update_rev);
    let mut current = count(&current_rev);
    if rolling(set) && updated == replicas && ready == replicas {
        current_rev = update_rev.clone();
        current = updated;
    }
    let status = json!({
        "observedGeneration": set["metadata"]["generation"],
        "replicas": replicas,
        "readyReplicas": ready,
        "currentReplicas": current,
        "updatedReplicas": updated,
        "availableReplicas": ready,
        "currentRevision": current_rev,
        "updateRevision": update_rev,
        "collisionCount": 0,
    });
    write_status(s, Kind::StatefulSet, &ns, &name, status);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(spec: Value) -> Value {
        json!({"metadata": {"name": "db"}, "spec": spec})
    }

    fn ok_spec() -> Value {
        json!({
            "selector": {"matchLabels": {"app": "db"}},
            "template": {"metadata": {"labels": {"app": "db", "tier": "x"}},
                "spec": {"containers": [{"name": "c", "image": "i"}]}},
        })
    }

    #[test]
    fn defaults_like_the_api_server() {
        let mut v = set(ok_spec());
        default_set(&mut v);
        assert_eq!(v["spec"]["replicas"], 1);
        assert_eq!(v["spec"]["podManagementPolicy"], "OrderedReady");
        assert_eq!(v["spec"]["updateStrategy"]["type"], "RollingUpdate");
        assert_eq!(v["spec"]["updateStrategy"]["rollingUpdate"]["partition"], 0);
        validate("db", &v).unwrap();
        let mut od = set(json!({"updateStrategy": {"type": "OnDelete"}}));
        default_set(&mut od);
        assert!(od["spec"]["updateStrategy"]["rollingUpdate"].is_null());
    }

    #[test]
    fn rejects_what_the_api_server_rejects() {
        let mut no_sel = ok_spec();
        no_sel["selector"] = Value::Null;
        let mut mismatch = ok_spec();
        mismatch["selector"] = json!({"matchLabels": {"app": "other"}});
        let mut expr = ok_spec();
        expr["selector"] =
            json!({"matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["x"]}]});
        let mut strategy = ok_spec();
        strategy["updateStrategy"] = json!({"type": "Recreate"});
        let mut replicas = ok_spec();
        replicas["replicas"] = json!(-1);
        for (spec, field) in [
            (no_sel, "spec.selector"),
            (mismatch, "spec.template.metadata.labels"),
            (expr, "spec.template.metadata.labels"),
            (strategy, "spec.updateStrategy.type"),
            (replicas, "spec.replicas"),
        ] {
            let e = validate("db", &set(spec.clone())).unwrap_err();
            assert_eq!(e.code, 422, "{spec}");
            assert!(e.message.contains(&format!("{field}:")), "{}", e.message);
        }
        let mut changed = set(ok_spec());
        changed["spec"]["serviceName"] = json!("other");
        assert_eq!(
            check_immutable("db", &set(ok_spec()), &changed)
                .unwrap_err()
                .code,
            422
        );
        let mut scaled = set(ok_spec());
        scaled["spec"]["replicas"] = json!(5);
        check_immutable("db", &set(ok_spec()), &scaled).unwrap();
    }
}
