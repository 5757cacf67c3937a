//! The write freeze on real clusters (issue 12): a session open before the
//! freeze is ended; a new one that turns `default_transaction_read_only`
//! off and opens `BEGIN READ WRITE` still cannot write; reads work; the
//! rollback's unfreeze gives back exactly the privileges taken. A role the
//! freeze cannot hold against is refused with nothing changed, and a grant
//! through PUBLIC that survives the freeze is caught by the proof.

mod common;

use cutover::runtime::freeze::{freeze, unfreeze};
use cutover::session::{EventKind, Grant, Side};
use tokio::sync::mpsc;

const ROLE: &str = "app_rw";
const TABLES: [&str; 2] = ["\"public\".\"users\"", "\"public\".\"orders\""];

fn src(sql: &str) -> String {
    let pair = common::pair();
    pair.psql(&pair.source_conninfo, sql).trim().to_string()
}

/// The pair's config, its application role named.
fn freeze_config(role: &str) -> cutover::config::Config {
    let pair = common::pair();
    let text = std::fs::read_to_string(&pair.config_path).unwrap();
    let path = pair
        .config_path
        .with_file_name(format!("freeze-{role}.toml"));
    // The lab's config names its own app role: this test names another.
    let text = match text.find("app_roles = ") {
        Some(at) => {
            let end = text[at..].find('\n').map_or(text.len(), |e| at + e);
            format!("{}app_roles = [\"{role}\"]{}", &text[..at], &text[end..])
        }
        None => format!("{text}\n[freeze]\napp_roles = [\"{role}\"]\n"),
    };
    std::fs::write(&path, text).unwrap();
    cutover::config::load(&path).expect("config")
}

async fn connect_as(role: &str) -> tokio_postgres::Client {
    let pair = common::pair();
    let conninfo = pair
        .source_conninfo
        .replace("user=postgres", &format!("user={role}"));
    let (client, conn) = tokio_postgres::connect(&conninfo, tokio_postgres::NoTls)
        .await
        .expect("connect as the app role");
    tokio::spawn(conn);
    client
}

/// The role's write privileges on the two tables, as the catalog says.
fn privileges() -> String {
    src(&format!(
        "SELECT string_agg(c.relname || ':' || a.privilege_type, ' ' ORDER BY c.relname || ':' || a.privilege_type) \
         FROM pg_class c, aclexplode(c.relacl) a, pg_roles r \
         WHERE r.oid = a.grantee AND r.rolname = '{ROLE}' AND c.relname IN ('users', 'orders') \
           AND a.privilege_type IN ('INSERT','UPDATE','DELETE','TRUNCATE')"
    ))
}

fn roles() -> Vec<String> {
    vec![ROLE.to_string()]
}

fn tables() -> Vec<String> {
    TABLES.iter().map(|t| t.to_string()).collect()
}

#[tokio::test]
async fn a_freeze_holds_against_the_client_and_the_unfreeze_gives_back_what_it_took() {
    src(&format!(
        "CREATE ROLE {ROLE} LOGIN; GRANT USAGE ON SCHEMA public TO {ROLE}; \
         GRANT SELECT, INSERT, UPDATE, DELETE ON public.users, public.orders TO {ROLE}; \
         GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO {ROLE}"
    ));
    let granted = privileges();
    assert_eq!(
        granted,
        "orders:DELETE orders:INSERT orders:UPDATE users:DELETE users:INSERT users:UPDATE"
    );
    let config = freeze_config(ROLE);
    let before_freeze = connect_as(ROLE).await;
    before_freeze
        .batch_execute("UPDATE public.users SET name = name WHERE id = 1")
        .await
        .expect("writes before the freeze");

    let (tx, mut rx) = mpsc::channel(16);
    let said = freeze(1, &config, Side::Source, &roles(), &tables(), &tx)
        .await
        .expect("frozen");
    assert!(
        said.starts_with(
            "writes frozen for app_rw: 6 privileges taken on 2 tables, 1 sessions ended"
        ),
        "{said}"
    );
    let (mut grants, mut lsn) = (vec![], None);
    while let Ok(ev) = rx.try_recv() {
        match ev {
            EventKind::FreezeGrants { grants: g, .. } => grants = g,
            EventKind::WritesFrozen { lsn: l, .. } => lsn = Some(l),
            _ => {}
        }
    }
    assert_eq!(grants.len(), 6);
    assert!(grants.contains(&Grant {
        role: ROLE.into(),
        table: "public.orders".into(),
        privilege: "INSERT".into()
    }));
    assert!(lsn.is_some_and(|l| l.contains('/')));
    assert_eq!(privileges(), "", "every write privilege taken");

    // The session open before the freeze was ended.
    assert!(before_freeze.simple_query("SELECT 1").await.is_err());
    // A new one reads, and cannot write however it asks.
    let during = connect_as(ROLE).await;
    let c = &during;
    let n: i64 = c
        .query_one("SELECT count(*) FROM public.users", &[])
        .await
        .unwrap()
        .get(0);
    assert!(n > 0);
    c.batch_execute("SET default_transaction_read_only = off")
        .await
        .unwrap();
    let e = c
        .batch_execute("BEGIN READ WRITE; UPDATE public.users SET name = name WHERE id = 1; COMMIT")
        .await
        .unwrap_err();
    let msg = e
        .as_db_error()
        .map(|d| d.message().to_string())
        .unwrap_or_default();
    assert!(msg.contains("permission denied for table users"), "{msg}");
    c.batch_execute("ROLLBACK").await.unwrap();

    // The rollback's unfreeze: exactly what was taken comes back.
    let said = unfreeze(2, &config, Side::Source, &roles(), &grants, &tx)
        .await
        .expect("unfrozen");
    assert_eq!(
        said,
        "the source takes writes again: 6 privileges given back to app_rw, 1 read-only \
         session(s) ended to reconnect"
    );
    // The session opened during the freeze kept its read-only default: ended.
    assert!(during.simple_query("SELECT 1").await.is_err());
    assert_eq!(privileges(), granted);
    let c = connect_as(ROLE).await;
    c.batch_execute("UPDATE public.users SET name = name WHERE id = 1")
        .await
        .expect("writes again");
    let default: String = src(&format!(
        "SELECT coalesce(array_to_string(setconfig, ','), '') FROM pg_db_role_setting s \
         JOIN pg_roles r ON r.oid = s.setrole WHERE r.rolname = '{ROLE}'"
    ));
    assert_eq!(default, "", "the role's default is reset");

    // A grant through PUBLIC survives a freeze by the role's privileges: the
    // proof catches it, says so, and the unfreeze puts the rest back.
    src("GRANT INSERT ON public.orders TO PUBLIC");
    let err = freeze(3, &config, Side::Source, &roles(), &tables(), &tx)
        .await
        .unwrap_err();
    let msg = format!("{err:#}");
    assert!(
        msg.starts_with("NOT frozen: 1 role/table pairs can still be written")
            && msg.contains("B gives them back"),
        "{msg}"
    );
    src("REVOKE INSERT ON public.orders FROM PUBLIC");
    unfreeze(4, &config, Side::Source, &roles(), &grants, &tx)
        .await
        .unwrap();
    assert_eq!(privileges(), granted);

    // A superuser cannot be frozen by privileges: refused, nothing changed.
    let su = freeze_config("postgres");
    let err = freeze(
        5,
        &su,
        Side::Source,
        &["postgres".to_string()],
        &tables(),
        &tx,
    )
    .await
    .unwrap_err();
    let msg = format!("{err:#}");
    assert_eq!(
        msg,
        String::from(
            "a freeze by privileges cannot hold: postgres is a superuser: no privilege can be \
             taken from it; postgres owns public.orders, public.users: an owner can grant \
             itself back; nothing was changed"
        )
    );
    assert_eq!(privileges(), granted);

    // A long write transaction at freeze time. The app role's is ended with
    // its session (never acknowledged, so nothing the app was told is lost).
    let app_txn = connect_as(ROLE).await;
    app_txn
        .batch_execute("BEGIN; UPDATE public.users SET name = name || '' WHERE id = 3")
        .await
        .unwrap();
    // Another role's (a batch job as postgres) may commit after the freeze:
    // the proof names it, and what was taken is logged for the way back.
    let batch = connect_as("postgres").await;
    batch
        .batch_execute(
            "SET application_name = 'nightly-batch'; \
             CREATE TABLE IF NOT EXISTS batch_scratch (v int); \
             BEGIN; INSERT INTO batch_scratch VALUES (1)",
        )
        .await
        .unwrap();
    let err = freeze(6, &config, Side::Source, &roles(), &tables(), &tx)
        .await
        .unwrap_err();
    let msg = format!("{err:#}");
    assert!(
        msg.starts_with("NOT proven frozen: 1 session(s) hold a write transaction open")
            && msg.contains("(postgres, nightly-batch) since")
            && msg.ends_with("privileges were taken: B gives them back"),
        "{msg}"
    );
    assert!(
        app_txn.batch_execute("COMMIT").await.is_err(),
        "the app role's open write was ended with its session"
    );
    let mut taken = vec![];
    while let Ok(ev) = rx.try_recv() {
        if let EventKind::FreezeGrants { grants: g, .. } = ev {
            taken = g;
        }
    }
    assert_eq!(taken.len(), 6, "logged before the REVOKE");
    batch.batch_execute("COMMIT").await.unwrap();
    unfreeze(7, &config, Side::Source, &roles(), &taken, &tx)
        .await
        .unwrap();
    assert_eq!(privileges(), granted);
}
