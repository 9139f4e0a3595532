//! A stand-in recorder for tests and benchmarks: writes a line to its output
//! file every 100 ms (`--interval-ms`) until it is signalled or its time is
//! up. Switches make it misbehave in the ways real recorders do.
//!
//! ```text
//! test_recorder --output FILE [--exit-after SECS] [--exit-code N]
//!               [--stop-exit-code N] [--ignore-sigint] [--ignore-sigterm]
//!               [--no-output] [--self-signal N] [--stop-delay-ms MS]
//!               [--timestamp-file FILE] [--max-lifetime SECS]
//!               [--spawn-grandchild SECS] [--stall-after SECS]
//!               [--chunk-bytes N] [--interval-ms MS]
//! ```
//!
//! `--chunk-bytes` pads each line to N bytes (to fill a disk quickly); a
//! write that fails ends it with exit code 1 and the OS error on standard
//! error, as a real recorder does when its disk is full.
//!
//! `--interval-ms` spaces the lines out: thousands of recorders that each
//! wake ten times a second load a 2-core machine more than the supervisor
//! they are there to measure.
//!
//! `--max-lifetime` (default 300 s) ends it in any case, so a test that
//! fails half-way never leaves recorders running for long.

use std::fs::OpenOptions;
use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use signal_hook::consts::{SIGINT, SIGTERM};

struct Options {
    output: Option<String>,
    exit_after: Option<f64>,
    exit_code: u8,
    stop_exit_code: u8,
    ignore_sigint: bool,
    ignore_sigterm: bool,
    no_output: bool,
    self_signal: Option<i32>,
    stop_delay: Duration,
    timestamp_file: Option<String>,
    max_lifetime: f64,
    spawn_grandchild: Option<f64>,
    stall_after: Option<f64>,
    chunk_bytes: usize,
    interval: Duration,
}

fn parse() -> Result<Options, String> {
    let mut o = Options {
        output: None,
        exit_after: None,
        exit_code: 0,
        stop_exit_code: 0,
        ignore_sigint: false,
        ignore_sigterm: false,
        no_output: false,
        self_signal: None,
        stop_delay: Duration::ZERO,
        timestamp_file: None,
        max_lifetime: 300.0,
        spawn_grandchild: None,
        stall_after: None,
        chunk_bytes: 0,
        interval: Duration::from_millis(100),
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or(format!("{name} needs a value"));
        let num = |v: String, name: &str| {
            v.parse::<f64>()
                .map_err(|_| format!("{name}: not a number: {v}"))
        };
        match arg.as_str() {
            "--output" => o.output = Some(value("--output")?),
            "--exit-after" => {
                let v = num(value(&arg)?, &arg)?;
                // 0 means "no limit", as the `{duration}` placeholder does.
                o.exit_after = (v > 0.0).then_some(v);
            }
            "--exit-code" => o.exit_code = num(value(&arg)?, &arg)? as u8,
            "--stop-exit-code" => o.stop_exit_code = num(value(&arg)?, &arg)? as u8,
            "--ignore-sigint" => o.ignore_sigint = true,
            "--ignore-sigterm" => o.ignore_sigterm = true,
            "--no-output" => o.no_output = true,
            "--self-signal" => o.self_signal = Some(num(value(&arg)?, &arg)? as i32),
            "--stop-delay-ms" => {
                o.stop_delay = Duration::from_millis(num(value(&arg)?, &arg)? as u64)
            }
            "--timestamp-file" => o.timestamp_file = Some(value(&arg)?),
            "--max-lifetime" => o.max_lifetime = num(value(&arg)?, &arg)?,
            "--spawn-grandchild" => o.spawn_grandchild = Some(num(value(&arg)?, &arg)?),
            "--stall-after" => o.stall_after = Some(num(value(&arg)?, &arg)?),
            "--chunk-bytes" => o.chunk_bytes = num(value(&arg)?, &arg)? as usize,
            "--interval-ms" => {
                let ms = num(value(&arg)?, &arg)?;
                if !ms.is_finite() || ms < 1.0 {
                    return Err(format!("--interval-ms: a number of ms from 1, not {ms}"));
                }
                o.interval = Duration::from_secs_f64(ms / 1000.0);
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(o)
}

/// Sleeps until `deadline` or until a byte arrives on the wake-up pipe.
fn sleep_until_signal(wake: &std::os::unix::net::UnixStream, deadline: Instant) {
    use rustix::event::{PollFd, PollFlags, Timespec, poll};
    use std::io::Read;
    let left = deadline.saturating_duration_since(Instant::now());
    let timeout = Timespec {
        tv_sec: left.as_secs() as i64,
        tv_nsec: i64::from(left.subsec_nanos()),
    };
    let mut fds = [PollFd::new(wake, PollFlags::IN)];
    if let Ok(n) = poll(&mut fds, Some(&timeout))
        && n > 0
    {
        let mut buf = [0u8; 64];
        let _ = (&*wake).read(&mut buf);
    }
}

fn main() -> ExitCode {
    let options = match parse() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("test_recorder: {e}");
            return ExitCode::from(2);
        }
    };
    let interrupted = Arc::new(AtomicBool::new(false));
    let terminated = Arc::new(AtomicBool::new(false));
    let ignored = Arc::new(AtomicBool::new(false));
    // A registered handler replaces the default action, so an "ignored"
    // signal is one whose flag nobody reads.
    let int_flag = if options.ignore_sigint {
        &ignored
    } else {
        &interrupted
    };
    let term_flag = if options.ignore_sigterm {
        &ignored
    } else {
        &terminated
    };
    if signal_hook::flag::register(SIGINT, int_flag.clone()).is_err()
        || signal_hook::flag::register(SIGTERM, term_flag.clone()).is_err()
    {
        eprintln!("test_recorder: cannot install signal handlers");
        return ExitCode::from(2);
    }
    // A self-pipe wakes the main loop the moment a stop signal arrives, so
    // it can sleep until its next write instead of polling (a thousand
    // recorders in a benchmark must not eat the CPU the supervisor needs).
    let Ok((wake_read, wake_write)) = std::os::unix::net::UnixStream::pair() else {
        eprintln!("test_recorder: cannot create a wake-up pipe");
        return ExitCode::from(2);
    };
    let _ = wake_read.set_nonblocking(true);
    for (signal, ignored_signal) in [
        (SIGINT, options.ignore_sigint),
        (SIGTERM, options.ignore_sigterm),
    ] {
        if !ignored_signal && let Ok(write) = wake_write.try_clone() {
            let _ = signal_hook::low_level::pipe::register(signal, write);
        }
    }

    let mut file = match (&options.output, options.no_output) {
        (Some(path), false) => match OpenOptions::new().create(true).append(true).open(path) {
            Ok(f) => Some(f),
            Err(e) => {
                eprintln!("test_recorder: cannot open {path}: {e}");
                return ExitCode::from(3);
            }
        },
        _ => None,
    };
    println!("test_recorder: pid {} recording", std::process::id());
    if let Some(seconds) = options.spawn_grandchild {
        // Left running, never waited for: once this recorder exits, it is an
        // orphan for PID 1 (or a subreaper) to reap.
        match std::process::Command::new("sleep")
            .arg(seconds.to_string())
            .spawn()
        {
            Ok(child) => println!("test_recorder: grandchild {}", child.id()),
            Err(e) => eprintln!("test_recorder: cannot spawn grandchild: {e}"),
        }
    }
    let started = Instant::now();
    let mut chunk = 0u64;
    let mut next_write = Instant::now();
    let stopped_by_signal = loop {
        if interrupted.load(Ordering::Relaxed) || terminated.load(Ordering::Relaxed) {
            break true;
        }
        let elapsed = started.elapsed().as_secs_f64();
        if options.exit_after.is_some_and(|limit| elapsed >= limit)
            || elapsed >= options.max_lifetime
        {
            break false;
        }
        let stalled = options.stall_after.is_some_and(|after| elapsed >= after);
        if Instant::now() >= next_write && !stalled {
            if let Some(f) = file.as_mut() {
                let mut line = format!("chunk {chunk}");
                let padding = options.chunk_bytes.saturating_sub(line.len() + 1);
                line.extend(std::iter::repeat_n(' ', padding));
                line.push('\n');
                // One write per line, not one per formatted piece.
                let written = f.write_all(line.as_bytes());
                if let Err(e) = written {
                    eprintln!(
                        "test_recorder: cannot write {}: {e}",
                        options.output.as_deref().unwrap_or("?")
                    );
                    return ExitCode::from(1);
                }
            }
            chunk += 1;
            next_write += options.interval;
        }
        let mut wake_at = next_write;
        for limit in [options.exit_after, Some(options.max_lifetime)]
            .into_iter()
            .flatten()
        {
            wake_at = wake_at.min(started + Duration::from_secs_f64(limit));
        }
        sleep_until_signal(&wake_read, wake_at);
    };
    if stopped_by_signal {
        println!("test_recorder: stop signal received, finalizing");
        std::thread::sleep(options.stop_delay);
        if let Some(f) = file.as_mut() {
            let _ = writeln!(f, "trailer");
        }
    }
    if let Some(path) = &options.timestamp_file {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let _ = std::fs::write(path, format!("{}\n", now.as_nanos()));
    }
    if !stopped_by_signal && let Some(signal) = options.self_signal {
        println!("test_recorder: raising signal {signal}");
        let _ = signal_hook::low_level::emulate_default_handler(signal);
    }
    ExitCode::from(if stopped_by_signal {
        options.stop_exit_code
    } else {
        options.exit_code
    })
}
