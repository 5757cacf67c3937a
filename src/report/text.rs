//! The report as aligned plain text, 80 columns: for a terminal or an email.

use super::fmt::{self, clock, clock_ms, duration_ms, int, pad, wrap, WIDTH};
use super::grid::{self, Grid};
use super::model::*;
use super::words::*;

pub fn render(r: &Report) -> String {
    let mut o = Out::default();
    o.line("CUTOVER MIGRATION REPORT");
    o.line(&"=".repeat(24));
    o.blank();
    header(&mut o, r);
    freeze(&mut o, r);
    runs(&mut o, r);
    tables(&mut o, r);
    sequences(&mut o, r);
    rollouts(&mut o, r);
    over_time(&mut o, r);
    notes(&mut o, r);
    anomalies(&mut o, r);
    o.text
}

#[derive(Default)]
struct Out {
    text: String,
}

impl Out {
    fn line(&mut self, s: &str) {
        self.text.push_str(s.trim_end());
        self.text.push('\n');
    }

    fn blank(&mut self) {
        self.text.push('\n');
    }

    /// `text` wrapped after `first`, continued under `rest`.
    fn wrapped(&mut self, first: &str, rest: &str, text: &str) {
        for l in wrap(text, WIDTH, first, rest) {
            self.line(&l);
        }
    }

    /// `label` in a 12-column margin, `text` wrapped beside it.
    fn field(&mut self, label: &str, text: &str) {
        self.wrapped(&pad(label, 12, false), &" ".repeat(12), text);
    }

    fn section(&mut self, title: &str) {
        self.blank();
        self.line(title);
        self.line(&"-".repeat(fmt::width(title)));
    }

    /// Rows of cells, each column as wide as its widest cell; the last
    /// column is wrapped to what is left of the width.
    fn grid(&mut self, g: &Grid) {
        self.table(&g.head, &g.right, &g.rows);
    }

    fn table(&mut self, head: &[&str], right: &[bool], rows: &[Vec<String>]) {
        let n = head.len();
        let mut w: Vec<usize> = head.iter().map(|h| fmt::width(h)).collect();
        for row in rows {
            for (i, c) in row.iter().enumerate().take(n - 1) {
                w[i] = w[i].max(fmt::width(c));
            }
        }
        let indent = "  ";
        let lead: usize = indent.len() + w[..n - 1].iter().map(|x| x + 2).sum::<usize>();
        let cells = |row: &[String]| -> String {
            let mut s = indent.to_string();
            for (i, c) in row.iter().enumerate().take(n - 1) {
                s.push_str(&pad(c, w[i], right[i]));
                s.push_str("  ");
            }
            s
        };
        let head: Vec<String> = head.iter().map(|h| h.to_string()).collect();
        self.line(&format!("{}{}", cells(&head), head[n - 1]));
        for row in rows {
            let first = cells(row);
            let last = row.get(n - 1).map(String::as_str).unwrap_or("");
            if lead + 12 > WIDTH {
                // No room beside: the last cell goes under the row.
                self.line(&first);
                self.wrapped("      ", "      ", last);
            } else {
                self.wrapped(&first, &" ".repeat(lead), last);
            }
        }
    }
}

fn header(o: &mut Out, r: &Report) {
    o.field(
        "Outcome",
        &format!("{} — {}", r.outcome.word(), r.outcome.sentence()),
    );
    if let (Some(a), Some(b)) = (r.first, r.last) {
        o.field(
            "When",
            &format!(
                "{} → {} ({})",
                fmt::datetime(a),
                fmt::datetime(b),
                duration_ms((b - a).num_milliseconds())
            ),
        );
    }
    if let Some(op) = &r.operator {
        o.field("Operator", &operator(op));
    }
    let mut tool = Vec::new();
    if let Some(v) = &r.tool_version {
        tool.push(format!("cutover {v}"));
    }
    if let Some(m) = &r.mode {
        tool.push(format!("{m} session"));
    }
    if let Some(c) = config(r) {
        tool.push(format!("config {c}"));
    }
    if let Some(v) = &r.format_version {
        tool.push(format!("log format {v}"));
    }
    if !tool.is_empty() {
        o.field("Recorded by", &tool.join(", "));
    }
    for (label, e) in [("Source", &r.source), ("Target", &r.target)] {
        if let Some(e) = e {
            o.field(label, &endpoint(e));
        }
    }
    if let (Some(p), Some(s), Some(slot)) = (&r.publication, &r.subscription, &r.slot) {
        o.field(
            "Replication",
            &format!("publication {p}, subscription {s}, slot {slot}"),
        );
    }
    if let Some(k) = &r.kubernetes {
        o.field("Kubernetes", &kube(k));
    }
    if let Some(w) = &r.report_written {
        o.field("Report", &report_written(w));
    }
    o.field(
        "Log",
        &format!(
            "{} events, {} console run{}",
            int(r.events as i64),
            r.segments.len(),
            if r.segments.len() == 1 { "" } else { "s" }
        ),
    );
    for s in &r.segments {
        o.wrapped("            · ", "              ", &segment(s));
    }
}

/// [`wrap`] that keeps `whole` on one line: `✔ ok`, never `✔` at a
/// line's end and `ok` on the next.
fn wrap_keeping(text: &str, whole: &str, first: &str, rest: &str) -> Vec<String> {
    // `wrap` splits at whitespace: the spaces of `whole` are held as a
    // character that is none, of the same width, and given back after.
    const HOLD: char = '\u{1}';
    let held = text.replace(whole, &whole.replace(' ', &HOLD.to_string()));
    wrap(&held, WIDTH, first, rest)
        .into_iter()
        .map(|l| l.replace(HOLD, " "))
        .collect()
}

fn freeze(o: &mut Out, r: &Report) {
    o.section("WRITE FREEZE");
    if r.freezes.is_empty() {
        o.line("  Writes were never frozen in this session.");
        return;
    }
    for (i, f) in r.freezes.iter().enumerate() {
        if i > 0 {
            o.blank();
        }
        let marks: Vec<_> = milestones(f)
            .into_iter()
            .map(|(at, what)| {
                let since = format!("+{}", duration_ms((at - f.from).num_milliseconds()));
                (at, since, what)
            })
            .collect();
        // A window that outlived the console (`+1 min 52 s`) widens the column.
        let w = marks
            .iter()
            .map(|(_, s, _)| s.len())
            .max()
            .unwrap_or(0)
            .max(8);
        for (at, since, what) in marks {
            let first = format!("  {}  {since:>w$}  ", clock_ms(at));
            o.wrapped(&first, &" ".repeat(first.len()), &what);
        }
        o.wrapped("  Window    ", &" ".repeat(12), &verdict(f));
    }
    if let Some((_, w)) = &r.witness {
        o.blank();
        o.wrapped("  ", "  ", &witness(w));
    }
}

fn runs(o: &mut Out, r: &Report) {
    o.section("CHECKPOINTS");
    if r.runs.is_empty() {
        o.line("  No checkpoint ran in this session.");
        return;
    }
    // The end of each run is in its details below: 80 columns hold no more.
    o.grid(&grid::runs(r).without(3));
    for run in &r.runs {
        o.blank();
        for l in wrap_keeping(&run_head(run), run.result.word(), "", "    ") {
            o.line(&l);
        }
        if let Some(why) = &run.auto {
            o.wrapped("  started by the console: ", "    ", why);
        }
        if let Some((labels, reason)) = &run.overridden {
            o.wrapped(
                "  OVERRIDE: ",
                "    ",
                &format!(
                    "guards failing ({}), reason: \"{reason}\"",
                    labels.join(", ")
                ),
            );
        }
        if let Some(f) = &run.in_flight {
            o.wrapped("  in flight: ", "    ", &in_flight(f));
        }
        for s in &run.steps {
            let result = grid::step_result(s.outcome.as_ref());
            // A step the session end cut off has no time of its own.
            let took = s
                .elapsed_ms
                .map(|ms| format!(" — {}", fmt::duration_f(ms)))
                .unwrap_or_default();
            o.wrapped(
                &format!("  step {}: ", s.index + 1),
                "    ",
                &format!("{}{took}", s.title),
            );
            for l in &s.lines {
                let indent = l.len() - l.trim_start().len();
                let pre = " ".repeat(6 + indent);
                o.wrapped(&pre, &format!("{pre}  "), l.trim_start());
            }
            o.wrapped("    → ", "      ", &result);
        }
        for (at, m) in &run.legacy {
            o.wrapped(&format!("  {} ", clock(*at)), "    ", m);
        }
        if !run.steps_not_run.is_empty() {
            o.wrapped("  not run: ", "    ", &run.steps_not_run.join(", "));
        }
        if run.checks_total > 0 {
            o.line(&format!(
                "  checks: {} of {} pass",
                run.checks_total - run.checks_failed.len(),
                run.checks_total
            ));
            for (name, seen, fix) in &run.checks_failed {
                let mut t = format!("{name}: {seen}");
                if let Some(f) = fix {
                    t.push_str(&format!(" — fix: {f}"));
                }
                o.wrapped("    ✖ ", "      ", &t);
            }
        }
        if let Some(m) = &run.message {
            o.wrapped("  result: ", "    ", m);
        }
    }
}

fn tables(o: &mut Out, r: &Report) {
    o.section("ROW COUNTS AND CHECKSUMS");
    if r.tables.is_empty() {
        o.line("  No table was counted or verified.");
        return;
    }
    let mut counts = grid::tables(r);
    counts.head = vec!["table", "source", "target", "diff", "checksums"];
    o.grid(&counts);
    for t in r.tables.iter().filter(|t| !t.differences.is_empty()) {
        o.line(&format!("  {} — rows that differ:", t.table));
        for d in &t.differences {
            o.wrapped("    ", "      ", d);
        }
        if t.differences_more > 0 {
            o.line(&format!(
                "    … and {} more",
                int(t.differences_more as i64)
            ));
        }
    }
    if let Some((at, verdict)) = &r.final_checksums {
        let v = grid::final_verdict(verdict);
        o.wrapped(&format!("  Final checksums ({}): ", clock(*at)), "    ", &v);
    }
}

fn sequences(o: &mut Out, r: &Report) {
    o.section("SEQUENCES");
    if r.sequences.is_empty() {
        o.line("  No sequence was advanced.");
        return;
    }
    o.grid(&grid::sequences(r, ""));
}

fn rollouts(o: &mut Out, r: &Report) {
    o.section("ROLLOUT");
    if r.rollouts.is_empty() {
        o.line("  No workload was watched.");
        return;
    }
    for w in &r.rollouts {
        o.line(&format!(
            "  deployment/{} in {} (desired/updated/ready; pods by db config)",
            w.deployment, w.namespace
        ));
        for p in &w.points {
            let first = format!(
                "    {}  {:>2}/{:>2}/{:>2}  ",
                clock_ms(p.at),
                p.desired,
                p.updated,
                p.ready
            );
            // The word only: the counts say the rest, in 80 columns.
            let mut what = if p.found {
                p.state.split(':').next().unwrap_or("").to_string()
            } else {
                "not found".to_string()
            };
            if !p.by_config.is_empty() {
                what.push_str(&format!("; {}", fmt::by_config(&p.by_config)));
            }
            o.wrapped(&first, &" ".repeat(first.len()), &what);
        }
    }
}

fn over_time(o: &mut Out, r: &Report) {
    o.section("LAG AND WRITES OVER TIME");
    let peak = r
        .lag
        .iter()
        .filter(|p| p.active)
        .filter_map(|p| p.bytes.map(|b| (b, p.at)))
        .max_by_key(|(b, _)| *b);
    match peak {
        Some((b, at)) => o.wrapped(
            "  ",
            "    ",
            &format!(
                "Peak replication lag while the subscription applied: {} at {} ({} samples).",
                fmt::bytes(b),
                clock(at),
                r.lag.iter().filter(|p| p.bytes.is_some()).count()
            ),
        ),
        None => o.line("  No replication lag was sampled."),
    }
    if r.runs.is_empty() {
        return;
    }
    o.line("  At each checkpoint's start (writes per second from each server's statistics):");
    let rows: Vec<Vec<String>> = r
        .runs
        .iter()
        .map(|run| {
            let (lag, src, tgt) = at_time(r, run.started);
            vec![
                clock(run.started),
                run.key.unwrap_or("").to_string(),
                lag,
                src,
                tgt,
                run.title().to_string(),
            ]
        })
        .collect();
    o.table(
        &[
            "time",
            "key",
            "lag",
            "source w/s",
            "target w/s",
            "checkpoint",
        ],
        &[false, false, true, true, true, false],
        &rows,
    );
}

fn notes(o: &mut Out, r: &Report) {
    o.section("OPERATOR NOTES");
    if r.notes.is_empty() {
        o.line("  None.");
    }
    for (at, text) in &r.notes {
        let first = format!("  {}  ", clock(*at));
        o.wrapped(&first, &" ".repeat(first.len()), text);
    }
}

fn anomalies(o: &mut Out, r: &Report) {
    o.section("ANOMALIES");
    if r.anomalies.is_empty() {
        o.line("  None.");
    }
    for a in &r.anomalies {
        let first = format!("  {:<17} {:<11} ", anomaly_when(a), a.kind.word());
        o.wrapped(&first, &" ".repeat(fmt::width(&first)), &a.text);
    }
}
