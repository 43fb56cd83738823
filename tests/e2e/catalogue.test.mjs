// The message catalogue without a browser: English and Spanish have the same keys, no text is
// empty, placeholders match between languages, and every key the page uses exists.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from './lib.mjs';

const DIR = join(ROOT, 'web-client');
const { CATALOGUE } = await import(join(DIR, 'messages.js'));

test('English and Spanish are complete and their placeholders agree', () => {
  const en = Object.keys(CATALOGUE.en).sort();
  assert.deepEqual(Object.keys(CATALOGUE).sort(), ['en', 'es']);
  assert.deepEqual(Object.keys(CATALOGUE.es).sort(), en, 'the same keys in both languages');
  const params = (s) => (s.match(/\{\w+\}/g) || []).sort();
  for (const key of en) {
    for (const lang of ['en', 'es']) assert.ok(CATALOGUE[lang][key].trim(), `${lang} ${key} is empty`);
    assert.deepEqual(params(CATALOGUE.es[key]), params(CATALOGUE.en[key]), `${key}: placeholders`);
  }
});

test('every key the page names is in the catalogue', () => {
  const used = new Set();
  const prefixes = new Set();
  for (const file of readdirSync(DIR).filter((f) => f.endsWith('.js') || f.endsWith('.html'))) {
    const text = readFileSync(join(DIR, file), 'utf8');
    for (const m of text.matchAll(/\bt\('([\w.-]+)'/g)) used.add(m[1]);
    for (const m of text.matchAll(/data-i18n(?:-label)?="([\w.-]+)"/g)) used.add(m[1]);
    for (const m of text.matchAll(/'data-i18n': '([\w.-]+)'/g)) used.add(m[1]);
    for (const m of text.matchAll(/Key = '([\w.-]+)'/g)) used.add(m[1]);
    for (const m of text.matchAll(/return '((?:ended|net)\.[\w.-]+)'/g)) used.add(m[1]);
    for (const m of text.matchAll(/setStatus\('([\w.-]+)'\)/g)) used.add(m[1]);
    for (const m of text.matchAll(/showScreen\('\w+', '([\w.-]+)'\)/g)) used.add(m[1]);
    // Keys built at run time, such as t(`error.${code}`): their prefix must have entries.
    for (const m of text.matchAll(/\bt\(`([\w.-]+)\$\{/g)) prefixes.add(m[1]);
  }
  assert.ok(used.size > 120, `found ${used.size} keys`);
  for (const key of used) assert.ok(key in CATALOGUE.en, `${key} is used but not in the catalogue`);
  for (const prefix of prefixes) {
    assert.ok(Object.keys(CATALOGUE.en).some((k) => k.startsWith(prefix)), `no key starts with ${prefix}`);
  }
  // The dynamic families are complete.
  for (const kind of ['mic', 'camera']) {
    for (const problem of ['denied', 'missing', 'busy', 'insecure', 'failed']) assert.ok(`devices.${kind}.${problem}` in CATALOGUE.en);
  }
  for (const family of ['chrome', 'edge', 'firefox', 'safari', 'ios', 'android', 'other']) assert.ok(`help.${family}` in CATALOGUE.en);
  for (const role of ['provider', 'chaperone', 'supervisor', 'patient', 'caregiver', 'interpreter']) assert.ok(`role.${role}` in CATALOGUE.en);
});
