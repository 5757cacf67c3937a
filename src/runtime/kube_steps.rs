//! The Kubernetes side of the executor: the access review the console keeps
//! fresh, and the Kubernetes steps of a plan (patch or restore the config
//! key, restart, wait for a rollout), each bounded by a request deadline.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use tokio::sync::mpsc::Sender;
use tokio::sync::Mutex;

use crate::config::{Config, KubeCfg};
use crate::kube::gitops::Awaited;
use crate::kube::{
    self, bounded, connect, fingerprint, rollout_restart, switch_config_key, wait_rollout,
    AccessCheck, ConfigObject, ConfigSwitch, RolloutOutcome,
};
use crate::runbook::plan::SwitchTo;
use crate::runbook::{Plan, Step};
use crate::session::rollback::{self, KeptValue};
use crate::session::{AccessResult, EventKind, SwitchRecord, SwitchValue};

use super::exec::InFlight;
use super::kube_task::target;

const PREFLIGHT_DEADLINE: Duration = Duration::from_secs(20);

/// What survives between steps and runs: the value a switch replaced (in
/// memory, and in the session's owner-only rollback file for a restarted
/// console; the log and screen see its fingerprint), and the generation
/// each restart produced, which its rollout wait watches for.
#[derive(Default, Clone)]
pub struct ActionState {
    switched: Arc<Mutex<Option<ConfigSwitch>>>,
    restarts: Arc<Mutex<std::collections::HashMap<String, Option<i64>>>>,
    /// Where the value a switch replaces is kept (`<log>.rollback`); None
    /// keeps it in memory only.
    rollback_file: Option<PathBuf>,
    /// The session's name, on what it makes in the cluster (copy Jobs).
    pub(super) session: String,
}

impl ActionState {
    /// Keeps the value each switch replaces in `rollback_file` as well,
    /// written before the switch's PATCH.
    pub fn with_rollback_file(rollback_file: PathBuf, session: String) -> Self {
        Self {
            rollback_file: Some(rollback_file),
            session,
            ..Self::default()
        }
    }
}

fn config_object(k: &KubeCfg) -> Result<(ConfigObject, String)> {
    let object = k
        .config_object
        .as_deref()
        .ok_or_else(|| anyhow!("kubernetes.config_object is not configured"))?;
    let obj = ConfigObject::parse(object)
        .ok_or_else(|| anyhow!("kubernetes.config_object \"{object}\" is not understood"))?;
    let key = k
        .config_key
        .clone()
        .ok_or_else(|| anyhow!("kubernetes.config_key is not configured"))?;
    Ok((obj, key))
}

fn access_result(c: &AccessCheck) -> AccessResult {
    AccessResult {
        describe: c.describe(),
        verb: c.verb.clone(),
        allowed: c.allowed,
        reason: c.reason.clone(),
    }
}

pub async fn preflight(config: Arc<Config>, tx: Sender<EventKind>) {
    let Some(k) = config.kubernetes.clone() else {
        return;
    };
    // Each call is bounded; the whole review too, so a slow answer per call
    // cannot add up to a review that never ends.
    let result = kube::bounded_by(PREFLIGHT_DEADLINE, "access review", async {
        let conn = connect(&target(&k)).await?;
        let object = k.config_object.as_deref().and_then(ConfigObject::parse);
        let mut checks =
            kube::required_access(&conn.namespace, &k.deployments, object.as_ref(), k.changes);
        if matches!(
            object,
            Some(ConfigObject::ConfigMap(_) | ConfigObject::Secret(_))
        ) {
            let known: Vec<String> = checks.iter().map(AccessCheck::describe).collect();
            checks.extend(
                kube::discover_access(&k.search_namespaces(&conn.namespace))
                    .into_iter()
                    .filter(|c| !known.contains(&c.describe())),
            );
        }
        if let Some(job) = &config.runbook.copy_job {
            checks.extend(kube::copy_job_access(
                job.namespace.as_deref().unwrap_or(&conn.namespace),
            ));
        }
        let checks = kube::preflight(&conn.client, checks).await?;
        let value = match (&k.switch_to, config_object(&k)) {
            (Some(src), Ok((obj, key))) => {
                let mut v = SwitchValue::default();
                match src.read() {
                    Ok(new) => v.new_fingerprint = Some(fingerprint(&new)),
                    Err(e) => v.error = Some(e),
                }
                let what = format!("reading {obj} {key}");
                let read = bounded(
                    &what,
                    kube::read_key(&conn.client, &conn.namespace, &obj, &key),
                );
                match read.await {
                    Ok((current, _)) => v.current_fingerprint = current.as_deref().map(fingerprint),
                    Err(e) => {
                        v.error.get_or_insert(format!("{e:#}"));
                    }
                }
                if let Some(ro) = &k.read_only_to {
                    match ro.read() {
                        Ok(value) => v.read_only_fingerprint = Some(fingerprint(&value)),
                        Err(e) => v.read_only_error = Some(e),
                    }
                }
                Some(v)
            }
            _ => None,
        };
        anyhow::Ok((checks, value))
    })
    .await;
    let event = match result {
        Ok((checks, switch_value)) => EventKind::KubePreflightDone {
            checks: checks.iter().map(access_result).collect(),
            switch_value,
            error: None,
        },
        Err(e) => EventKind::KubePreflightDone {
            checks: vec![],
            switch_value: None,
            error: Some(format!("{e:#}")),
        },
    };
    let _ = tx.send(event).await;
}

/// The model's verdict on a running checkpoint's guards, as of an event's time.
pub(super) fn needed_access(ns: &str, plan: &Plan) -> Vec<AccessCheck> {
    let mut deployments = Vec::new();
    let mut object = None;
    let mut changes = crate::config::Changes::Patch;
    for step in &plan.steps {
        match step {
            Step::PatchConfig { object: o, .. } | Step::RestoreConfig { object: o, .. } => {
                object = ConfigObject::parse(o)
            }
            Step::AwaitConfig { object: o, .. } => {
                object = ConfigObject::parse(o);
                changes = crate::config::Changes::Gitops;
            }
            Step::Restart { deployment, .. } | Step::WaitRollout { deployment, .. }
                if !deployments.contains(deployment) =>
            {
                deployments.push(deployment.clone())
            }
            _ => {}
        }
    }
    let mut checks: Vec<AccessCheck> =
        kube::required_access(ns, &deployments, object.as_ref(), changes)
            .into_iter()
            .filter(|c| match c.verb.as_str() {
                "get" | "patch" => true,
                // What a GitOps wait needs on the object it watches.
                "watch" => {
                    changes == crate::config::Changes::Gitops
                        && matches!(c.resource.as_str(), "configmaps" | "secrets" | "services")
                }
                _ => false,
            })
            .collect();
    for step in &plan.steps {
        if let Step::RestartStatefulSet {
            namespace,
            statefulset,
        } = step
        {
            checks.push(AccessCheck::want(
                "patch",
                "apps",
                "statefulsets",
                namespace,
                Some(statefulset),
            ));
        }
        if let Step::CopyJob { job, .. } = step {
            checks.extend(kube::copy_job_access(job.namespace_in(ns)));
        }
    }
    checks
}

/// Where the value a switch writes comes from: the target's for the switch,
/// the read-only role's for the freeze.
fn value_source(k: &KubeCfg, to: SwitchTo) -> Result<&crate::config::ValueSource> {
    match to {
        SwitchTo::Target => k.switch_to.as_ref().ok_or_else(|| {
            anyhow!("no switch value: set kubernetes.switch_to_env or switch_to_file")
        }),
        SwitchTo::ReadOnly => k.read_only_to.as_ref().ok_or_else(|| {
            anyhow!("no read-only value: set kubernetes.read_only_to_env or read_only_to_file")
        }),
    }
}

/// The fingerprint of the freeze's read-only value, as it reads now.
fn read_only_fingerprint(k: &KubeCfg) -> Option<String> {
    k.read_only_to
        .as_ref()
        .and_then(|src| src.read().ok())
        .map(|v| fingerprint(&v))
}

fn fp(f: Option<&str>) -> String {
    f.map_or("absent".into(), |f| format!("sha256:{f}"))
}

pub(super) async fn run_step(
    step: &Step,
    k: &KubeCfg,
    conn: &kube::Connection,
    state: &ActionState,
    switched: &mut Option<SwitchRecord>,
    inflight: &InFlight,
) -> Result<String> {
    match step {
        Step::PatchConfig {
            namespace,
            object,
            key,
            new_fingerprint,
            expect_current,
            to,
        } => {
            let obj = ConfigObject::parse(object)
                .ok_or_else(|| anyhow!("config object \"{object}\" is not understood"))?;
            let src = value_source(k, *to)?;
            let value = src.read().map_err(|e| anyhow!(e))?;
            // The value must be the one whose fingerprint was shown.
            let now = fingerprint(&value);
            if new_fingerprint.as_deref() != Some(now.as_str()) {
                return Err(anyhow!(
                    "{src} now holds sha256:{now}, not the {} the plan showed: nothing patched",
                    fp(new_fingerprint.as_deref())
                ));
            }
            let what = format!("reading {obj} in {namespace}");
            let (current, _) =
                bounded(&what, kube::read_key(&conn.client, namespace, &obj, key)).await?;
            let current_fp = current.as_deref().map(fingerprint);
            if current_fp != *expect_current && current_fp.as_deref() != Some(now.as_str()) {
                return Err(anyhow!(
                    "{obj} {key} holds {} now, not the {} the plan showed: nothing patched",
                    fp(current_fp.as_deref()),
                    fp(expect_current.as_deref())
                ));
            }
            // After a freeze by read-only role, the value to go back to is
            // the one from before that freeze, not the read-only one: kept
            // in memory, or in the rollback file by an earlier console.
            let first = match (*to, read_only_fingerprint(k)) {
                (SwitchTo::Target, Some(ro)) if current_fp.as_deref() == Some(ro.as_str()) => {
                    let in_memory = state
                        .switched
                        .lock()
                        .await
                        .as_ref()
                        .filter(|s| s.changed && s.new_fingerprint == ro)
                        .map(|s| s.previous_value().map(|v| v.expose().to_string()));
                    match (in_memory, &state.rollback_file) {
                        (Some(v), _) => Some(v),
                        (None, Some(path)) => rollback::read(path)
                            .context("nothing patched")?
                            .filter(|kv| {
                                kv.object == obj.to_string()
                                    && kv.key == *key
                                    && kv.new_fingerprint == ro
                            })
                            .map(|kv| kv.previous().map(str::to_string)),
                        (None, None) => None,
                    }
                }
                _ => None,
            };
            // Write-ahead: what the key holds is kept where a restarted
            // console finds it before anything changes it.
            let kept_file = match &state.rollback_file {
                Some(path) if current_fp.as_deref() != Some(now.as_str()) => {
                    let previous = first.clone().unwrap_or(current);
                    let kept =
                        KeptValue::new(obj.to_string(), key, previous, &now, chrono::Utc::now());
                    rollback::write(path, &kept).context("nothing patched")?;
                    Some((path, kept))
                }
                _ => None,
            };
            let what = format!("PATCH {obj} in {namespace}");
            inflight.set(what.clone());
            let sw = bounded(
                &what,
                switch_config_key(&conn.client, namespace, &obj, key, &value),
            )
            .await?;
            inflight.clear();
            *switched = Some(record(&sw));
            let said = if sw.changed {
                format!(
                    "patched {obj} {key}: {} → {}",
                    fp(sw.previous_fingerprint.as_deref()),
                    fp(Some(&sw.new_fingerprint))
                )
            } else {
                format!(
                    "{obj} {key} already held {}: nothing patched",
                    fp(Some(&sw.new_fingerprint))
                )
            };
            // The key changed between the read above and the switch's own
            // read: the file must hold what the switch really replaced.
            let stale_file = kept_file.filter(|(_, kv)| {
                sw.changed
                    && match &first {
                        // Kept from before the freeze: stale only if the
                        // key no longer held the read-only value.
                        Some(_) => sw.previous_fingerprint != current_fp,
                        None => kv.previous_fingerprint != sw.previous_fingerprint,
                    }
            });
            let corrected = match stale_file {
                Some((path, k)) => rollback::write(
                    path,
                    &KeptValue::new(
                        k.object,
                        k.key,
                        sw.previous_value().map(|v| v.expose().to_string()),
                        &sw.new_fingerprint,
                        chrono::Utc::now(),
                    ),
                ),
                None => Ok(()),
            };
            let mut kept = state.switched.lock().await;
            // A no-op second run must not replace the value to go back to.
            if sw.changed || kept.is_none() {
                *kept = Some(match first {
                    Some(previous) => sw.going_back_to(previous),
                    None => sw,
                });
            }
            corrected.with_context(|| {
                format!("{said}, but the value to go back to is kept in memory only")
            })?;
            Ok(said)
        }
        Step::RestoreConfig {
            namespace,
            object,
            key,
            restore,
            expect_current,
            unfreezes: _,
        } => {
            let mut kept = state.switched.lock().await;
            let in_memory = kept
                .as_ref()
                .filter(|s| s.changed && s.new_fingerprint == *expect_current);
            match (in_memory, &state.rollback_file) {
                (Some(sw), _) => {
                    if sw.previous_fingerprint != *restore {
                        return Err(anyhow!(
                            "the kept value is {}, not the {} the plan showed",
                            fp(sw.previous_fingerprint.as_deref()),
                            fp(restore.as_deref())
                        ));
                    }
                    let what = format!("PATCH {object} in {namespace} (restoring {key})");
                    inflight.set(what.clone());
                    bounded(&what, sw.rollback(&conn.client, namespace))
                        .await
                        .with_context(|| format!("restoring {object} {key}"))?;
                    inflight.clear();
                }
                // A console started again on the session: the file it kept.
                (None, Some(path)) => {
                    let file = rollback::read_checked(
                        path,
                        object,
                        key,
                        restore.as_deref(),
                        expect_current,
                    )?;
                    restore_from_file(&file, namespace, expect_current, conn, inflight).await?;
                }
                (None, None) => {
                    return Err(anyhow!(
                        "the value {object} {key} held before the switch is not known here"
                    ))
                }
            }
            *switched = Some(SwitchRecord {
                object: object.clone(),
                key: key.clone(),
                previous_fingerprint: Some(expect_current.clone()),
                new_fingerprint: restore.clone().unwrap_or_else(|| "absent".into()),
                changed: true,
            });
            let mut said = format!(
                "restored {object} {key}: {} → {}",
                fp(Some(expect_current)),
                fp(restore.as_deref())
            );
            *kept = None;
            // Nothing is left to undo; a file left behind is never used
            // again (the log no longer records a switch to undo).
            if let Some(Err(e)) = state.rollback_file.as_deref().map(rollback::remove) {
                said.push_str(&format!(" ({e:#})"));
            }
            Ok(said)
        }
        Step::AwaitConfig {
            namespace,
            object,
            key,
            want,
            was,
            value_from: _,
            timeout_s,
            undo,
            to,
        } => {
            let obj = ConfigObject::parse(object)
                .ok_or_else(|| anyhow!("config object \"{object}\" is not understood"))?;
            if !*undo {
                // The value to be merged must still be the one the plan showed.
                let src = value_source(k, *to)?;
                let now = fingerprint(&src.read().map_err(|e| anyhow!(e))?);
                if want.as_deref() != Some(now.as_str()) {
                    return Err(anyhow!(
                        "{src} now holds sha256:{now}, not the {} the plan showed: nothing \
                         waited for",
                        fp(want.as_deref())
                    ));
                }
            }
            // The generation of each workload before the change: the
            // rollouts it causes are the ones after.
            let mut before = Vec::new();
            if !matches!(obj, ConfigObject::Service(_)) {
                for d in &k.deployments {
                    let what = format!("reading deployment/{d} in {namespace}");
                    let g = bounded(&what, kube::generation(&conn.client, namespace, d)).await?;
                    before.push((d.clone(), g));
                }
            }
            let out = kube::gitops::await_key(
                &conn.client,
                namespace,
                &obj,
                key,
                want.as_deref(),
                Duration::from_secs(*timeout_s),
            )
            .await?;
            let (waited_ms, by, already) = match out {
                Awaited::Seen {
                    waited_ms,
                    by,
                    already,
                } => (waited_ms, by, already),
                Awaited::TimedOut { now, waited_ms } => {
                    return Err(anyhow!(
                        "{obj} {key} still holds {} after {:.0} s, not {}: the change has not \
                         reached the cluster (the console wrote nothing)",
                        fp(now.as_deref()),
                        waited_ms as f64 / 1000.0,
                        fp(want.as_deref())
                    ))
                }
            };
            {
                // Applied before the wait: its rollout is the one under way
                // or done. Applied during it: the rollouts from then on.
                let mut restarts = state.restarts.lock().await;
                for (d, g) in before {
                    restarts.insert(d, if already { None } else { g.map(|g| g + 1) });
                }
            }
            *switched = Some(SwitchRecord {
                object: object.clone(),
                key: key.clone(),
                previous_fingerprint: was.clone(),
                new_fingerprint: want.clone().unwrap_or_else(|| "absent".into()),
                // A revert always undoes; a switch seen already in place
                // before the plan changed nothing.
                changed: *undo || was != want,
            });
            let by = by.map(|b| format!(", applied by {b}")).unwrap_or_default();
            Ok(if already {
                format!(
                    "{obj} {key} already held {} when the wait began{by}",
                    fp(want.as_deref())
                )
            } else {
                format!(
                    "{obj} {key} holds {}: seen after {:.1} s{by}",
                    fp(want.as_deref()),
                    waited_ms as f64 / 1000.0
                )
            })
        }
        Step::Restart {
            namespace,
            deployment,
        } => {
            let what = format!("PATCH deployment/{deployment} in {namespace} (restart)");
            inflight.set(what.clone());
            let r = bounded(&what, rollout_restart(&conn.client, namespace, deployment))
                .await
                .with_context(|| format!("restarting deployment/{deployment} in {namespace}"))?;
            inflight.clear();
            state
                .restarts
                .lock()
                .await
                .insert(deployment.clone(), r.generation);
            Ok(format!(
                "restarted deployment/{deployment} (restartedAt {})",
                r.restarted_at
            ))
        }
        Step::RestartStatefulSet {
            namespace,
            statefulset,
        } => {
            let what = format!("PATCH statefulset/{statefulset} in {namespace} (restart)");
            inflight.set(what.clone());
            let r = bounded(
                &what,
                kube::statefulset::restart(&conn.client, namespace, statefulset),
            )
            .await?;
            inflight.clear();
            state
                .restarts
                .lock()
                .await
                .insert(format!("statefulset/{statefulset}"), r.generation);
            Ok(format!(
                "restarted statefulset/{statefulset} (restartedAt {})",
                r.restarted_at
            ))
        }
        Step::WaitStatefulSet {
            namespace,
            statefulset,
            timeout_s,
        } => {
            let key = format!("statefulset/{statefulset}");
            let generation = state.restarts.lock().await.get(&key).copied();
            let out = kube::statefulset::wait_rollout(
                &conn.client,
                namespace,
                statefulset,
                generation.flatten(),
                Duration::from_secs(*timeout_s),
            )
            .await?;
            rollout_said(&key, out, k.changes)
        }
        Step::Sql { .. }
        | Step::Preflight
        | Step::CopySchema { .. }
        | Step::DumpRestore { .. }
        | Step::CopyJob { .. }
        | Step::CreateSubscription { .. }
        | Step::WaitSync { .. }
        | Step::VerifyLive { .. }
        | Step::AdvanceSequences { .. }
        | Step::ObserveApp { .. }
        | Step::FreezeWrites { .. }
        | Step::UnfreezeWrites { .. }
        | Step::ProveReadOnly { .. }
        | Step::StopSubscription { .. }
        | Step::WaitReplicated { .. }
        | Step::ExactCounts { .. }
        | Step::VerifyFinal { .. }
        | Step::PoolerPause { .. }
        | Step::PoolerRepoint { .. }
        | Step::PoolerReload { .. }
        | Step::PoolerResume { .. }
        | Step::PoolerProve { .. } => Err(anyhow!("{} is not a Kubernetes step", step.title())),
        Step::WaitRollout {
            namespace,
            deployment,
            timeout_s,
        } => {
            let generation = state.restarts.lock().await.get(deployment).copied();
            let out = wait_rollout(
                &conn.client,
                namespace,
                deployment,
                generation.flatten(),
                Duration::from_secs(*timeout_s),
            )
            .await?;
            rollout_said(deployment, out, k.changes)
        }
    }
}

/// A rollout's end in words: complete, or why not (an error).
fn rollout_said(
    what: &str,
    out: RolloutOutcome,
    changes: crate::config::Changes,
) -> Result<String> {
    let secs = |ms: u64| ms as f64 / 1000.0;
    match out {
        RolloutOutcome::Complete { elapsed_ms } => Ok(format!(
            "rollout of {what} complete in {:.1} s",
            secs(elapsed_ms)
        )),
        RolloutOutcome::DeadlineExceeded {
            message,
            elapsed_ms,
        } => Err(anyhow!(
            "rollout of {what} exceeded its progress deadline after {:.1} s: {message}",
            secs(elapsed_ms)
        )),
        RolloutOutcome::TimedOut { last, elapsed_ms } => Err(anyhow!(
            "rollout of {what} still not complete after {:.0} s: {last}{}",
            secs(elapsed_ms),
            if changes == crate::config::Changes::Gitops {
                " (under GitOps the change must also change the pod template, e.g. a \
                 checksum/config annotation, for the pods to restart)"
            } else {
                ""
            }
        )),
    }
}

/// Puts back the value a rollback file kept (checked against the log by
/// the caller), if the key still holds what the switch wrote.
async fn restore_from_file(
    file: &KeptValue,
    namespace: &str,
    expect_current: &str,
    conn: &kube::Connection,
    inflight: &InFlight,
) -> Result<()> {
    let (object, key) = (&file.object, &file.key);
    let obj = ConfigObject::parse(object)
        .ok_or_else(|| anyhow!("config object \"{object}\" is not understood"))?;
    let what = format!("PATCH {obj} in {namespace} (restoring {key})");
    inflight.set(what.clone());
    // Only if the key still holds what the switch wrote, guarded by the
    // resourceVersion read with it: a concurrent change fails.
    bounded(
        &what,
        kube::restore_config_key(
            &conn.client,
            namespace,
            &obj,
            key,
            file.previous(),
            expect_current,
        ),
    )
    .await
    .with_context(|| format!("restoring {object} {key}"))?;
    inflight.clear();
    Ok(())
}

fn record(sw: &ConfigSwitch) -> SwitchRecord {
    SwitchRecord {
        object: sw.object.to_string(),
        key: sw.key.clone(),
        previous_fingerprint: sw.previous_fingerprint.clone(),
        new_fingerprint: sw.new_fingerprint.clone(),
        changed: sw.changed,
    }
}
