// The connection indicator in the corner: the stream's state and how many colleagues are online.

const LABELS = {
  live: "Tempo real",
  connecting: "Conectando…",
  polling: "Modo offline",
  disconnected: "Desconectado",
  "signed-out": "Desconectado",
};

export function showConnection(stream, presence) {
  const badge = document.querySelector(".connection");
  if (!badge) return;
  const label = badge.querySelector(".connection-label");
  const count = badge.querySelector(".online-count");
  const retry = badge.querySelector("[data-reconnect]");
  const render = () => {
    badge.dataset.state = stream.state;
    label.textContent = LABELS[stream.state] || stream.state;
    retry.hidden = stream.state === "live";
    const others = presence.online.size;
    count.textContent = others ? `· ${others} ${others === 1 ? "colega online" : "colegas online"}` : "";
  };
  stream.on("state", render);
  presence.addEventListener("change", render);
  retry.addEventListener("click", () => stream.retryNow());
  render();
}
