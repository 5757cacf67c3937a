//! Runs the model's Kubernetes effects: the access review, the config switch,
//! the rollout restart and the switch back. Every step that changed something
//! is reported as an event before the next one starts, so the log says how far
//! an action got even if the process dies halfway.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use tokio::sync::mpsc::Sender;
use tokio::sync::{watch, Mutex};

use crate::config::{Config, KubeCfg};
use crate::kube::{
    self, bounded, connect, fingerprint, rollout_restart, switch_config_key, wait_rollout,
    AccessCheck, ConfigObject, ConfigSwitch, RolloutOutcome,
};
use crate::model::Guard;
use crate::session::{AccessResult, EventKind, KubeAction, SwitchRecord, SwitchValue};

use super::kube_task::target;

/// The rollout wait gives up after this even if no progress deadline fires
/// (a Deployment without one would otherwise be watched forever).
const ROLLOUT_TIMEOUT: Duration = Duration::from_secs(15 * 60);

const PREFLIGHT_DEADLINE: Duration = Duration::from_secs(20);

/// What survives between actions: the value a switch replaced. Held only in
/// memory; the log and screen see its fingerprint.
#[derive(Default, Clone)]
pub struct ActionState {
    switched: Arc<Mutex<Option<ConfigSwitch>>>,
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
        let checks = kube::required_access(&conn.namespace, &k.deployments, object.as_ref());
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

/// Sends a step; the action stops if nobody is listening any more.
async fn step(tx: &Sender<EventKind>, id: u64, message: String) -> Result<()> {
    tx.send(EventKind::KubeActionStep { id, message })
        .await
        .map_err(|_| anyhow!("console stopped"))
}

/// The model's verdict on a running action's guards, as of an event's time.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct GuardCheck {
    pub at: Option<chrono::DateTime<chrono::Utc>>,
    /// The guards that do not hold (empty: all do).
    pub failing: Vec<Guard>,
}

/// How long the executor waits for the model's verdict on data newer than
/// its own start (events, ticks included, arrive at least every second).
const RECHECK_WAIT: Duration = Duration::from_secs(5);

/// What the executor needs besides the action: the operator's cancel and
/// the model's live verdict on the action's guards.
pub struct Control {
    pub cancel: watch::Receiver<bool>,
    pub guards: watch::Receiver<GuardCheck>,
}

/// The request in flight, for the record when a cancel or deadline cuts it.
#[derive(Default)]
struct InFlight(std::sync::Mutex<Option<String>>);

impl InFlight {
    fn set(&self, what: impl Into<String>) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(what.into());
    }
    fn clear(&self) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }
    fn get(&self) -> Option<String> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

pub async fn run(
    id: u64,
    action: KubeAction,
    config: Arc<Config>,
    state: ActionState,
    tx: Sender<EventKind>,
    mut control: Control,
) {
    let mut switched = None;
    let inflight = InFlight::default();
    let mut cancel = control.cancel.clone();
    let result = tokio::select! {
        r = act(id, action, &config, &state, &tx, &mut switched, &mut control.guards, &inflight) => r,
        _ = cancel.wait_for(|c| *c) => Err(match inflight.get() {
            Some(what) => anyhow!(
                "cancelled by the operator while {what} was in flight: whether it reached \
                 the API server is unknown; the access review re-reads the config"
            ),
            None => anyhow!("cancelled by the operator between steps: nothing was in flight"),
        }),
    };
    let (ok, message) = match result {
        Ok(m) => (true, m),
        Err(e) => (false, format!("{e:#}")),
    };
    let _ = tx
        .send(EventKind::KubeActionFinished {
            id,
            ok,
            message,
            switched,
        })
        .await;
}

/// Right before the first change: the guards, judged by the model on data
/// newer than this moment, must all still hold.
async fn recheck_guards(guards: &mut watch::Receiver<GuardCheck>) -> Result<()> {
    let since = chrono::Utc::now();
    let fresh = tokio::time::timeout(
        RECHECK_WAIT,
        guards.wait_for(|g| g.at.is_some_and(|at| at >= since)),
    )
    .await;
    let verdict = match fresh {
        Ok(Ok(v)) => v.clone(),
        Ok(Err(_)) => return Err(anyhow!("console stopped")),
        Err(_) => {
            return Err(anyhow!(
                "no fresh data to re-check the guards against within {} s",
                RECHECK_WAIT.as_secs()
            ))
        }
    };
    if verdict.failing.is_empty() {
        return Ok(());
    }
    let why: Vec<String> = verdict
        .failing
        .iter()
        .map(|g| format!("{}: {}", g.label, g.detail))
        .collect();
    Err(anyhow!(
        "guards no longer hold at the moment of running: {}",
        why.join("; ")
    ))
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

fn fp(f: Option<&str>) -> String {
    f.map_or("absent".into(), |f| format!("sha256:{f}"))
}

#[allow(clippy::too_many_arguments)]
async fn act(
    id: u64,
    action: KubeAction,
    config: &Config,
    state: &ActionState,
    tx: &Sender<EventKind>,
    switched: &mut Option<SwitchRecord>,
    guards: &mut watch::Receiver<GuardCheck>,
    inflight: &InFlight,
) -> Result<String> {
    let k = config
        .kubernetes
        .as_ref()
        .ok_or_else(|| anyhow!("no [kubernetes] section in {}", config.path.display()))?;
    // Everything before the first change: a failure here leaves the cluster
    // as it was, and the message says so first.
    let before = async {
        let conn = connect(&target(k)).await?;
        let ns = conn.namespace.clone();
        // The review in the dialog may be minutes old: ask again, and refuse
        // before touching anything if a permission this action needs is gone.
        let object = k.config_object.as_deref().and_then(ConfigObject::parse);
        let needed: Vec<AccessCheck> = kube::required_access(&ns, &k.deployments, object.as_ref())
            .into_iter()
            .filter(|c| match action {
                KubeAction::SwitchConfig => {
                    c.verb == "get" || (c.verb == "patch" && c.group.is_empty())
                }
                _ => matches!(c.verb.as_str(), "get" | "patch"),
            })
            .collect();
        let checks = kube::preflight(&conn.client, needed).await?;
        if let Some(denied) = checks.iter().find(|c| !c.allowed) {
            return Err(anyhow!(
                "not allowed to {}{}",
                denied.describe(),
                denied
                    .reason
                    .as_deref()
                    .map(|r| format!(" ({r})"))
                    .unwrap_or_default()
            ));
        }
        recheck_guards(guards).await?;
        anyhow::Ok((conn, ns))
    };
    let (conn, ns) = before
        .await
        .map_err(|e| anyhow!("nothing was changed: {e:#}"))?;
    match action {
        KubeAction::SwitchConfig => {
            let (obj, key) = config_object(k)?;
            let src = k.switch_to.as_ref().ok_or_else(|| {
                anyhow!("no switch value: set kubernetes.switch_to_env or switch_to_file")
            })?;
            let value = src.read().map_err(|e| anyhow!(e))?;
            let what = format!("PATCH {obj} in {ns}");
            inflight.set(what.clone());
            let sw = bounded(
                &what,
                switch_config_key(&conn.client, &ns, &obj, &key, &value),
            )
            .await?;
            inflight.clear();
            *switched = Some(record(&sw));
            let what = if sw.changed {
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
            step(tx, id, what.clone()).await?;
            let mut kept = state.switched.lock().await;
            // A no-op second run must not replace the value to go back to.
            if sw.changed || kept.is_none() {
                *kept = Some(sw);
            }
            Ok(what)
        }
        KubeAction::RolloutRestart => restart_all(id, k, &conn.client, &ns, tx, inflight).await,
        KubeAction::SwitchBack => {
            let mut kept = state.switched.lock().await;
            let sw = kept
                .as_ref()
                .filter(|s| s.changed)
                .ok_or_else(|| anyhow!("no switch in this session to go back from"))?;
            let what = format!("PATCH {} in {ns} (restoring {})", sw.object, sw.key);
            inflight.set(what.clone());
            bounded(&what, sw.rollback(&conn.client, &ns))
                .await
                .with_context(|| format!("restoring {} {}", sw.object, sw.key))?;
            inflight.clear();
            *switched = Some(SwitchRecord {
                object: sw.object.to_string(),
                key: sw.key.clone(),
                previous_fingerprint: Some(sw.new_fingerprint.clone()),
                new_fingerprint: sw
                    .previous_fingerprint
                    .clone()
                    .unwrap_or_else(|| "absent".into()),
                changed: true,
            });
            step(
                tx,
                id,
                format!(
                    "restored {} {}: {} → {}",
                    sw.object,
                    sw.key,
                    fp(Some(&sw.new_fingerprint)),
                    fp(sw.previous_fingerprint.as_deref())
                ),
            )
            .await?;
            *kept = None;
            drop(kept);
            restart_all(id, k, &conn.client, &ns, tx, inflight).await
        }
    }
}

async fn restart_all(
    id: u64,
    k: &KubeCfg,
    client: &::kube::Client,
    ns: &str,
    tx: &Sender<EventKind>,
    inflight: &InFlight,
) -> Result<String> {
    let mut restarts = Vec::new();
    for d in &k.deployments {
        let what = format!("PATCH deployment/{d} in {ns} (restart)");
        inflight.set(what.clone());
        let r = bounded(&what, rollout_restart(client, ns, d))
            .await
            .with_context(|| format!("restarting deployment/{d} in {ns}"))?;
        inflight.clear();
        step(
            tx,
            id,
            format!("restarted deployment/{d} (restartedAt {})", r.restarted_at),
        )
        .await?;
        restarts.push(r);
    }
    let mut done = Vec::new();
    for r in restarts {
        let d = &r.deployment;
        let out = wait_rollout(client, ns, d, r.generation, ROLLOUT_TIMEOUT).await?;
        let secs = |ms: u64| ms as f64 / 1000.0;
        match out {
            RolloutOutcome::Complete { elapsed_ms } => {
                let m = format!("rollout of {d} complete in {:.1} s", secs(elapsed_ms));
                step(tx, id, m.clone()).await?;
                done.push(m);
            }
            RolloutOutcome::DeadlineExceeded {
                message,
                elapsed_ms,
            } => {
                return Err(anyhow!(
                    "rollout of {d} exceeded its progress deadline after {:.1} s: {message}",
                    secs(elapsed_ms)
                ))
            }
            RolloutOutcome::TimedOut { last, elapsed_ms } => {
                return Err(anyhow!(
                    "rollout of {d} still not complete after {:.0} s: {last}",
                    secs(elapsed_ms)
                ))
            }
        }
    }
    Ok(done.join("; "))
}
