//! `[tables]` include/exclude patterns.

use std::fmt;

/// One `schema.table` pattern; `*` matches any run of characters (also none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TablePattern {
    pub schema: String,
    pub table: String,
}

impl TablePattern {
    /// Parses `schema.table` or a bare `table` (meaning `public.table`).
    pub fn parse(s: &str) -> Result<TablePattern, String> {
        let parts: Vec<&str> = s.split('.').collect();
        let (schema, table) = match parts.as_slice() {
            [table] => ("public", *table),
            [schema, table] => (*schema, *table),
            _ => {
                return Err(format!(
                    "invalid table pattern \"{}\": too many \".\" (expected schema.table or table)",
                    s.escape_debug()
                ))
            }
        };
        check_part(s, "schema", schema)?;
        check_part(s, "table", table)?;
        Ok(TablePattern {
            schema: schema.to_owned(),
            table: table.to_owned(),
        })
    }

    pub fn matches(&self, schema: &str, table: &str) -> bool {
        glob(&self.schema, schema) && glob(&self.table, table)
    }
}

impl fmt::Display for TablePattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.schema, self.table)
    }
}

fn check_part(whole: &str, what: &str, part: &str) -> Result<(), String> {
    if part.is_empty() {
        return Err(format!(
            "invalid table pattern \"{}\": empty {what} name",
            whole.escape_debug()
        ));
    }
    // Quoted identifiers would need a real parser; this set covers unquoted
    // PostgreSQL names plus the wildcard, and catches typos like spaces or commas.
    if let Some(c) = part
        .chars()
        .find(|c| !(c.is_alphanumeric() || matches!(c, '_' | '$' | '*' | '-')))
    {
        return Err(format!(
            "invalid table pattern \"{}\": unexpected character \"{}\" (allowed: letters, digits, _, $, - and * as a wildcard)",
            whole.escape_debug(),
            c.escape_debug()
        ));
    }
    if part.replace('*', "").len() > 63 {
        return Err(format!(
            "invalid table pattern \"{}\": {what} name longer than 63 bytes",
            whole.escape_debug()
        ));
    }
    Ok(())
}

/// Wildcard match with `*` only, iterative with single backtracking point, so
/// it is linear-ish and cannot blow the stack on hostile patterns.
fn glob(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if pi < p.len() && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// Which tables take part in the migration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableFilter {
    pub include: Vec<TablePattern>,
    pub exclude: Vec<TablePattern>,
}

impl Default for TableFilter {
    fn default() -> Self {
        TableFilter {
            include: vec![TablePattern {
                schema: "*".into(),
                table: "*".into(),
            }],
            exclude: Vec::new(),
        }
    }
}

impl TableFilter {
    /// Included by some `include` pattern and by no `exclude` pattern.
    pub fn matches(&self, schema: &str, table: &str) -> bool {
        self.include.iter().any(|p| p.matches(schema, table))
            && !self.exclude.iter().any(|p| p.matches(schema, table))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pat(s: &str) -> TablePattern {
        TablePattern::parse(s).unwrap()
    }

    #[test]
    fn parse_forms() {
        assert_eq!(
            pat("orders"),
            TablePattern {
                schema: "public".into(),
                table: "orders".into()
            }
        );
        assert_eq!(
            pat("sales.*"),
            TablePattern {
                schema: "sales".into(),
                table: "*".into()
            }
        );
        assert_eq!(pat("*.*").to_string(), "*.*");
        for bad in [
            "",
            ".",
            "a.",
            ".b",
            "a.b.c",
            "a b",
            "a,b",
            "sch.\"t\"",
            "a.b;",
        ] {
            assert!(
                TablePattern::parse(bad).is_err(),
                "{bad:?} should be rejected"
            );
        }
        assert!(TablePattern::parse(&"x".repeat(64)).is_err());
        assert!(TablePattern::parse(&"x".repeat(63)).is_ok());
    }

    #[test]
    fn glob_matching() {
        assert!(glob("*", ""));
        assert!(glob("*", "abc"));
        assert!(glob("a*c", "abbbc"));
        assert!(glob("a*c", "ac"));
        assert!(!glob("a*c", "acb"));
        assert!(glob("*_log", "audit_log"));
        assert!(!glob("*_log", "audit_logs"));
        assert!(glob("a**b*c", "axxbyyc"));
        assert!(!glob("abc", "ab"));
        assert!(glob(&"*a".repeat(30), &"a".repeat(100)));
    }

    #[test]
    fn filter_include_exclude() {
        let f = TableFilter {
            include: vec![pat("public.*"), pat("sales.orders")],
            exclude: vec![pat("public.*_tmp")],
        };
        assert!(f.matches("public", "users"));
        assert!(f.matches("sales", "orders"));
        assert!(!f.matches("sales", "refunds"));
        assert!(!f.matches("public", "import_tmp"));
        assert!(TableFilter::default().matches("any", "thing"));
    }
}
