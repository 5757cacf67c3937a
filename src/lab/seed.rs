//! Schema and data for the lab's source database.
//!
//! All rows are generated server-side with `generate_series` so a million rows
//! take seconds, not minutes. Tables are filled before their keys and foreign
//! keys exist: building an index once and validating a foreign key with one
//! join is far cheaper than maintaining them row by row.
//!
//! The data is deliberately awkward for a migration: multi-byte and combining
//! unicode, right-to-left text, emoji ZWJ sequences, numerics with many digits,
//! NaN floats, timestamps entered in many time zones, jsonb, bytea with NUL
//! bytes, NULLs in every nullable column, and one table (`events`) without a
//! primary key or replica identity, which logical replication cannot UPDATE or
//! DELETE through and which a preflight check must flag.

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use tokio_postgres::{Client, NoTls};

/// Database the lab creates on both clusters.
pub const SEED_DB: &str = "app";

/// Row counts per table for a requested total. Every count is exact: seeding
/// inserts precisely these numbers of rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeedPlan {
    pub users: u64,
    pub products: u64,
    pub orders: u64,
    pub order_items: u64,
    pub events: u64,
    pub audit_log: u64,
}

impl SeedPlan {
    /// Splits `total` across the tables (10% users, 1% products, 25% orders,
    /// 40% order items, 15% events, the rest audit log). Tiny totals are
    /// rounded up so every table has a few rows.
    pub fn for_rows(total: u64) -> SeedPlan {
        let pct = |p: u64| total * p / 100;
        let users = pct(10).max(10);
        let products = pct(1).max(10);
        let orders = pct(25).max(10);
        let order_items = pct(40).max(10);
        let events = pct(15).max(10);
        let used = users + products + orders + order_items + events;
        let audit_log = total.saturating_sub(used).max(10);
        SeedPlan {
            users,
            products,
            orders,
            order_items,
            events,
            audit_log,
        }
    }

    pub fn total(&self) -> u64 {
        self.tables().iter().map(|(_, n)| n).sum()
    }

    /// (table name, row count) for every seeded table, parents first.
    pub fn tables(&self) -> [(&'static str, u64); 6] {
        [
            ("users", self.users),
            ("products", self.products),
            ("orders", self.orders),
            ("order_items", self.order_items),
            ("events", self.events),
            ("audit_log", self.audit_log),
        ]
    }
}

/// What seeding did and how long it took.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SeedReport {
    pub plan: SeedPlan,
    #[serde(with = "duration_ms")]
    pub elapsed: Duration,
}

mod duration_ms {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;
    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_millis() as u64)
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_millis(u64::deserialize(d)?))
    }
}

/// Connects with `conninfo` and drives the connection on the current runtime.
pub async fn connect(conninfo: &str) -> Result<Client> {
    let (client, conn) = tokio_postgres::connect(conninfo, NoTls)
        .await
        .with_context(|| format!("connecting to {conninfo}"))?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!("lab connection closed: {e}");
        }
    });
    Ok(client)
}

/// Creates database `db` via the maintenance database named in
/// `admin_conninfo`. Fails if it already exists: seeding never reuses data.
pub async fn create_database(admin_conninfo: &str, db: &str) -> Result<()> {
    let c = connect(admin_conninfo).await?;
    let exists = c
        .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&db])
        .await?
        .is_some();
    if exists {
        bail!("database {db:?} already exists ({admin_conninfo}); refusing to reseed it");
    }
    // Template0 + explicit encoding so the database is UTF8 whatever the
    // cluster's template1 says.
    c.batch_execute(&format!(
        "CREATE DATABASE \"{}\" TEMPLATE template0 ENCODING 'UTF8'",
        db.replace('"', "\"\"")
    ))
    .await
    .with_context(|| format!("CREATE DATABASE {db}"))?;
    Ok(())
}

/// The privileges the lab's app role gets on the source's tables and
/// sequences (the tables stay the admin's: the write freeze revokes these).
fn app_grants(role: &str) -> String {
    format!(
        "GRANT USAGE ON SCHEMA public TO {role}; \
         GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {role}; \
         GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {role}"
    )
}

async fn role_exists(c: &tokio_postgres::Client, role: &str) -> Result<bool> {
    Ok(c.query_opt(
        "SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = $1",
        &[&role],
    )
    .await
    .with_context(|| format!("looking up role {role}"))?
    .is_some())
}

/// Creates the app's role ([`super::APP_ROLE`]: LOGIN, no superuser, no
/// CREATEDB/CREATEROLE/REPLICATION; loopback trusts it, so no password) on
/// the cluster `admin_conninfo` reaches, unless it exists. Roles are per
/// cluster, so each side needs its own. Returns whether it created it.
pub async fn create_app_role(admin_conninfo: &str) -> Result<bool> {
    let c = connect(admin_conninfo).await?;
    if role_exists(&c, super::APP_ROLE).await? {
        return Ok(false);
    }
    c.batch_execute(&format!(
        "CREATE ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION",
        super::APP_ROLE
    ))
    .await
    .with_context(|| format!("CREATE ROLE {} ({admin_conninfo})", super::APP_ROLE))?;
    Ok(true)
}

/// The copy Job's role ([`super::COPY_ROLE`]): a superuser (it reads every
/// table of the source and makes them on the target) with `password`, the
/// only role the lab's clusters ask a password of.
pub async fn ensure_copy_role(admin_conninfo: &str, password: &str) -> Result<()> {
    let c = connect(admin_conninfo).await?;
    let exists = role_exists(&c, super::COPY_ROLE).await?;
    let verb = if exists { "ALTER" } else { "CREATE" };
    // The password is random alphanumerics: no quoting to get wrong.
    c.batch_execute(&format!(
        "SET password_encryption = 'scram-sha-256'; \
         {verb} ROLE {} LOGIN SUPERUSER PASSWORD '{password}'",
        super::COPY_ROLE
    ))
    .await
    .with_context(|| format!("{verb} ROLE {}", super::COPY_ROLE))
}

/// Grants the app's role what the app needs on every table and sequence of
/// `public` in the database `conninfo` names.
pub async fn grant_app(conninfo: &str) -> Result<()> {
    let c = connect(conninfo).await?;
    c.batch_execute(&app_grants(super::APP_ROLE))
        .await
        .with_context(|| format!("granting {} its privileges ({conninfo})", super::APP_ROLE))
}

/// Target side: the empty database gets only the extension; the runbook copies
/// the schema later.
pub async fn prepare_target(conninfo: &str) -> Result<()> {
    let c = connect(conninfo).await?;
    c.batch_execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        .await
        .context("target: CREATE EXTENSION pg_stat_statements")?;
    Ok(())
}

/// Creates the schema in the (empty) database at `conninfo` and fills it
/// according to `plan`.
pub async fn seed_source(conninfo: &str, plan: &SeedPlan) -> Result<SeedReport> {
    let started = Instant::now();
    let c = connect(conninfo).await?;
    c.batch_execute("SET synchronous_commit = off; SET maintenance_work_mem = '256MB'")
        .await?;
    c.batch_execute(SCHEMA).await.context("creating schema")?;
    // The app's own table, made here by the admin so that it is part of the
    // schema a cutover copies and owned like the rest (the app may not create
    // tables, and must own none, or the write freeze could not hold).
    c.batch_execute(super::kube_sim::app::APP_WRITES_DDL)
        .await
        .context("creating app_writes")?;

    // Parents first; the counts are passed as parameters so the SQL is
    // static and the plan is the single source of truth for row counts.
    let steps: [(&str, &str, u64); 6] = [
        ("users", FILL_USERS, plan.users),
        ("products", FILL_PRODUCTS, plan.products),
        ("orders", FILL_ORDERS, plan.orders),
        ("order_items", FILL_ORDER_ITEMS, plan.order_items),
        ("events", FILL_EVENTS, plan.events),
        ("audit_log", FILL_AUDIT_LOG, plan.audit_log),
    ];
    for (table, sql, n) in steps {
        let n = n as i64;
        let users = plan.users as i64;
        let orders = plan.orders as i64;
        let products = plan.products as i64;
        let inserted = match table {
            "orders" => c.execute(sql, &[&n, &users]).await,
            "order_items" => c.execute(sql, &[&n, &orders, &products]).await,
            _ => c.execute(sql, &[&n]).await,
        }
        .with_context(|| format!("seeding {table}"))?;
        if inserted != n as u64 {
            bail!("seeding {table}: inserted {inserted} rows, expected {n}");
        }
    }
    c.batch_execute(CONSTRAINTS)
        .await
        .context("adding keys and constraints")?;
    // The inserts' statistics sit in this backend until it flushes them; ANALYZE
    // would set n_live_tup first and the late flush then add the inserts again,
    // doubling every estimate the console shows. Flush, then analyze.
    c.batch_execute("SELECT pg_stat_force_next_flush()")
        .await
        .context("flushing statistics")?;
    c.batch_execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements; ANALYZE")
        .await
        .context("analyze")?;
    Ok(SeedReport {
        plan: *plan,
        elapsed: started.elapsed(),
    })
}

const SCHEMA: &str = r#"
CREATE TABLE users (
    id          serial,
    name        text NOT NULL,
    email       text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    profile     jsonb,
    avatar      bytea,
    balance     numeric(12,2) NOT NULL DEFAULT 0
);

CREATE TABLE products (
    id      serial,
    sku     text NOT NULL,
    title   text NOT NULL,
    price   numeric NOT NULL,
    tags    text[],
    weight  float8
);

CREATE TABLE orders (
    id          bigint GENERATED ALWAYS AS IDENTITY,
    user_id     integer NOT NULL,
    total       numeric(10,2) NOT NULL,
    status      text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    note        text
);

CREATE TABLE order_items (
    order_id  bigint NOT NULL,
    line_no   integer NOT NULL,
    sku       text NOT NULL,
    qty       integer NOT NULL,
    price     numeric(10,2) NOT NULL
);

-- No primary key and no replica identity, on purpose: logical replication
-- cannot apply UPDATE/DELETE for it, and the preflight must say so.
CREATE TABLE events (
    ts       timestamptz NOT NULL,
    kind     text NOT NULL,
    payload  jsonb
);

CREATE TABLE audit_log (
    id      bigserial,
    at      timestamptz NOT NULL DEFAULT now(),
    actor   text NOT NULL,
    detail  text
);
"#;

// Shared pools of awkward text. Indexing is `1 + g % len`.
// Names: combining acute (e\u0301), Hebrew with niqqud (RTL + combining),
// Arabic (RTL), CJK, Cyrillic, Greek, Vietnamese stacked diacritics, a ZWJ emoji
// sequence, an apostrophe, and plain ASCII.
const FILL_USERS: &str = r#"
INSERT INTO users (id, name, email, created_at, profile, avatar, balance)
SELECT g,
       (ARRAY['Zoë','José','山田太郎','李小龙','Ελένη','Ольга','محمد','שָׁלוֹם',
              'E' || U&'\0301' || 'milie','🦀 Ferris','Åsa','Nguyễn Văn An',
              'O''Brien','Zürich 👩‍💻','plain ascii','Ñandú'])[1 + g % 16] || ' ' || g,
       CASE WHEN g % 10 = 3 THEN 'ユーザー' || g || '@例え.jp'
            ELSE 'user' || g || '@example.com' END,
       (timestamp '2022-01-01' + g * interval '97 seconds' + (g % 1000) * interval '1 microsecond')
           AT TIME ZONE (ARRAY['UTC','America/New_York','Asia/Kolkata','Australia/Lord_Howe',
                               'Pacific/Chatham','Europe/Berlin','America/St_Johns',
                               'Asia/Kathmandu'])[1 + g % 8],
       CASE WHEN g % 7 = 0 THEN NULL
            ELSE jsonb_build_object(
                'lang', (ARRAY['en','ja','ar','he','de','vi'])[1 + g % 6],
                'vip', g % 11 = 0,
                'score', round((g % 1000) / 7.0, 5),
                'tags', jsonb_build_array('t' || g % 5, '🏷️', NULL),
                'bio', (ARRAY['Hello 👋','こんにちは','مرحبا','שלום','Grüße','Ça va?'])[1 + g % 6],
                'nested', jsonb_build_object('depth', 2, 'list', jsonb_build_array(1, 2.5, 'x')))
       END,
       CASE WHEN g % 5 = 0 THEN '\x00ff00'::bytea || decode(md5(g::text), 'hex')
            ELSE NULL END,
       round(((g::numeric * 7919.37) % 9999999999.99) * CASE WHEN g % 13 = 0 THEN -1 ELSE 1 END, 2)
FROM generate_series(1, $1::bigint) AS g
"#;

const FILL_PRODUCTS: &str = r#"
INSERT INTO products (id, sku, title, price, tags, weight)
SELECT g,
       'SKU-' || lpad(g::text, 6, '0'),
       (ARRAY['Café ☕','Ramen 🍜 拉麺','Ünïcödé Widget','כוס קפה','Cafe' || U&'\0301' || ' crème',
              'Чайник','Ἀθῆναι mug','👨‍👩‍👧 family pack'])[1 + g % 8] || ' #' || g,
       CASE WHEN g = 1 THEN 123456789012345678901234567890.123456789012345678901234567890
            ELSE round(9.99 + g / 7.0, 20) END,
       CASE WHEN g % 9 = 0 THEN NULL
            WHEN g % 9 = 1 THEN ARRAY[]::text[]
            ELSE ARRAY['new', (ARRAY['sale','日本','עברית','émoji 🎉'])[1 + g % 4], NULL] END,
       CASE WHEN g % 97 = 0 THEN 'NaN'::float8
            WHEN g % 31 = 0 THEN NULL
            ELSE g * 0.37 + 1e-9 END
FROM generate_series(1, $1::bigint) AS g
"#;

const FILL_ORDERS: &str = r#"
INSERT INTO orders (id, user_id, total, status, created_at, note)
OVERRIDING SYSTEM VALUE
SELECT g,
       1 + (g * 7) % $2::bigint,
       round((g % 100000) / 100.0 + 1, 2),
       (ARRAY['pending','paid','shipped','delivered','cancelled','refunded'])[1 + g % 6],
       (timestamp '2023-01-01' + g * interval '41 seconds')
           AT TIME ZONE (ARRAY['UTC','Asia/Tokyo','America/Los_Angeles','Asia/Kolkata',
                               'Europe/London','Australia/Adelaide'])[1 + g % 6],
       CASE g % 9 WHEN 0 THEN 'gift wrap 🎁'
                  WHEN 3 THEN 'leave at door — 門の前'
                  WHEN 6 THEN 'تسليم سريع'
                  ELSE NULL END
FROM generate_series(1, $1::bigint) AS g
"#;

// Item i belongs to order ((i-1) mod orders)+1 as line ((i-1) div orders)+1:
// unique (order_id, line_no) for any count, spread evenly over the orders.
const FILL_ORDER_ITEMS: &str = r#"
INSERT INTO order_items (order_id, line_no, sku, qty, price)
SELECT (g - 1) % $2::bigint + 1,
       ((g - 1) / $2::bigint + 1)::int,
       'SKU-' || lpad((1 + g % $3::bigint)::text, 6, '0'),
       (1 + g % 5)::int,
       round((g % 50000) / 100.0 + 0.5, 2)
FROM generate_series(1, $1::bigint) AS g
"#;

const FILL_EVENTS: &str = r#"
INSERT INTO events (ts, kind, payload)
SELECT (timestamp '2024-03-10 00:00:00' + g * interval '3 seconds')
           AT TIME ZONE (ARRAY['UTC','America/New_York','Europe/Paris','Asia/Shanghai'])[1 + g % 4],
       (ARRAY['login','logout','page_view','purchase','error'])[1 + g % 5],
       CASE WHEN g % 8 = 0 THEN NULL
            ELSE jsonb_build_object('seq', g, 'path', '/p/' || g % 100,
                                    'ua', (ARRAY['curl/8','Mozilla/5.0 🦊','Опера'])[1 + g % 3],
                                    'ok', g % 17 <> 0)
       END
FROM generate_series(1, $1::bigint) AS g
"#;

const FILL_AUDIT_LOG: &str = r#"
INSERT INTO audit_log (id, at, actor, detail)
SELECT g,
       (timestamp '2023-06-01' + g * interval '17 seconds')
           AT TIME ZONE (ARRAY['UTC','Asia/Jerusalem','America/Sao_Paulo'])[1 + g % 3],
       (ARRAY['system','admin','støtte','管理员','مدير'])[1 + g % 5],
       CASE WHEN g % 6 = 0 THEN NULL
            ELSE 'changed setting #' || g || (ARRAY['',' ✔',' — ok',' (נבדק)'])[1 + g % 4] END
FROM generate_series(1, $1::bigint) AS g
"#;

const CONSTRAINTS: &str = r#"
ALTER TABLE users ADD PRIMARY KEY (id), ADD CONSTRAINT users_email_key UNIQUE (email);
ALTER TABLE products ADD PRIMARY KEY (id), ADD CONSTRAINT products_sku_key UNIQUE (sku);
ALTER TABLE orders ADD PRIMARY KEY (id);
ALTER TABLE order_items ADD PRIMARY KEY (order_id, line_no);
ALTER TABLE audit_log ADD PRIMARY KEY (id);
ALTER TABLE orders ADD CONSTRAINT orders_user_id_fkey
    FOREIGN KEY (user_id) REFERENCES users (id);
ALTER TABLE order_items ADD CONSTRAINT order_items_order_id_fkey
    FOREIGN KEY (order_id) REFERENCES orders (id);
CREATE INDEX orders_user_id_idx ON orders (user_id);
CREATE INDEX events_ts_idx ON events (ts);
SELECT setval('users_id_seq', (SELECT max(id) FROM users));
SELECT setval('products_id_seq', (SELECT max(id) FROM products));
SELECT setval(pg_get_serial_sequence('orders', 'id'), (SELECT max(id) FROM orders));
SELECT setval('audit_log_id_seq', (SELECT max(id) FROM audit_log));
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_for_a_million_is_exact() {
        let p = SeedPlan::for_rows(1_000_000);
        assert_eq!(p.total(), 1_000_000);
        assert_eq!(p.users, 100_000);
        assert_eq!(p.orders, 250_000);
        assert_eq!(p.order_items, 400_000);
    }

    #[test]
    fn tiny_plans_keep_every_table_populated() {
        let p = SeedPlan::for_rows(0);
        assert!(p.tables().iter().all(|(_, n)| *n >= 10));
        let p = SeedPlan::for_rows(20_000);
        assert_eq!(p.total(), 20_000);
    }
}
