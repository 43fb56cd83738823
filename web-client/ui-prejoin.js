// The device check before joining (and the self-preview that stays in the waiting room):
// camera and microphone asked for separately, device choice, a test sound, help when a
// permission is refused, and the connection check.
import { $, el } from './dom.js';
import { t, onLanguageChange } from './i18n.js';
import {
  local, startMicrophone, startCamera, listDevices, savePreference, preferred, MicMeter,
  speakerSelectable, browserFamily,
} from './devices.js';
import { play } from './sounds.js';
import { connectionCheck, verdictKey } from './nettest.js';

const meter = new MicMeter((level) => {
  $('mic-level').value = level;
  $('waiting-mic-level').value = level;
});

/** Starts both devices (each on its own) and shows what came of them. */
export async function startDevices() {
  $('device-note').textContent = t('devices.starting');
  await startMicrophone();
  await startCamera();
  showPreview();
  meter.watch(local.audio);
  await fillDeviceLists();
  describeDevices();
}

export function showPreview() {
  const stream = local.video ? new MediaStream([local.video]) : null;
  for (const id of ['preview-video', 'waiting-video']) $(id).srcObject = stream;
  const placeholder = $('preview-placeholder');
  placeholder.hidden = !!local.video;
  placeholder.textContent = local.videoProblem ? t('badge.noCamera') : t('badge.cameraOff');
}

export function watchMicrophone() { meter.watch(local.audio); }
export function stopMeter() { meter.stop(); }

function problemText(kind, problem) {
  return t(`devices.${kind}.${problem}`);
}

/** The note under the preview and, for a refused permission, this browser's steps. */
export function describeDevices() {
  const notes = [];
  if (local.audio && local.video) notes.push(t('devices.bothOk'));
  if (!local.audio) notes.push(problemText('mic', local.audioProblem || 'failed'));
  if (!local.video && local.videoProblem) notes.push(problemText('camera', local.videoProblem));
  if (!local.audio && !local.video) notes.push(t('devices.joinAnyway'));
  $('device-note').textContent = notes.join(' ');
  const refused = local.audioProblem === 'denied' || local.videoProblem === 'denied';
  const trouble = refused || local.audioProblem || local.videoProblem;
  $('permission-help').hidden = !trouble;
  $('permission-help-text').textContent = refused ? t(`help.${browserFamily()}`) : t('help.device');
}

async function fillDeviceLists() {
  const devices = await listDevices();
  const fill = (select, list, kind, current) => {
    select.replaceChildren();
    list.forEach((d, i) => select.append(el('option', { value: d.id, text: d.label || t(`devices.unnamed.${kind}`, { n: i + 1 }) })));
    if (list.length === 0) select.append(el('option', { value: '', text: t('devices.none') }));
    select.disabled = list.length === 0;
    const want = current || preferred(kind);
    if (want && list.some((d) => d.id === want)) select.value = want;
  };
  fill($('mic-select'), devices.audioinput, 'audioinput', local.audio?.getSettings().deviceId);
  fill($('camera-select'), devices.videoinput, 'videoinput', local.video?.getSettings().deviceId);
  fill($('speaker-select'), devices.audiooutput, 'audiooutput', null);
  $('speaker-field').hidden = !speakerSelectable || devices.audiooutput.length === 0;
  return devices;
}

export async function cameraCount() {
  return (await listDevices()).videoinput.length;
}

let netResults = {};
function renderNet(list, results) {
  list.replaceChildren();
  for (const id of ['server', 'udp', 'turn-udp', 'turn-tcp', 'turn-tls']) {
    if (!results[id]) continue;
    list.append(el('li', { 'data-check': id, 'data-outcome': results[id], text: `${t(`net.${id}`)}: ${t(`net.outcome.${results[id]}`)}` }));
  }
  if (results['turn-tls']) list.append(el('li', { class: 'verdict', 'data-testid': 'net-verdict', text: t(verdictKey(results)) }));
}

/** Runs the connection check into `list` with the ICE servers the page has now. */
export async function runNetCheck(button, list, iceServers) {
  // Busy, not disabled: a disabled button would drop the keyboard focus.
  if (button.getAttribute('aria-busy') === 'true') return netResults.results;
  button.setAttribute('aria-busy', 'true');
  const results = {};
  list.replaceChildren(el('li', { text: t('net.running') }));
  await connectionCheck(iceServers, (id, outcome) => { results[id] = outcome; renderNet(list, results); });
  button.removeAttribute('aria-busy');
  netResults = { list, results };
  return results;
}

/**
 * Wires the device check. `onDeviceChange(kind)` tells the call a device changed (it may
 * have to replace a track it sends).
 */
export function initPrejoin({ onDeviceChange, iceServers }) {
  $('mic-select').addEventListener('change', async (ev) => {
    savePreference('audioinput', ev.target.value);
    await startMicrophone(ev.target.value);
    meter.watch(local.audio);
    describeDevices();
    onDeviceChange('audio');
  });
  $('camera-select').addEventListener('change', async (ev) => {
    savePreference('videoinput', ev.target.value);
    if (local.camOn && !local.audioOnly) await startCamera(ev.target.value);
    showPreview();
    describeDevices();
    onDeviceChange('video');
  });
  $('speaker-select').addEventListener('change', (ev) => {
    savePreference('audiooutput', ev.target.value);
    onDeviceChange('speaker');
  });
  $('speaker-test').addEventListener('click', () => play('test'));
  $('retry-devices').addEventListener('click', async () => {
    await startDevices();
    onDeviceChange('audio');
    onDeviceChange('video');
  });
  $('net-test').addEventListener('click', () => runNetCheck($('net-test'), $('net-results'), iceServers()));
  onLanguageChange(() => {
    describeDevices();
    showPreview();
    if (netResults.list) renderNet(netResults.list, netResults.results);
  });
}
