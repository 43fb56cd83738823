// This person's own devices: the microphone and the camera are asked for separately (a
// missing or refused camera must not cost the microphone), the chosen devices are kept per
// browser (device ids are random per site: no patient data), the microphone meter, and the
// speaker choice for every sound the page plays.
const PREFS = 'bedside.devices';

/** What is known of the local devices. `*Problem`: why a device is not there. */
export const local = {
  audio: null,
  video: null,
  /** null, or 'denied' | 'missing' | 'busy' | 'insecure' | 'failed'. */
  audioProblem: null,
  videoProblem: null,
  micOn: true,
  camOn: true,
  audioOnly: false,
};

function prefs() {
  try { return JSON.parse(localStorage.getItem(PREFS)) || {}; } catch (_) { return {}; }
}

export function preferred(kind) { return prefs()[kind] || null; }

export function savePreference(kind, deviceId) {
  const p = prefs();
  p[kind] = deviceId;
  localStorage.setItem(PREFS, JSON.stringify(p));
}

function problemOf(e) {
  switch (e && e.name) {
    case 'NotAllowedError': case 'SecurityError': return 'denied';
    case 'NotFoundError': case 'OverconstrainedError': return 'missing';
    case 'NotReadableError': case 'AbortError': return 'busy';
    default: return 'failed';
  }
}

const VIDEO = { width: { ideal: 640 }, height: { ideal: 480 }, frameRate: { ideal: 20 } };

/** One getUserMedia for one kind; a remembered device that is gone falls back to any. */
async function open(kind, deviceId) {
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    return { track: null, problem: window.isSecureContext ? 'failed' : 'insecure' };
  }
  const base = kind === 'audio' ? {} : { ...VIDEO };
  const ask = (id) => navigator.mediaDevices.getUserMedia({ [kind]: id ? { ...base, deviceId: { exact: id } } : (kind === 'audio' ? true : base) });
  try {
    const stream = await ask(deviceId);
    return { track: stream.getTracks()[0], problem: null };
  } catch (e) {
    if (deviceId && (e.name === 'OverconstrainedError' || e.name === 'NotFoundError')) {
      try {
        const stream = await ask(null);
        return { track: stream.getTracks()[0], problem: null };
      } catch (e2) {
        return { track: null, problem: problemOf(e2) };
      }
    }
    return { track: null, problem: problemOf(e) };
  }
}

export async function startMicrophone(deviceId = preferred('audioinput')) {
  if (local.audio) local.audio.stop();
  const { track, problem } = await open('audio', deviceId);
  local.audio = track;
  local.audioProblem = problem;
  if (track) track.enabled = local.micOn;
  return track;
}

export async function startCamera(deviceId = preferred('videoinput')) {
  if (local.video) local.video.stop();
  local.video = null;
  const { track, problem } = await open('video', deviceId);
  local.video = track;
  local.videoProblem = problem;
  return track;
}

/** Turns the camera off (its light too); `local.videoProblem` is left as it was. */
export function stopCamera() {
  if (local.video) local.video.stop();
  local.video = null;
}

export function stopAll() {
  if (local.audio) local.audio.stop();
  if (local.video) local.video.stop();
  local.audio = null;
  local.video = null;
}

/** The devices of each kind, labelled (labels appear once a permission was given). */
export async function listDevices() {
  const out = { audioinput: [], videoinput: [], audiooutput: [] };
  if (!navigator.mediaDevices || !navigator.mediaDevices.enumerateDevices) return out;
  for (const d of await navigator.mediaDevices.enumerateDevices()) {
    if (out[d.kind] && d.deviceId) out[d.kind].push({ id: d.deviceId, label: d.label });
  }
  return out;
}

/** The state other participants are told (`media_state`). */
export function mediaState() {
  const audio = !local.audio ? 'none' : (local.micOn ? 'on' : 'off');
  let video;
  if (local.videoProblem && !local.video) video = 'none';
  else video = local.camOn && !local.audioOnly && local.video ? 'on' : 'off';
  return { audio, video };
}

/** Level meters for the microphone: calls `draw(level 0..1)` ten times a second. */
export class MicMeter {
  constructor(draw) {
    this.draw = draw;
    this.ctx = null;
    this.timer = null;
  }

  watch(track) {
    this.stop();
    if (!track || !window.AudioContext) return;
    this.ctx = new AudioContext();
    const analyser = this.ctx.createAnalyser();
    analyser.fftSize = 512;
    this.ctx.createMediaStreamSource(new MediaStream([track])).connect(analyser);
    const data = new Float32Array(analyser.fftSize);
    this.timer = setInterval(() => {
      analyser.getFloatTimeDomainData(data);
      let sum = 0;
      for (const v of data) sum += v * v;
      this.draw(track.enabled ? Math.min(1, Math.sqrt(sum / data.length) * 4) : 0);
    }, 100);
  }

  stop() {
    clearInterval(this.timer);
    if (this.ctx) this.ctx.close().catch(() => {});
    this.ctx = null;
  }
}

// --- speaker ---------------------------------------------------------------------------------

export const speakerSelectable = typeof HTMLMediaElement !== 'undefined' && 'setSinkId' in HTMLMediaElement.prototype;

/** Plays `el` through the chosen speaker, where the browser lets a page choose. */
export async function routeToSpeaker(el) {
  const id = preferred('audiooutput');
  if (!speakerSelectable || !id) return;
  try { await el.setSinkId(id); } catch (_) { /* a speaker that is gone: the default plays */ }
}

// --- help when a permission is refused ----------------------------------------------------

/** Which browser's steps to show for a refused permission (catalogue `help.<name>`). */
export function browserFamily() {
  const ua = navigator.userAgent;
  if (/iPhone|iPad|iPod/.test(ua)) return 'ios';
  if (/Android/.test(ua)) return 'android';
  if (/Edg\//.test(ua)) return 'edge';
  if (/Firefox\//.test(ua)) return 'firefox';
  if (/Chrome\/|Chromium\//.test(ua)) return 'chrome';
  if (/Safari\//.test(ua)) return 'safari';
  return 'other';
}
