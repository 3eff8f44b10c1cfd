"""Click-model ONNX export (``ppseg export`` of a click model) and its torch-free deployment.

A randomly initialised (seeded, non-trivial) ``click_mobilenetv3_lite`` and ``edgeflow_hrnet18_ocr64``
are exported; the files and the sidecar are checked; a scripted click session gives the same
probabilities and masks with :class:`ppseg.deploy.InteractivePredictor` (ONNX Runtime) as with
:func:`ppseg.interactive.predictor.load_torch_predictor` (torch) at every click; the deploy path
imports without torch; bad sidecars, bad flags and the semantic export keep their clear errors.
No ``../shared`` data is needed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from torch import nn

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
import onnxruntime as ort  # noqa: E402

import ppseg  # noqa: E402
from helpers.data import mini_mobileseg_config  # noqa: E402
from helpers.weights import randomize, randomize_bn  # noqa: E402
from ppseg.cli import main  # noqa: E402
from ppseg.deploy import InteractivePredictor, OnnxClickBackend, Predictor, read_click_sidecar  # noqa: E402
from ppseg.deploy.sidecar import sha256_of  # noqa: E402
from ppseg.errors import PPSegError  # noqa: E402
from ppseg.export import export_click_onnx  # noqa: E402
from ppseg.interactive.predictor import ClickSegmentor, load_torch_predictor  # noqa: E402
from ppseg.interactive.session import ClickPredictor, InteractiveSettings  # noqa: E402
from ppseg.weights import atomic_save, weights_file  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
MINI = REPO / "examples" / "camvid_mini"
#: ZoomIn that really crops on a 180 x 240 image (the default min_crop_size 480 would take it whole);
#: threshold 0.4: the random model's probabilities are 0.33-0.53, and this mask covers ~20 % of the image
SETTINGS = InteractiveSettings(threshold=0.4, target_size=(192, 256), min_crop_size=64, max_side=400)
#: (row, column, positive) on the synthetic image: object, background, object, background
CLICKS = [(90, 120, True), (30, 40, False), (120, 175, True), (160, 20, False)]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _image(h: int = 180, w: int = 240) -> np.ndarray:
    """A gradient background with an ellipse and a rectangle of other colours, some noise (uint8 RGB)."""
    rng = np.random.default_rng(7)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.stack([40 + 60 * xx / w, 90 + 50 * yy / h, 120 + 0 * xx], axis=-1)
    ellipse = ((yy - 0.5 * h) / (0.3 * h)) ** 2 + ((xx - 0.55 * w) / (0.25 * w)) ** 2 <= 1
    img[ellipse] = (210, 60, 50)
    img[int(0.6 * h):int(0.8 * h), int(0.65 * w):int(0.85 * w)] = (230, 200, 40)
    img += rng.normal(0, 6, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def _click_model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    model = randomize(ppseg.create_model("click_mobilenetv3_lite"), seed)
    with torch.no_grad():
        model.maps_transform[3].scale.fill_(1.0)  # clicks and the previous mask matter
    return model.eval()


def _edgeflow_model(seed: int = 0) -> nn.Module:
    """Default init, random BN statistics and affine terms, click embedding scale 1 (as test_edgeflow)."""
    torch.manual_seed(seed)
    model = ppseg.create_model("edgeflow_hrnet18_ocr64")
    randomize_bn(model, seed)
    return model.eval()


def _save(model: nn.Module, name: str, path: Path, settings: InteractiveSettings) -> Path:
    atomic_save(weights_file(name, {}, model.state_dict(), task="interactive",
                             interactive={"settings": settings.to_dict()}), path)
    return path


@pytest.fixture(scope="module")
def click_export(tmp_path_factory) -> tuple[Path, Path, dict]:
    """(weights file, model.onnx, --json report) of a click_mobilenetv3_lite exported by the CLI without -c."""
    root = tmp_path_factory.mktemp("click")
    weights = _save(_click_model(), "click_mobilenetv3_lite", root / "click.pt", SETTINGS)
    torch.set_num_threads(1)
    assert main(["export", "--model", str(weights), "--out", str(root / "export"),
                 "--json", str(root / "report.json")]) == 0
    return weights, root / "export" / "model.onnx", json.loads((root / "report.json").read_text())


def _compare_sessions(onnx_path: Path, weights: Path, image: np.ndarray, clicks) -> float:
    """Run the same clicks with ONNX Runtime and torch; assert they agree at every click; max |prob diff|."""
    ort_pred = InteractivePredictor(onnx_path, threads=1)
    torch_pred = load_torch_predictor(weights)
    assert isinstance(ort_pred, ClickPredictor) and ort_pred.settings == torch_pred.settings
    s_ort, s_torch = ort_pred.session(image), torch_pred.session(image)
    worst, sizes = 0.0, []
    for y, x, positive in clicks:
        p_ort, p_torch = s_ort.click(y, x, positive), s_torch.click(y, x, positive)
        assert p_ort.shape == p_torch.shape == image.shape[:2]
        diff = float(np.abs(p_ort - p_torch).max())
        agree = float((s_ort.mask == s_torch.mask).mean())
        assert diff <= 1e-3 and agree >= 0.999, \
            f"click {(y, x, positive)}: max |prob diff| {diff:.3g}, masks agree on {agree:.4%}"
        worst = max(worst, diff)
        sizes.append(float(s_torch.mask.mean()))
    # the comparison means something: the masks are neither empty nor everything at every click
    assert any(0.01 < f < 0.99 for f in sizes), sizes
    # undo / redo replay the stored states on both
    assert s_ort.undo() and s_torch.undo()
    np.testing.assert_allclose(s_ort.prob, s_torch.prob, atol=1e-3)
    return worst


# ---------------------------------------------------------------------------------------------- click_mobilenetv3_lite
def test_export_writes_the_graph_and_its_sidecar(click_export) -> None:
    weights, onnx_path, report = click_export
    out = onnx_path.parent
    assert sorted(p.name for p in out.iterdir()) == ["model.json", "model.onnx"]
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]  # no staging folder left behind
    car = json.loads((out / "model.json").read_text())
    assert car["format"] == "ppseg-click-onnx" and car["format_version"] == 1 and car["task"] == "interactive"
    assert car["model"] == "click_mobilenetv3_lite" and car["prev_input"] == "mask" and car["click_radius"] == 5
    assert car["settings"] == SETTINGS.to_dict()
    assert car["onnx_sha256"] == sha256_of(onnx_path) and car["ppseg_version"] == ppseg.__version__
    assert car["source"] == {"weights": str(weights), "sha256": sha256_of(weights)}
    assert car["inputs"]["image"]["shape"] == [1, 3, None, None]
    assert car["inputs"]["image"]["meaning"] == "RGB float32 0..1, NCHW, normalised in graph"
    assert car["inputs"]["coord_features"]["channels"] == ["mask", "positive", "negative"]
    assert [o["name"] for o in car["outputs"]] == ["instances"]
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    assert [(i.name, i.shape[:2]) for i in sess.get_inputs()] == [("image", [1, 3]), ("coord_features", [1, 3])]
    assert all(isinstance(d, str) for i in sess.get_inputs() for d in i.shape[2:])  # dynamic H and W
    assert [o.name for o in sess.get_outputs()] == ["instances"]  # eval mode: no auxiliary heads
    # the export's own check: 400x400 and 333x517 with random clicks
    assert {"400x400", "333x517"} <= set(report["check"]) and report["check"]["max_prob_diff"] < 1e-4
    assert read_click_sidecar(onnx_path).settings == SETTINGS


def test_click_session_onnx_matches_torch(click_export) -> None:
    weights, onnx_path, _ = click_export
    worst = _compare_sessions(onnx_path, weights, _image(), CLICKS)
    print(f"click_mobilenetv3_lite: max |prob diff| ORT vs torch over {len(CLICKS)} clicks: {worst:.2e}")


def test_backend_contract(click_export) -> None:
    _, onnx_path, _ = click_export
    backend = OnnxClickBackend(onnx_path, threads=1)
    assert backend.prev_input == "mask" and backend.radius == 5.0
    logits, edge = backend.infer(np.zeros((3, 37, 53), np.float32), np.zeros((3, 37, 53), np.float32))
    assert logits.shape == (37, 53) and edge is None
    with pytest.raises(ValueError, match="same size"):
        backend.infer(np.zeros((3, 8, 8), np.float32), np.zeros((3, 8, 9), np.float32))
    p = InteractivePredictor(onnx_path, settings=InteractiveSettings(zoom_in=False))
    assert p.settings.zoom_in is False and p.sidecar.model == "click_mobilenetv3_lite"


def test_deploy_imports_and_clicks_without_torch(click_export) -> None:
    _, onnx_path, _ = click_export
    code = (
        "import sys\n"
        "sys.modules['torch'] = None\n"
        "import numpy as np\n"
        "from ppseg.deploy import InteractivePredictor\n"
        "import ppseg.deploy.interactive, ppseg.interactive.session\n"
        f"s = InteractivePredictor({str(onnx_path)!r}, threads=1).session(np.full((60, 80, 3), 100, np.uint8))\n"
        "prob = s.click(30, 40)\n"
        "s.click(5, 5, positive=False)\n"
        "loaded = [m for m, v in sys.modules.items() if v is not None and m.split('.')[0] == 'torch']\n"
        "assert not loaded, loaded\n"
        "import ppseg.interactive\n"  # its load_click_predictor dispatches .onnx to InteractivePredictor
        f"p = ppseg.interactive.load_click_predictor({str(onnx_path)!r}, threads=1)\n"
        "assert type(p).__name__ == 'InteractivePredictor', type(p)\n"
        "loaded = [m for m, v in sys.modules.items() if v is not None and m.split('.')[0] == 'torch']\n"
        "assert not loaded, loaded\n"
        "print(prob.shape, s.mask.dtype)\n"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert run.returncode == 0, run.stderr
    assert "(60, 80) bool" in run.stdout


def test_random_weights_with_an_interactive_config(tmp_path: Path, capsys) -> None:
    cfg = tmp_path / "click.yml"
    cfg.write_text(yaml.safe_dump({"task": "interactive", "model": {"type": "click_mobilenetv3_lite"},
                                   "interactive": {"settings": {"threshold": 0.45, "zoom_in": False}}}))
    _one_line_error(capsys, ["export", "--random-weights", "--out", str(tmp_path / "x")], "-c/--config")
    assert main(["export", "-c", str(cfg), "--random-weights", "--out", str(tmp_path / "rw")]) == 0
    car = read_click_sidecar(tmp_path / "rw" / "model.onnx")
    assert car.settings == InteractiveSettings(threshold=0.45, zoom_in=False)
    assert car.source == {"config": str(cfg), "random_weights": True} and car.model == "click_mobilenetv3_lite"


# ---------------------------------------------------------------------------------------------- EdgeFlow
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_edgeflow_export_and_session_match_torch(tmp_path: Path) -> None:
    settings = InteractiveSettings(threshold=0.478, target_size=(96, 96), min_crop_size=48)  # ~ the median prob
    weights = _save(_edgeflow_model(), "edgeflow_hrnet18_ocr64", tmp_path / "ef.pt", settings)
    result = export_click_onnx(weights, tmp_path / "ef", check_sizes=((96, 128), (67, 93)))
    car = result.sidecar
    assert car.model == "edgeflow_hrnet18_ocr64" and car.prev_input == "edge" and car.settings == settings
    assert car.output_names == ["instances", "instances_edge"]
    assert car.inputs["coord_features"]["channels"] == ["edge", "positive", "negative"]
    assert result.check["max_prob_diff"] < 1e-3
    backend = OnnxClickBackend(result.onnx_path, threads=1)
    logits, edge = backend.infer(np.full((3, 40, 56), 0.5, np.float32), np.zeros((3, 40, 56), np.float32))
    assert logits.shape == edge.shape == (40, 56)
    image = _image(96, 128)
    clicks = [(48, 70, True), (10, 15, False), (62, 95, True), (85, 10, False)]
    worst = _compare_sessions(result.onnx_path, weights, image, clicks)
    print(f"edgeflow_hrnet18_ocr64: max |prob diff| ORT vs torch: export check {result.check['max_prob_diff']:.2e}, "
          f"over {len(clicks)} clicks {worst:.2e}")


# ---------------------------------------------------------------------------------------------- bad input
def _one_line_error(capsys, argv: list[str], *needles: str) -> str:
    assert main(argv) == 1
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    for needle in needles:
        assert needle in err, err
    return err


@pytest.mark.parametrize("flags", [["--output-op", "none"], ["--uint8-input"], ["--input-shape", "1", "3", "64", "64"],
                                   ["--quantize", "int8", "--calib-data", "x"]],
                         ids=["output-op", "uint8-input", "input-shape", "quantize"])
def test_semantic_flags_with_a_click_model_are_one_error(click_export, flags, tmp_path: Path, capsys) -> None:
    weights, _, _ = click_export
    out = tmp_path / "e"
    _one_line_error(capsys, ["export", "--model", str(weights), "--out", str(out), *flags],
                    flags[0], "click model")
    assert not out.exists()


def test_bad_sidecars_are_refused(click_export, tmp_path: Path) -> None:
    _, onnx_path, _ = click_export
    lone = tmp_path / "lone" / "model.onnx"
    lone.parent.mkdir()
    shutil.copy(onnx_path, lone)
    with pytest.raises(PPSegError, match="sidecar not found"):
        InteractivePredictor(lone)
    good = json.loads(onnx_path.with_suffix(".json").read_text())

    def refused(edit, *needles: str) -> None:
        d = json.loads(json.dumps(good))
        edit(d)
        lone.with_suffix(".json").write_text(json.dumps(d))
        with pytest.raises(PPSegError) as e:
            InteractivePredictor(lone)
        msg = str(e.value)
        assert "\n" not in msg and "model.json" in msg
        for needle in needles:
            assert needle in msg, msg

    refused(lambda d: d.update(format="something"), "not a ppseg click-model sidecar")
    refused(lambda d: d.update(format="ppseg-onnx"), "semantic segmentation export", "Predictor")
    refused(lambda d: d.update(format_version=9), "format_version")
    refused(lambda d: d.pop("settings"), "'settings' is missing")
    refused(lambda d: d["settings"].update(threshold=2), "threshold")
    refused(lambda d: d["settings"].update(warp=1), "unknown interactive setting")
    refused(lambda d: d.update(prev_input="depth"), "prev_input")
    refused(lambda d: d.update(click_radius=-1), "click_radius")
    refused(lambda d: d["inputs"].pop("coord_features"), "inputs")
    refused(lambda d: d.update(outputs=[{"name": "logits", "shape": [1, 1, None, None]}]), "outputs")
    refused(lambda d: d.update(onnx_sha256="0" * 64), "belongs to another model")
    # the semantic Predictor refuses a click export with a line of its own
    with pytest.raises(PPSegError, match="not a ppseg sidecar"):
        Predictor(onnx_path)


def test_semantic_weights_still_export_and_errors_stay_clear(click_export, tmp_path: Path, capsys) -> None:
    """A semantic weights file exports through -c as before; without -c it is one error line; the
    click and semantic exports refuse each other's sidecars."""
    cfg = mini_mobileseg_config()
    cfg_path = tmp_path / "cfg.yml"
    cfg_path.write_text(yaml.safe_dump(cfg))
    weights = tmp_path / "sem.pt"
    atomic_save(weights_file("pp_mobileseg_tiny", {"num_classes": 11},
                             randomize(ppseg.create_model("pp_mobileseg_tiny", num_classes=11)).state_dict()), weights)
    _one_line_error(capsys, ["export", "--model", str(weights), "--out", str(tmp_path / "x")], "-c/--config", "sem.pt")
    click_weights, click_onnx, _ = click_export
    _one_line_error(capsys, ["export", "-c", str(cfg_path), "--model", str(click_weights), "--out",
                             str(tmp_path / "x")], "click model", "cfg.yml")
    assert not (tmp_path / "x").exists()
    assert main(["export", "-c", str(cfg_path), "--model", str(weights), "--out", str(tmp_path / "sem")]) == 0
    sem = tmp_path / "sem" / "model.onnx"
    car = json.loads(sem.with_suffix(".json").read_text())
    assert car["format"] == "ppseg-onnx" and car["output"]["op"] == "argmax"  # the default output op, as before
    assert Predictor(sem).predict(np.zeros((40, 50, 3), np.uint8)).shape == (40, 50)
    with pytest.raises(PPSegError, match="semantic segmentation export"):
        InteractivePredictor(sem)
    # a click sidecar next to another model's ONNX file
    shutil.copy(click_onnx.with_suffix(".json"), sem.with_suffix(".json"))
    with pytest.raises(PPSegError, match="belongs to another model"):
        InteractivePredictor(sem)
