//! Opening PostgreSQL connections as libpq would: several hosts tried in
//! order with `target_session_attrs`, libpq's `sslmode` semantics over rustls
//! (see [`tls`]), TCP keepalives, and errors that say which host failed and why.

use std::time::Duration;

use tokio_postgres::config::SslMode as PgSslMode;
use tokio_postgres::Client;
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::config::{ConnConfig, ConnParams, Endpoint, Host, TargetSessionAttrs};

mod classify;
pub mod tls;

use classify::{classify, fmt_duration, scrub};
pub use tls::{client_config, tls_plan, Roots, TlsPlan, Verify};

/// What went wrong, for callers that react differently (e.g. retry on
/// `Refused`/`Timeout`, stop on `Auth`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectErrorKind {
    Refused,
    Timeout,
    Resolve,
    Tls,
    Auth,
    /// The server rejected the connection for another reason (e.g. no such database).
    Server,
    /// Local setup: unreadable certificate files and the like.
    Config,
    Io,
    Closed,
    /// The server works but is not what `target_session_attrs` asks for
    /// (e.g. read-only when read-write is required).
    WrongSession,
}

/// A failed connection: `host:port: what failed`, or for several hosts each
/// host's reason in the order tried. Never contains the password.
#[derive(Debug, Clone)]
pub struct ConnectError {
    /// `host:port`, or every host (`a:5432,b:5433`) when several were tried.
    pub endpoint: String,
    /// For several hosts: the kind of the last failure.
    pub kind: ConnectErrorKind,
    pub message: String,
    /// For several hosts: why each one was not used, in order tried.
    pub attempts: Vec<ConnectError>,
}

impl std::fmt::Display for ConnectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.attempts.is_empty() {
            return write!(f, "{}: {}", self.endpoint, self.message);
        }
        for (i, a) in self.attempts.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{a}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConnectError {}

impl ConnectError {
    fn new(endpoint: &Endpoint, kind: ConnectErrorKind, message: impl Into<String>) -> Self {
        ConnectError {
            endpoint: endpoint.to_string(),
            kind,
            message: message.into(),
            attempts: Vec::new(),
        }
    }

    /// Every host failed: one error listing each attempt.
    fn all_failed(params: &ConnParams, mut attempts: Vec<ConnectError>) -> Self {
        if attempts.len() == 1 {
            return attempts.remove(0);
        }
        let kind = attempts.last().map_or(ConnectErrorKind::Io, |a| a.kind);
        let message = attempts
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ");
        ConnectError {
            endpoint: params.endpoint(),
            kind,
            message,
            attempts,
        }
    }
}

/// Which host a connection went to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connected {
    /// `host:port` of the server connected to.
    pub endpoint: String,
    /// Its position in the connection string's host list (0-based)...
    pub index: usize,
    /// ...of this many hosts.
    pub of: usize,
}

/// Opens a connection and spawns its driver task; the task logs how it ended.
///
/// `application_name` wins over one in the DSN/`PGAPPNAME` (it identifies which
/// part of cutover holds the connection in `pg_stat_activity`); pass `""` to
/// keep the DSN's. A `connect_timeout` in the DSN or `PGCONNECT_TIMEOUT` wins
/// over the `connect_timeout` argument, like any explicit libpq setting.
pub async fn connect(
    cfg: &ConnConfig,
    application_name: &str,
    connect_timeout: Duration,
) -> Result<Client, ConnectError> {
    connect_reporting(cfg, application_name, connect_timeout)
        .await
        .map(|(client, _)| client)
}

/// [`connect`], also saying which of the listed hosts answered.
///
/// Hosts are tried in order, like libpq: each gets its own timeout, TLS
/// negotiation and password-file entry; after connecting, the session is
/// checked against `target_session_attrs` and a host that does not match is
/// skipped. `prefer-standby` takes the first standby, else the first host that
/// connected at all. When no host will do, the error lists each one's reason.
pub async fn connect_reporting(
    cfg: &ConnConfig,
    application_name: &str,
    connect_timeout: Duration,
) -> Result<(Client, Connected), ConnectError> {
    let params = &cfg.params;
    let wanted = params.target_session_attrs;
    let of = params.hosts.len();
    let mut attempts = Vec::new();
    let mut fallback: Option<(Client, Connected)> = None;
    for (index, endpoint) in params.hosts.iter().enumerate() {
        let timeout = effective_timeout(params, connect_timeout);
        // Boxed: the TLS handshake's futures are large, and a caller several
        // awaits deep must not carry them on its stack.
        let client = match Box::pin(connect_host(cfg, index, application_name, timeout)).await {
            Ok(c) => c,
            Err(e) => {
                tracing::info!("{}: {e}", cfg.label);
                attempts.push(e);
                continue;
            }
        };
        let connected = Connected {
            endpoint: endpoint.to_string(),
            index,
            of,
        };
        match session_mismatch(&client, wanted, timeout).await {
            Ok(None) => return Ok((client, connected)),
            Ok(Some(what)) => {
                let e = ConnectError::new(
                    endpoint,
                    ConnectErrorKind::WrongSession,
                    format!("{what} (target_session_attrs={wanted})"),
                );
                tracing::info!("{}: {e}; trying the next host", cfg.label);
                attempts.push(e);
                if wanted == TargetSessionAttrs::PreferStandby && fallback.is_none() {
                    fallback = Some((client, connected));
                }
            }
            Err(e) => attempts.push(ConnectError::new(
                endpoint,
                e.kind,
                scrub(e.message, cfg, index),
            )),
        }
    }
    match fallback {
        Some(found) => Ok(found),
        None => Err(ConnectError::all_failed(params, attempts)),
    }
}

/// A `connect_timeout` in the DSN wins; 0 there means no limit.
fn effective_timeout(params: &ConnParams, connect_timeout: Duration) -> Option<Duration> {
    match params.connect_timeout {
        Some(t) if t.is_zero() => None,
        Some(t) => Some(t),
        None if connect_timeout.is_zero() => None,
        None => Some(connect_timeout),
    }
}

/// Why the session does not suit `wanted`, as libpq checks it; None if it does.
/// For prefer-standby a non-standby is reported so the next host is tried.
async fn session_mismatch(
    client: &Client,
    wanted: TargetSessionAttrs,
    timeout: Option<Duration>,
) -> Result<Option<&'static str>, CheckError> {
    use TargetSessionAttrs as T;
    let (sql, want_true, if_true, if_false) = match wanted {
        T::Any => return Ok(None),
        T::ReadWrite => (
            "SHOW transaction_read_only",
            false,
            "read-only",
            "read-write",
        ),
        T::ReadOnly => (
            "SHOW transaction_read_only",
            true,
            "read-only",
            "read-write",
        ),
        T::Primary => (
            "SELECT pg_is_in_recovery()::text",
            false,
            "standby",
            "primary",
        ),
        T::Standby | T::PreferStandby => (
            "SELECT pg_is_in_recovery()::text",
            true,
            "standby",
            "primary",
        ),
    };
    let query = client.simple_query(sql);
    let rows = match timeout {
        Some(t) => tokio::time::timeout(t, query)
            .await
            .map_err(|_| CheckError {
                kind: ConnectErrorKind::Timeout,
                message: format!(
                    "no answer to the target_session_attrs check within {}",
                    fmt_duration(t)
                ),
            })?,
        None => query.await,
    }
    .map_err(|e| CheckError {
        kind: ConnectErrorKind::Server,
        message: format!("checking target_session_attrs: {}", super::error_text(&e)),
    })?;
    let value = rows.iter().find_map(|m| match m {
        tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_owned),
        _ => None,
    });
    let is_true = matches!(value.as_deref(), Some("on" | "true"));
    Ok(if is_true == want_true {
        None
    } else if is_true {
        Some(if_true)
    } else {
        Some(if_false)
    })
}

/// A failed session check, before it is tied to its host.
struct CheckError {
    kind: ConnectErrorKind,
    message: String,
}

/// One host: libpq's sslmode=prefer retries without TLS when TLS fails.
async fn connect_host(
    cfg: &ConnConfig,
    index: usize,
    application_name: &str,
    timeout: Option<Duration>,
) -> Result<Client, ConnectError> {
    let endpoint = &cfg.params.hosts[index];
    let plan = tls_plan(&cfg.params, endpoint);
    let result = Box::pin(attempt(cfg, index, application_name, timeout, &plan)).await;
    match result {
        Err(e) if e.kind == ConnectErrorKind::Tls && plan.mode == PgSslMode::Prefer => {
            tracing::info!(
                "{}: TLS failed under sslmode=prefer ({}); retrying without TLS",
                e.endpoint,
                e.message
            );
            let plain = TlsPlan {
                mode: PgSslMode::Disable,
                verify: Verify::None,
            };
            Box::pin(attempt(cfg, index, application_name, timeout, &plain)).await
        }
        r => r,
    }
}

async fn attempt(
    cfg: &ConnConfig,
    index: usize,
    application_name: &str,
    timeout: Option<Duration>,
    plan: &TlsPlan,
) -> Result<Client, ConnectError> {
    let params = &cfg.params;
    let endpoint = &params.hosts[index];
    let tls_config = if plan.mode == PgSslMode::Disable {
        // Never used, but tokio-postgres wants a connector; skip loading any
        // certificate files so a broken sslcert cannot fail a plaintext connect.
        tls::plain_client_config()
    } else {
        client_config(plan, params)
            .map_err(|m| ConnectError::new(endpoint, ConnectErrorKind::Config, m))?
    };

    let mut pg = tokio_postgres::Config::new();
    match &endpoint.host {
        Host::Tcp(h) => pg.host(h),
        Host::Unix(dir) => pg.host_path(dir),
    };
    if let Some(addr) = endpoint.hostaddr {
        pg.hostaddr(addr);
    }
    pg.port(endpoint.port)
        .user(&params.user)
        .dbname(&params.dbname)
        .ssl_mode(plan.mode);
    let k = params.keepalives;
    pg.keepalives(k.enabled);
    if k.enabled {
        pg.keepalives_idle(k.idle)
            .keepalives_interval(k.interval)
            .keepalives_retries(k.count);
    }
    if let Some(pw) = cfg.password_for(index) {
        pg.password(pw.expose());
    }
    if let Some(o) = &params.options {
        pg.options(o);
    }
    let app = if application_name.is_empty() {
        params.application_name.as_deref()
    } else {
        Some(application_name)
    };
    if let Some(app) = app {
        pg.application_name(app);
    }
    if let Some(t) = timeout {
        pg.connect_timeout(t);
    }

    let fut = pg.connect(MakeRustlsConnect::new(tls_config));
    let connected = match timeout {
        // The socket timeout above does not cover TLS and authentication.
        Some(t) => match tokio::time::timeout(t, fut).await {
            Ok(r) => r,
            Err(_) => {
                return Err(ConnectError::new(
                    endpoint,
                    ConnectErrorKind::Timeout,
                    format!("timeout after {}", fmt_duration(t)),
                ))
            }
        },
        None => fut.await,
    };
    let (client, connection) =
        connected.map_err(|e| classify(endpoint, cfg, index, &e, timeout))?;

    let shown = endpoint.to_string();
    let label = cfg.label.clone();
    tokio::spawn(async move {
        match connection.await {
            Ok(()) => tracing::debug!("{label} ({shown}): connection closed"),
            Err(e) => tracing::warn!(
                "{label} ({shown}): connection ended: {}",
                super::error_text(&e)
            ),
        }
    });
    Ok(client)
}

#[cfg(test)]
mod tests;
