//! Faults and bad input through the real binary: every subcommand's exit
//! codes, a closed stdout, a frozen Kubernetes API server under the console,
//! and a session directory on a disk that fills up.
//!
//! Exit codes (README, `cutover --help`): 0 success, 1 the check found a
//! problem, 2 could not run, 130 interrupted.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::faults::{self, Frozen, SmallDisk};
use common::tmux::{LabRun, Tmux, BIN};

fn cutover(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("running cutover")
}

fn code(out: &Output) -> i32 {
    out.status.code().expect("exited, not killed by a signal")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The lab's config with `edit` applied, written beside it (its relative
/// paths keep working).
fn config_variant(name: &str, edit: impl Fn(String) -> String) -> PathBuf {
    let pair = common::pair();
    let text = std::fs::read_to_string(&pair.config_path).unwrap();
    let path = pair.config_path.with_file_name(format!("{name}.toml"));
    std::fs::write(&path, edit(text)).unwrap();
    path
}

/// The child's output once it exits; killed and failed past `limit`, so a
/// regression into a hang fails the test instead of hanging the suite.
fn output_within(mut child: std::process::Child, limit: Duration) -> Output {
    let start = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "still running after {limit:?} (hang): {}{}",
                text(&out.stdout),
                text(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn path_str(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Two tables on both sides: one identical, one with a row the target lacks.
fn verify_tables() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        common::both(
            "CREATE TABLE IF NOT EXISTS ft_same (id int PRIMARY KEY, v text);
             TRUNCATE ft_same; INSERT INTO ft_same SELECT g, 'v' || g FROM generate_series(1, 500) g;
             CREATE TABLE IF NOT EXISTS ft_diff (id int PRIMARY KEY, v text);
             TRUNCATE ft_diff; INSERT INTO ft_diff SELECT g, 'v' || g FROM generate_series(1, 500) g;",
        );
        common::on_target("DELETE FROM ft_diff WHERE id = 250");
    });
}

#[test]
fn verify_exit_codes_mean_one_thing_each() {
    let _x = faults::shared();
    verify_tables();
    let config = common::pair().config_path.clone();
    let c = path_str(&config);

    let clean = cutover(&["verify", "-c", c, "--table", "ft_same"]);
    assert_eq!(code(&clean), 0, "{}", text(&clean.stderr));

    let differs = cutover(&["verify", "-c", c, "--table", "ft_diff"]);
    assert_eq!(code(&differs), 1, "{}", text(&differs.stderr));
    assert!(
        text(&differs.stdout).contains("id=250"),
        "{}",
        text(&differs.stdout)
    );

    let json = cutover(&["verify", "-c", c, "--table", "ft_diff", "--json"]);
    assert_eq!(code(&json), 1);
    let doc: serde_json::Value = serde_json::from_slice(&json.stdout).expect("a JSON document");
    assert_eq!(doc["ok"], false);
    assert_eq!(doc["exit_code"], 1);

    // Could not run: the target's port has nobody listening.
    let closed = cutover::lab::cluster::pick_port().unwrap();
    let port = common::pair().target_port;
    let dead = config_variant("faults-dead-target", |t| {
        t.replace(&format!("port={port} "), &format!("port={closed} "))
    });
    let unreachable = cutover(&["verify", "-c", path_str(&dead), "--table", "ft_same"]);
    assert_eq!(code(&unreachable), 2, "{}", text(&unreachable.stderr));
    let said = format!("{}{}", text(&unreachable.stdout), text(&unreachable.stderr));
    assert!(
        said.contains(&format!("127.0.0.1:{closed}")),
        "the unreachable host is named: {said}"
    );
    let unreachable = cutover(&[
        "verify",
        "-c",
        path_str(&dead),
        "--table",
        "ft_same",
        "--json",
    ]);
    assert_eq!(code(&unreachable), 2);
    let doc: serde_json::Value =
        serde_json::from_slice(&unreachable.stdout).expect("a JSON document even on error");
    assert_eq!(doc["exit_code"], 2);
    assert_eq!(doc["ok"], false);
}

#[test]
fn bad_config_is_exit_2_with_the_file_named_for_every_subcommand() {
    let _x = faults::shared();
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[source]\ndsn = 5\n").unwrap();
    let b = path_str(&bad);
    for args in [
        vec!["verify", "-c", b],
        vec!["console", "-c", b],
        vec!["-c", b],
    ] {
        let out = cutover(&args);
        assert_eq!(code(&out), 2, "{args:?}: {}", text(&out.stderr));
        let err = text(&out.stderr);
        assert!(
            err.contains("bad.toml:2:"),
            "{args:?} names file and line: {err}"
        );
    }
    // With --json the error is a JSON document on stdout.
    let out = cutover(&["verify", "-c", b, "--json"]);
    assert_eq!(code(&out), 2);
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert!(
        doc["error"].as_str().unwrap().contains("bad.toml:2:"),
        "{doc}"
    );

    // A missing file, and a file that never ends.
    let out = cutover(&["verify", "-c", path_str(&dir.path().join("nope.toml"))]);
    assert_eq!(code(&out), 2, "{}", text(&out.stderr));
    let start = Instant::now();
    let out = cutover(&["-c", "/dev/zero"]);
    assert_eq!(code(&out), 2, "{}", text(&out.stderr));
    assert!(
        start.elapsed() < Duration::from_secs(30),
        "/dev/zero is refused, not read without end"
    );
    assert!(
        text(&out.stderr).contains("/dev/zero"),
        "{}",
        text(&out.stderr)
    );

    // A session directory that cannot be created names the config's field.
    let blocker = dir.path().join("file-not-dir");
    std::fs::write(&blocker, "").unwrap();
    let pair = common::pair();
    let cfg = config_variant("faults-bad-session-dir", |t| {
        // The [session] dir line (the lab's sessions folder, beside it).
        t.lines()
            .map(|l| {
                if l.starts_with("dir = ") && l.ends_with("-sessions\"") {
                    format!("dir = \"{}/sub\"\n", blocker.display())
                } else {
                    format!("{l}\n")
                }
            })
            .collect::<String>()
    });
    assert!(
        std::fs::read_to_string(&cfg)
            .unwrap()
            .contains("file-not-dir/sub"),
        "the variant names the blocked session dir"
    );
    let out = cutover(&["-c", path_str(&cfg)]);
    assert_eq!(code(&out), 2, "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains(&format!(
            "{}: session.dir: cannot create the session directory",
            cfg.display()
        )),
        "{}",
        text(&out.stderr)
    );
    let _ = pair;
}

#[test]
fn lab_status_is_a_check() {
    let _x = faults::shared();
    let dir = tempfile::tempdir().unwrap();
    let out = cutover(&["lab", "status", "--dir", path_str(&dir.path().join("none"))]);
    assert_eq!(code(&out), 1, "no lab there is a finding");
    assert!(
        text(&out.stdout).contains("no lab in"),
        "{}",
        text(&out.stdout)
    );
    let pair = common::pair();
    let out = cutover(&["lab", "status", "--dir", path_str(&pair.dir)]);
    assert_eq!(code(&out), 0, "{}", text(&out.stdout));
}

#[test]
fn a_closed_stdout_ends_quietly() {
    let _x = faults::shared();
    verify_tables();
    let config = common::pair().config_path.clone();
    for _ in 0..3 {
        // The reader is gone before cutover writes its first byte.
        let mut child = Command::new(BIN)
            .args(["verify", "-c", path_str(&config), "--table", "ft_diff"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        let out = output_within(child, Duration::from_secs(60));
        let err = text(&out.stderr);
        assert_eq!(code(&out), 0, "quiet exit on a closed pipe: {err}");
        assert!(!err.contains("panicked"), "{err}");
        assert!(err.trim().is_empty(), "nothing to say about it: {err}");
    }
}

/// The hang a user saw: `cutover verify` against a target that stops
/// answering. Frozen before verify starts, the target accepts the TCP
/// connection (the kernel does) and never answers: the connect deadline
/// ends it. (A freeze in the middle of a checksum is `tests/faults_pg.rs`,
/// on the library, where the moment can be chosen exactly.)
#[test]
fn verify_against_a_frozen_target_ends_within_its_deadline() {
    verify_tables();
    let _x = faults::exclusive();
    let pair = common::pair();
    let cfg = config_variant("faults-frozen", |t| {
        t.replace("[verify]\n", "[verify]\nstatement_timeout_ms = 3000\n")
    });
    let frozen = Frozen::cluster(&pair.dir.join("target"));
    let start = Instant::now();
    let child = Command::new(BIN)
        .args(["verify", "-c", path_str(&cfg), "--table", "ft_same"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = output_within(child, Duration::from_secs(120));
    let took = start.elapsed();
    frozen.thaw();
    let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert_eq!(code(&out), 2, "a timeout could not run the check: {all}");
    assert!(
        all.contains(&format!("127.0.0.1:{}", pair.target_port)),
        "names the host: {all}"
    );
    // A hang detector, not a performance target.
    assert!(took < Duration::from_secs(90), "took {took:?}: {all}");
    eprintln!("verify against a frozen target ended after {took:.1?}: {all}");
}

#[test]
fn sigint_interrupts_verify_with_130() {
    verify_tables();
    let _x = faults::exclusive();
    let pair = common::pair();
    // Frozen, the target holds verification still until the interrupt.
    let frozen = Frozen::cluster(&pair.dir.join("target"));
    let child = Command::new(BIN)
        .args([
            "verify",
            "-c",
            path_str(&pair.config_path),
            "--table",
            "ft_same",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Only once cutover handles SIGINT (a loaded machine may take a while
    // to get there): before that the signal's default action would kill it.
    wait_catching_sigint(child.id());
    let start = Instant::now();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let out = output_within(child, Duration::from_secs(60));
    let took = start.elapsed();
    frozen.thaw();
    assert_eq!(code(&out), 130, "{}", text(&out.stderr));
    assert!(took < Duration::from_secs(30), "interrupt took {took:?}");
    eprintln!("SIGINT ended verify after {took:.1?}");
}

/// Waits until `pid` catches SIGINT (its SigCgt mask in /proc has bit 1).
fn wait_catching_sigint(pid: u32) {
    let start = Instant::now();
    loop {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let caught = status
            .lines()
            .find_map(|l| l.strip_prefix("SigCgt:"))
            .and_then(|m| u64::from_str_radix(m.trim(), 16).ok())
            .is_some_and(|m| m & 0b10 != 0);
        if caught {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "cutover never installed its SIGINT handler"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The lab's `lab serve` process: the Kubernetes API simulator and app pods.
fn api_server_pid(lab: &LabRun) -> u32 {
    cutover::lab::status(&lab.dir())
        .unwrap()
        .app_pid
        .expect("lab up starts the simulator")
}

#[test]
fn a_frozen_kubernetes_api_turns_stale_and_a_confirmed_action_fails_within_its_deadline() {
    let lab = LabRun::up("cutover-faults-kube", "2000");
    let t = lab.console("faults-kube", 160, 45);
    t.wait_for("the rollout pane watching", Duration::from_secs(60), |s| {
        s.contains("● watching") && s.contains("rollout complete")
    });
    let pid = api_server_pid(&lab);

    // 1. Frozen: the pane turns stale within the probe's deadline and the
    //    action's guards fail.
    let frozen = Frozen::process_tree(pid);
    let start = Instant::now();
    let screen = t.wait_for("the rollout pane stale", Duration::from_secs(30), |s| {
        s.contains("stale since") && s.contains("did not answer within")
    });
    let went_stale = start.elapsed();
    assert!(!screen.contains("● watching"), "{screen}");
    t.keys("R");
    let screen = t.wait_for("the restart dialog", Duration::from_secs(10), |s| {
        s.contains("Kubernetes watch live")
    });
    let line = screen
        .lines()
        .find(|l| l.contains("Kubernetes watch live"))
        .unwrap();
    assert!(
        line.contains("◌ Kubernetes watch live") && line.contains("stale since"),
        "stale, not passing: {screen}"
    );
    t.keys("Escape");
    frozen.thaw();
    t.wait_for("watching again", Duration::from_secs(60), |s| {
        s.contains("● watching")
    });

    // 2. Confirmed, then frozen before the executor's first request: it fails
    //    within its deadline, changes nothing, and says so.
    t.keys("R");
    t.wait_for("fresh guards", Duration::from_secs(20), |s| {
        s.lines()
            .find(|l| l.contains("Kubernetes watch live"))
            .is_some_and(|l| l.contains('✔'))
            && s.lines()
                .find(|l| l.contains("Access review"))
                .is_some_and(|l| l.contains('✔'))
    });
    t.keys("app");
    let generation_before = kubectl_generation(&lab);
    let frozen = Frozen::process_tree(pid);
    let start = Instant::now();
    t.keys("Enter");
    let screen = t.wait_for("the action failing", Duration::from_secs(60), |s| {
        s.contains("did not answer within") && s.contains("nothing was changed")
    });
    let failed_after = start.elapsed();
    frozen.thaw();
    assert_eq!(
        kubectl_generation(&lab),
        generation_before,
        "no restart reached the API server: {screen}"
    );

    // 3. The same, cancelled by the operator instead of waiting: `x` ends it
    //    at once and the record says what was in flight.
    t.wait_for("watching again", Duration::from_secs(60), |s| {
        s.contains("● watching")
    });
    t.keys("R");
    t.wait_for("fresh guards", Duration::from_secs(20), |s| {
        s.lines()
            .find(|l| l.contains("Access review"))
            .is_some_and(|l| l.contains('✔'))
    });
    t.keys("app");
    let frozen = Frozen::process_tree(pid);
    t.keys("Enter");
    std::thread::sleep(Duration::from_secs(1));
    let start = Instant::now();
    t.keys("x");
    t.wait_for("the cancel", Duration::from_secs(10), |s| {
        s.contains("cancelled by the operator")
    });
    let cancelled_after = start.elapsed();
    frozen.thaw();
    assert_eq!(kubectl_generation(&lab), generation_before);
    eprintln!(
        "API frozen: stale after {went_stale:.1?}; confirmed action failed after \
         {failed_after:.1?}; cancel took {cancelled_after:.1?}"
    );
    t.keys("q");
}

fn kubectl_generation(lab: &LabRun) -> String {
    let out = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(lab.dir().join(cutover::lab::KUBECONFIG_FILE))
        .args([
            "get",
            "deployment",
            "app",
            "-o",
            "jsonpath={.metadata.generation}",
            "--request-timeout=10s",
        ])
        .output()
        .expect("kubectl");
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stdout)
}

#[test]
fn a_full_disk_stops_the_console_with_a_whole_log() {
    let _x = faults::shared();
    let Some(disk) = SmallDisk::mount(256 * 1024) else {
        return;
    };
    let pair = common::pair();
    let sessions = disk.dir.join("sessions");
    std::fs::create_dir_all(&sessions).unwrap();
    let t = Tmux::start(
        "faults-disk",
        120,
        40,
        &format!(
            "{BIN} -c {} --session-dir {}",
            pair.config_path.display(),
            sessions.display()
        ),
    );
    t.wait_for("the console", Duration::from_secs(30), |s| {
        s.contains("Row counts")
    });
    // Leave room for a few events only.
    disk.fill_leaving(3000);
    let screen = t.wait_for("the console to stop", Duration::from_secs(60), |s| {
        s.contains("EXITED:")
    });
    assert!(screen.contains("EXITED:2"), "{screen}");
    assert!(
        screen.contains("nothing runs unrecorded") && screen.contains("No space left"),
        "{screen}"
    );
    let log = std::fs::read_dir(&sessions)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .expect("a session log");
    let bytes = std::fs::read(&log).unwrap();
    assert_eq!(bytes.last(), Some(&b'\n'), "the log ends with a whole line");
    let events = cutover::session::log::read_all(&log).unwrap();
    let lines = bytes.iter().filter(|b| **b == b'\n').count();
    assert_eq!(events.len(), lines, "every line is an event");
    // The failed write was cut back, so the end usually fits; say so if not.
    match &events.last().unwrap().kind {
        cutover::session::EventKind::SessionEnded { reason } => {
            assert!(reason.contains("No space left"), "{reason}")
        }
        other => eprintln!("note: the disk had no room even for session_ended (last: {other:?})"),
    }
}

/// A third cluster that answers read-only, like a standby; stopped on drop.
struct Standby(cutover::lab::cluster::Cluster);

impl Standby {
    fn start() -> Standby {
        let pair = common::pair();
        let dir = pair.dir.join(format!("standby-{}", std::process::id()));
        let mut c = cutover::lab::cluster::Cluster::init(&pair.bin, &dir, "standby", "")
            .expect("initdb of the standby");
        c.start().expect("starting the standby");
        let conninfo = c.conninfo("postgres");
        common::psql(&pair.bin, &conninfo, "CREATE DATABASE app");
        common::psql(
            &pair.bin,
            &conninfo,
            "ALTER SYSTEM SET default_transaction_read_only = on",
        );
        common::psql(&pair.bin, &conninfo, "SELECT pg_reload_conf()");
        Standby(c)
    }
}

impl Drop for Standby {
    fn drop(&mut self) {
        let _ = self.0.stop();
    }
}

/// An HA pair as libpq reaches it: two hosts and target_session_attrs. The
/// first answers read-only (a standby), so `read-write` skips it; the
/// header says which host is watched.
#[test]
fn a_two_host_source_is_watched_on_the_writable_host_and_the_header_says_which() {
    let _x = faults::shared();
    let pair = common::pair();
    let standby = Standby::start();
    let dsn = format!(
        "host=127.0.0.1,127.0.0.1 port={},{} dbname=app user=postgres target_session_attrs=read-write",
        standby.0.port, pair.source_port
    );
    let src = pair.source_conninfo.clone();
    let cfg = config_variant("faults-ha", |t| t.replacen(&src, &dsn, 1));
    let dir = tempfile::tempdir().unwrap();
    let t = Tmux::start(
        "faults-ha",
        200,
        50,
        &format!(
            "{BIN} -c {} --session-dir {}",
            cfg.display(),
            dir.path().display()
        ),
    );
    let want = format!("● up on 127.0.0.1:{} (2/2)", pair.source_port);
    let screen = t.wait_for(
        "the watched host in the header",
        Duration::from_secs(30),
        |s| s.contains(&want),
    );
    let source_line = screen.lines().find(|l| l.contains(&want)).unwrap();
    assert!(source_line.contains("source"), "{screen}");
    eprintln!("{source_line}");
    t.keys("q");
}
