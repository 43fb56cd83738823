// The join token: taken from the URL fragment (never sent to the server in a request line),
// then removed from the address bar. It stays in this tab's sessionStorage only so a reload
// during the visit can rejoin, and is removed on every ending. Nothing else about the person
// (name, reason) is ever written to browser storage.
const KEY = 'bedside.token';
const REJOIN = 'bedside.autojoin';

/** The token from `#token=…` (then stored, and the fragment cleared), or the stored one. */
export function takeToken() {
  const fromHash = new URLSearchParams(location.hash.slice(1)).get('token');
  if (fromHash) {
    sessionStorage.setItem(KEY, fromHash);
    sessionStorage.removeItem(REJOIN);
    history.replaceState(null, '', location.pathname);
    return fromHash;
  }
  return sessionStorage.getItem(KEY);
}

/** A fragment with a new token is in the address bar (a new link pasted into this tab). */
export function hashHasToken() {
  return new URLSearchParams(location.hash.slice(1)).has('token');
}

export function clearToken() {
  sessionStorage.removeItem(KEY);
  sessionStorage.removeItem(REJOIN);
}

/** The visit was joined: a reload of this tab rejoins by itself. */
export function markJoined() { sessionStorage.setItem(REJOIN, '1'); }
export function rejoinOnLoad() { return sessionStorage.getItem(REJOIN) === '1'; }

/**
 * The token's times and language, read (not verified: the server does that) so the page can
 * speak the right language and tell an early arrival when the link opens. Only these fields
 * are returned: the name and reason are left alone.
 */
export function readClaims(token) {
  try {
    const body = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    const json = JSON.parse(new TextDecoder().decode(Uint8Array.from(atob(body), (c) => c.charCodeAt(0))));
    return {
      nbf: typeof json.nbf === 'number' ? json.nbf : null,
      exp: typeof json.exp === 'number' ? json.exp : null,
      locale: typeof json.locale === 'string' ? json.locale : null,
    };
  } catch (_) {
    return { nbf: null, exp: null, locale: null };
  }
}
