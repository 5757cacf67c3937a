//! How the report writes times, durations, sizes and counts; every format
//! uses these, so the three say the same thing the same way.

use chrono::{DateTime, Utc};

/// The plain-text report's width: an 80-column terminal or an email.
pub const WIDTH: usize = 80;

/// `20:18:02` (UTC), as the console shows it.
pub use crate::ui::fmt::clock;

/// `20:18:02.634` (UTC): where runs a few milliseconds apart must be told apart.
pub fn clock_ms(t: DateTime<Utc>) -> String {
    t.format("%H:%M:%S%.3f").to_string()
}

/// `2026-11-30 20:18:02 UTC`.
pub fn datetime(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// A duration for people: `47 ms`, `2.1 s`, `1 min 05 s`, `2 h 03 min`.
pub fn duration_ms(ms: i64) -> String {
    let ms = ms.max(0);
    if ms < 1_000 {
        format!("{ms} ms")
    } else if ms < 60_000 {
        format!("{:.1} s", ms as f64 / 1000.0)
    } else if ms < 3_600_000 {
        let s = ms / 1000;
        format!("{} min {:02} s", s / 60, s % 60)
    } else {
        let m = ms / 60_000;
        format!("{} h {:02} min", m / 60, m % 60)
    }
}

pub fn duration_f(ms: f64) -> String {
    duration_ms(ms.round() as i64)
}

/// `1,002,196`: as the console writes it.
pub use crate::ui::fmt::int;

/// `16.0 MiB`, as the console writes it.
pub use crate::ui::fmt::bytes;

/// Display width in columns, as the console measures it.
pub use crate::ui::fmt::width;

/// `s` padded with spaces to `w` columns (left-aligned), or right-aligned.
pub fn pad(s: &str, w: usize, right: bool) -> String {
    let fill = " ".repeat(w.saturating_sub(width(s)));
    if right {
        format!("{fill}{s}")
    } else {
        format!("{s}{fill}")
    }
}

/// Word-wraps `text` to `width` columns: the first line after `first`, the
/// others after `rest` (both counted in the width). Words longer than a line
/// are cut.
pub fn wrap(text: &str, width: usize, first: &str, rest: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut line = first.to_string();
    let mut empty = true;
    let room = |prefix: &str| width.saturating_sub(self::width(prefix)).max(10);
    for word in text.split_whitespace() {
        let mut word = word.to_string();
        loop {
            let sep = if empty { 0 } else { 1 };
            if self::width(&line) + sep + self::width(&word) <= width {
                if !empty {
                    line.push(' ');
                }
                line.push_str(&word);
                empty = false;
                break;
            }
            if !empty {
                out.push(std::mem::replace(&mut line, rest.to_string()));
                empty = true;
                continue;
            }
            // Alone on its line and still too long: cut it.
            let limit = room(&line);
            let cut: String = crate::ui::fmt::take_width(&word, limit).to_string();
            let tail = word[cut.len()..].to_string();
            line.push_str(&cut);
            out.push(std::mem::replace(&mut line, rest.to_string()));
            word = tail;
            if word.is_empty() {
                break;
            }
        }
    }
    if !empty || out.is_empty() {
        out.push(line);
    }
    out
}

/// One side's exact count as a cell.
pub fn count(c: &super::model::Count) -> String {
    match c {
        super::model::Count::None => "—".into(),
        super::model::Count::Rows(n, _) => int(*n),
        super::model::Count::Failed(_) => "failed".into(),
    }
}

/// The difference of two exact counts (target − source), when both exist.
pub fn count_diff(t: &super::model::TableReport) -> String {
    use super::model::Count::Rows;
    match (&t.source, &t.target) {
        (Rows(s, _), Rows(d, _)) => {
            let diff = d - s;
            if diff > 0 {
                format!("+{}", int(diff))
            } else {
                int(diff)
            }
        }
        _ => "—".into(),
    }
}

/// A table's checksum verdict, symbol and words.
pub fn checksum(c: &super::model::Checksum) -> String {
    use super::model::Checksum::*;
    match c {
        NotVerified => "◌ not verified".into(),
        Equal(how) => format!("✔ equal ({how})"),
        Differ(how) => format!("✖ differ: {how}"),
        Incomplete(how) => format!("◌ incomplete: {how}"),
        Error(e) => format!("✖ error: {e}"),
    }
}

/// A sequence's value, or that it was never used.
pub fn seq(v: Option<i64>) -> String {
    v.map_or_else(|| "unused".to_string(), int)
}

/// Pods per db-config fingerprint: `08ed26d8×3, ff76e791×1`.
pub fn by_config(m: &std::collections::BTreeMap<String, usize>) -> String {
    m.iter()
        .map(|(k, n)| format!("{k}×{n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The value of a series at `t`: its latest point at or before it, if that
/// is at most `max_age_ms` old and not a gap.
pub fn value_at<P, T>(
    points: &[P],
    t: DateTime<Utc>,
    max_age_ms: i64,
    get: impl Fn(&P) -> (DateTime<Utc>, Option<T>),
) -> Option<T> {
    let (at, v) = points
        .iter()
        .map(&get)
        .take_while(|(at, _)| *at <= t)
        .last()?;
    v.filter(|_| (t - at).num_milliseconds() <= max_age_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_people_say_them() {
        assert_eq!(duration_ms(47), "47 ms");
        assert_eq!(duration_ms(2_124), "2.1 s");
        assert_eq!(duration_ms(65_000), "1 min 05 s");
        assert_eq!(duration_ms(7_380_000), "2 h 03 min");
        assert_eq!(int(1_002_196), "1,002,196");
        assert_eq!(int(-1_000), "-1,000");
        assert_eq!(bytes(16_777_216), "16.0 MiB");
        assert_eq!(bytes(40), "40 B");
    }

    #[test]
    fn wrapping_keeps_to_the_width_and_cuts_long_words() {
        let lines = wrap("aaa bbb ccc ddd", 9, "- ", "  ");
        assert_eq!(lines, ["- aaa bbb", "  ccc ddd"]);
        let long = "x".repeat(30);
        for l in wrap(&long, 12, "", "") {
            assert!(width(&l) <= 12, "{l}");
        }
        assert_eq!(wrap("", 10, "> ", ""), ["> "]);
    }
}
