//! libpq-compatible connection strings.
//!
//! We parse these ourselves rather than with `tokio_postgres::Config::from_str`
//! because that parser rejects `sslmode=verify-ca`/`verify-full` and knows nothing
//! of the `PG*` environment variables or the password file, and operators expect
//! a DSN that works with `psql` to work here unchanged.

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
    "sslmode",
    "sslrootcert",
    "sslcert",
    "sslkey",
    "application_name",
    "connect_timeout",
    "options",
];

/// A connection string as written: only what it states explicitly.
/// Empty values count as absent, as in libpq.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConnInfo {
    pub host: Option<String>,
    pub hostaddr: Option<IpAddr>,
    pub port: Option<u16>,
    pub dbname: Option<String>,
    pub user: Option<String>,
    pub password: Option<Secret>,
    pub passfile: Option<PathBuf>,
    pub sslmode: Option<SslMode>,
    pub sslrootcert: Option<String>,
    pub sslcert: Option<PathBuf>,
    pub sslkey: Option<PathBuf>,
    pub application_name: Option<String>,
    pub connect_timeout: Option<Duration>,
    pub options: Option<String>,
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
}

/// A fully resolved connection: DSN, then `PG*` variables, then libpq's defaults.
/// The password is resolved separately (see [`resolve_password`]) so that this
/// struct can be shown and logged freely.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnParams {
    pub host: Host,
    pub hostaddr: Option<IpAddr>,
    pub port: u16,
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
}

impl ConnParams {
    /// `host:port` for messages, with IPv6 literals bracketed and sockets shown
    /// as the socket file, as libpq does.
    pub fn endpoint(&self) -> String {
        match &self.host {
            Host::Unix(dir) => dir
                .join(format!(".s.PGSQL.{}", self.port))
                .display()
                .to_string(),
            Host::Tcp(h) => {
                let shown = if h.contains(':') {
                    format!("[{h}]")
                } else {
                    h.clone()
                };
                match self.hostaddr {
                    Some(addr) if addr.to_string() != *h => {
                        format!("{shown} ({addr}):{}", self.port)
                    }
                    _ => format!("{shown}:{}", self.port),
                }
            }
        }
    }

    pub fn is_unix_socket(&self) -> bool {
        matches!(self.host, Host::Unix(_))
    }
}

const URI_PREFIXES: &[&str] = &["postgresql://", "postgres://"];

fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

struct Pair {
    key: String,
    key_offset: usize,
    value: String,
    value_offset: usize,
    /// The token right after an unquoted `password=` may be the rest of a
    /// password containing a space, so errors about it must not quote it.
    after_bare_password: bool,
}

const BARE_PASSWORD_HINT: &str =
    "after the password (quote a password containing spaces: password='...')";

/// Parses a libpq connection string: either `key=value ...` or a
/// `postgres[ql]://` URI.
pub fn parse(dsn: &str) -> Result<ConnInfo, ConnInfoError> {
    let lead = dsn.len() - dsn.trim_start().len();
    let trimmed = &dsn[lead..];
    let pairs = match URI_PREFIXES.iter().find(|p| trimmed.starts_with(*p)) {
        Some(prefix) => parse_uri(dsn, lead + prefix.len())?,
        None => parse_key_values(dsn)?,
    };
    ConnInfo::from_pairs(pairs)
}

fn parse_key_values(s: &str) -> Result<Vec<Pair>, ConnInfoError> {
    let b = s.as_bytes();
    let mut i = 0;
    let mut pairs: Vec<Pair> = Vec::new();
    let mut bare_password = false;
    loop {
        while i < b.len() && is_space(b[i]) {
            i += 1;
        }
        if i >= b.len() {
            break;
        }
        let key_offset = i;
        while i < b.len() && b[i] != b'=' && !is_space(b[i]) {
            i += 1;
        }
        let key = &s[key_offset..i];
        while i < b.len() && is_space(b[i]) {
            i += 1;
        }
        if i >= b.len() || b[i] != b'=' {
            let message = if bare_password {
                format!("missing \"=\" in connection string {BARE_PASSWORD_HINT}")
            } else {
                format!(
                    "missing \"=\" after \"{}\" in connection string",
                    key.escape_debug()
                )
            };
            return Err(ConnInfoError::at(key_offset, message));
        }
        if key.is_empty() {
            return Err(ConnInfoError::at(
                key_offset,
                "missing option name before \"=\" in connection string",
            ));
        }
        i += 1;
        while i < b.len() && is_space(b[i]) {
            i += 1;
        }
        let value_offset = i;
        let quoted = i < b.len() && b[i] == b'\'';
        // Only ASCII bytes (quote, backslash, whitespace) are ever dropped, so the
        // collected bytes stay valid UTF-8.
        let mut value = Vec::new();
        if i < b.len() && b[i] == b'\'' {
            i += 1;
            loop {
                if i >= b.len() {
                    return Err(ConnInfoError::at(
                        value_offset,
                        format!(
                            "unterminated quoted string in connection string (value of \"{}\")",
                            key.escape_debug()
                        ),
                    ));
                }
                match b[i] {
                    b'\\' if i + 1 < b.len() => {
                        value.push(b[i + 1]);
                        i += 2;
                    }
                    b'\\' => i += 1,
                    b'\'' => {
                        i += 1;
                        break;
                    }
                    c => {
                        value.push(c);
                        i += 1;
                    }
                }
            }
        } else {
            while i < b.len() && !is_space(b[i]) {
                if b[i] == b'\\' {
                    i += 1;
                    if i >= b.len() {
                        break;
                    }
                }
                value.push(b[i]);
                i += 1;
            }
        }
        let value = String::from_utf8(value)
            .map_err(|_| ConnInfoError::at(value_offset, "connection string is not valid UTF-8"))?;
        pairs.push(Pair {
            key: key.to_owned(),
            key_offset,
            value,
            value_offset,
            after_bare_password: bare_password,
        });
        bare_password = key == "password" && !quoted;
    }
    Ok(pairs)
}

/// Decodes `%XX` escapes, rejecting malformed ones and `%00` like libpq.
fn percent_decode(s: &str, offset: usize) -> Result<String, ConnInfoError> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = |c: u8| (c as char).to_digit(16);
            // The token itself is not quoted: it may be inside a password.
            let (hi, lo) = match (
                b.get(i + 1).and_then(|&c| hex(c)),
                b.get(i + 2).and_then(|&c| hex(c)),
            ) {
                (Some(hi), Some(lo)) => (hi, lo),
                _ => {
                    return Err(ConnInfoError::at(
                        offset + i,
                        "invalid percent-encoded token in URI (expected % and two hex digits)",
                    ))
                }
            };
            let byte = (hi * 16 + lo) as u8;
            if byte == 0 {
                return Err(ConnInfoError::at(
                    offset + i,
                    "forbidden value %00 in percent-encoded URI value",
                ));
            }
            out.push(byte);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out)
        .map_err(|_| ConnInfoError::at(offset, "percent-encoded URI value is not valid UTF-8"))
}

fn parse_uri(s: &str, start: usize) -> Result<Vec<Pair>, ConnInfoError> {
    let mut pairs = Vec::new();
    let mut push = |key: &str, key_offset: usize, raw: &str, value_offset: usize| {
        let value = percent_decode(raw, value_offset)?;
        pairs.push(Pair {
            key: key.to_owned(),
            key_offset,
            value,
            value_offset,
            after_bare_password: false,
        });
        Ok::<(), ConnInfoError>(())
    };

    let rest = &s[start..];
    let (before_query, query) = match rest.find('?') {
        Some(q) => (&rest[..q], Some((&rest[q + 1..], start + q + 1))),
        None => (rest, None),
    };
    let (authority, path) = match before_query.find('/') {
        Some(p) => (
            &before_query[..p],
            Some((&before_query[p + 1..], start + p + 1)),
        ),
        None => (before_query, None),
    };

    // The last '@' so that an unencoded '@' in a password still works.
    let (hostport, hostport_offset) = match authority.rfind('@') {
        Some(at) => {
            let userinfo = &authority[..at];
            match userinfo.find(':') {
                Some(c) => {
                    push("user", start, &userinfo[..c], start)?;
                    push("password", start + c + 1, &userinfo[c + 1..], start + c + 1)?;
                }
                None => push("user", start, userinfo, start)?,
            }
            (&authority[at + 1..], start + at + 1)
        }
        None => (authority, start),
    };

    let (host, host_offset, port) = if let Some(inner) = hostport.strip_prefix('[') {
        let close = inner.find(']').ok_or_else(|| {
            ConnInfoError::at(
                hostport_offset,
                "missing \"]\" after IPv6 host address in URI",
            )
        })?;
        let host = &inner[..close];
        if host.is_empty() {
            return Err(ConnInfoError::at(
                hostport_offset,
                "IPv6 host address may not be empty in URI",
            ));
        }
        let after = &inner[close + 1..];
        let port_offset = hostport_offset + 1 + close + 2;
        let port = if after.is_empty() {
            None
        } else if let Some(p) = after.strip_prefix(':') {
            Some((p, port_offset))
        } else if after.starts_with(',') {
            return Err(multiple_hosts(hostport_offset + 1 + close + 1));
        } else {
            return Err(ConnInfoError::at(
                hostport_offset + 1 + close + 1,
                format!(
                    "unexpected \"{}\" after IPv6 host address in URI (expected \":\" port)",
                    after.chars().next().unwrap_or_default().escape_debug()
                ),
            ));
        };
        (host, hostport_offset + 1, port)
    } else {
        if let Some(comma) = hostport.find(',') {
            return Err(multiple_hosts(hostport_offset + comma));
        }
        match hostport.find(':') {
            Some(c) => (
                &hostport[..c],
                hostport_offset,
                Some((&hostport[c + 1..], hostport_offset + c + 1)),
            ),
            None => (hostport, hostport_offset, None),
        }
    };
    if !host.is_empty() {
        push("host", host_offset, host, host_offset)?;
    }
    if let Some((port, offset)) = port {
        push("port", offset, port, offset)?;
    }
    if let Some((dbname, offset)) = path {
        if !dbname.is_empty() {
            push("dbname", offset, dbname, offset)?;
        }
    }
    if let Some((query, qoffset)) = query {
        let mut pos = 0;
        for param in query.split('&') {
            let offset = qoffset + pos;
            pos += param.len() + 1;
            if param.is_empty() {
                continue;
            }
            let Some(eq) = param.find('=') else {
                return Err(ConnInfoError::at(
                    offset,
                    format!(
                        "missing \"=\" in URI query parameter \"{}\"",
                        param.escape_debug()
                    ),
                ));
            };
            let key = percent_decode(&param[..eq], offset)?;
            let value_offset = offset + eq + 1;
            let raw = &param[eq + 1..];
            // libpq accepts the JDBC spelling `ssl=true` as `sslmode=require`.
            if key == "ssl" {
                if percent_decode(raw, value_offset)? != "true" {
                    return Err(ConnInfoError::at(
                        value_offset,
                        "invalid URI query parameter ssl (only ssl=true is accepted)",
                    ));
                }
                push("sslmode", offset, "require", value_offset)?;
            } else {
                push(&key, offset, raw, value_offset)?;
            }
        }
    }
    Ok(pairs)
}

fn multiple_hosts(offset: usize) -> ConnInfoError {
    ConnInfoError::at(
        offset,
        "multiple hosts are not supported: give exactly one host",
    )
}

fn parse_port(value: &str) -> Result<u16, String> {
    if value.contains(',') {
        return Err("multiple ports are not supported: give exactly one port".into());
    }
    match value.trim().parse::<u32>() {
        Ok(p) if (1..=65535).contains(&p) => Ok(p as u16),
        _ => Err(format!(
            "invalid port \"{}\" (expected 1..65535)",
            value.escape_debug()
        )),
    }
}

/// libpq semantics: whole seconds, 0 or negative waits forever, and anything
/// below 2 s is raised to 2 s.
fn parse_connect_timeout(value: &str) -> Result<Duration, String> {
    match value.trim().parse::<i64>() {
        Ok(s) if s <= 0 => Ok(Duration::ZERO),
        Ok(s) => Ok(Duration::from_secs(s.max(2) as u64)),
        Err(_) => Err(format!(
            "invalid connect_timeout \"{}\" (expected whole seconds)",
            value.escape_debug()
        )),
    }
}

fn parse_hostaddr(value: &str) -> Result<IpAddr, String> {
    value.parse::<IpAddr>().map_err(|_| {
        format!(
            "invalid hostaddr \"{}\" (expected a numeric IPv4 or IPv6 address)",
            value.escape_debug()
        )
    })
}

impl ConnInfo {
    fn from_pairs(pairs: Vec<Pair>) -> Result<ConnInfo, ConnInfoError> {
        let mut info = ConnInfo::default();
        for Pair {
            key,
            key_offset,
            value,
            value_offset,
            after_bare_password,
        } in pairs
        {
            if after_bare_password && !KEYS.contains(&key.as_str()) {
                return Err(ConnInfoError::at(
                    key_offset,
                    format!("unknown connection option {BARE_PASSWORD_HINT}"),
                ));
            }
            if !KEYS.contains(&key.as_str()) {
                return Err(ConnInfoError::at(
                    key_offset,
                    format!(
                        "unknown connection option \"{}\" (expected one of {})",
                        key.escape_debug(),
                        KEYS.join(", ")
                    ),
                ));
            }
            let bad = |message: String| ConnInfoError::at(value_offset, message);
            // Later occurrences override earlier ones, and an empty value resets
            // the key to "unset", as in libpq.
            let v = if value.is_empty() { None } else { Some(value) };
            match key.as_str() {
                "host" => {
                    if let Some(h) = &v {
                        if let Some(c) = h.find(',') {
                            return Err(multiple_hosts(value_offset + c));
                        }
                    }
                    info.host = v;
                }
                "hostaddr" => {
                    info.hostaddr = v.as_deref().map(parse_hostaddr).transpose().map_err(bad)?
                }
                "port" => info.port = v.as_deref().map(parse_port).transpose().map_err(bad)?,
                "dbname" => info.dbname = v,
                "user" => info.user = v,
                "password" => info.password = v.map(Secret::from),
                "passfile" => info.passfile = v.map(PathBuf::from),
                "sslmode" => {
                    info.sslmode = v
                        .as_deref()
                        .map(SslMode::from_str)
                        .transpose()
                        .map_err(bad)?
                }
                "sslrootcert" => info.sslrootcert = v,
                "sslcert" => info.sslcert = v.map(PathBuf::from),
                "sslkey" => info.sslkey = v.map(PathBuf::from),
                "application_name" => info.application_name = v,
                "connect_timeout" => {
                    info.connect_timeout = v
                        .as_deref()
                        .map(parse_connect_timeout)
                        .transpose()
                        .map_err(bad)?
                }
                "options" => info.options = v,
                _ => unreachable!("checked against KEYS above"),
            }
        }
        Ok(info)
    }

    /// Fills everything the DSN left out, libpq style: explicit value, then the
    /// `PG*` environment variable, then the built-in default.
    pub fn resolve(&self, env: &dyn Env) -> Result<ConnParams, ConnInfoError> {
        let var = |name: &str| env.var(name).filter(|v| !v.is_empty());
        fn parsed<T>(
            env: &dyn Env,
            name: &str,
            parse: impl Fn(&str) -> Result<T, String>,
        ) -> Result<Option<T>, ConnInfoError> {
            env.var(name)
                .filter(|v| !v.is_empty())
                .map(|v| parse(&v).map_err(|e| ConnInfoError::env(format!("{name}: {e}"))))
                .transpose()
        }

        let hostaddr = match self.hostaddr {
            Some(a) => Some(a),
            None => parsed(env, "PGHOSTADDR", parse_hostaddr)?,
        };
        let host = match self.host.clone().or_else(|| var("PGHOST")) {
            Some(h) if h.contains(',') => {
                return Err(ConnInfoError::env(
                    "PGHOST: multiple hosts are not supported: give exactly one host",
                ))
            }
            Some(h) => Host::from_value(&h),
            // With only hostaddr, libpq names the server by its address (for
            // the password file and for certificate checks).
            None => match hostaddr {
                Some(a) => Host::Tcp(a.to_string()),
                None => Host::Tcp("localhost".to_owned()),
            },
        };
        let port = match self.port {
            Some(p) => p,
            None => parsed(env, "PGPORT", parse_port)?.unwrap_or(5432),
        };
        let user = match self.user.clone().or_else(|| var("PGUSER")) {
            Some(u) => u,
            None => current_user(env).ok_or_else(|| {
                ConnInfoError::env(
                    "could not determine the user name: set user in the DSN, PGUSER or USER",
                )
            })?,
        };
        let dbname = self
            .dbname
            .clone()
            .or_else(|| var("PGDATABASE"))
            .unwrap_or_else(|| user.clone());
        let sslmode = match self.sslmode {
            Some(m) => m,
            None => parsed(env, "PGSSLMODE", SslMode::from_str)?.unwrap_or_default(),
        };
        let connect_timeout = match self.connect_timeout {
            Some(t) => Some(t),
            None => parsed(env, "PGCONNECT_TIMEOUT", parse_connect_timeout)?,
        };

        // libpq's per-user defaults in ~/.postgresql are used only if present.
        let home = home_dir(env);
        let pg_dir_file = |name: &str| {
            home.as_ref()
                .map(|h| h.join(".postgresql").join(name))
                .filter(|p| p.is_file())
        };
        let sslrootcert = self
            .sslrootcert
            .clone()
            .or_else(|| var("PGSSLROOTCERT"))
            .or_else(|| pg_dir_file("root.crt").map(|p| p.display().to_string()));
        let sslcert = self
            .sslcert
            .clone()
            .or_else(|| var("PGSSLCERT").map(PathBuf::from))
            .or_else(|| pg_dir_file("postgresql.crt"));
        let sslkey = self
            .sslkey
            .clone()
            .or_else(|| var("PGSSLKEY").map(PathBuf::from))
            .or_else(|| sslcert.as_ref().and_then(|_| pg_dir_file("postgresql.key")));
        let passfile = self
            .passfile
            .clone()
            .or_else(|| var("PGPASSFILE").map(PathBuf::from))
            .or_else(|| home.as_ref().map(|h| h.join(".pgpass")));

        Ok(ConnParams {
            host,
            hostaddr,
            port,
            dbname,
            user,
            sslmode,
            sslrootcert,
            sslcert,
            sslkey,
            application_name: self.application_name.clone().or_else(|| var("PGAPPNAME")),
            connect_timeout,
            options: self.options.clone().or_else(|| var("PGOPTIONS")),
            passfile,
        })
    }
}

fn current_user(env: &dyn Env) -> Option<String> {
    if let Some(u) = env.var("USER").filter(|u| !u.is_empty()) {
        return Some(u);
    }
    nix::unistd::User::from_uid(nix::unistd::getuid())
        .ok()
        .flatten()
        .map(|u| u.name)
}

fn home_dir(env: &dyn Env) -> Option<PathBuf> {
    if let Some(h) = env.var("HOME").filter(|h| !h.is_empty()) {
        return Some(PathBuf::from(h));
    }
    nix::unistd::User::from_uid(nix::unistd::getuid())
        .ok()
        .flatten()
        .map(|u| u.dir)
}

/// Where the password came from; shown to the operator instead of the password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PasswordSource {
    Dsn,
    /// The variable named by `password_env` in cutover.toml.
    ConfigEnv(String),
    PgPassword,
    Passfile(PathBuf),
}

impl fmt::Display for PasswordSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PasswordSource::Dsn => f.write_str("dsn"),
            PasswordSource::ConfigEnv(v) => write!(f, "${v}"),
            PasswordSource::PgPassword => f.write_str("$PGPASSWORD"),
            PasswordSource::Passfile(p) => write!(f, "{}", p.display()),
        }
    }
}

/// Why the `password_env` named in the config could not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MissingPasswordEnv(pub String);

/// Password precedence: the DSN, then the `password_env` variable named in
/// cutover.toml, then `PGPASSWORD`, then the password file.
pub fn resolve_password(
    info: &ConnInfo,
    params: &ConnParams,
    password_env: Option<&str>,
    env: &dyn Env,
) -> Result<Option<(Secret, PasswordSource)>, MissingPasswordEnv> {
    if let Some(p) = info.password.as_ref().filter(|p| !p.is_empty()) {
        return Ok(Some((p.clone(), PasswordSource::Dsn)));
    }
    if let Some(name) = password_env {
        return match env.var(name).filter(|v| !v.is_empty()) {
            Some(v) => Ok(Some((
                Secret::new(v),
                PasswordSource::ConfigEnv(name.into()),
            ))),
            None => Err(MissingPasswordEnv(name.into())),
        };
    }
    if let Some(v) = env.var("PGPASSWORD").filter(|v| !v.is_empty()) {
        return Ok(Some((Secret::new(v), PasswordSource::PgPassword)));
    }
    if let Some(file) = &params.passfile {
        if let Some(p) = super::pgpass::password_from_file(file, params) {
            return Ok(Some((p, PasswordSource::Passfile(file.clone()))));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k: &str| map.get(k).cloned()
    }

    fn empty_env() -> impl Fn(&str) -> Option<String> {
        // HOME points nowhere so the developer's ~/.postgresql cannot leak in.
        env_of(&[("USER", "alice"), ("HOME", "/nonexistent-cutover-home")])
    }

    #[test]
    fn key_value_basic() {
        let i = parse("host=db.example port=6543 dbname=app user=bob sslmode=verify-full").unwrap();
        assert_eq!(i.host.as_deref(), Some("db.example"));
        assert_eq!(i.port, Some(6543));
        assert_eq!(i.dbname.as_deref(), Some("app"));
        assert_eq!(i.user.as_deref(), Some("bob"));
        assert_eq!(i.sslmode, Some(SslMode::VerifyFull));
    }

    #[test]
    fn key_value_quoting_and_escapes() {
        let i = parse(
            r"  user = 'o\'brien'  password='a b\\c' dbname=x\ y options='-c search_path=s'  ",
        )
        .unwrap();
        assert_eq!(i.user.as_deref(), Some("o'brien"));
        assert_eq!(i.password.as_ref().unwrap().expose(), r"a b\c");
        assert_eq!(i.dbname.as_deref(), Some("x y"));
        assert_eq!(i.options.as_deref(), Some("-c search_path=s"));
    }

    #[test]
    fn key_value_empty_quoted_resets() {
        let i = parse("user=bob user=''").unwrap();
        assert_eq!(i.user, None);
        assert_eq!(parse("").unwrap(), ConnInfo::default());
        assert_eq!(parse("   ").unwrap(), ConnInfo::default());
    }

    #[test]
    fn key_value_errors() {
        let e = parse("host=a dbname='app").unwrap_err();
        assert_eq!(e.offset, Some(14));
        assert!(e.message.contains("unterminated quoted string"), "{e}");

        let e = parse("host=a dbname").unwrap_err();
        assert_eq!(e.offset, Some(7));
        assert!(e.message.contains("missing \"=\" after \"dbname\""), "{e}");

        let e = parse("host=a bogus=1").unwrap_err();
        assert_eq!(e.offset, Some(7));
        assert!(
            e.message.starts_with("unknown connection option \"bogus\""),
            "{e}"
        );

        let e = parse("sslmode=verify-everything").unwrap_err();
        assert_eq!(e.offset, Some(8));
        assert_eq!(
            e.message,
            "invalid sslmode \"verify-everything\" (expected disable, prefer, require, verify-ca or verify-full)"
        );

        assert!(parse("port=0")
            .unwrap_err()
            .message
            .contains("invalid port"));
        assert!(parse("port=65536")
            .unwrap_err()
            .message
            .contains("invalid port"));
        assert!(parse("port=abc")
            .unwrap_err()
            .message
            .contains("invalid port"));
        assert!(parse("host=a,b")
            .unwrap_err()
            .message
            .contains("multiple hosts"));
        assert!(parse("hostaddr=db.example")
            .unwrap_err()
            .message
            .contains("invalid hostaddr"));
        assert!(parse("connect_timeout=soon")
            .unwrap_err()
            .message
            .contains("connect_timeout"));
        assert!(parse("=x").is_err());
    }

    #[test]
    fn errors_never_quote_password_fragments() {
        for dsn in [
            "host=a password=my secret",
            "host=a password=my secret=x",
            "postgres://u:pa%zzss@h/app",
        ] {
            let e = parse(dsn).unwrap_err();
            assert!(!e.message.contains("secret"), "{e}");
            assert!(!e.message.contains("zz"), "{e}");
        }
        // A quoted password is unambiguous, so the next bad key is named.
        let e = parse("password='a b' bogus=1").unwrap_err();
        assert!(e.message.contains("\"bogus\""), "{e}");
    }

    #[test]
    fn connect_timeout_like_libpq() {
        assert_eq!(
            parse("connect_timeout=0").unwrap().connect_timeout,
            Some(Duration::ZERO)
        );
        assert_eq!(
            parse("connect_timeout=1").unwrap().connect_timeout,
            Some(Duration::from_secs(2))
        );
        assert_eq!(
            parse("connect_timeout=10").unwrap().connect_timeout,
            Some(Duration::from_secs(10))
        );
    }

    #[test]
    fn uri_full() {
        let i = parse("postgresql://bob:s%40cr%3At@db.example:6543/my%20db?sslmode=require&application_name=x%2By").unwrap();
        assert_eq!(i.user.as_deref(), Some("bob"));
        assert_eq!(i.password.as_ref().unwrap().expose(), "s@cr:t");
        assert_eq!(i.host.as_deref(), Some("db.example"));
        assert_eq!(i.port, Some(6543));
        assert_eq!(i.dbname.as_deref(), Some("my db"));
        assert_eq!(i.sslmode, Some(SslMode::Require));
        assert_eq!(i.application_name.as_deref(), Some("x+y"));
    }

    #[test]
    fn uri_minimal_forms() {
        assert_eq!(parse("postgres://").unwrap(), ConnInfo::default());
        let i = parse("postgres://localhost").unwrap();
        assert_eq!(i.host.as_deref(), Some("localhost"));
        let i = parse("postgresql:///app").unwrap();
        assert_eq!(i.host, None);
        assert_eq!(i.dbname.as_deref(), Some("app"));
        let i = parse("postgres://u@h/d").unwrap();
        assert_eq!(
            (i.user.as_deref(), i.host.as_deref()),
            (Some("u"), Some("h"))
        );
        // An unencoded '@' in the password still works because the last '@' splits.
        let i = parse("postgres://u:p@ss@h/d").unwrap();
        assert_eq!(i.password.unwrap().expose(), "p@ss");
    }

    #[test]
    fn uri_ipv6() {
        let i = parse("postgres://[::1]:5433/app").unwrap();
        assert_eq!(i.host.as_deref(), Some("::1"));
        assert_eq!(i.port, Some(5433));
        let i = parse("postgres://user@[2001:db8::7]/app").unwrap();
        assert_eq!(i.host.as_deref(), Some("2001:db8::7"));
        assert_eq!(i.port, None);
        assert!(parse("postgres://[::1/app")
            .unwrap_err()
            .message
            .contains("\"]\""));
        assert!(parse("postgres://[]/app").is_err());
        assert!(parse("postgres://[::1]x/app").is_err());
    }

    #[test]
    fn uri_unix_socket_host() {
        let i = parse("postgresql://%2Fvar%2Frun%2Fpostgresql/app").unwrap();
        assert_eq!(i.host.as_deref(), Some("/var/run/postgresql"));
        let i = parse("postgresql:///app?host=/tmp&port=5444").unwrap();
        assert_eq!(i.host.as_deref(), Some("/tmp"));
        let p = i.resolve(&empty_env()).unwrap();
        assert_eq!(p.host, Host::Unix("/tmp".into()));
        assert_eq!(p.endpoint(), "/tmp/.s.PGSQL.5444");
    }

    #[test]
    fn uri_errors() {
        let e = parse("postgres://h/app?sslmode=verify-everything").unwrap_err();
        assert!(e
            .message
            .starts_with("invalid sslmode \"verify-everything\""));
        assert_eq!(e.offset, Some(25));
        let e = parse("postgres://h1,h2/app").unwrap_err();
        assert!(e.message.contains("multiple hosts"), "{e}");
        assert_eq!(e.offset, Some(13));
        assert!(parse("postgres://h:99999/app")
            .unwrap_err()
            .message
            .contains("invalid port"));
        assert!(parse("postgres://h/app?bogus=1")
            .unwrap_err()
            .message
            .contains("\"bogus\""));
        assert!(parse("postgres://h/app?sslmode")
            .unwrap_err()
            .message
            .contains("missing \"=\""));
        assert!(parse("postgres://h/a%zzb")
            .unwrap_err()
            .message
            .contains("percent-encoded"));
        assert!(parse("postgres://h/a%2")
            .unwrap_err()
            .message
            .contains("percent-encoded"));
        assert!(parse("postgres://h/a%00b")
            .unwrap_err()
            .message
            .contains("%00"));
        assert!(parse("postgres://h/a%ff")
            .unwrap_err()
            .message
            .contains("UTF-8"));
        assert_eq!(
            parse("postgres://h/app?ssl=true").unwrap().sslmode,
            Some(SslMode::Require)
        );
    }

    #[test]
    fn resolve_defaults() {
        let p = parse("").unwrap().resolve(&empty_env()).unwrap();
        assert_eq!(p.host, Host::Tcp("localhost".into()));
        assert_eq!(p.port, 5432);
        assert_eq!(p.user, "alice");
        assert_eq!(p.dbname, "alice");
        assert_eq!(p.sslmode, SslMode::Prefer);
        assert_eq!(p.sslrootcert, None);
        assert_eq!(
            p.passfile,
            Some(PathBuf::from("/nonexistent-cutover-home/.pgpass"))
        );
        assert_eq!(p.endpoint(), "localhost:5432");
    }

    #[test]
    fn resolve_env_precedence() {
        let env = env_of(&[
            ("USER", "alice"),
            ("HOME", "/nonexistent-cutover-home"),
            ("PGHOST", "envhost"),
            ("PGPORT", "7777"),
            ("PGDATABASE", "envdb"),
            ("PGUSER", "envuser"),
            ("PGSSLMODE", "verify-ca"),
            ("PGSSLROOTCERT", "/etc/ca.pem"),
            ("PGAPPNAME", "envapp"),
            ("PGCONNECT_TIMEOUT", "7"),
            ("PGPASSFILE", "/etc/pgpass"),
        ]);
        let p = parse("").unwrap().resolve(&env).unwrap();
        assert_eq!(p.host, Host::Tcp("envhost".into()));
        assert_eq!(p.port, 7777);
        assert_eq!(p.dbname, "envdb");
        assert_eq!(p.user, "envuser");
        assert_eq!(p.sslmode, SslMode::VerifyCa);
        assert_eq!(p.sslrootcert.as_deref(), Some("/etc/ca.pem"));
        assert_eq!(p.application_name.as_deref(), Some("envapp"));
        assert_eq!(p.connect_timeout, Some(Duration::from_secs(7)));
        assert_eq!(p.passfile, Some(PathBuf::from("/etc/pgpass")));

        // Explicit values beat the environment.
        let p = parse("host=/run/pg port=1 dbname=d user=u sslmode=disable sslrootcert=x application_name=a connect_timeout=3 passfile=/p")
            .unwrap()
            .resolve(&env)
            .unwrap();
        assert_eq!(p.host, Host::Unix("/run/pg".into()));
        assert_eq!(p.port, 1);
        assert_eq!(p.dbname, "d");
        assert_eq!(p.user, "u");
        assert_eq!(p.sslmode, SslMode::Disable);
        assert_eq!(p.sslrootcert.as_deref(), Some("x"));
        assert_eq!(p.application_name.as_deref(), Some("a"));
        assert_eq!(p.connect_timeout, Some(Duration::from_secs(3)));
        assert_eq!(p.passfile, Some(PathBuf::from("/p")));

        // dbname defaults to the resolved user, not to $USER.
        let p = parse("user=carol").unwrap().resolve(&empty_env()).unwrap();
        assert_eq!(p.dbname, "carol");
    }

    #[test]
    fn resolve_rejects_bad_env() {
        let env = env_of(&[("USER", "a"), ("PGSSLMODE", "nope")]);
        let e = parse("").unwrap().resolve(&env).unwrap_err();
        assert_eq!(e.offset, None);
        assert!(
            e.message.starts_with("PGSSLMODE: invalid sslmode \"nope\""),
            "{e}"
        );
        let env = env_of(&[("USER", "a"), ("PGPORT", "0")]);
        assert!(parse("")
            .unwrap()
            .resolve(&env)
            .unwrap_err()
            .message
            .starts_with("PGPORT:"));
        // ...but only if the DSN does not already decide.
        let env = env_of(&[("USER", "a"), ("PGPORT", "0"), ("PGSSLMODE", "nope")]);
        assert!(parse("port=5 sslmode=disable")
            .unwrap()
            .resolve(&env)
            .is_ok());
    }

    #[test]
    fn hostaddr_only_names_the_host() {
        let p = parse("hostaddr=10.1.2.3")
            .unwrap()
            .resolve(&empty_env())
            .unwrap();
        assert_eq!(p.host, Host::Tcp("10.1.2.3".into()));
        assert_eq!(p.endpoint(), "10.1.2.3:5432");
        let p = parse("host=db hostaddr=10.1.2.3")
            .unwrap()
            .resolve(&empty_env())
            .unwrap();
        assert_eq!(p.endpoint(), "db (10.1.2.3):5432");
        let p = parse("host=::1").unwrap().resolve(&empty_env()).unwrap();
        assert_eq!(p.endpoint(), "[::1]:5432");
    }

    #[test]
    fn password_precedence() {
        let env = env_of(&[
            ("USER", "a"),
            ("HOME", "/nonexistent-cutover-home"),
            ("MY_PW", "from-config-env"),
            ("PGPASSWORD", "from-pgpassword"),
        ]);
        let pw = |dsn: &str, pe: Option<&str>| {
            let i = parse(dsn).unwrap();
            let p = i.resolve(&env).unwrap();
            resolve_password(&i, &p, pe, &env)
        };
        let (s, src) = pw("password=dsn", Some("MY_PW")).unwrap().unwrap();
        assert_eq!((s.expose(), src), ("dsn", PasswordSource::Dsn));
        let (s, src) = pw("", Some("MY_PW")).unwrap().unwrap();
        assert_eq!(
            (s.expose(), src),
            ("from-config-env", PasswordSource::ConfigEnv("MY_PW".into()))
        );
        let (s, src) = pw("", None).unwrap().unwrap();
        assert_eq!(
            (s.expose(), src),
            ("from-pgpassword", PasswordSource::PgPassword)
        );
        assert_eq!(
            pw("", Some("NOT_SET")).unwrap_err(),
            MissingPasswordEnv("NOT_SET".into())
        );
        let none = env_of(&[("USER", "a"), ("HOME", "/nonexistent-cutover-home")]);
        let i = parse("").unwrap();
        let p = i.resolve(&none).unwrap();
        assert_eq!(resolve_password(&i, &p, None, &none).unwrap(), None);
    }
}
