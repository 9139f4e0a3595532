//! The dashboard in a real browser: headless Chromium (Debian's package)
//! driven by playwright-core starts a job from the form, sees it running
//! without a reload, stops it, sees it end and presses cleanup. The
//! screenshot is kept at `target/dashboard.png`.

use std::path::PathBuf;
use std::process::Command;

use crate::helpers::{Backend, TestApp};

fn browser_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("browser")
}

fn browser_available() -> bool {
    let chromium = std::path::Path::new("/usr/bin/chromium").exists();
    let node = Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    let playwright = browser_dir()
        .join("node_modules")
        .join("playwright-core")
        .exists();
    let found = chromium && node && playwright;
    if !found {
        if std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false") {
            panic!(
                "chromium ({chromium}), node ({node}) or playwright-core ({playwright}) missing under CI: .ci/run installs them"
            );
        }
        eprintln!(
            "\n*** SKIPPED (browser): needs /usr/bin/chromium (apt-get install chromium), node, and `npm install` in tests/browser ***\n"
        );
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_starts_follows_and_stops_a_job_in_a_real_browser() {
    // Before the probe too: every process this suite starts runs under
    // the turn lock.
    let _exclusive = crate::helpers::exclusive().await;
    if !browser_available() {
        return;
    }
    let app = TestApp::spawn(Backend::Sqlite).await;
    let screenshot = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("target")
        .join("dashboard.png");
    let address = app.address.clone();
    let output = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .arg(browser_dir().join("dashboard.mjs"))
            .arg(&address)
            .arg(&screenshot)
            .output()
    })
    .await
    .expect("join")
    .expect("run node");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "browser run failed:\n{stdout}\n{stderr}\nserver log:\n{}",
        app.server_log_text()
    );
    assert!(stdout.contains("\"ok\":true"), "{stdout}");
    let jobs = app.get("/api/recordings/jobs/?status=completed").await.1;
    assert_eq!(jobs["count"], 1, "the browser's job ended: {jobs}");
}
