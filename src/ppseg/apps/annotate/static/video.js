// Video projects: a frame scrubber and "propagate" (forward / backward from this frame), run as a
// server job that is polled for progress; statuses and objects are refreshed when it ends.

import { get, post, showMessage } from "./api.js";

export class VideoBar {
  constructor(el, app) {
    this.el = el;
    this.app = app;
    this.slider = el.querySelector("[data-testid=frame-slider]");
    this.label = el.querySelector("[data-testid=frame-label]");
    this.progress = el.querySelector("[data-testid=propagate-progress]");
    this.job = null;
    let timer = null;
    this.slider.addEventListener("input", () => {
      this.label.textContent = `frame ${Number(this.slider.value) + 1} / ${this.app.images.length}`;
      clearTimeout(timer);
      timer = setTimeout(() => this.app.goTo(Number(this.slider.value)), 60);
    });
    el.querySelector("[data-testid=propagate-forward]").addEventListener("click", () => this.propagate("forward"));
    el.querySelector("[data-testid=propagate-backward]").addEventListener("click", () => this.propagate("backward"));
  }

  show(isVideo) {
    this.el.hidden = !isVideo;
  }

  update() {
    const n = this.app.images.length;
    this.slider.max = String(Math.max(0, n - 1));
    this.slider.value = String(this.app.index);
    this.label.textContent = `frame ${this.app.index + 1} / ${n}`;
  }

  async propagate(direction) {
    if (this.job) return showMessage("a propagation is already running", "info");
    const from = this.app.index;
    let r;
    try {
      r = await post("/api/propagate", { from, direction });
    } catch (_) {
      return;
    }
    this.job = r.job;
    this.progress.hidden = false;
    this.progress.value = 0;
    this.el.classList.add("busy");
    const poll = async () => {
      let j;
      try {
        j = await get(`/api/jobs/${encodeURIComponent(this.job)}`);
      } catch (_) {
        return this.finish();
      }
      this.progress.max = Math.max(1, j.total || 1);
      this.progress.value = j.done || 0;
      this.progress.title = `${j.done || 0} / ${j.total || "?"} frames`;
      if (j.state === "running") {
        setTimeout(poll, 250);
        return;
      }
      if (j.state === "failed") showMessage(`propagation failed: ${j.error || "unknown error"}`);
      else showMessage(`propagated ${direction} over ${(j.frames || []).length} frames`, "info");
      await this.app.refreshImages();
      await this.app.reloadImage();
      this.finish();
    };
    setTimeout(poll, 150);
  }

  finish() {
    this.job = null;
    this.el.classList.remove("busy");
    setTimeout(() => (this.progress.hidden = true), 800);
  }
}
