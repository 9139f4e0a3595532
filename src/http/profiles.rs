//! `GET /api/profiles`: the recorder profiles a start can name, so a form
//! offers a choice instead of a free-text field.

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;

use super::AppState;
use super::error::ErrorBody;
use crate::profile::{BuiltinStep, Profile};

/// A recorder profile, as a client choosing one needs it.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProfileSummary {
    pub name: String,
    /// Used when a start names no profile.
    pub default: bool,
    /// URL schemes a source may use with it.
    pub allowed_schemes: Vec<String>,
    /// The container it records to (`mkv`, `ts`, …).
    pub output_extension: String,
    /// Its processing steps, in order.
    pub steps: Vec<StepSummary>,
    /// Steps of the built-in pipeline left out on this server for a missing
    /// program.
    pub skipped_steps: Vec<SkippedStep>,
    /// When a recorder that ended unasked is started again.
    pub restart: crate::profile::RestartPolicy,
    /// Restarts of a crashed recorder under `on_failure`.
    pub restart_attempts: u32,
    /// Length of the closed segments it records, each a recording of its
    /// own; `null`: one file.
    pub segment_seconds: Option<u32>,
    /// A recorder whose output stops growing this long is stopped.
    pub stall_timeout_seconds: Option<f64>,
}

/// A processing step: its name and what runs it (never its command line,
/// which may carry credentials).
#[derive(Debug, Serialize, ToSchema)]
pub struct StepSummary {
    pub name: String,
    /// `analyze` or `transcribe` for a built-in step; `null` for a command.
    pub builtin: Option<&'static str>,
}

/// A step left out, and the program it needs.
#[derive(Debug, Serialize, ToSchema)]
pub struct SkippedStep {
    pub name: String,
    pub missing: String,
}

/// Every profile, the default first.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProfileList {
    /// The default profile's name.
    pub default: String,
    pub profiles: Vec<ProfileSummary>,
}

#[utoipa::path(
    get,
    path = "/api/profiles",
    operation_id = "list_profiles",
    tag = "jobs",
    summary = "The recorder profiles a start can name",
    description = "The default profile first, then the others by name. Also served with a trailing slash.",
    responses(
        (status = 200, description = "The profiles", body = ProfileList),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
    )
)]
pub async fn list(State(state): State<AppState>) -> Json<ProfileList> {
    let profiles = state.recordings.profiles();
    let mut listed: Vec<ProfileSummary> = profiles
        .by_name
        .iter()
        .map(|(name, profile)| summary(name, profile, *name == profiles.default))
        .collect();
    listed.sort_by_key(|p| !p.default);
    Json(ProfileList {
        default: profiles.default.clone(),
        profiles: listed,
    })
}

fn summary(name: &str, profile: &Profile, default: bool) -> ProfileSummary {
    ProfileSummary {
        name: name.to_owned(),
        default,
        allowed_schemes: profile.allowed_schemes.clone(),
        output_extension: profile.output_extension.clone(),
        steps: profile
            .pipeline()
            .into_iter()
            .map(|step| StepSummary {
                builtin: step.builtin.map(|b| match b {
                    BuiltinStep::Analyze => "analyze",
                    BuiltinStep::Transcribe => "transcribe",
                }),
                name: step.name,
            })
            .collect(),
        skipped_steps: profile
            .skipped_steps
            .iter()
            .map(|(name, missing)| SkippedStep {
                name: name.clone(),
                missing: missing.clone(),
            })
            .collect(),
        restart: profile.restart,
        restart_attempts: profile.restart_attempts(),
        segment_seconds: profile.segment_seconds,
        stall_timeout_seconds: profile.stall_timeout_seconds,
    }
}
