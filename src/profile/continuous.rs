//! Continuous recording: how a profile's recorder is started again after
//! it ends unasked (a bounded number of times, or for as long as its job
//! lives) and whether it writes closed segments that are processed one by
//! one while the stream goes on. Checked as the profile loads.

use std::time::Duration;

use anyhow::bail;
use serde::{Deserialize, Serialize};

use super::{Profile, ProgressFormat};

/// Placeholder of a segmented recorder's command: the file its muxer
/// appends each closed segment to (ffmpeg: `-segment_list {segment_list}
/// -segment_list_type csv`), which recorderd watches.
pub const SEGMENT_LIST: &str = "{segment_list}";

/// Placeholder for the profile's `segment_seconds`.
pub const SEGMENT_SECONDS: &str = "{segment_seconds}";

/// When a recorder that ended unasked (a crash, a source that dropped) is
/// started again.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RestartPolicy {
    /// At most `restart_attempts` times, then the job ends.
    #[default]
    OnFailure,
    /// For as long as the job lives: only a stop, its duration limit or a
    /// shutdown end it. For 24/7 sources, which always come back.
    Always,
}

/// A run that lasted this long was healthy: the next restart waits the
/// first backoff again instead of a longer one.
pub(super) fn default_healthy_run() -> f64 {
    30.0
}

impl Profile {
    /// Restarts of a recorder that ended unasked, under `on_failure`.
    pub fn restart_attempts(&self) -> u32 {
        self.restart_attempts.unwrap_or(0)
    }

    /// Whether the recorder is started again however often it ends.
    pub fn restarts_forever(&self) -> bool {
        self.restart == RestartPolicy::Always
    }

    /// How long a run must last for the backoff to start over.
    pub fn healthy_run(&self) -> Duration {
        Duration::from_secs_f64(self.healthy_run_seconds)
    }

    /// The length of a closed segment, when the recorder writes segments.
    pub fn segment_length(&self) -> Option<Duration> {
        self.segment_seconds
            .map(|s| Duration::from_secs(u64::from(s)))
    }

    /// The checks of [`Profile::validate`] about restarts and segments.
    pub(super) fn validate_continuous(&self) -> anyhow::Result<()> {
        if self.restart == RestartPolicy::Always && self.restart_attempts.is_some() {
            bail!(
                "`restart_attempts` does not apply with `restart = \"always\"`, which restarts without limit: remove one of them"
            );
        }
        if self.restart_attempts.is_some_and(|n| n > 100) {
            bail!("`restart_attempts` must be at most 100 (or `restart = \"always\"`)");
        }
        if !(self.healthy_run_seconds.is_finite()
            && self.healthy_run_seconds > 0.0
            && self.healthy_run_seconds <= 86_400.0)
        {
            bail!("`healthy_run_seconds` must be a number of seconds in (0, 86400]");
        }
        let uses = |placeholder: &str| self.command.iter().any(|a| a.contains(placeholder));
        match self.segment_seconds {
            Some(seconds) => {
                if !(1..=86_400).contains(&seconds) {
                    bail!("`segment_seconds` must be a whole number of seconds in [1, 86400]");
                }
                if !uses(SEGMENT_LIST) {
                    bail!(
                        "`segment_seconds` needs the recorder to list its closed segments in `{SEGMENT_LIST}` (ffmpeg: \"-f\", \"segment\", \"-segment_time\", \"{SEGMENT_SECONDS}\", \"-reset_timestamps\", \"1\", \"-segment_list\", \"{SEGMENT_LIST}\", \"-segment_list_type\", \"csv\", \"{{output}}\")"
                    );
                }
                // No single file grows: only reported progress tells
                // whether data flows.
                if self.stall_timeout_seconds.is_some() && self.progress != ProgressFormat::Ffmpeg {
                    bail!(
                        "`stall_timeout_seconds` with `segment_seconds` needs `progress = \"ffmpeg\"`: no single file of a segmented recorder grows"
                    );
                }
                if !uses("{output}") {
                    bail!(
                        "`segment_seconds` needs `{{output}}` in `command`: the segments' file name pattern"
                    );
                }
            }
            None => {
                for placeholder in [SEGMENT_LIST, SEGMENT_SECONDS] {
                    if uses(placeholder) {
                        bail!("`{placeholder}` is only known with `segment_seconds`");
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::Profiles;

    fn profile(extra: &str, command: &str) -> anyhow::Result<Profile> {
        let text = format!(
            "[profiles.x]\ncommand = {command}\noutput_extension = \"mkv\"\n\
             allowed_schemes = [\"udp\"]\n{extra}\n"
        );
        let profiles = Profiles::from_toml(&text)?;
        let (_, profile) = profiles.get(Some("x")).expect("profile x");
        Ok(profile.clone())
    }

    const PLAIN: &str = r#"["rec", "{output}"]"#;
    const SEGMENTED: &str = r#"["ffmpeg", "-i", "{source}", "-f", "segment", "-segment_time", "{segment_seconds}", "-segment_list", "{segment_list}", "-segment_list_type", "csv", "{output}"]"#;

    fn refusal(extra: &str, command: &str) -> String {
        format!("{:#}", profile(extra, command).expect_err("refused"))
    }

    #[test]
    fn restart_policies_are_read_and_on_failure_is_the_default() {
        let default = profile("", PLAIN).expect("valid");
        assert_eq!(default.restart, RestartPolicy::OnFailure);
        assert_eq!(default.restart_attempts(), 0);
        assert!(!default.restarts_forever());
        assert_eq!(default.healthy_run(), Duration::from_secs(30));

        let always =
            profile("restart = \"always\"\nhealthy_run_seconds = 5", PLAIN).expect("valid");
        assert!(always.restarts_forever());
        assert_eq!(always.healthy_run(), Duration::from_secs(5));

        let bounded =
            profile("restart = \"on_failure\"\nrestart_attempts = 4", PLAIN).expect("valid");
        assert_eq!(bounded.restart_attempts(), 4);
    }

    #[test]
    fn contradictory_or_out_of_range_restart_settings_are_refused() {
        let err = refusal("restart = \"always\"\nrestart_attempts = 3", PLAIN);
        assert!(
            err.contains("does not apply with `restart = \"always\"`"),
            "{err}"
        );
        let err = refusal("restart = \"sometimes\"", PLAIN);
        assert!(err.contains("sometimes") && err.contains("always"), "{err}");
        let err = refusal("restart_attempts = 101", PLAIN);
        assert!(err.contains("at most 100"), "{err}");
        let err = refusal("healthy_run_seconds = 0", PLAIN);
        assert!(err.contains("healthy_run_seconds"), "{err}");
    }

    #[test]
    fn a_segmented_profile_must_list_its_segments() {
        let segmented = profile("segment_seconds = 5", SEGMENTED).expect("valid");
        assert_eq!(segmented.segment_length(), Some(Duration::from_secs(5)));

        let err = refusal("segment_seconds = 5", PLAIN);
        assert!(err.contains("{segment_list}"), "{err}");
        let err = refusal("segment_seconds = 0", SEGMENTED);
        assert!(err.contains("[1, 86400]"), "{err}");
        let err = refusal("", SEGMENTED);
        assert!(err.contains("only known with `segment_seconds`"), "{err}");
        let err = refusal("segment_seconds = 5\nstall_timeout_seconds = 10", SEGMENTED);
        assert!(err.contains("progress = \"ffmpeg\""), "{err}");
        profile(
            "segment_seconds = 5\nstall_timeout_seconds = 10\nprogress = \"ffmpeg\"",
            SEGMENTED,
        )
        .expect("a stall is told by progress");
    }

    #[test]
    fn the_readme_continuous_example_is_valid() {
        let readme = include_str!("../../README.md");
        let block = readme
            .split("```toml")
            .skip(1)
            .filter_map(|b| b.split("```").next())
            .find(|b| b.contains("[profiles.radio]"))
            .expect("README has a continuous recording example");
        let profiles = Profiles::from_toml(block).expect("README example parses");
        let (_, radio) = profiles.get(Some("radio")).expect("profile radio");
        assert!(radio.restarts_forever());
        assert_eq!(radio.segment_seconds, Some(600));
    }
}
