// What each server error code means to a person. Every code has a message in the catalogue
// (`error.<code>`), so nobody is shown a raw code; signaling/src/web.rs checks this list and
// the catalogue against the server's codes.

// Codes after which this page is done. `rate_limited` too: a refused join closes, and the page
// never sends fast enough to be refused otherwise.
export const CLOSING = new Set(['message_too_large', 'unsupported_version', 'invalid_token', 'token_expired',
  'media_failed', 'unavailable', 'timeout', 'rate_limited', 'visit_full', 'visit_ended', 'denied',
  'removed', 'wait_timeout', 'session_replaced', 'recording_stopped']);

// The server's own wording of a denial without a reason, and of a knock within the
// cool-down: shown in the page's language instead of repeated in English.
export const SERVER_DEFAULT_DENIALS = new Set([
  'A clinician could not admit you to this visit.',
  'A clinician could not admit you just now. Please wait a few minutes before trying again, or contact the clinic.',
]);

/** The heading of the screen a closing code leaves the person on. */
export function endingTitleKey(code) {
  switch (code) {
    case 'visit_ended': return 'ended.visitEnded';
    case 'denied': return 'ended.denied';
    case 'removed': return 'ended.removed';
    case 'invalid_token': return 'ended.badLink';
    case 'token_expired': return 'ended.badLink';
    case 'session_replaced': return 'ended.elsewhere';
    case 'wait_timeout': return 'ended.waitTimeout';
    default: return 'ended.disconnected';
  }
}
