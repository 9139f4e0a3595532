//! The argv template language of recorder commands and processing steps:
//! `{name}` placeholders substituted inside each argument on its own, never
//! through a shell. Profiles are checked against it when they load, and
//! argvs rendered from it when a process starts.

/// Placeholders of a recorder's `command`.
pub const RECORDER_PLACEHOLDERS: &[&str] = &[
    "source",
    "output",
    "duration",
    "job_id",
    "recording_id",
    "protocols",
    "input_options",
    "segment_list",
    "segment_seconds",
];

/// Placeholders that stand for a list of arguments rather than text: each
/// must be a whole argument of its own, and expands to zero or more.
pub const LIST_PLACEHOLDERS: &[&str] = &["input_options"];

/// Placeholders of a processing step's `command`.
pub const PROCESSING_PLACEHOLDERS: &[&str] = &["input", "workdir", "recording_id"];

/// A `{name}` the template language does not know, in one argument.
#[derive(Debug, thiserror::Error)]
#[error("unknown placeholder `{{{name}}}` in `{argument}` (known: {known})")]
pub struct UnknownPlaceholder {
    pub name: String,
    pub argument: String,
    /// The placeholders that argument could have used, comma-separated.
    pub known: String,
}

/// Rejects `{name}` placeholders the template language does not know, so a
/// typo fails at start-up rather than reaching a recorder's argv. Braces
/// around anything but a lower-case name (`{}`, `{"a":1}`) are plain text.
pub fn check_placeholders(args: &[String], known: &[&str]) -> Result<(), UnknownPlaceholder> {
    for arg in args {
        let mut rest = arg.as_str();
        while let Some(open) = rest.find('{') {
            let after = &rest[open + 1..];
            let Some(close) = after.find('}') else { break };
            let name = &after[..close];
            if !name.is_empty()
                && name.chars().all(|c| c.is_ascii_lowercase() || c == '_')
                && !known.contains(&name)
            {
                return Err(UnknownPlaceholder {
                    name: name.to_owned(),
                    argument: arg.clone(),
                    known: known.join(", "),
                });
            }
            rest = &after[close + 1..];
        }
    }
    Ok(())
}

/// Refuses a list placeholder ([`LIST_PLACEHOLDERS`]) inside a larger
/// argument: a list cannot be spliced into text without a shell's quoting.
pub fn check_list_placeholders(args: &[String]) -> Result<(), String> {
    for arg in args {
        for name in LIST_PLACEHOLDERS {
            let whole = format!("{{{name}}}");
            if arg.contains(&whole) && *arg != whole {
                return Err(format!(
                    "`{whole}` stands for several arguments: it must be an argument of its own, not part of `{arg}`"
                ));
            }
        }
    }
    Ok(())
}

/// [`render_argv`], where an argument that is exactly `{name}` of one of
/// `lists` becomes that list's arguments (none when it is empty).
pub fn render_argv_with_lists(
    template: &[String],
    values: &[(&str, &str)],
    lists: &[(&str, &[String])],
) -> Vec<String> {
    let mut out = Vec::with_capacity(template.len());
    for arg in template {
        let list = lists.iter().find(|(name, _)| {
            arg.strip_prefix('{')
                .and_then(|a| a.strip_suffix('}'))
                .is_some_and(|a| a == *name)
        });
        match list {
            Some((_, items)) => out.extend(items.iter().cloned()),
            None => out.extend(render_argv(std::slice::from_ref(arg), values)),
        }
    }
    out
}

/// Substitutes placeholders in each argument separately, in one pass over
/// the template: a value (a client's source URL, say) that itself contains
/// `{output}` is copied as it is, never expanded.
pub fn render_argv(template: &[String], values: &[(&str, &str)]) -> Vec<String> {
    template
        .iter()
        .map(|arg| {
            let mut out = String::with_capacity(arg.len());
            let mut rest = arg.as_str();
            while let Some(open) = rest.find('{') {
                out.push_str(&rest[..open]);
                let after = &rest[open..];
                let known = values.iter().find(|(name, _)| {
                    after
                        .strip_prefix('{')
                        .and_then(|a| a.strip_prefix(*name))
                        .is_some_and(|a| a.starts_with('}'))
                });
                match known {
                    Some((name, value)) => {
                        out.push_str(value);
                        rest = &after[name.len() + 2..];
                    }
                    None => {
                        out.push('{');
                        rest = &after[1..];
                    }
                }
            }
            out.push_str(rest);
            out
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(args: &[&str]) -> Vec<String> {
        args.iter().map(|a| (*a).to_owned()).collect()
    }

    #[test]
    fn placeholders_are_substituted_per_argument_without_a_shell() {
        let template = strings(&["rec", "--in={source}", "{output}"]);
        let argv = render_argv(
            &template,
            &[("source", "rtmp://x/a b; rm -rf /"), ("output", "/d/o.mkv")],
        );
        assert_eq!(argv, ["rec", "--in=rtmp://x/a b; rm -rf /", "/d/o.mkv"]);
        let argv = render_argv(
            &template,
            &[("source", "rtmp://x/{output}"), ("output", "/d/o.mkv")],
        );
        assert_eq!(argv[1], "--in=rtmp://x/{output}", "values are not expanded");
    }

    #[test]
    fn braces_that_name_no_value_are_copied_as_they_are() {
        let template = strings(&["{", "{}", "{\"a\":1}", "{unknown}", "x{source"]);
        let argv = render_argv(&template, &[("source", "s")]);
        assert_eq!(argv, template);
    }

    #[test]
    fn a_list_placeholder_becomes_its_arguments_or_none() {
        let template = strings(&["ffmpeg", "{input_options}", "-i", "{source}"]);
        let options = strings(&["-rtsp_transport", "tcp"]);
        let argv = render_argv_with_lists(
            &template,
            &[("source", "rtsp://cam/1")],
            &[("input_options", &options)],
        );
        assert_eq!(
            argv,
            ["ffmpeg", "-rtsp_transport", "tcp", "-i", "rtsp://cam/1"]
        );
        let argv = render_argv_with_lists(
            &template,
            &[("source", "udp://x")],
            &[("input_options", &[])],
        );
        assert_eq!(argv, ["ffmpeg", "-i", "udp://x"]);
        assert!(check_list_placeholders(&template).is_ok());
        assert!(check_list_placeholders(&strings(&["-x={input_options}"])).is_err());
    }

    #[test]
    fn only_unknown_lower_case_names_are_refused() {
        let accepted = strings(&["{source}-{job_id}", "{}", "{JSON}", "{\"a\":1}", "{open"]);
        assert!(check_placeholders(&accepted, RECORDER_PLACEHOLDERS).is_ok());

        let err = check_placeholders(&strings(&["-i", "{input}"]), RECORDER_PLACEHOLDERS)
            .expect_err("`input` is a processing placeholder, not a recorder's");
        assert_eq!(err.name, "input");
        assert_eq!(err.argument, "{input}");
        assert!(err.to_string().contains("known: source, output"), "{err}");
    }
}
