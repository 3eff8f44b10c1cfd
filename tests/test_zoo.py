"""The model zoo: shipped click model, its card, zoo:NAME wherever a weights file goes, and that the
shipped model really segments (an easy object in a few clicks; GrabCut needs more on the same clicks)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from ppseg.cli import main
from ppseg.errors import PPSegError
from ppseg.interactive import DEFAULT_MODEL, load_click_predictor
from ppseg.zoo import ZOO_DIR, get_entry, zoo_entries


def test_the_click_model_ships_with_its_card():
    entries = {e.name: e for e in zoo_entries()}
    assert "click_mnv3_lite" in entries and DEFAULT_MODEL == "zoo:click_mnv3_lite"
    e = entries["click_mnv3_lite"]
    assert e.task == "interactive" and e.model == "click_mobilenetv3_lite"
    assert 1.0 < e.size_mb < 10.0  # fp16, a few MB
    for key in ("data", "recipe", "command", "noc", "latency_ms", "weights_sha256"):
        assert e.card.get(key), key
    import hashlib

    assert hashlib.sha256(e.weights.read_bytes()).hexdigest() == e.card["weights_sha256"]
    for card in ZOO_DIR.glob("*.json"):  # every card is valid JSON naming an existing weights file
        assert (ZOO_DIR / json.loads(card.read_text())["weights"]).is_file()


def test_zoo_errors_name_the_known_models():
    with pytest.raises(PPSegError, match="zoo:click_mnv3_lite"):
        get_entry("zoo:nope")
    with pytest.raises(PPSegError, match="is a interactive model|not a semantic model"):
        get_entry("zoo:click_mnv3_lite", task="semantic")


def test_zoo_cli(capsys):
    assert main(["zoo", "list"]) == 0
    out = capsys.readouterr().out
    assert "zoo:click_mnv3_lite" in out and "interactive" in out
    assert main(["zoo", "show", "click_mnv3_lite"]) == 0
    assert json.loads(capsys.readouterr().out)["model"] == "click_mobilenetv3_lite"


def _disk_scene(h: int = 240, w: int = 320, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A textured background with a differently coloured, textured ellipse (the object)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    gt = ((yy - 120) / 70.0) ** 2 + ((xx - 170) / 90.0) ** 2 <= 1
    img = np.empty((h, w, 3), np.float32)
    img[:] = (60, 110, 70)
    img[gt] = (200, 80, 60)
    img += rng.normal(0, 18, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8), gt


def test_the_shipped_model_segments_an_easy_object():
    from ppseg.interactive.clicker import iou, next_click
    from ppseg.interactive.grabcut import GrabCutPredictor

    image, gt = _disk_scene()
    ious = {}
    for name, predictor in (("zoo", load_click_predictor()), ("grabcut", GrabCutPredictor())):
        s = predictor.session(image)
        pred = np.zeros_like(gt)
        for _ in range(3):
            c = next_click(gt, pred)
            pred = s.click(c.y, c.x, c.positive) > 0.49
        ious[name] = iou(gt, pred)
    assert ious["zoo"] >= 0.85, ious


def test_zoo_weights_go_wherever_a_weights_file_goes(tmp_path: Path):
    out = tmp_path / "exp"
    assert main(["export", "--model", "zoo:click_mnv3_lite", "--out", str(out)]) == 0
    sidecar = json.loads((out / "model.json").read_text())
    assert sidecar["task"] == "interactive" and sidecar["prev_input"] == "mask"
    from ppseg.deploy import InteractivePredictor

    image, gt = _disk_scene()
    a = InteractivePredictor(out / "model.onnx", threads=1).session(image)
    b = load_click_predictor("zoo:click_mnv3_lite").session(image)
    for y, x, pos in ((120, 170, True), (120, 60, False)):
        pa, pb = a.click(y, x, pos), b.click(y, x, pos)
        assert np.abs(pa - pb).max() < 1e-3
        assert ((pa > 0.5) == (pb > 0.5)).mean() > 0.999


@pytest.mark.parametrize("entry", [e for e in zoo_entries() if e.card.get("onnx")], ids=lambda e: e.name)
def test_shipped_onnx_graphs_match_their_cards_and_their_weights(entry):
    """The ONNX graph a zoo card ships (float16 storage, float32 compute) is the one the card hashes,
    reads with its sidecar, and clicks like the torch weights (what ``ppseg annotate`` runs without torch)."""
    import hashlib

    assert entry.onnx is not None and entry.onnx.parent == ZOO_DIR / "onnx"
    assert hashlib.sha256(entry.onnx.read_bytes()).hexdigest() == entry.card["onnx_sha256"]
    onnx_pred = load_click_predictor(f"zoo:{entry.name}", prefer_onnx=True, threads=1)
    torch_pred = load_click_predictor(f"zoo:{entry.name}")
    assert type(onnx_pred).__name__ == "InteractivePredictor" and type(torch_pred).__name__ != "InteractivePredictor"
    assert onnx_pred.settings == torch_pred.settings
    image, gt = _disk_scene()
    a, b = onnx_pred.session(image), torch_pred.session(image)
    for y, x, pos in ((120, 170, True), (120, 60, False)):
        pa, pb = a.click(y, x, pos), b.click(y, x, pos)
        assert np.abs(pa - pb).max() < 5e-3  # the weights' float16 rounding after BatchNorm folding
        assert ((pa > 0.5) == (pb > 0.5)).mean() > 0.998
