//! A start request and its validation: everything a client can get wrong is
//! refused here, before anything is written or spawned.

use serde::Deserialize;
use url::Url;

use super::JobError;
use crate::profile::{Profile, Profiles, ReachRule, listener_option};
use crate::redact;

/// Longest source URL accepted.
const MAX_SOURCE_LEN: usize = 4096;
/// Longest title accepted, in characters.
const MAX_TITLE_LEN: usize = 200;
/// Longest duration limit accepted: a week.
const MAX_DURATION_SECONDS: u64 = 7 * 24 * 3600;

/// Body of `POST /api/recordings/jobs/start/`. Fields it does not know are
/// ignored, as the seed's API ignored them: its clients send extras.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct StartRequest {
    /// The stream to record: a URL whose scheme the profile allows
    /// (e.g. `rtmp://host/live/key`).
    #[schema(max_length = 4096, example = "rtmp://media.example/live/key")]
    pub source: String,
    /// Shown in lists; defaults to the source, its secrets redacted.
    #[schema(max_length = 200)]
    pub title: Option<String>,
    /// A profile from the configuration; the default profile when absent
    /// or empty.
    pub profile: Option<String>,
    /// Stop the recording after this many seconds (at most a week).
    #[schema(minimum = 1, maximum = 604800)]
    #[serde(default, deserialize_with = "whole_seconds")]
    pub duration_seconds: Option<u64>,
    /// The names of fields this server does not know, kept only to be
    /// logged.
    #[serde(flatten)]
    #[schema(ignore)]
    pub ignored: std::collections::BTreeMap<String, serde::de::IgnoredAny>,
}

/// A start request that passed validation, with its profile resolved.
#[derive(Debug, Clone)]
pub struct ValidStart {
    pub source: String,
    pub title: String,
    pub profile_name: String,
    pub profile: Profile,
    pub duration_seconds: Option<u64>,
}

impl StartRequest {
    /// Checks every field against the configured profiles.
    pub fn validate(self, profiles: &Profiles) -> Result<ValidStart, JobError> {
        let (profile_name, profile) = find_profile(profiles, self.profile.as_deref())?;
        validate_source(&self.source, &profile_name, &profile)?;
        let title = match self.title.as_deref().map(str::trim) {
            // Titles are shown to every reader: never the source's secrets.
            Some("") | None => redact::url(&self.source),
            Some(title) if title.chars().count() > MAX_TITLE_LEN => {
                return Err(JobError::InvalidField {
                    field: "title",
                    reason: format!("longer than {MAX_TITLE_LEN} characters"),
                });
            }
            // PostgreSQL cannot store NUL, and no title needs a control
            // character.
            Some(title) if title.chars().any(char::is_control) => {
                return Err(JobError::InvalidField {
                    field: "title",
                    reason: "must not contain control characters".to_owned(),
                });
            }
            Some(title) => title.to_owned(),
        };
        if let Some(d) = self.duration_seconds
            && !(1..=MAX_DURATION_SECONDS).contains(&d)
        {
            return Err(JobError::InvalidField {
                field: "duration_seconds",
                reason: format!("must be between 1 and {MAX_DURATION_SECONDS}"),
            });
        }
        Ok(ValidStart {
            source: self.source,
            title,
            profile_name,
            profile,
            duration_seconds: self.duration_seconds,
        })
    }
}

/// The profile named `name` (the default one when absent or blank: a form
/// left empty), or the error listing those there are.
pub fn find_profile(
    profiles: &Profiles,
    name: Option<&str>,
) -> Result<(String, Profile), JobError> {
    let name = given(name);
    profiles
        .get(name)
        .map(|(name, profile)| (name.to_owned(), profile.clone()))
        .ok_or_else(|| JobError::UnknownProfile {
            name: name.unwrap_or(&profiles.default).to_owned(),
            available: profiles
                .by_name
                .keys()
                .cloned()
                .collect::<Vec<_>>()
                .join(", "),
        })
}

/// The profile `name` stands for (blank: the default), borrowed: for the
/// paths that only read it, once per job when thousands of jobs end
/// together.
pub fn profile_named<'a>(profiles: &'a Profiles, name: &str) -> Option<&'a Profile> {
    profiles.get(given(Some(name))).map(|(_, profile)| profile)
}

/// A profile's name as given, `None` when absent or blank (a form left
/// empty): the default profile then.
fn given(name: Option<&str>) -> Option<&str> {
    name.filter(|n| !n.trim().is_empty())
}

/// An optional [`whole_number`].
fn whole_seconds<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    #[derive(Deserialize)]
    struct Whole(#[serde(deserialize_with = "whole_number")] u64);
    Ok(Option::<Whole>::deserialize(d)?.map(|Whole(n)| n))
}

/// A whole number written as JSON allows: `60` or `60.0` (JSON Schema's
/// `integer` accepts both). Fractions and values out of `T`'s range are
/// refused.
pub fn whole_number<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: TryFrom<i128>,
{
    use serde::de::Error;
    let number = serde_json::Number::deserialize(d)?;
    let whole = if let Some(n) = number.as_i64() {
        Some(i128::from(n))
    } else if let Some(n) = number.as_u64() {
        Some(i128::from(n))
    } else {
        number
            .as_f64()
            .filter(|f| f.fract() == 0.0 && f.abs() < 1e30)
            .map(|f| f as i128)
    };
    whole
        .and_then(|n| T::try_from(n).ok())
        .ok_or_else(|| D::Error::custom(format!("expected a whole number in range, not {number}")))
}

/// A source must be a URL whose scheme the profile allows, and can never be
/// mistaken for an option by the recorder.
fn validate_source(source: &str, profile_name: &str, profile: &Profile) -> Result<(), JobError> {
    let invalid = |reason: String| Err(JobError::InvalidSource { reason });
    if source.trim().is_empty() {
        return invalid("must not be empty".to_owned());
    }
    if source.chars().count() > MAX_SOURCE_LEN {
        return invalid(format!("longer than {MAX_SOURCE_LEN} characters"));
    }
    if source.starts_with('-') {
        return invalid("must not start with `-` (it would be read as an option)".to_owned());
    }
    if source.chars().any(char::is_control) {
        return invalid("must not contain control characters".to_owned());
    }
    let allowed = profile.allowed_schemes.join(", ");
    let Some((_, rest)) = source.split_once("://") else {
        return invalid(format!(
            "must be a URL such as rtmp://host/stream (profile `{profile_name}` allows: {allowed})"
        ));
    };
    let url = match Url::parse(source) {
        Ok(url) if !rest.is_empty() && !url.cannot_be_a_base() => url,
        Ok(_) => return invalid(format!("`{}` is not a valid URL", redact::url(source))),
        Err(e) => return invalid(format!("`{}` is not a valid URL: {e}", redact::url(source))),
    };
    if !profile.allows_scheme(url.scheme()) {
        return invalid(format!(
            "scheme `{}` is not allowed by profile `{profile_name}` (allowed: {allowed})",
            url.scheme()
        ));
    }
    if let Some(option) = listener_option(&url) {
        return Err(JobError::SourceRefused {
            rule: ReachRule::ListenerOption,
            reason: format!(
                "option `{option}` would make the recorder wait for connections instead of \
                 opening the source; no source may carry it"
            ),
        });
    }
    Ok(())
}
