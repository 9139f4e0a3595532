// A recorder's log on the page, followed while its recorder runs: the end
// of it first, then what is written after, read from where the last read
// stopped (`offset` → `next_offset`). One read at a time, so no stretch is
// shown twice.

import { get } from "./api.js";
import { el } from "./format.js";

const TAIL_BYTES = 64 * 1024;
const READ_BYTES = 256 * 1024;
const EVERY_MS = 1000;

export function followLog(section, job, say) {
  const pre = el("pre", { class: "log", id: "log", tabindex: 0, "aria-label": `Log of job #${job.id}` });
  const state = el("span", { class: "muted", id: "log-state" });
  section.replaceChildren(el("h2", { id: "log-title" }, "Recorder log ", state), pre);
  let next = null;       // where the next read starts; null before the first
  let live = false;      // whether the recorder still writes
  let reading = false;
  let again = false;     // a read was asked for while one ran
  let timer = null;
  let stopped = false;

  function schedule(ms) {
    clearTimeout(timer);
    timer = setTimeout(read, ms);
  }

  async function read() {
    if (stopped) return;
    if (reading) { again = true; return; }
    reading = true;
    let brought = false;
    const path = next === null
      ? `/api/recordings/jobs/${job.id}/log/?bytes=${TAIL_BYTES}`
      : `/api/recordings/jobs/${job.id}/log/?offset=${next}&bytes=${READ_BYTES}`;
    try {
      const data = await get(path);
      // At the bottom, stay at the bottom as lines arrive.
      const atEnd = pre.scrollHeight - pre.scrollTop - pre.clientHeight < 24;
      if (next === null && data.truncated) pre.append("…\n");
      // ffmpeg rewrites its progress line with carriage returns: one per line here.
      if (data.content) { pre.append(data.content.replace(/\r(?!\n)/g, "\n")); brought = true; }
      next = data.next_offset;
      if (atEnd) pre.scrollTop = pre.scrollHeight;
    } catch (e) {
      if (e.status === 404) stopped = true;
      else say("Log: " + e.message, true);
    }
    reading = false;
    if (stopped) return;
    // A full read is followed at once; an ended recorder's log is read
    // until a read brings nothing.
    if (again || (brought && !live)) { again = false; schedule(0); }
    else if (live) schedule(EVERY_MS);
  }
  read();

  return {
    jobId: job.id,
    setLive(value) {
      if (value === live) return;
      live = value;
      state.textContent = live ? "(following)" : "";
      // Started: follow. Ended: one more read for its last lines.
      schedule(live ? EVERY_MS : 0);
    },
    stop() { stopped = true; clearTimeout(timer); },
  };
}
