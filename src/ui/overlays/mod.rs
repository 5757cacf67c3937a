//! Boxes drawn over the main screen; the model says which one is open.

pub mod confirm_action;
pub mod confirm_quit;
pub mod help;
pub mod note;
pub mod output;
