"""RITM's click simulator and IoU, the protocol behind every published NoC number.

The simulated user looks at the current prediction and clicks in the middle of the largest
error (Sofiiuk et al., "Reviving Iterative Training with Mask Guidance for Interactive
Segmentation", 2021, ``isegm/inference/clicker.py``; EdgeFlow and EISeg evaluate the same way):

1. ``FN = gt & ~pred`` and ``FP = ~gt & pred``, both without the ignore pixels;
2. each is padded by one pixel of zeros (so the image border counts as an edge of the error
   region), put through the exact Euclidean distance transform
   (``cv2.distanceTransform(..., cv2.DIST_L2, cv2.DIST_MASK_PRECISE)``) and cropped back;
3. the distances at pixels clicked before are set to zero (no pixel is clicked twice);
4. if the largest FN distance is larger than the largest FP distance, the click is positive,
   at the first pixel in row-major order holding that largest FN distance; otherwise (ties
   included) it is negative, at the first pixel holding the largest FP distance.

With an all-zero prediction (before the first click) the FP map is empty, so the first click
is positive, at the object's deepest point. When nothing is left to correct (both maxima 0),
the rule gives RITM's degenerate negative click at ``(0, 0)``; the NoC loop stops long before.

numpy + OpenCV only (no torch).
"""

from __future__ import annotations

from typing import NamedTuple

import cv2
import numpy as np

__all__ = ["SimulatedClick", "Clicker", "next_click", "error_distances", "padded_distance", "iou"]


class SimulatedClick(NamedTuple):
    """A click of the simulated user: row ``y``, column ``x`` and whether it is positive
    (same field names as :class:`ppseg.interactive.clicks.Click`)."""

    y: int
    x: int
    positive: bool


def _as_mask(a: np.ndarray, what: str, shape: tuple[int, ...] | None = None) -> np.ndarray:
    m = np.asarray(a)
    if m.ndim != 2:
        raise ValueError(f"{what} must be a 2-D H x W mask, got shape {m.shape}")
    if shape is not None and m.shape != shape:
        raise ValueError(f"{what} has shape {m.shape}, the ground truth {shape}")
    return m if m.dtype == np.bool_ else m != 0


def padded_distance(mask: np.ndarray) -> np.ndarray:
    """L2 distance of each ``mask`` pixel to the nearest pixel outside it, the image border
    counting as outside (1 px zero padding, precise transform, cropped back): ``float32``."""
    padded = np.pad(mask, 1).view(np.uint8)
    return cv2.distanceTransform(padded, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)[1:-1, 1:-1]


def error_distances(
    gt: np.ndarray, pred: np.ndarray, ignore: np.ndarray | None = None, clicked: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The FN and FP distance maps of steps 1-3 (``float32``, zero at clicked pixels)."""
    g = _as_mask(gt, "gt")
    p = _as_mask(pred, "pred", g.shape)
    fn = g & ~p
    fp = p & ~g
    if ignore is not None:
        keep = ~_as_mask(ignore, "ignore", g.shape)
        fn &= keep
        fp &= keep
    fn_dt = padded_distance(fn)
    fp_dt = padded_distance(fp)
    if clicked is not None:
        done = _as_mask(clicked, "clicked", g.shape)
        fn_dt[done] = 0
        fp_dt[done] = 0
    return fn_dt, fp_dt


def next_click(
    gt: np.ndarray, pred: np.ndarray, *, ignore: np.ndarray | None = None, clicked: np.ndarray | None = None
) -> SimulatedClick:
    """The simulated user's next click for prediction ``pred`` (``H x W`` bool; pass all zeros
    for the first click). ``ignore``: pixels left out; ``clicked``: ``H x W`` bool map of the
    pixels clicked so far (they are not clicked again)."""
    fn_dt, fp_dt = error_distances(gt, pred, ignore, clicked)
    fn_max = fn_dt.max()
    fp_max = fp_dt.max()
    positive = bool(fn_max > fp_max)
    # argmax returns the first maximum in row-major order (RITM: np.where(dt == max)[..][0])
    flat = int(np.argmax(fn_dt if positive else fp_dt))
    y, x = divmod(flat, fn_dt.shape[1])
    return SimulatedClick(y, x, positive)


class Clicker:
    """The simulated user of one object: remembers its clicks and never clicks a pixel twice.

    ``Clicker(gt, ignore).make_next_click(pred)`` returns (and records) the next click for the
    current prediction ``pred`` (``H x W`` bool, all zeros before the first click).
    """

    def __init__(self, gt: np.ndarray, ignore: np.ndarray | None = None):
        self.gt = _as_mask(gt, "gt")
        self.ignore = None if ignore is None else _as_mask(ignore, "ignore", self.gt.shape)
        self.clicks: list[SimulatedClick] = []
        self._clicked = np.zeros(self.gt.shape, dtype=bool)

    @property
    def shape(self) -> tuple[int, int]:
        return self.gt.shape  # type: ignore[return-value]

    def make_next_click(self, pred: np.ndarray | None = None) -> SimulatedClick:
        """The next click for ``pred`` (``None``: no prediction yet, i.e. all zeros)."""
        if pred is None:
            pred = np.zeros(self.gt.shape, dtype=bool)
        click = next_click(self.gt, pred, ignore=self.ignore, clicked=self._clicked)
        self.clicks.append(click)
        self._clicked[click.y, click.x] = True
        return click

    def remove_last_click(self) -> SimulatedClick:
        click = self.clicks.pop()
        if not any(c.y == click.y and c.x == click.x for c in self.clicks):
            self._clicked[click.y, click.x] = False
        return click

    def reset(self) -> None:
        self.clicks.clear()
        self._clicked[:] = False


def iou(gt: np.ndarray, pred: np.ndarray, ignore: np.ndarray | None = None) -> float:
    """Intersection over union of two ``H x W`` masks with the ``ignore`` pixels left out of both
    (RITM's ``get_iou``). Two empty masks (an empty union) give ``1.0`` where RITM divides 0 by 0."""
    g = _as_mask(gt, "gt")
    p = _as_mask(pred, "pred", g.shape)
    inter = g & p
    union = g | p
    if ignore is not None:
        keep = ~_as_mask(ignore, "ignore", g.shape)
        inter &= keep
        union &= keep
    u = int(np.count_nonzero(union))
    return 1.0 if u == 0 else int(np.count_nonzero(inter)) / u
