//! The dump-and-restore runbook through the real binary on the lab (source
//! 15 → target 18 where the lab has both), the app pods writing: freeze,
//! `pg_dump | pg_restore` with parallel jobs, verification, switch, rollout,
//! the app on the target. Checked from outside: every table's count and
//! checksum equal, the sequences carried, every write the app acknowledged
//! in the database it points at.

mod common;

use common::tmux::{audit, dsn, psql, LabRun};

const TABLES: &[&str] = &[
    "users",
    "products",
    "orders",
    "order_items",
    "events",
    "audit_log",
];

/// `count(*)` and an order-independent checksum of a table's rows.
fn fingerprint(conninfo: &str, table: &str) -> String {
    psql(
        conninfo,
        &format!("SELECT count(*) || ':' || coalesce(sum(hashtext(t::text)::bigint), 0) FROM public.{table} t"),
    )
}

fn sequences(conninfo: &str) -> Vec<(String, String)> {
    psql(
        conninfo,
        "SELECT schemaname || '.' || sequencename || '=' || coalesce(last_value::text, 'null') \
         FROM pg_sequences ORDER BY 1",
    )
    .lines()
    .map(|l| {
        let (name, value) = l.split_once('=').unwrap();
        (name.to_string(), value.to_string())
    })
    .collect()
}

#[test]
fn the_dump_restore_runbook_copies_everything_in_the_freeze_and_loses_no_write() {
    let lab_run = LabRun::up("cutover-dump", "5000");
    let labdir = lab_run.config.parent().unwrap().to_path_buf();
    let source = dsn(&lab_run.config, "source");
    let target = dsn(&lab_run.config, "target");
    // The new instance is set up beforehand, as the story's Terraform did:
    // the app's role there gets its privileges on whatever the restore
    // (run as postgres) creates.
    psql(
        &target,
        "ALTER DEFAULT PRIVILEGES FOR ROLE postgres IN SCHEMA public \
           GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO app; \
         ALTER DEFAULT PRIVILEGES FOR ROLE postgres IN SCHEMA public \
           GRANT USAGE, SELECT, UPDATE ON SEQUENCES TO app",
    );
    let config = std::fs::read_to_string(&lab_run.config).unwrap();
    std::fs::write(
        &lab_run.config,
        format!("{config}\n[runbook]\nvariant = \"dump-restore\"\ndump_jobs = 2\n"),
    )
    .unwrap();
    let script = |keys: &str| lab_run.script(keys);
    // A checkpoint of the other runbook is refused, with nothing run.
    let out = script("D");
    assert!(!out.status.success());
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("Copy schema to target is not a checkpoint of the dump-restore runbook"),
        "{said}"
    );

    let out = script("F Z Y C S R T");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // The source stays frozen (it is the way back): what it holds is what
    // the target got, table by table; the app writes to the target since.
    for table in TABLES {
        assert_eq!(
            fingerprint(&source, table),
            fingerprint(&target, table),
            "{table}"
        );
    }
    // Every row the source has of the app's own writes is on the target.
    let ids = psql(
        &source,
        "SELECT coalesce(string_agg(quote_literal(id::text), ','), '') FROM public.app_writes",
    );
    let on_source = psql(&source, "SELECT count(*) FROM public.app_writes");
    assert_ne!(on_source, "0");
    assert_eq!(
        psql(
            &target,
            &format!("SELECT count(*) FROM public.app_writes WHERE id::text IN ({ids})")
        ),
        on_source
    );
    // The sequences came with the dump: the app's own moved on since.
    let (s, t) = (sequences(&source), sequences(&target));
    assert_eq!(s.len(), t.len(), "{s:?} {t:?}");
    for ((name, sv), (tname, tv)) in s.iter().zip(&t) {
        assert_eq!(name, tname);
        if name.contains("app_writes") {
            assert!(
                tv.parse::<i64>().unwrap() >= sv.parse::<i64>().unwrap(),
                "{name}: {sv} {tv}"
            );
        } else {
            assert_eq!(sv, tv, "{name}");
        }
    }
    audit(&labdir);
    // The log says what was copied, and its progress went to the log; the
    // dump directory is gone.
    let log = std::fs::read_dir(&lab_run.sessions)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .max()
        .unwrap();
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains(r#""step":"dump_restore","jobs":2"#), "{text}");
    assert!(text.contains(r#""type":"copy_progress""#));
    assert!(text.contains("restored in"), "{text}");
    let left: Vec<_> = std::fs::read_dir(&lab_run.sessions)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

/// A copy that cannot succeed. A sequence of the same name left on the
/// target by an earlier attempt: refused before the dump, naming it. An
/// index of the same name (not a relation the check compares): the
/// restore fails, naming pg_restore's error. Either way the freeze stays,
/// no dump is left behind, and the way back gives the writes back.
#[test]
fn a_failed_restore_keeps_the_freeze_and_says_why() {
    let lab_run = LabRun::up("cutover-dump-fail", "2000");
    let source = dsn(&lab_run.config, "source");
    let target = dsn(&lab_run.config, "target");
    psql(&target, "CREATE SEQUENCE public.users_id_seq");
    psql(
        &target,
        "CREATE TABLE public.leftover (x int); CREATE INDEX users_pkey ON public.leftover (x)",
    );
    let config = std::fs::read_to_string(&lab_run.config).unwrap();
    std::fs::write(
        &lab_run.config,
        format!("{config}\n[runbook]\nvariant = \"dump-restore\"\n"),
    )
    .unwrap();
    let out = lab_run.script("F Z Y");
    assert!(!out.status.success());
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("nothing copied: the target already has 1 of the relations")
            && said.contains("public.users_id_seq (sequence)"),
        "{said}"
    );
    psql(&target, "DROP SEQUENCE public.users_id_seq");
    let log = std::fs::read_dir(&lab_run.sessions)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .unwrap();
    let out = lab_run
        .script_command("Y")
        .arg("--resume")
        .arg(&log)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("Dump and restore into the target failed")
            && said.contains("pg_restore failed")
            && said.contains("users_pkey"),
        "{said}"
    );
    // Still frozen: the app's role cannot write on the source.
    assert_eq!(
        psql(
            &source,
            "SELECT has_table_privilege('app', 'public.app_writes', 'INSERT')"
        ),
        "f"
    );
    let dirs: Vec<_> = std::fs::read_dir(&lab_run.sessions)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    assert!(dirs.is_empty(), "{dirs:?}");
    // The way back, on the same session, gives the source its writes back.
    let out = lab_run
        .script_command("B")
        .arg("--resume")
        .arg(&log)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        psql(
            &source,
            "SELECT has_table_privilege('app', 'public.app_writes', 'INSERT')"
        ),
        "t"
    );
}
