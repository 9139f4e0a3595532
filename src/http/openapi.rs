//! The parts of the OpenAPI document that belong to no handler: what the
//! API is, how it is secured, and its tags. The paths and schemas come from
//! the handlers' annotations as the router is built (see `super::routes`).

use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "recorderd",
        description = "A supervisor for recording jobs: it owns its recorder processes, records their end the moment it happens and runs each recording's post-processing. Every error has the `ErrorBody` shape with a stable `code`. The `/api` endpoints are also served with a trailing slash, as the earlier backend's clients call them.",
        license(name = "MIT OR Apache-2.0", identifier = "MIT OR Apache-2.0"),
    ),
    modifiers(&Security),
    security((), ("bearer" = []), ("access_token" = [])),
    tags(
        (name = "jobs", description = "Recording jobs: one run of a recorder each"),
        (name = "recordings", description = "What was recorded and what became of it"),
        (name = "schedules", description = "Recordings started at a set time or on a cron pattern"),
        (name = "events", description = "Transitions, pushed as they happen"),
        (name = "nodes", description = "The nodes sharing the database, as one service"),
        (name = "operations", description = "Dashboard, probes, metrics, this document"),
    ),
)]
pub struct ApiDoc;

/// Declares the two ways to present the API token. Optional: a server
/// started without a token needs neither.
struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi
            .components
            .get_or_insert_with(utoipa::openapi::Components::new);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "An API token of the server, when it has any: `read` tokens may call \
                         every GET, `write` tokens everything.",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "access_token",
            SecurityScheme::ApiKey(ApiKey::Query(ApiKeyValue::with_description(
                "access_token",
                "The same token as a query parameter (percent-encoded), on GET requests only: for `EventSource`, the dashboard and media links, which cannot send headers.",
            ))),
        );
    }
}
