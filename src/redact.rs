//! Secrets never leave through messages: the one place where a URL (a
//! database, a webhook receiver, a recorder's source) is made fit for a log
//! line, an event, an API answer or an error.
//!
//! A source URL carries its credentials in three places: the password
//! (`rtmp://user:pass@host/…`), the query (`?key=…`, SRT's `passphrase=`
//! and `streamid=`, signed-URL tokens) and, for RTMP, the stream key: the
//! last segment of the path (`rtmp://host/app/KEY`). All three are
//! replaced by `***`; the scheme, host, port, user name and the rest of the
//! path stay, so a redacted URL still says what was recorded. The full URL
//! stays in the database, for the recorder alone.

use url::Url;

/// What replaces each secret.
const MASK: &str = "***";

/// Schemes whose last path segment is a stream key (the RTMP family).
const KEYED_PATH_SCHEMES: &[&str] = &["rtmp", "rtmps", "rtmpt", "rtmpe", "rtmpte", "rtmpts"];

/// Secrets shorter than this are not searched for in free text (a log):
/// replacing every `1` of `?quality=1` would garble it and hide nothing.
const MIN_SCRUBBED_LEN: usize = 4;

/// `text` with its password, query values, fragment and (for RTMP) stream
/// key replaced by `***`. Text that does not parse as a URL is cut at the
/// first `?` and has anything between `:` and `@` in its authority masked:
/// it may still hold credentials in a form the parser refused.
pub fn url(text: &str) -> String {
    match Url::parse(text) {
        Ok(parsed) => redact_parsed(parsed),
        Err(_) => redact_unparsed(text),
    }
}

fn redact_parsed(mut parsed: Url) -> String {
    if parsed.password().is_some() {
        // Only fails for URLs that cannot have credentials at all, which
        // this one, having a password, can.
        let _ = parsed.set_password(Some(MASK));
    }
    if let Some(query) = parsed.query().filter(|q| !q.is_empty()) {
        let masked = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((name, _)) => format!("{name}={MASK}"),
                None => pair.to_owned(),
            })
            .collect::<Vec<_>>()
            .join("&");
        parsed.set_query(Some(&masked));
    }
    if parsed.fragment().is_some_and(|f| !f.is_empty()) {
        parsed.set_fragment(Some(MASK));
    }
    if let Some(key) = stream_key(&parsed) {
        let path = parsed.path().to_owned();
        if let Some(prefix) = path.strip_suffix(key.as_str()) {
            parsed.set_path(&format!("{prefix}{MASK}"));
        }
    }
    parsed.to_string()
}

fn redact_unparsed(text: &str) -> String {
    let mut out = match text.split_once('?') {
        Some((before, _)) => format!("{before}?{MASK}"),
        None => text.to_owned(),
    };
    if let Some(scheme_end) = out.find("://") {
        let authority_start = scheme_end + 3;
        let authority_end = out[authority_start..]
            .find(['/', '?'])
            .map_or(out.len(), |i| authority_start + i);
        if let Some(at) = out[authority_start..authority_end].rfind('@') {
            let userinfo = &out[authority_start..authority_start + at];
            if let Some(colon) = userinfo.find(':') {
                let start = authority_start + colon + 1;
                out.replace_range(start..authority_start + at, MASK);
            }
        }
    }
    out
}

/// The RTMP stream key: the last path segment when the path has an
/// application before it (`/app/KEY`, `/app/instance/KEY`).
fn stream_key(parsed: &Url) -> Option<String> {
    if !KEYED_PATH_SCHEMES.contains(&parsed.scheme()) {
        return None;
    }
    let segments: Vec<&str> = parsed.path_segments()?.filter(|s| !s.is_empty()).collect();
    match segments.as_slice() {
        [_, .., key] if segments.len() >= 2 && *key != MASK => Some((*key).to_owned()),
        _ => None,
    }
}

/// Every secret [`url`] hides, as it appears in the URL and percent-decoded,
/// for finding them in free text (see [`scrub`]).
pub fn secrets(text: &str) -> Vec<String> {
    let Ok(parsed) = Url::parse(text) else {
        return Vec::new();
    };
    let mut found = Vec::new();
    if let Some(password) = parsed.password() {
        found.push(password.to_owned());
    }
    if let Some(query) = parsed.query() {
        found.extend(
            query
                .split('&')
                .filter_map(|pair| pair.split_once('=').map(|(_, value)| value.to_owned())),
        );
    }
    if let Some(fragment) = parsed.fragment() {
        found.push(fragment.to_owned());
    }
    found.extend(stream_key(&parsed));
    let decoded: Vec<String> = found
        .iter()
        .filter_map(|s| percent_encoding::percent_decode_str(s).decode_utf8().ok())
        .map(|s| s.into_owned())
        .collect();
    found.extend(decoded);
    found.retain(|s| s.len() >= MIN_SCRUBBED_LEN);
    // Longest first, so a secret that contains another is replaced whole.
    found.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
    found.dedup();
    found
}

/// `content` (a recorder's log, say) with `source` and each of its secrets
/// replaced by their redacted form: recorders print the URL they open.
pub fn scrub(content: &str, source: &str) -> String {
    let mut out = content.replace(source, &url(source));
    for secret in secrets(source) {
        out = out.replace(&secret, MASK);
    }
    out
}

/// Serializes a URL redacted: for the `source` of a recording, which API
/// answers, events and webhooks carry.
pub fn serialize_url<S: serde::Serializer>(text: &str, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&url(text))
}

/// Where a webhook goes, without its path or query: receivers (chat
/// services among them) often take their secret in the path.
pub fn endpoint(text: &str) -> String {
    match Url::parse(text) {
        Ok(parsed) => {
            let host = parsed.host_str().unwrap_or_default();
            let port = parsed.port().map(|p| format!(":{p}")).unwrap_or_default();
            let elided = if parsed.path().len() > 1 || parsed.query().is_some() {
                "/…"
            } else {
                ""
            };
            format!("{}://{host}{port}{elided}", parsed.scheme())
        }
        Err(_) => redact_unparsed(text),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_not_shown() {
        assert_eq!(url("postgres://u:secret@h/db"), "postgres://u:***@h/db");
        assert_eq!(
            url("http://u:p@hook.example/x"),
            "http://u:***@hook.example/x"
        );
        assert_eq!(url("sqlite://x.db"), "sqlite://x.db");
        assert_eq!(url("not a url"), "not a url");
    }

    #[test]
    fn query_values_fragments_and_stream_keys_are_not_shown() {
        assert_eq!(
            url("rtmp://user:pass@host/app/streamkey"),
            "rtmp://user:***@host/app/***"
        );
        assert_eq!(url("rtmp://host/live"), "rtmp://host/live");
        assert_eq!(
            url("https://cdn.example/live.m3u8?token=abc&expires=1700000000#frag"),
            "https://cdn.example/live.m3u8?token=***&expires=***#***"
        );
        assert_eq!(
            url("srt://host:9000?streamid=abc&passphrase=longsecret&mode=caller"),
            "srt://host:9000?streamid=***&passphrase=***&mode=***"
        );
        assert_eq!(
            url("udp://127.0.0.1:1234?pkt_size"),
            "udp://127.0.0.1:1234?pkt_size"
        );
        assert_eq!(
            url("postgres://u:pw@h/db?sslpassword=x"),
            "postgres://u:***@h/db?sslpassword=***"
        );
    }

    #[test]
    fn text_the_parser_refuses_is_masked_anyway() {
        assert_eq!(
            url("rtmp://u:secret@host:99999/app?key=k"),
            "rtmp://u:***@host:99999/app?***"
        );
    }

    #[test]
    fn secrets_are_found_raw_and_decoded_longest_first() {
        let found = secrets("rtmp://user:p%40ssword@host/app/key-0123?token=t%2Bk%3Dlong");
        assert_eq!(
            found,
            [
                "t%2Bk%3Dlong",
                "p%40ssword",
                "key-0123",
                "p@ssword",
                "t+k=long"
            ]
        );
        assert!(
            secrets("http://host/x?a=1").is_empty(),
            "short values are not secrets"
        );
    }

    #[test]
    fn a_log_is_scrubbed_of_the_source_and_its_secrets() {
        let source = "rtmp://user:hunter22@host/app/streamkey99";
        let log = format!("Input #0, flv, from '{source}':\nconnecting with key streamkey99\n");
        let scrubbed = scrub(&log, source);
        assert!(!scrubbed.contains("hunter22"), "{scrubbed}");
        assert!(!scrubbed.contains("streamkey99"), "{scrubbed}");
        assert!(
            scrubbed.contains("rtmp://user:***@host/app/***"),
            "{scrubbed}"
        );
    }

    #[test]
    fn webhook_endpoints_keep_only_their_origin() {
        assert_eq!(
            endpoint("https://hooks.example/services/T0/B0/secret"),
            "https://hooks.example/…"
        );
        assert_eq!(endpoint("http://127.0.0.1:9000/"), "http://127.0.0.1:9000");
    }
}
