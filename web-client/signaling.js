// The signaling WebSocket (/v1/signal, docs/signaling.md): join, keep-alive, and messages
// handled strictly in order (an `offer` must wait until the previous `answer` is applied).
const PROTOCOL_VERSION = 1;
const PING_MS = 20000;

export class Signaling {
  /**
   * `onMessage(msg)` may be async; the next message waits for it. `onClose()` is called
   * once when the socket ends for any reason. `onStepError(e)` when a handler throws.
   */
  constructor({ onMessage, onClose, onStepError }) {
    this.onMessage = onMessage;
    this.onClose = onClose;
    this.onStepError = onStepError;
    this.ws = null;
    this.chain = Promise.resolve();
    this.pingTimer = null;
  }

  connect(token) {
    const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
    const ws = new WebSocket(`${scheme}://${location.host}/v1/signal`);
    this.ws = ws;
    ws.onopen = () => {
      this.send({ type: 'join', v: PROTOCOL_VERSION, token });
      this.pingTimer = setInterval(() => this.send({ type: 'ping' }), PING_MS);
    };
    ws.onmessage = (ev) => {
      let msg;
      try { msg = JSON.parse(ev.data); } catch (_) { return; }
      this.enqueue(() => this.onMessage(msg));
    };
    ws.onclose = () => {
      clearInterval(this.pingTimer);
      this.enqueue(() => this.onClose());
    };
  }

  /** Runs `step` after every message before it has been handled. */
  enqueue(step) {
    this.chain = this.chain.then(step).catch((e) => this.onStepError(e));
    return this.chain;
  }

  send(msg) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(msg));
  }

  close() {
    clearInterval(this.pingTimer);
    if (this.ws) this.ws.close(1000);
  }
}
