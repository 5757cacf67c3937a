//! Runs a session end left in flight, what the resumed console found out
//! from the servers, and the events of format 2 the report reads (or
//! leaves alone): built by hand onto the fixture's events.

use super::tests::{contains_line, event, events, until};
use super::*;
use crate::runbook::CheckpointId;
use crate::session::{Event, EventKind, InFlight};

/// The freeze's step as the fixture's run 9 started it.
fn freeze_step() -> crate::runbook::Step {
    events()
        .into_iter()
        .find_map(|e| match e.kind {
            EventKind::StepStarted { id: 9, step, .. } => Some(step),
            _ => None,
        })
        .unwrap()
}

fn at(s: &str) -> chrono::DateTime<chrono::Utc> {
    s.parse().unwrap()
}

fn ev(seq: u64, when: &str, kind: EventKind) -> Event {
    Event {
        seq,
        at: at(when),
        kind,
    }
}

fn resumed(seq: u64) -> Event {
    ev(
        seq,
        "2026-11-30T20:20:00Z",
        EventKind::SessionResumed {
            previous_last_seq: seq - 1,
            previous_last_at: at("2026-11-30T20:18:09.607656590Z"),
            cut_bytes: 0,
            tool_version: "0.1.0".into(),
            read_only: false,
        },
    )
}

fn outcome(seq: u64, outcome: InFlight, evidence: &str) -> Event {
    ev(
        seq,
        "2026-11-30T20:20:00.5Z",
        EventKind::InFlightOutcome {
            run: 9,
            index: 0,
            outcome,
            evidence: evidence.into(),
        },
    )
}

/// The console ended by a hang-up while the freeze ran, as this version logs it.
fn hung_up() -> Vec<Event> {
    let mut events = until(100);
    events.push(ev(
        101,
        "2026-11-30T20:18:09.7Z",
        EventKind::InFlightAtEnd {
            run: 9,
            checkpoint: CheckpointId::FreezeWrites,
            step: Some((0, freeze_step())),
        },
    ));
    events.push(ev(
        102,
        "2026-11-30T20:18:09.7Z",
        EventKind::SessionEnded {
            reason: "SIGHUP (terminal hung up)".into(),
        },
    ));
    events
}

fn in_flight_anomalies(r: &Report) -> Vec<&str> {
    r.anomalies
        .iter()
        .filter(|a| a.kind == AnomalyKind::InFlight)
        .map(|a| a.text.as_str())
        .collect()
}

/// The text's lines from the one starting with `first`, `n` of them.
fn lines_from(text: &str, first: &str, n: usize) -> Vec<String> {
    let mut lines = text.lines().skip_while(|l| !l.starts_with(first));
    (&mut lines).take(n).map(str::to_string).collect()
}

#[test]
fn a_killed_session_resumed_names_the_step_in_flight_and_the_servers_verdict() {
    // Killed (no session_ended, no in_flight_at_end): the log just stops
    // with the freeze's step under way; the resumed console asks.
    let mut events = until(100);
    events.push(resumed(101));
    events.push(outcome(
        102,
        InFlight::Done,
        "app cannot write any of 7 tables; default_transaction_read_only = on",
    ));
    let r = build(&events);
    let z = r
        .runs
        .iter()
        .find(|x| x.checkpoint == CheckpointId::FreezeWrites)
        .unwrap();
    let f = z.in_flight.as_ref().expect("left in flight");
    assert_eq!(
        f.step,
        Some((0, "freeze writes of app on the source".to_string()))
    );
    assert_eq!(f.ended, None);
    assert_eq!(fmt::clock_ms(f.ended_at), "20:18:09.607");
    // It ran until the console stopped, not until the resume closed it.
    assert_eq!(fmt::clock_ms(z.finished.unwrap()), "20:18:09.607");
    assert_eq!(
        in_flight_anomalies(&r),
        [
            "Z Freeze writes on source was in flight (step 1, freeze writes of app on \
          the source) when the console ended without a word (no end recorded: killed, \
          a crash or a lost connection) at 20:18:09; the resumed console asked the \
          servers: done — app cannot write any of 7 tables; \
          default_transaction_read_only = on"
        ]
    );
    // Said once: not again as the run's failure.
    assert!(
        !r.anomalies
            .iter()
            .any(|a| a.text.starts_with("Freeze writes on source failed")),
        "{:#?}",
        r.anomalies
    );

    let t = render(&r, Format::Text);
    assert_eq!(
        lines_from(&t, "[Z] ", 6),
        [
            "[Z] Freeze writes on source — run 9, 20:18:08.155 → 20:18:09.607 (1.5 s),",
            "    ✖ failed",
            "  in flight: step 1 (freeze writes of app on the source), when the console ended",
            "    without a word (no end recorded: killed, a crash or a lost connection) at",
            "    20:18:09; the resumed console asked the servers: done — app cannot write any",
            "    of 7 tables; default_transaction_read_only = on",
        ]
    );
    contains_line(&t, "  step 1: freeze writes of app on the source");
    contains_line(
        &t,
        "    → ✖ in flight when the session ended; the servers say done: app cannot write",
    );
    assert_eq!(
        lines_from(&t, "  20:18:09          in flight", 5),
        [
            "  20:18:09          in flight   Z Freeze writes on source was in flight (step 1,",
            "                                freeze writes of app on the source) when the",
            "                                console ended without a word (no end recorded:",
            "                                killed, a crash or a lost connection) at",
            "                                20:18:09; the resumed console asked the servers:",
        ]
    );
    // Writes stayed frozen while the console was down: the window says so.
    contains_line(
        &t,
        "  20:18:09.607       +1.4 s  the console stopped, writes still frozen",
    );
    contains_line(
        &t,
        "  20:20:00.000  +1 min 51 s  the console resumed, 1 min 50 s later",
    );
    for l in t.lines() {
        assert!(fmt::width(l) <= fmt::WIDTH, "{l}");
    }

    let m = render(&r, Format::Markdown);
    contains_line(
        &m,
        "### \\[Z\\] Freeze writes on source — run 9, 20:18:08.155 → 20:18:09.607 (1.5 s), \
         ✖ failed",
    );
    contains_line(
        &m,
        "**In flight:** step 1 (freeze writes of app on the source), when the console \
         ended without a word (no end recorded: killed, a crash or a lost connection) at \
         20:18:09; the resumed console asked the servers: done — app cannot write any of \
         7 tables; default_transaction_read_only = on",
    );
    contains_line(
        &m,
        "1. **freeze writes of app on the source** — ✖ in flight when the session ended; \
         the servers say done: app cannot write any of 7 tables; \
         default_transaction_read_only = on",
    );
    contains_line(
        &m,
        "| 20:18:09 | in flight | Z Freeze writes on source was in flight (step 1, freeze \
         writes of app on the source) when the console ended without a word (no end \
         recorded: killed, a crash or a lost connection) at 20:18:09; the resumed console \
         asked the servers: done — app cannot write any of 7 tables; \
         default_transaction_read_only = on |",
    );

    let h = render(&r, Format::Html);
    assert!(h.contains(
        "<p class=\"warn\"><strong>In flight:</strong> step 1 (freeze writes of app on the \
         source), when the console ended without a word (no end recorded: killed, a crash \
         or a lost connection) at 20:18:09; the resumed console asked the servers: done — \
         app cannot write any of 7 tables; default_transaction_read_only = on</p>"
    ));
}

#[test]
fn a_hang_up_recorded_with_its_step_and_an_unknown_verdict() {
    let mut events = hung_up();
    events.push(resumed(103));
    events.push(outcome(
        104,
        InFlight::Unknown,
        "the source could not be asked: connection refused",
    ));
    let r = build(&events);
    assert_eq!(
        in_flight_anomalies(&r),
        [
            "Z Freeze writes on source was in flight (step 1, freeze writes of app on \
          the source) when the console ended (SIGHUP (terminal hung up)) at 20:18:09; \
          the resumed console asked the servers: unknown — the source could not be \
          asked: connection refused"
        ]
    );
    let t = render(&r, Format::Text);
    assert_eq!(
        lines_from(&t, "  in flight: ", 3),
        [
            "  in flight: step 1 (freeze writes of app on the source), when the console ended",
            "    (SIGHUP (terminal hung up)) at 20:18:09; the resumed console asked the",
            "    servers: unknown — the source could not be asked: connection refused",
        ]
    );
    let m = render(&r, Format::Markdown);
    contains_line(
        &m,
        "**In flight:** step 1 (freeze writes of app on the source), when the console \
         ended (SIGHUP (terminal hung up)) at 20:18:09; the resumed console asked the \
         servers: unknown — the source could not be asked: connection refused",
    );
    let Outcome::Failed { message, .. } = &r.outcome else {
        panic!("{:?}", r.outcome)
    };
    assert_eq!(
        message,
        "freeze writes of app on the source: in flight when the session ended; the \
         servers say unknown: the source could not be asked: connection refused"
    );

    // Not resumed: the log ends with the run in flight and says what it knows.
    let r = build(&hung_up());
    assert_eq!(
        in_flight_anomalies(&r),
        [
            "Z Freeze writes on source was in flight (step 1, freeze writes of app on \
          the source) when the console ended (SIGHUP (terminal hung up)) at 20:18:09; \
          the log was not resumed: what became of it is unknown"
        ]
    );
    assert!(!r
        .anomalies
        .iter()
        .any(|a| a.text.contains("has no end in the log")));
    assert_eq!(
        r.outcome,
        Outcome::Unfinished {
            last_passed: Some(CheckpointId::Preflight),
            in_flight: Some(CheckpointId::FreezeWrites)
        }
    );
}

#[test]
fn screen_digests_and_the_report_written_change_nothing_else() {
    let plain = build(&events());
    // A digest after every event, at its time: what a format-2 log holds.
    let mut with: Vec<Event> = Vec::new();
    for e in events() {
        let digest = ev(
            e.seq,
            "2026-11-30T20:18:02Z",
            EventKind::ScreenDigest {
                width: 120,
                height: 40,
                digest: "sha256:00ff".into(),
            },
        );
        let at = e.at;
        with.push(e);
        with.push(Event { at, ..digest });
    }
    let mut r = build(&with);
    assert_eq!(r.events, 2 * plain.events);
    r.events = plain.events;
    assert_eq!(r, plain);

    // The last checkpoint wrote the report before the console ended; a
    // later console could not.
    let mut events = events();
    let end = events
        .iter()
        .position(|e| matches!(e.kind, EventKind::SessionEnded { .. }))
        .unwrap();
    events.insert(
        end,
        ev(
            403,
            "2026-11-30T20:18:24.97Z",
            EventKind::ReportWritten {
                path: "/tmp/lab4/migration-report.txt".into(),
                error: None,
            },
        ),
    );
    let t = render(&build(&events), Format::Text);
    contains_line(
        &t,
        "Report      written by the console to /tmp/lab4/migration-report.txt at 20:18:24",
    );
    events.push(ev(
        404,
        "2026-11-30T20:19:15.5Z",
        EventKind::ReportWritten {
            path: "/srv/reports/cutover.txt".into(),
            error: Some("Permission denied (os error 13)".into()),
        },
    ));
    let r = build(&events);
    let failed: Vec<&str> = r
        .anomalies
        .iter()
        .filter(|a| a.text.contains("migration report"))
        .map(|a| a.text.as_str())
        .collect();
    assert_eq!(
        failed,
        [
            "the migration report could not be written to /srv/reports/cutover.txt: \
          Permission denied (os error 13)"
        ]
    );
    let m = render(&r, Format::Markdown);
    contains_line(
        &m,
        "| Report | could not be written to /srv/reports/cutover.txt at 20:19:15: \
         Permission denied (os error 13) |",
    );
    for f in [Format::Text, Format::Markdown, Format::Html] {
        assert!(render(&r, f).contains("COMPLETED"), "{f}");
    }
}

#[test]
fn a_format_2_header_names_the_operator_config_fingerprint_and_format() {
    let mut events = events();
    let mut header = serde_json::to_value(&events[0]).unwrap();
    header["format_version"] = serde_json::json!(2);
    header["operator"] = serde_json::json!({
        "user": "alice", "host": "bastion-1", "ssh_client": "10.0.0.7 52044 22"
    });
    header["config_fingerprint"] = serde_json::json!(
        "sha256:0341c1579321fafe6c56b7ba54b531fc5547b564c641f76add177a006f6c7f70"
    );
    events[0] = event(header);
    let r = build(&events);
    assert_eq!(r.format_version, Some(2));
    assert_eq!(r.config_fingerprint.as_deref(), Some("sha256:0341c1579321"));
    let t = render(&r, Format::Text);
    contains_line(&t, "Operator    alice@bastion-1 (SSH from 10.0.0.7)");
    contains_line(
        &t,
        "Recorded by cutover 0.1.0, live session, config /tmp/lab4/cutover.toml",
    );
    contains_line(&t, "            (sha256:0341c1579321), log format 2");
    let m = render(&r, Format::Markdown);
    contains_line(
        &m,
        "| Config | /tmp/lab4/cutover.toml (sha256:0341c1579321) |",
    );
    contains_line(&m, "| Log format | 2 |");
    contains_line(&m, "| Operator | alice@bastion-1 (SSH from 10.0.0.7) |");
    let h = render(&r, Format::Html);
    assert!(h.contains(
        "<dt>Recorded by</dt><dd>cutover 0.1.0, live session, config \
         /tmp/lab4/cutover.toml (sha256:0341c1579321), log format 2</dd>"
    ));
    // A format-1 header: format 1, no operator, no fingerprint.
    let old = build(&super::tests::events());
    assert_eq!(
        (old.format_version, old.operator, old.config_fingerprint),
        (Some(1), None, None)
    );
    // An operator with nothing in it names no one.
    let mut events = super::tests::events();
    let mut header = serde_json::to_value(&events[0]).unwrap();
    header["operator"] = serde_json::json!({"user": "", "host": " "});
    events[0] = event(header);
    assert_eq!(build(&events).operator, None);
}

#[test]
fn a_format_2_log_with_a_line_it_cannot_read_still_expands_its_samples() {
    // Written as this version writes it: samples as diffs of the previous one.
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("s.jsonl");
    let mut w = crate::session::log::LogWriter::create(&log).unwrap();
    for e in events() {
        w.append(&e).unwrap();
    }
    w.sync().unwrap();
    drop(w);
    let text = std::fs::read_to_string(&log).unwrap();
    let diffs = text
        .lines()
        .filter(|l| l.contains("\"type\":\"changed\""))
        .count();
    assert!(diffs > 100, "{diffs} diff lines");
    let mut lines: Vec<&str> = text.lines().collect();
    lines.insert(
        5,
        r#"{"seq":5,"at":"2026-11-30T20:18:02.613Z","type":"from_the_future"}"#,
    );
    std::fs::write(&log, lines.join("\n") + "\n").unwrap();
    let (read, bad) = read_log(&log).unwrap();
    assert_eq!(bad.len(), 1, "{bad:?}");
    assert!(bad[0].contains("s.jsonl:6: "), "{bad:?}");
    assert_eq!(read, events(), "every sample expanded");
}

#[test]
fn a_log_of_a_newer_format_is_refused_not_read_line_by_line() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("s.jsonl");
    let mut text = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/sessions/v0-full-runbook.jsonl"),
    )
    .unwrap();
    text = text.replacen(
        "\"type\":\"session_started\",",
        "\"type\":\"session_started\",\"format_version\":99,",
        1,
    );
    std::fs::write(&log, text).unwrap();
    let e = format!("{:#}", export(&log, Format::Text).unwrap_err());
    assert!(e.contains("log format 99"), "{e}");
}
