//! Opening PostgreSQL connections with libpq's `sslmode` semantics over rustls.
//!
//! tokio-postgres only knows disable/prefer/require and leaves certificate
//! checking to the TLS connector, so the libpq modes are implemented here by
//! choosing the rustls certificate verifier:
//!
//! | sslmode     | tokio-postgres | verifier                                          |
//! |-------------|----------------|---------------------------------------------------|
//! | disable     | Disable        | none (no TLS)                                     |
//! | prefer      | Prefer         | none, or chain-only if a root cert is configured  |
//! | require     | Require        | none, or chain-only if a root cert is configured  |
//! | verify-ca   | Require        | chain against sslrootcert or the system roots     |
//! | verify-full | Require        | chain + host name                                 |

use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use tokio_postgres::config::SslMode as PgSslMode;
use tokio_postgres::Client;
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::config::{ConnConfig, ConnParams, Host, SslMode};

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
}

/// A failed connection attempt: `host:port: what failed`. Never contains the password.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{endpoint}: {message}")]
pub struct ConnectError {
    pub endpoint: String,
    pub kind: ConnectErrorKind,
    pub message: String,
}

impl ConnectError {
    fn new(params: &ConnParams, kind: ConnectErrorKind, message: impl Into<String>) -> Self {
        ConnectError {
            endpoint: params.endpoint(),
            kind,
            message: message.into(),
        }
    }
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
    let params = &cfg.params;
    let plan = tls_plan(params);
    let result = attempt(cfg, application_name, connect_timeout, &plan).await;
    match result {
        // libpq's prefer retries without TLS when the TLS attempt fails.
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
            attempt(cfg, application_name, connect_timeout, &plain).await
        }
        r => r,
    }
}

async fn attempt(
    cfg: &ConnConfig,
    application_name: &str,
    connect_timeout: Duration,
    plan: &TlsPlan,
) -> Result<Client, ConnectError> {
    let params = &cfg.params;
    let tls_config = if plan.mode == PgSslMode::Disable {
        // Never used, but tokio-postgres wants a connector; skip loading any
        // certificate files so a broken sslcert cannot fail a plaintext connect.
        plain_client_config()
    } else {
        client_config(plan, params)
            .map_err(|m| ConnectError::new(params, ConnectErrorKind::Config, m))?
    };

    let mut pg = tokio_postgres::Config::new();
    match &params.host {
        Host::Tcp(h) => pg.host(h),
        Host::Unix(dir) => pg.host_path(dir),
    };
    if let Some(addr) = params.hostaddr {
        pg.hostaddr(addr);
    }
    pg.port(params.port)
        .user(&params.user)
        .dbname(&params.dbname)
        .ssl_mode(plan.mode);
    if let Some(pw) = &cfg.password {
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
    let timeout = match params.connect_timeout {
        Some(t) if t.is_zero() => None,
        Some(t) => Some(t),
        None if connect_timeout.is_zero() => None,
        None => Some(connect_timeout),
    };
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
                    params,
                    ConnectErrorKind::Timeout,
                    format!("timeout after {}", fmt_duration(t)),
                ))
            }
        },
        None => fut.await,
    };
    let (client, connection) = connected.map_err(|e| classify(params, cfg, &e, timeout))?;

    let endpoint = params.endpoint();
    let label = cfg.label.clone();
    tokio::spawn(async move {
        match connection.await {
            Ok(()) => tracing::debug!("{label} ({endpoint}): connection closed"),
            Err(e) => tracing::warn!(
                "{label} ({endpoint}): connection ended: {}",
                super::error_text(&e)
            ),
        }
    });
    Ok(client)
}

fn fmt_duration(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

/// How TLS will be used for one connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsPlan {
    pub mode: PgSslMode,
    pub verify: Verify,
}

/// Which certificate checks the rustls verifier performs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verify {
    /// Encrypt only; still checks handshake signatures.
    None,
    /// Chain to a trusted root; the host name is not checked (verify-ca).
    Chain(Roots),
    /// Chain and host name (verify-full).
    Full(Roots),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Roots {
    File(PathBuf),
    /// `rustls-native-certs` (libpq's `sslrootcert=system`, and our default
    /// for verify-* without a root file).
    System,
}

fn roots_of(sslrootcert: Option<&str>) -> Roots {
    match sslrootcert {
        Some("system") | None => Roots::System,
        Some(path) => Roots::File(PathBuf::from(path)),
    }
}

/// The libpq sslmode → tokio-postgres mode + verifier mapping.
pub fn tls_plan(params: &ConnParams) -> TlsPlan {
    if params.is_unix_socket() {
        // libpq never uses TLS over a unix socket.
        return TlsPlan {
            mode: PgSslMode::Disable,
            verify: Verify::None,
        };
    }
    let root = params.sslrootcert.as_deref();
    // libpq: with a root certificate available, prefer/require verify the chain
    // like verify-ca.
    let weak = || match root {
        Some(_) => Verify::Chain(roots_of(root)),
        None => Verify::None,
    };
    match params.sslmode {
        SslMode::Disable => TlsPlan {
            mode: PgSslMode::Disable,
            verify: Verify::None,
        },
        SslMode::Prefer => TlsPlan {
            mode: PgSslMode::Prefer,
            verify: weak(),
        },
        SslMode::Require => TlsPlan {
            mode: PgSslMode::Require,
            verify: weak(),
        },
        SslMode::VerifyCa => TlsPlan {
            mode: PgSslMode::Require,
            verify: Verify::Chain(roots_of(root)),
        },
        SslMode::VerifyFull => TlsPlan {
            mode: PgSslMode::Require,
            verify: Verify::Full(roots_of(root)),
        },
    }
}

fn provider() -> Arc<CryptoProvider> {
    // Explicit provider: never depend on (or panic over) a process default.
    Arc::new(rustls::crypto::ring::default_provider())
}

fn plain_client_config() -> ClientConfig {
    let provider = provider();
    let algs = provider.signature_verification_algorithms;
    ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("the ring provider supports the default protocol versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(NoVerify { algs }))
        .with_no_client_auth()
}

/// Builds the rustls client config for a plan; errors are one-line messages.
pub fn client_config(plan: &TlsPlan, params: &ConnParams) -> Result<ClientConfig, String> {
    let provider = provider();
    let algs = provider.signature_verification_algorithms;
    let verifier: Arc<dyn ServerCertVerifier> = match &plan.verify {
        Verify::None => Arc::new(NoVerify { algs }),
        Verify::Chain(roots) => Arc::new(ChainOnly {
            inner: webpki_verifier(roots, &provider)?,
        }),
        Verify::Full(roots) => webpki_verifier(roots, &provider)?,
    };
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    match (&params.sslcert, &params.sslkey) {
        (Some(cert), Some(key)) => {
            let chain = read_certs(cert, "sslcert")?;
            let key_der = read_key(key)?;
            builder
                .with_client_auth_cert(chain, key_der)
                .map_err(|e| format!("sslcert/sslkey: {e}"))
        }
        (Some(cert), None) => Err(format!(
            "sslcert \"{}\" is set but sslkey is not",
            cert.display()
        )),
        (None, _) => Ok(builder.with_no_client_auth()),
    }
}

fn webpki_verifier(
    roots: &Roots,
    provider: &Arc<CryptoProvider>,
) -> Result<Arc<WebPkiServerVerifier>, String> {
    let mut store = RootCertStore::empty();
    match roots {
        Roots::File(path) => {
            for cert in read_certs(path, "sslrootcert")? {
                store
                    .add(cert)
                    .map_err(|e| format!("sslrootcert \"{}\": {e}", path.display()))?;
            }
        }
        Roots::System => {
            let loaded = rustls_native_certs::load_native_certs();
            let (added, _ignored) = store.add_parsable_certificates(loaded.certs);
            if added == 0 {
                let why = loaded
                    .errors
                    .first()
                    .map(|e| format!(": {e}"))
                    .unwrap_or_default();
                return Err(format!(
                    "no system root certificates could be loaded{why}; set sslrootcert"
                ));
            }
        }
    }
    WebPkiServerVerifier::builder_with_provider(Arc::new(store), provider.clone())
        .build()
        .map_err(|e| format!("TLS setup: {e}"))
}

fn read_certs(path: &Path, what: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let file =
        std::fs::File::open(path).map_err(|e| format!("{what} \"{}\": {e}", path.display()))?;
    let certs = rustls_pemfile::certs(&mut BufReader::new(file))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{what} \"{}\": {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "{what} \"{}\": no PEM certificates found",
            path.display()
        ));
    }
    Ok(certs)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, String> {
    let meta =
        std::fs::metadata(path).map_err(|e| format!("sslkey \"{}\": {e}", path.display()))?;
    // Same rule as libpq: a key others can read is refused, not just warned about.
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let allowed = if meta.uid() == 0 { 0o640 } else { 0o600 };
    if meta.permissions().mode() & 0o777 & !allowed != 0 {
        return Err(format!(
            "sslkey \"{}\" has group or world access; permissions should be u=rw (0600) or less",
            path.display()
        ));
    }
    let file =
        std::fs::File::open(path).map_err(|e| format!("sslkey \"{}\": {e}", path.display()))?;
    rustls_pemfile::private_key(&mut BufReader::new(file))
        .map_err(|e| format!("sslkey \"{}\": {e}", path.display()))?
        .ok_or_else(|| format!("sslkey \"{}\": no PEM private key found", path.display()))
}

/// sslmode=prefer/require without a root: encryption without authentication,
/// as in libpq. Handshake signatures are still verified so the session keys
/// are bound to the certificate the server sent.
#[derive(Debug)]
struct NoVerify {
    algs: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algs)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algs)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algs.supported_schemes()
    }
}

/// verify-ca: everything `WebPkiServerVerifier` checks except the host name.
///
/// Ignoring only the name error is sound because rustls checks the name last,
/// after the chain, validity period and key usage have all passed.
#[derive(Debug)]
struct ChainOnly {
    inner: Arc<WebPkiServerVerifier>,
}

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// Turns tokio-postgres's layered error into "what failed" for the operator.
///
/// tokio-postgres keeps its error kind private, so the kind is recognised by
/// its (stable, tested below) display text and the source chain.
fn classify(
    params: &ConnParams,
    cfg: &ConnConfig,
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
            let message = format!("TLS: {}", describe_rustls(r, params));
            return ConnectError::new(params, K::Tls, scrub(message, cfg));
        }
        match e.to_string().as_str() {
            "error connecting to server" => match io {
                Some(io) => describe_io(params, io, timeout),
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
            "connection closed" => (K::Closed, "server closed the connection unexpectedly".into()),
            "error communicating with the server" => match io {
                Some(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
                    (K::Closed, "server closed the connection unexpectedly".into())
                }
                _ => (K::Io, chain(source)),
            },
            other => (K::Io, format!("{other}: {}", chain(source))),
        }
    };
    ConnectError::new(params, kind, scrub(message, cfg))
}

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
    params: &ConnParams,
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
        E::NotFound if params.is_unix_socket() => (
            K::Refused,
            "no such socket file (is the server running locally and accepting connections on that socket?)".into(),
        ),
        E::PermissionDenied => (K::Io, "permission denied".into()),
        _ => {
            let text = io.to_string();
            // tokio reports resolver failures as plain io errors.
            if text.contains("lookup address") || text.contains("Name or service not known") {
                let host = match &params.host {
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

fn describe_rustls(e: &rustls::Error, params: &ConnParams) -> String {
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
                CertificateError::NotValidForName => match &params.host {
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
fn scrub(message: String, cfg: &ConnConfig) -> String {
    match &cfg.password {
        Some(p) if p.expose().len() >= 4 && message.contains(p.expose()) => {
            message.replace(p.expose(), "***")
        }
        _ => message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::conninfo;
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};

    fn fixture(name: &str) -> String {
        format!(
            "{}/tests/fixtures/config/tls/{name}",
            env!("CARGO_MANIFEST_DIR")
        )
    }

    fn test_env(k: &str) -> Option<String> {
        match k {
            "USER" => Some("app".into()),
            "HOME" => Some("/nonexistent-cutover-home".into()),
            _ => None,
        }
    }

    fn params(dsn: &str) -> ConnParams {
        conninfo::parse(dsn).unwrap().resolve(&test_env).unwrap()
    }

    fn conn_cfg(dsn: &str) -> ConnConfig {
        ConnConfig::from_dsn("test", dsn, None, &test_env).unwrap()
    }

    #[test]
    fn sslmode_maps_to_mode_and_verifier() {
        let ca = fixture("ca.crt");
        let file = Roots::File(PathBuf::from(&ca));
        let cases = [
            ("sslmode=disable", PgSslMode::Disable, Verify::None),
            ("sslmode=prefer", PgSslMode::Prefer, Verify::None),
            ("", PgSslMode::Prefer, Verify::None),
            ("sslmode=require", PgSslMode::Require, Verify::None),
            (
                "sslmode=verify-ca",
                PgSslMode::Require,
                Verify::Chain(Roots::System),
            ),
            (
                "sslmode=verify-full",
                PgSslMode::Require,
                Verify::Full(Roots::System),
            ),
            (
                "sslmode=verify-full sslrootcert=system",
                PgSslMode::Require,
                Verify::Full(Roots::System),
            ),
            // libpq: a root certificate upgrades prefer/require to chain checks.
            (
                &format!("sslmode=require sslrootcert={ca}"),
                PgSslMode::Require,
                Verify::Chain(file.clone()),
            ),
            (
                &format!("sslmode=prefer sslrootcert={ca}"),
                PgSslMode::Prefer,
                Verify::Chain(file.clone()),
            ),
            (
                &format!("sslmode=verify-ca sslrootcert={ca}"),
                PgSslMode::Require,
                Verify::Chain(file.clone()),
            ),
            (
                &format!("sslmode=verify-full sslrootcert={ca}"),
                PgSslMode::Require,
                Verify::Full(file.clone()),
            ),
            (
                &format!("sslmode=disable sslrootcert={ca}"),
                PgSslMode::Disable,
                Verify::None,
            ),
            // Never TLS over a unix socket, whatever sslmode says.
            (
                "host=/tmp sslmode=verify-full",
                PgSslMode::Disable,
                Verify::None,
            ),
        ];
        for (dsn, mode, verify) in cases {
            let p = params(dsn);
            assert_eq!(
                tls_plan(&p),
                TlsPlan {
                    mode,
                    verify: verify.clone()
                },
                "{dsn}"
            );
            if verify != Verify::Chain(Roots::System) && verify != Verify::Full(Roots::System) {
                client_config(&tls_plan(&p), &p).unwrap_or_else(|e| panic!("{dsn}: {e}"));
            }
        }
    }

    #[test]
    fn client_config_errors_are_clear() {
        let p = params("sslmode=verify-ca sslrootcert=/nonexistent/root.crt");
        let e = client_config(&tls_plan(&p), &p).unwrap_err();
        assert!(
            e.starts_with("sslrootcert \"/nonexistent/root.crt\": "),
            "{e}"
        );

        let p = params(&format!(
            "sslmode=verify-ca sslrootcert={}",
            fixture("README.md")
        ));
        let e = client_config(&tls_plan(&p), &p).unwrap_err();
        assert!(e.ends_with("no PEM certificates found"), "{e}");

        let p = params(&format!(
            "sslmode=require sslcert={}",
            fixture("client.crt")
        ));
        let e = client_config(&tls_plan(&p), &p).unwrap_err();
        assert!(e.contains("sslkey is not"), "{e}");

        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("client.key");
        std::fs::copy(fixture("client.key"), &key).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
        let p = params(&format!(
            "sslmode=require sslcert={} sslkey={}",
            fixture("client.crt"),
            key.display()
        ));
        let e = client_config(&tls_plan(&p), &p).unwrap_err();
        assert!(e.contains("group or world access"), "{e}");
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        client_config(&tls_plan(&p), &p).unwrap();
    }

    #[test]
    fn system_roots_load_or_fail_clearly() {
        // Depends on the machine's trust store; either outcome must be tidy.
        let p = params("sslmode=verify-full");
        match client_config(&tls_plan(&p), &p) {
            Ok(_) => {}
            Err(e) => assert!(e.contains("no system root certificates"), "{e}"),
        }
    }

    #[test]
    fn chain_only_ignores_just_the_name() {
        let provider = provider();
        let mut roots = RootCertStore::empty();
        for c in read_certs(Path::new(&fixture("ca.crt")), "ca").unwrap() {
            roots.add(c).unwrap();
        }
        let inner = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
            .build()
            .unwrap();
        let chain_only = ChainOnly {
            inner: inner.clone(),
        };
        let server = read_certs(Path::new(&fixture("server.crt")), "server").unwrap();
        let other = ServerName::try_from("other.example").unwrap();
        let right = ServerName::try_from("db.example").unwrap();
        let now = UnixTime::now();
        assert!(inner
            .verify_server_cert(&server[0], &[], &other, &[], now)
            .is_err());
        assert!(inner
            .verify_server_cert(&server[0], &[], &right, &[], now)
            .is_ok());
        assert!(chain_only
            .verify_server_cert(&server[0], &[], &other, &[], now)
            .is_ok());
        // A CA certificate presented as the server certificate still fails.
        let ca = read_certs(Path::new(&fixture("other-ca.crt")), "ca").unwrap();
        assert!(chain_only
            .verify_server_cert(&ca[0], &[], &other, &[], now)
            .is_err());
    }

    // --- A fake PostgreSQL server, enough for startup + cleartext password. ---

    #[derive(Clone, Copy)]
    enum ServerTls {
        /// Answers 'N' to SSLRequest.
        Off,
        On,
        /// TLS that demands a client certificate signed by ca.crt.
        RequireClientCert,
    }

    fn server_config(mode: ServerTls) -> Option<Arc<rustls::ServerConfig>> {
        let provider = provider();
        let certs = read_certs(Path::new(&fixture("server.crt")), "server").unwrap();
        let key = rustls_pemfile::private_key(&mut BufReader::new(
            std::fs::File::open(fixture("server.key")).unwrap(),
        ))
        .unwrap()
        .unwrap();
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .unwrap();
        let builder = match mode {
            ServerTls::Off => return None,
            ServerTls::On => builder.with_no_client_auth(),
            ServerTls::RequireClientCert => {
                let mut roots = RootCertStore::empty();
                for c in read_certs(Path::new(&fixture("ca.crt")), "ca").unwrap() {
                    roots.add(c).unwrap();
                }
                let v = rustls::server::WebPkiClientVerifier::builder_with_provider(
                    Arc::new(roots),
                    provider,
                )
                .build()
                .unwrap();
                builder.with_client_cert_verifier(v)
            }
        };
        Some(Arc::new(builder.with_single_cert(certs, key).unwrap()))
    }

    /// Serves `n` connections on 127.0.0.1 in a thread; returns the port.
    fn fake_server(mode: ServerTls, password: &'static str, n: usize) -> u16 {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let tls = server_config(mode);
        std::thread::spawn(move || {
            for _ in 0..n {
                let Ok((tcp, _)) = listener.accept() else {
                    return;
                };
                tcp.set_read_timeout(Some(Duration::from_secs(10))).ok();
                let _ = serve(tcp, tls.clone(), password);
            }
        });
        port
    }

    fn read_untyped(s: &mut impl Read) -> std::io::Result<Vec<u8>> {
        let mut len = [0u8; 4];
        s.read_exact(&mut len)?;
        let mut body = vec![0u8; (u32::from_be_bytes(len) as usize).saturating_sub(4)];
        s.read_exact(&mut body)?;
        Ok(body)
    }

    fn serve(
        mut tcp: TcpStream,
        tls: Option<Arc<rustls::ServerConfig>>,
        password: &str,
    ) -> std::io::Result<()> {
        let first = read_untyped(&mut tcp)?;
        if first == [0x04, 0xd2, 0x16, 0x2f] {
            match tls {
                Some(cfg) => {
                    tcp.write_all(b"S")?;
                    let conn = rustls::ServerConnection::new(cfg).map_err(std::io::Error::other)?;
                    let mut s = rustls::StreamOwned::new(conn, tcp);
                    let startup = read_untyped(&mut s)?;
                    authenticate(&mut s, &startup, password)
                }
                None => {
                    tcp.write_all(b"N")?;
                    let startup = read_untyped(&mut tcp)?;
                    authenticate(&mut tcp, &startup, password)
                }
            }
        } else {
            authenticate(&mut tcp, &first, password)
        }
    }

    fn authenticate(
        s: &mut (impl Read + Write),
        startup: &[u8],
        password: &str,
    ) -> std::io::Result<()> {
        let fields: Vec<&[u8]> = startup[4..].split(|b| *b == 0).collect();
        let user = fields
            .windows(2)
            .find(|w| w[0] == b"user")
            .map(|w| String::from_utf8_lossy(w[1]).into_owned())
            .unwrap_or_default();
        s.write_all(&[b'R', 0, 0, 0, 8, 0, 0, 0, 3])?;
        s.flush()?;
        let mut tag = [0u8; 1];
        s.read_exact(&mut tag)?;
        let body = read_untyped(s)?;
        let given = body.strip_suffix(&[0]).unwrap_or(&body);
        if tag[0] == b'p' && given == password.as_bytes() {
            s.write_all(&[b'R', 0, 0, 0, 8, 0, 0, 0, 0])?;
            s.write_all(&[b'K', 0, 0, 0, 12, 0, 0, 0, 42, 0, 0, 0, 7])?;
            s.write_all(&[b'Z', 0, 0, 0, 5, b'I'])?;
            s.flush()?;
            // Hold the connection until the client hangs up.
            let mut sink = [0u8; 256];
            while s.read(&mut sink)? > 0 {}
        } else {
            let mut fields = Vec::new();
            for (code, value) in [
                (b'S', "FATAL".to_owned()),
                (b'V', "FATAL".to_owned()),
                (b'C', "28P01".to_owned()),
                (
                    b'M',
                    format!("password authentication failed for user \"{user}\""),
                ),
            ] {
                fields.push(code);
                fields.extend_from_slice(value.as_bytes());
                fields.push(0);
            }
            fields.push(0);
            s.write_all(b"E")?;
            s.write_all(&((fields.len() + 4) as u32).to_be_bytes())?;
            s.write_all(&fields)?;
            s.flush()?;
        }
        Ok(())
    }

    async fn try_connect(dsn: &str, password: Option<&str>) -> Result<Client, ConnectError> {
        let mut cfg = conn_cfg(dsn);
        if let Some(p) = password {
            cfg.password = Some(p.into());
        }
        connect(&cfg, "cutover-test", Duration::from_secs(5)).await
    }

    async fn ok(dsn: &str) {
        let client = try_connect(dsn, Some("s3cret-pw"))
            .await
            .unwrap_or_else(|e| panic!("{dsn}: {e}"));
        assert!(!client.is_closed());
    }

    async fn err(dsn: &str) -> ConnectError {
        let e = try_connect(dsn, Some("s3cret-pw"))
            .await
            .err()
            .unwrap_or_else(|| panic!("{dsn}: connected"));
        assert!(!e.to_string().contains("s3cret-pw"));
        e
    }

    #[tokio::test]
    async fn refused_names_host_and_port() {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let e = err(&format!("host=127.0.0.1 port={port} sslmode=disable")).await;
        assert_eq!(e.kind, ConnectErrorKind::Refused);
        assert_eq!(
            e.to_string(),
            format!("127.0.0.1:{port}: connection refused")
        );
    }

    #[tokio::test]
    async fn silent_server_times_out() {
        // The kernel completes the TCP handshake; nobody ever answers.
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let cfg = conn_cfg(&format!("host=127.0.0.1 port={port} sslmode=disable"));
        let e = connect(&cfg, "t", Duration::from_millis(300))
            .await
            .err()
            .unwrap();
        assert_eq!(e.kind, ConnectErrorKind::Timeout);
        assert_eq!(
            e.to_string(),
            format!("127.0.0.1:{port}: timeout after 300ms")
        );
        drop(listener);
    }

    #[tokio::test]
    async fn missing_socket_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let e = err(&format!("host={} port=5999", dir.path().display())).await;
        assert_eq!(e.kind, ConnectErrorKind::Refused);
        assert!(
            e.to_string().starts_with(&format!(
                "{}/.s.PGSQL.5999: no such socket file",
                dir.path().display()
            )),
            "{e}"
        );
    }

    #[tokio::test]
    async fn tls_verify_full_checks_chain_and_name() {
        let ca = fixture("ca.crt");
        let port = fake_server(ServerTls::On, "s3cret-pw", 2);
        ok(&format!(
            "host=db.example hostaddr=127.0.0.1 port={port} sslmode=verify-full sslrootcert={ca}"
        ))
        .await;
        let e = err(&format!("host=other.example hostaddr=127.0.0.1 port={port} sslmode=verify-full sslrootcert={ca}")).await;
        assert_eq!(e.kind, ConnectErrorKind::Tls);
        assert!(
            e.to_string().starts_with(&format!(
                "other.example (127.0.0.1):{port}: TLS: certificate verify failed: certificate not valid for name \"other.example\""
            )),
            "{e}"
        );
    }

    #[tokio::test]
    async fn tls_verify_ca_ignores_name_but_not_issuer() {
        let port = fake_server(ServerTls::On, "s3cret-pw", 2);
        ok(&format!(
            "host=other.example hostaddr=127.0.0.1 port={port} sslmode=verify-ca sslrootcert={}",
            fixture("ca.crt")
        ))
        .await;
        let other = fixture("other-ca.crt");
        let e = err(&format!("host=other.example hostaddr=127.0.0.1 port={port} sslmode=verify-ca sslrootcert={other}")).await;
        assert_eq!(e.kind, ConnectErrorKind::Tls);
        assert!(
            e.to_string().ends_with(&format!(
                "TLS: certificate verify failed: unknown issuer (not signed by a CA in sslrootcert \"{other}\")"
            )),
            "{e}"
        );
    }

    #[tokio::test]
    async fn tls_require_encrypts_without_verifying_unless_rooted() {
        let port = fake_server(ServerTls::On, "s3cret-pw", 2);
        ok(&format!("host=127.0.0.1 port={port} sslmode=require")).await;
        // libpq: require + sslrootcert behaves like verify-ca.
        let e = err(&format!(
            "host=127.0.0.1 port={port} sslmode=require sslrootcert={}",
            fixture("other-ca.crt")
        ))
        .await;
        assert_eq!(e.kind, ConnectErrorKind::Tls);
    }

    #[tokio::test]
    async fn prefer_falls_back_to_plaintext_like_libpq() {
        let port = fake_server(ServerTls::Off, "s3cret-pw", 1);
        ok(&format!("host=127.0.0.1 port={port} sslmode=prefer")).await;
        // Verification failure under prefer: retried without TLS (2 connections).
        let port = fake_server(ServerTls::On, "s3cret-pw", 2);
        ok(&format!(
            "host=127.0.0.1 port={port} sslmode=prefer sslrootcert={}",
            fixture("other-ca.crt")
        ))
        .await;
    }

    #[tokio::test]
    async fn require_against_plaintext_server_fails() {
        let port = fake_server(ServerTls::Off, "s3cret-pw", 1);
        let e = err(&format!("host=127.0.0.1 port={port} sslmode=require")).await;
        assert_eq!(e.kind, ConnectErrorKind::Tls);
        assert_eq!(
            e.to_string(),
            format!("127.0.0.1:{port}: TLS: server does not support TLS")
        );
    }

    #[tokio::test]
    async fn client_certificates_are_sent() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("client.key");
        std::fs::copy(fixture("client.key"), &key).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        let port = fake_server(ServerTls::RequireClientCert, "s3cret-pw", 2);
        ok(&format!(
            "host=db.example hostaddr=127.0.0.1 port={port} sslmode=verify-full sslrootcert={} sslcert={} sslkey={}",
            fixture("ca.crt"),
            fixture("client.crt"),
            key.display()
        ))
        .await;
        let e = err(&format!(
            "host=db.example hostaddr=127.0.0.1 port={port} sslmode=verify-full sslrootcert={}",
            fixture("ca.crt")
        ))
        .await;
        assert_eq!(e.kind, ConnectErrorKind::Tls, "{e}");
    }

    #[tokio::test]
    async fn auth_failures_name_the_user_and_hide_the_password() {
        let port = fake_server(ServerTls::On, "the-right-one", 2);
        let e = err(&format!(
            "host=127.0.0.1 port={port} user=app sslmode=require"
        ))
        .await;
        assert_eq!(e.kind, ConnectErrorKind::Auth);
        assert_eq!(
            e.to_string(),
            format!("127.0.0.1:{port}: password authentication failed for user \"app\"")
        );
        let e = try_connect(&format!("host=127.0.0.1 port={port} sslmode=require"), None)
            .await
            .err()
            .unwrap();
        assert_eq!(e.kind, ConnectErrorKind::Auth);
        assert!(
            e.message
                .starts_with("the server asked for a password but none was found"),
            "{e}"
        );
    }

    #[test]
    fn scrub_removes_echoed_passwords() {
        let mut cfg = conn_cfg("host=h");
        cfg.password = Some("hunter22".into());
        assert_eq!(scrub("bad hunter22 x".into(), &cfg), "bad *** x");
        cfg.password = Some("ab".into());
        assert_eq!(scrub("abc".into(), &cfg), "abc");
    }
}
