//! The environment of every process recorderd starts (recorders and
//! processing steps): an allow-list, not recorderd's own. recorderd's
//! environment holds its API tokens, its webhook secret and a database
//! URL with its password; a recorder or a third-party step needs none of
//! them, and would hand them to whatever it runs or logs.

use std::ffi::OsStr;

use tokio::process::Command;

use crate::profile::EnvTable;

/// Passed on from recorderd's environment when set: what programs need to
/// be found and to read and print text and times as the host does.
const PASSED: &[&str] = &["PATH", "HOME", "LANG", "TZ"];

/// Whether recorderd's variable `name` is passed to its children.
pub fn is_passed(name: &OsStr) -> bool {
    let Some(name) = name.to_str() else {
        return false;
    };
    PASSED.contains(&name) || name.starts_with("LC_")
}

/// Clears `command`'s environment, then sets the passed variables and
/// `extra` (the profile's `env`). Markers set afterwards (the job's) are
/// kept.
pub fn restrict(command: &mut Command, extra: &EnvTable) {
    command.env_clear();
    command.envs(std::env::vars_os().filter(|(name, _)| is_passed(name)));
    command.envs(extra);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_listed_variables_are_passed() {
        for name in ["PATH", "HOME", "LANG", "LC_ALL", "LC_TIME", "TZ"] {
            assert!(is_passed(OsStr::new(name)), "{name}");
        }
        for name in [
            "RECORDERD_API_TOKEN",
            "RECORDERD_DATABASE_URL",
            "RECORDERD_WEBHOOK_SECRET",
            "AWS_SECRET_ACCESS_KEY",
            "LD_PRELOAD",
            "path",
            "LCX",
        ] {
            assert!(!is_passed(OsStr::new(name)), "{name}");
        }
    }
}
