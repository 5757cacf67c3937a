//! Quitting while a count or verification runs would cancel it: ask first.

use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Wrap};
use ratatui::Frame;

use crate::ui::theme::{Role, Theme};
use crate::ui::widgets::{centered, dialog};

pub const QUESTION: &str = "A count, verification or Kubernetes action is running. Quit anyway?";

pub fn render(frame: &mut Frame, area: Rect, theme: &Theme) {
    let inner = dialog(
        frame,
        centered(area, 76, 7),
        Span::styled(" Quit? ", theme.style(Role::Warn)),
        Role::Warn,
        theme,
        None,
    );
    if inner.is_empty() {
        return;
    }
    let text = vec![
        Line::default(),
        Line::from(vec![
            Span::styled(format!("{QUESTION} "), theme.style(Role::Text)),
            Span::styled("y / n", theme.style(Role::Selected)),
        ]),
        Line::default(),
        Line::from(Span::styled(
            "y: quit, queries are cancelled on the servers · n or Esc: keep going",
            theme.style(Role::Muted),
        )),
    ];
    // The question may wrap on a tiny screen; it is a sentence, so that still reads.
    frame.render_widget(
        Paragraph::new(text).wrap(Wrap { trim: true }).centered(),
        inner,
    );
}
