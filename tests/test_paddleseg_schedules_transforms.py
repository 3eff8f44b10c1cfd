"""LR schedules and transforms against values made by PaddleSeg 2.8.0's own code.

The fixture ``data/paddleseg/schedules_transforms.npz`` (+ ``.json``) was made by
``data/paddleseg/make_schedules_transforms.py`` (its docstring: command, forced draws, why
there is an OpenCV 4 and an OpenCV 5 set). Numpy only here, no paddle: these tests never skip.

* LR: every iteration of each PaddleSeg run equals ppseg's schedule, built from the same
  ``lr_scheduler`` section by ppseg's config path, to 1e-7 relative.
* Transforms: the same inputs and the same forced draws through ppseg's transforms (built by
  ``build_transforms`` from the same specs) give exactly PaddleSeg's image (float32, bit for
  bit) and label. The draw stub fails a case that draws more, fewer or other kinds of values.
* Deliberate differences (README "Where ppseg differs from PaddleSeg"): the fixture holds what
  PaddleSeg does; the tests check that ppseg does what the table says instead.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from ppseg.config import Config, build_typed
from ppseg.data.sample import Kind, Sample
from ppseg.data.transforms import INTERP, build_transforms
from ppseg.engine.schedule import SCHEDULES, LRScheduler
from ppseg.errors import ConfigError

DATA = Path(__file__).parent / "data" / "paddleseg"
NPZ = np.load(DATA / "schedules_transforms.npz")
DOC = json.loads((DATA / "schedules_transforms.json").read_text())
CV = "cv4" if int(cv2.__version__.split(".")[0]) <= 4 else "cv5"


def schedule(section: dict):
    return build_typed(dict(section), SCHEDULES, Config({}, "fixture.yml", {}), "lr_scheduler")


# ----------------------------------------------------------------------------- LR schedules
@pytest.mark.parametrize("name", sorted(DOC["lr"]["cases"]))
def test_lr_sequence_matches_paddleseg(name):
    case = DOC["lr"]["cases"][name]
    ref = NPZ[f"lr/{name}/lr"]
    if case["ppseg"] != case["paddleseg"]:
        # ppseg's spelling (no T_max) holds end_lr after the run, paddle's cosine rises again:
        # equal over the iterations of the run
        ref = ref[:case["iters"]]
    sched = schedule(case["ppseg"])
    ours = np.array([sched.lr_at(t, case["iters"]) for t in range(len(ref))])
    np.testing.assert_allclose(ours, ref, rtol=1e-7, atol=1e-12 * case["ppseg"]["learning_rate"])


def test_lr_scheduler_drives_optimizer_like_paddleseg_training():
    """Through LRScheduler on a real optimizer: the lr of iteration i is PaddleSeg's after i-1 steps."""
    case = DOC["lr"]["cases"]["poly_defaults_warmup"]
    ref = NPZ["lr/poly_defaults_warmup/lr"]
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([{"params": [p]}, {"params": [], "lr_mult": 10.0}], lr=1.0)
    sched = LRScheduler(opt, schedule(case["ppseg"]), case["iters"])
    for t in range(case["iters"]):
        assert opt.param_groups[0]["lr"] == pytest.approx(ref[t], rel=1e-7)
        assert opt.param_groups[1]["lr"] == pytest.approx(10 * ref[t], rel=1e-7)
        sched.step()


def test_poly_defaults_are_paddles():
    s = schedule({"type": "PolynomialDecay", "learning_rate": 0.01})
    assert (s.end_lr, s.power, s.decay_steps, s.cycle) == (1e-4, 1.0, None, False)


def test_warmup_sections_paddleseg_refuses_are_accepted():
    """README table: PaddleSeg raises for these; ppseg runs them (warm-up 0 = none, start 0)."""
    raises = DOC["lr"]["raises"]
    assert set(raises) == {"warmup_iters_zero", "warmup_without_start_lr", "warmup_start_above_lr"}
    assert "warmup_steps" in raises["warmup_iters_zero"]["error"]
    assert "warmup_start_lr" in raises["warmup_without_start_lr"]["error"]
    assert "must be greater than start_lr" in raises["warmup_start_above_lr"]["error"]
    zero = raises["warmup_iters_zero"]
    s = schedule(zero["section"])
    plain = schedule({k: v for k, v in zero["section"].items() if not k.startswith("warmup")})
    assert [s.lr_at(t, zero["iters"]) for t in range(zero["iters"])] == \
           [plain.lr_at(t, zero["iters"]) for t in range(zero["iters"])]
    assert schedule(raises["warmup_without_start_lr"]["section"]).lr_at(0, 30) == 0.0


def test_rejected_schedule_keys_say_what_to_write():
    with pytest.raises(ConfigError, match="end_lr or eta_min"):
        schedule({"type": "CosineAnnealingDecay", "learning_rate": 0.1, "end_lr": 0.0, "eta_min": 0.0})
    with pytest.raises(ConfigError, match="T_max must be a positive integer"):
        schedule({"type": "CosineAnnealingDecay", "learning_rate": 0.1, "T_max": 0})
    with pytest.raises(ConfigError, match="decay_steps must be a positive integer"):
        schedule({"type": "PolynomialDecay", "learning_rate": 0.1, "decay_steps": 0})


# ----------------------------------------------------------------------------- transforms
class ForcedDraws:
    """A ``numpy.random.Generator`` stand-in returning the draws PaddleSeg was forced to take.

    Same mapping as the fixture script: ``uniform(lo, hi) = lo + (hi - lo)·u``,
    ``integers(lo, hi) = lo + int((hi - lo)·u)``, ``random() = u``, ``permutation`` = the
    recorded permutation (PaddleSeg's ``random.shuffle``).
    """

    def __init__(self, u: np.ndarray, perms: np.ndarray) -> None:
        self.u = [float(v) for v in u]
        self.perms = [np.asarray(p) for p in perms]

    def _u(self) -> float:
        assert self.u, "ppseg drew more values than PaddleSeg"
        return self.u.pop(0)

    def random(self) -> float:
        return self._u()

    def uniform(self, low: float = 0.0, high: float = 1.0) -> float:
        return low + (high - low) * self._u()

    def integers(self, low: int, high: int | None = None) -> int:
        if high is None:
            low, high = 0, low
        return low + int((high - low) * self._u())

    def permutation(self, n: int) -> np.ndarray:
        assert self.perms, "ppseg drew more permutations than PaddleSeg"
        p = self.perms.pop(0)
        assert len(p) == n
        return p

    def done(self) -> bool:
        return not self.u and not self.perms


_PADDLE_INTERP_ORDER = ["NEAREST", "LINEAR", "CUBIC", "AREA", "LANCZOS4"]  # PaddleSeg's interp_dict keys


def ppseg_draws(name: str, k: int) -> ForcedDraws:
    u = NPZ[f"cv5/{name}/{k}/u"].copy()
    meta = DOC["transforms"][name]
    if any(t.get("interp") == "RANDOM" for t in meta["transforms"]):
        # both pick uniformly among the 5 modes, over differently ordered lists: give ppseg the
        # draw that lands on the mode PaddleSeg picked
        choice = meta["trials"][k]["choices"]
        assert len(choice) == 1 and len(u) == 1
        u[0] = (sorted(INTERP).index(choice[0]) + 0.5) / len(INTERP)
    return ForcedDraws(u, NPZ[f"cv5/{name}/{k}/perms"])


def reference(name: str, k: int, part: str) -> np.ndarray:
    key = f"{name}/{k}/{part}"
    return NPZ[f"cv4/{key}"] if CV == "cv4" and f"cv4/{key}" in NPZ else NPZ[f"cv5/{key}"]


def run_ppseg(name: str, k: int) -> tuple[Sample, ForcedDraws]:
    meta = DOC["transforms"][name]
    inp = meta["input"]
    img = NPZ["in/img_a" if inp == "blocks" else f"in/img_{inp}"]
    lab = NPZ["in/lab_blocks" if inp == "blocks" else f"in/lab_{inp}"]
    sample = Sample(img.copy())
    sample.set("label", Kind.MASK, lab.astype(np.int64))  # as ppseg's datasets hand labels over
    draws = ppseg_draws(name, k) if meta["random"] else ForcedDraws(np.zeros(0), np.zeros((0, 5)))
    out = build_transforms(meta["transforms"])(sample, draws)  # type: ignore[arg-type]
    return out, draws


TRANSFORM_TRIALS = [(name, k) for name, meta in sorted(DOC["transforms"].items()) for k in range(len(meta["trials"]))]


@pytest.mark.parametrize(("name", "k"), TRANSFORM_TRIALS)
def test_transform_matches_paddleseg(name, k):
    out, draws = run_ppseg(name, k)
    assert draws.done(), "ppseg drew fewer values than PaddleSeg"
    ref_label = reference(name, k, "label")
    assert out.get("label").dtype == np.int64
    np.testing.assert_array_equal(out.get("label"), ref_label.astype(np.int64))  # ids: exact on any OpenCV
    if name == "padding_crop_category":
        # README table: PaddleSeg's image *is* the label crop here; ppseg crops the image
        assert DOC["transforms"][name]["trials"][k]["img_is_label"]
        assert out.image.shape == ref_label.shape + (3,)
        return
    ref_img = reference(name, k, "img")
    assert out.image.dtype == np.float32
    if cv2.__version__ == DOC["versions"][CV]["opencv"]:
        np.testing.assert_array_equal(out.image, ref_img)  # exact: same OpenCV / PIL paths, float32
    else:  # another OpenCV release than the fixture's: its float kernels may round the last bit differently
        np.testing.assert_allclose(out.image, ref_img, rtol=0, atol=1e-3)


def test_every_blur_kind_and_branch_is_covered():
    """The forced draws reach each branch of PaddleSeg's 0.3 / 0.3 / 0.4 "random" blur."""
    kinds = set()
    for k in range(len(DOC["transforms"]["blur_random"]["trials"])):
        u = NPZ[f"cv5/blur_random/{k}/u"]
        kinds.add("gaussian" if u[-1] < 0.3 else "median" if u[-1] < 0.6 else "blur")
    assert kinds == {"gaussian", "median", "blur"}


def test_random_blur_kind_frequencies():
    from ppseg.data.transforms import RandomBlur

    img = NPZ["in/img_a"]
    t = RandomBlur(prob=1.0, blur_type="random")
    counts = {"gaussian": 0, "median": 0, "blur": 0}
    for seed in range(400):
        g = np.random.default_rng(seed)
        out = t(Sample(img.copy()), g).image
        g = np.random.default_rng(seed)
        g.integers(0, 1)
        k = int(g.integers(3, 10))
        k = min(k + 1 if k % 2 == 0 else k, 9)
        u8 = img.astype(np.uint8)
        for kind, fn in (("gaussian", lambda: cv2.GaussianBlur(u8, (k, k), 0, 0)),
                         ("median", lambda: cv2.medianBlur(u8, k)), ("blur", lambda: cv2.blur(u8, (k, k)))):
            if np.array_equal(out, fn().astype(np.float32)):
                counts[kind] += 1
                break
    assert sum(counts.values()) == 400
    assert abs(counts["gaussian"] / 400 - 0.3) < 0.08 and abs(counts["median"] / 400 - 0.3) < 0.08
    assert abs(counts["blur"] / 400 - 0.4) < 0.08


def test_rotation_masks_warp_like_uint8_even_when_int64():
    """int64 labels (ppseg's datasets) land on the same pixels as PaddleSeg's uint8 ones."""
    lab = NPZ["in/lab_a"]
    h, w = lab.shape
    for angle in np.linspace(-30, 30, 13):
        m = cv2.getRotationMatrix2D((w // 2, h // 2), float(angle), 1.0)
        s = Sample(np.zeros((h, w, 3), np.float32))
        s.set("label", Kind.MASK, lab.astype(np.int64))
        s.warp_affine(m, (w + 7, h + 5), 0, 255)
        want = cv2.warpAffine(lab, m, (w + 7, h + 5), flags=cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT,
                              borderValue=255)
        np.testing.assert_array_equal(s.get("label"), want.astype(np.int64))


# ----------------------------------------------------------------------------- deliberate differences
def test_resize_by_short_max_size_is_per_image():
    """PaddleSeg stores the reduced short side (floored) on the transform: later images shrink too."""
    d = DOC["differences"]["resize_by_short_max_size"]
    t = build_transforms([{"type": "ResizeByShort", "short_size": d["short_size"], "max_size": d["max_size"]}])
    ours = [list(t(Sample(np.zeros(tuple(hw) + (3,), np.float32)), np.random.default_rng(0)).image.shape[:2])
            for hw in d["inputs"]]
    assert d["paddleseg_shapes"] == [[29, 39], [29, 29], [29, 39]] and d["short_size_after"] == 29
    assert ours == [[30, 40], [30, 30], [30, 40]]


def test_out_of_range_floats_are_clipped_not_wrapped():
    d = DOC["differences"]["out_of_range_floats"]
    assert d["input_values"] == [300.0, -5.0]
    assert d["distort_values"] == [44.0, 251.0] and d["blur_values"] == [44.0, 251.0]  # PaddleSeg wraps mod 256
    img = np.full((8, 8, 3), 300.0, np.float32)
    img[:4] = -5.0
    for spec in ({"type": "RandomDistort", "brightness_prob": 0, "contrast_prob": 0, "saturation_prob": 0,
                  "hue_prob": 0}, {"type": "RandomBlur", "prob": 1.0, "blur_type": "median"}):
        out = build_transforms([spec])(Sample(img.copy()), np.random.default_rng(0)).image
        assert sorted(np.unique(out).tolist()) == [0.0, 255.0]


def test_short_size_list_is_rejected_with_what_to_write():
    with pytest.raises(ConfigError, match=r"transforms\[0\].*one positive integer.*once.*short_size: 512"):
        build_transforms([{"type": "ResizeByShort", "short_size": [512, 640]}])


def test_fixture_is_small_and_complete():
    assert (DATA / "schedules_transforms.npz").stat().st_size < 2_000_000
    assert DOC["paddleseg"] == "2.8.0" and DOC["lr"]["paddle"].startswith("2.6")
    assert len(TRANSFORM_TRIALS) == sum(len(m["trials"]) for m in DOC["transforms"].values()) > 100
    assert not any(k.startswith("cv4/") and k.replace("cv4/", "cv5/", 1) not in NPZ for k in NPZ.files)
