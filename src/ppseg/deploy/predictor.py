"""Run an exported ppseg model with ONNX Runtime: numpy, onnxruntime and OpenCV only (no torch).

Pre- and post-processing come from the sidecar (``model.json``) that
``ppseg export`` wrote next to the model, so the same image gives the same
labels as ``ppseg predict`` with the checkpoint it was exported from.

Example:
    >>> from ppseg.deploy import Predictor
    >>> p = Predictor("export/model.onnx", threads=1)
    >>> labels = p.predict("street.jpg")            # H x W, original image size
    >>> probs = p.predict("street.jpg", output="probs")   # C x H x W (softmax / none exports)
    >>> for path, labels in p.predict_dir("images/"): ...
    >>> cv2.imwrite("overlay.jpg", p.overlay(image_rgb, labels)[..., ::-1])
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Literal

import cv2
import numpy as np

from ..data.io import IMAGE_SUFFIXES, list_images, read_image
from ..data.palette import overlay as _overlay
from ..data.sample import Sample
from ..data.transforms import build_transforms
from ..errors import ConfigError, DataError, PPSegError
from .sidecar import OUTPUT_OPS, Sidecar, read_sidecar

__all__ = ["Predictor", "IMAGE_SUFFIXES", "list_images"]


#: ONNX Runtime graph optimisation levels by name
OPT_LEVELS = ("disable", "basic", "extended", "all")

ImageLike = str | os.PathLike | np.ndarray


def _ort():
    try:
        import onnxruntime as ort
    except ImportError:  # pragma: no cover - depends on the environment
        raise PPSegError("onnxruntime is not installed: pip install 'ppseg[deploy]'") from None
    return ort


def check_runtime_args(path: Path, threads: int | None, providers: Sequence[str] | None,
                       optimization: str = "all") -> None:
    """One line for a missing model file, a bad optimisation level, provider list or thread count."""
    if not path.is_file():
        raise PPSegError(f"{path}: ONNX model not found")
    if optimization not in OPT_LEVELS:
        raise ConfigError(f"optimization must be one of {', '.join(OPT_LEVELS)}, got {optimization!r}")
    if isinstance(providers, str) or (providers is not None and not all(isinstance(p, str) for p in providers)):
        raise ConfigError(f"providers must be a list of ONNX Runtime provider names, e.g. "
                          f"['CPUExecutionProvider'], got {providers!r}")
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
        raise ConfigError(f"threads must be an integer >= 1 or None, got {threads!r}")


def open_session(path: Path, threads: int | None, providers: Sequence[str] | None, optimization: str = "all"):
    """An ONNX Runtime session for ``path``: ``threads`` intra-op threads (``None``: ORT's default), one
    inter-op thread, sequential execution, errors-only logging; a file ORT cannot load is one line."""
    ort = _ort()
    so = ort.SessionOptions()
    so.graph_optimization_level = {
        "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    }[optimization]
    if threads is not None:
        so.intra_op_num_threads = int(threads)
        so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.log_severity_level = 3  # errors only: graph clean-up notices are not the user's business
    try:
        return ort.InferenceSession(str(path), so, providers=list(providers or ["CPUExecutionProvider"]))
    except Exception as e:  # noqa: BLE001 - onnxruntime raises its own exception types
        first = str(e).strip().splitlines()[0][:300] if str(e).strip() else type(e).__name__
        raise PPSegError(f"{path}: ONNX Runtime cannot load the model ({first})") from None


def _softmax(logits: np.ndarray, axis: int) -> np.ndarray:
    z = logits - logits.max(axis=axis, keepdims=True)
    np.exp(z, out=z)
    z /= z.sum(axis=axis, keepdims=True)
    return z


def _resize_chw(x: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """Bilinear resize (half-pixel centres, like torch's ``align_corners=False``) of a C x h x w float array."""
    if tuple(x.shape[1:]) == tuple(hw):
        return x
    h, w = hw
    hwc = np.ascontiguousarray(x.transpose(1, 2, 0))
    # OpenCV handles at most 512 channels per call
    parts = [cv2.resize(hwc[..., i:i + 512], (w, h), interpolation=cv2.INTER_LINEAR) for i in range(0, x.shape[0], 512)]
    parts = [p[..., None] if p.ndim == 2 else p for p in parts]
    return np.concatenate(parts, axis=2).transpose(2, 0, 1)


class Predictor:
    """Label maps (or probabilities) for images from an exported ppseg ONNX model.

    Args:
        model_path: the ``model.onnx`` written by ``ppseg export`` (``model.json`` next to it).
        threads: ONNX Runtime intra-op threads (``None``: ONNX Runtime's default).
        optimization: ONNX Runtime graph optimisation level: ``disable``, ``basic``,
            ``extended`` or ``all``.
        providers: ONNX Runtime execution providers (default: CPU).
        check_hash: refuse a sidecar whose recorded ONNX hash differs from the file.

    Images are file paths or ``H x W x 3`` uint8 arrays in **RGB** order (as
    :func:`ppseg.data.io.read_image` returns them; convert OpenCV's BGR first).
    Results are at the original image size: labels ``H x W`` (uint8 when there
    are at most 256 classes, else int32), probabilities ``C x H x W`` float32.
    """

    def __init__(
        self,
        model_path: str | os.PathLike,
        *,
        threads: int | None = None,
        optimization: Literal["disable", "basic", "extended", "all"] = "all",
        providers: Sequence[str] | None = None,
        check_hash: bool = True,
    ) -> None:
        self.path = Path(model_path)
        check_runtime_args(self.path, threads, providers, optimization)
        self.sidecar: Sidecar = read_sidecar(self.path, check_hash=check_hash)
        self.session = open_session(self.path, threads, providers, optimization)
        self._check_session()
        # the transforms one by one: Compose would make uint8 images float32
        self._resize = build_transforms(self.sidecar.resize).transforms
        spec = self.sidecar.input
        self._mean = np.asarray(spec.mean, np.float32).reshape(1, 1, 3)
        self._inv_std = (1.0 / np.asarray(spec.std, np.float32)).reshape(1, 1, 3)
        self.palette = np.asarray(self.sidecar.palette, np.uint8).reshape(-1, 3)
        self._rng = np.random.default_rng(0)  # resize transforms are deterministic; they take an rng

    # ------------------------------------------------------------------ properties

    @property
    def num_classes(self) -> int:
        return self.sidecar.num_classes

    @property
    def class_names(self) -> list[str]:
        return list(self.sidecar.class_names)

    @property
    def output_op(self) -> str:
        return self.sidecar.output.op

    def _check_session(self) -> None:
        car, where = self.sidecar, f"{self.path.with_suffix('.json')}"
        inputs = {i.name: i for i in self.session.get_inputs()}
        outputs = {o.name for o in self.session.get_outputs()}
        expect_inputs = {car.input.name} | ({car.output_size_input} if car.output_size_input else set())
        if set(inputs) != expect_inputs or car.output.name not in outputs:
            raise PPSegError(f"{where}: does not describe {self.path.name} (sidecar inputs {sorted(expect_inputs)}, "
                             f"output {car.output.name!r}; model inputs {sorted(inputs)}, outputs {sorted(outputs)})")
        model_dtype = inputs[car.input.name].type  # e.g. 'tensor(float)'
        want = {"float32": "tensor(float)", "uint8": "tensor(uint8)"}[car.input.dtype]
        if model_dtype != want or len(inputs[car.input.name].shape) != 4:
            raise PPSegError(f"{where}: input {car.input.name!r} is {model_dtype} "
                             f"{inputs[car.input.name].shape} in the model, the sidecar says {car.input.dtype} 4-D")
        out = next(o for o in self.session.get_outputs() if o.name == car.output.name)
        _, dtype, layout, _ = OUTPUT_OPS[car.output.op]
        want_out = {"int64": "tensor(int64)", "float32": "tensor(float)"}[dtype]
        if out.type != want_out or len(out.shape) != len(layout):
            raise PPSegError(f"{where}: output.op {car.output.op!r} means a {dtype} {layout} output, but the model's "
                             f"{out.name!r} is {out.type} with {len(out.shape)} dims (the sidecar was edited or "
                             "belongs to another export)")

    # ------------------------------------------------------------------ pre-processing

    def load(self, image: ImageLike) -> np.ndarray:
        """An RGB uint8 ``H x W x 3`` array from a path or an array (checked)."""
        if isinstance(image, (str, os.PathLike)):
            return read_image(image)
        if not (isinstance(image, np.ndarray) or hasattr(image, "__array_interface__") or hasattr(image, "__array__")):
            raise DataError(f"an image must be a file path or an H x W x 3 uint8 RGB numpy array, got "
                            f"{type(image).__name__} {image!r:.60}")
        arr = np.asarray(image)  # a numpy array, or an array-like such as a PIL image
        if arr.ndim == 2:
            arr = np.repeat(arr[..., None], 3, axis=2)
        if arr.ndim != 3 or arr.shape[2] not in (3, 4) or arr.shape[0] < 1 or arr.shape[1] < 1:
            raise DataError(f"image array must be H x W x 3 (RGB), got shape {arr.shape}")
        if arr.dtype != np.uint8:
            raise DataError(f"image array must be uint8 (0..255 RGB), got {arr.dtype}")
        return arr[..., :3]

    def preprocess(self, image_rgb: np.ndarray) -> np.ndarray:
        """One image -> the graph input for it, batch of 1 (resize policy, colour order, layout, normalisation)."""
        spec = self.sidecar.input
        img = image_rgb[..., ::-1] if spec.color_order == "BGR" else image_rgb
        # float exports resize in float32, exactly like the val transforms of `ppseg predict`
        img = np.ascontiguousarray(img, dtype=np.uint8 if spec.dtype == "uint8" else np.float32)
        fixed = spec.static_hw
        if fixed is not None:
            if img.shape[:2] != fixed:
                img = cv2.resize(img, (fixed[1], fixed[0]), interpolation=cv2.INTER_LINEAR)
        elif self.sidecar.resize:
            sample = Sample(img)
            for t in self._resize:
                sample = t(sample, self._rng)
            img = sample.image
        if spec.dtype == "uint8":
            return img[None]  # N H W C, the graph casts and normalises
        img = (img - self._mean) * self._inv_std
        return np.ascontiguousarray(img.transpose(2, 0, 1))[None]

    # ------------------------------------------------------------------ inference

    def _run(self, batch: np.ndarray, out_hw: tuple[int, int]) -> np.ndarray:
        feeds = {self.sidecar.input.name: batch}
        if self.sidecar.output_size_input:
            feeds[self.sidecar.output_size_input] = np.asarray(out_hw, dtype=np.int64)
        return self.session.run([self.sidecar.output.name], feeds)[0]

    def _finish(self, out: np.ndarray, hw: tuple[int, int], output: str) -> np.ndarray:
        """One image's raw graph output -> labels or probabilities at ``hw``."""
        op = self.sidecar.output.op
        if op in ("argmax", "vim"):
            labels = out
        else:
            out = out.astype(np.float32, copy=False)
            if op == "none":
                out = _resize_chw(out, hw)
                if output == "probs":
                    return _softmax(out, axis=0)
            elif output == "probs":
                return out
            labels = out.argmax(axis=0)
        return labels.astype(np.uint8 if self.num_classes <= 256 else np.int32, copy=False)

    def predict(self, image: ImageLike, output: Literal["labels", "probs"] = "labels") -> np.ndarray:
        """Labels ``H x W`` or probabilities ``C x H x W`` for one image at its original size."""
        return self.predict_batch([image], output=output)[0]

    def predict_batch(self, images: Iterable[ImageLike], output: Literal["labels", "probs"] = "labels",
                      batch_size: int = 8) -> list[np.ndarray]:
        """:meth:`predict` for many images; images with the same input and output size run together."""
        if output not in ("labels", "probs"):
            raise ConfigError(f"output must be 'labels' or 'probs', got {output!r}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ConfigError(f"batch_size must be an integer >= 1, got {batch_size!r}")
        if output == "probs" and self.sidecar.output.op in ("argmax", "vim"):
            raise ConfigError(f"{self.path}: exported with output op '{self.sidecar.output.op}', which returns labels "
                              "only; export with --output-op softmax (or none) for probabilities")
        loaded = [self.load(im) for im in images]
        prepared = [self.preprocess(im) for im in loaded]
        results: list[np.ndarray | None] = [None] * len(loaded)
        static_n = self.sidecar.input.static_batch
        step = static_n or batch_size
        i = 0
        while i < len(loaded):
            hw = loaded[i].shape[:2]
            j = i + 1  # a run of images with the same network input and output size
            while j < len(loaded) and j - i < step and loaded[j].shape[:2] == hw \
                    and prepared[j].shape == prepared[i].shape:
                j += 1
            batch = np.concatenate(prepared[i:j])
            if static_n and len(batch) < static_n:  # fixed-batch graphs: repeat the last image
                batch = np.concatenate([batch] + [batch[-1:]] * (static_n - len(batch)))
            out = self._run(batch, hw)
            for k in range(i, j):
                results[k] = self._finish(out[k - i], hw, output)
            i = j
        return [r for r in results if r is not None]

    def predict_dir(self, folder: str | os.PathLike, output: Literal["labels", "probs"] = "labels"
                    ) -> Iterator[tuple[Path, np.ndarray]]:
        """``(path, result)`` for every image under ``folder`` (recursive, sorted)."""
        for path in list_images(folder):
            yield path, self.predict(path, output=output)

    def overlay(self, image: ImageLike, labels: np.ndarray, alpha: float = 0.5) -> np.ndarray:
        """The label map blended over the image with the sidecar's palette (RGB uint8)."""
        return _overlay(self.load(image), labels, self.palette, alpha)
