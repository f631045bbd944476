//! Running the built binary from a test: a clean environment, a time limit, captured output.

use std::process::Command;
use std::time::Duration;

use maribank_etl::sandbox::{DEFAULT_ACCESS_KEY_ID, DEFAULT_SECRET};

use crate::helpers::{Printed, output_within};

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_maribank-etl");

/// The longest one command may take before the test fails.
pub const LIMIT: Duration = Duration::from_secs(90);

/// The binary with `args`, none of the caller's `MARIBANK_*`/`AWS_*` variables, JSON logs.
pub fn command(args: &[&str]) -> Command {
    let mut c = Command::new(BIN);
    c.args(args);
    for (k, _) in std::env::vars() {
        if k.starts_with("MARIBANK_") || k.starts_with("AWS_") {
            c.env_remove(k);
        }
    }
    c.env("MARIBANK_LOG_FORMAT", "json").env("RUST_LOG", "info");
    c
}

/// The same, pointed at `base_url` with the sandbox's default key pair.
pub fn with_api(args: &[&str], base_url: &str) -> Command {
    let mut c = command(args);
    c.env("MARIBANK_BASE_URL", base_url)
        .env("MARIBANK_ACCESS_KEY_ID", DEFAULT_ACCESS_KEY_ID)
        .env("MARIBANK_SECRET_ACCESS_KEY", DEFAULT_SECRET);
    c
}

/// Runs `c` to completion off the async runtime (the sandbox keeps serving meanwhile).
pub async fn run(c: Command) -> Printed {
    tokio::task::spawn_blocking(move || output_within(c, LIMIT, &[]))
        .await
        .expect("the command's thread")
}

/// The exit code (a signal is a test failure).
pub fn code(p: &Printed) -> i32 {
    p.status
        .code()
        .unwrap_or_else(|| panic!("killed by a signal: {:?}\n{}", p.status, p.all()))
}

/// A loopback port nothing listens on.
pub fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}
