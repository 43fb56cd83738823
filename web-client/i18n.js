// Every string the page shows goes through t(): one catalogue (messages.js), English and
// Spanish. The language is the person's choice on the page (kept for this tab only), else the
// token's `locale` claim, else the browser's languages, else English.
import { CATALOGUE } from './messages.js';

export const LANGUAGES = Object.keys(CATALOGUE);
const CHOICE = 'bedside.language';
let lang = 'en';
const listeners = [];

/** The first supported language among BCP 47 tags (`es-MX` → `es`). */
export function supported(tags) {
  for (const tag of tags) {
    if (typeof tag !== 'string') continue;
    const base = tag.toLowerCase().split('-')[0];
    if (LANGUAGES.includes(base)) return base;
  }
  return null;
}

/** Picks the language at start: the tab's choice, the token's claim, the browser. */
export function initialLanguage(claimed) {
  return supported([sessionStorage.getItem(CHOICE), claimed, ...(navigator.languages || [navigator.language])]) || 'en';
}

export function language() { return lang; }

/** Switches the page's language; `chosen`: the person picked it (kept for this tab). */
export function setLanguage(next, { chosen = false } = {}) {
  if (!LANGUAGES.includes(next)) return;
  lang = next;
  if (chosen) sessionStorage.setItem(CHOICE, next);
  document.documentElement.lang = next;
  translate(document);
  for (const fn of listeners) fn(next);
}

/** A token claim arriving later (`joined.locale`) applies unless the person chose already. */
export function applyClaim(claimed) {
  if (sessionStorage.getItem(CHOICE)) return;
  const l = supported([claimed]);
  if (l && l !== lang) setLanguage(l);
}

export function onLanguageChange(fn) { listeners.push(fn); }

/** The text of `key` with `{name}` placeholders filled from `params` (as text). */
export function t(key, params = {}) {
  const text = CATALOGUE[lang][key] ?? CATALOGUE.en[key];
  if (text === undefined) {
    console.error('missing message', key);
    return key;
  }
  return text.replace(/\{(\w+)\}/g, (_, name) => (params[name] === undefined ? '' : String(params[name])));
}

/** Fills every `data-i18n` element's text and `data-i18n-label` element's aria-label under `root`. */
export function translate(root) {
  for (const e of root.querySelectorAll('[data-i18n]')) e.textContent = t(e.dataset.i18n);
  for (const e of root.querySelectorAll('[data-i18n-label]')) e.setAttribute('aria-label', t(e.dataset.i18nLabel));
}
