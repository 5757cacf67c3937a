//! Parsing one keyword's value, and applying it to a [`ConnInfo`].

use std::net::IpAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use super::lexer::{Pair, BARE_PASSWORD_HINT};
use super::{ConnInfo, ConnInfoError, Secret, SslMode, TargetSessionAttrs, KEYS};

pub(super) fn parse_port(value: &str) -> Result<u16, String> {
    match value.trim().parse::<u32>() {
        Ok(p) if (1..=65535).contains(&p) => Ok(p as u16),
        _ => Err(format!(
            "invalid port \"{}\" (expected 1..65535)",
            value.escape_debug()
        )),
    }
}

/// libpq semantics: whole seconds, 0 or negative waits forever, and anything
/// below 2 s is raised to 2 s.
pub(super) fn parse_connect_timeout(value: &str) -> Result<Duration, String> {
    match value.trim().parse::<i64>() {
        Ok(s) if s <= 0 => Ok(Duration::ZERO),
        Ok(s) => Ok(Duration::from_secs(s.max(2) as u64)),
        Err(_) => Err(format!(
            "invalid connect_timeout \"{}\" (expected whole seconds)",
            value.escape_debug()
        )),
    }
}

pub(super) fn parse_hostaddr(value: &str) -> Result<IpAddr, String> {
    value.parse::<IpAddr>().map_err(|_| {
        format!(
            "invalid hostaddr \"{}\" (expected a numeric IPv4 or IPv6 address)",
            value.escape_debug()
        )
    })
}

/// A comma-separated list, each entry parsed (empty entries are `None`);
/// errors carry the byte position of the bad entry within `value`.
pub(super) fn parse_list<T>(
    value: &str,
    parse: impl Fn(&str) -> Result<T, String>,
) -> Result<Vec<Option<T>>, (usize, String)> {
    let mut pos = 0;
    let mut out = Vec::new();
    for item in value.split(',') {
        let at = pos;
        pos += item.len() + 1;
        if item.trim().is_empty() {
            out.push(None);
        } else {
            out.push(Some(parse(item.trim()).map_err(|m| (at, m))?));
        }
    }
    Ok(out)
}

pub(super) fn parse_hosts(value: &str) -> Vec<String> {
    value.split(',').map(|h| h.trim().to_owned()).collect()
}

/// libpq reads `keepalives` as an integer: 0 is off, anything else on.
pub(super) fn parse_keepalives(value: &str) -> Result<bool, String> {
    match value.trim().parse::<i64>() {
        Ok(v) => Ok(v != 0),
        Err(_) => Err(format!(
            "invalid keepalives \"{}\" (expected 1 for on or 0 for off)",
            value.escape_debug()
        )),
    }
}

/// Linux refuses TCP_KEEPIDLE/TCP_KEEPINTVL above 32767 s and TCP_KEEPCNT above 127.
pub(super) const KEEPALIVE_SECONDS: std::ops::RangeInclusive<u64> = 1..=32767;
pub(super) const KEEPALIVE_COUNT: std::ops::RangeInclusive<u32> = 1..=127;

pub(super) fn keepalive_seconds(key: &'static str) -> impl Fn(&str) -> Result<Duration, String> {
    move |value| match value.trim().parse::<u64>() {
        Ok(s) if KEEPALIVE_SECONDS.contains(&s) => Ok(Duration::from_secs(s)),
        _ => Err(format!(
            "invalid {key} \"{}\" (expected whole seconds {}..={})",
            value.escape_debug(),
            KEEPALIVE_SECONDS.start(),
            KEEPALIVE_SECONDS.end()
        )),
    }
}

pub(super) fn parse_keepalives_count(value: &str) -> Result<u32, String> {
    match value.trim().parse::<u32>() {
        Ok(n) if KEEPALIVE_COUNT.contains(&n) => Ok(n),
        _ => Err(format!(
            "invalid keepalives_count \"{}\" (expected {}..={})",
            value.escape_debug(),
            KEEPALIVE_COUNT.start(),
            KEEPALIVE_COUNT.end()
        )),
    }
}

/// libpq's rule for host lists: one port for all hosts or one per host, and
/// as many hostaddr entries as host names. Returns the offending key.
pub(super) fn check_counts(
    hosts: Option<usize>,
    hostaddrs: Option<usize>,
    ports: Option<usize>,
) -> Result<(), (&'static str, String)> {
    if let (Some(h), Some(a)) = (hosts, hostaddrs) {
        if h != a {
            return Err((
                "hostaddr",
                format!(
                    "could not match {h} host names to {a} hostaddr values (give one hostaddr per host)"
                ),
            ));
        }
    }
    let n = hostaddrs.or(hosts).unwrap_or(1);
    match ports {
        Some(p) if p != 1 && p != n => Err((
            "port",
            format!(
                "could not match {p} port numbers to {n} hosts (give one port for all hosts or one per host)"
            ),
        )),
        _ => Ok(()),
    }
}

impl ConnInfo {
    /// Applies one `key=value`: later occurrences override earlier ones, and
    /// an empty value resets the key to "unset", as in libpq.
    pub(super) fn apply(&mut self, pair: Pair) -> Result<(), ConnInfoError> {
        let key = pair.key.as_str();
        if !KEYS.contains(&key) {
            let message = if pair.after_bare_password {
                format!("unknown connection option {BARE_PASSWORD_HINT}")
            } else {
                format!(
                    "unknown connection option \"{}\" (expected one of {})",
                    key.escape_debug(),
                    KEYS.join(", ")
                )
            };
            return Err(ConnInfoError::at(pair.key_offset, message));
        }
        let bad = |message: String| ConnInfoError::at(pair.value_offset, message);
        let bad_item =
            |(pos, message): (usize, String)| ConnInfoError::at(pair.offset_of(pos), message);
        let v = (!pair.value.is_empty()).then_some(pair.value.as_str());
        fn one<T>(
            v: Option<&str>,
            parse: impl Fn(&str) -> Result<T, String>,
        ) -> Result<Option<T>, String> {
            v.map(parse).transpose()
        }
        match key {
            "host" => self.host = v.map(parse_hosts),
            "hostaddr" => {
                self.hostaddr = v
                    .map(|v| parse_list(v, parse_hostaddr))
                    .transpose()
                    .map_err(bad_item)?
            }
            "port" => {
                self.port = v
                    .map(|v| parse_list(v, parse_port))
                    .transpose()
                    .map_err(bad_item)?
            }
            "dbname" => self.dbname = v.map(str::to_owned),
            "user" => self.user = v.map(str::to_owned),
            "password" => self.password = v.map(Secret::from),
            "passfile" => self.passfile = v.map(PathBuf::from),
            "service" => self.service = v.map(str::to_owned),
            "sslmode" => self.sslmode = one(v, SslMode::from_str).map_err(bad)?,
            "sslrootcert" => self.sslrootcert = v.map(str::to_owned),
            "sslcert" => self.sslcert = v.map(PathBuf::from),
            "sslkey" => self.sslkey = v.map(PathBuf::from),
            "application_name" => self.application_name = v.map(str::to_owned),
            "connect_timeout" => {
                self.connect_timeout = one(v, parse_connect_timeout).map_err(bad)?
            }
            "options" => self.options = v.map(str::to_owned),
            "target_session_attrs" => {
                self.target_session_attrs = one(v, TargetSessionAttrs::from_str).map_err(bad)?
            }
            "keepalives" => self.keepalives = one(v, parse_keepalives).map_err(bad)?,
            "keepalives_idle" => {
                self.keepalives_idle = one(v, keepalive_seconds("keepalives_idle")).map_err(bad)?
            }
            "keepalives_interval" => {
                self.keepalives_interval =
                    one(v, keepalive_seconds("keepalives_interval")).map_err(bad)?
            }
            "keepalives_count" => {
                self.keepalives_count = one(v, parse_keepalives_count).map_err(bad)?
            }
            _ => unreachable!("checked against KEYS above"),
        }
        Ok(())
    }

    /// The host/hostaddr/port list rule, on what this string states. Ports
    /// alone are not judged: the hosts may still come from a service or PGHOST.
    pub(super) fn check_counts(&self) -> Result<(), (&'static str, String)> {
        if self.host.is_none() && self.hostaddr.is_none() {
            return Ok(());
        }
        check_counts(
            self.host.as_ref().map(Vec::len),
            self.hostaddr.as_ref().map(Vec::len),
            self.port.as_ref().map(Vec::len),
        )
    }

    /// Every keyword this string leaves unset is taken from `defaults` (a
    /// service file's group).
    pub(super) fn or(self, defaults: ConnInfo) -> ConnInfo {
        ConnInfo {
            host: self.host.or(defaults.host),
            hostaddr: self.hostaddr.or(defaults.hostaddr),
            port: self.port.or(defaults.port),
            dbname: self.dbname.or(defaults.dbname),
            user: self.user.or(defaults.user),
            password: self.password.or(defaults.password),
            passfile: self.passfile.or(defaults.passfile),
            service: self.service.or(defaults.service),
            sslmode: self.sslmode.or(defaults.sslmode),
            sslrootcert: self.sslrootcert.or(defaults.sslrootcert),
            sslcert: self.sslcert.or(defaults.sslcert),
            sslkey: self.sslkey.or(defaults.sslkey),
            application_name: self.application_name.or(defaults.application_name),
            connect_timeout: self.connect_timeout.or(defaults.connect_timeout),
            options: self.options.or(defaults.options),
            target_session_attrs: self.target_session_attrs.or(defaults.target_session_attrs),
            keepalives: self.keepalives.or(defaults.keepalives),
            keepalives_idle: self.keepalives_idle.or(defaults.keepalives_idle),
            keepalives_interval: self.keepalives_interval.or(defaults.keepalives_interval),
            keepalives_count: self.keepalives_count.or(defaults.keepalives_count),
        }
    }
}
