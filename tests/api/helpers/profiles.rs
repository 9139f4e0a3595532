//! The profiles every test server offers, all running the test recorder
//! (`examples/test_recorder.rs`).

use std::path::Path;

use testkit::profiles::{RecorderProfile, toml_array};

use super::test_recorder;

/// Profiles every test server offers. `test` records until stopped; the
/// others misbehave in one way each. Post-processing appends the recording
/// id to `processed.log`, so tests can count processing runs.
pub fn profiles_toml(dir: &Path, post_processing_ok: bool) -> String {
    let rec = test_recorder();
    let processed = dir.join("processed.log").display().to_string();
    let post = if post_processing_ok {
        let append = format!("echo \"$1\" >> '{processed}'");
        toml_array(["sh", "-c", &append, "sh", "{recording_id}"])
    } else {
        toml_array(["sh", "-c", "echo broken >&2; exit 4"])
    };
    // Records until stopped (or `args` say otherwise), with a 2 s grace per
    // stop signal.
    let profile = |name: &str, args: &[&str]| {
        RecorderProfile::new(name, &rec, "test", 120)
            .args(args)
            .set("stop_grace_seconds", "2")
            .set("post_processing", format!("[{post}]"))
    };
    let with_steps = |name: &str| RecorderProfile::new(name, &rec, "test", 120);
    let mut text = String::from("default_profile = \"test\"\n");
    for profile in [
        profile("test", &[]),
        profile("short", &["--exit-after", "0.5"]),
        profile("timed", &["--exit-after", "{duration}"]),
        profile("crash", &["--exit-after", "0.3", "--exit-code", "3"]),
        profile("signalled", &["--exit-after", "0.3", "--self-signal", "10"]),
        profile("stubborn", &["--ignore-sigint", "--ignore-sigterm"])
            .set("stop_grace_seconds", "0.5"),
        profile(
            "self_ending",
            &["--exit-after", "6", "--timestamp-file", "{output}.exited"],
        ),
        // The same, ending later: inside a database outage begun after it
        // started.
        profile(
            "self_ending_late",
            &["--exit-after", "15", "--timestamp-file", "{output}.exited"],
        ),
        profile(
            "forking",
            &["--exit-after", "0.3", "--spawn-grandchild", "1"],
        ),
        profile("stalling", &["--stall-after", "0.5"])
            .set("stop_grace_seconds", "0.5")
            .set("stall_timeout_seconds", "1"),
        profile("crashy", &["--exit-after", "0.4", "--exit-code", "3"])
            .set("restart_attempts", "2")
            .set("restart_backoff_seconds", "0.2"),
        profile("empty", &["--no-output", "--exit-after", "0.3"]),
        // Records until stopped; started again 1 s after it ends unasked.
        profile("phoenix", &[])
            .set("restart_attempts", "3")
            .set("restart_backoff_seconds", "1"),
        // The same with a long wait before the next run.
        profile("slow_phoenix", &[])
            .set("restart_attempts", "3")
            .set("restart_backoff_seconds", "5"),
        // Restarted quickly, and stopped as stalled if its current run's
        // output stops growing for a second.
        profile("watched_phoenix", &[])
            .set("restart_attempts", "3")
            .set("restart_backoff_seconds", "0.2")
            .set("stall_timeout_seconds", "1"),
        // Its source ends after a second, every run.
        profile("early", &["--exit-after", "1"])
            .set("restart_attempts", "1")
            .set("restart_backoff_seconds", "0.2"),
        // Ends (failing) the moment it starts.
        profile("instant", &["--exit-after", "0.001", "--exit-code", "3"]),
        // Fills its disk: 64 KiB lines, ten a second.
        profile("filling", &["--chunk-bytes", "65536"]),
        // Where sources may reach: the defaults, a shared deployment's
        // rules, and an allow-list.
        profile("web", &[]).set("allowed_schemes", toml_array(["http", "test"])),
        profile("shared", &[])
            .set("allowed_schemes", toml_array(["http", "test"]))
            .set("deny_private", "true")
            .set(
                "deny_hosts",
                toml_array(["10.9.0.0/16", "*.blocked.example"]),
            ),
        profile("cameras", &[]).set("allow_hosts", toml_array(["127.0.0.1", "camera.lan"])),
    ] {
        text += &profile.to_toml();
    }
    // Steps with retries, stdout kept as the transcript, and a timeout.
    text += &with_steps("pipeline")
        .args(["--exit-after", "0.5"])
        .to_toml();
    text += r#"
[[profiles.pipeline.steps]]
name = "flaky"
command = ["sh", "-c", "test -e \"$0/tried\" || { touch \"$0/tried\"; echo first attempt fails >&2; exit 7; }", "{workdir}"]
retries = 2
retry_backoff_seconds = 0.2

[[profiles.pipeline.steps]]
name = "words"
command = ["sh", "-c", "wc -l < \"$0\" | tr -d ' '; echo lines recorded", "{input}"]
stdout = "transcript"
"#;
    // A transcript with times, as whisper-cli prints one, from a command.
    text += &with_steps("captioned")
        .args(["--exit-after", "0.3"])
        .to_toml();
    text += r#"
[[profiles.captioned.steps]]
name = "captions"
command = ["printf", "[00:00:01.000 --> 00:00:03.500]  The quick brown fox\n[00:00:04.000 --> 00:00:06.250]  jumps over the lazy dogs\n"]
stdout = "transcript"
"#;
    text += &with_steps("slow_step")
        .args(["--exit-after", "0.3"])
        .to_toml();
    text += r#"
[[profiles.slow_step.steps]]
name = "sleepy"
command = ["sleep", "30"]
timeout_seconds = 0.5
"#;
    text += &with_steps("long_step")
        .args(["--exit-after", "0.3"])
        .to_toml();
    let long = format!("sleep 3; echo \"$1\" >> '{processed}'");
    text += &format!(
        "\n[[profiles.long_step.steps]]\nname = \"long\"\ncommand = {}\n",
        toml_array(["sh", "-c", &long, "sh", "{recording_id}"])
    );
    text += r#"
[profiles.missing]
command = ["/nonexistent/recorder-binary", "{output}"]
output_extension = "txt"
allowed_schemes = ["test"]
"#;
    text
}
