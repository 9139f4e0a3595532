//! The dashboard: `/` and its modules and stylesheet under `/ui/`, built
//! into the binary and served as written (plain ES modules, no bundler).
//! The page needs the API token when one is set; the assets hold nothing
//! that does.

use axum::extract::Path;
use axum::http::{HeaderValue, header};
use axum::response::{Html, IntoResponse, Response};

use super::ApiError;
use super::error::ErrorBody;

/// Every asset, by file name, with its content type.
const ASSETS: &[(&str, &str, &str)] = &[
    ("app.js", JAVASCRIPT, include_str!("ui/app.js")),
    ("api.js", JAVASCRIPT, include_str!("ui/api.js")),
    ("format.js", JAVASCRIPT, include_str!("ui/format.js")),
    (
        "recordings.js",
        JAVASCRIPT,
        include_str!("ui/recordings.js"),
    ),
    ("recording.js", JAVASCRIPT, include_str!("ui/recording.js")),
    ("log.js", JAVASCRIPT, include_str!("ui/log.js")),
    ("jobs.js", JAVASCRIPT, include_str!("ui/jobs.js")),
    ("nodes.js", JAVASCRIPT, include_str!("ui/nodes.js")),
    ("schedules.js", JAVASCRIPT, include_str!("ui/schedules.js")),
    (
        "style.css",
        "text/css; charset=utf-8",
        include_str!("ui/style.css"),
    ),
];

const JAVASCRIPT: &str = "text/javascript; charset=utf-8";

#[utoipa::path(
    get,
    path = "/",
    operation_id = "dashboard",
    tag = "operations",
    summary = "The dashboard",
    description = "Recordings first: a searchable, filtered list kept live by the event stream, and a page per recording with its player, transcript, analysis, steps, runs and live log; a start form offering the profiles; the jobs. With an API token, open it as `/?access_token=<token>`.",
    responses(
        (status = 200, description = "The page", content_type = "text/html", body = String),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
    )
)]
pub async fn dashboard() -> Html<&'static str> {
    Html(include_str!("ui/index.html"))
}

#[utoipa::path(
    get,
    path = "/ui/{file}",
    operation_id = "dashboard_asset",
    tag = "operations",
    summary = "A module or the stylesheet of the dashboard",
    description = "Served as written; revalidated on every load (`no-cache`), so an upgraded server's dashboard is the one loaded. Needs no token.",
    security(()),
    params(("file" = String, Path, description = "`app.js`, `style.css`, …")),
    responses(
        (status = 200, description = "The file", content_type = "text/javascript", body = String),
        (status = 400, description = "`invalid_path`", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody),
    )
)]
pub async fn asset(
    file: std::result::Result<Path<String>, axum::extract::rejection::PathRejection>,
) -> Result<Response, ApiError> {
    let Path(file) = file?;
    let Some((_, content_type, text)) = ASSETS.iter().find(|(name, _, _)| *name == file) else {
        return Err(ApiError::NoRoute {
            method: "GET".to_owned(),
            path: format!("/ui/{file}"),
        });
    };
    let mut response = (*text).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::ASSETS;

    /// Each module the page imports is served: a missing one would leave
    /// the dashboard blank.
    #[test]
    fn every_imported_module_is_served() {
        let served: Vec<&str> = ASSETS.iter().map(|(name, _, _)| *name).collect();
        let page = include_str!("ui/index.html");
        let mut wanted = vec!["app.js", "style.css"];
        for (_, _, text) in ASSETS {
            for line in text.lines().filter(|l| l.starts_with("import ")) {
                let Some(name) = line.split("\"./").nth(1).and_then(|r| r.split('"').next()) else {
                    continue;
                };
                wanted.push(name);
            }
        }
        for name in wanted {
            assert!(served.contains(&name), "{name} is imported but not served");
            assert!(
                name != "app.js" || page.contains("/ui/app.js"),
                "the page loads app.js"
            );
        }
    }
}
