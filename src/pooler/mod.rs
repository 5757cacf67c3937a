//! PgBouncer between the application and the database: its instances'
//! admin consoles ([`admin`]), what they report ([`Database`], [`Pool`],
//! [`Server`]) and the `[databases]` entry a switch repoints ([`entry`]).
//!
//! A switch through the pooler pauses every instance, lets replication
//! deliver the last writes, repoints the entry, reloads and resumes: the
//! application's queries wait instead of failing, and no pod restarts.

pub mod admin;
pub mod entry;

use anyhow::{anyhow, Result};
use serde::{Deserialize, Serialize};
use tokio_postgres::SimpleQueryRow;

use admin::{col, num};

/// One PgBouncer instance: where its console listens (a pod's address and
/// port, or one the config lists).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Instance {
    /// The pod's name, or `host:port` for a listed instance.
    pub name: String,
    pub host: String,
    pub port: u16,
}

impl Instance {
    /// `host:port` (or `[v6]:port`), as the config lists an instance.
    pub fn parse(s: &str) -> Result<Instance> {
        let (host, port) = s
            .rsplit_once(':')
            .ok_or_else(|| anyhow!("{s:?}: expected host:port"))?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let port: u16 = port
            .parse()
            .map_err(|_| anyhow!("{s:?}: the port must be a number from 1 to 65535"))?;
        if host.is_empty() || port == 0 {
            return Err(anyhow!("{s:?}: expected host:port"));
        }
        Ok(Instance {
            name: s.to_string(),
            host: host.to_string(),
            port,
        })
    }
}

impl std::fmt::Display for Instance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let addr = if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        };
        if self.name == addr {
            write!(f, "PgBouncer {addr}")
        } else {
            write!(f, "PgBouncer {} ({addr})", self.name)
        }
    }
}

/// A `SHOW DATABASES` row: where an entry sends its server connections.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Database {
    pub name: String,
    pub host: String,
    pub port: u16,
    pub database: String,
    pub paused: bool,
    pub disabled: bool,
    pub current_connections: u64,
}

impl Database {
    fn from_row(r: &SimpleQueryRow) -> Result<Database> {
        Ok(Database {
            name: col(r, "name")?.to_string(),
            // The admin console's own entry has no host.
            host: r.try_get("host").ok().flatten().unwrap_or("").to_string(),
            port: num(r, "port") as u16,
            database: col(r, "database")?.to_string(),
            paused: num(r, "paused") != 0,
            disabled: num(r, "disabled") != 0,
            current_connections: num(r, "current_connections"),
        })
    }
}

/// A `SHOW POOLS` row: clients and server connections of one database and
/// user, and how long the oldest waiting client has waited.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pool {
    pub database: String,
    pub user: String,
    pub cl_active: u64,
    pub cl_waiting: u64,
    pub sv_active: u64,
    pub sv_idle: u64,
    pub sv_used: u64,
    pub maxwait_ms: u64,
}

impl Pool {
    fn from_row(r: &SimpleQueryRow) -> Result<Pool> {
        Ok(Pool {
            database: col(r, "database")?.to_string(),
            user: col(r, "user")?.to_string(),
            cl_active: num(r, "cl_active"),
            cl_waiting: num(r, "cl_waiting"),
            sv_active: num(r, "sv_active"),
            sv_idle: num(r, "sv_idle"),
            sv_used: num(r, "sv_used"),
            maxwait_ms: num(r, "maxwait") * 1000 + num(r, "maxwait_us") / 1000,
        })
    }
}

/// A `SHOW SERVERS` row: one server connection and where it goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Server {
    pub database: String,
    pub user: String,
    pub state: String,
    pub addr: String,
    pub port: u16,
}

impl Server {
    fn from_row(r: &SimpleQueryRow) -> Result<Server> {
        Ok(Server {
            database: col(r, "database")?.to_string(),
            user: col(r, "user")?.to_string(),
            state: col(r, "state")?.to_string(),
            addr: col(r, "addr")?.to_string(),
            port: num(r, "port") as u16,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listed_instances_parse_and_bad_ones_say_why() {
        let i = Instance::parse("10.0.0.5:6432").unwrap();
        assert_eq!((i.host.as_str(), i.port), ("10.0.0.5", 6432));
        assert_eq!(i.to_string(), "PgBouncer 10.0.0.5:6432");
        let v6 = Instance::parse("[::1]:6432").unwrap();
        assert_eq!(v6.host, "::1");
        assert!(Instance::parse("pgbouncer")
            .unwrap_err()
            .to_string()
            .contains("host:port"));
        assert!(Instance::parse("h:99999")
            .unwrap_err()
            .to_string()
            .contains("1 to 65535"));
        let pod = Instance {
            name: "pgbouncer-0".into(),
            host: "10.1.0.7".into(),
            port: 6432,
        };
        assert_eq!(pod.to_string(), "PgBouncer pgbouncer-0 (10.1.0.7:6432)");
    }
}

/// One instance as the collector last read it: its entry for the
/// configured database, that database's pools and server connections, or
/// why it could not be read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceSample {
    pub instance: Instance,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entry: Option<Database>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pools: Vec<Pool>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub servers: Vec<Server>,
}

impl InstanceSample {
    pub fn paused(&self) -> bool {
        self.entry.as_ref().is_some_and(|e| e.paused)
    }

    pub fn clients_active(&self) -> u64 {
        self.pools.iter().map(|p| p.cl_active).sum()
    }

    /// Clients whose queries wait (held by a pause, or no server free).
    pub fn clients_waiting(&self) -> u64 {
        self.pools.iter().map(|p| p.cl_waiting).sum()
    }

    /// How long the oldest waiting client has waited.
    pub fn longest_wait_ms(&self) -> u64 {
        self.pools.iter().map(|p| p.maxwait_ms).max().unwrap_or(0)
    }

    /// Server connections per backend (`host:port`), most first.
    pub fn backends(&self) -> Vec<(String, usize)> {
        let mut by: std::collections::BTreeMap<String, usize> = Default::default();
        for s in &self.servers {
            *by.entry(format!("{}:{}", s.addr, s.port)).or_default() += 1;
        }
        let mut out: Vec<(String, usize)> = by.into_iter().collect();
        out.sort_by_key(|(_, n)| std::cmp::Reverse(*n));
        out
    }
}

/// What a sample says of the whole pooler: how many instances are paused
/// or unreachable, the clients held, the longest wait.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Held {
    pub instances: usize,
    pub paused: usize,
    pub unreachable: usize,
    pub clients_waiting: u64,
    pub longest_wait_ms: u64,
}

impl PoolerSample {
    pub fn held(&self) -> Held {
        let i = &self.instances;
        Held {
            instances: i.len(),
            paused: i.iter().filter(|i| i.paused()).count(),
            unreachable: i.iter().filter(|i| i.error.is_some()).count(),
            clients_waiting: i.iter().map(InstanceSample::clients_waiting).sum(),
            longest_wait_ms: i
                .iter()
                .map(InstanceSample::longest_wait_ms)
                .max()
                .unwrap_or(0),
        }
    }
}

/// Every instance of the pooler, read at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolerSample {
    /// The `[databases]` entry watched.
    pub database: String,
    pub instances: Vec<InstanceSample>,
    /// The instances could not be found (the Service or its pods).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The entry as the file a switch rewrites holds it now, or why it
    /// could not be read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<Result<FileEntry, String>>,
}

/// The entry's line in the pooler's config file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    pub line_no: usize,
    /// The line as it may be shown (passwords as fingerprints).
    pub shown: String,
    /// sha256 of the line as written: the repoint changes it only if it
    /// still holds this.
    pub fingerprint: String,
    pub host: String,
    pub port: u16,
    pub dbname: String,
}

impl FileEntry {
    /// The entry `database` in `file`'s text.
    pub fn read(text: &str, file: &str, database: &str) -> Result<FileEntry> {
        let e = entry::find(text, file, database)?;
        let port = e.get("port").unwrap_or("5432");
        Ok(FileEntry {
            line_no: e.line_no,
            shown: entry::shown(&e.line),
            fingerprint: crate::kube::fingerprint(&e.line),
            host: e.get("host").unwrap_or("").to_string(),
            port: port
                .parse()
                .map_err(|_| anyhow!("{file}:{}: port {port:?} is not a number", e.line_no))?,
            dbname: e.get("dbname").unwrap_or(database).to_string(),
        })
    }
}
