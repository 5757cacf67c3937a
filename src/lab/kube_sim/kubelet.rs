//! The kubelet for Jobs' pods: each runs its first container as a real
//! process on the lab machine, in its own process group, from a pod
//! directory `<pod_root>/<namespace>/<pod>` (0700, removed with the pod
//! object). Volumes are set up there first ([`super::volumes`]); the status
//! goes Pending (ContainerCreating) → Running → Succeeded / Failed with the
//! exit code, like a kubelet's; stdout and stderr go to the pod's log
//! ([`super::logs`]). Deleting the pod sends SIGTERM to the process group,
//! then SIGKILL after the grace period. When the main process exits, what
//! is left of its group is killed, as a container's cgroup would be.

use std::collections::{HashMap, HashSet};
use std::os::unix::fs::DirBuilderExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncRead};
use tokio::process::Child;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::controller::{active, conditions, random_suffix, record_event};
use super::jobs::owned_by_job;
use super::logs::PodLog;
use super::store::{meta_str, now_rfc3339, Kind, Scope, Store};
use super::volumes::{self, make_dir, Mounts};
use super::Sim;

/// A retry after a failed volume or env setup; doubles up to [`RETRY_MAX`].
const RETRY_START: Duration = Duration::from_millis(500);
const RETRY_MAX: Duration = Duration::from_secs(8);
/// A log line longer than this is split (the kubelet splits at 16 KiB).
const MAX_LINE: usize = 16 * 1024;
const NODE: &str = "lab-node-1";

/// Where the pod directories live: a given directory, or a temp directory
/// the simulator owns and removes when it stops.
pub struct PodRoot {
    path: PathBuf,
    owned: bool,
}

impl PodRoot {
    pub fn new(dir: Option<&Path>) -> std::io::Result<PodRoot> {
        if let Some(d) = dir {
            make_dir(d, 0o700)?;
            return Ok(PodRoot {
                path: d.to_path_buf(),
                owned: false,
            });
        }
        let base = std::env::temp_dir();
        loop {
            let p = base.join(format!(
                "cutover-kube-sim-{}-{}",
                std::process::id(),
                random_suffix()
            ));
            match std::fs::DirBuilder::new().mode(0o700).create(&p) {
                Ok(()) => {
                    return Ok(PodRoot {
                        path: p,
                        owned: true,
                    })
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Removes the directory if the simulator made it.
    pub fn remove(&self) {
        if self.owned {
            remove_tree(&self.path);
        }
    }
}

impl Drop for PodRoot {
    fn drop(&mut self) {
        self.remove();
    }
}

/// Removes a directory tree, also when a process left a directory in it
/// without write permission.
pub fn remove_tree(p: &Path) {
    if std::fs::remove_dir_all(p).is_ok() || std::fs::symlink_metadata(p).is_err() {
        return;
    }
    fn open_up(p: &Path) {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o700));
        for e in std::fs::read_dir(p).into_iter().flatten().flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                open_up(&e.path());
            }
        }
    }
    open_up(p);
    let _ = std::fs::remove_dir_all(p);
}

enum Stage {
    /// Not started yet (or volumes / env / command not ready: retried).
    Waiting,
    Running {
        task: JoinHandle<()>,
        stop: watch::Sender<bool>,
        pgid: Option<i32>,
    },
    /// The process has exited (or could not start).
    Done,
}

struct ProcPod {
    uid: String,
    seen: Instant,
    dir: PathBuf,
    stage: Stage,
    retry_at: Instant,
    retry_delay: Duration,
}

/// The process pods, by (namespace, pod name).
#[derive(Default)]
pub struct Kubelet {
    pods: HashMap<(String, String), ProcPod>,
}

/// One pass: starts, watches and stops the Jobs' pods. Returns the pods it
/// runs (the in-process app kubelet leaves them alone; a pod stays here
/// even when its Job is deleted with `propagationPolicy=Orphan`).
pub fn sync(sim: &Sim, s: &mut Store, k: &mut Kubelet) -> HashSet<(String, String)> {
    let now = Instant::now();
    let mut mine = HashSet::new();
    let all: Vec<Value> = s.list(Kind::Pod, None).into_iter().cloned().collect();
    for p in all {
        let uid = meta_str(&p, "uid");
        let key = pod_key(&p);
        if k.pods.get(&key).is_none_or(|pp| pp.uid != uid) {
            if !owned_by_job(&p) {
                continue;
            }
            if let Some(old) = k.pods.remove(&key) {
                forget(sim, &key, old);
            }
            k.pods.insert(
                key.clone(),
                ProcPod {
                    uid: uid.to_string(),
                    seen: now,
                    dir: sim.pod_root.path().join(&key.0).join(&key.1),
                    stage: Stage::Waiting,
                    retry_at: now,
                    retry_delay: Duration::ZERO,
                },
            );
            accept(s, &p);
        }
        mine.insert(key.clone());
        let Some(pp) = k.pods.get_mut(&key) else {
            continue;
        };
        if !active(&p) {
            if stop_pod(s, &p, pp) {
                // Gone from the API: the pod's directory and log go too.
                let _ = s.delete(Kind::Pod, &key.0, &key.1);
                if let Some(pp) = k.pods.remove(&key) {
                    forget(sim, &key, pp);
                }
                mine.remove(&key);
            }
            continue;
        }
        match &pp.stage {
            Stage::Waiting if now >= pp.seen + sim.opts.pod_start_delay && now >= pp.retry_at => {
                start(sim, s, &p, pp, now);
            }
            Stage::Running { task, .. } if task.is_finished() => pp.stage = Stage::Done,
            _ => {}
        }
    }
    for (key, pp) in k.pods.extract_if(|key, _| !mine.contains(key)) {
        forget(sim, &key, pp);
    }
    mine
}

fn pod_key(pod: &Value) -> (String, String) {
    (
        meta_str(pod, "namespace").to_string(),
        meta_str(pod, "name").to_string(),
    )
}

/// Graceful deletion: SIGTERM once; true when nothing runs any more and
/// the pod object may go.
fn stop_pod(s: &mut Store, pod: &Value, pp: &mut ProcPod) -> bool {
    let Stage::Running { task, stop, .. } = &pp.stage else {
        return true;
    };
    if !*stop.borrow() {
        stop.send_replace(true);
        let c = pod["spec"]["containers"][0]["name"].as_str().unwrap_or("");
        record_event(
            s,
            pod,
            "Normal",
            "Killing",
            &format!("Stopping container {c}"),
        );
    }
    task.is_finished()
}

/// A pod the kubelet no longer has: its process is told to stop (SIGTERM,
/// then SIGKILL after the grace period), its directory and log removed.
fn forget(sim: &Sim, key: &(String, String), pp: ProcPod) {
    if let Stage::Running { stop, .. } = &pp.stage {
        stop.send_replace(true);
    }
    remove_tree(&pp.dir);
    sim.logs.remove(&key.0, &key.1, &pp.uid);
}

/// Stops every process at once (the simulator is shutting down).
pub async fn shutdown(k: &mut Kubelet) {
    let mut tasks = Vec::new();
    for (_, pp) in k.pods.drain() {
        if let Stage::Running { task, stop, pgid } = pp.stage {
            if let (Some(g), false) = (pgid, task.is_finished()) {
                let _ = killpg(Pid::from_raw(g), Signal::SIGKILL);
            }
            stop.send_replace(true);
            tasks.push(task);
        }
    }
    for t in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(2), t).await;
    }
}

fn container_status(c: &Value, state: Value, ready: bool, id: Option<&str>) -> Value {
    let image = c["image"].as_str().unwrap_or("");
    let mut v = json!({
        "name": c["name"],
        "image": image,
        "imageID": "",
        "ready": ready,
        "started": state.get("running").is_some(),
        "restartCount": 0,
        "state": state,
        "lastState": {},
    });
    if let Some(id) = id {
        v["containerID"] = json!(id);
        v["imageID"] = json!(format!("docker.io/{image}@sha256:0"));
    }
    v
}

fn update_pod(s: &mut Store, pod: &Value, f: impl FnOnce(&mut Value)) {
    let uid = meta_str(pod, "uid").to_string();
    let _ = s.update(
        Kind::Pod,
        meta_str(pod, "namespace"),
        meta_str(pod, "name"),
        Scope::Controller,
        |v| {
            if meta_str(v, "uid") == uid {
                f(v);
            }
            Ok(())
        },
    );
}

/// Scheduled on the lab's node: Pending, the container waiting in ContainerCreating.
fn accept(s: &mut Store, pod: &Value) {
    let c = pod["spec"]["containers"][0].clone();
    update_pod(s, pod, |v| {
        v["spec"]["nodeName"] = json!(NODE);
        let mut conds = conditions(false);
        for c in conds.as_array_mut().into_iter().flatten() {
            match c["type"].as_str() {
                Some("PodReadyToStartContainers") => c["status"] = json!("False"),
                Some("Ready" | "ContainersReady") => c["reason"] = json!("ContainersNotReady"),
                _ => {}
            }
        }
        v["status"] = json!({
            "phase": "Pending",
            "startTime": now_rfc3339(),
            "hostIP": "10.0.0.1",
            "podIP": format!("10.1.1.{}", rand::Rng::gen_range(&mut rand::thread_rng(), 2..250)),
            "qosClass": "BestEffort",
            "conditions": conds,
            "containerStatuses": [container_status(&c, json!({"waiting": {"reason": "ContainerCreating"}}), false, None)],
        });
    });
}

fn waiting(s: &mut Store, pod: &Value, reason: &str, message: &str) {
    let c = pod["spec"]["containers"][0].clone();
    let state = json!({"waiting": {"reason": reason, "message": message}});
    update_pod(s, pod, |v| {
        v["status"]["containerStatuses"] = json!([container_status(&c, state, false, None)]);
    });
}

fn backoff(pp: &mut ProcPod, now: Instant) {
    pp.retry_delay = if pp.retry_delay.is_zero() {
        RETRY_START
    } else {
        (pp.retry_delay * 2).min(RETRY_MAX)
    };
    pp.retry_at = now + pp.retry_delay;
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// What the process is started with.
struct Launch {
    argv: Vec<String>,
    env: Vec<(String, String)>,
    cwd: PathBuf,
}

/// The process's argv, environment and cwd: `$(VAR)` expanded, mount
/// paths mapped to the volumes' directories. Err: why the container cannot
/// be created, as (reason, message).
fn launch(
    sim: &Sim,
    s: &Store,
    pod: &Value,
    dir: &Path,
    mounts: &Mounts,
) -> Result<Launch, (&'static str, String)> {
    let c = &pod["spec"]["containers"][0];
    let env = volumes::container_env(s, pod).map_err(|m| ("CreateContainerConfigError", m))?;
    let command = strings(&c["command"]);
    if command.is_empty() {
        return Err((
            "CreateContainerError",
            format!(
                "container {:?} has no command: the lab runs no images, so there is no entrypoint of {:?} to run; set command",
                c["name"].as_str().unwrap_or(""),
                c["image"].as_str().unwrap_or("")
            ),
        ));
    }
    let argv = command
        .iter()
        .chain(strings(&c["args"]).iter())
        .map(|a| mounts.map(&volumes::expand(a, |n| volumes::lookup(&env, n))))
        .collect();
    let own_path = std::env::var("PATH").unwrap_or_default();
    let path = match &sim.opts.pod_bin {
        Some(bin) if own_path.is_empty() => bin.display().to_string(),
        Some(bin) => format!("{}:{own_path}", bin.display()),
        None => own_path,
    };
    let mut vars = vec![
        ("PATH".to_string(), path),
        ("HOME".to_string(), dir.display().to_string()),
    ];
    for (k, v) in env {
        vars.retain(|(n, _)| *n != k);
        vars.push((k, mounts.map(&v)));
    }
    let cwd = c["workingDir"]
        .as_str()
        .filter(|w| !w.is_empty())
        .map_or_else(|| dir.to_path_buf(), |w| PathBuf::from(mounts.map(w)));
    Ok(Launch {
        argv,
        env: vars,
        cwd,
    })
}

/// Sets up the volumes and the environment and starts the process; what
/// is missing keeps the pod Pending with the kubelet's reason and event.
fn start(sim: &Sim, s: &mut Store, pod: &Value, pp: &mut ProcPod, now: Instant) {
    let ns = meta_str(pod, "namespace").to_string();
    let name = meta_str(pod, "name").to_string();
    let mounts = make_dir(&pp.dir, 0o700)
        .map_err(|e| volumes::MountError {
            volume: "pod directory".into(),
            message: format!("mkdir {}: {e}", pp.dir.display()),
        })
        .and_then(|()| volumes::prepare(s, &ns, pod, &pp.dir));
    let mounts = match mounts {
        Ok(m) => m,
        Err(e) => {
            let msg = format!(
                "MountVolume.SetUp failed for volume \"{}\" : {}",
                e.volume, e.message
            );
            record_event(s, pod, "Warning", "FailedMount", &msg);
            backoff(pp, now);
            return;
        }
    };
    let l = match launch(sim, s, pod, &pp.dir, &mounts) {
        Ok(l) => l,
        Err((reason, msg)) => {
            waiting(s, pod, reason, &msg);
            record_event(s, pod, "Warning", "Failed", &format!("Error: {msg}"));
            backoff(pp, now);
            return;
        }
    };
    let c = pod["spec"]["containers"][0].clone();
    let cname = c["name"].as_str().unwrap_or("").to_string();
    let log = sim.logs.open(&ns, &name, &pp.uid);
    let spawned = if l.cwd.is_dir() {
        tokio::process::Command::new(&l.argv[0])
            .args(&l.argv[1..])
            .env_clear()
            .envs(l.env.iter().map(|(k, v)| (k, v)))
            .current_dir(&l.cwd)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .process_group(0)
            .spawn()
            .map_err(|e| {
                let bin = &l.argv[0];
                if e.kind() == std::io::ErrorKind::NotFound && !bin.contains('/') {
                    format!("exec: \"{bin}\": executable file not found in $PATH")
                } else {
                    format!("exec: \"{bin}\": {e}")
                }
            })
    } else {
        Err(format!(
            "chdir to cwd ({:?}) set in config.json failed: no such file or directory",
            l.cwd.display().to_string()
        ))
    };
    let id = format!("containerd://{}", random_suffix());
    let child = match spawned {
        Ok(child) => child,
        Err(why) => {
            // What containerd reports for a process that cannot start.
            let msg = format!(
                "failed to create containerd task: failed to create shim task: OCI runtime create failed: \
                 runc create failed: unable to start container process: error during container init: {why}: unknown"
            );
            let at = now_rfc3339();
            let state = json!({"terminated": {
                "exitCode": 128, "reason": "StartError", "message": msg,
                "startedAt": "1970-01-01T00:00:00Z", "finishedAt": at, "containerID": id,
            }});
            update_pod(s, pod, |v| {
                v["status"]["phase"] = json!("Failed");
                v["status"]["conditions"] = conditions(false);
                v["status"]["containerStatuses"] =
                    json!([container_status(&c, state, false, Some(&id))]);
            });
            record_event(s, pod, "Warning", "Failed", &format!("Error: {msg}"));
            log.finish();
            pp.stage = Stage::Done;
            return;
        }
    };
    let started = now_rfc3339();
    let state = json!({"running": {"startedAt": started}});
    update_pod(s, pod, |v| {
        v["status"]["phase"] = json!("Running");
        v["status"]["conditions"] = conditions(true);
        v["status"]["containerStatuses"] = json!([container_status(&c, state, true, Some(&id))]);
    });
    record_event(
        s,
        pod,
        "Normal",
        "Created",
        &format!("Created container: {cname}"),
    );
    record_event(
        s,
        pod,
        "Normal",
        "Started",
        &format!("Started container {cname}"),
    );
    let grace = pod["spec"]["terminationGracePeriodSeconds"]
        .as_u64()
        .unwrap_or(30);
    let pgid = child.id().and_then(|p| i32::try_from(p).ok());
    let (stop_tx, stop_rx) = watch::channel(false);
    let run = Running {
        sim: sim.me.clone(),
        pod: pod.clone(),
        container: c,
        id,
        started,
        log,
        grace: Duration::from_secs(grace),
    };
    pp.stage = Stage::Running {
        task: tokio::spawn(run.supervise(child, stop_rx)),
        stop: stop_tx,
        pgid,
    };
}

/// The process group of a running container; SIGKILLed when dropped
/// (the simulator's runtime going away) unless disarmed.
struct Group(Option<i32>);

impl Group {
    fn signal(&self, sig: Signal) {
        if let Some(g) = self.0 {
            let _ = killpg(Pid::from_raw(g), sig);
        }
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        self.signal(Signal::SIGKILL);
    }
}

async fn stopped(rx: &mut watch::Receiver<bool>) {
    loop {
        if *rx.borrow_and_update() {
            return;
        }
        if rx.changed().await.is_err() {
            return;
        }
    }
}

/// Copies a pipe into the log, line by line.
async fn pump(r: impl AsyncRead + Unpin, log: Arc<PodLog>) {
    let mut r = tokio::io::BufReader::new(r);
    let mut line: Vec<u8> = Vec::new();
    let flush = |line: &mut Vec<u8>| {
        if line.last() == Some(&b'\n') {
            line.pop();
        }
        log.push(String::from_utf8_lossy(line).into_owned());
        line.clear();
    };
    loop {
        let (n, end) = match r.fill_buf().await {
            Ok(buf) if !buf.is_empty() => {
                let (n, end) = match buf.iter().position(|&b| b == b'\n') {
                    Some(i) => (i + 1, true),
                    None => (buf.len(), false),
                };
                line.extend_from_slice(&buf[..n]);
                (n, end)
            }
            _ => break,
        };
        r.consume(n);
        if end || line.len() >= MAX_LINE {
            flush(&mut line);
        }
    }
    if !line.is_empty() {
        flush(&mut line);
    }
}

/// What the supervising task needs to report the container's end.
struct Running {
    sim: Weak<Sim>,
    pod: Value,
    container: Value,
    id: String,
    started: String,
    log: Arc<PodLog>,
    grace: Duration,
}

impl Running {
    /// Waits for the process (or a stop: SIGTERM, SIGKILL after the grace
    /// period), collects its output, and writes the terminated status.
    async fn supervise(self, mut child: Child, mut stop: watch::Receiver<bool>) {
        let mut group = Group(child.id().and_then(|p| i32::try_from(p).ok()));
        let readers: Vec<JoinHandle<()>> = [
            child
                .stdout
                .take()
                .map(|r| tokio::spawn(pump(r, self.log.clone()))),
            child
                .stderr
                .take()
                .map(|r| tokio::spawn(pump(r, self.log.clone()))),
        ]
        .into_iter()
        .flatten()
        .collect();
        let status = tokio::select! {
            st = child.wait() => st,
            () = stopped(&mut stop) => {
                group.signal(Signal::SIGTERM);
                match tokio::time::timeout(self.grace, child.wait()).await {
                    Ok(st) => st,
                    Err(_) => {
                        group.signal(Signal::SIGKILL);
                        child.wait().await
                    }
                }
            }
        };
        // Nothing of the container outlives its main process.
        group.signal(Signal::SIGKILL);
        group.0 = None;
        for r in readers {
            // Bounded: a process that left the group may hold a pipe open.
            let abort = r.abort_handle();
            if tokio::time::timeout(Duration::from_secs(1), r)
                .await
                .is_err()
            {
                abort.abort();
            }
        }
        let code = match status {
            Ok(st) => st
                .code()
                .unwrap_or_else(|| 128 + st.signal().unwrap_or(Signal::SIGKILL as i32)),
            Err(_) => 128 + Signal::SIGKILL as i32,
        };
        if let Some(sim) = self.sim.upgrade() {
            let mut s = sim.lock();
            self.terminated(&mut s, code);
        }
        self.log.finish();
    }

    fn terminated(&self, s: &mut Store, code: i32) {
        let reason = if code == 0 { "Completed" } else { "Error" };
        let state = json!({"terminated": {
            "exitCode": code, "reason": reason, "startedAt": self.started,
            "finishedAt": now_rfc3339(), "containerID": self.id,
        }});
        let phase = if code == 0 { "Succeeded" } else { "Failed" };
        let c = &self.container;
        update_pod(s, &self.pod, |v| {
            v["status"]["phase"] = json!(phase);
            let mut conds = conditions(false);
            for cond in conds.as_array_mut().into_iter().flatten() {
                if cond["type"] != "PodScheduled" {
                    cond["reason"] = json!("PodCompleted");
                }
            }
            v["status"]["conditions"] = conds;
            v["status"]["containerStatuses"] =
                json!([container_status(c, state, false, Some(&self.id))]);
        });
    }
}
