// TURN in the browser: a participant whose browser may use only TURN relays
// (iceTransportPolicy 'relay') joins a visit through a separate `bedside-turn` over UDP, over
// TCP and over TLS, and decodes video; the selected ICE pair is a relay of that protocol. And
// with a wrong TURN password there is no relay and no connection.
//
// Set-up: `bedside serve --config FILE` (HS256 tokens, audit log, [turn] urls + secret_file)
// and `bedside-turn` with UDP+TCP on one port and TLS+TCP on another (throwaway certificate,
// loopback peers allowed because the SFU is on loopback here). The web client is unchanged: an
// init script wraps RTCPeerConnection to force relay-only ICE and keep only the URLs of the
// transport under test. The other party (the provider) is an ordinary participant.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  startTurn, startServe, launchBrowser, launchBrowserWith, openPerson, openRelayPerson,
  remoteView, selectedPairs, waitFor, admitFromQueue, randomSecret,
} from './lib.mjs';

const T = 45000; // every wait: generous, for a loaded 2-core machine

let dir;
let turnSecret;
let turn;
let server;
let chrome;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'bedside-e2e-turn-'));
  const turnSecretFile = join(dir, 'turn-secret');
  turnSecret = randomSecret(32);
  writeFileSync(turnSecretFile, `${turnSecret}\n`, { mode: 0o600 });
  turn = await startTurn({ dir, secretFile: turnSecretFile });
  server = await startServe({ dir, turnUrls: turn.urls, turnSecretFile });
  chrome = await launchBrowser();
});

after(async () => {
  if (chrome) await chrome.close();
  if (server) await server.stop();
  if (turn) await turn.stop();
  if (process.env.KEEP_LOGS && dir) {
    console.log(`logs kept in ${dir}`);
    writeFileSync(join(dir, 'bedside.log'), server ? server.logs() : '');
    writeFileSync(join(dir, 'bedside-turn.log'), turn ? turn.logs() : '');
  } else if (dir) {
    rmSync(dir, { recursive: true, force: true });
  }
});

const url = (token) => `${server.web}/join#token=${token}`;

async function ready(p) {
  await p.page.getByTestId('device-check').waitFor({ state: 'visible', timeout: T });
  return p;
}

/** Frames decoded on the first remote tile of `role` on this page. */
async function framesFrom(page, role) {
  const v = await remoteView(page);
  const t = v.tiles.find((x) => x.role === role && x.kind !== 'screen');
  return t ? t.framesDecoded : 0;
}

/** Waits until the tile of `role` decodes video, then until its framesDecoded has risen further. */
async function decodesRising(page, role, what) {
  const first = await waitFor(async () => (await framesFrom(page, role)) || null, { what, timeout: T });
  await waitFor(async () => (await framesFrom(page, role)) >= first + 10,
    { what: `${what} (framesDecoded rising past ${first + 10})`, timeout: T });
}

const allocations = (transport) => turn.metric(new RegExp(`^bedside_turn_allocations\\{transport="${transport}"\\}`));
const relayed = (transport, direction) => turn.metric(new RegExp(
  `^bedside_turn_relayed_packets_total\\{(?=.*transport="${transport}")(?=.*direction="${direction}")`));

/**
 * A provider (ordinary) and a relay-only patient join `visit`; the provider admits; both
 * decode each other's video, and the patient's selected pair is a relay over `relayProtocol`.
 */
async function relayCall(browser, transport, relayProtocol, visit) {
  const base = { toPeer: await relayed(transport, 'to_peer'), toClient: await relayed(transport, 'to_client') };
  const doc = await ready(await openPerson(browser, url(server.token(visit, 'provider'))));
  const pat = await ready(await openRelayPerson(browser, url(server.token(visit, 'patient')), { transport }));
  try {
    await doc.page.getByTestId('join').click();
    await pat.page.getByTestId('join').click();
    await admitFromQueue(doc.page, 'patient');

    await decodesRising(pat.page, 'provider', `the relay-only patient (${transport}) to decode the provider`);
    await decodesRising(doc.page, 'patient', `the provider to decode the relay-only patient (${transport})`);

    // The init script left exactly the one URL of this transport, and the page used it.
    const used = await pat.page.evaluate(() => window.__iceServersUsed);
    assert.ok(used.length >= 1 && used.every((urls) => urls.length === 1
      && urls[0] === turn.urls[{ udp: 0, tcp: 1, tls: 2 }[transport]]),
    `ICE servers used: ${JSON.stringify(used)} (configured ${JSON.stringify(turn.urls)})`);

    const pairs = await waitFor(async () => {
      const ps = await selectedPairs(pat.page);
      return ps.length > 0 && ps.every((p) => p.pair && p.pair.state === 'succeeded') ? ps : null;
    }, { what: 'a selected candidate pair', timeout: T });
    for (const { connectionState, pair, all } of pairs) {
      assert.equal(connectionState, 'connected');
      assert.equal(pair.local.candidateType, 'relay', JSON.stringify(pair));
      assert.equal(pair.local.relayProtocol, relayProtocol, JSON.stringify(pair));
      assert.ok(pair.bytesSent > 0, JSON.stringify(pair));
      // Every byte in either direction went through a relay of this protocol. (The browser may
      // hold two relays, one per local network, and the SFU may answer on the other nominated
      // one: so the received bytes are summed over all pairs, not read off the selected one.)
      const carrying = all.filter((p) => p.bytesSent > 0 || p.bytesReceived > 0);
      assert.ok(carrying.every((p) => p.local.candidateType === 'relay' && p.local.relayProtocol === relayProtocol),
        JSON.stringify(all));
      assert.ok(carrying.reduce((n, p) => n + p.bytesReceived, 0) > 0, JSON.stringify(all));
    }
    // bedside-turn relayed it on that transport, both ways.
    assert.ok(await allocations(transport) >= 1, `a live ${transport} allocation`);
    assert.ok(await relayed(transport, 'to_peer') > base.toPeer + 100, `${transport} packets relayed to the SFU`);
    assert.ok(await relayed(transport, 'to_client') > base.toClient + 100, `${transport} packets relayed to the patient`);
  } finally {
    await pat.context.close();
    await doc.context.close();
  }
  if (transport !== 'udp') {
    // A TCP/TLS allocation is freed as soon as its connection closes.
    await waitFor(async () => (await allocations(transport)) === 0,
      { what: `the ${transport} allocation to be freed with its connection`, timeout: T });
  }
}

test('relay-only over TURN/UDP: joins, decodes video, selected pair is a UDP relay', { timeout: 180000 }, async () => {
  await relayCall(chrome.browser, 'udp', 'udp', 'turn-udp');
});

test('relay-only over TURN/TCP: joins, decodes video, selected pair is a TCP relay', { timeout: 180000 }, async () => {
  await relayCall(chrome.browser, 'tcp', 'tcp', 'turn-tcp');
});

test('relay-only over TURN/TLS: joins, decodes video, selected pair is a TLS relay', { timeout: 180000 }, async () => {
  // Only this browser ignores certificate errors: the TURN certificate is self-signed.
  const tlsChrome = await launchBrowserWith({ extraArgs: ['--ignore-certificate-errors'] });
  try {
    await relayCall(tlsChrome.browser, 'tls', 'tls', 'turn-tls');
  } finally {
    await tlsChrome.close();
  }
});

test('a wrong TURN password: 401, no relay candidate, no media connection', { timeout: 180000 }, async () => {
  const failuresBefore = await turn.metric(/^bedside_turn_auth_failures_total/);
  const doc = await ready(await openPerson(chrome.browser, url(server.token('turn-bad', 'provider'))));
  const pat = await ready(await openRelayPerson(chrome.browser, url(server.token('turn-bad', 'patient')),
    { transport: 'udp', credential: 'bm90LXRoZS1yaWdodC1wYXNzd29yZA==' }));
  try {
    await doc.page.getByTestId('join').click();
    await pat.page.getByTestId('join').click();
    await admitFromQueue(doc.page, 'patient');
    const errors = await waitFor(async () => {
      const e = await pat.page.evaluate(() => window.__iceErrors);
      return e.some((x) => x.errorCode === 401) ? e : null;
    }, { what: 'an icecandidateerror with 401', timeout: T });
    assert.ok(errors.every((x) => x.url === undefined || x.url.startsWith('turn:')), JSON.stringify(errors));
    // Gathering ends without a single candidate (relay-only, and the relay refused us).
    await waitFor(() => pat.page.evaluate(() => window.__pcs.length > 0
      && window.__pcs.every((pc) => pc.iceGatheringState === 'complete')),
    { what: 'ICE gathering to complete', timeout: T });
    const state = await pat.page.evaluate(() => ({
      candidates: window.__candidates,
      connection: window.__pcs.map((pc) => pc.connectionState),
      ice: window.__pcs.map((pc) => pc.iceConnectionState),
    }));
    assert.deepEqual(state.candidates, [], JSON.stringify(state));
    assert.ok(state.connection.every((s) => s !== 'connected'), JSON.stringify(state));
    assert.equal((await remoteView(pat.page)).totalPacketsReceived, 0);
    assert.ok(await turn.metric(/^bedside_turn_auth_failures_total/) > failuresBefore, 'bedside-turn counted the refusal');
  } finally {
    await pat.context.close();
    await doc.context.close();
  }
});

test('the TURN secret never appears in the logs of bedside or bedside-turn', () => {
  for (const [name, log] of [['bedside', server.logs()], ['bedside-turn', turn.logs()]]) {
    assert.ok(log.length > 0, `${name} logged something`);
    assert.ok(!log.includes(turnSecret), `${name} logged the TURN secret`);
    assert.ok(!log.includes('eyJ'), `${name} logged a token`);
  }
});
