//! The latest run's output over the whole screen (`o`): on a narrow screen
//! the run has no pane, and a long preflight does not fit one.

use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Wrap};
use ratatui::Frame;

use crate::model::Model;
use crate::ui::panes::run;
use crate::ui::theme::{Role, Theme};
use crate::ui::widgets::dialog;

pub fn render(frame: &mut Frame, area: Rect, model: &Model, offset: u16, theme: &Theme) {
    let (title, role) = match run::shown(model) {
        Some(r) => run::title(model, r),
        None => ("no checkpoint has run yet".to_string(), Role::Muted),
    };
    let mut lines = run::lines(model, theme);
    if lines.is_empty() {
        lines.push(Line::from(Span::styled(
            "Run a checkpoint (F D P U W …) and its steps show here.",
            theme.style(Role::Muted),
        )));
    }
    let inner = dialog(
        frame,
        area,
        Span::styled(format!(" {title} "), theme.style(role)),
        Role::Accent,
        theme,
        Some(Line::from(Span::styled(
            " ↑↓ scroll · o or Esc closes ",
            theme.style(Role::Muted),
        ))),
    );
    if inner.is_empty() {
        return;
    }
    let skip = run::shown(model).map_or(0, |r| run::scroll(r, &lines, inner, offset));
    frame.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .scroll((skip, 0)),
        inner,
    );
}
