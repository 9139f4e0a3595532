//! The command line beside the server: shell completions and the manual
//! made from the flags, `config check` on a profiles file, a timeout on a
//! server that does not answer, and `health` finding the server through
//! `RECORDERD_BIND` as a container's health check does.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::helpers::{Backend, TestApp, server_binary, test_dir};

fn cli(args: &[&str]) -> (bool, String, String) {
    let output = Command::new(server_binary())
        .args(args)
        .env_remove("RECORDERD_URL")
        .env_remove("RECORDERD_BIND")
        .env_remove("RECORDERD_API_TOKEN")
        .stdin(Stdio::null())
        .output()
        .expect("run the CLI");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn completions_are_generated_for_bash_zsh_and_fish_and_the_manual_from_the_flags() {
    for (shell, mark) in [
        ("bash", "complete -F _recorderd"),
        ("zsh", "#compdef recorderd"),
        ("fish", "complete -c recorderd"),
    ] {
        let (ok, script, stderr) = cli(&["completions", shell]);
        assert!(ok, "{shell}: {stderr}");
        assert!(script.contains(mark), "{shell}: {script}");
        for word in ["recordings", "download", "--follow", "--output"] {
            assert!(script.contains(word), "{shell} completes {word}");
        }
    }
    // The bash script is bash.
    let (_, script, _) = cli(&["completions", "bash"]);
    let mut bash = Command::new("bash")
        .args(["-n", "/dev/stdin"])
        .stdin(Stdio::piped())
        .spawn()
        .expect("run bash -n");
    bash.stdin
        .take()
        .expect("bash's stdin")
        .write_all(script.as_bytes())
        .expect("write the script");
    assert!(
        bash.wait().expect("bash -n").success(),
        "bash -n refused it"
    );

    let (ok, page, _) = cli(&["man"]);
    assert!(ok && page.contains(".TH recorderd 1"), "{page}");
    assert!(page.contains("completions"), "{page}");
    let dir = test_dir(&format!("man-{}", testkit::unique_name()));
    let (ok, _, stderr) = cli(&["man", "--dir", &dir.display().to_string()]);
    assert!(ok, "{stderr}");
    for page in [
        "recorderd.1",
        "recorderd-recordings-download.1",
        "recorderd-jobs-logs.1",
    ] {
        assert!(dir.join(page).exists(), "{page} written");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn config_check_names_the_line_of_a_mistake_and_lists_a_valid_file() {
    let dir = test_dir(&format!("config-{}", testkit::unique_name()));
    let broken = dir.join("broken.toml");
    std::fs::write(
        &broken,
        "default_profile = \"radio\"\n\n[profiles.radio]\ncommand = [\"ffmpeg\", \"-i\", \"{source}\", \"{outptu}\"]\n\
         output_extension = \"mkv\"\nallowed_schemes = [\"rtmp\"]\n",
    )
    .expect("write");
    let (ok, _, stderr) = cli(&["config", "check", &broken.display().to_string()]);
    assert!(!ok);
    assert!(
        stderr.contains("broken.toml: line 3: profile `radio`") && stderr.contains("outptu"),
        "{stderr}"
    );
    let typo = dir.join("typo.toml");
    std::fs::write(
        &typo,
        "[profiles.radio]\ncommand = [\"rec\"]\nstop_signl = \"INT\"\n",
    )
    .expect("write");
    let (ok, out, stderr) = cli(&[
        "config",
        "check",
        &typo.display().to_string(),
        "--output",
        "json",
    ]);
    assert!(!ok, "{stderr}");
    let answer: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(answer["valid"], false);
    assert_eq!(answer["line"], 3, "{answer}");
    assert!(
        answer["error"]
            .as_str()
            .is_some_and(|e| e.contains("stop_signl")),
        "{answer}"
    );

    let valid = dir.join("valid.toml");
    std::fs::write(
        &valid,
        "default_profile = \"radio\"\n[profiles.radio]\ncommand = [\"ffmpeg\", \"-i\", \"{source}\", \"{output}\"]\n\
         output_extension = \"ts\"\nallowed_schemes = [\"srt\"]\npost_processing = [[\"/nonexistent/upload\", \"{input}\"]]\n",
    )
    .expect("write");
    let (ok, out, stderr) = cli(&["config", "check", &valid.display().to_string()]);
    assert!(ok, "{stderr}");
    assert!(out.contains("radio (default)"), "{out}");
    assert!(out.contains("`/nonexistent/upload` not found"), "{out}");
    assert!(out.contains("valid, 2 profile(s)"), "{out}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_does_not_answer_times_out() {
    let _turn = crate::helpers::shared().await;
    // Accepts connections and never answers.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("address"));
    let holder = std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().take(2) {
            held.push(stream);
            std::thread::sleep(Duration::from_millis(10));
        }
        std::thread::sleep(Duration::from_secs(10));
    });
    for command in ["jobs active", "health"] {
        let mut args: Vec<String> = command.split(' ').map(str::to_owned).collect();
        args.extend(["--url", &url, "--timeout", "1"].map(str::to_owned));
        let began = Instant::now();
        let (ok, _, stderr) = tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            cli(&args)
        })
        .await
        .expect("join");
        assert!(!ok);
        assert!(stderr.contains("within 1 s"), "{stderr}");
        assert!(
            began.elapsed() < Duration::from_secs(5),
            "{:?}",
            began.elapsed()
        );
    }
    drop(holder);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_asks_the_server_recorderd_bind_names() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let port = app.address.rsplit(':').next().expect("a port").to_owned();
    let output = Command::new(server_binary())
        .arg("health")
        .env_remove("RECORDERD_URL")
        .env("RECORDERD_BIND", format!("0.0.0.0:{port}"))
        .output()
        .expect("run recorderd health");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.starts_with("ready: "), "{stdout}");
}
