"""Shared ONNX check: export a model with dynamic N/H/W and compare onnxruntime with torch."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from torch import nn


def assert_onnx_matches_torch(model: nn.Module, shapes: list[tuple[int, int, int, int]], *,
                              atol: float = 1e-4, rtol: float = 0.0, seed: int = 1) -> None:
    """Export ``model`` (eval mode) once with dynamic axes; every shape must match torch."""
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    model.eval()
    buf = io.BytesIO()
    torch.onnx.export(model, (torch.randn(*shapes[0]),), buf, input_names=["x"], output_names=["logits"],
                      dynamic_axes={"x": {0: "n", 2: "h", 3: "w"}, "logits": {0: "n", 2: "h", 3: "w"}},
                      opset_version=17, dynamo=False)
    session = ort.InferenceSession(buf.getvalue(), providers=["CPUExecutionProvider"])
    gen = torch.Generator().manual_seed(seed)
    for shape in shapes:
        x = torch.randn(shape, generator=gen)
        with torch.no_grad():
            ref = model(x).numpy()
        (got,) = session.run(None, {"x": x.numpy()})
        assert got.shape == ref.shape
        assert np.abs(ref).max() > 0.1, "weights too small for the comparison to mean something"
        np.testing.assert_allclose(got, ref, atol=atol, rtol=rtol)
