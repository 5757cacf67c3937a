//! A local practice lab: two throwaway PostgreSQL clusters on loopback (a
//! seeded source with logical decoding enabled and an empty target), a config
//! file pointing `cutover` at them, and a write load to make replication move.
//!
//! Layout of the lab directory:
//!
//! ```text
//! <dir>/lab.json      state: ports, data dirs, versions, pids
//! <dir>/cutover.toml  config for `cutover` pointing at both clusters
//! <dir>/README.txt    how to set up replication by hand
//! <dir>/sessions/     session logs written while practising
//! <dir>/source/       source cluster (data dir, socket, postgres.log)
//! <dir>/target/       target cluster
//! ```

pub mod cluster;
pub mod kube_sim;
pub mod pgbin;
pub mod seed;

use std::fmt;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub use cluster::{Cluster, RunAs, SOURCE_CONF, TARGET_CONF};
/// The app pods' write rate when nobody asks for another (the hands-on lab's 500/s).
pub const DEFAULT_WRITES_PER_SEC: u32 = 500;
pub use pgbin::{PgBin, PgBinError};
pub use seed::{SeedPlan, SeedReport, SEED_DB};

pub const STATE_FILE: &str = "lab.json";
pub const CONFIG_FILE: &str = "cutover.toml";
pub const README_FILE: &str = "README.txt";
pub const SESSIONS_DIR: &str = "sessions";
/// Written by whoever runs the lab's Kubernetes API simulator.
pub const KUBECONFIG_FILE: &str = "kubeconfig";
const KUBECONFIG_TMP: &str = "kubeconfig.tmp";
/// Output of the background `cutover lab serve`.
pub const SERVE_LOG: &str = "serve.log";
/// The app's new DATABASE_URL (the target), read by the switch action.
/// A file, not a config field: in production this value is a secret.
pub const SWITCH_TO_FILE: &str = "target-database-url";
pub const SOURCE_NAME: &str = "source";
pub const TARGET_NAME: &str = "target";
pub const PUBLICATION: &str = "cutover_pub";
pub const SUBSCRIPTION: &str = "cutover_sub";
pub const DEFAULT_ROWS: u64 = 1_000_000;

/// lab.json is written here first and renamed, so readers never see half.
const STATE_TMP: &str = ".lab.json.tmp";

/// Bumped when lab.json changes incompatibly.
const STATE_FORMAT: u32 = 1;

/// Everything `down` may delete; anything else in the directory is left alone.
const LAB_ENTRIES: [&str; 11] = [
    SOURCE_NAME,
    TARGET_NAME,
    STATE_FILE,
    STATE_TMP,
    CONFIG_FILE,
    README_FILE,
    SESSIONS_DIR,
    KUBECONFIG_FILE,
    KUBECONFIG_TMP,
    SERVE_LOG,
    SWITCH_TO_FILE,
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabOptions {
    pub dir: PathBuf,
    /// Approximate total rows seeded across the source tables.
    pub rows: u64,
    /// Writes per second for the lab's app pods, recorded with the lab.
    pub load_rate: u32,
}

impl LabOptions {
    pub fn default_dir() -> PathBuf {
        std::env::temp_dir().join("cutover-lab")
    }
}

impl Default for LabOptions {
    fn default() -> Self {
        LabOptions {
            dir: Self::default_dir(),
            rows: DEFAULT_ROWS,
            load_rate: DEFAULT_WRITES_PER_SEC,
        }
    }
}

/// Contents of `<dir>/lab.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabState {
    pub format: u32,
    pub dir: PathBuf,
    pub bin_dir: PathBuf,
    pub server_version: String,
    pub server_major: u32,
    pub created_at: DateTime<Utc>,
    pub rows: u64,
    pub plan: SeedPlan,
    /// False until seeding finished; a lab stuck at false was interrupted.
    pub seeded: bool,
    pub seed_ms: Option<u64>,
    pub load_rate: u32,
    pub source: ClusterState,
    pub target: ClusterState,
    /// Pid of the process running the lab's app (`cutover lab serve`: the
    /// Kubernetes simulator and its writing pods), so `down` can stop it.
    pub app_pid: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterState {
    pub name: String,
    pub data_dir: PathBuf,
    pub port: u16,
    /// Postmaster pid when last started by `up`.
    pub pid: Option<u32>,
}

impl LabState {
    /// How the lab's own processes reach the seeded source database.
    pub fn source_conninfo(&self) -> String {
        format!(
            "host=127.0.0.1 port={} dbname={SEED_DB} user=postgres",
            self.source.port
        )
    }
}

impl ClusterState {
    fn of(c: &Cluster) -> ClusterState {
        ClusterState {
            name: c.name.clone(),
            data_dir: c.data_dir.clone(),
            port: c.port,
            pid: c.pid(),
        }
    }
}

/// What `up` produced.
#[derive(Debug, Clone)]
pub struct LabInfo {
    pub dir: PathBuf,
    pub config_path: PathBuf,
    pub readme_path: PathBuf,
    pub state_path: PathBuf,
    pub sessions_dir: PathBuf,
    pub source_conninfo: String,
    pub target_conninfo: String,
    pub source_port: u16,
    pub target_port: u16,
    pub bin: PgBin,
    pub plan: SeedPlan,
    pub load_rate: u32,
    /// Set when this call seeded (None when an existing lab was reused).
    pub seed: Option<SeedReport>,
    /// True when the clusters already existed and were reused, not created.
    pub reused: bool,
    /// Things the user should be told (e.g. "reusing the running lab").
    pub notes: Vec<String>,
}

impl LabInfo {
    /// The hand-driven replication walkthrough, also written to README.txt.
    pub fn replication_help(&self) -> String {
        replication_help(
            &self.dir,
            &self.config_path,
            &self.bin,
            &self.source_conninfo,
            &self.target_conninfo,
        )
    }
}

impl fmt::Display for LabInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for n in &self.notes {
            writeln!(f, "{n}")?;
        }
        writeln!(f, "lab:    {}", self.dir.display())?;
        writeln!(
            f,
            "source: {}  (PostgreSQL {})",
            self.source_conninfo, self.bin.version
        )?;
        writeln!(
            f,
            "target: {}  (PostgreSQL {})",
            self.target_conninfo, self.bin.version
        )?;
        if let Some(s) = &self.seed {
            writeln!(
                f,
                "seeded: {} rows in {:.1}s",
                s.plan.total(),
                s.elapsed.as_secs_f64()
            )?;
        }
        write!(f, "config: {}", self.config_path.display())
    }
}

/// Creates (or reuses) the lab in `opts.dir`: two clusters, seeded source,
/// config and README. Never touches a cluster it did not create; on failure
/// stops and removes whatever this call created.
pub async fn up(opts: &LabOptions) -> Result<LabInfo> {
    let dir = absolute(&opts.dir)?;
    let created_dir = !dir.exists();
    if created_dir {
        fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let mut undo = Undo {
        armed: true,
        lab_dir: dir.clone(),
        remove_lab_dir: created_dir,
        data_dirs: Vec::new(),
        started: Vec::new(),
        files: Vec::new(),
    };
    if let Some(r) = RunAs::detect()? {
        // The lab dir is ours to manage (down deletes it), so opening it up is
        // fine; its ancestors are not, so for those we only explain.
        if created_dir || r.check_traversable(&dir).is_err() {
            fs::set_permissions(&dir, fs::Permissions::from_mode(0o755))
                .with_context(|| format!("chmod 0755 {}", dir.display()))?;
        }
        r.check_traversable(&dir)?;
    }

    if dir.join(STATE_FILE).exists() {
        undo.armed = false;
        let d = dir.clone();
        let rows = opts.rows;
        return tokio::task::spawn_blocking(move || reuse(&d, rows)).await?;
    }
    for name in [SOURCE_NAME, TARGET_NAME] {
        let p = dir.join(name);
        if p.exists()
            && fs::read_dir(&p)
                .map(|mut d| d.next().is_some())
                .unwrap_or(true)
        {
            bail!(
                "{} exists but there is no {STATE_FILE}: leftovers of an interrupted lab or \
                 someone else's files; not touching them. Remove the lab with `cutover lab down` \
                 (same --dir) or pick another directory",
                p.display()
            );
        }
    }

    let info = up_fresh(&dir, opts, &mut undo).await?;
    undo.armed = false;
    Ok(info)
}

async fn up_fresh(dir: &Path, opts: &LabOptions, undo: &mut Undo) -> Result<LabInfo> {
    let bin = tokio::task::spawn_blocking(PgBin::find).await??;
    let src_dir = dir.join(SOURCE_NAME);
    let tgt_dir = dir.join(TARGET_NAME);
    undo.data_dirs = vec![src_dir.clone(), tgt_dir.clone()];

    // initdb is the slowest step of `up` for small labs; the two are independent.
    let (mut source, mut target) = {
        let (b1, b2) = (bin.clone(), bin.clone());
        let (s, t) = (src_dir.clone(), tgt_dir.clone());
        let src =
            tokio::task::spawn_blocking(move || Cluster::init(&b1, &s, SOURCE_NAME, SOURCE_CONF));
        let tgt =
            tokio::task::spawn_blocking(move || Cluster::init(&b2, &t, TARGET_NAME, TARGET_CONF));
        let (src, tgt) = (src.await?, tgt.await?);
        (src?, tgt?)
    };
    source = tokio::task::spawn_blocking(move || source.start().map(|_| source)).await??;
    undo.started.push(source.clone());
    target = tokio::task::spawn_blocking(move || target.start().map(|_| target)).await??;
    undo.started.push(target.clone());

    let plan = SeedPlan::for_rows(opts.rows);
    let mut state = LabState {
        format: STATE_FORMAT,
        dir: dir.to_path_buf(),
        bin_dir: bin.dir.clone(),
        server_version: bin.version.clone(),
        server_major: bin.major,
        created_at: Utc::now(),
        rows: opts.rows,
        plan,
        seeded: false,
        seed_ms: None,
        load_rate: opts.load_rate,
        source: ClusterState::of(&source),
        target: ClusterState::of(&target),
        app_pid: None,
    };
    // Written before seeding so `down` can find the clusters even if this
    // process is killed mid-seed.
    write_state(dir, &state)?;
    undo.files.push(dir.join(STATE_FILE));

    seed::create_database(&source.conninfo("postgres"), SEED_DB).await?;
    seed::create_database(&target.conninfo("postgres"), SEED_DB).await?;
    let src_app = source.conninfo(SEED_DB);
    let tgt_app = target.conninfo(SEED_DB);
    let (report, target_ready) = tokio::join!(
        seed::seed_source(&src_app, &plan),
        seed::prepare_target(&tgt_app)
    );
    let report = report.with_context(|| format!("seeding the source ({src_app})"))?;
    target_ready.with_context(|| format!("preparing the target ({tgt_app})"))?;

    state.seeded = true;
    state.seed_ms = Some(report.elapsed.as_millis() as u64);
    write_state(dir, &state)?;

    let sessions = dir.join(SESSIONS_DIR);
    fs::create_dir_all(&sessions)?;
    undo.files.push(sessions);
    undo.files.push(dir.join(CONFIG_FILE));
    undo.files.push(dir.join(README_FILE));
    let mut info = info_from_state(&state, bin)?;
    write_config_and_readme(&info)?;
    info.seed = Some(report);
    Ok(info)
}

/// Brings an existing lab back: starts stopped clusters, rewrites config and
/// README only if they are missing or a port changed.
fn reuse(dir: &Path, rows: u64) -> Result<LabInfo> {
    let mut state =
        read_state(dir)?.ok_or_else(|| anyhow!("{} vanished", dir.join(STATE_FILE).display()))?;
    if !state.seeded {
        bail!(
            "the lab in {} was never fully set up (interrupted while seeding?); remove it with \
             `cutover lab down` (same --dir) and run `up` again",
            dir.display()
        );
    }
    let bin = PgBin::from_dir(&state.bin_dir).or_else(|_| PgBin::find())?;
    if bin.major != state.server_major {
        bail!(
            "the lab in {} was made with PostgreSQL {} but only {} is available now; remove it \
             with `cutover lab down` and run `up` again",
            dir.display(),
            state.server_version,
            bin
        );
    }
    let mut notes = Vec::new();
    let mut started = Vec::new();
    let mut ports_changed = false;
    for cs in [&mut state.source, &mut state.target] {
        let mut c = Cluster::open(&bin, &cs.data_dir, &cs.name)?;
        if c.is_running() {
            notes.push(format!(
                "{} cluster already running on port {}; reusing it",
                c.name, c.port
            ));
        } else {
            c.start()?;
            notes.push(format!(
                "{} cluster was stopped; started it on port {}",
                c.name, c.port
            ));
            started.push(c.name.clone());
        }
        ports_changed |= cs.port != c.port;
        *cs = ClusterState::of(&c);
    }
    if rows != state.rows {
        notes.push(format!(
            "reusing the lab seeded with ~{} rows; the requested row count ({rows}) applies only \
             to a new lab (run `cutover lab down` first)",
            state.rows
        ));
    }
    write_state(dir, &state)?;
    let mut info = info_from_state(&state, bin)?;
    info.reused = true;
    info.notes = notes;
    let missing = !info.config_path.exists() || !info.readme_path.exists();
    if missing || ports_changed {
        write_config_and_readme(&info)?;
    }
    fs::create_dir_all(&info.sessions_dir)?;
    tracing::info!(dir = %dir.display(), ?started, "reusing existing lab");
    Ok(info)
}

/// Rolls back a half-done `up`. Runs on drop so that a cancelled `up` future
/// (Ctrl-C) cleans up too.
struct Undo {
    armed: bool,
    lab_dir: PathBuf,
    remove_lab_dir: bool,
    data_dirs: Vec<PathBuf>,
    started: Vec<Cluster>,
    files: Vec<PathBuf>,
}

impl Drop for Undo {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        for c in self.started.iter().rev() {
            if let Err(e) = c.stop() {
                tracing::warn!("cleanup after failed lab up: {e:#}");
                let _ = cluster::signal_stop(&c.data_dir, Duration::from_secs(30));
            }
        }
        // A start that was cancelled mid-way is not in `started` yet but may
        // have left a postmaster behind.
        for d in &self.data_dirs {
            let _ = cluster::signal_stop(d, Duration::from_secs(30));
        }
        for p in self.data_dirs.iter().chain(&self.files) {
            let _ = remove_path(p);
        }
        if self.remove_lab_dir {
            let _ = fs::remove_dir(&self.lab_dir);
        }
    }
}

/// Stops the lab's clusters (and a recorded app process) and deletes the lab's
/// files. Fine if the lab is already down or never existed. Leaves files it did
/// not create, and refuses to touch a directory that is not a lab.
pub fn down(dir: &Path) -> Result<()> {
    let dir = absolute(dir)?;
    if !dir.exists() {
        return Ok(());
    }
    let state = match read_state(&dir) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!("{e:#}; stopping whatever clusters are in {}", dir.display());
            None
        }
    };
    let looks_like_lab =
        state.is_some() || LAB_ENTRIES.iter().any(|e| dir.join(e).exists()) || is_empty_dir(&dir);
    if !looks_like_lab {
        bail!(
            "{} does not look like a cutover lab (no {STATE_FILE}); not removing it",
            dir.display()
        );
    }

    if let Some(pid) = state.as_ref().and_then(|s| s.app_pid) {
        kill_app(pid);
    }

    let bin = state
        .as_ref()
        .and_then(|s| PgBin::from_dir(&s.bin_dir).ok())
        .or_else(|| PgBin::find().ok());
    let run_as = RunAs::detect()?;
    let data_dirs: Vec<(String, PathBuf)> = match &state {
        Some(s) => vec![
            (s.source.name.clone(), s.source.data_dir.clone()),
            (s.target.name.clone(), s.target.data_dir.clone()),
        ],
        None => vec![
            (SOURCE_NAME.into(), dir.join(SOURCE_NAME)),
            (TARGET_NAME.into(), dir.join(TARGET_NAME)),
        ],
    };
    let mut errors = Vec::new();
    for (name, data_dir) in &data_dirs {
        if !data_dir.join("postmaster.pid").exists() {
            continue;
        }
        let stopped = match &bin {
            Some(bin) => Cluster {
                name: name.clone(),
                data_dir: data_dir.clone(),
                port: 0,
                bin: bin.clone(),
                run_as,
            }
            .stop(),
            None => Err(anyhow!("no pg_ctl available")),
        };
        if let Err(e) = stopped {
            tracing::warn!("{e:#}; falling back to signalling the postmaster");
            if let Err(e2) = cluster::signal_stop(data_dir, Duration::from_secs(60)) {
                errors.push(format!("{name}: {e:#}; then: {e2:#}"));
            }
        }
    }
    if !errors.is_empty() {
        bail!(
            "could not stop the lab clusters in {} (left their files in place): {}",
            dir.display(),
            errors.join("; ")
        );
    }

    for e in LAB_ENTRIES {
        remove_path(&dir.join(e)).with_context(|| format!("removing {}", dir.join(e).display()))?;
    }
    // Data dirs recorded elsewhere (lab.json from an older layout) go too.
    for (_, d) in &data_dirs {
        if d.exists() {
            remove_path(d)?;
        }
    }
    if is_empty_dir(&dir) {
        fs::remove_dir(&dir).with_context(|| format!("removing {}", dir.display()))?;
    } else {
        tracing::warn!(
            "left {} in place: it holds files the lab did not create",
            dir.display()
        );
    }
    Ok(())
}

/// Records (or clears) the pid of the process running the lab's app, so that
/// `down` can stop it.
pub fn record_app_pid(dir: &Path, pid: Option<u32>) -> Result<()> {
    let mut state = read_state(dir)?
        .ok_or_else(|| anyhow!("no lab in {} (missing {STATE_FILE})", dir.display()))?;
    state.app_pid = pid;
    write_state(dir, &state)
}

fn kill_app(pid: u32) {
    use nix::sys::signal::{kill, Signal};
    use nix::unistd::Pid;
    if pid == std::process::id() {
        return;
    }
    // The pid may have been recycled since it was recorded; only signal a
    // process that is plausibly ours.
    let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    if !String::from_utf8_lossy(&cmdline).contains("cutover") {
        return;
    }
    let _ = kill(Pid::from_raw(pid as i32), Signal::SIGTERM);
}

/// Per-cluster status line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterStatus {
    pub name: String,
    pub port: u16,
    pub running: bool,
    pub pid: Option<u32>,
    pub version: String,
    pub data_dir: PathBuf,
}

/// What `status` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabStatus {
    pub dir: PathBuf,
    /// False when there is no lab (no lab.json) in `dir`.
    pub present: bool,
    pub seeded: bool,
    pub config_path: Option<PathBuf>,
    pub clusters: Vec<ClusterStatus>,
    pub app_pid: Option<u32>,
}

impl LabStatus {
    pub fn all_running(&self) -> bool {
        self.present && !self.clusters.is_empty() && self.clusters.iter().all(|c| c.running)
    }
}

impl fmt::Display for LabStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.present {
            return write!(
                f,
                "no lab in {} (start one with `cutover lab up`)",
                self.dir.display()
            );
        }
        writeln!(f, "lab {}", self.dir.display())?;
        for c in &self.clusters {
            writeln!(
                f,
                "  {:<7} port {:<5}  {:<7}  PostgreSQL {}{}",
                c.name,
                c.port,
                if c.running { "running" } else { "stopped" },
                c.version,
                c.pid
                    .filter(|_| c.running)
                    .map(|p| format!("  pid {p}"))
                    .unwrap_or_default()
            )?;
        }
        if !self.seeded {
            writeln!(
                f,
                "  (seeding never finished: run `cutover lab down`, then `up`)"
            )?;
        }
        if let Some(pid) = self.app_pid {
            writeln!(f, "  app (lab serve) pid {pid}")?;
        }
        match &self.config_path {
            Some(p) => write!(f, "  config {}", p.display()),
            None => write!(f, "  config (not written)"),
        }
    }
}

/// Reads lab.json and checks each cluster. Never starts or stops anything.
pub fn status(dir: &Path) -> Result<LabStatus> {
    let dir = absolute(dir)?;
    let Some(state) = read_state(&dir)? else {
        return Ok(LabStatus {
            dir,
            present: false,
            seeded: false,
            config_path: None,
            clusters: Vec::new(),
            app_pid: None,
        });
    };
    let bin = PgBin::from_dir(&state.bin_dir).ok();
    let run_as = RunAs::detect()?;
    let clusters = [&state.source, &state.target]
        .into_iter()
        .map(|cs| {
            let port = Cluster::open(&fallback_bin(&state), &cs.data_dir, &cs.name)
                .map(|c| c.port)
                .unwrap_or(cs.port);
            let running = match &bin {
                Some(bin) => Cluster {
                    name: cs.name.clone(),
                    data_dir: cs.data_dir.clone(),
                    port,
                    bin: bin.clone(),
                    run_as,
                }
                .is_running(),
                None => pid_alive(cluster::postmaster_pid(&cs.data_dir)),
            };
            ClusterStatus {
                name: cs.name.clone(),
                port,
                running,
                pid: cluster::postmaster_pid(&cs.data_dir),
                version: state.server_version.clone(),
                data_dir: cs.data_dir.clone(),
            }
        })
        .collect();
    let config = dir.join(CONFIG_FILE);
    Ok(LabStatus {
        present: true,
        seeded: state.seeded,
        config_path: config.exists().then_some(config),
        clusters,
        app_pid: state.app_pid.filter(|p| pid_alive(Some(*p))),
        dir,
    })
}

/// A PgBin from the recorded state without probing `postgres`, enough for
/// reading a cluster's port even when the binaries are gone.
fn fallback_bin(state: &LabState) -> PgBin {
    PgBin {
        dir: state.bin_dir.clone(),
        version: state.server_version.clone(),
        major: state.server_major,
    }
}

fn pid_alive(pid: Option<u32>) -> bool {
    pid.is_some_and(|p| nix::sys::signal::kill(nix::unistd::Pid::from_raw(p as i32), None).is_ok())
}

/// `Ok(None)` when the directory has no lab.json.
pub fn read_state(dir: &Path) -> Result<Option<LabState>> {
    let path = dir.join(STATE_FILE);
    let text = match fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let state: LabState =
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    if state.format != STATE_FORMAT {
        bail!(
            "{} has format {} (expected {STATE_FORMAT}); remove the lab with `cutover lab down`",
            path.display(),
            state.format
        );
    }
    Ok(Some(state))
}

fn write_state(dir: &Path, state: &LabState) -> Result<()> {
    let path = dir.join(STATE_FILE);
    let tmp = dir.join(STATE_TMP);
    fs::write(&tmp, serde_json::to_string_pretty(state)? + "\n")
        .with_context(|| format!("writing {}", tmp.display()))?;
    fs::rename(&tmp, &path).with_context(|| format!("writing {}", path.display()))
}

fn info_from_state(state: &LabState, bin: PgBin) -> Result<LabInfo> {
    let dir = &state.dir;
    let conninfo = |port: u16| format!("host=127.0.0.1 port={port} dbname={SEED_DB} user=postgres");
    Ok(LabInfo {
        dir: dir.clone(),
        config_path: dir.join(CONFIG_FILE),
        readme_path: dir.join(README_FILE),
        state_path: dir.join(STATE_FILE),
        sessions_dir: dir.join(SESSIONS_DIR),
        source_conninfo: conninfo(state.source.port),
        target_conninfo: conninfo(state.target.port),
        source_port: state.source.port,
        target_port: state.target.port,
        bin,
        plan: state.plan,
        load_rate: state.load_rate,
        seed: None,
        reused: false,
        notes: Vec::new(),
    })
}

fn write_config_and_readme(info: &LabInfo) -> Result<()> {
    let toml = config_toml(info);
    fs::write(&info.config_path, toml)
        .with_context(|| format!("writing {}", info.config_path.display()))?;
    fs::write(&info.readme_path, info.replication_help())
        .with_context(|| format!("writing {}", info.readme_path.display()))?;
    write_private(&info.dir.join(SWITCH_TO_FILE), &info.target_conninfo)
}

/// Written owner-only from the start, like a mounted secret.
fn write_private(path: &Path, text: &str) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    writeln!(f, "{text}").with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// A TOML basic string (quoted and escaped).
fn toml_str(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

/// The lab's cutover.toml. The schema is shared with the config loader.
pub fn config_toml(info: &LabInfo) -> String {
    // The header already shows each side's role and server version: the label
    // only has to tell the clusters apart, in the words a migration uses.
    let label = |role: &str| if role == "source" { "old" } else { "new" }.to_string();
    format!(
        "# Written by `cutover lab up` for the throwaway lab in {dir_comment}.\n\
         # Both clusters listen on 127.0.0.1 only and trust local connections.\n\
         \n\
         [source]\n\
         dsn = {src}\n\
         label = {src_label}\n\
         \n\
         [target]\n\
         dsn = {tgt}\n\
         label = {tgt_label}\n\
         \n\
         [replication]\n\
         publication = {publication}\n\
         subscription = {subscription}\n\
         \n\
         [tables]\n\
         include = [\"public.*\"]\n\
         \n\
         [monitor]\n\
         refresh_ms = 1000\n\
         statement_timeout_ms = 2000\n\
         \n\
         [session]\n\
         # Relative to this file.\n\
         dir = {sessions}\n\
         \n\
         [verify]\n\
         # The app pods stamp every insert and update: live verification\n\
         # compares only rows older than the lag window.\n\
         updated_at = {{ \"public.app_writes\" = \"at\" }}\n\
         # audit_log has no primary key, but its id identifies a row.\n\
         keys = {{ \"public.audit_log\" = [\"id\"] }}\n\
         \n\
         [kubernetes]\n\
         # The lab's API simulator (started by `cutover lab up` or `cutover demo`).\n\
         kubeconfig = {kubeconfig}\n\
         context = {context}\n\
         namespace = {namespace}\n\
         deployments = [{deployment}]\n\
         config_object = {config_object}\n\
         config_key = {config_key}\n\
         # The value the switch writes: the target, as the app connects to it.\n\
         switch_to_file = {switch_to}\n\
         \n\
         [lab]\n\
         dir = {dir}\n",
        kubeconfig = toml_str(KUBECONFIG_FILE),
        context = toml_str(kube_sim::LAB_CONTEXT),
        namespace = toml_str(kube_sim::LAB_NAMESPACE),
        deployment = toml_str(kube_sim::APP_DEPLOYMENT),
        config_object = toml_str(&format!("configmap/{}", kube_sim::APP_CONFIGMAP)),
        config_key = toml_str(kube_sim::DB_ENV),
        switch_to = toml_str(SWITCH_TO_FILE),
        dir_comment = info.dir.display(),
        src = toml_str(&info.source_conninfo),
        src_label = toml_str(&label("source")),
        tgt = toml_str(&info.target_conninfo),
        tgt_label = toml_str(&label("target")),
        publication = toml_str(PUBLICATION),
        subscription = toml_str(SUBSCRIPTION),
        sessions = toml_str(SESSIONS_DIR),
        dir = toml_str(&info.dir.to_string_lossy()),
    )
}

/// Quotes for a POSIX shell only when needed, so the common case stays readable.
fn sh_quote(s: &str) -> String {
    let safe = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+=:,@".contains(c));
    if safe {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

fn replication_help(dir: &Path, config: &Path, bin: &PgBin, src: &str, tgt: &str) -> String {
    let psql = sh_quote(&bin.psql().to_string_lossy());
    let pg_dump = sh_quote(&bin.pg_dump().to_string_lossy());
    let dir_q = sh_quote(&dir.to_string_lossy());
    format!(
        r#"cutover lab
===========

Lab directory: {dir}

Two throwaway PostgreSQL {version} clusters on 127.0.0.1 (trust auth, lab only):

  source  {src}
          seeded database `app`; wal_level=logical
  target  {tgt}
          empty database `app` (no tables yet)

Config for cutover: {config}

Connect:

  {psql} "{src}"
  {psql} "{tgt}"

Set up logical replication by hand
----------------------------------

1. Copy the schema to the target (replication copies rows, not DDL):

  {pg_dump} --schema-only --no-owner --no-privileges "{src}" \
    | {psql} -X -q -v ON_ERROR_STOP=1 "{tgt}"

2. Publish every table on the source:

  {psql} "{src}" -c "CREATE PUBLICATION {publication} FOR ALL TABLES;"

   Note: public.events has no primary key, on purpose. Once it is published,
   UPDATE and DELETE on it fail until it has a replica identity, e.g.
   {psql} "{src}" -c "ALTER TABLE events REPLICA IDENTITY FULL;"

3. Subscribe on the target (copies the existing rows, then streams changes):

  {psql} "{tgt}" -c "CREATE SUBSCRIPTION {subscription} CONNECTION '{src}' PUBLICATION {publication};"

4. Watch it catch up:

  {psql} "{tgt}" -c "SELECT subname, received_lsn, latest_end_lsn, last_msg_receipt_time FROM pg_stat_subscription;"
  {psql} "{tgt}" -c "SELECT srrelid::regclass, srsubstate FROM pg_subscription_rel;"
  {psql} "{src}" -c "SELECT slot_name, active, pg_size_pretty(pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)) AS lag FROM pg_replication_slots;"

5. Sequences are not replicated: before sending writes to the target, move
   them past the source's values, e.g.

  {psql} "{tgt}" -c "SELECT setval('users_id_seq', (SELECT max(id) FROM users));"

Tear down
---------

  {psql} "{tgt}" -c "DROP SUBSCRIPTION {subscription};"
  {psql} "{src}" -c "DROP PUBLICATION {publication};"
  cutover lab down --dir {dir_q}
"#,
        dir = dir.display(),
        version = bin.version,
        config = config.display(),
        publication = PUBLICATION,
        subscription = SUBSCRIPTION,
    )
}

fn absolute(p: &Path) -> Result<PathBuf> {
    if p.is_absolute() {
        Ok(p.to_path_buf())
    } else {
        Ok(std::env::current_dir()?.join(p))
    }
}

fn is_empty_dir(p: &Path) -> bool {
    fs::read_dir(p)
        .map(|mut d| d.next().is_none())
        .unwrap_or(false)
}

fn remove_path(p: &Path) -> std::io::Result<()> {
    match fs::symlink_metadata(p) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
        Ok(m) if m.is_dir() => fs::remove_dir_all(p),
        Ok(_) => fs::remove_file(p),
    }
}

/// Starts the lab's Kubernetes API simulator with the `app` Deployment, whose
/// pods write to `database_url` at `writes_per_sec`, and writes its kubeconfig
/// where the lab's cutover.toml expects it.
pub async fn start_kube(
    dir: &Path,
    database_url: &str,
    writes_per_sec: u32,
) -> Result<kube_sim::SimHandle> {
    let sim = kube_sim::start(kube_sim::SimOptions {
        database_url: Some(database_url.to_string()),
        writes_per_sec,
        ..kube_sim::SimOptions::default()
    })
    .await
    .context("starting the Kubernetes API simulator")?;
    // Written last and atomically: its presence means the API answers.
    let tmp = dir.join(KUBECONFIG_TMP);
    sim.write_kubeconfig(&tmp, kube_sim::LAB_NAMESPACE)?;
    fs::rename(&tmp, dir.join(KUBECONFIG_FILE)).context("writing the lab kubeconfig")?;
    Ok(sim)
}

/// The lab's README step 1 as a function: `pg_dump --schema-only` of the
/// source piped into `psql` on the target, stopping at the first error.
pub fn copy_schema(bin: &PgBin, source: &str, target: &str) -> Result<()> {
    use std::process::{Command, Stdio};
    let mut dump = Command::new(bin.pg_dump())
        .args([
            "--schema-only",
            "--no-owner",
            "--no-privileges",
            "-d",
            source,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("running pg_dump")?;
    let stdout = dump.stdout.take().context("pg_dump output")?;
    let restore = Command::new(bin.psql())
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", target])
        .stdin(Stdio::from(stdout))
        .output()
        .context("running psql")?;
    let dumped = dump.wait_with_output().context("waiting for pg_dump")?;
    if !dumped.status.success() {
        bail!(
            "pg_dump --schema-only failed: {}",
            String::from_utf8_lossy(&dumped.stderr).trim()
        );
    }
    if !restore.status.success() {
        bail!(
            "restoring the schema on the target failed: {}",
            String::from_utf8_lossy(&restore.stderr).trim()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info() -> LabInfo {
        let dir = PathBuf::from("/tmp/lab dir");
        LabInfo {
            config_path: dir.join(CONFIG_FILE),
            readme_path: dir.join(README_FILE),
            state_path: dir.join(STATE_FILE),
            sessions_dir: dir.join(SESSIONS_DIR),
            dir,
            source_conninfo: "host=127.0.0.1 port=5001 dbname=app user=postgres".into(),
            target_conninfo: "host=127.0.0.1 port=5002 dbname=app user=postgres".into(),
            source_port: 5001,
            target_port: 5002,
            bin: PgBin {
                dir: "/usr/lib/postgresql/15/bin".into(),
                version: "15.18".into(),
                major: 15,
            },
            plan: SeedPlan::for_rows(1000),
            load_rate: 50,
            seed: None,
            reused: false,
            notes: vec![],
        }
    }

    #[test]
    fn config_toml_has_the_shared_schema() {
        let text = config_toml(&info());
        let v: toml::Value = toml::from_str(&text).unwrap();
        assert_eq!(
            v["source"]["dsn"].as_str(),
            Some("host=127.0.0.1 port=5001 dbname=app user=postgres")
        );
        assert_eq!(v["source"]["label"].as_str(), Some("old"));
        assert_eq!(v["target"]["label"].as_str(), Some("new"));
        assert_eq!(
            v["replication"]["publication"].as_str(),
            Some("cutover_pub")
        );
        assert_eq!(
            v["replication"]["subscription"].as_str(),
            Some("cutover_sub")
        );
        assert_eq!(v["tables"]["include"][0].as_str(), Some("public.*"));
        assert_eq!(v["monitor"]["refresh_ms"].as_integer(), Some(1000));
        assert_eq!(
            v["monitor"]["statement_timeout_ms"].as_integer(),
            Some(2000)
        );
        assert_eq!(v["session"]["dir"].as_str(), Some("sessions"));
        assert_eq!(v["lab"]["dir"].as_str(), Some("/tmp/lab dir"));
    }

    #[test]
    fn help_fills_in_ports_and_quotes_paths() {
        let h = info().replication_help();
        assert!(h.contains("CREATE PUBLICATION cutover_pub FOR ALL TABLES;"));
        assert!(h.contains(
            "CREATE SUBSCRIPTION cutover_sub CONNECTION 'host=127.0.0.1 port=5001 dbname=app user=postgres' PUBLICATION cutover_pub;"
        ));
        assert!(h.contains("--schema-only"));
        assert!(h.contains("port=5002"));
        assert!(h.contains("cutover lab down --dir '/tmp/lab dir'"));
    }

    #[test]
    fn sh_quote_only_when_needed() {
        assert_eq!(sh_quote("/usr/bin/psql"), "/usr/bin/psql");
        assert_eq!(sh_quote("a b"), "'a b'");
        assert_eq!(sh_quote("it's"), r"'it'\''s'");
    }
}
