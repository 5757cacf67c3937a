//! Slots and subscription: what holds WAL on the source, what consumes it on
//! the target, and which publications feed it.

use std::collections::BTreeMap;

use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use ratatui::Frame;

use crate::model::{stale_since, Model};
use crate::session::sample::{SlotRow, SubscriptionRow, TargetSample};
use crate::ui::fmt::{self, Align};
use crate::ui::theme::{Role, Theme};
use crate::ui::widgets::{
    fit_lines, layout_cols, pane_block, row_line, truncate_line, Col, PaneFrame,
};

/// Priority of a line when the pane is short: 0 is kept longest, 3 (headings
/// and spacing) goes first. See [`fit_lines`].
pub type Prio = u8;

/// A sync state code from `pg_subscription_rel` as a word.
pub fn sync_word(code: &str) -> &'static str {
    match code {
        "i" => "init",
        "d" => "copying",
        "f" => "copied",
        "s" => "synced",
        "r" => "ready",
        _ => "unknown",
    }
}

pub fn sync_role(code: &str) -> Role {
    match code {
        "r" => Role::Ok,
        "d" | "f" | "s" => Role::Accent,
        "i" => Role::Text,
        _ => Role::Warn,
    }
}

/// `(text, role)` for a slot's `wal_status`: anything past `extended` means
/// the source may be about to drop WAL the subscriber still needs.
fn wal_status(s: Option<&str>) -> (String, Role) {
    match s {
        None => ("—".into(), Role::Muted),
        Some("reserved") => ("reserved".into(), Role::Ok),
        Some("extended") => ("▲ extended".into(), Role::Warn),
        Some(other @ ("unreserved" | "lost")) => (format!("✖ {other}"), Role::Error),
        Some(other) => (other.to_string(), Role::Text),
    }
}

/// `subscription cutover_sub dropped at 12:00:50 (seen until then)` when
/// the session saw its subscription on the target and the latest sample
/// has it no more: replication ended (the runbook drops it at the end).
pub fn subscription_dropped(model: &Model) -> Option<String> {
    let name = &model.info.as_ref()?.subscription;
    let seen = model.subscription_seen?;
    let tgt = model.target.last.as_ref()?;
    if tgt.subscriptions.iter().any(|s| &s.name == name) {
        return None;
    }
    Some(format!(
        "subscription {name} dropped at {} (seen until then)",
        fmt::clock(seen)
    ))
}

pub fn lines(model: &Model, theme: &Theme, width: u16) -> Vec<(Prio, Line<'static>)> {
    let mut out: Vec<(Prio, Line<'static>)> = Vec::new();
    let muted = theme.style(Role::Muted);
    let say = |text: String, role: Role| Line::from(Span::styled(text, theme.style(role)));
    let heading = |text: &str| Line::from(Span::styled(text.to_string(), theme.style(Role::Title)));
    let info = model.info.as_ref();
    let w = width as usize;
    let dropped = subscription_dropped(model);
    // The dump-and-restore runbook makes no slot, subscription or
    // publication: their absence is no warning there.
    let replicates = crate::runbook::variant(model) == crate::runbook::Variant::Logical;

    out.push((3, heading("Source · replication slots")));
    match &model.source.last {
        None => out.push((0, say("No sample from the source yet.".into(), Role::Muted))),
        Some(src) if src.slots.is_empty() && (dropped.is_some() || !replicates) => out.push((
            0,
            say("No replication slots on the source.".into(), Role::Muted),
        )),
        Some(src) if src.slots.is_empty() => out.push((
            0,
            say("No replication slots on the source yet.".into(), Role::Warn),
        )),
        Some(src) => {
            let ours = info.map(|i| i.slot.as_str());
            let max_retained = info.map_or(i64::MAX, |i| i.max_retained_wal_bytes);
            let rows: Vec<Vec<(String, Role)>> = src
                .slots
                .iter()
                .map(|s| slot_cells(s, ours, max_retained))
                .collect();
            let header = [
                "slot",
                "plugin",
                "active",
                "wal_status",
                "retained",
                "confirmed",
            ];
            let aligns = [
                Align::Left,
                Align::Left,
                Align::Left,
                Align::Left,
                Align::Right,
                Align::Left,
            ];
            let cols: Vec<Col> = (0..header.len())
                .map(|i| Col {
                    align: aligns[i],
                    want: rows
                        .iter()
                        .map(|r| fmt::width(&r[i].0))
                        .chain([fmt::width(header[i])])
                        .max()
                        .unwrap_or(0),
                    flex_min: (i == 0).then_some(8),
                })
                .collect();
            let (widths, gap) = layout_cols(&cols, w.saturating_sub(2));
            out.push((
                2,
                row_line(
                    header.iter().map(|h| (h.to_string(), muted)).collect(),
                    &cols,
                    &widths,
                    gap,
                    "  ",
                ),
            ));
            for (slot, cells) in src.slots.iter().zip(rows) {
                let lead = if Some(slot.name.as_str()) == ours {
                    "▸ "
                } else {
                    "  "
                };
                let cells = cells
                    .into_iter()
                    .map(|(t, r)| (t, theme.style(r)))
                    .collect();
                out.push((0, row_line(cells, &cols, &widths, gap, lead)));
            }
        }
    }

    out.push((3, Line::default()));
    out.push((3, heading("Target · subscription")));
    if let Some(text) = &dropped {
        out.push((0, say(text.clone(), Role::Text)));
    }
    match &model.target.last {
        None => out.push((0, say("No sample from the target yet.".into(), Role::Muted))),
        Some(tgt) if tgt.subscriptions.is_empty() && dropped.is_some() => {}
        Some(tgt) if tgt.subscriptions.is_empty() && !replicates => out.push((
            0,
            say(
                "None: the dump-and-restore runbook replicates nothing.".into(),
                Role::Muted,
            ),
        )),
        Some(tgt) if tgt.subscriptions.is_empty() => {
            let expected = info.map_or(String::new(), |i| {
                format!(" — expected \"{}\"", i.subscription)
            });
            out.push((
                0,
                say(
                    format!("No subscription on the target yet{expected}."),
                    Role::Warn,
                ),
            ));
        }
        Some(tgt) => {
            // Stopped as planned: reverse replication (E) runs instead.
            let reversed = crate::runbook::checkpoints::reverse_replication::running_since(model);
            for sub in &tgt.subscriptions {
                let stale_after = info.map_or(f64::INFINITY, |i| i.stale_after_seconds);
                let planned = reversed.filter(|_| !sub.enabled);
                out.push((0, subscription_line(sub, theme, stale_after, planned)));
                out.push((1, sync_line(sub, tgt, theme)));
                for c in &tgt.copies {
                    let subscribed = tgt
                        .sub_tables
                        .iter()
                        .any(|r| r.subscription == sub.name && r.table == c.table);
                    if subscribed {
                        out.push((
                            2,
                            Line::from(vec![
                                Span::styled("  COPY ", theme.style(Role::Accent)),
                                Span::raw(c.table.to_string()),
                                Span::styled(
                                    format!(
                                        " {} rows · {} so far",
                                        fmt::int(c.tuples_processed),
                                        fmt::bytes(c.bytes_processed)
                                    ),
                                    muted,
                                ),
                            ]),
                        ));
                    }
                }
            }
        }
    }

    if let Some(src) = &model.source.last {
        out.push((3, Line::default()));
        out.push((3, heading("Source · publications")));
        if src.publications.is_empty() && !replicates {
            out.push((1, say("None.".into(), Role::Muted)));
        } else if src.publications.is_empty() {
            let expected = info.map_or(String::new(), |i| {
                format!(" — expected \"{}\"", i.publication)
            });
            out.push((
                1,
                say(
                    format!("No publication on the source yet{expected}."),
                    Role::Warn,
                ),
            ));
        } else {
            let mut spans = vec![Span::styled("pub  ", muted)];
            for (i, p) in src.publications.iter().enumerate() {
                if i > 0 {
                    spans.push(Span::styled(" · ", muted));
                }
                spans.push(Span::raw(p.name.clone()));
                let scope = if p.all_tables {
                    "all tables".to_string()
                } else if p.tables == 1 {
                    "1 table".to_string()
                } else {
                    format!("{} tables", fmt::int(p.tables))
                };
                spans.push(Span::styled(format!(" ({scope})"), muted));
            }
            if let Some(i) = info {
                if !src.publications.iter().any(|p| p.name == i.publication) {
                    spans.push(Span::styled(
                        format!("  ✖ \"{}\" missing", i.publication),
                        theme.style(Role::Error),
                    ));
                }
            }
            out.push((1, Line::from(spans)));
        }
    }
    out.into_iter()
        .map(|(p, l)| (p, truncate_line(l, w)))
        .collect()
}

fn slot_cells(s: &SlotRow, ours: Option<&str>, max_retained: i64) -> Vec<(String, Role)> {
    let name_role = if Some(s.name.as_str()) == ours {
        Role::Accent
    } else {
        Role::Text
    };
    let plugin = match &s.plugin {
        Some(p) => (p.clone(), Role::Text),
        None => (format!("({})", s.slot_type), Role::Muted),
    };
    let active = if s.active {
        ("● yes".to_string(), Role::Ok)
    } else {
        // An idle slot still pins WAL on the source's disk.
        ("○ no".to_string(), Role::Warn)
    };
    let retained = match s.retained_bytes {
        Some(b) if b > max_retained => (format!("✖ {}", fmt::bytes(b)), Role::Error),
        Some(b) => (fmt::bytes(b), Role::Text),
        None => ("—".into(), Role::Muted),
    };
    vec![
        (s.name.clone(), name_role),
        plugin,
        active,
        wal_status(s.wal_status.as_deref()),
        retained,
        (
            s.confirmed_flush_lsn.clone().unwrap_or_else(|| "—".into()),
            Role::Text,
        ),
    ]
}

fn subscription_line(
    sub: &SubscriptionRow,
    theme: &Theme,
    stale_after: f64,
    stopped_for_reverse: Option<chrono::DateTime<chrono::Utc>>,
) -> Line<'static> {
    let muted = theme.style(Role::Muted);
    let mut spans = vec![
        Span::styled("sub  ", muted),
        Span::styled(sub.name.clone(), theme.style(Role::Text)),
        Span::raw("  "),
    ];
    if let Some(at) = stopped_for_reverse {
        spans.push(Span::styled(
            format!(
                "■ stopped as planned: reverse replication since {}",
                at.format("%H:%M:%S")
            ),
            theme.style(Role::Ok),
        ));
        return Line::from(spans);
    }
    spans.push(if sub.enabled {
        Span::styled("✔ enabled", theme.style(Role::Ok))
    } else {
        Span::styled("✖ disabled", theme.style(Role::Error))
    });
    spans.push(Span::raw("  "));
    spans.push(match sub.worker_pid {
        Some(pid) => Span::styled(format!("● worker {pid}"), theme.style(Role::Ok)),
        None => Span::styled("○ no worker", theme.style(Role::Warn)),
    });
    spans.push(Span::styled("  recv ", muted));
    spans.push(Span::raw(
        sub.received_lsn.clone().unwrap_or_else(|| "—".into()),
    ));
    match sub.last_msg_age_s {
        Some(age) => {
            spans.push(Span::styled("  last msg ", muted));
            let role = if age > stale_after {
                Role::Warn
            } else {
                Role::Text
            };
            let mark = if age > stale_after { "▲ " } else { "" };
            spans.push(Span::styled(
                format!("{mark}{} ago", fmt::secs(age)),
                theme.style(role),
            ));
        }
        None => spans.push(Span::styled("  no message yet", muted)),
    }
    Line::from(spans)
}

fn sync_line(sub: &SubscriptionRow, tgt: &TargetSample, theme: &Theme) -> Line<'static> {
    let muted = theme.style(Role::Muted);
    let mut counts: BTreeMap<usize, (&str, usize)> = BTreeMap::new();
    // Listed in the order a table moves through them, ending at ready.
    let order = ["i", "d", "f", "s", "r"];
    for r in tgt.sub_tables.iter().filter(|r| r.subscription == sub.name) {
        let rank = order
            .iter()
            .position(|o| *o == r.state)
            .unwrap_or(order.len());
        counts.entry(rank).or_insert((r.state.as_str(), 0)).1 += 1;
    }
    let mut spans = vec![Span::styled("     tables ", muted)];
    if counts.is_empty() {
        spans.push(Span::styled("none subscribed yet", theme.style(Role::Warn)));
    }
    for (i, (code, n)) in counts.values().enumerate() {
        if i > 0 {
            spans.push(Span::styled(" · ", muted));
        }
        spans.push(Span::styled(
            format!("{code} {} {n}", sync_word(code)),
            theme.style(sync_role(code)),
        ));
    }
    Line::from(spans)
}

pub fn render(
    frame: &mut Frame,
    area: Rect,
    model: &Model,
    lines: Vec<(Prio, Line<'static>)>,
    theme: &Theme,
    pf: PaneFrame,
) {
    // Old numbers look like fresh ones; the frame says when they are from.
    let mut right = Vec::new();
    if let Some(info) = &model.info {
        let stale = [
            (
                "source",
                stale_since(&model.source, model.now, info.stale_after_seconds),
            ),
            (
                "target",
                stale_since(&model.target, model.now, info.stale_after_seconds),
            ),
        ];
        for (side, since) in stale {
            if let Some(t) = since.filter(|_| side_has_data(model, side)) {
                right.push(Span::styled(
                    format!(" ✖ {side} data as of {} ", fmt::clock(t)),
                    theme.style(Role::Error),
                ));
            }
        }
    }
    let block = pane_block(
        theme,
        pf,
        area.width,
        vec![Span::styled(
            " Slots & subscription ",
            theme.style(Role::Title),
        )],
        right,
    );
    let inner = block.inner(area);
    frame.render_widget(block, area);
    if inner.is_empty() {
        return;
    }
    let lines = fit_lines(lines, inner.height as usize);
    frame.render_widget(Paragraph::new(lines), inner);
}

fn side_has_data(model: &Model, side: &str) -> bool {
    match side {
        "source" => model.source.last.is_some(),
        _ => model.target.last.is_some(),
    }
}
