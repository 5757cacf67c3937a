//! The report as one self-contained HTML file: inline CSS (a print
//! stylesheet included), inline SVG charts, no script and nothing fetched.
//! Every piece of text from the log is escaped.

use std::fmt::Write as _;

use super::fmt::{self, clock, duration_ms, int};
use super::grid::{self, Grid};
use super::model::*;
use super::{svg, words};

/// Text for HTML content and attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const CSS: &str = r#"
:root { --fg:#1b1f24; --muted:#57606a; --line:#d0d7de; --bg:#fff; --ok:#1a7f37; --bad:#cf222e; --warn:#9a6700; --freeze:#fff1c2; }
* { box-sizing: border-box; }
body { margin:0; background:#f6f8fa; color:var(--fg); font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif; }
main { max-width:1100px; margin:0 auto; padding:24px 28px 48px; background:var(--bg); }
h1 { font-size:1.6em; margin:0 0 .4em; }
h2 { font-size:1.25em; margin:1.8em 0 .6em; padding-bottom:.25em; border-bottom:1px solid var(--line); }
h3 { font-size:1.02em; margin:1.3em 0 .4em; }
.outcome { font-size:1.15em; padding:.6em .9em; border-radius:6px; border:1px solid var(--line); border-left-width:6px; }
.outcome.ok { border-left-color:var(--ok); } .outcome.bad { border-left-color:var(--bad); } .outcome.open { border-left-color:var(--warn); }
.facts { display:grid; grid-template-columns:max-content 1fr; gap:.2em 1.2em; margin:1em 0; }
.facts dt { color:var(--muted); } .facts dd { margin:0; overflow-wrap:anywhere; }
table { border-collapse:collapse; width:100%; margin:.4em 0 1em; font-size:.93em; }
th, td { text-align:left; padding:.3em .55em; border-bottom:1px solid var(--line); vertical-align:top; }
th { background:#f6f8fa; font-weight:600; }
td.num, th.num { text-align:right; font-variant-numeric:tabular-nums; white-space:nowrap; }
td.time { white-space:nowrap; font-variant-numeric:tabular-nums; }
.ok { color:var(--ok); } .bad { color:var(--bad); } .warn { color:var(--warn); } .muted { color:var(--muted); }
.verdict { font-weight:600; }
pre { background:#f6f8fa; border:1px solid var(--line); border-radius:4px; padding:.5em .7em; margin:.3em 0 .5em; white-space:pre-wrap; overflow-wrap:anywhere; font:12.5px/1.4 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace; }
.run { border:1px solid var(--line); border-radius:6px; padding:.2em .9em .6em; margin:.8em 0; break-inside:avoid; }
.run h3 { margin-top:.6em; }
.run ol { padding-left:1.4em; margin:.3em 0; }
.step-result { margin:.1em 0 .4em; }
figure { margin:.6em 0 1.4em; } figcaption { color:var(--muted); font-size:.9em; }
svg.chart { width:100%; height:auto; display:block; font:12px system-ui,sans-serif; }
svg .grid { stroke:#eaeef2; } svg .baseline { stroke:#8c959f; } svg .tick { stroke:#8c959f; }
svg .xtick, svg .ytick { fill:var(--muted); }
svg .series { fill:none; stroke-width:2; stroke-linejoin:round; }
svg .lag { stroke:#0969da; } svg .lag.inactive { stroke:#8c959f; stroke-dasharray:5 4; }
svg .w-source { stroke:#bc4c00; } svg .w-target { stroke:#1a7f37; }
svg .s0 { stroke:#8250df; } svg .s1 { stroke:#0969da; } svg .s2 { stroke:#bc4c00; } svg .s3 { stroke:#1a7f37; } svg .s4 { stroke:#cf222e; } svg .s5 { stroke:#57606a; }
svg .step.desired { stroke-width:1.2; stroke-dasharray:4 3; opacity:.7; }
svg .freeze { fill:var(--freeze); stroke:#d4a72c; stroke-width:.8; }
svg .freeze-label, svg .budget-label { fill:var(--warn); font-weight:600; }
svg .budget { stroke:var(--bad); stroke-dasharray:3 3; }
svg .mark line { stroke:#6e7781; stroke-width:1; stroke-dasharray:2 2; }
svg .mark.failed line { stroke:var(--bad); } svg .mark-label { fill:var(--fg); font-weight:700; }
svg .mark.failed .mark-label { fill:var(--bad); }
svg .legend text { fill:var(--fg); }
.keys { columns:2 22em; font-size:.9em; padding-left:1.2em; margin:.2em 0 1em; }
footer { margin-top:2.5em; color:var(--muted); font-size:.85em; }
@media print {
  @page { margin:14mm 12mm; }
  body { background:#fff; font-size:10.5pt; }
  main { max-width:none; padding:0; }
  h2 { break-after:avoid; } h3 { break-after:avoid; }
  table, figure, pre, .run { break-inside:avoid; }
  tr { break-inside:avoid; }
  * { -webkit-print-color-adjust:exact; print-color-adjust:exact; }
}
"#;

pub fn render(r: &Report) -> String {
    page(
        &format!("Cutover report — {} — {}", r.outcome.word(), day(r)),
        &body(r),
    )
}

fn day(r: &Report) -> String {
    r.first
        .map(|t| t.format("%Y-%m-%d").to_string())
        .unwrap_or_default()
}

/// One self-contained page around `main`'s content.
pub fn page(title: &str, main: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{}</title>\n<style>{CSS}</style>\n</head>\n<body>\n<main>\n{main}\
         </main>\n</body>\n</html>\n",
        esc(title)
    )
}

/// One database's report, the page's content.
pub fn body(r: &Report) -> String {
    let mut o = String::with_capacity(64 * 1024);
    header(&mut o, r);
    freeze(&mut o, r);
    charts(&mut o, r);
    runs(&mut o, r);
    tables(&mut o, r);
    sequences(&mut o, r);
    rollouts(&mut o, r);
    notes(&mut o, r);
    anomalies(&mut o, r);
    let _ = writeln!(
        o,
        "<footer>Built from the session log alone ({} events); times in UTC. The log holds no \
         password, and the values a switch writes only as sha256 fingerprints.</footer>",
        int(r.events as i64)
    );
    o
}

/// A table: `right` marks numeric columns; cells are escaped here.
fn grid(o: &mut String, g: &Grid) {
    table(o, &g.head, &g.right, &g.rows);
}

fn table(o: &mut String, head: &[&str], right: &[bool], rows: &[Vec<String>]) {
    o.push_str("<table><thead><tr>");
    for (h, r) in head.iter().zip(right) {
        let _ = write!(
            o,
            "<th{}>{}</th>",
            if *r { " class=\"num\"" } else { "" },
            esc(h)
        );
    }
    o.push_str("</tr></thead><tbody>");
    for row in rows {
        o.push_str("<tr>");
        for (c, r) in row.iter().zip(right) {
            let class = if *r {
                " class=\"num\"".to_string()
            } else if is_clock(c) {
                " class=\"time\"".to_string()
            } else if !tone(c).is_empty() {
                format!(" class=\"{}\"", tone(c))
            } else {
                String::new()
            };
            let _ = write!(o, "<td{class}>{}</td>", esc(c));
        }
        o.push_str("</tr>");
    }
    o.push_str("</tbody></table>\n");
}

fn is_clock(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 8 && b[2] == b':' && b[5] == b':' && b[..2].iter().all(u8::is_ascii_digit)
}

/// The class a status word reads in.
fn tone(s: &str) -> &'static str {
    if s.starts_with('✔') {
        "ok"
    } else if s.starts_with('✖') {
        "bad"
    } else if s.starts_with('◌') || s.starts_with('…') {
        "warn"
    } else {
        ""
    }
}

fn header(o: &mut String, r: &Report) {
    o.push_str("<header>\n<h1>Cutover migration report</h1>\n");
    let (class, symbol) = match r.outcome {
        Outcome::Completed { .. } => ("ok", "✔"),
        Outcome::RolledBack { .. } | Outcome::Unfinished { .. } => ("open", "◌"),
        Outcome::Failed { .. } => ("bad", "✖"),
    };
    let _ = writeln!(
        o,
        "<p class=\"outcome {class}\" id=\"outcome\"><strong>{symbol} {}</strong> — {}</p>",
        esc(r.outcome.word()),
        esc(&r.outcome.sentence())
    );
    o.push_str("<dl class=\"facts\">\n");
    let mut fact = |k: &str, v: String| {
        let _ = writeln!(o, "<dt>{}</dt><dd>{}</dd>", esc(k), esc(&v));
    };
    if let (Some(a), Some(b)) = (r.first, r.last) {
        fact(
            "When",
            format!(
                "{} → {} ({})",
                fmt::datetime(a),
                fmt::datetime(b),
                duration_ms((b - a).num_milliseconds())
            ),
        );
    }
    if let Some(op) = &r.operator {
        fact("Operator", words::operator(op));
    }
    let mut tool = Vec::new();
    if let Some(v) = &r.tool_version {
        tool.push(format!("cutover {v}"));
    }
    if let Some(m) = &r.mode {
        tool.push(format!("{m} session"));
    }
    if let Some(c) = words::config(r) {
        tool.push(format!("config {c}"));
    }
    if let Some(v) = &r.format_version {
        tool.push(format!("log format {v}"));
    }
    if !tool.is_empty() {
        fact("Recorded by", tool.join(", "));
    }
    for (label, e) in [("Source", &r.source), ("Target", &r.target)] {
        if let Some(e) = e {
            fact(label, words::endpoint(e));
        }
    }
    if let (Some(p), Some(s), Some(slot)) = (&r.publication, &r.subscription, &r.slot) {
        fact(
            "Replication",
            format!("publication {p}, subscription {s}, slot {slot}"),
        );
    }
    if let Some(k) = &r.kubernetes {
        fact("Kubernetes", words::kube(k));
    }
    if let Some(w) = &r.report_written {
        fact("Report", words::report_written(w));
    }
    for (i, s) in r.segments.iter().enumerate() {
        fact(&format!("Console run {}", i + 1), words::segment(s));
    }
    o.push_str("</dl>\n</header>\n");
}

fn freeze(o: &mut String, r: &Report) {
    o.push_str("<section id=\"freeze\">\n<h2>Write freeze</h2>\n");
    if r.freezes.is_empty() {
        o.push_str("<p>Writes were never frozen in this session.</p>\n");
    }
    for f in &r.freezes {
        grid(o, &grid::milestones(f));
        let v = words::verdict(f);
        let _ = writeln!(
            o,
            "<p class=\"verdict {}\">Window: {}</p>",
            tone(&v),
            esc(&v)
        );
    }
    if let Some((_, w)) = &r.witness {
        let _ = writeln!(o, "<p>{}</p>", esc(&words::witness(w)));
    }
    o.push_str("</section>\n");
}

fn charts(o: &mut String, r: &Report) {
    o.push_str("<section id=\"charts\">\n<h2>Over time</h2>\n");
    let mut any = false;
    for (chart, caption) in [
        (
            svg::lag(r),
            "Replication lag of the subscription's slot (bytes behind the source's WAL). \
             Vertical lines: checkpoint runs, labelled with their key; shaded: the write freeze.",
        ),
        (
            svg::writes(r),
            "Rows written per second on each side, from each server's own statistics.",
        ),
        (
            svg::rollout(r),
            "Ready pods of each workload (desired dashed) as the Kubernetes watch saw them.",
        ),
    ] {
        if let Some(svg) = chart {
            any = true;
            let _ = writeln!(
                o,
                "<figure>{svg}<figcaption>{}</figcaption></figure>",
                esc(caption)
            );
        }
    }
    if !any {
        o.push_str("<p>Nothing was sampled over time.</p>\n");
    }
    if !r.runs.is_empty() {
        o.push_str("<ul class=\"keys\">");
        for run in &r.runs {
            let _ = write!(
                o,
                "<li><strong>{}</strong> {} {} <span class=\"{}\">{}</span></li>",
                esc(run.key.unwrap_or("•")),
                esc(&clock(run.started)),
                esc(run.title()),
                tone(run.result.word()),
                esc(run.result.word())
            );
        }
        o.push_str("</ul>\n");
    }
    o.push_str("</section>\n");
}

fn runs(o: &mut String, r: &Report) {
    o.push_str("<section id=\"checkpoints\">\n<h2>Checkpoints</h2>\n");
    if r.runs.is_empty() {
        o.push_str("<p>No checkpoint ran in this session.</p>\n</section>\n");
        return;
    }
    grid(o, &grid::runs(r));
    for run in &r.runs {
        let _ = writeln!(
            o,
            "<div class=\"run\" id=\"run-{}\"><h3 class=\"{}\">{}</h3>",
            run.id,
            tone(run.result.word()),
            esc(&words::run_head(run))
        );
        if let Some(why) = &run.auto {
            let _ = writeln!(o, "<p>Started by the console: {}</p>", esc(why));
        }
        if let Some((labels, reason)) = &run.overridden {
            let _ = writeln!(
                o,
                "<p class=\"bad\"><strong>Override:</strong> guards failing ({}), reason: “{}”</p>",
                esc(&labels.join(", ")),
                esc(reason)
            );
        }
        if let Some(f) = &run.in_flight {
            let _ = writeln!(
                o,
                "<p class=\"warn\"><strong>In flight:</strong> {}</p>",
                esc(&words::in_flight(f))
            );
        }
        if !run.steps.is_empty() {
            o.push_str("<ol>");
            for s in &run.steps {
                let result = grid::step_result(s.outcome.as_ref());
                let took = s.elapsed_ms.map(fmt::duration_f).unwrap_or_default();
                let _ = write!(
                    o,
                    "<li value=\"{}\"><strong>{}</strong> <span class=\"muted\">{}</span>\
                     <pre>{}</pre><p class=\"step-result {}\">{}</p></li>",
                    s.index + 1,
                    esc(&s.title),
                    esc(&took),
                    esc(&s.lines.join("\n")),
                    tone(&result),
                    esc(&result)
                );
            }
            o.push_str("</ol>\n");
        }
        for (at, m) in &run.legacy {
            let _ = writeln!(o, "<p>{} {}</p>", esc(&clock(*at)), esc(m));
        }
        if !run.steps_not_run.is_empty() {
            let _ = writeln!(
                o,
                "<p class=\"warn\">Not run: {}</p>",
                esc(&run.steps_not_run.join(", "))
            );
        }
        if run.checks_total > 0 {
            let _ = write!(
                o,
                "<p>Checks: {} of {} pass</p>",
                run.checks_total - run.checks_failed.len(),
                run.checks_total
            );
            if !run.checks_failed.is_empty() {
                o.push_str("<ul>");
                for (name, seen, fix) in &run.checks_failed {
                    let fix = fix
                        .as_ref()
                        .map(|f| format!(" — fix: {f}"))
                        .unwrap_or_default();
                    let _ = write!(
                        o,
                        "<li class=\"bad\">✖ {}</li>",
                        esc(&format!("{name}: {seen}{fix}"))
                    );
                }
                o.push_str("</ul>");
            }
        }
        if let Some(m) = &run.message {
            let _ = writeln!(o, "<p><strong>Result:</strong> {}</p>", esc(m));
        }
        o.push_str("</div>\n");
    }
    o.push_str("</section>\n");
}

fn tables(o: &mut String, r: &Report) {
    o.push_str("<section id=\"tables\">\n<h2>Row counts and checksums</h2>\n");
    if r.tables.is_empty() {
        o.push_str("<p>No table was counted or verified.</p>\n");
    } else {
        grid(o, &grid::tables(r));
    }
    for t in r.tables.iter().filter(|t| !t.differences.is_empty()) {
        let _ = write!(
            o,
            "<h3>Rows that differ in {}</h3><ul>",
            esc(&t.table.to_string())
        );
        for d in &t.differences {
            let _ = write!(o, "<li>{}</li>", esc(d));
        }
        if t.differences_more > 0 {
            let _ = write!(o, "<li>… and {} more</li>", int(t.differences_more as i64));
        }
        o.push_str("</ul>\n");
    }
    if let Some((at, verdict)) = &r.final_checksums {
        let v = grid::final_verdict(verdict);
        let _ = writeln!(
            o,
            "<p class=\"{}\"><strong>Final checksums ({}):</strong> {}</p>",
            tone(&v),
            esc(&clock(*at)),
            esc(&v)
        );
    }
    o.push_str("</section>\n");
}

fn sequences(o: &mut String, r: &Report) {
    o.push_str("<section id=\"sequences\">\n<h2>Sequences</h2>\n");
    if r.sequences.is_empty() {
        o.push_str("<p>No sequence was advanced.</p>\n");
    } else {
        grid(o, &grid::sequences(r, "at "));
    }
    o.push_str("</section>\n");
}

fn rollouts(o: &mut String, r: &Report) {
    o.push_str("<section id=\"rollout\">\n<h2>Rollout</h2>\n");
    if r.rollouts.is_empty() {
        o.push_str("<p>No workload was watched.</p>\n");
    }
    for w in &r.rollouts {
        let _ = writeln!(
            o,
            "<h3>deployment/{} in {}</h3>",
            esc(&w.deployment),
            esc(&w.namespace)
        );
        grid(o, &grid::rollout(w));
    }
    o.push_str("</section>\n");
}

fn notes(o: &mut String, r: &Report) {
    o.push_str("<section id=\"notes\">\n<h2>Operator notes</h2>\n");
    if r.notes.is_empty() {
        o.push_str("<p>None.</p>\n");
    } else {
        let rows: Vec<Vec<String>> = r
            .notes
            .iter()
            .map(|(at, t)| vec![clock(*at), t.clone()])
            .collect();
        table(o, &["time", "note"], &[false, false], &rows);
    }
    o.push_str("</section>\n");
}

fn anomalies(o: &mut String, r: &Report) {
    o.push_str("<section id=\"anomalies\">\n<h2>Anomalies</h2>\n");
    if r.anomalies.is_empty() {
        o.push_str("<p>None.</p>\n");
    } else {
        let rows: Vec<Vec<String>> = r
            .anomalies
            .iter()
            .map(|a| vec![words::anomaly_when(a), a.kind.word().into(), a.text.clone()])
            .collect();
        table(o, &["when", "kind", "what"], &[false, false, false], &rows);
    }
    o.push_str("</section>\n");
}
