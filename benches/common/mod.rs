//! Set-up the database benches share.

use std::time::{Duration, Instant};

use cutover::config::Config;
use cutover::lab::{self, seed};

/// The lab's tables replicating to the target under the publication and
/// subscription `config` names, once the initial copy is done: the benches
/// measure steady state.
pub async fn replicate(info: &lab::LabInfo, config: &Config) -> anyhow::Result<()> {
    let src = seed::connect(&info.source_conninfo).await?;
    let tgt = seed::connect(&info.target_conninfo).await?;
    lab::copy_schema(&info.bin, &info.source_conninfo, &info.target_conninfo)?;
    src.batch_execute(&format!(
        "CREATE PUBLICATION {} FOR ALL TABLES",
        config.replication.publication
    ))
    .await?;
    tgt.batch_execute(&format!(
        "CREATE SUBSCRIPTION {} CONNECTION '{}' PUBLICATION {}",
        config.replication.subscription, info.source_conninfo, config.replication.publication
    ))
    .await?;
    let started = Instant::now();
    loop {
        let pending: i64 = tgt
            .query_one(
                "SELECT count(*) FROM pg_subscription_rel WHERE srsubstate <> 'r'",
                &[],
            )
            .await?
            .get(0);
        if pending == 0 {
            eprintln!(
                "initial copy done in {:.1} s",
                started.elapsed().as_secs_f64()
            );
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
