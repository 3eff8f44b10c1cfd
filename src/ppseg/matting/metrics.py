"""Matting metrics SAD, MSE, Grad and Conn, as PaddleSeg's Matting evaluation computes them.

Definitions follow PaddleSeg's ``Matting/ppmatting/metrics/metric.py`` called the way its
``core/val.py`` calls it, including its float32 steps; ``tests/test_matting_metrics.py``
compares every function with values made by that code (to 1e-9 relative). Per image:

* **Inputs.** ``pred`` and ``gt`` are 2-D arrays of the same shape, either ``uint8`` in 0-255
  or floating point in [0, 1]. A float ``pred`` (a model's alpha) is cast to float32 and becomes
  ``np.round(pred * 255)``, as PaddleSeg rounds its float32 output; a uint8 ``pred`` is taken
  as those integers. A float ``gt`` becomes ``gt * 255`` in float64, not rounded (PaddleSeg's
  ``alpha / 255. * 255``, exactly the integers again for a uint8 alpha divided by 255.).
  ``trimap`` is ``None`` or a 2-D array of the same shape holding only 0, 128 and 255.
* **Trimap.** Where the trimap is 0 the prediction is set to 0, where it is 255 to 255; only
  the unknown pixels (``trimap == 128``) are counted. Without a trimap nothing is forced and
  every pixel counts (PaddleSeg's ``trimap = 128`` everywhere): the whole-image mode.
* **SAD** ``= sum_mask |pred/255 - gt/255| / 1000``; ``pred/255`` is computed in float32 (the
  prediction is a float32 array in PaddleSeg), ``gt/255`` and the sum in float64.
* **MSE** ``= sum_mask (pred/255 - gt/255)^2 / #mask``, 0 when no pixel is unknown.
* **Grad** (``sigma`` 1.4): ``pred`` and ``gt`` are min-max normalised to [0, 1] separately
  (a constant image becomes 0), filtered with the first-order Gaussian-derivative kernels
  (half size ``ceil(sigma * sqrt(-2 ln(sqrt(2 pi) sigma 0.01)))``, ``kx[i, j] = g(i - half) *
  g'(j - half)``, ``kx /= ||kx||_2``, ``ky = kx^T``; correlation with replicated borders); the
  gradient magnitudes are rounded to float32 and ``sum_mask (|grad gt| - |grad pred|)^2``
  is accumulated in float32, then divided by 1000 (in float64).
* **Conn** (``step`` 0.1): ``pred/255`` and ``gt/255`` in float32; for each threshold
  ``t_k`` of ``np.arange(0, 1 + step, step)`` after the first, the largest 4-connected
  component of ``(gt >= t_k) & (pred >= t_k)`` (comparisons in float32; on equal sizes the
  component OpenCV labels first) keeps its pixels, every other pixel not yet assigned gets
  ``t_{k-1}``; pixels never assigned get 1. ``phi = 1 - d * (d >= 0.15)`` with ``d = alpha -
  level``; Conn ``= sum_mask |phi_gt - phi_pred| / 1000`` (sum in float32, division in
  float64).

Where the fact sheet and the code differ, the code is followed: the float32 steps above are not
in the fact sheet. PaddleSeg run under numpy 2 ends Grad and Conn in float32 (NEP 50 keeps
``float32 / 1000`` in float32, < 1e-7 relative); these functions keep numpy 1's float64 division,
the environment PaddleSeg (paddle 2.6) runs in. PaddleSeg notes that its Grad differs slightly
(< 0.1 %) and its Conn by about 5 % from the official MATLAB evaluation code.

:class:`MattingMetrics` accumulates over images and reports means, as PaddleSeg's ``evaluate``
does (0 for no image). Input errors are raised as :class:`~ppseg.errors.ConfigError` naming
the argument.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import cv2
import numpy as np

from ppseg.errors import ConfigError

METRIC_NAMES = ("sad", "mse", "grad", "conn")
REGIONS = ("trimap", "image")
Region = Literal["trimap", "image"]
DEFAULT_SIGMA = 1.4
DEFAULT_STEP = 0.1
_TRIMAP_VALUES = (0, 128, 255)


# ----------------------------------------------------------------------------- input checks


def _as_alpha(x: Any, name: str) -> np.ndarray:
    """Validate a 2-D alpha array (uint8 0-255 or float in [0, 1]) and return it unchanged."""
    if not isinstance(x, np.ndarray):
        raise ConfigError(f"{name} must be a numpy array, got {type(x).__name__}")
    if x.ndim != 2:
        raise ConfigError(f"{name} must be a 2-D array [H, W], got shape {tuple(x.shape)}")
    if x.size == 0:
        raise ConfigError(f"{name} must not be empty, got shape {tuple(x.shape)}")
    if x.dtype == np.uint8:
        return x
    if not np.issubdtype(x.dtype, np.floating):
        raise ConfigError(f"{name} must be uint8 (0-255) or floating point (0-1), got dtype {x.dtype}")
    if not np.isfinite(x).all():
        raise ConfigError(f"{name} must be finite, got NaN or infinity")
    lo, hi = float(x.min()), float(x.max())
    if lo < 0.0 or hi > 1.0:
        raise ConfigError(f"{name} as floating point must lie in [0, 1], got values in [{lo:g}, {hi:g}]"
                          " (pass uint8 for 0-255)")
    return x


def _prepare(pred: Any, gt: Any, trimap: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(pred float32 0-255 forced by the trimap, gt float64 0-255, mask of counted pixels)``."""
    pred = _as_alpha(pred, "pred")
    gt = _as_alpha(gt, "gt")
    if pred.shape != gt.shape:
        raise ConfigError(f"pred and gt must have the same shape, got {tuple(pred.shape)} and {tuple(gt.shape)}")
    if pred.dtype == np.uint8:
        p = pred.astype(np.float32)
    else:
        p = np.round(pred.astype(np.float32) * np.float32(255))
    g = gt.astype(np.float64) if gt.dtype == np.uint8 else gt.astype(np.float64) * 255
    if trimap is None:
        return p, g, np.ones(p.shape, bool)
    if not isinstance(trimap, np.ndarray):
        raise ConfigError(f"trimap must be None or a numpy array, got {type(trimap).__name__}")
    if trimap.shape != pred.shape:
        raise ConfigError(f"trimap must have the shape of pred and gt {tuple(pred.shape)}, got {tuple(trimap.shape)}")
    if not (np.issubdtype(trimap.dtype, np.integer) or np.issubdtype(trimap.dtype, np.floating)):
        raise ConfigError(f"trimap must hold the numbers 0, 128 and 255, got dtype {trimap.dtype}")
    bad = ~np.isin(trimap, _TRIMAP_VALUES)
    if bad.any():
        found = np.unique(trimap[bad])[:5].tolist()
        raise ConfigError(f"trimap must hold only 0, 128 and 255, got also {found}")
    p[trimap == 0] = 0
    p[trimap == 255] = 255
    return p, g, trimap == 128


def _check_positive(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not math.isfinite(float(value)) or float(value) <= 0:
        raise ConfigError(f"{name} must be a positive number, got {value!r}")
    return float(value)


# ----------------------------------------------------------------------------- the metrics on prepared arrays


def _sad(p: np.ndarray, g: np.ndarray, mask: np.ndarray) -> float:
    diff = (p / np.float32(255) - g / 255.0) * mask
    return float(np.abs(diff).sum()) / 1000


def _mse(p: np.ndarray, g: np.ndarray, mask: np.ndarray) -> float:
    pixels = float(mask.sum())
    if pixels == 0:
        return 0.0
    diff = (p / np.float32(255) - g / 255.0) * mask
    return float((diff**2).sum()) / pixels


def gaussian_derivative_filters(sigma: float = DEFAULT_SIGMA, epsilon: float = 1e-2) -> tuple[np.ndarray, np.ndarray]:
    """The Grad kernels ``(kx, ky)``: ``kx[i, j] = g(i - half) g'(j - half)``, unit L2 norm, ``ky = kx.T``."""
    sigma = _check_positive(sigma, "sigma")
    half = np.ceil(sigma * np.sqrt(-2 * np.log(np.sqrt(2 * np.pi) * sigma * epsilon)))
    x = np.arange(int(2 * half + 1), dtype=np.float64) - half
    g = np.exp(-(x**2) / (2 * sigma**2)) / (sigma * np.sqrt(2 * np.pi))
    dg = -x * g / sigma**2
    kx = g[:, None] * dg[None, :]
    kx = kx / np.sqrt((kx**2).sum())
    return kx, np.transpose(kx)


def _gradient_magnitude(img: np.ndarray, kx: np.ndarray, ky: np.ndarray) -> np.ndarray:
    gx = cv2.filter2D(img, -1, kx, borderType=cv2.BORDER_REPLICATE)
    gy = cv2.filter2D(img, -1, ky, borderType=cv2.BORDER_REPLICATE)
    return np.sqrt(gx**2 + gy**2).astype(np.float32)


def _minmax(img: np.ndarray) -> np.ndarray:
    out = np.zeros_like(img)
    cv2.normalize(img, out, 1.0, 0.0, cv2.NORM_MINMAX)
    return out


def _grad(p: np.ndarray, g: np.ndarray, mask: np.ndarray, sigma: float) -> float:
    kx, ky = gaussian_derivative_filters(sigma)
    g_grad = _gradient_magnitude(_minmax(g.astype(np.float64)), kx, ky)
    p_grad = _gradient_magnitude(_minmax(p.astype(np.float64)), kx, ky)
    return float(((g_grad - p_grad) ** 2 * mask).sum()) / 1000


def _conn(p: np.ndarray, g: np.ndarray, mask: np.ndarray, step: float) -> float:
    g32 = g.astype(np.float32) / np.float32(255)
    p32 = p.astype(np.float32) / np.float32(255)
    thresholds = np.arange(0, 1 + step, step).astype(np.float32)
    level = np.full(g32.shape, -1, np.float32)
    for k in range(1, len(thresholds)):
        both = ((g32 >= thresholds[k]) & (p32 >= thresholds[k])).astype(np.uint8)
        _, labels, stats, _ = cv2.connectedComponentsWithStats(both, connectivity=4)
        omega = np.zeros(g32.shape, bool)
        if len(stats) > 1:
            omega = labels == int(np.argmax(stats[1:, cv2.CC_STAT_AREA])) + 1
        level[(level == -1) & ~omega] = thresholds[k - 1]
    level[level == -1] = 1
    g_d = g32 - level
    p_d = p32 - level
    g_phi = 1 - g_d * (g_d >= np.float32(0.15))
    p_phi = 1 - p_d * (p_d >= np.float32(0.15))
    return float(np.sum(np.abs(g_phi - p_phi) * mask)) / 1000


# ----------------------------------------------------------------------------- public per-image functions


def sad(pred: np.ndarray, gt: np.ndarray, trimap: np.ndarray | None = None) -> float:
    """Sum of absolute differences over the unknown pixels, in thousands (alpha in [0, 1])."""
    return _sad(*_prepare(pred, gt, trimap))


def mse(pred: np.ndarray, gt: np.ndarray, trimap: np.ndarray | None = None) -> float:
    """Mean squared error over the unknown pixels (alpha in [0, 1]); 0 when there are none."""
    return _mse(*_prepare(pred, gt, trimap))


def grad(pred: np.ndarray, gt: np.ndarray, trimap: np.ndarray | None = None, *, sigma: float = DEFAULT_SIGMA) -> float:
    """Gradient error: squared difference of Gaussian-gradient magnitudes over the unknown pixels / 1000."""
    sigma = _check_positive(sigma, "sigma")
    return _grad(*_prepare(pred, gt, trimap), sigma)


def conn(pred: np.ndarray, gt: np.ndarray, trimap: np.ndarray | None = None, *, step: float = DEFAULT_STEP) -> float:
    """Connectivity error over the unknown pixels / 1000 (thresholds every ``step``)."""
    step = _check_positive(step, "step")
    return _conn(*_prepare(pred, gt, trimap), step)


# ----------------------------------------------------------------------------- accumulation


class MattingMetrics:
    """Per-image SAD / MSE / Grad / Conn, and their means over the images seen.

    ``region="trimap"`` counts the trimap's unknown band (and forces the prediction to 0/255
    where the trimap is 0/255); an image given without a trimap counts whole, as PaddleSeg
    does. ``region="image"`` ignores the trimaps: every pixel counts and nothing is forced.
    ``metrics`` chooses which of ``sad``, ``mse``, ``grad``, ``conn`` to compute (all by
    default). The per-image values stay in :attr:`per_image` (for a JSON report).
    """

    def __init__(self, region: Region = "trimap", metrics: tuple[str, ...] | list[str] = METRIC_NAMES, *,
                 sigma: float = DEFAULT_SIGMA, step: float = DEFAULT_STEP) -> None:
        if region not in REGIONS:
            raise ConfigError(f"region must be one of {list(REGIONS)}, got {region!r}")
        if isinstance(metrics, str) or not isinstance(metrics, (tuple, list)) or not metrics:
            raise ConfigError(f"metrics must be a non-empty list of {list(METRIC_NAMES)}, got {metrics!r}")
        unknown = [m for m in metrics if m not in METRIC_NAMES]
        if unknown:
            raise ConfigError(f"metrics must be among {list(METRIC_NAMES)}, got {unknown}")
        if len(set(metrics)) != len(metrics):
            raise ConfigError(f"metrics must not repeat a name, got {list(metrics)}")
        self.region: Region = region
        self.metrics = tuple(metrics)
        self.sigma = _check_positive(sigma, "sigma")
        self.step = _check_positive(step, "step")
        self.per_image: list[dict[str, Any]] = []
        self._sums = {m: 0.0 for m in self.metrics}

    def __len__(self) -> int:
        return len(self.per_image)

    def update(self, pred: np.ndarray, gt: np.ndarray, trimap: np.ndarray | None = None, *,
               name: str | None = None) -> dict[str, float]:
        """Score one image; returns its values (also kept in :attr:`per_image`)."""
        p, g, mask = _prepare(pred, gt, trimap if self.region == "trimap" else None)
        funcs = {"sad": lambda: _sad(p, g, mask), "mse": lambda: _mse(p, g, mask),
                 "grad": lambda: _grad(p, g, mask, self.sigma), "conn": lambda: _conn(p, g, mask, self.step)}
        values = {m: funcs[m]() for m in self.metrics}
        for m, v in values.items():
            self._sums[m] += v
        record: dict[str, Any] = {} if name is None else {"name": name}
        record.update(values)
        record["unknown_pixels"] = int(mask.sum())
        self.per_image.append(record)
        return values

    def summary(self) -> dict[str, float]:
        """Mean of each metric over the images (0 when none, as PaddleSeg's ``evaluate``)."""
        n = len(self.per_image)
        return {m: (self._sums[m] / n if n else 0.0) for m in self.metrics}

    def to_dict(self) -> dict[str, Any]:
        """``{"region", "count", "summary", "per_image"}``, JSON-serialisable."""
        return {"region": self.region, "count": len(self.per_image), "summary": self.summary(),
                "per_image": [dict(r) for r in self.per_image]}
