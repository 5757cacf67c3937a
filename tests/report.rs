//! The HTML report of a recorded lab cutover, opened in a real browser:
//! headless Chromium draws it to a PNG and must print no console error.
//! Without Chromium the browser half is skipped with a note, unless
//! `CUTOVER_REQUIRE_CHROMIUM=1` (CI installs it and sets that).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cutover::report::{self, Format};

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sessions/v0-full-runbook.jsonl")
}

/// `chromium` or `chromium-browser` on PATH, or Debian's /usr/bin/chromium.
fn chromium() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        for name in ["chromium", "chromium-browser"] {
            let p = dir.join(name);
            if p.is_file() {
                return Some(p);
            }
        }
    }
    Some(PathBuf::from("/usr/bin/chromium")).filter(|p| p.is_file())
}

/// Every `points="…"` of a polyline of `class` in `html`, as coordinate pairs.
fn polylines(html: &str, class: &str) -> Vec<Vec<(f64, f64)>> {
    let open = format!("<polyline class=\"series {class}\" points=\"");
    html.split(&open)
        .skip(1)
        .map(|rest| {
            let points = &rest[..rest.find('"').unwrap()];
            points
                .split_whitespace()
                .map(|pair| {
                    let (x, y) = pair.split_once(',').unwrap();
                    (x.parse().unwrap(), y.parse().unwrap())
                })
                .collect()
        })
        .collect()
}

/// Runs Chromium headless on `html` at `width`×`height`; the PNG's path and stderr.
fn screenshot(browser: &Path, html: &Path, out: &Path, width: u32, height: u32) -> String {
    let profile = tempfile::tempdir().unwrap();
    let mut child = Command::new(browser)
        .args([
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--hide-scrollbars",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("--screenshot={}", out.display()))
        .arg(format!("--window-size={width},{height}"))
        .arg(format!("file://{}", html.display()))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting chromium");
    // Chromium reads its pipes' ends only when it exits: drain them meanwhile.
    let stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut { stderr }, &mut s);
        s
    });
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > Duration::from_secs(90) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium did not finish within 90 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let stderr = reader.join().unwrap();
    assert!(status.success(), "chromium failed ({status}):\n{stderr}");
    stderr
}

/// A PNG's width and height, from its IHDR chunk.
fn png_size(png: &[u8]) -> (u32, u32) {
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "not a PNG");
    assert_eq!(&png[12..16], b"IHDR");
    let be = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
    (be(&png[16..20]), be(&png[20..24]))
}

#[test]
fn html_report_draws_in_chromium_without_console_errors() {
    let dir = tempfile::tempdir().unwrap();
    let html_path = dir.path().join("report/cutover-report.html");
    report::write(&fixture(), Format::Html, &html_path).unwrap();
    let html = std::fs::read_to_string(&html_path).unwrap();

    // One self-contained file: no script, nothing fetched.
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(!html.contains("<script") && !html.contains("<link") && !html.contains("url("));
    assert!(html.contains("<style>") && html.contains("@media print"));
    // The charts, each with a line drawn from the log's samples.
    for id in ["chart-lag", "chart-writes", "chart-rollout"] {
        assert!(
            html.contains(&format!("<svg id=\"{id}\" class=\"chart\"")),
            "{id}"
        );
    }
    let lag = polylines(&html, "lag");
    assert!(lag.iter().map(Vec::len).sum::<usize>() >= 5, "{lag:?}");
    for class in ["w-source", "w-target"] {
        let lines = polylines(&html, class);
        assert!(lines.iter().any(|l| l.len() >= 10), "{class}: {lines:?}");
        // Inside the chart's box.
        for (x, y) in lines.iter().flatten() {
            assert!(
                (0.0..=880.0).contains(x) && (0.0..=300.0).contains(y),
                "{x},{y}"
            );
        }
    }
    assert!(html.contains("<path class=\"series step ready s0\" d=\"M"));
    // Every checkpoint run is marked on the lag chart with its key.
    assert_eq!(html.matches("<text class=\"mark-label\"").count(), 14);
    assert!(html.contains("<rect class=\"freeze\""));

    let Some(browser) = chromium() else {
        if std::env::var("CUTOVER_REQUIRE_CHROMIUM").as_deref() == Ok("1") {
            panic!(
                "CUTOVER_REQUIRE_CHROMIUM=1 but no chromium: install it (apt-get install chromium)"
            );
        }
        eprintln!(
            "note: no chromium (chromium, chromium-browser on PATH, /usr/bin/chromium): the HTML \
             report was checked, not drawn; set CUTOVER_REQUIRE_CHROMIUM=1 to make this fail"
        );
        return;
    };
    // Kept where a person can look at them: target/tmp.
    let shots = Path::new(env!("CARGO_TARGET_TMPDIR"));
    for (name, width, height) in [("wide", 1200, 3000), ("narrow", 794, 3000)] {
        let png = shots.join(format!("report-{name}.png"));
        let _ = std::fs::remove_file(&png);
        let stderr = screenshot(&browser, &html_path, &png, width, height);
        let console: Vec<&str> = stderr
            .lines()
            .filter(|l| l.contains(":CONSOLE") || l.contains("Uncaught"))
            .collect();
        assert!(
            console.is_empty(),
            "console errors:\n{}",
            console.join("\n")
        );
        let bytes = std::fs::read(&png).unwrap_or_else(|e| panic!("{}: {e}", png.display()));
        assert_eq!(png_size(&bytes), (width, height), "{name}");
        // A page with text, tables and charts does not compress to nothing.
        assert!(bytes.len() > 50_000, "{name}: {} bytes", bytes.len());
    }
}
