use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};

use cutover::config;
use cutover::lab;
use cutover::runtime::{self, ConsoleOptions};

/// A terminal console for driving a live PostgreSQL migration cutover.
#[derive(Parser)]
#[command(
    name = "cutover",
    version,
    about,
    args_conflicts_with_subcommands = true
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
    },
    /// Stop the clusters and remove the lab directory.
    Down {
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
    /// Show whether the lab's clusters run, and where its config is.
    Status {
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

fn main() -> ExitCode {
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cutover: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("cutover: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Some(Command::Demo(args)) => demo(args).await,
        Some(Command::Lab { command }) => lab_command(command).await,
        Some(Command::Console(args)) => console(args).await,
        Some(Command::Verify(args)) => verify(args).await,
        None => console(cli.console).await,
    }
}

fn default_lab_dir(dir: Option<PathBuf>) -> PathBuf {
    dir.unwrap_or_else(|| lab::LabOptions::default().dir)
}

async fn lab_command(command: LabCommand) -> Result<ExitCode> {
    match command {
        LabCommand::Up { dir, rows, writes } => {
            let opts = lab::LabOptions {
                dir: default_lab_dir(dir),
                rows,
                ..lab::LabOptions::default()
            };
            let info = lab::up(&opts).await?;
            start_lab_app(&info.dir, writes).await?;
            eprintln!("{}", info.replication_help());
            println!("{}", info.config_path.display());
        }
        LabCommand::Serve { dir, writes } => {
            let state = lab::read_state(&dir)?
                .ok_or_else(|| anyhow::anyhow!("no lab in {}", dir.display()))?;
            let info_conninfo = state.source_conninfo();
            let sim = lab::start_kube(&dir, &info_conninfo, writes).await?;
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
        LabCommand::Down { dir } => {
            lab::down(&default_lab_dir(dir))?;
        }
        LabCommand::Status { dir } => {
            println!("{}", lab::status(&default_lab_dir(dir))?);
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
    let session_dir = args
        .session_dir
        .unwrap_or_else(|| config.session.dir.clone());
    let _trace = init_tracing(&session_dir)?;
    let log = runtime::run_console(
        Arc::new(config),
        ConsoleOptions {
            mode: "live".into(),
            session_dir: Some(session_dir),
            read_only: args.read_only,
        },
    )
    .await?;
    eprintln!("session recorded in {}", log.display());
    Ok(ExitCode::SUCCESS)
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
        cutover::pg::monitor::poll_source(&client, &filter)
            .await
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
    // A progress line only where someone watches it: not into pipes and CI logs.
    let quiet = args.json || !std::io::IsTerminal::is_terminal(&std::io::stderr());
    let report = cutover::verify::verify_tables(&config, &tables, &opts, |p| {
        if !quiet {
            eprint!(
                "\r{}: {}/{} ranges, {} rows, {} differences   ",
                p.table, p.ranges_done, p.ranges_total, p.rows_done, p.mismatches
            );
        }
    })
    .await?;
    if !quiet {
        eprintln!();
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!("{report}");
    }
    let errors = report
        .tables
        .iter()
        .any(|t| t.status == cutover::verify::TableStatus::Error);
    Ok(if report.is_clean() {
        ExitCode::SUCCESS
    } else if errors {
        ExitCode::from(2)
    } else {
        ExitCode::from(1)
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
            eprintln!(
                "cutover: tearing down the demo lab in {}: {e:#}",
                self.0.display()
            );
        }
    }
}

async fn demo(args: DemoArgs) -> Result<ExitCode> {
    let dir = std::env::temp_dir().join(format!("cutover-demo-{}", std::process::id()));
    let opts = lab::LabOptions {
        dir: dir.clone(),
        rows: args.rows,
        load_rate: args.load_rate,
    };
    eprintln!(
        "cutover demo: starting the lab in {} ({} rows)…",
        dir.display(),
        args.rows
    );
    let teardown = LabTeardown(dir.clone());
    let info = lab::up(&opts).await?;
    let config = config::load(&info.config_path).map_err(|e| anyhow::anyhow!("{e}"))?;
    let _trace = init_tracing(&args.session_dir)?;
    let sim = lab::start_kube(&dir, &info.source_conninfo, args.load_rate).await?;
    let result = runtime::run_console(
        Arc::new(config),
        ConsoleOptions {
            mode: "demo".into(),
            session_dir: Some(args.session_dir.clone()),
            read_only: false,
        },
    )
    .await;
    sim.shutdown().await;
    drop(teardown);
    let log = result?;
    eprintln!("session recorded in {}", log.display());
    Ok(ExitCode::SUCCESS)
}

/// The terminal belongs to the UI: diagnostics go to a file beside the sessions.
fn init_tracing(dir: &Path) -> Result<tracing_appender::non_blocking::WorkerGuard> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("creating session directory {}", dir.display()))?;
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
