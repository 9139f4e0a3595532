//! `recorderd config check FILE`: a profiles file validated as `serve
//! --config` would load it, without a server; its mistake with its line,
//! or its profiles with the steps that would run on this machine.

use std::path::Path;

use anyhow::{Context, bail};
use serde_json::json;

use super::table::print_table;
use crate::cli::args::OutputFormat;
use crate::profile::{Profile, Profiles};

pub fn check(file: &Path, output: OutputFormat) -> anyhow::Result<()> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let profiles = match Profiles::check_toml(&text) {
        Ok(profiles) => profiles,
        Err(problem) => {
            if output == OutputFormat::Json {
                println!(
                    "{}",
                    json!({ "valid": false, "file": file, "line": problem.line, "error": problem.message })
                );
            }
            bail!("{}: {problem}", file.display());
        }
    };
    let listed = listed(&profiles);
    if output == OutputFormat::Json {
        let profiles: Vec<_> = listed
            .iter()
            .map(|(name, profile)| {
                let plan = profile.plan();
                json!({
                    "name": name,
                    "default": *name == profiles.default,
                    "steps": plan.iter().filter(|s| s.runs).map(ToString::to_string).collect::<Vec<_>>(),
                    "not_running": plan.iter().filter(|s| !s.runs).map(ToString::to_string).collect::<Vec<_>>(),
                })
            })
            .collect();
        println!(
            "{}",
            json!({ "valid": true, "file": file, "profiles": profiles })
        );
        return Ok(());
    }
    let rows: Vec<Vec<String>> = listed
        .iter()
        .map(|(name, profile)| {
            let plan = profile.plan();
            let join = |runs: bool| {
                let steps: Vec<String> = plan
                    .iter()
                    .filter(|s| s.runs == runs)
                    .map(ToString::to_string)
                    .collect();
                if steps.is_empty() {
                    "-".to_owned()
                } else {
                    steps.join(", ")
                }
            };
            let shown = if *name == profiles.default {
                format!("{name} (default)")
            } else {
                (*name).to_owned()
            };
            vec![
                shown,
                profile.allowed_schemes.join(","),
                join(true),
                join(false),
            ]
        })
        .collect();
    print_table(&["PROFILE", "SCHEMES", "STEPS", "NOT RUNNING HERE"], &rows);
    println!("{}: valid, {} profile(s)", file.display(), rows.len());
    Ok(())
}

/// The default profile first, then the others by name.
fn listed(profiles: &Profiles) -> Vec<(&str, &Profile)> {
    let mut listed: Vec<(&str, &Profile)> = profiles
        .by_name
        .iter()
        .map(|(name, profile)| (name.as_str(), profile))
        .collect();
    listed.sort_by_key(|(name, _)| *name != profiles.default);
    listed
}
