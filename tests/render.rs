//! The view, drawn from models built the only way the program builds them:
//! by folding real events through `model::update`.

mod screens;

use chrono::Duration;
use ratatui::backend::TestBackend;
use ratatui::style::Color;
use ratatui::Terminal;

use cutover::model::{keymap, Model};
use cutover::session::{EventKind, Side};
use cutover::ui::{load_theme, Role, Theme, ThemeError};

use screens::*;

#[test]
fn full_80x24() {
    let f = full();
    let s = screen(&f.model, 80, 24);
    insta::assert_snapshot!("full_80x24", s);
    assert!(s.contains("1.5 MiB"), "{s}");
    assert!(s.contains("▲ behind"));
    assert!(s.contains("cutover_sub") && s.contains("debezium_orders"));
    // Counted while the slot was 1.5 MiB behind: the difference may be in flight.
    assert!(row(&s, "products").contains("-2 … in flight"));
    assert!(row(&s, "customers").contains("✔ exact match"));
    assert!(row(&s, "audit_log").contains("! failed"));
    assert!(row(&s, "audit_log").contains("! no PK"));
    assert!(row(&s, "order_items").contains("… counting"));
    assert!(s.contains("exact count: 4/6 source, 3/6 target, 2.1 s"));
    assert!(s.contains("d copying 1"));
    assert!(s.contains("12:00:42 UTC"));
    assert!(s.contains(
        "c count  v V verify  x cancel  F D P U W  Z C A E T B  X  n  o  ? help  q quit"
    ));
    // Every table fits at 80×24 together with the other panes.
    for (name, _, _) in TABLES {
        assert!(s.contains(name), "{name} missing");
    }
}

#[test]
fn full_200x50() {
    let f = full();
    let s = screen(&f.model, 200, 50);
    insta::assert_snapshot!("full_200x50", s);
    assert!(s.contains("1.5 MiB"));
    assert!(s.contains("public.order_items"));
    assert!(s.contains("d copying 1,234,567 rows"));
    assert!(s.contains("target: canceling statement due to statement timeout"));
    assert!(s.contains("write 12 ms · flush 35 ms · replay 35 ms"));
    assert!(s.contains("1 missed (·)"), "the failed poll is a gap: {s}");
    // Side by side: lag and row counts share a screen row.
    assert!(s
        .lines()
        .any(|l| l.contains("Replication lag") && l.contains("Row counts")));
}

#[test]
fn full_160x40_is_side_by_side() {
    let s = screen(&full().model, 160, 40);
    assert!(s
        .lines()
        .any(|l| l.contains("Replication lag") && l.contains("Row counts")));
    let s = screen(&full().model, 159, 40);
    assert!(!s
        .lines()
        .any(|l| l.contains("Replication lag") && l.contains("Row counts")));
}

/// The runbook's end drops the subscription (and its slot with it): the
/// panes say replication ended, in the neutral style, not "create it".
#[test]
fn after_the_subscription_is_dropped_replication_ended() {
    let mut f = full();
    let mut src = source(0);
    src.slots.retain(|s| s.name != "cutover_sub");
    src.senders.clear();
    let mut tgt = target(&[]);
    tgt.subscriptions.clear();
    tgt.sub_tables.clear();
    tgt.copies.clear();
    f.at(50.0)
        .push(EventKind::SourceSampled(src))
        .push(EventKind::TargetSampled(tgt));
    let theme = Theme::default();
    let term = render(&f.model, &theme, 200, 50);
    let s = text(&term);
    let dropped = "subscription cutover_sub dropped at 12:00:40 (seen until then)";
    // In the lag pane and in the slots pane, in the text colour.
    assert!(
        line_with(&s, "Replication lag").contains("slot cutover_sub"),
        "{s}"
    );
    assert!(
        s.contains(&format!("{dropped}: replication has ended.")),
        "{s}"
    );
    assert_eq!(s.matches(dropped).count(), 2, "{s}");
    assert_eq!(
        colour_of(&term, dropped).0,
        theme.style(Role::Text).fg.unwrap_or(Color::Reset)
    );
    assert!(!s.contains("create the subscription"), "{s}");
    assert!(!s.contains("No subscription on the target yet"), "{s}");
    // A session that never saw it still says how to get there.
    let s = screen(&fresh().model, 200, 50);
    assert!(!s.contains("dropped at"), "{s}");
    assert!(s.contains("create the subscription"), "{s}");
}

#[test]
fn before_replication_exists() {
    let f = fresh();
    let s = screen(&f.model, 80, 24);
    insta::assert_snapshot!("fresh_80x24", s);
    let flat = s.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        flat.contains("No replication slot \"cutover_sub\" on the source yet — create the subscription (see lab README.txt)"),
        "{s}"
    );
    assert!(s.contains("No replication slots on the source yet."));
    assert!(s.contains("No subscription on the target yet — expected \"cutover_sub\"."));
    assert!(s.contains("No publication on the source yet — expected \"cutover_pub\"."));
    assert!(line_with(&s, "orders").contains("✖ missing on target"));
    assert!(s.contains("estimates only"));
    let wide = screen(&f.model, 200, 50);
    assert!(
        wide.contains("No replication slot \"cutover_sub\" on the source yet"),
        "{wide}"
    );
}

#[test]
fn stale_target_after_collector_failure() {
    let mut f = full();
    f.at(45.0).push(EventKind::CollectorFailed {
        side: Side::Target,
        error: "connection refused\n\tIs the server running on host \"10.0.2.7\"?".into(),
    });
    f.at(47.0).push(EventKind::Tick);
    let s = screen(&f.model, 80, 24);
    insta::assert_snapshot!("stale_target_80x24", s);
    // Last good target sample was at 12:00:40.
    let l = line_with(&s, "target");
    assert!(
        l.contains("✖ stale since 12:00:40 (connection refused"),
        "{l}"
    );
    assert!(line_with(&s, "source").contains("● up"));
    let wide = screen(&f.model, 200, 50);
    assert!(
        wide.contains("✖ stale since 12:00:40 (connection refused Is the server running"),
        "{wide}"
    );
}

#[test]
fn stale_source_marks_lag_as_old() {
    let mut f = full();
    f.at(60.0).push(EventKind::Tick);
    let s = screen(&f.model, 80, 24);
    assert!(
        line_with(&s, "source").contains("✖ stale since 12:00:40 (no sample for 20 s)"),
        "{s}"
    );
    assert!(line_with(&s, "1.5 MiB").contains("as of 12:00:40"), "{s}");
}

#[test]
fn finished_count_and_missing_table() {
    let mut f = full();
    f.at(43.0)
        .counted(Side::Target, "orders", 1_250_031)
        .counted(Side::Source, "order_items", 3_400_120)
        .counted(Side::Target, "order_items", 3_399_990)
        .counted(Side::Source, "sessions", 42_017)
        .counted(Side::Target, "sessions", 42_017);
    f.at(43.9).push(EventKind::CountFinished {
        run: 1,
        cancelled: false,
    });
    f.at(44.0)
        .push(EventKind::TargetSampled(target(&["sessions"])));
    let s = screen(&f.model, 80, 24);
    insta::assert_snapshot!("done_80x24", s);
    assert!(s.contains("exact count done 12:00:43 (3.4 s)"), "{s}");
    assert!(row(&s, "orders").contains("✔ exact match"));
    assert!(row(&s, "order_items").contains("-130"));
    assert!(row(&s, "sessions").contains("✖ missing on target"));
    assert!(s.contains("c count · v verify"), "{s}");
}

/// Counts of one table in run `run`, as the runtime reports them.
fn counted_in(f: &mut Fixture, run: u64, table: &str, source: i64, target: i64) {
    for (side, rows) in [(Side::Source, source), (Side::Target, target)] {
        f.push(EventKind::CountProgress {
            run,
            side,
            table: t(table),
            rows,
            elapsed_ms: 300.0,
        });
    }
}

/// The 200×50 screen, asserting that `table`'s row reads `counts` then
/// `diff_state` (the difference and the state), the difference drawn in
/// `role`'s colour.
fn row_reads(f: &Fixture, table: &str, counts: &str, diff_state: &str, role: Role) -> String {
    let theme = Theme::default();
    let term = render(&f.model, &theme, 200, 50);
    let s = text(&term);
    let want = format!("{counts}{diff_state}");
    assert!(row(&s, table).contains(&want), "{want:?} in\n{s}");
    let fg = theme.style(role).fg.unwrap_or(Color::Reset);
    assert_eq!(
        colour_of(&term, diff_state).0,
        fg,
        "colour of {diff_state:?}"
    );
    s
}

/// The full fixture's count run finished, then the slot caught up (lag 0).
fn caught_up_after_the_count(f: &mut Fixture) {
    f.at(43.0).push(EventKind::CountFinished {
        run: 1,
        cancelled: false,
    });
    f.at(43.5).push(EventKind::SourceSampled(source(0)));
}

/// A difference counted while the slot lags may be rows in flight: said in
/// the warning style with the difference, not as an error. The same
/// difference counted at lag 0 is a MISMATCH.
#[test]
fn a_difference_is_in_flight_while_the_slot_lags_and_a_mismatch_at_lag_0() {
    let mut f = full();
    let s = row_reads(
        &f,
        "products",
        "5,000       4,998       ",
        "-2  … in flight",
        Role::Warn,
    );
    assert!(!s.contains("MISMATCH"), "{s}");
    caught_up_after_the_count(&mut f);
    f.at(44.0).key("c");
    counted_in(&mut f, 2, "products", 5_000, 4_998);
    row_reads(
        &f,
        "products",
        "5,000       4,998       ",
        "-2  ✖ MISMATCH",
        Role::Error,
    );
    // The smallest screen keeps what matters: the mismatch.
    let theme = Theme::default();
    let tiny = render(&f.model, &theme, 20, 5);
    assert_eq!(
        colour_of(&tiny, "✖ MISMATCH: 1 table").0,
        theme.style(Role::Error).fg.unwrap()
    );
}

/// A checksum is the latest word only until a newer count: after a
/// rollback, a count that differs shows as a difference, not "verified".
#[test]
fn a_newer_count_that_differs_is_not_hidden_by_an_older_checksum() {
    let mut f = full();
    caught_up_after_the_count(&mut f);
    f.at(44.0).push(EventKind::VerifyTableDone {
        run: 0,
        result: cutover::verify::TableVerify::new(t("orders")),
    });
    let s = screen(&f.model, 200, 50);
    assert!(row(&s, "orders").contains("✔ checksum verified"), "{s}");
    f.at(50.0).key("c");
    counted_in(&mut f, 2, "orders", 73_637, 85_581);
    row_reads(
        &f,
        "orders",
        "73,637      85,581  ",
        "+11,944  ✖ MISMATCH",
        Role::Error,
    );
    // A checksum after that count is the latest word again; the count's
    // difference stays on screen, muted.
    f.at(55.0).push(EventKind::VerifyTableDone {
        run: 0,
        result: cutover::verify::TableVerify::new(t("orders")),
    });
    row_reads(
        &f,
        "orders",
        "85,581  ",
        "+11,944  ✔ checksum verified",
        Role::Muted,
    );
}

#[test]
fn cancelled_count() {
    let mut f = full();
    f.at(43.0).key("x").push(EventKind::CountFinished {
        run: 1,
        cancelled: true,
    });
    let s = screen(&f.model, 80, 24);
    assert!(
        s.contains("exact count cancelled 12:00:43 (4/6 source, 3/6 target)"),
        "{s}"
    );
}

#[test]
fn lag_states() {
    let mut f = full();
    f.at(41.0).push(EventKind::SourceSampled(source(0)));
    assert!(screen(&f.model, 80, 24).contains("0 B  ✔ caught up"));
    f.at(42.0).push(EventKind::SourceSampled(source(40 * MIB)));
    let s = screen(&f.model, 80, 24);
    assert!(s.contains("40.0 MiB  ✖ over threshold"), "{s}");
}

#[test]
fn scrolling_moves_the_first_row() {
    let mut f = full();
    f.key("Down").key("Down");
    let s = f.screen(80, 24);
    let header = s
        .lines()
        .position(|l| l.starts_with("table"))
        .expect("header row");
    let first = s.lines().nth(header + 1).unwrap();
    assert!(first.starts_with("public.order_items"), "{s}");
    assert!(s.contains("rows 3–6 of 6"), "{s}");
    assert!(!s.contains("customers"));
}

#[test]
fn before_the_session_starts() {
    let s = screen(&Model::default(), 80, 24);
    insta::assert_snapshot!("empty_80x24", s);
    assert!(s.contains("waiting for the session to start"));
}

#[test]
fn narrow_and_short_terminals_stay_readable() {
    let mut f = full();
    f.at(45.0).push(EventKind::CollectorFailed {
        side: Side::Source,
        error: "could not connect to server: Connection refused".into(),
    });
    let s = screen(&f.model, 60, 18);
    insta::assert_snapshot!("stale_source_60x18", s);
    assert!(s.contains("✖ stale since 12:00:40"));
    assert!(row(&s, "products").contains("… in flight"));
    let s = screen(&f.model, 120, 40);
    insta::assert_snapshot!("stale_source_120x40", s);
}

#[test]
fn help_overlay() {
    let mut f = full();
    f.key("?");
    assert!(f.view.help);
    let s = f.screen(80, 24);
    insta::assert_snapshot!("help_80x24", s);
    for word in [
        "~ estimated",
        "… counting",
        "✔ exact match",
        "✖ MISMATCH",
        "✖ missing on target",
        "! failed",
        "✖ over threshold",
    ] {
        assert!(s.contains(word), "{word} not explained");
    }
}

#[test]
fn confirm_quit_overlay() {
    let mut f = full();
    f.key("q");
    assert!(f.view.confirm_quit);
    let s = f.screen(80, 24);
    insta::assert_snapshot!("confirm_quit_80x24", s);
    assert!(s.contains("A count, verification or Kubernetes action is running. Quit anyway? y / n"));
    // Still shown when the terminal has been shrunk.
    let small = f.screen(30, 8);
    assert!(small.contains("Quit"), "{small}");
}

/// The colours of the first cell of `needle` on screen.
fn colour_of(term: &Terminal<TestBackend>, needle: &str) -> (Color, Color) {
    let buf = term.backend().buffer();
    for y in 0..buf.area.height {
        let cells: Vec<_> = (0..buf.area.width).map(|x| &buf[(x, y)]).collect();
        let line: String = cells.iter().map(|c| c.symbol()).collect();
        if let Some(byte) = line.find(needle) {
            let col = line[..byte].chars().count();
            return (cells[col].fg, cells[col].bg);
        }
    }
    panic!("{needle:?} not on screen");
}

#[test]
fn default_theme_colours_follow_roles() {
    let mut f = full();
    f.at(45.0).push(EventKind::CollectorFailed {
        side: Side::Target,
        error: "connection refused".into(),
    });
    let theme = Theme::default();
    let term = render(&f.model, &theme, 80, 24);
    let fg = |role| theme.style(role).fg.unwrap_or(Color::Reset);
    assert_eq!(colour_of(&term, "… in flight").0, fg(Role::Warn));
    assert_eq!(colour_of(&term, "✔ exact match").0, fg(Role::Ok));
    assert_eq!(colour_of(&term, "! no PK").0, fg(Role::Warn));
    assert_eq!(colour_of(&term, "▲ behind").0, fg(Role::Warn));
    // Statuses in the header keep the header band's background.
    let band = theme.style(Role::HeaderBg).bg.unwrap();
    assert_eq!(colour_of(&term, "● up"), (fg(Role::Ok), band));
    assert_eq!(colour_of(&term, "✖ stale since"), (fg(Role::Error), band));
}

#[test]
fn mono_theme_has_no_colour() {
    let mono = load_theme("mono", None).unwrap();
    let mut f = full();
    for (w, h) in [(80, 24), (200, 50), (20, 5)] {
        for overlay in ["", "?"] {
            if !overlay.is_empty() {
                f.key(overlay);
            }
            let term = render_view(&f.model, &f.view, &mono, w, h);
            for cell in term.backend().buffer().content() {
                assert_eq!((cell.fg, cell.bg), (Color::Reset, Color::Reset), "{w}x{h}");
            }
            if !overlay.is_empty() {
                f.key("Esc");
            }
        }
    }
    // The default theme does use colour, so the check above means something.
    let term = render(&f.model, &Theme::default(), 80, 24);
    assert!(term
        .backend()
        .buffer()
        .content()
        .iter()
        .any(|c| c.fg != Color::Reset));
}

#[test]
fn no_panic_at_any_size() {
    let mut models = vec![Model::default(), fresh().model, full().model];
    let mut help = full();
    help.key("?");
    models.push(help.model);
    let mut quit = full();
    quit.key("q");
    models.push(quit.model);
    let sizes = [
        0u16, 1, 2, 3, 5, 9, 10, 11, 12, 17, 24, 39, 40, 41, 50, 79, 80, 100, 159, 160, 161, 240,
    ];
    for m in &models {
        for &w in &sizes {
            for &h in &sizes[..17] {
                render(m, &Theme::default(), w, h);
            }
        }
    }
}

#[test]
fn tiny_sizes_say_what_matters() {
    let f = full();
    let s = screen(&f.model, 20, 5);
    insta::assert_snapshot!("full_20x5", s);
    assert!(s.starts_with("LIVE 12:00:42"));
    assert!(s.contains("… exact count runni…"), "{s}");
    // One cell can only say that something was cut.
    assert_eq!(screen(&f.model, 1, 1), "…");
}

#[test]
fn themes_load_by_name_path_and_env_rule() {
    let d = load_theme("default", None).unwrap();
    assert_eq!(d.name, "default");
    assert!(d.style(Role::Error).fg.is_some());

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("dusk.toml"),
        "name = \"dusk\"\n[roles.ok]\nfg = \"#00ff7f\"\nmodifiers = [\"bold\"]\n",
    )
    .unwrap();
    let dusk = load_theme("dusk", Some(dir.path())).unwrap();
    assert_eq!(dusk.style(Role::Ok).fg, Some(Color::Rgb(0, 0xff, 0x7f)));
    // A name not in the directory still finds the built-ins.
    assert_eq!(load_theme("mono", Some(dir.path())).unwrap().name, "mono");
    let by_path = dir.path().join("dusk.toml");
    assert_eq!(
        load_theme(by_path.to_str().unwrap(), None).unwrap().name,
        "dusk"
    );

    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "[roles.warn]\nfg = \"yellow\"\nbg = \"not-a-colour\"\n",
    )
    .unwrap();
    let err = load_theme(bad.to_str().unwrap(), None).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.starts_with(&format!(
            "{}:3:6: roles.warn.bg: unknown colour",
            bad.display()
        )),
        "{msg}"
    );

    std::fs::write(&bad, "[roles.warn]\nfg = \"yellow\"\nblink = true\n").unwrap();
    let msg = load_theme(bad.to_str().unwrap(), None)
        .unwrap_err()
        .to_string();
    assert!(
        msg.starts_with(&format!("{}:3:1: roles.warn.blink:", bad.display())),
        "{msg}"
    );

    assert!(matches!(
        load_theme("nope", None),
        Err(ThemeError::NotFound { .. })
    ));
    assert!(matches!(
        load_theme("./missing.toml", None),
        Err(ThemeError::Io { .. })
    ));

    assert_eq!(Theme::resolve("default", None, true).unwrap().name, "mono");
    assert_eq!(
        Theme::resolve("default", None, false).unwrap().name,
        "default"
    );
    // NO_COLOR wins even over a theme that would fail to load.
    assert_eq!(Theme::resolve("nope", None, true).unwrap().name, "mono");
}

#[test]
fn rollout_pane_shows_pods_moving_to_the_new_config() {
    let f = with_rollout();
    let wide = screen(&f.model, 200, 50);
    insta::assert_snapshot!("rollout_200x50", wide);
    assert!(wide.contains("Pod rollout ─ prod-eu/shop"), "{wide}");
    assert!(wide.contains("● watching"));
    assert!(wide.contains("… 2 out of 3 new replicas have been updated"));
    // No access review yet: neither value is known, so no config is "new".
    assert!(wide.contains("unknown db b7e1c2d4 ×1 (current template)"));
    assert!(wide.contains("unknown db a1f0e9c3 ×2 (older pods)"));
    assert!(wide.contains("? ×1 (starting)"));
    assert!(!wide.contains("new db"), "{wide}");
    let new01 = line_with(&wide, "app-7c9f-new01");
    assert!(
        new01.contains("▸ app-7c9f-new01") && new01.contains("✔ ready"),
        "{new01}"
    );
    assert!(
        new01.contains("17s"),
        "age counts on from the snapshot: {new01}"
    );
    assert!(line_with(&wide, "app-7c9f-new02").contains("… pending"));
    let narrow = screen(&f.model, 80, 24);
    insta::assert_snapshot!("rollout_80x24", narrow);
    let summary = line_with(&narrow, "app 3/3 ready");
    assert!(
        summary.contains("unknown db b7e1c2d4×1 unknown db a1f0e9c3×2 starting 1"),
        "{narrow}"
    );
    assert!(narrow.contains("q quit"), "footer still there:\n{narrow}");
}

/// Which database each pod's config points at, by fingerprint, and whether
/// the config object differs from what the running pods use: through the
/// access review, the switch and the rollback as the executor reports them.
#[test]
fn rollout_pane_says_which_db_each_pod_uses_and_whether_the_config_moved() {
    let mut f = with_rollout();
    preflight_done(&mut f, 46.0);
    let wide = screen(&f.model, 200, 50);
    assert!(
        wide.contains(
            "db config new db b7e1c2d4 ×1 (current template) · old db a1f0e9c3 ×2 (older pods)"
        ),
        "{wide}"
    );
    assert!(line_with(&wide, "app-5d4a-old01").contains("a1f0e9c3 old db"));
    assert!(line_with(&wide, "app-7c9f-new01").contains("b7e1c2d4 new db"));
    // The key still holds the old value, yet a pod runs the new one.
    assert!(
        wide.contains(
            "! config on the old db, pods not restarted yet: now old db a1f0e9c3 (12:00:46) \
             · 1 pod on new db b7e1c2d4"
        ),
        "{wide}"
    );
    // The switch, overridden (no freeze yet), run and reported.
    for k in ["S", "a", "p", "p", "-", "d", "b", "Tab"] {
        f.at(46.5).key(k);
    }
    for c in "rehearsal on the lab".chars() {
        f.at(46.5).key(&c.to_string());
    }
    f.at(46.5).key("Enter");
    let id = f.model.next_run;
    let run = f.model.actions.running().expect("the switch started");
    let step = run.plan.steps[0].clone();
    f.at(47.0)
        .push(EventKind::StepStarted { id, index: 0, step });
    f.at(47.0).push(EventKind::StepDone {
        id,
        index: 0,
        message: "patched".into(),
        elapsed_ms: 30.0,
    });
    f.at(47.0).push(EventKind::RunFinished {
        id,
        ok: true,
        message: "switched".into(),
        switched: Some(cutover::session::SwitchRecord {
            object: "configmap/app-db".into(),
            key: "DATABASE_URL".into(),
            previous_fingerprint: Some("a1f0e9c3".into()),
            new_fingerprint: "b7e1c2d4".into(),
            changed: true,
        }),
    });
    let wide = screen(&f.model, 200, 50);
    assert!(
        wide.contains(
            "! config switched, pods not restarted yet: now new db b7e1c2d4 (12:00:47) \
             · 2 pods on old db a1f0e9c3"
        ),
        "{wide}"
    );
    let narrow = screen(&f.model, 80, 24);
    assert!(
        line_with(&narrow, "app 3/3 ready")
            .contains("[███░░] config switched: 2 pods not restarted · new db b7e1c2d4×1"),
        "{narrow}"
    );
    // Every pod restarted onto the new value.
    let mut w = f.model.workloads["app"].clone();
    w.pods.retain(|p| p.updated);
    w.pods[1].db_config = Some("b7e1c2d4".into());
    f.at(60.0).push(EventKind::WorkloadSampled(w));
    let wide = screen(&f.model, 200, 50);
    assert!(
        wide.contains("config now new db b7e1c2d4 (12:00:47) · every running pod uses it"),
        "{wide}"
    );
    assert!(!wide.contains("not restarted"), "{wide}");
}

#[test]
fn rollout_pane_goes_stale_when_the_api_is_lost() {
    let mut f = with_rollout();
    f.at(46.0).push(EventKind::KubeFailed {
        error: "watching: connection refused".into(),
    });
    let wide = screen(&f.model, 200, 50);
    // Stale since the last answer; the reason under the title, which a long
    // message would not fit in.
    let last_answer = line_with(&wide, "Pod rollout");
    assert!(last_answer.contains("✖ stale since 12:00:4"), "{wide}");
    assert!(
        wide.contains("✖ not current: watching: connection refused"),
        "{wide}"
    );
    assert!(!wide.contains("● watching"));
}

#[test]
fn switch_dialog_shows_the_patch_the_guards_and_what_to_type() {
    let mut f = with_rollout();
    preflight_done(&mut f, 46.0);
    for k in ["S", "a", "p"] {
        f.at(46.5).key(k);
    }
    let narrow = f.screen(80, 24);
    insta::assert_snapshot!("switch_dialog_80x24", narrow);
    assert!(narrow.contains("Switch database config"), "{narrow}");
    assert!(
        narrow.contains(r#"{"data":{"DATABASE_URL":"<sha256:b7e1c2d4>"}}"#),
        "{narrow}"
    );
    assert!(narrow.contains("✔ Access review"), "{narrow}");
    assert!(
        narrow.contains("✔ Replication caught up — lag 1.5 MiB (bound 16.0 MiB)"),
        "{narrow}"
    );
    assert!(narrow.contains("Type app-db to confirm: ap█"), "{narrow}");
    // Not frozen: the switch is blocked, with the reason and the way to
    // override it.
    assert!(
        narrow.contains("✖ Writes frozen on the source — not frozen: Z takes the application"),
        "{narrow}"
    );
    assert!(
        narrow.contains("✖ a guard fails: Enter does nothing"),
        "{narrow}"
    );
}

#[test]
fn action_line_reports_steps_and_the_outcome() {
    let mut f = with_rollout();
    preflight_done(&mut f, 46.0);
    // Restarting needs no lag guard: R, the name, Enter.
    for k in ["R", "a", "p", "p", "Enter"] {
        f.at(46.5).key(k);
    }
    let id = f.model.next_run;
    let run = f.model.actions.running().expect("the restart started");
    assert_eq!(
        run.checkpoint,
        cutover::runbook::CheckpointId::RolloutRestart
    );
    let step = run.plan.steps[0].clone();
    f.at(47.0)
        .push(EventKind::StepStarted { id, index: 0, step });
    let narrow = screen(&f.model, 80, 24);
    assert!(
        narrow.contains("⟳ Rollout-restart workloads: restart deployment/app …"),
        "{narrow}"
    );
    f.at(47.0).push(EventKind::StepDone {
        id,
        index: 0,
        message: "restarted deployment/app (restartedAt 2023-11-14T22:13:47Z)".into(),
        elapsed_ms: 40.0,
    });
    let narrow = screen(&f.model, 80, 24);
    assert!(
        narrow.contains("⟳ Rollout-restart workloads: restarted deployment/app"),
        "{narrow}"
    );
    f.at(52.0).push(EventKind::RunFinished {
        id,
        ok: false,
        message: "rollout of app exceeded its progress deadline after 5.0 s: ReplicaSet \"app-7c9f\" has timed out progressing.".into(),
        switched: None,
    });
    let wide = screen(&f.model, 200, 50);
    insta::assert_snapshot!("action_failed_200x50", wide);
    // The run pane under the runbook says it all: the step done, the end.
    assert!(
        wide.contains("Run ─ Rollout-restart workloads · ✖ failed 12:00:52 after 5.5 s"),
        "{wide}"
    );
    assert!(
        wide.contains("✔ 1. restart deployment/app — restarted deployment/app (restartedAt")
            && wide.contains("2023-11-14T22:13:47Z) (40 ms)")
            && wide.contains("◌ 2. rollout of app"),
        "{wide}"
    );
    assert!(
        wide.contains("✖ rollout of app exceeded its progress deadline"),
        "{wide}"
    );
}

#[test]
fn failed_create_warning_is_shown_under_the_workload() {
    let mut f = with_rollout();
    let mut w = f.model.workloads["app"].clone();
    w.warnings = vec![cutover::kube::EventSnapshot {
        reason: "FailedCreate".into(),
        message: "Error creating: pods \"app-7c9f-\" is forbidden: exceeded quota: compute, requested: cpu=500m".into(),
        object: "replicaset/app-7c9f".into(),
        count: 3,
        last_seen: "2023-11-14T22:13:46Z".into(),
    }];
    f.at(46.0).push(EventKind::WorkloadSampled(w));
    let wide = screen(&f.model, 200, 50);
    insta::assert_snapshot!("rollout_warning_200x50", wide);
    let line = line_with(&wide, "FailedCreate");
    assert!(
        line.contains("⚠ FailedCreate replicaset/app-7c9f"),
        "{line}"
    );
    assert!(line.contains("×3"), "{line}");
    let narrow = screen(&f.model, 80, 24);
    assert!(
        line_with(&narrow, "app 3/3 ready").contains("⚠ FailedCreate"),
        "{narrow}"
    );
}

/// Continuous verification as the war room reads it: the pane title says how
/// far the passes got, each row its verified fraction, a confirmed mismatch
/// names the row.
#[test]
fn continuous_verification_in_the_counts_pane() {
    let mut f = full();
    f.at(43.0).push(EventKind::CountFinished {
        run: 1,
        cancelled: false,
    });
    f.at(44.0)
        .push(EventKind::Command(keymap::SessionCommand::VerifyContinuous));
    let live = |table: &str, verified: u64, hot: u64, diffs: serde_json::Value| {
        let mismatched = diffs.as_array().map_or(0, |d| d.len()) as u64;
        let progress = serde_json::from_value(serde_json::json!({
            "table": {"schema": "public", "name": table},
            "pass": 3, "method": "primary_key",
            "ranges_total": 20, "ranges_verified": verified,
            "ranges_pending": 20 - verified - mismatched, "ranges_mismatched": mismatched,
            "ranges_hot": hot,
            "rows_total": 2000, "rows_verified": verified * 100,
            "rows_per_sec": 50000.0, "eta_secs": 12.0,
            "differences": diffs,
        }))
        .unwrap();
        EventKind::VerifyLive { run: 2, progress }
    };
    f.at(45.0)
        .push(live("customers", 20, 0, serde_json::json!([])))
        .push(live("orders", 15, 2, serde_json::json!([])))
        .push(live(
            "products",
            19,
            0,
            serde_json::json!([{"key": "id=42", "kind": "changed", "columns": ["price"]}]),
        ));
    let wide = screen(&f.model, 200, 50);
    assert!(
        wide.contains("continuous verify: pass 3, 1/6 tables verified"),
        "{wide}"
    );
    assert!(
        line_with(&wide, ".customers ").contains("checksum verified"),
        "{wide}"
    );
    assert!(
        line_with(&wide, ".orders ").contains("75% verified"),
        "{wide}"
    );
    assert!(
        line_with(&wide, ".products ").contains("✖ rows differ"),
        "{wide}"
    );
    assert!(
        line_with(&wide, "id=42").contains("1 row differs: id=42 changed (price)"),
        "{wide}"
    );
    let narrow = screen(&f.model, 80, 24);
    assert!(narrow.contains("live verify: pass 3"), "{narrow}");
    assert!(row_has(&narrow, "orders", "75%"), "{narrow}");
}

fn row_has(screen: &str, table: &str, needle: &str) -> bool {
    screen.lines().any(|l| {
        (l.contains(&format!("{table} ")) || l.contains(&format!(".{table} ")))
            && l.contains(needle)
    })
}

/// The footer and the help are drawn from the one keymap: every binding of
/// the main layer is on screen in one of them, and a read-only session shows
/// (and binds) none of the dangerous ones.
#[test]
fn the_keymap_is_the_footer_and_the_help() {
    use cutover::model::keymap::{Layer, BINDINGS};
    let label = |k: &str| match k {
        "Down" => "↓".to_string(),
        "Up" => "↑".to_string(),
        "Ctrl-c" => "^C".to_string(),
        k => k.to_string(),
    };
    let mut live = with_rollout();
    let main = live.screen(80, 24);
    let footer = main.lines().last().unwrap().to_string();
    live.key("?");
    let help = live.screen(80, 24);
    // Every key of this (logical) runbook; the dump-and-restore one's
    // copy key is not offered here.
    // (The database keys only in a session of several.)
    let of_this_runbook = |b: &&cutover::model::keymap::Binding| {
        use cutover::model::keymap::Command as C;
        !matches!(b.command, C::Open(id) if !cutover::runbook::logical().contains(&id))
            && !matches!(
                b.command,
                C::NextDatabase | C::PreviousDatabase | C::ToggleAll
            )
    };
    let mut other = BINDINGS.iter().filter(|b| !of_this_runbook(b));
    assert!(other.any(|b| b.keys[0] == "Y"));
    for b in BINDINGS
        .iter()
        .filter(|b| b.layer == Layer::Main)
        .filter(of_this_runbook)
    {
        let key = label(b.keys[0]);
        let in_footer = b.footer.is_some() && footer.contains(&key);
        assert!(
            in_footer || help.contains(b.help),
            "{key} ({}) is in neither the footer nor the help:\n{footer}\n{help}",
            b.help
        );
    }
    assert!(!help.contains("dump and restore"), "{help}");
    // Too many groups for 80 columns: the keys stay, the words go from the
    // right (help and quit keep theirs; the help says the rest).
    assert!(
        footer.contains("F D P U W  Z C A E S R T B  X  n  o  ? help  q quit"),
        "{footer}"
    );

    let mut ro = with_rollout();
    let mut i = info();
    i.read_only = true;
    i.kubernetes = live.model.info.as_ref().unwrap().kubernetes.clone();
    ro.push(EventKind::SessionStarted(Box::new(i)));
    let ro_screen = ro.screen(80, 24);
    assert!(
        ro_screen.lines().next().unwrap().contains("READ-ONLY"),
        "{ro_screen}"
    );
    let footer = ro_screen.lines().last().unwrap().to_string();
    assert!(!footer.contains("S R B"), "{footer}");
    ro.key("S");
    assert_eq!(ro.model.dialog, None, "S is not bound read-only");
    ro.key("?");
    let help = ro.screen(80, 24);
    // A help cell is the key(s), padded, then what it does.
    let cell = |b: &cutover::model::keymap::Binding| {
        let keys: Vec<String> = b.keys.iter().map(|k| label(k)).collect();
        format!("{:<6} {}", keys.join(" "), b.help)
    };
    for b in BINDINGS.iter().filter(|b| b.dangerous) {
        assert!(
            !help.contains(&cell(b)),
            "{} shown read-only:\n{help}",
            cell(b)
        );
    }
    // `?` is said by the help's own title (and the footer), not a cell.
    assert!(help.contains("? or Esc closes"), "{help}");
    for b in BINDINGS.iter().filter(|b| {
        b.layer == Layer::Main
            && !b.dangerous
            && b.command != keymap::Command::ToggleHelp
            && !matches!(
                b.command,
                keymap::Command::NextDatabase | keymap::Command::PreviousDatabase
            )
    }) {
        assert!(
            help.contains(&cell(b)),
            "{} missing read-only:\n{help}",
            cell(b)
        );
    }
}

/// The run pane and the output overlay: the preflight's checks each on a
/// line, failing ones first with their fix.
#[test]
fn preflight_checks_each_on_a_line_with_the_fix() {
    use cutover::runbook::preflight::Check;
    let mut f = full();
    for k in ["F", "Enter"] {
        f.at(43.0).key(k);
    }
    let id = f.model.next_run;
    assert!(f.model.actions.running().is_some(), "F ran");
    let step = f.model.actions.running().unwrap().plan.steps[0].clone();
    let check = |name: &str, ok: bool, observed: &str, fix: Option<&str>| Check {
        name: name.into(),
        ok,
        observed: observed.into(),
        fix: fix.map(Into::into),
    };
    f.at(43.1)
        .push(EventKind::StepStarted { id, index: 0, step })
        .push(EventKind::PreflightChecked {
            id,
            checks: vec![
                check(
                    "Both sides reachable",
                    true,
                    "source and target answered",
                    None,
                ),
                check(
                    "Every table has a primary key or a replica identity",
                    false,
                    "without: public.audit_log",
                    Some("ALTER TABLE public.audit_log REPLICA IDENTITY FULL;"),
                ),
            ],
        })
        .push(EventKind::StepFailed {
            id,
            index: 0,
            error: "1 of 2 checks fail: …".into(),
            elapsed_ms: 212.0,
        })
        .push(EventKind::RunFinished {
            id,
            ok: false,
            message: "step 1 (preflight checks): 1 of 2 checks fail".into(),
            switched: None,
        });
    let wide = f.screen(200, 50);
    insta::assert_snapshot!("preflight_run_200x50", wide);
    let bad = wide.find("✖ Every table has a primary key").expect(&wide);
    let fix = wide
        .find("fix: ALTER TABLE public.audit_log REPLICA IDENTITY FULL;")
        .expect(&wide);
    let good = wide
        .find("✔ Both sides reachable — source and target answered")
        .expect(&wide);
    assert!(
        bad < fix && fix < good,
        "failing first, its fix under it:\n{wide}"
    );
    assert!(
        wide.contains("✖ 1. preflight checks — 1 of 2 checks fail (212 ms)"),
        "{wide}"
    );

    // At 80×24 the run has no pane: `o` shows it over the screen.
    f.key("o");
    let narrow = f.screen(80, 24);
    insta::assert_snapshot!("preflight_output_80x24", narrow);
    assert!(
        narrow.contains("Preflight checks · ✖ failed 12:00:43"),
        "{narrow}"
    );
    assert!(narrow.contains("REPLICA IDENTITY FULL;"), "{narrow}");
    f.key("Esc");
    assert!(!f.view.output);
}

/// While W runs, each table not yet ready with its copy progress, and the
/// whole sync's rate and ETA.
#[test]
fn initial_sync_progress_and_eta() {
    let mut f = full();
    for k in ["W", "Enter"] {
        f.at(43.0).key(k);
    }
    let id = f.model.next_run;
    let step = f.model.actions.running().expect("W ran").plan.steps[0].clone();
    f.at(43.1)
        .push(EventKind::StepStarted { id, index: 0, step });
    // Ten seconds later the COPY of order_items has done 1,000,000 rows more.
    let mut later = target(&[]);
    later.copies[0].tuples_processed += 1_000_000;
    f.at(50.0).push(EventKind::SourceSampled(source(MIB)));
    f.at(50.0).push(EventKind::TargetSampled(later));
    let wide = f.screen(200, 50);
    insta::assert_snapshot!("sync_progress_200x50", wide);
    assert!(
        wide.contains("Wait for initial sync · ⟳ running 7.0 s"),
        "{wide}"
    );
    assert!(
        wide.contains("⟳ 1. initial sync of cutover_sub · 6.9 s so far"),
        "{wide}"
    );
    // Past their copy: customers, orders, products (ready) and sessions
    // (synchronized); order_items is at 2,234,567 of 3,400,000; audit_log
    // waits. The sync was first seen at 12:00:05 with 1,000,000 rows fewer:
    // 22,222 rows/s, 2,045,433 rows to go.
    assert!(
        wide.contains(
            "3 of 6 tables ready · 3,651,967 of ~5,697,400 rows · 22,222/s · ETA 1 m 32 s"
        ),
        "{wide}"
    );
    assert!(
        wide.contains("public.order_items  copying  2,234,567 of ~3,400,000 rows (66%)"),
        "{wide}"
    );
    assert!(wide.contains("public.audit_log  waiting to copy"), "{wide}");
}

/// `n` opens a note; Enter logs it as a command; the run pane shows it.
#[test]
fn operator_note_is_logged_and_shown() {
    let mut f = full();
    f.at(43.0).key("n");
    for k in ["d", "b", "a", " ", "o", "k", "Left", "Left", "Backspace"] {
        f.key(k);
    }
    let typing = f.screen(200, 50);
    assert!(typing.contains("dba█ok"), "{typing}");
    f.at(43.5).key("Enter");
    assert!(f.view.note.is_none());
    assert_eq!(f.model.notes.len(), 1);
    assert_eq!(f.model.notes[0].1, "dbaok");
    let wide = f.screen(200, 50);
    assert!(wide.contains("✎ 12:00:43 dbaok"), "{wide}");
    // Esc discards; an empty note is not logged.
    f.key("n").key("x").key("Esc");
    f.key("n").key("Enter");
    assert_eq!(f.model.notes.len(), 1);
}

/// Writes per second on each side, from the servers' statistics, in the
/// header: here the source takes 512 rows/s and the target none.
#[test]
fn writes_per_second_on_each_side_in_the_header() {
    let mut f = Fixture::new();
    for s in 1..=6 {
        let mut src = source(0);
        src.rows_written = Some(10_000 + s * 512);
        let mut tgt = target(&[]);
        tgt.rows_written = Some(777);
        f.at(s as f64)
            .push(EventKind::SourceSampled(src))
            .push(EventKind::TargetSampled(tgt));
    }
    for (w, h) in [(200, 50), (80, 24)] {
        let screen = f.screen(w, h);
        let mut lines = screen.lines();
        let (src, tgt) = (lines.next().unwrap(), lines.next().unwrap());
        assert!(src.contains("512 writes/s"), "{w}×{h}:\n{screen}");
        assert!(tgt.contains("  0 writes/s"), "{w}×{h}:\n{screen}");
        assert!(src.contains("● up") && tgt.contains("● up"), "{screen}");
    }
}

/// From the freeze on, the header counts the write-freeze window against
/// its budget, and past it says the way back.
#[test]
fn the_freeze_window_is_timed_in_the_header() {
    let mut f = full();
    f.at(43.0).push(EventKind::FreezeGrants {
        side: Side::Source,
        id: 7,
        roles: vec!["app".into()],
        grants: vec![],
        read_only_role: None,
    });
    f.at(55.0).push(EventKind::Tick);
    for (w, h) in [(200, 50), (80, 24)] {
        let screen = f.screen(w, h);
        let first = screen.lines().next().unwrap();
        assert!(
            first.starts_with(" ❄ FROZEN 0:12 of 1:00  LIVE"),
            "{w}×{h}:\n{screen}"
        );
    }
    f.at(118.0).push(EventKind::Tick);
    let screen = f.screen(200, 50);
    assert!(
        screen
            .lines()
            .next()
            .unwrap()
            .starts_with(" ❄ FROZEN 1:15 > 1:00 budget: B rolls back  LIVE"),
        "{screen}"
    );
    // The app seen writing to the target (T passed) closes the window.
    let t0 = f.model.now.unwrap();
    f.model.actions.history.push(cutover::model::CheckpointRun {
        id: 8,
        checkpoint: cutover::runbook::CheckpointId::AppOnTarget,
        plan: cutover::runbook::plan(&f.model, cutover::runbook::CheckpointId::AppOnTarget)
            .unwrap(),
        overridden: None,
        auto: None,
        started_at: t0 - Duration::seconds(58),
        steps: vec![],
        checks: vec![],
        sequences: vec![],
        copy: None,
        job_log: Default::default(),
        legacy_steps: vec![],
        finished: Some((t0, true, "the app writes to the target only".into())),
    });
    let screen = f.screen(200, 50);
    assert!(screen.starts_with(" ✔ window ≤ 0:17  LIVE"), "{screen}");
    f.at(119.0).push(EventKind::WritesUnfrozen {
        id: 9,
        side: Side::Source,
    });
    assert!(f.screen(200, 50).starts_with(" cutover  LIVE"));
}
