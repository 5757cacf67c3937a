//! The latest checkpoint run, live: each planned step with its state, what
//! it did and how long it took, the statement it ran, the preflight's checks
//! with their fixes, the initial sync's tables with progress and an ETA,
//! and the operator's notes since. The same lines fill the pane on a wide
//! screen and the output overlay (`o`) on a narrow one.

use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Wrap};
use ratatui::Frame;

use crate::model::sync::{self, SyncProgress};
use crate::model::{CheckpointRun, Model, StepRecord};
use crate::runbook::Step;
use crate::ui::fmt;
use crate::ui::theme::{Role, Theme};
use crate::ui::widgets::{one_line, pane_block, wrapped_height, PaneFrame};

/// A copy Job's log lines shown under its step (the log keeps more).
const JOB_LOG_SHOWN: usize = 8;

/// The run shown: the latest one.
pub fn shown(model: &Model) -> Option<&CheckpointRun> {
    model.actions.history.last()
}

/// The pane's title: the checkpoint and how the run stands.
pub fn title(model: &Model, run: &CheckpointRun) -> (String, Role) {
    let name = run.checkpoint.title();
    match (&run.finished, model.now) {
        (None, Some(now)) => (
            format!(
                "{name} · ⟳ running {}",
                fmt::secs(fmt::seconds_between(run.started_at, now))
            ),
            Role::Accent,
        ),
        (None, None) => (format!("{name} · ⟳ running"), Role::Accent),
        (Some((at, ok, _)), _) => {
            let took = fmt::secs(fmt::seconds_between(run.started_at, *at));
            if *ok {
                (
                    format!("{name} · ✔ done {} in {took}", fmt::clock(*at)),
                    Role::Ok,
                )
            } else {
                (
                    format!("{name} · ✖ failed {} after {took}", fmt::clock(*at)),
                    Role::Error,
                )
            }
        }
    }
}

fn step_line(
    model: &Model,
    run: &CheckpointRun,
    index: usize,
    step: &Step,
    theme: &Theme,
) -> Line<'static> {
    let s = |t: String, role: Role| Span::styled(t, theme.style(role));
    let record = run.steps.iter().find(|r| r.index == index);
    let head = format!("{}. {}", index + 1, step.title());
    let took = |r: &StepRecord, at| {
        r.elapsed_ms.map_or_else(
            || fmt::secs(fmt::seconds_between(r.started_at, at)),
            fmt::millis,
        )
    };
    // The checks say the rest, line by line.
    let said = |m: &str| {
        if *step == Step::Preflight && !run.checks.is_empty() {
            let bad = run.checks.iter().filter(|c| !c.ok).count();
            match bad {
                0 => format!("all {} checks pass", run.checks.len()),
                n => format!("{n} of {} checks fail", run.checks.len()),
            }
        } else {
            one_line(m)
        }
    };
    let (mark, role, tail) = match record {
        None => ("◌", Role::Muted, String::new()),
        Some(r) => match (&r.finished, model.now) {
            (None, now) => (
                "⟳",
                Role::Accent,
                now.map_or(String::new(), |now| {
                    format!(
                        " · {} so far",
                        fmt::secs(fmt::seconds_between(r.started_at, now))
                    )
                }),
            ),
            (Some((at, Ok(m))), _) => ("✔", Role::Ok, format!(" — {} ({})", said(m), took(r, *at))),
            (Some((at, Err(e))), _) => (
                "✖",
                Role::Error,
                format!(" — {} ({})", said(e), took(r, *at)),
            ),
        },
    };
    Line::from(vec![
        s(format!("{mark} "), role),
        s(head, Role::Text),
        s(
            tail,
            if role == Role::Error {
                Role::Error
            } else {
                Role::Muted
            },
        ),
    ])
}

fn sync_lines(p: &SyncProgress, theme: &Theme) -> Vec<Line<'static>> {
    let s = |t: String, role: Role| Span::styled(t, theme.style(role));
    let mut head = format!(
        "    {} of {} tables ready · {} of ~{} rows",
        p.ready,
        p.tables.len(),
        fmt::int(p.done_rows),
        fmt::int(p.total_rows)
    );
    if let Some(rate) = p.rate {
        head.push_str(&format!(" · {}/s", fmt::int(rate as i64)));
    }
    match p.eta_s {
        Some(eta) => head.push_str(&format!(" · ETA {}", fmt::secs(eta))),
        None if p.ready < p.tables.len() => head.push_str(" · ETA once rows move"),
        None => {}
    }
    let mut out = vec![Line::from(s(head, Role::Text))];
    for t in p.tables.iter().filter(|t| t.state != "r") {
        let mut l = format!("      {}  {}", t.table, t.word());
        if let Some(c) = t.copied {
            let pct = if t.estimate > 0 {
                format!(
                    " ({:.0}%)",
                    100.0 * (c.min(t.estimate)) as f64 / t.estimate as f64
                )
            } else {
                String::new()
            };
            l.push_str(&format!(
                "  {} of ~{} rows{pct}",
                fmt::int(c),
                fmt::int(t.estimate)
            ));
        }
        out.push(Line::from(s(l, Role::Muted)));
    }
    out
}

/// The operator's notes since the run shown started (all of them before
/// any run).
fn notes(model: &Model, theme: &Theme) -> Vec<Line<'static>> {
    let since = shown(model).map(|r| r.started_at);
    model
        .notes
        .iter()
        .filter(|(at, _)| since.is_none_or(|s| *at >= s))
        .map(|(at, text)| {
            Line::from(vec![
                Span::styled(format!("✎ {} ", fmt::clock(*at)), theme.style(Role::Accent)),
                Span::styled(one_line(text), theme.style(Role::Text)),
            ])
        })
        .collect()
}

/// Every line the pane has to show, unwrapped: the run, then the notes.
pub fn lines(model: &Model, theme: &Theme) -> Vec<Line<'static>> {
    let mut out = Vec::new();
    // The budget overrun of the freeze still on, and what was done about it.
    let frozen_at = model.actions.frozen.as_ref().map(|f| f.at);
    let open = crate::model::budget::freeze_window(model).is_some_and(|(_, _, closed)| !closed);
    if let Some(b) = model
        .actions
        .budget
        .as_ref()
        .filter(|b| open && Some(b.freeze) == frozen_at)
    {
        out.push(Line::from(vec![
            Span::styled(format!("⚠ {} ", fmt::clock(b.at)), theme.style(Role::Error)),
            Span::styled(b.outcome.clone(), theme.style(Role::Text)),
        ]));
    }
    out.extend(run_lines(model, theme));
    out.extend(notes(model, theme));
    out
}

fn run_lines(model: &Model, theme: &Theme) -> Vec<Line<'static>> {
    let s = |t: String, role: Role| Span::styled(t, theme.style(role));
    let Some(run) = shown(model) else {
        return vec![];
    };
    let mut out = Vec::new();
    if let Some(why) = &run.auto {
        out.push(Line::from(vec![
            s("⚠ ".into(), Role::Error),
            s(why.clone(), Role::Text),
        ]));
    }
    if let Some((labels, reason)) = &run.overridden {
        out.push(Line::from(vec![
            s("⚠ overrode: ".into(), Role::Warn),
            s(format!("{} — \"{reason}\"", labels.join(", ")), Role::Text),
        ]));
    }
    if run.plan.steps.is_empty() {
        let why = run
            .plan
            .notes
            .first()
            .cloned()
            .unwrap_or_else(|| "nothing to do".into());
        out.push(Line::from(s(format!("  nothing ran: {why}"), Role::Muted)));
    }
    for (index, step) in run.plan.steps.iter().enumerate() {
        let record = run.steps.iter().find(|r| r.index == index);
        out.push(step_line(model, run, index, step, theme));
        match step {
            Step::Sql { sql, .. } => out.push(Line::from(s(format!("    {sql};"), Role::Muted))),
            Step::Preflight => {
                // What fails, with its fix, before what passes.
                let (bad, good): (Vec<_>, Vec<_>) = run.checks.iter().partition(|c| !c.ok);
                for c in bad.into_iter().chain(good) {
                    let (mark, role) = if c.ok {
                        ("✔", Role::Ok)
                    } else {
                        ("✖", Role::Error)
                    };
                    out.push(Line::from(vec![
                        s(format!("    {mark} "), role),
                        s(c.name.clone(), Role::Text),
                        s(format!(" — {}", c.observed), Role::Muted),
                    ]));
                    if let Some(fix) = &c.fix {
                        out.push(Line::from(s(format!("        fix: {fix}"), Role::Warn)));
                    }
                }
            }
            Step::AdvanceSequences { to, .. } => {
                let n = |v: Option<i64>| v.map_or("never used".to_string(), fmt::int);
                let (read, set) = (to.other().as_str(), to.as_str());
                for q in &run.sequences {
                    let (after, role) = match q.set_to {
                        Some(v) => (format!(" → {}", fmt::int(v)), Role::Ok),
                        None => (" (left: at or past)".to_string(), Role::Muted),
                    };
                    out.push(Line::from(vec![
                        s(format!("    {}  ", q.name), Role::Text),
                        s(
                            format!("{read} {} · {set} {}", n(q.source), n(q.target_before)),
                            Role::Muted,
                        ),
                        s(after, role),
                    ]));
                }
            }
            Step::DumpRestore { .. } => {
                if let Some(p) = &run.copy {
                    out.push(Line::from(s(format!("    {}", copy_line(p)), Role::Muted)));
                }
            }
            // The pod's log, its newest lines, under the progress.
            Step::CopyJob { .. } => {
                if let Some(p) = &run.copy {
                    out.push(Line::from(s(format!("    {}", copy_line(p)), Role::Muted)));
                }
                let skip = run.job_log.len().saturating_sub(JOB_LOG_SHOWN);
                for l in run.job_log.iter().skip(skip) {
                    out.push(Line::from(s(format!("    │ {}", one_line(l)), Role::Muted)));
                }
            }
            // The change to merge stays in sight until it has been seen.
            Step::AwaitConfig { .. }
                if !matches!(record.and_then(|r| r.finished.as_ref()), Some((_, Ok(_)))) =>
            {
                for l in step.lines().into_iter().skip(1) {
                    let role = if l.trim_start().starts_with(['+', '-']) {
                        Role::Text
                    } else {
                        Role::Muted
                    };
                    out.push(Line::from(s(format!("  {l}"), role)));
                }
            }
            Step::WaitSync { .. } if record.is_some() => {
                if let Some(p) = sync::progress(model) {
                    out.extend(sync_lines(&p, theme));
                }
            }
            _ => {}
        }
    }
    for (at, text) in run.legacy_steps.iter() {
        out.push(Line::from(s(
            format!("  {} {}", fmt::clock(*at), one_line(text)),
            Role::Text,
        )));
    }
    if let Some((_, false, message)) = &run.finished {
        if run
            .steps
            .iter()
            .all(|r| !matches!(r.finished, Some((_, Err(_)))))
        {
            // Failed before any step (a guard at the moment of running, a cancel).
            out.push(Line::from(s(
                format!("✖ {}", one_line(message)),
                Role::Error,
            )));
        }
    }
    out
}

/// The copy's progress in a line: its phase, tables, bytes, time left.
pub fn copy_line(p: &crate::session::event::CopyProgress) -> String {
    let bytes = |n: u64| fmt::bytes(n as i64);
    let of = if p.phase == "dump" { "of ~" } else { "of " };
    let mut line = format!("{} {}/{} tables", p.phase, p.tables_done, p.tables_total);
    // A Job's pipe tells tables, not bytes.
    if p.bytes_total > 0 {
        line.push_str(&format!(
            " · {} {of}{}",
            bytes(p.bytes_done),
            bytes(p.bytes_total)
        ));
    }
    if let Some(eta) = p.eta_ms {
        line.push_str(&format!(" · ETA {:.0} s", eta as f64 / 1000.0));
    }
    line
}

/// Rows the pane wants at `width`, frame included; 0 with nothing to show.
pub fn wanted_height(model: &Model, theme: &Theme, width: u16) -> u16 {
    let all = lines(model, theme);
    if all.is_empty() {
        return 0;
    }
    wrapped_height(&all, width.saturating_sub(2)) + 2
}

/// While it runs the newest lines matter most: the tail stays in view.
/// Once it ended, the top (the step that failed and the fixes come first),
/// moved down by `offset` rows as far as there is more to see.
pub fn scroll(run: &CheckpointRun, lines: &[Line], inner: Rect, offset: u16) -> u16 {
    let last = wrapped_height(lines, inner.width).saturating_sub(inner.height);
    if run.finished.is_some() {
        offset.min(last)
    } else {
        last
    }
}

pub fn render(frame: &mut Frame, area: Rect, model: &Model, theme: &Theme, pane: PaneFrame) {
    let (t, role) = match shown(model) {
        Some(run) => title(model, run),
        None => ("notes".to_string(), Role::Muted),
    };
    let title = vec![
        Span::styled(" Run ", theme.style(Role::Title)),
        Span::styled(format!("─ {t} "), theme.style(role)),
    ];
    let right = vec![Span::styled(" o output ", theme.style(Role::Muted))];
    let block = pane_block(theme, pane, area.width, title, right);
    let inner = block.inner(area);
    frame.render_widget(block, area);
    if inner.is_empty() {
        return;
    }
    let all = lines(model, theme);
    let skip = shown(model).map_or(0, |run| scroll(run, &all, inner, 0));
    frame.render_widget(
        Paragraph::new(all)
            .wrap(Wrap { trim: false })
            .scroll((skip, 0)),
        inner,
    );
}
