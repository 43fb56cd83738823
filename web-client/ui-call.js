// The call screen: remote tiles (the other person large, oneself small, a shared screen
// largest), their badges (muted, camera off, no camera, no microphone, reconnecting, hidden),
// the active speaker from audio levels, and the always-visible control bar with its keyboard
// shortcuts.
import { $, el, announce } from './dom.js';
import { t, onLanguageChange } from './i18n.js';
import { state } from './state.js';
import { local, routeToSpeaker } from './devices.js';

const SPEAKING_LEVEL = 0.02;
const STALL_MS = 4000;

export function label(p) {
  return p.name || t(`role.${p.role}`);
}

function tileSelector(participant, kind) {
  return `[data-testid="remote-tile"][data-participant="${participant}"][data-kind="${kind}"]`;
}

/** The tile of a participant's camera (or screen), made on first need. */
export function tileFor(participant, kind = 'camera') {
  let tile = document.querySelector(tileSelector(participant, kind));
  if (tile) return tile;
  const info = state.participants.get(participant) || { role: 'unknown' };
  tile = el('figure', {
    class: `tile remote ${kind}`, 'data-testid': 'remote-tile', 'data-participant': participant,
    'data-role': info.role, 'data-kind': kind,
  });
  const video = el('video', { autoplay: true, playsinline: true });
  video.muted = true; // sound plays through the <audio> element
  const audio = el('audio', { autoplay: true });
  routeToSpeaker(audio);
  tile.append(video, audio, el('span', { class: 'placeholder' }), el('figcaption'), el('span', { class: 'badges' }));
  $('tiles').append(tile);
  renderTile(participant);
  layout();
  return tile;
}

export function removeTiles(participant) {
  document.querySelectorAll(`[data-testid="remote-tile"][data-participant="${participant}"]`).forEach((t) => t.remove());
  layout();
}

function badge(name, text) {
  return el('span', { class: `badge badge-${name}`, 'data-testid': `badge-${name}`, text });
}

/** Caption and badges of a participant's tiles, from their info and media state. */
export function renderTile(participant) {
  const info = state.participants.get(participant);
  if (!info) return;
  for (const tile of document.querySelectorAll(`[data-testid="remote-tile"][data-participant="${participant}"]`)) {
    const screen = tile.dataset.kind === 'screen';
    tile.querySelector('figcaption').textContent = screen ? t('call.screenOf', { name: label(info) }) : label(info);
    if (screen) continue;
    const media = info.media || { audio: 'on', video: 'on' };
    tile.dataset.audio = media.audio;
    tile.dataset.video = media.video;
    const badges = [];
    if (media.audio === 'off') badges.push(badge('muted', t('badge.muted')));
    if (media.audio === 'none') badges.push(badge('no-mic', t('badge.noMic')));
    if (media.video === 'off') badges.push(badge('camera-off', t('badge.cameraOff')));
    if (media.video === 'none') badges.push(badge('no-camera', t('badge.noCamera')));
    // Group visits: a patient's camera others may not see (the clinician still does).
    const hidden = state.visitType === 'group' && ['patient', 'caregiver'].includes(info.role) && !info.shown;
    if (hidden) badges.push(badge('hidden', state.role === 'provider' || state.role === 'chaperone' || state.role === 'supervisor' ? t('badge.hiddenFromPatients') : t('badge.hidden')));
    if (tile.dataset.stalled === '1') badges.push(badge('reconnecting', t('badge.reconnecting')));
    tile.querySelector('.badges').replaceChildren(...badges);
    const noPicture = media.video !== 'on' || local.audioOnly || !tile.querySelector('video').srcObject;
    tile.classList.toggle('no-picture', noPicture);
    tile.querySelector('.placeholder').textContent = noPicture ? label(info).slice(0, 1).toUpperCase() : '';
  }
}

/** My own tile: badges for my own state. */
export function renderLocal() {
  const badges = [];
  if (!local.audio) badges.push(badge('no-mic', t('badge.noMic')));
  else if (!local.micOn) badges.push(badge('muted', t('badge.muted')));
  if (!local.video) badges.push(badge(local.videoProblem ? 'no-camera' : 'camera-off', local.videoProblem ? t('badge.noCamera') : t('badge.cameraOff')));
  if (state.reconnecting) badges.push(badge('reconnecting', t('badge.reconnecting')));
  $('local-badges').replaceChildren(...badges);
  $('local-video').srcObject = local.video ? new MediaStream([local.video]) : null;
  document.querySelector('[data-testid="local-tile"]').classList.toggle('no-picture', !local.video);
  renderControls();
}

/** The stage: a shared screen takes the stage; one other person fills it; more share it. */
export function layout() {
  const tiles = [...document.querySelectorAll('#tiles > .tile')];
  const screens = tiles.filter((x) => x.dataset.kind === 'screen');
  const stage = $('stage');
  stage.classList.toggle('has-screen', screens.length > 0);
  stage.dataset.count = String(tiles.length - screens.length);
}

export function attachTrack(info, track) {
  if (state.participants.get(info.participant)?.role === 'recorder') return;
  const kind = info.source === 'screen' ? 'screen' : 'camera';
  const tile = tileFor(info.participant, kind);
  const media = track.kind === 'video' ? tile.querySelector('video') : tile.querySelector('audio');
  const stream = new MediaStream([track]);
  media.srcObject = stream;
  media.play().catch(() => {});
  const clear = () => {
    if (media.srcObject !== stream) return;
    media.srcObject = null;
    if (kind === 'screen') tile.remove();
    layout();
    renderTile(info.participant);
  };
  track.addEventListener('ended', clear);
  track.addEventListener('mute', () => { if (kind === 'screen') setTimeout(() => { if (track.muted) clear(); }, 1000); });
  renderTile(info.participant);
}

// --- controls ------------------------------------------------------------------------------

export function renderControls() {
  const mic = $('toggle-mic');
  mic.disabled = !local.audio;
  mic.textContent = !local.audio ? t('call.noMic') : (local.micOn ? t('call.mute') : t('call.unmute'));
  mic.setAttribute('aria-pressed', String(!!local.audio && !local.micOn));
  mic.classList.toggle('off', !local.micOn || !local.audio);
  const cam = $('toggle-camera');
  const cameraMissing = !!local.videoProblem && !local.video;
  cam.textContent = cameraMissing ? t('call.noCamera') : (local.camOn && !local.audioOnly ? t('call.cameraOff') : t('call.cameraOn'));
  cam.setAttribute('aria-pressed', String(!local.camOn || local.audioOnly));
  cam.classList.toggle('off', !local.video);
  $('audio-only').setAttribute('aria-pressed', String(local.audioOnly));
  $('audio-only').classList.toggle('off', local.audioOnly);
  $('tiles').classList.toggle('audio-only', local.audioOnly);
}

/**
 * Wires the control bar. `actions`: toggleMic, toggleCamera, flipCamera, toggleAudioOnly,
 * leave (each may be async).
 */
export function initControls(actions) {
  $('toggle-mic').addEventListener('click', actions.toggleMic);
  $('toggle-camera').addEventListener('click', actions.toggleCamera);
  $('flip-camera').addEventListener('click', actions.flipCamera);
  $('audio-only').addEventListener('click', actions.toggleAudioOnly);
  // Shortcuts need Alt+Shift, so typing a message never triggers them (WCAG 2.1.4).
  document.addEventListener('keydown', (ev) => {
    if (!ev.altKey || !ev.shiftKey || ev.ctrlKey || ev.metaKey) return;
    if ($('call').hidden) return;
    const act = { KeyM: actions.toggleMic, KeyV: actions.toggleCamera, KeyL: actions.leave }[ev.code];
    if (act) {
      ev.preventDefault();
      act();
    }
  });
  onLanguageChange(() => {
    renderControls();
    renderLocal();
    for (const id of state.participants.keys()) renderTile(id);
  });
}

// --- active speaker and stalled media --------------------------------------------------------

let statsTimer = null;
const lastPackets = new Map();

/** Every second: who speaks (highlight), whose media stopped arriving, the call's path. */
export function startStats(onPath) {
  stopStats();
  statsTimer = setInterval(async () => {
    if (!state.call) return;
    let s;
    try { s = await state.call.stats(); } catch (_) { return; }
    if (s.path) onPath(s.path);
    const now = Date.now();
    let loudest = null;
    let loudestLevel = SPEAKING_LEVEL;
    for (const tile of document.querySelectorAll('[data-testid="remote-tile"][data-kind="camera"]')) {
      const id = Number(tile.dataset.participant);
      const audioTrack = tile.querySelector('audio').srcObject?.getAudioTracks()[0];
      const videoTrack = tile.querySelector('video').srcObject?.getVideoTracks()[0];
      const a = audioTrack && s.byTrack.get(audioTrack.id);
      const v = videoTrack && s.byTrack.get(videoTrack.id);
      const level = a ? a.audioLevel : 0;
      tile.dataset.level = level.toFixed(3);
      if (level > loudestLevel) { loudest = tile; loudestLevel = level; }
      // Nothing at all arrives although something is sent: their connection is in trouble.
      const packets = (a ? a.packets : 0) + (v ? v.packets : 0);
      const media = state.participants.get(id)?.media;
      const expected = (a || v) && (!media || media.audio === 'on' || media.video === 'on');
      const prev = lastPackets.get(id);
      if (!prev || prev.packets !== packets) lastPackets.set(id, { packets, at: now });
      const stalled = expected && prev && prev.packets === packets && now - prev.at > STALL_MS ? '1' : '0';
      if (tile.dataset.stalled !== stalled) {
        tile.dataset.stalled = stalled;
        renderTile(id);
      }
    }
    for (const tile of document.querySelectorAll('#tiles .tile')) tile.classList.toggle('speaking', tile === loudest);
    const speaking = loudest ? state.participants.get(Number(loudest.dataset.participant)) : null;
    $('tiles').dataset.activeSpeaker = speaking ? String(speaking.participant) : '';
  }, 1000);
}

export function stopStats() {
  clearInterval(statsTimer);
  statsTimer = null;
}


