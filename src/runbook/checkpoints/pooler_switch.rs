//! The switch through the connection pooler (`[pooler]`, logical
//! runbook): one plan, run without a pause for a human in it, while
//! PgBouncer holds the application's queries — `PAUSE` on every instance,
//! lag 0 against the source's position taken after the pause, the final
//! checksums of what changed, the sequences, reverse replication, the
//! entry repointed to the target, `RELOAD`, `RESUME`, and the proof that
//! every instance serves from the target. The application sees latency,
//! not errors, and no pod restarts.
//!
//! The window (and the freeze budget) counts from `PAUSE`. Any step that
//! fails before `RESUME` puts the entry back, reloads and resumes every
//! instance on the source (the executor does, and says so).

use crate::model::Model;
use crate::pooler::{FileEntry, PoolerSample};
use crate::runbook::guard::{self, Guard};
use crate::runbook::plan::{Confirm, Plan, Step, WAIT_REPLICATED_S};
use crate::runbook::CheckpointId;
use crate::session::Side;

/// Whether the session switches through the pooler: `[pooler]` on the
/// logical runbook.
pub fn configured(model: &Model) -> bool {
    model.info.as_ref().is_some_and(|i| i.pooler.is_some())
        && crate::runbook::variant(model) == crate::runbook::Variant::Logical
}

/// `host:port` of a side's endpoint (`user@host:port/db`).
pub fn endpoint_addr(describe: &str) -> Option<(String, u16)> {
    let first = describe.split_whitespace().next()?;
    let after_user = first.rsplit_once('@').map_or(first, |(_, r)| r);
    let hostport = after_user.split('/').next()?;
    let (host, port) = hostport.rsplit_once(':')?;
    Some((
        host.trim_start_matches('[')
            .trim_end_matches(']')
            .to_string(),
        port.parse().ok()?,
    ))
}

/// `dbname` of a side's endpoint (`user@host:port/db (options)`).
fn endpoint_db(describe: &str) -> Option<String> {
    let (_, rest) = describe.split_once('/')?;
    rest.split_whitespace().next().map(str::to_string)
}

/// The last pooler sample, if not older than the stale limit.
fn sample(model: &Model) -> Result<&PoolerSample, String> {
    let (at, p) = model
        .pooler
        .as_ref()
        .ok_or_else(|| "not read yet".to_string())?;
    let (Some(now), Some(info)) = (model.now, model.info.as_ref()) else {
        return Err("not read yet".into());
    };
    let age = (now - *at).num_milliseconds() as f64 / 1000.0;
    if age > info.stale_after_seconds {
        return Err(format!("last read {age:.0} s ago (stale)"));
    }
    Ok(p)
}

/// Every instance reachable, serving (not paused), its entry at `side`.
pub fn instances_serving(model: &Model, side: Side, label: &str) -> Guard {
    let want = model.info.as_ref().and_then(|i| {
        endpoint_addr(match side {
            Side::Source => &i.source.describe,
            Side::Target => &i.target.describe,
        })
    });
    let p = match sample(model) {
        Ok(p) => p,
        Err(e) => return Guard::fail(label, e),
    };
    if let Some(e) = &p.error {
        return Guard::fail(label, format!("instances not found: {e}"));
    }
    if p.instances.is_empty() {
        return Guard::fail(label, "no instance running");
    }
    for i in &p.instances {
        if let Some(e) = &i.error {
            return Guard::fail(label, format!("{}: {e}", i.instance.name));
        }
        if i.paused() {
            return Guard::fail(label, format!("{} is paused", i.instance.name));
        }
        let at = i.entry.as_ref().map(|e| (e.host.clone(), e.port));
        if at != want {
            return Guard::fail(
                label,
                format!(
                    "{}: entry {} at {}, not the {}",
                    i.instance.name,
                    p.database,
                    at.map_or("?".into(), |(h, p)| format!("{h}:{p}")),
                    side.as_str()
                ),
            );
        }
    }
    Guard::pass(
        label,
        format!(
            "{} instances, entry {} on the {}",
            p.instances.len(),
            p.database,
            side.as_str()
        ),
    )
}

/// The instances as last read (fresh), for a plan.
pub fn instances_now(model: &Model) -> Option<Vec<crate::pooler::Instance>> {
    let p = sample(model).ok()?;
    Some(p.instances.iter().map(|i| i.instance.clone()).collect())
}

/// The entry's line in the file the repoint rewrites (fresh).
pub fn entry_now(model: &Model) -> Result<&FileEntry, String> {
    file_entry(model)
}

/// The entry's line in the file the repoint rewrites.
fn file_entry(model: &Model) -> Result<&FileEntry, String> {
    let p = sample(model)?;
    match &p.file {
        None => Err("not read yet".into()),
        Some(Err(e)) => Err(e.clone()),
        Some(Ok(f)) => Ok(f),
    }
}

pub fn guards(model: &Model) -> Vec<Guard> {
    let switched = model.actions.switched.is_some();
    vec![
        guard::side_live(model, Side::Source),
        guard::side_live(model, Side::Target),
        guard::no_other_run(model),
        instances_serving(model, Side::Source, "Pooler serves from the source"),
        match file_entry(model) {
            Ok(f) => Guard::pass(
                "Pooler entry readable",
                format!("line {}: {}", f.line_no, f.shown),
            ),
            Err(e) => Guard::fail("Pooler entry readable", e),
        },
        guard::verified_live(model),
        guard::caught_up(model),
        guard::catch_up_within_budget(model),
        Guard::check(
            "Not switched yet",
            !switched,
            if switched {
                "the pooler was switched already"
            } else {
                "the application reaches the source through the pooler"
            },
        ),
    ]
}

/// The tail both ways share, while paused on the other side: the entry
/// repointed to `to`, `RELOAD`, `RESUME`, the proof.
pub(super) fn move_steps(model: &Model, to: Side) -> Option<Vec<Step>> {
    let info = model.info.as_ref()?;
    let pooler = info.pooler.as_ref()?;
    let f = file_entry(model).ok()?;
    let instances = instances_now(model)?;
    let describe = match to {
        Side::Source => &info.source.describe,
        Side::Target => &info.target.describe,
    };
    let (host, port) = endpoint_addr(describe)?;
    let dbname = endpoint_db(describe).unwrap_or_else(|| f.dbname.clone());
    let name = f
        .shown
        .split_once(" = ")
        .map_or(pooler.database.as_str(), |(n, _)| n);
    let after = shown_after(&f.shown, name, &host, port, &dbname);
    let paused_on = match to {
        Side::Source => Side::Target,
        Side::Target => Side::Source,
    };
    Some(vec![
        Step::PoolerRepoint {
            file: pooler.databases_file.clone(),
            database: pooler.database.clone(),
            expect: f.fingerprint.clone(),
            host: host.clone(),
            port,
            dbname,
            before: f.shown.clone(),
            after,
            to,
        },
        Step::PoolerReload {
            instances: instances.clone(),
            database: pooler.database.clone(),
            host: host.clone(),
            port,
        },
        Step::PoolerResume {
            instances: instances.clone(),
            database: pooler.database.clone(),
            to,
            paused_on,
        },
        Step::PoolerProve {
            instances,
            database: pooler.database.clone(),
            host,
            port,
        },
    ])
}

pub fn plan(model: &Model) -> Option<Plan> {
    let info = model.info.as_ref()?;
    let pooler = info.pooler.as_ref()?;
    let instances = instances_now(model)?;
    let tables = crate::model::verify_tables(model);
    let mut steps = vec![
        Step::PoolerPause {
            instances,
            database: pooler.database.clone(),
            timeout_s: pooler.pause_timeout_secs,
            on: Side::Source,
        },
        Step::WaitReplicated {
            on: Side::Source,
            slot: info.slot.clone(),
            timeout_s: WAIT_REPLICATED_S.min(info.freeze_budget_secs.max(1)),
        },
        Step::VerifyFinal { tables },
        Step::AdvanceSequences {
            schemas: super::advance_sequences::schemas(model),
            stride: info.sequence_stride,
            to: Side::Target,
        },
    ];
    steps.extend(super::reverse_replication::plan(model)?.steps);
    steps.extend(move_steps(model, Side::Target)?);
    Some(Plan {
        checkpoint: CheckpointId::SwitchConfig,
        steps,
        confirm: Confirm::TypeName(pooler.database.clone()),
        notes: vec![
            "the application's queries wait from PAUSE to RESUME: latency, not errors; no pod \
             restarts"
                .into(),
            format!(
                "the window and the freeze budget ({} s) count from PAUSE",
                info.freeze_budget_secs
            ),
            "if any step fails before RESUME: the entry is put back, RELOAD, RESUME on the \
             source — nothing else changed on the pooler"
                .into(),
        ],
    })
}

/// The entry's line as shown, with host, port and dbname set (what the
/// repoint writes, as the dialog shows it).
fn shown_after(shown: &str, name: &str, host: &str, port: u16, dbname: &str) -> String {
    let body = shown.split_once(" = ").map_or("", |(_, b)| b);
    let mut parts: Vec<String> = body.split_whitespace().map(str::to_string).collect();
    for (k, v) in [
        ("host", host.to_string()),
        ("port", port.to_string()),
        ("dbname", dbname.to_string()),
    ] {
        match parts.iter_mut().find(|p| p.starts_with(&format!("{k}="))) {
            Some(p) => *p = format!("{k}={v}"),
            None => parts.push(format!("{k}={v}")),
        }
    }
    format!("{name} = {}", parts.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_endpoint_gives_its_address_and_database() {
        let d = "postgres@127.0.0.1:42983/app (sslmode=prefer)";
        assert_eq!(endpoint_addr(d), Some(("127.0.0.1".into(), 42983)));
        assert_eq!(endpoint_db(d).as_deref(), Some("app"));
        assert_eq!(
            endpoint_addr("app@[::1]:5432/shop"),
            Some(("::1".into(), 5432))
        );
        assert_eq!(
            shown_after(
                "app = host=a port=1 dbname=app user=x",
                "app",
                "b",
                2,
                "app"
            ),
            "app = host=b port=2 dbname=app user=x"
        );
    }
}
