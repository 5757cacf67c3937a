//! `cutover`: a terminal console for driving a live PostgreSQL migration cutover.
//!
//! The crate is organised around one event log and one pure fold: collectors and
//! input produce [`session::Event`]s, the runtime appends each to the session log
//! and then applies it with [`model::update`], and [`ui::view`] draws the model.

pub mod config;
pub mod exit;
pub mod kube;
pub mod lab;
pub mod metrics;
pub mod model;
pub mod pg;
pub mod pooler;
pub mod report;
pub mod runbook;
pub mod runtime;
pub mod session;
pub mod ui;
pub mod verify;
