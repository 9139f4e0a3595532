//! Who may reach the API, from where, and how much of it: an open API is
//! refused on every interface (the image as shipped included), tokens act
//! by role and are named in the log, browsers cannot be made to change
//! anything, and each node bounds its recorders, its event streams and
//! how long a client may hold a connection.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{
    AppOptions, Backend, TestApp, client_with_token, run_to_exit, server_binary, test_dir,
};
use crate::on_both_databases;

on_both_databases!(
    a_read_token_reads_a_write_token_acts_and_the_log_names_them,
    starts_beyond_max_jobs_get_503_with_retry_after,
);

/// A `write` token as `openssl rand -base64 24` makes them: `+`, `/`, `=`.
const OPS_TOKEN: &str = "q+Zk/3mW9xY2=Lp8rT4vN1sQ7cF0hJ6b";
const VIEWER_TOKEN: &str = "viewer-token-0123456789";

/// `recorderd serve` with `args` and `env` on a fresh data directory:
/// what it printed when it exited (within 20 s).
async fn serve_refused(args: &[&str], env: &[(&str, &str)]) -> String {
    let _turn = crate::helpers::shared().await;
    let dir = test_dir(&testkit::unique_name());
    let mut command = Command::new(server_binary());
    command
        .arg("serve")
        .args(args)
        .arg("--data-dir")
        .arg(dir.join("data"))
        .env("RUST_BACKTRACE", "0")
        .env_remove("RECORDERD_API_TOKEN")
        .env_remove("RECORDERD_API_TOKENS")
        .env_remove("RECORDERD_API_TOKENS_FILE")
        .envs(env.iter().copied());
    let (status, stderr) = run_to_exit(command, Duration::from_secs(20)).await;
    let _ = std::fs::remove_dir_all(&dir);
    assert!(!status.success(), "it served: {stderr}");
    stderr
}

/// The image's `CMD` (a JSON array) and `ENV` settings, read from the
/// Dockerfile as shipped.
fn dockerfile() -> (Vec<String>, Vec<(String, String)>) {
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("Dockerfile"))
        .expect("read the Dockerfile");
    let cmd = text
        .lines()
        .find_map(|line| line.strip_prefix("CMD "))
        .expect("the Dockerfile has a CMD");
    let cmd: Vec<String> = serde_json::from_str(cmd).expect("CMD is a JSON array");
    let env = text
        .lines()
        .filter_map(|line| line.strip_prefix("ENV "))
        .filter_map(|assignment| assignment.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    (cmd, env)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_api_is_refused_on_any_address_but_loopback_and_in_the_image() {
    for bind in ["0.0.0.0:0", "[::]:0"] {
        let said = serve_refused(&["--bind", bind], &[]).await;
        assert!(
            said.contains("refusing to serve the API without a token")
                && said.contains("RECORDERD_API_TOKEN")
                && said.contains("--insecure-no-auth"),
            "{bind}: {said}"
        );
    }
    // A variable left empty by a deployment is an error, never "no token".
    let said = serve_refused(&["--bind", "127.0.0.1:0"], &[("RECORDERD_API_TOKEN", "")]).await;
    assert!(said.contains("set but empty"), "{said}");
    let said = serve_refused(&["--bind", "127.0.0.1:0"], &[("RECORDERD_API_TOKENS", "")]).await;
    assert!(said.contains("empty entry"), "{said}");

    // The image as shipped: its command line and environment, on a free
    // port, refuse to start without a token...
    let (cmd, env) = dockerfile();
    assert_eq!(cmd, ["serve"], "every setting is a variable, none a flag");
    let bind = env
        .iter()
        .find(|(k, _)| k == "RECORDERD_BIND")
        .map(|(_, v)| v.as_str())
        .expect("the image binds an address");
    assert!(bind.starts_with("0.0.0.0:"), "{bind}");
    // No flags: on a free port, the rest as shipped.
    let args: [&str; 0] = [];
    let env: Vec<(&str, &str)> = env
        .iter()
        .filter(|(k, _)| k != "RECORDERD_DATA_DIR")
        .map(|(k, v)| match k.as_str() {
            "RECORDERD_BIND" => (k.as_str(), "0.0.0.0:0"),
            _ => (k.as_str(), v.as_str()),
        })
        .collect();
    let said = serve_refused(&args, &env).await;
    assert!(said.contains("RECORDERD_API_TOKEN"), "{said}");

    // The compose example publishes on loopback only and mounts a token
    // file; what it sets is what the image is run with below.
    let compose =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("compose.yaml"))
            .expect("read compose.yaml");
    for line in [
        "- \"127.0.0.1:8000:8000\"",
        "RECORDERD_API_TOKENS_FILE: /run/secrets/recorderd-tokens",
        "file: ./secrets/recorderd-tokens",
        "read_only: true",
    ] {
        assert!(
            compose.lines().any(|l| l.trim() == line),
            "compose.yaml lacks `{line}`"
        );
    }

    // ...and serve on every interface with a token file, as the compose
    // example mounts one.
    let _turn = crate::helpers::shared().await;
    let dir = test_dir(&testkit::unique_name());
    let tokens = dir.join("tokens");
    std::fs::write(&tokens, format!("ops:write:{OPS_TOKEN}\n")).expect("write tokens");
    let log = dir.join("server.log");
    let mut server = Command::new(server_binary())
        .arg("serve")
        .args(args)
        .arg("--data-dir")
        .arg(dir.join("data"))
        .envs(env.iter().copied())
        .env("RECORDERD_API_TOKENS_FILE", &tokens)
        .env("RUST_LOG", "info,sqlx=warn")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).expect("create log"))
        .spawn()
        .expect("start recorderd");
    let listening =
        testkit::server::wait_until_listening(&mut server, &log, Duration::from_secs(30)).await;
    let outcome = match listening {
        Ok(address) => {
            let url = format!("http://127.0.0.1:{}/api/recordings/jobs/", address.port());
            let with_token = client_with_token(OPS_TOKEN).get(&url).send().await;
            let without = crate::helpers::http_client().get(&url).send().await;
            Ok((
                address,
                with_token.map(|r| r.status()),
                without.map(|r| r.status()),
            ))
        }
        Err(e) => Err(e.to_string()),
    };
    let _ = server.kill();
    let _ = server.wait();
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let (address, with_token, without) = outcome.unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert!(address.ip().is_unspecified(), "{address}");
    assert_eq!(with_token.expect("GET with the token"), StatusCode::OK);
    assert_eq!(without.expect("GET without"), StatusCode::UNAUTHORIZED);
    let _ = std::fs::remove_dir_all(&dir);
}

async fn a_read_token_reads_a_write_token_acts_and_the_log_names_them(backend: Backend) {
    let options = AppOptions {
        extra_args: vec![
            "--api-tokens".into(),
            format!("viewer:read:{VIEWER_TOKEN},ops:write:{OPS_TOKEN}"),
        ],
        token: Some(OPS_TOKEN.to_owned()),
        ..Default::default()
    };
    let app = TestApp::spawn_with(backend, options).await;
    let viewer = client_with_token(VIEWER_TOKEN);
    let ops = client_with_token(OPS_TOKEN);
    let start = app.url("/api/recordings/jobs/start/");
    let body = json!({ "source": "test://stream" });

    // A `read` token reads, and is refused every change, which it names.
    let response = viewer
        .get(app.url("/api/recordings/jobs/"))
        .send()
        .await
        .expect("GET");
    assert_eq!(response.status(), StatusCode::OK);
    let response = viewer.post(&start).json(&body).send().await.expect("POST");
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let refused: Value = response.json().await.expect("JSON");
    assert_eq!(refused["error"]["code"], "forbidden", "{refused}");
    let message = refused["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("viewer") && message.contains("write"),
        "{message}"
    );
    for (method, path) in [
        (reqwest::Method::POST, "/api/recordings/jobs/cleanup/"),
        (reqwest::Method::DELETE, "/api/recordings/1/"),
    ] {
        let response = viewer
            .request(method.clone(), app.url(path))
            .json(&json!({}))
            .send()
            .await
            .expect("request");
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{method} {path}");
    }

    // A `write` token acts.
    let response = ops.post(&start).json(&body).send().await.expect("POST");
    assert_eq!(response.status(), StatusCode::CREATED);
    let started: Value = response.json().await.expect("JSON");
    let job_id = started["job"]["id"].as_i64().expect("job id");

    // A form POST (what any page can make a browser send) changes nothing,
    // whatever token rides along.
    let response = ops
        .post(app.url("/api/recordings/jobs/stop/"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("job_id={job_id}"))
        .send()
        .await
        .expect("POST");
    assert_eq!(response.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);

    // The base64 token in a query string, percent-encoded as a browser
    // encodes it, opens the event stream; a query token does not act.
    let encoded: String = OPS_TOKEN
        .bytes()
        .map(|b| match b {
            b'+' => "%2B".to_owned(),
            b'/' => "%2F".to_owned(),
            b'=' => "%3D".to_owned(),
            b => (b as char).to_string(),
        })
        .collect();
    let plain = crate::helpers::http_client();
    let response = plain
        .get(app.url(&format!(
            "/api/recordings/jobs/events/?access_token={encoded}"
        )))
        .send()
        .await
        .expect("GET events");
    assert_eq!(response.status(), StatusCode::OK);
    drop(response);
    let response = plain
        .post(app.url(&format!(
            "/api/recordings/jobs/stop/?access_token={encoded}"
        )))
        .json(&json!({ "job_id": job_id }))
        .send()
        .await
        .expect("POST");
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);

    let response = ops
        .post(app.url("/api/recordings/jobs/stop/"))
        .json(&json!({ "job_id": job_id }))
        .send()
        .await
        .expect("POST");
    assert_eq!(response.status(), StatusCode::OK);
    app.wait_for_job_end(job_id).await;

    // The log says which token acted, never what it is.
    let log = app.server_log_text();
    assert!(
        log.lines().any(|l| l.contains("request by token")
            && l.contains("token=ops")
            && l.contains("/api/recordings/jobs/start")),
        "{log}"
    );
    assert!(
        log.contains("api{token=ops}"),
        "actions are logged in the token's span:\n{log}"
    );
    assert!(
        !log.contains(OPS_TOKEN) && !log.contains(VIEWER_TOKEN),
        "{log}"
    );
}

/// One request over a raw connection, with `host` as its `Host`.
async fn status_with_host(app: &TestApp, path: &str, host: &str) -> StatusCode {
    let response = app
        .client
        .get(app.url(path))
        .header("host", host)
        .send()
        .await
        .expect("GET");
    response.status()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_that_is_not_the_servers_is_refused_on_loopback() {
    let options = AppOptions {
        extra_args: vec!["--public-names".into(), "rec.example.org".into()],
        ..Default::default()
    };
    let app = TestApp::spawn_with(Backend::Sqlite, options).await;
    let port = app
        .address
        .rsplit(':')
        .next()
        .unwrap_or_default()
        .to_owned();
    // A page of another site whose name was pointed at 127.0.0.1.
    for path in ["/api/recordings/jobs/", "/", "/metrics"] {
        let status = status_with_host(&app, path, &format!("rebind.attacker.example:{port}")).await;
        assert_eq!(status, StatusCode::MISDIRECTED_REQUEST, "{path}");
    }
    let response = app
        .client
        .get(app.url("/api/recordings/jobs/"))
        .header("host", "rebind.attacker.example")
        .send()
        .await
        .expect("GET");
    let body: Value = response.json().await.expect("JSON");
    assert_eq!(body["error"]["code"], "host_not_allowed", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("--public-names")),
        "{body}"
    );
    for host in [
        format!("127.0.0.1:{port}"),
        format!("localhost:{port}"),
        "rec.example.org".to_owned(),
    ] {
        assert_eq!(
            status_with_host(&app, "/api/recordings/jobs/", &host).await,
            StatusCode::OK,
            "{host}"
        );
    }
    // Probes answer whoever asks.
    assert_eq!(
        status_with_host(&app, "/readyz", "anything.example").await,
        StatusCode::OK
    );
}

async fn starts_beyond_max_jobs_get_503_with_retry_after(backend: Backend) {
    let options = AppOptions {
        extra_args: vec!["--max-jobs".into(), "5".into()],
        ..Default::default()
    };
    let app = TestApp::spawn_with(backend, options).await;
    // Sixteen at once for five places (admitted together, several to a
    // transaction): exactly five start.
    let starts = (0..16).map(|_| app.start(json!({ "source": "test://stream" })));
    let answers = futures::future::join_all(starts).await;
    let started: Vec<i64> = answers
        .iter()
        .filter(|(status, _)| *status == StatusCode::CREATED)
        .map(|(_, body)| body["job"]["id"].as_i64().expect("job id"))
        .collect();
    assert_eq!(started.len(), 5, "{answers:?}");
    for (status, body) in answers.iter().filter(|(s, _)| *s != StatusCode::CREATED) {
        assert_eq!(*status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
        assert_eq!(body["error"]["code"], "at_capacity", "{body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("--max-jobs")),
            "{body}"
        );
    }
    let response = app
        .client
        .post(app.url("/api/recordings/jobs/start/"))
        .json(&json!({ "source": "test://stream" }))
        .send()
        .await
        .expect("POST");
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    let retry_after: u64 = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("a Retry-After in seconds");
    assert!(retry_after > 0);
    let (_, jobs) = app.get("/api/recordings/jobs/").await;
    assert_eq!(
        jobs["count"], 5,
        "refused starts leave nothing behind: {jobs}"
    );

    // A place frees when a recorder ends.
    app.stop(started[0]).await;
    app.wait_for_job_end(started[0]).await;
    app.start_ok("test").await;
}

/// Reads from `stream` until the peer closes it; how long that took.
fn time_until_closed(mut stream: TcpStream, limit: Duration) -> Duration {
    let began = Instant::now();
    stream
        .set_read_timeout(Some(limit))
        .expect("set a read timeout");
    let mut buffer = [0u8; 4096];
    loop {
        match stream.read(&mut buffer) {
            Ok(0) => return began.elapsed(),
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return began.elapsed(),
            Err(e) => panic!("the connection stayed open {limit:?}: {e}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_streams_are_capped_and_silent_connections_closed() {
    let options = AppOptions {
        extra_args: vec![
            "--max-event-streams".into(),
            "2".into(),
            "--header-timeout".into(),
            "1".into(),
        ],
        ..Default::default()
    };
    let app = TestApp::spawn_with(Backend::Sqlite, options).await;
    let events = app.url("/api/recordings/jobs/events/");
    let first = app.client.get(&events).send().await.expect("stream 1");
    let second = app.client.get(&events).send().await.expect("stream 2");
    assert_eq!(
        (first.status(), second.status()),
        (StatusCode::OK, StatusCode::OK)
    );
    let third = app.client.get(&events).send().await.expect("stream 3");
    assert_eq!(third.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(third.headers().contains_key("retry-after"));
    let body: Value = third.json().await.expect("JSON");
    assert_eq!(body["error"]["code"], "at_capacity", "{body}");
    // A client that leaves gives its place back.
    drop(first);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let again = app.client.get(&events).send().await.expect("stream");
        if again.status() == StatusCode::OK {
            break;
        }
        assert!(Instant::now() < deadline, "the place was never given back");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(second);

    // A client that never finishes its headers, and one that keeps an
    // idle connection, are both let go after the header timeout.
    let address = app.address.trim_start_matches("http://").to_owned();
    let timed = tokio::task::spawn_blocking(move || {
        let mut slow = TcpStream::connect(&address).expect("connect");
        slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            .expect("half a request");
        let silent = time_until_closed(slow, Duration::from_secs(15));
        let mut idle = TcpStream::connect(&address).expect("connect");
        idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            .expect("a request");
        let kept = time_until_closed(idle, Duration::from_secs(15));
        (silent, kept)
    })
    .await
    .expect("join");
    let (silent, kept) = timed;
    assert!(
        silent < Duration::from_secs(5),
        "half a request held {silent:?}"
    );
    assert!(
        kept < Duration::from_secs(5),
        "an idle connection held {kept:?}"
    );
}
