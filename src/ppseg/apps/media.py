"""Media sources and sinks for the apps: images, image folders, videos and webcams in; videos and images out.

Shared by the apps (``ppseg humanseg``; the matting app and the annotation server reuse it).
Frames are OpenCV arrays: BGR uint8 ``H x W x 3`` or single-channel uint8. Image files are
listed and written through :mod:`ppseg.data.io` (:func:`~ppseg.data.io.list_images`,
:func:`~ppseg.data.io.write_image`, which takes RGB: :func:`write_frame` converts); videos
are written by :class:`VideoSink` to a temp file renamed into place. Only numpy, OpenCV and
the torch-free parts of ppseg are imported.
"""

from __future__ import annotations

import math
import os
import secrets
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np

from ..data.io import read_image, IMAGE_SUFFIXES, list_images, write_image
from ..errors import ConfigError, DataError, PPSegError

__all__ = ["VIDEO_SUFFIXES", "WRITE_VIDEO_SUFFIXES", "Source", "open_source", "VideoSink", "write_frame",
           "progress_bar"]

VIDEO_SUFFIXES = (".mp4", ".mov", ".m4v", ".avi", ".mkv", ".webm", ".mpg", ".mpeg", ".wmv", ".flv")
#: containers OpenCV's ``mp4v`` writer produces
WRITE_VIDEO_SUFFIXES = (".mp4", ".mov", ".m4v", ".avi", ".mkv")


# =============================================================================== sources and sinks
@dataclass
class Source:
    """Frames to process: ``kind`` is ``images``, ``video`` or ``webcam``."""

    kind: Literal["images", "video", "webcam"]
    name: str
    fps: float = 30.0
    frame_count: int | None = None
    files: list[Path] = field(default_factory=list)
    root: Path | None = None
    capture: Any = None
    _first: np.ndarray | None = None

    @property
    def size(self) -> tuple[int, int] | None:
        """``(w, h)`` of a video's frames."""
        return None if self._first is None else (self._first.shape[1], self._first.shape[0])

    def frames(self, max_frames: int | None = None) -> Iterator[tuple[str, np.ndarray]]:
        """``(name, BGR uint8 frame)``; images are read one by one, videos until the end."""
        n = 0
        if self.kind == "images":
            for f in self.files:
                if max_frames is not None and n >= max_frames:
                    return
                img = cv2.cvtColor(read_image(f), cv2.COLOR_RGB2BGR)  # the readers' pixel limit applies
                n += 1
                yield str(f.relative_to(self.root) if self.root else Path(f.name)), img
            return
        try:
            frame = self._first
            self._first = None
            while frame is not None and (max_frames is None or n < max_frames):
                n += 1
                yield f"{n - 1:06d}", frame
                ok, frame = self.capture.read()
                if not ok:
                    frame = None
        finally:
            self.close()

    def close(self) -> None:
        if self.capture is not None:
            self.capture.release()
            self.capture = None


def _first_frame(cap: Any) -> np.ndarray | None:
    if not cap.isOpened():
        return None
    ok, frame = cap.read()
    return frame if ok and frame is not None and frame.size else None


def open_source(spec: str | int, fps: float | None = None) -> Source:
    """An image file, a folder of images, a video file or a webcam index (``0``, ``1``...)."""
    text = str(spec)
    path = Path(text)
    if isinstance(spec, int) or (text.isdigit() and not path.exists()):
        index = int(text)
        cap = cv2.VideoCapture(index)
        first = _first_frame(cap)
        if first is None:
            cap.release()
            raise DataError(f"webcam {index}: not available (no camera with this index, it is in use, "
                            "or OpenCV has no camera support here)")
        rate = fps or cap.get(cv2.CAP_PROP_FPS)
        return Source("webcam", f"webcam {index}", fps=rate if rate and math.isfinite(rate) and rate > 0 else 30.0,
                      capture=cap, _first=first)
    if not path.exists():
        raise DataError(f"{path}: input not found")
    if path.is_dir():
        files = list_images(path)
        if not files:
            raise DataError(f"{path}: no images in this folder ({', '.join(IMAGE_SUFFIXES)})")
        return Source("images", str(path), files=files, root=path, frame_count=len(files))
    if path.suffix.lower() in IMAGE_SUFFIXES:
        return Source("images", str(path), files=[path], frame_count=1)
    cap = cv2.VideoCapture(str(path))
    first = _first_frame(cap)
    if first is None:
        cap.release()
        raise DataError(f"{path}: cannot read video (not a video file, empty, or a codec OpenCV cannot decode)")
    rate = fps or cap.get(cv2.CAP_PROP_FPS)
    count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
    return Source("video", str(path), fps=rate if rate and math.isfinite(rate) and rate > 0 else 30.0,
                  frame_count=count if count > 0 else None, capture=cap, _first=first)


class VideoSink:
    """An ``mp4v`` video written to a temp file next to ``path`` and renamed into place by
    :meth:`commit`; :meth:`discard` (or an error) leaves ``path`` untouched."""

    def __init__(self, path: str | os.PathLike, fps: float, size_wh: tuple[int, int]) -> None:
        self.path = Path(path)
        if self.path.suffix.lower() not in WRITE_VIDEO_SUFFIXES:
            raise ConfigError(f"--out {self.path}: a video output needs one of {', '.join(WRITE_VIDEO_SUFFIXES)}")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = self.path.parent / f".{self.path.stem}.{os.getpid()}.{secrets.token_hex(4)}.tmp{self.path.suffix}"
        self.size = (int(size_wh[0]), int(size_wh[1]))
        self.writer = cv2.VideoWriter(str(self.tmp), cv2.VideoWriter_fourcc(*"mp4v"), float(fps), self.size, True)
        if not self.writer.isOpened():
            self.writer.release()
            self.tmp.unlink(missing_ok=True)
            raise PPSegError(f"--out {self.path}: OpenCV cannot write an mp4v video there")
        self.frames = 0

    def write(self, frame: np.ndarray) -> None:
        if frame.ndim == 2:
            frame = cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
        self.writer.write(frame)
        self.frames += 1

    def commit(self) -> Path:
        self.writer.release()
        if not self.tmp.is_file() or self.tmp.stat().st_size == 0:
            self.tmp.unlink(missing_ok=True)
            raise PPSegError(f"--out {self.path}: the video writer produced no file")
        os.replace(self.tmp, self.path)
        return self.path

    def discard(self) -> None:
        self.writer.release()
        self.tmp.unlink(missing_ok=True)


def write_frame(path: str | os.PathLike, frame: np.ndarray) -> Path:
    """Write a frame (BGR, BGRA or single-channel uint8) to an image file, format by suffix, atomically.

    :func:`ppseg.data.io.write_image` takes RGB: the frame is converted, so the file holds
    the frame's colours; errors are :class:`~ppseg.errors.DataError` naming ``path``."""
    if frame.ndim == 3 and frame.shape[2] == 3:
        frame = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
    elif frame.ndim == 3 and frame.shape[2] == 4:
        frame = cv2.cvtColor(frame, cv2.COLOR_BGRA2RGBA)
    write_image(path, frame, atomic=True)
    return Path(path)


# =============================================================================== progress
def progress_bar(total: int | None, enabled: bool, desc: str) -> Any:
    """A tqdm bar counting frames on stderr, or ``None`` (disabled, or tqdm not installed)."""
    if not enabled:
        return None
    try:
        from tqdm import tqdm
    except ImportError:  # tqdm comes with the 'train' extra; the torch-free install may not have it
        return None
    return tqdm(total=total, desc=desc, unit="frame", dynamic_ncols=True, file=sys.stderr)
