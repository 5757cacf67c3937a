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
        let mut offset = offset.min(self.text.len());
        while !self.text.is_char_boundary(offset) {
            offset -= 1;
        }
        let before = &self.text[..offset];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        (line, before[line_start..].chars().count() + 1)
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
        let msg = one_line(e.message());
        let span = e.span();
        let place = span
            .as_ref()
            .map(|s| Place::at(self.text, s.start))
            .unwrap_or_default();
        let err = |field: Option<String>, message: String| ConfigError::Invalid {
            path: self.path.to_path_buf(),
            location: span.as_ref().map(|s| self.line_col(s.start)),
            field,
            message,
        };

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
            return err(
                None,
                format!("unknown field \"{name}\" in [{section}]{expected}"),
            );
        }
        if let Some(rest) = msg.strip_prefix("missing field `") {
            let name = rest.split('`').next().unwrap_or(rest);
            // The span of a missing field is the table that lacks it.
            let table = match &place.key {
                Some(k) => join(&place.table, k),
                None => place.table.clone(),
            };
            return err(Some(join(&table, name)), "missing required field".into());
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
            let field = match &place.key {
                Some(k) => join(&place.table, k),
                None => place.table.clone(),
            };
            let field = (!field.is_empty()).then_some(field);
            return err(field, prettify_type_error(&msg));
        }
        err(None, format!("invalid TOML: {msg}"))
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
        ("expected struct ", "expected a table "),
    ] {
        m = m.replace(from, to);
    }
    requote(&m)
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
            };
        }
        if !line.contains('=') {
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
        Place { table, key }
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
