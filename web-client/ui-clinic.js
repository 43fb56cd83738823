// The clinician's side of the call: the waiting queue (admit; deny with a reason field only
// once Deny is chosen), an arrival alert (sound, a count in the tab title, a desktop
// notification where allowed), the people in the visit with their microphone, camera and
// recording consent, Remove and End behind a confirmation, and the recording controls.
import { $, el, announce, setTitle, confirmStep } from './dom.js';
import { t, onLanguageChange } from './i18n.js';
import { state, isClinician, isProvider } from './state.js';
import { label } from './ui-call.js';
import { play } from './sounds.js';

let send = () => {};

function formatWait(ms) {
  const s = Math.floor(ms / 1000);
  return s < 60 ? t('clinic.waitedSeconds', { s }) : t('clinic.waitedMinutes', { m: Math.floor(s / 60), s: s % 60 });
}

function roleTag(role) {
  return el('span', { class: 'role', text: `(${t(`role.${role}`)})` });
}

const known = new Set();
let firstQueue = true;

/** A new queue from the server: render it, and alert for anyone who just arrived. */
export function queueChanged(entries) {
  const arrived = entries.filter((e) => !known.has(e.participant));
  known.clear();
  for (const e of entries) known.add(e.participant);
  state.queue = entries;
  state.queueReceivedAt = Date.now();
  renderQueue();
  if (arrived.length && !firstQueue) alertArrival(arrived);
  firstQueue = false;
  setTitle(undefined, entries.length ? `(${entries.length}) ` : '');
}

function alertArrival(arrived) {
  const names = arrived.map(label).join(', ');
  const text = arrived.length === 1 ? t('clinic.arrivedOne', { name: names }) : t('clinic.arrivedMany', { n: arrived.length });
  announce(text);
  play('arrival');
  const banner = $('arrival-alert');
  banner.textContent = text;
  banner.hidden = false;
  if ('Notification' in window && Notification.permission === 'granted' && document.visibilityState !== 'visible') {
    // No name in a system notification: it can show on a locked screen.
    try { new Notification(t('clinic.notifyTitle'), { body: t('clinic.notifyBody'), tag: 'bedside-queue' }); } catch (_) { /* not allowed here */ }
  }
}

/** Asks once, on the clinician's own click (Join), for desktop notifications. */
export function askNotificationPermission() {
  if ('Notification' in window && Notification.permission === 'default') {
    Notification.requestPermission().catch(() => {});
  }
}

export function renderQueue() {
  const list = $('queue');
  $('queue-count').textContent = `(${state.queue.length})`;
  const elapsed = Date.now() - state.queueReceivedAt;
  const existing = new Map([...list.children].map((li) => [li.dataset.participant, li]));
  const keep = new Set();
  for (const entry of state.queue) {
    const id = String(entry.participant);
    keep.add(id);
    let li = existing.get(id);
    if (!li) {
      li = queueEntry(entry);
      list.append(li);
    }
    const who = li.querySelector('.who');
    who.replaceChildren(`${label(entry)} `, roleTag(entry.role));
    li.querySelector('.reason').textContent = entry.reason ? t('clinic.reason', { reason: entry.reason }) : '';
    li.querySelector('.waited').textContent = formatWait(entry.waited_ms + elapsed);
    li.querySelector('.actions').hidden = !isProvider();
  }
  for (const [id, li] of existing) if (!keep.has(id)) li.remove();
  $('admit-all').hidden = !isProvider() || state.queue.length < 2;
  if (state.queue.length === 0) $('arrival-alert').hidden = true;
}

function queueEntry(entry) {
  const reasonId = `deny-reason-${entry.participant}`;
  const input = el('input', { id: reasonId, maxlength: 500, 'data-testid': 'deny-reason' });
  const denyBox = el('div', { class: 'deny-box' },
    el('label', { for: reasonId, 'data-i18n': 'clinic.denyReasonLabel', text: t('clinic.denyReasonLabel') }),
    input,
    el('div', { class: 'row wrap' },
      el('button', {
        type: 'button', class: 'danger', 'data-testid': 'deny-confirm', 'data-i18n': 'clinic.denyConfirm', text: t('clinic.denyConfirm'),
        onclick: () => send({ type: 'deny', participant: entry.participant, reason: input.value.trim() || undefined }),
      }),
      el('button', {
        type: 'button', 'data-testid': 'deny-cancel', 'data-i18n': 'confirm.cancel', text: t('confirm.cancel'),
        onclick: () => { denyBox.hidden = true; denyButton.focus(); },
      })));
  denyBox.hidden = true;
  const denyButton = el('button', {
    type: 'button', 'data-testid': 'deny', 'data-i18n': 'clinic.deny', text: t('clinic.deny'),
    onclick: () => { denyBox.hidden = false; input.focus(); },
  });
  return el('li', { class: 'queue-entry', 'data-testid': 'queue-entry', 'data-participant': entry.participant, 'data-role': entry.role },
    el('span', { class: 'who' }), el('span', { class: 'reason' }), el('span', { class: 'waited' }),
    el('div', { class: 'actions row wrap' },
      el('button', {
        type: 'button', class: 'primary', 'data-testid': 'admit', 'data-i18n': 'clinic.admit', text: t('clinic.admit'),
        onclick: () => send({ type: 'admit', participant: entry.participant }),
      }),
      denyButton),
    denyBox);
}

// --- people in the visit ---------------------------------------------------------------------

function mediaText(media) {
  if (!media) return '';
  const parts = [];
  if (media.audio === 'off') parts.push(t('badge.muted'));
  if (media.audio === 'none') parts.push(t('badge.noMic'));
  if (media.video === 'off') parts.push(t('badge.cameraOff'));
  if (media.video === 'none') parts.push(t('badge.noCamera'));
  return parts.join(', ');
}

export function renderParticipants() {
  const list = $('participants');
  const me = el('li', { 'data-testid': 'participant-me' }, t('call.you'), roleTag(state.role));
  if (state.recording.active && isClinician() && state.consents.has(state.me)) {
    me.append(consentTag(state.consents.get(state.me)));
  }
  const items = [me];
  for (const p of state.participants.values()) {
    const li = el('li', { 'data-testid': 'participant', 'data-participant': p.participant, 'data-role': p.role },
      el('span', { class: 'who', text: label(p) }), roleTag(p.role));
    const m = mediaText(p.media);
    if (m) li.append(el('span', { class: 'media-state', 'data-testid': 'participant-media', text: m }));
    if (isClinician() && state.recording.active && state.consents.has(p.participant)) {
      li.append(consentTag(state.consents.get(p.participant)));
    }
    if (isProvider()) {
      li.append(el('button', {
        type: 'button', class: 'small danger', 'data-testid': 'remove', text: t('clinic.remove'),
        'aria-label': t('clinic.removeWho', { name: label(p) }),
        onclick: async () => {
          const ok = await confirmStep({
            title: t('clinic.removeTitle', { name: label(p) }),
            text: t('clinic.removeText'),
            ok: t('clinic.remove'),
          });
          if (ok) send({ type: 'remove', participant: p.participant });
        },
      }));
    }
    items.push(li);
  }
  list.replaceChildren(...items);
}

function consentTag(consent) {
  return el('span', { class: `consent consent-${consent}`, 'data-testid': 'participant-consent', 'data-consent': consent, text: t(`clinic.consent.${consent}`) });
}

export function consentsChanged(entries) {
  state.consents = new Map(entries.map((e) => [e.participant, e.consent]));
  renderParticipants();
  renderRecordingPanel();
}

// --- recording ---------------------------------------------------------------------------------

export function renderRecordingPanel() {
  const r = state.recording;
  const provider = isProvider() && state.recordingEnabled;
  $('recording-panel').hidden = !(isClinician() && state.recordingEnabled);
  $('record-start').hidden = !provider || r.active;
  $('record-stop').hidden = !provider || !r.active;
  $('record-pause').hidden = !provider || !r.active || r.paused;
  $('record-resume').hidden = !provider || !r.active || !r.paused;
  const status = $('recording-status');
  status.dataset.recorder = state.recorderPresent ? 'present' : 'absent';
  let key = 'clinic.recOff';
  if (r.active && r.paused) key = 'clinic.recPaused';
  else if (r.active && !state.recorderPresent) key = 'clinic.recStarting';
  else if (r.active && r.recorded) key = 'clinic.recOn';
  else if (r.active) key = 'clinic.recWaitingConsent';
  const agreed = [...state.consents.values()].filter((c) => c === 'accepted').length;
  status.textContent = r.active ? `${t(key)} ${t('clinic.recAgreed', { n: agreed, total: state.consents.size })}` : t(key);
}

export function initClinic({ send: sendFn, endVisit }) {
  send = sendFn;
  $('admit-all').addEventListener('click', () => send({ type: 'admit_all' }));
  $('end-visit').addEventListener('click', async () => {
    const ok = await confirmStep({ title: t('clinic.endTitle'), text: t('clinic.endText'), ok: t('clinic.endVisit') });
    if (ok) endVisit();
  });
  $('record-start').addEventListener('click', () => send({ type: 'record_start' }));
  $('record-stop').addEventListener('click', () => send({ type: 'record_stop' }));
  $('record-pause').addEventListener('click', () => send({ type: 'record_pause' }));
  $('record-resume').addEventListener('click', () => send({ type: 'record_resume' }));
  $('notify-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    send({ type: 'notify_waiting', text: $('notify-text').value });
  });
  setInterval(() => { if (state.queue.length) renderQueue(); }, 1000);
  onLanguageChange(() => {
    renderQueue();
    renderParticipants();
    renderRecordingPanel();
  });
}
