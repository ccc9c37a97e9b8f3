// The conversation list: kept current from the stream by asking the server for each changed row as this
// page's filters see it (a row that stops matching leaves, one that starts matching arrives, unread
// counts are the server's), newest activity first; more rows load as the list scrolls.

import { fragment, nodesOf } from "./api.js";

// A deleted conversation's row is asked for too: the server answers 204 (no such row) and it leaves.
const ROW_EVENTS = new Set(["message:new", "conversation:new", "conversation:updated", "conversation:deleted", "message:read"]);

// Newest activity first; in "Aguardando resposta", the longest wait first (rows then carry awaiting-since).
function sortKey(row) {
  return row.dataset.awaitingSince ? -Date.parse(row.dataset.awaitingSince) : Date.parse(row.dataset.activity);
}

export class ConversationList {
  constructor(root, { query, presence, me, emptyText }) {
    this.root = root;
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
    this.refresh(frame.conversation_id);
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
    const before = [...this.root.querySelectorAll(".conversation")].find((other) => {
      const otherAt = sortKey(other);
      return otherAt < at || (otherAt === at && Number(other.dataset.conversationId) < id);
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
