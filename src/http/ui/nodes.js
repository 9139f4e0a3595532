// The nodes view: every node of the deployment, whether it holds its lease
// (alive), is draining or is gone, its jobs against its capacity and its
// processing slots, with drain and resume for rolling upgrades. Nodes have
// no events of their own: the table is read again every few seconds.

import { get, api } from "./api.js";
import { el, when, status } from "./format.js";

/** How often the nodes are read again while the view is shown. */
const REFRESH_MS = 5000;

export function mount(main, _params, { say }) {
  const rows = el("tbody", { id: "nodes" });
  main.append(
    el("h1", { id: "view-title" }, "Nodes"),
    el("table", { class: "cards" },
      el("thead", {}, el("tr", {}, ["Node", "Status", "Jobs", "Processing", "Lease since", ""].map((h) => el("th", { scope: "col" }, h)))),
      rows),
  );

  async function load() {
    let data;
    try { data = await get("/api/nodes/"); } catch (e) { say(e.message, true); return; }
    rows.replaceChildren();
    for (const node of data.nodes) {
      const labels = node.labels.length ? ` (${node.labels.join(", ")})` : "";
      rows.append(el("tr", { id: "node-" + node.id },
        el("td", { "data-label": "Node" }, node.id + labels),
        el("td", { "data-label": "Status" }, status(node.status)),
        el("td", { class: "num", "data-label": "Jobs" }, `${node.jobs} / ${node.max_jobs}`),
        el("td", { class: "num", "data-label": "Processing" }, `${node.processing_busy} / ${node.processing_slots}`),
        el("td", { class: "num", "data-label": "Lease since" }, when(node.lease_held_since)),
        el("td", { "data-label": "" }, drainButton(node))));
    }
  }

  /** Drain (no new jobs, running ones finish) or resume a live node. */
  function drainButton(node) {
    if (node.status !== "alive" && node.status !== "draining") return "";
    const draining = node.status === "draining";
    const label = draining ? "Resume" : "Drain";
    return el("button", {
      type: "button", "aria-label": `${label} node ${node.id}`,
      onclick: async () => {
        try {
          await api(draining ? "DELETE" : "POST", `/api/nodes/${encodeURIComponent(node.id)}/drain/`);
          say(`${draining ? "Resumed" : "Draining"} node ${node.id}`);
          load();
        } catch (e) { say(e.message, true); }
      },
    }, label);
  }

  load();
  const timer = setInterval(load, REFRESH_MS);
  return { unmount() { clearInterval(timer); } };
}
