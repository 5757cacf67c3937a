//! A scripted console, for rehearsals and benchmarks: the checkpoints named
//! by their keys, one after another, each opened, confirmed with what its
//! dialog asks for once every guard passes (never overridden), and waited
//! for; the first failure stops the script. The commands go through the log
//! like keyed ones, so the session replays and reports the same.
//!
//! Pure: the runtime asks [`Script::next`] after each event and does what
//! it says.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Result};

use crate::model::keymap::{Command, Layer, SessionCommand, BINDINGS};
use crate::model::Model;
use crate::runbook::{self, CheckpointId, Confirm, Guard};

/// How long a checkpoint's guards may take to pass before the script gives up.
const GUARD_WAIT: Duration = Duration::from_secs(300);
/// A confirmation the model refused (a guard flickered at that moment) is
/// sent again after this long.
const RESUBMIT: Duration = Duration::from_secs(2);

/// What the runtime does next.
#[derive(Debug, Clone, PartialEq)]
pub enum Next {
    /// Record and fold this command.
    Command(SessionCommand),
    Wait,
    /// Every checkpoint ran.
    Done,
    /// Stopped: why.
    Failed(String),
}

#[derive(Debug, Clone, Copy)]
enum State {
    Idle,
    Opened {
        id: CheckpointId,
        may_fail: bool,
        since: Instant,
    },
    Submitted {
        id: CheckpointId,
        may_fail: bool,
        since: Instant,
        runs_before: u64,
        at: Instant,
    },
}

#[derive(Debug, Clone)]
pub struct Script {
    steps: VecDeque<(CheckpointId, bool)>,
    state: State,
}

impl Script {
    /// `"F? D P U W V Z C A E S R T X"`: checkpoint keys in order, separated
    /// by spaces or commas; `?` after a key lets it fail without stopping.
    pub fn parse(text: &str) -> Result<Script> {
        let mut steps = VecDeque::new();
        for word in text.split([' ', ',']).filter(|w| !w.is_empty()) {
            let (key, may_fail) = match word.strip_suffix('?') {
                Some(k) => (k, true),
                None => (word, false),
            };
            let id = BINDINGS
                .iter()
                .filter(|b| b.layer == Layer::Main && b.keys.contains(&key))
                .find_map(|b| match b.command {
                    Command::Open(id) => Some(id),
                    _ => None,
                })
                .ok_or_else(|| anyhow!("--script: {key:?} is not a checkpoint's key"))?;
            steps.push_back((id, may_fail));
        }
        if steps.is_empty() {
            return Err(anyhow!("--script: no checkpoint keys given"));
        }
        Ok(Script {
            steps,
            state: State::Idle,
        })
    }

    /// What to do now, given the session as folded so far.
    pub fn next(&mut self, model: &Model, now: Instant) -> Next {
        match self.state {
            State::Idle => {
                if model.actions.running().is_some() {
                    return Next::Wait;
                }
                let Some((id, may_fail)) = self.steps.pop_front() else {
                    return Next::Done;
                };
                let variant = runbook::variant(model);
                if !runbook::checkpoints(model).contains(&id) {
                    return Next::Failed(format!(
                        "{} is not a checkpoint of the {} runbook",
                        id.title(),
                        variant.as_str()
                    ));
                }
                self.state = State::Opened {
                    id,
                    may_fail,
                    since: now,
                };
                Next::Command(SessionCommand::Open { checkpoint: id })
            }
            State::Opened {
                id,
                may_fail,
                since,
            } => {
                let failing: Vec<String> = runbook::failing(model, id)
                    .iter()
                    .map(Guard::said)
                    .collect();
                if !failing.is_empty() {
                    return if now.duration_since(since) > GUARD_WAIT {
                        Next::Failed(format!(
                            "{}: guards still fail after {} s: {}",
                            id.title(),
                            GUARD_WAIT.as_secs(),
                            failing.join("; ")
                        ))
                    } else {
                        Next::Wait
                    };
                }
                let Some(plan) = runbook::plan(model, id) else {
                    return Next::Failed(format!("{}: nothing to run it against", id.title()));
                };
                let typed = match plan.confirm {
                    Confirm::Yes => String::new(),
                    Confirm::TypeName(name) => name,
                };
                self.state = State::Submitted {
                    id,
                    may_fail,
                    since,
                    runs_before: model.next_run,
                    at: now,
                };
                Next::Command(SessionCommand::Confirm {
                    checkpoint: id,
                    typed,
                    reason: None,
                    fleet: Vec::new(),
                })
            }
            State::Submitted {
                id,
                may_fail,
                since,
                runs_before,
                at,
            } => {
                if model.next_run == runs_before {
                    // Refused: a guard failed at that moment. Look again.
                    if now.duration_since(at) > RESUBMIT {
                        self.state = State::Opened {
                            id,
                            may_fail,
                            since,
                        };
                    }
                    return Next::Wait;
                }
                let Some(run) = model.actions.history.last() else {
                    return Next::Wait;
                };
                match &run.finished {
                    None => Next::Wait,
                    Some((_, ok, message)) => {
                        self.state = State::Idle;
                        if *ok || may_fail {
                            // On to the next one at once.
                            self.next(model, now)
                        } else {
                            Next::Failed(format!("{} failed: {message}", id.title()))
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_name_checkpoints_and_a_question_mark_lets_one_fail() {
        let s = Script::parse("F? D,P  Z").unwrap();
        let ids: Vec<(CheckpointId, bool)> = s.steps.iter().copied().collect();
        assert_eq!(
            ids,
            vec![
                (CheckpointId::Preflight, true),
                (CheckpointId::CopySchema, false),
                (CheckpointId::CreatePublication, false),
                (CheckpointId::FreezeWrites, false)
            ]
        );
        let e = Script::parse("F q").unwrap_err();
        assert_eq!(format!("{e}"), "--script: \"q\" is not a checkpoint's key");
        assert!(Script::parse(" , ").is_err());
    }
}
