// The connection check. What it can test depends on what the page has been given:
// - before joining, and while waiting, the page has no relay (TURN) credentials: the server
//   hands them out only on admission, so a knock on the door cannot buy hours of relay use.
//   It checks that the Bedside server answers over HTTPS and its WebSocket, and that this
//   browser can gather UDP candidates (a direct path is possible from this device);
// - once in the visit, with the credentials, it asks each relay transport the server offers
//   (TURN over UDP, TCP, and TLS on 443) for a relay address, one transport at a time with
//   `iceTransportPolicy: 'relay'`, and the call itself reports which path it took.
// Every peer connection it opens is closed again within a few seconds.
const GATHER_MS = 6000;

async function serverAnswers() {
  try {
    const res = await fetch('/healthz', { cache: 'no-store' });
    if (!res.ok) return false;
  } catch (_) {
    return false;
  }
  return new Promise((resolve) => {
    const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
    let ws;
    try { ws = new WebSocket(`${scheme}://${location.host}/v1/signal`); } catch (_) { resolve(false); return; }
    const done = (ok) => { clearTimeout(timer); try { ws.close(1000); } catch (_) { /* closed */ } resolve(ok); };
    const timer = setTimeout(() => done(false), GATHER_MS);
    ws.onopen = () => done(true);
    ws.onerror = () => done(false);
  });
}

/** The candidates one RTCPeerConnection gathers with `config`, until done or `GATHER_MS`. */
async function gather(config) {
  const pc = new RTCPeerConnection(config);
  const found = [];
  try {
    pc.createDataChannel('probe');
    const complete = new Promise((resolve) => {
      pc.onicecandidate = (ev) => {
        if (!ev.candidate || !ev.candidate.candidate) { resolve(); return; }
        found.push({ type: ev.candidate.type, protocol: ev.candidate.protocol, relayProtocol: ev.candidate.relayProtocol });
        if (config.iceTransportPolicy === 'relay' && ev.candidate.type === 'relay') resolve();
      };
      pc.onicegatheringstatechange = () => { if (pc.iceGatheringState === 'complete') resolve(); };
    });
    await pc.setLocalDescription(await pc.createOffer());
    await Promise.race([complete, new Promise((r) => setTimeout(r, GATHER_MS))]);
  } finally {
    pc.close();
  }
  return found;
}

/** The URLs of `iceServers` that use one relay transport ('udp', 'tcp' or 'tls'). */
function relayServers(iceServers, transport) {
  const keep = (url) => {
    const u = String(url).toLowerCase();
    if (transport === 'tls') return u.startsWith('turns:');
    if (!u.startsWith('turn:')) return false;
    const t = (u.match(/transport=(\w+)/) || [null, 'udp'])[1];
    return t === transport;
  };
  return iceServers
    .map((s) => ({ ...s, urls: [].concat(s.urls || []).filter(keep) }))
    .filter((s) => s.urls.length > 0);
}

/**
 * Runs the checks and calls `report(id, outcome)` as each finishes. `id`: 'server', 'udp',
 * 'turn-udp', 'turn-tcp', 'turn-tls'; `outcome`: 'ok', 'fail', 'absent' (the server offers no
 * such relay) or 'later' (relays are checked once in the visit).
 */
export async function connectionCheck(iceServers, report) {
  const results = {};
  const set = (id, outcome) => { results[id] = outcome; report(id, outcome); };
  set('server', (await serverAnswers()) ? 'ok' : 'fail');
  const udp = await gather({ iceServers: [] });
  set('udp', udp.some((c) => c.protocol === 'udp') ? 'ok' : 'fail');
  for (const transport of ['udp', 'tcp', 'tls']) {
    const id = `turn-${transport}`;
    if (!iceServers || iceServers.length === 0) { set(id, 'later'); continue; }
    const servers = relayServers(iceServers, transport);
    if (servers.length === 0) { set(id, 'absent'); continue; }
    const got = await gather({ iceServers: servers, iceTransportPolicy: 'relay' });
    set(id, got.some((c) => c.type === 'relay') ? 'ok' : 'fail');
  }
  return results;
}

/** One plain-words summary of the results (a catalogue key). */
export function verdictKey(r) {
  if (r.server === 'fail') return 'net.verdictNoServer';
  const relays = ['turn-udp', 'turn-tcp', 'turn-tls'].map((k) => r[k]);
  if (relays.every((x) => x === 'later')) return r.udp === 'ok' ? 'net.verdictLater' : 'net.verdictLaterNoUdp';
  if (r.udp === 'ok' || relays.includes('ok')) return 'net.verdictGood';
  return 'net.verdictBlocked';
}
