"""Video annotation: frames out of a video, objects carried from frame to frame.

Numpy, OpenCV and the torch-free parts of ppseg only (the annotation server runs its click model
in ONNX Runtime); a torch click predictor works too, it is only called through its ``session``.

* :func:`extract_frames` decodes a video once into ``frames_dir/000000.jpg ...`` (JPEG q95), staged
  in a hidden sibling folder and renamed into place when complete, with a ``frames.json``
  manifest (the video's name, size, mtime and frame count) so that a complete extraction of the
  same video is reused instead of decoded again.
* :func:`backward_flow` / :func:`warp_mask`: a mask moved from one frame to the next by dense
  optical flow (OpenCV DIS on small grey frames): the flow from the *next* frame back to the
  previous one says, for each pixel of the next frame, where it was; the mask is read there
  (``cv2.remap``), so the result has no holes.
* :class:`Propagator`: every object of a frame warped to the next frame and then corrected by
  the click model (the warped mask as the prior, positive clicks at the deepest interior points
  of the warped mask), frame by frame, forward or backward, stopping before a frame the user
  annotated by hand. A correction that disagrees wildly with the warped mask is not trusted.
* :func:`propagation_iou`: the mean IoU of propagated masks against true ones (the measure
  ``benchmarks/annotate_propagation.py`` reports).

Frames are ``H x W x 3`` uint8 **RGB** arrays (what :func:`ppseg.data.io.read_image` gives and
what the click model takes); grey ``H x W`` frames are accepted too.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import threading
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ...errors import ConfigError, PPSegError
from ...fileio import replace_folder
from ..media import make_parents, open_source, progress_bar, remove_created
from .records import AnnotatedObject

__all__ = ["MANIFEST", "JPEG_QUALITY", "extract_frames", "read_manifest", "frame_name", "backward_flow",
           "warp_mask", "Propagator", "propagation_iou", "mask_iou"]

#: the manifest written last into a complete frame folder
MANIFEST = "frames.json"
MANIFEST_FORMAT = "ppseg-video-frames"
JPEG_QUALITY = 95


def frame_name(index: int) -> str:
    """The file name of frame ``index`` (0-based) in a frame folder: ``000000.jpg``."""
    return f"{index:06d}.jpg"


# =============================================================================== frames
def _video_stamp(video: Path) -> dict[str, Any]:
    st = video.stat()
    return {"video": video.name, "bytes": int(st.st_size), "mtime_ns": int(st.st_mtime_ns)}


def read_manifest(frames_dir: str | os.PathLike) -> dict[str, Any] | None:
    """The manifest of a frame folder, or ``None`` when there is none or it is unreadable."""
    try:
        d = json.loads((Path(frames_dir) / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(d, dict) or d.get("format") != MANIFEST_FORMAT:
        return None
    n = d.get("frames")
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        return None
    return d


def _reusable(video: Path, frames_dir: Path) -> list[Path] | None:
    """The frames of a complete extraction of this very video in ``frames_dir``, else ``None``."""
    man = read_manifest(frames_dir)
    if man is None:
        return None
    stamp = _video_stamp(video)
    if any(man.get(k) != v for k, v in stamp.items()):
        return None
    files = [frames_dir / frame_name(i) for i in range(man["frames"])]
    if not all(f.is_file() for f in files):
        return None
    return files


def extract_frames(video: str | os.PathLike, frames_dir: str | os.PathLike, *, max_frames: int = 20000,
                   progress: bool = True) -> list[Path]:
    """Decode every frame of ``video`` to ``frames_dir/000000.jpg, 000001.jpg, ...`` (JPEG q95).

    The frames are written into a hidden staging folder next to ``frames_dir``; the manifest
    (:data:`MANIFEST`) is written last and the folder renamed into place only when the whole
    video decoded, so ``frames_dir`` is either a complete extraction or untouched. When
    ``frames_dir`` already holds a complete extraction of the same file (same name, byte size,
    mtime; every frame file present) it is reused without decoding.

    Raises :class:`PPSegError` naming the file for a video that cannot be decoded (not a video,
    empty, no frames, truncated or corrupt), naming ``max_frames`` for a longer video, and for a
    ``frames_dir`` that exists and is not a frame folder (it is never overwritten then).
    """
    video, frames_dir = Path(video), Path(frames_dir)
    if isinstance(max_frames, bool) or not isinstance(max_frames, int) or max_frames < 1:
        raise ConfigError(f"max_frames must be a positive integer, got {max_frames!r}")
    if not video.is_file():
        raise PPSegError(f"{video}: video not found" if not video.exists() else f"{video}: not a video file")
    reuse = _reusable(video, frames_dir)
    if reuse is not None:
        return reuse
    if frames_dir.exists() and (not frames_dir.is_dir()
                                or (read_manifest(frames_dir) is None and any(frames_dir.iterdir()))):
        raise PPSegError(f"{frames_dir}: exists and is not a frame folder made by ppseg (no {MANIFEST}); "
                         "remove it or choose another folder")
    src = open_source(str(video))  # DataError naming the file: not a video, empty, undecodable
    if src.kind != "video":
        src.close()
        raise PPSegError(f"{video}: not a video file (an image or an image folder)")
    if src.frame_count is not None and src.frame_count > max_frames + max(2, max_frames // 50):
        src.close()  # (the header's count is an estimate for some containers: refuse only clearly too many)
        raise PPSegError(f"{video}: has about {src.frame_count} frames, more than the limit of "
                         f"{max_frames} frames (max_frames); cut the video shorter")
    created = make_parents(frames_dir.parent)
    try:
        stage = Path(tempfile.mkdtemp(prefix=f".{frames_dir.name}.partial-", dir=frames_dir.parent))
    except BaseException:
        src.close()
        remove_created(created)
        raise
    bar = progress_bar(src.frame_count, progress, f"frames of {video.name}")
    files: list[Path] = []
    size = src.size
    try:
        for n, (_, frame) in enumerate(src.frames(max_frames + 1)):
            if n >= max_frames:
                raise PPSegError(f"{video}: has more than the limit of {max_frames} frames (max_frames); "
                                 "cut the video shorter")
            path = stage / frame_name(n)
            try:
                ok = cv2.imwrite(str(path), frame, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
            except cv2.error as e:
                raise PPSegError(f"{frames_dir / path.name}: cannot write frame ({str(e).strip()[:200]})") from None
            if not ok:
                raise PPSegError(f"{frames_dir / path.name}: cannot write frame (is the disk full?)")
            files.append(path)
            if bar is not None:
                bar.update(1)
        if not files:
            raise PPSegError(f"{video}: no frames could be decoded")
        manifest = {"format": MANIFEST_FORMAT, "format_version": 1, **_video_stamp(video),
                    "frames": len(files), "width": size[0] if size else None,
                    "height": size[1] if size else None, "fps": src.fps, "jpeg_quality": JPEG_QUALITY}
        (stage / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
        replace_folder(stage, frames_dir)
    except BaseException:
        src.close()
        shutil.rmtree(stage, ignore_errors=True)
        remove_created(created)
        raise
    finally:
        if bar is not None:
            bar.close()
    return [frames_dir / f.name for f in files]


# =============================================================================== flow and warp
def _grey(frame: np.ndarray) -> np.ndarray:
    f = np.asarray(frame)
    if f.ndim == 3 and f.shape[2] == 3:
        return cv2.cvtColor(f, cv2.COLOR_RGB2GRAY)
    if f.ndim == 2:
        return f if f.dtype == np.uint8 else np.clip(f, 0, 255).astype(np.uint8)
    raise ValueError(f"expected an H x W x 3 RGB or H x W grey frame, got shape {f.shape}")


def _colour(frame: np.ndarray) -> np.ndarray:
    f = np.asarray(frame)
    return f if f.dtype == np.uint8 else np.clip(f, 0, 255).astype(np.uint8)


#: DIS presets by name (the benchmark compares them)
_DIS_PRESETS = {"ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST, "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
                "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM}
FLOW_METHODS = ("dis_ultrafast", "dis_fast", "dis_medium", "dis_fine", "farneback")


def backward_flow(prev_frame: np.ndarray, next_frame: np.ndarray, *, max_side: int = 512,
                  method: str = "dis_fine") -> np.ndarray:
    """Dense optical flow from ``next_frame`` back to ``prev_frame``, ``H x W x 2`` float32 (x, y)
    pixel offsets at full resolution: pixel ``p`` of the next frame was at ``p + flow[p]``.

    It is computed on grey frames scaled down to ``max_side`` pixels on the long side (speed; the
    flow is smooth) and scaled back up. ``method``: ``dis_ultrafast``, ``dis_fast``,
    ``dis_medium`` (OpenCV DIS with that preset), ``dis_fine`` (the medium preset refined down to
    the working resolution: about 4x slower, clearly more accurate) or ``farneback``."""
    a, b = _grey(prev_frame), _grey(next_frame)
    if a.shape != b.shape:
        raise ValueError(f"frames differ in size: {a.shape} and {b.shape}")
    h, w = a.shape
    scale = min(1.0, max_side / max(h, w))
    sw, sh = max(int(round(w * scale)), 8), max(int(round(h * scale)), 8)
    if (sw, sh) != (w, h):
        a = cv2.resize(a, (sw, sh), interpolation=cv2.INTER_AREA)
        b = cv2.resize(b, (sw, sh), interpolation=cv2.INTER_AREA)
    if method not in FLOW_METHODS:
        raise ValueError(f"unknown flow method {method!r} ({', '.join(FLOW_METHODS)})")
    if method == "farneback" or min(sw, sh) < 16:  # (DIS needs 12+ pixels a side)
        flow = cv2.calcOpticalFlowFarneback(b, a, None, 0.5, 4, 15, 3, 5, 1.1, 0)
    else:
        dis = cv2.DISOpticalFlow_create(_DIS_PRESETS["medium" if method == "dis_fine" else method[4:]])
        if method == "dis_fine":
            dis.setFinestScale(0)  # patches matched at the working resolution itself, not at half of it
        flow = dis.calc(b, a, None)
    if (sw, sh) != (w, h):
        flow = cv2.resize(flow, (w, h), interpolation=cv2.INTER_LINEAR)
        flow[..., 0] *= w / sw
        flow[..., 1] *= h / sh
    return flow.astype(np.float32, copy=False)


def warp_mask(prev_frame: np.ndarray, next_frame: np.ndarray, mask: np.ndarray,
              flow: np.ndarray | None = None, *, photo_tolerance: float | None = 20.0) -> np.ndarray:
    """``mask`` (bool, the previous frame's size) moved to ``next_frame`` by dense optical flow.

    ``flow``: the :func:`backward_flow` of the two frames when the caller has it already (one
    flow serves every object of a frame). Parts that move out of the frame are dropped.

    ``photo_tolerance``: a pixel of the next frame whose colour (lightly blurred; the largest
    difference of its channels, 0..255) differs by more than this from where the flow says it
    came from is not tracked and left out of the mask: mostly background uncovered behind a
    moving object, which the flow (smooth across the object's edge) would otherwise drag along,
    so that masks grow frame after frame.
    ``None``: no check."""
    m = np.asarray(mask).astype(bool, copy=False)
    nxt_grey = _grey(next_frame)
    h, w = nxt_grey.shape
    if m.shape != (h, w):
        raise ValueError(f"mask {m.shape} does not match the frame {(h, w)}")
    if flow is None:
        flow = backward_flow(prev_frame, next_frame)
    if flow.shape != (h, w, 2):
        raise ValueError(f"flow {flow.shape} does not match the frame {(h, w)}")
    if not m.any():
        return np.zeros((h, w), bool)
    # only the part of the next frame that can map into the mask's box needs remapping
    rows, cols = np.flatnonzero(m.any(axis=1)), np.flatnonzero(m.any(axis=0))
    pad = int(np.ceil(np.abs(flow).max())) + 2
    y0, y1 = max(int(rows[0]) - pad, 0), min(int(rows[-1]) + pad + 1, h)
    x0, x1 = max(int(cols[0]) - pad, 0), min(int(cols[-1]) + pad + 1, w)
    gx, gy = np.meshgrid(np.arange(x0, x1, dtype=np.float32), np.arange(y0, y1, dtype=np.float32))
    f = flow[y0:y1, x0:x1]
    src = m.astype(np.uint8) * 255
    mx, my = gx + f[..., 0], gy + f[..., 1]
    moved = cv2.remap(src, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0) >= 128
    if photo_tolerance is not None:
        prev_blur = cv2.GaussianBlur(_colour(prev_frame), (5, 5), 0)
        next_blur = cv2.GaussianBlur(_colour(next_frame)[y0:y1, x0:x1], (5, 5), 0)
        seen = cv2.remap(prev_blur, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        diff = cv2.absdiff(seen, next_blur)
        moved &= (diff.max(axis=2) if diff.ndim == 3 else diff) <= photo_tolerance
    out = np.zeros((h, w), bool)
    out[y0:y1, x0:x1] = moved
    return out


# =============================================================================== propagation
def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    """IoU of two bool masks (1.0 when both are empty)."""
    union = np.count_nonzero(a | b)
    return 1.0 if union == 0 else np.count_nonzero(a & b) / union


def propagation_iou(pred_masks: Sequence[np.ndarray], true_masks: Sequence[np.ndarray]) -> float:
    """The mean over frames of the IoU of the predicted and true masks (an empty prediction of an
    empty truth counts 1)."""
    if len(pred_masks) != len(true_masks):
        raise ValueError(f"{len(pred_masks)} predicted masks for {len(true_masks)} true ones")
    if not len(true_masks):
        raise ValueError("no masks to compare")
    ious = []
    for p, t in zip(pred_masks, true_masks):
        p, t = np.asarray(p).astype(bool, copy=False), np.asarray(t).astype(bool, copy=False)
        if p.shape != t.shape:
            raise ValueError(f"predicted mask {p.shape} and true mask {t.shape} differ in size")
        ious.append(mask_iou(p, t))
    return float(np.mean(ious))


def _box(mask: np.ndarray) -> tuple[int, int, int, int]:
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1


def interior_points(mask: np.ndarray, n: int = 1, min_area: int = 1) -> list[tuple[int, int]]:
    """Up to ``n`` points (row, col) deepest inside ``mask`` (distance transform): the deepest
    point of each of the ``n`` largest connected parts of at least ``min_area`` pixels (the
    largest part always counts)."""
    m = np.pad(mask.astype(np.uint8), 1)  # the crop's border is the object's border
    count, labels, stats, _ = cv2.connectedComponentsWithStats(m, connectivity=8)
    if count <= 1:
        return []
    dist = cv2.distanceTransform(m, cv2.DIST_L2, 5)
    order = sorted(range(1, count), key=lambda k: -stats[k, cv2.CC_STAT_AREA])
    points = []
    for k in order[:max(n, 1)]:
        if points and stats[k, cv2.CC_STAT_AREA] < min_area:
            break
        d = np.where(labels == k, dist, -1.0)
        r, c = np.unravel_index(int(np.argmax(d)), d.shape)
        points.append((int(r) - 1, int(c) - 1))
    return points


class Propagator:
    """Carries annotated objects from one video frame to the next (see the module docstring).

    Args:
        predictor: a click predictor (:class:`~ppseg.interactive.session.ClickPredictor`, torch or
            ONNX Runtime; anything whose ``session(image, prior=mask)`` gives an object with
            ``click(y, x, positive)`` and ``mask``); ``None``: optical-flow warping only.
        refine: correct each warped mask with the click model (needs ``predictor``).
        min_area: an object whose warped mask is smaller (pixels) has left the frame or vanished
            and is dropped.
        guard_iou: a refined mask whose IoU with the warped one is below this is not trusted (the
            model jumped to another object or lost this one): the warped mask is kept.
        clicks: positive clicks per object, at the deepest points of the warped mask's largest parts.
        context: the click model works on a crop of the frame around the warped mask, this many
            times its box (at least ``min_crop`` pixels a side).
        square: make that crop square (the click model resizes its window to a square); measured
            worse than the box-shaped crop, so off.
        flow_side, flow_method: :func:`backward_flow`'s ``max_side`` and ``method``.
        photo_tolerance: :func:`warp_mask`'s.

    The defaults were chosen with ``benchmarks/annotate_propagation.py`` (real people composited
    onto real street scenes, moving, scaling, rotating and deforming; see its docstring): the
    fine DIS flow at 512 px, the colour check at 20, refinement with one click on a 2x box crop
    and the guard at IoU 0.7 each measured best of their alternatives there.
    """

    def __init__(self, predictor: Any | None, *, refine: bool = True, min_area: int = 20,
                 guard_iou: float = 0.7, clicks: int = 1, context: float = 2.0, min_crop: int = 64,
                 square: bool = False, flow_side: int = 512, flow_method: str = "dis_fine",
                 photo_tolerance: float | None = 20.0) -> None:
        if isinstance(min_area, bool) or not isinstance(min_area, int) or min_area < 1:
            raise ConfigError(f"min_area must be a positive integer, got {min_area!r}")
        if not 0.0 <= float(guard_iou) <= 1.0:
            raise ConfigError(f"guard_iou must be in [0, 1], got {guard_iou!r}")
        if isinstance(clicks, bool) or not isinstance(clicks, int) or not 1 <= clicks <= 10:
            raise ConfigError(f"clicks must be an integer in 1..10, got {clicks!r}")
        if not 1.0 <= float(context) <= 10.0:
            raise ConfigError(f"context must be in [1, 10], got {context!r}")
        self.predictor = predictor
        self.refine = bool(refine) and predictor is not None
        self.min_area = min_area
        self.guard_iou = float(guard_iou)
        self.clicks = clicks
        self.context = float(context)
        self.min_crop = int(min_crop)
        self.flow_side = int(flow_side)
        self.flow_method = flow_method
        self.square = bool(square)
        self.photo_tolerance = photo_tolerance
        if flow_method not in FLOW_METHODS:
            raise ConfigError(f"flow_method must be one of {', '.join(FLOW_METHODS)}, got {flow_method!r}")
        #: how the last :meth:`step` went, per object: "warped", "refined", "guarded" (refinement
        #: refused), "dropped"
        self.last_outcomes: list[str] = []

    # ------------------------------------------------------------------ one frame
    def step(self, prev_frame: np.ndarray, next_frame: np.ndarray,
             objects: Sequence[AnnotatedObject]) -> list[AnnotatedObject]:
        """The ``objects`` of ``prev_frame`` on ``next_frame``: each one's mask warped by the
        optical flow and (with ``refine``) corrected by the click model; id, label and track kept,
        ``source="propagated"``; objects whose mask vanishes (area < ``min_area``) are dropped."""
        self.last_outcomes = []
        if not objects:
            return []
        nxt = np.asarray(next_frame)
        h, w = nxt.shape[:2]
        flow = backward_flow(prev_frame, nxt, max_side=self.flow_side, method=self.flow_method)
        out: list[AnnotatedObject] = []
        for obj in objects:
            warped = warp_mask(prev_frame, nxt, obj.mask(h, w), flow, photo_tolerance=self.photo_tolerance)
            if np.count_nonzero(warped) < self.min_area:
                self.last_outcomes.append("dropped")
                continue
            crop_mask, offset, outcome = self._refine(nxt, warped)
            self.last_outcomes.append(outcome)
            out.append(replace(obj.with_mask(crop_mask, offset), source="propagated"))
        return out

    def _refine(self, frame: np.ndarray, warped: np.ndarray) -> tuple[np.ndarray, tuple[int, int], str]:
        """(mask of a crop, its (x, y) offset, outcome) for one warped mask."""
        h, w = warped.shape
        r0, r1, c0, c1 = _box(warped)
        if not self.refine:
            return warped[r0:r1, c0:c1], (c0, r0), "warped"
        # the crop the click model sees: the box times `context`, at least min_crop a side
        ch = max((r1 - r0) * self.context, self.min_crop)
        cw = max((c1 - c0) * self.context, self.min_crop)
        if self.square:  # the click model resizes its window to a square: keep the object's shape
            ch = cw = max(ch, cw)
        rc, cc = 0.5 * (r0 + r1), 0.5 * (c0 + c1)
        y0, y1 = max(int(round(rc - ch / 2)), 0), min(int(round(rc + ch / 2)), h)
        x0, x1 = max(int(round(cc - cw / 2)), 0), min(int(round(cc + cw / 2)), w)
        prior = warped[y0:y1, x0:x1]
        image = frame[y0:y1, x0:x1]
        if image.ndim == 2:
            image = np.repeat(image[:, :, None], 3, axis=2)
        session = self.predictor.session(np.ascontiguousarray(image), prior=prior)
        for r, c in interior_points(prior, self.clicks, self.min_area):
            session.click(r, c, True)
        refined = np.asarray(session.mask).astype(bool, copy=False)
        if (refined.shape != prior.shape or np.count_nonzero(refined) < self.min_area
                or mask_iou(refined, prior) < self.guard_iou):
            return warped[r0:r1, c0:c1], (c0, r0), "guarded"
        return refined, (x0, y0), "refined"

    # ------------------------------------------------------------------ a run of frames
    def run(self, read_frame: Callable[[int], np.ndarray], start: int, end: int,
            objects: Sequence[AnnotatedObject], *, stop: Callable[[int], bool] = lambda i: False,
            on_frame: Callable[[int, list[AnnotatedObject]], None] | None = None,
            cancel: threading.Event | None = None) -> list[int]:
        """Propagate ``objects`` (those of frame ``start``) frame by frame towards frame ``end``
        (inclusive; forward when ``end > start``, backward when ``end < start``).

        ``on_frame(i, objects)`` is called for each new frame ``i`` with its objects. The run
        stops before a frame for which ``stop(i)`` is true (a frame the user annotated by hand),
        when ``cancel`` is set (checked before each frame), or after the frame on which the last
        object vanished (that frame gets an empty list). Returns the frame indices written."""
        written: list[int] = []
        current = list(objects)
        if end == start or not current:
            return written
        d = 1 if end > start else -1
        prev = read_frame(start)
        for i in range(start + d, end + d, d):
            if (cancel is not None and cancel.is_set()) or stop(i):
                break
            frame = read_frame(i)
            current = self.step(prev, frame, current)
            if on_frame is not None:
                on_frame(i, current)
            written.append(i)
            if not current:
                break
            prev = frame
        return written
