"""Click segmentation with an exported click model: numpy and ONNX Runtime only (no torch).

``ppseg export --model click_weights.pt --out DIR`` writes ``DIR/model.onnx`` and its sidecar
``DIR/model.json`` (format ``ppseg-click-onnx``). The graph takes

* ``image`` float32 ``[1, 3, H, W]``: RGB in [0, 1] (the network's normalisation is in the graph),
* ``coord_features`` float32 ``[1, 3, H, W]``: (previous map, positive click disks, negative
  click disks); the previous map is the last probabilities (``prev_input: "mask"``) or the last
  edge probabilities (``prev_input: "edge"``, EdgeFlow),

and returns ``instances`` (mask logits ``[1, 1, H, W]``) and, for EdgeFlow, ``instances_edge``.
H and W are free. The click loop around it (ZoomIn, disks, feedback, undo) is
:class:`ppseg.interactive.session.ClickSession`, the same code the torch predictor runs::

    from ppseg.deploy import InteractivePredictor
    p = InteractivePredictor("export/model.onnx", threads=2)
    s = p.session(image_rgb)                 # H x W x 3 uint8
    s.click(120, 200); s.click(40, 35, positive=False)
    mask = s.mask                            # bool H x W

Example ``model.json`` (abridged)::

    {"format": "ppseg-click-onnx", "format_version": 1, "task": "interactive",
     "model": "click_mobilenetv3_lite",
     "inputs": {"image": {"shape": [1, 3, null, null], "dtype": "float32", "layout": "NCHW",
                          "meaning": "RGB float32 0..1, NCHW, normalised in graph", ...},
                "coord_features": {"shape": [1, 3, null, null], "channels": ["mask", "positive", "negative"], ...}},
     "outputs": [{"name": "instances", "shape": [1, 1, null, null], "meaning": "mask logits"}],
     "prev_input": "mask", "click_radius": 5, "settings": {"threshold": 0.5, "zoom_in": true, ...},
     "onnx_sha256": "...", "ppseg_version": "0.1.0", "source": {"weights": "best_model.pt", "sha256": "..."}}
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..config import is_finite_number
from ..errors import ConfigError, PPSegError
from ..interactive.session import ClickPredictor, InteractiveSettings
from .sidecar import FORMAT as SEMANTIC_FORMAT
from .predictor import check_runtime_args, open_session
from .sidecar import check_sidecar_hash, read_sidecar_json

__all__ = ["CLICK_FORMAT", "CLICK_FORMAT_VERSION", "ClickSidecar", "InteractivePredictor", "OnnxClickBackend",
           "read_click_sidecar"]

CLICK_FORMAT = "ppseg-click-onnx"
CLICK_FORMAT_VERSION = 1

IMAGE_INPUT, COORD_INPUT = "image", "coord_features"
MASK_OUTPUT, EDGE_OUTPUT = "instances", "instances_edge"
IMAGE_MEANING = "RGB float32 0..1, NCHW, normalised in graph"

_REQUIRED = ("format", "format_version", "task", "model", "inputs", "outputs", "prev_input", "click_radius",
             "settings", "onnx_sha256", "ppseg_version")


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


@dataclass
class ClickSidecar:
    """Contents of a click export's ``model.json`` (see the module docstring)."""

    model: str
    inputs: dict[str, dict[str, Any]]
    outputs: list[dict[str, Any]]
    prev_input: str
    click_radius: float
    settings: InteractiveSettings
    onnx_sha256: str = ""
    ppseg_version: str = ""
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    opset: int = 17
    source: dict[str, Any] = field(default_factory=dict)
    task: str = "interactive"
    format: str = CLICK_FORMAT
    format_version: int = CLICK_FORMAT_VERSION

    @property
    def output_names(self) -> list[str]:
        return [o["name"] for o in self.outputs]

    @property
    def has_edge(self) -> bool:
        return EDGE_OUTPUT in self.output_names

    def to_dict(self) -> dict[str, Any]:
        return {"format": self.format, "format_version": self.format_version, "task": self.task,
                "model": self.model, "model_kwargs": dict(self.model_kwargs), "inputs": self.inputs,
                "outputs": self.outputs, "prev_input": self.prev_input, "click_radius": self.click_radius,
                "settings": self.settings.to_dict(), "opset": self.opset, "onnx_sha256": self.onnx_sha256,
                "ppseg_version": self.ppseg_version, "source": dict(self.source)}

    def to_json(self) -> str:
        text = json.dumps(self.to_dict(), indent=2)
        # one line per list of scalars (shapes, mean/std, channel names) keeps the file readable
        return re.sub(r"\[\s*((?:[-0-9.e]+|null|\"[a-z_]*\")(?:,\s*(?:[-0-9.e]+|null|\"[a-z_]*\"))*)\s*\]",
                      lambda m: "[" + re.sub(r",\s*", ", ", m.group(1)) + "]", text) + "\n"

    def write(self, path: str | os.PathLike) -> None:
        Path(path).write_text(self.to_json(), encoding="utf-8")

    @classmethod
    def from_dict(cls, d: Any, where: str) -> ClickSidecar:
        """Validate a parsed ``model.json``; every problem is one line naming the field."""
        if not isinstance(d, dict):
            raise PPSegError(f"{where}: not a ppseg click-model sidecar (expected a JSON object)")
        fmt = d.get("format")
        if fmt == SEMANTIC_FORMAT:
            raise PPSegError(f"{where}: this is a semantic segmentation export (format {fmt!r}), not a click model; "
                             "run it with ppseg.deploy.Predictor")
        if fmt != CLICK_FORMAT:
            raise PPSegError(f"{where}: not a ppseg click-model sidecar ('format' is {fmt!r}, "
                             f"expected {CLICK_FORMAT!r})")
        if d.get("format_version") != CLICK_FORMAT_VERSION:
            raise PPSegError(f"{where}: sidecar format_version {d.get('format_version')!r} is not supported "
                             f"(this ppseg reads {CLICK_FORMAT_VERSION})")
        missing = [k for k in _REQUIRED if k not in d]
        if missing:
            raise PPSegError(f"{where}: sidecar field {missing[0]!r} is missing")
        unknown = set(d) - set(cls.__dataclass_fields__)
        if unknown:
            raise PPSegError(f"{where}: sidecar has unknown field(s) {sorted(unknown)}")

        def bad(name: str, value: Any, want: str) -> PPSegError:
            return PPSegError(f"{where}: {name} must be {want}, got {value!r}")

        if d["task"] != "interactive":
            raise bad("task", d["task"], "'interactive'")
        for name in ("model", "ppseg_version"):
            if not isinstance(d[name], str):
                raise bad(name, d[name], "a string")
        sha = d["onnx_sha256"]
        if not isinstance(sha, str) or not re.fullmatch(r"[0-9a-f]{64}", sha):
            raise bad("onnx_sha256", sha, "64 lowercase hex digits")
        if d["prev_input"] not in ("mask", "edge"):
            raise bad("prev_input", d["prev_input"], "'mask' or 'edge'")
        r = d["click_radius"]
        if not is_finite_number(r) or not 0 < r <= 100:
            raise bad("click_radius", r, "a number in (0, 100]")
        for name, kind, want in (("model_kwargs", dict, "a mapping"), ("source", dict, "a mapping")):
            if name in d and d[name] is not None and not isinstance(d[name], kind):
                raise bad(name, d[name], want)
        if "opset" in d and (not _is_int(d["opset"]) or d["opset"] < 1):
            raise bad("opset", d["opset"], "a positive integer")
        inputs = d["inputs"]
        if not isinstance(inputs, dict) or set(inputs) != {IMAGE_INPUT, COORD_INPUT}:
            raise bad("inputs", inputs if not isinstance(inputs, dict) else sorted(inputs),
                      f"a mapping with exactly {IMAGE_INPUT!r} and {COORD_INPUT!r}")
        for name, spec in inputs.items():
            _check_tensor(spec, f"inputs.{name}", 3, where)
            if spec.get("name", name) != name:
                raise bad(f"inputs.{name}.name", spec.get("name"), repr(name))
        outputs = d["outputs"]
        if not isinstance(outputs, list) or not outputs or not all(isinstance(o, dict) for o in outputs):
            raise bad("outputs", outputs, "a non-empty list of mappings")
        names = [o.get("name") for o in outputs]
        if names[0] != MASK_OUTPUT or len(set(names)) != len(names) or not set(names) <= {MASK_OUTPUT, EDGE_OUTPUT}:
            raise bad("outputs' names", names, f"[{MASK_OUTPUT!r}] or [{MASK_OUTPUT!r}, {EDGE_OUTPUT!r}]")
        for i, o in enumerate(outputs):
            _check_tensor(o, f"outputs[{i}]", 1, where)
        if d["prev_input"] == "edge" and EDGE_OUTPUT not in names:
            raise PPSegError(f"{where}: prev_input is 'edge' but the outputs have no {EDGE_OUTPUT!r}")
        settings = _settings(d["settings"], f"{where}: settings")
        return cls(model=d["model"], inputs=inputs, outputs=outputs, prev_input=d["prev_input"],
                   click_radius=r, settings=settings, onnx_sha256=sha, ppseg_version=d["ppseg_version"],
                   model_kwargs=dict(d.get("model_kwargs") or {}), opset=int(d.get("opset", 17)),
                   source=dict(d.get("source") or {}))


def _check_tensor(spec: Any, name: str, channels: int, where: str) -> None:
    if not isinstance(spec, dict):
        raise PPSegError(f"{where}: {name} must be a mapping, got {spec!r}")
    shape = spec.get("shape")
    if not isinstance(shape, list) or len(shape) != 4 or shape[1] != channels or \
            not all(v is None or (_is_int(v) and v > 0) for v in shape) or shape[0] not in (None, 1):
        raise PPSegError(f"{where}: {name}.shape must be [1, {channels}, H, W] (H, W an integer or null), "
                         f"got {shape!r}")
    if spec.get("dtype", "float32") != "float32":
        raise PPSegError(f"{where}: {name}.dtype must be 'float32', got {spec.get('dtype')!r}")
    if spec.get("layout", "NCHW") != "NCHW":
        raise PPSegError(f"{where}: {name}.layout must be 'NCHW', got {spec.get('layout')!r}")


def _settings(d: Any, where: str) -> InteractiveSettings:
    if not isinstance(d, dict):
        raise PPSegError(f"{where}: expected a mapping, got {d!r}")
    try:
        s = InteractiveSettings.from_dict(d, where)
    except ConfigError as e:
        raise PPSegError(str(e)) from None
    except (TypeError, ValueError) as e:
        raise PPSegError(f"{where}: {e}") from None
    return s


def read_click_sidecar(onnx_path: str | os.PathLike, check_hash: bool = True) -> ClickSidecar:
    """Read and validate the sidecar of a click export; with ``check_hash`` also that it describes that file."""
    path, data = read_sidecar_json(onnx_path, "the click loop needs its settings")
    car = ClickSidecar.from_dict(data, str(path))
    if check_hash:
        check_sidecar_hash(path, onnx_path, car.onnx_sha256 or "missing")
    return car


class OnnxClickBackend:
    """:class:`~ppseg.interactive.session.ClickBackend` running an exported click model in ONNX Runtime.

    Args:
        onnx_path: the ``model.onnx`` of ``ppseg export`` (its ``model.json`` next to it).
        threads: ONNX Runtime intra-op threads (``None``: ONNX Runtime's default).
        providers: execution providers (default: CPU).
        check_hash: refuse a sidecar whose recorded ONNX hash differs from the file.
    """

    def __init__(self, onnx_path: str | os.PathLike, threads: int | None = None, *,
                 providers: Sequence[str] | None = None, check_hash: bool = True) -> None:
        self.path = Path(onnx_path)
        check_runtime_args(self.path, threads, providers)
        self.sidecar = read_click_sidecar(self.path, check_hash=check_hash)
        #: what channel 0 of the click features is ("mask" or "edge")
        self.prev_input = self.sidecar.prev_input
        #: disk radius of the click maps
        self.radius = float(self.sidecar.click_radius)
        self.session = open_session(self.path, threads, providers)
        got_in = sorted(i.name for i in self.session.get_inputs())
        got_out = [o.name for o in self.session.get_outputs()]
        if got_in != sorted((IMAGE_INPUT, COORD_INPUT)) or got_out != self.sidecar.output_names:
            raise PPSegError(f"{self.path}: the graph's inputs {got_in} / outputs {got_out} are not what its sidecar "
                             f"describes ({sorted((IMAGE_INPUT, COORD_INPUT))} / {self.sidecar.output_names})")
        self._has_edge = self.sidecar.has_edge

    def infer(self, image: np.ndarray, coord: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """``image`` ``[3, h, w]`` RGB in [0, 1], ``coord`` ``[3, h, w]`` -> (mask logits ``[h, w]``,
        edge logits ``[h, w]`` or ``None``)."""
        image = np.asarray(image)
        coord = np.asarray(coord)
        if image.ndim != 3 or image.shape[0] != 3 or coord.shape != image.shape:
            raise ConfigError(f"click model input: expected image [3, h, w] and coord [3, h, w] of the same size, "
                              f"got {list(image.shape)} and {list(coord.shape)}")
        feeds = {IMAGE_INPUT: np.ascontiguousarray(image, np.float32)[None],
                 COORD_INPUT: np.ascontiguousarray(coord, np.float32)[None]}
        outs = self.session.run(None, feeds)
        logits = outs[0][0, 0]
        return logits, (outs[1][0, 0] if self._has_edge else None)


class InteractivePredictor(ClickPredictor):
    """A :class:`~ppseg.interactive.session.ClickPredictor` on an exported click model (ONNX Runtime).

    ``InteractivePredictor("export/model.onnx").session(image).click(y, x)``; the loop's settings
    (threshold, ZoomIn, max side) come from the sidecar unless ``settings`` is given.
    """

    def __init__(self, onnx_path: str | os.PathLike, threads: int | None = None, *,
                 settings: InteractiveSettings | None = None, providers: Sequence[str] | None = None,
                 check_hash: bool = True) -> None:
        backend = OnnxClickBackend(onnx_path, threads, providers=providers, check_hash=check_hash)
        super().__init__(backend, settings or backend.sidecar.settings, str(onnx_path))

    @property
    def sidecar(self) -> ClickSidecar:
        return self.backend.sidecar  # type: ignore[attr-defined]
