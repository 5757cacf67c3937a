//! What only this viewer sees: scroll position, help, the run's output, the
//! quit question, and what is being typed into a confirmation or a note.
//! Never logged, never folded from the log: a replay or a follower has its
//! own. (What is typed reaches the log only inside the command it makes.)

use super::field::Field;

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct View {
    /// First visible row of the row-count table.
    pub scroll: usize,
    pub help: bool,
    /// The latest run's output fills the screen.
    pub output: bool,
    /// First row of the output shown (a run that ended; a running one
    /// shows its tail).
    pub output_scroll: u16,
    /// "Quit and cancel what runs?" is open.
    pub confirm_quit: bool,
    /// The name typed into the open confirmation.
    pub typed: Field,
    /// The reason typed to override failing guards.
    pub reason: Field,
    /// Keys go into the reason, not the name.
    pub editing_reason: bool,
    /// An operator note being written.
    pub note: Option<Field>,
}

impl View {
    /// The field unbound keys go into, in a confirmation.
    pub fn field_mut(&mut self) -> &mut Field {
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
