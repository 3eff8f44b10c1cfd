"""The interactive engine: click encoding, ZoomIn / LimitLongestSide, sessions (undo/redo, priors,
bad clicks), the normalized focal loss, click simulation and training through the shared trainer,
loading click models (weights, zoo) and refusing other models.

Everything runs on small data made here (no ../shared); export to ONNX and the torch-free predictor
are in test_interactive_export.py, the NoC benchmark in test_click_eval.py.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import ppseg
from helpers.data import make_synthetic_dataset, ppseg_cmd, write_config
from ppseg.errors import ConfigError, PPSegError
from ppseg.interactive import Click, ClickPredictor, InteractiveSettings, load_click_predictor
from ppseg.interactive.clicks import click_maps, resize_align_corners, sigmoid
from ppseg.interactive.predictor import ClickSegmentor, TorchClickBackend
from ppseg.interactive.task import error_click, first_clicks
from ppseg.interactive.zoom import LimitLongestSide, ZoomIn, box_iou, object_roi
from ppseg.losses import NormalizedFocalLoss
from ppseg.weights import atomic_save, weights_file

# ------------------------------------------------------------------ encoding


def test_click_maps_are_disks_of_radius_5():
    clicks = [Click(10, 12, True), Click(30.4, 5.6, False), Click(0, 0, True)]
    maps = click_maps(clicks, 40, 50, radius=5)
    rows, cols = np.mgrid[0:40, 0:50]
    for ch, sign in ((0, True), (1, False)):
        want = np.zeros((40, 50), bool)
        for c in clicks:
            if c.positive == sign:
                want |= (rows - c.y) ** 2 + (cols - c.x) ** 2 <= 25
        assert np.array_equal(maps[ch] > 0, want)
    assert maps[0].sum() == 81 + 26  # a full disk of radius 5 has 81 pixels; a quarter one at (0, 0) 26
    assert click_maps([], 4, 4).sum() == 0


@pytest.mark.parametrize("src,dst", [((7, 9), (20, 31)), ((40, 33), (11, 5)), ((1, 6), (3, 6)), ((5, 5), (5, 5))])
def test_resize_align_corners_equals_torch(src, dst):
    x = np.random.default_rng(0).standard_normal((2, *src)).astype(np.float32)
    ref = F.interpolate(torch.from_numpy(x)[None], size=dst, mode="bilinear", align_corners=True)[0].numpy()
    assert np.abs(resize_align_corners(x, dst) - ref).max() < 1e-5


def test_sigmoid_matches_torch():
    x = np.linspace(-30, 30, 101, dtype=np.float32)
    assert np.abs(sigmoid(x) - torch.sigmoid(torch.from_numpy(x)).numpy()).max() < 1e-6


# ------------------------------------------------------------------ zoom


def test_object_roi_expands_and_keeps_min_size():
    mask = np.zeros((1000, 800), bool)
    mask[100:200, 300:340] = True  # 100 x 40
    assert object_roi(mask, [], 1.4, 0) == (80, 220, 292, 348)
    # at least 480 a side (EISeg), clamped to the image
    assert object_roi(mask, [], 1.4, 480) == (0, 390, 80, 560)
    # a positive click outside the mask widens the box
    assert object_roi(mask, [Click(600, 320, True)], 1.0, 0)[1] == 600
    assert object_roi(mask, [Click(600, 320, False)], 1.0, 0)[1] == 200  # round(199.5): half to even, as the reference


def test_zoom_in_window_is_kept_then_moved():
    z = ZoomIn(target_size=(50, 50), min_crop_size=0)
    hw = (200, 300)
    assert z.choose(None, [Click(10, 10)], hw) == (0, 199, 0, 299)  # first click: the whole image
    prob = np.zeros(hw, np.float32)
    prob[50:100, 50:100] = 1
    roi = z.choose(prob, [Click(60, 60)], hw)
    assert roi == (40, 110, 40, 110)  # the 50 x 50 box x 1.4 around its centre 74.5
    prob2 = prob.copy()
    prob2[95:101, 50:100] = 1  # a little larger: IoU with the window still >= 0.5 -> kept
    assert z.choose(prob2, [Click(60, 60)], hw) == roi
    assert z.choose(prob2, [Click(60, 60), Click(190, 290, False)], hw) != roi  # a click outside moves it
    crop, moved = z.forward(np.ones((1, *hw), np.float32), [Click(30, 30), Click(120, 120)], (30, 120, 30, 120))
    assert crop.shape == (1, 50, 50)
    assert moved[0] == Click(0.0, 0.0) and abs(moved[1].y - 50 * 90 / 91) < 1e-9
    back = ZoomIn.inverse(np.ones((1, 50, 50), np.float32), (30, 120, 30, 120), hw)
    assert back[0, 30:121, 30:121].min() == 1 and back.sum() == 91 * 91  # zeros outside the window
    assert box_iou((0, 9, 0, 9), (5, 14, 0, 9)) == pytest.approx(50 / 150)


def test_limit_longest_side():
    lim = LimitLongestSide(800)
    assert lim.size((600, 400)) == (600, 400)
    assert lim.size((1000, 2000)) == (400, 800)
    maps, clicks = lim.forward(np.zeros((4, 1000, 2000), np.float32), [Click(500, 1000)])
    assert maps.shape == (4, 400, 800) and clicks[0] == Click(200.0, 400.0)


# ------------------------------------------------------------------ sessions on a scripted backend


class DiskBackend:
    """Logits +8 within ``reach`` px (a square) of a positive click, unless within 10 px of a negative one;
    it records its inputs."""

    prev_input = "mask"
    radius = 5

    def __init__(self, reach: int = 25) -> None:
        self.calls: list[tuple[np.ndarray, np.ndarray]] = []
        self.reach = reach

    def infer(self, image, coord):
        self.calls.append((image, coord))
        pos = coord[1] > 0
        neg = coord[2] > 0
        near = lambda m, r: F.max_pool2d(torch.from_numpy(m.astype(np.float32))[None, None], 2 * r + 1, 1, r)[0, 0].numpy() > 0  # noqa: E731
        logits = np.where(near(pos, self.reach) & ~near(neg, 10), 8.0, -8.0).astype(np.float32)
        return logits, None


def _image(h=120, w=160):
    return np.random.default_rng(0).integers(0, 255, (h, w, 3), dtype=np.uint8)


def test_session_click_undo_redo_reset():
    be = DiskBackend()
    s = ClickPredictor(be, InteractiveSettings(zoom_in=False)).session(_image())
    assert s.prob is None and not s.mask.any() and not s.can_undo
    p1 = s.click(60, 80)
    assert p1.shape == (120, 160) and s.mask[60, 80] and not s.mask[5, 5]
    coord = be.calls[-1][1]
    assert coord.shape == (3, 120, 160) and coord[0].max() == 0 and coord[1, 60, 80] == 1  # no previous mask yet
    s.click(60, 95, positive=False)
    assert not s.mask[60, 95] and s.mask[60, 70]
    assert np.allclose(be.calls[-1][1][0], p1)  # the previous probabilities are fed back
    assert [c.positive for c in s.clicks] == [True, False]
    assert s.undo() and s.clicks == [Click(60.0, 80.0, True)] and np.array_equal(s.prob, p1)
    assert s.redo() and len(s.clicks) == 2 and not s.redo()
    s.reset()
    assert s.clicks == [] and s.prob is None
    assert s.undo() and len(s.clicks) == 2  # reset is undoable
    s.undo(); s.undo()
    assert not s.undo() and s.clicks == []


@pytest.mark.parametrize("y,x", [(-1, 5), (120, 5), (5, 160), (float("nan"), 3), (3, float("inf")), ("3", 4), (True, 2)])
def test_click_outside_the_image_is_refused(y, x):
    s = ClickPredictor(DiskBackend()).session(_image())
    with pytest.raises(ConfigError, match="outside the image"):
        s.click(y, x)
    assert s.clicks == [] and not s.can_undo


def test_session_zoom_in_crops_around_the_object_and_pastes_back():
    be = DiskBackend(reach=6)
    s = ClickPredictor(be, InteractiveSettings(target_size=(64, 64), min_crop_size=0)).session(_image(300, 400))
    s.click(150, 200)
    assert be.calls[-1][0].shape == (3, 64, 64)  # the whole image squeezed to 64 x 64 (skip_clicks -1)
    s.click(150, 215)
    img, coord = be.calls[-1]
    assert img.shape == (3, 64, 64) and coord[1].sum() > 0  # now a window around the object
    r0, r1, c0, c1 = s.zoom.roi
    assert (r0, r1, c0, c1) != (0, 299, 0, 399) and s.prob.shape == (300, 400) and s.mask[150, 210]
    outside = np.ones((300, 400), bool)
    outside[r0:r1 + 1, c0:c1 + 1] = False
    assert outside.any() and s.prob[outside].max() == 0  # pasted into zeros outside the window
    s.undo()
    assert s.zoom is not None and len(s.clicks) == 1


def test_prior_mask_and_bad_images():
    s = ClickPredictor(DiskBackend(), InteractiveSettings(zoom_in=False)).session(_image())
    prior = np.zeros((120, 160), bool)
    prior[10:20, 10:20] = True
    s.set_prior(prior)
    assert s.mask.sum() == 100 and s.can_undo
    with pytest.raises(ConfigError, match="does not match"):
        s.set_prior(np.zeros((5, 5), bool))
    # an anchor: a positive click the model sees with the next click, not run now (the mask stays the prior)
    be = DiskBackend()
    a = ClickPredictor(be, InteractiveSettings(zoom_in=False)).session(_image())
    a.set_prior(prior, anchor=Click(15, 15, True))
    assert a.mask.sum() == 100 and not be.calls and a.clicks == [Click(15, 15, True)]
    a.click(60, 100, positive=False)
    coord = be.calls[-1][1]
    assert coord[1][15, 15] == 1 and coord[2][60, 100] == 1 and coord[0][15, 15] == 1  # anchor, click, prior
    a.undo()
    assert a.mask.sum() == 100 and a.clicks == [Click(15, 15, True)]
    with pytest.raises(ConfigError, match="anchor"):
        a.set_prior(prior, anchor=Click(15, 15, False))
    with pytest.raises(ConfigError, match="RGB"):
        ClickPredictor(DiskBackend()).session(np.zeros((10, 10, 4), np.uint8))
    with pytest.raises(ConfigError, match="threshold"):
        InteractiveSettings.from_dict({"threshold": 1.5})
    with pytest.raises(ConfigError, match="unknown"):
        InteractiveSettings.from_dict({"zoom": True})


# ------------------------------------------------------------------ loss and click simulation


def test_normalized_focal_loss_by_hand():
    logits = torch.tensor([[[[2.0, -1.0], [0.5, 3.0]]]])
    label = torch.tensor([[[1, 0], [255, 0]]])
    p = torch.sigmoid(logits)[0, 0]
    pt = torch.stack([p[0, 0], 1 - p[0, 1], 1 - p[1, 1]])
    beta = (1 - pt) ** 2
    beta = beta * 3 / beta.sum()
    want = (-0.5 * beta * torch.log(pt)).sum() / 3
    got = NormalizedFocalLoss()(logits, label)
    assert torch.allclose(got, want, atol=1e-6)
    assert NormalizedFocalLoss()(torch.zeros(1, 1, 2, 2, requires_grad=True), torch.full((1, 2, 2), 255)).item() == 0


def test_simulated_clicks_fall_where_they_should():
    gt = np.zeros((64, 64), bool)
    gt[10:40, 10:40] = True
    valid = np.ones_like(gt)
    rng = np.random.default_rng(0)
    for _ in range(20):
        clicks = first_clicks(gt, valid, rng)
        assert clicks and clicks[0].positive
        assert all(gt[int(c.y), int(c.x)] == c.positive for c in clicks)
    pred = np.zeros_like(gt)
    pred[10:40, 10:25] = True  # half the object missing -> a positive click in the missing half
    c = error_click(gt, valid, pred, rng)
    assert c.positive and 25 <= c.x < 40
    pred = gt.copy()
    pred[45:60, 45:60] = True  # a false positive blob -> negative click inside it
    c = error_click(gt, valid, pred, rng)
    assert not c.positive and 45 <= c.y < 60
    assert error_click(gt, valid, gt, rng) is None


# ------------------------------------------------------------------ training and loading


def _click_config(data: Path, run: Path, model: str = "click_mobilenetv3_lite", **over) -> dict:
    src = {"dataset_root": str(data), "split": "components", "min_area": 20}
    cfg = {
        "task": "interactive", "batch_size": 2, "iters": 4, "seed": 1,
        "model": {"type": model},
        "train_dataset": {"type": "ClickObjects", "crop_size": [64, 64],
                          "sources": [{**src, "file_list": "train.txt"}],
                          "transforms": [{"type": "RandomHorizontalFlip"}]},
        "val_dataset": {"type": "ClickObjects", "max_objects": 2, "sources": [{**src, "file_list": "val.txt"}]},
        "interactive": {"max_clicks": 3, "settings": {"target_size": [64, 64], "min_crop_size": 0},
                        "simulation": {"max_iters": 2, "iter_prob": 1.0}},
        "loss": {"types": [{"type": "NormalizedFocalLoss"}], "coef": [1.0, 0.4, 0.4, 0.4]},
        "optimizer": {"type": "AdamW"},
        "lr_scheduler": {"type": "PolynomialDecay", "learning_rate": 0.001},
        "train": {"log_iters": 1, "eval_interval": 4, "save_interval": 2, "num_workers": 0, "save_dir": str(run),
                  "tensorboard": False, "threads": 1},
    }
    cfg.update(over)
    return cfg


@pytest.mark.slow
def test_train_click_model_by_simulation_then_evaluate_and_load(tmp_path):
    data = make_synthetic_dataset(tmp_path / "data", n_train=6, n_val=2)
    run = tmp_path / "run"
    cfg = write_config(tmp_path / "click.yml", _click_config(data, run))
    res = subprocess.run(ppseg_cmd("train", "-c", str(cfg)), capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "NoC@90=" in res.stdout and "clicks=" in res.stdout
    history = json.loads((run / "history.json").read_text())
    assert len(history["noc90"]) == 1 and 1 <= history["noc90"][0] <= 3
    ckpt = torch.load(run / "best_model.pt", weights_only=True)
    assert ckpt["meta"]["task"] == "interactive" and ckpt["meta"]["interactive"]["settings"]["target_size"] == [64, 64]
    # the weights file is a click predictor; a session runs on it
    pred = load_click_predictor(run / "best_model.pt")
    s = pred.session(_image(70, 90))
    assert s.click(30, 40).shape == (70, 90) and s.settings.target_size == (64, 64)
    # resuming a click run continues the same run
    cfg2 = write_config(tmp_path / "click2.yml", _click_config(data, run, iters=6))
    res = subprocess.run(ppseg_cmd("train", "-c", str(cfg2), "--resume"), capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]


def test_edgeflow_trains_with_the_edge_loss(tmp_path):
    """One simulated step of EdgeFlow: the previous *edge* map is fed back, three losses (fine, aux, edge)."""
    from ppseg.config import Config
    from ppseg.engine.task import step_generator
    from ppseg.interactive.task import InteractiveTask

    data = make_synthetic_dataset(tmp_path / "data", n_train=2, n_val=1)
    raw = _click_config(data, tmp_path / "run", model="edgeflow_hrnet18_ocr64")
    raw["loss"] = {"types": [{"type": "NormalizedFocalLoss"}, {"type": "NormalizedFocalLoss"},
                             {"type": "BoundaryBCELoss"}], "coef": [1.0, 0.4, 1.0]}
    cfg = Config(raw, str(tmp_path / "c.yml"), {})
    train = InteractiveTask.build_dataset(cfg, "train_dataset", "train")
    task = InteractiveTask.from_config(cfg, train, None)
    torch.manual_seed(0)
    wrapper = task.wrap(ppseg.create_model("edgeflow_hrnet18_ocr64")).train()
    batch = task.collate([train[(0, 1)], train[(1, 2)]])
    res = task.train_step(wrapper, wrapper, batch, device=torch.device("cpu"), channels_last=False,
                          autocast=torch.autocast("cpu", enabled=False), rng=step_generator([1, 2]))
    res.loss.backward()
    assert set(res.terms) >= {"out0.NormalizedFocalLoss", "out1.NormalizedFocalLoss", "out2.BoundaryBCELoss", "clicks"}
    assert wrapper.model.finenet is not None and wrapper.training


def test_load_click_predictor_refuses_other_models(tmp_path):
    model = ppseg.create_model("lraspp_mobilenetv3_large", num_classes=3)
    path = tmp_path / "semantic.pt"
    atomic_save(weights_file("lraspp_mobilenetv3_large", {"num_classes": 3}, model.state_dict(), task="semantic"), path)
    with pytest.raises(PPSegError, match="not a click model"):
        load_click_predictor(path)
    with pytest.raises(PPSegError, match="unknown zoo model 'zoo:nope'"):
        load_click_predictor("zoo:nope")
    with pytest.raises(PPSegError, match="not found"):
        load_click_predictor(tmp_path / "missing.pt")


def test_torch_backend_session_on_a_click_model():
    torch.manual_seed(0)
    wrapper = ClickSegmentor(ppseg.create_model("click_mobilenetv3_lite"))
    pred = ClickPredictor(TorchClickBackend(wrapper), InteractiveSettings(target_size=(96, 96)))
    s = pred.session(_image(100, 140))
    for y, x, pos in ((50, 70, True), (20, 20, False), (80, 100, True)):
        p = s.click(y, x, pos)
        assert p.shape == (100, 140) and np.isfinite(p).all() and 0 <= p.min() and p.max() <= 1
    assert s.last_infer_s > 0 and len(s.clicks) == 3
