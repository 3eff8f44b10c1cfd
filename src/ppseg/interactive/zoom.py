"""The click predictor's input transforms, as EISeg/RITM define them (spec §6.3), in numpy.

* :class:`ZoomIn`: once there is a prediction, the network sees only a window around the
  object: the bounding box of the current mask and the positive clicks, expanded
  ``expansion_ratio`` times (at least ``min_crop_size`` a side), clamped to the image, resized to
  ``target_size`` (a ``(h, w)`` pair: exactly that size; an int: the long side). The window is kept
  while it still holds every click and overlaps the new one by IoU ≥ ``recompute_thresh_iou``;
  otherwise it moves. With ``skip_clicks = -1`` (EISeg) the first click already zooms, on the whole
  image. The inverse pastes the window's probabilities into a zero map of the image size.
* :class:`LimitLongestSide`: scale down so the long side is at most ``max_size``.

Resizes are bilinear with ``align_corners=True`` and click coordinates scale as in the
reference (``new = size_out * (old - start) / size_in``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .clicks import Click, resize_align_corners

__all__ = ["Box", "ZoomIn", "LimitLongestSide", "object_roi", "box_iou"]

#: (rmin, rmax, cmin, cmax), inclusive pixel bounds
Box = tuple[int, int, int, int]


def _mask_box(mask: np.ndarray) -> Box:
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    return int(rows[0]), int(rows[-1]), int(cols[0]), int(cols[-1])


def _expand(box: Box, ratio: float, min_size: int) -> Box:
    rmin, rmax, cmin, cmax = box
    rc, cc = 0.5 * (rmin + rmax), 0.5 * (cmin + cmax)
    h = max(ratio * (rmax - rmin + 1), min_size)
    w = max(ratio * (cmax - cmin + 1), min_size)
    return (int(round(rc - 0.5 * h)), int(round(rc + 0.5 * h)), int(round(cc - 0.5 * w)), int(round(cc + 0.5 * w)))


def _clamp(box: Box, h: int, w: int) -> Box:
    rmin, rmax, cmin, cmax = box
    return (max(rmin, 0), min(rmax, h - 1), max(cmin, 0), min(cmax, w - 1))


def object_roi(mask: np.ndarray, clicks: Sequence[Click], ratio: float, min_size: int) -> Box:
    """The window around ``mask`` and the positive clicks, expanded and clamped to the image."""
    m = mask.copy()
    h, w = m.shape
    for c in clicks:
        if c.positive:
            m[min(max(int(c.y), 0), h - 1), min(max(int(c.x), 0), w - 1)] = True
    return _clamp(_expand(_mask_box(m), ratio, min_size), h, w)


def box_iou(a: Box, b: Box) -> float:
    """IoU of two inclusive boxes."""
    ih = min(a[1], b[1]) - max(a[0], b[0]) + 1
    iw = min(a[3], b[3]) - max(a[2], b[2]) + 1
    inter = max(ih, 0) * max(iw, 0)
    area = lambda bx: (bx[1] - bx[0] + 1) * (bx[3] - bx[2] + 1)  # noqa: E731
    return inter / float(area(a) + area(b) - inter)


def _inside(box: Box, clicks: Sequence[Click]) -> bool:
    return all(box[0] <= c.y <= box[1] and box[2] <= c.x <= box[3] for c in clicks)


@dataclass
class ZoomIn:
    """EISeg's ZoomIn (defaults: the EISeg predictor's settings). Holds the current window
    (``roi``); :meth:`state` / :meth:`restore` let a session undo it."""

    target_size: int | tuple[int, int] = (400, 400)
    skip_clicks: int = -1
    expansion_ratio: float = 1.4
    min_crop_size: int = 480
    recompute_thresh_iou: float = 0.5
    prob_thresh: float = 0.5
    roi: Box | None = None

    def state(self) -> Box | None:
        return self.roi

    def restore(self, state: Box | None) -> None:
        self.roi = state

    def choose(self, prev_prob: np.ndarray | None, clicks: Sequence[Click], hw: tuple[int, int]) -> Box | None:
        """Update and return the window for this click (``None``: use the whole image as it is)."""
        if len(clicks) <= self.skip_clicks:
            return None
        current = None
        if prev_prob is not None:
            pred = prev_prob > self.prob_thresh
            if pred.any():
                current = object_roi(pred, clicks, self.expansion_ratio, self.min_crop_size)
        if current is None:
            if self.skip_clicks >= 0:
                return None
            current = (0, hw[0] - 1, 0, hw[1] - 1)
        if (self.roi is None or not _inside(self.roi, clicks)
                or box_iou(current, self.roi) < self.recompute_thresh_iou):
            self.roi = current
        return self.roi

    def out_size(self, roi: Box) -> tuple[int, int]:
        h, w = roi[1] - roi[0] + 1, roi[3] - roi[2] + 1
        if isinstance(self.target_size, (tuple, list)):
            return int(self.target_size[0]), int(self.target_size[1])
        scale = self.target_size / max(h, w)
        return int(round(h * scale)), int(round(w * scale))

    def forward(self, maps: np.ndarray, clicks: Sequence[Click], roi: Box) -> tuple[np.ndarray, list[Click]]:
        """Crop ``[C, H, W]`` ``maps`` to ``roi``, resize, and move the clicks with them."""
        rmin, rmax, cmin, cmax = roi
        oh, ow = self.out_size(roi)
        crop = resize_align_corners(maps[:, rmin:rmax + 1, cmin:cmax + 1], (oh, ow))
        rh, rw = rmax - rmin + 1, cmax - cmin + 1
        return crop, [c.moved(oh * (c.y - rmin) / rh, ow * (c.x - cmin) / rw) for c in clicks]

    @staticmethod
    def inverse(prob: np.ndarray, roi: Box, hw: tuple[int, int]) -> np.ndarray:
        """Paste the window's ``[C, h, w]`` maps back into zeros of the image size."""
        rmin, rmax, cmin, cmax = roi
        out = np.zeros((prob.shape[0], *hw), np.float32)
        out[:, rmin:rmax + 1, cmin:cmax + 1] = resize_align_corners(prob, (rmax - rmin + 1, cmax - cmin + 1))
        return out


@dataclass(frozen=True)
class LimitLongestSide:
    """Scale the network input down so its long side is at most ``max_size`` (800 in EISeg)."""

    max_size: int = 800

    def size(self, hw: tuple[int, int]) -> tuple[int, int]:
        h, w = hw
        if max(h, w) <= self.max_size:
            return h, w
        scale = self.max_size / max(h, w)
        return max(int(round(h * scale)), 1), max(int(round(w * scale)), 1)

    def forward(self, maps: np.ndarray, clicks: Sequence[Click]) -> tuple[np.ndarray, list[Click]]:
        h, w = maps.shape[-2:]
        oh, ow = self.size((h, w))
        if (oh, ow) == (h, w):
            return maps, list(clicks)
        return resize_align_corners(maps, (oh, ow)), [c.moved(c.y * oh / h, c.x * ow / w) for c in clicks]
