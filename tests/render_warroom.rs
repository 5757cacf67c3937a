//! The war-room screen (`w`) and the zoom (`z`), drawn from models folded
//! from real events: what the room reads, at the sizes a screen share has.

mod screens;

use chrono::Duration;
use ratatui::backend::TestBackend;
use ratatui::style::{Modifier, Style};
use ratatui::Terminal;

use cutover::model::budget::freeze_window;
use cutover::model::{Pane, Watch, WatchKind};
use cutover::runbook::CheckpointId;
use cutover::session::{EventKind, Side};
use cutover::ui::bigtext::{self, glyph};
use cutover::ui::{Role, Theme};

use screens::*;

const SIZES: [(u16, u16); 3] = [(80, 24), (120, 40), (200, 50)];

/// The screen as this viewer sees it, in the monochrome theme.
fn mono(f: &Fixture, w: u16, h: u16) -> String {
    text(&render_view(&f.model, &f.view, &Theme::mono(), w, h))
}

/// What this viewer would see without the war room: the panes.
fn panes(f: &Fixture, w: u16, h: u16) -> String {
    let mut v = f.view.clone();
    v.war_room = false;
    v.zoom = None;
    text(&render_view(&f.model, &v, &Theme::mono(), w, h))
}

/// Types a note and saves it, as the operator does.
fn note(f: &mut Fixture, at: f64, text: &str) {
    f.at(at).key("n");
    for c in text.chars() {
        f.key(&c.to_string());
    }
    f.key("Enter");
}

/// Both sides sampled each second from `from` to `to` (inclusive): the
/// source's writes counter moves by `src_rate` a second, the target's by
/// `tgt_rate`, the slot `lag` bytes behind; the Kubernetes API, where
/// there is one, answers too.
fn poll(f: &mut Fixture, from: i64, to: i64, lag: i64, src_rate: i64, tgt_rate: i64) {
    let kube = f
        .model
        .info
        .as_ref()
        .is_some_and(|i| i.kubernetes.is_some());
    for s in from..=to {
        let mut src = source(lag);
        src.rows_written = Some(1_000_000 + s * src_rate);
        let mut tgt = target(&[]);
        tgt.rows_written = Some(500_000 + s * tgt_rate);
        f.at(s as f64)
            .push(EventKind::SourceSampled(src))
            .push(EventKind::TargetSampled(tgt));
        if kube {
            f.push(EventKind::KubeAlive);
        }
    }
}

/// Runs `keys` (the checkpoint's key, what to type, Enter), then reports
/// its one step done and the run finished as the executor would, with
/// `between` folded after the step starts.
fn run_checkpoint(
    f: &mut Fixture,
    at: f64,
    keys: &[&str],
    between: &[EventKind],
    ok: bool,
    message: &str,
) {
    for k in keys {
        f.at(at).key(k);
    }
    let run = f.model.actions.running().expect("the checkpoint started");
    let (id, step) = (run.id, run.plan.steps[0].clone());
    f.at(at + 0.1)
        .push(EventKind::StepStarted { id, index: 0, step });
    for e in between {
        f.push(e.clone());
    }
    f.at(at + 0.5);
    if ok {
        f.push(EventKind::StepDone {
            id,
            index: 0,
            message: message.into(),
            elapsed_ms: 400.0,
        });
    } else {
        f.push(EventKind::StepFailed {
            id,
            index: 0,
            error: message.into(),
            elapsed_ms: 400.0,
        });
    }
    f.push(EventKind::RunFinished {
        id,
        ok,
        message: message.into(),
        switched: None,
    });
}

fn type_in(f: &mut Fixture, text: &str) {
    for c in text.chars() {
        f.key(&c.to_string());
    }
}

/// (a) Replication runs 1.5 MiB behind while an exact count runs; the
/// source takes 512 writes a second; the DBA has left a note.
fn replicating() -> Fixture {
    let mut f = full();
    poll(&mut f, 41, 45, MIB * 3 / 2, 512, 0);
    note(
        &mut f,
        45.5,
        "holding the freeze until the nightly batch job ends",
    );
    f.key("w");
    f
}

/// Z run from second `t` on: the application role named, the count
/// finished, the source writing 300 rows a second with the slot 64 KiB
/// behind, then Z (overridden: not verified live in this rehearsal) at
/// `t + 2.5`, its writes frozen at `t + 2.6`; then twelve seconds of samples
/// with the source still and the slot drained.
fn freeze_writes(f: &mut Fixture, t: i64) {
    let mut i = f.model.info.clone().unwrap();
    i.app_roles = vec!["app".into()];
    f.at(t as f64).push(EventKind::SessionStarted(Box::new(i)));
    f.push(EventKind::CountFinished {
        run: 1,
        cancelled: false,
    });
    poll(f, t + 1, t + 2, 64 * 1024, 300, 0);
    f.at(t as f64 + 2.2).key("Z");
    type_in(f, "freeze");
    f.key("Tab");
    type_in(f, "rehearsal: verified offline");
    let id = f.model.next_run + 1;
    run_checkpoint(
        f,
        t as f64 + 2.5,
        &["Enter"],
        &[
            EventKind::FreezeGrants {
                id,
                side: Side::Source,
                roles: vec!["app".into()],
                grants: vec![],
                read_only_role: None,
            },
            EventKind::WritesFrozen {
                id,
                side: Side::Source,
                lsn: "0/3180000".into(),
            },
        ],
        true,
        "writes of app frozen, proven at 0/3180000",
    );
    poll(f, t + 3, t + 14, 0, 0, 0);
}

/// (b) Writes frozen 12 s ago against the 60 s budget; the target has
/// caught up; the final check is next.
fn freezing() -> Fixture {
    let mut f = full();
    freeze_writes(&mut f, 43);
    f.at(57.6).push(EventKind::Tick);
    note(&mut f, 57.6, "freeze in place, final check next");
    f.key("w");
    f
}

/// (c) In the freeze, with the application side watched, the final check
/// failed: a table's counts differ at lag 0. It is next again.
fn failed() -> Fixture {
    let mut f = with_rollout();
    preflight_done(&mut f, 46.0);
    freeze_writes(&mut f, 47);
    run_checkpoint(
        &mut f,
        61.2,
        &[
            "C", "Tab", "r", "e", "h", "e", "a", "r", "s", "a", "l", " ", "r", "u", "n", "Enter",
        ],
        &[],
        false,
        "exact counts differ at lag 0: public.products 5,000 on the source, 4,998 on the target",
    );
    f.at(62.0).push(EventKind::KubeAlive);
    f.key("w");
    f
}

/// (d) No answer from the source for 20 s (the last sample 12:00:40).
fn stale_source() -> Fixture {
    let mut f = full();
    f.at(60.0).push(EventKind::TargetSampled(target(&[])));
    f.key("w");
    f
}

/// Reads big digits back off the screen: the panel titled `title`, its
/// rows under the title turned into pixels (two a cell: `▀` top, `▄`
/// bottom, `█` both) and matched glyph by glyph against the font, at
/// whichever scale reads them whole.
fn read_big(screen: &str, title: &str) -> Option<String> {
    let lines: Vec<Vec<char>> = screen.lines().map(|l| l.chars().collect()).collect();
    let needle: Vec<char> = format!("─ {title} ").chars().collect();
    let (y, x) = lines.iter().enumerate().find_map(|(y, l)| {
        l.windows(needle.len())
            .position(|w| w == needle.as_slice())
            .map(|x| (y, x))
    })?;
    // The panel ends where the next one's rule starts, or at the line's end.
    let rule = &lines[y];
    let end = (x + needle.len()..rule.len())
        .find(|&i| rule[i] == ' ')
        .map_or(rule.len(), |i| i);
    let block = |c: char| matches!(c, '█' | '▀' | '▄' | ' ');
    let rows: Vec<Vec<char>> = lines[y + 1..]
        .iter()
        .map(|l| {
            (x + 1..end)
                .map(|i| l.get(i).copied().unwrap_or(' '))
                .collect::<Vec<char>>()
        })
        .take_while(|r| r.iter().all(|c| block(*c)) && r.iter().any(|c| *c != ' '))
        .collect();
    let half: Vec<Vec<bool>> = rows
        .iter()
        .flat_map(|r| {
            [
                r.iter().map(|c| matches!(c, '█' | '▀')).collect(),
                r.iter().map(|c| matches!(c, '█' | '▄')).collect(),
            ]
        })
        .collect();
    bigtext::SCALES
        .iter()
        .rev()
        .find_map(|s| decode(&half, usize::from(s.sx), usize::from(s.sy)))
}

fn decode(half: &[Vec<bool>], sx: usize, sy: usize) -> Option<String> {
    let w = half.first()?.len();
    if half.len() < 5 * sy {
        return None;
    }
    // Every pixel a solid sx×sy block, or this is not the scale.
    let px: Vec<Vec<bool>> = (0..5)
        .map(|r| (0..w / sx).map(|c| half[r * sy][c * sx]).collect())
        .collect();
    for (r, row) in half.iter().enumerate() {
        for (c, lit) in row.iter().enumerate() {
            let want = r < 5 * sy && c / sx < w / sx && px[r / sy][c / sx];
            if *lit != want {
                return None;
            }
        }
    }
    let empty = |c: usize| (0..5).all(|r| !px[r][c]);
    let cols = w / sx;
    let first = (0..cols).find(|&c| !empty(c))?;
    let last = (0..cols).rfind(|&c| !empty(c))?;
    let mut out = String::new();
    let mut c = first;
    while c <= last {
        let start = c;
        while c <= last && !empty(c) {
            c += 1;
        }
        let seg: Vec<String> = (0..5)
            .map(|r| {
                (start..c)
                    .map(|i| if px[r][i] { '#' } else { '.' })
                    .collect()
            })
            .collect();
        let ch = "0123456789.:-?BKMGTPi"
            .chars()
            .find(|ch| glyph(*ch).is_some_and(|g| g.iter().zip(&seg).all(|(a, b)| a == b)))?;
        out.push(ch);
        let gap = (c..=last).take_while(|&i| empty(i)).count();
        if gap >= 4 {
            out.push(' ');
        }
        c += gap;
    }
    Some(out)
}

/// The lag as the lag pane words it: "lag   1.5 MiB  ▲ behind".
fn lag_in_pane(screen: &str) -> String {
    let l = line_with(screen, "lag   ");
    let rest = &l[l.find("lag   ").unwrap() + 6..];
    rest.split("  ").next().unwrap().trim().to_string()
}

fn snapshot_sizes(name: &str, f: &Fixture) {
    for (w, h) in SIZES {
        insta::assert_snapshot!(format!("{name}_{w}x{h}"), mono(f, w, h));
    }
}

#[test]
fn replicating_with_lag() {
    let f = replicating();
    snapshot_sizes("warroom_replicating", &f);
    let shown = lag_in_pane(&panes(&f, 80, 24));
    assert_eq!(shown, "1.5 MiB");
    for (w, h) in SIZES {
        let s = mono(&f, w, h);
        assert_eq!(
            read_big(&s, "REPLICATION LAG").as_deref(),
            Some(shown.as_str()),
            "{w}×{h}:\n{s}"
        );
        let first = s.lines().next().unwrap();
        assert!(
            first.starts_with(" PHASE PREPARE  LIVE  12:00:45 UTC"),
            "{first}"
        );
        assert!(line_with(&s, "▲ behind").contains("threshold 16.0 MiB"));
        assert!(
            line_with(&s, "WRITES/S").contains("source 512   target 0"),
            "{s}"
        );
        assert!(line_with(&s, "WRITES/S").contains("freeze not started (budget 1:00)"));
        // Nothing has run: the next checkpoint and its guards, each on a line.
        assert!(s.contains(" NOW   · no checkpoint run yet"), "{s}");
        assert!(
            s.contains(" NEXT  ▸ W Wait for initial sync  ✔ guards pass: press W"),
            "{s}"
        );
        for g in [
            "Target live — answering",
            "Subscription exists — on the target",
        ] {
            assert!(line_with(&s, g).contains("✔ PASS"), "{g}:\n{s}");
        }
        assert!(line_with(&s, "COUNTS").contains("! 1 table failed"), "{s}");
        assert!(
            line_with(&s, "SLOTS").contains("▲ debezium_orders 812.0 MiB inactive extended"),
            "{s}"
        );
        assert!(s.lines().last().unwrap().contains("Esc back"), "{s}");
    }
    // The digits grow with the screen: 3 rows at 80×24, 10 at 200×50.
    let rows = |s: &str| {
        s.lines()
            .filter(|l| l.starts_with(' ') && l.contains('█') && !l.contains("PHASE"))
            .count()
    };
    assert_eq!(
        rows(&mono(&f, 80, 24)),
        5,
        "lag alone fits the 5-row digits"
    );
    assert_eq!(rows(&mono(&f, 200, 50)), 10);
}

#[test]
fn the_note_banner_is_the_last_note_on_one_line() {
    let mut f = replicating();
    let s = mono(&f, 200, 50);
    let banner = s.lines().nth(1).unwrap();
    assert_eq!(
        banner,
        " ✎ 12:00:45 holding the freeze until the nightly batch job ends"
    );
    // Cut with … where it does not fit, never wrapped.
    let narrow = mono(&f, 50, 24);
    let cut = narrow.lines().nth(1).unwrap();
    assert_eq!(cut, " ✎ 12:00:45 holding the freeze until the nightly…");
    // The newest note replaces it; the banner is in the title role, bold.
    note(&mut f, 46.0, "batch done, go");
    let theme = Theme::default();
    let term = render_view(&f.model, &f.view, &theme, 120, 40);
    let s = text(&term);
    assert_eq!(s.lines().nth(1).unwrap(), " ✎ 12:00:46 batch done, go");
    let title = theme.style(Role::Title).add_modifier(Modifier::BOLD);
    assert!(looks(style_at(&term, 1, "batch done"), title));
    assert!(!looks(
        style_at(&term, 1, "batch done"),
        theme.style(Role::Error)
    ));
    assert_eq!(f.model.notes.len(), 2);
}

#[test]
fn during_the_write_freeze() {
    let f = freezing();
    snapshot_sizes("warroom_freeze", &f);
    let (secs, budget, closed) = freeze_window(&f.model).expect("frozen");
    assert_eq!((secs, budget, closed), (12, 60, false));
    // The header of the panes says the same window.
    assert!(panes(&f, 80, 24).starts_with(" ❄ FROZEN 0:12 of 1:00"));
    for (w, h) in SIZES {
        let s = mono(&f, w, h);
        assert_eq!(
            read_big(&s, "WRITE FREEZE").as_deref(),
            Some("0:12"),
            "{w}×{h}:\n{s}"
        );
        assert_eq!(read_big(&s, "REPLICATION LAG").as_deref(), Some("0 B"));
        assert!(s.contains("❄ writes frozen since 12:00:45"), "{s}");
        assert!(s.contains("of 1:00 budget · 0:48 left"), "{s}");
        assert!(s.lines().next().unwrap().contains("PHASE CUTOVER"), "{s}");
        assert!(
            s.contains(" LAST  ✔ PASSED  Z Freeze writes on source at 12:00:46"),
            "{s}"
        );
        assert!(
            s.contains(" NEXT  ▸ C Lag 0, exact counts, final checksums"),
            "{s}"
        );
        assert!(
            line_with(&s, "WRITES/S").contains("source 0   target 0"),
            "{s}"
        );
        assert!(!s.contains("freeze not started"));
        assert!(line_with(&s, "✔ caught up").contains("threshold"), "{s}");
    }
    // The timer counts on with the model's clock, past the budget.
    let mut f = f;
    f.at(110.6).push(EventKind::Tick);
    let s = mono(&f, 120, 40);
    assert_eq!(freeze_window(&f.model).unwrap().0, 65);
    assert_eq!(read_big(&s, "WRITE FREEZE").as_deref(), Some("1:05"));
    assert!(s.contains("✖ OVER the 1:00 budget by 0:05"), "{s}");
    // The app seen writing to the target (T passed) closes the window: the
    // timer stops where T started watching.
    let now = f.model.now.unwrap();
    f.model.actions.history.push(cutover::model::CheckpointRun {
        id: 99,
        checkpoint: CheckpointId::AppOnTarget,
        plan: cutover::runbook::plan(&f.model, CheckpointId::AppOnTarget).unwrap(),
        overridden: None,
        auto: None,
        started_at: now - Duration::seconds(30),
        steps: vec![],
        checks: vec![],
        sequences: vec![],
        copy: None,
        job_log: Default::default(),
        legacy_steps: vec![],
        finished: Some((now, true, "the app writes to the target only".into())),
    });
    let (secs, _, closed) = freeze_window(&f.model).unwrap();
    assert_eq!((secs, closed), (35, true));
    let s = mono(&f, 120, 40);
    assert_eq!(read_big(&s, "WRITE FREEZE").as_deref(), Some("0:35"));
    assert!(s.contains("✔ window closed ≤ 0:35"), "{s}");
}

#[test]
fn a_failed_checkpoint() {
    let f = failed();
    snapshot_sizes("warroom_failed", &f);
    for (w, h) in SIZES {
        let s = mono(&f, w, h);
        assert!(
            s.contains(" LAST  ✖ FAILED  C Lag 0, exact counts, final checksums at 12:01:01\n"),
            "{w}×{h}:\n{s}"
        );
        // Why, on the line under it: at 80 columns as far as it goes.
        let why = s
            .lines()
            .skip_while(|l| !l.starts_with(" LAST"))
            .nth(1)
            .unwrap();
        assert!(
            why.starts_with("         exact counts differ at lag 0: public.products 5,000"),
            "{w}×{h}:\n{s}"
        );
        // Not done: it is next again, its guards under it.
        assert!(
            s.contains(" NEXT  ▸ C Lag 0, exact counts, final checksums"),
            "{s}"
        );
        assert!(
            line_with(&s, "Writes frozen on the source").contains("✔ PASS"),
            "{s}"
        );
        assert!(s.lines().next().unwrap().contains("PHASE CUTOVER"), "{s}");
        assert_eq!(read_big(&s, "WRITE FREEZE").as_deref(), Some("0:12"));
        assert!(
            line_with(&s, "ROLLOUT").contains("app 3/3 ready [███░░]"),
            "{s}"
        );
    }
    let s = mono(&f, 200, 50);
    assert!(
        s.contains("public.products 5,000 on the source, 4,998 on the target"),
        "{s}"
    );
}

#[test]
fn a_stale_source_is_shown_stale() {
    let f = stale_source();
    snapshot_sizes("warroom_stale_source", &f);
    for (w, h) in SIZES {
        let s = mono(&f, w, h);
        // The figure stays, marked as old, never as the lag now.
        assert_eq!(read_big(&s, "REPLICATION LAG").as_deref(), Some("1.5 MiB"));
        assert!(
            s.contains("✖ STALE: as of 12:00:40 (was ▲ behind)"),
            "{w}×{h}:\n{s}"
        );
        assert!(!s.contains("▲ behind ·"), "no live state word:\n{s}");
        assert!(line_with(&s, "WRITES/S").contains("source ✖ stale"), "{s}");
        assert!(line_with(&s, "PHASE").contains("source ✖ stale"), "{s}");
        assert!(line_with(&s, "SLOTS").contains("✖ as of 12:00:40"), "{s}");
    }
    let s = mono(&f, 200, 50);
    assert!(line_with(&s, "PHASE").contains("source ✖ stale since 12:00:40"));
    assert!(s.contains("no sample for 20 s"), "{s}");
}

/// Guards on stale data never read as passing: the freeze's guards while
/// the source has not answered, each ◌ STALE, bold, in the error role.
#[test]
fn guards_are_bold_and_failing_ones_in_the_error_role() {
    let mut f = freezing();
    // Before the freeze's check: back at the moment C is next, the source silent.
    f.at(80.0).push(EventKind::TargetSampled(target(&[])));
    for theme in [Theme::mono(), Theme::default()] {
        let term = render_view(&f.model, &f.view, &theme, 120, 40);
        let s = text(&term);
        let stale = line_with(&s, "Source live");
        assert!(
            stale.contains("◌ STALE  Source live — stale since 12:00:57"),
            "{s}"
        );
        let y = s.lines().position(|l| l.contains("Source live")).unwrap();
        let error = theme.style(Role::Error).add_modifier(Modifier::BOLD);
        assert!(looks(style_at(&term, y, "◌ STALE"), error), "{theme:?}");
        assert!(looks(style_at(&term, y, "Source live"), error));
        let y = s.lines().position(|l| l.contains("Target live")).unwrap();
        assert!(line_with(&s, "Target live").contains("✔ PASS"), "{s}");
        let ok = theme.style(Role::Ok).add_modifier(Modifier::BOLD);
        assert!(looks(style_at(&term, y, "Target live"), ok));
        assert!(!looks(style_at(&term, y, "Target live"), error));
        assert!(
            !s.lines()
                .any(|l| l.contains("✔ PASS") && l.contains("Source live")),
            "{s}"
        );
    }
}

/// Whether a drawn cell's style is `want`: its colours (the terminal's
/// own where `want` has none) and at least its modifiers.
fn looks(got: Style, want: Style) -> bool {
    use ratatui::style::Color;
    got.fg.unwrap_or(Color::Reset) == want.fg.unwrap_or(Color::Reset)
        && got.bg.unwrap_or(Color::Reset) == want.bg.unwrap_or(Color::Reset)
        && got.add_modifier.contains(want.add_modifier)
}

/// The style of the first cell of `needle` on row `y`.
fn style_at(term: &Terminal<TestBackend>, y: usize, needle: &str) -> Style {
    let buf = term.backend().buffer();
    let row: Vec<&str> = (0..buf.area.width)
        .map(|x| buf[(x, y as u16)].symbol())
        .collect();
    let first = needle.chars().next().unwrap().to_string();
    let n = needle.chars().count();
    let x = (0..row.len())
        .find(|&x| x + n <= row.len() && row[x] == first && row[x..x + n].concat() == needle)
        .unwrap_or_else(|| panic!("{needle:?} not on row {y}: {}", row.concat()));
    buf[(x as u16, y as u16)].style()
}

/// `z` walks the panes one at a time, full screen, and back; each zoom
/// at 80×24 in a snapshot.
#[test]
fn zoom_shows_each_pane_alone() {
    let mut f = failed();
    f.key("Esc");
    assert!(
        !f.view.war_room && f.view.zoom.is_none(),
        "Esc left the war room"
    );
    let mut seen = vec![];
    loop {
        f.key("z");
        let Some(p) = f.view.zoom else { break };
        seen.push(p);
        let s = mono(&f, 80, 24);
        insta::assert_snapshot!(format!("zoom_{p:?}_80x24").to_lowercase(), s);
        assert!(
            s.starts_with(" ❄ FROZEN 0:12 of 1:00  LIVE")
                && s.lines().nth(1).unwrap().contains("target  new-pg16"),
            "the header stays:\n{s}"
        );
        assert!(s.lines().last().unwrap().contains("Esc back"), "{s}");
        let title = match p {
            Pane::Lag => "Replication lag",
            Pane::Slots => "Slots & subscription",
            Pane::Counts => "Row counts",
            Pane::Rollout => "Pod rollout",
            Pane::Run => "Run ─ Lag 0, exact counts, final checksums · ✖ failed",
            Pane::Runbook => "Runbook",
        };
        assert!(s.lines().nth(2).unwrap().contains(title), "{p:?}:\n{s}");
        // Alone: no other pane's title on the screen.
        for other in [
            "Replication lag",
            "Slots & subscription",
            "Row counts",
            "Pod rollout",
        ] {
            if other != title {
                assert!(!s.contains(other), "{p:?} shows {other}:\n{s}");
            }
        }
    }
    assert_eq!(seen, Pane::ALL.to_vec());
    // Zoomed, the pane has the screen: every table, the pods, the runbook.
    f.view.zoom = Some(Pane::Counts);
    let s = mono(&f, 80, 24);
    for (name, _, _) in TABLES {
        row(&s, name);
    }
    f.view.zoom = Some(Pane::Rollout);
    let s = mono(&f, 80, 24);
    for pod in [
        "app-7c9f-new01",
        "app-7c9f-new02",
        "app-5d4a-old01",
        "app-5d4a-old02",
    ] {
        assert!(s.contains(pod), "{pod}:\n{s}");
    }
    // Without Kubernetes there is no rollout pane to zoom to.
    let mut plain = full();
    let mut seen = vec![];
    while let Some(p) = plain.key("z").view.zoom {
        seen.push(p);
    }
    assert!(
        !seen.contains(&Pane::Rollout) && seen.len() == 5,
        "{seen:?}"
    );
}

/// From the war room, a zoom goes back to the war room; `w` from a zoom
/// goes to it too.
#[test]
fn esc_goes_back_where_the_zoom_came_from() {
    let mut f = replicating();
    assert!(f.view.war_room);
    f.key("z").key("z");
    assert_eq!(f.view.zoom, Some(Pane::Slots));
    assert!(mono(&f, 80, 24).contains("Slots & subscription"));
    f.key("Esc");
    assert_eq!(f.view.zoom, None);
    assert!(f.view.war_room, "back in the war room");
    assert!(mono(&f, 80, 24).contains("REPLICATION LAG"));
    f.key("z").key("w");
    assert!(f.view.war_room && f.view.zoom.is_none());
    f.key("w");
    assert!(!f.view.war_room);
    let s = mono(&f, 80, 24);
    assert!(s.contains("Replication lag") && !s.contains("REPLICATION LAG"));
    // In the panes, Esc is not offered in the footer (it would do nothing).
    assert!(!s.lines().last().unwrap().contains("Esc"), "{s}");
}

/// A replay's viewer gets the war room and the zoom: the timeline row
/// stays at the bottom, the mode says REPLAY, and nothing says "press".
#[test]
fn replay_and_follow_viewers_have_the_war_room() {
    for kind in [WatchKind::Replay, WatchKind::Follow] {
        let mut f = replicating();
        f.view = Default::default();
        let mut watch = Watch::new(kind);
        watch.bar.start = Some(f.t0);
        watch.bar.end = Some(f.t0 + Duration::seconds(90));
        watch.bar.at = f.model.now;
        f.view.watch = Some(watch);
        f.key("w");
        assert!(f.view.war_room, "{kind:?}");
        for (w, h) in SIZES {
            let s = mono(&f, w, h);
            let last = s.lines().last().unwrap();
            let mode = match kind {
                WatchKind::Replay => "REPLAY",
                WatchKind::Follow => "FOLLOW",
            };
            assert!(
                s.lines().next().unwrap().contains(mode),
                "{kind:?} {w}×{h}:\n{s}"
            );
            match kind {
                WatchKind::Replay => assert!(last.contains("0:45"), "{last}"),
                WatchKind::Follow => assert!(last.contains("following"), "{last}"),
            }
            assert!(!s.contains("press"), "{s}");
            assert!(s.contains(" NEXT  ▸ W Wait for initial sync  ✔ guards pass"));
            assert_eq!(read_big(&s, "REPLICATION LAG").as_deref(), Some("1.5 MiB"));
        }
        if kind == WatchKind::Replay {
            insta::assert_snapshot!("warroom_replay_80x24", mono(&f, 80, 24));
        }
        f.key("z");
        assert_eq!(f.view.zoom, Some(Pane::Lag));
        let s = mono(&f, 80, 24);
        assert!(s.lines().nth(2).unwrap().contains("Replication lag"), "{s}");
    }
}

/// Every size from the smallest up draws without a panic, and from 40×10
/// on the lag is on the screen in some size.
#[test]
fn any_size_keeps_the_figures() {
    let f = freezing();
    for w in (20..=220).step_by(7) {
        for h in (5..=60).step_by(3) {
            let s = mono(&f, w, h);
            if w >= 60 && h >= 16 {
                assert!(
                    read_big(&s, "WRITE FREEZE").as_deref() == Some("0:12") || s.contains("0:12"),
                    "{w}×{h}:\n{s}"
                );
            }
        }
    }
    // Short: the digits stay, the guards that pass are counted, not listed.
    let s = mono(&f, 80, 14);
    assert_eq!(read_big(&s, "WRITE FREEZE").as_deref(), Some("0:12"), "{s}");
    assert!(s.contains("   ✔ 5 more pass"), "{s}");
    assert!(!s.contains("✔ PASS   "), "no guard listed:\n{s}");
    // Too short for big digits: the figures in plain bold text.
    let s = mono(&f, 80, 12);
    assert!(read_big(&s, "WRITE FREEZE").is_none(), "{s}");
    assert!(line_with(&s, "0:12").starts_with(" 0:12"), "{s}");
    assert!(line_with(&s, "0 B").contains("0 B"), "{s}");
}

#[test]
fn checkpoint_after_a_running_one_is_next() {
    let mut f = freezing();
    // C starts: it is what runs now; the next is A.
    f.at(58.0).key("C");
    f.key("Tab");
    type_in(&mut f, "rehearsal, no verification");
    f.key("Enter");
    let run = f.model.actions.running().expect("C runs");
    assert_eq!(run.checkpoint, CheckpointId::FinalCheck);
    f.at(61.0).push(EventKind::Tick);
    let s = mono(&f, 120, 40);
    assert!(
        s.contains(" NOW   ⟳ RUNNING  C Lag 0, exact counts, final checksums · 3.0 s"),
        "{s}"
    );
    assert!(s.contains(" NEXT  ▸ A Advance sequences on target"), "{s}");
    // A cannot start while C runs: that guard says so.
    assert!(
        line_with(&s, "No other action running").contains("✖ FAIL"),
        "{s}"
    );
}

/// No figure to show yet: the lag panel says why in full, wrapped in the
/// rows the digits would take, and the rest of the screen is there.
#[test]
fn without_a_figure_the_lag_panel_says_why_in_full() {
    let mut f = fresh();
    f.key("w");
    for (w, h) in SIZES {
        let s = mono(&f, w, h);
        let flat = s.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(
            flat.contains(
                "No replication slot \"cutover_sub\" on the source yet — create the \
                 subscription (see lab README.txt)"
            ),
            "{w}×{h}:\n{s}"
        );
        assert_eq!(read_big(&s, "REPLICATION LAG"), None, "{s}");
        assert!(s.contains(" NEXT  ▸ F Preflight checks"), "{s}");
        assert!(line_with(&s, "SLOTS").contains("no replication slot on the source"));
    }
}

/// Beside big digits a sentence keeps its share of the width: the freeze
/// timer does not grow over it.
#[test]
fn a_sentence_beside_the_freeze_timer_keeps_its_share() {
    let mut f = freezing();
    let mut src = source(0);
    src.slots.retain(|s| s.name != "cutover_sub");
    src.senders.clear();
    f.at(57.8).push(EventKind::SourceSampled(src));
    for (w, h) in SIZES {
        let s = mono(&f, w, h);
        assert_eq!(read_big(&s, "WRITE FREEZE").as_deref(), Some("0:12"), "{s}");
        // The lag panel's columns, read on their own.
        let rule = line_with(&s, "─ WRITE FREEZE ");
        let at = rule[..rule.find("─ REPLICATION LAG").expect(rule)]
            .chars()
            .count();
        assert!(usize::from(w) - at >= usize::from(w) / 3, "{w}×{h}:\n{s}");
        let panel: Vec<String> = s.lines().map(|l| l.chars().skip(at).collect()).collect();
        let flat = panel
            .join(" ")
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        assert!(
            flat.contains(
                "No replication slot \"cutover_sub\" on the source yet — create the \
                 subscription (see lab README.txt)"
            ),
            "{w}×{h}:\n{s}"
        );
    }
}
