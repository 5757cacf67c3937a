//! The session: events, the append-only JSONL log, and reading it back.

pub mod event;
pub mod log;
pub mod rollback;
pub mod sample;

pub use event::{
    AccessResult, AppWitness, Endpoint, Event, EventKind, Grant, KubeInfo, SequenceValue,
    SessionInfo, SwitchRecord, SwitchValue,
};
pub use sample::{Side, TableRef};
