//! The dump-and-restore copy as a Kubernetes Job (`[runbook] copy = "job"`):
//! the data and the credentials stay in the cluster. What the dialog shows
//! and what the executor creates come from here, one function each: the
//! Job's manifest is [`manifest`] of the step's [`CopyJob`].
//!
//! The Job: `backoffLimit: 0` (a failed copy leaves a partial target that
//! must be looked at, never copied over by a retry), `restartPolicy: Never`,
//! `activeDeadlineSeconds`, the password file from a Secret (mounted
//! read-only, then copied to an owner-only file in an emptyDir, since libpq
//! ignores a password file that others may read and a Secret's files belong
//! to root), and `pg_dump --format=custom | pg_restore` (the pipe cannot
//! run parallel jobs; the local copy can). Both tools' exit statuses count.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::config::{Config, ConnParams};

/// Where the secret volume is mounted and the working directory.
pub const SECRET_DIR: &str = "/etc/cutover/pgpass";
pub const WORK_DIR: &str = "/var/run/cutover";
/// The plan's namespace when neither `[runbook.job]` nor `[kubernetes]`
/// names one: the kube context's, known only once connected (as the
/// session header's Kubernetes namespace says it).
pub const CONTEXT_NAMESPACE: &str = "(default)";
/// The label every copy Job and its pod carry: which session made it.
pub const SESSION_LABEL: &str = "cutover.dev/session";

/// The copy Job as the plan carries it: nothing secret (the password file
/// stays in its Secret; the connection strings have no password).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CopyJob {
    pub namespace: String,
    pub image: String,
    pub secret: String,
    pub secret_key: String,
    /// The libpq connection strings the Job uses, without password.
    pub source: String,
    pub target: String,
    pub deadline_s: u64,
}

/// The connection string the Job uses for one side: the console's, with
/// the Job's role and host where the config names them. Only what means
/// the same in a pod: no local file paths.
fn job_conninfo(p: &ConnParams, user: Option<&str>, host: Option<&str>) -> String {
    fn q(v: &str) -> String {
        format!("'{}'", v.replace('\\', "\\\\").replace('\'', "\\'"))
    }
    let (hosts, ports) = match host {
        Some(h) => match h.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), p.to_string()),
            None => (h.to_string(), "5432".to_string()),
        },
        None => (
            p.hosts
                .iter()
                .map(|e| e.host.label())
                .collect::<Vec<_>>()
                .join(","),
            p.hosts
                .iter()
                .map(|e| e.port.to_string())
                .collect::<Vec<_>>()
                .join(","),
        ),
    };
    format!(
        "host={} port={} dbname={} user={} sslmode={} application_name=cutover-copy",
        q(&hosts),
        q(&ports),
        q(&p.dbname),
        q(user.unwrap_or(&p.user)),
        p.sslmode.as_str()
    )
}

impl CopyJob {
    /// The Job the config asks for, if it asks for one.
    pub fn from_config(config: &Config) -> Option<CopyJob> {
        let j = config.runbook.copy_job.as_ref()?;
        let namespace = j
            .namespace
            .clone()
            .or_else(|| config.kubernetes.as_ref()?.namespace.clone())
            .unwrap_or_else(|| CONTEXT_NAMESPACE.into());
        Some(CopyJob {
            namespace,
            image: j.image.clone(),
            secret: j.secret.clone(),
            secret_key: j.secret_key.clone(),
            source: job_conninfo(
                &config.source.params,
                j.user.as_deref(),
                j.source_host.as_deref(),
            ),
            target: job_conninfo(
                &config.target.params,
                j.user.as_deref(),
                j.target_host.as_deref(),
            ),
            deadline_s: j.deadline_secs,
        })
    }

    /// The namespace the Job goes to, `current` being the connection's.
    pub fn namespace_in<'a>(&'a self, current: &'a str) -> &'a str {
        if self.namespace == CONTEXT_NAMESPACE {
            current
        } else {
            &self.namespace
        }
    }

    /// What the dialog says the step does.
    pub fn lines(&self, tables: usize) -> Vec<String> {
        vec![
            format!(
                "create Job cutover-copy-… in {} (image {}, backoffLimit 0, restartPolicy \
                 Never, activeDeadlineSeconds {})",
                self.namespace, self.image, self.deadline_s
            ),
            format!(
                "  password file from Secret {} (key {}), copied owner-only inside the pod",
                self.secret, self.secret_key
            ),
            format!(
                "  pg_dump --format=custom --no-owner --no-privileges ({tables} tables, their \
                 sequences) of {}",
                self.source
            ),
            format!(
                "  | pg_restore --no-owner --no-privileges --exit-on-error into {}",
                self.target
            ),
            "follow its pod's log to the end; the Job is deleted once it succeeded (a failed \
             one is left for kubectl logs; one whose pod cannot start, after 20 s)"
                .into(),
        ]
    }
}

/// The shell the Job's container runs: the password file made owner-only,
/// then the pipe, failing when either tool fails.
pub fn script() -> String {
    concat!(
        "set -eu\n",
        "umask 077\n",
        "cp \"$CUTOVER_PGPASS\" \"$CUTOVER_WORK/pgpass\"\n",
        "export PGPASSFILE=\"$CUTOVER_WORK/pgpass\"\n",
        "echo \"cutover-copy: pg_dump $(pg_dump --version | sed 's/^pg_dump //')\"\n",
        "restore=0\n",
        "{ rc=0; pg_dump --format=custom --compress=0 --no-owner --no-privileges ",
        "--no-publications --no-subscriptions --verbose --dbname \"$CUTOVER_SOURCE\" || rc=$?; ",
        "echo \"$rc\" > \"$CUTOVER_WORK/dump.rc\"; } ",
        "| pg_restore --no-owner --no-privileges --exit-on-error --verbose ",
        "--dbname \"$CUTOVER_TARGET\" || restore=$?\n",
        "dump=$(cat \"$CUTOVER_WORK/dump.rc\")\n",
        "if [ \"$dump\" != 0 ]; then echo \"cutover-copy: pg_dump failed (exit $dump)\" >&2; exit 1; fi\n",
        "if [ \"$restore\" != 0 ]; then echo \"cutover-copy: pg_restore failed (exit $restore)\" >&2; exit 2; fi\n",
        "echo \"cutover-copy: done\"\n",
    )
    .to_string()
}

/// The Job, as created: named `name`, labelled with the session.
pub fn manifest(job: &CopyJob, name: &str, session: &str) -> Value {
    let labels = json!({
        "app.kubernetes.io/name": "cutover-copy",
        "app.kubernetes.io/managed-by": "cutover",
        SESSION_LABEL: session,
    });
    json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": job.namespace, "labels": labels},
        "spec": {
            "backoffLimit": 0,
            "activeDeadlineSeconds": job.deadline_s,
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "restartPolicy": "Never",
                    "automountServiceAccountToken": false,
                    "containers": [{
                        "name": "copy",
                        "image": job.image,
                        "command": ["sh", "-c", script()],
                        "env": [
                            {"name": "CUTOVER_SOURCE", "value": job.source},
                            {"name": "CUTOVER_TARGET", "value": job.target},
                            {"name": "CUTOVER_PGPASS",
                             "value": format!("{SECRET_DIR}/{}", job.secret_key)},
                            {"name": "CUTOVER_WORK", "value": WORK_DIR},
                        ],
                        "volumeMounts": [
                            {"name": "pgpass", "mountPath": SECRET_DIR, "readOnly": true},
                            {"name": "work", "mountPath": WORK_DIR},
                        ],
                    }],
                    "volumes": [
                        {"name": "pgpass", "secret": {
                            "secretName": job.secret,
                            "defaultMode": 0o440,
                            "items": [{"key": job.secret_key, "path": job.secret_key}],
                        }},
                        {"name": "work", "emptyDir": {}},
                    ],
                },
            },
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job() -> CopyJob {
        CopyJob {
            namespace: "shop".into(),
            image: "postgres:18".into(),
            secret: "copy-pgpass".into(),
            secret_key: "pgpass".into(),
            source: "host='old' port='5432' dbname='app' user='copy' sslmode=require".into(),
            target: "host='new' port='5432' dbname='app2' user='copy' sslmode=require".into(),
            deadline_s: 3600,
        }
    }

    #[test]
    fn the_job_never_retries_and_reads_its_password_from_the_secret() {
        let m = manifest(&job(), "cutover-copy-1", "s1");
        assert_eq!(m["spec"]["backoffLimit"], 0);
        assert_eq!(m["spec"]["activeDeadlineSeconds"], 3600);
        let pod = &m["spec"]["template"]["spec"];
        assert_eq!(pod["restartPolicy"], "Never");
        assert_eq!(pod["volumes"][0]["secret"]["secretName"], "copy-pgpass");
        let env = pod["containers"][0]["env"].as_array().unwrap();
        let var = |n: &str| {
            env.iter().find(|e| e["name"] == n).unwrap()["value"]
                .as_str()
                .unwrap()
                .to_string()
        };
        assert_eq!(var("CUTOVER_PGPASS"), "/etc/cutover/pgpass/pgpass");
        assert!(var("CUTOVER_TARGET").contains("dbname='app2'"));
        assert_eq!(m["metadata"]["labels"][SESSION_LABEL], "s1");
        // No password anywhere in what the cluster is given.
        assert!(!m.to_string().contains("password="));
    }

    #[test]
    fn without_a_namespace_the_job_goes_to_the_contexts() {
        let mut j = job();
        assert_eq!(j.namespace_in("lab"), "shop");
        j.namespace = CONTEXT_NAMESPACE.into();
        assert_eq!(j.namespace_in("lab"), "lab");
    }

    #[test]
    fn the_script_fails_when_either_tool_fails() {
        let s = script();
        assert!(s.contains("--exit-on-error"));
        assert!(s.contains("dump.rc"));
        assert!(s.contains("umask 077"));
    }
}
