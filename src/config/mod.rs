//! `cutover.toml`: loading, validation and connection settings.
//!
//! Every error is reported as one line, `file:line:col: field: message`, because
//! the operator reads it on a terminal in the middle of a cutover window and
//! must be able to jump straight to the culprit.

pub mod conninfo;
mod diag;
pub mod pgpass;
pub mod secret;
pub mod tables;

use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

pub use conninfo::{
    ConnInfo, ConnInfoError, ConnParams, Env, Host, PasswordSource, ProcessEnv, SslMode,
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
    pub ui: UiCfg,
    pub lab: Option<LabCfg>,
    pub kubernetes: Option<KubeCfg>,
    pub verify: VerifyCfg,
}

/// How checksum verification treats particular tables.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct VerifyCfg {
    /// Connections per side (None: the engine's default).
    pub parallelism: Option<usize>,
    /// Per table, a column holding each row's last modification time: live
    /// verification compares only rows older than the lag window.
    pub updated_at: std::collections::BTreeMap<crate::session::TableRef, String>,
    /// Per table without a primary key, the columns that identify a row.
    pub keys: std::collections::BTreeMap<crate::session::TableRef, Vec<String>>,
}

/// One side of the migration.
///
/// The password lives in a [`Secret`] and is never part of `params`, so the
/// struct can be logged and shown as a whole.
#[derive(Debug, Clone)]
pub struct ConnConfig {
    pub label: String,
    pub params: ConnParams,
    pub password: Option<Secret>,
    pub password_source: Option<PasswordSource>,
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
    /// Parses and resolves a DSN like libpq would (DSN, then `PG*`, then
    /// defaults; password from the DSN, `password_env`, `PGPASSWORD`, passfile).
    pub fn from_dsn(
        label: impl Into<String>,
        dsn: &str,
        password_env: Option<&str>,
        env: &dyn Env,
    ) -> Result<ConnConfig, ConnConfigError> {
        let info = conninfo::parse(dsn).map_err(ConnConfigError::Dsn)?;
        let params = info.resolve(env).map_err(ConnConfigError::Dsn)?;
        let password = conninfo::resolve_password(&info, &params, password_env, env)
            .map_err(|e| ConnConfigError::PasswordEnv(e.0))?;
        let (password, password_source) = password.unzip();
        Ok(ConnConfig {
            label: label.into(),
            params,
            password,
            password_source,
        })
    }

    /// A redacted one-liner such as `postgres@127.0.0.1:54321/app (sslmode=prefer)`.
    pub fn describe(&self) -> String {
        let p = &self.params;
        match &p.host {
            Host::Unix(dir) => format!(
                "{}@{}:{}/{} (unix socket)",
                p.user,
                dir.display(),
                p.port,
                p.dbname
            ),
            Host::Tcp(_) => format!(
                "{}@{}/{} (sslmode={})",
                p.user,
                p.endpoint(),
                p.dbname,
                p.sslmode
            ),
        }
    }

    /// True when both point at the same server and database, i.e. a migration
    /// onto itself.
    pub fn same_database(&self, other: &ConnConfig) -> bool {
        self.params.host == other.params.host
            && self.params.hostaddr == other.params.hostaddr
            && self.params.port == other.params.port
            && self.params.dbname == other.params.dbname
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replication {
    pub publication: String,
    pub subscription: String,
    /// Defaults to the subscription name, as `CREATE SUBSCRIPTION` does.
    pub slot: String,
}

impl Default for Replication {
    fn default() -> Self {
        Replication {
            publication: "cutover_pub".into(),
            subscription: "cutover_sub".into(),
            slot: "cutover_sub".into(),
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
    pub const STATEMENT_TIMEOUT_MS: std::ops::RangeInclusive<u64> = 1..=600_000;
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
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UiCfg {
    /// A built-in theme name such as `default`, or the path of a theme file.
    /// A value ending in `.toml` or containing `/` is a path, and has already
    /// been resolved against the config file's directory.
    pub theme: String,
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

/// Present only in configs written by `cutover lab up`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabCfg {
    pub dir: PathBuf,
}

/// A config problem, displayed as a single line naming file, line, column and field.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{}: cannot read config file: {source}", .path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
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

pub fn load_with_env(path: &Path, env: &dyn Env) -> Result<Config, ConfigError> {
    let bytes = std::fs::read(path).map_err(|source| ConfigError::Read {
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
    let raw: RawConfig = toml::from_str(text).map_err(|e| ctx.toml_error(&e))?;
    Validator { ctx: &ctx, env }.config(raw)
}

// ---------------------------------------------------------------------------
// Raw (as written) shapes. Every field that needs a semantic check is Spanned
// so the check can point at it.

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    // Not Spanned: toml cannot give spans for tables written with dotted keys.
    source: Option<RawConn>,
    target: Option<RawConn>,
    replication: Option<RawReplication>,
    tables: Option<RawTables>,
    thresholds: Option<RawThresholds>,
    monitor: Option<RawMonitor>,
    session: Option<RawSession>,
    ui: Option<RawUi>,
    lab: Option<RawLab>,
    kubernetes: Option<RawKube>,
    verify: Option<RawVerify>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawVerify {
    parallelism: Option<Spanned<u64>>,
    updated_at: Option<std::collections::BTreeMap<Spanned<String>, Spanned<String>>>,
    keys: Option<RawKeys>,
}

/// Table name → the columns that identify its rows, with spans for errors.
type RawKeys = std::collections::BTreeMap<Spanned<String>, Spanned<Vec<Spanned<String>>>>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKube {
    kubeconfig: Option<Spanned<String>>,
    context: Option<Spanned<String>>,
    namespace: Option<Spanned<String>>,
    deployments: Spanned<Vec<Spanned<String>>>,
    config_object: Option<Spanned<String>>,
    config_key: Option<Spanned<String>>,
    switch_to_env: Option<Spanned<String>>,
    switch_to_file: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConn {
    dsn: Spanned<String>,
    password_env: Option<Spanned<String>>,
    label: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawReplication {
    publication: Option<Spanned<String>>,
    subscription: Option<Spanned<String>>,
    slot: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTables {
    include: Option<Spanned<Vec<Spanned<String>>>>,
    exclude: Option<Vec<Spanned<String>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawThresholds {
    max_lag_bytes: Option<Spanned<u64>>,
    max_lag_seconds: Option<Spanned<f64>>,
    max_retained_wal_bytes: Option<Spanned<u64>>,
    stale_after_seconds: Option<Spanned<f64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMonitor {
    refresh_ms: Option<Spanned<u64>>,
    statement_timeout_ms: Option<Spanned<u64>>,
    connect_timeout_ms: Option<Spanned<u64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSession {
    dir: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUi {
    theme: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLab {
    dir: Spanned<String>,
}

struct Validator<'a> {
    ctx: &'a diag::Ctx<'a>,
    env: &'a dyn Env,
}

type Result<T, E = ConfigError> = std::result::Result<T, E>;

impl Validator<'_> {
    fn err(&self, span: Range<usize>, field: &str, message: String) -> ConfigError {
        self.ctx.error(Some(span), Some(field), message)
    }

    fn config(&self, raw: RawConfig) -> Result<Config> {
        let missing = |section: &str| {
            self.ctx
                .error(None, None, format!("missing section [{section}]"))
        };
        let source_raw = raw.source.ok_or_else(|| missing("source"))?;
        let target_raw = raw.target.ok_or_else(|| missing("target"))?;
        let source = self.conn("source", source_raw)?;
        let target_dsn_span = target_raw.dsn.span();
        let target = self.conn("target", target_raw)?;
        if source.same_database(&target) {
            return Err(self.err(
                target_dsn_span,
                "target.dsn",
                format!(
                    "target is the same database as source ({}:{}/{})",
                    host_label(&target.params.host),
                    target.params.port,
                    target.params.dbname
                ),
            ));
        }
        let base = self.ctx.base_dir();
        Ok(Config {
            path: self.ctx.path.to_path_buf(),
            source,
            target,
            replication: self.replication(raw.replication)?,
            tables: self.tables(raw.tables)?,
            thresholds: self.thresholds(raw.thresholds)?,
            monitor: self.monitor(raw.monitor)?,
            session: SessionCfg {
                dir: match raw.session.and_then(|s| s.dir) {
                    Some(d) => base.join(self.non_empty(&d, "session.dir")?),
                    None => base.join("sessions"),
                },
            },
            ui: self.ui(raw.ui, &base)?,
            lab: match raw.lab {
                Some(l) => Some(LabCfg {
                    dir: base.join(self.non_empty(&l.dir, "lab.dir")?),
                }),
                None => None,
            },
            verify: self.verify(raw.verify)?,
            kubernetes: match raw.kubernetes {
                Some(k) => Some(self.kubernetes(k, &base)?),
                None => None,
            },
        })
    }

    fn kubernetes(&self, k: RawKube, base: &Path) -> Result<KubeCfg> {
        let opt = |v: &Option<Spanned<String>>, field: &str| -> Result<Option<String>> {
            v.as_ref()
                .map(|v| self.non_empty(v, field).map(str::to_string))
                .transpose()
        };
        if k.deployments.get_ref().is_empty() {
            return Err(self.err(
                k.deployments.span(),
                "kubernetes.deployments",
                "name at least one Deployment that uses the database".into(),
            ));
        }
        let deployments = k
            .deployments
            .get_ref()
            .iter()
            .map(|d| {
                self.non_empty(d, "kubernetes.deployments")
                    .map(str::to_string)
            })
            .collect::<Result<Vec<_>>>()?;
        if let Some(obj) = &k.config_object {
            let ok = obj.get_ref().split_once('/').is_some_and(|(kind, name)| {
                matches!(kind, "configmap" | "secret" | "service") && !name.is_empty()
            });
            if !ok {
                return Err(self.err(
                    obj.span(),
                    "kubernetes.config_object",
                    format!(
                        "\"{}\" is not configmap/NAME, secret/NAME or service/NAME",
                        obj.get_ref().escape_debug()
                    ),
                ));
            }
        }
        let switch_to = match (&k.switch_to_env, &k.switch_to_file) {
            (Some(_), Some(f)) => {
                return Err(self.err(
                    f.span(),
                    "kubernetes.switch_to_file",
                    "set switch_to_env or switch_to_file, not both".into(),
                ))
            }
            (Some(e), None) => Some(ValueSource::Env(
                self.non_empty(e, "kubernetes.switch_to_env")?.to_string(),
            )),
            (None, Some(f)) => Some(ValueSource::File(
                base.join(self.non_empty(f, "kubernetes.switch_to_file")?),
            )),
            (None, None) => None,
        };
        if let (Some(_), None) = (&switch_to, &k.config_key) {
            let span = k
                .switch_to_env
                .as_ref()
                .or(k.switch_to_file.as_ref())
                .map(|s| s.span())
                .unwrap_or_default();
            let field = if k.switch_to_env.is_some() {
                "kubernetes.switch_to_env"
            } else {
                "kubernetes.switch_to_file"
            };
            return Err(self.err(
                span,
                field,
                "a switch value needs config_object and config_key to say where it goes".into(),
            ));
        }
        if let (Some(_), None) = (&k.config_key, &k.config_object) {
            return Err(self.err(
                k.config_key.as_ref().map(|s| s.span()).unwrap_or_default(),
                "kubernetes.config_key",
                "config_key needs config_object (configmap/NAME, secret/NAME or service/NAME)"
                    .into(),
            ));
        }
        Ok(KubeCfg {
            switch_to,
            kubeconfig: opt(&k.kubeconfig, "kubernetes.kubeconfig")?.map(|p| base.join(p)),
            context: opt(&k.context, "kubernetes.context")?,
            namespace: opt(&k.namespace, "kubernetes.namespace")?,
            deployments,
            config_object: opt(&k.config_object, "kubernetes.config_object")?,
            config_key: opt(&k.config_key, "kubernetes.config_key")?,
        })
    }

    fn non_empty<'s>(&self, v: &'s Spanned<String>, field: &str) -> Result<&'s str> {
        if v.get_ref().trim().is_empty() {
            Err(self.err(v.span(), field, "must not be empty".into()))
        } else {
            Ok(v.get_ref())
        }
    }

    fn conn(&self, side: &str, raw: RawConn) -> Result<ConnConfig> {
        let label = match &raw.label {
            Some(l) => {
                let s = self.non_empty(l, &format!("{side}.label"))?;
                if s.chars().any(char::is_control) {
                    return Err(self.err(
                        l.span(),
                        &format!("{side}.label"),
                        "must not contain control characters".into(),
                    ));
                }
                s.to_owned()
            }
            None => side.to_owned(),
        };
        let password_env = match &raw.password_env {
            Some(p) => {
                let name = p.get_ref();
                let valid = !name.is_empty()
                    && !name.starts_with(|c: char| c.is_ascii_digit())
                    && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
                if !valid {
                    return Err(self.err(
                        p.span(),
                        &format!("{side}.password_env"),
                        format!(
                            "invalid environment variable name \"{}\" (expected letters, digits and _)",
                            name.escape_debug()
                        ),
                    ));
                }
                Some(name.as_str())
            }
            None => None,
        };
        let dsn = raw.dsn.get_ref();
        ConnConfig::from_dsn(label, dsn, password_env, self.env).map_err(|e| match e {
            ConnConfigError::Dsn(e) => {
                let at = self.ctx.offset_in_string(raw.dsn.span(), dsn, e.offset);
                self.ctx
                    .error(Some(at..at), Some(&format!("{side}.dsn")), e.message)
            }
            ConnConfigError::PasswordEnv(var) => self.err(
                raw.password_env
                    .as_ref()
                    .map(Spanned::span)
                    .unwrap_or(raw.dsn.span()),
                &format!("{side}.password_env"),
                format!("environment variable {var} is not set or empty"),
            ),
        })
    }

    fn identifier(&self, v: &Spanned<String>, field: &str) -> Result<String> {
        let s = v.get_ref();
        if s.is_empty() {
            return Err(self.err(v.span(), field, "must not be empty".into()));
        }
        if s.len() > 63 {
            return Err(self.err(
                v.span(),
                field,
                format!(
                    "\"{}\" is {} bytes long; PostgreSQL names are at most 63 bytes",
                    s.escape_debug(),
                    s.len()
                ),
            ));
        }
        if s.contains('\0') {
            return Err(self.err(v.span(), field, "must not contain NUL".into()));
        }
        Ok(s.clone())
    }

    fn replication(&self, raw: Option<RawReplication>) -> Result<Replication> {
        let d = Replication::default();
        let Some(raw) = raw else { return Ok(d) };
        let publication = match &raw.publication {
            Some(v) => self.identifier(v, "replication.publication")?,
            None => d.publication,
        };
        let subscription = match &raw.subscription {
            Some(v) => self.identifier(v, "replication.subscription")?,
            None => d.subscription,
        };
        // PostgreSQL only accepts [a-z0-9_] in slot names, and CREATE SUBSCRIPTION
        // derives the slot from the subscription name, so check whichever is used.
        let (slot, slot_field, slot_span) = match &raw.slot {
            Some(v) => (
                self.identifier(v, "replication.slot")?,
                "replication.slot",
                Some(v.span()),
            ),
            None => (
                subscription.clone(),
                "replication.subscription",
                raw.subscription.as_ref().map(Spanned::span),
            ),
        };
        if let Some(c) = slot
            .chars()
            .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_'))
        {
            let mut message = format!(
                "\"{}\" is not a valid replication slot name: unexpected \"{}\" (lowercase letters, digits and _ only)",
                slot.escape_debug(),
                c.escape_debug()
            );
            if raw.slot.is_none() {
                message.push_str("; set replication.slot explicitly");
            }
            return Err(self.err(slot_span.unwrap_or(0..0), slot_field, message));
        }
        Ok(Replication {
            publication,
            subscription,
            slot,
        })
    }

    fn patterns(&self, list: &[Spanned<String>], field: &str) -> Result<Vec<TablePattern>> {
        list.iter()
            .enumerate()
            .map(|(i, p)| {
                TablePattern::parse(p.get_ref())
                    .map_err(|m| self.err(p.span(), &format!("{field}[{i}]"), m))
            })
            .collect()
    }

    fn tables(&self, raw: Option<RawTables>) -> Result<TableFilter> {
        let mut filter = TableFilter::default();
        let Some(raw) = raw else { return Ok(filter) };
        if let Some(include) = &raw.include {
            if include.get_ref().is_empty() {
                return Err(self.err(
                    include.span(),
                    "tables.include",
                    "must list at least one pattern (use [\"*.*\"] for all tables)".into(),
                ));
            }
            filter.include = self.patterns(include.get_ref(), "tables.include")?;
        }
        if let Some(exclude) = &raw.exclude {
            filter.exclude = self.patterns(exclude, "tables.exclude")?;
        }
        Ok(filter)
    }

    fn verify(&self, raw: Option<RawVerify>) -> Result<VerifyCfg> {
        let Some(raw) = raw else {
            return Ok(VerifyCfg::default());
        };
        let table = |t: &Spanned<String>, field: &str| -> Result<crate::session::TableRef> {
            match t.get_ref().split_once('.') {
                Some((schema, name)) if !schema.is_empty() && !name.is_empty() => {
                    Ok(crate::session::TableRef::new(schema, name))
                }
                _ => Err(self.err(
                    t.span(),
                    field,
                    format!("\"{}\" is not schema.table", t.get_ref().escape_debug()),
                )),
            }
        };
        let mut cfg = VerifyCfg {
            parallelism: match &raw.parallelism {
                Some(_) => {
                    Some(self.positive_u64(&raw.parallelism, "verify.parallelism", 1)? as usize)
                }
                None => None,
            },
            ..VerifyCfg::default()
        };
        for (t, col) in raw.updated_at.iter().flatten() {
            let col = self.non_empty(col, "verify.updated_at")?;
            cfg.updated_at
                .insert(table(t, "verify.updated_at")?, col.to_string());
        }
        for (t, cols) in raw.keys.iter().flatten() {
            if cols.get_ref().is_empty() {
                return Err(self.err(
                    cols.span(),
                    "verify.keys",
                    "name at least one column".into(),
                ));
            }
            let cols = cols
                .get_ref()
                .iter()
                .map(|c| self.non_empty(c, "verify.keys").map(str::to_string))
                .collect::<Result<Vec<_>>>()?;
            cfg.keys.insert(table(t, "verify.keys")?, cols);
        }
        Ok(cfg)
    }

    fn positive_u64(&self, v: &Option<Spanned<u64>>, field: &str, default: u64) -> Result<u64> {
        match v {
            Some(v) if *v.get_ref() == 0 => {
                Err(self.err(v.span(), field, "must be greater than 0".into()))
            }
            Some(v) => Ok(*v.get_ref()),
            None => Ok(default),
        }
    }

    fn positive_f64(&self, v: &Option<Spanned<f64>>, field: &str, default: f64) -> Result<f64> {
        match v {
            Some(v) if !(v.get_ref().is_finite() && *v.get_ref() > 0.0) => Err(self.err(
                v.span(),
                field,
                format!(
                    "must be a finite number greater than 0 (got {})",
                    v.get_ref()
                ),
            )),
            Some(v) => Ok(*v.get_ref()),
            None => Ok(default),
        }
    }

    fn thresholds(&self, raw: Option<RawThresholds>) -> Result<Thresholds> {
        let d = Thresholds::default();
        let Some(raw) = raw else { return Ok(d) };
        Ok(Thresholds {
            max_lag_bytes: self.positive_u64(
                &raw.max_lag_bytes,
                "thresholds.max_lag_bytes",
                d.max_lag_bytes,
            )?,
            max_lag_seconds: self.positive_f64(
                &raw.max_lag_seconds,
                "thresholds.max_lag_seconds",
                d.max_lag_seconds,
            )?,
            max_retained_wal_bytes: self.positive_u64(
                &raw.max_retained_wal_bytes,
                "thresholds.max_retained_wal_bytes",
                d.max_retained_wal_bytes,
            )?,
            stale_after_seconds: self.positive_f64(
                &raw.stale_after_seconds,
                "thresholds.stale_after_seconds",
                d.stale_after_seconds,
            )?,
        })
    }

    fn ranged(
        &self,
        v: &Option<Spanned<u64>>,
        field: &str,
        range: std::ops::RangeInclusive<u64>,
        default: u64,
    ) -> Result<u64> {
        match v {
            Some(v) if !range.contains(v.get_ref()) => Err(self.err(
                v.span(),
                field,
                format!(
                    "{} is out of range (expected {}..={})",
                    v.get_ref(),
                    range.start(),
                    range.end()
                ),
            )),
            Some(v) => Ok(*v.get_ref()),
            None => Ok(default),
        }
    }

    fn monitor(&self, raw: Option<RawMonitor>) -> Result<Monitor> {
        let d = Monitor::default();
        let Some(raw) = raw else { return Ok(d) };
        Ok(Monitor {
            refresh_ms: self.ranged(
                &raw.refresh_ms,
                "monitor.refresh_ms",
                Monitor::REFRESH_MS,
                d.refresh_ms,
            )?,
            statement_timeout_ms: self.ranged(
                &raw.statement_timeout_ms,
                "monitor.statement_timeout_ms",
                Monitor::STATEMENT_TIMEOUT_MS,
                d.statement_timeout_ms,
            )?,
            connect_timeout_ms: self.ranged(
                &raw.connect_timeout_ms,
                "monitor.connect_timeout_ms",
                Monitor::CONNECT_TIMEOUT_MS,
                d.connect_timeout_ms,
            )?,
        })
    }

    fn ui(&self, raw: Option<RawUi>, base: &Path) -> Result<UiCfg> {
        let Some(theme) = raw.and_then(|u| u.theme) else {
            return Ok(UiCfg::default());
        };
        let name = self.non_empty(&theme, "ui.theme")?;
        let mut ui = UiCfg {
            theme: name.to_owned(),
        };
        if ui.theme_is_file() {
            ui.theme = base.join(name).to_string_lossy().into_owned();
        }
        Ok(ui)
    }
}

fn host_label(h: &Host) -> String {
    match h {
        Host::Tcp(h) => h.clone(),
        Host::Unix(d) => d.display().to_string(),
    }
}

#[cfg(test)]
mod tests;
