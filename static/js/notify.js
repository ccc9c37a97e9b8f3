// Telling staff about new messages while the tab is hidden: the title count, a short sound (only after
// the first interaction: browsers forbid sound before it), desktop notifications once allowed, and a
// mute switch remembered per user on this browser.

const COUNT_PREFIX = /^\(\d+\) /;

export class Notifier {
  constructor(userId) {
    this.key = `taskmed:${userId}:muted`;
    this.muted = localStorage.getItem(this.key) === "1";
    this.unseen = 0;
    this.interacted = false;
    this.audio = null;
    const unlock = () => {
      this.interacted = true;
      window.removeEventListener("pointerdown", unlock);
      window.removeEventListener("keydown", unlock);
    };
    window.addEventListener("pointerdown", unlock);
    window.addEventListener("keydown", unlock);
    document.addEventListener("visibilitychange", () => {
      if (!document.hidden) this.clear();
    });
    window.addEventListener("focus", () => this.clear());
    this.wire();
  }

  wire() {
    const mute = document.querySelector("[data-mute]");
    if (mute) {
      const show = () => {
        mute.setAttribute("aria-pressed", String(this.muted));
        mute.textContent = this.muted ? "Som: desligado" : "Som: ligado";
      };
      mute.addEventListener("click", () => {
        this.muted = !this.muted;
        localStorage.setItem(this.key, this.muted ? "1" : "0");
        show();
      });
      show();
    }
    const desktop = document.querySelector("[data-desktop-notifications]");
    if (desktop && "Notification" in window && Notification.permission === "default") {
      desktop.hidden = false;
      desktop.addEventListener("click", async () => {
        await Notification.requestPermission();
        desktop.hidden = true;
      });
    }
  }

  // A new message from a patient; `title` and `body` are plain text.
  inbound({ title, body, url }) {
    if (!document.hidden && document.hasFocus()) return;
    this.unseen += 1;
    document.title = `(${this.unseen}) ${document.title.replace(COUNT_PREFIX, "")}`;
    if (!this.muted && this.interacted) this.beep();
    if ("Notification" in window && Notification.permission === "granted") {
      const note = new Notification(title, { body, tag: url, silent: true });
      note.onclick = () => {
        window.focus();
        if (url) location.href = url;
      };
    }
  }

  // A colleague mentioned this user in an internal note: shown on the page at once, and as a desktop
  // notification (with the title count) while the tab is hidden.
  mention({ title, body, url }) {
    let region = document.querySelector(".toasts");
    if (!region) {
      region = document.createElement("div");
      region.className = "toasts";
      region.setAttribute("role", "status");
      region.setAttribute("aria-live", "polite");
      document.body.append(region);
    }
    const toast = document.createElement("a");
    toast.className = "toast mention";
    toast.href = url;
    const heading = document.createElement("strong");
    heading.textContent = title;
    const text = document.createElement("span");
    text.textContent = body.length > 140 ? `${body.slice(0, 140)}…` : body;
    toast.append(heading, text);
    region.append(toast);
    setTimeout(() => toast.remove(), 15000);
    if (!document.hidden && document.hasFocus()) return;
    this.inbound({ title, body, url });
  }

  clear() {
    this.unseen = 0;
    document.title = document.title.replace(COUNT_PREFIX, "");
  }

  beep() {
    try {
      this.audio = this.audio || new AudioContext();
      const oscillator = this.audio.createOscillator();
      const gain = this.audio.createGain();
      oscillator.frequency.value = 880;
      gain.gain.setValueAtTime(0.12, this.audio.currentTime);
      gain.gain.exponentialRampToValueAtTime(0.001, this.audio.currentTime + 0.25);
      oscillator.connect(gain).connect(this.audio.destination);
      oscillator.start();
      oscillator.stop(this.audio.currentTime + 0.25);
    } catch (error) {
      /* no audio device: the title count still tells */
    }
  }
}
