//! The runtime: the only place where the event loop meets IO. It stamps each
//! event, appends it to the session log, folds it into the model, runs the
//! effects the fold asks for and redraws when something changed.

pub mod app_check;
pub mod copy_job;
pub mod discover_task;
mod drive;
pub mod dump;
mod effects;
pub mod exec;
mod fleet;
pub mod freeze;
pub mod inflight;
pub mod keys;
pub mod kube_steps;
pub mod kube_task;
mod live;
pub mod pace;
pub mod pg_steps;
mod pooler_steps;
pub mod pooler_task;
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
use tokio::sync::mpsc;

use crate::config::Config;
use crate::model::{self, Effect, Model};
use crate::session::log::LogWriter;
use crate::session::rollback;
use crate::session::{Endpoint, Event, EventKind, KubeInfo, SessionInfo};
use crate::ui;
use drive::drive;
pub use drive::Display;
use live::{Db, Live};

const SIGINT_REASON: &str = "SIGINT";

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
    /// How long a changed sample waits to be drawn (`--refresh`).
    pub refresh: Duration,
    /// Only ASCII on the screen (`--ascii`).
    pub ascii: bool,
    /// Serve the screen's facts as Prometheus metrics here (`--metrics`).
    pub metrics: Option<std::net::SocketAddr>,
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
        runbook: config.runbook.variant,
        dump_jobs: config.runbook.dump_jobs,
        copy_job: crate::runbook::copy_job::CopyJob::from_config(config),
        database: config.database.clone(),
        pooler: config.pooler.as_ref().map(|p| crate::session::PoolerInfo {
            instances: match &p.instances {
                crate::config::PoolerInstances::Service { name, .. } => format!("service/{name}"),
                crate::config::PoolerInstances::Listed(l) => l
                    .iter()
                    .map(|i| format!("{}:{}", i.host, i.port))
                    .collect::<Vec<_>>()
                    .join(", "),
            },
            database: p.database.clone(),
            databases_file: p.databases_file.display().to_string(),
            pause_timeout_secs: p.pause_timeout_secs,
        }),
        config_users: config
            .kubernetes
            .as_ref()
            .and_then(|k| k.config_object.as_deref())
            .and_then(crate::kube::ConfigObject::parse)
            .is_some_and(|o| !matches!(o, crate::kube::ConfigObject::Service(_))),
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
            changes: k.changes,
            gitops_wait_secs: k.gitops_wait_secs,
            read_only_freeze: match (&config.freeze.read_only_role, &k.read_only_to) {
                (Some(role), Some(from)) if config.freeze.method.is_read_only_role() => {
                    Some(crate::session::ReadOnlyFreeze {
                        role: role.clone(),
                        value_from: from.to_string(),
                    })
                }
                _ => None,
            },
        }),
        read_only,
    }
}

/// A session's name for what it makes elsewhere (its copy Jobs' label):
/// its log's file name without the extension.
pub fn session_name(log: &std::path::Path) -> String {
    log.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
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
        let (outcome, evidence) = inflight::probe(config, &step, &session_name(path)).await;
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
    /// The session logs: one per database.
    pub logs: Vec<PathBuf>,
    /// With several databases: the report over all of them, where it was
    /// written or why it was not.
    pub fleet_report: Option<Result<PathBuf, String>>,
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

impl Feed {
    /// The model the screen shows: the selected database's when live.
    fn model(&self, view: &model::View) -> &Model {
        match self {
            Feed::Live(l) => {
                // For every database at once, keys go to a confirmation
                // still open: the shown one may have started already.
                let open = view
                    .fleet
                    .as_ref()
                    .filter(|f| f.all)
                    .and_then(|_| l.dbs.iter().find(|d| d.core.model.dialog.is_some()));
                match open {
                    Some(d) => &d.core.model,
                    None => &l.dbs[view.selected_db().min(l.dbs.len() - 1)].core.model,
                }
            }
            Feed::Replay(r) => &r.model,
            Feed::Follow(f) => &f.model,
        }
    }

    /// Every database's model, in the config's order (one but live).
    fn models(&self) -> Vec<&Model> {
        match self {
            Feed::Live(l) => l.models(),
            Feed::Replay(r) => vec![&r.model],
            Feed::Follow(f) => vec![&f.model],
        }
    }
}

/// Runs the live console until the operator quits or a signal arrives:
/// one runbook, log and set of collectors per database the config names.
pub async fn run_console(config: Arc<Config>, opts: ConsoleOptions) -> Result<ConsoleEnd> {
    let theme =
        ui::theme::Theme::for_terminal(&(&config.ui).into(), config.ui.themes_dir.as_deref())
            .with_context(|| format!("{}: ui.theme", config.path.display()))?;
    let display = Display {
        theme,
        refresh: opts.refresh,
        ascii: opts.ascii || config.ui.ascii,
    };
    if config.is_fleet() && opts.metrics.is_some() {
        anyhow::bail!(
            "--metrics serves one database's facts: not with [[databases]] ({})",
            config.path.display()
        );
    }
    // Bound before anything starts: a taken port stops here, named.
    let metrics = match opts.metrics {
        Some(addr) => Some(crate::metrics::Exporter::bind(addr).await?),
        None => None,
    };
    let dir = opts
        .session_dir
        .clone()
        .unwrap_or_else(|| config.session.dir.clone());
    let configs: Vec<Arc<Config>> = config.fleet().into_iter().map(Arc::new).collect();
    let resumed_logs = match &opts.resume {
        Some(path) => Some(fleet::sibling_logs(path, &configs)?),
        None => None,
    };
    // Every log is opened (or resumed) before anything starts: a database
    // whose log cannot be has nothing running for any of them.
    let started = Utc::now();
    let mut opened = Vec::new();
    let mut notes = Vec::new();
    for (i, cfg) in configs.iter().enumerate() {
        let info = session_info(cfg, &opts.mode, opts.read_only);
        opened.push(match &resumed_logs {
            None => {
                let path = fleet::session_path(&dir, started, cfg.database.as_deref());
                let group = cfg.session.group.as_ref().map(|(_, gid)| *gid);
                let mut core = Core::new(LogWriter::create_for(&path, group)?);
                let first = core.apply(EventKind::SessionStarted(Box::new(info)))?;
                (core, first)
            }
            Some(paths) => {
                let (core, effects, note) = resume(&paths[i], &info, cfg).await?;
                notes.push(note);
                (core, effects)
            }
        });
    }
    let mut dbs = Vec::new();
    for (cfg, (core, first)) in configs.iter().zip(opened) {
        let (tx, rx) = mpsc::channel::<EventKind>(1024);
        let kube_state = kube_steps::ActionState::with_rollback_file(
            rollback::path_for(core.log_path()),
            session_name(core.log_path()),
        );
        let mut effects =
            effects::Effects::new(cfg.clone(), tx, kube_state, core.log_path().to_owned());
        effects.run(first);
        effects.start_sources();
        dbs.push(Db {
            core,
            rx,
            effects,
            script: opts.script.clone(),
            next_command: None,
            script_done: false,
            ticks: 0,
        });
    }
    let term = match opts.script {
        Some(_) => None,
        None => Some(terminal::enter()?),
    };
    let digest_size = match &term {
        Some(t) => t.size().map(|s| (s.width, s.height)).unwrap_or((120, 40)),
        None => (120, 40),
    };
    let mut view = model::View::default();
    if configs.len() > 1 {
        let names = configs.iter().filter_map(|c| c.database.clone()).collect();
        view.fleet = Some(model::Fleet::new(names));
    }
    let live = Live {
        dbs,
        script_failed: None,
        digest_size,
        metrics,
        turn: 0,
    };
    let (feed, reason, failure) = drive(Feed::Live(Box::new(live)), term, view, &display).await;
    let Feed::Live(live) = feed else {
        unreachable!("the live console drives a live feed")
    };
    let Live {
        dbs, script_failed, ..
    } = *live;
    let mut ended = Ok(());
    let mut logs = Vec::new();
    let mut shutdowns = Vec::new();
    for Db {
        mut core,
        rx,
        effects,
        ..
    } in dbs
    {
        // What was in flight is recorded before the end, so the resumed
        // console knows what to find out from the servers.
        let in_flight = in_flight(&core.model);
        let this = in_flight
            .map_or(Ok(vec![]), |kind| core.apply(kind))
            .and_then(|_| {
                core.apply(EventKind::SessionEnded {
                    reason: reason.clone(),
                })
            })
            .and_then(|_| core.sync());
        if let (Ok(()), Err(e)) = (&ended, this) {
            ended = Err(e);
        }
        logs.push(core.log_path().to_owned());
        shutdowns.push(effects.shutdown(rx));
    }
    futures::future::join_all(shutdowns).await;
    let named = logs
        .iter()
        .map(|l| l.display().to_string())
        .collect::<Vec<_>>()
        .join(", ");
    if let Some(e) = failure {
        return Err(e.context(format!(
            "the console stopped so that nothing runs unrecorded; session log {named}"
        )));
    }
    ended?;
    // The report over every database, however far they got.
    let fleet_report = (logs.len() > 1).then(|| fleet::write_report(&config, &logs));
    if let Some(why) = script_failed {
        return Err(anyhow::anyhow!(
            "script stopped: {why}; session log {named}"
        ));
    }
    Ok(ConsoleEnd {
        logs,
        interrupted: reason == SIGINT_REASON,
        resumed: (!notes.is_empty()).then(|| notes.join("\n")),
        fleet_report,
    })
}

impl ConsoleEnd {
    /// Where the session went, once the terminal is back.
    pub fn say(&self) {
        for log in &self.logs {
            crate::exit::note(&format!("session recorded in {}", log.display()));
        }
        match &self.fleet_report {
            Some(Ok(path)) => crate::exit::note(&format!(
                "the report over every database written to {}",
                path.display()
            )),
            Some(Err(why)) => crate::exit::note(&format!(
                "the report over every database: not written: {why}"
            )),
            None => {}
        }
    }
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
pub async fn run_replay(path: &std::path::Path, display: &Display) -> Result<()> {
    let replay = watch::Replay::open(path)?;
    let (feed, watched) = watch_in_terminal(
        Feed::Replay(Box::new(replay)),
        model::WatchKind::Replay,
        display,
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
    display: &Display,
) -> (Feed, Result<()>) {
    let term = match terminal::enter() {
        Ok(t) => t,
        Err(e) => return (feed, Err(e)),
    };
    let (feed, _, failure) = drive(feed, Some(term), watch::watch_view(kind), display).await;
    (feed, failure.map_or(Ok(()), Err))
}

/// `cutover follow`: a session another console writes, read-only, as it grows.
pub async fn run_follow(path: &std::path::Path, display: &Display) -> Result<()> {
    let follow = watch::Follow::open(path)?;
    watch_in_terminal(
        Feed::Follow(Box::new(follow)),
        model::WatchKind::Follow,
        display,
    )
    .await
    .1
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
