//! The report as Markdown: headings and tables, statements in code blocks.

use std::fmt::Write as _;

use super::fmt::{self, clock, duration_ms, int};
use super::grid::{self, Grid};
use super::model::*;
use super::words;

pub fn render(r: &Report) -> String {
    let mut o = String::new();
    o.push_str("# Cutover migration report\n\n");
    header(&mut o, r);
    freeze(&mut o, r);
    runs(&mut o, r);
    tables(&mut o, r);
    sequences(&mut o, r);
    rollouts(&mut o, r);
    over_time(&mut o, r);
    notes(&mut o, r);
    anomalies(&mut o, r);
    o
}

/// Text for a table cell or a line: no pipe, no newline, no raw HTML.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '|' => out.push_str("\\|"),
            '\n' | '\r' => out.push(' '),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '*' | '`' | '[' | ']' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out
}

fn grid(o: &mut String, g: &Grid) {
    table(o, &g.head, &g.right, &g.rows);
}

fn table(o: &mut String, head: &[&str], right: &[bool], rows: &[Vec<String>]) {
    let _ = writeln!(o, "| {} |", head.join(" | "));
    let align: Vec<&str> = right
        .iter()
        .map(|r| if *r { "---:" } else { "---" })
        .collect();
    let _ = writeln!(o, "|{}|", align.join("|"));
    for row in rows {
        let cells: Vec<String> = row.iter().map(|c| esc(c)).collect();
        let _ = writeln!(o, "| {} |", cells.join(" | "));
    }
    o.push('\n');
}

fn header(o: &mut String, r: &Report) {
    let _ = writeln!(
        o,
        "**Outcome: {}** — {}\n",
        r.outcome.word(),
        esc(&r.outcome.sentence())
    );
    let mut rows: Vec<Vec<String>> = Vec::new();
    if let (Some(a), Some(b)) = (r.first, r.last) {
        rows.push(vec![
            "When".into(),
            format!(
                "{} → {} ({})",
                fmt::datetime(a),
                fmt::datetime(b),
                duration_ms((b - a).num_milliseconds())
            ),
        ]);
    }
    if let Some(op) = &r.operator {
        rows.push(vec!["Operator".into(), words::operator(op)]);
    }
    if let Some(v) = &r.tool_version {
        rows.push(vec!["Recorded by".into(), format!("cutover {v}")]);
    }
    if let Some(m) = &r.mode {
        rows.push(vec!["Mode".into(), m.clone()]);
    }
    if let Some(c) = words::config(r) {
        rows.push(vec!["Config".into(), c]);
    }
    if let Some(v) = &r.format_version {
        rows.push(vec!["Log format".into(), v.to_string()]);
    }
    for (label, e) in [("Source", &r.source), ("Target", &r.target)] {
        if let Some(e) = e {
            rows.push(vec![label.into(), words::endpoint(e)]);
        }
    }
    if let (Some(p), Some(s), Some(slot)) = (&r.publication, &r.subscription, &r.slot) {
        rows.push(vec![
            "Replication".into(),
            format!("publication {p}, subscription {s}, slot {slot}"),
        ]);
    }
    if let Some(k) = &r.kubernetes {
        rows.push(vec!["Kubernetes".into(), words::kube(k)]);
    }
    if let Some(w) = &r.report_written {
        rows.push(vec!["Report".into(), words::report_written(w)]);
    }
    rows.push(vec![
        "Log".into(),
        format!("{} events", int(r.events as i64)),
    ]);
    for (i, s) in r.segments.iter().enumerate() {
        rows.push(vec![format!("Console run {}", i + 1), words::segment(s)]);
    }
    table(o, &["", ""], &[false, false], &rows);
}

fn freeze(o: &mut String, r: &Report) {
    o.push_str("## Write freeze\n\n");
    if r.freezes.is_empty() {
        o.push_str("Writes were never frozen in this session.\n\n");
        return;
    }
    for f in &r.freezes {
        grid(o, &grid::milestones(f));
        let _ = writeln!(o, "**Window:** {}\n", esc(&words::verdict(f)));
    }
    if let Some((_, w)) = &r.witness {
        let _ = writeln!(o, "{}\n", esc(&words::witness(w)));
    }
}

fn runs(o: &mut String, r: &Report) {
    o.push_str("## Checkpoints\n\n");
    if r.runs.is_empty() {
        o.push_str("No checkpoint ran in this session.\n\n");
        return;
    }
    grid(o, &grid::runs(r));
    for run in &r.runs {
        let _ = writeln!(o, "### {}\n", esc(&words::run_head(run)));
        if let Some(why) = &run.auto {
            let _ = writeln!(o, "Started by the console: {}\n", esc(why));
        }
        if let Some((labels, reason)) = &run.overridden {
            let _ = writeln!(
                o,
                "**Override:** guards failing ({}), reason: \"{}\"\n",
                esc(&labels.join(", ")),
                esc(reason)
            );
        }
        if let Some(f) = &run.in_flight {
            let _ = writeln!(o, "**In flight:** {}\n", esc(&words::in_flight(f)));
        }
        for s in &run.steps {
            let result = grid::step_result(s.outcome.as_ref());
            // A step the session end cut off has no time of its own.
            let took = s
                .elapsed_ms
                .map(|ms| format!(" ({})", fmt::duration_f(ms)))
                .unwrap_or_default();
            let _ = writeln!(
                o,
                "{}. **{}**{took} — {}\n",
                s.index + 1,
                esc(&s.title),
                esc(&result)
            );
            if !s.lines.is_empty() {
                o.push_str("   ```\n");
                for l in &s.lines {
                    let _ = writeln!(o, "   {}", l.replace("```", "'''"));
                }
                o.push_str("   ```\n\n");
            }
        }
        for (at, m) in &run.legacy {
            let _ = writeln!(o, "- {} {}", clock(*at), esc(m));
        }
        if !run.legacy.is_empty() {
            o.push('\n');
        }
        if !run.steps_not_run.is_empty() {
            let _ = writeln!(o, "Not run: {}\n", esc(&run.steps_not_run.join(", ")));
        }
        if run.checks_total > 0 {
            let _ = writeln!(
                o,
                "Checks: {} of {} pass\n",
                run.checks_total - run.checks_failed.len(),
                run.checks_total
            );
            for (name, seen, fix) in &run.checks_failed {
                let fix = fix
                    .as_ref()
                    .map(|f| format!(" — fix: {f}"))
                    .unwrap_or_default();
                let _ = writeln!(o, "- ✖ {}", esc(&format!("{name}: {seen}{fix}")));
            }
            if !run.checks_failed.is_empty() {
                o.push('\n');
            }
        }
        if let Some(m) = &run.message {
            let _ = writeln!(o, "Result: {}\n", esc(m));
        }
    }
}

fn tables(o: &mut String, r: &Report) {
    o.push_str("## Row counts and checksums\n\n");
    if r.tables.is_empty() {
        o.push_str("No table was counted or verified.\n\n");
        return;
    }
    grid(o, &grid::tables(r));
    for t in r.tables.iter().filter(|t| !t.differences.is_empty()) {
        let _ = writeln!(o, "Rows that differ in {}:\n", esc(&t.table.to_string()));
        for d in &t.differences {
            let _ = writeln!(o, "- {}", esc(d));
        }
        if t.differences_more > 0 {
            let _ = writeln!(o, "- … and {} more", int(t.differences_more as i64));
        }
        o.push('\n');
    }
    if let Some((at, verdict)) = &r.final_checksums {
        let v = grid::final_verdict(verdict);
        let _ = writeln!(o, "**Final checksums ({}):** {}\n", clock(*at), esc(&v));
    }
}

fn sequences(o: &mut String, r: &Report) {
    o.push_str("## Sequences\n\n");
    if r.sequences.is_empty() {
        o.push_str("No sequence was advanced.\n\n");
        return;
    }
    grid(o, &grid::sequences(r, "at "));
}

fn rollouts(o: &mut String, r: &Report) {
    o.push_str("## Rollout\n\n");
    if r.rollouts.is_empty() {
        o.push_str("No workload was watched.\n\n");
        return;
    }
    for w in &r.rollouts {
        let _ = writeln!(
            o,
            "### deployment/{} in {}\n",
            esc(&w.deployment),
            esc(&w.namespace)
        );
        grid(o, &grid::rollout(w));
    }
}

fn over_time(o: &mut String, r: &Report) {
    o.push_str("## Lag and writes over time\n\n");
    let peak = r
        .lag
        .iter()
        .filter(|p| p.active)
        .filter_map(|p| p.bytes.map(|b| (b, p.at)))
        .max_by_key(|(b, _)| *b);
    match peak {
        Some((b, at)) => {
            let _ = writeln!(
                o,
                "Peak replication lag while the subscription applied: {} at {}.\n",
                fmt::bytes(b),
                clock(at)
            );
        }
        None => o.push_str("No replication lag was sampled.\n\n"),
    }
    if r.runs.is_empty() {
        return;
    }
    let rows: Vec<Vec<String>> = r
        .runs
        .iter()
        .map(|run| {
            let (lag, src, tgt) = words::at_time(r, run.started);
            vec![
                clock(run.started),
                format!(
                    "{}{}",
                    run.key.map(|k| format!("{k} ")).unwrap_or_default(),
                    run.title()
                ),
                lag,
                src,
                tgt,
            ]
        })
        .collect();
    table(
        o,
        &[
            "time",
            "checkpoint starts",
            "lag",
            "source writes/s",
            "target writes/s",
        ],
        &[false, false, true, true, true],
        &rows,
    );
}

fn notes(o: &mut String, r: &Report) {
    o.push_str("## Operator notes\n\n");
    if r.notes.is_empty() {
        o.push_str("None.\n\n");
        return;
    }
    for (at, t) in &r.notes {
        let _ = writeln!(o, "- **{}** {}", clock(*at), esc(t));
    }
    o.push('\n');
}

fn anomalies(o: &mut String, r: &Report) {
    o.push_str("## Anomalies\n\n");
    if r.anomalies.is_empty() {
        o.push_str("None.\n");
        return;
    }
    let rows: Vec<Vec<String>> = r
        .anomalies
        .iter()
        .map(|a| vec![words::anomaly_when(a), a.kind.word().into(), a.text.clone()])
        .collect();
    table(o, &["when", "kind", "what"], &[false, false, false], &rows);
}
