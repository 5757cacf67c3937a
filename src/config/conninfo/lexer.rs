//! Splitting a DSN into key/value pairs: `key=value ...` and URIs.

use super::values::parse_port;
use super::ConnInfoError;

pub(super) const URI_PREFIXES: &[&str] = &["postgresql://", "postgres://"];

fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

pub(super) struct Pair {
    pub key: String,
    pub key_offset: usize,
    pub value: String,
    pub value_offset: usize,
    /// Where `value` appears verbatim in the DSN (no quotes, escapes or
    /// percent-encoding in the way), so a position inside it maps back.
    pub verbatim_at: Option<usize>,
    /// The token right after an unquoted `password=` may be the rest of a
    /// password containing a space, so errors about it must not quote it.
    pub after_bare_password: bool,
}

impl Pair {
    /// The DSN offset of byte `pos` of the value, as near as is known.
    pub fn offset_of(&self, pos: usize) -> usize {
        self.verbatim_at.map_or(self.value_offset, |o| o + pos)
    }
}

pub(super) const BARE_PASSWORD_HINT: &str =
    "after the password (quote a password containing spaces: password='...')";

pub(super) fn parse_key_values(s: &str) -> Result<Vec<Pair>, ConnInfoError> {
    let b = s.as_bytes();
    let mut i = 0;
    let mut pairs: Vec<Pair> = Vec::new();
    let mut bare_password = false;
    loop {
        while i < b.len() && is_space(b[i]) {
            i += 1;
        }
        if i >= b.len() {
            break;
        }
        let key_offset = i;
        while i < b.len() && b[i] != b'=' && !is_space(b[i]) {
            i += 1;
        }
        let key = &s[key_offset..i];
        while i < b.len() && is_space(b[i]) {
            i += 1;
        }
        if i >= b.len() || b[i] != b'=' {
            let message = if bare_password {
                format!("missing \"=\" in connection string {BARE_PASSWORD_HINT}")
            } else {
                format!(
                    "missing \"=\" after \"{}\" in connection string",
                    key.escape_debug()
                )
            };
            return Err(ConnInfoError::at(key_offset, message));
        }
        if key.is_empty() {
            return Err(ConnInfoError::at(
                key_offset,
                "missing option name before \"=\" in connection string",
            ));
        }
        i += 1;
        while i < b.len() && is_space(b[i]) {
            i += 1;
        }
        let value_offset = i;
        let quoted = i < b.len() && b[i] == b'\'';
        // Only ASCII bytes (quote, backslash, whitespace) are ever dropped, so the
        // collected bytes stay valid UTF-8.
        let mut value = Vec::new();
        let mut escaped = false;
        if i < b.len() && b[i] == b'\'' {
            i += 1;
            loop {
                if i >= b.len() {
                    return Err(ConnInfoError::at(
                        value_offset,
                        format!(
                            "unterminated quoted string in connection string (value of \"{}\")",
                            key.escape_debug()
                        ),
                    ));
                }
                match b[i] {
                    b'\\' if i + 1 < b.len() => {
                        value.push(b[i + 1]);
                        escaped = true;
                        i += 2;
                    }
                    b'\\' => {
                        escaped = true;
                        i += 1
                    }
                    b'\'' => {
                        i += 1;
                        break;
                    }
                    c => {
                        value.push(c);
                        i += 1;
                    }
                }
            }
        } else {
            while i < b.len() && !is_space(b[i]) {
                if b[i] == b'\\' {
                    escaped = true;
                    i += 1;
                    if i >= b.len() {
                        break;
                    }
                }
                value.push(b[i]);
                i += 1;
            }
        }
        let value = String::from_utf8(value)
            .map_err(|_| ConnInfoError::at(value_offset, "connection string is not valid UTF-8"))?;
        pairs.push(Pair {
            key: key.to_owned(),
            key_offset,
            value,
            value_offset,
            verbatim_at: (!escaped).then_some(value_offset + usize::from(quoted)),
            after_bare_password: bare_password,
        });
        bare_password = key == "password" && !quoted;
    }
    Ok(pairs)
}

/// Decodes `%XX` escapes, rejecting malformed ones and `%00` like libpq.
pub(super) fn percent_decode(s: &str, offset: usize) -> Result<String, ConnInfoError> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = |c: u8| (c as char).to_digit(16);
            // The token itself is not quoted: it may be inside a password.
            let (hi, lo) = match (
                b.get(i + 1).and_then(|&c| hex(c)),
                b.get(i + 2).and_then(|&c| hex(c)),
            ) {
                (Some(hi), Some(lo)) => (hi, lo),
                _ => {
                    return Err(ConnInfoError::at(
                        offset + i,
                        "invalid percent-encoded token in URI (expected % and two hex digits)",
                    ))
                }
            };
            let byte = (hi * 16 + lo) as u8;
            if byte == 0 {
                return Err(ConnInfoError::at(
                    offset + i,
                    "forbidden value %00 in percent-encoded URI value",
                ));
            }
            out.push(byte);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out)
        .map_err(|_| ConnInfoError::at(offset, "percent-encoded URI value is not valid UTF-8"))
}

pub(super) fn parse_uri(s: &str, start: usize) -> Result<Vec<Pair>, ConnInfoError> {
    let mut pairs = Vec::new();

    let rest = &s[start..];
    let (before_query, query) = match rest.find('?') {
        Some(q) => (&rest[..q], Some((&rest[q + 1..], start + q + 1))),
        None => (rest, None),
    };
    let (authority, path) = match before_query.find('/') {
        Some(p) => (
            &before_query[..p],
            Some((&before_query[p + 1..], start + p + 1)),
        ),
        None => (before_query, None),
    };

    // The last '@' so that an unencoded '@' in a password still works.
    let (hostport, hostport_offset) = match authority.rfind('@') {
        Some(at) => {
            let userinfo = &authority[..at];
            match userinfo.find(':') {
                Some(c) => {
                    push_decoded(&mut pairs, "user", start, &userinfo[..c], start)?;
                    let at = start + c + 1;
                    push_decoded(&mut pairs, "password", at, &userinfo[c + 1..], at)?;
                }
                None => push_decoded(&mut pairs, "user", start, userinfo, start)?,
            }
            (&authority[at + 1..], start + at + 1)
        }
        None => (authority, start),
    };

    // `host[:port][,host[:port]]...`, each decoded on its own; like libpq the
    // lists are kept as `a,b` and `5432,` (an empty port: the default).
    let mut hosts = Vec::new();
    let mut ports = Vec::new();
    let mut pos = 0;
    for item in hostport.split(',') {
        let offset = hostport_offset + pos;
        pos += item.len() + 1;
        let (host, port) = split_host_port(item, offset)?;
        hosts.push(percent_decode(host, offset)?);
        match port {
            Some((p, at)) => {
                let p = percent_decode(p, at)?;
                if !p.is_empty() {
                    parse_port(&p).map_err(|m| ConnInfoError::at(at, m))?;
                }
                ports.push(p);
            }
            None => ports.push(String::new()),
        }
    }
    let host = hosts.join(",");
    let port = ports.join(",");
    let single = hosts.len() == 1;
    for (key, value) in [("host", host), ("port", port)] {
        if !value.is_empty() {
            pairs.push(Pair {
                key: key.into(),
                key_offset: hostport_offset,
                verbatim_at: (single && key == "host" && value == hostport)
                    .then_some(hostport_offset),
                value,
                value_offset: hostport_offset,
                after_bare_password: false,
            });
        }
    }
    let mut push = |key: &str, key_offset: usize, raw: &str, value_offset: usize| {
        push_decoded(&mut pairs, key, key_offset, raw, value_offset)
    };
    if let Some((dbname, offset)) = path {
        if !dbname.is_empty() {
            push("dbname", offset, dbname, offset)?;
        }
    }
    if let Some((query, qoffset)) = query {
        let mut pos = 0;
        for param in query.split('&') {
            let offset = qoffset + pos;
            pos += param.len() + 1;
            if param.is_empty() {
                continue;
            }
            let Some(eq) = param.find('=') else {
                return Err(ConnInfoError::at(
                    offset,
                    format!(
                        "missing \"=\" in URI query parameter \"{}\"",
                        param.escape_debug()
                    ),
                ));
            };
            let key = percent_decode(&param[..eq], offset)?;
            let value_offset = offset + eq + 1;
            let raw = &param[eq + 1..];
            // libpq accepts the JDBC spelling `ssl=true` as `sslmode=require`.
            if key == "ssl" {
                if percent_decode(raw, value_offset)? != "true" {
                    return Err(ConnInfoError::at(
                        value_offset,
                        "invalid URI query parameter ssl (only ssl=true is accepted)",
                    ));
                }
                push("sslmode", offset, "require", value_offset)?;
            } else {
                push(&key, offset, raw, value_offset)?;
            }
        }
    }
    Ok(pairs)
}

fn push_decoded(
    pairs: &mut Vec<Pair>,
    key: &str,
    key_offset: usize,
    raw: &str,
    value_offset: usize,
) -> Result<(), ConnInfoError> {
    let value = percent_decode(raw, value_offset)?;
    pairs.push(Pair {
        key: key.to_owned(),
        key_offset,
        verbatim_at: (value == raw).then_some(value_offset),
        value,
        value_offset,
        after_bare_password: false,
    });
    Ok(())
}

/// A piece of the DSN and its byte offset.
type Located<'a> = (&'a str, usize);

/// One `host[:port]` of a URI (raw, still percent-encoded); IPv6 literals are
/// bracketed. Returns the host and the port with its offset.
fn split_host_port(
    item: &str,
    offset: usize,
) -> Result<(&str, Option<Located<'_>>), ConnInfoError> {
    let Some(inner) = item.strip_prefix('[') else {
        return Ok(match item.find(':') {
            Some(c) => (&item[..c], Some((&item[c + 1..], offset + c + 1))),
            None => (item, None),
        });
    };
    let close = inner
        .find(']')
        .ok_or_else(|| ConnInfoError::at(offset, "missing \"]\" after IPv6 host address in URI"))?;
    let host = &inner[..close];
    if host.is_empty() {
        return Err(ConnInfoError::at(
            offset,
            "IPv6 host address may not be empty in URI",
        ));
    }
    let after = &inner[close + 1..];
    if after.is_empty() {
        return Ok((host, None));
    }
    match after.strip_prefix(':') {
        Some(p) => Ok((host, Some((p, offset + 1 + close + 2)))),
        None => Err(ConnInfoError::at(
            offset + 1 + close + 1,
            format!(
                "unexpected \"{}\" after IPv6 host address in URI (expected \":\" port)",
                after.chars().next().unwrap_or_default().escape_debug()
            ),
        )),
    }
}
