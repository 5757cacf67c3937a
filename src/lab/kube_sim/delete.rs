//! Deleting through the API: `propagationPolicy` (from the query or the
//! DeleteOptions body) and what becomes of the dependents: Orphan strips
//! their ownerReferences, Foreground deletes them first, Background leaves
//! them to the garbage collector (the controller loop's `gc`).

use serde_json::{json, Value};

use super::controller::mark_deleted;
use super::store::{meta_str, ApiError, Kind, Scope, Store};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Propagation {
    Orphan,
    Background,
    Foreground,
}

/// The warning the API server gives a Job deleted without a policy.
pub const JOB_ORPHAN_WARNING: &str = "child pods are preserved by default when jobs are deleted; \
     set propagationPolicy=Background to remove them or set propagationPolicy=Orphan to suppress this warning";

fn parse(v: &str) -> Result<Propagation, ApiError> {
    match v {
        "Orphan" => Ok(Propagation::Orphan),
        "Background" => Ok(Propagation::Background),
        "Foreground" => Ok(Propagation::Foreground),
        other => Err(ApiError::bad_request(format!(
            "propagationPolicy: Unsupported value: \"{other}\": supported values: \"Foreground\", \"Background\", \"Orphan\""
        ))),
    }
}

/// The policy a DELETE names, in the query or the body (`propagationPolicy`,
/// or the older `orphanDependents`); None when it names none.
pub fn requested(query: Option<&str>, body: &[u8]) -> Result<Option<Propagation>, ApiError> {
    if let Some(q) = query.filter(|q| !q.is_empty()) {
        return parse(q).map(Some);
    }
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let opts: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("invalid DeleteOptions: {e}")))?;
    if let Some(p) = opts["propagationPolicy"].as_str() {
        return parse(p).map(Some);
    }
    Ok(opts["orphanDependents"].as_bool().map(|o| {
        if o {
            Propagation::Orphan
        } else {
            Propagation::Background
        }
    }))
}

/// The policy to apply, and whether the API server warns that a Job's pods
/// are kept: with none named, its default is Orphan for batch/v1 Jobs (kept
/// for backward compatibility, with [`JOB_ORPHAN_WARNING`]) and Background
/// for everything else.
pub fn resolve(asked: Option<Propagation>, kind: Kind) -> (Propagation, bool) {
    match asked {
        Some(p) => (p, false),
        None if kind == Kind::Job => (Propagation::Orphan, true),
        None => (Propagation::Background, false),
    }
}

/// The objects in `ns` with an ownerReference to `uid`.
fn dependents(s: &Store, ns: &str, uid: &str) -> Vec<(Kind, String)> {
    Kind::ALL
        .into_iter()
        .filter(|k| k.namespaced())
        .flat_map(|k| {
            s.list(k, Some(ns))
                .into_iter()
                .filter(|o| {
                    o["metadata"]["ownerReferences"]
                        .as_array()
                        .is_some_and(|refs| refs.iter().any(|r| r["uid"] == uid))
                })
                .map(move |o| (k, meta_str(o, "name").to_string()))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Deletes one object. A pod is deleted gracefully (the kubelet stops it,
/// then removes the object); the answer is the object as it was deleted.
pub fn delete(
    s: &mut Store,
    kind: Kind,
    ns: &str,
    name: &str,
    policy: Propagation,
) -> Result<Value, ApiError> {
    let obj = s
        .get(kind, ns, name)
        .cloned()
        .ok_or_else(|| ApiError::not_found(kind, name))?;
    if kind == Kind::Pod {
        mark_deleted(s, ns, name);
        return Ok(s.get(kind, ns, name).cloned().unwrap_or(obj));
    }
    if kind.namespaced() {
        let uid = meta_str(&obj, "uid").to_string();
        for (k, dep) in dependents(s, ns, &uid) {
            match policy {
                Propagation::Orphan => {
                    let _ = s.update(k, ns, &dep, Scope::Controller, |v| {
                        if let Some(refs) = v["metadata"]["ownerReferences"].as_array_mut() {
                            refs.retain(|r| r["uid"] != uid.as_str());
                            if refs.is_empty() {
                                v["metadata"]
                                    .as_object_mut()
                                    .map(|m| m.remove("ownerReferences"));
                            }
                        }
                        Ok(())
                    });
                }
                Propagation::Foreground => {
                    let _ = delete(s, k, ns, &dep, Propagation::Foreground);
                }
                Propagation::Background => {}
            }
        }
    }
    s.delete(kind, ns, name)
}

/// `deletecollection`: every object of `names`, each as [`delete`] does;
/// the answer lists what was deleted.
pub fn delete_all(
    s: &mut Store,
    kind: Kind,
    ns: &str,
    names: &[String],
    policy: Propagation,
) -> Value {
    let items: Vec<Value> = names
        .iter()
        .filter_map(|n| delete(s, kind, ns, n, policy).ok())
        .collect();
    json!({
        "kind": format!("{}List", kind.kind()),
        "apiVersion": kind.api_version(),
        "metadata": {"resourceVersion": s.resource_version().to_string()},
        "items": items,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_from_query_or_body() {
        assert_eq!(requested(None, b"").unwrap(), None);
        assert_eq!(requested(None, b"{}").unwrap(), None);
        assert_eq!(
            requested(Some("Background"), b"").unwrap(),
            Some(Propagation::Background)
        );
        assert_eq!(
            requested(
                None,
                br#"{"kind":"DeleteOptions","apiVersion":"v1","propagationPolicy":"Foreground"}"#
            )
            .unwrap(),
            Some(Propagation::Foreground)
        );
        assert_eq!(
            requested(None, br#"{"orphanDependents":true}"#).unwrap(),
            Some(Propagation::Orphan)
        );
        assert_eq!(requested(Some("Sideways"), b"").unwrap_err().code, 400);
        assert_eq!(requested(None, b"{").unwrap_err().code, 400);
        assert_eq!(resolve(None, Kind::Job), (Propagation::Orphan, true));
        assert_eq!(
            resolve(None, Kind::Deployment),
            (Propagation::Background, false)
        );
        assert_eq!(
            resolve(Some(Propagation::Foreground), Kind::Job),
            (Propagation::Foreground, false)
        );
    }

    #[test]
    fn orphan_strips_the_owner_foreground_deletes_first() {
        let mut s = Store::new();
        s.create(Kind::Namespace, "", json!({"metadata": {"name": "n"}}))
            .unwrap();
        let owner = |s: &mut Store, name: &str| {
            let cm = s
                .create(Kind::ConfigMap, "n", json!({"metadata": {"name": name}}))
                .unwrap();
            let uid = meta_str(&cm, "uid").to_string();
            s.create(
                Kind::Secret,
                "n",
                json!({"metadata": {"name": format!("{name}-dep"), "ownerReferences": [
                    {"kind": "ConfigMap", "name": name, "uid": uid}]}}),
            )
            .unwrap();
        };
        owner(&mut s, "a");
        delete(&mut s, Kind::ConfigMap, "n", "a", Propagation::Orphan).unwrap();
        let dep = s.get(Kind::Secret, "n", "a-dep").unwrap();
        assert!(dep["metadata"].get("ownerReferences").is_none(), "{dep}");
        owner(&mut s, "b");
        delete(&mut s, Kind::ConfigMap, "n", "b", Propagation::Foreground).unwrap();
        assert!(s.get(Kind::Secret, "n", "b-dep").is_none());
        assert_eq!(
            delete(&mut s, Kind::ConfigMap, "n", "b", Propagation::Background)
                .unwrap_err()
                .code,
            404
        );
    }
}
