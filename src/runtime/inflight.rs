//! What happened to the step a session left in flight (a hang-up, a kill,
//! a crash between a step's start and its end): asked of the servers, not
//! guessed. The freeze's privileges, the config object's value, the
//! subscription's state are read where they live; a step that only reads
//! says so. Every question is under a deadline.

use std::time::Duration;

use anyhow::{anyhow, Result};

use super::pg_steps::{bounded, open};
use crate::config::Config;
use crate::kube::{self, fingerprint, ConfigObject};
use crate::runbook::Step;
use crate::session::event::InFlight;
use crate::session::Side;

const PROBE_MS: u64 = 10_000;

/// What the servers say about `step`.
pub async fn probe(config: &Config, step: &Step, session: &str) -> (InFlight, String) {
    let asked = tokio::time::timeout(Duration::from_secs(30), ask(config, step, session)).await;
    match asked {
        Ok(Ok(found)) => found,
        Ok(Err(e)) => (
            InFlight::Unknown,
            format!("could not ask: {e:#}; check by hand before going on"),
        ),
        Err(_) => (
            InFlight::Unknown,
            "no answer within 30 s; check by hand before going on".into(),
        ),
    }
}

async fn ask(config: &Config, step: &Step, session: &str) -> Result<(InFlight, String)> {
    match step {
        Step::PoolerPause { .. }
        | Step::PoolerRepoint { .. }
        | Step::PoolerReload { .. }
        | Step::PoolerResume { .. } => Ok((
            InFlight::Unknown,
            "the pooler may be paused or half repointed: the Pooler pane shows each instance \
             paused or serving and where its entry points; RESUME it on the side its entry \
             names before anything else"
                .into(),
        )),
        Step::FreezeWrites {
            roles,
            tables,
            side,
        } => {
            let (held, total) = privileges(config, *side, roles, tables).await?;
            Ok(match held {
                0 => (
                    InFlight::Done,
                    format!(
                        "the freeze statement ran: no application role can write on the {} ({} \
                         privileges checked); the proof of the freeze did not finish: freeze \
                         again (Z) to prove it",
                        side.as_str(),
                        total
                    ),
                ),
                h if h == total => (
                    InFlight::NotDone,
                    format!(
                        "the freeze statement did not run: the application roles still hold \
                         all {total} write privileges on the {}",
                        side.as_str()
                    ),
                ),
                h => (
                    InFlight::Partly,
                    format!(
                        "the application roles still hold {h} of {total} write privileges on \
                         the {}: freeze again (Z) or roll back (B)",
                        side.as_str()
                    ),
                ),
            })
        }
        Step::UnfreezeWrites {
            roles,
            grants,
            side,
        } => {
            let tables: Vec<String> = grants.iter().map(|g| g.table.clone()).collect();
            let (held, total) = privileges(config, *side, roles, &tables).await?;
            Ok(if held == total {
                (
                    InFlight::Done,
                    format!(
                        "the privileges are back: the application roles can write on the {}",
                        side.as_str()
                    ),
                )
            } else {
                (
                    InFlight::NotDone,
                    format!(
                        "the application roles hold {held} of {total} write privileges on the {}: \
                         writes are still frozen there",
                        side.as_str()
                    ),
                )
            })
        }
        Step::PatchConfig {
            namespace,
            object,
            key,
            new_fingerprint,
            expect_current,
            ..
        } => {
            let now = config_value(config, namespace, object, key).await?;
            let now_fp = now.as_deref().map(fingerprint);
            let shown = now_fp.as_deref().unwrap_or("(absent)");
            Ok(if now_fp.is_some() && now_fp == *new_fingerprint {
                (
                    InFlight::Done,
                    format!("the patch was applied: {object} {key} holds the new value ({shown})"),
                )
            } else if now_fp == *expect_current {
                (
                    InFlight::NotDone,
                    format!("the patch was not applied: {object} {key} still holds {shown}"),
                )
            } else {
                (
                    InFlight::Partly,
                    format!(
                        "{object} {key} holds {shown}: neither the value before nor the new \
                         one; someone else changed it"
                    ),
                )
            })
        }
        Step::RestoreConfig {
            namespace,
            object,
            key,
            restore,
            ..
        } => {
            let now = config_value(config, namespace, object, key).await?;
            let now_fp = now.as_deref().map(fingerprint);
            let shown = now_fp.as_deref().unwrap_or("(absent)");
            Ok(if now_fp == *restore {
                (
                    InFlight::Done,
                    format!("{object} {key} holds the value before the switch again ({shown})"),
                )
            } else {
                (
                    InFlight::NotDone,
                    format!("{object} {key} holds {shown}, not the value before the switch"),
                )
            })
        }
        Step::AwaitConfig {
            namespace,
            object,
            key,
            want,
            ..
        } => {
            let now = config_value(config, namespace, object, key).await?;
            let now_fp = now.as_deref().map(fingerprint);
            let shown = now_fp.as_deref().unwrap_or("(absent)");
            Ok(if now_fp == *want {
                (
                    InFlight::Done,
                    format!(
                        "the change through Git has landed: {object} {key} holds {shown}; run \
                         the checkpoint again to record it and follow the rollout"
                    ),
                )
            } else {
                (
                    InFlight::NotDone,
                    format!(
                        "the console writes nothing under GitOps, and the change has not \
                         landed: {object} {key} holds {shown}"
                    ),
                )
            })
        }
        Step::CopyJob { job, .. } => {
            // A Job still copying is stopped: nobody follows it any more.
            let k = config
                .kubernetes
                .as_ref()
                .ok_or_else(|| anyhow!("no [kubernetes] in the config to look for the Job"))?;
            let conn = kube::connect(&super::kube_task::target(k)).await?;
            let ns = job.namespace_in(&conn.namespace);
            let found = super::copy_job::remove_left_over(&conn, ns, session).await?;
            Ok((
                InFlight::Unknown,
                format!(
                    "the copy was cut off: the target may hold part of it — drop those tables \
                     on the target before copying again (Y refuses over them); {}",
                    if found.is_empty() {
                        format!("no copy Job of this session in {ns}")
                    } else {
                        found
                    }
                ),
            ))
        }
        Step::DumpRestore { .. } => {
            // The data the cut-off copy left on disk goes first.
            let removed = super::dump::remove_left_over(config);
            Ok((
                InFlight::Unknown,
                format!(
                    "the copy was cut off: the target may hold part of it — drop those tables \
                     on the target before copying again (Y refuses over them){removed}"
                ),
            ))
        }
        Step::CreateSubscription { name, on, .. } => {
            let found = subscription(config, *on, name).await?;
            Ok(match found {
                Some(enabled) => (
                    InFlight::Done,
                    format!(
                        "subscription {name} exists on the {} ({})",
                        on.as_str(),
                        if enabled { "enabled" } else { "disabled" }
                    ),
                ),
                None => (
                    InFlight::NotDone,
                    format!("no subscription {name} on the {}", on.as_str()),
                ),
            })
        }
        Step::StopSubscription { name } => {
            let found = subscription(config, Side::Target, name).await?;
            Ok(match found {
                Some(false) => (InFlight::Done, format!("subscription {name} is disabled")),
                Some(true) => (
                    InFlight::NotDone,
                    format!("subscription {name} is still enabled"),
                ),
                None => (InFlight::Partly, format!("subscription {name} is gone")),
            })
        }
        Step::Sql { .. }
        | Step::CopySchema { .. }
        | Step::AdvanceSequences { .. }
        | Step::Restart { .. }
        | Step::RestartStatefulSet { .. } => Ok((
            InFlight::Unknown,
            "cutover cannot tell from the servers whether this step's change landed; it is \
             safe to run again (each statement checks what exists): run the checkpoint again"
                .into(),
        )),
        Step::WaitRollout { .. }
        | Step::WaitStatefulSet { .. }
        | Step::WaitReplicated { .. }
        | Step::ExactCounts { .. }
        | Step::VerifyFinal { .. }
        | Step::WaitSync { .. }
        | Step::Preflight
        | Step::VerifyLive { .. }
        | Step::ProveReadOnly { .. }
        | Step::PoolerProve { .. }
        | Step::ObserveApp { .. } => Ok((
            InFlight::ReadOnly,
            "the step only reads and waits: nothing to find out; run the checkpoint again".into(),
        )),
    }
}

/// Of the write privileges (INSERT, UPDATE, DELETE) `roles` would hold on
/// `tables`, how many they hold now, and how many there are.
async fn privileges(
    config: &Config,
    side: Side,
    roles: &[String],
    tables: &[String],
) -> Result<(usize, usize)> {
    let c = open(config, side, PROBE_MS, PROBE_MS).await?;
    let mut held = 0;
    let mut total = 0;
    for role in roles {
        for table in tables {
            for privilege in ["INSERT", "UPDATE", "DELETE"] {
                let row = bounded(
                    config,
                    side,
                    "reading the application roles' privileges",
                    PROBE_MS,
                    c.query_one(
                        "SELECT has_table_privilege($1, $2, $3)",
                        &[role, table, &privilege],
                    ),
                )
                .await?;
                total += 1;
                if row.get::<_, bool>(0) {
                    held += 1;
                }
            }
        }
    }
    Ok((held, total))
}

/// Whether subscription `name` exists on `side`, and is enabled.
async fn subscription(config: &Config, side: Side, name: &str) -> Result<Option<bool>> {
    let c = open(config, side, PROBE_MS, PROBE_MS).await?;
    let row = bounded(
        config,
        side,
        "reading pg_subscription",
        PROBE_MS,
        c.query_opt(
            "SELECT subenabled FROM pg_subscription WHERE subname = $1",
            &[&name],
        ),
    )
    .await?;
    Ok(row.map(|r| r.get(0)))
}

async fn config_value(
    config: &Config,
    namespace: &str,
    object: &str,
    key: &str,
) -> Result<Option<String>> {
    let k = config
        .kubernetes
        .as_ref()
        .ok_or_else(|| anyhow!("no [kubernetes] in the config to read {object} from"))?;
    let obj =
        ConfigObject::parse(object).ok_or_else(|| anyhow!("{object}: not a config object"))?;
    let conn = kube::connect(&super::kube_task::target(k)).await?;
    let (value, _) = kube::bounded(
        &format!("reading {object} {key}"),
        kube::read_key(&conn.client, namespace, &obj, key),
    )
    .await?;
    Ok(value)
}
