//! The pooler's collector: every refresh, the instances (as listed, or the
//! pods behind the Service, found again each time: a replica may come or
//! go) and, from each one's admin console, the configured entry, its pools
//! and server connections — one `PoolerSampled` event. A console that does
//! not answer is reported as such on its instance, and connected again at
//! the next refresh.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc::Sender;

use crate::config::{Config, PoolerCfg, PoolerInstances};
use crate::pooler::admin::{Admin, AdminTarget};
use crate::pooler::{Instance, InstanceSample, PoolerSample};
use crate::session::EventKind;

/// How the admin console of `instance` is reached under `p`.
pub fn admin_target(
    p: &PoolerCfg,
    config: &Config,
    instance: &Instance,
) -> Result<AdminTarget, String> {
    let password = match &p.admin_password {
        Some(src) => Some(src.read()?),
        None => None,
    };
    Ok(AdminTarget {
        instance: instance.clone(),
        user: p.admin_user.clone(),
        password,
        timeout: config.monitor.connect_timeout(),
    })
}

/// The instances now: as listed, or the pods behind the Service (through
/// `kube`, connected on first use and again after a failure).
pub async fn instances(
    p: &PoolerCfg,
    config: &Config,
    kube: &mut Option<crate::kube::Connection>,
) -> anyhow::Result<Vec<Instance>> {
    match &p.instances {
        PoolerInstances::Listed(l) => Ok(l.clone()),
        PoolerInstances::Service { name, port } => {
            let k = config
                .kubernetes
                .as_ref()
                .ok_or_else(|| anyhow::anyhow!("pooler.service needs [kubernetes]"))?;
            if kube.is_none() {
                *kube = Some(crate::kube::connect(&super::kube_task::target(k)).await?);
            }
            let conn = kube.as_ref().expect("connected above");
            let found = crate::kube::pooler::instances(
                &conn.client,
                &conn.namespace,
                name,
                port.as_deref(),
            )
            .await;
            if found.is_err() {
                *kube = None;
            }
            found
        }
    }
}

async fn read(admin: &mut Option<Admin>, target: AdminTarget, database: &str) -> InstanceSample {
    let mut sample = InstanceSample {
        instance: target.instance.clone(),
        error: None,
        entry: None,
        pools: vec![],
        servers: vec![],
    };
    let result = async {
        if admin.is_none() {
            *admin = Some(target.connect().await?);
        }
        let a = admin.as_ref().expect("connected above");
        let entry = a
            .databases()
            .await?
            .into_iter()
            .find(|d| d.name == database);
        let pools = a.pools().await?;
        let servers = a.servers().await?;
        anyhow::Ok((entry, pools, servers))
    }
    .await;
    match result {
        Ok((entry, pools, servers)) => {
            if entry.is_none() {
                sample.error = Some(format!("no [databases] entry {database}"));
            }
            sample.entry = entry;
            sample.pools = pools
                .into_iter()
                .filter(|p| p.database == database)
                .collect();
            sample.servers = servers
                .into_iter()
                .filter(|s| s.database == database)
                .collect();
        }
        Err(e) => {
            *admin = None;
            sample.error = Some(format!("{e:#}"));
        }
    }
    sample
}

/// Runs until the receiver is gone.
pub async fn run(config: Arc<Config>, tx: Sender<EventKind>) {
    let Some(p) = config.pooler.clone() else {
        return;
    };
    let every = config.monitor.refresh().max(Duration::from_millis(250));
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut admins: BTreeMap<Instance, Option<Admin>> = BTreeMap::new();
    let mut kube = None;
    loop {
        tick.tick().await;
        let sample = match instances(&p, &config, &mut kube).await {
            Err(e) => PoolerSample {
                database: p.database.clone(),
                instances: vec![],
                error: Some(format!("{e:#}")),
                file: None,
            },
            Ok(found) => {
                // Consoles of instances gone are closed.
                admins.retain(|i, _| found.contains(i));
                let mut slots: Vec<(Instance, Option<Admin>)> = found
                    .iter()
                    .map(|i| (i.clone(), admins.remove(i).flatten()))
                    .collect();
                let reads = slots.iter_mut().map(|(i, a)| {
                    let target = admin_target(&p, &config, i);
                    let (i, db) = (i.clone(), p.database.clone());
                    async move {
                        match target {
                            Err(e) => InstanceSample {
                                instance: i,
                                error: Some(format!("the admin password: {e}")),
                                entry: None,
                                pools: vec![],
                                servers: vec![],
                            },
                            Ok(t) => read(a, t, &db).await,
                        }
                    }
                });
                let instances = futures::future::join_all(reads).await;
                admins.extend(slots);
                PoolerSample {
                    database: p.database.clone(),
                    instances,
                    error: None,
                    file: None,
                }
            }
        };
        let mut sample = sample;
        let file = p.databases_file.display().to_string();
        sample.file = Some(match tokio::fs::read_to_string(&p.databases_file).await {
            Ok(text) => crate::pooler::FileEntry::read(&text, &file, &p.database)
                .map_err(|e| format!("{e:#}")),
            Err(e) => Err(format!("{file}: {e}")),
        });
        if tx.send(EventKind::PoolerSampled(sample)).await.is_err() {
            return;
        }
    }
}
