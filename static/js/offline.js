// The *Sem conexão* page (shown by the service worker when a page cannot be reached): says how many replies
// wait on this device, asks the server every few seconds, and goes back to the page wanted once it answers —
// where the outbox sends what waits.

import { waitingCount } from "./outbox.js";

const CHECK_MS = 5000;
const queued = document.querySelector("[data-queued]");
const checking = document.querySelector("[data-checking]");

async function showQueued() {
  const count = await waitingCount();
  queued.hidden = count === 0;
  queued.textContent =
    count === 1
      ? "1 resposta está guardada neste aparelho e será enviada quando a conexão voltar."
      : `${count} respostas estão guardadas neste aparelho e serão enviadas quando a conexão voltar.`;
}

async function reachable() {
  try {
    const response = await fetch("/api/health/", { cache: "no-store" });
    return response.ok;
  } catch (offline) {
    return false;
  }
}

async function check() {
  checking.textContent = "Verificando a conexão…";
  if (await reachable()) {
    location.reload(); // the page wanted, from the server
    return;
  }
  checking.textContent = "Ainda sem conexão. Tentando de novo a cada poucos segundos…";
}

document.querySelector("[data-retry]").addEventListener("click", check);
window.addEventListener("online", check);
setInterval(check, CHECK_MS);
showQueued();
