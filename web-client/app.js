// Bedside web client: joins a visit over /v1/signal (docs/signaling.md), publishes the
// camera and microphone, and shows a tile per remote participant. No build step, no framework.
'use strict';

(() => {
  const $ = (id) => document.getElementById(id);
  const PROTOCOL_VERSION = 1;

  // The token comes in the URL fragment (never sent to the server in a request line). It is
  // kept in sessionStorage so a reload of this tab can rejoin, and removed from the address bar.
  function takeToken() {
    const params = new URLSearchParams(location.hash.slice(1));
    const fromHash = params.get('token');
    if (fromHash) {
      sessionStorage.setItem('bedside.token', fromHash);
      history.replaceState(null, '', location.pathname);
      return fromHash;
    }
    return sessionStorage.getItem('bedside.token');
  }

  const state = {
    token: takeToken(),
    ws: null,
    pc: null,
    localStream: null,
    me: null,
    participants: new Map(), // participant id -> {participant, role, name}
    tracks: new Map(), // mid -> {participant, kind}
    queue: Promise.resolve(),
    pingTimer: null,
    ended: false,
  };

  function setStatus(text) {
    $('status').textContent = text;
  }

  function showError(message) {
    const el = $('error');
    el.textContent = message;
    el.hidden = false;
  }

  function send(msg) {
    if (state.ws && state.ws.readyState === WebSocket.OPEN) {
      state.ws.send(JSON.stringify(msg));
    }
  }

  // --- tiles -------------------------------------------------------------------------------

  function tileFor(participant) {
    let tile = document.querySelector(`[data-testid="remote-tile"][data-participant="${participant}"]`);
    if (tile) return tile;
    const info = state.participants.get(participant) || { role: 'unknown' };
    tile = document.createElement('figure');
    tile.className = 'tile remote';
    tile.dataset.testid = 'remote-tile';
    tile.setAttribute('data-testid', 'remote-tile');
    tile.dataset.participant = String(participant);
    tile.dataset.role = info.role;
    tile.dataset.kind = 'camera';
    const video = document.createElement('video');
    video.autoplay = true;
    video.playsInline = true;
    video.muted = true; // sound plays through the <audio> element
    const audio = document.createElement('audio');
    audio.autoplay = true;
    const caption = document.createElement('figcaption');
    caption.textContent = (info.name || info.role);
    tile.append(video, audio, caption);
    tile._stream = new MediaStream();
    $('tiles').append(tile);
    return tile;
  }

  function removeTile(participant) {
    const tile = document.querySelector(`[data-testid="remote-tile"][data-participant="${participant}"]`);
    if (tile) tile.remove();
  }

  function attachTrack(participant, track) {
    const tile = tileFor(participant);
    const el = track.kind === 'video' ? tile.querySelector('video') : tile.querySelector('audio');
    const stream = new MediaStream([track]);
    el.srcObject = stream;
    el.play().catch(() => {});
    track.addEventListener('ended', () => {
      if (el.srcObject === stream) el.srcObject = null;
    });
  }

  // --- signaling ---------------------------------------------------------------------------

  async function handle(msg) {
    switch (msg.type) {
      case 'joined':
        state.me = msg.participant;
        for (const p of msg.participants) {
          state.participants.set(p.participant, p);
          tileFor(p.participant);
        }
        setStatus('Connecting media…');
        await startMedia(msg.ice_servers || []);
        break;
      case 'participant_joined':
        state.participants.set(msg.participant.participant, msg.participant);
        tileFor(msg.participant.participant);
        break;
      case 'participant_left':
        state.participants.delete(msg.participant);
        removeTile(msg.participant);
        break;
      case 'answer':
        await state.pc.setRemoteDescription({ type: 'answer', sdp: msg.sdp });
        break;
      case 'offer': {
        for (const t of msg.tracks) state.tracks.set(t.mid, t);
        await state.pc.setRemoteDescription({ type: 'offer', sdp: msg.sdp });
        const answer = await state.pc.createAnswer();
        await state.pc.setLocalDescription(answer);
        send({ type: 'answer', sdp: state.pc.localDescription.sdp });
        break;
      }
      case 'error':
        showError(errorText(msg.code, msg.message));
        break;
      case 'left':
      case 'pong':
        break;
      default:
        // Newer servers may send messages this client does not know: ignore them.
        break;
    }
  }

  function errorText(code, message) {
    switch (code) {
      case 'invalid_token': return 'This visit link is not valid. Please ask your clinic for a new link.';
      case 'token_expired': return 'This visit link has expired or is not valid yet. Please ask your clinic for a new link.';
      case 'media_failed': return 'The video connection was lost. Please reload the page to rejoin.';
      default: return `Something went wrong (${code}): ${message}`;
    }
  }

  async function startMedia(iceServers) {
    const pc = new RTCPeerConnection({ iceServers, bundlePolicy: 'max-bundle', rtcpMuxPolicy: 'require' });
    state.pc = pc;
    for (const track of state.localStream.getTracks()) {
      pc.addTransceiver(track, { direction: 'sendonly', streams: [state.localStream] });
    }
    pc.onicecandidate = (ev) => {
      if (ev.candidate && ev.candidate.candidate) {
        send({ type: 'candidate', candidate: ev.candidate.candidate, sdpMid: ev.candidate.sdpMid, sdpMLineIndex: ev.candidate.sdpMLineIndex });
      }
    };
    pc.ontrack = (ev) => {
      const info = state.tracks.get(ev.transceiver.mid);
      if (info) attachTrack(info.participant, ev.track);
    };
    pc.onconnectionstatechange = () => {
      const s = pc.connectionState;
      if (s === 'connected') setStatus('Connected');
      else if (s === 'failed') setStatus('Connection failed');
      else if (s === 'disconnected') setStatus('Reconnecting…');
    };
    const offer = await pc.createOffer();
    await pc.setLocalDescription(offer);
    send({ type: 'offer', sdp: pc.localDescription.sdp });
  }

  async function join() {
    $('error').hidden = true;
    if (!state.token) {
      showError('This page needs a visit link from your clinic.');
      return;
    }
    $('join').disabled = true;
    try {
      state.localStream = await navigator.mediaDevices.getUserMedia({
        audio: true,
        video: { width: { ideal: 640 }, height: { ideal: 480 }, frameRate: { ideal: 20 } },
      });
    } catch (e) {
      showError('Your camera or microphone could not be started. Check that the browser may use them.');
      $('join').disabled = false;
      return;
    }
    $('local-video').srcObject = state.localStream;
    $('prejoin').hidden = true;
    $('call').hidden = false;
    setStatus('Joining…');
    const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
    const ws = new WebSocket(`${scheme}://${location.host}/v1/signal`);
    state.ws = ws;
    ws.onopen = () => {
      send({ type: 'join', v: PROTOCOL_VERSION, token: state.token });
      state.pingTimer = setInterval(() => send({ type: 'ping' }), 20000);
    };
    ws.onmessage = (ev) => {
      let msg;
      try { msg = JSON.parse(ev.data); } catch (_) { return; }
      // Messages are handled strictly in order: an offer must wait for the previous answer.
      state.queue = state.queue.then(() => handle(msg)).catch((e) => {
        console.error('signaling step failed', e);
        showError('The visit could not be set up. Please reload the page.');
      });
    };
    ws.onclose = () => {
      clearInterval(state.pingTimer);
      if (!state.ended) {
        setStatus('Disconnected');
      }
    };
  }

  function leave() {
    state.ended = true;
    send({ type: 'leave' });
    if (state.pc) state.pc.close();
    if (state.localStream) state.localStream.getTracks().forEach((t) => t.stop());
    sessionStorage.removeItem('bedside.token');
    document.querySelectorAll('[data-testid="remote-tile"]').forEach((t) => t.remove());
    $('call').hidden = true;
    $('ended').hidden = false;
    setStatus('Left the visit');
  }

  $('join').addEventListener('click', join);
  $('leave').addEventListener('click', leave);
  if (!state.token) {
    showError('This page needs a visit link from your clinic.');
    $('join').disabled = true;
  }
})();
