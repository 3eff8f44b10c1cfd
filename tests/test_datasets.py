"""Tests for ppseg.data datasets, IO and palettes (synthetic data in tmp_path)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from ppseg.data import (
    CAMVID_CLASSES,
    CAMVID_PALETTE,
    DATASETS,
    ADE20KDataset,
    CityscapesDataset,
    FileListDataset,
    FolderDataset,
    PaddleDataset,
    RandomHorizontalFlip,
    RandomPaddingCrop,
    Resize,
    ResizeStepScaling,
    colorize,
    default_palette,
    overlay,
    read_image,
    read_label,
    write_png_atomic,
)
from ppseg.errors import ConfigError, DataError

SHARED = Path(__file__).resolve().parents[2] / "shared"
from ppseg.data.sample import Resize as ResizeOp
from ppseg.semantic.task import collate


def label_of(sample):
    """The label a dataset gives: transformed with the image (train) or at the original size (val)."""
    if "label" in sample.targets:
        return sample.get("label")
    return sample.original["label"].data if "label" in sample.original else None


def write_pair(root: Path, stem: str, h: int = 24, w: int = 32, max_label: int = 3, seed: int = 0):
    g = np.random.default_rng(seed)
    img = g.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
    lab = g.integers(0, max_label + 1, size=(h, w)).astype(np.uint8)
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "labels").mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(root / "images" / f"{stem}.png"), img[..., ::-1])  # stored BGR -> RGB on read
    Image.fromarray(lab).save(root / "labels" / f"{stem}.png")
    return img, lab


def make_list_dataset(root: Path, n: int = 3, max_label: int = 3) -> Path:
    lines = []
    for i in range(n):
        write_pair(root, f"s{i}", max_label=max_label, seed=i)
        lines.append(f"images/s{i}.png labels/s{i}.png")
    (root / "train.txt").write_text("\n".join(lines) + "\n")
    return root / "train.txt"


# ----------------------------------------------------------------------------- io
def test_read_image_rgb_gray_rgba_and_unicode(tmp_path):
    rgb = np.zeros((4, 5, 3), np.uint8)
    rgb[..., 0] = 200  # red
    path = tmp_path / "ünï code.png"
    Image.fromarray(rgb).save(path)
    out = read_image(path)
    assert out.shape == (4, 5, 3) and out.dtype == np.uint8 and out[0, 0].tolist() == [200, 0, 0]
    Image.fromarray(np.full((4, 5), 7, np.uint8)).save(tmp_path / "g.png")
    assert read_image(tmp_path / "g.png").shape == (4, 5, 3)
    Image.fromarray(np.full((4, 5, 4), 9, np.uint8)).save(tmp_path / "a.png")
    assert read_image(tmp_path / "a.png").shape == (4, 5, 3)


def test_read_errors_name_the_file(tmp_path):
    bad = tmp_path / "x.jpg"
    bad.write_bytes(b"not an image at all")
    with pytest.raises(DataError, match=r"cannot read image '.*x\.jpg': not a decodable image file"):
        read_image(bad)
    with pytest.raises(DataError, match="missing.png"):
        read_image(tmp_path / "missing.png")
    with pytest.raises(DataError, match="x.jpg"):
        read_label(bad)


def test_read_label_palette_and_rgb(tmp_path):
    lab = np.array([[0, 1], [2, 1]], np.uint8)
    write_png_atomic(tmp_path / "p.png", lab, palette=default_palette(256))
    assert Image.open(tmp_path / "p.png").mode == "P"
    assert np.array_equal(read_label(tmp_path / "p.png"), lab)
    colour = np.zeros((2, 2, 3), np.uint8)
    colour[0, 0] = (128, 64, 128)
    Image.fromarray(colour).save(tmp_path / "rgb.png")
    with pytest.raises(DataError, match="rgb.png.*convert"):
        read_label(tmp_path / "rgb.png")
    assert read_label(tmp_path / "rgb.png", allow_rgb=True).shape == (2, 2, 3)
    Image.fromarray(np.repeat(lab[..., None], 3, axis=2)).save(tmp_path / "grey3.png")
    assert np.array_equal(read_label(tmp_path / "grey3.png"), lab)


def test_write_png_atomic_leaves_no_temp(tmp_path):
    write_png_atomic(tmp_path / "sub" / "o.png", np.arange(6).reshape(2, 3))
    assert [p.name for p in (tmp_path / "sub").iterdir()] == ["o.png"]
    assert np.array_equal(read_label(tmp_path / "sub" / "o.png"), np.arange(6).reshape(2, 3))


def test_palette_colorize_overlay():
    pal = default_palette(4)
    assert pal.tolist() == [[0, 0, 0], [128, 0, 0], [0, 128, 0], [128, 128, 0]]
    assert len(CAMVID_CLASSES) == 11 and CAMVID_PALETTE[4].tolist() == [60, 40, 222]
    lab = np.array([[1, 255], [3, 2]])
    col = colorize(lab, pal)
    assert col[0, 0].tolist() == [128, 0, 0] and col[0, 1].tolist() == [0, 0, 0]
    img = np.full((2, 2, 3), 100, np.uint8)
    ov = overlay(img, lab, pal, alpha=0.5)
    assert ov[0, 0].tolist() == [114, 50, 50] and ov[0, 1].tolist() == [100, 100, 100]


# ----------------------------------------------------------------------------- datasets
def test_file_list_dataset_train_sample(tmp_path):
    make_list_dataset(tmp_path)
    ds = FileListDataset(dataset_root=str(tmp_path), file_list="train.txt", num_classes=4)
    assert len(ds) == 3 and ds.class_names[0] == "class_0" and ds.palette.shape == (4, 3)
    s = ds[0]
    assert s.image.shape == (3, 24, 32) and s.image.dtype == np.float32 and s.image.flags.c_contiguous
    assert label_of(s).dtype == np.int64 and label_of(s).shape == (24, 32)
    img, lab = write_pair(tmp_path / "ref", "r", seed=0)
    assert np.array_equal(s.image, img.transpose(2, 0, 1).astype(np.float32))
    assert np.array_equal(label_of(s), lab)
    assert s.meta["index"] == 0 and s.meta["img_path"].endswith("s0.png") and s.ops == []


def test_seeded_items_are_reproducible(tmp_path):
    make_list_dataset(tmp_path)
    tr = [ResizeStepScaling(min_scale_factor=0.5, max_scale_factor=1.5), RandomPaddingCrop(crop_size=(16, 16)),
          RandomHorizontalFlip()]  # fmt: skip
    ds = FileListDataset(dataset_root=str(tmp_path), file_list="train.txt", num_classes=4, transforms=tr)
    a, b = ds[(1, 42)], ds[(1, 42)]
    assert np.array_equal(a.image, b.image) and np.array_equal(label_of(a), label_of(b))
    assert np.array_equal(ds[1].image, ds[(1, 1)].image)  # bare index -> seed = index
    outs = [ds[(1, s)].image for s in range(6)]
    assert any(not np.array_equal(outs[0], o) for o in outs[1:])
    batch = collate([ds[(0, 1)], ds[(2, 5)]])
    assert batch["img"].shape == (2, 3, 16, 16) and batch["img"].dtype == torch.float32
    assert batch["label"].shape == (2, 16, 16) and batch["label"].dtype == torch.int64
    assert batch["index"] == [0, 2]


def test_ignore_index_is_remapped_to_255(tmp_path):
    make_list_dataset(tmp_path, max_label=11)
    ds = FileListDataset(dataset_root=str(tmp_path), file_list="train.txt", num_classes=11, ignore_index=11)
    raw = read_label(tmp_path / "labels" / "s0.png")
    lab = label_of(ds[0])
    assert (raw == 11).any()
    assert np.array_equal(lab == 255, raw == 11) and np.array_equal(lab[raw != 11], raw[raw != 11])


def test_out_of_range_label_values_raise_naming_file(tmp_path):
    make_list_dataset(tmp_path, max_label=7)
    ds = FileListDataset(dataset_root=str(tmp_path), file_list="train.txt", num_classes=4)
    with pytest.raises(DataError, match=r"s0\.png.*4, 5, 6, 7"):
        ds[0]


def test_val_mode_keeps_original_label(tmp_path):
    make_list_dataset(tmp_path)
    ds = FileListDataset(dataset_root=str(tmp_path), file_list="train.txt", num_classes=4, mode="val",
                         transforms=[Resize(target_size=(16, 8))])  # fmt: skip
    s = ds[0]
    assert s.image.shape == (3, 8, 16) and label_of(s).shape == (24, 32)
    assert s.ops == [ResizeOp((24, 32), (8, 16))]
    batch = collate([s])
    assert batch["label"].shape == (1, 24, 32) and batch["ops"] == [[ResizeOp((24, 32), (8, 16))]]


def test_missing_file_in_list_names_list_line_and_path(tmp_path):
    make_list_dataset(tmp_path)
    with open(tmp_path / "train.txt", "a") as fh:
        fh.write("images/nope.png labels/nope.png\n")
    with pytest.raises(DataError, match=r"train\.txt:4: image '.*nope\.png' does not exist"):
        FileListDataset(dataset_root=str(tmp_path), file_list="train.txt", num_classes=4)


def test_image_only_lines(tmp_path):
    make_list_dataset(tmp_path)
    (tmp_path / "test.txt").write_text("images/s0.png\nimages/s1.png\n")
    ds = FileListDataset(dataset_root=str(tmp_path), file_list="test.txt", num_classes=4, mode="val")
    assert label_of(ds[0]) is None and collate([ds[0]])["label"] == [None]
    with pytest.raises(DataError, match="no label"):
        FileListDataset(dataset_root=str(tmp_path), file_list="test.txt", num_classes=4, mode="train")


def test_paddle_dataset_alias(tmp_path):
    make_list_dataset(tmp_path)
    assert DATASETS["Dataset"] is PaddleDataset and DATASETS["FileListDataset"] is FileListDataset
    ds = DATASETS["Dataset"](dataset_root=str(tmp_path), train_path=str(tmp_path / "train.txt"), num_classes=4)
    assert len(ds) == 3
    with pytest.raises(ConfigError, match="val_path"):
        PaddleDataset(dataset_root=str(tmp_path), train_path="train.txt", num_classes=4, mode="val")


def test_folder_dataset(tmp_path):
    for i in range(2):
        write_pair(tmp_path, f"f{i}", seed=i)
    ds = FolderDataset(img_dir=str(tmp_path / "images"), label_dir=str(tmp_path / "labels"), num_classes=4)
    assert len(ds) == 2 and label_of(ds[1]).shape == (24, 32)
    (tmp_path / "labels" / "f1.png").unlink()
    with pytest.raises(DataError, match="stem 'f1'"):
        FolderDataset(img_dir=str(tmp_path / "images"), label_dir=str(tmp_path / "labels"), num_classes=4)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="empty"):
        FolderDataset(img_dir=str(tmp_path / "empty"), label_dir=str(tmp_path / "labels"), num_classes=4)


def test_size_mismatch_raises(tmp_path):
    write_pair(tmp_path, "m")
    Image.fromarray(np.zeros((10, 10), np.uint8)).save(tmp_path / "labels" / "m.png")
    ds = FolderDataset(img_dir=str(tmp_path / "images"), label_dir=str(tmp_path / "labels"), num_classes=4)
    with pytest.raises(DataError, match="m.png"):
        ds[0]


def test_cityscapes_and_ade20k_layouts(tmp_path):
    cs = tmp_path / "cs"
    (cs / "leftImg8bit" / "val" / "aachen").mkdir(parents=True)
    (cs / "gtFine" / "val" / "aachen").mkdir(parents=True)
    cv2.imwrite(str(cs / "leftImg8bit/val/aachen/a_000001_leftImg8bit.png"), np.zeros((8, 8, 3), np.uint8))
    Image.fromarray(np.full((8, 8), 255, np.uint8)).save(cs / "gtFine/val/aachen/a_000001_gtFine_labelTrainIds.png")
    ds = CityscapesDataset(dataset_root=str(cs), mode="val")
    assert len(ds) == 1 and ds.num_classes == 19 and ds.class_names[0] == "road"
    assert (label_of(ds[0]) == 255).all()

    ade = tmp_path / "ADEChallengeData2016"
    (ade / "images" / "training").mkdir(parents=True)
    (ade / "annotations" / "training").mkdir(parents=True)
    cv2.imwrite(str(ade / "images/training/ADE_1.jpg"), np.zeros((4, 4, 3), np.uint8))
    Image.fromarray(np.array([[0, 1, 150, 2]] * 4, np.uint8)).save(ade / "annotations/training/ADE_1.png")
    ds = ADE20KDataset(dataset_root=str(tmp_path))
    assert ds.num_classes == 150
    assert label_of(ds[0])[0].tolist() == [255, 0, 149, 1]


def test_bad_constructor_arguments(tmp_path):
    make_list_dataset(tmp_path)
    kw = {"dataset_root": str(tmp_path), "file_list": "train.txt"}
    with pytest.raises(ConfigError, match="num_classes"):
        FileListDataset(**kw, num_classes=0)
    with pytest.raises(ConfigError, match="ignore_index"):
        FileListDataset(**kw, num_classes=4, ignore_index=2)
    with pytest.raises(ConfigError, match="class_names"):
        FileListDataset(**kw, num_classes=4, class_names=["a"])
    with pytest.raises(ConfigError, match="mode"):
        FileListDataset(**kw, num_classes=4, mode="test")  # type: ignore[arg-type]


@pytest.mark.skipif(not (SHARED / "data" / "camvid" / "train.txt").is_file(), reason="shared CamVid data absent")
def test_real_camvid_file_list():
    root = SHARED / "data" / "camvid"
    ds = FileListDataset(
        dataset_root=str(root), file_list="train.txt", num_classes=11, ignore_index=11,
        class_names=CAMVID_CLASSES, palette=CAMVID_PALETTE,
        transforms=[ResizeStepScaling(min_scale_factor=0.5, max_scale_factor=2.0),
                    RandomPaddingCrop(crop_size=(480, 360)), RandomHorizontalFlip()],
    )  # fmt: skip
    assert len(ds) == 367
    s = ds[(0, 123)]
    assert s.image.shape == (3, 360, 480) and label_of(s).shape == (360, 480)
    vals = set(np.unique(label_of(s)).tolist())
    assert vals <= set(range(11)) | {255}
    val = FileListDataset(dataset_root=str(root), file_list="val.txt", num_classes=11, ignore_index=11, mode="val")
    assert len(val) == 101 and label_of(val[0]).shape == (360, 480)
