"""INT8 static quantisation (QDQ) of an exported model with ``onnxruntime.quantization``.

Calibration images go through exactly the deploy predictor's pre-processing
(from the float model's sidecar), so the activation ranges are those the model
sees in deployment. Weights are quantised per channel (int8, symmetric),
activations per tensor (uint8, MinMax calibration).
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import PPSegError

__all__ = ["quantize_int8"]

log = logging.getLogger("ppseg")


@contextlib.contextmanager
def _cwd(path: str) -> Iterator[None]:
    old = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(old)


def _float_nodes(path: Path) -> list[str]:
    """Nodes that stay float: those ``ExportGraph`` adds around the network (input normalisation, the
    output op: VIM, resizes, argmax, look-ups) and the network's last layer, so the logits are float.

    torch names every node after the module path it was traced in (``/backbone/...``); the
    wrapper's own nodes sit at the top (``/Resize``, ``/ArgMax_1``). Quantising the logits
    would round them to 256 levels right before an argmax: ties, and labels that no longer
    follow the float model's.
    """
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    adapter = {n.name for n in graph.node if n.name.startswith("/") and "/" not in n.name[1:]}
    producer = {out: n for n in graph.node for out in n.output}
    keep = set(adapter)
    # walk back from what the output op reads to the network's last convolution (e.g. a model-internal resize)
    todo = [producer[i] for n in graph.node if n.name in adapter for i in n.input
            if i in producer and producer[i].name not in adapter]
    while todo:
        n = todo.pop()
        if n.name in keep:
            continue
        keep.add(n.name)
        if n.op_type not in ("Conv", "Shape"):  # the data path only
            todo += [producer[i] for i in n.input if i in producer and producer[i].name not in keep]
    return sorted(keep)


def quantize_int8(float_path: Path, out_path: Path, calib_images: Sequence[str | os.PathLike],
                  max_images: int = 64) -> dict[str, Any]:
    """Quantise ``float_path`` (with its sidecar next to it) into ``out_path``; returns the sidecar's record."""
    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType,
                                          quantize_static)

    from ..deploy.predictor import Predictor

    images = [Path(p) for p in calib_images][:max_images]
    if not images:
        raise PPSegError("INT8 calibration needs at least one image")
    predictor = Predictor(float_path)
    car = predictor.sidecar

    class _Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._it = self._feeds()

        def _feeds(self) -> Iterator[dict[str, np.ndarray]]:
            for p in images:
                img = predictor.load(p)
                feed = {car.input.name: predictor.preprocess(img)}
                if car.output_size_input:
                    feed[car.output_size_input] = np.asarray(img.shape[:2], dtype=np.int64)
                yield feed

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self._it, None)

    source = float_path
    with tempfile.TemporaryDirectory(prefix="ppseg-quant-") as tmp:
        try:  # shape inference + graph clean-up help the quantiser; not every graph needs it
            from onnxruntime.quantization.shape_inference import quant_pre_process

            pre = Path(tmp) / "pre.onnx"
            with _cwd(tmp):  # it writes scratch files into the working directory
                quant_pre_process(str(float_path.resolve()), str(pre), skip_symbolic_shape=False)
            source = pre
        except Exception as e:  # noqa: BLE001 - fall back to the plain graph
            log.info("quantisation pre-processing skipped (%s)", str(e).splitlines()[0][:120] if str(e) else e)
        try:
            quantize_static(str(source), str(out_path), _Reader(), quant_format=QuantFormat.QDQ,
                            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, per_channel=True,
                            calibrate_method=CalibrationMethod.MinMax, nodes_to_exclude=_float_nodes(source))
        except PPSegError:
            raise
        except Exception as e:  # noqa: BLE001
            raise PPSegError(f"INT8 quantisation failed: {str(e).splitlines()[0][:300]}") from None
    return {"type": "int8", "format": "QDQ", "weights": "int8 per-channel", "activations": "uint8 per-tensor",
            "calibration": "MinMax", "calibration_images": len(images)}
