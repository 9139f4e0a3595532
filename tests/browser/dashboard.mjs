// Drives the recorderd dashboard in headless Chromium through a recording's
// whole life, as a person would: start it from the form with a profile
// chosen from the list, see it appear with its title, follow its log, stop
// it, schedule it daily (listed with its next firing, paused, deleted),
// play it, read its transcript and captions, seek by a transcript line,
// find it by a word said, delete it. Screenshots at desktop and phone
// widths go to the artifacts directory.
//
// Usage: node dashboard.mjs <base-url> <artifacts-dir> <source-url>
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { chromium } from "playwright-core";

const [base, artifacts, source] = process.argv.slice(2);
if (!base || !artifacts || !source) {
  console.error("usage: node dashboard.mjs <base-url> <artifacts-dir> <source-url>");
  process.exit(2);
}
mkdirSync(artifacts, { recursive: true });
const TITLE = "Morning show";
const SCHEDULED = "Morning show, daily";
const step = (what) => console.error(new Date().toISOString(), what);

/** The API, from the test's side, for what a person would see but a test must wait for. */
async function api(path) {
  const response = await fetch(base + path);
  if (!response.ok) throw new Error(`${path}: HTTP ${response.status}`);
  return response.json();
}

async function until(what, probe, timeoutMs = 60000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value) return value;
    if (Date.now() > deadline) throw new Error("timed out waiting for " + what);
    await new Promise((r) => setTimeout(r, 250));
  }
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--autoplay-policy=no-user-gesture-required", "--mute-audio",
  ],
});
const problems = [];
try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  page.setDefaultTimeout(20000);
  page.on("pageerror", (e) => problems.push("page error: " + e.message));
  page.on("console", (m) => { if (m.type() === "error") problems.push("console: " + m.text()); });

  step("open the dashboard");
  await page.goto(base + "/");
  await page.locator("#connection", { hasText: "live" }).waitFor();

  step("start from the form, the profile chosen from the list");
  const form = page.locator("#start-form");
  const profile = form.getByRole("combobox", { name: /Profile/ });
  await profile.locator("option[value=ffmpeg]").waitFor({ state: "attached" });
  const offered = await profile.locator("option").evaluateAll((o) => o.map((x) => x.value));
  if (!offered.includes("ffmpeg") || offered.length < 2) throw new Error("profiles offered: " + offered);
  await form.getByLabel("Source URL").fill(source);
  await form.getByLabel("Title", { exact: true }).fill(TITLE);
  await profile.selectOption("ffmpeg");
  await form.getByRole("button", { name: "Start", exact: true }).click();
  await page.getByRole("status").filter({ hasText: `Started “${TITLE}”` }).waitFor();

  step("it appears with its title, recording, without a reload");
  const link = page.getByRole("link", { name: TITLE, exact: true });
  await link.waitFor();
  const row = page.locator("tr", { has: link });
  await row.locator(".status.recording").waitFor();
  const recordingId = Number((await link.getAttribute("href")).split("/").pop());

  step("the jobs view names it too");
  await page.getByRole("link", { name: "Jobs", exact: true }).click();
  await page.locator("#active-jobs").getByRole("link", { name: TITLE }).waitFor();
  // The node serving the page is listed, alive under its lease.
  await page.getByRole("link", { name: "Nodes", exact: true }).click();
  await page.locator("#nodes .status.alive").first().waitFor();

  step("schedule it daily from the schedules view; it is listed with its next firing");
  await page.getByRole("link", { name: "Schedules", exact: true }).click();
  const scheduleForm = page.locator("#schedule-form");
  await scheduleForm.getByRole("combobox", { name: /Profile/ }).locator("option[value=ffmpeg]").waitFor({ state: "attached" });
  await scheduleForm.getByLabel("Source URL").fill(source);
  await scheduleForm.getByLabel("Title", { exact: true }).fill(SCHEDULED);
  await scheduleForm.getByRole("combobox", { name: /Profile/ }).selectOption("ffmpeg");
  if (await scheduleForm.getByLabel("Starts at").isVisible()) throw new Error("a repeating schedule offers a start time");
  await scheduleForm.getByLabel("Cron pattern").fill("30 8 * * *");
  await scheduleForm.getByLabel("Time zone").fill("Europe/Paris");
  await scheduleForm.getByLabel("Duration (s)").fill("3600");
  await scheduleForm.getByRole("button", { name: "Schedule", exact: true }).click();
  await page.getByRole("status").filter({ hasText: `Scheduled “${SCHEDULED}”` }).waitFor();
  const scheduled = page.locator("#schedules tr", { hasText: SCHEDULED });
  await scheduled.locator(".status.active").waitFor();
  const next = (await api("/api/recordings/schedules/")).schedules.find((s) => s.title === SCHEDULED).next_firing;
  // 08:30 in Paris is 06:30 or 07:30 UTC, depending on the season.
  if (!/T0[67]:30:00Z$/.test(next)) throw new Error("next firing: " + next);
  const shown = (await scheduled.locator(".next-firing").textContent()).trim();
  if (!shown || shown === "–") throw new Error("the next firing is not shown: " + shown);
  await page.screenshot({ path: join(artifacts, "schedules.png"), fullPage: true });
  await scheduled.getByRole("button", { name: `Pause schedule “${SCHEDULED}”` }).click();
  await scheduled.locator(".status.paused").waitFor();
  await scheduled.getByRole("button", { name: `Delete schedule “${SCHEDULED}”` }).click();
  await page.getByRole("dialog").getByRole("button", { name: "Delete" }).click();
  await scheduled.waitFor({ state: "detached" });
  await page.getByRole("link", { name: "Recordings", exact: true }).click();

  step("its page follows the recorder's log");
  await page.getByRole("link", { name: TITLE, exact: true }).click();
  await page.getByRole("heading", { level: 1, name: new RegExp(TITLE) }).waitFor();
  await page.locator("#log-state", { hasText: "following" }).waitFor();
  // The built-in profile's progress goes to recorderd, not into the log:
  // the log shows ffmpeg opening its output, the job its live progress.
  await page.locator("#log", { hasText: "Output #0" }).waitFor({ timeout: 60000 });
  // Enough speech for a transcript: the job's progress shows 8 s recorded.
  await until("8 s recorded", async () => {
    const running = await (await fetch(base + "/api/recordings/jobs/?status=running")).json();
    return running.jobs.some((job) => (job.progress?.media_seconds ?? 0) >= 8);
  });
  await page.screenshot({ path: join(artifacts, "recording-live.png"), fullPage: true });

  step("stop it, confirming");
  await page.getByRole("button", { name: "Stop", exact: true }).click();
  const dialog = page.getByRole("dialog");
  await dialog.getByRole("button", { name: "Stop" }).click();
  await page.locator("#recording-header .status.processing, #recording-header .status.ready").first().waitFor();
  await page.locator("#recording-header .status.ready").waitFor({ timeout: 120000 });
  await page.locator("#log-state", { hasText: "following" }).waitFor({ state: "detached" }).catch(() => {});
  if (!/received signal 2|Exiting normally/.test(await page.locator("#log").textContent())) {
    throw new Error("the log did not follow to the recorder's end");
  }

  step("its transcript, as text and as a caption track");
  const cues = page.locator("#cues button");
  await cues.first().waitFor();
  const cueCount = await cues.count();
  const trackCues = await until("the caption track's cues", () => page.evaluate(() => {
    const video = document.getElementById("player");
    const track = video && [...video.textTracks].find((t) => t.kind === "captions");
    if (!track) return 0;
    if (track.mode === "disabled") track.mode = "hidden";
    return track.cues ? track.cues.length : 0;
  }), 20000);
  if (trackCues !== cueCount) throw new Error(`${trackCues} caption cues, ${cueCount} transcript lines`);

  step("the analysis, with the video's resolution and a still");
  await page.locator("#analysis", { hasText: "320×240" }).waitFor();
  await until("the still", () => page.evaluate(() => {
    const img = document.querySelector("img.thumb");
    return img && img.complete && img.naturalWidth > 0;
  }));
  await page.locator("#steps", { hasText: "transcribe" }).waitFor();

  step("play it in the page");
  await page.evaluate(() => document.getElementById("player").play());
  await until("currentTime > 1 s", () => page.evaluate(() => document.getElementById("player").currentTime > 1), 30000);
  const played = await page.evaluate(() => document.getElementById("player").currentTime);

  step("a transcript line seeks the player");
  const target = cueCount > 1 ? cues.nth(cueCount - 1) : cues.first();
  const start = Number(await target.getAttribute("data-start"));
  await page.evaluate(() => document.getElementById("player").pause());
  await target.click();
  await until("the player at the line", () => page.evaluate((s) => {
    const t = document.getElementById("player").currentTime;
    return t >= s - 0.3 && t < s + 3;
  }, start), 10000);
  await page.evaluate(() => document.getElementById("player").pause());
  await page.screenshot({ path: join(artifacts, "recording-desktop.png"), fullPage: true });
  // The first screen of the page, as the README shows it.
  await page.evaluate(() => window.scrollTo(0, 0));
  await page.screenshot({ path: join(artifacts, "recording.png") });

  step("the same page on a phone");
  const phone = await browser.newContext({ viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true });
  const small = await phone.newPage();
  await small.goto(`${base}/#/recordings/${recordingId}`);
  await small.locator("#cues button").first().waitFor();
  const overflow = await small.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  if (overflow > 1) throw new Error(`the phone layout scrolls sideways by ${overflow} px`);
  await small.screenshot({ path: join(artifacts, "recording-phone.png"), fullPage: true });
  await phone.close();

  step("search what was said; a passage plays from its time");
  const words = (await api(`/api/recordings/${recordingId}/transcript`)).segments
    .flatMap((s) => s.text.toLowerCase().split(/\W+/)).filter((w) => w.length > 3);
  if (words.length === 0) throw new Error("nothing was heard");
  const word = words[words.length - 1];
  await page.getByRole("link", { name: "Recordings", exact: true }).click();
  await page.getByLabel("Search titles and what was said").fill(word);
  await page.getByLabel("Search titles and what was said").press("Enter");
  const passage = page.locator(".passages a").first();
  await passage.waitFor();
  const at = Number(new URL(await passage.getAttribute("href"), base).hash.split("t=")[1]);
  await page.screenshot({ path: join(artifacts, "search.png"), fullPage: true });
  await passage.click();
  await until("the player at the passage", () => page.evaluate((s) => {
    const video = document.getElementById("player");
    return video && video.currentTime >= s - 0.3 && video.currentTime < s + 5;
  }, at), 30000);

  step("delete it, confirming");
  await page.evaluate(() => document.getElementById("player").pause());
  await page.getByRole("button", { name: "Delete", exact: true }).click();
  await page.getByRole("dialog").getByRole("button", { name: "Delete" }).click();
  await page.getByRole("status").filter({ hasText: `Deleted “${TITLE}”` }).waitFor();
  await page.getByRole("heading", { level: 1, name: "Recordings" }).waitFor();
  await page.getByRole("link", { name: TITLE, exact: true }).waitFor({ state: "detached" });

  if (problems.length) throw new Error("the page reported problems:\n" + problems.join("\n"));
  console.log(JSON.stringify({ ok: true, recording: recordingId, played, cues: cueCount, searched: word, passage_at: at }));
} finally {
  await browser.close();
}
