// Polygon edit of a finished object: the server gives its contours (outer rings and holes,
// even-odd); drag a vertex, double-click or Alt+click on an edge to add one, right-click (or
// Delete over) a vertex to remove it; Enter applies (PUT), Esc leaves without applying.

import { get, put, showMessage } from "./api.js";
import { rgb } from "./dom.js";

const HANDLE = 5; // handle half-size, screen px
const HIT = 8; // hit distance, screen px

export class PolygonEditor {
  constructor(app) {
    this.app = app;
    this.active = false;
    this.objectId = null;
    this.polygons = [];
    this.drag = null;
    this.hover = null; // {ring, vertex} or {ring, edge, x, y}
    this.dirty = false;
  }

  async start(objectId) {
    const index = this.app.index;
    const r = await get(`/api/images/${index}/objects/${objectId}/polygon`);
    if (index !== this.app.index) return false;
    this.polygons = (r.polygons || []).map((ring) => ring.map(([x, y]) => [x, y]));
    if (!this.polygons.length) {
      showMessage("this object has no polygon (empty mask)");
      return false;
    }
    this.objectId = objectId;
    this.active = true;
    this.dirty = false;
    this.drag = null;
    this.hover = null;
    return true;
  }

  stop() {
    this.active = false;
    this.objectId = null;
    this.polygons = [];
    this.drag = null;
    this.hover = null;
  }

  async apply() {
    if (!this.active) return null;
    const id = this.objectId;
    const polygons = this.polygons.filter((r) => r.length >= 3);
    return { id, polygons };
  }

  vertexCount() {
    return this.polygons.reduce((n, r) => n + r.length, 0);
  }

  // ------------------------------------------------------------ hit tests (screen distances)
  hitVertex(viewer, p) {
    let best = null;
    const lim = HIT / viewer.scale;
    this.polygons.forEach((ring, ri) =>
      ring.forEach(([x, y], vi) => {
        const d = Math.hypot(x - p.x, y - p.y);
        if (d <= lim && (!best || d < best.d)) best = { ring: ri, vertex: vi, d };
      })
    );
    return best;
  }

  hitEdge(viewer, p) {
    let best = null;
    const lim = HIT / viewer.scale;
    this.polygons.forEach((ring, ri) => {
      for (let i = 0; i < ring.length; i++) {
        const [ax, ay] = ring[i];
        const [bx, by] = ring[(i + 1) % ring.length];
        const dx = bx - ax;
        const dy = by - ay;
        const len2 = dx * dx + dy * dy || 1;
        const t = Math.max(0, Math.min(1, ((p.x - ax) * dx + (p.y - ay) * dy) / len2));
        const qx = ax + t * dx;
        const qy = ay + t * dy;
        const d = Math.hypot(p.x - qx, p.y - qy);
        if (d <= lim && (!best || d < best.d)) best = { ring: ri, edge: i, x: qx, y: qy, d };
      }
    });
    return best;
  }

  insertVertex(hit) {
    this.polygons[hit.ring].splice(hit.edge + 1, 0, [round1(hit.x), round1(hit.y)]);
    this.dirty = true;
  }

  deleteVertex(hit) {
    const ring = this.polygons[hit.ring];
    if (ring.length <= 3) {
      if (this.polygons.length > 1) this.polygons.splice(hit.ring, 1);
      else return showMessage("a polygon needs at least 3 vertices", "info");
    } else {
      ring.splice(hit.vertex, 1);
    }
    this.hover = null;
    this.dirty = true;
  }

  deleteHovered() {
    if (this.hover && this.hover.vertex !== undefined) {
      this.deleteVertex(this.hover);
      return true;
    }
    return false;
  }

  /** Pointer events from the viewer; returns true when handled. */
  onPointer(type, e, p, viewer) {
    if (!this.active) return false;
    if (type === "down") {
      const v = this.hitVertex(viewer, p);
      if (e.button === 2) {
        if (v) this.deleteVertex(v);
        viewer.requestTop();
        return true;
      }
      if (e.button !== 0) return false;
      if (e.altKey) {
        const edge = this.hitEdge(viewer, p);
        if (edge) this.insertVertex(edge);
        viewer.requestTop();
        return true;
      }
      if (v) {
        this.drag = v;
        return true;
      }
      return true; // clicks elsewhere do nothing in polygon edit
    }
    if (type === "move") {
      if (this.drag) {
        const W = viewer.info.width;
        const H = viewer.info.height;
        this.polygons[this.drag.ring][this.drag.vertex] = [clamp(round1(p.x), 0, W), clamp(round1(p.y), 0, H)];
        this.dirty = true;
      } else {
        this.hover = this.hitVertex(viewer, p) || this.hitEdge(viewer, p);
      }
      viewer.requestTop();
      return true;
    }
    if (type === "up") {
      this.drag = null;
      return true;
    }
    if (type === "dblclick") {
      if (this.hitVertex(viewer, p)) return true;
      const edge = this.hitEdge(viewer, p);
      if (edge) {
        this.insertVertex(edge);
        viewer.requestTop();
      }
      return true;
    }
    return false;
  }

  draw(ctx, viewer) {
    if (!this.active) return;
    const color = this.app.colorOfObject(this.objectId);
    ctx.save();
    ctx.beginPath();
    for (const ring of this.polygons) {
      ring.forEach(([x, y], i) => {
        const s = viewer.toScreen(x, y);
        if (i === 0) ctx.moveTo(s.x, s.y);
        else ctx.lineTo(s.x, s.y);
      });
      ctx.closePath();
    }
    ctx.globalAlpha = 0.35;
    ctx.fillStyle = rgb(color);
    ctx.fill("evenodd");
    ctx.globalAlpha = 1;
    ctx.lineWidth = 1.5;
    ctx.strokeStyle = "#ffffff";
    ctx.stroke();
    for (let ri = 0; ri < this.polygons.length; ri++) {
      this.polygons[ri].forEach(([x, y], vi) => {
        const s = viewer.toScreen(x, y);
        const hot = (this.hover && this.hover.ring === ri && this.hover.vertex === vi) || (this.drag && this.drag.ring === ri && this.drag.vertex === vi);
        ctx.fillStyle = hot ? "#ffd60a" : "#ffffff";
        ctx.strokeStyle = "#111";
        ctx.lineWidth = 1;
        const r = hot ? HANDLE + 1.5 : HANDLE;
        ctx.fillRect(s.x - r, s.y - r, 2 * r, 2 * r);
        ctx.strokeRect(s.x - r, s.y - r, 2 * r, 2 * r);
      });
    }
    if (this.hover && this.hover.edge !== undefined && !this.drag) {
      const s = viewer.toScreen(this.hover.x, this.hover.y);
      ctx.beginPath();
      ctx.arc(s.x, s.y, 4, 0, Math.PI * 2);
      ctx.fillStyle = "#ffd60a";
      ctx.fill();
    }
    ctx.restore();
  }
}

const round1 = (v) => Math.round(v * 10) / 10;
const clamp = (v, a, b) => Math.max(a, Math.min(b, v));
