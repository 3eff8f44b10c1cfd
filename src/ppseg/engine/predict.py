"""Prediction on image files (``ppseg predict``).

For every input image three files are written under ``save_dir``::

    labels/<name>.png        class index per pixel (uint8 grey PNG)
    pseudo_color/<name>.png  the label map in the dataset palette
    overlay/<name>.jpg       the palette blended over the image

Everything is first written to a hidden staging folder next to ``save_dir``
and moved into place only when all images succeeded, so a failed run never
leaves a directory that looks complete.
"""

from __future__ import annotations

import glob
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import torch

from ..data.io import read_image
from ..data.palette import colorize, overlay
from ..errors import PPSegError
from ..segmentor import Segmentor

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


def collect_images(spec: str) -> list[Path]:
    """Image files named by a file, a directory (recursive) or a glob pattern, sorted."""
    path = Path(spec)
    if path.is_file():
        return [path]
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        if not files:
            raise PPSegError(f"--input {spec}: the directory holds no images ({', '.join(IMAGE_SUFFIXES)})")
        return files
    if any(ch in spec for ch in "*?["):
        files = sorted(Path(p) for p in glob.glob(spec, recursive=True)
                       if Path(p).suffix.lower() in IMAGE_SUFFIXES and Path(p).is_file())
        if not files:
            raise PPSegError(f"--input {spec}: the pattern matches no image files")
        return files
    raise PPSegError(f"--input {spec}: no such file or directory")


def _save_png(path: Path, array: np.ndarray) -> None:
    import cv2

    path.parent.mkdir(parents=True, exist_ok=True)
    if array.ndim == 3:
        array = cv2.cvtColor(array, cv2.COLOR_RGB2BGR)
    ok = cv2.imwrite(str(path), array)
    if not ok:
        raise PPSegError(f"could not write {path}")


def predict_files(
    segmentor: Segmentor,
    files: Iterable[Path],
    save_dir: str | Path,
    transforms: Callable,
    palette: np.ndarray,
    *,
    device: torch.device | str = "cpu",
    root: Path | None = None,
    alpha: float = 0.5,
    progress: bool = False,
) -> list[Path]:
    """Predict every file and write labels, pseudo-colour and overlays; returns the label files."""
    files = list(files)
    save_dir = Path(save_dir)
    save_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{save_dir.name}.partial-", dir=save_dir.parent))
    segmentor.eval().to(device)
    rng = np.random.default_rng(0)
    written: list[Path] = []
    try:
        iterator: Iterable[Path] = files
        if progress:
            from tqdm import tqdm

            iterator = tqdm(files, desc="predict", unit="img", dynamic_ncols=True)
        for f in iterator:
            image = read_image(f)
            sample = transforms({"img": image.astype(np.float32), "label": None, "trans_info": []}, rng)
            x = torch.from_numpy(np.ascontiguousarray(sample["img"].transpose(2, 0, 1)))[None].to(device)
            pred = segmentor.predict_original(x, sample["trans_info"], image.shape[:2])
            label = pred[0].cpu().numpy().astype(np.uint8)
            rel = f.relative_to(root).with_suffix("") if root is not None else Path(f.stem)
            _save_png(staging / "labels" / rel.with_suffix(".png"), label)
            _save_png(staging / "pseudo_color" / rel.with_suffix(".png"), colorize(label, palette))
            _save_png(staging / "overlay" / rel.with_suffix(".jpg"), overlay(image, label, palette, alpha))
            written.append(save_dir / "labels" / rel.with_suffix(".png"))
        for src in sorted(staging.rglob("*")):
            if src.is_file():
                dst = save_dir / src.relative_to(staging)
                dst.parent.mkdir(parents=True, exist_ok=True)
                os.replace(src, dst)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return written
