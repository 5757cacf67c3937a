//! libpq-compatible connection strings.
//!
//! We parse these ourselves rather than with `tokio_postgres::Config::from_str`
//! because that parser rejects `sslmode=verify-ca`/`verify-full` and knows nothing
//! of the `PG*` environment variables or the password file, and operators expect
//! a DSN that works with `psql` to work here unchanged.
//!
//! Several hosts (`host=a,b port=1,2`, `postgres://a:1,b:2/db`) are kept as a
//! list of [`Endpoint`]s that [`crate::pg::conn`] tries in order, checking
//! `target_session_attrs` on each, as libpq does.

use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use super::secret::Secret;

/// Where environment variables come from; injectable so tests never touch the
/// process environment (which is shared between test threads).
pub trait Env {
    fn var(&self, name: &str) -> Option<String>;
}

/// The real process environment.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

impl<F> Env for F
where
    F: Fn(&str) -> Option<String>,
{
    fn var(&self, name: &str) -> Option<String> {
        self(name)
    }
}

/// libpq's `sslmode`, minus `allow` (which tokio-postgres cannot express and
/// which nobody should choose for a migration).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SslMode {
    Disable,
    #[default]
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

/// libpq's `target_session_attrs`: which of the listed hosts is acceptable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TargetSessionAttrs {
    #[default]
    Any,
    /// The session accepts writes (`SHOW transaction_read_only` is off).
    ReadWrite,
    /// The session does not accept writes.
    ReadOnly,
    /// The server is not in recovery.
    Primary,
    /// The server is in recovery.
    Standby,
    /// A standby if any host is one, else any host.
    PreferStandby,
}

impl TargetSessionAttrs {
    pub const EXPECTED: &'static str =
        "any, read-write, read-only, primary, standby or prefer-standby";

    pub fn as_str(self) -> &'static str {
        match self {
            TargetSessionAttrs::Any => "any",
            TargetSessionAttrs::ReadWrite => "read-write",
            TargetSessionAttrs::ReadOnly => "read-only",
            TargetSessionAttrs::Primary => "primary",
            TargetSessionAttrs::Standby => "standby",
            TargetSessionAttrs::PreferStandby => "prefer-standby",
        }
    }
}

impl FromStr for TargetSessionAttrs {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [
            TargetSessionAttrs::Any,
            TargetSessionAttrs::ReadWrite,
            TargetSessionAttrs::ReadOnly,
            TargetSessionAttrs::Primary,
            TargetSessionAttrs::Standby,
            TargetSessionAttrs::PreferStandby,
        ]
        .into_iter()
        .find(|t| t.as_str() == s)
        .ok_or_else(|| {
            format!(
                "invalid target_session_attrs \"{}\" (expected {})",
                s.escape_debug(),
                TargetSessionAttrs::EXPECTED
            )
        })
    }
}

impl fmt::Display for TargetSessionAttrs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl SslMode {
    pub const EXPECTED: &'static str = "disable, prefer, require, verify-ca or verify-full";

    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }
}

impl FromStr for SslMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "disable" => Ok(SslMode::Disable),
            "prefer" => Ok(SslMode::Prefer),
            "require" => Ok(SslMode::Require),
            "verify-ca" => Ok(SslMode::VerifyCa),
            "verify-full" => Ok(SslMode::VerifyFull),
            _ => Err(format!(
                "invalid sslmode \"{}\" (expected {})",
                s.escape_debug(),
                SslMode::EXPECTED
            )),
        }
    }
}

impl fmt::Display for SslMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error in a connection string or in the environment used to complete it.
///
/// `offset` is the byte offset inside the DSN string where the problem is, when
/// it comes from the DSN itself (not from a `PG*` variable).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnInfoError {
    pub offset: Option<usize>,
    pub message: String,
}

impl ConnInfoError {
    fn at(offset: usize, message: impl Into<String>) -> Self {
        ConnInfoError {
            offset: Some(offset),
            message: message.into(),
        }
    }

    fn env(message: impl Into<String>) -> Self {
        ConnInfoError {
            offset: None,
            message: message.into(),
        }
    }
}

impl fmt::Display for ConnInfoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ConnInfoError {}

/// Keys we accept, in the order shown to the user when they mistype one.
pub const KEYS: &[&str] = &[
    "host",
    "hostaddr",
    "port",
    "dbname",
    "user",
    "password",
    "passfile",
    "service",
    "sslmode",
    "sslrootcert",
    "sslcert",
    "sslkey",
    "application_name",
    "connect_timeout",
    "options",
    "target_session_attrs",
    "keepalives",
    "keepalives_idle",
    "keepalives_interval",
    "keepalives_count",
];

/// A connection string as written: only what it states explicitly.
/// Empty values count as absent, as in libpq.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConnInfo {
    /// One entry per host; an empty entry means the default host.
    pub host: Option<Vec<String>>,
    /// One entry per host; `None` entries are left empty in the list.
    pub hostaddr: Option<Vec<Option<IpAddr>>>,
    /// One port for every host, or one per host; `None`: the default port.
    pub port: Option<Vec<Option<u16>>>,
    pub dbname: Option<String>,
    pub user: Option<String>,
    pub password: Option<Secret>,
    pub passfile: Option<PathBuf>,
    /// A group of `pg_service.conf` whose keywords fill what is not given here.
    pub service: Option<String>,
    pub sslmode: Option<SslMode>,
    pub sslrootcert: Option<String>,
    pub sslcert: Option<PathBuf>,
    pub sslkey: Option<PathBuf>,
    pub application_name: Option<String>,
    pub connect_timeout: Option<Duration>,
    pub options: Option<String>,
    pub target_session_attrs: Option<TargetSessionAttrs>,
    pub keepalives: Option<bool>,
    pub keepalives_idle: Option<Duration>,
    pub keepalives_interval: Option<Duration>,
    pub keepalives_count: Option<u32>,
}

/// Where a connection goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    Tcp(String),
    /// Directory holding the server's socket, as libpq treats a host starting with `/`.
    Unix(PathBuf),
}

impl Host {
    fn from_value(value: &str) -> Host {
        if value.starts_with('/') {
            Host::Unix(PathBuf::from(value))
        } else {
            Host::Tcp(value.to_owned())
        }
    }

    /// The host as written: a name, an address, or a socket directory.
    pub fn label(&self) -> String {
        match self {
            Host::Tcp(h) => h.clone(),
            Host::Unix(d) => d.display().to_string(),
        }
    }
}

/// One server of a (possibly multi-host) connection string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub host: Host,
    pub hostaddr: Option<IpAddr>,
    pub port: u16,
}

impl Endpoint {
    pub fn is_unix_socket(&self) -> bool {
        matches!(self.host, Host::Unix(_))
    }
}

/// `host:port` for messages, with IPv6 literals bracketed and sockets shown as
/// the socket file, as libpq does.
impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.host {
            Host::Unix(dir) => write!(
                f,
                "{}",
                dir.join(format!(".s.PGSQL.{}", self.port)).display()
            ),
            Host::Tcp(h) => {
                let shown = if h.contains(':') {
                    format!("[{h}]")
                } else {
                    h.clone()
                };
                match self.hostaddr {
                    Some(addr) if addr.to_string() != *h => {
                        write!(f, "{shown} ({addr}):{}", self.port)
                    }
                    _ => write!(f, "{shown}:{}", self.port),
                }
            }
        }
    }
}

/// TCP keepalives, so a peer that vanished (power loss, network partition) is
/// noticed in seconds rather than after the kernel's two hours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Keepalives {
    pub enabled: bool,
    pub idle: Duration,
    pub interval: Duration,
    pub count: u32,
}

impl Default for Keepalives {
    /// On, with a first probe after 10 s idle, then every 5 s, 3 unanswered
    /// probes: a dead peer is found in about 25 s.
    fn default() -> Self {
        Keepalives {
            enabled: true,
            idle: Duration::from_secs(10),
            interval: Duration::from_secs(5),
            count: 3,
        }
    }
}

/// A fully resolved connection: DSN, then the service file, then `PG*`
/// variables, then libpq's defaults. The password is resolved separately (see
/// [`explicit_password`]) so that this struct can be shown and logged freely.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnParams {
    /// Tried in order; never empty.
    pub hosts: Vec<Endpoint>,
    pub dbname: String,
    pub user: String,
    pub sslmode: SslMode,
    /// A PEM file of trusted roots, or libpq's special value `system`.
    pub sslrootcert: Option<String>,
    pub sslcert: Option<PathBuf>,
    pub sslkey: Option<PathBuf>,
    pub application_name: Option<String>,
    /// `Some(Duration::ZERO)` means "wait forever" (libpq's `connect_timeout=0`).
    pub connect_timeout: Option<Duration>,
    pub options: Option<String>,
    pub passfile: Option<PathBuf>,
    pub target_session_attrs: TargetSessionAttrs,
    pub keepalives: Keepalives,
}

impl ConnParams {
    /// The connection as a libpq `key='value'` string for another libpq
    /// program (pg_dump, psql, a subscription's CONNECTION), with no
    /// password: give that through PGPASSWORD, or append it where the
    /// string itself must carry it and is never shown.
    pub fn libpq_conninfo(&self) -> String {
        fn q(v: &str) -> String {
            format!("'{}'", v.replace('\\', "\\\\").replace('\'', "\\'"))
        }
        let list = |f: &dyn Fn(&Endpoint) -> String| {
            self.hosts.iter().map(f).collect::<Vec<_>>().join(",")
        };
        let mut out = vec![
            format!(
                "host={}",
                q(&list(&|e| match &e.host {
                    Host::Tcp(h) => h.clone(),
                    Host::Unix(d) => d.display().to_string(),
                }))
            ),
            format!("port={}", q(&list(&|e| e.port.to_string()))),
        ];
        if self.hosts.iter().any(|e| e.hostaddr.is_some()) {
            let addrs = list(&|e| e.hostaddr.map(|a| a.to_string()).unwrap_or_default());
            out.push(format!("hostaddr={}", q(&addrs)));
        }
        out.push(format!("dbname={}", q(&self.dbname)));
        out.push(format!("user={}", q(&self.user)));
        out.push(format!("sslmode={}", self.sslmode.as_str()));
        for (k, v) in [
            ("sslrootcert", self.sslrootcert.clone()),
            (
                "sslcert",
                self.sslcert.as_ref().map(|p| p.display().to_string()),
            ),
            (
                "sslkey",
                self.sslkey.as_ref().map(|p| p.display().to_string()),
            ),
            ("options", self.options.clone()),
        ] {
            if let Some(v) = v {
                out.push(format!("{k}={}", q(&v)));
            }
        }
        if self.target_session_attrs != TargetSessionAttrs::Any {
            out.push(format!(
                "target_session_attrs={}",
                self.target_session_attrs.as_str()
            ));
        }
        out.join(" ")
    }

    /// Every host as `host:port`, comma-separated (see [`Endpoint`]'s Display).
    pub fn endpoint(&self) -> String {
        self.hosts
            .iter()
            .map(Endpoint::to_string)
            .collect::<Vec<_>>()
            .join(",")
    }

    /// True when every host is a unix socket.
    pub fn is_unix_socket(&self) -> bool {
        self.hosts.iter().all(Endpoint::is_unix_socket)
    }
}

mod lexer;
mod resolve;
mod service;
mod values;

pub use resolve::{explicit_password, MissingPasswordEnv, PasswordSource};

/// Parses a libpq connection string: either `key=value ...` or a
/// `postgres[ql]://` URI.
pub fn parse(dsn: &str) -> Result<ConnInfo, ConnInfoError> {
    let lead = dsn.len() - dsn.trim_start().len();
    let trimmed = &dsn[lead..];
    let pairs = match lexer::URI_PREFIXES.iter().find(|p| trimmed.starts_with(*p)) {
        Some(prefix) => lexer::parse_uri(dsn, lead + prefix.len())?,
        None => lexer::parse_key_values(dsn)?,
    };
    let mut info = ConnInfo::default();
    let mut offsets = std::collections::HashMap::new();
    for pair in pairs {
        offsets.insert(pair.key.clone(), pair.value_offset);
        info.apply(pair)?;
    }
    info.check_counts()
        .map_err(|(key, message)| ConnInfoError {
            offset: offsets.get(key).copied(),
            message,
        })?;
    Ok(info)
}

#[cfg(test)]
mod tests;
