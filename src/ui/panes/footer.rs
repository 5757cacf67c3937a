//! The key line: what the operator can do right now.

use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use ratatui::Frame;

use crate::model::keymap::{self, Binding, Command};
use crate::model::{Model, View};
use crate::runbook::CheckpointId;
use crate::ui::fmt;
use crate::ui::theme::{Role, Theme};
use crate::ui::widgets::{one_line, truncate_spans};

/// How a key name reads on screen.
pub fn key_label(key: &str) -> &str {
    match key {
        "Down" => "↓",
        "Up" => "↑",
        "Ctrl-c" => "^C",
        " " => "space",
        other => other,
    }
}

/// The footer's entries for what is open now, from the keymap: consecutive
/// bindings with the same word share it ("A S R B cutover").
pub fn entries(model: &Model, v: &View) -> Vec<(Vec<&'static Binding>, &'static str)> {
    let layer = keymap::layer(model, v);
    let kube = crate::model::kube_actions_bound(model);
    let all_pass = model
        .dialog
        .is_none_or(|id| crate::runbook::guards(model, id).iter().all(|g| g.passes()));
    let mut out: Vec<(Vec<&'static Binding>, &'static str)> = Vec::new();
    for b in keymap::bindings_for(model, v, layer) {
        let Some(word) = b.footer else { continue };
        // Without a Kubernetes side these keys do nothing: not offered.
        if matches!(b.command, Command::Open(c) if c.is_kubernetes()) && !kube {
            continue;
        }
        // The war room and the zoom keys where they are the way around;
        // the panes' line is full, and the help lists them.
        let view_key = matches!(b.command, Command::ToggleWarRoom | Command::CycleZoom);
        if view_key && v.zoom.is_none() && !v.war_room {
            continue;
        }
        // An override only where a guard fails.
        if b.command == Command::ToggleReason && all_pass {
            continue;
        }
        match out.last_mut() {
            Some((group, w)) if *w == word => group.push(b),
            _ => out.push((vec![b], word)),
        }
    }
    out
}

/// Keys that would do nothing right now are dimmed, not hidden, so the
/// line never shifts.
fn idle(model: &Model, command: Command) -> bool {
    let acting = model.actions.running().is_some();
    match command {
        Command::ExactCount => model.count_running(),
        Command::Verify | Command::Open(CheckpointId::VerifyLive) => model.verify_running(),
        Command::Cancel => !model.count_running() && !model.verify_running() && !acting,
        Command::Open(_) => acting,
        _ => false,
    }
}

/// The key groups as spans, the words of the last `bare` groups left out
/// (help, quit and back keep theirs): a line too narrow for every word loses them
/// from the right, and the help says the rest.
fn key_spans(model: &Model, v: &View, theme: &Theme, bare: usize) -> Vec<Span<'static>> {
    let mut spans = vec![Span::raw(" ")];
    let groups = entries(model, v);
    let n = groups.len();
    for (i, (group, word)) in groups.into_iter().enumerate() {
        if i > 0 {
            spans.push(Span::raw("  "));
        }
        let keys: Vec<&str> = group.iter().map(|b| key_label(b.keys[0])).collect();
        let role = if group.iter().all(|b| idle(model, b.command)) {
            Role::Muted
        } else {
            Role::Accent
        };
        spans.push(Span::styled(
            keys.join(" "),
            theme
                .style(role)
                .add_modifier(ratatui::style::Modifier::BOLD),
        ));
        // The way out of a zoom or the war room keeps its word too.
        let kept = group.iter().any(|b| {
            matches!(
                b.command,
                Command::ToggleHelp | Command::Quit | Command::ViewBack
            )
        });
        if i + bare < n || kept {
            spans.push(Span::raw(" "));
            spans.push(Span::styled(word, theme.style(Role::Muted)));
        }
    }
    spans
}

pub fn render(frame: &mut Frame, area: Rect, model: &Model, v: &View, theme: &Theme) {
    let width = area.width as usize;
    let mut bare = 0;
    let mut spans = key_spans(model, v, theme, bare);
    while spans.iter().map(Span::width).sum::<usize>() > width && bare < spans.len() {
        bare += 1;
        spans = key_spans(model, v, theme, bare);
    }
    let left_w: usize = spans.iter().map(Span::width).sum();
    if let Some(reason) = &model.ended {
        let note = format!("■ session ended: {} ", one_line(reason));
        let room = width.saturating_sub(left_w + 2);
        if room >= 16 {
            let note = fmt::truncate(&note, room).into_owned();
            let pad = width - left_w - fmt::width(&note);
            spans.push(Span::raw(" ".repeat(pad)));
            spans.push(Span::styled(note, theme.style(Role::Warn)));
        }
    }
    frame.render_widget(
        Paragraph::new(Line::from(truncate_spans(spans, width))),
        area,
    );
}
