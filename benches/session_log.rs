//! The session log for a long window, measured beside a baseline run on
//! the same file: an eight-hour synthetic session (the example recording's
//! samples, replayed with a moving WAL position, rows written and lag, one
//! sample per side, the lab witness and a tick every second), written
//! through the real writer. Prints:
//!
//! - bytes per hour, every event whole (format 1) and as written (format 2);
//! - time to open it for replay (read, fold, snapshots), to seek to the
//!   middle and to the end, and to export the text report, each beside
//!   `wc -l` and `tail -c 4096` of the same file.
//!
//! `cargo bench --bench session_log` (CUTOVER_BENCH_HOURS=8 by default).

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use chrono::TimeDelta;
use cutover::model::playback::Recording;
use cutover::session::log::{read_log, LogWriter};
use cutover::session::{Event, EventKind};

fn example() -> Vec<Event> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/sessions/example-lab-15-to-18.jsonl"
    );
    cutover::session::log::read_all(Path::new(path)).expect("the example ships in sessions/")
}

fn lsn(n: u64) -> String {
    format!("{:X}/{:X}", n >> 32, n & 0xffff_ffff)
}

/// `hours` of monitoring after the example's start: per second a source
/// and a target sample (moving), the witness and a tick.
fn synthetic(hours: u64) -> Vec<Event> {
    let ex = example();
    let start = ex[0].clone();
    let pick = |f: fn(&EventKind) -> bool| ex.iter().find(|e| f(&e.kind)).cloned();
    let src = pick(|k| matches!(k, EventKind::SourceSampled(_))).expect("a source sample");
    let tgt = pick(|k| matches!(k, EventKind::TargetSampled(_))).expect("a target sample");
    let wit = pick(|k| matches!(k, EventKind::AppWitness(_)));
    let mut out = vec![start.clone()];
    let mut seq = 1;
    let mut wal: u64 = 0x0B00_0000;
    let mut rows: i64 = 1_000_000;
    for s in 0..hours * 3600 {
        let at = start.at + TimeDelta::seconds(s as i64 + 1);
        wal += 40_000 + (s % 7) * 1_000;
        rows += 500;
        let mut push = |kind: EventKind| {
            seq += 1;
            out.push(Event { seq, at, kind });
        };
        if let EventKind::SourceSampled(mut x) = src.kind.clone() {
            x.current_wal_lsn = lsn(wal);
            x.rows_written = Some(rows);
            x.poll_ms = 2.0 + (s % 13) as f64 * 0.37;
            for slot in &mut x.slots {
                slot.lag_bytes = Some(((s * 7919) % 90_000) as i64);
                slot.confirmed_flush_lsn = Some(lsn(wal - 20_000));
                slot.retained_bytes = Some(60_000 + (s % 11) as i64 * 1_000);
            }
            if let Some(t) = x.tables.first_mut() {
                t.estimated_rows = rows / 100;
            }
            push(EventKind::SourceSampled(x));
        }
        if let EventKind::TargetSampled(mut x) = tgt.kind.clone() {
            x.rows_written = Some(rows - 300);
            x.poll_ms = 1.5 + (s % 11) as f64 * 0.29;
            for sub in &mut x.subscriptions {
                sub.received_lsn = Some(lsn(wal - 10_000));
                sub.latest_end_lsn = Some(lsn(wal - 20_000));
                sub.last_msg_age_s = Some((s % 3) as f64 * 0.4);
            }
            push(EventKind::TargetSampled(x));
        }
        if let Some(EventKind::AppWitness(mut w)) = wit.as_ref().map(|e| e.kind.clone()) {
            w.ok_per_sec = 490.0 + (s % 20) as f64;
            push(EventKind::AppWitness(w));
        }
        push(EventKind::Tick);
    }
    out
}

fn time<T>(f: impl FnOnce() -> T) -> (T, f64) {
    let t = Instant::now();
    let v = f();
    (v, t.elapsed().as_secs_f64() * 1000.0)
}

fn shell(cmd: &str, file: &Path) -> f64 {
    let t = Instant::now();
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!("{cmd} '{}' > /dev/null", file.display()))
        .status()
        .expect("sh");
    assert!(out.success());
    t.elapsed().as_secs_f64() * 1000.0
}

/// A real log's bytes per hour, every event whole (format 1) against as written.
fn real_log(path: &Path) {
    let events = cutover::session::log::read_all(path).expect("reading CUTOVER_BENCH_LOG");
    let whole: usize = events
        .iter()
        .map(|e| serde_json::to_string(e).unwrap().len() + 1)
        .sum();
    let written = std::fs::metadata(path).unwrap().len() as f64;
    let secs = match (events.first(), events.last()) {
        (Some(a), Some(b)) => (b.at - a.at).num_milliseconds() as f64 / 1000.0,
        _ => 0.0,
    };
    let per_hour = |b: f64| b / secs.max(1.0) * 3600.0 / 1e6;
    println!(
        "{}: {} events over {secs:.0} s: every event whole {:.2} MB/h; as written {:.2} MB/h ({:.1}× smaller)",
        path.display(),
        events.len(),
        per_hour(whole as f64),
        per_hour(written),
        whole as f64 / written
    );
}

fn main() {
    if let Ok(log) = std::env::var("CUTOVER_BENCH_LOG") {
        real_log(Path::new(&log));
    }
    let hours: u64 = std::env::var("CUTOVER_BENCH_HOURS")
        .ok()
        .and_then(|h| h.parse().ok())
        .unwrap_or(8);
    let events = synthetic(hours);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("session-synthetic.jsonl");
    let mut w = LogWriter::create(&path).unwrap();
    let mut whole = 0usize;
    for e in &events {
        whole += serde_json::to_string(e).unwrap().len() + 1;
        w.append(e).unwrap();
    }
    w.sync().unwrap();
    drop(w);
    let written = std::fs::metadata(&path).unwrap().len() as f64;
    let per_hour = |b: f64| b / hours as f64 / 1e6;
    println!(
        "{hours} h synthetic session, {} events: every event whole {:.2} MB/h; as written {:.2} MB/h ({:.1}× smaller)",
        events.len(),
        per_hour(whole as f64),
        per_hour(written),
        whole as f64 / written
    );

    let wc = shell("wc -l", &path);
    let tail = shell("tail -c 4096", &path);
    // What `cutover replay` does before its first screen: the first lines
    // read and folded, the rest left to a reader thread.
    let (replay, t_first) = time(|| cutover::runtime::watch::Replay::open(&path).unwrap());
    drop(replay);
    let (read, t_read) = time(|| read_log(&path).unwrap());
    let n = read.events.len();
    let (rec, t_index) = time(|| Recording::new(read.events));
    let (_, t_mid) = time(|| rec.model_after(n / 2));
    let (_, t_end) = time(|| rec.model_after(n));
    let (_, t_near) = time(|| rec.model_after(n / 2 + 1500));
    let (report, t_report) =
        time(|| cutover::report::export(&path, cutover::report::Format::Text).unwrap());
    println!("baseline: wc -l {wc:.0} ms, tail -c 4096 {tail:.1} ms");
    println!(
        "open for replay (first screen): {t_first:.1} ms ({:.1}× wc -l); the whole log read in the background: read {t_read:.0} ms + fold with snapshots {t_index:.0} ms = {:.0} ms ({:.1}× wc -l)",
        t_first / wc,
        t_read + t_index,
        (t_read + t_index) / wc
    );
    println!(
        "seek once open: middle {t_mid:.1} ms, end {t_end:.1} ms, 1500 events past the middle {t_near:.1} ms ({:.1}× tail -c)",
        t_mid.max(t_end) / tail
    );
    println!(
        "report export (text, {} bytes): {t_report:.0} ms ({:.1}× wc -l)",
        report.len(),
        t_report / wc
    );
}
