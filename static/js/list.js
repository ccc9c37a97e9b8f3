// The conversation list: kept current from the stream by asking the server for each changed row as this
// page's filters see it (a row that stops matching leaves, one that starts matching arrives, unread
// counts are the server's), newest activity first; more rows load as the list scrolls.
//
// But for the commonest change of all, a patient writing again into a conversation the list shows, the
// frame says everything the row changes (its preview, time and unread count, and the wait it starts), and
// nothing about whether it matches the page's filters: the row is updated here, as the server would render
// it, without a request. Every open screen of the clinic would otherwise ask for the row on every message
// (docs/capacity.md). Anything else, or anything in doubt, asks the server.

import { fragment, nodesOf } from "./api.js";

// A deleted conversation's row is asked for too: the server answers 204 (no such row) and it leaves.
const ROW_EVENTS = new Set(["message:new", "conversation:new", "conversation:updated", "conversation:deleted", "message:read"]);

const PREVIEW_CHARS = 90;

// A row's preview of a message, cut as the server cuts it (the `preview` filter, clinic_time.py): at most
// 90 characters (code points, after NFC), the last one "…" when cut.
export function previewOf(text) {
  const chars = [...text.normalize("NFC")];
  return chars.length <= PREVIEW_CHARS ? chars.join("") : `${chars.slice(0, PREVIEW_CHARS - 1).join("")}…`;
}

// Newest activity first; in "Aguardando resposta", the longest wait first (rows then carry awaiting-since).
function sortKey(row) {
  return row.dataset.awaitingSince ? -Date.parse(row.dataset.awaitingSince) : Date.parse(row.dataset.activity);
}

export class ConversationList {
  constructor(root, { query, presence, me, emptyText, timezone, now = Date.now }) {
    this.root = root;
    this.now = now;
    this.day = new Intl.DateTimeFormat("en-CA", { timeZone: timezone || undefined, year: "numeric", month: "2-digit", day: "2-digit" });
    this.clock = new Intl.DateTimeFormat("en-GB", { timeZone: timezone || undefined, hour: "2-digit", minute: "2-digit", hourCycle: "h23" });
    this.emptyText = emptyText;
    this.query = query;
    this.presence = presence;
    this.me = me;
    this.current = null;
    this.running = new Map(); // conversation id → true while fetching; "again" if another change came meanwhile
    presence.addEventListener("change", () => this.showTyping());
    this.watchMore();
  }

  url(extra) {
    return `/inbox/rows/?${this.query ? `${this.query}&` : ""}${extra}`;
  }

  rowOf(id) {
    return this.root.querySelector(`.conversation[data-conversation-id="${id}"]`);
  }

  ids() {
    return [...this.root.querySelectorAll(".conversation")].map((row) => Number(row.dataset.conversationId));
  }

  apply(frame) {
    if (!ROW_EVENTS.has(frame.type) || !frame.conversation_id) return;
    if (frame.type === "message:read" && frame.data?.user_id !== this.me) return; // others' reads change nothing here
    if (frame.type === "message:new" && this.patientWroteAgain(frame)) return;
    this.refresh(frame.conversation_id);
  }

  // A patient's new text in a conversation whose row is here, not open on this screen (it is read there),
  // not being asked for, and newer than what the row shows (a frame the row already includes has a time
  // that is not newer): the row is updated in place; false when the server must be asked.
  patientWroteAgain(frame) {
    const message = frame.data?.message;
    const row = this.rowOf(frame.conversation_id);
    if (!row || !message || this.running.has(frame.conversation_id) || frame.conversation_id === this.current) return false;
    if (message.sender_type !== "patient" || message.direction !== "inbound") return false;
    if (message.message_type !== "text" || !message.content || message.asks_nothing) return false;
    if (!row.classList.contains("status-open") && !row.classList.contains("status-pending")) return false;
    if (row.querySelector(".snoozed")) return false; // the patient's message wakes it: the server says how
    const at = Date.parse(message.created_at);
    if (!(at > Date.parse(row.dataset.activity)) || !this.today(at)) return false;
    const name = row.querySelector(".name");
    if (!name || name.textContent !== frame.data.contact?.display_name) return false;

    row.querySelector(".preview").textContent = previewOf(message.content);
    row.dataset.activity = message.created_at;
    const time = row.querySelector(".meta time");
    time.setAttribute("datetime", message.created_at);
    time.textContent = this.clock.format(at);
    let unread = row.querySelector(".unread");
    if (!unread) {
      unread = document.createElement("span");
      unread.className = "unread";
      row.querySelector(".meta .assignee").before(unread);
    }
    const count = Number(unread.textContent || 0) + 1;
    unread.textContent = String(count);
    unread.setAttribute("aria-label", `${count} não lidas`);
    if (!row.querySelector(".waiting")) {
      // The wait starts with this message (waiting.js shows and ticks it, in the clinic's open hours).
      const waiting = document.createElement("span");
      waiting.className = "waiting";
      waiting.dataset.waited = "0";
      waiting.dataset.baseAt = String(at);
      row.querySelector(".typing").before(waiting);
    }
    this.put(row);
    return true;
  }

  // Whether a time is today in the clinic's zone, by the server's clock, where the row shows it as
  // "14:30" (else a date).
  today(at) {
    return this.day.format(at) === this.day.format(this.now());
  }

  async refresh(id) {
    if (this.running.has(id)) {
      this.running.set(id, "again");
      return;
    }
    this.running.set(id, true);
    try {
      do {
        this.running.set(id, true);
        const { status, html } = await fragment(this.url(`id=${id}`), "row");
        if (status === 204) this.rowOf(id)?.remove();
        else this.put(nodesOf(html)[0]);
      } while (this.running.get(id) === "again");
    } catch (error) {
      console.warn("row refresh failed", error); // the next change, or a reload, brings it right
    } finally {
      this.running.delete(id);
      this.showEmpty();
    }
  }

  put(row) {
    if (!row) return;
    const id = Number(row.dataset.conversationId);
    this.rowOf(id)?.remove();
    this.markCurrent(row);
    const at = sortKey(row);
    // Ties as the server breaks them: the newer id first by activity, the older first by wait.
    const first = row.dataset.awaitingSince ? (other) => other > id : (other) => other < id;
    const before = [...this.root.querySelectorAll(".conversation")].find((other) => {
      const otherAt = sortKey(other);
      return otherAt < at || (otherAt === at && first(Number(other.dataset.conversationId)));
    });
    const more = this.root.querySelector(".more");
    if (before) this.root.insertBefore(row, before);
    else if (more) this.root.insertBefore(row, more);
    else this.root.append(row);
    this.showTyping();
  }

  showEmpty() {
    const empty = this.root.querySelector(".empty");
    const rows = this.root.querySelector(".conversation");
    if (rows && empty) empty.remove();
    if (!rows && !empty && !this.root.querySelector(".more")) {
      const item = document.createElement("li");
      item.className = "empty";
      item.textContent = this.emptyText;
      this.root.append(item);
    }
  }

  setCurrent(id) {
    this.current = id;
    for (const row of this.root.querySelectorAll(".conversation")) this.markCurrent(row);
  }

  markCurrent(row) {
    const link = row.querySelector(".row-link");
    if (Number(row.dataset.conversationId) === this.current) link.setAttribute("aria-current", "true");
    else link.removeAttribute("aria-current");
  }

  showTyping() {
    for (const row of this.root.querySelectorAll(".conversation")) {
      const typists = this.presence.typists(Number(row.dataset.conversationId));
      row.classList.toggle("is-typing", typists.length > 0);
      const hint = row.querySelector(".typing");
      hint.hidden = typists.length === 0;
      if (typists.length) hint.textContent = `${typists[0]} digitando…`;
    }
  }

  watchMore() {
    const observer = new IntersectionObserver((entries) => {
      for (const entry of entries) if (entry.isIntersecting) this.loadMore(entry.target);
    }, { root: this.root, rootMargin: "200px" });
    const watch = () => {
      const more = this.root.querySelector(".more");
      if (more) observer.observe(more);
    };
    this.watchNext = watch;
    watch();
  }

  async loadMore(more) {
    if (more.dataset.loading) return;
    more.dataset.loading = "1";
    try {
      const { html } = await fragment(this.url(`cursor=${encodeURIComponent(more.dataset.cursor)}`), "rows");
      more.remove();
      for (const node of nodesOf(html)) {
        if (node.classList.contains("conversation")) {
          if (!this.rowOf(node.dataset.conversationId)) this.root.append(node);
        } else if (node.classList.contains("more")) this.root.append(node);
      }
      this.showTyping();
      this.watchNext();
    } catch (error) {
      delete more.dataset.loading;
      setTimeout(() => this.watchNext(), 5000); // try again when it comes into view
    }
  }
}
