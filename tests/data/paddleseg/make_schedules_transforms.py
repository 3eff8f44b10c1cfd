"""Make ``schedules_transforms.npz`` / ``.json``: PaddleSeg 2.8.0's own LR schedules and transforms.

Run from the repository root with the PaddleSeg reference environment
(``../shared/spec/reference.md``: paddle 2.6.2 CPU, paddleseg 2.8.0, numpy < 2, OpenCV 4)::

    .paddle-venv/bin/python tests/data/paddleseg/make_schedules_transforms.py

What it records (``tests/test_paddleseg_schedules_transforms.py`` reads it, numpy only):

* ``lr``: the learning rate of every iteration of PaddleSeg runs, built by PaddleSeg's own
  config path (``SegBuilder.lr_scheduler``: ``decay_steps`` filled in, ``LinearWarmup`` around
  the schedule) and stepped as ``paddleseg.core.train`` steps it (lr read, then ``step()``),
  plus the configs PaddleSeg refuses (their error message).
* ``tf``: PaddleSeg's transforms on small random images and labels (inputs stored), every
  deterministic one and the random ones with forced draws: ``np.random.uniform/randint/shuffle``
  and ``random.random/choice/shuffle`` are patched to take their values from recorded
  uniforms ``u`` in [0, 1) (``uniform(lo, hi) = lo + (hi - lo)·u``, ``randint(lo, hi) =
  lo + int((hi - lo)·u)``, ``choice(seq) = seq[int(len·u)]``, ``np.random.shuffle`` puts
  ``seq[int(len·u)]`` first) and ``random.shuffle`` from recorded permutations. The test feeds
  ppseg a generator stub with the same rule, so both sides see the same draws, in order.

OpenCV: OpenCV 5 changed ``warpAffine`` (bilinear weights, nearest-neighbour ties) and
bicubic rounding, so exact outputs need the same OpenCV on both sides. The transforms are
therefore run twice: here (``cv4``, OpenCV and numpy of this environment, PaddleSeg imported
normally) and in ppseg's environment (``cv5``: ``.venv/bin/python`` or ``$PPSEG_PYTHON``),
where this same script loads PaddleSeg's unmodified ``transforms/transforms.py`` and
``transforms/functional.py`` from this environment's site-packages, with only the registry
decorator (the real ``cvlibs/manager.py``), the logger and, where absent, ``scipy.ndimage``
stubbed (none of the transforms used here calls them). The npz holds the ``cv5`` outputs and
only those ``cv4`` outputs that differ; the test uses the set of its OpenCV major version.
"""

from __future__ import annotations

import importlib.util
import json
import os
import random
import subprocess
import sys
import tempfile
import types
from pathlib import Path

import cv2  # noqa: F401  (before paddle: paddle 2.6 segfaults in zlib otherwise)
import numpy as np

HERE = Path(__file__).resolve().parent
OUT = HERE / "schedules_transforms"

# --------------------------------------------------------------------------------------- inputs


def make_inputs() -> dict[str, np.ndarray]:
    """Small images (float32 RGB 0..255) and uint8 labels (0..4, ignore 255)."""
    g = np.random.default_rng(20240612)
    out: dict[str, np.ndarray] = {}
    for name, (h, w), integer in (("a", (23, 31), False), ("b", (23, 31), True), ("c", (31, 23), False)):
        img = g.uniform(0, 255, (h, w, 3)).astype(np.float32)
        out[f"img_{name}"] = np.floor(img) if integer else img
        lab = g.integers(0, 5, (h, w)).astype(np.uint8)
        lab[g.random((h, w)) < 0.1] = 255
        out[f"lab_{name}"] = lab
    # blocky labels for category_max_ratio: windows with one class and windows with several
    blocks = np.zeros((23, 31), np.uint8)
    blocks[:, 16:] = 1
    blocks[12:, 8:20] = 2
    blocks[:3] = 255
    out["lab_blocks"] = blocks
    return out


# --------------------------------------------------------------------------------------- cases
# (name, input, [(type, kwargs), ...], number of draw sets). A draw set = 64 uniforms + 8
# permutations from a fixed seed; only what PaddleSeg consumed is kept.
TF_CASES: list[tuple[str, str, list[tuple[str, dict]], int]] = [
    *[(f"resize_{i.lower()}_up", "a", [("Resize", {"target_size": [41, 29], "interp": i})], 0)
      for i in ("NEAREST", "LINEAR", "CUBIC", "AREA", "LANCZOS4")],
    *[(f"resize_{i.lower()}_down", "b", [("Resize", {"target_size": [17, 12], "interp": i})], 0)
      for i in ("NEAREST", "LINEAR", "CUBIC", "AREA", "LANCZOS4")],
    ("resize_keep_ratio", "a", [("Resize", {"target_size": [64, 32], "keep_ratio": True})], 0),
    ("resize_keep_ratio_div", "c", [("Resize", {"target_size": [64, 32], "keep_ratio": True, "size_divisor": 8})], 0),
    ("resize_div", "a", [("Resize", {"target_size": [50, 30], "size_divisor": 16})], 0),
    ("resize_random_interp", "a", [("Resize", {"target_size": [37, 19], "interp": "RANDOM"})], 5),
    ("resize_by_short", "a", [("ResizeByShort", {"short_size": 30})], 0),
    ("resize_by_short_portrait", "c", [("ResizeByShort", {"short_size": 17})], 0),
    ("resize_by_short_cap_unused", "a", [("ResizeByShort", {"short_size": 30, "max_size": 41})], 0),
    ("resize_by_long", "a", [("ResizeByLong", {"long_size": 40})], 0),
    ("resize_by_long_portrait", "c", [("ResizeByLong", {"long_size": 19})], 0),
    ("padding", "a", [("Padding", {"target_size": [40, 30]})], 0),
    ("padding_values", "c", [("Padding", {"target_size": [24, 33], "im_padding_value": 0,
                                          "label_padding_value": 0})], 0),
    ("hflip_always", "a", [("RandomHorizontalFlip", {"prob": 1.0})], 1),
    ("vflip_always", "a", [("RandomVerticalFlip", {"prob": 1.0})], 1),
    ("hflip", "b", [("RandomHorizontalFlip", {"prob": 0.5})], 4),
    ("vflip", "b", [("RandomVerticalFlip", {"prob": 0.5})], 4),
    ("step_scaling", "a", [("ResizeStepScaling", {"min_scale_factor": 0.5, "max_scale_factor": 2.0,
                                                  "scale_step_size": 0.25})], 5),
    ("step_scaling_continuous", "b", [("ResizeStepScaling", {"min_scale_factor": 0.75, "max_scale_factor": 1.25,
                                                             "scale_step_size": 0})], 4),
    ("step_scaling_fixed", "a", [("ResizeStepScaling", {"min_scale_factor": 0.5, "max_scale_factor": 0.5})], 1),
    ("padding_crop", "a", [("RandomPaddingCrop", {"crop_size": [20, 15]})], 4),
    ("padding_crop_pad_w", "c", [("RandomPaddingCrop", {"crop_size": [30, 20]})], 3),
    ("padding_crop_pad_only", "a", [("RandomPaddingCrop", {"crop_size": [40, 30], "im_padding_value": 10,
                                                           "label_padding_value": 7})], 1),
    ("padding_crop_same_size", "a", [("RandomPaddingCrop", {"crop_size": [31, 23]})], 1),
    ("distort", "a", [("RandomDistort", {})], 5),
    ("distort_all", "b", [("RandomDistort", {"brightness_prob": 1, "contrast_prob": 1, "saturation_prob": 1,
                                             "hue_prob": 1, "sharpness_prob": 1})], 5),
    ("distort_hue", "a", [("RandomDistort", {"brightness_prob": 0, "contrast_prob": 0, "saturation_prob": 0,
                                             "hue_prob": 1, "hue_range": 100})], 5),
    ("distort_ranges", "c", [("RandomDistort", {"brightness_range": 0.9, "contrast_range": 0.2,
                                                "saturation_range": 1.0, "sharpness_range": 0.7,
                                                "sharpness_prob": 0.5, "hue_range": 40})], 5),
    ("rotation", "a", [("RandomRotation", {"max_rotation": 30})], 5),
    ("rotation_default", "c", [("RandomRotation", {})], 4),
    ("rotation_values", "b", [("RandomRotation", {"max_rotation": 90, "im_padding_value": 0,
                                                  "label_padding_value": 0})], 4),
    ("blur", "a", [("RandomBlur", {"prob": 0.5})], 5),
    ("blur_always", "b", [("RandomBlur", {"prob": 1.0})], 3),
    ("blur_median", "a", [("RandomBlur", {"prob": 1.0, "blur_type": "median"})], 3),
    ("blur_box", "c", [("RandomBlur", {"prob": 1.0, "blur_type": "blur"})], 3),
    ("blur_random", "a", [("RandomBlur", {"prob": 1.0, "blur_type": "random"})], 8),
    ("blur_random_rare", "b", [("RandomBlur", {"prob": 0.3, "blur_type": "random"})], 4),
    ("scale_aspect", "a", [("RandomScaleAspect", {})], 5),
    ("scale_aspect_wide", "c", [("RandomScaleAspect", {"min_scale": 0.3, "aspect_ratio": 0.5})], 5),
    ("pipeline_portrait", "a", [("ResizeStepScaling", {"min_scale_factor": 0.5, "max_scale_factor": 2.0,
                                                       "scale_step_size": 0.25}),
                                ("RandomRotation", {"max_rotation": 15}),
                                ("RandomPaddingCrop", {"crop_size": [24, 18]}),
                                ("RandomHorizontalFlip", {}),
                                ("RandomDistort", {}),
                                ("RandomBlur", {"prob": 0.3})], 6),
    ("pipeline_train", "b", [("ResizeStepScaling", {}), ("RandomPaddingCrop", {"crop_size": [16, 16]}),
                             ("RandomHorizontalFlip", {}), ("RandomVerticalFlip", {}),
                             ("RandomScaleAspect", {"min_scale": 0.5, "aspect_ratio": 0.4}),
                             ("RandomDistort", {"sharpness_prob": 0.5}),
                             ("RandomBlur", {"prob": 0.5, "blur_type": "random"})], 6),
    # compare labels only: PaddleSeg puts the label crop in place of the image (README table)
    ("padding_crop_category", "blocks", [("RandomPaddingCrop", {"crop_size": [10, 8], "category_max_ratio": 0.75})], 4),
]


# --------------------------------------------------------------------------------------- forced draws
class Draws:
    """Recorded uniforms and permutations, consumed in order; counts what was used."""

    def __init__(self, seed: int) -> None:
        g = np.random.default_rng(seed)
        self.u = [float(v) for v in g.random(64)]
        self.perms = [[int(v) for v in g.permutation(5)] for _ in range(8)]
        self.nu = self.np = 0
        self.choices: list[str] = []

    def next_u(self) -> float:
        v = self.u[self.nu]
        self.nu += 1
        return v

    def next_perm(self) -> list[int]:
        v = self.perms[self.np]
        self.np += 1
        return v


_DRAWS: Draws | None = None


def _draws() -> Draws:
    if _DRAWS is None:
        raise RuntimeError("a random draw outside a case")
    return _DRAWS


def _uniform(low=0.0, high=1.0, size=None):
    assert size is None
    return low + (high - low) * _draws().next_u()


def _randint(low, high=None, size=None, dtype=int):
    assert size is None
    if high is None:
        low, high = 0, low
    return low + int((high - low) * _draws().next_u())


def _np_shuffle(x):
    i = int(len(x) * _draws().next_u())
    x.insert(0, x.pop(i))


def _random():
    return _draws().next_u()


def _choice(seq):
    v = seq[int(len(seq) * _draws().next_u())]
    _draws().choices.append(str(v))
    return v


def _shuffle(x):
    perm = _draws().next_perm()
    x[:] = [x[i] for i in perm]


def patch_randomness() -> None:
    np.random.uniform = _uniform
    np.random.randint = _randint
    np.random.shuffle = _np_shuffle
    random.random = _random
    random.choice = _choice
    random.shuffle = _shuffle


# --------------------------------------------------------------------------------------- transforms
def run_transforms(PT) -> tuple[dict[str, np.ndarray], dict]:
    """Every case through PaddleSeg's transforms module ``PT``; arrays and per-trial metadata."""
    global _DRAWS
    patch_randomness()
    inputs = make_inputs()
    arrays: dict[str, np.ndarray] = {}
    meta: dict = {}
    for ci, (name, inp, specs, ntrials) in enumerate(TF_CASES):
        trials = []
        for k in range(max(ntrials, 1)):
            draws = Draws(1000 * ci + k)
            _DRAWS = draws
            lab_key = "lab_blocks" if inp == "blocks" else f"lab_{inp}"
            img_key = "img_a" if inp == "blocks" else f"img_{inp}"
            data = {"img": inputs[img_key].copy(), "label": inputs[lab_key].copy(), "gt_fields": ["label"],
                    "trans_info": []}
            for typ, kwargs in specs:
                data = getattr(PT, typ)(**kwargs)(data)
            _DRAWS = None
            img = np.asarray(data["img"])
            lab = np.asarray(data["label"])
            arrays[f"{name}/{k}/img"] = img.astype(np.float32)
            arrays[f"{name}/{k}/label"] = lab.astype(np.uint8)
            arrays[f"{name}/{k}/u"] = np.asarray(draws.u[:draws.nu], np.float64)
            arrays[f"{name}/{k}/perms"] = np.asarray(draws.perms[:draws.np], np.int64).reshape(-1, 5)
            trials.append({"choices": draws.choices, "img_is_label": bool(img.ndim == 2 and img.shape == lab.shape
                                                                          and np.array_equal(img, lab))})
        meta[name] = {"input": inp, "transforms": [{"type": t, **kw} for t, kw in specs],
                      "trials": trials, "random": ntrials > 0}
    return arrays, meta


def run_differences(PT) -> dict:
    """The transform behaviours the README table lists as deliberate differences, as PaddleSeg runs them."""
    out: dict = {}
    t = PT.ResizeByShort(short_size=30, max_size=40)
    shapes = []
    for hw in ((23, 31), (30, 30), (23, 31)):
        shapes.append(list(t({"img": np.zeros(hw + (3,), np.float32), "trans_info": []})["img"].shape[:2]))
    out["resize_by_short_max_size"] = {"short_size": 30, "max_size": 40, "inputs": [[23, 31], [30, 30], [23, 31]],
                                       "paddleseg_shapes": shapes, "short_size_after": t.short_size}
    img = np.full((8, 8, 3), 300.0, np.float32)
    img[:4] = -5.0
    global _DRAWS
    _DRAWS = Draws(7)
    d = PT.RandomDistort(brightness_prob=0, contrast_prob=0, saturation_prob=0, hue_prob=0)(
        {"img": img.copy(), "trans_info": []})
    b = PT.RandomBlur(prob=1.0, blur_type="median")({"img": img.copy(), "trans_info": []})
    _DRAWS = None
    out["out_of_range_floats"] = {"input_values": [300.0, -5.0],
                                  "distort_values": sorted(float(v) for v in np.unique(d["img"])),
                                  "blur_values": sorted(float(v) for v in np.unique(b["img"]))}
    return out


# --------------------------------------------------------------------------------------- LR schedules
# (name, PaddleSeg lr_scheduler section, ppseg lr_scheduler section (None: the same), iters)
LR_CASES: list[tuple[str, dict, dict | None, int]] = [
    ("poly_defaults", {"type": "PolynomialDecay", "learning_rate": 0.01}, None, 50),
    ("poly_defaults_warmup", {"type": "PolynomialDecay", "learning_rate": 0.01, "warmup_iters": 10,
                              "warmup_start_lr": 1e-5}, None, 60),
    ("poly_shipped", {"type": "PolynomialDecay", "learning_rate": 0.005, "end_lr": 0.0, "power": 0.9,
                      "warmup_iters": 100, "warmup_start_lr": 1e-5}, None, 1000),
    ("poly_no_warmup", {"type": "PolynomialDecay", "learning_rate": 0.002, "end_lr": 0.0, "power": 0.9}, None, 300),
    ("poly_power2", {"type": "PolynomialDecay", "learning_rate": 0.1, "end_lr": 1e-3, "power": 2.0}, None, 40),
    ("poly_decay_steps_short", {"type": "PolynomialDecay", "learning_rate": 0.01, "decay_steps": 20,
                                "end_lr": 0.0, "power": 0.9}, None, 50),
    ("poly_decay_steps_long", {"type": "PolynomialDecay", "learning_rate": 0.01, "decay_steps": 80,
                               "warmup_iters": 5, "warmup_start_lr": 0.0}, None, 50),
    ("poly_cycle", {"type": "PolynomialDecay", "learning_rate": 0.01, "decay_steps": 15, "cycle": True,
                    "end_lr": 1e-4, "power": 0.9}, None, 60),
    ("poly_cycle_warmup", {"type": "PolynomialDecay", "learning_rate": 0.01, "decay_steps": 12, "cycle": True,
                           "warmup_iters": 6, "warmup_start_lr": 1e-4}, None, 50),
    ("poly_cycle_default_steps", {"type": "PolynomialDecay", "learning_rate": 0.01, "cycle": True,
                                  "power": 0.9}, None, 30),
    ("cosine_tmax_iters", {"type": "CosineAnnealingDecay", "learning_rate": 0.01, "T_max": 100}, None, 100),
    ("cosine_eta_min_warmup", {"type": "CosineAnnealingDecay", "learning_rate": 0.02, "T_max": 90,
                               "eta_min": 1e-4, "warmup_iters": 10, "warmup_start_lr": 1e-6}, None, 100),
    ("cosine_periodic", {"type": "CosineAnnealingDecay", "learning_rate": 0.01, "T_max": 15, "eta_min": 1e-3},
     None, 70),
    ("cosine_periodic_warmup", {"type": "CosineAnnealingDecay", "learning_rate": 0.01, "T_max": 10,
                                "warmup_iters": 4, "warmup_start_lr": 0.0}, None, 50),
    # ppseg's own spelling (no T_max: iters - warmup_iters; end_lr) against PaddleSeg's
    ("cosine_ppseg_keys", {"type": "CosineAnnealingDecay", "learning_rate": 0.02, "T_max": 150,
                           "eta_min": 2e-4, "warmup_iters": 50, "warmup_start_lr": 1e-5},
     {"type": "CosineAnnealingDecay", "learning_rate": 0.02, "end_lr": 2e-4, "warmup_iters": 50,
      "warmup_start_lr": 1e-5}, 200),
    ("cosine_ppseg_keys_no_warmup", {"type": "CosineAnnealingDecay", "learning_rate": 0.05, "T_max": 120},
     {"type": "CosineAnnealingDecay", "learning_rate": 0.05}, 120),
]

# sections PaddleSeg refuses (README table: ppseg accepts them)
LR_RAISES: list[tuple[str, dict, int]] = [
    ("warmup_iters_zero", {"type": "PolynomialDecay", "learning_rate": 0.01, "warmup_iters": 0,
                           "warmup_start_lr": 0.0, "end_lr": 0.0, "power": 0.9}, 30),
    ("warmup_without_start_lr", {"type": "PolynomialDecay", "learning_rate": 0.01, "warmup_iters": 5}, 30),
    ("warmup_start_above_lr", {"type": "PolynomialDecay", "learning_rate": 0.01, "warmup_iters": 5,
                               "warmup_start_lr": 0.02}, 30),
]


def run_lr() -> tuple[dict[str, np.ndarray], dict]:
    import paddle
    from paddleseg.cvlibs.builder import SegBuilder

    def build(section: dict, iters: int):
        holder = types.SimpleNamespace(config=types.SimpleNamespace(lr_scheduler_cfg=dict(section), iters=iters))
        return SegBuilder.lr_scheduler.func(holder)  # PaddleSeg's own config -> paddle path

    arrays: dict[str, np.ndarray] = {}
    meta: dict = {"cases": {}, "raises": {}}
    for name, section, ppseg_section, iters in LR_CASES:
        sched = build(section, iters)
        lrs = []
        for _ in range(iters + 5):  # paddleseg.core.train: lr used by the step, then lr_sche.step()
            lrs.append(float(sched()))
            sched.step()
        arrays[f"{name}/lr"] = np.asarray(lrs, np.float64)
        meta["cases"][name] = {"paddleseg": section, "ppseg": ppseg_section or section, "iters": iters}
    for name, section, iters in LR_RAISES:
        try:
            build(section, iters)
        except Exception as e:  # noqa: BLE001
            meta["raises"][name] = {"section": section, "iters": iters, "error": f"{type(e).__name__}: {e}"}
        else:
            raise AssertionError(f"PaddleSeg accepted {section}")
    meta["paddle"] = paddle.__version__
    return arrays, meta


# --------------------------------------------------------------------------------------- loading PaddleSeg
def paddleseg_transforms_standalone(site: Path):
    """PaddleSeg's unmodified transforms module, loaded without paddle (for another OpenCV)."""

    def load(modname: str, path: Path):
        spec = importlib.util.spec_from_file_location(modname, path)
        mod = importlib.util.module_from_spec(spec)
        sys.modules[modname] = mod
        spec.loader.exec_module(mod)
        return mod

    for pkg in ("paddleseg", "paddleseg.cvlibs", "paddleseg.utils", "paddleseg.transforms"):
        m = types.ModuleType(pkg)
        m.__path__ = []
        sys.modules[pkg] = m
    manager = load("paddleseg.cvlibs.manager", site / "paddleseg/cvlibs/manager.py")
    sys.modules["paddleseg.cvlibs"].manager = manager
    logger = types.ModuleType("paddleseg.utils.logger")
    for level in ("debug", "info", "warning", "error"):
        setattr(logger, level, lambda *a, **k: None)
    sys.modules["paddleseg.utils.logger"] = logger
    sys.modules["paddleseg.utils"].logger = logger
    if importlib.util.find_spec("scipy") is None:  # only the edge helpers of functional.py use it
        sc, nd = types.ModuleType("scipy"), types.ModuleType("scipy.ndimage")

        def distance_transform_edt(*a, **k):
            raise NotImplementedError("scipy stub")

        nd.distance_transform_edt = distance_transform_edt
        sc.ndimage = nd
        sys.modules["scipy"], sys.modules["scipy.ndimage"] = sc, nd
    functional = load("paddleseg.transforms.functional", site / "paddleseg/transforms/functional.py")
    sys.modules["paddleseg.transforms"].functional = functional
    return load("paddleseg.transforms.transforms", site / "paddleseg/transforms/transforms.py")


def versions() -> dict:
    import PIL

    return {"python": sys.version.split()[0], "numpy": np.__version__, "opencv": cv2.__version__,
            "pillow": PIL.__version__}


def child_main(site: str, out: str) -> None:
    PT = paddleseg_transforms_standalone(Path(site))
    arrays, meta = run_transforms(PT)
    diffs = run_differences(PT)
    np.savez(out + ".npz", **arrays)
    Path(out + ".json").write_text(json.dumps({"meta": meta, "differences": diffs, "versions": versions()}))


def main() -> None:
    import paddleseg
    from paddleseg.transforms import transforms as PT

    assert paddleseg.__version__ == "2.8.0", paddleseg.__version__
    site = Path(paddleseg.__file__).resolve().parent.parent
    lr_arrays, lr_meta = run_lr()
    cv4_arrays, tf_meta = run_transforms(PT)
    cv4_diffs = run_differences(PT)
    cv4_versions = versions()

    python = os.environ.get("PPSEG_PYTHON", str(Path.cwd() / ".venv/bin/python"))
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([python, __file__, "--child", str(site), f"{tmp}/cv5"], check=True)
        with np.load(f"{tmp}/cv5.npz") as z:
            cv5_arrays = {k: z[k] for k in z.files}
        child = json.loads(Path(f"{tmp}/cv5.json").read_text())
    cv5_versions = child["versions"]
    assert int(cv5_versions["opencv"].split(".")[0]) == 5, cv5_versions
    assert int(cv4_versions["opencv"].split(".")[0]) == 4, cv4_versions
    assert child["meta"] == json.loads(json.dumps(tf_meta)), "the two runs drew differently"
    assert child["differences"] == json.loads(json.dumps(cv4_diffs))

    arrays: dict[str, np.ndarray] = {f"in/{k}": v for k, v in make_inputs().items()}
    arrays.update({f"lr/{k}": v for k, v in lr_arrays.items()})
    differ: dict[str, list[str]] = {}
    for key, v5 in cv5_arrays.items():
        arrays[f"cv5/{key}"] = v5
        v4 = cv4_arrays[key]
        if v4.shape != v5.shape or not np.array_equal(v4, v5):
            arrays[f"cv4/{key}"] = v4
            differ.setdefault(key.split("/")[0], []).append(key)
    np.savez_compressed(OUT.with_suffix(".npz"), **arrays)
    doc = {
        "made_by": "tests/data/paddleseg/make_schedules_transforms.py (see its docstring)",
        "paddleseg": paddleseg.__version__,
        "lr": lr_meta,
        "transforms": tf_meta,
        "differences": cv4_diffs,
        "versions": {"cv4": cv4_versions, "cv5": cv5_versions},
        "cv4_differs_from_cv5": {k: len(v) for k, v in sorted(differ.items())},
    }
    OUT.with_suffix(".json").write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")
    size = OUT.with_suffix(".npz").stat().st_size
    print(f"wrote {OUT.with_suffix('.npz')} ({size / 1e3:.0f} kB, {len(arrays)} arrays); "
          f"cv4 outputs that differ from cv5: {doc['cv4_differs_from_cv5']}")


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--child":
        child_main(sys.argv[2], sys.argv[3])
    else:
        main()
