// The objects panel: the image's finished objects, topmost first (like layers), each with its
// label colour, a label dropdown, raise / lower in paint order, correct with clicks, edit polygon
// and delete. The object being corrected with clicks (refine) is marked "correcting".

import { h, rgb } from "./dom.js";
import { area } from "./masks.js";

export class ObjectsPanel {
  constructor(el, app) {
    this.el = el;
    this.app = app;
  }

  render() {
    const app = this.app;
    const objs = (app.image && app.image.objects) || [];
    if (!objs.length) {
      this.el.replaceChildren(h("li", { class: "empty-note" }, "No objects yet: click on the image, then Space."));
      return;
    }
    const n = objs.length;
    const editing = app.editingId();
    const rows = [];
    for (let pos = n - 1; pos >= 0; pos--) {
      const obj = objs[pos];
      const lab = app.labelById(obj.label);
      const select = h(
        "select",
        {
          "data-testid": `object-label-${obj.id}`,
          title: "Label",
          onclick: (e) => e.stopPropagation(),
          onchange: (e) => {
            app.relabel(obj.id, Number(e.target.value));
            e.target.blur();
          },
        },
        app.labels.map((l) => h("option", { value: String(l.id), selected: l.id === obj.label }, l.name)),
        lab ? null : h("option", { value: String(obj.label), selected: true }, `${obj.label} (deleted)`)
      );
      const btn = (text, title, testid, fn, disabled = false, cls = "icon") =>
        h("button", { class: cls, title, "data-testid": testid, disabled, onclick: (e) => { e.stopPropagation(); fn(); } }, text);
      const fixing = obj.id === editing;
      rows.push(
        h(
          "li",
          {
            class: "object-row" + (obj.id === app.selected ? " selected" : "") + (fixing ? " editing" : ""),
            title: fixing ? "Being corrected with clicks: Space applies, Esc cancels" : null,
            "data-testid": `object-row-${obj.id}`,
            "data-id": String(obj.id),
            onclick: () => app.select(obj.id),
          },
          h("span", { class: "swatch", style: { background: rgb(app.colorOf(obj.label)) } }),
          h("span", { class: "obj-id", title: `${obj.source || "manual"}${obj.track != null ? ", track " + obj.track : ""}` }, `#${obj.id}`, obj.source === "propagated" ? h("sup", { class: "prop", title: "propagated" }, "p") : null),
          select,
          fixing
            ? h("span", { class: "obj-editing", "data-testid": `object-editing-${obj.id}`, title: "being corrected with clicks" }, "fixing")
            : h("span", { class: "obj-area", title: "area in pixels" }, formatArea(area(obj))),
          btn("▲", "Raise (paint over the objects above)", `object-up-${obj.id}`, () => app.reorder(obj.id, pos + 1), pos === n - 1),
          btn("▼", "Lower", `object-down-${obj.id}`, () => app.reorder(obj.id, pos - 1), pos === 0),
          btn("◎", fixing ? "Being corrected: click on the image to fix it, Space applies, Esc cancels"
                         : "Correct with clicks (R): refine this object's mask with positive / negative clicks, Space applies",
              `object-refine-${obj.id}`, () => app.startRefine(obj.id), false, fixing ? "icon on" : "icon"),
          btn("✎", "Edit polygon (E)", `object-polygon-${obj.id}`, () => { app.select(obj.id); app.startPolygon(); }),
          btn("✕", "Delete (Del)", `object-delete-${obj.id}`, () => app.deleteObject(obj.id))
        )
      );
    }
    this.el.replaceChildren(...rows);
  }
}

function formatArea(a) {
  if (a >= 1e6) return (a / 1e6).toFixed(1) + "M";
  if (a >= 1e4) return (a / 1e3).toFixed(0) + "k";
  return String(a);
}
