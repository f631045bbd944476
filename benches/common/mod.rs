//! Helpers the benchmarks that drive the binary as a child process share (`#[path]`-included
//! by `e2e` and `trace`).

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use chrono::NaiveDate;

/// The binary measured: `MB_BENCH_BIN`, else the one cargo built for this bench.
pub fn binary() -> PathBuf {
    std::env::var_os("MB_BENCH_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_maribank-etl")))
}

/// A sandbox child serving `accounts` × `per_day` transactions over `from..to`, without a rate
/// limit; returns it and its base URL.
pub fn start_sandbox(
    accounts: u32,
    per_day: u32,
    from: NaiveDate,
    to: NaiveDate,
) -> (Child, String) {
    let mut child = Command::new(binary())
        .args(["sandbox", "--listen", "127.0.0.1:0", "--qps", "0"])
        .args(["--accounts", &accounts.to_string()])
        .args(["--txns-per-day", &per_day.to_string()])
        .args(["--from", &from.to_string(), "--to", &to.to_string()])
        .args(["--now", "2027-06-01T00:00:00Z"])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("the release binary runs");
    let mut out = BufReader::new(child.stdout.take().expect("piped"));
    let mut base = None;
    let mut line = String::new();
    while base.is_none() && out.read_line(&mut line).unwrap_or(0) > 0 {
        base = line
            .trim()
            .strip_prefix("MARIBANK_BASE_URL=")
            .map(str::to_string);
        line.clear();
    }
    // Keep reading its stdout so it never blocks on a full pipe.
    std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
    (child, base.expect("the sandbox prints its base URL"))
}
