//! One line for the Kubernetes actions: the running one's latest step, or how
//! the last one ended, or why none could run.

use ratatui::text::{Line, Span};

use crate::model::Model;
use crate::ui::theme::{Role, Theme};
use crate::ui::widgets::{one_line, truncate_spans};

/// None when there is nothing to say (no action yet and access is fine).
pub fn line(model: &Model, theme: &Theme, width: u16) -> Option<Line<'static>> {
    let s = |t: String, role: Role| Span::styled(t, theme.style(role));
    let spans = if let Some(run) = model.actions.history.last() {
        let title = run.checkpoint.title();
        match &run.finished {
            None => {
                let last = run
                    .latest()
                    .map_or("starting".to_string(), |m| one_line(&m));
                vec![
                    s(format!(" ⟳ {title}: "), Role::Accent),
                    s(last, Role::Text),
                ]
            }
            Some((at, ok, message)) => {
                let (mark, role) = if *ok {
                    ("✔", Role::Ok)
                } else {
                    ("✖ FAILED", Role::Error)
                };
                vec![
                    s(format!(" {mark} {title} {}: ", at.format("%H:%M:%S")), role),
                    s(one_line(message), Role::Text),
                ]
            }
        }
    } else {
        let p = model.actions.preflight.as_ref()?;
        if let Some(e) = &p.error {
            vec![
                s(" ✖ access review failed: ".into(), Role::Error),
                s(one_line(e), Role::Text),
            ]
        } else {
            let denied = p.checks.iter().find(|c| !c.allowed)?;
            vec![
                s(" ✖ not allowed: ".into(), Role::Error),
                s(denied.describe.clone(), Role::Text),
            ]
        }
    };
    Some(Line::from(truncate_spans(spans, width as usize)))
}
