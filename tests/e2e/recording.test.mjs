// Recording end to end: `bedside serve` with recording enabled, a separate
// `bedside-recorder run` process, and three people in headless Chromium whose fake microphones
// play known tones. A provider starts recording; the provider and the patient consent, the
// caregiver declines. What a person (or an auditor) would notice is asserted: every client
// shows the recording indicator while it records; the exported WAV of each consenting
// participant lasts as long as the recording (±10 %) and carries that participant's tone; the
// exported video decodes in Chromium's own VP8 decoder; the caregiver has no files at all;
// consent records are in the metadata and the audit log; after `kill -9` of the recorder in a
// second recording, its complete chunks still export.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  ROOT, BEDSIDE_RECORDER, startServe, launchBrowserWith, openPerson, admitFromQueue, waitFor, sleep,
  processUsage, randomSecret, spawnLogged, writeToneWav, readWav, dominantFrequency, readIvf,
  decodeVp8InBrowser, remoteView,
} from './lib.mjs';

const PROVIDER_TONE = 440;
const PATIENT_TONE = 660;

let dir;
let server;
let recorder;
let recorderConfig;
let storage;
let providerChrome;
let patientChrome;
const figures = {};

function startRecorder() {
  return spawnLogged(BEDSIDE_RECORDER, ['run', '--config', recorderConfig],
    { BEDSIDE_LOG: process.env.BEDSIDE_LOG || 'info' });
}

async function recorderConnected(count) {
  await waitFor(() => (server.logs().match(/recorder agent connected/g) || []).length >= count,
    { timeout: 20000, what: 'the recorder agent to connect to bedside' });
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'bedside-rec-e2e-'));
  const secretFile = join(dir, 'recorder-secret');
  writeFileSync(secretFile, `${randomSecret(48)}\n`, { mode: 0o600 });
  server = await startServe({
    dir,
    extraToml: [
      '[recording]', 'enabled = true', 'consent_text_version = "e2e-1"',
      'consent_text = "May we record this visit for your medical record?"',
      `recorder_secret_file = ${JSON.stringify(secretFile)}`,
    ],
  });
  storage = join(dir, 'recordings');
  const kekFile = join(dir, 'kek');
  writeFileSync(kekFile, `${randomBytes(32).toString('hex')}\n`, { mode: 0o600 });
  recorderConfig = join(dir, 'recorder.toml');
  writeFileSync(recorderConfig, [
    `storage_dir = ${JSON.stringify(storage)}`,
    `kek_file = ${JSON.stringify(kekFile)}`,
    'kek_id = "e2e-kek-1"',
    `audit_log = ${JSON.stringify(join(dir, 'recorder-audit.jsonl'))}`,
    `control_url = "ws://127.0.0.1:${server.httpPort}/v1/recorder"`,
    `secret_file = ${JSON.stringify(secretFile)}`,
    'media_ip = "127.0.0.1"',
    '',
  ].join('\n'));
  recorder = startRecorder();
  await recorderConnected(1);
  const provTone = join(dir, 'provider-tone.wav');
  const patTone = join(dir, 'patient-tone.wav');
  writeToneWav(provTone, { freq: PROVIDER_TONE });
  writeToneWav(patTone, { freq: PATIENT_TONE });
  providerChrome = await launchBrowserWith({ extraArgs: [`--use-file-for-fake-audio-capture=${provTone}`] });
  patientChrome = await launchBrowserWith({ extraArgs: [`--use-file-for-fake-audio-capture=${patTone}`] });
});

after(async () => {
  for (const c of [providerChrome, patientChrome]) if (c) await c.close();
  if (recorder) await recorder.stop();
  if (server) await server.stop();
  const out = join(ROOT, 'tests/e2e/artifacts');
  mkdirSync(out, { recursive: true });
  writeFileSync(join(out, 'recording-figures.json'), JSON.stringify(figures, null, 2));
  console.log('recording figures:', JSON.stringify(figures));
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const indicator = (person) => person.page.getByTestId('recording-indicator');

async function indicatorShown(person) {
  return indicator(person).isVisible();
}

/** The participant id each role has, as the provider's participant list shows it. */
async function idsByRole(page) {
  return page.evaluate(() => Object.fromEntries([...document.querySelectorAll('[data-testid="participant"]')]
    .map((li) => [li.dataset.role, li.dataset.participant])));
}

function recordings() {
  return existsSync(storage) ? readdirSync(storage).filter((n) => /^[0-9a-f]{32}$/.test(n)) : [];
}

function runRecorder(args) {
  return spawnSync(BEDSIDE_RECORDER, [...args, '--config', recorderConfig], { encoding: 'utf8' });
}

/** The recorder is in the visit: the clinician's recording status says so (it is never listed). */
async function recorderPresent(page) {
  return (await page.getByTestId('recording-status').getAttribute('data-recorder')) === 'present';
}

/** Each participant's consent as the provider's people list shows it, by role. */
async function consentsByRole(page) {
  return page.evaluate(() => Object.fromEntries([...document.querySelectorAll('[data-testid="participant"]')]
    .map((li) => [li.dataset.role, li.querySelector('[data-testid="participant-consent"]')?.dataset.consent || null])));
}

/** Provider and patient consent, the caregiver declines; resolves when the provider is recorded. */
async function consentRound(provider, patient, caregiver) {
  await provider.page.getByTestId('record-start').click();
  // The provider answers in a panel worded for clinicians; the others in the modal dialog.
  await provider.page.getByTestId('self-consent').waitFor({ state: 'visible', timeout: 15000 });
  assert.equal(await provider.page.getByTestId('consent-dialog').isVisible(), false);
  for (const p of [patient, caregiver]) {
    await p.page.getByTestId('consent-dialog').waitFor({ state: 'visible', timeout: 15000 });
  }
  // What each side sees, for people reviewing the client (tests/e2e/artifacts/screens/).
  const shots = join(ROOT, 'tests/e2e/artifacts/screens');
  mkdirSync(shots, { recursive: true });
  for (const [size, vp] of [['desktop', { width: 1280, height: 800 }], ['phone', { width: 390, height: 844 }]]) {
    for (const [who, p] of [['patient-consent-dialog', patient], ['clinician-consent-panel', provider]]) {
      await p.page.setViewportSize(vp);
      await p.page.screenshot({ path: join(shots, `${who}-${size}.png`) });
    }
  }
  for (const p of [patient, provider]) await p.page.setViewportSize({ width: 1280, height: 720 });
  // The recorder joins on record_start; wait for it so the recorded time starts at consent.
  await waitFor(() => recorderPresent(provider.page), { what: 'the recorder to join', timeout: 20000 });
  assert.equal((await idsByRole(provider.page)).recorder, undefined, 'the recorder is never listed');
  await caregiver.page.getByTestId('consent-decline').click();
  // Each person's recorded time starts when they are told they are recorded.
  const recordedSince = async (person, who) => {
    await person.page.getByTestId(person === provider ? 'self-consent-accept' : 'consent-accept').click();
    await waitFor(async () => (await indicator(person).isVisible()) && /including you/.test(await indicator(person).textContent()),
      { what: `the ${who} to be told they are recorded`, timeout: 15000 });
    return Date.now();
  };
  const patientT0 = await recordedSince(patient, 'patient');
  const providerT0 = await recordedSince(provider, 'provider');
  // The provider sees who agreed; a patient sees nobody's answer.
  await waitFor(async () => {
    const c = await consentsByRole(provider.page);
    return c.patient === 'accepted' && c.caregiver === 'declined';
  }, { what: "the provider to see each participant's consent", timeout: 10000 });
  assert.equal(await patient.page.locator('[data-testid="participant-consent"]').count(), 0);
  return { provider: providerT0, patient: patientT0 };
}

test('only consenting participants are recorded; the export plays the right tones and decodes', async () => {
  const visit = 'e2e-recorded-visit';
  const url = (t) => `${server.web}/join#token=${t}`;
  const provider = await openPerson(providerChrome.browser, url(server.token(visit, 'provider', ['--name', 'Dr Tone'])));
  const patient = await openPerson(patientChrome.browser, url(server.token(visit, 'patient', ['--name', 'Pat Tone'])));
  const caregiver = await openPerson(patientChrome.browser, url(server.token(visit, 'caregiver', ['--name', 'Cara Decline'])));
  await provider.page.getByTestId('join').click();
  await patient.page.getByTestId('join').click();
  await admitFromQueue(provider.page, 'patient');
  await caregiver.page.getByTestId('join').click();
  await admitFromQueue(provider.page, 'caregiver');
  await waitFor(async () => {
    const v = await remoteView(provider.page);
    return v.tiles.filter((t) => t.framesDecoded > 0 && t.audioPackets > 0).length === 2;
  }, { what: 'the provider to see and hear both others', timeout: 45000 });
  for (const p of [provider, patient, caregiver]) assert.equal(await indicatorShown(p), false, 'nothing records yet');

  const ids = await idsByRole(provider.page);
  const providerId = (await idsByRole(patient.page)).provider;
  assert.ok(ids.patient && ids.caregiver && providerId);

  const usage0 = processUsage(recorder.child.pid);
  const since = await consentRound(provider, patient, caregiver);
  const t0 = since.provider;
  for (const p of [provider, patient, caregiver]) {
    await waitFor(() => indicatorShown(p), { what: 'every client to show the recording indicator', timeout: 10000 });
  }
  assert.match(await indicator(caregiver).textContent(), /^● Recording$/, 'the caregiver is told they are not recorded');
  await sleep(10000);
  const usage1 = processUsage(recorder.child.pid);
  const t1 = Date.now();
  await provider.page.getByTestId('record-stop').click();
  for (const p of [provider, patient, caregiver]) {
    await waitFor(async () => !(await indicatorShown(p)), { what: 'the indicator to go off', timeout: 10000 });
  }
  const expectedOf = { provider: (t1 - since.provider) / 1000, patient: (t1 - since.patient) / 1000 };
  figures.recorder_cpu_seconds_per_participant_minute = Number(
    ((usage1.cpuSeconds - usage0.cpuSeconds) / (2 * ((t1 - t0) / 60000))).toFixed(3));
  figures.recorder_rss_mib = Number((usage1.rssBytes / 1048576).toFixed(1));

  // The recorder finishes the recording: metadata written, every stream complete.
  const [id] = await waitFor(() => {
    const r = recordings().filter((n) => existsSync(join(storage, n, 'meta.json.enc')));
    return r.length === 1 ? r : null;
  }, { what: 'the recording to be finished', timeout: 20000 });
  const verify = runRecorder(['verify', '--recording', id]);
  assert.equal(verify.status, 0, `verify: ${verify.stdout} ${verify.stderr}`);
  const onDisk = readdirSync(join(storage, id));
  assert.ok(!onDisk.some((n) => n.endsWith('.wav') || n.endsWith('.ivf') || n === 'meta.json'),
    `no plaintext on disk: ${onDisk}`);
  assert.ok(!onDisk.some((n) => n.startsWith(`p${ids.caregiver}-`)), 'the declining caregiver has no stream');

  const out = join(dir, 'export-1');
  const exp = runRecorder(['export', '--recording', id, '--out', out]);
  assert.equal(exp.status, 0, `export: ${exp.stdout} ${exp.stderr}`);
  const files = readdirSync(out);
  assert.ok(!files.some((n) => n.startsWith(`p${ids.caregiver}-`)), `the caregiver has no files: ${files}`);

  for (const [who, pid, tone] of [['provider', providerId, PROVIDER_TONE], ['patient', ids.patient, PATIENT_TONE]]) {
    const expected = expectedOf[who];
    figures[`${who}_recorded_seconds`] = Number(expected.toFixed(2));
    const wavName = files.find((n) => n.startsWith(`p${pid}-audio`) && n.endsWith('.wav'));
    assert.ok(wavName, `${who} has a WAV: ${files}`);
    const wav = readWav(join(out, wavName));
    assert.equal(wav.declaredDataBytes, wav.dataBytes, `${who}: the WAV header states its real length`);
    figures[`${who}_wav_seconds`] = Number(wav.seconds.toFixed(2));
    assert.ok(Math.abs(wav.seconds - expected) <= expected * 0.1,
      `${who}: WAV lasts ${wav.seconds.toFixed(2)} s, the recording ${expected.toFixed(2)} s`);
    const f = dominantFrequency(wav.samples, wav.rate, { at: Math.floor(wav.samples.length / 2) });
    figures[`${who}_dominant_hz`] = f;
    assert.ok(Math.abs(f - tone) <= 5, `${who}: dominant frequency ${f} Hz, expected ${tone} Hz`);

    const ivfName = files.find((n) => n.startsWith(`p${pid}-video`) && n.endsWith('.ivf'));
    assert.ok(ivfName, `${who} has an IVF: ${files}`);
    const ivf = readIvf(join(out, ivfName));
    assert.equal(ivf.fourcc, 'VP80');
    assert.equal(ivf.declaredFrames, ivf.frames.length, `${who}: the IVF header counts its frames`);
    assert.ok(ivf.frames.length >= 5 * 10, `${who}: ${ivf.frames.length} video frames in ~10 s`);
    const decoded = await decodeVp8InBrowser(provider.page, ivf);
    figures[`${who}_video_frames_decoded`] = decoded.decoded;
    assert.deepEqual(decoded.errors, [], `${who}: VP8 decode errors`);
    assert.ok(decoded.decoded >= Math.min(ivf.frames.length, 120) - 1, `${who}: decoded ${decoded.decoded} frames`);
  }

  const meta = JSON.parse(readFileSync(join(out, 'meta.json'), 'utf8'));
  assert.equal(meta.visit_id, visit);
  const decisions = Object.fromEntries(meta.info.consents.map((c) => [c.participant, c.decision]));
  assert.equal(decisions[`p${providerId}`], 'accepted');
  assert.equal(decisions[`p${ids.patient}`], 'accepted');
  assert.equal(decisions[`p${ids.caregiver}`], 'declined');
  assert.ok(meta.info.consents.every((c) => c.text_version === 'e2e-1'));
  assert.ok(!meta.info.tracks.some((t) => t.participant === `p${ids.caregiver}`));
  const metaText = JSON.stringify(meta);
  for (const phi of ['Dr Tone', 'Pat Tone', 'Cara Decline']) assert.ok(!metaText.includes(phi), `no name in the metadata: ${phi}`);

  const audit = readFileSync(join(dir, 'audit.jsonl'), 'utf8');
  assert.match(audit, /"kind":"recording_start"/);
  assert.match(audit, /"kind":"consent".*"code":"declined:text_version=e2e-1"/);
  assert.match(audit, /"kind":"recording_stop"/);
  const recAudit = readFileSync(join(dir, 'recorder-audit.jsonl'), 'utf8');
  assert.match(recAudit, /"kind":"export"/);

  // A second recording in the same visit; kill -9 the recorder mid-way.
  const before2 = new Set(recordings());
  await consentRound(provider, patient, caregiver);
  await sleep(5000);
  recorder.child.kill('SIGKILL');
  await new Promise((r) => (recorder.child.exitCode !== null || recorder.child.signalCode ? r() : recorder.child.once('exit', r)));
  for (const p of [provider, patient, caregiver]) {
    await waitFor(async () => !(await indicatorShown(p)), { what: 'the indicator to go off when the recorder dies', timeout: 15000 });
  }
  const id2 = recordings().find((n) => !before2.has(n));
  assert.ok(id2, 'the second recording exists');
  const verify2 = runRecorder(['verify', '--recording', id2]);
  assert.equal(verify2.status, 3, `verify reports truncation: ${verify2.stdout} ${verify2.stderr}`);
  const out2 = join(dir, 'export-2');
  const exp2 = runRecorder(['export', '--recording', id2, '--out', out2]);
  assert.equal(exp2.status, 0, `export after kill -9: ${exp2.stdout} ${exp2.stderr}`);
  assert.match(exp2.stdout, /truncated/);
  const files2 = readdirSync(out2);
  const wav2 = files2.find((n) => n.startsWith(`p${providerId}-audio`) && n.endsWith('.wav'));
  assert.ok(wav2, `the provider's audio survived: ${files2}`);
  const w2 = readWav(join(out2, wav2));
  figures.killed_wav_seconds = Number(w2.seconds.toFixed(2));
  assert.ok(w2.seconds >= 3, `complete chunks of ~5 s were exported: ${w2.seconds.toFixed(2)} s`);
  assert.equal(w2.declaredDataBytes, w2.dataBytes, 'the WAV header is fixed up on export');
  assert.ok(Math.abs(dominantFrequency(w2.samples, w2.rate, { at: Math.floor(w2.samples.length / 2) }) - PROVIDER_TONE) <= 5);
  assert.ok(!files2.some((n) => n.startsWith(`p${ids.caregiver}-`)));

  // No names, tokens or SDP in either program's logs.
  for (const [what, logs] of [['bedside', server.logs()], ['recorder', recorder.logs()]]) {
    for (const phi of ['Dr Tone', 'Pat Tone', 'Cara Decline', 'a=fingerprint', 'rec_']) {
      assert.ok(!logs.includes(phi), `${what} log contains ${phi}`);
    }
  }
  recorder = null;
  for (const p of [provider, patient, caregiver]) await p.context.close();
});

// Issue: the recorder over `wss://`. `bedside serve` with HTTPS, its certificate issued by a
// throwaway "hospital" CA that the system does not trust. A recorder naming that CA in
// `ca_file` connects and records a lone provider over TLS (control and signaling); a recorder
// without `ca_file` refuses the certificate, says so, and keeps retrying at its backoff.
// (rustls will not take a self-signed CA:TRUE certificate, like throwawayCert's, as the
// server's own, so this issues a leaf certificate from a CA, as a hospital's PKI does.)
function throwawayCa(caDir) {
  const sh = (args) => {
    const r = spawnSync('openssl', args, { encoding: 'utf8' });
    assert.equal(r.status, 0, `openssl ${args[0]}: ${r.stderr}`);
  };
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  const ca = { cert: join(caDir, 'ca.pem'), key: join(caDir, 'ca.key') };
  sh(['req', '-x509', ...ec, '-days', '1', '-subj', '/CN=Bedside E2E Hospital CA',
    '-keyout', ca.key, '-out', ca.cert]);
  const leaf = { cert: join(caDir, 'leaf.pem'), key: join(caDir, 'leaf.key') };
  const csr = join(caDir, 'leaf.csr');
  const ext = join(caDir, 'leaf.ext');
  writeFileSync(ext, 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n'
    + 'keyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n');
  sh(['req', ...ec, '-subj', '/CN=localhost', '-keyout', leaf.key, '-out', csr]);
  sh(['x509', '-req', '-in', csr, '-CA', ca.cert, '-CAkey', ca.key, '-CAcreateserial', '-days', '1',
    '-extfile', ext, '-out', leaf.cert]);
  return { ca, leaf };
}

test('the recorder connects over wss:// trusting ca_file, and refuses an untrusted certificate', async () => {
  const tdir = mkdtempSync(join(tmpdir(), 'bedside-rec-wss-'));
  let tserver;
  let good;
  let untrusted;
  let chrome;
  try {
    const { ca, leaf } = throwawayCa(tdir);
    const secretFile = join(tdir, 'recorder-secret');
    writeFileSync(secretFile, `${randomSecret(48)}\n`, { mode: 0o600 });
    tserver = await startServe({
      dir: tdir,
      tls: leaf,
      extraToml: [
        '[recording]', 'enabled = true', 'consent_text_version = "e2e-wss"',
        'consent_text = "May we record this visit?"',
        `recorder_secret_file = ${JSON.stringify(secretFile)}`,
      ],
    });
    const tstorage = join(tdir, 'recordings');
    const kekFile = join(tdir, 'kek');
    writeFileSync(kekFile, `${randomBytes(32).toString('hex')}\n`, { mode: 0o600 });
    const configFor = (name, caFile) => {
      const path = join(tdir, `${name}.toml`);
      writeFileSync(path, [
        `storage_dir = ${JSON.stringify(join(tdir, `${name}-recordings`))}`,
        `kek_file = ${JSON.stringify(kekFile)}`,
        'kek_id = "e2e-wss-kek"',
        `audit_log = ${JSON.stringify(join(tdir, `${name}-audit.jsonl`))}`,
        `control_url = "wss://127.0.0.1:${tserver.httpPort}/v1/recorder"`,
        `secret_file = ${JSON.stringify(secretFile)}`,
        'media_ip = "127.0.0.1"',
        ...(caFile ? [`ca_file = ${JSON.stringify(caFile)}`] : []),
        '',
      ].join('\n'));
      return path;
    };
    const env = { BEDSIDE_LOG: process.env.BEDSIDE_LOG || 'info' };
    const untrustedConfig = configFor('untrusted', null);
    untrusted = spawnLogged(BEDSIDE_RECORDER, ['run', '--config', untrustedConfig], env);
    const untrustedStart = Date.now();
    const goodConfig = configFor('good', ca.cert);
    good = spawnLogged(BEDSIDE_RECORDER, ['run', '--config', goodConfig], env);
    await waitFor(() => /recorder agent connected/.test(tserver.logs()),
      { timeout: 20000, what: 'the wss:// recorder to connect to bedside' });
    assert.match(good.logs(), /control connection up/);
    const storageOf = join(tdir, 'good-recordings');

    const tone = join(tdir, 'tone.wav');
    writeToneWav(tone, { freq: PROVIDER_TONE });
    chrome = await launchBrowserWith({
      extraArgs: ['--ignore-certificate-errors', `--use-file-for-fake-audio-capture=${tone}`],
    });
    const provider = await openPerson(chrome.browser,
      `${tserver.web}/join#token=${tserver.token('e2e-wss-visit', 'provider')}`);
    await provider.page.getByTestId('join').click();
    // Alone in the visit, the provider has nobody to decode: wait until their microphone
    // reaches the SFU, so the recorded time below is media time (a loaded CI machine takes a
    // few seconds to connect a debug build).
    await waitFor(() => provider.page.evaluate(async () => {
      for (const pc of window.__pcs || []) {
        let sent = 0;
        (await pc.getStats()).forEach((s) => { if (s.type === 'outbound-rtp' && s.kind === 'audio') sent += s.packetsSent || 0; });
        if (pc.connectionState === 'connected' && sent > 0) return true;
      }
      return false;
    }), { what: 'the provider to send audio', timeout: 30000 });
    await provider.page.getByTestId('record-start').click();
    await provider.page.getByTestId('self-consent').waitFor({ state: 'visible', timeout: 15000 });
    await waitFor(() => recorderPresent(provider.page),
      { what: 'the recorder to join over wss://', timeout: 20000 });
    await provider.page.getByTestId('self-consent-accept').click();
    await waitFor(async () => (await indicator(provider).isVisible()) && /including you/.test(await indicator(provider).textContent()),
      { what: 'the provider to be told they are recorded', timeout: 15000 });
    // The first 64 KiB chunk of the provider's audio (~0.7 s) is on disk: media flows.
    await waitFor(() => existsSync(storageOf) && readdirSync(storageOf).some((r) => {
      const d = join(storageOf, r);
      return existsSync(d) && readdirSync(d).some((f) => /-audio-\d+\.wav\.enc$/.test(f) && statSync(join(d, f)).size > 65536);
    }), { what: "the recorder to write the provider's audio", timeout: 30000 });
    await sleep(3000);
    await provider.page.getByTestId('record-stop').click();
    await waitFor(async () => !(await indicatorShown(provider)), { what: 'the indicator to go off', timeout: 10000 });

    const [id] = await waitFor(() => {
      const r = existsSync(storageOf)
        ? readdirSync(storageOf).filter((n) => /^[0-9a-f]{32}$/.test(n) && existsSync(join(storageOf, n, 'meta.json.enc')))
        : [];
      return r.length === 1 ? r : null;
    }, { what: 'the recording to be finished', timeout: 20000 });
    const cli = (args) => spawnSync(BEDSIDE_RECORDER, [...args, '--config', goodConfig], { encoding: 'utf8' });
    const verify = cli(['verify', '--recording', id]);
    assert.equal(verify.status, 0, `verify: ${verify.stdout} ${verify.stderr}`);
    const out = join(tdir, 'export');
    const exp = cli(['export', '--recording', id, '--out', out]);
    assert.equal(exp.status, 0, `export: ${exp.stdout} ${exp.stderr}`);
    const wavName = readdirSync(out).find((n) => /-audio.*\.wav$/.test(n));
    assert.ok(wavName, `the provider has a WAV: ${readdirSync(out)}`);
    const wav = readWav(join(out, wavName));
    figures.wss_provider_wav_seconds = Number(wav.seconds.toFixed(2));
    assert.ok(wav.seconds >= 2, `the WAV lasts ${wav.seconds.toFixed(2)} s`);
    const f = dominantFrequency(wav.samples, wav.rate, { at: Math.floor(wav.samples.length / 2) });
    assert.ok(Math.abs(f - PROVIDER_TONE) <= 5, `dominant frequency ${f} Hz, expected ${PROVIDER_TONE} Hz`);
    await provider.context.close();

    // The recorder without ca_file: still running, told why, retrying no faster than its
    // backoff (1 s doubling) allows, and it never connected.
    const elapsed = (Date.now() - untrustedStart) / 1000;
    assert.equal(untrusted.child.exitCode, null, `the untrusted recorder exited: ${untrusted.logs()}`);
    assert.equal(untrusted.child.signalCode, null);
    const tries = (untrusted.logs().match(/cannot connect the control connection/g) || []).length;
    assert.match(untrusted.logs(), /certificate was refused: invalid peer certificate: UnknownIssuer.*ca_file/);
    const allowed = Math.ceil(Math.log2(elapsed + 1)) + 1;
    assert.ok(tries >= 1 && tries <= allowed, `${tries} attempts in ${elapsed.toFixed(1)} s (at most ${allowed})`);
    assert.doesNotMatch(untrusted.logs(), /control connection up/);
    assert.equal((tserver.logs().match(/recorder agent connected/g) || []).length, 1);
  } finally {
    if (chrome) await chrome.close();
    for (const p of [good, untrusted]) if (p) await p.stop();
    if (tserver) await tserver.stop();
    rmSync(tdir, { recursive: true, force: true });
  }
});
