//! Turning byte spans and toml's errors into one-line `file:line:col: field: message`.

use std::ops::Range;
use std::path::{Path, PathBuf};

use super::ConfigError;

pub(super) fn format_invalid(
    path: &Path,
    location: Option<(usize, usize)>,
    field: Option<&str>,
    message: &str,
) -> String {
    let mut s = path.display().to_string();
    if let Some((line, col)) = location {
        s.push_str(&format!(":{line}:{col}"));
    }
    s.push_str(": ");
    if let Some(field) = field {
        s.push_str(field);
        s.push_str(": ");
    }
    s.push_str(message);
    s
}

/// 1-based line and column (in characters) of a byte offset in `text`.
pub(crate) fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
}

pub(super) struct Ctx<'a> {
    pub text: &'a str,
    pub path: &'a Path,
}

impl<'a> Ctx<'a> {
    pub fn new(text: &'a str, path: &'a Path) -> Self {
        Ctx { text, path }
    }

    /// The directory relative paths in the config are resolved against.
    pub fn base_dir(&self) -> PathBuf {
        self.path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default()
    }

    /// 1-based line and column (in characters) of a byte offset.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        line_col(self.text, offset)
    }

    pub fn error(
        &self,
        span: Option<Range<usize>>,
        field: Option<&str>,
        message: String,
    ) -> ConfigError {
        ConfigError::Invalid {
            path: self.path.to_path_buf(),
            location: span.map(|s| self.line_col(s.start)),
            field: field.map(str::to_owned),
            // Keep the promise of one line even for odd upstream messages.
            message: one_line(&message),
        }
    }

    /// Maps an offset inside a string value back to the file, when the literal
    /// in the file is the value verbatim (no escapes); otherwise the start of
    /// the literal is the best we can do.
    pub fn offset_in_string(
        &self,
        span: Range<usize>,
        value: &str,
        offset: Option<usize>,
    ) -> usize {
        let Some(offset) = offset else {
            return span.start;
        };
        let Some(raw) = self.text.get(span.clone()) else {
            return span.start;
        };
        for quote in ["\"", "'"] {
            if raw.len() >= 2
                && raw.starts_with(quote)
                && raw.ends_with(quote)
                && !raw.starts_with(&quote.repeat(3))
                && &raw[1..raw.len() - 1] == value
            {
                return span.start + 1 + offset.min(value.len());
            }
        }
        span.start
    }

    /// Rewrites toml's (often multi-line) error in our format, guessing the
    /// dotted field path from the text around the error.
    pub fn toml_error(&self, e: &toml::de::Error) -> ConfigError {
        let p = toml_problem(self.text, e, &config_table_hint);
        ConfigError::Invalid {
            path: self.path.to_path_buf(),
            location: p.span.map(|s| self.line_col(s.start)),
            field: p.field,
            message: p.message,
        }
    }
}

/// How to write each table of cutover.toml, for "expected a table" messages.
fn config_table_hint(field: &str) -> Option<String> {
    match field {
        "source" | "target" => Some(format!("[{field}] with dsn = \"…\"")),
        "replication" | "tables" | "thresholds" | "monitor" | "session" | "ui" | "lab"
        | "kubernetes" | "verify" => Some(format!("[{field}]")),
        _ => None,
    }
}

/// A toml error made readable: where it is, which dotted field, and what is
/// wrong in words (never an internal type name).
pub(crate) struct TomlProblem {
    pub span: Option<Range<usize>>,
    pub field: Option<String>,
    pub message: String,
    /// For an unknown key, its dotted path (the message names its table).
    pub unknown: Option<String>,
}

/// Explains a toml error in `text`. `table_hint(field)` says how a field that
/// must be a table is written (e.g. `[source] with dsn = "…"`), or None when
/// the field is not a table.
pub(crate) fn toml_problem(
    text: &str,
    e: &toml::de::Error,
    table_hint: &dyn Fn(&str) -> Option<String>,
) -> TomlProblem {
    let msg = one_line(e.message());
    let span = e.span();
    let place = span
        .as_ref()
        .map(|s| Place::at(text, s.start))
        .unwrap_or_default();
    let problem = |field: Option<String>, message: String| TomlProblem {
        span: span.clone(),
        field: field.filter(|f| !f.is_empty()),
        message,
        unknown: None,
    };
    let field = match &place.key {
        Some(k) => join(&place.table, k),
        None => place.table.clone(),
    };

    // Syntax errors come from the parser, before serde sees any field.
    if text.parse::<toml::Table>().is_err() {
        if place.no_equals && msg.contains("`=`") {
            return match &place.line_key {
                Some(k) => problem(
                    Some(join(&place.table, k)),
                    "missing \"=\" after the key (each line must be key = value)".into(),
                ),
                None => problem(None, "this line is not key = value".into()),
            };
        }
        let field = (!place.header).then_some(field);
        if msg.starts_with("number too large") {
            // The span covers one character; the number runs on from there.
            let shown = span
                .as_ref()
                .and_then(|s| text.get(s.start..))
                .map(|t| {
                    let end = t
                        .find(|c: char| !(c.is_ascii_digit() || "+-_".contains(c)))
                        .unwrap_or(t.len());
                    &t[..end]
                })
                .filter(|t| !t.is_empty() && t.len() <= 40);
            let message = match shown {
                Some(n) => format!("{n} is too large (TOML integers are at most {})", i64::MAX),
                None => format!("number too large (TOML integers are at most {})", i64::MAX),
            };
            return problem(field, message);
        }
        return problem(field, format!("invalid TOML: {}", requote(&msg)));
    }

    if let Some(rest) = msg.strip_prefix("unknown field `") {
        let (name, expected) = rest.split_once('`').unwrap_or((rest, ""));
        let expected = expected.trim_start_matches(',').trim().replace('`', "");
        let section = place.section_of(name);
        let section = if section.is_empty() {
            "root".to_owned()
        } else {
            section
        };
        let expected = if expected.is_empty() {
            String::new()
        } else {
            format!(" ({expected})")
        };
        let unknown = join(if section == "root" { "" } else { &section }, name);
        return TomlProblem {
            unknown: Some(unknown),
            ..problem(
                None,
                format!("unknown field \"{name}\" in [{section}]{expected}"),
            )
        };
    }
    if let Some(rest) = msg.strip_prefix("missing field `") {
        let name = rest.split('`').next().unwrap_or(rest);
        // The span of a missing field is the table that lacks it.
        return problem(Some(join(&field, name)), "missing required field".into());
    }
    let is_type_error = [
        "invalid type",
        "invalid value",
        "invalid length",
        "expected ",
    ]
    .iter()
    .any(|p| msg.starts_with(p));
    if is_type_error {
        if let Some(hint) = table_hint(&field) {
            // The whole table has the wrong shape: say how to write it rather
            // than what serde was trying to fill.
            let found = if place.array_header {
                format!(", not an array of tables ([[{field}]])")
            } else {
                match msg
                    .strip_prefix("invalid type: ")
                    .and_then(|r| r.split_once(", expected"))
                {
                    Some((found, _)) => format!(", found {}", found_words(found)),
                    None => ", found an array".into(),
                }
            };
            return problem(
                Some(field),
                requote(&format!("expected a table ({hint}){found}")),
            );
        }
        return problem(Some(field), prettify_type_error(&msg));
    }
    problem(None, format!("invalid TOML: {}", requote(&msg)))
}

fn found_words(found: &str) -> String {
    match found {
        "sequence" => "an array".into(),
        "map" => "a table".into(),
        other => other.replace("floating point", "number"),
    }
}

fn one_line(s: &str) -> String {
    s.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}

fn join(a: &str, b: &str) -> String {
    match (a.is_empty(), b.is_empty()) {
        (true, _) => b.to_owned(),
        (_, true) => a.to_owned(),
        _ => format!("{a}.{b}"),
    }
}

fn prettify_type_error(msg: &str) -> String {
    let mut m = msg.to_owned();
    for (from, to) in [
        ("expected u64", "expected a non-negative integer"),
        ("expected u16", "expected a non-negative integer"),
        ("expected i64", "expected an integer"),
        ("expected f64", "expected a number"),
        ("expected a sequence", "expected an array"),
        ("expected a map", "expected a table"),
        ("invalid type: sequence", "invalid type: array"),
        ("invalid type: map", "invalid type: table"),
    ] {
        m = m.replace(from, to);
    }
    requote(&strip_type_names(&m))
}

/// `expected struct RawConn with 3 elements` → `expected a table`: the
/// names of our Rust types mean nothing to the operator.
fn strip_type_names(m: &str) -> String {
    let Some(at) = m
        .find("expected struct ")
        .or_else(|| m.find("expected enum "))
    else {
        return m.to_owned();
    };
    let what = if m[at..].starts_with("expected struct ") {
        "a table"
    } else {
        "one of the allowed values"
    };
    format!("{}expected {what}", &m[..at])
}

/// serde quotes values in backticks; show numbers bare and strings in double quotes.
fn requote(m: &str) -> String {
    let mut out = String::with_capacity(m.len());
    let mut rest = m;
    while let Some(open) = rest.find('`') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let Some(close) = after.find('`') else {
            out.push_str(&rest[open..]);
            return out;
        };
        let inner = &after[..close];
        if inner.parse::<f64>().is_ok() {
            out.push_str(inner);
        } else {
            out.push('"');
            out.push_str(inner);
            out.push('"');
        }
        rest = &after[close + 1..];
    }
    out.push_str(rest);
    out
}

/// Where in the document an offset falls: the enclosing `[table]` and the key
/// of the `key = value` line (or the last part of a header line).
#[derive(Default, Debug)]
struct Place {
    table: String,
    key: Option<String>,
    /// The line is a `[table]` or `[[array]]` header.
    header: bool,
    array_header: bool,
    /// The line is neither a header nor `key = value`; `line_key` is its
    /// first word, which is most likely a key missing its `=`.
    no_equals: bool,
    line_key: Option<String>,
}

impl Place {
    fn at(text: &str, offset: usize) -> Place {
        let mut offset = offset.min(text.len());
        while !text.is_char_boundary(offset) {
            offset -= 1;
        }
        let line_start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
        let line_end = text[line_start..]
            .find('\n')
            .map_or(text.len(), |i| line_start + i);
        let mut table = String::new();
        for line in text[..line_start].lines() {
            if let Some(h) = header_of(line) {
                table = h;
            }
        }
        let mut line = &text[line_start..line_end];
        if let Some(h) = header_of(line) {
            let (parent, last) = match h.rsplit_once('.') {
                Some((p, l)) => (p.to_owned(), l.to_owned()),
                None => (String::new(), h),
            };
            return Place {
                table: parent,
                key: Some(last),
                header: true,
                array_header: line.trim_start().starts_with("[["),
                ..Place::default()
            };
        }
        let no_equals = !line.contains('=');
        let line_key = line
            .split(|c: char| c.is_whitespace() || c == '#')
            .find(|w| !w.is_empty())
            .filter(|_| !line.trim_start().starts_with('#'))
            .map(clean_key);
        if no_equals {
            // Inside a multi-line array or inline table: the key is on the
            // nearest earlier `key = ` line of the same table.
            if let Some(prev) = text[..line_start]
                .lines()
                .rev()
                .take_while(|l| header_of(l).is_none())
                .find(|l| l.contains('='))
            {
                line = prev;
            }
        }
        let key = line
            .find('=')
            .map(|eq| clean_key(&line[..eq]))
            .filter(|k| !k.is_empty());
        Place {
            table,
            key,
            no_equals,
            line_key,
            ..Place::default()
        }
    }

    /// The table an unknown key `name` was found in.
    fn section_of(&self, name: &str) -> String {
        match &self.key {
            None => self.table.clone(),
            Some(k) if k == name => self.table.clone(),
            // Dotted key `a.b.name = ...`.
            Some(k) if k.ends_with(&format!(".{name}")) => {
                join(&self.table, &k[..k.len() - name.len() - 1])
            }
            // Inline table `a = { name = ... }`.
            Some(k) => join(&self.table, k),
        }
    }
}

fn header_of(line: &str) -> Option<String> {
    let t = line.trim_start();
    let inner = t.strip_prefix('[')?;
    let inner = inner.strip_prefix('[').unwrap_or(inner);
    let end = inner.find(']')?;
    Some(clean_key(&inner[..end]))
}

fn clean_key(k: &str) -> String {
    k.split('.')
        .map(|p| p.trim().trim_matches(|c| c == '"' || c == '\''))
        .collect::<Vec<_>>()
        .join(".")
}
