//! Row counts per table: estimates until an exact count says otherwise, the
//! difference, and whether the subscriber has the table synced.

use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Wrap};
use ratatui::Frame;

use crate::model::{CountRun, Model, RowState, TableRow};
use crate::ui::fmt::{self, Align};
use crate::ui::panes::slots::{sync_role, sync_word};
use crate::ui::theme::{Role, Theme};
use crate::ui::widgets::{layout_cols, one_line, pane_block, row_line, Col, PaneFrame};

/// Rows the table needs besides its data: the column header.
pub const CHROME: u16 = 1;

pub fn state_symbol(state: RowState) -> &'static str {
    match state {
        RowState::Estimated => "~",
        // Still arriving: replication had rows to deliver when counted.
        RowState::Counting | RowState::Verifying | RowState::InFlight => "…",
        RowState::ExactMatch | RowState::ChecksumVerified => "✔",
        RowState::ExactMismatch | RowState::MissingOnTarget | RowState::ChecksumMismatch => "✖",
        RowState::Failed | RowState::ChecksumUnstable => "!",
    }
}

pub fn state_role(state: RowState) -> Role {
    match state {
        RowState::Estimated => Role::Muted,
        RowState::Counting | RowState::Verifying => Role::Accent,
        RowState::InFlight => Role::Warn,
        RowState::ExactMatch | RowState::ChecksumVerified => Role::Ok,
        RowState::ExactMismatch | RowState::MissingOnTarget | RowState::ChecksumMismatch => {
            Role::Error
        }
        RowState::Failed | RowState::ChecksumUnstable => Role::Warn,
    }
}

pub fn state_text(state: RowState) -> String {
    format!("{} {}", state_symbol(state), state.label())
}

/// A background run's title words: running (with how long), cancelled, or done.
/// Count and verification runs read the same way.
fn run_words(
    model: &Model,
    what: &str,
    started: chrono::DateTime<chrono::Utc>,
    finished: Option<chrono::DateTime<chrono::Utc>>,
    cancelled: bool,
    progress: &str,
) -> (String, Role) {
    match finished {
        None => {
            let elapsed = model.now.map_or(0.0, |n| fmt::seconds_between(started, n));
            (
                format!("{what}: {progress}, {}", fmt::secs(elapsed)),
                Role::Accent,
            )
        }
        Some(at) if cancelled => (
            format!("{what} cancelled {} ({progress})", fmt::clock(at)),
            Role::Warn,
        ),
        Some(at) => (
            format!(
                "{what} done {} ({})",
                fmt::clock(at),
                fmt::millis(fmt::seconds_between(started, at) * 1000.0)
            ),
            Role::Ok,
        ),
    }
}

/// The exact-count run in a few words, e.g. `exact count: 4/6 source, 3/6 target, 2.1 s`;
/// `terse` is the same in fewer columns, for narrow terminals.
pub fn run_status(run: Option<&CountRun>, model: &Model, terse: bool) -> (String, Role) {
    let Some(r) = run else {
        return ("estimates only".into(), Role::Muted);
    };
    let (src, tgt, what) = if terse {
        ("src", "tgt", "count")
    } else {
        ("source", "target", "exact count")
    };
    let progress = format!(
        "{}/{} {src}, {}/{} {tgt}",
        r.done_source, r.total, r.done_target, r.total
    );
    run_words(
        model,
        what,
        r.started_at,
        r.finished_at,
        r.cancelled,
        &progress,
    )
}

/// The count and verification statuses for the title, fitted to `width`:
/// terse when the full words do not fit, and if even that is too long a
/// finished count's outcome gives way to the verification's, the later word.
fn title_statuses(model: &Model, width: usize) -> Vec<(String, Role)> {
    let fits = |parts: &[(String, Role)]| {
        // " Row counts " plus "─ text " per part.
        12 + parts.iter().map(|(t, _)| fmt::width(t) + 3).sum::<usize>() <= width
    };
    let parts = |terse: bool| {
        let mut v = vec![run_status(model.count_run.as_ref(), model, terse)];
        v.extend(verify_status(model, terse));
        v
    };
    let full = parts(width < 80);
    if fits(&full) {
        return full;
    }
    let mut terse = parts(true);
    let count_running = model.count_run.as_ref().is_some_and(|r| r.running());
    if !fits(&terse) && terse.len() == 2 && !count_running {
        terse.remove(0);
    }
    terse
}

/// The checksum run in a few words, e.g. `verify 2/6 tables, 4.2 s`.
pub fn verify_status(model: &Model, terse: bool) -> Option<(String, Role)> {
    let r = model.verify_run.as_ref()?;
    let (what, progress) = if r.continuous {
        // Continuous runs never finish a table; say how far the passes got.
        let live = model.verify.values().filter_map(|c| match c {
            crate::model::VerifyCell::Live(p) => Some(p),
            _ => None,
        });
        let (mut pass, mut verified) = (0, 0);
        for p in live {
            pass = pass.max(p.pass);
            verified += usize::from(p.ranges_total > 0 && p.ranges_verified == p.ranges_total);
        }
        (
            if terse {
                "live verify"
            } else {
                "continuous verify"
            },
            format!("pass {pass}, {verified}/{} tables verified", r.total),
        )
    } else {
        (
            if terse { "verify" } else { "checksum verify" },
            format!("{}/{} tables", r.done, r.total),
        )
    };
    Some(match (r.finished_at, &r.error) {
        (None, _) => match crate::model::verify_throttle(model) {
            Some(why) => (format!("⏸ {what} paused: {why}"), Role::Warn),
            None => run_words(model, what, r.started_at, None, false, &progress),
        },
        (Some(at), Some(_)) => (format!("{what} failed {}", fmt::clock(at)), Role::Error),
        (finished, None) => run_words(model, what, r.started_at, finished, r.cancelled, &progress),
    })
}

fn count_cell(exact: Option<i64>, estimate: Option<i64>) -> (String, Role) {
    match (exact, estimate) {
        (Some(n), _) => (fmt::int(n), Role::Text),
        (None, Some(n)) => (format!("~{}", fmt::int(n)), Role::Muted),
        (None, None) => ("—".into(), Role::Muted),
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum C {
    Table,
    Source,
    Target,
    Diff,
    State,
    Sync,
    Pk,
}

impl C {
    fn header(self) -> &'static str {
        match self {
            C::Table => "table",
            C::Source => "source",
            C::Target => "target",
            C::Diff => "diff",
            C::State => "state",
            C::Sync => "sync",
            C::Pk => "PK",
        }
    }

    fn align(self) -> Align {
        match self {
            C::Source | C::Target | C::Diff => Align::Right,
            _ => Align::Left,
        }
    }
}

fn cell(c: C, row: &TableRow, wide: bool, short_names: bool) -> (String, Role) {
    match c {
        C::Table => {
            let name = if short_names && row.table.schema == "public" {
                row.table.name.clone()
            } else {
                row.table.to_string()
            };
            (name, Role::Text)
        }
        C::Source => count_cell(row.source_exact, row.source_estimate),
        C::Target => match row.state {
            RowState::MissingOnTarget => ("—".into(), Role::Error),
            _ => count_cell(row.target_exact, row.target_estimate),
        },
        C::Diff if row.state == RowState::MissingOnTarget => ("—".into(), Role::Error),
        C::Diff => match (row.diff, row.diff_is_exact) {
            (None, _) => ("—".into(), Role::Muted),
            // A newer checksum result speaks for the table: the count's
            // difference is history, shown but not alarming.
            (Some(d), true) if row.count_superseded => (fmt::signed(d), Role::Muted),
            (Some(0), true) => ("0".into(), Role::Ok),
            (Some(d), true) if row.state == RowState::InFlight => (fmt::signed(d), Role::Warn),
            (Some(d), true) => (fmt::signed(d), Role::Error),
            (Some(d), false) => (format!("~{}", fmt::signed(d)), Role::Muted),
        },
        C::State => match &row.state_note {
            Some(note) => (
                format!("{} {note}", state_symbol(row.state)),
                state_role(row.state),
            ),
            None => (state_text(row.state), state_role(row.state)),
        },
        C::Sync => match &row.sync_state {
            None => ("—".into(), Role::Muted),
            Some(code) => {
                let mut t = format!("{code} {}", sync_word(code));
                if wide {
                    if let Some(n) = row.copy_tuples {
                        t.push_str(&format!(" {} rows", fmt::int(n)));
                    }
                }
                (t, sync_role(code))
            }
        },
        C::Pk => match row.has_primary_key {
            Some(true) => ("yes".into(), Role::Muted),
            // Without a key, UPDATE/DELETE on the source can't replicate (replica identity).
            Some(false) => ("! no PK".into(), Role::Warn),
            None => ("?".into(), Role::Muted),
        },
    }
}

pub fn render(
    frame: &mut Frame,
    area: Rect,
    model: &Model,
    rows: &[TableRow],
    scroll: usize,
    theme: &Theme,
    pf: PaneFrame,
) {
    let (inner_w, inner_h) = match pf {
        PaneFrame::Boxed => (area.width.saturating_sub(2), area.height.saturating_sub(2)),
        PaneFrame::Rule => (area.width, area.height.saturating_sub(1)),
    };
    let visible = inner_h.saturating_sub(CHROME) as usize;
    let start = scroll.min(rows.len().saturating_sub(1));
    let table = table_lines(rows, start, visible, inner_w as usize, theme);

    let mut title = vec![Span::styled(" Row counts ", theme.style(Role::Title))];
    for (text, role) in title_statuses(model, inner_w as usize) {
        title.push(Span::styled("─ ", theme.style(Role::Border)));
        title.push(Span::styled(format!("{text} "), theme.style(role)));
    }
    if let Some((_, end)) = table
        .as_ref()
        .map(|t| t.1)
        .filter(|(s, e)| *s > 0 || *e < rows.len())
    {
        title.push(Span::styled("─ ", theme.style(Role::Border)));
        let range = if inner_w < 80 {
            format!("{}–{}/{} ", start + 1, end, rows.len())
        } else {
            format!("rows {}–{} of {} ", start + 1, end, rows.len())
        };
        title.push(Span::styled(range, theme.style(Role::Muted)));
    }
    let hint = if model.action_running() {
        " x: cancel "
    } else if inner_w < 120 {
        " c count · v verify "
    } else {
        " c: exact count · v: checksum verify "
    };
    let block = pane_block(
        theme,
        pf,
        area.width,
        title,
        vec![Span::styled(hint, theme.style(Role::Accent))],
    );
    let inner = block.inner(area);
    frame.render_widget(block, area);
    if inner.is_empty() {
        return;
    }
    match table {
        Some((lines, _)) => frame.render_widget(Paragraph::new(lines), inner),
        None => {
            let text = if model.source.last.is_none() {
                "No tables yet: waiting for the first sample from the source…"
            } else {
                "No tables on the source."
            };
            frame.render_widget(
                Paragraph::new(Span::styled(text, theme.style(Role::Muted)))
                    .wrap(Wrap { trim: true }),
                inner,
            );
        }
    }
}

/// The verification line worth a row of its own: which rows differ, or progress.
fn detail_of(r: &TableRow) -> Option<&str> {
    match r.state {
        RowState::ChecksumMismatch | RowState::ChecksumUnstable | RowState::Verifying => {
            r.verify_detail.as_deref()
        }
        _ => None,
    }
}

/// The header and the rows from `start` that fit in `visible` lines, and the
/// range of rows shown; `None` when there are no tables.
#[allow(clippy::type_complexity)]
fn table_lines(
    rows: &[TableRow],
    start: usize,
    visible: usize,
    w: usize,
    theme: &Theme,
) -> Option<(Vec<Line<'static>>, (usize, usize))> {
    if rows.is_empty() {
        return None;
    }
    let wide = w >= 100;
    let mut kinds = vec![
        C::Table,
        C::Source,
        C::Target,
        C::Diff,
        C::State,
        C::Sync,
        C::Pk,
    ];
    let want = |c: C, short: bool| -> usize {
        // Widths come from every row, not just the visible ones, so columns don't jump while scrolling.
        rows.iter()
            .map(|r| fmt::width(&cell(c, r, wide, short).0))
            .chain([fmt::width(c.header())])
            .max()
            .unwrap_or(0)
    };
    let build = |kinds: &[C], short: bool| -> Vec<Col> {
        kinds
            .iter()
            .map(|&c| Col {
                align: c.align(),
                want: want(c, short),
                flex_min: (c == C::Table).then_some(10),
            })
            .collect()
    };
    let fits = |cols: &[Col]| {
        cols.iter().map(|c| c.want).sum::<usize>() + cols.len().saturating_sub(1) <= w
    };
    let mut short = false;
    let mut cols = build(&kinds, short);
    // Narrow screens give up, in order: the `public.` prefix, PK, then sync.
    if !fits(&cols) {
        short = true;
        cols = build(&kinds, short);
    }
    for drop in [C::Pk, C::Sync] {
        let without_flex: usize = cols.iter().skip(1).map(|c| c.want + 1).sum();
        if w.saturating_sub(without_flex) >= 10 {
            break;
        }
        kinds.retain(|k| *k != drop);
        cols = build(&kinds, short);
    }
    let (widths, gap) = layout_cols(&cols, w);

    // A failed count's reason goes on a line of its own under the row, when
    // there is room for all of them: it never fits in a column.
    let errors = rows
        .iter()
        .filter(|r| r.error.is_some() || detail_of(r).is_some())
        .count();
    let details = wide || rows.len() + errors <= visible;
    let indent = widths[0].min(4) + gap;

    let header_style = theme.style(Role::Muted);
    let mut lines = Vec::with_capacity(visible + 1);
    lines.push(row_line(
        kinds
            .iter()
            .map(|k| (k.header().to_string(), header_style))
            .collect(),
        &cols,
        &widths,
        gap,
        "",
    ));
    let mut end = start;
    for r in &rows[start..] {
        if lines.len() > visible {
            break;
        }
        let cells: Vec<(String, Style)> = kinds
            .iter()
            .map(|&k| {
                let (t, role) = cell(k, r, wide, short);
                (t, theme.style(role))
            })
            .collect();
        lines.push(row_line(cells, &cols, &widths, gap, ""));
        end += 1;
        let note = match (&r.error, detail_of(r)) {
            (Some(err), _) => Some((err.as_str(), Role::Warn)),
            (None, Some(d)) => Some((d, state_role(r.state))),
            (None, None) => None,
        };
        if let (true, Some((text, role))) = (details, note) {
            if lines.len() <= visible {
                let text = format!("{}└ {}", " ".repeat(indent), one_line(text));
                lines.push(Line::from(Span::styled(
                    fmt::truncate(&text, w).into_owned(),
                    theme.style(role),
                )));
            }
        }
    }
    Some((lines, (start, end)))
}
