// Replies that survive going offline (DESIGN §12): every reply is written to this browser's IndexedDB first,
// then sent; it leaves the outbox only once the server has it. A reply written while the connection is down
// waits there — through a reload, a closed tab, another tab of the same user — and is sent in the order
// written when the connection is back.
//
// Exactly once: each reply keeps the client_id it was written with, and the server stores one message per
// client_id and conversation, so a second attempt of a reply the server already had (the answer was lost)
// returns the first. One tab sends at a time (a Web Lock per user); the others hear what happened on a
// BroadcastChannel. A reply the server refuses (the 24-hour window closed meanwhile, the conversation is
// gone) is kept aside, with the reason, for the composer of its conversation to take back.

import { api, HttpError } from "./api.js";

const DATABASE = "taskmed";
const STORE = "outbox";
const RETRY_MS = [2000, 5000, 10000, 30000];
const REFUSED_KEPT_MS = 7 * 24 * 3600 * 1000;

let opening = null;

function database() {
  if (!opening) {
    opening = new Promise((resolve, reject) => {
      const request = indexedDB.open(DATABASE, 1);
      request.onupgradeneeded = () => {
        const store = request.result.createObjectStore(STORE, { keyPath: "clientId" });
        store.createIndex("user", "userId");
      };
      request.onsuccess = () => resolve(request.result);
      request.onerror = () => reject(request.error);
    });
    opening.catch(() => {
      opening = null;
    });
  }
  return opening;
}

// One transaction on the store: `work(store)` runs inside it; resolves with its result once committed.
async function inStore(mode, work) {
  const db = await database();
  return new Promise((resolve, reject) => {
    const transaction = db.transaction(STORE, mode);
    let result;
    transaction.oncomplete = () => resolve(result);
    transaction.onerror = () => reject(transaction.error);
    transaction.onabort = () => reject(transaction.error);
    const store = transaction.objectStore(STORE);
    Promise.resolve(work(store)).then((value) => {
      result = value;
    });
  });
}

function asPromise(request) {
  return new Promise((resolve, reject) => {
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
}

// Every reply kept for this user on this device, oldest first. A refused reply nobody took back within a
// week (its conversation never opened again here) is dropped then: nothing is kept for ever.
export async function kept(userId) {
  const entries = await inStore("readonly", (store) => asPromise(store.index("user").getAll(userId)));
  const stale = entries.filter((entry) => entry.state === "refused" && Date.now() - entry.writtenAt > REFUSED_KEPT_MS);
  if (stale.length) {
    await inStore("readwrite", (store) => Promise.all(stale.map((entry) => asPromise(store.delete(entry.clientId)))));
  }
  return entries
    .filter((entry) => !stale.includes(entry))
    .sort((a, b) => a.writtenAt - b.writtenAt || (a.order || 0) - (b.order || 0));
}

// Change a kept reply in one transaction — only if it is still there: a reply cancelled or discarded (at
// Sair, in another tab) meanwhile is never brought back. Resolves with the entry as written, or null.
function update(clientId, change) {
  return inStore("readwrite", async (store) => {
    const entry = await asPromise(store.get(clientId));
    if (!entry) return null;
    const changed = { ...entry, ...change };
    await asPromise(store.put(changed));
    return changed;
  });
}

// How many replies wait on this device, of anyone (the offline page says so, naming nobody).
export async function waitingCount() {
  try {
    return await inStore("readonly", (store) => asPromise(store.count()));
  } catch (unavailable) {
    return 0;
  }
}

// Logging out: this user's kept replies leave the device with them.
export async function discard(userId) {
  const entries = await kept(userId);
  await inStore("readwrite", (store) => Promise.all(entries.map((entry) => asPromise(store.delete(entry.clientId)))));
  return entries.length;
}

// The server's reason for refusing, or null when it is worth trying again (no answer, a server error, too
// many requests, a session to renew): those stay in the outbox.
function refusal(error) {
  if (!(error instanceof HttpError)) return null;
  const { status, body } = error;
  if (status === 401 || status === 429 || status >= 500) return null;
  if (status === 403 && /csrf/i.test(body?.detail || "")) return null;
  return body?.detail || `o servidor recusou (HTTP ${status})`;
}

let order = 0;

export class Outbox extends EventTarget {
  constructor({ userId, clinicId }) {
    super();
    this.userId = userId;
    this.clinicId = clinicId;
    this.attempt = 0;
    this.retryTimer = null;
    this.running = null;
    this.channel = "BroadcastChannel" in window ? new BroadcastChannel(`taskmed-outbox:${userId}`) : null;
    this.channel?.addEventListener("message", (event) => this.emit(event.data, false));
    window.addEventListener("online", () => this.flush());
  }

  // Tell this tab (and, unless it came from there, the user's other tabs) what happened to a reply.
  emit(detail, broadcast = true) {
    this.dispatchEvent(new CustomEvent(detail.type, { detail }));
    if (broadcast) this.channel?.postMessage(detail);
  }

  // Keep a reply, then try to send what is kept. `reply`: {clientId, conversationId, content, file}.
  async add(reply) {
    const entry = {
      clientId: reply.clientId,
      userId: this.userId,
      clinicId: this.clinicId,
      conversationId: reply.conversationId,
      content: reply.content,
      file: reply.file || null,
      fileName: reply.file?.name || "",
      replyTo: reply.replyTo || null,
      question: reply.question || null,
      voice: Boolean(reply.voice),
      writtenAt: Date.now(),
      order: order++,
      state: "queued",
      reason: "",
    };
    await inStore("readwrite", (store) => asPromise(store.put(entry)));
    this.emit({ type: "queued", clientId: entry.clientId, conversationId: entry.conversationId, writtenAt: entry.writtenAt });
    this.flush();
    return entry;
  }

  async entriesOf(conversationId) {
    return (await kept(this.userId)).filter((entry) => entry.conversationId === conversationId);
  }

  // Cancel a reply not yet sent: "cancelled", or "sending" when it may be on its way (it can no longer be
  // taken back), or "gone" when it already left the outbox.
  async cancel(clientId) {
    const outcome = await inStore("readwrite", async (store) => {
      const entry = await asPromise(store.get(clientId));
      if (!entry) return "gone";
      if (entry.state === "sending") return "sending";
      await asPromise(store.delete(clientId));
      return "cancelled";
    });
    if (outcome === "cancelled") this.emit({ type: "cancelled", clientId });
    return outcome;
  }

  // A refused reply, taken out to go back to its composer.
  async take(clientId) {
    return inStore("readwrite", async (store) => {
      const entry = await asPromise(store.get(clientId));
      if (entry) await asPromise(store.delete(clientId));
      return entry || null;
    });
  }

  // Send what is kept, in order; one tab at a time. Safe to call at any moment, as often as wanted.
  flush() {
    clearTimeout(this.retryTimer);
    if (this.running) {
      this.again = true;
      return this.running;
    }
    const run = () => this.sendKept();
    this.running = (navigator.locks ? navigator.locks.request(`taskmed-outbox:${this.userId}`, run) : run())
      .catch(() => {})
      .finally(() => {
        this.running = null;
        if (this.again) {
          this.again = false;
          this.flush();
        }
      });
    return this.running;
  }

  async sendKept() {
    for (;;) {
      const entries = await kept(this.userId);
      const next = entries.find((entry) => entry.state !== "refused" && entry.clinicId === this.clinicId);
      if (!next) {
        this.attempt = 0;
        return;
      }
      // Marked while its request is out: a cancel then says it may already be sent. A tab closed meanwhile
      // leaves it marked; the next sender (holding the lock, so no one else is sending) sends it again.
      if (!(await update(next.clientId, { state: "sending" }))) continue; // cancelled or discarded meanwhile
      this.emit({ type: "sending", clientId: next.clientId, conversationId: next.conversationId });
      try {
        const message = await api("POST", `/api/conversations/${next.conversationId}/messages/`, this.body(next));
        await inStore("readwrite", (store) => asPromise(store.delete(next.clientId)));
        this.attempt = 0;
        this.emit({ type: "sent", clientId: next.clientId, conversationId: next.conversationId, messageId: message.id });
      } catch (error) {
        const reason = refusal(error);
        if (reason !== null) {
          if (await update(next.clientId, { state: "refused", reason })) {
            this.emit({ type: "refused", clientId: next.clientId, conversationId: next.conversationId, reason });
          }
          continue; // the next reply is not held up by this one
        }
        if (await update(next.clientId, { state: "queued" })) {
          this.emit({ type: "waiting", clientId: next.clientId, conversationId: next.conversationId, writtenAt: next.writtenAt });
        }
        const delay = RETRY_MS[Math.min(this.attempt, RETRY_MS.length - 1)];
        this.attempt += 1;
        this.retryTimer = setTimeout(() => this.flush(), delay);
        return; // in order: nothing after it goes first
      }
    }
  }

  body(entry) {
    if (!entry.file) {
      const body = { content: entry.content, client_id: entry.clientId };
      if (entry.replyTo) body.reply_to = entry.replyTo;
      if (entry.question?.buttons) body.buttons = entry.question.buttons;
      if (entry.question?.list) body.list = entry.question.list;
      return body;
    }
    const form = new FormData();
    form.append("content", entry.content);
    form.append("client_id", entry.clientId);
    if (entry.replyTo) form.append("reply_to", String(entry.replyTo));
    if (entry.voice) form.append("voice", "true");
    form.append("file", entry.file, entry.fileName || "arquivo");
    return form;
  }
}
