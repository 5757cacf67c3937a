//! Pod logs: what a process pod's container wrote (stdout and stderr, line
//! by line, interleaved in arrival order), kept in memory per pod (the
//! newest [`MAX_LINES`]) until the pod object is deleted, and
//! `GET /api/v1/namespaces/{ns}/pods/{name}/log` with `container`,
//! `follow`, `tailLines`, `timestamps`, `sinceSeconds`, `sinceTime` and
//! `limitBytes`. A pod without a process (a Deployment's app pod) has an
//! empty log.

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use chrono::{DateTime, SecondsFormat, Utc};
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use hyper::Response;
use serde_json::Value;
use tokio::sync::{mpsc, watch};

use super::http::{error, Body, Query};
use super::store::{meta_str, ApiError, Kind};
use super::Sim;

/// Lines kept per pod; older ones are dropped.
pub const MAX_LINES: usize = 10_000;

#[derive(Debug, Clone)]
struct Line {
    at: DateTime<Utc>,
    text: String,
}

#[derive(Default)]
struct Buf {
    lines: VecDeque<Line>,
    /// Lines ever appended: the sequence number of the next one.
    total: u64,
}

/// One pod's log.
pub struct PodLog {
    uid: String,
    buf: Mutex<Buf>,
    /// (lines ever appended, the container has terminated): wakes followers.
    tx: watch::Sender<(u64, bool)>,
}

impl PodLog {
    fn lock(&self) -> MutexGuard<'_, Buf> {
        self.buf.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Appends one line (without its newline).
    pub fn push(&self, text: String) {
        let total = {
            let mut b = self.lock();
            b.lines.push_back(Line {
                at: Utc::now(),
                text,
            });
            while b.lines.len() > MAX_LINES {
                b.lines.pop_front();
            }
            b.total += 1;
            b.total
        };
        self.tx.send_modify(|s| s.0 = total);
    }

    /// The container terminated: followers end once they have every line.
    pub fn finish(&self) {
        self.tx.send_modify(|s| s.1 = true);
    }

    /// The lines from sequence number `from` on (or the oldest kept), and
    /// the sequence number after them.
    fn since(&self, from: u64) -> (Vec<Line>, u64) {
        let b = self.lock();
        let first = b.total - b.lines.len() as u64;
        let skip = from.saturating_sub(first) as usize;
        (b.lines.iter().skip(skip).cloned().collect(), b.total)
    }

    /// Every kept line's text, for tests and the lab's own checks.
    pub fn lines(&self) -> Vec<String> {
        self.lock().lines.iter().map(|l| l.text.clone()).collect()
    }
}

/// Every process pod's log, by (namespace, pod name).
#[derive(Default)]
pub struct Logs(Mutex<HashMap<(String, String), Arc<PodLog>>>);

impl Logs {
    fn map(&self) -> MutexGuard<'_, HashMap<(String, String), Arc<PodLog>>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A new, empty log for pod `uid` (replacing one of an older pod of the same name).
    pub fn open(&self, ns: &str, name: &str, uid: &str) -> Arc<PodLog> {
        let log = Arc::new(PodLog {
            uid: uid.to_string(),
            buf: Mutex::new(Buf::default()),
            tx: watch::channel((0, false)).0,
        });
        if let Some(old) = self.map().insert((ns.into(), name.into()), log.clone()) {
            old.finish();
        }
        log
    }

    pub fn get(&self, ns: &str, name: &str) -> Option<Arc<PodLog>> {
        self.map().get(&(ns.to_string(), name.to_string())).cloned()
    }

    /// Forgets pod `uid`'s log (its pod object is gone); followers end.
    pub fn remove(&self, ns: &str, name: &str, uid: &str) {
        let mut m = self.map();
        let key = (ns.to_string(), name.to_string());
        if m.get(&key).is_some_and(|l| l.uid == uid) {
            if let Some(l) = m.remove(&key) {
                l.finish();
            }
        }
    }
}

fn number(name: &str, v: Option<&str>) -> Result<Option<i64>, ApiError> {
    v.map(|v| {
        v.parse::<i64>()
            .ok()
            .filter(|n| *n >= 0)
            .ok_or_else(|| ApiError::bad_request(format!("invalid {name}: {v:?}")))
    })
    .transpose()
}

/// The container a log request is for, as the API server picks it, or
/// the 400 it answers.
fn container_of(pod: &Value, asked: Option<&str>) -> Result<String, ApiError> {
    let name = meta_str(pod, "name");
    let names: Vec<&str> = pod["spec"]["containers"]
        .as_array()
        .map(|cs| cs.iter().filter_map(|c| c["name"].as_str()).collect())
        .unwrap_or_default();
    match asked.filter(|c| !c.is_empty()) {
        Some(c) if names.contains(&c) => Ok(c.to_string()),
        Some(c) => Err(ApiError::bad_request(format!(
            "container {c} is not valid for pod {name}"
        ))),
        None if names.len() == 1 => Ok(names[0].to_string()),
        None => Err(ApiError::bad_request(format!(
            "a container name must be specified for pod {name}, choose one of: [{}]",
            names.join(" ")
        ))),
    }
}

/// `GET .../pods/{name}/log`: the pod's log as text/plain, streamed with
/// `follow=true` until the container has terminated and every line is sent.
pub(super) fn serve(sim: &Sim, ns: &str, name: &str, verb: &str, q: &Query) -> Response<Body> {
    if verb != "get" {
        return error(&ApiError::new(
            405,
            "MethodNotAllowed",
            format!("{verb} is not supported on pods/log"),
        ));
    }
    log_response(sim, ns, name, q).unwrap_or_else(|e| error(&e))
}

fn log_response(sim: &Sim, ns: &str, name: &str, q: &Query) -> Result<Response<Body>, ApiError> {
    let pod = sim
        .lock()
        .get(Kind::Pod, ns, name)
        .cloned()
        .ok_or_else(|| ApiError::not_found(Kind::Pod, name))?;
    let container = container_of(&pod, q.get("container"))?;
    if q.flag("previous") {
        return Err(ApiError::bad_request(format!(
            "previous terminated container \"{container}\" in pod \"{name}\" not found"
        )));
    }
    let state = pod["status"]["containerStatuses"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["name"] == container.as_str()))
        .map(|c| c["state"].clone());
    let waiting = match &state {
        None => Some("ContainerCreating"),
        Some(st) if !st["waiting"].is_null() => Some(
            st["waiting"]["reason"]
                .as_str()
                .unwrap_or("ContainerCreating"),
        ),
        Some(_) => None,
    };
    if let Some(why) = waiting {
        return Err(ApiError::bad_request(format!(
            "container \"{container}\" in pod \"{name}\" is waiting to start: {why}"
        )));
    }
    let tail = number("tailLines", q.get("tailLines"))?;
    let limit = number("limitBytes", q.get("limitBytes"))?;
    let since = match (
        number("sinceSeconds", q.get("sinceSeconds"))?,
        q.get("sinceTime"),
    ) {
        (Some(s), _) => Some(Utc::now() - chrono::Duration::seconds(s)),
        (None, Some(t)) => Some(
            DateTime::parse_from_rfc3339(t)
                .map_err(|_| ApiError::bad_request(format!("invalid sinceTime: {t:?}")))?
                .with_timezone(&Utc),
        ),
        (None, None) => None,
    };
    // Only a Job's pod has a process, and only its first container runs.
    let first = pod["spec"]["containers"][0]["name"] == container.as_str();
    let log = sim
        .logs
        .get(ns, name)
        .filter(|l| first && l.uid == meta_str(&pod, "uid"));
    let Some(log) = log else {
        return Ok(text_response(Full::new(Bytes::new()).boxed()));
    };
    let timestamps = q.flag("timestamps");
    let render = move |l: &Line| {
        let mut s = String::with_capacity(l.text.len() + 32);
        if timestamps {
            s.push_str(&l.at.to_rfc3339_opts(SecondsFormat::Nanos, true));
            s.push(' ');
        }
        s.push_str(&l.text);
        s.push('\n');
        s
    };
    let keep = move |l: &Line| since.is_none_or(|t| l.at >= t);
    let mut rx = log.tx.subscribe();
    let (mut lines, mut next) = log.since(0);
    lines.retain(|l| keep(l));
    if let Some(n) = tail {
        let n = n as usize;
        if lines.len() > n {
            lines.drain(..lines.len() - n);
        }
    }
    let mut budget = limit.map_or(usize::MAX, |n| n as usize);
    let mut chunk = String::new();
    for l in &lines {
        if !take(&mut chunk, &render(l), &mut budget) {
            break;
        }
    }
    if !q.flag("follow") || budget == 0 {
        return Ok(text_response(Full::new(Bytes::from(chunk)).boxed()));
    }
    let (tx, out) = mpsc::channel::<Bytes>(64);
    tokio::spawn(async move {
        if !chunk.is_empty() && tx.send(Bytes::from(chunk)).await.is_err() {
            return;
        }
        loop {
            let done = rx.borrow_and_update().1;
            let (more, after) = log.since(next);
            next = after;
            let mut chunk = String::new();
            for l in more.iter().filter(|l| keep(l)) {
                if !take(&mut chunk, &render(l), &mut budget) {
                    break;
                }
            }
            if !chunk.is_empty() && tx.send(Bytes::from(chunk)).await.is_err() {
                return;
            }
            if done || budget == 0 || rx.changed().await.is_err() {
                return;
            }
        }
    });
    let stream = futures::stream::unfold(out, |mut out| async move {
        out.recv()
            .await
            .map(|b| (Ok::<_, Infallible>(Frame::data(b)), out))
    });
    Ok(text_response(StreamBody::new(stream).boxed()))
}

/// Appends `s` to `chunk` within `budget` bytes (limitBytes); false once
/// the budget is spent.
fn take(chunk: &mut String, s: &str, budget: &mut usize) -> bool {
    if *budget == 0 {
        return false;
    }
    let mut n = s.len().min(*budget);
    while !s.is_char_boundary(n) {
        n -= 1;
    }
    chunk.push_str(&s[..n]);
    *budget -= n;
    n == s.len()
}

fn text_response(body: Body) -> Response<Body> {
    Response::builder()
        .status(200)
        .header("content-type", "text/plain")
        .body(body)
        .expect("static response parts")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_newest_lines() {
        let logs = Logs::default();
        let log = logs.open("ns", "p", "u");
        for i in 0..MAX_LINES + 5 {
            log.push(format!("line {i}"));
        }
        let (lines, next) = log.since(0);
        assert_eq!(lines.len(), MAX_LINES);
        assert_eq!(lines[0].text, "line 5");
        assert_eq!(next, (MAX_LINES + 5) as u64);
        let (more, _) = log.since(next - 2);
        assert_eq!(more.len(), 2);
        logs.remove("ns", "p", "other");
        assert!(logs.get("ns", "p").is_some(), "another pod's uid");
        logs.remove("ns", "p", "u");
        assert!(logs.get("ns", "p").is_none());
        assert!(log.tx.borrow().1, "followers are told it ended");
    }

    #[test]
    fn limit_bytes_cuts_at_a_character() {
        let (mut chunk, mut budget) = (String::new(), 5);
        assert!(take(&mut chunk, "abc\n", &mut budget));
        assert!(!take(&mut chunk, "é\n", &mut budget));
        assert_eq!(chunk, "abc\n");
        assert_eq!(budget, 1);
    }
}
