// The jobs view: recorders running now and recently ended, each under its
// recording's title, with stop, and the cleanup the seed's clients call.

import { get, post } from "./api.js";
import { el, when, status, size, duration } from "./format.js";

export function mount(main, _params, { say }) {
  const count = el("strong", { id: "active-count", "aria-live": "polite" }, "…");
  const active = el("tbody", { id: "active-jobs" });
  const recent = el("tbody", { id: "recent-jobs" });
  main.append(
    el("h1", { id: "view-title" }, "Jobs"),
    el("p", {}, count, " running or stopping"),
    el("table", { class: "cards" },
      el("thead", {}, el("tr", {}, ["Recording", "Job", "Status", "PID", "Node", "Started", "Progress", ""].map((h) => el("th", { scope: "col" }, h)))),
      active),
    el("p", {}, el("button", {
      type: "button", id: "cleanup",
      onclick: async () => {
        try { const data = await post("/api/recordings/jobs/cleanup/"); say(data.message); load(); }
        catch (e) { say(e.message, true); }
      },
    }, "Clean up stale jobs")),
    el("h2", {}, "Recently ended"),
    el("table", { class: "cards" },
      el("thead", {}, el("tr", {}, ["Recording", "Job", "Status", "Ended", "Why"].map((h) => el("th", { scope: "col" }, h)))),
      recent),
  );

  const titles = new Map();
  async function titlesOf(jobs) {
    const missing = [...new Set(jobs.map((j) => j.recording_id))].filter((id) => !titles.has(id));
    await Promise.all(missing.map(async (id) => {
      try { titles.set(id, (await get(`/api/recordings/${id}/`)).title); }
      catch { titles.set(id, null); }
    }));
  }
  const recordingCell = (job) => el("td", { class: "title-cell", "data-label": "Recording" },
    el("a", { href: "#/recordings/" + job.recording_id }, titles.get(job.recording_id) ?? "(deleted)"),
    el("span", { class: "id" }, "#" + job.recording_id));

  // Live progress is not an event: the running jobs are read again every
  // 2 s while any is shown (the list, which does not reconcile).
  const progressCells = new Map();
  let ticking = null;
  async function refreshProgress() {
    if (progressCells.size === 0) return;
    try {
      const running = await get("/api/recordings/jobs/?status=running&page_size=500");
      for (const job of running.jobs) {
        const cell = progressCells.get(job.id);
        if (cell) cell.replaceChildren(progressOf(job));
      }
    } catch { /* the next load says what is wrong */ }
  }

  const progressCell = (job) => {
    const cell = el("td", { class: "progress", "data-label": "Progress" }, progressOf(job));
    progressCells.set(job.id, cell);
    return cell;
  };

  let reloading = null;
  async function load() {
    try {
      const [live, ended] = await Promise.all([
        get("/api/recordings/jobs/active/"),
        get("/api/recordings/jobs/?page_size=20"),
      ]);
      const done = ended.jobs.filter((j) => j.status === "completed" || j.status === "failed");
      await titlesOf([...live.jobs, ...done]);
      count.textContent = String(live.count);
      active.replaceChildren();
      progressCells.clear();
      if (live.jobs.length === 0) active.append(el("tr", {}, el("td", { colspan: 8, class: "muted" }, "No recorder runs.")));
      for (const job of live.jobs) {
        const title = titles.get(job.recording_id) ?? "#" + job.recording_id;
        active.append(el("tr", { id: "job-" + job.id },
          recordingCell(job),
          el("td", { class: "num", "data-label": "Job" }, "#" + job.id),
          el("td", { "data-label": "Status" }, jobStatus(job)),
          el("td", { class: "num", "data-label": "PID" }, job.process_id ?? "–"),
          el("td", { "data-label": "Node" }, job.node || "–"),
          el("td", { class: "num", "data-label": "Started" }, when(job.started_at)),
          progressCell(job),
          el("td", { "data-label": "" }, el("button", {
            type: "button", disabled: job.status !== "running", "aria-label": `Stop “${title}”`,
            onclick: async (e) => {
              e.target.disabled = true;
              try { await post("/api/recordings/jobs/stop/", { job_id: job.id }); say(`Stopping “${title}”`); }
              catch (err) { say(err.message, true); e.target.disabled = false; }
            },
          }, "Stop"))));
      }
      recent.replaceChildren();
      for (const job of done) {
        recent.append(el("tr", { id: "ended-" + job.id },
          recordingCell(job),
          el("td", { class: "num", "data-label": "Job" }, "#" + job.id),
          el("td", { "data-label": "Status" }, status(job.status)),
          el("td", { class: "num", "data-label": "Ended" }, when(job.completed_at)),
          el("td", { "data-label": "Why" }, job.error || (job.exit_code !== null ? "exit " + job.exit_code : ""))));
      }
    } catch (e) {
      say(e.message, true);
    }
  }
  load();
  ticking = setInterval(refreshProgress, 2000);
  return {
    onEvent(kind) {
      if (!kind.startsWith("job.")) return;
      clearTimeout(reloading);
      reloading = setTimeout(load, 150);
    },
    unmount() { clearTimeout(reloading); clearInterval(ticking); },
  };
}

/** A live job's status; between two runs nothing records, and it says so
 * and when the next run starts. */
function jobStatus(job) {
  if (job.status !== "running" || !job.restart_at) return status(job.status);
  return el("span", { class: "status stopping" }, "restarting at " + when(job.restart_at));
}

/** What a running recorder reported last: written, media time, bitrate,
 * and how long ago data last came, flagged after 5 s. */
function progressOf(job) {
  const p = job.progress;
  if (!p) return "–";
  const parts = [size(p.bytes_written), duration(p.media_seconds)];
  if (p.bitrate_kbps !== null) parts.push(Math.round(p.bitrate_kbps) + " kb/s");
  const age = p.last_data_at ? (Date.now() - new Date(p.last_data_at)) / 1000 : null;
  if (age === null) return el("span", { class: "status stopping" }, parts.join(" · ") + " · no data yet");
  if (age > 5) return el("span", { class: "status stopping" }, parts.join(" · ") + ` · no data for ${Math.round(age)} s`);
  return parts.join(" · ");
}
