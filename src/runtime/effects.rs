//! The one place effects run: what the fold asks for (counts, verifications,
//! a checkpoint's plan, a cancel, an event to record) becomes a task here,
//! and the tasks that feed the live console (collectors, watchers, the
//! clock) start here. Only the live console has one; a replay or a
//! follower drops every effect.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};

use super::{exec, kube_steps, kube_task, verify_task, witness_task};
use crate::config::Config;
use crate::model::{self, Effect, Model};
use crate::pg;
use crate::session::sample::Side;
use crate::session::EventKind;

pub struct Effects {
    config: Arc<Config>,
    tx: mpsc::Sender<EventKind>,
    tasks: tokio::task::JoinSet<()>,
    kube_state: kube_steps::ActionState,
    /// Cancel switches of the background runs (counts and verifications share run ids).
    cancels: HashMap<u64, watch::Sender<bool>>,
    /// Verification yields to replication: the model decides, the engine obeys.
    pause_tx: watch::Sender<bool>,
    pause_rx: watch::Receiver<bool>,
    /// The running action's guards as the model judges them after each
    /// event: the executor re-checks them on fresh data right before its
    /// first change.
    guard_tx: watch::Sender<exec::GuardCheck>,
    guard_rx: watch::Receiver<exec::GuardCheck>,
    /// The live verification's latest report, for the final check in the window.
    live_tx: watch::Sender<verify_task::LiveVerify>,
    /// The session log, which the migration report is made from.
    log: std::path::PathBuf,
}

impl Effects {
    pub fn new(
        config: Arc<Config>,
        tx: mpsc::Sender<EventKind>,
        kube_state: kube_steps::ActionState,
        log: std::path::PathBuf,
    ) -> Self {
        let (pause_tx, pause_rx) = watch::channel(false);
        let (guard_tx, guard_rx) = watch::channel(exec::GuardCheck::default());
        let (live_tx, _) = watch::channel(verify_task::LiveVerify::default());
        Self {
            config,
            tx,
            tasks: tokio::task::JoinSet::new(),
            kube_state,
            cancels: HashMap::new(),
            pause_tx,
            pause_rx,
            guard_tx,
            guard_rx,
            live_tx,
            log,
        }
    }

    /// The collectors, the Kubernetes watchers, the lab's witness and the
    /// one-second clock.
    pub fn start_sources(&mut self) {
        let (config, tx) = (&self.config, &self.tx);
        for side in [Side::Source, Side::Target] {
            self.tasks
                .spawn(pg::collector::run(side, config.clone(), tx.clone()));
        }
        self.tasks.spawn(kube_task::run(config.clone(), tx.clone()));
        self.tasks
            .spawn(super::pooler_task::run(config.clone(), tx.clone()));
        self.tasks
            .spawn(super::discover_task::run(config.clone(), tx.clone()));
        // The lab's app pods write to its seed database: in a session of
        // several, only that one's panes show what they measured.
        let lab = config.lab.as_ref().filter(|_| {
            config.database.is_none() || config.source.params.dbname == crate::lab::SEED_DB
        });
        if let Some(lab) = lab {
            self.tasks
                .spawn(witness_task::run(lab.dir.clone(), tx.clone()));
        }
        let tx = tx.clone();
        self.tasks.spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                if tx.send(EventKind::Tick).await.is_err() {
                    return;
                }
            }
        });
    }

    /// What the running tasks read from the model after each fold.
    pub fn observe(&mut self, model: &Model) {
        if let Some(run) = model.actions.running() {
            let overridden = run
                .overridden
                .as_ref()
                .map(|(labels, _)| labels.as_slice())
                .unwrap_or_default();
            let check = exec::GuardCheck {
                at: model.now,
                failing: model::recheck(model, run.checkpoint, overridden),
            };
            self.guard_tx.send_replace(check);
        }
        let throttled = model::verify_throttle(model).is_some();
        self.pause_tx
            .send_if_modified(|p| std::mem::replace(p, throttled) != throttled);
    }

    /// Runs the effects a fold asked for; whether one was to quit.
    pub fn run(&mut self, effects: Vec<Effect>) -> bool {
        let mut quit = false;
        for effect in effects {
            let (config, tx) = (self.config.clone(), self.tx.clone());
            match effect {
                Effect::StartExactCount { run, tables } => {
                    let cancel = self.cancel_switch(run);
                    self.tasks
                        .spawn(pg::count::run(run, tables, config, tx, cancel));
                }
                Effect::StartVerify { run, tables } => {
                    let cancel = self.cancel_switch(run);
                    let pause = self.pause_rx.clone();
                    self.tasks
                        .spawn(verify_task::run(run, tables, config, tx, cancel, pause));
                }
                Effect::StartContinuousVerify { run, tables } => {
                    let cancel = self.cancel_switch(run);
                    let pause = self.pause_rx.clone();
                    self.tasks.spawn(verify_task::run_continuous(
                        run,
                        tables,
                        config,
                        tx,
                        cancel,
                        pause,
                        self.live_tx.clone(),
                    ));
                }
                Effect::CancelExactCount { run }
                | Effect::CancelVerify { run }
                | Effect::CancelRun { id: run } => {
                    if let Some(c) = self.cancels.remove(&run) {
                        let _ = c.send(true);
                    }
                }
                Effect::KubePreflight => {
                    self.tasks.spawn(kube_steps::preflight(config, tx));
                }
                Effect::RunPlan { id, plan, .. } => {
                    let cancel = self.cancel_switch(id);
                    // The verdict the executor waits for must be newer than its start.
                    self.guard_tx.send_replace(exec::GuardCheck::default());
                    self.tasks.spawn(exec::run(
                        id,
                        plan,
                        config,
                        self.kube_state.clone(),
                        tx,
                        exec::Control {
                            cancel,
                            guards: self.guard_rx.clone(),
                            live: self.live_tx.subscribe(),
                        },
                    ));
                }
                Effect::WriteReport { path } => {
                    let log = self.log.clone();
                    self.tasks.spawn(async move {
                        let out =
                            path.map_or_else(|| report_beside(&log), std::path::PathBuf::from);
                        let format = crate::report::Format::for_path(&out);
                        let written = tokio::task::spawn_blocking({
                            let (log, out) = (log.clone(), out.clone());
                            move || crate::report::write(&log, format, &out)
                        })
                        .await;
                        let error = match written {
                            Ok(Ok(())) => None,
                            Ok(Err(e)) => Some(format!("{e:#}")),
                            Err(e) => Some(format!("the report writer stopped: {e}")),
                        };
                        let _ = tx
                            .send(EventKind::ReportWritten {
                                path: out.display().to_string(),
                                error,
                            })
                            .await;
                    });
                }
                Effect::Quit => quit = true,
                Effect::Record(kind) => {
                    // Through the channel like any event: logged, then folded.
                    self.tasks.spawn(async move {
                        let _ = tx.send(kind).await;
                    });
                }
            }
        }
        quit
    }

    fn cancel_switch(&mut self, run: u64) -> watch::Receiver<bool> {
        let (cancel_tx, cancel_rx) = watch::channel(false);
        self.cancels.insert(run, cancel_tx);
        cancel_rx
    }

    /// Cancels what runs on the servers (counts and verifications would
    /// scan on otherwise), gives their tasks a moment to send the
    /// server-side cancel, then stops every task.
    pub async fn shutdown(mut self, mut rx: mpsc::Receiver<EventKind>) {
        for (_, c) in self.cancels.drain() {
            let _ = c.send(true);
        }
        drop(self.tx);
        let grace = tokio::time::timeout(Duration::from_secs(3), async {
            while let Some(kind) = rx.recv().await {
                if matches!(
                    kind,
                    EventKind::CountFinished { .. } | EventKind::VerifyFinished { .. }
                ) {
                    break;
                }
            }
        });
        let _ = grace.await;
        self.tasks.abort_all();
    }
}

/// `session-….jsonl` → `session-….report.txt`, beside it.
fn report_beside(log: &std::path::Path) -> std::path::PathBuf {
    log.with_extension("report.txt")
}
