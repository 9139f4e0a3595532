//! Webhooks against a real HTTP receiver on a real port: every transition
//! arrives in order, signed, retried through failures, and delivery
//! resumes after the server is SIGKILLed while the receiver was down.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::helpers::webhook::Receiver;
use crate::helpers::{AppOptions, Backend, TestApp};
use crate::on_both_databases;

const SECRET: &str = "webhook-secret-for-tests";

/// Whether `signature` is this suite's secret's over `body`.
fn verify(signature: &str, body: &[u8]) -> bool {
    crate::helpers::webhook::verify(SECRET, signature, body)
}

fn options(url: &str) -> AppOptions {
    AppOptions {
        extra_args: vec![
            "--webhook-url".into(),
            url.into(),
            "--webhook-secret".into(),
            SECRET.into(),
        ],
        ..Default::default()
    }
}

const TRANSITIONS: [&str; 5] = [
    "job.started",
    "job.stopping",
    "job.completed",
    "recording.processing",
    "recording.ready",
];

on_both_databases!(every_transition_is_posted_in_order_signed_and_retried);

async fn every_transition_is_posted_in_order_signed_and_retried(backend: Backend) {
    let receiver = Receiver::default();
    receiver.fail_next(2);
    let url = receiver.serve().await;
    let app = TestApp::spawn_with(backend, options(&url)).await;
    let (job_id, recording_id) = app.start_ok("test").await;
    app.wait_for_recorder_output(recording_id).await;
    app.stop(job_id).await;
    receiver
        .wait_for(&app, |r| r.kind == "recording.ready")
        .await;

    let accepted = receiver.accepted();
    let kinds: Vec<&str> = accepted.iter().map(|r| r.kind.as_str()).collect();
    assert_eq!(kinds, TRANSITIONS, "{accepted:#?}");
    assert!(
        accepted.windows(2).all(|w| w[0].event_id < w[1].event_id),
        "ids increase, each delivered once: {accepted:#?}"
    );
    for r in &accepted {
        assert!(verify(&r.signature, &r.body), "bad signature on {r:?}");
        assert!(
            !verify(&r.signature, b"{}"),
            "the signature covers the body"
        );
        let body: Value = serde_json::from_slice(&r.body).expect("JSON body");
        assert_eq!(body["id"], r.event_id);
        assert_eq!(body["event"], r.kind.as_str());
    }
    let first: Value = serde_json::from_slice(&accepted[0].body).expect("JSON");
    assert_eq!(first["data"]["id"], job_id);
    assert_eq!(first["data"]["status"], "running");
    let last: Value = serde_json::from_slice(&accepted[4].body).expect("JSON");
    assert_eq!(last["data"]["id"], recording_id);
    assert_eq!(last["data"]["status"], "ready");

    // The first event was refused twice, then accepted on attempt 3.
    let tries: Vec<(u32, bool)> = receiver
        .all()
        .iter()
        .filter(|r| r.event_id == accepted[0].event_id)
        .map(|r| (r.attempt, r.accepted))
        .collect();
    assert_eq!(tries, [(1, false), (2, false), (3, true)]);

    let metrics = app.metrics_text().await;
    assert!(
        metrics.contains("recorderd_webhook_deliveries_total{outcome=\"retried\"} 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains("recorderd_webhook_deliveries_total{outcome=\"delivered\"} 5"),
        "{metrics}"
    );
}

on_both_databases!(delivery_resumes_after_a_crash_while_the_receiver_was_down);

async fn delivery_resumes_after_a_crash_while_the_receiver_was_down(backend: Backend) {
    let receiver = Receiver::default();
    receiver.set_down(true);
    let url = receiver.serve().await;
    let mut app = TestApp::spawn_with(backend, options(&url)).await;
    let (job_id, recording_id) = app.start_ok("test").await;
    app.wait_for_recorder_output(recording_id).await;
    app.stop(job_id).await;
    app.wait_for_recording_settled(recording_id).await;
    // At least one refused attempt, so the crash comes mid-retry.
    receiver.wait_for_an_attempt().await;
    // Every event of the run is stored before the crash, which only
    // interrupts delivery.
    let db = app.db().await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
        let stored = recorderd::entity::event::Entity::find()
            .filter(recorderd::entity::event::Column::Kind.eq("recording.ready"))
            .count(&db)
            .await
            .expect("count events");
        if stored == 1 {
            break;
        }
        assert!(Instant::now() < deadline, "recording.ready never stored");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    app.signal_server(9).await;

    receiver.set_down(false);
    app.start_server().await;
    receiver
        .wait_for(&app, |r| r.kind == "recording.ready")
        .await;
    let accepted = receiver.accepted();
    let kinds: Vec<&str> = accepted.iter().map(|r| r.kind.as_str()).collect();
    assert_eq!(
        kinds, TRANSITIONS,
        "nothing lost, nothing twice: {accepted:#?}"
    );
    assert!(accepted.windows(2).all(|w| w[0].event_id < w[1].event_id));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unsupported_or_malformed_webhook_url_is_refused_at_start() {
    let _turn = crate::helpers::shared().await;
    let dir =
        std::env::temp_dir().join(format!("recorderd-webhook-refused-{}", std::process::id()));
    let missing_ca = dir.join("no-such-ca.pem").display().to_string();
    for (args, expected) in [
        (
            vec!["--webhook-url", "ftp://hooks.example/x"],
            "only http:// and https://",
        ),
        (vec!["--webhook-url", "not a url"], "is not a URL"),
        (
            vec![
                "--webhook-url",
                "https://hooks.example/x",
                "--webhook-ca-file",
                &missing_ca,
            ],
            "reading webhook CA file",
        ),
    ] {
        let mut command = std::process::Command::new(crate::helpers::server_binary());
        command
            .arg("serve")
            .args(["--bind", "127.0.0.1:0"])
            .args(&args)
            .arg("--data-dir")
            .arg(&dir);
        let (status, stderr) = crate::helpers::run_to_exit(command, Duration::from_secs(20)).await;
        assert!(!status.success(), "{args:?} was accepted");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// A certificate authority and a certificate it signed for 127.0.0.1, made
/// with the `openssl` command in `dir`: `(ca.pem, hook.pem, hook.key)`.
fn private_ca(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let run = |args: &[&str]| {
        let output = std::process::Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .unwrap_or_else(|e| panic!("openssl is needed (apt-get install openssl): {e}"));
        assert!(
            output.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    run(&[
        &["req", "-x509"][..],
        &ec,
        &[
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=recorderd test CA",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign",
        ],
    ]
    .concat());
    run(&[
        &["req"][..],
        &ec,
        &[
            "-keyout",
            "hook.key",
            "-out",
            "hook.csr",
            "-subj",
            "/CN=127.0.0.1",
        ],
    ]
    .concat());
    std::fs::write(
        dir.join("hook.ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n",
    )
    .expect("write the extensions");
    run(&[
        "x509",
        "-req",
        "-in",
        "hook.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "hook.pem",
        "-days",
        "2",
        "-extfile",
        "hook.ext",
    ]);
    (
        dir.join("ca.pem"),
        dir.join("hook.pem"),
        dir.join("hook.key"),
    )
}

/// The receiver over TLS: what the HTTPS test alone needs.
impl Receiver {
    /// Serves `POST /hook` over TLS with `cert` and `key` on a free
    /// loopback port; returns its `https://` URL.
    async fn serve_tls(&self, cert: &Path, key: &Path) -> String {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
            .expect("read the certificate")
            .collect::<Result<_, _>>()
            .expect("PEM certificates");
        let key = PrivateKeyDer::from_pem_file(key).expect("a PEM key");
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .expect("a server certificate");
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let app = self.router();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind receiver");
        let address = listener.local_addr().expect("receiver address");
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (acceptor, app) = (acceptor.clone(), app.clone());
                tokio::spawn(async move {
                    // A client that does not trust the certificate ends
                    // the handshake: nothing to serve.
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let service = hyper_util::service::TowerToHyperService::new(app);
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                        .await;
                });
            }
        });
        format!("https://{address}/hook")
    }
}

on_both_databases!(an_https_receiver_trusted_through_a_ca_file_gets_every_event);

async fn an_https_receiver_trusted_through_a_ca_file_gets_every_event(backend: Backend) {
    let dir = crate::helpers::test_dir(&testkit::unique_name());
    let (ca, cert, key) = private_ca(&dir);

    // Without the CA, the receiver's certificate is not trusted: nothing
    // is delivered, and the log says why.
    let untrusted = Receiver::default();
    let url = untrusted.serve_tls(&cert, &key).await;
    let mut refused = options(&url);
    refused
        .extra_args
        .extend(["--webhook-max-attempts".into(), "1".into()]);
    let app = TestApp::spawn_with(backend.clone(), refused).await;
    let (job_id, _) = app.start_ok("short").await;
    app.wait_for_job_end(job_id).await;
    app.wait_until("a delivery given up", Duration::from_secs(30), || {
        let log = app.server_log_text();
        if log.contains("webhook delivery given up") {
            Ok(log)
        } else {
            Err("not yet".to_owned())
        }
    })
    .await;
    assert!(untrusted.all().is_empty(), "{:#?}", untrusted.all());
    let log = app.server_log_text();
    assert!(log.to_lowercase().contains("certificate"), "{log}");
    drop(app);

    let receiver = Receiver::default();
    let url = receiver.serve_tls(&cert, &key).await;
    let mut trusted = options(&url);
    trusted
        .extra_args
        .extend(["--webhook-ca-file".into(), ca.display().to_string()]);
    let app = TestApp::spawn_with(backend, trusted).await;
    let (job_id, recording_id) = app.start_ok("test").await;
    app.wait_for_recorder_output(recording_id).await;
    app.stop(job_id).await;
    receiver
        .wait_for(&app, |r| r.kind == "recording.ready")
        .await;
    let accepted = receiver.accepted();
    let kinds: Vec<&str> = accepted.iter().map(|r| r.kind.as_str()).collect();
    assert_eq!(kinds, TRANSITIONS, "{accepted:#?}");
    assert!(accepted.iter().all(|r| verify(&r.signature, &r.body)));
    let _ = std::fs::remove_dir_all(&dir);
}
