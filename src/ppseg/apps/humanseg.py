"""Person segmentation for images, videos and webcams: masks, alpha mattes, background replacement.

The library behind ``ppseg humanseg``; what is specific to it: person models, the per-frame
processor :class:`HumanSeg` and the runner :func:`run_humanseg`. Per frame::

    decode -> resize to the network input -> person probability (softmax channel 1)
      -> temporal stabilisation (videos, webcams) -> mask | alpha matte | composite -> encode

The parts other apps reuse live next to it: :mod:`ppseg.apps.media` (sources, sinks, image
writing, progress), :mod:`ppseg.apps.compositing` (backgrounds, alpha compositing) and
:mod:`ppseg.apps.stabilize` (optical-flow temporal stabilisation, flicker measure).

Models (:func:`load_person_model`): an exported ``model.onnx`` runs on ONNX Runtime through
:class:`ppseg.deploy.Predictor`'s session and sidecar (no torch needed); a ppseg weights file
runs on PyTorch through :func:`ppseg.semantic.segmentor.load_segmentor`. Any :class:`PersonModel`
subclass works (tests plug in models whose output they control).

Stabilisation, like the matte, works at the network's resolution (e.g. 256x144: one DIS flow
per frame); only the final matte is upsampled to the frame, and the composite is blended in
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

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import cv2
import numpy as np

from ..config import number_in_range
from ..data.io import IMAGE_SUFFIXES
from ..errors import ConfigError, DataError, PPSegError
from ..fileio import check_output_path
from .compositing import Background, composite, parse_background
from .media import (VIDEO_SUFFIXES, WRITE_VIDEO_SUFFIXES, Source, StagedFolder, VideoSink, check_fps, make_parents,
                    open_source, progress_bar, remove_created, write_frame)
from .stabilize import FlickerMeter, StabilizerParams, TemporalStabilizer

__all__ = [
    "OUTPUTS", "REFERENCE_INPUT_SIZES", "DEFAULT_INPUT_SIZE",
    "PersonModel", "OnnxPersonModel", "TorchPersonModel", "load_person_model",
    "HumanSeg", "RunResult", "run_humanseg", "check_outputs", "check_input_size", "check_feather",
    "INPUT_SIZE_RANGE", "FEATHER_RANGE", "MAX_NETWORK_SIDE",
]

Output = Literal["mask", "alpha", "composite"]
OUTPUTS: tuple[str, ...] = ("mask", "alpha", "composite")

#: network input (w, h) of the reference deploy configs (spec §9.1), landscape; swapped for
#: portrait-orientation frames. Used for weights files, which do not record an input size.
REFERENCE_INPUT_SIZES: dict[str, tuple[int, int]] = {
    "pp_humanseg_lite_v1": (398, 224),
    "pp_humansegv2_lite_portrait": (256, 144),
    "pp_humansegv2_lite_general": (192, 192),
    "pp_humansegv2_mobile": (192, 192),
}
DEFAULT_INPUT_SIZE = (256, 144)
#: the network input sides ``--input-size`` takes (a person model needs no more; 8192 runs out of memory)
INPUT_SIZE_RANGE = (8, 2048)
#: the longest network side a dynamic ONNX graph without a resize gets (larger frames are scaled down to it)
MAX_NETWORK_SIDE = 2048
#: matte edge softness ``--feather`` in pixels
FEATHER_RANGE = (0.0, 1000.0)


def check_input_size(input_size: tuple[int, int] | None) -> tuple[int, int] | None:
    """``(w, h)`` within :data:`INPUT_SIZE_RANGE`, or a :class:`ConfigError` naming ``--input-size``."""
    if input_size is None:
        return None
    lo, hi = INPUT_SIZE_RANGE
    try:
        values = tuple(int(v) for v in input_size)
    except (TypeError, ValueError):
        values = ()
    if len(values) != 2 or not all(lo <= v <= hi for v in values):
        raise ConfigError(f"--input-size must be two sizes in [{lo}, {hi}] (W H), got {list(input_size)}")
    return values  # type: ignore[return-value]


def check_feather(feather: float) -> float:
    """``feather`` within :data:`FEATHER_RANGE`, or a :class:`ConfigError` naming ``--feather``."""
    value = number_in_range(feather, *FEATHER_RANGE)
    if value is None:
        lo, hi = FEATHER_RANGE
        raise ConfigError(f"--feather must be a number of pixels in [{lo:g}, {hi:g}], got {feather}")
    return value


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
        if car.num_classes != 2:
            raise PPSegError(f"{path}: a person model has 2 classes (background, person); "
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
                from ..data.sample import Sample

                sample = Sample(np.zeros((*frame_hw, 3), np.uint8))
                for tr in self._resize:
                    sample = tr(sample, np.random.default_rng(0))
                hw = sample.hw
        elif self.input_size is not None:
            hw = _orient(self.input_size, frame_hw)
        else:  # the frame itself, scaled down to MAX_NETWORK_SIDE (a 8000x8000 image would not fit)
            s = min(1.0, MAX_NETWORK_SIDE / max(frame_hw))
            hw = (max(1, round(frame_hw[0] * s)), max(1, round(frame_hw[1] * s)))
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
        from ..semantic.segmentor import load_segmentor
        from ..weights import load_file

        if threads is not None:
            torch.set_num_threads(int(threads))
        self._torch = torch
        self.name = str(load_file(path).get("model") or "model")
        self.segmentor = load_segmentor(path)
        if self.segmentor.num_classes != 2:
            raise PPSegError(f"{path}: a person model has 2 classes (background, person); "
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
    input_size = check_input_size(input_size)
    if not p.exists():
        raise PPSegError(f"{p}: model not found")
    if p.suffix.lower() == ".onnx":
        if not p.is_file():
            raise PPSegError(f"{p}: not a file (give the model.onnx that 'ppseg export' wrote)")
        return OnnxPersonModel(p, threads=threads, input_size=input_size)
    return TorchPersonModel(p, threads=threads, input_size=input_size)


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
        self.feather = check_feather(feather)
        self.model = model
        self.stabilizer = TemporalStabilizer(params) if stabilize else None
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

    Nothing is half-written: ``out`` is checked before the first frame (:func:`check_outputs`);
    a video is written to a temp file and renamed into place at the end, a folder of images
    into a hidden staging folder next to ``out`` moved into place when every image succeeded,
    a single image atomically. On an error or Ctrl-C nothing is left and ``out`` is as it was
    (a video that turns out truncated or corrupt is such an error). A webcam recording stopped
    with Ctrl-C is finished and kept (that is how a webcam run ends).
    """
    if output not in OUTPUTS:
        raise ConfigError(f"--output must be one of {', '.join(OUTPUTS)}, got {output!r}")
    if max_frames is not None and max_frames < 1:
        raise ConfigError(f"--max-frames must be >= 1, got {max_frames}")
    if fps is not None:
        fps = check_fps(fps)
    feather = check_feather(feather)
    bg = parse_background(background) if isinstance(background, str) else background
    src = source if isinstance(source, Source) else open_source(source, fps=fps)
    out = Path(out)
    try:
        targets = check_outputs(src, out, max_frames)
        if src.kind == "images":
            return _run_images(model, src, out, targets, output, bg, bool(stabilize), params, feather, max_frames,
                               progress)
        return _run_video(model, src, out, output, bg, stabilize is not False, params, feather, max_frames,
                          fps or src.fps, progress)
    finally:
        src.close()


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve() or (a.exists() and b.exists() and os.path.samefile(a, b))
    except OSError:
        return False


def check_outputs(src: Source, out: str | os.PathLike, max_frames: int | None = None) -> list[Path]:
    """Check ``out`` for ``src`` before any work and return the files that will be written.

    Images: a single image goes to an image file ``out`` (or into the folder ``out``), a folder
    of images into the folder ``out`` (``<name>.png``, sub-folders mirrored); videos and webcams
    to a video file. Refused, with a :class:`~ppseg.errors.PPSegError` naming ``--out``: the wrong
    kind of path, a path under a file or in a folder that cannot be written, a target that is an
    existing folder, two inputs with one output name (``a.jpg`` and ``a.png``), and an output
    that would overwrite an input."""
    out = Path(out)
    if src.kind != "images":
        if out.suffix.lower() not in WRITE_VIDEO_SUFFIXES:
            raise ConfigError(f"--out {out}: a video input needs a video output file "
                              f"({', '.join(WRITE_VIDEO_SUFFIXES)})")
        check_output_path(out, "--out", "file")
        if src.kind == "video" and _same_file(out, Path(src.name)):
            raise ConfigError(f"--out {out}: is the input video; give another file name")
        return [out]
    files = src.files if max_frames is None else src.files[:max_frames]
    single = len(src.files) == 1 and src.root is None
    if single and out.suffix.lower() in IMAGE_SUFFIXES:
        check_output_path(out, "--out", "file")
        pairs = [(src.files[0], out)]
    else:
        if out.suffix.lower() in IMAGE_SUFFIXES + VIDEO_SUFFIXES:
            need = "an image file (.png, .jpg...) or a folder" if single else "a folder"
            raise ConfigError(f"--out {out}: {'an image' if single else 'a folder of images'} needs {need}")
        check_output_path(out, "--out", "dir")
        pairs = [(f, (out / (f.relative_to(src.root) if src.root else Path(f.name))).with_suffix(".png"))
                 for f in files]
    seen: dict[Path, Path] = {}
    for f, target in pairs:
        if target in seen:
            raise ConfigError(f"--out {out}: {seen[target]} and {f} would both be written to {target}; "
                              "rename one of them")
        seen[target] = f
        if target.is_dir():
            raise ConfigError(f"--out {out}: {target} is a folder; it cannot be replaced by an image")
        if _same_file(target, f):
            raise ConfigError(f"--out {out}: would overwrite the input image {f}; give another output")
        parent = target.parent
        while parent != out.parent and not parent.exists():
            parent = parent.parent
        if parent.exists() and not parent.is_dir():
            raise ConfigError(f"--out {out}: {target} lies under {parent}, which is a file, not a folder")
        if parent.exists() and not os.access(parent, os.W_OK | os.X_OK):
            raise ConfigError(f"--out {out}: {parent} is not writable")
    return [t for _, t in pairs]


def _run_images(model: PersonModel, src: Source, out: Path, targets: list[Path], output: Output, bg: Background,
                stabilize: bool, params: StabilizerParams | None, feather: float, max_frames: int | None,
                progress: bool) -> RunResult:
    seg = HumanSeg(model, stabilize=stabilize, params=params, feather=feather)
    bar = progress_bar(len(targets), progress, "humanseg")
    folder = not (len(targets) == 1 and targets[0] == out)
    stage = StagedFolder(out) if folder else None
    created = [] if folder else make_parents(out.parent)
    start = time.perf_counter()
    try:
        for (_, frame), target in zip(src.frames(max_frames), targets):
            if not stabilize:
                seg.reset()
            image = seg.render(frame, output, bg)
            if stage is not None:
                write_frame(stage.staged(target.relative_to(out)), image)
            else:
                write_frame(target, image)  # atomic: a temp file renamed into place
            if bar is not None:
                bar.update(1)
        written = stage.commit() if stage is not None else list(targets)
    except BaseException:
        if stage is not None:
            stage.discard()
        remove_created(created)
        raise
    finally:
        if bar is not None:
            bar.close()
    seconds = time.perf_counter() - start
    return RunResult(len(written), seconds, written, seg.flicker.value if stabilize else None)


def _run_video(model: PersonModel, src: Source, out: Path, output: Output, bg: Background, stabilize: bool,
               params: StabilizerParams | None, feather: float, max_frames: int | None, fps: float,
               progress: bool) -> RunResult:
    seg = HumanSeg(model, stabilize=stabilize, params=params, feather=feather)
    assert src.size is not None
    sink = VideoSink(out, fps, src.size)
    total = min(src.frame_count, max_frames) if src.frame_count and max_frames else (src.frame_count or max_frames)
    bar = progress_bar(total, progress, "humanseg")
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
