//! The view: a pure function from the model to a frame.
//!
//! Nothing here reads a clock, a socket or the environment: the same model
//! draws the same screen live, in a replay, and in a snapshot test.

pub mod ascii;
pub mod bigtext;
pub mod fleet;
pub mod fmt;
mod overlays;
mod panes;
pub mod theme;
mod warroom;
mod widgets;
mod zoom;

pub use fleet::screen;
pub use panes::runbook::key_of;
pub use theme::{load_theme, Role, Theme, ThemeError};
pub use warroom::{next_checkpoint, phase_name};

use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph};
use ratatui::Frame;

use crate::model::{self, lag_summary, Model, View};
use panes::{actions, counts, footer, header, lag, pooler, rollout, run, runbook, slots, timeline};
use widgets::{truncate_spans, PaneFrame};

/// From this width the panes sit side by side.
pub const WIDE_COLS: u16 = 160;
/// Below either of these the full layout can't be read; a summary is drawn instead.
pub const MIN_COLS: u16 = 40;
pub const MIN_ROWS: u16 = 10;

/// Rows the run pane takes at most on a wide screen; `o` shows all of it.
const RUN_MAX: u16 = 18;

/// Rows kept for the row-count pane at minimum: title, header and five tables.
const COUNTS_MIN: u16 = 7;

pub fn view(frame: &mut Frame, model: &Model, v: &View, theme: &Theme) {
    view_in(frame, frame.area(), model, v, theme)
}

/// [`view`] in `area` of the frame (below the databases' lines when
/// there are several).
pub fn view_in(frame: &mut Frame, mut area: Rect, model: &Model, v: &View, theme: &Theme) {
    if area.is_empty() {
        return;
    }
    frame.render_widget(Block::new().style(theme.style(Role::Text)), area);
    // A replay or a follower keeps the bottom row for where it is.
    if let (Some(w), true) = (&v.watch, area.height > MIN_ROWS) {
        let bar = Rect {
            y: area.bottom() - 1,
            height: 1,
            ..area
        };
        timeline::render(frame, bar, w, theme);
        area.height -= 1;
    }
    let rows = model::table_rows(model);
    if area.width < MIN_COLS || area.height < MIN_ROWS {
        tiny(frame, area, model, &rows, theme);
    } else if let Some(pane) = v.zoom {
        zoom::render(frame, area, model, v, pane, &rows, theme);
    } else if v.war_room {
        warroom::render(frame, area, model, v, &rows, theme);
    } else if area.width >= WIDE_COLS {
        wide(frame, area, model, v, &rows, theme);
    } else {
        stacked(frame, area, model, v, &rows, theme);
    }
    // Innermost last: the same order the keymap's layers take keys in.
    if v.output {
        overlays::output::render(frame, area, model, v.output_scroll, theme);
    }
    if v.help {
        overlays::help::render(frame, area, model, v, theme);
    }
    if let Some(id) = model.dialog {
        if let Some(plan) = crate::runbook::plan(model, id) {
            let guards = crate::runbook::guards(model, id);
            overlays::confirm_action::render(frame, area, &plan, &guards, v, theme);
        }
    }
    if let Some(note) = &v.note {
        overlays::note::render(frame, area, note, theme);
    }
    if v.confirm_quit {
        overlays::confirm_quit::render(frame, area, theme);
    }
}

/// This console binds the runbook's keys: not read-only, not a replay or
/// a follower (whose screens must not say "press").
fn acts(model: &Model, v: &View) -> bool {
    v.watch.is_none() && !model.read_only()
}

fn split_rows(area: Rect, heights: &[u16]) -> Vec<Rect> {
    let mut y = area.y;
    heights
        .iter()
        .map(|&h| {
            let h = h.min(area.bottom().saturating_sub(y));
            let r = Rect {
                y,
                height: h,
                ..area
            };
            y += h;
            r
        })
        .collect()
}

/// One column, for 80×24 and anything narrower than [`WIDE_COLS`]: panes are
/// framed by a single rule and share the height by need.
fn stacked(
    frame: &mut Frame,
    area: Rect,
    model: &Model,
    v: &View,
    rows: &[model::TableRow],
    theme: &Theme,
) {
    // The application side gets a rule and one summary line per workload.
    let action_line = actions::line(model, theme, area.width);
    // The runbook's next checkpoint and why it cannot run yet: one line.
    let runbook_line = runbook::line(model, theme, area.width, acts(model, v));
    let runbook_h = u16::from(runbook_line.is_some());
    let kube_h = if rollout::configured(model) {
        1 + model.workloads.len().max(1) as u16 + u16::from(action_line.is_some())
    } else {
        0
    };
    let pooler_h = if pooler::configured(model) {
        pooler::wanted_height(model, PaneFrame::Rule)
    } else {
        0
    };
    let body = (area.height - header::HEIGHT - 1).saturating_sub(kube_h + pooler_h + runbook_h);
    let slot_lines = slots::lines(model, theme, area.width);
    let slots_essential = slot_lines.iter().filter(|(p, _)| *p < 3).count() as u16 + 1;
    let slots_full = slot_lines.len() as u16 + 1;
    // Each failed count may add a line with its reason under the row.
    let failed = rows.iter().filter(|r| r.error.is_some()).count();
    let counts_want = 1 + counts::CHROME + (rows.len().max(1) + failed) as u16;

    let mut lag_h: u16 = 3;
    let counts_min = counts_want.min(COUNTS_MIN);
    let mut slots_h = slots_essential.min(body.saturating_sub(lag_h + counts_min));
    if slots_h < 2 {
        // A title with nothing under it tells nobody anything.
        slots_h = 0;
    }
    let mut counts_h = body.saturating_sub(lag_h + slots_h);
    // Space the tables don't need goes to the sparkline, then to the slot pane's headings.
    let mut spare = counts_h.saturating_sub(counts_want);
    let grow = spare.min(8);
    // A taller pane only helps when there is a chart to stretch.
    let has_chart = lag_summary(model).is_some_and(|s| s.slot.is_some());
    if grow >= 3 && has_chart {
        lag_h += grow;
        spare -= grow;
    }
    // Headings come all together or not at all (see `fit_lines`), so partial growth would be blank rows.
    if slots_h == slots_essential && spare >= slots_full - slots_essential {
        slots_h = slots_full;
    }
    counts_h = body.saturating_sub(lag_h + slots_h);

    let r = split_rows(
        area,
        &[
            header::HEIGHT,
            lag_h,
            slots_h,
            counts_h,
            kube_h,
            pooler_h,
            runbook_h,
            1,
        ],
    );
    header::render(frame, r[0], model, v, theme);
    lag::render(frame, r[1], model, theme, PaneFrame::Rule);
    if slots_h > 0 {
        slots::render(frame, r[2], model, slot_lines, theme, PaneFrame::Rule);
    }
    counts::render(frame, r[3], model, rows, v.scroll, theme, PaneFrame::Rule);
    if kube_h > 0 {
        let mut k = r[4];
        if let Some(line) = action_line {
            k.height -= 1;
            let bottom = Rect {
                y: k.bottom(),
                height: 1,
                ..k
            };
            frame.render_widget(Paragraph::new(line), bottom);
        }
        rollout::render(frame, k, model, theme, PaneFrame::Rule);
    }
    if pooler_h > 0 {
        pooler::render(frame, r[5], model, theme, PaneFrame::Rule);
    }
    if let Some(line) = runbook_line {
        frame.render_widget(Paragraph::new(line), r[6]);
    }
    footer::render(frame, r[7], model, v, theme);
}

/// Two columns for the war-room screen: lag over slots on the left, the
/// row counts (the longest list) on the right.
fn wide(
    frame: &mut Frame,
    area: Rect,
    model: &Model,
    v: &View,
    rows: &[model::TableRow],
    theme: &Theme,
) {
    let r = split_rows(area, &[header::HEIGHT, area.height - header::HEIGHT - 1, 1]);
    header::render(frame, r[0], model, v, theme);
    footer::render(frame, r[2], model, v, theme);
    let body = r[1];
    let left_w = (area.width * 9 / 20).clamp(72, 100);
    let left = Rect {
        width: left_w,
        ..body
    };
    let right = Rect {
        x: body.x + left_w,
        width: body.width - left_w,
        ..body
    };
    // While a run is shown the lag's chart gives up some height to it.
    let run_want = run::wanted_height(model, theme, left_w);
    let lag_h = if run_want > 2 {
        (body.height / 4).clamp(8, 12)
    } else {
        (body.height / 3).clamp(8, 16)
    }
    .min(body.height);
    // The runbook under the lag, as tall as its checkpoints; slots take the rest.
    let runbook_h = runbook::wanted_height(model).min(body.height.saturating_sub(lag_h + 6));
    // The latest run under the runbook; the slots keep their headings.
    let run_h = run_want
        .min(body.height.saturating_sub(lag_h + runbook_h + 6))
        .min(RUN_MAX);
    let l = split_rows(
        left,
        &[
            lag_h,
            runbook_h,
            run_h,
            body.height.saturating_sub(lag_h + runbook_h + run_h),
        ],
    );
    lag::render(frame, l[0], model, theme, PaneFrame::Boxed);
    if runbook_h > 2 {
        runbook::render(frame, l[1], model, theme, acts(model, v));
    }
    if run_h > 2 {
        run::render(frame, l[2], model, theme, PaneFrame::Boxed);
    }
    let slot_lines = slots::lines(model, theme, left_w.saturating_sub(2));
    slots::render(frame, l[3], model, slot_lines, theme, PaneFrame::Boxed);
    // The pooler at the foot of the right column, as tall as its instances.
    let right = if pooler::configured(model) {
        let h = pooler::wanted_height(model, PaneFrame::Boxed).min(right.height / 3);
        let p = split_rows(right, &[right.height - h, h]);
        pooler::render(frame, p[1], model, theme, PaneFrame::Boxed);
        p[0]
    } else {
        right
    };
    if rollout::configured(model) {
        // Row counts on top, sized to their tables; the rollout takes the rest.
        let failed = rows
            .iter()
            .filter(|r| r.error.is_some() || r.verify_detail.is_some())
            .count();
        let counts_want = 2 + counts::CHROME + (rows.len().max(1) + failed) as u16;
        let counts_h = counts_want.clamp(
            8.min(right.height),
            right.height.saturating_sub(8).max(8.min(right.height)),
        );
        // The run pane says all of it when it is drawn.
        let action_line = actions::line(model, theme, right.width).filter(|_| run_h <= 2);
        let rest = right.height.saturating_sub(counts_h);
        let line_h = u16::from(action_line.is_some()).min(rest);
        let c = split_rows(right, &[counts_h, rest - line_h, line_h]);
        counts::render(frame, c[0], model, rows, v.scroll, theme, PaneFrame::Boxed);
        rollout::render(frame, c[1], model, theme, PaneFrame::Boxed);
        if let Some(line) = action_line.filter(|_| line_h > 0) {
            frame.render_widget(Paragraph::new(line), c[2]);
        }
    } else {
        counts::render(frame, right, model, rows, v.scroll, theme, PaneFrame::Boxed);
    }
}

/// Too small for panes: the few facts that matter most, one per line, so a
/// shrunken terminal still shows whether things are on fire.
fn tiny(frame: &mut Frame, area: Rect, model: &Model, rows: &[model::TableRow], theme: &Theme) {
    let w = area.width as usize;
    let s = |t: String, role: Role| Span::styled(t, theme.style(role));
    let mut lines: Vec<Vec<Span>> = Vec::with_capacity(5);

    let mode = model
        .info
        .as_ref()
        .map_or(String::new(), |i| i.mode.to_uppercase());
    let clock = model.now.map_or_else(String::new, fmt::clock);
    // Mode and clock first: at 20 columns the product name is what can go.
    lines.push(vec![
        s(format!("{mode} {clock} "), Role::Text),
        s("cutover".into(), Role::Title),
    ]);

    if let Some(info) = &model.info {
        let short = |side: header::Reach| match side.role {
            Role::Ok => ("● up", Role::Ok),
            Role::Error => ("✖ stale", Role::Error),
            _ => ("… wait", Role::Muted),
        };
        let src = short(header::reach(
            &model.source,
            model.now,
            info.stale_after_seconds,
        ));
        let tgt = short(header::reach(
            &model.target,
            model.now,
            info.stale_after_seconds,
        ));
        lines.push(vec![
            s("src ".into(), Role::Muted),
            s(src.0.into(), src.1),
            s(" tgt ".into(), Role::Muted),
            s(tgt.0.into(), tgt.1),
        ]);
        match lag_summary(model) {
            Some(sum) if sum.slot.is_some() => {
                let mut l = vec![s("lag ".into(), Role::Muted)];
                if let (Some(b), Some((word, role))) = (sum.lag_bytes, lag::state(&sum, info)) {
                    l.push(s(format!("{} {word}", fmt::bytes(b)), role));
                } else {
                    l.push(s("? unknown".into(), Role::Warn));
                }
                lines.push(l);
            }
            Some(_) => lines.push(vec![s(format!("✖ no slot \"{}\"", info.slot), Role::Warn)]),
            None => {}
        }
    }

    let bad = rows.iter().filter(|r| r.state.differs()).count();
    if bad > 0 {
        lines.push(vec![s(
            format!("✖ MISMATCH: {}", fmt::tables(bad)),
            Role::Error,
        )]);
    } else if model.count_running() {
        lines.push(vec![s("… exact count running".into(), Role::Accent)]);
    } else if !rows.is_empty() {
        lines.push(vec![s(format!("{} tables", rows.len()), Role::Muted)]);
    }
    lines.push(vec![s("enlarge to 80×24".into(), Role::Muted)]);

    let lines: Vec<Line> = lines
        .into_iter()
        .map(|l| Line::from(truncate_spans(l, w)))
        .collect();
    frame.render_widget(Paragraph::new(lines), area);
}

/// The screen's text at `width`×`height`, row by row: what a test compares
/// and what [`digest`] hashes.
pub fn screen_text(model: &Model, v: &View, width: u16, height: u16, theme: &Theme) -> String {
    let backend = ratatui::backend::TestBackend::new(width, height);
    let Ok(mut term) = ratatui::Terminal::new(backend) else {
        return String::new();
    };
    if term.draw(|f| view(f, model, v, theme)).is_err() {
        return String::new();
    }
    let buf = term.backend().buffer();
    let mut text = String::with_capacity((width as usize + 1) * height as usize);
    for y in 0..height {
        for x in 0..width {
            text.push_str(buf[(x, y)].symbol());
        }
        text.push('\n');
    }
    text
}

/// SHA-256 of the panes' text (default view, no overlay) at `width`×`height`:
/// what the live console logs now and then, and a replay must reproduce.
pub fn digest(model: &Model, width: u16, height: u16) -> String {
    use sha2::Digest;
    let text = screen_text(model, &View::default(), width, height, &Theme::mono());
    sha2::Sha256::digest(text.as_bytes())
        .iter()
        .take(16)
        .map(|b| format!("{b:02x}"))
        .collect()
}
