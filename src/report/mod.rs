//! The migration report: another fold of the session log, written as plain
//! text (80 columns, for a terminal or an email), Markdown, or one
//! self-contained HTML file with inline SVG charts.
//!
//! It says how the migration ended, who ran it where and when, the
//! endpoints, every checkpoint run with what it ran (and, for a run a
//! session end left in flight, what the resumed console found out), the
//! write-freeze window against its budget, exact counts and checksums per
//! table, the sequences, each workload's rollout, lag and writes over time,
//! the operator's notes and every anomaly. It is built from the log alone
//! ([`build`] is pure), so it holds nothing the log does not: no password,
//! and switch values only as fingerprints.
//!
//! `cutover report SESSION [-f text|md|html] [-o FILE]` calls [`export`] or
//! [`write`]; the runbook's last checkpoint writes it too.

mod assemble;
mod build;
mod fmt;
mod grid;
mod html;
mod many;
mod markdown;
mod model;
mod series;
mod svg;
mod tables;
mod text;
mod words;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_in_flight;

use std::io::{BufRead, BufReader, Write as _};
use std::path::Path;

use anyhow::{Context, Result};

pub use build::build;
pub use model::*;

use crate::session::Event;

/// The report's formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Format {
    /// Aligned plain text that fits 80 columns.
    #[default]
    Text,
    /// Headings and tables.
    #[value(name = "md", alias = "markdown")]
    Markdown,
    /// One self-contained file: inline CSS and SVG charts, no script.
    Html,
}

impl Format {
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Text => "text",
            Format::Markdown => "md",
            Format::Html => "html",
        }
    }

    /// The format a file's extension asks for (text by default).
    pub fn for_path(path: &Path) -> Format {
        match path.extension().and_then(|x| x.to_str()) {
            Some("md") => Format::Markdown,
            Some("html" | "htm") => Format::Html,
            _ => Format::Text,
        }
    }

    /// The file extension a report in this format usually has.
    pub fn extension(self) -> &'static str {
        match self {
            Format::Text => "txt",
            Format::Markdown => "md",
            Format::Html => "html",
        }
    }
}

impl std::fmt::Display for Format {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Format {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "text" | "txt" => Ok(Format::Text),
            "md" | "markdown" => Ok(Format::Markdown),
            "html" | "htm" => Ok(Format::Html),
            other => Err(format!(
                "unknown report format \"{other}\": text, md (markdown) or html"
            )),
        }
    }
}

/// The report in `format`. Pure.
pub fn render(report: &Report, format: Format) -> String {
    match format {
        Format::Text => text::render(report),
        Format::Markdown => markdown::render(report),
        Format::Html => html::render(report),
    }
}

/// Reads the session log at `log` and renders its report. Errors name the file.
pub fn export(log: &Path, format: Format) -> Result<String> {
    let (events, unreadable) = read_log(log)?;
    let mut report = build(&events);
    note_unreadable(&mut report, &unreadable);
    Ok(render(&report, format))
}

/// [`export`] into `out`, owner-only (0600: a report names hosts, roles,
/// tables and the keys of rows that differ), creating its directory.
pub fn write(log: &Path, format: Format, out: &Path) -> Result<()> {
    write_text(&export(log, format)?, out)
}

/// The report of a session of several databases (one log each): a table
/// of every database's outcome and write-freeze window, then each
/// database's whole report, in the order given.
pub fn export_many(logs: &[std::path::PathBuf], format: Format) -> Result<String> {
    if let [one] = logs {
        return export(one, format);
    }
    let mut reports = Vec::new();
    for log in logs {
        let (events, unreadable) = read_log(log)?;
        let mut report = build(&events);
        note_unreadable(&mut report, &unreadable);
        let name = events
            .first()
            .and_then(|e| match &e.kind {
                crate::session::EventKind::SessionStarted(info) => info.database.clone(),
                _ => None,
            })
            .unwrap_or_else(|| log.display().to_string());
        reports.push((name, report));
    }
    Ok(many::render(&reports, format))
}

/// [`export_many`] into `out`, as [`write`] writes.
pub fn write_many(logs: &[std::path::PathBuf], format: Format, out: &Path) -> Result<()> {
    write_text(&export_many(logs, format)?, out)
}

/// Written whole or not at all: into a file beside `out`, then renamed
/// over it, so a reader never sees half a report.
fn write_text(text: &str, out: &Path) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        crate::session::log::create_private_dir(dir)
            .with_context(|| format!("creating report directory {}", dir.display()))?;
    }
    let name = out.file_name().unwrap_or_default().to_string_lossy();
    let part = out.with_file_name(format!(".{name}.{}.part", std::process::id()));
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&part)
        .and_then(|mut file| {
            file.write_all(text.as_bytes())?;
            file.sync_all()
        })
        .and_then(|()| std::fs::rename(&part, out));
    if written.is_err() {
        let _ = std::fs::remove_file(&part);
    }
    written.with_context(|| format!("writing report {}", out.display()))
}

/// The log's events. A log this version cannot read whole (a line from
/// another version of cutover) still gives a report: the lines left out are
/// returned, `path:line: why`, and the report names them. A log of a newer
/// format than this version reads is refused, as the reader refuses it.
fn read_log(log: &Path) -> Result<(Vec<Event>, Vec<String>)> {
    let err = match crate::session::log::read_all(log) {
        Ok(events) => return Ok((events, vec![])),
        Err(e) => e,
    };
    let Ok(file) = std::fs::File::open(log) else {
        return Err(err);
    };
    let mut events = Vec::new();
    let mut bad = Vec::new();
    let Ok(lines) = BufReader::new(file)
        .split(b'\n')
        .collect::<std::io::Result<Vec<Vec<u8>>>>()
    else {
        return Err(err);
    };
    let last = lines.iter().rposition(|l| !l.trim_ascii().is_empty());
    // Samples are stored as what changed since the previous one (format 2):
    // each line is read back through the same expander as the log reader's.
    let mut expander = crate::session::compact::Expander::default();
    for (i, line) in lines.iter().enumerate() {
        let text = String::from_utf8_lossy(line);
        if text.trim().is_empty() {
            continue;
        }
        let event = serde_json::from_str::<serde_json::Value>(&text)
            .map_err(anyhow::Error::from)
            .and_then(|v| expander.expand(v));
        match event {
            Ok(e) => events.push(e),
            // A torn last line is what a crash leaves: read_all skips it too.
            Err(_) if Some(i) == last => {}
            Err(e) => bad.push(format!("{}:{}: {e:#}", log.display(), i + 1)),
        }
    }
    let newer = events.first().is_some_and(|e| {
        matches!(&e.kind, crate::session::EventKind::SessionStarted(info)
            if info.format_version > crate::session::event::FORMAT_VERSION)
    });
    if newer {
        return Err(err);
    }
    Ok((events, bad))
}

fn note_unreadable(report: &mut Report, lines: &[String]) {
    let left_out = lines.iter().map(|l| Anomaly {
        at: None,
        until: None,
        kind: AnomalyKind::Unreadable,
        text: format!("left out, not readable by this version of cutover: {l}"),
    });
    report.anomalies.splice(0..0, left_out);
}
