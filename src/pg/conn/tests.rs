use super::tls::*;
use super::*;
use crate::config::conninfo;
use rustls::client::danger::ServerCertVerifier;
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::{ServerName, UnixTime};
use rustls::RootCertStore;
use std::io::BufReader;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;

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
            tls_plan(&p, &p.hosts[0]),
            TlsPlan {
                mode,
                verify: verify.clone()
            },
            "{dsn}"
        );
        if verify != Verify::Chain(Roots::System) && verify != Verify::Full(Roots::System) {
            client_config(&tls_plan(&p, &p.hosts[0]), &p).unwrap_or_else(|e| panic!("{dsn}: {e}"));
        }
    }
}

#[test]
fn client_config_errors_are_clear() {
    let p = params("sslmode=verify-ca sslrootcert=/nonexistent/root.crt");
    let e = client_config(&tls_plan(&p, &p.hosts[0]), &p).unwrap_err();
    assert!(
        e.starts_with("sslrootcert \"/nonexistent/root.crt\": "),
        "{e}"
    );

    let p = params(&format!(
        "sslmode=verify-ca sslrootcert={}",
        fixture("README.md")
    ));
    let e = client_config(&tls_plan(&p, &p.hosts[0]), &p).unwrap_err();
    assert!(e.ends_with("no PEM certificates found"), "{e}");

    let p = params(&format!(
        "sslmode=require sslcert={}",
        fixture("client.crt")
    ));
    let e = client_config(&tls_plan(&p, &p.hosts[0]), &p).unwrap_err();
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
    let e = client_config(&tls_plan(&p, &p.hosts[0]), &p).unwrap_err();
    assert!(e.contains("group or world access"), "{e}");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    client_config(&tls_plan(&p, &p.hosts[0]), &p).unwrap();
}

#[test]
fn system_roots_load_or_fail_clearly() {
    // Depends on the machine's trust store; either outcome must be tidy.
    let p = params("sslmode=verify-full");
    match client_config(&tls_plan(&p, &p.hosts[0]), &p) {
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
    let e = err(&format!(
        "host=other.example hostaddr=127.0.0.1 port={port} sslmode=verify-full sslrootcert={ca}"
    ))
    .await;
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
    let e = err(&format!(
        "host=other.example hostaddr=127.0.0.1 port={port} sslmode=verify-ca sslrootcert={other}"
    ))
    .await;
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
    assert_eq!(scrub("bad hunter22 x".into(), &cfg, 0), "bad *** x");
    cfg.password = Some("ab".into());
    assert_eq!(scrub("abc".into(), &cfg, 0), "abc");
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test]
async fn several_hosts_are_tried_in_order_and_the_one_used_is_reported() {
    let dead = free_port();
    let live = fake_server(ServerTls::Off, "s3cret-pw", 1);
    let mut cfg = conn_cfg(&format!(
        "host=127.0.0.1,127.0.0.1 port={dead},{live} sslmode=disable"
    ));
    cfg.password = Some("s3cret-pw".into());
    let (client, connected) = connect_reporting(&cfg, "t", Duration::from_secs(5))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(!client.is_closed());
    assert_eq!(
        connected,
        Connected {
            endpoint: format!("127.0.0.1:{live}"),
            index: 1,
            of: 2
        }
    );
}

#[tokio::test]
async fn when_every_host_fails_each_reason_is_listed() {
    let (a, b) = (free_port(), free_port());
    let e = err(&format!(
        "host=127.0.0.1,127.0.0.1 port={a},{b} sslmode=disable"
    ))
    .await;
    assert_eq!(
        e.to_string(),
        format!("127.0.0.1:{a}: connection refused; 127.0.0.1:{b}: connection refused")
    );
    assert_eq!(e.kind, ConnectErrorKind::Refused);
    assert_eq!(e.endpoint, format!("127.0.0.1:{a},127.0.0.1:{b}"));
    assert_eq!(e.attempts.len(), 2);
}

#[tokio::test]
async fn each_host_gets_its_own_password_file_entry() {
    let a = fake_server(ServerTls::Off, "pw-for-a", 1);
    let b = fake_server(ServerTls::Off, "pw-for-b", 1);
    let mut cfg = conn_cfg(&format!(
        "host=127.0.0.1,127.0.0.1 port={a},{b} sslmode=disable user=app"
    ));
    // As if read from the password file: the first entry is stale.
    cfg.host_passwords = vec![Some("stale-pw".into()), Some("pw-for-b".into())];
    let (_client, connected) = connect_reporting(&cfg, "t", Duration::from_secs(5))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(connected.index, 1);

    let a = fake_server(ServerTls::Off, "pw-for-a", 1);
    let b = fake_server(ServerTls::Off, "pw-for-b", 1);
    let mut cfg = conn_cfg(&format!(
        "host=127.0.0.1,127.0.0.1 port={a},{b} sslmode=disable user=app"
    ));
    cfg.host_passwords = vec![Some("stale-pw-1".into()), Some("stale-pw-2".into())];
    let e = connect_reporting(&cfg, "t", Duration::from_secs(5))
        .await
        .err()
        .unwrap();
    assert_eq!(
        e.to_string(),
        format!(
            "127.0.0.1:{a}: password authentication failed for user \"app\"; \
             127.0.0.1:{b}: password authentication failed for user \"app\""
        )
    );
    assert_eq!(e.kind, ConnectErrorKind::Auth);
}

/// Accepts `n` connections, writes `greeting` on each and hangs up.
fn hang_up_server(greeting: &'static [u8], n: usize) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for _ in 0..n {
            let Ok((mut tcp, _)) = listener.accept() else {
                return;
            };
            // Read the startup packet first so the close is not a reset.
            tcp.set_read_timeout(Some(Duration::from_secs(5))).ok();
            let _ = read_untyped(&mut tcp);
            let _ = tcp.write_all(greeting);
        }
    });
    port
}

#[tokio::test]
async fn a_server_that_hangs_up_during_startup_is_named() {
    for greeting in [&b""[..], b"SSH-2.0-OpenSSH_9.6\r\n"] {
        let port = hang_up_server(greeting, 1);
        let e = err(&format!("host=127.0.0.1 port={port} sslmode=disable")).await;
        assert_eq!(e.kind, ConnectErrorKind::Closed, "{e}");
        assert_eq!(
            e.to_string(),
            format!(
                "127.0.0.1:{port}: the server closed the connection during startup (is this a PostgreSQL server?)"
            )
        );
    }
}

#[tokio::test]
async fn a_session_check_without_an_answer_times_out() {
    // The fake server authenticates, then never answers a query.
    let port = fake_server(ServerTls::Off, "s3cret-pw", 1);
    let mut cfg = conn_cfg(&format!(
        "host=127.0.0.1 port={port} sslmode=disable target_session_attrs=read-write"
    ));
    cfg.password = Some("s3cret-pw".into());
    let e = connect(&cfg, "t", Duration::from_secs(1))
        .await
        .err()
        .unwrap();
    assert_eq!(e.kind, ConnectErrorKind::Timeout);
    assert_eq!(
        e.to_string(),
        format!("127.0.0.1:{port}: no answer to the target_session_attrs check within 1s")
    );
}
