//! The HTTP face of the simulator: legacy (non-aggregated) discovery, CRUD,
//! merge/strategic patch, watch streams, server-side Tables for `kubectl get`,
//! pod logs, deletion with a propagationPolicy and deletecollection,
//! SelfSubjectAccessReview, and `Status` errors.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{json, Value};
use tokio::sync::{broadcast, mpsc};

use super::store::{merge_patch, meta_str, ApiError, Kind, Scope, Selector, WatchEvent};
use super::Sim;
use super::{delete, protobuf};

pub type Body = http_body_util::combinators::BoxBody<Bytes, Infallible>;

const SERVER_VERSION: (&str, &str) = ("1", "32");

fn json_response(code: u16, v: &Value) -> Response<Body> {
    Response::builder()
        .status(code)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(v.to_string())).boxed())
        .expect("static response parts")
}

pub(super) fn error(e: &ApiError) -> Response<Body> {
    json_response(e.code, &e.status())
}

/// A request's query parameters, decoded.
pub(super) struct Query(Vec<(String, String)>);

impl Query {
    fn parse(q: Option<&str>) -> Query {
        let dec = |s: &str| {
            percent_encoding::percent_decode_str(&s.replace('+', " "))
                .decode_utf8_lossy()
                .into_owned()
        };
        Query(
            q.unwrap_or("")
                .split('&')
                .filter(|p| !p.is_empty())
                .map(|p| match p.split_once('=') {
                    Some((k, v)) => (dec(k), dec(v)),
                    None => (dec(p), String::new()),
                })
                .collect(),
        )
    }

    pub(super) fn get(&self, k: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
    }

    pub(super) fn flag(&self, k: &str) -> bool {
        matches!(self.get(k), Some("1" | "true" | ""))
    }
}

pub async fn handle(sim: Arc<Sim>, req: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let query = Query::parse(req.uri().query());
    let accept = req
        .headers()
        .get("accept")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let content_type = req
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    // Who writes, as the API server records it in managedFields: the
    // request's fieldManager, else the User-Agent up to its first '/'.
    let agent = req
        .headers()
        .get("user-agent")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split('/').next())
        .filter(|v| !v.is_empty())
        .unwrap_or("unknown")
        .to_string();
    let manager = query
        .get("fieldManager")
        .map(str::to_string)
        .unwrap_or(agent);
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return Ok(error(&ApiError::bad_request("unreadable body"))),
    };
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let ctx = Ctx {
        sim,
        method,
        query,
        table: accept.contains("as=Table"),
        content_type,
        body,
        manager,
    };
    let resp = match segs.as_slice() {
        ["version"] => json_response(200, &version()),
        ["healthz" | "readyz" | "livez"] => Response::builder()
            .status(200)
            .header("content-type", "text/plain")
            .body(Full::new(Bytes::from_static(b"ok")).boxed())
            .expect("static response parts"),
        ["api"] => json_response(
            200,
            &json!({
                "kind": "APIVersions", "versions": ["v1"],
                "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": ctx.sim.addr()}],
            }),
        ),
        ["apis"] => json_response(200, &groups()),
        ["api", "v1"] => json_response(200, &resources("v1")),
        ["apis", group @ ("apps" | "batch" | "authorization.k8s.io")] => {
            json_response(200, &api_group(group))
        }
        ["apis", "apps", "v1"] => json_response(200, &resources("apps/v1")),
        ["apis", "batch", "v1"] => json_response(200, &resources("batch/v1")),
        ["apis", "authorization.k8s.io", "v1"] => {
            json_response(200, &resources("authorization.k8s.io/v1"))
        }
        ["apis", "authorization.k8s.io", "v1", "selfsubjectaccessreviews"]
            if ctx.method == Method::POST =>
        {
            access_review(&ctx)
        }
        ["lab", "v1", rest @ ..] => lab_knob(&ctx, rest),
        ["api", "v1", rest @ ..] => resource(&ctx, "", rest).await,
        ["apis", "apps", "v1", rest @ ..] => resource(&ctx, "apps", rest).await,
        ["apis", "batch", "v1", rest @ ..] => resource(&ctx, "batch", rest).await,
        _ => error(&ApiError::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        )),
    };
    Ok(resp)
}

struct Ctx {
    sim: Arc<Sim>,
    method: Method,
    query: Query,
    table: bool,
    content_type: String,
    body: Bytes,
    /// The writer's name for managedFields.
    manager: String,
}

/// The lab's knobs over HTTP (see the module docs of the simulator).
fn lab_knob(ctx: &Ctx, rest: &[&str]) -> Response<Body> {
    let on = match ctx.method {
        Method::PUT | Method::POST => true,
        Method::DELETE => false,
        _ => {
            return error(&ApiError::new(
                405,
                "MethodNotAllowed",
                "use PUT to turn a lab knob on, DELETE to turn it off",
            ))
        }
    };
    match rest {
        ["deny", verb, resource] => {
            ctx.sim.set_denied(verb, resource, on);
            json_response(
                200,
                &json!({"deny": {"verb": verb, "resource": resource, "on": on}}),
            )
        }
        ["fail-pod-creation", deployment] => {
            let body = String::from_utf8_lossy(&ctx.body).trim().to_string();
            let why = if body.is_empty() {
                super::DEFAULT_CREATE_FAILURE.to_string()
            } else {
                body
            };
            ctx.sim
                .set_create_failure(deployment, on.then_some(why.as_str()));
            json_response(
                200,
                &json!({"failPodCreation": {"deployment": deployment, "on": on, "reason": on.then_some(why)}}),
            )
        }
        _ => error(&ApiError::new(404, "NotFound", "no such lab knob")),
    }
}

fn version() -> Value {
    json!({
        "major": SERVER_VERSION.0, "minor": SERVER_VERSION.1,
        "gitVersion": format!("v{}.{}.0-cutover-sim", SERVER_VERSION.0, SERVER_VERSION.1),
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean", "buildDate": "2026-01-01T00:00:00Z",
        "goVersion": "go1.23", "compiler": "gc", "platform": "linux/amd64",
    })
}

fn group(name: &str) -> Value {
    let gv = format!("{name}/v1");
    json!({
        "name": name,
        "versions": [{"groupVersion": gv, "version": "v1"}],
        "preferredVersion": {"groupVersion": gv, "version": "v1"},
    })
}

fn groups() -> Value {
    let groups: Vec<Value> = ["apps", "batch", "authorization.k8s.io"]
        .into_iter()
        .map(group)
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// `/apis/<group>`: one group's versions.
fn api_group(name: &str) -> Value {
    let mut g = group(name);
    g["kind"] = json!("APIGroup");
    g["apiVersion"] = json!("v1");
    g
}

fn resources(group_version: &str) -> Value {
    let verbs = |k: Kind| {
        let mut v = vec![
            "create", "delete", "get", "list", "patch", "update", "watch",
        ];
        if k != Kind::Namespace {
            v.insert(2, "deletecollection");
        }
        v
    };
    let mut list = Vec::new();
    if group_version == "authorization.k8s.io/v1" {
        list.push(json!({
            "name": "selfsubjectaccessreviews", "singularName": "selfsubjectaccessreview",
            "namespaced": false, "kind": "SelfSubjectAccessReview", "verbs": ["create"],
        }));
    }
    for k in Kind::ALL
        .into_iter()
        .filter(|k| k.api_version() == group_version)
    {
        list.push(json!({
            "name": k.plural(), "singularName": k.singular(), "namespaced": k.namespaced(),
            "kind": k.kind(), "verbs": verbs(k), "shortNames": k.short_names(),
        }));
        if matches!(k, Kind::Deployment | Kind::ReplicaSet | Kind::StatefulSet) {
            list.push(json!({
                "name": format!("{}/scale", k.plural()), "singularName": "", "namespaced": true,
                "group": "autoscaling", "version": "v1", "kind": "Scale",
                "verbs": ["get", "patch", "update"],
            }));
        }
        if k.has_status() {
            list.push(json!({
                "name": format!("{}/status", k.plural()), "singularName": "",
                "namespaced": true, "kind": k.kind(), "verbs": ["get", "patch", "update"],
            }));
        }
        if k == Kind::Pod {
            list.push(json!({
                "name": "pods/log", "singularName": "", "namespaced": true,
                "kind": "Pod", "verbs": ["get"],
            }));
        }
    }
    json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": list})
}

fn access_review(ctx: &Ctx) -> Response<Body> {
    let parsed = if ctx.content_type.starts_with(protobuf::CONTENT_TYPE) {
        protobuf_access_review(&ctx.body)
            .ok_or_else(|| "unreadable protobuf SelfSubjectAccessReview".to_string())
    } else {
        serde_json::from_slice(&ctx.body).map_err(|e| e.to_string())
    };
    let mut review: Value = match parsed {
        Ok(v) => v,
        Err(e) => return error(&ApiError::bad_request(format!("invalid body: {e}"))),
    };
    let attrs = &review["spec"]["resourceAttributes"];
    let verb = attrs["verb"].as_str().unwrap_or("");
    let mut resource = attrs["resource"].as_str().unwrap_or("").to_string();
    if let Some(sub) = attrs["subresource"].as_str().filter(|s| !s.is_empty()) {
        resource = format!("{resource}/{sub}");
    }
    let allowed = ctx.sim.allowed(verb, &resource);
    review["status"] = if allowed {
        json!({"allowed": true, "reason": "cutover lab simulator allows it"})
    } else {
        json!({"allowed": false, "denied": true, "reason": format!("denied by the lab's RBAC switch: {verb} {resource}")})
    };
    review["apiVersion"] = json!("authorization.k8s.io/v1");
    review["kind"] = json!("SelfSubjectAccessReview");
    if !review["metadata"].is_object() {
        review["metadata"] = json!({});
    }
    json_response(201, &review)
}

/// kubectl sends built-in types as protobuf (`k8s\0` + runtime.Unknown
/// wrapping the object); `auth can-i` needs just the resource attributes.
fn protobuf_access_review(body: &[u8]) -> Option<Value> {
    let (_, _, raw) = protobuf::unknown(body)?;
    let spec = protobuf::bytes_fields(raw)?
        .into_iter()
        .find(|(f, _)| *f == 2)?
        .1;
    let attrs = protobuf::bytes_fields(spec)?
        .into_iter()
        .find(|(f, _)| *f == 1)?
        .1;
    let mut ra = serde_json::Map::new();
    let names = [
        "namespace",
        "verb",
        "group",
        "version",
        "resource",
        "subresource",
        "name",
    ];
    for (f, v) in protobuf::bytes_fields(attrs)? {
        if let Some(n) = names.get((f as usize).wrapping_sub(1)) {
            ra.insert((*n).into(), json!(String::from_utf8_lossy(v)));
        }
    }
    Some(json!({"spec": {"resourceAttributes": ra}}))
}

fn forbidden(kind: Kind, verb: &str, name: &str, sub: Option<&str>, ns: &str) -> ApiError {
    let res = match sub {
        Some(s) => format!("{}/{s}", kind.plural()),
        None => kind.plural().to_string(),
    };
    let what = if name.is_empty() {
        res.clone()
    } else {
        format!("{res} \"{name}\"")
    };
    let scope = if ns.is_empty() {
        "at the cluster scope".to_string()
    } else {
        format!("in the namespace \"{ns}\"")
    };
    let mut e = ApiError::new(
        403,
        "Forbidden",
        format!(
            "{what} is forbidden: User \"{}\" cannot {verb} resource \"{res}\" in API group \"{}\" {scope}",
            super::LAB_USER,
            kind.group()
        ),
    );
    e.details = Some(json!({"name": name, "group": kind.group(), "kind": kind.plural()}));
    e
}

async fn resource(ctx: &Ctx, group: &str, rest: &[&str]) -> Response<Body> {
    // (kind, namespace, name, subresource)
    let parsed: Option<(Kind, &str, &str, Option<&str>)> = match rest {
        [plural] => Kind::from_plural(group, plural).map(|k| (k, "", "", None)),
        ["namespaces", name] if group.is_empty() => Some((Kind::Namespace, "", *name, None)),
        ["namespaces", ns, plural] => Kind::from_plural(group, plural)
            .filter(|k| k.namespaced())
            .map(|k| (k, *ns, "", None)),
        ["namespaces", ns, plural, name] => Kind::from_plural(group, plural)
            .filter(|k| k.namespaced())
            .map(|k| (k, *ns, *name, None)),
        ["namespaces", ns, plural, name, sub] => Kind::from_plural(group, plural)
            .filter(|k| {
                (k.has_status() && *sub == "status")
                    || matches!(
                        (k, *sub),
                        (
                            Kind::Deployment | Kind::ReplicaSet | Kind::StatefulSet,
                            "scale"
                        ) | (Kind::Pod, "log")
                    )
            })
            .map(|k| (k, *ns, *name, Some(*sub))),
        _ => None,
    };
    let Some((kind, ns, name, sub)) = parsed else {
        return error(&ApiError::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        ));
    };
    let watch = ctx.query.flag("watch");
    let verb = match (&ctx.method, name.is_empty()) {
        (&Method::GET, true) if watch => "watch",
        (&Method::GET, true) => "list",
        (&Method::GET, false) => "get",
        (&Method::POST, true) => "create",
        (&Method::PATCH, false) => "patch",
        (&Method::PUT, false) => "update",
        (&Method::DELETE, false) => "delete",
        (&Method::DELETE, true) if kind.namespaced() && !ns.is_empty() => "deletecollection",
        _ => {
            return error(&ApiError::new(
                405,
                "MethodNotAllowed",
                format!("{} is not supported here", ctx.method),
            ))
        }
    };
    let res_name = match sub {
        Some(s) => format!("{}/{s}", kind.plural()),
        None => kind.plural().to_string(),
    };
    if !ctx.sim.allowed(verb, &res_name) {
        return error(&forbidden(kind, verb, name, sub, ns));
    }
    let labels = match Selector::parse(ctx.query.get("labelSelector").unwrap_or("")) {
        Ok(s) => s,
        Err(e) => return error(&e),
    };
    let fields = match Selector::parse(ctx.query.get("fieldSelector").unwrap_or("")) {
        Ok(s) => s,
        Err(e) => return error(&e),
    };
    if sub == Some("scale") {
        return scale(ctx, kind, ns, name, verb);
    }
    if sub == Some("log") {
        return super::logs::serve(&ctx.sim, ns, name, verb, &ctx.query);
    }
    let ns_filter = (!ns.is_empty()).then_some(ns);
    match verb {
        "watch" => watch_stream(ctx, kind, ns_filter, labels, fields),
        "list" => {
            let s = ctx.sim.lock();
            let items: Vec<Value> = s
                .list(kind, ns_filter)
                .into_iter()
                .filter(|o| {
                    labels.matches_labels(&o["metadata"]["labels"]) && fields.matches_fields(o)
                })
                .cloned()
                .collect();
            let rv = s.resource_version().to_string();
            drop(s);
            if ctx.table {
                return json_response(200, &table(kind, &items, &rv));
            }
            json_response(
                200,
                &json!({
                    "kind": format!("{}List", kind.kind()),
                    "apiVersion": kind.api_version(),
                    "metadata": {"resourceVersion": rv},
                    "items": items,
                }),
            )
        }
        "get" => {
            let s = ctx.sim.lock();
            let r = s.get(kind, ns, name).cloned();
            let rv = s.resource_version().to_string();
            drop(s);
            match r {
                Some(o) if ctx.table => json_response(200, &table(kind, &[o], &rv)),
                Some(o) => json_response(200, &o),
                None => error(&ApiError::not_found(kind, name)),
            }
        }
        "create" => {
            let mut s = ctx.sim.lock();
            let obj = if ctx.content_type.starts_with(protobuf::CONTENT_TYPE) {
                super::cronjobs::job_from_protobuf(&s, kind, ns, &ctx.body)
            } else {
                json_body(ctx, "body")
            };
            let obj = match obj {
                Ok(v) => v,
                Err(e) => return error(&e),
            };
            match s.create_by(kind, ns, obj, Some(&ctx.manager)) {
                Ok(o) => json_response(201, &o),
                Err(e) => error(&e),
            }
        }
        "patch" => {
            let ct = ctx.content_type.split(';').next().unwrap_or("").trim();
            if !matches!(
                ct,
                "application/merge-patch+json" | "application/strategic-merge-patch+json"
            ) {
                return error(&ApiError::new(
                    415,
                    "UnsupportedMediaType",
                    format!("the body of the request was in an unknown format - accepted media types include: application/merge-patch+json, application/strategic-merge-patch+json (got {ct:?})"),
                ));
            }
            match json_body(ctx, "patch") {
                Ok(patch) => update_object(ctx, kind, ns, name, sub, |v| merge_patch(v, &patch)),
                Err(e) => error(&e),
            }
        }
        "update" => match json_body(ctx, "body") {
            Ok(new) => update_object(ctx, kind, ns, name, sub, |v| *v = new),
            Err(e) => error(&e),
        },
        "delete" | "deletecollection" => {
            let asked = delete::requested(ctx.query.get("propagationPolicy"), &ctx.body);
            let (policy, warn) = match asked.map(|p| delete::resolve(p, kind)) {
                Ok(p) => p,
                Err(e) => return error(&e),
            };
            let mut s = ctx.sim.lock();
            // A pod is deleted gracefully: its kubelet stops it, then removes it.
            let r = if verb == "delete" {
                delete::delete(&mut s, kind, ns, name, policy)
            } else {
                let names: Vec<String> = s
                    .list(kind, ns_filter)
                    .into_iter()
                    .filter(|o| {
                        labels.matches_labels(&o["metadata"]["labels"]) && fields.matches_fields(o)
                    })
                    .map(|o| meta_str(o, "name").to_string())
                    .collect();
                Ok(delete::delete_all(&mut s, kind, ns, &names, policy))
            };
            drop(s);
            match r {
                Ok(o) => {
                    let mut resp = json_response(200, &o);
                    if warn {
                        let w = format!("299 - \"{}\"", delete::JOB_ORPHAN_WARNING);
                        if let Ok(v) = hyper::header::HeaderValue::from_str(&w) {
                            resp.headers_mut().insert("warning", v);
                        }
                    }
                    resp
                }
                Err(e) => error(&e),
            }
        }
        _ => unreachable!("verbs are the ones matched above"),
    }
}

/// The request body as JSON, or the 400 a client gets for it.
fn json_body(ctx: &Ctx, what: &str) -> Result<Value, ApiError> {
    serde_json::from_slice(&ctx.body)
        .map_err(|e| ApiError::bad_request(format!("invalid {what}: {e}")))
}

/// Changes one object (its status, for the status subresource) and answers
/// with the stored result.
fn update_object(
    ctx: &Ctx,
    kind: Kind,
    ns: &str,
    name: &str,
    sub: Option<&str>,
    change: impl FnOnce(&mut Value),
) -> Response<Body> {
    let scope = if sub.is_some() {
        Scope::Status
    } else {
        Scope::Main
    };
    let r = ctx
        .sim
        .lock()
        .update_by(kind, ns, name, scope, Some(&ctx.manager), |v| {
            change(v);
            Ok(())
        });
    match r {
        Ok(o) => json_response(200, &o),
        Err(e) => error(&e),
    }
}

fn scale_of(o: &Value) -> Value {
    let selector = o["spec"]["selector"]["matchLabels"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default();
    json!({
        "kind": "Scale", "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": o["metadata"]["name"], "namespace": o["metadata"]["namespace"],
            "uid": o["metadata"]["uid"], "resourceVersion": o["metadata"]["resourceVersion"],
            "creationTimestamp": o["metadata"]["creationTimestamp"],
        },
        "spec": {"replicas": o["spec"]["replicas"].as_i64().unwrap_or(1)},
        "status": {"replicas": o["status"]["replicas"].as_i64().unwrap_or(0), "selector": selector},
    })
}

/// The `scale` subresource (`kubectl scale`): an autoscaling/v1 Scale view of
/// spec.replicas.
fn scale(ctx: &Ctx, kind: Kind, ns: &str, name: &str, verb: &str) -> Response<Body> {
    let mut s = ctx.sim.lock();
    let Some(cur) = s.get(kind, ns, name).cloned() else {
        return error(&ApiError::not_found(kind, name));
    };
    let mut sc = scale_of(&cur);
    match verb {
        "get" => return json_response(200, &sc),
        "patch" | "update" => {}
        _ => {
            return error(&ApiError::new(
                405,
                "MethodNotAllowed",
                format!("{verb} is not supported on scale"),
            ))
        }
    }
    let body: Value = match serde_json::from_slice(&ctx.body) {
        Ok(v) => v,
        Err(e) => return error(&ApiError::bad_request(format!("invalid body: {e}"))),
    };
    if verb == "patch" {
        merge_patch(&mut sc, &body);
    } else {
        if let Some(rv) = body["metadata"]["resourceVersion"].as_str() {
            if rv != meta_str(&cur, "resourceVersion") {
                return error(&ApiError::conflict(kind, name));
            }
        }
        sc = body;
    }
    let replicas = sc["spec"]["replicas"].clone();
    let r = s.update(kind, ns, name, Scope::Main, |v| {
        v["spec"]["replicas"] = if replicas.is_null() {
            json!(0)
        } else {
            replicas
        };
        Ok(())
    });
    match r {
        Ok(o) => json_response(200, &scale_of(&o)),
        Err(e) => error(&e),
    }
}

fn watch_stream(
    ctx: &Ctx,
    kind: Kind,
    ns: Option<&str>,
    labels: Selector,
    fields: Selector,
) -> Response<Body> {
    let rv_param = ctx.query.get("resourceVersion").unwrap_or("");
    let bookmarks = ctx.query.flag("allowWatchBookmarks");
    let timeout = ctx
        .query
        .get("timeoutSeconds")
        .and_then(|t| t.parse::<u64>().ok())
        .map(Duration::from_secs)
        .unwrap_or(Duration::from_secs(1800));
    let bookmark_every = ctx
        .sim
        .opts
        .bookmark_interval
        .max(Duration::from_millis(10));
    let ns = ns.map(str::to_string);
    let matches = move |ev_kind: Kind, ev_ns: &str, obj: &Value| {
        ev_kind == kind
            && ns.as_deref().is_none_or(|n| n == ev_ns)
            && labels.matches_labels(&obj["metadata"]["labels"])
            && fields.matches_fields(obj)
    };
    // `kubectl get -w` asks for Tables: one single-row Table per event.
    let as_table = ctx.table;
    let line = move |etype: &str, obj: &Value| {
        let obj = if as_table && etype != "ERROR" {
            table(
                kind,
                std::slice::from_ref(obj),
                meta_str(obj, "resourceVersion"),
            )
        } else {
            obj.clone()
        };
        Bytes::from(json!({"type": etype, "object": obj}).to_string() + "\n")
    };

    let (initial, rx, mut last_rv): (Vec<Bytes>, broadcast::Receiver<Arc<WatchEvent>>, u64) = {
        let s = ctx.sim.lock();
        let cur = s.resource_version();
        if rv_param.is_empty() || rv_param == "0" {
            // No starting point: synthetic ADDED for the current state.
            let initial = s
                .list(kind, None)
                .into_iter()
                .filter(|o| matches(kind, meta_str(o, "namespace"), o))
                .map(|o| line("ADDED", o))
                .collect();
            (initial, s.subscribe(), cur)
        } else {
            let Ok(rv) = rv_param.parse::<u64>() else {
                return error(&ApiError::bad_request(format!(
                    "invalid resourceVersion {rv_param:?}"
                )));
            };
            match s.watch_from(rv) {
                Some((past, rx)) => {
                    let initial = past
                        .iter()
                        .filter(|e| matches(e.kind, &e.ns, &e.obj))
                        .map(|e| line(e.etype, &e.obj))
                        .collect();
                    (initial, rx, cur.max(rv))
                }
                None => {
                    let gone = ApiError::new(
                        410,
                        "Expired",
                        format!("too old resource version: {rv} ({cur})"),
                    );
                    (vec![line("ERROR", &gone.status())], s.subscribe(), u64::MAX)
                }
            }
        }
    };
    let (tx, out) = mpsc::channel::<Bytes>(256);
    let api_version = kind.api_version();
    tokio::spawn(async move {
        let mut rx = rx;
        for b in initial {
            if tx.send(b).await.is_err() {
                return;
            }
        }
        if last_rv == u64::MAX {
            return;
        }
        let deadline = tokio::time::Instant::now() + timeout;
        let mut tick = tokio::time::interval(bookmark_every);
        tick.tick().await;
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(deadline) => return,
                _ = tick.tick(), if bookmarks => {
                    let b = json!({"type": "BOOKMARK", "object": {
                        "kind": kind.kind(), "apiVersion": api_version,
                        "metadata": {"resourceVersion": last_rv.to_string()},
                    }});
                    if tx.send(Bytes::from(b.to_string() + "\n")).await.is_err() {
                        return;
                    }
                }
                ev = rx.recv() => match ev {
                    Ok(ev) => {
                        if ev.rv <= last_rv {
                            continue;
                        }
                        last_rv = ev.rv;
                        if matches(ev.kind, &ev.ns, &ev.obj)
                            && tx.send(line(ev.etype, &ev.obj)).await.is_err()
                        {
                            return;
                        }
                    }
                    // Fell behind or shutting down: end the watch, the client re-watches.
                    Err(_) => return,
                },
            }
        }
    });
    let stream = futures::stream::unfold(out, |mut out| async move {
        out.recv()
            .await
            .map(|b| (Ok::<_, Infallible>(Frame::data(b)), out))
    });
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "application/json")
        .header("transfer-encoding", "chunked")
        .body(StreamBody::new(stream).boxed())
        .expect("static response parts")
}

/// kubectl's short human durations (`45s`, `3m20s`, `12m`, `5h3m`, `3d`)
/// of the time since `created`.
pub fn human_age(created: &str) -> String {
    let Ok(t) = chrono::DateTime::parse_from_rfc3339(created) else {
        return "<unknown>".into();
    };
    human_duration((chrono::Utc::now() - t.with_timezone(&chrono::Utc)).num_seconds())
}

/// kubectl's short human form of a duration in seconds.
pub fn human_duration(seconds: i64) -> String {
    match seconds.max(0) {
        s if s < 120 => format!("{s}s"),
        s if s < 600 => format!("{}m{}s", s / 60, s % 60),
        s if s < 3600 => format!("{}m", s / 60),
        s if s < 8 * 3600 => format!("{}h{}m", s / 3600, (s % 3600) / 60),
        s if s < 48 * 3600 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86400),
    }
}

/// The READY column of a Deployment or StatefulSet: `ready/desired`.
pub fn ready_column(o: &Value) -> Value {
    json!(format!(
        "{}/{}",
        o["status"]["readyReplicas"].as_i64().unwrap_or(0),
        o["spec"]["replicas"].as_i64().unwrap_or(1)
    ))
}

fn table(kind: Kind, items: &[Value], rv: &str) -> Value {
    let col = |name: &str, ty: &str| json!({"name": name, "type": ty, "format": if name == "Name" { "name" } else { "" }, "description": "", "priority": 0});
    let i = |v: &Value| v.as_i64().unwrap_or(0);
    // A kind whose module knows its columns and rows.
    let by_module = |cols: &[(&str, &str)], row: fn(&Value) -> Vec<Value>| {
        let cols: Vec<Value> = cols.iter().map(|(n, t)| col(n, t)).collect();
        (cols, items.iter().map(row).collect::<Vec<_>>())
    };
    let (cols, rows): (Vec<Value>, Vec<Vec<Value>>) = match kind {
        Kind::Deployment => (
            vec![
                col("Name", "string"),
                col("Ready", "string"),
                col("Up-to-date", "integer"),
                col("Available", "integer"),
                col("Age", "string"),
            ],
            items
                .iter()
                .map(|o| {
                    vec![
                        json!(meta_str(o, "name")),
                        ready_column(o),
                        json!(i(&o["status"]["updatedReplicas"])),
                        json!(i(&o["status"]["availableReplicas"])),
                        json!(human_age(meta_str(o, "creationTimestamp"))),
                    ]
                })
                .collect(),
        ),
        Kind::ReplicaSet => (
            vec![
                col("Name", "string"),
                col("Desired", "integer"),
                col("Current", "integer"),
                col("Ready", "integer"),
                col("Age", "string"),
            ],
            items
                .iter()
                .map(|o| {
                    vec![
                        json!(meta_str(o, "name")),
                        json!(i(&o["spec"]["replicas"])),
                        json!(i(&o["status"]["replicas"])),
                        json!(i(&o["status"]["readyReplicas"])),
                        json!(human_age(meta_str(o, "creationTimestamp"))),
                    ]
                })
                .collect(),
        ),
        Kind::Pod => (
            vec![
                col("Name", "string"),
                col("Ready", "string"),
                col("Status", "string"),
                col("Restarts", "string"),
                col("Age", "string"),
            ],
            items
                .iter()
                .map(|o| {
                    let cs = o["status"]["containerStatuses"]
                        .as_array()
                        .cloned()
                        .unwrap_or_default();
                    let total = o["spec"]["containers"].as_array().map_or(0, |c| c.len());
                    let ready = cs.iter().filter(|c| c["ready"] == true).count();
                    let restarts: i64 = cs.iter().map(|c| i(&c["restartCount"])).sum();
                    let waiting = cs
                        .iter()
                        .find_map(|c| c["state"]["waiting"]["reason"].as_str());
                    let status = if !o["metadata"]["deletionTimestamp"].is_null() {
                        "Terminating"
                    } else {
                        waiting.unwrap_or(o["status"]["phase"].as_str().unwrap_or("Pending"))
                    };
                    vec![
                        json!(meta_str(o, "name")),
                        json!(format!("{ready}/{total}")),
                        json!(status),
                        json!(restarts.to_string()),
                        json!(human_age(meta_str(o, "creationTimestamp"))),
                    ]
                })
                .collect(),
        ),
        Kind::ConfigMap => (
            vec![
                col("Name", "string"),
                col("Data", "string"),
                col("Age", "string"),
            ],
            items
                .iter()
                .map(|o| {
                    let n = o["data"].as_object().map_or(0, |m| m.len())
                        + o["binaryData"].as_object().map_or(0, |m| m.len());
                    vec![
                        json!(meta_str(o, "name")),
                        json!(n),
                        json!(human_age(meta_str(o, "creationTimestamp"))),
                    ]
                })
                .collect(),
        ),
        Kind::Secret => (
            vec![
                col("Name", "string"),
                col("Type", "string"),
                col("Data", "string"),
                col("Age", "string"),
            ],
            items
                .iter()
                .map(|o| {
                    vec![
                        json!(meta_str(o, "name")),
                        json!(o["type"].as_str().unwrap_or("Opaque")),
                        json!(o["data"].as_object().map_or(0, |m| m.len())),
                        json!(human_age(meta_str(o, "creationTimestamp"))),
                    ]
                })
                .collect(),
        ),
        Kind::Service => (
            vec![
                col("Name", "string"),
                col("Type", "string"),
                col("Cluster-IP", "string"),
                col("External-IP", "string"),
                col("Port(s)", "string"),
                col("Age", "string"),
            ],
            items
                .iter()
                .map(|o| {
                    let ports = o["spec"]["ports"]
                        .as_array()
                        .map(|ps| {
                            ps.iter()
                                .map(|p| {
                                    format!(
                                        "{}/{}",
                                        i(&p["port"]),
                                        p["protocol"].as_str().unwrap_or("TCP")
                                    )
                                })
                                .collect::<Vec<_>>()
                                .join(",")
                        })
                        .filter(|p| !p.is_empty())
                        .unwrap_or_else(|| "<none>".into());
                    vec![
                        json!(meta_str(o, "name")),
                        json!(o["spec"]["type"].as_str().unwrap_or("ClusterIP")),
                        json!(o["spec"]["clusterIP"].as_str().unwrap_or("<none>")),
                        json!("<none>"),
                        json!(ports),
                        json!(human_age(meta_str(o, "creationTimestamp"))),
                    ]
                })
                .collect(),
        ),
        Kind::Event => (
            vec![
                col("Last Seen", "string"),
                col("Type", "string"),
                col("Reason", "string"),
                col("Object", "string"),
                col("Message", "string"),
            ],
            items
                .iter()
                .map(|o| {
                    let io = &o["involvedObject"];
                    let seen = o["lastTimestamp"]
                        .as_str()
                        .or(o["eventTime"].as_str())
                        .unwrap_or(meta_str(o, "creationTimestamp"));
                    vec![
                        json!(human_age(seen)),
                        json!(o["type"].as_str().unwrap_or("Normal")),
                        json!(o["reason"].as_str().unwrap_or("")),
                        json!(format!(
                            "{}/{}",
                            io["kind"].as_str().unwrap_or("").to_ascii_lowercase(),
                            io["name"].as_str().unwrap_or("")
                        )),
                        json!(o["message"].as_str().unwrap_or("")),
                    ]
                })
                .collect(),
        ),
        Kind::Job => by_module(&super::jobs::TABLE_COLUMNS, super::jobs::table_row),
        Kind::StatefulSet => by_module(
            &super::statefulsets::TABLE_COLUMNS,
            super::statefulsets::table_row,
        ),
        Kind::CronJob => by_module(&super::cronjobs::TABLE_COLUMNS, super::cronjobs::table_row),
        Kind::Namespace => (
            vec![
                col("Name", "string"),
                col("Status", "string"),
                col("Age", "string"),
            ],
            items
                .iter()
                .map(|o| {
                    vec![
                        json!(meta_str(o, "name")),
                        json!(o["status"]["phase"].as_str().unwrap_or("Active")),
                        json!(human_age(meta_str(o, "creationTimestamp"))),
                    ]
                })
                .collect(),
        ),
    };
    let rows: Vec<Value> = rows
        .into_iter()
        .zip(items)
        .map(|(cells, o)| {
            json!({"cells": cells, "object": {
                "kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": o["metadata"],
            }})
        })
        .collect();
    json!({
        "kind": "Table", "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": rv},
        "columnDefinitions": cols,
        "rows": rows,
    })
}

#[cfg(test)]
mod tests {
    use super::super::protobuf::tests::ld;
    use super::*;

    #[test]
    fn reads_kubectls_protobuf_access_review() {
        let attrs = [
            ld(1, b"cutover-lab"),
            ld(2, b"patch"),
            ld(3, b"apps"),
            ld(5, b"deployments"),
        ]
        .concat();
        let raw = [ld(1, b""), ld(2, &ld(1, &attrs))].concat();
        let type_meta = [
            ld(1, b"authorization.k8s.io/v1"),
            ld(2, b"SelfSubjectAccessReview"),
        ]
        .concat();
        let body = [b"k8s\0".as_slice(), &ld(1, &type_meta), &ld(2, &raw)].concat();
        let v = protobuf_access_review(&body).unwrap();
        let ra = &v["spec"]["resourceAttributes"];
        assert_eq!(ra["verb"], "patch");
        assert_eq!(ra["resource"], "deployments");
        assert_eq!(ra["group"], "apps");
        assert_eq!(ra["namespace"], "cutover-lab");
        assert!(protobuf_access_review(b"{}").is_none());
    }

    #[test]
    fn ages_read_like_kubectls() {
        let ago = |s: i64| {
            (chrono::Utc::now() - chrono::Duration::seconds(s))
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        };
        assert_eq!(human_age(&ago(5)), "5s");
        assert_eq!(human_age(&ago(200)), "3m20s");
        assert_eq!(human_age(&ago(3 * 3600 + 120)), "3h2m");
        assert_eq!(human_age(&ago(5 * 86400)), "5d");
    }
}
