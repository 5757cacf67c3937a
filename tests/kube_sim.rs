//! The lab's Kubernetes API simulator, driven by the real `kube` client and the
//! real `kubectl`, and the lab's app pods writing to real PostgreSQL.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use cutover::config::Changes;
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

    // `get -w` streams Table rows while a restart rolls.
    let mut watch = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(&lab.kubeconfig)
        .args(["get", "deploy", "app", "-w"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (ok, out) = run(&["rollout", "restart", "deploy/app"]).await;
    assert!(ok, "{out}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    watch.kill().unwrap();
    let w = watch.wait_with_output().unwrap();
    let out = String::from_utf8_lossy(&w.stdout);
    eprintln!(
        "$ kubectl get deploy app -w   # during a restart\n{out}{}",
        String::from_utf8_lossy(&w.stderr)
    );
    assert!(
        out.lines().filter(|l| l.starts_with("app ")).count() >= 3,
        "{out}"
    );
    assert!(out.lines().last().unwrap_or("").contains("3/3"), "{out}");

    let (ok, out) = run(&["scale", "deploy/app", "--replicas=4"]).await;
    eprintln!("$ kubectl scale deploy/app --replicas=4\n{out}");
    assert!(ok, "{out}");
    assert!(out.contains("deployment.apps/app scaled"), "{out}");
    let (ok, out) = run(&["rollout", "status", "deploy/app", "--timeout=30s"]).await;
    assert!(ok, "{out}");
    let (ok, out) = run(&["get", "deploy", "app"]).await;
    assert!(ok && out.contains("4/4"), "{out}");

    let (ok, out) = run(&["get", "pods", "-o", "name"]).await;
    assert!(ok, "{out}");
    let victim = out.lines().next().unwrap().trim().to_string();
    let kc = lab.kubeconfig.clone();
    let v2 = victim.clone();
    let (ok, out) =
        tokio::task::spawn_blocking(move || kubectl(&kc, &["delete", &v2, "--timeout=20s"]))
            .await
            .unwrap();
    eprintln!("$ kubectl delete {victim}\n{out}");
    assert!(ok, "{out}");
    assert!(out.contains("deleted"), "{out}");
    let (ok, out) = run(&["rollout", "status", "deploy/app", "--timeout=30s"]).await;
    assert!(ok, "{out}");
    let (ok, out) = run(&["get", "pods"]).await;
    eprintln!("$ kubectl get pods\n{out}");
    assert!(ok, "{out}");
    assert!(!out.contains(victim.trim_start_matches("pod/")), "{out}");

    lab.sim.deny("patch", "deployments");
    let (ok, out) = run(&["rollout", "restart", "deploy/app"]).await;
    eprintln!("$ kubectl rollout restart deploy/app   # denied\n{out}");
    assert!(!ok, "{out}");
    assert!(out.contains("forbidden"), "{out}");
    let (ok, out) = run(&["auth", "can-i", "patch", "deployments"]).await;
    eprintln!("$ kubectl auth can-i patch deployments\n{out}");
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

    // The cutover's write freeze: new sessions read-only, existing ones ended.
    // From here until the restart replaces them, old pods' writes fail.
    let switch_at = Instant::now();
    pair.psql(
        &pair.source_db("postgres"),
        &format!(
            "ALTER DATABASE {db} SET default_transaction_read_only = on; \
             SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
             WHERE datname = '{db}' AND backend_type = 'client backend'"
        ),
    );
    // Through the product's actions: switch the key, restart like kubectl,
    // wait for the rollout.
    let client = client(&lab.kubeconfig).await;
    let sw = cutover::kube::switch_config_key(
        &client,
        NS,
        &cutover::kube::ConfigObject::ConfigMap(APP_CONFIGMAP.into()),
        "DATABASE_URL",
        &tgt,
    )
    .await
    .unwrap();
    assert_eq!(sw.new_fingerprint, cutover::kube::fingerprint(&tgt));
    let r = cutover::kube::rollout_restart(&client, NS, "app")
        .await
        .unwrap();
    let out =
        cutover::kube::wait_rollout(&client, NS, "app", r.generation, Duration::from_secs(20))
            .await
            .unwrap();
    assert!(
        matches!(out, cutover::kube::RolloutOutcome::Complete { .. }),
        "{out:?}"
    );
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
    let acked_updates = lab.sim.acknowledged_updates();
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
    let fails = stats.failure_seconds();
    assert!(stats.failed > 0, "the freeze made old pods' writes fail");
    let window = fails.last().unwrap() - fails.first().unwrap() + 1;
    eprintln!(
        "failure window: {:?} across {window} wall-clock seconds ({} failed writes) \
         for freeze + switch + restart",
        stats.failure_window(),
        stats.failed
    );
    assert!(stats.failure_window() < Duration::from_secs(5));
    assert!(
        window <= 5,
        "failures stop once the new pods run: {fails:?}"
    );
    let n_updates: u32 = acked_updates.values().sum();
    assert!(n_updates > 0, "the app also updates");
    assert_eq!(acked.len() as u64 + u64::from(n_updates), stats.ok);

    let (client, conn) = tokio_postgres::connect(&tgt, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    let t = Instant::now();
    loop {
        let present: std::collections::HashMap<String, i32> = client
            .query("SELECT id, updates FROM app_writes", &[])
            .await
            .unwrap()
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        let missing = acked.iter().filter(|id| !present.contains_key(*id)).count()
            + acked_updates
                .iter()
                .filter(|(id, n)| present.get(*id).is_none_or(|u| *u < **n as i32))
                .count();
        if missing == 0 {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "{missing} of {} acknowledged writes (or updates) missing on the target",
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

mod client_side {
    use super::*;

    /// With no kubeconfig in cutover.toml, the lookup is kubectl's: every
    /// file in $KUBECONFIG, merged, the first current-context winning.
    #[tokio::test]
    async fn inferred_target_reads_kubeconfig_list_like_kubectl() {
        let lab = lab(fast()).await;
        let other = lab.kubeconfig.with_file_name("other-kubeconfig");
        std::fs::write(
            &other,
            "apiVersion: v1\nkind: Config\ncurrent-context: elsewhere\nclusters: []\ncontexts: []\nusers: []\n",
        )
        .unwrap();
        // Only this test in the binary reads KUBECONFIG; the others name their file.
        std::env::set_var(
            "KUBECONFIG",
            format!("{}:{}", lab.kubeconfig.display(), other.display()),
        );
        let conn = cutover::kube::connect(&cutover::kube::Target::Inferred {
            context: None,
            namespace: None,
        })
        .await
        .unwrap();
        std::env::remove_var("KUBECONFIG");
        assert_eq!(conn.context, LAB_CONTEXT);
        assert_eq!(conn.namespace, NS);
        let d: Api<Deployment> = Api::namespaced(conn.client, NS);
        assert_eq!(
            d.get("app").await.unwrap().metadata.name.as_deref(),
            Some("app")
        );
    }
    use cutover::kube::{
        can_i, connect_kubeconfig, fingerprint, rollout_restart, switch_config_key, wait_rollout,
        watch_workload, ConfigObject, RolloutOutcome, RolloutState,
    };
    use k8s_openapi::api::core::v1::Secret;
    use k8s_openapi::ByteString;

    #[tokio::test]
    async fn connect_switch_restart_and_watch() {
        let lab = lab(fast()).await;
        let conn = connect_kubeconfig(&lab.kubeconfig, None, None)
            .await
            .unwrap();
        assert_eq!(conn.namespace, NS);
        assert_eq!(conn.context, LAB_CONTEXT);
        let c = conn.client.clone();
        let deploys: Api<Deployment> = Api::namespaced(c.clone(), NS);
        wait_complete(&deploys, "app", Duration::from_secs(10)).await;

        let mut snaps = Box::pin(watch_workload(&c, NS, "app").await.unwrap());
        let first = tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                let s = snaps.next().await.unwrap().unwrap();
                if s.pods.len() == 3 && s.state == RolloutState::Complete {
                    return s;
                }
            }
        })
        .await
        .expect("a complete snapshot");
        assert_eq!(
            (first.desired, first.updated, first.ready, first.available),
            (3, 3, 3, 3)
        );
        assert_eq!(first.replicasets.len(), 1);
        assert!(first
            .pods
            .iter()
            .all(|p| p.ready && p.updated && p.phase == "Running"));
        let old_fp = first.pods[0].db_config.clone().unwrap();
        serde_json::to_string(&first).unwrap();

        let obj = ConfigObject::ConfigMap(APP_CONFIGMAP.into());
        let new_url = "host=127.0.0.1 port=7777 dbname=app user=app";
        let sw = switch_config_key(&c, NS, &obj, "DATABASE_URL", new_url)
            .await
            .unwrap();
        assert!(sw.changed);
        assert_eq!(sw.previous_fingerprint.as_deref(), Some(old_fp.as_str()));
        assert_eq!(sw.new_fingerprint, fingerprint(new_url));
        assert!(!format!("{sw:?}").contains("port=7777"));
        let again = switch_config_key(&c, NS, &obj, "DATABASE_URL", new_url)
            .await
            .unwrap();
        assert!(!again.changed, "second run is a no-op");

        let r = rollout_restart(&c, NS, "app").await.unwrap();
        let out = wait_rollout(&c, NS, "app", r.generation, Duration::from_secs(20))
            .await
            .unwrap();
        assert!(matches!(out, RolloutOutcome::Complete { .. }), "{out:?}");

        // The watcher saw the pods move to the new config.
        let last = tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                let s = snaps.next().await.unwrap().unwrap();
                if s.pods.len() == 3 && s.pods_by_db_config.get(&sw.new_fingerprint) == Some(&3) {
                    return s;
                }
            }
        })
        .await
        .expect("snapshots show every pod on the new config");
        assert_eq!(last.replicasets.len(), 2);
        assert!(last.pods.iter().all(|p| p.updated));

        sw.rollback(&c, NS).await.unwrap();
        let cm = Api::<ConfigMap>::namespaced(c.clone(), NS)
            .get(APP_CONFIGMAP)
            .await
            .unwrap();
        assert_eq!(fingerprint(&cm.data.unwrap()["DATABASE_URL"]), old_fp);
    }

    #[tokio::test]
    async fn secret_switch_and_rollback() {
        let lab = lab(fast()).await;
        let c = client(&lab.kubeconfig).await;
        let secrets: Api<Secret> = Api::namespaced(c.clone(), NS);
        let mut s = Secret::default();
        s.metadata.name = Some("app-db".into());
        s.data = Some([("DATABASE_URL".to_string(), ByteString(b"old".to_vec()))].into());
        secrets.create(&PostParams::default(), &s).await.unwrap();
        let obj = ConfigObject::Secret("app-db".into());
        let sw = switch_config_key(&c, NS, &obj, "DATABASE_URL", "new")
            .await
            .unwrap();
        assert_eq!(sw.previous_fingerprint, Some(fingerprint("old")));
        let got = secrets.get("app-db").await.unwrap().data.unwrap();
        assert_eq!(got["DATABASE_URL"].0, b"new");
        sw.rollback(&c, NS).await.unwrap();
        let got = secrets.get("app-db").await.unwrap().data.unwrap();
        assert_eq!(got["DATABASE_URL"].0, b"old");
    }

    /// A rollback from the kept file, after a restart: the key the switch
    /// added is removed again, and nothing is restored once someone else
    /// changed it.
    #[tokio::test]
    async fn restore_removes_a_key_that_was_absent_and_refuses_a_changed_one() {
        let lab = lab(fast()).await;
        let c = client(&lab.kubeconfig).await;
        let secrets: Api<Secret> = Api::namespaced(c.clone(), NS);
        let mut s = Secret::default();
        s.metadata.name = Some("app-db2".into());
        s.data = Some([("OTHER".to_string(), ByteString(b"x".to_vec()))].into());
        secrets.create(&PostParams::default(), &s).await.unwrap();
        let obj = ConfigObject::Secret("app-db2".into());
        let sw = switch_config_key(&c, NS, &obj, "DATABASE_URL", "new")
            .await
            .unwrap();
        assert_eq!(sw.previous_fingerprint, None);
        let wrong = cutover::kube::restore_config_key(
            &c,
            NS,
            &obj,
            "DATABASE_URL",
            None,
            &fingerprint("something else"),
        )
        .await
        .unwrap_err();
        assert!(
            format!("{wrong:#}").contains("nothing restored"),
            "{wrong:#}"
        );
        let got = secrets.get("app-db2").await.unwrap().data.unwrap();
        assert_eq!(got["DATABASE_URL"].0, b"new", "untouched");
        cutover::kube::restore_config_key(&c, NS, &obj, "DATABASE_URL", None, &fingerprint("new"))
            .await
            .unwrap();
        let got = secrets.get("app-db2").await.unwrap().data.unwrap();
        assert!(!got.contains_key("DATABASE_URL"), "{got:?}");
        assert_eq!(got["OTHER"].0, b"x");
    }

    #[tokio::test]
    async fn can_i_names_verb_and_resource() {
        let lab = lab(fast()).await;
        let c = client(&lab.kubeconfig).await;
        let ok = can_i(&c, "patch", "deployments", NS, Some("app"))
            .await
            .unwrap();
        assert!(ok.allowed, "{}", ok.message);
        lab.sim.deny("patch", "deployments");
        let no = can_i(&c, "patch", "deployments", NS, Some("app"))
            .await
            .unwrap();
        assert!(!no.allowed);
        assert!(
            no.message.contains("patch deployments \"app\""),
            "{}",
            no.message
        );
        assert!(no.message.contains(NS), "{}", no.message);
        let err = rollout_restart(&c, NS, "app").await.unwrap_err();
        assert!(
            format!("{err:#}").contains("403") || format!("{err:#}").contains("forbidden"),
            "{err:#}"
        );
    }

    #[tokio::test]
    async fn wait_rollout_reports_deadline_exceeded() {
        let lab = lab(SimOptions {
            progress_deadline_seconds: 1,
            ..fast()
        })
        .await;
        let c = client(&lab.kubeconfig).await;
        let deploys: Api<Deployment> = Api::namespaced(c.clone(), NS);
        wait_complete(&deploys, "app", Duration::from_secs(10)).await;
        lab.sim.set_pods_never_ready(true);
        let r = rollout_restart(&c, NS, "app").await.unwrap();
        let out = wait_rollout(&c, NS, "app", r.generation, Duration::from_secs(15))
            .await
            .unwrap();
        assert!(
            matches!(out, RolloutOutcome::DeadlineExceeded { .. }),
            "{out:?}"
        );
        let out = wait_rollout(&c, NS, "app", r.generation, Duration::from_millis(300)).await;
        assert!(
            matches!(out, Ok(RolloutOutcome::DeadlineExceeded { .. })),
            "{out:?}"
        );
    }
}

#[tokio::test]
async fn watch_resumes_from_a_resource_version_with_bookmarks() {
    let lab = lab(SimOptions {
        bookmark_interval: Duration::from_millis(200),
        ..fast()
    })
    .await;
    let c = client(&lab.kubeconfig).await;
    let cms: Api<ConfigMap> = Api::namespaced(c.clone(), NS);
    let rv0 = cms
        .list(&ListParams::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    for v in ["a", "b"] {
        cms.patch(
            APP_CONFIGMAP,
            &PatchParams::default(),
            &Patch::Merge(&json!({"data": {"K": v}})),
        )
        .await
        .unwrap();
    }
    let wp = kube::api::WatchParams::default().timeout(2);
    let mut s = cms.watch(&wp, &rv0).await.unwrap().boxed();
    let mut seen = Vec::new();
    let mut bookmark = None;
    while let Some(ev) = s.try_next().await.unwrap() {
        match ev {
            kube::api::WatchEvent::Modified(cm) => {
                seen.push(cm.data.unwrap()["K"].clone());
                let rv: u64 = cm.metadata.resource_version.unwrap().parse().unwrap();
                assert!(rv > rv0.parse().unwrap());
            }
            kube::api::WatchEvent::Bookmark(b) => {
                bookmark = Some(b.metadata.resource_version);
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(seen, ["a", "b"]);
    assert!(bookmark.is_some(), "a bookmark arrived");

    // Label selectors filter both list and watch.
    let none = cms
        .list(&ListParams::default().labels("app=other"))
        .await
        .unwrap();
    assert!(none.items.is_empty());
    let one = cms
        .list(&ListParams::default().labels("app in (app, x)"))
        .await
        .unwrap();
    assert_eq!(one.items.len(), 1);
}

/// How many writes/s the app pods sustain (debug build, shared cores).
/// `CUTOVER_APP_RATE=3000 cargo test --test kube_sim app_write_capacity -- --ignored --nocapture`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "measurement, not a check"]
async fn app_write_capacity() {
    let rate: u32 = std::env::var("CUTOVER_APP_RATE")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(3000);
    let pair = common::pair();
    let db = format!("kube_sim_cap_{}", std::process::id());
    pair.psql(
        &pair.source_db("postgres"),
        &format!("CREATE DATABASE {db}"),
    );
    let lab = lab(SimOptions {
        database_url: Some(pair.source_db(&db)),
        writes_per_sec: rate,
        ..fast()
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (ok0, f0, t0) = (
        lab.sim.app_stats().ok,
        lab.sim.app_stats().failed,
        Instant::now(),
    );
    tokio::time::sleep(Duration::from_secs(5)).await;
    let st = lab.sim.app_stats();
    let secs = t0.elapsed().as_secs_f64();
    eprintln!(
        "asked {rate}/s: {:.0} ok/s, {:.0} failed/s",
        (st.ok - ok0) as f64 / secs,
        (st.failed - f0) as f64 / secs
    );
    lab.sim.shutdown().await;
    pair.psql(
        &pair.source_db("postgres"),
        &format!("DROP DATABASE {db} WITH (FORCE)"),
    );
}

mod warnings_and_switches {
    use super::*;
    use cutover::kube::{
        preflight, required_access, rollout_restart, switch_config_key, wait_rollout,
        watch_workload, AccessCheck, ConfigObject, RolloutOutcome, WorkloadSnapshot,
    };
    use k8s_openapi::api::core::v1::{Event, Service};
    use kube::runtime::WatchStreamExt;

    const QUOTA: &str =
        "exceeded quota: compute-resources, requested: pods=1, used: pods=3, limited: pods=3";

    /// Reads snapshots until one satisfies `done`, or panics after `within`.
    async fn until<S>(
        snaps: &mut S,
        within: Duration,
        what: &str,
        done: impl Fn(&WorkloadSnapshot) -> bool,
    ) -> WorkloadSnapshot
    where
        S: futures::Stream<Item = Result<WorkloadSnapshot, String>> + Unpin,
    {
        let mut last = None;
        let r = tokio::time::timeout(within, async {
            loop {
                match snaps.next().await.expect("the watch goes on") {
                    Ok(s) if done(&s) => return s,
                    Ok(s) => last = Some(s),
                    Err(e) => eprintln!("watch error: {e}"),
                }
            }
        })
        .await;
        r.unwrap_or_else(|_| panic!("no snapshot with {what}; last: {last:#?}"))
    }

    #[tokio::test]
    async fn failed_create_warnings_reach_the_snapshot_and_clear_on_resume() {
        let lab = lab(fast()).await;
        let c = client(&lab.kubeconfig).await;
        let deploys: Api<Deployment> = Api::namespaced(c.clone(), NS);
        wait_complete(&deploys, "app", Duration::from_secs(10)).await;
        let mut snaps = Box::pin(watch_workload(&c, NS, "app").await.unwrap());
        let first = until(&mut snaps, Duration::from_secs(5), "3 ready pods", |s| {
            s.ready == 3
        })
        .await;
        assert!(first.warnings.is_empty(), "{:?}", first.warnings);

        lab.sim.fail_pod_creation("app", QUOTA);
        let r = rollout_restart(&c, NS, "app").await.unwrap();
        let failing = until(
            &mut snaps,
            Duration::from_secs(10),
            "a FailedCreate counted twice",
            |s| s.warnings.first().is_some_and(|w| w.count >= 2),
        )
        .await;
        let new_rs = failing
            .replicasets
            .iter()
            .find(|r| r.current_template)
            .expect("a new ReplicaSet")
            .clone();
        assert_eq!(new_rs.current, 0, "no pod was created: {new_rs:?}");
        let w = &failing.warnings[0];
        assert_eq!(w.reason, "FailedCreate");
        assert_eq!(w.object, format!("replicaset/{}", new_rs.name));
        assert_eq!(
            w.message,
            format!(
                "Error creating: pods \"{}-\" is forbidden: {QUOTA}",
                new_rs.name
            )
        );
        assert!(
            chrono::DateTime::parse_from_rfc3339(&w.last_seen).is_ok(),
            "{w:?}"
        );
        assert_eq!(
            failing.warnings.len(),
            1,
            "one event, counted up: {:?}",
            failing.warnings
        );
        assert!(
            failing.pods.iter().all(|p| !p.updated),
            "{:?}",
            failing.pods
        );

        // The Event object itself, as the real ReplicaSet controller writes it.
        let events: Api<Event> = Api::namespaced(c.clone(), NS);
        let list = events
            .list(&ListParams::default().fields("type=Warning"))
            .await
            .unwrap();
        assert_eq!(list.items.len(), 1);
        let ev = &list.items[0];
        let rs = Api::<ReplicaSet>::namespaced(c.clone(), NS)
            .get(&new_rs.name)
            .await
            .unwrap();
        assert_eq!(ev.involved_object.kind.as_deref(), Some("ReplicaSet"));
        assert_eq!(
            ev.involved_object.name.as_deref(),
            Some(new_rs.name.as_str())
        );
        assert_eq!(ev.involved_object.uid, rs.metadata.uid);
        assert_eq!(ev.type_.as_deref(), Some("Warning"));
        assert!(ev.count >= Some(2), "{ev:?}");
        assert!(ev.last_timestamp >= ev.first_timestamp);
        let failure = rs
            .status
            .unwrap()
            .conditions
            .unwrap_or_default()
            .into_iter()
            .find(|c| c.type_.as_deref() == Some("ReplicaFailure"))
            .expect("ReplicaFailure condition on the ReplicaSet");
        assert_eq!(failure.reason.as_deref(), Some("FailedCreate"));
        let d = deploys.get("app").await.unwrap();
        let dc = d.status.unwrap().conditions.unwrap();
        assert!(
            dc.iter()
                .any(|c| c.type_.as_deref() == Some("ReplicaFailure")
                    && c.status.as_deref() == Some("True")),
            "{dc:?}"
        );
        // Counting goes on while it fails.
        let counted = ev.count.unwrap();
        until(&mut snaps, Duration::from_secs(5), "a higher count", |s| {
            s.warnings.first().is_some_and(|w| w.count > counted)
        })
        .await;

        lab.sim.resume_pod_creation("app");
        let out = wait_rollout(&c, NS, "app", r.generation, Duration::from_secs(20))
            .await
            .unwrap();
        assert!(matches!(out, RolloutOutcome::Complete { .. }), "{out:?}");
        let done = until(
            &mut snaps,
            Duration::from_secs(10),
            "every pod updated and the warning gone",
            |s| s.pods.len() == 3 && s.pods.iter().all(|p| p.updated && p.ready),
        )
        .await;
        assert!(done.warnings.is_empty(), "{:?}", done.warnings);
        let d = deploys.get("app").await.unwrap();
        let dc = d.status.unwrap().conditions.unwrap();
        assert!(
            !dc.iter()
                .any(|c| c.type_.as_deref() == Some("ReplicaFailure")),
            "{dc:?}"
        );
        // The event stays, as in a real cluster (for an hour).
        let list = events.list(&ListParams::default()).await.unwrap();
        assert_eq!(list.items.len(), 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn kubectl_get_events_lists_failed_create() {
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
        let c = client(&lab.kubeconfig).await;
        let deploys: Api<Deployment> = Api::namespaced(c.clone(), NS);
        wait_complete(&deploys, "app", Duration::from_secs(10)).await;
        lab.sim.fail_pod_creation("app", QUOTA);
        rollout_restart(&c, NS, "app").await.unwrap();
        let events: Api<Event> = Api::namespaced(c.clone(), NS);
        let t = Instant::now();
        while events
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .is_empty()
        {
            assert!(t.elapsed() < Duration::from_secs(5), "no event recorded");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let kc = lab.kubeconfig.clone();
        let (ok, out) = tokio::task::spawn_blocking(move || {
            kubectl(
                &kc,
                &[
                    "get",
                    "events",
                    "-n",
                    NS,
                    "--field-selector",
                    "type=Warning",
                ],
            )
        })
        .await
        .unwrap();
        eprintln!("$ kubectl get events -n {NS} --field-selector type=Warning\n{out}");
        assert!(ok, "{out}");
        let header = out.lines().next().unwrap();
        for col in ["LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"] {
            assert!(header.contains(col), "{out}");
        }
        let row = out
            .lines()
            .find(|l| l.contains("FailedCreate"))
            .unwrap_or_else(|| panic!("no FailedCreate row: {out}"));
        assert!(row.contains("Warning"), "{row}");
        assert!(row.contains("replicaset/app-"), "{row}");
        assert!(row.contains("is forbidden: exceeded quota"), "{row}");
        let kc = lab.kubeconfig.clone();
        let (ok, out) = tokio::task::spawn_blocking(move || {
            kubectl(&kc, &["get", "events", "-o", "jsonpath={.items[0].count}"])
        })
        .await
        .unwrap();
        assert!(ok, "{out}");
        assert!(out.trim().parse::<i32>().unwrap() >= 1, "{out}");
    }

    #[tokio::test]
    async fn service_selector_switch_and_rollback() {
        let lab = lab(fast()).await;
        let c = client(&lab.kubeconfig).await;
        let svcs: Api<Service> = Api::namespaced(c.clone(), NS);
        let selector = |s: Service| s.spec.unwrap().selector.unwrap();
        let before = svcs.get(kube_sim::APP_SERVICE).await.unwrap();
        assert_eq!(
            before.spec.as_ref().unwrap().type_.as_deref(),
            Some("ClusterIP")
        );
        assert_eq!(selector(before)["app"], "app");

        let obj = ConfigObject::parse("service/app").unwrap();
        assert_eq!(obj, ConfigObject::Service("app".into()));
        // Blue/green: point the Service at the green pods.
        // A watcher sees the switch, as the console's would.
        let mut seen = watcher::watcher(
            svcs.clone(),
            watcher::Config::default().fields("metadata.name=app"),
        )
        .applied_objects()
        .boxed();
        let first = seen.try_next().await.unwrap().unwrap();
        assert_eq!(selector(first)["app"], "app");
        let sw = switch_config_key(&c, NS, &obj, "app", "app-green")
            .await
            .unwrap();
        assert!(sw.changed);
        let next = tokio::time::timeout(Duration::from_secs(5), seen.try_next())
            .await
            .expect("the watch reports the switch")
            .unwrap()
            .unwrap();
        assert_eq!(selector(next)["app"], "app-green");
        assert_eq!(
            sw.previous_fingerprint,
            Some(cutover::kube::fingerprint("app"))
        );
        assert_eq!(sw.new_fingerprint, cutover::kube::fingerprint("app-green"));
        assert_eq!(sw.previous_value().map(|v| v.expose()), Some("app"));
        assert_eq!(selector(svcs.get("app").await.unwrap())["app"], "app-green");
        let again = switch_config_key(&c, NS, &obj, "app", "app-green")
            .await
            .unwrap();
        assert!(!again.changed, "second run is a no-op");

        // A new selector key: rollback removes it again.
        let track = switch_config_key(&c, NS, &obj, "track", "green")
            .await
            .unwrap();
        assert_eq!(track.previous_fingerprint, None);
        let sel = selector(svcs.get("app").await.unwrap());
        assert_eq!(sel.len(), 2);
        assert_eq!(sel["track"], "green");
        track.rollback(&c, NS).await.unwrap();
        sw.rollback(&c, NS).await.unwrap();
        let sel = selector(svcs.get("app").await.unwrap());
        assert_eq!(sel, [("app".to_string(), "app".to_string())].into());

        // The switch is guarded by the resourceVersion it read: a missing
        // Service is an error naming it, not a silent create.
        let err = switch_config_key(&c, NS, &ConfigObject::Service("nope".into()), "app", "x")
            .await
            .unwrap_err();
        assert!(format!("{err:#}").contains("service/nope"), "{err:#}");
    }

    #[tokio::test]
    async fn preflight_all_allowed_then_one_denied() {
        let lab = lab(fast()).await;
        let c = client(&lab.kubeconfig).await;
        let obj = ConfigObject::parse("configmap/app-db").unwrap();
        let want = required_access(NS, &["app".into()], Some(&obj), Changes::Patch);
        assert!(want.iter().all(|a| !a.allowed && a.reason.is_none()));
        let got = preflight(&c, want.clone()).await.unwrap();
        assert_eq!(got.len(), want.len());
        let denied: Vec<&AccessCheck> = got.iter().filter(|a| !a.allowed).collect();
        assert!(denied.is_empty(), "{denied:?}");
        assert!(got.iter().all(|a| a.reason.is_none()));

        lab.sim.deny("patch", "configmaps");
        let got = preflight(&c, want).await.unwrap();
        let denied: Vec<&AccessCheck> = got.iter().filter(|a| !a.allowed).collect();
        assert_eq!(denied.len(), 1, "{denied:?}");
        let d = denied[0];
        assert_eq!(d.describe(), format!("patch configmaps/app-db in {NS}"));
        let why = d.reason.as_deref().unwrap();
        assert!(why.contains("patch configmaps \"app-db\""), "{why}");
        assert!(why.contains("RBAC"), "{why}");

        // Watching events too: that is what the warnings need.
        lab.sim.allow("patch", "configmaps");
        lab.sim.deny("watch", "events");
        let svc = ConfigObject::Service("app".into());
        let got = preflight(
            &c,
            required_access(NS, &["app".into()], Some(&svc), Changes::Patch),
        )
        .await
        .unwrap();
        let denied: Vec<String> = got
            .iter()
            .filter(|a| !a.allowed)
            .map(AccessCheck::describe)
            .collect();
        assert_eq!(denied, [format!("watch events in {NS}")]);
        assert!(got
            .iter()
            .any(|a| a.allowed && a.describe() == format!("patch services/app in {NS}")));
    }

    #[test]
    fn config_object_parse_cases() {
        let cases = [
            (
                "configmap/app-db",
                Some(ConfigObject::ConfigMap("app-db".into())),
            ),
            ("cm/app-db", Some(ConfigObject::ConfigMap("app-db".into()))),
            ("secret/db", Some(ConfigObject::Secret("db".into()))),
            ("service/app", Some(ConfigObject::Service("app".into()))),
            ("svc/app", Some(ConfigObject::Service("app".into()))),
            ("Service/app", Some(ConfigObject::Service("app".into()))),
            ("service/", None),
            ("service", None),
            ("deployment/app", None),
            ("service/a/b", None),
            ("", None),
        ];
        for (text, want) in cases {
            assert_eq!(ConfigObject::parse(text), want, "{text:?}");
        }
        for o in [
            ConfigObject::ConfigMap("a".into()),
            ConfigObject::Secret("b".into()),
            ConfigObject::Service("c".into()),
        ] {
            assert_eq!(ConfigObject::parse(&o.to_string()), Some(o.clone()));
        }
    }
}

/// The knobs a console in another process (`cutover demo`) can reach.
#[tokio::test]
async fn lab_knobs_over_http() {
    let lab = lab(fast()).await;
    let c = client(&lab.kubeconfig).await;
    let deploys: Api<Deployment> = Api::namespaced(c.clone(), NS);
    wait_complete(&deploys, "app", Duration::from_secs(10)).await;
    let knob = |method: &str, path: &str| {
        hyper::Request::builder()
            .method(method)
            .uri(path)
            .body(Vec::new())
            .unwrap()
    };
    let out = c
        .request_text(knob("PUT", "/lab/v1/deny/watch/ev"))
        .await
        .unwrap();
    assert!(out.contains("\"on\":true"), "{out}");
    let a = cutover::kube::can_i(&c, "watch", "events", NS, None)
        .await
        .unwrap();
    assert!(!a.allowed, "{}", a.message);
    assert!(a.message.contains("watch events"), "{}", a.message);
    c.request_text(knob("DELETE", "/lab/v1/deny/watch/events"))
        .await
        .unwrap();
    let a = cutover::kube::can_i(&c, "watch", "events", NS, None)
        .await
        .unwrap();
    assert!(a.allowed, "{}", a.message);

    c.request_text(knob("PUT", "/lab/v1/fail-pod-creation/app"))
        .await
        .unwrap();
    let r = cutover::kube::rollout_restart(&c, NS, "app").await.unwrap();
    let events: Api<k8s_openapi::api::core::v1::Event> = Api::namespaced(c.clone(), NS);
    let t = Instant::now();
    let ev = loop {
        if let Some(e) = events
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .pop()
        {
            break e;
        }
        assert!(t.elapsed() < Duration::from_secs(5), "no FailedCreate");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(ev.reason.as_deref(), Some("FailedCreate"));
    assert!(
        ev.message.as_deref().unwrap().ends_with(&format!(
            "is forbidden: {}",
            kube_sim::DEFAULT_CREATE_FAILURE
        )),
        "{ev:?}"
    );
    c.request_text(knob("DELETE", "/lab/v1/fail-pod-creation/app"))
        .await
        .unwrap();
    let out = cutover::kube::wait_rollout(&c, NS, "app", r.generation, Duration::from_secs(20))
        .await
        .unwrap();
    assert!(
        matches!(out, cutover::kube::RolloutOutcome::Complete { .. }),
        "{out:?}"
    );
    let err = c
        .request_text(knob("PUT", "/lab/v1/nonsense"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, kube::Error::Api(ref s) if s.code == 404),
        "{err:?}"
    );
}

/// Jobs: the job controller, the process kubelet and pod logs, through the
/// real `kube` client and `kubectl`. No PostgreSQL needed.
mod jobs {
    use super::*;
    use futures::AsyncBufReadExt;
    use k8s_openapi::api::batch::v1::{Job, JobCondition};
    use k8s_openapi::api::core::v1::{Event, Secret};
    use kube::api::{DeleteParams, LogParams};

    fn no_app() -> SimOptions {
        SimOptions {
            create_app: false,
            pod_start_delay: Duration::from_millis(100),
            ..SimOptions::default()
        }
    }

    /// A simulator and the APIs the Job tests use.
    async fn job_lab(opts: SimOptions) -> (Lab, Client, Api<Job>, Api<Pod>) {
        let lab = lab(opts).await;
        let c = client(&lab.kubeconfig).await;
        let (jobs, pods) = (
            Api::namespaced(c.clone(), NS),
            Api::namespaced(c.clone(), NS),
        );
        (lab, c, jobs, pods)
    }

    /// The code and message of an API error.
    pub(super) fn api_error(err: kube::Error) -> (u16, String) {
        match err {
            kube::Error::Api(s) => (s.code, s.message.clone()),
            other => panic!("expected a Status error, got {other:?}"),
        }
    }

    async fn pods_gone(pods: &Api<Pod>, job: &str) {
        until(
            Duration::from_secs(5),
            &format!("job {job}'s pods to go"),
            || async { job_pods(pods, job).await.is_empty().then_some(()) },
        )
        .await;
    }

    pub(super) fn has_kubectl() -> bool {
        Command::new("kubectl")
            .args(["version", "--client"])
            .output()
            .is_ok()
    }

    /// A Job running `sh -c <script>` with `restartPolicy: Never`; `pod`
    /// is merged into the pod spec, `spec` into the Job's spec.
    fn sh_job(
        name: &str,
        backoff: i32,
        script: &str,
        pod: serde_json::Value,
        spec: serde_json::Value,
    ) -> Job {
        let mut j = json!({
            "metadata": {"name": name},
            "spec": {
                "backoffLimit": backoff,
                "template": {"spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "main", "image": "postgres:18", "command": ["sh", "-c", script]}],
                }},
            },
        });
        json_patch::merge(&mut j["spec"]["template"]["spec"], &pod);
        json_patch::merge(&mut j["spec"], &spec);
        serde_json::from_value(j).unwrap()
    }

    /// Polls `f` every 50 ms until it gives a value; panics after `within`
    /// (also when one poll hangs).
    pub(super) async fn until<T, F, Fut>(within: Duration, what: &str, mut f: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Option<T>>,
    {
        let poll = async {
            let mut tick = tokio::time::interval(Duration::from_millis(50));
            loop {
                tick.tick().await;
                if let Some(v) = f().await {
                    break v;
                }
            }
        };
        tokio::time::timeout(within, poll)
            .await
            .unwrap_or_else(|_| panic!("timed out after {within:?} waiting for {what}"))
    }

    pub(super) fn condition(j: &Job, t: &str) -> Option<JobCondition> {
        j.status
            .as_ref()?
            .conditions
            .as_ref()?
            .iter()
            .find(|c| c.type_ == t && c.status == "True")
            .cloned()
    }

    pub(super) async fn finished(jobs: &Api<Job>, name: &str, within: Duration) -> Job {
        until(within, &format!("job {name} to finish"), || async {
            let j = jobs.get(name).await.unwrap();
            (condition(&j, "Complete").is_some() || condition(&j, "Failed").is_some()).then_some(j)
        })
        .await
    }

    async fn job_pods(pods: &Api<Pod>, job: &str) -> Vec<Pod> {
        pods.list(&ListParams::default().labels(&format!("job-name={job}")))
            .await
            .unwrap()
            .items
    }

    fn terminated(p: &Pod) -> k8s_openapi::api::core::v1::ContainerStateTerminated {
        p.status
            .as_ref()
            .unwrap()
            .container_statuses
            .as_ref()
            .unwrap()[0]
            .state
            .as_ref()
            .unwrap()
            .terminated
            .clone()
            .unwrap_or_else(|| panic!("not terminated: {:?}", p.status))
    }

    fn secret(name: &str, data: &[(&str, &str)]) -> Secret {
        serde_json::from_value(json!({
            "metadata": {"name": name},
            "stringData": data.iter().map(|(k, v)| (k.to_string(), json!(v))).collect::<serde_json::Map<_, _>>(),
        }))
        .unwrap()
    }

    pub(super) async fn run_kubectl(kc: &Path, args: &[&str]) -> (bool, String) {
        let kc = kc.to_path_buf();
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        tokio::task::spawn_blocking(move || {
            let a: Vec<&str> = args.iter().map(String::as_str).collect();
            kubectl(&kc, &a)
        })
        .await
        .unwrap()
    }

    const SCRIPT: &str = r#"printf 'pgpass=%s\n' "$(cat "$CREDS")"
echo "mode=$(stat -c %a "$CREDS")"
echo done > "$WORK/out" && echo "work=$(cat "$WORK/out")"
echo "user=$PGUSER"
echo "home=$HOME"
image-tool ok
exit 0"#;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn job_runs_a_process_with_a_secret_volume_env_and_logs() {
        let bin = tempfile::tempdir().unwrap();
        let tool = bin.path().join("image-tool");
        std::fs::write(&tool, "#!/bin/sh\necho \"tool $1\"\n").unwrap();
        std::fs::set_permissions(&tool, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        let (lab, c, jobs, pods) = job_lab(SimOptions {
            pod_bin: Some(bin.path().to_path_buf()),
            ..no_app()
        })
        .await;
        let secrets: Api<Secret> = Api::namespaced(c.clone(), NS);
        secrets
            .create(
                &PostParams::default(),
                &secret("creds", &[("pgpass", "s3cret"), ("user", "cutover")]),
            )
            .await
            .unwrap();
        let job = sh_job(
            "copy",
            0,
            SCRIPT,
            json!({
                "volumes": [
                    {"name": "creds", "secret": {"secretName": "creds", "defaultMode": 256}},
                    {"name": "work", "emptyDir": {}},
                ],
                "containers": [{"name": "main", "image": "postgres:18", "command": ["sh", "-c", SCRIPT],
                    "env": [
                        {"name": "CREDS", "value": "/etc/cutover/secret/pgpass"},
                        {"name": "WORK", "value": "/var/run/work"},
                        {"name": "PGUSER", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "user"}}},
                    ],
                    "volumeMounts": [
                        {"name": "creds", "mountPath": "/etc/cutover/secret", "readOnly": true},
                        {"name": "work", "mountPath": "/var/run/work"},
                    ],
                }],
            }),
            json!({}),
        );
        let created = jobs.create(&PostParams::default(), &job).await.unwrap();
        let spec = created.spec.as_ref().unwrap();
        assert_eq!(spec.completions, Some(1));
        assert_eq!(spec.parallelism, Some(1));
        let done = finished(&jobs, "copy", Duration::from_secs(10)).await;
        let st = done.status.clone().unwrap();
        assert!(condition(&done, "Complete").is_some(), "{st:?}");
        let types: Vec<&str> = st
            .conditions
            .as_ref()
            .unwrap()
            .iter()
            .map(|c| c.type_.as_str())
            .collect();
        assert_eq!(types, ["SuccessCriteriaMet", "Complete"]);
        assert_eq!(st.succeeded, Some(1));
        assert_eq!(st.failed, None);
        assert_eq!(st.active, None);
        assert!(st.start_time.is_some());
        assert!(st.completion_time.is_some());

        let ps = job_pods(&pods, "copy").await;
        assert_eq!(ps.len(), 1);
        let pod = &ps[0];
        let pod_name = pod.metadata.name.clone().unwrap();
        assert!(
            pod_name.starts_with("copy-") && pod_name.len() == "copy-".len() + 5,
            "{pod_name}"
        );
        let labels = pod.metadata.labels.as_ref().unwrap();
        assert_eq!(labels["batch.kubernetes.io/job-name"], "copy");
        assert_eq!(
            Some(&labels["controller-uid"]),
            created.metadata.uid.as_ref()
        );
        let owner = &pod.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!((owner.kind.as_str(), owner.name.as_str()), ("Job", "copy"));
        assert_eq!(owner.controller, Some(true));
        assert_eq!(owner.block_owner_deletion, Some(true));
        assert_eq!(
            pod.status.as_ref().unwrap().phase.as_deref(),
            Some("Succeeded")
        );
        let t = terminated(pod);
        assert_eq!((t.exit_code, t.reason.as_deref()), (0, Some("Completed")));
        assert!(t.started_at.is_some() && t.finished_at.is_some());

        let pod_dir = lab.sim.pod_root().join(NS).join(&pod_name);
        let log = pods.logs(&pod_name, &LogParams::default()).await.unwrap();
        let want = [
            "pgpass=s3cret".to_string(),
            "mode=400".into(),
            "work=done".into(),
            "user=cutover".into(),
            format!("home={}", pod_dir.display()),
            "tool ok".into(),
        ];
        assert_eq!(log.lines().collect::<Vec<_>>(), want, "{log}");
        // tailLines and timestamps, as kubectl asks for them.
        let tail = pods
            .logs(
                &pod_name,
                &LogParams {
                    tail_lines: Some(2),
                    timestamps: true,
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        let tail: Vec<&str> = tail.lines().collect();
        assert_eq!(tail.len(), 2);
        let (ts, text) = tail[1].split_once(' ').unwrap();
        assert!(chrono::DateTime::parse_from_rfc3339(ts).is_ok(), "{ts}");
        assert_eq!(text, "tool ok");
        // The volumes live in the pod's directory until the pod goes.
        assert_eq!(
            std::fs::read_to_string(pod_dir.join("volumes/work/out")).unwrap(),
            "done\n"
        );
        let mode = std::fs::metadata(pod_dir.join("volumes/creds/pgpass")).unwrap();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&mode.permissions()) & 0o777,
            0o400
        );
        let dir_mode = std::fs::metadata(&pod_dir).unwrap();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&dir_mode.permissions()) & 0o777,
            0o700
        );

        if has_kubectl() {
            let (ok, out) = run_kubectl(&lab.kubeconfig, &["get", "jobs"]).await;
            eprintln!("$ kubectl get jobs\n{out}");
            assert!(ok, "{out}");
            let header = out.lines().next().unwrap();
            for col in ["NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE"] {
                assert!(header.contains(col), "{out}");
            }
            let row: Vec<&str> = out.lines().nth(1).unwrap().split_whitespace().collect();
            assert_eq!(&row[..3], ["copy", "Complete", "1/1"], "{out}");
            let (ok, out) = run_kubectl(&lab.kubeconfig, &["logs", "job/copy"]).await;
            assert!(ok, "{out}");
            assert_eq!(out.lines().next(), Some("pgpass=s3cret"), "{out}");
            let (ok, out) = run_kubectl(&lab.kubeconfig, &["describe", "job", "copy"]).await;
            eprintln!("$ kubectl describe job copy\n{out}");
            assert!(ok, "{out}");
            assert!(out.contains("1 Succeeded"), "{out}");
            assert!(out.contains(&format!("Created pod: {pod_name}")), "{out}");
            // kubectl deletes in the background: the pod and its directory go.
            let (ok, out) = run_kubectl(&lab.kubeconfig, &["delete", "job", "copy"]).await;
            assert!(ok, "{out}");
            assert!(out.contains("job.batch \"copy\" deleted"), "{out}");
            pods_gone(&pods, "copy").await;
            assert!(!pod_dir.exists(), "{}", pod_dir.display());
        }
    }

    #[tokio::test]
    async fn failing_job_gives_up_at_the_backoff_limit_and_its_log_follows() {
        let (lab, _, jobs, pods) = job_lab(no_app()).await;
        let job = sh_job(
            "fails",
            0,
            "sleep 1; echo one; sleep 0.2; echo two >&2; exit 3",
            json!({}),
            json!({}),
        );
        jobs.create(&PostParams::default(), &job).await.unwrap();
        let pod_name = until(Duration::from_secs(5), "a running pod", || async {
            job_pods(&pods, "fails")
                .await
                .into_iter()
                .find(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
                .and_then(|p| p.metadata.name)
        })
        .await;
        let kubectl_follow = has_kubectl().then(|| {
            let (kc, p) = (lab.kubeconfig.clone(), pod_name.clone());
            tokio::task::spawn_blocking(move || kubectl(&kc, &["logs", "-f", &p]))
        });
        let lp = LogParams {
            follow: true,
            ..Default::default()
        };
        let stream = pods.log_stream(&pod_name, &lp).await.unwrap();
        let lines: Vec<String> =
            tokio::time::timeout(Duration::from_secs(10), stream.lines().try_collect())
                .await
                .expect("the followed log ends when the container does")
                .unwrap();
        assert_eq!(lines, ["one", "two"]);
        if let Some(f) = kubectl_follow {
            let (ok, out) = tokio::time::timeout(Duration::from_secs(10), f)
                .await
                .expect("kubectl logs -f ends with the container")
                .unwrap();
            eprintln!("$ kubectl logs -f {pod_name}\n{out}");
            assert!(ok, "{out}");
            assert_eq!(out.lines().collect::<Vec<_>>(), ["one", "two"]);
        }

        let done = finished(&jobs, "fails", Duration::from_secs(5)).await;
        let failed = condition(&done, "Failed").expect("Failed");
        assert_eq!(failed.reason.as_deref(), Some("BackoffLimitExceeded"));
        assert_eq!(
            failed.message.as_deref(),
            Some("Job has reached the specified backoff limit")
        );
        let target = condition(&done, "FailureTarget").expect("FailureTarget");
        assert_eq!(target.reason.as_deref(), Some("BackoffLimitExceeded"));
        let st = done.status.unwrap();
        assert_eq!(st.failed, Some(1));
        assert_eq!(st.succeeded, None);
        assert_eq!(st.completion_time, None);
        tokio::time::sleep(Duration::from_millis(500)).await;
        let ps = job_pods(&pods, "fails").await;
        assert_eq!(ps.len(), 1, "backoffLimit 0: one pod");
        assert_eq!(
            ps[0].status.as_ref().unwrap().phase.as_deref(),
            Some("Failed")
        );
        let t = terminated(&ps[0]);
        assert_eq!((t.exit_code, t.reason.as_deref()), (3, Some("Error")));

        // The RBAC switch covers the log subresource.
        lab.sim.deny("get", "pods/log");
        let err = pods
            .logs(&pod_name, &LogParams::default())
            .await
            .unwrap_err();
        let (code, message) = api_error(err);
        assert_eq!(code, 403);
        assert!(
            message.contains("cannot get resource \"pods/log\""),
            "{message}"
        );
    }

    #[tokio::test]
    async fn backoff_limit_one_makes_a_second_pod() {
        let (_lab, _, jobs, pods) = job_lab(no_app()).await;
        jobs.create(
            &PostParams::default(),
            &sh_job("twice", 1, "echo try; exit 1", json!({}), json!({})),
        )
        .await
        .unwrap();
        let done = finished(&jobs, "twice", Duration::from_secs(10)).await;
        let failed = condition(&done, "Failed").expect("Failed");
        assert_eq!(failed.reason.as_deref(), Some("BackoffLimitExceeded"));
        assert_eq!(done.status.unwrap().failed, Some(2));
        let ps = job_pods(&pods, "twice").await;
        assert_eq!(ps.len(), 2);
        for p in &ps {
            assert_eq!(terminated(p).exit_code, 1);
            let log = pods
                .logs(p.metadata.name.as_ref().unwrap(), &LogParams::default())
                .await
                .unwrap();
            assert_eq!(log, "try\n");
        }
    }

    #[tokio::test]
    async fn missing_secret_volume_keeps_the_pod_pending_until_it_exists() {
        let (_lab, c, jobs, pods) = job_lab(no_app()).await;
        let events: Api<Event> = Api::namespaced(c.clone(), NS);
        let job = sh_job(
            "waits",
            0,
            "cat /etc/creds/pgpass",
            json!({
                "volumes": [{"name": "creds", "secret": {"secretName": "later"}}],
                "containers": [{"name": "main", "image": "postgres:18", "command": ["sh", "-c", "cat /etc/creds/pgpass"],
                    "volumeMounts": [{"name": "creds", "mountPath": "/etc/creds"}]}],
            }),
            json!({}),
        );
        jobs.create(&PostParams::default(), &job).await.unwrap();
        let ev = until(Duration::from_secs(5), "a FailedMount event", || async {
            events
                .list(&ListParams::default().fields("reason=FailedMount"))
                .await
                .unwrap()
                .items
                .pop()
        })
        .await;
        let pod_name = ev.involved_object.name.clone().unwrap();
        assert_eq!(ev.involved_object.kind.as_deref(), Some("Pod"));
        assert_eq!(ev.type_.as_deref(), Some("Warning"));
        assert_eq!(
            ev.message.as_deref(),
            Some("MountVolume.SetUp failed for volume \"creds\" : secret \"later\" not found")
        );
        let pod = pods.get(&pod_name).await.unwrap();
        let st = pod.status.unwrap();
        assert_eq!(st.phase.as_deref(), Some("Pending"));
        let waiting = st.container_statuses.unwrap()[0]
            .state
            .clone()
            .unwrap()
            .waiting
            .unwrap();
        assert_eq!(waiting.reason.as_deref(), Some("ContainerCreating"));
        let j = jobs.get("waits").await.unwrap();
        assert_eq!(j.status.as_ref().unwrap().active, Some(1));
        assert!(
            j.status.as_ref().unwrap().conditions.is_none(),
            "{:?}",
            j.status
        );
        let err = pods
            .logs(&pod_name, &LogParams::default())
            .await
            .unwrap_err();
        assert_eq!(
            api_error(err),
            (
                400,
                format!("container \"main\" in pod \"{pod_name}\" is waiting to start: ContainerCreating")
            )
        );
        // The kubelet retries: once the Secret exists the Job runs.
        Api::<Secret>::namespaced(c.clone(), NS)
            .create(
                &PostParams::default(),
                &secret("later", &[("pgpass", "now")]),
            )
            .await
            .unwrap();
        let done = finished(&jobs, "waits", Duration::from_secs(8)).await;
        assert!(condition(&done, "Complete").is_some(), "{:?}", done.status);
        assert_eq!(
            pods.logs(&pod_name, &LogParams::default()).await.unwrap(),
            "now\n"
        );
    }

    #[tokio::test]
    async fn deleting_a_running_job_kills_its_process() {
        let (lab, _, jobs, pods) = job_lab(no_app()).await;
        let dir = tempfile::tempdir().unwrap();
        // `$$$$`: Kubernetes reads `$$` in a command as an escaped `$`.
        let script = |tag: &str| {
            format!(
                "echo $$$$ > {d}/{tag}.pid; sleep 30; touch {d}/{tag}.late",
                d = dir.path().display()
            )
        };
        for tag in ["bg", "orphan"] {
            jobs.create(
                &PostParams::default(),
                &sh_job(tag, 0, &script(tag), json!({}), json!({})),
            )
            .await
            .unwrap();
        }
        let pid = |tag: &'static str| {
            let path = dir.path().join(format!("{tag}.pid"));
            async move {
                std::fs::read_to_string(&path)
                    .ok()
                    .and_then(|p| p.trim().parse::<u32>().ok())
            }
        };
        let bg_pid = until(Duration::from_secs(5), "the bg process", || pid("bg")).await;
        let orphan_pid = until(Duration::from_secs(5), "the orphan process", || {
            pid("orphan")
        })
        .await;
        let bg_pod = job_pods(&pods, "bg").await[0]
            .metadata
            .name
            .clone()
            .unwrap();
        let pod_dir = lab.sim.pod_root().join(NS).join(&bg_pod);
        assert!(pod_dir.is_dir());

        jobs.delete("bg", &DeleteParams::background())
            .await
            .unwrap();
        let t = Instant::now();
        until(Duration::from_secs(5), "the pod to go", || async {
            pods.get_opt(&bg_pod).await.unwrap().is_none().then_some(())
        })
        .await;
        assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
        assert!(
            !Path::new(&format!("/proc/{bg_pid}")).exists(),
            "process {bg_pid} still there"
        );
        assert!(!pod_dir.exists());
        assert!(jobs.get_opt("bg").await.unwrap().is_none());

        // Without a policy a batch/v1 Job's pods are kept (and the owner
        // reference removed), as the API server does.
        jobs.delete("orphan", &DeleteParams::default())
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        let kept = job_pods(&pods, "orphan").await;
        assert_eq!(kept.len(), 1);
        assert!(
            kept[0].metadata.owner_references.is_none(),
            "{:?}",
            kept[0].metadata
        );
        assert!(
            Path::new(&format!("/proc/{orphan_pid}")).exists(),
            "the orphan runs on"
        );
        pods.delete(
            kept[0].metadata.name.as_ref().unwrap(),
            &DeleteParams::default(),
        )
        .await
        .unwrap();
        pods_gone(&pods, "orphan").await;
        assert!(!Path::new(&format!("/proc/{orphan_pid}")).exists());
        tokio::time::sleep(Duration::from_millis(200)).await;
        for tag in ["bg", "orphan"] {
            assert!(
                !dir.path().join(format!("{tag}.late")).exists(),
                "{tag} ran past its deletion"
            );
        }
    }

    #[tokio::test]
    async fn active_deadline_fails_the_job_and_stops_the_pod() {
        let (_lab, _, jobs, pods) = job_lab(no_app()).await;
        let t = Instant::now();
        jobs.create(
            &PostParams::default(),
            &sh_job(
                "slow",
                6,
                "sleep 30",
                json!({}),
                json!({"activeDeadlineSeconds": 1}),
            ),
        )
        .await
        .unwrap();
        let done = finished(&jobs, "slow", Duration::from_secs(6)).await;
        assert!(t.elapsed() >= Duration::from_secs(1));
        let failed = condition(&done, "Failed").expect("Failed");
        assert_eq!(failed.reason.as_deref(), Some("DeadlineExceeded"));
        assert_eq!(
            failed.message.as_deref(),
            Some("Job was active longer than specified deadline")
        );
        assert_eq!(done.status.unwrap().failed, Some(1));
        pods_gone(&pods, "slow").await;
    }

    #[tokio::test]
    async fn bad_jobs_and_containers_that_cannot_start() {
        let (_lab, c, jobs, pods) = job_lab(no_app()).await;
        let mut always = sh_job(
            "always",
            0,
            "true",
            json!({"restartPolicy": "Always"}),
            json!({}),
        );
        let err = jobs
            .create(&PostParams::default(), &always)
            .await
            .unwrap_err();
        assert!(
            matches!(err, kube::Error::Api(ref s) if s.code == 422 && s.message.contains("restartPolicy")),
            "{err:?}"
        );
        always.spec.as_mut().unwrap().template.spec = None;
        let err = jobs
            .create(&PostParams::default(), &always)
            .await
            .unwrap_err();
        assert!(
            matches!(err, kube::Error::Api(ref s) if s.code == 422),
            "{err:?}"
        );

        let mut missing = sh_job("missing", 0, "", json!({}), json!({}));
        missing
            .spec
            .as_mut()
            .unwrap()
            .template
            .spec
            .as_mut()
            .unwrap()
            .containers[0]
            .command = Some(vec!["no-such-binary-cutover".into(), "x".into()]);
        jobs.create(&PostParams::default(), &missing).await.unwrap();
        let done = finished(&jobs, "missing", Duration::from_secs(5)).await;
        assert!(condition(&done, "Failed").is_some());
        let p = &job_pods(&pods, "missing").await[0];
        let t = terminated(p);
        assert_eq!(
            (t.exit_code, t.reason.as_deref()),
            (128, Some("StartError"))
        );
        let msg = t.message.unwrap();
        assert!(
            msg.contains("exec: \"no-such-binary-cutover\": executable file not found in $PATH"),
            "{msg}"
        );

        // A missing Secret key in env, and no command: Pending, waiting.
        let env = json!({"containers": [{"name": "main", "image": "postgres:18", "command": ["true"],
            "env": [{"name": "PGPASSWORD", "valueFrom": {"secretKeyRef": {"name": "nope", "key": "pgpass"}}}]}]});
        jobs.create(
            &PostParams::default(),
            &sh_job("noenv", 0, "", env, json!({})),
        )
        .await
        .unwrap();
        let bare = json!({"containers": [{"name": "main", "image": "postgres:18"}]});
        jobs.create(
            &PostParams::default(),
            &sh_job("nocmd", 0, "", bare, json!({})),
        )
        .await
        .unwrap();
        let waiting = |job: &'static str| {
            let pods = pods.clone();
            async move {
                let p = job_pods(&pods, job).await.pop()?;
                let w = p.status?.container_statuses?.pop()?.state?.waiting?;
                let reason = w.reason.filter(|r| r != "ContainerCreating")?;
                Some((reason, w.message.unwrap_or_default()))
            }
        };
        let (reason, message) =
            until(Duration::from_secs(5), "noenv waiting", || waiting("noenv")).await;
        assert_eq!(reason, "CreateContainerConfigError");
        assert_eq!(message, "secret \"nope\" not found");
        let events: Api<Event> = Api::namespaced(c.clone(), NS);
        let failed = events
            .list(&ListParams::default().fields("reason=Failed"))
            .await
            .unwrap()
            .items;
        assert!(
            failed
                .iter()
                .any(|e| e.message.as_deref() == Some("Error: secret \"nope\" not found")),
            "{failed:?}"
        );
        let (reason, message) =
            until(Duration::from_secs(5), "nocmd waiting", || waiting("nocmd")).await;
        assert_eq!(reason, "CreateContainerError");
        assert!(message.contains("has no command"), "{message}");
        let j = jobs.get("nocmd").await.unwrap();
        assert_eq!(j.status.unwrap().active, Some(1));

        // deletecollection, in the background: every Job and its pods go.
        let gone = jobs
            .delete_collection(&DeleteParams::background(), &ListParams::default())
            .await
            .unwrap()
            .left()
            .expect("the deleted Jobs");
        let mut names: Vec<String> = gone
            .items
            .into_iter()
            .filter_map(|j| j.metadata.name)
            .collect();
        names.sort();
        assert_eq!(names, ["missing", "nocmd", "noenv"]);
        for job in ["missing", "nocmd", "noenv"] {
            pods_gone(&pods, job).await;
        }
    }
}

/// StatefulSets and CronJobs: the StatefulSet controller (ordered pods,
/// rolling updates, scaling, status), CronJobs stored and instantiated by
/// hand, through the real `kube` client and `kubectl`. No PostgreSQL needed.
mod statefulsets {
    use super::jobs::{api_error, condition, finished, has_kubectl, run_kubectl, until};
    use super::*;
    use cutover::kube::fingerprint;
    use k8s_openapi::api::apps::v1::StatefulSet;
    use k8s_openapi::api::batch::v1::{CronJob, Job};
    use kube::api::DeleteParams;
    use std::sync::{Arc, Mutex};

    const URL: &str = "host=10.0.0.5 port=5432 dbname=ledger user=app";
    const NEW_URL: &str = "host=10.0.0.6 port=5432 dbname=ledger user=app";

    fn opts() -> SimOptions {
        SimOptions {
            create_app: false,
            pod_start_delay: Duration::from_millis(100),
            pod_ready_delay: Duration::from_millis(200),
            ..SimOptions::default()
        }
    }

    /// One observation of a pod by the watch.
    #[derive(Debug, Clone)]
    struct Seen {
        name: String,
        uid: String,
        ready: bool,
        /// Being deleted, or gone.
        deleting: bool,
        gone: bool,
    }

    /// Every change to the set's pods, in the order the watch delivered
    /// them (the store's order): an index says what happened first.
    struct PodLog {
        seen: Arc<Mutex<Vec<Seen>>>,
        task: tokio::task::JoinHandle<()>,
    }

    impl PodLog {
        async fn start(pods: &Api<Pod>) -> PodLog {
            let cfg = watcher::Config::default().labels("app=ledger");
            let mut stream = watcher::watcher(pods.clone(), cfg).boxed();
            // Past the initial list, nothing created later is missed.
            tokio::time::timeout(Duration::from_secs(5), async {
                while !matches!(stream.try_next().await, Ok(Some(watcher::Event::InitDone))) {}
            })
            .await
            .expect("the pod watch starts");
            let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
            let log = seen.clone();
            let task = tokio::spawn(async move {
                while let Ok(Some(ev)) = stream.try_next().await {
                    let (p, gone) = match ev {
                        watcher::Event::Apply(p) | watcher::Event::InitApply(p) => (p, false),
                        watcher::Event::Delete(p) => (p, true),
                        _ => continue,
                    };
                    log.lock().unwrap().push(Seen {
                        name: p.metadata.name.clone().unwrap_or_default(),
                        uid: p.metadata.uid.clone().unwrap_or_default(),
                        ready: ready(&p),
                        deleting: gone || p.metadata.deletion_timestamp.is_some(),
                        gone,
                    });
                }
            });
            PodLog { seen, task }
        }

        /// The index of the first observation that `what` holds for.
        fn first(&self, what: impl Fn(&Seen) -> bool) -> usize {
            let seen = self.seen.lock().unwrap();
            seen.iter()
                .position(what)
                .unwrap_or_else(|| panic!("not seen; the log: {seen:#?}"))
        }

        fn created(&self, name: &str) -> usize {
            self.first(|s| s.name == name)
        }

        fn ready(&self, uid: &str) -> usize {
            self.first(|s| s.uid == uid && s.ready && !s.deleting)
        }

        fn deleting(&self, uid: &str) -> usize {
            self.first(|s| s.uid == uid && s.deleting)
        }

        fn created_uid(&self, uid: &str) -> usize {
            self.first(|s| s.uid == uid)
        }

        fn gone(&self, uid: &str) -> usize {
            self.first(|s| s.uid == uid && s.gone)
        }

        fn uid_of_new(&self, name: &str, old: &[String]) -> String {
            let i = self.first(|s| s.name == name && !old.contains(&s.uid));
            self.seen.lock().unwrap()[i].uid.clone()
        }
    }

    impl Drop for PodLog {
        fn drop(&mut self) {
            self.task.abort();
        }
    }

    fn ready(p: &Pod) -> bool {
        p.status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
    }

    /// StatefulSet `ledger` whose container reads DATABASE_URL from
    /// ConfigMap `ledger-db`, key `url`.
    fn ledger_set(replicas: i32) -> StatefulSet {
        serde_json::from_value(json!({
            "metadata": {"name": "ledger"},
            "spec": {
                "replicas": replicas,
                "serviceName": "ledger",
                "selector": {"matchLabels": {"app": "ledger"}},
                "template": {
                    "metadata": {"labels": {"app": "ledger"}},
                    "spec": {"containers": [{
                        "name": "ledger",
                        "image": "cutover-lab/ledger:1",
                        "env": [{"name": "DATABASE_URL", "valueFrom": {"configMapKeyRef": {"name": "ledger-db", "key": "url"}}}],
                    }]},
                },
            },
        }))
        .unwrap()
    }

    struct Ledger {
        lab: Lab,
        client: Client,
        sets: Api<StatefulSet>,
        pods: Api<Pod>,
        cms: Api<ConfigMap>,
        log: PodLog,
    }

    /// A simulator with ConfigMap `ledger-db` (`url` = `url`), a watch on
    /// the pods, and StatefulSet `ledger` of `replicas` created.
    async fn ledger(opts: SimOptions, url: &str, replicas: i32) -> Ledger {
        let lab = lab(opts).await;
        let client = client(&lab.kubeconfig).await;
        let sets: Api<StatefulSet> = Api::namespaced(client.clone(), NS);
        let pods: Api<Pod> = Api::namespaced(client.clone(), NS);
        let cms: Api<ConfigMap> = Api::namespaced(client.clone(), NS);
        let cm = serde_json::from_value(
            json!({"metadata": {"name": "ledger-db"}, "data": {"url": url}}),
        )
        .unwrap();
        cms.create(&PostParams::default(), &cm).await.unwrap();
        let log = PodLog::start(&pods).await;
        sets.create(&PostParams::default(), &ledger_set(replicas))
            .await
            .unwrap();
        Ledger {
            lab,
            client,
            sets,
            pods,
            cms,
            log,
        }
    }

    /// Waits until the set's status shows `replicas` pods ready and updated
    /// at one revision, for its current generation.
    async fn settled(sets: &Api<StatefulSet>, replicas: i32) -> StatefulSet {
        until(
            Duration::from_secs(10),
            &format!("ledger to settle at {replicas} ready pods"),
            || async {
                let s = sets.get("ledger").await.unwrap();
                let st = s.status.clone()?;
                (st.observed_generation == s.metadata.generation
                    && st.replicas == replicas
                    && st.ready_replicas == Some(replicas)
                    && st.updated_replicas == Some(replicas)
                    && st.current_revision == st.update_revision)
                    .then_some(s)
            },
        )
        .await
    }

    /// The set's pods not being deleted, by name.
    async fn live_pods(pods: &Api<Pod>) -> Vec<Pod> {
        let mut ps: Vec<Pod> = pods
            .list(&ListParams::default().labels("app=ledger"))
            .await
            .unwrap()
            .items
            .into_iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .collect();
        ps.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
        ps
    }

    /// Waits until `n` of the set's pods are left (terminating ones count
    /// until they are gone).
    async fn pods_left(pods: &Api<Pod>, n: usize) {
        until(
            Duration::from_secs(5),
            &format!("{n} pods left"),
            || async {
                let ps = pods
                    .list(&ListParams::default().labels("app=ledger"))
                    .await
                    .unwrap();
                (ps.items.len() == n).then_some(())
            },
        )
        .await;
    }

    /// Their uids, by name.
    async fn live_uids(pods: &Api<Pod>) -> Vec<String> {
        live_pods(pods)
            .await
            .iter()
            .map(|p| p.metadata.uid.clone().unwrap())
            .collect()
    }

    fn label<'a>(p: &'a Pod, k: &str) -> &'a str {
        p.metadata.labels.as_ref().unwrap()[k].as_str()
    }

    fn db_config(p: &Pod) -> Option<&str> {
        p.metadata
            .annotations
            .as_ref()?
            .get(cutover::kube::DB_CONFIG_ANNOTATION)
            .map(String::as_str)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn pods_start_in_order_and_record_their_config() {
        let t = ledger(opts(), URL, 3).await;
        let set = settled(&t.sets, 3).await;
        let st = set.status.clone().unwrap();
        let rev = st.update_revision.clone().unwrap();
        assert!(
            rev.starts_with("ledger-") && rev.len() > "ledger-".len(),
            "{rev}"
        );
        assert_eq!(st.current_revision.as_deref(), Some(rev.as_str()));
        assert_eq!(st.current_replicas, Some(3));
        assert_eq!(st.available_replicas, Some(3));
        assert_eq!(st.collision_count, Some(0));
        assert_eq!(st.observed_generation, Some(1));
        let spec = &set.spec;
        assert_eq!(spec.pod_management_policy.as_deref(), Some("OrderedReady"));
        let strategy = spec.update_strategy.as_ref().unwrap();
        assert_eq!(strategy.type_.as_deref(), Some("RollingUpdate"));
        assert_eq!(strategy.rolling_update.as_ref().unwrap().partition, Some(0));

        let ps = live_pods(&t.pods).await;
        let names: Vec<&str> = ps
            .iter()
            .filter_map(|p| p.metadata.name.as_deref())
            .collect();
        assert_eq!(names, ["ledger-0", "ledger-1", "ledger-2"]);
        let uid = set.metadata.uid.clone().unwrap();
        for (i, p) in ps.iter().enumerate() {
            let name = p.metadata.name.as_deref().unwrap();
            assert_eq!(label(p, "app"), "ledger");
            assert_eq!(label(p, "statefulset.kubernetes.io/pod-name"), name);
            assert_eq!(label(p, "apps.kubernetes.io/pod-index"), i.to_string());
            assert_eq!(label(p, "controller-revision-hash"), rev);
            let owner = &p.metadata.owner_references.as_ref().unwrap()[0];
            assert_eq!(
                (owner.kind.as_str(), owner.name.as_str(), owner.uid.as_str()),
                ("StatefulSet", "ledger", uid.as_str())
            );
            assert_eq!(owner.controller, Some(true));
            let spec = p.spec.as_ref().unwrap();
            assert_eq!(spec.hostname.as_deref(), Some(name));
            assert_eq!(spec.subdomain.as_deref(), Some("ledger"));
            assert_eq!(db_config(p), Some(fingerprint(URL).as_str()), "{name}");
        }
        // OrderedReady: each pod is created once its predecessor is Ready.
        let uid_of = |i: usize| ps[i].metadata.uid.clone().unwrap();
        assert_eq!(t.log.created("ledger-0"), 0);
        assert!(t.log.created("ledger-1") > t.log.ready(&uid_of(0)));
        assert!(t.log.created("ledger-2") > t.log.ready(&uid_of(1)));

        // A Deployment's pod reading the same value records the same fingerprint.
        let deploys: Api<Deployment> = Api::namespaced(t.client.clone(), NS);
        let mut d = ledger_set(1).spec.template;
        d.metadata.as_mut().unwrap().labels = Some([("app".into(), "ledger-app".into())].into());
        let dep: Deployment = serde_json::from_value(json!({
            "metadata": {"name": "ledger-app"},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "ledger-app"}}, "template": d},
        }))
        .unwrap();
        deploys.create(&PostParams::default(), &dep).await.unwrap();
        let dep_fp = until(
            Duration::from_secs(5),
            "the Deployment's pod to start",
            || async {
                let ps = t
                    .pods
                    .list(&ListParams::default().labels("app=ledger-app"))
                    .await
                    .unwrap()
                    .items;
                ps.first().and_then(db_config).map(str::to_string)
            },
        )
        .await;
        assert_eq!(Some(dep_fp.as_str()), db_config(&ps[0]));

        let (ok, out) = if has_kubectl() {
            run_kubectl(&t.lab.kubeconfig, &["get", "sts"]).await
        } else {
            return;
        };
        eprintln!("$ kubectl get sts\n{out}");
        assert!(ok, "{out}");
        let lines: Vec<Vec<&str>> = out
            .lines()
            .map(|l| l.split_whitespace().collect())
            .collect();
        assert_eq!(lines[0], ["NAME", "READY", "AGE"]);
        assert_eq!(lines[1][..2], ["ledger", "3/3"]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn rollout_restart_replaces_pods_from_the_highest_ordinal() {
        if !has_kubectl() {
            eprintln!("kubectl not installed; skipping");
            return;
        }
        let t = ledger(opts(), URL, 3).await;
        let before = settled(&t.sets, 3).await;
        let old_rev = before.status.unwrap().update_revision.unwrap();
        let old = live_uids(&t.pods).await;

        t.cms
            .patch(
                "ledger-db",
                &PatchParams::default(),
                &Patch::Merge(&json!({"data": {"url": NEW_URL}})),
            )
            .await
            .unwrap();
        let kc = &t.lab.kubeconfig;
        let (ok, out) = run_kubectl(kc, &["api-resources", "--api-group=apps"]).await;
        assert!(ok, "{out}");
        let row = |name: &str| {
            out.lines()
                .find(|l| l.starts_with(&format!("{name} ")))
                .map(|l| l.split_whitespace().collect::<Vec<_>>())
        };
        assert_eq!(
            row("statefulsets").as_deref(),
            Some(&["statefulsets", "sts", "apps/v1", "true", "StatefulSet"][..]),
            "{out}"
        );
        let (ok, out) = run_kubectl(kc, &["rollout", "restart", "statefulset/ledger"]).await;
        eprintln!("$ kubectl rollout restart statefulset/ledger\n{out}");
        assert!(ok, "{out}");
        assert!(out.contains("statefulset.apps/ledger restarted"), "{out}");
        let (ok, out) = run_kubectl(
            kc,
            &["rollout", "status", "statefulset/ledger", "--timeout=30s"],
        )
        .await;
        eprintln!("$ kubectl rollout status statefulset/ledger\n{out}");
        assert!(ok, "{out}");
        assert!(
            out.trim_end()
                .lines()
                .last()
                .is_some_and(|l| l.contains("roll out complete: 3 new pods have been updated")),
            "{out}"
        );

        let set = t.sets.get("ledger").await.unwrap();
        let st = set.status.clone().unwrap();
        assert_eq!(st.observed_generation, Some(2));
        assert_eq!(st.updated_replicas, Some(3));
        assert_eq!(st.ready_replicas, Some(3));
        assert_eq!(st.current_replicas, Some(3));
        let rev = st.update_revision.clone().unwrap();
        assert_ne!(rev, old_rev);
        assert_eq!(st.current_revision.as_deref(), Some(rev.as_str()));
        let ps = live_pods(&t.pods).await;
        assert_eq!(ps.len(), 3);
        for p in &ps {
            let name = p.metadata.name.as_deref().unwrap();
            assert_eq!(label(p, "controller-revision-hash"), rev, "{name}");
            assert_eq!(db_config(p), Some(fingerprint(NEW_URL).as_str()), "{name}");
            assert!(!old.contains(p.metadata.uid.as_ref().unwrap()), "{name}");
            let ann = p.metadata.annotations.as_ref().unwrap();
            assert!(
                ann.contains_key("kubectl.kubernetes.io/restartedAt"),
                "{ann:?}"
            );
        }
        // Replaced from ledger-2 down to ledger-0, each after the one above
        // it came back Ready.
        let new: Vec<String> = (0..3)
            .map(|i| t.log.uid_of_new(&format!("ledger-{i}"), &old))
            .collect();
        let del: Vec<usize> = old.iter().map(|u| t.log.deleting(u)).collect();
        assert!(del[2] < del[1] && del[1] < del[0], "deletions at {del:?}");
        assert!(t.log.ready(&new[2]) < del[1]);
        assert!(t.log.ready(&new[1]) < del[0]);
        assert!(t.log.gone(&old[0]) < t.log.created_uid(&new[0]));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn scale_down_then_delete_and_never_write() {
        // With a database URL and a write rate, a Deployment's pods would
        // start writers (and fail to connect to port 1); these must not.
        let url = "host=127.0.0.1 port=1 dbname=app user=postgres";
        let t = ledger(
            SimOptions {
                database_url: Some(url.into()),
                writes_per_sec: 300,
                ..opts()
            },
            url,
            3,
        )
        .await;
        settled(&t.sets, 3).await;
        let bad = serde_json::from_value::<StatefulSet>(json!({
            "metadata": {"name": "bad"},
            "spec": {
                "selector": {"matchLabels": {"app": "other"}},
                "template": ledger_set(1).spec.template,
            },
        }))
        .unwrap();
        let (code, msg) = api_error(
            t.sets
                .create(&PostParams::default(), &bad)
                .await
                .unwrap_err(),
        );
        assert_eq!(code, 422);
        assert!(
            msg.contains("spec.template.metadata.labels")
                && msg.contains("`selector` does not match template `labels`"),
            "{msg}"
        );

        let old = live_uids(&t.pods).await;
        t.sets
            .patch(
                "ledger",
                &PatchParams::default(),
                &Patch::Merge(&json!({"spec": {"replicas": 1}})),
            )
            .await
            .unwrap();
        let set = settled(&t.sets, 1).await;
        assert_eq!(set.metadata.generation, Some(2));
        pods_left(&t.pods, 1).await;
        let ps = live_pods(&t.pods).await;
        assert_eq!(ps[0].metadata.uid.as_ref(), Some(&old[0]), "ledger-0 kept");
        // The highest ordinal first, the next once it is gone.
        assert!(t.log.gone(&old[2]) < t.log.deleting(&old[1]));
        assert!(db_config(&ps[0]).is_some());

        // The RBAC switch covers StatefulSets by their short name too.
        t.lab.sim.deny("delete", "sts");
        let (code, msg) = api_error(
            t.sets
                .delete("ledger", &DeleteParams::default())
                .await
                .unwrap_err(),
        );
        assert_eq!(code, 403, "{msg}");
        assert!(
            msg.contains("cannot delete resource \"statefulsets\" in API group \"apps\""),
            "{msg}"
        );
        t.lab.sim.allow("delete", "sts");
        t.sets
            .delete("ledger", &DeleteParams::default())
            .await
            .unwrap();
        pods_left(&t.pods, 0).await;
        assert!(t.sets.get_opt("ledger").await.unwrap().is_none());
        let stats = t.lab.sim.app_stats();
        assert_eq!((stats.ok, stats.failed), (0, 0), "{stats:?}");
        assert_eq!(stats.last_error, None);
    }

    fn nightly(schedule: Option<&str>) -> CronJob {
        let mut cj = json!({
            "metadata": {"name": "nightly"},
            "spec": {"jobTemplate": {
                "metadata": {"labels": {"app": "nightly"}},
                "spec": {"backoffLimit": 0, "template": {"spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "main", "image": "busybox", "command": ["sh", "-c", "echo hi"]}],
                }}},
            }},
        });
        if let Some(s) = schedule {
            cj["spec"]["schedule"] = json!(s);
        }
        serde_json::from_value(cj).unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn cronjob_is_stored_and_instantiated_by_hand() {
        let lab = lab(opts()).await;
        let c = client(&lab.kubeconfig).await;
        let cjs: Api<CronJob> = Api::namespaced(c.clone(), NS);
        let jobs: Api<Job> = Api::namespaced(c.clone(), NS);
        let (code, msg) = api_error(
            cjs.create(&PostParams::default(), &nightly(None))
                .await
                .unwrap_err(),
        );
        assert_eq!(code, 422);
        assert!(msg.contains("spec.schedule: Required value"), "{msg}");
        let created = cjs
            .create(&PostParams::default(), &nightly(Some("0 3 * * *")))
            .await
            .unwrap();
        let spec = &created.spec;
        assert_eq!(spec.concurrency_policy.as_deref(), Some("Allow"));
        assert_eq!(spec.suspend, Some(false));
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(
            jobs.list(&ListParams::default())
                .await
                .unwrap()
                .items
                .is_empty(),
            "no schedule runs"
        );
        if !has_kubectl() {
            eprintln!("kubectl not installed; skipping the rest");
            return;
        }
        let kc = &lab.kubeconfig;
        let (ok, out) = run_kubectl(kc, &["get", "cj"]).await;
        eprintln!("$ kubectl get cj\n{out}");
        assert!(ok, "{out}");
        let lines: Vec<&str> = out.lines().collect();
        // Columns are two or more spaces apart (LAST SCHEDULE has one inside).
        let cells = |l: &str| -> Vec<String> {
            l.split("  ")
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .map(str::to_string)
                .collect()
        };
        let cols = cells(lines[0]);
        assert_eq!(
            cols,
            [
                "NAME",
                "SCHEDULE",
                "TIMEZONE",
                "SUSPEND",
                "ACTIVE",
                "LAST SCHEDULE",
                "AGE"
            ]
        );
        let row = cells(lines[1]);
        assert_eq!(
            row[..6],
            ["nightly", "0 3 * * *", "<none>", "False", "0", "<none>"]
        );

        let (ok, out) =
            run_kubectl(kc, &["create", "job", "manual", "--from=cronjob/nightly"]).await;
        eprintln!("$ kubectl create job manual --from=cronjob/nightly\n{out}");
        assert!(ok, "{out}");
        assert!(out.contains("job.batch/manual created"), "{out}");
        let job = finished(&jobs, "manual", Duration::from_secs(10)).await;
        assert!(condition(&job, "Complete").is_some(), "{:?}", job.status);
        let owner = &job.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.name.as_str()),
            ("CronJob", "nightly")
        );
        assert_eq!(Some(&owner.uid), created.metadata.uid.as_ref());
        assert_eq!(owner.controller, Some(true));
        assert_eq!(
            job.metadata.annotations.as_ref().unwrap()["cronjob.kubernetes.io/instantiate"],
            "manual"
        );
        assert_eq!(job.metadata.labels.as_ref().unwrap()["app"], "nightly");
        let (ok, out) = run_kubectl(kc, &["logs", "job/manual"]).await;
        assert!(ok, "{out}");
        assert_eq!(out.trim(), "hi");
        // The CronJob saw it run and complete.
        let cj = until(Duration::from_secs(5), "lastSuccessfulTime", || async {
            let cj = cjs.get("nightly").await.unwrap();
            cj.status
                .as_ref()?
                .last_successful_time
                .is_some()
                .then_some(cj)
        })
        .await;
        let st = cj.status.unwrap();
        assert_eq!(st.active, None);
        assert_eq!(st.last_schedule_time, None);

        // Deleting the CronJob takes its Job (and the Job's pod) along.
        cjs.delete("nightly", &DeleteParams::default())
            .await
            .unwrap();
        until(Duration::from_secs(5), "the Job to go", || async {
            jobs.get_opt("manual")
                .await
                .unwrap()
                .is_none()
                .then_some(())
        })
        .await;
    }
}
