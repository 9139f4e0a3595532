//! The built-in `transcribe` step: speech to text with times. whisper.cpp's
//! `whisper-cli` where it and its model are installed, CMU pocketsphinx
//! otherwise; either way the words come back as timed segments, the unit
//! of captions and of search passages (what each prints is read in
//! `recognized`).

use std::path::Path;

use tracing::info;

use super::command::{Attempt, run_command};
use super::recognized::{parse_pocketsphinx, parse_whisper_json, seconds_to_ms};
use crate::profile::{
    EnvTable, POCKETSPHINX_PROGRAM, Recognizer, StepConfig, TRANSCRIBE_AUDIO, WHISPER_PROGRAM,
};
use crate::store::transcripts::NewSegment;
use crate::supervisor::Supervisor;
use crate::template::render_argv;

/// Most of a recognizer's standard output read: pocketsphinx prints a line
/// per word, about 25 bytes, so this is days of speech.
const MAX_RECOGNIZER_OUTPUT: u64 = 64 * 1024 * 1024;

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
        run_command(supervisor, &argv, &config.env, log_path, 0).await?;
    }
    let recognizer = Recognizer::choose(config.model.as_deref()).map_err(|e| (None, e))?;
    info!(recognizer = %recognizer.describe(), "transcribing");
    let run = Run {
        supervisor,
        env: &config.env,
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
    /// The step's environment (over the profile's), as a command step gets.
    env: &'a EnvTable,
    /// The 16 kHz mono WAV.
    audio: &'a Path,
    workdir: &'a Path,
    log_path: &'a Path,
}

type StepResult<T> = Result<T, (Option<i32>, String)>;

impl Run<'_> {
    async fn command(&self, argv: &[&str], max_stdout: u64) -> StepResult<String> {
        let argv: Vec<String> = argv.iter().map(|a| (*a).to_owned()).collect();
        let done = run_command(self.supervisor, &argv, self.env, self.log_path, max_stdout).await?;
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
