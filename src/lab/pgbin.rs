//! Locating the PostgreSQL server binaries the lab needs.
//!
//! Distributions scatter them: Debian/Ubuntu keep the server outside PATH in
//! `/usr/lib/postgresql/<N>/bin` (with only client wrappers in `/usr/bin`),
//! RHEL/PGDG use `/usr/pgsql-<N>/bin`, and Homebrew or source builds put
//! everything on PATH. We look in all of them and insist on one directory that
//! holds the whole server toolchain, because mixing an `initdb` from one version
//! with a `postgres` from another produces clusters that will not start.

use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::{Deserialize, Serialize};

/// Tools that must all sit in the chosen directory.
const SERVER_TOOLS: [&str; 3] = ["initdb", "pg_ctl", "postgres"];

/// Environment variable that pins the directory and disables the search.
pub const PG_BIN_ENV: &str = "PG_BIN";

/// What the user should install when nothing usable was found.
pub const INSTALL_HINT: &str = "install the PostgreSQL server package: apt-get install postgresql \
     (Debian/Ubuntu) or postgresqlNN-server (RHEL)";

#[derive(Debug, thiserror::Error)]
pub enum PgBinError {
    #[error(
        "no PostgreSQL server binaries (initdb, pg_ctl and postgres in one directory) found; \
         looked in: {}. To fix: {INSTALL_HINT}, or set {PG_BIN_ENV} to the directory holding them",
        display_paths(.searched)
    )]
    NotFound { searched: Vec<PathBuf> },
    #[error(
        "{PG_BIN_ENV}={} does not contain {}; point it at the directory holding \
         initdb, pg_ctl and postgres, or unset it to search. To fix: {INSTALL_HINT}",
        .dir.display(), .missing.join(", ")
    )]
    EnvIncomplete { dir: PathBuf, missing: Vec<String> },
    #[error(
        "{named_by} {} does not contain {}; point it at the directory holding \
         initdb, pg_ctl and postgres",
        .dir.display(), .missing.join(", ")
    )]
    DirIncomplete {
        named_by: String,
        dir: PathBuf,
        missing: Vec<String>,
    },
    #[error("`{} --version` failed: {reason}", .postgres.display())]
    Version { postgres: PathBuf, reason: String },
}

fn display_paths(paths: &[PathBuf]) -> String {
    if paths.is_empty() {
        return "(nowhere: PATH is empty and no well-known folder exists)".into();
    }
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// A directory holding a complete PostgreSQL server toolchain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PgBin {
    /// Directory with initdb, pg_ctl and postgres.
    pub dir: PathBuf,
    /// Full version as printed by `postgres --version`, e.g. "15.18".
    pub version: String,
    /// Major version, e.g. 15.
    pub major: u32,
}

impl PgBin {
    /// Searches `$PG_BIN`, PATH, `pg_config --bindir`, then the Debian/PGDG and
    /// RHEL versioned folders (highest version first).
    pub fn find() -> Result<PgBin, PgBinError> {
        if let Some(dir) = std::env::var_os(PG_BIN_ENV).filter(|v| !v.is_empty()) {
            let dir = PathBuf::from(dir);
            let missing = missing_tools(&dir);
            if !missing.is_empty() {
                return Err(PgBinError::EnvIncomplete { dir, missing });
            }
            return PgBin::from_dir(&dir);
        }
        let candidates =
            candidate_dirs(std::env::var_os("PATH"), pg_config_bindir(), Path::new("/"));
        match candidates.iter().find(|d| missing_tools(d).is_empty()) {
            Some(dir) => PgBin::from_dir(dir),
            None => Err(PgBinError::NotFound {
                searched: candidates,
            }),
        }
    }

    /// The toolchain the user named (`named_by`, e.g. "--target-pg-bin"):
    /// like [`PgBin::from_dir`], but first says which tools are missing.
    pub fn at(dir: &Path, named_by: &str) -> Result<PgBin, PgBinError> {
        let missing = missing_tools(dir);
        if !missing.is_empty() {
            return Err(PgBinError::DirIncomplete {
                named_by: named_by.to_string(),
                dir: dir.to_path_buf(),
                missing,
            });
        }
        PgBin::from_dir(dir)
    }

    /// Uses `dir` as is (no search) and asks its `postgres` for the version.
    pub fn from_dir(dir: &Path) -> Result<PgBin, PgBinError> {
        let postgres = dir.join("postgres");
        let out = Command::new(&postgres)
            .arg("--version")
            .output()
            .map_err(|e| PgBinError::Version {
                postgres: postgres.clone(),
                reason: e.to_string(),
            })?;
        if !out.status.success() {
            return Err(PgBinError::Version {
                postgres,
                reason: format!(
                    "{}: {}",
                    out.status,
                    String::from_utf8_lossy(&out.stderr).trim()
                ),
            });
        }
        let text = String::from_utf8_lossy(&out.stdout);
        let (version, major) = parse_version(&text).ok_or_else(|| PgBinError::Version {
            postgres: postgres.clone(),
            reason: format!("unexpected output {:?}", text.trim()),
        })?;
        Ok(PgBin {
            dir: dir.to_path_buf(),
            version,
            major,
        })
    }

    pub fn initdb(&self) -> PathBuf {
        self.tool("initdb")
    }
    pub fn pg_ctl(&self) -> PathBuf {
        self.tool("pg_ctl")
    }
    pub fn postgres(&self) -> PathBuf {
        self.tool("postgres")
    }
    pub fn pg_dump(&self) -> PathBuf {
        self.tool("pg_dump")
    }
    pub fn psql(&self) -> PathBuf {
        self.tool("psql")
    }

    /// Path of any PostgreSQL tool. Client tools are not always beside the
    /// server ones (e.g. `/usr/local/bin` holding only symlinks to the server
    /// binaries), so we also look where `postgres` really lives, then PATH.
    pub fn tool(&self, name: &str) -> PathBuf {
        let direct = self.dir.join(name);
        if is_executable(&direct) {
            return direct;
        }
        if let Some(real_dir) = std::fs::canonicalize(self.dir.join("postgres"))
            .ok()
            .and_then(|p| p.parent().map(Path::to_path_buf))
        {
            let p = real_dir.join(name);
            if is_executable(&p) {
                return p;
            }
        }
        if let Some(path) = std::env::var_os("PATH") {
            for d in std::env::split_paths(&path) {
                let p = d.join(name);
                if is_executable(&p) {
                    return p;
                }
            }
        }
        direct
    }
}

impl fmt::Display for PgBin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PostgreSQL {} ({})", self.version, self.dir.display())
    }
}

/// Parses "postgres (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)" or
/// "postgres (PostgreSQL) 17beta1" into ("15.18", 15).
pub fn parse_version(text: &str) -> Option<(String, u32)> {
    let line = text.lines().next()?;
    let after = line.split(')').nth(1).unwrap_or(line);
    let token = after
        .split_whitespace()
        .find(|t| t.starts_with(|c: char| c.is_ascii_digit()))?;
    let major: String = token.chars().take_while(|c| c.is_ascii_digit()).collect();
    Some((token.to_string(), major.parse().ok()?))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

fn missing_tools(dir: &Path) -> Vec<String> {
    SERVER_TOOLS
        .iter()
        .filter(|t| !is_executable(&dir.join(t)))
        .map(|t| t.to_string())
        .collect()
}

fn pg_config_bindir() -> Option<PathBuf> {
    let out = Command::new("pg_config").arg("--bindir").output().ok()?;
    if !out.status.success() {
        return None;
    }
    let s = String::from_utf8_lossy(&out.stdout).trim().to_string();
    (!s.is_empty()).then(|| PathBuf::from(s))
}

/// Candidate directories in search order, without duplicates. `root` lets tests
/// point the versioned-folder scan at a fake filesystem.
fn candidate_dirs(path: Option<OsString>, pg_config: Option<PathBuf>, root: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = Vec::new();
    let mut push = |p: PathBuf| {
        if !out.contains(&p) {
            out.push(p);
        }
    };
    if let Some(path) = path {
        std::env::split_paths(&path)
            .filter(|p| !p.as_os_str().is_empty())
            .for_each(&mut push);
    }
    if let Some(p) = pg_config {
        push(p);
    }
    for (d, _) in versioned(&root.join("usr/lib/postgresql"), "") {
        push(d.join("bin"));
    }
    for (d, _) in versioned(&root.join("usr"), "pgsql-") {
        push(d.join("bin"));
    }
    out
}

/// Entries of `parent` named `<prefix><version>`, highest version first.
/// Versions compare numerically ("9.6" < "10" < "15").
fn versioned(parent: &Path, prefix: &str) -> Vec<(PathBuf, Vec<u32>)> {
    let Ok(rd) = std::fs::read_dir(parent) else {
        return Vec::new();
    };
    let mut found: Vec<(PathBuf, Vec<u32>)> = rd
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let ver = name.strip_prefix(prefix)?;
            let parts: Option<Vec<u32>> = ver.split('.').map(|p| p.parse().ok()).collect();
            Some((e.path(), parts?))
        })
        .collect();
    found.sort_by(|a, b| b.1.cmp(&a.1));
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_versions() {
        assert_eq!(
            parse_version("postgres (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)\n"),
            Some(("15.18".into(), 15))
        );
        assert_eq!(
            parse_version("postgres (PostgreSQL) 9.6.24"),
            Some(("9.6.24".into(), 9))
        );
        assert_eq!(
            parse_version("postgres (PostgreSQL) 17beta1"),
            Some(("17beta1".into(), 17))
        );
        assert_eq!(parse_version("garbage"), None);
    }

    fn fake_bin(dir: &Path, tools: &[&str]) {
        use std::os::unix::fs::PermissionsExt;
        std::fs::create_dir_all(dir).unwrap();
        for t in tools {
            let p = dir.join(t);
            std::fs::write(&p, "#!/bin/sh\n").unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
    }

    #[test]
    fn candidate_order_prefers_path_then_highest_version() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        fake_bin(&r.join("usr/lib/postgresql/9.6/bin"), &SERVER_TOOLS);
        fake_bin(&r.join("usr/lib/postgresql/16/bin"), &SERVER_TOOLS);
        fake_bin(&r.join("usr/lib/postgresql/15/bin"), &SERVER_TOOLS);
        fake_bin(&r.join("usr/pgsql-14/bin"), &SERVER_TOOLS);
        fake_bin(&r.join("client-only"), &["psql", "pg_dump"]);
        let path = std::env::join_paths([r.join("client-only")]).unwrap();
        let c = candidate_dirs(Some(path), None, r);
        assert_eq!(
            c,
            vec![
                r.join("client-only"),
                r.join("usr/lib/postgresql/16/bin"),
                r.join("usr/lib/postgresql/15/bin"),
                r.join("usr/lib/postgresql/9.6/bin"),
                r.join("usr/pgsql-14/bin"),
            ]
        );
        // The client-only dir comes first but is skipped: it lacks the server.
        let first_complete = c.iter().find(|d| missing_tools(d).is_empty()).unwrap();
        assert_eq!(first_complete, &r.join("usr/lib/postgresql/16/bin"));
    }

    #[test]
    fn not_found_error_says_what_to_install() {
        let e = PgBinError::NotFound {
            searched: vec![PathBuf::from("/usr/bin")],
        };
        let msg = e.to_string();
        assert!(msg.contains("apt-get install postgresql"), "{msg}");
        assert!(msg.contains("/usr/bin"), "{msg}");
    }
}
