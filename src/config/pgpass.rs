//! The libpq password file (`~/.pgpass`, `PGPASSFILE`, `passfile=`).
//!
//! Format: `hostname:port:database:username:password`, one entry per line, `*`
//! matches anything, `\:` and `\\` escape, the first matching line wins.

use std::path::Path;

use super::conninfo::{Endpoint, Host};
use super::secret::Secret;

/// Looks one host of a connection up in the password file at `path`,
/// following libpq: each host of a multi-host string has its own entry, a
/// missing file is silently skipped, a file others can read is ignored with a
/// warning (so a leaked-permission file does not quietly keep working).
pub fn password_from_file(
    path: &Path,
    endpoint: &Endpoint,
    dbname: &str,
    user: &str,
) -> Option<Secret> {
    let meta = std::fs::metadata(path).ok()?;
    if !meta.is_file() {
        tracing::warn!(
            "password file \"{}\" is not a plain file; ignoring it",
            path.display()
        );
        return None;
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if meta.permissions().mode() & 0o077 != 0 {
            tracing::warn!(
                "password file \"{}\" has group or world access; permissions should be u=rw (0600) or less; ignoring it",
                path.display()
            );
            return None;
        }
    }
    let contents = match std::fs::read(path) {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!("could not read password file \"{}\": {e}", path.display());
            return None;
        }
    };
    let contents = String::from_utf8_lossy(&contents);
    let hosts: Vec<String> = match &endpoint.host {
        // libpq matches the default socket directory as "localhost"; accepting
        // the literal directory as well costs nothing and helps custom sockets.
        Host::Unix(dir) => vec!["localhost".to_owned(), dir.display().to_string()],
        Host::Tcp(h) => vec![h.clone()],
    };
    let hosts: Vec<&str> = hosts.iter().map(String::as_str).collect();
    lookup(&contents, &hosts, endpoint.port, dbname, user).map(Secret::from)
}

/// The password of the first entry matching the connection; `hosts` are the
/// names the host field may match (any of them).
pub fn lookup(
    contents: &str,
    hosts: &[&str],
    port: u16,
    dbname: &str,
    user: &str,
) -> Option<String> {
    let port = port.to_string();
    for line in contents.lines() {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some(fields) = split_entry(line) else {
            continue;
        };
        let [host_f, port_f, db_f, user_f, password] = fields;
        if hosts.iter().any(|h| field_matches(host_f, h))
            && field_matches(port_f, &port)
            && field_matches(db_f, dbname)
            && field_matches(user_f, user)
        {
            return Some(unescape(password));
        }
    }
    None
}

/// Splits a line at its first four unescaped colons; the rest is the password
/// field, which (like libpq) ends at a further unescaped colon.
fn split_entry(line: &str) -> Option<[&str; 5]> {
    let mut fields = [""; 5];
    let mut start = 0;
    let mut n = 0;
    let b = line.as_bytes();
    let mut i = 0;
    while i < b.len() && n < 4 {
        match b[i] {
            b'\\' => i += 2,
            b':' => {
                fields[n] = &line[start..i];
                n += 1;
                i += 1;
                start = i;
            }
            _ => i += 1,
        }
    }
    if n < 4 {
        return None;
    }
    let rest = line.get(start..).unwrap_or("");
    let rb = rest.as_bytes();
    let mut end = 0;
    while end < rb.len() && rb[end] != b':' {
        end += if rb[end] == b'\\' { 2 } else { 1 };
    }
    fields[4] = rest.get(..end.min(rb.len())).unwrap_or(rest);
    Some(fields)
}

fn field_matches(field: &str, value: &str) -> bool {
    field == "*" || unescape(field) == value
}

fn unescape(field: &str) -> String {
    let mut out = String::with_capacity(field.len());
    let mut chars = field.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(n) = chars.next() {
                out.push(n);
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::conninfo;

    const FILE: &str = r"# comment line
db.example:5432:app:alice:first
db.example:5432:app:alice:shadowed
*:5432:*:bob:bob-any-host
db.example:*:other:*:any-user-any-port
weird\:host:5432:d\\b:u:p\:w\\d:tail
localhost:5433:app:sock:socket-pw

short:line
";

    #[test]
    fn first_match_wins() {
        assert_eq!(
            lookup(FILE, &["db.example"], 5432, "app", "alice").as_deref(),
            Some("first")
        );
    }

    #[test]
    fn wildcards() {
        assert_eq!(
            lookup(FILE, &["anything"], 5432, "whatever", "bob").as_deref(),
            Some("bob-any-host")
        );
        assert_eq!(
            lookup(FILE, &["db.example"], 9999, "other", "zed").as_deref(),
            Some("any-user-any-port")
        );
        assert_eq!(lookup(FILE, &["db.example"], 9999, "app", "zed"), None);
        assert_eq!(lookup(FILE, &["anything"], 5433, "whatever", "bob"), None);
    }

    #[test]
    fn escapes() {
        assert_eq!(
            lookup(FILE, &["weird:host"], 5432, r"d\b", "u").as_deref(),
            Some(r"p:w\d")
        );
        // A backslash-escaped star is a literal star, not a wildcard.
        assert_eq!(lookup(r"\*:*:*:*:pw", &["h"], 1, "d", "u"), None);
        assert_eq!(
            lookup(r"\*:*:*:*:pw", &["*"], 1, "d", "u").as_deref(),
            Some("pw")
        );
    }

    #[test]
    fn malformed_lines_do_not_match() {
        assert_eq!(lookup("a:b:c", &["a"], 1, "c", "u"), None);
        assert_eq!(lookup("h:1:d:u", &["h"], 1, "d", "u"), None);
        assert_eq!(lookup("h:1:d:u:", &["h"], 1, "d", "u").as_deref(), Some(""));
        assert_eq!(
            lookup("h:1:d:u:pw\\", &["h"], 1, "d", "u").as_deref(),
            Some("pw")
        );
        assert_eq!(
            lookup("h:1:d:u:pw\r\n", &["h"], 1, "d", "u").as_deref(),
            Some("pw")
        );
    }

    fn params(dsn: &str) -> conninfo::ConnParams {
        let env = |k: &str| match k {
            "USER" => Some("sock".to_owned()),
            "HOME" => Some("/nonexistent-cutover-home".to_owned()),
            _ => None,
        };
        conninfo::parse(dsn).unwrap().resolve(&env).unwrap()
    }

    fn per_host(file: &Path, dsn: &str) -> Vec<Option<String>> {
        let p = params(dsn);
        p.hosts
            .iter()
            .map(|h| password_from_file(file, h, &p.dbname, &p.user).map(|s| s.expose().to_owned()))
            .collect()
    }

    fn first(file: &Path, p: &conninfo::ConnParams) -> Option<Secret> {
        password_from_file(file, &p.hosts[0], &p.dbname, &p.user)
    }

    #[test]
    fn reads_file_with_libpq_rules() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pgpass");
        std::fs::write(&file, FILE).unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();

        let p = params("host=/var/run/postgresql port=5433 dbname=app");
        assert_eq!(
            first(&file, &p).map(|s| s.expose().to_owned()).as_deref(),
            Some("socket-pw"),
            "a unix socket matches the host field \"localhost\""
        );
        let p = params("host=db.example dbname=app user=alice");
        assert_eq!(first(&file, &p).unwrap().expose(), "first");

        // Each host of a list has its own entry.
        assert_eq!(
            per_host(
                &file,
                "host=db.example,elsewhere,db.example port=5432,5432,9 dbname=app user=bob"
            ),
            [
                Some("bob-any-host".into()),
                Some("bob-any-host".into()),
                None
            ]
        );
        assert_eq!(
            per_host(
                &file,
                "host=db.example,db.example port=5432,1 dbname=other user=zed"
            ),
            [
                Some("any-user-any-port".into()),
                Some("any-user-any-port".into())
            ]
        );
        assert_eq!(
            per_host(&file, "host=db.example,other.example dbname=app user=alice"),
            [Some("first".into()), None]
        );
        let p = params("host=db.example dbname=app user=alice");

        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(first(&file, &p), None, "group/world readable is ignored");

        assert_eq!(first(&dir.path().join("missing"), &p), None);
        assert_eq!(first(dir.path(), &p), None, "a directory is ignored");
    }
}
