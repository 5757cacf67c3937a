//! Keys, and what every symbol on the screen means.

use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use ratatui::Frame;

use crate::model::keymap::{self, Command, Layer};
use crate::model::View;
use crate::model::{Model, RowState};
use crate::ui::fmt::{self, Align};
use crate::ui::panes::counts::{state_role, state_text};
use crate::ui::panes::footer::key_label;
use crate::ui::theme::{Role, Theme};
use crate::ui::widgets::{centered, dialog, truncate_line};

/// Width of one key column of the help: keys, then what they do.
const KEY_W: usize = 6;
const WHAT_W: usize = 17;

/// The main layer's bindings from the keymap, three to a line; not `?`,
/// which the help's own title says (and the footer always shows), so the
/// whole help still fits in 80×24.
fn key_lines(model: &Model, v: &View, theme: &Theme) -> Vec<Line<'static>> {
    let kube = crate::model::kube_actions_bound(model);
    let cells: Vec<Vec<Span<'static>>> = keymap::bindings_for(model, v, Layer::Main)
        .into_iter()
        .filter(|b| b.command != Command::ToggleHelp)
        .filter(|b| kube || !matches!(b.command, Command::Open(c) if c.is_kubernetes()))
        .map(|b| {
            let keys: Vec<&str> = b.keys.iter().map(|k| key_label(k)).collect();
            vec![
                Span::styled(
                    format!(" {} ", fmt::fit(&keys.join(" "), KEY_W, Align::Left)),
                    theme.style(Role::Accent),
                ),
                Span::styled(
                    fmt::fit(b.help, WHAT_W, Align::Left),
                    theme.style(Role::Text),
                ),
            ]
        })
        .collect();
    cells
        .chunks(3)
        .map(|pair| Line::from(pair.concat()))
        .collect()
}

fn lines(model: &Model, v: &View, theme: &Theme) -> Vec<Line<'static>> {
    let head = |t: &str| Line::from(Span::styled(t.to_string(), theme.style(Role::Title)));
    let sym = |s: String, role: Role, what: &str| {
        Line::from(vec![
            Span::styled(
                format!("  {}", fmt::fit(&s, 21, Align::Left)),
                theme.style(role),
            ),
            Span::styled(what.to_string(), theme.style(Role::Muted)),
        ])
    };
    let states = [
        (RowState::Estimated, "from statistics, not counted"),
        // "… verifying" reads the same way; one line keeps the help within 80×24.
        (
            RowState::Counting,
            "count(*) running (… verifying: checksum)",
        ),
        (RowState::ExactMatch, "exact counts equal on both sides"),
        (
            RowState::ExactMismatch,
            "counts differ at lag 0 (… in flight: while lagging)",
        ),
        (RowState::MissingOnTarget, "table absent on the target"),
        (RowState::Failed, "the count or checksum failed"),
        (
            RowState::ChecksumVerified,
            "every row hashes equal on both sides",
        ),
        (
            RowState::ChecksumMismatch,
            "rows differ: which ones, under the row",
        ),
        (
            RowState::ChecksumUnstable,
            "moved while checked: verify again at lag 0",
        ),
    ];
    let mut out = vec![head("Keys")];
    out.extend(key_lines(model, v, theme));
    out.push(head("Row counts"));
    out.extend(
        states
            .iter()
            .map(|(s, what)| sym(state_text(*s), state_role(*s), what)),
    );
    out.push(sym(
        "! no PK".into(),
        Role::Warn,
        "no primary key: updates can't replicate",
    ));
    out.push(head("Replication"));
    // One line for the three lag words, so the whole help fits in 80×24.
    out.push(Line::from(vec![
        Span::styled("  ✔ caught up", theme.style(Role::Ok)),
        Span::raw("  "),
        Span::styled("▲ behind", theme.style(Role::Warn)),
        Span::raw("  "),
        Span::styled("✖ over threshold", theme.style(Role::Error)),
        Span::styled("   lag 0 / under / over", theme.style(Role::Muted)),
    ]));
    out.push(Line::from(vec![
        Span::styled("  ● up  ✖ stale", theme.style(Role::Muted)),
        Span::raw("  "),
        Span::styled("▸ slot", theme.style(Role::Accent)),
        Span::styled(
            "   reachability · the subscription's slot",
            theme.style(Role::Muted),
        ),
    ]));
    out.push(sym(
        "i d f s r".into(),
        Role::Accent,
        "sync: init copying copied synced ready",
    ));
    out
}

pub fn render(frame: &mut Frame, area: Rect, model: &Model, v: &View, theme: &Theme) {
    let lines = lines(model, v, theme);
    let w = lines.iter().map(Line::width).max().unwrap_or(0) as u16 + 4;
    let inner = dialog(
        frame,
        centered(area, w, lines.len() as u16 + 2),
        Span::styled(" Help ", theme.style(Role::Title)),
        Role::Accent,
        theme,
        Some(Line::from(Span::styled(
            " ? or Esc closes ",
            theme.style(Role::Muted),
        ))),
    );
    if inner.is_empty() {
        return;
    }
    let inner_w = inner.width.saturating_sub(1) as usize;
    let lines: Vec<Line> = lines
        .into_iter()
        .map(|l| truncate_line(l, inner_w))
        .collect();
    let padded = Rect {
        x: inner.x + 1,
        width: inner.width.saturating_sub(1),
        ..inner
    };
    frame.render_widget(Paragraph::new(lines), padded);
}
