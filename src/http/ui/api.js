// The API as the dashboard's views call it: JSON with the API token when
// the page was opened with one (`/?access_token=…`), the server's message
// as the error, and URLs for the elements that cannot send headers
// (media, captions, images, the event stream).

const token = new URLSearchParams(location.search).get("access_token");
const headers = token ? { Authorization: "Bearer " + token } : {};

/** A refusal from the server, with its `code`. */
export class ApiError extends Error {
  constructor(status, body) {
    super(body && body.error ? body.error.message : "HTTP " + status);
    this.status = status;
    this.code = body && body.error ? body.error.code : null;
  }
}

export async function api(method, path, body) {
  const response = await fetch(path, {
    method,
    // Every call that changes something says JSON, as the server asks of
    // them (a cross-site form cannot).
    headers: method === "GET" ? headers : { ...headers, "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const data = await response.json().catch(() => ({}));
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
}

export const get = (path) => api("GET", path);
export const post = (path, body) => api("POST", path, body ?? {});
export const remove = (path) => api("DELETE", path);

/** `path` with the token in its query, for `src` and `href` attributes. */
export function withToken(path) {
  if (!token) return path;
  return path + (path.includes("?") ? "&" : "?") + "access_token=" + encodeURIComponent(token);
}

/** The event stream; `EventSource` reconnects with `Last-Event-ID` by itself. */
export function eventStream() {
  return new EventSource(withToken("/api/recordings/jobs/events/"));
}

/** The profiles a start can name; asked once. */
let profiles = null;
export function listProfiles() {
  profiles ??= get("/api/profiles").catch((e) => { profiles = null; throw e; });
  return profiles;
}
