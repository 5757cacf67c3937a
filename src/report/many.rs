//! The report of a session of several databases: one table of every
//! database's outcome and write-freeze window, then each database's
//! report whole, as [`super::render`] gives it alone.

use std::fmt::Write as _;

use super::fmt::duration_ms;
use super::model::Report;
use super::{html, Format};

/// One row of the overview: name, outcome, freeze window, checksums.
fn row(name: &str, r: &Report) -> [String; 4] {
    let window = match r.freezes.last() {
        None => "not frozen".to_string(),
        Some(w) => format!(
            "{}{} of {}",
            duration_ms(w.duration_ms()),
            if w.open { " (still open)" } else { "" },
            duration_ms(w.budget_secs as i64 * 1000)
        ),
    };
    let checksums = match &r.final_checksums {
        Some((_, Ok(_))) => "equal".to_string(),
        Some((_, Err(why))) => format!("DIFFER: {why}"),
        None => "not run".to_string(),
    };
    [
        name.to_string(),
        r.outcome.word().to_string(),
        window,
        checksums,
    ]
}

const HEAD: [&str; 4] = ["database", "outcome", "write freeze", "final checksums"];

pub fn render(reports: &[(String, Report)], format: Format) -> String {
    let rows: Vec<[String; 4]> = reports.iter().map(|(n, r)| row(n, r)).collect();
    let worst = reports
        .iter()
        .map(|(_, r)| r.outcome.word())
        .find(|w| *w != "COMPLETED")
        .unwrap_or("COMPLETED");
    let title = format!("Cutover report — {} databases — {worst}", reports.len());
    match format {
        Format::Text => text(&title, &rows, reports),
        Format::Markdown => markdown(&title, &rows, reports),
        Format::Html => {
            let mut o = String::new();
            let _ = writeln!(o, "<header>\n<h1>{}</h1>\n</header>", html::esc(&title));
            o.push_str("<section>\n<table>\n<tr>");
            for h in HEAD {
                let _ = write!(o, "<th>{h}</th>");
            }
            o.push_str("</tr>\n");
            for r in &rows {
                o.push_str("<tr>");
                let _ = write!(o, "<td><a href=\"#db-{0}\">{0}</a></td>", html::esc(&r[0]));
                for c in &r[1..] {
                    let _ = write!(o, "<td>{}</td>", html::esc(c));
                }
                o.push_str("</tr>\n");
            }
            o.push_str("</table>\n</section>\n");
            for (name, r) in reports {
                let _ = writeln!(
                    o,
                    "<section id=\"db-{0}\">\n<h1>Database {0}</h1>\n{1}</section>",
                    html::esc(name),
                    html::body(r)
                );
            }
            html::page(&title, &o)
        }
    }
}

fn text(title: &str, rows: &[[String; 4]], reports: &[(String, Report)]) -> String {
    let mut widths = HEAD.map(str::len);
    for r in rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: [&str; 4]| {
        let mut l = String::new();
        for (i, c) in cells.iter().enumerate() {
            let _ = write!(l, "{c:<w$}  ", w = widths[i]);
        }
        l.trim_end().to_string()
    };
    let mut o = format!("{title}\n{}\n\n", "=".repeat(title.chars().count()));
    o.push_str(&line(HEAD));
    o.push('\n');
    for r in rows {
        o.push_str(&line([&r[0], &r[1], &r[2], &r[3]]));
        o.push('\n');
    }
    for (name, r) in reports {
        let head = format!("Database {name}");
        let _ = write!(
            o,
            "\n\n{head}\n{}\n\n{}",
            "#".repeat(head.chars().count()),
            super::text::render(r)
        );
    }
    o
}

fn markdown(title: &str, rows: &[[String; 4]], reports: &[(String, Report)]) -> String {
    let cell = |s: &str| s.replace('|', "\\|");
    let mut o = format!(
        "# {title}\n\n| {} |\n|{}\n",
        HEAD.join(" | "),
        " --- |".repeat(4)
    );
    for r in rows {
        let cells: Vec<String> = r.iter().map(|c| cell(c)).collect();
        let _ = writeln!(o, "| {} |", cells.join(" | "));
    }
    for (name, r) in reports {
        // Each database's report one heading level down.
        let body = super::markdown::render(r)
            .lines()
            .map(|l| {
                if l.starts_with('#') {
                    format!("#{l}")
                } else {
                    l.to_string()
                }
            })
            .collect::<Vec<_>>()
            .join("\n");
        let _ = write!(o, "\n# Database {}\n\n{body}\n", cell(name));
    }
    o
}
