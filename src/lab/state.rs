//! `<dir>/lab.json`: what `up` made (ports, data dirs, each cluster's
//! binaries and version), read back by `up` (reuse), `status` and `down`.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::cluster::Cluster;
use super::pgbin::PgBin;
use super::seed::SeedPlan;
use super::STATE_FILE;

/// lab.json is written here first and renamed, so readers never see half.
pub(super) const STATE_TMP: &str = ".lab.json.tmp";

/// Bumped when lab.json changes incompatibly.
pub(super) const STATE_FORMAT: u32 = 1;

/// Contents of `<dir>/lab.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabState {
    pub format: u32,
    pub dir: PathBuf,
    /// The source's binaries and version; also the target's in labs written
    /// before each cluster recorded its own ([`ClusterState::bin`]).
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
    /// The PgBouncer instances between the app and the database
    /// (`lab up --pooler`); absent in labs without one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pooler: Option<super::pooler::PoolerState>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterState {
    pub name: String,
    pub data_dir: PathBuf,
    pub port: u16,
    /// Postmaster pid when last started by `up`.
    pub pid: Option<u32>,
    /// This cluster's server binaries and version. Absent in labs made when
    /// both clusters ran the same binaries: then [`LabState::bin_dir`] applies.
    #[serde(default)]
    pub bin: Option<PgBin>,
}

impl LabState {
    /// How the lab's app reaches the seeded source database: as the app's
    /// role ([`super::APP_ROLE`]), the ConfigMap's first DATABASE_URL.
    pub fn source_conninfo(&self) -> String {
        super::app_conninfo(self.source.port)
    }

    /// The app's first DATABASE_URL: through the pooler where the lab has
    /// one, else the source itself.
    pub fn app_database_url(&self) -> String {
        match &self.pooler {
            Some(p) => p.app_url(super::SEED_DB, super::APP_ROLE),
            None => self.source_conninfo(),
        }
    }

    /// The binaries and version recorded for `cluster` (one of this state's),
    /// without checking that they still exist.
    pub fn recorded_bin(&self, cluster: &ClusterState) -> PgBin {
        cluster.bin.clone().unwrap_or_else(|| PgBin {
            dir: self.bin_dir.clone(),
            version: self.server_version.clone(),
            major: self.server_major,
        })
    }

    /// The source's recorded binaries (PostgreSQL 15 in the usual lab).
    pub fn source_bin(&self) -> PgBin {
        self.recorded_bin(&self.source)
    }

    /// The target's recorded binaries (e.g. PostgreSQL 18): use these, not
    /// `PgBin::find()`, for pg_ctl on the target's data directory.
    pub fn target_bin(&self) -> PgBin {
        self.recorded_bin(&self.target)
    }
}

impl ClusterState {
    pub(super) fn of(c: &Cluster) -> ClusterState {
        ClusterState {
            name: c.name.clone(),
            data_dir: c.data_dir.clone(),
            port: c.port,
            pid: c.pid(),
            bin: Some(c.bin.clone()),
        }
    }
}

/// The binaries to run for a cluster recorded with `recorded`: those same ones
/// if they still work, else whatever the search finds if it is the same major
/// (a minor update moved them). Another major would not open the data dir.
pub(super) fn live_bin(name: &str, recorded: &PgBin) -> Result<PgBin> {
    let found = PgBin::from_dir(&recorded.dir).or_else(|_| PgBin::find());
    match found {
        Ok(bin) if bin.major == recorded.major => Ok(bin),
        Ok(bin) => bail!(
            "the {name} cluster was made with PostgreSQL {} ({}), but only {bin} is \
             available now",
            recorded.version,
            recorded.dir.display()
        ),
        Err(e) => Err(anyhow!(
            "the {name} cluster was made with PostgreSQL {} ({}), which is gone: {e}",
            recorded.version,
            recorded.dir.display()
        )),
    }
}

/// A cutover moves to the same or a newer major version, never back.
pub(super) fn check_versions(source: &PgBin, target: &PgBin) -> Result<()> {
    if target.major < source.major {
        bail!(
            "the target's {target} is older than the source's PostgreSQL {}: a cutover moves to \
             the same or a newer major version; give the target PostgreSQL {} or newer \
             (--target-pg-bin DIR)",
            source.version,
            source.major
        );
    }
    Ok(())
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

pub(super) fn write_state(dir: &Path, state: &LabState) -> Result<()> {
    let path = dir.join(STATE_FILE);
    let tmp = dir.join(STATE_TMP);
    fs::write(&tmp, serde_json::to_string_pretty(state)? + "\n")
        .with_context(|| format!("writing {}", tmp.display()))?;
    fs::rename(&tmp, &path).with_context(|| format!("writing {}", path.display()))
}

/// Records (or clears) the pid of the process running the lab's app, so that
/// `down` can stop it.
pub fn record_app_pid(dir: &Path, pid: Option<u32>) -> Result<()> {
    let mut state = read_state(dir)?
        .ok_or_else(|| anyhow!("no lab in {} (missing {STATE_FILE})", dir.display()))?;
    state.app_pid = pid;
    write_state(dir, &state)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::{SOURCE_NAME, TARGET_NAME};

    fn pg(dir: &str, version: &str, major: u32) -> PgBin {
        PgBin {
            dir: dir.into(),
            version: version.into(),
            major,
        }
    }

    fn cluster(name: &str, bin: Option<PgBin>) -> ClusterState {
        ClusterState {
            name: name.into(),
            data_dir: PathBuf::from("/lab").join(name),
            port: 5000,
            pid: None,
            bin,
        }
    }

    fn state(target_bin: Option<PgBin>) -> LabState {
        let source = pg("/usr/lib/postgresql/15/bin", "15.18", 15);
        LabState {
            format: STATE_FORMAT,
            dir: "/lab".into(),
            bin_dir: source.dir.clone(),
            server_version: source.version.clone(),
            server_major: source.major,
            created_at: Utc::now(),
            rows: 10,
            plan: SeedPlan::for_rows(10),
            seeded: true,
            seed_ms: None,
            load_rate: 1,
            source: cluster(SOURCE_NAME, Some(source)),
            target: cluster(TARGET_NAME, target_bin),
            app_pid: None,
            pooler: None,
        }
    }

    #[test]
    fn each_cluster_keeps_its_own_binaries() {
        let pg18 = pg("/c/pg18/bin", "18.6", 18);
        let s = state(Some(pg18.clone()));
        let back: LabState = serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
        assert_eq!(back.target_bin(), pg18);
        assert_eq!(back.source_bin().major, 15);
    }

    #[test]
    fn state_written_before_per_cluster_binaries_still_loads() {
        let mut json = serde_json::to_value(state(None)).unwrap();
        for side in ["source", "target"] {
            json[side].as_object_mut().unwrap().remove("bin");
        }
        let old: LabState = serde_json::from_value(json).unwrap();
        let both = pg("/usr/lib/postgresql/15/bin", "15.18", 15);
        assert_eq!(old.source_bin(), both);
        assert_eq!(old.target_bin(), both);
    }

    #[test]
    fn target_may_be_newer_never_older() {
        let (pg15, pg18) = (pg("/a", "15.18", 15), pg("/b", "18.6", 18));
        assert!(check_versions(&pg15, &pg18).is_ok());
        assert!(check_versions(&pg15, &pg15).is_ok());
        assert_eq!(
            check_versions(&pg18, &pg15).unwrap_err().to_string(),
            "the target's PostgreSQL 15.18 (/a) is older than the source's PostgreSQL 18.6: a \
             cutover moves to the same or a newer major version; give the target PostgreSQL 18 \
             or newer (--target-pg-bin DIR)"
        );
    }
}
