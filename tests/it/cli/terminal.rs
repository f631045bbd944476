//! The terminal edges: every command exits quietly, with its own status, when its reader goes
//! away (`| head -1`), and text from the API is shown, never obeyed, by the accounts table.

use std::process::{Command, Stdio};

use maribank_etl::sandbox::{Sandbox, SandboxConfig};

use super::bin::{LIMIT, code, command, run, with_api};
use crate::helpers::Printed;

/// Runs `c` with stdout a pipe whose reading end is already closed (every write fails with
/// EPIPE) and, with `close_stderr`, stderr too.
fn with_closed_output(mut c: Command, close_stderr: bool) -> Printed {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let stderr = match close_stderr {
        true => Stdio::from(writer.try_clone().unwrap()),
        false => Stdio::piped(),
    };
    c.stdin(Stdio::null())
        .stdout(Stdio::from(writer))
        .stderr(stderr);
    let mut child = c.spawn().unwrap();
    let err = child.stderr.take();
    let drain = std::thread::spawn(move || {
        let mut s = String::new();
        if let Some(mut e) = err {
            let _ = std::io::Read::read_to_string(&mut e, &mut s);
        }
        s
    });
    let deadline = std::time::Instant::now() + LIMIT;
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("still running after {LIMIT:?}");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    Printed {
        status,
        stdout: String::new(),
        stderr: drain.join().unwrap(),
    }
}

#[tokio::test]
async fn every_command_exits_quietly_when_its_reader_is_gone() {
    let sb = Sandbox::start(SandboxConfig::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("wh").display().to_string();
    let state = dir.path().join("state").display().to_string();
    std::fs::create_dir_all(dir.path().join("state/webhook")).unwrap();
    let window = ["--start", "2026-11-01", "--end", "2026-11-02"];
    let cases: Vec<Vec<&str>> = vec![
        vec!["check", "--dest", &dest],
        vec!["accounts", "--format", "table"],
        vec!["accounts", "--format", "json"],
        [
            &["sync", "--dest", &dest, "--streams", "accounts"][..],
            &window,
        ]
        .concat(),
        [&["reconcile", "--dest", &dest][..], &window].concat(),
        vec!["webhook", "status", "--state-dir", &state],
        vec!["migrate", "--dest", &dest],
        vec!["--help"],
        vec!["--version"],
        vec!["sandbox", "--help"],
    ];
    for args in cases {
        let normal = run(with_api(&args, sb.base_url())).await;
        assert!(
            !normal.stdout.is_empty(),
            "{args:?} prints nothing, so proves nothing: {}",
            normal.all()
        );
        let c = with_api(&args, sb.base_url());
        let closed = tokio::task::spawn_blocking(move || with_closed_output(c, false))
            .await
            .unwrap();
        assert_eq!(
            code(&closed),
            code(&normal),
            "{args:?} with stdout closed: {}",
            closed.stderr
        );
        assert!(
            !closed.stderr.contains("panicked") && !closed.stderr.contains("Broken pipe"),
            "{args:?}: {}",
            closed.stderr
        );
    }
    // stderr gone too: an error that cannot be shown still exits 2, not 101.
    let c = command(&[
        "sync",
        "--dest",
        &dest,
        "--qps",
        "5",
        "--start",
        "2026-11-02",
        "--end",
        "2026-11-01",
    ]);
    let both = tokio::task::spawn_blocking(move || with_closed_output(c, true))
        .await
        .unwrap();
    assert_eq!(code(&both), 2);
    let c = with_api(&["check", "--dest", &dest], sb.base_url());
    let both = tokio::task::spawn_blocking(move || with_closed_output(c, true))
        .await
        .unwrap();
    assert_eq!(code(&both), 0);
    sb.shutdown().await;
}

#[tokio::test]
async fn the_accounts_table_shows_control_characters_from_the_api_escaped() {
    let evil = "ACC-\u{1b}[31mRED\r-0009";
    let sb = Sandbox::start(SandboxConfig {
        extra_account_ids: vec![evil.to_string()],
        ..Default::default()
    })
    .await
    .unwrap();
    let out = run(with_api(&["accounts", "--format", "table"], sb.base_url())).await;
    assert_eq!(code(&out), 0, "{}", out.all());
    assert!(
        !out.stdout.contains('\u{1b}') && !out.stdout.contains('\r'),
        "{:?}",
        out.stdout
    );
    assert_eq!(out.stdout.lines().count(), 4, "{}", out.stdout);
    assert!(
        out.stdout
            .lines()
            .any(|l| l.starts_with("ACC-\\u{1b}[31mRED\\r-0009 ")),
        "{}",
        out.stdout
    );
    // JSON for scripts carries the id exactly (escaped by JSON, so still no raw ESC).
    let out = run(with_api(&["accounts", "--format", "json"], sb.base_url())).await;
    let ids: Vec<String> = serde_json::from_str(&out.stdout).unwrap();
    assert!(ids.iter().any(|i| i == evil), "{ids:?}");
    assert!(!out.stdout.contains('\u{1b}'));
    // Every column of a row goes through the same escaping, the name included.
    let row = maribank_etl::cli::accounts::table_row(&serde_json::json!({
        "account_id": "A\u{9b}1",
        "status": "ACTIVE\u{7}",
        "timezone": "UTC\u{202e}",
        "currencies": ["USD\n"],
        "account_name": "Shop\u{1b}]0;pwned\u{7}\r\n",
    }));
    assert!(!row.chars().any(char::is_control), "{row:?}");
    assert!(row.ends_with("Shop\\u{1b}]0;pwned\\u{7}\\r\\n"), "{row}");
    sb.shutdown().await;
}
