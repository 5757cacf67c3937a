//! Screens for the render tests: models built the only way the program
//! builds them, by folding real events through `model::update`, and the
//! helpers that draw and read them. Shared by every `render*` test binary.

#![allow(dead_code)]

use chrono::{DateTime, Duration, TimeZone, Utc};
use ratatui::backend::TestBackend;
use ratatui::Terminal;

use cutover::model::{keymap, update, Model, View};
use cutover::session::sample::{
    CopyProgress, PublicationRow, SenderRow, SlotRow, SourceSample, SubTableRow, SubscriptionRow,
    TableEstimate, TableRef, TargetSample,
};
use cutover::session::{Endpoint, Event, EventKind, SessionInfo, Side};
use cutover::ui::{view, Theme};

pub const MIB: i64 = 1024 * 1024;

/// Folds events at a controllable clock, as the runtime would.
pub struct Fixture {
    pub model: Model,
    /// What this viewer sees: help, the quit question, the name being typed.
    pub view: View,
    pub seq: u64,
    pub t0: DateTime<Utc>,
    pub ms: i64,
}

impl Fixture {
    pub fn new() -> Self {
        let mut f = Fixture {
            model: Model::default(),
            view: View::default(),
            seq: 0,
            t0: Utc.with_ymd_and_hms(2025, 3, 14, 12, 0, 0).unwrap(),
            ms: 0,
        };
        f.push(EventKind::SessionStarted(Box::new(info())));
        f
    }

    pub fn at(&mut self, secs: f64) -> &mut Self {
        self.ms = (secs * 1000.0).round() as i64;
        self
    }

    pub fn push(&mut self, kind: EventKind) -> &mut Self {
        self.seq += 1;
        let ev = Event {
            seq: self.seq,
            at: self.t0 + Duration::milliseconds(self.ms),
            kind,
        };
        update(&mut self.model, &ev);
        self
    }

    /// A key as the runtime handles it: the keymap changes the view and
    /// yields the command to log and fold, if any.
    pub fn key(&mut self, k: &str) -> &mut Self {
        if let Some(command) = keymap::dispatch(&self.model, &mut self.view, k) {
            self.push(EventKind::Command(command));
        }
        self
    }

    pub fn screen(&self, w: u16, h: u16) -> String {
        text(&render_view(
            &self.model,
            &self.view,
            &Theme::default(),
            w,
            h,
        ))
    }

    pub fn counted(&mut self, side: Side, table: &str, rows: i64) -> &mut Self {
        self.push(EventKind::CountProgress {
            run: 1,
            side,
            table: t(table),
            rows,
            elapsed_ms: 300.0,
        })
    }
}

pub fn info() -> SessionInfo {
    SessionInfo {
        format_version: cutover::session::event::FORMAT_VERSION,
        operator: None,
        config_fingerprint: None,
        tool_version: "0.1.0".into(),
        mode: "live".into(),
        config_path: "cutover.toml".into(),
        source: Endpoint {
            label: "old-pg14".into(),
            describe: "app@10.0.1.5:5432/shop".into(),
        },
        target: Endpoint {
            label: "new-pg16".into(),
            describe: "app@10.0.2.7:5432/shop".into(),
        },
        publication: "cutover_pub".into(),
        subscription: "cutover_sub".into(),
        slot: "cutover_sub".into(),
        max_lag_bytes: 16 * MIB,
        max_lag_seconds: 5.0,
        max_retained_wal_bytes: 1024 * MIB,
        stale_after_seconds: 10.0,
        refresh_ms: 1000,
        kubernetes: None,
        read_only: false,
        sequence_stride: 0,
        app_roles: vec![],
        freeze_budget_secs: 60,
        on_budget_exceeded: Default::default(),
        report_path: None,
        runbook: cutover::runbook::Variant::Logical,
        dump_jobs: 4,
        copy_job: None,
        database: None,
        pooler: None,
        config_users: false,
    }
}

pub fn t(name: &str) -> TableRef {
    TableRef::new("public", name)
}

/// (name, estimated rows, has PK)
pub const TABLES: [(&str, i64, bool); 6] = [
    ("audit_log", 880_000, false),
    ("customers", 120_400, true),
    ("order_items", 3_400_000, true),
    ("orders", 1_250_000, true),
    ("products", 5_000, true),
    ("sessions", 42_000, true),
];

pub fn estimates(scale: f64, skip: &[&str]) -> Vec<TableEstimate> {
    TABLES
        .iter()
        .filter(|(n, _, _)| !skip.contains(n))
        .map(|(n, rows, pk)| TableEstimate {
            table: t(n),
            estimated_rows: (*rows as f64 * scale) as i64,
            size_bytes: rows * 120,
            has_primary_key: *pk,
            replica_identity: if *pk { "d".into() } else { "f".into() },
            partitions: 0,
            partitions_without_identity: vec![],
        })
        .collect()
}

pub fn source(lag: i64) -> SourceSample {
    SourceSample {
        server_version: "14.11 (Debian 14.11-1.pgdg120+2)".into(),
        rows_written: None,
        wal_level: "logical".into(),
        current_wal_lsn: "0/3180000".into(),
        slots: vec![
            SlotRow {
                name: "cutover_sub".into(),
                plugin: Some("pgoutput".into()),
                slot_type: "logical".into(),
                database: Some("shop".into()),
                active: true,
                active_pid: Some(31337),
                wal_status: Some("reserved".into()),
                retained_bytes: Some(lag + 2 * MIB),
                confirmed_flush_lsn: Some("0/3000060".into()),
                lag_bytes: Some(lag),
                safe_wal_size: None,
            },
            SlotRow {
                name: "debezium_orders".into(),
                plugin: Some("test_decoding".into()),
                slot_type: "logical".into(),
                database: Some("shop".into()),
                active: false,
                active_pid: None,
                wal_status: Some("extended".into()),
                retained_bytes: Some(812 * MIB),
                confirmed_flush_lsn: Some("0/1A2B3C0".into()),
                lag_bytes: Some(812 * MIB),
                safe_wal_size: None,
            },
        ],
        senders: vec![SenderRow {
            application_name: "cutover_sub".into(),
            state: Some("streaming".into()),
            sent_lsn: Some("0/3180000".into()),
            write_lag_ms: Some(12.4),
            flush_lag_ms: Some(35.0),
            replay_lag_ms: Some(35.2),
        }],
        publications: vec![PublicationRow {
            name: "cutover_pub".into(),
            all_tables: false,
            tables: 6,
            via_root: false,
        }],
        tables: estimates(1.0, &[]),
        poll_ms: 4.2,
    }
}

pub fn target(skip_tables: &[&str]) -> TargetSample {
    let sub = |name: &str, state: &str| SubTableRow {
        subscription: "cutover_sub".into(),
        table: t(name),
        state: state.into(),
        lsn: None,
    };
    TargetSample {
        server_version: "16.2".into(),
        rows_written: None,
        subscriptions: vec![SubscriptionRow {
            name: "cutover_sub".into(),
            enabled: true,
            slot_name: Some("cutover_sub".into()),
            publications: vec!["cutover_pub".into()],
            worker_pid: Some(4242),
            received_lsn: Some("0/3000060".into()),
            latest_end_lsn: Some("0/3000060".into()),
            last_msg_age_s: Some(0.4),
        }],
        sub_tables: vec![
            sub("audit_log", "i"),
            sub("customers", "r"),
            sub("order_items", "d"),
            sub("orders", "r"),
            sub("products", "r"),
            sub("sessions", "s"),
        ],
        copies: vec![CopyProgress {
            table: t("order_items"),
            tuples_processed: 1_234_567,
            bytes_processed: 98 * MIB,
        }],
        tables: estimates(0.999, skip_tables),
        poll_ms: 3.1,
    }
}

/// Forty seconds of polling with one failed source poll, then an exact count
/// part-way through: every pane has something to say.
pub fn full() -> Fixture {
    let mut f = Fixture::new();
    for s in 1..=40 {
        f.at(s as f64);
        if s == 25 {
            f.push(EventKind::CollectorFailed {
                side: Side::Source,
                error: "timeout".into(),
            });
            continue;
        }
        // Caught up, a burst of writes, then draining towards the final 1.5 MiB.
        let lag = match s {
            1..=8 => 0,
            9..=20 => (s - 8) * 300 * 1024,
            _ => (3 * MIB)
                .saturating_sub((s - 20) * 80 * 1024)
                .max(MIB * 3 / 2),
        };
        let lag = if s == 40 { MIB * 3 / 2 } else { lag };
        f.push(EventKind::SourceSampled(source(lag)));
        if s % 5 == 0 {
            f.push(EventKind::TargetSampled(target(&[])));
        }
    }
    f.at(40.5).key("c");
    f.at(41.0)
        .counted(Side::Source, "customers", 120_412)
        .counted(Side::Target, "customers", 120_412);
    f.at(41.6)
        .counted(Side::Source, "products", 5_000)
        .counted(Side::Target, "products", 4_998);
    f.at(42.1)
        .counted(Side::Source, "audit_log", 880_113)
        .push(EventKind::CountFailed {
            run: 1,
            side: Side::Target,
            table: Some(t("audit_log")),
            error: "canceling statement due to statement timeout".into(),
        });
    f.at(42.6).counted(Side::Source, "orders", 1_250_031);
    f
}

/// The source is reachable but nothing has been set up yet.
pub fn fresh() -> Fixture {
    fresh_with(info())
}

/// [`fresh`] in a session of this header (another runbook, say).
pub fn fresh_with(header: SessionInfo) -> Fixture {
    let mut f = Fixture::new();
    f.at(0.5).push(EventKind::SessionStarted(Box::new(header)));
    let mut src = source(0);
    src.slots.clear();
    src.senders.clear();
    src.publications.clear();
    let mut tgt = target(&[]);
    tgt.subscriptions.clear();
    tgt.sub_tables.clear();
    tgt.copies.clear();
    tgt.tables.clear();
    f.at(1.0)
        .push(EventKind::SourceSampled(src))
        .push(EventKind::TargetSampled(tgt));
    f
}

pub fn render(model: &Model, theme: &Theme, w: u16, h: u16) -> Terminal<TestBackend> {
    render_view(model, &View::default(), theme, w, h)
}

pub fn render_view(
    model: &Model,
    v: &View,
    theme: &Theme,
    w: u16,
    h: u16,
) -> Terminal<TestBackend> {
    let mut term = Terminal::new(TestBackend::new(w, h)).unwrap();
    term.draw(|f| view(f, model, v, theme)).unwrap();
    term
}

pub fn text(term: &Terminal<TestBackend>) -> String {
    let buf = term.backend().buffer();
    (0..buf.area.height)
        .map(|y| {
            (0..buf.area.width)
                .map(|x| buf[(x, y)].symbol())
                .collect::<String>()
                .trim_end()
                .to_string()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

pub fn screen(model: &Model, w: u16, h: u16) -> String {
    text(&render(model, &Theme::default(), w, h))
}

/// The row-count line of a table, found by name and a state word.
pub fn row<'a>(screen: &'a str, table: &str) -> &'a str {
    const STATES: [&str; 8] = [
        "~ estimated",
        "… counting",
        "✔ exact match",
        "… in flight",
        "✔ checksum verified",
        "✖ MISMATCH",
        "✖ missing on target",
        "! failed",
    ];
    let named = |l: &str| {
        l.starts_with(&format!("{table} "))
            || l.contains(&format!(".{table} "))
            || l.contains(&format!("│{table} "))
    };
    screen
        .lines()
        .find(|l| named(l) && STATES.iter().any(|s| l.contains(s)))
        .unwrap_or_else(|| panic!("no row for {table:?} in\n{screen}"))
}

pub fn line_with<'a>(screen: &'a str, needle: &str) -> &'a str {
    screen
        .lines()
        .find(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("no line with {needle:?} in\n{screen}"))
}

pub fn pod(
    name: &str,
    ready: bool,
    updated: bool,
    cfg: Option<&str>,
    age: i64,
) -> cutover::kube::PodSnapshot {
    cutover::kube::PodSnapshot {
        name: name.into(),
        phase: if cfg.is_some() { "Running" } else { "Pending" }.into(),
        ready,
        terminating: false,
        age_secs: age,
        restarts: 0,
        db_config: cfg.map(str::to_string),
        replicaset: Some(name.rsplit_once('-').unwrap().0.into()),
        updated,
    }
}

/// The full fixture plus the application side, halfway through a restart
/// that moves the pods from the old database config to the new one.
pub fn with_rollout() -> Fixture {
    use cutover::kube::{RolloutState, WorkloadSnapshot};
    let mut f = full();
    let mut i = info();
    i.kubernetes = Some(cutover::session::KubeInfo {
        context: "prod-eu".into(),
        namespace: "shop".into(),
        deployments: vec!["app".into()],
        config_object: Some("configmap/app-db".into()),
        config_key: Some("DATABASE_URL".into()),
        switch_to: Some("/etc/cutover/new-database-url".into()),
        changes: cutover::config::Changes::Patch,
        gitops_wait_secs: 600,
        read_only_freeze: None,
    });
    f.at(40.5).push(EventKind::SessionStarted(Box::new(i)));
    let pods = vec![
        pod("app-7c9f-new01", true, true, Some("b7e1c2d4"), 12),
        pod("app-7c9f-new02", false, true, None, 1),
        pod("app-5d4a-old01", true, false, Some("a1f0e9c3"), 3600),
        pod("app-5d4a-old02", true, false, Some("a1f0e9c3"), 3600),
    ];
    let mut by = std::collections::BTreeMap::new();
    by.insert("b7e1c2d4".to_string(), 1);
    by.insert("a1f0e9c3".to_string(), 2);
    by.insert("?".to_string(), 1);
    f.at(40.6)
        .push(EventKind::WorkloadSampled(WorkloadSnapshot {
            namespace: "shop".into(),
            deployment: "app".into(),
            found: true,
            generation: Some(7),
            observed_generation: Some(7),
            desired: 3,
            updated: 2,
            ready: 3,
            available: 3,
            unavailable: 0,
            state: RolloutState::Progressing {
                message: "2 out of 3 new replicas have been updated".into(),
            },
            conditions: vec![],
            replicasets: vec![],
            pods,
            pods_by_db_config: by,
            warnings: vec![],
        }));
    // Ages keep counting between snapshots: five seconds later.
    f.at(45.6).push(EventKind::Tick);
    f
}

pub fn preflight_done(f: &mut Fixture, at: f64) {
    let ok = |verb: &str, what: &str| cutover::session::AccessResult {
        describe: format!("{verb} {what} in shop"),
        verb: verb.into(),
        allowed: true,
        reason: None,
    };
    f.at(at).push(EventKind::KubePreflightDone {
        checks: vec![
            ok("get", "configmaps/app-db"),
            ok("patch", "configmaps/app-db"),
            ok("patch", "deployments.apps/app"),
        ],
        switch_value: Some(cutover::session::SwitchValue {
            new_fingerprint: Some("b7e1c2d4".into()),
            current_fingerprint: Some("a1f0e9c3".into()),
            error: None,
            ..Default::default()
        }),
        error: None,
    });
}
