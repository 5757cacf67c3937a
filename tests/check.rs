//! `cutover check`: the preflight without the UI, through the real binary,
//! on real clusters (source 15 → target 18 where the lab has both).
//! Exit 0 when every check passes, 1 when one fails (the line names the
//! defect and its fix), 2 when it could not run.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::tmux::BIN;

fn check(config: &Path, json: bool) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.args(["check", "-c"]).arg(config);
    if json {
        cmd.arg("--json");
    }
    cmd.stdin(Stdio::null())
        .output()
        .expect("running cutover check")
}

fn code(out: &Output) -> i32 {
    out.status.code().expect("exited")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The check's line for `name`.
fn line<'a>(out: &'a str, name: &str) -> &'a str {
    out.lines()
        .find(|l| l.contains(name))
        .unwrap_or_else(|| panic!("no line for {name}:\n{out}"))
}

/// The test pair's config without its Kubernetes side (no simulator runs
/// for it), with `edit` applied, written beside it.
fn config(name: &str, edit: impl Fn(String) -> String) -> PathBuf {
    let pair = common::pair();
    let text = std::fs::read_to_string(&pair.config_path).unwrap();
    let start = text.find("[kubernetes]").unwrap();
    let end = text.find("[lab]").unwrap();
    let text = format!("{}{}", &text[..start], &text[end..]);
    let path = pair.config_path.with_file_name(format!("{name}.toml"));
    std::fs::write(&path, edit(text)).unwrap();
    path
}

/// One test, in order: the defects a fresh lab has, then each fixed, then
/// others added one at a time (the clusters are this binary's own).
#[test]
fn check_finds_each_defect_with_its_fix_and_passes_when_none_is_left() {
    let pair = common::pair();
    let cfg = config("check", |t| t);

    // A fresh lab: no schema on the target, a table without a key.
    let out = check(&cfg, false);
    let said = text(&out);
    assert_eq!(code(&out), 1, "{said}");
    assert!(
        line(&said, "primary key or a replica identity").starts_with('✖'),
        "{said}"
    );
    assert!(
        said.contains("fix: add a primary key, or leave the table out of [tables], or ALTER TABLE public.events REPLICA IDENTITY FULL;"),
        "{said}"
    );
    assert!(
        line(&said, "Target schema matches").contains("tables missing on the target"),
        "{said}"
    );
    let version = line(&said, "Target major version not older");
    assert!(version.starts_with('✔'), "{said}");

    // Fixed: every check passes, exit 0.
    pair.info.copy_schema().expect("schema copy");
    common::on_source("ALTER TABLE public.events REPLICA IDENTITY FULL");
    let out = check(&cfg, true);
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(code(&out), 0, "{doc:#}");
    assert_eq!(doc["ok"], true);
    assert!(doc["checks"].as_array().unwrap().len() >= 10);
    // The lab's app role exists on both sides, so its GRANTs can be copied.
    let roles = doc["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == cutover::runbook::preflight::ROLES_CHECK)
        .expect("the roles check");
    assert_eq!(roles["ok"], true, "{roles}");
    assert_eq!(roles["observed"], "all on the target: app");
    eprintln!(
        "preflight database time: source {:.1} ms, target {:.1} ms",
        doc["source_db_ms"].as_f64().unwrap(),
        doc["target_db_ms"].as_f64().unwrap()
    );

    // A column the target lacks.
    common::on_source("ALTER TABLE public.users ADD COLUMN nickname text");
    let out = check(&cfg, false);
    let said = text(&out);
    assert_eq!(code(&out), 1, "{said}");
    assert!(
        line(&said, "Target schema matches")
            .contains("public.users.nickname missing on the target"),
        "{said}"
    );
    common::on_source("ALTER TABLE public.users DROP COLUMN nickname");

    // A subscription under the runbook's name that has no slot: a stray.
    common::on_target(&format!(
        "CREATE SUBSCRIPTION cutover_sub CONNECTION '{}' PUBLICATION cutover_pub \
         WITH (connect = false)",
        pair.source_conninfo
    ));
    let out = check(&cfg, false);
    let said = text(&out);
    common::on_target(
        "ALTER SUBSCRIPTION cutover_sub SET (slot_name = NONE); DROP SUBSCRIPTION cutover_sub",
    );
    assert_eq!(code(&out), 1, "{said}");
    assert!(
        line(&said, "No stray slot or subscription")
            .contains("subscription cutover_sub exists on the target with no slot on the source"),
        "{said}"
    );
    assert_eq!(code(&check(&cfg, false)), 0, "clean again");
}

#[test]
fn an_unreachable_target_could_not_run_and_says_which_side() {
    let pair = common::pair();
    let closed = cutover::lab::cluster::pick_port().unwrap();
    let port = pair.target_port;
    let cfg = config("check-dead", |t| {
        t.replace(&format!("port={port} "), &format!("port={closed} "))
    });
    let out = check(&cfg, true);
    assert_eq!(code(&out), 2, "{}", text(&out));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON on error");
    let error = doc["error"].as_str().unwrap();
    assert!(
        error.starts_with("target:") && error.contains(&format!("127.0.0.1:{closed}")),
        "{error}"
    );
}

/// A source started with wal_level = replica cannot publish: flagged, with
/// the statement that fixes it.
#[test]
fn a_source_without_logical_wal_is_flagged() {
    let pair = common::pair();
    let dir = pair.dir.join(format!("replica-wal-{}", std::process::id()));
    let mut c =
        cutover::lab::cluster::Cluster::init(&pair.bin, &dir, "replica-wal", "wal_level = replica")
            .expect("initdb");
    c.start().expect("start");
    common::psql(&pair.bin, &c.conninfo("postgres"), "CREATE DATABASE app");
    let src = pair.source_conninfo.clone();
    let dsn = c.conninfo("app");
    let cfg = config("check-replica-wal", |t| t.replacen(&src, &dsn, 1));
    let out = check(&cfg, false);
    let _ = c.stop();
    let said = text(&out);
    assert_eq!(code(&out), 1, "{said}");
    let wal = line(&said, "wal_level = logical on the source");
    assert!(
        wal.starts_with('✖') && wal.contains("wal_level = replica"),
        "{said}"
    );
    assert!(
        said.contains("fix: ALTER SYSTEM SET wal_level = logical; then restart the source"),
        "{said}"
    );
}
