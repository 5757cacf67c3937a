//! CronJobs (batch/v1): stored, listed, watched, defaulted and validated
//! like the API server does, with kubectl's table. The simulator does not
//! run schedules: no Job is ever created from `spec.schedule`. A Job made
//! from one by hand (`kubectl create job <name> --from=cronjob/<cj>`, which
//! reads the CronJob and creates a Job controlled by it) runs as any Job
//! does; the CronJob's status lists it under `active` while it runs and
//! records `lastSuccessfulTime` when it completes. `lastScheduleTime` stays
//! unset.

use serde_json::{json, Value};

use super::controller::{owned_by, write_status};
use super::protobuf;
use super::store::{fill_defaults, meta_str, ApiError, Kind, Store};

fn invalid(name: &str, field: &str, why: impl AsRef<str>) -> ApiError {
    ApiError::invalid(Kind::CronJob, name, field, why.as_ref())
}

/// What the API server fills in: concurrencyPolicy Allow, suspend false,
/// the history limits 3 and 1.
pub fn default_cronjob(obj: &mut Value) {
    fill_defaults(
        &mut obj["spec"],
        vec![
            ("concurrencyPolicy", json!("Allow")),
            ("suspend", json!(false)),
            ("successfulJobsHistoryLimit", json!(3)),
            ("failedJobsHistoryLimit", json!(1)),
        ],
    );
}

const MACROS: [&str; 7] = [
    "@yearly",
    "@annually",
    "@monthly",
    "@weekly",
    "@daily",
    "@midnight",
    "@hourly",
];

/// A standard cron line (five fields) or one of the descriptors the
/// controller's parser accepts; None when it is fine, else why not.
fn schedule_problem(s: &str) -> Option<String> {
    let t = s.trim();
    if t.starts_with("TZ=") || t.starts_with("CRON_TZ=") {
        return Some("cannot use TZ or CRON_TZ in schedule, use timeZone field instead".into());
    }
    if MACROS.contains(&t)
        || t.strip_prefix("@every ")
            .is_some_and(|d| !d.trim().is_empty())
    {
        return None;
    }
    let fields: Vec<&str> = t.split_whitespace().collect();
    if fields.len() != 5 {
        return Some(format!(
            "Expected exactly 5 fields, found {}: {t}",
            fields.len()
        ));
    }
    let ok = |f: &&str| {
        f.chars()
            .all(|c| c.is_ascii_alphanumeric() || "*,/-?".contains(c))
    };
    fields
        .iter()
        .find(|f| !ok(f))
        .map(|f| format!("Failed to parse int from {f}"))
}

/// The API server's checks on a CronJob that the simulator relies on: a
/// schedule, and a job template that is a valid Job's.
pub fn validate(name: &str, obj: &Value) -> Result<(), ApiError> {
    let spec = &obj["spec"];
    match spec["schedule"].as_str() {
        None | Some("") => return Err(invalid(name, "spec.schedule", "Required value")),
        Some(s) => {
            if let Some(why) = schedule_problem(s) {
                return Err(invalid(
                    name,
                    "spec.schedule",
                    format!("Invalid value: {}: {why}", json!(s)),
                ));
            }
        }
    }
    match spec["concurrencyPolicy"].as_str() {
        None | Some("Allow" | "Forbid" | "Replace") => {}
        Some(other) => {
            return Err(invalid(
                name,
                "spec.concurrencyPolicy",
                format!("Unsupported value: \"{other}\": supported values: \"Allow\", \"Forbid\", \"Replace\""),
            ))
        }
    }
    // The template is checked as a Job's, its fields named from the CronJob.
    let job = json!({"spec": spec["jobTemplate"]["spec"]});
    super::jobs::validate(name, &job).map_err(|e| {
        let cause = e
            .details
            .as_ref()
            .and_then(|d| d["causes"].get(0).cloned())
            .unwrap_or_default();
        invalid(
            name,
            &format!(
                "spec.jobTemplate.{}",
                cause["field"].as_str().unwrap_or("spec")
            ),
            cause["message"].as_str().unwrap_or(&e.message),
        )
    })
}

/// A Job that kubectl's typed client sent as protobuf, the way
/// `kubectl create job <name> --from=cronjob/<cj>` does: its metadata is
/// read from the protobuf, its spec is the CronJob's `jobTemplate.spec`
/// (kubectl copies it unchanged) found through the Job's controller
/// ownerReference. Any other protobuf body gets 415: the simulator has no
/// schemas to read a spec with.
pub fn job_from_protobuf(s: &Store, kind: Kind, ns: &str, body: &[u8]) -> Result<Value, ApiError> {
    let unsupported = |why: &str| {
        ApiError::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the lab simulator reads protobuf only for a Job made from a CronJob ({why}); \
                 send application/json"
            ),
        )
    };
    if kind != Kind::Job {
        return Err(unsupported("not a Job"));
    }
    let (_, _, raw) = protobuf::unknown(body).ok_or_else(|| unsupported("unreadable"))?;
    let meta = protobuf::bytes_fields(raw)
        .and_then(|fs| fs.into_iter().find(|(f, _)| *f == 1))
        .and_then(|(_, m)| protobuf::object_meta(m))
        .ok_or_else(|| unsupported("unreadable metadata"))?;
    let owner = meta["ownerReferences"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|r| r["kind"] == "CronJob" && r["controller"] == true)
        .ok_or_else(|| unsupported("no CronJob owns it"))?;
    let cj = s
        .get(Kind::CronJob, ns, owner["name"].as_str().unwrap_or(""))
        .filter(|cj| meta_str(cj, "uid") == owner["uid"])
        .ok_or_else(|| unsupported("its CronJob is not here"))?;
    Ok(json!({"metadata": meta, "spec": cj["spec"]["jobTemplate"]["spec"]}))
}

/// kubectl's columns for cronjobs (without `-o wide`), as a 1.32 server
/// gives them.
pub const TABLE_COLUMNS: [(&str, &str); 7] = [
    ("Name", "string"),
    ("Schedule", "string"),
    ("Timezone", "string"),
    ("Suspend", "boolean"),
    ("Active", "integer"),
    ("Last Schedule", "string"),
    ("Age", "string"),
];

/// One row of `kubectl get cj`: NAME, SCHEDULE, TIMEZONE, SUSPEND, ACTIVE,
/// LAST SCHEDULE, AGE.
pub fn table_row(o: &Value) -> Vec<Value> {
    let spec = &o["spec"];
    let suspend = match spec["suspend"].as_bool() {
        Some(true) => "True",
        Some(false) => "False",
        None => "<unset>",
    };
    let last = o["status"]["lastScheduleTime"]
        .as_str()
        .map_or_else(|| "<none>".to_string(), super::http::human_age);
    vec![
        json!(meta_str(o, "name")),
        json!(spec["schedule"].as_str().unwrap_or("")),
        json!(spec["timeZone"].as_str().unwrap_or("<none>")),
        json!(suspend),
        json!(o["status"]["active"].as_array().map_or(0, Vec::len)),
        json!(last),
        json!(super::http::human_age(meta_str(o, "creationTimestamp"))),
    ]
}

fn finished(job: &Value) -> Option<&'static str> {
    let conds = job["status"]["conditions"].as_array()?;
    ["Complete", "Failed"].into_iter().find(|t| {
        conds
            .iter()
            .any(|c| c["type"] == *t && c["status"] == "True")
    })
}

/// One pass of the CronJob controller's bookkeeping (no scheduling): the
/// Jobs it controls that still run are `active`; one that completed since
/// the last pass moves `lastSuccessfulTime`.
pub fn sync(s: &mut Store) {
    let cjs: Vec<Value> = s.list(Kind::CronJob, None).into_iter().cloned().collect();
    for cj in cjs {
        let ns = meta_str(&cj, "namespace").to_string();
        let jobs: Vec<Value> = owned_by(s.list(Kind::Job, Some(&ns)), meta_str(&cj, "uid"))
            .into_iter()
            .cloned()
            .collect();
        let was_active = |uid: &str| {
            cj["status"]["active"]
                .as_array()
                .is_some_and(|a| a.iter().any(|r| r["uid"] == uid))
        };
        let mut status = cj["status"].clone();
        if !status.is_object() {
            status = json!({});
        }
        let mut running = Vec::new();
        for j in &jobs {
            match finished(j) {
                None => running.push(json!({
                    "kind": "Job", "namespace": ns, "name": meta_str(j, "name"),
                    "uid": meta_str(j, "uid"), "apiVersion": "batch/v1",
                    "resourceVersion": meta_str(j, "resourceVersion"),
                })),
                Some("Complete") if was_active(meta_str(j, "uid")) => {
                    status["lastSuccessfulTime"] = j["status"]["completionTime"].clone();
                }
                Some(_) => {}
            }
        }
        // The active list names Jobs, not their versions: no churn per write.
        let same = |a: &Value, b: &Value| a["uid"] == b["uid"];
        let old: Vec<Value> = cj["status"]["active"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if old.len() != running.len() || !old.iter().zip(&running).all(|(a, b)| same(a, b)) {
            match running.is_empty() {
                true => {
                    if let Some(m) = status.as_object_mut() {
                        m.remove("active");
                    }
                }
                false => status["active"] = Value::Array(running),
            }
        }
        write_status(s, Kind::CronJob, &ns, meta_str(&cj, "name"), status);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cj(spec: Value) -> Value {
        json!({"metadata": {"name": "nightly"}, "spec": spec})
    }

    fn template() -> Value {
        json!({"spec": {"template": {"spec": {"restartPolicy": "Never",
            "containers": [{"name": "c", "command": ["true"]}]}}}})
    }

    #[test]
    fn schedules_and_templates_are_checked() {
        validate(
            "n",
            &cj(json!({"schedule": "0 3 * * *", "jobTemplate": template()})),
        )
        .unwrap();
        validate(
            "n",
            &cj(json!({"schedule": "@daily", "jobTemplate": template()})),
        )
        .unwrap();
        for (spec, field) in [
            (json!({"jobTemplate": template()}), "spec.schedule"),
            (
                json!({"schedule": "0 3 * *", "jobTemplate": template()}),
                "spec.schedule",
            ),
            (
                json!({"schedule": "0 3 * * *"}),
                "spec.jobTemplate.spec.template",
            ),
            (
                json!({"schedule": "0 3 * * *", "jobTemplate": {"spec": {"template": {"spec": {
                    "containers": [{"name": "c"}]}}}}}),
                "spec.jobTemplate.spec.template.spec.restartPolicy",
            ),
        ] {
            let e = validate("n", &cj(spec.clone())).unwrap_err();
            assert_eq!(e.code, 422, "{spec}");
            assert!(
                e.message.starts_with("CronJob \"n\" is invalid: ")
                    && e.message.contains(&format!("{field}:")),
                "{}",
                e.message
            );
        }
    }

    #[test]
    fn table_row_reads_like_kubectl() {
        let mut v = cj(json!({"schedule": "0 3 * * *"}));
        default_cronjob(&mut v);
        let row = table_row(&v);
        assert_eq!(row[1], "0 3 * * *");
        assert_eq!(row[2], "<none>");
        assert_eq!(row[3], "False");
        assert_eq!(row[4], 0);
        assert_eq!(row[5], "<none>");
    }
}
