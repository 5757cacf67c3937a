//! The operator's note being written: one line, saved to the session log
//! (and the report) with Enter.

use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use ratatui::Frame;

use crate::model::field::Field;
use crate::ui::theme::{Role, Theme};
use crate::ui::widgets::{dialog, wrapped_height};

pub fn render(frame: &mut Frame, area: Rect, note: &Field, theme: &Theme) {
    let width = area.width.saturating_sub(2).min(100);
    let text = Line::from(Span::styled(note.shown(true), theme.style(Role::Text)));
    let hint = Line::from(Span::styled(
        "Enter saves it to the session log (and the report) · Esc discards",
        theme.style(Role::Muted),
    ));
    let lines = vec![text, hint];
    let h = wrapped_height(&lines, width.saturating_sub(2)) + 2;
    // Low on the screen, so what the note is about stays in view.
    let rect = Rect {
        x: area.x + (area.width - width) / 2,
        y: area.bottom().saturating_sub(h + 1),
        width,
        height: h.min(area.height),
    };
    let inner = dialog(
        frame,
        rect,
        Span::styled(" Operator note ", theme.style(Role::Title)),
        Role::Accent,
        theme,
        None,
    );
    if !inner.is_empty() {
        frame.render_widget(
            Paragraph::new(lines).wrap(ratatui::widgets::Wrap { trim: false }),
            inner,
        );
    }
}
