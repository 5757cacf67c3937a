//! SQL text for verification: canonical row text, key ranges, bucket
//! aggregates. Pure string building, so it is unit-tested without a server.
//!
//! Canonical row text: `ROW(c1, c2, ...)::text` over the columns present on both
//! sides, ordered by column name, under the pinned session settings of
//! [`SESSION_SETTINGS`]. Record output quotes as needed and prints NULL as
//! nothing and `''` as `""`, so NULL and the empty string never collide.
//! Normalisations, where the text would otherwise depend on version or setting:
//! - `float4`/`float8`: the IEEE bits in hex (`float8send`). Float text output
//!   changed in PG 12 (shortest-exact vs `%.17g`), bits did not; `float4` is
//!   widened to `float8` first, which is exact.
//! - `money`: as `numeric` (its text depends on `lc_monetary`).
//! - float arrays: `float8[]` text with `extra_float_digits = 3`; identical
//!   when both sides are on the same side of PG 12.
//! - `numeric`: unchanged: trailing zeros are the value's scale and logical
//!   replication preserves it, so `1.50` vs `1.5` is reported as a change.
//! - `timestamptz`, `interval`, `bytea`, dates: their text under TimeZone=UTC,
//!   DateStyle=ISO, IntervalStyle=iso_8601, bytea_output=hex. `'1 day'` and
//!   `'24 hours'` differ (they are different interval values in text and in
//!   what replication carries).
//! - `jsonb` is already canonical; `json` is compared as stored text.
//! - collated text: output does not depend on the collation.

use crate::pg::monitor::{qualified, quote_ident};
use crate::session::sample::TableRef;

/// Pinned for every verification session, so the same row prints the same on
/// both sides. `extra_float_digits = 3`: on PG ≥ 12 every positive value means
/// shortest-exact output, and on older servers 3 is the value that round-trips;
/// it matters only for float arrays and float key literals (scalars are hashed
/// by their bits). `search_path = ''` because every name is schema-qualified.
pub const SESSION_SETTINGS: &str = "SET TimeZone = 'UTC'; SET DateStyle = 'ISO, YMD'; \
     SET IntervalStyle = 'iso_8601'; SET extra_float_digits = 3; SET bytea_output = 'hex'; \
     SET search_path = ''; SET standard_conforming_strings = on; \
     SET default_transaction_read_only = on";

/// Which per-row hash is summed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HashKind {
    /// `hashtextextended(row_text, 0)`: 64-bit, about as cheap as the row text
    /// itself. Its value depends on the server's byte order, so both sides
    /// must share it (x86-64 and arm64 both are little-endian).
    #[default]
    HashText,
    /// First 64 bits of `md5(row_text)`: platform-independent, ~2.5× the CPU.
    Md5,
}

/// One column as introspected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    pub name: String,
    /// `format_type` output, schema-qualified (the session's search_path is empty).
    pub type_sql: String,
    /// `typname` of the type, or of the base type for a domain.
    pub base: String,
    pub nullable: bool,
    /// 1-based position in the primary key, if part of it.
    pub pk_pos: Option<i32>,
}

pub const COLUMNS_SQL: &str = "SELECT a.attname::text, pg_catalog.format_type(a.atttypid, a.atttypmod), \
       bt.typname::text, NOT a.attnotnull, pk.ord::int4 \
  FROM pg_catalog.pg_attribute a \
  JOIN pg_catalog.pg_type t ON t.oid = a.atttypid \
  JOIN pg_catalog.pg_type bt ON bt.oid = CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.oid END \
  LEFT JOIN LATERAL ( \
       SELECT k.ord FROM pg_catalog.pg_index i, \
              unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord) \
        WHERE i.indrelid = a.attrelid AND i.indisprimary AND k.attnum = a.attnum) pk ON true \
 WHERE a.attrelid = $1::text::regclass AND a.attnum > 0 AND NOT a.attisdropped \
 ORDER BY a.attname";

/// Planner's row estimate (-1 when never analysed) and the heap's size in blocks.
pub const SIZE_SQL: &str = "SELECT c.reltuples::float8, \
       (pg_catalog.pg_relation_size(c.oid) / pg_catalog.current_setting('block_size')::int8)::int8 \
  FROM pg_catalog.pg_class c WHERE c.oid = $1::text::regclass";

/// Whether the table exists (a name that does not resolve is NULL, not an error).
pub const EXISTS_SQL: &str = "SELECT pg_catalog.to_regclass($1::text) IS NOT NULL";

/// `max_connections`, the slots reserved for superusers (and, PG ≥ 16, for
/// `pg_use_reserved_connections`), and the client connections in use.
pub const HEADROOM_SQL: &str = "SELECT pg_catalog.current_setting('max_connections')::int8, \
       pg_catalog.current_setting('superuser_reserved_connections')::int8 \
       + COALESCE(NULLIF(pg_catalog.current_setting('reserved_connections', true), '')::int8, 0), \
       (SELECT count(*) FROM pg_catalog.pg_stat_activity WHERE backend_type = 'client backend')";

/// A key value: one text per key column.
pub type Key = Vec<String>;

/// `[lo, hi)` over the key, unbounded where `None`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct KeyRange {
    pub lo: Option<Key>,
    pub hi: Option<Key>,
}

/// A table's verification plan: what is compared and how it is keyed.
#[derive(Debug, Clone)]
pub struct Plan {
    pub table: TableRef,
    /// Compared columns, ordered by name.
    pub columns: Vec<Column>,
    /// Key columns in key order; empty for a multiset comparison.
    pub keys: Vec<Column>,
    pub hash: HashKind,
}

pub fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// The column as it enters the row text.
pub fn norm_expr(c: &Column) -> String {
    let q = quote_ident(&c.name);
    match c.base.as_str() {
        "float4" | "float8" => {
            format!("pg_catalog.encode(pg_catalog.float8send({q}::pg_catalog.float8), 'hex')")
        }
        "money" => format!("{q}::pg_catalog.numeric"),
        "_float4" | "_float8" => format!("{q}::pg_catalog.float8[]"),
        _ => q,
    }
}

impl Plan {
    fn rel(&self) -> String {
        qualified(&self.table)
    }

    pub fn row_text(&self) -> String {
        let cols: Vec<String> = self.columns.iter().map(norm_expr).collect();
        format!("ROW({})::text", cols.join(", "))
    }

    pub fn hash_expr(&self) -> String {
        let text = self.row_text();
        match self.hash {
            HashKind::HashText => format!("pg_catalog.hashtextextended({text}, 0)"),
            HashKind::Md5 => {
                format!("('x' || pg_catalog.substr(pg_catalog.md5({text}), 1, 16))::bit(64)::int8")
            }
        }
    }

    fn key_cols(&self) -> Vec<String> {
        self.keys.iter().map(|c| quote_ident(&c.name)).collect()
    }

    /// The key as one comparable value: the column, or a row of them.
    fn key_expr(&self) -> String {
        let cols = self.key_cols();
        if cols.len() == 1 {
            cols[0].clone()
        } else {
            format!("ROW({})", cols.join(", "))
        }
    }

    pub fn key_literal(&self, key: &Key) -> String {
        let parts: Vec<String> = self
            .keys
            .iter()
            .zip(key)
            .map(|(c, v)| format!("{}::{}", literal(v), c.type_sql))
            .collect();
        if parts.len() == 1 {
            parts[0].clone()
        } else {
            format!("ROW({})", parts.join(", "))
        }
    }

    /// Row comparison `(a, b) >= (x, y)` is lexicographic and uses a btree
    /// index on `(a, b)`, so ranges of composite keys stay index range scans.
    pub fn range_predicate(&self, r: &KeyRange) -> String {
        let mut parts = Vec::new();
        let key = if self.keys.len() == 1 {
            self.key_cols()[0].clone()
        } else {
            format!("({})", self.key_cols().join(", "))
        };
        if let Some(lo) = &r.lo {
            parts.push(format!("{key} >= {}", self.key_literal(lo)));
        }
        if let Some(hi) = &r.hi {
            parts.push(format!("{key} < {}", self.key_literal(hi)));
        }
        if parts.is_empty() {
            "true".into()
        } else {
            parts.join(" AND ")
        }
    }

    /// Count and hash sum per bucket of `range` split at `bounds` (bucket `i`
    /// is `[bounds[i-1], bounds[i])`), optionally restricted to heap blocks
    /// `[from, to)` (a TID range scan on PG ≥ 14), which is how one table scan
    /// is shared out between workers without each reading the whole heap.
    pub fn bucket_sql(
        &self,
        range: &KeyRange,
        bounds: &[Key],
        blocks: Option<(u64, Option<u64>)>,
    ) -> String {
        let bucket = if bounds.is_empty() || self.keys.is_empty() {
            "0".to_string()
        } else {
            let arr: Vec<String> = bounds.iter().map(|b| self.key_literal(b)).collect();
            format!(
                "pg_catalog.width_bucket({}, ARRAY[{}])",
                self.key_expr(),
                arr.join(", ")
            )
        };
        let mut filter = if self.keys.is_empty() {
            "true".to_string()
        } else {
            self.range_predicate(range)
        };
        if let Some((from, to)) = blocks {
            if from > 0 {
                filter.push_str(&format!(" AND ctid >= '({from},0)'::tid"));
            }
            if let Some(to) = to {
                filter.push_str(&format!(" AND ctid < '({to},0)'::tid"));
            }
        }
        format!(
            "SELECT {bucket}::int4, count(*), COALESCE(sum({}), 0)::text FROM {} WHERE {filter} GROUP BY 1",
            self.hash_expr(),
            self.rel()
        )
    }

    /// One key range checked whole (an index range scan): all its rows, then
    /// the rows matching `filter` (all when `None`) and their hash sum.
    pub fn range_sql(&self, range: &KeyRange, filter: Option<&str>) -> String {
        let f = filter.unwrap_or("true");
        format!(
            "SELECT count(*), count(*) FILTER (WHERE {f}), \
             COALESCE(sum({}) FILTER (WHERE {f}), 0)::text FROM {} WHERE {}",
            self.hash_expr(),
            self.rel(),
            self.range_predicate(range)
        )
    }

    /// Every `step`-th key of the range in key order, optionally from a
    /// `TABLESAMPLE SYSTEM` page sample (cheap: reads only the sampled pages).
    pub fn sample_sql(&self, range: &KeyRange, step: u64, sample_pct: Option<f64>) -> String {
        let cols = self.key_cols().join(", ");
        let texts: Vec<String> = self
            .key_cols()
            .iter()
            .map(|c| format!("{c}::text"))
            .collect();
        let sample = match sample_pct {
            Some(p) => format!(" TABLESAMPLE SYSTEM ({p})"),
            None => String::new(),
        };
        format!(
            "SELECT {} FROM (SELECT {cols}, row_number() OVER (ORDER BY {cols}) AS rn__ FROM {}{sample} WHERE {}) s \
             WHERE rn__ % {step} = 0 ORDER BY rn__",
            texts.join(", "),
            self.rel(),
            self.range_predicate(range)
        )
    }

    /// Keys and row hashes of a (small) range.
    pub fn leaf_sql(&self, range: &KeyRange) -> String {
        let texts: Vec<String> = self
            .key_cols()
            .iter()
            .map(|c| format!("{c}::text"))
            .collect();
        format!(
            "SELECT {}, {} FROM {} WHERE {}",
            texts.join(", "),
            self.hash_expr(),
            self.rel(),
            self.range_predicate(range)
        )
    }

    /// Full normalised rows for the given keys within the range.
    pub fn rows_sql(&self, range: &KeyRange, keys: &[Key]) -> String {
        let texts: Vec<String> = self
            .key_cols()
            .iter()
            .map(|c| format!("{c}::text"))
            .collect();
        let cols: Vec<String> = self
            .columns
            .iter()
            .map(|c| format!("({})::text", norm_expr(c)))
            .collect();
        let list: Vec<String> = keys.iter().map(|k| self.key_literal(k)).collect();
        format!(
            "SELECT {}, {} FROM {} WHERE {} AND {} IN ({})",
            texts.join(", "),
            cols.join(", "),
            self.rel(),
            self.range_predicate(range),
            self.key_expr(),
            list.join(", ")
        )
    }

    /// `id=5` or `a=1, b=x`.
    pub fn describe_key(&self, key: &Key) -> String {
        self.keys
            .iter()
            .zip(key)
            .map(|(c, v)| format!("{}={v}", c.name))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// The source's clock, seconds since the epoch.
pub const CLOCK_SQL: &str = "SELECT extract(epoch FROM pg_catalog.clock_timestamp())::float8";

/// The source's WAL insert position, in bytes since 0/0.
pub const WAL_LSN_SQL: &str =
    "SELECT (pg_catalog.pg_current_wal_lsn() - '0/0'::pg_catalog.pg_lsn)::pg_catalog.text";

/// How far the subscriber has confirmed applying and flushing, in bytes since
/// 0/0; no row when the slot does not exist.
pub fn slot_flushed_sql(slot: &str) -> String {
    format!(
        "SELECT (confirmed_flush_lsn - '0/0'::pg_catalog.pg_lsn)::pg_catalog.text \
           FROM pg_catalog.pg_replication_slots WHERE slot_name = {}",
        literal(slot)
    )
}

/// Rows last modified before `epoch` (or never stamped): the settled ones.
pub fn modified_before(column: &str, epoch: f64) -> String {
    let q = quote_ident(column);
    format!("({q} IS NULL OR {q} < pg_catalog.to_timestamp({epoch:.6}))")
}

/// Rows last modified at or after `epoch`.
pub fn modified_since(column: &str, epoch: f64) -> String {
    format!(
        "{} >= pg_catalog.to_timestamp({epoch:.6})",
        quote_ident(column)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn col(name: &str, ty: &str, base: &str) -> Column {
        Column {
            name: name.into(),
            type_sql: ty.into(),
            base: base.into(),
            nullable: false,
            pk_pos: None,
        }
    }

    fn plan(keys: Vec<Column>) -> Plan {
        Plan {
            table: TableRef::new("s", "t"),
            columns: vec![
                col("f", "real", "float4"),
                col("m", "money", "money"),
                col("x", "text", "text"),
            ],
            keys,
            hash: HashKind::HashText,
        }
    }

    #[test]
    fn row_text_normalises_floats_and_money() {
        let p = plan(vec![col("id", "integer", "int4")]);
        assert_eq!(
            p.row_text(),
            "ROW(pg_catalog.encode(pg_catalog.float8send(\"f\"::pg_catalog.float8), 'hex'), \"m\"::pg_catalog.numeric, \"x\")::text"
        );
    }

    #[test]
    fn composite_ranges_compare_rows() {
        let p = plan(vec![col("a", "integer", "int4"), col("b", "text", "text")]);
        let r = KeyRange {
            lo: Some(vec!["1".into(), "o'k".into()]),
            hi: None,
        };
        assert_eq!(
            p.range_predicate(&r),
            "(\"a\", \"b\") >= ROW('1'::integer, 'o''k'::text)"
        );
        assert!(p
            .bucket_sql(&r, &[vec!["2".into(), "z".into()]], Some((10, Some(20))))
            .contains("width_bucket(ROW(\"a\", \"b\"), ARRAY[ROW('2'::integer, 'z'::text)])"));
        assert_eq!(p.describe_key(&vec!["1".into(), "x".into()]), "a=1, b=x");
    }

    #[test]
    fn range_checks_filter_the_hashed_rows_only() {
        let p = plan(vec![col("id", "integer", "int4")]);
        let r = KeyRange {
            lo: Some(vec!["5".into()]),
            hi: None,
        };
        let f = modified_before("upd", 1.5);
        let sql = p.range_sql(&r, Some(&f));
        assert!(sql.starts_with("SELECT count(*), count(*) FILTER (WHERE (\"upd\" IS NULL OR \"upd\" < pg_catalog.to_timestamp(1.500000)))"), "{sql}");
        assert!(sql.ends_with("WHERE \"id\" >= '5'::integer"), "{sql}");
        assert!(p.range_sql(&r, None).contains("FILTER (WHERE true)"));
    }

    #[test]
    fn multiset_has_one_bucket_and_no_key_filter() {
        let p = plan(vec![]);
        let sql = p.bucket_sql(&KeyRange::default(), &[], Some((0, Some(5))));
        assert!(sql.starts_with("SELECT 0::int4, count(*)"), "{sql}");
        assert!(sql.contains("WHERE true AND ctid < '(5,0)'::tid"), "{sql}");
    }
}
