//! The `[databases]` entry a switch repoints, in PgBouncer's config file
//! (or the file it includes): `name = host=… port=… dbname=… …`. Only the
//! entry's line changes; comments, other entries and the entry's other
//! settings (user, pool_size, …) stay as written. Passwords on the line are
//! shown only as fingerprints.

use anyhow::{bail, Result};

/// One entry as found in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// 1-based line number.
    pub line_no: usize,
    /// The line as written.
    pub line: String,
    pub name: String,
    /// Its settings in order, values unquoted.
    pub params: Vec<(String, String)>,
}

impl Entry {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// The entry `name` in `text` (`file` names it in errors): exactly one.
pub fn find(text: &str, file: &str, name: &str) -> Result<Entry> {
    let mut found: Vec<Entry> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let Some((n, rest)) = split_entry(line) else {
            continue;
        };
        if n == name {
            found.push(Entry {
                line_no: i + 1,
                line: line.to_string(),
                name: n,
                params: parse_params(rest)
                    .map_err(|e| anyhow::anyhow!("{file}:{}: entry {name}: {e}", i + 1))?,
            });
        }
    }
    match found.len() {
        1 => Ok(found.remove(0)),
        0 => bail!("{file}: no [databases] entry {name}"),
        _ => bail!(
            "{file}: entry {name} is there {} times (lines {}): which one PgBouncer uses is not \
             for the switch to guess",
            found.len(),
            found
                .iter()
                .map(|e| e.line_no.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// `name = rest` of a line that is an entry (not a comment, section or
/// `%include`).
fn split_entry(line: &str) -> Option<(String, &str)> {
    let t = line.trim_start();
    if t.is_empty() || t.starts_with([';', '#', '[', '%']) {
        return None;
    }
    let (name, rest) = if let Some(quoted) = t.strip_prefix('"') {
        let end = quoted.find('"')?;
        (quoted[..end].to_string(), quoted[end + 1..].trim_start())
    } else {
        let eq = t.find('=')?;
        (t[..eq].trim().to_string(), &t[eq..])
    };
    let rest = rest.strip_prefix('=')?;
    Some((name, rest.trim()))
}

/// `key=value key='quoted value'` as PgBouncer reads a connection string.
fn parse_params(s: &str) -> Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.peek().is_none() {
            return Ok(out);
        }
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c.is_whitespace() {
                break;
            }
            key.push(c);
            chars.next();
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.next() != Some('=') {
            bail!("{key:?} has no value (expected key=value)");
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let mut value = String::new();
        if chars.peek() == Some(&'\'') {
            chars.next();
            loop {
                match chars.next() {
                    None => bail!("the value of {key} has no closing quote"),
                    Some('\'') if chars.peek() == Some(&'\'') => {
                        chars.next();
                        value.push('\'');
                    }
                    Some('\'') => break,
                    Some(c) => value.push(c),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() {
                    break;
                }
                value.push(c);
                chars.next();
            }
        }
        out.push((key, value));
    }
}

fn quote(v: &str) -> String {
    if !v.is_empty() && !v.contains([' ', '\'', '\t']) {
        v.to_string()
    } else {
        format!("'{}'", v.replace('\'', "''"))
    }
}

/// The entry's line with `host`, `port` and `dbname` set to these, every
/// other setting kept in its place.
pub fn repointed_line(entry: &Entry, host: &str, port: u16, dbname: &str) -> String {
    let mut params = entry.params.clone();
    for (k, v) in [
        ("host", host.to_string()),
        ("port", port.to_string()),
        ("dbname", dbname.to_string()),
    ] {
        match params.iter_mut().find(|(key, _)| key == k) {
            Some(p) => p.1 = v,
            None => params.push((k.to_string(), v)),
        }
    }
    let name = if entry
        .name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_')
    {
        entry.name.clone()
    } else {
        format!("\"{}\"", entry.name)
    };
    let body: Vec<String> = params
        .iter()
        .map(|(k, v)| format!("{k}={}", quote(v)))
        .collect();
    format!("{name} = {}", body.join(" "))
}

/// `text` with entry `name`'s line replaced by `new_line`, only if that
/// line is still `expect` (someone else's edit since is not overwritten).
pub fn replace(text: &str, file: &str, name: &str, expect: &str, new_line: &str) -> Result<String> {
    let e = find(text, file, name)?;
    if e.line != expect {
        bail!(
            "{file}:{}: entry {name} changed since it was read (now: {}); not overwriting it",
            e.line_no,
            shown(&e.line)
        );
    }
    let mut out: Vec<&str> = text.split('\n').collect();
    out[e.line_no - 1] = new_line;
    Ok(out.join("\n"))
}

/// A line as it may be shown: a password's value as its fingerprint.
pub fn shown(line: &str) -> String {
    let Some((name, rest)) = split_entry(line) else {
        return line.to_string();
    };
    let Ok(params) = parse_params(rest) else {
        return format!("{name} = <unreadable settings>");
    };
    let body: Vec<String> = params
        .iter()
        .map(|(k, v)| {
            if k == "password" {
                format!("{k}=<sha256:{}>", crate::kube::fingerprint(v))
            } else {
                format!("{k}={}", quote(v))
            }
        })
        .collect();
    format!("{name} = {}", body.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = ";; entries\n\
        other = host=10.0.0.9 dbname=other\n\
        app = host=10.0.0.1 port=5432 dbname=app user=app password='s3cr et' pool_size=20\n\
        \n";

    #[test]
    fn the_entry_is_found_once_with_its_settings() {
        let e = find(FILE, "db.ini", "app").unwrap();
        assert_eq!(e.line_no, 3);
        assert_eq!(e.get("host"), Some("10.0.0.1"));
        assert_eq!(e.get("password"), Some("s3cr et"));
        assert_eq!(e.get("pool_size"), Some("20"));
        let missing = find(FILE, "db.ini", "shop").unwrap_err().to_string();
        assert_eq!(missing, "db.ini: no [databases] entry shop");
        let twice = format!("{FILE}app = host=x\n");
        let err = find(&twice, "db.ini", "app").unwrap_err().to_string();
        assert!(err.contains("2 times (lines 3, 5)"), "{err}");
        let bad = find("app = host='x\n", "db.ini", "app").unwrap_err();
        assert!(bad.to_string().starts_with("db.ini:1: entry app:"), "{bad}");
    }

    #[test]
    fn repointing_changes_only_where_the_entry_goes() {
        let e = find(FILE, "db.ini", "app").unwrap();
        let line = repointed_line(&e, "10.0.0.2", 5433, "app");
        assert_eq!(
            line,
            "app = host=10.0.0.2 port=5433 dbname=app user=app password='s3cr et' pool_size=20"
        );
        let text = replace(FILE, "db.ini", "app", &e.line, &line).unwrap();
        assert_eq!(text.lines().nth(2), Some(line.as_str()));
        assert_eq!(text.lines().nth(1), FILE.lines().nth(1));
        assert_eq!(text.ends_with("\n\n"), FILE.ends_with("\n\n"));
        // Read again, it round-trips.
        assert_eq!(
            find(&text, "db.ini", "app").unwrap().get("host"),
            Some("10.0.0.2")
        );
        // An edit by someone else since it was read is not overwritten.
        let err = replace(&text, "db.ini", "app", &e.line, &line).unwrap_err();
        assert!(
            err.to_string().contains("changed since it was read"),
            "{err}"
        );
    }

    #[test]
    fn a_password_is_shown_as_a_fingerprint_only() {
        let e = find(FILE, "db.ini", "app").unwrap();
        let s = shown(&e.line);
        assert!(!s.contains("s3cr"), "{s}");
        assert!(s.contains(&format!(
            "password=<sha256:{}>",
            crate::kube::fingerprint("s3cr et")
        )));
        assert!(s.starts_with("app = host=10.0.0.1 port=5432"));
    }
}
