//! The monthly page in a real headless browser — Debian's `chromium`, which `.ci/run` installs
//! (`MARIBANK_CHROMIUM` names another binary): it loads with no console message at all (no
//! script error, no network request refused by the page's Content-Security-Policy), every chart
//! is drawn with a size and marks, and the totals of the rendered DOM equal DuckDB's.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::fixtures::{copy_dir, duckdb_check, october, report};

fn chromium() -> String {
    std::env::var("MARIBANK_CHROMIUM").unwrap_or_else(|_| "chromium".into())
}

/// Runs headless chromium on `page` with `args`, killed after 90 s; (stdout, stderr).
fn run_chromium(page: &Path, profile: &Path, args: &[&str]) -> (String, String) {
    let dir = tempfile::tempdir().unwrap();
    let (out_path, err_path) = (dir.path().join("out"), dir.path().join("err"));
    let mut child = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(format!("file://{}", page.display()))
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(&err_path).unwrap())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "{} is needed (apt-get install -y chromium; .ci/run does): {e}",
                chromium()
            )
        });
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
            assert!(st.success(), "chromium failed: {}", read(&err_path));
            return (read(&out_path), read(&err_path));
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium did not finish within 90 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The attributes of every start tag of `dom` that begins with `open`.
fn tags<'a>(dom: &'a str, open: &str) -> Vec<&'a str> {
    dom.match_indices(open)
        .map(|(i, _)| &dom[i..i + dom[i..].find('>').unwrap()])
        .collect()
}

fn attr<'a>(tag: &'a str, name: &str) -> Option<&'a str> {
    let at = tag.find(&format!(" {name}=\""))? + name.len() + 3;
    Some(&tag[at..at + tag[at..].find('"')?])
}

#[tokio::test]
async fn the_page_renders_in_headless_chromium() {
    let wh = copy_dir(october());
    let out = tempfile::tempdir().unwrap();
    report(wh.path(), "2026-10", "USD", out.path()).await;
    let page = out.path().join("monthly-2026-10-USD.html");
    let profile = tempfile::tempdir().unwrap();
    let (dom, log) = run_chromium(&page, profile.path(), &["--dump-dom"]);
    // Console messages (script errors, CSP refusals, console.*) are logged as `CONSOLE` lines.
    let console: Vec<&str> = log
        .lines()
        .filter(|l| l.contains(":CONSOLE") || l.contains("Uncaught"))
        .collect();
    assert!(console.is_empty(), "console messages: {console:#?}");
    let body = tags(&dom, "<body")[0];
    assert_eq!(
        attr(body, "data-checked"),
        Some("yes"),
        "the page's script ran: {body}"
    );
    let errors = &dom[dom.find("id=\"page-errors\"").unwrap()..];
    assert!(
        errors[errors.find('>').unwrap() + 1..].starts_with("</pre>"),
        "script errors: {errors:.300}"
    );
    let charts = tags(&dom, "<svg class=\"chart\"");
    assert_eq!(charts.len(), 3, "daily volume, fee rate, currency mix");
    for c in &charts {
        let size = attr(c, "data-rendered").unwrap_or_else(|| panic!("not measured: {c}"));
        let (w, h) = size.split_once('x').unwrap();
        assert!(
            w.parse::<u32>().unwrap() > 100 && h.parse::<u32>().unwrap() > 40,
            "{c}"
        );
        let marks: u32 = attr(c, "data-drawn-marks").unwrap().parse().unwrap();
        assert!(marks >= 5, "{c}");
    }
    // The totals the browser holds equal DuckDB's.
    let rendered = out.path().join("rendered.html");
    std::fs::write(&rendered, &dom).unwrap();
    duckdb_check(wh.path(), "2026-10", "USD", &rendered).assert_equal(&[
        ("html", 500),
        ("charts", 31),
        ("recon", 5),
    ]);
    // A screenshot (MB_REPORT_SCREENSHOT=docs/monthly-report.png keeps it for the README).
    let shot = out.path().join("page.png");
    let profile = tempfile::tempdir().unwrap();
    run_chromium(
        &page,
        profile.path(),
        &[
            &format!("--screenshot={}", shot.display()),
            "--window-size=1200,2200",
            "--hide-scrollbars",
        ],
    );
    let png = std::fs::read(&shot).unwrap();
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 20_000,
        "{} bytes",
        png.len()
    );
    if let Ok(keep) = std::env::var("MB_REPORT_SCREENSHOT") {
        std::fs::copy(&shot, keep).unwrap();
    }
    // The README shows the screenshot kept in the repository.
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    assert!(readme.contains("](docs/monthly-report.png)"));
    let kept = std::fs::read(root.join("docs/monthly-report.png")).unwrap();
    assert!(kept.starts_with(b"\x89PNG") && kept.len() > 20_000);
}
