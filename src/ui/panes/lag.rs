//! Replication lag: how far the subscription's slot is behind the source, in
//! bytes and time, with the recent history as a sparkline.

use ratatui::layout::Rect;
use ratatui::symbols;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, RenderDirection, Sparkline, SparklineBar, Wrap};
use ratatui::Frame;

use crate::model::{lag_summary, stale_since, LagSummary, Model};
use crate::session::SessionInfo;
use crate::ui::fmt;
use crate::ui::theme::{Role, Theme};
use crate::ui::widgets::{one_line, pane_block, truncate_line, PaneFrame};

/// The lag as a state word; the symbol and word carry it without colour.
pub fn state(summary: &LagSummary<'_>, info: &SessionInfo) -> Option<(&'static str, Role)> {
    let bytes = summary.lag_bytes?;
    Some(if bytes > info.max_lag_bytes {
        ("✖ over threshold", Role::Error)
    } else if bytes <= 0 {
        ("✔ caught up", Role::Ok)
    } else {
        ("▲ behind", Role::Warn)
    })
}

pub fn no_slot_sentence(slot: &str) -> String {
    format!("No replication slot \"{slot}\" on the source yet — create the subscription (see lab README.txt)")
}

/// The dump-and-restore runbook replicates nothing: what stands for lag.
pub fn dump_restore_sentence() -> String {
    "No replication: the dump-and-restore runbook copies with writes frozen (Y), and the \
     run pane shows how far the copy is."
        .into()
}

pub fn render(frame: &mut Frame, area: Rect, model: &Model, theme: &Theme, pf: PaneFrame) {
    let mut right = Vec::new();
    if let Some(info) = &model.info {
        right.push(Span::styled(
            format!(
                " slot {} · threshold {} ",
                info.slot,
                fmt::bytes(info.max_lag_bytes)
            ),
            theme.style(Role::Muted),
        ));
    }
    let block = pane_block(
        theme,
        pf,
        area.width,
        vec![Span::styled(" Replication lag ", theme.style(Role::Title))],
        right,
    );
    let inner = block.inner(area);
    frame.render_widget(block, area);
    if inner.is_empty() {
        return;
    }

    let sentence = |text: String, role: Role| {
        Paragraph::new(Line::from(Span::styled(text, theme.style(role)))).wrap(Wrap { trim: true })
    };
    let Some(info) = &model.info else {
        frame.render_widget(
            sentence("Waiting for the session to start…".into(), Role::Muted),
            inner,
        );
        return;
    };
    let Some(summary) = lag_summary(model) else {
        let text = match &model.source.failing {
            Some((_, err)) => (
                format!("✖ Cannot reach the source: {}", one_line(err)),
                Role::Error,
            ),
            None => (
                "Waiting for the first sample from the source…".into(),
                Role::Muted,
            ),
        };
        frame.render_widget(sentence(text.0, text.1), inner);
        return;
    };
    let Some(slot) = summary.slot else {
        // Gone after the session saw replication run: it ended, not "not yet".
        let text = match crate::ui::panes::slots::subscription_dropped(model) {
            Some(dropped) => (format!("{dropped}: replication has ended."), Role::Text),
            None if info.runbook == crate::runbook::Variant::DumpRestore => {
                (dump_restore_sentence(), Role::Text)
            }
            None => (no_slot_sentence(&info.slot), Role::Warn),
        };
        frame.render_widget(sentence(text.0, text.1), inner);
        return;
    };

    // Stopped on purpose once the target had it all: what the slot is
    // behind since is not lag.
    if let Some(at) = crate::runbook::checkpoints::reverse_replication::running_since(model) {
        let text = format!(
            "Forward replication stopped as planned at {} (target caught up); reverse \
             replication runs. X drops slot {} ({}).",
            fmt::clock(at),
            info.slot,
            summary.lag_bytes.map_or("?".into(), fmt::bytes)
        );
        frame.render_widget(sentence(text, Role::Text), inner);
        return;
    }
    let stale = stale_since(&model.source, model.now, info.stale_after_seconds);
    let mut l1 = vec![Span::styled("lag   ", theme.style(Role::Muted))];
    match (summary.lag_bytes, state(&summary, info)) {
        (Some(b), Some((word, role))) => {
            l1.push(Span::styled(fmt::bytes(b), theme.style(role)));
            l1.push(Span::raw("  "));
            l1.push(Span::styled(word, theme.style(role)));
        }
        _ => l1.push(Span::styled(
            "? no confirmed position yet (slot never consumed)",
            theme.style(Role::Warn),
        )),
    }
    if let Some(t) = stale {
        // Old numbers look exactly like fresh ones unless they say so.
        l1.push(Span::styled(
            format!("  as of {}", fmt::clock(t)),
            theme.style(Role::Warn),
        ));
    }

    let src = model.source.last.as_ref();
    let sender = src.and_then(|s| {
        s.senders
            .iter()
            .find(|s| s.application_name == info.subscription)
    });
    let mut l2 = vec![Span::styled("time  ", theme.style(Role::Muted))];
    match sender {
        None => l2.push(Span::styled(
            format!(
                "○ no walsender for \"{}\": subscriber not connected",
                info.subscription
            ),
            theme.style(Role::Warn),
        )),
        Some(_) => {
            let parts = [
                ("write", summary.write_lag_ms, false),
                ("flush", summary.flush_lag_ms, summary.over_time),
                ("replay", summary.replay_lag_ms, false),
            ];
            let mut any = false;
            for (name, v, over) in parts {
                let Some(ms) = v else { continue };
                if any {
                    l2.push(Span::styled(" · ", theme.style(Role::Muted)));
                }
                any = true;
                l2.push(Span::styled(format!("{name} "), theme.style(Role::Muted)));
                let role = if over { Role::Error } else { Role::Text };
                l2.push(Span::styled(fmt::millis(ms), theme.style(role)));
            }
            if !any {
                l2.push(Span::styled(
                    "idle, no WAL in flight",
                    theme.style(Role::Muted),
                ));
            }
            if summary.over_time {
                l2.push(Span::styled(
                    format!("  ✖ over {}", fmt::secs(info.max_lag_seconds)),
                    theme.style(Role::Error),
                ));
            }
        }
    }

    let active = if slot.active {
        Span::styled("● active", theme.style(Role::Ok))
    } else {
        Span::styled("○ inactive", theme.style(Role::Warn))
    };
    let l3 = Line::from(vec![
        Span::styled("slot  ", theme.style(Role::Muted)),
        Span::styled(slot.name.clone(), theme.style(Role::Text)),
        Span::raw("  "),
        active,
        Span::styled("  confirmed ", theme.style(Role::Muted)),
        Span::raw(
            slot.confirmed_flush_lsn
                .clone()
                .unwrap_or_else(|| "—".into()),
        ),
        Span::styled("  source at ", theme.style(Role::Muted)),
        Span::raw(src.map_or_else(|| "—".into(), |s| s.current_wal_lsn.clone())),
    ]);

    let (l1, l2) = (Line::from(l1), Line::from(l2));
    let w = inner.width as usize;
    if inner.height >= 6 {
        // Tall: text on top, the sparkline across the full width below it.
        let text = vec![l1, l2, l3];
        let text_h = 3u16;
        let spark_h = inner.height - text_h - 2;
        let text: Vec<Line> = text.into_iter().map(|l| truncate_line(l, w)).collect();
        frame.render_widget(
            Paragraph::new(text),
            Rect {
                height: text_h,
                ..inner
            },
        );
        let spark = Rect {
            y: inner.y + text_h + 1,
            height: spark_h,
            ..inner
        };
        sparkline(frame, spark, model, theme, info);
        let caption = Rect {
            y: spark.y + spark_h,
            height: 1,
            ..inner
        };
        frame.render_widget(
            Paragraph::new(truncate_line(caption_line(model, theme, spark.width), w)),
            caption,
        );
    } else {
        // Short: the sparkline beside the text, so the pane costs two rows.
        let text_w = l1.width().max(l2.width()).min(w);
        let gap = 3;
        let spark_w = w.saturating_sub(text_w + gap);
        let text_w = if spark_w >= 12 { text_w } else { w };
        let lines = vec![
            truncate_line(l1, w),
            truncate_line(l2, w),
            truncate_line(l3, text_w),
        ];
        let text_area = Rect {
            width: text_w as u16,
            ..inner
        };
        frame.render_widget(Paragraph::new(lines), text_area);
        if spark_w >= 12 {
            let spark = Rect {
                x: inner.x + (text_w + gap) as u16,
                width: spark_w as u16,
                height: inner.height.min(2),
                ..inner
            };
            sparkline(frame, spark, model, theme, info);
        }
    }
}

fn caption_line(model: &Model, theme: &Theme, width: u16) -> Line<'static> {
    let shown = model.lag_history.len().min(width as usize);
    let recent = model.lag_history.iter().rev().take(shown);
    let (mut peak, mut gaps) = (None::<i64>, 0usize);
    for p in recent {
        match p.bytes {
            Some(b) => peak = Some(peak.map_or(b, |m| m.max(b))),
            None => gaps += 1,
        }
    }
    let span = match (
        model.lag_history.iter().rev().nth(shown.saturating_sub(1)),
        model.now,
    ) {
        (Some(first), Some(now)) if shown > 0 => fmt::secs(fmt::seconds_between(first.at, now)),
        _ => "—".into(),
    };
    let mut text = format!("lag history, last {span} ({shown} samples)");
    if let Some(p) = peak {
        text.push_str(&format!(" · peak {}", fmt::bytes(p)));
    }
    if gaps > 0 {
        text.push_str(&format!(" · {gaps} missed (·)"));
    }
    Line::from(Span::styled(text, theme.style(Role::Muted)))
}

fn sparkline(frame: &mut Frame, area: Rect, model: &Model, theme: &Theme, info: &SessionInfo) {
    if area.is_empty() {
        return;
    }
    let over = theme.style(Role::Error);
    // Newest first, drawn right to left: the latest sample always sits at the right edge.
    let data: Vec<SparklineBar> = model
        .lag_history
        .iter()
        .rev()
        .take(area.width as usize)
        .map(|p| {
            let bar = SparklineBar::from(p.bytes.map(|b| b.max(0) as u64));
            if p.bytes.is_some_and(|b| b > info.max_lag_bytes) {
                bar.style(over)
            } else {
                bar
            }
        })
        .collect();
    let spark = Sparkline::default()
        .data(data)
        .direction(RenderDirection::RightToLeft)
        .bar_set(symbols::bar::NINE_LEVELS)
        .style(theme.style(Role::Accent))
        .absent_value_symbol("·")
        .absent_value_style(theme.style(Role::Muted));
    frame.render_widget(spark, area);
}
