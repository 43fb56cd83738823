// Shared helpers of the browser tests: start the real `bedside` binary on free loopback ports,
// mint tokens with `bedside token`, and drive Debian's Chromium through playwright-core.
import { spawn, execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
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

// ---------------------------------------------------------------------------------------------
// TURN: `bedside serve` with a config, a separate `bedside-turn`, and relay-only participants.

export const BEDSIDE_TURN = process.env.BEDSIDE_TURN_BIN || join(ROOT, 'target/debug/bedside-turn');

/** `n` distinct loopback ports that are free for TCP and UDP alike (bound, then released). */
export async function freePorts(n, host = '127.0.0.1') {
  const net = await import('node:net');
  const dgram = await import('node:dgram');
  const out = [];
  const held = [];
  while (out.length < n) {
    const tcp = net.createServer();
    await new Promise((r, j) => { tcp.once('error', j); tcp.listen(0, host, r); });
    const port = tcp.address().port;
    const udp = dgram.createSocket('udp4');
    const ok = await new Promise((r) => { udp.once('error', () => r(false)); udp.bind(port, host, () => r(true)); });
    held.push(tcp, udp);
    if (ok && !out.includes(port)) out.push(port);
  }
  for (const s of held) { try { s.close(); } catch { /* already closed */ } }
  return out;
}

/** A random secret of `bytes` bytes, printable (for token and TURN secret files). */
export function randomSecret(bytes = 32) {
  return randomBytes(bytes).toString('base64url');
}

/** A throwaway self-signed certificate for `localhost` and 127.0.0.1 (plus `ips`), in `dir`. */
export function throwawayCert(dir, ips = []) {
  const cert = join(dir, 'cert.pem');
  const key = join(dir, 'key.pem');
  const san = ['DNS:localhost', 'IP:127.0.0.1', ...ips.map((ip) => `IP:${ip}`)].join(',');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1',
    '-nodes', '-days', '1', '-subj', '/CN=localhost', '-addext', `subjectAltName=${san}`,
    '-keyout', key, '-out', cert], { stdio: 'ignore' });
  return { cert, key };
}

export function spawnLogged(bin, args, env) {
  const child = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
  let output = '';
  child.stdout.on('data', (d) => { output += d; });
  child.stderr.on('data', (d) => { output += d; });
  return {
    child,
    logs: () => output,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        const exited = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        await Promise.race([exited, sleep(5000)]);
        if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      }
    },
  };
}

/**
 * Starts `bedside-turn` on loopback: UDP and TCP on one port, TLS and plain TCP sharing a
 * second port (throwaway certificate), loopback peers allowed (the SFU is on loopback), and
 * /metrics. Resolves once /metrics answers.
 */
export async function startTurn({ dir, secretFile, host = '127.0.0.1' }) {
  const [port, tlsPort, metricsPort] = await freePorts(3, host);
  const { cert, key } = throwawayCert(dir);
  const proc = spawnLogged(BEDSIDE_TURN, [
    '--listen-udp', `${host}:${port}`, '--listen-tcp', `${host}:${port}`,
    '--listen-tls', `${host}:${tlsPort}`, '--tls-cert', cert, '--tls-key', key,
    '--secret-file', secretFile, '--realm', 'bedside.test', '--relay-ipv4', host,
    '--allow-peer', '127.0.0.0/8', '--metrics-listen', `${host}:${metricsPort}`,
    '--udp-workers', '1',
  ], { BEDSIDE_TURN_LOG: process.env.BEDSIDE_TURN_LOG || 'info' });
  const metricsUrl = `http://${host}:${metricsPort}/metrics`;
  const metrics = async () => {
    const res = await fetch(metricsUrl);
    if (!res.ok) throw new Error(`metrics: ${res.status}`);
    return res.text();
  };
  await waitFor(async () => {
    if (proc.child.exitCode !== null) throw new Error(`bedside-turn exited: ${proc.logs()}`);
    return metrics().then(() => true, () => false);
  }, { timeout: 20000, interval: 100, what: 'bedside-turn to serve /metrics' });
  return {
    ...proc,
    pid: proc.child.pid,
    host,
    port,
    tlsPort,
    urls: [
      `turn:${host}:${port}?transport=udp`,
      `turn:${host}:${port}?transport=tcp`,
      `turns:${host}:${tlsPort}?transport=tcp`,
    ],
    metrics,
    /** Sum of the samples of a metric whose line matches `re` (e.g. /^bedside_turn_allocations\{transport="tls"\}/). */
    async metric(re) {
      return (await metrics()).split('\n').filter((l) => re.test(l))
        .reduce((n, l) => n + Number(l.trim().split(/\s+/).pop()), 0);
    },
  };
}

/**
 * Starts `bedside serve --config FILE` with HS256 tokens, an audit log and `[turn]` settings,
 * HTTP and admin on free loopback ports, media on 127.0.0.1:0. `token(visit, role, extra)`
 * signs with `bedside token --config FILE`.
 */
export async function startServe({ dir, turnUrls = [], turnSecretFile, issuer = 'e2e-scheduler', tls, extraToml = [] }) {
  const [httpPort, adminPort] = await freePorts(2);
  const tokenSecretFile = join(dir, 'token-secret');
  writeFileSync(tokenSecretFile, `${randomSecret(48)}\n`, { mode: 0o600 });
  const toml = (s) => JSON.stringify(s);
  const config = join(dir, 'bedside.toml');
  writeFileSync(config, [
    '[http]', `listen = ${toml(`127.0.0.1:${httpPort}`)}`,
    ...(tls ? [`tls_cert = ${toml(tls.cert)}`, `tls_key = ${toml(tls.key)}`] : []),
    '[admin]', `listen = ${toml(`127.0.0.1:${adminPort}`)}`,
    '[media]', 'bind = "127.0.0.1:0"',
    '[tokens]', `issuer = ${toml(issuer)}`, `hs256_secret_file = ${toml(tokenSecretFile)}`,
    '[log]', 'format = "json"',
    '[audit]', `path = ${toml(join(dir, 'audit.jsonl'))}`,
    '[turn]', `urls = [${turnUrls.map(toml).join(', ')}]`,
    ...(turnSecretFile ? [`secret_file = ${toml(turnSecretFile)}`] : []),
    ...extraToml,
    '',
  ].join('\n'));
  const proc = spawnLogged(BEDSIDE, ['serve', '--config', config],
    { BEDSIDE_LOG: process.env.BEDSIDE_LOG || 'info' });
  const web = `${tls ? 'https' : 'http'}://127.0.0.1:${httpPort}`;
  // The admin listener is plain HTTP either way, so readiness needs no certificate trust.
  await waitFor(async () => {
    if (proc.child.exitCode !== null) throw new Error(`bedside serve exited: ${proc.logs()}`);
    return fetch(`http://127.0.0.1:${adminPort}/healthz`).then((r) => r.ok, () => false);
  }, { timeout: 20000, interval: 100, what: 'bedside serve to be ready' });
  return {
    ...proc,
    pid: proc.child.pid,
    web,
    httpPort,
    admin: `http://127.0.0.1:${adminPort}`,
    config,
    token(visitId, role, extra = []) {
      return execFileSync(BEDSIDE, ['token', '--config', config, '--visit', visitId, '--role', role, ...extra],
        { encoding: 'utf8' }).trim();
    },
  };
}

/** Like `launchBrowser`, with extra Chromium flags and another executable (e.g. a netns wrapper). */
export async function launchBrowserWith({ extraArgs = [], executablePath, hostResolverRules } = {}) {
  const home = mkdtempSync(join(tmpdir(), 'bedside-chromium-'));
  let args = [...CHROMIUM_ARGS, ...extraArgs];
  if (hostResolverRules) {
    args = args.map((a) => (a.startsWith('--host-resolver-rules=') ? `--host-resolver-rules=${hostResolverRules}` : a));
  }
  let browser;
  try {
    browser = await chromium.launch({
      executablePath: executablePath || process.env.CHROMIUM || '/usr/bin/chromium',
      args,
      env: { ...process.env, HOME: home, XDG_CONFIG_HOME: home, XDG_CACHE_HOME: home },
    });
  } catch (e) {
    rmSync(home, { recursive: true, force: true });
    throw e;
  }
  return {
    browser,
    async close() {
      await browser.close();
      rmSync(home, { recursive: true, force: true });
    },
  };
}

// Records every RTCPeerConnection like RECORD_PCS and forces relay-only ICE through the TURN
// server URLs of one transport ('udp': turn:…?transport=udp, 'tcp': turn:…?transport=tcp,
// 'tls': turns:…), optionally with a wrong credential. Also records gathered candidates and
// icecandidateerror events, so tests can tell why a connection did not come up.
const RELAY_ONLY = ({ transport, credential }) => {
  const Orig = window.RTCPeerConnection;
  window.__pcs = [];
  window.__iceErrors = [];
  window.__candidates = [];
  window.__iceServersUsed = [];
  const keep = (url) => {
    const u = String(url).toLowerCase();
    if (transport === 'tls') return u.startsWith('turns:');
    return u.startsWith('turn:') && u.includes(`transport=${transport}`);
  };
  window.RTCPeerConnection = function (config = {}, ...rest) {
    const iceServers = (config.iceServers || [])
      .map((s) => ({ ...s, urls: [].concat(s.urls || []).filter(keep) }))
      .filter((s) => s.urls.length > 0)
      .map((s) => (credential === undefined ? s : { ...s, credential }));
    window.__iceServersUsed.push(iceServers.map((s) => s.urls).flat());
    const pc = new Orig({ ...config, iceServers, iceTransportPolicy: 'relay' }, ...rest);
    pc.addEventListener('icecandidateerror', (e) => {
      window.__iceErrors.push({ errorCode: e.errorCode, errorText: e.errorText, url: e.url });
    });
    pc.addEventListener('icecandidate', (e) => {
      if (e.candidate && e.candidate.candidate) window.__candidates.push(e.candidate.candidate);
    });
    window.__pcs.push(pc);
    return pc;
  };
  window.RTCPeerConnection.prototype = Orig.prototype;
};

/**
 * One simulated person whose RTCPeerConnections use only TURN relays of `transport`
 * ('udp', 'tcp' or 'tls'), optionally with a wrong `credential`. The web client is unchanged.
 */
export async function openRelayPerson(browser, url, { transport, credential } = {}) {
  const context = await browser.newContext();
  await context.addInitScript(RELAY_ONLY, { transport, credential });
  const page = await context.newPage();
  page.on('pageerror', (e) => console.error('page error:', e.message));
  await page.goto(url);
  return { context, page };
}

/**
 * The selected ICE candidate pair of each live RTCPeerConnection on the page (`pair`: its state,
 * bytes, and the local and remote candidates' type, protocol, relayProtocol, address, port,
 * url) and every candidate pair (`all`). Media may arrive on another nominated pair than the
 * one the browser sends on (an ICE-lite server answers on the pair it chose), so checks of
 * "which path carried the media" should look at `all`.
 */
export async function selectedPairs(page) {
  return page.evaluate(async () => {
    const out = [];
    for (const pc of window.__pcs || []) {
      if (pc.connectionState === 'closed') continue;
      const report = await pc.getStats();
      const byId = new Map();
      report.forEach((s) => byId.set(s.id, s));
      let pair = null;
      report.forEach((s) => {
        if (s.type === 'transport' && s.selectedCandidatePairId) pair = byId.get(s.selectedCandidatePairId);
      });
      if (!pair) report.forEach((s) => { if (!pair && s.type === 'candidate-pair' && s.nominated && s.state === 'succeeded') pair = s; });
      const pick = (c) => c && {
        candidateType: c.candidateType, protocol: c.protocol, relayProtocol: c.relayProtocol,
        address: c.address, port: c.port, url: c.url,
      };
      const describe = (p) => p && {
        state: p.state,
        nominated: p.nominated,
        bytesSent: p.bytesSent,
        bytesReceived: p.bytesReceived,
        local: pick(byId.get(p.localCandidateId)),
        remote: pick(byId.get(p.remoteCandidateId)),
      };
      const all = [];
      report.forEach((s) => { if (s.type === 'candidate-pair') all.push(describe(s)); });
      out.push({ connectionState: pc.connectionState, pair: describe(pair), all });
    }
    return out;
  });
}

// ---------------------------------------------------------------------------------------------
// Recording: a tone WAV for Chromium's fake microphone, and WAV/IVF readers for the export.

export const BEDSIDE_RECORDER = process.env.BEDSIDE_RECORDER_BIN || join(ROOT, 'target/debug/bedside-recorder');

/** Writes a 16-bit mono WAV of a sine tone (Chromium loops it as the fake microphone). */
export function writeToneWav(path, { freq, seconds = 30, rate = 48000, amplitude = 0.5 }) {
  const n = seconds * rate;
  const buf = Buffer.alloc(44 + n * 2);
  buf.write('RIFF', 0); buf.writeUInt32LE(36 + n * 2, 4); buf.write('WAVE', 8);
  buf.write('fmt ', 12); buf.writeUInt32LE(16, 16); buf.writeUInt16LE(1, 20); buf.writeUInt16LE(1, 22);
  buf.writeUInt32LE(rate, 24); buf.writeUInt32LE(rate * 2, 28); buf.writeUInt16LE(2, 32); buf.writeUInt16LE(16, 34);
  buf.write('data', 36); buf.writeUInt32LE(n * 2, 40);
  for (let i = 0; i < n; i++) {
    buf.writeInt16LE(Math.round(Math.sin((2 * Math.PI * freq * i) / rate) * amplitude * 32767), 44 + i * 2);
  }
  writeFileSync(path, buf);
}

/** Parses a PCM WAV: sample rate, channels, and the first channel's samples as floats. */
export function readWav(path) {
  const b = readFileSync(path);
  if (b.toString('ascii', 0, 4) !== 'RIFF' || b.toString('ascii', 8, 12) !== 'WAVE') throw new Error(`${path}: not a WAV file`);
  let off = 12;
  let fmt;
  while (off + 8 <= b.length) {
    const id = b.toString('ascii', off, off + 4);
    const size = b.readUInt32LE(off + 4);
    if (id === 'fmt ') {
      fmt = { channels: b.readUInt16LE(off + 10), rate: b.readUInt32LE(off + 12), bits: b.readUInt16LE(off + 22) };
    } else if (id === 'data') {
      if (!fmt || fmt.bits !== 16) throw new Error(`${path}: expected 16-bit PCM`);
      const end = Math.min(b.length, off + 8 + size);
      const frames = Math.floor((end - off - 8) / (2 * fmt.channels));
      const samples = new Float32Array(frames);
      for (let i = 0; i < frames; i++) samples[i] = b.readInt16LE(off + 8 + i * 2 * fmt.channels) / 32768;
      return { ...fmt, samples, seconds: frames / fmt.rate, declaredDataBytes: size, dataBytes: end - off - 8 };
    }
    off += 8 + size + (size % 2);
  }
  throw new Error(`${path}: no data chunk`);
}

/** The strongest frequency (1 Hz steps in [lo, hi]) of one second of `samples` starting at `at` (Goertzel). */
export function dominantFrequency(samples, rate, { at = 0, lo = 100, hi = 2000 } = {}) {
  const n = Math.min(rate, samples.length - at);
  let best = { freq: 0, power: -1 };
  for (let f = lo; f <= hi; f++) {
    const w = (2 * Math.PI * f) / rate;
    const c = 2 * Math.cos(w);
    let s1 = 0; let s2 = 0;
    for (let i = 0; i < n; i++) { const s0 = samples[at + i] + c * s1 - s2; s2 = s1; s1 = s0; }
    const power = s1 * s1 + s2 * s2 - c * s1 * s2;
    if (power > best.power) best = { freq: f, power };
  }
  return best.freq;
}

/** Parses an IVF file: header fields and every frame's bytes. */
export function readIvf(path) {
  const b = readFileSync(path);
  if (b.toString('ascii', 0, 4) !== 'DKIF') throw new Error(`${path}: not an IVF file`);
  const headerLen = b.readUInt16LE(6);
  const out = {
    fourcc: b.toString('ascii', 8, 12), width: b.readUInt16LE(12), height: b.readUInt16LE(14),
    declaredFrames: b.readUInt32LE(24), frames: [],
  };
  let off = headerLen;
  while (off + 12 <= b.length) {
    const size = b.readUInt32LE(off);
    const pts = Number(b.readBigUInt64LE(off + 4));
    if (off + 12 + size > b.length) break;
    out.frames.push({ pts, data: b.subarray(off + 12, off + 12 + size) });
    off += 12 + size;
  }
  return out;
}

/**
 * Decodes VP8 frames with Chromium's own decoder (WebCodecs) in `page`; resolves to the number
 * of frames that decoded and the errors seen.
 */
export async function decodeVp8InBrowser(page, ivf, maxFrames = 120) {
  const frames = ivf.frames.slice(0, maxFrames).map((f) => ({ pts: f.pts, b64: f.data.toString('base64'), key: (f.data[0] & 1) === 0 }));
  return page.evaluate(async ({ frames, width, height }) => {
    let decoded = 0;
    const errors = [];
    const decoder = new VideoDecoder({ output: (f) => { decoded++; f.close(); }, error: (e) => errors.push(String(e)) });
    decoder.configure({ codec: 'vp8', codedWidth: width, codedHeight: height });
    for (const f of frames) {
      const data = Uint8Array.from(atob(f.b64), (c) => c.charCodeAt(0));
      try {
        decoder.decode(new EncodedVideoChunk({ type: f.key ? 'key' : 'delta', timestamp: Math.round(f.pts * 1e6 / 90000), data }));
      } catch (e) { errors.push(String(e)); break; }
    }
    try { await decoder.flush(); } catch (e) { errors.push(String(e)); }
    return { decoded, errors };
  }, { frames, width: ivf.width, height: ivf.height });
}
