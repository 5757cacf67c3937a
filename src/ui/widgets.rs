//! Small drawing helpers shared by the panes: pane frames, fixed-width
//! columns, priority-based line fitting.

use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::symbols::border;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders};

use super::fmt::{self, Align};
use super::theme::{Role, Theme};

/// How a pane is framed. Boxed panes are for wide screens; at 80×24 a single
/// top rule carries the title so every row goes to content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PaneFrame {
    Boxed,
    Rule,
}

/// A pane's frame with its title on the left and an optional note on the
/// right; the note is dropped rather than allowed to overwrite the title.
pub fn pane_block<'a>(
    theme: &Theme,
    frame: PaneFrame,
    width: u16,
    title: Vec<Span<'a>>,
    right: Vec<Span<'a>>,
) -> Block<'a> {
    let border_style = theme.style(Role::Border);
    let borders = match frame {
        PaneFrame::Boxed => Borders::ALL,
        PaneFrame::Rule => Borders::TOP,
    };
    let block = Block::new()
        .borders(borders)
        .border_set(border::ROUNDED)
        .border_style(border_style);
    // A corner (boxed) or a lead-in rule (rule) on each side of the titles.
    let room = (width as usize).saturating_sub(2);
    let mut left: Vec<Span<'a>> = Vec::with_capacity(title.len() + 1);
    if frame == PaneFrame::Rule {
        // Without a corner the title would touch the screen edge.
        left.push(Span::styled("─", border_style));
    }
    left.extend(title);
    let left = truncate_spans(left, room);
    let left_w: usize = left.iter().map(Span::width).sum();
    let right_w: usize = right.iter().map(Span::width).sum();
    let mut block = block.title(Line::from(left));
    if !right.is_empty() && left_w + right_w + 2 <= room {
        let mut r = right;
        if frame == PaneFrame::Rule {
            r.push(Span::styled("─", border_style));
        }
        block = block.title(Line::from(r).right_aligned());
    }
    block
}

/// The spans cut to `max` columns, the cut marked with `…`.
pub fn truncate_spans(spans: Vec<Span<'_>>, max: usize) -> Vec<Span<'_>> {
    let total: usize = spans.iter().map(Span::width).sum();
    if total <= max {
        return spans;
    }
    let mut out = Vec::with_capacity(spans.len());
    let mut used = 0;
    for s in spans {
        let w = s.width();
        if used + w < max {
            used += w;
            out.push(s);
            continue;
        }
        let room = max - used;
        if room > 0 {
            let t = format!("{}…", fmt::take_width(&s.content, room - 1));
            out.push(Span::styled(t, s.style));
        }
        break;
    }
    out
}

pub fn truncate_line(line: Line<'_>, max: usize) -> Line<'_> {
    let style = line.style;
    let alignment = line.alignment;
    let mut l = Line::from(truncate_spans(line.spans, max)).style(style);
    l.alignment = alignment;
    l
}

/// Keeps the lines that fit in `height`. Priority 3 lines (headings, spacing)
/// go all together so a pane never shows half of its headings; lower
/// priorities are dropped from the bottom up, least important first.
pub fn fit_lines(mut lines: Vec<(u8, Line<'static>)>, height: usize) -> Vec<Line<'static>> {
    if lines.len() > height {
        lines.retain(|(p, _)| *p < 3);
    }
    for prio in (1..3u8).rev() {
        while lines.len() > height {
            match lines.iter().rposition(|(p, _)| *p == prio) {
                Some(i) => {
                    lines.remove(i);
                }
                None => break,
            }
        }
    }
    lines.truncate(height);
    lines.into_iter().map(|(_, l)| l).collect()
}

/// A column of a hand-laid table.
#[derive(Debug, Clone, Copy)]
pub struct Col {
    pub align: Align,
    /// Widest content (header included).
    pub want: usize,
    /// The one column that gives up width when the row is too wide.
    pub flex_min: Option<usize>,
}

/// Column widths and the gap between columns for `total` columns of room.
/// Two spaces between columns read much better; one is the fallback.
pub fn layout_cols(cols: &[Col], total: usize) -> (Vec<usize>, usize) {
    let n = cols.len();
    let natural: usize = cols.iter().map(|c| c.want).sum();
    for gap in [2usize, 1] {
        let need = natural + gap * n.saturating_sub(1);
        if need <= total {
            let mut widths: Vec<usize> = cols.iter().map(|c| c.want).collect();
            // Slack goes to the flex column only up to what it wants; the rest stays
            // blank at the right instead of spreading columns apart.
            if let Some(i) = cols.iter().position(|c| c.flex_min.is_some()) {
                widths[i] = cols[i].want;
            }
            return (widths, gap);
        }
    }
    let gap = 1;
    let fixed: usize = cols
        .iter()
        .filter(|c| c.flex_min.is_none())
        .map(|c| c.want)
        .sum::<usize>()
        + gap * n.saturating_sub(1);
    let widths = cols
        .iter()
        .map(|c| match c.flex_min {
            Some(min) => total.saturating_sub(fixed).max(min.min(c.want)),
            None => c.want,
        })
        .collect();
    (widths, gap)
}

/// One table row: each cell fitted to its column.
pub fn row_line(
    cells: Vec<(String, Style)>,
    cols: &[Col],
    widths: &[usize],
    gap: usize,
    lead: &str,
) -> Line<'static> {
    let mut spans = Vec::with_capacity(cells.len() * 2 + 1);
    if !lead.is_empty() {
        spans.push(Span::raw(lead.to_string()));
    }
    for (i, ((text, style), w)) in cells.into_iter().zip(widths).enumerate() {
        if i > 0 {
            spans.push(Span::raw(" ".repeat(gap)));
        }
        spans.push(Span::styled(fmt::fit(&text, *w, cols[i].align), style));
    }
    Line::from(spans)
}

/// A rectangle of at most `w`×`h` centred in `area`, never larger than it.
pub fn centered(area: Rect, w: u16, h: u16) -> Rect {
    let w = w.min(area.width);
    let h = h.min(area.height);
    Rect {
        x: area.x + (area.width - w) / 2,
        y: area.y + (area.height - h) / 2,
        width: w,
        height: h,
    }
}

/// Replaces line breaks and control characters so a server's multi-line
/// error stays on one screen row.
pub fn one_line(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut last_space = false;
    for c in s.chars() {
        let c = if c.is_control() { ' ' } else { c };
        if c == ' ' && last_space {
            continue;
        }
        last_space = c == ' ';
        out.push(c);
    }
    out.trim().to_string()
}

/// A dialog box over the screen: cleared, rounded, its border in `role`'s
/// colour. Returns the area inside the border (empty if there is no room).
pub fn dialog(
    frame: &mut ratatui::Frame,
    rect: Rect,
    title: Span<'_>,
    role: Role,
    theme: &Theme,
    right: Option<Line<'_>>,
) -> Rect {
    if rect.is_empty() {
        return rect;
    }
    frame.render_widget(ratatui::widgets::Clear, rect);
    // Cleared to the theme's text style, not the terminal's: a theme that
    // paints the screen (high-contrast) paints its dialogs too.
    let mut block = Block::bordered()
        .style(theme.style(Role::Text))
        .border_set(border::ROUNDED)
        .border_style(theme.style(role))
        .title(title);
    if let Some(r) = right {
        block = block.title(r.right_aligned());
    }
    let inner = block.inner(rect);
    frame.render_widget(block, rect);
    inner
}

/// Rows `lines` take when wrapped at `width` (a word wrap may take a row
/// more than this, never fewer).
pub fn wrapped_height(lines: &[Line], width: u16) -> u16 {
    let w = usize::from(width.max(1));
    lines
        .iter()
        .map(|l| l.width().max(1).div_ceil(w) as u16)
        .sum()
}
