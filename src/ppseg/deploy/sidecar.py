"""The sidecar: everything a deployment needs to know about an exported ONNX model.

``ppseg export`` writes ``model.json`` next to ``model.onnx``. It says how to turn
an image into the graph's input (colour order, layout, dtype, resize policy,
mean/std, whether normalisation is inside the graph), what the graph returns
(output op, dtype, meaning), and what the classes are (names, palette). It also
records where the model came from (ppseg version, opset, source checkpoint hash)
and the SHA-256 of the ONNX file, so a sidecar that belongs to another model is
refused instead of silently producing wrong masks.

Example ``model.json`` (abridged)::

    {"format": "ppseg-onnx", "format_version": 1,
     "input": {"name": "image", "layout": "NCHW", "dtype": "float32", "shape": [null, 3, null, null],
               "color_order": "RGB", "normalized_in_graph": false,
               "mean": [127.5, 127.5, 127.5], "std": [127.5, 127.5, 127.5]},
     "output_size_input": "output_size",
     "resize": [{"type": "Resize", "target_size": [480, 360]}], "transforms_version": 1,
     "output": {"name": "labels", "op": "argmax", "dtype": "int64", "layout": "NHW"},
     "num_classes": 11, "class_names": [...], "palette": [[128, 128, 128], ...], ...}

Only numpy and the standard library are used here (no torch).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..data.transforms import TRANSFORMS_FORMAT_VERSION, read_transforms
from ..config import is_finite_number
from ..errors import ConfigError, PPSegError

__all__ = ["FORMAT", "FORMAT_VERSION", "OUTPUT_OPS", "RESIZE_TRANSFORMS", "InputSpec", "OutputSpec", "Sidecar",
           "sha256_of", "read_sidecar", "sidecar_path"]

FORMAT = "ppseg-onnx"
FORMAT_VERSION = 1

#: output op -> (output name, dtype, layout, meaning)
OUTPUT_OPS: dict[str, tuple[str, str, str, str]] = {
    "none": ("logits", "float32", "NCHW", "raw class scores at the network input size"),
    "softmax": ("probs", "float32", "NCHW", "class probabilities at output_size (softmax over C)"),
    "argmax": ("labels", "int64", "NHW", "class index per pixel at output_size (argmax of bilinearly resized logits)"),
    "vim": ("labels", "int64", "NHW", "class index per pixel at output_size (VIM: argmax over the classes that win "
                                      "somewhere at low resolution, resized from the low-resolution logits)"),
}

#: val transforms a sidecar may carry (deterministic resizes); the deploy predictor applies them
RESIZE_TRANSFORMS = ("Resize", "ResizeByShort", "ResizeByLong")


@dataclass
class InputSpec:
    """The image input of the graph.

    Attributes:
        name: ONNX input name.
        layout: ``"NCHW"`` (float input) or ``"NHWC"`` (``--uint8-input``: raw bytes as decoded).
        dtype: ``"float32"`` or ``"uint8"``.
        shape: ``[N, C, H, W]`` / ``[N, H, W, C]`` with ``None`` for dynamic axes.
        color_order: channel order the graph expects (``"RGB"``).
        normalized_in_graph: ``True``: feed 0..255 values, the graph subtracts ``mean`` and
            divides by ``std``; ``False``: feed ``(pixel - mean) / std`` yourself.
        mean: per-channel mean on the 0..255 scale.
        std: per-channel standard deviation on the 0..255 scale.
    """

    name: str
    layout: str
    dtype: str
    shape: list[int | None]
    color_order: str
    normalized_in_graph: bool
    mean: list[float]
    std: list[float]

    @property
    def static_hw(self) -> tuple[int, int] | None:
        """``(H, W)`` when both are fixed in the graph, else ``None``."""
        h, w = (self.shape[2], self.shape[3]) if self.layout == "NCHW" else (self.shape[1], self.shape[2])
        return (int(h), int(w)) if h is not None and w is not None else None

    @property
    def static_batch(self) -> int | None:
        return None if self.shape[0] is None else int(self.shape[0])


@dataclass
class OutputSpec:
    """The graph's output: ``name``, ``op`` (a key of :data:`OUTPUT_OPS`), ``dtype``, ``layout``, ``meaning``."""

    name: str
    op: str
    dtype: str
    layout: str
    meaning: str


@dataclass
class Sidecar:
    """Contents of ``model.json`` (see the module docstring)."""

    input: InputSpec
    output: OutputSpec
    num_classes: int
    class_names: list[str]
    palette: list[list[int]]
    resize: list[dict[str, Any]] = field(default_factory=list)
    #: the version of the ``resize`` description (:data:`ppseg.data.transforms.TRANSFORMS_FORMAT_VERSION`);
    #: sidecars written before it existed read as version 1
    transforms_version: int = TRANSFORMS_FORMAT_VERSION
    output_size_input: str | None = None
    model: str = ""
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    opset: int = 17
    ppseg_version: str = ""
    source_checkpoint: str | None = None
    source_sha256: str | None = None
    onnx_sha256: str = ""
    quantization: dict[str, Any] | None = None
    format: str = FORMAT
    format_version: int = FORMAT_VERSION

    def to_json(self) -> str:
        text = json.dumps(asdict(self), indent=2)
        # one line per list of numbers (shapes, mean/std, palette colours) keeps the file readable
        return re.sub(r"\[\s*([-0-9.e, \nnul]*?)\s*\]",
                      lambda m: "[" + re.sub(r"\s*\n\s*", " ", m.group(1)) + "]", text) + "\n"

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str) -> "Sidecar":
        """Validate a parsed ``model.json``; every problem names the field."""
        if not isinstance(d, dict):
            raise PPSegError(f"{where}: not a ppseg sidecar (expected a JSON object)")
        if d.get("format") != FORMAT:
            raise PPSegError(f"{where}: not a ppseg sidecar ('format' is {d.get('format')!r}, expected {FORMAT!r})")
        if d.get("format_version") != FORMAT_VERSION:
            raise PPSegError(f"{where}: sidecar format_version {d.get('format_version')!r} is not supported "
                             f"(this ppseg reads {FORMAT_VERSION})")
        try:
            inp = InputSpec(**d["input"])
            out = OutputSpec(**d["output"])
            body = {k: v for k, v in d.items() if k not in ("input", "output")}
            car = cls(input=inp, output=out, **body)
        except KeyError as e:
            raise PPSegError(f"{where}: sidecar field {e.args[0]!r} is missing") from None
        except TypeError as e:
            raise PPSegError(f"{where}: sidecar has an unexpected or missing field ({e})") from None
        car.validate(where)
        return car

    def _check_types(self, where: str) -> None:
        """Every field has the type the schema says (an edited sidecar fails here, not later)."""
        def is_int(v: Any) -> bool:
            return isinstance(v, int) and not isinstance(v, bool)

        checks: list[tuple[str, Any, bool, str]] = [
            ("input.name", self.input.name, isinstance(self.input.name, str), "a string"),
            ("input.layout", self.input.layout, isinstance(self.input.layout, str), "a string"),
            ("input.dtype", self.input.dtype, isinstance(self.input.dtype, str), "a string"),
            ("input.shape", self.input.shape, isinstance(self.input.shape, list)
             and all(v is None or (is_int(v) and v > 0) for v in self.input.shape), "a list of positive ints / null"),
            ("input.color_order", self.input.color_order, isinstance(self.input.color_order, str), "a string"),
            ("input.normalized_in_graph", self.input.normalized_in_graph,
             isinstance(self.input.normalized_in_graph, bool), "true or false"),
            ("input.mean", self.input.mean, isinstance(self.input.mean, list) and all(map(is_finite_number, self.input.mean)),
             "a list of numbers"),
            ("input.std", self.input.std, isinstance(self.input.std, list) and all(map(is_finite_number, self.input.std)),
             "a list of numbers"),
            ("output.name", self.output.name, isinstance(self.output.name, str), "a string"),
            ("output.op", self.output.op, isinstance(self.output.op, str), "a string"),
            ("num_classes", self.num_classes, is_int(self.num_classes), "an integer"),
            ("class_names", self.class_names, isinstance(self.class_names, list)
             and all(isinstance(c, str) for c in self.class_names), "a list of strings"),
            ("palette", self.palette, isinstance(self.palette, list) and all(
                isinstance(c, list) and len(c) == 3 and all(is_int(v) and 0 <= v <= 255 for v in c)
                for c in self.palette), "a list of [r, g, b] in 0..255"),
            ("resize", self.resize, isinstance(self.resize, list), "a list"),
            ("transforms_version", self.transforms_version, is_int(self.transforms_version), "an integer"),
            ("output_size_input", self.output_size_input,
             self.output_size_input is None or isinstance(self.output_size_input, str), "a string or null"),
            ("model_kwargs", self.model_kwargs, isinstance(self.model_kwargs, dict), "a mapping"),
            ("opset", self.opset, is_int(self.opset), "an integer"),
            ("onnx_sha256", self.onnx_sha256, isinstance(self.onnx_sha256, str), "a string"),
            ("quantization", self.quantization, self.quantization is None or isinstance(self.quantization, dict),
             "a mapping or null"),
        ]
        for name, value, ok, expected in checks:
            if not ok:
                raise PPSegError(f"{where}: {name} must be {expected}, got {value!r}")
        if self.output.op in OUTPUT_OPS:
            _, dtype, layout, _ = OUTPUT_OPS[self.output.op]
            if (self.output.dtype, self.output.layout) != (dtype, layout):
                raise PPSegError(f"{where}: output.op {self.output.op!r} gives {dtype} {layout}, but output.dtype/"
                                 f"layout say {self.output.dtype!r} {self.output.layout!r}")

    def validate(self, where: str) -> None:
        self._check_types(where)
        i = self.input
        if i.layout not in ("NCHW", "NHWC") or i.dtype not in ("float32", "uint8") or len(i.shape) != 4:
            raise PPSegError(f"{where}: input.layout/dtype/shape must be NCHW|NHWC, float32|uint8 and 4 dims, "
                             f"got {i.layout!r}, {i.dtype!r}, {i.shape!r}")
        if len(i.mean) != 3 or len(i.std) != 3 or any(not (s > 0 and math.isfinite(s)) for s in i.std):
            raise PPSegError(f"{where}: input.mean/std need 3 values and positive std, got {i.mean} / {i.std}")
        if i.color_order not in ("RGB", "BGR"):
            raise PPSegError(f"{where}: input.color_order must be RGB or BGR, got {i.color_order!r}")
        if self.output.op not in OUTPUT_OPS:
            raise PPSegError(f"{where}: output.op {self.output.op!r} is not one of {sorted(OUTPUT_OPS)}")
        if self.num_classes < 1 or len(self.class_names) != self.num_classes or len(self.palette) != self.num_classes:
            raise PPSegError(f"{where}: num_classes {self.num_classes} but {len(self.class_names)} class_names and "
                             f"{len(self.palette)} palette entries")
        try:
            self.resize = read_transforms({"version": self.transforms_version, "transforms": self.resize},
                                          f"{where}: resize")
        except ConfigError as e:
            raise PPSegError(str(e)) from None
        for t in self.resize:
            if t.get("type") not in RESIZE_TRANSFORMS:
                raise PPSegError(f"{where}: resize entries must be one of {list(RESIZE_TRANSFORMS)}, got {t!r}")

    def write(self, path: str | Path) -> None:
        Path(path).write_text(self.to_json(), encoding="utf-8")


def sidecar_path(onnx_path: str | Path) -> Path:
    """``model.onnx`` -> ``model.json``."""
    return Path(onnx_path).with_suffix(".json")


def sha256_of(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def read_sidecar_json(onnx_path: str | Path, needed_for: str) -> tuple[Path, Any]:
    """``(path, parsed JSON)`` of the sidecar next to ``onnx_path``; one line when it is missing or unreadable."""
    onnx_path = Path(onnx_path)
    path = sidecar_path(onnx_path)
    if not path.is_file():
        raise PPSegError(f"{path}: sidecar not found (ppseg export writes it next to {onnx_path.name}; "
                         f"{needed_for})")
    try:
        return path, json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise PPSegError(f"{path}: not a readable JSON sidecar ({e})") from None


def check_sidecar_hash(path: Path, onnx_path: str | Path, recorded: str | None) -> None:
    """Refuse a sidecar whose recorded ``onnx_sha256`` is not the hash of ``onnx_path``."""
    if recorded and recorded != sha256_of(onnx_path):
        raise PPSegError(f"{path}: this sidecar belongs to another model (its onnx_sha256 does not match "
                         f"{Path(onnx_path).name}); export again or put the right model.json next to it")


def read_sidecar(onnx_path: str | Path, check_hash: bool = True) -> Sidecar:
    """Read and validate the sidecar of ``onnx_path``; with ``check_hash`` also that it describes that file."""
    path, data = read_sidecar_json(onnx_path, "deployment needs it for pre- and post-processing")
    car = Sidecar.from_dict(data, str(path))
    if check_hash:
        check_sidecar_hash(path, onnx_path, car.onnx_sha256)
    return car
