"""Make ``matting_metrics.npz`` / ``matting_metrics.json``: the values of PaddleSeg Matting's own
metric code (``Matting/ppmatting/metrics/metric.py``: ``SAD``, ``MSE``, ``Grad``, ``Conn``) on
small alpha pairs, for ``tests/test_matting_metrics.py``.

The reference file is the same blob (``4ac237233b610dbb91af5e6f957656f62cbae7a9``) in PaddleSeg
v2.8.0, v2.9.0 and develop (2024-10); it is not part of ppseg. Put a copy outside the
repository and run this script twice, from the repository root::

    mkdir -p /tmp/ppmatting_ref
    git -C <PaddleSeg clone> show v2.8.0:Matting/ppmatting/metrics/metric.py > /tmp/ppmatting_ref/metric.py
    # 1. the reference environment (numpy 1.x, as paddle 2.6 needs): writes the npz and json
    OMP_NUM_THREADS=1 <python with numpy<2 and opencv-python-headless> \\
        tests/data/paddleseg/make_matting_metrics.py --reference /tmp/ppmatting_ref/metric.py
    # 2. numpy 2 (ppseg's venv): adds "values_numpy2" to the json (see below)
    OMP_NUM_THREADS=1 .venv/bin/python tests/data/paddleseg/make_matting_metrics.py \\
        --reference /tmp/ppmatting_ref/metric.py --numpy2

The fixture of this repository was made with numpy 1.26.4 + opencv-python-headless 4.10.0 (run 1)
and numpy 2.4.6 + opencv 5.1.0 (run 2). ``metric.py`` imports ``scipy.ndimage.filters.convolve``,
``scipy.special.gamma`` and ``skimage.measure.label`` but never uses them; where those packages
are missing they are replaced by empty stand-in modules before the import.

The reference is called exactly as PaddleSeg's ``Matting/ppmatting/core/val.py`` calls it: the
prediction ``np.round(alpha_pred * 255)`` with ``alpha_pred`` a float32 ``[1, 1, H, W]`` array in
[0, 1]; the GT ``alpha / 255. * 255`` (float64, from the uint8 alpha file); the trimap uint8
``[1, 1, H, W]`` or None; one prediction array passed to ``SAD``, ``MSE``, ``Grad``, ``Conn`` in
that order (the metrics force it to 0/255 in place where the trimap is 0/255).

* npz: ``<case>/pred`` (float32 ``[H, W]`` in [0, 1], the model output), ``<case>/gt`` (uint8
  ``[H, W]``), ``<case>/trimap`` (uint8 ``[H, W]``, only for cases with a trimap) and
  ``grad_filter_x`` (the reference's ``Grad().gauss_filter(1.4)[0]``).
* json: ``{"reference": {...}, "cases": [{"name", "shape", "trimap"}], "values": {case:
  {"trimap": {sad, mse, grad, conn}, "image": {...}}}, "summary": {"trimap": {...}, "image":
  {...}}, "values_numpy2": {...}}``. ``"image"`` is the call without a trimap (every pixel
  unknown); ``"trimap"`` the call with the case's trimap (for a case without one, the same as
  ``"image"``). ``"summary"`` is each metric class's ``evaluate()`` after all cases in order.
* ``values_numpy2``: the same calls under numpy 2. ``Grad`` and ``Conn`` end in
  ``float32_sum /= 1000``; numpy 1 promotes that to float64, numpy 2 (NEP 50) keeps float32,
  so those two differ by float32 rounding (< 1e-7 relative). The numpy 1 values are the
  reference.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import sys
import types
from pathlib import Path

import cv2
import numpy as np

HERE = Path(__file__).resolve().parent
NAMES = ("sad", "mse", "grad", "conn")
BLOB = "4ac237233b610dbb91af5e6f957656f62cbae7a9"


def git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def load_reference(path: Path) -> types.ModuleType:
    """Import PaddleSeg's ``metric.py`` from ``path``, stubbing its unused scipy/skimage imports."""
    for mod, attrs in (("scipy.ndimage.filters", ["convolve"]), ("scipy.special", ["gamma"]),
                       ("skimage.measure", ["label"])):
        try:
            importlib.import_module(mod)
        except ImportError:
            parts = mod.split(".")
            for i in range(1, len(parts) + 1):
                name = ".".join(parts[:i])
                sys.modules.setdefault(name, types.ModuleType(name))
            for a in attrs:
                setattr(sys.modules[mod], a, None)
    spec = importlib.util.spec_from_file_location("paddleseg_matting_metric", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ----------------------------------------------------------------------------- inputs


def blob_alpha(rng: np.random.Generator, h: int, w: int, n: int = 3, soft: float = 3.0) -> np.ndarray:
    """A smooth alpha in [0, 1] (a few soft-edged ellipses), float64."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    a = np.zeros((h, w))
    for _ in range(n):
        cy, cx = rng.uniform(0.2, 0.8) * h, rng.uniform(0.2, 0.8) * w
        ry, rx = rng.uniform(0.15, 0.35) * h, rng.uniform(0.15, 0.35) * w
        d = np.sqrt(((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2)
        a = np.maximum(a, np.clip((1.0 - d) * max(ry, rx) / soft + 0.5, 0.0, 1.0))
    return a


def trimap_from(gt: np.ndarray, k: int = 5) -> np.ndarray:
    """0 where the dilated alpha is 0, 255 where the eroded alpha is 255, 128 elsewhere."""
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))
    tri = np.full(gt.shape, 128, np.uint8)
    tri[cv2.erode(gt, kernel) == 255] = 255
    tri[cv2.dilate(gt, kernel) == 0] = 0
    return tri


def to_u8(a: np.ndarray) -> np.ndarray:
    return np.round(np.clip(a, 0, 1) * 255).astype(np.uint8)


def make_cases() -> list[tuple[str, np.ndarray, np.ndarray, np.ndarray | None]]:
    """``(name, pred float32 [0, 1], gt uint8, trimap uint8 or None)``; fixed seeds."""
    cases = []
    rng = np.random.default_rng(1600)

    h, w = 24, 32
    cases.append(("noise_24x32", rng.random((h, w)).astype(np.float32),
                  rng.integers(0, 256, (h, w)).astype(np.uint8), None))
    pred = rng.random((h, w)).astype(np.float32)
    gt = rng.integers(0, 256, (h, w)).astype(np.uint8)
    tri = rng.choice(np.array([0, 128, 255], np.uint8), size=(h, w), p=[0.3, 0.4, 0.3])
    cases.append(("noise_trimap_24x32", pred, gt, tri))

    for name, (h, w) in (("blob_40x48", (40, 48)), ("blob_64x80", (64, 80))):
        gt = to_u8(blob_alpha(rng, h, w))
        shifted = np.roll(gt.astype(np.float64) / 255, (1, -2), axis=(0, 1))
        pred = np.clip(shifted + rng.normal(0, 0.08, (h, w)), 0, 1).astype(np.float32)
        cases.append((name, pred, gt, trimap_from(gt)))

    h, w = 40, 48
    gt = to_u8(blob_alpha(rng, h, w, n=2))
    tri = trimap_from(gt, 7)
    cases.append(("exact_40x48", (gt.astype(np.float32) / 255).astype(np.float32), gt, tri))

    # wrong everywhere outside the unknown band: the trimap forcing decides the value
    pred = np.where(tri == 0, 1.0, np.where(tri == 255, 0.0, gt / 255.0)).astype(np.float32)
    pred = np.clip(pred + np.where(tri == 128, rng.normal(0, 0.05, (h, w)), 0.0), 0, 1).astype(np.float32)
    cases.append(("forced_40x48", pred, gt, tri))

    cases.append(("pred_zero_40x48", np.zeros((h, w), np.float32), gt, tri))
    cases.append(("gt_const_40x48", rng.random((h, w)).astype(np.float32),
                  np.full((h, w), 200, np.uint8), None))

    # two equally large components at every threshold (Conn's largest-component tie), and a
    # smaller one; soft ramps between them
    h, w = 24, 32
    gt = np.zeros((h, w), np.float64)
    gt[2:10, 2:10] = 1.0
    gt[14:22, 20:28] = 1.0
    gt[3:6, 22:25] = 0.6
    gt[12:14, 4:9] = np.linspace(0.1, 0.9, 5)
    gt_u8 = to_u8(gt)
    pred = gt_u8.astype(np.float64) / 255
    pred[2:10, 2:10] = 0.85
    pred[5, 10:20] = 0.55
    cases.append(("tie_components_24x32", pred.astype(np.float32), gt_u8, None))

    # no unknown pixel (MSE's 0/0 guard); 16 x 16
    gt = to_u8(blob_alpha(rng, 16, 16, n=1, soft=0.2))
    tri = np.where(gt >= 128, 255, 0).astype(np.uint8)
    cases.append(("no_unknown_16x16", rng.random((16, 16)).astype(np.float32), gt, tri))
    return cases


# ----------------------------------------------------------------------------- reference calls


def run_reference(ref: types.ModuleType, cases) -> tuple[dict, dict]:
    values: dict[str, dict] = {}
    summary = {}
    for mode in ("trimap", "image"):
        metrics = {"sad": ref.SAD(), "mse": ref.MSE(), "grad": ref.Grad(), "conn": ref.Conn()}
        for name, pred, gt, tri in cases:
            # as Matting/ppmatting/core/val.py: float32 model output, float64 GT, uint8 trimap
            alpha_pred = pred[np.newaxis, np.newaxis].astype(np.float32)
            alpha_gt = (gt[np.newaxis, np.newaxis] / 255.0) * 255
            trimap = tri[np.newaxis, np.newaxis].astype("uint8") if (mode == "trimap" and tri is not None) else None
            alpha_pred = np.round(alpha_pred * 255)
            row = {}
            for key in NAMES:
                row[key] = float(metrics[key].update(alpha_pred, alpha_gt, trimap))
            values.setdefault(name, {})[mode] = row
        summary[mode] = {key: float(m.evaluate()) for key, m in metrics.items()}
    return values, summary


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reference", type=Path, required=True,
                    help="a copy of PaddleSeg's Matting/ppmatting/metrics/metric.py (outside the repository)")
    ap.add_argument("--numpy2", action="store_true",
                    help="add the numpy 2 values to the existing json instead of writing the fixture")
    args = ap.parse_args()
    data = args.reference.read_bytes()
    blob = git_blob_sha1(data)
    if blob != BLOB:
        sys.exit(f"{args.reference}: git blob {blob}, expected {BLOB} (PaddleSeg v2.8.0 metric.py)")
    ref = load_reference(args.reference)
    cases = make_cases()
    values, summary = run_reference(ref, cases)
    major = int(np.__version__.split(".")[0])
    json_path = HERE / "matting_metrics.json"
    if args.numpy2:
        if major < 2:
            sys.exit("--numpy2 needs numpy 2")
        meta = json.loads(json_path.read_text())
        meta["values_numpy2"] = values
        meta["reference"]["numpy2_env"] = {"numpy": np.__version__, "opencv": cv2.__version__}
    else:
        if major >= 2:
            sys.exit("the reference run needs numpy 1.x (the paddle 2.6 environment); see the docstring")
        arrays = {"grad_filter_x": ref.Grad().gauss_filter(1.4)[0]}
        for name, pred, gt, tri in cases:
            arrays[f"{name}/pred"] = pred
            arrays[f"{name}/gt"] = gt
            if tri is not None:
                arrays[f"{name}/trimap"] = tri
        np.savez_compressed(HERE / "matting_metrics.npz", **arrays)
        meta = {
            "reference": {"file": "Matting/ppmatting/metrics/metric.py", "git_blob": blob,
                          "paddleseg": "v2.8.0 (same blob in v2.9.0 and develop 2024-10)",
                          "numpy": np.__version__, "opencv": cv2.__version__},
            "cases": [{"name": n, "shape": list(g.shape), "trimap": t is not None} for n, _, g, t in cases],
            "values": values,
            "summary": summary,
        }
    json_path.write_text(json.dumps(meta, indent=1) + "\n")
    print(f"wrote {json_path.name}" + ("" if args.numpy2 else " and matting_metrics.npz"))


if __name__ == "__main__":
    main()
