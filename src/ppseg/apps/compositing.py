"""Backgrounds and alpha compositing: a person (or any foreground) over a colour, an image or a blur.

Shared by the apps that replace backgrounds (``ppseg humanseg``; the matting app and others
reuse it). Images are OpenCV BGR uint8 arrays, mattes uint8 0..255; only numpy and OpenCV
are needed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import cv2
import numpy as np

from ..errors import ConfigError

__all__ = ["Background", "parse_background", "composite"]


# =============================================================================== backgrounds
@dataclass
class Background:
    """What replaces the background in ``composite`` output: ``color``, ``image`` or ``blur``."""

    kind: Literal["color", "image", "blur"]
    color_bgr: tuple[int, int, int] = (0, 0, 0)
    image_bgr: np.ndarray | None = None
    blur: int = 31
    _cache: dict[tuple[int, int], np.ndarray] = field(default_factory=dict, repr=False)

    def render(self, frame_bgr: np.ndarray) -> np.ndarray:
        """The background for ``frame_bgr`` (BGR uint8, frame size)."""
        h, w = frame_bgr.shape[:2]
        if self.kind == "blur":
            return _fast_blur(frame_bgr, self.blur)
        bg = self._cache.get((h, w))
        if bg is None:
            if self.kind == "color":
                bg = np.empty((h, w, 3), np.uint8)
                bg[:] = self.color_bgr
            else:
                bg = _cover(self.image_bgr, h, w)  # type: ignore[arg-type]
            self._cache[(h, w)] = bg
        return bg


def _fast_blur(img: np.ndarray, k: int) -> np.ndarray:
    """A Gaussian blur of kernel ~``k``: on a 4x smaller copy for large kernels (same look, ~10x cheaper)."""
    if k < 16:
        return cv2.GaussianBlur(img, (k, k), 0)
    h, w = img.shape[:2]  # (linear decimation aliases, but the blur that follows removes it)
    small = cv2.resize(img, (max(w // 4, 1), max(h // 4, 1)), interpolation=cv2.INTER_LINEAR)
    ks = max(3, (k // 4) | 1)
    small = cv2.GaussianBlur(small, (ks, ks), 0)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


def _cover(img: np.ndarray, h: int, w: int) -> np.ndarray:
    """Scale ``img`` to cover ``h x w`` (aspect kept) and crop the centre."""
    ih, iw = img.shape[:2]
    s = max(h / ih, w / iw)
    nh, nw = max(h, round(ih * s)), max(w, round(iw * s))
    big = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
    y, x = (nh - h) // 2, (nw - w) // 2
    return np.ascontiguousarray(big[y:y + h, x:x + w])


#: blur kernels ``blur:K`` takes (a 100001 kernel takes seconds a frame, 999999 minutes)
MIN_BLUR, MAX_BLUR = 3, 1001


def parse_background(spec: str) -> Background:
    """``color:R,G,B`` (0..255), ``image:PATH`` or ``blur[:K]`` (odd K in 3..1001, default 31)."""
    kind, _, arg = str(spec).partition(":")
    kind = kind.strip().lower()
    if kind == "color":
        parts = [p.strip() for p in arg.split(",")]
        try:
            rgb = [int(p) for p in parts]
        except ValueError:
            rgb = []
        if len(rgb) != 3 or not all(0 <= c <= 255 for c in rgb):
            raise ConfigError(f"--background {spec!r}: expected color:R,G,B with three integers 0..255, "
                              "e.g. color:0,255,0")
        return Background("color", color_bgr=(rgb[2], rgb[1], rgb[0]))
    if kind == "image":
        if not arg:
            raise ConfigError(f"--background {spec!r}: expected image:PATH")
        if not Path(arg).exists():
            raise ConfigError(f"--background {spec!r}: {arg}: file not found")
        if not Path(arg).is_file():
            raise ConfigError(f"--background {spec!r}: {arg}: not a file")
        from ..data.io import read_image_quiet
        from ..errors import DataError

        try:
            img = cv2.cvtColor(read_image_quiet(arg), cv2.COLOR_RGB2BGR)
        except DataError as e:
            raise ConfigError(f"--background {spec!r}: {e}") from None
        return Background("image", image_bgr=img)
    if kind == "blur":
        k = 31
        if arg:
            try:
                k = int(arg)
            except ValueError:
                k = -1
        if not MIN_BLUR <= k <= MAX_BLUR or k % 2 == 0:
            raise ConfigError(f"--background {spec!r}: the blur kernel must be an odd integer in "
                              f"[{MIN_BLUR}, {MAX_BLUR}], e.g. blur:31")
        return Background("blur", blur=k)
    raise ConfigError(f"--background {spec!r}: expected color:R,G,B, image:PATH or blur[:K]")


# =============================================================================== compositing
def composite(fg: np.ndarray, bg: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """``fg * a + bg * (1 - a)`` for uint8 images and a uint8 matte ``a`` (0..255), in uint8
    arithmetic (OpenCV, rounded; twice as fast as a float blend)."""
    a3 = cv2.merge((alpha, alpha, alpha))
    out = cv2.multiply(fg, a3, scale=1.0 / 255)
    cv2.bitwise_not(a3, dst=a3)
    return cv2.add(out, cv2.multiply(bg, a3, scale=1.0 / 255))
