//! Turning tokio-postgres and rustls errors into "host:port: what failed".

use std::time::Duration;

use rustls::CertificateError;

use super::{ConnectError, ConnectErrorKind};
use crate::config::{ConnConfig, ConnParams, Endpoint, Host};

/// Turns tokio-postgres's layered error into "what failed" for the operator.
///
/// tokio-postgres keeps its error kind private, so the kind is recognised by
/// its (stable, tested below) display text and the source chain.
pub(super) fn classify(
    endpoint: &Endpoint,
    cfg: &ConnConfig,
    index: usize,
    e: &tokio_postgres::Error,
    timeout: Option<Duration>,
) -> ConnectError {
    use ConnectErrorKind as K;
    let (kind, message) = if let Some(db) = e.as_db_error() {
        let kind = if db.code().code().starts_with("28") {
            K::Auth
        } else {
            K::Server
        };
        (kind, db.message().to_owned())
    } else {
        let source = std::error::Error::source(e);
        let io = source.and_then(|s| s.downcast_ref::<std::io::Error>());
        // TLS trouble can also surface after the handshake, e.g. a TLS 1.3
        // server rejecting our client certificate on the first read.
        let rustls_err = io
            .and_then(|io| io.get_ref())
            .and_then(|inner| inner.downcast_ref::<rustls::Error>());
        if let Some(r) = rustls_err {
            let message = format!("TLS: {}", describe_rustls(r, endpoint, &cfg.params));
            return ConnectError::new(endpoint, K::Tls, scrub(message, cfg, index));
        }
        match e.to_string().as_str() {
            "error connecting to server" => match io {
                Some(io) => describe_io(endpoint, io, timeout),
                None => (K::Io, chain(source)),
            },
            "error performing TLS handshake" => (K::Tls, format!("TLS: {}", chain(source))),
            "timeout waiting for server" => (
                K::Timeout,
                match timeout {
                    Some(t) => format!("timeout after {}", fmt_duration(t)),
                    None => "timeout".into(),
                },
            ),
            "invalid configuration" if chain(source) == "password missing" => (
                K::Auth,
                "the server asked for a password but none was found (DSN password, password_env, PGPASSWORD or the password file)".into(),
            ),
            "authentication error" => (K::Auth, format!("authentication failed: {}", chain(source))),
            "connection closed" => (K::Closed, CLOSED_DURING_STARTUP.into()),
            // The codec's "bytes remaining on stream": the peer hung up in
            // the middle of something that was not a PostgreSQL message.
            "error communicating with the server" => match io {
                Some(io)
                    if io.kind() == std::io::ErrorKind::UnexpectedEof
                        || io.to_string() == "bytes remaining on stream" =>
                {
                    (K::Closed, CLOSED_DURING_STARTUP.into())
                }
                _ => (K::Io, chain(source)),
            },
            other => (K::Io, format!("{other}: {}", chain(source))),
        }
    };
    ConnectError::new(endpoint, kind, scrub(message, cfg, index))
}

const CLOSED_DURING_STARTUP: &str =
    "the server closed the connection during startup (is this a PostgreSQL server?)";

fn chain(mut source: Option<&(dyn std::error::Error + 'static)>) -> String {
    let mut parts = Vec::new();
    while let Some(s) = source {
        parts.push(s.to_string());
        source = s.source();
    }
    parts.dedup();
    parts.join(": ")
}

fn describe_io(
    endpoint: &Endpoint,
    io: &std::io::Error,
    timeout: Option<Duration>,
) -> (ConnectErrorKind, String) {
    use std::io::ErrorKind as E;
    use ConnectErrorKind as K;
    match io.kind() {
        E::ConnectionRefused => (K::Refused, "connection refused".into()),
        E::TimedOut => (
            K::Timeout,
            match timeout {
                Some(t) => format!("timeout after {}", fmt_duration(t)),
                None => "timeout".into(),
            },
        ),
        E::NotFound if endpoint.is_unix_socket() => (
            K::Refused,
            "no such socket file (is the server running locally and accepting connections on that socket?)".into(),
        ),
        E::PermissionDenied => (K::Io, "permission denied".into()),
        _ => {
            let text = io.to_string();
            // tokio reports resolver failures as plain io errors.
            if text.contains("lookup address") || text.contains("Name or service not known") {
                let host = match &endpoint.host {
                    Host::Tcp(h) => h.as_str(),
                    Host::Unix(_) => "",
                };
                (K::Resolve, format!("could not resolve host name \"{host}\""))
            } else {
                (K::Io, text)
            }
        }
    }
}

fn describe_rustls(e: &rustls::Error, endpoint: &Endpoint, params: &ConnParams) -> String {
    match e {
        rustls::Error::InvalidCertificate(c) => {
            let what = match c {
                CertificateError::UnknownIssuer => match &params.sslrootcert {
                    Some(r) if r != "system" => {
                        format!("unknown issuer (not signed by a CA in sslrootcert \"{r}\")")
                    }
                    _ => "unknown issuer (not signed by a CA in the system store; set sslrootcert)"
                        .into(),
                },
                CertificateError::NotValidForName => match &endpoint.host {
                    Host::Tcp(h) => format!("certificate is not valid for host name \"{h}\""),
                    Host::Unix(_) => "certificate is not valid for the host name".into(),
                },
                CertificateError::Expired => "certificate has expired".into(),
                CertificateError::NotValidYet => "certificate is not valid yet".into(),
                CertificateError::BadSignature => "bad certificate signature".into(),
                CertificateError::Revoked => "certificate has been revoked".into(),
                other => other.to_string(),
            };
            format!("certificate verify failed: {what}")
        }
        rustls::Error::AlertReceived(alert) => format!("server sent TLS alert {alert:?}"),
        other => other.to_string(),
    }
}

/// Belt and braces: nothing we format should contain the password, but a
/// server or library message echoing it must not reach the screen either.
/// Very short passwords are skipped because they would mangle ordinary words.
pub(super) fn scrub(message: String, cfg: &ConnConfig, index: usize) -> String {
    match cfg.password_for(index) {
        Some(p) if p.expose().len() >= 4 && message.contains(p.expose()) => {
            message.replace(p.expose(), "***")
        }
        _ => message,
    }
}

pub(super) fn fmt_duration(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}
