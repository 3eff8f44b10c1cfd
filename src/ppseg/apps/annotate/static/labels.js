// The label panel: labels with colour swatches; select (keys 1..9), add, rename, recolour,
// delete; import a labels.txt and export one. Every change sends the whole new list.

import { h, hex, fromHex, defaultColor } from "./dom.js";
import { put, post, download, showMessage } from "./api.js";

export class LabelsPanel {
  constructor(el, app) {
    this.el = el;
    this.app = app;
  }

  async save(labels) {
    try {
      const r = await put("/api/labels", { labels });
      this.app.setLabels(r.labels);
      return true;
    } catch (_) {
      this.render(); // put the old values back
      return false;
    }
  }

  add() {
    const labels = this.app.labels;
    const used = new Set(labels.map((l) => l.id));
    let id = 1;
    while (used.has(id)) id++;
    if (id > 255) return showMessage("255 labels is the most a label map holds");
    const names = new Set(labels.map((l) => l.name));
    let name = `label${id}`;
    for (let k = 2; names.has(name); k++) name = `label${id}_${k}`;
    this.save([...labels, { id, name, color: defaultColor(id) }]).then((ok) => {
      if (ok) {
        this.app.selectLabel(id);
        const input = this.el.querySelector(`[data-testid=label-name-${id}]`);
        if (input) {
          input.focus();
          input.select();
        }
      }
    });
  }

  change(id, fields) {
    this.save(this.app.labels.map((l) => (l.id === id ? { ...l, ...fields } : l)));
  }

  remove(id) {
    this.save(this.app.labels.filter((l) => l.id !== id));
  }

  async importFile(file) {
    const text = await file.text();
    try {
      const r = await post("/api/labels/import", text, { text: true });
      this.app.setLabels(r.labels);
      showMessage(`imported ${r.labels.length} labels from ${file.name}`, "info");
    } catch (_) {
      /* shown */
    }
  }

  exportFile() {
    download("/api/labels/export", "labels.txt").catch(() => {});
  }

  render() {
    const app = this.app;
    const rows = app.labels.map((l, i) =>
      h(
        "li",
        {
          class: "label-row" + (l.id === app.currentLabel ? " selected" : ""),
          "data-testid": `label-row-${l.id}`,
          onclick: () => app.selectLabel(l.id),
        },
        h("span", { class: "key-hint", title: i < 9 ? `key ${i + 1}` : "" }, i < 9 ? String(i + 1) : ""),
        h("input", {
          type: "color",
          class: "color",
          value: hex(l.color),
          title: "Colour",
          "data-testid": `label-color-${l.id}`,
          onclick: (e) => e.stopPropagation(),
          onchange: (e) => this.change(l.id, { color: fromHex(e.target.value) }),
        }),
        h("input", {
          type: "text",
          class: "name",
          value: l.name,
          spellcheck: false,
          title: "Name (Enter to rename)",
          "data-testid": `label-name-${l.id}`,
          onclick: (e) => e.stopPropagation(),
          onkeydown: (e) => {
            if (e.key === "Enter") e.target.blur();
          },
          onchange: (e) => {
            const name = e.target.value.trim();
            if (name && name !== l.name) this.change(l.id, { name });
            else e.target.value = l.name;
          },
        }),
        h("span", { class: "label-id", title: "label id (the value in exported label maps)" }, `id ${l.id}`),
        h(
          "button",
          {
            class: "icon",
            title: "Delete label",
            "data-testid": `label-delete-${l.id}`,
            onclick: (e) => {
              e.stopPropagation();
              this.remove(l.id);
            },
          },
          "✕"
        )
      )
    );
    if (!rows.length) rows.push(h("li", { class: "empty-note" }, "No labels: add one (+) or import labels.txt."));
    this.el.replaceChildren(...rows);
  }
}
