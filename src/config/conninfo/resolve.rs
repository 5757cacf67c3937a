//! Completing a DSN like libpq: the DSN's own keywords, then the service
//! file's group, then `PG*` variables, then the built-in defaults.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use super::values::{
    check_counts, parse_connect_timeout, parse_hostaddr, parse_hosts, parse_list, parse_port,
};
use super::{
    service, ConnInfo, ConnInfoError, ConnParams, Endpoint, Env, Host, Keepalives, Secret, SslMode,
    TargetSessionAttrs,
};

/// libpq's default port; also what an empty entry of a port list means.
const DEFAULT_PORT: u16 = 5432;

impl ConnInfo {
    /// Fills everything the DSN left out, libpq style: explicit value, then the
    /// service file (`service=` or `PGSERVICE`), then the `PG*` environment
    /// variable, then the built-in default.
    pub fn resolve(&self, env: &dyn Env) -> Result<ConnParams, ConnInfoError> {
        let var = |name: &str| env.var(name).filter(|v| !v.is_empty());
        let info = self.with_service(env)?;
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
        fn list_err(name: &'static str) -> impl Fn((usize, String)) -> ConnInfoError {
            move |(_, e)| ConnInfoError::env(format!("{name}: {e}"))
        }

        let hostaddr = match info.hostaddr {
            Some(a) => Some(a),
            None => var("PGHOSTADDR")
                .map(|v| parse_list(&v, parse_hostaddr))
                .transpose()
                .map_err(list_err("PGHOSTADDR"))?,
        };
        let host = info
            .host
            .clone()
            .or_else(|| var("PGHOST").map(|h| parse_hosts(&h)));
        let port = match info.port {
            Some(p) => Some(p),
            None => var("PGPORT")
                .map(|v| parse_list(&v, parse_port))
                .transpose()
                .map_err(list_err("PGPORT"))?,
        };
        check_counts(
            host.as_ref().map(Vec::len),
            hostaddr.as_ref().map(Vec::len),
            port.as_ref().map(Vec::len),
        )
        .map_err(|(_, m)| ConnInfoError::env(m))?;
        let hosts = endpoints(host, hostaddr, port);

        let user = match info.user.clone().or_else(|| var("PGUSER")) {
            Some(u) => u,
            None => current_user(env).ok_or_else(|| {
                ConnInfoError::env(
                    "could not determine the user name: set user in the DSN, PGUSER or USER",
                )
            })?,
        };
        let dbname = info
            .dbname
            .clone()
            .or_else(|| var("PGDATABASE"))
            .unwrap_or_else(|| user.clone());
        let sslmode = match info.sslmode {
            Some(m) => m,
            None => parsed(env, "PGSSLMODE", SslMode::from_str)?.unwrap_or_default(),
        };
        let connect_timeout = match info.connect_timeout {
            Some(t) => Some(t),
            None => parsed(env, "PGCONNECT_TIMEOUT", parse_connect_timeout)?,
        };
        let target_session_attrs = match info.target_session_attrs {
            Some(t) => t,
            None => parsed(env, "PGTARGETSESSIONATTRS", TargetSessionAttrs::from_str)?
                .unwrap_or_default(),
        };
        // libpq has no environment variables for keepalives.
        let d = Keepalives::default();
        let keepalives = Keepalives {
            enabled: info.keepalives.unwrap_or(d.enabled),
            idle: info.keepalives_idle.unwrap_or(d.idle),
            interval: info.keepalives_interval.unwrap_or(d.interval),
            count: info.keepalives_count.unwrap_or(d.count),
        };

        // libpq's per-user defaults in ~/.postgresql are used only if present.
        let home = home_dir(env);
        let pg_dir_file = |name: &str| {
            home.as_ref()
                .map(|h| h.join(".postgresql").join(name))
                .filter(|p| p.is_file())
        };
        let sslrootcert = info
            .sslrootcert
            .clone()
            .or_else(|| var("PGSSLROOTCERT"))
            .or_else(|| pg_dir_file("root.crt").map(|p| p.display().to_string()));
        let sslcert = info
            .sslcert
            .clone()
            .or_else(|| var("PGSSLCERT").map(PathBuf::from))
            .or_else(|| pg_dir_file("postgresql.crt"));
        let sslkey = info
            .sslkey
            .clone()
            .or_else(|| var("PGSSLKEY").map(PathBuf::from))
            .or_else(|| sslcert.as_ref().and_then(|_| pg_dir_file("postgresql.key")));
        let passfile = info
            .passfile
            .clone()
            .or_else(|| var("PGPASSFILE").map(PathBuf::from))
            .or_else(|| home.as_ref().map(|h| h.join(".pgpass")));

        Ok(ConnParams {
            hosts,
            dbname,
            user,
            sslmode,
            sslrootcert,
            sslcert,
            sslkey,
            application_name: info.application_name.clone().or_else(|| var("PGAPPNAME")),
            connect_timeout,
            options: info.options.clone().or_else(|| var("PGOPTIONS")),
            passfile,
            target_session_attrs,
            keepalives,
        })
    }
}

impl ConnInfo {
    /// This string with the keywords of its service (`service=` or
    /// `PGSERVICE`) filled in where it leaves them unset.
    pub fn with_service(&self, env: &dyn Env) -> Result<ConnInfo, ConnInfoError> {
        let name = self
            .service
            .clone()
            .or_else(|| env.var("PGSERVICE").filter(|v| !v.is_empty()));
        match name {
            Some(name) => Ok(self.clone().or(service::lookup(&name, env)?)),
            None => Ok(self.clone()),
        }
    }
}

/// Pairs the lists up (their lengths already checked): one endpoint per host
/// name or hostaddr, a single port shared by all.
fn endpoints(
    host: Option<Vec<String>>,
    hostaddr: Option<Vec<Option<std::net::IpAddr>>>,
    port: Option<Vec<Option<u16>>>,
) -> Vec<Endpoint> {
    let n = hostaddr
        .as_ref()
        .map(Vec::len)
        .or(host.as_ref().map(Vec::len))
        .unwrap_or(1)
        .max(1);
    (0..n)
        .map(|i| {
            let addr = hostaddr.as_ref().and_then(|a| a.get(i).copied().flatten());
            let name = host
                .as_ref()
                .and_then(|h| h.get(i))
                .filter(|h| !h.is_empty());
            let host = match (name, addr) {
                (Some(h), _) => Host::from_value(h),
                // With only hostaddr, libpq names the server by its address
                // (for the password file and for certificate checks).
                (None, Some(a)) => Host::Tcp(a.to_string()),
                (None, None) => Host::Tcp("localhost".to_owned()),
            };
            let port = match port.as_deref() {
                Some([one]) => one.unwrap_or(DEFAULT_PORT),
                Some(list) => list.get(i).copied().flatten().unwrap_or(DEFAULT_PORT),
                None => DEFAULT_PORT,
            };
            Endpoint {
                host,
                hostaddr: addr,
                port,
            }
        })
        .collect()
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

pub(super) fn home_dir(env: &dyn Env) -> Option<PathBuf> {
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

/// The password that applies to every host: the DSN's (or its service's),
/// then the `password_env` variable named in cutover.toml, then `PGPASSWORD`.
/// Without one, the password file is searched per host (see
/// [`crate::config::pgpass::password_from_file`]).
pub fn explicit_password(
    info: &ConnInfo,
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
    Ok(None)
}
