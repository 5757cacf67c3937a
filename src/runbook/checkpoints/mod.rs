//! One file per checkpoint: its guards and its plan, nothing else.

pub mod rollback;
pub mod rollout_restart;
pub mod switch_config;
