//! Every built-in theme drawn at 80×24, 120×40 and 200×50 from the `full`
//! and `with_rollout` fixtures: the mono screens as text snapshots, the
//! coloured themes by the colours and attributes of the cells that carry a
//! status, and each truecolor theme brought down to 256 and 16 colours the
//! way the console brings it down (`theme::choose` at an explicit depth).

mod screens;

use ratatui::backend::TestBackend;
use ratatui::buffer::Cell;
use ratatui::style::{Color, Modifier, Style};
use ratatui::Terminal;

use cutover::session::{EventKind, Side};
use cutover::ui::theme::{choose, ColorDepth, ThemeRequest, BUILTIN_THEMES};
use cutover::ui::{Role, Theme};

use screens::*;

const SIZES: [(u16, u16); 3] = [(80, 24), (120, 40), (200, 50)];

fn fixtures() -> [(&'static str, Fixture); 2] {
    [("full", full()), ("rollout", with_rollout())]
}

/// The fixture with the target gone stale too, so an error status is on
/// screen beside the ok and warn ones.
fn with_stale_target(mut f: Fixture) -> Fixture {
    f.at(45.6).push(EventKind::CollectorFailed {
        side: Side::Target,
        error: "connection refused".into(),
    });
    f
}

fn builtin(name: &str) -> Theme {
    Theme::builtin(name).unwrap()
}

/// A theme as the console gets it on a terminal of `depth`.
fn at_depth(name: &str, depth: ColorDepth) -> Theme {
    let chosen = choose(&ThemeRequest::named(name), None, depth).unwrap();
    assert_eq!(chosen.warning, None);
    chosen.theme
}

fn cells(term: &Terminal<TestBackend>) -> &[Cell] {
    term.backend().buffer().content()
}

/// The first cell of the first place `needle` is on screen.
fn cell_of<'t>(term: &'t Terminal<TestBackend>, needle: &str) -> &'t Cell {
    let buf = term.backend().buffer();
    for y in 0..buf.area.height {
        let row: Vec<&Cell> = (0..buf.area.width).map(|x| &buf[(x, y)]).collect();
        let line: String = row.iter().map(|c| c.symbol()).collect();
        if let Some(byte) = line.find(needle) {
            return row[line[..byte].chars().count()];
        }
    }
    panic!("{needle:?} not on screen:\n{}", text(term));
}

/// What a cell drawn in `role` on `under` looks like: the role's colours,
/// else those under it, else the terminal's own; every modifier of both.
fn drawn(theme: &Theme, under: Style, role: Role) -> (Color, Color, Modifier) {
    let s = under.patch(theme.style(role));
    (
        s.fg.unwrap_or(Color::Reset),
        s.bg.unwrap_or(Color::Reset),
        s.add_modifier,
    )
}

fn looks(cell: &Cell) -> (Color, Color, Modifier) {
    (cell.fg, cell.bg, cell.modifier)
}

#[test]
fn mono_screens_as_text() {
    let mono = builtin("mono");
    for (name, f) in fixtures() {
        for (w, h) in SIZES {
            let term = render(&f.model, &mono, w, h);
            insta::assert_snapshot!(format!("mono_{name}_{w}x{h}"), text(&term));
        }
    }
}

/// Colour only reinforces: every theme, at every depth, draws the same
/// symbols and words in the same places.
#[test]
fn every_theme_draws_the_same_words() {
    let mono = builtin("mono");
    for (name, f) in fixtures() {
        for (w, h) in SIZES {
            let words = text(&render(&f.model, &mono, w, h));
            for theme in BUILTIN_THEMES {
                for depth in [
                    ColorDepth::TrueColor,
                    ColorDepth::Ansi256,
                    ColorDepth::Ansi16,
                ] {
                    let t = at_depth(theme, depth);
                    let got = text(&render(&f.model, &t, w, h));
                    assert_eq!(got, words, "{theme} at {depth:?}, {name} {w}x{h}");
                }
            }
        }
    }
}

/// The cell of each status symbol carries its role's colours and
/// attributes: on the screen's text style in the panes, on the header band
/// in the header.
#[test]
fn statuses_take_their_roles_in_every_theme() {
    for (fixture, f) in fixtures() {
        let f = with_stale_target(f);
        for name in BUILTIN_THEMES {
            let theme = builtin(name);
            let screen = theme.style(Role::Text);
            let band = screen.patch(theme.style(Role::HeaderBg));
            for (w, h) in SIZES {
                let term = render(&f.model, &theme, w, h);
                let at = format!("{name}, {fixture} {w}x{h}");
                for (needle, role, under) in [
                    ("✔ exact match", Role::Ok, screen),
                    ("… in flight", Role::Warn, screen),
                    ("▲ behind", Role::Warn, screen),
                    ("! failed", Role::Warn, screen),
                    ("● up", Role::Ok, band),
                    ("✖ stale since", Role::Error, band),
                ] {
                    assert_eq!(
                        looks(cell_of(&term, needle)),
                        drawn(&theme, under, role),
                        "{needle:?} in {at}"
                    );
                }
                // The ok row's ✔ has the theme's ok fg (or the terminal's own, in mono).
                let tick = cell_of(&term, "✔ exact match");
                assert_eq!(
                    tick.fg,
                    theme.style(Role::Ok).fg.unwrap_or(Color::Reset),
                    "{at}"
                );
            }
        }
    }
}

#[test]
fn high_contrast_statuses_are_bold_and_the_screen_is_painted() {
    let hc = builtin("high-contrast");
    let black = hc.style(Role::Text).bg.unwrap();
    for (fixture, f) in fixtures() {
        let mut f = with_stale_target(f);
        for (w, h) in SIZES {
            let term = render(&f.model, &hc, w, h);
            for needle in [
                "✔ exact match",
                "… in flight",
                "▲ behind",
                "! failed",
                "● up",
                "✖ stale since",
            ] {
                let cell = cell_of(&term, needle);
                assert!(
                    cell.modifier.contains(Modifier::BOLD),
                    "{needle:?} not bold in {fixture} {w}x{h}"
                );
                assert!(!cell.modifier.contains(Modifier::DIM));
            }
            // Warn and error are badges: light and dark, each with its own bg.
            assert_eq!(cell_of(&term, "▲ behind").bg, Color::Rgb(0xff, 0xd7, 0x00));
            assert_eq!(
                cell_of(&term, "✖ stale since").bg,
                Color::Rgb(0xaf, 0x00, 0x00)
            );
            assert!(cell_of(&term, "✖ stale since")
                .modifier
                .contains(Modifier::UNDERLINED));
            assert_eq!(cell_of(&term, "✔ exact match").bg, black);
            // Nothing is left to the terminal's own colours, nothing is dim.
            for cell in cells(&term) {
                assert_ne!(cell.bg, Color::Reset, "{fixture} {w}x{h}");
                assert_ne!(cell.fg, Color::Reset, "{fixture} {w}x{h}");
                assert!(!cell.modifier.contains(Modifier::DIM));
            }
        }
        // Dialogs too: help and the quit question are cleared to the theme.
        for key in ["?", "q"] {
            f.key(key);
            let term = render_view(&f.model, &f.view, &hc, 80, 24);
            for cell in cells(&term) {
                assert_ne!(cell.bg, Color::Reset, "{key:?} dialog in {fixture}");
            }
            f.key("Esc");
        }
    }
}

#[test]
fn mono_has_no_colour_but_keeps_its_attributes() {
    let mono = builtin("mono");
    for (fixture, f) in fixtures() {
        let f = with_stale_target(f);
        for (w, h) in SIZES {
            let term = render(&f.model, &mono, w, h);
            for cell in cells(&term) {
                assert_eq!(
                    (cell.fg, cell.bg),
                    (Color::Reset, Color::Reset),
                    "{fixture} {w}x{h}"
                );
            }
            // The statuses are told apart by attributes (and their words).
            let m = |needle| cell_of(&term, needle).modifier;
            assert!(m("✔ exact match").contains(Modifier::BOLD));
            assert!(m("▲ behind").contains(Modifier::UNDERLINED));
            assert!(m("✖ stale since").contains(Modifier::REVERSED));
        }
    }
}

#[test]
fn ansi16_uses_only_the_16_named_colours() {
    let theme = builtin("ansi16");
    for (fixture, f) in fixtures() {
        let f = with_stale_target(f);
        for (w, h) in SIZES {
            let term = render(&f.model, &theme, w, h);
            for cell in cells(&term) {
                for c in [cell.fg, cell.bg] {
                    assert!(
                        !matches!(c, Color::Rgb(..) | Color::Indexed(_)),
                        "{c:?} in {fixture} {w}x{h}"
                    );
                }
            }
            assert_eq!(cell_of(&term, "✔ exact match").fg, Color::Green);
            assert_eq!(cell_of(&term, "▲ behind").fg, Color::Yellow);
            assert_eq!(cell_of(&term, "✖ stale since").fg, Color::LightRed);
        }
    }
}

/// A 24-bit theme on a 256-colour terminal uses only palette indices, and
/// on a 16-colour one only the named colours, keeping each status's hue; on
/// a terminal without colour it is mono.
#[test]
fn truecolor_themes_brought_down_to_each_depth() {
    let is_rgb = |c: Color| matches!(c, Color::Rgb(..));
    for name in ["default", "light", "high-contrast"] {
        for (fixture, f) in fixtures() {
            let f = with_stale_target(f);
            for (w, h) in SIZES {
                let at = format!("{name}, {fixture} {w}x{h}");
                let full = render(&f.model, &at_depth(name, ColorDepth::TrueColor), w, h);
                assert!(cells(&full).iter().any(|c| is_rgb(c.fg)), "{at}");

                let t256 = render(&f.model, &at_depth(name, ColorDepth::Ansi256), w, h);
                assert!(
                    cells(&t256).iter().all(|c| !is_rgb(c.fg) && !is_rgb(c.bg)),
                    "{at}"
                );
                assert!(
                    cells(&t256)
                        .iter()
                        .any(|c| matches!(c.fg, Color::Indexed(_))),
                    "{at}"
                );

                let t16 = render(&f.model, &at_depth(name, ColorDepth::Ansi16), w, h);
                for cell in cells(&t16) {
                    for c in [cell.fg, cell.bg] {
                        assert!(
                            !matches!(c, Color::Rgb(..) | Color::Indexed(_)),
                            "{at}: {c:?}"
                        );
                    }
                }
                let hue = |needle: &str| {
                    let c = cell_of(&t16, needle);
                    // A badge's hue is its background.
                    if matches!(c.bg, Color::Reset | Color::Black | Color::White) {
                        c.fg
                    } else {
                        c.bg
                    }
                };
                assert!(
                    matches!(hue("✔ exact match"), Color::Green | Color::LightGreen),
                    "{at}"
                );
                assert!(
                    matches!(hue("▲ behind"), Color::Yellow | Color::LightYellow),
                    "{at}"
                );
                assert!(
                    matches!(hue("✖ stale since"), Color::Red | Color::LightRed),
                    "{at}"
                );
                // Attributes survive the colours' trip.
                assert_eq!(
                    cell_of(&t16, "▲ behind").modifier,
                    cell_of(&full, "▲ behind").modifier,
                    "{at}"
                );

                let none = render(&f.model, &at_depth(name, ColorDepth::None), w, h);
                assert!(
                    cells(&none)
                        .iter()
                        .all(|c| (c.fg, c.bg) == (Color::Reset, Color::Reset)),
                    "{at}"
                );
                assert_eq!(text(&none), text(&full));
            }
        }
    }
}
