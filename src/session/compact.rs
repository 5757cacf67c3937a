//! What keeps a long window's log small: the samples that arrive every
//! second (each side's, each workload's, the lab witness's) are stored as
//! what changed since the previous one of their stream, an RFC 6902 JSON
//! Patch, with a whole sample every [`KEYFRAME_EVERY`] so a damaged line
//! costs minutes, not the rest of the log. Everything else is stored whole.
//!
//! On disk a diff is its own line, `{"seq":…,"at":…,"type":"changed",
//! "stream":"source","patch":[…]}`; reading gives back the event it stood
//! for, so nothing above this module ever sees one.

use std::collections::HashMap;

use anyhow::{anyhow, Context, Result};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::event::{Event, EventKind};

/// A stream's whole sample is written again after this many diffs.
pub const KEYFRAME_EVERY: u32 = 300;

/// The `type` of a diff line.
const CHANGED: &str = "changed";

/// The stream a sampled event belongs to: consecutive events of one stream
/// are diffed against each other. None: the event is stored whole.
fn stream(kind: &EventKind) -> Option<String> {
    match kind {
        EventKind::SourceSampled(_) => Some("source".into()),
        EventKind::TargetSampled(_) => Some("target".into()),
        EventKind::WorkloadSampled(w) => Some(format!("workload/{}/{}", w.namespace, w.deployment)),
        EventKind::AppWitness(_) => Some("witness".into()),
        EventKind::PoolerSampled(_) => Some("pooler".into()),
        _ => None,
    }
}

/// An event's JSON without its place in the log (`seq`, `at`): what is diffed.
fn body(event: &Event) -> Result<Map<String, Value>> {
    match serde_json::to_value(event).context("encoding event")? {
        Value::Object(mut map) => {
            map.remove("seq");
            map.remove("at");
            Ok(map)
        }
        _ => Err(anyhow!("an event encodes as a JSON object")),
    }
}

/// The writer's side: the last body written of each stream.
#[derive(Default)]
pub struct Compactor {
    last: HashMap<String, (Value, u32)>,
}

/// A line to write and what the compactor remembers once it is written.
pub struct Encoded {
    /// The diff line; None: the event is written whole, as it serializes.
    pub diff: Option<DiffLine>,
    remember: Option<(String, Value, u32)>,
}

/// A diff line, its keys in the order every line has: `seq`, `at`, `type`.
#[derive(serde::Serialize)]
pub struct DiffLine {
    seq: u64,
    at: chrono::DateTime<chrono::Utc>,
    #[serde(rename = "type")]
    kind: &'static str,
    stream: String,
    patch: json_patch::Patch,
}

impl Compactor {
    /// The line for `event`; [`Compactor::written`] once it is on disk (a
    /// failed write must not become the base of the next diff).
    pub fn encode(&self, event: &Event) -> Result<Encoded> {
        let Some(stream) = stream(&event.kind) else {
            return Ok(Encoded {
                diff: None,
                remember: None,
            });
        };
        let now = Value::Object(body(event)?);
        match self.last.get(&stream) {
            Some((before, since)) if *since < KEYFRAME_EVERY => {
                let patch = json_patch::diff(before, &now);
                Ok(Encoded {
                    diff: Some(DiffLine {
                        seq: event.seq,
                        at: event.at,
                        kind: CHANGED,
                        stream: stream.clone(),
                        patch,
                    }),
                    remember: Some((stream, now, since + 1)),
                })
            }
            _ => Ok(Encoded {
                diff: None,
                remember: Some((stream, now, 0)),
            }),
        }
    }

    pub fn written(&mut self, encoded: Encoded) {
        if let Some((stream, body, since)) = encoded.remember {
            self.last.insert(stream, (body, since));
        }
    }
}

/// The reader's side: the last body read of each stream.
#[derive(Default)]
pub struct Expander {
    last: HashMap<String, Value>,
}

/// A diff line as read.
#[derive(serde::Deserialize)]
struct DiffIn {
    seq: u64,
    at: chrono::DateTime<chrono::Utc>,
    stream: String,
    patch: json_patch::Patch,
}

/// The `type` of a line, read off its text without parsing it: every line
/// the writer writes begins `{"seq":…,"at":"…","type":"…"`.
fn type_of(line: &str) -> Option<&str> {
    let at = line.find("\"type\":\"")? + 8;
    let len = line[at..].find('"')?;
    Some(&line[at..at + len])
}

/// The types whose events form a stream (see [`stream`]).
const STREAMED: [&str; 4] = [
    "source_sampled",
    "target_sampled",
    "workload_sampled",
    "app_witness",
];

impl Expander {
    /// The event a line stands for, whole or a diff. Only samples go
    /// through a JSON tree (they are the next diff's base); every other
    /// event is parsed straight into its type.
    pub fn expand_line(&mut self, line: &str) -> Result<Event> {
        match type_of(line) {
            Some(CHANGED) => self.apply(serde_json::from_str(line)?),
            Some(t) if STREAMED.contains(&t) => {
                let line: Value = serde_json::from_str(line)?;
                self.expand(line)
            }
            _ => Ok(serde_json::from_str(line)?),
        }
    }

    /// A diff applied to its stream's last sample, in place: the event it stands for.
    fn apply(&mut self, d: DiffIn) -> Result<Event> {
        let base = self
            .last
            .get_mut(&d.stream)
            .ok_or_else(|| anyhow!("a diff of {} before any whole sample of it", d.stream))?;
        json_patch::patch(base, &d.patch)
            .map_err(|e| anyhow!("the diff of {} does not apply: {e}", d.stream))?;
        Ok(Event {
            seq: d.seq,
            at: d.at,
            kind: EventKind::deserialize(&*base)?,
        })
    }

    /// The event a parsed line stands for, whole or a diff.
    pub fn expand(&mut self, mut line: Value) -> Result<Event> {
        let is_diff = line.get("type").and_then(Value::as_str) == Some(CHANGED);
        if is_diff {
            return self.apply(serde_json::from_value(line)?);
        }
        let event = Event::deserialize(&line)?;
        if let Some(stream) = stream(&event.kind) {
            if let Value::Object(map) = &mut line {
                map.remove("seq");
                map.remove("at");
            }
            self.last.insert(stream, line);
        }
        Ok(event)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::log::tests::fixture;

    #[test]
    fn every_event_comes_back_exactly_and_samples_take_a_fraction() {
        let events = fixture();
        let mut c = Compactor::default();
        let mut x = Expander::default();
        let (mut whole, mut compact) = (0usize, 0usize);
        for event in &events {
            whole += serde_json::to_string(event).unwrap().len();
            let e = c.encode(event).unwrap();
            let text = match &e.diff {
                Some(d) => serde_json::to_string(d).unwrap(),
                None => serde_json::to_string(event).unwrap(),
            };
            compact += text.len();
            c.written(e);
            let back = x.expand(serde_json::from_str(&text).unwrap()).unwrap();
            assert_eq!(&back, event);
        }
        assert!(compact * 3 < whole, "{compact} of {whole} bytes");
    }

    #[test]
    fn a_diff_whose_base_is_missing_is_an_error_not_a_guess() {
        let line = serde_json::json!({"seq": 2, "at": "2026-01-01T00:00:00Z",
            "type": "changed", "stream": "source", "patch": []});
        let err = Expander::default().expand(line).unwrap_err().to_string();
        assert_eq!(err, "a diff of source before any whole sample of it");
    }

    #[test]
    fn a_stream_is_written_whole_again_every_keyframe() {
        let events = fixture();
        let source: Vec<&Event> = events
            .iter()
            .filter(|e| matches!(e.kind, EventKind::SourceSampled(_)))
            .collect();
        let mut c = Compactor::default();
        let mut kinds = Vec::new();
        for i in 0..(KEYFRAME_EVERY as usize + 2) {
            let e = c.encode(source[i % source.len()]).unwrap();
            kinds.push(match &e.diff {
                Some(_) => CHANGED.to_string(),
                None => "source_sampled".to_string(),
            });
            c.written(e);
        }
        assert_eq!(kinds[0], "source_sampled");
        assert_eq!(kinds[1], CHANGED);
        assert_eq!(kinds[KEYFRAME_EVERY as usize], CHANGED);
        assert_eq!(kinds[KEYFRAME_EVERY as usize + 1], "source_sampled");
    }
}
