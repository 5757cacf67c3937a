//! The runtime: the only place where the event loop meets IO. It stamps each
//! event, appends it to the session log, folds it into the model, runs the
//! effects the fold asks for and redraws when something changed.

pub mod app_check;
mod effects;
pub mod exec;
pub mod freeze;
pub mod inflight;
pub mod keys;
pub mod kube_steps;
pub mod kube_task;
pub mod pg_steps;
pub mod script;
pub mod sequences;
pub mod terminal;
pub mod verify_task;
pub mod watch;
pub mod window;
pub mod witness_task;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use chrono::Utc;
use futures::StreamExt;
use tokio::sync::mpsc;

use crate::config::Config;
use crate::model::{self, Effect, Model};
use crate::session::log::{new_session_path, LogWriter};
use crate::session::rollback;
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
        format_version: crate::session::event::FORMAT_VERSION,
        tool_version: env!("CARGO_PKG_VERSION").to_string(),
        operator: Some(operator()),
        config_fingerprint: std::fs::read(&config.path)
            .ok()
            .map(|bytes| config_fingerprint(&bytes)),
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
        report_path: config.report.path.as_ref().map(|p| p.display().to_string()),
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

/// `sha256:` and the file's full SHA-256: which config ran, never what it holds.
fn config_fingerprint(bytes: &[u8]) -> String {
    use sha2::Digest;
    let hex: String = sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256:{hex}")
}

/// Who runs this console, from where: the OS user, the host, and the SSH
/// client's address when there is one (`SSH_CONNECTION`, else `SSH_CLIENT`).
pub fn operator() -> crate::session::Operator {
    let user = nix::unistd::User::from_uid(nix::unistd::getuid())
        .ok()
        .flatten()
        .map(|u| u.name)
        .or_else(|| std::env::var("USER").ok())
        .unwrap_or_else(|| format!("uid {}", nix::unistd::getuid()));
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "(unknown host)".into());
    let ssh_client = ["SSH_CONNECTION", "SSH_CLIENT"]
        .iter()
        .find_map(|v| std::env::var(v).ok())
        .and_then(|v| v.split_whitespace().next().map(str::to_string));
    crate::session::Operator {
        user,
        host,
        ssh_client,
    }
}

/// Opens `path` to go on with its session on the config `now` describes:
/// refused for another config's session; a torn last line is cut off and
/// the resumption recorded with what it found.
async fn resume(
    path: &std::path::Path,
    now: &SessionInfo,
    config: &Config,
) -> Result<(Core, Vec<Effect>, String)> {
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
    // What was in flight when it ended, found out below once it is closed.
    let in_flight = match in_flight(&core.model) {
        Some(EventKind::InFlightAtEnd {
            run,
            step: Some((index, step)),
            ..
        }) => Some((run, index, step)),
        _ => None,
    };
    let mut effects = core.apply(EventKind::SessionResumed {
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
    if let Some((run, index, step)) = in_flight {
        let (outcome, evidence) = inflight::probe(config, &step).await;
        note.push_str(&format!(
            "; {} was in flight: the servers say {}: {evidence}",
            step.title(),
            outcome.word()
        ));
        effects.extend(core.apply(EventKind::InFlightOutcome {
            run,
            index,
            outcome,
            evidence,
        })?);
    }
    if cut > 0 {
        note.push_str(&format!(
            "; its torn last line ({cut} bytes, written as the console died) was cut off"
        ));
    }
    Ok((core, effects, note))
}

/// The newest session in `dir` recorded for this config that did not end
/// by the operator's choice (a hang-up, a kill, a signal, an error): its
/// path and how it ended, to offer resuming it.
pub fn unfinished_session(dir: &std::path::Path, now: &SessionInfo) -> Option<(PathBuf, String)> {
    let mut logs: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension().is_some_and(|x| x == "jsonl")
                && p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("session-"))
        })
        .collect();
    logs.sort();
    // The newest few: an older unfinished one was left on purpose.
    for path in logs.iter().rev().take(3) {
        // Its first and last lines say whose it is and whether the operator
        // ended it; only a log to offer is read whole.
        let Some((info, reason)) = crate::session::read::head_and_end(path) else {
            continue;
        };
        if !config_differences(&info, now).is_empty() {
            continue;
        }
        if reason.as_deref().is_some_and(ended_by_choice) {
            return None;
        }
        let Ok(read) = crate::session::log::read_log(path) else {
            continue;
        };
        let mut m = Model::default();
        for e in &read.events {
            model::update(&mut m, e);
        }
        let last = read.events.last().map(|e| e.at);
        let how = match m.ended.as_deref() {
            Some(reason) if ended_by_choice(reason) => return None,
            Some(reason) => format!("ended by {reason}"),
            None => "ended without a word (killed, or the host went down)".into(),
        };
        let running = m
            .actions
            .running()
            .map(|r| format!(", {} in flight", r.checkpoint.title()))
            .unwrap_or_default();
        let when = last.map_or_else(String::new, |t| {
            format!(" at {}", t.format("%Y-%m-%d %H:%M:%S UTC"))
        });
        return Some((path.clone(), format!("{how}{when}{running}")));
    }
    None
}

/// A session the operator (or the script) ended: nothing to offer to resume.
fn ended_by_choice(reason: &str) -> bool {
    matches!(reason, "operator quit" | "script done")
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

/// Where the loop's events come from, and whether their effects run.
enum Feed {
    /// Collectors, watchers and the executor: each event is stamped,
    /// logged, folded, and its effects run.
    Live(Box<Live>),
    /// A recorded log, on its own clock: folded, effects dropped.
    Replay(Box<watch::Replay>),
    /// A log another console writes, read as it grows: folded, effects dropped.
    Follow(Box<watch::Follow>),
}

struct Live {
    core: Core,
    rx: mpsc::Receiver<EventKind>,
    effects: effects::Effects,
    /// Runs checkpoints without a terminal (`--script`).
    script: Option<script::Script>,
    next_command: Option<model::keymap::SessionCommand>,
    script_failed: Option<String>,
    /// The screen size the digests are taken at.
    digest_size: (u16, u16),
    ticks: u64,
}

/// A screen digest every this many ticks, and after every run's end.
const DIGEST_EVERY_TICKS: u64 = 30;

impl Feed {
    fn model(&self) -> &Model {
        match self {
            Feed::Live(l) => &l.core.model,
            Feed::Replay(r) => &r.model,
            Feed::Follow(f) => &f.model,
        }
    }
}

/// What woke the loop.
enum Input {
    /// An event for the live console to log and fold.
    Event(Box<EventKind>),
    /// A replay's clock or a follower's poll: fold what is due.
    Due,
    Key(crossterm::event::KeyEvent),
    Resize,
    /// A frame held back by the frame rate is due.
    Frame,
    Stop(String),
}

/// Runs the live console until the operator quits or a signal arrives.
pub async fn run_console(config: Arc<Config>, opts: ConsoleOptions) -> Result<ConsoleEnd> {
    let theme =
        ui::theme::Theme::for_terminal(&(&config.ui).into(), config.ui.themes_dir.as_deref())
            .with_context(|| format!("{}: ui.theme", config.path.display()))?;
    let dir = opts
        .session_dir
        .clone()
        .unwrap_or_else(|| config.session.dir.clone());
    let info = session_info(&config, &opts.mode, opts.read_only);
    let mut resumed = None;
    let (core, first) = match &opts.resume {
        None => {
            let path = new_session_path(&dir, Utc::now());
            let group = config.session.group.as_ref().map(|(_, gid)| *gid);
            let mut core = Core::new(LogWriter::create_for(&path, group)?);
            let first = core.apply(EventKind::SessionStarted(Box::new(info)))?;
            (core, first)
        }
        Some(path) => {
            let (core, effects, note) = resume(path, &info, &config).await?;
            resumed = Some(note);
            (core, effects)
        }
    };
    let (tx, rx) = mpsc::channel::<EventKind>(1024);
    let kube_state =
        kube_steps::ActionState::with_rollback_file(rollback::path_for(core.log_path()));
    let mut effects =
        effects::Effects::new(config.clone(), tx, kube_state, core.log_path().to_owned());
    effects.run(first);
    effects.start_sources();
    let term = match opts.script {
        Some(_) => None,
        None => Some(terminal::enter()?),
    };
    let digest_size = match &term {
        Some(t) => t.size().map(|s| (s.width, s.height)).unwrap_or((120, 40)),
        None => (120, 40),
    };
    let live = Live {
        core,
        rx,
        effects,
        script: opts.script,
        next_command: None,
        script_failed: None,
        digest_size,
        ticks: 0,
    };
    let (feed, reason, failure) = drive(
        Feed::Live(Box::new(live)),
        term,
        model::View::default(),
        &theme,
    )
    .await;
    let Feed::Live(live) = feed else {
        unreachable!("the live console drives a live feed")
    };
    let Live {
        mut core,
        rx,
        effects,
        script_failed,
        ..
    } = *live;
    // What was in flight is recorded before the end, so the resumed
    // console knows what to find out from the servers.
    let in_flight = in_flight(&core.model);
    let ended = in_flight
        .map_or(Ok(vec![]), |kind| core.apply(kind))
        .and_then(|_| {
            core.apply(EventKind::SessionEnded {
                reason: reason.clone(),
            })
        })
        .and_then(|_| core.sync());
    effects.shutdown(rx).await;
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

/// The run and step in flight, if a checkpoint runs: the step by its index
/// in the plan, as the executor numbered it.
fn in_flight(model: &Model) -> Option<EventKind> {
    let run = model.actions.running()?;
    let step = run
        .steps
        .iter()
        .rev()
        .find(|s| s.finished.is_none())
        .map(|s| (s.index, s.step.clone()));
    Some(EventKind::InFlightAtEnd {
        run: run.id,
        checkpoint: run.checkpoint,
        step,
    })
}

/// `cutover replay`: the recorded session in the console, on its own clock.
pub async fn run_replay(path: &std::path::Path, theme: &ui::theme::Theme) -> Result<()> {
    let replay = watch::Replay::open(path)?;
    let (feed, watched) = watch_in_terminal(
        Feed::Replay(Box::new(replay)),
        model::WatchKind::Replay,
        theme,
    )
    .await;
    if let Feed::Replay(r) = feed {
        if let Some(n) = &r.note {
            crate::exit::note(n);
        }
    }
    watched
}

/// A replay or a follower in the terminal until it quits.
async fn watch_in_terminal(
    feed: Feed,
    kind: model::WatchKind,
    theme: &ui::theme::Theme,
) -> (Feed, Result<()>) {
    let term = match terminal::enter() {
        Ok(t) => t,
        Err(e) => return (feed, Err(e)),
    };
    let (feed, _, failure) = drive(feed, Some(term), watch::watch_view(kind), theme).await;
    (feed, failure.map_or(Ok(()), Err))
}

/// `cutover follow`: a session another console writes, read-only, as it grows.
pub async fn run_follow(path: &std::path::Path, theme: &ui::theme::Theme) -> Result<()> {
    let follow = watch::Follow::open(path)?;
    watch_in_terminal(
        Feed::Follow(Box::new(follow)),
        model::WatchKind::Follow,
        theme,
    )
    .await
    .1
}

/// The one loop: draws when something changed (at most every
/// [`MIN_FRAME_INTERVAL`]), takes the next input, folds it. Live, replay
/// and follow differ only in where events come from and whether effects
/// run. Returns the feed, why it stopped, and a failure that stopped it.
async fn drive(
    mut feed: Feed,
    mut term: Option<terminal::TerminalGuard>,
    mut view: model::View,
    theme: &ui::theme::Theme,
) -> (Feed, String, Option<anyhow::Error>) {
    let mut input = term.as_ref().map(|_| crossterm::event::EventStream::new());
    let signals = |kind| tokio::signal::unix::signal(kind);
    use tokio::signal::unix::SignalKind;
    let (mut sigterm, mut sighup, mut sigint) = match (
        signals(SignalKind::terminate()),
        signals(SignalKind::hangup()),
        signals(SignalKind::interrupt()),
    ) {
        (Ok(t), Ok(h), Ok(i)) => (t, h, i),
        (Err(e), ..) | (_, Err(e), _) | (.., Err(e)) => {
            let e = anyhow::Error::new(e).context("installing signal handlers");
            return (feed, "signal handlers".into(), Some(e));
        }
    };
    let mut dirty = true;
    let mut last_frame = tokio::time::Instant::now() - MIN_FRAME_INTERVAL;
    let mut failure: Option<anyhow::Error> = None;
    let reason: String = loop {
        refresh_timeline(&feed, &mut view);
        if let (true, Some(t)) = (dirty, term.as_mut()) {
            if MIN_FRAME_INTERVAL
                .saturating_sub(last_frame.elapsed())
                .is_zero()
            {
                let model = feed.model();
                if let Err(e) = t.draw(|f| ui::view(f, model, &view, theme)) {
                    let e = anyhow::Error::new(e).context("drawing the screen");
                    break fail(&mut failure, e);
                }
                last_frame = tokio::time::Instant::now();
                dirty = false;
            }
        }
        let drawn = dirty && term.is_some();
        let next = match &mut feed {
            // A script's command goes before anything else arrives.
            Feed::Live(l) => l
                .next_command
                .take()
                .map(|c| Input::Event(Box::new(EventKind::Command(c)))),
            _ => None,
        };
        let next = match next {
            Some(n) => n,
            None => {
                tokio::select! {
                    i = next_input(&mut feed, &view) => i,
                    maybe = next_key(&mut input) => match maybe {
                        Some(Ok(crossterm::event::Event::Key(key))) => Input::Key(key),
                        Some(Ok(crossterm::event::Event::Resize(..))) => Input::Resize,
                        Some(Ok(_)) => continue,
                        Some(Err(e)) => break format!("terminal input failed: {e}"),
                        None => break "terminal input closed".to_string(),
                    },
                    _ = sigterm.recv() => Input::Stop("SIGTERM".into()),
                    _ = sighup.recv() => Input::Stop("SIGHUP (terminal hung up)".into()),
                    _ = sigint.recv() => Input::Stop(SIGINT_REASON.into()),
                    _ = frame_due(drawn, last_frame) => Input::Frame,
                }
            }
        };
        let kind = match next {
            Input::Stop(why) => break why,
            Input::Frame => continue,
            Input::Resize => {
                let resized = term.as_mut().map_or(Ok(()), |t| t.autoresize());
                if let Err(e) = resized {
                    let e = anyhow::Error::new(e).context("resizing the screen");
                    break fail(&mut failure, e);
                }
                dirty = true;
                continue;
            }
            Input::Due => {
                let changed = match &mut feed {
                    Feed::Replay(r) => {
                        let w = view.watch.as_ref().expect("a replay has its watch");
                        r.advance(w)
                    }
                    Feed::Follow(f) => match f.poll() {
                        Ok(changed) => changed,
                        Err(e) => break fail(&mut failure, e),
                    },
                    Feed::Live(_) => false,
                };
                // A follower's "last event N s ago" moves on regardless.
                dirty |= changed || matches!(feed, Feed::Follow(_));
                continue;
            }
            Input::Key(key) => {
                let Some(name) = keys::name(&key) else {
                    continue;
                };
                // The keymap decides; only the operator's decisions are logged.
                let command = model::keymap::dispatch(feed.model(), &mut view, &name);
                dirty = true;
                if let (Feed::Replay(r), Some(w)) = (&mut feed, view.watch.as_mut()) {
                    if let Some(seek) = w.seek.take() {
                        r.seek(seek);
                    }
                }
                match (command, &feed) {
                    (None, _) => continue,
                    (Some(c), Feed::Live(_)) => EventKind::Command(c),
                    // A viewer binds nothing else that makes a command.
                    (Some(_), _) => break "quit".to_string(),
                }
            }
            Input::Event(kind) => *kind,
        };
        let Feed::Live(live) = &mut feed else {
            continue;
        };
        match live.fold(kind) {
            Ok(None) => dirty = true,
            Ok(Some(why)) => break why,
            // Nothing may run unrecorded: stop here.
            Err(e) => break fail(&mut failure, e),
        }
    };
    drop(term);
    (feed, reason, failure)
}

/// What the timeline row shows, from where the feed is.
fn refresh_timeline(feed: &Feed, view: &mut model::View) {
    if let Some(w) = view.watch.as_mut() {
        w.bar = match feed {
            Feed::Replay(r) => r.timeline(),
            Feed::Follow(f) => f.timeline(Utc::now()),
            Feed::Live(_) => return,
        };
    }
}

async fn next_key(
    input: &mut Option<crossterm::event::EventStream>,
) -> Option<std::io::Result<crossterm::event::Event>> {
    match input.as_mut() {
        Some(input) => input.next().await,
        None => std::future::pending().await,
    }
}

async fn frame_due(drawn: bool, last_frame: tokio::time::Instant) {
    if drawn {
        tokio::time::sleep(MIN_FRAME_INTERVAL.saturating_sub(last_frame.elapsed())).await
    } else {
        std::future::pending::<()>().await
    }
}

async fn next_input(feed: &mut Feed, view: &model::View) -> Input {
    match feed {
        Feed::Live(l) => match l.rx.recv().await {
            Some(kind) => Input::Event(Box::new(kind)),
            None => Input::Stop("every event source ended".into()),
        },
        Feed::Replay(r) => {
            let w = view.watch.as_ref().expect("a replay has its watch");
            r.wait(w).await;
            Input::Due
        }
        Feed::Follow(_) => {
            tokio::time::sleep(watch::FOLLOW_POLL).await;
            Input::Due
        }
    }
}

impl Live {
    /// Logs and folds one event, runs its effects, steps the script; why
    /// to stop, if it is time to.
    fn fold(&mut self, kind: EventKind) -> Result<Option<String>> {
        let finished_run = matches!(kind, EventKind::RunFinished { .. });
        if matches!(kind, EventKind::Tick) {
            self.ticks += 1;
        }
        let effects = self.core.apply(kind)?;
        self.effects.observe(&self.core.model);
        if self.effects.run(effects) {
            return Ok(Some("operator quit".into()));
        }
        if finished_run || (self.ticks > 0 && self.ticks.is_multiple_of(DIGEST_EVERY_TICKS)) {
            self.digest()?;
        }
        if let Some(s) = self.script.as_mut() {
            match s.next(&self.core.model, std::time::Instant::now()) {
                script::Next::Command(c) => self.next_command = Some(c),
                script::Next::Wait => {}
                // The last checkpoint's report is written before the end.
                script::Next::Done if self.core.model.report_pending => {}
                script::Next::Done => return Ok(Some("script done".into())),
                script::Next::Failed(why) => {
                    self.script_failed = Some(why.clone());
                    return Ok(Some(format!("script stopped: {why}")));
                }
            }
        }
        Ok(None)
    }

    /// Logs what the panes show now, for the replay to prove it draws the same.
    fn digest(&mut self) -> Result<()> {
        let (width, height) = self.digest_size;
        let digest = ui::digest(&self.core.model, width, height);
        self.core.apply(EventKind::ScreenDigest {
            width,
            height,
            digest,
        })?;
        Ok(())
    }
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

    fn config(target: &str) -> Config {
        let text = format!(
            "[source]\ndsn = \"host=db1 dbname=app user=app\"\n\
             [target]\ndsn = \"host={target} dbname=app user=app\"\n"
        );
        crate::config::parse(&text, std::path::Path::new("cutover.toml")).unwrap()
    }

    fn info(target: &str) -> SessionInfo {
        session_info(&config(target), "live", false)
    }

    #[tokio::test]
    async fn resume_goes_on_numbering_and_refuses_another_configs_session() {
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

        let err = resume(&path, &info("db3"), &config("db3"))
            .await
            .err()
            .unwrap()
            .to_string();
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

        let (mut core, effects, note) = resume(&path, &info("db2"), &config("db2")).await.unwrap();
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
