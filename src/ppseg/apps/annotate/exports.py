"""Exports of an annotation project: PaddleSeg datasets, pseudo-colour PNGs, COCO, LabelMe,
YOLO-seg and RGBA cut-outs, plus the mask <-> polygon helpers the server shares.

One entry point, :func:`export_annotations`. Every export is **staged**: it is built in a
hidden sibling folder of ``out_dir`` (``.<name>.tmp-XXXX``) and only then swapped in (the old
folder renamed away, the new one renamed in, the old one deleted), so a failed export leaves
the previous one as it was and no half-written folder behind.

What is exported:

* Which images: with ``only_done`` the images marked done (``done`` / ``empty``); otherwise
  also every image that has objects. Images never touched (status ``""``, no objects) are
  skipped and counted in the warnings. An image whose read fails is skipped with a warning
  naming it (the formats that need no pixels, ``pseudocolor``, never read images).
* Which masks: objects are painted in paint order, so the instance formats (COCO, LabelMe,
  YOLO, RGBA) export each object's **visible** part (its mask minus the objects painted after
  it), which is what the label map shows. Objects whose label is not in ``labels`` are left out
  with a warning.
* Polygons (COCO, LabelMe, YOLO) are in continuous image coordinates, pixel ``(x, y)`` covering
  the square ``[x, x+1) x [y, y+1)``: they trace the pixel edges of the mask (COCO's
  convention, which ``pycocotools`` rasterises back exactly).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import shutil
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Sequence

import cv2
import numpy as np

from ...data.io import IMAGE_SUFFIXES, write_image, write_png_atomic
from ...errors import PPSegError
from ...fileio import replace_folder
from .records import ImageRecord, Label, check_labels, default_color, format_labels_txt, label_map

__all__ = ["FORMATS", "ExportResult", "export_annotations", "mask_to_polygons", "polygons_to_mask",
           "has_holes"]

#: the export formats, in the order the page lists them
FORMATS: tuple[str, ...] = ("paddleseg", "pseudocolor", "coco", "labelme", "yolo", "rgba")

#: a COCO polygon must rasterise back to at least this IoU with its mask, else the mask is stored as RLE
COCO_POLYGON_MIN_IOU = 0.98
#: warnings beyond this many are counted, not listed
MAX_WARNINGS = 50
_LABELME_VERSION = "5.2.1"
_COPY_FORMATS = {"JPEG", "PNG", "BMP", "TIFF", "WEBP"}
_COPY_MODES = {"RGB", "L", "P"}
_STALE_SECONDS = 3600  # leftovers of a killed export older than this are removed


@dataclass
class ExportResult:
    """What an export wrote: its ``format``, the folder, the number of files and the warnings."""

    format: str
    path: Path
    files: int
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"format": self.format, "path": str(self.path), "files": self.files, "warnings": list(self.warnings)}


# --------------------------------------------------------------------------- polygons
def _as_u8(mask: Any) -> np.ndarray:
    m = np.asarray(mask)
    if m.ndim != 2:
        raise ValueError(f"mask must be 2-D, got shape {m.shape}")
    return (m != 0).astype(np.uint8)


def mask_to_polygons(mask: np.ndarray, epsilon: float = 0.7) -> list[np.ndarray]:
    """All contours of a mask, outer boundaries **and** holes, as ``(N, 2)`` int32 ``[x, y]`` arrays
    of pixel centres, simplified with Douglas-Peucker (``epsilon`` pixels; 0 keeps every point).

    ``cv2.fillPoly(canvas, polygons, 1)`` (which fills even-odd across the list) paints the mask
    back, holes included: exactly with ``epsilon=0``; the default 0.7 keeps the corners of 45-degree
    staircases (0.707 px off their chord) but cuts shallow ones, so a few boundary pixels change
    (what polygon editing wants: fewer points). Islands inside holes come back as further outer
    contours. A one- or two-pixel part gives a contour of one or two points."""
    m = _as_u8(mask)
    if not m.any():
        return []
    contours, _ = cv2.findContours(np.pad(m, 1), cv2.RETR_CCOMP, cv2.CHAIN_APPROX_NONE)
    out = []
    for c in contours:
        if epsilon > 0 and len(c) > 2:
            c = cv2.approxPolyDP(c, float(epsilon), True)
        out.append(c.reshape(-1, 2).astype(np.int32) - 1)  # undo the padding
    return out


def polygons_to_mask(polys: Sequence[Any], height: int, width: int) -> np.ndarray:
    """The boolean ``height x width`` mask of polygons in the form :func:`mask_to_polygons` gives
    (pixel-centre ``[x, y]`` points, filled even-odd, so hole contours cut holes); coordinates are
    rounded. A polygon that is not a list of ``[x, y]`` number pairs raises :class:`PPSegError`."""
    canvas = np.zeros((int(height), int(width)), np.uint8)
    pts = []
    for i, poly in enumerate(polys):
        try:
            arr = np.asarray(poly, dtype=np.float64)
        except (TypeError, ValueError):
            raise PPSegError(f"polygon {i}: expected a list of [x, y] number pairs") from None
        if arr.size == 0:
            continue
        if arr.ndim != 2 or arr.shape[1] != 2:
            raise PPSegError(f"polygon {i}: expected a list of [x, y] number pairs, got shape {arr.shape}")
        if not np.isfinite(arr).all() or np.abs(arr).max() > 2**24:
            raise PPSegError(f"polygon {i}: coordinates must be finite numbers within +-{2**24}")
        pts.append(np.round(arr).astype(np.int32))
    if pts:
        cv2.fillPoly(canvas, pts, 1)
    return canvas.astype(bool)


def has_holes(mask: np.ndarray) -> bool:
    """Whether the mask encloses background (a hole: 4-connected background not reaching the border)."""
    m = _as_u8(mask)
    if not m.any():
        return False
    _, hierarchy = cv2.findContours(np.pad(m, 1), cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
    return hierarchy is not None and bool((hierarchy[0][:, 3] >= 0).any())


def _edge_polygons(crop: np.ndarray, epsilon: float = 0.5) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """``(outers, holes)`` of a mask as float ``(N, 2)`` arrays in continuous coordinates (pixel
    ``(x, y)`` is the square ``[x, x+1) x [y, y+1)``): the polygons follow the pixel edges.

    Traced on a lattice of twice the resolution where each pixel is a closed 3 x 3 square
    (corners shared with its neighbours), so the contour's pixel centres are the mask's corners;
    one-pixel lines and single pixels become proper rectangles, and diagonal neighbours stay
    joined (8-connected objects, 4-connected holes, as in :func:`mask_to_polygons`). Corners are
    whole numbers. ``epsilon`` 0.5 (Douglas-Peucker, in pixels) removes most staircase corners yet
    keeps every pixel centre on its side, so pycocotools rasterises the polygons back exactly in
    practice (COCO still checks, see :data:`COCO_POLYGON_MIN_IOU`)."""
    m = _as_u8(crop)
    h, w = m.shape
    if not m.any():
        return [], []
    up = np.zeros((2 * h + 3, 2 * w + 3), np.uint8)
    up[2:2 * h + 2:2, 2:2 * w + 2:2] = m
    big = cv2.dilate(up, np.ones((3, 3), np.uint8))
    contours, hierarchy = cv2.findContours(big, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_NONE)
    outers, holes = [], []
    for c, row in zip(contours, hierarchy[0]):
        pts = c.reshape(-1, 2)
        # the 8-connected tracer cuts concave corners diagonally (the corner lattice point is
        # not a border pixel): put the corner back so that every edge is axis-aligned
        step = np.roll(pts, -1, axis=0) - pts
        diag = np.flatnonzero((np.abs(step[:, 0]) == 1) & (np.abs(step[:, 1]) == 1))
        if diag.size:
            nxt = np.roll(pts, -1, axis=0)[diag]
            here = pts[diag]
            first = np.stack([here[:, 0], nxt[:, 1]], axis=1)
            second = np.stack([nxt[:, 0], here[:, 1]], axis=1)
            use_first = big[first[:, 1], first[:, 0]] > 0
            pts = np.insert(pts, diag + 1, np.where(use_first[:, None], first, second), axis=0)
        c = pts.reshape(-1, 1, 2).astype(np.int32)
        if epsilon > 0 and len(c) > 3:
            simple = cv2.approxPolyDP(c, 2.0 * float(epsilon), True)
            c = simple if len(simple) >= 3 else c  # never collapse a part to a line
        pts = (c.reshape(-1, 2).astype(np.float64) - 1.0) / 2.0
        (holes if row[3] >= 0 else outers).append(pts)
    return outers, holes


# --------------------------------------------------------------------------- helpers
class _Warnings(list):
    """A warnings list that keeps the first :data:`MAX_WARNINGS` and counts the rest."""

    dropped = 0

    def add(self, text: str) -> None:
        if len(self) < MAX_WARNINGS:
            self.append(text)
        else:
            self.dropped += 1

    def final(self) -> list[str]:
        return list(self) + ([f"... and {self.dropped} more warning(s)"] if self.dropped else [])


_UNSAFE = re.compile(r'[\s<>:"/\\|?*\x00-\x1f\x7f]')


def _safe_name(text: str, fallback: str = "image") -> str:
    name = _UNSAFE.sub("_", text).strip()
    if name.startswith("."):
        name = "_" + name[1:]
    if not name:
        name = fallback
    if len(name.encode("utf-8")) > 150:  # keep room for suffixes under the 255-byte file name limit
        digest = hashlib.sha1(name.encode("utf-8")).hexdigest()[:10]
        name = name.encode("utf-8")[:130].decode("utf-8", "ignore") + "_" + digest
    return name


def _unique_stems(records: Sequence[ImageRecord]) -> list[str]:
    """A file stem per record: :attr:`ImageRecord.stem` made safe for file lists and file names
    (no spaces), unique even on case-insensitive file systems (``a.jpg`` and ``a.png``)."""
    used: set[str] = set()
    out = []
    for rec in records:
        base = _safe_name(rec.stem)
        stem, n = base, 1
        while stem.lower() in used:
            n += 1
            stem = f"{base}_{n}"
        used.add(stem.lower())
        out.append(stem)
    return out


def _select(records: Sequence[ImageRecord], only_done: bool, warnings: _Warnings) -> list[ImageRecord]:
    chosen = []
    skipped = 0
    for rec in records:
        if rec.done or (rec.objects and not only_done):
            chosen.append(rec)
        else:
            skipped += 1
    if skipped:
        why = "not marked done" if only_done else "never annotated (no objects, not marked done)"
        warnings.add(f"skipped {skipped} of {len(records)} image(s) {why}")
    if not chosen:
        raise PPSegError(f"nothing to export: none of the {len(records)} image(s) "
                         + ("is marked done" if only_done else "has objects or is marked done"))
    return chosen


def _known(record: ImageRecord, label_ids: set[int], warnings: _Warnings) -> ImageRecord:
    """The record without objects whose label is unknown (one warning per image)."""
    bad = [o for o in record.objects if o.label not in label_ids]
    if not bad:
        return record
    warnings.add(f"{record.key}: left out {len(bad)} object(s) with unknown label id(s) "
                 f"{sorted({o.label for o in bad})} (object {bad[0].id}{', ...' if len(bad) > 1 else ''})")
    return replace(record, objects=[o for o in record.objects if o.label in label_ids])


def _visible(record: ImageRecord, warnings: _Warnings) -> list[tuple[Any, np.ndarray, int, int]]:
    """``(object, crop, x, y)`` per object: its mask clipped to the image, minus the objects
    painted after it, cropped to what is left; hidden objects are dropped with a warning."""
    H, W = record.height, record.width
    items: list[list[Any]] = []
    for obj in record.objects:
        x, y, w, h = obj.bbox
        if w == 0 or h == 0:
            continue
        x0, y0, x1, y1 = max(0, x), max(0, y), min(W, x + w), min(H, y + h)
        if x1 <= x0 or y1 <= y0:
            continue
        items.append([obj, obj.crop()[y0 - y:y1 - y, x0 - x:x1 - x].copy(), x0, y0])
    for i, (_, crop, x, y) in enumerate(items):
        h, w = crop.shape
        for _, c2, x2, y2 in items[i + 1:]:
            h2, w2 = c2.shape
            ix0, iy0, ix1, iy1 = max(x, x2), max(y, y2), min(x + w, x2 + w2), min(y + h, y2 + h2)
            if ix1 > ix0 and iy1 > iy0:
                crop[iy0 - y:iy1 - y, ix0 - x:ix1 - x] &= ~c2[iy0 - y2:iy1 - y2, ix0 - x2:ix1 - x2]
    out = []
    for obj, crop, x, y in items:
        rows, cols = np.flatnonzero(crop.any(axis=1)), np.flatnonzero(crop.any(axis=0))
        if rows.size == 0:
            warnings.add(f"{record.key}: object {obj.id} is hidden by the objects painted over it; left out")
            continue
        out.append((obj, crop[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1], x + int(cols[0]), y + int(rows[0])))
    return out


def _load(record: ImageRecord, read_image: Callable[[ImageRecord], np.ndarray],
          warnings: _Warnings) -> np.ndarray | None:
    """The record's RGB image, or None (with a warning naming the file) when it cannot be used."""
    try:
        rgb = np.asarray(read_image(record))
    except Exception as e:  # noqa: BLE001 - any failure to read one image skips that image only
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        warnings.add(f"{record.key}: skipped, cannot read the image {record.path} ({msg})")
        return None
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        warnings.add(f"{record.key}: skipped, {record.path} did not read as an RGB uint8 image "
                     f"(got {rgb.dtype} {rgb.shape})")
        return None
    if rgb.shape[:2] != (record.height, record.width):
        warnings.add(f"{record.key}: skipped, {record.path} is {rgb.shape[1]}x{rgb.shape[0]} but was annotated "
                     f"at {record.width}x{record.height}")
        return None
    return rgb


def _copyable(record: ImageRecord) -> bool:
    """Whether the image file can be copied as is: an ordinary 8-bit RGB/gray/palette JPEG, PNG,
    BMP, TIFF or WebP of the annotated size, one frame, no EXIF rotation (which ppseg applies and
    other tools may not)."""
    path = Path(record.path)
    if path.suffix.lower() not in IMAGE_SUFFIXES:
        return False
    from PIL import Image

    try:
        with Image.open(path) as im:
            if im.format not in _COPY_FORMATS or im.mode not in _COPY_MODES:
                return False
            if getattr(im, "n_frames", 1) != 1 or im.size != (record.width, record.height):
                return False
            return im.getexif().get(0x0112, 1) == 1
    except Exception:  # noqa: BLE001 - anything odd: write a PNG instead
        return False


def _write_image_copy(record: ImageRecord, rgb: np.ndarray, folder: Path, stem: str) -> str:
    """Copy the record's image into ``folder`` as ``stem + suffix`` (original bytes when it is an
    ordinary image, else the decoded RGB as PNG); returns the file name."""
    folder.mkdir(parents=True, exist_ok=True)
    if _copyable(record):
        name = stem + Path(record.path).suffix.lower()
        try:
            shutil.copy2(record.path, folder / name)
            return name
        except OSError:
            (folder / name).unlink(missing_ok=True)
    name = stem + ".png"
    write_image(folder / name, rgb, atomic=False)
    return name


def _write_json(path: Path, data: Any, indent: int | None = None) -> None:
    text = json.dumps(data, ensure_ascii=False, indent=indent,
                      separators=None if indent else (",", ":"))
    path.write_text(text + "\n", encoding="utf-8")


def _round_pts(pts: np.ndarray) -> list[float]:
    return [round(float(v), 3) for v in pts.reshape(-1)]


# --------------------------------------------------------------------------- formats
@dataclass
class _Job:
    records: list[ImageRecord]
    stems: list[str]
    labels: list[Label]
    out_dir: Path  # the final folder (for absolute paths written into the export)
    read_image: Callable[[ImageRecord], np.ndarray]
    warnings: _Warnings
    val_fraction: float
    seed: int

    @property
    def label_ids(self) -> set[int]:
        return {lab.id for lab in self.labels}

    def name_of(self, label_id: int) -> str:
        return next((lab.name for lab in self.labels if lab.id == label_id), f"label{label_id}")

    def items(self, need_image: bool = True):
        """``(record without unknown labels, stem, rgb or None)`` for each exportable record."""
        ids = self.label_ids
        for rec, stem in zip(self.records, self.stems):
            rgb = None
            if need_image:
                rgb = _load(rec, self.read_image, self.warnings)
                if rgb is None:
                    continue
            yield _known(rec, ids, self.warnings), stem, rgb


def _nothing_read(job: _Job) -> PPSegError:
    first = next((w for w in job.warnings if "cannot read" in w or "skipped," in w), "")
    return PPSegError(f"nothing exported: none of the {len(job.records)} image(s) could be read"
                      + (f"; first: {first}" if first else ""))


def _split(n: int, val_fraction: float, seed: int, warnings: _Warnings) -> tuple[list[int], list[int]]:
    if n == 1:
        warnings.add("only one image: it is in both train.txt and val.txt")
        return [0], [0]
    if val_fraction == 0:
        warnings.add("val_fraction 0: val.txt lists the training images")
        return list(range(n)), list(range(n))
    n_val = min(n - 1, max(1, int(round(n * val_fraction))))
    order = np.random.default_rng(seed).permutation(n)
    val = set(int(i) for i in order[:n_val])
    return [i for i in range(n) if i not in val], sorted(val)


def _ceil32(v: int) -> int:
    return max(32, int(math.ceil(v / 32.0)) * 32)


def _paddleseg(job: _Job, stage: Path) -> None:
    labels = job.labels
    lut = np.zeros(256, np.uint8)
    for k, lab in enumerate(labels, 1):
        lut[lab.id] = k
    (stage / "images").mkdir()
    (stage / "labels").mkdir()
    pairs: list[str] = []
    sizes: list[tuple[int, int]] = []
    for rec, stem, rgb in job.items():
        image_name = _write_image_copy(rec, rgb, stage / "images", stem)
        write_png_atomic(stage / "labels" / f"{stem}.png", lut[label_map(rec)])
        pairs.append(f"images/{image_name} labels/{stem}.png")
        sizes.append((rec.width, rec.height))
    if not pairs:
        raise _nothing_read(job)
    train, val = _split(len(pairs), job.val_fraction, job.seed, job.warnings)
    (stage / "train.txt").write_text("".join(pairs[i] + "\n" for i in train), encoding="utf-8")
    (stage / "val.txt").write_text("".join(pairs[i] + "\n" for i in val), encoding="utf-8")
    names = ["background"] + [lab.name for lab in labels]
    (stage / "labels.txt").write_text("".join(n + "\n" for n in names), encoding="utf-8")
    contiguous = all(lab.id == k for k, lab in enumerate(labels, 1))
    classes = [{"index": 0, "name": "background", "label_id": 0, "color": [0, 0, 0]}]
    classes += [{"index": k, "name": lab.name, "label_id": lab.id, "color": list(lab.color)}
                for k, lab in enumerate(labels, 1)]
    _write_json(stage / "label_ids.json", {
        "note": ("the label PNGs hold the class index; label_id is the id in the annotation project"
                 + ("" if contiguous else " (its ids are not contiguous, so they were renumbered 1..K)")),
        "contiguous": contiguous, "classes": classes}, indent=2)
    if not contiguous:
        job.warnings.add("label ids " + ", ".join(str(lab.id) for lab in labels)
                         + f" were renumbered 1..{len(labels)} in the label PNGs (see label_ids.json)")
    if not labels:
        job.warnings.add("no labels: the label PNGs are all background (num_classes 1)")
    _write_train_config(job, stage, names, len(train), len(val), sizes)


def _write_train_config(job: _Job, stage: Path, names: list[str], n_train: int, n_val: int,
                        sizes: list[tuple[int, int]]) -> None:
    import yaml

    root = job.out_dir.resolve()
    crop = [min(512, _ceil32(max(w for w, _ in sizes))), min(512, _ceil32(max(h for _, h in sizes)))]
    palette = [[0, 0, 0]] + [list(lab.color) for lab in job.labels]
    common = {"type": "FileListDataset", "dataset_root": str(root), "num_classes": len(names),
              "class_names": names, "palette": palette}
    cfg = {
        "batch_size": max(1, min(4, n_train)),  # a small export: no batch larger than its training set
        "iters": 2000,
        "seed": 0,
        "model": {"type": "lraspp_mobilenetv3_large"},
        "train_dataset": {**common, "file_list": str(root / "train.txt"), "transforms": [
            {"type": "ResizeStepScaling", "min_scale_factor": 0.5, "max_scale_factor": 2.0, "scale_step_size": 0.25},
            {"type": "RandomPaddingCrop", "crop_size": crop},
            {"type": "RandomHorizontalFlip"},
            {"type": "RandomDistort", "brightness_range": 0.4, "contrast_range": 0.4, "saturation_range": 0.4}]},
        "val_dataset": {**common, "file_list": str(root / "val.txt"), "transforms": []},
        "loss": {"types": [{"type": "CrossEntropyLoss"}], "coef": [1.0]},
        "optimizer": {"type": "AdamW", "weight_decay": 0.01},
        "lr_scheduler": {"type": "PolynomialDecay", "learning_rate": 0.002, "end_lr": 0.0, "power": 0.9,
                         "warmup_iters": 100, "warmup_start_lr": 1.0e-5},
        "train": {"log_iters": 20, "eval_interval": 500, "save_interval": 500, "keep_checkpoint_max": 2,
                  "save_dir": str(root.parent / f"{root.name}-train")},
    }
    head = (f"# Written by `ppseg annotate` with this export ({n_train} training, {n_val} validation images,\n"
            f"# {len(names)} classes: {', '.join(names)}). Train with:\n"
            f"#   ppseg train -c {root / 'config.yml'}\n"
            "# Paths are absolute: move the export and they need editing. The run goes to train.save_dir,\n"
            "# outside the export (a new export replaces the export folder).\n")
    (stage / "config.yml").write_text(head + yaml.safe_dump(cfg, sort_keys=False, allow_unicode=True),
                                      encoding="utf-8")


def _pseudocolor(job: _Job, stage: Path) -> None:
    palette = np.array([default_color(i) for i in range(256)], np.uint8)
    for lab in job.labels:
        palette[lab.id] = lab.color
    for rec, stem, _ in job.items(need_image=False):
        write_png_atomic(stage / f"{stem}.png", label_map(rec), palette=palette)
    (stage / "labels.txt").write_text(format_labels_txt(job.labels), encoding="utf-8")


def _coco(job: _Job, stage: Path) -> None:
    try:
        from pycocotools import mask as mask_utils
    except ImportError:
        raise PPSegError('COCO RLE needs pycocotools: pip install "ppseg[annotate]"') from None
    images, annotations = [], []
    for rec, stem, rgb in job.items():
        image_id = len(images) + 1
        name = _write_image_copy(rec, rgb, stage / "images", stem)
        images.append({"id": image_id, "file_name": name, "width": rec.width, "height": rec.height})
        for obj, crop, x, y in _visible(rec, job.warnings):
            h, w = crop.shape
            outers, holes = _edge_polygons(crop)
            segmentation: Any = None
            if not holes and outers and all(len(p) >= 3 for p in outers):
                local = [_round_pts(p) for p in outers]  # rasterised back in the crop, as COCO tools will
                back = mask_utils.merge(mask_utils.frPyObjects(local, h, w))
                want = mask_utils.encode(np.asfortranarray(crop.astype(np.uint8)))
                if float(mask_utils.iou([back], [want], [0])[0][0]) >= COCO_POLYGON_MIN_IOU:
                    segmentation = [_round_pts(p + (x, y)) for p in outers]
            if segmentation is None:
                full = np.zeros((rec.height, rec.width), np.uint8, order="F")
                full[y:y + h, x:x + w] = crop
                rle = mask_utils.encode(full)
                segmentation = {"size": [rec.height, rec.width], "counts": rle["counts"].decode("ascii")}
            annotations.append({"id": len(annotations) + 1, "image_id": image_id, "category_id": obj.label,
                                "bbox": [float(x), float(y), float(w), float(h)], "area": float(crop.sum()),
                                "iscrowd": 0, "segmentation": segmentation})
    if not images:
        raise _nothing_read(job)
    categories = [{"id": lab.id, "name": lab.name, "supercategory": ""} for lab in job.labels]
    _write_json(stage / "annotations.json", {
        "info": {"description": "ppseg annotate export", "version": "1.0"}, "licenses": [],
        "images": images, "annotations": annotations, "categories": categories})


def _labelme(job: _Job, stage: Path) -> None:
    count = 0
    for rec, stem, rgb in job.items():
        name = _write_image_copy(rec, rgb, stage, stem)
        shapes = []
        for obj, crop, x, y in _visible(rec, job.warnings):
            outers, holes = _edge_polygons(crop)
            label = job.name_of(obj.label)
            if holes:
                job.warnings.add(f"{rec.key}: object {obj.id} ({label}) has {len(holes)} hole(s), which LabelMe "
                                 "polygons cannot express; exported its outline only")
            for p in outers:
                if len(p) >= 3:
                    shapes.append({"label": label, "points": [[round(float(a), 3), round(float(b), 3)]
                                                              for a, b in p + (x, y)],
                                   "group_id": obj.id, "shape_type": "polygon", "flags": {}})
        _write_json(stage / f"{stem}.json", {
            "version": _LABELME_VERSION, "flags": {}, "shapes": shapes, "imagePath": name, "imageData": None,
            "imageHeight": rec.height, "imageWidth": rec.width}, indent=2)
        count += 1
    if not count:
        raise _nothing_read(job)


def _yolo(job: _Job, stage: Path) -> None:
    index = {lab.id: k for k, lab in enumerate(job.labels)}
    (stage / "labels").mkdir()
    count = 0
    for rec, stem, rgb in job.items():
        _write_image_copy(rec, rgb, stage / "images", stem)
        lines = []
        scale = np.array([rec.width, rec.height], np.float64)
        for obj, crop, x, y in _visible(rec, job.warnings):
            outers, holes = _edge_polygons(crop)
            if holes:
                job.warnings.add(f"{rec.key}: object {obj.id} ({job.name_of(obj.label)}) has {len(holes)} hole(s), "
                                 "which YOLO polygons cannot express; exported its outline only")
            for p in outers:
                if len(p) < 3:
                    continue
                xy = np.clip((p + (x, y)) / scale, 0.0, 1.0)
                lines.append(f"{index[obj.label]} " + " ".join(f"{v:.6f}" for v in xy.reshape(-1)))
        (stage / "labels" / f"{stem}.txt").write_text("".join(line + "\n" for line in lines), encoding="utf-8")
        count += 1
    if not count:
        raise _nothing_read(job)
    import yaml

    data = {"path": str(job.out_dir.resolve()), "train": "images", "val": "images",
            "names": {k: lab.name for k, lab in enumerate(job.labels)}}
    (stage / "data.yaml").write_text(
        "# Ultralytics YOLO segmentation dataset written by `ppseg annotate` (train and val are the same images).\n"
        + yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")


def _rgba(job: _Job, stage: Path) -> None:
    count = 0
    for rec, stem, rgb in job.items():
        count += 1
        for obj, crop, x, y in _visible(rec, job.warnings):
            h, w = crop.shape
            out = np.empty((h, w, 4), np.uint8)
            out[..., :3] = rgb[y:y + h, x:x + w]
            out[..., 3] = np.where(crop, 255, 0)
            label = _safe_name(job.name_of(obj.label), "label")
            write_png_atomic(stage / f"{stem}_{obj.id}_{label}.png", out)
    if not count:
        raise _nothing_read(job)


_WRITERS: dict[str, Callable[[_Job, Path], None]] = {
    "paddleseg": _paddleseg, "pseudocolor": _pseudocolor, "coco": _coco, "labelme": _labelme,
    "yolo": _yolo, "rgba": _rgba}


# --------------------------------------------------------------------------- staging
def _remove(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink(missing_ok=True)
    else:
        shutil.rmtree(path, ignore_errors=True)


def _clean_stale(parent: Path, name: str) -> None:
    """Remove this export's leftovers from a killed run (``.<name>.tmp-*`` / ``.<name>.old-*``)."""
    now = time.time()
    for pattern in (f".{name}.tmp-*", f".{name}.old-*"):
        for p in parent.glob(pattern):
            try:
                if now - p.lstat().st_mtime > _STALE_SECONDS:
                    _remove(p)
            except OSError:
                pass


def _staged(out_dir: Path, build: Callable[[Path], None]) -> int:
    """Build into a sibling temp folder, then swap it in for ``out_dir``; returns the file count."""
    parent = out_dir.parent
    if out_dir.exists() and not out_dir.is_dir():
        raise PPSegError(f"export folder {out_dir} exists and is not a folder; move it away")
    try:
        parent.mkdir(parents=True, exist_ok=True)
        _clean_stale(parent, out_dir.name)
        stage = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=parent))
    except OSError as e:
        raise PPSegError(f"cannot create the export folder in {parent}: {e.strerror or e}") from None
    try:
        try:
            build(stage)
        except OSError as e:
            where = e.filename or stage
            raise PPSegError(f"export to {out_dir}: cannot write {where}: {e.strerror or e}") from None
        files = sum(1 for p in stage.rglob("*") if p.is_file())
        try:
            replace_folder(stage, out_dir)
        except OSError as e:
            raise PPSegError(f"cannot replace the export folder {out_dir}: {e.strerror or e}") from None
    except BaseException:
        _remove(stage)
        raise
    return files


# --------------------------------------------------------------------------- entry point
def export_annotations(fmt: str, records: Sequence[ImageRecord], labels: Sequence[Label], out_dir: Path,
                       read_image: Callable[[ImageRecord], np.ndarray], *, val_fraction: float = 0.2,
                       seed: int = 0, only_done: bool = False) -> ExportResult:
    """Export ``records`` in format ``fmt`` (one of :data:`FORMATS`) into ``out_dir``, replacing
    the folder's previous content atomically-ish (see the module docstring).

    ``read_image(record)`` gives the record's image as RGB uint8 ``H x W x 3``; an image it
    fails on is skipped with a warning. ``val_fraction`` and ``seed`` choose the PaddleSeg
    validation images (at least one, never all but with one image); ``only_done`` exports only
    the images marked done. Problems with the arguments or with writing raise :class:`PPSegError`.

    Layouts (``stem`` is the image's key without suffix, folders joined by ``__``, spaces
    replaced by ``_``, made unique):

    * ``paddleseg``: ``images/``, ``labels/<stem>.png`` (gray class indices, 0 background,
      labels renumbered 1..K in id order), ``train.txt``/``val.txt`` (``images/x.jpg
      labels/x.png``), ``labels.txt`` (class names, background first), ``label_ids.json`` (index ->
      label id), ``config.yml`` (a training config for ``ppseg train -c``).
    * ``pseudocolor``: ``<stem>.png`` palette PNGs, index = label id, plus ``labels.txt``.
    * ``coco``: ``annotations.json`` (instances; polygons, RLE for masks with holes) + ``images/``.
    * ``labelme``: ``<stem>.json`` next to the image copy ``<stem>.<ext>``.
    * ``yolo``: ``images/``, ``labels/<stem>.txt`` (``cls x1 y1 ...`` normalised), ``data.yaml``.
    * ``rgba``: ``<stem>_<object id>_<label>.png``: each object cut out to its bbox, alpha = mask.
    """
    if fmt not in _WRITERS:
        raise PPSegError(f"unknown export format {fmt!r}; choose one of: {', '.join(FORMATS)}")
    if isinstance(val_fraction, bool) or not isinstance(val_fraction, (int, float)) or not 0 <= val_fraction < 1:
        raise PPSegError(f"val_fraction must be a number in [0, 1), got {val_fraction!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise PPSegError(f"seed must be a non-negative integer, got {seed!r}")
    out_dir = Path(out_dir)
    warnings = _Warnings()
    chosen = _select(records, only_done, warnings)
    job = _Job(chosen, _unique_stems(chosen), check_labels(list(labels)), out_dir, read_image, warnings,
               float(val_fraction), seed)
    files = _staged(out_dir, lambda stage: _WRITERS[fmt](job, stage))
    return ExportResult(fmt, out_dir, files, warnings.final())
