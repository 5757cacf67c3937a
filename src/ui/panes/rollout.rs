//! The application side: each workload's rollout, and which database config
//! each pod started with — the pane that shows the switch actually happened.

use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use ratatui::Frame;

use crate::kube::{PodSnapshot, RolloutState, WorkloadSnapshot};
use crate::model::Model;
use crate::ui::fmt::{self, Align};
use crate::ui::theme::{Role, Theme};
use crate::ui::widgets::{one_line, pane_block, truncate_line, PaneFrame};

/// Whether the session watches Kubernetes at all.
pub fn configured(model: &Model) -> bool {
    model.info.as_ref().is_some_and(|i| i.kubernetes.is_some())
}

pub fn state_text(w: &WorkloadSnapshot) -> (String, Role) {
    if !w.found {
        return (
            format!("✖ deployment {} not found", w.deployment),
            Role::Error,
        );
    }
    match &w.state {
        RolloutState::Complete => ("✔ rollout complete".into(), Role::Ok),
        RolloutState::Pending => ("… waiting for the controller".into(), Role::Accent),
        RolloutState::Progressing { message } => (format!("… {message}"), Role::Accent),
        RolloutState::DeadlineExceeded { message } => (format!("✖ {message}"), Role::Error),
    }
}

/// `[██████░░░░]`: updated pods of the desired count, so progress is readable without colour.
fn bar(done: i32, total: i32, width: usize) -> String {
    let total = total.max(1);
    let filled = ((done.clamp(0, total) as usize) * width) / total as usize;
    format!("[{}{}]", "█".repeat(filled), "░".repeat(width - filled))
}

/// Fingerprints of the db config the pods run with: `new` when a pod of the
/// current template has it.
pub fn configs(w: &WorkloadSnapshot) -> Vec<(String, usize, bool)> {
    let mut out: Vec<(String, usize, bool)> = w
        .pods_by_db_config
        .iter()
        .map(|(fp, n)| {
            let current = w
                .pods
                .iter()
                .any(|p| p.updated && p.db_config.as_deref() == Some(fp.as_str()));
            (fp.clone(), *n, current)
        })
        .collect();
    out.sort_by_key(|(_, n, current)| (!*current, std::cmp::Reverse(*n)));
    out
}

fn pod_status(p: &PodSnapshot) -> (String, Role) {
    if p.terminating {
        ("↓ terminating".into(), Role::Muted)
    } else if p.ready {
        ("✔ ready".into(), Role::Ok)
    } else if p.phase == "Running" {
        ("… not ready".into(), Role::Accent)
    } else {
        (format!("… {}", p.phase.to_lowercase()), Role::Accent)
    }
}

fn age(secs: i64) -> String {
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s => format!("{}h", s / 3600),
    }
}

/// One line for a workload, for narrow screens.
pub fn summary(w: &WorkloadSnapshot, theme: &Theme) -> Line<'static> {
    let (state, role) = state_text(w);
    let mut spans = vec![
        Span::styled(format!("{} ", w.deployment), theme.style(Role::Title)),
        Span::styled(
            format!(
                "{}/{} ready {} ",
                w.ready,
                w.desired,
                bar(w.updated, w.desired, 5)
            ),
            theme.style(Role::Text),
        ),
    ];
    for (fp, n, current) in configs(w) {
        let (text, role) = match (fp.as_str(), current) {
            ("?", _) => (format!("starting {n} "), Role::Muted),
            (_, true) => (format!("new db {fp}×{n} "), Role::Ok),
            (_, false) => (format!("old db {fp}×{n} "), Role::Warn),
        };
        spans.push(Span::styled(text, theme.style(role)));
    }
    spans.push(Span::styled(state, theme.style(role)));
    Line::from(spans)
}

fn detail(
    w: &WorkloadSnapshot,
    since_seen: i64,
    theme: &Theme,
    width: usize,
) -> Vec<Line<'static>> {
    let t = |s: String, r: Role| Span::styled(s, theme.style(r));
    let (state, role) = state_text(w);
    let mut lines = vec![Line::from(vec![
        t(format!("{}  ", w.deployment), Role::Title),
        t(
            format!(
                "desired {} · updated {} · ready {} · available {}  ",
                w.desired, w.updated, w.ready, w.available
            ),
            Role::Text,
        ),
        t(state, role),
    ])];
    lines.push(Line::from(vec![
        t("rollout ".into(), Role::Muted),
        t(bar(w.updated, w.desired, 20), Role::Accent),
        t(format!(" {}/{} updated", w.updated, w.desired), Role::Muted),
    ]));
    let mut cfg = vec![t("db config ".into(), Role::Muted)];
    let list = configs(w);
    if list.is_empty() {
        cfg.push(t("no pods yet".into(), Role::Muted));
    }
    for (i, (fp, n, current)) in list.into_iter().enumerate() {
        if i > 0 {
            cfg.push(t(" · ".into(), Role::Muted));
        }
        let (word, role) = if fp == "?" {
            ("not started yet", Role::Muted)
        } else if current {
            ("current template", Role::Ok)
        } else {
            ("older pods", Role::Warn)
        };
        cfg.push(t(format!("{fp} ×{n} ({word})"), role));
    }
    lines.push(Line::from(cfg));
    for c in w.conditions.iter().filter(|c| c.status != "True") {
        let why = c
            .message
            .clone()
            .or_else(|| c.reason.clone())
            .unwrap_or_default();
        lines.push(Line::from(t(
            format!("! {} {}: {}", c.type_, c.status, one_line(&why)),
            Role::Warn,
        )));
    }
    let name_w = w
        .pods
        .iter()
        .map(|p| fmt::width(&p.name))
        .max()
        .unwrap_or(3)
        .max(3);
    lines.push(Line::from(t(
        format!(
            "  {}  {}  {:>4}  {:>3}  {}",
            fmt::fit("pod", name_w, Align::Left),
            fmt::fit("status", 14, Align::Left),
            "age",
            "rst",
            "db config"
        ),
        Role::Muted,
    )));
    for p in &w.pods {
        let (status, role) = pod_status(p);
        let cfg = p.db_config.clone().unwrap_or_else(|| "—".into());
        lines.push(Line::from(vec![
            t(if p.updated { "▸ " } else { "  " }.into(), Role::Accent),
            t(fmt::fit(&p.name, name_w, Align::Left), Role::Text),
            t("  ".into(), Role::Text),
            t(fmt::fit(&status, 14, Align::Left), role),
            t(
                format!("  {:>4}  {:>3}  ", age(p.age_secs + since_seen), p.restarts),
                Role::Muted,
            ),
            t(cfg, Role::Text),
        ]));
    }
    lines.into_iter().map(|l| truncate_line(l, width)).collect()
}

fn title_spans(model: &Model, theme: &Theme) -> (Vec<Span<'static>>, Vec<Span<'static>>) {
    let mut title = vec![Span::styled(" Pod rollout ", theme.style(Role::Title))];
    if let Some(k) = model.info.as_ref().and_then(|i| i.kubernetes.as_ref()) {
        title.push(Span::styled(
            format!("─ {}/{} ", k.context, k.namespace),
            theme.style(Role::Muted),
        ));
    }
    let right = match &model.kube.failing {
        Some((since, e)) => vec![Span::styled(
            format!(" ✖ stale since {}: {} ", fmt::clock(*since), one_line(e)),
            theme.style(Role::Error),
        )],
        None if model.kube.last_ok.is_some() => {
            vec![Span::styled(" ● watching ", theme.style(Role::Ok))]
        }
        None => vec![Span::styled(" … connecting ", theme.style(Role::Muted))],
    };
    (title, right)
}

/// Rows the pane wants when it has the room.
pub fn wanted_height(model: &Model, pf: PaneFrame) -> u16 {
    let chrome = if pf == PaneFrame::Boxed { 2 } else { 1 };
    let body: usize = model
        .workloads
        .values()
        .map(|w| 4 + w.pods.len() + w.conditions.iter().filter(|c| c.status != "True").count())
        .sum();
    chrome + body.max(1) as u16
}

pub fn render(frame: &mut Frame, area: Rect, model: &Model, theme: &Theme, pf: PaneFrame) {
    let (title, right) = title_spans(model, theme);
    let block = pane_block(theme, pf, area.width, title, right);
    let inner = block.inner(area);
    frame.render_widget(block, area);
    if inner.is_empty() {
        return;
    }
    let w = inner.width as usize;
    let lines: Vec<Line> = if model.workloads.is_empty() {
        let text = match &model.kube.failing {
            Some((_, e)) => format!("Kubernetes not reachable: {}", one_line(e)),
            None => "Waiting for the first watch event from the Kubernetes API…".into(),
        };
        vec![Line::from(Span::styled(text, theme.style(Role::Muted)))]
    } else if inner.height as usize >= wanted_height(model, pf) as usize - 1 {
        model
            .workloads
            .values()
            .flat_map(|wl| {
                // Snapshots arrive on change only; ages keep counting on the model's clock.
                let since = model
                    .workload_at
                    .get(&wl.deployment)
                    .zip(model.now)
                    .map_or(0, |(at, now)| (now - *at).num_seconds().max(0));
                detail(wl, since, theme, w)
            })
            .collect()
    } else {
        model
            .workloads
            .values()
            .map(|wl| truncate_line(summary(wl, theme), w))
            .collect()
    };
    frame.render_widget(Paragraph::new(lines), inner);
}
