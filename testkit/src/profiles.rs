//! Profiles that run the test recorder (`examples/test_recorder.rs`), as
//! TOML for the server's `--config`.

use std::fmt::Write as _;
use std::path::Path;

/// One `[profiles.NAME]` table running the test recorder. The recorder
/// always gets `--output {output}` and a `--max-lifetime`: the safety net
/// by which no recorder outlives a failed run for long.
#[derive(Debug, Clone)]
pub struct RecorderProfile {
    name: String,
    command: Vec<String>,
    settings: Vec<(String, String)>,
}

impl RecorderProfile {
    /// Records sources of `scheme` into `.txt` files with `recorder`, which
    /// ends itself after `max_lifetime_secs` whatever happens.
    pub fn new(name: &str, recorder: &Path, scheme: &str, max_lifetime_secs: u64) -> Self {
        let command = [
            recorder.display().to_string(),
            "--output".to_owned(),
            "{output}".to_owned(),
            "--max-lifetime".to_owned(),
            max_lifetime_secs.to_string(),
        ]
        .to_vec();
        Self {
            name: name.to_owned(),
            command,
            settings: vec![
                ("output_extension".to_owned(), toml_string("txt")),
                ("allowed_schemes".to_owned(), toml_array([scheme])),
            ],
        }
    }

    /// Further switches for the recorder (see its `--help` header).
    pub fn args<S: AsRef<str>>(mut self, args: impl IntoIterator<Item = S>) -> Self {
        self.command
            .extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    /// Sets `key` of the profile to `value`, which is TOML already (`2`,
    /// `"SIGINT"`, an array…), replacing what it was set to before.
    pub fn set(mut self, key: &str, value: impl Into<String>) -> Self {
        let value = value.into();
        match self.settings.iter_mut().find(|(k, _)| k == key) {
            Some((_, old)) => *old = value,
            None => self.settings.push((key.to_owned(), value)),
        }
        self
    }

    /// The table, ending with a newline; tables that belong to it (such as
    /// `[[profiles.NAME.steps]]`) may follow.
    pub fn to_toml(&self) -> String {
        let mut text = format!(
            "\n[profiles.{}]\ncommand = {}\n",
            self.name,
            toml_array(&self.command)
        );
        for (key, value) in &self.settings {
            let _ = writeln!(text, "{key} = {value}");
        }
        text
    }
}

/// `text` as a TOML basic string, quoted and escaped.
pub fn toml_string(text: &str) -> String {
    let mut quoted = String::with_capacity(text.len() + 2);
    quoted.push('"');
    for c in text.chars() {
        match c {
            '"' => quoted.push_str("\\\""),
            '\\' => quoted.push_str("\\\\"),
            c if c.is_control() => {
                let _ = write!(quoted, "\\u{:04X}", u32::from(c));
            }
            c => quoted.push(c),
        }
    }
    quoted.push('"');
    quoted
}

/// A TOML array of strings.
pub fn toml_array<S: AsRef<str>>(items: impl IntoIterator<Item = S>) -> String {
    let items: Vec<String> = items
        .into_iter()
        .map(|item| toml_string(item.as_ref()))
        .collect();
    format!("[{}]", items.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_escaped_for_toml() {
        assert_eq!(toml_string("plain"), r#""plain""#);
        assert_eq!(
            toml_string(r#"echo "$1" >> 'C:\x'"#),
            r#""echo \"$1\" >> 'C:\\x'""#
        );
        assert_eq!(toml_string("a\nb"), r#""a\u000Ab""#);
        assert_eq!(toml_array(["a", "b"]), r#"["a", "b"]"#);
    }

    #[test]
    fn a_profile_runs_the_recorder_with_its_safety_net() {
        let profile = RecorderProfile::new("short", Path::new("/bin/rec"), "test", 120)
            .args(["--exit-after", "0.5"])
            .set("stop_grace_seconds", "1")
            .set("stop_grace_seconds", "2");
        assert_eq!(
            profile.to_toml(),
            "\n[profiles.short]\n\
             command = [\"/bin/rec\", \"--output\", \"{output}\", \"--max-lifetime\", \"120\", \"--exit-after\", \"0.5\"]\n\
             output_extension = \"txt\"\n\
             allowed_schemes = [\"test\"]\n\
             stop_grace_seconds = 2\n"
        );
    }
}
