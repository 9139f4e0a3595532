//! What a profile's pipeline will do on this machine: each step that will
//! run (with the recognizer a `transcribe` step picks), and each that will
//! not for a missing program, as the start-up log and `config check` say.

use std::path::Path;

use super::{BuiltinStep, Profile, Recognizer, StepConfig, program_exists};

/// One step of a profile, as this machine will run it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepPlan {
    pub name: String,
    /// False when a program it needs is missing: left out of the built-in
    /// pipeline, or bound to fail.
    pub runs: bool,
    /// What it runs with, or what it lacks.
    pub note: Option<String>,
}

impl std::fmt::Display for StepPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.note {
            Some(note) => write!(f, "{} ({note})", self.name),
            None => f.write_str(&self.name),
        }
    }
}

impl Profile {
    /// Every step of the pipeline, and the built-in ones left out, in order.
    pub fn plan(&self) -> Vec<StepPlan> {
        let mut plan: Vec<StepPlan> = self.pipeline().iter().map(step_plan).collect();
        plan.extend(self.skipped_steps.iter().map(|(name, missing)| StepPlan {
            name: name.clone(),
            runs: false,
            note: Some(format!("left out: no {missing}")),
        }));
        plan
    }
}

fn step_plan(step: &StepConfig) -> StepPlan {
    let (runs, note) = match step.builtin {
        Some(BuiltinStep::Analyze) => {
            let missing: Vec<&str> = ["ffprobe", "ffmpeg"]
                .into_iter()
                .filter(|p| !program_exists(p))
                .collect();
            if missing.is_empty() {
                (true, None)
            } else {
                (false, Some(format!("no {}", missing.join(" and "))))
            }
        }
        Some(BuiltinStep::Transcribe) => match Recognizer::choose(step.model.as_deref()) {
            Ok(recognizer) => (true, Some(recognizer.describe())),
            Err(missing) => (false, Some(missing)),
        },
        None => {
            let program = step.command.first().map(String::as_str).unwrap_or_default();
            if runnable(program) {
                (true, None)
            } else {
                (false, Some(format!("`{program}` not found")))
            }
        }
    };
    StepPlan {
        name: step.name.clone(),
        runs,
        note,
    }
}

/// A program named by path must be an executable file there; by name,
/// on the PATH.
fn runnable(program: &str) -> bool {
    use std::os::unix::fs::PermissionsExt;
    if program.contains('/') {
        return std::fs::metadata(Path::new(program))
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0);
    }
    program_exists(program)
}

#[cfg(test)]
mod tests {
    use crate::profile::Profiles;

    #[test]
    fn a_missing_program_is_named_and_a_present_one_runs() {
        let text = r#"
            [profiles.x]
            command = ["rec"]
            output_extension = "mkv"
            allowed_schemes = ["rtmp"]
            post_processing = [["sh", "-c", "true"], ["/nonexistent/upload"]]
        "#;
        let profiles = Profiles::from_toml(text).expect("valid");
        let (_, profile) = profiles.get(Some("x")).expect("x");
        let plan = profile.plan();
        assert_eq!(plan.len(), 2);
        assert!(plan[0].runs, "{plan:?}");
        assert!(!plan[1].runs);
        assert_eq!(
            plan[1].to_string(),
            "post-processing-2 (`/nonexistent/upload` not found)"
        );
    }
}
