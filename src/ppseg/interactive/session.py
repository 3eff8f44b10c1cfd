"""Click sessions: the interactive loop a tool drives, on any click model (torch or ONNX Runtime).

    predictor = ppseg.interactive.load_click_predictor("zoo:click_hrlite")   # or a .pt / .onnx
    s = predictor.session(image)            # H x W x 3 uint8 RGB (or a path)
    s.click(120, 200)                       # positive click at row 120, column 200
    s.click(40, 35, positive=False)
    s.undo(); s.redo()
    s.mask                                  # bool H x W (prob > threshold)

Each click runs the reference's predictor loop (spec §6.3): the image and the fed-back map
(the previous probabilities for models with a previous-mask input, the previous edge map for
EdgeFlow) are zoomed in on the object (:class:`~ppseg.interactive.zoom.ZoomIn`), limited to
``max_side``, the clicks are encoded as disks, the backend returns logits, and their sigmoid is
mapped back to the image. Numpy only: the backend is the only part that differs between torch
(:class:`~ppseg.interactive.predictor.TorchClickBackend`) and ONNX Runtime
(:class:`ppseg.deploy.interactive.OnnxClickBackend`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import numpy as np

from ..errors import ConfigError
from .clicks import Click, click_maps, sigmoid
from .zoom import LimitLongestSide, ZoomIn

__all__ = ["ClickBackend", "ClickPredictor", "ClickSession", "InteractiveSettings", "as_rgb_image"]


class ClickBackend(Protocol):
    """What a session needs from a click model."""

    #: what channel 0 of the click features is: ``"mask"`` (previous probabilities) or ``"edge"``
    prev_input: str
    #: disk radius of the click maps, pixels of the network input
    radius: float

    def infer(self, image: np.ndarray, coord: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """``image`` ``[3, h, w]`` RGB in [0, 1], ``coord`` ``[3, h, w]`` = (prev, positive, negative)
        -> (mask logits ``[h, w]``, edge logits ``[h, w]`` or ``None``)."""


@dataclass(frozen=True)
class InteractiveSettings:
    """The predictor loop's settings (recorded in weights files and export sidecars).

    Attributes:
        threshold: probability above which a pixel is in the mask (EISeg 0.5; the NoC benchmark 0.49).
        zoom_in: ZoomIn on (EISeg's predictor settings below) or off.
        target_size, expansion_ratio, min_crop_size, skip_clicks, recompute_thresh_iou: ZoomIn's.
        max_side: LimitLongestSide's ``max_size``.
    """

    threshold: float = 0.5
    zoom_in: bool = True
    target_size: tuple[int, int] = (400, 400)
    expansion_ratio: float = 1.4
    min_crop_size: int = 480
    skip_clicks: int = -1
    recompute_thresh_iou: float = 0.5
    max_side: int = 800

    def to_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["target_size"] = list(self.target_size)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None, where: str = "settings") -> InteractiveSettings:
        d = dict(d or {})
        unknown = set(d) - set(cls.__dataclass_fields__)
        if unknown:
            raise ConfigError(f"{where}: unknown interactive setting(s) {sorted(unknown)}")
        if isinstance(d.get("target_size"), list):
            d["target_size"] = tuple(d["target_size"])
        return cls(**d).checked(where)

    def checked(self, where: str = "settings") -> InteractiveSettings:
        def bad(name: str, value: Any, want: str) -> ConfigError:
            return ConfigError(f"{where}: {name} must be {want}, got {value!r}")

        def number(v: Any) -> bool:
            return not isinstance(v, bool) and isinstance(v, (int, float)) and math.isfinite(v)

        t = self.threshold
        if not number(t) or not 0.0 <= t < 1.0:
            raise bad("threshold", t, "a number in [0, 1)")
        if not isinstance(self.zoom_in, bool):
            raise bad("zoom_in", self.zoom_in, "true or false")
        if isinstance(self.skip_clicks, bool) or not isinstance(self.skip_clicks, int) or not -1 <= self.skip_clicks <= 100:
            raise bad("skip_clicks", self.skip_clicks, "an integer in [-1, 100]")
        if not number(self.recompute_thresh_iou) or not 0 <= self.recompute_thresh_iou <= 1:
            raise bad("recompute_thresh_iou", self.recompute_thresh_iou, "a number in [0, 1]")
        ts = self.target_size
        if not isinstance(ts, (tuple, list)) or len(ts) != 2 or any(isinstance(v, bool) or not isinstance(v, int) or not 16 <= v <= 4096 for v in ts):
            raise bad("target_size", ts, "two integers (h, w) in [16, 4096]")
        if not number(self.expansion_ratio) or not 1.0 <= self.expansion_ratio <= 10.0:
            raise bad("expansion_ratio", self.expansion_ratio, "a number in [1, 10]")
        for name in ("min_crop_size", "max_side"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= 16384 or (name == "max_side" and v < 16):
                raise bad(name, v, "an integer in [16, 16384]" if name == "max_side" else "an integer in [0, 16384]")
        return self


def as_rgb_image(image: Any, what: str = "image") -> np.ndarray:
    """An ``H x W x 3`` uint8 RGB array from an array (gray is stacked) or an image path."""
    if isinstance(image, (str, bytes)) or hasattr(image, "__fspath__"):
        from ..data.io import read_image

        return read_image(str(image))
    arr = np.asarray(image)
    if arr.ndim == 2:
        arr = np.repeat(arr[:, :, None], 3, axis=2)
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise ConfigError(f"{what}: expected an H x W x 3 RGB image, got an array of shape {arr.shape}")
    if arr.shape[0] < 1 or arr.shape[1] < 1:
        raise ConfigError(f"{what}: empty image of shape {arr.shape}")
    if arr.dtype != np.uint8:
        if not np.issubdtype(arr.dtype, np.number) or not np.isfinite(arr).all():
            raise ConfigError(f"{what}: expected uint8 RGB values, got dtype {arr.dtype}")
        arr = np.clip(arr, 0, 255).astype(np.uint8)
    return np.ascontiguousarray(arr)


@dataclass
class _State:
    clicks: tuple[Click, ...] = ()
    prob: np.ndarray | None = None
    feedback: np.ndarray | None = None  # the map fed back as coord channel 0 (full image size)
    roi: Any = None


class ClickSession:
    """One object being segmented by clicks on one image. See the module docstring."""

    def __init__(self, backend: ClickBackend, image: Any, settings: InteractiveSettings | None = None,
                 prior: np.ndarray | None = None) -> None:
        self.backend = backend
        self.settings = settings or InteractiveSettings()
        self.image = as_rgb_image(image)
        self.height, self.width = self.image.shape[:2]
        self._chw = np.ascontiguousarray(self.image.transpose(2, 0, 1), dtype=np.float32) / np.float32(255.0)
        s = self.settings
        self.zoom = ZoomIn(tuple(s.target_size), s.skip_clicks, s.expansion_ratio, s.min_crop_size,
                           s.recompute_thresh_iou, prob_thresh=s.threshold) if s.zoom_in else None
        self.limit = LimitLongestSide(s.max_side)
        self._state = _State()
        self._undo: list[_State] = []
        self._redo: list[_State] = []
        #: per-click network time in seconds (the last click's)
        self.last_infer_s = 0.0
        if prior is not None:
            self.set_prior(prior)

    # ------------------------------------------------------------------ state
    @property
    def clicks(self) -> list[Click]:
        return list(self._state.clicks)

    @property
    def prob(self) -> np.ndarray | None:
        """The latest probability map (``H x W`` float32), ``None`` before the first click."""
        return self._state.prob

    @property
    def mask(self) -> np.ndarray:
        """The latest mask (``prob > threshold``); all False before the first click."""
        if self._state.prob is None:
            return np.zeros((self.height, self.width), bool)
        return self._state.prob > self.settings.threshold

    @property
    def can_undo(self) -> bool:
        return bool(self._undo)

    @property
    def can_redo(self) -> bool:
        return bool(self._redo)

    def snapshot(self) -> Any:
        """The session's state (clicks, prediction, zoom window), for an app's own history: give it
        back to :meth:`restore`. It is immutable, so keeping many is cheap."""
        return self._state

    def restore(self, snapshot: Any) -> None:
        """Return to a :meth:`snapshot` (not undoable itself; the app's history is)."""
        if not isinstance(snapshot, _State):
            raise TypeError(f"not a ClickSession snapshot: {type(snapshot).__name__}")
        self._state = snapshot

    def set_prior(self, mask: np.ndarray, anchor: Click | None = None) -> None:
        """Start from an existing mask (e.g. a finished object being corrected, or the previous
        video frame's mask): it becomes the current prediction and, for models with a
        previous-mask input, what the next click refines. Undoable.

        ``anchor``: a positive click inside the mask that the model sees with every later click but
        that is not run now (the mask stays exactly ``mask``). Click models learn refinement with at
        least one positive click present; without one, a first negative click on a prior can
        throw most of the object away."""
        m = np.asarray(mask)
        if m.shape != (self.height, self.width):
            raise ConfigError(f"prior mask: shape {m.shape} does not match the image {(self.height, self.width)}")
        prob = (m > 0.5).astype(np.float32) if m.dtype != bool else m.astype(np.float32)
        clicks = self._state.clicks
        if anchor is not None:
            if not anchor.positive or not (0 <= anchor.y < self.height and 0 <= anchor.x < self.width):
                raise ConfigError(f"prior anchor {anchor!r}: must be a positive click inside the image")
            clicks = (anchor,)
        self._push()
        self._state = replace(self._state, clicks=clicks, prob=prob,
                              feedback=prob if self.backend.prev_input == "mask" else None)

    def _push(self) -> None:
        self._undo.append(self._state)
        self._redo.clear()

    def undo(self) -> bool:
        """Take the last click (or prior) back; False when there is nothing to undo."""
        if not self._undo:
            return False
        self._redo.append(self._state)
        self._state = self._undo.pop()
        return True

    def redo(self) -> bool:
        """Re-apply the last undone click; False when there is nothing to redo."""
        if not self._redo:
            return False
        self._undo.append(self._state)
        self._state = self._redo.pop()
        return True

    def reset(self) -> None:
        """Forget every click (undoable)."""
        self._push()
        self._state = _State()

    # ------------------------------------------------------------------ clicking
    def click(self, y: float, x: float, positive: bool = True) -> np.ndarray:
        """Add a click at row ``y``, column ``x`` (pixels of the image) and return the new
        probability map. A click outside the image raises :class:`ConfigError` naming it."""
        for name, v, top in (("y (row)", y, self.height), ("x (column)", x, self.width)):
            if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)) \
                    or not math.isfinite(float(v)) or not 0 <= float(v) < top:
                raise ConfigError(f"click {name} = {v!r} is outside the image ({self.height} x {self.width}: "
                                  f"rows 0..{self.height - 1}, columns 0..{self.width - 1})")
        state = self._state
        clicks = (*state.clicks, Click(float(y), float(x), bool(positive)))
        roi_before = self.zoom.state() if self.zoom else None
        if self.zoom:
            self.zoom.restore(state.roi)
        try:
            prob, feedback = self._predict(clicks, state.prob, state.feedback)
        except BaseException:
            if self.zoom:
                self.zoom.restore(roi_before)
            raise
        self._push()
        self._state = _State(clicks, prob, feedback, self.zoom.state() if self.zoom else None)
        return prob

    def _predict(self, clicks: tuple[Click, ...], prev_prob: np.ndarray | None,
                 feedback: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        import time

        hw = (self.height, self.width)
        fb = feedback if feedback is not None else np.zeros(hw, np.float32)
        maps = np.concatenate([self._chw, fb[None]], axis=0)
        roi = self.zoom.choose(prev_prob, clicks, hw) if self.zoom else None
        tclicks: list[Click] = list(clicks)
        if roi is not None:
            maps, tclicks = self.zoom.forward(maps, clicks, roi)
        zoomed_hw = maps.shape[-2:]
        maps, tclicks = self.limit.forward(maps, tclicks)
        h, w = maps.shape[-2:]
        coord = np.concatenate([maps[3:4], click_maps(tclicks, h, w, self.backend.radius)], axis=0)
        t0 = time.perf_counter()
        logits, edge = self.backend.infer(np.ascontiguousarray(maps[:3]), coord)
        self.last_infer_s = time.perf_counter() - t0
        out = sigmoid(logits)[None] if edge is None else np.stack([sigmoid(logits), sigmoid(edge)])
        if out.shape[-2:] != zoomed_hw:
            from .clicks import resize_align_corners

            out = resize_align_corners(out, zoomed_hw)
        if roi is not None:
            out = self.zoom.inverse(out, roi, hw)
        prob = np.ascontiguousarray(out[0])
        if self.backend.prev_input == "edge":
            fb_new = np.ascontiguousarray(out[1]) if out.shape[0] > 1 else np.zeros(hw, np.float32)
        else:
            fb_new = prob
        return prob, fb_new


@dataclass
class ClickPredictor:
    """A click model ready for sessions: a backend and the loop's settings."""

    backend: ClickBackend
    settings: InteractiveSettings = field(default_factory=InteractiveSettings)
    #: what the model is (a path, ``zoo:NAME``), for reports
    name: str = ""

    def session(self, image: Any, prior: np.ndarray | None = None,
                threshold: float | None = None) -> ClickSession:
        """A new :class:`ClickSession` on ``image`` (``threshold`` overrides the settings')."""
        settings = self.settings if threshold is None else replace(self.settings, threshold=threshold).checked("threshold")
        return ClickSession(self.backend, image, settings, prior)

    def with_settings(self, **changes: Any) -> ClickPredictor:
        return ClickPredictor(self.backend, replace(self.settings, **changes).checked(), self.name)


Factory = Callable[..., ClickPredictor]
