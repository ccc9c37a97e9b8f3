// What every page does: registers the service worker (the installable app, its offline page and push
// notifications: sw.js), sends the replies this device still keeps (the inbox does it itself, showing
// them), opens and closes the top bar's menu on a phone, and, on *Sair*, leaves nothing of
// the user on this device — the replies still waiting in the outbox (after asking) and the push
// subscription (the server drops its copy with the session).

import { discard, kept, Outbox } from "./outbox.js";

if ("serviceWorker" in navigator) {
  navigator.serviceWorker.register("/sw.js", { scope: "/" }).catch(() => {
    // Not a secure context (plain http on a LAN), or the browser refuses: the pages work as before.
  });
}

const toggle = document.querySelector(".menu-toggle");
const menu = document.getElementById("topbar-menu");
if (toggle && menu) {
  document.documentElement.classList.add("has-menu");
  toggle.hidden = false;
  const show = (open) => {
    toggle.setAttribute("aria-expanded", String(open));
    menu.classList.toggle("open", open);
  };
  toggle.addEventListener("click", () => show(toggle.getAttribute("aria-expanded") !== "true"));
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && menu.classList.contains("open")) {
      show(false);
      toggle.focus();
    }
  });
  document.addEventListener("click", (event) => {
    if (menu.classList.contains("open") && !event.target.closest(".topbar")) show(false);
  });
}

async function pushSubscription() {
  if (!("serviceWorker" in navigator)) return null;
  const registration = await navigator.serviceWorker.getRegistration("/");
  return registration?.pushManager ? registration.pushManager.getSubscription() : null;
}

// At most this long before the logout goes ahead whatever is left undone.
function within(ms, work) {
  return Promise.race([work.catch(() => {}), new Promise((resolve) => setTimeout(resolve, ms))]);
}

const logout = document.querySelector("form[data-logout]");
const userId = Number(document.body.dataset.userId || 0);
const clinicId = Number(document.body.dataset.clinicId || 0);

if (userId && clinicId && !document.querySelector(".workspace") && "indexedDB" in window) {
  new Outbox({ userId, clinicId }).flush(); // written in the inbox, the connection back on another page
}
logout?.addEventListener("submit", async (event) => {
  if (logout.dataset.leaving) return;
  event.preventDefault();
  let waiting = [];
  try {
    waiting = userId ? await kept(userId) : [];
  } catch (unavailable) {
    waiting = [];
  }
  if (waiting.length) {
    const many = waiting.length === 1 ? "1 resposta ainda não enviada" : `${waiting.length} respostas ainda não enviadas`;
    if (!confirm(`Há ${many} neste aparelho. Ao sair, ela${waiting.length === 1 ? "" : "s"} será${waiting.length === 1 ? "" : "ão"} descartada${waiting.length === 1 ? "" : "s"}. Sair mesmo assim?`)) return;
  }
  await within(2000, (async () => {
    if (userId) await discard(userId);
    const subscription = await pushSubscription();
    await subscription?.unsubscribe();
  })());
  logout.dataset.leaving = "1";
  logout.submit();
});
