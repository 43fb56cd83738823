// Short sounds the page plays: a clinician's "someone is waiting", a patient's "you are let
// in", and the speaker test. Made here as WAV data (no files to fetch) and played through an
// <audio> element on the chosen speaker (`data-sound` names which, for people and tests).
import { routeToSpeaker } from './devices.js';

const RATE = 22050;

/** A WAV blob of `notes`: [frequency Hz, seconds] in turn, each faded in and out. */
function wav(notes, volume = 0.35) {
  const total = notes.reduce((n, [, s]) => n + Math.round(s * RATE), 0);
  const buf = new DataView(new ArrayBuffer(44 + total * 2));
  const text = (off, s) => { for (let i = 0; i < s.length; i++) buf.setUint8(off + i, s.charCodeAt(i)); };
  text(0, 'RIFF'); buf.setUint32(4, 36 + total * 2, true); text(8, 'WAVE');
  text(12, 'fmt '); buf.setUint32(16, 16, true); buf.setUint16(20, 1, true); buf.setUint16(22, 1, true);
  buf.setUint32(24, RATE, true); buf.setUint32(28, RATE * 2, true); buf.setUint16(32, 2, true); buf.setUint16(34, 16, true);
  text(36, 'data'); buf.setUint32(40, total * 2, true);
  let at = 0;
  for (const [freq, seconds] of notes) {
    const n = Math.round(seconds * RATE);
    for (let i = 0; i < n; i++) {
      const fade = Math.min(1, i / 400, (n - i) / 400);
      const v = freq ? Math.sin((2 * Math.PI * freq * i) / RATE) * volume * fade : 0;
      buf.setInt16(44 + (at + i) * 2, Math.round(v * 32767), true);
    }
    at += n;
  }
  return new Blob([buf], { type: 'audio/wav' });
}

const SOUNDS = {
  arrival: [[660, 0.18], [0, 0.06], [880, 0.28]],
  admitted: [[523, 0.15], [659, 0.15], [784, 0.3]],
  test: [[440, 0.5], [0, 0.1], [554, 0.5], [0, 0.1], [659, 0.7]],
};
const urls = {};

/** Plays one of the page's sounds; resolves once it started (or could not). */
export async function play(name) {
  if (!urls[name]) urls[name] = URL.createObjectURL(wav(SOUNDS[name]));
  const el = new Audio(urls[name]);
  el.dataset.sound = name;
  await routeToSpeaker(el);
  try {
    await el.play();
    return true;
  } catch (_) {
    // Autoplay refused (no click on the page yet): the title and the notice still tell.
    return false;
  }
}
