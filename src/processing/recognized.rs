//! What speech recognizers print, read into timed segments: pocketsphinx's
//! word times, whisper-cli's JSON, and a command's transcript with
//! whisper-style times (or none).

use serde_json::Value;

use crate::store::transcripts::NewSegment;

/// A caption of pocketsphinx's words ends after this many words or
/// seconds, or at a pause once it has half as many words: lines a viewer
/// can read, passages a search can point into.
const MAX_SEGMENT_WORDS: usize = 16;
const MAX_SEGMENT_MS: i64 = 8_000;

/// pocketsphinx_continuous with `-time yes`: for each utterance a line of
/// its words, then one line per word, `word start end confidence`, with
/// times in seconds from the start of the file. `<s>`, `</s>`, `<sil>` and
/// `[NOISE]`-like fillers are not words; `(2)` marks a pronunciation.
pub fn parse_pocketsphinx(output: &str) -> Vec<NewSegment> {
    let mut segments = Vec::new();
    let mut current: Vec<(String, i64, i64)> = Vec::new();
    let mut paused = false;
    for line in output.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let times = match fields.as_slice() {
            [word, start, end, confidence] if confidence.parse::<f64>().is_ok() => {
                match (start.parse::<f64>(), end.parse::<f64>()) {
                    (Ok(start), Ok(end)) => Some((*word, seconds_to_ms(start), seconds_to_ms(end))),
                    _ => None,
                }
            }
            _ => None,
        };
        let Some((word, start, end)) = times else {
            // The utterance's own line: its words follow, timed.
            continue;
        };
        match word {
            "<s>" | "</s>" => {
                flush(&mut current, &mut segments);
                paused = false;
            }
            "<sil>" => paused = true,
            filler if filler.starts_with('[') || filler.starts_with("++") => paused = true,
            word => {
                let word = word.split('(').next().unwrap_or(word);
                if let Some(first) = current.first() {
                    let long = current.len() >= MAX_SEGMENT_WORDS
                        || end - first.1 > MAX_SEGMENT_MS
                        || (paused && current.len() >= MAX_SEGMENT_WORDS / 2);
                    if long {
                        flush(&mut current, &mut segments);
                    }
                }
                current.push((word.to_owned(), start, end));
                paused = false;
            }
        }
    }
    flush(&mut current, &mut segments);
    segments
}

fn flush(words: &mut Vec<(String, i64, i64)>, segments: &mut Vec<NewSegment>) {
    if let (Some(first), Some(last)) = (words.first(), words.last()) {
        segments.push(NewSegment {
            start_ms: first.1,
            end_ms: Some(last.2),
            text: words
                .iter()
                .map(|(w, _, _)| w.as_str())
                .collect::<Vec<_>>()
                .join(" "),
        });
    }
    words.clear();
}

pub(super) fn seconds_to_ms(seconds: f64) -> i64 {
    (seconds * 1000.0).round() as i64
}

/// whisper-cli's `-oj` file: `transcription` is a list of segments, each
/// with `offsets.from` and `offsets.to` in milliseconds and its `text`.
pub fn parse_whisper_json(json: &str) -> Result<Vec<NewSegment>, String> {
    let document: Value =
        serde_json::from_str(json).map_err(|e| format!("whisper-cli's JSON is unreadable: {e}"))?;
    let Some(items) = document["transcription"].as_array() else {
        return Err("whisper-cli's JSON has no `transcription` list".to_owned());
    };
    Ok(items
        .iter()
        .filter_map(|item| {
            let text = item["text"].as_str()?.trim();
            if text.is_empty() {
                return None;
            }
            Some(NewSegment {
                start_ms: item["offsets"]["from"].as_i64()?,
                end_ms: item["offsets"]["to"].as_i64(),
                text: text.to_owned(),
            })
        })
        .collect())
}

/// What a command step printed as its transcript: segments when every line
/// is whisper-style, `[00:00:01.000 --> 00:00:04.500]  words` (whisper-cli
/// without `-nt` prints that), else the whole text as one segment at 0 s.
pub fn segments_from_text(text: &str) -> Vec<NewSegment> {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let timed: Option<Vec<NewSegment>> = lines.iter().map(|l| timed_line(l)).collect();
    match timed {
        Some(segments) if !segments.is_empty() => segments
            .into_iter()
            .filter(|s| !s.text.is_empty())
            .collect(),
        _ => {
            let text = text.trim();
            if text.is_empty() {
                Vec::new()
            } else {
                vec![NewSegment {
                    start_ms: 0,
                    end_ms: None,
                    text: text.to_owned(),
                }]
            }
        }
    }
}

/// `[00:00:01.000 --> 00:00:04.500]  words`.
fn timed_line(line: &str) -> Option<NewSegment> {
    let rest = line.trim_start().strip_prefix('[')?;
    let (times, text) = rest.split_once(']')?;
    let (from, to) = times.split_once("-->")?;
    Some(NewSegment {
        start_ms: clock_ms(from.trim())?,
        end_ms: Some(clock_ms(to.trim())?),
        text: text.trim().to_owned(),
    })
}

/// `HH:MM:SS.mmm` or `MM:SS.mmm` (a comma works as the decimal mark too).
fn clock_ms(stamp: &str) -> Option<i64> {
    let stamp = stamp.replace(',', ".");
    let mut seconds = 0.0;
    for part in stamp.split(':') {
        seconds = seconds * 60.0 + part.parse::<f64>().ok()?;
    }
    Some(seconds_to_ms(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    const POCKETSPHINX: &str = "hello world it is a test\n\
        <s> 0.000 0.020 0.998900\n\
        hello 0.030 0.390 0.156921\n\
        world 0.400 0.820 0.256492\n\
        <sil> 0.830 0.950 0.910455\n\
        reading(2) 1.710 2.000 0.182392\n\
        </s> 4.300 4.700 1.000000\n\
        again\n\
        <s> 7.690 7.960 0.999200\n\
        [NOISE] 7.970 8.200 0.844999\n\
        again 8.210 8.460 0.172509\n\
        </s> 11.960 12.500 1.000000\n";

    #[test]
    fn pocketsphinx_utterances_become_timed_segments_without_fillers() {
        let segments = parse_pocketsphinx(POCKETSPHINX);
        assert_eq!(
            segments,
            [
                NewSegment {
                    start_ms: 30,
                    end_ms: Some(2000),
                    text: "hello world reading".to_owned()
                },
                NewSegment {
                    start_ms: 8210,
                    end_ms: Some(8460),
                    text: "again".to_owned()
                },
            ]
        );
    }

    #[test]
    fn long_pocketsphinx_utterances_are_cut_into_readable_lines() {
        let mut output = String::from("<s> 0.000 0.010 1.0\n");
        for i in 0..40 {
            let start = f64::from(i) * 0.3;
            output += &format!("w{i} {start:.3} {:.3} 0.5\n", start + 0.25);
        }
        output += "</s> 12.000 12.100 1.0\n";
        let segments = parse_pocketsphinx(&output);
        assert!(segments.len() >= 3, "{segments:?}");
        assert!(segments.iter().all(|s| s.text.split(' ').count() <= 16));
        let words: usize = segments.iter().map(|s| s.text.split(' ').count()).sum();
        assert_eq!(words, 40);
        assert!(segments.windows(2).all(|w| w[0].start_ms < w[1].start_ms));
    }

    #[test]
    fn whisper_json_segments_keep_their_offsets() {
        let json = r#"{"result": {"language": "en"}, "transcription": [
            {"timestamps": {"from": "00:00:00,000", "to": "00:00:02,500"},
             "offsets": {"from": 0, "to": 2500}, "text": " Hello world."},
            {"offsets": {"from": 2500, "to": 2600}, "text": " "},
            {"offsets": {"from": 2600, "to": 5100}, "text": " This is a test."}]}"#;
        let segments = parse_whisper_json(json).expect("parses");
        assert_eq!(segments.len(), 2);
        assert_eq!(segments[1].start_ms, 2600);
        assert_eq!(segments[1].end_ms, Some(5100));
        assert_eq!(segments[0].text, "Hello world.");
        assert!(parse_whisper_json("{}").is_err());
    }

    #[test]
    fn printed_transcripts_keep_whisper_times_or_become_one_segment() {
        let timed =
            "[00:00:00.000 --> 00:00:02.000]   Hello.\n[00:01:02.500 --> 00:01:04.000]  Later.\n";
        let segments = segments_from_text(timed);
        assert_eq!(segments.len(), 2);
        assert_eq!(segments[1].start_ms, 62_500);
        assert_eq!(segments[1].text, "Later.");
        let plain = segments_from_text("  just words\nover two lines \n");
        assert_eq!(plain.len(), 1);
        assert_eq!(plain[0].start_ms, 0);
        assert_eq!(plain[0].end_ms, None);
        assert_eq!(plain[0].text, "just words\nover two lines");
        assert!(segments_from_text(" \n").is_empty());
    }
}
