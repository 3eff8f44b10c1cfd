"""Segmentation datasets (PaddleSeg layouts) returning numpy samples.

A :class:`~ppseg.data.sample.Sample` is requested with ``ds[i]`` or ``ds[(i, seed)]``; the augmentation rng
is ``np.random.default_rng(seed)`` (``seed = i`` for a bare index), so the
result does not depend on the number of workers and can be replayed.

Label files may use any ``ignore_index``; it is remapped on load to
:data:`IGNORE_INDEX` (255), the only ignore value losses and metrics see.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
from torch.utils.data import Dataset as _TorchDataset

from ppseg.data.io import IMAGE_SUFFIXES, list_images, read_image, read_label
from ppseg.data.sample import Kind, Sample
from ppseg.data.palette import CITYSCAPES_CLASSES, CITYSCAPES_PALETTE, default_palette
from ppseg.data.transforms import Compose, build_transforms
from ppseg.config import MAX_CLASSES
from ppseg.errors import ConfigError, DataError
from ppseg.fileio import read_utf8

__all__ = [
    "IGNORE_INDEX",
    "SegDataset",
    "FileListDataset",
    "PaddleDataset",
    "FolderDataset",
    "CityscapesDataset",
    "ADE20KDataset",
    "DATASETS",
]

IGNORE_INDEX = 255
Mode = Literal["train", "val"]


class SegDataset(_TorchDataset):
    """Base dataset: a list of ``(image_path, label_path | None)`` pairs.

    Subclasses fill ``self.samples`` and call :meth:`_finish_init`.

    Args:
        transforms: transform objects (or ``{"type": ...}`` dicts), or ``None``.
        num_classes: number of classes; label values must be in ``[0, num_classes)``
            or equal ``ignore_index``.
        ignore_index: the ignore value used in the label files (remapped to 255).
        class_names: names, default ``class_0 ..``.
        palette: ``num_classes x 3`` RGB colours, default :func:`default_palette`.
        mode: ``"train"`` (image and label transformed together) or ``"val"``
            (transforms on the image only; the original-size label is returned).
        verify_files: check at construction that every listed file exists.
    """

    def __init__(
        self,
        *,
        transforms: Sequence[Any] | Compose | None = None,
        num_classes: int,
        ignore_index: int = IGNORE_INDEX,
        class_names: Sequence[str] | None = None,
        palette: Sequence[Sequence[int]] | np.ndarray | None = None,
        mode: Mode = "train",
        verify_files: bool = True,
    ):
        name = type(self).__name__
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or not 1 <= num_classes <= MAX_CLASSES:
            raise ConfigError(f"{name}: `num_classes` must be an integer in [1, {MAX_CLASSES}], got {num_classes!r}")
        if isinstance(ignore_index, bool) or not isinstance(ignore_index, int) or ignore_index < 0:
            raise ConfigError(f"{name}: `ignore_index` must be an integer >= 0, got {ignore_index!r}")
        if 0 <= ignore_index < num_classes:
            raise ConfigError(
                f"{name}: `ignore_index` ({ignore_index}) must not be a class id in [0, {num_classes})"
            )
        if mode not in ("train", "val"):
            raise ConfigError(f"{name}: `mode` must be 'train' or 'val', got {mode!r}")
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.mode: Mode = mode
        self.verify_files = bool(verify_files)
        if class_names is None:
            class_names = [f"class_{i}" for i in range(num_classes)]
        if len(class_names) != num_classes:
            raise ConfigError(f"{name}: `class_names` has {len(class_names)} names for {num_classes} classes")
        self.class_names = [str(c) for c in class_names]
        if palette is None:
            palette = default_palette(max(num_classes, 1))
        pal = np.asarray(palette)
        if pal.ndim != 2 or pal.shape != (num_classes, 3) or pal.min() < 0 or pal.max() > 255:
            raise ConfigError(f"{name}: `palette` must be {num_classes} [r, g, b] triples in 0..255")
        self.palette = pal.astype(np.uint8)
        if isinstance(transforms, Compose):
            self.transforms = transforms
        else:
            self.transforms = build_transforms(list(transforms) if transforms is not None else [])
        self.samples: list[tuple[str, str | None]] = []

    # ------------------------------------------------------------------ hooks
    # Layouts with a fixed class set (Cityscapes, ADE20K) override these.
    DEFAULT_NUM_CLASSES: int | None = None
    DEFAULT_CLASS_NAMES: Sequence[str] | None = None
    DEFAULT_PALETTE: Sequence[Sequence[int]] | np.ndarray | None = None

    @classmethod
    def with_defaults(cls, kwargs: dict[str, Any]) -> dict[str, Any]:
        """``kwargs`` with the layout's default num_classes, class names and palette filled in."""
        out = dict(kwargs)
        if cls.DEFAULT_NUM_CLASSES is not None:
            out.setdefault("num_classes", cls.DEFAULT_NUM_CLASSES)
            if out["num_classes"] == cls.DEFAULT_NUM_CLASSES:
                if cls.DEFAULT_CLASS_NAMES is not None:
                    out.setdefault("class_names", list(cls.DEFAULT_CLASS_NAMES))
                if cls.DEFAULT_PALETTE is not None:
                    out.setdefault("palette", np.asarray(cls.DEFAULT_PALETTE).tolist())
        return out

    def invalid_values(self, values: np.ndarray) -> np.ndarray:
        """Return the raw label values (from a label file) that are not allowed."""
        v = np.asarray(values)
        bad = ((v < 0) | (v >= self.num_classes)) & (v != self.ignore_index)
        return v[bad]

    def remap_label(self, raw: np.ndarray) -> np.ndarray:
        """Map a raw (validated) label to internal ids with ignore = 255."""
        lab = raw.astype(np.int64)
        if self.ignore_index != IGNORE_INDEX:
            lab[raw == self.ignore_index] = IGNORE_INDEX
        return lab

    def _finish_init(self, what: str) -> None:
        if not self.samples:
            raise DataError(f"{what}: no samples found")
        if self.mode == "train":
            for img, lab in self.samples:
                if lab is None:
                    raise DataError(f"{what}: image '{img}' has no label (required in train mode)")

    # ------------------------------------------------------------------ access
    def __len__(self) -> int:
        return len(self.samples)

    def load_label(self, path: str) -> np.ndarray:
        """Read, validate and remap one label file (int64, ignore = 255)."""
        raw = read_label(path)
        if raw.size and (raw.min() < 0 or raw.max() >= self.num_classes):
            bad = self.invalid_values(np.unique(raw))
            if bad.size:
                shown = ", ".join(str(int(b)) for b in bad[:10]) + (" ..." if bad.size > 10 else "")
                raise DataError(
                    f"label '{path}' has values outside [0, {self.num_classes}) that are not "
                    f"ignore_index {self.ignore_index}: {shown} (run `ppseg check-data`)"
                )
        return self.remap_label(raw)

    def __getitem__(self, item: int | tuple[int, int]) -> Sample:
        """One :class:`~ppseg.data.sample.Sample`: the transformed image (``C x H x W`` float32) and,
        in train mode, the ``"label"`` mask transformed with it; in val mode the label stays at the
        original size in ``sample.original`` (evaluation maps the prediction back through ``sample.ops``)."""
        if isinstance(item, (tuple, list)):
            index, seed = int(item[0]), int(item[1])
        else:
            index = seed = int(item)
        img_path, label_path = self.samples[index]
        img = read_image(img_path).astype(np.float32)
        label = self.load_label(label_path) if label_path is not None else None
        if label is not None and label.shape != img.shape[:2]:
            raise DataError(
                f"image '{img_path}' is {img.shape[0]}x{img.shape[1]} but label "
                f"'{label_path}' is {label.shape[0]}x{label.shape[1]} (HxW)"
            )
        train = self.mode == "train"
        sample = Sample(img, meta={"img_path": img_path, "label_path": label_path, "index": index, "seed": seed})
        if label is not None:
            (sample.set if train else sample.keep_original)("label", Kind.MASK, label)
        sample = self.transforms(sample, np.random.default_rng(seed))
        out_img = np.ascontiguousarray(sample.image.transpose(2, 0, 1), dtype=np.float32)
        if train:
            out_label = np.ascontiguousarray(sample.get("label"), dtype=np.int64)
            if out_label.shape != out_img.shape[1:]:
                raise DataError(f"transforms gave image {out_img.shape[1:]} but label {out_label.shape}")
            sample.set("label", Kind.MASK, out_label)
        sample.image = out_img
        return sample


# --------------------------------------------------------------------------- file lists
class FileListDataset(SegDataset):
    """PaddleSeg file-list dataset: ``image label`` per line, relative to ``dataset_root``.

    ``file_list`` is used as given if it exists, else looked up under
    ``dataset_root``. Lines with only an image are allowed in val mode (test
    lists). Missing files raise :class:`DataError` naming the list and line.
    """

    def __init__(self, *, dataset_root: str, file_list: str, separator: str = " ", **common: Any):
        super().__init__(**common)
        self.dataset_root = str(dataset_root)
        if not os.path.isdir(self.dataset_root):
            raise DataError(f"dataset_root '{self.dataset_root}' is not a directory")
        list_path = str(file_list)
        if os.path.isdir(list_path):
            raise DataError(f"file list '{list_path}' is a folder, not a text file of 'image label' lines")
        for candidate in (
            list_path,
            os.path.join(self.dataset_root, list_path),
            os.path.join(self.dataset_root, os.path.basename(list_path)),
        ):
            if os.path.isfile(candidate):
                list_path = candidate
                break
        else:
            raise DataError(f"file list '{file_list}' not found (also looked in '{self.dataset_root}')")
        self.file_list = list_path
        self.separator = separator
        text = read_utf8(list_path, "file list", DataError)
        for lineno, line in enumerate(text.splitlines(), 1):
            self._parse_line(line, lineno)
        self._finish_init(f"file list '{list_path}'")

    def _parse_line(self, line: str, lineno: int) -> None:
        line = line.strip()
        if not line:
            return
        where = f"{self.file_list}:{lineno}"
        if any(ord(ch) < 32 and ch not in "\t" for ch in line):
            raise DataError(f"{where}: holds control characters (e.g. NUL bytes): a binary file, not a file list")
        parts = line.split() if self.separator == " " else [p.strip() for p in line.split(self.separator)]
        if len(parts) not in (1, 2):
            raise DataError(
                f"{where}: expected 'image{self.separator}label', got {len(parts)} fields "
                "(paths with spaces need another `separator`)"
            )
        paths = [os.path.join(self.dataset_root, p) for p in parts]
        if self.verify_files:
            for kind, p in zip(("image", "label"), paths):
                if os.path.isdir(p):
                    raise DataError(f"{where}: {kind} '{p}' is a folder, not a file")
                if not os.path.isfile(p):
                    raise DataError(f"{where}: {kind} '{p}' does not exist")
        self.samples.append((paths[0], paths[1] if len(paths) == 2 else None))


class PaddleDataset(FileListDataset):
    """PaddleSeg's ``type: Dataset`` (keys ``train_path`` / ``val_path``; picked by mode)."""

    def __init__(
        self,
        *,
        dataset_root: str,
        train_path: str | None = None,
        val_path: str | None = None,
        test_path: str | None = None,
        img_channels: int = 3,
        edge: bool = False,
        separator: str = " ",
        **common: Any,
    ):
        if img_channels != 3:
            raise ConfigError(f"Dataset: `img_channels` must be 3, got {img_channels!r}")
        if edge:
            raise ConfigError("Dataset: `edge: True` (edge labels) is not supported")
        mode = common.get("mode", "train")
        path = train_path if mode == "train" else (val_path or test_path)
        if path is None:
            key = "train_path" if mode == "train" else "val_path"
            raise ConfigError(f"Dataset: `{key}` is required in {mode} mode")
        super().__init__(dataset_root=dataset_root, file_list=path, separator=separator, **common)


# --------------------------------------------------------------------------- folders
class FolderDataset(SegDataset):
    """Images in ``img_dir`` and labels in ``label_dir`` with matching relative stems.

    ``img_dir/a/b.jpg`` pairs with ``label_dir/a/b<label_suffix>``. ``label_dir``
    may be ``None`` in val mode (prediction).
    """

    def __init__(
        self,
        *,
        img_dir: str,
        label_dir: str | None = None,
        img_suffixes: Sequence[str] = IMAGE_SUFFIXES,
        label_suffix: str = ".png",
        **common: Any,
    ):
        super().__init__(**common)
        self.img_dir, self.label_dir = str(img_dir), (str(label_dir) if label_dir is not None else None)
        if not os.path.isdir(self.img_dir):
            raise DataError(f"image folder '{self.img_dir}' does not exist")
        if self.label_dir is not None and not os.path.isdir(self.label_dir):
            raise DataError(f"label folder '{self.label_dir}' does not exist")
        images = list_images(self.img_dir, tuple(img_suffixes))
        if not images:
            raise DataError(f"image folder '{self.img_dir}' has no {'/'.join(img_suffixes)} files")
        for img in images:
            rel = img.relative_to(self.img_dir).with_suffix("")
            lab = None
            if self.label_dir is not None:
                lab = os.path.join(self.label_dir, str(rel) + label_suffix)
                if self.verify_files and not os.path.isfile(lab):
                    raise DataError(f"image '{img}' has no label: expected '{lab}' (stem '{rel}')")
            self.samples.append((str(img), lab))
        self._finish_init(f"image folder '{self.img_dir}'")


class CityscapesDataset(SegDataset):
    """Cityscapes: ``leftImg8bit/<split>/<city>/*_leftImg8bit.png`` with
    ``gtFine/<split>/<city>/*_gtFine_labelTrainIds.png`` (19 classes, ignore 255).
    ``split`` defaults to ``mode``.
    """

    DEFAULT_NUM_CLASSES = 19
    DEFAULT_CLASS_NAMES = CITYSCAPES_CLASSES
    DEFAULT_PALETTE = CITYSCAPES_PALETTE

    def __init__(self, *, dataset_root: str, split: str | None = None, **common: Any):
        super().__init__(**self.with_defaults(common))
        self.dataset_root, self.split = str(dataset_root), split or self.mode
        img_root = Path(self.dataset_root, "leftImg8bit", self.split)
        if not img_root.is_dir():
            raise DataError(f"Cityscapes: folder '{img_root}' does not exist")
        for img in sorted(img_root.glob("*/*_leftImg8bit.png")):
            stem = img.name[: -len("_leftImg8bit.png")]
            lab = Path(self.dataset_root, "gtFine", self.split, img.parent.name, f"{stem}_gtFine_labelTrainIds.png")
            if self.verify_files and not lab.is_file():
                raise DataError(f"Cityscapes: image '{img}' has no label '{lab}' (run createTrainIdLabelImgs)")
            self.samples.append((str(img), str(lab)))
        self._finish_init(f"Cityscapes '{img_root}'")


class ADE20KDataset(SegDataset):
    """ADE20K (ADEChallengeData2016): ``images/{training,validation}/*.jpg`` and
    ``annotations/...png``. Labels are shifted by −1 (0 → 255 ignore); 150 classes.
    ``split`` is ``training``/``validation`` (or ``train``/``val``), default from ``mode``.
    """

    DEFAULT_NUM_CLASSES = 150

    def __init__(self, *, dataset_root: str, split: str | None = None, **common: Any):
        common.setdefault("ignore_index", IGNORE_INDEX)
        super().__init__(**self.with_defaults(common))
        root = Path(dataset_root)
        if (root / "ADEChallengeData2016").is_dir():
            root = root / "ADEChallengeData2016"
        self.dataset_root = str(root)
        split = split or self.mode
        self.split = {"train": "training", "val": "validation"}.get(split, split)
        img_root = root / "images" / self.split
        if not img_root.is_dir():
            raise DataError(f"ADE20K: folder '{img_root}' does not exist")
        for img in sorted(img_root.glob("*.jpg")):
            lab = root / "annotations" / self.split / (img.stem + ".png")
            if self.verify_files and not lab.is_file():
                raise DataError(f"ADE20K: image '{img}' has no label '{lab}'")
            self.samples.append((str(img), str(lab)))
        self._finish_init(f"ADE20K '{img_root}'")

    def invalid_values(self, values: np.ndarray) -> np.ndarray:
        """Raw ADE values must be in 0..num_classes (0 = unlabelled)."""
        v = np.asarray(values)
        return v[(v < 0) | (v > self.num_classes)]

    def remap_label(self, raw: np.ndarray) -> np.ndarray:
        """``label - 1`` with 0 (unlabelled) → 255."""
        lab = raw.astype(np.int64) - 1
        lab[raw == 0] = IGNORE_INDEX
        return lab


DATASETS: dict[str, type[SegDataset]] = {
    "FileListDataset": FileListDataset,
    "Dataset": PaddleDataset,
    "FolderDataset": FolderDataset,
    "Cityscapes": CityscapesDataset,
    "ADE20K": ADE20KDataset,
}
