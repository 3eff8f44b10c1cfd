"""Binary objects out of a label map, for click simulation (evaluation and training).

A semantic label map holds several objects; interactive segmentation works on one binary mask
at a time. :func:`objects_from_label_map` cuts a map into :class:`LabelObject` s in one of three
ways (``mode``):

* ``"components"``: every 8-connected region of every class is an object (a coat, a bag, each
  shoe on its own): the usual RITM / EdgeFlow way to get many targets per photo;
* ``"classes"``: all pixels of a class are one object, whether connected or not (both shoes);
* ``"foreground"``: every non-background pixel is one object (the whole person of a portrait or
  a CCP photo).

Pixels equal to ``ignore_index`` are never part of an object; they come back as the object's
ignore mask (``None`` when the map has none), which the click simulator and the IoU leave out.
Objects smaller than ``min_area`` pixels are dropped. The order is deterministic: classes in
increasing id order, components of a class in OpenCV's raster-scan label order.

numpy + OpenCV only (no torch): training code calls this per sample.
"""

from __future__ import annotations

from typing import Literal, NamedTuple

import cv2
import numpy as np

from ppseg.errors import ConfigError

__all__ = ["SPLIT_MODES", "SplitMode", "LabelObject", "objects_from_label_map", "present_classes"]

SplitMode = Literal["components", "classes", "foreground"]
#: the values ``mode`` takes
SPLIT_MODES: tuple[str, ...] = ("components", "classes", "foreground")


class LabelObject(NamedTuple):
    """One object of a label map; unpacks as ``mask, class_id, ignore``."""

    mask: np.ndarray
    """``H x W`` bool: the object's pixels."""
    class_id: int
    """its class (``1`` for ``mode="foreground"`` objects)."""
    ignore: np.ndarray | None
    """``H x W`` bool: pixels to leave out (the label map's ``ignore_index`` pixels), or ``None``."""


def present_classes(label: np.ndarray) -> np.ndarray:
    """The distinct values of an integer label map, sorted (``np.bincount`` when the values are small
    non-negative integers: much faster than ``np.unique``)."""
    flat = label.ravel()
    if flat.size == 0:
        return np.zeros(0, dtype=np.int64)
    if label.dtype.kind in "ub" or (label.dtype.kind == "i" and int(flat.min()) >= 0):
        if label.dtype == np.bool_:
            flat = flat.view(np.uint8)
        top = int(flat.max())
        if top < 1 << 16:
            return np.flatnonzero(np.bincount(flat, minlength=top + 1))
    return np.unique(flat).astype(np.int64)


def _check(label: np.ndarray, mode: str, min_area: int) -> np.ndarray:
    arr = np.asarray(label)
    if arr.ndim != 2:
        raise ValueError(f"label must be a 2-D H x W map of class ids, got shape {arr.shape}")
    if arr.dtype.kind not in "uib":
        raise ValueError(f"label must hold integers, got dtype {arr.dtype}")
    if mode not in SPLIT_MODES:
        raise ConfigError(f"mode must be one of {', '.join(SPLIT_MODES)}, got {mode!r}")
    if isinstance(min_area, bool) or not isinstance(min_area, (int, np.integer)) or min_area < 0:
        raise ConfigError(f"min_area must be a whole number of pixels >= 0, got {min_area!r}")
    return arr


def objects_from_label_map(
    label: np.ndarray,
    *,
    mode: SplitMode = "components",
    min_area: int = 1,
    ignore_index: int | None = 255,
    classes: "list[int] | tuple[int, ...] | set[int] | np.ndarray | None" = None,
    background: int | None = 0,
) -> list[LabelObject]:
    """Split an ``H x W`` integer label map into binary objects.

    Args:
        label: class ids, any integer dtype.
        mode: ``"components"`` (8-connected regions per class), ``"classes"`` (one object per
            class) or ``"foreground"`` (all non-background, non-ignore pixels as one object).
        min_area: drop objects with fewer pixels (``0`` and ``1`` keep all).
        ignore_index: the value of pixels to ignore (``None``: none is).
        classes: only these class ids make objects (in ``"foreground"`` mode: only these ids
            are foreground); default all. ``background`` and ``ignore_index`` are never objects.
        background: the class id that is never an object (``None``: every class is).

    Returns:
        :class:`LabelObject` ``(mask, class_id, ignore)`` tuples; ``ignore`` is one array shared
        by all objects of the map (do not write into it), or ``None`` when no pixel is ignored.
        An empty list when nothing is left (all background, or all under ``min_area``).
    """
    arr = _check(label, mode, min_area)
    ignore: np.ndarray | None = None
    if ignore_index is not None:
        ignore = arr == ignore_index
        if not ignore.any():
            ignore = None
    ids = present_classes(arr)
    skip = {v for v in (ignore_index, background) if v is not None}
    wanted = None if classes is None else {int(c) for c in np.asarray(list(classes)).ravel()}
    ids = [int(c) for c in ids if int(c) not in skip and (wanted is None or int(c) in wanted)]
    if not ids:
        return []

    if mode == "foreground":
        if wanted is None:
            fg = np.ones(arr.shape, dtype=bool)
            for v in skip:
                fg &= arr != v
        else:
            fg = np.isin(arr, np.asarray(ids, dtype=arr.dtype))
        area = int(np.count_nonzero(fg))
        if area == 0 or area < min_area:
            return []
        return [LabelObject(fg, 1, ignore)]

    out: list[LabelObject] = []
    for c in ids:
        mask = arr == c
        if mode == "classes":
            if int(np.count_nonzero(mask)) >= max(min_area, 1):
                out.append(LabelObject(mask, c, ignore))
            continue
        # components of the class's bounding box only; areas by bincount (faster than ...WithStats)
        x, y, w, h = cv2.boundingRect(mask.view(np.uint8))
        crop = mask[y:y + h, x:x + w]
        n, cc = cv2.connectedComponents(np.ascontiguousarray(crop).view(np.uint8), connectivity=8,
                                        ltype=cv2.CV_32S)
        if n == 2:  # one component: the class mask itself
            if int(np.count_nonzero(crop)) >= min_area:
                out.append(LabelObject(mask, c, ignore))
            continue
        areas = np.bincount(cc.ravel(), minlength=n)
        for k in range(1, n):
            if int(areas[k]) < max(min_area, 1):
                continue
            obj = np.zeros(arr.shape, dtype=bool)
            obj[y:y + h, x:x + w] = cc == k
            out.append(LabelObject(obj, c, ignore))
    return out
