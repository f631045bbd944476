//! End-to-end benchmark: the release binary's real `sync` and `backfill` against a sandbox child process, measured from outside (rows, wall, CPU, peak RSS).
//!
//! `cargo bench --bench e2e` runs the 100k and 1M points (a few minutes); `MB_BENCH_ROWS` picks
//! points by name or size, comma-separated: `100k`, `1m`, `10m`, `1m-20acc`, `backfill`, `all`
//! (e.g. `MB_BENCH_ROWS=10m cargo bench --bench e2e`). The sandbox runs as its own process
//! (`maribank-etl sandbox --qps 0`, no faults) so the measured process is the sync alone:
//! `maribank-etl sync … --no-raw --qps 10000` at the default concurrency (4). CPU seconds
//! (user + system) and peak RSS (`ru_maxrss`) come from `wait4` on the child. With
//! `MB_BENCH_PROFILE=1` the sync runs with `MB_PROFILE=1` and prints its per-stage profile,
//! shown after each point (the timers cost a few percent of CPU, so the main numbers are taken
//! without). `MB_BENCH_BIN` runs another build of the binary (e.g. an older commit).

#[path = "common/mod.rs"]
mod common;

use std::io::Read;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Instant;

use chrono::{Days, NaiveDate};
use common::{binary, start_sandbox};

/// One benchmark point.
struct Point {
    name: &'static str,
    accounts: u32,
    per_day: u32,
    days: u64,
    /// `sync` or `backfill`.
    command: &'static str,
    streams: &'static str,
}

const POINTS: [Point; 5] = [
    Point {
        name: "100k",
        accounts: 3,
        per_day: 3_334,
        days: 10,
        command: "sync",
        streams: "transactions",
    },
    Point {
        name: "1m",
        accounts: 3,
        per_day: 11_112,
        days: 30,
        command: "sync",
        streams: "transactions",
    },
    Point {
        name: "1m-20acc",
        accounts: 20,
        per_day: 1_667,
        days: 30,
        command: "sync",
        streams: "transactions",
    },
    Point {
        name: "backfill",
        accounts: 3,
        per_day: 11_112,
        days: 30,
        command: "backfill",
        streams: "transactions,settlements,statements",
    },
    Point {
        name: "10m",
        accounts: 3,
        per_day: 33_334,
        days: 100,
        command: "sync",
        streams: "transactions",
    },
];

/// What one child run used, from `wait4`.
struct Usage {
    wall: f64,
    cpu: f64,
    max_rss_kib: u64,
    ok: bool,
}

/// Waits for `child` and returns its resource usage.
fn wait_usage(child: &mut Child, started: Instant) -> Usage {
    let pid = child.id() as libc::pid_t;
    let mut status: libc::c_int = 0;
    // SAFETY: `ru` is a plain C struct `wait4` fills; `pid` is our own child.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut ru) };
    let wall = started.elapsed().as_secs_f64();
    assert_eq!(r, pid, "wait4 failed");
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    Usage {
        wall,
        cpu: secs(ru.ru_utime) + secs(ru.ru_stime),
        max_rss_kib: ru.ru_maxrss as u64,
        ok: libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
    }
}

/// Sums "N rows written" over the run summary's stream lines.
fn rows_written(stdout: &str) -> u64 {
    stdout
        .lines()
        .filter_map(|l| {
            let (before, _) = l.split_once(" rows written")?;
            before.split_whitespace().last()?.parse::<u64>().ok()
        })
        .sum()
}

fn dir_bytes(p: &Path) -> u64 {
    let Ok(rd) = std::fs::read_dir(p) else {
        return 0;
    };
    rd.flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_bytes(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

/// Runs one point and prints its line (and the sync's stage profile).
fn run_point(p: &Point) {
    let from = NaiveDate::from_ymd_opt(2026, 1, 1).expect("a date");
    let end = from + Days::new(p.days);
    let (mut sandbox, base) = start_sandbox(p.accounts, p.per_day, from, end + Days::new(1));
    let tmp = std::env::temp_dir().join(format!("mb-e2e-{}-{}", std::process::id(), p.name));
    let _ = std::fs::remove_dir_all(&tmp);
    let started = Instant::now();
    let mut child = Command::new(binary())
        .arg(p.command)
        .args(["--dest", &tmp.display().to_string()])
        .args(["--start", &from.to_string(), "--end", &end.to_string()])
        .args(["--streams", p.streams, "--no-raw", "--qps", "10000"])
        .args(["--name", "bench"])
        .env_remove("MARIBANK_PIPELINE")
        .env_remove("MARIBANK_CLIENT_ID")
        .env("MARIBANK_BASE_URL", &base)
        .env("MARIBANK_ACCESS_KEY_ID", "MB-SANDBOX-AK-0001")
        .env(
            "MARIBANK_SECRET_ACCESS_KEY",
            "sandbox-secret-do-not-use-in-prod",
        )
        .envs(std::env::var_os("MB_BENCH_PROFILE").map(|_| ("MB_PROFILE", "1")))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the release binary runs");
    let mut stdout = child.stdout.take().expect("piped");
    let mut stderr = child.stderr.take().expect("piped");
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let mut out = String::new();
    let _ = stdout.read_to_string(&mut out);
    let u = wait_usage(&mut child, started);
    let err = err_reader.join().unwrap_or_default();
    let _ = sandbox.kill();
    let _ = sandbox.wait();
    let rows = rows_written(&out);
    let parquet_mib = dir_bytes(&tmp) as f64 / 1048576.0;
    let _ = std::fs::remove_dir_all(&tmp);
    println!(
        "{:<9} {:<8} {:>3} acc {:>10} rows {:>8.2} s {:>10.0} rows/s {:>8.2} CPU-s {:>10.0} rows/CPU-s {:>8.1} MiB peak RSS {:>7.1} MiB parquet{}",
        p.name,
        p.command,
        p.accounts,
        rows,
        u.wall,
        rows as f64 / u.wall,
        u.cpu,
        rows as f64 / u.cpu,
        u.max_rss_kib as f64 / 1024.0,
        parquet_mib,
        if u.ok { "" } else { "  FAILED" }
    );
    if !u.ok {
        println!("{out}\n{err}");
    }
    for l in err.lines().filter(|l| l.contains("profile")) {
        println!("    {l}");
    }
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let wanted = std::env::var("MB_BENCH_ROWS").unwrap_or_else(|_| "100k,1m".into());
    let wanted: Vec<String> = wanted
        .split(',')
        .map(|s| s.trim().to_ascii_lowercase())
        .map(|s| match s.as_str() {
            "100000" => "100k".into(),
            "1000000" => "1m".into(),
            "10000000" => "10m".into(),
            _ => s,
        })
        .collect();
    println!(
        "e2e: {} (release), sandbox child --qps 0, no faults, raw archive off, concurrency 4",
        binary().display()
    );
    for p in POINTS
        .iter()
        .filter(|p| wanted.iter().any(|w| w == p.name || w == "all"))
    {
        run_point(p);
    }
}
