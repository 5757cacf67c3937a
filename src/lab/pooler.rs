//! The lab's connection pooler (`cutover lab up --pooler`): two PgBouncer
//! instances between the app pods and the database, as a Deployment of
//! PgBouncer with two replicas would be. Transaction pooling, so `PAUSE`
//! waits for running transactions only and holds every new one.
//!
//! Each instance has its own ini (port, log, pid file); both `%include` one
//! `databases.ini` holding the `[databases]` entry the app connects
//! through — the file the pooler switch rewrites, as a ConfigMap mounted
//! into every replica would be. The admin console (`pgbouncer` database)
//! admits [`ADMIN_USER`].

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};

use super::cluster::RunAs;

/// The pooler's directory in the lab.
pub const POOLER_DIR: &str = "pooler";
/// The `[databases]` entries, included by every instance.
pub const DATABASES_FILE: &str = "databases.ini";
/// Instances (replicas of the pooler's Deployment).
pub const INSTANCES: usize = 2;
/// The Service (and pod label `app=`) the instances are found behind.
pub const SERVICE: &str = "pgbouncer";
/// The container port's name the Service targets.
pub const PORT_NAME: &str = "pgbouncer";
/// Who may use the admin console.
pub const ADMIN_USER: &str = "pgbouncer";

/// What `lab up --pooler` started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolerState {
    /// Each instance's port on 127.0.0.1.
    pub ports: Vec<u16>,
}

impl PoolerState {
    /// Instance `i`'s name, as its pod is called.
    pub fn name(i: usize) -> String {
        format!("{SERVICE}-{i}")
    }

    /// How the app reaches the database through the pooler: every
    /// instance, one chosen at random per connection, as a Service would.
    pub fn app_url(&self, dbname: &str, user: &str) -> String {
        let hosts = vec!["127.0.0.1"; self.ports.len()].join(",");
        let ports: Vec<String> = self.ports.iter().map(u16::to_string).collect();
        format!(
            "host={hosts} port={} dbname={dbname} user={user} load_balance_hosts=random",
            ports.join(",")
        )
    }
}

/// The `[databases]` line that sends `entry` to the server at `port`.
pub fn entry_line(entry: &str, port: u16, dbname: &str) -> String {
    format!("{entry} = host=127.0.0.1 port={port} dbname={dbname}")
}

/// PgBouncer's binary: on the PATH, or where Debian's package puts it.
pub fn find_binary() -> Result<PathBuf> {
    let on_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default();
    on_path
        .into_iter()
        .chain([PathBuf::from("/usr/sbin")])
        .map(|d| d.join("pgbouncer"))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            anyhow!(
                "--pooler needs PgBouncer, which is not installed: apt-get install pgbouncer \
                 (or put a pgbouncer binary on the PATH)"
            )
        })
}

fn instance_ini(dir: &Path, i: usize, port: u16) -> String {
    let d = dir.display();
    format!(
        ";; Written by `cutover lab up --pooler`: instance {i} of the lab's pooler.\n\
         [databases]\n\
         %include {d}/{DATABASES_FILE}\n\
         \n\
         [pgbouncer]\n\
         listen_addr = 127.0.0.1\n\
         listen_port = {port}\n\
         unix_socket_dir =\n\
         auth_type = trust\n\
         auth_file = {d}/userlist.txt\n\
         admin_users = {ADMIN_USER}\n\
         pool_mode = transaction\n\
         max_client_conn = 500\n\
         default_pool_size = 10\n\
         ;; Clients held by a PAUSE wait this long before PgBouncer gives up on them.\n\
         query_wait_timeout = 120\n\
         server_reset_query =\n\
         ignore_startup_parameters = extra_float_digits,options\n\
         logfile = {d}/{name}.log\n\
         pidfile = {d}/{name}.pid\n",
        name = PoolerState::name(i),
    )
}

/// Writes the pooler's files for a database at `db_port` (entry and
/// database `dbname`) and starts `INSTANCES` instances on free ports.
pub fn up(lab_dir: &Path, db_port: u16, dbname: &str, app_user: &str) -> Result<PoolerState> {
    let bin = find_binary()?;
    let dir = lab_dir.join(POOLER_DIR);
    fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let run_as = RunAs::detect()?;
    let databases = dir.join(DATABASES_FILE);
    if !databases.exists() {
        fs::write(
            &databases,
            format!(
                ";; The [databases] entries of every instance of the lab's pooler.\n{}\n",
                entry_line(dbname, db_port, dbname)
            ),
        )
        .with_context(|| format!("writing {}", databases.display()))?;
    }
    fs::write(
        dir.join("userlist.txt"),
        format!("\"{app_user}\" \"\"\n\"{ADMIN_USER}\" \"\"\n\"postgres\" \"\"\n"),
    )?;
    let mut ports = Vec::new();
    for i in 0..INSTANCES {
        let port = super::cluster::pick_port()?;
        let ini = dir.join(format!("{}.ini", PoolerState::name(i)));
        fs::write(&ini, instance_ini(&dir, i, port))
            .with_context(|| format!("writing {}", ini.display()))?;
        ports.push(port);
    }
    if let Some(r) = &run_as {
        r.chown(&dir)?;
        for e in fs::read_dir(&dir)? {
            r.chown(&e?.path())?;
        }
    }
    let state = PoolerState { ports };
    start(&bin, &dir, &state, run_as.as_ref())?;
    Ok(state)
}

/// Starts every instance that is not running (a lab brought up again).
pub fn ensure_running(lab_dir: &Path, state: &PoolerState) -> Result<()> {
    let bin = find_binary()?;
    start(
        &bin,
        &lab_dir.join(POOLER_DIR),
        state,
        RunAs::detect()?.as_ref(),
    )
}

fn start(bin: &Path, dir: &Path, state: &PoolerState, run_as: Option<&RunAs>) -> Result<()> {
    for (i, port) in state.ports.iter().enumerate() {
        let name = PoolerState::name(i);
        if pid(dir, i).is_some_and(super::process_lives) {
            continue;
        }
        let mut cmd = std::process::Command::new(bin);
        cmd.arg("-d");
        if let Some(r) = run_as {
            use std::os::unix::process::CommandExt;
            cmd.uid(r.uid).gid(r.gid);
        }
        let out = cmd
            .arg(dir.join(format!("{name}.ini")))
            .output()
            .with_context(|| format!("starting {}", bin.display()))?;
        if !out.status.success() {
            bail!(
                "PgBouncer {name} did not start: {}{}",
                String::from_utf8_lossy(&out.stderr).trim(),
                log_tail(dir, &name)
            );
        }
        wait_listening(*port, &name, dir)?;
    }
    Ok(())
}

fn log_tail(dir: &Path, name: &str) -> String {
    let log = fs::read_to_string(dir.join(format!("{name}.log"))).unwrap_or_default();
    let tail: Vec<&str> = log.lines().rev().take(5).collect();
    if tail.is_empty() {
        String::new()
    } else {
        format!(
            "; its log ends: {}",
            tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
        )
    }
}

fn wait_listening(port: u16, name: &str, dir: &Path) -> Result<()> {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(10) {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    bail!(
        "PgBouncer {name} did not listen on 127.0.0.1:{port} within 10 s{}",
        log_tail(dir, name)
    )
}

fn pid(dir: &Path, i: usize) -> Option<u32> {
    fs::read_to_string(dir.join(format!("{}.pid", PoolerState::name(i))))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Stops every instance (SIGTERM, then SIGKILL after 5 s).
pub fn down(lab_dir: &Path, state: &PoolerState) {
    let dir = lab_dir.join(POOLER_DIR);
    for i in 0..state.ports.len() {
        if let Some(p) = pid(&dir, i) {
            stop_process(p);
        }
    }
}

/// SIGTERM to a PgBouncer (only if the pid still is one), SIGKILL after 5 s.
fn stop_process(pid: u32) {
    use nix::sys::signal::{kill, Signal};
    use nix::unistd::Pid;
    let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    if !String::from_utf8_lossy(&cmdline).contains("pgbouncer") {
        return;
    }
    let p = Pid::from_raw(pid as i32);
    if kill(p, Signal::SIGTERM).is_err() {
        return;
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline && super::process_lives(pid) {
        std::thread::sleep(Duration::from_millis(50));
    }
    if super::process_lives(pid) {
        let _ = kill(p, Signal::SIGKILL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_app_reaches_every_instance_and_the_entry_names_the_server() {
        let s = PoolerState {
            ports: vec![6432, 6433],
        };
        assert_eq!(
            s.app_url("app", "app"),
            "host=127.0.0.1,127.0.0.1 port=6432,6433 dbname=app user=app load_balance_hosts=random"
        );
        assert_eq!(
            entry_line("app", 5433, "app"),
            "app = host=127.0.0.1 port=5433 dbname=app"
        );
        let ini = instance_ini(Path::new("/lab/pooler"), 1, 6433);
        assert!(
            ini.contains("%include /lab/pooler/databases.ini\n"),
            "{ini}"
        );
        assert!(ini.contains("listen_port = 6433\n"));
        assert!(ini.contains("pool_mode = transaction\n"));
        assert!(ini.contains("pidfile = /lab/pooler/pgbouncer-1.pid\n"));
    }
}
