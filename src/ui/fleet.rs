//! Several databases in one window: a line per database over the panes
//! (phase, freeze timer, lag or copy progress, verification, the next
//! checkpoint), the panes of the one selected, and — when checkpoints go
//! to all of them — one confirmation listing each database's plan and
//! guards.

use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use ratatui::Frame;

use super::theme::{Role, Theme};
use super::widgets::{one_line, truncate_line, wrapped_height};
use super::{fmt, key_of, next_checkpoint, phase_name};
use crate::model::keymap::FLEET_WORD;
use crate::model::{self, Fleet, Model, View, MIN_REASON};
use crate::runbook::{self, CheckpointId};

/// The whole screen: with one database, its panes as always.
pub fn screen(frame: &mut Frame, models: &[&Model], v: &View, theme: &Theme) {
    let area = frame.area();
    let (Some(fleet), true) = (&v.fleet, models.len() > 1) else {
        if let Some(m) = models.first() {
            super::view(frame, m, v, theme);
        }
        return;
    };
    if area.is_empty() {
        return;
    }
    let selected = fleet.selected.min(models.len() - 1);
    // The strip keeps at least the panes' minimum below it.
    let strip_h = (models.len() as u16 + 1).min(area.height.saturating_sub(super::MIN_ROWS));
    let r = super::split_rows(area, &[strip_h, area.height - strip_h]);
    let (strip, panes) = (r[0], r[1]);
    let lines = strip_lines(models, fleet, theme, area.width);
    frame.render_widget(Paragraph::new(lines).style(theme.style(Role::Text)), strip);
    // With every database's dialog open, the one listing each stands for them.
    let all_dialog = fleet.all && models.iter().any(|m| m.dialog.is_some());
    if all_dialog {
        let mut hidden = models[selected].clone();
        hidden.dialog = None;
        super::view_in(frame, panes, &hidden, v, theme);
        confirm_all(frame, area, models, fleet, v, theme);
    } else {
        super::view_in(frame, panes, models[selected], v, theme);
    }
}

/// The strip: its title, then one line per database.
pub fn strip_lines(
    models: &[&Model],
    fleet: &Fleet,
    theme: &Theme,
    width: u16,
) -> Vec<Line<'static>> {
    let s = |t: String, role: Role| Span::styled(t, theme.style(role));
    let title = if fleet.all {
        format!(
            "{} databases · checkpoints go to ALL of them (a: only the one marked ▶)",
            models.len()
        )
    } else {
        format!(
            "{} databases · ] [ choose · a: checkpoints for all at once",
            models.len()
        )
    };
    let role = if fleet.all { Role::Warn } else { Role::Muted };
    let mut out = vec![truncate_line(Line::from(s(title, role)), width as usize)];
    let name_w = fleet.names.iter().map(|n| n.len()).max().unwrap_or(0);
    for (i, m) in models.iter().enumerate() {
        let name = fleet.names.get(i).cloned().unwrap_or_default();
        let marker = match (i == fleet.selected, fleet.all) {
            (true, _) => "▶",
            (false, true) => "●",
            (false, false) => " ",
        };
        let mut spans = vec![s(
            format!("{marker} {name:<name_w$} "),
            if i == fleet.selected {
                Role::Selected
            } else {
                Role::Text
            },
        )];
        spans.extend(summary(m, theme));
        out.push(truncate_line(Line::from(spans), width as usize));
    }
    out
}

/// One database in a line: phase, freeze timer, lag or copy, checksums,
/// the next checkpoint.
pub fn summary(m: &Model, theme: &Theme) -> Vec<Span<'static>> {
    let s = |t: String, role: Role| Span::styled(t, theme.style(role));
    let sep = || s(" │ ".into(), Role::Muted);
    let mut out = vec![s(format!("{:<9}", phase_name(m)), Role::Title)];
    out.push(sep());
    out.push(match model::budget::freeze_window(m) {
        None => s("writes open".into(), Role::Muted),
        Some((secs, budget, closed)) => {
            let role = if closed {
                Role::Ok
            } else if secs > budget {
                Role::Error
            } else {
                Role::Warn
            };
            let word = if closed { "window" } else { "FROZEN" };
            s(format!("{word} {} of {}", mmss(secs), mmss(budget)), role)
        }
    });
    out.push(sep());
    out.push(progress(m, theme));
    out.push(sep());
    out.push(checksums(m, theme));
    if let Some(run) = m.actions.running() {
        out.push(sep());
        out.push(s(
            format!("running {}", run.checkpoint.title()),
            Role::Accent,
        ));
    } else if let Some(run) = m.actions.history.last() {
        if matches!(run.finished, Some((_, false, _))) {
            out.push(sep());
            out.push(s(
                format!("✖ {} failed", run.checkpoint.title()),
                Role::Error,
            ));
        }
    }
    if let Some(next) = next_checkpoint(m) {
        out.push(sep());
        out.push(s(
            format!("next {} {}", key_of(next), next.title()),
            Role::Muted,
        ));
    }
    out
}

fn mmss(secs: u64) -> String {
    format!("{}:{:02}", secs / 60, secs % 60)
}

/// The copy's progress while one runs, else the replication lag.
fn progress(m: &Model, theme: &Theme) -> Span<'static> {
    let copy = m
        .actions
        .history
        .iter()
        .rev()
        .find(|r| r.checkpoint == CheckpointId::DumpRestore);
    if let Some(run) = copy {
        let text = match (&run.copy, &run.finished) {
            (_, Some((_, true, _))) => "copied".to_string(),
            (_, Some((_, false, _))) => "copy failed".to_string(),
            (Some(c), None) => format!(
                "{} {}/{} tables {}{}",
                c.phase,
                c.tables_done,
                c.tables_total,
                fmt::bytes(c.bytes_done as i64),
                c.eta_ms
                    .map(|ms| format!(" ETA {}", fmt::secs(ms as f64 / 1000.0)))
                    .unwrap_or_default()
            ),
            (None, None) => "copy starting".to_string(),
        };
        let role = match run.finished {
            Some((_, false, _)) => Role::Error,
            Some(_) => Role::Ok,
            None => Role::Accent,
        };
        return Span::styled(text, theme.style(role));
    }
    match model::lag_summary(m) {
        Some(l) => match l.lag_bytes {
            Some(b) => Span::styled(
                format!("lag {}", fmt::bytes(b)),
                theme.style(if l.over_bytes || l.over_time {
                    Role::Warn
                } else {
                    Role::Ok
                }),
            ),
            None => Span::styled("no replication".to_string(), theme.style(Role::Muted)),
        },
        None => Span::styled("source not read yet".to_string(), theme.style(Role::Muted)),
    }
}

/// Where verification stands: the final check's word once it ran, else
/// the last verification's.
fn checksums(m: &Model, theme: &Theme) -> Span<'static> {
    let last_final = m
        .actions
        .history
        .iter()
        .rev()
        .find(|r| r.checkpoint == CheckpointId::FinalCheck);
    if let Some(run) = last_final {
        let (text, role) = match &run.finished {
            None => ("final check running".to_string(), Role::Accent),
            Some((_, true, _)) => ("✔ final check equal".to_string(), Role::Ok),
            Some((_, false, _)) => ("✖ final check failed".to_string(), Role::Error),
        };
        return Span::styled(text, theme.style(role));
    }
    let (text, role) = match &m.verify_run {
        None => ("not verified".to_string(), Role::Muted),
        Some(r) if r.running() => (format!("verifying {}/{}", r.done, r.total), Role::Accent),
        Some(r) if r.error.is_some() || r.cancelled => ("verify stopped".to_string(), Role::Warn),
        Some(r) => {
            let differ = model::verify_differences(m);
            if differ.is_empty() {
                (format!("✔ {} tables match", r.total), Role::Ok)
            } else {
                (format!("✖ {} tables differ", differ.len()), Role::Error)
            }
        }
    };
    Span::styled(text, theme.style(role))
}

/// The confirmation's widest: a plan's lines for each database.
const MAX_W: u16 = 110;

/// One confirmation for every database: each one's plan and guards, and
/// one word to type.
fn confirm_all(
    frame: &mut Frame,
    area: Rect,
    models: &[&Model],
    fleet: &Fleet,
    v: &View,
    theme: &Theme,
) {
    let s = |t: String, role: Role| Span::styled(t, theme.style(role));
    let Some(id) = models.iter().find_map(|m| m.dialog) else {
        return;
    };
    let inner_w = area
        .width
        .saturating_sub(2)
        .min(MAX_W)
        .saturating_sub(2)
        .max(1);
    let full = body(models, fleet, id, theme, false);
    // Each step's first line only when the whole does not fit.
    let body_lines = if wrapped_height(&full, inner_w) + 6 > area.height {
        body(models, fleet, id, theme, true)
    } else {
        full
    };
    let failing = models
        .iter()
        .filter(|m| m.dialog == Some(id))
        .any(|m| runbook::guards(m, id).iter().any(|g| !g.passes()));
    let matches = v.typed.text() == FLEET_WORD;
    let reason_ok = v.reason.text().trim().chars().count() >= MIN_REASON;
    let mut prompt = vec![Line::from(vec![
        s("Type ".into(), Role::Text),
        s(FLEET_WORD.into(), Role::Selected),
        s(
            format!(" to run it for {} databases: ", count_open(models, id)),
            Role::Text,
        ),
        s(
            v.typed.shown(!v.editing_reason),
            if matches { Role::Ok } else { Role::Accent },
        ),
    ])];
    if failing && (v.editing_reason || !v.reason.is_empty()) {
        prompt.push(Line::from(vec![
            s("Override reason (logged): ".into(), Role::Warn),
            s(
                v.reason.shown(v.editing_reason),
                if reason_ok { Role::Ok } else { Role::Accent },
            ),
        ]));
    }
    let hint = match (failing, reason_ok, matches) {
        (true, false, _) => format!(
            "✖ a guard fails: Enter does nothing · Tab: a reason (≥ {MIN_REASON} characters) \
             overrides it for each database · Esc close"
        ),
        (_, _, false) => "Enter runs once \"all\" is typed · Esc close".to_string(),
        (true, true, true) => "Enter: OVERRIDE the failing guards and run it for each".into(),
        (false, _, true) => "Enter: run it now for each database · Esc close".into(),
    };
    prompt.push(Line::from(s(
        hint,
        if failing { Role::Error } else { Role::Warn },
    )));
    let title = s(format!(" {} — all databases ", id.title()), Role::Warn);
    super::overlays::confirm_action::draw(frame, area, MAX_W, title, body_lines, prompt, theme);
}

fn count_open(models: &[&Model], id: CheckpointId) -> usize {
    models.iter().filter(|m| m.dialog == Some(id)).count()
}

/// Each database: what will run and its guards (or why it is not offered).
fn body(
    models: &[&Model],
    fleet: &Fleet,
    id: CheckpointId,
    theme: &Theme,
    compact: bool,
) -> Vec<Line<'static>> {
    let s = |t: String, role: Role| Span::styled(t, theme.style(role));
    let mut out = Vec::new();
    for (i, m) in models.iter().enumerate() {
        let name = fleet.names.get(i).cloned().unwrap_or_default();
        let plan = (m.dialog == Some(id))
            .then(|| runbook::plan(m, id))
            .flatten();
        let Some(plan) = plan else {
            out.push(Line::from(s(
                format!("{name}: not offered here — it does not run for this database"),
                Role::Error,
            )));
            continue;
        };
        out.push(Line::from(s(format!("{name}:"), Role::Title)));
        for (j, step) in plan.steps.iter().enumerate() {
            let lines = step.lines();
            let shown = if compact {
                &lines[..1.min(lines.len())]
            } else {
                &lines[..]
            };
            for (k, l) in shown.iter().enumerate() {
                let head = if k == 0 {
                    format!("  {:>2}. ", j + 1)
                } else {
                    "      ".into()
                };
                out.push(Line::from(s(format!("{head}{l}"), Role::Text)));
            }
        }
        let guards = runbook::guards(m, id);
        let failing: Vec<_> = guards.iter().filter(|g| !g.passes()).collect();
        if failing.is_empty() {
            out.push(Line::from(s(
                format!("  ✔ its {} guards pass", guards.len()),
                Role::Ok,
            )));
        }
        for g in failing {
            out.push(Line::from(vec![
                s(format!("  ✖ {}", g.label), Role::Error),
                s(format!(" — {}", one_line(&g.detail())), Role::Muted),
            ]));
        }
    }
    out
}
