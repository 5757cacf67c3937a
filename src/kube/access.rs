//! Before any action: what this identity must be allowed to do, asked of the
//! API server with SelfSubjectAccessReview, and the exact patches an action
//! sends, shown before it sends them.

use anyhow::Result;
use kube::Client;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{can_i, restart_patch, switch_patch, ConfigObject};

/// One permission an action needs, and the server's answer once asked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessCheck {
    pub verb: String,
    /// API group: "" for the core group, "apps" for Deployments.
    pub group: String,
    pub resource: String,
    pub namespace: String,
    pub name: Option<String>,
    pub allowed: bool,
    pub reason: Option<String>,
}

impl AccessCheck {
    pub(crate) fn want(
        verb: &str,
        group: &str,
        resource: &str,
        ns: &str,
        name: Option<&str>,
    ) -> Self {
        AccessCheck {
            verb: verb.into(),
            group: group.into(),
            resource: resource.into(),
            namespace: ns.into(),
            name: name.map(str::to_string),
            allowed: false,
            reason: None,
        }
    }

    /// `patch deployments.apps/app in shop`: verb, resource and scope, as RBAC names them.
    pub fn describe(&self) -> String {
        let group = if self.group.is_empty() {
            String::new()
        } else {
            format!(".{}", self.group)
        };
        let name = self
            .name
            .as_deref()
            .map(|n| format!("/{n}"))
            .unwrap_or_default();
        format!(
            "{} {}{group}{name} in {}",
            self.verb, self.resource, self.namespace
        )
    }
}

/// What the console's watchers and actions need, unanswered.
pub fn required_access(
    ns: &str,
    deployments: &[String],
    config_object: Option<&ConfigObject>,
    changes: crate::config::Changes,
) -> Vec<AccessCheck> {
    let gitops = changes == crate::config::Changes::Gitops;
    let mut out = Vec::new();
    for verb in ["get", "list", "watch"] {
        out.push(AccessCheck::want(verb, "apps", "deployments", ns, None));
    }
    // Under GitOps the console only reads: the controller writes.
    for d in deployments.iter().filter(|_| !gitops) {
        out.push(AccessCheck::want(
            "patch",
            "apps",
            "deployments",
            ns,
            Some(d),
        ));
    }
    for res in ["replicasets", "pods", "events"] {
        let group = if res == "replicasets" { "apps" } else { "" };
        for verb in ["list", "watch"] {
            out.push(AccessCheck::want(verb, group, res, ns, None));
        }
    }
    if let Some(obj) = config_object {
        let (res, name) = object_resource(obj);
        if gitops {
            // The wait watches it: a list and watch by field selector.
            out.push(AccessCheck::want("get", "", res, ns, Some(name)));
            for verb in ["list", "watch"] {
                out.push(AccessCheck::want(verb, "", res, ns, None));
            }
        } else {
            for verb in ["get", "patch"] {
                out.push(AccessCheck::want(verb, "", res, ns, Some(name)));
            }
        }
    }
    out
}

/// What the copy Job needs in `ns`: make, read and delete Jobs, read its
/// pod, its log and the warnings about it.
pub fn copy_job_access(ns: &str) -> Vec<AccessCheck> {
    [
        ("create", "batch", "jobs"),
        ("get", "batch", "jobs"),
        ("delete", "batch", "jobs"),
        ("list", "", "pods"),
        ("get", "", "pods"),
        ("get", "", "pods/log"),
        ("list", "", "events"),
    ]
    .into_iter()
    .map(|(verb, group, res)| AccessCheck::want(verb, group, res, ns, None))
    .collect()
}

/// What the search for the config object's users needs: list each kind of
/// workload, and pods, in each namespace.
pub fn discover_access(namespaces: &[String]) -> Vec<AccessCheck> {
    let mut out = Vec::new();
    for ns in namespaces {
        for (group, res) in [
            ("apps", "deployments"),
            ("apps", "statefulsets"),
            ("batch", "cronjobs"),
            ("batch", "jobs"),
            ("", "pods"),
        ] {
            out.push(AccessCheck::want("list", group, res, ns, None));
        }
    }
    out
}

fn object_resource(obj: &ConfigObject) -> (&'static str, &str) {
    match obj {
        ConfigObject::ConfigMap(n) => ("configmaps", n),
        ConfigObject::Secret(n) => ("secrets", n),
        ConfigObject::Service(n) => ("services", n),
    }
}

/// Asks the API server about each check, in order.
pub async fn preflight(client: &Client, checks: Vec<AccessCheck>) -> Result<Vec<AccessCheck>> {
    let mut out = Vec::with_capacity(checks.len());
    for mut c in checks {
        let resource = if c.group.is_empty() {
            c.resource.clone()
        } else {
            format!("{}.{}", c.resource, c.group)
        };
        let a = super::bounded(
            &format!("access review of {} {resource}", c.verb),
            can_i(client, &c.verb, &resource, &c.namespace, c.name.as_deref()),
        )
        .await?;
        c.allowed = a.allowed;
        c.reason = (!a.allowed).then_some(a.message);
        out.push(c);
    }
    Ok(out)
}

impl ConfigObject {
    /// `configmap/NAME`, `secret/NAME` or `service/NAME`, as cutover.toml
    /// spells it (kubectl's plural and short forms are accepted too).
    pub fn parse(s: &str) -> Option<ConfigObject> {
        let (kind, name) = s.trim().split_once('/')?;
        if name.is_empty() || name.contains('/') {
            return None;
        }
        match kind.to_ascii_lowercase().as_str() {
            "configmap" | "configmaps" | "cm" => Some(ConfigObject::ConfigMap(name.into())),
            "secret" | "secrets" => Some(ConfigObject::Secret(name.into())),
            "service" | "services" | "svc" => Some(ConfigObject::Service(name.into())),
            _ => None,
        }
    }

    /// The object's name, without its kind.
    pub fn name(&self) -> &str {
        match self {
            ConfigObject::ConfigMap(n) | ConfigObject::Secret(n) | ConfigObject::Service(n) => n,
        }
    }
}

/// The merge patch a switch sends, with `value_shown` where the value goes
/// (for a ConfigMap or Secret a fingerprint, the value being a secret; a
/// Service's selector value is not secret and can be shown as is). The
/// switch also sends the object's resourceVersion as a guard, which is only
/// known when it reads the object, so the preview leaves it out.
pub fn switch_patch_preview(object: &ConfigObject, key: &str, value_shown: &str) -> String {
    match object {
        // A Secret's data is base64 on the wire; the dialog shows what it encodes.
        ConfigObject::Secret(_) => {
            format!("{} (base64-encoded)", json!({"data": {key: value_shown}}))
        }
        _ => switch_patch(object, key, Some(value_shown), None).to_string(),
    }
}

/// The strategic merge patch a restart sends, exactly.
pub fn restart_patch_preview(restarted_at: &str) -> String {
    restart_patch(restarted_at).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Changes;

    #[test]
    fn required_access_names_each_permission() {
        let obj = ConfigObject::parse("configmap/app-db").unwrap();
        let checks = required_access("shop", &["app".into()], Some(&obj), Changes::Patch);
        let all: Vec<String> = checks.iter().map(AccessCheck::describe).collect();
        assert!(all.contains(&"patch deployments.apps/app in shop".to_string()));
        assert!(all.contains(&"patch configmaps/app-db in shop".to_string()));
        assert!(all.contains(&"watch pods in shop".to_string()));
        assert!(all.contains(&"list replicasets.apps in shop".to_string()));
        assert!(checks.iter().all(|c| !c.allowed && c.reason.is_none()));
        let svc = ConfigObject::parse("service/app").unwrap();
        let checks = required_access("shop", &["app".into()], Some(&svc), Changes::Patch);
        let all: Vec<String> = checks.iter().map(AccessCheck::describe).collect();
        assert!(all.contains(&"get services/app in shop".to_string()));
        assert!(all.contains(&"patch services/app in shop".to_string()));
        assert!(all.contains(&"list events in shop".to_string()));
        // GitOps: nothing to patch, the object watched.
        let checks = required_access("shop", &["app".into()], Some(&obj), Changes::Gitops);
        let all: Vec<String> = checks.iter().map(AccessCheck::describe).collect();
        assert!(all.iter().all(|c| !c.starts_with("patch")), "{all:?}");
        assert!(all.contains(&"get configmaps/app-db in shop".to_string()));
        assert!(all.contains(&"watch configmaps in shop".to_string()));
    }

    #[test]
    fn parse_and_previews() {
        assert_eq!(
            ConfigObject::parse("secret/db"),
            Some(ConfigObject::Secret("db".into()))
        );
        assert_eq!(ConfigObject::parse("configmap/"), None);
        assert_eq!(ConfigObject::parse("app-db"), None);
        assert_eq!(
            switch_patch_preview(
                &ConfigObject::ConfigMap("app-db".into()),
                "DATABASE_URL",
                "<sha256:1234abcd>"
            ),
            r#"{"data":{"DATABASE_URL":"<sha256:1234abcd>"}}"#
        );
        assert_eq!(
            switch_patch_preview(&ConfigObject::Service("app".into()), "track", "green"),
            r#"{"spec":{"selector":{"track":"green"}}}"#
        );
        assert_eq!(
            ConfigObject::parse("service/app"),
            Some(ConfigObject::Service("app".into()))
        );
        assert_eq!(
            ConfigObject::parse("svc/app"),
            Some(ConfigObject::Service("app".into()))
        );
        assert_eq!(ConfigObject::parse("deployment/app"), None);
        assert_eq!(ConfigObject::parse("service/a/b"), None);
        assert_eq!(
            restart_patch_preview("T"),
            r#"{"spec":{"template":{"metadata":{"annotations":{"kubectl.kubernetes.io/restartedAt":"T"}}}}}"#
        );
    }
}
