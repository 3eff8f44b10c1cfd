"""Files written before the task/sample redesign still load and predict the same labels.

``tests/data/legacy`` was written by the code of commit 47e6e24 (``make_legacy.py`` there): a
weights file without ``task``/``transforms`` metadata, an ONNX export whose sidecar has no
``transforms_version``, and the labels both gave on one image.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

import ppseg
from ppseg.data import transforms as T
from ppseg.data.sample import Sample
from ppseg.deploy import Predictor

LEGACY = Path(__file__).parent / "data" / "legacy"


def test_old_weights_file_loads_and_predicts_the_same_labels():
    ref = np.load(LEGACY / "legacy_predictions.npz")
    seg = ppseg.load_segmentor(LEGACY / "legacy_weights.pt")
    assert seg.num_classes == 3
    s = T.Resize(target_size=(64, 48))(Sample(ref["image"].astype(np.float32)), np.random.default_rng(0))
    x = torch.from_numpy(s.image.transpose(2, 0, 1).copy())[None]
    labels = seg.predict_original(x, s.ops, ref["image"].shape[:2])[0].numpy()
    assert np.array_equal(labels, ref["torch_labels"])


def test_old_export_and_sidecar_load_and_predict_the_same_labels():
    ref = np.load(LEGACY / "legacy_predictions.npz")
    p = Predictor(LEGACY / "onnx" / "model.onnx")
    assert p.sidecar.transforms_version == 1 and p.sidecar.resize == [{"type": "Resize", "target_size": [64, 48]}]
    assert np.array_equal(p.predict(ref["image"]), ref["onnx_labels"])
