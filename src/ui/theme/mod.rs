//! Themes: semantic roles mapped to terminal styles, loaded from TOML.
//!
//! Panes ask for a role (`ok`, `warn`, …), never a colour, so a theme file is the
//! only place colours live. The built-in themes are compiled in so the binary
//! works from any directory; a themes directory or an explicit path can override.
//! A theme is brought down to the terminal's colour depth ([`depth`]) once, at
//! startup.

pub mod depth;
mod parse;
pub mod preview;

pub use depth::{ColorDepth, TermEnv};

use std::fmt;
use std::path::{Path, PathBuf};

use ratatui::style::Style;

const DEFAULT_TOML: &str = include_str!("../../../themes/default.toml");
const LIGHT_TOML: &str = include_str!("../../../themes/light.toml");
const HIGH_CONTRAST_TOML: &str = include_str!("../../../themes/high-contrast.toml");
const ANSI16_TOML: &str = include_str!("../../../themes/ansi16.toml");
const MONO_TOML: &str = include_str!("../../../themes/mono.toml");

/// The names that resolve without any file on disk, in the order `cutover
/// themes` lists them.
pub const BUILTIN_THEMES: [&str; 5] = ["default", "light", "high-contrast", "ansi16", "mono"];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    Ok,
    Warn,
    Error,
    Muted,
    Title,
    Accent,
    Text,
    Selected,
    Border,
    HeaderBg,
}

impl Role {
    pub const ALL: [Role; 10] = [
        Role::Ok,
        Role::Warn,
        Role::Error,
        Role::Muted,
        Role::Title,
        Role::Accent,
        Role::Text,
        Role::Selected,
        Role::Border,
        Role::HeaderBg,
    ];

    /// The key under `[roles]` in a theme file.
    pub fn key(self) -> &'static str {
        match self {
            Role::Ok => "ok",
            Role::Warn => "warn",
            Role::Error => "error",
            Role::Muted => "muted",
            Role::Title => "title",
            Role::Accent => "accent",
            Role::Text => "text",
            Role::Selected => "selected",
            Role::Border => "border",
            Role::HeaderBg => "header_bg",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Theme {
    pub name: String,
    /// One line on what the theme is for (the file's `description`).
    pub description: String,
    styles: [Style; 10],
}

impl Theme {
    /// Only what the theme sets: an unset fg/bg stays `None` so a span patched
    /// onto a header band keeps the band's background.
    pub fn style(&self, role: Role) -> Style {
        self.styles[role.index()]
    }

    /// A built-in theme by name (see [`BUILTIN_THEMES`]).
    pub fn builtin(name: &str) -> Option<Theme> {
        let text = builtin_text(name)?;
        let origin = format!("themes/{name}.toml (built-in)");
        // The root of every `extends` chain: what it leaves out is the terminal's own.
        let base = (name != "default").then(Theme::default);
        // Embedded files are checked by the test suite; failing here is a build bug.
        Some(Theme::parse_over(text, &origin, base).expect("built-in theme parses"))
    }

    pub fn mono() -> Theme {
        Theme::builtin("mono").expect("mono is built in")
    }

    /// The theme for a terminal, as [`Theme::for_terminal`] gives it, of
    /// the name or path `requested` (named by the operator: a failure is an
    /// error).
    pub fn from_env(requested: &str) -> Result<Theme, ThemeError> {
        Theme::from_env_in(requested, None)
    }

    /// [`Theme::from_env`] with a directory searched for named themes first.
    pub fn from_env_in(requested: &str, themes_dir: Option<&Path>) -> Result<Theme, ThemeError> {
        Theme::for_terminal(&ThemeRequest::named(requested), themes_dir)
    }

    /// The IO edge, once at startup and before the terminal is taken: detects
    /// the terminal's colour depth from the environment ([`ColorDepth::detect`]),
    /// [`choose`]s, and prints the fallback warning, if any, on stderr.
    pub fn for_terminal(
        request: &ThemeRequest,
        themes_dir: Option<&Path>,
    ) -> Result<Theme, ThemeError> {
        let chosen = choose(request, themes_dir, ColorDepth::detect())?;
        if let Some(warning) = &chosen.warning {
            crate::exit::note(warning);
        }
        Ok(chosen.theme)
    }

    /// [`choose`] for a named theme with `NO_COLOR` (no colour) or a
    /// 24-bit terminal, without the environment.
    pub fn resolve(
        requested: &str,
        themes_dir: Option<&Path>,
        no_color: bool,
    ) -> Result<Theme, ThemeError> {
        let depth = if no_color {
            ColorDepth::None
        } else {
            ColorDepth::TrueColor
        };
        choose(&ThemeRequest::named(requested), themes_dir, depth).map(|c| c.theme)
    }

    /// Parses theme TOML; `origin` names the file in error messages. The
    /// roles the file leaves out come from the built-in it `extends`, else
    /// from `default`.
    pub fn parse(text: &str, origin: &str) -> Result<Theme, ThemeError> {
        Theme::parse_over(text, origin, Some(Theme::default()))
    }

    /// [`Theme::parse`] with the base used when the file has no `extends`
    /// (`None`: the terminal's own style, for the built-in default itself).
    fn parse_over(text: &str, origin: &str, base: Option<Theme>) -> Result<Theme, ThemeError> {
        let file = parse::file(text, origin)?;
        let base = match &file.extends {
            Some(name) => Theme::builtin(name),
            None => base,
        };
        let mut styles = base.map_or([Style::default(); 10], |b| b.styles);
        for (style, own) in styles.iter_mut().zip(file.roles) {
            if let Some(own) = own {
                *style = own;
            }
        }
        let name = file.name.unwrap_or_else(|| {
            Path::new(origin)
                .file_stem()
                .map_or_else(|| origin.to_string(), |s| s.to_string_lossy().into_owned())
        });
        Ok(Theme {
            name,
            description: file.description.unwrap_or_default(),
            styles,
        })
    }
}

/// The TOML of a built-in theme, compiled in.
pub fn builtin_text(name: &str) -> Option<&'static str> {
    match name {
        "default" => Some(DEFAULT_TOML),
        "light" => Some(LIGHT_TOML),
        "high-contrast" => Some(HIGH_CONTRAST_TOML),
        "ansi16" => Some(ANSI16_TOML),
        "mono" => Some(MONO_TOML),
        _ => None,
    }
}

impl Default for Theme {
    fn default() -> Self {
        Theme::builtin("default").expect("default is built in")
    }
}

/// Which theme to load, and whether the operator asked for it by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThemeRequest {
    /// A theme name, or the path of a theme file.
    pub name: String,
    /// Named by `--theme` or `[ui] theme`. When false this is the implicit
    /// `default`, which may still be a broken `default.toml` in a themes
    /// directory.
    pub named: bool,
}

impl ThemeRequest {
    pub fn named(name: impl Into<String>) -> ThemeRequest {
        ThemeRequest {
            name: name.into(),
            named: true,
        }
    }

    /// Nobody asked: `default`.
    pub fn implicit() -> ThemeRequest {
        ThemeRequest {
            name: "default".into(),
            named: false,
        }
    }
}

impl From<&crate::config::UiCfg> for ThemeRequest {
    fn from(ui: &crate::config::UiCfg) -> ThemeRequest {
        ThemeRequest {
            name: ui.theme.clone(),
            named: ui.theme_named,
        }
    }
}

/// A theme ready to draw with, and a line for stderr when it is not the one
/// that was looked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chosen {
    pub theme: Theme,
    pub warning: Option<String>,
}

/// The fallback rule. A theme the operator named that fails to load is an
/// error that stops the program: drawing the war room's screen in another
/// theme than the one asked for would hide the mistake. The implicit
/// default that fails (a broken `default.toml` in the themes directory) is
/// nobody's choice, so the built-in default is used, with a warning.
pub fn fall_back(
    request: &ThemeRequest,
    loaded: Result<Theme, ThemeError>,
) -> Result<Chosen, ThemeError> {
    match loaded {
        Ok(theme) => Ok(Chosen {
            theme,
            warning: None,
        }),
        Err(e) if !request.named => Ok(Chosen {
            theme: Theme::default(),
            warning: Some(format!(
                "cutover: warning: {e}; using the built-in default theme"
            )),
        }),
        Err(e) => Err(e),
    }
}

/// Everything [`Theme::for_terminal`] does but reading the environment: on
/// a terminal without colour the mono theme (nothing is loaded, so not even
/// a broken theme file stops it); else the requested theme, by
/// [`fall_back`]'s rule, brought down to `depth`.
pub fn choose(
    request: &ThemeRequest,
    themes_dir: Option<&Path>,
    depth: ColorDepth,
) -> Result<Chosen, ThemeError> {
    if depth == ColorDepth::None {
        return Ok(Chosen {
            theme: Theme::mono(),
            warning: None,
        });
    }
    let chosen = fall_back(request, load_theme(&request.name, themes_dir))?;
    Ok(Chosen {
        theme: chosen.theme.at_depth(depth),
        ..chosen
    })
}

/// A name (`default`, `mono`, or `<themes_dir>/<name>.toml`) or a path to a
/// `.toml` file. A file in `themes_dir` shadows the built-in of the same name.
pub fn load_theme(name_or_path: &str, themes_dir: Option<&Path>) -> Result<Theme, ThemeError> {
    if name_or_path.contains('/') || name_or_path.ends_with(".toml") {
        return load_file(Path::new(name_or_path));
    }
    if let Some(dir) = themes_dir {
        let candidate = dir.join(format!("{name_or_path}.toml"));
        if candidate.is_file() {
            return load_file(&candidate);
        }
    }
    Theme::builtin(name_or_path).ok_or_else(|| ThemeError::NotFound {
        name: name_or_path.to_string(),
        looked_in: themes_dir.map(Path::to_path_buf),
    })
}

fn load_file(path: &Path) -> Result<Theme, ThemeError> {
    use crate::config::file;
    let io = |source| ThemeError::Io {
        path: path.to_path_buf(),
        source,
    };
    let bytes = file::read_limited(path, file::MAX_FILE_BYTES).map_err(io)?;
    let text = String::from_utf8(bytes).map_err(|e| {
        let text = String::from_utf8_lossy(e.as_bytes()).into_owned();
        let at = e.utf8_error().valid_up_to();
        parse::invalid(
            &text,
            &path.display().to_string(),
            at..at,
            "(document)".into(),
            "file is not valid UTF-8".into(),
        )
    })?;
    Theme::parse(&text, &path.display().to_string())
}

fn read_problem(e: &crate::config::file::ReadError) -> String {
    match e {
        crate::config::file::ReadError::Io(io) => format!("cannot read theme file: {io}"),
        other => other.to_string(),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ThemeError {
    #[error("{}: {}", path.display(), read_problem(source))]
    Io {
        path: PathBuf,
        #[source]
        source: crate::config::file::ReadError,
    },
    #[error("{origin}:{line}:{column}: {field}: {message}")]
    Invalid {
        origin: String,
        line: usize,
        column: usize,
        field: String,
        message: String,
    },
    #[error("unknown theme {name:?}: {}", NotFoundHint(looked_in.as_deref()))]
    NotFound {
        name: String,
        looked_in: Option<PathBuf>,
    },
}

struct NotFoundHint<'a>(Option<&'a Path>);

impl fmt::Display for NotFoundHint<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "built-in themes are {}", BUILTIN_THEMES.join(", "))?;
        if let Some(dir) = self.0 {
            write!(f, "; no such file in {}", dir.display())?;
        }
        write!(f, "; or give a path to a .toml file")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ratatui::style::{Color, Modifier};

    #[test]
    fn builtins_parse_and_mono_has_no_colour() {
        for name in BUILTIN_THEMES {
            Theme::builtin(name).unwrap();
        }
        let mono = Theme::mono();
        for role in Role::ALL {
            let s = mono.style(role);
            assert!(
                s.fg.is_none() && s.bg.is_none(),
                "{role:?} has a colour in mono"
            );
        }
        assert!(Theme::default().style(Role::Ok).fg.is_some());
    }

    #[test]
    fn a_theme_sets_only_the_roles_it_changes() {
        let default = Theme::default();
        // No `extends`: what the file leaves out is the default theme's.
        let t = Theme::parse("[roles.ok]\nfg = \"#00ff7f\"\n", "t.toml").unwrap();
        assert_eq!(
            t.style(Role::Ok),
            Style::new().fg(Color::Rgb(0, 0xff, 0x7f))
        );
        for role in Role::ALL.into_iter().filter(|r| *r != Role::Ok) {
            assert_eq!(t.style(role), default.style(role), "{role:?}");
        }
        // A role the file sets replaces that role whole: an empty table is
        // the terminal's own style, not "default's, unchanged".
        let t = Theme::parse("[roles.warn]\n", "t.toml").unwrap();
        assert_eq!(t.style(Role::Warn), Style::default());
        assert_eq!(t.name, "t");
    }

    #[test]
    fn extends_takes_the_rest_from_that_builtin() {
        let mono = Theme::mono();
        let t = Theme::parse(
            "name = \"mono-green\"\nextends = \"mono\"\ndescription = \"mono, ok in green\"\n\
             [roles.ok]\nfg = \"green\"\nmodifiers = [\"bold\"]\n",
            "t.toml",
        )
        .unwrap();
        assert_eq!(
            (t.name.as_str(), t.description.as_str()),
            ("mono-green", "mono, ok in green")
        );
        assert_eq!(
            t.style(Role::Ok),
            Style::new().fg(Color::Green).add_modifier(Modifier::BOLD)
        );
        for role in Role::ALL.into_iter().filter(|r| *r != Role::Ok) {
            assert_eq!(t.style(role), mono.style(role), "{role:?}");
        }
        assert_ne!(mono.style(Role::Error), Theme::default().style(Role::Error));
    }

    #[test]
    fn extends_an_unknown_theme_names_file_line_and_key() {
        let err = Theme::parse("name = \"x\"\nextends = \"dfault\"\n", "x.toml")
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            format!(
                "x.toml:2:11: extends: unknown theme \"dfault\" (a theme extends one of the \
                 built-in themes: {})",
                BUILTIN_THEMES.join(", ")
            )
        );
        let err = Theme::parse("extends = 3\n", "x.toml")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("x.toml:1:11: extends: invalid type: integer 3"),
            "{err}"
        );
    }

    #[test]
    fn every_builtin_sets_every_role_itself() {
        // A built-in that left a role to `default` would change whenever
        // default does; each says all ten, so each reads on its own.
        for name in BUILTIN_THEMES {
            let text = builtin_text(name).unwrap();
            let file = parse::file(text, name).unwrap();
            assert_eq!(file.extends, None, "{name}");
            for role in Role::ALL {
                assert!(
                    file.roles[role.index()].is_some(),
                    "{name} leaves out {role:?}"
                );
            }
            assert!(
                !Theme::builtin(name).unwrap().description.is_empty(),
                "{name}"
            );
        }
    }

    /// WCAG relative luminance of a `#rrggbb`.
    fn luminance(c: Color) -> f64 {
        let Color::Rgb(r, g, b) = c else {
            panic!("{c:?} is not #rrggbb")
        };
        let lin = |v: u8| {
            let v = f64::from(v) / 255.0;
            if v <= 0.03928 {
                v / 12.92
            } else {
                ((v + 0.055) / 1.055).powf(2.4)
            }
        };
        0.2126 * lin(r) + 0.7152 * lin(g) + 0.0722 * lin(b)
    }

    fn contrast(a: Color, b: Color) -> f64 {
        let (a, b) = (luminance(a), luminance(b));
        (a.max(b) + 0.05) / (a.min(b) + 0.05)
    }

    #[test]
    fn high_contrast_reads_at_7_to_1_with_nothing_dim() {
        let t = Theme::builtin("high-contrast").unwrap();
        let screen = t
            .style(Role::Text)
            .bg
            .expect("high-contrast paints the screen");
        for role in Role::ALL {
            let s = t.style(role);
            assert!(!s.add_modifier.contains(Modifier::DIM), "{role:?}");
            let (fg, bg) = (s.fg.unwrap(), s.bg.unwrap_or(screen));
            assert!(contrast(fg, bg) >= 7.0, "{role:?}: {:.1}", contrast(fg, bg));
        }
        // The statuses differ in lightness and attributes, not only in hue:
        // ok is light text on the black screen, warn a light badge, error a
        // dark badge with an underline besides.
        let (ok, warn, error) = (t.style(Role::Ok), t.style(Role::Warn), t.style(Role::Error));
        for s in [ok, warn, error] {
            assert!(s.add_modifier.contains(Modifier::BOLD));
        }
        assert_eq!(ok.bg, None);
        assert!(luminance(warn.bg.unwrap()) - luminance(error.bg.unwrap()) > 0.5);
        assert!(luminance(ok.fg.unwrap()) - luminance(screen) > 0.5);
        assert!(error.add_modifier.contains(Modifier::UNDERLINED));
        assert!(!ok.add_modifier.contains(Modifier::UNDERLINED));
        // The band is the screen's black, so text spans drawn on it match it.
        assert_eq!(t.style(Role::HeaderBg).bg, Some(screen));
    }

    #[test]
    fn default_and_light_read_on_their_backgrounds() {
        // The terminal's own background is not known: a typical one each.
        for (name, screens) in [
            (
                "default",
                [Color::Rgb(0, 0, 0), Color::Rgb(0x1e, 0x1e, 0x1e)],
            ),
            (
                "light",
                [Color::Rgb(0xff, 0xff, 0xff), Color::Rgb(0xfd, 0xf6, 0xe3)],
            ),
        ] {
            let t = Theme::builtin(name).unwrap();
            for role in [
                Role::Ok,
                Role::Warn,
                Role::Error,
                Role::Title,
                Role::Accent,
                Role::Muted,
            ] {
                let fg = t.style(role).fg.unwrap();
                for screen in screens {
                    let c = contrast(fg, screen);
                    assert!(c >= 4.5, "{name} {role:?} on {screen:?}: {c:.1}");
                }
            }
            for role in [Role::Selected, Role::HeaderBg] {
                let s = t.style(role);
                let c = contrast(s.fg.unwrap(), s.bg.unwrap());
                assert!(c >= 7.0, "{name} {role:?}: {c:.1}");
            }
            // Statuses on the header band read too.
            let band = t.style(Role::HeaderBg).bg.unwrap();
            for role in [Role::Ok, Role::Warn, Role::Error] {
                let c = contrast(t.style(role).fg.unwrap(), band);
                assert!(c >= 4.5, "{name} {role:?} on the band: {c:.1}");
            }
        }
    }

    #[test]
    fn ansi16_uses_only_the_named_colours() {
        let t = Theme::builtin("ansi16").unwrap();
        for role in Role::ALL {
            let s = t.style(role);
            for c in [s.fg, s.bg].into_iter().flatten() {
                assert!(depth::is_named(c) && c != Color::Reset, "{role:?}: {c:?}");
            }
        }
    }

    #[test]
    fn only_a_theme_nobody_named_falls_back() {
        let broken = || Theme::parse("[roles.ok]\nfg = \"grren\"\n", "themes/default.toml");
        let err = broken().unwrap_err().to_string();
        // Implicit: the built-in default, and one line saying why.
        let chosen = fall_back(&ThemeRequest::implicit(), broken()).unwrap();
        assert_eq!(chosen.theme, Theme::default());
        let warning = chosen.warning.unwrap();
        assert_eq!(
            warning,
            format!("cutover: warning: {err}; using the built-in default theme")
        );
        assert!(warning.starts_with("cutover: warning: themes/default.toml:2:6: roles.ok.fg:"));
        assert!(!warning.contains('\n'));
        // Named, even as "default": the error itself.
        for request in [ThemeRequest::named("default"), ThemeRequest::named("dusk")] {
            let e = fall_back(&request, broken()).unwrap_err();
            assert_eq!(e.to_string(), err);
        }
        let e = fall_back(&ThemeRequest::named("dusk"), load_theme("dusk", None)).unwrap_err();
        assert!(matches!(e, ThemeError::NotFound { .. }));
        // What loads is used as it is, named or not.
        let light = Theme::builtin("light").unwrap();
        for request in [ThemeRequest::implicit(), ThemeRequest::named("light")] {
            let chosen = fall_back(&request, Ok(light.clone())).unwrap();
            assert_eq!((chosen.theme, chosen.warning), (light.clone(), None));
        }
    }

    #[test]
    fn choose_loads_falls_back_and_brings_down_to_the_depth() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("default.toml"), "[roles.ok]\nbg = 5\n").unwrap();
        std::fs::write(
            dir.path().join("dusk.toml"),
            "extends = \"light\"\n[roles.ok]\nfg = \"#5fd787\"\n",
        )
        .unwrap();
        let dir = Some(dir.path());
        let implicit = choose(&ThemeRequest::implicit(), dir, ColorDepth::Ansi256).unwrap();
        assert_eq!(
            implicit.theme,
            Theme::default().at_depth(ColorDepth::Ansi256)
        );
        assert!(implicit
            .warning
            .unwrap()
            .contains("default.toml:2:6: roles.ok.bg:"));
        let named = choose(&ThemeRequest::named("default"), dir, ColorDepth::Ansi256);
        assert!(named
            .unwrap_err()
            .to_string()
            .contains("default.toml:2:6: roles.ok.bg:"));

        let dusk = choose(&ThemeRequest::named("dusk"), dir, ColorDepth::Ansi16).unwrap();
        assert_eq!(dusk.warning, None);
        assert_eq!(dusk.theme.style(Role::Ok).fg, Some(Color::LightGreen));
        assert_eq!(
            dusk.theme.style(Role::Error),
            Theme::builtin("light")
                .unwrap()
                .at_depth(ColorDepth::Ansi16)
                .style(Role::Error)
        );
        let dusk = choose(&ThemeRequest::named("dusk"), dir, ColorDepth::Ansi256).unwrap();
        assert_eq!(dusk.theme.style(Role::Ok).fg, Some(Color::Indexed(78)));

        // No colour: mono, without loading anything, so without failing.
        for request in [ThemeRequest::implicit(), ThemeRequest::named("nope")] {
            let c = choose(&request, dir, ColorDepth::None).unwrap();
            assert_eq!((c.theme, c.warning), (Theme::mono(), None));
        }
    }

    #[test]
    fn theme_files_are_read_with_a_limit() {
        let e = load_theme("/dev/zero", None).unwrap_err();
        assert_eq!(
            e.to_string(),
            "/dev/zero: is a character device, not a regular file; is this the right file?"
        );
        let e = load_theme("./missing-theme.toml", None).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("./missing-theme.toml: cannot read theme file: "),
            "{e}"
        );
    }
}
