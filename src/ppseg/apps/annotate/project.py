"""An annotation project: the images of INPUT, what is saved under OUT, and the live editing state.

Layout of OUT (default ``INPUT/annotations`` for a folder, ``<video>_annotations`` beside a video)::

    project.json          labels, settings, the model, where the user was (resume point)
    objects/<key>.json    one per image: its finished objects (bbox-RLE masks), status, window
    frames/000000.jpg     the frames of a video INPUT (extracted once)
    exports/<format>/     what the export menu or ``ppseg annotate --export`` wrote

Every write goes through :func:`ppseg.fileio.atomic_open` (temp file + fsync + rename): a kill at
any moment leaves each file either as it was or as it is meant to be. Each finished object is
saved as soon as it exists; what is lost to a SIGKILL is at most the clicks of the object being
made. A saved file that cannot be read back is reported and never overwritten.

The editing state of an image (:class:`ImageState`) keeps one history of clicks and object
operations, so undo/redo walk back through both in the order they happened. Thread safety: the
server serialises every mutation through :attr:`Project.lock`.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ...errors import PPSegError
from ..media import make_parents, remove_created
from ...fileio import atomic_open, remove_stale_temp_files
from .records import AnnotatedObject, ImageRecord, Label, check_labels, encode_mask, paste_mask

log = logging.getLogger("ppseg")

__all__ = ["Project", "ImageState", "Settings", "AnnotateError", "NotFound", "Conflict", "Unprocessable", "TooLarge",
           "VIDEO_SUFFIXES", "LARGE_SIDE", "CROP_SIDE"]

PROJECT_FILE = "project.json"
OBJECTS_DIR = "objects"
FRAMES_DIR = "frames"
EXPORTS_DIR = "exports"
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv")
MAX_IMAGES = 200_000
#: images with a longer side than this are clicked in a crop (the visible part), not as a whole
LARGE_SIDE = 4096
#: the largest crop the click model works in on such an image
CROP_SIDE = 2048
#: the smallest crop side on a large image (a click when zoomed far in still sees some context)
MIN_CROP_SIDE = 512
HISTORY = 200
MAX_POINTS = 20_000
STATUSES = ("", "done", "empty")


class AnnotateError(PPSegError):
    """A request that cannot be done; ``status`` is the HTTP status the server answers with."""

    status = 400


class NotFound(AnnotateError):
    status = 404


class Conflict(AnnotateError):
    status = 409


class Unprocessable(AnnotateError):
    status = 422


class TooLarge(AnnotateError):
    status = 413


@dataclass
class Settings:
    """Project settings the page changes: keep only the largest component of each object; the
    click model's probability threshold."""

    keep_largest: bool = False
    threshold: float = 0.5

    def to_dict(self) -> dict[str, Any]:
        return {"keep_largest": self.keep_largest, "threshold": self.threshold}

    def updated(self, d: Any, where: str = "settings") -> Settings:
        if not isinstance(d, dict):
            raise AnnotateError(f"{where}: expected an object")
        unknown = sorted(set(d) - {"keep_largest", "threshold"})
        if unknown:
            raise AnnotateError(f"{where}: unknown setting {unknown[0]!r} (keep_largest, threshold)")
        out = replace(self)
        if "keep_largest" in d:
            if not isinstance(d["keep_largest"], bool):
                raise AnnotateError(f"{where}.keep_largest: expected true or false, got {d['keep_largest']!r}")
            out.keep_largest = d["keep_largest"]
        if "threshold" in d:
            t = d["threshold"]
            if isinstance(t, bool) or not isinstance(t, (int, float)) or not 0.01 <= float(t) <= 0.99:
                raise AnnotateError(f"{where}.threshold: expected a number in 0.01..0.99, got {t!r}")
            out.threshold = float(t)
        return out


def _natural_key(s: str) -> list[Any]:
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", s)]


def largest_component(mask: np.ndarray) -> np.ndarray:
    import cv2

    n, lab, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    if n <= 2:
        return mask
    best = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    return lab == best


# --------------------------------------------------------------------------- per-image editing state
@dataclass(frozen=True)
class _Snap:
    objects: tuple[AnnotatedObject, ...]
    session: Any  # ClickSession | None
    session_state: Any
    crop: tuple[int, int, int, int] | None
    editing: int | None = None


@dataclass
class ImageState:
    """The live state of one opened image: its record, the object being clicked, the history."""

    index: int
    record: ImageRecord
    image: Any  # imaging.OpenedImage
    session: Any = None  # ClickSession of the object being clicked
    crop: tuple[int, int, int, int] | None = None  # x0, y0, x1, y1 the session works in
    editing: int | None = None  # the finished object the clicks correct (None: a new object)
    history: list[_Snap] = field(default_factory=list)
    pos: int = 0

    def __post_init__(self) -> None:
        self.history = [self._snap()]
        self.pos = 0

    def _snap(self) -> _Snap:
        s = self.session
        return _Snap(tuple(self.record.objects), s, s.snapshot() if s is not None else None, self.crop, self.editing)

    def push(self) -> None:
        del self.history[self.pos + 1:]
        self.history.append(self._snap())
        if len(self.history) > HISTORY:
            del self.history[0]
        self.pos = len(self.history) - 1

    def _restore(self, snap: _Snap) -> None:
        self.record.objects = list(snap.objects)
        self.session, self.crop, self.editing = snap.session, snap.crop, snap.editing
        if snap.session is not None:
            snap.session.restore(snap.session_state)

    @property
    def can_undo(self) -> bool:
        return self.pos > 0

    @property
    def can_redo(self) -> bool:
        return self.pos < len(self.history) - 1

    def undo(self) -> bool:
        if not self.can_undo:
            return False
        before = self.history[self.pos].objects
        self.pos -= 1
        self._restore(self.history[self.pos])
        return before != self.history[self.pos].objects

    def redo(self) -> bool:
        if not self.can_redo:
            return False
        before = self.history[self.pos].objects
        self.pos += 1
        self._restore(self.history[self.pos])
        return before != self.history[self.pos].objects


# --------------------------------------------------------------------------- the project
class Project:
    """INPUT (a folder of images or frames, or a video file) and OUT (see the module docstring).

    Args:
        input_path: the folder or video.
        out: where annotations go (default: see the module docstring).
        labels: labels to start with (``--labels``); else the project's saved ones, else one
            label ``object``.
        progress: show a progress bar while a video's frames are extracted.
    """

    def __init__(self, input_path: str | os.PathLike, out: str | os.PathLike | None = None,
                 labels: Sequence[Label] | None = None, *, progress: bool = True) -> None:
        src = Path(input_path).expanduser()
        if not src.exists():
            raise PPSegError(f"{src}: no such file or folder (give a folder of images, a folder of frames or a video)")
        self.input = src.resolve()
        if self.input.is_dir():
            self.kind = "images"
            self.out = Path(out).expanduser().resolve() if out else self.input / "annotations"
        elif self.input.suffix.lower() in VIDEO_SUFFIXES:
            self.kind = "video"
            self.out = (Path(out).expanduser().resolve() if out
                        else self.input.with_name(self.input.stem + "_annotations"))
        else:
            raise PPSegError(f"{src}: not a folder or a video file ({', '.join(VIDEO_SUFFIXES)}); give a folder of "
                             "images, a folder of frames or a video")
        if self.out.exists() and not self.out.is_dir():
            raise PPSegError(f"--out {self.out}: exists and is not a folder")
        try:
            #: the folders this project made (removed again if starting fails: no half-made output)
            self.created = make_parents(self.out / OBJECTS_DIR)
        except OSError as e:
            raise PPSegError(f"--out {self.out}: cannot create the folder ({e.strerror or e})") from None
        try:
            self._start(labels, progress)
        except BaseException:
            self.discard()
            raise

    def discard(self) -> None:
        """Remove the (still empty) folders this project made; for a start that failed."""
        remove_created(self.created)

    def _start(self, labels: Sequence[Label] | None, progress: bool) -> None:
        from .imaging import IMAGE_SUFFIXES_ANNOTATE, ImageCache

        remove_stale_temp_files(self.out)
        self.lock = threading.RLock()
        self.cache = ImageCache()
        if self.kind == "video":
            from .video import extract_frames

            self.root = self.out / FRAMES_DIR
            paths = extract_frames(self.input, self.root, progress=progress)
        else:
            self.root = self.input
            paths = self._list_images()
        if not paths:
            raise PPSegError(f"{self.input}: no images here (looked for {', '.join(IMAGE_SUFFIXES_ANNOTATE)} in it "
                             "and its subfolders)")
        if len(paths) > MAX_IMAGES:
            raise PPSegError(f"{self.input}: {len(paths)} images; at most {MAX_IMAGES} per project (split the folder)")
        self.records: list[ImageRecord] = []
        self.errors: dict[int, str] = {}  # image index -> why its saved objects cannot be used
        self.windows: dict[int, dict[str, float]] = {}
        for i, p in enumerate(paths):
            key = p.relative_to(self.root).as_posix()
            self.records.append(self._load_record(i, key, p))
        self.labels: list[Label] = []
        self.settings = Settings()
        self.current = 0
        self.model = ""
        self.next_track = 1 + max((o.track or 0 for r in self.records for o in r.objects), default=0)
        self._load_project()
        if labels:
            self.labels = check_labels(list(labels))
        if not self.labels:
            self.labels = [Label(1, "object", (230, 25, 75))]
        self.states: dict[int, ImageState] = {}
        self.save_errors: dict[int, str] = {}
        self.predictor: Any = None


    # ------------------------------------------------------------------ listing and loading
    def _list_images(self) -> list[Path]:
        from .imaging import is_annotate_image

        found: list[Path] = []
        for dirpath, dirnames, filenames in os.walk(self.input, followlinks=False):
            d = Path(dirpath)
            dirnames[:] = sorted((n for n in dirnames if not n.startswith(".")
                                  and (d / n).resolve() != self.out), key=_natural_key)
            for name in sorted(filenames, key=_natural_key):
                p = d / name
                if name.startswith("."):
                    continue
                if p.is_symlink():  # a link may point anywhere: only follow (or read) it inside INPUT
                    try:
                        target = p.resolve(strict=True)
                    except OSError:
                        continue
                    if not target.is_relative_to(self.input) or not target.is_file():
                        log.warning("skipping %s: a link to outside the input folder", p)
                        continue
                if not is_annotate_image(p):  # (reads the preamble of a suffix-less file: DICOM?)
                    continue
                found.append(p)
        return found

    def record_path(self, key: str) -> Path:
        return self.out / OBJECTS_DIR / (key + ".json")

    def _load_record(self, index: int, key: str, path: Path) -> ImageRecord:
        rec = ImageRecord(key, path, 0, 0)
        f = self.record_path(key)
        if not f.exists():
            return rec
        try:
            data = json.loads(f.read_text(encoding="utf-8"))
            if not isinstance(data, dict):
                raise ValueError("not a JSON object")
            rec.width, rec.height = int(data.get("width", 0)), int(data.get("height", 0))
            status = data.get("status", "")
            rec.status = status if status in STATUSES else ""
            rec.objects = [AnnotatedObject.from_dict(o, f"{f}: objects[{k}]")
                           for k, o in enumerate(data.get("objects") or [])]
            if isinstance(data.get("window"), dict):
                self.windows[index] = {k: float(v) for k, v in data["window"].items() if k in ("width", "level")}
        except (OSError, ValueError, TypeError, PPSegError) as e:
            msg = str(e) if isinstance(e, PPSegError) else f"{f}: unreadable ({e})"
            self.errors[index] = f"{msg}; it is left untouched (fix or move it to annotate this image again)"
            log.warning("%s", self.errors[index])
            rec.objects = []
        return rec

    def _load_project(self) -> None:
        f = self.out / PROJECT_FILE
        if not f.exists():
            return
        try:
            data = json.loads(f.read_text(encoding="utf-8"))
            self.labels = check_labels([Label.from_dict(d, f"{f}: labels[{k}]")
                                        for k, d in enumerate(data.get("labels") or [])], str(f))
            self.settings = Settings().updated(data.get("settings") or {}, f"{f}: settings")
            cur = data.get("current", 0)
            self.current = cur if isinstance(cur, int) and 0 <= cur < len(self.records) else 0
            self.model = str(data.get("model") or "")
            self.next_track = max(self.next_track, int(data.get("next_track", 1)))
        except (OSError, ValueError, TypeError, PPSegError) as e:
            raise PPSegError(f"{f}: unreadable project file ({e}); move it away to start the project afresh "
                             "(the objects/ folder is kept)") from None

    # ------------------------------------------------------------------ saving
    def save_project(self) -> None:
        data = {"version": 1, "input": str(self.input), "kind": self.kind,
                "labels": [lab.to_dict() for lab in self.labels], "settings": self.settings.to_dict(),
                "current": self.current, "model": self.model, "next_track": self.next_track}
        try:
            with atomic_open(self.out / PROJECT_FILE) as fh:
                fh.write((json.dumps(data, indent=1) + "\n").encode("utf-8"))
        except OSError as e:
            raise AnnotateError(f"{self.out / PROJECT_FILE}: cannot save ({e.strerror or e})") from None

    def save_record(self, index: int) -> bool:
        """Write image ``index``'s objects atomically; False (and :attr:`save_errors`) on failure."""
        rec = self.records[index]
        if index in self.errors:
            return False
        data: dict[str, Any] = {"version": 1, "image": rec.key, "width": rec.width, "height": rec.height,
                                "status": rec.status, "window": self.windows.get(index),
                                "objects": [o.to_dict() for o in rec.objects]}
        path = self.record_path(rec.key)
        try:
            with atomic_open(path) as fh:
                fh.write(json.dumps(data, separators=(",", ":")).encode("utf-8"))
        except OSError as e:
            self.save_errors[index] = f"{path}: not saved ({e.strerror or e}); your work is kept in memory " \
                                      "and saved again with the next change"
            log.warning("%s", self.save_errors[index])
            return False
        self.save_errors.pop(index, None)
        return True

    # ------------------------------------------------------------------ access
    def index(self, i: Any) -> int:
        if isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < len(self.records):
            raise NotFound(f"image {i!r} does not exist (0..{len(self.records) - 1})")
        return i

    def open(self, i: int) -> ImageState:
        """The editing state of image ``i`` (opening it on first use); 422 naming the file when the
        image cannot be read."""
        i = self.index(i)
        st = self.states.get(i)
        if st is not None:
            return st
        rec = self.records[i]
        try:
            img, _ = self.cache.get(rec.path)
        except PPSegError as e:
            raise Unprocessable(str(e)) from None
        if (rec.width, rec.height) != (img.width, img.height):
            if rec.objects and rec.width:
                raise Unprocessable(f"{rec.path}: is {img.width} x {img.height} now but its objects were made on "
                                    f"{rec.width} x {rec.height}; {self.record_path(rec.key)} is left untouched")
            rec.width, rec.height = img.width, img.height
        st = ImageState(i, rec, img)
        self.states[i] = st
        for old in [k for k in self.states if k != i][:-4]:  # keep the histories of the last few images
            if self.states[old].session is None:
                del self.states[old]
        return st

    def writable(self, i: int) -> None:
        if i in self.errors:
            raise Conflict(self.errors[i])

    def label_ids(self) -> set[int]:
        return {lab.id for lab in self.labels}

    def check_label(self, label: Any) -> int:
        if isinstance(label, bool) or not isinstance(label, int) or label not in self.label_ids():
            known = ", ".join(f"{lab.id} ({lab.name})" for lab in self.labels)
            raise AnnotateError(f"label {label!r} does not exist (labels: {known})")
        return label

    def window_of(self, i: int, image: Any = None) -> Any:
        """The display window of image ``i`` (the user's, else the image's default; ``None`` for
        photos). ``image``: the opened image, when the caller has it (no state is touched then)."""
        from .imaging import Window

        image = image if image is not None else self.open(i).image
        w = self.windows.get(i)
        if image.windowed and w is not None and "width" in w and "level" in w:
            return Window(w["width"], w["level"])
        return image.default_window

    # ------------------------------------------------------------------ clicking
    def _crop_for(self, st: ImageState, x: float, y: float, view: Any) -> tuple[int, int, int, int]:
        W, H = st.image.width, st.image.height
        if max(W, H) <= LARGE_SIDE:
            return 0, 0, W, H
        if view is not None:
            x0, y0, x1, y1 = (float(v) for v in view)
            vw, vh = x1 - x0, y1 - y0
        else:
            vw = vh = float(CROP_SIDE)
        side_w = int(min(CROP_SIDE, max(MIN_CROP_SIDE, vw * 1.2)))
        side_h = int(min(CROP_SIDE, max(MIN_CROP_SIDE, vh * 1.2)))
        cx = x0 + vw / 2 if view is not None and side_w >= vw else x
        cy = y0 + vh / 2 if view is not None and side_h >= vh else y
        ax = int(min(max(0, cx - side_w / 2), max(0, W - side_w)))
        ay = int(min(max(0, cy - side_h / 2), max(0, H - side_h)))
        return ax, ay, min(W, ax + side_w), min(H, ay + side_h)

    def click(self, i: int, x: Any, y: Any, positive: bool, view: Any = None) -> ImageState:
        st = self.open(i)
        self.writable(i)
        for name, v, top in (("x", x, st.image.width), ("y", y, st.image.height)):
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not np.isfinite(v) or not 0 <= v < top:
                raise AnnotateError(f"click {name} = {v!r} is outside the image ({st.image.width} x {st.image.height})")
        if view is not None and (not isinstance(view, (list, tuple)) or len(view) != 4 or any(
                isinstance(v, bool) or not isinstance(v, (int, float)) or not np.isfinite(v) for v in view)):
            raise AnnotateError(f"view: expected [x0, y0, x1, y1], got {view!r}")
        if self.predictor is None:
            raise Conflict("no click model is loaded")
        new_session = st.session is None
        if new_session:
            crop = self._crop_for(st, float(x), float(y), view)
            image = st.image.region(*crop, window=self.window_of(i))
            session = self.predictor.session(image, threshold=self.settings.threshold)
        else:
            crop, session = st.crop, st.session
            x0, y0, x1, y1 = crop
            if not (x0 <= x < x1 and y0 <= y < y1):
                raise Conflict(f"click ({x:.0f}, {y:.0f}) is outside the window the click model works in "
                               f"({x0}..{x1}, {y0}..{y1}) on this large image; finish the object (Space) first")
        session.click(float(y) - crop[1], float(x) - crop[0], bool(positive))
        st.session, st.crop = session, crop
        st.push()
        return st

    def current_mask(self, st: ImageState) -> np.ndarray | None:
        if st.session is None:
            return None
        m = st.session.mask
        if self.settings.keep_largest and m.any():
            m = largest_component(m)
        return m

    def current_of(self, st: ImageState) -> dict[str, Any] | None:
        m = self.current_mask(st)
        if m is None:
            return None
        x0, y0, x1, y1 = st.crop
        clicks = st.session.clicks[1:] if st.editing is not None else st.session.clicks  # not the hidden anchor
        return {"clicks": [{"x": c.x + x0, "y": c.y + y0, "positive": c.positive} for c in clicks],
                "mask": encode_mask(m, (x0, y0)), "window": [x0, y0, x1, y1], "editing": st.editing}

    # ------------------------------------------------------------------ object operations
    def _changed(self, st: ImageState) -> bool:
        st.push()
        return self.save_record(st.index)

    def finish(self, i: int, label: Any) -> ImageState:
        st = self.open(i)
        self.writable(i)
        label = self.check_label(label)
        m = self.current_mask(st)
        if m is None or not m.any():
            raise Conflict("nothing to finish: click on an object first (the mask is empty)")
        if st.editing is not None:  # clicks that corrected a finished object: it keeps id, label, track, place
            k = self._object(st, st.editing)
            st.record.objects[k] = replace(st.record.objects[k].with_mask(m, st.crop[:2]), source="manual")
            st.session, st.crop, st.editing = None, None, None
            self._changed(st)
            return st
        oid = 1 + max((o.id for o in st.record.objects), default=0)
        track = None
        if self.kind == "video":
            track = self.next_track
            self.next_track += 1
        st.record.objects.append(AnnotatedObject.from_mask(oid, label, m, st.crop[:2], track=track))
        st.session, st.crop = None, None
        self._changed(st)
        if track is not None:
            self.save_project()
        return st

    def cancel(self, i: int) -> ImageState:
        st = self.open(i)
        if st.session is not None:
            st.session, st.crop, st.editing = None, None, None
            st.push()
        return st

    def refine(self, i: int, oid: int) -> ImageState:
        """Correct finished object ``oid`` with clicks: a click session that starts from its mask (the
        click model refines it, as with the previous mask of its own clicks); finishing replaces the
        object's mask (it keeps its id, label, track and paint place, and counts as made by hand, so a
        video propagation stops there), cancelling leaves it as it was."""
        st = self.open(i)
        self.writable(i)
        if st.session is not None:
            raise Conflict("an object is being clicked: finish it (Space) or cancel it (Esc) first")
        if self.predictor is None:
            raise Conflict("no click model is loaded")
        obj = st.record.objects[self._object(st, oid)]
        W, H = st.image.width, st.image.height
        if max(W, H) <= LARGE_SIDE:
            crop = (0, 0, W, H)
        else:  # the object and some context around it
            x, y, w, h = obj.bbox
            side_w, side_h = min(W, max(MIN_CROP_SIDE, int(w * 1.5))), min(H, max(MIN_CROP_SIDE, int(h * 1.5)))
            ax = int(min(max(0, x + w / 2 - side_w / 2), W - side_w))
            ay = int(min(max(0, y + h / 2 - side_h / 2), H - side_h))
            crop = (ax, ay, ax + side_w, ay + side_h)
        x0, y0, x1, y1 = crop
        prior = paste_mask(obj.crop(), (obj.bbox[0] - x0, obj.bbox[1] - y0), y1 - y0, x1 - x0)
        image = st.image.region(*crop, window=self.window_of(i))
        session = self.predictor.session(image, threshold=self.settings.threshold)
        session.set_prior(prior, anchor=_deepest_point(prior))  # the model sees a positive click inside it
        st.session, st.crop, st.editing = session, crop, oid
        st.push()
        return st

    def undo(self, i: int) -> ImageState:
        st = self.open(i)
        self.writable(i)
        if st.undo():
            self.save_record(i)
        return st

    def redo(self, i: int) -> ImageState:
        st = self.open(i)
        self.writable(i)
        if st.redo():
            self.save_record(i)
        return st

    def _object(self, st: ImageState, oid: Any) -> int:
        for k, o in enumerate(st.record.objects):
            if o.id == oid:
                return k
        raise NotFound(f"object {oid!r} does not exist on image {st.index} ({st.record.key})")

    def relabel(self, i: int, oid: int, label: Any) -> ImageState:
        st = self.open(i)
        self.writable(i)
        k = self._object(st, oid)
        st.record.objects[k] = replace(st.record.objects[k], label=self.check_label(label))
        self._changed(st)
        return st

    def delete(self, i: int, oid: int) -> ImageState:
        st = self.open(i)
        self.writable(i)
        del st.record.objects[self._object(st, oid)]
        if st.editing == oid:  # the clicks correcting it go with it
            st.session, st.crop, st.editing = None, None, None
        self._changed(st)
        return st

    def reorder(self, i: int, oid: int, to: Any) -> ImageState:
        st = self.open(i)
        self.writable(i)
        k = self._object(st, oid)
        n = len(st.record.objects)
        if isinstance(to, bool) or not isinstance(to, int) or not 0 <= to < n:
            raise AnnotateError(f"to = {to!r}: a paint position 0..{n - 1} (0 = bottom)")
        obj = st.record.objects.pop(k)
        st.record.objects.insert(to, obj)
        self._changed(st)
        return st

    def polygons(self, i: int, oid: int) -> list[list[list[float]]]:
        from .exports import mask_to_polygons

        st = self.open(i)
        obj = st.record.objects[self._object(st, oid)]
        x, y = obj.bbox[:2]
        return [[[float(px) + x, float(py) + y] for px, py in np.asarray(poly).reshape(-1, 2)]
                for poly in mask_to_polygons(obj.crop())]

    def set_polygons(self, i: int, oid: int, polygons: Any) -> ImageState:
        from .exports import polygons_to_mask

        st = self.open(i)
        self.writable(i)
        k = self._object(st, oid)
        polys = _check_points(polygons, "polygons", nested=True)
        if not polys or any(len(p) < 3 for p in polys):
            raise AnnotateError("polygons: each polygon needs at least 3 points")
        W, H = st.image.width, st.image.height
        allp = np.concatenate(polys)
        x0, y0 = max(0, int(np.floor(allp[:, 0].min()))), max(0, int(np.floor(allp[:, 1].min())))
        x1, y1 = min(W, int(np.ceil(allp[:, 0].max())) + 1), min(H, int(np.ceil(allp[:, 1].max())) + 1)
        if x1 <= x0 or y1 <= y0:
            raise AnnotateError("polygons: entirely outside the image")
        mask = polygons_to_mask([p - np.array([x0, y0], np.float64) for p in polys], y1 - y0, x1 - x0)
        if not mask.any():
            raise AnnotateError("polygons: the polygon has no area (delete the object instead)")
        st.record.objects[k] = replace(st.record.objects[k].with_mask(mask, (x0, y0)), source="manual")
        self._changed(st)
        return st

    def brush(self, i: int, oid: int, strokes: Any) -> ImageState:
        import cv2

        st = self.open(i)
        self.writable(i)
        k = self._object(st, oid)
        if not isinstance(strokes, list) or not strokes or len(strokes) > 1000:
            raise AnnotateError("strokes: expected a list of 1..1000 strokes")
        parsed = []
        for n, s in enumerate(strokes):
            if not isinstance(s, dict):
                raise AnnotateError(f"strokes[{n}]: expected an object with points, radius, erase")
            pts = _check_points(s.get("points"), f"strokes[{n}].points")
            r = s.get("radius")
            if isinstance(r, bool) or not isinstance(r, (int, float)) or not 0.5 <= r <= 500:
                raise AnnotateError(f"strokes[{n}].radius: expected a number in 0.5..500, got {r!r}")
            parsed.append((pts, float(r), bool(s.get("erase", False))))
        obj = st.record.objects[k]
        W, H = st.image.width, st.image.height
        bx, by, bw, bh = obj.bbox
        xs = [bx, bx + bw] + [float(p[:, 0].min() - r) for p, r, _ in parsed] + [float(p[:, 0].max() + r) for p, r, _ in parsed]
        ys = [by, by + bh] + [float(p[:, 1].min() - r) for p, r, _ in parsed] + [float(p[:, 1].max() + r) for p, r, _ in parsed]
        x0, y0 = max(0, int(np.floor(min(xs)))), max(0, int(np.floor(min(ys))))
        x1, y1 = min(W, int(np.ceil(max(xs))) + 1), min(H, int(np.ceil(max(ys))) + 1)
        if x1 <= x0 or y1 <= y0:
            raise AnnotateError("strokes: entirely outside the image")
        canvas = paste_mask(obj.crop(), (bx - x0, by - y0), y1 - y0, x1 - x0).astype(np.uint8)
        for pts, r, erase in parsed:
            p = np.round((pts - [x0, y0]) * 4).astype(np.int32)  # 2 fractional bits
            thick = max(1, int(round(2 * r)))
            val = 0 if erase else 1
            if len(p) == 1:
                cv2.circle(canvas, tuple(int(v) for v in p[0]), int(round(r * 4)), val, -1, cv2.LINE_8, 2)
            else:
                cv2.polylines(canvas, [p.reshape(-1, 1, 2)], False, val, thick, cv2.LINE_8, 2)
                for q in (p[0], p[-1]):
                    cv2.circle(canvas, tuple(int(v) for v in q), int(round(r * 4)), val, -1, cv2.LINE_8, 2)
        if not canvas.any():
            raise AnnotateError("the eraser would remove the whole object (delete it instead)")
        st.record.objects[k] = replace(obj.with_mask(canvas.astype(bool), (x0, y0)), source="manual")
        self._changed(st)
        return st

    def set_status(self, i: int, status: Any) -> str:
        i = self.index(i)
        self.writable(i)
        if status not in STATUSES:
            raise AnnotateError(f"status {status!r}: expected one of {', '.join(repr(s) for s in STATUSES)}")
        rec = self.records[i]
        if not rec.width:
            self.open(i)
        rec.status = status
        if not self.save_record(i):
            raise AnnotateError(self.save_errors.get(i, "not saved"))
        return status

    def set_window(self, i: int, width: Any, level: Any) -> dict[str, float]:
        st = self.open(i)
        if st.image.default_window is None:
            raise AnnotateError(f"{st.record.key}: window width/level applies to 16-bit and DICOM images only")
        for name, v in (("width", width), ("level", level)):
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not np.isfinite(v):
                raise AnnotateError(f"window {name}: expected a number, got {v!r}")
        if width <= 0:
            raise AnnotateError(f"window width: must be > 0, got {width!r}")
        self.windows[i] = {"width": float(width), "level": float(level)}
        self.save_record(i)
        return self.windows[i]

    def set_current(self, i: Any) -> int:
        self.current = self.index(i)
        self.save_project()
        return self.current

    # ------------------------------------------------------------------ labels and settings
    def label_usage(self) -> dict[int, int]:
        use: dict[int, int] = {}
        for r in self.records:
            for o in r.objects:
                use[o.label] = use.get(o.label, 0) + 1
        return use

    def set_labels(self, labels: Any, where: str = "labels") -> list[Label]:
        if not isinstance(labels, list) or not labels or len(labels) > 255:
            raise AnnotateError(f"{where}: expected a list of 1..255 labels")
        new = check_labels([Label.from_dict(d, f"{where}[{k}]") for k, d in enumerate(labels)], where)
        gone = {lab.id for lab in self.labels} - {lab.id for lab in new}
        use = self.label_usage()
        for lid in sorted(gone):
            if use.get(lid):
                name = next(lab.name for lab in self.labels if lab.id == lid)
                raise Conflict(f"label {name!r} is used by {use[lid]} object(s); relabel or delete them first")
        self.labels = new
        self.save_project()
        return new

    def import_labels(self, text: str) -> list[Label]:
        from .records import parse_labels_txt

        try:
            labels = parse_labels_txt(text, "labels.txt")
        except PPSegError as e:
            raise AnnotateError(str(e)) from None
        return self.set_labels([lab.to_dict() for lab in labels], "labels.txt")

    def set_settings(self, d: Any) -> Settings:
        self.settings = self.settings.updated(d)
        self.save_project()
        return self.settings

    # ------------------------------------------------------------------ summaries
    def image_status(self, i: int) -> str:
        if i in self.errors:
            return "error"
        rec = self.records[i]
        return rec.status or ("started" if rec.objects else "")

    def done_count(self) -> int:
        return sum(1 for r in self.records if r.done)

    def state_dict(self, st: ImageState) -> dict[str, Any]:
        i = st.index
        return {"index": i, "objects": [o.to_dict() for o in st.record.objects], "current": self.current_of(st),
                "can_undo": st.can_undo, "can_redo": st.can_redo, "status": st.record.status,
                "saved": i not in self.save_errors and i not in self.errors,
                "save_error": self.save_errors.get(i) or self.errors.get(i)}


def _deepest_point(mask: np.ndarray) -> Any:
    """A positive click at the pixel of ``mask`` farthest from its border (RITM's first click)."""
    import cv2

    from ...interactive.clicks import Click

    dist = cv2.distanceTransform(np.pad(mask.astype(np.uint8), 1), cv2.DIST_L2, 5)[1:-1, 1:-1]
    y, x = np.unravel_index(int(np.argmax(dist)), dist.shape)
    return Click(float(y), float(x), True)


def _check_points(value: Any, where: str, nested: bool = False) -> Any:
    """``[[x, y], ...]`` (or a list of those with ``nested``) of finite numbers -> float arrays."""
    if nested:
        if not isinstance(value, list) or not value or len(value) > 1000:
            raise AnnotateError(f"{where}: expected a list of 1..1000 point lists")
        out = [_check_points(v, f"{where}[{k}]") for k, v in enumerate(value)]
        if sum(len(p) for p in out) > MAX_POINTS:
            raise AnnotateError(f"{where}: more than {MAX_POINTS} points in all")
        return out
    if not isinstance(value, list) or not value or len(value) > MAX_POINTS:
        raise AnnotateError(f"{where}: expected a list of 1..{MAX_POINTS} [x, y] points")
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise AnnotateError(f"{where}: points must be [x, y] numbers") from None
    if arr.ndim != 2 or arr.shape[1] != 2 or not np.isfinite(arr).all() or np.abs(arr).max() > 1e6:
        raise AnnotateError(f"{where}: points must be [x, y] pairs of finite numbers")
    return arr

