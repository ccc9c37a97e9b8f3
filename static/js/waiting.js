// Waiting times in the conversation list ("aguarda há 12 min"), kept ticking between the server's renders.
// Each row carries the business seconds its patient had waited when the server rendered it; the time since
// counts only while the clinic is open (its open intervals come with the page, and again from
// /inbox/hours/ when its hours change or a day passes). Past the clinic's first-response target the row is
// marked late.

const TICK_MS = 15000;

export function waitingText(seconds) {
  const minutes = Math.floor(seconds / 60);
  if (minutes < 1) return "aguarda há menos de 1 min";
  if (minutes < 60) return `aguarda há ${minutes} min`;
  const hours = Math.floor(minutes / 60);
  if (hours < 24) return `aguarda há ${hours} h ${String(minutes % 60).padStart(2, "0")} min`;
  return `aguarda há ${hours} h`; // hours of the clinic's open time, never days (they are not calendar days)
}

export class WaitingClock {
  constructor(root, clock) {
    this.root = root;
    this.set(clock);
    setInterval(() => this.tick(), TICK_MS);
  }

  set({ intervals, target_seconds: target, now }) {
    this.intervals = intervals || [];
    this.target = target;
    this.offset = now ? now - Date.now() : 0; // the rows' times are the server's: read them on its clock
    this.tick();
  }

  openMs(from, to) {
    let total = 0;
    for (const [start, end] of this.intervals) {
      const overlap = Math.min(end, to) - Math.max(start, from);
      if (overlap > 0) total += overlap;
    }
    return total;
  }

  tick() {
    const now = Date.now() + this.offset;
    for (const node of this.root.querySelectorAll(".waiting")) {
      const waited = Number(node.dataset.waited) + this.openMs(Number(node.dataset.baseAt), now) / 1000;
      const late = waited > this.target;
      node.textContent = waitingText(waited);
      node.classList.toggle("late", late);
      node.title = `Tempo de espera no horário de atendimento${late ? " — passou da meta de primeira resposta" : ""}`;
    }
  }

  async reload() {
    try {
      const response = await fetch("/inbox/hours/", { headers: { "X-Fragment": "hours" }, credentials: "same-origin" });
      if (response.ok) this.set(await response.json());
    } catch (error) {
      console.warn("waiting hours reload failed", error); // the next change, or a reload, brings it right
    }
  }
}
