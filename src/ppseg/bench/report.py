"""The results of :func:`ppseg.bench.run_benchmark` for people and files: the ``vs paddle`` ratios
(:func:`add_ratios`), the fixed-width text table (:func:`format_table`) and the ``--json`` document
(:func:`rows_to_json`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from .config import BenchConfig


def add_ratios(rows: list[dict[str, Any]]) -> None:
    """``vs_paddle`` = paddle median / row median for rows with a paddle row of the same setting."""
    key = lambda r: (r["model"], tuple(r["input_shape"]), r["output_op"], r["threads"])  # noqa: E731
    ref = {key(r): r["median_ms"] for r in rows if r.get("runtime") == "paddle" and r.get("median_ms")}
    for r in rows:
        if r.get("median_ms") and key(r) in ref:
            r["vs_paddle"] = ref[key(r)] / r["median_ms"]


def _fmt_params(n: int | None) -> str:
    if not n:
        return "-"
    return f"{n / 1e6:.2f}M" if n >= 1e5 else f"{n / 1e3:.1f}k"


def format_table(rows: Sequence[dict[str, Any]]) -> str:
    """A fixed-width text table of :func:`run_benchmark` rows."""
    cols = [("backend", "<"), ("model", "<"), ("input", "<"), ("op", "<"), ("thr", ">"), ("median ms", ">"),
            ("p90 ms", ">"), ("cpu ms", ">"), ("img/s", ">"), ("classes out", ">"), ("params", ">"), ("GFLOPs", ">"),
            ("peak MB", ">"), ("+MB", ">"), ("vs paddle", ">")]
    with_ratio = any(r.get("runtime") == "paddle" for r in rows)
    lines = []
    for r in rows:
        cells = [r["backend"], r["model"], "x".join(map(str, r["input_shape"])), r["output_op"], str(r["threads"])]
        if r.get("median_ms") is not None:
            cpu = r.get("cpu_median_ms")
            cells += [f"{r['median_ms']:.1f}", f"{r['p90_ms']:.1f}", f"{cpu:.1f}" if cpu is not None else "-",
                      f"{r['images_per_s']:.1f}", str(r.get("labels_present", "-")), _fmt_params(r.get("params")),
                      f"{r['gflops']:.2f}" if r.get("gflops") else "-",
                      f"{r['peak_rss_mb']:.0f}", f"{r['peak_delta_mb']:.0f}",
                      "ref" if r.get("runtime") == "paddle" else
                      (f"{r['vs_paddle']:.2f}x" if r.get("vs_paddle") else "")]
            lines.append(cells)
        else:
            why = f"n/a: {r['na']}" if r.get("na") else f"failed: {r.get('error')}"
            lines.append(cells + [why])
    if not with_ratio:
        cols = cols[:-1]
        lines = [ln[:-1] if len(ln) == len(cols) + 1 else ln for ln in lines]
    widths = [max([len(c[0])] + [len(ln[i]) for ln in lines if len(ln) == len(cols)]) for i, c in enumerate(cols)]
    fmt = lambda cells: " ".join(f"{c:{a}{w}}" for c, (_, a), w in zip(cells, cols, widths))  # noqa: E731
    out = [fmt([c[0] for c in cols]), "-" * (sum(widths) + len(widths) - 1)]
    for ln in lines:
        out.append(fmt(ln) if len(ln) == len(cols) else fmt(ln[:5]) + " " + ln[5])
    return "\n".join(out)


def rows_to_json(rows: Sequence[dict[str, Any]], cfg: BenchConfig) -> dict[str, Any]:
    """The JSON document ``ppseg bench --json`` writes."""
    c = asdict(cfg)
    c["calib_images"] = len(cfg.calib_images)
    c["images"] = list(cfg.images)
    c.pop("class_names", None)
    c.pop("palette", None)
    return {"config": c, "rows": [dict(r) for r in rows]}
