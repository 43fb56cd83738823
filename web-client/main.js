// Bedside web client: the device check, the waiting room, the clinician's queue and the call,
// over /v1/signal (docs/signaling.md). ES modules, no build step, no framework:
//   main.js        this file: screens in order and the server's messages
//   signaling.js   the WebSocket             media.js     the peer connection
//   devices.js     camera, microphone, speaker   nettest.js   the connection check
//   ui-prejoin.js  device check   ui-call.js  tiles and controls   ui-clinic.js  clinicians
//   i18n.js + messages.js  every string        dom.js  helpers, dialogs    token.js  the link
import { $, showScreen, announce, showError, openModal, closeModal, clock, setTitle } from './dom.js';
import { t, initialLanguage, setLanguage, applyClaim, LANGUAGES, language, onLanguageChange, translate } from './i18n.js';
import { state, isClinician, isProvider } from './state.js';
import { takeToken, clearToken, markJoined, rejoinOnLoad, readClaims, hashHasToken } from './token.js';
import { Signaling } from './signaling.js';
import { Call } from './media.js';
import { local, startCamera, stopCamera, stopAll, mediaState, routeToSpeaker, listDevices } from './devices.js';
import { CLOSING, SERVER_DEFAULT_DENIALS, endingTitleKey } from './errors.js';
import { play } from './sounds.js';
import {
  initPrejoin, startDevices, showPreview, describeDevices, stopMeter, cameraCount, runNetCheck,
} from './ui-prejoin.js';
import {
  tileFor, removeTiles, renderTile, renderLocal, renderControls, attachTrack, initControls, startStats, stopStats,
} from './ui-call.js';
import {
  initClinic, queueChanged, renderParticipants, consentsChanged, renderRecordingPanel, askNotificationPermission, renderQueue,
} from './ui-clinic.js';

let signaling = null;
let devicesReady = Promise.resolve();

function setStatus(key) {
  state.statusKey = key;
  $('status').textContent = t(key);
}

function send(msg) {
  if (signaling) signaling.send(msg);
}

function sendMediaState() {
  send({ type: 'media_state', ...mediaState() });
}

// --- language --------------------------------------------------------------------------------

function initLanguage(claims) {
  const select = $('language');
  for (const l of LANGUAGES) {
    const option = document.createElement('option');
    option.value = l;
    option.textContent = { en: 'English', es: 'Español' }[l];
    option.lang = l;
    select.append(option);
  }
  setLanguage(initialLanguage(claims.locale));
  select.value = language();
  select.addEventListener('change', () => setLanguage(select.value, { chosen: true }));
  onLanguageChange((l) => {
    select.value = l;
    if (state.statusKey) setStatus(state.statusKey);
    setTitle();
    if (state.waiting) renderWaiting();
    if (state.endedKeys) renderEnded();
    renderRecordingIndicator();
    visitOpens(claims);
  });
}

// --- joining -------------------------------------------------------------------------------------

function tooEarly() {
  const { nbf } = readClaims(state.token || '');
  return !!nbf && nbf - 30 > Date.now() / 1000;
}

/** An early arrival is told when the link opens, not that it is bad. */
function visitOpens(claims) {
  const now = Date.now() / 1000;
  const early = claims.nbf && claims.nbf - 30 > now;
  $('visit-opens').hidden = !early;
  if (early) $('visit-opens').textContent = t('prejoin.opensAt', { time: clock(new Date(claims.nbf * 1000), language()) });
  return early;
}

async function join() {
  showError('');
  if (!state.token) {
    showError(t('error.noLink'));
    return;
  }
  $('join').disabled = true;
  setStatus('status.joining');
  // A quick click can come before the camera and microphone are up: wait for them.
  await devicesReady;
  const s = new Signaling({
    onMessage: handle,
    // A socket this page gave up on (an early arrival's) says nothing when it closes.
    onClose: () => { if (signaling === s) socketClosed(); },
    onStepError: stepFailed,
  });
  signaling = s;
  s.connect(state.token);
}

function stepFailed(e) {
  console.error('signaling step failed', e);
  showError(t('error.setup'));
}

function socketClosed() {
  if (state.ended || state.unloading) return;
  // The server closed without saying why (network loss, server restart).
  finish('media_failed', null);
}

// --- server messages -----------------------------------------------------------------------------

async function handle(msg) {
  switch (msg.type) {
    case 'joined':
      state.me = msg.participant;
      state.role = msg.role;
      state.visitType = msg.visit_type;
      state.mayPublish = msg.may_publish || [];
      state.iceServers = msg.ice_servers || [];
      state.recordingEnabled = !!msg.recording_enabled;
      if (msg.locale) applyClaim(msg.locale);
      markJoined();
      document.body.dataset.role = state.role;
      if (isClinician()) askNotificationPermission();
      sendMediaState();
      if (msg.state === 'admitted') await enterCall(msg.participants, false);
      else enterWaiting();
      break;
    case 'waiting':
      state.waiting = { ...state.waiting, position: msg.position, present: !!msg.clinician_present };
      if ((msg.message || null) !== (state.waiting.message || null)) {
        state.waiting.message = msg.message || null;
        state.waiting.messageAt = new Date();
        if (msg.message) announce(t('waiting.newMessage'));
      }
      renderWaiting();
      break;
    case 'admitted':
      // TURN credentials are handed out on admission, not to someone still waiting.
      if (msg.ice_servers && msg.ice_servers.length) state.iceServers = msg.ice_servers;
      await enterCall(msg.participants, true);
      break;
    case 'queue':
      queueChanged(msg.entries);
      break;
    case 'participant_joined':
    case 'participant_updated':
      if (msg.participant.role === 'recorder') {
        state.recorderPresent = true;
        renderRecordingPanel();
        break;
      }
      state.participants.set(msg.participant.participant, msg.participant);
      tileFor(msg.participant.participant);
      renderTile(msg.participant.participant);
      renderParticipants();
      break;
    case 'participant_left':
      if (!state.participants.has(msg.participant)) {
        // The recorder is never listed; its leaving is only a change of recording state.
        state.recorderPresent = false;
        renderRecordingPanel();
        break;
      }
      state.participants.delete(msg.participant);
      removeTiles(msg.participant);
      renderParticipants();
      break;
    case 'answer':
      if (state.call) await state.call.handleAnswer(msg.sdp);
      break;
    case 'offer':
      if (state.call) await state.call.handleOffer(msg.sdp, msg.tracks);
      break;
    case 'consent_request':
      state.consentVersion = msg.text_version;
      state.consent = 'asked';
      $('consent-text').textContent = msg.text;
      renderConsent();
      break;
    case 'consents':
      consentsChanged(msg.entries);
      break;
    case 'recording': {
      const was = state.recording;
      state.recording = msg;
      if (msg.recorded !== was.recorded) announce(msg.recorded ? t('rec.announceOn') : t('rec.announceOff'));
      if (!msg.active) {
        state.consent = null;
        state.consents = new Map();
        state.recorderPresent = false;
      }
      renderRecordingIndicator();
      renderConsent();
      renderRecordingPanel();
      renderParticipants();
      break;
    }
    case 'error':
      if (msg.code === 'negotiation_state' && state.call) {
        state.call.retryOffer();
        return;
      }
      if (msg.code === 'token_expired' && tooEarly()) {
        // The link is good, only not yet: stay on the device check, keep the token.
        const s = signaling;
        signaling = null;
        s.close();
        visitOpens(readClaims(state.token));
        $('join').disabled = false;
        setStatus('status.notConnected');
        showError(t('error.tooEarly'));
        return;
      }
      if (CLOSING.has(msg.code)) finish(msg.code, msg.message);
      else showError(t(`error.${msg.code}`));
      break;
    default:
      // left, pong, and message types newer than this client: nothing to do.
      break;
  }
}

// --- waiting room ---------------------------------------------------------------------------------

function enterWaiting() {
  state.waiting = state.waiting || {};
  showScreen('waiting', 'title.waiting');
  setStatus('status.waiting');
  showPreview();
  renderWaiting();
}

function renderWaiting() {
  const w = state.waiting || {};
  if (w.position) {
    $('waiting-status').textContent = w.position === 1 ? t('waiting.next') : t('waiting.position', { n: w.position });
  }
  if (w.present !== undefined) {
    $('clinician-presence').textContent = w.present ? t('waiting.clinicianHere') : t('waiting.clinicianAway');
    $('clinician-presence').dataset.present = String(w.present);
  }
  $('waiting-message').hidden = !w.message;
  $('waiting-message-text').textContent = w.message || '';
  $('waiting-message-time').textContent = w.message ? t('waiting.messageAt', { time: clock(w.messageAt, language()) }) : '';
}

// --- the call ---------------------------------------------------------------------------------------

async function enterCall(participants, wasWaiting) {
  state.admitted = true;
  state.waiting = null;
  for (const p of participants) {
    if (p.role === 'recorder') { state.recorderPresent = true; continue; }
    state.participants.set(p.participant, p);
    tileFor(p.participant);
  }
  showScreen('call', 'title.call');
  if (wasWaiting) {
    play('admitted');
    announce(t('call.admitted'));
  }
  $('queue-panel').hidden = !isClinician();
  $('notify-form').hidden = !isProvider();
  $('end-visit').hidden = !isProvider();
  $('share-screen').hidden = !state.mayPublish.includes('screen');
  $('show-my-video-label').hidden = !(state.visitType === 'group' && ['patient', 'caregiver'].includes(state.role));
  $('flip-camera').hidden = (await cameraCount()) < 2 || !local.video;
  renderParticipants();
  renderQueue();
  renderRecordingPanel();
  renderConsent();
  renderLocal();
  setStatus('status.connecting');
  await startMedia();
}

async function startMedia() {
  const call = new Call({
    iceServers: state.iceServers,
    mayPublish: state.mayPublish,
    send,
    onTrack: attachTrack,
    onState: connectionChanged,
  });
  call.onScreenEnded = () => { $('share-screen').textContent = t('call.share'); };
  state.call = call;
  await call.start({
    audio: local.audio,
    video: local.camOn && !local.audioOnly ? local.video : null,
    cameraExists: !local.videoProblem,
  });
  startStats(showPath);
}

function connectionChanged(s) {
  const was = state.reconnecting;
  state.reconnecting = s === 'disconnected';
  if (s === 'connected') setStatus('status.connected');
  else if (s === 'failed') setStatus('status.failed');
  else if (s === 'disconnected') setStatus('status.reconnecting');
  if (state.reconnecting && !was) announce(t('status.reconnecting'));
  if (!state.reconnecting && was && s === 'connected') announce(t('call.reconnected'));
  renderLocal();
}

function showPath(path) {
  const key = path.kind === 'direct' ? 'net.pathDirect' : `net.pathRelay.${path.transport}`;
  $('call-path').textContent = t(key);
  $('call-path').dataset.path = `${path.kind}:${path.transport}`;
}

// --- my own devices in the call ----------------------------------------------------------------------

async function toggleMic() {
  if (!local.audio) return;
  local.micOn = !local.micOn;
  // A disabled track sends silence: the others hear nothing at once, without renegotiating.
  local.audio.enabled = local.micOn;
  announce(local.micOn ? t('call.unmuted') : t('call.muted'));
  sendMediaState();
  renderLocal();
}

async function cameraOn(on) {
  if (on) {
    const track = await startCamera();
    if (!track) {
      describeDevices();
      showError(t(`devices.camera.${local.videoProblem || 'failed'}`));
    }
  } else {
    stopCamera();
  }
  if (state.call) await state.call.setCamera(local.video);
  showPreview();
  sendMediaState();
  renderLocal();
}

async function toggleCamera() {
  if (local.videoProblem && !local.video) {
    // No camera so far: try again (someone plugged one in, or allowed it).
    await cameraOn(true);
    if (local.video) local.camOn = true;
    renderLocal();
    return;
  }
  if (local.audioOnly) local.audioOnly = false;
  local.camOn = !local.camOn;
  announce(local.camOn ? t('call.cameraIsOn') : t('call.cameraIsOff'));
  await cameraOn(local.camOn);
  for (const id of state.participants.keys()) renderTile(id);
}

async function toggleAudioOnly() {
  local.audioOnly = !local.audioOnly;
  announce(local.audioOnly ? t('call.audioOnlyOn') : t('call.audioOnlyOff'));
  await cameraOn(!local.audioOnly && local.camOn);
  for (const id of state.participants.keys()) renderTile(id);
}

async function flipCamera() {
  const cams = (await listDevices()).videoinput;
  if (cams.length < 2 || !local.video) return;
  const current = local.video.getSettings().deviceId;
  const next = cams[(cams.findIndex((c) => c.id === current) + 1) % cams.length];
  await startCamera(next.id);
  if (state.call) await state.call.setCamera(local.video);
  showPreview();
  renderLocal();
}

/** A device was changed on the device check (or the call): the call sends the new one. */
async function deviceChanged(kind) {
  if (kind === 'speaker') {
    for (const a of document.querySelectorAll('#tiles audio')) routeToSpeaker(a);
    return;
  }
  // Told even while waiting: the clinician learns of a camera found on "Try again".
  if (!state.call) {
    sendMediaState();
    return;
  }
  if (kind === 'audio') {
    if (local.audio) local.audio.enabled = local.micOn;
    await state.call.setMicrophone(local.audio);
  } else {
    await state.call.setCamera(local.camOn && !local.audioOnly ? local.video : null);
  }
  sendMediaState();
  renderLocal();
}

// --- recording consent ------------------------------------------------------------------------------

function renderRecordingIndicator() {
  const r = state.recording;
  const indicator = $('recording-indicator');
  indicator.hidden = !r.recorded;
  indicator.textContent = r.you ? t('rec.indicatorYou') : t('rec.indicator');
  $('consent-withdraw').hidden = !(r.active && state.consent === 'accepted');
}

/** Patients get the modal consent dialog; clinicians a panel worded for them. */
function renderConsent() {
  const asked = state.consent === 'asked' && state.admitted && !state.ended;
  const clinician = isClinician();
  $('self-consent').hidden = !(asked && clinician);
  const dialog = $('consent');
  if (asked && !clinician) openModal(dialog, { onCancel: () => answerConsent(false) });
  else closeModal(dialog);
  renderRecordingIndicator();
}

function answerConsent(accept) {
  if (!state.consentVersion) return;
  send({ type: accept ? 'consent_accept' : 'consent_decline', text_version: state.consentVersion });
  state.consent = accept ? 'accepted' : 'declined';
  renderConsent();
}

// --- endings ----------------------------------------------------------------------------------------

/** Every ending: media stopped, the token removed from storage, one clear message. */
function finish(code, message) {
  if (state.ended) return;
  state.ended = true;
  clearToken();
  stopStats();
  stopMeter();
  if (state.call) state.call.close();
  stopAll();
  closeModal($('consent'));
  closeModal($('confirm'));
  if (signaling) signaling.close();
  document.querySelectorAll('[data-testid="remote-tile"]').forEach((x) => x.remove());
  state.participants.clear();
  state.endedKeys = { code, message };
  setTitle('title.ended', '');
  renderEnded();
  showScreen('ended', 'title.ended');
  setStatus('status.notInVisit');
}

function renderEnded() {
  const { code, message } = state.endedKeys;
  let title;
  let text;
  let error = '';
  if (code === 'left') {
    title = t('ended.left');
    text = t('ended.leftText');
  } else if (code === 'denied') {
    title = t('ended.denied');
    // The clinician's own words if they gave any; the server's stock sentence is not repeated.
    const own = message && !SERVER_DEFAULT_DENIALS.has(message);
    error = own ? t('ended.deniedReason', { reason: message }) : '';
    text = t('ended.deniedText');
  } else {
    title = t(endingTitleKey(code));
    const plain = ['visit_ended', 'removed', 'session_replaced', 'wait_timeout'].includes(code);
    if (plain) text = t(`error.${code}`);
    else error = t(`error.${code}`);
  }
  $('ended-title').textContent = title;
  $('ended-text').textContent = text || '';
  $('ended-text').hidden = !text;
  showError(error);
}

function leave() {
  send({ type: 'leave' });
  finish('left', null);
}

async function endVisit() {
  send({ type: 'end_visit' });
}

// --- start ---------------------------------------------------------------------------------------------

function init() {
  state.token = takeToken();
  const claims = readClaims(state.token || '');
  initLanguage(claims);
  translate(document);
  setTitle('title.prejoin', '');
  setStatus('status.notConnected');
  renderControls();
  initPrejoin({ onDeviceChange: deviceChanged, iceServers: () => state.iceServers });
  initControls({ toggleMic, toggleCamera, flipCamera, toggleAudioOnly, leave });
  initClinic({ send, endVisit });
  $('join').addEventListener('click', join);
  $('leave').addEventListener('click', leave);
  $('leave-waiting').addEventListener('click', leave);
  $('consent-accept').addEventListener('click', () => answerConsent(true));
  $('consent-decline').addEventListener('click', () => answerConsent(false));
  $('self-consent-accept').addEventListener('click', () => answerConsent(true));
  $('self-consent-decline').addEventListener('click', () => answerConsent(false));
  $('consent-withdraw').addEventListener('click', () => answerConsent(false));
  $('share-screen').addEventListener('click', async () => {
    if (!state.call) return;
    const on = await state.call.toggleScreen();
    $('share-screen').textContent = on ? t('call.stopShare') : t('call.share');
  });
  $('show-my-video').addEventListener('change', (ev) => send({ type: 'show_video', show: ev.target.checked }));
  $('call-net-test').addEventListener('click', () => runNetCheck($('call-net-test'), $('call-net-results'), state.iceServers));
  // A reload keeps the token (to rejoin); only a real ending clears it.
  window.addEventListener('pagehide', () => { state.unloading = true; });
  // A new visit link pasted into this tab: leave what is open and start again with it.
  window.addEventListener('hashchange', () => {
    if (!hashHasToken()) return;
    state.unloading = true;
    if (state.admitted || state.waiting) send({ type: 'leave' });
    takeToken();
    location.reload();
  });

  showScreen('prejoin', 'title.prejoin');
  if (!state.token) {
    showError(t('error.noLink'));
    $('join').disabled = true;
    return;
  }
  visitOpens(claims);
  devicesReady = startDevices().then(() => renderLocal());
  // A reload during a visit rejoins by itself (the grace period keeps the admission).
  if (rejoinOnLoad()) devicesReady.then(join);
}

init();
