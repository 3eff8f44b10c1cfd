"""Clicks and their encoding (numpy only: shared by the torch and the ONNX Runtime paths).

A click is ``(y, x)`` = (row, column) in pixels of the image it was made on, positive (inside
the object) or negative. A click model sees its clicks as two binary maps, positive and
negative, each the union of disks of radius ``radius`` (5 px, RITM/EdgeFlow ``use_disks``:
distance² ≤ radius²) around the clicks, in the coordinates of the network input (after the
ZoomIn crop and resize, so centres may be fractional).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["Click", "click_maps", "resize_align_corners", "sigmoid"]


@dataclass(frozen=True)
class Click:
    """One click: row ``y``, column ``x`` (pixels; fractional after a resize), positive or negative."""

    y: float
    x: float
    positive: bool = True

    def moved(self, y: float, x: float) -> Click:
        return Click(y, x, self.positive)


def click_maps(clicks: Sequence[Click], height: int, width: int, radius: float = 5.0) -> np.ndarray:
    """``[2, height, width]`` float32: the positive and the negative disk maps of ``clicks``.

    A pixel ``(r, c)`` is 1 in a channel when ``(r - y)² + (c - x)² <= radius²`` for a click of
    that sign (the reference's DistMaps with ``use_disks``). Only the disk's bounding box is
    touched, so the cost does not grow with the image.
    """
    out = np.zeros((2, height, width), np.float32)
    r2 = float(radius) ** 2
    span = int(np.ceil(radius)) + 1
    for click in clicks:
        y0, y1 = max(int(np.floor(click.y)) - span, 0), min(int(np.ceil(click.y)) + span + 1, height)
        x0, x1 = max(int(np.floor(click.x)) - span, 0), min(int(np.ceil(click.x)) + span + 1, width)
        if y0 >= y1 or x0 >= x1:
            continue
        rows = (np.arange(y0, y1, dtype=np.float32) - np.float32(click.y)) ** 2
        cols = (np.arange(x0, x1, dtype=np.float32) - np.float32(click.x)) ** 2
        disk = (rows[:, None] + cols[None, :]) <= r2
        channel = out[0 if click.positive else 1, y0:y1, x0:x1]
        channel[disk] = 1.0
    return out


def _axis_weights(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Source indices and weights of a bilinear ``align_corners=True`` resize along one axis."""
    if n_out == 1 or n_in == 1:
        src = np.zeros(n_out, np.float64)
    else:
        src = np.arange(n_out, dtype=np.float64) * ((n_in - 1) / (n_out - 1))
    i0 = np.clip(np.floor(src).astype(np.int64), 0, n_in - 1)
    i1 = np.minimum(i0 + 1, n_in - 1)
    w = (src - i0).astype(np.float32)
    return i0, i1, w


def resize_align_corners(arr: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear resize with ``align_corners=True`` (as ``F.interpolate``) of a ``[..., H, W]`` array.

    The reference's predictor resizes the image, the click coordinates and the probabilities
    this way (ZoomIn, LimitLongestSide and their inverses); done here in numpy so the torch and
    the ONNX Runtime paths share it.
    """
    h, w = arr.shape[-2:]
    oh, ow = int(size[0]), int(size[1])
    x = np.asarray(arr, np.float32)
    if (h, w) == (oh, ow):
        return x.copy()
    r0, r1, wr = _axis_weights(h, oh)
    c0, c1, wc = _axis_weights(w, ow)
    rows = x[..., r0, :] * (1 - wr)[:, None] + x[..., r1, :] * wr[:, None]
    return rows[..., c0] * (1 - wc) + rows[..., c1] * wc


def sigmoid(x: np.ndarray) -> np.ndarray:
    """Numerically safe logistic function, float32."""
    x = np.asarray(x, np.float32)
    return (0.5 * (1.0 + np.tanh(0.5 * x))).astype(np.float32)
