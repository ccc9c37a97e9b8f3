// Voice notes recorded in the browser, as WhatsApp wants them: Opus in an OGG file. Firefox records that
// directly; Chromium records Opus in WebM, whose Opus packets are moved here, unchanged, into OGG pages (no
// re-encoding: the same sound, the container WhatsApp plays as a voice note). A browser that can record
// neither says so.

const OGG_TYPE = "audio/ogg;codecs=opus";
const WEBM_TYPE = "audio/webm;codecs=opus";

export function recordingType() {
  if (!window.MediaRecorder || !navigator.mediaDevices?.getUserMedia) return null;
  if (MediaRecorder.isTypeSupported(OGG_TYPE)) return OGG_TYPE;
  if (MediaRecorder.isTypeSupported(WEBM_TYPE)) return WEBM_TYPE;
  return null;
}

// --- WebM (Matroska) reading: just enough to find the Opus header and packets ------------------------------

const MASTERS = new Set([0x18538067, 0x1f43b675, 0x1654ae6b, 0xae, 0xa0]); // Segment, Cluster, Tracks, TrackEntry, BlockGroup
const CODEC_PRIVATE = 0x63a2;
const SIMPLE_BLOCK = 0xa3;
const BLOCK = 0xa1;

function vint(bytes, at, keepMarker) {
  const first = bytes[at];
  let length = 1;
  while (length <= 8 && !(first & (0x80 >> (length - 1)))) length += 1;
  if (length > 8) throw new Error("not a WebM file");
  let value = keepMarker ? first : first & (0xff >> length);
  let allOnes = value === (keepMarker ? first : 0xff >> length);
  for (let n = 1; n < length; n += 1) {
    value = value * 256 + bytes[at + n];
    if (bytes[at + n] !== 0xff) allOnes = false;
  }
  return { value, length, unknown: !keepMarker && allOnes };
}

function webmOpus(bytes) {
  let head = null;
  const packets = [];
  const walk = (start, end) => {
    let at = start;
    while (at < end) {
      const id = vint(bytes, at, true);
      const size = vint(bytes, at + id.length, false);
      const body = at + id.length + size.length;
      const stop = size.unknown ? end : Math.min(end, body + size.value);
      if (MASTERS.has(id.value)) {
        walk(body, stop);
      } else if (id.value === CODEC_PRIVATE) {
        head = bytes.slice(body, stop);
      } else if (id.value === SIMPLE_BLOCK || id.value === BLOCK) {
        const track = vint(bytes, body, false);
        const flags = bytes[body + track.length + 2];
        if (flags & 0x06) throw new Error("laced WebM blocks");
        packets.push(bytes.slice(body + track.length + 3, stop));
      }
      at = stop;
    }
  };
  walk(0, bytes.length);
  return { head, packets };
}

// --- OGG writing (RFC 3533, RFC 7845) ---------------------------------------------------------------------

const CRC = new Uint32Array(256).map((_, n) => {
  let r = n << 24;
  for (let k = 0; k < 8; k += 1) r = r & 0x80000000 ? (r << 1) ^ 0x04c11db7 : r << 1;
  return r >>> 0;
});

function crc32(bytes) {
  let crc = 0;
  for (const byte of bytes) crc = ((crc << 8) ^ CRC[((crc >>> 24) ^ byte) & 0xff]) >>> 0;
  return crc;
}

function page(packet, { granule, serial, sequence, flags }) {
  const lacing = [];
  let left = packet.length;
  while (left >= 255) {
    lacing.push(255);
    left -= 255;
  }
  lacing.push(left);
  const out = new Uint8Array(27 + lacing.length + packet.length);
  const view = new DataView(out.buffer);
  out.set([0x4f, 0x67, 0x67, 0x53, 0, flags]);
  view.setBigInt64(6, BigInt(granule), true);
  view.setUint32(14, serial, true);
  view.setUint32(18, sequence, true);
  out[26] = lacing.length;
  out.set(lacing, 27);
  out.set(packet, 27 + lacing.length);
  view.setUint32(22, crc32(out), true);
  return out;
}

// How many 48 kHz samples an Opus packet holds (RFC 6716 §3.1, its TOC byte).
function samples(packet) {
  const config = packet[0] >> 3;
  const ms = config < 12 ? [10, 20, 40, 60][config % 4] : config < 16 ? [10, 20][config % 2] : [2.5, 5, 10, 20][config % 4];
  const code = packet[0] & 3;
  const frames = code === 0 ? 1 : code < 3 ? 2 : packet[1] & 0x3f;
  return frames * ms * 48;
}

function opusHead(channels = 1) {
  const head = new Uint8Array(19);
  head.set(new TextEncoder().encode("OpusHead"));
  const view = new DataView(head.buffer);
  head[8] = 1;
  head[9] = channels;
  view.setUint16(10, 312, true);
  view.setUint32(12, 48000, true);
  return head;
}

function opusTags() {
  const vendor = new TextEncoder().encode("TaskMed");
  const tags = new Uint8Array(8 + 4 + vendor.length + 4);
  tags.set(new TextEncoder().encode("OpusTags"));
  new DataView(tags.buffer).setUint32(8, vendor.length, true);
  tags.set(vendor, 12);
  return tags;
}

export function webmToOgg(buffer) {
  const { head, packets } = webmOpus(new Uint8Array(buffer));
  if (!packets.length) throw new Error("no sound was recorded");
  const serial = (Math.random() * 0xffffffff) >>> 0;
  const header = head && head.length >= 19 && new TextDecoder().decode(head.slice(0, 8)) === "OpusHead" ? head : opusHead();
  const pages = [page(header, { granule: 0, serial, sequence: 0, flags: 0x02 }), page(opusTags(), { granule: 0, serial, sequence: 1, flags: 0 })];
  let granule = 0;
  packets.forEach((packet, n) => {
    granule += samples(packet);
    pages.push(page(packet, { granule, serial, sequence: n + 2, flags: n === packets.length - 1 ? 0x04 : 0 }));
  });
  return new Blob(pages, { type: "audio/ogg" });
}

// --- Recording ---------------------------------------------------------------------------------------------

export class VoiceRecorder {
  constructor() {
    this.type = recordingType();
  }

  get supported() {
    return Boolean(this.type);
  }

  async start() {
    this.stream = await navigator.mediaDevices.getUserMedia({ audio: true });
    this.chunks = [];
    // 32 kbit/s: a voice as clear as WhatsApp's own, and two minutes within the 512 KB it plays in place.
    this.recorder = new MediaRecorder(this.stream, { mimeType: this.type, audioBitsPerSecond: 32000 });
    this.recorder.addEventListener("dataavailable", (event) => this.chunks.push(event.data));
    this.startedAt = Date.now();
    this.recorder.start();
  }

  get seconds() {
    return this.startedAt ? (Date.now() - this.startedAt) / 1000 : 0;
  }

  // The recording as an OGG/Opus file; null when cancelled.
  stop({ keep = true } = {}) {
    return new Promise((resolve, reject) => {
      if (!this.recorder) return resolve(null);
      this.recorder.addEventListener("stop", async () => {
        for (const track of this.stream.getTracks()) track.stop();
        this.recorder = null;
        if (!keep) return resolve(null);
        try {
          const recorded = new Blob(this.chunks, { type: this.type });
          const ogg = this.type === OGG_TYPE ? recorded : webmToOgg(await recorded.arrayBuffer());
          const stamp = new Date().toISOString().slice(0, 19).replace(/[-:T]/g, "");
          resolve(new File([ogg], `mensagem-de-voz-${stamp}.ogg`, { type: "audio/ogg" }));
        } catch (error) {
          reject(error);
        }
      });
      this.recorder.stop();
    });
  }
}
