//! `[[databases]]`: several migrations in one session, each entry checked
//! against the shared sections and against the others.

use super::*;
use crate::config::fleet::NAME_MAX;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDatabase {
    name: Spanned<String>,
    /// The database on `[source]`'s server (default: the name).
    source_dbname: Option<Spanned<String>>,
    /// The database on `[target]`'s server (default: the source's name).
    target_dbname: Option<Spanned<String>>,
    /// Another server altogether, instead of `source_dbname`.
    source: Option<RawConn>,
    target: Option<RawConn>,
    app_roles: Option<Vec<Spanned<String>>>,
    publication: Option<Spanned<String>>,
    subscription: Option<Spanned<String>>,
    slot: Option<Spanned<String>>,
    deployments: Option<Spanned<Vec<Spanned<String>>>>,
    config_object: Option<Spanned<String>>,
    config_key: Option<Spanned<String>>,
    switch_to_env: Option<Spanned<String>>,
    switch_to_file: Option<Spanned<String>>,
    /// `[freeze] method = "read-only-role"`: this database's read-only
    /// role and the value its config key holds while frozen.
    read_only_role: Option<Spanned<String>>,
    read_only_to_env: Option<Spanned<String>>,
    read_only_to_file: Option<Spanned<String>>,
}

impl Validator<'_> {
    pub(super) fn databases(
        &self,
        raw: Vec<RawDatabase>,
        shared: &Config,
        base: &Path,
    ) -> Result<Vec<DatabaseCfg>> {
        let mut out: Vec<DatabaseCfg> = Vec::new();
        for (i, mut d) in raw.into_iter().enumerate() {
            let at = |field: &str| format!("databases[{i}].{field}");
            let name_span = d.name.span();
            let name = d.name.get_ref();
            let valid = name.starts_with(|c: char| c.is_ascii_lowercase())
                && name.len() <= NAME_MAX
                && name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
            if !valid {
                return Err(self.err(
                    name_span,
                    &at("name"),
                    format!(
                        "\"{}\" is not a database's name here: a lower-case letter, then \
                         lower-case letters, digits and _, at most {NAME_MAX}",
                        name.escape_debug()
                    ),
                ));
            }
            if out.iter().any(|o| &o.name == name) {
                return Err(self.err(
                    name_span,
                    &at("name"),
                    format!("another entry is already named \"{name}\""),
                ));
            }
            let source = self.side(
                &at("source"),
                d.source.take(),
                &d.source_dbname,
                &shared.source,
                name,
            )?;
            let target_default = source.params.dbname.clone();
            let target = self.side(
                &at("target"),
                d.target.take(),
                &d.target_dbname,
                &shared.target,
                &target_default,
            )?;
            if let Some(same) = source.same_database(&target) {
                return Err(self.err(
                    name_span,
                    &at("name"),
                    format!("its target is the same database as its source ({same})"),
                ));
            }
            for other in &out {
                for (mine, theirs, side) in [
                    (&source, &other.source, "source"),
                    (&target, &other.target, "target"),
                ] {
                    if let Some(same) = mine.same_database(theirs) {
                        return Err(self.err(
                            name_span,
                            &at("name"),
                            format!(
                                "its {side} is also \"{}\"'s ({same}): one migration per database",
                                other.name
                            ),
                        ));
                    }
                }
            }
            let replication = self.entry_replication(&d, &shared.replication, name, &at)?;
            let app_roles = match &d.app_roles {
                Some(roles) => roles
                    .iter()
                    .enumerate()
                    .map(|(j, r)| self.identifier(r, &at(&format!("app_roles[{j}]"))))
                    .collect::<Result<Vec<_>>>()?,
                None => shared.freeze.app_roles.clone(),
            };
            // The freeze sets a role's default for the whole server: two
            // databases on one server must not share a role, or freezing
            // (and giving back) one would do it to the other.
            let same_server = |a: &ConnConfig, b: &ConnConfig| {
                a.params.hosts.iter().any(|x| {
                    b.params
                        .hosts
                        .iter()
                        .any(|y| x.host == y.host && x.hostaddr == y.hostaddr && x.port == y.port)
                })
            };
            for other in out.iter().filter(|o| same_server(&o.source, &source)) {
                if let Some(role) = app_roles.iter().find(|r| other.app_roles.contains(r)) {
                    let span = d
                        .app_roles
                        .as_ref()
                        .and_then(|r| r.first())
                        .map_or(name_span.clone(), Spanned::span);
                    return Err(self.err(
                        span,
                        &at("app_roles"),
                        format!(
                            "role {role} is also \"{}\"'s on the same server: the freeze makes a \
                             role read-only on the whole server, so give each database its own \
                             application roles",
                            other.name
                        ),
                    ));
                }
            }
            let kube_fields = [
                d.deployments.as_ref().map(Spanned::span),
                d.config_object.as_ref().map(Spanned::span),
                d.config_key.as_ref().map(Spanned::span),
            ];
            if let (None, Some(span)) = (&shared.kubernetes, kube_fields.iter().flatten().next()) {
                return Err(self.err(
                    span.clone(),
                    &at("config_object"),
                    "names the application's side, but there is no [kubernetes] section".into(),
                ));
            }
            let deployments = match &d.deployments {
                None => None,
                Some(list) if list.get_ref().is_empty() => {
                    return Err(self.err(
                        list.span(),
                        &at("deployments"),
                        "name at least one Deployment that uses this database".into(),
                    ))
                }
                Some(list) => Some(
                    list.get_ref()
                        .iter()
                        .map(|n| self.non_empty(n, &at("deployments")).map(str::to_string))
                        .collect::<Result<Vec<_>>>()?,
                ),
            };
            let switch_to = self.config_target(
                &format!("databases[{i}]"),
                ConfigTarget {
                    object: &d.config_object,
                    key: &d.config_key,
                    env: &d.switch_to_env,
                    file: &d.switch_to_file,
                },
                base,
            )?;
            let read_only_to = self.value_source(
                &at("read_only_to"),
                &d.read_only_to_env,
                &d.read_only_to_file,
                base,
            )?;
            let read_only_role = d
                .read_only_role
                .as_ref()
                .map(|r| self.identifier(r, &at("read_only_role")))
                .transpose()?;
            let entry = DatabaseCfg {
                read_only_role,
                read_only_to,
                name: name.clone(),
                source,
                target,
                replication,
                app_roles,
                deployments,
                config_object: d.config_object.as_ref().map(|o| o.get_ref().clone()),
                config_key: d.config_key.as_ref().map(|k| k.get_ref().clone()),
                switch_to,
            };
            // One switch per config object: a shared one would move every
            // database's clients at once.
            let object = |e: &DatabaseCfg| {
                let k = shared.kubernetes.as_ref()?;
                match &e.config_object {
                    Some(o) => Some((o.clone(), e.config_key.clone())),
                    None => Some((k.config_object.clone()?, k.config_key.clone())),
                }
            };
            if let Some(mine) = object(&entry) {
                if let Some(other) = out.iter().find(|o| object(o).as_ref() == Some(&mine)) {
                    return Err(self.err(
                        d.config_object.as_ref().map_or(name_span, Spanned::span),
                        &at("config_object"),
                        format!(
                            "{} is also \"{}\"'s: give each database its own config object",
                            mine.0, other.name
                        ),
                    ));
                }
            }
            out.push(entry);
        }
        Ok(out)
    }

    /// One side of an entry: its own server, or the shared one with this
    /// database (`dbname`, else `default`).
    fn side(
        &self,
        field: &str,
        own: Option<RawConn>,
        dbname: &Option<Spanned<String>>,
        shared: &ConnConfig,
        default: &str,
    ) -> Result<ConnConfig> {
        match (own, dbname) {
            (Some(_), Some(n)) => Err(self.err(
                n.span(),
                &format!("{field}_dbname"),
                format!("set {field} (its own server) or {field}_dbname, not both"),
            )),
            (Some(raw), None) => {
                let labelled = raw.label.is_some();
                let mut conn = self.conn(field, raw)?;
                if !labelled {
                    conn.label = shared.label.clone();
                }
                Ok(conn)
            }
            (None, Some(n)) => {
                Ok(shared.for_database(&self.identifier(n, &format!("{field}_dbname"))?))
            }
            (None, None) => Ok(shared.for_database(default)),
        }
    }

    /// The entry's publication, subscription and slot: as written, or the
    /// shared names with `_NAME` added (each database replicates apart).
    fn entry_replication(
        &self,
        d: &RawDatabase,
        shared: &Replication,
        name: &str,
        at: &dyn Fn(&str) -> String,
    ) -> Result<Replication> {
        let named = |v: &Option<Spanned<String>>, field: &str, default: &str| match v {
            Some(v) => self.identifier(v, &at(field)),
            None => Ok(format!("{default}_{name}")),
        };
        let publication = named(&d.publication, "publication", &shared.publication)?;
        let subscription = named(&d.subscription, "subscription", &shared.subscription)?;
        let slot = match &d.slot {
            Some(v) => self.identifier(v, &at("slot"))?,
            None => subscription.clone(),
        };
        if let Some(c) = super::slot_name_problem(&slot) {
            let (span, field) = match (&d.slot, &d.subscription) {
                (Some(s), _) => (s.span(), at("slot")),
                (None, Some(s)) => (s.span(), at("subscription")),
                (None, None) => (d.name.span(), at("name")),
            };
            return Err(self.err(
                span,
                &field,
                format!(
                    "\"{}\" is not a valid replication slot name: unexpected \"{}\" \
                     (lowercase letters, digits and _ only)",
                    slot.escape_debug(),
                    c.escape_debug()
                ),
            ));
        }
        Ok(Replication {
            publication,
            subscription,
            slot,
            ..shared.clone()
        })
    }
}
