//! The runbook: every checkpoint by phase with its key and state, the
//! current one marked and its first failing guard said in words. At 80×24
//! it shrinks to one line: the current checkpoint and that guard.

use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use ratatui::Frame;

use crate::model::keymap::{Command, BINDINGS};
use crate::model::Model;
use crate::runbook::{self, CheckpointId, Phase};
use crate::ui::theme::{Role, Theme};
use crate::ui::widgets::{one_line, pane_block, truncate_line, PaneFrame};

/// Where a checkpoint stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    NotRun,
    Running,
    /// Ran and succeeded (at HH:MM:SS), or has nothing left to do.
    Done(Option<String>),
    Failed(String),
}

pub fn key_of(id: CheckpointId) -> &'static str {
    BINDINGS
        .iter()
        .find(|b| b.command == Command::Open(id))
        .map_or("?", |b| b.keys[0])
}

/// The checkpoints this session can run, in runbook order.
fn shown(model: &Model) -> Vec<CheckpointId> {
    let kube = model.info.as_ref().is_some_and(|i| i.kubernetes.is_some());
    runbook::checkpoints(model)
        .iter()
        .copied()
        .filter(|id| {
            kube || !id.is_kubernetes()
                || (*id == CheckpointId::SwitchConfig
                    && runbook::checkpoints::pooler_switch::configured(model))
        })
        .collect()
}

pub fn state(model: &Model, id: CheckpointId) -> State {
    let last = model
        .actions
        .history
        .iter()
        .rev()
        .find(|r| r.checkpoint == id);
    match last.map(|r| &r.finished) {
        Some(None) => State::Running,
        Some(Some((at, true, _))) => State::Done(Some(at.format("%H:%M:%S").to_string())),
        Some(Some((at, false, _))) => State::Failed(at.format("%H:%M:%S").to_string()),
        // Nothing left to do by the state itself (already done elsewhere).
        None if runbook::plan(model, id).is_some_and(|p| {
            p.steps.is_empty() && p.notes.iter().any(|n| n.starts_with("already done"))
        }) =>
        {
            State::Done(None)
        }
        None => State::NotRun,
    }
}

/// The checkpoint to do next: the first of the way forward not done after
/// the furthest one done (one skipped earlier stays marked not run).
pub fn current(model: &Model) -> Option<CheckpointId> {
    let forward: Vec<CheckpointId> = shown(model)
        .into_iter()
        .filter(|id| *id != CheckpointId::Rollback)
        .collect();
    let done = |id: &CheckpointId| matches!(state(model, *id), State::Done(_));
    let from = forward.iter().rposition(done).map_or(0, |i| i + 1);
    forward[from..].iter().copied().find(|id| !done(id))
}

/// The checkpoint after `id` on the way forward (the rollback is not on it).
pub fn after(model: &Model, id: CheckpointId) -> Option<CheckpointId> {
    let forward: Vec<CheckpointId> = shown(model)
        .into_iter()
        .filter(|c| *c != CheckpointId::Rollback)
        .collect();
    let i = forward.iter().position(|c| *c == id)?;
    forward.get(i + 1).copied()
}

/// "✖ label: detail" of the first guard that does not hold, or that all do.
/// An access review that has only aged is left out: opening the dialog asks
/// again, and it is judged there.
/// `acts`: this console binds the checkpoint's key (not read-only, not a
/// replay or a follower), so the verdict may say to press it.
fn verdict(model: &Model, id: CheckpointId, acts: bool) -> (String, Role) {
    // A run that failed says why, before any guard does.
    if let Some(r) = model
        .actions
        .history
        .iter()
        .rev()
        .find(|r| r.checkpoint == id)
    {
        if let Some((_, false, message)) = &r.finished {
            return (format!("✖ failed: {}", one_line(message)), Role::Error);
        }
    }
    let aged = |g: &runbook::Guard| {
        g.label == runbook::guard::ACCESS && matches!(g.verdict, runbook::Verdict::Stale { .. })
    };
    match runbook::guards(model, id)
        .into_iter()
        .find(|g| !g.passes() && !aged(g))
    {
        Some(g) => (
            format!("✖ {}: {}", g.label, one_line(&g.detail())),
            Role::Error,
        ),
        None if acts => (format!("✔ guards pass: press {}", key_of(id)), Role::Ok),
        None => ("✔ guards pass".to_string(), Role::Ok),
    }
}

/// The longest checkpoint title: the state words line up after it.
fn title_width() -> usize {
    runbook::CATALOG
        .iter()
        .map(|c| c.title.chars().count())
        .max()
        .unwrap_or(0)
}

fn row(model: &Model, id: CheckpointId, theme: &Theme, current: bool, acts: bool) -> Line<'static> {
    let s = |t: String, role: Role| Span::styled(t, theme.style(role));
    let (mark, word, role) = match state(model, id) {
        State::NotRun => ("·", String::new(), Role::Muted),
        State::Running => ("⟳", "running".into(), Role::Accent),
        State::Done(Some(at)) => ("✔", format!("done {at}"), Role::Ok),
        State::Done(None) => ("✔", "already done".into(), Role::Ok),
        State::Failed(at) => ("✖", format!("failed {at}"), Role::Error),
    };
    let mark = if current { "▸" } else { mark };
    let mut spans = vec![
        s(
            format!(" {mark} "),
            if current { Role::Accent } else { role },
        ),
        s(format!("{:<2}", key_of(id)), Role::Accent),
        s(
            format!("{:<w$} ", id.title(), w = title_width()),
            if current { Role::Title } else { Role::Text },
        ),
        s(word, role),
    ];
    if current {
        let (v, vrole) = verdict(model, id, acts);
        spans.push(s(format!(" {v}"), vrole));
    }
    Line::from(spans)
}

pub fn lines(model: &Model, theme: &Theme, width: u16, acts: bool) -> Vec<Line<'static>> {
    let cur = current(model);
    let mut out = Vec::new();
    let mut phase: Option<Phase> = None;
    for id in shown(model) {
        let p = id.info().phase;
        if phase != Some(p) {
            out.push(Line::from(Span::styled(
                p.title().to_string(),
                theme.style(Role::Muted),
            )));
            phase = Some(p);
        }
        out.push(row(model, id, theme, cur == Some(id), acts));
    }
    out.into_iter()
        .map(|l| truncate_line(l, width as usize))
        .collect()
}

/// Rows the pane wants, frame included: a row per checkpoint and per phase
/// heading (counted, not drawn: it is asked on every frame).
pub fn wanted_height(model: &Model) -> u16 {
    let ids = shown(model);
    let mut phases: Vec<Phase> = ids.iter().map(|id| id.info().phase).collect();
    phases.dedup();
    (ids.len() + phases.len()) as u16 + 2
}

pub fn render(frame: &mut Frame, area: Rect, model: &Model, theme: &Theme, acts: bool) {
    let title = vec![Span::styled(" Runbook ", theme.style(Role::Title))];
    let block = pane_block(theme, PaneFrame::Boxed, area.width, title, vec![]);
    let inner = block.inner(area);
    frame.render_widget(block, area);
    if inner.is_empty() {
        return;
    }
    frame.render_widget(
        Paragraph::new(lines(model, theme, inner.width, acts)),
        inner,
    );
}

/// One line for narrow screens: the current checkpoint and its first
/// failing guard (or the key that runs it). None when all is done.
pub fn line(model: &Model, theme: &Theme, width: u16, acts: bool) -> Option<Line<'static>> {
    let id = current(model)?;
    let (v, role) = verdict(model, id, acts);
    let line = Line::from(vec![
        Span::styled(" ▸ ", theme.style(Role::Accent)),
        Span::styled(format!("{} ", key_of(id)), theme.style(Role::Accent)),
        Span::styled(format!("{}  ", id.title()), theme.style(Role::Title)),
        Span::styled(v, theme.style(role)),
    ]);
    Some(truncate_line(line, width as usize))
}
