//! How a recorder opens its source and reports its progress: the options
//! a profile gives its recorder for each kind of source (`{input_options}`),
//! and whether the recorder's standard output carries machine-readable
//! progress that recorderd reads.
//!
//! Sources of different kinds fail differently: an HTTP stream drops and
//! comes back, an RTSP camera over UDP loses packets behind a NAT, an HLS
//! playlist starts a few segments in the past, SRT needs room to resend.
//! The options that fix each are the recorder's own and are refused by it
//! for any other kind of source (ffmpeg exits on an option nothing used),
//! so they are chosen per source, not written once in the command.

use std::collections::BTreeMap;

use serde::Deserialize;
use url::Url;

/// Key of [`Profile::input_options`](super::Profile::input_options) for
/// HTTP(S) sources whose path ends in `.m3u8`: applied after the options of
/// their scheme.
pub const HLS_KEY: &str = "hls";

/// What a recorder's standard output carries.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProgressFormat {
    /// Nothing recorderd reads: appended to the job's log with its errors.
    #[default]
    None,
    /// ffmpeg's `-progress pipe:1`: blocks of `key=value` lines, each ended
    /// by `progress=continue` (or `end`). recorderd reads them through a
    /// pipe and keeps the latest as the job's live progress; they never
    /// reach the log.
    Ffmpeg,
}

/// The built-in profile's options per kind of source.
pub fn builtin_input_options() -> BTreeMap<String, Vec<String>> {
    // An HTTP stream that drops is opened again, waiting up to 5 s between
    // tries, streamed or not, after a clean end as after a network error.
    let http = [
        "-reconnect",
        "1",
        "-reconnect_streamed",
        "1",
        "-reconnect_on_network_error",
        "1",
        "-reconnect_delay_max",
        "5",
    ];
    let entries: [(&str, &[&str]); 6] = [
        ("http", &http),
        ("https", &http),
        // From the newest segment: a live recording starts now, not with
        // the segments the playlist still lists from before the start.
        (HLS_KEY, &["-live_start_index", "-1"]),
        // Interleaved in the RTSP connection: cameras behind NAT or a
        // firewall lose UDP packets, or never receive any.
        ("rtsp", &["-rtsp_transport", "tcp"]),
        ("rtsps", &["-rtsp_transport", "tcp"]),
        // Two seconds (in microseconds) for lost packets to be sent again
        // before they are given up: a recording is not watched live.
        ("srt", &["-latency", "2000000"]),
    ];
    entries
        .into_iter()
        .map(|(key, args)| {
            (
                key.to_owned(),
                args.iter().map(|a| (*a).to_owned()).collect(),
            )
        })
        .collect()
}

/// The options of `table` for `source`: those of its scheme, then, for an
/// HTTP(S) playlist (`.m3u8`), those of [`HLS_KEY`].
pub fn input_options_for(table: &BTreeMap<String, Vec<String>>, source: &str) -> Vec<String> {
    let Ok(url) = Url::parse(source) else {
        return Vec::new();
    };
    let scheme = url.scheme().to_ascii_lowercase();
    let mut options = table.get(&scheme).cloned().unwrap_or_default();
    let playlist = url.path().to_ascii_lowercase().ends_with(".m3u8");
    if matches!(scheme.as_str(), "http" | "https")
        && playlist
        && let Some(hls) = table.get(HLS_KEY)
    {
        options.extend(hls.iter().cloned());
    }
    options
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_of_source_gets_its_own_options_and_no_other() {
        let table = builtin_input_options();
        let for_source = |s: &str| input_options_for(&table, s).join(" ");
        assert_eq!(
            for_source("rtsp://cam.example/1"),
            "-rtsp_transport tcp",
            "RTSP over TCP"
        );
        let http = for_source("http://radio.example/stream");
        assert!(http.starts_with("-reconnect 1"), "{http}");
        assert!(!http.contains("live_start_index"), "{http}");
        let hls = for_source("https://tv.example/live/index.M3U8?token=x");
        assert!(hls.contains("-reconnect_streamed 1"), "{hls}");
        assert!(hls.ends_with("-live_start_index -1"), "{hls}");
        assert_eq!(for_source("srt://relay.example:9000"), "-latency 2000000");
        assert_eq!(for_source("udp://239.0.0.1:1234"), "");
        assert_eq!(for_source("rtmp://live.example/app/key"), "");
    }
}
