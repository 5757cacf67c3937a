//! What only this viewer sees: scroll position, help, the quit question and
//! the name being typed into a confirmation. Never logged, never folded from
//! the log: a replay or a follower has its own.

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct View {
    /// First visible row of the row-count table.
    pub scroll: usize,
    pub help: bool,
    /// The latest run's output fills the screen.
    pub output: bool,
    /// "Quit and cancel what runs?" is open.
    pub confirm_quit: bool,
    /// What has been typed into the open confirmation so far.
    pub typed: String,
    /// The reason typed to override failing guards.
    pub reason: String,
    /// Keys go into the reason, not the name.
    pub editing_reason: bool,
}

impl View {
    /// The field printable keys go into.
    pub fn field_mut(&mut self) -> &mut String {
        if self.editing_reason {
            &mut self.reason
        } else {
            &mut self.typed
        }
    }

    pub fn clear_dialog(&mut self) {
        self.typed.clear();
        self.reason.clear();
        self.editing_reason = false;
    }
}
