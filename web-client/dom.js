// DOM helpers shared by the screens: lookups, building elements (data only ever goes in as
// text, never as HTML), the live region, switching screens with focus on the new heading,
// and modal dialogs (native <dialog>: focus held inside, Escape, a backdrop).
import { t } from './i18n.js';

export const $ = (id) => document.getElementById(id);

/** An element with attributes, `class`, `text`, `on<event>` handlers and children. */
export function el(tag, props = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') e.className = v;
    else if (k === 'text') e.textContent = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? '' : String(v));
  }
  e.append(...children.filter((c) => c !== null && c !== undefined && c !== false));
  return e;
}

const SCREENS = ['prejoin', 'waiting', 'call', 'ended'];
let current = null;

/** Shows one screen, names the tab after it and moves focus to its heading. */
export function showScreen(id, titleKey) {
  for (const s of SCREENS) $(s).hidden = s !== id;
  current = id;
  document.body.dataset.screen = id;
  setTitle(titleKey);
  const heading = $(id).querySelector('h1');
  if (heading) heading.focus({ preventScroll: false });
}

export function screen() { return current; }

let titleKey = 'title.prejoin';
let titlePrefix = '';
/** The tab title: the screen's name, after a count such as "(2)" for a clinician's queue. */
export function setTitle(key = titleKey, prefix = titlePrefix) {
  titleKey = key;
  titlePrefix = prefix;
  document.title = `${prefix}${t(key)}`;
}

/** Says `text` through the polite live region (admission, reconnecting, recording). */
export function announce(text) {
  const region = $('announcer');
  region.textContent = '';
  // A change after a tick is announced even when the same words come twice.
  setTimeout(() => { region.textContent = text; }, 50);
}

export function showError(text) {
  const e = $('error');
  e.textContent = text;
  e.hidden = !text;
}

/**
 * Opens a modal <dialog>; Escape or the backdrop's cancel calls `onCancel`. Focus returns to
 * what had it when the dialog closes.
 */
export function openModal(dialog, { onCancel } = {}) {
  if (dialog.open) return;
  const opener = document.activeElement;
  const cancel = (ev) => {
    ev.preventDefault();
    if (onCancel) onCancel();
  };
  dialog.addEventListener('cancel', cancel);
  dialog.addEventListener('close', () => {
    dialog.removeEventListener('cancel', cancel);
    if (opener && document.contains(opener) && typeof opener.focus === 'function') opener.focus();
  }, { once: true });
  dialog.showModal();
}

export function closeModal(dialog) {
  if (dialog.open) dialog.close();
}

/** Asks before a step that cannot be undone; resolves true only on the confirm button. */
export function confirmStep({ title, text, ok }) {
  const dialog = $('confirm');
  $('confirm-title').textContent = title;
  $('confirm-text').textContent = text;
  $('confirm-ok').textContent = ok;
  $('confirm-cancel').textContent = t('confirm.cancel');
  return new Promise((resolve) => {
    const finish = (answer) => {
      $('confirm-ok').removeEventListener('click', yes);
      $('confirm-cancel').removeEventListener('click', no);
      closeModal(dialog);
      resolve(answer);
    };
    const yes = () => finish(true);
    const no = () => finish(false);
    $('confirm-ok').addEventListener('click', yes);
    $('confirm-cancel').addEventListener('click', no);
    openModal(dialog, { onCancel: no });
    // The safe choice has focus: Enter on a stray key press cancels.
    $('confirm-cancel').focus();
  });
}

/** A time of day in the page's language. */
export function clock(date, lang) {
  return new Intl.DateTimeFormat(lang, { hour: 'numeric', minute: '2-digit' }).format(date);
}
