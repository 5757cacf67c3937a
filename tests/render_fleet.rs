//! Several databases in one window, drawn: a line per database over the
//! panes of the one selected (at 80×24 and 200×50), and with `a` one
//! confirmation listing every database's plan and the word that runs it.

mod screens;

use cutover::model::{keymap, Fleet, Model, View};
use cutover::runbook::Variant;
use cutover::session::EventKind;
use cutover::ui::Theme;
use ratatui::backend::TestBackend;
use ratatui::Terminal;

use screens::*;

/// A dump-restore session of database `name` on the fixture's servers.
fn db(name: &str) -> Fixture {
    let mut i = info();
    i.runbook = Variant::DumpRestore;
    i.database = Some(name.into());
    fresh_with(i)
}

fn draw(models: &[&Model], v: &View, w: u16, h: u16) -> String {
    let mut term = Terminal::new(TestBackend::new(w, h)).unwrap();
    term.draw(|f| cutover::ui::screen(f, models, v, &Theme::default()))
        .unwrap();
    text(&term)
}

fn three() -> (Vec<Fixture>, View) {
    let view = View {
        fleet: Some(Fleet::new(vec![
            "app".into(),
            "billing".into(),
            "inventory".into(),
        ])),
        ..View::default()
    };
    (vec![db("app"), db("billing"), db("inventory")], view)
}

#[test]
fn a_line_per_database_over_the_selected_ones_panes() {
    let (mut dbs, mut view) = three();
    // billing is frozen for 42 s.
    dbs[1].at(2.0).push(EventKind::FreezeGrants {
        id: 1,
        side: cutover::session::Side::Source,
        roles: vec!["app".into()],
        grants: vec![],
        read_only_role: None,
    });
    dbs[1].at(44.0).push(EventKind::Tick);
    keymap::dispatch(&dbs[0].model, &mut view, "]");
    let models: Vec<&Model> = dbs.iter().map(|f| &f.model).collect();
    for (w, h) in [(80, 24), (200, 50)] {
        let s = draw(&models, &view, w, h);
        let lines: Vec<&str> = s.lines().collect();
        assert!(lines[0].starts_with("3 databases"), "{s}");
        assert!(lines[1].starts_with("  app       PREPARE"), "{s}");
        assert!(lines[2].starts_with("▶ billing   "), "{s}");
        assert!(lines[2].contains("FROZEN 0:42 of "), "{s}");
        assert!(
            lines[3].starts_with("  inventory ") && lines[3].contains("writes open"),
            "{s}"
        );
        // Below: billing's own panes, its freeze in their header.
        assert!(lines[4].contains("❄ FROZEN 0:42"), "{s}");
        assert!(s.lines().last().unwrap().contains(" ] "), "{s}");
    }
    // The help names the database keys.
    keymap::dispatch(&dbs[1].model, &mut view, "?");
    let models: Vec<&Model> = dbs.iter().map(|f| &f.model).collect();
    let help = draw(&models, &view, 120, 40);
    for words in ["next database", "previous database", "for all databases"] {
        assert!(help.contains(words), "{words}\n{help}");
    }
}

#[test]
fn all_at_once_one_confirmation_lists_every_database() {
    let (mut dbs, mut view) = three();
    keymap::dispatch(&dbs[0].model, &mut view, "a");
    for f in dbs.iter_mut() {
        f.view = view.clone();
        f.key("F");
    }
    let models: Vec<&Model> = dbs.iter().map(|f| &f.model).collect();
    let s = draw(&models, &view, 200, 50);
    assert!(s.contains("Preflight checks — all databases"), "{s}");
    for name in ["app:", "billing:", "inventory:"] {
        assert!(s.contains(name), "{name}\n{s}");
    }
    assert!(s.contains("Type all to run it for 3 databases"), "{s}");
    assert!(s.contains("checkpoints go to ALL of them"), "{s}");
}
