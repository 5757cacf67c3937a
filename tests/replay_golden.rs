//! The replay draws what the live console drew. The example recording
//! under sessions/ is a whole lab cutover recorded by the real product; as
//! it ran, the console logged a digest of its screen every 30 s and at
//! every checkpoint's end. Folding the log to each digest and drawing it
//! through the same view (TestBackend) must give the same screen, and the
//! replay's seeks (from snapshots) must land on the same screens too.

use std::path::Path;

use cutover::model::playback::Recording;
use cutover::model::{self, Model};
use cutover::session::EventKind;

const EXAMPLE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/sessions/example-lab-15-to-18.jsonl"
);

#[test]
fn the_example_replays_to_the_screens_the_live_console_drew() {
    let events = cutover::session::log::read_all(Path::new(EXAMPLE)).unwrap();
    let rec = Recording::new(events.clone());
    let mut model = Model::default();
    let (mut compared, mut in_freeze) = (0, 0);
    for (i, e) in events.iter().enumerate() {
        if let EventKind::ScreenDigest {
            width,
            height,
            digest,
        } = &e.kind
        {
            assert_eq!(
                &cutover::ui::digest(&model, *width, *height),
                digest,
                "the screen before event {} differs from the live console's",
                e.seq
            );
            // A seek to the same point, from the snapshots, draws it too.
            assert_eq!(
                &cutover::ui::digest(&rec.model_after(i), *width, *height),
                digest,
                "a seek to event {}",
                e.seq
            );
            compared += 1;
            if model.actions.frozen.is_some() {
                in_freeze += 1;
            }
        }
        model::update(&mut model, e);
    }
    assert!(compared >= 10, "only {compared} digests in the example");
    assert!(in_freeze >= 1, "no digest during the write freeze");
    // The recording is the whole cutover: every checkpoint passed.
    let passed: Vec<_> = model
        .actions
        .history
        .iter()
        .filter(|r| matches!(r.finished, Some((_, true, _))))
        .map(|r| r.checkpoint)
        .collect();
    assert!(
        passed.contains(&cutover::runbook::CheckpointId::DropSubscription),
        "{passed:?}"
    );
}

/// The replay's own screen: REPLAY in the header, the timeline with every
/// checkpoint's key, nothing that says to press a key it does not bind.
#[test]
fn the_replay_screen_says_replay_and_offers_no_action() {
    let events = cutover::session::log::read_all(Path::new(EXAMPLE)).unwrap();
    let rec = Recording::new(events);
    // Just before the last checkpoint: its guards pass, live it says "press X".
    let x = rec.marks().last().unwrap().clone();
    assert_eq!(
        x.checkpoint,
        cutover::runbook::CheckpointId::DropSubscription
    );
    let model = rec.model_after(x.index.saturating_sub(1));
    let (start, end) = rec.span().unwrap();
    let mut watch = cutover::model::Watch::new(cutover::model::WatchKind::Replay);
    watch.paused = true;
    watch.bar = cutover::model::Timeline {
        start: Some(start),
        end: Some(end),
        at: model.now,
        marks: rec
            .marks()
            .iter()
            .map(|m| (m.at, m.checkpoint, m.ok))
            .collect(),
        ..Default::default()
    };
    let view = cutover::model::View {
        watch: Some(watch),
        ..Default::default()
    };
    let theme = cutover::ui::theme::Theme::mono();
    let live = cutover::ui::screen_text(&model, &Default::default(), 80, 24, &theme);
    let replay = cutover::ui::screen_text(&model, &view, 80, 24, &theme);
    assert!(live.contains("press X"), "{live}");
    assert!(!replay.contains("press"), "{replay}");
    let rows: Vec<&str> = replay.lines().collect();
    assert!(rows[0].contains("REPLAY"), "{replay}");
    let bar = rows[23];
    assert!(bar.contains("⏸") && bar.contains("┃"), "{bar}");
    for key in ["P", "U", "V", "Z", "C", "T"] {
        assert!(bar.contains(key), "{key} missing from the timeline: {bar}");
    }
    assert!(rows[22].contains("space pause"), "{}", rows[22]);
    assert!(
        !rows[22].contains(" S "),
        "no checkpoint key offered: {}",
        rows[22]
    );
}
