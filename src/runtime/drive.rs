//! The one loop every mode runs: live, replay and follow differ only in
//! where events come from and whether effects run. It draws when something
//! changed, as soon as the change asks ([`pace`](super::pace)), and takes
//! the next input.

use std::time::Duration;

use chrono::Utc;
use futures::StreamExt;

use super::pace::{Pace, Urgency};
use super::{fail, keys, terminal, watch, Feed, SIGINT_REASON};
use crate::model;
use crate::session::EventKind;
use crate::ui;

/// How this console draws: its theme, how long a changed sample waits to
/// be drawn (`--refresh`), and whether it keeps to ASCII (`--ascii`).
#[derive(Debug, Clone)]
pub struct Display {
    pub theme: ui::Theme,
    pub refresh: Duration,
    pub ascii: bool,
}

impl Display {
    pub fn new(theme: ui::Theme) -> Self {
        Self {
            theme,
            refresh: Pace::DEFAULT_REFRESH,
            ascii: false,
        }
    }
}

/// What woke the loop.
pub(super) enum Input {
    /// An event for the live console to log and fold, of database `.0`.
    Event(usize, Box<EventKind>),
    /// A replay's clock or a follower's poll: fold what is due.
    Due,
    Key(crossterm::event::KeyEvent),
    Resize,
    /// A frame held back by the frame rate is due.
    Frame,
    Stop(String),
}

/// The one loop: draws what changed when it is due, takes the next
/// input, folds it. Returns the feed, why it stopped, and a failure that
/// stopped it.
pub(super) async fn drive(
    mut feed: Feed,
    mut term: Option<terminal::TerminalGuard>,
    mut view: model::View,
    display: &Display,
) -> (Feed, String, Option<anyhow::Error>) {
    let mut input = term.as_ref().map(|_| crossterm::event::EventStream::new());
    let signals = |kind| tokio::signal::unix::signal(kind);
    use tokio::signal::unix::SignalKind;
    let (mut sigterm, mut sighup, mut sigint) = match (
        signals(SignalKind::terminate()),
        signals(SignalKind::hangup()),
        signals(SignalKind::interrupt()),
    ) {
        (Ok(t), Ok(h), Ok(i)) => (t, h, i),
        (Err(e), ..) | (_, Err(e), _) | (.., Err(e)) => {
            let e = anyhow::Error::new(e).context("installing signal handlers");
            return (feed, "signal handlers".into(), Some(e));
        }
    };
    // A replay's own clock runs at up to 64×: its frames follow it closely.
    let refresh = match feed {
        Feed::Replay(_) => Pace::MIN,
        _ => display.refresh,
    };
    let mut pace = Pace::new(refresh);
    pace.mark(Urgency::Now);
    let mut failure: Option<anyhow::Error> = None;
    let reason: String = loop {
        refresh_timeline(&feed, &mut view);
        if let Some(t) = term.as_mut() {
            let now = tokio::time::Instant::now();
            if pace.draw_now(now) {
                let models = feed.models();
                let drawn = t.frame(
                    |f| ui::screen(f, &models, &view, &display.theme),
                    |buf| {
                        if display.ascii {
                            ui::ascii::fold(buf)
                        }
                    },
                );
                if let Err(e) = drawn {
                    let e = anyhow::Error::new(e).context("drawing the screen");
                    break fail(&mut failure, e);
                }
                pace.drawn(now);
            }
        }
        let due = pace.due().filter(|_| term.is_some());
        let next = match &mut feed {
            // A script's command goes before anything else arrives.
            Feed::Live(l) => l
                .next_command()
                .map(|(i, c)| Input::Event(i, Box::new(EventKind::Command(c)))),
            _ => None,
        };
        let next = match next {
            Some(n) => n,
            None => {
                tokio::select! {
                    i = next_input(&mut feed, &view) => i,
                    maybe = next_key(&mut input) => match maybe {
                        Some(Ok(crossterm::event::Event::Key(key))) => Input::Key(key),
                        Some(Ok(crossterm::event::Event::Resize(..))) => Input::Resize,
                        Some(Ok(_)) => continue,
                        Some(Err(e)) => break format!("terminal input failed: {e}"),
                        None => break "terminal input closed".to_string(),
                    },
                    _ = sigterm.recv() => Input::Stop("SIGTERM".into()),
                    _ = sighup.recv() => Input::Stop("SIGHUP (terminal hung up)".into()),
                    _ = sigint.recv() => Input::Stop(SIGINT_REASON.into()),
                    _ = frame_due(due) => Input::Frame,
                }
            }
        };
        let kinds = match next {
            Input::Stop(why) => break why,
            Input::Frame => continue,
            Input::Resize => {
                let resized = term.as_mut().map_or(Ok(()), |t| t.autoresize());
                if let Err(e) = resized {
                    let e = anyhow::Error::new(e).context("resizing the screen");
                    break fail(&mut failure, e);
                }
                pace.mark(Urgency::Now);
                continue;
            }
            Input::Due => {
                let changed = match &mut feed {
                    Feed::Replay(r) => {
                        let w = view.watch.as_ref().expect("a replay has its watch");
                        r.advance(w)
                    }
                    Feed::Follow(f) => match f.poll() {
                        Ok(changed) => changed,
                        Err(e) => break fail(&mut failure, e),
                    },
                    Feed::Live(_) => false,
                };
                // A follower's "last event N s ago" moves on regardless.
                if changed || matches!(feed, Feed::Follow(_)) {
                    pace.mark(Urgency::Data);
                }
                continue;
            }
            Input::Key(key) => {
                let Some(name) = keys::name(&key) else {
                    continue;
                };
                if let (Feed::Live(l), Some(f)) = (&feed, view.fleet.as_mut()) {
                    f.busy = l.busy();
                }
                // The keymap decides; only the operator's decisions are logged.
                let command = model::keymap::dispatch(feed.model(&view), &mut view, &name);
                pace.mark(Urgency::Now);
                if let (Feed::Replay(r), Some(w)) = (&mut feed, view.watch.as_mut()) {
                    if let Some(seek) = w.seek.take() {
                        r.seek(seek);
                    }
                }
                match (command, &feed) {
                    (None, _) => continue,
                    (Some(c), Feed::Live(_)) => {
                        // To the database shown, or to every one at once.
                        let targets = match (&c, &view.fleet) {
                            (model::keymap::SessionCommand::Quit, _) | (_, None) => {
                                vec![view.selected_db()]
                            }
                            (_, Some(f)) => f.targets(),
                        };
                        targets
                            .into_iter()
                            .map(|i| (i, EventKind::Command(c.clone())))
                            .collect::<Vec<_>>()
                    }
                    // A viewer binds nothing else that makes a command.
                    (Some(_), _) => break "quit".to_string(),
                }
            }
            Input::Event(i, kind) => vec![(i, *kind)],
        };
        let Feed::Live(live) = &mut feed else {
            continue;
        };
        let mut stop = None;
        for (i, kind) in kinds {
            let urgency = Urgency::of(&kind);
            match live.fold(i, kind) {
                Ok(None) => pace.mark(urgency),
                Ok(Some(why)) => {
                    stop = Some(why);
                    break;
                }
                // Nothing may run unrecorded: stop here.
                Err(e) => {
                    stop = Some(fail(&mut failure, e));
                    break;
                }
            }
        }
        if let Some(why) = stop {
            break why;
        }
    };
    drop(term);
    (feed, reason, failure)
}

/// What the timeline row shows, from where the feed is.
fn refresh_timeline(feed: &Feed, view: &mut model::View) {
    if let Some(w) = view.watch.as_mut() {
        w.bar = match feed {
            Feed::Replay(r) => r.timeline(),
            Feed::Follow(f) => f.timeline(Utc::now()),
            Feed::Live(_) => return,
        };
    }
}

async fn next_key(
    input: &mut Option<crossterm::event::EventStream>,
) -> Option<std::io::Result<crossterm::event::Event>> {
    match input.as_mut() {
        Some(input) => input.next().await,
        None => std::future::pending().await,
    }
}

async fn frame_due(due: Option<tokio::time::Instant>) {
    match due {
        Some(due) => tokio::time::sleep_until(due).await,
        None => std::future::pending::<()>().await,
    }
}

async fn next_input(feed: &mut Feed, view: &model::View) -> Input {
    match feed {
        Feed::Live(l) => match l.recv().await {
            Some((i, kind)) => Input::Event(i, Box::new(kind)),
            None => Input::Stop("every event source ended".into()),
        },
        Feed::Replay(r) => {
            let w = view.watch.as_ref().expect("a replay has its watch");
            r.wait(w).await;
            Input::Due
        }
        Feed::Follow(_) => {
            tokio::time::sleep(watch::FOLLOW_POLL).await;
            Input::Due
        }
    }
}
