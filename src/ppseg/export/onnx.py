"""Export a ppseg model to ONNX with its sidecar, checked before anything is written.

:func:`export_onnx` traces :class:`~ppseg.export.graph.ExportGraph`, runs
``onnx.checker``, runs the file in ONNX Runtime and compares it with torch on a
test image, optionally quantises it to INT8 (QDQ, static calibration), and only
then moves ``model.onnx`` and ``model.json`` into the output folder. On any
failure nothing is written there.
"""

from __future__ import annotations

import contextlib
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
from ..deploy.sidecar import OUTPUT_OPS, RESIZE_TRANSFORMS, InputSpec, OutputSpec, Sidecar, sha256_of
from ..errors import ConfigError, PPSegError
from .graph import ExportGraph

__all__ = ["ExportResult", "export_onnx", "MIN_OPSET", "MAX_OPSET"]

log = logging.getLogger("ppseg")

MIN_OPSET, MAX_OPSET = 13, 20  # Unique/Resize semantics we rely on exist from 11/13; 20 is the newest we test
_INPUT, _SIZE = "image", "output_size"


@dataclass
class ExportResult:
    """What :func:`export_onnx` wrote and measured.

    Attributes:
        onnx_path / sidecar_path: the files written.
        sidecar: the sidecar's contents.
        check: ONNX Runtime vs torch on the smoke input: ``max_abs_diff`` (float outputs)
            or ``label_agreement`` (label outputs), and ``input_shape``.
    """

    onnx_path: Path
    sidecar_path: Path
    sidecar: Sidecar
    check: dict[str, Any] = field(default_factory=dict)


def _check_input_shape(input_shape: Sequence[int] | None) -> tuple[int, int, int, int] | None:
    if input_shape is None:
        return None
    from ..config import check_input_shape

    return check_input_shape(input_shape)


def _check_resize(transforms: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for i, t in enumerate(transforms or []):
        kind = t.get("type") if isinstance(t, dict) else type(t).__name__
        if kind not in RESIZE_TRANSFORMS:
            raise ConfigError(f"val transforms[{i}]: {kind} cannot be exported (the deploy predictor applies "
                              f"{', '.join(RESIZE_TRANSFORMS)} only); remove it or pass --input-shape")
        out.append(dict(t))
    return out


def _smoke_image(shape_hw: tuple[int, int], n: int, seed: int = 0) -> np.ndarray:
    """A smooth random RGB batch (N H W 3, uint8): real-looking enough to give varied labels."""
    rng = np.random.default_rng(seed)
    h, w = shape_hw
    small = rng.integers(0, 256, size=(n, max(h // 16, 2), max(w // 16, 2), 3)).astype(np.float32)
    t = torch.nn.functional.interpolate(torch.from_numpy(small).permute(0, 3, 1, 2), size=(h, w), mode="bilinear",
                                        align_corners=False)
    noise = rng.normal(0, 8, size=(n, 3, h, w)).astype(np.float32)
    return np.clip(t.numpy() + noise, 0, 255).round().astype(np.uint8).transpose(0, 2, 3, 1)


def _graph_input(graph: ExportGraph, images_nhwc: np.ndarray) -> torch.Tensor:
    x = torch.from_numpy(np.ascontiguousarray(images_nhwc))
    if graph.uint8_input:
        return x
    x = x.permute(0, 3, 1, 2).float()
    return ((x - graph.mean) / graph.std).contiguous()


def _onnx_export(graph: ExportGraph, example: torch.Tensor, out_hw: tuple[int, int], path: Path, opset: int,
                 dynamic: bool) -> None:
    args: tuple[Any, ...] = (example,)
    names = [_INPUT]
    if graph.takes_output_size:
        args += (torch.tensor(out_hw, dtype=torch.int64),)
        names.append(_SIZE)
    out_name = OUTPUT_OPS[graph.output_op][0]
    dynamic_axes = None
    if dynamic:
        in_axes = {0: "batch", 1: "height", 2: "width"} if graph.uint8_input else {0: "batch", 2: "height", 3: "width"}
        out_axes = {0: "batch", 1: "out_height", 2: "out_width"} if graph.output_op in ("argmax", "vim") \
            else {0: "batch", 2: "out_height", 3: "out_width"}
        dynamic_axes = {_INPUT: in_axes, out_name: out_axes}
    elif graph.takes_output_size:  # fixed input, but the output follows output_size
        out_axes = {1: "out_height", 2: "out_width"} if graph.output_op in ("argmax", "vim") \
            else {2: "out_height", 3: "out_width"}
        dynamic_axes = {out_name: out_axes}
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")  # tracer warnings about data-dependent shapes are expected here
        try:
            torch.onnx.export(graph, args, str(path), input_names=names, output_names=[out_name],
                              dynamic_axes=dynamic_axes, opset_version=opset, dynamo=False, do_constant_folding=True)
        except Exception as e:  # noqa: BLE001 - the exporter raises many types; one clear line for the user
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise PPSegError(f"cannot export {type(graph.model).__name__} to ONNX opset {opset}: {first[:300]}") from None


def _compare(graph: ExportGraph, path: Path, images: np.ndarray, out_hw: tuple[int, int]) -> dict[str, Any]:
    """Run the ONNX file in ONNX Runtime and torch on the same input; raise if they disagree."""
    import onnxruntime as ort

    x = _graph_input(graph, images)
    size = torch.tensor(out_hw, dtype=torch.int64)
    with torch.no_grad():
        ref = (graph(x, size) if graph.takes_output_size else graph(x)).numpy()
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feeds = {_INPUT: x.numpy()}
    if graph.takes_output_size:
        feeds[_SIZE] = size.numpy()
    got = sess.run(None, feeds)[0]
    if got.shape != ref.shape:
        raise PPSegError(f"ONNX Runtime returns shape {list(got.shape)}, torch {list(ref.shape)}")
    info: dict[str, Any] = {"input_shape": list(x.shape)}
    if graph.output_op in ("argmax", "vim"):
        agree = float((got == ref).mean())
        info["label_agreement"] = agree
        if agree < 0.999:
            raise PPSegError(f"ONNX Runtime labels agree with torch on only {agree:.4%} of pixels")
    else:
        diff = float(np.abs(got - ref).max())
        scale = max(1.0, float(np.abs(ref).max()))
        info["max_abs_diff"] = diff
        if diff > 1e-3 * scale:
            raise PPSegError(f"ONNX Runtime output differs from torch by {diff:.3g} (max |ref| {scale:.3g})")
    return info


def export_onnx(
    model: nn.Module,
    out_dir: str | os.PathLike,
    *,
    model_name: str,
    model_kwargs: dict[str, Any],
    class_names: Sequence[str],
    palette: Sequence[Sequence[int]],
    mean: Sequence[float],
    std: Sequence[float],
    output_op: str = "argmax",
    input_shape: Sequence[int] | None = None,
    uint8_input: bool = False,
    resize: Sequence[dict[str, Any]] = (),
    opset: int = 17,
    source_checkpoint: str | os.PathLike | None = None,
    quantize: str | None = None,
    calib_images: Sequence[str | os.PathLike] = (),
) -> ExportResult:
    """Export ``model`` to ``out_dir/model.onnx`` + ``out_dir/model.json``.

    Args:
        model: the network (its weights loaded), any mode; exported in eval mode.
        out_dir: output folder (created); existing ``model.onnx`` / ``model.json`` are replaced.
        model_name / model_kwargs: how the model was built (recorded in the sidecar).
        class_names / palette: one per class.
        mean / std: normalisation on the **0..1** scale (as in the configs' segmentor section).
        output_op: ``none`` | ``softmax`` | ``argmax`` | ``vim``.
        input_shape: ``(N, 3, H, W)`` for a fixed-shape graph; ``None``: batch, height and width dynamic.
        uint8_input: the graph takes raw RGB bytes NHWC and normalises inside.
        resize: the val resize transforms (config dicts) the deploy predictor applies first
            (ignored with a fixed ``input_shape``: images are resized to it).
        opset: ONNX opset (13..20).
        source_checkpoint: the weights file exported (its SHA-256 goes into the sidecar).
        quantize: ``None`` or ``"int8"`` (static QDQ quantisation calibrated on ``calib_images``).
        calib_images: image files for INT8 calibration.

    Raises:
        ConfigError / PPSegError: bad arguments, export, check or quantisation failure
            (nothing is written then).
    """
    if output_op not in OUTPUT_OPS:
        raise ConfigError(f"--output-op must be one of {', '.join(OUTPUT_OPS)}, got {output_op!r}")
    if not MIN_OPSET <= int(opset) <= MAX_OPSET:
        raise ConfigError(f"--opset {opset} is not supported (use {MIN_OPSET}..{MAX_OPSET})")
    if quantize not in (None, "int8"):
        raise ConfigError(f"--quantize must be int8, got {quantize!r}")
    if quantize and not calib_images:
        raise ConfigError("--quantize int8 needs calibration images (--calib-data DIR)")
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError:
        raise PPSegError("export needs onnx and onnxruntime: pip install 'ppseg[export]'") from None
    shape = _check_input_shape(input_shape)
    resize = [] if shape else _check_resize(resize)
    num_classes = int(getattr(model, "num_classes", len(class_names)))
    if len(class_names) != num_classes or len(palette) != num_classes:
        raise ConfigError(f"the model has {num_classes} classes but {len(class_names)} class names and "
                          f"{len(palette)} palette colours were given")
    mean255 = [float(m) * 255.0 for m in mean]
    std255 = [float(s) * 255.0 for s in std]
    graph = ExportGraph(model, mean255, std255, output_op, uint8_input).eval()

    # trace at the fixed shape, or (dynamic) at a size that is not special in any axis
    n, h, w = (shape[0], shape[2], shape[3]) if shape else (1, 224, 288)
    smoke = _smoke_image((h, w), n)
    out_hw = (h + 13, w + 7) if not shape else (h, w)  # exercise the resize to output_size

    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.partial-", dir=out_dir.parent))
    try:
        float_path = staging / "model.onnx"
        _onnx_export(graph, _graph_input(graph, smoke), out_hw, float_path, int(opset), dynamic=shape is None)
        import onnx

        try:
            onnx.checker.check_model(str(float_path), full_check=True)
        except Exception as e:  # noqa: BLE001
            raise PPSegError(f"onnx.checker rejects the exported graph: {str(e).splitlines()[0][:300]}") from None
        check = _compare(graph, float_path, smoke, out_hw)
        if shape is None:  # a second, different size through the same dynamic graph
            other = _smoke_image((h + 37, w - 29), 2, seed=1)
            check["dynamic_check"] = _compare(graph, float_path, other, (h + 37, w - 29))

        in_shape: list[int | None] = ([shape[0], shape[2], shape[3], 3] if uint8_input else list(shape)) if shape \
            else ([None, None, None, 3] if uint8_input else [None, 3, None, None])
        out_name, out_dtype, out_layout, meaning = OUTPUT_OPS[output_op]
        car = Sidecar(
            input=InputSpec(name=_INPUT, layout="NHWC" if uint8_input else "NCHW",
                            dtype="uint8" if uint8_input else "float32", shape=in_shape, color_order="RGB",
                            normalized_in_graph=uint8_input, mean=mean255, std=std255),
            output=OutputSpec(name=out_name, op=output_op, dtype=out_dtype, layout=out_layout, meaning=meaning),
            num_classes=num_classes, class_names=[str(c) for c in class_names],
            palette=[[int(v) for v in c] for c in palette], resize=resize,
            output_size_input=_SIZE if graph.takes_output_size else None,
            model=model_name, model_kwargs=dict(model_kwargs), opset=int(opset), ppseg_version=__version__,
            source_checkpoint=str(source_checkpoint) if source_checkpoint else None,
            source_sha256=sha256_of(source_checkpoint) if source_checkpoint else None,
        )
        if quantize:
            from .quantize import quantize_int8

            car.onnx_sha256 = sha256_of(float_path)
            car.write(staging / "model.json")
            q_path = staging / "model.int8.onnx"
            car.quantization = quantize_int8(float_path, q_path, calib_images)
            q_path.replace(float_path)
        car.onnx_sha256 = sha256_of(float_path)
        car.write(staging / "model.json")
        out_dir.mkdir(parents=True, exist_ok=True)
        for name in ("model.onnx", "model.json"):  # the model first: a sidecar never points at a missing file
            os.replace(staging / name, out_dir / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    log.info("exported %s (%s, opset %d) -> %s", model_name, output_op, opset, out_dir / "model.onnx")
    return ExportResult(out_dir / "model.onnx", out_dir / "model.json", car, check)
