// Driving the VS Code workbench (code-server in headless Chromium) with playwright-core: the building blocks of
// the end-to-end tests. Everything waits on the DOM, never on fixed sleeps, except where the workbench gives no
// signal (noted). See ../shared/notes/vscode-testing.md (beside the repository).

/** Waits until the workbench is up (layout and status bar rendered) and the extension host has started. */
export async function waitForWorkbench(page, timeout = 60_000) {
  await page.waitForSelector('.monaco-workbench', { timeout });
  await page.waitForSelector('.statusbar', { timeout });
}

/**
 * Runs a command from the palette by its full title ("Basin: Open Statistics"). Extensions register their
 * commands a while after the workbench shows, so a title not listed yet is retried until `timeout`.
 */
export async function runCommand(page, title, { timeout = 60_000 } = {}) {
  const t0 = Date.now();
  for (;;) {
    await closeQuickInput(page);
    const input = page.locator('.quick-input-widget input');
    await page.keyboard.press('F1');
    // With the keyboard focus inside a webview's input the key may never reach the workbench: the command
    // center in the title bar opens the same quick input with a click.
    const opened = await input.waitFor({ state: 'visible', timeout: 3000 }).then(
      () => true,
      () => false,
    );
    if (!opened) await page.locator('.command-center .command-center-center').first().click({ timeout: 5000 }).catch(() => {});
    // Under load (a CI machine also running the extension's jobs) the palette can be slow to take input: a fill
    // that times out is retried until the overall timeout, not fatal on its own.
    const typed = await input
      .waitFor({ state: 'visible', timeout: 10_000 })
      .then(() => input.fill(`>${title}`, { timeout: 10_000 }))
      .then(
        () => true,
        () => false,
      );
    if (!typed) {
      if (Date.now() - t0 > timeout) throw new Error(`the command palette does not take input (after ${timeout} ms)`);
      continue;
    }
    const row = page.locator('.quick-input-list .monaco-list-row', { hasText: title }).first();
    const found = await row.waitFor({ state: 'visible', timeout: 3000 }).then(
      () => true,
      () => false,
    );
    if (found) {
      await row.click();
      return;
    }
    if (Date.now() - t0 > timeout) throw new Error(`the command palette does not list "${title}" (after ${timeout} ms)`);
  }
}

/** Picks an item of an open quick pick by (part of) its label. */
export async function pickQuickItem(page, text, { timeout = 15_000 } = {}) {
  const input = page.locator('.quick-input-widget input');
  await input.waitFor({ state: 'visible', timeout });
  await input.fill(text, { timeout });
  const row = page.locator('.quick-input-list .monaco-list-row', { hasText: text }).first();
  await row.waitFor({ state: 'visible', timeout });
  await row.click();
}

/**
 * Runs a command that answers with its own quick pick (titled `pickTitle`) and picks `item` in it. The command
 * is run again (up to `attempts` times) when its pick does not show or does not take input: a pick closes when
 * the focus moves (a notification, a view revealed by a previous test's job) and the palette's own input can be
 * taken for it while it closes. A failure says what the workbench showed instead.
 */
export async function pickFromCommand(page, command, pickTitle, item, { attempts = 3, timeout = 30_000, log = () => {} } = {}) {
  let last = '';
  for (let attempt = 1; attempt <= attempts; attempt++) {
    await runCommand(page, command);
    const title = page.locator('.quick-input-widget .quick-input-title', { hasText: pickTitle });
    const ok = await title
      .waitFor({ state: 'visible', timeout })
      .then(() => pickQuickItem(page, item, { timeout }))
      .then(
        () => true,
        async (e) => {
          last = `${String(e?.message ?? e).split('\n')[0]}; the workbench showed ${await describeWorkbench(page)}`;
          return false;
        },
      );
    if (ok) return;
    log(`${command} → ${item}, attempt ${attempt} of ${attempts}: ${last}`);
    await closeQuickInput(page);
  }
  throw new Error(`${command} never offered "${item}" in its pick (${attempts} attempts): ${last}`);
}

/** What a person would see that explains a stuck step: the quick input, notifications, editor tabs, the focus. */
export async function describeWorkbench(page) {
  return page
    .evaluate(() => {
      const visible = (e) => !!e && e.getBoundingClientRect().height > 0 && getComputedStyle(e).display !== 'none';
      const qi = document.querySelector('.quick-input-widget');
      const text = (sel) => [...document.querySelectorAll(sel)].filter(visible).map((e) => e.textContent.trim().slice(0, 160));
      const a = document.activeElement;
      return JSON.stringify({
        quickInput: visible(qi) ? { title: qi.querySelector('.quick-input-title')?.textContent, value: qi.querySelector('input')?.value, rows: text('.quick-input-list .monaco-list-row').slice(0, 5) } : 'hidden',
        notifications: text('.notification-toast .notification-list-item-message'),
        tabs: text('.tabs-container .tab .label-name'),
        focus: a ? `${a.tagName.toLowerCase()}.${String(a.className).split(' ').slice(0, 3).join('.')}` : null,
      });
    })
    .catch((e) => `(no answer: ${e?.message ?? e})`);
}

export async function closeQuickInput(page) {
  if (await page.locator('.quick-input-widget').isVisible().catch(() => false)) await page.keyboard.press('Escape');
}

/** The editor tab whose label contains `text`. */
export function editorTab(page, text) {
  return page.locator('.tabs-container .tab', { hasText: text }).first();
}

/**
 * The content frame of the visible webview (two iframes deep: the workbench's `iframe.webview` host and its
 * `#active-frame`). With several webviews open, `index` picks among the ready ones in DOM order.
 */
export function webviewFrame(page, index = 0) {
  return page.frameLocator('iframe.webview.ready').nth(index).frameLocator('#active-frame');
}

/** Waits until a webview's content matches `selector` and returns its frame locator. */
export async function waitForWebview(page, selector, { timeout = 30_000 } = {}) {
  const t0 = Date.now();
  for (;;) {
    const n = await page.locator('iframe.webview.ready').count();
    for (let i = 0; i < n; i++) {
      const frame = webviewFrame(page, i);
      if ((await frame.locator(selector).count().catch(() => 0)) > 0) {
        // Pin the frame to its iframe's name (the webview's id): by index it would follow whichever webview
        // comes i-th later, and the workbench adds and reorders them as panels open, close and move.
        const name = await page.locator('iframe.webview.ready').nth(i).getAttribute('name').catch(() => null);
        return name ? page.frameLocator(`iframe.webview.ready[name="${name}"]`).frameLocator('#active-frame') : frame;
      }
    }
    if (Date.now() - t0 > timeout) throw new Error(`no webview showed ${selector} within ${timeout} ms`);
    await page.waitForTimeout(150);
  }
}

/** The webview body's data-* attributes (the statistics panel writes its state there for tests). */
export async function webviewData(frame) {
  return frame.locator('body').evaluate((b) => ({ ...b.dataset }));
}

/**
 * Waits until the webview body's data-* attributes satisfy `ok(data)` (the panel applies input on its next frame,
 * later still on a loaded machine) and returns them; throws with the last attributes seen after `timeout` ms.
 */
export async function waitForWebviewData(frame, ok, { timeout = 10_000, what = 'the panel state' } = {}) {
  const t0 = Date.now();
  for (;;) {
    const d = await webviewData(frame);
    if (ok(d)) return d;
    if (Date.now() - t0 > timeout) throw new Error(`${what} not reached within ${timeout} ms; last data-*: ${JSON.stringify(d).slice(0, 400)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/**
 * The bounding box of a locator once it is laid out: null (detached by a re-render, or not laid out yet) is
 * retried until `timeout`.
 */
export async function boxOf(locator, { timeout = 10_000 } = {}) {
  const t0 = Date.now();
  for (;;) {
    await locator.waitFor({ state: 'visible', timeout }).catch(() => {});
    const b = await locator.boundingBox().catch(() => null);
    if (b) return b;
    if (Date.now() - t0 > timeout) throw new Error(`no bounding box for ${locator} after ${timeout} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
