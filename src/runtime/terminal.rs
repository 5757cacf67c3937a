//! The terminal belongs to the console only while it runs: raw mode and the
//! alternate screen are undone on every way out (return, error, panic, signal).

use std::io::{stdout, Stdout};
use std::sync::Once;

use anyhow::{Context, Result};
use crossterm::{cursor, execute, terminal};
use ratatui::backend::CrosstermBackend;

pub type Term = ratatui::Terminal<CrosstermBackend<Stdout>>;

pub struct TerminalGuard {
    term: Term,
}

impl std::ops::Deref for TerminalGuard {
    type Target = Term;
    fn deref(&self) -> &Term {
        &self.term
    }
}

impl std::ops::DerefMut for TerminalGuard {
    fn deref_mut(&mut self) -> &mut Term {
        &mut self.term
    }
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        restore();
    }
}

/// Best effort and idempotent: called from Drop and from the panic hook.
pub fn restore() {
    let _ = terminal::disable_raw_mode();
    let _ = execute!(stdout(), terminal::LeaveAlternateScreen, cursor::Show);
}

static HOOK: Once = Once::new();

pub fn enter() -> Result<TerminalGuard> {
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            restore();
            previous(info);
        }));
    });
    terminal::enable_raw_mode().context("the console needs a terminal (raw mode failed)")?;
    execute!(stdout(), terminal::EnterAlternateScreen, cursor::Hide)
        .context("entering the alternate screen")?;
    let term = ratatui::Terminal::new(CrosstermBackend::new(stdout())).context("terminal")?;
    Ok(TerminalGuard { term })
}
