//! The confirmation in front of every Kubernetes action: exactly what will be
//! sent, each guard live with its reason, and the object's name to type.

use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Wrap};
use ratatui::Frame;

use crate::model::ActionPlan;
use crate::ui::theme::{Role, Theme};
use crate::ui::widgets::{centered, dialog, one_line};

/// The plan and guards, then (kept apart so it is never clipped) the prompt.
fn lines<'a>(
    plan: &'a ActionPlan,
    typed: &'a str,
    theme: &Theme,
) -> (Vec<Line<'a>>, Vec<Line<'a>>) {
    let s = |t: String, role: Role| Span::styled(t, theme.style(role));
    let mut out = vec![Line::from(s("Will run:".into(), Role::Title))];
    for l in &plan.will_run {
        out.push(Line::from(s(format!("  {l}"), Role::Text)));
    }
    out.push(Line::from(s("Guards:".into(), Role::Title)));
    for g in &plan.guards {
        let (mark, role) = if g.ok {
            ("✔", Role::Ok)
        } else {
            ("✖", Role::Error)
        };
        out.push(Line::from(vec![
            s(format!("  {mark} {}", g.label), role),
            s(format!(" — {}", one_line(&g.detail)), Role::Muted),
        ]));
    }
    for n in &plan.notes {
        out.push(Line::from(s(format!("ℹ {n}"), Role::Muted)));
    }
    out.push(Line::default());
    let matches = typed == plan.confirm_name;
    let mut prompt = vec![Line::from(vec![
        s("Type ".into(), Role::Text),
        s(plan.confirm_name.clone(), Role::Selected),
        s(" to confirm: ".into(), Role::Text),
        s(
            format!("{typed}█"),
            if matches { Role::Ok } else { Role::Accent },
        ),
    ])];
    let (hint, role) = match (plan.guards_pass(), matches) {
        (false, _) => (
            "✖ a guard fails: Enter does nothing · Esc cancel",
            Role::Error,
        ),
        (true, false) => ("Enter runs once the name matches · Esc cancel", Role::Muted),
        (true, true) => ("Enter: run it now · Esc cancel", Role::Warn),
    };
    prompt.push(Line::from(s(hint.into(), role)));
    (out, prompt)
}

pub fn render(frame: &mut Frame, area: Rect, plan: &ActionPlan, typed: &str, theme: &Theme) {
    let width = area.width.saturating_sub(2).min(100);
    let inner_w = width.saturating_sub(2).max(1) as usize;
    let (body, prompt) = lines(plan, typed, theme);
    // Long patches wrap: every character of what will run stays visible.
    let rows = |ls: &[Line]| -> u16 {
        ls.iter()
            .map(|l| l.width().max(1).div_ceil(inner_w) as u16)
            .sum()
    };
    let prompt_h = rows(&prompt);
    let height = (rows(&body) + prompt_h + 2).min(area.height);
    let rect = centered(area, width, height);
    let inner = dialog(
        frame,
        rect,
        Span::styled(
            format!(" {} ", plan.action.title()),
            theme.style(Role::Warn),
        ),
        Role::Warn,
        theme,
        None,
    );
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
