// Media end to end: three Chromium participants in one visit and a fourth in another,
// through the real `bedside dev` binary. Asserts what people would notice: each of the three
// sees and hears the other two, the fourth gets nothing, and someone who leaves disappears.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  ROOT, startDev, launchBrowser, openPerson, remoteView, packetsByTrack, waitFor, sleep,
  processUsage, admitFromQueue,
} from './lib.mjs';

let server;
let chrome;
const figures = {};

before(async () => {
  server = await startDev();
  chrome = await launchBrowser();
});

after(async () => {
  if (chrome) await chrome.close();
  if (server) await server.stop();
  const dir = join(ROOT, 'tests/e2e/artifacts');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'figures.json'), JSON.stringify(figures, null, 2));
  console.log('figures:', JSON.stringify(figures));
});

async function clickJoin(person) {
  const t0 = Date.now();
  await person.page.getByTestId('join').click();
  return t0;
}

/** Every remote tile decodes video and receives audio, and both keep rising. */
async function seesAndHears(person, expected, label) {
  const first = await waitFor(async () => {
    const v = await remoteView(person.page);
    const live = v.tiles.filter((t) => t.framesDecoded > 0 && t.audioPackets > 0);
    return live.length === expected && v.tiles.length === expected ? v : null;
  }, { what: `${label} to decode ${expected} remote participants`, timeout: 45000 });
  await sleep(2000);
  const second = await remoteView(person.page);
  for (const t of first.tiles) {
    const later = second.tiles.find((x) => x.participant === t.participant);
    assert.ok(later, `${label}: tile of ${t.participant} vanished`);
    assert.ok(later.framesDecoded > t.framesDecoded, `${label}: video of ${t.participant} froze`);
    assert.ok(later.audioPackets > t.audioPackets, `${label}: audio of ${t.participant} stopped`);
  }
  return second;
}

test('three participants see and hear each other; another visit is isolated; leaving removes', async () => {
  const visit = 'e2e-visit';
  const url = (token) => `${server.web}/join#token=${token}`;
  const a = await openPerson(chrome.browser, url(server.token(visit, 'provider', ['--name', 'Dr A'])));
  const b = await openPerson(chrome.browser, url(server.token(visit, 'patient',
    ['--name', 'Pat Sentinel-7Q', '--reason', 'Reason Sentinel-9Z'])));
  const d = await openPerson(chrome.browser, url(server.token('other-visit', 'provider')));
  await clickJoin(a);
  await clickJoin(b);
  await clickJoin(d);
  await admitFromQueue(a.page, 'patient');
  await seesAndHears(a, 1, 'A');

  // C (a chaperone, who does not wait) joins last: time from its click to its first decoded
  // remote frame.
  const c = await openPerson(chrome.browser, url(server.token(visit, 'chaperone')));
  const cStart = await clickJoin(c);
  await waitFor(async () => (await remoteView(c.page)).tiles.some((t) => t.framesDecoded > 0),
    { what: 'C to decode a first frame', interval: 50 });
  figures.joinToFirstFrameMs = Date.now() - cStart;

  const views = {};
  for (const [name, p] of Object.entries({ A: a, B: b, C: c })) {
    views[name] = await seesAndHears(p, 2, name);
    const roles = views[name].tiles.map((t) => t.role).sort();
    assert.equal(roles.length, 2);
  }

  // Server cost during the three-party call (plus D alone in its visit).
  const u0 = processUsage(server.pid);
  const w0 = Date.now();
  // Garbage on the media port while the call runs: dropped, the call unaffected.
  const [host, port] = server.media.split(':');
  const sock = dgram.createSocket('udp4');
  const garbage = [Buffer.alloc(0), Buffer.from('80604e2000000000deadbeef', 'hex'),
    Buffer.from('000100082112a442truncated'), Buffer.alloc(1400, 0xff),
    Buffer.from('81c8000c', 'hex'), Buffer.from([0x16, 0xfe, 0xfd, 0, 0])];
  for (let i = 0; i < 200; i++) {
    await new Promise((r) => sock.send(garbage[i % garbage.length], Number(port), host, r));
  }
  sock.close();
  await sleep(10000);
  const u1 = processUsage(server.pid);
  figures.threePartyCall = {
    cpuPercentOfOneCore: Math.round(((u1.cpuSeconds - u0.cpuSeconds) / ((Date.now() - w0) / 1000)) * 1000) / 10,
    rssMiB: Math.round((u1.rssBytes / 1048576) * 10) / 10,
  };
  for (const [name, p] of Object.entries({ A: a, B: b, C: c })) {
    await seesAndHears(p, 2, `${name} after garbage`);
  }
  const metrics = await (await fetch(`${server.admin}/metrics`)).text();
  const dropped = [...metrics.matchAll(/^bedside_media_dropped_datagrams_total\{[^}]*\} (\d+)/gm)]
    .reduce((n, m) => n + Number(m[1]), 0);
  assert.ok(dropped >= 150, `garbage datagrams counted as dropped (${dropped})`);

  // Every metric the Grafana dashboard and the alerts use exists after a call, and no name,
  // reason, token or address is on /metrics.
  const used = new Set();
  for (const file of ['deploy/grafana/bedside.json', 'deploy/prometheus/alerts.yml']) {
    for (const m of readFileSync(join(ROOT, file), 'utf8').matchAll(/bedside_[a-z_]+/g)) used.add(m[0]);
  }
  assert.ok(used.size >= 10, `the dashboard and alerts name metrics (${used.size})`);
  const exposed = new Set([...metrics.matchAll(/^(bedside_[a-z_]+)/gm)].map((m) => m[1]));
  for (const name of used) {
    if (name === 'bedside_overview') continue;
    assert.ok(exposed.has(name), `${name} (used by the dashboard or alerts) is on /metrics`);
  }
  const series = (name, labels = '') => [...metrics.matchAll(new RegExp(`^${name}${labels}[^\\n]* (\\S+)$`, 'gm'))]
    .reduce((n, m) => n + Number(m[1]), 0);
  assert.ok(series('bedside_ice_attempts_total', '\\{outcome="connected"\\}') >= 3, 'ICE successes counted');
  assert.ok(series('bedside_connection_setup_seconds_count') >= 3, 'setup times observed');
  assert.ok(series('bedside_media_packets_total') > 100, 'RTP packets counted');
  assert.ok(series('bedside_ice_selected_candidates_total') >= 3, 'selected candidates counted');
  for (const forbidden of ['Sentinel-7Q', 'Sentinel-9Z', 'eyJ', 'e2e-visit', '127.0.0.1']) {
    assert.ok(!metrics.includes(forbidden), `/metrics contains ${forbidden}`);
  }

  // D, alone in another visit, receives nothing at all.
  const dv = await remoteView(d.page);
  assert.equal(dv.tiles.length, 0, 'the other visit shows no tiles');
  assert.equal(dv.totalPacketsReceived, 0, 'the other visit receives no media');

  // C leaves: A and B lose C's tile, and C's media stops arriving.
  const cTracks = (v) => {
    const t = v.tiles.find((x) => x.role === 'chaperone');
    return [t.videoTrack, t.audioTrack];
  };
  const aTracks = cTracks(views.A);
  const bTracks = cTracks(views.B);
  await c.page.getByTestId('leave').click();
  const leftAt = Date.now();
  for (const [name, p] of [['A', a], ['B', b]]) {
    await waitFor(async () => !(await remoteView(p.page)).tiles.some((t) => t.role === 'chaperone'),
      { what: `${name} to drop C's tile`, timeout: 5000 });
  }
  await sleep(Math.max(0, 3000 - (Date.now() - leftAt)));
  const before1 = await packetsByTrack(a.page, aTracks);
  const beforeB = await packetsByTrack(b.page, bTracks);
  await sleep(2000);
  const after1 = await packetsByTrack(a.page, aTracks);
  const afterB = await packetsByTrack(b.page, bTracks);
  assert.deepEqual(after1, before1, 'A no longer receives C');
  assert.deepEqual(afterB, beforeB, 'B no longer receives C');
  // A and B still see and hear each other.
  await seesAndHears(a, 1, 'A after C left');
  await seesAndHears(b, 1, 'B after C left');

  for (const p of [a, b, c, d]) await p.context.close();
});

test('a join with a bad token shows a visible error and receives nothing', async () => {
  const forged = server.token('e2e-visit', 'patient').replace(/\.[^.]+$/, '.AAAA');
  const e = await openPerson(chrome.browser, `${server.web}/join#token=${forged}`);
  await e.page.getByTestId('join').click();
  const error = e.page.getByTestId('error');
  await error.waitFor({ state: 'visible', timeout: 10000 });
  assert.match(await error.textContent(), /not valid/);
  assert.equal((await remoteView(e.page)).totalPacketsReceived, 0);
  await e.context.close();
});

test('no token, name, reason, SDP or IP address reaches the server log', async () => {
  const logs = server.logs();
  assert.ok(logs.includes('joined'), 'the log has join lines to check');
  for (const forbidden of ['Dr A', 'Sentinel-7Q', 'Sentinel-9Z', 'eyJ', 'candidate:', 'v=0', 'a=fingerprint']) {
    assert.ok(!logs.includes(forbidden), `the server log contains ${JSON.stringify(forbidden)}`);
  }
  const ip = logs.match(/\b\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}\b/);
  assert.equal(ip, null, `the server log contains an IP address: ${ip && ip[0]}`);
});
