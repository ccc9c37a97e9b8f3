// The composer of the open conversation: Enter sends, Shift+Enter breaks the line; files by button,
// drag-and-drop or paste, checked against WhatsApp's limits before upload; the message shows at once and
// goes through this device's outbox (outbox.js: kept until the server has it, sent once by its client_id,
// back here with the reason if refused); a draft per conversation survives switching and reloading; typing hints go out while typing, throttled. In "Nota interna" mode the text is an internal
// note for colleagues instead (POST …/notes/), never sent to the patient.

import { announce, api, HttpError } from "./api.js";
import { VoiceRecorder } from "./voice.js";

const TYPING_EVERY_MS = 2500;
const TYPING_IDLE_MS = 5000;

export function newClientId() {
  if (crypto.randomUUID) return crypto.randomUUID();
  const bytes = crypto.getRandomValues(new Uint8Array(16)); // plain http on a LAN is not a secure context
  bytes[6] = (bytes[6] & 0x0f) | 0x40;
  bytes[8] = (bytes[8] & 0x3f) | 0x80;
  const hex = [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

export function checkFile(file, limits) {
  // The same table the server enforces (conversations/media.py), handed over as page data.
  const rule = limits.find((kind) => kind.types.includes(file.type));
  if (!rule) return `O WhatsApp não aceita arquivos ${file.type || "deste tipo"}; envie imagem, vídeo, áudio, PDF ou Office.`;
  if (file.size === 0) return "O arquivo está vazio.";
  if (file.size > rule.max_bytes) {
    return `O WhatsApp aceita ${rule.kind === "image" ? "imagens" : "arquivos deste tipo"} de até ${Math.round(rule.max_bytes / 1048576) || 0.5} MB; este tem ${(file.size / 1048576).toFixed(1)} MB.`;
  }
  return null;
}

// {{nome}}, {{1}}: what a quick reply or a template leaves to be filled.
const VARIABLE = /\{\{\s*(\w+)\s*\}\}/g;

// The text with the variables `values` knows filled in; the rest stay as they are.
function filled(text, values) {
  return text.replace(VARIABLE, (all, name) => values[name] || all);
}

// Why a request failed, in the server's words, or that it never reached the server.
function failure(error) {
  return error instanceof HttpError && error.body?.detail ? error.body.detail : "Sem conexão com o servidor.";
}

const PLAYABLE_VOICE_BYTES = 512 * 1024; // above it WhatsApp shows a download button instead of playing

function clock(seconds) {
  const total = Math.max(0, Math.round(seconds));
  return `${Math.floor(total / 60)}:${String(total % 60).padStart(2, "0")}`;
}

function remaining(ms) {
  const minutes = Math.max(1, Math.round(ms / 60000));
  return minutes >= 60 ? `${Math.floor(minutes / 60)} h ${minutes % 60} min` : `${minutes} min`;
}

export class Composer {
  constructor(form, { conversationId, userId, stream, limits, timeline, windowHours = 24 }) {
    this.form = form;
    this.conversationId = conversationId;
    this.stream = stream;
    this.limits = limits || [];
    this.timeline = timeline;
    this.text = form.querySelector('textarea[name="content"]');
    this.fileInput = form.querySelector('input[type="file"]');
    this.chip = form.querySelector(".attachment-chip");
    this.error = form.querySelector(".composer-error");
    this.draftKey = `taskmed:${userId}:draft:${conversationId}`;
    this.file = null;
    this.replyTo = null;
    this.replying = form.querySelector("[data-replying]");
    this.voice = null; // {seconds} while the attached file is a recorded voice note
    this.recorder = null;
    this.lastTyping = 0;
    this.typingTimer = null;
    this.text.value = localStorage.getItem(this.draftKey) || "";
    this.modes = [...form.querySelectorAll('input[name="mode"]')];
    this.messagePlaceholder = this.text.placeholder;
    this.windowHours = windowHours;
    this.windowEndsAt = Date.parse(form.dataset.replyWindowEndsAt || "") || null;
    this.hasNumber = form.dataset.whatsappNumber !== "no";
    this.windowNote = form.querySelector("[data-reply-window]");
    this.panel = form.querySelector("[data-template-panel]");
    this.templates = null;
    this.bind();
    this.showMode();
    this.showWindow();
    this.windowTimer = setInterval(() => this.showWindow(), 30000);
  }

  // --- Quick replies: "/" at the start opens a picker, filtered by what follows ------------------------

  forgetReplies() {
    this.repliesRead = null;
  }

  // The clinic's replies, read once however many keystrokes ask while the read is under way.
  quickReplies() {
    if (!this.repliesRead) {
      const read = api("GET", "/api/quick-replies/");
      read.catch(() => {
        if (this.repliesRead === read) this.repliesRead = null; // read again on the next "/"
      });
      this.repliesRead = read;
    }
    return this.repliesRead;
  }

  async quickPicker() {
    const command = /^\/([\p{L}\p{N}_-]*)$/u;
    if (!command.test(this.text.value) || this.noteMode) return this.closePicker();
    let replies;
    try {
      replies = await this.quickReplies();
    } catch (error) {
      return this.closePicker();
    }
    // What is typed now, not when the read began: more may have been typed, or a reply picked, meanwhile.
    const match = command.exec(this.text.value);
    if (!match || this.noteMode || document.activeElement !== this.text) return this.closePicker();
    const wanted = match[1].toLowerCase();
    const found = replies.filter(
      (reply) => reply.shortcut.includes(wanted) || reply.content.toLowerCase().includes(wanted),
    );
    const picker = this.form.querySelector(".quick-picker");
    picker.replaceChildren(
      ...found.map((reply, n) => {
        const item = document.createElement("li");
        item.id = `quick-${reply.id}`;
        item.setAttribute("role", "option");
        item.setAttribute("aria-selected", String(n === 0));
        const code = document.createElement("span");
        code.className = "code";
        code.textContent = `/${reply.shortcut}`;
        const preview = document.createElement("span");
        preview.className = "preview";
        preview.textContent = reply.content;
        item.append(code, preview);
        item.addEventListener("mousedown", (event) => {
          event.preventDefault(); // keep the focus in the text
          this.pickReply(reply);
        });
        item.reply = reply;
        return item;
      }),
    );
    if (!found.length) {
      const empty = document.createElement("li");
      empty.textContent = replies.length ? "Nenhuma resposta com esse código." : "A clínica ainda não tem respostas rápidas.";
      picker.append(empty);
    }
    picker.hidden = false;
    this.text.setAttribute("aria-expanded", "true");
    this.text.setAttribute("aria-activedescendant", found.length ? `quick-${found[0].id}` : "");
  }

  closePicker() {
    const picker = this.form.querySelector(".quick-picker");
    if (picker) picker.hidden = true;
    this.text.setAttribute("aria-expanded", "false");
    this.text.removeAttribute("aria-activedescendant");
  }

  get pickerOpen() {
    return !this.form.querySelector(".quick-picker")?.hidden;
  }

  movePick(by) {
    const items = [...this.form.querySelectorAll(".quick-picker [role=option]")];
    if (!items.length) return;
    const at = items.findIndex((item) => item.getAttribute("aria-selected") === "true");
    const next = items[(at + by + items.length) % items.length];
    for (const item of items) item.setAttribute("aria-selected", String(item === next));
    this.text.setAttribute("aria-activedescendant", next.id);
    next.scrollIntoView({ block: "nearest" });
  }

  pickSelected() {
    const chosen = this.form.querySelector('.quick-picker [aria-selected="true"]');
    if (chosen?.reply) this.pickReply(chosen.reply);
    else this.closePicker();
  }

  // The reply's text with what the conversation knows filled in; anything unknown stays {{…}}, and the
  // send stops on it.
  pickReply(reply) {
    const name = (this.form.dataset.patientName || "").trim();
    const values = { nome: name, primeiro_nome: name.split(" ")[0], clinica: this.form.dataset.clinicName || "" };
    this.text.value = filled(reply.content, values);
    localStorage.setItem(this.draftKey, this.text.value);
    const editor = this.form.querySelector("[data-question-editor]");
    if (editor && reply.buttons?.length) {
      editor.querySelector("[data-question-options]").value = reply.buttons.join("\n"); // it asks with these
      editor.open = true;
    }
    this.closePicker();
    this.text.focus();
    const unfilled = this.unfilled();
    this.showError(unfilled.length ? `Preencha ${unfilled.join(", ")} antes de enviar.` : "");
  }

  unfilled() {
    return [...new Set(this.text.value.match(VARIABLE) || [])];
  }

  // --- WhatsApp's 24-hour window: free text only while it is open; after it, approved templates -------

  get windowOpen() {
    return this.windowEndsAt !== null && Date.now() < this.windowEndsAt;
  }

  // The patient wrote (a live message:new): the window opens again from then.
  patientWrote(createdAt) {
    const at = Date.parse(createdAt);
    if (!Number.isNaN(at)) this.windowEndsAt = Math.max(this.windowEndsAt || 0, at + this.windowHours * 3600000);
    this.showWindow();
  }

  showWindow() {
    if (!this.form.isConnected) {
      clearInterval(this.windowTimer);
      return;
    }
    const open = this.windowOpen;
    const text = open
      ? `Janela do WhatsApp: ${remaining(this.windowEndsAt - Date.now())} para responder livremente.`
      : this.windowEndsAt === null
        ? "O paciente ainda não escreveu: só um modelo aprovado inicia a conversa."
        : `A janela de ${this.windowHours} h do WhatsApp fechou: texto livre seria recusado; envie um modelo aprovado.`;
    this.windowNote.firstChild.textContent = `${text} `;
    this.windowNote.classList.toggle("closed", !open);
    const offer = this.windowNote.querySelector("[data-open-templates]");
    if (offer) offer.hidden = open; // while the window is open, free text is the way
    this.form.classList.toggle("window-closed", !open);
  }

  async openTemplates() {
    this.panel.hidden = false;
    const select = this.panel.querySelector("[data-template-select]");
    if (!this.templates) {
      try {
        this.templates = (await api("GET", "/api/templates/")).results;
      } catch (error) {
        this.showError(`Não foi possível listar os modelos: ${failure(error)}`);
        this.panel.hidden = true;
        return;
      }
      select.replaceChildren(...this.templates.map((template) => new Option(template.name, template.name)));
      select.addEventListener("change", () => this.showTemplate());
    }
    this.showTemplate();
    select.focus();
  }

  get template() {
    const name = this.panel.querySelector("[data-template-select]").value;
    return this.templates?.find((template) => template.name === name);
  }

  showTemplate() {
    const template = this.template;
    const fields = this.panel.querySelector("[data-template-fields]");
    fields.replaceChildren();
    const field = (text, input) => {
      const label = document.createElement("label");
      label.textContent = `${text} `;
      input.addEventListener("input", () => this.showPreview());
      input.addEventListener("change", () => this.showPreview());
      label.append(input);
      fields.append(label);
      return input;
    };
    for (const name of template?.header_variables || []) {
      const input = field(`Cabeçalho {{${name}}}`, document.createElement("input"));
      input.dataset.headerVariable = name;
    }
    if (template?.header_media) {
      const input = document.createElement("input");
      input.type = "file";
      input.dataset.headerFile = template.header_media;
      input.accept = { image: "image/jpeg,image/png", document: "application/pdf", video: "video/mp4,video/3gpp" }[
        template.header_media
      ];
      field({ image: "Imagem do cabeçalho", document: "Documento do cabeçalho", video: "Vídeo do cabeçalho" }[template.header_media], input);
    }
    for (const name of template?.variables || []) {
      const input = field(`{{${name}}}`, document.createElement("input"));
      input.name = name;
      input.dataset.variable = name;
      if (["1", "nome", "primeiro_nome"].includes(name)) input.value = this.form.dataset.patientFirstName || "";
    }
    for (const button of template?.button_parameters || []) {
      const input = document.createElement("input");
      input.dataset.buttonIndex = String(button.index);
      if (button.type === "url") {
        field(`Final do link de “${button.text}” (${button.url.replace(/\{\{.*?\}\}/, "…")})`, input);
      } else {
        input.placeholder = button.text;
        field(`Resposta do botão “${button.text}” (opcional)`, input);
      }
    }
    this.showPreview();
  }

  templateValues(selector = "[data-variable]", key = "variable") {
    return Object.fromEntries(
      [...this.panel.querySelectorAll(selector)].map((input) => [input.dataset[key], input.value.trim()]),
    );
  }

  // The template as the patient will see it, in a bubble like WhatsApp's: header, text, footer, buttons.
  showPreview() {
    const template = this.template;
    const preview = this.panel.querySelector("[data-template-preview]");
    preview.replaceChildren();
    if (!template) return;
    const part = (tag, className, text) => {
      const node = document.createElement(tag);
      node.className = className;
      node.textContent = text;
      preview.append(node);
      return node;
    };
    if (template.header?.format === "TEXT") {
      part("strong", "preview-header", filled(template.header.text || "", this.templateValues("[data-header-variable]", "headerVariable")));
    } else if (template.header_media) {
      const file = this.panel.querySelector("[data-header-file]")?.files[0];
      part("span", "preview-media", file ? `📎 ${file.name}` : `📎 (${template.header_media})`);
    }
    part("span", "preview-body", filled(template.body || "", this.templateValues()));
    if (template.footer) part("small", "preview-footer", template.footer);
    for (const button of template.buttons || []) part("span", "preview-button", button.text);
  }

  async sendTemplate() {
    const template = this.template;
    if (!template) return;
    const variables = this.templateValues();
    const header = this.templateValues("[data-header-variable]", "headerVariable");
    const blank = Object.entries({ ...header, ...variables }).filter(([, value]) => !value).map(([name]) => `{{${name}}}`);
    if (blank.length) {
      this.showError(`Preencha as variáveis do modelo: ${blank.join(", ")}. Nada foi enviado.`);
      return;
    }
    const file = this.panel.querySelector("[data-header-file]")?.files[0];
    if (template.header_media && !file) {
      this.showError("Escolha o arquivo do cabeçalho do modelo. Nada foi enviado.");
      return;
    }
    const buttons = Object.fromEntries(
      Object.entries(this.templateValues("[data-button-index]", "buttonIndex")).filter(([, value]) => value),
    );
    this.showError("");
    try {
      let body = { template: template.name, variables, client_id: newClientId() };
      if (Object.keys(header).length) body.header = header;
      if (Object.keys(buttons).length) body.button_parameters = buttons;
      if (file) {
        const form = new FormData();
        for (const [key, value] of Object.entries(body)) form.append(key, typeof value === "object" ? JSON.stringify(value) : value);
        form.append("file", file, file.name);
        body = form;
      }
      const message = await api("POST", `/api/conversations/${this.conversationId}/messages/`, body);
      this.panel.hidden = true;
      await this.timeline.refreshMessage(message.id);
    } catch (error) {
      this.showError(`Modelo não enviado: ${failure(error)}`);
    }
  }

  // "Mensagem" goes to the patient; "Nota interna" stays with the staff (no file, no typing hint).
  get noteMode() {
    return this.modes.some((input) => input.checked && input.value === "note");
  }

  showMode() {
    const note = this.noteMode;
    this.form.classList.toggle("note-mode", note);
    this.text.placeholder = note
      ? "Nota interna — só a equipe vê; @nome avisa um colega"
      : this.hasNumber
        ? this.messagePlaceholder
        : "Sem número de WhatsApp conectado: nada chega ao paciente (use Nota interna)";
    this.form.querySelector(".attach").hidden = note;
    const questionEditor = this.form.querySelector("[data-question-editor]");
    if (questionEditor) questionEditor.hidden = note; // a note asks the patient nothing
    if (note) this.attach(null);
    this.form.querySelector('button[type="submit"]').textContent = note ? "Salvar nota" : "Enviar";
  }

  bind() {
    for (const input of this.modes) input.addEventListener("change", () => this.showMode());
    this.form.querySelector("[data-open-templates]")?.addEventListener("click", () => this.openTemplates());
    this.form.querySelector("[data-close-templates]")?.addEventListener("click", () => {
      this.panel.hidden = true;
    });
    this.form.querySelector("[data-send-template]")?.addEventListener("click", () => this.sendTemplate());
    this.form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.send();
    });
    this.text.addEventListener("keydown", (event) => {
      if (this.pickerOpen) {
        const moves = { ArrowDown: 1, ArrowUp: -1 };
        if (event.key in moves) {
          event.preventDefault();
          this.movePick(moves[event.key]);
          return;
        }
        if ((event.key === "Enter" || event.key === "Tab") && !event.isComposing) {
          event.preventDefault();
          this.pickSelected();
          return;
        }
        if (event.key === "Escape") {
          event.preventDefault();
          event.stopPropagation(); // closes the picker, not the conversation
          this.closePicker();
          return;
        }
      }
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        this.send();
      }
    });
    this.text.addEventListener("input", () => {
      if (this.text.value) localStorage.setItem(this.draftKey, this.text.value);
      else localStorage.removeItem(this.draftKey);
      if (!this.noteMode) this.typing(this.text.value.trim().length > 0);
      this.quickPicker();
    });
    this.text.addEventListener("blur", () => {
      this.typing(false);
      this.closePicker();
    });
    this.fileInput.addEventListener("change", () => this.attach(this.fileInput.files[0]));
    this.form.querySelector("[data-remove-file]").addEventListener("click", () => this.attach(null));
    this.replying?.querySelector("[data-cancel-reply]").addEventListener("click", () => this.quote(null));
    this.form.querySelector("[data-record]")?.addEventListener("click", () => this.record());
    this.text.addEventListener("paste", (event) => {
      const file = [...(event.clipboardData?.files || [])][0];
      if (file) {
        event.preventDefault();
        this.attach(file);
      }
    });
    for (const kind of ["dragenter", "dragover"]) {
      this.form.addEventListener(kind, (event) => {
        if (![...event.dataTransfer.types].includes("Files")) return;
        event.preventDefault();
        this.form.classList.add("dragging");
      });
    }
    this.form.addEventListener("dragleave", () => this.form.classList.remove("dragging"));
    this.form.addEventListener("drop", (event) => {
      this.form.classList.remove("dragging");
      const file = event.dataTransfer.files[0];
      if (!file) return; // dropped text goes into the box as usual
      event.preventDefault();
      this.attach(file);
    });
  }

  // A question with options (conversations/questions.py): up to 3 lines are reply buttons, 4 to 10 a list.
  question() {
    const editor = this.form.querySelector("[data-question-options]");
    const lines = (editor?.value || "").split("\n").map((line) => line.trim()).filter(Boolean);
    if (!lines.length) return null;
    if (this.file) return { error: "Uma pergunta com opções não leva arquivo." };
    if (lines.length > 10) return { error: "O WhatsApp aceita até 10 opções numa lista." };
    const limit = lines.length <= 3 ? 20 : 24;
    const long = lines.find((line) => line.length > limit);
    if (long) return { error: `“${long}” passa de ${limit} caracteres, o que o WhatsApp aceita numa opção.` };
    if (lines.length <= 3) return { buttons: lines };
    const button = this.form.querySelector("[data-list-button]")?.value.trim() || "Ver opções";
    return { list: { button, options: lines.map((title) => ({ title })) } };
  }

  clearQuestion() {
    const editor = this.form.querySelector("[data-question-editor]");
    if (!editor) return;
    editor.querySelector("[data-question-options]").value = "";
    editor.open = false;
  }

  // --- Voice notes: recorded here as OGG/Opus (voice.js), attached like a file, sent as WhatsApp's voice note --

  // The conversation is left (or the page): a recording under way stops, and the microphone with it.
  dispose() {
    clearInterval(this.recordTimer);
    clearInterval(this.windowTimer);
    this.recorder?.stop({ keep: false }).catch(() => {});
    this.recorder = null;
  }

  async record() {
    const button = this.form.querySelector("[data-record]");
    if (this.recordStarting) return; // the microphone's permission is still being asked
    if (this.recorder) {
      clearInterval(this.recordTimer);
      const seconds = this.recorder.seconds;
      button.setAttribute("aria-pressed", "false");
      button.textContent = "Gravar";
      try {
        const file = await this.recorder.stop();
        this.recorder = null;
        this.attach(file);
        this.voice = { seconds };
        this.chip.querySelector(".attachment-name").textContent = `🎤 Mensagem de voz · ${clock(seconds)}`;
        if (file.size > PLAYABLE_VOICE_BYTES) {
          this.showError("Mensagem de voz longa: acima de 512 KB o WhatsApp mostra um botão de download em vez de tocá-la.");
        }
      } catch (error) {
        this.recorder = null;
        this.showError(`A gravação não pôde ser usada: ${error.message}.`);
      }
      return;
    }
    const recorder = new VoiceRecorder();
    if (!recorder.supported) {
      this.showError("Este navegador não grava áudio no formato que o WhatsApp toca como mensagem de voz (Opus). Use o Chrome, o Edge ou o Firefox atualizados, ou anexe um arquivo de áudio.");
      return;
    }
    this.recordStarting = true;
    try {
      await recorder.start();
    } catch (error) {
      this.showError(`Sem acesso ao microfone: ${error.message}. Permita o microfone para este site e tente de novo.`);
      return;
    } finally {
      this.recordStarting = false;
    }
    if (!this.form.isConnected) {
      recorder.stop({ keep: false }); // the conversation was left while the microphone was being asked for
      return;
    }
    this.showError("");
    this.recorder = recorder;
    button.setAttribute("aria-pressed", "true");
    const tick = () => {
      button.textContent = `Parar ${clock(recorder.seconds)}`;
    };
    tick();
    this.recordTimer = setInterval(tick, 500);
  }

  // Reply in context: the message quoted above the reply (WhatsApp's context); null stops quoting.
  quote(message) {
    this.replyTo = message ? message.id : null;
    if (!this.replying) return;
    this.replying.hidden = !message;
    this.replying.querySelector(".replying-quote").textContent = message ? `${message.sender}: ${message.text}` : "";
    if (message) this.text.focus();
  }

  // The assistant's suggestion, to read over and send as a message.
  useText(text) {
    const message = this.modes.find((input) => input.value === "message");
    if (message) message.checked = true;
    this.showMode();
    this.text.value = text;
    localStorage.setItem(this.draftKey, text);
    this.text.focus();
  }

  showError(text) {
    this.error.hidden = !text;
    this.error.textContent = text || "";
  }

  attach(file) {
    this.showError("");
    if (file) {
      const problem = checkFile(file, this.limits);
      if (problem) {
        this.showError(problem);
        this.fileInput.value = "";
        return;
      }
    }
    this.file = file || null;
    this.voice = null;
    this.chip.hidden = !file;
    this.chip.querySelector(".attachment-name").textContent = file ? `📎 ${file.name}` : "";
    if (!file) this.fileInput.value = "";
  }

  typing(isTyping) {
    clearTimeout(this.typingTimer);
    const now = Date.now();
    if (isTyping) {
      if (now - this.lastTyping > TYPING_EVERY_MS) {
        this.lastTyping = now;
        this.stream.send({ type: "conversation:typing", conversation_id: this.conversationId, is_typing: true });
      }
      this.typingTimer = setTimeout(() => this.typing(false), TYPING_IDLE_MS);
    } else if (this.lastTyping) {
      this.lastTyping = 0;
      this.stream.send({ type: "conversation:typing", conversation_id: this.conversationId, is_typing: false });
    }
  }

  async send() {
    if (this.noteMode) return this.writeNote();
    const content = this.text.value.trim();
    if (!content && !this.file) return;
    const unfilled = this.unfilled();
    if (unfilled.length) {
      this.showError(`A mensagem tem variáveis sem valor: ${unfilled.join(", ")}. Preencha antes de enviar; nada foi enviado.`);
      return;
    }
    if (!this.hasNumber) {
      // Nothing could carry it: the server refuses it too, and nothing is stored.
      this.showError("Nenhum número de WhatsApp conectado: a mensagem não pode ser enviada. Nada foi enviado.");
      return;
    }
    if (!this.windowOpen) {
      // Refused here, before anything leaves: WhatsApp would refuse it after the window.
      this.showError(
        this.windowEndsAt === null
          ? "O paciente ainda não escreveu: o WhatsApp só aceita um modelo aprovado para iniciar a conversa. Nada foi enviado."
          : `A janela de ${this.windowHours} horas do WhatsApp fechou: o WhatsApp recusaria texto livre. Envie um modelo aprovado. Nada foi enviado.`,
      );
      this.openTemplates();
      return;
    }
    this.showError("");
    if (this.voice && content) {
      this.showError("Uma mensagem de voz vai sem texto no WhatsApp: envie o texto numa mensagem separada. Nada foi enviado.");
      return;
    }
    const question = this.question();
    if (question?.error) {
      this.showError(`${question.error} Nada foi enviado.`);
      return;
    }
    const reply = {
      clientId: newClientId(), conversationId: this.conversationId, content, file: this.file, replyTo: this.replyTo,
      question: question || null,
      voice: Boolean(this.file && this.voice),
    };
    this.quote(null);
    this.clearQuestion();
    this.text.value = "";
    localStorage.removeItem(this.draftKey);
    this.attach(null);
    this.typing(false);
    this.timeline.showPending(reply);
    try {
      await this.timeline.outbox.add(reply); // kept on this device first, then sent (outbox.js)
    } catch (unavailable) {
      // No IndexedDB (a private window may refuse it): nothing was kept, so the reply goes back to the box.
      this.timeline.keptNode(reply.clientId)?.remove();
      this.restore(reply, "Este navegador não guarda respostas (armazenamento bloqueado); nada foi enviado.");
      return;
    }
    this.text.focus();
  }

  // A reply the server refused, back in the box with its file and the server's reason, to fix or discard.
  async takeBack(clientId) {
    const entry = await this.timeline.outbox.take(clientId);
    this.timeline.keptNode(clientId)?.remove();
    if (!entry || !this.form.isConnected) return;
    const file = entry.file ? new File([entry.file], entry.fileName || "arquivo", { type: entry.file.type }) : null;
    const replyTo = /reply_to/.test(entry.reason) ? null : entry.replyTo; // kept, unless the quote was the problem
    this.restore({ content: entry.content, file, replyTo, question: entry.question, voice: entry.voice }, `Resposta não enviada: ${entry.reason}. Ela voltou para a caixa de texto.`);
  }

  restore(reply, reason) {
    const typed = this.text.value.trim();
    this.text.value = typed ? `${reply.content}\n${typed}` : reply.content;
    if (this.text.value) localStorage.setItem(this.draftKey, this.text.value);
    if (reply.file) this.attach(reply.file);
    if (reply.file && reply.voice) this.voice = { seconds: 0 }; // still a voice note when sent again
    if (reply.replyTo) this.quote({ id: reply.replyTo, sender: "", text: "a mensagem citada" });
    const options = reply.question?.buttons || reply.question?.list?.options.map((option) => option.title);
    const editor = this.form.querySelector("[data-question-editor]");
    if (options && editor) {
      editor.querySelector("[data-question-options]").value = options.join("\n");
      editor.open = true;
    }
    this.showError(reason);
    announce(reason);
  }

  async writeNote() {
    const content = this.text.value.trim();
    if (!content) return;
    this.showError("");
    try {
      const note = await api("POST", `/api/conversations/${this.conversationId}/notes/`, { content });
      this.text.value = "";
      localStorage.removeItem(this.draftKey);
      await this.timeline.refreshNote(note.id);
    } catch (error) {
      this.showError(`Nota não salva: ${failure(error)}`); // the text stays in the box, to try again
    }
    this.text.focus();
  }
}
