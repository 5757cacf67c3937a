//! The lab's Kubernetes API simulator, driven by the real `kube` client and the
//! real `kubectl`, and the lab's app pods writing to real PostgreSQL.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::watcher;
use kube::Client;
use serde_json::json;

use cutover::lab::kube_sim::{
    self, SimHandle, SimOptions, APP_CONFIGMAP, LAB_CONTEXT, LAB_NAMESPACE,
};

const NS: &str = LAB_NAMESPACE;

fn fast() -> SimOptions {
    SimOptions {
        pod_start_delay: Duration::from_millis(100),
        pod_ready_delay: Duration::from_millis(300),
        ..SimOptions::default()
    }
}

struct Lab {
    sim: SimHandle,
    _dir: tempfile::TempDir,
    kubeconfig: PathBuf,
}

async fn lab(opts: SimOptions) -> Lab {
    let sim = kube_sim::start(opts).await.expect("simulator starts");
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    sim.write_kubeconfig(&kubeconfig, NS).unwrap();
    Lab {
        sim,
        _dir: dir,
        kubeconfig,
    }
}

async fn client(path: &Path) -> Client {
    let kc = Kubeconfig::read_from(path).unwrap();
    let opts = KubeConfigOptions {
        context: Some(LAB_CONTEXT.into()),
        ..Default::default()
    };
    let cfg = kube::Config::from_custom_kubeconfig(kc, &opts)
        .await
        .unwrap();
    Client::try_from(cfg).unwrap()
}

fn complete(d: &Deployment) -> bool {
    let Some(st) = &d.status else {
        return false;
    };
    let want = d.spec.replicas.unwrap_or(1);
    st.observed_generation >= d.metadata.generation
        && st.updated_replicas == Some(want)
        && st.replicas == Some(want)
        && st.available_replicas == Some(want)
        && progressing_reason(d).as_deref() == Some("NewReplicaSetAvailable")
}

fn progressing_reason(d: &Deployment) -> Option<String> {
    d.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_.as_deref() == Some("Progressing"))?
        .reason
        .clone()
}

async fn wait_complete(api: &Api<Deployment>, name: &str, within: Duration) -> Deployment {
    let t = Instant::now();
    loop {
        let d = api.get(name).await.unwrap();
        if complete(&d) {
            return d;
        }
        assert!(t.elapsed() < within, "rollout not complete: {:?}", d.status);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn restart_rollout_is_watched_to_completion() {
    let lab = lab(fast()).await;
    let c = client(&lab.kubeconfig).await;
    let deploys: Api<Deployment> = Api::namespaced(c.clone(), NS);
    let rss: Api<ReplicaSet> = Api::namespaced(c.clone(), NS);
    let pods: Api<Pod> = Api::namespaced(c.clone(), NS);
    let before = wait_complete(&deploys, "app", Duration::from_secs(10)).await;
    let old_rs = rss.list(&ListParams::default()).await.unwrap().items;
    assert_eq!(old_rs.len(), 1);
    let old_rs_name = old_rs[0].metadata.name.clone().unwrap();

    // Exactly what `kubectl rollout restart` sends.
    let patch = json!({"spec": {"template": {"metadata": {"annotations": {
        "kubectl.kubernetes.io/restartedAt": chrono::Utc::now().to_rfc3339()
    }}}}});
    let patched = deploys
        .patch("app", &PatchParams::default(), &Patch::Strategic(&patch))
        .await
        .unwrap();
    assert_eq!(
        patched.metadata.generation,
        before.metadata.generation.map(|g| g + 1)
    );

    let cfg = watcher::Config::default().fields("metadata.name=app");
    let mut stream = watcher::watcher(deploys.clone(), cfg).boxed();
    let mut saw_partial = false;
    let mut max_total = 0;
    let done = tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(ev) = stream.try_next().await.unwrap() {
            let d = match ev {
                watcher::Event::Apply(d) | watcher::Event::InitApply(d) => d,
                _ => continue,
            };
            let st = d.status.clone().unwrap_or_default();
            max_total = max_total.max(st.replicas.unwrap_or(0));
            if st.observed_generation == d.metadata.generation && st.updated_replicas < Some(3) {
                saw_partial = true;
            }
            if complete(&d) && d.metadata.generation == patched.metadata.generation {
                return d;
            }
        }
        panic!("watch ended");
    })
    .await
    .expect("rollout completes within 20s");
    assert!(saw_partial, "watched the rollout in progress");
    // maxSurge 25% of 3 rounds up to 1.
    assert!(max_total <= 4, "surge honoured, saw {max_total} pods");
    let st = done.status.unwrap();
    assert_eq!(st.ready_replicas, Some(3));
    assert_eq!(st.unavailable_replicas, None);
    let conds = st.conditions.unwrap();
    let avail = conds
        .iter()
        .find(|c| c.type_.as_deref() == Some("Available"))
        .unwrap();
    assert_eq!(avail.status.as_deref(), Some("True"));
    assert_eq!(avail.reason.as_deref(), Some("MinimumReplicasAvailable"));

    let all = rss.list(&ListParams::default()).await.unwrap().items;
    assert_eq!(all.len(), 2);
    let old = all
        .iter()
        .find(|r| r.metadata.name.as_deref() == Some(&old_rs_name))
        .unwrap();
    assert_eq!(old.spec.replicas, Some(0));
    assert_eq!(old.status.as_ref().unwrap().replicas, 0);
    let new = all
        .iter()
        .find(|r| r.metadata.name.as_deref() != Some(&old_rs_name))
        .unwrap();
    let hash = new.metadata.labels.as_ref().unwrap()["pod-template-hash"].clone();
    assert_eq!(new.status.as_ref().unwrap().ready_replicas, Some(3));

    // Old pods finish terminating shortly after.
    let t = Instant::now();
    loop {
        let ps = pods
            .list(&ListParams::default().labels("app=app"))
            .await
            .unwrap()
            .items;
        let all_new = ps.iter().all(|p| {
            p.metadata.labels.as_ref().unwrap()["pod-template-hash"] == hash
                && p.metadata.deletion_timestamp.is_none()
        });
        if ps.len() == 3 && all_new {
            for p in &ps {
                let s = p.status.as_ref().unwrap();
                assert_eq!(s.phase.as_deref(), Some("Running"));
                assert!(s.start_time.is_some());
                let ready = s
                    .conditions
                    .as_ref()
                    .unwrap()
                    .iter()
                    .find(|c| c.type_ == "Ready")
                    .unwrap();
                assert_eq!(ready.status, "True");
                assert_eq!(s.container_statuses.as_ref().unwrap()[0].restart_count, 0);
                let a = p.metadata.annotations.as_ref().unwrap();
                assert_eq!(a["cutover.dev/db-config"].len(), 8);
                assert!(a.contains_key("kubectl.kubernetes.io/restartedAt"));
            }
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(5), "old pods gone");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn configmap_merge_patch_reads_back() {
    let lab = lab(fast()).await;
    let c = client(&lab.kubeconfig).await;
    let cms: Api<ConfigMap> = Api::namespaced(c, NS);
    let url = "host=10.0.0.9 port=5432 dbname=app user=app";
    let patch = json!({"data": {"DATABASE_URL": url}});
    let out = cms
        .patch(
            APP_CONFIGMAP,
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
        .unwrap();
    assert_eq!(out.data.as_ref().unwrap()["DATABASE_URL"], url);
    let back = cms.get(APP_CONFIGMAP).await.unwrap();
    assert_eq!(back.data.unwrap()["DATABASE_URL"], url);
    assert_eq!(
        back.metadata.resource_version,
        out.metadata.resource_version
    );

    // Not found and invalid come back as Status errors.
    let err = cms.get("nope").await.unwrap_err();
    assert!(
        matches!(err, kube::Error::Api(ref s) if s.code == 404),
        "{err:?}"
    );
    let err = cms
        .patch(
            APP_CONFIGMAP,
            &PatchParams::default(),
            &Patch::Merge(&json!({"data": {"x": 1}})),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, kube::Error::Api(ref s) if s.code == 422),
        "{err:?}"
    );
    let mut dup = ConfigMap::default();
    dup.metadata.name = Some(APP_CONFIGMAP.into());
    let err = cms.create(&PostParams::default(), &dup).await.unwrap_err();
    assert!(
        matches!(err, kube::Error::Api(ref s) if s.code == 409),
        "{err:?}"
    );
}

#[tokio::test]
async fn rbac_denial_shows_in_access_review_and_request() {
    let lab = lab(fast()).await;
    lab.sim.deny("patch", "configmaps");
    let c = client(&lab.kubeconfig).await;
    let reviews: Api<SelfSubjectAccessReview> = Api::all(c.clone());
    let review = |verb: &str| SelfSubjectAccessReview {
        spec: SelfSubjectAccessReviewSpec {
            resource_attributes: Some(ResourceAttributes {
                verb: Some(verb.into()),
                resource: Some("configmaps".into()),
                namespace: Some(NS.into()),
                name: Some(APP_CONFIGMAP.into()),
                ..Default::default()
            }),
            ..Default::default()
        },
        ..Default::default()
    };
    let denied = reviews
        .create(&PostParams::default(), &review("patch"))
        .await
        .unwrap();
    assert!(!denied.status.unwrap().allowed);
    let allowed = reviews
        .create(&PostParams::default(), &review("get"))
        .await
        .unwrap();
    assert!(allowed.status.unwrap().allowed);

    let cms: Api<ConfigMap> = Api::namespaced(c, NS);
    let err = cms
        .patch(
            APP_CONFIGMAP,
            &PatchParams::default(),
            &Patch::Merge(&json!({"data": {"DATABASE_URL": "x"}})),
        )
        .await
        .unwrap_err();
    match err {
        kube::Error::Api(s) => {
            assert_eq!(s.code, 403);
            assert_eq!(s.reason, "Forbidden");
            assert!(
                s.message.contains("cannot patch resource \"configmaps\""),
                "{}",
                s.message
            );
        }
        other => panic!("expected a 403 Status, got {other:?}"),
    }
    lab.sim.allow("patch", "configmaps");
    cms.patch(
        APP_CONFIGMAP,
        &PatchParams::default(),
        &Patch::Merge(&json!({"data": {"DATABASE_URL": "x"}})),
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn progress_deadline_exceeded_when_pods_never_get_ready() {
    let lab = lab(SimOptions {
        progress_deadline_seconds: 1,
        ..fast()
    })
    .await;
    let c = client(&lab.kubeconfig).await;
    let deploys: Api<Deployment> = Api::namespaced(c, NS);
    wait_complete(&deploys, "app", Duration::from_secs(10)).await;
    lab.sim.set_pods_never_ready(true);
    let patch = json!({"spec": {"template": {"metadata": {"annotations": {"x": "1"}}}}});
    deploys
        .patch("app", &PatchParams::default(), &Patch::Strategic(&patch))
        .await
        .unwrap();
    let t = Instant::now();
    loop {
        let d = deploys.get("app").await.unwrap();
        if progressing_reason(&d).as_deref() == Some("ProgressDeadlineExceeded") {
            let st = d.status.unwrap();
            // Only one old pod may go while the new ones are not ready.
            assert!(st.available_replicas >= Some(2), "{st:?}");
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "deadline not reported"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn kubectl(kubeconfig: &Path, args: &[&str]) -> (bool, String) {
    let out = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .output()
        .expect("kubectl runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_get_restart_status_patch() {
    if Command::new("kubectl")
        .arg("version")
        .arg("--client")
        .output()
        .is_err()
    {
        eprintln!("kubectl not installed; skipping");
        return;
    }
    let lab = lab(fast()).await;
    let kc = lab.kubeconfig.clone();
    let run = move |args: &'static [&'static str]| {
        let kc = kc.clone();
        async move {
            tokio::task::spawn_blocking(move || kubectl(&kc, args))
                .await
                .unwrap()
        }
    };
    let (ok, out) = run(&["rollout", "status", "deploy/app", "--timeout=20s"]).await;
    eprintln!("$ kubectl rollout status deploy/app\n{out}");
    assert!(ok, "{out}");
    assert!(
        out.contains("deployment \"app\" successfully rolled out"),
        "{out}"
    );

    let (ok, out) = run(&["get", "deploy,rs,pods,cm"]).await;
    eprintln!("$ kubectl get deploy,rs,pods,cm\n{out}");
    assert!(ok, "{out}");
    assert!(out.contains("deployment.apps/app"), "{out}");
    assert!(out.contains("3/3"), "{out}");
    assert!(out.contains("replicaset.apps/app-"), "{out}");
    assert!(out.contains("pod/app-"), "{out}");
    assert!(out.contains("Running"), "{out}");
    assert!(out.contains("configmap/app-db"), "{out}");

    let (ok, out) = run(&["rollout", "restart", "deploy/app"]).await;
    eprintln!("$ kubectl rollout restart deploy/app\n{out}");
    assert!(ok, "{out}");
    assert!(out.contains("deployment.apps/app restarted"), "{out}");
    let (ok, out) = run(&["rollout", "status", "deploy/app", "--timeout=30s"]).await;
    eprintln!("$ kubectl rollout status deploy/app\n{out}");
    assert!(ok, "{out}");
    assert!(out.contains("successfully rolled out"), "{out}");
    assert!(
        out.contains("Waiting for deployment"),
        "saw progress: {out}"
    );

    let (ok, out) = run(&[
        "patch",
        "cm",
        "app-db",
        "--type",
        "merge",
        "-p",
        r#"{"data":{"DATABASE_URL":"host=127.0.0.1 port=6543 dbname=app"}}"#,
    ])
    .await;
    assert!(ok, "{out}");
    assert!(out.contains("configmap/app-db patched"), "{out}");
    let (ok, out) = run(&["get", "cm", "app-db", "-o", "jsonpath={.data.DATABASE_URL}"]).await;
    assert!(ok, "{out}");
    assert_eq!(out.trim(), "host=127.0.0.1 port=6543 dbname=app");

    lab.sim.deny("patch", "deployments");
    let (ok, out) = run(&["rollout", "restart", "deploy/app"]).await;
    assert!(!ok, "{out}");
    assert!(out.contains("forbidden"), "{out}");
    let (ok, out) = run(&["auth", "can-i", "patch", "deployments"]).await;
    assert!(!ok, "{out}");
    assert!(out.trim().starts_with("no"), "{out}");
}

/// The app pods write to the database their config named when they started;
/// a config switch plus a rollout restart moves the writes to the target, and
/// with logical replication in place every acknowledged write ends up there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn app_pods_write_and_follow_a_restart_based_switch() {
    let pair = common::pair();
    let db = format!("kube_sim_{}", std::process::id());
    pair.psql(
        &pair.source_db("postgres"),
        &format!("CREATE DATABASE {db}"),
    );
    pair.psql(
        &pair.target_db("postgres"),
        &format!("CREATE DATABASE {db}"),
    );
    let (src, tgt) = (pair.source_db(&db), pair.target_db(&db));
    // What a cutover does by hand before the switch: schema on the target,
    // publication, subscription.
    pair.psql(&tgt, kube_sim::APP_WRITES_DDL);
    let lab = lab(SimOptions {
        database_url: Some(src.clone()),
        ..fast()
    })
    .await;
    pair.psql(&src, "CREATE PUBLICATION kube_sim_pub FOR TABLE app_writes");
    pair.psql(
        &tgt,
        &format!("CREATE SUBSCRIPTION kube_sim_sub CONNECTION '{src}' PUBLICATION kube_sim_pub"),
    );

    let c = client(&lab.kubeconfig).await;
    let deploys: Api<Deployment> = Api::namespaced(c.clone(), NS);
    let cms: Api<ConfigMap> = Api::namespaced(c.clone(), NS);
    let pods: Api<Pod> = Api::namespaced(c, NS);
    wait_complete(&deploys, "app", Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (ok0, t0) = (lab.sim.app_stats().ok, Instant::now());
    tokio::time::sleep(Duration::from_secs(3)).await;
    let rate = (lab.sim.app_stats().ok - ok0) as f64 / t0.elapsed().as_secs_f64();
    eprintln!("steady app writes: {rate:.0}/s");
    assert!(rate > 350.0, "app pods sustain the load: {rate:.0}/s");
    let src_fp = cutover::kube::fingerprint(&src);
    for p in pods.list(&ListParams::default()).await.unwrap().items {
        assert_eq!(
            p.metadata.annotations.unwrap()[kube_sim::DB_CONFIG_ANNOTATION],
            src_fp
        );
    }

    let switch_at = Instant::now();
    cms.patch(
        APP_CONFIGMAP,
        &PatchParams::default(),
        &Patch::Merge(&json!({"data": {"DATABASE_URL": tgt}})),
    )
    .await
    .unwrap();
    let restart = json!({"spec": {"template": {"metadata": {"annotations": {
        "kubectl.kubernetes.io/restartedAt": chrono::Utc::now().to_rfc3339()
    }}}}});
    deploys
        .patch("app", &PatchParams::default(), &Patch::Strategic(&restart))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    wait_complete(&deploys, "app", Duration::from_secs(20)).await;
    eprintln!("switch + rollout took {:?}", switch_at.elapsed());
    tokio::time::sleep(Duration::from_secs(2)).await;
    let tgt_fp = cutover::kube::fingerprint(&tgt);
    let t = Instant::now();
    loop {
        let ps = pods.list(&ListParams::default()).await.unwrap().items;
        let fps: Vec<String> = ps
            .iter()
            .map(|p| {
                p.metadata.annotations.as_ref().unwrap()[kube_sim::DB_CONFIG_ANNOTATION].clone()
            })
            .collect();
        if ps.len() == 3 && fps.iter().all(|f| *f == tgt_fp) {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "pods moved to the target: {fps:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    lab.sim.shutdown().await;
    let stats = lab.sim.app_stats();
    let acked = lab.sim.acknowledged_writes();
    eprintln!(
        "app writes: {} ok, {} failed; failure seconds: {:?}; last error: {:?}",
        stats.ok,
        stats.failed,
        stats.failure_seconds(),
        stats.last_error
    );
    for s in &stats.per_second {
        eprintln!("  {} ok={} failed={}", s.second, s.ok, s.failed);
    }
    assert_eq!(acked.len() as u64, stats.ok);

    let (client, conn) = tokio_postgres::connect(&tgt, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    let t = Instant::now();
    loop {
        let present: std::collections::HashSet<String> = client
            .query("SELECT id FROM app_writes", &[])
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        let missing = acked.iter().filter(|id| !present.contains(*id)).count();
        if missing == 0 {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "{missing} of {} acknowledged writes missing on the target",
            acked.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    drop(client);
    pair.psql(&tgt, "DROP SUBSCRIPTION kube_sim_sub");
    pair.psql(
        &pair.source_db("postgres"),
        &format!("DROP DATABASE {db} WITH (FORCE)"),
    );
    pair.psql(
        &pair.target_db("postgres"),
        &format!("DROP DATABASE {db} WITH (FORCE)"),
    );
}
