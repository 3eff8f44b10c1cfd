"""What ``ppseg bench`` measures: :class:`BenchConfig`, the backend / output-op / ONNX Runtime option
names, the parsers of ``--threads`` and ``--backends``, and :func:`check_config`, which turns every
user-facing mistake into one :class:`~ppseg.errors.ConfigError` line before anything runs (no torch
imported here).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .reference import PADDLE_INSTALL, paddle_available

BACKENDS = ("torch", "onnxruntime", "paddle")
OUTPUT_OPS = ("argmax", "vim", "none", "softmax")
ORT_OPT_LEVELS = ("disable", "basic", "extended", "all")


@dataclass
class BenchConfig:
    """What to benchmark.

    Attributes:
        model: a registered ppseg model name.
        model_kwargs: its constructor arguments (``num_classes`` included).
        input_shape: ``(N, 3, H, W)``: N images of H x W.
        threads: thread counts to measure.
        backends: any of :data:`BACKENDS`.
        output_op: ``argmax`` | ``vim`` | ``none`` | ``softmax``: torch and paddle use VIM for
            ``vim`` and argmax otherwise; ONNX Runtime exports the graph with this op.
        uint8_input / ort_opt / quantize / calib_images: ONNX Runtime export and session options.
        weights: a ppseg weights file (default: random initialisation).
        runs / warmup: timed and untimed repetitions.
        mean / std: normalisation on the 0..1 scale.
        class_names / palette: for the exported sidecar (generated when ``None``).
        channels_last: torch backend only: channels-last model and input.
        images: image files to time on (resized to ``input_shape``, reused in turn); default:
            synthetic smooth random images. With trained ``weights``, real images give the real
            number of classes present, which VIM's cost depends on.
    """

    model: str
    model_kwargs: dict[str, Any]
    input_shape: tuple[int, int, int, int]
    threads: tuple[int, ...] = (1,)
    backends: tuple[str, ...] = ("torch", "onnxruntime")
    output_op: str = "argmax"
    uint8_input: bool = False
    ort_opt: str = "all"
    quantize: str | None = None
    calib_images: tuple[str, ...] = ()
    weights: str | None = None
    runs: int = 20
    warmup: int = 3
    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    std: tuple[float, float, float] = (0.5, 0.5, 0.5)
    class_names: list[str] | None = None
    palette: list[list[int]] | None = None
    channels_last: bool = False
    images: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------- parsing


def parse_threads(text: str | Sequence[int]) -> tuple[int, ...]:
    """``"1,2"`` -> ``(1, 2)``; every count a positive integer."""
    items = [str(t).strip() for t in (text.split(",") if isinstance(text, str) else text)]
    try:
        out = tuple(int(t) for t in items if t)
    except ValueError:
        raise ConfigError(f"--threads must be comma-separated positive integers, e.g. 1,2; got {text!r}") from None
    if not out or min(out) < 1:
        raise ConfigError(f"--threads must be comma-separated positive integers, e.g. 1,2; got {text!r}")
    return tuple(dict.fromkeys(out))


def parse_backends(text: str | Sequence[str]) -> tuple[str, ...]:
    """``"torch,onnxruntime"`` -> a checked tuple (``ort`` is accepted for ``onnxruntime``)."""
    items = [b.strip().lower() for b in (text.split(",") if isinstance(text, str) else text) if b.strip()]
    items = ["onnxruntime" if b in ("ort", "onnx") else b for b in items]
    bad = [b for b in items if b not in BACKENDS]
    if bad or not items:
        raise ConfigError(f"--backends: unknown backend {', '.join(map(repr, bad)) or '(none given)'}; "
                          f"choose from {', '.join(BACKENDS)}")
    return tuple(dict.fromkeys(items))


def check_config(cfg: BenchConfig) -> None:
    """Every user-facing mistake as one :class:`ConfigError` line, before anything runs."""
    from ..registry import get_factory

    get_factory(cfg.model)  # unknown model: did-you-mean error
    from ..config import check_input_shape

    check_input_shape(cfg.input_shape)
    parse_backends(cfg.backends)
    parse_threads(cfg.threads)
    if cfg.output_op not in OUTPUT_OPS:
        raise ConfigError(f"--output-op must be one of {', '.join(OUTPUT_OPS)}, got {cfg.output_op!r}")
    if cfg.ort_opt not in ORT_OPT_LEVELS:
        raise ConfigError(f"--ort-opt must be one of {', '.join(ORT_OPT_LEVELS)}, got {cfg.ort_opt!r}")
    if cfg.quantize not in (None, "int8"):
        raise ConfigError(f"--quantize must be int8, got {cfg.quantize!r}")
    if cfg.quantize and not cfg.calib_images:
        raise ConfigError("--quantize int8 needs calibration images (--calib-data DIR)")
    if cfg.runs < 1 or cfg.warmup < 0:
        raise ConfigError(f"--runs must be >= 1 and --warmup >= 0, got {cfg.runs} and {cfg.warmup}")
    if "paddle" in cfg.backends and not paddle_available():
        raise ConfigError("backend 'paddle' needs the PaddleSeg reference, which is not installed (optional, for "
                          f"comparison only; best in a separate venv): {PADDLE_INSTALL}")
    if "onnxruntime" in cfg.backends:
        for mod in ("onnx", "onnxruntime"):
            if importlib.util.find_spec(mod) is None:
                raise ConfigError(f"backend 'onnxruntime' needs onnx and onnxruntime: pip install 'ppseg[test]' "
                                  f"(or pip install onnx onnxruntime)")
    if cfg.weights and not Path(cfg.weights).exists():
        raise ConfigError(f"--weights {cfg.weights}: file not found")
    if cfg.images:
        from ..data.io import read_image

        for p in cfg.images:  # decoded once here, so a bad file is one line before any work
            if not Path(p).is_file():
                raise ConfigError(f"--images: {p}: file not found")
            read_image(p)
