//! The write-freeze window, on the lab with its app pods writing 500/s
//! (`CUTOVER_BENCH_ROWS`, default "1000000"; several sizes comma-separated,
//! e.g. "1000000,10000000", to show the window does not grow with the data).
//!
//! For each size, two fresh labs side by side in one run:
//! - the console, headless (`cutover --script`): the default runbook's plans
//!   through the same executor, every guard enforced, no UI;
//! - the baseline: `benches/baseline.sh`, the hands-on lab's hints as a plain
//!   shell script (read-only on the source, wait for lag 0, compare counts,
//!   setval, patch the ConfigMap, rollout restart), replication set up first.
//!
//! Figures as the app pods measure them (`cutover lab status --json`): the
//! window from the last write acknowledged on the source to the first on the
//! target, the write-failure window, failed writes; lost writes from `cutover
//! lab audit` (must be 0); and, for the console, the share of the window each
//! checkpoint took (from its session log). A plain main (harness = false):
//! one measurement takes minutes.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_cutover");
const SCRIPT: &str = "F? D P U W V Z C A E S R T";

fn sizes() -> Vec<u64> {
    std::env::var("CUTOVER_BENCH_ROWS")
        .unwrap_or_else(|_| "1000000".into())
        .split(',')
        .filter_map(|v| v.trim().replace('_', "").parse().ok())
        .collect()
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().expect("runs");
    assert!(
        out.status.success(),
        "{cmd:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn toml_at(config: &Path) -> toml::Value {
    std::fs::read_to_string(config).unwrap().parse().unwrap()
}

/// psql beside the lab's newest server binaries (the lab README names it).
fn psql(lab: &Path) -> PathBuf {
    let readme = std::fs::read_to_string(lab.join("README.txt")).unwrap_or_default();
    readme
        .split_whitespace()
        .find(|w| w.ends_with("/psql"))
        .map(PathBuf::from)
        .unwrap_or_else(|| "psql".into())
}

struct Lab {
    dir: PathBuf,
    config: PathBuf,
}

impl Lab {
    fn up(root: &Path, name: &str, rows: u64) -> Lab {
        let dir = root.join(name);
        let started = Instant::now();
        let out = run(Command::new(BIN)
            .args(["lab", "up", "--dir"])
            .arg(&dir)
            .args(["--rows", &rows.to_string()]));
        let config = PathBuf::from(out.lines().last().unwrap().trim());
        eprintln!(
            "  {name}: lab of {rows} rows up in {:.0} s",
            started.elapsed().as_secs_f64()
        );
        let lab = Lab { dir, config };
        // The lab's one defect the preflight names.
        lab.psql("source", "ALTER TABLE public.events REPLICA IDENTITY FULL");
        lab
    }

    fn dsn(&self, side: &str) -> String {
        toml_at(&self.config)[side]["dsn"]
            .as_str()
            .unwrap()
            .to_string()
    }

    fn psql(&self, side: &str, sql: &str) -> String {
        run(Command::new(psql(&self.dir))
            .args(["-XAtq", "-v", "ON_ERROR_STOP=1"])
            .arg(self.dsn(side))
            .args(["-c", sql]))
        .trim()
        .to_string()
    }

    /// The app's figures: (window ms, failure window ms, failed writes).
    fn witness(&self) -> (f64, f64, u64) {
        let out = run(Command::new(BIN)
            .args(["lab", "status", "--json", "--dir"])
            .arg(&self.dir));
        let v: Value = serde_json::from_str(&out).unwrap();
        let t = &v["app"]["total"];
        (
            t["source_to_target"]["ms"].as_f64().unwrap_or(f64::NAN),
            t["failure_window"]["ms"].as_f64().unwrap_or(f64::NAN),
            t["failed"].as_u64().unwrap_or(0),
        )
    }

    /// Acknowledged writes missing from the database the app uses now.
    fn lost(&self) -> String {
        let out = Command::new(BIN)
            .args(["lab", "audit", "--dir"])
            .arg(&self.dir)
            .output()
            .unwrap();
        match out.status.code() {
            Some(0) => "0".into(),
            _ => format!(
                "MISSING: {}",
                String::from_utf8_lossy(&out.stdout)
                    .lines()
                    .last()
                    .unwrap_or("?")
            ),
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = Command::new(BIN)
            .args(["lab", "down", "--dir"])
            .arg(&self.dir)
            .stdout(Stdio::null())
            .status();
    }
}

fn at(v: &Value) -> DateTime<Utc> {
    v["at"].as_str().unwrap().parse().unwrap()
}

/// Each checkpoint's run in the window (start, end), from the session log.
fn runs(log: &Path) -> Vec<(String, DateTime<Utc>, DateTime<Utc>)> {
    let mut open: Vec<(u64, String, DateTime<Utc>)> = Vec::new();
    let mut out = Vec::new();
    for line in std::fs::read_to_string(log).unwrap().lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        match v["type"].as_str() {
            Some("step_started") if v["index"] == 0 => open.push((
                v["id"].as_u64().unwrap(),
                v["step"]["step"].as_str().unwrap_or("?").to_string(),
                at(&v),
            )),
            Some("run_finished") => {
                if let Some(i) = open
                    .iter()
                    .position(|(id, ..)| Some(*id) == v["id"].as_u64())
                {
                    let (_, step, start) = open.remove(i);
                    out.push((step, start, at(&v)));
                }
            }
            _ => {}
        }
    }
    out
}

/// The window's checkpoint a run is, by its first step.
fn checkpoint(first_step: &str) -> &str {
    match first_step {
        "freeze_writes" => "Z freeze + proof",
        "wait_replicated" => "C lag 0, counts, sums",
        "advance_sequences" => "A sequences",
        "sql" => "E reverse replication",
        "patch_config" => "S switch",
        "restart" => "R restart",
        other => other,
    }
}

fn console(root: &Path, rows: u64) -> (f64, f64, u64, String, Vec<(String, f64)>) {
    let lab = Lab::up(root, "console", rows);
    let sessions = root.join("sessions");
    let started = Instant::now();
    run(Command::new(BIN)
        .arg("-c")
        .arg(&lab.config)
        .arg("--session-dir")
        .arg(&sessions)
        .args(["--script", SCRIPT]));
    eprintln!(
        "  console: the runbook ran in {:.0} s",
        started.elapsed().as_secs_f64()
    );
    let (window, failing, failed) = lab.witness();
    let lost = lab.lost();
    let log = std::fs::read_dir(&sessions)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .unwrap();
    // The window's steps, freeze on: each run's share of it.
    let status: Value = serde_json::from_str(&run(Command::new(BIN)
        .args(["lab", "status", "--json", "--dir"])
        .arg(&lab.dir)))
    .unwrap();
    let t = &status["app"]["total"]["source_to_target"];
    let (from, to): (DateTime<Utc>, DateTime<Utc>) = (
        t["from"].as_str().unwrap().parse().unwrap(),
        t["to"].as_str().unwrap().parse().unwrap(),
    );
    let total = (to - from).num_milliseconds().max(1) as f64;
    let mut shares = Vec::new();
    let mut inside = 0.0;
    for (step, start, end) in runs(&log) {
        let (s, e) = (start.max(from), end.min(to));
        if e > s {
            let ms = (e - s).num_milliseconds() as f64;
            inside += ms;
            shares.push((checkpoint(&step).to_string(), ms / total));
        }
    }
    shares.push((
        "between checkpoints".into(),
        (total - inside).max(0.0) / total,
    ));
    (window, failing, failed, lost, shares)
}

fn baseline(root: &Path, rows: u64) -> (f64, f64, u64, String) {
    let lab = Lab::up(root, "baseline", rows);
    // Replication by hand, as the lab README says, then the initial sync.
    run(Command::new(BIN)
        .arg("-c")
        .arg(&lab.config)
        .arg("--session-dir")
        .arg(root.join("baseline-sessions"))
        .args(["--script", "F? D P U W"]));
    let k = &toml_at(&lab.config)["kubernetes"];
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/baseline.sh");
    let started = Instant::now();
    run(Command::new("bash")
        .arg(script)
        .env("PSQL", psql(&lab.dir))
        .env("SRC", lab.dsn("source"))
        .env("TGT", lab.dsn("target"))
        .env(
            "KUBECONFIG",
            lab.dir.join(k["kubeconfig"].as_str().unwrap()),
        )
        .env("KUBE_CONTEXT", k["context"].as_str().unwrap())
        .env("NAMESPACE", k["namespace"].as_str().unwrap())
        .env(
            "NEW_URL_FILE",
            lab.dir.join(k["switch_to_file"].as_str().unwrap()),
        ));
    eprintln!(
        "  baseline: the script ran in {:.0} s",
        started.elapsed().as_secs_f64()
    );
    // Let the app's first writes on the target land in its journal.
    std::thread::sleep(Duration::from_secs(3));
    let (window, failing, failed) = lab.witness();
    (window, failing, failed, lab.lost())
}

fn main() {
    // `cargo bench` passes --bench; a filter that is not ours skips the run.
    if std::env::args()
        .skip(1)
        .any(|a| !a.starts_with('-') && !"cutover".contains(&a))
    {
        return;
    }
    for rows in sizes() {
        let root = tempfile::Builder::new()
            .prefix("cutover-bench")
            .tempdir()
            .unwrap();
        eprintln!("{rows} rows:");
        let (w, f, n, lost, shares) = console(root.path(), rows);
        let (bw, bf, bn, blost) = baseline(root.path(), rows);
        println!("\ncutover at {rows} rows, app writing 500/s");
        println!(
            "  {:<10} {:>12} {:>16} {:>8} {:>6}",
            "", "window", "failure window", "failed", "lost"
        );
        println!(
            "  {:<10} {:>10.2} s {:>14.2} s {:>8} {:>6}",
            "console",
            w / 1000.0,
            f / 1000.0,
            n,
            lost
        );
        println!(
            "  {:<10} {:>10.2} s {:>14.2} s {:>8} {:>6}",
            "baseline",
            bw / 1000.0,
            bf / 1000.0,
            bn,
            blost
        );
        println!("  console/baseline window: {:.2}×", w / bw);
        println!("  share of the console's window:");
        for (step, share) in shares {
            println!("    {step:<22} {:>5.1} %", share * 100.0);
        }
    }
}
