//! What only this viewer sees: scroll position, help, the quit question and
//! the name being typed into a confirmation. Never logged, never folded from
//! the log: a replay or a follower has its own.

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct View {
    /// First visible row of the row-count table.
    pub scroll: usize,
    pub help: bool,
    /// "Quit and cancel what runs?" is open.
    pub confirm_quit: bool,
    /// What has been typed into the open confirmation so far.
    pub typed: String,
}
