// The clinic in real Chromium: the waiting room, admission and denial,
// role-based routing in a group visit, and a reload within the grace period.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startDev, launchBrowser, openPerson, remoteView, waitFor, sleep, admitFromQueue,
} from './lib.mjs';

let server;
let chrome;

before(async () => {
  server = await startDev({ visit: 'clinic-dev' });
  chrome = await launchBrowser();
});

after(async () => {
  if (chrome) await chrome.close();
  if (server) await server.stop();
});

const url = (token) => `${server.web}/join#token=${token}`;

async function person(visit, role, extra = []) {
  const p = await openPerson(chrome.browser, url(server.token(visit, role, extra)));
  await p.page.getByTestId('device-check').waitFor({ state: 'visible' });
  return p;
}

async function join(p) {
  await p.page.getByTestId('join').click();
}

/** Waits until every listed participant's tile decodes video (or, with audioOnly, gets audio). */
async function decodes(p, count, what) {
  return waitFor(async () => {
    const v = await remoteView(p.page);
    const live = v.tiles.filter((t) => t.framesDecoded > 0);
    return live.length >= count ? v : null;
  }, { what, timeout: 45000 });
}

test('(a) a patient waits, the provider sees the queue entry and admits, then both decode each other', async () => {
  const doc = await person('visit-a', 'provider', ['--name', 'Dr Who']);
  const pat = await person('visit-a', 'patient', ['--name', 'Pat Sentinel', '--reason', 'Knee pain sentinel']);
  // The device check shows a live camera preview before joining.
  await waitFor(() => pat.page.evaluate(() => document.getElementById('preview-video').videoWidth > 0),
    { what: 'the camera preview' });
  await join(doc);
  await join(pat);
  const status = pat.page.getByTestId('waiting-status');
  await status.waitFor({ state: 'visible' });
  // The screen shows before the server's first `waiting` message fills in the position.
  await waitFor(async () => /next|number 1/.test(await status.textContent()),
    { what: 'the waiting position', timeout: 10000 });
  const entry = doc.page.getByTestId('queue-entry');
  await entry.waitFor({ state: 'visible' });
  const text = await entry.textContent();
  assert.match(text, /Pat Sentinel/);
  assert.match(text, /Knee pain sentinel/);
  // The waiting patient receives nothing.
  assert.equal((await remoteView(pat.page)).totalPacketsReceived, 0);

  await doc.page.getByTestId('notify-text').fill('running 5 minutes late');
  await doc.page.getByTestId('notify-waiting').click();
  await waitFor(async () => (await pat.page.locator('#waiting-message').textContent()).includes('5 minutes'),
    { what: 'the clinician message in the waiting room' });

  await admitFromQueue(doc.page, 'patient');
  await decodes(doc, 1, 'the provider to decode the patient');
  await decodes(pat, 1, 'the patient to decode the provider');
  await entry.waitFor({ state: 'detached' });
  // The participant list shows roles.
  const people = await doc.page.getByTestId('participant').allTextContents();
  assert.ok(people.some((t) => t.includes('patient')), people.join());
  await doc.context.close();
  await pat.context.close();
});

test('(b) a denied patient sees the reason and never receives media', async () => {
  const doc = await person('visit-b', 'provider');
  const pat = await person('visit-b', 'patient');
  await join(doc);
  await join(pat);
  const entry = doc.page.getByTestId('queue-entry');
  await entry.waitFor({ state: 'visible' });
  // The reason field appears only once Deny is chosen; the denial is then confirmed.
  assert.equal(await entry.getByTestId('deny-reason').isVisible(), false);
  await entry.getByTestId('deny').click();
  await entry.getByTestId('deny-reason').fill('Please call the front desk to rebook');
  await entry.getByTestId('deny-confirm').click();
  const error = pat.page.getByTestId('error');
  await error.waitFor({ state: 'visible' });
  assert.match(await error.textContent(), /Please call the front desk to rebook/);
  await sleep(1000);
  assert.equal((await remoteView(pat.page)).totalPacketsReceived, 0);
  await entry.waitFor({ state: 'detached' });
  await doc.context.close();
  await pat.context.close();
});

test('(c) group visit: patients see the provider, hear each other, and see a patient only when shown', async () => {
  const visit = 'visit-c';
  const gt = ['--visit-type', 'group'];
  const doc = await person(visit, 'provider', gt);
  const pats = [];
  for (let i = 0; i < 3; i++) pats.push(await person(visit, 'patient', [...gt, '--name', `Group ${i}`]));
  await join(doc);
  for (const p of pats) await join(p);
  await doc.page.getByTestId('queue-entry').nth(2).waitFor({ state: 'visible' });
  await doc.page.getByTestId('admit-all').click();

  const view = async (p) => {
    const v = await remoteView(p.page);
    return {
      provider: v.tiles.find((t) => t.role === 'provider'),
      patients: v.tiles.filter((t) => t.role === 'patient'),
    };
  };
  // Each patient decodes the provider and hears the two other patients, but decodes no
  // patient video: the SFU never sends it.
  for (const [i, p] of pats.entries()) {
    await waitFor(async () => {
      const v = await view(p);
      return v.provider && v.provider.framesDecoded > 0 && v.patients.length === 2
        && v.patients.every((t) => t.audioPackets > 0);
    }, { what: `patient ${i} to see the provider and hear two patients`, timeout: 45000 });
    const v = await view(p);
    assert.ok(v.patients.every((t) => t.framesDecoded === 0 && t.videoTrack === null),
      `patient ${i} receives no patient video: ${JSON.stringify(v.patients)}`);
    assert.equal((await remoteView(p.page)).videoInboundReceiving, 1,
      `patient ${i} receives exactly one video stream (the provider's) in getStats`);
  }
  // The provider decodes every patient's video.
  await waitFor(async () => (await view(doc)).patients.filter((t) => t.framesDecoded > 0).length === 3,
    { what: 'the provider to decode three patients' });

  // Patient 0 shows their video: patients 1 and 2 now decode it, and nothing else changes.
  await pats[0].page.getByTestId('show-my-video').check();
  for (const i of [1, 2]) {
    await waitFor(async () => (await view(pats[i])).patients.filter((t) => t.framesDecoded > 0).length === 1,
      { what: `patient ${i} to decode the shown patient`, timeout: 30000 });
  }
  const v0 = await view(pats[0]);
  assert.ok(v0.patients.every((t) => t.framesDecoded === 0), 'patient 0 still sees no other patient');
  assert.equal((await remoteView(pats[0].page)).videoInboundReceiving, 1);
  assert.equal((await remoteView(pats[1].page)).videoInboundReceiving, 2);
  await doc.context.close();
  for (const p of pats) await p.context.close();
});

test('(d) a patient who reloads within the grace period returns without waiting again', async () => {
  const doc = await person('visit-d', 'provider');
  const pat = await person('visit-d', 'patient');
  await join(doc);
  await join(pat);
  await admitFromQueue(doc.page, 'patient');
  await decodes(pat, 1, 'the patient to decode the provider');
  await pat.page.reload();
  // The reloaded page rejoins by itself and goes straight into the call.
  await decodes(pat, 1, 'the reloaded patient to decode the provider again');
  assert.equal(await pat.page.getByTestId('waiting-status').isVisible(), false);
  await decodes(doc, 1, 'the provider to decode the returned patient');
  assert.equal(await doc.page.getByTestId('queue-entry').count(), 0);
  await doc.context.close();
  await pat.context.close();
});

test('names and reasons never reach the server log', async () => {
  const logs = server.logs();
  assert.ok(logs.includes('joined'));
  for (const forbidden of ['Pat Sentinel', 'Knee pain sentinel', 'Dr Who', 'front desk', 'Group 1', 'eyJ']) {
    assert.ok(!logs.includes(forbidden), `the server log contains ${JSON.stringify(forbidden)}`);
  }
});
