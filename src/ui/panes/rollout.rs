//! The application side: each workload's rollout, and which database config
//! each pod started with — the pane that shows the switch actually happened.

use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use ratatui::Frame;

use crate::kube::{EventSnapshot, PodSnapshot, RolloutState, WorkloadSnapshot};
use crate::model::{DbConfigs, DbSide, Model};
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

/// Fingerprints of the db config the pods run with, how many pods each, and
/// whether a pod of the current template has it.
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

/// The part of an event message worth the room: an admission refusal's
/// reason (`Error creating: pods "x-" is forbidden: exceeded quota: …` →
/// `exceeded quota: …`), else the whole message on one line.
pub fn short_message(message: &str) -> String {
    let m = one_line(message);
    match m.split_once(" is forbidden: ") {
        Some((_, why)) if !why.trim().is_empty() => why.trim().to_string(),
        _ => m.trim().to_string(),
    }
}

/// `⚠ FailedCreate replicaset/app-7d9f: exceeded quota: … ×3` in `width`
/// columns: the message gives way first, so symbol, reason, object and
/// count stay readable.
pub fn warning_line(e: &EventSnapshot, theme: &Theme, width: usize) -> Line<'static> {
    let head = format!("⚠ {} {}: ", e.reason, e.object);
    let tail = if e.count > 1 {
        format!(" ×{}", e.count)
    } else {
        String::new()
    };
    let room = width.saturating_sub(fmt::width(&head) + fmt::width(&tail));
    let line = if room >= 8 {
        format!(
            "{head}{}{tail}",
            fmt::truncate(&short_message(&e.message), room)
        )
    } else {
        format!("⚠ {} {}{tail}", e.reason, e.object)
    };
    truncate_line(
        Line::from(Span::styled(line, theme.style(Role::Warn))),
        width,
    )
}

/// Columns the summary keeps before a warning marker may take the rest.
const SUMMARY_MIN: usize = 40;

/// [`summary`] in `width` columns, ending in `⚠ <reason>` of the newest
/// warning when there is room: the state text at the end gives way to the
/// marker, as long as [`SUMMARY_MIN`] columns of the summary stay.
pub fn summary_fitted(
    w: &WorkloadSnapshot,
    db: &DbConfigs,
    theme: &Theme,
    width: usize,
) -> Line<'static> {
    let line = summary(w, db, theme);
    let Some(e) = w.warnings.first() else {
        return truncate_line(line, width);
    };
    let marker = format!(" ⚠ {}", e.reason);
    let keep = width.saturating_sub(fmt::width(&marker));
    if keep < SUMMARY_MIN.min(line.width()) {
        return truncate_line(line, width);
    }
    let mut line = truncate_line(line, keep);
    line.spans
        .push(Span::styled(marker, theme.style(Role::Warn)));
    line
}

/// A fingerprint's database in words, and its role: a config that is not
/// what the key holds now warns (the pods have not restarted since it
/// changed), as does one that is neither known value.
fn db_word(fp: &str, db: &DbConfigs) -> (&'static str, Role) {
    let side = db.side(fp);
    let behind = db.key.as_ref().is_some_and(|(_, key)| key != fp);
    let role = match side {
        DbSide::Unknown => Role::Warn,
        _ if behind => Role::Warn,
        DbSide::New => Role::Ok,
        DbSide::Old => Role::Text,
    };
    (side.word(), role)
}

/// Running pods (not terminating, config known) whose config is not what
/// the key holds now, by fingerprint.
fn not_restarted<'a>(w: &'a WorkloadSnapshot, key: &str) -> Vec<(&'a str, usize)> {
    let mut out: Vec<(&str, usize)> = Vec::new();
    for fp in w
        .pods
        .iter()
        .filter(|p| !p.terminating)
        .filter_map(|p| p.db_config.as_deref())
        .filter(|fp| *fp != key)
    {
        match out.iter_mut().find(|(f, _)| *f == fp) {
            Some((_, n)) => *n += 1,
            None => out.push((fp, 1)),
        }
    }
    out
}

fn pods(n: usize) -> String {
    if n == 1 {
        "1 pod".into()
    } else {
        format!("{n} pods")
    }
}

/// What the config object holds now against what the running pods use:
/// "config switched, pods not restarted yet" while they differ. None while
/// the key's value is not known.
pub fn config_line(w: &WorkloadSnapshot, db: &DbConfigs) -> Option<(String, Role)> {
    let (at, key) = db.key.as_ref()?;
    // The time is when the value was read or written: it holds as of then.
    let now = format!("now {} {key} ({})", db.side(key).word(), fmt::clock(*at));
    let behind = not_restarted(w, key);
    if behind.is_empty() {
        let running = w
            .pods
            .iter()
            .any(|p| !p.terminating && p.db_config.is_some());
        return Some(if running {
            (
                format!("config {now} · every running pod uses it"),
                Role::Ok,
            )
        } else {
            (format!("config {now}"), Role::Muted)
        });
    }
    let head = match (
        db.side(key),
        behind.iter().any(|(fp, _)| db.side(fp) == DbSide::New),
    ) {
        (DbSide::New, _) => "config switched, pods not restarted yet",
        (DbSide::Old, true) => "config on the old db, pods not restarted yet",
        _ => "config differs from what running pods use",
    };
    let on: Vec<String> = behind
        .iter()
        .map(|(fp, n)| format!("{} on {} {fp}", pods(*n), db.side(fp).word()))
        .collect();
    Some((format!("! {head}: {now} · {}", on.join(", ")), Role::Warn))
}

/// One line for a workload, for narrow screens.
pub fn summary(w: &WorkloadSnapshot, db: &DbConfigs, theme: &Theme) -> Line<'static> {
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
    // First, so a narrow line keeps it: the config moved, pods did not.
    if let Some(behind) = db.key.as_ref().map(|(_, k)| not_restarted(w, k)) {
        if !behind.is_empty() {
            let n = behind.iter().map(|(_, n)| n).sum();
            let text = format!("config switched: {} not restarted · ", pods(n));
            spans.push(Span::styled(text, theme.style(Role::Warn)));
        }
    }
    for (fp, n, _) in configs(w) {
        let (text, role) = match fp.as_str() {
            "?" => (format!("starting {n} "), Role::Muted),
            _ => {
                let (word, role) = db_word(&fp, db);
                (format!("{word} {fp}×{n} "), role)
            }
        };
        spans.push(Span::styled(text, theme.style(role)));
    }
    spans.push(Span::styled(state, theme.style(role)));
    Line::from(spans)
}

fn detail(
    w: &WorkloadSnapshot,
    db: &DbConfigs,
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
    if let Some(e) = w.warnings.first() {
        lines.push(warning_line(e, theme, width));
    }
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
        if fp == "?" {
            cfg.push(t(format!("? ×{n} (starting)"), Role::Muted));
            continue;
        }
        let (db_word, role) = db_word(&fp, db);
        let which = if current {
            "current template"
        } else {
            "older pods"
        };
        cfg.push(t(format!("{db_word} {fp} ×{n} ({which})"), role));
    }
    lines.push(Line::from(cfg));
    if let Some((text, role)) = config_line(w, db) {
        lines.push(Line::from(t(text, role)));
    }
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
        let cfg = p
            .db_config
            .as_deref()
            .map_or_else(|| "—".into(), |fp| format!("{fp} {}", db.side(fp).word()));
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
    // The reason goes in the body: a title too long for the border is dropped.
    let right = match &crate::model::kube_stale(model) {
        Some((since, _)) => vec![Span::styled(
            format!(" ✖ stale since {} ", fmt::clock(*since)),
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
    let config = usize::from(crate::model::db_configs(model).key.is_some());
    let body: usize = model
        .workloads
        .values()
        .map(|w| {
            4 + config
                + w.pods.len()
                + w.conditions.iter().filter(|c| c.status != "True").count()
                + usize::from(!w.warnings.is_empty())
        })
        .sum();
    let witness = usize::from(model.witness.is_some());
    let users = usize::from(
        model
            .config_users
            .last
            .as_ref()
            .is_some_and(|(_, u)| !u.is_empty()),
    );
    chrome + (body.max(1) + witness + users) as u16
}

/// Every workload found using the config object, in one line: those the
/// config does not list are watched only through this search, and each
/// says how many of its pods are from before the switch.
pub fn users_line(model: &Model, theme: &Theme) -> Option<Line<'static>> {
    let (home, users) = model.config_users.last.as_ref()?;
    if users.is_empty() {
        return None;
    }
    let obj = model
        .info
        .as_ref()?
        .kubernetes
        .as_ref()?
        .config_object
        .clone()?;
    let muted = theme.style(Role::Muted);
    let mut spans = vec![Span::styled(format!("uses {obj}  "), muted)];
    for (i, u) in users.iter().enumerate() {
        if i > 0 {
            spans.push(Span::styled(" · ", muted));
        }
        spans.push(Span::styled(u.describe(home), theme.style(Role::Text)));
        let n = u.pods.len();
        let detail = if u.kind == "cronjob" {
            " (next run)".to_string()
        } else {
            format!(" {}", pods(n))
        };
        spans.push(Span::styled(detail, muted));
        let old = crate::runbook::checkpoints::app_on_target::switch_time(model)
            .map_or(0, |at| u.pods_before(at).len());
        if u.namespace != *home {
            spans.push(Span::styled(" ✖ not switched", theme.style(Role::Error)));
        } else if old > 0 {
            spans.push(Span::styled(
                format!(" ✖ {old} before the switch"),
                theme.style(Role::Error),
            ));
        }
    }
    if let Some((since, _)) = &model.config_users.failing {
        spans.push(Span::styled(
            format!("  search failing since {}", crate::ui::fmt::clock(*since)),
            theme.style(Role::Warn),
        ));
    }
    Some(Line::from(spans))
}

/// On a lab, the app pods' own figures: the rehearsal's witness of what the
/// cutover cost them. Old figures say so (the app stopped writing them).
pub fn witness_line(model: &Model, theme: &Theme) -> Option<Line<'static>> {
    let (at, w) = model.witness.as_ref()?;
    let muted = theme.style(Role::Muted);
    let mut spans = vec![
        Span::styled("lab app  ", muted),
        Span::styled(format!("{:.0} ok/s", w.ok_per_sec), theme.style(Role::Text)),
        Span::styled(" · ", muted),
        Span::styled(
            format!("{:.0} failed/s", w.failed_per_sec),
            theme.style(if w.failed_per_sec > 0.0 {
                Role::Error
            } else {
                Role::Text
            }),
        ),
    ];
    match (w.failing_since, w.failure_window_ms) {
        (Some(since), _) => spans.push(Span::styled(
            format!(" · writes failing since {}", crate::ui::fmt::clock(since)),
            theme.style(Role::Error),
        )),
        (None, Some(ms)) => spans.push(Span::styled(
            format!(
                " · failure window {:.1} s, {} failed",
                ms as f64 / 1000.0,
                crate::ui::fmt::int(w.failed as i64)
            ),
            theme.style(Role::Warn),
        )),
        (None, None) => {}
    }
    if let Some(ms) = w.source_to_target_ms {
        spans.push(Span::styled(
            format!(
                " · last ack source → first ack target {:.1} s",
                ms as f64 / 1000.0
            ),
            muted,
        ));
    }
    if model.now.is_some_and(|now| (now - *at).num_seconds() > 5) {
        spans.push(Span::styled(
            format!("  as of {}", crate::ui::fmt::clock(*at)),
            theme.style(Role::Warn),
        ));
    }
    Some(Line::from(spans))
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
    let stale = crate::model::kube_stale(model);
    let db = crate::model::db_configs(model);
    let mut lines: Vec<Line> = if model.workloads.is_empty() {
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
                detail(wl, &db, since, theme, w)
            })
            .collect()
    } else {
        model
            .workloads
            .values()
            .map(|wl| summary_fitted(wl, &db, theme, w))
            .collect()
    };
    // Under the workloads: where the pane is one line high, they come first.
    if let Some(line) = users_line(model, theme) {
        lines.push(truncate_line(line, w));
    }
    if let Some(line) = witness_line(model, theme) {
        lines.push(truncate_line(line, w));
    }
    // What is shown below is as of the last answer: say why first.
    if let (Some((_, why)), false) = (&stale, model.workloads.is_empty()) {
        let line = Line::from(Span::styled(
            format!("✖ not current: {}", one_line(why)),
            theme.style(Role::Error),
        ));
        lines.insert(0, truncate_line(line, w));
    }
    frame.render_widget(Paragraph::new(lines), inner);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(l: &Line) -> String {
        l.spans.iter().map(|s| s.content.as_ref()).collect()
    }

    fn workload(warnings: Vec<EventSnapshot>) -> WorkloadSnapshot {
        serde_json::from_value(serde_json::json!({
            "namespace": "shop", "deployment": "app", "found": true,
            "generation": 2, "observed_generation": 2,
            "desired": 3, "updated": 0, "ready": 3, "available": 3, "unavailable": 0,
            "state": {"Progressing": {"message": "0 out of 3 new replicas have been updated"}},
            "conditions": [], "replicasets": [], "pods": [],
            "pods_by_db_config": {"a1f0e9c3": 3}, "warnings": warnings,
        }))
        .unwrap()
    }

    fn quota(count: i32) -> EventSnapshot {
        EventSnapshot {
            reason: "FailedCreate".into(),
            message: "Error creating: pods \"app-7d9f5c-\" is forbidden: exceeded quota: \
                      compute-resources, requested: pods=1, used: pods=3, limited: pods=3"
                .into(),
            object: "replicaset/app-7d9f5c".into(),
            count,
            last_seen: "2026-01-01T12:00:00Z".into(),
        }
    }

    #[test]
    fn warning_line_keeps_symbol_reason_object_and_count() {
        let theme = Theme::mono();
        let wide = text(&warning_line(&quota(3), &theme, 200));
        assert_eq!(
            wide,
            "⚠ FailedCreate replicaset/app-7d9f5c: exceeded quota: compute-resources, \
             requested: pods=1, used: pods=3, limited: pods=3 ×3"
        );
        let narrow = text(&warning_line(&quota(3), &theme, 60));
        assert_eq!(fmt::width(&narrow), 60, "{narrow}");
        assert!(
            narrow.starts_with("⚠ FailedCreate replicaset/app-7d9f5c: exceeded quota"),
            "{narrow}"
        );
        assert!(narrow.ends_with("… ×3"), "{narrow}");
        let once = text(&warning_line(&quota(1), &theme, 200));
        assert!(!once.contains('×'), "{once}");
        let tiny = text(&warning_line(&quota(3), &theme, 20));
        assert!(
            fmt::width(&tiny) <= 20 && tiny.starts_with("⚠ FailedCreate"),
            "{tiny}"
        );
    }

    /// The session read the key before any switch: it holds the old value.
    fn before_the_switch() -> DbConfigs {
        DbConfigs {
            old: Some("a1f0e9c3".into()),
            new: Some("b7e1c2d4".into()),
            key: None,
        }
    }

    #[test]
    fn summary_gets_a_marker_when_it_fits() {
        let theme = Theme::mono();
        let w = workload(vec![quota(3)]);
        let db = before_the_switch();
        let plain = text(&summary(&w, &db, &theme));
        let fitted = text(&summary_fitted(&w, &db, &theme, 80));
        assert_eq!(fmt::width(&fitted), 80, "{fitted}");
        assert!(
            fitted.starts_with("app 3/3 ready [░░░░░] old db a1f0e9c3×3"),
            "{fitted}"
        );
        assert!(fitted.ends_with("… ⚠ FailedCreate"), "{fitted}");
        let wide = text(&summary_fitted(&w, &db, &theme, 200));
        assert_eq!(wide, format!("{plain} ⚠ FailedCreate"));
        let tight = text(&summary_fitted(&w, &db, &theme, 50));
        assert!(!tight.contains('⚠'), "{tight}");
        assert_eq!(fmt::width(&tight), 50);
        let none = text(&summary_fitted(&workload(vec![]), &db, &theme, 80));
        assert!(!none.contains('⚠'), "{none}");
    }

    #[test]
    fn short_message_keeps_the_reason_of_a_refusal() {
        assert_eq!(
            short_message(&quota(1).message).split(':').next(),
            Some("exceeded quota")
        );
        assert_eq!(
            short_message("Back-off restarting\nfailed container"),
            "Back-off restarting failed container"
        );
    }

    fn draw(model: &Model, width: u16, height: u16) -> String {
        let mut term =
            ratatui::Terminal::new(ratatui::backend::TestBackend::new(width, height)).unwrap();
        term.draw(|f| render(f, f.area(), model, &Theme::mono(), PaneFrame::Boxed))
            .unwrap();
        let buf = term.backend().buffer().clone();
        (0..height)
            .map(|y| {
                (0..width)
                    .map(|x| buf[(x, y)].symbol().to_string())
                    .collect::<String>()
                    .trim_end()
                    .to_string()
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn pane_shows_the_newest_warning_under_its_workload() {
        let mut model = Model::default();
        let mut w = workload(vec![quota(3)]);
        w.warnings.push(EventSnapshot {
            reason: "BackOff".into(),
            count: 1,
            ..quota(1)
        });
        model.workloads.insert("app".into(), w);
        let tall = draw(&model, 100, 12);
        let lines: Vec<&str> = tall.lines().collect();
        assert!(lines[1].contains("app  desired 3"), "{tall}");
        assert!(
            lines[2].contains("⚠ FailedCreate replicaset/app-7d9f5c: exceeded quota"),
            "{tall}"
        );
        assert!(lines[2].ends_with("… ×3│"), "{tall}");
        assert!(!tall.contains("BackOff"), "only the newest: {tall}");
        // Too short for the detail: one line per workload, with the marker.
        let short = draw(&model, 80, 3);
        assert!(
            short.lines().nth(1).unwrap().contains("⚠ FailedCreate"),
            "{short}"
        );
    }

    #[test]
    fn the_lab_witness_says_the_failure_window_and_when_it_is_old() {
        use crate::session::AppWitness;
        let t = |s: i64| chrono::DateTime::from_timestamp(1_700_000_000 + s, 0).unwrap();
        let mut model = Model {
            now: Some(t(1)),
            ..Model::default()
        };
        assert!(witness_line(&model, &Theme::mono()).is_none(), "not a lab");
        let mut w = AppWitness {
            ok_per_sec: 0.0,
            failed_per_sec: 498.6,
            failed: 1200,
            failure_window_ms: None,
            failing_since: Some(t(-2)),
            source_to_target_ms: None,
        };
        model.witness = Some((t(1), w.clone()));
        let line = text(&witness_line(&model, &Theme::mono()).unwrap());
        assert_eq!(
            line,
            "lab app  0 ok/s · 499 failed/s · writes failing since 22:13:18"
        );
        w.ok_per_sec = 501.0;
        w.failed_per_sec = 0.0;
        w.failing_since = None;
        w.failure_window_ms = Some(2_664);
        w.source_to_target_ms = Some(2_600);
        model.witness = Some((t(1), w));
        model.now = Some(t(20));
        let line = text(&witness_line(&model, &Theme::mono()).unwrap());
        assert_eq!(
            line,
            "lab app  501 ok/s · 0 failed/s · failure window 2.7 s, 1,200 failed · last ack \
             source → first ack target 2.6 s  as of 22:13:21"
        );
    }
}
