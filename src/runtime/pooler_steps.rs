//! Runs the pooler's steps of a switch: `PAUSE` on every instance, the
//! entry repointed in its file, `RELOAD`, `RESUME`, the proof. The admin
//! connections live across the steps of one run ([`PoolerRun`]), and the
//! run remembers what it did, so that a failure anywhere between `PAUSE`
//! and `RESUME` can be undone: the entry put back, `RELOAD`, `RESUME` on
//! every instance — the application goes on against the side it was on.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};

use crate::config::Config;
use crate::pooler::admin::Admin;
use crate::pooler::{entry, Instance};
use crate::runbook::Step;

/// What one run did to the pooler.
#[derive(Default)]
pub(super) struct PoolerRun {
    admins: Vec<Admin>,
    database: String,
    /// Paused and not resumed since, and the side the pause holds.
    paused: bool,
    pub(super) paused_on: crate::session::Side,
    /// The file and the text it held before the repoint, and the line
    /// written (to put back only what this run wrote).
    repointed: Option<(String, String, String)>,
}

impl PoolerRun {
    /// Whether a failure now leaves the pooler holding the application.
    pub(super) fn holds_the_app(&self) -> bool {
        self.paused
    }
}

async fn connect_all(config: &Config, instances: &[Instance]) -> Result<Vec<Admin>> {
    let p = config
        .pooler
        .as_ref()
        .ok_or_else(|| anyhow!("no [pooler] section in {}", config.path.display()))?;
    let targets = instances
        .iter()
        .map(|i| super::pooler_task::admin_target(p, config, i).map_err(|e| anyhow!(e)))
        .collect::<Result<Vec<_>>>()?;
    futures::future::try_join_all(targets.iter().map(|t| t.connect())).await
}

/// The admin connections for `instances`: this run's, or new ones.
async fn admins<'a>(
    run: &'a mut PoolerRun,
    config: &Config,
    instances: &[Instance],
) -> Result<&'a mut Vec<Admin>> {
    let same = run.admins.len() == instances.len()
        && run
            .admins
            .iter()
            .zip(instances)
            .all(|(a, i)| a.instance() == i);
    if !same {
        run.admins = connect_all(config, instances).await?;
    }
    Ok(&mut run.admins)
}

fn names(instances: &[Instance]) -> String {
    instances
        .iter()
        .map(|i| i.name.clone())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Writes `text` to `path` through a file beside it and a rename, keeping
/// the file's permissions: PgBouncer never reads half a file.
fn replace_file(path: &Path, text: &str) -> Result<()> {
    let tmp = path.with_extension("cutover-tmp");
    let perms = std::fs::metadata(path)
        .with_context(|| format!("{}", path.display()))?
        .permissions();
    std::fs::write(&tmp, text).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::set_permissions(&tmp, perms)?;
    if let Ok(m) = std::fs::metadata(path) {
        use std::os::unix::fs::MetadataExt;
        let _ = std::os::unix::fs::chown(&tmp, Some(m.uid()), Some(m.gid()));
    }
    std::fs::rename(&tmp, path).with_context(|| format!("replacing {}", path.display()))
}

pub(super) async fn run(step: &Step, config: &Config, run: &mut PoolerRun) -> Result<String> {
    match step {
        Step::PoolerPause {
            instances,
            database,
            timeout_s,
            on,
        } => {
            run.paused_on = *on;
            // Every console first: one that does not answer pauses nothing.
            admins(run, config, instances)
                .await
                .map_err(|e| anyhow!("nothing was paused: {e:#}"))?;
            // From here on a cancel may leave an instance paused: the way
            // back resumes every one (resuming one not paused is harmless).
            run.paused = true;
            run.database = database.clone();
            let deadline = Duration::from_secs(*timeout_s);
            let started = Instant::now();
            let results = futures::future::join_all(
                run.admins.iter_mut().map(|a| a.pause(database, deadline)),
            )
            .await;
            if let Some(e) = results.iter().find_map(|r| r.as_ref().err()) {
                let mut why = format!("{e:#}");
                if why.contains("not done within") {
                    why.push_str(&match open_transactions(config).await {
                        Ok(t) if t.is_empty() => String::new(),
                        Ok(t) => format!(" — open on the source: {t}"),
                        Err(e) => format!(" (the source's transactions could not be read: {e:#})"),
                    });
                }
                // The others were paused: lift every pause before failing.
                let lifted = resume_all(&run.admins, database).await;
                if lifted.is_ok() {
                    run.paused = false;
                }
                return Err(anyhow!(
                    "{why}{}",
                    match lifted {
                        Ok(()) => format!("; every pause lifted ({})", names(instances)),
                        Err(e) => format!("; lifting the pauses failed: {e:#}"),
                    }
                ));
            }
            Ok(format!(
                "{database} paused on {} in {} ms",
                names(instances),
                started.elapsed().as_millis()
            ))
        }
        Step::PoolerRepoint {
            file,
            database,
            expect,
            host,
            port,
            dbname,
            after,
            ..
        } => {
            let path = Path::new(file);
            let text = std::fs::read_to_string(path).with_context(|| format!("reading {file}"))?;
            let e = entry::find(&text, file, database)?;
            if crate::kube::fingerprint(&e.line) != *expect {
                bail!(
                    "{file}:{}: entry {database} changed since the plan was made (now: {}); \
                     not overwriting it",
                    e.line_no,
                    entry::shown(&e.line)
                );
            }
            let line = entry::repointed_line(&e, host, *port, dbname);
            let new_text = entry::replace(&text, file, database, &e.line, &line)?;
            replace_file(path, &new_text)?;
            run.repointed = Some((file.clone(), text, line.clone()));
            Ok(format!("{file}:{}: {after}", e.line_no))
        }
        Step::PoolerReload {
            instances,
            database,
            host,
            port,
        } => {
            let admins = admins(run, config, instances).await?;
            for a in admins.iter() {
                a.reload().await?;
                let d = a.database(database).await?;
                if (d.host.as_str(), d.port) != (host.as_str(), *port) {
                    bail!(
                        "{}: after RELOAD, {database} is at {}:{}, not {host}:{port}",
                        a.instance(),
                        d.host,
                        d.port
                    );
                }
            }
            Ok(format!(
                "{} reloaded: {database} at {host}:{port}",
                names(instances)
            ))
        }
        Step::PoolerResume {
            instances,
            database,
            to,
            ..
        } => {
            let admins = admins(run, config, instances).await?;
            resume_all(admins, database).await?;
            run.paused = false;
            Ok(format!(
                "{database} resumed on {}, on the {}",
                names(instances),
                to.as_str()
            ))
        }
        Step::PoolerProve {
            instances,
            database,
            host,
            port,
        } => {
            let admins = admins(run, config, instances).await?;
            let start = Instant::now();
            loop {
                let mut wrong = None;
                let mut servers = 0;
                for a in admins.iter() {
                    let d = a.database(database).await?;
                    if d.paused || (d.host.as_str(), d.port) != (host.as_str(), *port) {
                        wrong = Some(format!(
                            "{}: {database} at {}:{}{}",
                            a.instance(),
                            d.host,
                            d.port,
                            if d.paused { ", paused" } else { "" }
                        ));
                        break;
                    }
                    for s in a
                        .servers()
                        .await?
                        .iter()
                        .filter(|s| s.database == *database)
                    {
                        if (s.addr.as_str(), s.port) != (host.as_str(), *port) {
                            wrong = Some(format!(
                                "{}: a server connection to {}:{}",
                                a.instance(),
                                s.addr,
                                s.port
                            ));
                        }
                        servers += 1;
                    }
                }
                match wrong {
                    None => {
                        return Ok(format!(
                            "{} serve {database} from {host}:{port} ({servers} server \
                             connections)",
                            names(instances)
                        ))
                    }
                    Some(w) if start.elapsed() >= Duration::from_secs(10) => {
                        bail!("after 10 s: {w}")
                    }
                    Some(_) => tokio::time::sleep(Duration::from_millis(250)).await,
                }
            }
        }
        other => Err(anyhow!("{} is not a pooler step", other.title())),
    }
}

/// The oldest transactions open on the source's database, named: what a
/// `PAUSE` waits for.
async fn open_transactions(config: &Config) -> Result<String> {
    use crate::session::Side;
    let c = super::pg_steps::open(config, Side::Source, 1_000, 5_000).await?;
    let rows = c
        .query(
            "SELECT pid, usename::text, coalesce(application_name, ''), \
                    coalesce(host(client_addr), 'local'), \
                    extract(epoch FROM now() - xact_start)::float8, state, \
                    left(regexp_replace(query, '\\s+', ' ', 'g'), 80) \
             FROM pg_catalog.pg_stat_activity \
             WHERE xact_start IS NOT NULL AND pid <> pg_backend_pid() \
               AND backend_type = 'client backend' AND datname = current_database() \
             ORDER BY xact_start LIMIT 3",
            &[],
        )
        .await
        .map_err(|e| anyhow!("{}", crate::pg::error_text(&e)))?;
    Ok(rows
        .iter()
        .map(|r| {
            format!(
                "pid {} ({} from {}{}) {} for {:.0} s: {}",
                r.get::<_, i32>(0),
                r.get::<_, String>(1),
                r.get::<_, String>(3),
                match r.get::<_, String>(2) {
                    a if a.is_empty() => String::new(),
                    a => format!(", {a}"),
                },
                r.get::<_, Option<String>>(5).unwrap_or_default(),
                r.get::<_, f64>(4),
                r.get::<_, String>(6)
            )
        })
        .collect::<Vec<_>>()
        .join("; "))
}

async fn resume_all(admins: &[Admin], database: &str) -> Result<()> {
    let results = futures::future::join_all(admins.iter().map(|a| a.resume(database))).await;
    let failed: Vec<String> = results
        .into_iter()
        .filter_map(|r| r.err().map(|e| format!("{e:#}")))
        .collect();
    if failed.is_empty() {
        Ok(())
    } else {
        Err(anyhow!(failed.join("; ")))
    }
}

/// After a failure while the pooler holds the application: the entry put
/// back (only if it still holds what this run wrote), `RELOAD`, `RESUME` on
/// every instance. What was done, in words, and whether the entry was put
/// back (it was repointed by this run).
pub(super) async fn undo(run: &mut PoolerRun) -> (String, bool) {
    let mut said = Vec::new();
    let mut put_back = false;
    if let Some((file, old, written)) = run.repointed.take() {
        let path = Path::new(&file);
        let back = std::fs::read_to_string(path)
            .map_err(anyhow::Error::from)
            .and_then(|now| {
                let e = entry::find(&now, &file, &run.database)?;
                if e.line != written {
                    bail!("it changed since the repoint: left as it is");
                }
                replace_file(path, &old)
            });
        match back {
            Ok(()) => {
                put_back = true;
                said.push(format!("the entry put back in {file}"))
            }
            Err(e) => said.push(format!("the entry NOT put back in {file}: {e:#}")),
        }
        for a in &run.admins {
            if let Err(e) = a.reload().await {
                said.push(format!("RELOAD failed: {e:#}"));
            }
        }
    }
    match resume_all(&run.admins, &run.database).await {
        Ok(()) => {
            run.paused = false;
            said.push(format!(
                "RESUME {} on every instance: the application goes on against the side it was on",
                run.database
            ));
        }
        Err(e) => said.push(format!(
            "RESUME FAILED: {e:#}: the pooler still holds the application's queries; RESUME \
             it by hand now"
        )),
    }
    (said.join("; "), put_back)
}
