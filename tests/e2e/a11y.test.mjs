// Accessibility of every screen of the real client, checked with axe-core at the desktop and
// the phone size: the device check, the waiting room, the call (patient and clinician, with
// someone in the queue), the confirmation dialog, and the ended screen. Zero serious or
// critical violations are allowed.
//
// axe is injected as an inline script, which the page's CSP (`script-src 'self'`) rightly
// blocks: these browser contexts alone use playwright's `bypassCSP: true`. Every other test
// runs the client under its real CSP.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { startDev, launchBrowser, admitFromQueue, waitFor } from './lib.mjs';

const AXE = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');
const SIZES = [{ width: 1280, height: 800 }, { width: 390, height: 844 }];

let server;
let chrome;
const report = [];

before(async () => {
  server = await startDev({ visit: 'a11y-dev' });
  chrome = await launchBrowser();
});

after(async () => {
  if (chrome) await chrome.close();
  if (server) await server.stop();
  console.log('axe:', JSON.stringify(report));
});

async function person(role, extra = []) {
  const context = await chrome.browser.newContext({ bypassCSP: true, viewport: SIZES[0] });
  const page = await context.newPage();
  page.on('pageerror', (e) => console.error(`page error (${role}):`, e.message));
  await page.goto(`${server.web}/join#token=${server.token('a11y-visit', role, extra)}`);
  await page.getByTestId('device-check').waitFor({ state: 'visible' });
  return { context, page };
}

/** Runs axe on what `page` shows at each size; fails on any serious or critical violation. */
async function audit(page, screen) {
  for (const size of SIZES) {
    await page.setViewportSize(size);
    if (!(await page.evaluate(() => typeof window.axe === 'object'))) await page.addScriptTag({ content: AXE });
    const result = await page.evaluate(async () => {
      const r = await window.axe.run(document, { resultTypes: ['violations'] });
      return r.violations.map((v) => ({ id: v.id, impact: v.impact, nodes: v.nodes.map((n) => n.target.join(' ')).slice(0, 5) }));
    });
    const bad = result.filter((v) => v.impact === 'serious' || v.impact === 'critical');
    report.push({ screen, size: `${size.width}x${size.height}`, violations: result.length, serious: bad.length, ids: result.map((v) => `${v.id}:${v.impact}`) });
    assert.deepEqual(bad, [], `${screen} at ${size.width}x${size.height}: ${JSON.stringify(bad, null, 1)}`);
  }
  await page.setViewportSize(SIZES[0]);
}

test('axe finds no serious or critical violation on any screen', async () => {
  const doc = await person('provider', ['--name', 'Dr Axe']);
  const pat = await person('patient', ['--name', 'Pat Axe', '--reason', 'Check-up']);
  await waitFor(() => pat.page.evaluate(() => document.getElementById('preview-video').videoWidth > 0), { what: 'the preview' });
  await audit(pat.page, 'device check');
  await pat.page.getByTestId('net-test').click();
  await pat.page.getByTestId('net-verdict').waitFor({ timeout: 20000 });
  await audit(pat.page, 'device check with the connection check');

  await pat.page.getByTestId('join').click();
  await pat.page.getByTestId('waiting-room').waitFor({ state: 'visible' });
  await waitFor(async () => /line/.test(await pat.page.getByTestId('waiting-status').textContent()), { what: 'the position' });
  await audit(pat.page, 'waiting room');

  await doc.page.getByTestId('join').click();
  await doc.page.getByTestId('queue-entry').waitFor();
  await audit(doc.page, 'clinician call with a queue entry');
  await doc.page.getByTestId('deny').click();
  await audit(doc.page, 'clinician with the deny reason open');
  await doc.page.getByTestId('deny-cancel').click();
  await admitFromQueue(doc.page, 'patient');
  await pat.page.getByTestId('call').waitFor({ state: 'visible' });
  await doc.page.locator('[data-testid="remote-tile"]').first().waitFor();
  await audit(pat.page, 'patient call');
  await audit(doc.page, 'clinician call');

  await doc.page.getByTestId('end-visit').click();
  await doc.page.getByTestId('confirm-dialog').waitFor({ state: 'visible' });
  await audit(doc.page, 'confirmation dialog');
  await doc.page.getByTestId('confirm-ok').click();
  await pat.page.getByTestId('ended').waitFor({ state: 'visible' });
  await audit(pat.page, 'ended');
  await doc.context.close();
  await pat.context.close();
});
