"""Export a click model (interactive segmentation) to ONNX with its sidecar, checked before anything is written.

:func:`export_click_onnx` traces the :class:`~ppseg.interactive.predictor.ClickSegmentor` in eval
mode (its RGB [0, 1] normalisation folded into the graph, no auxiliary heads) with dynamic height
and width, runs ``onnx.checker``, runs the file in ONNX Runtime against torch at two sizes with
random clicks, and only then moves ``model.onnx`` and ``model.json`` (format ``ppseg-click-onnx``,
see :mod:`ppseg.deploy.interactive`) into the output folder. On any failure nothing is written there.
Deployment: :class:`ppseg.deploy.InteractivePredictor` (numpy + ONNX Runtime).
"""

from __future__ import annotations

import contextlib
import copy
import io
import logging
import os
import shutil
import tempfile
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .. import __version__
from ..deploy.interactive import (COORD_INPUT, EDGE_OUTPUT, IMAGE_INPUT, IMAGE_MEANING, MASK_OUTPUT, ClickSidecar,
                                  read_click_sidecar)
from ..deploy.sidecar import sha256_of
from ..errors import ConfigError, PPSegError
from ..interactive.clicks import Click, click_maps, resize_align_corners, sigmoid
from ..interactive.session import InteractiveSettings
from .onnx import MAX_OPSET, MIN_OPSET

__all__ = ["ClickExportResult", "export_click_onnx", "CHECK_SIZES"]

log = logging.getLogger("ppseg")

#: the (H, W) sizes ONNX Runtime is compared with torch at by default (square, and odd/odd)
CHECK_SIZES: tuple[tuple[int, int], ...] = ((400, 400), (333, 517))
_TRACE_HW = (224, 288)  # traced at a size that is neither of the check sizes
#: largest |logit| difference allowed, relative to max(1, max |torch logit|)
LOGIT_TOL = 1e-3
#: the same with weights stored as float16 (``weights_fp16``): their rounding, not an export fault
FP16_LOGIT_TOL = 3e-2


@dataclass
class ClickExportResult:
    """What :func:`export_click_onnx` wrote and measured.

    Attributes:
        onnx_path / sidecar_path: the files written.
        sidecar: the sidecar's contents.
        check: per checked size (``"HxW"``): ``max_abs_diff`` of the logits per output,
            ``max_prob_diff`` (after the sigmoid) and ``clicks``; plus ``max_prob_diff`` overall.
    """

    onnx_path: Path
    sidecar_path: Path
    sidecar: ClickSidecar
    check: dict[str, Any] = field(default_factory=dict)


class _ClickGraph(nn.Module):
    """What is traced: the wrapper's mask logits (and edge logits), no auxiliary heads."""

    def __init__(self, wrapper: nn.Module, edge: bool) -> None:
        super().__init__()
        self.wrapper = wrapper
        self.edge = edge

    def forward(self, image: torch.Tensor, coord_features: torch.Tensor):  # type: ignore[no-untyped-def]
        out = self.wrapper(image, coord_features)
        return (out[MASK_OUTPUT], out[EDGE_OUTPUT]) if self.edge else out[MASK_OUTPUT]


def _registry_name(model: nn.Module) -> str:
    """The registry name of a click model's factory when exactly one returns its class, else the class name."""
    from ..registry import get_factory, list_models

    cls = type(model).__name__
    hits = []
    for name in list_models(task="interactive"):
        ret = getattr(get_factory(name), "__annotations__", {}).get("return")
        if ret is not None and (ret == cls or getattr(ret, "__name__", None) == cls):
            hits.append(name)
    return hits[0] if len(hits) == 1 else cls


def _from_weights(path: Path) -> tuple[nn.Module, InteractiveSettings, str, dict[str, Any], dict[str, Any]]:
    from ..interactive.predictor import load_torch_predictor
    from ..weights import load_file, weights_path

    ckpt = load_file(path)
    predictor = load_torch_predictor(path, ckpt=ckpt)
    source = {"weights": str(path), "sha256": sha256_of(weights_path(path))}
    return (predictor.backend.wrapper, predictor.settings, str(ckpt.get("model")),  # type: ignore[attr-defined]
            dict(ckpt.get("model_kwargs") or {}), source)


def _smooth(rng: np.random.Generator, shape: tuple[int, ...], hw: tuple[int, int]) -> np.ndarray:
    """Smooth random values in [0, 1]: coarse noise resized up, plus a little fine noise."""
    h, w = hw
    coarse = rng.random((*shape, max(h // 24, 2), max(w // 24, 2))).astype(np.float32)
    fine = rng.normal(0, 0.03, size=(*shape, h, w)).astype(np.float32)
    return np.clip(resize_align_corners(coarse, (h, w)) + fine, 0, 1).astype(np.float32)


def check_inputs(hw: tuple[int, int], radius: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray, int]:
    """A smooth random RGB image ``[1, 3, H, W]`` in [0, 1] and click features ``[1, 3, H, W]``
    (a smooth previous map and the disks of a few random positive and negative clicks)."""
    rng = np.random.default_rng(seed)
    h, w = hw
    image = _smooth(rng, (3,), hw)
    prev = _smooth(rng, (), hw)[None]
    n = int(rng.integers(3, 7))
    clicks = [Click(float(rng.uniform(0, h - 1)), float(rng.uniform(0, w - 1)), bool(i % 3 != 2)) for i in range(n)]
    coord = np.concatenate([prev, click_maps(clicks, h, w, radius)], axis=0)
    return image[None], coord[None], n


def _export(graph: _ClickGraph, path: Path, opset: int, radius: float) -> None:
    image, coord, _ = check_inputs(_TRACE_HW, radius, seed=123)
    names = [MASK_OUTPUT, EDGE_OUTPUT] if graph.edge else [MASK_OUTPUT]
    hw_axes = {2: "height", 3: "width"}
    dynamic_axes = {n: hw_axes for n in (IMAGE_INPUT, COORD_INPUT, *names)}
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")  # tracer warnings about shapes are expected here
        try:
            torch.onnx.export(graph, (torch.from_numpy(image), torch.from_numpy(coord)), str(path),
                              input_names=[IMAGE_INPUT, COORD_INPUT], output_names=names, dynamic_axes=dynamic_axes,
                              opset_version=opset, dynamo=False, do_constant_folding=True)
        except Exception as e:  # noqa: BLE001 - the exporter raises many types; one clear line for the user
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise PPSegError(f"cannot export {type(graph.wrapper.model).__name__} to ONNX opset {opset}: "
                             f"{first[:300]}") from None


def _compare(graph: _ClickGraph, path: Path, sizes: Sequence[tuple[int, int]], radius: float,
             tol: float = LOGIT_TOL) -> dict[str, Any]:
    """ONNX Runtime vs torch on random clicks at each size; raises when they disagree."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = max(1, torch.get_num_threads())
    so.log_severity_level = 3
    sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    names = [MASK_OUTPUT, EDGE_OUTPUT] if graph.edge else [MASK_OUTPUT]
    check: dict[str, Any] = {}
    worst = 0.0
    for i, hw in enumerate(sizes):
        image, coord, n = check_inputs(hw, radius, seed=i)
        with torch.no_grad():
            ref = graph(torch.from_numpy(image), torch.from_numpy(coord))
        refs = [t.numpy() for t in (ref if isinstance(ref, tuple) else (ref,))]
        got = sess.run(names, {IMAGE_INPUT: image, COORD_INPUT: coord})
        entry: dict[str, Any] = {"clicks": n, "max_abs_diff": {}, "max_prob_diff": 0.0}
        for name, r, g in zip(names, refs, got):
            if g.shape != r.shape or r.shape != (1, 1, *hw):
                raise PPSegError(f"ONNX Runtime returns {name} of shape {list(g.shape)}, torch {list(r.shape)} "
                                 f"(input {hw[0]}x{hw[1]})")
            diff = float(np.abs(g - r).max())
            scale = max(1.0, float(np.abs(r).max()))
            if not np.isfinite(diff) or diff > tol * scale:
                raise PPSegError(f"ONNX Runtime {name} differs from torch by {diff:.3g} at {hw[0]}x{hw[1]} "
                                 f"(max |torch logit| {scale:.3g})")
            entry["max_abs_diff"][name] = diff
            entry["max_prob_diff"] = max(entry["max_prob_diff"], float(np.abs(sigmoid(g) - sigmoid(r)).max()))
        worst = max(worst, entry["max_prob_diff"])
        check[f"{hw[0]}x{hw[1]}"] = entry
    check["max_prob_diff"] = worst
    return check


def export_click_onnx(
    wrapper_or_weights: nn.Module | str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    opset: int = 17,
    settings: InteractiveSettings | None = None,
    source: dict[str, Any] | None = None,
    model_name: str | None = None,
    model_kwargs: dict[str, Any] | None = None,
    check_sizes: Sequence[tuple[int, int]] = CHECK_SIZES,
    weights_fp16: bool = False,
) -> ClickExportResult:
    """Export a click model to ``out_dir/model.onnx`` + ``out_dir/model.json``.

    Args:
        wrapper_or_weights: a ppseg weights file (or run folder) of a click model, a
            :class:`~ppseg.interactive.predictor.ClickSegmentor`, or a bare click network (wrapped
            with its own ``input_mean``/``input_std``).
        out_dir: output folder (created); an existing ``model.onnx`` / ``model.json`` is replaced.
        opset: ONNX opset (13..20).
        settings: the click loop's settings for the sidecar (default: the weights file's, else
            :class:`~ppseg.interactive.session.InteractiveSettings`'s defaults).
        source: where the model came from, recorded in the sidecar (default for a weights file:
            its path and SHA-256).
        model_name / model_kwargs: recorded in the sidecar (default for a weights file: what it
            records; for a module: its registry name when it can be told).
        check_sizes: the ``(H, W)`` sizes ONNX Runtime is compared with torch at.
        weights_fp16: store the weights as float16 (half the file; computed in float32, see
            :mod:`ppseg.export.compact`); the check against torch then allows their rounding.

    Raises:
        ConfigError / PPSegError: bad arguments, a model that is not a click model, export or
            check failure (nothing is written then).
    """
    from ..interactive.predictor import ClickSegmentor, is_click_model

    if isinstance(opset, bool) or not isinstance(opset, int) or not MIN_OPSET <= opset <= MAX_OPSET:
        raise ConfigError(f"--opset {opset} is not supported (use {MIN_OPSET}..{MAX_OPSET})")
    if settings is not None and not isinstance(settings, InteractiveSettings):
        raise ConfigError(f"settings must be an InteractiveSettings, got {type(settings).__name__}")
    sizes = [tuple(int(v) for v in hw) for hw in check_sizes]
    if not sizes or any(len(hw) != 2 or min(hw) < 16 for hw in sizes):
        raise ConfigError(f"check_sizes must be (H, W) pairs of at least 16, got {list(check_sizes)!r}")
    try:
        import onnx
        import onnxruntime  # noqa: F401
    except ImportError:
        raise PPSegError("export needs onnx and onnxruntime: pip install 'ppseg[export]'") from None

    if isinstance(wrapper_or_weights, (str, os.PathLike)):
        wrapper, file_settings, name, kwargs, file_source = _from_weights(Path(wrapper_or_weights))
        settings = settings or file_settings
        source = file_source if source is None else source
        model_name = model_name or name
        model_kwargs = kwargs if model_kwargs is None else model_kwargs
    elif isinstance(wrapper_or_weights, ClickSegmentor):
        wrapper = wrapper_or_weights
    elif isinstance(wrapper_or_weights, nn.Module) and is_click_model(wrapper_or_weights):
        wrapper = ClickSegmentor(wrapper_or_weights)
    else:
        what = type(wrapper_or_weights).__name__
        raise PPSegError(f"export_click_onnx: {what} is not a click model (expected a ClickSegmentor, a click "
                         "network or a weights file of one)")
    if any(p.device.type != "cpu" or p.dtype != torch.float32 for p in wrapper.parameters()):
        wrapper = copy.deepcopy(wrapper).float().cpu()  # traced and compared on the CPU in float32
    settings = (settings or InteractiveSettings()).checked("settings")
    model_name = model_name or _registry_name(wrapper.model)
    radius = float(wrapper.radius)

    was_training = wrapper.training
    wrapper.eval()
    try:
        with torch.no_grad():
            probe = wrapper(*(torch.from_numpy(a) for a in check_inputs((64, 64), radius)[:2]))
        edge = probe.get(EDGE_OUTPUT) is not None
        if wrapper.prev_input == "edge" and not edge:
            raise PPSegError(f"{model_name}: prev_input is 'edge' but the model returns no {EDGE_OUTPUT!r}")
        graph = _ClickGraph(wrapper, edge).eval()

        out_dir = Path(out_dir)
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.partial-", dir=out_dir.parent))
        try:
            onnx_path = staging / "model.onnx"
            _export(graph, onnx_path, opset, radius)
            if weights_fp16:
                from .compact import store_weights_fp16

                store_weights_fp16(onnx_path)
            try:
                onnx.checker.check_model(str(onnx_path), full_check=True)
            except Exception as e:  # noqa: BLE001
                raise PPSegError(f"onnx.checker rejects the exported graph: {str(e).splitlines()[0][:300]}") from None
            check = _compare(graph, onnx_path, sizes, radius, FP16_LOGIT_TOL if weights_fp16 else LOGIT_TOL)

            dims: list[int | None] = [1, 3, None, None]
            mean = [float(f"{v:.7g}") for v in wrapper.mean.flatten().tolist()]  # float32 -> 0.485, not 0.48500001
            std = [float(f"{v:.7g}") for v in wrapper.std.flatten().tolist()]
            inputs = {
                IMAGE_INPUT: {"name": IMAGE_INPUT, "shape": dims, "dtype": "float32", "layout": "NCHW",
                              "meaning": IMAGE_MEANING if wrapper.normalizes else "RGB float32 0..1, NCHW",
                              "normalized_in_graph": bool(wrapper.normalizes), "mean": mean, "std": std},
                COORD_INPUT: {"name": COORD_INPUT, "shape": list(dims), "dtype": "float32", "layout": "NCHW",
                              "channels": [wrapper.prev_input, "positive", "negative"],
                              "meaning": f"previous {'probabilities' if wrapper.prev_input == 'mask' else 'edge map'}"
                                         f" (zeros before the first click), then positive and negative click disks "
                                         f"of radius {radius:g} (1 inside, 0 outside)"},
            }
            outputs = [{"name": MASK_OUTPUT, "shape": [1, 1, None, None], "dtype": "float32",
                        "meaning": "mask logits at the input size (sigmoid: object probability)"}]
            if edge:
                outputs.append({"name": EDGE_OUTPUT, "shape": [1, 1, None, None], "dtype": "float32",
                                "meaning": "edge logits at the input size (their sigmoid is the next click's "
                                           "coord_features channel 0)"})
            car = ClickSidecar(model=str(model_name), inputs=inputs, outputs=outputs, prev_input=wrapper.prev_input,
                               click_radius=int(radius) if radius.is_integer() else radius, settings=settings,
                               onnx_sha256=sha256_of(onnx_path),
                               ppseg_version=__version__, model_kwargs=dict(model_kwargs or {}), opset=opset,
                               source=dict(source or {}))
            car.write(staging / "model.json")
            read_click_sidecar(onnx_path)  # what is written reads back
            out_dir.mkdir(parents=True, exist_ok=True)
            for name in ("model.onnx", "model.json"):  # the model first: a sidecar never points at a missing file
                os.replace(staging / name, out_dir / name)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    finally:
        wrapper.train(was_training)
    log.info("exported click model %s (opset %d) -> %s", model_name, opset, out_dir / "model.onnx")
    return ClickExportResult(out_dir / "model.onnx", out_dir / "model.json", car, check)
