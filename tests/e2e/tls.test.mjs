// `bedside serve` with HTTPS accepts a WSS join from Chromium, and a running visit
// survives a certificate rotation (files replaced, then SIGHUP) while new connections get the
// new certificate.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, renameSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import https from 'node:https';
import {
  startServe, throwawayCert, launchBrowserWith, openPerson, remoteView, waitFor, sleep,
} from './lib.mjs';

let dir;
let server;
let chrome;
let live;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'bedside-tls-'));
  mkdirSync(join(dir, 'c1'));
  mkdirSync(join(dir, 'c2'));
  live = throwawayCert(join(dir, 'c1'));
  server = await startServe({ dir, tls: live });
  chrome = await launchBrowserWith({ extraArgs: ['--ignore-certificate-errors'] });
});

after(async () => {
  if (chrome) await chrome.close();
  if (server) await server.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

function servedFingerprint(port) {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host: '127.0.0.1', port, servername: 'localhost', rejectUnauthorized: false }, () => {
      const fp = s.getPeerCertificate().fingerprint256;
      s.end();
      resolve(fp);
    });
    s.on('error', reject);
  });
}

function headers(url) {
  return new Promise((resolve, reject) => {
    https.get(url, { rejectUnauthorized: false }, (res) => {
      res.resume();
      resolve(res.headers);
    }).on('error', reject);
  });
}

async function framesOf(p) {
  return (await remoteView(p.page)).tiles.reduce((n, t) => n + t.framesDecoded, 0);
}

test('a WSS visit connects and survives a certificate reload', async () => {
  const h = await headers(`${server.web}/join`);
  assert.match(h['strict-transport-security'] || '', /max-age=\d+/);
  assert.equal(h['cache-control'], 'no-store');

  const a = await openPerson(chrome.browser, `${server.web}/join#token=${server.token('tls-visit', 'provider')}`);
  const b = await openPerson(chrome.browser, `${server.web}/join#token=${server.token('tls-visit', 'chaperone')}`);
  await a.page.getByTestId('join').click();
  await b.page.getByTestId('join').click();
  for (const p of [a, b]) {
    await waitFor(async () => (await framesOf(p)) > 0, { what: 'decoding over WSS signaling', timeout: 45000 });
  }
  const before1 = await servedFingerprint(server.httpPort);

  // Rotate: new files renamed into place, then SIGHUP.
  const next = throwawayCert(join(dir, 'c2'));
  renameSync(next.cert, live.cert);
  renameSync(next.key, live.key);
  server.child.kill('SIGHUP');
  const after1 = await waitFor(async () => {
    const fp = await servedFingerprint(server.httpPort);
    return fp !== before1 ? fp : null;
  }, { what: 'the new certificate to be served', timeout: 15000 });
  assert.notEqual(after1, before1);

  // The running visit is untouched: same sockets, media still flowing.
  const [fa, fb] = [await framesOf(a), await framesOf(b)];
  await sleep(3000);
  assert.ok((await framesOf(a)) > fa, 'A still decodes after the reload');
  assert.ok((await framesOf(b)) > fb, 'B still decodes after the reload');
  for (const p of [a, b]) {
    assert.equal(await p.page.getByTestId('connection-status').textContent(), 'Connected');
    assert.equal(await p.page.getByTestId('error').isVisible(), false);
  }
  // A newcomer connects with the new certificate.
  const c = await openPerson(chrome.browser, `${server.web}/join#token=${server.token('tls-visit', 'supervisor')}`);
  await c.page.getByTestId('join').click();
  await waitFor(async () => (await framesOf(c)) > 0, { what: 'a newcomer to decode after the reload', timeout: 45000 });
  assert.match(server.logs(), /TLS certificate reloaded/);
  for (const p of [a, b, c]) await p.context.close();
});
