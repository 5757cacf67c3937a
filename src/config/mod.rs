//! `cutover.toml`: loading, validation and connection settings.
//!
//! Every error is reported as one line, `file:line:col: field: message`, because
//! the operator reads it on a terminal in the middle of a cutover window and
//! must be able to jump straight to the culprit.

pub mod conninfo;
pub(crate) mod diag;
pub mod file;
mod fleet;
pub mod pgpass;
pub mod secret;
pub mod tables;
mod validate;

pub use fleet::DatabaseCfg;

use std::path::{Path, PathBuf};

pub use conninfo::{
    ConnInfo, ConnInfoError, ConnParams, Endpoint, Env, Host, Keepalives, PasswordSource,
    ProcessEnv, SslMode, TargetSessionAttrs,
};
pub use secret::Secret;
pub use tables::{TableFilter, TablePattern};

/// The whole configuration, validated, with relative paths resolved against
/// the config file's directory.
#[derive(Debug, Clone)]
pub struct Config {
    pub path: PathBuf,
    pub source: ConnConfig,
    pub target: ConnConfig,
    pub replication: Replication,
    pub tables: TableFilter,
    pub thresholds: Thresholds,
    pub monitor: Monitor,
    pub session: SessionCfg,
    pub report: ReportCfg,
    pub ui: UiCfg,
    pub lab: Option<LabCfg>,
    pub kubernetes: Option<KubeCfg>,
    pub verify: VerifyCfg,
    pub freeze: FreezeCfg,
    pub runbook: RunbookCfg,
    /// `[pooler]`: PgBouncer between the application and the database.
    pub pooler: Option<PoolerCfg>,
    /// `[[databases]]`: the migrations one session drives (empty: the one
    /// `[source]` → `[target]`). See [`Config::fleet`].
    pub databases: Vec<DatabaseCfg>,
    /// In a config [`Config::fleet`] made: the name of its database.
    pub database: Option<String>,
}

/// The write freeze: which roles are the application's. The freeze takes
/// their write privileges on the selected tables and ends their sessions;
/// the preflight lists the roles connected lately, so none is forgotten.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FreezeCfg {
    pub app_roles: Vec<String>,
    /// How writes are frozen: by the application roles' privileges on the
    /// source (the default), or by switching the clients to a read-only
    /// role's connection (`read-only-role`, a switch of its own).
    pub method: FreezeMethod,
    /// `read-only-role`: the role the clients connect as while frozen. It
    /// must not be able to write a table (checked when the freeze is proven).
    pub read_only_role: Option<String>,
    /// How long writes may stay frozen before the console says it is over
    /// budget and offers the rollback first.
    pub budget_secs: u64,
    /// What happens when the budget runs out.
    pub on_budget_exceeded: BudgetAction,
}

/// `[freeze] method`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FreezeMethod {
    /// Take the application roles' write privileges on the source.
    #[default]
    Privileges,
    /// Switch the clients to `read_only_role`'s connection (the config
    /// object's key gets `read_only_to_env`/`read_only_to_file`), restart
    /// them, prove no session of a writing role is left: the migration
    /// story's freeze, which changes nothing on the server.
    ReadOnlyRole,
}

impl FreezeMethod {
    pub fn is_read_only_role(self) -> bool {
        self == FreezeMethod::ReadOnlyRole
    }
}

/// `[freeze] on_budget_exceeded`: past the budget the console always turns to
/// the error style and offers the rollback first; `rollback` also starts it
/// by itself (like RDS Blue/Green's switchover timeout), and the log says why.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BudgetAction {
    #[default]
    Warn,
    Rollback,
}

impl BudgetAction {
    pub fn as_str(self) -> &'static str {
        match self {
            BudgetAction::Warn => "warn",
            BudgetAction::Rollback => "rollback",
        }
    }
}

/// `[runbook]`: which runbook drives the cutover.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunbookCfg {
    /// `logical` (replication, the default) or `dump-restore`.
    pub variant: crate::runbook::Variant,
    /// Parallel jobs of the dump and of the restore (directory format).
    pub dump_jobs: u64,
    /// `[runbook] copy = "job"`: the copy runs as a Kubernetes Job in the
    /// cluster, not from the console's host.
    pub copy_job: Option<CopyJobCfg>,
}

/// `[runbook.job]`: the dump-and-restore copy as a Kubernetes Job in the
/// cluster, so the data and the credentials never leave it. The Job reads
/// its passwords from a password file in a Secret; none is in the config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyJobCfg {
    /// None: `[kubernetes] namespace` (or the context's).
    pub namespace: Option<String>,
    /// An image with `pg_dump`, `pg_restore` and `sh`, of at least the newer
    /// server's major version.
    pub image: String,
    /// The Secret holding a password file (`.pgpass` format) for both servers.
    pub secret: String,
    /// Its key holding the file.
    pub secret_key: String,
    /// The role the Job connects as on both sides (None: each DSN's user).
    pub user: Option<String>,
    /// How the cluster reaches each server, `host` or `host:port` (None:
    /// as the console does).
    pub source_host: Option<String>,
    pub target_host: Option<String>,
    /// The Job's `activeDeadlineSeconds`: the cluster stops it after this.
    pub deadline_secs: u64,
}

impl CopyJobCfg {
    pub const DEADLINE_SECS: std::ops::RangeInclusive<u64> = 60..=7 * 86_400;
    pub const DEFAULT_DEADLINE_SECS: u64 = 86_400;
    pub const DEFAULT_IMAGE: &'static str = "postgres:18";
    pub const DEFAULT_SECRET_KEY: &'static str = "pgpass";
}

impl RunbookCfg {
    pub const DUMP_JOBS: std::ops::RangeInclusive<u64> = 1..=64;
}

impl Default for RunbookCfg {
    fn default() -> Self {
        RunbookCfg {
            variant: crate::runbook::Variant::Logical,
            dump_jobs: 4,
            copy_job: None,
        }
    }
}

impl FreezeCfg {
    pub const BUDGET_SECS: std::ops::RangeInclusive<u64> = 1..=86_400;
}

impl Default for FreezeCfg {
    fn default() -> Self {
        FreezeCfg {
            app_roles: vec![],
            method: FreezeMethod::Privileges,
            read_only_role: None,
            budget_secs: 60,
            on_budget_exceeded: BudgetAction::Warn,
        }
    }
}

/// How checksum verification treats particular tables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyCfg {
    /// Connections per side (None: the engine's default).
    pub parallelism: Option<usize>,
    /// `statement_timeout` of every verification query; a server that does
    /// not answer within it (plus a margin) fails the table as "could not run".
    pub statement_timeout_ms: u64,
    /// Per table, a column holding each row's last modification time: live
    /// verification compares only rows older than the lag window.
    pub updated_at: std::collections::BTreeMap<crate::session::TableRef, String>,
    /// Per table without a primary key, the columns that identify a row.
    pub keys: std::collections::BTreeMap<crate::session::TableRef, Vec<String>>,
}

impl VerifyCfg {
    /// Connections per side; each one is a backend on a production server.
    pub const PARALLELISM: std::ops::RangeInclusive<u64> = 1..=64;
    /// One heap slice of a large table may take minutes; a day is absurd.
    pub const STATEMENT_TIMEOUT_MS: std::ops::RangeInclusive<u64> = 100..=86_400_000;
    pub const DEFAULT_STATEMENT_TIMEOUT_MS: u64 = 600_000;
}

impl Default for VerifyCfg {
    fn default() -> Self {
        VerifyCfg {
            parallelism: None,
            statement_timeout_ms: Self::DEFAULT_STATEMENT_TIMEOUT_MS,
            updated_at: Default::default(),
            keys: Default::default(),
        }
    }
}

/// One side of the migration.
///
/// Passwords live in [`Secret`]s and are never part of `params`, so the
/// struct can be logged and shown as a whole.
#[derive(Debug, Clone)]
pub struct ConnConfig {
    pub label: String,
    pub params: ConnParams,
    /// The password for every host: from the DSN (or its service), the
    /// config's `password_env`, or `PGPASSWORD`.
    pub password: Option<Secret>,
    /// Where `password` came from, or the password file when only that had
    /// entries.
    pub password_source: Option<PasswordSource>,
    /// Without `password`: each host's entry in the password file (libpq looks
    /// the password up for the host actually tried), in `params.hosts` order.
    pub host_passwords: Vec<Option<Secret>>,
}

/// Why a DSN could not be turned into a [`ConnConfig`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnConfigError {
    #[error("{0}")]
    Dsn(ConnInfoError),
    #[error("environment variable {0} is not set or empty")]
    PasswordEnv(String),
}

impl ConnConfig {
    /// Parses and resolves a DSN like libpq would (DSN, service file, `PG*`,
    /// then defaults; password from the DSN, `password_env`, `PGPASSWORD`, then
    /// the password file per host).
    pub fn from_dsn(
        label: impl Into<String>,
        dsn: &str,
        password_env: Option<&str>,
        env: &dyn Env,
    ) -> Result<ConnConfig, ConnConfigError> {
        let info = conninfo::parse(dsn)
            .and_then(|i| i.with_service(env))
            .map_err(ConnConfigError::Dsn)?;
        let params = info.resolve(env).map_err(ConnConfigError::Dsn)?;
        let explicit = conninfo::explicit_password(&info, password_env, env)
            .map_err(|e| ConnConfigError::PasswordEnv(e.0))?;
        let (password, password_source) = explicit.unzip();
        let mut conn = ConnConfig {
            label: label.into(),
            params,
            password,
            password_source,
            host_passwords: Vec::new(),
        };
        conn.look_up_passfile();
        Ok(conn)
    }

    /// Without an explicit password: each host's entry in the password
    /// file, for this database and user.
    fn look_up_passfile(&mut self) {
        let (None, Some(file)) = (&self.password, &self.params.passfile) else {
            return;
        };
        let p = &self.params;
        self.host_passwords = p
            .hosts
            .iter()
            .map(|h| pgpass::password_from_file(file, h, &p.dbname, &p.user))
            .collect();
        self.password_source = self
            .host_passwords
            .iter()
            .any(Option::is_some)
            .then(|| PasswordSource::Passfile(file.clone()));
    }

    /// The same server and credentials, another database on it (the
    /// password file looked up again: its entries may name the database).
    pub fn for_database(&self, dbname: &str) -> ConnConfig {
        let mut conn = self.clone();
        conn.params.dbname = dbname.to_string();
        if matches!(
            conn.password_source,
            Some(PasswordSource::Passfile(_)) | None
        ) {
            conn.password = None;
            conn.look_up_passfile();
        }
        conn
    }

    /// The password to send to host `index` of `params.hosts`, if any.
    pub fn password_for(&self, index: usize) -> Option<&Secret> {
        self.password
            .as_ref()
            .or_else(|| self.host_passwords.get(index).and_then(Option::as_ref))
    }

    /// A redacted one-liner such as `postgres@127.0.0.1:54321/app (sslmode=prefer)`;
    /// several hosts are listed in order: `app@a:5432,b:5433/app (sslmode=prefer)`.
    pub fn describe(&self) -> String {
        let p = &self.params;
        let hosts = p
            .hosts
            .iter()
            .map(|h| match &h.host {
                Host::Unix(dir) => format!("{}:{}", dir.display(), h.port),
                Host::Tcp(_) => h.to_string(),
            })
            .collect::<Vec<_>>()
            .join(",");
        let mut how = if p.is_unix_socket() {
            "unix socket".to_owned()
        } else {
            format!("sslmode={}", p.sslmode)
        };
        if p.target_session_attrs != TargetSessionAttrs::Any {
            how.push_str(&format!(
                ", target_session_attrs={}",
                p.target_session_attrs
            ));
        }
        format!("{}@{hosts}/{} ({how})", p.user, p.dbname)
    }

    /// The server and database both point at, if they share one (a
    /// migration onto itself), as `host:port/db`.
    pub fn same_database(&self, other: &ConnConfig) -> Option<String> {
        if self.params.dbname != other.params.dbname {
            return None;
        }
        let shared = self.params.hosts.iter().find(|a| {
            other
                .params
                .hosts
                .iter()
                .any(|b| a.host == b.host && a.hostaddr == b.hostaddr && a.port == b.port)
        })?;
        Some(format!(
            "{}:{}/{}",
            shared.host.label(),
            shared.port,
            self.params.dbname
        ))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replication {
    pub publication: String,
    pub subscription: String,
    /// Defaults to the subscription name, as `CREATE SUBSCRIPTION` does.
    pub slot: String,
    /// Added to the source's value when the target's sequences are advanced:
    /// a margin for values the source hands out after they were read.
    pub sequence_stride: u64,
}

impl Replication {
    pub const SEQUENCE_STRIDE: std::ops::RangeInclusive<u64> = 0..=1_000_000_000_000;
}

impl Default for Replication {
    fn default() -> Self {
        Replication {
            publication: "cutover_pub".into(),
            subscription: "cutover_sub".into(),
            slot: "cutover_sub".into(),
            sequence_stride: 0,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Thresholds {
    pub max_lag_bytes: u64,
    pub max_lag_seconds: f64,
    pub max_retained_wal_bytes: u64,
    pub stale_after_seconds: f64,
}

impl Thresholds {
    /// Beyond these a threshold never fires, which silently disables the check.
    pub const MAX_LAG_BYTES: std::ops::RangeInclusive<u64> = 1..=1 << 40;
    pub const MAX_LAG_SECONDS: std::ops::RangeInclusive<f64> = 0.1..=86_400.0;
    pub const MAX_RETAINED_WAL_BYTES: std::ops::RangeInclusive<u64> = 1..=1 << 44;
    pub const STALE_AFTER_SECONDS: std::ops::RangeInclusive<f64> = 1.0..=3600.0;
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            max_lag_bytes: 16 * 1024 * 1024,
            max_lag_seconds: 10.0,
            max_retained_wal_bytes: 1024 * 1024 * 1024,
            stale_after_seconds: 5.0,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Monitor {
    pub refresh_ms: u64,
    pub statement_timeout_ms: u64,
    pub connect_timeout_ms: u64,
}

impl Default for Monitor {
    fn default() -> Self {
        Monitor {
            refresh_ms: 1000,
            statement_timeout_ms: 2000,
            connect_timeout_ms: 3000,
        }
    }
}

impl Monitor {
    pub const REFRESH_MS: std::ops::RangeInclusive<u64> = 100..=60_000;
    pub const STATEMENT_TIMEOUT_MS: std::ops::RangeInclusive<u64> = 100..=600_000;
    pub const CONNECT_TIMEOUT_MS: std::ops::RangeInclusive<u64> = 100..=600_000;

    pub fn refresh(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.refresh_ms)
    }

    pub fn statement_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.statement_timeout_ms)
    }

    pub fn connect_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.connect_timeout_ms)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionCfg {
    /// Absolute, or relative to the current directory if the config path was.
    pub dir: PathBuf,
    /// `[session] group`: a group whose members may read the session logs
    /// (followers in another account), with its gid. None: owner only.
    pub group: Option<(String, u32)>,
}

/// `[report]`: where the runbook's last checkpoint writes the migration report.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ReportCfg {
    /// None: the report is written beside the session log.
    pub path: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UiCfg {
    /// A built-in theme name such as `default`, or the path of a theme file.
    /// A value ending in `.toml` or containing `/` is a path, and has already
    /// been resolved against the config file's directory.
    pub theme: String,
    /// Only ASCII on the screen, for terminals without box-drawing glyphs.
    pub ascii: bool,
    /// Whether `[ui] theme` named it (false: the implicit `default`). A named
    /// theme that fails to load stops the console; the implicit one falls
    /// back to the built-in default with a warning.
    pub theme_named: bool,
    /// `[ui] themes_dir`: `<name>.toml` theme files looked up by name before
    /// the built-ins, resolved against the config file's directory.
    pub themes_dir: Option<PathBuf>,
}

impl UiCfg {
    pub fn theme_is_file(&self) -> bool {
        self.theme.ends_with(".toml") || self.theme.contains('/')
    }
}

impl Default for UiCfg {
    fn default() -> Self {
        UiCfg {
            theme: "default".into(),
            ascii: false,
            theme_named: false,
            themes_dir: None,
        }
    }
}

/// The application side: where its workloads run and which object holds its
/// database config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubeCfg {
    /// None: in-cluster service account when cutover runs in a pod.
    pub kubeconfig: Option<PathBuf>,
    pub context: Option<String>,
    pub namespace: Option<String>,
    /// The Deployments that use the database (at least one).
    pub deployments: Vec<String>,
    /// The object and key holding the database URL, e.g. `configmap/app-db`.
    pub config_object: Option<String>,
    pub config_key: Option<String>,
    /// Where the value the switch writes comes from (a secret: never in the config itself).
    pub switch_to: Option<ValueSource>,
    /// `[freeze] method = "read-only-role"`: the value the key holds while
    /// writes are frozen (the source, as the read-only role connects).
    pub read_only_to: Option<ValueSource>,
    /// How changes reach the cluster: patched by the console, or through
    /// merged pull requests a GitOps controller applies (the console then
    /// shows the change to make and waits to see it).
    pub changes: Changes,
    /// How long a GitOps checkpoint waits for its change to appear.
    pub gitops_wait_secs: u64,
    /// Other namespaces searched for workloads that use the config object
    /// (a same-named object there is not switched: such a workload is on
    /// the old config).
    pub namespaces: Vec<String>,
}

impl KubeCfg {
    /// Where the config object's users are searched: `home` (the config
    /// object's namespace, as connected) first, then the others named.
    pub fn search_namespaces(&self, home: &str) -> Vec<String> {
        let mut out = vec![home.to_string()];
        out.extend(self.namespaces.iter().filter(|n| *n != home).cloned());
        out
    }

    pub const GITOPS_WAIT_SECS: std::ops::RangeInclusive<u64> = 10..=86_400;
    pub const DEFAULT_GITOPS_WAIT_SECS: u64 = 1_800;
}

/// `[kubernetes] changes`: who changes the cluster.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Changes {
    /// The console patches the config object and restarts the workloads.
    #[default]
    Patch,
    /// Argo CD, Flux: a merged pull request changes the cluster; the
    /// console shows the change, waits until the cluster shows it, and
    /// follows the rollout it causes. It never patches.
    Gitops,
}

/// A secret value kept outside cutover.toml, read when an action needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ValueSource {
    Env(String),
    File(PathBuf),
}

impl ValueSource {
    /// Reads the value; the error names the variable or file, never the value.
    pub fn read(&self) -> std::result::Result<String, String> {
        let v = match self {
            ValueSource::Env(name) => std::env::var(name)
                .map_err(|_| format!("environment variable {name} is not set or not UTF-8"))?,
            ValueSource::File(path) => {
                std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?
            }
        };
        // Files written by editors and `echo` end in a newline the app never sees.
        let v = v.trim_end_matches(['\n', '\r']).to_string();
        if v.trim().is_empty() {
            return Err(format!("{self} is empty"));
        }
        Ok(v)
    }
}

impl std::fmt::Display for ValueSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ValueSource::Env(name) => write!(f, "${name}"),
            ValueSource::File(path) => write!(f, "{}", path.display()),
        }
    }
}

/// `[pooler]`: the PgBouncer instances the application connects through,
/// how to reach their admin console, and the entry a switch repoints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolerCfg {
    pub instances: PoolerInstances,
    /// Who the admin console admits (`admin_users` in PgBouncer's config).
    pub admin_user: String,
    /// Its password, if it asks for one (never in the config itself).
    pub admin_password: Option<ValueSource>,
    /// The `[databases]` entry the application connects through.
    pub database: String,
    /// The file holding that entry (PgBouncer's ini or a file it includes).
    pub databases_file: PathBuf,
    /// How long `PAUSE` may wait for running transactions.
    pub pause_timeout_secs: u64,
}

impl PoolerCfg {
    pub const DEFAULT_ADMIN_USER: &'static str = "pgbouncer";
    pub const PAUSE_TIMEOUT_SECS: std::ops::RangeInclusive<u64> = 1..=300;
    pub const DEFAULT_PAUSE_TIMEOUT_SECS: u64 = 10;
}

/// Where the pooler's instances are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PoolerInstances {
    /// These, as listed.
    Listed(Vec<crate::pooler::Instance>),
    /// The pods behind this Service in `[kubernetes]`'s namespace, at the
    /// container port named or numbered `port` (None: the Service's first
    /// port's target).
    Service { name: String, port: Option<String> },
}

/// Present only in configs written by `cutover lab up`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabCfg {
    pub dir: PathBuf,
}

/// A config problem, displayed as a single line naming file, line, column and field.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{}: {}", .path.display(), read_problem(source))]
    Read {
        path: PathBuf,
        #[source]
        source: file::ReadError,
    },
    #[error("{}", diag::format_invalid(path, *location, field.as_deref(), message))]
    Invalid {
        path: PathBuf,
        /// 1-based line and column (in characters).
        location: Option<(usize, usize)>,
        /// Dotted path such as `source.dsn`, when the problem belongs to one field.
        field: Option<String>,
        message: String,
    },
}

impl ConfigError {
    pub fn location(&self) -> Option<(usize, usize)> {
        match self {
            ConfigError::Invalid { location, .. } => *location,
            ConfigError::Read { .. } => None,
        }
    }

    pub fn field(&self) -> Option<&str> {
        match self {
            ConfigError::Invalid { field, .. } => field.as_deref(),
            ConfigError::Read { .. } => None,
        }
    }
}

/// Reads and validates a config file, completing connections from the process
/// environment.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    load_with_env(path, &ProcessEnv)
}

fn read_problem(e: &file::ReadError) -> String {
    match e {
        file::ReadError::Io(io) => format!("cannot read config file: {io}"),
        other => other.to_string(),
    }
}

pub fn load_with_env(path: &Path, env: &dyn Env) -> Result<Config, ConfigError> {
    let bytes =
        file::read_limited(path, file::MAX_FILE_BYTES).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
    let text = String::from_utf8(bytes).map_err(|e| {
        let offset = e.utf8_error().valid_up_to();
        let text = String::from_utf8_lossy(e.as_bytes());
        diag::Ctx::new(&text, path).error(
            Some(offset..offset),
            None,
            "file is not valid UTF-8".into(),
        )
    })?;
    parse_with_env(&text, path, env)
}

/// Parses config text; `path` names the file in messages and anchors relative paths.
pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
    parse_with_env(text, path, &ProcessEnv)
}

pub fn parse_with_env(text: &str, path: &Path, env: &dyn Env) -> Result<Config, ConfigError> {
    let ctx = diag::Ctx::new(text, path);
    validate::config(&ctx, env)
}

#[cfg(test)]
mod tests;
