// Keyboard shortcuts of the workspace, and the "?" help that lists them.

export function isTyping(event) {
  const target = event.target;
  return target instanceof HTMLElement && (target.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(target.tagName));
}

export function bindShortcuts(actions) {
  const help = document.getElementById("shortcuts-help");
  document.querySelector("[data-shortcuts]")?.addEventListener("click", () => help?.showModal());
  document.addEventListener("keydown", (event) => {
    if (event.altKey && !event.ctrlKey && !event.metaKey) {
      // event.code, not event.key: on a Mac, Option+J types "∆".
      const action = { KeyJ: actions.next, KeyK: actions.previous, KeyE: actions.resolve }[event.code];
      if (action) {
        event.preventDefault();
        action();
      }
      return;
    }
    if (event.key === "Escape" && !help?.open) {
      if (!isTyping(event) || event.target.id === "composer-text") actions.close?.();
      return;
    }
    if (isTyping(event) || event.ctrlKey || event.metaKey) return;
    if (event.key === "/") {
      event.preventDefault();
      actions.search?.();
    } else if (event.key === "?") {
      event.preventDefault();
      help?.showModal();
    }
  });
}
