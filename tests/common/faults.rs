//! Fault injection for integration tests: freeze a PostgreSQL cluster or any
//! process tree (SIGSTOP/SIGCONT), and a small filesystem that fills up.
//!
//! Every fault is undone by its guard's `Drop`, so a failing assertion never
//! leaves a frozen cluster behind for the next test in the binary. Tests that
//! freeze a shared cluster must hold [`exclusive`] for their whole body.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, MutexGuard};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

static EXCLUSIVE: Mutex<()> = Mutex::new(());

/// Serialises the tests of one binary that inject faults into shared clusters.
pub fn exclusive() -> MutexGuard<'static, ()> {
    EXCLUSIVE.lock().unwrap_or_else(|p| p.into_inner())
}

/// Every descendant of `pid` (children, grandchildren…), read from /proc.
pub fn descendants(pid: u32) -> Vec<u32> {
    let mut parent_of = Vec::new();
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for e in entries.flatten() {
            let Some(child) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
                continue;
            };
            // The command name may hold spaces and parentheses: read past the last ')'.
            let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
                continue;
            };
            let ppid = rest
                .split_whitespace()
                .nth(1)
                .and_then(|p| p.parse::<u32>().ok());
            if let Some(ppid) = ppid {
                parent_of.push((child, ppid));
            }
        }
    }
    let mut out = Vec::new();
    let mut frontier = vec![pid];
    while let Some(p) = frontier.pop() {
        for &(c, pp) in &parent_of {
            if pp == p && !out.contains(&c) {
                out.push(c);
                frontier.push(c);
            }
        }
    }
    out
}

/// A process tree stopped with SIGSTOP; SIGCONT on drop (or [`Frozen::thaw`]).
pub struct Frozen {
    pids: Vec<u32>,
    thawed: bool,
}

impl Frozen {
    /// Stops `pid` and every descendant it has now (parent first, so it
    /// cannot fork a replacement for a child while the children are stopped).
    pub fn process_tree(pid: u32) -> Frozen {
        let mut pids = vec![pid];
        signal(pid, Signal::SIGSTOP);
        for c in descendants(pid) {
            signal(c, Signal::SIGSTOP);
            pids.push(c);
        }
        Frozen {
            pids,
            thawed: false,
        }
    }

    /// Stops the postmaster of the cluster in `data_dir` and all its backends.
    pub fn cluster(data_dir: &Path) -> Frozen {
        let pid = cutover::lab::cluster::postmaster_pid(data_dir)
            .unwrap_or_else(|| panic!("no running postmaster in {}", data_dir.display()));
        Frozen::process_tree(pid)
    }

    pub fn thaw(mut self) {
        self.resume();
    }

    fn resume(&mut self) {
        if self.thawed {
            return;
        }
        self.thawed = true;
        // Children first, the parent last: the mirror of the freeze.
        for &p in self.pids.iter().rev() {
            signal(p, Signal::SIGCONT);
        }
    }
}

impl Drop for Frozen {
    fn drop(&mut self) {
        self.resume();
    }
}

fn signal(pid: u32, sig: Signal) {
    // A process that exited meanwhile is not an error worth failing a test on.
    let _ = kill(Pid::from_raw(pid as i32), sig);
}

/// A tmpfs of a fixed size, mounted for the test and unmounted on drop.
/// Needs root (as CI and the developers' machines run); `None` with a printed
/// note where mounting is not permitted.
pub struct SmallDisk {
    pub dir: PathBuf,
}

impl SmallDisk {
    pub fn mount(bytes: u64) -> Option<SmallDisk> {
        let dir = std::env::temp_dir().join(format!(
            "cutover-small-disk-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.subsec_nanos())
                .unwrap_or(0)
        ));
        std::fs::create_dir_all(&dir).expect("creating the mount point");
        let out = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={bytes},mode=0777"),
                "tmpfs",
            ])
            .arg(&dir)
            .output();
        match out {
            Ok(o) if o.status.success() => Some(SmallDisk { dir }),
            Ok(o) => {
                eprintln!(
                    "note: cannot mount a small tmpfs here ({}); full-disk test not run",
                    String::from_utf8_lossy(&o.stderr).trim()
                );
                let _ = std::fs::remove_dir(&dir);
                None
            }
            Err(e) => {
                eprintln!("note: no mount command ({e}); full-disk test not run");
                let _ = std::fs::remove_dir(&dir);
                None
            }
        }
    }

    /// Fills the disk until it refuses a write, then frees `leave` bytes.
    pub fn fill_leaving(&self, leave: u64) {
        use std::io::Write;
        let path = self.dir.join("ballast");
        let mut f = std::fs::File::create(&path).expect("creating ballast");
        let chunk = vec![0u8; 4096];
        let mut written = 0u64;
        while f.write_all(&chunk).is_ok() {
            written += chunk.len() as u64;
        }
        let _ = f.sync_all();
        let len = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(written);
        f.set_len(len.saturating_sub(leave))
            .expect("shrinking ballast");
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
