//! From the file as written (`Raw*`, with spans) to a validated [`Config`].

use std::ops::Range;
use std::path::Path;

use serde::Deserialize;
use toml::Spanned;

use super::*;

mod databases;
mod freeze;
mod pooler;

/// Parses `ctx.text` and validates every field.
pub(super) fn config(ctx: &diag::Ctx<'_>, env: &dyn Env) -> Result<Config, ConfigError> {
    let raw: RawConfig = toml::from_str(ctx.text).map_err(|e| ctx.toml_error(&e))?;
    Validator { ctx, env }.config(raw)
}

// ---------------------------------------------------------------------------
// Raw (as written) shapes. Every field that needs a semantic check is Spanned
// so the check can point at it.

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    // Not Spanned: toml cannot give spans for tables written with dotted keys.
    source: Option<RawConn>,
    target: Option<RawConn>,
    replication: Option<RawReplication>,
    tables: Option<RawTables>,
    thresholds: Option<RawThresholds>,
    monitor: Option<RawMonitor>,
    session: Option<RawSession>,
    report: Option<RawReport>,
    ui: Option<RawUi>,
    lab: Option<RawLab>,
    kubernetes: Option<RawKube>,
    verify: Option<RawVerify>,
    freeze: Option<RawFreeze>,
    runbook: Option<RawRunbook>,
    databases: Option<Vec<databases::RawDatabase>>,
    pooler: Option<pooler::RawPooler>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRunbook {
    variant: Option<crate::runbook::Variant>,
    dump_jobs: Option<Spanned<u64>>,
    copy: Option<Spanned<String>>,
    job: Option<RawCopyJob>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCopyJob {
    namespace: Option<Spanned<String>>,
    image: Option<Spanned<String>>,
    secret: Option<Spanned<String>>,
    secret_key: Option<Spanned<String>>,
    user: Option<Spanned<String>>,
    source_host: Option<Spanned<String>>,
    target_host: Option<Spanned<String>>,
    deadline_secs: Option<Spanned<u64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFreeze {
    app_roles: Option<Vec<Spanned<String>>>,
    method: Option<Spanned<super::FreezeMethod>>,
    read_only_role: Option<Spanned<String>>,
    budget_secs: Option<Spanned<u64>>,
    on_budget_exceeded: Option<super::BudgetAction>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawVerify {
    parallelism: Option<Spanned<u64>>,
    statement_timeout_ms: Option<Spanned<u64>>,
    updated_at: Option<std::collections::BTreeMap<Spanned<String>, Spanned<String>>>,
    keys: Option<RawKeys>,
}

/// Table name → the columns that identify its rows, with spans for errors.
type RawKeys = std::collections::BTreeMap<Spanned<String>, Spanned<Vec<Spanned<String>>>>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKube {
    kubeconfig: Option<Spanned<String>>,
    context: Option<Spanned<String>>,
    namespace: Option<Spanned<String>>,
    deployments: Spanned<Vec<Spanned<String>>>,
    config_object: Option<Spanned<String>>,
    config_key: Option<Spanned<String>>,
    switch_to_env: Option<Spanned<String>>,
    switch_to_file: Option<Spanned<String>>,
    read_only_to_env: Option<Spanned<String>>,
    read_only_to_file: Option<Spanned<String>>,
    changes: Option<Spanned<super::Changes>>,
    gitops_wait_secs: Option<Spanned<u64>>,
    namespaces: Option<Vec<Spanned<String>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConn {
    dsn: Spanned<String>,
    password_env: Option<Spanned<String>>,
    label: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawReplication {
    publication: Option<Spanned<String>>,
    subscription: Option<Spanned<String>>,
    slot: Option<Spanned<String>>,
    sequence_stride: Option<Spanned<u64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTables {
    include: Option<Spanned<Vec<Spanned<String>>>>,
    exclude: Option<Vec<Spanned<String>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawThresholds {
    max_lag_bytes: Option<Spanned<u64>>,
    max_lag_seconds: Option<Spanned<f64>>,
    max_retained_wal_bytes: Option<Spanned<u64>>,
    stale_after_seconds: Option<Spanned<f64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMonitor {
    refresh_ms: Option<Spanned<u64>>,
    statement_timeout_ms: Option<Spanned<u64>>,
    connect_timeout_ms: Option<Spanned<u64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSession {
    dir: Option<Spanned<String>>,
    group: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawReport {
    path: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUi {
    theme: Option<Spanned<String>>,
    ascii: Option<Spanned<bool>>,
    themes_dir: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLab {
    dir: Spanned<String>,
}

/// Where a switch goes and what it writes, as written.
struct ConfigTarget<'a> {
    object: &'a Option<Spanned<String>>,
    key: &'a Option<Spanned<String>>,
    env: &'a Option<Spanned<String>>,
    file: &'a Option<Spanned<String>>,
}

/// The first character PostgreSQL refuses in a replication slot's name.
fn slot_name_problem(slot: &str) -> Option<char> {
    slot.chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_'))
}

struct Validator<'a> {
    ctx: &'a diag::Ctx<'a>,
    env: &'a dyn Env,
}

type Result<T, E = ConfigError> = std::result::Result<T, E>;

impl Validator<'_> {
    fn err(&self, span: Range<usize>, field: &str, message: String) -> ConfigError {
        self.ctx.error(Some(span), Some(field), message)
    }

    fn config(&self, raw: RawConfig) -> Result<Config> {
        let missing = |section: &str| {
            self.ctx
                .error(None, None, format!("missing section [{section}]"))
        };
        let source_raw = raw.source.ok_or_else(|| missing("source"))?;
        let target_raw = raw.target.ok_or_else(|| missing("target"))?;
        let source = self.conn("source", source_raw)?;
        let target_dsn_span = target_raw.dsn.span();
        let target = self.conn("target", target_raw)?;
        if let Some(shared) = source.same_database(&target) {
            return Err(self.err(
                target_dsn_span,
                "target.dsn",
                format!("target is the same database as source ({shared})"),
            ));
        }
        let thresholds = self.thresholds(&raw.thresholds)?;
        let monitor = self.monitor(raw.monitor)?;
        self.stale_vs_refresh(&raw.thresholds, &thresholds, &monitor)?;
        let base = self.ctx.base_dir();
        let freeze_method = raw.freeze.as_ref().and_then(|f| f.method.clone());
        let mut config = Config {
            path: self.ctx.path.to_path_buf(),
            source,
            target,
            replication: self.replication(raw.replication)?,
            tables: self.tables(raw.tables)?,
            thresholds,
            monitor,
            session: self.session(raw.session, &base)?,
            report: ReportCfg {
                path: match raw.report.and_then(|r| r.path) {
                    Some(p) => Some(base.join(self.non_empty(&p, "report.path")?)),
                    None => None,
                },
            },
            ui: self.ui(raw.ui, &base)?,
            lab: match raw.lab {
                Some(l) => Some(LabCfg {
                    dir: base.join(self.non_empty(&l.dir, "lab.dir")?),
                }),
                None => None,
            },
            verify: self.verify(raw.verify)?,
            freeze: self.freeze(raw.freeze)?,
            runbook: self.runbook(raw.runbook, raw.kubernetes.is_some())?,
            pooler: self.pooler(raw.pooler, raw.kubernetes.is_some(), &base)?,
            kubernetes: match raw.kubernetes {
                Some(k) => Some(self.kubernetes(k, &base)?),
                None => None,
            },
            databases: Vec::new(),
            database: None,
        };
        config.databases = self.databases(raw.databases.unwrap_or_default(), &config, &base)?;
        for db in config.fleet() {
            self.read_only_freeze(&freeze_method, &db)?;
        }
        Ok(config)
    }

    fn session(&self, raw: Option<RawSession>, base: &Path) -> Result<SessionCfg> {
        let raw = raw.unwrap_or(RawSession {
            dir: None,
            group: None,
        });
        let dir = match raw.dir {
            Some(d) => base.join(self.non_empty(&d, "session.dir")?),
            None => base.join("sessions"),
        };
        let group = match raw.group {
            None => None,
            Some(g) => {
                let name = self.non_empty(&g, "session.group")?;
                match nix::unistd::Group::from_name(name) {
                    Ok(Some(found)) => Some((name.to_string(), found.gid.as_raw())),
                    Ok(None) => {
                        return Err(self.err(
                            g.span(),
                            "session.group",
                            format!("no group named {name} on this host"),
                        ))
                    }
                    Err(e) => {
                        return Err(self.err(
                            g.span(),
                            "session.group",
                            format!("looking up group {name}: {e}"),
                        ))
                    }
                }
            }
        };
        Ok(SessionCfg { dir, group })
    }

    fn kubernetes(&self, k: RawKube, base: &Path) -> Result<KubeCfg> {
        let opt = |v: &Option<Spanned<String>>, field: &str| -> Result<Option<String>> {
            v.as_ref()
                .map(|v| self.non_empty(v, field).map(str::to_string))
                .transpose()
        };
        if k.deployments.get_ref().is_empty() {
            return Err(self.err(
                k.deployments.span(),
                "kubernetes.deployments",
                "name at least one Deployment that uses the database".into(),
            ));
        }
        let deployments = k
            .deployments
            .get_ref()
            .iter()
            .map(|d| {
                self.non_empty(d, "kubernetes.deployments")
                    .map(str::to_string)
            })
            .collect::<Result<Vec<_>>>()?;
        let switch_to = self.config_target(
            "kubernetes",
            ConfigTarget {
                object: &k.config_object,
                key: &k.config_key,
                env: &k.switch_to_env,
                file: &k.switch_to_file,
            },
            base,
        )?;
        let changes = k.changes.as_ref().map(|c| *c.get_ref()).unwrap_or_default();
        let gitops_without_object = k
            .changes
            .as_ref()
            .filter(|_| changes == super::Changes::Gitops && k.config_object.is_none());
        if let Some(c) = gitops_without_object {
            return Err(self.err(
                c.span(),
                "kubernetes.changes",
                "changes = \"gitops\" waits for a change to config_object: name it (and config_key)"
                    .into(),
            ));
        }
        let namespaces = k
            .namespaces
            .iter()
            .flatten()
            .enumerate()
            .map(|(i, n)| self.k8s_name(n, &format!("kubernetes.namespaces[{i}]")))
            .collect::<Result<Vec<_>>>()?;
        Ok(KubeCfg {
            namespaces,
            changes,
            gitops_wait_secs: self.ranged(
                &k.gitops_wait_secs,
                "kubernetes.gitops_wait_secs",
                KubeCfg::GITOPS_WAIT_SECS,
                KubeCfg::DEFAULT_GITOPS_WAIT_SECS,
            )?,
            switch_to,
            read_only_to: self.value_source(
                "kubernetes.read_only_to",
                &k.read_only_to_env,
                &k.read_only_to_file,
                base,
            )?,
            kubeconfig: opt(&k.kubeconfig, "kubernetes.kubeconfig")?.map(|p| base.join(p)),
            context: opt(&k.context, "kubernetes.context")?,
            namespace: opt(&k.namespace, "kubernetes.namespace")?,
            deployments,
            config_object: opt(&k.config_object, "kubernetes.config_object")?,
            config_key: opt(&k.config_key, "kubernetes.config_key")?,
        })
    }

    /// The config object, its key and the switch value's source, as
    /// `[kubernetes]` or a `[[databases]]` entry (`prefix`) names them.
    fn config_target(
        &self,
        prefix: &str,
        t: ConfigTarget<'_>,
        base: &Path,
    ) -> Result<Option<ValueSource>> {
        if let Some(obj) = t.object {
            let ok = obj.get_ref().split_once('/').is_some_and(|(kind, name)| {
                matches!(kind, "configmap" | "secret" | "service") && !name.is_empty()
            });
            if !ok {
                return Err(self.err(
                    obj.span(),
                    &format!("{prefix}.config_object"),
                    format!(
                        "\"{}\" is not configmap/NAME, secret/NAME or service/NAME",
                        obj.get_ref().escape_debug()
                    ),
                ));
            }
        }
        let (env_field, file_field) = (
            format!("{prefix}.switch_to_env"),
            format!("{prefix}.switch_to_file"),
        );
        let switch_to = match (t.env, t.file) {
            (Some(_), Some(f)) => {
                return Err(self.err(
                    f.span(),
                    &file_field,
                    "set switch_to_env or switch_to_file, not both".into(),
                ))
            }
            (Some(e), None) => Some(ValueSource::Env(self.non_empty(e, &env_field)?.to_string())),
            (None, Some(f)) => Some(ValueSource::File(
                base.join(self.non_empty(f, &file_field)?),
            )),
            (None, None) => None,
        };
        if let (Some(_), None) = (&switch_to, t.key) {
            let (span, field) = match (t.env, t.file) {
                (Some(e), _) => (e.span(), &env_field),
                (_, Some(f)) => (f.span(), &file_field),
                _ => (0..0, &env_field),
            };
            return Err(self.err(
                span,
                field,
                "a switch value needs config_object and config_key to say where it goes".into(),
            ));
        }
        if let (Some(key), None) = (t.key, t.object) {
            return Err(self.err(
                key.span(),
                &format!("{prefix}.config_key"),
                "config_key needs config_object (configmap/NAME, secret/NAME or service/NAME)"
                    .into(),
            ));
        }
        Ok(switch_to)
    }

    fn non_empty<'s>(&self, v: &'s Spanned<String>, field: &str) -> Result<&'s str> {
        if v.get_ref().trim().is_empty() {
            Err(self.err(v.span(), field, "must not be empty".into()))
        } else {
            Ok(v.get_ref())
        }
    }

    fn conn(&self, side: &str, raw: RawConn) -> Result<ConnConfig> {
        let label = match &raw.label {
            Some(l) => {
                let s = self.non_empty(l, &format!("{side}.label"))?;
                if s.chars().any(char::is_control) {
                    return Err(self.err(
                        l.span(),
                        &format!("{side}.label"),
                        "must not contain control characters".into(),
                    ));
                }
                s.to_owned()
            }
            None => side.to_owned(),
        };
        let password_env = match &raw.password_env {
            Some(p) => {
                let name = p.get_ref();
                let valid = !name.is_empty()
                    && !name.starts_with(|c: char| c.is_ascii_digit())
                    && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
                if !valid {
                    return Err(self.err(
                        p.span(),
                        &format!("{side}.password_env"),
                        format!(
                            "invalid environment variable name \"{}\" (expected letters, digits and _)",
                            name.escape_debug()
                        ),
                    ));
                }
                Some(name.as_str())
            }
            None => None,
        };
        let dsn = raw.dsn.get_ref();
        ConnConfig::from_dsn(label, dsn, password_env, self.env).map_err(|e| match e {
            ConnConfigError::Dsn(e) => {
                let at = self.ctx.offset_in_string(raw.dsn.span(), dsn, e.offset);
                self.ctx
                    .error(Some(at..at), Some(&format!("{side}.dsn")), e.message)
            }
            ConnConfigError::PasswordEnv(var) => self.err(
                raw.password_env
                    .as_ref()
                    .map(Spanned::span)
                    .unwrap_or(raw.dsn.span()),
                &format!("{side}.password_env"),
                format!("environment variable {var} is not set or empty"),
            ),
        })
    }

    fn identifier(&self, v: &Spanned<String>, field: &str) -> Result<String> {
        let s = v.get_ref();
        if s.is_empty() {
            return Err(self.err(v.span(), field, "must not be empty".into()));
        }
        if s.len() > 63 {
            return Err(self.err(
                v.span(),
                field,
                format!(
                    "\"{}\" is {} bytes long; PostgreSQL names are at most 63 bytes",
                    s.escape_debug(),
                    s.len()
                ),
            ));
        }
        if s.contains('\0') {
            return Err(self.err(v.span(), field, "must not contain NUL".into()));
        }
        Ok(s.clone())
    }

    fn replication(&self, raw: Option<RawReplication>) -> Result<Replication> {
        let d = Replication::default();
        let Some(raw) = raw else { return Ok(d) };
        let publication = match &raw.publication {
            Some(v) => self.identifier(v, "replication.publication")?,
            None => d.publication,
        };
        let subscription = match &raw.subscription {
            Some(v) => self.identifier(v, "replication.subscription")?,
            None => d.subscription,
        };
        // PostgreSQL only accepts [a-z0-9_] in slot names, and CREATE SUBSCRIPTION
        // derives the slot from the subscription name, so check whichever is used.
        let (slot, slot_field, slot_span) = match &raw.slot {
            Some(v) => (
                self.identifier(v, "replication.slot")?,
                "replication.slot",
                Some(v.span()),
            ),
            None => (
                subscription.clone(),
                "replication.subscription",
                raw.subscription.as_ref().map(Spanned::span),
            ),
        };
        if let Some(c) = slot_name_problem(&slot) {
            let mut message = format!(
                "\"{}\" is not a valid replication slot name: unexpected \"{}\" (lowercase letters, digits and _ only)",
                slot.escape_debug(),
                c.escape_debug()
            );
            if raw.slot.is_none() {
                message.push_str("; set replication.slot explicitly");
            }
            return Err(self.err(slot_span.unwrap_or(0..0), slot_field, message));
        }
        Ok(Replication {
            publication,
            subscription,
            slot,
            sequence_stride: self.ranged(
                &raw.sequence_stride,
                "replication.sequence_stride",
                Replication::SEQUENCE_STRIDE,
                d.sequence_stride,
            )?,
        })
    }

    fn patterns(&self, list: &[Spanned<String>], field: &str) -> Result<Vec<TablePattern>> {
        list.iter()
            .enumerate()
            .map(|(i, p)| {
                TablePattern::parse(p.get_ref())
                    .map_err(|m| self.err(p.span(), &format!("{field}[{i}]"), m))
            })
            .collect()
    }

    fn tables(&self, raw: Option<RawTables>) -> Result<TableFilter> {
        let mut filter = TableFilter::default();
        let Some(raw) = raw else { return Ok(filter) };
        if let Some(include) = &raw.include {
            if include.get_ref().is_empty() {
                return Err(self.err(
                    include.span(),
                    "tables.include",
                    "must list at least one pattern (use [\"*.*\"] for all tables)".into(),
                ));
            }
            filter.include = self.patterns(include.get_ref(), "tables.include")?;
        }
        if let Some(exclude) = &raw.exclude {
            filter.exclude = self.patterns(exclude, "tables.exclude")?;
        }
        Ok(filter)
    }

    fn verify(&self, raw: Option<RawVerify>) -> Result<VerifyCfg> {
        let Some(raw) = raw else {
            return Ok(VerifyCfg::default());
        };
        let table = |t: &Spanned<String>, field: &str| -> Result<crate::session::TableRef> {
            match t.get_ref().split_once('.') {
                Some((schema, name)) if !schema.is_empty() && !name.is_empty() => {
                    Ok(crate::session::TableRef::new(schema, name))
                }
                _ => Err(self.err(
                    t.span(),
                    field,
                    format!("\"{}\" is not schema.table", t.get_ref().escape_debug()),
                )),
            }
        };
        let mut cfg = VerifyCfg {
            parallelism: match &raw.parallelism {
                Some(_) => Some(self.ranged(
                    &raw.parallelism,
                    "verify.parallelism",
                    VerifyCfg::PARALLELISM,
                    1,
                )? as usize),
                None => None,
            },
            statement_timeout_ms: self.ranged(
                &raw.statement_timeout_ms,
                "verify.statement_timeout_ms",
                VerifyCfg::STATEMENT_TIMEOUT_MS,
                VerifyCfg::DEFAULT_STATEMENT_TIMEOUT_MS,
            )?,
            ..VerifyCfg::default()
        };
        for (t, col) in raw.updated_at.iter().flatten() {
            let col = self.non_empty(col, "verify.updated_at")?;
            cfg.updated_at
                .insert(table(t, "verify.updated_at")?, col.to_string());
        }
        for (t, cols) in raw.keys.iter().flatten() {
            if cols.get_ref().is_empty() {
                return Err(self.err(
                    cols.span(),
                    "verify.keys",
                    "name at least one column".into(),
                ));
            }
            let cols = cols
                .get_ref()
                .iter()
                .map(|c| self.non_empty(c, "verify.keys").map(str::to_string))
                .collect::<Result<Vec<_>>>()?;
            cfg.keys.insert(table(t, "verify.keys")?, cols);
        }
        Ok(cfg)
    }

    /// A number as written in the file (so `1e300` is not shown with 300 digits).
    fn as_written(&self, span: Range<usize>, fallback: String) -> String {
        self.ctx
            .text
            .get(span)
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map_or(fallback, str::to_owned)
    }

    fn ranged_f64(
        &self,
        v: &Option<Spanned<f64>>,
        field: &str,
        range: std::ops::RangeInclusive<f64>,
        default: f64,
    ) -> Result<f64> {
        match v {
            // NaN is in no range, so `contains` refuses it too.
            Some(v) if !range.contains(v.get_ref()) => Err(self.err(
                v.span(),
                field,
                format!(
                    "{} is out of range (expected {}..={})",
                    self.as_written(v.span(), v.get_ref().to_string()),
                    range.start(),
                    range.end()
                ),
            )),
            Some(v) => Ok(*v.get_ref()),
            None => Ok(default),
        }
    }

    fn thresholds(&self, raw: &Option<RawThresholds>) -> Result<Thresholds> {
        let d = Thresholds::default();
        let Some(raw) = raw else { return Ok(d) };
        Ok(Thresholds {
            max_lag_bytes: self.ranged(
                &raw.max_lag_bytes,
                "thresholds.max_lag_bytes",
                Thresholds::MAX_LAG_BYTES,
                d.max_lag_bytes,
            )?,
            max_lag_seconds: self.ranged_f64(
                &raw.max_lag_seconds,
                "thresholds.max_lag_seconds",
                Thresholds::MAX_LAG_SECONDS,
                d.max_lag_seconds,
            )?,
            max_retained_wal_bytes: self.ranged(
                &raw.max_retained_wal_bytes,
                "thresholds.max_retained_wal_bytes",
                Thresholds::MAX_RETAINED_WAL_BYTES,
                d.max_retained_wal_bytes,
            )?,
            stale_after_seconds: self.ranged_f64(
                &raw.stale_after_seconds,
                "thresholds.stale_after_seconds",
                Thresholds::STALE_AFTER_SECONDS,
                d.stale_after_seconds,
            )?,
        })
    }

    /// Readings refresh every `refresh_ms`; a staleness limit at or below
    /// that would flag every reading as stale between two refreshes.
    fn stale_vs_refresh(
        &self,
        raw: &Option<RawThresholds>,
        t: &Thresholds,
        m: &Monitor,
    ) -> Result<()> {
        if t.stale_after_seconds * 1000.0 > m.refresh_ms as f64 {
            return Ok(());
        }
        let span = raw
            .as_ref()
            .and_then(|r| r.stale_after_seconds.as_ref())
            .map(Spanned::span);
        Err(self.ctx.error(
            span,
            Some("thresholds.stale_after_seconds"),
            format!(
                "{} s is not longer than monitor.refresh_ms ({} ms): every reading would show as stale",
                t.stale_after_seconds, m.refresh_ms
            ),
        ))
    }

    fn ranged(
        &self,
        v: &Option<Spanned<u64>>,
        field: &str,
        range: std::ops::RangeInclusive<u64>,
        default: u64,
    ) -> Result<u64> {
        match v {
            Some(v) if !range.contains(v.get_ref()) => Err(self.err(
                v.span(),
                field,
                format!(
                    "{} is out of range (expected {}..={})",
                    v.get_ref(),
                    range.start(),
                    range.end()
                ),
            )),
            Some(v) => Ok(*v.get_ref()),
            None => Ok(default),
        }
    }

    fn runbook(&self, raw: Option<RawRunbook>, kube: bool) -> Result<RunbookCfg> {
        let d = RunbookCfg::default();
        let Some(raw) = raw else { return Ok(d) };
        let variant = raw.variant.unwrap_or(d.variant);
        let in_job = match &raw.copy {
            None => false,
            Some(c) => match c.get_ref().as_str() {
                "local" => false,
                "job" if variant != crate::runbook::Variant::DumpRestore => return Err(self.err(
                    c.span(),
                    "runbook.copy",
                    "only the dump-restore runbook copies: set runbook.variant = \"dump-restore\""
                        .into(),
                )),
                "job" if !kube => {
                    return Err(self.err(
                        c.span(),
                        "runbook.copy",
                        "a Job runs in the cluster [kubernetes] names, and there is none".into(),
                    ))
                }
                "job" => true,
                other => {
                    return Err(self.err(
                        c.span(),
                        "runbook.copy",
                        format!("\"{other}\" is not a place to copy from (expected local or job)"),
                    ))
                }
            },
        };
        let copy_job = match (in_job, raw.job) {
            (true, Some(j)) => Some(self.copy_job(j)?),
            (true, None) => {
                let span = raw.copy.as_ref().map(Spanned::span);
                return Err(self.ctx.error(
                    span,
                    Some("runbook.job.secret"),
                    "the Job needs [runbook.job] secret: the Secret with the password file it \
                     connects with"
                        .into(),
                ));
            }
            (false, _) => None,
        };
        Ok(RunbookCfg {
            variant,
            dump_jobs: self.ranged(
                &raw.dump_jobs,
                "runbook.dump_jobs",
                RunbookCfg::DUMP_JOBS,
                d.dump_jobs,
            )?,
            copy_job,
        })
    }

    fn copy_job(&self, j: RawCopyJob) -> Result<CopyJobCfg> {
        let opt = |v: &Option<Spanned<String>>, field: &str| -> Result<Option<String>> {
            v.as_ref()
                .map(|v| self.non_empty(v, field).map(str::to_string))
                .transpose()
        };
        let secret = match &j.secret {
            Some(s) => self.k8s_name(s, "runbook.job.secret")?,
            None => {
                return Err(self.ctx.error(
                    None,
                    Some("runbook.job.secret"),
                    "missing: the Secret with the password file the Job connects with".into(),
                ))
            }
        };
        let host = |v: &Option<Spanned<String>>, field: &str| -> Result<Option<String>> {
            let Some(h) = v else { return Ok(None) };
            let s = self.non_empty(h, field)?;
            let port_ok = s
                .rsplit_once(':')
                .is_none_or(|(_, p)| p.parse::<u16>().is_ok_and(|p| p > 0));
            if !port_ok || s.contains(char::is_whitespace) {
                return Err(self.err(h.span(), field, format!("\"{s}\" is not host or host:port")));
            }
            Ok(Some(s.to_string()))
        };
        Ok(CopyJobCfg {
            namespace: match &j.namespace {
                Some(n) => Some(self.k8s_name(n, "runbook.job.namespace")?),
                None => None,
            },
            image: opt(&j.image, "runbook.job.image")?
                .unwrap_or_else(|| CopyJobCfg::DEFAULT_IMAGE.into()),
            secret,
            secret_key: opt(&j.secret_key, "runbook.job.secret_key")?
                .unwrap_or_else(|| CopyJobCfg::DEFAULT_SECRET_KEY.into()),
            user: opt(&j.user, "runbook.job.user")?,
            source_host: host(&j.source_host, "runbook.job.source_host")?,
            target_host: host(&j.target_host, "runbook.job.target_host")?,
            deadline_secs: self.ranged(
                &j.deadline_secs,
                "runbook.job.deadline_secs",
                CopyJobCfg::DEADLINE_SECS,
                CopyJobCfg::DEFAULT_DEADLINE_SECS,
            )?,
        })
    }

    /// A Kubernetes object name (RFC 1123 label: lower-case letters,
    /// digits and '-', at most 63).
    fn k8s_name(&self, v: &Spanned<String>, field: &str) -> Result<String> {
        let s = self.non_empty(v, field)?;
        let ok = s.len() <= 63
            && s.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            && !s.starts_with('-')
            && !s.ends_with('-');
        if !ok {
            return Err(self.err(
                v.span(),
                field,
                format!(
                    "\"{s}\" is not a Kubernetes name (lower-case letters, digits and '-', at most 63)"
                ),
            ));
        }
        Ok(s.to_string())
    }

    fn monitor(&self, raw: Option<RawMonitor>) -> Result<Monitor> {
        let d = Monitor::default();
        let Some(raw) = raw else { return Ok(d) };
        Ok(Monitor {
            refresh_ms: self.ranged(
                &raw.refresh_ms,
                "monitor.refresh_ms",
                Monitor::REFRESH_MS,
                d.refresh_ms,
            )?,
            statement_timeout_ms: self.ranged(
                &raw.statement_timeout_ms,
                "monitor.statement_timeout_ms",
                Monitor::STATEMENT_TIMEOUT_MS,
                d.statement_timeout_ms,
            )?,
            connect_timeout_ms: self.ranged(
                &raw.connect_timeout_ms,
                "monitor.connect_timeout_ms",
                Monitor::CONNECT_TIMEOUT_MS,
                d.connect_timeout_ms,
            )?,
        })
    }

    fn ui(&self, raw: Option<RawUi>, base: &Path) -> Result<UiCfg> {
        let Some(raw) = raw else {
            return Ok(UiCfg::default());
        };
        let mut ui = UiCfg {
            ascii: raw.ascii.is_some_and(Spanned::into_inner),
            ..UiCfg::default()
        };
        if let Some(dir) = &raw.themes_dir {
            let dir = self.non_empty(dir, "ui.themes_dir")?;
            ui.themes_dir = Some(base.join(dir));
        }
        let Some(theme) = raw.theme else {
            return Ok(ui);
        };
        let name = self.non_empty(&theme, "ui.theme")?;
        ui.theme = name.to_owned();
        ui.theme_named = true;
        if ui.theme_is_file() {
            ui.theme = base.join(name).to_string_lossy().into_owned();
        }
        Ok(ui)
    }
}
