//! The real binary in a real terminal (tmux), and a lab made by the real
//! `cutover lab up` (clusters, Kubernetes simulator and app pods) for it.

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_cutover");

pub struct Tmux {
    pub name: String,
}

impl Tmux {
    pub fn start(name: &str, cols: u16, rows: u16, command: &str) -> Tmux {
        let name = format!("{name}-{}", std::process::id());
        let _ = Command::new("tmux")
            .args(["kill-session", "-t", &name])
            .status();
        // Keep the pane open after the program exits so its last output can be read.
        let shell = format!("{command}; echo \"EXITED:$?\"; sleep 600");
        let status = Command::new("tmux")
            .args([
                "new-session",
                "-d",
                "-s",
                &name,
                "-x",
                &cols.to_string(),
                "-y",
                &rows.to_string(),
            ])
            .arg(shell)
            .env("TERM", "xterm-256color")
            .status()
            .expect("tmux must be installed");
        assert!(status.success(), "tmux new-session failed");
        Tmux { name }
    }

    pub fn capture(&self) -> String {
        let out = Command::new("tmux")
            .args(["capture-pane", "-p", "-t", &self.name])
            .output()
            .expect("capture-pane");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn display(&self, format: &str) -> String {
        let out = Command::new("tmux")
            .args(["display-message", "-p", "-t", &self.name, format])
            .output()
            .expect("display-message");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    pub fn keys(&self, keys: &str) {
        let status = Command::new("tmux")
            .args(["send-keys", "-t", &self.name, keys])
            .status()
            .expect("send-keys");
        assert!(status.success());
    }

    /// Waits for the screen to satisfy `pred`; on timeout fails showing the screen.
    pub fn wait_for(&self, what: &str, timeout: Duration, pred: impl Fn(&str) -> bool) -> String {
        let start = Instant::now();
        loop {
            let screen = self.capture();
            if pred(&screen) {
                return screen;
            }
            if start.elapsed() > timeout {
                panic!("timed out waiting for {what}; screen:\n{screen}");
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["kill-session", "-t", &self.name])
            .status();
    }
}

pub fn lab(args: &[&str]) -> String {
    let out = Command::new(BIN)
        .arg("lab")
        .args(args)
        .output()
        .expect("run cutover lab");
    assert!(
        out.status.success(),
        "cutover lab {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub struct LabDir(pub PathBuf);

impl Drop for LabDir {
    fn drop(&mut self) {
        let _ = Command::new(BIN)
            .args(["lab", "down", "--dir"])
            .arg(&self.0)
            .status();
    }
}

/// A lab of `rows` rows in a fresh temp dir, torn down on drop, and where the
/// console's sessions go.
pub struct LabRun {
    pub _lab: LabDir,
    pub tmp: tempfile::TempDir,
    pub config: PathBuf,
    pub sessions: PathBuf,
}

impl LabRun {
    pub fn up(prefix: &str, rows: &str) -> LabRun {
        Self::up_with(prefix, rows, &[])
    }

    /// [`LabRun::up`] with more `lab up` arguments (`--pooler`).
    pub fn up_with(prefix: &str, rows: &str, args: &[&str]) -> LabRun {
        let tmp = tempfile::Builder::new().prefix(prefix).tempdir().unwrap();
        let labdir = tmp.path().join("lab");
        let lab_guard = LabDir(labdir.clone());
        let mut all = vec!["up", "--dir", labdir.to_str().unwrap(), "--rows", rows];
        all.extend_from_slice(args);
        let config = PathBuf::from(lab(&all).trim());
        assert!(config.exists(), "lab up printed {config:?}");
        let sessions = tmp.path().join("sessions");
        LabRun {
            _lab: lab_guard,
            tmp,
            config,
            sessions,
        }
    }

    pub fn dir(&self) -> PathBuf {
        self.tmp.path().join("lab")
    }

    /// The console on this lab in a tmux session of the given size.
    pub fn console(&self, name: &str, cols: u16, rows: u16) -> Tmux {
        self.console_with(name, cols, rows, "")
    }

    /// The console's `--script` with its session log here: what it said.
    pub fn script(&self, keys: &str) -> std::process::Output {
        self.script_command(keys).output().unwrap()
    }

    /// The `--script` command, to be started by the caller.
    pub fn script_command(&self, keys: &str) -> Command {
        let mut cmd = Command::new(BIN);
        cmd.arg("-c")
            .arg(&self.config)
            .arg("--session-dir")
            .arg(&self.sessions)
            .args(["--script", keys]);
        cmd
    }

    /// The console with more arguments (`--metrics 127.0.0.1:PORT`).
    pub fn console_with(&self, name: &str, cols: u16, rows: u16, args: &str) -> Tmux {
        Tmux::start(
            name,
            cols,
            rows,
            &format!(
                "{BIN} -c {} --session-dir {} {args}",
                self.config.display(),
                self.sessions.display()
            ),
        )
    }
}

/// `psql -XAtqc` on the PATH: the trimmed output, or the test fails with
/// psql's error. A statement too long for an argument (a list of every id
/// the app wrote) goes through stdin, as one script stopping at its first
/// error.
pub fn psql(conninfo: &str, sql: &str) -> String {
    const LONG: usize = 64 * 1024;
    let out = if sql.len() < LONG {
        Command::new("psql")
            .args([conninfo, "-XAtqc", sql])
            .output()
            .expect("psql")
    } else {
        use std::io::Write;
        let mut child = Command::new("psql")
            .args([conninfo, "-XAtq", "-v", "ON_ERROR_STOP=1", "-f", "-"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("psql");
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(sql.as_bytes()).expect("psql stdin");
        drop(stdin);
        child.wait_with_output().expect("psql")
    };
    assert!(
        out.status.success(),
        "psql failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The `dsn` of a cutover.toml's `[source]` or `[target]`.
pub fn dsn(config: &std::path::Path, section: &str) -> String {
    let text = std::fs::read_to_string(config).unwrap();
    let value: toml::Value = text.parse().unwrap();
    value[section]["dsn"].as_str().unwrap().to_string()
}

/// A port free on loopback now (for a server the test starts next).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `GET /metrics` on loopback: the OpenMetrics text, by plain HTTP/1.1.
pub fn scrape(port: u16) -> String {
    use std::io::{Read, Write};
    let mut c = std::net::TcpStream::connect(("127.0.0.1", port)).expect("the metrics endpoint");
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    c.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut out = String::new();
    c.read_to_string(&mut out).unwrap();
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    out.split_once("\r\n\r\n")
        .map_or(out.clone(), |(_, b)| b.to_string())
}

/// One sample's value from a scrape: the line whose name and labels start
/// with `series` (`cutover_phase{`, `cutover_writes_frozen `).
pub fn metric<'a>(text: &'a str, series: &str) -> Option<&'a str> {
    text.lines().find(|l| l.starts_with(series)).map(str::trim)
}

/// kubectl against the lab's Kubernetes simulator; its stdout.
pub fn kubectl(labdir: &std::path::Path, args: &[&str]) -> String {
    let out = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(labdir.join("kubeconfig"))
        .args(args)
        .output()
        .expect("kubectl must be installed");
    assert!(
        out.status.success(),
        "kubectl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `cutover lab audit`: every write the app acknowledged is in the
/// database its config points at now; what it printed.
pub fn audit(labdir: &std::path::Path) -> String {
    let audit = Command::new(BIN)
        .args(["lab", "audit", "--dir"])
        .arg(labdir)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&audit.stdout).to_string();
    assert_eq!(
        audit.status.code(),
        Some(0),
        "{said}{}",
        String::from_utf8_lossy(&audit.stderr)
    );
    assert!(said.contains("nothing missing"), "{said}");
    said
}

/// A session log's GitOps wait: the log's text and events, the
/// `await_config` step's start and the event that ended it as done (panics
/// with the log when the wait did not end as done). The time it was seen is
/// the done event's `at`.
pub struct AwaitedConfig {
    pub text: String,
    pub events: Vec<serde_json::Value>,
    pub started: serde_json::Value,
    pub done: serde_json::Value,
}

impl AwaitedConfig {
    pub fn read(log: &std::path::Path) -> AwaitedConfig {
        let text = std::fs::read_to_string(log).unwrap();
        let events: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let started = events
            .iter()
            .find(|e| e["type"] == "step_started" && e["step"]["step"] == "await_config")
            .unwrap_or_else(|| panic!("no await_config step in {}:\n{text}", log.display()))
            .clone();
        let done = events
            .iter()
            .find(|e| {
                e["type"] == "step_done"
                    && e["id"] == started["id"]
                    && e["index"] == started["index"]
            })
            .unwrap_or_else(|| panic!("the wait did not end as done:\n{text}"))
            .clone();
        AwaitedConfig {
            text,
            events,
            started,
            done,
        }
    }

    /// Milliseconds from `applied` to the moment the console saw the change.
    pub fn late_ms(&self, applied: chrono::DateTime<chrono::Utc>) -> i64 {
        let at: chrono::DateTime<chrono::Utc> = self.done["at"].as_str().unwrap().parse().unwrap();
        (at - applied).num_milliseconds()
    }
}

/// Whether PgBouncer is here for a pooler test. Without it the test says
/// so and passes — the README's `cargo test` runs on a machine without it —
/// unless `CUTOVER_REQUIRE_PGBOUNCER` is set (CI installs it and sets it).
pub fn pgbouncer_here() -> bool {
    match cutover::lab::pooler::find_binary() {
        Ok(_) => true,
        Err(e) if std::env::var_os("CUTOVER_REQUIRE_PGBOUNCER").is_some() => {
            panic!("CUTOVER_REQUIRE_PGBOUNCER is set: {e:#}")
        }
        Err(e) => {
            eprintln!("note: skipping a pooler test: {e:#}");
            false
        }
    }
}
