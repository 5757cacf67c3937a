//! The session: events, the append-only JSONL log, and reading it back.

pub mod event;
pub mod log;
pub mod sample;

pub use event::{Endpoint, Event, EventKind, KubeInfo, SessionInfo};
pub use sample::{Side, TableRef};
