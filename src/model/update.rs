use super::{CountRun, ExactCount, LagPoint, Model, Overlay, LAG_HISTORY};
use crate::session::sample::{Side, TableRef};
use crate::session::{Event, EventKind};

/// Work the runtime does on the model's behalf; results come back as events.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    StartExactCount { run: u64, tables: Vec<TableRef> },
    CancelExactCount { run: u64 },
    Quit,
}

/// The fold. Pure: the same events give the same model, live or in replay.
pub fn update(model: &mut Model, event: &Event) -> Vec<Effect> {
    let at = event.at;
    model.now = Some(model.now.map_or(at, |n| n.max(at)));
    match &event.kind {
        EventKind::SessionStarted(info) => {
            model.info = Some(info.clone());
            vec![]
        }
        EventKind::SourceSampled(sample) => {
            model.source.last = Some(sample.clone());
            model.source.last_ok = Some(at);
            model.source.failing = None;
            let bytes = model
                .info
                .as_ref()
                .and_then(|i| sample.slots.iter().find(|s| s.name == i.slot))
                .and_then(|s| s.lag_bytes);
            push_lag(model, LagPoint { at, bytes });
            vec![]
        }
        EventKind::TargetSampled(sample) => {
            model.target.last = Some(sample.clone());
            model.target.last_ok = Some(at);
            model.target.failing = None;
            vec![]
        }
        EventKind::CollectorFailed { side, error } => {
            let failing = match side {
                Side::Source => &mut model.source.failing,
                Side::Target => &mut model.target.failing,
            };
            let since = failing.as_ref().map_or(at, |(since, _)| *since);
            *failing = Some((since, error.clone()));
            if *side == Side::Source {
                // A gap in the sparkline, not a fake zero.
                push_lag(model, LagPoint { at, bytes: None });
            }
            vec![]
        }
        EventKind::Key { key } => on_key(model, key),
        EventKind::CountProgress {
            run,
            side,
            table,
            rows,
            elapsed_ms,
        } => {
            if let Some(r) = model.count_run.as_mut().filter(|r| r.id == *run) {
                match side {
                    Side::Source => r.done_source += 1,
                    Side::Target => r.done_target += 1,
                }
            }
            let cell = model.counts.entry(table.clone()).or_default();
            let slot = match side {
                Side::Source => &mut cell.source,
                Side::Target => &mut cell.target,
            };
            *slot = ExactCount::Counted {
                rows: *rows,
                at,
                elapsed_ms: *elapsed_ms,
            };
            vec![]
        }
        EventKind::CountFailed {
            run,
            side,
            table,
            error,
        } => {
            match table {
                Some(table) => {
                    if let Some(r) = model.count_run.as_mut().filter(|r| r.id == *run) {
                        match side {
                            Side::Source => r.done_source += 1,
                            Side::Target => r.done_target += 1,
                        }
                    }
                    let cell = model.counts.entry(table.clone()).or_default();
                    let slot = match side {
                        Side::Source => &mut cell.source,
                        Side::Target => &mut cell.target,
                    };
                    *slot = ExactCount::Failed(error.clone());
                }
                None => {
                    // The whole side failed (no connection): every pending cell says why.
                    for cell in model.counts.values_mut() {
                        let slot = match side {
                            Side::Source => &mut cell.source,
                            Side::Target => &mut cell.target,
                        };
                        if *slot == ExactCount::Counting {
                            *slot = ExactCount::Failed(error.clone());
                        }
                    }
                }
            }
            vec![]
        }
        EventKind::CountFinished { run, cancelled } => {
            if let Some(r) = model.count_run.as_mut().filter(|r| r.id == *run) {
                r.finished_at = Some(at);
                r.cancelled = *cancelled;
            }
            for cell in model.counts.values_mut() {
                for slot in [&mut cell.source, &mut cell.target] {
                    if *slot == ExactCount::Counting {
                        *slot = ExactCount::NotCounted;
                    }
                }
            }
            vec![]
        }
        EventKind::Tick => vec![],
        EventKind::SessionEnded { reason } => {
            model.ended = Some(reason.clone());
            vec![]
        }
    }
}

fn push_lag(model: &mut Model, point: LagPoint) {
    if model.lag_history.len() == LAG_HISTORY {
        model.lag_history.pop_front();
    }
    model.lag_history.push_back(point);
}

fn on_key(model: &mut Model, key: &str) -> Vec<Effect> {
    match model.overlay {
        Overlay::Help => {
            if matches!(key, "?" | "Esc" | "q" | "Enter") {
                model.overlay = Overlay::None;
            }
            return vec![];
        }
        Overlay::ConfirmQuit => {
            return match key {
                "y" | "Y" => {
                    model.quit = true;
                    let mut effects = Vec::new();
                    if let Some(r) = model.count_run.as_ref().filter(|r| r.running()) {
                        effects.push(Effect::CancelExactCount { run: r.id });
                    }
                    effects.push(Effect::Quit);
                    effects
                }
                "n" | "N" | "Esc" | "q" => {
                    model.overlay = Overlay::None;
                    vec![]
                }
                _ => vec![],
            };
        }
        Overlay::None => {}
    }
    match key {
        "?" => {
            model.overlay = Overlay::Help;
            vec![]
        }
        "q" | "Ctrl-c" => {
            if model.count_running() {
                model.overlay = Overlay::ConfirmQuit;
                vec![]
            } else {
                model.quit = true;
                vec![Effect::Quit]
            }
        }
        "c" => start_count(model),
        "x" => match model.count_run.as_ref().filter(|r| r.running()) {
            Some(r) => vec![Effect::CancelExactCount { run: r.id }],
            None => vec![],
        },
        "Down" | "j" => {
            model.scroll = (model.scroll + 1).min(count_tables(model).saturating_sub(1));
            vec![]
        }
        "Up" | "k" => {
            model.scroll = model.scroll.saturating_sub(1);
            vec![]
        }
        "Home" | "g" => {
            model.scroll = 0;
            vec![]
        }
        _ => vec![],
    }
}

fn count_tables(model: &Model) -> usize {
    super::table_rows(model).len()
}

fn start_count(model: &mut Model) -> Vec<Effect> {
    if model.count_running() {
        return vec![];
    }
    let tables: Vec<TableRef> = super::table_rows(model)
        .into_iter()
        .map(|r| r.table)
        .collect();
    if tables.is_empty() {
        return vec![];
    }
    let Some(now) = model.now else {
        return vec![];
    };
    model.next_run += 1;
    let run = model.next_run;
    for t in &tables {
        let cell = model.counts.entry(t.clone()).or_default();
        cell.source = ExactCount::Counting;
        cell.target = ExactCount::Counting;
    }
    model.count_run = Some(CountRun {
        id: run,
        started_at: now,
        total: tables.len(),
        done_source: 0,
        done_target: 0,
        finished_at: None,
        cancelled: false,
    });
    vec![Effect::StartExactCount { run, tables }]
}
