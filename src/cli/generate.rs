//! `recorderd completions <shell>` and `recorderd man`: made from the same
//! clap definitions as `--help`, so they cannot drift from the flags.

use std::path::Path;

use anyhow::Context;
use clap::CommandFactory;

use crate::cli::args::Cli;

/// The script for `shell`, on standard output. Made in memory first: the
/// generator panics on a write error, such as a reader that went away.
pub fn completions(shell: clap_complete::Shell) -> anyhow::Result<()> {
    use std::io::Write;
    let mut command = Cli::command();
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut command, "recorderd", &mut script);
    std::io::stdout()
        .write_all(&script)
        .context("writing the completion script")
}

/// The manual page on standard output, or one page per command in `dir`.
pub fn man(dir: Option<&Path>) -> anyhow::Result<()> {
    let command = Cli::command();
    match dir {
        Some(dir) => {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            clap_mangen::generate_to(command, dir)
                .with_context(|| format!("writing manual pages to {}", dir.display()))
        }
        None => clap_mangen::Man::new(command)
            .render(&mut std::io::stdout())
            .context("writing the manual page"),
    }
}
