//! What the commands print: stdout that ends quietly when its reader is gone (`| head -1`),
//! stderr with the userinfo of URLs removed and write errors ignored, and text from the API
//! escaped of terminal control characters before it reaches a terminal.

use std::borrow::Cow;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

/// Set once stdout cannot be written: later output is dropped.
static STDOUT_GONE: AtomicBool = AtomicBool::new(false);

/// Like `println!`, through [`write_out`].
macro_rules! outln {
    () => {
        $crate::cli::output::write_out("\n")
    };
    ($($arg:tt)*) => {
        $crate::cli::output::write_out(&format!("{}\n", format_args!($($arg)*)))
    };
}

/// Like `eprintln!`, through [`write_err`].
macro_rules! errln {
    ($($arg:tt)*) => {
        $crate::cli::output::write_err(&format!("{}\n", format_args!($($arg)*)))
    };
}

pub(crate) use {errln, outln};

/// Writes `text` to stdout. A closed pipe (EPIPE) ends the output quietly: the command goes on
/// and exits with its own status; any other write error is reported once on stderr.
pub fn write_out(text: &str) {
    if STDOUT_GONE.load(Ordering::Relaxed) {
        return;
    }
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        STDOUT_GONE.store(true, Ordering::Relaxed);
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            write_err(&format!("error: cannot write to stdout: {e}\n"));
        }
    }
}

/// Writes `text` to stderr with the userinfo of every URL in it removed
/// ([`crate::redact::in_text`]); a write error is ignored (there is nowhere left to report it).
pub fn write_err(text: &str) {
    let _ = std::io::stderr()
        .lock()
        .write_all(crate::redact::in_text(text).as_bytes());
}

/// Whether a character would act on a terminal instead of showing: C0 and C1 controls, DEL,
/// and the bidirectional overrides that reorder what is shown.
fn acts_on_terminal(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// `s` with every control character escaped (`\r`, `\n`, `\t`, else `\u{1b}`): text from the
/// API shows as text and cannot move the cursor, recolour or rewrite the terminal.
pub fn printable(s: &str) -> Cow<'_, str> {
    if !s.chars().any(acts_on_terminal) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if acts_on_terminal(c) => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_shown_not_obeyed() {
        assert_eq!(printable("ACC-SG-0001"), "ACC-SG-0001");
        assert_eq!(
            printable("Shop\u{1b}[31mRED\rX\n\u{9b}2J\u{7f}\u{202e}é"),
            "Shop\\u{1b}[31mRED\\rX\\n\\u{9b}2J\\u{7f}\\u{202e}é"
        );
    }
}
