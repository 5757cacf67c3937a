//! The sequence step: every sequence of the selected schemas read on both
//! sides, then, on the target in one transaction, each one behind the
//! source's value (+ the stride) set past it. Never lowers a sequence, so
//! it is safe to run again; each sequence's values are reported.

use std::collections::BTreeMap;

use anyhow::{anyhow, Result};
use tokio_postgres::Client;

use crate::config::Config;

use super::pg_steps::bounded;
use crate::session::{SequenceValue, Side};

/// Reading every sequence is quick; a stuck server is not waited for.
const STATEMENT_TIMEOUT_MS: u64 = 30_000;
const LOCK_TIMEOUT_MS: u64 = 5_000;

const SEQUENCES_SQL: &str = "\
SELECT format('%I.%I', schemaname, sequencename), last_value, increment_by
  FROM pg_catalog.pg_sequences
 WHERE schemaname = ANY($1)
 ORDER BY 1";

/// One side's sequences: name → (last_value, increment).
async fn read(
    config: &Config,
    side: Side,
    client: &Client,
    schemas: &[String],
) -> Result<BTreeMap<String, (Option<i64>, i64)>> {
    let rows = bounded(
        config,
        side,
        "reading the sequences",
        STATEMENT_TIMEOUT_MS,
        client.query(SEQUENCES_SQL, &[&schemas]),
    )
    .await?;
    Ok(rows
        .iter()
        .map(|r| (r.get::<_, String>(0), (r.get(1), r.get(2))))
        .collect())
}

/// Where the target must be for `source` (of a sequence moving by
/// `increment`) plus `stride`: None when it already is, or the source never
/// handed out a value.
pub fn wanted(
    source: Option<i64>,
    target: Option<i64>,
    increment: i64,
    stride: u64,
) -> Result<Option<i64>> {
    let Some(source) = source else {
        return Ok(None);
    };
    let stride = i64::try_from(stride).map_err(|_| anyhow!("stride {stride} is too large"))?;
    let goal = if increment >= 0 {
        source.checked_add(stride)
    } else {
        source.checked_sub(stride)
    }
    .ok_or_else(|| anyhow!("{source} + stride {stride} is past the range of a sequence"))?;
    let behind = match target {
        None => true,
        Some(t) if increment >= 0 => t < goal,
        Some(t) => t > goal,
    };
    Ok(behind.then_some(goal))
}

/// Sets `to`'s sequences past the other side's. In the cutover `to` is the
/// target; a rollback after the switch sets the source's past the target's
/// (the values' `source` then holds the side read, `target_before` the side set).
pub async fn advance(
    config: &Config,
    schemas: &[String],
    stride: u64,
    to: Side,
) -> Result<Vec<SequenceValue>> {
    let from = to.other();
    let src = super::pg_steps::open(config, from, LOCK_TIMEOUT_MS, STATEMENT_TIMEOUT_MS).await?;
    let mut tgt = super::pg_steps::open(config, to, LOCK_TIMEOUT_MS, STATEMENT_TIMEOUT_MS).await?;
    let on_source = read(config, from, &src, schemas).await?;
    let on_target = read(config, to, &tgt, schemas).await?;
    let missing: Vec<&str> = on_source
        .keys()
        .filter(|n| !on_target.contains_key(*n))
        .map(String::as_str)
        .collect();
    if !missing.is_empty() {
        return Err(anyhow!(
            "{} sequence(s) of the {} missing on the {} ({}): copy the schema first; nothing was changed",
            missing.len(),
            from.as_str(),
            to.as_str(),
            missing.join(", ")
        ));
    }
    let mut out = Vec::with_capacity(on_source.len());
    for (name, (source, increment)) in &on_source {
        let target_before = on_target[name].0;
        let set_to = wanted(*source, target_before, *increment, stride)
            .map_err(|e| anyhow!("{name}: {e}; nothing was changed"))?;
        out.push(SequenceValue {
            name: name.clone(),
            source: *source,
            target_before,
            set_to,
        });
    }
    let work = async {
        let tx = tgt.transaction().await?;
        for s in out.iter().filter(|s| s.set_to.is_some()) {
            tx.execute(
                "SELECT pg_catalog.setval($1::text::regclass, $2, true)",
                &[&s.name, &s.set_to],
            )
            .await?;
        }
        tx.commit().await
    };
    bounded(
        config,
        to,
        "setting the sequences",
        STATEMENT_TIMEOUT_MS,
        work,
    )
    .await
    .map_err(|e| anyhow!("{e:#}; nothing was changed (one transaction)"))?;
    Ok(out)
}

/// The step's outcome in words.
pub fn said(values: &[SequenceValue], to: Side) -> String {
    let set = values.iter().filter(|v| v.set_to.is_some()).count();
    let from = to.other().as_str();
    match (values.len(), set) {
        (0, _) => "no sequences in the selected schemas".into(),
        (n, 0) => format!("all {n} sequences already at or past the {from}'s: nothing changed"),
        (n, k) => format!(
            "{k} of {n} sequences on the {} advanced past the {from}'s values",
            to.as_str()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::wanted;

    #[test]
    fn never_lowers_and_follows_the_direction() {
        assert_eq!(wanted(Some(100), Some(1), 1, 0).unwrap(), Some(100));
        assert_eq!(wanted(Some(100), Some(1), 1, 1000).unwrap(), Some(1100));
        assert_eq!(
            wanted(Some(100), Some(100), 1, 0).unwrap(),
            None,
            "already there"
        );
        assert_eq!(
            wanted(Some(100), Some(500), 1, 0).unwrap(),
            None,
            "never lowered"
        );
        assert_eq!(
            wanted(Some(100), None, 1, 0).unwrap(),
            Some(100),
            "never used on target"
        );
        assert_eq!(
            wanted(None, Some(5), 1, 0).unwrap(),
            None,
            "never used on source"
        );
        assert_eq!(
            wanted(Some(-100), Some(-1), -1, 10).unwrap(),
            Some(-110),
            "descending"
        );
        assert_eq!(wanted(Some(-100), Some(-200), -1, 0).unwrap(), None);
        assert!(wanted(Some(i64::MAX - 1), None, 1, 5).is_err());
    }
}
