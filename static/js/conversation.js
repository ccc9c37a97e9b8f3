// The open conversation: switching to another without a reload (the server renders the panes), its
// timeline kept live from the stream (each new or changed message rendered by the server), the header's
// status and assignee, who is viewing or typing, and marking it read only while it is really being read.

import { announce, api, fragment, nodesOf } from "./api.js";
import { Composer, newClientId } from "./composer.js";

const NEAR_BOTTOM_PX = 160;
const REJOIN_MS = 30000;
const MESSAGE_EVENTS = new Set(["message:new", "message:updated"]);
const RECENT_MS = 15000;
const STATUS_RANK = { pending: 0, sent: 1, delivered: 2, read: 3, failed: 4 };

// A fragment fetched before a newer status arrived must not take the tick back (read → sent).
// A date and time typed in the clinic's wall clock ("2026-12-03T08:00", as the header's field and the
// form without scripts mean it) as an instant, whatever zone this browser is in.
function clinicTime(value, zone) {
  const asUtc = Date.parse(`${value}:00Z`);
  const parts = new Intl.DateTimeFormat("en-US", {
    timeZone: zone, hourCycle: "h23", year: "numeric", month: "2-digit", day: "2-digit",
    hour: "2-digit", minute: "2-digit", second: "2-digit",
  }).formatToParts(new Date(asUtc));
  const part = (type) => Number(parts.find((p) => p.type === type).value);
  const shown = Date.UTC(part("year"), part("month") - 1, part("day"), part("hour"), part("minute"), part("second"));
  return new Date(asUtc - (shown - asUtc)).toISOString();
}

function isStale(node, existing) {
  const fresh = STATUS_RANK[node.dataset.status] ?? 0;
  const shown = STATUS_RANK[existing.dataset.status] ?? 0;
  return !["failed", "unknown"].includes(node.dataset.status) && fresh < shown;
}

export class OpenConversation {
  constructor({ workspace, stream, presence, list, config, outbox }) {
    this.workspace = workspace;
    this.stream = stream;
    this.presence = presence;
    this.list = list;
    this.config = config;
    this.id = null;
    this.readUpTo = 0;
    this.laterStatus = new Map(); // message id → a status that came before its bubble
    this.recent = []; // frames of the last seconds, re-applied after a switch (the panes may predate them)
    presence.addEventListener("change", (event) => {
      this.showPresence();
      if (event.detail.newViewer && event.detail.conversationId === this.id) this.announceViewing();
    });
    setInterval(() => this.announceViewing(), REJOIN_MS);
    window.addEventListener("focus", () => this.markRead());
    document.addEventListener("visibilitychange", () => this.markRead());
    // The patient panel is rendered anew on each change: its form is listened to from the document.
    document.addEventListener("submit", (event) => {
      const form = event.target.closest?.("[data-patient-form]");
      if (!form) return;
      event.preventDefault();
      this.correctPatient(form);
    });
    this.bindOutbox(outbox);
    window.addEventListener("pagehide", () => this.composer?.dispose());
    this.mount();
  }

  // The patient panel's "Corrigir cadastro": through the API; every screen of the patient is told. Only the
  // fields changed here are sent, so a colleague's correction of another field is never undone.
  async correctPatient(form) {
    const error = form.querySelector(".form-error");
    const changes = {};
    for (const field of ["name", "email", "notes"]) {
      if (form[field].value !== form[field].defaultValue) changes[field] = form[field].value;
    }
    if (!Object.keys(changes).length) {
      announce("Nada foi alterado no cadastro.");
      return;
    }
    try {
      await api("PATCH", `/api/contacts/${form.dataset.contactId}/`, changes);
      announce("Cadastro do paciente corrigido.");
      await this.refreshPatient({ force: true });
    } catch (failed) {
      error.textContent = `Cadastro não corrigido: ${failed.message}`;
      error.hidden = false;
    }
  }

  // Whether the panel holds a correction being typed (it is then not rendered anew under the typing).
  patientBeingEdited() {
    const form = document.querySelector("[data-patient-form]");
    return Boolean(form) && ["name", "email", "notes"].some((field) => form[field].value !== form[field].defaultValue);
  }

  get pane() {
    return document.getElementById("conversation");
  }

  get timeline() {
    return this.pane.querySelector(".timeline");
  }

  // --- Opening and closing -------------------------------------------------------------------------

  mount() {
    const pane = this.pane;
    const previous = this.id;
    this.id = pane.dataset.conversationId ? Number(pane.dataset.conversationId) : null;
    if (previous && previous !== this.id) this.stream.send({ type: "conversation:leave", conversation_id: previous });
    this.workspace.classList.toggle("has-conversation", Boolean(this.id));
    this.list.setCurrent(this.id);
    this.readUpTo = 0;
    this.olderObserver?.disconnect();
    this.listTitle = this.listTitle || document.title.replace(/^.* — (Conversas — )/, "$1");
    this.composer?.dispose(); // the conversation left: its recording, if any, stops
    this.composer = null;
    if (!this.id) return;
    this.composer = new Composer(pane.querySelector(".composer"), {
      conversationId: this.id,
      userId: this.config.user_id,
      stream: this.stream,
      limits: this.config.media,
      timeline: this,
      windowHours: this.config.reply_window_hours,
    });
    this.bindHeader();
    this.bindTimeline();
    this.showKept();
    const fresh = Date.now() - RECENT_MS;
    for (const { frame, at } of this.recent) if (at > fresh && frame.conversation_id === this.id) this.apply(frame, false);
    this.scrollToStart();
    this.announceViewing();
    this.showPresence();
    this.markRead();
  }

  async open(id, { push = true } = {}) {
    if (id === this.id && !this.opening) return;
    const request = (this.opening = (this.opening || 0) + 1); // only the latest click wins
    const { html } = await fragment(`/inbox/${id}/`, "conversation");
    if (request !== this.opening) return;
    this.swap(html);
    if (push) history.pushState({ id }, "", `/inbox/${id}/${this.listQuery()}`);
    document.title = `${this.pane.querySelector("h2")?.textContent || "Conversa"} — ${this.listTitle}`;
    this.pane.querySelector("#composer-text")?.focus();
  }

  // The same conversation rendered afresh (its day labels after midnight); the draft is kept.
  async reload() {
    if (this.composer?.recorder) return; // never under a voice note being recorded: the next change redraws it
    const id = this.id;
    const request = (this.opening = (this.opening || 0) + 1);
    const { html } = await fragment(`/inbox/${id}/`, "conversation");
    if (request === this.opening && id === this.id) this.swap(html);
  }

  async close({ push = true } = {}) {
    if (!this.id) return;
    const request = (this.opening = (this.opening || 0) + 1);
    const { html } = await fragment("/inbox/", "conversation");
    if (request !== this.opening) return;
    this.swap(html);
    if (push) history.pushState({ id: null }, "", `/inbox/${this.listQuery()}`);
    document.title = this.listTitle;
    this.list.rowOf(this.list.current)?.querySelector(".row-link")?.focus();
  }

  swap(html) {
    const nodes = nodesOf(html);
    const pane = nodes.find((node) => node.id === "conversation");
    const patient = nodes.find((node) => node.id === "patient");
    this.pane.replaceWith(pane);
    document.getElementById("patient").replaceWith(patient);
    this.mount();
  }

  listQuery() {
    const query = this.workspace.dataset.listQuery;
    return query ? `?${query}` : "";
  }

  // --- The header ----------------------------------------------------------------------------------

  bindHeader() {
    const pane = this.pane;
    // The forms post without scripts; here the API does it, without leaving the page.
    for (const form of pane.querySelectorAll(".status-buttons, .assign-form, .answer-form, .snooze-form, [data-label-form]")) {
      form.addEventListener("submit", (event) => event.preventDefault());
    }
    for (const button of pane.querySelectorAll("[data-set-status]")) {
      button.addEventListener("click", (event) => {
        event.preventDefault();
        this.setStatus(button.dataset.setStatus);
      });
    }
    pane.querySelector("[data-assignee-select]").addEventListener("change", (event) => {
      this.patch({ assignee: event.target.value ? Number(event.target.value) : null }, "Responsável alterado.");
    });
    pane.querySelector("[data-assign-me]")?.addEventListener("click", (event) => {
      event.preventDefault();
      this.patch({ assignee: this.config.user_id }, "Conversa atribuída a você.");
    });
    for (const button of pane.querySelectorAll("[data-answered-by]")) {
      button.addEventListener("click", (event) => {
        event.preventDefault();
        const staff = button.dataset.answeredBy === "staff";
        this.patch({ answered_by: button.dataset.answeredBy }, staff ? "Você assumiu: o assistente pausou." : "Devolvida ao assistente.");
      });
    }
    pane.querySelector("[data-snooze]")?.addEventListener("click", (event) => {
      event.preventDefault();
      const value = pane.querySelector("[data-snooze-input]").value;
      if (!value) {
        announce("Escolha até quando adiar.");
        pane.querySelector("[data-snooze-input]").focus();
        return;
      }
      const until = clinicTime(value, this.workspace.dataset.timezone);
      this.patch({ snoozed_until: until }, "Conversa adiada: sai das abertas até lá.");
      pane.querySelector(".snooze-menu")?.removeAttribute("open");
    });
    pane.querySelector("[data-wake]")?.addEventListener("click", (event) => {
      event.preventDefault();
      this.patch({ snoozed_until: null }, "Conversa retomada.");
      pane.querySelector(".snooze-menu")?.removeAttribute("open");
    });
    for (const box of pane.querySelectorAll('[data-label-form] input[name="labels"]')) {
      box.addEventListener("change", () => {
        const ids = [...pane.querySelectorAll('[data-label-form] input[name="labels"]:checked')].map((b) => Number(b.value));
        this.patch({ labels: ids }, "Etiquetas alteradas.");
      });
    }
    pane.querySelector("[data-new-label]")?.addEventListener("submit", async (event) => {
      event.preventDefault();
      const form = event.target;
      try {
        const label = await api("POST", "/api/labels/", { name: form.name.value, color: form.color.value });
        const ids = [...pane.querySelectorAll('[data-label-form] input[name="labels"]:checked')].map((b) => Number(b.value));
        await this.patch({ labels: [...ids, label.id] }, `Etiqueta ${label.name} criada e aplicada.`);
        await this.reload();
        this.pane.querySelector(".label-editor")?.setAttribute("open", "");
      } catch (error) {
        announce(`Etiqueta não criada: ${error.message}`);
      }
    });
    pane.querySelector("[data-mark-unread]")?.addEventListener("click", (event) => {
      event.preventDefault();
      this.markUnread();
    });
    pane.querySelector("[data-close-conversation]").addEventListener("click", (event) => {
      if (event.ctrlKey || event.metaKey || event.shiftKey) return;
      event.preventDefault();
      this.close();
    });
  }

  // Unread again for this user only: back to the list, where its badge shows (staying would read it).
  async markUnread() {
    const id = this.id;
    try {
      await api("POST", `/api/conversations/${id}/unread/`);
    } catch (error) {
      announce(`Não foi possível marcar como não lida: ${error.message}`);
      return;
    }
    await this.close();
    this.list.refresh(id);
    announce("Conversa marcada como não lida.");
  }

  setStatus(status) {
    if (!this.id) return;
    const words = { open: "Conversa reaberta.", pending: "Conversa pendente.", resolved: "Conversa resolvida." };
    this.patch({ status }, words[status]);
  }

  async patch(change, done) {
    try {
      const conversation = await api("PATCH", `/api/conversations/${this.id}/`, change);
      this.showConversation(conversation);
      announce(done);
    } catch (error) {
      announce(`Não foi possível alterar: ${error.message}`);
    }
  }

  showConversation(conversation) {
    if (conversation.id !== this.id) return;
    const pane = this.pane;
    pane.dataset.status = conversation.status;
    for (const button of pane.querySelectorAll("[data-set-status]")) {
      button.setAttribute("aria-pressed", String(button.dataset.setStatus === conversation.status));
    }
    const reopen = pane.querySelector('[data-set-status="open"]');
    reopen.textContent = this.config.open_button[conversation.status === "resolved" ? "reopen" : "open"];
    pane.querySelector("[data-status-label]").textContent = this.config.status_labels[conversation.status];
    pane.querySelector("[data-assignee-select]").value = conversation.assignee ? String(conversation.assignee.id) : "";
    const mine = pane.querySelector("[data-assign-me]");
    if (mine) mine.hidden = conversation.assignee?.id === this.config.user_id;
    const heads = pane.querySelector("[data-head-labels]");
    if (heads && conversation.labels) {
      heads.replaceChildren(
        ...conversation.labels.map((label) => {
          const chip = document.createElement("span");
          chip.className = "label-chip";
          chip.style.setProperty("--label", label.color);
          chip.textContent = label.name;
          return chip;
        }),
      );
      const chosen = new Set(conversation.labels.map((label) => String(label.id)));
      for (const box of pane.querySelectorAll('[data-label-form] input[name="labels"]')) box.checked = chosen.has(box.value);
    }
    this.showSnooze(conversation.snoozed_until);
    const staff = conversation.answered_by === "staff";
    const label = pane.querySelector("[data-answered-by-label]");
    if (label) label.textContent = staff ? "Equipe responde" : "Assistente responde";
    for (const button of pane.querySelectorAll("[data-answered-by]")) {
      button.hidden = (button.dataset.answeredBy === "staff") === staff;
    }
    pane.querySelector("h2").textContent = conversation.contact.display_name;
    pane.querySelector(".conversation-head .phone").textContent = conversation.contact.phone_display;
  }

  showSnooze(until) {
    const pane = this.pane;
    const label = pane.querySelector("[data-snoozed-label]");
    if (!label) return;
    label.hidden = !until;
    pane.querySelector(".snooze-until").hidden = Boolean(until);
    pane.querySelector("[data-snooze]").hidden = Boolean(until);
    pane.querySelector("[data-wake]").hidden = !until;
    if (until) {
      const zone = this.workspace.dataset.timezone;
      label.querySelector("time").textContent = new Intl.DateTimeFormat("pt-BR", {
        timeZone: zone, day: "2-digit", month: "short", hour: "2-digit", minute: "2-digit",
      }).format(new Date(until));
    }
  }

  // --- Who else is here ----------------------------------------------------------------------------

  announceViewing() {
    if (this.id) this.stream.send({ type: "conversation:join", conversation_id: this.id });
  }

  showPresence() {
    if (!this.id) return;
    const viewers = this.presence.viewers(this.id);
    const typists = this.presence.typists(this.id);
    const online = [...this.presence.online.values()].filter(Boolean);
    const parts = [];
    if (viewers.length) parts.push(`Vendo agora: ${viewers.join(", ")}`);
    if (online.length) parts.push(`Online: ${online.join(", ")}`);
    this.pane.querySelector(".presence .viewers").textContent = parts.join(" · ");
    const line = this.pane.querySelector(".typing-line");
    line.textContent = typists.length ? `${typists.join(", ")} ${typists.length > 1 ? "estão" : "está"} digitando…` : "";
  }

  // --- The timeline --------------------------------------------------------------------------------

  bindTimeline() {
    this.timeline.addEventListener("click", (event) => {
      const quote = event.target.closest("a[data-quote]");
      if (quote) {
        const original = this.messageNode(Number(quote.dataset.quote));
        if (original) {
          event.preventDefault(); // the conversation stays where it is in the URL
          original.scrollIntoView({ block: "center" });
          original.classList.remove("found");
          void original.offsetWidth; // restart the highlight
          original.classList.add("found");
        }
        return;
      }
      const target = event.target.closest("button");
      if (!target) return;
      if (target.matches("[data-load-older]")) this.loadOlder();
      else if (target.matches("[data-resend]")) this.resend(target.closest(".message"));
      else if (target.matches("[data-cancel-send]")) this.cancelKept(target.closest(".message"));
      else if (target.matches("[data-react]")) this.react(target);
      else if (target.matches("[data-reply-to]")) {
        const bubble = target.closest(".message");
        const text = bubble.querySelector(".text")?.textContent || bubble.querySelector(".files")?.textContent.trim() || "";
        this.composer?.quote({
          id: Number(target.dataset.replyTo),
          sender: bubble.querySelector(".sender")?.textContent || "",
          text: text.length > 80 ? `${text.slice(0, 79)}…` : text,
        });
      }
      else if (target.matches("[data-use-suggestion]")) {
        this.composer?.useText(target.closest(".note").querySelector(".text").textContent);
      }
    });
    const older = this.timeline.querySelector(".older");
    if (older) {
      this.olderObserver = new IntersectionObserver((entries) => {
        if (entries.some((entry) => entry.isIntersecting)) this.loadOlder();
      }, { root: this.timeline });
      this.olderObserver.observe(older);
    }
  }

  messageNode(id) {
    return this.timeline.querySelector(`.message[data-message-id="${id}"]`);
  }

  scrollToStart() {
    const focus = this.pane.dataset.focusMessage && this.messageNode(Number(this.pane.dataset.focusMessage));
    if (focus) {
      focus.classList.add("found"); // the search result this conversation was opened at
      focus.scrollIntoView({ block: "center" });
      return;
    }
    const firstUnread = this.timeline.querySelector(".message.first-unread");
    if (firstUnread) firstUnread.scrollIntoView({ block: "start" });
    else this.timeline.scrollTop = this.timeline.scrollHeight;
  }

  nearBottom() {
    const t = this.timeline;
    return t.scrollHeight - t.scrollTop - t.clientHeight < NEAR_BOTTOM_PX;
  }

  apply(frame, remember = true) {
    if (remember) {
      this.recent.push({ frame, at: Date.now() });
      if (this.recent.length > 200) this.recent.shift();
    }
    if (frame.conversation_id !== this.id || !this.id) return;
    const data = frame.data || {};
    if (MESSAGE_EVENTS.has(frame.type)) this.refreshMessage(data.message.id, data.message.client_id);
    if (frame.type === "message:new" && data.message?.sender_type === "patient") {
      this.composer?.patientWrote(data.message.created_at);
    }
    else if (frame.type === "message:status") this.showStatus(data);
    else if (frame.type === "conversation:updated") {
      if ((data.changed || []).includes("erased")) {
        location.reload(); // the patient was erased: every text on this page is gone from the server
        return;
      }
      if ((data.changed || []).includes("merged")) {
        this.reload(); // another record's conversation joined this one: its messages are in the timeline now
        return;
      }
      this.showConversation(data.conversation);
      if ((data.changed || []).includes("contact") || (data.changed || []).includes("name")) this.refreshPatient();
    }
    else if (frame.type === "conversation:action") this.refreshAction(data.action.id);
    else if (frame.type === "note:new") this.refreshNote(data.note.id);
    else if (frame.type === "conversation:deleted" && data.merged_into) {
      // Two records of the patient were merged: this conversation joined theirs, which opens in its place.
      this.open(data.merged_into);
      announce("Os cadastros do paciente foram unidos: a conversa continua aqui.");
    }
    else if (frame.type === "conversation:deleted") {
      this.close();
      announce("Esta conversa foi removida pelo suporte.");
    }
  }

  showStatus({ message_id: id, status }) {
    const node = this.messageNode(id);
    const tick = node?.querySelector(".tick");
    if (!node || !tick) {
      this.laterStatus.set(id, status); // its bubble is still being fetched: applied when it is placed
      if (this.laterStatus.size > 200) this.laterStatus.delete(this.laterStatus.keys().next().value);
      return;
    }
    const rank = ["pending", "sent", "delivered", "read"];
    const shown = node.dataset.status;
    if (shown === "failed") return;
    if (status === "failed" || status === "unknown" || shown === "unknown") {
      // The reason and the resend button come rendered (and go, once WhatsApp settles an unknown one).
      if (status !== shown) this.refreshMessage(id);
      return;
    }
    if (rank.indexOf(status) <= rank.indexOf(shown)) return;
    const { icon, label } = this.config.ticks[status];
    node.dataset.status = status;
    tick.dataset.tick = status;
    tick.textContent = icon;
    tick.title = label;
    tick.setAttribute("aria-label", label);
  }

  async refreshMessage(id, clientId) {
    const conversation = this.id;
    const { status, html } = await fragment(`/inbox/${conversation}/messages/?id=${id}`, "message");
    if (status === 204 || conversation !== this.id) return; // switched meanwhile: not this timeline's
    this.place(nodesOf(html), clientId);
  }

  async refreshAction(id) {
    const conversation = this.id;
    const { status, html } = await fragment(`/inbox/${conversation}/messages/?action=${id}`, "action");
    if (status !== 204 && conversation === this.id) this.place(nodesOf(html));
    this.refreshPatient();
  }

  async refreshNote(id) {
    const conversation = this.id;
    const { status, html } = await fragment(`/inbox/${conversation}/messages/?note=${id}`, "note");
    if (status !== 204 && conversation === this.id) this.place(nodesOf(html));
  }

  async refreshPatient({ force = false } = {}) {
    if (!force && this.patientBeingEdited()) return; // refreshed once the correction is saved
    const conversation = this.id;
    const { html } = await fragment(`/inbox/${conversation}/`, "patient");
    if (conversation !== this.id) return;
    const panel = nodesOf(html).find((node) => node.id === "patient");
    if (panel) document.getElementById("patient").replaceWith(panel);
  }

  // Put server-rendered items in time order; one already shown (or its pending copy) is replaced in place.
  place(nodes, clientId) {
    const follow = this.nearBottom();
    let mine = false;
    let separator = null;
    for (const node of nodes) {
      if (node.classList.contains("day")) {
        separator = node; // the server's words for the item's day, used if the item starts a new day here
        continue;
      }
      const key = node.dataset.messageId
        ? `.message[data-message-id="${node.dataset.messageId}"]`
        : node.dataset.noteId
          ? `[data-note-id="${node.dataset.noteId}"]`
          : `[data-action-id="${node.dataset.actionId}"]`;
      const existing = this.timeline.querySelector(key);
      const pending = clientId && this.timeline.querySelector(`.pending-local[data-client-id="${clientId}"]`);
      if (existing) {
        if (!isStale(node, existing)) existing.replaceWith(node);
        pending?.remove();
      } else if (pending) {
        pending.replaceWith(node);
        mine = true;
      } else {
        this.insertInOrder(node, separator);
      }
      const later = this.laterStatus.get(Number(node.dataset.messageId));
      if (later) {
        this.laterStatus.delete(Number(node.dataset.messageId));
        this.showStatus({ message_id: Number(node.dataset.messageId), status: later });
      }
    }
    if (follow || mine) this.timeline.scrollTop = this.timeline.scrollHeight;
    this.markRead();
  }

  insertInOrder(node, separator) {
    const at = Date.parse(node.dataset.createdAt);
    const items = [...this.timeline.querySelectorAll(".message:not(.pending-local), .timeline-action, .note")];
    let after = null;
    for (const item of items) if (Date.parse(item.dataset.createdAt) <= at) after = item;
    const older = this.timeline.querySelector(".older");
    if (!after && items.length && older) return; // older than what is loaded: it shows when scrolled to
    let reference = after ? after.nextElementSibling : older ? older.nextElementSibling : this.timeline.firstElementChild;
    if (node.dataset.day !== after?.dataset.day) {
      if (reference?.classList.contains("day") && reference.dataset.day === node.dataset.day) {
        reference = reference.nextElementSibling; // that day's separator is there already
      } else if (separator) {
        this.timeline.insertBefore(separator, reference);
      }
    }
    this.timeline.insertBefore(node, reference);
  }

  async loadOlder() {
    const older = this.timeline.querySelector(".older");
    const first = this.timeline.querySelector(".message[data-message-id]");
    if (!older || !first || older.dataset.loading) return;
    older.dataset.loading = "1";
    const id = this.id;
    try {
      const { html } = await fragment(`/inbox/${id}/messages/?before=${first.dataset.messageId}`, "older");
      if (id !== this.id) return;
      const keep = this.timeline.scrollHeight - this.timeline.scrollTop; // the reader's place, from the bottom
      const nodes = nodesOf(html);
      const firstDay = this.timeline.querySelector(".day");
      const lastNew = [...nodes].reverse().find((node) => node.classList.contains("message"));
      if (firstDay && lastNew && firstDay.dataset.day === lastNew.dataset.day) firstDay.remove();
      older.replaceWith(...nodes);
      this.timeline.scrollTop = this.timeline.scrollHeight - keep;
      const next = this.timeline.querySelector(".older");
      if (next) this.olderObserver?.observe(next);
    } catch (error) {
      delete older.dataset.loading;
    }
  }

  // --- Sending: every reply goes through the outbox (outbox.js), and its bubble says where it is ---------

  bindOutbox(outbox) {
    this.outbox = outbox;
    for (const type of ["queued", "sending", "waiting"]) {
      outbox.addEventListener(type, ({ detail }) => this.showKeptState(detail.clientId, type, detail.writtenAt));
    }
    outbox.addEventListener("sent", ({ detail }) => {
      if (detail.conversationId === this.id) this.confirm(detail.clientId, detail.messageId);
    });
    outbox.addEventListener("cancelled", ({ detail }) => this.keptNode(detail.clientId)?.remove());
    outbox.addEventListener("refused", ({ detail }) => {
      if (detail.conversationId === this.id) this.composer?.takeBack(detail.clientId);
      else announce(`Uma resposta de outra conversa foi recusada: ${detail.reason}. Ela volta ao abrir a conversa.`);
    });
  }

  keptNode(clientId) {
    return this.timeline?.querySelector(`.pending-local[data-client-id="${clientId}"]`);
  }

  // The replies this device keeps for the conversation just opened: queued ones shown as such, refused
  // ones back in the composer with the server's reason.
  async showKept() {
    if (!this.outbox || !this.id) return;
    const id = this.id;
    let entries = [];
    try {
      entries = await this.outbox.entriesOf(id);
    } catch (unavailable) {
      return;
    }
    if (id !== this.id) return;
    for (const entry of entries) {
      if (entry.state === "refused") {
        this.composer?.takeBack(entry.clientId);
      } else if (!this.timeline.querySelector(`.message[data-client-id="${entry.clientId}"]:not(.pending-local)`)) {
        this.showPending({ ...entry, file: entry.file ? { name: entry.fileName } : null });
        this.showKeptState(entry.clientId, entry.state === "sending" ? "sending" : "waiting", entry.writtenAt);
      }
    }
  }

  showPending(outgoing) {
    if (this.keptNode(outgoing.clientId)) return;
    const node = document.getElementById("pending-message-template").content.firstElementChild.cloneNode(true);
    node.dataset.clientId = outgoing.clientId;
    node.querySelector(".text").textContent = outgoing.content;
    if (outgoing.file) node.querySelector(".files").textContent = `📎 ${outgoing.file.name}`;
    this.timeline.append(node);
    this.timeline.scrollTop = this.timeline.scrollHeight;
  }

  // "sending": on its way (◔ Enviando…); "queued"/"waiting": kept until the connection is back (Na fila · the
  // time it was written), and it can still be cancelled.
  showKeptState(clientId, state, writtenAt) {
    const node = this.keptNode(clientId);
    if (!node) return;
    const waiting = state === "waiting";
    node.dataset.outbox = waiting ? "queued" : "sending";
    if (writtenAt) {
      const time = new Date(writtenAt).toLocaleTimeString("pt-BR", {
        hour: "2-digit", minute: "2-digit", timeZone: this.workspace.dataset.timezone || undefined, // the clinic's clock, as the timeline's
      });
      node.querySelector(".queued-label").dataset.time = time;
    }
    const label = node.querySelector(".queued-label");
    label.textContent = waiting ? `Na fila · ${label.dataset.time || ""}`.trim() : "Enviando…";
    const tick = node.querySelector(".tick");
    tick.textContent = waiting ? "◷" : "◔";
    tick.title = waiting ? "Na fila: será enviada quando a conexão voltar" : "Enviando";
    tick.setAttribute("aria-label", tick.title);
    node.querySelector("[data-cancel-send]").hidden = !waiting;
  }

  async cancelKept(node) {
    const outcome = await this.outbox.cancel(node.dataset.clientId);
    if (outcome === "cancelled") {
      node.remove();
      announce("Resposta cancelada: não será enviada.");
    } else if (outcome === "sending") {
      announce("A resposta já está sendo enviada e não pode mais ser cancelada.");
    }
  }

  async confirm(clientId, messageId) {
    if (this.messageNode(messageId)) {
      this.keptNode(clientId)?.remove();
      return;
    }
    await this.refreshMessage(messageId, clientId);
  }

  async resend(node) {
    const button = node.querySelector("[data-resend]");
    button.disabled = true;
    try {
      const url = `/api/conversations/${this.id}/messages/${node.dataset.messageId}/resend/`;
      const message = await api("POST", url, { client_id: newClientId() });
      await this.refreshMessage(message.id);
      announce("Mensagem reenviada.");
    } catch (error) {
      button.disabled = false;
      announce(`Não foi possível reenviar: ${error.message}`);
    }
  }

  // A reaction to a patient's message (or its removal): shown at once on every screen through the
  // message:updated frame; the worker sends it to WhatsApp.
  async react(button) {
    const bubble = button.closest(".message");
    button.closest("details")?.removeAttribute("open");
    try {
      await api("POST", `/api/conversations/${this.id}/messages/${bubble.dataset.messageId}/reaction/`, {
        emoji: button.dataset.react,
      });
      await this.refreshMessage(Number(bubble.dataset.messageId));
      announce(button.dataset.react ? `Reação ${button.dataset.react} enviada.` : "Reação removida.");
    } catch (error) {
      announce(`Reação não enviada: ${error.message}`);
    }
  }

  // --- Read marks: only while open, visible and focused ----------------------------------------------

  markRead() {
    if (!this.id || document.visibilityState !== "visible" || !document.hasFocus()) return;
    const ids = [...this.timeline.querySelectorAll(".message[data-message-id]")].map((m) => Number(m.dataset.messageId));
    const latest = Math.max(0, ...ids);
    if (latest <= this.readUpTo) return;
    this.readUpTo = latest;
    const frame = { type: "message:read", conversation_id: this.id, message_id: latest };
    if (!this.stream.send(frame)) {
      api("POST", `/api/conversations/${this.id}/read/`, { message_id: latest }).catch(() => {
        this.readUpTo = 0; // try again on the next chance
      });
    }
  }
}
