"""Tests for ppseg.data.check (check-data logic) on deliberately broken synthetic data."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from ppseg.data import FileListDataset, check_dataset, discover, write_png_atomic
from ppseg.data.check import DatasetSpec
from ppseg.errors import DataError

SHARED = Path(__file__).resolve().parents[2] / "shared"


def make_clean(root: Path, n: int = 4, h: int = 12, w: int = 16, split: str = "") -> None:
    """images/<split>/iK.jpg + labels/<split>/iK.png with values 0..2, and a train.txt-free layout."""
    g = np.random.default_rng(0)
    for sub in ("images", "labels"):
        (root / sub / split).mkdir(parents=True, exist_ok=True)
    for i in range(n):
        cv2.imwrite(str(root / "images" / split / f"i{i}.jpg"), g.integers(0, 256, (h, w, 3), dtype=np.uint8))
        lab = np.zeros((h, w), np.uint8)
        lab[:, w // 3 :] = 1
        lab[:, 2 * w // 3 :] = 2
        Image.fromarray(lab).save(root / "labels" / split / f"i{i}.png")


def write_list(root: Path, name: str = "train.txt", n: int = 4) -> None:
    (root / name).write_text("".join(f"images/i{i}.jpg labels/i{i}.png\n" for i in range(n)))


def kinds(report) -> set[str]:
    return {p.kind for p in report.problems}


def test_clean_dataset_passes(tmp_path):
    make_clean(tmp_path)
    write_list(tmp_path)
    ds = FileListDataset(dataset_root=str(tmp_path), file_list="train.txt", num_classes=3, class_names=["a", "b", "c"])
    rep = check_dataset(ds)
    assert rep.ok and rep.problems == [] and rep.num_samples == 4
    assert rep.images_ok == 4 and rep.labels_ok == 4
    assert sum(rep.class_pixels) == 4 * 12 * 16 and all(c > 0 for c in rep.class_pixels)
    text = rep.format()
    assert "samples" in text and " b " in text and "%" in text and "nothing to fix" in text


def test_discover_file_lists_and_folders(tmp_path):
    make_clean(tmp_path)
    write_list(tmp_path)
    write_list(tmp_path, "val.txt", n=2)
    specs = discover(str(tmp_path))
    assert [s.kind for s in specs] == ["FileListDataset", "FileListDataset"]
    assert [s.kwargs["mode"] for s in specs] == ["train", "val"]
    rep = check_dataset(specs[0], num_workers=2)
    assert rep.ok and rep.num_classes == 3 and rep.num_classes_inferred

    split_root = tmp_path / "folders"
    make_clean(split_root, split="train")
    make_clean(split_root, n=2, split="val")
    specs = discover(str(split_root))
    found = [(s.kind, Path(s.kwargs["img_dir"]).name) for s in specs]
    assert found == [("FolderDataset", "train"), ("FolderDataset", "val")]
    assert check_dataset(specs[1]).num_samples == 2
    with pytest.raises(DataError, match="no dataset found"):
        discover(str(tmp_path / "images"))


def test_each_kind_of_broken_file_is_found(tmp_path):
    make_clean(tmp_path, n=8)
    root = tmp_path
    # 0: missing image, 1: missing label
    (root / "images" / "i0.jpg").unlink()
    (root / "labels" / "i1.png").unlink()
    # 2: unreadable image, 3: unreadable label
    (root / "images" / "i2.jpg").write_bytes(b"garbage")
    (root / "labels" / "i3.png").write_bytes(b"garbage")
    # 4: label of another size
    Image.fromarray(np.zeros((5, 5), np.uint8)).save(root / "labels" / "i4.png")
    # 5: value 9 outside [0, 3)
    lab = np.zeros((12, 16), np.uint8)
    lab[0, 0] = 9
    Image.fromarray(lab).save(root / "labels" / "i5.png")
    # 6: RGB colour label
    col = np.zeros((12, 16, 3), np.uint8)
    col[:, :8] = (128, 64, 128)
    Image.fromarray(col).save(root / "labels" / "i6.png")
    # 7: grayscale image (warning) with a palette label (fine)
    cv2.imwrite(str(root / "images" / "i7.jpg"), np.zeros((12, 16), np.uint8))
    write_png_atomic(root / "labels" / "i7.png", np.ones((12, 16), np.uint8), palette=np.eye(3, dtype=np.uint8) * 255)
    write_list(root, n=8)

    kwargs = {"dataset_root": str(root), "file_list": "train.txt", "num_classes": 3}
    spec = DatasetSpec("broken", "FileListDataset", kwargs)
    rep = check_dataset(spec, num_workers=2)
    assert not rep.ok
    by_kind = {p.kind: p for p in rep.problems}
    expected = {
        "missing_image": "i0.jpg", "missing_label": "i1.png", "unreadable_image": "i2.jpg",
        "unreadable_label": "i3.png", "size_mismatch": "i4.png", "bad_values": "i5.png",
        "rgb_label": "i6.png", "not_rgb_image": "i7.jpg",
    }  # fmt: skip
    for kind, name in expected.items():
        assert kind in by_kind, kind
        assert by_kind[kind].path.endswith(name)
    assert by_kind["not_rgb_image"].severity == "warning"
    assert "9" in by_kind["bad_values"].detail
    assert rep.palette_labels == 1 and rep.invalid_pixels == 1
    text = rep.format()
    assert "FAILED" in text and "i6.png" in text and "Suggested fix" in text
    assert "missing" in rep.suggestion


def test_binary_0_255_masks(tmp_path):
    make_clean(tmp_path, n=2)
    for i in range(2):
        m = np.zeros((12, 16), np.uint8)
        m[3:9, 4:12] = 255
        Image.fromarray(m).save(tmp_path / "labels" / f"i{i}.png")
    spec = discover(str(tmp_path))[0]
    assert spec.kind == "FolderDataset"
    rep = check_dataset(spec)
    assert not rep.ok and "binary_0_255" in kinds(rep)
    assert "divide" in rep.suggestion and "255" in rep.suggestion and "num_classes: 2" in rep.suggestion


def test_single_bad_value_suggests_ignore_index(tmp_path):
    make_clean(tmp_path, n=2)
    lab = np.full((12, 16), 11, np.uint8)
    lab[:, :4] = 0
    Image.fromarray(lab).save(tmp_path / "labels" / "i1.png")
    write_list(tmp_path, n=2)
    ds = FileListDataset(dataset_root=str(tmp_path), file_list="train.txt", num_classes=3)
    rep = check_dataset(ds)
    assert not rep.ok and kinds(rep) == {"bad_values"}
    assert "ignore_index: 11" in rep.suggestion


def test_broken_list_is_reported_not_raised(tmp_path):
    make_clean(tmp_path, n=1)
    (tmp_path / "train.txt").write_text("a b c\n")
    rep = check_dataset(discover(str(tmp_path))[0])
    assert not rep.ok and kinds(rep) == {"dataset"} and "train.txt:1" in rep.problems[0].detail


@pytest.mark.skipif(not (SHARED / "data" / "camvid" / "val.txt").is_file(), reason="shared CamVid data absent")
def test_real_camvid_val_is_clean():
    root = SHARED / "data" / "camvid"
    ds = FileListDataset(dataset_root=str(root), file_list="val.txt", num_classes=11, ignore_index=11, mode="val")
    rep = check_dataset(ds, num_workers=2)
    assert rep.ok and rep.num_samples == 101 and rep.ignore_pixels > 0
