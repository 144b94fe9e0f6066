// A new user, end to end: a fresh workspace folder holding one training config (test/e2e/fixture/demo.basin.yaml,
// the demo with 240 steps and statistics every 10 steps). Open the config, click the "▶ Train" code lens, see the
// progress notification and the status-bar item, open the statistics panel from the "Open last run's statistics"
// lens and watch it update live, Cancel from the notification, find the run "cancelled" in the Runs view, resume
// it from the "↻ Resume from step n" lens to completion, and expand the Runs tree down to a checkpoint's tensors.
// Screenshots 10-… to 15-… go to test-results/e2e/.
import { copyFileSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as assert from 'node:assert/strict';

const here = dirname(fileURLToPath(import.meta.url));
const CONFIG = 'demo.basin.yaml';
// More steps than the fixture's 240: with the kernels compiled while the config is shown (the warm-up), 240 steps
// end before the test gets to Cancel them, and since Dawn's polls are paced (2026-12-03) 480 did once too.
const TOTAL_STEPS = 960;
const state = {};

export async function prepare({ workspace }) {
  // A folder of its own (not the other tests' workspace): what a new user has, a config and nothing else.
  state.folder = join(dirname(workspace), 'new-user');
  mkdirSync(state.folder, { recursive: true });
  writeFileSync(join(state.folder, CONFIG), readFileSync(join(here, 'fixture', CONFIG), 'utf8').replace(/^(\s*)steps: 240$/m, `$1steps: ${TOTAL_STEPS}`));
  writeFileSync(join(state.folder, 'README.md'), '# My first model\n');
}

/**
 * A notification, as a toast or in the notification center. (Under the smoke-test driver, which the e2e tier needs
 * to load the extension from source, the workbench shows no toasts at all: notifications go to the center only,
 * so the test opens it. test/e2e/vsix.e2e.mjs sees real toasts.)
 */
const toast = (page, text) => page.locator('.notifications-toasts .notification-list-item, .notifications-center .notification-list-item', { hasText: text }).first();

async function showNotifications(t) {
  if (await t.page.locator('.notifications-center.visible').isVisible().catch(() => false)) return;
  await t.wb.runCommand(t.page, 'Notifications: Show Notifications');
  await t.page.locator('.notifications-center.visible').waitFor({ state: 'visible', timeout: 10_000 });
}
const lens = (page, text) => page.locator('.codelens-decoration a', { hasText: text }).first();
/** The job's status-bar item: "$(loading~spin) demo step 40/240 · loss … · … steps/s". */
const statusItem = (page) => page.locator('.statusbar-item', { hasText: /step \d+\/\d+/ }).first();
/** A row of the Runs view (the Basin side bar), by its text. */
const runsRow = (page, text) => page.locator('.pane-body .monaco-list-row', { hasText: text }).first();

async function runDirs() {
  try {
    return readdirSync(join(state.folder, 'runs')).filter((d) => d.startsWith('demo-'));
  } catch {
    return [];
  }
}

function runJson() {
  if (!state.runName) throw new Error('no run folder is known: the test that starts training failed before it appeared');
  return JSON.parse(readFileSync(join(state.folder, 'runs', state.runName, 'run.json'), 'utf8'));
}

async function showBasinSideBar(t) {
  const icon = t.page.locator('.activitybar .action-item a[aria-label^="Basin"]').first();
  await icon.waitFor({ state: 'visible', timeout: 30_000 });
  // Clicking the icon of the visible container hides the side bar: only click when Basin is not showing.
  const shown = await t.page.locator('.sidebar .composite.title', { hasText: /basin/i }).isVisible().catch(() => false);
  if (!shown) await icon.click();
  await t.page.locator('.pane-header', { hasText: 'Runs' }).first().waitFor({ state: 'visible', timeout: 15_000 });
}

/** Expands a tree row if it is collapsed (aria-expanded="false"). */
async function expand(row) {
  await row.waitFor({ state: 'visible', timeout: 20_000 });
  if ((await row.getAttribute('aria-expanded')) === 'false') await row.click();
  await row.page().waitForFunction((el) => el.getAttribute('aria-expanded') === 'true', await row.elementHandle(), { timeout: 10_000 });
}

export const tests = [
  {
    name: 'new user: opens a config and trains from the ▶ Train lens (notification, status bar)',
    async fn(t) {
      const { page } = t;
      const url = new URL(t.url);
      url.searchParams.set('folder', state.folder);
      await page.goto(url.toString(), { waitUntil: 'domcontentloaded' });
      await t.wb.waitForWorkbench(page);
      await page.keyboard.press('Control+P');
      await t.wb.pickQuickItem(page, CONFIG, { timeout: 30_000 });
      await t.wb.editorTab(page, CONFIG).waitFor({ state: 'visible' });
      const train = lens(page, '▶ Train');
      await train.waitFor({ state: 'visible', timeout: 60_000 });
      // No run yet: no Resume and no statistics lens.
      assert.equal(await lens(page, 'Resume').count(), 0);
      assert.equal(await lens(page, "Open last run's statistics").count(), 0);
      await t.screenshot('10-config-with-train-lens');

      state.trainClickedAt = Date.now();
      await train.click();
      // A cold worker compiles every kernel before the first step (~20 s on lavapipe): the status bar says so
      // (the warm-up that started when the config was shown may already hold the GPU: the same notice).
      const compiling = page.locator('.statusbar-item', { hasText: /compiling GPU kernels/ }).first();
      if (await compiling.waitFor({ state: 'visible', timeout: 15_000 }).then(() => true, () => false)) {
        // The notice can be gone by the next line (the first step started): read it without waiting.
        const text = await compiling.textContent({ timeout: 1_000 }).catch(() => null);
        t.log(`status bar: ${text?.trim() ?? '(the notice had gone already)'} (${Date.now() - state.trainClickedAt} ms after the click)`);
        await t.screenshot('11a-compiling-kernels-status-bar');
      } else {
        t.log('no "compiling GPU kernels" notice (the kernels were compiled already)');
      }
      await statusItem(page).waitFor({ state: 'visible', timeout: 90_000 });
      // The run folder exists once steps are reported; later tests need its name even if a check below fails.
      const dirs = await runDirs();
      assert.equal(dirs.length, 1, `one run folder: ${dirs.join(', ')}`);
      state.runName = dirs[0];
      await showNotifications(t);
      await toast(page, 'Basin: training demo').waitFor({ state: 'visible', timeout: 30_000 });
      const bar = await statusItem(page).textContent();
      t.log(`status bar: ${bar?.trim()} (${Date.now() - state.trainClickedAt} ms after the click)`);
      assert.match(bar, new RegExp(`demo.*step \\d+/${TOTAL_STEPS}`));
      assert.match(await toast(page, 'Basin: training demo').textContent(), new RegExp(`step \\d+/${TOTAL_STEPS}`));
      assert.equal(await toast(page, 'Basin: training demo').locator('.monaco-button', { hasText: 'Cancel' }).isVisible(), true, 'the notification offers Cancel');
      await t.screenshot('11-training-notification-and-status-bar');
    },
  },
  {
    name: "new user: opens the running run's statistics from the lens and sees live updates",
    async fn(t) {
      const { page } = t;
      const open = lens(page, "Open last run's statistics");
      await open.waitFor({ state: 'visible', timeout: 30_000 });
      await open.click();
      await t.wb.editorTab(page, `Statistics: ${state.runName}`).waitFor({ state: 'visible', timeout: 20_000 });
      const frame = await t.wb.waitForWebview(page, 'body[data-ready="true"]', { timeout: 60_000 });
      const d0 = await t.wb.webviewData(frame);
      t.log(`statistics panel: ${d0.layers} layers, first paint ${Number(d0.firstPaintMs).toFixed(0)} ms, ${d0.updates ?? 0} updates`);
      assert.ok(Number(d0.layers) > 0, `layers ${d0.layers}`);
      // Live: the update count grows while the job runs.
      const u0 = Number(d0.updates ?? 0);
      const t0 = Date.now();
      let d = d0;
      while (Number(d.updates ?? 0) < u0 + 3 && Date.now() - t0 < 30_000) {
        await page.waitForTimeout(250);
        d = await t.wb.webviewData(frame);
      }
      const running = runJson().status === 'running';
      t.log(`live updates: ${u0} → ${d.updates} in ${Date.now() - t0} ms (run ${running ? 'still running' : runJson().status})`);
      assert.ok(Number(d.updates ?? 0) >= u0 + 3, `the panel took ${Number(d.updates ?? 0) - u0} updates in 30 s`);
      assert.ok(running, 'the job is still running (it must be, for Cancel next)');
      assert.equal(await frame.locator('.live').isVisible(), true, 'the live indicator shows');
      assert.equal(d.errors, undefined, `the webview reported errors: ${d.lastError}`);
      await t.screenshot('12-live-statistics');
      // The layer table with the side bar closed: the Layer column takes the width the numbers do not need.
      await t.wb.runCommand(page, 'View: Toggle Primary Side Bar Visibility');
      await frame.locator('vscode-tab-header[data-tab="layers"]').click();
      await frame.locator('.lt-rows .lt-row').first().waitFor({ state: 'visible' });
      await page.waitForTimeout(400);
      // Text and title read in one evaluation: live updates re-sort the rows between two separate reads.
      const name = frame.locator('.lt-rows .lt-row .lt-name').first();
      const [shown, full] = await name.evaluate((el) => [el.textContent, el.getAttribute('title')]);
      assert.equal(shown, full, `the whole layer name shows in a wide table (${shown} for ${full})`);
      await t.screenshot('12-live-layer-table');
      await frame.locator('vscode-tab-header[data-tab="overview"]').click();
      await t.wb.runCommand(page, 'View: Toggle Primary Side Bar Visibility');
    },
  },
  {
    name: 'new user: cancels from the notification; the Runs view shows the run cancelled',
    async fn(t) {
      const { page } = t;
      await showNotifications(t);
      const note = toast(page, 'Basin: training demo');
      const cancel = note.locator('.monaco-button', { hasText: 'Cancel' });
      if (await cancel.isVisible().catch(() => false)) {
        // The toast's text changes at every step, so Playwright may never see its button "stable": after a short
        // wait for that, a click where the button is now (it moves by a few pixels at most).
        await cancel.click({ timeout: 5_000 }).catch(() => cancel.click({ force: true, timeout: 5_000 }));
      } else {
        // The toast went away (another notification or focus change hid it): the command does the same.
        t.log('the progress notification is not showing: Basin: Cancel Job instead');
        await t.wb.runCommand(page, 'Basin: Cancel Job');
      }
      // The job ends (the status-bar item goes) and says so in a notification of its own.
      await statusItem(page).waitFor({ state: 'hidden', timeout: 45_000 });
      await showNotifications(t);
      const ended = toast(page, /Basin: demo cancelled/);
      await ended.waitFor({ state: 'visible', timeout: 45_000 });
      const text = await ended.textContent();
      t.log(`notification: ${text}`);
      const m = /cancelled at step (\d+)/.exec(text);
      assert.ok(m, 'the notification says the step');
      state.cancelStep = Number(m[1]);
      assert.ok(state.cancelStep > 0 && state.cancelStep < TOTAL_STEPS, `cancelled at step ${state.cancelStep}`);
      assert.match(text, /Resume/, 'the notification offers Resume');
      assert.equal(runJson().status, 'cancelled');

      await showBasinSideBar(t);
      const row = runsRow(page, state.runName.replace(/^demo-/, '')).or(runsRow(page, 'demo'));
      await page.locator('.pane-body .monaco-list-row', { hasText: 'cancelled' }).first().waitFor({ state: 'visible', timeout: 20_000 });
      assert.match(await row.first().textContent(), /cancelled/);
      await t.screenshot('13-runs-view-cancelled');
    },
  },
  {
    name: 'new user: resumes from the lens to completion; the Runs tree shows a checkpoint down to its tensors',
    async fn(t) {
      const { page } = t;
      await t.wb.editorTab(page, CONFIG).click();
      const resume = lens(page, `↻ Resume from step ${state.cancelStep}`);
      await resume.waitFor({ state: 'visible', timeout: 30_000 });
      await resume.click();
      await showNotifications(t);
      await toast(page, 'Basin: resuming demo').waitFor({ state: 'visible', timeout: 30_000 });
      await t.screenshot('14-resuming');
      await statusItem(page).waitFor({ state: 'visible', timeout: 60_000 });
      await statusItem(page).waitFor({ state: 'hidden', timeout: 240_000 });
      await showNotifications(t);
      const done = toast(page, 'Basin: demo finished');
      await done.waitFor({ state: 'visible', timeout: 10_000 });
      t.log(`notification: ${await done.textContent()}`);
      assert.match(await done.textContent(), new RegExp(`${TOTAL_STEPS} steps`));
      const rec = runJson();
      assert.equal(rec.status, 'completed');
      assert.ok(rec.checkpoints.some((c) => c.step === TOTAL_STEPS), `checkpoints ${rec.checkpoints.map((c) => c.step)}`);
      assert.equal((await runDirs()).length, 1, 'Resume continued the same run folder');

      // The notification center covers the bottom right: hide it for the screenshot.
      await t.wb.runCommand(page, 'Notifications: Hide Notifications', { timeout: 5000 }).catch(() => page.keyboard.press('Escape'));
      await showBasinSideBar(t);
      const run = page.locator('.pane-body .monaco-list-row[aria-level="1"]', { hasText: 'completed' }).first();
      await run.waitFor({ state: 'visible', timeout: 20_000 });
      await expand(run);
      await expand(page.locator('.pane-body .monaco-list-row[aria-level="2"]', { hasText: 'Checkpoints' }).first());
      await expand(page.locator('.pane-body .monaco-list-row[aria-level="3"]', { hasText: `step ${TOTAL_STEPS}` }).first());
      const tensors = page.locator('.pane-body .monaco-list-row[aria-level="4"]');
      await tensors.first().waitFor({ state: 'visible', timeout: 20_000 });
      const first = await tensors.first().textContent();
      t.log(`tensors: ${await tensors.count()} rows shown, first: ${first}`);
      assert.match(first, /\[\d+(, \d+)*\] F32/i);
      await t.screenshot('15-runs-tree-checkpoint-tensors');
    },
  },
  {
    name: 'new user: a completed run offers no Resume; completion, hover and the "did you mean" quick fix in the config',
    async fn(t) {
      const { page } = t;
      await t.wb.runCommand(page, 'Notifications: Clear All Notifications', { timeout: 5000 }).catch(() => undefined);
      // Dark theme for these screenshots (the workbench starts light here).
      if (!(await page.locator('.monaco-workbench.vs-dark').count())) {
        await t.wb.runCommand(page, 'Preferences: Toggle between Light/Dark Themes', { timeout: 10_000 }).catch((e) => t.log(`theme: ${e.message}`));
      }
      await t.wb.editorTab(page, CONFIG).click();
      await lens(page, '▶ Train').waitFor({ state: 'visible', timeout: 30_000 });
      await lens(page, "Open last run's statistics").waitFor({ state: 'visible', timeout: 30_000 });
      assert.equal(await lens(page, 'Resume').count(), 0, 'no Resume lens on a completed run');
      assert.equal(typeof runJson().lastMetrics?.loss, 'number', 'run.json keeps its metrics');
      await t.screenshot('16-completed-run-no-resume-lens');

      const goTo = async (where) => {
        await page.keyboard.press('Control+G');
        const input = page.locator('.quick-input-widget input');
        await input.waitFor({ state: 'visible', timeout: 10_000 });
        await input.fill(`:${where}`);
        await page.keyboard.press('Enter');
        await page.waitForTimeout(300);
      };
      const suggest = page.locator('.editor-widget.suggest-widget.visible');
      // A section's type: the registry's entries with their descriptions (line 26: `schedule: { type: |cosine`).
      await goTo('26:21');
      await page.keyboard.press('Control+Space');
      await suggest.waitFor({ state: 'visible', timeout: 15_000 });
      await suggest.locator('.monaco-list-row', { hasText: 'constant' }).first().waitFor({ state: 'visible', timeout: 10_000 });
      // The focused item's documentation beside the list (a second Ctrl+Space toggles it).
      if (!(await page.locator('.suggest-details-container .suggest-details').isVisible().catch(() => false))) await page.keyboard.press('Control+Space');
      await page.waitForTimeout(300);
      t.log(`completion (schedule type): ${(await suggest.locator('.monaco-list-row').allTextContents()).join(' | ')}`);
      await t.screenshot('17-config-completion-types');
      await page.keyboard.press('Escape');
      // Keys of the train section not written yet, with their docs (a new line after `logEvery: 10`).
      await goTo('31');
      await page.keyboard.press('End');
      await page.keyboard.press('Enter');
      await page.keyboard.press('Control+Space');
      await suggest.waitFor({ state: 'visible', timeout: 15_000 });
      await suggest.locator('.monaco-list-row', { hasText: 'epochs' }).first().waitFor({ state: 'visible', timeout: 10_000 });
      if (!(await page.locator('.suggest-details-container .suggest-details').isVisible().catch(() => false))) await page.keyboard.press('Control+Space');
      await page.waitForTimeout(300);
      t.log(`completion (train keys): ${(await suggest.locator('.monaco-list-row').allTextContents()).join(' | ')}`);
      await t.screenshot('18-config-completion-keys');
      await page.keyboard.press('Escape');
      // A typo: the validator says "did you mean", the light bulb's quick fix corrects it.
      await page.keyboard.type('batchsize: 32');
      const squiggle = page.locator('.squiggly-error').first();
      await squiggle.waitFor({ state: 'visible', timeout: 20_000 });
      await page.keyboard.press('Home');
      // The squiggle can still be a diagnostic of the half-typed key (validation is debounced, and slow on a loaded
      // machine): then the light bulb says "No code actions available". Ask again until the fix is offered.
      const fix = page.locator('.action-widget .monaco-list-row', { hasText: 'Change "batchsize" to "batchSize"' }).first();
      for (let attempt = 1; ; attempt++) {
        await page.keyboard.press('Control+.');
        const shown = await fix.waitFor({ state: 'visible', timeout: 5_000 }).then(() => true, () => false);
        if (shown) break;
        if (attempt === 6) throw new Error('the quick fix Change "batchsize" to "batchSize" was not offered within 6 tries');
        await page.keyboard.press('Escape');
        await page.waitForTimeout(1_000);
      }
      await t.screenshot('19-config-quick-fix');
      await page.keyboard.press('Escape');
      // Hover: a key's description.
      await goTo('27:5');
      await page.keyboard.press('Control+K');
      await page.keyboard.press('Control+I');
      const hover = page.locator('.monaco-hover', { hasText: 'gradClip' }).first();
      await hover.waitFor({ state: 'visible', timeout: 10_000 });
      t.log(`hover: ${(await hover.textContent())?.slice(0, 160)}`);
      await t.screenshot('20-config-hover');
      await page.keyboard.press('Escape');
      await t.wb.runCommand(page, 'File: Revert File');
    },
  },
];

