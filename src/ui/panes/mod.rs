//! The panes of the main screen; each draws one part of the model into a rectangle.

pub mod actions;
pub mod counts;
pub mod footer;
pub mod header;
pub mod lag;
pub mod pooler;
pub mod rollout;
pub mod run;
pub mod runbook;
pub mod slots;
pub mod timeline;
