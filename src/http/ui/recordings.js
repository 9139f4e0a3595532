// The recordings view: the start form, search and filters, and a page of
// recordings (title first, then where from, status, start, duration, size,
// node), kept current by the event stream. A search shows where its words
// were said; a passage opens the recording at that moment.

import { get, post, listProfiles } from "./api.js";
import { el, duration, size, when, host, status, secondsBetween } from "./format.js";

const PAGE_SIZE = 25;
const STATUSES = ["recording", "processing", "ready", "failed"];

export function mount(main, params, { say, navigate }) {
  const filters = {
    q: params.q || "",
    status: params.status || "",
    profile: params.profile || "",
    page: Math.max(1, Number(params.page) || 1),
  };
  const heading = el("h1", { id: "view-title" }, "Recordings");
  const summary = el("p", { class: "muted", id: "recordings-summary", "aria-live": "polite" });
  const rows = el("tbody", { id: "recordings" });
  const pager = el("nav", { class: "pager", "aria-label": "Pages" });
  main.append(
    heading,
    startForm(say),
    filterForm(filters, navigate),
    summary,
    el("table", { class: "cards" },
      el("thead", {}, el("tr", {},
        ["Title", "Status", "Started", "Duration", "Size", "Node", ""].map((h) => el("th", { scope: "col" }, h)))),
      rows),
    pager,
  );

  let live = [];
  let reloading = null;
  async function load() {
    const query = new URLSearchParams({ page: filters.page, page_size: PAGE_SIZE });
    for (const key of ["q", "status", "profile"]) if (filters[key]) query.set(key, filters[key]);
    try {
      const data = await get("/api/recordings/?" + query);
      live = render(data, rows, filters, say);
      summary.textContent = filters.q
        ? `${data.count} recording(s) with “${filters.q}”`
        : `${data.count} recording(s)`;
      renderPager(pager, data, filters, navigate);
    } catch (e) {
      say(e.message, true);
    }
  }
  load();

  // Durations of recordings in progress count up without asking the server.
  const ticker = setInterval(() => {
    for (const { cell, started } of live) cell.textContent = duration(secondsBetween(started));
  }, 1000);
  return {
    onEvent() {
      clearTimeout(reloading);
      reloading = setTimeout(load, 250);
    },
    unmount() {
      clearInterval(ticker);
      clearTimeout(reloading);
    },
  };
}

function startForm(say) {
  const profile = el("select", { name: "profile", id: "profile" });
  const form = el("form", { class: "grid", id: "start-form" },
    el("label", {}, "Source URL", el("input", { name: "source", id: "source", required: true, placeholder: "rtmp://host/app/stream", autocomplete: "off" })),
    el("label", {}, "Title", el("input", { name: "title", id: "title", autocomplete: "off", maxlength: 200 })),
    el("label", {}, "Profile", profile),
    el("label", {}, "Duration (s)", el("input", { name: "duration", id: "duration", type: "number", min: 1, max: 604800, inputmode: "numeric" })),
    el("button", { class: "primary", type: "submit" }, "Start"),
  );
  listProfiles().then((list) => {
    for (const p of list.profiles) {
      const label = p.name + (p.default ? " (default)" : "") + " · " + p.allowed_schemes.join(", ");
      profile.append(el("option", { value: p.name, selected: p.default }, label));
    }
  }).catch((e) => say("Profiles: " + e.message, true));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const body = { source: form.source.value.trim(), profile: form.profile.value };
    if (form.title.value.trim()) body.title = form.title.value.trim();
    if (form.duration.value) body.duration_seconds = Number(form.duration.value);
    try {
      const data = await post("/api/recordings/jobs/start/", body);
      say(`Started “${data.recording.title}” (job #${data.job.id})`);
      form.source.value = ""; form.title.value = ""; form.duration.value = "";
    } catch (err) {
      say(err.message, true);
    }
  });
  return el("details", { class: "panel", open: true },
    el("summary", {}, "Start a recording"), form);
}

function filterForm(filters, navigate) {
  const statusSelect = el("select", { name: "status", id: "filter-status" },
    el("option", { value: "" }, "Any status"),
    STATUSES.map((s) => el("option", { value: s, selected: filters.status === s }, s)));
  const profileSelect = el("select", { name: "profile", id: "filter-profile" },
    el("option", { value: "" }, "Any profile"));
  listProfiles().then((list) => {
    for (const p of list.profiles) profileSelect.append(el("option", { value: p.name, selected: filters.profile === p.name }, p.name));
  }).catch(() => {});
  const form = el("form", { class: "grid", role: "search", id: "search-form" },
    el("label", {}, "Search titles and what was said",
      el("input", { type: "search", name: "q", id: "search", value: filters.q, placeholder: "words, \"a phrase\", -without", maxlength: 500 })),
    el("label", {}, "Status", statusSelect),
    el("label", {}, "Profile", profileSelect),
    el("button", { type: "submit" }, "Search"),
  );
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const query = new URLSearchParams();
    for (const key of ["q", "status", "profile"]) {
      const value = form[key].value.trim();
      if (value) query.set(key, value);
    }
    navigate("#/?" + query);
  });
  for (const select of [statusSelect, profileSelect]) select.addEventListener("change", () => form.requestSubmit());
  return el("section", { "aria-label": "Search and filters", class: "filters" }, form);
}

/** Fills the table; returns the rows whose duration counts up. */
function render(data, rows, filters, say) {
  rows.replaceChildren();
  const live = [];
  if (data.recordings.length === 0) {
    rows.append(el("tr", {}, el("td", { colspan: 7, class: "muted" },
      filters.q ? "Nothing said or titled like that." : "No recording yet: start one above.")));
  }
  for (const r of data.recordings) {
    const link = "#/recordings/" + r.id;
    const titleCell = el("td", { class: "title-cell", "data-label": "Title" },
      el("a", { href: link }, r.title), el("span", { class: "id" }, "#" + r.id),
      el("div", { class: "muted" }, host(r.source) + " · " + r.profile));
    if (r.matches && r.matches.length) {
      titleCell.append(el("ul", { class: "passages", "aria-label": "Where it was said" },
        r.matches.map((m) => el("li", {},
          el("a", { href: link + "?t=" + m.start_seconds, "aria-label": `Play “${r.title}” from ${duration(m.start_seconds)}: ${m.text}` },
            el("time", {}, "▶ " + duration(m.start_seconds)), m.text)))));
    }
    const durationCell = el("td", { class: "num", "data-label": "Duration" }, duration(r.duration_seconds));
    const recording = r.status === "recording";
    if (recording && r.started_at) live.push({ cell: durationCell, started: r.started_at });
    const action = el("td", { "data-label": "" });
    if (recording && r.job_id && r.job_status === "running") {
      action.append(el("button", {
        type: "button", "aria-label": `Stop “${r.title}”`,
        onclick: async (e) => {
          e.target.disabled = true;
          try { await post("/api/recordings/jobs/stop/", { job_id: r.job_id }); say(`Stopping “${r.title}”`); }
          catch (err) { say(err.message, true); e.target.disabled = false; }
        },
      }, "Stop"));
    }
    rows.append(el("tr", { id: "recording-" + r.id },
      titleCell,
      el("td", { "data-label": "Status" }, status(r.status)),
      el("td", { class: "num", "data-label": "Started" }, when(r.started_at || r.created_at)),
      durationCell,
      el("td", { class: "num", "data-label": "Size" }, size(r.size_bytes)),
      el("td", { "data-label": "Node" }, r.node || "–"),
      action));
  }
  return live;
}

function renderPager(pager, data, filters, navigate) {
  pager.replaceChildren();
  const pages = Math.max(1, Math.ceil(data.count / data.page_size));
  if (pages === 1) return;
  const go = (page) => {
    const query = new URLSearchParams();
    for (const key of ["q", "status", "profile"]) if (filters[key]) query.set(key, filters[key]);
    query.set("page", page);
    navigate("#/?" + query);
  };
  pager.append(
    el("button", { type: "button", disabled: data.page <= 1, onclick: () => go(data.page - 1) }, "← Previous"),
    el("span", {}, `Page ${data.page} of ${pages}`),
    el("button", { type: "button", disabled: data.page >= pages, onclick: () => go(data.page + 1) }, "Next →"),
  );
}
