//! What the kubelet prepares before a process pod's container starts: its
//! volumes as directories under the pod's dir, the container's environment
//! (`value` with `$(VAR)` expansion, `valueFrom` a Secret or ConfigMap key
//! or a pod field), and [`Mounts`], the simulator's stand-in for the mount
//! namespace.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use serde_json::Value;

use super::store::{meta_str, Kind, Store};

/// Kubernetes' default mode of the files of a secret or configMap volume.
const DEFAULT_MODE: u32 = 0o644;

/// Creates `dir` (and its parents) with `mode` for the ones it creates.
pub fn make_dir(dir: &Path, mode: u32) -> std::io::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(mode)
        .create(dir)
}

/// There is no mount namespace: each `volumeMounts[].mountPath` of the
/// container stands for its volume's directory on the lab machine, and
/// [`Mounts::map`] rewrites one for the other in the strings the process
/// gets (env values, command, args, workingDir).
#[derive(Debug, Default)]
pub struct Mounts {
    /// (mountPath without a trailing slash, host directory), longest first.
    maps: Vec<(String, String)>,
}

fn is_name_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'~')
}

impl Mounts {
    pub fn new(mut maps: Vec<(String, String)>) -> Mounts {
        for (m, _) in &mut maps {
            while m.len() > 1 && m.ends_with('/') {
                m.pop();
            }
        }
        maps.sort_by_key(|(m, _)| std::cmp::Reverse(m.len()));
        Mounts { maps }
    }

    /// Replaces every occurrence of a mountPath that stands at a path
    /// boundary (not inside a longer path before it, followed by `/`, the
    /// end, or a character that cannot be in a file name) by its host
    /// directory, the longest mountPath first, in one pass (a host directory
    /// put in is not looked at again).
    pub fn map(&self, s: &str) -> String {
        let b = s.as_bytes();
        let mut out = String::with_capacity(s.len());
        let mut i = 0;
        'next: while i < s.len() {
            let starts_path =
                b[i] == b'/' && (i == 0 || !(is_name_char(b[i - 1]) || b[i - 1] == b'/'));
            if starts_path {
                for (m, host) in &self.maps {
                    let end = i + m.len();
                    if s[i..].starts_with(m.as_str()) && (end == s.len() || !is_name_char(b[end])) {
                        out.push_str(host);
                        i = end;
                        continue 'next;
                    }
                }
            }
            let c = s[i..].chars().next().unwrap_or('\0');
            out.push(c);
            i += c.len_utf8().max(1);
        }
        out
    }
}

/// Kubernetes' `$(VAR)` expansion: a defined variable is replaced, an
/// undefined reference is left as written, `$$` is a literal `$`.
pub fn expand(s: &str, lookup: impl Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while let Some(off) = s[i..].find('$') {
        let at = i + off;
        out.push_str(&s[i..at]);
        let rest = &s[at + 1..];
        if rest.starts_with('$') {
            out.push('$');
            i = at + 2;
            continue;
        }
        if let (true, Some(close)) = (rest.starts_with('('), rest.find(')')) {
            match lookup(&rest[1..close]) {
                Some(v) => out.push_str(&v),
                None => out.push_str(&s[at..at + close + 2]),
            }
            i = at + close + 2;
            continue;
        }
        out.push('$');
        i = at + 1;
    }
    out.push_str(&s[i..]);
    out
}

/// A volume that cannot be set up (the kubelet's FailedMount).
#[derive(Debug)]
pub struct MountError {
    pub volume: String,
    pub message: String,
}

/// The files of a Secret (`data`, base64) or ConfigMap (`data` and `binaryData`).
fn files_of(obj: &Value) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    for (field, base64) in [("data", obj["kind"] == "Secret"), ("binaryData", true)] {
        for (k, v) in obj[field].as_object().into_iter().flatten() {
            let bytes = if base64 {
                serde_json::from_value::<k8s_openapi::ByteString>(v.clone())
                    .map(|b| b.0)
                    .ok()
            } else {
                v.as_str().map(|s| s.as_bytes().to_vec())
            };
            if let Some(b) = bytes {
                out.insert(k.clone(), b);
            }
        }
    }
    out
}

/// A relative path inside a volume (an item's `path`): no `..`, not absolute.
fn safe_relative(p: &str) -> bool {
    !p.is_empty()
        && Path::new(p)
            .components()
            .all(|c| matches!(c, Component::Normal(_)))
}

fn write_file(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    if let Some(parent) = path.parent() {
        make_dir(parent, 0o755)?;
    }
    // A retry after another volume failed finds it already written (and
    // perhaps read-only).
    let _ = std::fs::remove_file(path);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(bytes)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

/// Writes one secret or configMap volume into `dir`.
fn project(
    s: &Store,
    ns: &str,
    vol: &str,
    src: &Value,
    kind: Kind,
    dir: &Path,
) -> Result<(), MountError> {
    let err = |message: String| MountError {
        volume: vol.to_string(),
        message,
    };
    let name_field = if kind == Kind::Secret {
        "secretName"
    } else {
        "name"
    };
    let name = src[name_field].as_str().unwrap_or("");
    let optional = src["optional"] == true;
    let label = kind.singular();
    let Some(obj) = s.get(kind, ns, name) else {
        return if optional {
            Ok(())
        } else {
            Err(err(format!("{label} \"{name}\" not found")))
        };
    };
    let files = files_of(obj);
    let mode_of = |v: &Value, default: u32| -> Result<u32, MountError> {
        match v.as_u64() {
            None if v.is_null() => Ok(default),
            Some(m) if m <= 0o777 => Ok(m as u32),
            _ => Err(err(format!(
                "invalid mode {v}: must be between 0 and 0777 (511)"
            ))),
        }
    };
    let default = mode_of(&src["defaultMode"], DEFAULT_MODE)?;
    let mut wanted: Vec<(String, String, u32)> = Vec::new();
    match src["items"].as_array() {
        Some(items) => {
            for it in items {
                let key = it["key"].as_str().unwrap_or("");
                let path = it["path"].as_str().unwrap_or(key);
                if !files.contains_key(key) {
                    if optional {
                        continue;
                    }
                    return Err(err(format!("references non-existent {label} key: {key}")));
                }
                wanted.push((key.into(), path.into(), mode_of(&it["mode"], default)?));
            }
        }
        None => wanted.extend(files.keys().map(|k| (k.clone(), k.clone(), default))),
    }
    for (key, path, mode) in wanted {
        if !safe_relative(&path) {
            return Err(err(format!(
                "invalid path {path:?}: must be relative and may not contain '..'"
            )));
        }
        write_file(&dir.join(&path), &files[&key], mode)
            .map_err(|e| err(format!("writing {path}: {e}")))?;
    }
    Ok(())
}

/// Sets up every volume of the pod under `<pod dir>/volumes/<name>` and
/// returns container 0's mounts.
pub fn prepare(s: &Store, ns: &str, pod: &Value, pod_dir: &Path) -> Result<Mounts, MountError> {
    let mut dirs: BTreeMap<String, PathBuf> = BTreeMap::new();
    for v in pod["spec"]["volumes"].as_array().into_iter().flatten() {
        let name = v["name"].as_str().unwrap_or("").to_string();
        let dir = pod_dir.join("volumes").join(&name);
        let err = |message: String| MountError {
            volume: name.clone(),
            message,
        };
        if !safe_relative(&name) {
            return Err(err("invalid volume name".into()));
        }
        make_dir(&dir, 0o755).map_err(|e| err(format!("mkdir {}: {e}", dir.display())))?;
        if v.get("secret").is_some() {
            project(s, ns, &name, &v["secret"], Kind::Secret, &dir)?;
        } else if v.get("configMap").is_some() {
            project(s, ns, &name, &v["configMap"], Kind::ConfigMap, &dir)?;
        } else if v.get("emptyDir").is_none() {
            return Err(err(
                "the lab simulator mounts only secret, configMap and emptyDir volumes".into(),
            ));
        }
        dirs.insert(name, dir);
    }
    let mut maps = Vec::new();
    for m in pod["spec"]["containers"][0]["volumeMounts"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let vol = m["name"].as_str().unwrap_or("");
        let Some(dir) = dirs.get(vol) else {
            return Err(MountError {
                volume: vol.into(),
                message: format!("volume \"{vol}\" is mounted but not defined"),
            });
        };
        let mut host = dir.clone();
        if let Some(sub) = m["subPath"].as_str().filter(|p| !p.is_empty()) {
            if !safe_relative(sub) {
                return Err(MountError {
                    volume: vol.into(),
                    message: format!("invalid subPath {sub:?}"),
                });
            }
            host = host.join(sub);
        }
        maps.push((
            m["mountPath"].as_str().unwrap_or("/").to_string(),
            host.to_string_lossy().into_owned(),
        ));
    }
    Ok(Mounts::new(maps))
}

/// A pod field for `valueFrom.fieldRef`: the paths the downward API offers
/// that the simulator has.
fn field_ref(pod: &Value, path: &str) -> Result<String, String> {
    let bracket = |prefix: &str| {
        path.strip_prefix(prefix)
            .and_then(|r| r.strip_prefix("['"))
            .and_then(|r| r.strip_suffix("']"))
    };
    let v = if let Some(k) = bracket("metadata.labels") {
        &pod["metadata"]["labels"][k]
    } else if let Some(k) = bracket("metadata.annotations") {
        &pod["metadata"]["annotations"][k]
    } else {
        match path {
            "metadata.name"
            | "metadata.namespace"
            | "metadata.uid"
            | "spec.nodeName"
            | "spec.serviceAccountName"
            | "status.podIP"
            | "status.hostIP" => path.split('.').fold(pod, |v, seg| &v[seg]),
            _ => return Err(format!("unsupported fieldRef path {path:?}")),
        }
    };
    Ok(v.as_str().unwrap_or("").to_string())
}

/// One `env` entry's value as the kubelet resolves it at container start
/// (without `$(VAR)` expansion), with the kubelet's messages for what is
/// missing. `Ok(None)`: an optional reference that is missing.
pub fn env_value(s: &Store, ns: &str, pod: &Value, env: &Value) -> Result<Option<String>, String> {
    if let Some(v) = env["value"].as_str() {
        return Ok(Some(v.to_string()));
    }
    let from = &env["valueFrom"];
    let keyed = [
        ("configMapKeyRef", Kind::ConfigMap, "configmap", "ConfigMap"),
        ("secretKeyRef", Kind::Secret, "secret", "Secret"),
    ];
    for (field, kind, lower, upper) in keyed {
        let r = &from[field];
        if r.is_null() {
            continue;
        }
        let (n, k) = (
            r["name"].as_str().unwrap_or(""),
            r["key"].as_str().unwrap_or(""),
        );
        let optional = r["optional"] == true;
        let Some(obj) = s.get(kind, ns, n) else {
            return if optional {
                Ok(None)
            } else {
                Err(format!("{lower} \"{n}\" not found"))
            };
        };
        return match files_of(obj).remove(k) {
            Some(b) => Ok(Some(String::from_utf8_lossy(&b).into_owned())),
            None if optional => Ok(None),
            None => Err(format!("couldn't find key {k} in {upper} {ns}/{n}")),
        };
    }
    if let Some(path) = from["fieldRef"]["fieldPath"].as_str() {
        return field_ref(pod, path).map(Some);
    }
    if !from.is_null() {
        return Err(format!(
            "env {}: the lab simulator resolves only configMapKeyRef, secretKeyRef and fieldRef",
            env["name"].as_str().unwrap_or("")
        ));
    }
    Ok(Some(String::new()))
}

/// Container 0's `env`, resolved and expanded in order (a later entry of
/// the same name wins), before the mount mapping.
pub fn container_env(s: &Store, pod: &Value) -> Result<Vec<(String, String)>, String> {
    let ns = meta_str(pod, "namespace");
    let mut out: Vec<(String, String)> = Vec::new();
    for e in pod["spec"]["containers"][0]["env"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let name = e["name"].as_str().unwrap_or("").to_string();
        let Some(mut v) = env_value(s, ns, pod, e)? else {
            continue;
        };
        if e["value"].is_string() {
            v = expand(&v, |n| lookup(&out, n));
        }
        out.retain(|(k, _)| *k != name);
        out.push((name, v));
    }
    Ok(out)
}

/// The value of `name` in an env list.
pub fn lookup(env: &[(String, String)], name: &str) -> Option<String> {
    env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_paths_map_at_path_boundaries_longest_first() {
        let m = Mounts::new(vec![
            ("/etc/cutover/".into(), "/H/a".into()),
            ("/etc/cutover/secret".into(), "/H/b".into()),
            ("/tmp".into(), "/tmp/pods/x/volumes/t".into()),
        ]);
        assert_eq!(m.map("/etc/cutover/secret/pgpass"), "/H/b/pgpass");
        assert_eq!(m.map("/etc/cutover/x"), "/H/a/x");
        assert_eq!(
            m.map("cat /etc/cutover/secret;ls /tmp"),
            "cat /H/b;ls /tmp/pods/x/volumes/t"
        );
        assert_eq!(
            m.map("--dir=/tmp/a:/tmp"),
            "--dir=/tmp/pods/x/volumes/t/a:/tmp/pods/x/volumes/t"
        );
        // Not at a boundary: part of a longer name or path.
        assert_eq!(
            m.map("/tmpfoo /x/tmp /etc/cutover-2"),
            "/tmpfoo /x/tmp /etc/cutover-2"
        );
        assert_eq!(m.map("é/tmp"), "é/tmp/pods/x/volumes/t");
    }

    #[test]
    fn expansion_like_kubernetes() {
        let env = vec![("A".to_string(), "1".to_string())];
        let f = |n: &str| lookup(&env, n);
        assert_eq!(expand("x$(A)y", f), "x1y");
        assert_eq!(expand("$(B)", f), "$(B)");
        assert_eq!(expand("$$(A) $ $(A", f), "$(A) $ $(A");
    }

    #[test]
    fn safe_paths() {
        assert!(safe_relative("a/b"));
        assert!(!safe_relative("../a"));
        assert!(!safe_relative("/a"));
        assert!(!safe_relative(""));
    }
}
