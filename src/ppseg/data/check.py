"""Dataset checking: the logic behind ``ppseg check-data``.

:func:`check_dataset` reads every image and label file directly (not through
the transforms), never raises on a bad file, and returns a :class:`CheckReport`
listing counts, a per-class pixel histogram, every offending file and a
one-line suggested fix. :func:`discover` finds datasets in a plain directory.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ppseg.data.datasets import DATASETS, IGNORE_INDEX, SegDataset
from ppseg.data.io import IMAGE_SUFFIXES
from ppseg.data.io import read_image, read_label_raw
from ppseg.errors import DataError, PPSegError

__all__ = ["Problem", "DatasetSpec", "CheckReport", "check_dataset", "discover"]

ERROR, WARNING = "error", "warning"
_MAX_LISTED = 50


@dataclass
class Problem:
    """One offending file: ``kind`` is e.g. ``missing_label``, ``bad_values``."""

    path: str
    kind: str
    detail: str
    severity: str = ERROR


@dataclass
class DatasetSpec:
    """How to build a dataset found by :func:`discover` (``kind`` is a key of ``DATASETS``)."""

    name: str
    kind: str
    kwargs: dict[str, Any]

    def build(self, **overrides: Any) -> SegDataset:
        """Instantiate the dataset (``overrides`` win over ``kwargs``)."""
        return DATASETS[self.kind](**{**self.kwargs, **overrides})


@dataclass
class CheckReport:
    """Result of :func:`check_dataset`; ``ok`` is false when any error was found."""

    name: str
    ok: bool
    problems: list[Problem]
    suggestion: str
    num_samples: int = 0
    images_ok: int = 0
    labels_ok: int = 0
    unlabelled_samples: int = 0
    palette_labels: int = 0
    num_classes: int | None = None
    num_classes_inferred: bool = False
    ignore_index: int = IGNORE_INDEX
    class_names: list[str] = field(default_factory=list)
    class_pixels: list[int] = field(default_factory=list)
    ignore_pixels: int = 0
    invalid_pixels: int = 0

    def format(self) -> str:
        """A readable multi-line summary (counts, histogram, offending files, fix)."""
        n = self.num_samples
        lines = [f"Dataset: {self.name}", f"  samples        {n}"]
        lines.append(f"  images ok      {self.images_ok}/{n}")
        lines.append(f"  labels ok      {self.labels_ok}/{n - self.unlabelled_samples}")
        if self.unlabelled_samples:
            lines.append(f"  no label       {self.unlabelled_samples}")
        if self.palette_labels:
            lines.append(f"  palette PNGs   {self.palette_labels} (their indices are used: OK)")
        if self.num_classes is not None:
            src = "configured"
            if self.num_classes_inferred:
                top = self.num_classes - 1
                src = f"inferred: max label value + 1; if {top} marks unlabelled pixels use ignore_index: {top}"
            lines.append(f"  num_classes    {self.num_classes} ({src}); ignore value in files: {self.ignore_index}")
        total = sum(self.class_pixels) + self.ignore_pixels + self.invalid_pixels
        if total:
            lines.append("")
            lines.append(f"  {'id':>4}  {'class':<24} {'pixels':>14} {'%':>7}")
            rows = [(str(i), nm, c) for i, (nm, c) in enumerate(zip(self.class_names, self.class_pixels))]
            rows.append(("-", "ignore", self.ignore_pixels))
            if self.invalid_pixels:
                rows.append(("!", "invalid values", self.invalid_pixels))
            for cid, nm, c in rows:
                flag = "  <- never present" if cid.isdigit() and c == 0 else ""
                lines.append(f"  {cid:>4}  {nm[:24]:<24} {c:>14,} {100.0 * c / total:>6.2f}%{flag}")
        errors = [p for p in self.problems if p.severity == ERROR]
        lines.append("")
        lines.append(f"Problems: {len(errors)} error(s), {len(self.problems) - len(errors)} warning(s)")
        for p in self.problems[:_MAX_LISTED]:
            lines.append(f"  [{p.severity}] {p.kind:<16} {p.path}: {p.detail}")
        if len(self.problems) > _MAX_LISTED:
            lines.append(f"  ... and {len(self.problems) - _MAX_LISTED} more")
        lines.append("")
        lines.append(f"{'OK' if self.ok else 'FAILED'}. Suggested fix: {self.suggestion}")
        return "\n".join(lines)


# --------------------------------------------------------------------------- per file
@dataclass
class _FileResult:
    problems: list[Problem] = field(default_factory=list)
    image_ok: bool = False
    label_ok: bool = False
    has_label: bool = True
    palette: bool = False
    label_path: str = ""
    values: np.ndarray | None = None  # unique raw label values
    counts: np.ndarray | None = None  # their pixel counts


_IMAGE_MODE_NOTES = {
    "L": "grayscale image (replicated to 3 channels on load)",
    "LA": "grayscale+alpha image (alpha dropped, replicated to 3 channels)",
    "RGBA": "RGBA image (alpha channel dropped on load)",
    "I;16": "16-bit grayscale image (reduced to 8 bits, 3 channels)",
    "I": "32-bit grayscale image",
    "1": "1-bit image (replicated to 3 channels)",
}


def _check_image(path: str, res: _FileResult) -> tuple[int, int] | None:
    if not os.path.isfile(path):
        res.problems.append(Problem(path, "missing_image", "file does not exist"))
        return None
    mode = None
    try:
        with Image.open(path) as im:
            mode = im.mode
    except Exception:  # noqa: BLE001 - OpenCV may still decode it
        pass
    try:
        img = read_image(path)
    except DataError as exc:
        res.problems.append(Problem(path, "unreadable_image", str(exc)))
        return None
    res.image_ok = True
    if mode is not None and (mode in _IMAGE_MODE_NOTES or mode.startswith("I;16")):
        note = _IMAGE_MODE_NOTES.get(mode, f"{mode} image (converted to 3-channel RGB)")
        res.problems.append(Problem(path, "not_rgb_image", note, WARNING))
    return img.shape[0], img.shape[1]


def _check_label(path: str, img_hw: tuple[int, int] | None, res: _FileResult) -> None:
    res.label_path = path
    if not os.path.isfile(path):
        res.problems.append(Problem(path, "missing_label", "file does not exist"))
        return
    try:
        raw, mode = read_label_raw(path)
    except DataError as exc:
        res.problems.append(Problem(path, "unreadable_label", str(exc)))
        return
    res.palette = mode in ("P", "PA")
    if raw.ndim == 3:
        col = raw[..., :3] if raw.shape[2] >= 3 else raw[..., :1]
        if col.shape[2] == 3 and not (
            np.array_equal(col[..., 0], col[..., 1]) and np.array_equal(col[..., 0], col[..., 2])
        ):
            colours = np.unique(col.reshape(-1, 3), axis=0)
            shown = ", ".join(str(tuple(int(v) for v in c)) for c in colours[:6])
            more = " ..." if len(colours) > 6 else ""
            res.problems.append(
                Problem(path, "rgb_label", f"{mode} colour label with {len(colours)} colours: {shown}{more}")
            )
            return
        raw = col[..., 0]
    if img_hw is not None and raw.shape != img_hw:
        res.problems.append(
            Problem(
                path, "size_mismatch",
                f"label is {raw.shape[0]}x{raw.shape[1]}, image is {img_hw[0]}x{img_hw[1]} (HxW)",
            )  # fmt: skip
        )
    flat = raw.ravel()
    if flat.size and flat.min() >= 0 and flat.max() < 65536:
        bc = np.bincount(flat.astype(np.int64, copy=False))
        res.values = np.nonzero(bc)[0]
        res.counts = bc[res.values]
    else:
        res.values, res.counts = np.unique(flat, return_counts=True)
    res.label_ok = True


def _check_pair(pair: tuple[str, str | None]) -> _FileResult:
    img_path, label_path = pair
    res = _FileResult()
    hw = _check_image(img_path, res)
    if label_path is None:
        res.has_label = False
    else:
        _check_label(label_path, hw, res)
    return res


def _progress(it: Iterable[_FileResult], total: int, enabled: bool) -> Iterator[_FileResult]:
    if not enabled:
        yield from it
        return
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover
        for i, r in enumerate(it, 1):
            if i % 100 == 0 or i == total:
                print(f"checked {i}/{total}", file=sys.stderr)
            yield r
        return
    yield from tqdm(it, total=total, desc="check-data", unit="file")


# --------------------------------------------------------------------------- dataset
def _suggest(problems: list[Problem], bad_union: set[int], num_classes: int | None, ignore: int) -> str:
    kinds = {p.kind for p in problems if p.severity == ERROR}
    if "dataset" in kinds:
        return "fix the dataset definition reported above"
    if kinds & {"missing_image", "missing_label"}:
        return "fix the paths of the files listed as missing (or remove those entries from the list)"
    if kinds & {"unreadable_image", "unreadable_label"}:
        return "re-export or remove the unreadable files listed above"
    if "rgb_label" in kinds:
        return "labels are RGB colour images: convert each colour to its class index and save single-channel PNGs"
    if "binary_0_255" in kinds:
        return "labels are 0/255 binary masks: divide them by 255 (values 0/1) and use num_classes: 2"
    if "bad_values" in kinds:
        if len(bad_union) == 1:
            v = next(iter(bad_union))
            return (
                f"label value {v} is outside [0, {num_classes}): set ignore_index: {v} if it marks "
                f"unlabelled pixels, or num_classes: {v + 1}"
            )
        return f"labels hold values up to {max(bad_union)}: set num_classes: {max(bad_union) + 1} or fix the labels"
    if "size_mismatch" in kinds:
        return "every label must have its image's height and width: regenerate them or resize with nearest neighbour"
    if problems:
        return "only warnings: images are converted to 3-channel RGB on load; nothing to fix unless unintended"
    return "nothing to fix"


def check_dataset(
    ds: SegDataset | DatasetSpec, *, num_workers: int = 0, progress: bool = False
) -> CheckReport:
    """Check every file of ``ds`` (a dataset or a :class:`DatasetSpec` from :func:`discover`).

    A spec without ``num_classes`` gets it inferred from the label values
    (max non-ignore value + 1). Never raises for bad files; they are reported.
    """
    infer = False
    if isinstance(ds, DatasetSpec):
        name = ds.name
        try:
            infer = "num_classes" not in ds.kwargs
            extra: dict[str, Any] = {"verify_files": False, "mode": "val"}
            if infer:  # placeholder; the real count is inferred from the label values
                extra.update(num_classes=1, class_names=None, palette=None)
            dataset = ds.build(**extra)
        except PPSegError as exc:
            problem = Problem(name, "dataset", str(exc))
            return CheckReport(name, False, [problem], _suggest([problem], set(), None, IGNORE_INDEX))
        want_label = ds.kwargs.get("mode", "train") == "train"
    else:
        dataset = ds
        name = getattr(ds, "file_list", None) or getattr(ds, "img_dir", None) or type(ds).__name__
        want_label = ds.mode == "train"
    pairs = list(dataset.samples)
    if num_workers > 0:
        with ThreadPoolExecutor(max_workers=num_workers) as pool:
            results = list(_progress(pool.map(_check_pair, pairs), len(pairs), progress))
    else:
        results = list(_progress(map(_check_pair, pairs), len(pairs), progress))
    return _summarise(name, dataset, pairs, results, infer, want_label)


def _summarise(
    name: str,
    ds: SegDataset,
    pairs: list[tuple[str, str | None]],
    results: list[_FileResult],
    infer: bool,
    want_label: bool,
) -> CheckReport:
    problems: list[Problem] = []
    totals: dict[int, int] = {}
    for (img_path, _), r in zip(pairs, results):
        problems.extend(r.problems)
        if not r.has_label and want_label:
            problems.append(Problem(img_path, "missing_label", "no label given for this image (train needs one)"))
        if r.values is not None:
            for v, c in zip(r.values.tolist(), r.counts.tolist()):
                totals[v] = totals.get(v, 0) + c
    ignore = ds.ignore_index
    values = np.array(sorted(totals), dtype=np.int64)
    num_classes = ds.num_classes
    if infer:
        real = values[(values != ignore) & (values >= 0)]
        num_classes = int(real.max()) + 1 if real.size else 1
        names = [f"class_{i}" for i in range(num_classes)]
        invalid = lambda v: v[(v < 0) & (v != ignore)]  # noqa: E731
        remap = lambda v: np.where(v == ignore, IGNORE_INDEX, v)  # noqa: E731
    else:
        names, invalid, remap = ds.class_names, ds.invalid_values, ds.remap_label
    bad_union: set[int] = set()
    for r in results:
        if r.values is None:
            continue
        bad = invalid(r.values)
        if bad.size:
            bad_union.update(int(b) for b in bad)
            pix = int(r.counts[np.isin(r.values, bad)].sum())
            shown = ", ".join(str(int(b)) for b in bad[:10]) + (" ..." if bad.size > 10 else "")
            detail = f"values {shown} ({pix} px) outside [0, {num_classes}) and not ignore {ignore}"
            problems.append(Problem(r.label_path, "bad_values", detail))
    if values.size and set(values.tolist()) <= {0, 255} and 255 in totals:
        where = getattr(ds, "file_list", None) or getattr(ds, "label_dir", None) or name
        detail = "every label holds only 0 and 255: binary masks saved as 0/255"
        problems.append(Problem(str(where), "binary_0_255", detail))
    class_pixels = [0] * num_classes
    ignore_pixels = invalid_pixels = 0
    if values.size:
        bad_mask = np.isin(values, np.array(sorted(bad_union), dtype=np.int64))
        ids = remap(values)
        for v, cid, is_bad in zip(values.tolist(), np.asarray(ids).tolist(), bad_mask.tolist()):
            c = totals[v]
            if is_bad:
                invalid_pixels += c
            elif cid == IGNORE_INDEX or not 0 <= cid < num_classes:
                ignore_pixels += c
            else:
                class_pixels[cid] += c
    ok = not any(p.severity == ERROR for p in problems)
    return CheckReport(
        name=name, ok=ok, problems=problems,
        suggestion=_suggest(problems, bad_union, num_classes, ignore),
        num_samples=len(pairs),
        images_ok=sum(r.image_ok for r in results),
        labels_ok=sum(r.label_ok for r in results),
        unlabelled_samples=sum(not r.has_label for r in results),
        palette_labels=sum(r.palette for r in results),
        num_classes=num_classes, num_classes_inferred=infer, ignore_index=ignore,
        class_names=list(names), class_pixels=class_pixels,
        ignore_pixels=ignore_pixels, invalid_pixels=invalid_pixels,
    )  # fmt: skip


# --------------------------------------------------------------------------- discovery
_LISTS = ("train.txt", "val.txt", "test.txt", "train_list.txt", "val_list.txt", "test_list.txt")
_IMG_DIRS = ("images", "image", "imgs", "img", "JPEGImages")
_LABEL_DIRS = ("labels", "label", "annotations", "ann", "anns", "masks", "mask", "SegmentationClass", "gt")


def _mode_for(name: str) -> str:
    return "train" if "train" in name.lower() else "val"


def _has_images(d: Path) -> bool:
    return any(p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES for p in d.iterdir())


def _label_suffix(d: Path) -> str:
    for p in sorted(d.rglob("*")):
        if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES:
            return p.suffix
    return ".png"


def _spec(name: str, kind: str, **kwargs: Any) -> DatasetSpec:
    return DatasetSpec(name, kind, kwargs)


def discover(path: str) -> list[DatasetSpec]:
    """Find datasets in ``path`` (no config needed).

    * a ``.txt`` file, or a folder with ``train.txt`` / ``val.txt`` / ``test.txt``:
      one ``FileListDataset`` per list;
    * ``leftImg8bit`` + ``gtFine``: Cityscapes per split; ``ADEChallengeData2016``: ADE20K;
    * ``images/`` + ``labels/`` (or ``img/`` + ``ann/``, ``images/`` + ``masks/`` ...):
      a ``FolderDataset``, one per common sub-folder (``train``, ``val``) if any.

    Raises :class:`DataError` if nothing recognisable is found.
    """
    p = Path(path)
    if p.is_file():
        return [_spec(p.name, "FileListDataset", dataset_root=str(p.parent), file_list=str(p), mode=_mode_for(p.name))]
    if not p.is_dir():
        raise DataError(f"'{path}' is neither a directory nor a file list")
    lists = [p / n for n in _LISTS if (p / n).is_file()]
    if lists:
        return [
            _spec(str(f), "FileListDataset", dataset_root=str(p), file_list=str(f), mode=_mode_for(f.name))
            for f in lists
        ]
    if (p / "leftImg8bit").is_dir() and (p / "gtFine").is_dir():
        splits = [d.name for d in sorted((p / "leftImg8bit").iterdir()) if (p / "gtFine" / d.name).is_dir()]
        return [
            _spec(f"{p} [{s}]", "Cityscapes", dataset_root=str(p), split=s, num_classes=19, mode=_mode_for(s))
            for s in splits
        ]
    ade = p / "ADEChallengeData2016" if (p / "ADEChallengeData2016").is_dir() else p
    if (ade / "images" / "training").is_dir() and (ade / "annotations" / "training").is_dir():
        return [
            _spec(f"{ade} [{s}]", "ADE20K", dataset_root=str(ade), split=s, num_classes=150, mode=_mode_for(s))
            for s in ("training", "validation")
            if (ade / "images" / s).is_dir()
        ]
    img_dir = next((p / d for d in _IMG_DIRS if (p / d).is_dir()), None)
    lab_dir = next((p / d for d in _LABEL_DIRS if (p / d).is_dir()), None)
    if img_dir is None or lab_dir is None:
        raise DataError(
            f"no dataset found in '{path}': expected train.txt/val.txt, or an images/ folder "
            "with a labels/ (or ann/, masks/) folder beside it"
        )
    suffix = _label_suffix(lab_dir)
    subs = sorted(d.name for d in img_dir.iterdir() if d.is_dir() and (lab_dir / d.name).is_dir())
    if subs and not _has_images(img_dir):
        pairs = [(img_dir / s, lab_dir / s, _mode_for(s)) for s in subs]
    else:
        pairs = [(img_dir, lab_dir, "train")]
    return [
        _spec(str(i), "FolderDataset", img_dir=str(i), label_dir=str(lab), label_suffix=suffix, mode=mode)
        for i, lab, mode in pairs
    ]
