//! libpq's `sslmode` semantics over rustls.
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

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use tokio_postgres::config::SslMode as PgSslMode;

use crate::config::{ConnParams, Endpoint, SslMode};

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

/// The libpq sslmode → tokio-postgres mode + verifier mapping, for one host.
pub fn tls_plan(params: &ConnParams, endpoint: &Endpoint) -> TlsPlan {
    if endpoint.is_unix_socket() {
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

pub(super) fn provider() -> Arc<CryptoProvider> {
    // Explicit provider: never depend on (or panic over) a process default.
    Arc::new(rustls::crypto::ring::default_provider())
}

pub(super) fn plain_client_config() -> ClientConfig {
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

pub(super) fn read_certs(path: &Path, what: &str) -> Result<Vec<CertificateDer<'static>>, String> {
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
pub(super) struct ChainOnly {
    pub(super) inner: Arc<WebPkiServerVerifier>,
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
