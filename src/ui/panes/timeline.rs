//! The bottom row of a replay or a follower. A replay shows its state and
//! speed, the recording as a bar with every checkpoint run marked by its
//! key (green passed, red failed) and where the replay is, and the time
//! into the recording. A follower shows that it follows and how far behind
//! the driver's last event it is.

use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use ratatui::Frame;

use super::runbook::key_of;
use crate::model::{Watch, WatchKind};
use crate::ui::fmt;
use crate::ui::theme::{Role, Theme};
use crate::ui::widgets::truncate_spans;

fn hms(secs: i64) -> String {
    let secs = secs.max(0);
    if secs >= 3600 {
        format!("{}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60)
    } else {
        format!("{}:{:02}", secs / 60, secs % 60)
    }
}

fn speed(x: f64) -> String {
    if x < 1.0 {
        format!("{x}×")
    } else {
        format!("{}×", x as u32)
    }
}

pub fn render(frame: &mut Frame, area: Rect, w: &Watch, theme: &Theme) {
    let width = area.width as usize;
    let line = match w.kind {
        WatchKind::Replay => replay(w, width, theme),
        WatchKind::Follow => follow(w, theme),
    };
    frame.render_widget(
        Paragraph::new(Line::from(truncate_spans(line, width))).style(theme.style(Role::HeaderBg)),
        area,
    );
}

fn follow<'a>(w: &Watch, theme: &Theme) -> Vec<Span<'a>> {
    let t = &w.bar;
    let mut spans = vec![Span::styled(
        " ◉ following, read-only",
        theme.style(Role::Warn),
    )];
    match t.driver {
        Some((seq, age_ms)) => {
            let behind = if age_ms < 2000 {
                "just now".to_string()
            } else {
                format!("{} ago", fmt::secs(age_ms as f64 / 1000.0))
            };
            spans.push(Span::styled(
                format!(" · the driver's event {seq}, {behind}"),
                theme.style(Role::Text),
            ));
        }
        None => spans.push(Span::styled(
            " · waiting for the driver's first event",
            theme.style(Role::Muted),
        )),
    }
    if let Some((_, id, ok)) = t.marks.last() {
        let state = match ok {
            None => "running",
            Some(true) => "passed",
            Some(false) => "failed",
        };
        spans.push(Span::styled(
            format!(" · {} {} {state}", key_of(*id), id.title()),
            theme.style(Role::Text),
        ));
    }
    spans
}

fn replay<'a>(w: &Watch, width: usize, theme: &Theme) -> Vec<Span<'a>> {
    let t = &w.bar;
    let at_end = t.at.is_some() && t.at >= t.end;
    let state = if at_end {
        "■ end"
    } else if w.paused {
        "⏸"
    } else {
        "▶"
    };
    let lead = format!(" {state} {:>4} ", speed(w.speed()));
    let (Some(start), Some(end)) = (t.start, t.end) else {
        return vec![Span::styled(lead, theme.style(Role::Warn))];
    };
    let at = t.at.unwrap_or(start).clamp(start, end);
    let total = (end - start).num_seconds();
    let tail = match t.loading {
        Some(pct) => format!(
            " {} / {}… reading {pct}% ",
            hms((at - start).num_seconds()),
            hms(total)
        ),
        None => format!(" {} / {} ", hms((at - start).num_seconds()), hms(total)),
    };
    let room = width.saturating_sub(fmt::width(&lead) + fmt::width(&tail) + 2);
    let mut spans = vec![Span::styled(lead, theme.style(Role::Warn))];
    if room >= 10 {
        let span_ms = (end - start).num_milliseconds().max(1) as f64;
        let cell = |t: chrono::DateTime<chrono::Utc>| -> usize {
            let f = (t - start).num_milliseconds() as f64 / span_ms;
            ((f * (room - 1) as f64).round() as usize).min(room - 1)
        };
        let mut cells: Vec<(String, Role)> = vec![("─".into(), Role::Muted); room];
        for (when, id, ok) in &t.marks {
            let role = match ok {
                Some(true) => Role::Ok,
                Some(false) => Role::Error,
                None => Role::Warn,
            };
            cells[cell(*when)] = (key_of(*id).to_string(), role);
        }
        cells[cell(at)] = ("┃".into(), Role::Accent);
        spans.push(Span::styled("├", theme.style(Role::Muted)));
        spans.extend(
            cells
                .into_iter()
                .map(|(s, r)| Span::styled(s, theme.style(r))),
        );
        spans.push(Span::styled("┤", theme.style(Role::Muted)));
    }
    spans.push(Span::styled(tail, theme.style(Role::Text)));
    spans
}
