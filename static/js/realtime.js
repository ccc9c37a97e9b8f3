// The clinic's event stream for this page: one WebSocket (or long-polling when it fails), durable frames
// applied in seq order with gaps fetched from the log, ephemeral ones passed straight through.

const RETRY_MS = [500, 1000, 2000, 5000, 10000];
const GAP_WAIT_MS = 500;

export class ClinicStream {
  constructor({ seq, onFrame, onState }) {
    this.last = seq;            // every durable frame up to here has been applied
    this.pending = new Map();   // seq → frame that arrived ahead of a missing one
    this.onFrame = onFrame;
    this.onState = onState || (() => {});
    this.failures = 0;
    this.polling = false;
    this.gapTimer = null;
  }

  start() {
    this.connect();
  }

  connect() {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const ws = new WebSocket(`${scheme}://${location.host}/ws/`);
    this.ws = ws;
    ws.addEventListener("message", (event) => this.receive(JSON.parse(event.data)));
    ws.addEventListener("close", (event) => this.closed(event));
    ws.addEventListener("open", () => this.onState("connecting"));
  }

  receive(frame) {
    if (frame.type === "hello") {
      this.failures = 0;
      this.polling = false;
      this.onState("live");
      this.ws.send(JSON.stringify({ type: "resume", after: this.last }));
      return;
    }
    if (frame.type === "resync") {
      this.reset(frame.seq);
      this.onFrame(frame);
      return;
    }
    if (frame.seq === undefined || frame.seq === null || frame.type === "pong" || frame.type === "resumed") {
      this.onFrame(frame);
      return;
    }
    this.push(frame);
  }

  push(frame) {
    if (frame.seq <= this.last || this.pending.has(frame.seq)) return;  // seen already
    this.pending.set(frame.seq, frame);
    while (this.pending.has(this.last + 1)) {
      this.last += 1;
      const ready = this.pending.get(this.last);
      this.pending.delete(this.last);
      this.onFrame(ready);
    }
    if (this.pending.size && !this.gapTimer) {
      // Frames from two server processes can cross; give the missing one a moment, then fetch it.
      this.gapTimer = setTimeout(() => this.fillGap(), GAP_WAIT_MS);
    }
  }

  async fillGap() {
    this.gapTimer = null;
    if (!this.pending.size) return;
    await this.fetchAfter(false);
  }

  reset(seq) {
    this.last = seq;
    this.pending.clear();
  }

  // The log over HTTP: a gap fetch (answers at once) or, when WebSocket is down, a long-poll.
  async fetchAfter(wait) {
    const response = await fetch(`/api/events/?after=${this.last}`, { credentials: "same-origin" });
    if (response.status === 401 || response.status === 403) {
      this.onState("signed-out");
      return false;
    }
    const body = await response.json();
    for (const frame of body.events) this.receive(frame);
    return true;
  }

  closed(event) {
    if (event.code === 4401 || event.code === 4403) {
      this.onState("signed-out");
      return;
    }
    this.failures += 1;
    this.onState("reconnecting");
    if (this.failures >= 3 && !this.polling) this.poll();
    const delay = RETRY_MS[Math.min(this.failures - 1, RETRY_MS.length - 1)];
    setTimeout(() => this.connect(), delay);
  }

  // While WebSocket keeps failing, long-poll; a successful hello (in receive) ends it.
  async poll() {
    this.polling = true;
    this.onState("polling");
    while (this.polling) {
      try {
        if (!(await this.fetchAfter(true))) return;
      } catch (error) {
        await new Promise((resolve) => setTimeout(resolve, 2000));
      }
    }
  }
}
