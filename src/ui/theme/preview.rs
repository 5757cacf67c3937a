//! `cutover themes`: every theme listed and previewed on stdout, drawn as
//! this terminal will draw it in the console (its colour depth, `NO_COLOR`),
//! or, when stdout is not a terminal, with each role's colours in words.
//!
//! The listing ([`catalogue`]) and the detection are the IO; what is printed
//! is [`render`], a pure function of the themes and an explicit [`Output`].

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use crossterm::style::{Attribute, Attributes, Color as CColor, ContentStyle};
use ratatui::style::{Color, Modifier, Style};

use super::{load_theme, ColorDepth, Role, Theme, BUILTIN_THEMES};

/// `cutover themes [NAME]`.
#[derive(Debug, clap::Args)]
pub struct ThemesArgs {
    /// Preview only this theme: a name, or the path of a theme file.
    pub name: Option<String>,
    /// A directory of <name>.toml themes, listed after the built-ins
    /// (default: the config's [ui] themes_dir).
    #[arg(long, value_name = "DIR")]
    pub themes_dir: Option<PathBuf>,
    /// Take [ui] themes_dir from this configuration file, and mark the theme
    /// its [ui] theme names.
    #[arg(short, long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

/// How the preview is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// Escape sequences for a terminal of this depth, as the console would
    /// draw (with no colour: mono, and the colours in words).
    Styled(ColorDepth),
    /// No escape sequences; each role's colours in words.
    Plain,
}

/// One theme in the list.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The name `--theme` and `[ui] theme` take (or the path given).
    pub name: String,
    /// `built-in`, or the file it was read from.
    pub source: String,
    /// The theme, or why it does not load.
    pub theme: Result<Theme, String>,
}

/// The command: lists (or, with NAME, shows one), prints, and exits 1 when a
/// listed theme file does not load (each such error is printed in its place).
pub fn run(args: ThemesArgs) -> anyhow::Result<ExitCode> {
    let mut themes_dir = args.themes_dir;
    let mut in_use = None;
    if let Some(path) = &args.config {
        let config = crate::config::load(path).map_err(|e| anyhow::anyhow!("{e}"))?;
        if themes_dir.is_none() {
            themes_dir = config.ui.themes_dir.clone();
        }
        in_use = Some(config.ui.theme.clone());
    }
    let entries = match &args.name {
        Some(name) => {
            let theme = load_theme(name, themes_dir.as_deref())?;
            let source = source_of(name, themes_dir.as_deref());
            vec![Entry {
                name: name.clone(),
                source,
                theme: Ok(theme),
            }]
        }
        None => catalogue(themes_dir.as_deref())?,
    };
    let output = if std::io::stdout().is_terminal() {
        Output::Styled(ColorDepth::detect())
    } else {
        Output::Plain
    };
    crate::exit::print_stdout(render(&entries, output, in_use.as_deref()).trim_end())?;
    Ok(if entries.iter().any(|e| e.theme.is_err()) {
        ExitCode::from(crate::exit::FOUND_PROBLEM)
    } else {
        ExitCode::SUCCESS
    })
}

fn source_of(name: &str, themes_dir: Option<&Path>) -> String {
    if name.contains('/') || name.ends_with(".toml") {
        return name.to_string();
    }
    match themes_dir.map(|d| d.join(format!("{name}.toml"))) {
        Some(file) if file.is_file() => file.display().to_string(),
        _ => "built-in".into(),
    }
}

/// The built-ins, in [`BUILTIN_THEMES`] order, then every `*.toml` in
/// `themes_dir` by name. A file named like a built-in replaces it, as it does
/// for `--theme`.
pub fn catalogue(themes_dir: Option<&Path>) -> anyhow::Result<Vec<Entry>> {
    let mut files = Vec::new();
    if let Some(dir) = themes_dir {
        let listing = std::fs::read_dir(dir)
            .with_context(|| format!("{}: cannot list the themes directory", dir.display()))?;
        for entry in listing {
            let path = entry
                .with_context(|| format!("{}: cannot list the themes directory", dir.display()))?
                .path();
            if path.extension().is_some_and(|x| x == "toml") && path.is_file() {
                if let Some(stem) = path.file_stem() {
                    files.push((stem.to_string_lossy().into_owned(), path));
                }
            }
        }
    }
    files.sort();
    let from_file = |name: &str, path: &Path| Entry {
        name: name.to_string(),
        source: path.display().to_string(),
        theme: load_theme(&path.display().to_string(), None).map_err(|e| e.to_string()),
    };
    let mut entries = Vec::new();
    for name in BUILTIN_THEMES {
        entries.push(match files.iter().find(|(n, _)| n == name) {
            Some((n, path)) => from_file(n, path),
            None => Entry {
                name: name.to_string(),
                source: "built-in".into(),
                theme: Ok(Theme::builtin(name).expect("listed built-ins exist")),
            },
        });
    }
    for (name, path) in &files {
        if !BUILTIN_THEMES.contains(&name.as_str()) {
            entries.push(from_file(name, path));
        }
    }
    Ok(entries)
}

/// The sample words, each in its role, on the theme's text background.
const SAMPLE: [(&str, Role); 9] = [
    ("✔ ok", Role::Ok),
    ("⚠ warn", Role::Warn),
    ("✖ error", Role::Error),
    ("muted", Role::Muted),
    ("text", Role::Text),
    ("title", Role::Title),
    ("accent", Role::Accent),
    ("selected", Role::Selected),
    ("╶ border ╴", Role::Border),
];

/// A line of styled pieces.
pub type Line = Vec<(String, Style)>;

/// Two lines showing every role as the console composes them: statuses on
/// the screen's text style, then the header band with statuses on it.
pub fn sample(theme: &Theme) -> [Line; 2] {
    let base = theme.style(Role::Text);
    let gap = || ("  ".to_string(), base);
    let mut roles = vec![gap()];
    for (i, (word, role)) in SAMPLE.iter().enumerate() {
        if i > 0 {
            roles.push(gap());
        }
        roles.push((word.to_string(), base.patch(theme.style(*role))));
    }
    let band = theme.style(Role::HeaderBg);
    let on_band = |t: &str, role: Role| (t.to_string(), band.patch(theme.style(role)));
    let header = vec![
        gap(),
        (" header  LIVE 12:00:42 UTC ".into(), band),
        on_band("● up", Role::Ok),
        (" ".into(), band),
        on_band("⚠ behind", Role::Warn),
        (" ".into(), band),
        on_band("✖ stale", Role::Error),
        (" ".into(), band),
    ];
    [roles, header]
}

/// What `cutover themes` prints for these entries.
pub fn render(entries: &[Entry], output: Output, in_use: Option<&str>) -> String {
    let mut out = String::new();
    let words = match output {
        Output::Plain => {
            out.push_str("Themes (stdout is not a terminal: each role's colours in words)\n");
            true
        }
        Output::Styled(ColorDepth::None) => {
            out.push_str(
                "Themes (no colour here, by NO_COLOR or TERM: the console draws each as \
                 mono; their colours in words)\n",
            );
            true
        }
        Output::Styled(depth) => {
            out.push_str(&format!(
                "Themes, as this terminal shows them ({})\n",
                depth.describe()
            ));
            false
        }
    };
    for e in entries {
        out.push('\n');
        let marker = if in_use == Some(e.name.as_str()) {
            "  (in use)"
        } else {
            ""
        };
        let title = format!("{}{marker}", e.name);
        out.push_str(&styled(&title, bold(), output));
        let theme = match &e.theme {
            Ok(t) => t,
            Err(why) => {
                out.push_str(&format!("  {}\n  ✖ does not load: {why}\n", e.source));
                continue;
            }
        };
        let what = if theme.description.is_empty() {
            String::new()
        } else {
            format!(" — {}", theme.description)
        };
        out.push_str(&format!("{what}  ({})\n", e.source));
        let shown = match output {
            Output::Styled(depth) => theme.at_depth(depth),
            Output::Plain => theme.clone(),
        };
        for line in sample(&shown) {
            for (text, style) in line {
                out.push_str(&styled(&text, style, output));
            }
            out.push('\n');
        }
        if words {
            for role in Role::ALL {
                out.push_str(&format!(
                    "    {:<10} {}\n",
                    role.key(),
                    describe(theme.style(role))
                ));
            }
        }
    }
    out
}

fn bold() -> Style {
    Style::new().add_modifier(Modifier::BOLD)
}

fn styled(text: &str, style: Style, output: Output) -> String {
    match output {
        Output::Plain => text.to_string(),
        Output::Styled(_) => content_style(style).apply(text).to_string(),
    }
}

/// A ratatui style as crossterm draws it, as ratatui's crossterm backend
/// does in the console.
pub fn content_style(style: Style) -> ContentStyle {
    let mut attributes = Attributes::default();
    for (m, a) in [
        (Modifier::BOLD, Attribute::Bold),
        (Modifier::DIM, Attribute::Dim),
        (Modifier::ITALIC, Attribute::Italic),
        (Modifier::UNDERLINED, Attribute::Underlined),
        (Modifier::REVERSED, Attribute::Reverse),
        (Modifier::SLOW_BLINK, Attribute::SlowBlink),
        (Modifier::RAPID_BLINK, Attribute::RapidBlink),
        (Modifier::HIDDEN, Attribute::Hidden),
        (Modifier::CROSSED_OUT, Attribute::CrossedOut),
    ] {
        if style.add_modifier.contains(m) {
            attributes.set(a);
        }
    }
    ContentStyle {
        foreground_color: style.fg.map(crossterm_color),
        background_color: style.bg.map(crossterm_color),
        underline_color: None,
        attributes,
    }
}

fn crossterm_color(c: Color) -> CColor {
    match c {
        Color::Reset => CColor::Reset,
        Color::Black => CColor::Black,
        Color::Red => CColor::DarkRed,
        Color::Green => CColor::DarkGreen,
        Color::Yellow => CColor::DarkYellow,
        Color::Blue => CColor::DarkBlue,
        Color::Magenta => CColor::DarkMagenta,
        Color::Cyan => CColor::DarkCyan,
        Color::Gray => CColor::Grey,
        Color::DarkGray => CColor::DarkGrey,
        Color::LightRed => CColor::Red,
        Color::LightGreen => CColor::Green,
        Color::LightYellow => CColor::Yellow,
        Color::LightBlue => CColor::Blue,
        Color::LightMagenta => CColor::Magenta,
        Color::LightCyan => CColor::Cyan,
        Color::White => CColor::White,
        Color::Indexed(i) => CColor::AnsiValue(i),
        Color::Rgb(r, g, b) => CColor::Rgb { r, g, b },
    }
}

/// A colour as a theme file writes it.
pub fn color_name(c: Color) -> String {
    match c {
        Color::Reset => "reset".into(),
        Color::Rgb(r, g, b) => format!("#{r:02x}{g:02x}{b:02x}"),
        Color::Indexed(i) => i.to_string(),
        named => format!("{named:?}").to_ascii_lowercase(),
    }
}

/// A role's style in words: `fg #121212 on #5fafd7, bold`.
pub fn describe(style: Style) -> String {
    let mut parts = Vec::new();
    match (style.fg, style.bg) {
        (Some(fg), Some(bg)) => parts.push(format!("fg {} on {}", color_name(fg), color_name(bg))),
        (Some(fg), None) => parts.push(format!("fg {}", color_name(fg))),
        (None, Some(bg)) => parts.push(format!("bg {}", color_name(bg))),
        (None, None) => {}
    }
    for (m, word) in [
        (Modifier::BOLD, "bold"),
        (Modifier::DIM, "dim"),
        (Modifier::ITALIC, "italic"),
        (Modifier::UNDERLINED, "underlined"),
        (Modifier::REVERSED, "reversed"),
    ] {
        if style.add_modifier.contains(m) {
            parts.push(word.into());
        }
    }
    if parts.is_empty() {
        "the terminal's own".into()
    } else {
        parts.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn builtins(names: &[&str]) -> Vec<Entry> {
        names
            .iter()
            .map(|n| Entry {
                name: n.to_string(),
                source: "built-in".into(),
                theme: Ok(Theme::builtin(n).unwrap()),
            })
            .collect()
    }

    /// The colour numbers of every `38;5;N` / `48;5;N` in `s`, and whether
    /// any 24-bit colour (`38;2;` / `48;2;`) is there.
    fn colours(s: &str) -> (Vec<u8>, bool) {
        let mut indexed = Vec::new();
        for prefix in ["38;5;", "48;5;"] {
            for (at, _) in s.match_indices(prefix) {
                let n: String = s[at + prefix.len()..]
                    .chars()
                    .take_while(char::is_ascii_digit)
                    .collect();
                indexed.push(n.parse().unwrap());
            }
        }
        (indexed, s.contains("38;2;") || s.contains("48;2;"))
    }

    /// crossterm drops colours itself when NO_COLOR is set in the process;
    /// these tests give the depth explicitly, so they must not depend on it.
    fn colours_on() {
        crossterm::style::Colored::set_ansi_color_disabled(false);
    }

    #[test]
    fn sample_shows_each_role_as_the_console_composes_it() {
        let hc = Theme::builtin("high-contrast").unwrap();
        let [roles, header] = sample(&hc);
        let piece = |line: &Line, word: &str| line.iter().find(|(t, _)| t == word).unwrap().1;
        let text = hc.style(Role::Text);
        // On the screen's black, a status keeps its own bg when it has one.
        assert_eq!(piece(&roles, "✔ ok"), text.patch(hc.style(Role::Ok)));
        assert_eq!(piece(&roles, "✔ ok").bg, text.bg);
        assert_eq!(piece(&roles, "✖ error").bg, hc.style(Role::Error).bg);
        assert_eq!(piece(&roles, "  "), text);
        let words: Vec<&str> = roles
            .iter()
            .map(|(t, _)| t.as_str())
            .filter(|t| *t != "  ")
            .collect();
        assert_eq!(words, SAMPLE.map(|(w, _)| w));
        let d = Theme::default();
        let [_, header_d] = sample(&d);
        let band = d.style(Role::HeaderBg);
        assert_eq!(piece(&header_d, "● up").fg, d.style(Role::Ok).fg);
        assert_eq!(piece(&header_d, "● up").bg, band.bg);
        assert!(header.iter().any(|(t, _)| t.contains("header")));
    }

    #[test]
    fn plain_output_says_the_colours_in_words() {
        let out = render(&builtins(&["default", "mono"]), Output::Plain, Some("mono"));
        assert!(!out.contains('\x1b'), "{out}");
        assert!(out.starts_with("Themes (stdout is not a terminal"));
        assert!(out.contains(
            "\ndefault — dark backgrounds; 24-bit colour that degrades to 256 and 16  (built-in)\n"
        ));
        assert!(out.contains("\nmono  (in use) — "));
        assert!(out.contains("  ✔ ok  ⚠ warn  ✖ error  muted  text  title  accent  selected"));
        for line in [
            "    ok         fg #5fd787",
            "    warn       fg #ffaf00, bold",
            "    text       the terminal's own",
            "    selected   fg #121212 on #5fafd7",
            "    error      bold, reversed",
            "    muted      dim",
        ] {
            assert!(out.lines().any(|l| l == line), "{line:?} in\n{out}");
        }
    }

    #[test]
    fn styled_output_at_each_depth() {
        colours_on();
        let entries = builtins(&["default", "light", "high-contrast"]);
        let out = render(&entries, Output::Styled(ColorDepth::TrueColor), None);
        assert!(out.contains("(24-bit colour)"));
        // default's ok, #5fd787, as written.
        assert!(out.contains("\x1b[38;2;95;215;135m✔ ok"), "{out:?}");
        assert!(!out.contains("    ok "), "no words when the colours show");

        let out = render(&entries, Output::Styled(ColorDepth::Ansi256), None);
        let (indexed, rgb) = colours(&out);
        assert!(!rgb && !indexed.is_empty());
        assert!(out.contains("\x1b[38;5;78m✔ ok"), "{out:?}");

        let out = render(&entries, Output::Styled(ColorDepth::Ansi16), None);
        let (indexed, rgb) = colours(&out);
        assert!(!rgb, "{out:?}");
        assert!(indexed.iter().all(|&i| i < 16), "{indexed:?}");
        // LightGreen is ANSI 10.
        assert!(out.contains("\x1b[38;5;10m✔ ok"), "{out:?}");

        // No colour: every theme as mono (attributes only), the colours in words.
        let out = render(&entries, Output::Styled(ColorDepth::None), None);
        let (indexed, rgb) = colours(&out);
        assert!(indexed.is_empty() && !rgb, "{out:?}");
        assert!(out.contains("\x1b[1m✔ ok"), "mono's bold ok: {out:?}");
        assert!(out.contains("    ok         fg #5fd787"));
    }

    #[test]
    fn catalogue_lists_builtins_then_the_directory() {
        let dir = tempfile::tempdir().unwrap();
        let write = |n: &str, t: &str| std::fs::write(dir.path().join(n), t).unwrap();
        write("dusk.toml", "extends = \"light\"\ndescription = \"dusk\"\n");
        write("default.toml", "description = \"ours\"\n");
        write("broken.toml", "[roles.ok]\nfg = \"grren\"\n");
        write("notes.txt", "not a theme");
        let entries = catalogue(Some(dir.path())).unwrap();
        let names: Vec<&str> = entries.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "default",
                "light",
                "high-contrast",
                "ansi16",
                "mono",
                "broken",
                "dusk"
            ]
        );
        // A file named like a built-in replaces it, as it does for --theme.
        assert_eq!(entries[0].theme.as_ref().unwrap().description, "ours");
        assert!(entries[0].source.ends_with("default.toml"));
        assert_eq!(entries[1].source, "built-in");
        let broken = entries[5].theme.as_ref().unwrap_err();
        assert!(broken.ends_with("broken.toml:2:6: roles.ok.fg: unknown colour \"grren\" (expected a name such as \"green\" or \"lightred\", an index 0-255, or \"#rrggbb\")"), "{broken}");
        let out = render(&entries, Output::Plain, None);
        assert!(
            out.contains(&format!("\n  ✖ does not load: {broken}\n")),
            "{out}"
        );

        let e = catalogue(Some(&dir.path().join("missing"))).unwrap_err();
        assert!(
            format!("{e:#}").contains("missing: cannot list the themes directory"),
            "{e:#}"
        );
        assert_eq!(catalogue(None).unwrap().len(), BUILTIN_THEMES.len());
    }

    #[test]
    fn content_style_and_words() {
        let s = Style::new()
            .fg(Color::LightRed)
            .bg(Color::Indexed(236))
            .add_modifier(Modifier::BOLD | Modifier::UNDERLINED);
        let c = content_style(s);
        assert_eq!(c.foreground_color, Some(CColor::Red));
        assert_eq!(c.background_color, Some(CColor::AnsiValue(236)));
        assert!(c.attributes.has(Attribute::Bold) && c.attributes.has(Attribute::Underlined));
        assert!(!c.attributes.has(Attribute::Dim));
        assert_eq!(describe(s), "fg lightred on 236, bold, underlined");
        assert_eq!(describe(Style::new().bg(Color::DarkGray)), "bg darkgray");
    }
}
