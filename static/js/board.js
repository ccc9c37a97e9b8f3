// The board: conversations as cards in a column per status, live for everyone. A card is dragged to
// another column, or moved with its status menu (the keyboard way); both change the status through the API.

import { announce, api, config, fragment, nodesOf } from "./api.js";
import { showConnection } from "./connection.js";
import { bindShortcuts } from "./keys.js";
import { Presence } from "./presence.js";
import { ClinicStream } from "./realtime.js";

document.documentElement.classList.add("scripted");
const settings = config();
const board = document.querySelector(".board");
const stream = new ClinicStream({ seq: Number(board.dataset.seq), clinicId: Number(board.dataset.clinicId) });
const presence = new Presence(settings.user_id, settings.staff);
const CARD_EVENTS = new Set(["message:new", "conversation:new", "conversation:updated"]);

const cardOf = (id) => board.querySelector(`.card-item[data-conversation-id="${id}"]`);
const column = (status) => board.querySelector(`.cards[data-drop-status="${status}"]`);

function counts() {
  for (const section of board.querySelectorAll(".board-column")) {
    section.querySelector(".count").textContent = section.querySelectorAll(".card-item").length;
  }
}

function put(card) {
  const id = card.dataset.conversationId;
  cardOf(id)?.remove();
  const target = column(card.dataset.status);
  const at = Date.parse(card.dataset.activity);
  const before = [...target.querySelectorAll(".card-item")].find((other) => Date.parse(other.dataset.activity) < at);
  target.insertBefore(card, before || null);
  counts();
}

async function refresh(id) {
  try {
    const { status, html } = await fragment(`/board/cards/${id}/`, "card");
    if (status !== 204) put(nodesOf(html)[0]);
  } catch (error) {
    console.warn("card refresh failed", error);
  }
}

async function move(card, status) {
  if (card.dataset.status === status) return;
  const from = card.dataset.status;
  card.dataset.status = status;
  put(card); // at once; put back if the server refuses
  try {
    await api("PATCH", `/api/conversations/${card.dataset.conversationId}/`, { status });
    announce(`Conversa movida para ${settings.status_labels[status]}.`);
  } catch (error) {
    card.dataset.status = from;
    put(card);
    announce(`Não foi possível mover: ${error.message}`);
  }
  refresh(card.dataset.conversationId);
}

board.addEventListener("dragstart", (event) => {
  const card = event.target.closest(".card-item");
  if (!card) return;
  card.classList.add("dragging");
  event.dataTransfer.setData("text/plain", card.dataset.conversationId);
  event.dataTransfer.effectAllowed = "move";
});
board.addEventListener("dragend", (event) => event.target.closest(".card-item")?.classList.remove("dragging"));
board.addEventListener("dragover", (event) => {
  const target = event.target.closest(".cards");
  if (!target) return;
  event.preventDefault();
  for (const list of board.querySelectorAll(".cards")) list.classList.toggle("drop-target", list === target);
});
board.addEventListener("drop", (event) => {
  const target = event.target.closest(".cards");
  for (const list of board.querySelectorAll(".cards")) list.classList.remove("drop-target");
  if (!target) return;
  event.preventDefault();
  const card = cardOf(event.dataTransfer.getData("text/plain"));
  if (card) move(card, target.dataset.dropStatus);
});
board.addEventListener("change", (event) => {
  if (!event.target.matches("[data-move-card]")) return;
  const card = event.target.closest(".card-item");
  move(card, event.target.value).then(() => cardOf(card.dataset.conversationId)?.querySelector("[data-move-card]")?.focus());
});

stream.on("frame", (frame) => {
  if (frame.type === "resync") location.reload();
  else if (frame.type === "hello") presence.load();
  else {
    presence.apply(frame);
    if (frame.type === "conversation:deleted") {
      cardOf(frame.conversation_id)?.remove();
      counts();
    } else if (CARD_EVENTS.has(frame.type) && frame.conversation_id) refresh(frame.conversation_id);
  }
});
stream.on("state", (state) => {
  if (state === "signed-out") location.reload();
});
showConnection(stream, presence);
bindShortcuts({});
stream.start();
