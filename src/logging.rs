//! Structured logs with tracing: human-readable on a terminal, JSON lines otherwise (or when
//! `MARIBANK_LOG_FORMAT=json`); the level comes from `RUST_LOG` (default `info`). Every line
//! goes to stderr with the userinfo of any URL in it removed ([`crate::redact::in_text`]), and a
//! stderr that cannot be written (a closed pipe) silences the logs instead of failing the run.

use std::io::{IsTerminal, Write};

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

/// Installs the global subscriber once; later calls do nothing.
pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let json = match std::env::var("MARIBANK_LOG_FORMAT").as_deref() {
        Ok("json") => true,
        Ok("text") => false,
        _ => !std::io::stderr().is_terminal(),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(Stderr)
        .log_internal_errors(false);
    let _ = if json {
        builder.json().flatten_event(true).try_init()
    } else {
        builder.try_init()
    };
}

/// Makes one [`Event`] writer per log event.
#[derive(Debug, Clone, Copy)]
struct Stderr;

impl<'a> MakeWriter<'a> for Stderr {
    type Writer = Event;

    fn make_writer(&'a self) -> Event {
        Event(Vec::with_capacity(256))
    }
}

/// One formatted event, written to stderr (redacted) when dropped.
#[derive(Debug)]
struct Event(Vec<u8>);

impl Write for Event {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for Event {
    fn drop(&mut self) {
        crate::cli::output::write_err(&String::from_utf8_lossy(&self.0));
    }
}
