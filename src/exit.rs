//! Exit codes, the same for every subcommand, and how an error becomes one.
//!
//! | code | meaning                                                          |
//! |------|------------------------------------------------------------------|
//! | 0    | success (also: the reader of our output went away, e.g. `| head`) |
//! | 1    | the check found a problem (rows differ, a preflight check fails) |
//! | 2    | could not run (bad config, unreachable host, timeout)            |
//! | 130  | interrupted (SIGINT)                                             |

use std::io::Write;
use std::process::ExitCode;

pub const SUCCESS: u8 = 0;
pub const FOUND_PROBLEM: u8 = 1;
pub const COULD_NOT_RUN: u8 = 2;
pub const INTERRUPTED: u8 = 130;

/// Whether the error is, somewhere in its chain, a write to a closed pipe.
pub fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// Prints the error (as a JSON document when `json`) and returns the exit
/// code for it: 2, or 0 quietly when only our reader went away.
pub fn report_error(e: &anyhow::Error, json: bool) -> ExitCode {
    if is_broken_pipe(e) {
        return ExitCode::from(SUCCESS);
    }
    let message = format!("{e:#}");
    if json {
        let doc = serde_json::json!({ "ok": false, "exit_code": COULD_NOT_RUN, "error": message });
        // Nothing more to do if stdout is gone too.
        let _ = print_stdout(&doc.to_string());
    } else {
        let _ = writeln!(std::io::stderr().lock(), "cutover: {message}");
    }
    ExitCode::from(COULD_NOT_RUN)
}

/// One line (or block) to stdout. Unlike `println!`, a closed pipe is an
/// error to return, not a panic.
pub fn print_stdout(text: &str) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.write_all(b"\n")?;
    out.flush()
}

/// A line for the person at the terminal, on stderr; never a panic when
/// stderr is closed.
pub fn note(text: &str) {
    let _ = writeln!(std::io::stderr().lock(), "{text}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broken_pipe_is_found_under_context() {
        let io = std::io::Error::from(std::io::ErrorKind::BrokenPipe);
        let e = anyhow::Error::new(io).context("printing the report");
        assert!(is_broken_pipe(&e));
        assert!(!is_broken_pipe(&anyhow::anyhow!(
            "broken pipe, in words only"
        )));
    }
}
