//! The confirmation in front of every Kubernetes action: exactly what will be
//! sent, each guard live with its reason, and the object's name to type.

use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Wrap};
use ratatui::Frame;

use crate::model::{View, MIN_REASON};
use crate::runbook::{Confirm, Guard, Plan, Verdict};
use crate::ui::theme::{Role, Theme};
use crate::ui::widgets::{centered, dialog, one_line, wrapped_height};

/// ✔ pass, ✖ fail, ◌ stale: a symbol and a word, never colour alone.
fn mark(g: &Guard) -> (&'static str, Role) {
    match g.verdict {
        Verdict::Pass(_) => ("✔", Role::Ok),
        Verdict::Fail(_) => ("✖", Role::Error),
        Verdict::Stale { .. } => ("◌", Role::Error),
    }
}

/// The plan and guards, then (kept apart so it is never clipped) the prompt.
fn lines<'a>(
    plan: &'a Plan,
    guards: &'a [Guard],
    v: &'a View,
    theme: &Theme,
) -> (Vec<Line<'a>>, Vec<Line<'a>>) {
    let s = |t: String, role: Role| Span::styled(t, theme.style(role));
    let mut out = vec![Line::from(s("Will run:".into(), Role::Title))];
    for (i, step) in plan.steps.iter().enumerate() {
        for (j, l) in step.lines().into_iter().enumerate() {
            let head = if j == 0 {
                format!("{:>2}. ", i + 1)
            } else {
                "    ".into()
            };
            out.push(Line::from(s(format!("{head}{l}"), Role::Text)));
        }
    }
    out.push(Line::from(s("Guards:".into(), Role::Title)));
    for g in guards {
        let (m, role) = mark(g);
        out.push(Line::from(vec![
            s(format!("  {m} {}", g.label), role),
            s(format!(" — {}", one_line(&g.detail())), Role::Muted),
        ]));
    }
    for n in &plan.notes {
        out.push(Line::from(s(format!("ℹ {n}"), Role::Muted)));
    }
    out.push(Line::default());
    let failing = guards.iter().any(|g| !g.passes());
    let matches = plan.confirm.accepts(v.typed.text());
    let mut prompt = Vec::new();
    if let Confirm::TypeName(name) = &plan.confirm {
        prompt.push(Line::from(vec![
            s("Type ".into(), Role::Text),
            s(name.clone(), Role::Selected),
            s(" to confirm: ".into(), Role::Text),
            s(
                v.typed.shown(!v.editing_reason),
                if matches { Role::Ok } else { Role::Accent },
            ),
        ]));
    }
    let reason_ok = v.reason.text().trim().chars().count() >= MIN_REASON;
    if failing && (v.editing_reason || !v.reason.is_empty()) {
        prompt.push(Line::from(vec![
            s("Override reason (logged): ".into(), Role::Warn),
            s(
                v.reason.shown(v.editing_reason),
                if reason_ok { Role::Ok } else { Role::Accent },
            ),
        ]));
    }
    let (hint, role) = match (failing, reason_ok, matches) {
        (true, false, _) => (
            format!(
                "✖ a guard fails: Enter does nothing · Tab: type a reason (≥ {MIN_REASON} \
                 characters) to override · Esc close"
            ),
            Role::Error,
        ),
        (true, true, false) | (false, _, false) => (
            "Enter runs once the name matches · Esc close".to_string(),
            Role::Muted,
        ),
        (true, true, true) => (
            "Enter: OVERRIDE the failing guards and run it now · Esc close".to_string(),
            Role::Error,
        ),
        (false, _, true) => ("Enter: run it now · Esc close".to_string(), Role::Warn),
    };
    prompt.push(Line::from(s(hint, role)));
    (out, prompt)
}

pub fn render(
    frame: &mut Frame,
    area: Rect,
    plan: &Plan,
    guards: &[Guard],
    v: &View,
    theme: &Theme,
) {
    let (body, prompt) = lines(plan, guards, v, theme);
    let title = Span::styled(
        format!(" {} ", plan.checkpoint.title()),
        theme.style(Role::Warn),
    );
    draw(frame, area, 100, title, body, prompt, theme);
}

/// A confirmation at most `max_w` wide: `body` (wrapped, every character
/// of what will run visible) above `prompt`, which is never clipped.
pub fn draw(
    frame: &mut Frame,
    area: Rect,
    max_w: u16,
    title: Span<'_>,
    body: Vec<Line<'_>>,
    prompt: Vec<Line<'_>>,
    theme: &Theme,
) {
    let width = area.width.saturating_sub(2).min(max_w);
    let inner_w = width.saturating_sub(2).max(1);
    let rows = |ls: &[Line]| wrapped_height(ls, inner_w);
    let prompt_h = rows(&prompt);
    let height = (rows(&body) + prompt_h + 2).min(area.height);
    let rect = centered(area, width, height);
    let inner = dialog(frame, rect, title, Role::Warn, theme, None);
    if inner.is_empty() {
        return;
    }
    let prompt_h = prompt_h.min(inner.height);
    let body_area = Rect {
        height: inner.height - prompt_h,
        ..inner
    };
    let prompt_area = Rect {
        y: inner.bottom() - prompt_h,
        height: prompt_h,
        ..inner
    };
    frame.render_widget(Paragraph::new(body).wrap(Wrap { trim: false }), body_area);
    frame.render_widget(
        Paragraph::new(prompt).wrap(Wrap { trim: false }),
        prompt_area,
    );
}
