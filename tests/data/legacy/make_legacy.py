"""Writes tests/data/legacy/ with the code from BEFORE the task/sample redesign (commit 47e6e24).

    git worktree add /tmp/oldtree 47e6e24
    .venv/bin/python tests/data/legacy/make_legacy.py tests/data/legacy

A weights file, an ONNX export + sidecar (no transforms_version) and their predictions on one image;
tests/test_legacy_files.py checks that today's code loads them and predicts the same labels.
"""
import sys
from pathlib import Path
import numpy as np, torch
sys.path.insert(0, "/tmp/oldtree/src"); sys.path.insert(0, "/tmp/oldtree/tests")
import ppseg
assert ppseg.__file__.startswith("/tmp/oldtree"), ppseg.__file__
from ppseg.engine.checkpoint import atomic_save, weights_file
from ppseg.segmentor import Segmentor
from ppseg.export.onnx import export_onnx
from weights import randomize
import inspect
out = Path(sys.argv[1])
torch.manual_seed(0)
model = randomize(ppseg.create_model("pp_humanseg_lite_v1", num_classes=3), seed=3).eval()
seg_kwargs = {"mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5]}
atomic_save(weights_file("pp_humanseg_lite_v1", {"num_classes": 3}, model.state_dict(), ppseg_version="0.1.0",
                         config="legacy.yml", segmentor=seg_kwargs, class_names=["bg", "a", "b"], iter=2, miou=0.5),
            out / "legacy_weights.pt")
print(inspect.signature(export_onnx))
res = export_onnx(model, out / "onnx", model_name="pp_humanseg_lite_v1", model_kwargs={"num_classes": 3},
                  class_names=["bg", "a", "b"], palette=[[0, 0, 0], [255, 0, 0], [0, 255, 0]], mean=[0.5] * 3,
                  std=[0.5] * 3, output_op="argmax", resize=[{"type": "Resize", "target_size": [64, 48]}])
img = np.random.default_rng(7).integers(0, 256, (45, 70, 3), dtype=np.uint8)
seg = Segmentor(model, **seg_kwargs).eval()
from ppseg.data.transforms import Resize
s = Resize(target_size=(64, 48))({"img": img.astype(np.float32), "label": None, "trans_info": []}, np.random.default_rng(0))
x = torch.from_numpy(s["img"].transpose(2, 0, 1).copy())[None]
torch_labels = seg.predict_original(x, s["trans_info"], img.shape[:2])[0].numpy().astype(np.uint8)
from ppseg.deploy import Predictor
onnx_labels = Predictor(out / "onnx" / "model.onnx").predict(img).astype(np.uint8)
np.savez_compressed(out / "legacy_predictions.npz", image=img, torch_labels=torch_labels, onnx_labels=onnx_labels)
print(sorted(p.name for p in (out / "onnx").iterdir()), (torch_labels == onnx_labels).mean(), np.bincount(torch_labels.ravel()))
