"""The sample contract (ppseg.data.sample): typed targets, recorded and invertible geometry."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from ppseg.data import transforms as T
from ppseg.data.sample import (Affine, Crop, Flip, Kind, Pad, Resize, Sample, Target, invert_array, invert_tensor,
                               map_points, op_from_dict, unmap_points)


def rich_sample(h: int = 40, w: int = 60, seed: int = 0) -> Sample:
    """An image with every target kind: a mask, an alpha matte, a second image, points and boxes."""
    g = np.random.default_rng(seed)
    s = Sample(g.uniform(0, 255, (h, w, 3)).astype(np.float32))
    s.set("label", Kind.MASK, g.integers(0, 5, (h, w)).astype(np.int64))
    s.set("trimap", Kind.MASK, np.full((h, w), 255, np.uint8), pad_value=128)
    s.set("alpha", Kind.ALPHA, g.uniform(0, 1, (h, w)).astype(np.float32))
    s.set("fg", Kind.IMAGE, g.uniform(0, 255, (h, w, 3)).astype(np.float32))
    s.set("clicks", Kind.POINTS, np.array([[5.0, 7.0, 1.0], [h - 3.0, w - 9.0, 0.0]]))
    s.set("boxes", Kind.BOXES, np.array([[2.0, 3.0, 20.0, 30.0]]))
    return s


def marked(h: int, w: int, points: list[tuple[int, int]]) -> Sample:
    """A black image with one bright pixel per point, and the points as a target."""
    img = np.zeros((h, w, 3), np.float32)
    for y, x in points:
        img[y, x] = 255
    s = Sample(img)
    s.set("pts", Kind.POINTS, np.array(points, np.float64))
    return s


def brightest(s: Sample) -> tuple[int, int]:
    y, x = np.unravel_index(np.argmax(s.image[..., 0]), s.image.shape[:2])
    return int(y), int(x)


# ----------------------------------------------------------------------------- kinds
def test_every_kind_follows_its_rule_through_resize_pad_crop_flip():
    s = rich_sample()
    s.resize((90, 50), interp=2)  # cv2.INTER_CUBIC for the image; masks nearest, alpha bilinear regardless
    assert s.image.shape == (50, 90, 3) and s.get("fg").shape == (50, 90, 3)
    assert s.get("label").dtype == np.int64 and set(np.unique(s.get("label"))) <= set(range(5))
    alpha = s.get("alpha")
    assert alpha.dtype == np.float32 and 0 <= alpha.min() and alpha.max() <= 1  # bilinear: no cubic overshoot
    s.pad(1, 3, 2, 4, image_value=127.5, mask_value=255)
    assert s.hw == (54, 96)
    assert np.all(s.image[0] == 127.5) and np.all(s.get("fg")[:, -1] == 127.5)
    assert np.all(s.get("label")[-1] == 255) and np.all(s.get("trimap")[0] == 128)  # the target's own pad value
    assert np.all(s.get("alpha")[:, :2] == 0)
    s.crop(4, 6, 30, 40)
    s.flip(1)
    assert all(t.data.shape[:2] == (30, 40) for _, t in s.rasters())
    assert [type(op) for op in s.ops] == [Resize, Pad, Crop, Flip]


def test_targets_are_validated():
    with pytest.raises(ValueError, match="points"):
        Target(Kind.POINTS, np.zeros((3,)))
    with pytest.raises(ValueError, match="boxes"):
        Target(Kind.BOXES, np.zeros((2, 3)))
    s = Sample(np.zeros((4, 5, 3), np.float32)).set("label", Kind.MASK, np.zeros((4, 6), np.int64))
    with pytest.raises(ValueError, match="label"):
        s.resize((10, 8))


@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.uint16, np.uint8, np.bool_])
def test_mask_warps_as_uint8_when_the_values_fit(dtype):
    """PaddleSeg warps its uint8 labels; OpenCV 5 breaks nearest ties differently for 32-bit ones."""
    g = np.random.default_rng(3)
    lab = g.integers(0, 2 if dtype is np.bool_ else 6, (23, 31)).astype(dtype)
    m = cv2.getRotationMatrix2D((15, 11), 17.0, 1.0)
    s = Sample(np.zeros((23, 31, 3), np.float32)).set("label", Kind.MASK, lab)
    s.warp_affine(m, (37, 33), 0, 1 if dtype is np.bool_ else 255)
    want = cv2.warpAffine(lab.astype(np.uint8), m, (37, 33), flags=cv2.INTER_NEAREST,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=1 if dtype is np.bool_ else 255)
    assert s.get("label").dtype == dtype and np.array_equal(s.get("label"), want.astype(dtype))


def test_mask_with_large_ids_still_warps_exactly():
    lab = np.arange(23 * 31, dtype=np.int64).reshape(23, 31) * 3  # ids up to 2136: no uint8
    m = cv2.getRotationMatrix2D((15, 11), 17.0, 1.0)
    s = Sample(np.zeros((23, 31, 3), np.float32)).set("label", Kind.MASK, lab)
    s.warp_affine(m, (37, 33), 0, 4000)
    want = cv2.warpAffine(lab.astype(np.int32), m, (37, 33), flags=cv2.INTER_NEAREST,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=4000)
    assert np.array_equal(s.get("label"), want.astype(np.int64))


# ----------------------------------------------------------------------------- points follow the pixels
@pytest.mark.parametrize("op", ["flip_h", "flip_v", "crop", "pad", "resize_x2", "rotate_90"])
def test_points_land_on_the_pixel_they_marked(op):
    s = marked(21, 31, [(3, 4), (17, 25)])
    for i, (y, x) in enumerate([(3, 4), (17, 25)]):
        one = marked(21, 31, [(y, x)])
        if op == "flip_h":
            one.flip(1)
        elif op == "flip_v":
            one.flip(0)
        elif op == "crop":
            one.crop(2, 3, 18, 25)
        elif op == "pad":
            one.pad(5, 0, 7, 2, 0, 255)
        elif op == "resize_x2":  # nearest keeps a single bright pixel's block; its centre is the point
            one.resize((62, 42), interp=0)
        else:
            m = np.array([[0.0, 1.0, 0.0], [-1.0, 0.0, 30.0]])  # 90 degrees: (x, y) -> (y, 30 - x)
            one.warp_affine(m, (21, 31), 0, 255, interp=0)
        got = one.get("pts")[0]
        if op == "resize_x2":
            ys, xs = np.nonzero(one.image[..., 0])
            assert got[0] == pytest.approx(ys.mean()) and got[1] == pytest.approx(xs.mean())
        else:
            assert tuple(np.round(got).astype(int)) == brightest(one) and np.allclose(got, np.round(got))
    assert s.get("pts").shape == (2, 2)


def test_map_and_unmap_are_exact_inverses_through_real_augmentations():
    aug = T.build_transforms([
        {"type": "ResizeStepScaling", "min_scale_factor": 0.5, "max_scale_factor": 2.0, "scale_step_size": 0.25},
        {"type": "RandomRotation", "max_rotation": 30},
        {"type": "RandomScaleAspect"},
        {"type": "RandomPaddingCrop", "crop_size": [48, 40]},
        {"type": "RandomHorizontalFlip"}, {"type": "RandomVerticalFlip", "prob": 0.5},
    ])
    g = np.random.default_rng(0)
    for seed in range(30):
        s = rich_sample(seed=seed)
        original = s.get("clicks").copy()
        s = aug(s, np.random.default_rng(seed))
        assert np.allclose(s.get("clicks")[:, 2], original[:, 2])  # extra columns (the click's sign) ride along
        assert np.allclose(map_points(s.ops, original), s.get("clicks"), atol=1e-9)
        back = unmap_points(s.ops, s.get("clicks"))
        assert np.allclose(back, original, atol=1e-9)
        anywhere = g.uniform(-5, 50, (7, 2))
        assert np.allclose(unmap_points(s.ops, map_points(s.ops, anywhere)), anywhere, atol=1e-8)


def test_boxes_stay_ordered_after_flips():
    s = Sample(np.zeros((20, 30, 3), np.float32)).set("b", Kind.BOXES, np.array([[2.0, 3.0, 10.0, 15.0, 7.0]]))
    s.flip(1).flip(0)
    assert np.allclose(s.get("b"), [[20.0, 5.0, 28.0, 17.0, 7.0]])  # continuous edges mirrored, label kept


# ----------------------------------------------------------------------------- inversion
def test_invert_brings_arrays_and_logits_back_to_the_original_canvas():
    s = rich_sample(37, 53)
    mask0 = s.get("label").copy()
    s.flip(1).pad(2, 5, 3, 1, 0, 255).crop(1, 2, 40, 50)
    back = invert_array(s.ops, s.get("label"), Kind.MASK, fill=255)
    assert back.shape == mask0.shape
    kept = back != 255
    assert kept.mean() > 0.8 and np.array_equal(back[kept], mask0[kept])  # the crop lost a border, nothing else
    t = torch.from_numpy(s.get("label").astype(np.float32))[None, None]
    tb = invert_tensor(s.ops, t, fill=-1.0)[0, 0].numpy()
    assert np.array_equal(tb == -1, ~kept) and np.array_equal(tb[kept], mask0[kept].astype(np.float32))


def test_invert_resize_is_the_bilinear_inverse_and_vim_style_records_only_resizes():
    s = Sample(np.zeros((30, 40, 3), np.float32))
    T.Resize(target_size=(64, 48))(s, np.random.default_rng(0))
    logits = torch.randn(1, 4, 48, 64)
    want = torch.nn.functional.interpolate(logits, size=(30, 40), mode="bilinear", align_corners=False)
    assert torch.equal(invert_tensor(s.ops, logits), want)


def test_invert_affine_tensor_matches_opencv_inverse_warp():
    s = Sample(np.random.default_rng(0).uniform(0, 1, (24, 32, 3)).astype(np.float32))
    T.RandomRotation(max_rotation=20)(s, np.random.default_rng(3))
    op = s.ops[0]
    assert isinstance(op, Affine)
    rot = s.image[..., 0]
    back_np = invert_array(s.ops, rot, Kind.ALPHA)
    back_t = invert_tensor(s.ops, torch.from_numpy(rot)[None, None])[0, 0].numpy()
    inner = np.zeros_like(back_np, bool)
    inner[3:-3, 3:-3] = True  # OpenCV and grid_sample differ only in border handling
    assert np.abs(back_np - back_t)[inner].max() < 1e-3


def test_ops_round_trip_through_dicts():
    s = rich_sample()
    T.RandomRotation(max_rotation=10)(s, np.random.default_rng(1))
    s.resize((30, 20)).pad(0, 2, 1, 0, 0, 255).crop(1, 1, 10, 12).flip(0)
    again = [op_from_dict(op.to_dict()) for op in s.ops]
    assert again == s.ops
    with pytest.raises(ValueError, match="unknown geometric op"):
        op_from_dict({"op": "Shear"})


def test_describe_and_read_transforms_versions():
    desc = T.describe_transforms([{"type": "Resize", "target_size": [8, 8]}])
    assert desc["version"] == T.TRANSFORMS_FORMAT_VERSION
    assert T.read_transforms(desc, "w.pt") == desc["transforms"]
    assert T.read_transforms([{"type": "Resize"}], "old.pt") == [{"type": "Resize"}]  # before versioning
    with pytest.raises(Exception, match="newer ppseg"):
        T.read_transforms({"version": 99, "transforms": []}, "w.pt")
    with pytest.raises(Exception, match=r"transforms\[0\]"):
        T.read_transforms({"version": 1, "transforms": [3]}, "w.pt")
