"""Evaluation datasets for click-based interactive segmentation (no torch).

:func:`open_click_dataset` recognises three layouts and gives a :class:`ClickDataset`: a sized,
re-iterable sequence of :class:`ClickSample` ``(name, image, gt, ignore)`` tuples, one per object
(image ``H x W x 3`` uint8 RGB, ``gt`` ``H x W`` bool, ``ignore`` ``H x W`` bool or ``None``):

* **mask folders**: ``DIR/images/`` and ``DIR/masks/`` with matching file names up to the suffix
  (any image suffix: ``.jpg``, ``.png``, ``.bmp``...; subfolders allowed). This is the GrabCut and
  Berkeley layout of RITM / EdgeFlow (also accepted under RITM's own folder names:
  ``data_GT/`` + ``boundary_GT/`` for GrabCut). Mask values: ``0``/``1`` masks are binary;
  otherwise values above 128 are the object, exactly 128 is ignored (GrabCut's unknown band)
  and the rest is background. ``DIR/img/`` + ``DIR/gt/`` (RITM's DAVIS layout) is read as plain
  binary masks: any value above 0 is the object, nothing is ignored. A colour mask is read
  as the largest of its channels.
* **PaddleSeg list**: ``DIR/val.txt`` (or the list file given) of ``image label`` lines, paths
  relative to ``DIR``; every label map is split into objects by
  :func:`ppseg.interactive.objects.objects_from_label_map` (``split_mode``, ``min_area``,
  ``ignore_index``). A map with no object left (all background, or every part under
  ``min_area``) simply contributes none.

Everything is checked when the dataset is opened, before any model runs, and a problem is one
:class:`ppseg.errors.DataError` line naming the file: images and masks that do not pair up
(the first few unpaired names), a mask that is not the size of its image, a mask with no object
pixels (or only ignored ones), unreadable files, list lines that do not parse. Masks and labels
are read (and split) at that time; images are decoded only when iterated (their size is taken
from the file header up front). The order is deterministic: sorted file names (mask folders),
the list's order (lists), then the objects' order within a map.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, NamedTuple

import numpy as np

from ppseg.data.io import IMAGE_SUFFIXES, list_images, read_image_quiet, read_label
from ppseg.errors import ConfigError, DataError
from ppseg.fileio import read_utf8

from .objects import SPLIT_MODES, SplitMode, objects_from_label_map

__all__ = ["ClickSample", "ClickDataset", "open_click_dataset", "read_list", "find_list", "mask_to_binary",
           "FOLDER_LAYOUTS"]

MaskRule = Literal["grabcut", "binary"]

#: (images folder, masks folder, how mask values read, what to call it), tried in this order
FOLDER_LAYOUTS: tuple[tuple[str, str, MaskRule, str], ...] = (
    ("images", "masks", "grabcut", "images/ + masks/ (GrabCut/Berkeley)"),
    ("data_GT", "boundary_GT", "grabcut", "data_GT/ + boundary_GT/ (RITM GrabCut)"),
    ("img", "gt", "binary", "img/ + gt/ (RITM DAVIS)"),
)

#: how many unpaired names an error lists
_SHOW = 5


class ClickSample(NamedTuple):
    """One object to segment; unpacks as ``name, image, gt, ignore``."""

    name: str
    image: np.ndarray
    gt: np.ndarray
    ignore: np.ndarray | None


def mask_to_binary(mask: np.ndarray, rule: MaskRule = "grabcut") -> tuple[np.ndarray, np.ndarray | None]:
    """``(object, ignore)`` bool maps of a mask image's values (see the module docstring);
    ``ignore`` is ``None`` when no pixel is ignored."""
    m = np.asarray(mask)
    if rule == "binary":
        return m > 0, None
    if m.size and int(m.max()) <= 1:
        return m == 1, None
    ignore = m == 128
    return m > 128, (ignore if ignore.any() else None)


def _rel_stem(path: Path, root: Path) -> str:
    return path.relative_to(root).with_suffix("").as_posix()


def _listing(names: list[str]) -> str:
    more = f" (and {len(names) - _SHOW} more)" if len(names) > _SHOW else ""
    return ", ".join(names[:_SHOW]) + more


def _header_size(path: Path) -> tuple[int, int] | None:
    """``(height, width)`` from the file header, or ``None`` when PIL cannot tell (decoded later)."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            w, h = im.size
            try:
                orientation = im.getexif().get(0x0112, 1)
            except Exception:  # noqa: BLE001 - a broken EXIF block: OpenCV decides at read time
                orientation = 1
    except Exception:  # noqa: BLE001 - not readable by PIL: read_image says what is wrong, later
        return None
    return (w, h) if orientation in (5, 6, 7, 8) else (h, w)  # OpenCV applies the EXIF rotation


def _check_size(image_path: Path, mask_path: Path, shape: tuple[int, ...], what: str) -> None:
    size = _header_size(image_path)
    if size is not None and size != tuple(shape[:2]):
        raise DataError(f"{what} '{mask_path}' is {shape[1]}x{shape[0]} but its image '{image_path}' is "
                        f"{size[1]}x{size[0]} (width x height)")


@dataclass
class _Entry:
    image: Path
    mask: Path
    name: str
    index: int = 0  # the object's index among its label map's objects (lists)


@dataclass
class ClickDataset:
    """Objects to segment, in a fixed order; ``len()``, ``ds[i]`` and iteration give
    :class:`ClickSample` s. Build it with :func:`open_click_dataset`."""

    root: Path
    layout: str
    """``"masks"`` (folders of binary masks) or ``"list"`` (label maps split into objects)."""
    description: str
    entries: list[_Entry] = field(repr=False)
    mask_rule: MaskRule = "grabcut"
    split: dict = field(default_factory=dict)
    """the ``objects_from_label_map`` options of a list dataset (``mode``, ``min_area``, ``ignore_index``)."""
    num_images: int = 0

    def __len__(self) -> int:
        return len(self.entries)

    def __iter__(self) -> Iterator[ClickSample]:
        cache: dict[tuple[Path, Path], tuple[np.ndarray, list]] = {}
        for entry in self.entries:
            yield self._load(entry, cache)

    def __getitem__(self, i: int) -> ClickSample:
        return self._load(self.entries[i], {})

    def to_dict(self) -> dict:
        """What the dataset is, for a JSON report."""
        return {"root": str(self.root), "layout": self.layout, "description": self.description,
                "num_images": self.num_images, "num_objects": len(self), **({"split": self.split} if self.split else {})}

    # ------------------------------------------------------------------ loading
    def _read_image(self, entry: _Entry, shape: tuple[int, ...]) -> np.ndarray:
        image = read_image_quiet(entry.image)
        if image.shape[:2] != tuple(shape):
            what = "mask" if self.layout == "masks" else "label"
            raise DataError(f"{what} '{entry.mask}' is {shape[1]}x{shape[0]} but its image '{entry.image}' is "
                            f"{image.shape[1]}x{image.shape[0]} (width x height)")
        return image

    def _load(self, entry: _Entry, cache: dict) -> ClickSample:
        if self.layout == "masks":
            gt, ignore = mask_to_binary(_read_mask(entry.mask), self.mask_rule)
            return ClickSample(entry.name, self._read_image(entry, gt.shape), gt, ignore)
        key = (entry.image, entry.mask)
        if key not in cache:  # consecutive objects of one map: read and split it once
            cache.clear()
            label = read_label(entry.mask)
            objects = objects_from_label_map(label, **self.split)
            cache[key] = (self._read_image(entry, label.shape), objects)
        image, objects = cache[key]
        if entry.index >= len(objects):  # the file changed since the dataset was opened
            raise DataError(f"label '{entry.mask}' changed while it was being evaluated")
        obj = objects[entry.index]
        return ClickSample(entry.name, image, obj.mask, obj.ignore)


def _read_mask(path: Path) -> np.ndarray:
    """A mask file as a 2-D integer array; a colour mask gives the largest channel value per pixel."""
    try:
        mask = read_label(path, allow_rgb=True)
    except DataError as e:  # read_label speaks of labels
        raise DataError(str(e).replace("cannot read label", "cannot read mask", 1)) from None
    if mask.ndim == 3:
        mask = mask.max(axis=2)
    return mask


# ---------------------------------------------------------------------- layouts
def _open_mask_folders(root: Path, img_dir: str, mask_dir: str, rule: MaskRule, description: str,
                       limit: int | None) -> ClickDataset:
    images_root, masks_root = root / img_dir, root / mask_dir
    images = list_images(images_root)
    masks = list_images(masks_root)
    if not images:
        raise DataError(f"{images_root}: holds no images ({', '.join(IMAGE_SUFFIXES)})")

    def by_stem(files: list[Path], base: Path, what: str) -> dict[str, Path]:
        out: dict[str, Path] = {}
        for f in files:
            stem = _rel_stem(f, base)
            if stem in out:
                raise DataError(f"{base}: two {what} files for '{stem}': '{out[stem].name}' and '{f.name}'; keep one")
            out[stem] = f
        return out

    image_by = by_stem(images, images_root, "image")
    mask_by = by_stem(masks, masks_root, "mask")
    lonely_images = sorted(set(image_by) - set(mask_by))
    lonely_masks = sorted(set(mask_by) - set(image_by))
    if lonely_images or lonely_masks:
        parts = []
        if lonely_images:
            parts.append(f"{len(lonely_images)} image(s) in {img_dir}/ without a mask in {mask_dir}/: "
                         + _listing([image_by[s].relative_to(images_root).as_posix() for s in lonely_images]))
        if lonely_masks:
            parts.append(f"{len(lonely_masks)} mask(s) in {mask_dir}/ without an image in {img_dir}/: "
                         + _listing([mask_by[s].relative_to(masks_root).as_posix() for s in lonely_masks]))
        raise DataError(f"{root}: images and masks do not pair up (same name up to the suffix): " + "; ".join(parts))

    entries: list[_Entry] = []
    for stem in sorted(image_by):
        if limit is not None and len(entries) >= limit:
            break
        image_path, mask_path = image_by[stem], mask_by[stem]
        mask = _read_mask(mask_path)
        gt, ignore = mask_to_binary(mask, rule)
        if not gt.any():
            if ignore is not None and ignore.all():
                raise DataError(f"mask '{mask_path}' is all ignore (128): no object to segment")
            values = ", ".join(str(int(v)) for v in np.unique(mask)[:8])
            want = "values above 0" if rule == "binary" else "value 255 (or 1 in a 0/1 mask)"
            raise DataError(f"mask '{mask_path}' has no object pixels (values: {values}; the object is {want})")
        _check_size(image_path, mask_path, mask.shape, "mask")
        entries.append(_Entry(image_path, mask_path, stem))
    return ClickDataset(root, "masks", f"{root} ({description})", entries, mask_rule=rule,
                        num_images=len(entries))


def find_list(root: Path, list_file: str | os.PathLike | None) -> Path:
    if list_file is None:
        return root / "val.txt"
    given = Path(list_file)
    if not str(list_file).strip():
        raise ConfigError("the list file name is empty")
    for candidate in (given, root / given):
        if candidate.is_file():
            return candidate
        if candidate.is_dir():
            raise DataError(f"list file '{candidate}' is a folder, not a text file of 'image label' lines")
    raise DataError(f"list file '{list_file}' not found (also looked in '{root}')")


def read_list(root: Path, list_path: Path) -> list[tuple[Path, Path, str]]:
    """``(image, label, image stem)`` of a PaddleSeg list's ``image label`` lines (paths relative to
    ``root``; blank and ``#`` lines skipped); a bad line or a missing file is one line naming it."""
    text = read_utf8(list_path, "file list", DataError)
    pairs: list[tuple[Path, Path, str]] = []
    for lineno, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        where = f"{list_path}:{lineno}"
        if any(ord(ch) < 32 and ch != "\t" for ch in line):
            raise DataError(f"{where}: holds control characters: a binary file, not a file list")
        parts = line.split()
        if len(parts) != 2:
            raise DataError(f"{where}: expected 'image label' (two paths), got {len(parts)} field(s)")
        image_path, label_path = (root / p for p in parts)
        for kind, p in (("image", image_path), ("label", label_path)):
            if not p.is_file():
                raise DataError(f"{where}: {kind} '{p}' {'is a folder' if p.is_dir() else 'does not exist'}")
        pairs.append((image_path, label_path, Path(parts[0]).with_suffix("").as_posix()))
    if not pairs:
        raise DataError(f"list file '{list_path}' has no 'image label' lines")
    return pairs


def _open_list(root: Path, list_path: Path, *, split_mode: SplitMode, min_area: int, ignore_index: int | None,
               classes, limit: int | None, background: int | None = 0) -> ClickDataset:
    pairs = read_list(root, list_path)
    split = {"mode": split_mode, "min_area": min_area, "ignore_index": ignore_index, "background": background}
    if classes is not None:
        split["classes"] = sorted(int(c) for c in classes)
    entries: list[_Entry] = []
    images = 0
    for image_path, label_path, stem in pairs:
        if limit is not None and len(entries) >= limit:
            break
        label = read_label(label_path)
        objects = objects_from_label_map(label, **split)
        if not objects:
            continue
        _check_size(image_path, label_path, label.shape, "label")
        images += 1
        for k, obj in enumerate(objects):
            if limit is not None and len(entries) >= limit:
                break
            name = f"{stem}:{obj.class_id}" if split_mode != "components" else f"{stem}:{obj.class_id}.{k}"
            entries.append(_Entry(image_path, label_path, name, k))
    if not entries:
        raise DataError(f"list file '{list_path}': no label map holds an object ({split_mode} of at least "
                        f"{min_area} pixels); lower the minimum area or check the labels")
    desc = f"{list_path} (PaddleSeg list, {split_mode}, min area {min_area})"
    return ClickDataset(root, "list", desc, entries, split=split, num_images=images)


def open_click_dataset(
    path: str | os.PathLike,
    *,
    list_file: str | os.PathLike | None = None,
    split_mode: SplitMode = "components",
    min_area: int = 1,
    ignore_index: int | None = 255,
    classes=None,
    limit: int | None = None,
    background: int | None = 0,
) -> ClickDataset:
    """Open the evaluation dataset in folder ``path``, detecting its layout (module docstring).

    Args:
        path: the dataset folder.
        list_file: a PaddleSeg list of ``image label`` lines (as given, or relative to
            ``path``); default ``path/val.txt`` when there are no mask folders.
        split_mode, min_area, ignore_index, classes, background: how label maps of a list are cut
            into objects (:func:`~ppseg.interactive.objects.objects_from_label_map`); ``background``
            is the class that is never an object (e.g. 1 for EM membranes, whose cells are class 0).
        limit: keep the first ``limit`` objects (only their files are read).

    Raises:
        DataError: no known layout, or a file is missing, unreadable or inconsistent.
        ConfigError: an option is out of range.
    """
    if split_mode not in SPLIT_MODES:
        raise ConfigError(f"split_mode must be one of {', '.join(SPLIT_MODES)}, got {split_mode!r}")
    if isinstance(min_area, bool) or not isinstance(min_area, (int, np.integer)) or min_area < 0:
        raise ConfigError(f"min_area must be a whole number of pixels >= 0, got {min_area!r}")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, (int, np.integer)) or limit < 1):
        raise ConfigError(f"limit must be a whole number >= 1, got {limit!r}")
    if not str(path).strip():
        raise ConfigError("the dataset path is empty")
    root = Path(path)
    if not root.exists():
        raise DataError(f"{root}: no such dataset folder")
    if not root.is_dir():
        raise DataError(f"{root}: not a folder (give the dataset folder)")
    if list_file is None:
        for img_dir, mask_dir, rule, description in FOLDER_LAYOUTS:
            if (root / img_dir).is_dir() and (root / mask_dir).is_dir():
                return _open_mask_folders(root, img_dir, mask_dir, rule, description, limit)
    list_path = find_list(root, list_file)
    if list_path.is_file():
        return _open_list(root, list_path, split_mode=split_mode, min_area=int(min_area), ignore_index=ignore_index,
                          classes=classes, limit=limit, background=background)
    layouts = "; ".join(f"{i}/ + {m}/" for i, m, _, _ in FOLDER_LAYOUTS)
    raise DataError(f"{root}: not a click-evaluation dataset: expected mask folders ({layouts}) or a "
                    "val.txt list of 'image label' lines (or name the list file)")
