"""Class colour palettes, colourising label maps and overlaying them on images."""

from __future__ import annotations

import numpy as np

from ppseg.errors import ConfigError

__all__ = [
    "default_palette",
    "CAMVID_CLASSES",
    "CAMVID_PALETTE",
    "CITYSCAPES_CLASSES",
    "CITYSCAPES_PALETTE",
    "colorize",
    "overlay",
]


def default_palette(n: int = 256) -> np.ndarray:
    """Return the PASCAL-VOC style ``n x 3`` uint8 palette PaddleSeg uses by default.

    The bits of the class id are spread over the three channels: bit ``3k + c``
    of the id sets bit ``7 - k`` of channel ``c``. Class 0 is black.
    """
    if n < 0:
        raise ValueError(f"palette size must be >= 0, got {n}")
    ids = np.arange(n, dtype=np.int64)
    out = np.zeros((n, 3), dtype=np.int64)
    for k in range(8):  # 8 groups of 3 bits cover ids < 2**24
        for c in range(3):
            bit = (ids >> (3 * k + c)) & 1
            out[:, c] |= bit << (7 - k)
    return out.astype(np.uint8)


CAMVID_CLASSES: list[str] = [
    "sky", "building", "pole", "road", "pavement", "tree",
    "sign/symbol", "fence", "car", "pedestrian", "bicyclist",
]  # fmt: skip

CAMVID_PALETTE: np.ndarray = np.array(
    [
        [128, 128, 128], [128, 0, 0], [192, 192, 128], [128, 64, 128],
        [60, 40, 222], [128, 128, 0], [192, 128, 128], [64, 64, 128],
        [64, 0, 128], [64, 64, 0], [0, 128, 192],
    ],
    dtype=np.uint8,
)  # fmt: skip

CITYSCAPES_CLASSES: list[str] = [
    "road", "sidewalk", "building", "wall", "fence", "pole", "traffic light",
    "traffic sign", "vegetation", "terrain", "sky", "person", "rider", "car",
    "truck", "bus", "train", "motorcycle", "bicycle",
]  # fmt: skip

CITYSCAPES_PALETTE: np.ndarray = np.array(
    [
        [128, 64, 128], [244, 35, 232], [70, 70, 70], [102, 102, 156],
        [190, 153, 153], [153, 153, 153], [250, 170, 30], [220, 220, 0],
        [107, 142, 35], [152, 251, 152], [70, 130, 180], [220, 20, 60],
        [255, 0, 0], [0, 0, 142], [0, 0, 70], [0, 60, 100], [0, 80, 100],
        [0, 0, 230], [119, 11, 32],
    ],
    dtype=np.uint8,
)  # fmt: skip


def colorize(label: np.ndarray, palette: np.ndarray) -> np.ndarray:
    """Map a 2-D label to an ``H x W x 3`` uint8 RGB image.

    Values outside ``[0, len(palette))`` (ignore value, garbage) become black.
    """
    pal = np.asarray(palette, dtype=np.uint8).reshape(-1, 3)
    lab = np.asarray(label)
    if lab.ndim != 2:
        raise ValueError(f"label must be 2-D, got shape {lab.shape}")
    lab = lab.astype(np.int64, copy=False)
    valid = (lab >= 0) & (lab < len(pal))
    out = np.zeros(lab.shape + (3,), dtype=np.uint8)
    out[valid] = pal[lab[valid]]
    return out


def overlay(
    image_rgb: np.ndarray, label: np.ndarray, palette: np.ndarray, alpha: float = 0.5
) -> np.ndarray:
    """Blend the colourised ``label`` over ``image_rgb`` with weight ``alpha``.

    Pixels whose label is outside the palette (e.g. ignore) keep the image
    colour. Returns an ``H x W x 3`` uint8 RGB image.
    """
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0.0 <= alpha <= 1.0:
        raise ConfigError(f"alpha must be a number in [0, 1], got {alpha!r}")
    img = np.asarray(image_rgb)
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    img = img[..., :3].astype(np.float32)
    lab = np.asarray(label)
    if lab.shape != img.shape[:2]:
        raise ValueError(f"label shape {lab.shape} does not match image shape {img.shape[:2]}")
    colour = colorize(lab, palette).astype(np.float32)
    pal_len = len(np.asarray(palette).reshape(-1, 3))
    valid = ((lab >= 0) & (lab < pal_len))[..., None]
    blended = np.where(valid, (1.0 - alpha) * img + alpha * colour, img)
    return np.clip(np.round(blended), 0, 255).astype(np.uint8)
