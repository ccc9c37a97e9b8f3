// Who of the clinic's staff is online (user:status frames, over every server process), and who is
// viewing or typing in which conversation (ephemeral frames that expire on their own).

import { api } from "./api.js";

const VIEWING_TTL_MS = 70000; // viewers re-announce every 30 s
const TYPING_TTL_MS = 6000; // DESIGN §4: a typing hint lasts 6 s after its last frame

export class Presence extends EventTarget {
  constructor(me, staff = {}) {
    super();
    this.me = me;
    this.staff = staff; // user id → name, from the page
    this.online = new Map(); // user id → name
    this.versions = new Map(); // user id → the newest user:status version applied
    this.viewing = new Map(); // conversation id → Map(user id → {name, until})
    this.typing = new Map(); // conversation id → Map(user id → {name, until})
    setInterval(() => this.expire(), 1000);
  }

  async load() {
    try {
      const body = await api("GET", "/api/presence/");
      this.online = new Map(body.online.filter((user) => user.id !== this.me).map((user) => [user.id, user.name]));
      this.changed();
    } catch (error) {
      /* the stream's user:status frames fill it in */
    }
  }

  apply(frame) {
    const data = frame.data || {};
    if (frame.type === "user:status" && data.user_id !== this.me) {
      // Two server processes' announcements for one user may arrive crossed: the newer one stands.
      if (data.version && data.version <= (this.versions.get(data.user_id) || 0)) return;
      if (data.version) this.versions.set(data.user_id, data.version);
      if (data.status === "online") this.online.set(data.user_id, this.staff[data.user_id] || "");
      else this.online.delete(data.user_id);
      this.changed();
    } else if (frame.type === "conversation:viewing" && data.user && data.user.id !== this.me) {
      const wasThere = this.mark(this.viewing, frame.conversation_id, data.user, data.viewing, VIEWING_TTL_MS);
      this.changed({ conversationId: frame.conversation_id, newViewer: data.viewing && !wasThere });
    } else if (frame.type === "conversation:typing" && data.user && data.user.id !== this.me) {
      this.mark(this.typing, frame.conversation_id, data.user, data.is_typing, TYPING_TTL_MS);
      this.changed({ conversationId: frame.conversation_id });
    }
  }

  mark(table, conversationId, user, on, ttl) {
    const entries = table.get(conversationId) || new Map();
    const had = entries.has(user.id);
    if (on) entries.set(user.id, { name: user.name, until: Date.now() + ttl });
    else entries.delete(user.id);
    table.set(conversationId, entries);
    return had;
  }

  names(table, conversationId) {
    return [...(table.get(conversationId) || new Map()).values()].map((entry) => entry.name);
  }

  viewers(conversationId) {
    return this.names(this.viewing, conversationId);
  }

  typists(conversationId) {
    return this.names(this.typing, conversationId);
  }

  expire() {
    const now = Date.now();
    let expired = false;
    for (const table of [this.viewing, this.typing]) {
      for (const entries of table.values()) {
        for (const [user, entry] of entries) {
          if (entry.until < now) {
            entries.delete(user);
            expired = true;
          }
        }
      }
    }
    if (expired) this.changed();
  }

  changed(detail = {}) {
    this.dispatchEvent(new CustomEvent("change", { detail }));
  }
}
