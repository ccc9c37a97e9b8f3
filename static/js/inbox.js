// The inbox page: wires the stream to the list, the open conversation, presence, notifications and the
// keyboard. Each part owns its own piece of the page; they meet only here, through the stream's frames.

import { config } from "./api.js";
import { showConnection } from "./connection.js";
import { OpenConversation } from "./conversation.js";
import { bindShortcuts } from "./keys.js";
import { ConversationList } from "./list.js";
import { Notifier } from "./notify.js";
import { Outbox } from "./outbox.js";
import { Presence } from "./presence.js";
import { ClinicStream } from "./realtime.js";
import { WaitingClock } from "./waiting.js";

document.documentElement.classList.add("scripted");
const settings = config();
const workspace = document.querySelector(".workspace");
const stream = new ClinicStream({ seq: Number(workspace.dataset.seq), clinicId: Number(workspace.dataset.clinicId) });
const presence = new Presence(settings.user_id, settings.staff);
const notifier = new Notifier(settings.user_id);
const waiting = new WaitingClock(document.querySelector(".conversation-list"), settings.waiting);
const list = new ConversationList(document.querySelector(".conversation-list"), {
  query: workspace.dataset.listQuery,
  presence,
  me: settings.user_id,
  emptyText: settings.empty_list,
  timezone: workspace.dataset.timezone,
  now: () => Date.now() + waiting.offset, // the server's clock, as the waiting times read it
});
const outbox = new Outbox({ userId: settings.user_id, clinicId: Number(workspace.dataset.clinicId) });
const open = new OpenConversation({ workspace, stream, presence, list, config: settings, outbox });

const FRESH_MS = 120000;

function notifyInbound(frame) {
  const message = frame.data?.message;
  if (frame.type !== "message:new" || message?.sender_type !== "patient") return;
  if (Date.now() - Date.parse(frame.at) > FRESH_MS) return; // replayed after a reconnect: already old news
  const body = message.message_type === "text" ? message.content : `[${message.message_type}] ${message.content}`;
  // Events logged before message:new was made brief carried the whole conversation instead of "contact".
  const patient = frame.data.contact || frame.data.conversation?.contact;
  notifier.inbound({ title: patient?.display_name || "", body, url: `/inbox/${frame.conversation_id}/` });
}

function notifyMention(frame) {
  const note = frame.data?.note;
  if (frame.type !== "note:new" || note?.author?.id === settings.user_id) return;
  if (!(note?.mentions || []).some((user) => user.id === settings.user_id)) return;
  if (Date.now() - Date.parse(frame.at) > FRESH_MS) return;
  notifier.mention({
    title: `${note.author?.name || "Um colega"} mencionou você numa nota`,
    body: note.content,
    url: `/inbox/${frame.conversation_id}/#n${note.id}`,
  });
}

stream.on("frame", (frame) => {
  if (frame.type === "resync") {
    location.reload(); // too much was missed: the server renders everything afresh
    return;
  }
  if (frame.type === "hello") {
    outbox.flush(); // the server is reachable again: what waits on this device goes now, in order
    open.announceViewing(); // a new socket: tell colleagues again who has what open
    presence.load();
    return;
  }
  if (frame.type === "quick_replies:changed") open.composer?.forgetReplies(); // read again when next opened
  if (frame.type === "labels:changed" && open.id) open.reload(); // the header's label choices, afresh
  if (frame.type === "clinic:hours") {
    waiting.reload(); // waiting times count the new hours from now on
    for (const id of list.ids()) list.refresh(id);
  }
  presence.apply(frame);
  list.apply(frame);
  if (frame.type === "message:new") waiting.tick(); // a wait the list just started shows at once
  open.apply(frame);
  notifyInbound(frame);
  notifyMention(frame);
});
stream.on("state", (state) => {
  if (state === "signed-out") location.reload();
});
showConnection(stream, presence);

// Switching conversation in place: the row links are real URLs (open in a new tab, share), the click
// just avoids the reload.
document.querySelector(".conversation-list").addEventListener("click", (event) => {
  const link = event.target.closest("a.row-link");
  if (!link || event.button !== 0 || event.ctrlKey || event.metaKey || event.shiftKey || event.altKey) return;
  event.preventDefault();
  open.open(Number(link.closest(".conversation").dataset.conversationId));
});
window.addEventListener("popstate", () => {
  const match = location.pathname.match(/^\/inbox\/(\d+)\/$/);
  if (match) open.open(Number(match[1]), { push: false });
  else open.close({ push: false });
});

function step(by) {
  const ids = list.ids();
  if (!ids.length) return;
  const at = ids.indexOf(open.id);
  const next = ids[Math.min(ids.length - 1, Math.max(0, at === -1 ? 0 : at + by))];
  if (next !== open.id) open.open(next);
}

bindShortcuts({
  next: () => step(1),
  previous: () => step(-1),
  search: () => document.getElementById("search")?.focus(),
  close: () => open.close(),
  resolve: () => open.setStatus("resolved"),
});

// At the clinic's midnight, "14:30" becomes "2 de dez" and "Hoje" becomes "Ontem": the server re-renders.
function msToClinicMidnight() {
  const parts = new Intl.DateTimeFormat("en-GB", {
    timeZone: workspace.dataset.timezone, hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23",
  }).formatToParts(new Date());
  const value = (type) => Number(parts.find((part) => part.type === type).value);
  return (86400 - (value("hour") * 3600 + value("minute") * 60 + value("second"))) * 1000 + 2000;
}
function atMidnight() {
  setTimeout(() => {
    for (const id of list.ids()) list.refresh(id);
    if (open.id) open.reload();
    waiting.reload(); // the next week's open intervals
    atMidnight();
  }, msToClinicMidnight());
}
atMidnight();

stream.start();
outbox.flush(); // replies kept from before this page (a reload offline, a closed tab)
