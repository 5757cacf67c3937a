//! `[freeze]`: the roles, the budget, and how writes are frozen — by
//! privileges, or by switching the clients to a read-only role, which
//! needs the role, its value and the config object it goes into.

use super::*;

impl Validator<'_> {
    pub(super) fn freeze(&self, raw: Option<RawFreeze>) -> Result<FreezeCfg> {
        let d = FreezeCfg::default();
        let Some(raw) = raw else { return Ok(d) };
        Ok(FreezeCfg {
            app_roles: match &raw.app_roles {
                Some(roles) => roles
                    .iter()
                    .enumerate()
                    .map(|(i, r)| self.identifier(r, &format!("freeze.app_roles[{i}]")))
                    .collect::<Result<Vec<_>>>()?,
                None => d.app_roles,
            },
            budget_secs: self.ranged(
                &raw.budget_secs,
                "freeze.budget_secs",
                FreezeCfg::BUDGET_SECS,
                d.budget_secs,
            )?,
            on_budget_exceeded: raw.on_budget_exceeded.unwrap_or(d.on_budget_exceeded),
            method: raw.method.map(Spanned::into_inner).unwrap_or_default(),
            read_only_role: raw
                .read_only_role
                .as_ref()
                .map(|r| self.identifier(r, "freeze.read_only_role"))
                .transpose()?,
        })
    }

    /// `prefix_env` or `prefix_file` (not both), as a [`ValueSource`].
    pub(super) fn value_source(
        &self,
        prefix: &str,
        env: &Option<Spanned<String>>,
        file: &Option<Spanned<String>>,
        base: &Path,
    ) -> Result<Option<ValueSource>> {
        let (env_field, file_field) = (format!("{prefix}_env"), format!("{prefix}_file"));
        Ok(match (env, file) {
            (Some(_), Some(f)) => {
                return Err(self.err(
                    f.span(),
                    &file_field,
                    format!("set {env_field} or {file_field}, not both"),
                ))
            }
            (Some(e), None) => Some(ValueSource::Env(self.non_empty(e, &env_field)?.to_string())),
            (None, Some(f)) => Some(ValueSource::File(
                base.join(self.non_empty(f, &file_field)?),
            )),
            (None, None) => None,
        })
    }

    /// A freeze by a read-only role needs the role, the value that points
    /// the clients at it, and the config object that value goes into.
    pub(super) fn read_only_freeze(
        &self,
        method: &Option<Spanned<super::FreezeMethod>>,
        config: &Config,
    ) -> Result<()> {
        let Some(m) = method.as_ref().filter(|m| m.get_ref().is_read_only_role()) else {
            return Ok(());
        };
        let missing = if config.freeze.read_only_role.is_none() {
            Some("set [freeze] read_only_role: the role the clients connect as while frozen")
        } else if config.freeze.app_roles.is_empty() {
            Some(
                "set [freeze] app_roles: the writing roles, which must have no session left once \
                 the clients are read-only",
            )
        } else {
            match config.kubernetes.as_ref() {
                None => Some(
                    "a freeze by read-only role switches the clients' config: it needs \
                     [kubernetes] with config_object and config_key",
                ),
                Some(k) if k.config_object.is_none() || k.config_key.is_none() => Some(
                    "a freeze by read-only role writes config_key of config_object: name both \
                     in [kubernetes]",
                ),
                Some(k)
                    if k.config_object
                        .as_deref()
                        .is_some_and(|o| o.starts_with("service/")) =>
                {
                    Some(
                        "a freeze by read-only role changes a connection string: config_object \
                         must be a configmap or a secret, not a Service",
                    )
                }
                Some(k) if k.read_only_to.is_none() => Some(
                    "set [kubernetes] read_only_to_env or read_only_to_file: the value the \
                     config key holds while frozen (the source, as the read-only role)",
                ),
                Some(_) => None,
            }
        };
        match (missing, &config.database) {
            (Some(why), None) => Err(self.err(m.span(), "freeze.method", why.into())),
            // A [[databases]] entry's own read_only_role and read_only_to_*
            // stand in for the shared ones.
            (Some(why), Some(name)) => Err(self.err(
                m.span(),
                "freeze.method",
                format!("database {name}: {why} (or in its [[databases]] entry)"),
            )),
            (None, _) => Ok(()),
        }
    }
}
