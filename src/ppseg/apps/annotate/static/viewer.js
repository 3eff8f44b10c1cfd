// The canvas: tiles of the image at the level matching the zoom (coarsest first), the objects'
// masks tinted by label colour, the current mask and its clicks, and whatever the active tool
// draws on top (polygon handles, brush circle). Zoom with the wheel around the cursor, pan with
// middle-drag, Ctrl+left-drag or the pan tool.
//
// Two stacked canvases: the base (tiles, finished objects, the selection) and, above it, the top
// (the mask being clicked, its crop box, the clicks, the active tool's drawing). A click's answer
// repaints only the top, so its cost does not grow with the image's tiles or objects.

import { getBitmap } from "./api.js";
import { maskSprite, CurrentMaskPainter } from "./masks.js";

const MAX_CONCURRENT_TILES = 6;

export class Viewer {
  constructor(container, { getState, getOverlayDrawers, onPointer, onView }) {
    this.container = container;
    this.canvas = container.querySelector("canvas");
    this.ctx = this.canvas.getContext("2d");
    this.top = document.createElement("canvas"); // current mask, clicks, tool overlays
    this.top.className = "top";
    this.top.dataset.testid = "canvas-top";
    this.canvas.after(this.top);
    this.topCtx = this.top.getContext("2d");
    this.painter = new CurrentMaskPainter();
    this.layer = document.createElement("canvas"); // masks composited at full alpha, then blended
    this.layerCtx = this.layer.getContext("2d");
    this.getState = getState;
    this.getOverlayDrawers = getOverlayDrawers;
    this.onPointer = onPointer; // (type, event, {x, y}) -> true when handled
    this.onView = onView || (() => {});
    this.info = null; // /api/images/{i}
    this.scale = 1; // screen px (CSS) per image px
    this.tx = 0; // screen position of the image origin
    this.ty = 0;
    this.dpr = window.devicePixelRatio || 1;
    this.tiles = new Map(); // key -> {bitmap?, state: 'loading'|'ok'|'failed'}
    this.loading = 0;
    this.queue = [];
    this.windowParams = null; // {ww, wl} for 16-bit images
    this.opacity = 0.5;
    this.showMasks = true;
    this.pan = null;
    this.panTool = false;
    this.mouse = null; // last pointer position in image coords
    this.frame = 0;
    this.pendingRender = false;
    this.pendingTop = false;
    this.placeholder = null; // {w, h}: the extent of an image being opened
    this.flashUntil = 0; // the crop box is highlighted until then (a click outside it)
    this._w = 1; // the container's size in CSS px, read once per resize (no layout on a click)
    this._h = 1;
    this.generation = 0; // bumps on each new image; stale tile loads are dropped
    this.message = "";

    new ResizeObserver(() => this.resize()).observe(container);
    this.resize();
    this.bindEvents();
  }

  // ------------------------------------------------------------ geometry
  get width() {
    return this._w;
  }
  get height() {
    return this._h;
  }
  toImage(sx, sy) {
    return { x: (sx - this.tx) / this.scale, y: (sy - this.ty) / this.scale };
  }
  toScreen(x, y) {
    return { x: x * this.scale + this.tx, y: y * this.scale + this.ty };
  }
  eventPoint(e) {
    const r = this.canvas.getBoundingClientRect();
    return { sx: e.clientX - r.left, sy: e.clientY - r.top };
  }
  /** The visible rect of the image in image pixels [x0, y0, x1, y1], clipped to the image. */
  visibleRect() {
    if (!this.info) return null;
    const a = this.toImage(0, 0);
    const b = this.toImage(this.width, this.height);
    const W = this.info.width;
    const H = this.info.height;
    return [
      Math.max(0, Math.floor(a.x)),
      Math.max(0, Math.floor(a.y)),
      Math.min(W, Math.ceil(b.x)),
      Math.min(H, Math.ceil(b.y)),
    ];
  }

  resize() {
    this.dpr = window.devicePixelRatio || 1;
    const w = (this._w = Math.max(1, this.container.clientWidth));
    const h = (this._h = Math.max(1, this.container.clientHeight));
    for (const c of [this.canvas, this.top]) {
      c.width = Math.round(w * this.dpr);
      c.height = Math.round(h * this.dpr);
      c.style.width = `${w}px`;
      c.style.height = `${h}px`;
    }
    this.layer.width = this.canvas.width;
    this.layer.height = this.canvas.height;
    if (this.info && !this.userMoved) this.fit();
    this.render();
  }

  setImage(info) {
    this.info = info;
    this.placeholder = null;
    this.generation++;
    this.tiles.clear();
    this.queue = [];
    this.message = "";
    this.windowParams = info && info.window ? { ww: info.window.width, wl: info.window.level } : null;
    this.userMoved = false;
    if (info) this.fit();
    this.render();
  }

  showError(text) {
    this.info = null;
    this.placeholder = null;
    this.message = text;
    this.render();
  }

  /** An image is being opened: nothing of the last one stays; its extent (when known) is shown. */
  clear(size = null) {
    this.info = null;
    this.generation++;
    this.tiles.clear();
    this.queue = [];
    this.message = "";
    this.placeholder = size && size.w > 0 && size.h > 0 ? size : null;
    this.render();
  }

  fit() {
    const W = this.info ? this.info.width : this.placeholder && this.placeholder.w;
    const H = this.info ? this.info.height : this.placeholder && this.placeholder.h;
    if (!W || !H) return;
    const pad = 12;
    const s = Math.min((this.width - 2 * pad) / W, (this.height - 2 * pad) / H);
    this.scale = s > 0 ? s : 1;
    this.tx = (this.width - W * this.scale) / 2;
    this.ty = (this.height - H * this.scale) / 2;
    this.userMoved = false;
    if (this.info) this.viewChanged();
  }

  zoomAt(sx, sy, factor) {
    if (!this.info) return;
    const fitScale = Math.min(this.width / this.info.width, this.height / this.info.height);
    const s = Math.min(64, Math.max(fitScale / 8, this.scale * factor));
    const p = this.toImage(sx, sy);
    this.scale = s;
    this.tx = sx - p.x * s;
    this.ty = sy - p.y * s;
    this.userMoved = true;
    this.viewChanged();
  }

  viewChanged() {
    this.render();
    this.onView();
  }

  setWindow(ww, wl) {
    this.windowParams = { ww, wl };
    // keep the old tiles on screen until the new ones arrive: mark them stale
    for (const t of this.tiles.values()) t.stale = true;
    this.render();
  }

  // ------------------------------------------------------------ tiles
  level() {
    const L = this.info.levels;
    const k = Math.floor(Math.log2(1 / (this.scale * this.dpr)));
    return Math.max(0, Math.min(L - 1, k));
  }

  tileKey(level, tx, ty) {
    const w = this.windowParams ? `|${this.windowParams.ww}|${this.windowParams.wl}` : "";
    return `${level}/${tx}/${ty}${w}`;
  }

  tileUrl(level, tx, ty) {
    let url = `/api/images/${this.info.index}/tile/${level}/${tx}/${ty}`;
    if (this.windowParams) url += `?ww=${encodeURIComponent(this.windowParams.ww)}&wl=${encodeURIComponent(this.windowParams.wl)}`;
    return url;
  }

  /** Tiles of `level` that intersect the visible rect: [{tx, ty, x, y, size}] in image px. */
  visibleTiles(level) {
    const T = this.info.tile_size;
    const f = 2 ** level;
    const span = T * f; // image pixels per tile
    const [x0, y0, x1, y1] = this.visibleRect();
    const nx = Math.ceil(this.info.width / span);
    const ny = Math.ceil(this.info.height / span);
    const out = [];
    const ax = Math.max(0, Math.floor(x0 / span));
    const bx = Math.min(nx - 1, Math.floor((x1 - 1) / span));
    const ay = Math.max(0, Math.floor(y0 / span));
    const by = Math.min(ny - 1, Math.floor((y1 - 1) / span));
    for (let ty = ay; ty <= by; ty++) for (let tx = ax; tx <= bx; tx++) out.push({ level, tx, ty, x: tx * span, y: ty * span, f });
    return out;
  }

  requestTiles(list) {
    const gen = this.generation;
    // what is wanted now replaces the queue; the coarsest and those nearest the centre go first
    const cx = this.width / 2;
    const cy = this.height / 2;
    const wanted = [];
    for (const t of list) {
      const key = this.tileKey(t.level, t.tx, t.ty);
      const have = this.tiles.get(key);
      if (have && !have.stale) continue;
      const s = this.toScreen(t.x + (this.info.tile_size * t.f) / 2, t.y + (this.info.tile_size * t.f) / 2);
      wanted.push({ ...t, key, d: -t.level * 1e9 + Math.hypot(s.x - cx, s.y - cy) });
    }
    wanted.sort((a, b) => a.d - b.d);
    this.queue = wanted;
    this.pump(gen);
  }

  pump(gen) {
    while (this.loading < MAX_CONCURRENT_TILES && this.queue.length) {
      const t = this.queue.shift();
      if (this.tiles.has(t.key) && !this.tiles.get(t.key).stale) continue;
      const entry = { state: "loading", level: t.level, tx: t.tx, ty: t.ty };
      this.tiles.set(t.key, entry);
      this.loading++;
      getBitmap(this.tileUrl(t.level, t.tx, t.ty))
        .then((bmp) => {
          if (gen !== this.generation) return;
          entry.bitmap = bmp;
          entry.state = "ok";
          this.render();
        })
        .catch(() => {
          entry.state = "failed";
        })
        .finally(() => {
          this.loading--;
          if (gen === this.generation) this.pump(gen);
        });
    }
  }

  /** A loaded tile for (level, tx, ty): the current window's, else a stale one, else null. */
  tileBitmap(level, tx, ty) {
    const t = this.tiles.get(this.tileKey(level, tx, ty));
    if (t && t.bitmap) return t.bitmap;
    return null;
  }

  drawTiles(ctx) {
    const info = this.info;
    const L = info.levels;
    const target = this.level();
    const wanted = [];
    // coarsest whole image first (one tile), then every level down to the target that is loaded
    for (let level = L - 1; level >= target; level--) {
      const list = level === L - 1 ? this.allTiles(level) : this.visibleTiles(level);
      if (level === L - 1 || level === target) wanted.push(...list);
      for (const t of list) {
        let bmp = this.tileBitmap(level, t.tx, t.ty);
        if (!bmp && this.windowParams) bmp = this.staleBitmap(level, t.tx, t.ty);
        if (!bmp) continue;
        const p = this.toScreen(t.x, t.y);
        ctx.drawImage(bmp, p.x, p.y, bmp.width * t.f * this.scale, bmp.height * t.f * this.scale);
      }
    }
    this.requestTiles(wanted);
  }

  staleBitmap(level, tx, ty) {
    const prefix = `${level}/${tx}/${ty}`;
    for (const [k, t] of this.tiles) if (t.bitmap && (k === prefix || k.startsWith(prefix + "|"))) return t.bitmap;
    return null;
  }

  allTiles(level) {
    const span = this.info.tile_size * 2 ** level;
    const nx = Math.ceil(this.info.width / span);
    const ny = Math.ceil(this.info.height / span);
    const out = [];
    for (let ty = 0; ty < ny; ty++) for (let tx = 0; tx < nx; tx++) out.push({ level, tx, ty, x: tx * span, y: ty * span, f: 2 ** level });
    return out;
  }

  // ------------------------------------------------------------ drawing
  /** Schedule a render on the next frame (many calls, one draw). */
  requestRender() {
    if (this.pendingRender) return;
    this.pendingRender = true;
    requestAnimationFrame(() => {
      this.pendingRender = false;
      this.render();
    });
  }

  /** Schedule a repaint of the top canvas only (clicks, tool drawing) on the next frame. */
  requestTop() {
    if (this.pendingRender || this.pendingTop) return;
    this.pendingTop = true;
    requestAnimationFrame(() => {
      if (!this.pendingTop) return;
      this.pendingTop = false;
      this.renderTop();
    });
  }

  /** Highlight the click model's crop box for a moment (a click fell outside it). */
  flashWindow(ms = 1500) {
    this.flashUntil = performance.now() + ms;
    this.renderTop();
    setTimeout(() => this.requestTop(), ms + 20);
  }

  /** RGBA of the composited canvases at CSS pixel (sx, sy) of the canvas (tests read it). */
  pixel(sx, sy) {
    const c = document.createElement("canvas");
    c.width = c.height = 1;
    const g = c.getContext("2d");
    const x = Math.round(sx * this.dpr);
    const y = Math.round(sy * this.dpr);
    g.drawImage(this.canvas, x, y, 1, 1, 0, 0, 1, 1);
    g.drawImage(this.top, x, y, 1, 1, 0, 0, 1, 1);
    return Array.from(g.getImageData(0, 0, 1, 1).data);
  }

  drawSprite(ctx, sprite, canvas) {
    const p = this.toScreen(sprite.x, sprite.y);
    ctx.drawImage(canvas, p.x, p.y, sprite.w * this.scale, sprite.h * this.scale);
  }

  /** Draw everything now (synchronously): the base canvas, then the top one. */
  render() {
    this.pendingTop = false;
    const ctx = this.ctx;
    const dpr = this.dpr;
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.fillStyle = "#1b1d21";
    ctx.fillRect(0, 0, this.canvas.width, this.canvas.height);
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    if (!this.info) {
      this.clearTop();
      if (this.placeholder) {
        this.fit();
        ctx.fillStyle = "#24272c";
        ctx.fillRect(this.tx, this.ty, this.placeholder.w * this.scale, this.placeholder.h * this.scale);
      }
      if (this.message) {
        ctx.fillStyle = "#f28b82";
        ctx.font = "14px system-ui, sans-serif";
        ctx.textAlign = "center";
        ctx.fillText(this.message, this.width / 2, this.height / 2);
      }
      return;
    }
    ctx.imageSmoothingEnabled = this.scale < 4;
    // image backdrop (so a not-yet-loaded image shows its extent)
    const o = this.toScreen(0, 0);
    ctx.fillStyle = "#2a2d33";
    ctx.fillRect(o.x, o.y, this.info.width * this.scale, this.info.height * this.scale);
    this.drawTiles(ctx);

    const st = this.getState();
    if (this.showMasks && st.image) {
      // composite every mask opaque on the layer (later objects cover earlier ones), then blend
      const lc = this.layerCtx;
      lc.setTransform(1, 0, 0, 1, 0, 0);
      lc.clearRect(0, 0, this.layer.width, this.layer.height);
      lc.setTransform(dpr, 0, 0, dpr, 0, 0);
      lc.imageSmoothingEnabled = false;
      let selectedSprite = null;
      for (const obj of st.image.objects) {
        // hidden while its polygon is edited; or being corrected with clicks (shown as the current mask)
        if (st.hiddenObject === obj.id || st.editing === obj.id) continue;
        const sel = obj.id === st.selected;
        const sprite = maskSprite(obj, st.colorOf(obj.label), sel);
        if (!sprite) continue;
        this.drawSprite(lc, sprite, sprite.canvas);
        if (sel) selectedSprite = sprite;
      }
      if (st.image.objects.length) {
        ctx.save();
        ctx.globalAlpha = this.opacity;
        ctx.setTransform(1, 0, 0, 1, 0, 0);
        ctx.drawImage(this.layer, 0, 0);
        ctx.restore();
      }
      ctx.imageSmoothingEnabled = false;
      if (selectedSprite) this.drawSprite(ctx, selectedSprite, selectedSprite.edge);
    }
    this.frame++;
    this.renderTop(st);
  }

  clearTop() {
    const t = this.topCtx;
    t.setTransform(1, 0, 0, 1, 0, 0);
    t.clearRect(0, 0, this.top.width, this.top.height);
    t.setTransform(this.dpr, 0, 0, this.dpr, 0, 0);
  }

  /** Repaint the top canvas now: the current mask (decoded once), its crop box, the clicks, the tool. */
  renderTop(st = this.getState()) {
    this.pendingTop = false;
    this.clearTop();
    if (!this.info) return;
    const ctx = this.topCtx;
    const cur = st.image && st.image.current;
    if (this.showMasks && cur && cur.mask) {
      // a correction keeps the object's label: its colour, not the label selected for new objects
      const color = st.editing !== null && st.editing !== undefined ? st.colorOfObject(st.editing) : st.colorOf(st.currentLabel);
      const sprite = this.painter.sprite(cur.mask, color, Math.round(this.opacity * 255), 230);
      if (sprite) {
        const p = this.toScreen(sprite.x, sprite.y);
        ctx.imageSmoothingEnabled = false;
        ctx.drawImage(sprite.canvas, 0, 0, sprite.sw, sprite.sh, p.x, p.y, sprite.w * this.scale, sprite.h * this.scale);
      }
    }
    // the click model's crop, then the clicks
    if (cur && cur.window && (cur.window[2] - cur.window[0] < this.info.width || cur.window[3] - cur.window[1] < this.info.height)) {
      const a = this.toScreen(cur.window[0], cur.window[1]);
      const b = this.toScreen(cur.window[2], cur.window[3]);
      const flash = performance.now() < this.flashUntil;
      ctx.save();
      ctx.setLineDash(flash ? [] : [6, 4]);
      ctx.lineWidth = flash ? 3 : 1;
      ctx.strokeStyle = flash ? "#ff9f0a" : "rgba(255,255,255,0.7)";
      ctx.strokeRect(a.x, a.y, b.x - a.x, b.y - a.y);
      ctx.restore();
    }
    const clicks = [...((cur && cur.clicks) || []), ...st.pendingClicks];
    for (const c of clicks) {
      const p = this.toScreen(c.x, c.y);
      ctx.beginPath();
      ctx.arc(p.x, p.y, 5, 0, Math.PI * 2);
      ctx.fillStyle = c.positive ? "#34c759" : "#ff3b30";
      ctx.globalAlpha = c.pending ? 0.6 : 1;
      ctx.fill();
      ctx.lineWidth = 1.5;
      ctx.strokeStyle = "#fff";
      ctx.stroke();
      ctx.globalAlpha = 1;
    }
    for (const draw of this.getOverlayDrawers()) draw(ctx, this);
  }

  // ------------------------------------------------------------ events
  bindEvents() {
    const c = this.canvas;
    c.addEventListener("contextmenu", (e) => e.preventDefault());
    c.addEventListener(
      "wheel",
      (e) => {
        e.preventDefault();
        const { sx, sy } = this.eventPoint(e);
        const dy = e.deltaMode === 1 ? e.deltaY * 16 : e.deltaY;
        this.zoomAt(sx, sy, Math.exp(-dy * 0.0015));
      },
      { passive: false }
    );
    c.addEventListener("pointerdown", (e) => {
      const { sx, sy } = this.eventPoint(e);
      const wantsPan = e.button === 1 || (e.button === 0 && (e.ctrlKey || e.metaKey || this.panTool));
      if (wantsPan) {
        e.preventDefault();
        this.pan = { sx, sy, tx: this.tx, ty: this.ty, id: e.pointerId };
        c.setPointerCapture(e.pointerId);
        c.classList.add("panning");
        return;
      }
      if (!this.info) return;
      const p = this.toImage(sx, sy);
      if (this.onPointer("down", e, p)) {
        e.preventDefault();
        c.setPointerCapture(e.pointerId);
      }
    });
    c.addEventListener("pointermove", (e) => {
      const { sx, sy } = this.eventPoint(e);
      if (this.pan) {
        this.tx = this.pan.tx + sx - this.pan.sx;
        this.ty = this.pan.ty + sy - this.pan.sy;
        this.userMoved = true;
        this.requestRender();
        this.onView();
        return;
      }
      if (!this.info) return;
      const p = this.toImage(sx, sy);
      this.mouse = p;
      this.onPointer("move", e, p);
    });
    const up = (e) => {
      if (this.pan) {
        this.pan = null;
        c.classList.remove("panning");
        this.viewChanged();
        return;
      }
      if (!this.info) return;
      const { sx, sy } = this.eventPoint(e);
      this.onPointer("up", e, this.toImage(sx, sy));
    };
    c.addEventListener("pointerup", up);
    c.addEventListener("pointercancel", up);
    c.addEventListener("pointerleave", () => {
      this.mouse = null;
      this.onPointer("leave", null, null);
    });
    c.addEventListener("dblclick", (e) => {
      if (!this.info) return;
      const { sx, sy } = this.eventPoint(e);
      this.onPointer("dblclick", e, this.toImage(sx, sy));
    });
    // middle-button autoscroll off
    c.addEventListener("mousedown", (e) => {
      if (e.button === 1) e.preventDefault();
    });
  }
}
