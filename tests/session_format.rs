//! The session log's format holds: a log written by an earlier version
//! (tests/fixtures/sessions/, format 1, a full lab cutover 15 → 18 and a
//! resume) still reads and folds to what that console showed, and every
//! field it holds still means what it meant.

use std::path::Path;

use cutover::model::{self, Model};
use cutover::runbook::CheckpointId;
use cutover::session::log::read_log;
use cutover::session::{EventKind, Side};

const V1: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/sessions/v0-full-runbook.jsonl"
);

fn fold(events: &[cutover::session::Event]) -> Model {
    let mut m = Model::default();
    for e in events {
        model::update(&mut m, e);
    }
    m
}

#[test]
fn a_log_written_by_an_earlier_version_folds_to_the_same_cutover() {
    let read = read_log(Path::new(V1)).unwrap();
    assert_eq!(read.torn_bytes, 0);
    assert_eq!(read.events.len(), 402);
    let m = fold(&read.events);
    let info = m.info.as_ref().unwrap();
    assert_eq!(
        info.format_version, 1,
        "a log without the field is format 1"
    );
    assert_eq!(info.operator, None);
    let passed: Vec<CheckpointId> = m
        .actions
        .history
        .iter()
        .filter(|r| matches!(r.finished, Some((_, true, _))))
        .map(|r| r.checkpoint)
        .collect();
    use CheckpointId::*;
    assert_eq!(
        passed,
        [
            CopySchema,
            CreatePublication,
            CreateSubscription,
            WaitInitialSync,
            VerifyLive,
            Preflight,
            FreezeWrites,
            FinalCheck,
            AdvanceSequences,
            ReverseReplication,
            SwitchConfig,
            RolloutRestart,
            AppOnTarget
        ]
    );
    let switched = &m.actions.switched.as_ref().unwrap().1;
    assert_eq!(switched.object, "configmap/app-db");
    assert_eq!(switched.previous_fingerprint.as_deref(), Some("ff76e791"));
    assert_eq!(switched.new_fingerprint, "08ed26d8");
    let frozen = m.actions.frozen.as_ref().unwrap();
    assert_eq!(frozen.grants.len(), 21);
    // The final check's counts, as the count pane showed them.
    let orders = &m.counts[&cutover::session::TableRef::new("public", "orders")];
    match (&orders.source, &orders.target) {
        (
            model::ExactCount::Counted { rows: s, .. },
            model::ExactCount::Counted { rows: t, .. },
        ) => {
            assert_eq!(s, t);
            assert!(*s > 0);
        }
        other => panic!("orders not counted on both sides: {other:?}"),
    }
    let seqs = &m
        .actions
        .history
        .iter()
        .find(|r| r.checkpoint == AdvanceSequences)
        .unwrap()
        .sequences;
    assert_eq!(seqs.len(), 4);
    assert!(seqs.iter().all(|s| s.set_to >= s.source));
    assert_eq!(m.ended.as_deref(), Some("operator quit"));
    assert_eq!(
        m.target.last.as_ref().map(|t| t.server_version.as_str()),
        Some("18.6")
    );
}

/// Every key of every line of the old log survives a read and a write with
/// the same value: a renamed, removed or retyped field in any logged type
/// (a step, a verification result, a workload) fails here, not in a replay.
#[test]
fn every_field_an_earlier_version_wrote_reads_back_unchanged() {
    let text = std::fs::read_to_string(V1).unwrap();
    let events = read_log(Path::new(V1)).unwrap().events;
    let mut kinds = std::collections::BTreeSet::new();
    for (line, event) in text.lines().zip(&events) {
        let old: serde_json::Value = serde_json::from_str(line).unwrap();
        let now = serde_json::to_value(event).unwrap();
        kinds.insert(old["type"].as_str().unwrap().to_string());
        if let Some(missing) = lost(&old, &now, String::new()) {
            panic!("event {}: {missing}", event.seq);
        }
    }
    assert!(
        kinds.len() >= 20,
        "the fixture covers {} kinds",
        kinds.len()
    );
}

/// Where `now` lost or changed something `old` held (extra keys are fine:
/// new fields with defaults).
fn lost(old: &serde_json::Value, now: &serde_json::Value, at: String) -> Option<String> {
    use serde_json::Value;
    match (old, now) {
        (Value::Object(o), Value::Object(n)) => o.iter().find_map(|(k, v)| match n.get(k) {
            None => Some(format!("{at}/{k} is gone")),
            Some(nv) => lost(v, nv, format!("{at}/{k}")),
        }),
        (Value::Array(o), Value::Array(n)) if o.len() == n.len() => o
            .iter()
            .zip(n)
            .enumerate()
            .find_map(|(i, (a, b))| lost(a, b, format!("{at}/{i}"))),
        (a, b) if a == b => None,
        (a, b) => Some(format!("{at}: was {a}, now {b}")),
    }
}

#[test]
fn this_version_writes_a_header_that_says_who_where_and_which_format() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("cutover.toml");
    std::fs::write(
        &cfg,
        "[source]\ndsn = \"host=db1 dbname=app user=app password=planted-3f9a\"\n\
         [target]\ndsn = \"host=db2 dbname=app user=app\"\n",
    )
    .unwrap();
    let config = cutover::config::load(&cfg).unwrap();
    let info = cutover::runtime::session_info(&config, "live", false);
    assert_eq!(info.format_version, cutover::session::event::FORMAT_VERSION);
    let op = info.operator.as_ref().unwrap();
    assert!(!op.user.is_empty() && !op.host.is_empty(), "{op:?}");
    let fp = info.config_fingerprint.as_deref().unwrap();
    assert!(fp.starts_with("sha256:") && fp.len() == 7 + 64, "{fp}");
    let json = serde_json::to_string(&EventKind::SessionStarted(Box::new(info))).unwrap();
    assert!(!json.contains("planted-3f9a"), "{json}");
}

#[test]
fn a_log_in_a_newer_format_is_refused_not_misread() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.jsonl");
    let first = std::fs::read_to_string(V1)
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .replacen(
            "\"tool_version\"",
            "\"format_version\":99,\"tool_version\"",
            1,
        );
    std::fs::write(&path, format!("{first}\n")).unwrap();
    let err = format!("{:#}", read_log(&path).unwrap_err());
    assert!(
        err.contains("s.jsonl:1: not a session event: written by cutover 0.1.0 in log format 99"),
        "{err}"
    );
}

#[test]
fn samples_are_stored_as_what_changed_and_read_back_whole() {
    let events = read_log(Path::new(V1)).unwrap().events;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.jsonl");
    let mut w = cutover::session::log::LogWriter::create(&path).unwrap();
    for e in &events {
        w.append(e).unwrap();
    }
    drop(w);
    let back = read_log(&path).unwrap();
    assert_eq!(back.events, events);
    let (old, new) = (
        std::fs::metadata(V1).unwrap().len(),
        std::fs::metadata(&path).unwrap().len(),
    );
    eprintln!("the fixture: {old} bytes in format 1, {new} bytes compacted");
    assert!(new * 3 < old, "{new} of {old}");
    let text = std::fs::read_to_string(&path).unwrap();
    let mut by_type = std::collections::BTreeMap::<String, usize>::new();
    for l in text.lines() {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        *by_type
            .entry(v["type"].as_str().unwrap_or("?").to_string())
            .or_default() += l.len() + 1;
    }
    eprintln!("compacted bytes by type: {by_type:?}");
    let changed = text
        .lines()
        .filter(|l| l.contains("\"type\":\"changed\""))
        .count();
    let sampled = events
        .iter()
        .filter(|e| {
            matches!(
                e.kind,
                EventKind::SourceSampled(_) | EventKind::TargetSampled(_)
            )
        })
        .count();
    assert!(
        changed + 4 >= sampled,
        "{changed} diffs for {sampled} samples"
    );
    let _ = Side::Source;
}

/// The shape of every logged kind, as this version writes it: each key path
/// with its JSON type, from the first event of each kind in the two
/// recordings (format 1 and the example in format 2). A field renamed,
/// removed, added or retyped anywhere in a logged type — a step, a
/// verification result, a workload, a sample — changes this snapshot, so a
/// format change is always a reviewed one (and FORMAT.md's table with it).
#[test]
fn the_shape_of_every_logged_kind_is_reviewed() {
    use std::collections::BTreeMap;
    fn shape(v: &serde_json::Value, at: String, out: &mut std::collections::BTreeSet<String>) {
        use serde_json::Value;
        match v {
            Value::Object(m) => {
                for (k, x) in m {
                    shape(x, format!("{at}.{k}"), out);
                }
            }
            Value::Array(a) => {
                out.insert(format!("{at}[]"));
                for x in a {
                    shape(x, format!("{at}[]"), out);
                }
            }
            Value::Null => {
                out.insert(format!("{at}: null"));
            }
            Value::Bool(_) => {
                out.insert(format!("{at}: bool"));
            }
            Value::Number(_) => {
                out.insert(format!("{at}: number"));
            }
            Value::String(_) => {
                out.insert(format!("{at}: string"));
            }
        }
    }
    let example = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/sessions/example-lab-15-to-18.jsonl"
    );
    let mut kinds: BTreeMap<String, std::collections::BTreeSet<String>> = BTreeMap::new();
    for path in [Path::new(V1), Path::new(example)] {
        for e in read_log(path).unwrap().events {
            let v = serde_json::to_value(&e).unwrap();
            let kind = v["type"].as_str().unwrap().to_string();
            let set = kinds.entry(kind).or_default();
            shape(&v, String::new(), set);
        }
    }
    let mut text = String::new();
    for (kind, paths) in &kinds {
        text.push_str(&format!("{kind}\n"));
        for p in paths {
            if p != ".seq: number" && p != ".at: string" && p != ".type: string" {
                text.push_str(&format!("  {p}\n"));
            }
        }
    }
    insta::assert_snapshot!("logged_kinds", text);
}
