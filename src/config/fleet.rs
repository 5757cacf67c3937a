//! Several migrations in one session (`[[databases]]`): each database pair
//! becomes a whole [`Config`] of its own — the console runs one runbook,
//! one session log and one set of collectors per database — made from the
//! shared sections and the entry's overrides.

use super::{Config, ConnConfig, Replication, ValueSource};

/// One `[[databases]]` entry, validated: what differs from the shared
/// sections for this database.
#[derive(Debug, Clone)]
pub struct DatabaseCfg {
    /// Its name on the screen, in its session log's file name and in the
    /// report: lower-case letters, digits and `_`.
    pub name: String,
    /// The source side: `[source]` with this database, or its own server.
    pub source: ConnConfig,
    /// The target side: a consolidation may rename the database.
    pub target: ConnConfig,
    pub replication: Replication,
    pub app_roles: Vec<String>,
    /// Overrides of `[kubernetes]`: the workloads and the config object
    /// that use this database.
    pub deployments: Option<Vec<String>>,
    pub config_object: Option<String>,
    pub config_key: Option<String>,
    pub switch_to: Option<ValueSource>,
    /// Overrides of `[freeze] read_only_role` and `[kubernetes]
    /// read_only_to_*` (a database with its own config object needs its
    /// own read-only value).
    pub read_only_role: Option<String>,
    pub read_only_to: Option<ValueSource>,
}

/// Longest database name: it goes into Kubernetes object names.
pub const NAME_MAX: usize = 20;

impl Config {
    /// Whether this config drives several databases.
    pub fn is_fleet(&self) -> bool {
        !self.databases.is_empty()
    }

    /// The configs this session runs: one per `[[databases]]` entry, or
    /// this one alone.
    pub fn fleet(&self) -> Vec<Config> {
        if self.databases.is_empty() {
            return vec![self.clone()];
        }
        self.databases
            .iter()
            .map(|d| self.for_database(d))
            .collect()
    }

    fn for_database(&self, d: &DatabaseCfg) -> Config {
        let mut c = self.clone();
        c.databases = Vec::new();
        c.database = Some(d.name.clone());
        c.source = d.source.clone();
        c.target = d.target.clone();
        c.replication = d.replication.clone();
        c.freeze.app_roles = d.app_roles.clone();
        if d.read_only_role.is_some() {
            c.freeze.read_only_role = d.read_only_role.clone();
        }
        if let Some(k) = c.kubernetes.as_mut() {
            if let Some(deployments) = &d.deployments {
                k.deployments = deployments.clone();
            }
            if d.config_object.is_some() {
                k.config_object = d.config_object.clone();
                k.config_key = d.config_key.clone();
                k.switch_to = d.switch_to.clone();
                k.read_only_to = d.read_only_to.clone();
            }
            if d.read_only_to.is_some() {
                k.read_only_to = d.read_only_to.clone();
            }
        }
        // Each database's own report beside the one over all of them.
        c.report.path = self.report.path.as_deref().map(|p| with_suffix(p, &d.name));
        c
    }
}

/// `dir/report.txt` → `dir/report.NAME.txt`.
pub fn with_suffix(path: &std::path::Path, name: &str) -> std::path::PathBuf {
    let stem = path.file_stem().unwrap_or_default().to_string_lossy();
    let file = match path.extension() {
        Some(ext) => format!("{stem}.{name}.{}", ext.to_string_lossy()),
        None => format!("{stem}.{name}"),
    };
    path.with_file_name(file)
}
