//! Create the subscription on the target: it copies the existing rows, then
//! streams changes. The connection it is given is the source's DSN; the
//! plan shows it without its password.

use crate::model::Model;
use crate::runbook::guard::{self, Guard};
use crate::runbook::plan::{Confirm, Plan, Step};
use crate::runbook::CheckpointId;
use crate::session::Side;

use super::prepare::{first_few, missing_on_target, publication_exists, subscription_exists};

pub fn guards(model: &Model) -> Vec<Guard> {
    let mut g = vec![
        guard::side_live(model, Side::Source),
        guard::side_live(model, Side::Target),
        guard::no_other_run(model),
    ];
    let Some(info) = &model.info else {
        return g;
    };
    let published = publication_exists(model);
    g.push(Guard::check(
        "Publication exists",
        published,
        if published {
            format!("{} on the source", info.publication)
        } else {
            format!(
                "no publication {} on the source: create it first (P)",
                info.publication
            )
        },
    ));
    let missing = missing_on_target(model);
    g.push(Guard::check(
        "Target has the tables",
        missing.is_empty(),
        if missing.is_empty() {
            "every source table exists on the target".to_string()
        } else {
            format!(
                "{} missing on the target ({}): copy the schema first (D)",
                missing.len(),
                first_few(&missing)
            )
        },
    ));
    g
}

pub fn plan(model: &Model) -> Option<Plan> {
    let info = model.info.as_ref()?;
    let exists = subscription_exists(model);
    let steps = if exists {
        vec![]
    } else {
        vec![Step::CreateSubscription {
            name: info.subscription.clone(),
            publication: info.publication.clone(),
            source: info.source.describe.clone(),
            on: crate::session::Side::Target,
            copy_data: true,
            enabled: true,
        }]
    };
    Some(Plan {
        checkpoint: CheckpointId::CreateSubscription,
        steps,
        confirm: Confirm::Yes,
        notes: if exists {
            vec![format!(
                "already done: subscription {} exists on the target",
                info.subscription
            )]
        } else {
            vec![
                "The subscription copies every table, then streams changes (W waits for it)."
                    .into(),
            ]
        },
    })
}
