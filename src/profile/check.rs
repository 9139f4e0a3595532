//! Reading a profiles file so that a mistake names its line: TOML and
//! type errors where the parser stopped, a profile that does not validate
//! at its `[profiles.NAME]` header, a wrong `default_profile` at its line.

use super::{Profiles, ProfilesFile};

/// What is wrong with a profiles file, and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{message}", line.map(|l| format!("line {l}: ")).unwrap_or_default())]
pub struct Problem {
    /// From 1; `None` when the mistake is not on one line.
    pub line: Option<usize>,
    pub message: String,
}

impl Profiles {
    /// The built-in profiles plus (and overridden by) those of `text`, or
    /// the first mistake in it.
    pub fn check_toml(text: &str) -> Result<Self, Problem> {
        let file: ProfilesFile = toml::from_str(text).map_err(|e| Problem {
            line: e.span().map(|span| line_of(text, span.start)),
            message: e.message().trim().to_owned(),
        })?;
        let mut profiles = Self::builtin();
        for (name, profile) in file.profiles {
            if let Err(e) = profile.validate() {
                return Err(Problem {
                    line: find_line(text, |l| is_header_of(l, &name)),
                    message: format!("profile `{name}`: {e:#}"),
                });
            }
            profiles.by_name.insert(name, profile);
        }
        if let Some(default) = file.default_profile {
            if !profiles.by_name.contains_key(&default) {
                return Err(Problem {
                    line: find_line(text, |l| l.trim_start().starts_with("default_profile")),
                    message: format!("default_profile `{default}` is not a configured profile"),
                });
            }
            profiles.default = default;
        }
        Ok(profiles)
    }
}

/// The line (from 1) of byte `offset`.
fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

fn find_line(text: &str, wanted: impl Fn(&str) -> bool) -> Option<usize> {
    text.lines().position(wanted).map(|i| i + 1)
}

/// `[profiles.NAME]`, `[profiles."NAME"]` or a step table of it,
/// `[[profiles.NAME.steps]]`.
fn is_header_of(line: &str, name: &str) -> bool {
    let line = line.trim();
    let inner = line.trim_start_matches('[').trim_end_matches(']').trim();
    let Some(rest) = inner.strip_prefix("profiles.") else {
        return false;
    };
    let rest = rest.trim();
    rest == name
        || rest == format!("\"{name}\"")
        || rest.starts_with(&format!("{name}."))
        || rest.starts_with(&format!("\"{name}\"."))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_of_mistake_names_its_line() {
        let syntax = "default_profile = \"x\"\n[profiles.x]\ncommand = [\"rec\"\n";
        let problem = Profiles::check_toml(syntax).unwrap_err();
        assert!(matches!(problem.line, Some(3..=4)), "{problem}");

        let typed = "\n[profiles.x]\ncommand = [\"rec\"]\nstop_signal = \"SIGFOO\"\n\
                     output_extension = \"mkv\"\nallowed_schemes = [\"rtmp\"]\n";
        let problem = Profiles::check_toml(typed).unwrap_err();
        assert_eq!(problem.line, Some(4), "{problem}");
        assert!(problem.message.contains("SIGFOO"), "{problem}");

        let invalid = "default_profile = \"x\"\n\n[profiles.\"x\"]\ncommand = [\"rec\", \"{sauce}\"]\n\
                       output_extension = \"mkv\"\nallowed_schemes = [\"rtmp\"]\n";
        let problem = Profiles::check_toml(invalid).unwrap_err();
        assert_eq!(problem.line, Some(3), "{problem}");
        assert!(
            problem.to_string().starts_with("line 3: profile `x`"),
            "{problem}"
        );

        let default = "# profiles\ndefault_profile = \"nope\"\n";
        let problem = Profiles::check_toml(default).unwrap_err();
        assert_eq!(problem.line, Some(2), "{problem}");
    }
}
