//! The live console's state: one [`Db`] per database the session drives
//! (one without `[[databases]]`), each with its own session log, model,
//! collectors, executor and script, folded apart; and what they share —
//! the screen's digest size, the metrics exporter.

use anyhow::Result;
use tokio::sync::mpsc;

use super::{effects, script, Core};
use crate::model::{self, keymap::SessionCommand};
use crate::session::EventKind;
use crate::ui;

/// One database's share of the live console.
pub(super) struct Db {
    pub core: Core,
    pub rx: mpsc::Receiver<EventKind>,
    pub effects: effects::Effects,
    /// Runs checkpoints without a terminal (`--script`).
    pub script: Option<script::Script>,
    pub next_command: Option<SessionCommand>,
    /// Its script ran every checkpoint.
    pub script_done: bool,
    /// One-second ticks folded: digests are taken every so many.
    pub ticks: u64,
}

pub(super) struct Live {
    pub dbs: Vec<Db>,
    pub script_failed: Option<String>,
    /// The screen size the digests are taken at.
    pub digest_size: (u16, u16),
    /// `--metrics`: the facts are brought up to date after every fold.
    pub metrics: Option<crate::metrics::Exporter>,
    /// The database whose events are taken first next time: none waits
    /// behind a busy one.
    pub turn: usize,
}

/// A screen digest every this many ticks, and after every run's end.
const DIGEST_EVERY_TICKS: u64 = 30;

impl Live {
    /// Logs and folds one event of database `i`, runs its effects, steps
    /// its script; why to stop, if it is time to.
    pub fn fold(&mut self, i: usize, kind: EventKind) -> Result<Option<String>> {
        let finished_run = matches!(kind, EventKind::RunFinished { .. });
        let tick = matches!(kind, EventKind::Tick);
        let several = self.dbs.len() > 1;
        let db = &mut self.dbs[i];
        if tick {
            db.ticks += 1;
        }
        let effects = db.core.apply(kind)?;
        db.effects.observe(&db.core.model);
        if let Some(m) = &self.metrics {
            m.update(&db.core.model);
        }
        if db.effects.run(effects) {
            return Ok(Some("operator quit".into()));
        }
        // On the tick itself: every event folded while the count stays at
        // a multiple would take (and log) another one.
        if finished_run || (tick && db.ticks.is_multiple_of(DIGEST_EVERY_TICKS)) {
            let (width, height) = self.digest_size;
            let digest = ui::digest(&db.core.model, width, height);
            db.core.apply(EventKind::ScreenDigest {
                width,
                height,
                digest,
            })?;
        }
        if let Some(s) = db.script.as_mut() {
            match s.next(&db.core.model, std::time::Instant::now()) {
                script::Next::Command(c) => db.next_command = Some(c),
                script::Next::Wait => {}
                // The last checkpoint's report is written before the end.
                script::Next::Done if db.core.model.report_pending => {}
                script::Next::Done => {
                    db.script_done = true;
                    if self.dbs.iter().all(|d| d.script_done) {
                        return Ok(Some("script done".into()));
                    }
                }
                script::Next::Failed(why) => {
                    let why = match (several, db_name(&db.core.model)) {
                        (true, Some(name)) => format!("{name}: {why}"),
                        _ => why,
                    };
                    self.script_failed = Some(why.clone());
                    return Ok(Some(format!("script stopped: {why}")));
                }
            }
        }
        Ok(None)
    }

    /// A script's next command, from the first database that has one.
    pub fn next_command(&mut self) -> Option<(usize, SessionCommand)> {
        self.dbs
            .iter_mut()
            .enumerate()
            .find_map(|(i, d)| d.next_command.take().map(|c| (i, c)))
    }

    /// The next event of any database, its index with it; None once one
    /// of them has no source left.
    pub async fn recv(&mut self) -> Option<(usize, EventKind)> {
        let n = self.dbs.len();
        let start = self.turn % n;
        self.turn = (start + 1) % n;
        let mut waits: Vec<_> = self
            .dbs
            .iter_mut()
            .enumerate()
            .map(|(i, d)| Box::pin(async move { (i, d.rx.recv().await) }))
            .collect();
        waits.rotate_left(start);
        let ((i, kind), _, _) = futures::future::select_all(waits).await;
        kind.map(|k| (i, k))
    }

    /// The models, in the config's order.
    pub fn models(&self) -> Vec<&model::Model> {
        self.dbs.iter().map(|d| &d.core.model).collect()
    }

    /// Whether a checkpoint runs for any database.
    pub fn busy(&self) -> bool {
        self.dbs.iter().any(|d| d.core.model.action_running())
    }
}

/// The database a model's session is of, in a session of several.
pub fn db_name(model: &model::Model) -> Option<&str> {
    model.info.as_ref()?.database.as_deref()
}
