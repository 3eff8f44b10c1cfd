"""Data loading for ppseg: file IO, palettes, transforms, datasets and check-data.

Names are imported lazily: ``ppseg.data.io``, ``ppseg.data.palette`` and
``ppseg.data.transforms`` need only numpy, OpenCV and Pillow, so the torch-free
``ppseg.deploy`` can use them; the datasets (torch) load on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

#: public name -> submodule that defines it
_WHERE: dict[str, str] = {
    **dict.fromkeys(["CheckReport", "DatasetSpec", "Problem", "check_dataset", "discover"], "check"),
    **dict.fromkeys(["DATASETS", "IGNORE_INDEX", "ADE20KDataset", "CityscapesDataset", "FileListDataset",
                     "FolderDataset", "PaddleDataset", "SegDataset"], "datasets"),
    **dict.fromkeys(["Kind", "Sample", "Target"], "sample"),
    **dict.fromkeys(["IMAGE_SUFFIXES", "collect_images", "list_images", "read_image", "read_label", "read_label_raw",
                     "write_image", "write_png_atomic"], "io"),
    **dict.fromkeys(["CAMVID_CLASSES", "CAMVID_PALETTE", "CITYSCAPES_CLASSES", "CITYSCAPES_PALETTE", "colorize",
                     "default_palette", "overlay"], "palette"),
    **dict.fromkeys(["TRANSFORMS", "Compose", "Padding", "RandomBlur", "RandomDistort", "RandomHorizontalFlip",
                     "RandomPaddingCrop", "RandomRotation", "RandomScaleAspect", "RandomVerticalFlip", "Resize",
                     "ResizeByLong", "ResizeByShort", "ResizeStepScaling", "Transform", "build_transforms"],
                    "transforms"),
}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'ppseg.data' has no attribute {name!r}")
    return getattr(importlib.import_module(f"ppseg.data.{_WHERE[name]}"), name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_WHERE))
