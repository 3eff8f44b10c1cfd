// A tiny element builder: h("button", {class: "x", "data-testid": "y", onclick}, "text", child).

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else if (k === "style" && typeof v === "object") Object.assign(el.style, v);
    else if (k in el && typeof v !== "string") el[k] = v;
    else if (k === "value" || k === "checked" || k === "disabled" || k === "selected") el[k] = v;
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : String(c));
  }
  return el;
}

export const rgb = (c) => `rgb(${c[0]}, ${c[1]}, ${c[2]})`;
export const hex = (c) => "#" + c.map((v) => v.toString(16).padStart(2, "0")).join("");
export const fromHex = (s) => [1, 3, 5].map((i) => parseInt(s.slice(i, i + 2), 16));

/** PaddleSeg's pseudo-colour palette (bit-interleaved) for a label id. */
export function defaultColor(id) {
  let r = 0, g = 0, b = 0, c = id;
  for (let j = 0; j < 8; j++) {
    r |= ((c >> 0) & 1) << (7 - j);
    g |= ((c >> 1) & 1) << (7 - j);
    b |= ((c >> 2) & 1) << (7 - j);
    c >>= 3;
  }
  return [r, g, b];
}
