//! What `cutover lab status` reports: reads lab.json and looks at each
//! cluster without starting or stopping anything, and what the app pods
//! measured (witness.json).

use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::Result;

use super::cluster::{self, Cluster, RunAs};
use super::pgbin::PgBin;
use super::witness::{self, Witness};
use super::{absolute, read_state, CONFIG_FILE};

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
#[derive(Debug, Clone, PartialEq)]
pub struct LabStatus {
    pub dir: PathBuf,
    /// False when there is no lab (no lab.json) in `dir`.
    pub present: bool,
    pub seeded: bool,
    pub config_path: Option<PathBuf>,
    pub clusters: Vec<ClusterStatus>,
    pub app_pid: Option<u32>,
    /// What the app pods measured: None before the app first ran, Err when
    /// witness.json could not be read.
    pub witness: Result<Option<Witness>, String>,
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
        match &self.witness {
            Ok(Some(w)) => super::status_app::write_app(f, w, self.app_pid, chrono::Utc::now())?,
            Ok(None) => {}
            Err(e) => writeln!(f, "  app writes: {e}")?,
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
            witness: Ok(None),
        });
    };
    let run_as = RunAs::detect()?;
    let clusters = [&state.source, &state.target]
        .into_iter()
        .map(|cs| {
            let recorded = state.recorded_bin(cs);
            let port = Cluster::open(&recorded, &cs.data_dir, &cs.name)
                .map(|c| c.port)
                .unwrap_or(cs.port);
            let running = match PgBin::from_dir(&recorded.dir) {
                Ok(bin) => Cluster {
                    name: cs.name.clone(),
                    data_dir: cs.data_dir.clone(),
                    port,
                    bin,
                    run_as,
                }
                .is_running(),
                Err(_) => pid_alive(cluster::postmaster_pid(&cs.data_dir)),
            };
            ClusterStatus {
                name: cs.name.clone(),
                port,
                running,
                pid: cluster::postmaster_pid(&cs.data_dir),
                version: recorded.version,
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
        witness: witness::read(&dir).map_err(|e| format!("{e:#}")),
        dir,
    })
}

fn pid_alive(pid: Option<u32>) -> bool {
    pid.is_some_and(|p| nix::sys::signal::kill(nix::unistd::Pid::from_raw(p as i32), None).is_ok())
}
