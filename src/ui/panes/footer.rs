//! The key line: what the operator can do right now.

use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use ratatui::Frame;

use crate::model::Model;
use crate::ui::fmt;
use crate::ui::theme::{Role, Theme};
use crate::ui::widgets::{one_line, truncate_spans};

pub const KEYS: [(&str, &str); 6] = [
    ("c", "exact count"),
    ("v", "verify"),
    ("x", "cancel"),
    ("↑↓", "scroll"),
    ("?", "help"),
    ("q", "quit"),
];

/// Shown only when this session may act on Kubernetes (not read-only).
pub const KUBE_KEYS: (&str, &str) = ("S R B", "k8s");

pub fn render(frame: &mut Frame, area: Rect, model: &Model, theme: &Theme) {
    let counting = model.count_running();
    let verifying = model.verify_running();
    let mut spans = vec![Span::raw(" ")];
    let mut keys: Vec<(&str, &str)> = KEYS.to_vec();
    if crate::model::kube_actions_bound(model) {
        keys.insert(3, KUBE_KEYS);
    }
    for (i, (key, what)) in keys.iter().enumerate() {
        if i > 0 {
            spans.push(Span::raw("  "));
        }
        // Keys that would do nothing right now are dimmed, not hidden, so the line never shifts.
        let idle = (*key == "c" && counting)
            || (*key == "v" && verifying)
            || (*key == "x" && !counting && !verifying && model.kube_actions.running().is_none())
            || (*key == KUBE_KEYS.0 && model.kube_actions.running().is_some());
        let key_role = if idle { Role::Muted } else { Role::Accent };
        spans.push(Span::styled(
            *key,
            theme
                .style(key_role)
                .add_modifier(ratatui::style::Modifier::BOLD),
        ));
        spans.push(Span::raw(" "));
        spans.push(Span::styled(*what, theme.style(Role::Muted)));
    }
    let left_w: usize = spans.iter().map(Span::width).sum();
    let width = area.width as usize;
    if let Some(reason) = &model.ended {
        let note = format!("■ session ended: {} ", one_line(reason));
        let room = width.saturating_sub(left_w + 2);
        if room >= 16 {
            let note = fmt::truncate(&note, room).into_owned();
            let pad = width - left_w - fmt::width(&note);
            spans.push(Span::raw(" ".repeat(pad)));
            spans.push(Span::styled(note, theme.style(Role::Warn)));
        }
    }
    frame.render_widget(
        Paragraph::new(Line::from(truncate_spans(spans, width))),
        area,
    );
}
