// One recording: its player (an MP4 the server makes from the recorded
// file) with the transcript as captions and as text whose lines seek the
// player, what the analysis measured, the processing steps with their
// errors (or, for a continuous recording, its segments), the recorder's
// runs, and its log followed live; stop, reprocess,
// download and delete.

import { get, post, remove, withToken } from "./api.js";
import { el, duration, size, when, host, status, secondsBetween } from "./format.js";
import { followLog } from "./log.js";

export function mount(main, params, { say, confirm, navigate }) {
  const id = params.id;
  const startAt = params.t !== undefined ? Number(params.t) : null;
  const header = el("div", { id: "recording-header" });
  const player = el("section", { class: "player", "aria-label": "Player" });
  const transcript = el("section", { "aria-labelledby": "transcript-title" });
  const facts = el("section", { "aria-labelledby": "analysis-title" });
  const steps = el("section", { "aria-labelledby": "steps-title" });
  const runs = el("section", { "aria-labelledby": "jobs-title" });
  const logSection = el("section", { "aria-labelledby": "log-title" });
  main.append(
    el("p", {}, el("a", { href: "#/" }, "← Recordings")),
    header,
    el("div", { class: "layout" }, el("div", {}, player), el("div", {}, transcript)),
    el("div", { class: "layout" }, el("div", {}, steps, runs), el("div", {}, facts)),
    logSection,
  );

  let shown = null;           // the detail last rendered
  let playerFor = null;       // "recording", or "file" once there is one to play
  let transcriptFor = null;   // the state of the recording the transcript shows
  let video = null;
  let log = null;             // the log being followed
  let reloading = null;
  let gone = false;

  async function load() {
    let detail;
    try {
      detail = await get(`/api/recordings/${id}/`);
    } catch (e) {
      if (e.status === 404) {
        header.replaceChildren(el("h1", { id: "view-title" }, "Recording not found"),
          el("p", {}, `Recording #${id} does not exist (any more).`));
        gone = true;
      } else {
        say(e.message, true);
      }
      return;
    }
    shown = detail;
    document.title = detail.title + " · recorderd";
    renderHeader(header, detail, actions(detail));
    renderFacts(facts, detail);
    renderSteps(steps, detail);
    renderRuns(runs, detail);
    // The player is made once there is a file to play, and then left
    // alone: making it again would stop a playback under way.
    const playable = detail.status === "recording" ? "recording" : "file";
    if (playable !== playerFor) {
      const first = playerFor === null;
      playerFor = playable;
      video = renderPlayer(player, detail, first ? startAt : null);
    }
    const state = detail.status + " " + detail.updated_at;
    if (state !== transcriptFor) {
      transcriptFor = state;
      renderTranscript(transcript, detail, video);
    }
    const job = detail.jobs[0];
    if (job && (!log || log.jobId !== job.id)) {
      if (log) log.stop();
      log = followLog(logSection, job, say);
    }
    if (log && job) log.setLive(job.status === "running" || job.status === "stopping");
  }

  function actions(detail) {
    const job = detail.jobs[0];
    const live = job && job.status === "running";
    const settled = detail.status === "ready" || detail.status === "failed";
    const buttons = [];
    if (live) {
      buttons.push(el("button", {
        type: "button", class: "danger",
        onclick: async (e) => {
          if (!(await confirm("Stop this recording?", `“${detail.title}” stops recording; what was recorded is kept and processed.`, "Stop"))) return;
          e.target.disabled = true;
          try { await post("/api/recordings/jobs/stop/", { job_id: job.id }); say(`Stopping “${detail.title}”`); }
          catch (err) { say(err.message, true); e.target.disabled = false; }
        },
      }, "Stop"));
    }
    if (settled) {
      buttons.push(el("button", {
        type: "button",
        onclick: async (e) => {
          e.target.disabled = true;
          try { await post(`/api/recordings/${id}/reprocess/`); say(`Processing “${detail.title}” again`); }
          catch (err) { say(err.message, true); e.target.disabled = false; }
        },
      }, "Reprocess"));
    }
    if (detail.status !== "recording") {
      buttons.push(el("a", { href: withToken(detail.media_url), download: "", class: "button" }, "Download original"));
    }
    if (settled) {
      buttons.push(el("button", {
        type: "button", class: "danger",
        onclick: async () => {
          const sure = await confirm("Delete this recording?",
            `“${detail.title}”, its file, transcript, log and history are deleted. This cannot be undone.`, "Delete");
          if (!sure) return;
          try {
            await remove(`/api/recordings/${id}/`);
            gone = true;
            navigate("#/", `Deleted “${detail.title}”`);
          } catch (err) { say(err.message, true); }
        },
      }, "Delete"));
    }
    return buttons;
  }

  load();
  const ticker = setInterval(() => {
    if (!shown || shown.status !== "recording") return;
    const cell = document.getElementById("live-duration");
    const job = shown.jobs[shown.jobs.length - 1];
    if (cell && job) cell.textContent = duration(secondsBetween(job.started_at));
  }, 1000);
  return {
    onEvent(kind, data) {
      const mine = kind.startsWith("recording.") ? data.id === id : data.recording_id === id;
      if (!mine || gone) return;
      clearTimeout(reloading);
      reloading = setTimeout(load, 150);
    },
    unmount() {
      clearInterval(ticker);
      clearTimeout(reloading);
      if (log) log.stop();
    },
  };
}

function renderHeader(header, d, buttons) {
  const job = d.jobs[0];
  header.replaceChildren(
    el("h1", { id: "view-title" }, d.title, el("span", { class: "id" }, "#" + d.id)),
    el("p", { class: "muted" },
      host(d.source), " · profile ", d.profile, job && job.node ? " · node " + job.node : "",
      " · started ", when((d.jobs[d.jobs.length - 1] || {}).started_at || d.created_at)),
    el("p", {}, status(d.status),
      d.status === "recording" ? el("span", {}, " for ", el("span", { id: "live-duration" }, "…")) : ""),
    d.error ? el("p", { class: "error-text", id: "recording-error" }, d.error) : "",
    el("div", { class: "actions" }, buttons),
  );
}

function renderPlayer(section, d, startAt) {
  const mp4 = `/api/recordings/${d.id}/media.mp4`;
  if (d.status === "recording") {
    section.replaceChildren(el("div", { class: "panel note" }, "Recording in progress: it can be played once it ends."));
    return null;
  }
  const hasVideo = d.analysis && d.analysis.video;
  const video = el("video", {
    id: "player", controls: true, preload: "metadata", playsinline: true,
    poster: hasVideo ? withToken(`/api/recordings/${d.id}/thumbnail.jpg`) : null,
    "aria-label": "Play “" + d.title + "”",
  },
  el("source", { src: withToken(mp4), type: "video/mp4" }));
  const problem = el("p", { class: "error-text", id: "player-error" });
  video.querySelector("source").addEventListener("error", async () => {
    // The element says nothing useful: ask the server why.
    try {
      const response = await fetch(withToken(mp4), { method: "GET", headers: { Range: "bytes=0-0" } });
      const body = await response.json().catch(() => null);
      problem.textContent = "Cannot play: " + (body && body.error ? body.error.message : "HTTP " + response.status);
    } catch (e) {
      problem.textContent = "Cannot play: " + e.message;
    }
  });
  if (startAt !== null && isFinite(startAt)) {
    video.addEventListener("loadedmetadata", () => {
      video.currentTime = startAt;
      video.play().catch(() => {});
    }, { once: true });
  }
  section.replaceChildren(video, problem);
  return video;
}

async function renderTranscript(section, d, video) {
  const heading = el("h2", { id: "transcript-title" }, "Transcript");
  let segments = [];
  try {
    segments = (await get(`/api/recordings/${d.id}/transcript`)).segments;
  } catch (e) {
    section.replaceChildren(heading, el("p", { class: "error-text" }, e.message));
    return;
  }
  if (video) {
    // Captions that loaded before the transcript existed are loaded again.
    const old = video.querySelector("track");
    const track = el("track", { kind: "captions", label: "Transcript", srclang: "en", default: true,
      src: withToken(`/api/recordings/${d.id}/transcript.vtt?v=${segments.length}`) });
    if (!old || old.getAttribute("src") !== track.getAttribute("src")) {
      if (old) old.remove();
      video.append(track);
    }
  }
  if (segments.length === 0) {
    const why = d.status === "recording" || d.status === "processing"
      ? "Not transcribed yet." : "No transcript: nothing was heard, or no step transcribes with this profile.";
    section.replaceChildren(heading, el("p", { class: "muted" }, why));
    return;
  }
  const items = segments.map((s) => el("li", {},
    el("button", {
      type: "button", class: "cue", dataset: { start: s.start_seconds },
      "aria-label": `Play from ${duration(s.start_seconds)}: ${s.text}`,
      onclick: () => {
        if (!video) return;
        video.currentTime = s.start_seconds;
        video.play().catch(() => {});
      },
    }, el("time", {}, duration(s.start_seconds)), el("span", {}, s.text))));
  const list = el("ol", { class: "cues", id: "cues" }, items);
  if (video) {
    video.addEventListener("timeupdate", () => {
      const t = video.currentTime;
      segments.forEach((s, i) => {
        const end = s.end_seconds ?? (segments[i + 1] ? segments[i + 1].start_seconds : Infinity);
        const button = items[i].firstChild;
        if (t >= s.start_seconds && t < end) button.setAttribute("aria-current", "true");
        else button.removeAttribute("aria-current");
      });
    });
  }
  section.replaceChildren(heading, el("p", { class: "muted" }, "Select a line to play from there."), list);
}

function renderFacts(section, d) {
  const a = d.analysis;
  const rows = [];
  const fact = (name, value) => { if (value !== null && value !== undefined && value !== "") rows.push(el("dt", {}, name), el("dd", {}, value)); };
  if (a) {
    fact("Duration", duration(a.duration_seconds));
    fact("Size", size(a.size_bytes));
    fact("Container", a.format);
    if (a.video) {
      fact("Video", [a.video.codec, a.video.width && a.video.height ? `${a.video.width}×${a.video.height}` : null,
        a.video.frame_rate ? a.video.frame_rate.toFixed(2).replace(/\.?0+$/, "") + " fps" : null].filter(Boolean).join(", "));
    }
    fact("Audio", [a.codec, a.sample_rate ? a.sample_rate / 1000 + " kHz" : null,
      a.channels ? a.channels + " ch" : null].filter(Boolean).join(", "));
    fact("Bit rate", a.bit_rate ? Math.round(a.bit_rate / 1000) + " kb/s" : null);
    fact("Loudness", a.integrated_loudness_lufs !== null ? a.integrated_loudness_lufs.toFixed(1) + " LUFS" : null);
    fact("True peak", a.true_peak_dbfs !== null ? a.true_peak_dbfs.toFixed(1) + " dBFS" : null);
    fact("Silence", duration(a.silence_seconds) + (a.silence_ratio !== null ? ` (${Math.round(a.silence_ratio * 100)} %, below ${a.silence_threshold_db} dB)` : ""));
  }
  section.replaceChildren(el("h2", { id: "analysis-title" }, "Analysis"),
    rows.length ? el("dl", { class: "facts", id: "analysis" }, rows) : el("p", { class: "muted" }, "Not analyzed yet."),
    a && a.video ? el("img", { class: "thumb", alt: "A still of “" + d.title + "”", src: withToken(`/api/recordings/${d.id}/thumbnail.jpg`) }) : "");
}

function renderSteps(section, d) {
  const heading = el("h2", { id: "steps-title" }, "Processing");
  // A continuous recording is processed segment by segment, each a
  // recording of its own.
  if (d.segments && d.segments.length) {
    section.replaceChildren(el("h2", { id: "steps-title" }, "Segments"), el("table", { class: "cards", id: "segments" },
      el("thead", {}, el("tr", {}, ["Segment", "Starts at", "Length", "Status"].map((h) => el("th", { scope: "col" }, h)))),
      el("tbody", {}, d.segments.map((s) => el("tr", {},
        el("td", { "data-label": "Segment" }, el("a", { href: "#/recordings/" + s.recording_id }, "#" + s.index)),
        el("td", { class: "num", "data-label": "Starts at" }, duration(s.start_ms / 1000)),
        el("td", { class: "num", "data-label": "Length" }, duration(s.duration_ms / 1000)),
        el("td", { "data-label": "Status" }, status(s.status)))))));
    return;
  }
  if (d.steps.length === 0) {
    section.replaceChildren(heading, el("p", { class: "muted" }, d.status === "recording" ? "Begins when the recording ends." : "No step."));
    return;
  }
  section.replaceChildren(heading, el("table", { class: "cards", id: "steps" },
    el("thead", {}, el("tr", {}, ["Step", "Status", "Attempts", "Took", "Error"].map((h) => el("th", { scope: "col" }, h)))),
    el("tbody", {}, d.steps.map((s) => el("tr", {},
      el("td", { "data-label": "Step" }, s.name),
      el("td", { "data-label": "Status" }, status(s.status)),
      el("td", { class: "num", "data-label": "Attempts" }, s.attempt),
      el("td", { class: "num", "data-label": "Took" }, s.started_at ? duration(secondsBetween(s.started_at, s.finished_at)) : "–"),
      el("td", { "data-label": "Error" }, s.error ? el("span", { class: "error-text" }, s.error + (s.exit_code !== null ? ` (exit ${s.exit_code})` : "")) : ""))))));
}

function renderRuns(section, d) {
  const rows = [];
  for (const job of d.jobs) {
    for (const run of job.attempts || []) {
      rows.push(el("tr", {},
        el("td", { "data-label": "Run" }, `job #${job.id}, run ${run.attempt}`),
        el("td", { "data-label": "Status" }, status("failed")),
        el("td", { class: "num", "data-label": "PID" }, run.process_id ?? "–"),
        el("td", { class: "num", "data-label": "Ended" }, when(run.ended_at)),
        el("td", { "data-label": "End" }, run.exit_signal ? "signal " + run.exit_signal : "exit " + run.exit_code)));
    }
    const end = job.exit_signal ? "signal " + job.exit_signal
      : job.exit_code !== null ? "exit " + job.exit_code : "";
    rows.push(el("tr", { id: "job-" + job.id },
      el("td", { "data-label": "Run" }, `job #${job.id}` + (job.attempt > 1 ? `, run ${job.attempt}` : "")),
      el("td", { "data-label": "Status" }, status(job.status)),
      el("td", { class: "num", "data-label": "PID" }, job.process_id ?? "–"),
      el("td", { class: "num", "data-label": "Ended" }, when(job.completed_at)),
      el("td", { "data-label": "End" }, [end, job.stop_reason ? "stop: " + job.stop_reason : "", job.error || ""].filter(Boolean).join(" · "))));
  }
  section.replaceChildren(el("h2", { id: "jobs-title" }, "Recorder runs"),
    el("table", { class: "cards", id: "jobs" },
      el("thead", {}, el("tr", {}, ["Run", "Status", "PID", "Ended", "How it ended"].map((h) => el("th", { scope: "col" }, h)))),
      el("tbody", {}, rows)));
}
