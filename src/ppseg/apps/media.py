"""Media sources and sinks for the apps: images, image folders, videos and webcams in; videos and images out.

Shared by the apps (``ppseg humanseg``; the matting app and the annotation server reuse it).
Frames are OpenCV arrays: BGR uint8 ``H x W x 3`` or single-channel uint8. Image files are
listed and written through :mod:`ppseg.data.io` (:func:`~ppseg.data.io.list_images`,
:func:`~ppseg.data.io.write_image`, which takes RGB: :func:`write_frame` converts); videos
are written by :class:`VideoSink` to a temp file renamed into place, folders of outputs by
:class:`StagedFolder` into a hidden folder moved into place: a failed run leaves no output.
Only numpy, OpenCV and the torch-free parts of ppseg are imported.

Decoder noise: images are read with :func:`~ppseg.data.io.read_image_quiet` and videos opened
inside :func:`~ppseg.data.io.capture_native_stderr`, so libpng / ffmpeg messages become part of
ppseg's error (or are dropped), not lines on the terminal. ffmpeg's messages while *decoding*
frames come from its own threads and cannot be captured that way: the CLI turns them off with
``OPENCV_FFMPEG_LOGLEVEL`` (:func:`ppseg.cli.quiet_native_libraries`).
"""

from __future__ import annotations

import math
import os
import secrets
import shutil
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np

from ..config import number_in_range
from ..data.io import IMAGE_SUFFIXES, capture_native_stderr, list_images, read_image_quiet, write_image
from ..errors import ConfigError, DataError, PPSegError

__all__ = ["VIDEO_SUFFIXES", "WRITE_VIDEO_SUFFIXES", "Source", "open_source", "VideoSink", "StagedFolder",
           "write_frame", "progress_bar", "make_parents", "remove_created", "check_fps", "FPS_RANGE"]

VIDEO_SUFFIXES = (".mp4", ".mov", ".m4v", ".avi", ".mkv", ".webm", ".mpg", ".mpeg", ".wmv", ".flv")
#: containers OpenCV's ``mp4v`` writer produces
WRITE_VIDEO_SUFFIXES = (".mp4", ".mov", ".m4v", ".avi", ".mkv")
#: the output frame rates (``--fps``) OpenCV's mp4v writer takes (outside it fails, or hangs on inf)
FPS_RANGE = (0.01, 1000.0)


def check_fps(fps: float, option: str = "--fps") -> float:
    """``fps`` as a float if it is a frame rate the video writer takes, else a :class:`ConfigError`."""
    value = number_in_range(fps, *FPS_RANGE)
    if value is None:
        raise ConfigError(f"{option} must be a frame rate in [{FPS_RANGE[0]:g}, {FPS_RANGE[1]:g}], got {fps}")
    return value


def _rate(cap: Any, fps: float | None) -> float:
    """The frame rate to write: ``fps`` if given, else the capture's when it is sane, else 30."""
    if fps is not None:
        return fps
    rate = cap.get(cv2.CAP_PROP_FPS)
    return float(rate) if rate and math.isfinite(rate) and FPS_RANGE[0] <= rate <= FPS_RANGE[1] else 30.0


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
        """``(name, BGR uint8 frame)``; images are read one by one, videos until the end.

        A video file that ends clearly short of the frame count in its header (a truncated
        download, a corrupt stream) raises :class:`DataError` after its last readable frame,
        naming the file and how many frames were read: half a video is not a result. Webcams and
        files whose frame count is unknown end where reading ends."""
        n = 0
        if self.kind == "images":
            for f in self.files:
                if max_frames is not None and n >= max_frames:
                    return
                img = cv2.cvtColor(read_image_quiet(f), cv2.COLOR_RGB2BGR)  # the readers' pixel limit applies
                n += 1
                yield str(f.relative_to(self.root) if self.root else Path(f.name)), img
            return
        try:
            frame = self._first
            self._first = None
            last_ms = 0.0
            while frame is not None and (max_frames is None or n < max_frames):
                n += 1
                yield f"{n - 1:06d}", frame
                if self.capture is None:  # closed by the consumer
                    return
                try:
                    ok, frame = self.capture.read()
                except cv2.error as e:
                    raise DataError(f"{self.name}: cannot decode frame {n + 1} "
                                    f"({str(e).strip().splitlines()[-1][:200]})") from None
                if not ok or frame is None or not frame.size:
                    frame = None
                elif self.kind == "video":
                    last_ms = float(self.capture.get(cv2.CAP_PROP_POS_MSEC) or 0.0)
            if frame is None and self.kind == "video":
                self._check_complete(n, last_ms)
        finally:
            self.close()

    def _check_complete(self, read: int, last_ms: float) -> None:
        """Refuse a video that ended clearly short of its header's frame count: more than
        max(2, 2%) frames missing, and (when the decoder reports timestamps) the last frame read
        also that far from the end of the stream (variable-frame-rate files whose count is an
        estimate from the duration reach the end in time, and pass)."""
        expected = self.frame_count
        if not expected or self.capture is None:
            return
        margin = max(2, math.ceil(0.02 * expected))
        if read + margin >= expected:
            return
        rate = self.capture.get(cv2.CAP_PROP_FPS)
        if last_ms > 0 and rate and math.isfinite(rate) and rate > 0:
            if last_ms / 1000.0 * rate + 1 + margin >= expected:  # the timestamps reached the end
                return
        raise DataError(f"{self.name}: truncated or corrupt video: read {read} of its {expected} frames "
                        "(the rest cannot be decoded)")

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
    if fps is not None:
        fps = check_fps(fps)
    text = str(spec)
    path = Path(text)
    if isinstance(spec, int) or (text.isdigit() and not path.exists()):
        index = int(text)
        with capture_native_stderr():  # V4L2 / OpenCV warnings for a missing camera
            cap = cv2.VideoCapture(index)
            first = _first_frame(cap)
        if first is None:
            cap.release()
            raise DataError(f"webcam {index}: not available (no camera with this index, it is in use, "
                            "or OpenCV has no camera support here)")
        return Source("webcam", f"webcam {index}", fps=_rate(cap, fps), capture=cap, _first=first)
    if not path.exists():
        raise DataError(f"{path}: input not found")
    if path.is_dir():
        files = list_images(path)
        if not files:
            raise DataError(f"{path}: no images in this folder ({', '.join(IMAGE_SUFFIXES)})")
        return Source("images", str(path), files=files, root=path, frame_count=len(files))
    if path.suffix.lower() in IMAGE_SUFFIXES:
        return Source("images", str(path), files=[path], frame_count=1)
    with capture_native_stderr():  # ffmpeg's "moov atom not found"... before our one line
        cap = cv2.VideoCapture(str(path))
        first = _first_frame(cap)
    if first is None:
        cap.release()
        raise DataError(f"{path}: cannot read video (not a video file, empty, truncated, "
                        "or a codec OpenCV cannot decode)")
    count = cap.get(cv2.CAP_PROP_FRAME_COUNT)
    count = int(count) if count and math.isfinite(count) and count > 0 else None
    return Source("video", str(path), fps=_rate(cap, fps), frame_count=count, capture=cap, _first=first)


class VideoSink:
    """An ``mp4v`` video written to a temp file next to ``path`` and renamed into place by
    :meth:`commit`; :meth:`discard` (or an error) leaves ``path`` untouched."""

    def __init__(self, path: str | os.PathLike, fps: float, size_wh: tuple[int, int]) -> None:
        self.path = Path(path)
        if self.path.suffix.lower() not in WRITE_VIDEO_SUFFIXES:
            raise ConfigError(f"--out {self.path}: a video output needs one of {', '.join(WRITE_VIDEO_SUFFIXES)}")
        fps = check_fps(fps)
        self._created = make_parents(self.path.parent)
        self.tmp = self.path.parent / f".{self.path.stem}.{os.getpid()}.{secrets.token_hex(4)}.tmp{self.path.suffix}"
        self.size = (int(size_wh[0]), int(size_wh[1]))
        with capture_native_stderr():
            self.writer = cv2.VideoWriter(str(self.tmp), cv2.VideoWriter_fourcc(*"mp4v"), float(fps), self.size, True)
        if not self.writer.isOpened():
            self.writer.release()
            self.tmp.unlink(missing_ok=True)
            remove_created(self._created)
            raise PPSegError(f"--out {self.path}: OpenCV cannot write an mp4v video there")
        self.frames = 0

    def write(self, frame: np.ndarray) -> None:
        if frame.ndim == 2:
            frame = cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
        self.writer.write(frame)
        self.frames += 1

    def commit(self) -> Path:
        """Finish the video and rename it into place, after reading its header back: OpenCV's
        writer reports no write errors, so a full disk would otherwise give a broken video."""
        self.writer.release()
        if not self.tmp.is_file() or self.tmp.stat().st_size == 0:
            raise PPSegError(f"--out {self.path}: the video writer produced no file")
        with capture_native_stderr():
            cap = cv2.VideoCapture(str(self.tmp))
            count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0) if cap.isOpened() else -1
            cap.release()
        if count < 0 or 0 < count < self.frames - max(2, math.ceil(0.02 * self.frames)):  # (mkv: an estimate)
            raise PPSegError(f"--out {self.path}: the video written cannot be read back "
                             f"({'unreadable' if count < 0 else f'{count} of {self.frames} frames'}; "
                             "is the disk full?)")
        os.replace(self.tmp, self.path)
        self._created = []
        return self.path

    def discard(self) -> None:
        """Remove the temp file and the folders made for it; ``path`` is left as it was."""
        self.writer.release()
        self.tmp.unlink(missing_ok=True)
        remove_created(self._created)
        self._created = []


class StagedFolder:
    """Output files for the folder ``out``, written into a hidden staging folder next to it
    (``.<name>.partial-XXXX``) and moved into place by :meth:`commit` once every one succeeded;
    :meth:`discard` removes the staging folder and the parent folders made for it. A failed
    run leaves ``out`` as it was (files already in ``out`` and not rewritten are kept).

    ``with StagedFolder(out) as stage:`` discards on any exception; call :meth:`commit` yourself.
    """

    def __init__(self, out: str | os.PathLike) -> None:
        self.out = Path(out)
        self._created = make_parents(self.out.parent)
        try:
            self.path = Path(tempfile.mkdtemp(prefix=f".{self.out.name}.partial-", dir=self.out.parent))
        except BaseException:
            remove_created(self._created)
            raise
        self.files: list[Path] = []

    def __enter__(self) -> StagedFolder:
        return self

    def __exit__(self, exc_type: object, *_: object) -> None:
        if exc_type is not None:
            self.discard()

    def staged(self, rel: str | os.PathLike) -> Path:
        """Where to write the output that will become ``out / rel``."""
        rel = Path(rel)
        if rel.is_absolute() or ".." in rel.parts:
            raise ValueError(f"{rel}: not a path inside the output folder")
        self.files.append(rel)
        return self.path / rel

    def commit(self) -> list[Path]:
        """Move every staged file into ``out`` (replacing files of the same name); returns them."""
        moved: list[Path] = []
        try:
            for rel in self.files:
                dst = self.out / rel
                dst.parent.mkdir(parents=True, exist_ok=True)
                os.replace(self.path / rel, dst)
                moved.append(dst)
        finally:
            shutil.rmtree(self.path, ignore_errors=True)
        self._created = []
        return moved

    def discard(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)
        remove_created(self._created)
        self._created = []


def make_parents(folder: str | os.PathLike) -> list[Path]:
    """``mkdir -p folder``; returns the folders it made, outermost first (for :func:`remove_created`)."""
    folder = Path(folder)
    missing: list[Path] = []
    p = folder
    while not p.exists() and p != p.parent:
        missing.append(p)
        p = p.parent
    missing.reverse()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except BaseException:
        remove_created(missing)
        raise
    return missing


def remove_created(created: list[Path]) -> None:
    """Remove the folders :func:`make_parents` made, innermost first, if they are still empty."""
    for p in reversed(created):
        try:
            p.rmdir()
        except FileNotFoundError:
            continue
        except OSError:
            break


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
