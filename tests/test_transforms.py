"""Tests for ppseg.data.transforms (PaddleSeg semantics, determinism, validation)."""

from __future__ import annotations

import numpy as np
import pytest

from ppseg.data import transforms as T
from ppseg.data.sample import Kind, Pad, Resize, Sample
from ppseg.errors import ConfigError


def make_sample(h: int = 40, w: int = 60, with_label: bool = True, seed: int = 0) -> Sample:
    g = np.random.default_rng(seed)
    img = g.uniform(0, 255, size=(h, w, 3)).astype(np.float32)
    sample = Sample(img)
    if with_label:
        sample.set("label", Kind.MASK, g.integers(0, 5, size=(h, w)).astype(np.int64))
    return sample


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


# ----------------------------------------------------------------------------- resize
def test_resize_plain_records_the_op_and_label_nearest():
    s = T.Resize(target_size=(30, 20))(make_sample(), rng())
    assert s.image.shape == (20, 30, 3) and s.image.dtype == np.float32
    assert s.get("label").shape == (20, 30) and s.get("label").dtype == np.int64
    assert set(np.unique(s.get("label"))) <= set(range(5))  # nearest: no new values
    assert s.ops == [Resize((40, 60), (20, 30))]


@pytest.mark.parametrize(
    "hw, target, divisor, expected_wh",
    [
        ((360, 480), (2048, 512), None, (683, 512)),  # scale = min(2048/480, 512/360)
        ((360, 480), (2048, 512), 32, (704, 512)),  # ceil to x32 by resizing
        ((100, 50), (64, 64), None, (32, 64)),
        ((50, 50), (100, 30), 8, (32, 32)),  # scale=min(100/50, 30/50)=0.6 -> 30 -> 32
    ],
)
def test_resize_keep_ratio_and_size_divisor(hw, target, divisor, expected_wh):
    t = T.Resize(target_size=target, keep_ratio=True, size_divisor=divisor)
    assert t.output_size(*hw) == expected_wh
    s = t(make_sample(*hw, with_label=False), rng())
    assert s.image.shape[:2] == (expected_wh[1], expected_wh[0])
    assert s.get("label") is None


def test_resize_size_divisor_without_keep_ratio():
    assert T.Resize(target_size=(50, 30), size_divisor=16).output_size(10, 10) == (64, 32)


def test_resize_by_short_and_long():
    s = T.ResizeByShort(short_size=20)(make_sample(40, 60), rng())
    assert s.image.shape[:2] == (20, 30) and s.ops == [Resize((40, 60), (20, 30))]
    s = T.ResizeByShort(short_size=20, max_size=24)(make_sample(40, 60), rng())
    assert s.image.shape[:2] == (16, 24)
    s = T.ResizeByLong(long_size=30)(make_sample(40, 60), rng())
    assert s.image.shape[:2] == (20, 30) and s.get("label").shape == (20, 30)


def test_resize_by_short_max_size_applies_to_each_image_alone():
    t = T.ResizeByShort(short_size=20, max_size=24)
    assert t(make_sample(40, 60), rng()).image.shape[:2] == (16, 24)
    assert t(make_sample(30, 30), rng()).image.shape[:2] == (20, 20)  # PaddleSeg: 16 x 16 (stored size)
    assert t.short_size == 20


def test_resize_by_short_rejects_a_list_saying_what_to_write():
    with pytest.raises(ConfigError, match="short_size: 512"):
        T.ResizeByShort(short_size=[512, 640])


def test_resize_step_scaling_uses_linspace_set():
    t = T.ResizeStepScaling(min_scale_factor=0.5, max_scale_factor=2.0, scale_step_size=0.25)
    factors = t.factors()
    assert factors == pytest.approx(np.linspace(0.5, 2.0, 7).tolist())
    allowed = {(int(round(f * 40)), int(round(f * 60))) for f in factors}
    seen = set()
    for seed in range(60):
        s = t(make_sample(), rng(seed))
        hw = s.image.shape[:2]
        assert hw in allowed and s.get("label").shape == hw
        seen.add(hw)
    assert len(seen) >= 5  # factors drawn from the whole set
    assert make_sample().ops == []


def test_resize_step_scaling_continuous_and_fixed():
    t = T.ResizeStepScaling(min_scale_factor=0.75, max_scale_factor=1.25, scale_step_size=0)
    sizes = {t(make_sample(), rng(s)).image.shape[0] for s in range(20)}
    assert len(sizes) > 5 and all(30 <= h <= 50 for h in sizes)
    fixed = T.ResizeStepScaling(min_scale_factor=0.5, max_scale_factor=0.5)
    assert fixed(make_sample(), rng()).image.shape[:2] == (20, 30)


# ----------------------------------------------------------------------------- crop / pad
def test_random_padding_crop_pads_with_reference_values():
    s = make_sample(10, 12)
    out = T.RandomPaddingCrop(crop_size=(20, 16))(s, rng())
    assert out.image.shape == (16, 20, 3) and out.get("label").shape == (16, 20)
    assert np.all(out.image[10:] == 127.5) and np.all(out.image[:, 12:] == 127.5)
    assert np.all(out.get("label")[10:] == 255) and np.all(out.get("label")[:, 12:] == 255)
    assert np.all(out.get("label")[:10, :12] < 5)  # original content stays top-left


def test_random_padding_crop_crops_consistently():
    s = make_sample(40, 60)
    img0, lab0 = s.image.copy(), s.get("label").copy()
    out = T.RandomPaddingCrop(crop_size=(25, 15))(s, rng(3))
    assert out.image.shape == (15, 25, 3)
    # find the offset from the image and check the label was cut at the same place
    for y in range(40 - 15 + 1):
        for x in range(60 - 25 + 1):
            if np.array_equal(img0[y : y + 15, x : x + 25], out.image):
                assert np.array_equal(lab0[y : y + 15, x : x + 25], out.get("label"))
                return
    pytest.fail("crop is not a window of the input")


def test_padding_val_records_and_rejects_large_images():
    s = T.Padding(target_size=(64, 48))(make_sample(40, 60, with_label=False), rng())
    assert s.image.shape == (48, 64, 3) and s.ops == [Pad((40, 60), 0, 8, 0, 4)]
    assert np.all(s.image[40:] == 127.5)
    with pytest.raises(ConfigError, match="target_size"):
        T.Padding(target_size=(32, 32))(make_sample(40, 60), rng())


# ----------------------------------------------------------------------------- flips
def test_horizontal_and_vertical_flip_move_image_and_label_together():
    s = make_sample()
    img0, lab0 = s.image.copy(), s.get("label").copy()
    out = T.RandomHorizontalFlip(prob=1.0)(s, rng())
    assert np.array_equal(out.image, img0[:, ::-1]) and np.array_equal(out.get("label"), lab0[:, ::-1])
    out = T.RandomVerticalFlip(prob=1.0)(make_sample(), rng())
    assert np.array_equal(out.image, img0[::-1]) and np.array_equal(out.get("label"), lab0[::-1])
    out = T.RandomHorizontalFlip(prob=0.0)(make_sample(), rng())
    assert np.array_equal(out.image, img0)


# ----------------------------------------------------------------------------- photometric
def test_random_distort_changes_colours_only():
    t = T.RandomDistort(brightness_prob=1, contrast_prob=1, saturation_prob=1, hue_prob=1, sharpness_prob=1)
    s = make_sample()
    lab0 = s.get("label").copy()
    out = t(s, rng(1))
    assert out.image.shape == (40, 60, 3) and out.image.dtype == np.float32
    assert out.image.min() >= 0 and out.image.max() <= 255
    assert np.array_equal(out.get("label"), lab0)
    assert not np.array_equal(out.image, make_sample().image.astype(np.uint8).astype(np.float32))


def test_random_distort_probability_zero_only_truncates():
    t = T.RandomDistort(brightness_prob=0, contrast_prob=0, saturation_prob=0, hue_prob=0)
    s = make_sample()
    expect = s.image.astype(np.uint8).astype(np.float32)
    assert np.array_equal(t(s, rng()).image, expect)


def test_random_blur_rule_and_kernel():
    always = T.RandomBlur(prob=1.0)
    s = make_sample()
    before = s.image.copy()
    assert not np.array_equal(always(s, rng()).image, before)
    never = T.RandomBlur(prob=0.0)
    assert np.array_equal(never(make_sample(), rng()).image, before)
    # prob 0.3 -> blurred when integers(0, 3) == 0, i.e. about a third of the seeds
    t = T.RandomBlur(prob=0.3, blur_type="random")
    hits = sum(not np.array_equal(t(make_sample(), rng(i)).image, before) for i in range(90))
    assert 15 <= hits <= 45


class _Draws:
    """A generator stand-in: integers/random return the given values in order."""

    def __init__(self, *values):
        self.values = list(values)

    def integers(self, low, high=None):
        return self.values.pop(0)

    def random(self):
        return self.values.pop(0)


@pytest.mark.parametrize(("u", "kind"), [(0.0, "gaussian"), (0.29, "gaussian"), (0.3, "median"),
                                         (0.59, "median"), (0.6, "blur"), (0.99, "blur")])
def test_random_blur_random_kind_is_paddlesegs_0_3_0_3_0_4(u, kind):
    import cv2

    s = make_sample(with_label=False)
    u8 = s.image.astype(np.uint8)
    out = T.RandomBlur(prob=1.0, blur_type="random")(s, _Draws(0, 5, u)).image
    want = {"gaussian": cv2.GaussianBlur(u8, (5, 5), 0, 0), "median": cv2.medianBlur(u8, 5),
            "blur": cv2.blur(u8, (5, 5))}[kind]
    assert np.array_equal(out, want.astype(np.float32))


# ----------------------------------------------------------------------------- rotation
def test_random_rotation_warps_int64_labels_as_uint8():
    """OpenCV 5 breaks nearest-neighbour ties differently for 32-bit masks; PaddleSeg warps uint8."""
    import cv2

    for seed in (9, 39):  # angles with exact ties under OpenCV 5 (1 and 20 pixels differ as int32)
        s = make_sample(23, 31)
        lab = s.get("label").copy()
        lab[::7] = 255
        s.set("label", Kind.MASK, lab)
        out = T.RandomRotation(max_rotation=30)(s, rng(seed))
        m = np.asarray(out.ops[-1].matrix)
        want = cv2.warpAffine(lab.astype(np.uint8), m, out.image.shape[1::-1], flags=cv2.INTER_NEAREST,
                              borderMode=cv2.BORDER_CONSTANT, borderValue=255)
        assert out.get("label").dtype == np.int64
        assert np.array_equal(out.get("label"), want.astype(np.int64))


def test_random_rotation_enlarges_canvas_and_pads():
    s = make_sample(40, 60)
    out = T.RandomRotation(max_rotation=30)(s, rng(5))
    h, w = out.image.shape[:2]
    assert out.get("label").shape == (h, w)
    assert h >= 40 and w >= 40 and (h > 40 or w > 60)
    assert out.get("label")[0, 0] == 255 and np.allclose(out.image[0, 0], 127.5)
    assert set(np.unique(out.get("label"))) <= set(range(5)) | {255}


def test_random_scale_aspect_keeps_size():
    out = T.RandomScaleAspect(min_scale=0.5, aspect_ratio=0.5)(make_sample(), rng(2))
    assert out.image.shape == (40, 60, 3) and out.get("label").shape == (40, 60)


# ----------------------------------------------------------------------------- determinism
def train_pipeline() -> T.Compose:
    return T.Compose(
        [
            T.ResizeStepScaling(min_scale_factor=0.5, max_scale_factor=2.0, scale_step_size=0.25),
            T.RandomRotation(max_rotation=15),
            T.RandomPaddingCrop(crop_size=(32, 24)),
            T.RandomHorizontalFlip(),
            T.RandomDistort(),
            T.RandomBlur(prob=0.3),
        ]
    )


def test_same_seed_same_output_different_seed_different():
    p = train_pipeline()
    a = p(make_sample(), rng(7))
    b = p(make_sample(), rng(7))
    c = p(make_sample(), rng(8))
    assert np.array_equal(a.image, b.image) and np.array_equal(a.get("label"), b.get("label"))
    assert a.image.shape == (24, 32, 3) and c.image.shape == (24, 32, 3)
    assert not np.array_equal(a.image, c.image)


def test_global_numpy_state_is_not_used():
    p = train_pipeline()
    np.random.seed(0)
    a = p(make_sample(), rng(11))
    np.random.seed(123)
    b = p(make_sample(), rng(11))
    assert np.array_equal(a.image, b.image)


# ----------------------------------------------------------------------------- validation
@pytest.mark.parametrize(
    "cls, kwargs, arg",
    [
        (T.Resize, {"target_size": (0, 10)}, "target_size"),
        (T.Resize, {"interp": "BICUBIC"}, "interp"),
        (T.Resize, {"size_divisor": 0}, "size_divisor"),
        (T.ResizeStepScaling, {"min_scale_factor": 2.0, "max_scale_factor": 1.0}, "max_scale_factor"),
        (T.ResizeStepScaling, {"scale_step_size": -1}, "scale_step_size"),
        (T.RandomPaddingCrop, {"crop_size": [1, 2, 3]}, "crop_size"),
        (T.RandomHorizontalFlip, {"prob": 1.5}, "prob"),
        (T.RandomDistort, {"hue_prob": -0.1}, "hue_prob"),
        (T.RandomBlur, {"blur_type": "box"}, "blur_type"),
        (T.RandomRotation, {"max_rotation": -3}, "max_rotation"),
    ],
)
def test_bad_arguments_raise_config_error_naming_the_argument(cls, kwargs, arg):
    with pytest.raises(ConfigError, match=arg):
        cls(**kwargs)


def test_keyword_only_and_registry():
    with pytest.raises(TypeError):
        T.Resize((10, 10))  # type: ignore[misc]
    assert T.TRANSFORMS["RandomPaddingCrop"] is T.RandomPaddingCrop
    assert "Normalize" not in T.TRANSFORMS
    comp = T.build_transforms([{"type": "Resize", "target_size": [8, 6]}, {"type": "RandomHorizontalFlip"}])
    out = comp(make_sample(), rng())
    assert out.image.shape == (6, 8, 3)
    with pytest.raises(ConfigError, match="unknown type .Nope."):
        T.build_transforms([{"type": "Nope"}])
    with pytest.raises(ConfigError, match="Normalize"):
        T.build_transforms([{"type": "Normalize"}])
    with pytest.raises(ConfigError, match=r"^transforms\[0\]\.bogus: unknown key"):
        T.build_transforms([{"type": "Resize", "bogus": 1}])
    with pytest.raises(ConfigError, match=r"^model.json: resize\[0\]\.target_size: expected"):
        T.build_transforms([{"type": "Resize", "target_size": "big"}], key="resize", source="model.json")
