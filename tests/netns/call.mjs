// The browser half of tests/netns/run.sh (run it through that script, not alone): a provider
// in the firewalled client namespace and a patient in the server namespace join one visit;
// both decode each other's video, and the provider's media goes through a TURN/TLS relay.
// The provider's page is the unchanged web client with every configured TURN URL: only the
// firewall leaves TLS on 443 as the way through.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import {
  BEDSIDE, launchBrowserWith, openPerson, remoteView, selectedPairs, waitFor, admitFromQueue,
} from '../e2e/lib.mjs';

const env = (name) => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set: run tests/netns/run.sh`);
  return v;
};
const WEB = env('NETNS_WEB');
const CONFIG = env('NETNS_CONFIG');
const TURN_URL = env('NETNS_TURN_URL');
const T = 45000;
// Only the web and TURN addresses inside the namespaces resolve; everything else stays
// unresolvable. (Chromium's TURN/TLS socket goes through the host resolver even for an IP
// literal: without its EXCLUDE there is no TLS relay candidate at all.)
const rules = ['MAP * ~NOTFOUND', 'EXCLUDE localhost', 'EXCLUDE 127.0.0.1',
  ...env('NETNS_HOSTS').split(/\s+/).map((h) => `EXCLUDE ${h}`)].join(' , ');

const token = (visit, role) => execFileSync(BEDSIDE,
  ['token', '--config', CONFIG, '--visit', visit, '--role', role], { encoding: 'utf8' }).trim();
const url = (role) => `${WEB}/join#token=${token('netns-visit', role)}`;

async function framesFrom(page, role) {
  const t = (await remoteView(page)).tiles.find((x) => x.role === role && x.kind !== 'screen');
  return t ? t.framesDecoded : 0;
}
async function decodesRising(page, role, what) {
  const first = await waitFor(async () => (await framesFrom(page, role)) || null, { what, timeout: T });
  await waitFor(async () => (await framesFrom(page, role)) >= first + 10,
    { what: `${what} (framesDecoded rising)`, timeout: T });
}

// getUserMedia needs a secure context: a plain-HTTP page on 10.231.7.2 is not one (127.0.0.1
// is), and without it the client publishes nothing. Production serves HTTPS; here the flag
// stands in for it.
const secure = `--unsafely-treat-insecure-origin-as-secure=${WEB}`;

const started = Date.now();
// The TURN certificate is self-signed: only the firewalled browser, which uses TURN/TLS,
// ignores certificate errors.
let hospital;
let home;
let code = 0;
try {
  hospital = await launchBrowserWith({
    executablePath: env('NETNS_CHROMIUM_CLIENT'), hostResolverRules: rules, extraArgs: ['--ignore-certificate-errors', secure],
  });
  home = await launchBrowserWith({
    executablePath: env('NETNS_CHROMIUM_SERVER'), hostResolverRules: rules, extraArgs: [secure],
  });
  const doc = await openPerson(hospital.browser, url('provider'));
  const pat = await openPerson(home.browser, url('patient'));
  for (const p of [doc, pat]) await p.page.getByTestId('device-check').waitFor({ state: 'visible', timeout: T });
  await doc.page.getByTestId('join').click();
  await pat.page.getByTestId('join').click();
  await admitFromQueue(doc.page, 'patient');

  await decodesRising(doc.page, 'patient', 'the firewalled provider to decode the patient');
  await decodesRising(pat.page, 'provider', 'the patient to decode the firewalled provider');
  console.log('PASS  netns: the firewalled provider and the patient decode each other\'s video');

  const pairs = await waitFor(async () => {
    const ps = await selectedPairs(doc.page);
    return ps.length > 0 && ps.every((p) => p.pair && p.pair.state === 'succeeded') ? ps : null;
  }, { what: 'the provider\'s selected candidate pair', timeout: T });
  for (const { connectionState, pair, all } of pairs) {
    assert.equal(connectionState, 'connected');
    assert.equal(pair.local.candidateType, 'relay', JSON.stringify(pair));
    assert.equal(pair.local.relayProtocol, 'tls', JSON.stringify(pair));
    assert.equal(pair.local.url, TURN_URL, JSON.stringify(pair));
    const carrying = all.filter((p) => p.bytesSent > 0 || p.bytesReceived > 0);
    assert.ok(carrying.length > 0 && carrying.every((p) => p.local.candidateType === 'relay'
      && p.local.relayProtocol === 'tls'), JSON.stringify(all));
  }
  console.log(`PASS  netns: the provider's selected pair is a TLS relay via ${TURN_URL}`);
  await doc.context.close();
  await pat.context.close();
} catch (e) {
  console.error(`FAIL  netns: ${e.stack || e}`);
  code = 1;
  // What the provider's browser saw: its candidates and pairs, for the failure report.
  for (const ctx of hospital ? hospital.browser.contexts() : []) {
    for (const page of ctx.pages()) {
      const seen = await page.evaluate(async () => {
        const out = [];
        for (const pc of window.__pcs || []) {
          const s = { ice: pc.iceConnectionState, gathering: pc.iceGatheringState, candidates: [], pairs: [] };
          (await pc.getStats()).forEach((r) => {
            if (r.type === 'local-candidate' || r.type === 'remote-candidate') {
              s.candidates.push(`${r.type} ${r.candidateType} ${r.protocol}/${r.relayProtocol || '-'} ${r.address}:${r.port} ${r.url || ''}`);
            }
            if (r.type === 'transport') s.transport = `dtls=${r.dtlsState} role=${r.dtlsRole} ice=${r.iceState} sent=${r.bytesSent} recv=${r.bytesReceived}`;
            if (r.type === 'outbound-rtp' || r.type === 'inbound-rtp') s.pairs.push(`${r.type} ${r.kind} packets=${r.packetsSent ?? r.packetsReceived}`);
            if (r.type === 'candidate-pair') s.pairs.push(`${r.state} nominated=${r.nominated} sent=${r.bytesSent} recv=${r.bytesReceived} requests=${r.requestsSent}/${r.responsesReceived}`);
          });
          out.push(s);
        }
        return out;
      }).catch((err) => `unavailable: ${err.message}`);
      console.error('provider ICE:', JSON.stringify(seen, null, 1));
    }
  }
} finally {
  if (hospital) await hospital.close();
  if (home) await home.close();
}
console.log(`call: ${((Date.now() - started) / 1000).toFixed(1)} s`);
process.exit(code);
