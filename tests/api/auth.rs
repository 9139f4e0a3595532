//! Access control: with a token set, `/api` calls without it, or with a
//! wrong one, get 401 and change nothing; the probes stay open.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{AppOptions, Backend, TestApp};
use crate::on_both_databases;

const TOKEN: &str = "test-token-0123456789";

on_both_databases!(with_a_token_calls_without_it_are_refused_and_change_nothing);

async fn with_a_token_calls_without_it_are_refused_and_change_nothing(backend: Backend) {
    let options = AppOptions {
        extra_args: vec![
            "--api-token".into(),
            TOKEN.into(),
            "--cors-origins".into(),
            "https://dashboard.example".into(),
        ],
        ..Default::default()
    };
    let app = TestApp::spawn_with(backend, options).await;
    let start = app.url("/api/recordings/jobs/start/");
    let body = json!({ "source": "test://x" });

    let response = app
        .client
        .post(&start)
        .json(&body)
        .send()
        .await
        .expect("POST");
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(response.headers().contains_key("www-authenticate"));
    let error: Value = response.json().await.expect("JSON");
    assert_eq!(error["error"]["code"], "unauthorized");

    let response = app
        .client
        .post(&start)
        .bearer_auth("test-token-0123456780")
        .json(&body)
        .send()
        .await
        .expect("POST");
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let response = app
        .client
        .get(app.url("/api/recordings/jobs/active/"))
        .send()
        .await
        .expect("GET");
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);

    // Nothing was started by the refused calls.
    let jobs: Value = app
        .client
        .get(app.url("/api/recordings/jobs/"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("GET")
        .json()
        .await
        .expect("JSON");
    assert_eq!(jobs["count"], 0, "{jobs}");

    let response = app
        .client
        .post(&start)
        .bearer_auth(TOKEN)
        .json(&json!({ "source": "test://x", "profile": "short" }))
        .send()
        .await
        .expect("POST");
    assert_eq!(response.status(), StatusCode::CREATED);

    // Event streams take the token in the query (EventSource sets no header).
    let response = app
        .client
        .get(app.url(&format!(
            "/api/recordings/jobs/events/?access_token={TOKEN}"
        )))
        .send()
        .await
        .expect("GET events");
    assert_eq!(response.status(), StatusCode::OK);
    drop(response);

    for open in ["/healthz", "/readyz"] {
        let response = app.client.get(app.url(open)).send().await.expect("GET");
        assert_eq!(response.status(), StatusCode::OK, "{open}");
    }

    // CORS: the configured origin may call from a browser.
    let preflight = app
        .client
        .request(reqwest::Method::OPTIONS, &start)
        .header("origin", "https://dashboard.example")
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization,content-type",
        )
        .send()
        .await
        .expect("OPTIONS");
    assert!(preflight.status().is_success(), "{}", preflight.status());
    assert_eq!(
        preflight
            .headers()
            .get("access-control-allow-origin")
            .and_then(|v| v.to_str().ok()),
        Some("https://dashboard.example")
    );
}
