//! What the server says about itself as it starts, one line each: who may
//! call it, which database it uses (its password hidden), which profiles
//! it offers, and per profile which pipeline steps will run on this
//! machine and which will not for a missing program. An operator reads
//! from the first lines whether the server is the one they meant to start.

use tracing::{info, warn};

use crate::config::Settings;
use crate::profile::StepPlan;

pub fn configuration(settings: &Settings) {
    let auth = match (settings.tokens.is_empty(), settings.open_metrics) {
        (true, _) => "off: the API is open",
        (false, false) => "tokens: every /api call and /metrics need one",
        (false, true) => "tokens: every /api call needs one; /metrics is open",
    };
    info!(auth, tokens = settings.tokens.len(), "access control");
    info!(
        database = %crate::redact::url(&settings.database_url),
        "database"
    );
    let profiles = &settings.profiles;
    let names: Vec<&str> = profiles.by_name.keys().map(String::as_str).collect();
    info!(
        default = %profiles.default,
        profiles = %names.join(", "),
        "profiles"
    );
    for (name, profile) in &profiles.by_name {
        let plan = profile.plan();
        let steps = listed(plan.iter().filter(|s| s.runs));
        let not_running: Vec<&StepPlan> = plan.iter().filter(|s| !s.runs).collect();
        let skipped = listed(not_running.iter().copied());
        // A step of the built-in pipeline is left out, and says so; a
        // configured step whose program is missing will fail.
        let configured = profile.pipeline();
        let failing = not_running
            .iter()
            .any(|s| configured.iter().any(|c| c.name == s.name));
        if failing {
            warn!(profile = %name, %steps, %skipped, "pipeline: steps that cannot run will fail");
        } else {
            info!(profile = %name, %steps, %skipped, "pipeline");
        }
    }
}

fn listed<'a>(steps: impl Iterator<Item = &'a StepPlan>) -> String {
    let names: Vec<String> = steps.map(ToString::to_string).collect();
    if names.is_empty() {
        "none".to_owned()
    } else {
        names.join(", ")
    }
}
