"""Temporal stabilisation of per-frame probability maps, and a flicker measure.

Shared by the apps that segment video (``ppseg humanseg``; the matting app and others reuse it):
only numpy and OpenCV are needed, and nothing here knows about people or models.

:class:`TemporalStabilizer` (PaddleSeg PP-HumanSeg's deploy post-processing idea, spec §9.2,
re-derived and vectorised): the previous frame's *fused* probability map is warped to the
current frame with DIS optical flow computed on small grey frames, then blended with the
current prediction pixel by pixel. The weight of the current prediction is low where the pixel
is still or the two agree (a motion-compensated recursive filter: network flicker averages
out), high where the pixel moves *and* the two disagree (the flow may be wrong there: follow
the network, no ghosting), and 1 where the flow does not track (the warped previous frame does
not match the current one: occlusions, new content) or leaves the frame. The caller picks the
working resolution (``ppseg humanseg``: the network's, e.g. 256x144, one DIS flow per frame).

:func:`flicker_score` and :class:`FlickerMeter` measure what is left: the mean mask change on
pixels where the scene is still.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from ..errors import ConfigError

__all__ = ["StabilizerParams", "TemporalStabilizer", "still_pixels", "flicker_score", "FlickerMeter"]


# =============================================================================== stabilisation
@dataclass
class StabilizerParams:
    """Knobs of :class:`TemporalStabilizer` (distances in pixels of the working resolution).

    Attributes:
        still_weight: weight of the current prediction where the pixel is still or the
            prediction agrees with the warped history (the temporal smoothing strength:
            0.25 averages flicker over about 7 frames).
        moving_weight: weight where the pixel moves by ``motion_ref`` or more and the
            prediction disagrees with the history by ``disagree_ref`` or more.
        motion_ref: flow magnitude (px/frame) that counts as fully moving.
        disagree_ref: probability difference that counts as full disagreement.
        photo_tolerance: grey-level difference (0..255) between the current frame and the
            previous frame warped by the flow above which a pixel is not tracked (occlusion,
            new content, flow failure): the current prediction is used alone there.
    """

    still_weight: float = 0.25
    moving_weight: float = 0.85
    motion_ref: float = 1.5
    disagree_ref: float = 0.5
    photo_tolerance: float = 24.0

    def __post_init__(self) -> None:
        for name in ("still_weight", "moving_weight"):
            v = getattr(self, name)
            if not 0 < v <= 1:
                raise ConfigError(f"{name} must be in (0, 1], got {v}")
        for name in ("motion_ref", "disagree_ref", "photo_tolerance"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name} must be positive, got {getattr(self, name)}")


class TemporalStabilizer:
    """Optical-flow temporal fusion of per-frame probability maps (see the module docstring).

    Call it once per frame with the current probability and grey frame (same ``h x w``,
    the working resolution); it returns the fused probability (float32, a new array each
    call). Shapes changing between calls restart it.

    Per pixel ``x``, with ``f_b`` = DIS optical flow from the current to the previous grey frame::

        warped(x)   = fused_prev(x + f_b(x))                     (bilinear)
        tracked(x)  = |grey(x) - grey_prev(x + f_b(x))| <= photo_tolerance and x + f_b(x) inside the frame
        s(x)        = min(|f_b(x)| / motion_ref, 1) * min(|p(x) - warped(x)| / disagree_ref, 1)
        w(x)        = still_weight + (moving_weight - still_weight) * s(x)   if tracked, else 1
        fused(x)    = warped(x) + w(x) * (p(x) - warped(x))
    """

    def __init__(self, params: StabilizerParams | None = None) -> None:
        self.params = params or StabilizerParams()
        self._dis: Any = None
        self.reset()

    def reset(self) -> None:
        self._prev: np.ndarray | None = None
        self._grey: np.ndarray | None = None

    def _setup(self, h: int, w: int) -> None:
        dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST)
        # PaddleSeg's rule: a coarser finest scale for larger frames
        dis.setFinestScale(1 if min(h, w) <= 64 else 2 if min(h, w) <= 160 else 3)
        self._dis = dis
        self._gx, self._gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
        self._mx = np.empty((h, w), np.float32)
        self._my = np.empty((h, w), np.float32)

    def __call__(self, prob: np.ndarray, grey: np.ndarray) -> np.ndarray:
        prob = np.asarray(prob, dtype=np.float32)
        if prob.shape != grey.shape[:2]:
            raise ValueError(f"probability {prob.shape} and grey frame {grey.shape[:2]} differ in size")
        if self._prev is None or self._grey is None or self._prev.shape != prob.shape:
            self._setup(*prob.shape)
            self._prev, self._grey = prob.copy(), grey.copy()
            return prob.copy()
        fused = self._fuse(prob, grey)
        self._prev, self._grey = fused, grey.copy()
        return fused.copy()

    def _fuse(self, prob: np.ndarray, grey: np.ndarray) -> np.ndarray:
        pr = self.params
        h, w = prob.shape
        flow = self._dis.calc(grey, self._grey, None)  # current -> previous
        fx, fy = flow[..., 0], flow[..., 1]
        mx, my = self._mx, self._my
        np.add(self._gx, fx, out=mx)
        np.add(self._gy, fy, out=my)
        warped = cv2.remap(self._prev, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        # tracking check: the previous frame, warped the same way, must look like the current one
        seen = cv2.remap(self._grey, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        untracked = cv2.absdiff(seen, grey) > pr.photo_tolerance
        untracked |= (mx < 0) | (mx > w - 1) | (my < 0) | (my > h - 1)
        diff = prob - warped
        s = np.minimum(cv2.magnitude(fx, fy), pr.motion_ref)
        s *= np.minimum(np.abs(diff), pr.disagree_ref)
        s *= (pr.moving_weight - pr.still_weight) / (pr.motion_ref * pr.disagree_ref)
        s += pr.still_weight
        s[untracked] = 1.0
        diff *= s
        diff += warped
        return diff


# =============================================================================== flicker
def still_pixels(prev_grey: np.ndarray, grey: np.ndarray, threshold: float = 6.0) -> np.ndarray:
    """Pixels whose grey value changed by at most ``threshold`` (0..255) between two frames."""
    return cv2.absdiff(prev_grey, grey) <= threshold


def _as_unit(mask: np.ndarray) -> np.ndarray:
    m = np.asarray(mask)
    if m.dtype == np.bool_:
        return m.astype(np.float32)
    m = m.astype(np.float32)
    return m / 255.0 if m.max(initial=0) > 1 else m


def flicker_score(masks: Sequence[np.ndarray], still_region: np.ndarray | Sequence[np.ndarray]) -> float:
    """Mean absolute frame-to-frame change of the masks where the scene is still.

    Args:
        masks: ``T`` masks ``H x W`` (bool, 0/1 or 0..255; soft values allowed).
        still_region: ``H x W`` bool (one region for the whole clip) or ``T - 1`` of them
            (one per pair of consecutive frames).

    Returns:
        The mean over consecutive pairs of ``mean(|m_t - m_{t-1}|)`` over the still pixels,
        in ``[0, 1]`` (0: perfectly stable). Pairs without still pixels are skipped; 0.0
        when nothing can be measured.
    """
    if len(masks) < 2:
        return 0.0
    region = np.asarray(still_region, dtype=bool)
    per_pair = region.ndim == 3
    if per_pair and len(region) != len(masks) - 1:
        raise ValueError(f"{len(masks)} masks need {len(masks) - 1} still regions, got {len(region)}")
    values = []
    prev = _as_unit(masks[0])
    for t in range(1, len(masks)):
        cur = _as_unit(masks[t])
        r = region[t - 1] if per_pair else region
        if cur.shape != prev.shape or r.shape != cur.shape:
            raise ValueError(f"mask {t} is {cur.shape}, mask {t - 1} {prev.shape}, still region {r.shape}")
        if r.any():
            values.append(float(np.abs(cur - prev)[r].mean()))
        prev = cur
    return float(np.mean(values)) if values else 0.0


class FlickerMeter:
    """Running :func:`flicker_score` of binary masks, with a still region per frame pair
    from the grey frames (:func:`still_pixels`)."""

    def __init__(self, threshold: float = 6.0) -> None:
        self.threshold = threshold
        self.total = 0.0
        self.pairs = 0
        self._mask: np.ndarray | None = None
        self._grey: np.ndarray | None = None

    def update(self, mask: np.ndarray, grey: np.ndarray) -> None:
        if self._mask is not None and self._grey is not None and self._mask.shape == mask.shape:
            still = still_pixels(self._grey, grey, self.threshold)
            n = int(np.count_nonzero(still))
            if n:
                self.total += np.count_nonzero((mask != self._mask) & still) / n
                self.pairs += 1
        self._mask, self._grey = mask, grey

    @property
    def value(self) -> float | None:
        return self.total / self.pairs if self.pairs else None
