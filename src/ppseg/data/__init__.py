"""Data loading for ppseg: file IO, palettes, transforms, datasets and check-data."""

from ppseg.data.check import CheckReport, DatasetSpec, Problem, check_dataset, discover
from ppseg.data.datasets import (
    DATASETS,
    IGNORE_INDEX,
    ADE20KDataset,
    CityscapesDataset,
    FileListDataset,
    FolderDataset,
    PaddleDataset,
    SegDataset,
    collate,
)
from ppseg.data.io import read_image, read_label, read_label_raw, write_png_atomic
from ppseg.data.palette import (
    CAMVID_CLASSES,
    CAMVID_PALETTE,
    CITYSCAPES_CLASSES,
    CITYSCAPES_PALETTE,
    colorize,
    default_palette,
    overlay,
)
from ppseg.data.transforms import (
    TRANSFORMS,
    Compose,
    Padding,
    RandomBlur,
    RandomDistort,
    RandomHorizontalFlip,
    RandomPaddingCrop,
    RandomRotation,
    RandomScaleAspect,
    RandomVerticalFlip,
    Resize,
    ResizeByLong,
    ResizeByShort,
    ResizeStepScaling,
    Transform,
    build_transforms,
)

__all__ = [
    "ADE20KDataset", "CAMVID_CLASSES", "CAMVID_PALETTE", "CITYSCAPES_CLASSES", "CITYSCAPES_PALETTE",
    "CheckReport", "CityscapesDataset", "Compose", "DATASETS", "DatasetSpec", "FileListDataset",
    "FolderDataset", "IGNORE_INDEX", "PaddleDataset", "Padding", "Problem", "RandomBlur",
    "RandomDistort", "RandomHorizontalFlip", "RandomPaddingCrop", "RandomRotation",
    "RandomScaleAspect", "RandomVerticalFlip", "Resize", "ResizeByLong", "ResizeByShort",
    "ResizeStepScaling", "SegDataset", "TRANSFORMS", "Transform", "build_transforms",
    "check_dataset", "collate", "colorize", "default_palette", "discover", "overlay",
    "read_image", "read_label", "read_label_raw", "write_png_atomic",
]  # fmt: skip
