// The schedules view: every schedule with its state and next slot, pause,
// resume and delete, and a form creating one (once at a local date and
// time, or on a cron pattern in a time zone). Read again on schedule events
// and every few seconds, as next slots move on by themselves.

import { get, post, remove, listProfiles } from "./api.js";
import { el, when, status, duration } from "./format.js";

/** How often the list is read again while the view is shown. */
const REFRESH_MS = 5000;

export function mount(main, _params, { say, confirm }) {
  const rows = el("tbody", { id: "schedules" });
  main.append(
    el("h1", { id: "view-title" }, "Schedules"),
    createForm(say, () => load()),
    el("table", { class: "cards" },
      el("thead", {}, el("tr", {}, ["#", "Title", "When", "Length", "State", "Next", ""].map((h) => el("th", { scope: "col" }, h)))),
      rows),
  );

  async function load() {
    let data;
    try { data = await get("/api/recordings/schedules/"); } catch (e) { say(e.message, true); return; }
    rows.replaceChildren();
    for (const s of data.schedules) {
      rows.append(el("tr", { id: "schedule-" + s.id },
        el("td", { class: "num", "data-label": "#" }, "#" + s.id),
        el("td", { class: "title-cell", "data-label": "Title" }, s.title),
        el("td", { "data-label": "When" }, s.cron ? `${s.cron} (${s.time_zone})` : when(s.start_at)),
        el("td", { class: "num", "data-label": "Length" }, duration(s.duration_seconds)),
        el("td", { "data-label": "State" }, status(s.state)),
        el("td", { class: "num next-firing", "data-label": "Next" }, when(s.next_firing)),
        el("td", { "data-label": "" }, actions(s))));
    }
  }

  function actions(s) {
    const buttons = [];
    if (s.state !== "finished") {
      const paused = s.state === "paused";
      const label = paused ? "Resume" : "Pause";
      buttons.push(el("button", {
        type: "button", "aria-label": `${label} schedule “${s.title}”`,
        onclick: async () => {
          try {
            await post(`/api/recordings/schedules/${s.id}/${paused ? "resume" : "pause"}/`);
            say(`${paused ? "Resumed" : "Paused"} schedule #${s.id}`);
            load();
          } catch (e) { say(e.message, true); }
        },
      }, label));
    }
    buttons.push(el("button", {
      type: "button", class: "danger", "aria-label": `Delete schedule “${s.title}”`,
      onclick: async () => {
        const yes = await confirm("Delete this schedule?", `“${s.title}” will fire no more; its recordings stay.`, "Delete");
        if (!yes) return;
        try {
          await remove(`/api/recordings/schedules/${s.id}/`);
          say(`Deleted schedule #${s.id}`);
          load();
        } catch (e) { say(e.message, true); }
      },
    }, "Delete"));
    return buttons;
  }

  load();
  const timer = setInterval(load, REFRESH_MS);
  return {
    unmount() { clearInterval(timer); },
    onEvent(kind) { if (kind.startsWith("schedule.")) load(); },
  };
}

/** Once at a local date and time, or a cron pattern in a time zone. */
function createForm(say, created) {
  const profile = el("select", { name: "profile", id: "schedule-profile" });
  const kind = el("select", { name: "kind", id: "schedule-kind" },
    el("option", { value: "cron" }, "Repeating (cron)"),
    el("option", { value: "once" }, "Once"));
  const zone = Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
  const cronFields = [
    el("label", {}, "Cron pattern", el("input", { name: "cron", id: "schedule-cron", placeholder: "0 8 * * MON-FRI", autocomplete: "off", maxlength: 255 })),
    el("label", {}, "Time zone", el("input", { name: "time_zone", id: "schedule-zone", value: zone, autocomplete: "off", maxlength: 64 })),
  ];
  const onceFields = [
    el("label", {}, "Starts at", el("input", { name: "start_at", id: "schedule-at", type: "datetime-local", step: 1 })),
  ];
  const form = el("form", { class: "grid", id: "schedule-form" },
    el("label", {}, "Source URL", el("input", { name: "source", id: "schedule-source", required: true, placeholder: "https://radio.example/live.mp3", autocomplete: "off" })),
    el("label", {}, "Title", el("input", { name: "title", id: "schedule-title", autocomplete: "off", maxlength: 200 })),
    el("label", {}, "Profile", profile),
    el("label", {}, "Kind", kind),
    cronFields, onceFields,
    el("label", {}, "Duration (s)", el("input", { name: "duration", id: "schedule-duration", type: "number", min: 1, max: 604800, required: true, inputmode: "numeric" })),
    el("button", { class: "primary", type: "submit" }, "Schedule"),
  );
  // Shown through `style`: labels are grids, which `hidden` would not hide.
  const showKind = () => {
    const once = kind.value === "once";
    for (const f of cronFields) f.style.display = once ? "none" : "";
    for (const f of onceFields) f.style.display = once ? "" : "none";
  };
  kind.addEventListener("change", showKind);
  showKind();
  listProfiles().then((list) => {
    for (const p of list.profiles) profile.append(el("option", { value: p.name, selected: p.default }, p.name));
  }).catch((e) => say("Profiles: " + e.message, true));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const body = {
      source: form.source.value.trim(),
      profile: form.profile.value,
      duration_seconds: Number(form.duration.value),
    };
    if (form.title.value.trim()) body.title = form.title.value.trim();
    if (kind.value === "once") {
      // A local date and time, as the reader's clock shows it.
      const at = new Date(form.start_at.value);
      if (isNaN(at)) { say("Give the date and time to start at", true); return; }
      body.start_at = at.toISOString();
    } else {
      body.cron = form.cron.value.trim();
      body.time_zone = form.time_zone.value.trim();
    }
    try {
      const data = await post("/api/recordings/schedules/", body);
      say(`Scheduled “${data.title}” (#${data.id})` + (data.next_firing ? `, next at ${when(data.next_firing)}` : ""));
      form.source.value = ""; form.title.value = "";
      created();
    } catch (err) {
      say(err.message, true);
    }
  });
  return el("details", { class: "panel", open: true },
    el("summary", {}, "Schedule a recording"), form);
}
