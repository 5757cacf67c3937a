//! The connection pooler (`[pooler]`): each PgBouncer instance — paused or
//! not, its clients active and waiting, where its server connections go —
//! and, while a pause holds the application's queries, the queue and the
//! longest wait: what the war room watches during a switch through the
//! pooler.

use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use ratatui::Frame;

use crate::model::Model;
use crate::pooler::{InstanceSample, PoolerSample};
use crate::ui::fmt;
use crate::ui::theme::{Role, Theme};
use crate::ui::widgets::{one_line, pane_block, truncate_line, PaneFrame};

/// Whether the session has a pooler to show.
pub fn configured(model: &Model) -> bool {
    model.info.as_ref().is_some_and(|i| i.pooler.is_some())
}

/// The last sample, unless it is older than the stale limit.
pub fn fresh(model: &Model) -> Option<&PoolerSample> {
    let (at, sample) = model.pooler.as_ref()?;
    let limit = model.info.as_ref()?.stale_after_seconds;
    let now = model.now?;
    ((now - *at).num_milliseconds() as f64 <= limit * 1000.0).then_some(sample)
}

/// `source`, `target` or the address itself, for a backend `host:port`.
fn backend_name(model: &Model, addr: &str) -> String {
    let Some(info) = model.info.as_ref() else {
        return addr.to_string();
    };
    for (ep, name) in [(&info.source, "source"), (&info.target, "target")] {
        if ep.describe.contains(addr) {
            return format!("{name} {addr}");
        }
    }
    addr.to_string()
}

fn secs(ms: u64) -> String {
    format!("{:.1} s", ms as f64 / 1000.0)
}

/// Backends by name only (`source ×2`), for a narrow pane.
fn backends_short(model: &Model, i: &InstanceSample) -> String {
    let list: Vec<String> = i
        .backends()
        .iter()
        .map(|(addr, n)| {
            let name = backend_name(model, addr);
            let short = name.split(' ').next().unwrap_or(&name).to_string();
            format!("{short} ×{n}")
        })
        .collect();
    if list.is_empty() {
        "no server".into()
    } else {
        list.join(", ")
    }
}

/// One instance in under 80 columns.
fn instance_line_short(model: &Model, i: &InstanceSample, theme: &Theme) -> Line<'static> {
    let s = |t: String, r: Role| Span::styled(t, theme.style(r));
    let mut spans = vec![s(format!("{} ", i.instance.name), Role::Text)];
    if let Some(e) = &i.error {
        spans.push(s(format!("✖ {}", one_line(e)), Role::Error));
        return Line::from(spans);
    }
    let waiting = i.clients_waiting();
    spans.push(if i.paused() {
        s("⏸ PAUSED ".into(), Role::Warn)
    } else {
        s("● serving ".into(), Role::Ok)
    });
    spans.push(s(format!("{} active ", i.clients_active()), Role::Text));
    spans.push(s(
        if waiting > 0 {
            format!("{waiting} waiting {} ", secs(i.longest_wait_ms()))
        } else {
            "0 waiting ".into()
        },
        if waiting > 0 { Role::Warn } else { Role::Text },
    ));
    spans.push(s(format!("→ {}", backends_short(model, i)), Role::Muted));
    Line::from(spans)
}

/// One line per instance.
fn instance_line(model: &Model, i: &InstanceSample, theme: &Theme) -> Line<'static> {
    let s = |t: String, r: Role| Span::styled(t, theme.style(r));
    let mut spans = vec![s(format!("{:<14}", i.instance.name), Role::Text)];
    if let Some(e) = &i.error {
        spans.push(s(format!("✖ {}", one_line(e)), Role::Error));
        return Line::from(spans);
    }
    if i.paused() {
        spans.push(s("⏸ PAUSED   ".into(), Role::Warn));
    } else {
        spans.push(s("● serving  ".into(), Role::Ok));
    }
    let waiting = i.clients_waiting();
    spans.push(s(
        format!("clients {} active · ", i.clients_active()),
        Role::Text,
    ));
    spans.push(s(
        format!("{waiting} waiting"),
        if waiting > 0 { Role::Warn } else { Role::Text },
    ));
    if waiting > 0 {
        spans.push(s(
            format!(" (longest {})", secs(i.longest_wait_ms())),
            Role::Warn,
        ));
    }
    let backends = i.backends();
    let to = if backends.is_empty() {
        match &i.entry {
            Some(e) => format!(
                "  entry → {} (no server connection)",
                backend_name(model, &format!("{}:{}", e.host, e.port))
            ),
            None => String::new(),
        }
    } else {
        let list: Vec<String> = backends
            .iter()
            .map(|(addr, n)| format!("{} ×{n}", backend_name(model, addr)))
            .collect();
        format!("  servers → {}", list.join(", "))
    };
    spans.push(s(to, Role::Muted));
    Line::from(spans)
}

/// The pane's lines (without its frame): one per instance, or why there
/// is nothing to show.
pub fn lines(model: &Model, theme: &Theme, width: u16) -> Vec<Line<'static>> {
    let muted = |t: String| Line::from(Span::styled(t, theme.style(Role::Muted)));
    let out = match model.pooler.as_ref() {
        None => vec![muted("Waiting for the pooler's admin consoles…".into())],
        Some((_, p)) if p.error.is_some() => vec![Line::from(Span::styled(
            format!(
                "✖ instances not found: {}",
                one_line(p.error.as_deref().unwrap_or_default())
            ),
            theme.style(Role::Error),
        ))],
        Some((_, p)) if p.instances.is_empty() => {
            vec![Line::from(Span::styled(
                "✖ no instance running".to_string(),
                theme.style(Role::Error),
            ))]
        }
        Some((_, p)) if width < 100 => p
            .instances
            .iter()
            .map(|i| instance_line_short(model, i, theme))
            .collect(),
        Some((_, p)) => p
            .instances
            .iter()
            .map(|i| instance_line(model, i, theme))
            .collect(),
    };
    out.into_iter()
        .map(|l| truncate_line(l, width as usize))
        .collect()
}

/// Rows the pane wants: its instances and its frame.
pub fn wanted_height(model: &Model, pf: PaneFrame) -> u16 {
    let chrome = if pf == PaneFrame::Boxed { 2 } else { 1 };
    let n = model
        .pooler
        .as_ref()
        .map_or(1, |(_, p)| p.instances.len().max(1));
    chrome + n as u16
}

fn title_spans(model: &Model, theme: &Theme) -> (Vec<Span<'static>>, Vec<Span<'static>>) {
    let mut title = vec![Span::styled(" Pooler ", theme.style(Role::Title))];
    if let Some(p) = model.info.as_ref().and_then(|i| i.pooler.as_ref()) {
        title.push(Span::styled(
            format!("─ {} · entry {} ", p.instances, p.database),
            theme.style(Role::Muted),
        ));
    }
    let right = match (fresh(model), model.pooler.as_ref()) {
        (Some(p), _) => {
            let h = p.held();
            if h.paused > 0 {
                vec![Span::styled(
                    format!(
                        " ⏸ {}/{} paused · {} clients waiting · longest {} ",
                        h.paused,
                        h.instances,
                        h.clients_waiting,
                        secs(h.longest_wait_ms)
                    ),
                    theme.style(Role::Warn),
                )]
            } else {
                vec![Span::styled(" ● watching ", theme.style(Role::Ok))]
            }
        }
        (None, Some((at, _))) => vec![Span::styled(
            format!(" ✖ stale since {} ", fmt::clock(*at)),
            theme.style(Role::Error),
        )],
        (None, None) => vec![Span::styled(" … connecting ", theme.style(Role::Muted))],
    };
    (title, right)
}

pub fn render(frame: &mut Frame, area: Rect, model: &Model, theme: &Theme, pf: PaneFrame) {
    let (title, right) = title_spans(model, theme);
    let block = pane_block(theme, pf, area.width, title, right);
    let inner = block.inner(area);
    frame.render_widget(block, area);
    if inner.is_empty() {
        return;
    }
    let lines = lines(model, theme, inner.width);
    frame.render_widget(Paragraph::new(lines), inner);
}
