//! The runtime: the only place where the event loop meets IO. It stamps each
//! event, appends it to the session log, folds it into the model, runs the
//! effects the fold asks for and redraws when something changed.

pub mod app_check;
pub mod exec;
pub mod freeze;
pub mod keys;
pub mod kube_steps;
pub mod kube_task;
pub mod pg_steps;
pub mod script;
pub mod sequences;
pub mod terminal;
pub mod verify_task;
pub mod window;
pub mod witness_task;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use chrono::Utc;
use futures::StreamExt;
use tokio::sync::{mpsc, watch};

use crate::config::Config;
use crate::model::{self, Effect, Model};
use crate::pg;
use crate::session::log::{new_session_path, LogWriter};
use crate::session::rollback;
use crate::session::sample::Side;
use crate::session::{Endpoint, Event, EventKind, KubeInfo, SessionInfo};
use crate::ui;

const SIGINT_REASON: &str = "SIGINT";

/// Redraws are coalesced: a burst of events costs one frame.
const MIN_FRAME_INTERVAL: Duration = Duration::from_millis(50);

pub struct ConsoleOptions {
    /// `live` or `demo`: shown in the header and recorded in the session.
    pub mode: String,
    /// Where the session log goes (defaults to the config's session dir).
    pub session_dir: Option<PathBuf>,
    /// Bind no key that changes anything outside cutover.
    pub read_only: bool,
    /// Go on with this session log (`--resume`) instead of starting one.
    pub resume: Option<PathBuf>,
    /// Run these checkpoints without a terminal (`--script`), then quit.
    pub script: Option<script::Script>,
}

/// Stamps, logs and folds events. Separate from the terminal so it can be
/// driven without one.
pub struct Core {
    pub model: Model,
    log: LogWriter,
    seq: u64,
}

impl Core {
    pub fn new(log: LogWriter) -> Self {
        Self {
            model: Model::default(),
            log,
            seq: 0,
        }
    }

    /// Goes on with a session log opened for append: its events folded
    /// (their effects were the ended process's), sequence numbers
    /// continuing from its last.
    pub fn resume(log: LogWriter, events: &[Event]) -> Self {
        let mut model = Model::default();
        for event in events {
            model::update(&mut model, event);
        }
        Self {
            model,
            log,
            seq: events.last().map_or(0, |e| e.seq),
        }
    }

    pub fn log_path(&self) -> &std::path::Path {
        self.log.path()
    }

    /// Logged first, then applied: the log is never behind the screen.
    pub fn apply(&mut self, kind: EventKind) -> Result<Vec<Effect>> {
        self.seq += 1;
        let event = Event {
            seq: self.seq,
            at: Utc::now(),
            kind,
        };
        self.log.append(&event)?;
        Ok(model::update(&mut self.model, &event))
    }

    pub fn sync(&mut self) -> Result<()> {
        self.log.sync()
    }
}

pub fn session_info(config: &Config, mode: &str, read_only: bool) -> SessionInfo {
    SessionInfo {
        tool_version: env!("CARGO_PKG_VERSION").to_string(),
        mode: mode.to_string(),
        config_path: config.path.display().to_string(),
        source: Endpoint {
            label: config.source.label.clone(),
            describe: config.source.describe(),
        },
        target: Endpoint {
            label: config.target.label.clone(),
            describe: config.target.describe(),
        },
        publication: config.replication.publication.clone(),
        subscription: config.replication.subscription.clone(),
        sequence_stride: config.replication.sequence_stride,
        app_roles: config.freeze.app_roles.clone(),
        freeze_budget_secs: config.freeze.budget_secs,
        on_budget_exceeded: config.freeze.on_budget_exceeded,
        slot: config.replication.slot.clone(),
        max_lag_bytes: config.thresholds.max_lag_bytes as i64,
        max_lag_seconds: config.thresholds.max_lag_seconds,
        max_retained_wal_bytes: config.thresholds.max_retained_wal_bytes as i64,
        stale_after_seconds: config.thresholds.stale_after_seconds,
        refresh_ms: config.monitor.refresh_ms,
        kubernetes: config.kubernetes.as_ref().map(|k| KubeInfo {
            context: k.context.clone().unwrap_or_else(|| "(current)".into()),
            namespace: k.namespace.clone().unwrap_or_else(|| "(default)".into()),
            deployments: k.deployments.clone(),
            config_object: k.config_object.clone(),
            config_key: k.config_key.clone(),
            switch_to: k.switch_to.as_ref().map(|s| s.to_string()),
        }),
        read_only,
    }
}

/// Opens `path` to go on with its session on the config `now` describes:
/// refused for another config's session; a torn last line is cut off and
/// the resumption recorded with what it found.
fn resume(path: &std::path::Path, now: &SessionInfo) -> Result<(Core, Vec<Effect>, String)> {
    let mut reopened = LogWriter::open_append(path)?;
    let logged = match reopened.events.first().map(|e| &e.kind) {
        Some(EventKind::SessionStarted(info)) => &**info,
        _ => anyhow::bail!("{}: not a session log", path.display()),
    };
    let differs = config_differences(logged, now);
    if !differs.is_empty() {
        anyhow::bail!(
            "--resume {}: that session was recorded for another config ({}): start a new \
             session, or resume it with the config it was recorded with",
            path.display(),
            differs.join("; ")
        );
    }
    let last = reopened.events.last().map(|e| (e.seq, e.at));
    let (previous_last_seq, previous_last_at) = last.unwrap_or((0, Utc::now()));
    let cut = reopened.cut;
    let events = std::mem::take(&mut reopened.events);
    let mut core = Core::resume(reopened.into_writer()?, &events);
    let effects = core.apply(EventKind::SessionResumed {
        previous_last_seq,
        previous_last_at,
        cut_bytes: cut,
        tool_version: now.tool_version.clone(),
        read_only: now.read_only,
    })?;
    let mut note = format!(
        "resumed session {} after its event {previous_last_seq}",
        path.display()
    );
    if cut > 0 {
        note.push_str(&format!(
            "; its torn last line ({cut} bytes, written as the console died) was cut off"
        ));
    }
    Ok((core, effects, note))
}

/// What makes a session log another config's: the file, the databases, the
/// replication names, the Kubernetes side. Thresholds may change between runs.
fn config_differences(logged: &SessionInfo, now: &SessionInfo) -> Vec<String> {
    let mut differs = Vec::new();
    let mut check = |what: &str, a: &str, b: &str| {
        if a != b {
            differs.push(format!("{what}: the log has {a}, now {b}"));
        }
    };
    let canonical = |p: &str| {
        std::fs::canonicalize(p).map_or_else(|_| p.to_string(), |c| c.display().to_string())
    };
    check(
        "config file",
        &canonical(&logged.config_path),
        &canonical(&now.config_path),
    );
    check("source", &logged.source.describe, &now.source.describe);
    check("target", &logged.target.describe, &now.target.describe);
    check("publication", &logged.publication, &now.publication);
    check("subscription", &logged.subscription, &now.subscription);
    check("slot", &logged.slot, &now.slot);
    let kube = |k: &Option<KubeInfo>| match k {
        None => "no [kubernetes]".to_string(),
        Some(k) => format!(
            "context {}, namespace {}, {} {}",
            k.context,
            k.namespace,
            k.config_object.as_deref().unwrap_or("(no config object)"),
            k.config_key.as_deref().unwrap_or("(no key)")
        ),
    };
    check(
        "kubernetes",
        &kube(&logged.kubernetes),
        &kube(&now.kubernetes),
    );
    differs
}

/// Records a failure that ends the console and returns the reason to log.
fn fail(slot: &mut Option<anyhow::Error>, e: anyhow::Error) -> String {
    let reason = format!("error: {e:#}");
    *slot = Some(e);
    reason
}

/// How a console session ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsoleEnd {
    /// The session log.
    pub log: PathBuf,
    /// Ended by SIGINT (exit code 130), not by the operator or SIGTERM/SIGHUP.
    pub interrupted: bool,
    /// What resuming the log found, to say once the terminal is back.
    pub resumed: Option<String>,
}

/// Runs the live console until the operator quits or a signal arrives.
pub async fn run_console(config: Arc<Config>, opts: ConsoleOptions) -> Result<ConsoleEnd> {
    let theme = ui::theme::Theme::from_env(&config.ui.theme)
        .with_context(|| format!("{}: ui.theme", config.path.display()))?;
    let dir = opts
        .session_dir
        .clone()
        .unwrap_or_else(|| config.session.dir.clone());
    let info = session_info(&config, &opts.mode, opts.read_only);
    let mut resumed = None;
    let (mut core, first) = match &opts.resume {
        None => {
            let mut core = Core::new(LogWriter::create(&new_session_path(&dir, Utc::now()))?);
            let first = core.apply(EventKind::SessionStarted(Box::new(info)))?;
            (core, first)
        }
        Some(path) => {
            let (core, effects, note) = resume(path, &info)?;
            resumed = Some(note);
            (core, effects)
        }
    };
    let (tx, mut rx) = mpsc::channel::<EventKind>(1024);
    let kube_state =
        kube_steps::ActionState::with_rollback_file(rollback::path_for(core.log_path()));
    let mut tasks = tokio::task::JoinSet::new();
    for effect in first {
        if effect == Effect::KubePreflight {
            tasks.spawn(kube_steps::preflight(config.clone(), tx.clone()));
        }
    }
    for side in [Side::Source, Side::Target] {
        tasks.spawn(pg::collector::run(side, config.clone(), tx.clone()));
    }
    tasks.spawn(kube_task::run(config.clone(), tx.clone()));
    if let Some(lab) = &config.lab {
        tasks.spawn(witness_task::run(lab.dir.clone(), tx.clone()));
    }
    {
        let tx = tx.clone();
        tasks.spawn(async move {
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

    // A script drives the console without a terminal: nothing is drawn,
    // no key is read; its commands are logged like keyed ones.
    let mut script = opts.script;
    let mut term = match script {
        Some(_) => None,
        None => Some(terminal::enter()?),
    };
    let mut input = term.as_ref().map(|_| crossterm::event::EventStream::new());
    let mut next_command: Option<model::keymap::SessionCommand> = None;
    let mut script_failed: Option<String> = None;
    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut sighup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
    let mut sigint = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;
    // Cancel switches of the background runs (counts and verifications share run ids).
    let mut cancels: HashMap<u64, watch::Sender<bool>> = HashMap::new();
    // Verification yields to replication: the model decides, the engine obeys.
    let (pause_tx, pause_rx) = watch::channel(false);
    // The running action's guards as the model judges them after each event:
    // the executor re-checks them on fresh data right before its first change.
    let (guard_tx, guard_rx) = watch::channel(exec::GuardCheck::default());
    // The live verification's latest report, for the final check in the window.
    let (live_tx, _) = watch::channel(verify_task::LiveVerify::default());
    let mut view = model::View::default();
    let mut dirty = true;
    let mut last_frame = tokio::time::Instant::now() - MIN_FRAME_INTERVAL;

    // Why the loop stopped, when it was a failure rather than a way to end.
    let mut failure: Option<anyhow::Error> = None;
    let reason: String = loop {
        if let (true, Some(term)) = (dirty, term.as_mut()) {
            let wait = MIN_FRAME_INTERVAL.saturating_sub(last_frame.elapsed());
            if wait.is_zero() {
                if let Err(e) = term.draw(|f| ui::view(f, &core.model, &view, &theme)) {
                    let e = anyhow::Error::new(e).context("drawing the screen");
                    break fail(&mut failure, e);
                }
                last_frame = tokio::time::Instant::now();
                dirty = false;
            }
        }
        let drawn = dirty && term.is_some();
        let frame_due = async move {
            if drawn {
                tokio::time::sleep(MIN_FRAME_INTERVAL.saturating_sub(last_frame.elapsed())).await
            } else {
                std::future::pending::<()>().await
            }
        };
        let key = async {
            match input.as_mut() {
                Some(input) => input.next().await,
                None => std::future::pending().await,
            }
        };
        let kind = if let Some(command) = next_command.take() {
            EventKind::Command(command)
        } else {
            tokio::select! {
            Some(kind) = rx.recv() => kind,
            maybe = key => match maybe {
                Some(Ok(crossterm::event::Event::Key(key))) => {
                    let Some(name) = keys::name(&key) else { continue };
                    // The keymap decides; only the operator's decisions are logged.
                    match model::keymap::dispatch(&core.model, &mut view, &name) {
                        Some(command) => EventKind::Command(command),
                        None => {
                            dirty = true;
                            continue;
                        }
                    }
                }
                Some(Ok(crossterm::event::Event::Resize(..))) => {
                    let resized = term.as_mut().map_or(Ok(()), |t| t.autoresize());
                    if let Err(e) = resized {
                        let e = anyhow::Error::new(e).context("resizing the screen");
                        break fail(&mut failure, e);
                    }
                    dirty = true;
                    continue;
                }
                Some(Ok(_)) => continue,
                Some(Err(e)) => break format!("terminal input failed: {e}"),
                None => break "terminal input closed".to_string(),
            },
            _ = sigterm.recv() => break "SIGTERM".to_string(),
            _ = sighup.recv() => break "SIGHUP (terminal hung up)".to_string(),
            _ = sigint.recv() => break SIGINT_REASON.to_string(),
            _ = frame_due => continue,
            }
        };
        let effects = match core.apply(kind) {
            Ok(effects) => effects,
            // Nothing may run unrecorded: stop here.
            Err(e) => break fail(&mut failure, e),
        };
        dirty = true;
        if let Some(run) = core.model.actions.running() {
            let overridden = run
                .overridden
                .as_ref()
                .map(|(labels, _)| labels.as_slice())
                .unwrap_or_default();
            let check = exec::GuardCheck {
                at: core.model.now,
                failing: model::recheck(&core.model, run.checkpoint, overridden),
            };
            guard_tx.send_replace(check);
        }
        let throttled = model::verify_throttle(&core.model).is_some();
        pause_tx.send_if_modified(|p| std::mem::replace(p, throttled) != throttled);
        let mut quit = false;
        for effect in effects {
            match effect {
                Effect::StartExactCount { run, tables } => {
                    let (cancel_tx, cancel_rx) = watch::channel(false);
                    cancels.insert(run, cancel_tx);
                    tasks.spawn(pg::count::run(
                        run,
                        tables,
                        config.clone(),
                        tx.clone(),
                        cancel_rx,
                    ));
                }
                Effect::StartVerify { run, tables } => {
                    let (cancel_tx, cancel_rx) = watch::channel(false);
                    cancels.insert(run, cancel_tx);
                    let (config, tx, pause) = (config.clone(), tx.clone(), pause_rx.clone());
                    tasks.spawn(verify_task::run(run, tables, config, tx, cancel_rx, pause));
                }
                Effect::StartContinuousVerify { run, tables } => {
                    let (cancel_tx, cancel_rx) = watch::channel(false);
                    cancels.insert(run, cancel_tx);
                    let (config, tx, pause) = (config.clone(), tx.clone(), pause_rx.clone());
                    tasks.spawn(verify_task::run_continuous(
                        run,
                        tables,
                        config,
                        tx,
                        cancel_rx,
                        pause,
                        live_tx.clone(),
                    ));
                }
                Effect::CancelExactCount { run }
                | Effect::CancelVerify { run }
                | Effect::CancelRun { id: run } => {
                    if let Some(c) = cancels.remove(&run) {
                        let _ = c.send(true);
                    }
                }
                Effect::KubePreflight => {
                    tasks.spawn(kube_steps::preflight(config.clone(), tx.clone()));
                }
                Effect::RunPlan { id, plan, .. } => {
                    let (cancel_tx, cancel_rx) = watch::channel(false);
                    cancels.insert(id, cancel_tx);
                    // The verdict the executor waits for must be newer than its start.
                    guard_tx.send_replace(exec::GuardCheck::default());
                    tasks.spawn(exec::run(
                        id,
                        plan,
                        config.clone(),
                        kube_state.clone(),
                        tx.clone(),
                        exec::Control {
                            cancel: cancel_rx,
                            guards: guard_rx.clone(),
                            live: live_tx.subscribe(),
                        },
                    ));
                }
                Effect::Quit => quit = true,
                Effect::Record(kind) => {
                    // Through the channel like any event: logged, then folded.
                    let tx = tx.clone();
                    tasks.spawn(async move {
                        let _ = tx.send(kind).await;
                    });
                }
            }
        }
        if quit {
            break "operator quit".to_string();
        }
        if let Some(s) = script.as_mut() {
            match s.next(&core.model, std::time::Instant::now()) {
                script::Next::Command(c) => next_command = Some(c),
                script::Next::Wait => {}
                script::Next::Done => break "script done".to_string(),
                script::Next::Failed(why) => {
                    script_failed = Some(why.clone());
                    break format!("script stopped: {why}");
                }
            }
        }
    };

    // Cancel running counts and verifications on the servers before we go: they would scan on otherwise.
    for (_, c) in cancels.drain() {
        let _ = c.send(true);
    }
    // Where the log itself failed (a full disk), the end is still recorded
    // if it fits: the failed write was cut back, freeing its bytes.
    let ended = core
        .apply(EventKind::SessionEnded {
            reason: reason.clone(),
        })
        .and_then(|_| core.sync());
    drop(term);
    let grace = tokio::time::timeout(Duration::from_secs(3), async {
        // Give count tasks the moment they need to send their server-side cancel.
        drop(tx);
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
    tasks.abort_all();
    if let Some(e) = failure {
        return Err(e.context(format!(
            "the console stopped so that nothing runs unrecorded; session log {}",
            core.log_path().display()
        )));
    }
    ended?;
    if let Some(why) = script_failed {
        return Err(anyhow::anyhow!(
            "script stopped: {why}; session log {}",
            core.log_path().display()
        ));
    }
    Ok(ConsoleEnd {
        log: core.log_path().to_owned(),
        interrupted: reason == SIGINT_REASON,
        resumed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_info_carries_no_password() {
        let text = r#"
[source]
dsn = "host=db1 port=5432 dbname=app user=app password=hunter2-src"
[target]
dsn = "postgres://app:hunter2-tgt@db2:5432/app"
"#;
        let config = crate::config::parse(text, std::path::Path::new("cutover.toml")).unwrap();
        let json = serde_json::to_string(&EventKind::SessionStarted(Box::new(session_info(
            &config, "live", false,
        ))))
        .unwrap();
        assert!(!json.contains("hunter2"), "{json}");
        assert!(json.contains("app@db1:5432/app"), "{json}");
    }

    fn info(target: &str) -> SessionInfo {
        let text = format!(
            "[source]\ndsn = \"host=db1 dbname=app user=app\"\n\
             [target]\ndsn = \"host={target} dbname=app user=app\"\n"
        );
        let config = crate::config::parse(&text, std::path::Path::new("cutover.toml")).unwrap();
        session_info(&config, "live", false)
    }

    #[test]
    fn resume_goes_on_numbering_and_refuses_another_configs_session() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.jsonl");
        let mut core = Core::new(LogWriter::create(&path).unwrap());
        core.apply(EventKind::SessionStarted(Box::new(info("db2"))))
            .unwrap();
        core.apply(EventKind::Tick).unwrap();
        let last_at = core.model.now.unwrap();
        drop(core);
        {
            use std::io::Write;
            let mut f = std::fs::OpenOptions::new()
                .append(true)
                .open(&path)
                .unwrap();
            f.write_all(b"{\"seq\":3,\"at").unwrap();
        }

        let err = resume(&path, &info("db3")).err().unwrap().to_string();
        assert_eq!(
            err,
            format!(
                "--resume {}: that session was recorded for another config (target: the log \
                 has app@db2:5432/app (sslmode=prefer), now app@db3:5432/app (sslmode=prefer)): \
                 start a new session, or resume \
                 it with the config it was recorded with",
                path.display()
            )
        );

        let (mut core, effects, note) = resume(&path, &info("db2")).unwrap();
        assert_eq!(effects, vec![]);
        assert_eq!(
            note,
            format!(
                "resumed session {} after its event 2; its torn last line (12 bytes, written \
                 as the console died) was cut off",
                path.display()
            )
        );
        core.apply(EventKind::Tick).unwrap();
        drop(core);
        let events = crate::session::log::read_all(&path).unwrap();
        let seqs: Vec<u64> = events.iter().map(|e| e.seq).collect();
        assert_eq!(seqs, [1, 2, 3, 4]);
        assert_eq!(
            events[2].kind,
            EventKind::SessionResumed {
                previous_last_seq: 2,
                previous_last_at: last_at,
                cut_bytes: 12,
                tool_version: env!("CARGO_PKG_VERSION").into(),
                read_only: false,
            }
        );
    }
}
