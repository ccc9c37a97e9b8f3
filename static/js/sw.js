// The service worker (served at /sw.js, scope "/"): the application shell for offline use, and the push
// notifications that reach staff with the tab closed.
//
// What it keeps is the same for everyone: static assets and the *Sem conexão* page. Pages, API answers
// and patients' files always come from the network and are never stored here, so a shared computer never
// shows one user's or one clinic's data to another, and nothing old is ever presented as live.

const SHELL_CACHE = "taskmed-shell-v1";
const OFFLINE_URL = "/offline/";
const SHELL = [
  OFFLINE_URL,
  "/static/css/app.css",
  "/static/js/offline.js",
  "/static/js/outbox.js",
  "/static/js/api.js",
  "/static/favicon.svg",
  "/static/icons/icon-192.png",
];

self.addEventListener("install", (event) => {
  event.waitUntil(
    caches
      .open(SHELL_CACHE)
      .then((cache) => cache.addAll(SHELL.map((url) => new Request(url, { cache: "reload", credentials: "omit" }))))
      .then(() => self.skipWaiting()),
  );
});

self.addEventListener("activate", (event) => {
  event.waitUntil(
    caches
      .keys()
      .then((names) => Promise.all(names.filter((name) => name !== SHELL_CACHE).map((name) => caches.delete(name))))
      .then(() => self.clients.claim()),
  );
});

// Static assets: from the network while it answers (a deploy's new version at once), else the last copy.
async function staticAsset(request) {
  const cache = await caches.open(SHELL_CACHE);
  try {
    const response = await fetch(request);
    if (response.ok && response.type === "basic") cache.put(request, response.clone());
    return response;
  } catch (offline) {
    const kept = await cache.match(request, { ignoreSearch: true });
    if (kept) return kept;
    throw offline;
  }
}

// A page: always the network's; when it cannot be reached, the *Sem conexão* page in its place.
async function page(request) {
  try {
    return await fetch(request);
  } catch (offline) {
    const cache = await caches.open(SHELL_CACHE);
    return (await cache.match(OFFLINE_URL)) || new Response("Sem conexão", { status: 503, headers: { "Content-Type": "text/plain; charset=utf-8" } });
  }
}

self.addEventListener("fetch", (event) => {
  const request = event.request;
  if (request.method !== "GET") return;
  const url = new URL(request.url);
  if (url.origin !== self.location.origin) return;
  if (request.mode === "navigate") {
    event.respondWith(page(request));
  } else if (url.pathname.startsWith("/static/")) {
    event.respondWith(staticAsset(request));
  }
  // Everything else (the API, the stream, media) goes to the network untouched.
});

// --- Push: the clinic's name, what happened, the conversation's id; never a patient's data ----------------

self.addEventListener("push", (event) => {
  let data = {};
  try {
    data = event.data ? event.data.json() : {};
  } catch (unreadable) {
    data = {};
  }
  const title = data.title || "TaskMed Conversas";
  const url = typeof data.url === "string" && /^\/(?!\/)/.test(data.url) ? data.url : "/inbox/"; // this site only
  event.waitUntil(
    self.registration.showNotification(title, {
      body: data.body || "Nova mensagem",
      icon: "/static/icons/icon-192.png",
      badge: "/static/icons/icon-192.png",
      tag: data.conversation_id ? `conversation-${data.conversation_id}` : "taskmed",
      renotify: true,
      data: { url },
    }),
  );
});

// A click opens the conversation: in a window of the inbox already open (else any of this site's), or a new
// one — through the login or *Escolha a clínica* when needed: the server redirects there and back.
self.addEventListener("notificationclick", (event) => {
  event.notification.close();
  const url = new URL(event.notification.data?.url || "/inbox/", self.location.origin);
  if (url.origin !== self.location.origin) return;
  event.waitUntil(
    (async () => {
      const windows = await self.clients.matchAll({ type: "window" }); // those this worker controls
      const ours = windows.filter((client) => new URL(client.url).origin === self.location.origin);
      const tab = ours.find((client) => new URL(client.url).pathname.startsWith("/inbox/")) || ours[0];
      if (tab) {
        try {
          await tab.focus();
          if (await tab.navigate(url.href)) return;
        } catch (refused) {
          // not ours to steer after all: a window of its own instead
        }
      }
      await self.clients.openWindow(url.href);
    })(),
  );
});
