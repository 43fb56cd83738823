// Bedside web client: device check, waiting room, the provider's queue, and the call itself,
// over /v1/signal (docs/signaling.md). No build step, no framework.
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
      sessionStorage.removeItem('bedside.autojoin');
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
    screenTransceiver: null,
    me: null,
    role: null,
    visitType: null,
    mayPublish: [],
    iceServers: [],
    participants: new Map(), // participant id -> {participant, role, name, shown}
    tracks: new Map(), // mid -> {participant, kind, source}
    queue: [],
    queueReceivedAt: 0,
    chain: Promise.resolve(),
    needsOffer: false,
    pingTimer: null,
    ended: false,
    mediaStarted: false,
  };

  // Codes after which this page is done. `rate_limited` too: a refused join closes, and the page
  // never sends fast enough to be refused otherwise.
  const CLOSING = new Set(['message_too_large', 'unsupported_version', 'invalid_token', 'token_expired',
    'media_failed', 'unavailable', 'timeout', 'rate_limited', 'visit_full', 'visit_ended', 'denied',
    'removed', 'wait_timeout', 'session_replaced', 'recording_stopped']);

  function setStatus(text) { $('status').textContent = text; }

  function showError(message) {
    const el = $('error');
    el.textContent = message;
    el.hidden = false;
  }

  function show(section) {
    for (const id of ['prejoin', 'waiting', 'call', 'ended']) $(id).hidden = id !== section;
  }

  function send(msg) {
    if (state.ws && state.ws.readyState === WebSocket.OPEN) state.ws.send(JSON.stringify(msg));
  }

  // --- device check ------------------------------------------------------------------------

  async function startDevices() {
    try {
      state.localStream = await navigator.mediaDevices.getUserMedia({
        audio: true,
        video: { width: { ideal: 640 }, height: { ideal: 480 }, frameRate: { ideal: 20 } },
      });
    } catch (e) {
      $('device-note').textContent = 'Your camera or microphone could not be started. You can still join; check that the browser may use them.';
      return;
    }
    $('preview-video').srcObject = state.localStream;
    $('device-note').textContent = 'Speak to see the microphone level move.';
    const [audio] = state.localStream.getAudioTracks();
    if (audio && window.AudioContext) {
      const ctx = new AudioContext();
      const analyser = ctx.createAnalyser();
      analyser.fftSize = 512;
      ctx.createMediaStreamSource(new MediaStream([audio])).connect(analyser);
      const data = new Float32Array(analyser.fftSize);
      setInterval(() => {
        analyser.getFloatTimeDomainData(data);
        let sum = 0;
        for (const v of data) sum += v * v;
        $('mic-level').value = Math.min(1, Math.sqrt(sum / data.length) * 4);
      }, 100);
    }
  }

  // --- people, queue and tiles -------------------------------------------------------------

  function label(p) { return p.name || p.role; }

  function renderParticipants() {
    const list = $('participants');
    list.replaceChildren();
    const me = document.createElement('li');
    me.textContent = 'You';
    me.append(roleTag(state.role));
    list.append(me);
    for (const p of state.participants.values()) {
      const li = document.createElement('li');
      li.dataset.testid = 'participant';
      li.setAttribute('data-testid', 'participant');
      li.dataset.participant = String(p.participant);
      li.dataset.role = p.role;
      li.textContent = label(p);
      li.append(roleTag(p.role));
      list.append(li);
    }
  }

  function roleTag(role) {
    const span = document.createElement('span');
    span.className = 'role';
    span.textContent = `(${role})`;
    return span;
  }

  function formatWait(ms) {
    const s = Math.floor(ms / 1000);
    return s < 60 ? `${s} s` : `${Math.floor(s / 60)} min ${s % 60} s`;
  }

  function renderQueue() {
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
        li = document.createElement('li');
        li.className = 'queue-entry';
        li.setAttribute('data-testid', 'queue-entry');
        li.dataset.participant = id;
        li.dataset.role = entry.role;
        const who = document.createElement('span');
        who.className = 'who';
        const reason = document.createElement('span');
        reason.className = 'reason';
        const waited = document.createElement('span');
        waited.className = 'waited';
        const input = document.createElement('input');
        input.placeholder = 'Reason if you deny (shown to them)';
        input.maxLength = 500;
        input.setAttribute('data-testid', 'deny-reason');
        const admit = document.createElement('button');
        admit.type = 'button';
        admit.textContent = 'Admit';
        admit.setAttribute('data-testid', 'admit');
        admit.addEventListener('click', () => send({ type: 'admit', participant: entry.participant }));
        const deny = document.createElement('button');
        deny.type = 'button';
        deny.textContent = 'Deny';
        deny.setAttribute('data-testid', 'deny');
        deny.addEventListener('click', () => send({ type: 'deny', participant: entry.participant, reason: input.value || undefined }));
        li.append(who, reason, waited, input, admit, deny);
        list.append(li);
      }
      li.querySelector('.who').textContent = `${label(entry)} `;
      li.querySelector('.who').append(roleTag(entry.role));
      li.querySelector('.reason').textContent = entry.reason ? `Reason: ${entry.reason}` : '';
      li.querySelector('.waited').textContent = `Waiting ${formatWait(entry.waited_ms + elapsed)}`;
    }
    for (const [id, li] of existing) if (!keep.has(id)) li.remove();
  }

  function tileSelector(participant, kind) {
    return `[data-testid="remote-tile"][data-participant="${participant}"][data-kind="${kind}"]`;
  }

  function tileFor(participant, kind = 'camera') {
    let tile = document.querySelector(tileSelector(participant, kind));
    if (tile) return tile;
    const info = state.participants.get(participant) || { role: 'unknown' };
    tile = document.createElement('figure');
    tile.className = `tile remote ${kind}`;
    tile.setAttribute('data-testid', 'remote-tile');
    tile.dataset.participant = String(participant);
    tile.dataset.role = info.role;
    tile.dataset.kind = kind;
    const video = document.createElement('video');
    video.autoplay = true;
    video.playsInline = true;
    video.muted = true; // sound plays through the <audio> element
    const audio = document.createElement('audio');
    audio.autoplay = true;
    const caption = document.createElement('figcaption');
    caption.textContent = kind === 'screen' ? `${label(info)}: screen` : label(info);
    tile.append(video, audio, caption);
    $('tiles').append(tile);
    return tile;
  }

  function removeTiles(participant) {
    document.querySelectorAll(`[data-testid="remote-tile"][data-participant="${participant}"]`).forEach((t) => t.remove());
  }

  function attachTrack(info, track) {
    const kind = info.source === 'screen' ? 'screen' : 'camera';
    const tile = tileFor(info.participant, kind);
    const el = track.kind === 'video' ? tile.querySelector('video') : tile.querySelector('audio');
    const stream = new MediaStream([track]);
    el.srcObject = stream;
    el.play().catch(() => {});
    const clear = () => {
      if (el.srcObject !== stream) return;
      el.srcObject = null;
      if (kind === 'screen') tile.remove();
    };
    track.addEventListener('ended', clear);
    track.addEventListener('mute', () => { if (kind === 'screen') setTimeout(() => { if (track.muted) clear(); }, 1000); });
  }

  // --- signaling -----------------------------------------------------------------------------

  async function handle(msg) {
    switch (msg.type) {
      case 'joined':
        state.me = msg.participant;
        state.role = msg.role;
        state.visitType = msg.visit_type;
        state.mayPublish = msg.may_publish || [];
        state.iceServers = msg.ice_servers || [];
        state.recordingEnabled = !!msg.recording_enabled;
        sessionStorage.setItem('bedside.autojoin', '1');
        if (msg.state === 'admitted') {
          await enterCall(msg.participants);
        } else {
          show('waiting');
          setStatus('In the waiting room');
        }
        break;
      case 'waiting':
        $('waiting-status').textContent = msg.position === 1
          ? 'You are next. A clinician will admit you shortly.'
          : `You are number ${msg.position} in line.`;
        $('waiting-message').hidden = !msg.message;
        $('waiting-message').textContent = msg.message ? `Message from your care team: ${msg.message}` : '';
        break;
      case 'admitted':
        // TURN credentials are handed out on admission, not to someone still waiting.
        if (msg.ice_servers && msg.ice_servers.length) state.iceServers = msg.ice_servers;
        await enterCall(msg.participants);
        break;
      case 'queue':
        state.queue = msg.entries;
        state.queueReceivedAt = Date.now();
        renderQueue();
        break;
      case 'participant_joined':
        state.participants.set(msg.participant.participant, msg.participant);
        if (msg.participant.role !== 'recorder') tileFor(msg.participant.participant);
        renderParticipants();
        break;
      case 'participant_updated':
        state.participants.set(msg.participant.participant, msg.participant);
        renderParticipants();
        break;
      case 'participant_left':
        state.participants.delete(msg.participant);
        removeTiles(msg.participant);
        renderParticipants();
        break;
      case 'answer':
        await state.pc.setRemoteDescription({ type: 'answer', sdp: msg.sdp });
        await offerIfNeeded();
        break;
      case 'offer': {
        for (const t of msg.tracks) state.tracks.set(t.mid, t);
        if (state.pc.signalingState === 'have-local-offer') {
          // Our own offer crossed the server's: the server's wins, ours is sent again after.
          await state.pc.setLocalDescription({ type: 'rollback' });
          state.needsOffer = true;
        }
        await state.pc.setRemoteDescription({ type: 'offer', sdp: msg.sdp });
        const answer = await state.pc.createAnswer();
        await state.pc.setLocalDescription(answer);
        send({ type: 'answer', sdp: state.pc.localDescription.sdp });
        await offerIfNeeded();
        break;
      }
      case 'consent_request':
        state.consentVersion = msg.text_version;
        state.consent = 'asked';
        $('consent-text').textContent = msg.text;
        $('consent').hidden = false;
        break;
      case 'recording':
        state.recording = msg;
        renderRecording();
        break;
      case 'error':
        handleError(msg.code, msg.message);
        break;
      default:
        // left, pong, and message types newer than this client: nothing to do.
        break;
    }
  }

  // --- recording consent -----------------------------------------------------------------------

  function renderRecording() {
    const r = state.recording || { active: false, recorded: false, you: false, paused: false };
    const indicator = $('recording-indicator');
    indicator.hidden = !r.recorded;
    indicator.textContent = r.you ? '● Recording (including you)' : '● Recording';
    const provider = state.role === 'provider' && state.recordingEnabled;
    $('record-start').hidden = !provider || r.active;
    $('record-stop').hidden = !provider || !r.active;
    $('record-pause').hidden = !provider || !r.active || r.paused;
    $('record-resume').hidden = !provider || !r.active || !r.paused;
    if (!r.active) {
      state.consent = null;
      $('consent').hidden = true;
    }
    $('consent-withdraw').hidden = !(r.active && state.consent === 'accepted');
  }

  function answerConsent(accept) {
    if (!state.consentVersion) return;
    send({ type: accept ? 'consent_accept' : 'consent_decline', text_version: state.consentVersion });
    state.consent = accept ? 'accepted' : 'declined';
    $('consent').hidden = true;
    renderRecording();
  }

  function handleError(code, message) {
    if (code === 'negotiation_state' && state.pc) {
      state.needsOffer = true;
      return;
    }
    showError(errorText(code, message));
    if (CLOSING.has(code)) finish(endedText(code));
  }

  function errorText(code, message) {
    switch (code) {
      case 'invalid_token': return 'This visit link is not valid. Please ask your clinic for a new link.';
      case 'token_expired': return 'This visit link has expired or is not valid yet. Please ask your clinic for a new link.';
      case 'media_failed': return 'The video connection was lost. Please reload the page to rejoin.';
      case 'denied': return `A clinician could not admit you: ${message}`;
      case 'visit_ended': return 'The visit has ended.';
      case 'visit_full': return 'This visit is full. Please contact your clinic.';
      case 'removed': return 'A clinician removed you from this visit.';
      case 'wait_timeout': return message;
      case 'session_replaced': return 'This visit was opened in another window or tab.';
      case 'rate_limited': return 'Too many attempts. Please wait a moment and reload the page.';
      case 'publish_not_allowed': return 'Your role may not share that in this visit.';
      case 'too_many_tracks': return 'You can share one microphone, one camera and one screen at a time.';
      case 'recording_disabled': return 'Recording is not enabled on this server.';
      case 'recording_unavailable': return 'No recorder is available right now; the visit is not being recorded.';
      case 'consent_mismatch': return 'Your answer did not match the current recording request. Please answer again.';
      default: return `Something went wrong (${code}): ${message}`;
    }
  }

  function endedText(code) {
    switch (code) {
      case 'visit_ended': return 'The visit has ended. Thank you.';
      case 'denied': return 'You were not admitted to this visit.';
      default: return 'You are no longer in the visit.';
    }
  }

  async function enterCall(participants) {
    for (const p of participants) {
      state.participants.set(p.participant, p);
      if (p.role !== 'recorder') tileFor(p.participant);
    }
    show('call');
    renderParticipants();
    const clinician = ['provider', 'chaperone', 'supervisor'].includes(state.role);
    $('queue-panel').hidden = !clinician;
    $('admit-all').hidden = state.role !== 'provider';
    $('notify-form').hidden = state.role !== 'provider';
    $('end-visit').hidden = state.role !== 'provider';
    $('share-screen').hidden = !state.mayPublish.includes('screen');
    $('show-my-video-label').hidden = !(state.visitType === 'group' && ['patient', 'caregiver'].includes(state.role));
    renderRecording();
    setStatus('Connecting media…');
    if (!state.mediaStarted) {
      state.mediaStarted = true;
      await startMedia();
    }
  }

  async function startMedia() {
    // A quick click on "Join" can come before the camera and microphone are up: wait for
    // them, or the visit would be joined without publishing anything.
    if (state.devicesReady) await state.devicesReady;
    const pc = new RTCPeerConnection({ iceServers: state.iceServers, bundlePolicy: 'max-bundle', rtcpMuxPolicy: 'require' });
    state.pc = pc;
    const stream = state.localStream;
    let sending = 0;
    if (stream) {
      $('local-video').srcObject = stream;
      for (const track of stream.getTracks()) {
        const source = track.kind === 'audio' ? 'microphone' : 'camera';
        if (!state.mayPublish.includes(source)) continue;
        pc.addTransceiver(track, { direction: 'sendonly', streams: [stream] });
        sending += 1;
      }
    }
    if (sending === 0) {
      // A role that publishes nothing still needs one media section to negotiate.
      pc.addTransceiver('audio', { direction: 'recvonly' });
    }
    pc.onicecandidate = (ev) => {
      if (ev.candidate && ev.candidate.candidate) {
        send({ type: 'candidate', candidate: ev.candidate.candidate, sdpMid: ev.candidate.sdpMid, sdpMLineIndex: ev.candidate.sdpMLineIndex });
      }
    };
    pc.ontrack = (ev) => {
      const info = state.tracks.get(ev.transceiver.mid);
      if (info) attachTrack(info, ev.track);
    };
    pc.onconnectionstatechange = () => {
      const s = pc.connectionState;
      if (s === 'connected') setStatus('Connected');
      else if (s === 'failed') setStatus('Connection failed');
      else if (s === 'disconnected') setStatus('Reconnecting…');
    };
    await sendOffer();
  }

  function sourcesOf(pc) {
    const sources = {};
    for (const t of pc.getTransceivers()) {
      if (t.mid && t === state.screenTransceiver) sources[t.mid] = 'screen';
    }
    return sources;
  }

  async function sendOffer() {
    const pc = state.pc;
    state.needsOffer = false;
    const offer = await pc.createOffer();
    await pc.setLocalDescription(offer);
    send({ type: 'offer', sdp: pc.localDescription.sdp, sources: sourcesOf(pc) });
  }

  async function offerIfNeeded() {
    if (state.needsOffer && state.pc && state.pc.signalingState === 'stable') await sendOffer();
  }

  // Queue a renegotiation of our own (screen share); it waits for any server offer in flight.
  function renegotiate() {
    state.needsOffer = true;
    state.chain = state.chain.then(offerIfNeeded).catch((e) => console.error('renegotiation failed', e));
  }

  async function toggleScreen() {
    if (state.screenTransceiver && state.screenTransceiver.sender.track) {
      state.screenTransceiver.sender.track.stop();
      await state.screenTransceiver.sender.replaceTrack(null);
      state.screenTransceiver.direction = 'inactive';
      $('share-screen').textContent = 'Share screen';
      renegotiate();
      return;
    }
    let display;
    try {
      display = await navigator.mediaDevices.getDisplayMedia({ video: true, audio: false });
    } catch (_) {
      return;
    }
    const [track] = display.getVideoTracks();
    track.addEventListener('ended', () => { if (state.screenTransceiver?.sender.track === track) toggleScreen(); });
    if (state.screenTransceiver) {
      await state.screenTransceiver.sender.replaceTrack(track);
      state.screenTransceiver.direction = 'sendonly';
    } else {
      state.screenTransceiver = state.pc.addTransceiver(track, { direction: 'sendonly' });
    }
    $('share-screen').textContent = 'Stop sharing';
    renegotiate();
  }

  function join() {
    $('error').hidden = true;
    if (!state.token) {
      showError('This page needs a visit link from your clinic.');
      return;
    }
    $('join').disabled = true;
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
      state.chain = state.chain.then(() => handle(msg)).catch((e) => {
        console.error('signaling step failed', e);
        showError('The visit could not be set up. Please reload the page.');
      });
    };
    ws.onclose = () => {
      clearInterval(state.pingTimer);
      if (!state.ended) setStatus('Disconnected');
    };
  }

  function finish(text) {
    state.ended = true;
    if (state.pc) state.pc.close();
    if (state.localStream) state.localStream.getTracks().forEach((t) => t.stop());
    sessionStorage.removeItem('bedside.autojoin');
    document.querySelectorAll('[data-testid="remote-tile"]').forEach((t) => t.remove());
    $('ended-text').textContent = text;
    show('ended');
    setStatus('Not in the visit');
  }

  function leave() {
    send({ type: 'leave' });
    sessionStorage.removeItem('bedside.token');
    finish('You have left the visit.');
  }

  $('join').addEventListener('click', join);
  $('leave').addEventListener('click', leave);
  $('leave-waiting').addEventListener('click', leave);
  $('admit-all').addEventListener('click', () => send({ type: 'admit_all' }));
  $('end-visit').addEventListener('click', () => send({ type: 'end_visit' }));
  $('record-start').addEventListener('click', () => send({ type: 'record_start' }));
  $('record-stop').addEventListener('click', () => send({ type: 'record_stop' }));
  $('record-pause').addEventListener('click', () => send({ type: 'record_pause' }));
  $('record-resume').addEventListener('click', () => send({ type: 'record_resume' }));
  $('consent-accept').addEventListener('click', () => answerConsent(true));
  $('consent-decline').addEventListener('click', () => answerConsent(false));
  $('consent-withdraw').addEventListener('click', () => answerConsent(false));
  $('share-screen').addEventListener('click', () => { toggleScreen(); });
  $('show-my-video').addEventListener('change', (ev) => send({ type: 'show_video', show: ev.target.checked }));
  $('notify-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    send({ type: 'notify_waiting', text: $('notify-text').value });
  });
  setInterval(() => { if (state.queue.length) renderQueue(); }, 1000);

  if (!state.token) {
    showError('This page needs a visit link from your clinic.');
    $('join').disabled = true;
  } else {
    const devices = startDevices();
    state.devicesReady = devices;
    // A reload during a visit rejoins by itself (the grace period keeps the admission).
    if (sessionStorage.getItem('bedside.autojoin') === '1') devices.then(join);
  }
})();
