//! The console through the real binary in a real terminal (tmux): what an
//! operator sees and types, including the terminal being given back on exit.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

mod common;

use common::tmux::{dsn, kubectl, psql, LabRun, Tmux, BIN};

/// The lab app's URL for the database cutover's `dsn` names: the same
/// server and database, as the app's role (cutover connects as postgres).
fn app_url(dsn: &str) -> String {
    assert!(dsn.ends_with(" user=postgres"), "{dsn}");
    format!("{} user=app", dsn.trim_end_matches(" user=postgres"))
}

/// Numbers on the screen line that names the table, with thousands separators removed.
fn numbers_on_line(screen: &str, table: &str) -> Vec<i64> {
    let line = screen
        .lines()
        .find(|l| l.contains(table))
        .unwrap_or_else(|| panic!("no line for {table} in:\n{screen}"));
    line.split(|c: char| !(c.is_ascii_digit() || c == ',' || c == '~'))
        .filter(|w| !w.is_empty() && !w.starts_with('~'))
        .filter_map(|w| w.replace(',', "").parse().ok())
        .collect()
}

fn screen_of(model: &cutover::model::Model, w: u16, h: u16) -> String {
    use ratatui::backend::TestBackend;
    let theme = cutover::ui::theme::Theme::default();
    let mut term = ratatui::Terminal::new(TestBackend::new(w, h)).unwrap();
    term.draw(|f| cutover::ui::view(f, model, &cutover::model::View::default(), &theme))
        .unwrap();
    let buf = term.backend().buffer();
    (0..h)
        .map(|y| {
            let mut line = String::new();
            let mut skip = 0;
            for x in 0..w {
                let sym = buf[(x, y)].symbol();
                if skip > 0 {
                    skip -= 1;
                    continue;
                }
                skip = unicode_width(sym).saturating_sub(1);
                line.push_str(sym);
            }
            line.trim_end().to_string()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Terminal cells a symbol takes; ratatui leaves the cell after a wide one blank.
fn unicode_width(s: &str) -> usize {
    use ratatui::text::Span;
    Span::raw(s).width()
}

/// The database URL the lab's app config holds now.
fn db_url(labdir: &Path) -> String {
    kubectl(
        labdir,
        &["get", "cm", "app-db", "-o", "jsonpath={.data.DATABASE_URL}"],
    )
}

/// The pid of the console running under a tmux pane's shell.
fn console_pid(tmux: &Tmux) -> String {
    let shell = tmux.display("#{pane_pid}");
    let out = Command::new("pgrep")
        .args(["-P", &shell, "-x", "cutover"])
        .output()
        .unwrap();
    let pid = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(!pid.is_empty(), "the console runs under the pane's shell");
    pid
}

fn session_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| rd.filter_map(|e| e.ok()).map(|e| e.path()).collect())
        .unwrap_or_default();
    files.retain(|p| p.extension().is_some_and(|e| e == "jsonl"));
    files.sort();
    files
}

#[test]
fn console_counts_goes_stale_recovers_and_restores_terminal() {
    let run = LabRun::up("cutover-tmux", "30000");
    let (labdir, sessions) = (run.dir(), run.sessions.clone());
    let source = dsn(&run.config, "source");
    let tmux = run.console("cutover-console", 200, 50);
    tmux.wait_for(
        "the row-count pane with estimates",
        Duration::from_secs(30),
        |s| s.contains("public.products") && s.contains("public.orders"),
    );
    assert_eq!(
        tmux.display("#{alternate_on}"),
        "1",
        "console runs on the alternate screen"
    );

    // Exact counts: what the console shows is what psql counts.
    tmux.keys("c");
    let screen = tmux.wait_for("exact counts", Duration::from_secs(60), |s| {
        s.contains("exact count done")
    });
    for table in ["products", "users", "orders"] {
        let expected: i64 = psql(&source, &format!("SELECT count(*) FROM public.{table}"))
            .parse()
            .unwrap();
        let shown = numbers_on_line(&screen, &format!("public.{table} "));
        assert!(
            shown.contains(&expected),
            "{table}: psql counts {expected}, screen line shows {shown:?}\n{screen}"
        );
    }

    // The target dies: the console says so, and comes back by itself.
    let target_data = labdir.join("target");
    // The target's own server binaries: it may run a newer major than the source.
    let pg_ctl = cutover::lab::read_state(&labdir)
        .unwrap()
        .expect("the lab's state")
        .target_bin()
        .pg_ctl();
    let stop = Command::new("runuser")
        .args(["-u", "postgres", "--"])
        .arg(&pg_ctl)
        .arg("-D")
        .arg(&target_data)
        .args(["stop", "-m", "immediate", "-w"])
        .output()
        .unwrap();
    assert!(
        stop.status.success(),
        "{}",
        String::from_utf8_lossy(&stop.stderr)
    );
    tmux.wait_for("target stale", Duration::from_secs(30), |s| {
        s.contains("stale since")
    });
    let start = Command::new("runuser")
        .args(["-u", "postgres", "--"])
        .arg(&pg_ctl)
        .arg("-D")
        .arg(&target_data)
        .args(["start", "-w", "-l"])
        .arg(target_data.join("postgres.log"))
        .output()
        .unwrap();
    assert!(
        start.status.success(),
        "{}",
        String::from_utf8_lossy(&start.stderr)
    );
    tmux.wait_for("target recovered", Duration::from_secs(45), |s| {
        !s.contains("stale since")
    });

    // The application side: a restart through real kubectl shows the pods
    // turning over on screen, from the old ReplicaSet to the new one.
    let screen = tmux.wait_for("the rollout pane", Duration::from_secs(30), |s| {
        s.contains("✔ rollout complete") && s.contains("● watching")
    });
    let old_pods: Vec<String> = screen
        .lines()
        .filter_map(|l| l.split_whitespace().find(|w| w.starts_with("app-")))
        .map(str::to_string)
        .collect();
    assert_eq!(old_pods.len(), 3, "three app pods listed:\n{screen}");
    let kubectl = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(labdir.join("kubeconfig"))
        .args(["rollout", "restart", "deploy/app"])
        .output()
        .expect("kubectl must be installed");
    assert!(
        kubectl.status.success(),
        "{}",
        String::from_utf8_lossy(&kubectl.stderr)
    );
    tmux.wait_for("pods of the new template", Duration::from_secs(60), |s| {
        s.contains("✔ rollout complete")
            && old_pods.iter().all(|p| !s.contains(p.as_str()))
            && s.matches("▸ app-").count() == 3
    });

    let last_live_screen = tmux.capture();
    tmux.keys("q");
    let screen = tmux.wait_for("exit", Duration::from_secs(20), |s| s.contains("EXITED:"));
    assert!(screen.contains("EXITED:0"), "{screen}");
    assert!(screen.contains("session recorded in"), "{screen}");
    assert_eq!(
        tmux.display("#{alternate_on}"),
        "0",
        "alternate screen left"
    );
    assert_eq!(tmux.display("#{cursor_flag}"), "1", "cursor shown again");

    // The log holds what was on the screen: samples, the counts, the outage.
    let files = session_files(&sessions);
    assert_eq!(files.len(), 1, "{files:?}");
    let events = cutover::session::log::read_all(&files[0]).unwrap();
    use cutover::session::EventKind;
    assert!(events
        .iter()
        .any(|e| matches!(&e.kind, EventKind::SourceSampled(s)
        if s.tables.iter().any(|t| t.table.name == "products"))));
    let expected_products: i64 = psql(&source, "SELECT count(*) FROM public.products")
        .parse()
        .unwrap();
    assert!(events.iter().any(
        |e| matches!(&e.kind, EventKind::CountProgress { table, rows, .. }
        if table.name == "products" && *rows == expected_products)
    ));
    assert!(events.iter().any(|e| matches!(
        &e.kind,
        EventKind::CollectorFailed {
            side: cutover::session::Side::Target,
            ..
        }
    )));
    // Replay needs nothing but the log: folding it reproduces, character for
    // character, the last screen the operator saw.
    let mut model = cutover::model::Model::default();
    let mut seen = Vec::new();
    for ev in &events {
        cutover::model::update(&mut model, ev);
        seen.push(screen_of(&model, 200, 50));
    }
    let live: Vec<&str> = last_live_screen.lines().map(str::trim_end).collect();
    assert!(
        seen.iter()
            .rev()
            .take(50)
            .any(|s| s.lines().map(str::trim_end).eq(live.iter().copied())),
        "no prefix of the log renders the live screen:\n{last_live_screen}\n--- last fold:\n{}",
        seen.last().unwrap()
    );
    assert!(matches!(
        events.last().map(|e| &e.kind),
        Some(EventKind::SessionEnded { .. })
    ));
}

#[test]
fn demo_at_80x24_shows_every_pane_and_tears_the_lab_down() {
    let tmp = tempfile::Builder::new()
        .prefix("cutover-demo")
        .tempdir()
        .unwrap();
    let sessions = tmp.path().join("sessions");
    let tmux = Tmux::start(
        "cutover-demo",
        80,
        24,
        &format!(
            "TMPDIR={} {BIN} demo --rows 20000 --load-rate 20 --session-dir {}",
            tmp.path().display(),
            sessions.display()
        ),
    );
    let screen = tmux.wait_for("the console", Duration::from_secs(90), |s| {
        s.contains("public.orders") && s.contains("q quit")
    });
    assert!(screen.contains("DEMO"), "{screen}");
    tmux.wait_for("the app's pods at 80x24", Duration::from_secs(30), |s| {
        s.contains("app 3/3 ready")
    });
    assert!(
        screen.contains("No replication slot"),
        "before replication the lag pane says so:\n{screen}"
    );
    let lab_dirs = || -> Vec<String> {
        std::fs::read_dir(tmp.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("cutover-demo-"))
            .collect()
    };
    // The lab, and beside it the folder a lab's own consoles would log to
    // (empty: the demo logs to --session-dir; `lab down` removes it).
    let mut dirs = lab_dirs();
    dirs.sort();
    assert_eq!(dirs.len(), 2, "the demo's lab lives under TMPDIR: {dirs:?}");
    assert_eq!(dirs[1], format!("{}-sessions", dirs[0]));
    tmux.keys("?");
    tmux.wait_for("help overlay", Duration::from_secs(5), |s| {
        s.contains("Help")
    });
    tmux.keys("Escape");
    tmux.wait_for("help closed", Duration::from_secs(5), |s| {
        !s.contains("Help")
    });

    // A SIGTERM (a closing SSH session's supervisor, a `kill`) ends the session
    // cleanly: terminal restored, session closed in the log, lab torn down.
    let pid = console_pid(&tmux);
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let screen = tmux.wait_for("exit", Duration::from_secs(60), |s| s.contains("EXITED:"));
    assert!(screen.contains("EXITED:0"), "{screen}");
    assert_eq!(
        tmux.display("#{alternate_on}"),
        "0",
        "alternate screen left"
    );
    assert!(
        lab_dirs().is_empty(),
        "demo lab torn down: {:?}",
        lab_dirs()
    );
    let files = session_files(&sessions);
    assert_eq!(files.len(), 1);
    let events = cutover::session::log::read_all(&files[0]).unwrap();
    assert!(
        matches!(events.last().map(|e| &e.kind),
            Some(cutover::session::EventKind::SessionEnded { reason }) if reason == "SIGTERM"),
        "{:?}",
        events.last()
    );
}

/// The application cutover through the console's own keys: the switch and the
/// restart each show what they will send and their guards, run only once the
/// object's name is typed, and move the app pods to the target; the switch
/// back restores the old value. The value itself never reaches the log.
#[test]
fn console_switches_restarts_and_switches_back_through_keys() {
    let run = LabRun::up("cutover-tmux-switch", "20000");
    let (labdir, sessions) = (run.dir(), run.sessions.clone());
    let (source, target) = (dsn(&run.config, "source"), dsn(&run.config, "target"));
    // The app's URLs: what the ConfigMap holds and the switch writes.
    let (app_source, app_target) = (app_url(&source), app_url(&target));
    let switch_to = std::fs::read_to_string(labdir.join("target-database-url")).unwrap();
    assert_eq!(
        switch_to.trim(),
        app_target,
        "the lab's switch value is the target, as the app connects to it"
    );
    // Replication by hand, as the lab's README says: schema, publication, subscription.
    cutover::lab::copy_schema(&cutover::lab::PgBin::find().unwrap(), &source, &target).unwrap();
    psql(&source, "ALTER TABLE events REPLICA IDENTITY FULL");
    psql(&source, "CREATE PUBLICATION cutover_pub FOR ALL TABLES");
    psql(
        &target,
        &format!("CREATE SUBSCRIPTION cutover_sub CONNECTION '{source}' PUBLICATION cutover_pub"),
    );
    let kubectl = |args: &[&str]| kubectl(&labdir, args);
    let db_url = || db_url(&labdir);
    assert_eq!(db_url(), app_source);

    let tmux = run.console("cutover-switch", 200, 50);
    tmux.wait_for(
        "the subscription's slot and the pods watched",
        Duration::from_secs(60),
        |s| s.contains("✔ rollout complete") && s.contains("cutover_sub"),
    );

    // Continuous verification while the app writes: the quiet tables verify,
    // the table being written shows its rows in flight as pending, never as
    // differing. V is the verify-live checkpoint: its dialog waits for the
    // initial sync, then Enter starts it.
    tmux.keys("V");
    tmux.wait_for(
        "the verify-live dialog, the sync complete",
        Duration::from_secs(120),
        |s| s.contains("Verify while live") && s.contains("✔ Initial sync complete"),
    );
    tmux.keys("Enter");
    let screen = tmux.wait_for(
        "quiet tables verified live",
        Duration::from_secs(120),
        |s| {
            ["public.users ", "public.orders ", "public.products "]
                .iter()
                .all(|t| {
                    s.lines()
                        .any(|l| l.contains(t) && l.contains("✔ checksum verified"))
                })
        },
    );
    assert!(screen.contains("continuous verify"), "{screen}");
    assert!(!screen.contains("rows differ"), "{screen}");
    let writes = screen
        .lines()
        .find(|l| l.contains("public.app_writes "))
        .unwrap_or_else(|| panic!("no app_writes row:\n{screen}"));
    assert!(
        !writes.contains("differ") && !writes.contains("MISMATCH"),
        "{writes}"
    );
    tmux.keys("x");
    tmux.wait_for("continuous run cancelled", Duration::from_secs(30), |s| {
        s.contains("continuous verify cancelled")
    });

    // The switch: the dialog shows the patch by fingerprint and every guard.
    tmux.keys("S");
    let fp_new = cutover::kube::fingerprint(&app_target);
    let fp_old = cutover::kube::fingerprint(&app_source);
    let dialog = tmux.wait_for(
        "the switch dialog with guards",
        Duration::from_secs(60),
        |s| {
            s.contains("Switch database config")
                && s.contains("✔ Access review")
                && s.contains("✔ Replication caught up")
                && s.contains("Type app-db to confirm")
        },
    );
    assert!(dialog.contains(&format!("<sha256:{fp_new}>")), "{dialog}");
    assert!(
        dialog.contains("PATCH configmap/app-db in cutover-lab"),
        "{dialog}"
    );
    assert!(
        !dialog.contains(&app_target),
        "the value is never shown:\n{dialog}"
    );
    // A wrong name and Enter: nothing happens.
    tmux.keys("ap");
    tmux.keys("Enter");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        db_url(),
        app_source,
        "nothing runs before the name is typed"
    );
    tmux.keys("p-db");
    tmux.keys("Enter");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        db_url(),
        app_source,
        "the freeze guard fails (no freeze checkpoint yet): nothing runs without an override"
    );
    tmux.wait_for("the override hint", Duration::from_secs(5), |s| {
        s.contains("✖ Writes frozen on the source") && s.contains("Tab: type a reason")
    });
    tmux.keys("Tab");
    tmux.keys("lab rehearsal, app paused");
    tmux.wait_for("the reason typed", Duration::from_secs(5), |s| {
        s.contains("Override reason (logged): lab rehearsal, app paused")
            && s.contains("Enter: OVERRIDE the failing guards")
    });
    tmux.keys("Enter");
    tmux.wait_for("switch done", Duration::from_secs(20), |s| {
        s.contains("Switch database config · ✔ done")
    });
    assert_eq!(db_url(), app_target);

    // The restart: pods turn over onto the new config.
    tmux.keys("R");
    tmux.wait_for("the restart dialog", Duration::from_secs(20), |s| {
        s.contains("Rollout-restart workloads") && s.contains("Type app to confirm")
    });
    tmux.keys("app");
    tmux.keys("Enter");
    tmux.wait_for("restart done", Duration::from_secs(60), |s| {
        s.contains("Rollout-restart workloads · ✔ done") && s.contains("rollout of app complete")
    });
    let pods = kubectl(&[
        "get",
        "pods",
        "-o",
        "jsonpath={range .items[*]}{.metadata.annotations.cutover\\.dev/db-config}{\"\\n\"}{end}",
    ]);
    let fps: Vec<&str> = pods.lines().filter(|l| !l.is_empty()).collect();
    assert_eq!(
        fps,
        vec![fp_new.as_str(); 3],
        "every pod started on the target"
    );

    // The way back: old value restored, pods restarted onto it.
    tmux.keys("B");
    tmux.wait_for("the switch-back dialog", Duration::from_secs(20), |s| {
        s.contains("Switch back and restart") && s.contains("✔ Something to undo")
    });
    tmux.keys("app-db");
    // The restarted pods wrote to the target: going back strands those rows
    // (no reverse replication yet), and the dialog counts them.
    tmux.wait_for("the stranded writes", Duration::from_secs(20), |s| {
        s.contains("✖ No writes left only on the target")
            && s.contains("rows written on the target since the switch")
    });
    tmux.keys("Enter");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(db_url(), app_target, "nothing runs without an override");
    tmux.keys("Tab");
    tmux.keys("lab rehearsal, strays accepted");
    tmux.keys("Enter");
    tmux.wait_for("switch back done", Duration::from_secs(60), |s| {
        s.contains("Switch back and restart · ✔ done")
    });
    assert_eq!(db_url(), app_source);

    tmux.keys("q");
    let screen = tmux.wait_for("exit", Duration::from_secs(20), |s| s.contains("EXITED:"));
    assert!(screen.contains("EXITED:0"), "{screen}");

    let files = session_files(&sessions);
    let text = std::fs::read_to_string(&files[0]).unwrap();
    assert!(
        !text.contains(&app_target),
        "the target URL is not in the log"
    );
    let events = cutover::session::log::read_all(&files[0]).unwrap();
    use cutover::runbook::CheckpointId;
    use cutover::session::EventKind;
    let finished: Vec<(bool, Option<String>)> = events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::RunFinished { ok, switched, .. } => {
                Some((*ok, switched.as_ref().map(|s| s.new_fingerprint.clone())))
            }
            _ => None,
        })
        .collect();
    assert_eq!(
        finished,
        vec![
            (true, Some(fp_new.clone())),
            (true, None),
            (true, Some(fp_old.clone()))
        ]
    );
    // The log alone says which action ran: the model folded from it agrees.
    let mut model = cutover::model::Model::default();
    for ev in &events {
        cutover::model::update(&mut model, ev);
    }
    let runs = &model.actions.history;
    let ids: Vec<CheckpointId> = runs.iter().map(|r| r.checkpoint).collect();
    assert_eq!(
        ids,
        [
            CheckpointId::VerifyLive,
            CheckpointId::SwitchConfig,
            CheckpointId::RolloutRestart,
            CheckpointId::Rollback
        ]
    );
    // What each run's executor says it ran is the plan its dialog showed.
    for r in runs {
        let ran: Vec<_> = r.steps.iter().map(|s| s.step.clone()).collect();
        assert_eq!(ran, r.plan.steps, "{:?}", r.checkpoint);
    }
    let (labels, reason) = runs[1]
        .overridden
        .clone()
        .expect("the switch was overridden");
    // The live verification was cancelled before every table was verified
    // once (or finished, when the lab is quick): either way the freeze guard.
    assert!(
        labels.ends_with(&[
            "Writes frozen on the source".to_string(),
            "Target caught up after the freeze".to_string(),
            "Final check in the window".to_string()
        ]),
        "{labels:?}"
    );
    assert_eq!(reason, "lab rehearsal, app paused");
}

/// PREPARE from the keys, on the lab (source 15 → target 18 where the lab
/// has both): schema copy, publication, subscription, initial sync — each
/// shown as done, each a no-op that says so when run again.
#[test]
fn prepare_runs_from_its_keys_and_again_is_a_no_op() {
    let lab = LabRun::up("cutover-prepare", "2000");
    let source = dsn(&lab.config, "source");
    let target = dsn(&lab.config, "target");
    let t = lab.console("prepare", 200, 50);
    t.wait_for("both sides sampled", Duration::from_secs(60), |s| {
        s.matches("● up").count() >= 2 && s.contains("✖ missing on target")
    });
    let run = |key: &str, title: &str, done: &str| {
        t.keys(key);
        t.wait_for(
            &format!("the {title} dialog"),
            Duration::from_secs(20),
            |s| s.contains(title) && s.contains("Enter: run it now"),
        );
        t.keys("Enter");
        t.wait_for(&format!("{title} done"), Duration::from_secs(120), |s| {
            // The run pane's title, and what the step said.
            s.contains(&format!("{title} · ✔ done")) && s.contains(done)
        })
    };
    // The preflight on a fresh lab: the schema is missing on the target and
    // events has no key; both are named.
    t.keys("F");
    t.wait_for("the preflight dialog", Duration::from_secs(20), |s| {
        s.contains("Preflight checks") && s.contains("Enter: run it now")
    });
    t.keys("Enter");
    let failed = t.wait_for("the preflight's findings", Duration::from_secs(60), |s| {
        s.contains("Preflight checks · ✖ failed")
    });
    assert!(failed.contains("checks fail"), "{failed}");
    run("D", "Copy schema to target", "schema copied to the target");
    t.wait_for("the tables on the target", Duration::from_secs(20), |s| {
        !s.contains("✖ missing on target")
    });

    // events has no primary key: the publication's guard names the fix.
    t.keys("P");
    let dialog = t.wait_for("the publication guard", Duration::from_secs(20), |s| {
        // The dialog's guard line (the runbook pane says it too, with a colon).
        s.contains("Will run:") && s.contains("✖ Every table has a key or a replica identity —")
    });
    // The dialog wraps long guard lines: read its text as one paragraph.
    // The dialog's inside starts one column right of the border left of "Will run:".
    let col = dialog
        .lines()
        .find_map(|l| {
            let chars: Vec<char> = l.chars().collect();
            let at = l.find("Will run:")?;
            Some(l[..at].chars().count().min(chars.len()))
        })
        .expect("the dialog");
    let text: String = dialog
        .lines()
        .filter_map(|l| {
            let inside: String = l.chars().skip(col).collect();
            inside.split('│').next().map(|p| p.trim_end().to_string())
        })
        .collect::<Vec<_>>()
        .join(" ");
    assert!(
        text.contains("ALTER TABLE public.events REPLICA IDENTITY FULL;"),
        "{dialog}"
    );
    t.keys("Escape");
    psql(&source, "ALTER TABLE public.events REPLICA IDENTITY FULL");
    std::thread::sleep(Duration::from_secs(2));
    run(
        "P",
        "Create publication",
        "CREATE PUBLICATION \"cutover_pub\" on the source",
    );
    run(
        "U",
        "Create subscription",
        "created subscription cutover_sub",
    );
    run(
        "W",
        "Wait for initial sync",
        // Done by the time W is pressed on a small lab, or waited for.
        "all 7 tables",
    );

    // Everything in place: the preflight passes now.
    run("F", "Preflight checks", "checks pass");

    // Again: nothing to do, and the screen says so.
    run(
        "P",
        "Create publication",
        "already done: publication cutover_pub exists",
    );
    run(
        "D",
        "Copy schema to target",
        "already done: the target has every table",
    );

    let states = psql(
        &target,
        "SELECT string_agg(DISTINCT srsubstate::text, '') FROM pg_subscription_rel",
    );
    assert_eq!(states, "r");
    let users = |c: &str| psql(c, "SELECT count(*) FROM public.users");
    assert_eq!(users(&source), users(&target));
    t.keys("q");
    let screen = t.wait_for("exit", Duration::from_secs(20), |s| s.contains("EXITED:"));
    assert!(screen.contains("EXITED:0"), "{screen}");
}

/// A console killed with SIGKILL right after a switch, started again with
/// `--resume` on the same session: the rollback still knows the value to
/// restore, from the owner-only file beside the log, checked by
/// fingerprint; the log never holds the value.
#[test]
fn a_console_killed_after_a_switch_resumes_and_rolls_back() {
    let run = LabRun::up("cutover-tmux-resume", "2000");
    let (labdir, sessions) = (run.dir(), run.sessions.clone());
    // The app's URLs: what the ConfigMap holds and the switch writes.
    let (source, target) = (
        app_url(&dsn(&run.config, "source")),
        app_url(&dsn(&run.config, "target")),
    );
    assert_eq!(db_url(&labdir), source);
    let fp_new = cutover::kube::fingerprint(&target);
    let fp_old = cutover::kube::fingerprint(&source);

    let tmux = run.console("cutover-resume", 200, 50);
    tmux.wait_for("the pods watched", Duration::from_secs(60), |s| {
        s.contains("✔ rollout complete")
    });
    tmux.keys("S");
    tmux.wait_for("the switch dialog", Duration::from_secs(60), |s| {
        s.contains("Switch database config")
            && s.contains("✔ Access review")
            && s.contains(&format!("<sha256:{fp_new}>"))
            && s.contains("Type app-db to confirm")
    });
    // No replication on this lab: every data guard fails, so override them.
    tmux.keys("app-db");
    tmux.keys("Tab");
    tmux.keys("lab rehearsal of a crash");
    tmux.wait_for("the reason typed", Duration::from_secs(5), |s| {
        s.contains("Enter: OVERRIDE the failing guards")
    });
    tmux.keys("Enter");
    tmux.wait_for("switch done", Duration::from_secs(30), |s| {
        s.contains("Run ─ Switch database config · ✔ done")
    });
    assert_eq!(db_url(&labdir), target);

    let pid = console_pid(&tmux);
    assert!(Command::new("kill")
        .args(["-KILL", &pid])
        .status()
        .unwrap()
        .success());
    tmux.wait_for("the console gone", Duration::from_secs(10), |s| {
        s.contains("EXITED:137")
    });
    let files = session_files(&sessions);
    assert_eq!(files.len(), 1, "{files:?}");
    let log = &files[0];
    let kept = cutover::session::rollback::path_for(log);
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&kept).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "{} is owner-only", kept.display());
    let record: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&kept).unwrap()).unwrap();
    assert_eq!(record["previous"], source.as_str());
    assert_eq!(record["previous_fingerprint"], fp_old.as_str());
    let text = std::fs::read_to_string(log).unwrap();
    assert!(
        !text.contains(&source),
        "the replaced value is not in the log"
    );
    assert!(!text.contains(&target), "the new value is not in the log");
    let before = cutover::session::log::read_all(log).unwrap();

    // Started again on the same session: B restores the value the file kept.
    let resumed = Tmux::start(
        "cutover-resumed",
        200,
        50,
        &format!(
            "{BIN} -c {} --resume {}",
            run.config.display(),
            log.display()
        ),
    );
    resumed.wait_for("the pods watched again", Duration::from_secs(60), |s| {
        s.contains("✔ rollout complete")
    });
    resumed.keys("B");
    resumed.wait_for("the switch-back dialog", Duration::from_secs(30), |s| {
        s.contains("Switch back and restart")
            && s.contains("✔ Something to undo")
            && s.contains("✔ Access review")
            && s.contains("Type app-db to confirm")
    });
    resumed.keys("app-db");
    // Replication goes on into the target (no freeze in this test): its
    // writes since the switch count as stranded, so the way back is
    // overridden with a reason (when they are none, the reason is unused).
    resumed.keys("Tab");
    resumed.keys("rehearsal after a crash");
    resumed.keys("Enter");
    resumed.wait_for("switch back done", Duration::from_secs(60), |s| {
        s.contains("Run ─ Switch back and restart · ✔ done")
    });
    assert_eq!(db_url(&labdir), source);
    assert!(!kept.exists(), "nothing left to undo: the file is gone");
    resumed.keys("q");
    let screen = resumed.wait_for("exit", Duration::from_secs(20), |s| s.contains("EXITED:"));
    assert!(screen.contains("EXITED:0"), "{screen}");
    assert!(
        screen.contains(&format!("resumed session {}", log.display())),
        "{screen}"
    );

    // One session, numbered on from where the killed console stopped.
    assert_eq!(session_files(&sessions), files);
    let text = std::fs::read_to_string(log).unwrap();
    assert!(!text.contains(&source) && !text.contains(&target));
    let events = cutover::session::log::read_all(log).unwrap();
    assert!(events.iter().zip(1..).all(|(e, n)| e.seq == n));
    use cutover::session::EventKind;
    assert!(matches!(
        &events[before.len()].kind,
        EventKind::SessionResumed { previous_last_seq, .. }
            if *previous_last_seq == before.last().unwrap().seq
    ));
    let restored = events.iter().find_map(|e| match &e.kind {
        EventKind::RunFinished {
            ok: true,
            switched: Some(s),
            ..
        } if s.new_fingerprint == fp_old => Some(s.clone()),
        _ => None,
    });
    assert_eq!(
        restored.map(|s| s.previous_fingerprint),
        Some(Some(fp_new)),
        "the rollback, recorded by fingerprint"
    );
}
