//! The built-in `transcribe` step: speech to text with times. whisper.cpp's
//! `whisper-cli` where it and its model are installed, CMU pocketsphinx
//! otherwise; either way the words come back as timed segments, the unit
//! of captions and of search passages. And the reading of a transcript a
//! command step printed, with whisper-style times when it has them.

use std::path::Path;

use serde_json::Value;
use tracing::info;

use super::command::{Attempt, run_command};
use crate::profile::{
    POCKETSPHINX_PROGRAM, Recognizer, StepConfig, TRANSCRIBE_AUDIO, WHISPER_PROGRAM,
};
use crate::store::transcripts::NewSegment;
use crate::supervisor::Supervisor;
use crate::template::render_argv;

/// Most of a recognizer's standard output read: pocketsphinx prints a line
/// per word, about 25 bytes, so this is days of speech.
const MAX_RECOGNIZER_OUTPUT: u64 = 64 * 1024 * 1024;
/// A caption of pocketsphinx's words ends after this many words or
/// seconds, or at a pause once it has half as many words: lines a viewer
/// can read, passages a search can point into.
const MAX_SEGMENT_WORDS: usize = 16;
const MAX_SEGMENT_MS: i64 = 8_000;

/// Runs the step: the 16 kHz WAV made if the `transcode` step did not,
/// then the recognizer, its output read into segments.
pub(super) async fn transcribe(
    supervisor: &Supervisor,
    config: &StepConfig,
    input: &Path,
    workdir: &Path,
    log_path: &Path,
) -> Result<Attempt, (Option<i32>, String)> {
    let workdir_text = workdir.display().to_string();
    let audio = render_argv(
        &[TRANSCRIBE_AUDIO.to_owned()],
        &[("workdir", &workdir_text)],
    )
    .pop()
    .unwrap_or_default();
    if !tokio::fs::try_exists(&audio).await.unwrap_or(false) {
        let input = input.display().to_string();
        let argv: Vec<String> = [
            "ffmpeg",
            "-nostdin",
            "-y",
            "-loglevel",
            "error",
            "-i",
            &input,
            "-vn",
            "-ar",
            "16000",
            "-ac",
            "1",
            &audio,
        ]
        .map(str::to_owned)
        .to_vec();
        run_command(supervisor, &argv, log_path, 0).await?;
    }
    let recognizer = Recognizer::choose(config.model.as_deref()).map_err(|e| (None, e))?;
    info!(recognizer = %recognizer.describe(), "transcribing");
    let run = Run {
        supervisor,
        audio: Path::new(&audio),
        workdir,
        log_path,
    };
    let segments = match &recognizer {
        Recognizer::Whisper { model } => run.whisper(model, config.language.as_deref()).await?,
        Recognizer::Pocketsphinx => run.pocketsphinx().await?,
    };
    let summary = serde_json::json!({
        "recognizer": recognizer.describe(),
        "segments": segments.len(),
    });
    Ok(Attempt {
        exit_code: Some(0),
        result: Some(summary.to_string()),
        analysis: None,
        segments: Some(segments),
    })
}

/// What a recognizer run works with.
struct Run<'a> {
    supervisor: &'a Supervisor,
    /// The 16 kHz mono WAV.
    audio: &'a Path,
    workdir: &'a Path,
    log_path: &'a Path,
}

type StepResult<T> = Result<T, (Option<i32>, String)>;

impl Run<'_> {
    async fn command(&self, argv: &[&str], max_stdout: u64) -> StepResult<String> {
        let argv: Vec<String> = argv.iter().map(|a| (*a).to_owned()).collect();
        let done = run_command(self.supervisor, &argv, self.log_path, max_stdout).await?;
        Ok(done.result.unwrap_or_default())
    }

    /// whisper-cli writes its segments as JSON beside the audio.
    async fn whisper(&self, model: &Path, language: Option<&str>) -> StepResult<Vec<NewSegment>> {
        let stem = self.workdir.join("whisper");
        let (model, audio, stem_text) = (
            model.display().to_string(),
            self.audio.display().to_string(),
            stem.display().to_string(),
        );
        let mut argv = vec![
            WHISPER_PROGRAM,
            "-m",
            &model,
            "-f",
            &audio,
            "-oj",
            "-of",
            &stem_text,
            "-np",
        ];
        if let Some(language) = language {
            argv.extend(["-l", language]);
        }
        self.command(&argv, 0).await?;
        let json_path = stem.with_extension("json");
        let json = tokio::fs::read_to_string(&json_path).await.map_err(|e| {
            let path = json_path.display();
            (None, format!("{WHISPER_PROGRAM} wrote no {path}: {e}"))
        })?;
        parse_whisper_json(&json).map_err(|e| (None, e))
    }

    /// pocketsphinx, on pieces of the audio cut at pauses. Its own
    /// voice-activity detection (`-remove_silence yes`) loses speech and
    /// shifts the times of later utterances in the version Debian ships;
    /// without it, one utterance spans the whole input, which is fine for
    /// a piece of seconds and not for an hour. Each piece is recognized
    /// whole and its times moved by where it starts.
    async fn pocketsphinx(&self) -> StepResult<Vec<NewSegment>> {
        let audio = self.audio.display().to_string();
        let duration = wav_duration(self.audio)
            .await
            .ok_or_else(|| (None, format!("{audio} is not a readable WAV file")))?;
        let silences_file = self.workdir.join("silences.txt");
        let detect = format!(
            "silencedetect=n=-35dB:d=0.3,ametadata=mode=print:file={}",
            silences_file.display()
        );
        self.command(
            &[
                "ffmpeg",
                "-nostdin",
                "-loglevel",
                "error",
                "-i",
                &audio,
                "-af",
                &detect,
                "-f",
                "null",
                "-",
            ],
            0,
        )
        .await?;
        let printed = tokio::fs::read_to_string(&silences_file)
            .await
            .unwrap_or_default();
        let cuts = cut_points(duration, &silences(&printed, duration));
        let pieces = if cuts.is_empty() {
            vec![(self.audio.to_owned(), 0.0)]
        } else {
            self.cut(&cuts).await?
        };
        let mut segments = Vec::new();
        for (piece, offset) in pieces {
            let piece = piece.display().to_string();
            let printed = self
                .command(
                    &[
                        POCKETSPHINX_PROGRAM,
                        "-infile",
                        &piece,
                        "-time",
                        "yes",
                        "-remove_silence",
                        "no",
                        "-logfn",
                        "/dev/null",
                    ],
                    MAX_RECOGNIZER_OUTPUT,
                )
                .await?;
            let offset_ms = seconds_to_ms(offset);
            segments.extend(
                parse_pocketsphinx(&printed)
                    .into_iter()
                    .map(|s| NewSegment {
                        start_ms: s.start_ms + offset_ms,
                        end_ms: s.end_ms.map(|e| e + offset_ms),
                        text: s.text,
                    }),
            );
        }
        Ok(segments)
    }

    /// Cuts the audio at `cuts` (seconds) into WAV pieces in the work
    /// directory; each with where it really starts (ffmpeg cuts between
    /// packets, a few milliseconds from the point asked for).
    async fn cut(&self, cuts: &[f64]) -> StepResult<Vec<(std::path::PathBuf, f64)>> {
        let audio = self.audio.display().to_string();
        let times: Vec<String> = cuts.iter().map(|c| format!("{c:.3}")).collect();
        let times = times.join(",");
        let list = self.workdir.join("pieces.csv");
        let pattern = self.workdir.join("piece-%05d.wav");
        let (list_text, pattern_text) = (list.display().to_string(), pattern.display().to_string());
        self.command(
            &[
                "ffmpeg",
                "-nostdin",
                "-y",
                "-loglevel",
                "error",
                "-i",
                &audio,
                "-f",
                "segment",
                "-segment_times",
                &times,
                "-segment_list",
                &list_text,
                "-segment_list_type",
                "csv",
                "-c",
                "copy",
                &pattern_text,
            ],
            0,
        )
        .await?;
        let listed = tokio::fs::read_to_string(&list)
            .await
            .map_err(|e| (None, format!("ffmpeg listed no pieces in {list_text}: {e}")))?;
        Ok(listed
            .lines()
            .filter_map(|line| {
                let mut fields = line.split(',');
                let name = fields.next()?;
                let start: f64 = fields.next()?.parse().ok()?;
                Some((self.workdir.join(name), start))
            })
            .collect())
    }
}

/// A piece of audio pocketsphinx recognizes whole is cut in a pause once
/// it is this long, or at most this long where no pause comes.
const PIECE_MIN_SECONDS: f64 = 15.0;
const PIECE_MAX_SECONDS: f64 = 40.0;

/// Where to cut `duration` seconds of audio: the middle of the first pause
/// at least [`PIECE_MIN_SECONDS`] into a piece, or [`PIECE_MAX_SECONDS`]
/// into it when none comes before.
fn cut_points(duration: f64, silences: &[(f64, f64)]) -> Vec<f64> {
    let middles: Vec<f64> = silences.iter().map(|(s, e)| (s + e) / 2.0).collect();
    let mut cuts = Vec::new();
    let mut start = 0.0;
    while duration - start > PIECE_MAX_SECONDS {
        let cut = middles
            .iter()
            .copied()
            .find(|m| *m >= start + PIECE_MIN_SECONDS && *m <= start + PIECE_MAX_SECONDS)
            .unwrap_or(start + PIECE_MAX_SECONDS);
        cuts.push(cut);
        start = cut;
    }
    cuts
}

/// The pauses ffmpeg's `silencedetect` found, from the `ametadata` lines
/// it printed: `lavfi.silence_start=2.60`, `lavfi.silence_end=3.10`. A
/// pause still open at the end lasts until `duration`.
fn silences(printed: &str, duration: f64) -> Vec<(f64, f64)> {
    let mut found = Vec::new();
    let mut open = None;
    for line in printed.lines() {
        if let Some(start) = line.strip_prefix("lavfi.silence_start=") {
            open = start.trim().parse::<f64>().ok();
        } else if let Some(end) = line.strip_prefix("lavfi.silence_end=")
            && let (Some(start), Ok(end)) = (open.take(), end.trim().parse::<f64>())
        {
            found.push((start, end));
        }
    }
    if let Some(start) = open {
        found.push((start, duration));
    }
    found
}

/// How long a PCM WAV file plays: its `data` chunk's size over the byte
/// rate its `fmt ` chunk gives.
async fn wav_duration(path: &Path) -> Option<f64> {
    use tokio::io::AsyncReadExt;
    let mut file = tokio::fs::File::open(path).await.ok()?;
    let length = file.metadata().await.ok()?.len();
    let mut head = vec![0; 4096];
    let read = file.read(&mut head).await.ok()?;
    head.truncate(read);
    if head.get(0..4)? != b"RIFF" || head.get(8..12)? != b"WAVE" {
        return None;
    }
    let mut at = 12;
    let mut byte_rate = None;
    while at + 8 <= head.len() {
        let id = &head[at..at + 4];
        let size = u32::from_le_bytes(head[at + 4..at + 8].try_into().ok()?);
        if id == b"fmt " {
            byte_rate = Some(u32::from_le_bytes(
                head.get(at + 16..at + 20)?.try_into().ok()?,
            ));
        } else if id == b"data" {
            let data_start = (at + 8) as u64;
            // A WAV written to a pipe has no size: the rest of the file.
            let size = if size == u32::MAX {
                length - data_start
            } else {
                u64::from(size)
            };
            let rate = f64::from(byte_rate.filter(|r| *r > 0)?);
            return Some(size.min(length - data_start) as f64 / rate);
        }
        at += 8 + size as usize + (size as usize % 2);
    }
    None
}

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

fn seconds_to_ms(seconds: f64) -> i64 {
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
    fn audio_is_cut_in_pauses_into_pieces_of_bounded_length() {
        assert!(cut_points(39.0, &[(10.0, 11.0)]).is_empty());
        // A pause 20 s in, none after: then every 40 s.
        assert_eq!(
            cut_points(130.0, &[(5.0, 6.0), (19.5, 20.5)]),
            [20.0, 60.0, 100.0]
        );
        let printed = "frame:22 pts:45056 pts_time:2.816\nlavfi.silence_start=2.6\n\
            frame:24 pts:49152 pts_time:3.072\nlavfi.silence_end=3.1\nlavfi.silence_duration=0.5\n\
            lavfi.silence_start=8.5\n";
        assert_eq!(silences(printed, 9.0), [(2.6, 3.1), (8.5, 9.0)]);
    }

    #[tokio::test]
    async fn a_wav_file_says_how_long_it_plays() {
        let path = std::env::temp_dir().join(format!("recorderd-wav-{}.wav", std::process::id()));
        let data = vec![0u8; 48_000];
        let mut wav = Vec::new();
        wav.extend_from_slice(b"RIFF");
        wav.extend_from_slice(&(36 + 8 + 6 + data.len() as u32).to_le_bytes());
        wav.extend_from_slice(b"WAVEfmt ");
        wav.extend_from_slice(&16u32.to_le_bytes());
        // PCM, mono, 16 kHz, 32000 bytes a second, 2-byte frames, 16 bits.
        for field in [1u16, 1] {
            wav.extend_from_slice(&field.to_le_bytes());
        }
        wav.extend_from_slice(&16_000u32.to_le_bytes());
        wav.extend_from_slice(&32_000u32.to_le_bytes());
        for field in [2u16, 16] {
            wav.extend_from_slice(&field.to_le_bytes());
        }
        wav.extend_from_slice(b"LIST");
        wav.extend_from_slice(&6u32.to_le_bytes());
        wav.extend_from_slice(b"INFOab");
        wav.extend_from_slice(b"data");
        wav.extend_from_slice(&(data.len() as u32).to_le_bytes());
        wav.extend_from_slice(&data);
        std::fs::write(&path, &wav).expect("write");
        assert_eq!(wav_duration(&path).await, Some(1.5));
        std::fs::write(&path, b"not a wav").expect("write");
        assert_eq!(wav_duration(&path).await, None);
        let _ = std::fs::remove_file(&path);
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
