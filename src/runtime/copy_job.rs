//! The copy as a Kubernetes Job: the same refusal as the local copy over a
//! target that already holds part of it, then the Job of the plan
//! ([`crate::runbook::copy_job::manifest`]) created, its pod followed (its
//! log lines sent to the run's pane and the log as they come, restored
//! tables counted from `pg_restore --verbose`), and its end read from the
//! Job's conditions and the container's exit status. Every wait has a
//! deadline. A succeeded Job is deleted; a failed one is left for
//! `kubectl describe`/`logs` (the cluster removes it a day later); a
//! cancelled copy's Job is deleted so its pod stops writing.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use futures::{AsyncBufReadExt, StreamExt};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, ListParams, LogParams, PostParams, PropagationPolicy};
use tokio::sync::mpsc::Sender;

use crate::config::Config;
use crate::kube::{bounded, Connection};
use crate::runbook::copy_job::{manifest, CopyJob, SESSION_LABEL};
use crate::session::event::CopyProgress;
use crate::session::EventKind;

use super::exec::{send, InFlight};

/// A pod that has not started by then will not (an image that cannot be
/// pulled, a Secret that does not exist): the step fails with its reason.
const POD_START_TIMEOUT: Duration = Duration::from_secs(300);
/// A pod that says it cannot start (a missing Secret, an image that cannot
/// be pulled) is given this long to recover: the writes are frozen.
const STUCK_FOR: Duration = Duration::from_secs(20);
/// How often the pod's warnings are read while it waits.
const EVENTS_EVERY: Duration = Duration::from_secs(2);
/// After the log ended, how long the Job may take to say how it ended.
const END_TIMEOUT: Duration = Duration::from_secs(60);
const POLL: Duration = Duration::from_millis(500);
const SEND_EVERY: Duration = Duration::from_secs(1);
/// Log lines kept for the failure message.
const TAIL: usize = 8;

/// Deletes the Job (and, in the background, its pod) unless disarmed: a
/// cancelled step must not leave a copy writing into the target.
struct JobGuard {
    api: Api<Job>,
    name: String,
    armed: bool,
}

impl Drop for JobGuard {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let (api, name) = (self.api.clone(), self.name.clone());
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                if let Err(e) = delete(&api, &name).await {
                    tracing::warn!("deleting the cancelled copy's Job {name}: {e:#}");
                }
            });
        }
    }
}

async fn delete(api: &Api<Job>, name: &str) -> Result<()> {
    let dp = DeleteParams {
        propagation_policy: Some(PropagationPolicy::Background),
        ..DeleteParams::default()
    };
    bounded(&format!("DELETE job/{name}"), async {
        match api.delete(name, &dp).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
            Err(e) => Err(e.into()),
        }
    })
    .await
}

/// A label value from the session's name (RFC 1123-ish, at most 63).
pub fn label_value(s: &str) -> String {
    let v: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '-'
            }
        })
        .collect();
    let v = v.trim_matches(|c: char| !c.is_ascii_alphanumeric());
    let v: String = v.chars().take(63).collect();
    let v = v.trim_end_matches(|c: char| !c.is_ascii_alphanumeric());
    if v.is_empty() {
        "unknown".into()
    } else {
        v.to_string()
    }
}

/// How the pod stands: not started yet (and why), running, or ended.
enum PodState {
    Waiting(String),
    Running,
    Ended { exit: i32, reason: String },
}

fn pod_state(pod: &Pod) -> PodState {
    let status = pod.status.as_ref();
    let cs = status
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|c| c.first());
    if let Some(t) = cs
        .and_then(|c| c.state.as_ref())
        .and_then(|s| s.terminated.as_ref())
    {
        return PodState::Ended {
            exit: t.exit_code,
            reason: t
                .message
                .clone()
                .or_else(|| t.reason.clone())
                .unwrap_or_default(),
        };
    }
    if cs
        .and_then(|c| c.state.as_ref())
        .is_some_and(|s| s.running.is_some())
    {
        return PodState::Running;
    }
    let why = cs
        .and_then(|c| c.state.as_ref())
        .and_then(|s| s.waiting.as_ref())
        .map(|w| {
            let reason = w.reason.clone().unwrap_or_default();
            match &w.message {
                Some(m) => format!("{reason}: {m}"),
                None => reason,
            }
        })
        .or_else(|| status.and_then(|s| s.phase.clone()))
        .unwrap_or_else(|| "Pending".into());
    PodState::Waiting(why)
}

/// Whether a waiting reason or warning says the pod cannot start without
/// someone fixing something (kubelet's reasons).
fn cannot_start(why: &str) -> bool {
    [
        "FailedMount",
        "CreateContainerConfigError",
        "CreateContainerError",
        "ErrImagePull",
        "ImagePullBackOff",
        "InvalidImageName",
        "FailedCreatePodSandBox",
    ]
    .iter()
    .any(|r| why.starts_with(r))
}

/// The Job's end, from its conditions: Ok(()) complete, Err(why) failed,
/// None not yet.
fn job_end(job: &Job) -> Option<std::result::Result<(), String>> {
    let conds = job.status.as_ref()?.conditions.as_ref()?;
    for c in conds.iter().filter(|c| c.status == "True") {
        match c.type_.as_str() {
            "Complete" => return Some(Ok(())),
            "Failed" => {
                return Some(Err(format!(
                    "{}{}",
                    c.reason.clone().unwrap_or_else(|| "Failed".into()),
                    c.message
                        .as_deref()
                        .map(|m| format!(": {m}"))
                        .unwrap_or_default()
                )))
            }
            _ => {}
        }
    }
    None
}

/// The latest warning event about the pod (a volume that cannot mount).
async fn pod_warning(conn: &Connection, ns: &str, pod: &str) -> Option<String> {
    use k8s_openapi::api::core::v1::Event;
    let api: Api<Event> = Api::namespaced(conn.client.clone(), ns);
    let lp = ListParams::default().fields(&format!("involvedObject.name={pod}"));
    let list = bounded("listing the pod's events", async {
        api.list(&lp).await.map_err(anyhow::Error::from)
    })
    .await
    .ok()?;
    list.items
        .into_iter()
        .rfind(|e| e.type_.as_deref() == Some("Warning"))
        .map(|e| {
            format!(
                "{}: {}",
                e.reason.unwrap_or_default(),
                e.message.unwrap_or_default()
            )
        })
}

/// What the copy says as it goes: lines for the pane and the log, and
/// the restored tables counted.
struct Follow<'a> {
    id: u64,
    tx: &'a Sender<EventKind>,
    pending: Vec<String>,
    tail: VecDeque<String>,
    tables: u64,
    tables_total: u64,
    started: Instant,
    sent: Instant,
    lines: usize,
}

impl Follow<'_> {
    fn line(&mut self, line: String) {
        self.lines += 1;
        if line.contains("processing data for table")
            || (line.starts_with("pg_restore")
                && super::dump::table_done(&line).is_some_and(|d| d.is_some()))
        {
            self.tables += 1;
        }
        self.tail.push_back(line.clone());
        if self.tail.len() > TAIL {
            self.tail.pop_front();
        }
        self.pending.push(line);
    }

    /// A note of the console's own, among the pod's lines.
    async fn note(&mut self, what: String) -> Result<()> {
        self.pending.push(format!("[cutover] {what}"));
        self.flush().await
    }

    async fn flush(&mut self) -> Result<()> {
        self.sent = Instant::now();
        let spent = self.started.elapsed().as_millis() as u64;
        let done = self.tables.min(self.tables_total);
        let progress = CopyProgress {
            phase: "job".into(),
            tables_done: done,
            tables_total: self.tables_total,
            bytes_done: 0,
            bytes_total: 0,
            elapsed_ms: spent,
            eta_ms: (done > 0).then(|| spent.saturating_mul(self.tables_total - done) / done),
        };
        send(
            self.tx,
            EventKind::CopyProgress {
                id: self.id,
                progress,
            },
        )
        .await?;
        if !self.pending.is_empty() {
            let lines = std::mem::take(&mut self.pending);
            send(self.tx, EventKind::JobLog { id: self.id, lines }).await?;
        }
        Ok(())
    }

    fn tail(&self) -> String {
        if self.tail.is_empty() {
            "its log is empty".into()
        } else {
            format!(
                "its last log lines: {}",
                self.tail.iter().cloned().collect::<Vec<_>>().join(" | ")
            )
        }
    }
}

/// The copy, as a Job, start to end.
pub(super) async fn run(
    id: u64,
    job: &CopyJob,
    config: &Config,
    conn: &Connection,
    session: &str,
    tx: &Sender<EventKind>,
    inflight: &InFlight,
) -> Result<String> {
    let started = Instant::now();
    inflight.set("the copy's pre-check".to_string());
    let (tables, _) = super::dump::precheck(config).await?;
    let ns = job.namespace_in(&conn.namespace);
    let mut job = job.clone();
    job.namespace = ns.to_string();
    // Several databases copy at once: each Job named for its own.
    let db = config
        .database
        .as_deref()
        .map(|d| format!("{}-", d.replace('_', "-")))
        .unwrap_or_default();
    let name = format!(
        "cutover-copy-{db}{}-{id}",
        chrono::Utc::now().format("%Y%m%d%H%M%S")
    );
    let jobs: Api<Job> = Api::namespaced(conn.client.clone(), ns);
    let pods: Api<Pod> = Api::namespaced(conn.client.clone(), ns);
    let spec: Job = serde_json::from_value(manifest(&job, &name, &label_value(session)))
        .context("building the Job")?;
    inflight.set(format!("POST job/{name} in {ns}"));
    bounded(&format!("creating job/{name} in {ns}"), async {
        jobs.create(&PostParams::default(), &spec)
            .await
            .map_err(anyhow::Error::from)
    })
    .await
    .with_context(|| format!("creating job/{name} in {ns}: nothing copied"))?;
    let created = Instant::now();
    inflight.set(format!("the copy in job/{name}"));
    let mut guard = JobGuard {
        api: jobs.clone(),
        name: name.clone(),
        armed: true,
    };
    let mut f = Follow {
        id,
        tx,
        pending: vec![],
        tail: VecDeque::new(),
        tables: 0,
        tables_total: tables,
        started,
        sent: Instant::now(),
        lines: 0,
    };
    f.note(format!("created job/{name} in {ns}")).await?;

    // The pod: found by its Job's label, followed until it has started.
    let by_job = ListParams::default().labels(&format!("job-name={name}"));
    let waiting_since = Instant::now();
    let mut said_waiting = String::new();
    let mut asked_events: Option<Instant> = None;
    let mut stuck: Option<(Instant, String)> = None;
    let pod = loop {
        let list = bounded(&format!("listing job/{name}'s pods"), async {
            pods.list(&by_job).await.map_err(anyhow::Error::from)
        })
        .await?;
        if let Some(p) = list.items.into_iter().next_back() {
            let pname = p.metadata.name.clone().unwrap_or_default();
            match pod_state(&p) {
                PodState::Waiting(why) => {
                    if why != said_waiting {
                        f.note(format!("pod {pname}: {why}")).await?;
                        said_waiting = why.clone();
                    }
                    // What keeps it from starting, from its status or its
                    // warnings (a Secret that does not exist).
                    let mut cannot = cannot_start(&why).then(|| why.clone());
                    if cannot.is_none() && asked_events.is_none_or(|t| t.elapsed() >= EVENTS_EVERY)
                    {
                        asked_events = Some(Instant::now());
                        cannot = pod_warning(conn, ns, &pname)
                            .await
                            .filter(|w| cannot_start(w));
                    } else if cannot.is_none() {
                        cannot = stuck.as_ref().map(|(_, w)| w.clone());
                    }
                    stuck = match (stuck.take(), cannot) {
                        (Some((since, _)), Some(w)) => Some((since, w)),
                        (None, Some(w)) => Some((Instant::now(), w)),
                        (_, None) => None,
                    };
                    let given_up = match &stuck {
                        Some((since, w)) if since.elapsed() >= STUCK_FOR => Some(w.clone()),
                        _ if waiting_since.elapsed() >= POD_START_TIMEOUT => Some(why),
                        _ => None,
                    };
                    if let Some(w) = given_up {
                        // Nothing ran: the Job goes (the guard deletes it).
                        return Err(anyhow!(
                            "nothing copied: pod {pname} of job/{name} could not start ({w}), \
                             waited {:.0} s; the Job is deleted",
                            waiting_since.elapsed().as_secs_f64()
                        ));
                    }
                }
                _ => break pname,
            }
        } else if let Some(Err(why)) = bounded("reading the Job", async {
            jobs.get(&name).await.map_err(anyhow::Error::from)
        })
        .await
        .map(|j| job_end(&j))?
        {
            guard.armed = false;
            return Err(anyhow!("job/{name} failed before its pod ran: {why}"));
        }
        tokio::time::sleep(POLL).await;
    };
    f.note(format!("pod {pod} started")).await?;

    // Its log, to the end (again from where it broke off if the stream
    // is cut before the container ends).
    loop {
        let lp = LogParams {
            follow: true,
            container: Some("copy".into()),
            ..LogParams::default()
        };
        let skip = f.lines;
        let stream = bounded(&format!("reading pod {pod}'s log"), async {
            pods.log_stream(&pod, &lp)
                .await
                .map_err(anyhow::Error::from)
        })
        .await?;
        let mut lines = stream.lines().skip(skip);
        let mut tick = tokio::time::interval(SEND_EVERY);
        loop {
            tokio::select! {
                line = lines.next() => match line {
                    Some(Ok(l)) => f.line(l),
                    Some(Err(e)) => {
                        tracing::debug!("pod {pod}'s log stream broke: {e}");
                        break;
                    }
                    None => break,
                },
                _ = tick.tick() => {}
            }
            if f.sent.elapsed() >= SEND_EVERY {
                f.flush().await?;
            }
        }
        f.flush().await?;
        let p = bounded(&format!("reading pod {pod}"), async {
            pods.get(&pod).await.map_err(anyhow::Error::from)
        })
        .await?;
        if matches!(pod_state(&p), PodState::Ended { .. }) {
            break;
        }
        tokio::time::sleep(POLL).await;
    }

    // How it ended: the Job's condition and the container's exit status.
    let ended = Instant::now();
    let end = loop {
        let j = bounded("reading the Job", async {
            jobs.get(&name).await.map_err(anyhow::Error::from)
        })
        .await?;
        if let Some(end) = job_end(&j) {
            break end;
        }
        if ended.elapsed() >= END_TIMEOUT {
            return Err(anyhow!(
                "job/{name}'s pod ended but the Job did not say how within {} s; {}",
                END_TIMEOUT.as_secs(),
                f.tail()
            ));
        }
        tokio::time::sleep(POLL).await;
    };
    let (exit, reason) = match pods.get(&pod).await.map(|p| pod_state(&p)) {
        Ok(PodState::Ended { exit, reason }) => (Some(exit), reason),
        _ => (None, String::new()),
    };
    // The cluster's times have whole seconds: the console's own clock,
    // from the Job's creation to its end seen, says more.
    let duration = created.elapsed().as_secs_f64();
    let exit_said = exit.map_or("exit status unknown".to_string(), |e| format!("exit {e}"));
    match end {
        Ok(()) => {
            f.note(format!("job/{name} complete ({exit_said})")).await?;
            guard.armed = false;
            delete(&jobs, &name).await.with_context(|| {
                format!("the copy is done, but job/{name} could not be deleted")
            })?;
            Ok(format!(
                "{tables} tables copied by job/{name} in {duration:.1} s ({exit_said}); the \
                 Job is deleted"
            ))
        }
        Err(why) => {
            guard.armed = false;
            f.note(format!("job/{name} failed: {why} ({exit_said})"))
                .await?;
            Err(anyhow!(
                "job/{name} failed after {duration:.1} s ({exit_said}{}; {why}); {} — the \
                 target may hold part of the copy; the Job is left for kubectl logs",
                if reason.is_empty() {
                    String::new()
                } else {
                    format!(", {reason}")
                },
                f.tail()
            ))
        }
    }
}

/// Jobs a session made and left running (a console killed mid-copy):
/// deleted, so nothing keeps writing into the target; what was found, in
/// words.
pub async fn remove_left_over(conn: &Connection, ns: &str, session: &str) -> Result<String> {
    let jobs: Api<Job> = Api::namespaced(conn.client.clone(), ns);
    let lp = ListParams::default().labels(&format!("{SESSION_LABEL}={}", label_value(session)));
    let list = bounded("listing the session's copy Jobs", async {
        jobs.list(&lp).await.map_err(anyhow::Error::from)
    })
    .await?;
    let mut said = Vec::new();
    for j in list.items {
        let name = j.metadata.name.clone().unwrap_or_default();
        match job_end(&j) {
            Some(Ok(())) => said.push(format!("job/{name} had completed")),
            Some(Err(why)) => said.push(format!("job/{name} had failed ({why})")),
            None => {
                delete(&jobs, &name).await?;
                said.push(format!("job/{name} was still running and is deleted"));
            }
        }
    }
    Ok(said.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pod_that_cannot_start_is_told_from_one_still_starting() {
        assert!(cannot_start(
            "FailedMount: MountVolume.SetUp failed for volume \"pgpass\" : secret \"x\" not found"
        ));
        assert!(cannot_start("ImagePullBackOff: Back-off pulling image"));
        assert!(!cannot_start("ContainerCreating"));
        assert!(!cannot_start("Pending"));
    }

    #[test]
    fn the_job_says_how_it_ended_by_its_conditions() {
        let job = |conds: serde_json::Value| -> Job {
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": "j"},
                "status": {"conditions": conds},
            }))
            .unwrap()
        };
        assert_eq!(job_end(&job(serde_json::json!([]))), None);
        assert_eq!(
            job_end(&job(serde_json::json!([
                {"type": "SuccessCriteriaMet", "status": "True"},
                {"type": "Complete", "status": "True"}
            ]))),
            Some(Ok(()))
        );
        assert_eq!(
            job_end(&job(serde_json::json!([
                {"type": "FailureTarget", "status": "True"},
                {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded",
                 "message": "Job has reached the specified backoff limit"}
            ]))),
            Some(Err(
                "BackoffLimitExceeded: Job has reached the specified backoff limit".into()
            ))
        );
    }

    #[test]
    fn a_session_name_becomes_a_label_value() {
        assert_eq!(
            label_value("2026-12-01T06:01:02Z shop.jsonl"),
            "2026-12-01T06-01-02Z-shop.jsonl"
        );
        assert_eq!(label_value("::"), "unknown");
        assert_eq!(label_value(&"a".repeat(80)).len(), 63);
    }
}
