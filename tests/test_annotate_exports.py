"""Tests for ppseg.apps.annotate.exports: the six export formats, the polygon helpers, staging."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml
from PIL import Image

from ppseg.apps.annotate import exports
from ppseg.apps.annotate.exports import (FORMATS, export_annotations, has_holes, mask_to_polygons,
                                         polygons_to_mask)
from ppseg.apps.annotate.records import AnnotatedObject, ImageRecord, Label, label_map
from ppseg.data.io import read_image
from ppseg.errors import PPSegError

H, W = 48, 64
LABELS = [Label(1, "cat", (255, 0, 0)), Label(3, "dog", (0, 0, 255))]  # ids not contiguous


def _masks() -> dict[str, np.ndarray]:
    holed = np.zeros((H, W), bool)
    holed[5:25, 5:30] = True
    holed[10:15, 12:18] = False  # a hole
    two = np.zeros((H, W), bool)
    two[30:40, 5:15] = True
    two[30:44, 40:60] = True  # a second part
    over = np.zeros((H, W), bool)
    over[20:28, 25:35] = True  # painted over holed's corner
    ell = np.zeros((H, W), np.uint8)
    cv2.ellipse(ell, (32, 24), (20, 12), 15, 0, 360, 1, -1)
    return {"holed": holed, "two": two, "over": over, "ellipse": ell.astype(bool)}


def _project(root: Path) -> tuple[list[ImageRecord], dict[str, np.ndarray]]:
    rng = np.random.default_rng(0)
    src = root / "input"
    (src / "sub").mkdir(parents=True)
    pix = {}
    for key in ("a.png", "sub/b.jpg", "c.png", "d.png"):
        img = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
        Image.fromarray(img).save(src / key)
        pix[key] = img
    m = _masks()
    a = ImageRecord("a.png", src / "a.png", W, H, [AnnotatedObject.from_mask(1, 1, m["holed"]),
                                                   AnnotatedObject.from_mask(2, 3, m["two"]),
                                                   AnnotatedObject.from_mask(3, 3, m["over"])], "done")
    b = ImageRecord("sub/b.jpg", src / "sub" / "b.jpg", W, H, [AnnotatedObject.from_mask(7, 1, m["ellipse"])])
    c = ImageRecord("c.png", src / "c.png", W, H, [], "empty")
    d = ImageRecord("d.png", src / "d.png", W, H, [], "")  # never touched: skipped
    return [a, b, c, d], pix


def _read(rec: ImageRecord) -> np.ndarray:
    return read_image(rec.path)


def _visible() -> dict[tuple[str, int], np.ndarray]:
    """The visible mask per (image key, object id): later objects cover earlier ones."""
    m = _masks()
    return {("a.png", 1): m["holed"] & ~m["over"], ("a.png", 2): m["two"], ("a.png", 3): m["over"],
            ("sub/b.jpg", 7): m["ellipse"]}


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max(1, (a | b).sum()))


def _fill(points_list) -> np.ndarray:
    """Rasterise polygons in continuous coordinates (pixel (x, y) = [x, x+1) x [y, y+1)) at the
    pixel centres, even-odd, as COCO tools do."""
    py, px = np.mgrid[0:H, 0:W] + 0.5
    inside = np.zeros((H, W), bool)
    for poly in points_list:
        p = np.asarray(poly, float)
        for (x1, y1), (x2, y2) in zip(p, np.roll(p, -1, axis=0)):
            if y1 == y2:
                continue
            cross = (y1 > py) != (y2 > py)
            inside ^= cross & (px < x1 + (py - y1) * (x2 - x1) / (y2 - y1))
    return inside


@pytest.fixture()
def project(tmp_path):
    records, pix = _project(tmp_path)
    return records, pix, tmp_path / "out" / "exports"


# --------------------------------------------------------------------------- polygons
def test_polygon_helpers_round_trip():
    m = _masks()
    for name, mask in m.items():
        exact = mask_to_polygons(mask, epsilon=0)
        assert all(p.dtype == np.int32 and p.ndim == 2 and p.shape[1] == 2 for p in exact)
        assert np.array_equal(polygons_to_mask(exact, H, W), mask), name
        canvas = np.zeros((H, W), np.uint8)
        cv2.fillPoly(canvas, mask_to_polygons(mask), 1)  # the default simplification, straight into OpenCV
        assert _iou(canvas.astype(bool), mask) > 0.97, name
    assert len(mask_to_polygons(m["holed"])) == 2 and has_holes(m["holed"])
    assert len(mask_to_polygons(m["two"])) == 2 and not has_holes(m["two"])
    rect = mask_to_polygons(m["over"])
    assert len(rect) == 1 and sorted(map(tuple, rect[0].tolist())) == [(25, 20), (25, 27), (34, 20), (34, 27)]
    rng = np.random.default_rng(5)
    for _ in range(20):  # noise with holes, islands in holes, one-pixel parts
        noise = rng.random((20, 30)) < 0.6
        assert np.array_equal(polygons_to_mask(mask_to_polygons(noise, 0), 20, 30), noise)
    assert mask_to_polygons(np.zeros((4, 4), bool)) == [] and not has_holes(np.zeros((4, 4)))
    with pytest.raises(PPSegError, match="polygon 1"):
        polygons_to_mask([[[0, 0], [3, 0], [3, 3]], [[1, 2, 3]]], 5, 5)
    with pytest.raises(PPSegError, match="polygon 0: coordinates"):
        polygons_to_mask([[[0, 0], [float("nan"), 0], [3, 3]]], 5, 5)


def test_edge_polygons_trace_pixel_edges():
    one = np.zeros((5, 5), bool)
    one[2, 3] = True
    outers, holes = exports._edge_polygons(one)
    assert holes == [] and sorted(map(tuple, outers[0].tolist())) == [(3, 2), (3, 3), (4, 2), (4, 3)]
    ring = np.ones((5, 5), bool)
    ring[2, 2] = False
    outers, holes = exports._edge_polygons(ring)
    assert sorted(map(tuple, outers[0].tolist())) == [(0, 0), (0, 5), (5, 0), (5, 5)]
    assert sorted(map(tuple, holes[0].tolist())) == [(2, 2), (2, 3), (3, 2), (3, 3)]


# --------------------------------------------------------------------------- paddleseg
def test_paddleseg_export(project):
    from ppseg.cli import main

    records, pix, exp = project
    out = exp / "paddleseg"
    res = export_annotations("paddleseg", records, LABELS, out, _read, seed=1)
    assert res.format == "paddleseg" and res.path == out
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert files == ["config.yml", "images/a.png", "images/c.png", "images/sub__b.jpg", "label_ids.json",
                     "labels.txt", "labels/a.png", "labels/c.png", "labels/sub__b.png", "train.txt", "val.txt"]
    assert res.files == len(files)
    assert any("skipped 1 of 4" in w for w in res.warnings)
    assert any("renumbered" in w for w in res.warnings)
    # original bytes kept
    assert (out / "images" / "sub__b.jpg").read_bytes() == records[1].path.read_bytes()
    assert (out / "images" / "a.png").read_bytes() == records[0].path.read_bytes()
    # label maps: 0 background, label 1 -> 1, label 3 -> 2
    lab_a = np.asarray(Image.open(out / "labels" / "a.png"))
    assert Image.open(out / "labels" / "a.png").mode == "L"
    expect = label_map(records[0])
    expect[expect == 3] = 2
    assert np.array_equal(lab_a, expect) and set(np.unique(lab_a)) == {0, 1, 2}
    assert not np.asarray(Image.open(out / "labels" / "c.png")).any()
    assert (out / "labels.txt").read_text() == "background\ncat\ndog\n"
    ids = json.loads((out / "label_ids.json").read_text())
    assert not ids["contiguous"]
    assert [(c["index"], c["name"], c["label_id"]) for c in ids["classes"]] == [(0, "background", 0), (1, "cat", 1),
                                                                               (2, "dog", 3)]
    train = (out / "train.txt").read_text().splitlines()
    val = (out / "val.txt").read_text().splitlines()
    assert len(train) == 2 and len(val) == 1 and not set(train) & set(val)
    assert sorted(train + val) == ["images/a.png labels/a.png", "images/c.png labels/c.png",
                                   "images/sub__b.jpg labels/sub__b.png"]
    # the split is a function of the seed
    again = export_annotations("paddleseg", records, LABELS, exp / "again", _read, seed=1)
    assert (again.path / "val.txt").read_text() == (out / "val.txt").read_text()
    cfg = yaml.safe_load((out / "config.yml").read_text())
    assert cfg["train_dataset"]["num_classes"] == 3
    assert cfg["train_dataset"]["class_names"] == ["background", "cat", "dog"]
    assert cfg["train_dataset"]["dataset_root"] == str(out.resolve())
    assert not Path(cfg["train"]["save_dir"]).is_relative_to(out.resolve())
    # ppseg check-data accepts the folder and the config
    assert main(["check-data", str(out), "--num-workers", "0"]) == 0
    assert main(["check-data", str(out / "config.yml"), "--num-workers", "0"]) == 0


def test_paddleseg_one_image_and_contiguous_ids(project):
    records, _, exp = project
    labels = [Label(1, "cat", (255, 0, 0)), Label(2, "dog", (0, 0, 255))]
    rec = records[1]  # one object, label 1
    res = export_annotations("paddleseg", [rec], labels, exp / "one", _read)
    out = res.path
    assert (out / "train.txt").read_text() == (out / "val.txt").read_text() == "images/sub__b.jpg labels/sub__b.png\n"
    assert any("only one image" in w for w in res.warnings)
    assert not any("renumbered" in w for w in res.warnings)
    assert json.loads((out / "label_ids.json").read_text())["contiguous"]
    assert yaml.safe_load((out / "config.yml").read_text())["batch_size"] == 1  # one training image


def test_paddleseg_export_trains(project, tmp_path):
    from ppseg.cli import main

    records, _, exp = project
    out = export_annotations("paddleseg", records, LABELS, exp / "paddleseg", _read).path
    cfg = yaml.safe_load((out / "config.yml").read_text())
    n_train = len((out / "train.txt").read_text().splitlines())
    assert cfg["batch_size"] == min(4, n_train)  # trained as written: no batch larger than the training set
    cfg.update(iters=2)
    cfg["model"]["inter_channels"] = 32
    cfg["lr_scheduler"]["warmup_iters"] = 1
    cfg["train"].update(log_iters=1, eval_interval=2, save_interval=2, num_workers=0, threads=1,
                        tensorboard=False, save_dir=str(tmp_path / "run"))
    (tmp_path / "cfg.yml").write_text(yaml.safe_dump(cfg))
    assert main(["train", "-c", str(tmp_path / "cfg.yml")]) == 0  # a few seconds on 2 CPU threads
    assert (tmp_path / "run").is_dir()


# --------------------------------------------------------------------------- pseudocolor
def test_pseudocolor_export(project):
    records, _, exp = project
    res = export_annotations("pseudocolor", records, LABELS, exp / "pseudocolor", _read)
    out = res.path
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "c.png", "labels.txt", "sub__b.png"]
    im = Image.open(out / "a.png")
    assert im.mode == "P"
    pal = np.array(im.getpalette()[:768]).reshape(-1, 3)
    assert tuple(pal[0]) == (0, 0, 0) and tuple(pal[1]) == (255, 0, 0) and tuple(pal[3]) == (0, 0, 255)
    assert np.array_equal(np.asarray(im), label_map(records[0]))  # index = label id
    assert set(np.unique(np.asarray(im))) == {0, 1, 3}
    rgb = np.asarray(im.convert("RGB"))
    assert tuple(rgb[30, 50]) == (0, 0, 255) and tuple(rgb[7, 7]) == (255, 0, 0) and tuple(rgb[12, 14]) == (0, 0, 0)
    assert (out / "labels.txt").read_text() == "1 cat 255 0 0\n3 dog 0 0 255\n"


# --------------------------------------------------------------------------- coco
@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # pycocotools' decode under numpy 2
def test_coco_export_round_trip(project):
    pytest.importorskip("pycocotools")
    from pycocotools.coco import COCO

    records, _, exp = project
    res = export_annotations("coco", records, LABELS, exp / "coco", _read)
    out = res.path
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == [
        "annotations.json", "images/a.png", "images/c.png", "images/sub__b.jpg"]
    coco = COCO(str(out / "annotations.json"))
    assert [(c["id"], c["name"]) for c in coco.loadCats(coco.getCatIds())] == [(1, "cat"), (3, "dog")]
    images = {img["file_name"]: img for img in coco.dataset["images"]}
    assert set(images) == {"a.png", "sub__b.jpg", "c.png"}
    assert all(img["width"] == W and img["height"] == H for img in images.values())
    assert coco.getAnnIds(imgIds=[images["c.png"]["id"]]) == []
    visible = _visible()
    keys = {"a.png": "a.png", "sub__b.jpg": "sub/b.jpg"}
    seen = {}
    for ann in coco.dataset["annotations"]:
        img = coco.imgs[ann["image_id"]]
        got = coco.annToMask(ann).astype(bool)
        want = next(m for (k, _), m in visible.items()
                    if k == keys[img["file_name"]] and _iou(m, got) > 0.5)
        oid = next(o for (k, o), m in visible.items() if m is want)
        seen[(img["file_name"], oid)] = ann
        ys, xs = np.nonzero(want)
        assert ann["bbox"] == [float(xs.min()), float(ys.min()), float(xs.max() - xs.min() + 1),
                               float(ys.max() - ys.min() + 1)]
        assert ann["area"] == float(want.sum()) and ann["iscrowd"] == 0
        if isinstance(ann["segmentation"], dict):
            assert isinstance(ann["segmentation"]["counts"], str)
            assert np.array_equal(got, want)
        else:
            assert all(len(p) >= 6 for p in ann["segmentation"])
            assert _iou(got, want) > 0.95
    assert len(seen) == 4
    assert isinstance(seen[("a.png", 1)]["segmentation"], dict)  # a hole: RLE
    assert seen[("a.png", 1)]["category_id"] == 1 and seen[("a.png", 2)]["category_id"] == 3
    two = seen[("a.png", 2)]["segmentation"]
    assert isinstance(two, list) and len(two) == 2  # two parts, two polygons
    assert isinstance(seen[("sub__b.jpg", 7)]["segmentation"], list)
    assert np.array_equal(coco.annToMask(seen[("a.png", 2)]).astype(bool), visible[("a.png", 2)])


def test_coco_needs_pycocotools(project, monkeypatch):
    import sys

    records, _, exp = project
    monkeypatch.setitem(sys.modules, "pycocotools", None)
    with pytest.raises(PPSegError, match='COCO RLE needs pycocotools: pip install "ppseg\\[annotate\\]"'):
        export_annotations("coco", records, LABELS, exp / "coco", _read)
    assert not (exp / "coco").exists() and [p.name for p in exp.iterdir()] == []


# --------------------------------------------------------------------------- labelme
def test_labelme_export(project):
    records, _, exp = project
    res = export_annotations("labelme", records, LABELS, exp / "labelme", _read)
    out = res.path
    assert sorted(p.name for p in out.iterdir()) == ["a.json", "a.png", "c.json", "c.png", "sub__b.jpg",
                                                      "sub__b.json"]
    assert any("a.png: object 1 (cat) has 1 hole(s)" in w for w in res.warnings)
    doc = json.loads((out / "a.json").read_text())
    assert doc["imagePath"] == "a.png" and doc["imageData"] is None and doc["flags"] == {}
    assert (doc["imageHeight"], doc["imageWidth"]) == (H, W) and isinstance(doc["version"], str)
    shapes = doc["shapes"]
    assert [(s["label"], s["group_id"]) for s in shapes] == [("cat", 1), ("dog", 2), ("dog", 2), ("dog", 3)]
    assert all(s["shape_type"] == "polygon" and s["flags"] == {} and len(s["points"]) >= 3 for s in shapes)
    visible = _visible()
    two = _fill([s["points"] for s in shapes if s["group_id"] == 2])
    assert _iou(two, visible[("a.png", 2)]) > 0.95
    outline = _fill([shapes[0]["points"]])
    filled = visible[("a.png", 1)].copy()
    filled[10:15, 12:18] = True  # the hole cannot be expressed
    assert _iou(outline, filled) > 0.95
    assert json.loads((out / "c.json").read_text())["shapes"] == []


# --------------------------------------------------------------------------- yolo
def test_yolo_export(project):
    records, _, exp = project
    res = export_annotations("yolo", records, LABELS, exp / "yolo", _read)
    out = res.path
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == [
        "data.yaml", "images/a.png", "images/c.png", "images/sub__b.jpg", "labels/a.txt", "labels/c.txt",
        "labels/sub__b.txt"]
    data = yaml.safe_load((out / "data.yaml").read_text())
    assert data["names"] == {0: "cat", 1: "dog"} and data["train"] == data["val"] == "images"
    assert Path(data["path"]) == out.resolve()
    assert (out / "labels" / "c.txt").read_text() == ""
    lines = (out / "labels" / "a.txt").read_text().splitlines()
    assert [ln.split()[0] for ln in lines] == ["0", "1", "1", "1"]  # label 3 is class 1
    polys = []
    for ln in lines:
        v = np.array([float(t) for t in ln.split()[1:]])
        assert v.size % 2 == 0 and v.size >= 6 and v.min() >= 0 and v.max() <= 1
        polys.append(v.reshape(-1, 2) * (W, H))
    visible = _visible()
    assert _iou(_fill(polys[1:3]), visible[("a.png", 2)]) > 0.95
    assert _iou(_fill(polys[3:]), visible[("a.png", 3)]) > 0.95
    ell = [np.array([float(t) for t in ln.split()[1:]]).reshape(-1, 2) * (W, H)
           for ln in (out / "labels" / "sub__b.txt").read_text().splitlines()]
    assert len(ell) == 1 and _iou(_fill(ell), visible[("sub/b.jpg", 7)]) > 0.95
    assert any("YOLO polygons cannot express" in w for w in res.warnings)


# --------------------------------------------------------------------------- rgba
def test_rgba_export(project):
    records, pix, exp = project
    res = export_annotations("rgba", records, LABELS, exp / "rgba", _read)
    out = res.path
    assert sorted(p.name for p in out.iterdir()) == ["a_1_cat.png", "a_2_dog.png", "a_3_dog.png", "sub__b_7_cat.png"]
    for (key, oid), mask in _visible().items():
        stem = key.replace("/", "__").rsplit(".", 1)[0]
        name = {1: "cat", 3: "dog"}[next(o.label for r in records for o in r.objects if r.key == key and o.id == oid)]
        im = Image.open(out / f"{stem}_{oid}_{name}.png")
        assert im.mode == "RGBA"
        arr = np.asarray(im)
        ys, xs = np.nonzero(mask)
        box = (slice(ys.min(), ys.max() + 1), slice(xs.min(), xs.max() + 1))
        assert arr.shape == (ys.max() - ys.min() + 1, xs.max() - xs.min() + 1, 4)
        assert np.array_equal(arr[..., 3], np.where(mask[box], 255, 0))
        assert np.array_equal(arr[..., :3], read_image(records[0].path if key == "a.png" else records[1].path)[box])
    assert np.array_equal(np.asarray(Image.open(out / "a_1_cat.png"))[..., :3], pix["a.png"][5:25, 5:30])


# --------------------------------------------------------------------------- staging, errors
def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_failed_export_keeps_previous(project, monkeypatch):
    records, _, exp = project
    out = exp / "paddleseg"
    export_annotations("paddleseg", records, LABELS, out, _read)
    before = _snapshot(out)
    calls = []
    real = exports.write_png_atomic

    def flaky(*a, **k):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("disk on fire")
        return real(*a, **k)

    monkeypatch.setattr(exports, "write_png_atomic", flaky)
    with pytest.raises(RuntimeError, match="disk on fire"):
        export_annotations("paddleseg", records, LABELS, out, _read)
    assert _snapshot(out) == before
    assert sorted(p.name for p in exp.iterdir()) == ["paddleseg"]  # no temp or old folders
    monkeypatch.setattr(exports, "write_png_atomic", real)
    res = export_annotations("paddleseg", records[:2], LABELS, out, _read)  # a smaller export replaces it
    assert sorted(p.name for p in (out / "images").iterdir()) == ["a.png", "sub__b.jpg"]
    assert sorted(p.name for p in exp.iterdir()) == ["paddleseg"] and res.files == 9


def test_errors_and_skips(project, tmp_path):
    records, _, exp = project
    with pytest.raises(PPSegError, match="unknown export format 'voc'; choose one of: " + ", ".join(FORMATS)):
        export_annotations("voc", records, LABELS, exp / "voc", _read)
    with pytest.raises(PPSegError, match="val_fraction"):
        export_annotations("paddleseg", records, LABELS, exp / "p", _read, val_fraction=1.5)
    with pytest.raises(PPSegError, match="nothing to export"):
        export_annotations("paddleseg", records[3:], LABELS, exp / "p", _read)
    assert not exp.exists() or list(exp.iterdir()) == []
    # only_done: b (objects, not done) is left out
    res = export_annotations("pseudocolor", records, LABELS, exp / "done", _read, only_done=True)
    assert sorted(p.name for p in res.path.glob("*.png")) == ["a.png", "c.png"]
    assert any("skipped 2 of 4 image(s) not marked done" in w for w in res.warnings)
    # an unreadable image is skipped with a warning naming it; the export goes on
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png")
    bad = ImageRecord("broken.png", broken, W, H, records[1].objects, "done")
    res = export_annotations("yolo", [bad, records[0]], LABELS, exp / "yolo", _read)
    assert any("broken.png: skipped, cannot read the image" in w and str(broken) in w for w in res.warnings)
    assert sorted(p.name for p in (res.path / "labels").iterdir()) == ["a.txt"]
    with pytest.raises(PPSegError, match="nothing exported: none of the 1 image"):
        export_annotations("coco", [bad], LABELS, exp / "coco", _read)
    # a wrong-size image is skipped too; an unknown label id is left out with a warning
    small = ImageRecord("a.png", records[0].path, W + 1, H, records[0].objects, "done")
    res = export_annotations("rgba", [small, records[1]], LABELS[:1], exp / "rgba", _read)
    assert any("is 64x48 but was annotated at 65x48" in w for w in res.warnings)
    assert sorted(p.name for p in res.path.iterdir()) == ["sub__b_7_cat.png"]
    res = export_annotations("rgba", records[:1], LABELS[:1], exp / "rgba", _read)
    assert any("unknown label id(s) [3]" in w for w in res.warnings)
    assert sorted(p.name for p in res.path.iterdir()) == ["a_1_cat.png"]  # no longer covered by object 3
    assert np.asarray(Image.open(res.path / "a_1_cat.png")).shape[:2] == (20, 25)


def test_unique_safe_stems(tmp_path):
    img = np.zeros((H, W, 3), np.uint8)
    for name in ("x y.png", "x_y.jpg", "X_Y.bmp"):
        Image.fromarray(img).save(tmp_path / name)
    recs = [ImageRecord(n, tmp_path / n, W, H, [], "empty") for n in ("x y.png", "x_y.jpg", "X_Y.bmp")]
    res = export_annotations("paddleseg", recs, LABELS, tmp_path / "exp", _read)
    lines = sorted((res.path / "train.txt").read_text().splitlines() + (res.path / "val.txt").read_text().splitlines())
    assert lines == ["images/X_Y_3.bmp labels/X_Y_3.png", "images/x_y.png labels/x_y.png",
                     "images/x_y_2.jpg labels/x_y_2.png"]
