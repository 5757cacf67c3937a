use super::*;
use std::collections::HashMap;

fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let map: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |k: &str| map.get(k).cloned()
}

fn host(i: &ConnInfo) -> Option<String> {
    i.host.as_ref().map(|h| h.join(","))
}

fn port(i: &ConnInfo) -> Option<u16> {
    i.port.as_ref().and_then(|p| p.first().copied().flatten())
}

fn empty_env() -> impl Fn(&str) -> Option<String> {
    // HOME points nowhere so the developer's ~/.postgresql cannot leak in.
    env_of(&[("USER", "alice"), ("HOME", "/nonexistent-cutover-home")])
}

#[test]
fn key_value_basic() {
    let i = parse("host=db.example port=6543 dbname=app user=bob sslmode=verify-full").unwrap();
    assert_eq!(host(&i).as_deref(), Some("db.example"));
    assert_eq!(port(&i), Some(6543));
    assert_eq!(i.dbname.as_deref(), Some("app"));
    assert_eq!(i.user.as_deref(), Some("bob"));
    assert_eq!(i.sslmode, Some(SslMode::VerifyFull));
}

#[test]
fn key_value_quoting_and_escapes() {
    let i =
        parse(r"  user = 'o\'brien'  password='a b\\c' dbname=x\ y options='-c search_path=s'  ")
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
    assert_eq!(host(&i).as_deref(), Some("db.example"));
    assert_eq!(port(&i), Some(6543));
    assert_eq!(i.dbname.as_deref(), Some("my db"));
    assert_eq!(i.sslmode, Some(SslMode::Require));
    assert_eq!(i.application_name.as_deref(), Some("x+y"));
}

#[test]
fn uri_minimal_forms() {
    assert_eq!(parse("postgres://").unwrap(), ConnInfo::default());
    let i = parse("postgres://localhost").unwrap();
    assert_eq!(host(&i).as_deref(), Some("localhost"));
    let i = parse("postgresql:///app").unwrap();
    assert_eq!(i.host, None);
    assert_eq!(i.dbname.as_deref(), Some("app"));
    let i = parse("postgres://u@h/d").unwrap();
    assert_eq!(
        (i.user.as_deref(), host(&i).as_deref()),
        (Some("u"), Some("h"))
    );
    // An unencoded '@' in the password still works because the last '@' splits.
    let i = parse("postgres://u:p@ss@h/d").unwrap();
    assert_eq!(i.password.unwrap().expose(), "p@ss");
}

#[test]
fn uri_ipv6() {
    let i = parse("postgres://[::1]:5433/app").unwrap();
    assert_eq!(host(&i).as_deref(), Some("::1"));
    assert_eq!(port(&i), Some(5433));
    let i = parse("postgres://user@[2001:db8::7]/app").unwrap();
    assert_eq!(host(&i).as_deref(), Some("2001:db8::7"));
    assert_eq!(port(&i), None);
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
    assert_eq!(host(&i).as_deref(), Some("/var/run/postgresql"));
    let i = parse("postgresql:///app?host=/tmp&port=5444").unwrap();
    assert_eq!(host(&i).as_deref(), Some("/tmp"));
    let p = i.resolve(&empty_env()).unwrap();
    assert_eq!(p.hosts[0].host, Host::Unix("/tmp".into()));
    assert_eq!(p.endpoint(), "/tmp/.s.PGSQL.5444");
}

#[test]
fn uri_errors() {
    let e = parse("postgres://h/app?sslmode=verify-everything").unwrap_err();
    assert!(e
        .message
        .starts_with("invalid sslmode \"verify-everything\""));
    assert_eq!(e.offset, Some(25));
    let e = parse("postgres://h1:1,h2:99999/app").unwrap_err();
    assert_eq!(e.message, "invalid port \"99999\" (expected 1..65535)");
    assert_eq!(e.offset, Some(19));
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
    assert_eq!(p.hosts[0].host, Host::Tcp("localhost".into()));
    assert_eq!(p.hosts[0].port, 5432);
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
    assert_eq!(p.hosts[0].host, Host::Tcp("envhost".into()));
    assert_eq!(p.hosts[0].port, 7777);
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
    assert_eq!(p.hosts[0].host, Host::Unix("/run/pg".into()));
    assert_eq!(p.hosts[0].port, 1);
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
    assert_eq!(p.hosts[0].host, Host::Tcp("10.1.2.3".into()));
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
    let pw = |dsn: &str, pe: Option<&str>| explicit_password(&parse(dsn).unwrap(), pe, &env);
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
    assert_eq!(
        explicit_password(&parse("").unwrap(), None, &none).unwrap(),
        None
    );
}

fn endpoints(dsn: &str, env: &dyn Env) -> Vec<String> {
    parse(dsn)
        .unwrap()
        .resolve(env)
        .unwrap()
        .hosts
        .iter()
        .map(ToString::to_string)
        .collect()
}

#[test]
fn several_hosts_key_value() {
    let env = empty_env();
    assert_eq!(
        endpoints("host=a,b port=5432,5433", &env),
        ["a:5432", "b:5433"]
    );
    // One port for every host.
    assert_eq!(
        endpoints("host=a,b,c port=6000", &env),
        ["a:6000", "b:6000", "c:6000"]
    );
    // Empty entries: the default host and port.
    assert_eq!(
        endpoints("host=a,,/tmp port=1,,3", &env),
        ["a:1", "localhost:5432", "/tmp/.s.PGSQL.3"]
    );
    assert_eq!(
        endpoints("host=a,b hostaddr=10.0.0.1,", &env),
        ["a (10.0.0.1):5432", "b:5432"]
    );
    // Only addresses: each names its server.
    assert_eq!(
        endpoints("hostaddr=10.0.0.1,::1 port=1,2", &env),
        ["10.0.0.1:1", "[::1]:2"]
    );
    let p = parse("host=a,b port=5432,5433 dbname=d user=u")
        .unwrap()
        .resolve(&env)
        .unwrap();
    assert_eq!(p.endpoint(), "a:5432,b:5433");
    assert!(!p.is_unix_socket());
}

#[test]
fn host_list_counts_follow_libpq() {
    let e = parse("host=a,b port=1,2,3").unwrap_err();
    assert_eq!(
        e.message,
        "could not match 3 port numbers to 2 hosts (give one port for all hosts or one per host)"
    );
    assert_eq!(e.offset, Some(14));
    let e = parse("host=a,b,c hostaddr=10.0.0.1,10.0.0.2").unwrap_err();
    assert_eq!(
        e.message,
        "could not match 3 host names to 2 hostaddr values (give one hostaddr per host)"
    );
    assert_eq!(e.offset, Some(20));
    // Ports without hosts: judged once the hosts are known (here: the default).
    let e = parse("port=1,2")
        .unwrap()
        .resolve(&empty_env())
        .unwrap_err();
    assert!(
        e.message
            .starts_with("could not match 2 port numbers to 1 hosts"),
        "{e}"
    );
    // A bad entry is pointed at exactly.
    let e = parse("host=a,b port=5432,x").unwrap_err();
    assert_eq!(e.message, "invalid port \"x\" (expected 1..65535)");
    assert_eq!(e.offset, Some(19));
    let e = parse("host=a,b hostaddr=10.0.0.1,db").unwrap_err();
    assert_eq!(e.offset, Some(27));
    assert!(e.message.starts_with("invalid hostaddr \"db\""), "{e}");

    // The rule also holds across the DSN and the environment.
    let env = env_of(&[("USER", "u"), ("PGPORT", "1,2,3")]);
    let e = parse("host=a,b").unwrap().resolve(&env).unwrap_err();
    assert_eq!(e.offset, None);
    assert!(
        e.message
            .starts_with("could not match 3 port numbers to 2 hosts"),
        "{e}"
    );
    let env = env_of(&[("USER", "u"), ("PGHOST", "a,b"), ("PGPORT", "1,2")]);
    assert_eq!(endpoints("", &env), ["a:1", "b:2"]);
    let env = env_of(&[("USER", "u"), ("PGPORT", "1,x")]);
    let e = parse("host=a,b").unwrap().resolve(&env).unwrap_err();
    assert_eq!(e.message, "PGPORT: invalid port \"x\" (expected 1..65535)");
}

#[test]
fn several_hosts_uri() {
    let env = empty_env();
    assert_eq!(
        endpoints("postgresql://a:5432,b:5433/db", &env),
        ["a:5432", "b:5433"]
    );
    assert_eq!(
        endpoints("postgres://u@[::1]:5433,[2001:db8::2],c/db", &env),
        ["[::1]:5433", "[2001:db8::2]:5432", "c:5432"]
    );
    let i = parse("postgresql://a:5432,b:5433/db?target_session_attrs=read-write").unwrap();
    assert_eq!(i.host, Some(vec!["a".to_owned(), "b".to_owned()]));
    assert_eq!(i.port, Some(vec![Some(5432), Some(5433)]));
    assert_eq!(i.dbname.as_deref(), Some("db"));
    assert_eq!(i.target_session_attrs, Some(TargetSessionAttrs::ReadWrite));
    // Like libpq, a host list without ports ignores PGPORT (each entry is empty).
    let env = env_of(&[("USER", "u"), ("PGPORT", "7777")]);
    assert_eq!(endpoints("postgres://a,b/db", &env), ["a:5432", "b:5432"]);
    assert_eq!(endpoints("postgres://a/db", &env), ["a:7777"]);
    let e = parse("postgres://[::1]x,b/db").unwrap_err();
    assert!(e.message.starts_with("unexpected \"x\""), "{e}");
}

#[test]
fn target_session_attrs_like_libpq() {
    for v in [
        "any",
        "read-write",
        "read-only",
        "primary",
        "standby",
        "prefer-standby",
    ] {
        let i = parse(&format!("target_session_attrs={v}")).unwrap();
        assert_eq!(i.target_session_attrs.unwrap().as_str(), v);
    }
    let e = parse("host=a target_session_attrs=master").unwrap_err();
    assert_eq!(
        e.message,
        "invalid target_session_attrs \"master\" (expected any, read-write, read-only, primary, standby or prefer-standby)"
    );
    assert_eq!(e.offset, Some(28));
    let p = parse("").unwrap().resolve(&empty_env()).unwrap();
    assert_eq!(p.target_session_attrs, TargetSessionAttrs::Any);
    let env = env_of(&[("USER", "u"), ("PGTARGETSESSIONATTRS", "standby")]);
    let p = parse("").unwrap().resolve(&env).unwrap();
    assert_eq!(p.target_session_attrs, TargetSessionAttrs::Standby);
    let p = parse("target_session_attrs=primary")
        .unwrap()
        .resolve(&env)
        .unwrap();
    assert_eq!(p.target_session_attrs, TargetSessionAttrs::Primary);
    let env = env_of(&[("USER", "u"), ("PGTARGETSESSIONATTRS", "rw")]);
    let e = parse("").unwrap().resolve(&env).unwrap_err();
    assert!(
        e.message
            .starts_with("PGTARGETSESSIONATTRS: invalid target_session_attrs"),
        "{e}"
    );
}

#[test]
fn keepalives_default_on_and_validated() {
    let p = parse("").unwrap().resolve(&empty_env()).unwrap();
    assert_eq!(
        p.keepalives,
        Keepalives {
            enabled: true,
            idle: Duration::from_secs(10),
            interval: Duration::from_secs(5),
            count: 3
        }
    );
    let p = parse("keepalives=1 keepalives_idle=30 keepalives_interval=2 keepalives_count=9")
        .unwrap()
        .resolve(&empty_env())
        .unwrap();
    assert_eq!(
        p.keepalives,
        Keepalives {
            enabled: true,
            idle: Duration::from_secs(30),
            interval: Duration::from_secs(2),
            count: 9
        }
    );
    let i = parse("postgres://h/d?keepalives=0").unwrap();
    assert_eq!(i.keepalives, Some(false));
    for (dsn, message, offset) in [
        (
            "keepalives=yes",
            "invalid keepalives \"yes\" (expected 1 for on or 0 for off)",
            11,
        ),
        (
            "keepalives_idle=0",
            "invalid keepalives_idle \"0\" (expected whole seconds 1..=32767)",
            16,
        ),
        (
            "keepalives_interval=1e3",
            "invalid keepalives_interval \"1e3\" (expected whole seconds 1..=32767)",
            20,
        ),
        (
            "keepalives_count=128",
            "invalid keepalives_count \"128\" (expected 1..=127)",
            17,
        ),
        (
            "keepalives_count=-1",
            "invalid keepalives_count \"-1\" (expected 1..=127)",
            17,
        ),
    ] {
        let e = parse(dsn).unwrap_err();
        assert_eq!(
            (e.message.as_str(), e.offset),
            (message, Some(offset)),
            "{dsn}"
        );
    }
}

struct ServiceFiles {
    dir: tempfile::TempDir,
}

impl ServiceFiles {
    fn new(user: &str, system: &str) -> ServiceFiles {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("user.conf"), user).unwrap();
        std::fs::create_dir(dir.path().join("etc")).unwrap();
        std::fs::write(dir.path().join("etc/pg_service.conf"), system).unwrap();
        ServiceFiles { dir }
    }

    fn env(&self, extra: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let user = self.dir.path().join("user.conf").display().to_string();
        let sys = self.dir.path().join("etc").display().to_string();
        let mut pairs: Vec<(String, String)> = vec![
            ("USER".into(), "me".into()),
            ("HOME".into(), "/nonexistent-cutover-home".into()),
            ("PGSERVICEFILE".into(), user),
            ("PGSYSCONFDIR".into(), sys),
        ];
        pairs.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let map: HashMap<String, String> = pairs.into_iter().collect();
        move |k: &str| map.get(k).cloned()
    }
}

#[test]
fn service_keywords_are_defaults_the_dsn_overrides() {
    let files = ServiceFiles::new(
        "# user file\n[ha]\nhost=db1,db2\nport=5433\ndbname=shop\ntarget_session_attrs=read-write\n\n[other]\ndbname=x\n",
        "[ha]\ndbname=never-used\n[sys]\n  host = sysdb  \nuser=sysuser\n",
    );
    let env = files.env(&[("PGPORT", "7777"), ("PGDATABASE", "envdb")]);
    let p = parse("service=ha").unwrap().resolve(&env).unwrap();
    assert_eq!(
        p.hosts.iter().map(ToString::to_string).collect::<Vec<_>>(),
        ["db1:5433", "db2:5433"],
        "the service beats PGPORT"
    );
    assert_eq!(p.dbname, "shop");
    assert_eq!(p.target_session_attrs, TargetSessionAttrs::ReadWrite);
    let p = parse("service=ha dbname=mine port=1,2")
        .unwrap()
        .resolve(&env)
        .unwrap();
    assert_eq!(p.dbname, "mine");
    assert_eq!(p.endpoint(), "db1:1,db2:2");
    // Not in the user file: the system file.
    let p = parse("service=sys").unwrap().resolve(&env).unwrap();
    assert_eq!(p.endpoint(), "sysdb:7777");
    assert_eq!(p.user, "sysuser");
    assert_eq!(p.dbname, "envdb");
    // PGSERVICE works like service=.
    let env = files.env(&[("PGSERVICE", "other")]);
    let p = parse("").unwrap().resolve(&env).unwrap();
    assert_eq!(p.dbname, "x");
}

#[test]
fn service_errors_name_the_service_and_files() {
    let files = ServiceFiles::new(
        "[nested]\nservice=other\n[bad]\nhost\n[badport]\nport=x\n[count]\nhost=a,b\nport=1,2,3\n",
        "",
    );
    let env = files.env(&[]);
    let user = files.dir.path().join("user.conf");
    let sys = files.dir.path().join("etc/pg_service.conf");
    let e = parse("service=nope").unwrap().resolve(&env).unwrap_err();
    assert_eq!(
        e.message,
        format!(
            "definition of service \"nope\" not found (looked in {}, {})",
            user.display(),
            sys.display()
        )
    );
    let e = parse("service=nested").unwrap().resolve(&env).unwrap_err();
    assert_eq!(
        e.message,
        format!(
            "service file \"{}\", line 2: nested service specifications are not supported in service files",
            user.display()
        )
    );
    let e = parse("service=bad").unwrap().resolve(&env).unwrap_err();
    assert_eq!(
        e.message,
        format!(
            "service file \"{}\", line 4: syntax error (expected keyword=value)",
            user.display()
        )
    );
    let e = parse("service=badport").unwrap().resolve(&env).unwrap_err();
    assert_eq!(
        e.message,
        format!(
            "service file \"{}\", line 6: invalid port \"x\" (expected 1..65535)",
            user.display()
        )
    );
    let e = parse("service=count").unwrap().resolve(&env).unwrap_err();
    assert!(e.message.ends_with("could not match 3 port numbers to 2 hosts (give one port for all hosts or one per host)"), "{e}");
    // Without PGSERVICEFILE: ~/.pg_service.conf.
    let env = env_of(&[
        ("USER", "u"),
        ("HOME", "/nonexistent-cutover-home"),
        ("PGSYSCONFDIR", "/nonexistent-etc"),
    ]);
    let e = parse("service=x").unwrap().resolve(&env).unwrap_err();
    assert_eq!(
        e.message,
        "definition of service \"x\" not found (looked in /nonexistent-cutover-home/.pg_service.conf, /nonexistent-etc/pg_service.conf)"
    );
    // A service file that is a directory is an error, not a skip.
    let env = env_of(&[("USER", "u"), ("PGSERVICEFILE", "/tmp")]);
    let e = parse("service=x").unwrap().resolve(&env).unwrap_err();
    assert_eq!(
        e.message,
        "service file \"/tmp\": is a directory, not a regular file; is this the right file?"
    );
}
