//! The session: events, the append-only JSONL log, and reading it back.

pub mod compact;
pub mod event;
pub mod log;
pub mod read;
pub mod rollback;
pub mod sample;

pub use event::{
    AccessResult, AppWitness, Endpoint, Event, EventKind, Grant, InFlight, KubeInfo, Operator,
    PoolerInfo, ReadOnlyFreeze, SequenceValue, SessionInfo, SwitchRecord, SwitchValue,
};
pub use sample::{Side, TableRef};
