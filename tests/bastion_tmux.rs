//! The console on a bastion host: the real binary in tmux, on plain and old
//! terminals, resized mid-session, without colour. Driven by replaying the
//! recorded lab cutover (the same loop and view as a live console, and a
//! screen that holds still when paused), so what is compared is exact.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

mod common;

use common::tmux::{Tmux, BIN};

const EXAMPLE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/sessions/example-lab-15-to-18.jsonl"
);

/// The recording paused at its fourth checkpoint: replication running,
/// every pane full.
fn paused_replay(name: &str, cols: u16, rows: u16, env: &str, args: &str) -> Tmux {
    let t = Tmux::start(
        name,
        cols,
        rows,
        &format!("{env} {BIN} replay {args} {EXAMPLE}"),
    );
    t.wait_for("the replay", Duration::from_secs(20), |s| {
        s.contains("quit")
    });
    t.keys("Space");
    for _ in 0..4 {
        t.keys("n");
    }
    settle(&t);
    t
}

/// Waits until two captures 600 ms apart are the same: the paused screen.
fn settle(t: &Tmux) -> String {
    let start = Instant::now();
    let mut last = String::new();
    loop {
        std::thread::sleep(Duration::from_millis(600));
        let now = t.capture();
        if now == last {
            return now;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the replay never held still:\n{now}"
        );
        last = now;
    }
}

fn box_drawing(c: char) -> bool {
    ('\u{2500}'..='\u{259f}').contains(&c)
}

#[test]
fn ascii_on_old_terminals_draws_every_pane_without_a_glyph() {
    for term in [
        "vt100",
        "linux",
        "xterm",
        "screen-256color",
        "xterm-256color",
    ] {
        let t = paused_replay(
            &format!("ascii-{term}"),
            80,
            24,
            &format!("TERM={term}"),
            "--ascii",
        );
        let screen = t.capture();
        let odd: Vec<char> = screen.chars().filter(|c| !c.is_ascii()).collect();
        assert!(
            odd.is_empty(),
            "TERM={term}: not ASCII {odd:?} in\n{screen}"
        );
        // Complete: the header, the lag, the counts, the rollout, the
        // runbook's line, the footer and the replay's own row.
        let rows: Vec<&str> = screen.lines().collect();
        assert_eq!(rows.len(), 24, "{screen}");
        assert!(
            rows[0].contains("cutover") && rows[0].contains("REPLAY"),
            "{screen}"
        );
        for needle in [
            "Replication lag",
            "Slots",
            "Row counts",
            "orders",
            "Pod rollout",
            "quit",
        ] {
            assert!(
                screen.contains(needle),
                "TERM={term}: no {needle:?} in\n{screen}"
            );
        }
        assert!(rows[23].contains('='), "the paused timeline: {}", rows[23]);
        // The same screen with glyphs has them where this one has ASCII.
        drop(t);
    }
    let glyphs = paused_replay("glyphs", 80, 24, "TERM=xterm-256color", "");
    let screen = glyphs.capture();
    assert!(screen.chars().any(box_drawing), "{screen}");
}

#[test]
fn a_resize_from_200x50_to_80x24_mid_session_draws_the_small_screen_exactly() {
    let big = paused_replay("resize", 200, 50, "TERM=xterm-256color", "");
    let before = big.capture();
    assert!(
        before.lines().any(|l| l.chars().count() > 160),
        "side by side at 200 columns:\n{before}"
    );
    let status = Command::new("tmux")
        .args(["resize-window", "-t", &big.name, "-x", "80", "-y", "24"])
        .status()
        .unwrap();
    assert!(status.success());
    let after = settle(&big);
    // What a console started at 80×24 at the same moment draws: nothing
    // of the wide screen is left behind.
    let small = paused_replay("fresh80", 80, 24, "TERM=xterm-256color", "");
    let fresh = small.capture();
    assert_eq!(after, fresh, "after the resize:\n{after}\nfresh:\n{fresh}");
    assert_eq!(after.lines().count(), 24);
    assert_ne!(before, after);
}

/// SGR parameters of every `ESC [ … m` in `bytes`.
fn sgr_params(bytes: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(bytes);
    let mut out = vec![];
    let mut rest = &text[..];
    while let Some(i) = rest.find("\x1b[") {
        rest = &rest[i + 2..];
        let end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == ';' || c == ':' || c == '?'))
            .unwrap_or(rest.len());
        if rest[end..].starts_with('m') {
            out.push(rest[..end].to_string());
        }
        rest = &rest[end..];
    }
    out
}

/// Whether an SGR sets a colour (not the terminal's default back).
fn sets_colour(params: &str) -> bool {
    let p: Vec<&str> = params.split(';').collect();
    p.iter().any(|n| {
        matches!(
            n.parse::<u16>(),
            Ok(30..=37 | 38 | 40..=47 | 48 | 90..=97 | 100..=107)
        )
    })
}

#[test]
fn no_color_sends_no_colour_but_keeps_reverse_and_bold() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = dir.path().join("tty.bytes");
    // The program starts a moment after the pane, once its output is piped.
    let t = Tmux::start(
        "nocolor",
        120,
        40,
        &format!("sleep 1; NO_COLOR=1 TERM=xterm-256color {BIN} replay {EXAMPLE}"),
    );
    let status = Command::new("tmux")
        .args(["pipe-pane", "-o", "-t", &t.name])
        .arg(format!("cat > {}", bytes.display()))
        .status()
        .unwrap();
    assert!(status.success());
    t.wait_for("the replay", Duration::from_secs(20), |s| {
        s.contains("quit")
    });
    // The help is drawn over the panes; seeking moves them.
    t.keys("End");
    settle(&t);
    t.keys("?");
    settle(&t);
    t.keys("Escape");
    t.keys("q");
    t.wait_for("the end", Duration::from_secs(10), |s| s.contains("EXITED"));
    let written = read(&bytes);
    let sgr = sgr_params(&written);
    assert!(sgr.len() > 10, "too few attributes seen: {sgr:?}");
    let coloured: Vec<&String> = sgr.iter().filter(|p| sets_colour(p)).collect();
    assert!(coloured.is_empty(), "colour under NO_COLOR: {coloured:?}");
    let has = |n: &str| sgr.iter().any(|p| p.split(';').any(|x| x == n));
    assert!(has("7"), "no reverse video: {sgr:?}");
    assert!(has("1"), "no bold: {sgr:?}");
}

fn read(p: &Path) -> Vec<u8> {
    std::fs::read(p).unwrap_or_default()
}
