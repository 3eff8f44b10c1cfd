// The page: state, the request queue, and the wiring of panels, tools and keys.
//
// Every operation on the current image goes through one ordered queue (clicks, finish, undo,
// object edits), so the server sees them in the order the user made them; nothing blocks the
// UI. Each response's `state` replaces the page's copy of the image state.

import { get, put, post, patch, del, showMessage, hideMessage } from "./api.js";
import { Viewer } from "./viewer.js";
import { ImageList } from "./imagelist.js";
import { ObjectsPanel } from "./objects.js";
import { LabelsPanel } from "./labels.js";
import { PolygonEditor } from "./polygon.js";
import { BrushTool } from "./brush.js";
import { VideoBar } from "./video.js";
import { shortcutTable, installShortcuts } from "./shortcuts.js";
import { buildHelp } from "./help.js";
import { contains, isEmpty, area } from "./masks.js";
import { h, defaultColor } from "./dom.js";

const $ = (id) => document.querySelector(`[data-testid="${id}"]`);

// Click latency, measured from the pointerdown event to the frame that shows the mask:
// clickLatencies (ms), the server's own times (serverMs, inferMs) and, per click, where the time
// went (breakdown: pointerdown -> request sent -> answer parsed -> mask drawn -> frame).
const stats = { clickLatencies: [], inferMs: [], serverMs: [], breakdown: [] };
const nextFrame = () => new Promise((resolve) => requestAnimationFrame(resolve));

// ------------------------------------------------------------------ state
const app = {
  project: null,
  images: [],
  labels: [],
  index: -1,
  info: null, // /api/images/{i} without state
  image: null, // the image state (objects, current, can_undo, ...)
  selected: null, // selected object id
  currentLabel: null,
  mode: "click", // click | polygon | brush | erase
  pendingClicks: [], // clicks sent, not answered yet (drawn faded)
  hiddenObject: null, // object hidden while its polygon is edited
  busy: 0,
  loadSeq: 0,

  colorOf(labelId) {
    const l = this.labels.find((x) => x.id === labelId);
    return l ? l.color : defaultColor(labelId || 0);
  },
  colorOfObject(id) {
    const o = this.image && this.image.objects.find((x) => x.id === id);
    return o ? this.colorOf(o.label) : this.colorOf(this.currentLabel);
  },
  labelById(id) {
    return this.labels.find((l) => l.id === id);
  },
  selectedObject() {
    return (this.image && this.image.objects.find((o) => o.id === this.selected)) || null;
  },
  /** The finished object the current clicks correct (refine), or null. */
  editingId() {
    const cur = this.image && this.image.current;
    return cur && cur.editing !== undefined && cur.editing !== null ? cur.editing : null;
  },
  say(text) {
    showMessage(text, "info");
  },
};

// ------------------------------------------------------------------ the ordered queue
let chain = Promise.resolve();
function enqueue(fn) {
  app.busy++;
  updateBusy();
  const p = chain.then(fn).catch((e) => {
    if (!e || e.status === undefined) {
      console.error(e);
      showMessage(String((e && e.message) || e));
    }
  });
  chain = p.finally(() => {
    app.busy--;
    updateBusy();
  });
  return p;
}
const saveStatusEl = $("save-status");
function updateBusy() {
  // on the one element that shows it: a class on <body> would restyle the whole page per click
  saveStatusEl.classList.toggle("busy", app.busy > 0);
}
/** Resolves when every queued operation is done (tests use it). */
function idle() {
  return new Promise((resolve) => {
    const check = () => (app.busy === 0 ? resolve() : setTimeout(check, 10));
    check();
  });
}

// ------------------------------------------------------------------ widgets
const viewer = new Viewer($("canvas-wrap"), {
  getState: () => ({
    image: app.image,
    selected: app.selected,
    currentLabel: app.currentLabel,
    pendingClicks: app.pendingClicks,
    hiddenObject: app.hiddenObject,
    editing: app.editingId(), // drawn as the current mask, not from the objects layer
    colorOf: (id) => app.colorOf(id),
    colorOfObject: (id) => app.colorOfObject(id),
  }),
  getOverlayDrawers: () => {
    const out = [];
    if (app.mode === "polygon") out.push((ctx, v) => polygon.draw(ctx, v));
    if (app.mode === "brush" || app.mode === "erase") out.push((ctx, v) => brush.draw(ctx, v));
    return out;
  },
  onPointer: (type, e, p) => onPointer(type, e, p),
  onView: () => updateStatusBar(),
});
const imageList = new ImageList($("image-list"), $("done-count"), (i) => goTo(i));
const objectsPanel = new ObjectsPanel($("object-list"), app);
const labelsPanel = new LabelsPanel($("label-list"), app);
const polygon = new PolygonEditor(app);
const brush = new BrushTool(app);
const videoBar = new VideoBar($("video-bar"), app);

// ------------------------------------------------------------------ applying server answers
function applyState(state, { index = app.index } = {}) {
  if (index !== app.index || !state) return false;
  app.image = state;
  if (app.selected !== null && !state.objects.some((o) => o.id === app.selected)) app.selected = null;
  if (polygon.active && !state.objects.some((o) => o.id === polygon.objectId)) leavePolygon();
  imageList.update(index, { status: state.status, objects: state.objects.length, error: null });
  showSaved(state);
  refreshPanels();
  viewer.render();
  return true;
}

function showSaved(state) {
  const el = $("save-status");
  const banner = $("save-banner");
  if (state.saved === false) {
    el.textContent = "not saved";
    el.className = "save-status error";
    banner.textContent = `Not saved: ${state.save_error || "the server could not write the annotation"}`;
    banner.hidden = false;
  } else {
    el.textContent = "saved";
    el.className = "save-status ok";
    banner.hidden = true;
  }
}

const setText = (el, text) => {
  if (el.textContent !== text) el.textContent = text;
};
const buttons = { undo: $("undo"), redo: $("redo"), finish: $("finish"), cancel: $("cancel") };

/** The buttons that follow the current object and the history (all a click can change). */
function refreshButtons() {
  const st = app.image;
  const cur = st && st.current;
  buttons.undo.disabled = !(st && st.can_undo);
  buttons.redo.disabled = !(st && st.can_redo);
  buttons.finish.disabled = !(cur && !isEmpty(cur.mask));
  buttons.cancel.disabled = !cur;
  const editing = app.editingId();
  setText(buttons.finish, editing !== null ? "Apply" : "Finish");
  const finishTitle = editing !== null ? `Apply the correction to object #${editing} (Space, Enter)` : "Finish the object (Space, Enter)";
  if (buttons.finish.title !== finishTitle) buttons.finish.title = finishTitle;
  const cancelTitle = editing !== null ? `Cancel the correction: object #${editing} stays as it was (Esc)` : "Cancel the clicks (Esc)";
  if (buttons.cancel.title !== cancelTitle) buttons.cancel.title = cancelTitle;
}

function refreshPanels() {
  const st = app.image;
  objectsPanel.render();
  $("object-count").textContent = st ? `(${st.objects.length})` : "";
  refreshButtons();
  const status = (st && st.status) || "";
  $("mark-done").classList.toggle("on", status === "done");
  $("mark-empty").classList.toggle("on", status === "empty");
  for (const b of document.querySelectorAll("[data-tool]")) b.classList.toggle("on", b.dataset.tool === app.mode);
  $("tool-pan").classList.toggle("on", viewer.panTool);
  updateStatusBar();
  updateModeHint();
}

const statusEls = { image: $("status-image"), zoom: $("status-zoom"), clicks: $("status-clicks"), cursor: $("status-cursor"), editing: $("status-editing") };
function updateStatusBar() {
  const info = app.info;
  setText(statusEls.image, info ? `${info.key}  ${info.width}×${info.height}${info.kind && info.kind !== "rgb" ? "  " + info.kind : ""}` : "");
  setText(statusEls.zoom, info ? `${Math.round(viewer.scale * 100)}%` : "");
  const cur = app.image && app.image.current;
  const n = (cur && cur.clicks ? cur.clicks.length : 0) + app.pendingClicks.length;
  setText(statusEls.clicks, n ? `${n} click${n > 1 ? "s" : ""}, ${cur && cur.mask ? area(cur.mask) : 0} px` : "");
  setText(statusEls.cursor, viewer.mouse && info ? `x ${Math.floor(viewer.mouse.x)}  y ${Math.floor(viewer.mouse.y)}` : "");
  const editing = app.editingId();
  const editText = editing !== null ? `correcting object #${editing}: click to fix, Space to apply, Esc to cancel` : "";
  if (statusEls.editing.textContent !== editText) statusEls.editing.textContent = statusEls.editing.title = editText;
}

function updateModeHint() {
  const el = $("mode-hint");
  let text = "";
  if (app.mode === "polygon") text = "Polygon edit: drag vertices · double-click an edge to add · right-click a vertex to delete · Enter apply · Esc leave";
  else if (app.mode === "brush" || app.mode === "erase")
    text = `${app.mode === "brush" ? "Brush" : "Eraser"} r=${brush.radius}px on ${app.selected !== null ? "#" + app.selected : "(select an object)"} · [ ] size · V back to clicks`;
  el.textContent = text;
  el.hidden = !text;
}

// ------------------------------------------------------------------ loading
async function loadProject() {
  const [project, imgs, labels] = await Promise.all([get("/api/project"), get("/api/images"), get("/api/labels")]);
  app.project = project;
  app.images = imgs.images;
  setLabels(labels.labels);
  imageList.setImages(app.images);
  $("readonly").hidden = !project.readonly;
  // model selector
  const ms = $("model-select");
  ms.replaceChildren(
    ...(project.models || []).map((m) => h("option", { value: m.name, title: m.summary || "", selected: m.name === project.model }, m.name))
  );
  ms.disabled = (project.models || []).length < 2;
  ms.title = ((project.models || []).find((m) => m.name === project.model) || {}).summary || "Click model";
  const s = project.settings || {};
  $("keep-largest").checked = !!s.keep_largest;
  if (typeof s.threshold === "number") {
    $("threshold").value = String(s.threshold);
    $("threshold-value").textContent = s.threshold.toFixed(2);
  }
  $("export-format").replaceChildren(...(project.formats || []).map((f) => h("option", { value: f }, f)));
  videoBar.show(project.kind === "video");
  const start = Math.min(Math.max(0, project.current || 0), app.images.length - 1);
  if (app.images.length) await goTo(start, { remember: false });
  else viewer.showError("no images in the project");
}

async function refreshImages() {
  const imgs = await get("/api/images");
  app.images = imgs.images;
  imageList.setImages(app.images);
  imageList.setCurrent(app.index);
}

async function goTo(i, { remember = true } = {}) {
  if (i < 0 || i >= app.images.length) return;
  if (polygon.active) leavePolygon();
  brush.stroke = null;
  const seq = ++app.loadSeq;
  app.index = i;
  app.pendingClicks = [];
  app.selected = null;
  imageList.setCurrent(i);
  videoBar.update();
  const img = app.images[i];
  $("image-name").textContent = `${i + 1} / ${app.images.length}  ${img.key}`;
  $("image-name").title = img.key;
  $("status-infer").textContent = "";
  // nothing of the last image stays clickable while this one opens (a click would go to the
  // wrong image); its extent is drawn when /api/images knows it, and a large image that takes a
  // while to decode says so
  app.info = null;
  app.image = null;
  viewer.clear({ w: img.width, h: img.height });
  refreshPanels();
  showOpening(img, seq);
  if (remember) put("/api/project/current", { index: i }).catch(() => {});
  let info;
  try {
    info = await get(`/api/images/${i}`, { quiet: true });
  } catch (e) {
    if (seq !== app.loadSeq) return;
    hideOpening();
    showMessage(e.message);
    app.lastLoadError = true;
    app.info = null;
    app.image = null;
    imageList.update(i, { error: e.message });
    viewer.showError(`cannot open ${img.key}: ${e.message}`);
    refreshPanels();
    return;
  }
  if (seq !== app.loadSeq) return; // the user went on: the latest navigation wins
  hideOpening();
  if (app.lastLoadError) hideMessage(); // the last image's "cannot open" is not about this one
  app.lastLoadError = false;
  const { state, ...rest } = info;
  app.info = rest;
  app.image = null;
  if (!img.width) imageList.update(i, { width: rest.width, height: rest.height });
  viewer.setImage(rest);
  applyState(state, { index: i });
  setupWindowPanel(rest);
}

// "Opening NAME (W × H)…" over the canvas while /api/images/{i} is answered (a large image
// decodes for seconds); shown after a short delay, so quick images do not flicker
const opening = $("opening");
let openingTimer = null;
function showOpening(img, seq) {
  clearTimeout(openingTimer);
  opening.hidden = true;
  const size = img.width && img.height ? ` (${img.width.toLocaleString("en")} × ${img.height.toLocaleString("en")})` : "";
  openingTimer = setTimeout(() => {
    if (seq !== app.loadSeq || app.info) return;
    opening.querySelector(".text").textContent = `Opening ${img.key}${size}…`;
    opening.hidden = false;
  }, 150);
}
function hideOpening() {
  clearTimeout(openingTimer);
  opening.hidden = true;
}

async function reloadImage() {
  const i = app.index;
  const seq = app.loadSeq;
  if (!app.info) return; // still opening: the open brings the fresh state
  try {
    const info = await get(`/api/images/${i}`);
    if (seq === app.loadSeq) applyState(info.state, { index: i });
  } catch (_) {
    /* shown */
  }
}

function setLabels(labels) {
  app.labels = labels;
  if (!labels.some((l) => l.id === app.currentLabel)) app.currentLabel = labels.length ? labels[0].id : null;
  labelsPanel.render();
  objectsPanel.render();
  viewer.render();
}

// ------------------------------------------------------------------ image operations
const I = (path = "") => `/api/images/${app.index}${path}`;

/** Queue an operation returning {state}; applied if the image is still the current one. */
function stateOp(makeRequest) {
  const index = app.index;
  return enqueue(async () => {
    if (index !== app.index) return;
    const r = await makeRequest(`/api/images/${index}`);
    applyState(r.state, { index });
    return r;
  });
}

function clickAt(p, positive, t0) {
  if (!app.info || !app.image) return;
  if (p.x < 0 || p.y < 0 || p.x >= app.info.width || p.y >= app.info.height) return;
  const index = app.index;
  const click = { x: round2(p.x), y: round2(p.y), positive, pending: true };
  const body = { x: click.x, y: click.y, positive, view: viewer.visibleRect() };
  app.pendingClicks.push(click);
  // the request goes out first (a microtask after this handler when nothing is queued); the
  // faded dot is drawn on the next frame, on the top canvas only
  enqueue(async () => {
    if (index !== app.index) return;
    const tSent = performance.now();
    let r;
    try {
      r = await post(`/api/images/${index}/click`, body, { quiet: true });
    } catch (e) {
      dropPending(click);
      if (index === app.index) clickRefused(e);
      return;
    }
    const tParsed = performance.now();
    dropPending(click);
    if (index !== app.index || !app.image) return;
    app.image = { ...app.image, current: r.current, can_undo: r.can_undo, can_redo: r.can_redo };
    viewer.renderTop(); // the mask is decoded and drawn now, nothing else is repainted
    const tDrawn = performance.now();
    refreshButtons();
    updateStatusBar();
    if (typeof r.infer_ms === "number") {
      stats.inferMs.push(r.infer_ms);
      setText(statusInfer, `model ${Math.round(r.infer_ms)} ms`);
    }
    if (typeof r.server_ms === "number") stats.serverMs.push(r.server_ms);
    // the latency ends at the start of the frame that puts the drawn mask on screen
    await nextFrame();
    const tFrame = performance.now();
    stats.clickLatencies.push(tFrame - t0);
    const b = {
      total: tFrame - t0,
      toSend: tSent - t0,
      fetch: tParsed - tSent,
      server: r.server_ms,
      infer: r.infer_ms,
      draw: tDrawn - tParsed,
      frame: tFrame - tDrawn,
    };
    // the fetch itself, from the browser's resource timing: queued in the network stack, waiting
    // for the first byte (the server, HTTP included), the body, and parsing the JSON
    const rt = performance.getEntriesByName(new URL(`/api/images/${index}/click`, location.href).href).pop();
    if (rt && rt.responseEnd > 0) {
      Object.assign(b, { netQueue: rt.requestStart - tSent, ttfb: rt.responseStart - rt.requestStart,
                         body: rt.responseEnd - rt.responseStart, parse: tParsed - rt.responseEnd });
    }
    performance.clearResourceTimings(); // tiles fill the buffer; nothing else reads it
    stats.breakdown.push(b);
  }).catch(() => {});
  viewer.requestTop();
  updateStatusBar();
}
const statusInfer = $("status-infer");

function dropPending(click) {
  const k = app.pendingClicks.indexOf(click);
  if (k >= 0) app.pendingClicks.splice(k, 1);
  viewer.requestTop();
  updateStatusBar();
}

/** A click the server refused: 409 outside the crop of a large image gets a friendly word. */
function clickRefused(e) {
  if (e.status === 409 && /outside the window/.test(e.message)) {
    viewer.flashWindow();
    showMessage(
      "That click is outside the box the click model works in on this large image. " +
        "Press Space to finish this object (or Esc to cancel it), then click again.",
      "warn"
    );
    messageEl.title = e.message; // the server's own words, on hover
    return;
  }
  showMessage(e.message);
}
const messageEl = $("message");

function finish() {
  const cur = app.image && app.image.current;
  if (!cur && !app.pendingClicks.length) return;
  messageEl.title = "";
  const editing = app.editingId();
  if (editing !== null) {
    // a correction: the server replaces the object's mask and keeps its label (it ignores this one)
    const obj = app.image.objects.find((o) => o.id === editing);
    const label = obj ? obj.label : app.currentLabel;
    stateOp((base) => post(`${base}/finish`, { label }));
    return;
  }
  if (app.currentLabel === null) return showMessage("add a label first (Labels panel, +)");
  const label = app.currentLabel;
  stateOp((base) => post(`${base}/finish`, { label }));
}

/** Correct a finished object with clicks: a click session from its mask (Space applies, Esc cancels). */
function startRefine(id = app.selected) {
  if (!app.info || !app.image) return;
  if (id === null) {
    const objs = app.image.objects;
    if (objs.length === 1) id = objs[0].id;
    else return showMessage("select an object to correct it with clicks (objects panel, Tab, or Shift+click)", "info");
  }
  const editing = app.editingId();
  if (editing === id) return;
  if (editing !== null) return showMessage(`object #${editing} is being corrected: Space to apply, Esc to cancel`, "warn");
  if (app.image.current || app.pendingClicks.length)
    return showMessage("an object is being clicked: finish it (Space) or cancel it (Esc) first", "warn");
  if (app.mode !== "click") setMode("click");
  app.selected = id;
  messageEl.title = "";
  stateOp((base) => post(`${base}/objects/${id}/refine`));
}
app.startRefine = startRefine;

/** Another tool on an object while one is being corrected would fight over its mask: say so. */
function refusedWhileCorrecting() {
  const editing = app.editingId();
  if (editing === null) return false;
  showMessage(`object #${editing} is being corrected: Space to apply, Esc to cancel, then edit it`, "warn");
  return true;
}

function cancelClicks() {
  if (!(app.image && app.image.current) && !app.pendingClicks.length) return;
  messageEl.title = "";
  stateOp((base) => post(`${base}/cancel`));
}

const undo = () => app.image && stateOp((base) => post(`${base}/undo`));
const redo = () => app.image && stateOp((base) => post(`${base}/redo`));

app.relabel = (id, label) => stateOp((base) => patch(`${base}/objects/${id}`, { label }));
app.deleteObject = (id) => stateOp((base) => del(`${base}/objects/${id}`));
app.reorder = (id, to) => stateOp((base) => post(`${base}/objects/${id}/order`, { to }));
app.sendBrush = (strokes) => {
  const id = app.selected;
  if (id === null) return;
  stateOp((base) => post(`${base}/objects/${id}/brush`, { strokes }));
};
app.select = (id) => {
  app.selected = id;
  if (polygon.active && id !== polygon.objectId) leavePolygon();
  refreshPanels();
  viewer.render();
};
app.selectLabel = (id) => {
  app.currentLabel = id;
  labelsPanel.render();
  viewer.render();
};
app.setLabels = setLabels;
app.goTo = goTo;
app.refreshImages = refreshImages;
app.reloadImage = reloadImage;

function setStatus(status) {
  if (!app.image) return;
  const index = app.index;
  const next = app.image.status === status ? "" : status;
  enqueue(async () => {
    const r = await put(`/api/images/${index}/status`, { status: next });
    imageList.update(index, { status: r.status });
    if (index === app.index && app.image) {
      app.image = { ...app.image, status: r.status };
      refreshPanels();
    }
  });
}

// ------------------------------------------------------------------ tools
function setMode(mode) {
  if (mode === app.mode) return;
  if ((mode === "brush" || mode === "erase") && refusedWhileCorrecting()) return;
  if (app.mode === "polygon") leavePolygon();
  if ((mode === "brush" || mode === "erase") && app.selected === null) {
    const objs = (app.image && app.image.objects) || [];
    if (objs.length === 1) app.selected = objs[0].id;
  }
  app.mode = mode;
  brush.erase = mode === "erase";
  viewer.canvas.dataset.mode = mode;
  refreshPanels();
  viewer.render();
}

async function startPolygon() {
  if (refusedWhileCorrecting()) return;
  if (app.selected === null) {
    const objs = (app.image && app.image.objects) || [];
    if (objs.length === 1) app.selected = objs[0].id;
    else return showMessage("select an object to edit its polygon (objects panel, Tab, or Shift+click)", "info");
  }
  const id = app.selected;
  try {
    if (!(await polygon.start(id))) return;
  } catch (_) {
    return;
  }
  if (app.mode !== "polygon") {
    app.mode = "polygon";
    viewer.canvas.dataset.mode = "polygon";
  }
  app.hiddenObject = id;
  refreshPanels();
  viewer.render();
}
app.startPolygon = startPolygon;

function leavePolygon() {
  polygon.stop();
  app.hiddenObject = null;
  if (app.mode === "polygon") {
    app.mode = "click";
    viewer.canvas.dataset.mode = "click";
  }
  refreshPanels();
  viewer.render();
}

async function applyPolygon() {
  const r = await polygon.apply();
  if (!r) return;
  if (!r.polygons.length) return showMessage("nothing left to apply: every ring has fewer than 3 vertices");
  const { id, polygons } = r;
  leavePolygon();
  stateOp((base) => put(`${base}/objects/${id}/polygon`, { polygons }));
}

function selectObjectAt(p) {
  const objs = (app.image && app.image.objects) || [];
  for (let k = objs.length - 1; k >= 0; k--) {
    if (contains(objs[k], p.x, p.y)) {
      app.select(objs[k].id);
      return true;
    }
  }
  app.select(null);
  return false;
}

function cycleObject(step) {
  const objs = (app.image && app.image.objects) || [];
  if (!objs.length) return;
  let k = objs.findIndex((o) => o.id === app.selected);
  k = k < 0 ? (step > 0 ? objs.length - 1 : 0) : (k - step + objs.length) % objs.length; // panel is topmost first
  app.select(objs[k].id);
}

function onPointer(type, e, p) {
  if (type === "move" || type === "leave") updateStatusBar();
  if (app.mode === "polygon") return polygon.onPointer(type, e, p, viewer);
  if (app.mode === "brush" || app.mode === "erase") return brush.onPointer(type, e, p, viewer);
  if (type === "down") {
    const t0 = e.timeStamp > 0 ? e.timeStamp : performance.now();
    if (e.button === 0 && e.shiftKey) {
      selectObjectAt(p);
      return true;
    }
    if (e.button === 0 || e.button === 2) {
      clickAt(p, e.button === 0, t0);
      return true;
    }
  }
  return false;
}

// ------------------------------------------------------------------ toolbar and panels
function on(id, event, fn) {
  $(id).addEventListener(event, fn);
}
on("prev", "click", () => goTo(app.index - 1));
on("next", "click", () => goTo(app.index + 1));
on("undo", "click", undo);
on("redo", "click", redo);
on("finish", "click", finish);
on("cancel", "click", cancelClicks);
on("mark-done", "click", () => setStatus("done"));
on("mark-empty", "click", () => setStatus("empty"));
on("help-button", "click", () => toggleHelp());
on("message-close", "click", hideMessage);
on("tool-pan", "click", () => {
  viewer.panTool = !viewer.panTool;
  refreshPanels();
});
for (const b of document.querySelectorAll("[data-tool]"))
  b.addEventListener("click", () => (b.dataset.tool === "polygon" ? startPolygon() : setMode(b.dataset.tool)));
on("brush-radius", "change", (e) => {
  brush.setRadius(Number(e.target.value) || brush.radius);
  e.target.value = String(brush.radius);
  updateModeHint();
  viewer.render();
});
on("opacity", "input", (e) => {
  viewer.opacity = Number(e.target.value);
  viewer.requestRender();
});
on("image-filter", "input", (e) => imageList.applyFilter(e.target.value));
on("label-add", "click", () => labelsPanel.add());
on("label-import", "click", () => $("label-import-file").click());
on("label-import-file", "change", (e) => {
  const f = e.target.files[0];
  if (f) labelsPanel.importFile(f);
  e.target.value = "";
});
on("label-export", "click", () => labelsPanel.exportFile());
on("model-select", "change", async (e) => {
  const name = e.target.value;
  try {
    const r = await put("/api/model", { name });
    app.project.model = r.model;
    showMessage(`click model: ${r.model}`, "info");
  } catch (_) {
    e.target.value = app.project.model;
  }
  e.target.blur();
});
function putSettings() {
  const body = { keep_largest: $("keep-largest").checked, threshold: Number($("threshold").value) };
  put("/api/settings", body)
    .then((r) => {
      const s = r.settings || body;
      $("keep-largest").checked = !!s.keep_largest;
      $("threshold").value = String(s.threshold);
      $("threshold-value").textContent = Number(s.threshold).toFixed(2);
    })
    .catch(() => {});
}
on("keep-largest", "change", putSettings);
on("threshold", "input", (e) => ($("threshold-value").textContent = Number(e.target.value).toFixed(2)));
on("threshold", "change", putSettings);
on("export-button", "click", async () => {
  const format = $("export-format").value;
  const out = $("export-result");
  out.className = "export-result running";
  out.textContent = `exporting ${format}…`;
  try {
    const r = await post("/api/export", { format }, { quiet: true });
    out.className = "export-result ok";
    out.replaceChildren(
      h("div", {}, `${r.format}: ${r.files} file${r.files === 1 ? "" : "s"}`),
      h("div", { class: "path", "data-testid": "export-path", title: r.path }, r.path),
      ...(r.warnings || []).map((w) => h("div", { class: "warning" }, w))
    );
  } catch (e) {
    out.className = "export-result error";
    out.textContent = e.message;
  }
});

// 16-bit / DICOM window
let windowTimer = null;
// the window shown: a slider changes its own half only (a range input snaps its value to its step
// grid, so reading the other slider back could move a window the user did not touch, e.g. a DICOM
// file's level 40 on a -300..400 slider of step 0.7 reads 40.2)
let windowNow = null;
function setupWindowPanel(info) {
  const panel = $("window-panel");
  const w = info.window;
  const show = !!w && info.kind && info.kind !== "rgb";
  panel.hidden = !show;
  windowNow = show ? { width: w.width, level: w.level } : null;
  if (!show) return;
  const range = Math.max(1, w.max - w.min);
  const ww = $("window-width");
  const wl = $("window-level");
  Object.assign(ww, { min: "1", max: String(range), step: String(range > 1000 ? 1 : range / 1000) });
  Object.assign(wl, { min: String(w.min), max: String(w.max), step: String(range > 1000 ? 1 : range / 1000) });
  ww.value = String(w.width);
  wl.value = String(w.level);
  $("window-value").textContent = `W ${fmt(w.width)}  L ${fmt(w.level)}`;
}
function windowChanged(e) {
  if (!windowNow) return;
  const which = e.target === $("window-width") ? "width" : "level";
  windowNow = { ...windowNow, [which]: Number(e.target.value) };
  const { width, level } = windowNow;
  $("window-value").textContent = `W ${fmt(width)}  L ${fmt(level)}`;
  viewer.setWindow(width, level);
  const index = app.index;
  clearTimeout(windowTimer);
  windowTimer = setTimeout(() => put(`/api/images/${index}/window`, { width, level }).catch(() => {}), 400);
}
on("window-width", "input", windowChanged);
on("window-level", "input", windowChanged);

// buttons never keep the focus (Space would press them again instead of finishing an object)
document.addEventListener("click", (e) => {
  const b = e.target.closest && e.target.closest("button");
  if (b) b.blur();
});

// ------------------------------------------------------------------ keys and help
const help = $("help");
function toggleHelp(force) {
  help.hidden = force === undefined ? !help.hidden : !force;
}
const table = shortcutTable({
  next: () => goTo(app.index + 1),
  prev: () => goTo(app.index - 1),
  toggleDone: () => setStatus("done"),
  toggleEmpty: () => setStatus("empty"),
  finish: () => (app.mode === "polygon" ? applyPolygon() : finish()),
  escape: () => {
    if (!help.hidden) return toggleHelp(false);
    if (app.mode === "polygon") return leavePolygon();
    if (brush.stroke) {
      brush.stroke = null;
      return viewer.render();
    }
    if ((app.image && app.image.current) || app.pendingClicks.length) return cancelClicks();
    if (app.mode !== "click") return setMode("click");
    if (app.selected !== null) app.select(null);
  },
  undo: () => (app.mode === "polygon" ? leavePolygon() : undo()),
  redo,
  selectLabel: (e, key) => {
    const l = app.labels[Number(key) - 1];
    if (l) app.selectLabel(l.id);
  },
  nextObject: () => cycleObject(1),
  prevObject: () => cycleObject(-1),
  deleteKey: () => {
    if (app.mode === "polygon") {
      if (polygon.deleteHovered()) viewer.render();
      return;
    }
    if (app.selected !== null) app.deleteObject(app.selected);
  },
  polygon: () => startPolygon(),
  refine: () => startRefine(),
  clickTool: () => setMode("click"),
  brush: () => setMode("brush"),
  eraser: () => setMode("erase"),
  smallerBrush: () => resizeBrush(1 / 1.25),
  largerBrush: () => resizeBrush(1.25),
  panTool: () => {
    viewer.panTool = !viewer.panTool;
    refreshPanels();
  },
  toggleMasks: () => {
    viewer.showMasks = !viewer.showMasks;
    viewer.render();
  },
  fit: () => viewer.fit(),
  zoomIn: () => viewer.zoomAt(viewer.width / 2, viewer.height / 2, 1.25),
  zoomOut: () => viewer.zoomAt(viewer.width / 2, viewer.height / 2, 1 / 1.25),
  help: () => toggleHelp(),
});
function resizeBrush(f) {
  const r = brush.radius;
  brush.setRadius(f > 1 ? Math.max(r + 1, r * f) : Math.min(r - 1, r * f));
  $("brush-radius").value = String(brush.radius);
  updateModeHint();
  viewer.render();
}
buildHelp(help, table);
installShortcuts(table, { isHelpOpen: () => !help.hidden });

// ------------------------------------------------------------------ test hooks
const round2 = (v) => Math.round(v * 100) / 100;
const fmt = (v) => (Math.abs(v) >= 100 ? Math.round(v) : Number(v).toPrecision(3));

window.ppseg = {
  state: app,
  stats,
  viewer,
  polygon,
  brush,
  idle,
  /** Open image i (what the list and the arrow keys do). */
  open: (i) => goTo(i),
  shortcuts: table,
  maskContains: contains,
  maskArea: area,
  /** Client (page) coordinates of image pixel (x, y). */
  toClient(x, y) {
    const r = viewer.canvas.getBoundingClientRect();
    const s = viewer.toScreen(x, y);
    return { x: r.left + s.x, y: r.top + s.y };
  },
  ready: false,
};

loadProject()
  .then(() => {
    window.ppseg.ready = true;
    document.body.dataset.ready = "1";
  })
  .catch((e) => {
    showMessage(`cannot load the project: ${e.message}`);
  });
