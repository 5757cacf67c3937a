//! The search for every workload that uses the config object
//! ([`crate::kube::discover`]), every few seconds: its result goes to the
//! model when it changes, and again while it stays the same so a guard
//! can tell a current answer from an old one; a failure says so.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc::Sender;

use crate::config::Config;
use crate::kube::discover::{discover, ConfigUser, EVERY_S, RESEND_S};
use crate::kube::{connect, ConfigObject};
use crate::session::EventKind;

pub async fn run(config: Arc<Config>, tx: Sender<EventKind>) {
    let Some(k) = config.kubernetes.clone() else {
        return;
    };
    let Some(obj) = k.config_object.as_deref().and_then(ConfigObject::parse) else {
        return;
    };
    if matches!(obj, ConfigObject::Service(_)) {
        return;
    }
    let target = super::kube_task::target(&k);
    let mut tick = tokio::time::interval(Duration::from_secs(EVERY_S));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut conn = None;
    let mut last: Option<(Instant, String, Vec<ConfigUser>)> = None;
    loop {
        tick.tick().await;
        if conn.is_none() {
            conn = connect(&target).await.ok();
        }
        let Some(c) = &conn else {
            let error = "cannot reach the Kubernetes API".to_string();
            if tx
                .send(EventKind::ConfigUsersFailed { error })
                .await
                .is_err()
            {
                return;
            }
            continue;
        };
        let home = c.namespace.clone();
        let namespaces = k.search_namespaces(&home);
        let ev = match discover(&c.client, &namespaces, &obj).await {
            Ok(users) => {
                let same = last.as_ref().is_some_and(|(at, h, u)| {
                    *h == home && *u == users && at.elapsed().as_secs() < RESEND_S
                });
                if same {
                    continue;
                }
                last = Some((Instant::now(), home.clone(), users.clone()));
                EventKind::ConfigUsers { home, users }
            }
            Err(e) => {
                conn = None;
                last = None;
                EventKind::ConfigUsersFailed {
                    error: format!("{e:#}"),
                }
            }
        };
        if tx.send(ev).await.is_err() {
            return;
        }
    }
}
