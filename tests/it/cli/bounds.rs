//! Every numeric setting has a range: 0, tiny, huge and 2^64−1 values of every pipeline TOML
//! key and of every flag are accepted only inside it, and refused with exit 2 and the range
//! named; no numeric flag is left without a range; the README lists them all.

use clap::{CommandFactory, Parser};
use maribank_etl::cli::Cli;
use maribank_etl::pipeline::config::{Overrides, Settings};

use super::bin::{code, command, run};

/// The probes every setting meets (besides its own ends).
const PROBES: [&str; 8] = [
    "0",
    "0.000000001",
    "1e300",
    "18446744073709551615",
    "-1",
    "nan",
    "inf",
    "0.5",
];

/// One setting as the README documents it: `[lo, hi]` (`hi` open for `volume_drop`), whole
/// numbers only or any number.
struct Spec {
    name: &'static str,
    lo: f64,
    hi: f64,
    whole: bool,
    open_hi: bool,
}

const fn spec(name: &'static str, lo: f64, hi: f64, whole: bool) -> Spec {
    Spec {
        name,
        lo,
        hi,
        whole,
        open_hi: false,
    }
}

impl Spec {
    fn accepts(&self, v: &str) -> bool {
        let Ok(x) = v.parse::<f64>() else {
            return false;
        };
        let in_range = x >= self.lo
            && if self.open_hi {
                x < self.hi
            } else {
                x <= self.hi
            };
        in_range && (!self.whole || v.bytes().all(|b| b.is_ascii_digit()))
    }

    /// How the error names the range.
    fn range(&self) -> String {
        let n = |x: f64| match x {
            x if x == u64::MAX as f64 => u64::MAX.to_string(),
            x => x.to_string(),
        };
        if self.open_hi {
            format!("from {} to below {}", n(self.lo), n(self.hi))
        } else {
            format!("from {} to {}", n(self.lo), n(self.hi))
        }
    }

    fn probes(&self) -> Vec<String> {
        let n = |x: f64| match x {
            x if x == u64::MAX as f64 => u64::MAX.to_string(),
            x => x.to_string(),
        };
        let mut v: Vec<String> = PROBES.iter().map(|s| s.to_string()).collect();
        v.extend([n(self.lo), n(self.hi)]);
        if self.hi < 1e18 {
            v.push(n(self.hi + 1.0));
        }
        v
    }
}

const TOML: [Spec; 13] = [
    spec("api.qps", 0.1, 10_000.0, false),
    spec("api.concurrency", 1.0, 64.0, true),
    spec("api.page_size", 1.0, 1000.0, true),
    spec("api.connect_timeout_secs", 1.0, 300.0, true),
    spec("api.read_timeout_secs", 1.0, 3600.0, true),
    spec("api.max_retries", 0.0, 20.0, true),
    spec("windows.backfill_days", 1.0, 31.0, true),
    spec("windows.overlap_minutes", 0.0, 10_080.0, true),
    spec("windows.lag_minutes", 0.0, 10_080.0, true),
    spec("windows.lease_secs", 10.0, 86_400.0, true),
    Spec {
        open_hi: true,
        ..spec("alerts.volume_drop", 0.0, 1.0, false)
    },
    spec("alerts.trailing_runs", 1.0, 1000.0, true),
    spec("alerts.consecutive_failures", 1.0, 1000.0, true),
];

fn toml_for(key: &str, value: &str) -> String {
    let (section, k) = key.split_once('.').unwrap();
    format!("name = \"bounds\"\ndestination = \"./wh\"\n[{section}]\n{k} = {value}\n")
}

#[test]
fn every_pipeline_setting_is_accepted_only_inside_its_range() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("p.toml");
    for s in &TOML {
        for v in s.probes() {
            std::fs::write(&p, toml_for(s.name, &v)).unwrap();
            let r = Settings::resolve(&Overrides {
                config: Some(p.clone()),
                ..Default::default()
            });
            match (s.accepts(&v), r) {
                (true, Ok(_)) => {}
                (false, Err(e)) => {
                    let e = e.to_string();
                    assert!(
                        e.contains(s.name) && e.contains(&s.range()),
                        "{} = {v}: the error does not name the setting and `{}`: {e}",
                        s.name,
                        s.range()
                    );
                }
                (true, Err(e)) => panic!("{} = {v} is in range but refused: {e}", s.name),
                (false, Ok(_)) => panic!("{} = {v} is out of range but accepted", s.name),
            }
        }
    }
}

#[tokio::test]
async fn out_of_range_settings_exit_2_with_the_range_named() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("p.toml");
    let dest = dir.path().join("wh");
    let window = ["--start", "2026-11-01", "--end", "2026-11-02"];
    let sync = |extra: &[&str]| {
        let mut args = vec!["sync", "--dest", dest.to_str().unwrap()];
        args.extend(window);
        args.extend(extra);
        command(&args)
    };
    for s in &TOML {
        for v in ["18446744073709551615", "0.000000001"] {
            if s.accepts(v) {
                continue;
            }
            std::fs::write(&p, toml_for(s.name, v)).unwrap();
            let out = run(sync(&["--config", p.to_str().unwrap()])).await;
            assert_eq!(code(&out), 2, "{} = {v}: {}", s.name, out.all());
            assert!(
                out.stderr.contains(s.name) && out.stderr.contains(&s.range()),
                "{} = {v}: {}",
                s.name,
                out.stderr
            );
        }
    }
    for (flag, s) in [("--qps", &TOML[0]), ("--concurrency", &TOML[1])] {
        for v in ["0", "0.000000001", "1e300", "18446744073709551615"] {
            let out = run(sync(&[&format!("{flag}={v}")])).await;
            assert_eq!(code(&out), 2, "{flag} {v}: {}", out.all());
            assert!(
                out.stderr.contains(&s.range()),
                "{flag} {v}: {}",
                out.stderr
            );
            assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
        }
    }
}

/// The flags of the other commands: `(arguments before the flag, flag, spec)`.
fn flag_specs() -> Vec<(Vec<&'static str>, &'static str, Spec)> {
    let sandbox = || vec!["sandbox"];
    let demo = || vec!["demo"];
    let recon = || {
        vec![
            "reconcile",
            "--dest",
            "x",
            "--start",
            "2026-01-01",
            "--end",
            "2026-01-02",
        ]
    };
    let serve = || vec!["webhook", "serve", "--dest", "x"];
    let sync = || vec!["sync"];
    let max = u64::MAX as f64;
    let share = |f| (sandbox(), f, spec("share", 0.0, 1.0, false));
    vec![
        (sandbox(), "--seed", spec("seed", 0.0, max, true)),
        (sandbox(), "--accounts", spec("accounts", 1.0, 1000.0, true)),
        (
            sandbox(),
            "--txns-per-day",
            spec("txns", 0.0, 100_000.0, true),
        ),
        (sandbox(), "--qps", spec("qps", 0.0, 10_000.0, true)),
        (
            sandbox(),
            "--latency-ms",
            spec("latency", 0.0, 600_000.0, true),
        ),
        (
            sandbox(),
            "--stall-ms",
            spec("stall", 0.0, 3_600_000.0, true),
        ),
        (
            sandbox(),
            "--page-token-ttl",
            spec("ttl", 1.0, 86_400.0, true),
        ),
        share("--fault-rate"),
        share("--offset-share"),
        share("--malformed-rate"),
        share("--discrepancy-rate"),
        (demo(), "--days", spec("days", 1.0, 366.0, true)),
        (demo(), "--txns-per-day", spec("txns", 0.0, 100_000.0, true)),
        (recon(), "--tolerance", spec("tolerance", 0.0, max, true)),
        (recon(), "--timing-days", spec("timing", 0.0, 366.0, true)),
        (
            serve(),
            "--max-body-bytes",
            spec("body", 1024.0, 67_108_864.0, true),
        ),
        (
            serve(),
            "--coalesce-ms",
            spec("coalesce", 0.0, 60_000.0, true),
        ),
        (
            serve(),
            "--header-timeout-secs",
            spec("h", 1.0, 300.0, true),
        ),
        (serve(), "--body-timeout-secs", spec("b", 1.0, 300.0, true)),
        (serve(), "--idle-timeout-secs", spec("i", 1.0, 300.0, true)),
        (serve(), "--max-connections", spec("c", 1.0, 65_536.0, true)),
        (serve(), "--max-attempts", spec("a", 1.0, 1000.0, true)),
        (sync(), "--qps", spec("qps", 0.1, 10_000.0, false)),
        (
            sync(),
            "--concurrency",
            spec("concurrency", 1.0, 64.0, true),
        ),
    ]
}

#[test]
fn every_numeric_flag_is_accepted_only_inside_its_range() {
    for (before, flag, s) in flag_specs() {
        for v in s.probes() {
            let mut args = vec!["maribank-etl".to_string()];
            args.extend(before.iter().map(|a| a.to_string()));
            args.push(format!("{flag}={v}"));
            match (s.accepts(&v), Cli::try_parse_from(&args)) {
                (true, Ok(_)) => {}
                (false, Err(e)) => {
                    assert_eq!(e.kind(), clap::error::ErrorKind::ValueValidation, "{e}");
                    let e = e.to_string();
                    assert!(e.contains(&s.range()), "{args:?}: {e}");
                }
                (true, Err(e)) => panic!("{args:?} is in range but refused: {e}"),
                (false, Ok(_)) => panic!("{args:?} is out of range but accepted"),
            }
        }
    }
}

#[tokio::test]
async fn the_binary_refuses_an_out_of_range_flag_with_exit_2() {
    let recon = [
        "reconcile",
        "--dest",
        "x",
        "--start",
        "2026-01-01",
        "--end",
        "2026-01-02",
    ];
    let timing = [&recon[..], &["--timing-days", "18446744073709551615"]].concat();
    for args in [
        vec!["sandbox", "--qps", "0.000000001"],
        vec!["sandbox", "--stall-ms", "18446744073709551615"],
        vec!["sandbox", "--fault-rate", "1.5"],
        vec!["demo", "--days", "0"],
        timing,
        vec!["webhook", "serve", "--dest", "x", "--coalesce-ms", "1e300"],
    ] {
        let out = run(command(&args)).await;
        assert_eq!(code(&out), 2, "{args:?}: {}", out.all());
        assert!(out.stderr.contains(" from "), "{args:?}: {}", out.stderr);
        assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
    }
}

/// Every leaf command with the words that reach it.
fn leaves(cmd: &clap::Command, path: Vec<String>, out: &mut Vec<(Vec<String>, clap::Command)>) {
    let subs: Vec<_> = cmd.get_subcommands().collect();
    if subs.is_empty() {
        out.push((path.clone(), cmd.clone()));
    }
    for s in subs {
        let mut p = path.clone();
        p.push(s.get_name().to_string());
        leaves(s, p, out);
    }
}

#[test]
fn no_numeric_flag_is_left_without_a_range() {
    let mut all = Vec::new();
    leaves(&Cli::command(), vec![], &mut all);
    let mut probed = 0;
    for (path, cmd) in all {
        for arg in cmd.get_arguments() {
            let Some(long) = arg.get_long() else { continue };
            if !arg.get_action().takes_values() || !arg.get_possible_values().is_empty() {
                continue;
            }
            probed += 1;
            let mut args = vec!["maribank-etl".to_string()];
            args.extend(path.iter().cloned());
            args.push(format!("--{long}=abc"));
            if let Err(e) = Cli::try_parse_from(&args) {
                let e = e.to_string();
                assert!(
                    !e.contains("invalid digit") && !e.contains("invalid float"),
                    "{path:?} --{long} is a number without a range (use a crate::bounds parser): {e}"
                );
            }
        }
    }
    assert!(probed > 30, "only {probed} flags probed");
}

#[test]
fn the_readme_lists_every_range() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let rows: Vec<&str> = readme.lines().filter(|l| l.starts_with('|')).collect();
    for (key, range) in maribank_etl::bounds::toml_ranges() {
        assert!(
            rows.iter()
                .any(|r| r.contains(&format!("`{key}`")) && r.contains(&range)),
            "README has no table row with `{key}` and `{range}`"
        );
    }
    for (commands, flags, range) in maribank_etl::bounds::flag_ranges() {
        for c in commands.split(", ") {
            for f in flags.split(", ") {
                assert!(
                    rows.iter().any(|r| r.contains(&format!("`{c}`"))
                        && r.contains(&format!("`{f}`"))
                        && r.contains(&range)),
                    "README has no table row with `{c}`, `{f}` and `{range}`"
                );
            }
        }
    }
}
