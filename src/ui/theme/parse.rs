//! The theme file format: TOML with a `[roles.<role>]` table per role, read
//! into styles with every error naming file:line:column and the key.

use std::ops::Range;
use std::str::FromStr;

use ratatui::style::{Color, Modifier, Style};
use serde::Deserialize;
use toml::Spanned;

use super::{Role, ThemeError, BUILTIN_THEMES};

/// What one theme file says; a role it leaves out is `None`, to be taken
/// from the theme it extends.
pub(super) struct ParsedFile {
    pub name: Option<String>,
    pub description: Option<String>,
    /// The built-in named by `extends`, checked to exist.
    pub extends: Option<String>,
    pub roles: [Option<Style>; 10],
}

pub(super) fn file(text: &str, origin: &str) -> Result<ParsedFile, ThemeError> {
    let file: ThemeFile = toml::from_str(text).map_err(|e| {
        let p = crate::config::diag::toml_problem(text, &e, &theme_table_hint);
        let field = p
            .unknown
            .or(p.field)
            .unwrap_or_else(|| "(document)".to_string());
        invalid(text, origin, p.span.unwrap_or(0..0), field, p.message)
    })?;
    let extends = match file.extends {
        None => None,
        Some(base) if BUILTIN_THEMES.contains(&base.get_ref().as_str()) => Some(base.into_inner()),
        Some(base) => {
            return Err(invalid(
                text,
                origin,
                base.span(),
                "extends".into(),
                format!(
                    "unknown theme {:?} (a theme extends one of the built-in themes: {})",
                    base.get_ref(),
                    BUILTIN_THEMES.join(", ")
                ),
            ))
        }
    };
    let mut styles = [None; 10];
    let roles = file.roles.unwrap_or_default();
    for role in Role::ALL {
        if let Some(spec) = roles.get(role) {
            styles[role.index()] = Some(spec.to_style(text, origin, role)?);
        }
    }
    Ok(ParsedFile {
        name: file.name,
        description: file.description,
        extends,
        roles: styles,
    })
}

/// How the tables of a theme file are written, for "expected a table" messages.
fn theme_table_hint(field: &str) -> Option<String> {
    match field.strip_prefix("roles") {
        Some("") => Some("[roles]".into()),
        Some(role) if Role::ALL.iter().any(|r| role == format!(".{}", r.key())) => {
            Some(format!("[{field}] with fg, bg or modifiers"))
        }
        _ => None,
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ThemeFile {
    name: Option<String>,
    description: Option<String>,
    extends: Option<Spanned<String>>,
    roles: Option<RolesFile>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RolesFile {
    ok: Option<RoleSpec>,
    warn: Option<RoleSpec>,
    error: Option<RoleSpec>,
    muted: Option<RoleSpec>,
    title: Option<RoleSpec>,
    accent: Option<RoleSpec>,
    text: Option<RoleSpec>,
    selected: Option<RoleSpec>,
    border: Option<RoleSpec>,
    header_bg: Option<RoleSpec>,
}

impl RolesFile {
    fn get(&self, role: Role) -> Option<&RoleSpec> {
        match role {
            Role::Ok => self.ok.as_ref(),
            Role::Warn => self.warn.as_ref(),
            Role::Error => self.error.as_ref(),
            Role::Muted => self.muted.as_ref(),
            Role::Title => self.title.as_ref(),
            Role::Accent => self.accent.as_ref(),
            Role::Text => self.text.as_ref(),
            Role::Selected => self.selected.as_ref(),
            Role::Border => self.border.as_ref(),
            Role::HeaderBg => self.header_bg.as_ref(),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RoleSpec {
    fg: Option<Spanned<String>>,
    bg: Option<Spanned<String>>,
    #[serde(default)]
    modifiers: Vec<Spanned<String>>,
}

impl RoleSpec {
    fn to_style(&self, text: &str, origin: &str, role: Role) -> Result<Style, ThemeError> {
        let field = |name: &str| format!("roles.{}.{name}", role.key());
        let mut style = Style::default();
        if let Some(fg) = &self.fg {
            let c = parse_color(fg.get_ref())
                .map_err(|m| invalid(text, origin, fg.span(), field("fg"), m))?;
            style = style.fg(c);
        }
        if let Some(bg) = &self.bg {
            let c = parse_color(bg.get_ref())
                .map_err(|m| invalid(text, origin, bg.span(), field("bg"), m))?;
            style = style.bg(c);
        }
        for m in &self.modifiers {
            let modifier = parse_modifier(m.get_ref())
                .map_err(|msg| invalid(text, origin, m.span(), field("modifiers"), msg))?;
            style = style.add_modifier(modifier);
        }
        Ok(style)
    }
}

fn parse_color(s: &str) -> Result<Color, String> {
    let bad = || {
        format!(
            "unknown colour {s:?} (expected a name such as \"green\" or \"lightred\", \
             an index 0-255, or \"#rrggbb\")"
        )
    };
    if let Some(hex) = s.strip_prefix('#') {
        // ratatui also reads other hex forms; the file format promises exactly #rrggbb.
        if hex.len() != 6 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(bad());
        }
    }
    Color::from_str(s).map_err(|_| bad())
}

fn parse_modifier(s: &str) -> Result<Modifier, String> {
    Ok(match s.to_ascii_lowercase().as_str() {
        "bold" => Modifier::BOLD,
        "dim" => Modifier::DIM,
        "italic" => Modifier::ITALIC,
        "underlined" | "underline" => Modifier::UNDERLINED,
        "reversed" | "reverse" => Modifier::REVERSED,
        _ => {
            return Err(format!(
                "unknown modifier {s:?} (expected bold, dim, italic, underlined or reversed)"
            ))
        }
    })
}

pub(super) fn invalid(
    text: &str,
    origin: &str,
    span: Range<usize>,
    field: String,
    message: String,
) -> ThemeError {
    let (line, column) = crate::config::diag::line_col(text, span.start);
    ThemeError::Invalid {
        origin: origin.to_string(),
        line,
        column,
        field,
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::super::Role;
    use super::super::Theme;
    use ratatui::style::Color;

    #[test]
    fn bad_colour_names_file_line_column_and_field() {
        let text = "[roles.ok]\nfg = \"grren\"\n";
        let err = Theme::parse(text, "x.toml").unwrap_err().to_string();
        assert!(
            err.starts_with("x.toml:2:6: roles.ok.fg: unknown colour \"grren\""),
            "{err}"
        );
    }

    #[test]
    fn unknown_role_names_its_header() {
        let text = "[roles.ok]\nfg = \"green\"\n\n[roles.okk]\nfg = \"red\"\n";
        let err = Theme::parse(text, "x.toml").unwrap_err().to_string();
        assert!(err.starts_with("x.toml:4:"), "{err}");
        assert!(
            err.contains("roles.okk") && err.contains("unknown field"),
            "{err}"
        );
    }

    #[test]
    fn bad_modifier_and_hex() {
        let err = Theme::parse(
            "[roles.title]\nmodifiers = [\"bold\", \"blink\"]\n",
            "t.toml",
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.starts_with("t.toml:2:22: roles.title.modifiers:"),
            "{err}"
        );
        let err = Theme::parse("[roles.ok]\nbg = \"#12345\"\n", "t.toml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("roles.ok.bg"), "{err}");
        let t = Theme::parse("[roles.ok]\nfg = \"#10ff20\"\n", "t.toml").unwrap();
        assert_eq!(t.style(Role::Ok).fg, Some(Color::Rgb(0x10, 0xff, 0x20)));
    }

    #[test]
    fn every_error_names_line_column_and_key_in_words() {
        let cases = [
            (
                "[roles]\nok = \"red\"\n",
                "t.toml:2:6: roles.ok: expected a table ([roles.ok] with fg, bg or modifiers), found string \"red\"",
            ),
            (
                "roles = 5\n",
                "t.toml:1:9: roles: expected a table ([roles]), found integer 5",
            ),
            (
                "[roles.ok]\nfg = 5\n",
                "t.toml:2:6: roles.ok.fg: invalid type: integer 5, expected a string",
            ),
            (
                "[roles.ok]\nfg \"red\"\n",
                "t.toml:2:4: roles.ok.fg: missing \"=\" after the key (each line must be key = value)",
            ),
            (
                "colour = 1\n",
                "t.toml:1:1: colour: unknown field \"colour\" in [root] (expected one of name, description, extends, roles)",
            ),
            (
                "[roles.ok]\nfg = \"red\n",
                "t.toml:2:10: roles.ok.fg: invalid TOML: invalid basic string",
            ),
        ];
        for (text, want) in cases {
            let got = Theme::parse(text, "t.toml").unwrap_err().to_string();
            assert_eq!(got, want);
            assert!(!got.contains("RoleSpec") && !got.contains("RolesFile"));
        }
    }
}
