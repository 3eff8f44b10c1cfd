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

import os
import shutil
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import torch

from ..data.io import read_image, write_image
from ..data.palette import colorize, overlay
from ..data.sample import Sample
from .segmentor import Segmentor

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
            sample = transforms(Sample(image.astype(np.float32)), rng)
            x = torch.from_numpy(np.ascontiguousarray(sample.image.transpose(2, 0, 1)))[None].to(device)
            pred = segmentor.predict_original(x, sample.ops, image.shape[:2])
            label = pred[0].cpu().numpy().astype(np.uint8)
            rel = f.relative_to(root).with_suffix("") if root is not None else Path(f.stem)
            write_image(staging / "labels" / rel.with_suffix(".png"), label, atomic=False)
            write_image(staging / "pseudo_color" / rel.with_suffix(".png"), colorize(label, palette), atomic=False)
            write_image(staging / "overlay" / rel.with_suffix(".jpg"), overlay(image, label, palette, alpha), atomic=False)
            written.append(save_dir / "labels" / rel.with_suffix(".png"))
        for src in sorted(staging.rglob("*")):
            if src.is_file():
                dst = save_dir / src.relative_to(staging)
                dst.parent.mkdir(parents=True, exist_ok=True)
                os.replace(src, dst)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return written
