"""Training and validation objects for click models: any segmentation dataset becomes objects.

A source is a PaddleSeg file list (``image label`` per line) and a rule that splits each label
map into binary objects (:func:`ppseg.interactive.objects.objects_from_label_map`): connected
components per class (``components``: CamVid, CCP clothing parts, roads/vessels/cracks), one mask
per class (``classes``), or everything that is not background (``foreground``: whole persons in
CCP and the portraits), with a minimum area. ``ClickObjects`` mixes several sources.

Train mode: item ``(index, seed)`` is one image of the mix and one of its objects drawn at random,
seen through a window like the predictor's ZoomIn: the whole image (probability
``whole_image_prob``) or the object's box expanded by a random ratio, shifted a little, then
resized (aspect not kept, as ZoomIn's 400x400) to ``crop_size``; then the config's transforms
(flip, colour). The sample's target ``"mask"`` is 1 on the object, 0 elsewhere, ``ignore_index`` on
ignored pixels. Val mode: the first ``max_objects`` objects of the list in order, whole images
(for the NoC benchmark).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ..data.io import read_image, read_label
from ..data.sample import Kind, Sample
from ..errors import ConfigError, DataError

__all__ = ["ObjectSource", "ClickObjects", "read_file_list"]

SPLITS = ("components", "classes", "foreground")


def read_file_list(root: str | Path, file_list: str | Path) -> list[tuple[str, str]]:
    """``(image, label)`` paths of a PaddleSeg list file (as given, or under ``root``; paths relative to ``root``)."""
    from .datasets import find_list, read_list

    root = Path(root)
    if not root.is_dir():
        raise DataError(f"dataset_root '{root}' is not a directory")
    return [(str(img), str(lab)) for img, lab, _ in read_list(root, find_list(root, file_list))]


@dataclass(frozen=True)
class ObjectSource:
    """One file list and how its label maps split into objects."""

    dataset_root: str
    file_list: str
    split: str = "components"
    min_area: int = 400
    ignore_index: int = 255
    classes: tuple[int, ...] | None = None
    repeat: int = 1
    #: the class that is never an object (1 for EM membrane labels, whose cells are class 0)
    background: int = 0

    @classmethod
    def from_dict(cls, d: Any, where: str) -> ObjectSource:
        if not isinstance(d, dict):
            raise ConfigError(f"{where}: expected a mapping with dataset_root and file_list, got {d!r}")
        known = set(cls.__dataclass_fields__)
        unknown = set(d) - known
        if unknown:
            raise ConfigError(f"{where}: unknown key(s) {sorted(unknown)}; known: {sorted(known)}")
        for key in ("dataset_root", "file_list"):
            if not isinstance(d.get(key), str) or not d.get(key):
                raise ConfigError(f"{where}.{key}: expected a path, got {d.get(key)!r}")
        if d.get("split", "components") not in SPLITS:
            raise ConfigError(f"{where}.split: expected one of {', '.join(SPLITS)}, got {d.get('split')!r}")
        for key, lo, hi in (("min_area", 1, 10**8), ("ignore_index", 0, 65535), ("repeat", 1, 100),
                            ("background", 0, 65535)):
            v = d.get(key, getattr(cls, key))
            if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
                raise ConfigError(f"{where}.{key}: expected an integer in [{lo}, {hi}], got {v!r}")
        classes = d.get("classes")
        if classes is not None and (not isinstance(classes, list) or not all(isinstance(c, int) for c in classes)):
            raise ConfigError(f"{where}.classes: expected a list of class ids, got {classes!r}")
        return cls(**{**d, "classes": tuple(classes) if classes is not None else None})

    def objects(self, label: np.ndarray) -> list[tuple[np.ndarray, int, np.ndarray | None]]:
        from .objects import objects_from_label_map

        return objects_from_label_map(label, mode=self.split, min_area=self.min_area,
                                      ignore_index=self.ignore_index, background=self.background,
                                      classes=list(self.classes) if self.classes is not None else None)


class ClickObjects:
    """Objects from one or more :class:`ObjectSource` s (see the module docstring).

    Args:
        sources: list of source mappings (``dataset_root``, ``file_list``, ``split``, ``min_area``,
            ``ignore_index``, ``classes``, ``repeat``).
        mode: ``"train"`` or ``"val"`` (set by the config section).
        crop_size: ``[w, h]`` of the training window after resizing.
        whole_image_prob: probability of training on the whole image instead of a window.
        expansion: range of the window's expansion ratio around the object's box.
        max_objects: val mode: how many objects (in list order) to evaluate on.
        transforms: the config's transforms, applied after the window (flip, colour).
    """

    def __init__(self, *, sources: list[dict], mode: str = "train", crop_size: Sequence[int] = (256, 256),
                 whole_image_prob: float = 0.25, expansion: Sequence[float] = (1.2, 2.4),
                 max_objects: int = 100, transforms: Any = None) -> None:
        if not isinstance(sources, list) or not sources:
            raise ConfigError("sources: expected a non-empty list of {dataset_root, file_list, split, ...}")
        self.sources = [ObjectSource.from_dict(s, f"sources[{i}]") for i, s in enumerate(sources)]
        self.mode = mode
        if len(crop_size) != 2 or not all(isinstance(v, int) and 32 <= v <= 2048 for v in crop_size):
            raise ConfigError(f"crop_size: expected [w, h] integers in [32, 2048], got {crop_size!r}")
        self.crop_size = (int(crop_size[0]), int(crop_size[1]))
        if not 0.0 <= float(whole_image_prob) <= 1.0:
            raise ConfigError(f"whole_image_prob: expected a number in [0, 1], got {whole_image_prob!r}")
        self.whole_image_prob = float(whole_image_prob)
        if len(expansion) != 2 or not 1.0 <= float(expansion[0]) <= float(expansion[1]) <= 10.0:
            raise ConfigError(f"expansion: expected [low, high] with 1 <= low <= high <= 10, got {expansion!r}")
        self.expansion = (float(expansion[0]), float(expansion[1]))
        if isinstance(max_objects, bool) or not isinstance(max_objects, int) or max_objects < 1:
            raise ConfigError(f"max_objects: expected a positive integer, got {max_objects!r}")
        self.max_objects = max_objects
        from ..data.transforms import Compose, build_transforms

        self.transforms = transforms if isinstance(transforms, Compose) else build_transforms(list(transforms or []))
        self.items: list[tuple[int, str, str]] = []  # (source index, image, label); lists checked in both modes
        for si, src in enumerate(self.sources):
            pairs = read_file_list(src.dataset_root, src.file_list)
            for _ in range(src.repeat if mode == "train" else 1):
                self.items.extend((si, img, lab) for img, lab in pairs)
        self._val: list | None = None
        # what the task and the trainer read of a dataset
        self.num_classes = 1
        self.class_names = ["object"]

    # ------------------------------------------------------------------ val: objects in order
    def val_sets(self) -> list:
        """The val objects: each source's list split into objects by
        :func:`~ppseg.interactive.datasets.open_click_dataset`, the first ``max_objects`` in all."""
        if self._val is None:
            from .datasets import open_click_dataset

            self._val, left = [], self.max_objects
            for src in self.sources:
                if left <= 0:
                    break
                try:
                    ds = open_click_dataset(src.dataset_root, list_file=src.file_list, split_mode=src.split,
                                            min_area=src.min_area, ignore_index=src.ignore_index,
                                            classes=src.classes, limit=left, background=src.background)
                except DataError as e:
                    if "no label map holds an object" not in str(e):
                        raise
                    continue  # a source without objects contributes none
                self._val.append(ds)
                left -= len(ds)
        return self._val

    def iter_objects(self) -> Iterator[tuple[str, np.ndarray, np.ndarray, np.ndarray | None]]:
        """Val objects as ``(name, image RGB uint8, gt bool, ignore bool or None)``."""
        for ds in self.val_sets():
            yield from ds

    # ------------------------------------------------------------------ train
    def __len__(self) -> int:
        return len(self.items) if self.mode == "train" else sum(len(ds) for ds in self.val_sets())

    def _window(self, mask: np.ndarray, rng: np.random.Generator) -> tuple[int, int, int, int]:
        h, w = mask.shape
        if rng.random() < self.whole_image_prob:
            return 0, h, 0, w
        rows = np.flatnonzero(mask.any(axis=1))
        cols = np.flatnonzero(mask.any(axis=0))
        r0, r1, c0, c1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
        ratio = rng.uniform(*self.expansion)
        bh, bw = max((r1 - r0) * ratio, 24), max((c1 - c0) * ratio, 24)
        rc = (r0 + r1) / 2 + rng.uniform(-0.15, 0.15) * bh
        cc = (c0 + c1) / 2 + rng.uniform(-0.15, 0.15) * bw
        y0, y1 = int(max(rc - bh / 2, 0)), int(min(rc + bh / 2, h))
        x0, x1 = int(max(cc - bw / 2, 0)), int(min(cc + bw / 2, w))
        if y1 - y0 < 8 or x1 - x0 < 8:
            return 0, h, 0, w
        return y0, y1, x0, x1

    def __getitem__(self, item: int | tuple[int, int]) -> Sample:
        if isinstance(item, (tuple, list)):
            index, seed = int(item[0]), int(item[1])
        else:
            index = seed = int(item)
        rng = np.random.default_rng(seed)
        if self.mode != "train":
            raise DataError("ClickObjects in val mode is read with iter_objects(), not by index")
        for attempt in range(20):
            si, img_path, lab_path = self.items[index]
            label = read_label(lab_path)
            objs = self.sources[si].objects(label)
            if objs:
                break
            index = int(rng.integers(len(self.items)))  # an image without objects: draw another
        else:
            raise DataError(f"no object of at least the minimum area in 20 images drawn from the sources "
                            f"(last: '{lab_path}'): lower min_area")
        image = read_image(img_path)
        if image.shape[:2] != label.shape:
            raise DataError(f"image '{img_path}' is {image.shape[0]}x{image.shape[1]} but label '{lab_path}' "
                            f"is {label.shape[0]}x{label.shape[1]}")
        mask, _, ignore = objs[int(rng.integers(len(objs)))]
        target = mask.astype(np.uint8)
        if ignore is not None:
            target[ignore & ~mask] = 255
        y0, y1, x0, x1 = self._window(mask, rng)
        w, h = self.crop_size
        img = cv2.resize(image[y0:y1, x0:x1], (w, h), interpolation=cv2.INTER_LINEAR).astype(np.float32)
        tgt = cv2.resize(target[y0:y1, x0:x1], (w, h), interpolation=cv2.INTER_NEAREST)
        sample = Sample(img, meta={"img_path": img_path, "label_path": lab_path, "index": index, "seed": seed})
        sample.set("mask", Kind.MASK, tgt)
        sample = self.transforms(sample, rng)
        sample.image = np.ascontiguousarray(np.asarray(sample.image, np.float32).transpose(2, 0, 1))
        return sample
