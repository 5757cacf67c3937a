//! The files `up` writes for the user (cutover.toml, README.txt, the switch
//! value) and the README's schema-copy step as a function.

use std::fs;
use std::path::Path;

use anyhow::{bail, Context, Result};

use super::pgbin::PgBin;
use super::{kube_sim, LabInfo, KUBECONFIG_FILE, PUBLICATION, SUBSCRIPTION, SWITCH_TO_FILE};

pub(super) fn write_config_and_readme(info: &LabInfo) -> Result<()> {
    let toml = config_toml(info);
    fs::write(&info.config_path, toml)
        .with_context(|| format!("writing {}", info.config_path.display()))?;
    fs::write(&info.readme_path, info.replication_help())
        .with_context(|| format!("writing {}", info.readme_path.display()))?;
    write_private(
        &info.dir.join(SWITCH_TO_FILE),
        &super::app_conninfo(info.target_port),
    )
}

/// Written owner-only from the start, like a mounted secret.
fn write_private(path: &Path, text: &str) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    writeln!(f, "{text}").with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// The copy role's password file: one line per cluster port, as libpq
/// reads it (`host:port:db:user:password`).
pub(super) fn write_copy_pgpass(path: &Path, ports: &[u16], password: &str) -> Result<()> {
    let lines: Vec<String> = ports
        .iter()
        .map(|p| format!("127.0.0.1:{p}:*:{}:{password}", super::COPY_ROLE))
        .collect();
    write_private(path, &lines.join("\n"))
}

/// The password in the copy role's password file, if there is one.
pub(super) fn read_copy_password(path: &Path) -> Option<String> {
    let text = fs::read_to_string(path).ok()?;
    let last = text.lines().next()?.rsplit(':').next()?;
    (!last.is_empty()).then(|| last.to_string())
}

/// A TOML basic string (quoted and escaped).
fn toml_str(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

/// The lab's cutover.toml. The schema is shared with the config loader.
pub fn config_toml(info: &LabInfo) -> String {
    // The header already shows each side's role and server version: the label
    // only has to tell the clusters apart, in the words a migration uses.
    let label = |role: &str| if role == "source" { "old" } else { "new" }.to_string();
    format!(
        "# Written by `cutover lab up` for the throwaway lab in {dir_comment}.\n\
         # Both clusters listen on 127.0.0.1 only and trust local connections.\n\
         \n\
         [source]\n\
         dsn = {src}\n\
         label = {src_label}\n\
         \n\
         [target]\n\
         dsn = {tgt}\n\
         label = {tgt_label}\n\
         \n\
         [replication]\n\
         publication = {publication}\n\
         subscription = {subscription}\n\
         \n\
         [tables]\n\
         include = [\"public.*\"]\n\
         \n\
         [monitor]\n\
         refresh_ms = 1000\n\
         statement_timeout_ms = 2000\n\
         \n\
         [session]\n\
         # Beside the lab, not in it: `cutover lab down` leaves it.\n\
         dir = {sessions}\n\
         \n\
         [report]\n\
         # Where the runbook's last checkpoint (X) writes the migration report.\n\
         path = {report}\n\
         \n\
         [verify]\n\
         # The app pods stamp every insert and update: live verification\n\
         # compares only rows older than the lag window.\n\
         updated_at = {{ \"public.app_writes\" = \"at\" }}\n\
         # audit_log has no primary key, but its id identifies a row.\n\
         keys = {{ \"public.audit_log\" = [\"id\"] }}\n\
         \n\
         [freeze]\n\
         # The app pods connect as this role (cutover itself as postgres).\n\
         app_roles = [{app_role}]\n\
         \n\
         [kubernetes]\n\
         # The lab's API simulator (started by `cutover lab up` or `cutover demo`).\n\
         kubeconfig = {kubeconfig}\n\
         context = {context}\n\
         namespace = {namespace}\n\
         deployments = [{deployment}]\n\
         config_object = {config_object}\n\
         config_key = {config_key}\n\
         # The value the switch writes: the target, as the app connects to it.\n\
         switch_to_file = {switch_to}\n\
         \n\
         {pooler}\
         [lab]\n\
         dir = {dir}\n",
        pooler = match &info.pooler {
            None => String::new(),
            Some(_) => format!(
                "[pooler]\n\
                 # The lab's PgBouncer: the pods behind this Service, their admin console,\n\
                 # and the [databases] entry the app connects through.\n\
                 service = {service}\n\
                 admin_user = {admin}\n\
                 database = {database}\n\
                 databases_file = {file}\n\
                 \n",
                service = toml_str(super::pooler::SERVICE),
                admin = toml_str(super::pooler::ADMIN_USER),
                database = toml_str(super::SEED_DB),
                file = toml_str(&format!(
                    "{}/{}",
                    super::pooler::POOLER_DIR,
                    super::pooler::DATABASES_FILE
                )),
            ),
        },
        app_role = toml_str(super::APP_ROLE),
        kubeconfig = toml_str(KUBECONFIG_FILE),
        context = toml_str(kube_sim::LAB_CONTEXT),
        namespace = toml_str(kube_sim::LAB_NAMESPACE),
        deployment = toml_str(kube_sim::APP_DEPLOYMENT),
        config_object = toml_str(&format!("configmap/{}", kube_sim::APP_CONFIGMAP)),
        config_key = toml_str(kube_sim::DB_ENV),
        switch_to = toml_str(SWITCH_TO_FILE),
        dir_comment = info.dir.display(),
        src = toml_str(&info.source_conninfo),
        src_label = toml_str(&label("source")),
        tgt = toml_str(&info.target_conninfo),
        tgt_label = toml_str(&label("target")),
        publication = toml_str(PUBLICATION),
        subscription = toml_str(SUBSCRIPTION),
        sessions = toml_str(&info.sessions_dir.to_string_lossy()),
        report = toml_str(&report_path(&info.dir).to_string_lossy()),
        dir = toml_str(&info.dir.to_string_lossy()),
    )
}

/// Where the lab's migration report goes: as in the hands-on lab for the
/// default lab, beside the lab's own files for any other (parallel labs
/// must not write one file).
fn report_path(dir: &std::path::Path) -> std::path::PathBuf {
    if dir == super::LabOptions::default_dir() {
        std::path::PathBuf::from("/tmp/lab-migration/migration-report.txt")
    } else {
        dir.join("migration-report.txt")
    }
}

/// Quotes for a POSIX shell only when needed, so the common case stays readable.
fn sh_quote(s: &str) -> String {
    let safe = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+=:,@".contains(c));
    if safe {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

pub(super) fn replication_help(info: &LabInfo) -> String {
    let (dir, config) = (&info.dir, &info.config_path);
    let (src, tgt) = (&info.source_conninfo, &info.target_conninfo);
    // pg_dump must be at least as new as the server it dumps: the newer one
    // serves both steps (psql of any version talks to both servers).
    let bin = info.client_bin();
    let psql = sh_quote(&bin.psql().to_string_lossy());
    let pg_dump = sh_quote(&bin.pg_dump().to_string_lossy());
    let dir_q = sh_quote(&dir.to_string_lossy());
    format!(
        r#"cutover lab
===========

Lab directory: {dir}

Two throwaway PostgreSQL clusters on 127.0.0.1 (trust auth, lab only):

  source  {src}
          PostgreSQL {source_version}; seeded database `app`; wal_level=logical
  target  {tgt}
          PostgreSQL {target_version}; empty database `app` (no tables yet)

The app pods connect as role `{app_role}` (on both clusters; granted its
privileges on the source's tables, which `postgres` owns).

Config for cutover: {config}

Connect:

  {psql} "{src}"
  {psql} "{tgt}"

Set up logical replication by hand
----------------------------------

1. Copy the schema to the target (replication copies rows, not DDL; the
   GRANTs come along, so the app's role may write there after the switch):

  {pg_dump} --schema-only --no-owner "{src}" \
    | {psql} -X -q -v ON_ERROR_STOP=1 "{tgt}"

2. Publish every table on the source:

  {psql} "{src}" -c "CREATE PUBLICATION {publication} FOR ALL TABLES;"

   Note: public.events has no primary key, on purpose. Once it is published,
   UPDATE and DELETE on it fail until it has a replica identity, e.g.
   {psql} "{src}" -c "ALTER TABLE events REPLICA IDENTITY FULL;"

3. Subscribe on the target (copies the existing rows, then streams changes):

  {psql} "{tgt}" -c "CREATE SUBSCRIPTION {subscription} CONNECTION '{src}' PUBLICATION {publication};"

4. Watch it catch up:

  {psql} "{tgt}" -c "SELECT subname, received_lsn, latest_end_lsn, last_msg_receipt_time FROM pg_stat_subscription;"
  {psql} "{tgt}" -c "SELECT srrelid::regclass, srsubstate FROM pg_subscription_rel;"
  {psql} "{src}" -c "SELECT slot_name, active, pg_size_pretty(pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)) AS lag FROM pg_replication_slots;"

5. Sequences are not replicated: before sending writes to the target, move
   them past the source's values, e.g.

  {psql} "{tgt}" -c "SELECT setval('users_id_seq', (SELECT max(id) FROM users));"

Tear down
---------

  {psql} "{tgt}" -c "DROP SUBSCRIPTION {subscription};"
  {psql} "{src}" -c "DROP PUBLICATION {publication};"
  cutover lab down --dir {dir_q}
"#,
        dir = dir.display(),
        source_version = info.bin.version,
        target_version = info.target_bin.version,
        config = config.display(),
        publication = PUBLICATION,
        subscription = SUBSCRIPTION,
        app_role = super::APP_ROLE,
    )
}

/// The lab's README step 1 as a function: `pg_dump --schema-only` of the
/// source piped into `psql` on the target, stopping at the first error.
/// Privileges come along (only ownership is left out), so every role they
/// name must exist on the target.
pub fn copy_schema(bin: &PgBin, source: &str, target: &str) -> Result<()> {
    use std::process::{Command, Stdio};
    let mut dump = Command::new(bin.pg_dump())
        .args(["--schema-only", "--no-owner", "-d", source])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("running pg_dump")?;
    let stdout = dump.stdout.take().context("pg_dump output")?;
    let restore = Command::new(bin.psql())
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", target])
        .stdin(Stdio::from(stdout))
        .output()
        .context("running psql")?;
    let dumped = dump.wait_with_output().context("waiting for pg_dump")?;
    if !dumped.status.success() {
        bail!(
            "pg_dump --schema-only failed: {}",
            String::from_utf8_lossy(&dumped.stderr).trim()
        );
    }
    if !restore.status.success() {
        bail!(
            "restoring the schema on the target failed: {}",
            String::from_utf8_lossy(&restore.stderr).trim()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::{SeedPlan, CONFIG_FILE, README_FILE, STATE_FILE};
    use std::path::PathBuf;

    fn info() -> LabInfo {
        let dir = PathBuf::from("/tmp/lab dir");
        LabInfo {
            config_path: dir.join(CONFIG_FILE),
            readme_path: dir.join(README_FILE),
            state_path: dir.join(STATE_FILE),
            sessions_dir: crate::lab::sessions_dir_for(&dir),
            dir,
            source_conninfo: "host=127.0.0.1 port=5001 dbname=app user=postgres".into(),
            target_conninfo: "host=127.0.0.1 port=5002 dbname=app user=postgres".into(),
            source_port: 5001,
            target_port: 5002,
            bin: PgBin {
                dir: "/usr/lib/postgresql/15/bin".into(),
                version: "15.18".into(),
                major: 15,
            },
            target_bin: PgBin {
                dir: "/usr/lib/postgresql/15/bin".into(),
                version: "15.18".into(),
                major: 15,
            },
            plan: SeedPlan::for_rows(1000),
            load_rate: 50,
            seed: None,
            reused: false,
            notes: vec![],
            pooler: None,
        }
    }

    #[test]
    fn config_toml_has_the_shared_schema() {
        let text = config_toml(&info());
        let v: toml::Value = toml::from_str(&text).unwrap();
        assert_eq!(
            v["source"]["dsn"].as_str(),
            Some("host=127.0.0.1 port=5001 dbname=app user=postgres")
        );
        assert_eq!(v["source"]["label"].as_str(), Some("old"));
        assert_eq!(v["target"]["label"].as_str(), Some("new"));
        assert_eq!(
            v["replication"]["publication"].as_str(),
            Some("cutover_pub")
        );
        assert_eq!(
            v["replication"]["subscription"].as_str(),
            Some("cutover_sub")
        );
        assert_eq!(v["tables"]["include"][0].as_str(), Some("public.*"));
        assert_eq!(v["monitor"]["refresh_ms"].as_integer(), Some(1000));
        assert_eq!(
            v["monitor"]["statement_timeout_ms"].as_integer(),
            Some(2000)
        );
        assert_eq!(
            v["session"]["dir"].as_str(),
            Some(crate::lab::sessions_dir_for(&info().dir).to_str().unwrap())
        );
        assert_eq!(v["lab"]["dir"].as_str(), Some("/tmp/lab dir"));
        // cutover connects as postgres; the app, whose writes it freezes, as app.
        let roles = v["freeze"]["app_roles"].as_array().unwrap();
        assert_eq!(roles, &vec![toml::Value::String("app".into())]);
        assert!(v.get("pooler").is_none());
    }

    #[test]
    fn a_lab_with_a_pooler_names_it_in_a_config_the_loader_takes() {
        let mut i = info();
        i.pooler = Some(crate::lab::pooler::PoolerState {
            ports: vec![6001, 6002],
        });
        let text = config_toml(&i);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cutover.toml");
        std::fs::write(&path, &text).unwrap();
        let c = crate::config::load(&path).unwrap();
        let p = c.pooler.expect("[pooler]");
        assert_eq!(
            p.instances,
            crate::config::PoolerInstances::Service {
                name: "pgbouncer".into(),
                port: None
            }
        );
        assert_eq!(
            (p.admin_user.as_str(), p.database.as_str()),
            ("pgbouncer", "app")
        );
        assert_eq!(p.databases_file, dir.path().join("pooler/databases.ini"));
    }

    #[test]
    fn help_fills_in_ports_and_quotes_paths() {
        let h = info().replication_help();
        assert!(h.contains("CREATE PUBLICATION cutover_pub FOR ALL TABLES;"));
        assert!(h.contains(
            "CREATE SUBSCRIPTION cutover_sub CONNECTION 'host=127.0.0.1 port=5001 dbname=app user=postgres' PUBLICATION cutover_pub;"
        ));
        assert!(h.contains("--schema-only --no-owner \"host="), "{h}");
        assert!(!h.contains("--no-privileges"), "{h}");
        assert!(h.contains("The app pods connect as role `app`"), "{h}");
        assert!(h.contains("port=5002"));
        assert!(h.contains("cutover lab down --dir '/tmp/lab dir'"));
    }

    #[test]
    fn help_uses_the_newer_client_tools_and_names_both_versions() {
        use std::os::unix::fs::PermissionsExt;
        let tools = tempfile::tempdir().unwrap();
        for t in ["pg_dump", "psql"] {
            let p = tools.path().join(t);
            fs::write(&p, "#!/bin/sh\n").unwrap();
            fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
        }
        let mut info = info();
        info.target_bin = PgBin {
            dir: tools.path().to_path_buf(),
            version: "18.6".into(),
            major: 18,
        };
        let h = info.replication_help();
        assert!(h.contains("PostgreSQL 15.18; seeded database `app`"), "{h}");
        assert!(h.contains("PostgreSQL 18.6; empty database `app`"), "{h}");
        let dir = tools.path().display();
        assert!(h.contains(&format!("  {dir}/pg_dump --schema-only")), "{h}");
        assert!(h.contains(&format!("| {dir}/psql -X -q")), "{h}");
        assert_eq!(info.client_bin().major, 18);
        assert_eq!(
            info.versions(),
            "source PostgreSQL 15.18, target PostgreSQL 18.6"
        );
    }

    #[test]
    fn sh_quote_only_when_needed() {
        assert_eq!(sh_quote("/usr/bin/psql"), "/usr/bin/psql");
        assert_eq!(sh_quote("a b"), "'a b'");
        assert_eq!(sh_quote("it's"), r"'it'\''s'");
    }
}
