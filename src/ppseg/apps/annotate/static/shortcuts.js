// The keyboard: ONE table of shortcuts that both the key handler and the help overlay read, so
// the help can never list a key that does not work (or miss one that does).
//
// A key spec is "Mod+Mod+Key": Key is KeyboardEvent.key (letters upper-case, " " is "Space"),
// mods are Ctrl (Ctrl or Cmd), Shift, Alt. Punctuation keys ("?", "[") ignore Shift, since
// typing them may need it. Entries with `mouse: true` are mouse gestures, listed in the help only.

export const DISPLAY = {
  ArrowLeft: "←",
  ArrowRight: "→",
  ArrowUp: "↑",
  ArrowDown: "↓",
  Escape: "Esc",
  Delete: "Del",
  Backspace: "⌫",
  PageUp: "PgUp",
  PageDown: "PgDn",
};

function parseSpec(spec) {
  const parts = spec.split("+");
  let key = parts.pop();
  if (key === "") key = "+"; // "Ctrl++"
  const mods = new Set(parts);
  return { key, ctrl: mods.has("Ctrl"), shift: mods.has("Shift"), alt: mods.has("Alt") };
}

function eventKey(e) {
  if (e.key === " ") return "Space";
  if (e.key.length === 1) return e.key.toUpperCase();
  return e.key;
}

function matches(spec, e) {
  const s = parseSpec(spec);
  if (s.key !== eventKey(e)) return false;
  if (s.ctrl !== (e.ctrlKey || e.metaKey)) return false;
  if (s.alt !== e.altKey) return false;
  const punctuation = s.key.length === 1 && !/[A-Z0-9]/.test(s.key);
  if (!punctuation && s.shift !== e.shiftKey) return false;
  return true;
}

export function displaySpec(spec) {
  const s = parseSpec(spec);
  const mods = [s.ctrl && "Ctrl", s.shift && "Shift", s.alt && "Alt"].filter(Boolean);
  return [...mods, DISPLAY[s.key] || s.key].join("+");
}

/** Focus is somewhere the keys mean text (an input, a dropdown): shortcuts stay out. */
function isEditing(target, e) {
  if (!target || !target.tagName) return false;
  const tag = target.tagName;
  if (tag === "TEXTAREA" || tag === "SELECT" || target.isContentEditable) return true;
  if (tag === "INPUT") {
    const type = (target.type || "text").toLowerCase();
    if (type === "range") return e.key.startsWith("Arrow") || e.key === "Home" || e.key === "End" || e.key.startsWith("Page");
    if (type === "checkbox" || type === "color" || type === "button" || type === "file") return false;
    return true;
  }
  return false;
}

/**
 * The shortcut table. `a` holds the actions (functions taking the event); every entry:
 * {group, keys: [spec...], label, run?, mouse?}.
 */
export function shortcutTable(a) {
  const digits = ["1", "2", "3", "4", "5", "6", "7", "8", "9"];
  return [
    { group: "Images", keys: ["D", "PageDown", "ArrowRight"], label: "Next image", run: a.next },
    { group: "Images", keys: ["A", "PageUp", "ArrowLeft"], label: "Previous image", run: a.prev },
    { group: "Images", keys: ["F"], label: "Mark image done (toggle)", run: a.toggleDone },
    { group: "Images", keys: ["N"], label: "Mark image empty: nothing to label (toggle)", run: a.toggleEmpty },
    { group: "Clicks", keys: ["Left click"], label: "Positive click (object here)", mouse: true },
    { group: "Clicks", keys: ["Right click"], label: "Negative click (not the object)", mouse: true },
    { group: "Clicks", keys: ["Space", "Enter"], label: "Finish the object under the selected label (in polygon edit: apply)", run: a.finish },
    { group: "Clicks", keys: ["Escape"], label: "Cancel the current clicks / leave polygon edit / close help", run: a.escape },
    { group: "Clicks", keys: ["Ctrl+Z"], label: "Undo", run: a.undo },
    { group: "Clicks", keys: ["Ctrl+Y", "Ctrl+Shift+Z"], label: "Redo", run: a.redo },
    { group: "Labels", keys: digits, label: "Select label 1 … 9 (n-th in the list)", run: a.selectLabel },
    { group: "Objects", keys: ["Shift+click"], label: "Select the object under the cursor (empty spot: none)", mouse: true },
    { group: "Objects", keys: ["Tab"], label: "Select the next object", run: a.nextObject },
    { group: "Objects", keys: ["Shift+Tab"], label: "Select the previous object", run: a.prevObject },
    { group: "Objects", keys: ["Delete", "Backspace"], label: "Delete the selected object (in polygon edit: the vertex under the cursor)", run: a.deleteKey },
    { group: "Objects", keys: ["E"], label: "Edit the selected object's polygon", run: a.polygon },
    { group: "Objects", keys: ["R"], label: "Correct the selected object with clicks (refine its mask; Space applies, Esc cancels)", run: a.refine },
    { group: "Objects", keys: ["Double click", "Alt+click"], label: "Polygon edit: add a vertex on an edge", mouse: true },
    { group: "Objects", keys: ["Drag vertex"], label: "Polygon edit: move a vertex", mouse: true },
    { group: "Objects", keys: ["Right click vertex"], label: "Polygon edit: delete a vertex", mouse: true },
    { group: "Tools", keys: ["V"], label: "Click tool (positive/negative clicks)", run: a.clickTool },
    { group: "Tools", keys: ["B"], label: "Brush: paint onto the selected object", run: a.brush },
    { group: "Tools", keys: ["X"], label: "Eraser: erase from the selected object", run: a.eraser },
    { group: "Tools", keys: ["["], label: "Smaller brush", run: a.smallerBrush },
    { group: "Tools", keys: ["]"], label: "Larger brush", run: a.largerBrush },
    { group: "Tools", keys: ["H"], label: "Pan tool (left-drag pans)", run: a.panTool },
    { group: "Tools", keys: ["M"], label: "Show / hide masks", run: a.toggleMasks },
    { group: "View", keys: ["0", "Home"], label: "Fit the image to the window", run: a.fit },
    { group: "View", keys: ["=", "+"], label: "Zoom in", run: a.zoomIn },
    { group: "View", keys: ["-"], label: "Zoom out", run: a.zoomOut },
    { group: "View", keys: ["Wheel"], label: "Zoom around the cursor", mouse: true },
    { group: "View", keys: ["Middle drag", "Ctrl+drag"], label: "Pan", mouse: true },
    { group: "Help", keys: ["?"], label: "Show / hide this help", run: a.help },
  ];
}

/** Install the key handler for `table`; returns the handler (for tests). */
export function installShortcuts(table, { isHelpOpen } = {}) {
  const handler = (e) => {
    if (e.defaultPrevented) return;
    if (isEditing(e.target, e)) {
      if (e.key === "Escape" && e.target.blur) e.target.blur();
      return;
    }
    for (const entry of table) {
      if (entry.mouse || !entry.run) continue;
      const spec = entry.keys.find((k) => matches(k, e));
      if (!spec) continue;
      if (isHelpOpen && isHelpOpen() && !["?", "Escape"].includes(spec)) return;
      e.preventDefault();
      e.stopPropagation();
      entry.run(e, parseSpec(spec).key);
      return;
    }
  };
  window.addEventListener("keydown", handler, true);
  return handler;
}
