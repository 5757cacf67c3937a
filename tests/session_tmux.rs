//! The session log as the one record, on the lab through the real binary:
//! a follower sees the driver's checkpoints as they happen; a console
//! killed (SIGKILL) in the middle of the write freeze is resumed, and the
//! freeze's outcome is read from the server, not guessed; a hang-up
//! (SIGHUP) records what was in flight and ends the log cleanly; the
//! runbook's last checkpoint writes the migration report.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;

use common::tmux::{dsn, psql, LabRun, Tmux, BIN};

fn newest_log(dir: &Path) -> Option<PathBuf> {
    let mut logs: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .collect();
    logs.sort();
    logs.pop()
}

fn wait_until(what: &str, timeout: Duration, mut pred: impl FnMut() -> bool) {
    let start = Instant::now();
    while !pred() {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn events(log: &Path) -> Vec<cutover::session::Event> {
    cutover::session::log::read_all(log).unwrap()
}

#[test]
fn follow_sees_the_driver_then_a_kill_in_the_freeze_is_resumed_from_the_servers() {
    let lab_run = LabRun::up("cutover-session", "2000");
    let source = dsn(&lab_run.config, "source");
    psql(&source, "ALTER TABLE public.events REPLICA IDENTITY FULL");
    let script = |extra: &[&str]| {
        let mut c = Command::new(BIN);
        c.arg("-c")
            .arg(&lab_run.config)
            .arg("--session-dir")
            .arg(&lab_run.sessions)
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        c
    };
    // The driver, headless: the preflight starts the session, each
    // checkpoint after it goes on with the same log (--resume), one at a
    // time, so a follower has each to see.
    let first = script(&["--script", "F?"]).output().unwrap();
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let log = newest_log(&lab_run.sessions).unwrap();
    let resume = |keys: &str| script(&["--resume", log.to_str().unwrap(), "--script", keys]);

    // A follower, read-only, in its own terminal.
    let follower = Tmux::start(
        "follow",
        120,
        40,
        &format!("{BIN} follow {}", log.display()),
    );
    follower.wait_for("the follower", Duration::from_secs(20), |s| {
        s.contains("FOLLOW") && s.contains("following, read-only")
    });
    // Each checkpoint the driver starts shows on the follower within 2 s.
    for (key, needle, title) in [
        ("D", "copy_schema", "Copy schema to target"),
        ("P", "create_publication", "Create publication"),
        ("U", "create_subscription", "Create subscription"),
        ("W", "wait_initial_sync", "Wait for initial sync"),
    ] {
        let driver = resume(key).spawn().unwrap();
        wait_until(title, Duration::from_secs(60), || {
            std::fs::read_to_string(&log).unwrap().contains(&format!(
                "\"command\":\"confirm\",\"checkpoint\":\"{needle}\""
            ))
        });
        let seen = Instant::now();
        follower.wait_for(title, Duration::from_secs(2), |s| {
            // The bottom row: "◉ following … · D Copy schema to target running".
            s.lines()
                .rfind(|l| !l.trim().is_empty())
                .is_some_and(|l| l.contains("◉ following") && l.contains(title))
        });
        eprintln!(
            "the follower showed {title} {:?} after the log had it",
            seen.elapsed()
        );
        let out = driver.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{key}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // Keys that would act do nothing on a follower.
    // (No dialog is open in the session now: none would show.)
    follower.keys("Z");
    std::thread::sleep(Duration::from_millis(500));
    assert!(!follower.capture().contains("Will run:"));
    assert!(
        std::fs::read_to_string(&log)
            .unwrap()
            .matches("freeze_writes")
            .count()
            == 0
    );

    let mut driver = resume("V Z").spawn().unwrap();
    // Kill the driver (SIGKILL: no word in the log) once the freeze step has
    // started: the REVOKE comes first, the proof takes seconds.
    wait_until("the freeze step", Duration::from_secs(300), || {
        std::fs::read_to_string(&log)
            .unwrap()
            .contains("\"step\":{\"step\":\"freeze_writes\"")
    });
    std::thread::sleep(Duration::from_millis(300));
    driver.kill().unwrap();
    driver.wait().unwrap();
    let before = events(&log);
    assert!(
        !matches!(
            before.last().map(|e| &e.kind),
            Some(cutover::session::EventKind::SessionEnded { .. })
        ),
        "SIGKILL leaves no end"
    );

    // Resume, and roll back from where it stood.
    let out = script(&["--resume", log.to_str().unwrap(), "--script", "B"])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{said}");
    assert!(
        said.contains("freeze writes of app on the source was in flight")
            && said.contains("the servers say done: the freeze statement ran"),
        "{said}"
    );
    let after = events(&log);
    // Nothing lost: the old events unchanged, numbering goes on.
    assert_eq!(&after[..before.len()], &before[..]);
    let seqs: Vec<u64> = after.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (1..=after.len() as u64).collect::<Vec<_>>());
    let outcome = after
        .iter()
        .find_map(|e| match &e.kind {
            cutover::session::EventKind::InFlightOutcome {
                outcome, evidence, ..
            } => Some((*outcome, evidence.clone())),
            _ => None,
        })
        .expect("the in-flight outcome is logged");
    assert_eq!(outcome.0, cutover::session::InFlight::Done, "{}", outcome.1);
    // The rollback gave the privileges back: the app writes to the source.
    let app_can_write = psql(
        &source,
        "SELECT has_table_privilege('app', 'public.app_writes', 'INSERT')",
    );
    assert_eq!(app_can_write, "t");

    // SIGHUP with the console on a terminal: the log ends with the hang-up.
    let t = Tmux::start(
        "hup",
        100,
        30,
        &format!(
            "{BIN} -c {} --session-dir {} --resume {}",
            lab_run.config.display(),
            lab_run.sessions.display(),
            log.display()
        ),
    );
    t.wait_for("the resumed console", Duration::from_secs(30), |s| {
        s.matches("● up").count() >= 2
    });
    // The console is the pane's shell's child.
    let shell = t.display("#{pane_pid}");
    let console = Command::new("pgrep")
        .args(["-P", shell.trim(), "-f", "cutover"])
        .output()
        .unwrap();
    let console = String::from_utf8_lossy(&console.stdout).trim().to_string();
    assert!(!console.is_empty(), "no console under pane {shell}");
    Command::new("kill")
        .args(["-HUP", &console])
        .status()
        .unwrap();
    wait_until("the hang-up's end", Duration::from_secs(20), || {
        events(&log).last().is_some_and(|e| {
            matches!(&e.kind, cutover::session::EventKind::SessionEnded { reason }
                if reason.starts_with("SIGHUP"))
        })
    });

    // A replay of the whole session opens at once and quits.
    let r = Tmux::start("replay", 80, 24, &format!("{BIN} replay {}", log.display()));
    r.wait_for("the replay", Duration::from_secs(20), |s| {
        s.contains("REPLAY")
    });
    r.keys("End");
    r.wait_for("the end", Duration::from_secs(5), |s| s.contains("■ end"));
    r.keys("q");
    r.wait_for("exit", Duration::from_secs(10), |s| s.contains("EXITED:0"));
}
