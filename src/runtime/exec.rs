//! The executor: runs a checkpoint's plan — exactly its steps, in order —
//! and reports each one as an event when it starts (with the step itself)
//! and when it ends, before the next one starts, so the log says exactly
//! what ran and how far a run got even if the process dies halfway. Before
//! the first change it asks for the access a Kubernetes plan needs and
//! re-checks the guards on data newer than its own start.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Result};
use tokio::sync::mpsc::Sender;
use tokio::sync::watch;

use crate::config::Config;
use crate::kube::{self, connect};
use crate::runbook::{Guard, Plan, Step};
use crate::session::{EventKind, SwitchRecord};

use super::kube_steps::{needed_access, run_step, ActionState};
use super::kube_task::target;
use super::pooler_steps::PoolerRun;

#[derive(Debug, Clone, PartialEq, Default)]
pub struct GuardCheck {
    pub at: Option<chrono::DateTime<chrono::Utc>>,
    /// The guards that do not hold (empty: all do), overridden ones left out.
    pub failing: Vec<Guard>,
}

/// How long the executor waits for the model's verdict on data newer than
/// its own start (events, ticks included, arrive at least every second).
const RECHECK_WAIT: Duration = Duration::from_secs(5);

/// What the executor needs besides the plan: the operator's cancel and the
/// model's live verdict on the checkpoint's guards.
pub struct Control {
    pub cancel: watch::Receiver<bool>,
    pub guards: watch::Receiver<GuardCheck>,
    /// The live verification, whose report the final check builds on.
    pub live: watch::Receiver<super::verify_task::LiveVerify>,
}

/// The request in flight, for the record when a cancel or deadline cuts it.
#[derive(Default)]
pub(super) struct InFlight(std::sync::Mutex<Option<String>>);

impl InFlight {
    pub(super) fn set(&self, what: impl Into<String>) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(what.into());
    }
    pub(super) fn clear(&self) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }
    pub(super) fn get(&self) -> Option<String> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// Runs `plan` — exactly its steps, in order — and reports each one:
/// `StepStarted` (with the step), then `StepDone` or `StepFailed`; the first
/// failure ends the run. `RunFinished` closes it.
pub async fn run(
    id: u64,
    plan: Plan,
    config: Arc<Config>,
    state: ActionState,
    tx: Sender<EventKind>,
    mut control: Control,
) {
    let mut switched = None;
    let inflight = InFlight::default();
    let mut cancel = control.cancel.clone();
    let mut pooler = PoolerRun::default();
    let result = tokio::select! {
        r = act(id, &plan, &config, &state, &tx, &mut switched, &mut control, &inflight, &mut pooler) => r,
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
    // A failure or a cancel while the pooler holds the application's
    // queries: it goes on against the side it was on, and the log says so.
    let message = if !ok && pooler.holds_the_app() {
        let (undone, put_back) = super::pooler_steps::undo(&mut pooler).await;
        // The entry is where it was: no switch to record.
        if put_back {
            switched = None;
        }
        if !pooler.holds_the_app() {
            let _ = tx
                .send(EventKind::WritesUnfrozen {
                    id,
                    side: pooler.paused_on,
                })
                .await;
        }
        format!("{message}; the pooler: {undone}")
    } else {
        message
    };
    let _ = tx
        .send(EventKind::RunFinished {
            id,
            ok,
            message,
            switched,
        })
        .await;
}

/// Right before the first change: the guards, judged by the model on data
/// newer than this moment, must all still hold.
async fn recheck_guards(
    guards: &mut watch::Receiver<GuardCheck>,
    tx: &Sender<EventKind>,
) -> Result<()> {
    let since = chrono::Utc::now();
    // A tick now has the model judge at once, on the data it has (each
    // guard refuses data past the stale limit), instead of at the next
    // second's: the window does not wait a second per checkpoint.
    send(tx, EventKind::Tick).await?;
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
    let why: Vec<String> = verdict.failing.iter().map(Guard::said).collect();
    Err(anyhow!(
        "guards no longer hold at the moment of running: {}",
        why.join("; ")
    ))
}

/// The access a plan's steps need: get and patch on what they touch.
#[allow(clippy::too_many_arguments)]
async fn act(
    id: u64,
    plan: &Plan,
    config: &Config,
    state: &ActionState,
    tx: &Sender<EventKind>,
    switched: &mut Option<SwitchRecord>,
    control: &mut Control,
    inflight: &InFlight,
    pooler: &mut PoolerRun,
) -> Result<String> {
    let acts_on_kubernetes = plan.steps.iter().any(Step::is_kubernetes);
    // Everything before the first change: a failure here leaves everything
    // as it was, and the message says so first.
    let before = async {
        let kube = if acts_on_kubernetes {
            let k = config
                .kubernetes
                .as_ref()
                .ok_or_else(|| anyhow!("no [kubernetes] section in {}", config.path.display()))?;
            let conn = connect(&target(k)).await?;
            // The review in the dialog may be old: ask again, and refuse
            // before touching anything if a permission a step needs is gone.
            let checks =
                kube::preflight(&conn.client, needed_access(&conn.namespace, plan)).await?;
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
            Some((k, conn))
        } else {
            None
        };
        recheck_guards(&mut control.guards, tx).await?;
        anyhow::Ok(kube)
    };
    let kube = before
        .await
        .map_err(|e| anyhow!("nothing was changed: {e:#}"))?;
    let mut said = Vec::new();
    let mut pooler_deadline: Option<tokio::time::Instant> = None;
    for (index, step) in plan.steps.iter().enumerate() {
        send(
            tx,
            EventKind::StepStarted {
                id,
                index,
                step: step.clone(),
            },
        )
        .await?;
        let started = std::time::Instant::now();
        // While the pooler holds the application, every step runs within
        // the freeze budget counted from PAUSE: past it, the step fails
        // and the pooler resumes on the side it was on.
        let budget = pooler_deadline.filter(|_| pooler.holds_the_app());
        let step_run = async {
            match (&kube, step.is_kubernetes()) {
                (Some((_, conn)), true) if matches!(step, Step::CopyJob { .. }) => {
                    let Step::CopyJob { job, .. } = step else {
                        unreachable!()
                    };
                    let out =
                        super::copy_job::run(id, job, config, conn, &state.session, tx, inflight)
                            .await;
                    inflight.clear();
                    out
                }
                (Some((k, conn)), true) => run_step(step, k, conn, state, switched, inflight).await,
                _ if step.is_pooler() => {
                    inflight.set(step.title());
                    let out = super::pooler_steps::run(step, config, pooler).await;
                    inflight.clear();
                    out
                }
                (None, true) => Err(anyhow!("no Kubernetes connection for {}", step.title())),
                (_, false) => pg_step(id, step, config, tx, &control.live, inflight).await,
            }
        };
        let outcome = match budget {
            Some(deadline) => match tokio::time::timeout_at(deadline, step_run).await {
                Ok(out) => out,
                Err(_) => Err(anyhow!(
                    "the freeze budget ({} s from PAUSE) ran out",
                    config.freeze.budget_secs
                )),
            },
            None => step_run.await,
        };
        if matches!(step, Step::PoolerPause { .. }) && outcome.is_ok() {
            pooler_deadline = Some(
                tokio::time::Instant::from_std(started)
                    + Duration::from_secs(config.freeze.budget_secs),
            );
        }
        let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
        match outcome {
            Ok(message) => {
                read_only_freeze_moved(id, step, config, tx).await?;
                pooler_moved(id, step, config, tx, switched).await?;
                send(
                    tx,
                    EventKind::StepDone {
                        id,
                        index,
                        message: message.clone(),
                        elapsed_ms,
                    },
                )
                .await?;
                said.push(message);
            }
            Err(e) => {
                let error = format!("{e:#}");
                send(
                    tx,
                    EventKind::StepFailed {
                        id,
                        index,
                        error: error.clone(),
                        elapsed_ms,
                    },
                )
                .await?;
                let done = if index == 0 {
                    "nothing was changed".to_string()
                } else {
                    format!("steps 1–{index} of {} done", plan.steps.len())
                };
                return Err(anyhow!(
                    "step {} ({}): {error}; {done}",
                    index + 1,
                    step.title()
                ));
            }
        }
    }
    // Each step's own words are in the log; the run ends on the last one,
    // which is the outcome (a rollout complete, a key switched). A plan with
    // no steps was already done: its note says why.
    Ok(said.pop().unwrap_or_else(|| {
        plan.notes
            .first()
            .cloned()
            .unwrap_or_else(|| "nothing to do".into())
    }))
}

/// A freeze by read-only role starts when the clients' config holds the
/// read-only value (nothing is taken on the server: no grants), and ends
/// when the rollback has put their config back.
async fn read_only_freeze_moved(
    id: u64,
    step: &Step,
    config: &Config,
    tx: &Sender<EventKind>,
) -> Result<()> {
    if step.starts_read_only_freeze() {
        send(
            tx,
            EventKind::FreezeGrants {
                id,
                side: crate::session::Side::Source,
                roles: config.freeze.app_roles.clone(),
                grants: vec![],
                read_only_role: config.freeze.read_only_role.clone(),
            },
        )
        .await?;
    }
    if step.ends_read_only_freeze() {
        send(
            tx,
            EventKind::WritesUnfrozen {
                id,
                side: crate::session::Side::Source,
            },
        )
        .await?;
    }
    Ok(())
}

/// Through the pooler, the window opens with `PAUSE` (nothing is taken on
/// the server: no grants) and closes with `RESUME`; the repoint to the
/// target is the switch.
async fn pooler_moved(
    id: u64,
    step: &Step,
    config: &Config,
    tx: &Sender<EventKind>,
    switched: &mut Option<SwitchRecord>,
) -> Result<()> {
    match step {
        Step::PoolerPause { on, .. } => {
            send(
                tx,
                EventKind::FreezeGrants {
                    id,
                    side: *on,
                    roles: config.freeze.app_roles.clone(),
                    grants: vec![],
                    read_only_role: None,
                },
            )
            .await
        }
        Step::PoolerResume { paused_on, .. } => {
            send(
                tx,
                EventKind::WritesUnfrozen {
                    id,
                    side: *paused_on,
                },
            )
            .await
        }
        // To the target: the switch; back to the source: the rollback's
        // (whose run's end clears the switch).
        Step::PoolerRepoint {
            file,
            database,
            expect,
            after,
            ..
        } => {
            *switched = Some(SwitchRecord {
                object: format!("pooler {file}"),
                key: database.clone(),
                previous_fingerprint: Some(expect.clone()),
                new_fingerprint: kube::fingerprint(after),
                changed: true,
            });
            Ok(())
        }
        _ => Ok(()),
    }
}

/// A PostgreSQL step, the request in flight named for a cancel's record.
async fn pg_step(
    id: u64,
    step: &Step,
    config: &Config,
    tx: &Sender<EventKind>,
    live: &watch::Receiver<super::verify_task::LiveVerify>,
    inflight: &InFlight,
) -> Result<String> {
    inflight.set(step.title());
    let outcome = super::pg_steps::run(id, step, config, tx, live).await;
    inflight.clear();
    outcome
}

/// Sends an event; the run stops if nobody is listening any more.
pub(super) async fn send(tx: &Sender<EventKind>, ev: EventKind) -> Result<()> {
    tx.send(ev).await.map_err(|_| anyhow!("console stopped"))
}
