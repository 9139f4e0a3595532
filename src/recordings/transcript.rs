//! A recording's transcript as clients read it: its timed segments, and
//! the same as WebVTT captions for a player's `<track>`.

use std::fmt::Write;

use crate::store::Segment;

/// How long a caption without a known end stays up, at most: until the
/// next one starts, or this long.
const OPEN_CAPTION_MS: i64 = 5_000;

/// The segments as a WebVTT file. A recording without a transcript gets
/// a file without cues, which a player accepts as "no captions".
pub fn to_webvtt(segments: &[Segment]) -> String {
    let mut vtt = String::from("WEBVTT\n");
    for (i, segment) in segments.iter().enumerate() {
        let next = segments.get(i + 1).map(|s| s.start_ms);
        let end = match (segment.end_ms, next) {
            (Some(end), _) if end > segment.start_ms => end,
            (_, Some(next)) if next > segment.start_ms => {
                next.min(segment.start_ms + OPEN_CAPTION_MS)
            }
            _ => segment.start_ms + OPEN_CAPTION_MS,
        };
        // Writing to a String cannot fail.
        let _ = write!(
            vtt,
            "\n{}\n{} --> {}\n{}\n",
            i + 1,
            timestamp(segment.start_ms),
            timestamp(end),
            escape(&segment.text)
        );
    }
    vtt
}

/// `HH:MM:SS.mmm`.
fn timestamp(ms: i64) -> String {
    let ms = ms.max(0);
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        ms / 3_600_000,
        ms / 60_000 % 60,
        ms / 1000 % 60,
        ms % 1000
    )
}

/// Cue text is markup: `&` and `<` are escaped, and a blank line (which
/// would end the cue) or `-->` (which would start a timing) cannot occur.
fn escape(text: &str) -> String {
    let escaped = text
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    escaped
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segment(start_ms: i64, end_ms: Option<i64>, text: &str) -> Segment {
        Segment {
            id: 0,
            recording_id: 1,
            position: 0,
            start_ms,
            end_ms,
            text: text.to_owned(),
        }
    }

    #[test]
    fn segments_become_cues_with_escaped_text() {
        let vtt = to_webvtt(&[
            segment(1_500, Some(3_250), "hello <b> & world"),
            segment(3_661_001, None, "one\n\nhour --> later"),
        ]);
        assert_eq!(
            vtt,
            "WEBVTT\n\n1\n00:00:01.500 --> 00:00:03.250\nhello &lt;b&gt; &amp; world\n\n\
             2\n01:01:01.001 --> 01:01:06.001\none\nhour --&gt; later\n"
        );
        assert_eq!(to_webvtt(&[]), "WEBVTT\n");
    }

    #[test]
    fn an_open_caption_ends_when_the_next_begins() {
        let vtt = to_webvtt(&[segment(0, None, "a"), segment(2_000, None, "b")]);
        assert!(vtt.contains("00:00:00.000 --> 00:00:02.000"), "{vtt}");
    }
}
