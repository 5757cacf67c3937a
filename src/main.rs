use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};

use cutover::config;
use cutover::exit;
use cutover::lab;
use cutover::runtime::{self, ConsoleOptions};

/// A terminal console for driving a live PostgreSQL migration cutover.
#[derive(Parser)]
#[command(
    name = "cutover",
    version,
    about,
    args_conflicts_with_subcommands = true,
    after_help = EXIT_CODES_HELP
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    console: ConsoleArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Start the lab (two PostgreSQL clusters and a write load), open the console on it, tear the lab down on exit.
    Demo(DemoArgs),
    /// The lab alone: throwaway source and target clusters on loopback.
    Lab {
        #[command(subcommand)]
        command: LabCommand,
    },
    /// The live console on the clusters a cutover.toml names.
    Console(ConsoleArgs),
    /// Checksum-verify tables source against target, non-interactively; exit 1 on any difference.
    Verify(VerifyArgs),
    /// The preflight alone, non-interactively: one line per check with its fix; exit 1 when one fails.
    Check(CheckArgs),
    /// Replay a recorded session in the console: space pauses, +/- speed,
    /// ←/→ ±10 s, </> ±1 min, n/p next/previous checkpoint, q quits. No key changes anything.
    Replay(ViewArgs),
    /// Watch a session another console is writing, read-only, as it happens.
    Follow(ViewArgs),
    /// Export the migration report of a recorded session.
    Report(ReportArgs),
    /// List the themes and preview each as this terminal draws it (NAME: just that one).
    Themes(cutover::ui::theme::preview::ThemesArgs),
}

#[derive(Args)]
struct ViewArgs {
    /// The session log (a .jsonl file under the sessions directory).
    session: PathBuf,
    /// The theme (a built-in name or a theme file).
    #[arg(long, default_value = "default")]
    theme: String,
    #[command(flatten)]
    screen: ScreenArgs,
}

/// How the screen is drawn: for slow links and plain terminals.
#[derive(Args, Clone, Copy)]
struct ScreenArgs {
    /// Seconds a changed sample waits before it is drawn (0.05–60; 2–5 on a
    /// slow link). Keys and checkpoint steps are drawn at once.
    #[arg(long, value_name = "SECONDS", default_value_t = 1.0, value_parser = refresh_secs)]
    refresh: f64,
    /// Only ASCII on the screen, no box-drawing or symbol glyphs (also `[ui] ascii = true`).
    #[arg(long)]
    ascii: bool,
}

fn refresh_secs(s: &str) -> Result<f64, String> {
    let v: f64 = s.parse().map_err(|e| format!("{e}"))?;
    if (0.05..=60.0).contains(&v) {
        Ok(v)
    } else {
        Err(format!("{v} is outside 0.05–60 seconds"))
    }
}

impl ScreenArgs {
    fn display(self, theme: cutover::ui::Theme) -> runtime::Display {
        runtime::Display {
            theme,
            refresh: std::time::Duration::from_secs_f64(self.refresh),
            ascii: self.ascii,
        }
    }
}

#[derive(Args)]
struct ReportArgs {
    /// The session log; with several (one per database of a session of
    /// several), one report over all of them.
    #[arg(required = true, num_args = 1..)]
    session: Vec<PathBuf>,
    /// text, md or html.
    #[arg(short, long, default_value = "text")]
    format: cutover::report::Format,
    /// Write the report here (owner-only) instead of printing it.
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf>,
}

#[derive(Args)]
struct CheckArgs {
    /// The configuration file.
    #[arg(short, long, value_name = "FILE", default_value = "cutover.toml")]
    config: PathBuf,
    /// Print the checks as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct VerifyArgs {
    /// The configuration file.
    #[arg(short, long, value_name = "FILE", default_value = "cutover.toml")]
    config: PathBuf,
    /// Only this table (schema.name, or a name in public); repeatable. Default: every selected table.
    #[arg(long = "table", value_name = "TABLE")]
    tables: Vec<String>,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
    /// Connections per side (default: [verify] parallelism, else 2).
    #[arg(long)]
    parallelism: Option<usize>,
}

#[derive(Args)]
struct ConsoleArgs {
    /// The configuration file.
    #[arg(short, long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Where the session log goes (default: the config's [session] dir).
    #[arg(long, value_name = "DIR")]
    session_dir: Option<PathBuf>,
    /// Watch only: no key that changes anything outside cutover is bound.
    #[arg(long)]
    read_only: bool,
    /// Go on with this session log (after a crash or a dropped connection):
    /// its events are folded back in and new ones appended to it.
    #[arg(long, value_name = "SESSION_LOG")]
    resume: Option<PathBuf>,
    /// For rehearsals and benchmarks, without a terminal: run these
    /// checkpoints by their keys in order ("F? D P U W V Z C A E S R T X";
    /// `?` lets one fail), each once its guards pass (never overridden) and
    /// confirmed with what its dialog asks for; stop at the first failure.
    #[arg(long, value_name = "KEYS", conflicts_with = "read_only")]
    script: Option<String>,
    #[command(flatten)]
    screen: ScreenArgs,
    /// Serve what the screen shows as Prometheus metrics at http://ADDR/metrics
    /// (a port alone listens on loopback).
    #[arg(long, value_name = "ADDR", value_parser = cutover::metrics::parse_addr)]
    metrics: Option<std::net::SocketAddr>,
}

#[derive(Args)]
struct DemoArgs {
    /// Approximate total rows seeded into the source.
    #[arg(long, default_value_t = 1_000_000)]
    rows: u64,
    /// Writes per second the lab's app pods send to the database their config names.
    #[arg(long, default_value_t = 500)]
    load_rate: u32,
    /// Where the session log goes.
    #[arg(long, value_name = "DIR", default_value = "sessions")]
    session_dir: PathBuf,
    /// The target's PostgreSQL server binaries (default: an unpacked
    /// PostgreSQL 18 in target/pg18 or $CUTOVER_PG18_DIR, else the source's).
    #[arg(long, value_name = "DIR")]
    target_pg_bin: Option<PathBuf>,
    #[command(flatten)]
    screen: ScreenArgs,
    /// Serve what the screen shows as Prometheus metrics at http://ADDR/metrics
    /// (a port alone listens on loopback).
    #[arg(long, value_name = "ADDR", value_parser = cutover::metrics::parse_addr)]
    metrics: Option<std::net::SocketAddr>,
}

#[derive(Subcommand)]
enum LabCommand {
    /// Create and start the clusters, seed the source, print the config path.
    Up {
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
        #[arg(long, default_value_t = 1_000_000)]
        rows: u64,
        /// Writes per second the lab's app pods send to the database their config names.
        #[arg(long, default_value_t = 500)]
        writes: u32,
        /// The target's PostgreSQL server binaries (default: an unpacked
        /// PostgreSQL 18 in target/pg18 or $CUTOVER_PG18_DIR, else the source's).
        #[arg(long, value_name = "DIR")]
        target_pg_bin: Option<PathBuf>,
        /// Put PgBouncer (two instances, transaction pooling) between the
        /// app pods and the database (Debian's `pgbouncer` package).
        #[arg(long)]
        pooler: bool,
    },
    /// Stop the clusters and remove the lab directory.
    Down {
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
    /// Show whether the lab's clusters run, where its config is, and the
    /// app's acknowledged and failed writes per second and write-failure window.
    Status {
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
        /// Print the status as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Check that every write the lab's app was told succeeded is in the
    /// database its config (ConfigMap app-db) points at now; exit 1 naming what is missing.
    Audit {
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
    /// Run the lab's Kubernetes API simulator and app pods until SIGTERM
    /// (`lab up` starts this in the background).
    #[command(hide = true)]
    Serve {
        #[arg(long, value_name = "DIR")]
        dir: PathBuf,
        #[arg(long, default_value_t = 500)]
        writes: u32,
    },
}

const EXIT_CODES_HELP: &str =
    "Exit codes (every subcommand): 0 success; 1 the check found a problem \
(rows differ, a preflight check fails); 2 could not run (bad config, unreachable host, timeout); \
130 interrupted.";

fn main() -> ExitCode {
    let cli = Cli::parse();
    let json = cli.wants_json();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            return exit::report_error(
                &anyhow::anyhow!("cannot start the async runtime: {e}"),
                json,
            )
        }
    };
    let code = match rt.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => exit::report_error(&e, json),
    };
    // Background tasks (a server-side cancel that cannot reach a frozen host)
    // must not hold the exit: each has its own deadline, but not this long.
    rt.shutdown_timeout(std::time::Duration::from_secs(2));
    code
}

impl Cli {
    fn wants_json(&self) -> bool {
        match &self.command {
            Some(Command::Verify(v)) => v.json,
            Some(Command::Check(c)) => c.json,
            Some(Command::Lab {
                command: LabCommand::Status { json, .. },
            }) => *json,
            _ => false,
        }
    }
}

async fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Some(Command::Demo(args)) => demo(args).await,
        Some(Command::Lab { command }) => lab_command(command).await,
        Some(Command::Console(args)) => console(args).await,
        Some(Command::Verify(args)) => verify(args).await,
        Some(Command::Check(args)) => check(args).await,
        Some(Command::Replay(args)) => {
            let theme = cutover::ui::theme::Theme::from_env(&args.theme)?;
            runtime::run_replay(&args.session, &args.screen.display(theme)).await?;
            Ok(ExitCode::SUCCESS)
        }
        Some(Command::Follow(args)) => {
            let theme = cutover::ui::theme::Theme::from_env(&args.theme)?;
            runtime::run_follow(&args.session, &args.screen.display(theme)).await?;
            Ok(ExitCode::SUCCESS)
        }
        Some(Command::Report(args)) => report(args),
        Some(Command::Themes(args)) => cutover::ui::theme::preview::run(args),
        None => console(cli.console).await,
    }
}

fn report(args: ReportArgs) -> Result<ExitCode> {
    match &args.output {
        Some(out) => {
            cutover::report::write_many(&args.session, args.format, out)?;
            let logs: Vec<String> = args
                .session
                .iter()
                .map(|p| p.display().to_string())
                .collect();
            exit::note(&format!(
                "{} report of {} written to {}",
                args.format,
                logs.join(", "),
                out.display()
            ));
        }
        None => exit::print_stdout(&cutover::report::export_many(&args.session, args.format)?)?,
    }
    Ok(ExitCode::SUCCESS)
}

fn default_lab_dir(dir: Option<PathBuf>) -> PathBuf {
    dir.unwrap_or_else(|| lab::LabOptions::default().dir)
}

async fn lab_command(command: LabCommand) -> Result<ExitCode> {
    match command {
        LabCommand::Up {
            dir,
            rows,
            writes,
            target_pg_bin,
            pooler,
        } => {
            let opts = lab::LabOptions {
                dir: default_lab_dir(dir),
                rows,
                pooler,
                target_bin: lab::pgwheel::target_bin_or_cached(target_pg_bin),
                ..lab::LabOptions::default()
            };
            let info = lab::up(&opts).await?;
            exit::note(&lab::pgwheel::versions_note(&info));
            start_lab_app(&info.dir, writes).await?;
            exit::note(&info.replication_help());
            exit::print_stdout(&info.config_path.display().to_string())?;
        }
        LabCommand::Serve { dir, writes } => {
            let state = lab::read_state(&dir)?
                .ok_or_else(|| anyhow::anyhow!("no lab in {}", dir.display()))?;
            let sim = lab::start_kube(&dir, &state.app_database_url(), writes).await?;
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
            let mut int =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
            sim.shutdown().await;
        }
        LabCommand::Audit { dir } => {
            let report = lab::audit::audit(&default_lab_dir(dir)).await?;
            exit::print_stdout(&report.to_string())?;
            if !report.clean() {
                return Ok(ExitCode::from(exit::FOUND_PROBLEM));
            }
        }
        LabCommand::Down { dir } => {
            let dir = default_lab_dir(dir);
            lab::down(&dir)?;
            if let Some(kept) = lab::kept_sessions(&dir) {
                exit::note(&format!(
                    "cutover: kept the session logs in {} (the rest of the lab is gone)",
                    kept.display()
                ));
            }
        }
        LabCommand::Status { dir, json } => {
            let status = lab::status(&default_lab_dir(dir))?;
            if json {
                exit::print_stdout(&serde_json::to_string_pretty(&status.to_json())?)?;
            } else {
                exit::print_stdout(&status.to_string())?;
            }
            // Like every check: 1 when what it looked at is not all right.
            if !status.all_running() {
                return Ok(ExitCode::from(exit::FOUND_PROBLEM));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn console(args: ConsoleArgs) -> Result<ExitCode> {
    let path = match args.config {
        Some(p) => p,
        None => {
            let p = PathBuf::from("cutover.toml");
            if !p.exists() {
                anyhow::bail!(
                    "no cutover.toml in this directory: give one with -c FILE, \
                     or try the console on a throwaway lab with `cutover demo`"
                );
            }
            p
        }
    };
    let config = config::load(&path).map_err(|e| anyhow::anyhow!("{e}"))?;
    let script = args
        .script
        .as_deref()
        .map(runtime::script::Script::parse)
        .transpose()?;
    // A resumed session's trace goes beside its log.
    let resume_dir = args.resume.as_deref().map(|log| match log.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    });
    let (session_dir, named_by) = match (args.session_dir, resume_dir) {
        (Some(d), _) => (d, "--session-dir".to_string()),
        (None, Some(d)) => (d, "--resume".to_string()),
        (None, None) => (
            config.session.dir.clone(),
            format!("{}: session.dir", config.path.display()),
        ),
    };
    let _trace = init_tracing(&session_dir, &named_by)?;
    let mut resume = args.resume;
    if resume.is_none() && script.is_none() {
        resume = offer_resume(&config, &session_dir, args.read_only)?;
    }
    let end = runtime::run_console(
        Arc::new(config),
        ConsoleOptions {
            mode: "live".into(),
            session_dir: Some(session_dir),
            read_only: args.read_only,
            resume,
            script,
            refresh: std::time::Duration::from_secs_f64(args.screen.refresh),
            ascii: args.screen.ascii,
            metrics: args.metrics,
        },
    )
    .await?;
    if let Some(note) = &end.resumed {
        exit::note(note);
    }
    end.say();
    Ok(console_exit(&end))
}

/// When the newest session of this config ended without the operator
/// (a dropped SSH connection, a kill), offers to go on with it; on a
/// terminal, the answer is asked (Enter resumes), otherwise it is said.
fn offer_resume(config: &config::Config, dir: &Path, read_only: bool) -> Result<Option<PathBuf>> {
    use std::io::{BufRead, IsTerminal, Write};
    // A session of several databases is found by its first database's log.
    let first = config.fleet().swap_remove(0);
    let info = runtime::session_info(&first, "live", read_only);
    let Some((path, how)) = runtime::unfinished_session(dir, &info) else {
        return Ok(None);
    };
    if !std::io::stdin().is_terminal() {
        exit::note(&format!(
            "cutover: session {} {how}; resume it with --resume {}",
            path.display(),
            path.display()
        ));
        return Ok(None);
    }
    let mut err = std::io::stderr();
    write!(
        err,
        "cutover: session {} {how}.\nResume it (its runbook, its log)? [Y/n] ",
        path.display()
    )?;
    err.flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    let answer = answer.trim().to_ascii_lowercase();
    Ok((answer.is_empty() || answer == "y" || answer == "yes").then_some(path))
}

async fn verify(args: VerifyArgs) -> Result<ExitCode> {
    use cutover::session::TableRef;
    let config = config::load(&args.config).map_err(|e| anyhow::anyhow!("{e}"))?;
    let tables: Vec<TableRef> = if args.tables.is_empty() {
        let client = cutover::pg::collector::open_monitor_connection(
            &config.source,
            config.monitor.connect_timeout(),
            config.monitor.statement_timeout_ms,
        )
        .await?;
        let filter = |s: &str, t: &str| config.tables.matches(s, t);
        let deadline =
            cutover::pg::deadline_for(Duration::from_millis(config.monitor.statement_timeout_ms));
        let polled = cutover::pg::within(
            "source",
            &config.source,
            deadline,
            "listing the tables to verify",
            cutover::pg::monitor::poll_source(&client, &filter),
        )
        .await?;
        polled
            .map_err(|e| {
                anyhow::anyhow!(
                    "{}: {}",
                    config.source.describe(),
                    cutover::pg::error_text(&e)
                )
            })?
            .tables
            .into_iter()
            .map(|t| t.table)
            .collect()
    } else {
        args.tables
            .iter()
            .map(|t| match t.split_once('.') {
                Some((schema, name)) => TableRef::new(schema, name),
                None => TableRef::new("public", t.as_str()),
            })
            .collect()
    };
    if tables.is_empty() {
        anyhow::bail!("no tables to verify: the [tables] selection matches nothing on the source");
    }
    let mut opts = cutover::runtime::verify_task::options(&config);
    if let Some(p) = args.parallelism {
        opts.parallelism = p.max(1);
    }
    // Ctrl-C cancels the queries on both servers, then reports what was done.
    let (cancel_tx, cancel_rx) = tokio::sync::watch::channel(false);
    opts.cancel = Some(cancel_rx);
    let mut sigint = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;
    let interrupted = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    {
        let interrupted = interrupted.clone();
        tokio::spawn(async move {
            if sigint.recv().await.is_some() {
                interrupted.store(true, std::sync::atomic::Ordering::SeqCst);
                let _ = cancel_tx.send(true);
            }
        });
    }
    // A progress line only where someone watches it: not into pipes and CI logs.
    let quiet = args.json || !std::io::IsTerminal::is_terminal(&std::io::stderr());
    let result = cutover::verify::verify_tables(&config, &tables, &opts, |p| {
        if !quiet {
            use std::io::Write;
            let _ = write!(
                std::io::stderr().lock(),
                "\r{}: {}/{} ranges, {} rows, {} differences   ",
                p.table,
                p.ranges_done,
                p.ranges_total,
                p.rows_done,
                p.mismatches
            );
        }
    })
    .await;
    if !quiet {
        let _ = exit_stderr_newline();
    }
    // Interrupted: 130, whatever state the run was cut in.
    let report = match result {
        Err(e) if interrupted.load(std::sync::atomic::Ordering::SeqCst) => {
            exit::note(&format!("cutover: interrupted: {e:#}"));
            return Ok(ExitCode::from(exit::INTERRUPTED));
        }
        r => r?,
    };
    let errors = report
        .tables
        .iter()
        .any(|t| t.status == cutover::verify::TableStatus::Error);
    let code = if interrupted.load(std::sync::atomic::Ordering::SeqCst) {
        exit::INTERRUPTED
    } else if report.is_clean() {
        exit::SUCCESS
    } else if errors || report.cancelled {
        exit::COULD_NOT_RUN
    } else {
        exit::FOUND_PROBLEM
    };
    let text = if args.json {
        let mut doc = serde_json::to_value(&report)?;
        if let Some(obj) = doc.as_object_mut() {
            obj.insert("ok".into(), serde_json::Value::Bool(code == exit::SUCCESS));
            obj.insert("exit_code".into(), code.into());
        }
        serde_json::to_string_pretty(&doc)?
    } else {
        report.to_string()
    };
    exit::print_stdout(&text).context("printing the report")?;
    Ok(ExitCode::from(code))
}

async fn check(args: CheckArgs) -> Result<ExitCode> {
    use cutover::runbook::preflight::{evaluate_for, Check};
    let config = config::load(&args.config).map_err(|e| anyhow::anyhow!("{e}"))?;
    let facts = cutover::pg::preflight::gather(&config).await?;
    let mut checks = evaluate_for(&facts, &config);
    if let Some(k) = &config.kubernetes {
        checks.extend(kube_access_checks(k).await?);
    }
    let ok = checks.iter().all(|c| c.ok);
    let code = if ok {
        exit::SUCCESS
    } else {
        exit::FOUND_PROBLEM
    };
    let text = if args.json {
        serde_json::to_string_pretty(&serde_json::json!({
            "ok": ok,
            "exit_code": code,
            "source_db_ms": facts.source.elapsed_ms,
            "target_db_ms": facts.target.elapsed_ms,
            "checks": checks,
        }))?
    } else {
        let line = |c: &Check| {
            let mut l = format!(
                "{} {} — {}",
                if c.ok { "✔" } else { "✖" },
                c.name,
                c.observed
            );
            if let Some(fix) = &c.fix {
                l.push_str(&format!("\n    fix: {fix}"));
            }
            l
        };
        checks.iter().map(line).collect::<Vec<_>>().join("\n")
    };
    exit::print_stdout(&text).context("printing the checks")?;
    Ok(ExitCode::from(code))
}

/// Whether this identity may read the workloads and patch what the runbook patches.
async fn kube_access_checks(
    k: &config::KubeCfg,
) -> Result<Vec<cutover::runbook::preflight::Check>> {
    use cutover::kube;
    let conn = kube::connect(&cutover::runtime::kube_task::target(k)).await?;
    let object = k
        .config_object
        .as_deref()
        .and_then(kube::ConfigObject::parse);
    let checks = kube::preflight(
        &conn.client,
        kube::required_access(&conn.namespace, &k.deployments, object.as_ref(), k.changes),
    )
    .await?;
    Ok(checks
        .iter()
        .map(|c| cutover::runbook::preflight::Check {
            name: format!("Kubernetes: may {}", c.describe()),
            ok: c.allowed,
            observed: if c.allowed {
                "allowed".into()
            } else {
                format!(
                    "denied{}",
                    c.reason
                        .as_deref()
                        .map(|r| format!(": {r}"))
                        .unwrap_or_default()
                )
            },
            fix: (!c.allowed)
                .then(|| "grant this verb to the identity in the kubeconfig (RBAC)".into()),
        })
        .collect())
}

fn exit_stderr_newline() -> std::io::Result<()> {
    use std::io::Write;
    writeln!(std::io::stderr().lock())
}

fn console_exit(end: &runtime::ConsoleEnd) -> ExitCode {
    ExitCode::from(if end.interrupted {
        exit::INTERRUPTED
    } else {
        exit::SUCCESS
    })
}

/// Starts `cutover lab serve` in the background (its own session, so it
/// outlives this command and the terminal), records its pid for `lab down`,
/// and waits until its kubeconfig says the API answers.
async fn start_lab_app(dir: &Path, writes: u32) -> Result<()> {
    use std::os::unix::process::CommandExt;
    let kubeconfig = dir.join(lab::KUBECONFIG_FILE);
    if kubeconfig.exists() && lab::status(dir)?.app_pid.is_some() {
        return Ok(());
    }
    let _ = std::fs::remove_file(&kubeconfig);
    let log = std::fs::File::create(dir.join(lab::SERVE_LOG))?;
    let child = std::process::Command::new(std::env::current_exe()?)
        .args(["lab", "serve", "--writes", &writes.to_string(), "--dir"])
        .arg(dir)
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .process_group(0)
        .spawn()
        .context("starting the lab's Kubernetes simulator")?;
    lab::record_app_pid(dir, Some(child.id()))?;
    for _ in 0..100 {
        if kubeconfig.exists() {
            return Ok(());
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    anyhow::bail!(
        "the lab's Kubernetes simulator did not come up within 10 s; see {}",
        dir.join(lab::SERVE_LOG).display()
    )
}

/// Tears the demo lab down however the console ends (return, error or panic).
struct LabTeardown(PathBuf);

impl Drop for LabTeardown {
    fn drop(&mut self) {
        if let Err(e) = lab::down(&self.0) {
            exit::note(&format!(
                "cutover: tearing down the demo lab in {}: {e:#}",
                self.0.display()
            ));
        }
    }
}

async fn demo(args: DemoArgs) -> Result<ExitCode> {
    let dir = std::env::temp_dir().join(format!("cutover-demo-{}", std::process::id()));
    let opts = lab::LabOptions {
        dir: dir.clone(),
        rows: args.rows,
        load_rate: args.load_rate,
        target_bin: lab::pgwheel::target_bin_or_cached(args.target_pg_bin),
        pooler: false,
    };
    exit::note(&format!(
        "cutover demo: starting the lab in {} ({} rows)…",
        dir.display(),
        args.rows
    ));
    let teardown = LabTeardown(dir.clone());
    let info = lab::up(&opts).await?;
    exit::note(&lab::pgwheel::versions_note(&info));
    let config = config::load(&info.config_path).map_err(|e| anyhow::anyhow!("{e}"))?;
    let _trace = init_tracing(&args.session_dir, "--session-dir")?;
    // The app connects as its own role, as it does under `lab up`: the
    // freeze takes its privileges, which it neither owns nor can grant back.
    let sim = lab::start_kube(&dir, &lab::app_conninfo(info.source_port), args.load_rate).await?;
    let result = runtime::run_console(
        Arc::new(config),
        ConsoleOptions {
            mode: "demo".into(),
            session_dir: Some(args.session_dir.clone()),
            read_only: false,
            resume: None,
            script: None,
            refresh: std::time::Duration::from_secs_f64(args.screen.refresh),
            ascii: args.screen.ascii,
            metrics: args.metrics,
        },
    )
    .await;
    sim.shutdown().await;
    drop(teardown);
    let end = result?;
    end.say();
    Ok(console_exit(&end))
}

/// The terminal belongs to the UI: diagnostics go to a file beside the sessions.
/// `named_by` says where the directory came from, for the error.
fn init_tracing(dir: &Path, named_by: &str) -> Result<tracing_appender::non_blocking::WorkerGuard> {
    cutover::session::log::create_private_dir(dir).map_err(|e| {
        anyhow::anyhow!(
            "{named_by}: cannot create the session directory {}: {e}",
            dir.display()
        )
    })?;
    // Owner-only before the appender opens it: it names hosts and tables.
    let trace = dir.join("cutover-trace.log");
    cutover::session::log::create_private_file(&trace)
        .map_err(|e| anyhow::anyhow!("{}: {e}", trace.display()))?;
    let appender = tracing_appender::rolling::never(dir, "cutover-trace.log");
    let (writer, guard) = tracing_appender::non_blocking(appender);
    let filter = tracing_subscriber::EnvFilter::try_from_env("CUTOVER_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(false)
        .try_init();
    Ok(guard)
}
