//! `cargo bench`: builds the release server, the test recorder and the
//! benchmark harness (`examples/bench/`), then runs the harness against
//! the release server with the arguments given after `--`, e.g.
//! `cargo bench --bench harness -- --scale 100 --quick`. See BENCHMARKS.md.

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, ExitCode};

fn main() -> ExitCode {
    // cargo passes `--bench` to every bench target; the harness has no use
    // for it.
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let manifest_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let built = Command::new(&cargo)
        .current_dir(&manifest_dir)
        .args([
            "build",
            "--release",
            "--bin",
            "recorderd",
            "--example",
            "test_recorder",
            "--example",
            "bench",
        ])
        .status();
    match built {
        Ok(status) if status.success() => {}
        Ok(status) => {
            eprintln!("harness: cargo build --release failed ({status})");
            return ExitCode::FAILURE;
        }
        Err(e) => {
            eprintln!("harness: cannot run cargo: {e}");
            return ExitCode::FAILURE;
        }
    }
    // This bench runs from target/release/deps/; the harness is in
    // target/release/examples/ (whatever the target directory is).
    let release_dir = std::env::current_exe().ok().and_then(|exe| {
        exe.parent()
            .and_then(|deps| deps.parent())
            .map(PathBuf::from)
    });
    let Some(release_dir) = release_dir else {
        eprintln!("harness: cannot locate the target directory");
        return ExitCode::FAILURE;
    };
    let bench = release_dir.join("examples").join("bench");
    let error = Command::new(&bench).args(&args).exec();
    eprintln!("harness: cannot run {}: {error}", bench.display());
    ExitCode::FAILURE
}
