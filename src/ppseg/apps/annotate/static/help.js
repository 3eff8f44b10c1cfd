// The help overlay, generated from the shortcut table (shortcuts.js) so it cannot drift.

import { displaySpec } from "./shortcuts.js";

export function buildHelp(el, table) {
  const groups = new Map();
  for (const entry of table) {
    if (!groups.has(entry.group)) groups.set(entry.group, []);
    groups.get(entry.group).push(entry);
  }
  const box = document.createElement("div");
  box.className = "help-box";
  const title = document.createElement("h2");
  title.textContent = "Keyboard and mouse";
  box.appendChild(title);
  const cols = document.createElement("div");
  cols.className = "help-cols";
  for (const [group, entries] of groups) {
    const sec = document.createElement("section");
    const h = document.createElement("h3");
    h.textContent = group;
    sec.appendChild(h);
    const tbl = document.createElement("table");
    for (const entry of entries) {
      const tr = document.createElement("tr");
      tr.dataset.testid = "help-row";
      const k = document.createElement("td");
      k.className = "keys";
      const specs = entry.keys.length === 9 && entry.keys[0] === "1" ? ["1 … 9"] : entry.keys;
      specs.forEach((spec, i) => {
        if (i) k.append(" ");
        const kbd = document.createElement("kbd");
        kbd.textContent = entry.mouse || spec === "1 … 9" ? spec : displaySpec(spec);
        k.appendChild(kbd);
      });
      const d = document.createElement("td");
      d.textContent = entry.label;
      tr.append(k, d);
      tbl.appendChild(tr);
    }
    sec.appendChild(tbl);
    cols.appendChild(sec);
  }
  box.appendChild(cols);
  const foot = document.createElement("p");
  foot.className = "help-foot";
  foot.textContent = "Press ? or Esc to close. Every change is saved on the server as you go.";
  box.appendChild(foot);
  el.replaceChildren(box);
  el.addEventListener("click", (e) => {
    if (e.target === el) el.hidden = true;
  });
}
