//! Quitting while a count or verification runs would cancel it: ask first.

use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Clear, Paragraph, Wrap};
use ratatui::Frame;

use crate::ui::theme::{Role, Theme};
use crate::ui::widgets::centered;

pub const QUESTION: &str = "A count or verification is running. Quit and cancel it?";

pub fn render(frame: &mut Frame, area: Rect, theme: &Theme) {
    let rect = centered(area, 64, 7);
    if rect.is_empty() {
        return;
    }
    frame.render_widget(Clear, rect);
    let block = Block::bordered()
        .border_set(ratatui::symbols::border::ROUNDED)
        .border_style(theme.style(Role::Warn))
        .title(Span::styled(" Quit? ", theme.style(Role::Warn)));
    let inner = block.inner(rect);
    frame.render_widget(block, rect);
    let text = vec![
        Line::default(),
        Line::from(vec![
            Span::styled(format!("{QUESTION} "), theme.style(Role::Text)),
            Span::styled("y / n", theme.style(Role::Selected)),
        ]),
        Line::default(),
        Line::from(Span::styled(
            "y: quit, it is cancelled on the servers · n or Esc: keep it running",
            theme.style(Role::Muted),
        )),
    ];
    // The question may wrap on a tiny screen; it is a sentence, so that still reads.
    frame.render_widget(
        Paragraph::new(text).wrap(Wrap { trim: true }).centered(),
        inner,
    );
}
