// The dashboard: a router over the URL's fragment (`#/`, `#/recordings/7`,
// `#/jobs`, `#/schedules`, `#/nodes`), one event stream whose transitions it hands to the view on
// screen, and what every view shares: the status line and a confirmation
// dialog. Plain modules, served by recorderd itself: no build step.

import { eventStream } from "./api.js";
import * as recordings from "./recordings.js";
import * as recording from "./recording.js";
import * as jobs from "./jobs.js";
import * as nodes from "./nodes.js";
import * as schedules from "./schedules.js";

const main = document.getElementById("main");
const message = document.getElementById("message");
let current = null;

/** How long news stays in the status line; errors stay until replaced. */
const NEWS_MS = 8000;
let fading = null;

/** Says something in the status line (announced to screen readers). */
export function say(text, isError = false) {
  clearTimeout(fading);
  message.textContent = text;
  message.className = isError ? "error" : "";
  if (text && !isError) fading = setTimeout(() => { message.textContent = ""; }, NEWS_MS);
}

/** Asks before something that cannot be undone; true when confirmed. */
export function confirm(title, text, action) {
  const dialog = document.getElementById("confirm");
  document.getElementById("confirm-title").textContent = title;
  document.getElementById("confirm-text").textContent = text;
  document.getElementById("confirm-yes").textContent = action;
  dialog.returnValue = "";
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "confirm"), { once: true });
    dialog.showModal();
  });
}

/** What the next page says when it is shown (see `navigate`). */
let note = "";

/** Goes to a route, e.g. `#/recordings/7`, saying `message` there. */
export function navigate(hash, message = "") {
  note = message;
  if (location.hash === hash) { say(note); note = ""; route(); }
  else location.hash = hash;
}

/** The view for the current fragment and its parameters. */
function resolve() {
  const [path, query] = (location.hash.replace(/^#/, "") || "/").split("?");
  const params = Object.fromEntries(new URLSearchParams(query || ""));
  const one = path.match(/^\/recordings\/(\d+)$/);
  if (one) return { view: recording, name: "recordings", params: { ...params, id: Number(one[1]) } };
  if (path === "/jobs") return { view: jobs, name: "jobs", params };
  if (path === "/nodes") return { view: nodes, name: "nodes", params };
  if (path === "/schedules") return { view: schedules, name: "schedules", params };
  return { view: recordings, name: "recordings", params };
}

function route() {
  if (current && current.unmount) current.unmount();
  const { view, name, params } = resolve();
  for (const link of document.querySelectorAll("[data-nav]")) {
    if (link.dataset.nav === name) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  main.replaceChildren();
  current = view.mount(main, params, { say, confirm, navigate });
}

function follow() {
  const events = eventStream();
  const state = document.getElementById("connection");
  events.onopen = () => { state.textContent = "live"; };
  events.onerror = () => { state.textContent = "reconnecting…"; };
  const kinds = [
    "job.started", "job.stopping", "job.restarting", "job.restarted", "job.completed", "job.failed",
    "recording.processing", "recording.ready", "recording.failed",
    "schedule.created", "schedule.fired", "schedule.missed",
  ];
  for (const kind of kinds) {
    events.addEventListener(kind, (e) => {
      if (current && current.onEvent) current.onEvent(kind, JSON.parse(e.data));
    });
  }
}

let shownPath = location.hash.split("?")[0];
window.addEventListener("hashchange", () => {
  say(note);
  note = "";
  route();
  // A new page, not new filters on this one: reading starts at its top.
  const path = location.hash.split("?")[0];
  if (path !== shownPath) main.focus({ preventScroll: false });
  shownPath = path;
});
follow();
route();
