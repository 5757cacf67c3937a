//! The fold from events to the model: samples, counts, verification, keys.
use super::*;
use crate::model::{stale_since, ExactCount};
use crate::session::sample::{SlotRow, SourceSample, TableEstimate};
use crate::session::{Endpoint, SessionInfo};
use chrono::{DateTime, Utc};

pub(in crate::model) fn at(s: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_700_000_000 + s, 0).unwrap()
}

pub(in crate::model) fn info() -> SessionInfo {
    let ep = |l: &str| Endpoint {
        label: l.into(),
        describe: format!("{l}@h:5432/db"),
    };
    SessionInfo {
        format_version: crate::session::event::FORMAT_VERSION,
        tool_version: "t".into(),
        operator: None,
        config_fingerprint: None,
        mode: "test".into(),
        config_path: "c.toml".into(),
        source: ep("old"),
        target: ep("new"),
        publication: "p".into(),
        subscription: "s".into(),
        slot: "s".into(),
        max_lag_bytes: 100,
        max_lag_seconds: 5.0,
        max_retained_wal_bytes: 1000,
        stale_after_seconds: 3.0,
        refresh_ms: 1000,
        kubernetes: None,
        read_only: false,
        sequence_stride: 0,
        app_roles: vec![],
        freeze_budget_secs: 60,
        on_budget_exceeded: Default::default(),
        report_path: None,
        runbook: crate::runbook::Variant::Logical,
        dump_jobs: 4,
        copy_job: None,
        database: None,
        pooler: None,
        config_users: false,
    }
}

pub(in crate::model) fn source(slot_lag: Option<i64>) -> SourceSample {
    SourceSample {
        server_version: "15".into(),
        rows_written: None,
        wal_level: "logical".into(),
        current_wal_lsn: "0/10".into(),
        slots: slot_lag
            .map(|lag| SlotRow {
                name: "s".into(),
                plugin: Some("pgoutput".into()),
                slot_type: "logical".into(),
                database: Some("db".into()),
                active: true,
                active_pid: Some(1),
                wal_status: Some("reserved".into()),
                retained_bytes: Some(lag * 2),
                confirmed_flush_lsn: Some("0/1".into()),
                lag_bytes: Some(lag),
                safe_wal_size: None,
            })
            .into_iter()
            .collect(),
        senders: vec![],
        publications: vec![],
        tables: vec![TableEstimate {
            table: TableRef::new("public", "t"),
            estimated_rows: 10,
            size_bytes: 8192,
            has_primary_key: true,
            replica_identity: "d".into(),
            partitions: 0,
            partitions_without_identity: vec![],
        }],
        poll_ms: 1.0,
    }
}

pub(in crate::model) fn target() -> crate::session::sample::TargetSample {
    crate::session::sample::TargetSample {
        server_version: "18".into(),
        rows_written: None,
        subscriptions: vec![],
        sub_tables: vec![],
        copies: vec![],
        tables: vec![],
        poll_ms: 1.0,
    }
}

pub(in crate::model) struct Feed {
    pub m: Model,
    pub view: crate::model::View,
    seq: u64,
}

impl Feed {
    pub fn new() -> Self {
        Self::with(info())
    }
    pub fn with(info: SessionInfo) -> Self {
        let mut f = Feed {
            m: Model::default(),
            view: crate::model::View::default(),
            seq: 0,
        };
        f.send(0, EventKind::SessionStarted(Box::new(info)));
        f
    }
    pub fn send(&mut self, t: i64, kind: EventKind) -> Vec<Effect> {
        self.seq += 1;
        update(
            &mut self.m,
            &Event {
                seq: self.seq,
                at: at(t),
                kind,
            },
        )
    }
    /// A key as the runtime handles it: through the keymap, the
    /// resulting command (if any) logged and folded.
    pub fn key(&mut self, t: i64, k: &str) -> Vec<Effect> {
        match crate::model::keymap::dispatch(&self.m, &mut self.view, k) {
            Some(command) => self.send(t, EventKind::Command(command)),
            None => vec![],
        }
    }
    /// Both sides sampled (the source with `lag` bytes of slot lag) and
    /// the Kubernetes API answering, all at `t`.
    pub fn live(&mut self, t: i64, lag: i64) {
        self.send(t, EventKind::SourceSampled(source(Some(lag))));
        self.send(t, EventKind::TargetSampled(target()));
        self.send(t, EventKind::KubeAlive);
    }
}

#[test]
fn lag_history_starts_with_the_slot_and_failures_are_gaps() {
    let mut f = Feed::new();
    f.send(1, EventKind::SourceSampled(source(None)));
    assert!(f.m.lag_history.is_empty());
    f.send(2, EventKind::SourceSampled(source(Some(42))));
    f.send(
        3,
        EventKind::CollectorFailed {
            side: Side::Source,
            error: "refused".into(),
        },
    );
    let bytes: Vec<_> = f.m.lag_history.iter().map(|p| p.bytes).collect();
    assert_eq!(bytes, vec![Some(42), None]);
    for t in 0..(LAG_HISTORY as i64 + 10) {
        f.send(10 + t, EventKind::SourceSampled(source(Some(t))));
    }
    assert_eq!(f.m.lag_history.len(), LAG_HISTORY);
    assert_eq!(
        f.m.lag_history.back().unwrap().bytes,
        Some(LAG_HISTORY as i64 + 9)
    );
}

#[test]
fn stale_since_the_last_good_sample_and_recovers() {
    let mut f = Feed::new();
    f.send(1, EventKind::SourceSampled(source(Some(0))));
    assert_eq!(stale_since(&f.m.source, f.m.now, 3.0), None);
    f.send(
        2,
        EventKind::CollectorFailed {
            side: Side::Source,
            error: "a".into(),
        },
    );
    f.send(
        5,
        EventKind::CollectorFailed {
            side: Side::Source,
            error: "b".into(),
        },
    );
    assert_eq!(stale_since(&f.m.source, f.m.now, 3.0), Some(at(1)));
    assert_eq!(
        f.m.source.failing.as_ref().map(|(s, e)| (*s, e.as_str())),
        Some((at(2), "b"))
    );
    f.send(6, EventKind::SourceSampled(source(Some(0))));
    assert_eq!(stale_since(&f.m.source, f.m.now, 3.0), None);
    // Silence is staleness too: ticks advance the clock past the threshold.
    f.send(10, EventKind::Tick);
    assert_eq!(stale_since(&f.m.source, f.m.now, 3.0), Some(at(6)));
}

#[test]
fn exact_count_lifecycle_and_guarded_quit() {
    let mut f = Feed::new();
    assert_eq!(f.key(1, "c"), vec![], "nothing to count before a sample");
    f.send(2, EventKind::SourceSampled(source(None)));
    let t = TableRef::new("public", "t");
    assert_eq!(
        f.key(3, "c"),
        vec![Effect::StartExactCount {
            run: 1,
            tables: vec![t.clone()]
        }]
    );
    assert_eq!(f.key(4, "c"), vec![], "one count at a time");
    assert_eq!(f.key(5, "q"), vec![], "quit asks first while counting");
    assert!(f.view.confirm_quit);
    assert_eq!(f.key(6, "n"), vec![]);
    assert!(!f.view.confirm_quit);
    f.send(
        7,
        EventKind::CountProgress {
            run: 1,
            side: Side::Source,
            table: t.clone(),
            rows: 10,
            elapsed_ms: 1.0,
        },
    );
    assert_eq!(f.m.count_run.as_ref().unwrap().done_source, 1);
    f.key(8, "q");
    assert_eq!(
        f.key(9, "y"),
        vec![Effect::CancelExactCount { run: 1 }, Effect::Quit]
    );
    assert!(f.m.quit);
}

#[test]
fn finished_run_clears_cells_that_never_reported() {
    let mut f = Feed::new();
    f.send(1, EventKind::SourceSampled(source(None)));
    f.key(2, "c");
    f.send(
        3,
        EventKind::CountFinished {
            run: 1,
            cancelled: true,
        },
    );
    let cell = &f.m.counts[&TableRef::new("public", "t")];
    assert_eq!(cell.source, ExactCount::NotCounted);
    assert!(f.m.count_run.as_ref().unwrap().cancelled);
    assert_eq!(
        f.key(4, "q"),
        vec![Effect::Quit],
        "nothing running: quit at once"
    );
}

#[test]
fn help_overlay_swallows_keys() {
    let mut f = Feed::new();
    f.key(1, "?");
    assert!(f.view.help);
    assert_eq!(f.key(2, "c"), vec![]);
    f.key(3, "Esc");
    assert!(!f.view.help);
}

#[test]
fn verification_lifecycle_names_the_rows_that_differ() {
    use crate::model::{table_rows, RowState};
    use crate::session::sample::TargetSample;
    use crate::verify::{DiffKind, RowDifference, TableStatus, TableVerify, VerifyProgress};
    let mut f = Feed::new();
    f.send(1, EventKind::SourceSampled(source(None)));
    assert_eq!(
        f.key(2, "v"),
        vec![],
        "nothing verifiable before the target has the table"
    );
    let mut tgt_sample = TargetSample {
        server_version: "16".into(),
        rows_written: None,
        subscriptions: vec![],
        sub_tables: vec![],
        copies: vec![],
        tables: source(None).tables,
        poll_ms: 1.0,
    };
    f.send(3, EventKind::TargetSampled(tgt_sample.clone()));
    let t = TableRef::new("public", "t");
    assert_eq!(
        f.key(4, "v"),
        vec![Effect::StartVerify {
            run: 1,
            tables: vec![t.clone()]
        }]
    );
    assert_eq!(table_rows(&f.m)[0].state, RowState::Verifying);
    f.send(
        5,
        EventKind::VerifyProgress {
            run: 1,
            progress: VerifyProgress {
                table: t.clone(),
                ranges_done: 2,
                ranges_total: 4,
                rows_done: 5,
                mismatches: 1,
            },
        },
    );
    assert_eq!(
        table_rows(&f.m)[0].verify_detail.as_deref(),
        Some("checksum 2/4 ranges, 1 differing rows so far")
    );
    assert_eq!(f.key(6, "q"), vec![], "quitting asks while verifying");
    f.key(7, "n");
    let mut result = TableVerify::new(t.clone());
    result.status = TableStatus::Mismatch;
    result.differences_total = 2;
    result.differences = vec![
        RowDifference {
            kind: DiffKind::Changed,
            key: "id=7".into(),
            columns: vec!["status".into()],
        },
        RowDifference {
            kind: DiffKind::MissingOnTarget,
            key: "id=9".into(),
            columns: vec![],
        },
    ];
    f.send(8, EventKind::VerifyTableDone { run: 1, result });
    f.send(
        9,
        EventKind::VerifyFinished {
            run: 1,
            cancelled: false,
            error: None,
        },
    );
    let row = &table_rows(&f.m)[0];
    assert_eq!(row.state, RowState::ChecksumMismatch);
    assert_eq!(
        row.verify_detail.as_deref(),
        Some("2 rows differ: id=7 changed (status); id=9 missing on target")
    );
    assert!(!f.m.verify_running());
    // An exact count in progress takes the state back until it finishes.
    tgt_sample.poll_ms = 2.0;
    f.send(10, EventKind::TargetSampled(tgt_sample));
    f.key(11, "c");
    assert_eq!(table_rows(&f.m)[0].state, RowState::Counting);
}

#[test]
fn verification_yields_to_replication_lag_and_stale_data() {
    use crate::model::verify_throttle;
    let mut f = Feed::new();
    assert!(verify_throttle(&f.m).is_some(), "no data yet: hold back");
    f.send(1, EventKind::SourceSampled(source(Some(10))));
    assert_eq!(verify_throttle(&f.m), None, "10 B lag, threshold 100 B");
    f.send(2, EventKind::SourceSampled(source(Some(51))));
    assert_eq!(
        verify_throttle(&f.m).as_deref(),
        Some("replication lag 51 B over half the threshold")
    );
    f.send(3, EventKind::SourceSampled(source(Some(0))));
    assert_eq!(verify_throttle(&f.m), None);
    f.send(
        4,
        EventKind::CollectorFailed {
            side: Side::Source,
            error: "x".into(),
        },
    );
    assert_eq!(
        verify_throttle(&f.m).as_deref(),
        Some("source monitoring stale")
    );
}

#[test]
fn a_mismatch_no_row_confirms_is_unstable_not_a_difference() {
    use crate::model::{table_rows, RowState};
    use crate::verify::{TableStatus, TableVerify};
    let mut f = Feed::new();
    f.send(1, EventKind::SourceSampled(source(None)));
    let mut result = TableVerify::new(TableRef::new("public", "t"));
    result.status = TableStatus::Mismatch;
    f.send(2, EventKind::VerifyTableDone { run: 0, result });
    assert_eq!(table_rows(&f.m)[0].state, RowState::ChecksumUnstable);
}

#[test]
fn continuous_verification_shows_fraction_pending_and_confirmed_rows() {
    use crate::model::{table_rows, RowState};
    use crate::session::sample::TargetSample;
    let mut f = Feed::new();
    f.send(1, EventKind::SourceSampled(source(None)));
    f.send(
        2,
        EventKind::TargetSampled(TargetSample {
            server_version: "16".into(),
            rows_written: None,
            subscriptions: vec![],
            sub_tables: vec![],
            copies: vec![],
            tables: source(None).tables,
            poll_ms: 1.0,
        }),
    );
    let t = TableRef::new("public", "t");
    // As logs written before verify-live was a checkpoint hold it.
    assert_eq!(
        f.send(3, EventKind::Command(SessionCommand::VerifyContinuous)),
        vec![Effect::StartContinuousVerify {
            run: 1,
            tables: vec![t.clone()]
        }]
    );
    assert!(f.m.verify_run.as_ref().unwrap().continuous);
    // Through serde, as the log delivers it: fields added later default.
    let live = |verified: u64, pending: u64, hot: u64, mismatched: u64, diffs| {
        serde_json::from_value(serde_json::json!({
            "table": {"schema": "public", "name": "t"},
            "pass": 2, "method": "primary_key",
            "ranges_total": 10, "ranges_verified": verified,
            "ranges_pending": pending, "ranges_mismatched": mismatched,
            "ranges_hot": hot,
            "rows_total": 1000, "rows_verified": verified * 100,
            "rows_per_sec": 5000.0, "eta_secs": 4.4,
            "differences": diffs,
        }))
        .unwrap()
    };
    f.send(
        4,
        EventKind::VerifyLive {
            run: 1,
            progress: live(8, 2, 1, 0, serde_json::json!([])),
        },
    );
    let row = &table_rows(&f.m)[0];
    assert_eq!(row.state, RowState::Verifying);
    assert_eq!(row.state_note.as_deref(), Some("80% verified"));
    assert_eq!(
        row.verify_detail.as_deref(),
        Some("live pass 2: 80% verified · 2 of 10 ranges pending (1 changing) · ETA 4 s")
    );
    // A stale run's progress is ignored.
    f.send(
        5,
        EventKind::VerifyLive {
            run: 9,
            progress: live(10, 0, 0, 0, serde_json::json!([])),
        },
    );
    assert_eq!(table_rows(&f.m)[0].state, RowState::Verifying);
    f.send(
        6,
        EventKind::VerifyLive {
            run: 1,
            progress: live(
                9,
                0,
                0,
                1,
                serde_json::json!([{"key": "id=42", "kind": "changed", "columns": ["email"]}]),
            ),
        },
    );
    let row = &table_rows(&f.m)[0];
    assert_eq!(row.state, RowState::ChecksumMismatch);
    assert_eq!(
        row.verify_detail.as_deref(),
        Some("live: 1 of 10 ranges differ · 1 row differs: id=42 changed (email)")
    );
    f.send(
        7,
        EventKind::VerifyLive {
            run: 1,
            progress: live(10, 0, 0, 0, serde_json::json!([])),
        },
    );
    assert_eq!(table_rows(&f.m)[0].state, RowState::ChecksumVerified);
    assert_eq!(table_rows(&f.m)[0].state_note, None);
    // Every range verified, but rows inside the lag window left out: not 100%.
    let mut recent: crate::verify::ContinuousProgress = live(10, 0, 0, 0, serde_json::json!([]));
    (recent.rows_verified, recent.rows_pending) = (950, 50);
    f.send(
        8,
        EventKind::VerifyLive {
            run: 1,
            progress: recent,
        },
    );
    let row = &table_rows(&f.m)[0];
    assert_eq!(row.state, RowState::ChecksumVerified);
    assert_eq!(
        row.state_note.as_deref(),
        Some("verified, 50 recent unchecked")
    );
    assert_eq!(
        row.verify_detail.as_deref(),
        Some(
            "live: every range verified; 50 rows modified within the lag window not \
             compared yet (10 ranges, pass 2, primary key ranges)"
        )
    );
    assert_eq!(f.key(8, "x"), vec![Effect::CancelVerify { run: 1 }]);
    f.send(
        9,
        EventKind::VerifyFinished {
            run: 1,
            cancelled: true,
            error: None,
        },
    );
    assert!(!f.m.verify_running());
    assert_eq!(
        table_rows(&f.m)[0].state,
        RowState::ChecksumVerified,
        "the last state stays on screen"
    );
}

/// A run of `checkpoint` with `steps` as the log would say it: recorded as
/// started at `t`, each step started and done, then finished (`ok`, saying
/// `message`, and the switch it made, if any).
pub(in crate::model) fn ran(
    f: &mut Feed,
    t: i64,
    checkpoint: crate::runbook::CheckpointId,
    steps: Vec<crate::runbook::Step>,
    ok: bool,
    message: &str,
    switched: Option<crate::session::SwitchRecord>,
) {
    f.m.next_run += 1;
    let id = f.m.next_run;
    f.m.actions.history.push(crate::model::CheckpointRun {
        id,
        checkpoint,
        plan: crate::runbook::Plan {
            checkpoint,
            confirm: crate::runbook::Confirm::Yes,
            steps: steps.clone(),
            notes: vec![],
        },
        overridden: None,
        auto: None,
        started_at: at(t),
        steps: vec![],
        checks: vec![],
        sequences: vec![],
        copy: None,
        job_log: Default::default(),
        legacy_steps: vec![],
        finished: None,
    });
    for (index, step) in steps.into_iter().enumerate() {
        f.send(t, EventKind::StepStarted { id, index, step });
        f.send(
            t,
            EventKind::StepDone {
                id,
                index,
                message: "done".into(),
                elapsed_ms: 1.0,
            },
        );
    }
    f.send(
        t + 1,
        EventKind::RunFinished {
            id,
            ok,
            message: message.into(),
            switched,
        },
    );
}
