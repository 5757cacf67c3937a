//! Reverse replication, target → source, set up inside the window before
//! the switch: a publication on the target and a subscription on the source
//! (`copy_data = false`, created disabled), whose slot on the target is made
//! now — before the application's first write there — so every write it
//! makes on the target reaches the source and a rollback after the switch
//! loses nothing. The forward subscription stops applying before the
//! reverse one is enabled, so nothing the source receives back loops
//! forward. Its apply worker runs as the subscription's owner, which the
//! freeze does not touch.

use chrono::{DateTime, Utc};

use crate::model::Model;
use crate::pg::monitor::{qualified, quote_ident};
use crate::runbook::guard::{self, Guard};
use crate::runbook::plan::{Confirm, Plan, Step};
use crate::runbook::CheckpointId;
use crate::session::Side;

use super::prepare::source_tables;

/// The reverse publication's, subscription's and slot's name.
pub fn name(model: &Model) -> Option<String> {
    Some(format!("{}_reverse", model.info.as_ref()?.subscription))
}

/// Since when reverse replication runs: its checkpoint succeeded and no
/// rollback since took it down.
pub fn running_since(model: &Model) -> Option<DateTime<Utc>> {
    since(model, |r| match &r.finished {
        Some((at, true, _)) if !r.plan.steps.is_empty() => Some(*at),
        _ => None,
    })
}

/// Since when the reverse subscription exists on the source: an E run got
/// as far as creating it (a later step may have failed), and no rollback
/// since dropped it.
pub fn created_since(model: &Model) -> Option<DateTime<Utc>> {
    since(model, |r| {
        r.steps.iter().find_map(|s| match (&s.step, &s.finished) {
            (
                Step::CreateSubscription {
                    on: Side::Source, ..
                },
                Some((at, Ok(_))),
            ) => Some(*at),
            _ => None,
        })
    })
}

/// The latest time `set` finds in an E run, unless a rollback dropped the
/// reverse subscription after it.
fn since(
    model: &Model,
    set: impl Fn(&crate::model::CheckpointRun) -> Option<DateTime<Utc>>,
) -> Option<DateTime<Utc>> {
    let mut since = None;
    for r in &model.actions.history {
        // Through the pooler, the switch sets reverse replication up itself.
        let sets_it_up = r.checkpoint == CheckpointId::SwitchConfig
            && r.plan
                .steps
                .iter()
                .any(|s| matches!(s, Step::StopSubscription { .. }));
        match r.checkpoint {
            CheckpointId::ReverseReplication | CheckpointId::SwitchConfig
                if sets_it_up || r.checkpoint == CheckpointId::ReverseReplication =>
            {
                if let Some(at) = set(r) {
                    since = Some(at);
                }
            }
            // A rollback that got as far as dropping it.
            CheckpointId::Rollback
                if r.steps
                    .iter()
                    .any(|s| drops_reverse(&s.step) && matches!(s.finished, Some((_, Ok(_))))) =>
            {
                since = None
            }
            _ => {}
        }
    }
    since
}

fn drops_reverse(step: &Step) -> bool {
    matches!(step, Step::Sql { side: Side::Source, sql, .. } if sql.starts_with("DROP SUBSCRIPTION"))
}

/// The statement that publishes the selected tables on the target, once.
fn publication_sql(name: &str, tables: &[String]) -> String {
    format!(
        "DO $$BEGIN IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_publication WHERE pubname = {}) \
         THEN CREATE PUBLICATION {} FOR TABLE {}; END IF; END$$",
        crate::verify::sql::literal(name),
        quote_ident(name),
        tables.join(", ")
    )
}

pub fn guards(model: &Model) -> Vec<Guard> {
    let switched = model.actions.switched.is_some();
    vec![
        guard::side_live(model, Side::Source),
        guard::side_live(model, Side::Target),
        guard::no_other_run(model),
        guard::writes_frozen(model),
        guard::caught_up_after_freeze(model),
        Guard::check(
            "Before the switch",
            !switched,
            if switched {
                "the config was switched: the app may have written to the target before the \
                 slot existed, and those writes would never reach the source"
            } else {
                "the app has not written to the target: its slot will see every write"
            },
        ),
    ]
}

pub fn plan(model: &Model) -> Option<Plan> {
    let info = model.info.as_ref()?;
    let name = name(model)?;
    if let Some(at) = running_since(model) {
        return Some(Plan {
            checkpoint: CheckpointId::ReverseReplication,
            steps: vec![],
            confirm: Confirm::Yes,
            notes: vec![format!(
                "already done: reverse replication {name} runs since {}",
                at.format("%H:%M:%S")
            )],
        });
    }
    let tables: Vec<String> = source_tables(model).iter().map(qualified).collect();
    let mut steps = Vec::new();
    let mut notes = Vec::new();
    match created_since(model) {
        // An earlier run created it and stopped short: go on from there.
        Some(at) => notes.push(format!(
            "{name} was created on the source at {} by an earlier run that did not finish: \
             not created again",
            at.format("%H:%M:%S")
        )),
        None => steps.extend([
            Step::Sql {
                side: Side::Target,
                sql: publication_sql(&name, &tables),
                lock_timeout_ms: 5_000,
                statement_timeout_ms: 30_000,
            },
            // The slot now, applying nothing yet: a target that cannot
            // publish fails here, before anything stopped.
            Step::CreateSubscription {
                name: name.clone(),
                publication: name.clone(),
                source: info.target.describe.clone(),
                on: Side::Source,
                copy_data: false,
                enabled: false,
            },
        ]),
    }
    steps.extend([
        Step::StopSubscription {
            name: info.subscription.clone(),
        },
        Step::Sql {
            side: Side::Source,
            sql: format!("ALTER SUBSCRIPTION {} ENABLE", quote_ident(&name)),
            lock_timeout_ms: 5_000,
            statement_timeout_ms: 30_000,
        },
    ]);
    notes.extend([
        format!(
            "{} stops applying first: nothing the source receives back loops forward",
            info.subscription
        ),
        format!(
            "slot {name} on the target exists from now on: every write the app makes there \
                 after the switch reaches the source"
        ),
        "the rollback (B) after the switch waits for it before sending the app back".into(),
    ]);
    Some(Plan {
        checkpoint: CheckpointId::ReverseReplication,
        steps,
        confirm: Confirm::Yes,
        notes,
    })
}
