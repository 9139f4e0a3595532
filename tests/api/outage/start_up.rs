//! Start-up before the database answers: the server waits for it, saying
//! so, and starts once it answers or gives up after `--database-wait`.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use testkit::server::{ServeConfig, serve_command};

use crate::helpers::{
    AppOptions, Backend, TestApp, profiles_toml, run_to_exit, server_binary, shared, test_dir,
};

/// A port on which nothing listens (bound, then released).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("a free port")
}

/// The log line the server writes each time it waits for the database.
const WAITING: &str = "the database does not answer yet; waiting for it";

/// Start-up with no database at the URL: tries for `--database-wait`, then
/// exits non-zero, saying why, without the password.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_up_waits_for_an_unreachable_database_then_gives_up_saying_why() {
    let _turn = shared().await;
    let dir = test_dir(&testkit::unique_name());
    let profiles = dir.join("profiles.toml");
    std::fs::write(&profiles, profiles_toml(&dir, true)).expect("write profiles");
    let url = format!(
        "postgres://recorderd:s3cret@127.0.0.1:{}/recorderd",
        free_port()
    );
    let mut command = serve_command(
        &server_binary(),
        &[],
        ServeConfig {
            data_dir: &dir.join("data"),
            profiles: &profiles,
            database_url: &url,
        },
    );
    command.args(["--database-wait", "3"]);
    let began = Instant::now();
    let (status, log) = run_to_exit(command, Duration::from_secs(30)).await;
    let took = began.elapsed();
    eprintln!("gave up after {:.2} s", took.as_secs_f64());
    assert!(!status.success(), "{status}: {log}");
    assert!(
        took >= Duration::from_secs(3),
        "gave up after {took:?}: {log}"
    );
    // The last wait is at most 5 s, and each attempt is refused at once.
    assert!(took < Duration::from_secs(10), "waited {took:?}: {log}");
    assert!(log.matches(WAITING).count() >= 2, "{log}");
    assert!(log.contains("connecting to database"), "{log}");
    assert!(!log.contains("s3cret"), "the password was logged: {log}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Forwards connections on `port` to `target` from `after` on: a database
/// that comes up while the server waits for it.
async fn open_later(port: u16, target: String, after: Duration) {
    tokio::time::sleep(after).await;
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .expect("bind the database's port");
    while let Ok((mut inbound, _)) = listener.accept().await {
        let target = target.clone();
        tokio::spawn(async move {
            if let Ok(mut outbound) = tokio::net::TcpStream::connect(&target).await {
                let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
            }
        });
    }
}

/// Start-up while the database does not answer yet: the server waits, says
/// so, and starts once the database answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_up_waits_for_a_database_that_comes_up_late() {
    let Some(backend) = Backend::postgres() else {
        return;
    };
    let Backend::Postgres(admin) = &backend else {
        unreachable!("Backend::postgres is PostgreSQL");
    };
    // Before creating the database: not while another test stops the
    // server.
    let _turn = shared().await;
    let name = Backend::database_name(&testkit::unique_name());
    let real = testkit::postgres::create_database(admin, &name)
        .await
        .expect("create the test database");
    let mut late = reqwest::Url::parse(&real).expect("the database URL");
    let target = format!(
        "{}:{}",
        late.host_str().unwrap_or("127.0.0.1"),
        late.port().unwrap_or(5432)
    );
    let port = free_port();
    late.set_port(Some(port)).expect("a URL with a port");
    let after = Duration::from_secs(2);
    let opener = tokio::spawn(open_later(port, target, after));
    let began = Instant::now();
    let app = TestApp::spawn_with(
        backend.clone(),
        AppOptions {
            database_url: Some(late.to_string()),
            extra_args: vec!["--database-wait".into(), "30".into()],
            ..Default::default()
        },
    )
    .await;
    eprintln!(
        "listening {:.2} s after its start; the database came up after {after:?}",
        began.elapsed().as_secs_f64()
    );
    assert!(began.elapsed() >= after);
    let log = app.server_log_text();
    assert!(log.contains(WAITING), "{log}");
    let (status, body) = app.get("/readyz").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (job, _) = app.start_ok("short").await;
    let job = app.wait_for_job_end(job).await;
    assert_eq!(job["status"], "completed", "{job}");
    drop(app);
    opener.abort();
    testkit::postgres::drop_database_when_unused(admin, &name);
}
