// Brush and eraser on the selected finished object: the stroke's points are collected in image
// pixels and sent as one POST /brush on mouse-up; the brush circle follows the cursor.

import { rgb } from "./dom.js";

export class BrushTool {
  constructor(app) {
    this.app = app;
    this.radius = 8; // image pixels
    this.erase = false;
    this.stroke = null; // [[x, y], ...] while drawing
    this.cursor = null;
  }

  setRadius(r) {
    this.radius = Math.max(1, Math.min(500, Math.round(r)));
  }

  onPointer(type, e, p, viewer) {
    if (type === "leave") {
      this.cursor = null;
      viewer.requestTop();
      return false;
    }
    this.cursor = p;
    if (type === "down") {
      if (e.button !== 0) return false;
      if (!this.app.selectedObject()) {
        this.app.say("select an object first (click it in the objects panel or Shift+click it), then brush");
        return true;
      }
      this.stroke = [[round1(p.x), round1(p.y)]];
      viewer.requestTop();
      return true;
    }
    if (type === "move") {
      if (this.stroke) {
        const last = this.stroke[this.stroke.length - 1];
        if (Math.hypot(p.x - last[0], p.y - last[1]) >= Math.max(0.5, this.radius / 4)) this.stroke.push([round1(p.x), round1(p.y)]);
      }
      viewer.requestTop();
      return true;
    }
    if (type === "up") {
      if (this.stroke) {
        const points = this.stroke;
        this.stroke = null;
        this.app.sendBrush([{ points, radius: this.radius, erase: this.erase }]);
      }
      return true;
    }
    return false;
  }

  draw(ctx, viewer) {
    const color = this.erase ? [40, 40, 40] : this.app.colorOfObject(this.app.selected);
    if (this.stroke) {
      ctx.save();
      ctx.globalAlpha = 0.6;
      ctx.strokeStyle = rgb(color);
      ctx.fillStyle = rgb(color);
      ctx.lineCap = "round";
      ctx.lineJoin = "round";
      ctx.lineWidth = 2 * this.radius * viewer.scale;
      ctx.beginPath();
      this.stroke.forEach(([x, y], i) => {
        const s = viewer.toScreen(x, y);
        if (i === 0) ctx.moveTo(s.x, s.y);
        else ctx.lineTo(s.x, s.y);
      });
      if (this.stroke.length === 1) {
        const s = viewer.toScreen(...this.stroke[0]);
        ctx.arc(s.x, s.y, this.radius * viewer.scale, 0, Math.PI * 2);
        ctx.fill();
      } else ctx.stroke();
      ctx.restore();
    }
    if (this.cursor) {
      const s = viewer.toScreen(this.cursor.x, this.cursor.y);
      ctx.save();
      ctx.beginPath();
      ctx.arc(s.x, s.y, Math.max(1, this.radius * viewer.scale), 0, Math.PI * 2);
      ctx.lineWidth = 1.5;
      ctx.strokeStyle = this.erase ? "#ff9f0a" : "#ffffff";
      ctx.setLineDash(this.erase ? [4, 3] : []);
      ctx.stroke();
      ctx.restore();
    }
  }
}

const round1 = (v) => Math.round(v * 10) / 10;
