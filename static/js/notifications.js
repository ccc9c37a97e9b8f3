// *Notificações neste aparelho*: subscribes this browser to push (the service worker shows them) and tells
// the server what this member wants to hear of; or turns them off. The server holds nothing else of the
// device than the push service's address and keys (DESIGN §12).

import { api, HttpError } from "./api.js";

const section = document.querySelector(".notifications");
const form = document.querySelector("[data-push-form]");
const state = document.querySelector("[data-push-state]");
const error = document.querySelector("[data-push-error]");
const on = document.querySelector("[data-push-on]");
const off = document.querySelector("[data-push-off]");
const PREFERENCES = ["assigned", "unassigned", "mentions", "late"];

function say(text) {
  state.textContent = text;
}

function fail(text) {
  error.textContent = text;
  error.hidden = !text;
}

// The VAPID public key as the browser wants it (base64url → bytes).
function keyBytes(base64url) {
  const base64 = base64url.replace(/-/g, "+").replace(/_/g, "/") + "=".repeat((4 - (base64url.length % 4)) % 4);
  return Uint8Array.from(atob(base64), (char) => char.charCodeAt(0));
}

function sameKey(buffer, bytes) {
  if (!buffer) return true; // a browser that does not say: trust it
  const held = new Uint8Array(buffer);
  return held.length === bytes.length && held.every((byte, n) => byte === bytes[n]);
}

function preferences() {
  return Object.fromEntries(PREFERENCES.map((name) => [name, form.elements[name].checked]));
}

function show(device) {
  const active = Boolean(device);
  if (device) for (const name of PREFERENCES) form.elements[name].checked = device[name];
  on.textContent = active ? "Salvar preferências" : "Ativar neste aparelho";
  off.hidden = !active;
  say(active ? "Ativadas neste aparelho." : "Desativadas neste aparelho.");
}

async function registration() {
  if (!("serviceWorker" in navigator) || !("PushManager" in window)) return null;
  return navigator.serviceWorker.register("/sw.js", { scope: "/" }).then(() => navigator.serviceWorker.ready);
}

async function current() {
  const worker = await registration();
  const subscription = worker ? await worker.pushManager.getSubscription() : null;
  if (!subscription) return { subscription: null, device: null };
  try {
    const device = await api("GET", `/api/push/subscription/?endpoint=${encodeURIComponent(subscription.endpoint)}`);
    return { subscription, device };
  } catch (missing) {
    return { subscription, device: null }; // subscribed by another user of this browser, or removed at logout
  }
}

async function turnOn(event) {
  event.preventDefault();
  fail("");
  on.disabled = true;
  try {
    const worker = await registration();
    if (!worker) throw new Error("Este navegador não recebe notificações com a aba fechada (ou a página não está em HTTPS).");
    if ((await Notification.requestPermission()) !== "granted") {
      throw new Error("O navegador não permitiu notificações. Libere-as nas configurações do site e tente de novo.");
    }
    const settings = await api("GET", "/api/push/");
    if (!settings.enabled) throw new Error("As notificações não estão ativadas neste servidor.");
    const key = keyBytes(settings.public_key);
    let subscription = await worker.pushManager.getSubscription();
    if (subscription && !sameKey(subscription.options?.applicationServerKey, key)) {
      await subscription.unsubscribe(); // made with the server's former key pair: it can no longer be pushed to
      subscription = null;
    }
    subscription ||= await worker.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: key });
    const device = await api("PUT", "/api/push/subscription/", { ...subscription.toJSON(), ...preferences() });
    show(device);
  } catch (problem) {
    fail(problem instanceof HttpError ? `Não foi possível ativar: ${problem.message}` : problem.message);
  } finally {
    on.disabled = false;
  }
}

async function turnOff() {
  fail("");
  off.disabled = true;
  try {
    const worker = await registration();
    const subscription = worker ? await worker.pushManager.getSubscription() : null;
    if (subscription) {
      await api("DELETE", "/api/push/subscription/", { endpoint: subscription.endpoint });
      await subscription.unsubscribe();
    }
    show(null);
  } catch (problem) {
    fail(`Não foi possível desativar: ${problem.message}`);
  } finally {
    off.disabled = false;
  }
}

if (section.dataset.pushEnabled === "yes") {
  form.addEventListener("submit", turnOn);
  off.addEventListener("click", turnOff);
  current()
    .then(({ device }) => show(device))
    .catch(() => say("Não foi possível ver o estado deste aparelho."));
} else {
  say("Indisponível neste servidor.");
}
