//! One file per checkpoint: its guards and its plan, nothing else.

pub mod advance_sequences;
pub mod app_on_target;
pub mod copy_schema;
pub mod create_publication;
pub mod create_subscription;
pub mod drop_subscription;
pub mod dump_restore;
pub mod final_check;
pub mod freeze_by_role;
pub mod freeze_writes;
pub mod pooler_rollback;
pub mod pooler_switch;
pub mod preflight;
pub(crate) mod prepare;
pub mod reverse_replication;
pub mod rollback;
pub mod rollout_restart;
pub mod switch_config;
pub mod verify_live;
pub mod wait_initial_sync;
