//! Fixture-driven tests for cutover.toml loading.
//!
//! `tests/fixtures/config/valid/*.toml` must load; each file in `invalid/`
//! starts with `# expect: <text>` and must fail with an error containing it.

use std::path::{Path, PathBuf};

use cutover::config::{self, Config, Host, PasswordSource, SslMode};

fn fixtures(kind: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/config")
        .join(kind);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    files
}

/// A fixed environment so results do not depend on the machine or on the
/// developer's PG* variables, ~/.pgpass or ~/.postgresql.
fn env(name: &str) -> Option<String> {
    match name {
        "USER" => Some("tester".into()),
        "HOME" => Some("/nonexistent-cutover-home".into()),
        "CUTOVER_TEST_SRC_PASSWORD" => Some("fixture-secret-1".into()),
        _ => None,
    }
}

fn load(path: &Path) -> Result<Config, config::ConfigError> {
    config::load_with_env(path, &env)
}

#[test]
fn valid_fixtures_load() {
    let files = fixtures("valid");
    assert!(files.len() >= 3, "expected at least 3 valid fixtures");
    for f in files {
        let c = load(&f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        assert_eq!(c.path, f);
        let dbg = format!("{c:?}");
        assert!(
            !dbg.contains("fixture-secret-1"),
            "{}: password in Debug",
            f.display()
        );
        assert!(!dbg.contains("p:ss"), "{}: password in Debug", f.display());
    }
}

fn fixture(kind: &str, name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/config")
        .join(kind)
        .join(name)
}

#[test]
fn minimal_fixture_has_defaults() {
    let c = load(&fixture("valid", "minimal.toml")).unwrap();
    assert_eq!(
        c.source.describe(),
        "postgres@127.0.0.1:54321/app (sslmode=prefer)"
    );
    assert_eq!(
        c.target.describe(),
        "postgres@127.0.0.1:54322/app (sslmode=disable)"
    );
    assert_eq!(c.source.label, "source");
    assert_eq!(c.replication.publication, "cutover_pub");
    assert_eq!(c.replication.slot, "cutover_sub");
    assert_eq!(c.monitor.refresh_ms, 1000);
    assert!(c.tables.matches("anything", "at_all"));
    assert_eq!(
        c.session.dir,
        fixture("valid", "minimal.toml")
            .parent()
            .unwrap()
            .join("sessions")
    );
    assert!(c.lab.is_none());
}

#[test]
fn full_fixture() {
    let f = fixture("valid", "full.toml");
    let c = load(&f).unwrap();
    let dir = f.parent().unwrap();
    assert_eq!(c.source.label, "old (PG 12)");
    assert_eq!(c.source.params.sslmode, SslMode::Require);
    assert_eq!(
        c.source.params.application_name.as_deref(),
        Some("cutover source")
    );
    assert_eq!(
        c.source.password.as_ref().unwrap().expose(),
        "fixture-secret-1"
    );
    assert_eq!(
        c.source.password_source,
        Some(PasswordSource::ConfigEnv(
            "CUTOVER_TEST_SRC_PASSWORD".into()
        ))
    );
    assert_eq!(
        c.target.params.hosts[0].host,
        Host::Unix("/var/run/postgresql".into())
    );
    assert_eq!(
        c.target.describe(),
        "migrator@/var/run/postgresql:5433/shop (unix socket)"
    );
    assert_eq!(c.replication.slot, "shop_slot");
    assert!(c.tables.matches("billing", "invoice_2024"));
    assert!(c.tables.matches("public", "audit_log"));
    assert!(!c.tables.matches("public", "schema_migrations"));
    assert!(!c.tables.matches("billing", "payments"));
    assert_eq!(c.thresholds.max_lag_bytes, 8_388_608);
    assert_eq!(c.thresholds.max_lag_seconds, 5.0);
    assert_eq!(c.monitor.statement_timeout_ms, 1500);
    assert_eq!(c.session.dir, dir.join("../sessions"));
    assert_eq!(c.ui.theme, dir.join("themes/dark.toml").to_string_lossy());
    assert_eq!(
        c.lab.as_ref().unwrap().dir,
        PathBuf::from("/tmp/cutover-lab")
    );
    assert_eq!(c.verify.parallelism, Some(3));
    assert_eq!(
        c.verify.updated_at[&cutover::session::TableRef::new("billing", "invoice_2024")],
        "modified"
    );
    assert_eq!(
        c.verify.keys[&cutover::session::TableRef::new("public", "audit_log")],
        ["actor", "at"]
    );
    let k = c.kubernetes.clone().unwrap();
    assert_eq!(k.kubeconfig, Some(dir.join("kube/config")));
    assert_eq!(k.deployments, ["shop-api", "shop-worker"]);
    assert_eq!(k.namespaces, ["shop-batch", "reports"]);
    assert_eq!(k.config_object.as_deref(), Some("secret/shop-db"));
    assert_eq!(
        k.switch_to,
        Some(cutover::config::ValueSource::File(
            dir.join("secrets/new-database-url")
        ))
    );
    let job = c.runbook.copy_job.as_ref().expect("copy = job");
    assert_eq!(job.namespace.as_deref(), Some("shop-jobs"));
    assert_eq!(job.secret, "shop-copy-pgpass");
    assert_eq!(job.secret_key, "pgpass");
    assert_eq!(job.deadline_secs, 7200);
    // What the Job connects with: the cluster's hosts, the Job's role, and
    // never the password the console has.
    let plan = cutover::runbook::copy_job::CopyJob::from_config(&c).unwrap();
    assert_eq!(
        plan.source,
        "host='pg-old.shop.svc' port='5432' dbname='shop' user='migrator' sslmode=require \
         application_name=cutover-copy"
    );
    assert!(plan
        .target
        .starts_with("host='pg-new.shop.svc' port='5432' dbname='shop'"));
    assert!(!format!("{plan:?}").contains("fixture-secret-1"));
}

#[test]
fn switch_value_is_read_without_its_newline_and_errors_name_the_source() {
    let dir = std::env::temp_dir().join(format!("cutover-switch-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("url");
    std::fs::write(&f, "postgres://app@new/app\n").unwrap();
    let src = cutover::config::ValueSource::File(f.clone());
    assert_eq!(src.read().unwrap(), "postgres://app@new/app");
    std::fs::write(&f, "\n").unwrap();
    assert_eq!(src.read().unwrap_err(), format!("{} is empty", f.display()));
    let missing = cutover::config::ValueSource::File(dir.join("nope"));
    assert!(missing.read().unwrap_err().contains("nope"));
    let env = cutover::config::ValueSource::Env("CUTOVER_TEST_SWITCH_UNSET".into());
    assert_eq!(
        env.read().unwrap_err(),
        "environment variable CUTOVER_TEST_SWITCH_UNSET is not set or not UTF-8"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn uri_fixture() {
    let c = load(&fixture("valid", "uri_verify_full.toml")).unwrap();
    let s = &c.source.params;
    assert_eq!(s.user, "repl@corp");
    assert_eq!(c.source.password.as_ref().unwrap().expose(), "p:ss");
    assert_eq!(s.hosts[0].host, Host::Tcp("db-old.example.com".into()));
    assert_eq!(s.hosts[0].port, 6432);
    assert_eq!(s.sslmode, SslMode::VerifyFull);
    assert_eq!(s.sslrootcert.as_deref(), Some("/etc/ssl/corp-ca.pem"));
    assert_eq!(
        c.source.describe(),
        "repl@corp@db-old.example.com:6432/orders (sslmode=verify-full)"
    );
    let t = &c.target.params;
    assert_eq!(t.hosts[0].host, Host::Tcp("2001:db8::10".into()));
    assert_eq!(t.connect_timeout, Some(std::time::Duration::from_secs(5)));
    assert_eq!(
        c.target.describe(),
        "repl@[2001:db8::10]:5432/orders (sslmode=verify-full)"
    );
    assert_eq!(c.replication.slot, "orders_sub");
}

#[test]
fn invalid_fixtures_fail_with_the_expected_message() {
    let files = fixtures("invalid");
    assert!(files.len() >= 8, "expected at least 8 invalid fixtures");
    let mut failures = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        let first = text.lines().next().unwrap_or_default();
        let expect = first
            .strip_prefix("# expect: ")
            .unwrap_or_else(|| panic!("{}: first line must be `# expect: ...`", f.display()));
        match load(f) {
            Ok(_) => failures.push(format!(
                "{}: loaded, expected error containing {expect:?}",
                f.display()
            )),
            Err(e) => {
                let msg = e.to_string();
                if !msg.contains(expect) {
                    failures.push(format!(
                        "{}:\n   got: {msg}\n  want: …{expect}…",
                        f.display()
                    ));
                }
                if msg.contains('\n') {
                    failures.push(format!("{}: multi-line error: {msg:?}", f.display()));
                }
            }
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn only_small_regular_files_are_read() {
    // /dev/zero never ends: it must be refused before any read, at once.
    let e = load(Path::new("/dev/zero")).unwrap_err();
    assert_eq!(
        e.to_string(),
        "/dev/zero: is a character device, not a regular file; is this the right file?"
    );
    let dir = tempfile::tempdir().unwrap();
    let e = load(dir.path()).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "{}: is a directory, not a regular file; is this the right file?",
            dir.path().display()
        )
    );
    // A FIFO nobody writes to: opening it for reading would block forever.
    let fifo = dir.path().join("cutover.toml");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    let e = load(&fifo).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "{}: is a FIFO, not a regular file; is this the right file?",
            fifo.display()
        )
    );
    // Just over 1 MiB of otherwise valid TOML (a comment) is refused unparsed.
    let big = dir.path().join("big.toml");
    let mut text = std::fs::read_to_string(fixture("valid", "minimal.toml")).unwrap();
    text.push('#');
    text.push_str(&"x".repeat(1024 * 1024));
    std::fs::write(&big, text).unwrap();
    let e = load(&big).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "{}: larger than 1 MiB; is this the right file?",
            big.display()
        )
    );
}

#[test]
fn ha_fixture_lists_every_host() {
    let c = load(&fixture("valid", "multi_host.toml")).unwrap();
    assert_eq!(
        c.source.describe(),
        "app@db1.example:5432,db2.example:5433/shop (sslmode=require, target_session_attrs=read-write)"
    );
    assert_eq!(
        c.source.params.endpoint(),
        "db1.example:5432,db2.example:5433"
    );
    assert_eq!(
        c.target.describe(),
        "app@new1.example:6432,new2.example:6432/shop (sslmode=verify-full, target_session_attrs=primary)"
    );
    assert_eq!(
        c.target.params.keepalives,
        cutover::config::Keepalives {
            enabled: true,
            idle: std::time::Duration::from_secs(20),
            interval: std::time::Duration::from_secs(5),
            count: 3,
        }
    );
}

/// `[ui] theme` says whether the operator named the theme (a failure to
/// load it then stops the console) and `[ui] themes_dir` where `<name>.toml`
/// themes are looked up, beside the config file.
#[test]
fn ui_theme_named_and_themes_dir() {
    let minimal = std::fs::read_to_string(fixture("valid", "minimal.toml")).unwrap();
    let c = load(&fixture("valid", "minimal.toml")).unwrap();
    assert_eq!(
        (c.ui.theme.as_str(), c.ui.theme_named, c.ui.themes_dir),
        ("default", false, None)
    );
    let c = load(&fixture("valid", "full.toml")).unwrap();
    assert!(c.ui.theme_named);

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cutover.toml");
    let with_ui = |ui: &str| {
        std::fs::write(&path, format!("{minimal}\n[ui]\n{ui}")).unwrap();
        load(&path)
    };
    let c = with_ui("themes_dir = \"themes\"\n").unwrap();
    assert_eq!(c.ui.themes_dir, Some(dir.path().join("themes")));
    assert_eq!((c.ui.theme.as_str(), c.ui.theme_named), ("default", false));
    // Naming the default is naming it: a broken themes/default.toml is then an error.
    let c = with_ui("theme = \"default\"\nthemes_dir = \"/etc/cutover/themes\"\n").unwrap();
    assert_eq!((c.ui.theme.as_str(), c.ui.theme_named), ("default", true));
    assert_eq!(c.ui.themes_dir, Some(PathBuf::from("/etc/cutover/themes")));
    let e = with_ui("themes_dir = \" \"\n").unwrap_err().to_string();
    assert!(
        e.ends_with(":8:14: ui.themes_dir: must not be empty"),
        "{e}"
    );
    let e = with_ui("theme_dir = \"x\"\n").unwrap_err().to_string();
    assert!(
        e.ends_with(
            ":8:1: unknown field \"theme_dir\" in [ui] (expected one of theme, ascii, themes_dir)"
        ),
        "{e}"
    );
}
