use super::*;

fn env(k: &str) -> Option<String> {
    match k {
        "USER" => Some("me".into()),
        // Nowhere, so the developer's ~/.pgpass and ~/.postgresql never leak in.
        "HOME" => Some("/nonexistent-cutover-home".into()),
        "SRC_PW" => Some("env-secret-123".into()),
        _ => None,
    }
}

fn parse_ok(text: &str) -> Config {
    parse_with_env(text, Path::new("conf/cutover.toml"), &env).unwrap_or_else(|e| panic!("{e}"))
}

fn parse_err(text: &str) -> String {
    match parse_with_env(text, Path::new("cutover.toml"), &env) {
        Ok(c) => panic!("expected an error, got {c:?}"),
        Err(e) => e.to_string(),
    }
}

const MINIMAL: &str = r#"
[source]
dsn = "host=127.0.0.1 port=54321 dbname=app user=postgres"
[target]
dsn = "postgres://postgres@127.0.0.1:54322/app?sslmode=disable"
"#;

const FULL: &str = r#"
[source]
dsn = "host=127.0.0.1 port=54321 dbname=app user=postgres password='dsn-secret-456'"
password_env = "SRC_PW"
label = "old"

[target]
dsn = "postgres://postgres@127.0.0.1:54322/app?sslmode=disable"
password_env = "SRC_PW"
label = "new"

[replication]
publication = "pub1"
subscription = "sub1"
slot = "slot_1"

[tables]
include = ["public.*", "orders", "sales.order_*"]
exclude = ["public.*_tmp"]

[thresholds]
max_lag_bytes = 1024
max_lag_seconds = 2
max_retained_wal_bytes = 2048
stale_after_seconds = 1.5

[monitor]
refresh_ms = 250
statement_timeout_ms = 500
connect_timeout_ms = 1500

[session]
dir = "logs"

[ui]
theme = "high-contrast"

[lab]
dir = "/tmp/cutover-lab"
"#;

#[test]
fn minimal_gets_defaults() {
    let c = parse_ok(MINIMAL);
    assert_eq!(c.path, PathBuf::from("conf/cutover.toml"));
    assert_eq!(c.source.label, "source");
    assert_eq!(c.target.label, "target");
    assert_eq!(
        c.source.describe(),
        "postgres@127.0.0.1:54321/app (sslmode=prefer)"
    );
    assert_eq!(
        c.target.describe(),
        "postgres@127.0.0.1:54322/app (sslmode=disable)"
    );
    assert_eq!(c.replication, Replication::default());
    assert_eq!(c.replication.slot, "cutover_sub");
    assert_eq!(c.tables, TableFilter::default());
    assert_eq!(c.thresholds, Thresholds::default());
    assert_eq!(c.thresholds.max_lag_bytes, 16 * 1024 * 1024);
    assert_eq!(c.monitor, Monitor::default());
    assert_eq!(c.session.dir, PathBuf::from("conf/sessions"));
    assert_eq!(c.ui.theme, "default");
    assert!(c.lab.is_none());
}

#[test]
fn full_file() {
    let c = parse_ok(FULL);
    assert_eq!(c.source.label, "old");
    // The DSN password beats password_env.
    assert_eq!(
        c.source.password.as_ref().unwrap().expose(),
        "dsn-secret-456"
    );
    assert_eq!(c.source.password_source, Some(PasswordSource::Dsn));
    assert_eq!(
        c.target.password.as_ref().unwrap().expose(),
        "env-secret-123"
    );
    assert_eq!(
        c.target.password_source,
        Some(PasswordSource::ConfigEnv("SRC_PW".into()))
    );
    assert_eq!(
        c.replication,
        Replication {
            publication: "pub1".into(),
            subscription: "sub1".into(),
            slot: "slot_1".into(),
            sequence_stride: 0,
        }
    );
    assert!(c.tables.matches("public", "users"));
    assert!(c.tables.matches("public", "orders"));
    assert!(c.tables.matches("sales", "order_2024"));
    assert!(!c.tables.matches("sales", "refunds"));
    assert!(!c.tables.matches("public", "x_tmp"));
    assert_eq!(c.thresholds.max_lag_seconds, 2.0);
    assert_eq!(c.thresholds.stale_after_seconds, 1.5);
    assert_eq!(
        c.monitor,
        Monitor {
            refresh_ms: 250,
            statement_timeout_ms: 500,
            connect_timeout_ms: 1500
        }
    );
    assert_eq!(c.session.dir, PathBuf::from("conf/logs"));
    assert_eq!(c.ui.theme, "high-contrast");
    assert_eq!(c.lab.unwrap().dir, PathBuf::from("/tmp/cutover-lab"));
}

#[test]
fn passwords_never_in_debug_or_describe() {
    let c = parse_ok(FULL);
    let dbg = format!("{c:?} {c:#?}");
    for pw in ["dsn-secret-456", "env-secret-123"] {
        assert!(!dbg.contains(pw), "password {pw} leaked into Debug output");
        assert!(!c.source.describe().contains(pw));
        assert!(!c.target.describe().contains(pw));
    }
    assert!(dbg.contains("***"));

    let uri = "[source]\ndsn = \"postgres://u:uri-secret-789@h/app\"\n[target]\ndsn = \"host=t\"\n";
    let c = parse_ok(uri);
    assert!(!format!("{c:?}").contains("uri-secret-789"));
    assert_eq!(
        c.source.password.as_ref().unwrap().expose(),
        "uri-secret-789"
    );

    // Nor in errors about the same DSN.
    let e = parse_err("[source]\ndsn = \"postgres://u:uri-secret-789@h/app?sslmode=nope\"\n[target]\ndsn = \"host=t\"\n");
    assert!(!e.contains("uri-secret-789"), "{e}");
}

#[test]
fn relative_paths_follow_the_config_file() {
    let text = format!("{MINIMAL}[session]\ndir = \"../s\"\n[ui]\ntheme = \"themes/mine.toml\"\n[lab]\ndir = \"lab\"\n");
    let c = parse_ok(&text);
    assert_eq!(c.session.dir, PathBuf::from("conf/../s"));
    assert_eq!(c.ui.theme, "conf/themes/mine.toml");
    assert!(c.ui.theme_is_file());
    assert_eq!(c.lab.unwrap().dir, PathBuf::from("conf/lab"));
    let c = parse_with_env(MINIMAL, Path::new("cutover.toml"), &env).unwrap();
    assert_eq!(c.session.dir, PathBuf::from("sessions"));
}

#[test]
fn error_messages_are_one_precise_line() {
    let cases: &[(&str, &str)] = &[
        (
            "[sourc]\ndsn = \"x\"\n",
            "cutover.toml:1:2: unknown field \"sourc\" in [root] (expected one of source, target, replication, tables, thresholds, monitor, session, report, ui, lab, kubernetes, verify, freeze, runbook, databases, pooler)",
        ),
        ("[source]\ndsn = \"host=a\"\n", "cutover.toml: missing section [target]"),
        ("", "cutover.toml: missing section [source]"),
        (
            "[source]\ndsn = \"host=a\"\n[target]\nlabel = \"x\"\n",
            "cutover.toml:3:1: target.dsn: missing required field",
        ),
        (
            "[source]\n  dsn = \"host=a sslmode=verify-everything\"\n[target]\ndsn = \"host=b\"\n",
            "cutover.toml:2:25: source.dsn: invalid sslmode \"verify-everything\" (expected disable, prefer, require, verify-ca or verify-full)",
        ),
        (
            "[source]\ndsn = \"host=a\"\n[target]\ndsn = \"host=b\"\n[monitor]\nrefresh_ms = \"fast\"\n",
            "cutover.toml:6:14: monitor.refresh_ms: invalid type: string \"fast\", expected a non-negative integer",
        ),
        (
            "[source]\ndsn = \"host=a\"\n[target]\ndsn = \"host=b\"\n[monitor]\nrefresh_ms = 0\n",
            "cutover.toml:6:14: monitor.refresh_ms: 0 is out of range (expected 100..=60000)",
        ),
        (
            "[source]\ndsn = \"host=a\"\n[target]\ndsn = \"host=b\"\n[monitor]\nrefrsh_ms = 5\n",
            "cutover.toml:6:1: unknown field \"refrsh_ms\" in [monitor] (expected one of refresh_ms, statement_timeout_ms, connect_timeout_ms)",
        ),
        (
            "[source]\ndsn = \"host=a\"\n[target]\ndsn = \"host=b\"\n[tables]\ninclude = [\n  \"a.b\",\n  5,\n]\n",
            "cutover.toml:8:3: tables.include: invalid type: integer 5, expected a string",
        ),
        (
            "[source]\ndsn = \"host=a\"\n[target]\ndsn = \"host=b\"\n[tables]\nexclude = [\"ok\", \"a b\"]\n",
            "cutover.toml:6:18: tables.exclude[1]: invalid table pattern \"a b\": unexpected character \" \"",
        ),
        (
            "source = { dsn = \"host=a\", bogus = 1 }\n[target]\ndsn = \"host=b\"\n",
            "cutover.toml:1:28: unknown field \"bogus\" in [source]",
        ),
        (
            "source.dsn = \"host=a\"\nsource.bogus = 1\ntarget.dsn = \"host=b\"\n",
            "cutover.toml:2:8: unknown field \"bogus\" in [source]",
        ),
        (
            "[source]\ndsn = \"host=a\"\n[target]\ndsn = \"host=a\"\n",
            "cutover.toml:4:7: target.dsn: target is the same database as source (a:5432/me)",
        ),
        (
            "[source]\ndsn = \"host=a\"\npassword_env = \"NOPE_X\"\n[target]\ndsn = \"host=b\"\n",
            "cutover.toml:3:16: source.password_env: environment variable NOPE_X is not set or empty",
        ),
        (
            "[source]\ndsn = \"host=a\n",
            "cutover.toml:2:14: source.dsn: invalid TOML: invalid basic string",
        ),
        (
            "[source]\ndsn = \"host=a\"\n[target]\ndsn = \"host=b\"\n[replication]\nsubscription = \"MySub\"\n",
            "cutover.toml:6:16: replication.subscription: \"MySub\" is not a valid replication slot name",
        ),
        (
            "[source]\ndsn = \"host=a\"\n[target]\ndsn = \"host=b\"\n[replication]\npublication = \"\"\n",
            "cutover.toml:6:15: replication.publication: must not be empty",
        ),
        (
            "[source]\ndsn = \"host=a\"\n[target]\ndsn = \"host=b\"\n[thresholds]\nmax_lag_seconds = -1.0\n",
            "cutover.toml:6:19: thresholds.max_lag_seconds: -1.0 is out of range (expected 0.1..=86400)",
        ),
        (
            "[source]\ndsn = \"host=a\"\n[target]\ndsn = \"host=b\"\n[thresholds]\nmax_lag_bytes = 0\n",
            "cutover.toml:6:17: thresholds.max_lag_bytes: 0 is out of range (expected 1..=1099511627776)",
        ),
    ];
    for (text, want) in cases {
        let got = parse_err(text);
        assert!(got.starts_with(want), "\n got: {got}\nwant: {want}…");
        assert!(!got.contains('\n'), "multi-line error: {got}");
    }
}

#[test]
fn long_identifier_rejected() {
    let name = "p".repeat(64);
    let e = parse_err(&format!(
        "{MINIMAL}[replication]\npublication = \"{name}\"\n"
    ));
    assert!(e.contains("replication.publication: "), "{e}");
    assert!(e.contains("at most 63 bytes"), "{e}");
    let ok = "p".repeat(63);
    parse_ok(&format!("{MINIMAL}[replication]\npublication = \"{ok}\"\n"));
}

#[test]
fn non_ascii_columns_count_characters() {
    // "é" is two bytes but one column.
    let e =
        parse_err("[source]\nlabel = \"é\"\ndsn = \"sslmode=nope\"\n[target]\ndsn = \"host=b\"\n");
    assert!(e.starts_with("cutover.toml:3:16: source.dsn:"), "{e}");
    let e = parse_err(
        "[source]\ndsn = \"application_name=é sslmode=nope\"\n[target]\ndsn = \"host=b\"\n",
    );
    assert!(e.starts_with("cutover.toml:2:35: source.dsn:"), "{e}");
}

#[test]
fn escaped_dsn_points_at_the_string() {
    // With TOML escapes the offset inside the value no longer maps to the file,
    // so the error points at the start of the string instead of guessing.
    let e =
        parse_err("[source]\ndsn = \"user=\\u0061 sslmode=nope\"\n[target]\ndsn = \"host=b\"\n");
    assert!(
        e.starts_with("cutover.toml:2:7: source.dsn: invalid sslmode"),
        "{e}"
    );
}

#[test]
fn load_reports_io_and_encoding_problems() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.toml");
    let e = load(&missing).unwrap_err();
    assert!(matches!(e, ConfigError::Read { .. }));
    assert!(e
        .to_string()
        .starts_with(&format!("{}: cannot read config file: ", missing.display())));

    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, b"[source]\ndsn = \"\xff\"\n").unwrap();
    let e = load_with_env(&bad, &env).unwrap_err();
    assert!(
        e.to_string()
            .ends_with("bad.toml:2:8: file is not valid UTF-8"),
        "{e}"
    );

    let good = dir.path().join("cutover.toml");
    std::fs::write(&good, MINIMAL).unwrap();
    let c = load_with_env(&good, &env).unwrap();
    assert_eq!(c.session.dir, dir.path().join("sessions"));
}

#[test]
fn conn_config_from_dsn() {
    let c = ConnConfig::from_dsn("x", "host=/var/run/postgresql dbname=app", None, &env).unwrap();
    assert_eq!(
        c.describe(),
        "me@/var/run/postgresql:5432/app (unix socket)"
    );
    let c = ConnConfig::from_dsn(
        "x",
        "postgres://[::1]:6000/db?sslmode=verify-full",
        None,
        &env,
    )
    .unwrap();
    assert_eq!(c.describe(), "me@[::1]:6000/db (sslmode=verify-full)");
    assert_eq!(
        ConnConfig::from_dsn("x", "", Some("NOPE"), &env).unwrap_err(),
        ConnConfigError::PasswordEnv("NOPE".into())
    );
    assert!(matches!(
        ConnConfig::from_dsn("x", "bogus=1", None, &env),
        Err(ConnConfigError::Dsn(_))
    ));
}

/// A tiny deterministic PRNG so the fuzz cases are reproducible without a dependency.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn never_panics_on_truncated_or_garbage_input() {
    let full = FULL;
    let target_at = full.find("[target]").unwrap();
    let mut cut = 0;
    while cut <= full.len() {
        if full.is_char_boundary(cut) {
            let prefix = &full[..cut];
            let r = parse_with_env(prefix, Path::new("cutover.toml"), &env);
            if cut < target_at + "[target]\ndsn = \"".len() {
                assert!(r.is_err(), "prefix of {cut} bytes unexpectedly parsed");
            }
            if let Err(e) = r {
                assert!(!e.to_string().contains('\n'));
            }
        }
        cut += 1;
    }

    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    let alphabet = b"[]=\"'\\.,{}#\n \t-_abcdefghijklmnopqrstuvwxyz0123456789%@:/?&\xc3\xa9";
    for round in 0..3000u32 {
        let len = (rng.next() % 200) as usize;
        let bytes: Vec<u8> = (0..len)
            .map(|_| {
                if round.is_multiple_of(2) {
                    (rng.next() & 0xff) as u8
                } else {
                    alphabet[(rng.next() as usize) % alphabet.len()]
                }
            })
            .collect();
        let text = String::from_utf8_lossy(&bytes);
        let r = parse_with_env(&text, Path::new("cutover.toml"), &env);
        assert!(r.is_err(), "garbage parsed: {text:?}");
    }

    // Mutations of a valid file: must not panic; most will be errors.
    for _ in 0..3000 {
        let mut bytes = FULL.as_bytes().to_vec();
        for _ in 0..(1 + rng.next() % 4) {
            let i = (rng.next() as usize) % bytes.len();
            bytes[i] = alphabet[(rng.next() as usize) % alphabet.len()];
        }
        let text = String::from_utf8_lossy(&bytes);
        let _ = parse_with_env(&text, Path::new("cutover.toml"), &env);
    }

    // And the DSN parser on its own.
    for _ in 0..3000 {
        let len = (rng.next() % 80) as usize;
        let mut s = if rng.next().is_multiple_of(2) {
            "postgres://".to_owned()
        } else {
            String::new()
        };
        for _ in 0..len {
            s.push(alphabet[(rng.next() as usize) % alphabet.len()] as char);
        }
        if let Ok(info) = conninfo::parse(&s) {
            let _ = info.resolve(&env);
        }
    }
}

#[test]
fn toml_errors_name_the_field_in_words() {
    let base = "[source]\ndsn = \"host=a\"\n[target]\ndsn = \"host=b\"\n";
    let cases: &[(&str, &str)] = &[
        (
            "[thresholds]\nmax_lag_bytes = 5\nmax_lag_seconds 3\n",
            "cutover.toml:7:17: thresholds.max_lag_seconds: missing \"=\" after the key (each line must be key = value)",
        ),
        (
            "[thresholds]\nmax_lag_bytes = 5\n\nmax_lag_seconds\n",
            "cutover.toml:8:16: thresholds.max_lag_seconds: missing \"=\" after the key (each line must be key = value)",
        ),
        (
            "[thresholds]\nmax_lag_bytes = 99999999999999999999\n",
            "cutover.toml:6:17: thresholds.max_lag_bytes: 99999999999999999999 is too large (TOML integers are at most 9223372036854775807)",
        ),
        (
            "[thresholds]\nmax_lag_seconds = 1e400\n",
            "cutover.toml:6:19: thresholds.max_lag_seconds: invalid TOML: invalid floating-point number",
        ),
        (
            "[[thresholds]]\nstale_after_seconds = 1\n",
            "cutover.toml:5:1: thresholds: expected a table ([thresholds]), not an array of tables ([[thresholds]])",
        ),
        (
            "[verify]\nupdated_at = [1]\n",
            "cutover.toml:6:14: verify.updated_at: invalid type: array, expected a table",
        ),
        (
            "[ui]\ntheme = { a = 1 }\n",
            "cutover.toml:6:9: ui.theme: invalid type: table, expected a string",
        ),
    ];
    for (tail, want) in cases {
        let got = parse_err(&format!("{base}{tail}"));
        assert_eq!(&got, want);
    }
    let got = parse_err(&format!("verify = [1]\n{base}"));
    assert_eq!(
        got,
        "cutover.toml:1:10: verify: expected a table ([verify]), found an array"
    );
    let got = parse_err("source = \"x\"\n[target]\ndsn = \"host=b\"\n");
    assert_eq!(
        got,
        "cutover.toml:1:10: source: expected a table ([source] with dsn = \"…\"), found string \"x\""
    );
    let got = parse_err("source = [\"host=a\"]\n[target]\ndsn = \"host=b\"\n");
    assert!(!got.contains("Raw"), "{got}");
    assert!(got.contains("source: expected a table"), "{got}");
}

#[test]
fn numbers_are_bounded_with_the_range_in_the_message() {
    let base = "[source]\ndsn = \"host=a\"\n[target]\ndsn = \"host=b\"\n";
    let cases: &[(&str, &str)] = &[
        (
            "[thresholds]\nstale_after_seconds = 1e300\n",
            "cutover.toml:6:23: thresholds.stale_after_seconds: 1e300 is out of range (expected 1..=3600)",
        ),
        (
            "[thresholds]\nstale_after_seconds = -2.5\n",
            "cutover.toml:6:23: thresholds.stale_after_seconds: -2.5 is out of range (expected 1..=3600)",
        ),
        (
            "[thresholds]\nstale_after_seconds = nan\n",
            "cutover.toml:6:23: thresholds.stale_after_seconds: nan is out of range (expected 1..=3600)",
        ),
        (
            "[thresholds]\nstale_after_seconds = 0\n",
            "cutover.toml:6:23: thresholds.stale_after_seconds: 0 is out of range (expected 1..=3600)",
        ),
        (
            "[thresholds]\nmax_lag_seconds = inf\n",
            "cutover.toml:6:19: thresholds.max_lag_seconds: inf is out of range (expected 0.1..=86400)",
        ),
        (
            "[thresholds]\nmax_lag_bytes = 9223372036854775807\n",
            "cutover.toml:6:17: thresholds.max_lag_bytes: 9223372036854775807 is out of range (expected 1..=1099511627776)",
        ),
        (
            "[thresholds]\nmax_retained_wal_bytes = 0\n",
            "cutover.toml:6:26: thresholds.max_retained_wal_bytes: 0 is out of range (expected 1..=17592186044416)",
        ),
        (
            "[verify]\nparallelism = 100000\n",
            "cutover.toml:6:15: verify.parallelism: 100000 is out of range (expected 1..=64)",
        ),
        (
            "[verify]\nparallelism = 0\n",
            "cutover.toml:6:15: verify.parallelism: 0 is out of range (expected 1..=64)",
        ),
        (
            "[monitor]\nstatement_timeout_ms = 1\n",
            "cutover.toml:6:24: monitor.statement_timeout_ms: 1 is out of range (expected 100..=600000)",
        ),
        (
            "[monitor]\nconnect_timeout_ms = 99999999\n",
            "cutover.toml:6:22: monitor.connect_timeout_ms: 99999999 is out of range (expected 100..=600000)",
        ),
        (
            "[monitor]\nrefresh_ms = 10000\n",
            "cutover.toml: thresholds.stale_after_seconds: 5 s is not longer than monitor.refresh_ms (10000 ms): every reading would show as stale",
        ),
        (
            "[monitor]\nrefresh_ms = 2000\n[thresholds]\nstale_after_seconds = 2\n",
            "cutover.toml:8:23: thresholds.stale_after_seconds: 2 s is not longer than monitor.refresh_ms (2000 ms): every reading would show as stale",
        ),
    ];
    for (tail, want) in cases {
        let got = parse_err(&format!("{base}{tail}"));
        assert_eq!(&got, want);
    }
    let c = parse_ok(&format!(
        "{base}[thresholds]\nstale_after_seconds = 3600\nmax_lag_seconds = 0.1\n[verify]\nparallelism = 64\n"
    ));
    assert_eq!(c.thresholds.stale_after_seconds, 3600.0);
    assert_eq!(c.verify.parallelism, Some(64));
}

#[test]
fn several_hosts_share_a_server_means_same_database() {
    let e = parse_err("[source]\ndsn = \"host=a,b\"\n[target]\ndsn = \"host=c,b\"\n");
    assert_eq!(
        e,
        "cutover.toml:4:7: target.dsn: target is the same database as source (b:5432/me)"
    );
    parse_ok("[source]\ndsn = \"host=a,b\"\n[target]\ndsn = \"host=c,d\"\n");
}

#[test]
fn password_file_is_read_per_host_unless_a_password_is_given() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pgpass");
    std::fs::write(&file, "a:5432:app:u:pw-a\nb:5433:app:u:pw-b\n").unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let dsn = format!(
        "host=a,b,c port=5432,5433,5434 dbname=app user=u passfile={}",
        file.display()
    );
    let c = ConnConfig::from_dsn("x", &dsn, None, &env).unwrap();
    assert_eq!(c.password, None);
    assert_eq!(
        c.password_source,
        Some(PasswordSource::Passfile(file.clone()))
    );
    let got: Vec<_> = (0..3)
        .map(|i| c.password_for(i).map(|s| s.expose().to_owned()))
        .collect();
    assert_eq!(got, [Some("pw-a".into()), Some("pw-b".into()), None]);
    assert!(!format!("{c:?}").contains("pw-a"));
    // An explicit password applies to every host.
    let c = ConnConfig::from_dsn("x", &dsn, Some("SRC_PW"), &env).unwrap();
    assert!((0..3).all(|i| c.password_for(i).unwrap().expose() == "env-secret-123"));
    assert!(c.host_passwords.is_empty());
}

#[test]
fn freeze_app_roles_are_names_and_default_to_none() {
    assert!(parse_ok(MINIMAL).freeze.app_roles.is_empty());
    let c = parse_ok(&format!(
        "{MINIMAL}[freeze]\napp_roles = [\"app\", \"billing\"]\n"
    ));
    assert_eq!(c.freeze.app_roles, vec!["app", "billing"]);
    let e = parse_err(&format!("{MINIMAL}[freeze]\napp_roles = [\"app\", \"\"]\n"));
    assert!(
        e == "cutover.toml:7:21: freeze.app_roles[1]: must not be empty",
        "{e}"
    );
}

#[test]
fn kubernetes_changes_are_patched_unless_gitops_is_named() {
    let kube = "[kubernetes]\ndeployments = [\"app\"]\nconfig_object = \"configmap/app-db\"\nconfig_key = \"DATABASE_URL\"\n";
    let k = parse_ok(&format!("{MINIMAL}{kube}")).kubernetes.unwrap();
    assert_eq!(k.changes, crate::config::Changes::Patch);
    assert_eq!(k.gitops_wait_secs, 1_800);
    let k = parse_ok(&format!(
        "{MINIMAL}{kube}changes = \"gitops\"\ngitops_wait_secs = 600\n"
    ))
    .kubernetes
    .unwrap();
    assert_eq!(k.changes, crate::config::Changes::Gitops);
    assert_eq!(k.gitops_wait_secs, 600);
    let e = parse_err(&format!("{MINIMAL}{kube}changes = \"argo\"\n"));
    assert!(
        e.starts_with("cutover.toml:10:11: ") && e.contains("argo") && e.contains("gitops"),
        "{e}"
    );
    let e = parse_err(&format!("{MINIMAL}{kube}gitops_wait_secs = 1\n"));
    assert!(
        e.starts_with("cutover.toml:10:20: kubernetes.gitops_wait_secs: 1 is out of range"),
        "{e}"
    );
    let e = parse_err(&format!(
        "{MINIMAL}[kubernetes]\ndeployments = [\"app\"]\nchanges = \"gitops\"\n"
    ));
    assert!(
        e.starts_with("cutover.toml:8:11: kubernetes.changes: changes = \"gitops\" waits for a change to config_object"),
        "{e}"
    );
    // Patching needs no config object to be named (restarts only).
    let k = parse_ok(&format!(
        "{MINIMAL}[kubernetes]\ndeployments = [\"app\"]\nchanges = \"patch\"\n"
    ))
    .kubernetes
    .unwrap();
    assert_eq!(k.changes, crate::config::Changes::Patch);
}

const TWO_SERVERS: &str = "[source]\ndsn = \"host=a dbname=postgres user=admin\"\n\
                           [target]\ndsn = \"host=b dbname=postgres user=admin\"\n";

#[test]
fn several_databases_become_one_config_each() {
    let text = format!(
        "{TWO_SERVERS}[report]\npath = \"out/report.html\"\n\
         [freeze]\napp_roles = [\"app\"]\n\
         [kubernetes]\ndeployments = [\"app\"]\nconfig_object = \"configmap/app-db\"\n\
         config_key = \"URL\"\nswitch_to_env = \"APP_URL\"\n\
         [[databases]]\nname = \"app\"\n\
         [[databases]]\nname = \"billing\"\ntarget_dbname = \"ledger\"\n\
         app_roles = [\"billing\"]\ndeployments = [\"billing-api\"]\n\
         config_object = \"secret/billing-db\"\nconfig_key = \"URL\"\n\
         switch_to_file = \"billing.url\"\n\
         [[databases]]\nname = \"audit\"\nsource = {{ dsn = \"host=c dbname=audit user=admin\" }}\n\
         app_roles = [\"audit\"]\nconfig_object = \"configmap/audit-db\"\n"
    );
    let c = parse(&text, Path::new("conf/cutover.toml")).unwrap();
    let fleet = c.fleet();
    assert_eq!(fleet.len(), 3);
    let [app, billing, audit] = &fleet[..] else {
        unreachable!()
    };
    assert_eq!(app.database.as_deref(), Some("app"));
    assert_eq!(app.source.params.dbname, "app");
    assert_eq!(app.target.params.dbname, "app");
    assert_eq!(app.replication.publication, "cutover_pub_app");
    assert_eq!(app.replication.slot, "cutover_sub_app");
    assert_eq!(app.freeze.app_roles, ["app"]);
    assert_eq!(
        app.report.path.as_deref(),
        Some(Path::new("conf/out/report.app.html"))
    );
    // A consolidation renames: the source's name, the target's own.
    assert_eq!(billing.source.params.dbname, "billing");
    assert_eq!(billing.target.params.dbname, "ledger");
    let k = billing.kubernetes.as_ref().unwrap();
    assert_eq!(k.deployments, ["billing-api"]);
    assert_eq!(k.config_object.as_deref(), Some("secret/billing-db"));
    assert_eq!(
        k.switch_to,
        Some(ValueSource::File(PathBuf::from("conf/billing.url")))
    );
    // Its own server; the shared target server with its name.
    assert_eq!(
        audit.source.describe(),
        "admin@c:5432/audit (sslmode=prefer)"
    );
    assert_eq!(audit.target.params.dbname, "audit");
    let k = audit.kubernetes.as_ref().unwrap();
    assert_eq!(k.deployments, ["app"]);
    assert_eq!(k.config_object.as_deref(), Some("configmap/audit-db"));
    assert_eq!(k.switch_to, None);
    // Without [[databases]]: the one config, unchanged.
    let one = parse(TWO_SERVERS, Path::new("cutover.toml")).unwrap();
    assert_eq!(one.fleet().len(), 1);
    assert_eq!(one.fleet()[0].database, None);
}

#[test]
fn a_bad_databases_entry_is_named_with_its_field() {
    let cases: &[(&str, &str)] = &[
        (
            "[[databases]]\nname = \"Billing\"\n",
            "cutover.toml:8:8: databases[0].name: \"Billing\" is not a database's name here: a lower-case letter, then lower-case letters, digits and _, at most 20",
        ),
        (
            "[[databases]]\nname = \"a\"\n[[databases]]\nname = \"a\"\n",
            "cutover.toml:10:8: databases[1].name: another entry is already named \"a\"",
        ),
        (
            "[[databases]]\nname = \"a\"\n[[databases]]\nname = \"b\"\ntarget_dbname = \"a\"\napp_roles = [\"b\"]\n",
            "cutover.toml:10:8: databases[1].name: its target is also \"a\"'s (b:5432/a): one migration per database",
        ),
        (
            "[[databases]]\nname = \"a\"\n[[databases]]\nname = \"b\"\n",
            "cutover.toml:10:8: databases[1].app_roles: role app is also \"a\"'s on the same server: the freeze makes a role read-only on the whole server, so give each database its own application roles",
        ),
        (
            "[[databases]]\nname = \"a\"\nsource_dbname = \"x\"\nsource = { dsn = \"host=c\" }\n",
            "cutover.toml:9:17: databases[0].source_dbname: set databases[0].source (its own server) or databases[0].source_dbname, not both",
        ),
        (
            "[[databases]]\nname = \"a\"\nconfig_object = \"configmap/a-db\"\n",
            "cutover.toml:9:17: databases[0].config_object: names the application's side, but there is no [kubernetes] section",
        ),
        (
            "[[databases]]\nname = \"a\"\nsubscription = \"Sub-A\"\n",
            "cutover.toml:9:16: databases[0].subscription: \"Sub-A\" is not a valid replication slot name: unexpected \"S\" (lowercase letters, digits and _ only)",
        ),
        (
            "[[databases]]\nname = \"a\"\nbogus = 1\n",
            "cutover.toml:9:1: unknown field \"bogus\" in [databases] (expected one of name, source_dbname, target_dbname, source, target, app_roles, publication, subscription, slot, deployments, config_object, config_key, switch_to_env, switch_to_file, read_only_role, read_only_to_env, read_only_to_file)",
        ),
    ];
    for (entries, want) in cases {
        let text = format!("{TWO_SERVERS}[freeze]\napp_roles = [\"app\"]\n{entries}");
        let got = parse(&text, Path::new("cutover.toml"))
            .unwrap_err()
            .to_string();
        assert_eq!(&got, want, "\n{text}");
    }
}

const READ_ONLY_KUBE: &str = "[kubernetes]\ndeployments = [\"app\"]\n\
                              config_object = \"secret/app-db\"\nconfig_key = \"URL\"\n\
                              switch_to_env = \"NEW_URL\"\n";

#[test]
fn a_freeze_by_read_only_role_names_its_role_and_value() {
    let text = format!(
        "{TWO_SERVERS}[freeze]\napp_roles = [\"app\"]\nmethod = \"read-only-role\"\n\
         read_only_role = \"app_ro\"\n{READ_ONLY_KUBE}read_only_to_file = \"ro.url\"\n"
    );
    let c = parse(&text, Path::new("conf/cutover.toml")).unwrap();
    assert_eq!(c.freeze.method, FreezeMethod::ReadOnlyRole);
    assert_eq!(c.freeze.read_only_role.as_deref(), Some("app_ro"));
    assert_eq!(
        c.kubernetes.unwrap().read_only_to,
        Some(ValueSource::File(PathBuf::from("conf/ro.url")))
    );
    // The default: by privileges, nothing read-only.
    let c = parse(TWO_SERVERS, Path::new("cutover.toml")).unwrap();
    assert_eq!(c.freeze.method, FreezeMethod::Privileges);
    assert_eq!(c.freeze.read_only_role, None);
}

#[test]
fn a_freeze_by_read_only_role_without_what_it_needs_is_refused() {
    let method = "method = \"read-only-role\"";
    let cases: Vec<(String, &str)> = vec![
        (
            format!("[freeze]\napp_roles = [\"app\"]\n{method}\n{READ_ONLY_KUBE}read_only_to_env = \"RO\"\n"),
            "cutover.toml:7:10: freeze.method: set [freeze] read_only_role: the role the clients connect as while frozen",
        ),
        (
            format!("[freeze]\napp_roles = [\"app\"]\n{method}\nread_only_role = \"ro\"\n"),
            "cutover.toml:7:10: freeze.method: a freeze by read-only role switches the clients' config: it needs [kubernetes] with config_object and config_key",
        ),
        (
            format!("[freeze]\napp_roles = [\"app\"]\n{method}\nread_only_role = \"ro\"\n{READ_ONLY_KUBE}"),
            "cutover.toml:7:10: freeze.method: set [kubernetes] read_only_to_env or read_only_to_file: the value the config key holds while frozen (the source, as the read-only role)",
        ),
        (
            format!("[freeze]\napp_roles = [\"app\"]\nread_only_role = \"ro\"\n{READ_ONLY_KUBE}read_only_to_env = \"RO\"\nread_only_to_file = \"ro.url\"\n"),
            "cutover.toml:14:21: kubernetes.read_only_to_file: set kubernetes.read_only_to_env or kubernetes.read_only_to_file, not both",
        ),
        (
            format!("[freeze]\napp_roles = [\"app\"]\n{method}\nread_only_role = \"ro\"\n{READ_ONLY_KUBE}read_only_to_env = \"RO\"\n[[databases]]\nname = \"a\"\n[[databases]]\nname = \"b\"\napp_roles = [\"b\"]\nconfig_object = \"secret/b-db\"\nconfig_key = \"URL\"\n"),
            "cutover.toml:7:10: freeze.method: database b: set [kubernetes] read_only_to_env or read_only_to_file: the value the config key holds while frozen (the source, as the read-only role) (or in its [[databases]] entry)",
        ),
    ];
    for (rest, want) in &cases {
        let text = format!("{TWO_SERVERS}{rest}");
        let got = parse(&text, Path::new("cutover.toml"))
            .unwrap_err()
            .to_string();
        assert_eq!(&got, want, "\n{text}");
    }
}

#[test]
fn the_pooler_is_listed_or_found_behind_a_service_and_refusals_name_the_field() {
    let listed = parse_ok(&format!(
        "{MINIMAL}[pooler]\ninstances = [\"10.0.0.5:6432\", \"10.0.0.6:6432\"]\n\
         database = \"app\"\ndatabases_file = \"pgbouncer/databases.ini\"\n"
    ))
    .pooler
    .unwrap();
    match &listed.instances {
        crate::config::PoolerInstances::Listed(l) => {
            assert_eq!(l.iter().map(|i| i.port).collect::<Vec<_>>(), [6432, 6432])
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(listed.admin_user, "pgbouncer");
    assert_eq!(listed.pause_timeout_secs, 10);
    assert_eq!(
        listed.databases_file,
        Path::new("conf/pgbouncer/databases.ini")
    );
    let kube = "[kubernetes]\ndeployments = [\"app\"]\n";
    let behind = parse_ok(&format!(
        "{MINIMAL}{kube}[pooler]\nservice = \"pgbouncer\"\nport = 6432\n\
         database = \"app\"\ndatabases_file = \"d.ini\"\npause_timeout_secs = 5\n"
    ))
    .pooler
    .unwrap();
    assert_eq!(
        behind.instances,
        crate::config::PoolerInstances::Service {
            name: "pgbouncer".into(),
            port: Some("6432".into())
        }
    );
    assert_eq!(behind.pause_timeout_secs, 5);

    let e = parse_err(&format!(
        "{MINIMAL}[pooler]\nservice = \"pgbouncer\"\ndatabase = \"app\"\ndatabases_file = \"d.ini\"\n"
    ));
    assert!(
        e.starts_with(
            "cutover.toml:7:11: pooler.service: the Service is looked up through [kubernetes]"
        ),
        "{e}"
    );
    let e = parse_err(&format!(
        "{MINIMAL}[pooler]\ninstances = [\"pgbouncer\"]\ndatabase = \"app\"\ndatabases_file = \"d.ini\"\n"
    ));
    assert!(
        e.starts_with("cutover.toml:7:14: pooler.instances[0]: \"pgbouncer\": expected host:port"),
        "{e}"
    );
    let e = parse_err(&format!(
        "{MINIMAL}[pooler]\ndatabase = \"app\"\ndatabases_file = \"d.ini\"\n"
    ));
    assert!(e.contains("pooler: name the instances"), "{e}");
    let e = parse_err(&format!(
        "{MINIMAL}[pooler]\ninstances = [\"h:1\"]\ndatabase = \"app\"\ndatabases_file = \"d.ini\"\npause_timeout_secs = 0\n"
    ));
    assert!(
        e.contains("pooler.pause_timeout_secs: 0 is out of range (expected 1..=300)"),
        "{e}"
    );
    let e = parse_err(&format!(
        "{MINIMAL}[pooler]\ninstances = [\"h:1\"]\ndatabase = \"app\"\n"
    ));
    assert!(e.contains("databases_file"), "{e}");
}
