// Drives the recorderd dashboard in headless Chromium: start a job from the
// form, see it running without reloading, stop it, see it end, press
// cleanup. Usage: node dashboard.mjs <base-url> <screenshot.png>
import { chromium } from "playwright-core";

const [base, screenshot] = process.argv.slice(2);
if (!base || !screenshot) {
  console.error("usage: node dashboard.mjs <base-url> <screenshot.png>");
  process.exit(2);
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
  ],
});
try {
  const page = await browser.newPage({ viewport: { width: 1100, height: 800 } });
  page.setDefaultTimeout(15000);
  await page.goto(base + "/");
  await page.locator("#connection", { hasText: "live" }).waitFor();
  // The node serving the page is listed, alive under its lease.
  await page.locator("#nodes .status.alive").first().waitFor();

  // Start from the form, with the keyboard-reachable labelled fields.
  await page.getByLabel("Source URL").fill("test://dashboard");
  await page.getByLabel("Title").fill("From the browser");
  await page.getByLabel("Profile").fill("test");
  await page.getByRole("button", { name: "Start" }).click();
  const message = page.getByRole("status").filter({ hasText: /Started job #\d+/ });
  await message.waitFor();
  const started = await message.textContent();
  const id = Number((started.match(/#(\d+)/) || [])[1]);
  if (!id) throw new Error("no job started: " + started);

  // Running, without a reload.
  const row = page.locator("#job-" + id);
  await row.locator(".status.running").waitFor();
  await page.locator("#active-count", { hasText: "1 active" }).waitFor();
  await page.screenshot({ path: screenshot.replace(/\.png$/, "-running.png"), fullPage: true });

  // Stop it; the event stream moves it to the ended list.
  await page.getByRole("button", { name: "Stop job " + id }).click();
  await page.locator("#ended-" + id + " .status.completed").waitFor();
  await page.locator("#active-count", { hasText: "0 active" }).waitFor();

  await page.getByRole("button", { name: "Clean up stale jobs" }).click();
  await page.getByRole("status").filter({ hasText: "0 job(s) updated" }).waitFor();

  await page.screenshot({ path: screenshot, fullPage: true });
  console.log(JSON.stringify({ ok: true, job: id, screenshot }));
} finally {
  await browser.close();
}
