//! Connecting as libpq would, against real clusters: several hosts with
//! target_session_attrs, keepalives, and service files.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use cutover::config::ConnConfig;
use cutover::pg::conn::{connect, connect_reporting, ConnectErrorKind, Connected};

const TIMEOUT: Duration = Duration::from_secs(10);

/// A hermetic environment: nothing from the developer's PG* variables,
/// ~/.pgpass or ~/.pg_service.conf.
fn env_with(extra: &[(&str, String)]) -> impl Fn(&str) -> Option<String> {
    let mut map: HashMap<String, String> = HashMap::from([
        ("USER".to_owned(), "postgres".to_owned()),
        ("HOME".to_owned(), "/nonexistent-cutover-home".to_owned()),
        (
            "PGSYSCONFDIR".to_owned(),
            "/nonexistent-cutover-etc".to_owned(),
        ),
    ]);
    for (k, v) in extra {
        map.insert(k.to_string(), v.clone());
    }
    move |k: &str| map.get(k).cloned()
}

fn cfg(dsn: &str) -> ConnConfig {
    ConnConfig::from_dsn("test", dsn, None, &env_with(&[])).unwrap_or_else(|e| panic!("{dsn}: {e}"))
}

/// `ha_probe` may log in on both clusters, but every session it opens on the
/// target is read-only, as on a standby.
fn ha_probe_role() {
    // Once: concurrent CREATE ROLE can fail on the catalog's unique index.
    static DONE: std::sync::Once = std::sync::Once::new();
    DONE.call_once(create_ha_probe_role);
}

fn create_ha_probe_role() {
    let pair = common::pair();
    let create = "DO $$ BEGIN CREATE ROLE ha_probe LOGIN; \
                  EXCEPTION WHEN duplicate_object THEN NULL; END $$";
    pair.psql(&pair.source_conninfo, create);
    pair.psql(&pair.target_conninfo, create);
    pair.psql(
        &pair.target_conninfo,
        "ALTER ROLE ha_probe SET default_transaction_read_only = on",
    );
}

async fn server_port(client: &tokio_postgres::Client) -> u16 {
    let row = client
        .query_one("SELECT current_setting('port')::int", &[])
        .await
        .unwrap();
    row.get::<_, i32>(0) as u16
}

fn ha_dsn(attrs: &str) -> String {
    let pair = common::pair();
    format!(
        "host=127.0.0.1,127.0.0.1 port={},{} user=ha_probe dbname=app sslmode=disable target_session_attrs={attrs}",
        pair.target_port, pair.source_port
    )
}

#[tokio::test]
async fn read_write_skips_a_read_only_first_host() {
    ha_probe_role();
    let pair = common::pair();
    let (client, connected) = connect_reporting(&cfg(&ha_dsn("read-write")), "t", TIMEOUT)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        connected,
        Connected {
            endpoint: format!("127.0.0.1:{}", pair.source_port),
            index: 1,
            of: 2
        }
    );
    assert_eq!(server_port(&client).await, pair.source_port);
}

#[tokio::test]
async fn read_only_takes_the_first_host() {
    ha_probe_role();
    let pair = common::pair();
    let (client, connected) = connect_reporting(&cfg(&ha_dsn("read-only")), "t", TIMEOUT)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        connected.endpoint,
        format!("127.0.0.1:{}", pair.target_port)
    );
    assert_eq!((connected.index, connected.of), (0, 2));
    assert_eq!(server_port(&client).await, pair.target_port);
}

#[tokio::test]
async fn when_no_host_will_do_each_says_why() {
    ha_probe_role();
    let pair = common::pair();
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dsn = format!(
        "host=127.0.0.1,127.0.0.1 port={},{dead} user=ha_probe dbname=app sslmode=disable target_session_attrs=read-write",
        pair.target_port
    );
    let e = connect(&cfg(&dsn), "t", TIMEOUT).await.err().unwrap();
    assert_eq!(
        e.to_string(),
        format!(
            "127.0.0.1:{}: read-only (target_session_attrs=read-write); 127.0.0.1:{dead}: connection refused",
            pair.target_port
        )
    );
    assert_eq!(e.attempts[0].kind, ConnectErrorKind::WrongSession);
    assert_eq!(e.attempts[1].kind, ConnectErrorKind::Refused);
}

/// `ss`'s view of our end of the connection `client` holds.
async fn socket_timer(client: &tokio_postgres::Client) -> String {
    let row = client
        .query_one("SELECT inet_client_port()", &[])
        .await
        .unwrap();
    let port: i32 = row.get(0);
    let out = std::process::Command::new("ss")
        .args(["-tnoH", "state", "established", &format!("sport = :{port}")])
        .output()
        .expect("running ss");
    assert!(out.status.success(), "ss failed");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(text.contains(&format!(":{port}")), "no socket in: {text}");
    text
}

#[tokio::test]
async fn keepalives_are_applied_to_the_socket() {
    let pair = common::pair();
    let dsn = format!(
        "host=127.0.0.1 port={} user=postgres dbname=app sslmode=disable keepalives=1 keepalives_idle=7 keepalives_interval=3 keepalives_count=4",
        pair.source_port
    );
    let client = connect(&cfg(&dsn), "t", TIMEOUT).await.unwrap();
    let ss = socket_timer(&client).await;
    // The kernel's own default idle is two hours; ours is seconds.
    assert!(ss.contains("timer:(keepalive,"), "{ss}");
    assert!(!ss.contains("min"), "idle not applied: {ss}");

    let off = format!(
        "host=127.0.0.1 port={} user=postgres dbname=app sslmode=disable keepalives=0",
        pair.source_port
    );
    let client = connect(&cfg(&off), "t", TIMEOUT).await.unwrap();
    let ss = socket_timer(&client).await;
    assert!(!ss.contains("keepalive"), "{ss}");

    // The default is on, without saying anything.
    let default = format!(
        "host=127.0.0.1 port={} user=postgres dbname=app sslmode=disable",
        pair.source_port
    );
    let client = connect(&cfg(&default), "t", TIMEOUT).await.unwrap();
    let ss = socket_timer(&client).await;
    assert!(ss.contains("timer:(keepalive,"), "{ss}");
}

#[tokio::test]
async fn a_service_from_pg_service_conf_connects() {
    let pair = common::pair();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pg_service.conf");
    std::fs::write(
        &file,
        format!(
            "# test services\n[cutover_src]\nhost=127.0.0.1\nport={}\ndbname=app\nuser=postgres\nsslmode=disable\n",
            pair.source_port
        ),
    )
    .unwrap();
    let env = env_with(&[("PGSERVICEFILE", file.display().to_string())]);
    let c = ConnConfig::from_dsn("src", "service=cutover_src", None, &env).unwrap();
    let client = connect(&c, "t", TIMEOUT)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(server_port(&client).await, pair.source_port);

    // The DSN's own keywords win over the service's.
    let dsn = format!("service=cutover_src port={}", pair.target_port);
    let c = ConnConfig::from_dsn("tgt", &dsn, None, &env).unwrap();
    let client = connect(&c, "t", TIMEOUT)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(server_port(&client).await, pair.target_port);

    // PGSERVICE names it too.
    let env = env_with(&[
        ("PGSERVICEFILE", file.display().to_string()),
        ("PGSERVICE", "cutover_src".to_owned()),
    ]);
    let c = ConnConfig::from_dsn("src", "", None, &env).unwrap();
    let client = connect(&c, "t", TIMEOUT)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(server_port(&client).await, pair.source_port);
}
