//! The report of a complete lab cutover recorded by an earlier version
//! (PostgreSQL 15 → 18, resumed twice afterwards), and of odd logs. The
//! values asserted were read off the fixture with jq.

use super::*;
use crate::session::Event;

fn fixture() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/sessions/v0-full-runbook.jsonl")
}

pub(super) fn events() -> Vec<Event> {
    let (events, unreadable) = read_log(&fixture()).unwrap();
    assert!(unreadable.is_empty(), "{unreadable:?}");
    events
}

fn report() -> Report {
    build(&events())
}

/// An event as the log holds it.
pub(super) fn event(json: serde_json::Value) -> Event {
    serde_json::from_value(json).unwrap()
}

/// The fixture's events up to and including `seq`.
pub(super) fn until(seq: u64) -> Vec<Event> {
    events().into_iter().filter(|e| e.seq <= seq).collect()
}

pub(super) fn contains_line(text: &str, want: &str) {
    assert!(
        text.lines().any(|l| l.trim_end() == want),
        "no line {want:?} in:\n{text}"
    );
}

#[test]
fn the_fixture_reads_whole_and_completes() {
    let r = report();
    assert_eq!(r.events, 402);
    assert_eq!(r.runs.len(), 14);
    let Outcome::Completed { at, finished } = r.outcome else {
        panic!("{:?}", r.outcome)
    };
    assert_eq!(fmt::clock_ms(at), "20:18:24.962");
    assert!(!finished, "X never ran");
    assert_eq!(
        r.source.as_ref().unwrap().server_version.as_deref(),
        Some("15.18 (Debian 15.18-0+deb12u1)")
    );
    assert_eq!(
        r.target.as_ref().unwrap().server_version.as_deref(),
        Some("18.6")
    );
    assert_eq!(r.segments.len(), 3);
    assert_eq!(r.segments[0].ended.as_deref(), Some("script done"));
    assert!(r.segments[1].resumed && r.segments[2].resumed);
}

#[test]
fn text_has_the_checkpoints_with_durations_and_what_they_ran() {
    let t = render(&report(), Format::Text);
    contains_line(
        &t,
        "  key  checkpoint                            start     duration  result",
    );
    contains_line(
        &t,
        "  F    Preflight checks                      20:18:02     50 ms  ✖ failed",
    );
    contains_line(
        &t,
        "  Z    Freeze writes on source               20:18:08     2.1 s  ✔ ok",
    );
    contains_line(
        &t,
        "  C    Lag 0, exact counts, final checksums  20:18:10     1.2 s  ✔ ok",
    );
    contains_line(
        &t,
        "  T    App writes to the target              20:18:14    10.0 s  ✔ ok",
    );
    // The freeze run: start, end, duration, result, and the statements.
    contains_line(
        &t,
        "[Z] Freeze writes on source — run 9, 20:18:08.155 → 20:18:10.280 (2.1 s), ✔ ok",
    );
    contains_line(
        &t,
        "        ALTER ROLE \"app\" SET default_transaction_read_only = on;",
    );
    contains_line(
        &t,
        "      PATCH configmap/app-db in cutover-lab (merge, only if unchanged since",
    );
    contains_line(
        &t,
        "        {\"data\":{\"DATABASE_URL\":\"<sha256:08ed26d8>\"}}",
    );
    // 80 columns, East Asian wide characters counted twice.
    for l in t.lines() {
        assert!(
            fmt::width(l) <= fmt::WIDTH,
            "{} columns: {l}",
            fmt::width(l)
        );
    }
}

#[test]
fn text_has_the_freeze_window_against_its_budget() {
    let t = render(&report(), Format::Text);
    contains_line(
        &t,
        "  20:18:08.166     +0 ms  writes refused on the source: 21 privileges of app",
    );
    contains_line(
        &t,
        "  20:18:10.280    +2.1 s  proven frozen; WAL at 0/B28FCB8",
    );
    contains_line(&t, "  20:18:11.565    +3.4 s  database config switched");
    contains_line(
        &t,
        "  20:18:14.936    +6.8 s  the app seen writing to the target: window closed",
    );
    contains_line(
        &t,
        "  Window    ✔ 6.8 s of the 60 s budget (11 %): within budget",
    );
    let r = report();
    assert_eq!(r.freezes.len(), 1);
    assert_eq!(r.freezes[0].duration_ms(), 6770);
}

#[test]
fn text_has_counts_checksums_and_sequences() {
    let t = render(&report(), Format::Text);
    contains_line(
        &t,
        "  table                source   target  diff  checksums",
    );
    contains_line(
        &t,
        "  public.app_writes     2,196    2,196     0  ✔ equal (final check 20:18:11)",
    );
    contains_line(
        &t,
        "  public.order_items  400,000  400,000     0  ✔ equal (final check 20:18:11)",
    );
    contains_line(
        &t,
        "  Final checksums (20:18:11): ✔ 7 tables equal: 47 ranges re-checked, 1 proved",
    );
    contains_line(&t, "  sequence                  source  before    after");
    contains_line(
        &t,
        "  public.audit_log_id_seq   90,000  unused   90,000  set on the target 20:18:11",
    );
    contains_line(
        &t,
        "  public.users_id_seq      100,000  unused  100,000  set on the target 20:18:11",
    );
    // The rollout to the new config, and the console's resumes.
    contains_line(&t, "    20:18:14.936   3/ 3/ 3  complete; 08ed26d8×3");
    contains_line(
        &t,
        "  20:18:28          resume      the console was resumed on the log (cutover",
    );
    contains_line(
        &t,
        "                                0.1.0), 3.1 s after its previous event at",
    );
}

#[test]
fn markdown_has_the_same_tables() {
    let m = render(&report(), Format::Markdown);
    assert!(m.starts_with("# Cutover migration report\n\n**Outcome: COMPLETED** — the application writes to the target (seen at 20:18:24)"));
    contains_line(&m, "| key | checkpoint | start | end | duration | result |");
    contains_line(
        &m,
        "| Z | Freeze writes on source | 20:18:08 | 20:18:10 | 2.1 s | ✔ ok |",
    );
    contains_line(
        &m,
        "| F | Preflight checks | 20:18:02 | 20:18:02 | 50 ms | ✖ failed |",
    );
    contains_line(
        &m,
        "### \\[Z\\] Freeze writes on source — run 9, 20:18:08.155 → 20:18:10.280 (2.1 s), ✔ ok",
    );
    contains_line(
        &m,
        "     ALTER ROLE \"app\" SET default_transaction_read_only = on;",
    );
    contains_line(
        &m,
        "| 20:18:14.936 | +6.8 s | the app seen writing to the target: window closed |",
    );
    contains_line(
        &m,
        "**Window:** ✔ 6.8 s of the 60 s budget (11 %): within budget",
    );
    contains_line(
        &m,
        "| table | source rows | target rows | diff | checksums |",
    );
    contains_line(
        &m,
        "| public.events | 150,000 | 150,000 | 0 | ✔ equal (final check 20:18:11) |",
    );
    contains_line(&m, "| sequence | source | before | after |  |");
    contains_line(
        &m,
        "| public.orders_id_seq | 250,000 | unused | 250,000 | set on the target at 20:18:11 |",
    );
    // Text from the log cannot open raw HTML in a renderer.
    assert!(m.contains("pg_dump --schema-only --no-owner &lt;source&gt; \\| psql &lt;target&gt;"));
}

#[test]
fn html_is_one_escaped_file_with_its_charts() {
    let mut events = events();
    // A note the operator typed, with markup in it.
    let note = event(serde_json::json!({
        "seq": 1000, "at": "2026-11-30T20:18:30Z", "type": "command",
        "command": "note", "text": "app team says <script>alert(1)</script> & all good"
    }));
    let at = events.iter().position(|e| e.seq == 288).unwrap();
    events.insert(at, note);
    let h = render(&build(&events), Format::Html);
    assert!(h.starts_with("<!DOCTYPE html>"));
    assert!(
        !h.contains("<script"),
        "no script, and the note's is escaped"
    );
    assert!(h.contains("app team says &lt;script&gt;alert(1)&lt;/script&gt; &amp; all good"));
    for id in ["chart-lag", "chart-writes", "chart-rollout"] {
        assert!(
            h.contains(&format!("<svg id=\"{id}\" class=\"chart\"")),
            "{id}"
        );
    }
    assert!(h.contains("<polyline class=\"series lag\" points=\""));
    assert!(h.contains("<polyline class=\"series w-source\" points=\""));
    assert!(h.contains("<path class=\"series step ready s0\" d=\"M"));
    assert!(h.contains("<rect class=\"freeze\""));
    assert!(h.contains("@media print"));
    // Nothing outside the file: the only URL is SVG's namespace.
    let urls: Vec<&str> = h.matches("http").collect();
    assert_eq!(urls.len(), 3, "three SVG xmlns and nothing else");
    assert!(!h.contains("<link") && !h.contains("@import") && !h.contains("url("));
}

#[test]
fn notes_overrides_and_stale_periods_are_reported() {
    let mut events = events();
    let at = events.iter().position(|e| e.seq == 242).unwrap();
    events.insert(
        at,
        event(serde_json::json!({
            "seq": 1001, "at": "2026-11-30T20:18:18Z", "type": "collector_failed",
            "side": "source", "error": "connection refused"
        })),
    );
    events.push(event(serde_json::json!({
        "seq": 1002, "at": "2026-11-30T20:19:15.5Z", "type": "command",
        "command": "note", "text": "handed over to the app team"
    })));
    let mut r = build(&events);
    let stale: Vec<&Anomaly> = r
        .anomalies
        .iter()
        .filter(|a| a.kind == AnomalyKind::Stale)
        .collect();
    assert_eq!(stale.len(), 1);
    assert_eq!(
        stale[0].text,
        "source stale for 617 ms: 1 failed poll, first: connection refused"
    );
    assert_eq!(r.notes.len(), 1);
    // An override as the fold records it (a reason typed for failing guards).
    let z = r
        .runs
        .iter_mut()
        .find(|x| x.checkpoint == crate::runbook::CheckpointId::FreezeWrites)
        .unwrap();
    z.overridden = Some((
        vec!["Lag under threshold".into()],
        "lag is the copy, it drains".into(),
    ));
    let t = render(&r, Format::Text);
    contains_line(
        &t,
        "  20:18:18–20:18:18 stale       source stale for 617 ms: 1 failed poll, first:",
    );
    contains_line(&t, "  20:19:15  handed over to the app team");
    contains_line(
        &t,
        "  OVERRIDE: guards failing (Lag under threshold), reason: \"lag is the copy, it",
    );
}

#[test]
fn odd_logs_give_a_report_and_never_a_panic() {
    let header = until(1);
    let cases: Vec<(&str, Vec<Event>)> = vec![
        ("empty", vec![]),
        ("header only", header),
        // The freeze in flight when the log stops.
        ("unfinished run", until(100)),
        // The preflight failed and nothing more ran.
        ("failed", until(22)),
        // No header: a log cut at its start.
        (
            "no header",
            events().into_iter().filter(|e| e.seq > 50).collect(),
        ),
    ];
    for (name, events) in cases {
        let r = build(&events);
        for f in [Format::Text, Format::Markdown, Format::Html] {
            let out = render(&r, f);
            assert!(out.len() > 100, "{name} {f}");
        }
        match name {
            "empty" => assert_eq!(
                r.outcome,
                Outcome::Unfinished {
                    last_passed: None,
                    in_flight: None
                }
            ),
            "unfinished run" => {
                assert_eq!(
                    r.outcome,
                    Outcome::Unfinished {
                        last_passed: Some(crate::runbook::CheckpointId::Preflight),
                        in_flight: Some(crate::runbook::CheckpointId::FreezeWrites)
                    }
                );
                let t = render(&r, Format::Text);
                contains_line(
                    &t,
                    "Outcome     UNFINISHED — \"Freeze writes on source\" was in flight when the log",
                );
                contains_line(
                    &t,
                    "  20:18:09.607    +1.4 s  the log ends with writes still frozen",
                );
                contains_line(
                    &t,
                    "  Window    ✔ 1.4 s of the 60 s budget (2 %): within budget",
                );
            }
            "failed" => {
                let Outcome::Failed { checkpoint, .. } = &r.outcome else {
                    panic!("{:?}", r.outcome)
                };
                assert_eq!(*checkpoint, crate::runbook::CheckpointId::Preflight);
                let t = render(&r, Format::Text);
                assert!(t.contains(
                    "Outcome     FAILED — at checkpoint \"Preflight checks\" (20:18:02)"
                ));
            }
            _ => {}
        }
    }
}

#[test]
fn a_resume_closes_the_run_in_flight_as_failed() {
    let mut events = until(100);
    events.push(event(serde_json::json!({
        "seq": 101, "at": "2026-11-30T20:20:00Z", "type": "session_resumed",
        "previous_last_seq": 100, "previous_last_at": "2026-11-30T20:18:09.607656590Z",
        "tool_version": "0.1.0"
    })));
    let r = build(&events);
    let Outcome::Failed {
        checkpoint,
        message,
        ..
    } = &r.outcome
    else {
        panic!("{:?}", r.outcome)
    };
    assert_eq!(*checkpoint, crate::runbook::CheckpointId::FreezeWrites);
    assert!(
        message.contains("whether it completed is unknown"),
        "{message}"
    );
    assert!(r
        .anomalies
        .iter()
        .any(|a| a.kind == AnomalyKind::Resume && a.text.contains("ended without a word")));
}

#[test]
fn formats_parse_as_the_command_line_spells_them() {
    for (s, f) in [
        ("text", Format::Text),
        ("md", Format::Markdown),
        ("markdown", Format::Markdown),
        ("HTML", Format::Html),
    ] {
        assert_eq!(s.parse::<Format>(), Ok(f));
    }
    assert!("pdf"
        .parse::<Format>()
        .unwrap_err()
        .contains("text, md (markdown) or html"));
    use clap::ValueEnum;
    assert_eq!(Format::from_str("markdown", true), Ok(Format::Markdown));
}

#[test]
fn write_is_owner_only_and_errors_name_the_file() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("reports/cutover.html");
    write(&fixture(), Format::Html, &out).unwrap();
    let mode = std::fs::metadata(&out).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let dmode = std::fs::metadata(out.parent().unwrap())
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(dmode, 0o700);
    // An existing file is made owner-only too.
    let md = dir.path().join("r.md");
    std::fs::write(&md, "old").unwrap();
    std::fs::set_permissions(&md, std::fs::Permissions::from_mode(0o644)).unwrap();
    write(&fixture(), Format::Markdown, &md).unwrap();
    assert_eq!(
        std::fs::metadata(&md).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let missing = dir.path().join("nope.jsonl");
    let e = format!("{:#}", export(&missing, Format::Text).unwrap_err());
    assert!(e.contains("nope.jsonl"), "{e}");
}

#[test]
fn a_line_this_version_cannot_read_is_named_not_fatal() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("s.jsonl");
    let mut text = std::fs::read_to_string(fixture()).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    lines.insert(
        5,
        r#"{"seq":5,"at":"2026-11-30T20:18:02.613Z","type":"from_the_future"}"#,
    );
    text = lines.join("\n") + "\n";
    std::fs::write(&log, text).unwrap();
    let (events, bad) = read_log(&log).unwrap();
    assert_eq!(events.len(), 402);
    assert_eq!(bad.len(), 1);
    assert!(
        bad[0].contains("s.jsonl:6: unknown variant `from_the_future`"),
        "{bad:?}"
    );
    let t = export(&log, Format::Text).unwrap();
    assert!(
        t.contains("unreadable  left out, not readable by this version of"),
        "{t}"
    );
    assert!(t.contains("Outcome     COMPLETED"));
    // A torn last line (a crash mid-write) is what read_all skips too.
    std::fs::write(
        &log,
        std::fs::read_to_string(fixture()).unwrap() + "{\"seq\":403,\"at",
    )
    .unwrap();
    let (events, bad) = read_log(&log).unwrap();
    assert_eq!((events.len(), bad.len()), (402, 0));
}
#[test]
fn the_operator_is_named_when_the_header_has_one() {
    let mut events = events();
    let mut header = serde_json::to_value(&events[0]).unwrap();
    header["operator"] = serde_json::json!({
        "user": "alice", "host": "bastion-1", "ssh_client": "10.0.0.7 52044 22"
    });
    events[0] = event(header);
    let r = build(&events);
    let t = render(&r, Format::Text);
    contains_line(&t, "Operator    alice@bastion-1 (SSH from 10.0.0.7)");
    assert_eq!(report().operator, None, "the fixture has none");
}

#[test]
fn a_final_check_that_finds_differences_names_the_tables_and_rows() {
    let events: Vec<Event> = events()
        .into_iter()
        .map(|e| match e.seq {
            134 => event(serde_json::json!({
                "seq": 134, "at": e.at, "type": "step_failed", "id": 10, "index": 2,
                "error": "public.orders: 2 rows differ (Changed id=5, MissingOnTarget id=9)",
                "elapsed_ms": 990.5
            })),
            _ => e,
        })
        .collect();
    let r = build(&events);
    let orders = r.tables.iter().find(|t| t.table.name == "orders").unwrap();
    assert_eq!(
        orders.checksum,
        Checksum::Differ(
            "final check 20:18:11: 2 rows differ (Changed id=5, MissingOnTarget id=9)".into()
        )
    );
    let users = r.tables.iter().find(|t| t.table.name == "users").unwrap();
    assert_eq!(
        users.checksum,
        Checksum::Equal("final check 20:18:11".into())
    );
    let t = render(&r, Format::Text);
    contains_line(
        &t,
        "  public.orders       250,000  250,000     0  ✖ differ: final check 20:18:11: 2",
    );
    assert!(t.contains("Final checksums (20:18:11): ✖ public.orders: 2 rows differ"));
}

#[test]
fn a_confirmation_refused_by_its_guards_is_an_anomaly() {
    let mut events = events();
    let at = events.iter().position(|e| e.seq == 36).unwrap();
    for (seq, command) in [(1003, "open"), (1004, "confirm")] {
        events.insert(
            at,
            event(serde_json::json!({
                "seq": seq, "at": "2026-11-30T20:18:02.8575Z", "type": "command",
                "command": command, "checkpoint": "switch_config", "typed": "app-db"
            })),
        );
    }
    // Inserted before one another: open first.
    events.swap(at, at + 1);
    let r = build(&events);
    assert_eq!(r.runs.len(), 14, "the refused one never ran");
    let refused: Vec<&Anomaly> = r
        .anomalies
        .iter()
        .filter(|a| a.text.contains("confirmed but not started"))
        .collect();
    assert_eq!(refused.len(), 1);
    assert!(
        refused[0]
            .text
            .starts_with("\"Switch database config\" confirmed but not started: guards failing: "),
        "{}",
        refused[0].text
    );
}
