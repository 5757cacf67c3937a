//! One pane alone on the screen (`z`): the header and the footer stay, the
//! pane gets every other row, boxed as on a wide screen.

use ratatui::layout::Rect;
use ratatui::Frame;

use crate::model::{Model, Pane, TableRow, View};

use super::panes::{counts, footer, header, lag, rollout, run, runbook, slots};
use super::theme::Theme;
use super::widgets::PaneFrame;

pub fn render(
    frame: &mut Frame,
    area: Rect,
    model: &Model,
    v: &View,
    pane: Pane,
    rows: &[TableRow],
    theme: &Theme,
) {
    let r = super::split_rows(
        area,
        &[
            header::HEIGHT,
            area.height.saturating_sub(header::HEIGHT + 1),
            1,
        ],
    );
    header::render(frame, r[0], model, v, theme);
    footer::render(frame, r[2], model, v, theme);
    let body = r[1];
    let pf = PaneFrame::Boxed;
    match pane {
        Pane::Lag => lag::render(frame, body, model, theme, pf),
        Pane::Slots => {
            let lines = slots::lines(model, theme, body.width.saturating_sub(2));
            slots::render(frame, body, model, lines, theme, pf);
        }
        Pane::Counts => counts::render(frame, body, model, rows, v.scroll, theme, pf),
        Pane::Rollout => rollout::render(frame, body, model, theme, pf),
        Pane::Run => run::render(frame, body, model, theme, pf),
        Pane::Runbook => runbook::render(frame, body, model, theme, super::acts(model, v)),
    }
}
