// The clinic's event stream for this page, and its only owner: one WebSocket (long-polling while that
// fails), durable frames applied in seq order with gaps fetched from the log, ephemeral ones passed on.
// Pages subscribe with on("frame") and on("state"); they never touch the socket.
//
// States: "connecting" (amber), "live" (green), "polling" (red: the long-poll fallback),
// "disconnected" (grey: nothing answers), "signed-out" (the session ended, or works in another clinic
// now: the page reloads).

const BACKOFF_S = [1, 2, 4, 8, 16];
const BACKOFF_CAP_S = 30;
const GAP_WAIT_MS = 500;
const WAKE_CHECK_MS = 5000;
const WAKE_GAP_MS = 15000; // a timer that fired this late means the laptop slept
const POLL_AFTER_FAILURES = 2;
const PONG_WAIT_MS = 5000;

export function backoffDelay(failures, random = Math.random) {
  // 1, 2, 4, 8, 16 s, then every 30 s, never giving up; ±20 % jitter so a restart is not a stampede.
  const base = failures <= BACKOFF_S.length ? BACKOFF_S[failures - 1] : BACKOFF_CAP_S;
  return Math.round(base * 1000 * (0.8 + 0.4 * random()));
}

export class ClinicStream {
  constructor({ seq, clinicId = null }) {
    this.last = seq; // every durable frame up to here has been applied
    this.clinicId = clinicId; // the page's clinic: a stream of another one means nothing to it
    this.pending = new Map(); // seq → frame that arrived ahead of a missing one
    this.listeners = { frame: [], state: [] };
    this.failures = 0;
    this.polling = false;
    this.gapTimer = null;
    this.retryTimer = null;
    this.state = "connecting";
    this.stopped = false;
  }

  on(kind, listener) {
    this.listeners[kind].push(listener);
  }

  emit(kind, value) {
    for (const listener of this.listeners[kind]) {
      try {
        listener(value);
      } catch (error) {
        console.error(error); // one page part failing must not stop the others
      }
    }
  }

  setState(state) {
    if (this.state === state) return;
    this.state = state;
    this.emit("state", state);
  }

  start() {
    this.connect();
    window.addEventListener("online", () => this.retryNow());
    window.addEventListener("offline", () => this.ws?.close());
    let lastTick = Date.now();
    setInterval(() => {
      const now = Date.now();
      if (now - lastTick > WAKE_GAP_MS) this.retryNow(true);
      lastTick = now;
    }, WAKE_CHECK_MS);
  }

  connect() {
    clearTimeout(this.retryTimer);
    this.retryTimer = null;
    if (this.ws && this.ws.readyState <= WebSocket.OPEN) return;
    if (!this.polling) this.setState("connecting");
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    let ws;
    try {
      // The resume point travels with the connection: the server replays after it, then goes live.
      // The clinic rides along for the load balancer only (nginx sends a clinic's sockets to the same
      // process); the server trusts the login, never this.
      const clinic = this.clinicId ? `&clinic=${this.clinicId}` : "";
      ws = new WebSocket(`${scheme}://${location.host}/ws/?after=${this.last}${clinic}`);
    } catch (error) {
      this.closed({ code: 1006 });
      return;
    }
    this.ws = ws;
    ws.addEventListener("message", (event) => {
      if (ws === this.ws) this.receive(JSON.parse(event.data));
    });
    ws.addEventListener("close", (event) => {
      if (ws === this.ws) this.closed(event);
    });
  }

  // Reconnect now: the "Tentar agora" button, the browser coming back online, the laptop waking.
  retryNow(wokeUp = false) {
    if (this.stopped) return;
    if (wokeUp && this.ws && this.ws.readyState === WebSocket.OPEN) {
      // A socket that slept may be dead without knowing: no pong soon means start a new one.
      const ws = this.ws;
      this.send({ type: "ping" });
      clearTimeout(this.pongTimer);
      this.pongTimer = setTimeout(() => {
        if (ws !== this.ws) return;
        this.ws = null; // a dead link may take a minute to finish closing: do not wait for it
        ws.close();
        this.closed({ code: 1006 });
      }, PONG_WAIT_MS);
      return;
    }
    if (this.ws && this.ws.readyState === WebSocket.CONNECTING) {
      const stale = this.ws; // an attempt made while things were down may hang: start a fresh one
      this.ws = null;
      stale.close();
    }
    this.failures = Math.min(this.failures, 1);
    this.connect();
  }

  send(frame) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN && this.state === "live") {
      this.ws.send(JSON.stringify(frame));
      return true;
    }
    return false;
  }

  receive(frame) {
    if (frame.type === "hello") {
      if (this.clinicId && frame.clinic?.id !== this.clinicId) {
        // The session was switched to another clinic (in another tab): this page's seq and lists are of
        // the old one, so it reloads into the clinic the session works in now.
        this.ws?.close();
        this.signedOut();
        return;
      }
      this.failures = 0;
      this.polling = false;
      this.pollRun = (this.pollRun || 0) + 1; // a long-poll still out ends quietly
      clearTimeout(this.pongTimer);
      this.setState("live");
      this.emit("frame", frame);
      return;
    }
    if (frame.type === "resync") {
      this.reset(frame.seq);
      this.emit("frame", frame);
      return;
    }
    if (frame.type === "pong") clearTimeout(this.pongTimer);
    if (frame.seq === undefined || frame.seq === null || frame.type === "pong" || frame.type === "resumed") {
      this.emit("frame", frame);
      return;
    }
    this.push(frame);
  }

  push(frame) {
    if (frame.seq <= this.last || this.pending.has(frame.seq)) return; // seen already
    this.pending.set(frame.seq, frame);
    while (this.pending.has(this.last + 1)) {
      this.last += 1;
      const ready = this.pending.get(this.last);
      this.pending.delete(this.last);
      this.emit("frame", ready);
    }
    if (this.pending.size && !this.gapTimer) {
      // Frames from two server processes can cross; give the missing one a moment, then fetch it.
      this.gapTimer = setTimeout(() => this.fillGap(), GAP_WAIT_MS);
    }
  }

  async fillGap() {
    this.gapTimer = null;
    if (!this.pending.size) return;
    try {
      await this.fetchAfter();
    } catch (error) {
      this.gapTimer = setTimeout(() => this.fillGap(), GAP_WAIT_MS * 4);
    }
  }

  reset(seq) {
    this.last = seq;
    this.pending.clear();
  }

  // The log over HTTP: a gap fetch, or the long-poll while WebSocket is down (the server waits up to 25 s).
  async fetchAfter() {
    const clinic = this.clinicId ? `&clinic=${this.clinicId}` : "";
    const response = await fetch(`/api/events/?after=${this.last}${clinic}`, { credentials: "same-origin" });
    if (response.status === 401 || response.status === 403 || response.status === 409) {
      this.signedOut();
      return false;
    }
    if (!response.ok) throw new Error(`events: HTTP ${response.status}`);
    const body = await response.json();
    for (const frame of body.events) this.receive(frame);
    return true;
  }

  signedOut() {
    this.stopped = true;
    this.polling = false;
    this.setState("signed-out");
  }

  closed(event) {
    this.ws = null;
    if (this.stopped) return;
    if (event.code === 4401 || event.code === 4403) {
      this.signedOut();
      return;
    }
    this.failures += 1;
    if (this.failures >= POLL_AFTER_FAILURES && !this.polling) this.poll();
    else if (!this.polling) this.setState(navigator.onLine === false ? "disconnected" : "connecting");
    this.retryTimer = setTimeout(() => this.connect(), backoffDelay(this.failures));
  }

  // While WebSocket keeps failing, long-poll; a hello on a new socket (in receive) ends it. Each run has
  // a token, so a long-poll that returns after the socket came back changes nothing.
  async poll() {
    const run = (this.pollRun = (this.pollRun || 0) + 1);
    const current = () => this.polling && !this.stopped && this.pollRun === run;
    this.polling = true;
    let misses = 0;
    this.setState("polling");
    while (current()) {
      try {
        const ok = await this.fetchAfter();
        if (!ok) return;
        misses = 0;
        if (current()) this.setState("polling");
      } catch (error) {
        misses += 1;
        if (!current()) return;
        this.setState("disconnected");
        await new Promise((resolve) => setTimeout(resolve, backoffDelay(Math.min(misses, 4))));
      }
    }
  }
}
