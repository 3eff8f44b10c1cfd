"""The NoC benchmark: how many clicks a predictor needs to reach 85 % / 90 % IoU (RITM protocol).

For every object of a dataset (:mod:`ppseg.interactive.datasets`): a fresh session on its image,
then up to ``max_clicks`` clicks of the simulated user (:class:`~ppseg.interactive.clicker.Clicker`,
each placed from the previous prediction ``prob > threshold``), the IoU after each click
(ignore pixels left out), stopping once the IoU reaches 0.90 (the highest NoC threshold) after at
least one click, exactly as RITM's ``evaluate_sample`` does.

Per object: NoC@85 / NoC@90 = the first (1-based) click whose IoU reaches 0.85 / 0.90, or
``max_clicks`` when none does. Over the dataset: the means of those, NoF@90 (objects that never
reach 0.90 within ``max_clicks``), the mean IoU after 1, 3, 5 clicks and the mean IoU curve (an
object that stopped early keeps its last IoU for the later clicks), and the wall-clock latency
of the ``session.click`` calls. RITM's own "over max" count (NoC@90 equal to ``max_clicks``,
which also counts an object that reaches 0.90 exactly at the last click) is reported as
``over_max90``.

:class:`NocResults` gives the JSON report (:meth:`~NocResults.to_dict` / :meth:`~NocResults.to_json`),
a text table (:meth:`~NocResults.table`) and the IoU-vs-clicks figure (:meth:`~NocResults.plot`).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ppseg.errors import ConfigError, PPSegError

from .clicker import Clicker, iou

__all__ = ["NOC_THRESHOLDS", "MIOU_AT", "PLOT_FORMATS", "plot_format", "ObjectResult", "NocResults", "noc_of", "evaluate_object", "evaluate_noc"]

#: the IoU levels of NoC@85 and NoC@90; the loop stops at the highest
NOC_THRESHOLDS: tuple[float, float] = (0.85, 0.90)
#: the click counts of the mIoU@k columns
MIOU_AT: tuple[int, ...] = (1, 3, 5)
#: the figure formats :meth:`NocResults.plot` writes (from the file suffix; none: png)
PLOT_FORMATS: tuple[str, ...] = ("png", "svg", "pdf", "jpg", "jpeg")


def plot_format(path: str | Path, what: str = "plot path") -> str:
    """The figure format of ``path``'s suffix (``png`` without one); :class:`ConfigError` for others."""
    suffix = Path(path).suffix.lower().lstrip(".")
    if not suffix:
        return "png"
    if suffix not in PLOT_FORMATS:
        raise ConfigError(f"{what} {path}: cannot draw a '.{suffix}' figure; use "
                          + ", ".join(f".{f}" for f in PLOT_FORMATS))
    return suffix


def noc_of(ious: "list[float] | np.ndarray", iou_thr: float, max_clicks: int) -> int:
    """The first (1-based) click whose IoU is at least ``iou_thr``, else ``max_clicks`` (RITM)."""
    for i, v in enumerate(ious):
        if v >= iou_thr:
            return i + 1
    return max_clicks


def _pad(ious: list[float], n: int) -> list[float]:
    if not ious:
        return [0.0] * n
    return list(ious[:n]) + [ious[-1]] * max(0, n - len(ious))


def _percent(t: float) -> str:
    return f"{round(t * 100):d}"


@dataclass
class ObjectResult:
    """One object's run: the IoU after each click (as many as were made) and the clicks."""

    name: str
    ious: list[float]
    clicks: list[tuple[int, int, bool]]
    latency_ms: list[float]
    """wall-clock time of each ``session.click`` call."""
    max_clicks: int = 20
    session_ms: float = 0.0
    """time of ``predictor.session(image)``."""

    def noc(self, iou_thr: float) -> int:
        return noc_of(self.ious, iou_thr, self.max_clicks)

    def reached(self, iou_thr: float) -> bool:
        return any(v >= iou_thr for v in self.ious)

    def curve(self, n: int | None = None) -> list[float]:
        """The IoU after clicks 1..``n`` (default ``max_clicks``), the last value repeated after a stop."""
        return _pad(self.ious, self.max_clicks if n is None else n)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name}
        for t in NOC_THRESHOLDS:
            out[f"noc{_percent(t)}"] = self.noc(t)
        out["reached90"] = self.reached(0.90)
        out["ious"] = [round(float(v), 6) for v in self.ious]
        out["clicks"] = [[int(y), int(x), bool(p)] for y, x, p in self.clicks]
        out["latency_ms"] = [round(float(v), 3) for v in self.latency_ms]
        out["session_ms"] = round(float(self.session_ms), 3)
        return out


@dataclass
class NocResults:
    """The benchmark over a dataset; ``objects`` holds the per-object runs."""

    objects: list[ObjectResult]
    max_clicks: int = 20
    threshold: float = 0.49
    model: str = ""
    dataset: dict[str, Any] | str = ""
    seconds: float = 0.0
    """wall-clock time of the whole run."""
    extra: dict[str, Any] = field(default_factory=dict)

    # ------------------------------------------------------------------ scores
    @property
    def num_objects(self) -> int:
        return len(self.objects)

    def noc(self, iou_thr: float) -> float:
        """Mean NoC at ``iou_thr`` (``nan`` without objects)."""
        if not self.objects:
            return math.nan
        return float(np.mean([o.noc(iou_thr) for o in self.objects]))

    @property
    def noc85(self) -> float:
        return self.noc(0.85)

    @property
    def noc90(self) -> float:
        return self.noc(0.90)

    @property
    def nof90(self) -> int:
        """Objects that never reach IoU 0.90 within ``max_clicks``."""
        return sum(not o.reached(0.90) for o in self.objects)

    @property
    def over_max90(self) -> int:
        """RITM's count: objects with NoC@90 equal to ``max_clicks``."""
        return sum(o.noc(0.90) == self.max_clicks for o in self.objects)

    def miou_curve(self) -> list[float]:
        """Mean IoU after clicks 1..``max_clicks`` (each object's curve padded with its last IoU)."""
        if not self.objects:
            return []
        return [float(v) for v in np.mean([o.curve(self.max_clicks) for o in self.objects], axis=0)]

    def miou_at(self, k: int) -> float:
        """Mean IoU after ``k`` clicks."""
        if not self.objects or not 1 <= k <= self.max_clicks:
            return math.nan
        return self.miou_curve()[k - 1]

    def reached_curve(self, iou_thr: float) -> list[float]:
        """Fraction of objects at IoU >= ``iou_thr`` after clicks 1..``max_clicks``."""
        if not self.objects:
            return []
        return [float(v) for v in np.mean([[v >= iou_thr for v in o.curve(self.max_clicks)] for o in self.objects],
                                          axis=0)]

    def latency(self) -> dict[str, float | int]:
        """Median and mean wall-clock milliseconds per ``session.click`` call, and how many calls."""
        times = [t for o in self.objects for t in o.latency_ms]
        if not times:
            return {"median": math.nan, "mean": math.nan, "clicks": 0}
        return {"median": float(np.median(times)), "mean": float(np.mean(times)), "clicks": len(times)}

    # ------------------------------------------------------------------ reports
    def to_dict(self, *, per_object: bool = True) -> dict[str, Any]:
        """The JSON report (``nan`` becomes ``None``)."""
        lat = self.latency()
        session = [o.session_ms for o in self.objects]
        out: dict[str, Any] = {
            "model": self.model,
            "dataset": self.dataset,
            "num_objects": self.num_objects,
            "max_clicks": self.max_clicks,
            "threshold": self.threshold,
            "noc85": self.noc85,
            "noc90": self.noc90,
            "nof90": self.nof90,
            "over_max90": self.over_max90,
            "miou_at": {str(k): self.miou_at(k) for k in MIOU_AT if k <= self.max_clicks},
            "miou_curve": self.miou_curve(),
            "latency_ms": {"median": lat["median"], "mean": lat["mean"], "clicks": lat["clicks"],
                           "session_mean": float(np.mean(session)) if session else math.nan},
            "seconds": self.seconds,
            **self.extra,
        }
        if per_object:
            out["objects"] = [o.to_dict() for o in self.objects]
        return _no_nan(out)

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, allow_nan=False)

    def table(self) -> str:
        """The scores as a small text table."""
        lat = self.latency()
        ks = [k for k in MIOU_AT if k <= self.max_clicks]
        head = ["NoC@85", "NoC@90", "NoF@90"] + [f"mIoU@{k}" for k in ks] + ["ms/click", "objects"]

        def num(v: float, fmt: str) -> str:
            return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, fmt)

        row = [num(self.noc85, ".2f"), num(self.noc90, ".2f"), str(self.nof90)]
        row += [num(self.miou_at(k), ".4f") for k in ks]
        row += [num(lat["median"], ".1f"), str(self.num_objects)]
        widths = [max(len(h), len(c)) for h, c in zip(head, row)]
        lines = ["  ".join(h.rjust(w) for h, w in zip(head, widths)),
                 "  ".join(c.rjust(w) for c, w in zip(row, widths))]
        foot = (f"max clicks {self.max_clicks}, prob > {self.threshold:g}; latency median {num(lat['median'], '.1f')} "
                f"ms, mean {num(lat['mean'], '.1f')} ms over {lat['clicks']} clicks")
        return "\n".join(lines + [foot])

    def plot(self, path: str | Path) -> None:
        """Draw the mean IoU and the share of objects at 85 % / 90 % against the number of clicks
        into ``path`` (PNG, or the format of its suffix), written atomically."""
        fmt = plot_format(path)
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.ticker import MaxNLocator

        from ppseg.fileio import atomic_open

        x = np.arange(1, self.max_clicks + 1)
        fig, axes = plt.subplots(1, 2, figsize=(11, 4))
        try:
            if self.objects:
                axes[0].plot(x, self.miou_curve(), marker="o", markersize=3)
                for t in NOC_THRESHOLDS:
                    axes[1].plot(x, [100 * v for v in self.reached_curve(t)], marker="o", markersize=3,
                                 label=f"IoU >= {_percent(t)} % (NoC {self.noc(t):.2f})")
                axes[1].legend(loc="lower right")
            for t, style in zip(NOC_THRESHOLDS, ("--", ":")):
                axes[0].axhline(t, color="gray", linestyle=style, linewidth=1)
            axes[0].set_ylabel("mean IoU")
            axes[0].set_ylim(0.0, 1.0)
            axes[0].set_title(f"mean IoU ({self.num_objects} objects, mIoU@5 {self.miou_at(5):.3f})"
                              if self.objects and self.max_clicks >= 5 else f"mean IoU ({self.num_objects} objects)")
            axes[1].set_ylabel("objects (%)")
            axes[1].set_ylim(0, 100)
            axes[1].set_title("objects segmented")
            for ax in axes:
                ax.set_xlabel("clicks")
                ax.set_xlim(1, max(2, self.max_clicks))
                ax.xaxis.set_major_locator(MaxNLocator(integer=True))
                ax.grid(alpha=0.3)
            if self.model:
                fig.suptitle(self.model if len(self.model) <= 120 else self.model[:117] + "...", fontsize=9)
            fig.tight_layout()
            with atomic_open(path, fsync=False) as fh:
                fig.savefig(fh, format=fmt, dpi=80)
        finally:
            plt.close(fig)


def _no_nan(value: Any) -> Any:
    if isinstance(value, float):
        return None if math.isnan(value) or math.isinf(value) else value
    if isinstance(value, dict):
        return {k: _no_nan(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_no_nan(v) for v in value]
    return value


def _check_options(max_clicks: int, threshold: float) -> None:
    if isinstance(max_clicks, bool) or not isinstance(max_clicks, (int, np.integer)) or not 1 <= max_clicks <= 1000:
        raise ConfigError(f"max_clicks must be a whole number in [1, 1000], got {max_clicks!r}")
    if (isinstance(threshold, bool) or not isinstance(threshold, (int, float, np.floating))
            or not 0.0 <= float(threshold) < 1.0):
        raise ConfigError(f"threshold must be a number in [0, 1), got {threshold!r}")


def evaluate_object(predictor, image: np.ndarray, gt: np.ndarray, ignore: np.ndarray | None = None, *,
                    name: str = "", max_clicks: int = 20, threshold: float = 0.49) -> ObjectResult:
    """Run the simulated user on one object (module docstring); returns its :class:`ObjectResult`."""
    _check_options(max_clicks, threshold)
    stop_at = max(NOC_THRESHOLDS)
    clicker = Clicker(gt, ignore)
    t0 = time.perf_counter()
    session = predictor.session(image)
    session_ms = (time.perf_counter() - t0) * 1e3
    pred = np.zeros(clicker.shape, dtype=bool)
    ious: list[float] = []
    latency: list[float] = []
    for _ in range(max_clicks):
        c = clicker.make_next_click(pred)
        t0 = time.perf_counter()
        prob = session.click(c.y, c.x, positive=c.positive)
        latency.append((time.perf_counter() - t0) * 1e3)
        prob = np.asarray(prob)
        if prob.shape != clicker.shape:
            raise PPSegError(f"{name or 'object'}: the model returned a {prob.shape} map for a "
                             f"{clicker.shape[1]}x{clicker.shape[0]} image (expected H x W = {clicker.shape})")
        pred = prob > threshold
        ious.append(iou(clicker.gt, pred, clicker.ignore))
        if ious[-1] >= stop_at:
            break
    return ObjectResult(name, ious, [(c.y, c.x, c.positive) for c in clicker.clicks], latency,
                        max_clicks=max_clicks, session_ms=session_ms)


def evaluate_noc(
    dataset: Iterable,
    predictor,
    *,
    max_clicks: int = 20,
    threshold: float = 0.49,
    model: str = "",
    dataset_info: dict[str, Any] | str | None = None,
    progress: bool = False,
    callback: Callable[[ObjectResult], None] | None = None,
) -> NocResults:
    """The NoC benchmark of ``predictor`` over ``dataset``.

    Args:
        dataset: ``(name, image, gt, ignore)`` tuples (a :class:`~ppseg.interactive.datasets.ClickDataset`).
        predictor: has ``session(image)``; sessions have ``click(y, x, positive) -> H x W prob``.
        max_clicks: clicks per object at most (RITM: 20).
        threshold: a pixel is foreground when its probability is above this (RITM: 0.49).
        model, dataset_info: descriptions for the report (``dataset_info`` default:
            ``dataset.to_dict()`` when it has one).
        progress: a tqdm bar on stderr (objects, running NoC@90).
        callback: called with each object's result as it is done.
    """
    _check_options(max_clicks, threshold)
    if dataset_info is None:
        dataset_info = dataset.to_dict() if hasattr(dataset, "to_dict") else ""
    results: list[ObjectResult] = []
    bar = None
    items: Iterable = dataset
    if progress:
        try:
            from tqdm import tqdm
        except ImportError:  # pragma: no cover - tqdm comes with the 'train' extra
            tqdm = None
        if tqdm is not None:
            total = len(dataset) if hasattr(dataset, "__len__") else None  # type: ignore[arg-type]
            bar = tqdm(total=total, desc="click-eval", unit="obj", dynamic_ncols=True)
    start = time.perf_counter()
    noc90_sum = 0
    try:
        for name, image, gt, ignore in items:
            res = evaluate_object(predictor, image, gt, ignore, name=str(name), max_clicks=max_clicks,
                                  threshold=threshold)
            results.append(res)
            if callback is not None:
                callback(res)
            noc90_sum += res.noc(0.90)
            if bar is not None:
                bar.set_postfix(noc90=f"{noc90_sum / len(results):.2f}", refresh=False)
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    return NocResults(results, max_clicks=max_clicks, threshold=float(threshold), model=model,
                      dataset=dataset_info, seconds=time.perf_counter() - start)
