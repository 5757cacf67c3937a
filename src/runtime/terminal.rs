//! The terminal belongs to the console only while it runs: raw mode and the
//! alternate screen are undone on every way out (return, error, panic, signal).
//!
//! A frame reaches the terminal as one write, wrapped in synchronized
//! output (mode 2026: the terminal shows it whole, never half drawn), and
//! only when a cell changed: an unchanged second costs no byte on the link.

use std::io::{stdout, Stdout, Write};
use std::sync::Once;

use anyhow::{Context, Result};
use crossterm::{cursor, execute, queue, terminal};
use ratatui::backend::CrosstermBackend;
use ratatui::buffer::Buffer;
use ratatui::Frame;

pub type Term = ratatui::Terminal<CrosstermBackend<FrameWriter>>;

/// Collects what ratatui writes for one frame and hands it to the
/// terminal in one piece when the frame is flushed.
pub struct FrameWriter {
    frame: Vec<u8>,
    out: Stdout,
}

impl FrameWriter {
    fn new() -> Self {
        Self {
            frame: Vec::with_capacity(16 * 1024),
            out: stdout(),
        }
    }
}

impl Write for FrameWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.frame.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.frame.is_empty() {
            return Ok(());
        }
        let mut out = self.out.lock();
        let mut whole = Vec::with_capacity(self.frame.len() + 16);
        queue!(whole, terminal::BeginSynchronizedUpdate)?;
        whole.append(&mut self.frame);
        queue!(whole, terminal::EndSynchronizedUpdate)?;
        out.write_all(&whole)?;
        out.flush()
    }
}

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

impl TerminalGuard {
    /// Renders a frame, lets `finish` rework its cells (ASCII glyphs), and
    /// sends the cells that changed. The cursor stays hidden: nothing on
    /// this screen is edited in place, so no frame moves or shows it. The
    /// size is asked of the terminal only when it says it changed
    /// (`autoresize` on a resize event), not once a frame.
    pub fn frame(
        &mut self,
        render: impl FnOnce(&mut Frame),
        finish: impl FnOnce(&mut Buffer),
    ) -> std::io::Result<()> {
        let mut frame = self.term.get_frame();
        render(&mut frame);
        finish(frame.buffer_mut());
        self.term.flush()?;
        self.term.swap_buffers();
        self.term.backend_mut().flush()
    }
}

/// Best effort and idempotent: called from Drop and from the panic hook.
pub fn restore() {
    let _ = terminal::disable_raw_mode();
    let _ = execute!(
        stdout(),
        terminal::EndSynchronizedUpdate,
        terminal::LeaveAlternateScreen,
        cursor::Show
    );
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
    let term =
        ratatui::Terminal::new(CrosstermBackend::new(FrameWriter::new())).context("terminal")?;
    Ok(TerminalGuard { term })
}
