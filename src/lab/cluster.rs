//! Throwaway PostgreSQL clusters on loopback for the lab and the tests.
//!
//! Everything here is blocking (`std::process`): clusters are started from test
//! harnesses that must not depend on a tokio runtime, and from `lab::up`, which
//! moves these calls onto blocking threads.

use std::collections::HashSet;
use std::fs;
use std::io::Write;
use std::net::{Ipv4Addr, TcpListener};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};

use super::pgbin::PgBin;

/// File (inside the data dir) holding the lab's settings; included from
/// postgresql.conf so the stock file stays untouched and diffable.
const LAB_CONF: &str = "cutover_lab.conf";
/// Port lives in its own file so a retry on another port rewrites one line.
const PORT_CONF: &str = "cutover_port.conf";
/// Server log written by `pg_ctl -l`.
pub const LOG_FILE: &str = "postgres.log";
/// How many log lines an error message carries.
const LOG_TAIL_LINES: usize = 15;
/// Attempts at starting on a fresh port when the chosen one got taken.
const START_ATTEMPTS: usize = 5;
/// Unix socket paths are limited to 107 bytes (sun_path); ".s.PGSQL.NNNNN.lock"
/// is appended to the directory.
const MAX_SOCKET_DIR_LEN: usize = 107 - 20;

/// Settings for a 2-core lab box, shared by both clusters.
const COMMON_CONF: &str = "\
listen_addresses = '127.0.0.1'
shared_buffers = 128MB
work_mem = 16MB
maintenance_work_mem = 128MB
max_wal_size = 2GB
max_parallel_workers_per_gather = 1
# Lab only: commits return before their WAL reaches disk, which makes seeding
# and the app's writes fast. fsync stays on, so a crash loses the last few
# milliseconds of commits but never corrupts the cluster. Never do this for data
# you care about.
synchronous_commit = off
fsync = on
log_line_prefix = '%m [%p] %q%u@%d '
log_min_duration_statement = -1
";

/// Extra settings for the source (publisher) cluster.
pub const SOURCE_CONF: &str = "\
wal_level = logical
max_replication_slots = 10
max_wal_senders = 10
shared_preload_libraries = 'pg_stat_statements'
track_io_timing = on
";

/// Extra settings for the target (subscriber) cluster.
pub const TARGET_CONF: &str = "\
wal_level = logical
max_wal_senders = 10
max_logical_replication_workers = 8
max_worker_processes = 16
max_replication_slots = 10
shared_preload_libraries = 'pg_stat_statements'
track_io_timing = on
";

/// OS identity the server processes run as. PostgreSQL refuses to run as root,
/// so when we are root every initdb/pg_ctl/postgres is started as `postgres`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunAs {
    pub uid: u32,
    pub gid: u32,
}

impl RunAs {
    /// `None` when not root (tools run as ourselves).
    pub fn detect() -> Result<Option<RunAs>> {
        if !nix::unistd::geteuid().is_root() {
            return Ok(None);
        }
        let user = nix::unistd::User::from_name("postgres")
            .context("looking up the `postgres` OS user")?
            .ok_or_else(|| {
                anyhow!(
                    "running as root, but PostgreSQL refuses to run as root and there is no \
                     `postgres` OS user to run it as; create one (useradd --system postgres) \
                     or run as an unprivileged user"
                )
            })?;
        Ok(Some(RunAs {
            uid: user.uid.as_raw(),
            gid: user.gid.as_raw(),
        }))
    }

    /// Whether this identity can enter `dir`. Only the primary group counts:
    /// std's `Command::uid` drops supplementary groups when leaving root.
    fn can_traverse(&self, dir: &Path) -> bool {
        use std::os::unix::fs::MetadataExt;
        let Ok(m) = fs::metadata(dir) else {
            return false;
        };
        let mode = m.mode();
        if m.uid() == self.uid {
            mode & 0o100 != 0
        } else if m.gid() == self.gid {
            mode & 0o010 != 0
        } else {
            mode & 0o001 != 0
        }
    }

    /// Fails with a fix-it message when some ancestor of `path` is closed to
    /// this identity (typically a 0700 temp dir owned by root).
    pub fn check_traversable(&self, path: &Path) -> Result<()> {
        for dir in path.ancestors() {
            if dir.as_os_str().is_empty() {
                continue;
            }
            if !self.can_traverse(dir) {
                bail!(
                    "the PostgreSQL servers run as the `postgres` OS user (uid {}), which cannot \
                     enter {}; make it traversable (chmod o+x {}) or choose a lab directory \
                     elsewhere",
                    self.uid,
                    dir.display(),
                    dir.display()
                );
            }
        }
        Ok(())
    }

    pub fn chown(&self, path: &Path) -> Result<()> {
        std::os::unix::fs::chown(path, Some(self.uid), Some(self.gid))
            .with_context(|| format!("chown {} to the postgres user", path.display()))
    }
}

/// One PostgreSQL cluster (data directory + server) listening on 127.0.0.1.
#[derive(Debug, Clone)]
pub struct Cluster {
    /// Short name used in messages ("source", "target").
    pub name: String,
    pub data_dir: PathBuf,
    pub port: u16,
    pub bin: PgBin,
    pub run_as: Option<RunAs>,
}

impl Cluster {
    /// Creates a new cluster in `data_dir` (which must not exist or be empty),
    /// configured with the lab defaults plus `extra_conf` (postgresql.conf
    /// lines, e.g. [`SOURCE_CONF`]). Does not start it.
    pub fn init(bin: &PgBin, data_dir: &Path, name: &str, extra_conf: &str) -> Result<Cluster> {
        let run_as = RunAs::detect()?;
        let data_dir = absolute(data_dir)?;
        if data_dir.exists() {
            let non_empty = fs::read_dir(&data_dir)
                .with_context(|| format!("reading {}", data_dir.display()))?
                .next()
                .is_some();
            if non_empty {
                bail!(
                    "cluster {name}: {} already exists and is not empty; refusing to overwrite it",
                    data_dir.display()
                );
            }
        } else {
            fs::create_dir_all(&data_dir)
                .with_context(|| format!("cluster {name}: creating {}", data_dir.display()))?;
        }
        fs::set_permissions(&data_dir, fs::Permissions::from_mode(0o700))?;
        if let Some(r) = run_as {
            r.chown(&data_dir)?;
            if let Some(parent) = data_dir.parent() {
                r.check_traversable(parent)?;
            }
        }

        let cluster = Cluster {
            name: name.to_string(),
            data_dir: data_dir.clone(),
            port: 0,
            bin: bin.clone(),
            run_as,
        };
        let mut cmd = cluster.command(&bin.initdb());
        cmd.arg("-D")
            .arg(&data_dir)
            .args(["-U", "postgres", "-E", "UTF8", "--locale=C"])
            .args(["--auth-local=trust", "--auth-host=trust"]);
        cluster.run(cmd, "initdb", false)?;

        cluster.write_config(extra_conf)?;
        let mut cluster = cluster;
        cluster.port = pick_port()?;
        cluster.write_port()?;
        Ok(cluster)
    }

    /// Reattaches to a cluster made earlier by [`Cluster::init`]; the port is
    /// read back from its configuration.
    pub fn open(bin: &PgBin, data_dir: &Path, name: &str) -> Result<Cluster> {
        let data_dir = absolute(data_dir)?;
        let port_file = data_dir.join(PORT_CONF);
        let text = fs::read_to_string(&port_file).with_context(|| {
            format!(
                "cluster {name}: reading {} (is {} a lab cluster?)",
                port_file.display(),
                data_dir.display()
            )
        })?;
        let port = parse_port_conf(&text)
            .ok_or_else(|| anyhow!("cluster {name}: no port in {}", port_file.display()))?;
        Ok(Cluster {
            name: name.to_string(),
            data_dir,
            port,
            bin: bin.clone(),
            run_as: RunAs::detect()?,
        })
    }

    /// Starts the server and waits until it accepts connections. If the port
    /// was taken meanwhile, moves to another free port and tries again.
    pub fn start(&mut self) -> Result<()> {
        if self.is_running() {
            return Ok(());
        }
        let mut last_err = None;
        for attempt in 0..START_ATTEMPTS {
            if attempt > 0 {
                self.port = pick_port()?;
                self.write_port()?;
            }
            let log = self.log_path();
            let mut cmd = self.command(&self.bin.pg_ctl());
            cmd.arg("start")
                .arg("-D")
                .arg(&self.data_dir)
                .args(["-w", "-t", "60", "-l"])
                .arg(&log);
            let log_len_before = fs::metadata(&log).map(|m| m.len()).unwrap_or(0);
            match self.run(cmd, "pg_ctl start", true) {
                Ok(_) => return Ok(()),
                Err(e) => {
                    let new_log = read_from(&log, log_len_before);
                    if !new_log.contains("Address already in use") {
                        return Err(e);
                    }
                    tracing::warn!(cluster = %self.name, port = self.port, "port taken, retrying on another");
                    last_err = Some(e);
                }
            }
        }
        Err(last_err.unwrap_or_else(|| anyhow!("cluster {}: could not start", self.name)))
    }

    /// Fast shutdown (rolls back open transactions, disconnects clients).
    /// Stopping a stopped cluster is fine.
    pub fn stop(&self) -> Result<()> {
        if !self.data_dir.join("postmaster.pid").exists() {
            return Ok(());
        }
        let mut cmd = self.command(&self.bin.pg_ctl());
        cmd.arg("stop")
            .arg("-D")
            .arg(&self.data_dir)
            .args(["-m", "fast", "-w", "-t", "60"]);
        match self.run(cmd, "pg_ctl stop -m fast", true) {
            Ok(_) => Ok(()),
            Err(e) if !self.is_running() => {
                tracing::debug!(cluster = %self.name, "pg_ctl stop failed but server is down: {e:#}");
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// Asks `pg_ctl status`, which also sees through stale postmaster.pid files.
    pub fn is_running(&self) -> bool {
        if !self.data_dir.join("postmaster.pid").exists() {
            return false;
        }
        let mut cmd = self.command(&self.bin.pg_ctl());
        cmd.arg("status").arg("-D").arg(&self.data_dir);
        cmd.stdin(Stdio::null())
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    }

    /// Postmaster pid, from postmaster.pid (only meaningful while running).
    pub fn pid(&self) -> Option<u32> {
        postmaster_pid(&self.data_dir)
    }

    /// libpq key=value connection string over TCP loopback.
    pub fn conninfo(&self, dbname: &str) -> String {
        format!(
            "host=127.0.0.1 port={} dbname={dbname} user=postgres",
            self.port
        )
    }

    pub fn log_path(&self) -> PathBuf {
        self.data_dir.join(LOG_FILE)
    }

    /// Last lines of the server log, for error messages.
    pub fn log_tail(&self) -> String {
        tail_lines(
            &fs::read_to_string(self.log_path()).unwrap_or_default(),
            LOG_TAIL_LINES,
        )
    }

    /// A command for a PostgreSQL tool, run as the cluster's OS user.
    pub fn command(&self, program: &Path) -> Command {
        let mut cmd = Command::new(program);
        if let Some(r) = self.run_as {
            cmd.uid(r.uid).gid(r.gid);
        }
        // The caller's cwd may be closed to the postgres user (e.g. /root),
        // which makes initdb and pg_ctl complain.
        if let Some(parent) = self.data_dir.parent() {
            cmd.current_dir(parent);
        }
        cmd.stdin(Stdio::null());
        cmd
    }

    fn run(&self, mut cmd: Command, what: &str, with_log: bool) -> Result<Output> {
        let shown = format!("{cmd:?}");
        let out = cmd
            .output()
            .with_context(|| format!("cluster {}: running {shown}", self.name))?;
        if out.status.success() {
            return Ok(out);
        }
        let mut msg = format!(
            "cluster {} ({}): {what} failed ({})\ncommand: {shown}",
            self.name,
            self.data_dir.display(),
            out.status
        );
        let output = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        if !output.trim().is_empty() {
            msg.push_str(&format!(
                "\noutput:\n{}",
                tail_lines(&output, LOG_TAIL_LINES)
            ));
        }
        if with_log {
            let tail = self.log_tail();
            if !tail.trim().is_empty() {
                msg.push_str(&format!(
                    "\nlast lines of {}:\n{tail}",
                    self.log_path().display()
                ));
            }
        }
        Err(anyhow!(msg))
    }

    fn write_config(&self, extra_conf: &str) -> Result<()> {
        let socket_dir = self.data_dir.to_string_lossy().to_string();
        // A too-long socket path makes postgres refuse to start; TCP is all
        // the lab uses, so fall back to no unix socket at all.
        let socket_line = if socket_dir.len() <= MAX_SOCKET_DIR_LEN && !socket_dir.contains('\'') {
            format!("unix_socket_directories = '{socket_dir}'\n")
        } else {
            "unix_socket_directories = ''\n".to_string()
        };
        let lab_conf = format!(
            "# Written by `cutover lab`: a throwaway cluster on loopback.\n\
             {socket_line}{COMMON_CONF}\n# {} settings\n{extra_conf}",
            self.name
        );
        self.write_owned(&self.data_dir.join(LAB_CONF), &lab_conf)?;

        let conf = self.data_dir.join("postgresql.conf");
        let mut f = fs::OpenOptions::new()
            .append(true)
            .open(&conf)
            .with_context(|| format!("opening {}", conf.display()))?;
        writeln!(f, "\ninclude '{LAB_CONF}'\ninclude_if_exists '{PORT_CONF}'")?;

        // Trust is fine only because the server listens on loopback in a lab.
        let hba = "# Written by `cutover lab`: throwaway lab cluster, loopback only.\n\
                   # TYPE  DATABASE  USER  ADDRESS        METHOD\n\
                   local   all       all                  trust\n\
                   local   replication all                trust\n\
                   host    all       cutover_copy 127.0.0.1/32 scram-sha-256\n\
                   host    all       all   127.0.0.1/32   trust\n\
                   host    replication all 127.0.0.1/32   trust\n";
        self.write_owned(&self.data_dir.join("pg_hba.conf"), hba)
    }

    fn write_port(&self) -> Result<()> {
        self.write_owned(
            &self.data_dir.join(PORT_CONF),
            &format!("port = {}\n", self.port),
        )
    }

    fn write_owned(&self, path: &Path, text: &str) -> Result<()> {
        fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
        fs::set_permissions(path, fs::Permissions::from_mode(0o600))?;
        if let Some(r) = self.run_as {
            r.chown(path)?;
        }
        Ok(())
    }
}

/// Pid from the first line of `<data_dir>/postmaster.pid`.
pub fn postmaster_pid(data_dir: &Path) -> Option<u32> {
    fs::read_to_string(data_dir.join("postmaster.pid"))
        .ok()?
        .lines()
        .next()?
        .trim()
        .parse()
        .ok()
}

/// Stops a postmaster without pg_ctl (fast shutdown = SIGINT), for cleanup
/// when the binaries are gone. Waits up to `timeout` for it to exit.
pub fn signal_stop(data_dir: &Path, timeout: Duration) -> Result<()> {
    use nix::sys::signal::{kill, Signal};
    use nix::unistd::Pid;
    let Some(pid) = postmaster_pid(data_dir) else {
        return Ok(());
    };
    let pid = Pid::from_raw(pid as i32);
    if kill(pid, Signal::SIGINT).is_err() {
        return Ok(());
    }
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if kill(pid, None).is_err() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    bail!(
        "postmaster {pid} of {} did not exit within {timeout:?}",
        data_dir.display()
    )
}

fn parse_port_conf(text: &str) -> Option<u16> {
    text.lines().find_map(|l| {
        let (k, v) = l.split_once('=')?;
        (k.trim() == "port").then(|| v.trim().parse().ok())?
    })
}

/// Ports handed out by this process, so two clusters initialised back to back
/// (before either listens) never get the same one.
static HANDED_OUT: Mutex<Option<HashSet<u16>>> = Mutex::new(None);

/// A currently free loopback port, found by binding port 0.
pub fn pick_port() -> Result<u16> {
    let mut handed = HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner());
    let handed = handed.get_or_insert_with(HashSet::new);
    for _ in 0..50 {
        let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("finding a free port")?;
        let port = l.local_addr()?.port();
        if handed.insert(port) {
            return Ok(port);
        }
    }
    bail!("could not find a free loopback port")
}

fn absolute(p: &Path) -> Result<PathBuf> {
    if p.is_absolute() {
        Ok(p.to_path_buf())
    } else {
        Ok(std::env::current_dir()?.join(p))
    }
}

fn read_from(path: &Path, offset: u64) -> String {
    let bytes = fs::read(path).unwrap_or_default();
    let start = (offset as usize).min(bytes.len());
    String::from_utf8_lossy(&bytes[start..]).into_owned()
}

fn tail_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_conf_round_trip() {
        assert_eq!(parse_port_conf("port = 5433\n"), Some(5433));
        assert_eq!(parse_port_conf("# x\nport=1\n"), Some(1));
        assert_eq!(parse_port_conf("nope"), None);
    }

    #[test]
    fn picked_ports_are_distinct() {
        let a = pick_port().unwrap();
        let b = pick_port().unwrap();
        assert_ne!(a, b);
    }

    #[test]
    fn tail_keeps_last_lines() {
        assert_eq!(tail_lines("a\nb\nc\n", 2), "b\nc");
        assert_eq!(tail_lines("a", 5), "a");
    }
}
