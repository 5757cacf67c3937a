//! What both modes do first for a table: check it exists on both sides,
//! introspect its columns and key (checking declared keys), and read the
//! range boundaries.

use std::collections::HashMap;

use tokio_postgres::types::ToSql;
use tokio_postgres::Row;

use super::exec::{both, query, Conn, Ctx, Fail};
use super::sql::{self, Column, Key, KeyRange, Plan};
use super::{Method, TableVerify, VerifyOptions};
use crate::pg::monitor::qualified;
use crate::session::sample::TableRef;

/// Below this estimate, boundaries come from the whole key index, not a sample.
const EXACT_SAMPLE_BELOW: f64 = 1_000_000.0;
/// Sampled keys per range when sampling pages.
const SAMPLE_PER_RANGE: u64 = 32;

/// A table as both modes compare it: the plan, range boundaries and sizes.
pub(super) struct Prepared {
    pub plan: Plan,
    pub bounds: Vec<Key>,
    /// The planner's row estimate on the source (-1: never analysed).
    pub est_source: f64,
    pub blocks_source: u64,
    pub blocks_target: u64,
}

fn columns(rows: &[Row]) -> Vec<Column> {
    rows.iter()
        .map(|r| Column {
            name: r.get(0),
            type_sql: r.get(1),
            base: r.get(2),
            nullable: r.get(3),
            pk_pos: r.get(4),
        })
        .collect()
}

pub(super) fn keys_of(rows: &[Row], n: usize) -> Vec<Key> {
    let mut out: Vec<Key> = rows
        .iter()
        .map(|r| (0..n).map(|i| r.get::<_, String>(i)).collect())
        .collect();
    out.dedup();
    out
}

/// `public.foo: missing on the target`, or None when both sides have it.
fn missing(table: &TableRef, on_source: bool, on_target: bool) -> Option<String> {
    let sides = match (on_source, on_target) {
        (true, true) => return None,
        (false, true) => "the source",
        (true, false) => "the target",
        (false, false) => "the source and the target",
    };
    Some(format!("{table}: missing on {sides}"))
}

/// The first declared key column one side lacks, named with the sides
/// lacking it.
fn undeclarable(
    table: &TableRef,
    declared: &[String],
    source: &[Column],
    target: &[Column],
) -> Option<String> {
    let has = |cols: &[Column], k: &str| cols.iter().any(|c| c.name == k);
    declared.iter().find_map(|k| {
        let sides = match (has(source, k), has(target, k)) {
            (true, true) => return None,
            (false, true) => "source",
            (true, false) => "target",
            (false, false) => "source and target",
        };
        Some(format!(
            "{table}: verify.keys names column \"{}\", which {table} does not have ({sides})",
            k.escape_debug()
        ))
    })
}

/// Introspects both sides (common columns, key, method: recorded in `tv`)
/// and reads the range boundaries.
pub(super) async fn prepare(
    ctx: &Ctx<'_>,
    src: &[Conn],
    tgt: &[Conn],
    opts: &VerifyOptions,
    tv: &mut TableVerify,
    sample_bounds: bool,
) -> Result<Prepared, Fail> {
    let name = qualified(&tv.table);
    let by_name: [&(dyn ToSql + Sync); 1] = [&name];
    let what = format!("looking up {}", tv.table);
    let (a, b) = tokio::join!(
        query(ctx, &src[0], &what, sql::EXISTS_SQL, &by_name),
        query(ctx, &tgt[0], &what, sql::EXISTS_SQL, &by_name)
    );
    let exists = |rows: Vec<Row>| rows.first().is_some_and(|r| r.get::<_, bool>(0));
    let (a, b) = both(a, b)?;
    if let Some(e) = missing(&tv.table, exists(a), exists(b)) {
        return Err(Fail::Sql(e));
    }

    let what = format!("reading the columns of {}", tv.table);
    let (a, b) = tokio::join!(
        query(ctx, &src[0], &what, sql::COLUMNS_SQL, &by_name),
        query(ctx, &tgt[0], &what, sql::COLUMNS_SQL, &by_name)
    );
    let (a, b) = both(a, b)?;
    let (cs, ct) = (columns(&a), columns(&b));
    let declared = opts.keys.get(&tv.table);
    if let Some(e) = declared.and_then(|d| undeclarable(&tv.table, d, &cs, &ct)) {
        return Err(Fail::Sql(e));
    }
    let tnames: HashMap<&str, &Column> = ct.iter().map(|c| (c.name.as_str(), c)).collect();
    let snames: HashMap<&str, &Column> = cs.iter().map(|c| (c.name.as_str(), c)).collect();
    tv.columns_only_source = cs
        .iter()
        .filter(|c| !tnames.contains_key(c.name.as_str()))
        .map(|c| c.name.clone())
        .collect();
    tv.columns_only_target = ct
        .iter()
        .filter(|c| !snames.contains_key(c.name.as_str()))
        .map(|c| c.name.clone())
        .collect();
    let common: Vec<Column> = cs
        .iter()
        .filter(|c| tnames.contains_key(c.name.as_str()))
        .cloned()
        .collect();

    let mut pk: Vec<&Column> = common.iter().filter(|c| c.pk_pos.is_some()).collect();
    pk.sort_by_key(|c| c.pk_pos);
    let keys: Vec<Column> = if !pk.is_empty() {
        tv.method = Method::PrimaryKey;
        if pk.iter().any(|c| tnames[c.name.as_str()].pk_pos.is_none()) {
            tv.notes
                .push("the target has no matching primary key: its range scans are slower".into());
        }
        pk.into_iter().cloned().collect()
    } else if let Some(declared) = declared {
        // Every declared column is on both sides (checked above).
        let found: Vec<Column> = declared
            .iter()
            .filter_map(|k| common.iter().find(|c| &c.name == k).cloned())
            .collect();
        if let Some(c) = found.iter().find(|c| c.nullable) {
            // Range predicates never match NULL, so such rows would go unchecked.
            tv.method = Method::Multiset;
            tv.notes.push(format!(
                "declared key column {} is nullable: compared as a multiset instead",
                c.name
            ));
            Vec::new()
        } else {
            tv.method = Method::DeclaredKey;
            found
        }
    } else {
        tv.method = Method::Multiset;
        Vec::new()
    };
    tv.key_columns = keys.iter().map(|c| c.name.clone()).collect();
    let plan = Plan {
        table: tv.table.clone(),
        columns: common,
        keys,
        hash: opts.hash,
    };

    let what = format!("reading the size of {}", tv.table);
    let (a, b) = tokio::join!(
        query(ctx, &src[0], &what, sql::SIZE_SQL, &by_name),
        query(ctx, &tgt[0], &what, sql::SIZE_SQL, &by_name)
    );
    let size = |rows: Vec<Row>| -> (f64, u64) {
        rows.first()
            .map(|r| (r.get::<_, f64>(0), r.get::<_, i64>(1).max(0) as u64))
            .unwrap_or((-1.0, 0))
    };
    let (a, b) = both(a, b)?;
    let ((est_s, blocks_s), (est_t, blocks_t)) = (size(a), size(b));

    let bounds: Vec<Key> = if plan.keys.is_empty() || !sample_bounds {
        Vec::new()
    } else {
        let (est, conn) = if blocks_t > blocks_s {
            (est_t, &tgt[0])
        } else {
            (est_s, &src[0])
        };
        let sql = if est < EXACT_SAMPLE_BELOW {
            plan.sample_sql(&KeyRange::default(), opts.bucket_rows.max(1), None)
        } else {
            let pct = (100.0 * SAMPLE_PER_RANGE as f64 / opts.bucket_rows.max(1) as f64).min(100.0);
            plan.sample_sql(&KeyRange::default(), SAMPLE_PER_RANGE, Some(pct))
        };
        let what = format!("sampling key boundaries of {}", tv.table);
        keys_of(&query(ctx, conn, &what, &sql, &[]).await?, plan.keys.len())
    };
    Ok(Prepared {
        plan,
        bounds,
        est_source: est_s,
        blocks_source: blocks_s,
        blocks_target: blocks_t,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn col(name: &str) -> Column {
        Column {
            name: name.into(),
            type_sql: "integer".into(),
            base: "int4".into(),
            nullable: false,
            pk_pos: None,
        }
    }

    #[test]
    fn a_missing_table_names_the_side_without_it() {
        let t = TableRef::new("public", "foo");
        assert_eq!(missing(&t, true, true), None);
        assert_eq!(
            missing(&t, true, false).as_deref(),
            Some("public.foo: missing on the target")
        );
        assert_eq!(
            missing(&t, false, true).as_deref(),
            Some("public.foo: missing on the source")
        );
        assert_eq!(
            missing(&t, false, false).as_deref(),
            Some("public.foo: missing on the source and the target")
        );
    }

    #[test]
    fn a_declared_key_column_must_exist_on_both_sides() {
        let t = TableRef::new("public", "t");
        let both = [col("id"), col("a")];
        let keys = |k: &[&str]| k.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(undeclarable(&t, &keys(&["a", "id"]), &both, &both), None);
        assert_eq!(
            undeclarable(&t, &keys(&["id", "nope"]), &both, &both).as_deref(),
            Some(
                "public.t: verify.keys names column \"nope\", which public.t does not have \
                 (source and target)"
            )
        );
        assert_eq!(
            undeclarable(&t, &keys(&["a"]), &[col("id")], &both).as_deref(),
            Some("public.t: verify.keys names column \"a\", which public.t does not have (source)")
        );
        assert_eq!(
            undeclarable(&t, &keys(&["a"]), &both, &[col("id")]).as_deref(),
            Some("public.t: verify.keys names column \"a\", which public.t does not have (target)")
        );
    }
}
