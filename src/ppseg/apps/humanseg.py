"""Person segmentation for images, videos and webcams: masks, alpha mattes, background replacement.

The library behind ``ppseg humanseg``. Per frame::

    decode -> resize to the network input -> person probability (softmax channel 1)
      -> temporal stabilisation (videos, webcams) -> mask | alpha matte | composite -> encode

Models (:func:`load_person_model`): an exported ``model.onnx`` runs on ONNX Runtime through
:class:`ppseg.deploy.Predictor`'s session and sidecar (no torch needed); a ppseg weights file
runs on PyTorch through :func:`ppseg.load_segmentor`. Any :class:`PersonModel` subclass works
(tests plug in models whose output they control).

Temporal stabilisation (:class:`TemporalStabilizer`; PaddleSeg PP-HumanSeg's deploy
post-processing idea, spec §9.2, re-derived and vectorised): the previous frame's *fused*
probability map is warped to the current frame with DIS optical flow computed on small grey
frames, then blended with the current prediction pixel by pixel. The weight of the current
prediction is low where the pixel is still or the two agree (a motion-compensated recursive
filter: network flicker averages out), high where the pixel moves *and* the two disagree (the
flow may be wrong there: follow the network, no ghosting), and 1 where the flow does not track
(the warped previous frame does not match the current one: occlusions, new content) or leaves
the frame. One DIS flow per frame, at the network's resolution (e.g. 256x144), like the fusion
and the matte; only the final matte is upsampled to the frame, and the composite is blended in
uint8.

Example:
    >>> from ppseg.apps.humanseg import HumanSeg, load_person_model, run_humanseg
    >>> model = load_person_model("export/model.onnx", threads=1)
    >>> result = run_humanseg(model, "call.mp4", "call_blur.mp4", output="composite", background="blur")
    >>> print(result.frames, result.fps, result.flicker)

Only numpy, OpenCV and the torch-free parts of ppseg are imported here; torch is imported
by :class:`TorchPersonModel` when it is used.
"""

from __future__ import annotations

import math
import os
import secrets
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np

from ..deploy.predictor import IMAGE_SUFFIXES
from ..errors import ConfigError, DataError, PPSegError

__all__ = [
    "OUTPUTS", "VIDEO_SUFFIXES", "REFERENCE_INPUT_SIZES",
    "PersonModel", "OnnxPersonModel", "TorchPersonModel", "load_person_model",
    "StabilizerParams", "TemporalStabilizer", "FlickerMeter", "flicker_score", "still_pixels",
    "Background", "parse_background", "composite", "HumanSeg", "Source", "open_source", "VideoSink",
    "RunResult", "run_humanseg",
]

Output = Literal["mask", "alpha", "composite"]
OUTPUTS: tuple[str, ...] = ("mask", "alpha", "composite")
VIDEO_SUFFIXES = (".mp4", ".mov", ".m4v", ".avi", ".mkv", ".webm", ".mpg", ".mpeg", ".wmv", ".flv")
#: containers OpenCV's ``mp4v`` writer produces
WRITE_VIDEO_SUFFIXES = (".mp4", ".mov", ".m4v", ".avi", ".mkv")

#: network input (w, h) of the reference deploy configs (spec §9.1), landscape; swapped for
#: portrait-orientation frames. Used for weights files, which do not record an input size.
REFERENCE_INPUT_SIZES: dict[str, tuple[int, int]] = {
    "pp_humanseg_lite_v1": (398, 224),
    "pp_humansegv2_lite_portrait": (256, 144),
    "pp_humansegv2_lite_general": (192, 192),
    "pp_humansegv2_mobile": (192, 192),
}
DEFAULT_INPUT_SIZE = (256, 144)


def _orient(size_wh: tuple[int, int], frame_hw: tuple[int, int]) -> tuple[int, int]:
    """``(h, w)`` of a landscape/portrait target turned to the frame's orientation."""
    w, h = size_wh
    fh, fw = frame_hw
    if (fh > fw and w > h) or (fw > fh and h > w):
        w, h = h, w
    return int(h), int(w)


# =============================================================================== person models
class PersonModel:
    """Person probability for a frame. Subclasses implement :meth:`network_hw` and :meth:`predict`.

    The caller resizes each frame to :meth:`network_hw` and passes it as RGB uint8;
    :meth:`predict` returns the person probability ``h x w`` float32 in ``[0, 1]`` (any
    resolution; the caller resizes it to its working resolution).
    """

    name: str = "model"
    backend: str = "custom"

    def network_hw(self, frame_hw: tuple[int, int]) -> tuple[int, int]:
        """The ``(h, w)`` the network takes for a frame of ``frame_hw``."""
        raise NotImplementedError

    def predict(self, image_rgb: np.ndarray) -> np.ndarray:
        """Person probability for one RGB uint8 image already at :meth:`network_hw`."""
        raise NotImplementedError


class OnnxPersonModel(PersonModel):
    """An exported ``model.onnx`` on ONNX Runtime (torch-free).

    ``softmax`` exports give the probability directly (channel 1); ``none`` exports are
    soft-maxed here; ``argmax``/``vim`` exports give labels only, so the "probability" is
    0/1 (the stabiliser still works, the matte is harder). The output is requested at the
    network's resolution (the ``output_size`` input), not the frame's: the app upsamples
    one channel, not all of them.

    Args:
        path: ``model.onnx`` (its ``model.json`` next to it).
        threads: ONNX Runtime intra-op threads (``None``: its default).
        input_size: ``(w, h)`` network input for graphs with a dynamic input and no resize
            in the sidecar (ignored otherwise).
    """

    backend = "onnxruntime"

    def __init__(self, path: str | os.PathLike, threads: int | None = None,
                 input_size: tuple[int, int] | None = None) -> None:
        from ..deploy.predictor import Predictor
        from ..data.transforms import build_transforms

        self.predictor = Predictor(path, threads=threads)
        car = self.predictor.sidecar
        if car.num_classes < 2:
            raise PPSegError(f"{path}: a person model needs 2 classes (background, person); "
                             f"this one has {car.num_classes}")
        self.name = car.model or Path(path).name
        self.input_size = input_size
        self._resize = build_transforms(car.resize).transforms if car.resize else []
        spec = car.input
        self._mean = np.asarray(spec.mean, np.float32).reshape(1, 1, 3)
        self._inv_std = (1.0 / np.asarray(spec.std, np.float32)).reshape(1, 1, 3)
        self._cache: dict[tuple[int, int], tuple[int, int]] = {}

    def network_hw(self, frame_hw: tuple[int, int]) -> tuple[int, int]:
        if frame_hw in self._cache:
            return self._cache[frame_hw]
        spec = self.predictor.sidecar.input
        if spec.static_hw is not None:
            hw = spec.static_hw
        elif self._resize:
            from ..data.transforms import Resize

            t = self._resize[0]
            if len(self._resize) == 1 and isinstance(t, Resize) and not t.keep_ratio and not t.size_divisor:
                hw = _orient(tuple(t.target_size), frame_hw)  # a fixed target: follow the frame's orientation
            else:
                sample: dict[str, Any] = {"img": np.zeros((*frame_hw, 3), np.uint8), "label": None, "trans_info": []}
                for tr in self._resize:
                    sample = tr(sample, np.random.default_rng(0))
                hw = tuple(sample["img"].shape[:2])
        elif self.input_size is not None:
            hw = _orient(self.input_size, frame_hw)
        else:
            hw = frame_hw
        self._cache[frame_hw] = (int(hw[0]), int(hw[1]))
        return self._cache[frame_hw]

    def predict(self, image_rgb: np.ndarray) -> np.ndarray:
        p = self.predictor
        spec = p.sidecar.input
        img = image_rgb[..., ::-1] if spec.color_order == "BGR" else image_rgb
        if spec.dtype == "uint8":
            batch = np.ascontiguousarray(img)[None]
        else:
            x = img.astype(np.float32)
            x -= self._mean
            x *= self._inv_std
            batch = np.ascontiguousarray(x.transpose(2, 0, 1))[None]
        n = spec.static_batch
        if n and n > 1:  # a fixed-batch graph: fill the batch with copies
            batch = np.repeat(batch, n, axis=0)
        out = p._run(batch, image_rgb.shape[:2])[0]
        op = p.sidecar.output.op
        if op == "softmax":
            return np.asarray(out[1], np.float32)
        if op == "none":  # raw logits: softmax channel 1
            z = out.astype(np.float32, copy=False)
            z = np.exp(z - z.max(axis=0, keepdims=True))
            return z[1] / z.sum(axis=0)
        return (out == 1).astype(np.float32)  # argmax / vim: labels only


class TorchPersonModel(PersonModel):
    """A ppseg weights file (or run directory) on PyTorch, via :func:`ppseg.load_segmentor`.

    Weights files do not record an input size: the default is the reference deploy size of
    the model (:data:`REFERENCE_INPUT_SIZES`, e.g. 256x144 for the portrait V2-Lite), turned
    to the frame's orientation; ``input_size`` (w, h) overrides it.
    """

    backend = "torch"

    def __init__(self, path: str | os.PathLike, threads: int | None = None,
                 input_size: tuple[int, int] | None = None) -> None:
        try:
            import torch
        except ImportError:
            raise PPSegError(f"{path}: a ppseg weights file needs PyTorch, which is not installed; export it "
                             "('ppseg export ... --output-op softmax') and pass the model.onnx instead, "
                             "or pip install 'ppseg[train]'") from None
        from ..engine.checkpoint import load_file, load_segmentor

        if threads is not None:
            torch.set_num_threads(int(threads))
        self._torch = torch
        self.name = str(load_file(path).get("model") or "model")
        self.segmentor = load_segmentor(path)
        if self.segmentor.num_classes < 2:
            raise PPSegError(f"{path}: a person model needs 2 classes (background, person); "
                             f"this one has {self.segmentor.num_classes}")
        self.input_size = tuple(input_size) if input_size else REFERENCE_INPUT_SIZES.get(self.name, DEFAULT_INPUT_SIZE)

    def network_hw(self, frame_hw: tuple[int, int]) -> tuple[int, int]:
        return _orient(self.input_size, frame_hw)  # type: ignore[arg-type]

    def predict(self, image_rgb: np.ndarray) -> np.ndarray:
        torch = self._torch
        with torch.inference_mode():
            x = torch.from_numpy(np.ascontiguousarray(image_rgb)).permute(2, 0, 1)[None]
            logits = self.segmentor.predict_logits(x)[0]
            return logits.softmax(dim=0)[1].numpy()


def load_person_model(path: str | os.PathLike, *, threads: int | None = None,
                      input_size: tuple[int, int] | None = None) -> PersonModel:
    """``model.onnx`` -> :class:`OnnxPersonModel`; anything else (a weights file, a run
    directory) -> :class:`TorchPersonModel` (needs torch)."""
    p = Path(path)
    if not p.exists():
        raise PPSegError(f"{p}: model not found")
    if input_size is not None and (len(input_size) != 2 or min(input_size) < 8):
        raise ConfigError(f"--input-size must be two sizes >= 8 (W H), got {list(input_size)}")
    if p.suffix.lower() == ".onnx":
        return OnnxPersonModel(p, threads=threads, input_size=input_size)
    return TorchPersonModel(p, threads=threads, input_size=input_size)


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
    """Optical-flow temporal fusion of per-frame person probabilities (see the module docstring).

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


# =============================================================================== rendering
@dataclass
class Background:
    """What replaces the background in ``composite`` output: ``color``, ``image`` or ``blur``."""

    kind: Literal["color", "image", "blur"]
    color_bgr: tuple[int, int, int] = (0, 0, 0)
    image_bgr: np.ndarray | None = None
    blur: int = 31
    _cache: dict[tuple[int, int], np.ndarray] = field(default_factory=dict, repr=False)

    def render(self, frame_bgr: np.ndarray) -> np.ndarray:
        """The background for ``frame_bgr`` (BGR uint8, frame size)."""
        h, w = frame_bgr.shape[:2]
        if self.kind == "blur":
            return _fast_blur(frame_bgr, self.blur)
        bg = self._cache.get((h, w))
        if bg is None:
            if self.kind == "color":
                bg = np.empty((h, w, 3), np.uint8)
                bg[:] = self.color_bgr
            else:
                bg = _cover(self.image_bgr, h, w)  # type: ignore[arg-type]
            self._cache[(h, w)] = bg
        return bg


def _fast_blur(img: np.ndarray, k: int) -> np.ndarray:
    """A Gaussian blur of kernel ~``k``: on a 4x smaller copy for large kernels (same look, ~10x cheaper)."""
    if k < 16:
        return cv2.GaussianBlur(img, (k, k), 0)
    h, w = img.shape[:2]  # (linear decimation aliases, but the blur that follows removes it)
    small = cv2.resize(img, (max(w // 4, 1), max(h // 4, 1)), interpolation=cv2.INTER_LINEAR)
    ks = max(3, (k // 4) | 1)
    small = cv2.GaussianBlur(small, (ks, ks), 0)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


def _cover(img: np.ndarray, h: int, w: int) -> np.ndarray:
    """Scale ``img`` to cover ``h x w`` (aspect kept) and crop the centre."""
    ih, iw = img.shape[:2]
    s = max(h / ih, w / iw)
    nh, nw = max(h, round(ih * s)), max(w, round(iw * s))
    big = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
    y, x = (nh - h) // 2, (nw - w) // 2
    return np.ascontiguousarray(big[y:y + h, x:x + w])


def parse_background(spec: str) -> Background:
    """``color:R,G,B`` (0..255), ``image:PATH`` or ``blur[:K]`` (odd K >= 3, default 31)."""
    kind, _, arg = str(spec).partition(":")
    kind = kind.strip().lower()
    if kind == "color":
        parts = [p.strip() for p in arg.split(",")]
        try:
            rgb = [int(p) for p in parts]
        except ValueError:
            rgb = []
        if len(rgb) != 3 or not all(0 <= c <= 255 for c in rgb):
            raise ConfigError(f"--background {spec!r}: expected color:R,G,B with three integers 0..255, "
                              "e.g. color:0,255,0")
        return Background("color", color_bgr=(rgb[2], rgb[1], rgb[0]))
    if kind == "image":
        if not arg:
            raise ConfigError(f"--background {spec!r}: expected image:PATH")
        if not Path(arg).is_file():
            raise ConfigError(f"--background {spec!r}: {arg}: file not found")
        img = cv2.imread(arg, cv2.IMREAD_COLOR)
        if img is None:
            raise ConfigError(f"--background {spec!r}: {arg}: not a readable image")
        return Background("image", image_bgr=img)
    if kind == "blur":
        k = 31
        if arg:
            try:
                k = int(arg)
            except ValueError:
                k = -1
        if k < 3 or k % 2 == 0:
            raise ConfigError(f"--background {spec!r}: the blur kernel must be an odd integer >= 3, e.g. blur:31")
        return Background("blur", blur=k)
    raise ConfigError(f"--background {spec!r}: expected color:R,G,B, image:PATH or blur[:K]")


# =============================================================================== frame processor
class HumanSeg:
    """Frame-by-frame person segmentation with optional temporal stabilisation.

    Args:
        model: a :class:`PersonModel`.
        stabilize: fuse each frame with the motion-compensated history (for sequences).
        params: :class:`StabilizerParams`.
        feather: softness of the matte edge, in frame pixels (0: the upsampled probability
            through a steep ramp only).
        work_max_side: the stabiliser and the matte work at the network's resolution, at
            most this many pixels on the long side.
    """

    def __init__(self, model: PersonModel, *, stabilize: bool = True, params: StabilizerParams | None = None,
                 feather: float = 2.0, work_max_side: int = 320) -> None:
        if feather < 0:
            raise ConfigError(f"--feather must be >= 0, got {feather}")
        self.model = model
        self.stabilizer = TemporalStabilizer(params) if stabilize else None
        self.feather = float(feather)
        self.work_max_side = int(work_max_side)
        self.flicker = FlickerMeter()
        self.timings: dict[str, float] = {}

    def reset(self) -> None:
        """Forget the history (call between unrelated images or clips)."""
        if self.stabilizer is not None:
            self.stabilizer.reset()
        self.flicker = FlickerMeter()

    def probability(self, frame_bgr: np.ndarray) -> np.ndarray:
        """The (stabilised) person probability at the working resolution, float32."""
        fh, fw = frame_bgr.shape[:2]
        nh, nw = self.model.network_hw((fh, fw))
        small = frame_bgr if (nh, nw) == (fh, fw) else cv2.resize(frame_bgr, (nw, nh), interpolation=cv2.INTER_LINEAR)
        prob = self.model.predict(cv2.cvtColor(small, cv2.COLOR_BGR2RGB))
        scale = min(1.0, self.work_max_side / max(nh, nw))
        wh, ww = max(1, round(nh * scale)), max(1, round(nw * scale))
        if prob.shape != (wh, ww):
            prob = cv2.resize(np.asarray(prob, np.float32), (ww, wh), interpolation=cv2.INTER_LINEAR)
        grey = cv2.cvtColor(small, cv2.COLOR_BGR2GRAY)
        if grey.shape != (wh, ww):
            grey = cv2.resize(grey, (ww, wh), interpolation=cv2.INTER_AREA)
        if self.stabilizer is not None:
            prob = self.stabilizer(prob, grey)
        self.flicker.update(prob > 0.5, grey)
        return prob

    def alpha(self, prob: np.ndarray, frame_hw: tuple[int, int]) -> np.ndarray:
        """Matte ``H x W`` uint8 0..255: a steep ramp around 0.5, feathered, upsampled."""
        h, w = frame_hw
        a = prob - 0.5
        a *= 3.0  # probabilities 0.33..0.67 ramp from 0 to 1
        a += 0.5
        np.clip(a, 0.0, 1.0, out=a)
        sigma = self.feather * a.shape[1] / w
        if sigma >= 0.25:
            a = cv2.GaussianBlur(a, (0, 0), sigma)
        if a.shape != (h, w):
            a = cv2.resize(a, (w, h), interpolation=cv2.INTER_LINEAR)
        return cv2.convertScaleAbs(a, alpha=255.0)

    def render(self, frame_bgr: np.ndarray, output: Output, background: Background | None = None) -> np.ndarray:
        """Process one frame: mask (uint8 0/255), alpha (uint8 0..255) or composite (BGR uint8)."""
        h, w = frame_bgr.shape[:2]
        prob = self.probability(frame_bgr)
        if output == "mask":
            up = prob if prob.shape == (h, w) else cv2.resize(prob, (w, h), interpolation=cv2.INTER_LINEAR)
            return (up > 0.5).view(np.uint8) * np.uint8(255)
        a = self.alpha(prob, (h, w))
        if output == "alpha":
            return a
        if output != "composite":
            raise ConfigError(f"output must be one of {', '.join(OUTPUTS)}, got {output!r}")
        return composite(frame_bgr, (background or Background("color")).render(frame_bgr), a)


def composite(fg: np.ndarray, bg: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """``fg * a + bg * (1 - a)`` for uint8 images and a uint8 matte ``a`` (0..255), in uint8
    arithmetic (OpenCV, rounded; twice as fast as a float blend)."""
    a3 = cv2.merge((alpha, alpha, alpha))
    out = cv2.multiply(fg, a3, scale=1.0 / 255)
    cv2.bitwise_not(a3, dst=a3)
    return cv2.add(out, cv2.multiply(bg, a3, scale=1.0 / 255))


# =============================================================================== sources and sinks
@dataclass
class Source:
    """Frames to process: ``kind`` is ``images``, ``video`` or ``webcam``."""

    kind: Literal["images", "video", "webcam"]
    name: str
    fps: float = 30.0
    frame_count: int | None = None
    files: list[Path] = field(default_factory=list)
    root: Path | None = None
    capture: Any = None
    _first: np.ndarray | None = None

    @property
    def size(self) -> tuple[int, int] | None:
        """``(w, h)`` of a video's frames."""
        return None if self._first is None else (self._first.shape[1], self._first.shape[0])

    def frames(self, max_frames: int | None = None) -> Iterator[tuple[str, np.ndarray]]:
        """``(name, BGR uint8 frame)``; images are read one by one, videos until the end."""
        n = 0
        if self.kind == "images":
            for f in self.files:
                if max_frames is not None and n >= max_frames:
                    return
                img = cv2.imread(str(f), cv2.IMREAD_COLOR)
                if img is None:
                    raise DataError(f"{f}: cannot read image (not a decodable image file)")
                n += 1
                yield str(f.relative_to(self.root) if self.root else Path(f.name)), img
            return
        try:
            frame = self._first
            self._first = None
            while frame is not None and (max_frames is None or n < max_frames):
                n += 1
                yield f"{n - 1:06d}", frame
                ok, frame = self.capture.read()
                if not ok:
                    frame = None
        finally:
            self.close()

    def close(self) -> None:
        if self.capture is not None:
            self.capture.release()
            self.capture = None


def _first_frame(cap: Any) -> np.ndarray | None:
    if not cap.isOpened():
        return None
    ok, frame = cap.read()
    return frame if ok and frame is not None and frame.size else None


def open_source(spec: str | int, fps: float | None = None) -> Source:
    """An image file, a folder of images, a video file or a webcam index (``0``, ``1``...)."""
    text = str(spec)
    path = Path(text)
    if isinstance(spec, int) or (text.isdigit() and not path.exists()):
        index = int(text)
        cap = cv2.VideoCapture(index)
        first = _first_frame(cap)
        if first is None:
            cap.release()
            raise DataError(f"webcam {index}: not available (no camera with this index, it is in use, "
                            "or OpenCV has no camera support here)")
        rate = fps or cap.get(cv2.CAP_PROP_FPS)
        return Source("webcam", f"webcam {index}", fps=rate if rate and math.isfinite(rate) and rate > 0 else 30.0,
                      capture=cap, _first=first)
    if not path.exists():
        raise DataError(f"{path}: input not found")
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise DataError(f"{path}: no images in this folder ({', '.join(IMAGE_SUFFIXES)})")
        return Source("images", str(path), files=files, root=path, frame_count=len(files))
    if path.suffix.lower() in IMAGE_SUFFIXES:
        return Source("images", str(path), files=[path], frame_count=1)
    cap = cv2.VideoCapture(str(path))
    first = _first_frame(cap)
    if first is None:
        cap.release()
        raise DataError(f"{path}: cannot read video (not a video file, empty, or a codec OpenCV cannot decode)")
    rate = fps or cap.get(cv2.CAP_PROP_FPS)
    count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
    return Source("video", str(path), fps=rate if rate and math.isfinite(rate) and rate > 0 else 30.0,
                  frame_count=count if count > 0 else None, capture=cap, _first=first)


class VideoSink:
    """An ``mp4v`` video written to a temp file next to ``path`` and renamed into place by
    :meth:`commit`; :meth:`discard` (or an error) leaves ``path`` untouched."""

    def __init__(self, path: str | os.PathLike, fps: float, size_wh: tuple[int, int]) -> None:
        self.path = Path(path)
        if self.path.suffix.lower() not in WRITE_VIDEO_SUFFIXES:
            raise ConfigError(f"--out {self.path}: a video output needs one of {', '.join(WRITE_VIDEO_SUFFIXES)}")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = self.path.parent / f".{self.path.stem}.{os.getpid()}.{secrets.token_hex(4)}.tmp{self.path.suffix}"
        self.size = (int(size_wh[0]), int(size_wh[1]))
        self.writer = cv2.VideoWriter(str(self.tmp), cv2.VideoWriter_fourcc(*"mp4v"), float(fps), self.size, True)
        if not self.writer.isOpened():
            self.writer.release()
            self.tmp.unlink(missing_ok=True)
            raise PPSegError(f"--out {self.path}: OpenCV cannot write an mp4v video there")
        self.frames = 0

    def write(self, frame: np.ndarray) -> None:
        if frame.ndim == 2:
            frame = cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
        self.writer.write(frame)
        self.frames += 1

    def commit(self) -> Path:
        self.writer.release()
        if not self.tmp.is_file() or self.tmp.stat().st_size == 0:
            self.tmp.unlink(missing_ok=True)
            raise PPSegError(f"--out {self.path}: the video writer produced no file")
        os.replace(self.tmp, self.path)
        return self.path

    def discard(self) -> None:
        self.writer.release()
        self.tmp.unlink(missing_ok=True)


def _write_image(path: Path, img: np.ndarray) -> None:
    from ..fileio import atomic_open

    ok, buf = cv2.imencode(path.suffix.lower() or ".png", img)
    if not ok:
        raise PPSegError(f"{path}: cannot encode the image")
    with atomic_open(path, fsync=False) as f:
        f.write(buf.tobytes())


# =============================================================================== runner
@dataclass
class RunResult:
    """What :func:`run_humanseg` did: frames, wall seconds (first decode to last write),
    outputs written, flicker (:class:`FlickerMeter`; ``None`` for single images)."""

    frames: int
    seconds: float
    outputs: list[Path]
    flicker: float | None
    interrupted: bool = False

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0


def _progress(total: int | None, enabled: bool, desc: str) -> Any:
    if not enabled:
        return None
    try:
        from tqdm import tqdm
    except ImportError:  # tqdm comes with the 'train' extra; the torch-free install may not have it
        return None
    return tqdm(total=total, desc=desc, unit="frame", dynamic_ncols=True, file=sys.stderr)


def run_humanseg(
    model: PersonModel,
    source: str | int | Source,
    out: str | os.PathLike,
    *,
    output: Output = "composite",
    background: str | Background = "blur",
    stabilize: bool | None = None,
    params: StabilizerParams | None = None,
    feather: float = 2.0,
    max_frames: int | None = None,
    fps: float | None = None,
    progress: bool = False,
) -> RunResult:
    """Segment the people in ``source`` and write ``output`` to ``out``.

    Args:
        model: a :class:`PersonModel` (:func:`load_person_model`).
        source: image file, folder of images, video file, webcam index, or an opened :class:`Source`.
        out: images: a ``.png``/``.jpg`` file (single image) or a folder (PNG per image,
            sub-folders mirrored); videos and webcams: a video file (``.mp4``...).
        output: ``mask`` (0/255), ``alpha`` (0..255 matte) or ``composite``.
        background: for ``composite``: ``color:R,G,B``, ``image:PATH`` or ``blur[:K]``.
        stabilize: temporal stabilisation (default: on for videos and webcams, off for images).
        max_frames: stop after this many frames.
        fps: output frame rate (default: the input's; 30 when unknown).
        progress: show a progress bar with frames/s (tqdm).

    A video is written to a temp file and renamed into place at the end; on an error or
    Ctrl-C the temp file is removed and ``out`` is left as it was. A webcam recording
    stopped with Ctrl-C is finished and kept (that is how a webcam run ends).
    """
    if output not in OUTPUTS:
        raise ConfigError(f"--output must be one of {', '.join(OUTPUTS)}, got {output!r}")
    if max_frames is not None and max_frames < 1:
        raise ConfigError(f"--max-frames must be >= 1, got {max_frames}")
    bg = parse_background(background) if isinstance(background, str) else background
    src = source if isinstance(source, Source) else open_source(source, fps=fps)
    out = Path(out)
    try:
        if src.kind == "images":
            return _run_images(model, src, out, output, bg, bool(stabilize), params, feather, max_frames, progress)
        return _run_video(model, src, out, output, bg, stabilize is not False, params, feather, max_frames,
                          fps or src.fps, progress)
    finally:
        src.close()


def _run_images(model: PersonModel, src: Source, out: Path, output: Output, bg: Background, stabilize: bool,
                params: StabilizerParams | None, feather: float, max_frames: int | None, progress: bool) -> RunResult:
    single = len(src.files) == 1 and src.root is None
    if single and out.suffix.lower() in IMAGE_SUFFIXES:
        target_of = lambda name: out  # noqa: E731
    else:
        if out.suffix.lower() in IMAGE_SUFFIXES + VIDEO_SUFFIXES:
            raise ConfigError(f"--out {out}: a folder is needed for a folder of images")
        target_of = lambda name: (out / name).with_suffix(".png")  # noqa: E731
    seg = HumanSeg(model, stabilize=stabilize, params=params, feather=feather)
    bar = _progress(src.frame_count, progress, "humanseg")
    written: list[Path] = []
    start = time.perf_counter()
    try:
        for name, frame in src.frames(max_frames):
            if not stabilize:
                seg.reset()
            target = target_of(name)
            _write_image(target, seg.render(frame, output, bg))
            written.append(target)
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    seconds = time.perf_counter() - start
    return RunResult(len(written), seconds, written, seg.flicker.value if stabilize else None)


def _run_video(model: PersonModel, src: Source, out: Path, output: Output, bg: Background, stabilize: bool,
               params: StabilizerParams | None, feather: float, max_frames: int | None, fps: float,
               progress: bool) -> RunResult:
    if out.suffix.lower() not in WRITE_VIDEO_SUFFIXES:
        raise ConfigError(f"--out {out}: a video input needs a video output file ({', '.join(WRITE_VIDEO_SUFFIXES)})")
    seg = HumanSeg(model, stabilize=stabilize, params=params, feather=feather)
    assert src.size is not None
    sink = VideoSink(out, fps, src.size)
    total = min(src.frame_count, max_frames) if src.frame_count and max_frames else (src.frame_count or max_frames)
    bar = _progress(total, progress, "humanseg")
    interrupted = False
    start = time.perf_counter()
    try:
        try:
            for _, frame in src.frames(max_frames):
                if (frame.shape[1], frame.shape[0]) != sink.size:  # a stream that changes size mid-way
                    frame = cv2.resize(frame, sink.size, interpolation=cv2.INTER_LINEAR)
                sink.write(seg.render(frame, output, bg))
                if bar is not None:
                    bar.update(1)
        except KeyboardInterrupt:
            if src.kind != "webcam":
                raise
            interrupted = True  # the normal end of a webcam recording: keep what was recorded
        seconds = time.perf_counter() - start
        if sink.frames == 0:
            raise DataError(f"{src.name}: no frames could be read")
        path = sink.commit()
    except BaseException:
        sink.discard()
        raise
    finally:
        if bar is not None:
            bar.close()
    return RunResult(sink.frames, seconds, [path], seg.flicker.value, interrupted=interrupted)
