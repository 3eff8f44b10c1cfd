// Masks arrive as "bbox RLE" (see API.md): the mask cropped to its bbox, read row by row, as
// alternating runs starting with zeros. Here they become tinted offscreen canvases; a mask
// larger than MAX_SIDE on a side is decoded at a reduced resolution (every f-th pixel), so a
// 10000 x 10000 object costs a few MB, not 400.

const MAX_SIDE = 4096;

export function isEmpty(code) {
  return !code || !code.bbox || code.bbox[2] === 0 || code.bbox[3] === 0;
}

export function area(code) {
  if (isEmpty(code)) return 0;
  let a = 0;
  for (let i = 1; i < code.counts.length; i += 2) a += code.counts[i];
  return a;
}

/** Whether image pixel (x, y) is inside the mask. */
export function contains(code, x, y) {
  if (isEmpty(code)) return false;
  const [bx, by, w, h] = code.bbox;
  const cx = Math.floor(x) - bx;
  const cy = Math.floor(y) - by;
  if (cx < 0 || cy < 0 || cx >= w || cy >= h) return false;
  const target = cy * w + cx;
  let pos = 0;
  for (let i = 0; i < code.counts.length; i++) {
    pos += code.counts[i];
    if (target < pos) return i % 2 === 1;
  }
  return false;
}

/**
 * Write `value` into `out` (a typed array with rows of `stride` elements) at every mask pixel of
 * `code`, sampling every f-th row and column (f = 1: full resolution): the one RLE walk behind
 * decodeAlpha and the click path's sprites.
 */
function fillRuns(code, f, out, stride, value) {
  const W = code.bbox[2];
  const counts = code.counts;
  let pos = 0;
  for (let i = 0; i < counts.length; i++) {
    const n = counts[i];
    if (i & 1 && n > 0) {
      let a = pos;
      const end = pos + n;
      while (a < end) {
        const row = (a / W) | 0;
        const rowEnd = Math.min(end, (row + 1) * W);
        if (row % f === 0) {
          const o = (row / f) * stride;
          const c0 = a - row * W;
          const c1 = rowEnd - row * W;
          if (f === 1) out.fill(value, o + c0, o + c1);
          else for (let c = Math.ceil(c0 / f) * f; c < c1; c += f) out[o + c / f] = value;
        }
        a = rowEnd;
      }
    }
    pos += n;
  }
}

/**
 * Decode into an alpha array of the (possibly reduced) bbox: returns {alpha, w, h, f} where
 * alpha[r * w + c] = 1 for mask pixels and f is the reduction factor (1 = full resolution).
 */
export function decodeAlpha(code) {
  const [, , W, H] = code.bbox;
  const f = Math.max(1, Math.ceil(Math.max(W, H) / MAX_SIDE));
  const w = Math.ceil(W / f);
  const h = Math.ceil(H / f);
  const alpha = new Uint8Array(w * h);
  fillRuns(code, f, alpha, w, 1);
  return { alpha, w, h, f };
}

function makeCanvas(w, h) {
  if (typeof OffscreenCanvas !== "undefined") return new OffscreenCanvas(Math.max(1, w), Math.max(1, h));
  const c = document.createElement("canvas");
  c.width = Math.max(1, w);
  c.height = Math.max(1, h);
  return c;
}

/** A canvas of the bbox (reduced by f) with mask pixels in `color` ([r, g, b]), others clear. */
export function tintedCanvas(dec, color, edgeOnly = false) {
  const { alpha, w, h } = dec;
  const canvas = makeCanvas(w, h);
  const ctx = canvas.getContext("2d");
  const img = ctx.createImageData(w, h);
  const px = new Uint32Array(img.data.buffer);
  // little-endian RGBA packed as ABGR
  const value = (255 << 24) | (color[2] << 16) | (color[1] << 8) | color[0];
  for (let r = 0; r < h; r++) {
    const o = r * w;
    for (let c = 0; c < w; c++) {
      const i = o + c;
      if (!alpha[i]) continue;
      if (edgeOnly) {
        const inner =
          c > 0 && c < w - 1 && r > 0 && r < h - 1 && alpha[i - 1] && alpha[i + 1] && alpha[i - w] && alpha[i + w];
        if (inner) continue;
      }
      px[i] = value;
    }
  }
  ctx.putImageData(img, 0, 0);
  return canvas;
}

// A small cache: the same code (same object, same label colour) is decoded once.
const cache = new Map();
const CACHE_MAX = 512;

function codeKey(code) {
  let hsh = 0;
  const c = code.counts;
  for (let i = 0; i < c.length; i++) hsh = (Math.imul(hsh, 31) + c[i] + i) | 0;
  return `${code.bbox.join(",")}|${c.length}|${hsh}`;
}

/**
 * {canvas, edge?, x, y, w, h}: the tinted mask and where it goes in image pixels.
 * `withEdge` also builds a white outline canvas (for the selected object).
 */
export function maskSprite(code, color, withEdge = false) {
  if (isEmpty(code)) return null;
  const key = `${codeKey(code)}|${color.join(",")}|${withEdge ? 1 : 0}`;
  let sprite = cache.get(key);
  if (sprite) {
    cache.delete(key);
    cache.set(key, sprite); // most recently used last
    return sprite;
  }
  const dec = decodeAlpha(code);
  const [x, y, w, h] = code.bbox;
  sprite = { canvas: tintedCanvas(dec, color), x, y, w, h };
  if (withEdge) sprite.edge = tintedCanvas(dec, [255, 255, 255], true);
  cache.set(key, sprite);
  while (cache.size > CACHE_MAX) cache.delete(cache.keys().next().value);
  return sprite;
}

/**
 * The mask being clicked, painted straight from its RLE into one reusable ImageData and canvas
 * (no intermediate alpha array, no per-click allocation): mask pixels in `color` at `fillAlpha`,
 * its outline white at `edgeAlpha`, in one sprite, so a click costs one decode, one
 * putImageData and one drawImage. The last sprite is kept: redrawing the same mask (a pointer
 * move in another tool, a pan) decodes nothing.
 */
export class CurrentMaskPainter {
  constructor() {
    this.cap = { w: 0, h: 0 };
    this.canvas = null;
    this.ctx = null;
    this.img = null;
    this.px = null;
    this.last = null; // {code, key, sprite}
  }

  _ensure(w, h) {
    if (w <= this.cap.w && h <= this.cap.h) return;
    const cw = Math.max(w, this.cap.w, 64);
    const ch = Math.max(h, this.cap.h, 64);
    this.canvas = makeCanvas(cw, ch);
    this.ctx = this.canvas.getContext("2d");
    this.img = this.ctx.createImageData(cw, ch);
    this.px = new Uint32Array(this.img.data.buffer);
    this.cap = { w: cw, h: ch };
  }

  /** {canvas, sw, sh, x, y, w, h}: draw canvas's (0, 0, sw, sh) at image rect (x, y, w, h). */
  sprite(code, color, fillAlpha = 128, edgeAlpha = 230) {
    if (isEmpty(code)) return null;
    const key = `${color.join(",")}|${fillAlpha}|${edgeAlpha}`;
    if (this.last && this.last.code === code && this.last.key === key) return this.last.sprite;
    const [bx, by, W, H] = code.bbox;
    const f = Math.max(1, Math.ceil(Math.max(W, H) / MAX_SIDE));
    const w = Math.ceil(W / f);
    const h = Math.ceil(H / f);
    this._ensure(w, h);
    const px = this.px;
    const S = this.cap.w; // row stride of the reusable buffer
    for (let r = 0; r < h; r++) px.fill(0, r * S, r * S + w);
    const fill = ((fillAlpha & 255) << 24) | (color[2] << 16) | (color[1] << 8) | color[0];
    const edge = ((edgeAlpha & 255) << 24) | 0xffffff;
    fillRuns(code, f, px, S, fill);
    // the outline: mask pixels with a 4-neighbour outside the mask (or at the bbox's border)
    for (let r = 0; r < h; r++) {
      const o = r * S;
      for (let c = 0; c < w; c++) {
        const i = o + c;
        if (px[i] !== fill) continue;
        if (c === 0 || c === w - 1 || r === 0 || r === h - 1 || !px[i - 1] || !px[i + 1] || !px[i - S] || !px[i + S]) px[i] = edge;
      }
    }
    this.ctx.putImageData(this.img, 0, 0, 0, 0, w, h);
    const sprite = { canvas: this.canvas, sw: w, sh: h, x: bx, y: by, w: W, h: H };
    this.last = { code, key, sprite };
    return sprite;
  }
}
