//! The one keymap: which key does what in which layer. The footer, the help
//! and the read-only filtering are all drawn from [`BINDINGS`]; nothing else
//! interprets a key.
//!
//! A key resolves to a [`Command`]. View commands (scroll, help) change only
//! what this viewer sees and are not logged; session commands are logged as
//! `EventKind::Command` — "open switch_config", "confirm … typed app-db" —
//! so an old log replays under a newer keymap and reads like what happened.

use serde::{Deserialize, Serialize};

use super::view::{Seek, View, WatchKind, SPEEDS};
use super::Model;
use crate::runbook::CheckpointId;

/// Which bindings are live, derived from what is open (never tracked apart).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layer {
    Main,
    Help,
    /// The latest run's output over the screen.
    Output,
    ConfirmQuit,
    /// An action's confirmation: unbound keys are typed into it.
    Confirm,
    /// An operator note being written: unbound keys are typed into it.
    Note,
    /// Replaying: the recording's own keys, before the main layer's.
    Playback,
    /// A zoom or the war room is shown: the way back, before the main
    /// layer's keys (which all still work there).
    View,
}

/// The layer that receives keys now: the innermost thing open.
pub fn layer(model: &Model, view: &View) -> Layer {
    if view.confirm_quit {
        Layer::ConfirmQuit
    } else if view.note.is_some() {
        Layer::Note
    } else if model.dialog.is_some() && view.watch.is_none() {
        // A replay shows the recorded dialog, but its keys stay the viewer's.
        Layer::Confirm
    } else if view.help {
        Layer::Help
    } else if view.output {
        Layer::Output
    } else {
        Layer::Main
    }
}

/// What a binding does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    ToggleHelp,
    ToggleOutput,
    ScrollDown,
    ScrollUp,
    ScrollTop,
    /// Quit, or ask first when work on the servers would be cut short.
    Quit,
    QuitConfirmed,
    QuitCancelled,
    ExactCount,
    Verify,
    Cancel,
    Open(CheckpointId),
    /// Type into the override reason instead of the name, or back.
    ToggleReason,
    CloseDialog,
    Backspace,
    Submit,
    OpenNote,
    SaveNote,
    CloseNote,
    Pause,
    Faster,
    Slower,
    Seek(super::view::Seek),
    /// The war-room screen on or off (from a zoom: to the war room).
    ToggleWarRoom,
    /// The next pane alone on the screen, back to the screen it came from
    /// after the last.
    CycleZoom,
    /// Out of the zoom, else out of the war room.
    ViewBack,
    /// Several databases: the panes show the next (or previous) one.
    NextDatabase,
    PreviousDatabase,
    /// Several databases: checkpoints for every one at once, or back to
    /// the one shown.
    ToggleAll,
}

impl Command {
    /// Changes only what this viewer sees (or ends it): all a replay or a
    /// follower binds.
    pub fn view_only(self) -> bool {
        matches!(
            self,
            C::ToggleHelp
                | C::ToggleOutput
                | C::ScrollDown
                | C::ScrollUp
                | C::ScrollTop
                | C::Quit
                | C::QuitConfirmed
                | C::QuitCancelled
                | C::Pause
                | C::Faster
                | C::Slower
                | C::Seek(_)
                | C::ToggleWarRoom
                | C::CycleZoom
                | C::ViewBack
                | C::NextDatabase
                | C::PreviousDatabase
        )
    }
}

/// A command the session log records: the operator's decisions, not keys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "snake_case")]
pub enum SessionCommand {
    Quit,
    ExactCount,
    Verify,
    VerifyContinuous,
    /// Cancel whatever runs: counts, verification, a Kubernetes action.
    Cancel,
    /// Open the confirmation of a checkpoint (refreshes its access review).
    Open {
        checkpoint: CheckpointId,
    },
    Close,
    /// An operator note, for the log and the report.
    Note {
        text: String,
    },
    /// Run the checkpoint if `typed` is what it asks for and its guards
    /// pass, or every failing guard is overridden by `reason`.
    Confirm {
        checkpoint: CheckpointId,
        typed: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
        /// Confirmed once for every database of the session, these: the
        /// operator typed [`FLEET_WORD`] in the confirmation listing each.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        fleet: Vec<String>,
    },
}

/// What a confirmation for every database at once asks to be typed.
pub const FLEET_WORD: &str = "all";

impl SessionCommand {
    /// How the log and the report say it.
    pub fn describe(&self) -> String {
        match self {
            SessionCommand::Quit => "quit".into(),
            SessionCommand::ExactCount => "exact count".into(),
            SessionCommand::Verify => "verify".into(),
            SessionCommand::VerifyContinuous => "verify continuously".into(),
            SessionCommand::Cancel => "cancel".into(),
            SessionCommand::Open { checkpoint } => format!("open {}", checkpoint.title()),
            SessionCommand::Close => "close the dialog".into(),
            SessionCommand::Note { text } => format!("note: {text}"),
            SessionCommand::Confirm {
                checkpoint,
                typed,
                reason,
                fleet,
            } => {
                let all = if fleet.is_empty() {
                    String::new()
                } else {
                    format!(" for {}", fleet.join(", "))
                };
                match reason {
                    Some(r) => format!(
                        "confirm {}{all} (typed \"{typed}\", overriding: {r})",
                        checkpoint.title()
                    ),
                    None => format!("confirm {}{all} (typed \"{typed}\")", checkpoint.title()),
                }
            }
        }
    }
}

/// One row of the keymap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Binding {
    pub layer: Layer,
    /// Key names as `runtime::keys::name` gives them; the first is shown.
    pub keys: &'static [&'static str],
    pub command: Command,
    /// Its word in the footer (None: help only).
    pub footer: Option<&'static str>,
    /// Its line in the help.
    pub help: &'static str,
    /// Changes something outside cutover: never bound when read-only.
    pub dangerous: bool,
}

const fn bind(
    layer: Layer,
    keys: &'static [&'static str],
    command: Command,
    footer: Option<&'static str>,
    help: &'static str,
    dangerous: bool,
) -> Binding {
    Binding {
        layer,
        keys,
        command,
        footer,
        help,
        dangerous,
    }
}

use Command as C;
use Layer as L;

/// Read as a table: layer, keys, command, footer word, help, dangerous.
#[rustfmt::skip]
pub const BINDINGS: &[Binding] = &[
    bind(L::Main, &["c"], C::ExactCount, Some("count"), "exact row counts", false),
    bind(L::Main, &["v"], C::Verify, Some("verify"), "checksum once", false),
    bind(L::Main, &["V"], C::Open(CheckpointId::VerifyLive), Some("verify"), "verify live", true),
    bind(L::Main, &["x"], C::Cancel, Some("cancel"), "cancel what runs", false),
    bind(L::Main, &["F"], C::Open(CheckpointId::Preflight), Some("prepare"), "preflight checks", true),
    bind(L::Main, &["D"], C::Open(CheckpointId::CopySchema), Some("prepare"), "copy the schema", true),
    bind(L::Main, &["P"], C::Open(CheckpointId::CreatePublication), Some("prepare"), "publication", true),
    bind(L::Main, &["U"], C::Open(CheckpointId::CreateSubscription), Some("prepare"), "subscription", true),
    bind(L::Main, &["W"], C::Open(CheckpointId::WaitInitialSync), Some("prepare"), "wait for sync", true),
    bind(L::Main, &["Z"], C::Open(CheckpointId::FreezeWrites), Some("cutover"), "freeze writes", true),
    bind(L::Main, &["Y"], C::Open(CheckpointId::DumpRestore), Some("cutover"), "dump and restore", true),
    bind(L::Main, &["C"], C::Open(CheckpointId::FinalCheck), Some("cutover"), "lag 0, counts, checksums", true),
    bind(L::Main, &["A"], C::Open(CheckpointId::AdvanceSequences), Some("cutover"), "advance sequences", true),
    bind(L::Main, &["E"], C::Open(CheckpointId::ReverseReplication), Some("cutover"), "reverse replication", true),
    bind(L::Main, &["S"], C::Open(CheckpointId::SwitchConfig), Some("cutover"), "switch DB config", true),
    bind(L::Main, &["R"], C::Open(CheckpointId::RolloutRestart), Some("cutover"), "restart workloads", true),
    bind(L::Main, &["T"], C::Open(CheckpointId::AppOnTarget), Some("cutover"), "app on target?", true),
    bind(L::Main, &["B"], C::Open(CheckpointId::Rollback), Some("cutover"), "roll back", true),
    bind(L::Main, &["X"], C::Open(CheckpointId::DropSubscription), Some("finish"), "drop the subscription", true),
    bind(L::Main, &["]"], C::NextDatabase, Some("database"), "next database", false),
    bind(L::Main, &["["], C::PreviousDatabase, None, "previous database", false),
    bind(L::Main, &["a"], C::ToggleAll, Some("all"), "for all databases", true),
    bind(L::Main, &["Up", "k"], C::ScrollUp, None, "scroll up", false),
    bind(L::Main, &["Down", "j"], C::ScrollDown, None, "scroll down", false),
    bind(L::Main, &["Home", "g"], C::ScrollTop, None, "first table", false),
    bind(L::Main, &["n"], C::OpenNote, Some("note"), "add a note", false),
    bind(L::Main, &["o"], C::ToggleOutput, Some("output"), "the run's output", false),
    bind(L::Main, &["w"], C::ToggleWarRoom, Some("view"), "war-room screen", false),
    bind(L::Main, &["z"], C::CycleZoom, Some("view"), "zoom: next pane", false),
    bind(L::Main, &["?"], C::ToggleHelp, Some("help"), "this help", false),
    bind(L::Main, &["q", "Ctrl-c"], C::Quit, Some("quit"), "quit", false),
    bind(L::Help, &["?", "Esc", "q", "Enter"], C::ToggleHelp, Some("close"), "close the help", false),
    bind(L::Output, &["o", "Esc", "q"], C::ToggleOutput, Some("close"), "close the output", false),
    bind(L::Output, &["Down", "j"], C::ScrollDown, Some("scroll"), "scroll down", false),
    bind(L::Output, &["Up", "k"], C::ScrollUp, Some("scroll"), "scroll up", false),
    bind(L::Output, &["Home", "g"], C::ScrollTop, None, "back to the top", false),
    bind(L::ConfirmQuit, &["y", "Y"], C::QuitConfirmed, Some("quit and cancel"), "quit, cancelling what runs", false),
    bind(L::ConfirmQuit, &["n", "N", "Esc", "q"], C::QuitCancelled, Some("stay"), "stay", false),
    bind(L::Confirm, &["Enter"], C::Submit, Some("run"), "run it, when the guards pass and the name matches", true),
    bind(L::Confirm, &["Esc"], C::CloseDialog, Some("close"), "close without running", false),
    bind(L::Confirm, &["Backspace"], C::Backspace, None, "delete the character before the cursor", false),
    bind(L::Confirm, &["Tab"], C::ToggleReason, Some("override"), "type a reason to override failing guards", true),
    bind(L::Note, &["Enter"], C::SaveNote, Some("save to the log"), "save the note to the session log", false),
    bind(L::Note, &["Esc"], C::CloseNote, Some("discard"), "close without saving", false),
    bind(L::Playback, &[" "], C::Pause, Some("pause"), "pause / play", false),
    bind(L::Playback, &["+", "="], C::Faster, Some("speed"), "faster (up to 64×)", false),
    bind(L::Playback, &["-"], C::Slower, None, "slower (down to 0.5×)", false),
    bind(L::Playback, &["Left", "h"], C::Seek(Seek::By(-10)), Some("±10s"), "back 10 seconds", false),
    bind(L::Playback, &["Right", "l"], C::Seek(Seek::By(10)), None, "forward 10 seconds", false),
    bind(L::Playback, &["<", ","], C::Seek(Seek::By(-60)), Some("±1m"), "back a minute", false),
    bind(L::Playback, &[">", "."], C::Seek(Seek::By(60)), None, "forward a minute", false),
    bind(L::Playback, &["p", "PageUp"], C::Seek(Seek::PreviousMark), Some("checkpoint"), "previous checkpoint", false),
    bind(L::Playback, &["n", "PageDown"], C::Seek(Seek::NextMark), None, "next checkpoint", false),
    bind(L::Playback, &["Home"], C::Seek(Seek::Start), None, "the start", false),
    bind(L::Playback, &["End", "G"], C::Seek(Seek::End), None, "the end", false),
    bind(L::View, &["Esc"], C::ViewBack, Some("back"), "back: the panes or the war room", false),
];

/// The bindings live in `layer`, without the dangerous ones when read-only.
pub fn bindings(layer: Layer, read_only: bool) -> impl Iterator<Item = &'static Binding> {
    BINDINGS
        .iter()
        .filter(move |b| b.layer == layer && !(read_only && b.dangerous))
}

pub fn resolve(layer: Layer, key: &str, read_only: bool) -> Option<Command> {
    bindings(layer, read_only)
        .find(|b| b.keys.contains(&key))
        .map(|b| b.command)
}

/// The bindings this viewer has in `layer`: a replay's playback keys
/// first, then the way back from a zoom or the war room, and for a replay
/// or a follower only what changes its own view.
pub fn bindings_for(model: &Model, view: &View, layer: Layer) -> Vec<&'static Binding> {
    // The way back out of a zoom or the war room, only while one is shown.
    let back = (layer == Layer::Main && (view.war_room || view.zoom.is_some()))
        .then(|| bindings(Layer::View, true))
        .into_iter()
        .flatten();
    // Only the keys of this session's runbook's checkpoints.
    let runbook = crate::runbook::checkpoints(model);
    let fleet = view.fleet.is_some();
    let in_runbook = move |b: &&'static Binding| {
        !matches!(b.command, C::Open(id) if !runbook.contains(&id))
            && (fleet
                || !matches!(
                    b.command,
                    C::NextDatabase | C::PreviousDatabase | C::ToggleAll
                ))
    };
    match &view.watch {
        None => back
            .chain(bindings(layer, model.read_only()))
            .filter(in_runbook)
            .collect(),
        Some(w) => {
            let playback = (layer == Layer::Main && w.kind == WatchKind::Replay)
                .then(|| bindings(Layer::Playback, true))
                .into_iter()
                .flatten();
            playback
                .chain(back)
                .chain(bindings(layer, true).filter(|b| b.command.view_only()))
                .filter(in_runbook)
                .collect()
        }
    }
}

/// What a key does in `layer` for this viewer: a replay or a follower binds
/// only what changes its own view, and a replay its playback keys first.
pub fn resolve_for(model: &Model, view: &View, layer: Layer, key: &str) -> Option<Command> {
    bindings_for(model, view, layer)
        .into_iter()
        .find(|b| b.keys.contains(&key))
        .map(|b| b.command)
}

/// A key, in full: changes the view and returns the command to log and
/// apply to the session, if any. Pure, like the model.
pub fn dispatch(model: &Model, view: &mut View, key: &str) -> Option<SessionCommand> {
    let layer = layer(model, view);
    let Some(command) = resolve_for(model, view, layer, key) else {
        // In a confirmation or a note, other keys edit what is typed.
        match layer {
            Layer::Confirm => {
                view.field_mut().key(key);
            }
            Layer::Note => {
                if let Some(note) = view.note.as_mut() {
                    note.key(key);
                }
            }
            _ => {}
        }
        return None;
    };
    match command {
        C::ScrollDown if layer == Layer::Output => {
            view.output_scroll = view.output_scroll.saturating_add(1)
        }
        C::ScrollUp if layer == Layer::Output => {
            view.output_scroll = view.output_scroll.saturating_sub(1)
        }
        C::ScrollTop if layer == Layer::Output => view.output_scroll = 0,
        C::ToggleHelp => view.help = !view.help,
        C::ToggleOutput => {
            view.output = !view.output;
            view.output_scroll = 0;
        }
        C::ScrollDown => {
            view.scroll = (view.scroll + 1).min(super::table_rows(model).len().saturating_sub(1))
        }
        C::ScrollUp => view.scroll = view.scroll.saturating_sub(1),
        C::ScrollTop => view.scroll = 0,
        C::Pause | C::Faster | C::Slower | C::Seek(_) => {
            if let Some(w) = view.watch.as_mut() {
                match command {
                    C::Pause => w.paused = !w.paused,
                    C::Faster => w.speed = (w.speed + 1).min(SPEEDS.len() - 1),
                    C::Slower => w.speed = w.speed.saturating_sub(1),
                    C::Seek(s) => w.seek = Some(s),
                    _ => {}
                }
            }
        }
        // A viewer's quit ends only the viewer.
        C::Quit
            if (model.action_running() || view.fleet.as_ref().is_some_and(|f| f.busy))
                && view.watch.is_none() =>
        {
            view.confirm_quit = true
        }
        C::Quit | C::QuitConfirmed => {
            view.confirm_quit = false;
            return Some(SessionCommand::Quit);
        }
        C::QuitCancelled => view.confirm_quit = false,
        C::ExactCount => return Some(SessionCommand::ExactCount),
        C::Verify => return Some(SessionCommand::Verify),
        C::Cancel => return Some(SessionCommand::Cancel),
        C::Open(checkpoint) => {
            view.clear_dialog();
            return Some(SessionCommand::Open { checkpoint });
        }
        C::CloseDialog => {
            view.clear_dialog();
            return Some(SessionCommand::Close);
        }
        C::Backspace => {
            view.field_mut().key("Backspace");
        }
        C::OpenNote => view.note = Some(Default::default()),
        C::CloseNote => view.note = None,
        C::SaveNote => {
            let text = view.note.take()?.text().trim().to_string();
            return (!text.is_empty()).then_some(SessionCommand::Note { text });
        }
        C::ToggleReason => view.editing_reason = !view.editing_reason,
        C::ToggleWarRoom => {
            view.war_room = view.zoom.is_some() || !view.war_room;
            view.zoom = None;
        }
        C::CycleZoom => view.zoom = super::view::Pane::next(view.zoom, model),
        C::ViewBack => {
            if view.zoom.take().is_none() {
                view.war_room = false;
            }
        }
        C::Submit => {
            let checkpoint = model.dialog?;
            let reason = view.reason.text().trim();
            let fleet = match &view.fleet {
                Some(f) if f.all => f.names.clone(),
                _ => Vec::new(),
            };
            return Some(SessionCommand::Confirm {
                checkpoint,
                typed: view.typed.text().to_string(),
                reason: (!reason.is_empty()).then(|| reason.to_string()),
                fleet,
            });
        }
        C::NextDatabase | C::PreviousDatabase => {
            if let Some(f) = view.fleet.as_mut().filter(|f| !f.names.is_empty()) {
                let n = f.names.len();
                f.selected = match command {
                    C::NextDatabase => (f.selected + 1) % n,
                    _ => (f.selected + n - 1) % n,
                };
                view.scroll = 0;
            }
        }
        C::ToggleAll => {
            if let Some(f) = view.fleet.as_mut() {
                f.all = !f.all;
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_key_means_two_things_in_one_layer() {
        for (i, a) in BINDINGS.iter().enumerate() {
            for b in &BINDINGS[i + 1..] {
                if a.layer == b.layer {
                    for k in a.keys {
                        assert!(!b.keys.contains(k), "{k} is bound twice in {:?}", a.layer);
                    }
                }
            }
        }
    }

    #[test]
    fn read_only_binds_nothing_dangerous_and_everything_else() {
        for layer in [
            Layer::Main,
            Layer::Help,
            Layer::Output,
            Layer::ConfirmQuit,
            Layer::Confirm,
            Layer::Note,
            Layer::Playback,
            Layer::View,
        ] {
            for b in bindings(layer, true) {
                assert!(!b.dangerous, "{:?} bound read-only", b.command);
            }
            let all = BINDINGS.iter().filter(|b| b.layer == layer).count();
            let safe = BINDINGS
                .iter()
                .filter(|b| b.layer == layer && !b.dangerous)
                .count();
            assert_eq!(bindings(layer, true).count(), safe);
            assert_eq!(bindings(layer, false).count(), all);
        }
        for k in ["S", "R", "B"] {
            assert_eq!(resolve(Layer::Main, k, true), None, "{k} read-only");
            assert!(resolve(Layer::Main, k, false).is_some(), "{k} live");
        }
        assert_eq!(resolve(Layer::Confirm, "Enter", true), None);
    }

    #[test]
    fn a_replay_or_a_follower_binds_nothing_that_acts_or_records() {
        let live = Model {
            info: Some(crate::model::update::tests::info()),
            ..Model::default()
        };
        for kind in [WatchKind::Replay, WatchKind::Follow] {
            let mut view = View {
                watch: Some(super::super::view::Watch::new(kind)),
                ..View::default()
            };
            for b in BINDINGS.iter().filter(|b| b.layer == Layer::Main) {
                for k in b.keys {
                    let got = resolve_for(&live, &view, Layer::Main, k);
                    assert!(
                        got.is_none_or(Command::view_only),
                        "{k} → {got:?} in {kind:?}"
                    );
                }
            }
            assert_eq!(dispatch(&live, &mut view, "S"), None);
            assert_eq!(dispatch(&live, &mut view, "c"), None);
            assert_eq!(dispatch(&live, &mut view, "q"), Some(SessionCommand::Quit));
        }
        let mut view = View {
            watch: Some(super::super::view::Watch::new(WatchKind::Replay)),
            ..View::default()
        };
        for k in [" ", "+", "+", "Right", "n"] {
            dispatch(&live, &mut view, k);
        }
        let w = view.watch.as_ref().unwrap();
        assert!(w.paused);
        assert_eq!(w.speed(), 4.0);
        assert_eq!(w.seek, Some(Seek::NextMark), "the latest asked for");
        for _ in 0..20 {
            dispatch(&live, &mut view, "+");
        }
        assert_eq!(view.watch.as_ref().unwrap().speed(), 64.0);
        let mut follow = View {
            watch: Some(super::super::view::Watch::new(WatchKind::Follow)),
            ..View::default()
        };
        dispatch(&live, &mut follow, " ");
        assert!(
            !follow.watch.as_ref().unwrap().paused,
            "a follower is always live"
        );
    }

    /// `w`, `z` and Esc change only this viewer's screen: bound for a live
    /// console, a read-only one, a replay and a follower alike, never
    /// dangerous, never logged.
    #[test]
    fn war_room_and_zoom_keys_are_every_viewers() {
        use super::super::view::{Pane, Watch};
        let live = Model {
            info: Some(crate::model::update::tests::info()),
            ..Model::default()
        };
        let mut ro = live.clone();
        ro.info.as_mut().unwrap().read_only = true;
        let viewers = [
            View::default(),
            View {
                watch: Some(Watch::new(WatchKind::Replay)),
                ..View::default()
            },
            View {
                watch: Some(Watch::new(WatchKind::Follow)),
                ..View::default()
            },
        ];
        for (key, command) in [("w", C::ToggleWarRoom), ("z", C::CycleZoom)] {
            let b = BINDINGS
                .iter()
                .find(|b| b.keys.contains(&key) && b.layer == Layer::Main)
                .unwrap();
            assert_eq!(b.command, command);
            assert!(!b.dangerous && command.view_only(), "{key}");
            // Free in the layers that come before the main one.
            assert_eq!(resolve(Layer::Playback, key, true), None, "{key}");
            assert_eq!(resolve(Layer::View, key, true), None, "{key}");
            for model in [&live, &ro] {
                for v in &viewers {
                    assert_eq!(
                        resolve_for(model, v, Layer::Main, key),
                        Some(command),
                        "{key} for {:?} read-only {}",
                        v.watch.as_ref().map(|w| w.kind),
                        model.read_only()
                    );
                }
            }
        }
        let back = BINDINGS.iter().find(|b| b.command == C::ViewBack).unwrap();
        assert_eq!((back.layer, back.keys), (Layer::View, &["Esc"][..]));
        assert!(!back.dangerous && C::ViewBack.view_only());
        assert_eq!(resolve(Layer::Playback, "Esc", true), None);
        assert_eq!(resolve(Layer::Main, "Esc", true), None);
        for model in [&live, &ro] {
            for v in &viewers {
                // In the panes Esc is nobody's; from a zoom or the war room it goes back.
                assert_eq!(resolve_for(model, v, Layer::Main, "Esc"), None);
                for (war_room, zoom) in [(true, None), (false, Some(Pane::Slots))] {
                    let v = View {
                        war_room,
                        zoom,
                        ..v.clone()
                    };
                    assert_eq!(
                        resolve_for(model, &v, Layer::Main, "Esc"),
                        Some(C::ViewBack)
                    );
                }
            }
        }

        // What they do: nothing a session logs, only where this viewer looks.
        for v in viewers {
            let mut v = v;
            let mut step = |k: &str| {
                assert_eq!(dispatch(&live, &mut v, k), None, "{k} logs nothing");
                (v.war_room, v.zoom)
            };
            assert_eq!(step("w"), (true, None));
            assert_eq!(step("z"), (true, Some(Pane::Lag)));
            assert_eq!(step("z"), (true, Some(Pane::Slots)));
            assert_eq!(step("Esc"), (true, None), "back to the war room");
            assert_eq!(step("Esc"), (false, None), "back to the panes");
            assert_eq!(step("Esc"), (false, None), "Esc in the panes is nothing");
            assert_eq!(step("z"), (false, Some(Pane::Lag)));
            assert_eq!(step("w"), (true, None), "w from a zoom: the war room");
            assert_eq!(step("w"), (false, None));
            // No Kubernetes side: the rollout pane is skipped, and after
            // the last pane the screen it came from.
            let mut seen = vec![];
            while let (_, Some(p)) = step("z") {
                seen.push(p);
            }
            assert_eq!(
                seen,
                vec![
                    Pane::Lag,
                    Pane::Slots,
                    Pane::Counts,
                    Pane::Run,
                    Pane::Runbook
                ]
            );
        }
    }

    #[test]
    fn scrolling_keys_move_what_is_open() {
        let model = Model::default();
        let mut view = View::default();
        dispatch(&model, &mut view, "j");
        assert_eq!(
            (view.scroll, view.output_scroll),
            (0, 0),
            "no tables to scroll"
        );
        dispatch(&model, &mut view, "o");
        assert_eq!(layer(&model, &view), Layer::Output);
        for k in ["j", "j", "Down", "k"] {
            dispatch(&model, &mut view, k);
        }
        assert_eq!((view.scroll, view.output_scroll), (0, 2));
        dispatch(&model, &mut view, "g");
        assert_eq!(view.output_scroll, 0);
        dispatch(&model, &mut view, "j");
        dispatch(&model, &mut view, "Esc");
        assert!(!view.output);
        dispatch(&model, &mut view, "o");
        assert_eq!(view.output_scroll, 0, "opened again at the top");
    }

    #[test]
    fn session_commands_round_trip_through_the_log_format() {
        let c = SessionCommand::Confirm {
            checkpoint: CheckpointId::SwitchConfig,
            typed: "app-db".into(),
            reason: None,
            fleet: Vec::new(),
        };
        let json = serde_json::to_string(&crate::session::EventKind::Command(c.clone())).unwrap();
        assert_eq!(
            json,
            r#"{"type":"command","command":"confirm","checkpoint":"switch_config","typed":"app-db"}"#
        );
        let back: crate::session::EventKind = serde_json::from_str(&json).unwrap();
        assert_eq!(back, crate::session::EventKind::Command(c));
    }
}
