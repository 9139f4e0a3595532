//! Every bad input, one row each, against the real router in-process: the
//! application is built as `recorderd serve` builds it (settings parsed
//! from its command line, a real SQLite file or PostgreSQL database, the
//! suite's profiles), and each request goes through
//! [`Application::router`] with `oneshot`, without a socket or a child
//! process. `errors.rs` sends a few of the same over a real socket.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use clap::Parser;
use recorderd::cli::args::{Cli, Command};
use recorderd::config::Settings;
use recorderd::startup::Application;
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::helpers::{Backend, profiles_toml, test_dir};
use crate::on_both_databases;

on_both_databases!(each_bad_input_gets_its_status_and_error_code);

const START: &str = "/api/recordings/jobs/start/";
const STOP: &str = "/api/recordings/jobs/stop/";
const CLEANUP: &str = "/api/recordings/jobs/cleanup/";
const SCHEDULES: &str = "/api/recordings/schedules/";

/// One request and the error it must get.
struct Case {
    method: Method,
    path: String,
    content_type: Option<&'static str>,
    body: String,
    status: StatusCode,
    code: &'static str,
    /// `error.field` of an `invalid_field`.
    field: Option<&'static str>,
    /// Something the message must say.
    mentions: Option<&'static str>,
    /// `error.rule` of a source refused for what it would reach.
    rule: Option<&'static str>,
}

fn request(method: Method, path: &str, content_type: Option<&'static str>, body: String) -> Case {
    Case {
        method,
        path: path.to_owned(),
        content_type,
        body,
        status: StatusCode::OK,
        code: "",
        field: None,
        mentions: None,
        rule: None,
    }
}

fn get(path: &str) -> Case {
    request(Method::GET, path, None, String::new())
}

fn post(path: &str, body: Value) -> Case {
    request(
        Method::POST,
        path,
        Some("application/json"),
        body.to_string(),
    )
}

fn post_raw(path: &str, content_type: Option<&'static str>, body: impl Into<String>) -> Case {
    request(Method::POST, path, content_type, body.into())
}

impl Case {
    fn is(mut self, status: StatusCode, code: &'static str) -> Self {
        self.status = status;
        self.code = code;
        self
    }

    fn field(mut self, field: &'static str) -> Self {
        self.field = Some(field);
        self
    }

    fn mentioning(mut self, text: &'static str) -> Self {
        self.mentions = Some(text);
        self
    }

    fn rule(mut self, rule: &'static str) -> Self {
        self.rule = Some(rule);
        self
    }

    fn describe(&self) -> String {
        let mut body: String = self.body.chars().take(80).collect();
        if body.len() < self.body.len() {
            body += &format!("… ({} bytes)", self.body.len());
        }
        format!("{} {} {body}", self.method, self.path)
    }

    /// What is wrong with `answer`, if anything.
    fn check(&self, status: StatusCode, answer: &Value) -> Option<String> {
        let error = &answer["error"];
        let message = error["message"].as_str().unwrap_or_default();
        let wrong = if status != self.status {
            format!("status {status}, expected {}", self.status)
        } else if answer["success"] != false {
            "`success` is not false".to_owned()
        } else if error["code"] != self.code {
            format!("code {}, expected {}", error["code"], self.code)
        } else if message.is_empty() {
            "no message".to_owned()
        } else if let Some(field) = self.field.filter(|f| error["field"] != *f) {
            format!("field {}, expected {field}", error["field"])
        } else if let Some(text) = self.mentions.filter(|t| !message.contains(t)) {
            format!("the message does not mention {text:?}")
        } else if let Some(rule) = self.rule.filter(|r| error["rule"] != *r) {
            format!("rule {}, expected {rule}", error["rule"])
        } else if self.rule.is_some_and(|r| !message.contains(r)) {
            "the message does not name the rule".to_owned()
        } else {
            return None;
        };
        Some(format!("{}: {wrong}; answer: {answer}", self.describe()))
    }
}

/// A schedule's timing, and what it shares with a start.
fn schedule_cases() -> Vec<Case> {
    use StatusCode as S;
    let schedule = |extra: Value| {
        let mut body = json!({ "source": "test://a", "profile": "test", "duration_seconds": 60 });
        for (key, value) in extra.as_object().into_iter().flatten() {
            body[key] = value.clone();
        }
        post(SCHEDULES, body)
    };
    let cron = json!({ "cron": "0 8 * * *", "time_zone": "Europe/Paris" });
    let with_cron = |extra: Value| {
        let mut body = cron.clone();
        for (key, value) in extra.as_object().into_iter().flatten() {
            body[key] = value.clone();
        }
        schedule(body)
    };
    vec![
        with_cron(json!({ "cron": "0 8 * *" }))
            .is(S::BAD_REQUEST, "invalid_field")
            .field("cron")
            .mentioning("fields"),
        with_cron(json!({ "cron": "0 25 * * *" }))
            .is(S::BAD_REQUEST, "invalid_field")
            .field("cron"),
        with_cron(json!({ "cron": "0 0 30 2 *" }))
            .is(S::BAD_REQUEST, "invalid_field")
            .field("cron")
            .mentioning("no date"),
        with_cron(json!({ "time_zone": "Europe/Atlantis" }))
            .is(S::BAD_REQUEST, "invalid_field")
            .field("time_zone")
            .mentioning("IANA"),
        schedule(json!({ "cron": "0 8 * * *" }))
            .is(S::BAD_REQUEST, "invalid_field")
            .field("time_zone"),
        with_cron(json!({ "start_at": "2099-01-01T08:00:00Z" }))
            .is(S::BAD_REQUEST, "invalid_field")
            .field("start_at")
            .mentioning("not both"),
        schedule(json!({}))
            .is(S::BAD_REQUEST, "invalid_field")
            .field("cron")
            .mentioning("either"),
        schedule(json!({ "start_at": "2001-01-01T08:00:00Z" }))
            .is(S::BAD_REQUEST, "invalid_field")
            .field("start_at")
            .mentioning("past"),
        schedule(json!({ "start_at": "tomorrow" })).is(S::UNPROCESSABLE_ENTITY, "invalid_body"),
        with_cron(json!({ "duration_seconds": 0 }))
            .is(S::BAD_REQUEST, "invalid_field")
            .field("duration_seconds"),
        with_cron(json!({ "duration_seconds": -5 }))
            .is(S::BAD_REQUEST, "invalid_field")
            .field("duration_seconds"),
        post(
            SCHEDULES,
            json!({ "source": "test://a", "cron": "* * * * *", "time_zone": "UTC" }),
        )
        .is(S::BAD_REQUEST, "invalid_field")
        .field("duration_seconds")
        .mentioning("required"),
        // What a start would refuse, refused the same way.
        with_cron(json!({ "profile": "nope" })).is(S::BAD_REQUEST, "unknown_profile"),
        with_cron(json!({ "source": "file:///etc/passwd" })).is(S::BAD_REQUEST, "invalid_source"),
        with_cron(json!({ "duration_seconds": 700_000 }))
            .is(S::BAD_REQUEST, "invalid_field")
            .field("duration_seconds"),
        get("/api/recordings/schedules/999").is(S::NOT_FOUND, "schedule_not_found"),
        post("/api/recordings/schedules/999/pause", json!({}))
            .is(S::NOT_FOUND, "schedule_not_found"),
        request(
            Method::DELETE,
            "/api/recordings/schedules/999",
            Some("application/json"),
            String::new(),
        )
        .is(S::NOT_FOUND, "schedule_not_found"),
        get("/api/recordings/schedules/abc").is(S::BAD_REQUEST, "invalid_path"),
    ]
}

fn cases() -> Vec<Case> {
    use StatusCode as S;
    let start = |body: Value| post(START, body);
    let with = |field: &str, value: Value| {
        let mut body = json!({ "source": "test://a" });
        body[field] = value;
        start(body)
    };
    let too_big = format!("{{\"source\": \"test://{}\"}}", "a".repeat(200 * 1024));
    vec![
        // The body as JSON.
        post_raw(START, Some("application/json"), "{\"source\": ")
            .is(S::BAD_REQUEST, "malformed_json"),
        post_raw(START, Some("text/plain"), "source=x")
            .is(S::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type"),
        post_raw(START, None, r#"{"source": "test://a"}"#)
            .is(S::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type"),
        post_raw(START, Some("application/json"), too_big)
            .is(S::PAYLOAD_TOO_LARGE, "body_too_large"),
        start(json!({ "title": "no source" }))
            .is(S::UNPROCESSABLE_ENTITY, "invalid_body")
            .mentioning("source"),
        // An unknown field is ignored (see errors.rs), a known one of the
        // wrong type is not.
        start(json!({ "source": "test://a", "quality": "high", "title": 7 }))
            .is(S::UNPROCESSABLE_ENTITY, "invalid_body")
            .mentioning("title"),
        post(STOP, json!({ "job_id": "seven", "reason": "done" }))
            .is(S::UNPROCESSABLE_ENTITY, "invalid_body"),
        start(json!({ "source": 42 })).is(S::UNPROCESSABLE_ENTITY, "invalid_body"),
        // A start's fields.
        with("profile", json!("nope"))
            .is(S::BAD_REQUEST, "unknown_profile")
            .mentioning("test"),
        start(json!({ "source": "file:///etc/passwd" }))
            .is(S::BAD_REQUEST, "invalid_source")
            .mentioning("file"),
        start(json!({ "source": "-filter_complex" })).is(S::BAD_REQUEST, "invalid_source"),
        start(json!({ "source": "just-a-name" })).is(S::BAD_REQUEST, "invalid_source"),
        start(json!({ "source": "" })).is(S::BAD_REQUEST, "invalid_source"),
        start(json!({ "source": "test://a\nb" })).is(S::BAD_REQUEST, "invalid_source"),
        with("duration_seconds", json!(0))
            .is(S::BAD_REQUEST, "invalid_field")
            .field("duration_seconds"),
        with("duration_seconds", json!(604_801))
            .is(S::BAD_REQUEST, "invalid_field")
            .field("duration_seconds"),
        with("duration_seconds", json!(-3)).is(S::UNPROCESSABLE_ENTITY, "invalid_body"),
        with("duration_seconds", json!(60.5)).is(S::UNPROCESSABLE_ENTITY, "invalid_body"),
        with("title", json!("t".repeat(500)))
            .is(S::BAD_REQUEST, "invalid_field")
            .field("title"),
        with("title", json!("a\u{0}b"))
            .is(S::BAD_REQUEST, "invalid_field")
            .field("title"),
        // What a source may reach.
        start(json!({ "source": "test://169.254.169.254/latest/meta-data/" }))
            .is(S::BAD_REQUEST, "invalid_source")
            .rule("builtin_deny")
            .mentioning("169.254.0.0/16"),
        start(json!({ "source": "test://[fe80::1]/x" }))
            .is(S::BAD_REQUEST, "invalid_source")
            .rule("builtin_deny"),
        start(json!({ "source": "test://0.0.0.0:18997?listen=1" }))
            .is(S::BAD_REQUEST, "invalid_source")
            .rule("listener_option")
            .mentioning("listen=1"),
        start(json!({ "source": "test://host:9000?streamid=x&mode=listener" }))
            .is(S::BAD_REQUEST, "invalid_source")
            .rule("listener_option"),
        start(json!({ "source": "test://239.0.0.1:1234?localport=5000" }))
            .is(S::BAD_REQUEST, "invalid_source")
            .rule("listener_option"),
        start(json!({ "source": "http://127.0.0.1:8080/secret", "profile": "shared" }))
            .is(S::BAD_REQUEST, "invalid_source")
            .rule("deny_private")
            .mentioning("127.0.0.0/8"),
        start(json!({ "source": "test://localhost/x", "profile": "shared" }))
            .is(S::BAD_REQUEST, "invalid_source")
            .rule("deny_private"),
        start(json!({ "source": "test://2130706433/x", "profile": "shared" }))
            .is(S::BAD_REQUEST, "invalid_source")
            .rule("deny_private"),
        start(json!({ "source": "test://192.168.1.20/cam", "profile": "shared" }))
            .is(S::BAD_REQUEST, "invalid_source")
            .rule("deny_private"),
        start(json!({ "source": "test://10.9.3.4/x", "profile": "shared" }))
            .is(S::BAD_REQUEST, "invalid_source")
            .rule("deny_hosts")
            .mentioning("10.9.0.0/16"),
        start(json!({ "source": "test://cam.blocked.example/x", "profile": "shared" }))
            .is(S::BAD_REQUEST, "invalid_source")
            .rule("deny_hosts"),
        start(json!({ "source": "test://192.168.1.20/cam", "profile": "cameras" }))
            .is(S::BAD_REQUEST, "invalid_source")
            .rule("allow_hosts"),
        // State changes need JSON: no cross-site form can trigger one.
        post_raw(CLEANUP, None, "").is(S::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type"),
        post_raw(CLEANUP, Some("application/x-www-form-urlencoded"), "a=b")
            .is(S::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
            .mentioning("application/json"),
        post_raw(CLEANUP, Some("text/plain"), "")
            .is(S::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type"),
        post_raw(
            "/api/recordings/1/reprocess/",
            Some("multipart/form-data; boundary=x"),
            "",
        )
        .is(S::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type"),
        request(Method::DELETE, "/api/recordings/1/", None, String::new())
            .is(S::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type"),
        // Stops.
        post(STOP, json!({ "job_id": "seven" })).is(S::UNPROCESSABLE_ENTITY, "invalid_body"),
        post(STOP, json!({})).is(S::UNPROCESSABLE_ENTITY, "invalid_body"),
        post(STOP, json!({ "job_id": 424242 })).is(S::NOT_FOUND, "job_not_found"),
        // Paths.
        get("/api/recordings/jobs/abc/").is(S::BAD_REQUEST, "invalid_path"),
        get("/api/recordings/abc").is(S::BAD_REQUEST, "invalid_path"),
        get("/api/recordings/jobs/424242/").is(S::NOT_FOUND, "job_not_found"),
        get("/api/recordings/424242").is(S::NOT_FOUND, "recording_not_found"),
        // Queries.
        get("/api/recordings/jobs/?status=zombie").is(S::BAD_REQUEST, "invalid_query"),
        get("/api/recordings/?status=nope").is(S::BAD_REQUEST, "invalid_query"),
        get("/api/recordings/jobs/?page=0")
            .is(S::BAD_REQUEST, "invalid_query")
            .mentioning("page"),
        get("/api/recordings/jobs/?page_size=abc").is(S::BAD_REQUEST, "invalid_query"),
        get("/api/recordings/jobs/?page_size=501")
            .is(S::BAD_REQUEST, "invalid_query")
            .mentioning("page_size"),
        get("/api/recordings/jobs/1/log/?bytes=0")
            .is(S::BAD_REQUEST, "invalid_query")
            .mentioning("bytes"),
        // Routes and methods.
        get("/api/nothing/here").is(S::NOT_FOUND, "not_found"),
        get(START).is(S::METHOD_NOT_ALLOWED, "method_not_allowed"),
        request(
            Method::DELETE,
            "/api/recordings/jobs/",
            Some("application/json"),
            String::new(),
        )
        .is(S::METHOD_NOT_ALLOWED, "method_not_allowed"),
    ]
}

/// The application `recorderd serve` would build with the suite's usual
/// flags, on a fresh database.
async fn build(backend: &Backend, dir: &std::path::Path, name: &str) -> Application {
    std::fs::write(dir.join("profiles.toml"), profiles_toml(dir, true)).expect("write profiles");
    let database_url = backend.fresh_database(dir, name).await;
    let command_line: Vec<std::ffi::OsString> = vec![
        "recorderd".into(),
        "serve".into(),
        "--bind".into(),
        "127.0.0.1:0".into(),
        "--data-dir".into(),
        dir.join("data").into(),
        "--config".into(),
        dir.join("profiles.toml").into(),
        "--database-url".into(),
        database_url.into(),
        "--reconcile-interval".into(),
        "0".into(),
    ];
    let cli = Cli::try_parse_from(command_line).expect("parse the serve command line");
    let Some(Command::Serve(args)) = cli.command else {
        panic!("not a serve command line: {cli:?}");
    };
    let settings = Settings::from_args(&args).expect("settings");
    Application::build(settings)
        .await
        .expect("build the application")
}

/// Puts back whether this process is a child subreaper: building an
/// application makes it one, as it makes the server one, and the rest of
/// the suite expects the orphans of its servers to go where they went
/// before.
struct SubreaperRestored(Option<rustix::process::Pid>);

impl Drop for SubreaperRestored {
    fn drop(&mut self) {
        let _ = rustix::process::set_child_subreaper(self.0);
    }
}

async fn each_bad_input_gets_its_status_and_error_code(backend: Backend) {
    // The application reaps this process's zombie children that it does
    // not own, as a server does its own: no other test's processes may run
    // meanwhile, or it would take their exit statuses.
    let _alone = crate::helpers::exclusive().await;
    let _restored =
        SubreaperRestored(rustix::process::child_subreaper().expect("read the subreaper flag"));
    let name = testkit::unique_name();
    let dir = test_dir(&name);
    let application = build(&backend, &dir, &name).await;
    let router = application.router();

    let send = |case: &Case| {
        let mut request = Request::builder()
            .method(case.method.clone())
            .uri(&case.path);
        if let Some(content_type) = case.content_type {
            request = request.header(header::CONTENT_TYPE, content_type);
        }
        let request = request
            .body(Body::from(case.body.clone()))
            .expect("a request");
        let router = router.clone();
        async move {
            let response = router.oneshot(request).await.expect("infallible");
            let status = response.status();
            let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
                .await
                .expect("the answer's body");
            let body = serde_json::from_slice(&bytes).unwrap_or_else(
                |_| json!({ "not JSON": String::from_utf8_lossy(&bytes).into_owned() }),
            );
            (status, body)
        }
    };

    let cases: Vec<Case> = cases().into_iter().chain(schedule_cases()).collect();
    let mut wrong = Vec::new();
    for case in &cases {
        let (status, answer) = send(case).await;
        wrong.extend(case.check(status, &answer));
    }
    assert!(
        wrong.is_empty(),
        "{} of {} bad inputs got the wrong answer:\n{}",
        wrong.len(),
        cases.len(),
        wrong.join("\n")
    );

    // None of them left a job, a recording or a schedule behind.
    for list in [
        "/api/recordings/jobs/",
        "/api/recordings/",
        "/api/recordings/schedules/",
    ] {
        let (status, body) = send(&get(list)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["count"], 0, "{list}: {body}");
    }

    // The shutdown `recorderd serve` goes through, at once.
    application
        .run_until_stopped(std::future::ready(()))
        .await
        .expect("shut down");
    let _ = std::fs::remove_dir_all(&dir);
    if let Backend::Postgres(admin) = &backend {
        testkit::postgres::drop_database_when_unused(admin, &Backend::database_name(&name));
    }
}
