// The call's one RTCPeerConnection: publishing the microphone and camera (each only if
// there is one), the server-driven renegotiation (the server's offers list whose media each
// `mid` carries), camera off and on without renegotiating (replaceTrack), a screen share, and
// the statistics the tiles need (audio levels, frames, packets).
export class Call {
  /**
   * `send(msg)`: to the server. `onTrack(info, track)`: a remote track with its
   * `{participant, kind, source}`. `onState(connectionState)`.
   */
  constructor({ iceServers, mayPublish, send, onTrack, onState }) {
    this.mayPublish = mayPublish;
    this.send = send;
    this.onTrack = onTrack;
    this.tracks = new Map();
    this.needsOffer = false;
    this.audioTransceiver = null;
    this.videoTransceiver = null;
    this.screenTransceiver = null;
    this.pc = new RTCPeerConnection({ iceServers, bundlePolicy: 'max-bundle', rtcpMuxPolicy: 'require' });
    this.pc.onicecandidate = (ev) => {
      if (ev.candidate && ev.candidate.candidate) {
        send({ type: 'candidate', candidate: ev.candidate.candidate, sdpMid: ev.candidate.sdpMid, sdpMLineIndex: ev.candidate.sdpMLineIndex });
      }
    };
    this.pc.ontrack = (ev) => {
      const info = this.tracks.get(ev.transceiver.mid);
      if (info) onTrack(info, ev.track);
    };
    this.pc.onconnectionstatechange = () => onState(this.pc.connectionState);
  }

  /**
   * The first offer: the microphone and the camera this role may send. A camera that exists
   * but is off gets its section anyway (no track), so turning it on needs no renegotiation;
   * one that is missing gets none (added later if it appears).
   */
  async start({ audio, video, cameraExists }) {
    const stream = new MediaStream([audio, video].filter(Boolean));
    if (audio && this.mayPublish.includes('microphone')) {
      this.audioTransceiver = this.pc.addTransceiver(audio, { direction: 'sendonly', streams: [stream] });
    }
    if (this.mayPublish.includes('camera') && (video || cameraExists)) {
      this.videoTransceiver = this.pc.addTransceiver(video || 'video', { direction: 'sendonly', streams: [stream] });
    }
    if (!this.audioTransceiver && !this.videoTransceiver) {
      // A role that publishes nothing still needs one media section to negotiate.
      this.pc.addTransceiver('audio', { direction: 'recvonly' });
    }
    await this.sendOffer();
  }

  /** A new microphone track (another device), or null. */
  async setMicrophone(track) {
    if (this.audioTransceiver) {
      await this.audioTransceiver.sender.replaceTrack(track);
    } else if (track && this.mayPublish.includes('microphone')) {
      this.audioTransceiver = this.pc.addTransceiver(track, { direction: 'sendonly' });
      this.renegotiate();
    }
  }

  /** The camera on (a track) or off (null): the remote side stops decoding frames. */
  async setCamera(track) {
    if (this.videoTransceiver) {
      await this.videoTransceiver.sender.replaceTrack(track);
    } else if (track && this.mayPublish.includes('camera')) {
      this.videoTransceiver = this.pc.addTransceiver(track, { direction: 'sendonly' });
      this.renegotiate();
    }
  }

  sources() {
    const out = {};
    for (const t of this.pc.getTransceivers()) {
      if (t.mid && t === this.screenTransceiver) out[t.mid] = 'screen';
    }
    return out;
  }

  async sendOffer() {
    this.needsOffer = false;
    const offer = await this.pc.createOffer();
    await this.pc.setLocalDescription(offer);
    this.send({ type: 'offer', sdp: this.pc.localDescription.sdp, sources: this.sources() });
  }

  async offerIfNeeded() {
    if (this.needsOffer && this.pc.signalingState === 'stable') await this.sendOffer();
  }

  /** An offer of our own is due (screen, a camera found later); sent once the line is free. */
  renegotiate() {
    this.needsOffer = true;
    this.offerIfNeeded().catch((e) => console.error('renegotiation failed', e));
  }

  async handleAnswer(sdp) {
    await this.pc.setRemoteDescription({ type: 'answer', sdp });
    await this.offerIfNeeded();
  }

  async handleOffer(sdp, tracks) {
    for (const t of tracks) this.tracks.set(t.mid, t);
    if (this.pc.signalingState === 'have-local-offer') {
      // Our own offer crossed the server's: the server's wins, ours is sent again after.
      await this.pc.setLocalDescription({ type: 'rollback' });
      this.needsOffer = true;
    }
    await this.pc.setRemoteDescription({ type: 'offer', sdp });
    const answer = await this.pc.createAnswer();
    await this.pc.setLocalDescription(answer);
    this.send({ type: 'answer', sdp: this.pc.localDescription.sdp });
    await this.offerIfNeeded();
  }

  /** The server refused an offer as out of turn: offer again once stable. */
  retryOffer() { this.needsOffer = true; }

  sharing() { return !!(this.screenTransceiver && this.screenTransceiver.sender.track); }

  /** Starts or stops a screen share; resolves to whether one is on. */
  async toggleScreen() {
    if (this.sharing()) {
      this.screenTransceiver.sender.track.stop();
      await this.screenTransceiver.sender.replaceTrack(null);
      this.screenTransceiver.direction = 'inactive';
      this.renegotiate();
      return false;
    }
    let display;
    try {
      display = await navigator.mediaDevices.getDisplayMedia({ video: true, audio: false });
    } catch (_) {
      return false;
    }
    const [track] = display.getVideoTracks();
    track.addEventListener('ended', () => {
      if (this.screenTransceiver?.sender.track === track) this.toggleScreen().then(() => this.onScreenEnded?.());
    });
    if (this.screenTransceiver) {
      await this.screenTransceiver.sender.replaceTrack(track);
      this.screenTransceiver.direction = 'sendonly';
    } else {
      this.screenTransceiver = this.pc.addTransceiver(track, { direction: 'sendonly' });
    }
    this.renegotiate();
    return true;
  }

  /**
   * Per inbound track id: audio level, packets and frames; and the path the call takes
   * (`path`: 'direct' or 'relay', with the relay's transport).
   */
  async stats() {
    const byTrack = new Map();
    let path = null;
    const report = await this.pc.getStats();
    const byId = new Map();
    report.forEach((s) => byId.set(s.id, s));
    report.forEach((s) => {
      if (s.type === 'inbound-rtp' && s.trackIdentifier) {
        byTrack.set(s.trackIdentifier, {
          kind: s.kind,
          audioLevel: s.audioLevel || 0,
          packets: s.packetsReceived || 0,
          frames: s.framesDecoded || 0,
        });
      }
      if (s.type === 'transport' && s.selectedCandidatePairId) {
        const pair = byId.get(s.selectedCandidatePairId);
        const localCandidate = pair && byId.get(pair.localCandidateId);
        if (localCandidate) {
          path = localCandidate.candidateType === 'relay'
            ? { kind: 'relay', transport: localCandidate.relayProtocol || 'udp' }
            : { kind: 'direct', transport: localCandidate.protocol || 'udp' };
        }
      }
    });
    return { byTrack, path };
  }

  close() {
    try { this.pc.close(); } catch (_) { /* closed already */ }
  }
}
