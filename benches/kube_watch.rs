//! How soon a change in Kubernetes reaches the rollout pane: from a pod being
//! changed through the lab's API server to the watcher's snapshot that shows
//! it, beside two baselines measured in the same run — one GET round trip
//! (what any reader pays at least) and the expected delay of polling at the
//! console's 1 Hz refresh (half the interval, plus that GET).
//!
//! `cargo bench --bench kube_watch`

use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use kube::Api;

use cutover::kube::{connect_kubeconfig, watch_workload};
use cutover::lab::kube_sim::{self, SimOptions};

fn main() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let sim = kube_sim::start(SimOptions {
            database_url: None,
            writes_per_sec: 0,
            pod_start_delay: Duration::from_millis(200),
            pod_ready_delay: Duration::from_millis(300),
            ..SimOptions::default()
        })
        .await
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let kc = dir.path().join("kubeconfig");
        sim.write_kubeconfig(&kc, kube_sim::LAB_NAMESPACE).unwrap();
        let conn = connect_kubeconfig(&kc, None, None).await.unwrap();
        let ns = conn.namespace.clone();
        let api: Api<Deployment> = Api::namespaced(conn.client.clone(), &ns);

        let mut gets = Vec::new();
        for _ in 0..50 {
            let t = Instant::now();
            api.get("app").await.unwrap();
            gets.push(t.elapsed());
        }
        gets.sort();
        let get = gets[gets.len() / 2];

        let mut snaps = Box::pin(watch_workload(&conn.client, &ns, "app").await.unwrap());
        // Settle on the initial, complete state.
        loop {
            let s = snaps.next().await.unwrap().unwrap();
            if s.ready == 3 && s.updated == 3 && s.pods.len() == 3 {
                break;
            }
        }
        // A change made through the API at a known instant: a pod's
        // db-config annotation, which the snapshot carries. From the moment
        // the patch is sent to the first snapshot that shows it.
        let pods: Api<k8s_openapi::api::core::v1::Pod> = Api::namespaced(conn.client.clone(), &ns);
        let names: Vec<String> = pods
            .list(&Default::default())
            .await
            .unwrap()
            .items
            .into_iter()
            .filter_map(|p| p.metadata.name)
            .collect();
        let mut lat = Vec::new();
        for i in 0..60 {
            let name = &names[i % names.len()];
            let value = format!("bench{i:04}");
            let patch = serde_json::json!({"metadata": {"annotations": {kube_sim::DB_CONFIG_ANNOTATION: value}}});
            let t0 = Instant::now();
            pods.patch(name, &kube::api::PatchParams::default(), &kube::api::Patch::Merge(&patch))
                .await
                .unwrap();
            loop {
                let s = snaps.next().await.unwrap().unwrap();
                if s.pods.iter().any(|p| &p.name == name && p.db_config.as_deref() == Some(value.as_str())) {
                    lat.push(t0.elapsed());
                    break;
                }
            }
        }
        lat.sort();
        let med = lat[lat.len() / 2];
        let max = *lat.last().unwrap();
        println!("kube watch latency ({} pod changes)", lat.len());
        println!("  watcher: pod change → snapshot         median {:>8.1?}  max {:>8.1?}", med, max);
        println!("  floor: one GET round trip              median {:>8.1?}", get);
        let poll = Duration::from_millis(500) + get;
        println!("  baseline: polling at 1 Hz (expected)   {:>8.1?}", poll);
        println!(
            "  ratio watcher / 1 Hz poll: {:.3}",
            med.as_secs_f64() / poll.as_secs_f64()
        );
        sim.shutdown().await;
    });
}
