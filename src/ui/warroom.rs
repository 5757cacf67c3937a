//! The war-room screen (`w`): what a room reads off a compressed video
//! stream, biggest first. The phase; the write-freeze timer against its
//! budget and the replication lag in big digits; the checkpoint that runs
//! or last ran and how it ended; the next checkpoint's guards one per line
//! in bold; writes per second on each side; counts, rollout and slots in a
//! line each; the operator's last note as a banner. The digits take the
//! largest size the screen leaves once everything else has its row, and
//! become plain bold text when even the smallest does not fit.
//!
//! Every figure comes from the same helpers as the panes: stale samples
//! say so here too, and a guard on stale data reads ◌ STALE, never ✔.

use ratatui::layout::Rect;
use ratatui::style::Modifier;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Wrap};
use ratatui::Frame;

use crate::model::{self, lag_summary, stale_since, Model, RowState, TableRow, View};
use crate::runbook::{self, CheckpointId, Guard, Verdict};
use crate::session::Side;

use super::bigtext::{self, Scale};
use super::fmt;
use super::panes::{counts, footer, header, lag, rollout, runbook as book, slots};
use super::theme::{Role, Theme};
use super::widgets::{one_line, pane_block, truncate_line, wrapped_height, PaneFrame};

/// The widest values the big numbers are sized for: the digits keep their
/// size while the value changes.
const LAG_WIDEST: &str = "888.8 MiB";
const TIMER_WIDEST: &str = "88:88";

/// Columns of the labels in front of the summary lines.
const LABEL_W: usize = 10;

/// A number shown big, with what it means under it.
#[derive(Clone)]
struct Big {
    title: &'static str,
    /// The figure and its role; None: the captions say why there is none.
    value: Option<(String, Role)>,
    widest: &'static str,
    captions: Vec<Line<'static>>,
}

fn span(t: impl Into<String>, role: Role, theme: &Theme) -> Span<'static> {
    Span::styled(t.into(), theme.style(role))
}

fn bold(t: impl Into<String>, role: Role, theme: &Theme) -> Span<'static> {
    Span::styled(t.into(), theme.style(role).add_modifier(Modifier::BOLD))
}

/// The write-freeze window against its budget; None while the source takes writes.
fn freeze(model: &Model, theme: &Theme) -> Option<Big> {
    let (secs, budget, closed) = header::freeze_window(model)?;
    let since = model.actions.frozen.as_ref().map(|f| f.at);
    let mmss = header::mmss;
    let (role, captions) = if closed {
        (
            Role::Ok,
            vec![
                Line::from(bold(
                    format!("✔ window closed ≤ {}", mmss(secs)),
                    Role::Ok,
                    theme,
                )),
                Line::from(span("the app writes to the target", Role::Text, theme)),
            ],
        )
    } else if secs > budget {
        let outcome = model
            .actions
            .budget
            .as_ref()
            .map_or("B rolls back".to_string(), |b| one_line(&b.outcome));
        (
            Role::Error,
            vec![
                Line::from(bold(
                    format!(
                        "✖ OVER the {} budget by {}",
                        mmss(budget),
                        mmss(secs - budget)
                    ),
                    Role::Error,
                    theme,
                )),
                Line::from(span(outcome, Role::Error, theme)),
            ],
        )
    } else {
        (
            Role::Warn,
            vec![
                Line::from(span(
                    format!(
                        "❄ writes frozen{}",
                        since.map_or(String::new(), |t| format!(" since {}", fmt::clock(t)))
                    ),
                    Role::Warn,
                    theme,
                )),
                Line::from(span(
                    format!("of {} budget · {} left", mmss(budget), mmss(budget - secs)),
                    Role::Text,
                    theme,
                )),
            ],
        )
    };
    Some(Big {
        title: "WRITE FREEZE",
        value: Some((mmss(secs), role)),
        widest: TIMER_WIDEST,
        captions,
    })
}

/// The subscription slot's lag, as the lag pane reads it: marked stale when
/// the source's sample is old, and said in words where there is no figure.
fn replication_lag(model: &Model, theme: &Theme) -> Option<Big> {
    let info = model.info.as_ref()?;
    let words = |text: String, role: Role| Big {
        title: "REPLICATION LAG",
        value: None,
        widest: LAG_WIDEST,
        captions: vec![Line::from(span(text, role, theme))],
    };
    let Some(summary) = lag_summary(model) else {
        return Some(match &model.source.failing {
            Some((_, err)) => words(
                format!("✖ cannot reach the source: {}", one_line(err)),
                Role::Error,
            ),
            None => words(
                "waiting for the first sample from the source…".into(),
                Role::Muted,
            ),
        });
    };
    if summary.slot.is_none() {
        return Some(match slots::subscription_dropped(model) {
            Some(dropped) => words(format!("{dropped}: replication has ended."), Role::Text),
            None if info.runbook == crate::runbook::Variant::DumpRestore => {
                words(lag::dump_restore_sentence(), Role::Text)
            }
            None => words(lag::no_slot_sentence(&info.slot), Role::Warn),
        });
    }
    if let Some(at) = runbook::checkpoints::reverse_replication::running_since(model) {
        return Some(words(
            format!(
                "forward replication stopped as planned at {}; reverse replication runs",
                fmt::clock(at)
            ),
            Role::Text,
        ));
    }
    let (Some(bytes), Some((word, role))) = (summary.lag_bytes, lag::state(&summary, info)) else {
        return Some(words(
            "? no confirmed position yet (slot never consumed)".into(),
            Role::Warn,
        ));
    };
    let stale = stale_since(&model.source, model.now, info.stale_after_seconds);
    let mut captions = Vec::with_capacity(2);
    let value_role = if let Some(t) = stale {
        // Old numbers look exactly like fresh ones unless they say so.
        let reach = header::reach(&model.source, model.now, info.stale_after_seconds);
        captions.push(Line::from(bold(
            format!("✖ STALE: as of {} (was {word})", fmt::clock(t)),
            Role::Error,
            theme,
        )));
        if let Some(d) = reach.detail {
            captions.push(Line::from(span(d, Role::Error, theme)));
        }
        Role::Muted
    } else {
        captions.push(Line::from(vec![
            bold(word, role, theme),
            span(
                format!(" · threshold {}", fmt::bytes(info.max_lag_bytes)),
                Role::Text,
                theme,
            ),
        ]));
        let times: Vec<String> = [
            ("flush", summary.flush_lag_ms),
            ("replay", summary.replay_lag_ms),
        ]
        .iter()
        .filter_map(|(n, ms)| ms.map(|ms| format!("{n} {}", fmt::millis(ms))))
        .collect();
        if summary.over_time {
            captions.push(Line::from(span(
                format!(
                    "✖ {} · over {}",
                    times.join(" · "),
                    fmt::secs(info.max_lag_seconds)
                ),
                Role::Error,
                theme,
            )));
        } else if !times.is_empty() {
            captions.push(Line::from(span(times.join(" · "), Role::Text, theme)));
        }
        role
    };
    Some(Big {
        title: "REPLICATION LAG",
        value: Some((fmt::bytes(bytes), value_role)),
        widest: LAG_WIDEST,
        captions,
    })
}

/// The phase the session is in: the rollback's once one ran, else the
/// phase of what runs or comes next.
fn phase(model: &Model, next: Option<CheckpointId>) -> (String, Role) {
    let last = model.actions.history.last();
    if last.is_some_and(|r| r.checkpoint == CheckpointId::Rollback) {
        return (runbook::Phase::Rollback.title().into(), Role::Warn);
    }
    let now = model.actions.running().map(|r| r.checkpoint).or(next);
    match now {
        Some(id) => (id.info().phase.title().into(), Role::Title),
        None => ("DONE".into(), Role::Ok),
    }
}

/// The phase's name as the war-room view shows it (and the metrics say it).
pub fn phase_name(model: &Model) -> String {
    phase(model, next_checkpoint(model)).0
}

/// The next checkpoint: the one the runbook line points at, or the one
/// after it while it runs.
pub fn next_checkpoint(model: &Model) -> Option<CheckpointId> {
    let cur = book::current(model)?;
    match model.actions.running() {
        Some(r) if r.checkpoint == cur => book::after(model, cur),
        _ => Some(cur),
    }
}

/// Phase, mode, clock and whether each side answers: one line, the sides
/// in a word each when the line is too narrow for since when.
fn top_line(
    model: &Model,
    v: &View,
    next: Option<CheckpointId>,
    width: usize,
    theme: &Theme,
) -> Line<'static> {
    let Some(info) = &model.info else {
        return Line::default();
    };
    let (phase, role) = phase(model, next);
    let (mode, mode_role) = header::mode(info, v);
    let clock = model.now.map_or_else(|| "--:--:--".into(), fmt::clock);
    let head = vec![
        span(" PHASE ", Role::Muted, theme),
        bold(phase, role, theme),
        span("  ", Role::Text, theme),
        span(mode, mode_role, theme),
        span(format!("  {clock} UTC"), Role::Text, theme),
    ];
    let reaches = [
        (
            "source",
            header::reach(&model.source, model.now, info.stale_after_seconds),
        ),
        (
            "target",
            header::reach(&model.target, model.now, info.stale_after_seconds),
        ),
    ];
    let line = |short: bool| {
        let mut spans = head.clone();
        for (name, reach) in &reaches {
            let word = match (short, reach.role) {
                (false, _) => reach.core.clone(),
                (true, Role::Ok) => "● up".into(),
                (true, Role::Error) => "✖ stale".into(),
                (true, _) => "… wait".into(),
            };
            spans.push(span(format!("   {name} "), Role::Muted, theme));
            spans.push(bold(word, reach.role, theme));
        }
        Line::from(spans)
    };
    let full = line(false);
    if full.width() <= width {
        full
    } else {
        truncate_line(line(true), width)
    }
}

/// The operator's last note, one line.
fn banner(model: &Model, width: usize, theme: &Theme) -> Option<Line<'static>> {
    let (at, text) = model.notes.last()?;
    let text = format!(" ✎ {} {}", fmt::clock(*at), one_line(text));
    Some(Line::from(bold(
        fmt::truncate(&text, width).into_owned(),
        Role::Title,
        theme,
    )))
}

/// ✔ PASS, ✖ FAIL, ◌ STALE: a symbol and a word, never colour alone.
fn guard_mark(g: &Guard) -> (&'static str, Role) {
    match g.verdict {
        Verdict::Pass(_) => ("✔ PASS ", Role::Ok),
        Verdict::Fail(_) => ("✖ FAIL ", Role::Error),
        Verdict::Stale { .. } => ("◌ STALE", Role::Error),
    }
}

fn guard_line(g: &Guard, theme: &Theme) -> Line<'static> {
    let (mark, role) = guard_mark(g);
    Line::from(bold(
        format!("   {mark}  {} — {}", g.label, one_line(&g.detail())),
        role,
        theme,
    ))
}

/// What runs or last ran, and how it stands; under it, on a line of its
/// own so a narrow screen does not cut it first, the step it is at or why
/// it failed.
fn run_lines(model: &Model, theme: &Theme) -> Vec<Line<'static>> {
    let key = |id| book::key_of(id);
    let Some(run) = model.actions.history.last() else {
        return vec![Line::from(vec![
            bold(" NOW   ", Role::Title, theme),
            span("· no checkpoint run yet", Role::Muted, theme),
        ])];
    };
    let id = run.checkpoint;
    let by = if run.auto.is_some() {
        " (started by the console)"
    } else {
        ""
    };
    let detail =
        |text: String, role: Role| Line::from(span(format!("         {text}"), role, theme));
    match &run.finished {
        None => {
            let took = model.now.map_or(String::new(), |now| {
                format!(
                    " · {}",
                    fmt::secs(fmt::seconds_between(run.started_at, now))
                )
            });
            let mut out = vec![Line::from(vec![
                bold(" NOW   ", Role::Title, theme),
                bold(
                    format!("⟳ RUNNING  {} {}{by}{took}", key(id), id.title()),
                    Role::Accent,
                    theme,
                ),
            ])];
            out.extend(run.latest().map(|m| detail(one_line(&m), Role::Text)));
            out
        }
        Some((at, true, _)) => vec![Line::from(vec![
            bold(" LAST  ", Role::Title, theme),
            bold(
                format!(
                    "✔ PASSED  {} {}{by} at {}",
                    key(id),
                    id.title(),
                    fmt::clock(*at)
                ),
                Role::Ok,
                theme,
            ),
        ])],
        Some((at, false, message)) => vec![
            Line::from(vec![
                bold(" LAST  ", Role::Title, theme),
                bold(
                    format!(
                        "✖ FAILED  {} {}{by} at {}",
                        key(id),
                        id.title(),
                        fmt::clock(*at)
                    ),
                    Role::Error,
                    theme,
                ),
            ]),
            detail(one_line(message), Role::Error),
        ],
    }
}

/// The next checkpoint and how many of its guards hold.
fn next_line(
    model: &Model,
    next: Option<CheckpointId>,
    guards: &[Guard],
    acts: bool,
    theme: &Theme,
) -> Line<'static> {
    let Some(id) = next else {
        return Line::from(vec![
            bold(" NEXT  ", Role::Title, theme),
            bold("✔ runbook complete", Role::Ok, theme),
        ]);
    };
    let failing = guards.iter().filter(|g| !g.passes()).count();
    let verdict = if failing > 0 {
        bold(
            format!("  ✖ {failing} of {} guards do not hold", guards.len()),
            Role::Error,
            theme,
        )
    } else if acts && model.actions.running().is_none() {
        bold(
            format!("  ✔ guards pass: press {}", book::key_of(id)),
            Role::Ok,
            theme,
        )
    } else {
        bold("  ✔ guards pass", Role::Ok, theme)
    };
    Line::from(vec![
        bold(" NEXT  ", Role::Title, theme),
        bold(
            format!("▸ {} {}", book::key_of(id), id.title()),
            Role::Title,
            theme,
        ),
        verdict,
    ])
}

/// Rows written per second on each side; a stale side says so, not a rate.
fn writes_line(model: &Model, frozen: bool, theme: &Theme) -> Line<'static> {
    let mut spans = vec![bold(
        fmt::fit(" WRITES/S", LABEL_W, fmt::Align::Left),
        Role::Title,
        theme,
    )];
    let limit = model.info.as_ref().map_or(0.0, |i| i.stale_after_seconds);
    for (i, side) in [Side::Source, Side::Target].into_iter().enumerate() {
        let (name, stale) = match side {
            Side::Source => ("source ", stale_since(&model.source, model.now, limit)),
            Side::Target => ("target ", stale_since(&model.target, model.now, limit)),
        };
        if i > 0 {
            spans.push(span("   ", Role::Text, theme));
        }
        spans.push(span(name, Role::Muted, theme));
        spans.push(match (model::writes::rate(model, side), stale) {
            (Some(r), _) => bold(fmt::int(r.round() as i64), Role::Text, theme),
            // Since when is on the top line and under the lag.
            (None, Some(_)) => bold("✖ stale", Role::Error, theme),
            (None, None) => span("—", Role::Muted, theme),
        });
    }
    if !frozen {
        if let Some(info) = &model.info {
            spans.push(span(
                format!(
                    "   freeze not started (budget {})",
                    header::mmss(info.freeze_budget_secs)
                ),
                Role::Muted,
                theme,
            ));
        }
    }
    Line::from(spans)
}

fn label(t: &str, theme: &Theme) -> Span<'static> {
    bold(
        fmt::fit(&format!(" {t}"), LABEL_W, fmt::Align::Left),
        Role::Title,
        theme,
    )
}

/// Counts and verification in a line: the runs, then the tables' verdict.
fn counts_line(model: &Model, rows: &[TableRow], width: u16, theme: &Theme) -> Line<'static> {
    let terse = width < 120;
    let mut spans = vec![label("COUNTS", theme)];
    let (t, role) = counts::run_status(model.count_run.as_ref(), model, terse);
    spans.push(span(t, role, theme));
    if let Some((t, role)) = counts::verify_status(model, terse) {
        spans.push(span(" · ", Role::Muted, theme));
        spans.push(span(t, role, theme));
    }
    let n = fmt::tables;
    let bad = rows.iter().filter(|r| r.state.differs()).count();
    let failed = rows.iter().filter(|r| r.state == RowState::Failed).count();
    let good = rows.iter().filter(|r| r.state.agrees()).count();
    let verdict = if bad > 0 {
        Some(bold(format!("✖ MISMATCH {}", n(bad)), Role::Error, theme))
    } else if failed > 0 {
        Some(bold(format!("! {} failed", n(failed)), Role::Warn, theme))
    } else if !rows.is_empty() && good == rows.len() {
        Some(bold(format!("✔ {} match", n(good)), Role::Ok, theme))
    } else if !rows.is_empty() {
        Some(span(
            format!("{good} of {} match", n(rows.len())),
            Role::Text,
            theme,
        ))
    } else {
        None
    };
    if let Some(v) = verdict {
        spans.push(span(" · ", Role::Muted, theme));
        spans.push(v);
    }
    truncate_line(Line::from(spans), width as usize)
}

/// The first workload's rollout in a line (how many more there are), or
/// why it is not known.
fn rollout_line(model: &Model, width: u16, theme: &Theme) -> Option<Line<'static>> {
    if !rollout::configured(model) {
        return None;
    }
    let mut spans = vec![label("ROLLOUT", theme)];
    if let Some((since, why)) = model::kube_stale(model) {
        spans.push(bold(
            format!("✖ stale since {}: {} · ", fmt::clock(since), one_line(&why)),
            Role::Error,
            theme,
        ));
    }
    let Some(first) = model.workloads.values().next() else {
        spans.push(span("no workload seen yet", Role::Muted, theme));
        return Some(truncate_line(Line::from(spans), width as usize));
    };
    let more = model.workloads.len() - 1;
    let more = (more > 0).then(|| format!("  +{more} more"));
    let used: usize =
        spans.iter().map(Span::width).sum::<usize>() + more.as_ref().map_or(0, |m| fmt::width(m));
    let db = model::db_configs(model);
    spans.extend(
        rollout::summary_fitted(first, &db, theme, (width as usize).saturating_sub(used)).spans,
    );
    if let Some(m) = more {
        spans.push(span(m, Role::Muted, theme));
    }
    Some(truncate_line(Line::from(spans), width as usize))
}

/// The pooler in a line: its instances paused or serving, and while paused
/// the queue of held clients and the longest wait.
fn pooler_line(model: &Model, width: u16, theme: &Theme) -> Option<Line<'static>> {
    if !super::pooler::configured(model) {
        return None;
    }
    let mut spans = vec![label("POOLER", theme)];
    match (super::pooler::fresh(model), model.pooler.as_ref()) {
        (Some(p), _) if p.error.is_some() || p.instances.is_empty() => spans.push(bold(
            format!(
                "✖ {}",
                one_line(p.error.as_deref().unwrap_or("no instance running"))
            ),
            Role::Error,
            theme,
        )),
        (Some(p), _) => {
            let h = p.held();
            if h.paused > 0 {
                spans.push(bold(
                    format!(
                        "⏸ {}/{} PAUSED · {} clients waiting · longest {:.1} s",
                        h.paused,
                        h.instances,
                        h.clients_waiting,
                        h.longest_wait_ms as f64 / 1000.0
                    ),
                    Role::Warn,
                    theme,
                ));
            } else {
                spans.push(span(
                    format!("● {}/{} serving", h.instances - h.unreachable, h.instances),
                    Role::Ok,
                    theme,
                ));
            }
            if h.unreachable > 0 {
                spans.push(bold(
                    format!(" · ✖ {} unreachable", h.unreachable),
                    Role::Error,
                    theme,
                ));
            }
        }
        (None, Some((at, _))) => spans.push(bold(
            format!("✖ stale since {}", fmt::clock(*at)),
            Role::Error,
            theme,
        )),
        (None, None) => spans.push(span("connecting…", Role::Muted, theme)),
    }
    Some(truncate_line(Line::from(spans), width as usize))
}

/// Every slot on the source with the WAL it holds back, worst first.
fn slots_line(model: &Model, width: u16, theme: &Theme) -> Option<Line<'static>> {
    let info = model.info.as_ref()?;
    let src = model.source.last.as_ref()?;
    let mut spans = vec![label("SLOTS", theme)];
    let stale = stale_since(&model.source, model.now, info.stale_after_seconds);
    // First, where a narrow line cannot cut it off.
    if let Some(t) = stale {
        spans.push(bold(
            format!("✖ as of {} · ", fmt::clock(t)),
            Role::Error,
            theme,
        ));
    }
    if src.slots.is_empty() {
        spans.push(span(
            "no replication slot on the source",
            Role::Muted,
            theme,
        ));
    }
    let mut slots: Vec<_> = src.slots.iter().collect();
    slots.sort_by_key(|s| std::cmp::Reverse(s.retained_bytes.unwrap_or(0)));
    for (i, s) in slots.iter().enumerate() {
        if i > 0 {
            spans.push(span(" · ", Role::Muted, theme));
        }
        let over = s
            .retained_bytes
            .is_some_and(|b| b > info.max_retained_wal_bytes);
        let status = s.wal_status.as_deref();
        let (mark, role) = if over || matches!(status, Some("unreserved" | "lost")) {
            ("✖ ", Role::Error)
        } else if !s.active || status == Some("extended") {
            ("▲ ", Role::Warn)
        } else {
            ("", Role::Text)
        };
        let mut words = vec![s.retained_bytes.map_or("—".into(), fmt::bytes)];
        if !s.active {
            words.push("inactive".into());
        }
        if let Some(st @ ("extended" | "unreserved" | "lost")) = status {
            words.push(st.into());
        }
        spans.push(span(format!("{mark}{} ", s.name), role, theme));
        spans.push(span(words.join(" "), role, theme));
    }
    if stale.is_none() && !src.slots.is_empty() {
        let limit = format!("  (limit {} each)", fmt::bytes(info.max_retained_wal_bytes));
        // Only whole: a cut limit says nothing.
        if spans.iter().map(Span::width).sum::<usize>() + fmt::width(&limit) <= width as usize {
            spans.push(span(limit, Role::Muted, theme));
        }
    }
    Some(truncate_line(Line::from(spans), width as usize))
}

/// Rows of the digits: the tallest figure's (a line of bold text without);
/// none when no panel has a figure.
fn digits_height(bigs: &[Big], scales: &[Option<Scale>]) -> u16 {
    bigs.iter()
        .zip(scales)
        .filter(|(b, _)| b.value.is_some())
        .map(|(_, s)| s.map_or(1, Scale::height))
        .max()
        .unwrap_or(0)
}

/// Rows the big row takes: the rule, the digits, the captions.
fn big_height(bigs: &[Big], scales: &[Option<Scale>], captions: u16) -> u16 {
    1 + digits_height(bigs, scales) + captions
}

/// Columns each big panel takes at its scale out of `width`: what its
/// widest value needs, the rest shared out; None when they do not fit.
fn big_widths(bigs: &[Big], scales: &[Option<Scale>], width: u16) -> Option<Vec<u16>> {
    let n = bigs.len() as u16;
    if n == 0 {
        return Some(vec![]);
    }
    let need: Vec<u16> = bigs
        .iter()
        .zip(scales)
        .map(|(b, s)| match (s, &b.value) {
            (Some(s), Some(_)) => bigtext::width(b.widest, *s) + 2,
            (None, Some(_)) => 0,
            // A sentence instead of a figure: its share, or what it needs.
            (_, None) => {
                let words = b.captions.iter().map(Line::width).max().unwrap_or(0);
                (words as u16 + 2).min(width / n)
            }
        })
        .collect();
    let total: u16 = need.iter().sum::<u16>() + n - 1;
    if total > width {
        return None;
    }
    let extra = width - total;
    let mut out: Vec<u16> = need.iter().map(|w| w + extra / n).collect();
    if let Some(last) = out.last_mut() {
        *last += extra % n;
    }
    Some(out)
}

/// One panel: its title on a rule, the value in big digits at `scale`
/// (`digits` rows kept for them, so captions line up across panels), the
/// captions under it.
fn render_big(
    frame: &mut Frame,
    area: Rect,
    big: &Big,
    scale: Option<Scale>,
    digits: u16,
    theme: &Theme,
) {
    let block = pane_block(
        theme,
        PaneFrame::Rule,
        area.width,
        vec![bold(format!(" {} ", big.title), Role::Title, theme)],
        vec![],
    );
    let inner = block.inner(area);
    frame.render_widget(block, area);
    if inner.is_empty() {
        return;
    }
    let room = inner.width.saturating_sub(1);
    let mut lines: Vec<Line> = Vec::new();
    if let Some((value, role)) = &big.value {
        let style = theme.style(*role).add_modifier(Modifier::BOLD);
        // A value wider than the one the size was chosen for steps down.
        let shown = scale.and_then(|s| {
            bigtext::SCALES
                .iter()
                .rev()
                .copied()
                .filter(|t| t.sx <= s.sx)
                .find(|t| bigtext::drawable(value) && bigtext::width(value, *t) <= room)
        });
        let mut rows: Vec<Line> = match shown {
            Some(t) => bigtext::lines(value, t)
                .into_iter()
                .map(|r| Line::from(Span::styled(r, style)))
                .collect(),
            None => vec![Line::from(Span::styled(value.clone(), style))],
        };
        rows.resize(usize::from(digits), Line::default());
        lines.extend(rows);
    }
    lines.extend(big.captions.iter().cloned());
    let pad = Rect {
        x: inner.x + 1,
        width: room,
        ..inner
    };
    if big.value.is_none() {
        // No figure: the sentence that says why has the digits' rows to wrap in.
        frame.render_widget(Paragraph::new(lines).wrap(Wrap { trim: true }), pad);
    } else {
        let lines: Vec<Line> = lines
            .into_iter()
            .map(|l| truncate_line(l, usize::from(room)))
            .collect();
        frame.render_widget(Paragraph::new(lines), pad);
    }
}

/// What the layout settled on.
struct Fit {
    /// Each big panel's size (None: plain bold text).
    scales: Vec<Option<Scale>>,
    captions: u16,
    /// Guard lines shown (failing ones first when some must go).
    guards: usize,
}

/// The size after `s`, one step up.
fn larger(s: Option<Scale>) -> Option<Scale> {
    match s {
        None => Some(bigtext::SCALES[0]),
        Some(s) => bigtext::SCALES
            .iter()
            .position(|t| *t == s)
            .and_then(|i| bigtext::SCALES.get(i + 1).copied()),
    }
}

/// The largest digits, one size for all, that leave every other row its
/// place; then the first panel (the freeze timer while writes are frozen)
/// and the next a size larger each while the width allows. Where that
/// cannot be: a caption row less, then of the next checkpoint's guards only
/// those that do not hold (with how many more pass), and only then the
/// figures in plain text.
fn fit(bigs: &[Big], fixed: u16, guards: usize, must_guards: usize, area: Rect) -> Option<Fit> {
    let n = bigs.len();
    // A panel without a figure has its sentence wrapped to its share.
    let share = (area.width / (n.max(1) as u16)).saturating_sub(2);
    let want_captions = bigs
        .iter()
        .map(|b| match b.value {
            Some(_) => b.captions.len() as u16,
            None => wrapped_height(&b.captions, share),
        })
        .max()
        .unwrap_or(0);
    let fits = |scales: &[Option<Scale>], captions: u16, guards: usize| {
        let big_h = if n == 0 {
            0
        } else {
            big_height(bigs, scales, captions)
        };
        big_widths(bigs, scales, area.width).is_some()
            && fixed + big_h + guards as u16 <= area.height
    };
    let big: Vec<Option<Scale>> = bigtext::SCALES.iter().rev().map(|s| Some(*s)).collect();
    let text = [None];
    for (sizes, guards) in [
        (&big[..], guards),
        (&big[..], must_guards),
        (&text[..], guards),
        (&text[..], must_guards),
    ] {
        for size in sizes {
            for captions in [want_captions, want_captions.min(1)] {
                let mut scales: Vec<Option<Scale>> =
                    bigs.iter().map(|b| b.value.as_ref().and(*size)).collect();
                if !fits(&scales, captions, guards) {
                    continue;
                }
                for i in (0..n).filter(|i| bigs[*i].value.is_some()) {
                    while let Some(up) = larger(scales[i]) {
                        let mut t = scales.clone();
                        t[i] = Some(up);
                        if !fits(&t, captions, guards) {
                            break;
                        }
                        scales = t;
                    }
                }
                return Some(Fit {
                    scales,
                    captions,
                    guards,
                });
            }
        }
    }
    None
}

pub fn render(
    frame: &mut Frame,
    area: Rect,
    model: &Model,
    v: &View,
    rows: &[TableRow],
    theme: &Theme,
) {
    let footer_area = Rect {
        y: area.bottom() - 1,
        height: 1,
        ..area
    };
    footer::render(frame, footer_area, model, v, theme);
    let body = Rect {
        height: area.height - 1,
        ..area
    };
    let width = body.width as usize;
    if model.info.is_none() {
        let line = Line::from(span(
            " waiting for the session to start…",
            Role::Muted,
            theme,
        ));
        frame.render_widget(Paragraph::new(line), body);
        return;
    }
    let next = next_checkpoint(model);
    let freeze = freeze(model, theme);
    let frozen = freeze.is_some();
    let bigs: Vec<Big> = [freeze, replication_lag(model, theme)]
        .into_iter()
        .flatten()
        .collect();

    let top = top_line(model, v, next, width, theme);
    let banner = banner(model, width, theme);
    let guards = next.map_or_else(Vec::new, |id| runbook::guards(model, id));
    let acts = super::acts(model, v);
    let run: Vec<Line> = run_lines(model, theme)
        .into_iter()
        .map(|l| truncate_line(l, width))
        .collect();
    let next_l = truncate_line(next_line(model, next, &guards, acts, theme), width);
    let writes = truncate_line(writes_line(model, frozen, theme), width);
    let summary: Vec<Line> = [
        Some(counts_line(model, rows, body.width, theme)),
        rollout_line(model, body.width, theme),
        pooler_line(model, body.width, theme),
        slots_line(model, body.width, theme),
    ]
    .into_iter()
    .flatten()
    .collect();

    let failing: Vec<&Guard> = guards.iter().filter(|g| !g.passes()).collect();
    let fixed = 1 + u16::from(banner.is_some()) + run.len() as u16 + 1 + 1 + summary.len() as u16;
    // When not every guard fits, the ones that do not hold stay, and a line
    // says how many more pass.
    let must = if failing.len() < guards.len() {
        failing.len() + 1
    } else {
        failing.len()
    };
    let fit = fit(&bigs, fixed, guards.len(), must, body).unwrap_or_else(|| {
        // Too short for all of that: the figures first, the guards as fit.
        let scales = vec![None; bigs.len()];
        let h = big_height(&bigs, &scales, 1);
        Fit {
            scales,
            captions: 1,
            guards: body.height.saturating_sub(fixed + h) as usize,
        }
    });
    let mut guard_lines: Vec<Line> = if fit.guards >= guards.len() {
        guards.iter().map(|g| guard_line(g, theme)).collect()
    } else {
        let mut l: Vec<Line> = failing.iter().map(|g| guard_line(g, theme)).collect();
        let passing = guards.len() - failing.len();
        if passing > 0 {
            l.push(Line::from(bold(
                format!("   ✔ {passing} more pass"),
                Role::Ok,
                theme,
            )));
        }
        l.truncate(fit.guards);
        l
    };
    guard_lines = guard_lines
        .into_iter()
        .map(|l| truncate_line(l, width))
        .collect();
    let big_h = if bigs.is_empty() {
        0
    } else {
        big_height(&bigs, &fit.scales, fit.captions)
    };
    let used = fixed + big_h + guard_lines.len() as u16;
    let mut spare = body.height.saturating_sub(used);
    // Room to spare: a blank row between the parts, then between guards,
    // then a second one between the parts.
    let mut gaps = [0u16; 4];
    let widen = |gaps: &mut [u16; 4], spare: &mut u16| {
        for g in gaps.iter_mut() {
            let add = (*spare).min(1);
            *g += add;
            *spare -= add;
        }
    };
    widen(&mut gaps, &mut spare);
    let airy = guard_lines.len() > 1 && spare as usize >= guard_lines.len() - 1;
    if airy {
        spare -= guard_lines.len() as u16 - 1;
    }
    widen(&mut gaps, &mut spare);

    let mut y = body.y;
    let put = |frame: &mut Frame, lines: Vec<Line<'static>>, y: &mut u16| {
        let h = (lines.len() as u16).min(body.bottom().saturating_sub(*y));
        frame.render_widget(
            Paragraph::new(lines),
            Rect {
                y: *y,
                height: h,
                ..body
            },
        );
        *y += h;
    };
    let mut head = vec![top];
    head.extend(banner);
    put(frame, head, &mut y);
    y += gaps[0];
    if !bigs.is_empty() {
        let widths = big_widths(&bigs, &fit.scales, body.width).unwrap_or_else(|| {
            let n = bigs.len() as u16;
            vec![body.width / n; bigs.len()]
        });
        let digits = digits_height(&bigs, &fit.scales);
        let mut x = body.x;
        let h = big_h.min(body.bottom().saturating_sub(y));
        for ((big, w), scale) in bigs.iter().zip(widths).zip(&fit.scales) {
            let mut b = big.clone();
            b.captions.truncate(fit.captions as usize);
            let rect = Rect {
                x,
                y,
                width: w.min(body.right().saturating_sub(x)),
                height: h,
            };
            render_big(frame, rect, &b, *scale, digits, theme);
            x += w + 1;
        }
        y += h;
    }
    y += gaps[1];
    let mut cp = run;
    cp.push(next_l);
    for (i, g) in guard_lines.into_iter().enumerate() {
        if airy && i > 0 {
            cp.push(Line::default());
        }
        cp.push(g);
    }
    put(frame, cp, &mut y);
    y += gaps[2];
    put(frame, vec![writes], &mut y);
    y += gaps[3];
    put(frame, summary, &mut y);
}
