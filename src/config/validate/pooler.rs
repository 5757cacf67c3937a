//! `[pooler]`: PgBouncer between the application and the database — its
//! instances (listed, or the pods behind a Kubernetes Service), how to
//! reach their admin console, and the `[databases]` entry the switch
//! repoints in the file that holds it.

use super::*;
use crate::pooler::Instance;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPooler {
    service: Option<Spanned<String>>,
    port: Option<Spanned<toml::Value>>,
    instances: Option<Vec<Spanned<String>>>,
    admin_user: Option<Spanned<String>>,
    admin_password_env: Option<Spanned<String>>,
    admin_password_file: Option<Spanned<String>>,
    database: Spanned<String>,
    databases_file: Spanned<String>,
    pause_timeout_secs: Option<Spanned<u64>>,
}

impl Validator<'_> {
    pub(super) fn pooler(
        &self,
        raw: Option<RawPooler>,
        kube: bool,
        base: &Path,
    ) -> Result<Option<PoolerCfg>> {
        let Some(p) = raw else { return Ok(None) };
        let instances =
            match (&p.service, &p.instances) {
                (Some(s), Some(_)) => {
                    return Err(self.err(
                        s.span(),
                        "pooler.service",
                        "set pooler.service or pooler.instances, not both".into(),
                    ))
                }
                (Some(s), None) if !kube => return Err(self.err(
                    s.span(),
                    "pooler.service",
                    "the Service is looked up through [kubernetes], and there is none; list the \
                     instances instead (pooler.instances = [\"host:port\", …])"
                        .into(),
                )),
                (Some(s), None) => PoolerInstances::Service {
                    name: self.k8s_name(s, "pooler.service")?,
                    port: match &p.port {
                        None => None,
                        Some(v) => Some(match v.get_ref() {
                            toml::Value::Integer(n) if (1..=65_535).contains(n) => n.to_string(),
                            toml::Value::String(name) if !name.is_empty() => name.clone(),
                            _ => {
                                return Err(self.err(
                                    v.span(),
                                    "pooler.port",
                                    "expected the container port's name or number (1..=65535)"
                                        .into(),
                                ))
                            }
                        }),
                    },
                },
                (None, Some(list)) if list.is_empty() => {
                    return Err(self.ctx.error(
                        None,
                        Some("pooler.instances"),
                        "lists no instance".into(),
                    ))
                }
                (None, Some(list)) => PoolerInstances::Listed(
                    list.iter()
                        .enumerate()
                        .map(|(i, s)| {
                            Instance::parse(s.get_ref()).map_err(|e| {
                                self.err(s.span(), &format!("pooler.instances[{i}]"), e.to_string())
                            })
                        })
                        .collect::<Result<Vec<_>>>()?,
                ),
                (None, None) => return Err(self.err(
                    p.database.span(),
                    "pooler",
                    "name the instances: pooler.service (the pods behind a Kubernetes Service) \
                     or pooler.instances = [\"host:port\", …]"
                        .into(),
                )),
            };
        if let (Some(port), PoolerInstances::Listed(_)) = (&p.port, &instances) {
            return Err(self.err(
                port.span(),
                "pooler.port",
                "only with pooler.service (listed instances carry their port)".into(),
            ));
        }
        let database = self.non_empty(&p.database, "pooler.database")?;
        if database.contains(['"', ';', '\n', '\0']) {
            return Err(self.err(
                p.database.span(),
                "pooler.database",
                "must not contain quotes, semicolons or line breaks".into(),
            ));
        }
        Ok(Some(PoolerCfg {
            instances,
            admin_user: match &p.admin_user {
                Some(u) => self.non_empty(u, "pooler.admin_user")?.to_string(),
                None => PoolerCfg::DEFAULT_ADMIN_USER.into(),
            },
            admin_password: self.value_source(
                "pooler.admin_password",
                &p.admin_password_env,
                &p.admin_password_file,
                base,
            )?,
            database: database.to_string(),
            databases_file: base.join(self.non_empty(&p.databases_file, "pooler.databases_file")?),
            pause_timeout_secs: self.ranged(
                &p.pause_timeout_secs,
                "pooler.pause_timeout_secs",
                PoolerCfg::PAUSE_TIMEOUT_SECS,
                PoolerCfg::DEFAULT_PAUSE_TIMEOUT_SECS,
            )?,
        }))
    }
}
