"""ppseg's matting metrics (SAD, MSE, Grad, Conn) against PaddleSeg Matting's own metric code.

The fixture ``tests/data/paddleseg/matting_metrics.npz`` (+ ``.json``) is committed; it was made
by ``tests/data/paddleseg/make_matting_metrics.py`` (its docstring has the commands), which
ran PaddleSeg's ``Matting/ppmatting/metrics/metric.py`` as ``core/val.py`` calls it. This file
needs numpy and OpenCV only, and nothing here is skipped.

* Hand-computed tiny cases for each metric.
* Every fixture case, with its trimap and on the whole image, from float (model output) and
  from uint8 inputs, to 1e-9 relative (in practice bit-identical); the accumulated means.
* The trimap rule: the prediction is forced to 0/255 where the trimap is 0/255.
* Input errors name the argument.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from ppseg.errors import ConfigError
from ppseg.matting import metrics as M
from ppseg.matting.metrics import MattingMetrics, conn, grad, mse, sad

DATA = Path(__file__).resolve().parent / "data" / "paddleseg"
NPZ = np.load(DATA / "matting_metrics.npz")
META = json.loads((DATA / "matting_metrics.json").read_text())
CASES = [c["name"] for c in META["cases"]]
FUNCS = {"sad": sad, "mse": mse, "grad": grad, "conn": conn}
TOL = 1e-9  # relative; the values agree bit for bit, this only allows a float64 ulp or two
F32 = 1e-6  # relative, for hand values that go through float32 (51/255 is not exact in float32)


def case_arrays(name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    tri = NPZ[f"{name}/trimap"] if f"{name}/trimap" in NPZ else None
    return NPZ[f"{name}/pred"], NPZ[f"{name}/gt"], tri


def close(value: float, ref: float, rel: float) -> bool:
    return value == ref or abs(value - ref) <= rel * abs(ref)


# ----------------------------------------------------------------------------- hand-computed cases


def test_sad_mse_hand_4x4() -> None:
    gt = np.zeros((4, 4), np.uint8)
    pred = np.zeros((4, 4), np.uint8)
    pred[0, 0] = 255  # |diff| 1
    pred[1, 1] = 51  # |diff| 0.2
    assert close(sad(pred, gt), 1.2 / 1000, F32)
    assert close(mse(pred, gt), (1 + 0.04) / 16, F32)
    # trimap 0 at (0, 0): forced to 0 there and not counted -> 15 unknown pixels
    tri = np.full((4, 4), 128, np.uint8)
    tri[0, 0] = 0
    assert close(sad(pred, gt, tri), 0.2 / 1000, F32)
    assert close(mse(pred, gt, tri), 0.04 / 15, F32)
    # float inputs in [0, 1] give the same values (pred rounded to 0-255)
    assert sad(pred / 255.0, gt / 255.0) == sad(pred, gt)
    assert mse(pred.astype(np.float32) / 255, gt.astype(np.float64) / 255, tri) == mse(pred, gt, tri)
    # no unknown pixel: MSE is 0 (PaddleSeg's guard), SAD 0
    tri_known = np.where(gt > 127, 255, 0).astype(np.uint8)
    assert mse(pred, gt, tri_known) == 0.0 and sad(pred, gt, tri_known) == 0.0


def test_grad_filters() -> None:
    kx, ky = M.gaussian_derivative_filters(1.4)
    # half = ceil(1.4 sqrt(-2 ln(sqrt(2 pi) 1.4 0.01))) = ceil(3.62) = 4 -> 9 x 9
    assert kx.shape == (9, 9) and np.array_equal(ky, kx.T)
    assert math.isclose(float(np.sqrt((kx**2).sum())), 1.0, rel_tol=1e-15)
    assert np.all(kx[:, 5:] < 0) and np.all(kx[:, :4] > 0) and np.all(kx[:, 4] == 0)  # g'(x) = -x g / s^2
    assert np.allclose(kx, -kx[:, ::-1], rtol=0, atol=1e-17) and np.allclose(kx, kx[::-1, :], rtol=0, atol=1e-17)
    # PaddleSeg's kernel (numpy 1.26 in the fixture run: its exp differs from numpy 2's by an ulp)
    assert np.allclose(kx, NPZ["grad_filter_x"], rtol=0, atol=1e-15)


def naive_grad_magnitude(img: np.ndarray, kx: np.ndarray) -> np.ndarray:
    """Correlation with replicated borders, written out."""
    h = kx.shape[0] // 2
    pad = np.pad(img, h, mode="edge")
    gx = np.zeros_like(img)
    gy = np.zeros_like(img)
    for i in range(img.shape[0]):
        for j in range(img.shape[1]):
            win = pad[i:i + 2 * h + 1, j:j + 2 * h + 1]
            gx[i, j] = (win * kx).sum()
            gy[i, j] = (win * kx.T).sum()
    return np.sqrt(gx**2 + gy**2)


def test_grad_hand() -> None:
    gt = np.zeros((8, 10), np.uint8)
    gt[:, 5:] = 255  # vertical step edge
    assert grad(gt, gt) == 0.0
    # a constant prediction min-max normalises to 0: Grad = sum |grad gt|^2 / 1000
    flat = np.full_like(gt, 90)
    kx, _ = M.gaussian_derivative_filters()
    mag = naive_grad_magnitude(gt / 255.0, kx)
    assert close(grad(flat, gt), float((mag**2).sum()) / 1000, F32)
    assert grad(flat, gt) == grad(np.zeros_like(gt), gt)  # any constant is the same
    # transposing both images transposes the kernels' roles: same Grad
    assert close(grad(flat.T.copy(), gt.T.copy()), grad(flat, gt), F32)
    # a random pair against the written-out correlation (and min-max normalisation)
    rng = np.random.default_rng(7)
    pred = rng.integers(0, 256, (7, 9)).astype(np.uint8)
    gt2 = rng.integers(10, 200, (7, 9)).astype(np.uint8)
    norm = lambda a: (a - a.min()) / (a.max() - a.min())  # noqa: E731
    ref = ((naive_grad_magnitude(norm(gt2.astype(np.float64)), kx)
            - naive_grad_magnitude(norm(pred.astype(np.float64)), kx)) ** 2).sum() / 1000
    assert close(grad(pred, gt2), float(ref), F32)
    tri = np.full((7, 9), 128, np.uint8)
    tri[:, :3] = 0
    assert grad(pred, gt2, tri) != grad(pred, gt2)


def test_conn_hand() -> None:
    # gt 1 everywhere; pred 1 except the centre: the ring of 8 is the largest component at every
    # threshold (level 1), the centre drops out at 0.1 (level 0): phi_gt = 1 - 1 = 0, phi_pred = 1
    gt = np.full((3, 3), 255, np.uint8)
    pred = gt.copy()
    pred[1, 1] = 0
    assert conn(pred, gt) == 1 / 1000
    assert conn(gt, gt) == 0.0
    # one row: gt 1; pred [1, 1, 1, 0, 0.4, 0.4]. The left run is the largest component; the
    # right run (not largest) drops out at 0.1 -> level 0, like the gap. phi_gt = [1, 1, 1, 0, 0, 0],
    # phi_pred = [1, 1, 1, 1, 0.6, 0.6] -> Conn = (1 + 0.6 + 0.6) / 1000
    gt = np.full((1, 6), 255, np.uint8)
    pred = np.array([[255, 255, 255, 0, 102, 102]], np.uint8)
    assert close(conn(pred, gt), 2.2 / 1000, F32)
    # differences below 0.15 do not count: gt 0.1 (26/255) everywhere, pred 0 -> levels 0, d < 0.15
    assert conn(np.zeros((2, 3), np.uint8), np.full((2, 3), 26, np.uint8)) == 0.0
    # the trimap restricts the sum: only the centre pixel above is unknown
    tri = np.full((1, 6), 255, np.uint8)
    tri[0, 3] = 128
    assert conn(pred, gt, tri) == 1 / 1000


# ----------------------------------------------------------------------------- PaddleSeg's values


@pytest.mark.parametrize("name", CASES)
@pytest.mark.parametrize("mode", ["trimap", "image"])
def test_against_paddleseg(name: str, mode: str) -> None:
    pred, gt, tri = case_arrays(name)
    tri_in = tri if mode == "trimap" else None
    ref = META["values"][name][mode]
    pred_u8 = np.round(pred * np.float32(255)).astype(np.uint8)
    for key, fn in FUNCS.items():
        from_float = fn(pred, gt / 255.0, tri_in)  # as PaddleSeg's val.py: model output, alpha / 255.
        from_u8 = fn(pred_u8, gt, tri_in)
        assert close(from_float, ref[key], TOL), (key, from_float, ref[key])
        assert close(from_u8, ref[key], TOL), (key, from_u8, ref[key])
        # PaddleSeg under numpy 2 rounds Grad's and Conn's final division to float32
        assert close(from_float, META["values_numpy2"][name][mode][key], 1.2e-7)
    assert np.array_equal(pred, NPZ[f"{name}/pred"]) and np.array_equal(gt, NPZ[f"{name}/gt"])  # not mutated


@pytest.mark.parametrize("region", ["trimap", "image"])
def test_matting_metrics_summary(region: str) -> None:
    acc = MattingMetrics(region)
    for name in CASES:
        pred, gt, tri = case_arrays(name)
        values = acc.update(pred, gt / 255.0, tri, name=name)
        assert values == {k: pytest.approx(v, rel=TOL) for k, v in META["values"][name][region].items()}
    summary = acc.summary()
    ref = META["summary"][region]
    assert set(summary) == set(M.METRIC_NAMES)
    for key in M.METRIC_NAMES:
        assert close(summary[key], ref[key], TOL), (key, summary[key], ref[key])
    report = json.loads(json.dumps(acc.to_dict()))
    assert report["region"] == region and report["count"] == len(CASES) == len(acc)
    assert [r["name"] for r in report["per_image"]] == CASES
    no_unknown = report["per_image"][CASES.index("no_unknown_16x16")]
    assert no_unknown["unknown_pixels"] == (0 if region == "trimap" else 256)


def test_matting_metrics_subset_and_empty() -> None:
    acc = MattingMetrics(metrics=["sad", "conn"])
    assert acc.summary() == {"sad": 0.0, "conn": 0.0}  # PaddleSeg's evaluate() with no image
    pred, gt, tri = case_arrays("blob_40x48")
    assert set(acc.update(pred, gt, tri)) == {"sad", "conn"}
    assert acc.summary()["sad"] == sad(pred, gt, tri)


# ----------------------------------------------------------------------------- the trimap rule


def test_trimap_forces_prediction() -> None:
    pred, gt, tri = case_arrays("forced_40x48")
    assert (pred[tri == 0] == 1).any() and (pred[tri == 255] == 0).any()  # wrong outside the band
    forced = pred.copy()
    forced[tri == 0] = 0
    forced[tri == 255] = 1
    before = pred.copy()
    for key, fn in FUNCS.items():
        assert fn(pred, gt, tri) == fn(forced, gt, tri), key
    assert np.array_equal(pred, before)  # the caller's array is not modified (PaddleSeg's is)
    # forcing matters for Grad and Conn (they look beyond the unknown band); SAD/MSE only count it
    assert grad(pred, gt, tri) != pytest.approx(grad(pred, gt), rel=1e-3)
    # whole-image mode: no forcing, every pixel counts
    acc = MattingMetrics("image")
    first = acc.update(pred, gt, tri)
    assert first == {k: fn(pred, gt) for k, fn in FUNCS.items()}
    assert acc.update(forced, gt, tri)["sad"] != first["sad"]


def test_region_trimap_without_trimap_is_whole_image() -> None:
    pred, gt, _ = case_arrays("noise_24x32")
    assert MattingMetrics("trimap").update(pred, gt) == MattingMetrics("image").update(pred, gt)


# ----------------------------------------------------------------------------- bad input


GOOD_P = np.zeros((4, 5), np.float32)
GOOD_G = np.zeros((4, 5), np.uint8)


@pytest.mark.parametrize("fn", list(FUNCS.values()))
@pytest.mark.parametrize(("args", "needle"), [
    ((np.zeros((4, 6), np.float32), GOOD_G, None), "pred and gt must have the same shape"),
    ((GOOD_P, GOOD_G, np.full((4, 6), 128, np.uint8)), "trimap must have the shape"),
    ((GOOD_P, GOOD_G, np.full((4, 5), 64, np.uint8)), "trimap must hold only 0, 128 and 255, got also [64]"),
    ((GOOD_P, GOOD_G, np.full((4, 5), True)), "trimap must hold the numbers"),
    ((GOOD_P, GOOD_G, [[128] * 5] * 4), "trimap must be None or a numpy array"),
    ((GOOD_P + 1.5, GOOD_G, None), "pred as floating point must lie in [0, 1]"),
    ((GOOD_P, GOOD_G.astype(np.float64) - 0.1, None), "gt as floating point must lie in [0, 1]"),
    ((GOOD_P.astype(np.int32), GOOD_G, None), "pred must be uint8 (0-255) or floating point (0-1), got dtype int32"),
    ((GOOD_P, GOOD_G.astype(np.uint16), None), "gt must be uint8"),
    ((GOOD_P[None], GOOD_G, None), "pred must be a 2-D array [H, W], got shape (1, 4, 5)"),
    ((GOOD_P, np.zeros((0, 5), np.uint8), None), "gt must not be empty"),
    ((np.full((4, 5), np.nan, np.float32), GOOD_G, None), "pred must be finite"),
    (([[0.0] * 5] * 4, GOOD_G, None), "pred must be a numpy array"),
])
def test_bad_input(fn, args, needle) -> None:
    with pytest.raises(ConfigError) as err:
        fn(*args)
    assert needle in str(err.value)
    assert isinstance(err.value, ValueError)


@pytest.mark.parametrize(("kwargs", "needle"), [
    ({"region": "unknown"}, "region must be one of ['trimap', 'image']"),
    ({"metrics": ["sad", "iou"]}, "metrics must be among"),
    ({"metrics": "sad"}, "metrics must be a non-empty list"),
    ({"metrics": []}, "metrics must be a non-empty list"),
    ({"metrics": ["sad", "sad"]}, "metrics must not repeat"),
    ({"sigma": 0}, "sigma must be a positive number"),
    ({"step": -0.1}, "step must be a positive number"),
])
def test_bad_settings(kwargs, needle) -> None:
    with pytest.raises(ConfigError) as err:
        MattingMetrics(**kwargs)
    assert needle in str(err.value)


def test_bad_function_settings() -> None:
    with pytest.raises(ConfigError, match="sigma must be a positive number"):
        grad(GOOD_P, GOOD_G, sigma=float("nan"))
    with pytest.raises(ConfigError, match="step must be a positive number"):
        conn(GOOD_P, GOOD_G, step=True)


def test_no_torch_at_import() -> None:
    import subprocess
    import sys

    code = "import sys, ppseg.matting.metrics; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
