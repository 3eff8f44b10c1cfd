"""The torch-free deploy Predictor: same labels as `ppseg predict` on real images, sidecar checks, bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

import ppseg  # noqa: E402
from ppseg.cli import main  # noqa: E402
from ppseg.deploy import Predictor  # noqa: E402
from ppseg.weights import atomic_save, weights_file  # noqa: E402
from ppseg.errors import ConfigError, DataError, PPSegError  # noqa: E402
from helpers.data import mini_mobileseg_config  # noqa: E402
from helpers.weights import randomize  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
MINI = REPO / "examples" / "camvid_mini"  # real CamVid images, committed (downscaled 240 x 180)


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, Path]:
    """(config, weights file) of a PP-MobileSeg-Tiny with non-trivial weights on the CamVid sample."""
    root = tmp_path_factory.mktemp("deploy")
    cfg = mini_mobileseg_config()
    # a val resize that changes the aspect ratio: the predictor must undo it like ppseg predict
    cfg["val_dataset"]["transforms"] = [{"type": "Resize", "target_size": [208, 144]}]
    cfg_path = root / "cfg.yml"
    cfg_path.write_text(yaml.safe_dump(cfg))
    model = randomize(ppseg.create_model("pp_mobileseg_tiny", num_classes=11), seed=11)
    with torch.no_grad():  # let the image, not the class biases, decide: several classes per image
        model.decode_head.conv_seg.bias.zero_()
        model.decode_head.conv_seg.weight.mul_(8.0)
    weights = root / "w.pt"
    atomic_save(weights_file("pp_mobileseg_tiny", {"num_classes": 11}, model.state_dict()), weights)
    return cfg_path, weights


def _export(cfg: Path, weights: Path, out: Path, *extra: str) -> Path:
    assert main(["export", "-c", str(cfg), "--model", str(weights), "--out", str(out), *extra]) == 0
    return out / "model.onnx"


def _images() -> list[Path]:
    return sorted((MINI / "images" / "train").glob("*.jpg"))[:4]


@pytest.fixture(scope="module")
def predicted(trained, tmp_path_factory) -> Path:
    cfg, weights = trained
    out = tmp_path_factory.mktemp("pred")
    assert main(["predict", "-c", str(cfg), "--model", str(weights), "--input", str(_images()[0].parent),
                 "--save-dir", str(out)]) == 0
    return out


def _reference(predicted: Path, image: Path) -> np.ndarray:
    return np.asarray(Image.open(predicted / "labels" / image.with_suffix(".png").name))


@pytest.mark.parametrize("op", ["argmax", "vim", "none", "softmax"])
def test_predictor_equals_ppseg_predict_on_real_images(op: str, trained, predicted, tmp_path: Path) -> None:
    cfg, weights = trained
    p = Predictor(_export(cfg, weights, tmp_path / op, "--output-op", op), threads=1)
    images = _images()
    for image, labels in zip(images, p.predict_batch(images)):
        ref = _reference(predicted, image)
        assert labels.shape == ref.shape and labels.dtype == np.uint8
        agree = (labels == ref).mean()
        # vim is the reference's approximation of argmax; the other ops must reproduce ppseg predict
        assert agree >= (0.99 if op == "vim" else 0.9999), f"{op} {image.name}: {agree:.5%}"
        assert len(np.unique(ref)) > 1, "a one-class prediction would make this test meaningless"


def test_uint8_input_and_fixed_shape_predictors(trained, predicted, tmp_path: Path) -> None:
    cfg, weights = trained
    u8 = Predictor(_export(cfg, weights, tmp_path / "u8", "--uint8-input"))
    fixed = Predictor(_export(cfg, weights, tmp_path / "fixed", "--input-shape", "2", "3", "144", "208"))
    assert fixed.sidecar.input.static_hw == (144, 208) and fixed.sidecar.input.static_batch == 2
    images = _images()[:3]  # 3 images through a batch-2 graph: the last batch is padded
    for image, a, b in zip(images, u8.predict_batch(images), fixed.predict_batch(images)):
        ref = _reference(predicted, image)
        assert (b == ref).mean() >= 0.9999
        assert (a == ref).mean() >= 0.995  # uint8 resize rounds the input to bytes


def test_probs_inputs_dirs_and_overlay(trained, tmp_path: Path) -> None:
    cfg, weights = trained
    p = Predictor(_export(cfg, weights, tmp_path / "sm", "--output-op", "softmax"))
    image = _images()[0]
    probs = p.predict(image, output="probs")
    rgb = np.asarray(Image.open(image).convert("RGB"))
    assert probs.shape == (11, *rgb.shape[:2]) and probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(0), 1.0, atol=1e-5)
    assert (p.predict(rgb) == probs.argmax(0)).all()  # an RGB array gives what its file gives
    results = dict(p.predict_dir(image.parent))
    assert len(results) == len(list(image.parent.glob("*.jpg")))
    over = p.overlay(rgb, results[image])
    assert over.shape == rgb.shape and over.dtype == np.uint8 and (over != rgb).any()
    labels_only = Predictor(_export(cfg, weights, tmp_path / "am"))
    with pytest.raises(ConfigError, match="returns labels only"):
        labels_only.predict(image, output="probs")


def test_bad_input_is_one_clear_error(trained, tmp_path: Path) -> None:
    cfg, weights = trained
    path = _export(cfg, weights, tmp_path / "e")
    p = Predictor(path)
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not an image")
    with pytest.raises(DataError, match="broken.jpg"):
        p.predict(broken)
    with pytest.raises(DataError, match="uint8"):
        p.predict(np.zeros((8, 8, 3), np.float32))
    with pytest.raises(DataError, match="H x W x 3"):
        p.predict(np.zeros((8, 8, 5), np.uint8))
    # a sidecar that belongs to another model
    other = _export(cfg, weights, tmp_path / "o", "--output-op", "softmax")
    (path.parent / "model.json").write_text(other.with_suffix(".json").read_text())
    with pytest.raises(PPSegError, match="belongs to another model"):
        Predictor(path)
    # ... even when its hash is removed: names and dtypes are checked against the graph
    car = json.loads(other.with_suffix(".json").read_text())
    car["onnx_sha256"] = ""
    (path.parent / "model.json").write_text(json.dumps(car))
    with pytest.raises(PPSegError, match="does not describe"):
        Predictor(path)
    (path.parent / "model.json").unlink()
    with pytest.raises(PPSegError, match="sidecar not found"):
        Predictor(path)


def test_sidecars_written_before_the_transforms_version_still_load(trained, tmp_path: Path) -> None:
    """A model.json from before ``transforms_version`` existed reads as version 1 and predicts the same;
    one from a newer ppseg is refused by name."""
    cfg, weights = trained
    path = _export(cfg, weights, tmp_path / "v")
    car = json.loads(path.with_suffix(".json").read_text())
    assert car["transforms_version"] == 1 and car["resize"]
    new = Predictor(path)
    del car["transforms_version"]
    path.with_suffix(".json").write_text(json.dumps(car))
    old = Predictor(path)
    assert old.sidecar.resize == new.sidecar.resize
    img = np.random.default_rng(0).integers(0, 255, (37, 51, 3), dtype=np.uint8)
    assert np.array_equal(old.predict(img), new.predict(img))
    car["transforms_version"] = 2
    path.with_suffix(".json").write_text(json.dumps(car))
    with pytest.raises(PPSegError, match="transforms version 2 was written by a newer ppseg"):
        Predictor(path)


def test_random_weights_export_is_the_same_model_every_time(tmp_path: Path) -> None:
    """--random-weights is seeded: two exports hold the same weights, so speed comparisons compare like with like."""
    import onnx
    from onnx import numpy_helper

    cfg = REPO / "configs" / "demo" / "camvid_mini.yml"
    weights = []
    for name in ("a", "b"):
        assert main(["export", "-c", str(cfg), "--random-weights", "--input-shape", "1", "3", "64", "64",
                     "--out", str(tmp_path / name)]) == 0
        graph = onnx.load(str(tmp_path / name / "model.onnx")).graph
        weights.append({i.name: numpy_helper.to_array(i) for i in graph.initializer if i.dims and len(i.dims) == 4})
    assert weights[0].keys() == weights[1].keys() and len(weights[0]) > 10
    assert all(np.array_equal(weights[0][k], weights[1][k]) for k in weights[0])


def test_cli_export_errors_exit_1_and_write_nothing(trained, tmp_path: Path, capsys) -> None:
    cfg, weights = trained
    lraspp_cfg = REPO / "configs" / "demo" / "camvid_mini.yml"
    out = tmp_path / "never"
    assert main(["export", "-c", str(lraspp_cfg), "--model", str(weights), "--out", str(out)]) == 1
    assert "checkpoint does not match the model" in capsys.readouterr().err
    assert main(["export", "-c", str(lraspp_cfg), "--random-weights", "--output-op", "vim", "--out", str(out)]) == 1
    assert "forward_lowres" in capsys.readouterr().err
    assert main(["export", "-c", str(cfg), "--model", str(weights), "--quantize", "int8", "--out", str(out)]) == 1
    assert "--calib-data" in capsys.readouterr().err
    assert not out.exists()


def test_int8_quantization(trained, predicted, tmp_path: Path) -> None:
    cfg, weights = trained
    path = _export(cfg, weights, tmp_path / "q", "--quantize", "int8", "--calib-data", str(MINI / "images"))
    import onnx

    graph = onnx.load(str(path)).graph
    ops = [n.op_type for n in graph.node]
    assert ops.count("QuantizeLinear") > 10 and ops.count("DequantizeLinear") > 10
    # the logits stay float: nothing quantised between the network's last convolution and the argmax
    producer = {o: n for n in graph.node for o in n.output}
    todo, seen = [n for n in graph.node if n.op_type == "ArgMax"], set()
    while todo:
        n = todo.pop()
        seen.add(n.name)
        assert n.op_type not in ("QuantizeLinear", "DequantizeLinear") or n.input[0] not in producer \
            or producer[n.input[0]].op_type != "QuantizeLinear", f"{n.name} dequantises the logits"
        if n.op_type not in ("Conv", "Shape"):  # the data path only, up to the network's last layer
            todo += [producer[i] for i in n.input if i in producer and producer[i].name not in seen]
    p = Predictor(path)
    assert p.sidecar.quantization["type"] == "int8" and p.sidecar.quantization["calibration_images"] > 0
    image = _images()[0]
    agree = (p.predict(image) == _reference(predicted, image)).mean()
    assert agree > 0.5, f"int8 labels agree with float on only {agree:.2%}"


def test_deploy_runs_without_torch(trained, tmp_path: Path) -> None:
    """`ppseg.deploy` imports and predicts in a process where torch cannot be imported."""
    cfg, weights = trained
    path = _export(cfg, weights, tmp_path / "nt", "--output-op", "vim", "--uint8-input")
    code = (
        "import sys\n"
        "class _NoTorch:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'torch' or name.startswith('torch.'):\n"
        "            raise ImportError('torch is blocked in this test')\n"
        "sys.meta_path.insert(0, _NoTorch())\n"
        "from ppseg.deploy import Predictor\n"
        f"labels = Predictor({str(path)!r}).predict({str(_images()[0])!r})\n"
        "assert 'torch' not in sys.modules\n"
        "print(labels.shape, labels.dtype)\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert "(180, 240) uint8" in run.stdout
