// Shared helpers of the browser tests: start the real `bedside` binary on free loopback ports,
// mint tokens with `bedside token`, and drive Debian's Chromium through playwright-core.
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { chromium } from 'playwright-core';

export const ROOT = resolve(new URL('../..', import.meta.url).pathname);
export const BEDSIDE = process.env.BEDSIDE_BIN || join(ROOT, 'target/debug/bedside');

export const CHROMIUM_ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
  '--disable-default-apps', '--disable-domain-reliability', '--no-pings',
  '--autoplay-policy=no-user-gesture-required',
  '--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE localhost , EXCLUDE 127.0.0.1',
  '--use-fake-ui-for-media-stream', '--use-fake-device-for-media-stream',
  '--allow-loopback-in-peer-connection',
];

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Starts `bedside dev` on free ports; resolves once it printed its addresses. */
export async function startDev({ visit = 'e2e-visit' } = {}) {
  const stateDir = mkdtempSync(join(tmpdir(), 'bedside-e2e-'));
  const child = spawn(BEDSIDE, ['dev', '--listen', '127.0.0.1:0', '--admin-listen', '127.0.0.1:0',
    '--state-dir', stateDir, '--visit', visit], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, BEDSIDE_LOG: process.env.BEDSIDE_LOG || 'info' },
  });
  let stdout = '';
  let stderr = '';
  child.stderr.on('data', (d) => { stderr += d; });
  const ready = new Promise((resolveReady, reject) => {
    child.stdout.on('data', (d) => {
      stdout += d;
      const web = stdout.match(/web:\s+(http:\/\/\S+?)\/\s/);
      const admin = stdout.match(/admin:\s+(http:\/\/\S+?)\/metrics/);
      const media = stdout.match(/media:\s+udp (\S+)/);
      if (web && admin && media && stdout.includes('patient:')) {
        resolveReady({ web: web[1], admin: admin[1], media: media[1] });
      }
    });
    child.on('exit', (code) => reject(new Error(`bedside dev exited (${code}): ${stderr}`)));
    setTimeout(() => reject(new Error(`bedside dev did not start: ${stdout} ${stderr}`)), 20000);
  });
  const addrs = await ready;
  return {
    ...addrs,
    pid: child.pid,
    stateDir,
    logs: () => stderr,
    token(visitId, role, extra = []) {
      return execFileSync(BEDSIDE, ['token', '--state-dir', stateDir, '--visit', visitId, '--role', role, ...extra],
        { encoding: 'utf8' }).trim();
    },
    async stop() {
      if (child.exitCode === null) {
        child.kill('SIGTERM');
        await Promise.race([new Promise((r) => child.once('exit', r)), sleep(5000)]);
        if (child.exitCode === null) child.kill('SIGKILL');
      }
      rmSync(stateDir, { recursive: true, force: true });
    },
  };
}

/** CPU seconds (user+system) and RSS bytes of a process, from /proc. */
export function processUsage(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const ticks = Number(fields[11]) + Number(fields[12]);
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const rssKb = Number((status.match(/VmRSS:\s+(\d+)/) || [0, 0])[1]);
  return { cpuSeconds: ticks / 100, rssBytes: rssKb * 1024 };
}

export async function launchBrowser() {
  const home = mkdtempSync(join(tmpdir(), 'bedside-chromium-'));
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: CHROMIUM_ARGS,
    env: { ...process.env, HOME: home, XDG_CONFIG_HOME: home, XDG_CACHE_HOME: home },
  });
  return {
    browser,
    async close() {
      await browser.close();
      rmSync(home, { recursive: true, force: true });
    },
  };
}

// Records every RTCPeerConnection so tests can read getStats() on an unchanged client.
const RECORD_PCS = () => {
  const Orig = window.RTCPeerConnection;
  window.__pcs = [];
  window.RTCPeerConnection = function (...args) {
    const pc = new Orig(...args);
    window.__pcs.push(pc);
    return pc;
  };
  window.RTCPeerConnection.prototype = Orig.prototype;
};

/** One simulated person: a browser context with its own page. */
export async function openPerson(browser, url) {
  const context = await browser.newContext();
  await context.addInitScript(RECORD_PCS);
  const page = await context.newPage();
  page.on('pageerror', (e) => console.error('page error:', e.message));
  await page.goto(url);
  return { context, page };
}

/**
 * What this person sees of each remote participant: for every remote tile, the decoded
 * video frames and received audio packets of the tracks playing in it.
 */
export async function remoteView(page) {
  return page.evaluate(async () => {
    const stats = [];
    for (const pc of window.__pcs || []) {
      if (pc.connectionState === 'closed') continue;
      const report = await pc.getStats();
      report.forEach((s) => { if (s.type === 'inbound-rtp') stats.push(s); });
    }
    const byTrack = new Map(stats.map((s) => [s.trackIdentifier, s]));
    const tiles = [...document.querySelectorAll('[data-testid="remote-tile"]')];
    return {
      totalPacketsReceived: stats.reduce((n, s) => n + (s.packetsReceived || 0), 0),
      // Video streams that actually deliver packets, whoever sent them.
      videoInboundReceiving: stats.filter((s) => s.kind === 'video' && s.packetsReceived > 0).length,
      tiles: tiles.map((t) => {
        const v = t.querySelector('video').srcObject?.getVideoTracks()[0];
        const a = t.querySelector('audio').srcObject?.getAudioTracks()[0];
        const vs = v && byTrack.get(v.id);
        const as = a && byTrack.get(a.id);
        return {
          participant: t.dataset.participant,
          role: t.dataset.role,
          kind: t.dataset.kind,
          videoTrack: v?.id || null,
          audioTrack: a?.id || null,
          framesDecoded: vs?.framesDecoded || 0,
          audioPackets: as?.packetsReceived || 0,
        };
      }),
    };
  });
}

/** Packets received so far on the given inbound track ids (absent tracks count as -1). */
export async function packetsByTrack(page, trackIds) {
  return page.evaluate(async (ids) => {
    const out = {};
    for (const id of ids) out[id] = -1;
    for (const pc of window.__pcs || []) {
      if (pc.connectionState === 'closed') continue;
      (await pc.getStats()).forEach((s) => {
        if (s.type === 'inbound-rtp' && ids.includes(s.trackIdentifier)) out[s.trackIdentifier] = s.packetsReceived;
      });
    }
    return out;
  }, trackIds);
}

/** Polls `fn` until it returns a truthy value or the time runs out. */
export async function waitFor(fn, { timeout = 30000, interval = 250, what = 'condition' } = {}) {
  const end = Date.now() + timeout;
  let last;
  while (Date.now() < end) {
    last = await fn();
    if (last) return last;
    await sleep(interval);
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** The provider admits the waiting participant whose queue entry appears (by role if given). */
export async function admitFromQueue(providerPage, role) {
  const sel = role ? `[data-testid="queue-entry"][data-role="${role}"]` : '[data-testid="queue-entry"]';
  const entry = providerPage.locator(sel).first();
  await entry.waitFor({ state: 'visible', timeout: 20000 });
  await entry.getByTestId('admit').click();
}

/** Per remote tile: who it is, and the video frames decoded and audio packets received. */
export async function tilesByParticipant(page) {
  const v = await remoteView(page);
  const out = {};
  for (const t of v.tiles) out[`${t.participant}:${t.kind}`] = t;
  return out;
}
