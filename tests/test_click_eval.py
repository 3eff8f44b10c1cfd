"""Click-based interactive segmentation benchmark: RITM's click simulator, label-map objects,
evaluation datasets, the NoC loop, the GrabCut baseline and ``ppseg click-eval``."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from ppseg.cli import main
from ppseg.errors import ConfigError, DataError
from ppseg.interactive.clicker import Clicker, SimulatedClick, error_distances, iou, next_click
from ppseg.interactive.datasets import open_click_dataset
from ppseg.interactive.grabcut import GrabCutPredictor
from ppseg.interactive.noc import NocResults, evaluate_noc, evaluate_object, noc_of
from ppseg.interactive.objects import objects_from_label_map

CCP = Path("/work/shared/data/ccp")


# --------------------------------------------------------------------------- helpers
def brute_distance(mask: np.ndarray) -> np.ndarray:
    """Exact L2 distance of each mask pixel to the nearest non-mask pixel of the 1-px zero-padded mask."""
    padded = np.pad(mask, 1)
    zy, zx = np.nonzero(~padded)
    out = np.zeros(mask.shape, np.float32)
    for y, x in zip(*np.nonzero(mask)):
        out[y, x] = np.float32(np.sqrt(((zy - (y + 1)) ** 2 + (zx - (x + 1)) ** 2).min()))
    return out


def rect(shape, y0, y1, x0, x1) -> np.ndarray:
    m = np.zeros(shape, bool)
    m[y0:y1, x0:x1] = True
    return m


def write(path: Path, array: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = cv2.cvtColor(array, cv2.COLOR_RGB2BGR) if array.ndim == 3 else array
    assert cv2.imwrite(str(path), arr)
    return path


def disk_image(h: int = 60, w: int = 80, center=(30, 40), radius: int = 16, seed: int = 0):
    """A bright disk on a dark textured background, and the disk's mask."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:h, :w]
    mask = (yy - center[0]) ** 2 + (xx - center[1]) ** 2 <= radius**2
    img = rng.integers(0, 60, (h, w, 3)).astype(np.uint8)
    img[mask] = (rng.integers(190, 250, (int(mask.sum()), 3))).astype(np.uint8)
    return img, mask


def grabcut_folder(root: Path, n: int = 2, *, size=(60, 80)) -> Path:
    for i in range(n):
        img, mask = disk_image(*size, center=(28 + 2 * i, 38 + 3 * i), seed=i)
        m = np.where(mask, 255, 0).astype(np.uint8)
        ring = cv2.dilate(m, np.ones((3, 3), np.uint8)) - m
        m[ring > 0] = 128  # GrabCut's ignore band
        write(root / "images" / f"im{i}.jpg", img)
        write(root / "masks" / f"im{i}.png", m)
    return root


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    code = main(["click-eval", *args])
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code: int, err: str, *needles: str) -> None:
    assert code == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    for n in needles:
        assert n in lines[0], lines[0]


# --------------------------------------------------------------------------- clicker
def test_first_click_is_positive_at_the_deepest_point():
    gt = rect((12, 20), 2, 9, 3, 14)  # 7 rows x 11 columns: depth 4 on row 5 from column 6 on
    c = next_click(gt, np.zeros_like(gt))
    assert c == SimulatedClick(5, 6, True)
    assert brute_distance(gt)[5, 6] == brute_distance(gt).max() == 4


def test_image_border_counts_as_an_edge():
    gt = rect((10, 10), 0, 5, 0, 3)  # touches the top and left borders
    c = next_click(gt, np.zeros_like(gt))
    assert c == SimulatedClick(1, 1, True)  # 2 from the padded left border and the right edge; first row 1


def test_distance_maps_match_a_brute_force_transform():
    rng = np.random.default_rng(0)
    for _ in range(20):
        gt = rng.random((13, 17)) < 0.6
        pred = rng.random((13, 17)) < 0.5
        ignore = rng.random((13, 17)) < 0.1
        fn_dt, fp_dt = error_distances(gt, pred, ignore)
        np.testing.assert_allclose(fn_dt, brute_distance(gt & ~pred & ~ignore), atol=1e-5)
        np.testing.assert_allclose(fp_dt, brute_distance(pred & ~gt & ~ignore), atol=1e-5)
        c = next_click(gt, pred, ignore=ignore)
        fn, fp = brute_distance(gt & ~pred & ~ignore), brute_distance(pred & ~gt & ~ignore)
        positive = fn.max() > fp.max()
        y, x = np.unravel_index(np.argmax(fn if positive else fp), gt.shape)
        assert c == (y, x, positive)


def test_larger_error_wins_and_ties_are_negative():
    shape = (30, 40)
    gt = rect(shape, 2, 12, 2, 12)  # 10 x 10 object
    pred = gt.copy()
    pred[2:12, 2:5] = False  # FN strip 10 x 3: depth 2
    pred |= rect(shape, 15, 27, 20, 32)  # FP block 12 x 12: depth 6
    c = next_click(gt, pred)
    assert c.positive is False and (c.y, c.x) == (20, 25)
    pred2 = gt | rect(shape, 20, 23, 30, 33)  # FP 3 x 3: depth 2
    pred2[2:12, 2:8] = False  # FN 10 x 6: depth 3
    c2 = next_click(gt, pred2)
    assert c2.positive is True and (c2.y, c2.x) == (4, 4)
    # FN and FP of the same shape: equal maxima -> negative (RITM: fn_max > fp_max for positive)
    gt3 = rect(shape, 2, 7, 2, 7)
    pred3 = rect(shape, 20, 25, 20, 25)
    c3 = next_click(gt3, pred3)
    assert c3 == SimulatedClick(22, 22, False)


def test_row_major_first_maximum():
    shape = (20, 30)
    gt = rect(shape, 10, 15, 2, 7) | rect(shape, 10, 15, 20, 25) | rect(shape, 11, 16, 12, 17)
    # three equal 5x5 squares; the deepest pixels are the centres (12,4), (12,22), (13,14): row 12 first, left first
    assert next_click(gt, np.zeros(shape, bool)) == SimulatedClick(12, 4, True)


def test_ignore_pixels_are_no_error():
    shape = (30, 30)
    gt = rect(shape, 2, 8, 2, 8)
    pred = rect(shape, 14, 28, 14, 28)  # large FP, but all of it ignored
    ignore = rect(shape, 12, 30, 12, 30)
    c = next_click(gt, pred, ignore=ignore)
    assert c.positive is True and (c.y, c.x) == (4, 4)
    # ignored FN pixels are not clicked either: the deepest point moves off the ignored part
    gt2 = rect(shape, 2, 12, 2, 12)
    ign2 = rect(shape, 2, 12, 2, 7)
    c2 = next_click(gt2, np.zeros(shape, bool), ignore=ign2)
    assert c2 == SimulatedClick(4, 9, True)  # depth 3: the ignored columns 2..6 are an edge


def test_clicked_pixels_are_not_clicked_again():
    gt = rect((12, 20), 2, 9, 3, 14)
    clicker = Clicker(gt)
    none = np.zeros_like(gt)
    first = clicker.make_next_click(none)
    second = clicker.make_next_click(none)  # same prediction: the next pixel of equal depth
    third = clicker.make_next_click(none)
    assert (first, second, third) == ((5, 6, True), (5, 7, True), (5, 8, True))
    assert len(clicker.clicks) == 3
    clicker.remove_last_click()
    assert clicker.make_next_click(none) == (5, 8, True)
    clicker.reset()
    assert clicker.make_next_click(None) == (5, 6, True)


def test_nothing_left_to_correct_gives_ritms_degenerate_click():
    gt = rect((8, 8), 2, 6, 2, 6)
    assert next_click(gt, gt.copy()) == SimulatedClick(0, 0, False)


def test_iou_leaves_ignore_pixels_out():
    gt = rect((10, 10), 0, 4, 0, 5)  # 20 px
    pred = rect((10, 10), 0, 4, 2, 8)  # 24 px, 12 shared
    assert iou(gt, pred) == pytest.approx(12 / 32)
    ignore = rect((10, 10), 0, 4, 6, 8)  # 8 FP pixels ignored
    assert iou(gt, pred, ignore) == pytest.approx(12 / 24)
    assert iou(gt, np.zeros_like(gt)) == 0.0
    assert iou(np.zeros_like(gt), np.zeros_like(gt)) == 1.0
    with pytest.raises(ValueError, match="shape"):
        iou(gt, pred[:5])


# --------------------------------------------------------------------------- objects
def label_map() -> np.ndarray:
    lab = np.zeros((20, 20), np.uint8)
    lab[1:4, 1:4] = 1  # class 1, 9 px
    lab[4:7, 4:7] = 1  # touches the first one diagonally: the same 8-connected component (18 px)
    lab[10:15, 10:15] = 1  # another component of class 1, 25 px
    lab[15:17, 0:2] = 2  # class 2, 4 px
    lab[18:20, :] = 255  # ignored
    return lab


def test_components_classes_foreground_and_ignore():
    lab = label_map()
    comps = objects_from_label_map(lab, mode="components")
    assert [(o.class_id, int(o.mask.sum())) for o in comps] == [(1, 18), (1, 25), (2, 4)]
    assert all(o.ignore is not None and o.ignore.sum() == 40 for o in comps)
    mask, cid, ignore = comps[1]
    assert mask.dtype == np.bool_ and mask.shape == lab.shape and mask[10:15, 10:15].all() and cid == 1
    assert [int(o.mask.sum()) for o in objects_from_label_map(lab, mode="components", min_area=10)] == [18, 25]
    assert [(o.class_id, int(o.mask.sum())) for o in objects_from_label_map(lab, mode="classes")] == [(1, 43), (2, 4)]
    assert [o.class_id for o in objects_from_label_map(lab, mode="classes", classes=[2])] == [2]
    (fg,) = objects_from_label_map(lab, mode="foreground")
    assert fg.class_id == 1 and int(fg.mask.sum()) == 47 and not (fg.mask & fg.ignore).any()
    assert objects_from_label_map(lab, mode="foreground", min_area=48) == []
    assert objects_from_label_map(np.zeros((5, 5), np.uint8)) == []
    no_ignore = objects_from_label_map(np.where(lab == 255, 0, lab).astype(np.uint8))
    assert all(o.ignore is None for o in no_ignore)
    with pytest.raises(ConfigError, match="mode"):
        objects_from_label_map(lab, mode="instances")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="min_area"):
        objects_from_label_map(lab, min_area=-1)


# --------------------------------------------------------------------------- datasets
def test_grabcut_layout_masks_ignore_and_binary(tmp_path):
    root = grabcut_folder(tmp_path / "gc", n=2)
    m01 = np.zeros((60, 80), np.uint8)
    m01[10:20, 10:30] = 1  # a 0/1 mask, .bmp
    write(root / "images" / "sub" / "a.png", disk_image()[0])
    write(root / "masks" / "sub" / "a.bmp", m01)
    ds = open_click_dataset(root)
    assert ds.layout == "masks" and len(ds) == 3
    samples = list(ds)
    assert [s.name for s in samples] == ["im0", "im1", "sub/a"]
    name, image, gt, ignore = samples[0]
    assert image.dtype == np.uint8 and image.shape == (60, 80, 3)
    assert gt.dtype == np.bool_ and gt.shape == (60, 80) and ignore is not None and ignore.any()
    assert not (gt & ignore).any()
    assert samples[2].ignore is None and int(samples[2].gt.sum()) == 200
    red = np.zeros((60, 80, 3), np.uint8)
    red[10:20, 10:30, 0] = 255  # a colour mask: red object on black
    write(root / "masks" / "sub" / "a.png", red)
    (root / "masks" / "sub" / "a.bmp").unlink()
    assert int(open_click_dataset(root)[2].gt.sum()) == 200
    assert [s.name for s in open_click_dataset(root, limit=2)] == ["im0", "im1"]
    assert ds.to_dict()["num_objects"] == 3


def test_ritm_folder_names(tmp_path):
    img, mask = disk_image()
    write(tmp_path / "g" / "data_GT" / "x.jpg", img)
    write(tmp_path / "g" / "boundary_GT" / "x.bmp", np.where(mask, 255, 0).astype(np.uint8))
    assert int(open_click_dataset(tmp_path / "g")[0].gt.sum()) == int(mask.sum())
    write(tmp_path / "d" / "img" / "y.jpg", img)
    write(tmp_path / "d" / "gt" / "y.png", np.where(mask, 200, 0).astype(np.uint8))  # DAVIS: any value > 0
    s = open_click_dataset(tmp_path / "d")[0]
    assert int(s.gt.sum()) == int(mask.sum()) and s.ignore is None


def make_list_dataset(root: Path, n: int = 2) -> Path:
    lines = []
    for i in range(n):
        lab = label_map()
        img = np.full((20, 20, 3), 30, np.uint8)
        img[lab == 1] = 200
        write(root / "images" / f"{i}.jpg", img)
        write(root / "labels" / f"{i}.png", lab)
        lines.append(f"images/{i}.jpg labels/{i}.png")
    (root / "val.txt").write_text("\n".join(lines) + "\n")
    return root


def test_paddleseg_list_split_into_objects(tmp_path):
    root = make_list_dataset(tmp_path / "l")
    ds = open_click_dataset(root, split_mode="components", min_area=5)
    assert ds.layout == "list" and ds.num_images == 2
    assert [s.name for s in ds] == ["images/0:1.0", "images/0:1.1", "images/1:1.0", "images/1:1.1"]
    s = ds[1]
    assert int(s.gt.sum()) == 25 and s.ignore is not None and int(s.ignore.sum()) == 40
    assert len(open_click_dataset(root, split_mode="foreground", min_area=0)) == 2
    assert len(open_click_dataset(root, split_mode="classes", min_area=0, limit=3)) == 3
    (root / "test.txt").write_text("images/1.jpg labels/1.png\n")
    assert [s.name for s in open_click_dataset(root, list_file="test.txt", min_area=0)] == [
        "images/1:1.0", "images/1:1.1", "images/1:2.2"]
    with pytest.raises(DataError, match="no label map holds an object"):
        open_click_dataset(root, min_area=1000)


def test_another_background_class_makes_class_0_regions_objects(tmp_path):
    """EM membranes: label 1 is the membrane (the background), the class-0 cells are the objects."""
    root = tmp_path / "em"
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    label = np.zeros((40, 60), np.uint8)
    label[:, 29:31] = 1  # a membrane wall splits the slice into two cells
    label[19:21, :29] = 1  # and the left one into two more
    cv2.imwrite(str(root / "images" / "0.png"), np.full((40, 60, 3), 128, np.uint8))
    cv2.imwrite(str(root / "labels" / "0.png"), label)
    (root / "val.txt").write_text("images/0.png labels/0.png\n")
    cells = open_click_dataset(root, min_area=10, background=1)
    assert len(cells) == 3 and sorted(int(s.gt.sum()) for s in cells) == [19 * 29, 19 * 29, 40 * 29]
    walls = open_click_dataset(root, min_area=10)  # background 0: the membrane network is the object
    assert len(walls) == 1 and int(walls[0].gt.sum()) == int((label == 1).sum())
    assert main(["click-eval", "--data", str(root), "--background", "1", "--min-area", "10", "--model",
                 "opencv-grabcut", "--max-clicks", "1", "--json", str(tmp_path / "r.json")]) == 0
    assert json.loads((tmp_path / "r.json").read_text())["num_objects"] == 3
    from ppseg.interactive.data import ObjectSource  # training takes the same option (configs/.../em_cells.yml)

    src = ObjectSource.from_dict({"dataset_root": str(root), "file_list": "val.txt", "min_area": 10,
                                  "background": 1}, "sources[0]")
    assert len(src.objects(label)) == 3
    with pytest.raises(ConfigError, match="background"):
        ObjectSource.from_dict({"dataset_root": str(root), "file_list": "val.txt", "background": -1}, "s")


def test_dataset_errors_name_the_file(tmp_path):
    with pytest.raises(DataError, match="no such dataset folder"):
        open_click_dataset(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="not a click-evaluation dataset"):
        open_click_dataset(tmp_path / "empty")

    root = grabcut_folder(tmp_path / "unpaired", n=3)
    (root / "masks" / "im1.png").unlink()
    write(root / "masks" / "extra.png", np.zeros((60, 80), np.uint8))
    with pytest.raises(DataError, match=r"1 image\(s\) in images/ without a mask in masks/: im1.jpg; "
                                        r"1 mask\(s\) in masks/ without an image in images/: extra.png"):
        open_click_dataset(root)

    root = grabcut_folder(tmp_path / "size", n=1)
    write(root / "masks" / "im0.png", np.full((30, 80), 255, np.uint8))
    with pytest.raises(DataError, match=r"mask '.*im0.png' is 80x30 but its image '.*im0.jpg' is 80x60"):
        open_click_dataset(root)

    root = grabcut_folder(tmp_path / "empty_mask", n=1)
    write(root / "masks" / "im0.png", np.zeros((60, 80), np.uint8))
    with pytest.raises(DataError, match=r"mask '.*im0.png' has no object pixels"):
        open_click_dataset(root)
    write(root / "masks" / "im0.png", np.full((60, 80), 128, np.uint8))
    with pytest.raises(DataError, match=r"mask '.*im0.png' is all ignore"):
        open_click_dataset(root)

    root = grabcut_folder(tmp_path / "bad_mask", n=1)
    (root / "masks" / "im0.png").write_bytes(b"\x89PNG broken")
    with pytest.raises(DataError, match=r"cannot read mask '.*im0.png'"):
        open_click_dataset(root)

    root = grabcut_folder(tmp_path / "broken", n=1)
    (root / "images" / "im0.jpg").write_bytes(b"not a jpeg at all")
    ds = open_click_dataset(root)  # the image is decoded when used
    with pytest.raises(DataError, match=r"cannot read image '.*im0.jpg'"):
        list(ds)

    root = make_list_dataset(tmp_path / "list", n=1)
    (root / "val.txt").write_text("images/0.jpg labels/0.png\nimages/9.jpg labels/9.png\n")
    with pytest.raises(DataError, match=r"val.txt:2: image '.*9.jpg' does not exist"):
        open_click_dataset(root)
    with pytest.raises(DataError, match="list file 'nope.txt' not found"):
        open_click_dataset(root, list_file="nope.txt")


# --------------------------------------------------------------------------- NoC math
class ScriptedPredictor:
    """Returns, click after click, masks whose IoU with ``gt`` follows a script (ignores the clicks)."""

    def __init__(self, gt: np.ndarray, scripts: dict[int, list[float]]):
        self.gt = gt
        self.scripts = scripts
        self.calls: dict[int, int] = {}

    def session(self, image):
        key = int(image[0, 0, 0])
        predictor = self

        class Session:
            prob = None

            def click(self, y, x, positive=True):
                n = predictor.calls.get(key, 0)
                predictor.calls[key] = n + 1
                target = predictor.scripts[key][n]
                k = round(target * predictor.gt.sum())  # the first k gt pixels: IoU = k / |gt|
                flat = np.zeros(predictor.gt.size, np.float32)
                flat[np.flatnonzero(predictor.gt)[:k]] = 0.9
                self.prob = flat.reshape(predictor.gt.shape)
                return self.prob

        return Session()


def test_noc_math_against_hand_computed_numbers():
    gt = rect((20, 20), 5, 15, 5, 15)  # 100 px: IoUs are multiples of 0.01
    scripts = {
        0: [0.50, 0.86, 0.91, 0.99, 0.99, 0.99],  # stops after click 3: NoC85 2, NoC90 3
        1: [0.30, 0.30, 0.30, 0.30, 0.30, 0.30],  # never: 6, 6, a failure
        2: [0.95, 0.10, 0.10, 0.10, 0.10, 0.10],  # stops after click 1: 1, 1
        3: [0.20, 0.50, 0.80, 0.88, 0.89, 0.89],  # 85 at click 4, 90 never: 4, 6, a failure
        4: [0.10, 0.20, 0.30, 0.40, 0.50, 0.90],  # 90 exactly at the last click: 6, 6, not a failure
    }
    predictor = ScriptedPredictor(gt, scripts)
    data = [(f"o{k}", np.full((20, 20, 3), k, np.uint8), gt, None) for k in scripts]
    res = evaluate_noc(data, predictor, max_clicks=6, model="scripted", dataset_info="hand-made")
    assert predictor.calls == {0: 3, 1: 6, 2: 1, 3: 6, 4: 6}  # early stop at IoU >= 0.90
    assert [o.ious for o in res.objects][0] == pytest.approx([0.50, 0.86, 0.91])
    assert [o.noc(0.85) for o in res.objects] == [2, 6, 1, 4, 6]
    assert [o.noc(0.90) for o in res.objects] == [3, 6, 1, 6, 6]
    assert res.noc85 == pytest.approx((2 + 6 + 1 + 4 + 6) / 5)
    assert res.noc90 == pytest.approx((3 + 6 + 1 + 6 + 6) / 5)
    assert res.nof90 == 2 and res.over_max90 == 3
    # curves padded with the last IoU: after 1, 3, 5 clicks
    assert res.miou_at(1) == pytest.approx((0.50 + 0.30 + 0.95 + 0.20 + 0.10) / 5)
    assert res.miou_at(3) == pytest.approx((0.91 + 0.30 + 0.95 + 0.80 + 0.30) / 5)
    assert res.miou_at(5) == pytest.approx((0.91 + 0.30 + 0.95 + 0.89 + 0.50) / 5)
    d = json.loads(res.to_json())
    for key in ("noc85", "noc90", "nof90", "miou_at", "latency_ms", "objects", "num_objects", "model", "dataset"):
        assert key in d
    assert d["miou_at"]["3"] == pytest.approx(res.miou_at(3))
    assert d["objects"][0]["noc90"] == 3 and len(d["objects"][0]["clicks"]) == 3
    assert d["latency_ms"]["clicks"] == 22 and d["latency_ms"]["median"] >= 0
    assert "NoC@90" in res.table() and "3.80" in res.table()
    assert noc_of([0.1, 0.9], 0.9, 20) == 2 and noc_of([], 0.9, 20) == 20
    empty = NocResults([], max_clicks=20)
    assert empty.to_dict()["noc90"] is None and "-" in empty.table()


def test_threshold_and_options():
    gt = rect((20, 20), 5, 15, 5, 15)

    class Half:
        def session(self, image):
            class S:
                def click(self, y, x, positive=True):
                    return np.where(gt, 0.49, 0.0).astype(np.float32)  # not above 0.49

            return S()

    img = np.zeros((20, 20, 3), np.uint8)
    assert evaluate_object(Half(), img, gt, max_clicks=2).ious == [0.0, 0.0]
    assert evaluate_object(Half(), img, gt, max_clicks=2, threshold=0.3).ious == [1.0]
    with pytest.raises(ConfigError, match="max_clicks"):
        evaluate_object(Half(), img, gt, max_clicks=0)


# --------------------------------------------------------------------------- GrabCut
def test_grabcut_segments_a_disk_in_a_few_clicks():
    img, mask = disk_image(90, 120, center=(45, 60), radius=25)
    res = evaluate_object(GrabCutPredictor(), img, mask, max_clicks=5)
    assert res.ious[-1] > 0.8, res.ious
    big, big_mask = disk_image(300, 500, center=(150, 250), radius=80, seed=3)  # shrunk to 400 wide
    res = evaluate_object(GrabCutPredictor(), big, big_mask, max_clicks=5)
    assert res.ious[-1] > 0.8, res.ious


def test_grabcut_session_undo_redo_reset():
    img, mask = disk_image(60, 80, center=(30, 40), radius=15)
    s = GrabCutPredictor().session(img)
    assert s.prob is None
    p1 = s.click(30, 40, positive=True)
    assert p1.shape == (60, 80) and p1.dtype == np.float32 and 0 <= p1.min() and p1.max() <= 1
    assert p1[30, 40] == 1.0
    p2 = s.click(5, 5, positive=False)
    assert p2[5, 5] == 0.0 and s.clicks == [(30, 40, True), (5, 5, False)]
    assert np.array_equal(s.undo(), p1) and s.clicks == [(30, 40, True)]
    assert np.array_equal(s.redo(), p2)
    assert s.redo() is p2  # nothing left to redo
    s.undo()
    s.undo()
    assert s.prob is None and s.undo() is None
    s.redo()
    assert np.array_equal(s.prob, p1)
    s.reset()
    assert s.prob is None and s.redo() is None
    neg_only = GrabCutPredictor().session(img).click(3, 3, positive=False)
    assert not neg_only.any()
    with pytest.raises(ValueError, match="outside"):
        s.click(60, 0)
    with pytest.raises(ConfigError, match="max_side"):
        GrabCutPredictor(max_side=0)


# --------------------------------------------------------------------------- CLI
def test_cli_end_to_end_with_grabcut(tmp_path, capsys):
    data = grabcut_folder(tmp_path / "gc", n=2)
    out = tmp_path / "out" / "scores.json"
    code, stdout, err = run_cli(capsys, "--model", "opencv-grabcut", "--data", str(data), "--json", str(out),
                                "--max-clicks", "5")
    assert code == 0, err
    assert "NoC@85" in stdout and "NoC@90" in stdout and "NoF@90" in stdout and "mIoU@5" in stdout
    d = json.loads(out.read_text())
    for key in ("noc85", "noc90", "nof90", "miou_at", "latency_ms", "objects", "num_objects", "model", "dataset"):
        assert key in d
    assert d["num_objects"] == 2 and len(d["objects"]) == 2 and set(d["miou_at"]) == {"1", "3", "5"}
    assert d["max_clicks"] == 5 and "GrabCut" in d["model"]
    plot = out.with_suffix(".png")
    assert plot.is_file() and plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not [p for p in out.parent.iterdir() if p.name.endswith(".tmp")]
    own = tmp_path / "curve.png"
    code, _, err = run_cli(capsys, "--model", "opencv-grabcut", "--data", str(data), "--plot", str(own),
                           "--max-clicks", "2", "--limit", "1")
    assert code == 0, err
    assert own.is_file() and not own.with_suffix(".json").exists()


@pytest.mark.parametrize("case", ["unpaired", "size", "empty", "json_path", "no_data", "no_layout", "option"])
def test_cli_bad_input_is_one_line(tmp_path, capsys, case):
    data = grabcut_folder(tmp_path / "gc", n=2)
    out = tmp_path / "out" / "scores.json"
    args = ["--model", "opencv-grabcut", "--data", str(data), "--json", str(out), "--max-clicks", "2"]
    needles: tuple[str, ...]
    if case == "unpaired":
        (data / "masks" / "im1.png").unlink()
        needles = ("do not pair up", "im1.jpg")
    elif case == "size":
        write(data / "masks" / "im1.png", np.full((10, 10), 255, np.uint8))
        needles = ("im1.png", "10x10", "80x60")
    elif case == "empty":
        write(data / "masks" / "im0.png", np.zeros((60, 80), np.uint8))
        needles = ("im0.png", "no object pixels")
    elif case == "json_path":
        blocker = tmp_path / "file"
        blocker.write_text("x")
        out = blocker / "scores.json"
        args[args.index("--json") + 1] = str(out)
        needles = ("--json", "is a file")
    elif case == "no_data":
        args[args.index("--data") + 1] = str(tmp_path / "nothing")
        needles = ("nothing", "no such dataset folder")
    elif case == "no_layout":
        args[args.index("--data") + 1] = str(data / "images")
        needles = ("not a click-evaluation dataset",)
    else:
        args += ["--threshold", "1.5"]
        needles = ("--threshold",)
    code, _, err = run_cli(capsys, *args)
    assert_one_line_error(code, err, "ppseg click-eval: error:", *needles)
    assert not out.exists() and not out.with_suffix(".png").exists()


@pytest.mark.skipif(not (CCP / "val.txt").is_file(), reason="CCP data not available")
def test_cli_on_ccp(tmp_path, capsys):
    out = tmp_path / "ccp.json"
    code, stdout, err = run_cli(capsys, "--model", "opencv-grabcut", "--data", str(CCP), "--limit", "3",
                                "--max-clicks", "3", "--split-mode", "foreground", "--json", str(out))
    assert code == 0, err
    d = json.loads(out.read_text())
    assert d["num_objects"] == 3 and d["dataset"]["layout"] == "list"
