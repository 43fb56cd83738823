// The web client as a patient on a phone and a clinician on a desktop use it, in real Chromium
// against `bedside dev`: a keyboard-only patient joins, mutes (the clinician then receives
// silence) and leaves; camera off stops the clinician's decoded frames and shows a badge; the
// clinician is alerted when someone arrives; Remove and End ask first; a patient without a
// camera is heard and both sides are told; a `locale` claim gives a Spanish page; no name or
// reason is ever in browser storage, and the token is gone after every ending. Screenshots of
// each screen at both viewports go to tests/e2e/artifacts/screens/.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  ROOT, startDev, launchBrowserWith, remoteView, waitFor, sleep, admitFromQueue, writeToneWav,
} from './lib.mjs';

const DESKTOP = { width: 1280, height: 800 };
const PHONE = { width: 390, height: 844 };
const SHOTS = join(ROOT, 'tests/e2e/artifacts/screens');

let server;
let chrome;
let nocam;
let dir;

before(async () => {
  mkdirSync(SHOTS, { recursive: true });
  dir = mkdtempSync(join(tmpdir(), 'bedside-client-e2e-'));
  // A steady tone as everyone's microphone, so a received audio level means something.
  const tone = join(dir, 'tone.wav');
  writeToneWav(tone, { freq: 500, amplitude: 0.6 });
  server = await startDev({ visit: 'client-dev' });
  chrome = await launchBrowserWith({ extraArgs: [`--use-file-for-fake-audio-capture=${tone}`] });
  // Chromium's fake capture with no video device: a microphone and no camera at all.
  nocam = await launchBrowserWith({ extraArgs: ['--use-fake-device-for-media-stream=device-count=0'] });
});

after(async () => {
  for (const c of [chrome, nocam]) if (c) await c.close();
  if (server) await server.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

// Counts what a person would notice without looking: sounds played, desktop notifications,
// and a tab that can be made to look hidden (notifications are for a clinician elsewhere).
const OBSERVE = () => {
  const Orig = window.RTCPeerConnection;
  window.__pcs = [];
  window.RTCPeerConnection = function (...args) {
    const pc = new Orig(...args);
    window.__pcs.push(pc);
    return pc;
  };
  window.RTCPeerConnection.prototype = Orig.prototype;
  window.__sounds = [];
  const play = HTMLMediaElement.prototype.play;
  HTMLMediaElement.prototype.play = function (...a) {
    if (this.dataset && this.dataset.sound) window.__sounds.push(this.dataset.sound);
    return play.apply(this, a);
  };
  window.__notifications = [];
  if (window.Notification) {
    const N = window.Notification;
    window.Notification = function (title, opts) {
      window.__notifications.push({ title, body: opts && opts.body });
      return new N(title, opts);
    };
    Object.defineProperty(window.Notification, 'permission', { get: () => N.permission });
    window.Notification.requestPermission = (...a) => N.requestPermission(...a);
  }
  window.__hidden = false;
  Object.defineProperty(document, 'visibilityState', { get: () => (window.__hidden ? 'hidden' : 'visible') });
};

async function person(browser, role, extra, { viewport = DESKTOP, permissions, visit = 'client-visit' } = {}) {
  const context = await browser.newContext({ viewport, ...(permissions ? { permissions } : {}) });
  await context.addInitScript(OBSERVE);
  const page = await context.newPage();
  page.on('pageerror', (e) => console.error(`page error (${role}):`, e.message));
  await page.goto(`${server.web}/join#token=${server.token(visit, role, extra)}`);
  await page.getByTestId('device-check').waitFor({ state: 'visible' });
  return { context, page, viewport };
}

/** Screenshots of what `p` shows now, at the desktop and the phone size. */
async function shots(p, name) {
  for (const [size, vp] of [['desktop', DESKTOP], ['phone', PHONE]]) {
    await p.page.setViewportSize(vp);
    await sleep(150);
    await p.page.screenshot({ path: join(SHOTS, `${name}-${size}.png`) });
  }
  await p.page.setViewportSize(p.viewport);
}

/** Everything in this page's sessionStorage and localStorage. */
async function storage(page) {
  return page.evaluate(() => {
    const all = {};
    for (const s of [sessionStorage, localStorage]) {
      for (let i = 0; i < s.length; i++) all[s.key(i)] = s.getItem(s.key(i));
    }
    return all;
  });
}

/** No name or reason is stored, in clear or inside a stored token; after an ending no token at all. */
async function storageHoldsNoPhi(page, phi, { ended = false } = {}) {
  const all = await storage(page);
  const decoded = Object.values(all).flatMap((v) => String(v).split('.').map((part) => {
    try { return Buffer.from(part, 'base64url').toString('utf8'); } catch { return ''; }
  }));
  for (const secret of phi) {
    assert.ok(!Object.values(all).some((v) => String(v).includes(secret)), `${secret} stored in clear: ${JSON.stringify(all)}`);
    if (ended) assert.ok(!decoded.some((v) => v.includes(secret)), `${secret} stored inside a token after the ending`);
  }
  if (ended) assert.equal(all['bedside.token'], undefined, 'the token is removed on every ending');
  return all;
}

/** Presses Tab until the element with this test id has focus, then `key`. */
async function tabTo(page, testid, key = 'Enter') {
  for (let i = 0; i < 40; i++) {
    await page.keyboard.press('Tab');
    if (await page.evaluate((id) => document.activeElement?.dataset?.testid === id, testid)) {
      await page.keyboard.press(key);
      return;
    }
  }
  throw new Error(`Tab never reached ${testid}`);
}

const focused = (page) => page.evaluate(() => document.activeElement?.id || document.activeElement?.tagName);

/** What `page` receives from the participant of `role`: audio level, audio packets, frames. */
async function receivedFrom(page, role) {
  return page.evaluate(async (r) => {
    const tile = document.querySelector(`[data-testid="remote-tile"][data-role="${r}"][data-kind="camera"]`);
    if (!tile) return null;
    const a = tile.querySelector('audio').srcObject?.getAudioTracks()[0];
    const v = tile.querySelector('video').srcObject?.getVideoTracks()[0];
    const out = { audioLevel: 0, audioPackets: 0, frames: 0, badges: [...tile.querySelectorAll('.badge')].map((b) => b.dataset.testid) };
    for (const pc of window.__pcs || []) {
      if (pc.connectionState === 'closed') continue;
      (await pc.getStats()).forEach((s) => {
        if (s.type !== 'inbound-rtp') return;
        if (a && s.trackIdentifier === a.id) { out.audioLevel = s.audioLevel || 0; out.audioPackets = s.packetsReceived || 0; }
        if (v && s.trackIdentifier === v.id) out.frames = s.framesDecoded || 0;
      });
    }
    return out;
  }, role);
}

/** The participant's audio level as `page` hears it, sustained: every sample over `ms` satisfies `ok`. */
async function levelHolds(page, role, ok, what) {
  await waitFor(async () => {
    const samples = [];
    for (let i = 0; i < 4; i++) {
      samples.push((await receivedFrom(page, role)).audioLevel);
      await sleep(250);
    }
    return samples.every(ok);
  }, { what, timeout: 20000, interval: 100 });
}

async function framesRising(page, role) {
  const a = (await receivedFrom(page, role)).frames;
  await sleep(2000);
  return (await receivedFrom(page, role)).frames - a;
}

test('a keyboard-only patient on a phone and a clinician: alerts, mute, camera, remove, end', async () => {
  const phi = ['Pat Sentinel-4K', 'Knee Sentinel-8R', 'Cara Sentinel-2W'];
  const doc = await person(chrome.browser, 'provider', ['--name', 'Dr Sentinel-1D'], { permissions: ['notifications'] });
  await doc.page.getByTestId('join').click();
  await doc.page.getByTestId('call').waitFor({ state: 'visible' });
  assert.equal(await focused(doc.page), 'call-title', 'focus moves to the new screen');
  await doc.page.evaluate(() => { window.__hidden = true; });

  const pat = await person(chrome.browser, 'patient', ['--name', phi[0], '--reason', phi[1]], { viewport: PHONE });
  await waitFor(async () => /work/.test(await pat.page.getByTestId('device-note').textContent()),
    { what: 'the device check to find both devices' });
  // Keyboard only from here: the page starts at its heading.
  assert.equal(await focused(pat.page), 'prejoin-title');
  await shots(pat, 'prejoin');
  // The connection check before joining: what can be checked without relay credentials.
  await tabTo(pat.page, 'net-test');
  await pat.page.getByTestId('net-verdict').waitFor({ timeout: 20000 });
  const checks = await pat.page.evaluate(() => Object.fromEntries([...document.querySelectorAll('#net-results [data-check]')]
    .map((li) => [li.dataset.check, li.dataset.outcome])));
  assert.deepEqual(checks, { server: 'ok', udp: 'ok', 'turn-udp': 'later', 'turn-tcp': 'later', 'turn-tls': 'later' });
  await shots(pat, 'prejoin-net-check');
  await storageHoldsNoPhi(pat.page, phi);

  assert.equal(await pat.page.evaluate(() => document.activeElement.dataset.testid), 'net-test', 'focus stays put');
  await tabTo(pat.page, 'join');
  await pat.page.getByTestId('waiting-room').waitFor({ state: 'visible' });
  assert.equal(await focused(pat.page), 'waiting-title', 'focus moves to the waiting room heading');
  await waitFor(async () => /next/.test(await pat.page.getByTestId('waiting-status').textContent()), { what: 'the position' });
  assert.match(await pat.page.getByTestId('clinician-presence').textContent(), /clinician is online/);
  assert.ok(await pat.page.evaluate(() => document.getElementById('waiting-video').videoWidth > 0), 'the self-preview stays');

  // The clinician is alerted: a sound, a count in the tab title, a notification without names.
  await waitFor(() => doc.page.evaluate(() => window.__sounds.includes('arrival')), { what: 'the arrival sound' });
  assert.match(await doc.page.title(), /^\(1\) /);
  assert.match(await doc.page.getByTestId('arrival-alert').textContent(), /Pat Sentinel-4K is waiting/);
  const notes = await doc.page.evaluate(() => window.__notifications);
  assert.equal(notes.length, 1, JSON.stringify(notes));
  assert.ok(!JSON.stringify(notes).includes('Sentinel'), 'no name in a desktop notification');
  await doc.page.getByTestId('notify-text').fill('Running 5 minutes late');
  await doc.page.getByTestId('notify-waiting').click();
  await waitFor(async () => /5 minutes/.test(await pat.page.getByTestId('waiting-message').textContent()), { what: 'the message' });
  assert.match(await pat.page.getByTestId('waiting-message').textContent(), /Sent at/);
  await shots(pat, 'waiting');
  await shots(doc, 'clinician-queue');
  await storageHoldsNoPhi(pat.page, phi);

  await admitFromQueue(doc.page, 'patient');
  await pat.page.getByTestId('call').waitFor({ state: 'visible' });
  assert.equal(await focused(pat.page), 'call-title');
  await waitFor(() => pat.page.evaluate(() => window.__sounds.includes('admitted')), { what: 'the admission sound' });
  await waitFor(async () => /let in/.test(await pat.page.getByTestId('announcer').textContent()), { what: 'the admission announced' });
  assert.match(await pat.page.title(), /In your visit/);
  assert.doesNotMatch(await doc.page.title(), /^\(/, 'the count goes once nobody waits');
  await waitFor(async () => ((await receivedFrom(doc.page, 'patient')) || {}).frames > 0, { what: 'the clinician to see the patient', timeout: 45000 });
  await waitFor(async () => ((await receivedFrom(pat.page, 'provider')) || {}).frames > 0, { what: 'the patient to see the clinician', timeout: 45000 });

  // On the phone: Leave and the controls are on the first screen, without scrolling.
  const inView = await pat.page.evaluate(() => ['toggle-mic', 'toggle-camera', 'audio-only', 'leave'].map((id) => {
    const r = document.getElementById(id).getBoundingClientRect();
    return { id, top: r.top, bottom: r.bottom, height: r.height, width: r.width };
  }));
  for (const b of inView) {
    assert.ok(b.top >= 0 && b.bottom <= PHONE.height, `${b.id} is on screen: ${JSON.stringify(b)}`);
    assert.ok(b.height >= 44 && b.width >= 44, `${b.id} is a 44 px target: ${JSON.stringify(b)}`);
  }
  assert.equal(await pat.page.evaluate(() => window.scrollY), 0);
  const bodyText = await pat.page.evaluate(() => parseFloat(getComputedStyle(document.body).fontSize));
  assert.ok(bodyText >= 16, `body text ${bodyText}px`);
  await shots(pat, 'call-patient');
  await shots(doc, 'call-clinician');

  // Mute, by keyboard: the clinician receives silence and sees the badge; the shortcut unmutes.
  await levelHolds(doc.page, 'patient', (l) => l > 0.05, 'the clinician to hear the patient');
  // The one speaking is outlined, from the received audio level.
  await waitFor(() => doc.page.evaluate(() => !!document.querySelector('[data-testid="remote-tile"][data-role="patient"].speaking')),
    { what: 'the speaking patient to be highlighted' });
  await tabTo(pat.page, 'toggle-mic', 'Space');
  await levelHolds(doc.page, 'patient', (l) => l < 0.005, 'silence after mute');
  await waitFor(() => doc.page.evaluate(() => !document.querySelector('[data-testid="remote-tile"].speaking')),
    { what: 'no highlight while muted' });
  await waitFor(async () => (await receivedFrom(doc.page, 'patient')).badges.includes('badge-muted'), { what: 'the muted badge' });
  await pat.page.keyboard.press('Alt+Shift+M');
  await levelHolds(doc.page, 'patient', (l) => l > 0.05, 'sound again after unmute');
  await waitFor(async () => !(await receivedFrom(doc.page, 'patient')).badges.includes('badge-muted'), { what: 'the badge to go' });

  // Camera off: the clinician's decoded frames stop and the badge shows; on again, they rise.
  assert.ok(await framesRising(doc.page, 'patient') > 0);
  await pat.page.keyboard.press('Alt+Shift+V');
  await waitFor(async () => (await receivedFrom(doc.page, 'patient')).badges.includes('badge-camera-off'), { what: 'the camera-off badge' });
  await sleep(1000);
  assert.equal(await framesRising(doc.page, 'patient'), 0, 'no frames arrive with the camera off');
  assert.equal(await pat.page.evaluate(() => document.getElementById('preview-video').srcObject), null, 'the camera is released');
  await shots(doc, 'call-clinician-patient-muted-camera-off');
  await pat.page.keyboard.press('Alt+Shift+V');
  await waitFor(async () => (await framesRising(doc.page, 'patient')) > 0, { what: 'frames again', timeout: 20000 });

  // Remove asks first; Escape keeps the person, the confirm button removes them.
  const care = await person(chrome.browser, 'caregiver', ['--name', phi[2]]);
  await care.page.getByTestId('join').click();
  await admitFromQueue(doc.page, 'caregiver');
  const careRow = doc.page.locator('[data-testid="participant"][data-role="caregiver"]');
  await careRow.waitFor();
  await careRow.getByTestId('remove').click();
  const confirm = doc.page.getByTestId('confirm-dialog');
  await confirm.waitFor({ state: 'visible' });
  assert.equal(await doc.page.evaluate(() => document.activeElement.id), 'confirm-cancel', 'the safe choice has focus');
  await shots(doc, 'confirm-remove');
  await doc.page.keyboard.press('Escape');
  await confirm.waitFor({ state: 'hidden' });
  await sleep(500);
  assert.equal(await care.page.getByTestId('call').isVisible(), true, 'Escape removed nobody');
  await careRow.getByTestId('remove').click();
  await doc.page.getByTestId('confirm-ok').click();
  await care.page.getByTestId('ended').waitFor({ state: 'visible' });
  assert.match(await care.page.getByTestId('ended-title').textContent(), /removed/);
  await storageHoldsNoPhi(care.page, phi, { ended: true });
  await care.context.close();

  // A chaperone stays for the end of the visit.
  const chap = await person(chrome.browser, 'chaperone', []);
  await chap.page.getByTestId('join').click();
  await chap.page.getByTestId('call').waitFor({ state: 'visible' });

  // Keyboard only again: the patient leaves.
  await tabTo(pat.page, 'leave');
  await pat.page.getByTestId('ended').waitFor({ state: 'visible' });
  assert.equal(await focused(pat.page), 'ended-title');
  assert.match(await pat.page.getByTestId('ended-title').textContent(), /left the visit/);
  assert.equal(await pat.page.getByTestId('error').isVisible(), false);
  await shots(pat, 'ended-left');
  await storageHoldsNoPhi(pat.page, phi, { ended: true });

  // End for everyone asks first; Cancel keeps the visit.
  await doc.page.getByTestId('end-visit').click();
  await doc.page.getByTestId('confirm-cancel').click();
  await sleep(500);
  assert.equal(await chap.page.getByTestId('call').isVisible(), true, 'Cancel ended nothing');
  await doc.page.getByTestId('end-visit').click();
  await doc.page.getByTestId('confirm-ok').click();
  await chap.page.getByTestId('ended').waitFor({ state: 'visible' });
  const endedText = `${await chap.page.getByTestId('ended-title').textContent()} ${await chap.page.getByTestId('ended-text').textContent()}`;
  assert.match(endedText, /visit has ended/);
  assert.equal((endedText.match(/ended/g) || []).length, 1, `said once: ${endedText}`);
  assert.equal(await chap.page.getByTestId('error').isVisible(), false);
  await shots(chap, 'ended-visit-ended');
  await storageHoldsNoPhi(doc.page, phi, { ended: true });
  for (const p of [doc, pat, chap]) await p.context.close();
});

test('a patient with no camera is heard, both sides are told, and a locale claim gives Spanish', async () => {
  // A visit of its own, so nothing left of the test before can be mistaken for this patient.
  const visit = 'client-visit-no-camera';
  const doc = await person(chrome.browser, 'provider', ['--visit-type', 'consult'], { visit });
  await doc.page.getByTestId('join').click();
  const pat = await person(nocam.browser, 'patient', ['--locale', 'es', '--name', 'Paciente Sentinel-6J'], { viewport: PHONE, visit });
  assert.equal(await pat.page.evaluate(() => document.documentElement.lang), 'es');
  assert.equal(await pat.page.getByTestId('join').textContent(), 'Entrar a la consulta');
  await waitFor(async () => /ninguna cámara/.test(await pat.page.getByTestId('device-note').textContent()),
    { what: 'the patient to be told there is no camera' });
  assert.equal(await pat.page.getByTestId('permission-help').isVisible(), true);
  assert.equal(await pat.page.getByTestId('retry-devices').textContent(), 'Intentar de nuevo');
  assert.ok(await pat.page.evaluate(() => document.getElementById('mic-level').value >= 0));
  await shots(pat, 'prejoin-no-camera-es');
  await pat.page.getByTestId('join').click();
  await pat.page.getByTestId('waiting-room').waitFor({ state: 'visible' });
  assert.match(await pat.page.getByTestId('waiting-status').textContent(), /siguiente/);
  await shots(pat, 'waiting-es');
  await admitFromQueue(doc.page, 'patient');
  await pat.page.getByTestId('call').waitFor({ state: 'visible' });

  // The clinician hears the patient and sees "No camera"; the patient sends audio only.
  await waitFor(async () => {
    const r = await receivedFrom(doc.page, 'patient');
    return r && r.audioPackets > 50 && r.badges.includes('badge-no-camera');
  }, { what: 'the clinician to hear the camera-less patient', timeout: 45000 });
  const sent = await pat.page.evaluate(async () => {
    const kinds = [];
    for (const pc of window.__pcs) {
      if (pc.connectionState === 'closed') continue;
      (await pc.getStats()).forEach((s) => { if (s.type === 'outbound-rtp' && s.packetsSent > 0) kinds.push(s.kind); });
    }
    return kinds;
  });
  assert.deepEqual(sent, ['audio'], 'the patient publishes its microphone only');
  assert.match(await doc.page.locator('[data-testid="participant"][data-role="patient"]').textContent(), /No camera/);
  assert.equal(await pat.page.getByTestId('toggle-mic').textContent(), 'Silenciar');
  await shots(pat, 'call-no-camera-es');
  await shots(doc, 'call-clinician-sees-no-camera');

  // The language can be switched on the page.
  await pat.page.getByTestId('language').selectOption('en');
  assert.equal(await pat.page.getByTestId('toggle-mic').textContent(), 'Mute');
  assert.equal(await pat.page.evaluate(() => document.documentElement.lang), 'en');
  await pat.page.getByTestId('leave').click();
  await storageHoldsNoPhi(pat.page, ['Paciente Sentinel-6J'], { ended: true });
  for (const p of [doc, pat]) await p.context.close();
});

test('names and reasons typed into these visits never reach the server log', () => {
  const logs = server.logs();
  for (const forbidden of ['Sentinel-4K', 'Sentinel-8R', 'Sentinel-2W', 'Sentinel-1D', 'Sentinel-6J', 'eyJ']) {
    assert.ok(!logs.includes(forbidden), `the server log contains ${forbidden}`);
  }
});
