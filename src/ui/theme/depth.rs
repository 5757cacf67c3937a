//! How many colours the terminal shows, and a theme brought down to that.
//!
//! The detection reads the environment once at startup ([`ColorDepth::detect`]);
//! everything after it is a pure function of an explicit depth, so the mapping
//! is tested without touching the process environment.
//!
//! Why not the `supports-color` crate: it counts every `TERM` other than `dumb`
//! as a colour terminal (so `TERM=vt100` would get colour), lets `FORCE_COLOR`
//! override `NO_COLOR`, and reads the process environment itself. The rules
//! below keep its conventions for `FORCE_COLOR`, `COLORTERM` and `TERM`
//! suffixes and add those two.
//!
//! Why not the `ansi_colours` crate for the 256-colour mapping: it is
//! LGPL-3.0, linked statically into an Apache-2.0 binary; the xterm cube and
//! grey ramp below are twenty lines.

use ratatui::style::{Color, Style};

use super::Theme;

/// The colours a terminal can show, fewest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ColorDepth {
    /// No colour at all (`NO_COLOR`, `TERM=dumb`, `TERM=vt100`, …): the mono theme.
    None,
    /// The 16 named ANSI colours, as the terminal's own palette draws them.
    Ansi16,
    /// The xterm 256-colour palette.
    Ansi256,
    /// 24-bit colour: a theme's `#rrggbb` as written.
    TrueColor,
}

/// The environment variables the detection reads; `None` is unset.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TermEnv {
    pub no_color: Option<String>,
    pub force_color: Option<String>,
    pub term: Option<String>,
    pub colorterm: Option<String>,
    pub term_program: Option<String>,
}

impl TermEnv {
    /// The IO edge: this process's environment.
    pub fn from_process() -> TermEnv {
        let var = |k: &str| std::env::var_os(k).map(|v| v.to_string_lossy().into_owned());
        TermEnv {
            no_color: var("NO_COLOR"),
            force_color: var("FORCE_COLOR"),
            term: var("TERM"),
            colorterm: var("COLORTERM"),
            term_program: var("TERM_PROGRAM"),
        }
    }
}

/// `TERM` families (the part before the first `-`) that show at least the 16
/// ANSI colours even without "color" in the name.
const COLOUR_TERMS: [&str; 17] = [
    "xterm",
    "screen",
    "tmux",
    "rxvt",
    "urxvt",
    "linux",
    "ansi",
    "cygwin",
    "putty",
    "konsole",
    "gnome",
    "vte",
    "eterm",
    "st",
    "mintty",
    "iterm2",
    "alacritty",
];

/// `TERM` values of terminals that show 24-bit colour, for when `COLORTERM`
/// did not come along (ssh forwards `TERM` but not `COLORTERM`).
const TRUECOLOR_TERMS: [&str; 6] = [
    "xterm-kitty",
    "xterm-ghostty",
    "wezterm",
    "alacritty",
    "foot",
    "contour",
];

impl ColorDepth {
    /// Once at startup, before the terminal is taken.
    pub fn detect() -> ColorDepth {
        ColorDepth::from_env(&TermEnv::from_process())
    }

    /// The rules, in order:
    /// 1. `NO_COLOR` set and non-empty: none (<https://no-color.org> always wins).
    /// 2. `FORCE_COLOR`: `0`/`false` none, `2` 256, `3` truecolor, anything else 16.
    /// 3. `TERM` unset, empty or `dumb`: none.
    /// 4. `COLORTERM=truecolor|24bit`, a `TERM` ending in `-direct`, or a
    ///    known 24-bit terminal: truecolor (GNU screen outside tmux: 256).
    /// 5. `TERM` with `256color` (or `-256`), or Apple's Terminal: 256.
    /// 6. `TERM` naming a monochrome variant (`xterm-mono`, `…-m`): none.
    /// 7. `TERM` with `color` or `ansi`, or of a known colour family: 16.
    /// 8. Anything else (`vt100`, `vt220`, unknown): none.
    pub fn from_env(env: &TermEnv) -> ColorDepth {
        if env.no_color.as_deref().is_some_and(|v| !v.is_empty()) {
            return ColorDepth::None;
        }
        if let Some(force) = env.force_color.as_deref() {
            return match force.trim() {
                "0" | "false" => ColorDepth::None,
                "2" => ColorDepth::Ansi256,
                n if n.parse::<u32>().is_ok_and(|n| n >= 3) => ColorDepth::TrueColor,
                _ => ColorDepth::Ansi16,
            };
        }
        let term = env
            .term
            .as_deref()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        if term.is_empty() || term == "dumb" {
            return ColorDepth::None;
        }
        let program = env.term_program.as_deref().unwrap_or("");
        let colorterm = env.colorterm.as_deref().unwrap_or("").to_ascii_lowercase();
        if colorterm == "truecolor" || colorterm == "24bit" {
            // GNU screen (before 5) passes 256 colours at most; tmux often calls itself screen.
            if term.starts_with("screen") && program != "tmux" {
                return ColorDepth::Ansi256;
            }
            return ColorDepth::TrueColor;
        }
        if term.ends_with("-direct")
            || term.contains("truecolor")
            || TRUECOLOR_TERMS.contains(&term.as_str())
            || program == "iTerm.app"
        {
            return ColorDepth::TrueColor;
        }
        if term.contains("256color") || term.ends_with("-256") || program == "Apple_Terminal" {
            return ColorDepth::Ansi256;
        }
        // xterm-mono, vt100-m and the like: a colour family without the colour.
        if term.contains("mono") || term.ends_with("-m") {
            return ColorDepth::None;
        }
        let family = term.split('-').next().unwrap_or("");
        if term.contains("color") || term.contains("ansi") || COLOUR_TERMS.contains(&family) {
            return ColorDepth::Ansi16;
        }
        ColorDepth::None
    }

    /// In words, for `cutover themes`.
    pub fn describe(self) -> &'static str {
        match self {
            ColorDepth::None => "no colour",
            ColorDepth::Ansi16 => "16 colours",
            ColorDepth::Ansi256 => "256 colours",
            ColorDepth::TrueColor => "24-bit colour",
        }
    }
}

impl Theme {
    /// This theme as a terminal of `depth` can show it: `#rrggbb` to the
    /// nearest of the 256 or of the 16 colours, indexed colours to the 16, and
    /// no colour at all to the mono theme. Modifiers are kept.
    pub fn at_depth(&self, depth: ColorDepth) -> Theme {
        if depth == ColorDepth::None {
            return Theme::mono();
        }
        let mut theme = self.clone();
        for style in theme.styles.iter_mut() {
            *style = style_at_depth(*style, depth);
        }
        theme
    }
}

fn style_at_depth(mut style: Style, depth: ColorDepth) -> Style {
    style.fg = style.fg.map(|c| color_at_depth(c, depth));
    style.bg = style.bg.map(|c| color_at_depth(c, depth));
    style
}

/// One colour as a terminal of `depth` can show it. Named colours and
/// `Reset` are kept at every depth but none, where every colour is `Reset`.
pub fn color_at_depth(c: Color, depth: ColorDepth) -> Color {
    match (depth, c) {
        (ColorDepth::None, _) => Color::Reset,
        (ColorDepth::TrueColor, c) => c,
        (ColorDepth::Ansi256, Color::Rgb(r, g, b)) => Color::Indexed(rgb_to_256(r, g, b)),
        (ColorDepth::Ansi16, Color::Rgb(r, g, b)) => rgb_to_16(r, g, b),
        (ColorDepth::Ansi16, Color::Indexed(i)) => indexed_to_16(i),
        (_, c) => c,
    }
}

/// The six levels of each channel in the xterm 6×6×6 cube (indices 16-231).
const CUBE: [u8; 6] = [0, 95, 135, 175, 215, 255];

/// The nearest of the xterm palette's fixed colours, 16-255: the cube and
/// the grey ramp. Never 0-15, whose look is each terminal's own.
pub fn rgb_to_256(r: u8, g: u8, b: u8) -> u8 {
    let level = |v: u8| {
        CUBE.iter()
            .enumerate()
            .min_by_key(|(_, &l)| l.abs_diff(v))
            .map_or(0, |(i, _)| i as u8)
    };
    let (ri, gi, bi) = (level(r), level(g), level(b));
    let cube_index = 16 + 36 * ri + 6 * gi + bi;
    let cube = (CUBE[ri as usize], CUBE[gi as usize], CUBE[bi as usize]);
    // Greys 232-255 are 8, 18, …, 238.
    let mean = (u16::from(r) + u16::from(g) + u16::from(b)) / 3;
    let step = (mean.saturating_sub(3) / 10).min(23) as u8;
    let grey = 8 + 10 * step;
    let want = (r, g, b);
    if distance(want, (grey, grey, grey)) < distance(want, cube) {
        232 + step
    } else {
        cube_index
    }
}

/// The colour of a fixed palette index (16-255) as RGB.
pub fn rgb_of_256(i: u8) -> Option<(u8, u8, u8)> {
    match i {
        0..=15 => None,
        16..=231 => {
            let n = i - 16;
            Some((
                CUBE[(n / 36) as usize],
                CUBE[(n / 6 % 6) as usize],
                CUBE[(n % 6) as usize],
            ))
        }
        _ => {
            let v = 8 + 10 * (i - 232);
            Some((v, v, v))
        }
    }
}

/// "Redmean": a cheap distance that weighs the channels roughly as the eye does.
fn distance(a: (u8, u8, u8), b: (u8, u8, u8)) -> u32 {
    let rmean = (u32::from(a.0) + u32::from(b.0)) / 2;
    let dr = i32::from(a.0) - i32::from(b.0);
    let dg = i32::from(a.1) - i32::from(b.1);
    let db = i32::from(a.2) - i32::from(b.2);
    let (dr2, dg2, db2) = ((dr * dr) as u32, (dg * dg) as u32, (db * db) as u32);
    (((512 + rmean) * dr2) >> 8) + 4 * dg2 + (((767 - rmean) * db2) >> 8)
}

/// One of the 16 named colours for `#rrggbb`, chosen by hue family and
/// lightness rather than by distance to one assumed palette: the 16 look like
/// whatever the terminal's palette says, so only "which hue, bright or not"
/// carries over (a mint green must stay green, not become the nearest cyan).
pub fn rgb_to_16(r: u8, g: u8, b: u8) -> Color {
    let (h, s, l) = hsl(r, g, b);
    if l < 0.2 {
        // Backgrounds and near-black text: the palette's black.
        return Color::Black;
    }
    if s < 0.25 || l > 0.92 {
        return if l < 0.6 {
            Color::DarkGray
        } else if l < 0.85 {
            Color::Gray
        } else {
            Color::White
        };
    }
    let bright = l > 0.55;
    // Sectors of 60° centred on each primary and secondary.
    let sector = (((h + 30.0) % 360.0) / 60.0) as u8;
    match (sector, bright) {
        (0, false) => Color::Red,
        (0, true) => Color::LightRed,
        (1, false) => Color::Yellow,
        (1, true) => Color::LightYellow,
        (2, false) => Color::Green,
        (2, true) => Color::LightGreen,
        (3, false) => Color::Cyan,
        (3, true) => Color::LightCyan,
        (4, false) => Color::Blue,
        (4, true) => Color::LightBlue,
        (_, false) => Color::Magenta,
        (_, true) => Color::LightMagenta,
    }
}

/// An indexed colour on a 16-colour terminal: 0-15 are the named ones
/// already; the cube and the greys go by their RGB.
pub fn indexed_to_16(i: u8) -> Color {
    const NAMED: [Color; 16] = [
        Color::Black,
        Color::Red,
        Color::Green,
        Color::Yellow,
        Color::Blue,
        Color::Magenta,
        Color::Cyan,
        Color::Gray,
        Color::DarkGray,
        Color::LightRed,
        Color::LightGreen,
        Color::LightYellow,
        Color::LightBlue,
        Color::LightMagenta,
        Color::LightCyan,
        Color::White,
    ];
    match rgb_of_256(i) {
        None => NAMED[i as usize],
        Some((r, g, b)) => rgb_to_16(r, g, b),
    }
}

/// Hue in degrees, saturation and lightness in 0..=1.
fn hsl(r: u8, g: u8, b: u8) -> (f32, f32, f32) {
    let (r, g, b) = (
        f32::from(r) / 255.0,
        f32::from(g) / 255.0,
        f32::from(b) / 255.0,
    );
    let max = r.max(g).max(b);
    let min = r.min(g).min(b);
    let l = (max + min) / 2.0;
    let d = max - min;
    if d == 0.0 {
        return (0.0, 0.0, l);
    }
    let s = d / (1.0 - (2.0 * l - 1.0).abs());
    let h = if max == r {
        60.0 * ((g - b) / d).rem_euclid(6.0)
    } else if max == g {
        60.0 * ((b - r) / d + 2.0)
    } else {
        60.0 * ((r - g) / d + 4.0)
    };
    (h, s, l)
}

/// Whether a colour is one of the 16 named ANSI colours (or the terminal's own).
pub fn is_named(c: Color) -> bool {
    !matches!(c, Color::Rgb(..) | Color::Indexed(_))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ratatui::style::Modifier;

    use crate::ui::theme::{Role, BUILTIN_THEMES};

    fn env(term: Option<&str>, colorterm: Option<&str>) -> TermEnv {
        TermEnv {
            term: term.map(str::to_string),
            colorterm: colorterm.map(str::to_string),
            ..TermEnv::default()
        }
    }

    #[test]
    fn depth_from_term_and_colorterm() {
        use ColorDepth as D;
        let cases = [
            (None, None, D::None),
            (Some(""), None, D::None),
            (Some("dumb"), None, D::None),
            (Some("dumb"), Some("truecolor"), D::None),
            (Some("vt100"), None, D::None),
            (Some("vt220"), None, D::None),
            (Some("xterm-mono"), None, D::None),
            (Some("some-unknown-terminal"), None, D::None),
            (Some("xterm"), None, D::Ansi16),
            (Some("linux"), None, D::Ansi16),
            (Some("screen"), None, D::Ansi16),
            (Some("ansi"), None, D::Ansi16),
            (Some("xterm-color"), None, D::Ansi16),
            (Some("rxvt-unicode"), None, D::Ansi16),
            (Some("xterm-256color"), None, D::Ansi256),
            (Some("screen-256color"), None, D::Ansi256),
            (Some("tmux-256color"), None, D::Ansi256),
            (Some("xterm-256color"), Some("truecolor"), D::TrueColor),
            (Some("xterm-256color"), Some("24bit"), D::TrueColor),
            (Some("xterm-256color"), Some("yes"), D::Ansi256),
            (Some("xterm-direct"), None, D::TrueColor),
            // Over ssh COLORTERM stays behind, TERM comes along.
            (Some("xterm-kitty"), None, D::TrueColor),
            (Some("screen-256color"), Some("truecolor"), D::Ansi256),
        ];
        for (term, colorterm, want) in cases {
            assert_eq!(
                ColorDepth::from_env(&env(term, colorterm)),
                want,
                "TERM={term:?} COLORTERM={colorterm:?}"
            );
        }
        let tmux = TermEnv {
            term_program: Some("tmux".into()),
            ..env(Some("screen-256color"), Some("truecolor"))
        };
        assert_eq!(ColorDepth::from_env(&tmux), D::TrueColor);
        let apple = TermEnv {
            term_program: Some("Apple_Terminal".into()),
            ..env(Some("xterm"), None)
        };
        assert_eq!(ColorDepth::from_env(&apple), D::Ansi256);
    }

    #[test]
    fn no_color_wins_and_force_color_overrides_term() {
        let with = |no: Option<&str>, force: Option<&str>, term: Option<&str>| {
            ColorDepth::from_env(&TermEnv {
                no_color: no.map(str::to_string),
                force_color: force.map(str::to_string),
                ..env(term, Some("truecolor"))
            })
        };
        let rich = Some("xterm-256color");
        assert_eq!(with(Some("1"), None, rich), ColorDepth::None);
        assert_eq!(with(Some("1"), Some("3"), rich), ColorDepth::None);
        // An empty NO_COLOR is unset (no-color.org).
        assert_eq!(with(Some(""), None, rich), ColorDepth::TrueColor);
        assert_eq!(with(None, Some("0"), rich), ColorDepth::None);
        assert_eq!(with(None, Some("false"), rich), ColorDepth::None);
        assert_eq!(with(None, Some(""), Some("dumb")), ColorDepth::Ansi16);
        assert_eq!(with(None, Some("1"), Some("vt100")), ColorDepth::Ansi16);
        assert_eq!(with(None, Some("true"), None), ColorDepth::Ansi16);
        assert_eq!(with(None, Some("2"), Some("vt100")), ColorDepth::Ansi256);
        assert_eq!(with(None, Some("3"), Some("dumb")), ColorDepth::TrueColor);
    }

    #[test]
    fn rgb_to_the_nearest_of_the_256() {
        let cases = [
            ((0, 0, 0), 16),
            ((255, 255, 255), 231),
            ((0xff, 0, 0), 196),
            ((0x5f, 0xd7, 0x87), 78),
            ((0xff, 0xaf, 0x00), 214),
            ((0x80, 0x80, 0x80), 244),
            ((0x12, 0x12, 0x12), 233),
            ((0x1c, 0x24, 0x33), 235),
            ((0x60, 0xd8, 0x88), 78),
            ((0xfe, 0x01, 0x02), 196),
        ];
        for ((r, g, b), want) in cases {
            assert_eq!(rgb_to_256(r, g, b), want, "#{r:02x}{g:02x}{b:02x}");
        }
        // Every fixed palette colour maps back to itself.
        for i in 16..=255u8 {
            let (r, g, b) = rgb_of_256(i).unwrap();
            assert_eq!(rgb_to_256(r, g, b), i, "{i}");
        }
        assert_eq!(rgb_of_256(7), None);
    }

    #[test]
    fn rgb_to_16_keeps_the_hue_family_and_brightness() {
        use Color::*;
        let cases = [
            ((0x00, 0x00, 0x00), Black),
            ((0x1c, 0x24, 0x33), Black),
            ((0xff, 0xff, 0xff), White),
            ((0x8a, 0x8a, 0x8a), DarkGray),
            ((0xbc, 0xbc, 0xbc), Gray),
            ((0x5f, 0x6b, 0x7a), DarkGray),
            // Mint green is green, though cyan is nearer in RGB.
            ((0x5f, 0xd7, 0x87), LightGreen),
            ((0x00, 0x87, 0x00), Green),
            ((0x5f, 0xff, 0x5f), LightGreen),
            ((0xff, 0xaf, 0x00), Yellow),
            ((0xaf, 0x5f, 0x00), Yellow),
            ((0xff, 0xd7, 0x00), Yellow),
            ((0xff, 0xff, 0x87), LightYellow),
            ((0xff, 0x5f, 0x5f), LightRed),
            ((0xd7, 0x00, 0x00), Red),
            ((0xaf, 0x00, 0x00), Red),
            ((0x5f, 0xd7, 0xff), LightCyan),
            ((0x00, 0x5f, 0x87), Cyan),
            ((0x00, 0x00, 0xff), Blue),
            ((0x87, 0x87, 0xff), LightBlue),
            ((0x87, 0x00, 0x87), Magenta),
            ((0xd7, 0xaf, 0xff), LightMagenta),
        ];
        for ((r, g, b), want) in cases {
            assert_eq!(rgb_to_16(r, g, b), want, "#{r:02x}{g:02x}{b:02x}");
        }
    }

    #[test]
    fn indexed_to_16() {
        use Color::*;
        for (i, want) in [
            (0, Black),
            (1, Red),
            (7, Gray),
            (8, DarkGray),
            (9, LightRed),
            (15, White),
            (16, Black),
            (46, Green),
            (196, Red),
            (203, LightRed),
            (214, Yellow),
            (231, White),
            (244, DarkGray),
            (250, Gray),
        ] {
            assert_eq!(super::indexed_to_16(i), want, "{i}");
        }
    }

    #[test]
    fn colours_at_each_depth() {
        use ColorDepth as D;
        let rgb = Color::Rgb(0xff, 0x5f, 0x5f);
        assert_eq!(color_at_depth(rgb, D::TrueColor), rgb);
        assert_eq!(color_at_depth(rgb, D::Ansi256), Color::Indexed(203));
        assert_eq!(color_at_depth(rgb, D::Ansi16), Color::LightRed);
        assert_eq!(color_at_depth(rgb, ColorDepth::None), Color::Reset);
        let idx = Color::Indexed(214);
        assert_eq!(color_at_depth(idx, D::TrueColor), idx);
        assert_eq!(color_at_depth(idx, D::Ansi256), idx);
        assert_eq!(color_at_depth(idx, D::Ansi16), Color::Yellow);
        for named in [Color::Green, Color::DarkGray, Color::Reset] {
            for depth in [D::Ansi16, D::Ansi256, D::TrueColor] {
                assert_eq!(color_at_depth(named, depth), named);
            }
        }
    }

    #[test]
    fn themes_at_each_depth() {
        for name in BUILTIN_THEMES {
            let theme = Theme::builtin(name).unwrap();
            assert_eq!(theme.at_depth(ColorDepth::TrueColor), theme);
            assert_eq!(theme.at_depth(ColorDepth::None), Theme::mono());
            let t256 = theme.at_depth(ColorDepth::Ansi256);
            let t16 = theme.at_depth(ColorDepth::Ansi16);
            for role in Role::ALL {
                let (s, s256, s16) = (theme.style(role), t256.style(role), t16.style(role));
                for c in [s256.fg, s256.bg].into_iter().flatten() {
                    assert!(!matches!(c, Color::Rgb(..)), "{name} {role:?} {c:?}");
                }
                for c in [s16.fg, s16.bg].into_iter().flatten() {
                    assert!(is_named(c), "{name} {role:?} {c:?}");
                }
                // Only colours change: what is set stays set, modifiers stay.
                assert_eq!(
                    (s.fg.is_some(), s.bg.is_some()),
                    (s16.fg.is_some(), s16.bg.is_some())
                );
                assert_eq!(
                    (s.add_modifier, s.sub_modifier),
                    (s16.add_modifier, s16.sub_modifier)
                );
                assert_eq!(s.add_modifier, s256.add_modifier);
            }
        }
    }

    /// On a 16-colour terminal the statuses keep their meaning's hue: ok
    /// green, warn yellow, error red (fg, or bg for a badge).
    #[test]
    fn statuses_keep_their_hue_at_16_colours() {
        use Color::*;
        let family = |role: Role| match role {
            Role::Ok => [Green, LightGreen],
            Role::Warn => [Yellow, LightYellow],
            _ => [Red, LightRed],
        };
        for name in ["default", "light", "high-contrast", "ansi16"] {
            let t16 = Theme::builtin(name).unwrap().at_depth(ColorDepth::Ansi16);
            for role in [Role::Ok, Role::Warn, Role::Error] {
                let s = t16.style(role);
                let hue = s.bg.or(s.fg).unwrap();
                assert!(family(role).contains(&hue), "{name} {role:?}: {hue:?}");
            }
            assert!(t16.style(Role::Warn).add_modifier.contains(Modifier::BOLD));
        }
    }
}
