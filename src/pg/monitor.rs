//! Monitoring queries. Catalog and statistics views only: no `count(*)` of a
//! user table, no lock a DDL could make us wait on (sizes come from `relpages`,
//! not `pg_total_relation_size`, which takes a lock). Each poll's queries are
//! pipelined on one connection, so a poll costs one round trip; the
//! collector prepares them once per connection ([`Queries::prepare`]), so a
//! poll parses nothing, on the server or here.

use std::time::Instant;

use tokio_postgres::{Client, Row, Statement, ToStatement};

use crate::session::sample::{
    CopyProgress, PublicationRow, SenderRow, SlotRow, SourceSample, SubTableRow, SubscriptionRow,
    TableEstimate, TableRef, TargetSample,
};

/// Which tables the operator selected (the config's include/exclude).
pub type TableFilter<'a> = &'a (dyn Fn(&str, &str) -> bool + Sync);

const SERVER_SQL: &str = concat!(
    "SELECT current_setting('server_version'), current_setting('wal_level'), \
     CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END::text, ",
    super::rows_written_sql!()
);

/// The target's server facts: its version, and rows written so far.
const TARGET_SERVER_SQL: &str = concat!(
    "SELECT current_setting('server_version'), ",
    super::rows_written_sql!()
);

const SLOTS_SQL: &str = "\
SELECT slot_name::text, plugin::text, slot_type, database::text, active, active_pid, wal_status,
       pg_wal_lsn_diff(cur.lsn, restart_lsn)::int8,
       confirmed_flush_lsn::text,
       pg_wal_lsn_diff(cur.lsn, confirmed_flush_lsn)::int8,
       safe_wal_size
  FROM pg_replication_slots,
       LATERAL (SELECT CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn()
                            ELSE pg_current_wal_lsn() END AS lsn) cur
 ORDER BY slot_name";

const SENDERS_SQL: &str = "\
SELECT application_name, state, sent_lsn::text,
       (extract(epoch FROM write_lag) * 1000)::float8,
       (extract(epoch FROM flush_lag) * 1000)::float8,
       (extract(epoch FROM replay_lag) * 1000)::float8
  FROM pg_stat_replication
 ORDER BY application_name";

const PUBLICATIONS_SQL: &str = "\
SELECT p.pubname::text, p.puballtables,
       (SELECT count(*) FROM pg_publication_tables pt WHERE pt.pubname = p.pubname),
       p.pubviaroot
  FROM pg_publication p
 ORDER BY p.pubname";

/// Roots only (never a partition), each partitioned root with the sum of its
/// leaf partitions' estimates: its own statistics are always 0. The tree is
/// walked through `pg_inherits`, not `pg_partition_tree`, which locks every
/// partition.
const TABLES_SQL: &str = "\
WITH RECURSIVE tree AS (
  SELECT i.inhparent AS root, i.inhrelid AS rel
    FROM pg_inherits i
    JOIN pg_class p ON p.oid = i.inhparent
   WHERE p.relkind = 'p' AND NOT p.relispartition
  UNION ALL
  SELECT t.root, i.inhrelid FROM tree t JOIN pg_inherits i ON i.inhparent = t.rel
), leaves AS (
  SELECT t.root, count(*)::int8 AS n,
         sum(COALESCE(s.n_live_tup, greatest(c.reltuples, 0)::int8))::int8 AS est,
         sum(c.relpages::int8)::int8 AS pages,
         array_agg(format('%I.%I', ln.nspname, c.relname) ORDER BY ln.nspname, c.relname)
           FILTER (WHERE c.relreplident NOT IN ('f', 'i') AND NOT EXISTS (
             SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary)) AS bare
    FROM tree t
    JOIN pg_class c ON c.oid = t.rel
    JOIN pg_namespace ln ON ln.oid = c.relnamespace
    LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid
   WHERE c.relkind <> 'p'
   GROUP BY t.root
)
SELECT n.nspname::text, c.relname::text,
       CASE WHEN c.relkind = 'p' THEN COALESCE(l.est, 0)
            ELSE COALESCE(s.n_live_tup, greatest(c.reltuples, 0)::int8) END,
       CASE WHEN c.relkind = 'p' THEN COALESCE(l.pages, 0) ELSE c.relpages::int8 END
         * current_setting('block_size')::int8,
       EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary),
       c.relreplident::text,
       COALESCE(l.n, 0),
       COALESCE(l.bare, '{}')::text[]
  FROM pg_class c
  JOIN pg_namespace n ON n.oid = c.relnamespace
  LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid
  LEFT JOIN leaves l ON l.root = c.oid
 WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition
   AND n.nspname NOT IN ('pg_catalog', 'information_schema')
   AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%'
 ORDER BY 1, 2";

const SUBSCRIPTIONS_SQL: &str = "\
SELECT s.subname::text, s.subenabled, s.subslotname::text, s.subpublications::text[],
       st.pid, st.received_lsn::text, st.latest_end_lsn::text,
       extract(epoch FROM (now() - st.last_msg_receipt_time))::float8
  FROM pg_subscription s
  LEFT JOIN pg_stat_subscription st ON st.subid = s.oid AND st.relid IS NULL
 WHERE s.subdbid = (SELECT oid FROM pg_database WHERE datname = current_database())
 ORDER BY s.subname";

const SUB_TABLES_SQL: &str = "\
SELECT s.subname::text, n.nspname::text, c.relname::text, sr.srsubstate::text, sr.srsublsn::text
  FROM pg_subscription_rel sr
  JOIN pg_subscription s ON s.oid = sr.srsubid
  JOIN pg_class c ON c.oid = sr.srrelid
  JOIN pg_namespace n ON n.oid = c.relnamespace
 ORDER BY 1, 2, 3";

const COPIES_SQL: &str = "\
SELECT n.nspname::text, c.relname::text, p.tuples_processed, p.bytes_processed
  FROM pg_stat_progress_copy p
  JOIN pg_class c ON c.oid = p.relid
  JOIN pg_namespace n ON n.oid = c.relnamespace
 ORDER BY 1, 2";

fn ms(start: Instant) -> f64 {
    start.elapsed().as_secs_f64() * 1000.0
}

fn table(schema: String, name: String) -> TableRef {
    TableRef { schema, name }
}

fn estimates(rows: Vec<Row>, filter: TableFilter<'_>) -> Vec<TableEstimate> {
    rows.into_iter()
        .filter(|r| filter(r.get(0), r.get(1)))
        .map(|r| TableEstimate {
            table: table(r.get(0), r.get(1)),
            estimated_rows: r.get(2),
            size_bytes: r.get(3),
            has_primary_key: r.get(4),
            replica_identity: r.get(5),
            partitions: u32::try_from(r.get::<_, i64>(6)).unwrap_or(u32::MAX),
            partitions_without_identity: r.get(7),
        })
        .collect()
}

/// One side's five monitoring queries: their text, or statements prepared
/// on one connection (and only good on it).
pub struct Queries<T> {
    server: T,
    a: T,
    b: T,
    c: T,
    tables: T,
}

/// The source's: server facts, slots, senders, publications, tables.
pub const SOURCE_QUERIES: Queries<&str> = Queries {
    server: SERVER_SQL,
    a: SLOTS_SQL,
    b: SENDERS_SQL,
    c: PUBLICATIONS_SQL,
    tables: TABLES_SQL,
};

/// The target's: server facts, subscriptions, their tables, copies, tables.
pub const TARGET_QUERIES: Queries<&str> = Queries {
    server: TARGET_SERVER_SQL,
    a: SUBSCRIPTIONS_SQL,
    b: SUB_TABLES_SQL,
    c: COPIES_SQL,
    tables: TABLES_SQL,
};

impl Queries<&'static str> {
    /// Prepared on `client`, pipelined: one round trip.
    pub async fn prepare(
        &self,
        client: &Client,
    ) -> Result<Queries<Statement>, tokio_postgres::Error> {
        let (server, a, b, c, tables) = futures::try_join!(
            client.prepare(self.server),
            client.prepare(self.a),
            client.prepare(self.b),
            client.prepare(self.c),
            client.prepare(self.tables),
        )?;
        Ok(Queries {
            server,
            a,
            b,
            c,
            tables,
        })
    }
}

/// A query as its text or as a statement prepared on the connection.
pub trait Query: Sync {
    type S: ToStatement + Sync + ?Sized;
    fn statement(&self) -> &Self::S;
}

impl Query for &str {
    type S = str;
    fn statement(&self) -> &str {
        self
    }
}

impl Query for Statement {
    type S = Statement;
    fn statement(&self) -> &Statement {
        self
    }
}

/// The source's sample, its queries parsed for this poll.
pub async fn poll_source(
    client: &Client,
    filter: TableFilter<'_>,
) -> Result<SourceSample, tokio_postgres::Error> {
    poll_source_with(client, &SOURCE_QUERIES, filter).await
}

/// The target's sample, its queries parsed for this poll.
pub async fn poll_target(
    client: &Client,
    filter: TableFilter<'_>,
) -> Result<TargetSample, tokio_postgres::Error> {
    poll_target_with(client, &TARGET_QUERIES, filter).await
}

/// The five queries pipelined on `client`.
async fn run<Q: Query>(
    client: &Client,
    q: &Queries<Q>,
) -> Result<(Row, [Vec<Row>; 4]), tokio_postgres::Error> {
    let (server, a, b, c, tables) = futures::try_join!(
        client.query_one(q.server.statement(), &[]),
        client.query(q.a.statement(), &[]),
        client.query(q.b.statement(), &[]),
        client.query(q.c.statement(), &[]),
        client.query(q.tables.statement(), &[]),
    )?;
    Ok((server, [a, b, c, tables]))
}

pub async fn poll_source_with<Q: Query>(
    client: &Client,
    q: &Queries<Q>,
    filter: TableFilter<'_>,
) -> Result<SourceSample, tokio_postgres::Error> {
    let start = Instant::now();
    let (server, [slots, senders, pubs, tables]) = run(client, q).await?;
    Ok(SourceSample {
        server_version: server.get(0),
        wal_level: server.get(1),
        current_wal_lsn: server.get::<_, Option<String>>(2).unwrap_or_default(),
        rows_written: server.get(3),
        slots: slots
            .into_iter()
            .map(|r| SlotRow {
                name: r.get(0),
                plugin: r.get(1),
                slot_type: r.get(2),
                database: r.get(3),
                active: r.get(4),
                active_pid: r.get(5),
                wal_status: r.get(6),
                retained_bytes: r.get(7),
                confirmed_flush_lsn: r.get(8),
                lag_bytes: r.get(9),
                safe_wal_size: r.get(10),
            })
            .collect(),
        senders: senders
            .into_iter()
            .map(|r| SenderRow {
                application_name: r.get(0),
                state: r.get(1),
                sent_lsn: r.get(2),
                write_lag_ms: r.get(3),
                flush_lag_ms: r.get(4),
                replay_lag_ms: r.get(5),
            })
            .collect(),
        publications: pubs
            .into_iter()
            .map(|r| PublicationRow {
                name: r.get(0),
                all_tables: r.get(1),
                tables: r.get(2),
                via_root: r.get(3),
            })
            .collect(),
        tables: estimates(tables, filter),
        poll_ms: ms(start),
    })
}

pub async fn poll_target_with<Q: Query>(
    client: &Client,
    q: &Queries<Q>,
    filter: TableFilter<'_>,
) -> Result<TargetSample, tokio_postgres::Error> {
    let start = Instant::now();
    let (server, [subs, sub_tables, copies, tables]) = run(client, q).await?;
    Ok(TargetSample {
        server_version: server.get(0),
        rows_written: server.get(1),
        subscriptions: subs
            .into_iter()
            .map(|r| SubscriptionRow {
                name: r.get(0),
                enabled: r.get(1),
                slot_name: r.get(2),
                publications: r.get::<_, Option<Vec<String>>>(3).unwrap_or_default(),
                worker_pid: r.get(4),
                received_lsn: r.get(5),
                latest_end_lsn: r.get(6),
                last_msg_age_s: r.get(7),
            })
            .collect(),
        sub_tables: sub_tables
            .into_iter()
            .filter(|r| filter(r.get(1), r.get(2)))
            .map(|r| SubTableRow {
                subscription: r.get(0),
                table: table(r.get(1), r.get(2)),
                state: r.get(3),
                lsn: r.get(4),
            })
            .collect(),
        copies: copies
            .into_iter()
            .map(|r| CopyProgress {
                table: table(r.get(0), r.get(1)),
                tuples_processed: r.get(2),
                bytes_processed: r.get(3),
            })
            .collect(),
        tables: estimates(tables, filter),
        poll_ms: ms(start),
    })
}

/// Session settings for every monitoring connection: bounded, and unable to write
/// even by mistake.
pub fn session_setup_sql(statement_timeout_ms: u64) -> String {
    format!(
        "SET statement_timeout = {statement_timeout_ms}; SET lock_timeout = {statement_timeout_ms}; \
         SET idle_in_transaction_session_timeout = 60000; SET default_transaction_read_only = on"
    )
}

/// Quotes an identifier the way `quote_ident` does, so any table name is safe in SQL.
pub fn quote_ident(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

pub fn qualified(t: &TableRef) -> String {
    format!("{}.{}", quote_ident(&t.schema), quote_ident(&t.name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_survives_hostile_names() {
        let t = TableRef::new("we\"ird", "tab le");
        assert_eq!(qualified(&t), "\"we\"\"ird\".\"tab le\"");
    }
}
