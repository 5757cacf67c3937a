//! Two header rows: product, mode and clock on the left; one row per cluster,
//! with its columns aligned so source and target read as a small table.

use chrono::{DateTime, Utc};
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph};
use ratatui::Frame;

use crate::model::{stale_since, Model, SideState, View, WatchKind};
use crate::session::Endpoint;
use crate::session::Side;
use crate::ui::fmt::{self, Align};
use crate::ui::theme::{Role, Theme};
use crate::ui::widgets::{one_line, truncate_spans};

pub const HEIGHT: u16 = 2;

/// Whether a cluster's numbers can be trusted right now.
pub struct Reach {
    pub role: Role,
    /// `● up`, `✖ stale since 14:02:11`, …
    pub core: String,
    /// Why, when there is a reason to show.
    pub detail: Option<String>,
}

pub fn reach<S>(side: &SideState<S>, now: Option<DateTime<Utc>>, stale_after_s: f64) -> Reach {
    match stale_since(side, now, stale_after_s) {
        None if side.last_ok.is_some() => Reach {
            role: Role::Ok,
            core: match &side.via {
                // Several hosts (an HA pair): which one is watched.
                Some((endpoint, i, n)) => format!("● up on {endpoint} ({i}/{n})"),
                None => "● up".into(),
            },
            detail: None,
        },
        None => Reach {
            role: Role::Muted,
            core: "… connecting".into(),
            detail: None,
        },
        Some(since) => {
            let word = if side.last_ok.is_some() {
                "stale"
            } else {
                "unreachable"
            };
            let detail = match (&side.failing, now) {
                (Some((_, err)), _) => Some(one_line(err)),
                (None, Some(now)) => Some(format!(
                    "no sample for {}",
                    fmt::secs(fmt::seconds_between(since, now))
                )),
                (None, None) => None,
            };
            Reach {
                role: Role::Error,
                core: format!("✖ {word} since {}", fmt::clock(since)),
                detail,
            }
        }
    }
}

impl Reach {
    /// The status in at most `w` columns, keeping the core and cutting the reason.
    pub fn text(&self, w: usize) -> String {
        let core_w = fmt::width(&self.core);
        match &self.detail {
            Some(d) if w >= core_w + 3 + 4 => {
                let room = w - core_w - 3;
                format!("{} ({})", self.core, fmt::truncate(d, room))
            }
            _ => fmt::truncate(&self.core, w).into_owned(),
        }
    }

    pub fn full_width(&self) -> usize {
        fmt::width(&self.core) + self.detail.as_ref().map_or(0, |d| fmt::width(d) + 3)
    }
}

fn version(v: Option<&str>) -> String {
    // `server_version` carries the packager's suffix ("16.2 (Debian 16.2-1)"); the number is what matters.
    match v.and_then(|v| v.split_whitespace().next()) {
        Some(v) => format!("PG {v}"),
        None => "PG ?".into(),
    }
}

pub use crate::model::budget::freeze_window;

/// The mode word: a replay or a follower says so first: it must never be
/// mistaken for the console that drives; a read-only console says so where
/// the mode is: no key in it changes anything.
pub fn mode(info: &crate::session::SessionInfo, v: &View) -> (String, Role) {
    let watching = v.watch.as_ref().map(|w| match w.kind {
        WatchKind::Replay => "REPLAY",
        WatchKind::Follow => "FOLLOW",
    });
    let mode = if let Some(word) = watching {
        word.to_string()
    } else if info.read_only {
        "READ-ONLY".to_string()
    } else {
        fmt::truncate(&info.mode.to_uppercase(), 8).into_owned()
    };
    // Replay must never be mistaken for the live database.
    let role = if watching.is_some() || info.read_only {
        Role::Warn
    } else {
        Role::Accent
    };
    (mode, role)
}

/// Minutes and seconds, `1:05`: the freeze window's timer.
pub fn mmss(secs: u64) -> String {
    format!("{}:{:02}", secs / 60, secs % 60)
}

pub fn render(frame: &mut Frame, area: Rect, model: &Model, v: &View, theme: &Theme) {
    let band = theme.style(Role::HeaderBg);
    frame.render_widget(Block::new().style(band), area);
    let width = area.width as usize;
    let clock = model.now.map_or_else(
        || "--:--:-- UTC".to_string(),
        |t| format!("{} UTC", fmt::clock(t)),
    );

    let Some(info) = &model.info else {
        let lines = vec![
            Line::from(vec![
                Span::styled(" cutover", theme.style(Role::Title)),
                Span::styled(
                    "  waiting for the session to start…",
                    theme.style(Role::Muted),
                ),
            ]),
            Line::from(Span::styled(format!(" {clock}"), theme.style(Role::Text))),
        ];
        let lines = lines
            .into_iter()
            .map(|l| Line::from(truncate_spans(l.spans, width)))
            .collect::<Vec<_>>();
        frame.render_widget(Paragraph::new(lines).style(band), area);
        return;
    };

    let (mode, mode_role) = mode(info, v);
    // From the freeze on, the window's timer takes the product's name: the
    // room reads how long writes have been refused, against the budget.
    let (name, name_role) = match freeze_window(model) {
        Some((secs, _, true)) => (format!("✔ window ≤ {}", mmss(secs)), Role::Ok),
        Some((secs, budget, _)) if secs > budget => (
            format!(
                "❄ FROZEN {} > {} budget: B rolls back",
                mmss(secs),
                mmss(budget)
            ),
            Role::Error,
        ),
        Some((secs, budget, _)) => (
            format!("❄ FROZEN {} of {}", mmss(secs), mmss(budget)),
            Role::Warn,
        ),
        None => ("cutover".to_string(), Role::Title),
    };
    let lead_w = 1 + (fmt::width(&name) + 2 + fmt::width(&mode)).max(fmt::width(&clock)) + 3;

    let src_ver = version(
        model
            .source
            .last
            .as_ref()
            .map(|s| s.server_version.as_str()),
    );
    let tgt_ver = version(
        model
            .target
            .last
            .as_ref()
            .map(|s| s.server_version.as_str()),
    );
    let sides: [(&str, &Endpoint, String, Reach); 2] = [
        (
            "source",
            &info.source,
            src_ver,
            reach(&model.source, model.now, info.stale_after_seconds),
        ),
        (
            "target",
            &info.target,
            tgt_ver,
            reach(&model.target, model.now, info.stale_after_seconds),
        ),
    ];

    let lw = sides
        .iter()
        .map(|s| fmt::width(&s.1.label))
        .max()
        .unwrap_or(0)
        .min(18);
    let vw = sides.iter().map(|s| fmt::width(&s.2)).max().unwrap_or(0);
    let desc_max = sides
        .iter()
        .map(|s| fmt::width(&s.1.describe))
        .max()
        .unwrap_or(0);
    let reach_max = sides.iter().map(|s| s.3.full_width()).max().unwrap_or(0);
    // Writes per second from each server's statistics: the room sees them
    // stop on the source at the freeze and start on the target.
    let writes: [String; 2] = [Side::Source, Side::Target].map(|side| {
        crate::model::writes::rate(model, side).map_or(String::new(), |r| {
            format!("{} writes/s", fmt::int(r.round() as i64))
        })
    });
    let ww = writes.iter().map(|w| fmt::width(w)).max().unwrap_or(0);
    let avail = width.saturating_sub(lead_w);
    let fixed = 6 + 2 + lw + 2 + vw + 2 + if ww > 0 { ww + 2 } else { 0 };
    let room = avail.saturating_sub(fixed);
    // The reason a cluster is down matters more than its address: describe gets what is left.
    let mut dw = room.saturating_sub(reach_max + 2).min(desc_max);
    if dw < desc_max.min(10) {
        dw = 0;
    }
    let reach_w = room.saturating_sub(if dw > 0 { dw + 2 } else { 0 });

    let mut lines = Vec::with_capacity(2);
    for (i, (kind, ep, ver, r)) in sides.iter().enumerate() {
        let mut spans: Vec<Span> = Vec::with_capacity(12);
        if i == 0 {
            spans.push(Span::styled(
                format!(" {name}"),
                theme
                    .style(name_role)
                    .add_modifier(ratatui::style::Modifier::BOLD),
            ));
            spans.push(Span::raw("  "));
            spans.push(Span::styled(mode.clone(), theme.style(mode_role)));
            let used = 1 + fmt::width(&name) + 2 + fmt::width(&mode);
            spans.push(Span::raw(" ".repeat(lead_w - used)));
        } else {
            spans.push(Span::styled(
                fmt::fit(&format!(" {clock}"), lead_w, Align::Left),
                theme.style(Role::Text),
            ));
        }
        spans.push(Span::styled(*kind, theme.style(Role::Muted)));
        spans.push(Span::raw("  "));
        spans.push(Span::styled(
            fmt::fit(&ep.label, lw, Align::Left),
            theme.style(Role::Title),
        ));
        spans.push(Span::raw("  "));
        if dw > 0 {
            spans.push(Span::styled(
                fmt::fit(&ep.describe, dw, Align::Left),
                theme.style(Role::Muted),
            ));
            spans.push(Span::raw("  "));
        }
        if ww > 0 {
            spans.push(Span::styled(
                fmt::fit(&writes[i], ww, Align::Right),
                theme.style(Role::Text),
            ));
            spans.push(Span::raw("  "));
        }
        if r.full_width() > reach_w && vw > 0 {
            // A broken cluster's reason beats its version number; only this row gives it up.
            spans.push(Span::styled(r.text(reach_w + vw + 2), theme.style(r.role)));
        } else {
            spans.push(Span::styled(
                fmt::fit(ver, vw, Align::Left),
                theme.style(Role::Text),
            ));
            spans.push(Span::raw("  "));
            spans.push(Span::styled(r.text(reach_w), theme.style(r.role)));
        }
        lines.push(Line::from(truncate_spans(spans, width)));
    }
    frame.render_widget(Paragraph::new(lines).style(band), area);
}
