//! Formatting and fitting text into terminal cells.
//!
//! Everything on screen is cut to a known width here, so a long name or error
//! ends in `…` instead of wrapping into the next pane.

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use ratatui::text::Span;

/// Bytes in binary units, one decimal: `512 B`, `1.5 MiB`.
pub fn bytes(n: i64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    let abs = n.unsigned_abs();
    if abs < 1024 {
        return format!("{n} B");
    }
    let mut v = abs as f64 / 1024.0;
    let mut unit = 0;
    // Rounding to one decimal must not print "1024.0 KiB".
    while v >= 1023.95 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    let sign = if n < 0 { "-" } else { "" };
    format!("{sign}{v:.1} {}", UNITS[unit])
}

/// An integer with thousands separators: `1,234,567`.
/// "1 table", "7 tables".
pub fn tables(n: usize) -> String {
    if n == 1 {
        "1 table".to_string()
    } else {
        format!("{n} tables")
    }
}

pub fn int(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3 + 1);
    if n < 0 {
        out.push('-');
    }
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A difference with its sign always shown, except for zero.
pub fn signed(n: i64) -> String {
    if n > 0 {
        format!("+{}", int(n))
    } else {
        int(n)
    }
}

/// A duration given in milliseconds: `35 ms`, `1.2 s`, `2 m 05 s`.
pub fn millis(ms: f64) -> String {
    if !ms.is_finite() {
        return "?".to_string();
    }
    if ms < 1000.0 {
        format!("{} ms", ms.max(0.0).round() as i64)
    } else {
        secs(ms / 1000.0)
    }
}

/// A duration given in seconds: `0.4 s`, `42 s`, `3 m 12 s`, `2 h 03 m`.
pub fn secs(s: f64) -> String {
    if !s.is_finite() {
        return "?".to_string();
    }
    let s = s.max(0.0);
    if s < 10.0 {
        format!("{s:.1} s")
    } else if s < 60.0 {
        format!("{} s", s.floor() as i64)
    } else if s < 3600.0 {
        let t = s.floor() as i64;
        format!("{} m {:02} s", t / 60, t % 60)
    } else {
        let t = s.floor() as i64;
        format!("{} h {:02} m", t / 3600, (t % 3600) / 60)
    }
}

/// Wall-clock time of day; the console speaks UTC like the server logs.
pub fn clock(t: DateTime<Utc>) -> String {
    t.format("%H:%M:%S").to_string()
}

/// Seconds between two instants, as a float (negative if `b` precedes `a`).
pub fn seconds_between(a: DateTime<Utc>, b: DateTime<Utc>) -> f64 {
    (b - a).num_milliseconds() as f64 / 1000.0
}

pub fn char_width(c: char) -> usize {
    let mut buf = [0u8; 4];
    Span::raw(&*c.encode_utf8(&mut buf)).width()
}

/// Display width in terminal columns.
pub fn width(s: &str) -> usize {
    Span::raw(s).width()
}

/// At most `max` columns; a cut string ends in `…` so the cut is visible.
pub fn truncate(s: &str, max: usize) -> Cow<'_, str> {
    if width(s) <= max {
        return Cow::Borrowed(s);
    }
    if max == 0 {
        return Cow::Borrowed("");
    }
    Cow::Owned(format!("{}…", take_width(s, max - 1).trim_end()))
}

/// The longest prefix of `s` at most `max` columns wide.
pub fn take_width(s: &str, max: usize) -> &str {
    let mut used = 0;
    for (i, c) in s.char_indices() {
        let w = char_width(c);
        if used + w > max {
            return &s[..i];
        }
        used += w;
    }
    s
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Align {
    Left,
    Right,
}

/// Exactly `w` columns: truncated, then padded on the side `align` leaves open.
pub fn fit(s: &str, w: usize, align: Align) -> String {
    let t = truncate(s, w);
    let pad = w.saturating_sub(width(&t));
    let mut out = String::with_capacity(t.len() + pad);
    if align == Align::Right {
        out.extend(std::iter::repeat_n(' ', pad));
    }
    out.push_str(&t);
    if align == Align::Left {
        out.extend(std::iter::repeat_n(' ', pad));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(bytes(0), "0 B");
        assert_eq!(bytes(1023), "1023 B");
        assert_eq!(bytes(1_572_864), "1.5 MiB");
        assert_eq!(bytes(1024 * 1024 - 1), "1.0 MiB");
        assert_eq!(bytes(3 * 1024 * 1024 * 1024), "3.0 GiB");
        assert_eq!(int(1_234_567), "1,234,567");
        assert_eq!(int(-1000), "-1,000");
        assert_eq!(int(999), "999");
        assert_eq!(signed(2), "+2");
        assert_eq!(signed(-2), "-2");
        assert_eq!(millis(12.4), "12 ms");
        assert_eq!(millis(1500.0), "1.5 s");
        assert_eq!(secs(125.0), "2 m 05 s");
    }

    #[test]
    fn fitting() {
        assert_eq!(truncate("connection refused", 10), "connectio…");
        assert_eq!(truncate("abc", 3), "abc");
        assert_eq!(truncate("abc", 0), "");
        assert_eq!(fit("ab", 4, Align::Right), "  ab");
        assert_eq!(fit("abcdef", 4, Align::Left), "abc…");
        assert_eq!(fit("✔ ok", 5, Align::Left), "✔ ok ");
    }
}
