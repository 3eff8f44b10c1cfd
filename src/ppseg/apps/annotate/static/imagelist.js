// The image list (left panel): one row per image with its status, and the done / total count.

import { h } from "./dom.js";

export function imageStatus(img) {
  if (img.error || img.status === "error") return "error";
  if (img.status === "done") return "done";
  if (img.status === "empty") return "empty";
  if (img.objects > 0) return "objects";
  return "new";
}

const STATUS_TEXT = { new: "not started", objects: "has objects", done: "done", empty: "empty (done)", error: "error" };

export class ImageList {
  constructor(el, countEl, onOpen) {
    this.el = el;
    this.countEl = countEl;
    this.onOpen = onOpen;
    this.images = [];
    this.rows = [];
    this.current = -1;
    this.filter = "";
  }

  setImages(images) {
    this.images = images;
    this.rows = images.map((img) => {
      const row = h(
        "li",
        { class: "image-row", "data-testid": `image-row-${img.index}`, title: img.key, onclick: () => this.onOpen(img.index) },
        h("span", { class: "status-dot" }),
        h("span", { class: "idx" }, String(img.index + 1)),
        h("span", { class: "name" }, img.key)
      );
      return row;
    });
    this.el.replaceChildren(...this.rows);
    images.forEach((img) => this.update(img.index));
    this.updateCount();
    this.applyFilter();
  }

  update(index, fields) {
    const img = this.images[index];
    if (!img) return;
    if (fields) Object.assign(img, fields);
    const row = this.rows[index];
    const st = imageStatus(img);
    row.dataset.status = st;
    row.querySelector(".status-dot").title = STATUS_TEXT[st] + (img.error ? `: ${img.error}` : "");
    row.classList.toggle("current", index === this.current);
    this.updateCount();
  }

  setCurrent(index) {
    const old = this.rows[this.current];
    if (old) old.classList.remove("current");
    this.current = index;
    const row = this.rows[index];
    if (row) {
      row.classList.add("current");
      row.scrollIntoView({ block: "nearest" });
    }
  }

  updateCount() {
    const done = this.images.filter((i) => i.status === "done" || i.status === "empty").length;
    this.countEl.textContent = `${done} / ${this.images.length}`;
    this.countEl.title = `${done} of ${this.images.length} images done`;
  }

  applyFilter(text = this.filter) {
    this.filter = text.toLowerCase();
    this.rows.forEach((row, i) => {
      row.hidden = this.filter !== "" && !this.images[i].key.toLowerCase().includes(this.filter);
    });
  }
}
