"""ONNX export: every registered model, static and dynamic shapes, each output op, the sidecar, failures."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
import onnxruntime as ort  # noqa: E402

import ppseg  # noqa: E402
from ppseg.errors import ConfigError, PPSegError  # noqa: E402
from ppseg.export import ExportGraph, export_onnx  # noqa: E402
from ppseg.export.graph import resize_nhwc  # noqa: E402
from ppseg.semantic.vim import vim  # noqa: E402
from helpers.weights import randomize  # noqa: E402

NUM_CLASSES = 11
MEAN, STD = (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)


def _model(name: str, seed: int = 0) -> torch.nn.Module:
    return randomize(ppseg.create_model(name, num_classes=NUM_CLASSES), seed).eval()


def _export(model, out: Path, name: str = "m", **kw):
    return export_onnx(model, out, model_name=name, model_kwargs={}, class_names=[f"c{i}" for i in range(NUM_CLASSES)],
                       palette=[[i, i, i] for i in range(NUM_CLASSES)], mean=MEAN, std=STD, **kw)


def _session(path: Path) -> ort.InferenceSession:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def _normalized(images: torch.Tensor) -> torch.Tensor:
    return (images - 127.5) / 127.5


@pytest.mark.parametrize("name", ppseg.list_models(task="semantic"))
def test_every_model_exports_dynamic_and_static(name: str, tmp_path: Path) -> None:
    """Logits within 1e-4 relative and labels on >= 99.99 % of pixels, for a dynamic and a fixed-shape graph."""
    model = _model(name)
    dyn = _export(model, tmp_path / "dyn", output_op="none")
    static = _export(model, tmp_path / "static", output_op="none", input_shape=(1, 3, 160, 224))
    gen = torch.Generator().manual_seed(5)
    cases = [(dyn.onnx_path, (2, 3, 97, 131)), (dyn.onnx_path, (1, 3, 256, 320)), (static.onnx_path, (1, 3, 160, 224))]
    for path, shape in cases:
        x = torch.rand(shape, generator=gen) * 255
        with torch.no_grad():
            ref = model(_normalized(x)).numpy()
        (got,) = _session(path).run(None, {"image": _normalized(x).numpy()})
        assert got.shape == ref.shape
        scale = np.abs(ref).max()
        assert scale > 0.1, "weights too small for the comparison to mean something"
        assert np.abs(got - ref).max() <= 1e-4 * scale, f"{name} {shape}: {np.abs(got - ref).max()} vs {scale}"
        agree = (got.argmax(1) == ref.argmax(1)).mean()
        assert agree >= 0.9999, f"{name} {shape}: labels agree on {agree:.5%}"
    # the static graph really is static
    assert [d for d in _session(static.onnx_path).get_inputs()[0].shape] == [1, 3, 160, 224]
    assert static.sidecar.input.shape == [1, 3, 160, 224] and dyn.sidecar.input.shape == [None, 3, None, None]


@pytest.mark.parametrize("op", ["softmax", "argmax"])
def test_label_and_prob_ops_resize_to_output_size(op: str, tmp_path: Path) -> None:
    model = _model("lraspp_mobilenetv3_small", seed=1)
    res = _export(model, tmp_path / op, output_op=op)
    x = torch.rand(1, 3, 120, 150, generator=torch.Generator().manual_seed(2)) * 255
    out_hw = (241, 299)
    (got,) = _session(res.onnx_path).run(None, {"image": _normalized(x).numpy(),
                                                "output_size": np.asarray(out_hw, np.int64)})
    with torch.no_grad():
        logits = torch.nn.functional.interpolate(model(_normalized(x)), size=out_hw, mode="bilinear",
                                                 align_corners=False)
    if op == "softmax":
        assert got.shape == (1, NUM_CLASSES, *out_hw)
        np.testing.assert_allclose(got, logits.softmax(1).numpy(), atol=1e-5)
    else:
        assert got.shape == (1, *out_hw) and got.dtype == np.int64
        assert (got == logits.argmax(1).numpy()).mean() >= 0.9999
    assert res.sidecar.output_size_input == "output_size" and res.sidecar.output.op == op


@pytest.mark.parametrize("name", ["pp_mobileseg_tiny", "pp_liteseg_t"])
def test_argmax_of_a_lowres_model_equals_torch(name: str, tmp_path: Path) -> None:
    """Models with forward_lowres export argmax as two channels-last resizes: the labels of torch's
    resize(model(x), output_size), at any input and output size."""
    model = _model(name, seed=7)
    res = _export(model, tmp_path / "am", output_op="argmax")
    graph = __import__("onnx").load(str(res.onnx_path)).graph
    assert [n.op_type for n in graph.node].count("Resize") >= 2
    sess = _session(res.onnx_path)
    gen = torch.Generator().manual_seed(8)
    for shape, out_hw in [((1, 3, 256, 192), (256, 192)), ((2, 3, 150, 221), (301, 97))]:
        x = torch.rand(shape, generator=gen) * 255
        with torch.no_grad():
            ref = torch.nn.functional.interpolate(model(_normalized(x)), size=out_hw, mode="bilinear",
                                                  align_corners=False).argmax(1).numpy()
        (got,) = sess.run(None, {"image": _normalized(x).numpy(), "output_size": np.asarray(out_hw, np.int64)})
        assert got.shape == ref.shape and got.dtype == np.int64
        assert (got != ref).sum() <= 2, f"{(got != ref).sum()} of {ref.size} labels differ"  # rounding-level only


@pytest.mark.parametrize("name", ["pp_mobileseg_tiny", "pp_mobileseg_base"])
def test_vim_in_the_graph_equals_ppseg_vim(name: str, tmp_path: Path) -> None:
    """VIM exported with ONNX ops only (no loop): the same labels as ppseg.semantic.vim.vim, any size, batch-shared label set."""
    model = _model(name, seed=3)
    res = _export(model, tmp_path / "vim", output_op="vim")
    ops = {n.op_type for n in __import__("onnx").load(str(res.onnx_path)).graph.node}
    assert {"Unique", "ArgMax", "Resize"} <= ops and "Loop" not in ops
    sess = _session(res.onnx_path)
    gen = torch.Generator().manual_seed(4)
    for shape, out_hw in [((1, 3, 256, 256), (256, 256)), ((2, 3, 200, 333), (400, 666))]:
        x = torch.rand(shape, generator=gen) * 255
        with torch.no_grad():
            ref = vim(model.forward_lowres(_normalized(x)), out_hw).numpy()
        (got,) = sess.run(None, {"image": _normalized(x).numpy(), "output_size": np.asarray(out_hw, np.int64)})
        assert got.shape == ref.shape
        assert (got == ref).mean() >= 0.9999


class _ResizeNHWCModule(torch.nn.Module):
    def forward(self, x: torch.Tensor, size: torch.Tensor) -> torch.Tensor:
        return resize_nhwc(x, size)


def test_resize_nhwc_is_one_channels_last_resize(tmp_path: Path) -> None:
    """Eager: exactly F.interpolate. Exported: a single Resize on the NHWC tensor (no transposes), equal to torch
    within float rounding for up- and downsampling, any batch, channels and size (dynamic)."""
    x = torch.randn(2, 7, 9, 13, generator=torch.Generator().manual_seed(0))
    size = torch.tensor([31, 20])
    ref = torch.nn.functional.interpolate(x.permute(0, 3, 1, 2), size=(31, 20), mode="bilinear",
                                          align_corners=False).permute(0, 2, 3, 1)
    assert torch.equal(resize_nhwc(x, size), ref)
    path = tmp_path / "r.onnx"
    torch.onnx.export(_ResizeNHWCModule(), (x, size), str(path), input_names=["x", "size"], output_names=["y"],
                      dynamic_axes={"x": {0: "b", 1: "h", 2: "w", 3: "c"}, "y": {0: "b", 1: "H", 2: "W", 3: "c"}},
                      opset_version=17, dynamo=False)
    ops = [n.op_type for n in __import__("onnx").load(str(path)).graph.node]
    assert ops.count("Resize") == 1 and "Transpose" not in ops
    sess = _session(path)
    gen = torch.Generator().manual_seed(1)
    for shape, hw in [((1, 4, 4, 3), (64, 48)), ((3, 17, 23, 20), (9, 50)), ((1, 32, 32, 22), (512, 512))]:
        xi = torch.randn(shape, generator=gen)
        want = torch.nn.functional.interpolate(xi.permute(0, 3, 1, 2), size=hw, mode="bilinear",
                                               align_corners=False).permute(0, 2, 3, 1).numpy()
        (got,) = sess.run(None, {"x": xi.numpy(), "size": np.asarray(hw, np.int64)})
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, atol=1e-5 * max(1.0, float(np.abs(want).max())), rtol=0)


@pytest.mark.parametrize("opset", [13, 20])
def test_vim_uint8_graph_at_both_ends_of_the_opset_range(opset: int, tmp_path: Path) -> None:
    """DequantizeLinear (per axis), GatherElements and the channels-last Resize exist from opset 13 on."""
    model = _model("pp_mobileseg_tiny", seed=9)
    res = _export(model, tmp_path / str(opset), output_op="vim", uint8_input=True, opset=opset)
    assert res.sidecar.opset == opset and res.check["label_agreement"] >= 0.9999
    img = np.random.default_rng(opset).integers(0, 256, (1, 96, 128, 3), dtype=np.uint8)
    x = torch.from_numpy(img).permute(0, 3, 1, 2).float()
    with torch.no_grad():
        ref = vim(model.forward_lowres(_normalized(x)), (96, 128)).numpy()
    (got,) = _session(res.onnx_path).run(None, {"image": img, "output_size": np.asarray([96, 128], np.int64)})
    assert (got == ref).mean() >= 0.9999


def test_uint8_input_folds_normalisation(tmp_path: Path) -> None:
    model = _model("pp_mobileseg_tiny", seed=6)
    f = _export(model, tmp_path / "f", output_op="argmax")
    u = _export(model, tmp_path / "u", output_op="argmax", uint8_input=True)
    assert u.sidecar.input.layout == "NHWC" and u.sidecar.input.dtype == "uint8" and u.sidecar.input.normalized_in_graph
    img = (np.random.default_rng(0).random((1, 180, 240, 3)) * 255).astype(np.uint8)
    size = np.asarray([180, 240], np.int64)
    (a,) = _session(f.onnx_path).run(None, {"image": ((img.transpose(0, 3, 1, 2) - 127.5) / 127.5).astype(np.float32),
                                            "output_size": size})
    (b,) = _session(u.onnx_path).run(None, {"image": img, "output_size": size})
    assert (a == b).mean() >= 0.9999


@pytest.mark.parametrize("mean, std, adds", [((0.485, 0.456, 0.406), (0.229, 0.224, 0.225), 1),
                                              ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0), 0)])
def test_uint8_input_normalises_like_the_float_graph(mean, std, adds: int, tmp_path: Path) -> None:
    """The bytes are normalised by DequantizeLinear (+ one Add unless every mean is a whole byte value): the
    logits equal those of the float graph fed (x - mean) / std, for ImageNet-style and for 0/1 statistics."""
    model = _model("lraspp_mobilenetv3_small", seed=2)
    kw = dict(model_name="m", model_kwargs={}, class_names=[f"c{i}" for i in range(NUM_CLASSES)],
              palette=[[i, i, i] for i in range(NUM_CLASSES)], mean=mean, std=std, output_op="none")
    u = export_onnx(model, tmp_path / "u", uint8_input=True, **kw)
    nodes = __import__("onnx").load(str(u.onnx_path)).graph.node
    first = [n for n in nodes if n.op_type not in ("Constant", "Identity")][:4]
    assert [n.op_type for n in first[:2]] == ["Transpose", "DequantizeLinear"]
    assert [n.op_type for n in first[2:2 + adds]] == ["Add"] * adds and (adds or first[2].op_type != "Add")
    img = np.random.default_rng(3).integers(0, 256, (2, 70, 90, 3), dtype=np.uint8)
    x = (img.transpose(0, 3, 1, 2) / 255.0 - np.asarray(mean).reshape(1, 3, 1, 1)) / np.asarray(std).reshape(1, 3, 1, 1)
    with torch.no_grad():
        ref = model(torch.from_numpy(x.astype(np.float32))).numpy()
    (got,) = _session(u.onnx_path).run(None, {"image": img})
    assert np.abs(got - ref).max() <= 1e-4 * np.abs(ref).max()


def test_sidecar_contents(tmp_path: Path) -> None:
    ckpt = tmp_path / "w.pt"
    ckpt.write_bytes(b"pretend checkpoint")
    res = _export(_model("lraspp_mobilenetv3_small"), tmp_path / "e", output_op="argmax", opset=17,
                  resize=[{"type": "Resize", "target_size": [240, 180]}], source_checkpoint=ckpt)
    car = json.loads(res.sidecar_path.read_text())
    assert car["format"] == "ppseg-onnx" and car["opset"] == 17 and car["ppseg_version"] == ppseg.__version__
    assert car["input"]["mean"] == [127.5] * 3 and car["input"]["color_order"] == "RGB"
    assert car["resize"] == [{"type": "Resize", "target_size": [240, 180]}]
    assert len(car["class_names"]) == len(car["palette"]) == NUM_CLASSES
    import hashlib

    assert car["source_sha256"] == hashlib.sha256(b"pretend checkpoint").hexdigest()
    assert car["onnx_sha256"] == hashlib.sha256(res.onnx_path.read_bytes()).hexdigest()
    assert res.check["label_agreement"] >= 0.999 and "dynamic_check" in res.check


def test_bad_requests_write_nothing(tmp_path: Path) -> None:
    model = _model("lraspp_mobilenetv3_small")
    out = tmp_path / "never"
    with pytest.raises(ConfigError, match="forward_lowres"):
        _export(model, out, output_op="vim")
    with pytest.raises(ConfigError, match="opset"):
        _export(model, out, opset=7)
    with pytest.raises(ConfigError, match="input-shape"):
        _export(model, out, input_shape=(1, 4, 64, 64))
    with pytest.raises(ConfigError, match="Padding cannot be exported"):
        _export(model, out, resize=[{"type": "Padding", "target_size": [64, 64]}])
    with pytest.raises(ConfigError, match="calibration"):
        _export(model, out, quantize="int8")
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "staging folder left behind"


def test_export_failure_inside_the_exporter_is_one_clear_error(tmp_path: Path) -> None:
    class Unexportable(torch.nn.Module):
        num_classes = NUM_CLASSES

        def forward(self, x):
            return torch.stft(x.flatten(1), 16, return_complex=True).abs()[:, :NUM_CLASSES, None, :]

    with pytest.raises(PPSegError, match="cannot export Unexportable to ONNX"):
        _export(Unexportable(), tmp_path / "x", output_op="none")
    assert not (tmp_path / "x").exists()


def test_graph_module_rejects_unknown_op() -> None:
    with pytest.raises(ConfigError, match="output op"):
        ExportGraph(_model("lraspp_mobilenetv3_small"), [0] * 3, [1] * 3, "sigmoid")
