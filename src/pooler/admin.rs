//! One PgBouncer instance's admin console: a PostgreSQL connection to its
//! `pgbouncer` database, simple queries only (the console speaks no
//! extended protocol). What it says is read by column name, so a newer
//! PgBouncer's extra columns change nothing.
//!
//! Every round trip has a deadline; `PAUSE` has the caller's, and when it
//! runs out the pause is lifted on a second connection (the first one is
//! still waiting for PgBouncer's answer) before the error is returned.

use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use tokio_postgres::{Client, SimpleQueryMessage, SimpleQueryRow};

use super::{Database, Instance, Pool, Server};

const APP_NAME: &str = "cutover-pooler";

/// How to reach one instance's console: where, and as whom (the password
/// never leaves this struct except to the server).
#[derive(Clone)]
pub struct AdminTarget {
    pub instance: Instance,
    pub user: String,
    pub password: Option<String>,
    /// Each connect and each command (but `PAUSE`) within this.
    pub timeout: Duration,
}

impl std::fmt::Debug for AdminTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminTarget")
            .field("instance", &self.instance)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "<hidden>"))
            .finish()
    }
}

/// A connected admin console.
pub struct Admin {
    target: AdminTarget,
    client: Client,
}

impl AdminTarget {
    pub async fn connect(&self) -> Result<Admin> {
        let mut cfg = tokio_postgres::Config::new();
        cfg.host(&self.instance.host)
            .port(self.instance.port)
            .user(&self.user)
            .dbname("pgbouncer")
            .application_name(APP_NAME)
            .connect_timeout(self.timeout);
        if let Some(p) = &self.password {
            cfg.password(p.as_bytes());
        }
        let (client, conn) = tokio::time::timeout(self.timeout, cfg.connect(tokio_postgres::NoTls))
            .await
            .map_err(|_| anyhow!("{}: no answer within {:?}", self.instance, self.timeout))?
            .map_err(|e| anyhow!("{}: {}", self.instance, crate::pg::error_text(&e)))?;
        tokio::spawn(conn);
        Ok(Admin {
            target: self.clone(),
            client,
        })
    }
}

impl Admin {
    pub fn instance(&self) -> &Instance {
        &self.target.instance
    }

    async fn run(&self, command: &str, timeout: Duration) -> Result<Vec<SimpleQueryRow>> {
        let out = tokio::time::timeout(timeout, self.client.simple_query(command))
            .await
            .map_err(|_| {
                anyhow!(
                    "{}: {command}: no answer within {:?}",
                    self.target.instance,
                    timeout
                )
            })?
            .map_err(|e| {
                anyhow!(
                    "{}: {command}: {}",
                    self.target.instance,
                    crate::pg::error_text(&e)
                )
            })?;
        Ok(out
            .into_iter()
            .filter_map(|m| match m {
                SimpleQueryMessage::Row(r) => Some(r),
                _ => None,
            })
            .collect())
    }

    pub async fn databases(&self) -> Result<Vec<Database>> {
        let rows = self.run("SHOW DATABASES", self.target.timeout).await?;
        rows.iter().map(Database::from_row).collect()
    }

    pub async fn pools(&self) -> Result<Vec<Pool>> {
        let rows = self.run("SHOW POOLS", self.target.timeout).await?;
        rows.iter().map(Pool::from_row).collect()
    }

    pub async fn servers(&self) -> Result<Vec<Server>> {
        let rows = self.run("SHOW SERVERS", self.target.timeout).await?;
        rows.iter().map(Server::from_row).collect()
    }

    /// `PAUSE db`: returns once every server connection of `db` is
    /// released (running transactions finished); new queries wait. When
    /// `deadline` passes first, the pause is lifted (`RESUME db` on a new
    /// connection, which replaces this one: PgBouncer may never answer the
    /// abandoned `PAUSE`) and the error says so.
    pub async fn pause(&mut self, db: &str, deadline: Duration) -> Result<()> {
        let command = format!("PAUSE {}", ident(db)?);
        match tokio::time::timeout(deadline, self.client.simple_query(&command)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(anyhow!(
                "{}: {command}: {}",
                self.target.instance,
                crate::pg::error_text(&e)
            )),
            Err(_) => {
                let lifted = match self.target.connect().await {
                    Ok(other) => {
                        let r = other.resume(db).await;
                        self.client = other.client;
                        r
                    }
                    Err(e) => Err(e),
                };
                Err(anyhow!(
                    "{}: {command} not done within {:?}: a transaction kept a server \
                     connection busy; {}",
                    self.target.instance,
                    deadline,
                    match lifted {
                        Ok(()) => "the pause was lifted (RESUME)".to_string(),
                        Err(e) => format!("lifting the pause failed too: {e:#}"),
                    }
                ))
            }
        }
    }

    /// `RESUME db`. Resuming a database that is not paused is not an error
    /// here: what is wanted — not paused — holds.
    pub async fn resume(&self, db: &str) -> Result<()> {
        let command = format!("RESUME {}", ident(db)?);
        match self.run(&command, self.target.timeout).await {
            Ok(_) => Ok(()),
            Err(e) if format!("{e:#}").contains("not paused") => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// `RELOAD`: the config files read again (a changed `[databases]` entry
    /// takes effect for new server connections).
    pub async fn reload(&self) -> Result<()> {
        self.run("RELOAD", self.target.timeout).await.map(|_| ())
    }

    /// The entry `db` as this instance has it now.
    pub async fn database(&self, db: &str) -> Result<Database> {
        self.databases()
            .await?
            .into_iter()
            .find(|d| d.name == db)
            .with_context(|| format!("{}: no database {db} in SHOW DATABASES", self.instance()))
    }
}

/// A database name as the console takes it: PgBouncer's own parser reads
/// a bare word or a double-quoted one.
fn ident(db: &str) -> Result<String> {
    if db.is_empty() || db.contains(['"', '\0', ';', '\n']) {
        bail!("database name {db:?} cannot be sent to the admin console");
    }
    if db
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    {
        Ok(db.to_string())
    } else {
        Ok(format!("\"{db}\""))
    }
}

/// A column of a console row, by name; absent or NULL is an error naming it.
pub(super) fn col<'r>(row: &'r SimpleQueryRow, name: &str) -> Result<&'r str> {
    row.try_get(name)
        .ok()
        .flatten()
        .ok_or_else(|| anyhow!("PgBouncer's answer has no column {name}"))
}

/// A numeric column; absent or NULL reads as 0 (older PgBouncers lack some).
pub(super) fn num(row: &SimpleQueryRow, name: &str) -> u64 {
    row.try_get(name)
        .ok()
        .flatten()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_sent_bare_or_quoted_and_never_as_commands() {
        assert_eq!(ident("app").unwrap(), "app");
        assert_eq!(ident("App-DB").unwrap(), "\"App-DB\"");
        assert!(ident("app; SHUTDOWN").is_err());
        assert!(ident("").is_err());
    }
}
