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
//! <dir>-sessions/     session logs written while practising: beside the
//!                     lab, not in it, so `lab down` leaves them (an older
//!                     lab's <dir>/sessions/ is kept when it holds a log)
//! <dir>/witness.json  what the app pods measured (see [`witness`])
//! <dir>/witness/      the ids of the app's acknowledged writes, per pod
//! <dir>/source/       source cluster (data dir, socket, postgres.log)
//! <dir>/target/       target cluster
//! ```

pub mod audit;
pub mod cluster;
mod files;
pub mod kube_sim;
pub mod pgbin;
pub mod pgwheel;
pub mod pooler;
pub mod seed;
mod state;
mod status;
mod status_app;
pub mod witness;

use std::fmt;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use chrono::Utc;

pub use cluster::{Cluster, RunAs, SOURCE_CONF, TARGET_CONF};
/// The app pods' write rate when nobody asks for another (the hands-on lab's 500/s).
pub const DEFAULT_WRITES_PER_SEC: u32 = 500;
pub use files::{config_toml, copy_schema};
use files::{replication_help, write_config_and_readme};
pub use pgbin::{PgBin, PgBinError};
pub use seed::{SeedPlan, SeedReport, SEED_DB};
use state::{check_versions, live_bin, write_state, STATE_FORMAT, STATE_TMP};
pub use state::{read_state, record_app_pid, ClusterState, LabState};
pub use status::{status, ClusterStatus, LabStatus};

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
/// The role the lab's app pods connect as: not a superuser and owner of no
/// table, so a write freeze that revokes its privileges holds. cutover
/// itself connects as `postgres`.
pub const APP_ROLE: &str = "app";
/// The role a copy Job connects as (`[runbook] copy = "job"`): a superuser
/// the clusters ask for a password (SCRAM, the only role they do), so a
/// Job with a wrong password file fails as it would in production.
pub const COPY_ROLE: &str = "cutover_copy";
/// The password file for [`COPY_ROLE`] on both clusters (owner-only), and
/// the Secret the simulator makes of it, key `pgpass`.
pub const COPY_PGPASS_FILE: &str = "copy.pgpass";
pub const COPY_SECRET: &str = "cutover-copy-pgpass";
/// Where the simulator's Job pods keep their volumes.
const PODS_DIR: &str = "pods";

/// How the lab's app reaches the seeded database on the cluster at `port`:
/// as [`APP_ROLE`] (the ConfigMap's DATABASE_URL and the switch's value).
pub fn app_conninfo(port: u16) -> String {
    format!("host=127.0.0.1 port={port} dbname={SEED_DB} user={APP_ROLE}")
}

/// Everything `down` may delete; anything else in the directory is left alone.
const LAB_ENTRIES: [&str; 17] = [
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
    COPY_PGPASS_FILE,
    PODS_DIR,
    pooler::POOLER_DIR,
    witness::WITNESS_FILE,
    witness::WITNESS_TMP,
    witness::JOURNAL_DIR,
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabOptions {
    pub dir: PathBuf,
    /// Approximate total rows seeded across the source tables.
    pub rows: u64,
    /// Writes per second for the lab's app pods, recorded with the lab.
    pub load_rate: u32,
    /// Directory with the target's server binaries (e.g. PostgreSQL 18 for
    /// a major-version upgrade lab); `None`: the source's. Must not be an
    /// older major than the source's. Only used when creating a lab.
    pub target_bin: Option<PathBuf>,
    /// PgBouncer between the app and the database ([`pooler`]).
    pub pooler: bool,
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
            target_bin: None,
            pooler: false,
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
    /// The source's binaries (see [`LabInfo::source_bin`]).
    pub bin: PgBin,
    /// The target's binaries: the source's, or a newer major.
    pub target_bin: PgBin,
    pub plan: SeedPlan,
    pub load_rate: u32,
    /// Set when this call seeded (None when an existing lab was reused).
    pub seed: Option<SeedReport>,
    /// True when the clusters already existed and were reused, not created.
    pub reused: bool,
    /// Things the user should be told (e.g. "reusing the running lab").
    pub notes: Vec<String>,
    /// The PgBouncer instances between the app and the source, if any.
    pub pooler: Option<pooler::PoolerState>,
}

impl LabInfo {
    /// The hand-driven replication walkthrough, also written to README.txt.
    pub fn replication_help(&self) -> String {
        replication_help(self)
    }

    /// The source's binaries (the same as `bin`).
    pub fn source_bin(&self) -> &PgBin {
        &self.bin
    }

    /// The newer of the two toolchains, for pg_dump (which must be at least
    /// as new as the server it dumps) and psql.
    pub fn client_bin(&self) -> &PgBin {
        if self.target_bin.major > self.bin.major {
            &self.target_bin
        } else {
            &self.bin
        }
    }

    /// "source PostgreSQL 15.18, target PostgreSQL 18.6"
    pub fn versions(&self) -> String {
        format!(
            "source PostgreSQL {}, target PostgreSQL {}",
            self.bin.version, self.target_bin.version
        )
    }

    /// The README's step 1 ([`copy_schema`]) with the right client tools.
    pub fn copy_schema(&self) -> Result<()> {
        copy_schema(
            self.client_bin(),
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
            self.target_conninfo, self.target_bin.version
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
        let d2 = dir.clone();
        let (rows, target_bin) = (opts.rows, opts.target_bin.clone());
        let mut info =
            tokio::task::spawn_blocking(move || reuse(&d, rows, target_bin.as_deref())).await??;
        if ensure_app_role(&info).await? {
            info.notes.push(format!(
                "created the app's role {APP_ROLE} (this lab predates it)"
            ));
        }
        ensure_copy_role(&info).await?;
        ensure_pooler(&d2, opts.pooler)?;
        return Ok(info);
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
    ensure_pooler(&dir, opts.pooler)?;
    undo.armed = false;
    Ok(info)
}

/// Starts the lab's pooler (made at the first `up --pooler`, started again
/// by any later `up`) and records it, with the config that names it.
fn ensure_pooler(dir: &Path, wanted: bool) -> Result<()> {
    let Some(mut state) = read_state(dir)? else {
        return Ok(());
    };
    match (&state.pooler, wanted) {
        (Some(p), _) => pooler::ensure_running(dir, p),
        (None, false) => Ok(()),
        (None, true) => {
            let p = pooler::up(dir, state.source.port, SEED_DB, APP_ROLE)?;
            state.pooler = Some(p);
            write_state(dir, &state)?;
            let info = info_from_state(&state)?;
            write_config_and_readme(&info)
        }
    }
}

async fn up_fresh(dir: &Path, opts: &LabOptions, undo: &mut Undo) -> Result<LabInfo> {
    let target_choice = opts.target_bin.clone();
    let (bin, target_bin) = tokio::task::spawn_blocking(move || -> Result<(PgBin, PgBin)> {
        let source = PgBin::find()?;
        let target = match target_choice {
            Some(dir) => PgBin::at(&dir, "--target-pg-bin")?,
            None => source.clone(),
        };
        Ok((source, target))
    })
    .await??;
    check_versions(&bin, &target_bin)?;
    if let Some(r) = RunAs::detect()? {
        r.check_traversable(&target_bin.dir)
            .with_context(|| format!("the target's binaries in {}", target_bin.dir.display()))?;
    }
    let src_dir = dir.join(SOURCE_NAME);
    let tgt_dir = dir.join(TARGET_NAME);
    undo.data_dirs = vec![src_dir.clone(), tgt_dir.clone()];

    // initdb is the slowest step of `up` for small labs; the two are independent.
    let (mut source, mut target) = {
        let (b1, b2) = (bin.clone(), target_bin.clone());
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
        pooler: None,
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

    let mut info = info_from_state(&state)?;
    ensure_app_role(&info).await?;
    undo.files.push(dir.join(COPY_PGPASS_FILE));
    ensure_copy_role(&info).await?;

    state.seeded = true;
    state.seed_ms = Some(report.elapsed.as_millis() as u64);
    write_state(dir, &state)?;

    // Beside the lab, not in it: the record of a rehearsal outlives `lab down`.
    crate::session::log::create_private_dir(&sessions_dir_for(dir))?;
    undo.files.push(dir.join(CONFIG_FILE));
    undo.files.push(dir.join(README_FILE));
    write_config_and_readme(&info)?;
    info.seed = Some(report);
    Ok(info)
}

/// Creates the app's role on each cluster that lacks it (roles are per
/// cluster: the target needs it for the GRANTs the schema copy carries) and,
/// where it was just created on the source, grants it the app's privileges
/// there. Never grants to an existing role: on a lab mid-cutover that would
/// undo a write freeze. Returns whether it created the role anywhere.
async fn ensure_app_role(info: &LabInfo) -> Result<bool> {
    let on_source = seed::create_app_role(&info.source_conninfo)
        .await
        .context("the source")?;
    if on_source {
        seed::grant_app(&info.source_conninfo)
            .await
            .context("the source")?;
    }
    let on_target = seed::create_app_role(&info.target_conninfo)
        .await
        .context("the target")?;
    Ok(on_source || on_target)
}

/// The copy Job's role on both clusters, with the password in the lab's
/// password file (made once, random; the role's password set to it each
/// time, so the two never disagree).
async fn ensure_copy_role(info: &LabInfo) -> Result<()> {
    let file = info.dir.join(COPY_PGPASS_FILE);
    let password = match files::read_copy_password(&file) {
        Some(p) => p,
        None => {
            use rand::distributions::{Alphanumeric, DistString};
            let p = Alphanumeric.sample_string(&mut rand::thread_rng(), 32);
            files::write_copy_pgpass(&file, &[info.source_port, info.target_port], &p)?;
            p
        }
    };
    for (side, conninfo) in [
        ("the source", &info.source_conninfo),
        ("the target", &info.target_conninfo),
    ] {
        seed::ensure_copy_role(conninfo, &password)
            .await
            .context(side)?;
    }
    Ok(())
}

/// Brings an existing lab back: starts stopped clusters, rewrites config and
/// README only if they are missing or a port changed.
fn reuse(dir: &Path, rows: u64, target_choice: Option<&Path>) -> Result<LabInfo> {
    let mut state =
        read_state(dir)?.ok_or_else(|| anyhow!("{} vanished", dir.join(STATE_FILE).display()))?;
    if !state.seeded {
        bail!(
            "the lab in {} was never fully set up (interrupted while seeding?); remove it with \
             `cutover lab down` (same --dir) and run `up` again",
            dir.display()
        );
    }
    let bins = [state.source_bin(), state.target_bin()];
    let mut notes = Vec::new();
    if let Some(wanted) = target_choice {
        let recorded = &bins[1];
        if PgBin::from_dir(wanted).map_or(true, |w| w.major != recorded.major) {
            notes.push(format!(
                "reusing the lab whose target runs PostgreSQL {}; another target version ({}) \
                 applies only to a new lab (run `cutover lab down` first)",
                recorded.version,
                wanted.display()
            ));
        }
    }
    let mut started = Vec::new();
    let mut ports_changed = false;
    for (cs, recorded) in [&mut state.source, &mut state.target].into_iter().zip(bins) {
        let bin = live_bin(&cs.name, &recorded).with_context(|| {
            format!(
                "the lab in {}: remove it with `cutover lab down` and run `up` again",
                dir.display()
            )
        })?;
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
    let mut info = info_from_state(&state)?;
    info.reused = true;
    info.notes = notes;
    let missing = !info.config_path.exists() || !info.readme_path.exists();
    if missing || ports_changed {
        write_config_and_readme(&info)?;
    }
    crate::session::log::create_private_dir(&info.sessions_dir)?;
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
    if let Some(p) = state.as_ref().and_then(|s| s.pooler.as_ref()) {
        pooler::down(&dir, p);
    }

    let run_as = RunAs::detect()?;
    // Each cluster stops with its own pg_ctl; without one, by signal.
    let data_dirs: Vec<(String, PathBuf, Option<PgBin>)> = match &state {
        Some(s) => [&s.source, &s.target]
            .into_iter()
            .map(|cs| {
                let bin = live_bin(&cs.name, &s.recorded_bin(cs)).ok();
                (cs.name.clone(), cs.data_dir.clone(), bin)
            })
            .collect(),
        None => {
            let bin = PgBin::find().ok();
            vec![
                (SOURCE_NAME.into(), dir.join(SOURCE_NAME), bin.clone()),
                (TARGET_NAME.into(), dir.join(TARGET_NAME), bin),
            ]
        }
    };
    let mut errors = Vec::new();
    for (name, data_dir, bin) in &data_dirs {
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
        // A console's session logs are the record of a rehearsal: never
        // thrown away with the clusters.
        if e == SESSIONS_DIR && kept_sessions(&dir).is_some() {
            continue;
        }
        remove_path(&dir.join(e)).with_context(|| format!("removing {}", dir.join(e).display()))?;
    }
    // Data dirs recorded elsewhere (lab.json from an older layout) go too.
    for (_, d, _) in &data_dirs {
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
    // The sessions beside it go only when no console logged there.
    let beside = sessions_dir_for(&dir);
    if is_empty_dir(&beside) {
        let _ = fs::remove_dir(&beside);
    }
    Ok(())
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
    if kill(Pid::from_raw(pid as i32), Signal::SIGTERM).is_err() {
        return;
    }
    // It writes the witness files a last time as it stops: let it finish
    // before the lab's files go, or it would leave them behind.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while std::time::Instant::now() < deadline && process_lives(pid) {
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Alive and not a zombie waiting to be reaped.
fn process_lives(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the command name, which is in parentheses.
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| !rest.trim_start().starts_with(['Z', 'X'])),
        Err(_) => false,
    }
}

fn info_from_state(state: &LabState) -> Result<LabInfo> {
    let dir = &state.dir;
    let conninfo = |port: u16| format!("host=127.0.0.1 port={port} dbname={SEED_DB} user=postgres");
    Ok(LabInfo {
        dir: dir.clone(),
        config_path: dir.join(CONFIG_FILE),
        readme_path: dir.join(README_FILE),
        state_path: dir.join(STATE_FILE),
        sessions_dir: sessions_dir_for(dir),
        source_conninfo: conninfo(state.source.port),
        target_conninfo: conninfo(state.target.port),
        source_port: state.source.port,
        target_port: state.target.port,
        bin: state.source_bin(),
        target_bin: state.target_bin(),
        plan: state.plan,
        load_rate: state.load_rate,
        seed: None,
        reused: false,
        notes: Vec::new(),
        pooler: state.pooler.clone(),
    })
}

fn absolute(p: &Path) -> Result<PathBuf> {
    if p.is_absolute() {
        Ok(p.to_path_buf())
    } else {
        Ok(std::env::current_dir()?.join(p))
    }
}

/// The lab's session folder, when it holds a session log (`lab down` keeps it).
/// Where a lab's consoles log their sessions: a folder beside the lab's
/// (`/tmp/cutover-lab-sessions` for `/tmp/cutover-lab`), never inside the
/// throwaway one.
pub fn sessions_dir_for(dir: &Path) -> PathBuf {
    let name = dir.file_name().map_or_else(
        || "cutover-lab".into(),
        |n| n.to_string_lossy().into_owned(),
    );
    dir.with_file_name(format!("{name}-sessions"))
}

/// Where session logs of the lab in `dir` are kept after `down`: beside
/// it, or (an older lab's layout) inside it; None when no console logged.
pub fn kept_sessions(dir: &Path) -> Option<PathBuf> {
    [dir.join(SESSIONS_DIR), sessions_dir_for(dir)]
        .into_iter()
        .find(|sessions| {
            fs::read_dir(sessions).is_ok_and(|mut d| {
                d.any(|e| {
                    e.ok()
                        .is_some_and(|e| e.path().extension().is_some_and(|x| x == "jsonl"))
                })
            })
        })
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

/// The lab's Kubernetes API simulator and app pods, and the writer of the
/// witness files that export what the pods measure.
pub struct LabApp {
    pub sim: kube_sim::SimHandle,
    witness: witness::WitnessWriter,
}

impl LabApp {
    /// Stops the pods (their in-flight writes finish) and writes the witness
    /// files a last time.
    pub async fn shutdown(self) {
        self.sim.shutdown().await;
        self.witness.finish().await;
    }
}

/// Starts the lab's Kubernetes API simulator with the `app` Deployment, whose
/// pods write to `database_url` at `writes_per_sec`, writes its kubeconfig
/// where the lab's cutover.toml expects it, and keeps `<dir>/witness.json`
/// and `<dir>/witness/` current.
pub async fn start_kube(dir: &Path, database_url: &str, writes_per_sec: u32) -> Result<LabApp> {
    let state = read_state(dir)?.ok_or_else(|| anyhow!("no lab in {}", dir.display()))?;
    let sim = kube_sim::start(kube_sim::SimOptions {
        database_url: Some(database_url.to_string()),
        writes_per_sec,
        // A copy Job's pod runs the newer server's tools, as its image would.
        pod_bin: Some(state.target_bin().dir),
        pod_root: Some(dir.join(PODS_DIR)),
        pooler_ports: state
            .pooler
            .as_ref()
            .map(|p| p.ports.clone())
            .unwrap_or_default(),
        ..kube_sim::SimOptions::default()
    })
    .await
    .context("starting the Kubernetes API simulator")?;
    if let Ok(pgpass) = fs::read(dir.join(COPY_PGPASS_FILE)) {
        sim.put_secret(kube_sim::LAB_NAMESPACE, COPY_SECRET, "pgpass", &pgpass)?;
    }
    let witness =
        witness::WitnessWriter::spawn(dir, sim.app(), witness::Labels::for_lab(dir, &state))?;
    // Written last and atomically: its presence means the API answers.
    let tmp = dir.join(KUBECONFIG_TMP);
    sim.write_kubeconfig(&tmp, kube_sim::LAB_NAMESPACE)?;
    fs::rename(&tmp, dir.join(KUBECONFIG_FILE)).context("writing the lab kubeconfig")?;
    Ok(LabApp { sim, witness })
}
