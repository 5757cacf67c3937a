//! Kubernetes actions: what each would run, the guards in front of it, the
//! typed confirmation, and the record of what it did. Pure, like the rest of
//! the model: the runtime runs the effect and reports back with events.

use chrono::{DateTime, Utc};

use super::{derive, Effect, Model};
use crate::kube;
use crate::session::{AccessResult, KubeAction, SwitchRecord, SwitchValue};

/// The label of the guard that says no other action runs: the only one a
/// running action fails by itself, so the executor's re-check leaves it out.
const BUSY_GUARD: &str = "No other action running";

/// The access review: asked again by the executor before it changes anything.
const ACCESS_GUARD: &str = "Access review";

#[derive(Debug, Clone, PartialEq, Default)]
pub struct KubeActions {
    pub preflight: Option<Preflight>,
    pub preflight_running: bool,
    /// Every action this session, oldest first.
    pub runs: Vec<ActionRun>,
    /// The latest switch that reached the API server: what a switch back undoes.
    pub switched: Option<(DateTime<Utc>, SwitchRecord)>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Preflight {
    pub at: DateTime<Utc>,
    pub checks: Vec<AccessResult>,
    pub switch_value: Option<SwitchValue>,
    pub error: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ActionRun {
    pub id: u64,
    pub action: KubeAction,
    pub started_at: DateTime<Utc>,
    pub steps: Vec<(DateTime<Utc>, String)>,
    /// When it ended, whether it succeeded, and how it ended.
    pub finished: Option<(DateTime<Utc>, bool, String)>,
}

impl KubeActions {
    pub fn running(&self) -> Option<&ActionRun> {
        self.runs.last().filter(|r| r.finished.is_none())
    }
}

/// One live precondition of an action, shown ✔/✖ with its reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Guard {
    pub label: String,
    pub ok: bool,
    pub detail: String,
}

impl Guard {
    fn new(label: &str, ok: bool, detail: impl Into<String>) -> Self {
        Guard {
            label: label.into(),
            ok,
            detail: detail.into(),
        }
    }
}

/// Everything the confirmation dialog shows about an action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionPlan {
    pub action: KubeAction,
    /// What will be sent, line by line (values as fingerprints).
    pub will_run: Vec<String>,
    pub guards: Vec<Guard>,
    /// What the operator must type to confirm.
    pub confirm_name: String,
    /// Things to know that are not guards.
    pub notes: Vec<String>,
}

impl ActionPlan {
    pub fn guards_pass(&self) -> bool {
        self.guards.iter().all(|g| g.ok)
    }
}

/// Whether this session may run actions against Kubernetes at all.
pub fn kube_actions_bound(model: &Model) -> bool {
    model
        .info
        .as_ref()
        .is_some_and(|i| !i.read_only && i.kubernetes.is_some())
}

fn object_name(object: &str) -> &str {
    object.split_once('/').map_or(object, |(_, n)| n)
}

/// What `action` would do now and whether it may. None when the session has no
/// Kubernetes side.
pub fn plan(model: &Model, action: KubeAction) -> Option<ActionPlan> {
    let info = model.info.as_ref()?;
    let k = info.kubernetes.as_ref()?;
    let ns = &k.namespace;
    let mut guards = Vec::new();
    let mut will_run = Vec::new();
    let mut notes = Vec::new();

    guards.push(
        match (derive::kube_stale(model), model.kube.last.is_some()) {
            (Some((since, e)), _) => Guard::new(
                "Kubernetes watch live",
                false,
                format!("stale since {}: {e}", since.format("%H:%M:%S")),
            ),
            (None, false) => Guard::new("Kubernetes watch live", false, "no workload seen yet"),
            (None, true) => {
                Guard::new("Kubernetes watch live", true, "workloads are being watched")
            }
        },
    );

    let pre = model.kube_actions.preflight.as_ref();
    let wanted_verbs: &[&str] = &["get", "patch"];
    let stale_after = info.stale_after_seconds;
    let review_age = pre
        .zip(model.now)
        .map(|(p, now)| (now - p.at).num_milliseconds() as f64 / 1000.0);
    let access = match pre {
        None => Guard::new(ACCESS_GUARD, false, "not checked yet"),
        Some(p) if review_age.is_some_and(|a| a > stale_after) => Guard::new(
            ACCESS_GUARD,
            false,
            format!(
                "answer from {} is {:.0} s old (limit {stale_after} s){}",
                p.at.format("%H:%M:%S"),
                review_age.unwrap_or_default(),
                if model.kube_actions.preflight_running {
                    "; asking again"
                } else {
                    ""
                }
            ),
        ),
        Some(p) if p.error.is_some() => Guard::new(
            ACCESS_GUARD,
            false,
            format!("could not ask: {}", p.error.as_deref().unwrap_or_default()),
        ),
        Some(p) => match p
            .checks
            .iter()
            .find(|c| !c.allowed && wanted_verbs.contains(&c.verb.as_str()))
        {
            Some(denied) => Guard::new(
                ACCESS_GUARD,
                false,
                format!(
                    "not allowed: {}{}",
                    denied.describe,
                    denied
                        .reason
                        .as_deref()
                        .map(|r| format!(" ({r})"))
                        .unwrap_or_default()
                ),
            ),
            None => Guard::new(
                ACCESS_GUARD,
                !p.checks.is_empty(),
                format!(
                    "{} checks allowed at {}",
                    p.checks.len(),
                    p.at.format("%H:%M:%S")
                ),
            ),
        },
    };
    guards.push(access);

    let busy = model.kube_actions.running();
    guards.push(Guard::new(
        BUSY_GUARD,
        busy.is_none(),
        match busy {
            Some(r) => format!("{} is running", r.action.title()),
            None => "idle".into(),
        },
    ));

    let object = k.config_object.as_deref();
    let key = k.config_key.as_deref();
    let switch_patch = |value_shown: &str| -> Option<String> {
        let obj = kube::ConfigObject::parse(object?)?;
        Some(kube::switch_patch_preview(&obj, key?, value_shown))
    };
    let restart_lines = |will_run: &mut Vec<String>| {
        for d in &k.deployments {
            will_run.push(format!("PATCH deployment/{d} in {ns} (strategic merge):"));
            will_run.push(format!(
                "  {}",
                kube::restart_patch_preview("<time of the restart>")
            ));
        }
        will_run
            .push("then watch each rollout until complete or its progress deadline passes".into());
    };
    let workloads_found = || {
        let missing: Vec<&str> = k
            .deployments
            .iter()
            .filter(|d| !model.workloads.get(*d).is_some_and(|w| w.found))
            .map(String::as_str)
            .collect();
        Guard::new(
            "Workloads found",
            missing.is_empty(),
            if missing.is_empty() {
                k.deployments.join(", ")
            } else {
                format!("not found: {}", missing.join(", "))
            },
        )
    };

    let confirm_name = match action {
        KubeAction::SwitchConfig => {
            let value = pre.and_then(|p| p.switch_value.as_ref());
            let (ok, detail) = match (object, key, &k.switch_to, value) {
                (None, _, _, _) | (_, None, _, _) => (
                    false,
                    "config_object and config_key are not configured".into(),
                ),
                (_, _, None, _) => (
                    false,
                    "no switch value: set kubernetes.switch_to_env or switch_to_file".into(),
                ),
                (_, _, Some(src), None) => (false, format!("{src} not read yet")),
                (_, _, Some(src), Some(v)) => match (&v.new_fingerprint, &v.error) {
                    (Some(fp), _) => (true, format!("{src}: sha256:{fp}")),
                    (None, Some(e)) => (false, e.clone()),
                    (None, None) => (false, format!("{src} not read yet")),
                },
            };
            guards.push(Guard::new("Switch value readable", ok, detail));
            guards.push(caught_up(model));
            if let (Some(obj), Some(key)) = (object, key) {
                let fp = value
                    .and_then(|v| v.new_fingerprint.as_deref())
                    .map_or("<new value>".to_string(), |f| format!("<sha256:{f}>"));
                will_run.push(format!(
                    "PATCH {obj} in {ns} (merge, only if unchanged since read):"
                ));
                if let Some(p) = switch_patch(&fp) {
                    will_run.push(format!("  {p}"));
                }
                if let Some(v) = value {
                    match (&v.current_fingerprint, &v.new_fingerprint) {
                        (Some(c), Some(n)) if c == n => {
                            notes.push(format!("{key} already holds sha256:{n}: nothing to patch"))
                        }
                        (Some(c), _) => notes.push(format!("{key} now holds sha256:{c}")),
                        (None, _) => notes.push(format!("{key} is absent or unreadable now")),
                    }
                }
            }
            notes.push("Pods read the config when they start: restart them (R) to use it.".into());
            object.map(object_name).unwrap_or_default().to_string()
        }
        KubeAction::RolloutRestart => {
            guards.push(workloads_found());
            // Restarted pods connect to what the config says now: the target
            // after a switch, else the source.
            guards.push(if model.kube_actions.switched.is_some() {
                side_live(model, "Target", &model.target)
            } else {
                side_live(model, "Source", &model.source)
            });
            restart_lines(&mut will_run);
            if k.deployments.len() == 1 {
                k.deployments[0].clone()
            } else {
                ns.clone()
            }
        }
        KubeAction::SwitchBack => {
            let switched = model.kube_actions.switched.as_ref();
            let (ok, detail) = match switched {
                Some((at, r)) if r.changed => (
                    true,
                    format!(
                        "switched at {}: {} goes back to {}",
                        at.format("%H:%M:%S"),
                        r.key,
                        r.previous_fingerprint
                            .as_deref()
                            .map_or("absent".into(), |f| format!("sha256:{f}"))
                    ),
                ),
                Some(_) => (
                    false,
                    "the last switch patched nothing: there is nothing to undo".into(),
                ),
                None => (false, "no switch in this session".into()),
            };
            guards.push(Guard::new("Previous value captured", ok, detail));
            guards.push(workloads_found());
            // Going back sends the app to the source: it must be there.
            guards.push(side_live(model, "Source", &model.source));
            if let (Some(obj), Some((_, r))) = (object, switched) {
                let shown = r
                    .previous_fingerprint
                    .as_deref()
                    .map_or("null".to_string(), |f| format!("<sha256:{f}>"));
                will_run.push(format!("PATCH {obj} in {ns} (merge):"));
                if let Some(p) = switch_patch(&shown) {
                    will_run.push(format!("  {p}"));
                }
            }
            restart_lines(&mut will_run);
            object.map(object_name).unwrap_or_default().to_string()
        }
    };
    Some(ActionPlan {
        action,
        will_run,
        guards,
        confirm_name,
        notes,
    })
}

/// `<Side> live`: the side answered within the stale limit. Every guard
/// that reads a side's data fails while that side is stale.
fn side_live<S>(model: &Model, side: &str, state: &super::SideState<S>) -> Guard {
    let label = format!("{side} live");
    let Some(info) = &model.info else {
        return Guard::new(&label, false, "no session");
    };
    match side_stale(model, side, state, info.stale_after_seconds) {
        Some(reason) => Guard::new(&label, false, reason),
        None => Guard::new(&label, true, "answering"),
    }
}

/// Why a side's data cannot be trusted now, or None when it can.
fn side_stale<S>(
    model: &Model,
    side: &str,
    state: &super::SideState<S>,
    stale_after: f64,
) -> Option<String> {
    if state.last_ok.is_none() && state.failing.is_none() {
        return Some(format!("{} not sampled yet", side.to_lowercase()));
    }
    derive::stale_since(state, model.now, stale_after).map(|since| {
        let why = state
            .failing
            .as_ref()
            .map(|(_, e)| format!(": {e}"))
            .unwrap_or_default();
        format!(
            "{} data stale since {}{why}",
            side.to_lowercase(),
            since.format("%H:%M:%S")
        )
    })
}

/// Switching while the target is behind sends the app to data it has not
/// got yet. The lag is read on the source, but a target that does not
/// answer has not got it either.
fn caught_up(model: &Model) -> Guard {
    let Some(info) = &model.info else {
        return Guard::new("Replication caught up", false, "no session");
    };
    let limit = info.stale_after_seconds;
    let stale = side_stale(model, "Source", &model.source, limit)
        .or_else(|| side_stale(model, "Target", &model.target, limit));
    if let Some(reason) = stale {
        return Guard::new("Replication caught up", false, reason);
    }
    match derive::lag_summary(model) {
        Some(s) if s.slot.is_none() => Guard::new(
            "Replication caught up",
            false,
            format!("no slot \"{}\" on the source", info.slot),
        ),
        Some(derive::LagSummary {
            lag_bytes: Some(b), ..
        }) => Guard::new(
            "Replication caught up",
            b <= info.max_lag_bytes,
            format!(
                "lag {} (bound {})",
                crate::ui::fmt::bytes(b),
                crate::ui::fmt::bytes(info.max_lag_bytes)
            ),
        ),
        _ => Guard::new("Replication caught up", false, "lag unknown"),
    }
}

/// The guards of `action` that do not hold now, for the executor's re-check
/// at the moment it runs. Left out: the action's own run (not "another
/// action"), and the access review, which the executor asks again itself.
pub fn recheck(model: &Model, action: KubeAction) -> Vec<Guard> {
    plan(model, action)
        .map(|p| {
            p.guards
                .into_iter()
                .filter(|g| !g.ok && g.label != BUSY_GUARD && g.label != ACCESS_GUARD)
                .collect()
        })
        .unwrap_or_else(|| vec![Guard::new("Kubernetes configured", false, "no session")])
}

/// Opens the confirmation for `action` and refreshes the access review, so
/// the guards shown are the ones that hold now.
pub fn open(model: &mut Model, action: KubeAction) -> Vec<Effect> {
    if !kube_actions_bound(model) {
        return vec![];
    }
    model.dialog = Some(action);
    preflight(model)
}

pub fn preflight(model: &mut Model) -> Vec<Effect> {
    if model.kube_actions.preflight_running {
        return vec![];
    }
    model.kube_actions.preflight_running = true;
    vec![Effect::KubePreflight]
}

/// While a confirmation is open its access review is kept fresh: asked again
/// once half the stale limit has passed, so the guard never shows an old ✔.
pub fn on_tick(model: &mut Model) -> Vec<Effect> {
    if model.dialog.is_none() {
        return vec![];
    }
    let (Some(info), Some(now)) = (&model.info, model.now) else {
        return vec![];
    };
    let half = info.stale_after_seconds / 2.0;
    let old = match &model.kube_actions.preflight {
        Some(p) => (now - p.at).num_milliseconds() as f64 / 1000.0 >= half,
        None => true,
    };
    if old {
        preflight(model)
    } else {
        vec![]
    }
}

/// The operator confirmed `action` having typed `typed`. Runs only when it is
/// the open dialog's action, every guard passes on the data of this moment
/// and the name matches; otherwise nothing happens (the dialog already says
/// which guard fails and what to type).
pub fn on_confirm(model: &mut Model, action: KubeAction, typed: &str) -> Vec<Effect> {
    if model.dialog != Some(action) || !kube_actions_bound(model) {
        return vec![];
    }
    match plan(model, action) {
        Some(p) if p.guards_pass() && typed == p.confirm_name => start(model, action),
        _ => vec![],
    }
}

fn start(model: &mut Model, action: KubeAction) -> Vec<Effect> {
    let Some(now) = model.now else {
        return vec![];
    };
    model.dialog = None;
    model.next_run += 1;
    let id = model.next_run;
    model.kube_actions.runs.push(ActionRun {
        id,
        action,
        started_at: now,
        steps: Vec::new(),
        finished: None,
    });
    vec![Effect::KubeRun { id, action }]
}

pub fn on_step(model: &mut Model, id: u64, at: DateTime<Utc>, message: &str) {
    if let Some(r) = model.kube_actions.runs.iter_mut().find(|r| r.id == id) {
        r.steps.push((at, message.to_string()));
    }
}

pub fn on_finished(
    model: &mut Model,
    id: u64,
    at: DateTime<Utc>,
    ok: bool,
    message: &str,
    switched: Option<&SwitchRecord>,
) {
    let action = model
        .kube_actions
        .runs
        .iter_mut()
        .find(|r| r.id == id)
        .map(|r| {
            r.finished = Some((at, ok, message.to_string()));
            r.action
        });
    if let Some(record) = switched {
        match action {
            // A switch back that reached the server leaves nothing to undo.
            Some(KubeAction::SwitchBack) => model.kube_actions.switched = None,
            // Running the switch twice patches nothing the second time; the
            // first run's record still says what to go back to.
            _ if !record.changed && model.kube_actions.switched.is_some() => {}
            _ => model.kube_actions.switched = Some((at, record.clone())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::update::tests::{at, info, source, target, Feed};
    use super::*;
    use crate::kube::WorkloadSnapshot;
    use crate::session::{EventKind, KubeInfo, SessionInfo};

    fn kube_info(read_only: bool) -> SessionInfo {
        SessionInfo {
            kubernetes: Some(KubeInfo {
                context: "lab".into(),
                namespace: "shop".into(),
                deployments: vec!["app".into()],
                config_object: Some("configmap/app-db".into()),
                config_key: Some("DATABASE_URL".into()),
                switch_to: Some("/run/new-url".into()),
            }),
            read_only,
            ..info()
        }
    }

    fn workload() -> WorkloadSnapshot {
        // Through serde, so fields added later with defaults need no edit here.
        serde_json::from_value(serde_json::json!({
            "namespace": "shop", "deployment": "app", "found": true,
            "generation": 1, "observed_generation": 1,
            "desired": 3, "updated": 3, "ready": 3, "available": 3, "unavailable": 0,
            "state": "Complete", "conditions": [], "replicasets": [], "pods": [],
            "pods_by_db_config": {}
        }))
        .unwrap()
    }

    fn allowed(verb: &str, what: &str, ok: bool) -> AccessResult {
        AccessResult {
            describe: format!("{verb} {what} in shop"),
            verb: verb.into(),
            allowed: ok,
            reason: (!ok).then(|| "RBAC: denied".into()),
        }
    }

    /// A session where every guard of the switch passes.
    fn ready() -> Feed {
        let mut f = Feed::with(kube_info(false));
        f.send(1, EventKind::WorkloadSampled(workload()));
        f.live(1, 10);
        f.send(
            1,
            EventKind::KubePreflightDone {
                checks: vec![
                    allowed("get", "configmaps/app-db", true),
                    allowed("patch", "configmaps/app-db", true),
                    allowed("patch", "deployments.apps/app", true),
                ],
                switch_value: Some(SwitchValue {
                    new_fingerprint: Some("new1".into()),
                    current_fingerprint: Some("old1".into()),
                    error: None,
                }),
                error: None,
            },
        );
        f
    }

    fn type_name(f: &mut Feed, t: i64, name: &str) {
        for c in name.chars() {
            assert_eq!(f.key(t, &c.to_string()), vec![]);
        }
    }

    #[test]
    fn session_start_asks_for_access_unless_read_only() {
        let mut f = Feed::with(kube_info(false));
        assert!(f.m.kube_actions.preflight_running);
        let mut ro = Feed::with(kube_info(true));
        assert!(!ro.m.kube_actions.preflight_running);
        assert_eq!(ro.key(1, "S"), vec![]);
        assert_eq!(ro.m.dialog, None, "read-only binds no action key");
        // No [kubernetes]: the keys do nothing either.
        let mut plain = Feed::new();
        assert_eq!(plain.key(1, "R"), vec![]);
        assert_eq!(plain.m.dialog, None);
        assert_eq!(f.key(1, "S"), vec![], "one review at a time");
    }

    #[test]
    fn switch_runs_only_with_guards_passing_and_the_name_typed() {
        let mut f = ready();
        assert_eq!(f.key(2, "S"), vec![Effect::KubePreflight]);
        let p = plan(&f.m, KubeAction::SwitchConfig).unwrap();
        assert!(p.guards_pass(), "{:?}", p.guards);
        assert_eq!(p.confirm_name, "app-db");
        assert!(
            p.will_run.iter().any(|l| l.contains("<sha256:new1>")),
            "{:?}",
            p.will_run
        );
        assert!(p.notes.iter().any(|n| n.contains("sha256:old1")));
        type_name(&mut f, 2, "app-d");
        assert_eq!(f.key(2, "Enter"), vec![], "wrong name: nothing runs");
        type_name(&mut f, 2, "b");
        assert_eq!(f.key(2, "Backspace"), vec![]);
        type_name(&mut f, 2, "b");
        let effects = f.key(3, "Enter");
        let id = f.m.next_run;
        assert_eq!(
            effects,
            vec![Effect::KubeRun {
                id,
                action: KubeAction::SwitchConfig
            }]
        );
        assert_eq!(f.m.dialog, None);
        assert!(f.m.action_running(), "quitting now asks first");
        let again = plan(&f.m, KubeAction::RolloutRestart).unwrap();
        assert!(!again.guards_pass(), "one action at a time");

        f.send(
            4,
            EventKind::KubeActionFinished {
                id,
                ok: true,
                message: "patched".into(),
                switched: Some(SwitchRecord {
                    object: "configmap/app-db".into(),
                    key: "DATABASE_URL".into(),
                    previous_fingerprint: Some("old1".into()),
                    new_fingerprint: "new1".into(),
                    changed: true,
                }),
            },
        );
        assert!(!f.m.action_running());
        let back = plan(&f.m, KubeAction::SwitchBack).unwrap();
        assert!(back.guards_pass(), "{:?}", back.guards);
        assert!(back.will_run.iter().any(|l| l.contains("<sha256:old1>")));
    }

    #[test]
    fn failing_guards_name_their_reason_and_block_enter() {
        let mut f = ready();
        // Lag over the bound (100 B in the test session).
        f.send(3, EventKind::SourceSampled(source(Some(5000))));
        f.key(3, "S");
        type_name(&mut f, 3, "app-db");
        assert_eq!(f.key(3, "Enter"), vec![]);
        let p = plan(&f.m, KubeAction::SwitchConfig).unwrap();
        let lag = p.guards.iter().find(|g| !g.ok).unwrap();
        assert_eq!(lag.label, "Replication caught up");
        assert_eq!(lag.detail, "lag 4.9 KiB (bound 100 B)");

        let mut d = ready();
        d.send(
            2,
            EventKind::KubePreflightDone {
                checks: vec![allowed("patch", "configmaps/app-db", false)],
                switch_value: None,
                error: None,
            },
        );
        let p = plan(&d.m, KubeAction::SwitchConfig).unwrap();
        let access = p
            .guards
            .iter()
            .find(|g| g.label == "Access review")
            .unwrap();
        assert!(!access.ok);
        assert_eq!(
            access.detail,
            "not allowed: patch configmaps/app-db in shop (RBAC: denied)"
        );
        let back = plan(&d.m, KubeAction::SwitchBack).unwrap();
        let prev = back
            .guards
            .iter()
            .find(|g| g.label == "Previous value captured");
        assert_eq!(prev.unwrap().detail, "no switch in this session");
    }

    fn failing(f: &Feed, action: KubeAction) -> Vec<(String, String)> {
        plan(&f.m, action)
            .unwrap()
            .guards
            .into_iter()
            .filter(|g| !g.ok)
            .map(|g| (g.label, g.detail))
            .collect()
    }

    fn values() -> SwitchValue {
        SwitchValue {
            new_fingerprint: Some("new1".into()),
            current_fingerprint: Some("old1".into()),
            error: None,
        }
    }

    /// An access review answered at `t` with one check.
    fn reviewed(f: &mut Feed, t: i64, check: AccessResult, value: Option<SwitchValue>) {
        f.send(
            t,
            EventKind::KubePreflightDone {
                checks: vec![check],
                switch_value: value,
                error: None,
            },
        );
    }

    fn switched(f: &mut Feed, t: i64) {
        f.m.kube_actions.switched = Some((
            at(t),
            SwitchRecord {
                object: "configmap/app-db".into(),
                key: "DATABASE_URL".into(),
                previous_fingerprint: Some("old1".into()),
                new_fingerprint: "new1".into(),
                changed: true,
            },
        ));
    }

    #[test]
    fn a_stale_target_fails_the_switch_even_with_the_source_caught_up() {
        let mut f = ready();
        // The source keeps answering (lag 10 B, under the bound); the target
        // went quiet at t=1 and the stale limit is 3 s.
        f.send(5, EventKind::SourceSampled(source(Some(10))));
        f.send(5, EventKind::KubeAlive);
        reviewed(
            &mut f,
            5,
            allowed("patch", "configmaps/app-db", true),
            Some(values()),
        );
        let stale_since = at(1).format("%H:%M:%S").to_string();
        assert_eq!(
            failing(&f, KubeAction::SwitchConfig),
            vec![(
                "Replication caught up".to_string(),
                format!("target data stale since {stale_since}")
            )]
        );
        // A failure the collector reported is named too.
        f.send(
            6,
            EventKind::CollectorFailed {
                side: crate::session::Side::Target,
                error: "127.0.0.1:5433: no answer within 12 s".into(),
            },
        );
        assert_eq!(
            failing(&f, KubeAction::SwitchConfig)[0].1,
            format!("target data stale since {stale_since}: 127.0.0.1:5433: no answer within 12 s")
        );
    }

    #[test]
    fn a_quiet_kubernetes_api_and_an_old_access_review_do_not_pass() {
        let mut f = ready();
        // Databases fresh at t=5; the API server last answered at t=1.
        f.send(5, EventKind::SourceSampled(source(Some(10))));
        f.send(5, EventKind::TargetSampled(target()));
        let old = at(1).format("%H:%M:%S").to_string();
        assert_eq!(
            failing(&f, KubeAction::RolloutRestart),
            vec![
                (
                    "Kubernetes watch live".to_string(),
                    format!("stale since {old}: no answer from the Kubernetes API for over 3 s")
                ),
                (
                    "Access review".to_string(),
                    format!("answer from {old} is 4 s old (limit 3 s)")
                ),
            ]
        );
        // The probe answering again makes the watch live; the review stays old.
        f.send(6, EventKind::KubeAlive);
        let labels: Vec<String> = failing(&f, KubeAction::RolloutRestart)
            .into_iter()
            .map(|(l, _)| l)
            .collect();
        assert_eq!(labels, vec!["Access review".to_string()]);
    }

    #[test]
    fn an_open_dialog_keeps_its_access_review_fresh() {
        let mut f = ready();
        assert_eq!(f.key(1, "R"), vec![Effect::KubePreflight]);
        reviewed(
            &mut f,
            1,
            allowed("patch", "deployments.apps/app", true),
            None,
        );
        assert_eq!(f.send(2, EventKind::Tick), vec![], "1 s old: fresh enough");
        assert_eq!(f.send(3, EventKind::Tick), vec![Effect::KubePreflight]);
        assert_eq!(f.send(4, EventKind::Tick), vec![], "one review at a time");
        f.key(4, "Esc");
        f.send(
            4,
            EventKind::KubePreflightDone {
                checks: vec![],
                switch_value: None,
                error: None,
            },
        );
        assert_eq!(f.send(9, EventKind::Tick), vec![], "no dialog, no review");
    }

    #[test]
    fn restart_and_switch_back_need_the_database_the_pods_will_use() {
        let mut f = ready();
        f.send(5, EventKind::TargetSampled(target()));
        f.send(5, EventKind::KubeAlive);
        reviewed(
            &mut f,
            5,
            allowed("patch", "deployments.apps/app", true),
            None,
        );
        // Not switched: restarted pods go to the source, stale since t=1.
        let src = at(1).format("%H:%M:%S").to_string();
        assert_eq!(
            failing(&f, KubeAction::RolloutRestart),
            vec![(
                "Source live".to_string(),
                format!("source data stale since {src}")
            )]
        );
        // Switched: they go to the target, which answers.
        switched(&mut f, 4);
        assert_eq!(failing(&f, KubeAction::RolloutRestart), vec![]);
        // Going back needs the source.
        assert_eq!(
            failing(&f, KubeAction::SwitchBack),
            vec![(
                "Source live".to_string(),
                format!("source data stale since {src}")
            )]
        );
    }

    #[test]
    fn the_executor_recheck_ignores_its_own_run_and_x_cancels_it() {
        let mut f = ready();
        f.key(2, "R");
        type_name(&mut f, 2, "app");
        let effects = f.key(2, "Enter");
        let id = f.m.next_run;
        assert_eq!(
            effects,
            vec![Effect::KubeRun {
                id,
                action: KubeAction::RolloutRestart
            }]
        );
        assert_eq!(recheck(&f.m, KubeAction::RolloutRestart), vec![]);
        // Data goes stale while it runs: the re-check says so.
        f.send(6, EventKind::Tick);
        let labels: Vec<String> = recheck(&f.m, KubeAction::RolloutRestart)
            .into_iter()
            .map(|g| g.label)
            .collect();
        assert!(labels.contains(&"Source live".to_string()), "{labels:?}");
        assert_eq!(f.key(6, "x"), vec![Effect::CancelKubeAction { id }]);
    }

    #[test]
    fn a_no_op_rerun_keeps_what_to_go_back_to() {
        let mut f = ready();
        let rec = |prev: &str, changed| SwitchRecord {
            object: "configmap/app-db".into(),
            key: "DATABASE_URL".into(),
            previous_fingerprint: Some(prev.into()),
            new_fingerprint: "new1".into(),
            changed,
        };
        f.m.kube_actions.runs.push(ActionRun {
            id: 7,
            action: KubeAction::SwitchConfig,
            started_at: f.m.now.unwrap(),
            steps: vec![],
            finished: None,
        });
        let now = f.m.now.unwrap();
        on_finished(&mut f.m, 7, now, true, "", Some(&rec("old1", true)));
        on_finished(&mut f.m, 7, now, true, "", Some(&rec("new1", false)));
        let (_, kept) = f.m.kube_actions.switched.as_ref().unwrap();
        assert_eq!(kept.previous_fingerprint.as_deref(), Some("old1"));
    }
}
