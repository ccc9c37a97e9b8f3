// The inbox page: keeps the server-rendered conversation list current from the clinic's event stream.

import { ClinicStream } from "./realtime.js";

const list = document.querySelector(".conversation-list");
const inbox = document.querySelector(".inbox");
const me = Number(inbox.dataset.userId);
const status = document.querySelector("[data-stream-state]");

function row(conversationId) {
  return list.querySelector(`[data-conversation-id="${conversationId}"]`);
}

function setText(element, selector, text) {
  const target = element.querySelector(selector);
  if (target) target.textContent = text;
}

function clinicTime(iso) {
  const when = new Date(iso);
  const zone = inbox.dataset.timezone;
  const day = (d) => d.toLocaleDateString("pt-BR", { timeZone: zone });
  if (day(when) === day(new Date())) {
    return when.toLocaleTimeString("pt-BR", { timeZone: zone, hour: "2-digit", minute: "2-digit" });
  }
  const label = when.toLocaleDateString("pt-BR", { timeZone: zone, day: "numeric", month: "short" }).replace(".", "");
  const year = (d) => d.toLocaleDateString("pt-BR", { timeZone: zone, year: "numeric" });
  return year(when) === year(new Date()) ? label : `${label} de ${year(when)}`;
}

// Rows stay in the server's order, newest activity first: a message WhatsApp delivers late, stamped
// with an older time, does not lift its conversation above newer ones.
function activityOf(conversation) {
  return conversation.last_message_at || conversation.created_at;
}

function place(item, activity) {
  item.dataset.activity = activity;
  const at = Date.parse(activity);
  for (const other of list.querySelectorAll(".conversation")) {
    if (other !== item && Date.parse(other.dataset.activity) <= at) {
      list.insertBefore(item, other);
      return;
    }
  }
  list.append(item);
}

function newRow(conversation) {
  const item = document.createElement("li");
  item.className = `conversation status-${conversation.status}`;
  item.dataset.conversationId = conversation.id;
  item.innerHTML = `<div class="who"><span class="name"></span><span class="phone"></span></div>
    <p class="preview"></p><div class="meta"><time></time><span class="unread" hidden></span><span class="status"></span></div>`;
  setText(item, ".name", conversation.contact.display_name);
  setText(item, ".phone", conversation.contact.phone_display);
  setText(item, ".status", STATUS_LABELS[conversation.status] || conversation.status);
  list.querySelector(".empty")?.remove();
  place(item, activityOf(conversation));
  return item;
}

function showMessage(conversation, message) {
  const item = row(conversation.id) || newRow(conversation);
  setText(item, ".name", conversation.contact.display_name);
  setText(item, ".phone", conversation.contact.phone_display);
  // A system line (the patient changed number) is neither the preview nor unread.
  if (message.message_type === "system") return;
  const time = item.querySelector("time");
  if (!time.dateTime || Date.parse(message.created_at) >= Date.parse(time.dateTime)) {
    const prefix = message.direction === "outbound" ? "Você: " : "";
    const text = message.message_type === "text" ? message.content : `[${message.message_type}] ${message.content}`;
    setText(item, ".preview", prefix + text);  // the preview is the conversation's latest message
    time.dateTime = message.created_at;
    time.textContent = clinicTime(message.created_at);
  }
  if (message.direction === "inbound") {
    const unread = item.querySelector(".unread");
    const count = Number(unread.textContent || 0) + 1;
    unread.textContent = count;
    unread.hidden = false;
    unread.setAttribute("aria-label", `${count} não lidas`);
  }
  place(item, activityOf(conversation));
}

const STATUS_LABELS = { open: "Aberta", pending: "Pendente", resolved: "Resolvida" };

function apply(frame) {
  const data = frame.data || {};
  if (frame.type === "message:new") showMessage(data.conversation, data.message);
  else if (frame.type === "conversation:new") row(data.conversation.id) || newRow(data.conversation);
  else if (frame.type === "conversation:updated") {
    const item = row(data.conversation.id);
    if (item) {
      item.className = `conversation status-${data.conversation.status}`;
      setText(item, ".status", STATUS_LABELS[data.conversation.status] || data.conversation.status);
      setText(item, ".name", data.conversation.contact.display_name);  // renamed by support
      setText(item, ".phone", data.conversation.contact.phone_display);
    }
  } else if (frame.type === "message:read" && data.user_id === me) {
    const unread = row(frame.conversation_id)?.querySelector(".unread");
    if (unread) unread.hidden = true;
  } else if (frame.type === "resync") location.reload();  // too much missed: the server renders afresh
}

const stream = new ClinicStream({
  seq: Number(inbox.dataset.seq),
  onFrame: apply,
  onState: (state) => {
    if (status) status.dataset.streamState = state;
    if (state === "signed-out") location.reload();
  },
});
stream.start();
