//! The simulator's object store: every object as Kubernetes JSON, one
//! resourceVersion counter across all kinds (like etcd's revision), and a
//! bounded event history so watches can resume from a resourceVersion.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use chrono::{SecondsFormat, Utc};
use serde_json::{json, Map, Value};
use tokio::sync::{broadcast, Notify};

/// How many past events a watch can resume from before getting 410 Gone.
const HISTORY: usize = 20_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    Namespace,
    Deployment,
    ReplicaSet,
    Pod,
    ConfigMap,
    Secret,
    Service,
    Event,
    Job,
    StatefulSet,
    CronJob,
}

impl Kind {
    pub const ALL: [Kind; 11] = [
        Kind::Namespace,
        Kind::Deployment,
        Kind::ReplicaSet,
        Kind::Pod,
        Kind::ConfigMap,
        Kind::Secret,
        Kind::Service,
        Kind::Event,
        Kind::Job,
        Kind::StatefulSet,
        Kind::CronJob,
    ];

    pub fn plural(self) -> &'static str {
        match self {
            Kind::Namespace => "namespaces",
            Kind::Deployment => "deployments",
            Kind::ReplicaSet => "replicasets",
            Kind::Pod => "pods",
            Kind::ConfigMap => "configmaps",
            Kind::Secret => "secrets",
            Kind::Service => "services",
            Kind::Event => "events",
            Kind::Job => "jobs",
            Kind::StatefulSet => "statefulsets",
            Kind::CronJob => "cronjobs",
        }
    }

    pub fn singular(self) -> &'static str {
        match self {
            Kind::Namespace => "namespace",
            Kind::Deployment => "deployment",
            Kind::ReplicaSet => "replicaset",
            Kind::Pod => "pod",
            Kind::ConfigMap => "configmap",
            Kind::Secret => "secret",
            Kind::Service => "service",
            Kind::Event => "event",
            Kind::Job => "job",
            Kind::StatefulSet => "statefulset",
            Kind::CronJob => "cronjob",
        }
    }

    pub fn kind(self) -> &'static str {
        match self {
            Kind::Namespace => "Namespace",
            Kind::Deployment => "Deployment",
            Kind::ReplicaSet => "ReplicaSet",
            Kind::Pod => "Pod",
            Kind::ConfigMap => "ConfigMap",
            Kind::Secret => "Secret",
            Kind::Service => "Service",
            Kind::Event => "Event",
            Kind::Job => "Job",
            Kind::StatefulSet => "StatefulSet",
            Kind::CronJob => "CronJob",
        }
    }

    /// API group ("" for the core group).
    pub fn group(self) -> &'static str {
        match self {
            Kind::Deployment | Kind::ReplicaSet | Kind::StatefulSet => "apps",
            Kind::Job | Kind::CronJob => "batch",
            _ => "",
        }
    }

    pub fn api_version(self) -> &'static str {
        match self.group() {
            "apps" => "apps/v1",
            "batch" => "batch/v1",
            _ => "v1",
        }
    }

    pub fn namespaced(self) -> bool {
        self != Kind::Namespace
    }

    pub fn short_names(self) -> &'static [&'static str] {
        match self {
            Kind::Namespace => &["ns"],
            Kind::Deployment => &["deploy"],
            Kind::ReplicaSet => &["rs"],
            Kind::Pod => &["po"],
            Kind::ConfigMap => &["cm"],
            Kind::Secret => &[],
            Kind::Service => &["svc"],
            Kind::Event => &["ev"],
            Kind::Job => &[],
            Kind::StatefulSet => &["sts"],
            Kind::CronJob => &["cj"],
        }
    }

    /// Kinds whose spec changes bump metadata.generation.
    fn has_generation(self) -> bool {
        matches!(
            self,
            Kind::Deployment | Kind::ReplicaSet | Kind::Job | Kind::StatefulSet | Kind::CronJob
        )
    }

    /// Kinds with a status subresource: a write to the main resource keeps
    /// the stored status.
    pub fn has_status(self) -> bool {
        matches!(
            self,
            Kind::Deployment
                | Kind::ReplicaSet
                | Kind::Pod
                | Kind::Job
                | Kind::StatefulSet
                | Kind::CronJob
        )
    }

    pub fn from_plural(group: &str, plural: &str) -> Option<Kind> {
        Kind::ALL
            .into_iter()
            .find(|k| k.group() == group && k.plural() == plural)
    }
}

/// An error the API answers with, rendered as a `Status` object.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub code: u16,
    pub reason: &'static str,
    pub message: String,
    pub details: Option<Value>,
}

impl ApiError {
    pub fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            code,
            reason,
            message: message.into(),
            details: None,
        }
    }

    pub fn not_found(kind: Kind, name: &str) -> Self {
        let mut e = Self::new(
            404,
            "NotFound",
            format!(
                "{}.{} \"{name}\" not found",
                kind.plural(),
                group_or_core(kind)
            ),
        );
        if kind.group().is_empty() {
            e.message = format!("{} \"{name}\" not found", kind.plural());
        }
        e.details = Some(details(kind, name));
        e
    }

    pub fn already_exists(kind: Kind, name: &str) -> Self {
        let mut e = Self::new(
            409,
            "AlreadyExists",
            format!("{} \"{name}\" already exists", kind.plural()),
        );
        e.details = Some(details(kind, name));
        e
    }

    pub fn conflict(kind: Kind, name: &str) -> Self {
        let mut e = Self::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} \"{name}\": the object has been modified; \
                 please apply your changes to the latest version and try again",
                kind.plural()
            ),
        );
        e.details = Some(details(kind, name));
        e
    }

    pub fn invalid(kind: Kind, name: &str, field: &str, why: &str) -> Self {
        let mut e = Self::new(
            422,
            "Invalid",
            format!("{} \"{name}\" is invalid: {field}: {why}", kind.kind()),
        );
        let mut d = details(kind, name);
        d["causes"] = json!([{"reason": "FieldValueInvalid", "message": why, "field": field}]);
        e.details = Some(d);
        e
    }

    pub fn bad_request(msg: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", msg)
    }

    pub fn status(&self) -> Value {
        let mut v = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if let Some(d) = &self.details {
            v["details"] = d.clone();
        }
        v
    }
}

fn group_or_core(kind: Kind) -> &'static str {
    kind.group()
}

fn details(kind: Kind, name: &str) -> Value {
    json!({"name": name, "group": kind.group(), "kind": kind.plural()})
}

#[derive(Debug, Clone)]
pub struct WatchEvent {
    pub rv: u64,
    pub kind: Kind,
    pub ns: String,
    pub etype: &'static str,
    pub obj: Value,
}

type Key = (Kind, String, String);

pub type WatchReceiver = broadcast::Receiver<Arc<WatchEvent>>;

pub struct Store {
    rv: u64,
    uid_seq: u64,
    objs: BTreeMap<Key, Value>,
    history: VecDeque<Arc<WatchEvent>>,
    /// Oldest resourceVersion a watch may resume after without missing events.
    oldest_resumable: u64,
    tx: broadcast::Sender<Arc<WatchEvent>>,
    /// Wakes the controllers after any change.
    pub changed: Arc<Notify>,
}

pub fn now_rfc3339() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true)
}

pub fn meta_str<'a>(obj: &'a Value, field: &str) -> &'a str {
    obj["metadata"][field].as_str().unwrap_or("")
}

impl Store {
    pub fn new() -> Store {
        let (tx, _) = broadcast::channel(8192);
        Store {
            rv: 1,
            uid_seq: 0,
            objs: BTreeMap::new(),
            history: VecDeque::new(),
            oldest_resumable: 1,
            tx,
            changed: Arc::new(Notify::new()),
        }
    }

    pub fn resource_version(&self) -> u64 {
        self.rv
    }

    pub fn get(&self, kind: Kind, ns: &str, name: &str) -> Option<&Value> {
        self.objs.get(&(kind, ns_of(kind, ns), name.to_string()))
    }

    /// Objects of a kind, in one namespace or all (`ns` = None), in name order.
    pub fn list(&self, kind: Kind, ns: Option<&str>) -> Vec<&Value> {
        self.objs
            .iter()
            .filter(|((k, n, _), _)| *k == kind && ns.is_none_or(|ns| ns_of(kind, ns) == *n))
            .map(|(_, v)| v)
            .collect()
    }

    fn emit(&mut self, kind: Kind, ns: &str, etype: &'static str, obj: Value) {
        let ev = Arc::new(WatchEvent {
            rv: self.rv,
            kind,
            ns: ns.to_string(),
            etype,
            obj,
        });
        self.history.push_back(ev.clone());
        while self.history.len() > HISTORY {
            if let Some(old) = self.history.pop_front() {
                self.oldest_resumable = old.rv;
            }
        }
        let _ = self.tx.send(ev);
        self.changed.notify_waiters();
    }

    pub fn create(&mut self, kind: Kind, ns: &str, obj: Value) -> Result<Value, ApiError> {
        self.create_by(kind, ns, obj, None)
    }

    /// [`Store::create`], recording `manager` in managedFields (a client's
    /// write; the simulator's own controllers pass None).
    pub fn create_by(
        &mut self,
        kind: Kind,
        ns: &str,
        mut obj: Value,
        manager: Option<&str>,
    ) -> Result<Value, ApiError> {
        if !obj.is_object() {
            return Err(ApiError::bad_request("the body is not a JSON object"));
        }
        let name = obj["metadata"]["name"].as_str().unwrap_or("").to_string();
        if name.is_empty() {
            return Err(ApiError::invalid(
                kind,
                "",
                "metadata.name",
                "Required value: name or generateName is required",
            ));
        }
        let ns = ns_of(kind, ns);
        if kind.namespaced() && self.get(Kind::Namespace, "", &ns).is_none() {
            return Err(ApiError::not_found(Kind::Namespace, &ns));
        }
        let key = (kind, ns.clone(), name.clone());
        if self.objs.contains_key(&key) {
            return Err(ApiError::already_exists(kind, &name));
        }
        if kind == Kind::Secret {
            fold_string_data(&mut obj);
        }
        default_spec(kind, &mut obj);
        validate(kind, &name, &obj)?;
        self.rv += 1;
        self.uid_seq += 1;
        obj["kind"] = json!(kind.kind());
        obj["apiVersion"] = json!(kind.api_version());
        let m = obj["metadata"].as_object_mut().expect("metadata checked");
        if kind.namespaced() {
            m.insert("namespace".into(), json!(ns));
        }
        m.insert(
            "uid".into(),
            json!(format!("00000000-0000-4000-8000-{:012x}", self.uid_seq)),
        );
        m.insert("creationTimestamp".into(), json!(now_rfc3339()));
        m.insert("resourceVersion".into(), json!(self.rv.to_string()));
        if kind.has_generation() {
            m.insert("generation".into(), json!(1));
        }
        m.remove("managedFields");
        if let Some(by) = manager {
            stamp_manager(&mut obj, kind, by);
        }
        if kind == Kind::Namespace && obj.get("status").is_none() {
            obj["status"] = json!({"phase": "Active"});
        }
        if kind == Kind::Job {
            super::jobs::default_job(&mut obj);
        }
        // A new object's status starts empty, whatever the client sent.
        match kind {
            Kind::StatefulSet => obj["status"] = json!({"replicas": 0}),
            Kind::CronJob => obj["status"] = json!({}),
            _ => {}
        }
        if kind == Kind::Service {
            // What the API server defaults; no IP allocator, just distinct addresses.
            if obj["spec"]["type"].is_null() {
                obj["spec"]["type"] = json!("ClusterIP");
            }
            if obj["spec"]["clusterIP"].is_null() {
                let ip = format!(
                    "10.96.{}.{}",
                    (self.uid_seq / 250) % 250,
                    self.uid_seq % 250 + 2
                );
                obj["spec"]["clusterIP"] = json!(ip);
                obj["spec"]["clusterIPs"] = json!([ip]);
            }
        }
        self.objs.insert(key, obj.clone());
        self.emit(kind, &ns, "ADDED", obj.clone());
        Ok(obj)
    }

    /// Applies `f` to a copy of the object; stores it (new resourceVersion,
    /// MODIFIED event) only when something changed. Identity fields and, for
    /// the main resource, status are kept from the stored object the way the
    /// API server ignores them.
    pub fn update(
        &mut self,
        kind: Kind,
        ns: &str,
        name: &str,
        scope: Scope,
        f: impl FnOnce(&mut Value) -> Result<(), ApiError>,
    ) -> Result<Value, ApiError> {
        self.update_by(kind, ns, name, scope, None, f)
    }

    /// [`Store::update`], recording `manager` in managedFields when the
    /// write changed something (a no-op write leaves them as they were).
    pub fn update_by(
        &mut self,
        kind: Kind,
        ns: &str,
        name: &str,
        scope: Scope,
        manager: Option<&str>,
        f: impl FnOnce(&mut Value) -> Result<(), ApiError>,
    ) -> Result<Value, ApiError> {
        let ns = ns_of(kind, ns);
        let key = (kind, ns.clone(), name.to_string());
        let old = self
            .objs
            .get(&key)
            .ok_or_else(|| ApiError::not_found(kind, name))?
            .clone();
        let mut new = old.clone();
        f(&mut new)?;
        if !new.is_object() || !new["metadata"].is_object() {
            return Err(ApiError::invalid(
                kind,
                name,
                "metadata",
                "Required value: metadata must be an object",
            ));
        }
        if let Some(want) = new["metadata"]["resourceVersion"].as_str() {
            if want != meta_str(&old, "resourceVersion") {
                return Err(ApiError::conflict(kind, name));
            }
        }
        for f in [
            "name",
            "namespace",
            "uid",
            "creationTimestamp",
            "generation",
            "resourceVersion",
            "managedFields",
        ] {
            match old["metadata"].get(f) {
                Some(v) => new["metadata"][f] = v.clone(),
                None => {
                    if let Some(m) = new["metadata"].as_object_mut() {
                        m.remove(f);
                    }
                }
            }
        }
        new["kind"] = old["kind"].clone();
        new["apiVersion"] = old["apiVersion"].clone();
        match scope {
            Scope::Main if kind.has_status() => {
                set_or_remove(&mut new, "status", old.get("status"));
            }
            Scope::Status => {
                // Only status may change through the status subresource.
                let status = new.get("status").cloned();
                new = old.clone();
                set_or_remove(&mut new, "status", status.as_ref());
            }
            _ => {}
        }
        if kind == Kind::Secret {
            fold_string_data(&mut new);
        }
        if scope == Scope::Main {
            default_spec(kind, &mut new);
            match kind {
                Kind::Job => super::jobs::check_immutable(name, &old, &new)?,
                Kind::StatefulSet => super::statefulsets::check_immutable(name, &old, &new)?,
                _ => {}
            }
        }
        validate(kind, name, &new)?;
        if new == old {
            return Ok(old);
        }
        self.rv += 1;
        if kind.has_generation() && new.get("spec") != old.get("spec") {
            let g = old["metadata"]["generation"].as_i64().unwrap_or(1) + 1;
            new["metadata"]["generation"] = json!(g);
        }
        new["metadata"]["resourceVersion"] = json!(self.rv.to_string());
        if let Some(by) = manager {
            stamp_manager(&mut new, kind, by);
        }
        self.objs.insert(key, new.clone());
        self.emit(kind, &ns, "MODIFIED", new.clone());
        Ok(new)
    }

    pub fn delete(&mut self, kind: Kind, ns: &str, name: &str) -> Result<Value, ApiError> {
        let ns = ns_of(kind, ns);
        let mut obj = self
            .objs
            .remove(&(kind, ns.clone(), name.to_string()))
            .ok_or_else(|| ApiError::not_found(kind, name))?;
        self.rv += 1;
        obj["metadata"]["resourceVersion"] = json!(self.rv.to_string());
        self.emit(kind, &ns, "DELETED", obj.clone());
        Ok(obj)
    }

    /// Events after `rv` still in the history plus a receiver for later ones,
    /// taken under one lock so nothing falls in between. `None` when `rv` is
    /// too old to resume from (the client must relist: 410 Gone).
    pub fn watch_from(&self, rv: u64) -> Option<(Vec<Arc<WatchEvent>>, WatchReceiver)> {
        if rv < self.oldest_resumable {
            return None;
        }
        let past = self.history.iter().filter(|e| e.rv > rv).cloned().collect();
        Some((past, self.tx.subscribe()))
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<WatchEvent>> {
        self.tx.subscribe()
    }
}

impl Default for Store {
    fn default() -> Self {
        Self::new()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// The resource itself: status changes are ignored.
    Main,
    /// The status subresource: only status changes.
    Status,
    /// The simulator's own controllers: anything goes.
    Controller,
}

/// The writer's entry in metadata.managedFields, as the API server keeps
/// it: one per manager and operation, with the time of its last change.
/// (Which fields each owns is not tracked: nothing here reads it.)
fn stamp_manager(obj: &mut Value, kind: Kind, manager: &str) {
    let entry = json!({
        "manager": manager,
        "operation": "Update",
        "apiVersion": kind.api_version(),
        "time": now_rfc3339(),
        "fieldsType": "FieldsV1",
        "fieldsV1": {},
    });
    let m = &mut obj["metadata"];
    let mut list: Vec<Value> = m["managedFields"].as_array().cloned().unwrap_or_default();
    list.retain(|e| e["manager"] != manager || e["operation"] != "Update");
    list.push(entry);
    m["managedFields"] = Value::Array(list);
}

fn set_or_remove(obj: &mut Value, field: &str, v: Option<&Value>) {
    if let Some(m) = obj.as_object_mut() {
        match v {
            Some(v) => {
                m.insert(field.into(), v.clone());
            }
            None => {
                m.remove(field);
            }
        }
    }
}

/// The API server merges a Secret's write-only `stringData` into `data`.
fn fold_string_data(obj: &mut Value) {
    let Some(sd) = obj.as_object_mut().and_then(|m| m.remove("stringData")) else {
        return;
    };
    let Some(sd) = sd.as_object() else {
        return;
    };
    for (k, v) in sd {
        if let Some(v) = v.as_str() {
            let b = k8s_openapi::ByteString(v.as_bytes().to_vec());
            obj["data"][k] = serde_json::to_value(b).unwrap_or(Value::Null);
        }
    }
}

fn ns_of(kind: Kind, ns: &str) -> String {
    if kind.namespaced() {
        ns.to_string()
    } else {
        String::new()
    }
}

/// Labels, annotations and ConfigMap/Secret data: string values only.
fn is_string_map(v: &Value) -> bool {
    v.as_object()
        .is_some_and(|m| m.values().all(Value::is_string))
}

/// Sets each of `defaults` in `spec` that is absent (when `spec` is an
/// object; a missing spec is left for validation to reject).
pub fn fill_defaults(spec: &mut Value, defaults: Vec<(&str, Value)>) {
    if !spec.is_object() {
        return;
    }
    for (field, v) in defaults {
        if spec[field].is_null() {
            spec[field] = v;
        }
    }
}

/// The defaults the API server applies to a spec on every write (a
/// client's update that leaves one out gets it again).
fn default_spec(kind: Kind, obj: &mut Value) {
    match kind {
        Kind::StatefulSet => super::statefulsets::default_set(obj),
        Kind::CronJob => super::cronjobs::default_cronjob(obj),
        _ => {}
    }
}

/// The few checks that give callers a 422 instead of a broken simulation.
fn validate(kind: Kind, name: &str, obj: &Value) -> Result<(), ApiError> {
    for f in ["labels", "annotations"] {
        if let Some(m) = obj["metadata"].get(f).filter(|v| !v.is_null()) {
            if !is_string_map(m) {
                return Err(ApiError::invalid(
                    kind,
                    name,
                    &format!("metadata.{f}"),
                    "Invalid value: values must be strings",
                ));
            }
        }
    }
    match kind {
        Kind::Deployment | Kind::ReplicaSet => {
            if let Some(r) = obj["spec"].get("replicas").filter(|v| !v.is_null()) {
                if r.as_i64().is_none_or(|r| r < 0) {
                    return Err(ApiError::invalid(
                        kind,
                        name,
                        "spec.replicas",
                        &format!("Invalid value: {r}: must be greater than or equal to 0"),
                    ));
                }
            }
            if !obj["spec"]["template"].is_object() {
                return Err(ApiError::invalid(
                    kind,
                    name,
                    "spec.template",
                    "Required value",
                ));
            }
        }
        Kind::Service => {
            if let Some(sel) = obj["spec"].get("selector").filter(|v| !v.is_null()) {
                if !is_string_map(sel) {
                    return Err(ApiError::invalid(
                        kind,
                        name,
                        "spec.selector",
                        "Invalid value: values must be strings",
                    ));
                }
            }
        }
        Kind::Job => super::jobs::validate(name, obj)?,
        Kind::StatefulSet => super::statefulsets::validate(name, obj)?,
        Kind::CronJob => super::cronjobs::validate(name, obj)?,
        Kind::ConfigMap | Kind::Secret => {
            for f in ["data", "stringData"] {
                if let Some(d) = obj.get(f).filter(|v| !v.is_null()) {
                    if !is_string_map(d) {
                        return Err(ApiError::invalid(
                            kind,
                            name,
                            f,
                            "Invalid value: values must be strings",
                        ));
                    }
                }
            }
        }
        _ => {}
    }
    Ok(())
}

/// RFC 7386 JSON merge patch. Strategic merge patch is applied the same way:
/// for the maps the simulator's clients patch (labels, annotations, data,
/// replicas) the two agree.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    let Some(p) = patch.as_object() else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let t = target.as_object_mut().expect("made an object above");
    for (k, v) in p {
        if k.starts_with("$") {
            // Strategic-merge directives ($patch, $retainKeys, …): not modelled.
            continue;
        }
        if v.is_null() {
            t.remove(k);
        } else {
            merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
        }
    }
}

/// A parsed `labelSelector` (equality- and set-based) or `fieldSelector`.
#[derive(Debug, Clone, Default)]
pub struct Selector {
    terms: Vec<Term>,
}

#[derive(Debug, Clone)]
enum Term {
    Eq(String, String),
    Ne(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    NotExists(String),
}

impl Selector {
    pub fn parse(s: &str) -> Result<Selector, ApiError> {
        let mut terms = Vec::new();
        for raw in split_top_level(s) {
            let t = raw.trim();
            if t.is_empty() {
                continue;
            }
            let bad = || ApiError::bad_request(format!("unable to parse requirement: {t:?}"));
            let term = if let Some((k, v)) = t.split_once("!=") {
                Term::Ne(k.trim().into(), v.trim().into())
            } else if let Some((k, v)) = t.split_once("==") {
                Term::Eq(k.trim().into(), v.trim().into())
            } else if let Some((k, v)) = t.split_once('=') {
                Term::Eq(k.trim().into(), v.trim().into())
            } else if let Some(k) = t.strip_prefix('!') {
                Term::NotExists(k.trim().into())
            } else if let Some((k, rest)) = t.split_once(" notin ") {
                Term::NotIn(k.trim().into(), set_values(rest).ok_or_else(bad)?)
            } else if let Some((k, rest)) = t.split_once(" in ") {
                Term::In(k.trim().into(), set_values(rest).ok_or_else(bad)?)
            } else if t
                .chars()
                .all(|c| !c.is_whitespace() && c != '(' && c != ')')
            {
                Term::Exists(t.into())
            } else {
                return Err(bad());
            };
            terms.push(term);
        }
        Ok(Selector { terms })
    }

    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }

    /// Matches a label map.
    pub fn matches_labels(&self, labels: &Value) -> bool {
        self.matches_with(|k| labels.get(k).and_then(Value::as_str).map(str::to_string))
    }

    /// Matches dotted field paths (`metadata.name`, `status.phase`).
    pub fn matches_fields(&self, obj: &Value) -> bool {
        self.matches_with(|path| {
            let v = path.split('.').try_fold(obj, |v, seg| v.get(seg))?;
            Some(match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
        })
    }

    fn matches_with(&self, get: impl Fn(&str) -> Option<String>) -> bool {
        self.terms.iter().all(|t| match t {
            Term::Eq(k, v) => get(k).as_deref() == Some(v.as_str()),
            Term::Ne(k, v) => get(k).as_deref() != Some(v.as_str()),
            Term::In(k, vs) => get(k).is_some_and(|x| vs.contains(&x)),
            Term::NotIn(k, vs) => get(k).is_none_or(|x| !vs.contains(&x)),
            Term::Exists(k) => get(k).is_some(),
            Term::NotExists(k) => get(k).is_none(),
        })
    }
}

fn split_top_level(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut depth, mut start) = (0i32, 0usize);
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out
}

fn set_values(s: &str) -> Option<Vec<String>> {
    let inner = s.trim().strip_prefix('(')?.strip_suffix(')')?;
    Some(
        inner
            .split(',')
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
            .collect(),
    )
}

/// Matches a Deployment/ReplicaSet `spec.selector` (matchLabels only, which
/// is all the simulator's objects use).
pub fn selector_matches(selector: &Value, labels: &Value) -> bool {
    selector["matchLabels"]
        .as_object()
        .is_some_and(|m| m.iter().all(|(k, v)| labels.get(k) == Some(v)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_patch_follows_rfc7386() {
        let mut t = json!({"a": "b", "c": {"d": "e", "f": "g"}});
        merge_patch(&mut t, &json!({"a": "z", "c": {"f": null}}));
        assert_eq!(t, json!({"a": "z", "c": {"d": "e"}}));
    }

    #[test]
    fn selectors() {
        let l = json!({"app": "web", "tier": "db"});
        assert!(Selector::parse("app=web").unwrap().matches_labels(&l));
        assert!(Selector::parse("app==web,tier!=x")
            .unwrap()
            .matches_labels(&l));
        assert!(Selector::parse("app in (web,api),tier")
            .unwrap()
            .matches_labels(&l));
        assert!(!Selector::parse("!tier").unwrap().matches_labels(&l));
        assert!(!Selector::parse("app notin (web)")
            .unwrap()
            .matches_labels(&l));
        let o = json!({"metadata": {"name": "app"}});
        assert!(Selector::parse("metadata.name=app")
            .unwrap()
            .matches_fields(&o));
    }

    #[test]
    fn update_bumps_generation_only_on_spec_change() {
        let mut s = Store::new();
        s.create(Kind::Namespace, "", json!({"metadata": {"name": "n"}}))
            .unwrap();
        s.create(
            Kind::Deployment,
            "n",
            json!({"metadata": {"name": "d"}, "spec": {"replicas": 1, "template": {}}}),
        )
        .unwrap();
        let v = s
            .update(Kind::Deployment, "n", "d", Scope::Main, |v| {
                v["metadata"]["labels"] = json!({"a": "b"});
                Ok(())
            })
            .unwrap();
        assert_eq!(v["metadata"]["generation"], json!(1));
        let v = s
            .update(Kind::Deployment, "n", "d", Scope::Main, |v| {
                v["spec"]["replicas"] = json!(2);
                Ok(())
            })
            .unwrap();
        assert_eq!(v["metadata"]["generation"], json!(2));
        let err = s
            .update(Kind::Deployment, "n", "d", Scope::Main, |v| {
                v["spec"]["replicas"] = json!(-1);
                Ok(())
            })
            .unwrap_err();
        assert_eq!(err.code, 422);
    }
}
